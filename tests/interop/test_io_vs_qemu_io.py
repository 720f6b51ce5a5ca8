#!/usr/bin/env python3
"""qblock-io vs qemu-io: the same command scripts on raw images give the
same output (timings and program names filtered), the same exit status
and the same image contents afterwards.
"""
import os
import sys

import interop as t

# Each script runs as one process: a list of -c commands plus options.
SCRIPTS = [
    ('basic write/read', ['-f', 'raw'], [
        'write -P 0xab 0 64k',
        'read -P 0xab 0 64k',
        'read -P 0 64k 64k',
        'write -P 0x11 1000 3000',
        'read -v 990 40',
        'read -P 0x11 1000 3000',
        'length',
    ]),
    ('zeroes, discard, flush', ['-f', 'raw'], [
        'write -P 0x22 0 128k',
        'write -z 4k 8k',
        'read -P 0 4k 8k',
        'read -P 0x22 12k 4k',
        'discard 64k 64k',
        'flush',
        'read -P 0x22 0 4k',
    ]),
    ('vectored and aio', ['-f', 'raw'], [
        'writev -P 0x33 0 4k 8k 512',
        'readv -P 0x33 0 4k 8k 512',
        # One aio request at a time: the completion order of concurrent
        # ones depends on timing, in QEMU as well.
        'aio_write -P 0x44 256k 64k',
        'aio_flush',
        'aio_write -P 0x45 320k 64k',
        'aio_flush',
        'read -P 0x44 256k 64k',
        'read -P 0x45 320k 64k',
    ]),
    ('errors', ['-f', 'raw'], [
        'read 2M 512',
        'write -P 1 1048064 1024',
        'read -P 0x99 0 512',
        'read',
        'bogus-command',
        'write -P 0 0 1x',
        'read 0 0',
    ]),
    ('read-only', ['-r', '-f', 'raw'], [
        'read -P 0 0 4k',
        'write -P 1 0 4k',
    ]),
    ('probed raw', [], [
        'read -P 0 0 512',
        'write -P 0x55 4k 4k',
        'read -P 0x55 4k 4k',
    ]),
    ('map and alloc', ['-f', 'raw'], [
        'write -P 1 0 64k',
        'write -z 64k 64k',
        'alloc 0 64k',
        'map',
    ]),
]


def main():
    qemu = t.qemu_tool('qemu-io')
    qemu_img = t.qemu_tool('qemu-img')
    qb = t.qblock_tool('qblock-io')
    d = t.scratch_dir()

    failures = []
    for name, opts, cmds in SCRIPTS:
        imgs = []
        for tag in ('qa', 'qb'):
            img = '%s-%s.raw' % (tag, name.replace(' ', '_')
                                 .replace(',', '').replace('/', '_'))
            r = t.run([qemu_img, 'create', '-q', '-f', 'raw', img, '1M'])
            t.check(r.rc == 0, r.err)
            imgs.append(img)
        argv = []
        for c in cmds:
            argv += ['-c', c]
        ref = t.run([qemu] + opts + argv + [imgs[0]])
        got = t.run([qb] + opts + argv + [imgs[1]])
        try:
            t.check_same(name, ref, got, filters=(
                t.filter_prog, t.filter_timing,
                lambda s: s.replace(imgs[0], 'IMG').replace(imgs[1], 'IMG')))
            with open(os.path.join(d, imgs[0]), 'rb') as fa, \
                    open(os.path.join(d, imgs[1]), 'rb') as fb:
                t.check(fa.read() == fb.read(),
                        '%s: image contents differ' % name)
        except t.Failure as e:
            failures.append(str(e))
    if failures:
        raise t.Failure('%d of %d scripts differ:\n%s'
                        % (len(failures), len(SCRIPTS), '\n'.join(failures)))
    print('%d scripts identical' % len(SCRIPTS))


if __name__ == '__main__':
    sys.exit(t.main(main))
