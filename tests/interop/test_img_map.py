#!/usr/bin/env python3
"""qblock-img map vs qemu-img map: human and JSON output, windows
(--start-offset / --max-length), raw and qcow2 images (data, zero clusters,
compressed clusters, a backing chain) written by the real qemu-io, and the
error cases must be byte-identical after replacing the program name.
"""
import sys

import interop as t


def main():
    qemu_img = t.qemu_tool('qemu-img')
    qemu_io = t.qemu_tool('qemu-io')
    qb = t.qblock_tool('qblock-img')
    t.scratch_dir()

    def io(fmt, img, *cmds):
        argv = [qemu_io, '-f', fmt]
        for c in cmds:
            argv += ['-c', c]
        r = t.run(argv + [img])
        t.check(r.rc == 0, 'qemu-io %s failed: %s' % (cmds, r.err))

    def img(*argv):
        r = t.run([qemu_img] + list(argv))
        t.check(r.rc == 0, 'qemu-img %s failed: %s' % (argv, r.err))

    img('create', '-q', '-f', 'raw', 'r.raw', '4M')
    io('raw', 'r.raw', 'write -P 1 64k 64k', 'write -z 256k 4k',
       'write -P 2 512k 128k', 'write -P 3 4092k 4k', 'write -P 4 1M 1')
    img('create', '-q', '-f', 'raw', 'odd.raw', '12345')
    img('create', '-q', '-f', 'raw', 'empty.raw', '0')
    img('create', '-q', '-f', 'qcow2', 'b.qcow2', '4M')
    io('qcow2', 'b.qcow2', 'write -P 1 0 64k', 'write -P 4 256k 128k',
       'write -c -P 5 2M 128k', 'write -z 3M 64k')
    img('create', '-q', '-f', 'qcow2', '-b', 'b.qcow2', '-F', 'qcow2',
        't.qcow2', '6M')
    io('qcow2', 't.qcow2', 'write -P 3 128k 64k', 'write -z 192k 64k',
       'write -P 5 300k 4k', 'write -P 6 5M 64k', 'discard 256k 64k')
    img('create', '-q', '-f', 'qcow2', '-o', 'cluster_size=4k', 's.qcow2',
        '1M')
    io('qcow2', 's.qcow2', 'write -P 7 0 12k', 'write -P 8 20k 4k',
       'write -P 9 24k 4k', 'write -z 28k 8k')

    images = [('raw', 'r.raw'), ('raw', 'odd.raw'), ('raw', 'empty.raw'),
              ('qcow2', 'b.qcow2'), ('qcow2', 't.qcow2'),
              ('qcow2', 's.qcow2')]
    cases = []
    for fmt, name in images:
        for out in ([], ['--output=human'], ['--output=json']):
            cases.append(['map', '-f', fmt] + out + [name])
            cases.append(['map', '-f', fmt] + out +
                         ['--start-offset=100k', '--max-length=1M', name])
            cases.append(['map', '-f', fmt] + out +
                         ['--start-offset', '300k', name])
        cases.append(['map', '--output=json', name])
    cases += [
        ['map', '--output=json', '--image-opts',
         'driver=qcow2,file.filename=t.qcow2'],
        ['map', '-U', '--output=json', 't.qcow2'],
        ['map', '--output=json', '--max-length=0', 'r.raw'],
        ['map', '--start-offset=100M', 'r.raw'],
        ['map'],
        ['map', 'r.raw', 'r.raw'],
        ['map', '--output=xml', 'r.raw'],
        ['map', '--start-offset=-1', 'r.raw'],
        ['map', '--max-length=1x', 'r.raw'],
        ['map', '-f', 'qcow2', 'r.raw'],
        ['map', 'does-not-exist'],
        ['map', '--bogus', 'r.raw'],
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
