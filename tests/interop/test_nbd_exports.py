#!/usr/bin/env python3
"""NBD exports over QMP: one QMP session (nbd-server-start, block-export-add
with good and bad arguments, query-block-exports, blockdev-del of an
exported node, block-export-del, nbd-server-add/-remove, nbd-server-stop)
runs on qemu-storage-daemon and on qblock-storage-daemon; the replies and
the events (timestamps dropped) must be identical.

Env: QBLOCK_BUILD, QBLOCK_SRC.  Exit 0 pass, 77 skip, 1 fail.
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import interop  # noqa: E402
from interop import check  # noqa: E402

SCRIPT = [
    ('block-export-add', {'type': 'nbd', 'id': 'e0', 'node-name': 'q0'}),
    ('nbd-server-start', {'addr': {'type': 'unix',
                                   'data': {'path': 'WORKDIR/nbd.sock'}}}),
    ('nbd-server-start', {'addr': {'type': 'unix',
                                   'data': {'path': 'WORKDIR/nbd.sock'}}}),
    ('block-export-add', {'type': 'nbd', 'id': 'e0', 'node-name': 'nope'}),
    ('block-export-add', {'type': 'nbd', 'id': 'e0', 'node-name': 'q0'}),
    ('block-export-add', {'type': 'nbd', 'id': 'e0', 'node-name': 'q0'}),
    ('block-export-add', {'type': 'nbd', 'id': 'e1', 'node-name': 'q0'}),
    ('block-export-add', {'type': 'nbd', 'id': 'e1', 'node-name': 'q0',
                          'name': 'w', 'writable': True}),
    ('block-dirty-bitmap-add', {'node': 'q0', 'name': 'b0'}),
    ('block-export-add', {'type': 'nbd', 'id': 'e2', 'node-name': 'q0',
                          'name': 'b', 'bitmaps': ['b0']}),
    ('block-export-add', {'type': 'nbd', 'id': 'e2', 'node-name': 'q0',
                          'name': 'b', 'writable': True,
                          'bitmaps': [{'node': 'q0', 'name': 'b0'}]}),
    ('block-dirty-bitmap-remove', {'node': 'q0', 'name': 'b0'}),
    ('query-block-exports', None),
    ('blockdev-del', {'node-name': 'q0'}),
    ('block-export-del', {'id': 'e0', 'mode': 'safe'}),
    ('block-export-del', {'id': 'e0'}),
    ('nbd-server-add', {'device': 'q0', 'name': 'old'}),
    ('nbd-server-remove', {'name': 'old', 'mode': 'hard'}),
    ('nbd-server-stop', None),
    ('query-block-exports', None),
    ('blockdev-del', {'node-name': 'q0'}),
]


def session(binary, d, img):
    sys.path.insert(0, os.path.join(interop.SRC, 'tests', 'iotests'))
    import qmp
    lines = []
    qmp.log_script(binary, SCRIPT, d, lines.append, daemon_args=[
        '--blockdev', 'file,node-name=f0,filename=' + img,
        '--blockdev', 'qcow2,node-name=q0,file=f0'])
    return '\n'.join(lines).replace(d, 'WORKDIR')


def test():
    qsd = interop.qemu_tool('qemu-storage-daemon')
    ours = interop.qblock_tool('qblock-storage-daemon')
    d = interop.scratch_dir()
    img = os.path.join(d, 't.qcow2')
    interop.run([interop.qemu_tool('qemu-img'), 'create', '-q', '-f',
                 'qcow2', img, '4M'])
    want = session(qsd, d, img)
    got = session(ours, d, img)
    if want != got:
        print(interop.diff(want, got))
    check(want == got, 'QMP sessions differ')
    check('BLOCK_EXPORT_DELETED' in want, 'no event seen: %s'
          % json.dumps(want)[:200])


if __name__ == '__main__':
    sys.exit(interop.main(test))
