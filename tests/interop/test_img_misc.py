#!/usr/bin/env python3
"""qblock-img resize / dd / measure / snapshot / amend / commit / rebase vs
qemu-img: each case runs both tools on their own copy of the same image
(made by the real qemu-img and qemu-io) and must print the same and exit
the same; the resulting images must then be identical for the real
qemu-img compare and have the same virtual size.
"""
import os
import shutil
import sys

import interop as t


def main():
    qemu_img = t.qemu_tool('qemu-img')
    qemu_io = t.qemu_tool('qemu-io')
    qb = t.qblock_tool('qblock-img')
    d = t.scratch_dir()

    def img(*argv):
        r = t.run([qemu_img] + list(argv))
        t.check(r.rc == 0, 'qemu-img %s failed: %s' % (argv, r.err))

    def io(fmt, name, *cmds):
        argv = [qemu_io, '-f', fmt]
        for c in cmds:
            argv += ['-c', c]
        r = t.run(argv + [name])
        t.check(r.rc == 0, 'qemu-io %s failed: %s' % (cmds, r.err))

    img('create', '-q', '-f', 'raw', 'r.raw', '1M')
    io('raw', 'r.raw', 'write -P 1 0 64k', 'write -P 2 960k 64k')
    img('create', '-q', '-f', 'qcow2', 'q.qcow2', '1M')
    io('qcow2', 'q.qcow2', 'write -P 1 0 64k', 'write -P 2 960k 64k')
    img('create', '-q', '-f', 'qcow2', 'base.qcow2', '1M')
    io('qcow2', 'base.qcow2', 'write -P 3 0 512k')
    img('create', '-q', '-f', 'qcow2', '-b', 'base.qcow2', '-F', 'qcow2',
        'top.qcow2', '2M')
    io('qcow2', 'top.qcow2', 'write -P 4 64k 64k', 'write -P 5 1536k 4k')

    # (argv with IMG for the per-tool copy, image to copy, format)
    cases = [
        (['resize', '-f', 'raw', 'IMG', '2M'], 'r.raw'),
        (['resize', '-f', 'raw', 'IMG', '+1M'], 'r.raw'),
        (['resize', '-f', 'raw', 'IMG', '-512k'], 'r.raw'),
        (['resize', '-f', 'raw', '--shrink', 'IMG', '-512k'], 'r.raw'),
        (['resize', '-f', 'raw', '--preallocation=full', 'IMG', '3M'],
         'r.raw'),
        (['resize', '-f', 'raw', '--preallocation=falloc', '--shrink',
          'IMG', '512k'], 'r.raw'),
        (['resize', '-f', 'raw', 'IMG', '-2M'], 'r.raw'),
        (['resize', '-f', 'raw', 'IMG', '1x'], 'r.raw'),
        (['resize', '-q', '-f', 'qcow2', 'IMG', '3M'], 'q.qcow2'),
        (['resize', '-f', 'qcow2', '--shrink', 'IMG', '512k'], 'q.qcow2'),
        (['resize', '-f', 'qcow2', 'IMG', '512k'], 'q.qcow2'),
        (['resize', '-f', 'qcow2', '--preallocation=metadata', 'IMG', '2M'],
         'q.qcow2'),
        (['resize', '-f', 'qcow2', '--preallocation=bogus', 'IMG', '2M'],
         'q.qcow2'),
        (['snapshot', '-c', 'one', 'IMG'], 'q.qcow2'),
        (['snapshot', '-l', 'IMG'], 'q.qcow2'),
        (['snapshot', '-a', 'nope', 'IMG'], 'q.qcow2'),
        (['snapshot', '-d', 'nope', 'IMG'], 'q.qcow2'),
        (['snapshot', '-c', 'x', 'IMG'], 'r.raw'),
        (['snapshot', '-l', '-a', 'x', 'IMG'], 'q.qcow2'),
        (['amend', '-o', 'compat=0.10', 'IMG'], 'q.qcow2'),
        (['amend', '-o', 'lazy_refcounts=on', 'IMG'], 'q.qcow2'),
        (['amend', '-o', 'size=4M', 'IMG'], 'q.qcow2'),
        (['amend', '-o', 'cluster_size=4k', 'IMG'], 'q.qcow2'),
        (['amend', '-o', 'bogus=1', 'IMG'], 'q.qcow2'),
        (['amend', '-f', 'raw', '-o', 'size=2M', 'IMG'], 'r.raw'),
        (['amend', '-o', 'help', 'IMG'], 'q.qcow2'),
        (['amend', 'IMG'], 'q.qcow2'),
        (['commit', '-f', 'raw', 'IMG'], 'r.raw'),
        (['commit', '-b', 'nonexistent', 'IMG'], 'top.qcow2'),
        (['commit', '-t', 'bogus', 'IMG'], 'top.qcow2'),
        (['rebase', 'IMG'], 'top.qcow2'),
        (['rebase', '-F', 'bogus', '-b', 'base.qcow2', 'IMG'], 'top.qcow2'),
        (['rebase', '-b', 'nonexistent', '-F', 'qcow2', 'IMG'], 'top.qcow2'),
        (['rebase', '-u', '-b', 'base.qcow2', 'IMG'], 'top.qcow2'),
    ]
    no_img = [
        ['measure', '--size', '1M'],
        ['measure', '--output=json', '--size', '1001'],
        ['measure', '-f', 'raw', 'r.raw'],
        ['measure', '--output=json', '-f', 'raw', 'r.raw'],
        ['measure'],
        ['measure', '--size', '1M', 'r.raw'],
        ['measure', '-O', 'bogus', '--size', '1M'],
        ['measure', '-O', 'raw', '-o', 'bogus=1', '--size', '1M'],
        ['measure', '-O', 'qcow2', '--size', '1G'],
        ['measure', '-O', 'qcow2', '--output=json', '-o',
         'cluster_size=4k,refcount_bits=8', '--size', '10G'],
        ['measure', '-O', 'qcow2', '-f', 'raw', 'r.raw'],
        ['measure', '-O', 'qcow2', '-f', 'qcow2', 'top.qcow2'],
        ['measure', '-O', 'qcow2', '--output=json', '-o',
         'extended_l2=on,preallocation=falloc', 'q.qcow2'],
        ['measure', '-O', 'qcow2', '-o', 'compat=0.10', 'q.qcow2'],
        ['dd'],
        ['dd', 'if=r.raw'],
        ['dd', 'bs=0', 'if=r.raw', 'of=x.raw'],
        ['dd', 'foo=bar', 'if=r.raw', 'of=x.raw'],
        ['amend', '-f', 'qcow2', '-o', 'help'],
        ['amend', '-f', 'raw', '-o', 'help'],
        ['snapshot'],
        ['resize'],
        ['commit'],
    ]

    failures = []
    for argv, src in cases:
        ext = os.path.splitext(src)[1]
        outs = {}
        res = {}
        for tool, tag in ((qemu_img, 'qemu'), (qb, 'qblock')):
            copy = 'c-%s%s' % (tag, ext)
            shutil.copy(os.path.join(d, src), os.path.join(d, copy))
            res[tag] = t.run([tool] + [copy if a == 'IMG' else a
                                       for a in argv])
            outs[tag] = copy
        what = ' '.join(argv) + ' (%s)' % src
        try:
            t.check_same(what, res['qemu'], res['qblock'],
                         filters=(t.filter_prog,
                                  lambda s: s.replace('c-qemu', 'C')
                                             .replace('c-qblock', 'C')))
            fmt = 'qcow2' if ext == '.qcow2' else 'raw'
            cmp = t.run([qemu_img, 'compare', '-f', fmt, '-F', fmt,
                         outs['qemu'], outs['qblock']])
            t.check(cmp.rc == 0, '%s: results differ: %s%s'
                    % (what, cmp.out, cmp.err))
        except t.Failure as e:
            failures.append(str(e))

    for argv in no_img:
        ref = t.run([qemu_img] + argv)
        for p in ('x.raw',):
            if os.path.exists(os.path.join(d, p)):
                os.unlink(os.path.join(d, p))
        got = t.run([qb] + argv)
        try:
            t.check_same(' '.join(argv), ref, got)
        except t.Failure as e:
            failures.append(str(e))

    # dd results.
    for ops in (['bs=64k', 'count=3', 'skip=1'], ['bs=1000'], ['skip=9999']):
        for tool, out in ((qemu_img, 'dd-qemu.raw'), (qb, 'dd-qblock.raw')):
            t.run([tool, 'dd', '-f', 'raw', 'if=r.raw', 'of=' + out] + ops)
        cmp = t.run([qemu_img, 'compare', '-s', '-f', 'raw', '-F', 'raw',
                     'dd-qemu.raw', 'dd-qblock.raw'])
        if cmp.rc != 0:
            failures.append('dd %s: %s' % (ops, cmp.out))
        for out in ('dd-qemu.raw', 'dd-qblock.raw'):
            os.unlink(os.path.join(d, out))

    if failures:
        raise t.Failure('%d problems:\n%s' % (len(failures),
                                              '\n'.join(failures)))
    print('%d cases identical' % (len(cases) + len(no_img) + 3))


if __name__ == '__main__':
    sys.exit(t.main(main))
