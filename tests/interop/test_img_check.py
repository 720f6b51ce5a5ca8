#!/usr/bin/env python3
"""qblock-img check vs qemu-img check: raw (no check, exit 63), clean qcow2
images of several layouts (compressed clusters, small clusters, compat
0.10, backing files), a leaked cluster (exit 3) and refcount corruptions
(exit 2), in human and JSON form; output and exit status must match.
Images are made by the real qemu-img / qemu-io; defects are poked into the
refcount block directly.
"""
import shutil
import struct
import sys
import os

import interop as t


def set_refcount(path, cluster, value):
    """Set a 16-bit refcount entry in the first refcount block."""
    with open(path, 'r+b') as f:
        hdr = f.read(104)
        reftable = struct.unpack('>Q', hdr[48:56])[0]
        f.seek(reftable)
        refblock = struct.unpack('>Q', f.read(8))[0]
        f.seek(refblock + 2 * cluster)
        f.write(struct.pack('>H', value))


def main():
    qemu_img = t.qemu_tool('qemu-img')
    qemu_io = t.qemu_tool('qemu-io')
    qb = t.qblock_tool('qblock-img')
    d = t.scratch_dir()

    def io(img, *cmds):
        argv = [qemu_io, '-f', 'qcow2']
        for c in cmds:
            argv += ['-c', c]
        r = t.run(argv + [img])
        t.check(r.rc == 0, 'qemu-io %s failed: %s' % (cmds, r.err))

    def img(*argv):
        r = t.run([qemu_img] + list(argv))
        t.check(r.rc == 0, 'qemu-img %s failed: %s' % (argv, r.err))

    img('create', '-q', '-f', 'raw', 'r.raw', '1M')
    img('create', '-q', '-f', 'qcow2', 'empty.qcow2', '1M')
    img('create', '-q', '-f', 'qcow2', 'data.qcow2', '64M')
    io('data.qcow2', 'write -P 1 0 64k', 'write -P 2 10M 3M',
       'write -c -P 3 20M 256k', 'write -z 30M 1M', 'write -P 4 63M 1M')
    img('create', '-q', '-f', 'qcow2', '-o', 'cluster_size=4k,compat=0.10',
        'v2.qcow2', '1M')
    io('v2.qcow2', 'write -c -P 3 0 64k', 'write -P 4 200k 8k')
    img('create', '-q', '-f', 'qcow2', '-b', 'data.qcow2', '-F', 'qcow2',
        'top.qcow2', '64M')
    io('top.qcow2', 'write -P 5 1M 1M', 'discard 10M 64k')

    img('create', '-q', '-f', 'qcow2', 'clean.qcow2', '1M')
    io('clean.qcow2', 'write -P 1 0 64k', 'write -P 2 64k 64k',
       'write -P 3 128k 64k', 'discard 64k 64k')
    shutil.copy(os.path.join(d, 'clean.qcow2'), os.path.join(d, 'leak.qcow2'))
    set_refcount(os.path.join(d, 'leak.qcow2'), 6, 1)
    shutil.copy(os.path.join(d, 'clean.qcow2'),
                os.path.join(d, 'corrupt.qcow2'))
    set_refcount(os.path.join(d, 'corrupt.qcow2'), 4, 0)
    shutil.copy(os.path.join(d, 'clean.qcow2'), os.path.join(d, 'both.qcow2'))
    set_refcount(os.path.join(d, 'both.qcow2'), 5, 2)

    cases = []
    for name in ('r.raw', 'empty.qcow2', 'data.qcow2', 'v2.qcow2',
                 'top.qcow2', 'clean.qcow2', 'leak.qcow2', 'corrupt.qcow2',
                 'both.qcow2'):
        for extra in ([], ['--output=json'], ['--output=human'], ['-q'],
                      ['-U']):
            cases.append(['check'] + extra + [name])
    cases += [
        ['check', '-f', 'qcow2', '-T', 'none', 'data.qcow2'],
        ['check', '--image-opts', 'driver=qcow2,file.filename=data.qcow2'],
        ['check'],
        ['check', 'a', 'b'],
        ['check', '-r', 'bogus', 'clean.qcow2'],
        ['check', '--output=xml', 'clean.qcow2'],
        ['check', '-T', 'bogus', 'clean.qcow2'],
        ['check', '-f', 'qcow2', 'r.raw'],
        ['check', 'does-not-exist'],
        ['check', '--bogus', 'clean.qcow2'],
    ]

    failures = []
    for argv in cases:
        ref = t.run([qemu_img] + argv)
        got = t.run([qb] + argv)
        try:
            t.check_same(' '.join(argv), ref, got)
        except t.Failure as e:
            failures.append(str(e))
    if failures:
        raise t.Failure('%d of %d cases differ:\n%s'
                        % (len(failures), len(cases), '\n'.join(failures)))
    print('%d cases identical' % len(cases))


if __name__ == '__main__':
    sys.exit(t.main(main))
