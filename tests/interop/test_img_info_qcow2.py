#!/usr/bin/env python3
"""qblock-img info vs qemu-img info on qcow2 images made by qemu-img:
options, backing chains, persistent bitmaps (enabled, disabled), human
and JSON forms, --backing-chain.  Skips when qblock has no qcow2 driver.
"""
import sys

import interop as t


def main():
    qemu = t.qemu_tool('qemu-img')
    qb = t.qblock_tool('qblock-img')
    h = t.run([qb, '--help'])
    if ' qcow2' not in h.out.split('Supported formats:')[-1]:
        raise t.Skip('qblock-img has no qcow2 driver yet')

    def mk(*argv):
        r = t.run([qemu] + list(argv))
        t.check(r.rc == 0, '%s: %s' % (argv, r.err))

    mk('create', '-q', '-f', 'raw', 'base.raw', '4M')
    mk('create', '-q', '-f', 'qcow2', 'plain.qcow2', '4M')
    mk('create', '-q', '-f', 'qcow2', '-o',
       'cluster_size=4k,lazy_refcounts=on,refcount_bits=8', 'opts.qcow2',
       '1G')
    mk('create', '-q', '-f', 'qcow2', '-o', 'compression_type=zstd',
       'zstd.qcow2', '3M')
    mk('create', '-q', '-f', 'qcow2', '-o', 'compat=0.10', 'v2.qcow2',
       '1M')
    mk('create', '-q', '-f', 'qcow2', '-b', 'base.raw', '-F', 'raw',
       'mid.qcow2')
    mk('create', '-q', '-f', 'qcow2', '-b', 'mid.qcow2', '-F', 'qcow2',
       'top.qcow2')
    mk('create', '-q', '-f', 'qcow2', 'bm.qcow2', '4M')
    mk('bitmap', '--add', 'bm.qcow2', 'en')
    mk('bitmap', '--add', '-g', '512', 'bm.qcow2', 'dis')
    mk('bitmap', '--disable', 'bm.qcow2', 'dis')
    r = t.run(['qemu-io', '-f', 'qcow2', '-c', 'write -P 1 0 300k',
               'plain.qcow2'])
    # A dirty image: lazy refcounts and a process that dies mid-way.
    mk('create', '-q', '-f', 'qcow2', '-o', 'lazy_refcounts=on',
       'dirty.qcow2', '1M')
    t.run(['qemu-io', '-f', 'qcow2', '-c', 'write 0 64k', '-c', 'abort',
           'dirty.qcow2'])

    failures = []
    n = 0
    for img in ('plain.qcow2', 'opts.qcow2', 'zstd.qcow2', 'v2.qcow2',
                'mid.qcow2', 'top.qcow2', 'bm.qcow2', 'dirty.qcow2'):
        for extra in ([], ['--output=json'], ['--backing-chain'],
                      ['--backing-chain', '--output=json'], ['-f', 'qcow2'],
                      ['-U']):
            argv = ['info'] + extra + [img]
            n += 1
            try:
                t.check_same(' '.join(argv), t.run([qemu] + argv),
                             t.run([qb] + argv))
            except t.Failure as e:
                failures.append(str(e))
    if failures:
        raise t.Failure('%d of %d cases differ:\n%s'
                        % (len(failures), n, '\n'.join(failures)))
    print('%d cases identical' % n)


if __name__ == '__main__':
    sys.exit(t.main(main))
