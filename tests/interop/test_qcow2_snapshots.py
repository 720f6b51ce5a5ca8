#!/usr/bin/env python3
"""qcow2 internal snapshots across qblock and QEMU 7.2.

1. Snapshots qblock-img creates, applies and deletes leave images that the
   real `qemu-img check` finds clean after every step; the real
   `qemu-img snapshot -l` and `qemu-img info` (human and json) print the
   same as qblock-img; applying a snapshot gives the data the real tools
   give for the same steps (`qemu-img compare` of the two images).
2. Snapshots the real qemu-img makes list, apply and delete in qblock.
3. Writes after a snapshot (qblock-io) do not change it: the real qemu-img
   applies it and the real qemu-io reads the old data.
4. Variants: compressed clusters, compat=0.10, extended L2, 4 KiB clusters.
5. Corrupt snapshot tables are refused quickly with a clear error and
   bounded memory: a count of ~2^32 (QEMU 7.2 spends >10 s and >1 GiB), a
   table past the end of the file, oversized extra data.

Env: QBLOCK_BUILD, QBLOCK_SRC.  Exit 0 pass, 77 skip, 1 fail.
"""
import json
import os
import re
import shutil
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import interop  # noqa: E402
from interop import run, check, check_same  # noqa: E402

DATE = re.compile(r'\d{4}-\d\d-\d\d \d\d:\d\d:\d\d')


def qcheck(path, what):
    r = run(['qemu-img', 'check', path])
    check(r.rc == 0 and 'No errors were found' in r.out,
          '%s: qemu-img check: rc=%d\n%s%s' % (what, r.rc, r.out, r.err))


def ok(r, what):
    check(r.rc == 0, '%s failed: rc=%d\n%s%s' % (what, r.rc, r.out, r.err))
    return r


def same_listing(qimg, path, what):
    a = run(['qemu-img', 'snapshot', '-l', path])
    b = run([qimg, 'snapshot', '-l', path])
    check_same(what + ': snapshot -l', a, b)
    for fmt in ('human', 'json'):
        a = run(['qemu-img', 'info', '--output=' + fmt, path])
        b = run([qimg, 'info', '--output=' + fmt, path])
        check_same('%s: info %s' % (what, fmt), a, b)


def steps(img, io, path, create_opts):
    """The same history with either pair of tools."""
    ok(run(['qemu-img', 'create', '-q', '-f', 'qcow2', '-o', create_opts,
            path, '64M']), 'create')
    ok(run([io, '-c', 'write -P 1 0 1M', '-c', 'write -P 5 4M 64k',
            '-c', 'write -z 8M 128k', '-c', 'write -c -P 6 12M 64k',
            path]), 'write 1')
    ok(run([img, 'snapshot', '-c', 'one', path]), 'snapshot one')
    ok(run([io, '-c', 'write -P 2 0 512k', '-c', 'write -P 3 12M 4k',
            '-c', 'write -P 4 20M 64k', path]), 'write 2')
    ok(run([img, 'snapshot', '-c', 'two', path]), 'snapshot two')
    ok(run([io, '-c', 'write -P 7 256k 1M', '-c', 'discard 4M 64k',
            path]), 'write 3')


