#!/usr/bin/env python3
"""qblock-img check vs qemu-img check: raw (no check, exit 63), clean qcow2
images of several layouts (compressed clusters, small clusters, compat
0.10, backing files), a leaked cluster (exit 3) and refcount corruptions
(exit 2), in human and JSON form; output and exit status must match.
Also the layouts the fast walk treats specially: every refcount width
(1..64 bits, with snapshots sharing clusters), metadata-preallocated images
whose L2 tables and refblocks lie side by side (read in runs), COPIED flags
that disagree with the refcount, a refcount that overflows its width, and
repairs (-r leaks / -r all, each tool on its own copy).
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


def l2_entry_addr(path, l1_index, l2_index):
    """File offset of an L2 entry (64-bit entries) and the L1 entry's."""
    with open(path, 'rb') as f:
        hdr = f.read(104)
        l1 = struct.unpack('>Q', hdr[40:48])[0]
        f.seek(l1 + 8 * l1_index)
        l2 = struct.unpack('>Q', f.read(8))[0] & 0x00fffffffffffe00
    return l1 + 8 * l1_index, l2 + 8 * l2_index


def poke64(path, off, fn):
    """Replace the big-endian u64 at off by fn(old)."""
    with open(path, 'r+b') as f:
        f.seek(off)
        v = struct.unpack('>Q', f.read(8))[0]
        f.seek(off)
        f.write(struct.pack('>Q', fn(v)))


COPIED = 1 << 63


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

    def path(name):
        return os.path.join(d, name)

    # Every refcount width; a snapshot makes refcounts of 2 where allowed.
    widths = []
    for bits in (1, 2, 4, 8, 32, 64):
        name = 'rb%d.qcow2' % bits
        img('create', '-q', '-f', 'qcow2', '-o',
            'refcount_bits=%d,cluster_size=4k' % bits, name, '8M')
        io(name, 'write -P 1 0 300k', 'write -P 2 5M 64k')
        if bits > 1:
            img('snapshot', '-c', 's1', name)
            io(name, 'write -P 3 0 16k')
        widths.append(name)
    # L2 tables and refblocks side by side: more adjacent tables than one
    # read run holds (512 KiB = 128 tables of 4 KiB), and big clusters.
    img('create', '-q', '-f', 'qcow2', '-o',
        'cluster_size=4k,preallocation=metadata', 'pm4k.qcow2', '1G')
    io('pm4k.qcow2', 'write -P 4 100M 64k')
    img('create', '-q', '-f', 'qcow2', '-o',
        'cluster_size=2M,preallocation=metadata', 'pm2m.qcow2', '3G')
    img('create', '-q', '-f', 'qcow2', '-o',
        'cluster_size=512,refcount_bits=8', 'c512.qcow2', '4M')
    io('c512.qcow2', 'write -P 5 0 1M', 'write -P 6 2M 4k')
    # COPIED flags that disagree with the refcount.
    shutil.copy(path('clean.qcow2'), path('copied-l2.qcow2'))
    poke64(path('copied-l2.qcow2'), l2_entry_addr(path('copied-l2.qcow2'),
                                                  0, 0)[1],
           lambda v: v & ~COPIED)
    shutil.copy(path('clean.qcow2'), path('copied-l1.qcow2'))
    poke64(path('copied-l1.qcow2'), l2_entry_addr(path('copied-l1.qcow2'),
                                                  0, 0)[0],
           lambda v: v & ~COPIED)
    shutil.copy(path('rb8.qcow2'), path('copied-snap.qcow2'))
    poke64(path('copied-snap.qcow2'), l2_entry_addr(path('copied-snap.qcow2'),
                                                    0, 50)[1],
           lambda v: v | COPIED)
    # A refcount_bits=1 image where two L2 entries name one cluster: the
    # reference count overflows the width.
    img('create', '-q', '-f', 'qcow2', '-o', 'refcount_bits=1',
        'overflow.qcow2', '1M')
    io('overflow.qcow2', 'write -P 1 0 128k')
    e0 = l2_entry_addr(path('overflow.qcow2'), 0, 0)[1]
    with open(path('overflow.qcow2'), 'rb') as f:
        f.seek(e0)
        first = struct.unpack('>Q', f.read(8))[0]
    poke64(path('overflow.qcow2'), e0 + 8, lambda v: first)

    cases = []
    for name in widths + ['pm4k.qcow2', 'pm2m.qcow2', 'c512.qcow2',
                          'copied-l2.qcow2', 'copied-l1.qcow2',
                          'copied-snap.qcow2', 'overflow.qcow2']:
        cases.append(['check', name])
        cases.append(['check', '--output=json', name])
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
    # Repairs: each tool on its own copy, then both copies must check the
    # same (and the same as each other's repair leaves them).
    repairs = [(mode, name) for mode in ('leaks', 'all')
               for name in ('leak.qcow2', 'both.qcow2', 'copied-l2.qcow2',
                            'copied-l1.qcow2', 'copied-snap.qcow2',
                            'overflow.qcow2')]
    for mode, name in repairs:
        argv = ['check', '-r', mode]
        shutil.copy(path(name), path('q-' + name))
        shutil.copy(path(name), path('b-' + name))
        ref = t.run([qemu_img] + argv + ['q-' + name])
        got = t.run([qb] + argv + ['b-' + name])
        for r in (ref, got):
            r.out = r.out.replace('q-' + name, name).replace('b-' + name,
                                                             name)
            r.err = r.err.replace('q-' + name, name).replace('b-' + name,
                                                             name)
        try:
            t.check_same(' '.join(argv + [name]), ref, got)
            t.check_same('check after -r %s %s' % (mode, name),
                         t.run([qemu_img, 'check', 'q-' + name]),
                         t.run([qemu_img, 'check', 'b-' + name]))
        except t.Failure as e:
            failures.append(str(e))
    cases += repairs
    if failures:
        raise t.Failure('%d of %d cases differ:\n%s'
                        % (len(failures), len(cases), '\n'.join(failures)))
    print('%d cases identical' % len(cases))


if __name__ == '__main__':
    sys.exit(t.main(main))
