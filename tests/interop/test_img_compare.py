#!/usr/bin/env python3
"""qblock-img compare vs qemu-img compare: identical and different images
(data, zero clusters, allocation on one side, backing chains, different
sizes), strict mode, -q, -p, and the error cases must print the same and
exit with the same status.  Images are written by the real qemu-io.
"""
import itertools
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

    data = ('write -P 1 64k 64k', 'write -P 2 512k 128k')
    img('create', '-q', '-f', 'raw', 'a.raw', '1M')
    io('raw', 'a.raw', *data)
    img('create', '-q', '-f', 'raw', 'b.raw', '1M')
    io('raw', 'b.raw', *data, 'write -P 9 70000 10')
    img('create', '-q', '-f', 'raw', 'c.raw', '2M')
    io('raw', 'c.raw', *data)
    img('create', '-q', '-f', 'raw', 'd.raw', '2M')
    io('raw', 'd.raw', *data, 'write -P 3 1536k 512')
    img('create', '-q', '-f', 'qcow2', 'q.qcow2', '1M')
    io('qcow2', 'q.qcow2', *data, 'write -z 256k 64k')
    img('create', '-q', '-f', 'qcow2', 'q2.qcow2', '1M')
    io('qcow2', 'q2.qcow2', *data, 'write -P 7 900k 1')
    img('create', '-q', '-f', 'qcow2', 'base.qcow2', '1M')
    io('qcow2', 'base.qcow2', *data)
    img('create', '-q', '-f', 'qcow2', '-b', 'base.qcow2', '-F', 'qcow2',
        'top.qcow2', '1M')
    img('create', '-q', '-f', 'qcow2', '-b', 'base.qcow2', '-F', 'qcow2',
        'top2.qcow2', '2M')
    io('qcow2', 'top2.qcow2', 'write -P 1 64k 4k', 'write -z 1536k 64k')

    names = ['a.raw', 'b.raw', 'c.raw', 'd.raw', 'q.qcow2', 'q2.qcow2',
             'base.qcow2', 'top.qcow2', 'top2.qcow2']
    cases = []
    for x, y in itertools.permutations(names, 2):
        cases.append(['compare', x, y])
        cases.append(['compare', '-s', x, y])
    cases += [
        ['compare', '-q', 'a.raw', 'b.raw'],
        ['compare', '-q', 'a.raw', 'a.raw'],
        ['compare', '-p', 'a.raw', 'c.raw'],
        ['compare', '-p', 'a.raw', 'b.raw'],
        ['compare', '-f', 'raw', '-F', 'qcow2', 'a.raw', 'q.qcow2'],
        ['compare', '-U', '-T', 'none', 'a.raw', 'q.qcow2'],
        ['compare', '--image-opts', 'driver=raw,file.filename=a.raw',
         'driver=qcow2,file.filename=q.qcow2'],
        ['compare'],
        ['compare', 'a.raw'],
        ['compare', 'a.raw', 'b.raw', 'c.raw'],
        ['compare', 'a.raw', 'does-not-exist'],
        ['compare', 'does-not-exist', 'a.raw'],
        ['compare', '-T', 'bogus', 'a.raw', 'a.raw'],
        ['compare', '-f', 'qcow2', 'a.raw', 'a.raw'],
        ['compare', '--bogus', 'a.raw', 'a.raw'],
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