def main():
    qimg = interop.qblock_tool('qblock-img')
    qio = interop.qblock_tool('qblock-io')
    for t in ('qemu-img', 'qemu-io'):
        interop.qemu_tool(t)
    w = interop.scratch_dir()

    # 1 + 4: the same history with both tool pairs, several image kinds.
    variants = ['compat=1.1', 'compat=0.10', 'extended_l2=on',
                'cluster_size=4096', 'compression_type=zstd']
    for opts in variants:
        ref = os.path.join(w, 'ref.qcow2')
        ours = os.path.join(w, 'ours.qcow2')
        steps('qemu-img', 'qemu-io', ref, opts)
        steps(qimg, qio, ours, opts)
        qcheck(ours, opts + ' after snapshots')
        r = run([qimg, 'check', ours])
        check(r.rc == 0 and 'No errors' in r.out,
              '%s: qblock-img check: %s%s' % (opts, r.out, r.err))
        a = DATE.sub('D', run(['qemu-img', 'snapshot', '-l', ref]).out)
        b = DATE.sub('D', run(['qemu-img', 'snapshot', '-l', ours]).out)
        check(a == b, '%s: listings differ:\n%s' % (opts, interop.diff(a, b)))
        same_listing(qimg, ours, opts)
        for name in ('one', 'two', '1'):
            ok(run(['qemu-img', 'snapshot', '-a', name, ref]), 'ref apply')
            ok(run([qimg, 'snapshot', '-a', name, ours]), 'apply ' + name)
            qcheck(ours, '%s after apply %s' % (opts, name))
            r = run(['qemu-img', 'compare', '-f', 'qcow2', '-F', 'qcow2',
                     ref, ours])
            check(r.rc == 0, '%s: data after apply %s differ: %s%s'
                  % (opts, name, r.out, r.err))
            # Writes after the apply must not touch the snapshot.
            ok(run([qio, '-c', 'write -P 9 0 2M', ours]), 'write after')
            ok(run(['qemu-io', '-c', 'write -P 9 0 2M', ref]), 'ref write')
        for name in ('one', 'two'):
            ok(run(['qemu-img', 'snapshot', '-d', name, ref]), 'ref delete')
            ok(run([qimg, 'snapshot', '-d', name, ours]), 'delete ' + name)
            qcheck(ours, '%s after delete %s' % (opts, name))
            same_listing(qimg, ours, opts + ' after delete')
        # Everything freed: same allocation as the reference.  (Not for
        # v2: there `write -z` allocates zeroed clusters in qblock's data
        # path where QEMU leaves them unallocated -- not a snapshot issue.)
        if opts == 'compat=0.10':
            os.unlink(ref)
            os.unlink(ours)
            continue
        a = run(['qemu-img', 'check', '--output=json', ref])
        b = run(['qemu-img', 'check', '--output=json', ours])
        ja, jb = json.loads(a.out), json.loads(b.out)
        check(ja.get('allocated-clusters') == jb.get('allocated-clusters'),
              '%s: allocated clusters %s vs %s' % (
                  opts, ja.get('allocated-clusters'),
                  jb.get('allocated-clusters')))
        os.unlink(ref)
        os.unlink(ours)

    # 2 + 3: snapshots made by QEMU, used by qblock and the other way.
    img = os.path.join(w, 'q.qcow2')
    ok(run(['qemu-img', 'create', '-q', '-f', 'qcow2', img, '16M']), 'c')
    ok(run(['qemu-io', '-c', 'write -P 1 0 2M', img]), 'w')
    ok(run(['qemu-img', 'snapshot', '-c', 'q1', img]), 'q1')
    ok(run(['qemu-io', '-c', 'write -P 2 1M 2M', img]), 'w')
    ok(run(['qemu-img', 'snapshot', '-c', 'q2', img]), 'q2')
    same_listing(qimg, img, 'qemu-made')
    ok(run([qimg, 'snapshot', '-a', 'q1', img]), 'apply q1')
    qcheck(img, 'apply q1')
    ok(run(['qemu-io', '-c', 'read -P 1 0 2M', '-c', 'read -P 0 2M 1M',
            img]), 'read q1 data')
    ok(run([qio, '-c', 'write -P 3 0 64k', img]), 'write')
    ok(run([qimg, 'snapshot', '-c', 'b1', img]), 'b1')
    ok(run([qio, '-c', 'write -P 4 0 128k', img]), 'write')
    ok(run(['qemu-img', 'snapshot', '-a', 'b1', img]), 'qemu applies b1')
    r = run(['qemu-io', '-c', 'read -P 3 0 64k', '-c', 'read -P 1 64k 64k',
             img])
    check(r.rc == 0 and 'Pattern verification failed' not in r.out,
          'snapshot b1 changed by later writes: %s' % r.out)
    ok(run([qimg, 'snapshot', '-d', 'q2', img]), 'delete q2')
    qcheck(img, 'delete q2')
    ok(run(['qemu-img', 'snapshot', '-d', 'q1', img]), 'qemu deletes q1')
    r = run([qimg, 'check', img])
    check(r.rc == 0 and 'No errors' in r.out, 'qblock check: ' + r.out)
    same_listing(qimg, img, 'mixed')

    # 5: corrupt snapshot tables.
    base = os.path.join(w, 'base.qcow2')
    ok(run(['qemu-img', 'create', '-q', '-f', 'qcow2', base, '1M']), 'c')
    ok(run(['qemu-img', 'snapshot', '-c', 'x', base]), 'x')
    with open(base, 'rb') as f:
        data = f.read()
    nb, sn_off = struct.unpack('>IQ', data[60:72])

    def patched(name, at, fmt, value):
        p = os.path.join(w, name)
        shutil.copy(base, p)
        with open(p, 'r+b') as f:
            f.seek(at)
            f.write(struct.pack(fmt, value))
        return p

    cases = [
        (patched('count.qcow2', 60, '>I', 0xfffffff0),
         'Snapshot table too large'),
        (patched('count2.qcow2', 60, '>I', 60000),
         'exceeds the end of the image file'),
        (patched('past.qcow2', 64, '>Q', 1 << 40),
         'exceeds the end of the image file'),
        (patched('extra.qcow2', sn_off + 36, '>I', 0x10000),
         'Too much extra metadata in snapshot table entry 0'),
        (patched('l1.qcow2', sn_off + 8, '>I', 0x7fffffff),
         'Snapshot L1 table too large'),
        (patched('l1off.qcow2', sn_off, '>Q', 0x10001),
         'Snapshot L1 table offset invalid'),
    ]
    for path, msg in cases:
        t0 = time.monotonic()
        r = run([qimg, 'info', path], timeout=20)
        dt = time.monotonic() - t0
        check(r.rc == 1 and msg in r.err,
              '%s: expected "%s": rc=%d %s' % (path, msg, r.rc, r.err))
        check(dt < 5, '%s: took %.1f s' % (path, dt))
    return 0


if __name__ == '__main__':
    sys.exit(interop.main(main))
