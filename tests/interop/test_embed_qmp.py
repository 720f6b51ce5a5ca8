#!/usr/bin/env python3
"""The QMP embedding example (docs/examples/embed-qmp.c, built as
docs/embed-qmp) runs its own checks, and the qcow2 image it leaves behind
is what real QEMU expects: `qemu-img check` clean, `qemu-img info` lists
the persistent bitmap bm0, qemu-storage-daemon loads the bitmap with the
dirty count the example saw (131072), and the data reads back.
"""
import json
import os
import sys

import interop as t


def qsd_dirty_count(qsd, img):
    """Dirty count of bm0 as qemu-storage-daemon reports it, or None."""
    cmds = [
        {"execute": "qmp_capabilities"},
        {"execute": "blockdev-add", "arguments": {
            "driver": "qcow2", "node-name": "d", "read-only": True,
            "file": {"driver": "file", "filename": img}}},
        {"execute": "query-named-block-nodes"},
        {"execute": "quit"},
    ]
    text = "".join(json.dumps(c) + "\n" for c in cmds)
    r = t.run([qsd, "--chardev", "stdio,id=m", "--monitor", "m"],
              input=text.encode(), timeout=30)
    for line in r.out.splitlines():
        msg = json.loads(line)
        ret = msg.get("return")
        if not isinstance(ret, list):
            continue
        for node in ret:
            if node.get("node-name") != "d":
                continue
            for bm in node.get("dirty-bitmaps", []):
                if bm.get("name") == "bm0":
                    return bm.get("count")
    print(r.out + r.err)
    return None


def main():
    exe = t.qblock_tool('embed-qmp')
    d = t.scratch_dir()
    img = os.path.join(d, 'disk.qcow2')
    r = t.run([exe, img], timeout=60)
    print(r.out, end='')
    t.check(r.rc == 0, 'embed-qmp exited %d:\n%s%s' % (r.rc, r.out, r.err))
    for line in ('reply: {"id": 1, "error": {"class": "CommandNotFound", '
                 '"desc": "The command no-such-command has not been found"}}',
                 'created and opened %s as node disk0' % img,
                 'bitmap bm0 added, dirty count 0',
                 'wrote 65536 bytes at 0 and 4096 at 1 MiB, dirty count '
                 '131072',
                 'shut down: no nodes left',
                 'all checks passed'):
        t.check(line in r.out, 'missing output line %r' % line)
    t.check('FAILED' not in r.out, 'a check failed')

    qemu_img = t.qemu_tool('qemu-img')
    r = t.run([qemu_img, 'check', img])
    t.check(r.rc == 0 and 'No errors were found' in r.out,
            'qemu-img check: %s%s' % (r.out, r.err))
    r = t.run([qemu_img, 'info', '--output=json', img])
    t.check(r.rc == 0, 'qemu-img info: %s' % r.err)
    info = json.loads(r.out)
    t.check(info['virtual-size'] == 16 * 1024 * 1024, 'virtual size')
    bitmaps = info['format-specific']['data'].get('bitmaps', [])
    t.check([(b['name'], b['flags'], b['granularity']) for b in bitmaps] ==
            [('bm0', ['auto'], 65536)],
            'stored bitmaps: %r' % bitmaps)

    qemu_io = t.qemu_tool('qemu-io')
    r = t.run([qemu_io, '-r', '-f', 'qcow2', '-c', 'read -P 0x5a 0 64k',
               '-c', 'read -P 0x5a 1M 4k', '-c', 'read -P 0 64k 960k', img])
    t.check(r.rc == 0 and 'Pattern verification failed' not in r.out,
            'qemu-io read back: %s%s' % (r.out, r.err))

    try:
        qsd = t.qemu_tool('qemu-storage-daemon')
    except t.Skip:
        return 0
    count = qsd_dirty_count(qsd, img)
    t.check(count == 131072, 'qemu-storage-daemon sees dirty count %r'
            % (count,))
    return 0


if __name__ == '__main__':
    sys.exit(t.main(main))
