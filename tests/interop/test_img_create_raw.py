#!/usr/bin/env python3
"""qblock-img create -f raw vs qemu-img create: the 'Formatting' line, the
errors, the -o help listings and the resulting file (size, allocation as
seen by qemu-img info) must be identical.
"""
import os
import sys

import interop as t


def main():
    qemu = t.qemu_tool('qemu-img')
    qb = t.qblock_tool('qblock-img')
    d = t.scratch_dir()

    # (args before the filename, args after it); the filename is appended
    # per tool so both create distinct files.
    ok_cases = [
        (['-f', 'raw'], ['1M']),
        (['-f', 'raw'], ['0']),
        (['-f', 'raw'], ['1']),
        (['-f', 'raw'], ['513']),
        (['-f', 'raw'], ['1.5k']),
        (['-f', 'raw'], ['1G']),
        (['-f', 'raw'], ['10T']),
        (['-f', 'raw', '-o', 'preallocation=falloc,extent_size_hint=1M'],
         ['1k']),
        ([], ['2M']),
        (['-q', '-f', 'raw'], ['1M']),
        (['-f', 'raw', '-o', 'size=4k'], []),
        (['-f', 'raw', '-o', 'size=1k,size=2k'], []),
        (['-f', 'raw', '-o', 'preallocation=falloc'], ['1M']),
        (['-f', 'raw', '-o', 'preallocation=full'], ['300k']),
        (['-f', 'raw', '-o', 'preallocation=off'], ['1M']),
        (['-f', 'raw', '-o', 'nocow=on,extent_size_hint=1M'], ['1k']),
        (['-f', 'raw', '-o', 'preallocation=falloc', '-o', 'nocow=off'],
         ['8k']),
        (['-f', 'file'], ['1M']),
    ]
    err_cases = [
        [],
        ['-f', 'raw'],
        ['-f', 'raw', 'FILE'],
        ['-f', 'raw', 'FILE', '1x'],
        ['-f', 'raw', 'FILE', '-5'],
        ['-f', 'raw', 'FILE', '9E'],
        ['-f', 'raw', 'FILE', '64kb'],
        ['-f', 'raw', 'FILE', '8E'],
        ['-f', 'raw', 'FILE', '3P'],
        ['-f', 'raw', 'FILE', '8191P'],
        ['-f', 'raw', '-o', 'size=8191P', 'FILE'],
        ['-f', 'raw', '-o', ',,', 'FILE', '1k'],
        ['-f', 'raw', '-o', ',size=1k', 'FILE'],
        ['-f', 'raw', '-o', 'size=1k,', 'FILE'],
        ['-f', 'raw', '-o', 'size=1k,,,', 'FILE'],
        ['-f', 'raw', '-o', '', 'FILE', '1k'],
        ['-f', 'raw', '-o', 'size=', 'FILE'],
        ['-f', 'raw', '-o', 'size=-1', 'FILE'],
        ['-f', 'raw', '-o', 'preallocation=off,,x', 'FILE', '1k'],
        ['-f', 'raw', 'FILE', '1M', '2'],
        ['-f', 'bogus', 'FILE', '1M'],
        ['-f', 'raw', '-o', 'size=1x', 'FILE'],
        ['-f', 'raw', '-o', 'size=4k', 'FILE', '1k'],
        ['-f', 'raw', '-o', 'bogus=1', 'FILE', '1k'],
        ['-f', 'raw', '-o', 'nocow=maybe', 'FILE', '1k'],
        ['-f', 'raw', '-o', 'preallocation=bogus', 'FILE', '1k'],
        ['-f', 'raw', '-b', 'base.raw', 'FILE', '1M'],
        ['-f', 'raw', 'nonexistent-dir/FILE', '1M'],
        ['-f', 'raw', '-o', 'help'],
        ['-o', 'help'],
        ['-f', 'raw', '-o', 'help', 'FILE'],
        ['-f', 'raw', '-o', '?', 'FILE'],
        ['-f', 'raw', '-Z', 'FILE'],
    ]

    failures = []
    n = 0
    for i, (pre, post) in enumerate(ok_cases):
        a, b = 'q%d.raw' % i, 'b%d.raw' % i
        ref = t.run([qemu, 'create'] + pre + [a] + post)
        got = t.run([qb, 'create'] + pre + [b] + post)
        n += 1
        try:
            t.check_same('create %s' % ' '.join(pre + post),
                         ref, got,
                         filters=(t.filter_prog,
                                  lambda s: s.replace(a, 'IMG')
                                  .replace(b, 'IMG')))
            t.check(ref.rc == 0, 'qemu-img failed on %r' % (pre + post))
            sa = os.stat(os.path.join(d, a))
            sb = os.stat(os.path.join(d, b))
            t.check(sa.st_size == sb.st_size,
                    '%r: file size %d (qemu) vs %d (qblock)'
                    % (pre + post, sa.st_size, sb.st_size))
            # The image as qemu-img sees it: allocation and size identical.
            ia = t.run([qemu, 'info', '-f', 'raw', '--output=json', a])
            ib = t.run([qemu, 'info', '-f', 'raw', '--output=json', b])
            t.check(ia.out.replace(a, 'IMG') == ib.out.replace(b, 'IMG'),
                    '%r: qemu-img info differs:\n%s'
                    % (pre + post, t.diff(ia.out, ib.out)))
        except t.Failure as e:
            failures.append(str(e))

    for argv in err_cases:
        n += 1
        ra = [x.replace('FILE', 'ea.raw') for x in argv]
        rb = [x.replace('FILE', 'eb.raw') for x in argv]
        ref = t.run([qemu, 'create'] + ra)
        got = t.run([qb, 'create'] + rb)
        try:
            t.check_same('create %s' % ' '.join(argv), ref, got,
                         filters=(t.filter_prog,
                                  lambda s: s.replace('ea.raw', 'IMG')
                                  .replace('eb.raw', 'IMG')))
        except t.Failure as e:
            failures.append(str(e))
        for f in ('ea.raw', 'eb.raw'):
            if os.path.exists(os.path.join(d, f)):
                os.unlink(os.path.join(d, f))
    if failures:
        raise t.Failure('%d of %d cases differ:\n%s'
                        % (len(failures), n, '\n'.join(failures)))
    print('%d cases identical' % n)


if __name__ == '__main__':
    sys.exit(t.main(main))
