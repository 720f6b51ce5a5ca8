#!/usr/bin/env python3
"""qblock-img convert vs qemu-img convert: for raw and qcow2 sources
(written by the real qemu-io: data, zero clusters, compressed clusters,
backing chains) and many option sets (-O, -S, -c, -B, -n, -W, -m,
--target-is-zero, -o, concatenation), both tools must print the same and
exit the same, the results must be identical to each other for the real
qemu-img compare (strict mode for same-format targets), and allocate the
same ranges (qemu-img map).  Round trips raw -> qcow2 -> raw made by qblock
alone must be identical to the original for the real qemu-img compare.
"""
import os
import re
import shutil
import sys

import interop as t


def main():
    qemu_img = t.qemu_tool('qemu-img')
    qemu_io = t.qemu_tool('qemu-io')
    qb = t.qblock_tool('qblock-img')
    d = t.scratch_dir()

    def io(fmt, img, *cmds):
        argv = [qemu_io, '-f', fmt]
        for c in cmds:
            argv += ['-c', c]
        r = t.run(argv + [img])
        t.check(r.rc == 0, 'qemu-io %s failed: %s' % (cmds, r.err))

    def img(*argv):
        r = t.run([qemu_img] + list(argv))
        t.check(r.rc == 0, 'qemu-img %s failed: %s' % (argv, r.err))
        return r

    img('create', '-q', '-f', 'raw', 's.raw', '8M')
    io('raw', 's.raw', 'write -P 1 0 4k', 'write -P 2 64k 64k',
       'write -P 3 300k 1k', 'write -P 4 1M 3M', 'write -P 5 8188k 4k',
       'write -P 6 5M 512', 'write -P 0 6M 64k')
    img('create', '-q', '-f', 'raw', 'odd.raw', '100000')
    io('raw', 'odd.raw', 'write -P 7 99000 1000')
    img('create', '-q', '-f', 'qcow2', 's.qcow2', '8M')
    io('qcow2', 's.qcow2', 'write -P 1 0 4k', 'write -P 2 64k 64k',
       'write -z 512k 64k', 'write -c -P 4 1M 1M', 'write -P 5 7M 1M')
    img('create', '-q', '-f', 'qcow2', 'base.qcow2', '8M')
    io('qcow2', 'base.qcow2', 'write -P 1 0 4k', 'write -P 2 64k 64k',
       'write -P 3 4M 1M')
    img('create', '-q', '-f', 'qcow2', '-b', 'base.qcow2', '-F', 'qcow2',
        'top.qcow2', '8M')
    io('qcow2', 'top.qcow2', 'write -P 3 300k 1k', 'write -P 4 1M 512k',
       'write -z 64k 4k', 'write -z 4M 64k')

    def fmt_of(name):
        return 'qcow2' if name.endswith('.qcow2') else 'raw'

    def strip_offsets(text):
        return re.sub(r', "offset": [0-9]+', '', text)

    # (options, sources, target extension)
    cases = [
        ([], ['s.raw'], 'raw'),
        (['-S', '0'], ['s.raw'], 'raw'),
        (['-S', '64k'], ['s.raw'], 'raw'),
        (['-W', '-m', '16'], ['s.raw'], 'raw'),
        (['-m', '1'], ['s.qcow2'], 'raw'),
        ([], ['odd.raw'], 'raw'),
        ([], ['s.raw', 'odd.raw', 's.qcow2'], 'raw'),
        ([], ['top.qcow2'], 'raw'),
        (['-O', 'qcow2'], ['s.raw'], 'qcow2'),
        (['-O', 'qcow2', '-S', '0'], ['s.raw'], 'qcow2'),
        (['-O', 'qcow2', '-c'], ['s.raw'], 'qcow2'),
        (['-O', 'qcow2', '-c', '-W'], ['s.qcow2'], 'qcow2'),
        (['-O', 'qcow2', '-o', 'cluster_size=4k'], ['s.qcow2'], 'qcow2'),
        (['-O', 'qcow2', '-o', 'compat=0.10'], ['s.qcow2'], 'qcow2'),
        (['-O', 'qcow2'], ['top.qcow2'], 'qcow2'),
        (['-O', 'qcow2', '-B', 'base.qcow2', '-F', 'qcow2'], ['top.qcow2'],
         'qcow2'),
        (['-p'], ['s.raw'], 'raw'),
        (['-q', '-p', '-O', 'qcow2'], ['s.raw'], 'qcow2'),
        (['-O', 'qcow2', '-B', 'base.qcow2'], ['top.qcow2'], 'qcow2'),
        (['-c'], ['s.raw'], 'raw'),
        (['-O', 'bogus'], ['s.raw'], 'raw'),
        (['-S', '1000'], ['s.raw'], 'raw'),
        (['-n'], ['s.raw'], 'raw'),
    ]

    failures = []
    for opts, srcs, ext in cases:
        outs = {}
        res = {}
        for tool, tag in ((qemu_img, 'qemu'), (qb, 'qblock')):
            out = 'out-%s.%s' % (tag, ext)
            if os.path.exists(os.path.join(d, out)):
                os.unlink(os.path.join(d, out))
            res[tag] = t.run([tool, 'convert'] + opts + srcs + [out])
            outs[tag] = out
        what = 'convert %s' % ' '.join(opts + srcs)
        try:
            t.check_same(what, res['qemu'], res['qblock'],
                         filters=(t.filter_prog,
                                  lambda s: s.replace('out-qemu', 'OUT')
                                             .replace('out-qblock', 'OUT')))
            if res['qemu'].rc != 0:
                continue
            fmt = fmt_of(outs['qemu'])
            cmp = t.run([qemu_img, 'compare', '-s', '-f', fmt, '-F', fmt,
                         outs['qemu'], outs['qblock']])
            if cmp.rc != 0:
                # Strict mode also compares block status; report both.
                loose = t.run([qemu_img, 'compare', '-f', fmt, '-F', fmt,
                               outs['qemu'], outs['qblock']])
                raise t.Failure('%s: results differ: %s / %s'
                                % (what, cmp.out.strip(), loose.out.strip()))
            maps = [t.run([qemu_img, 'map', '--output=json', '-f', fmt, o]).out
                    for o in (outs['qemu'], outs['qblock'])]
            if fmt == 'qcow2':
                maps = [strip_offsets(m) for m in maps]
            dm = t.diff(maps[0], maps[1])
            if dm:
                raise t.Failure('%s: allocation differs:\n%s' % (what, dm))
            if fmt == 'qcow2':
                chk = t.run([qemu_img, 'check', outs['qblock']])
                t.check(chk.rc == 0, '%s: check failed: %s'
                        % (what, chk.out + chk.err))
        except t.Failure as e:
            failures.append(str(e))

    # Round trips made by qblock alone, judged by the real qemu-img.
    for src in ('s.raw', 'odd.raw'):
        for opts in ([], ['-c'], ['-o', 'cluster_size=512']):
            r1 = t.run([qb, 'convert', '-f', 'raw', '-O', 'qcow2'] + opts +
                       [src, 'rt.qcow2'])
            r2 = t.run([qb, 'convert', '-f', 'qcow2', '-O', 'raw',
                        'rt.qcow2', 'rt.raw'])
            cmp = t.run([qemu_img, 'compare', '-f', 'raw', '-F', 'raw', src,
                         'rt.raw'])
            cmp2 = t.run([qemu_img, 'compare', '-f', 'raw', '-F', 'qcow2',
                          src, 'rt.qcow2'])
            if r1.rc or r2.rc or cmp.rc or cmp2.rc:
                failures.append('round trip %s %s: %s %s %s %s %s' % (
                    src, opts, r1.err, r2.err, cmp.out, cmp2.out, cmp2.err))

    if failures:
        raise t.Failure('%d problems:\n%s' % (len(failures),
                                              '\n'.join(failures)))
    print('%d conversions identical, round trips ok' % len(cases))


if __name__ == '__main__':
    sys.exit(t.main(main))
