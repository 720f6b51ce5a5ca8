#!/usr/bin/env python3
"""qblock-img bench vs qemu-img bench: the same output lines (timing
filtered), the same option errors, and for write runs the same file
contents afterwards (--pattern, -o, -S, wrap-around at the image end).
"""
import os
import sys

import interop as t


def main():
    qemu = t.qemu_tool('qemu-img')
    qb = t.qblock_tool('qblock-img')
    d = t.scratch_dir()

    def fresh(name, size='1M'):
        r = t.run([qemu, 'create', '-q', '-f', 'raw', name, size])
        t.check(r.rc == 0, r.err)

    # O_DIRECT needs a real file system; the scratch dir is in the build dir.
    cases = [
        ['-c', '1000'],
        ['-c', '0'],
        ['-c', '100', '-d', '1'],
        ['-c', '100', '-d', '2000'],
        ['-c', '500', '-s', '64k', '-S', '0'],
        ['-c', '500', '-s', '512', '-S', '8k', '-o', '4095'],
        ['-c', '100', '-q', '--no-drain'],
        ['-c', '200', '-t', 'none', '-i', 'native', '-d', '32'],
        ['-c', '200', '-t', 'none', '-n'],
        ['-c', '200', '-t', 'writethrough'],
        ['-c', '200', '-t', 'directsync', '-i', 'threads'],
        ['-c', '200', '-t', 'unsafe', '-U'],
        ['-c', '100', '-i', 'native'],
        ['-c', '1', '-o', '2M'],
        ['-c', 'x'],
        ['-c', '-1'],
        ['-d', 'x'],
        ['-s', '1x'],
        ['-S', '1x'],
        ['-o', 'x'],
        ['-t', 'bogus'],
        ['-i', 'bogus'],
        ['--pattern=300'],
        ['--flush-interval=5'],
        ['-w', '--flush-interval=5'],
        ['-w', '-U', '-c', '1'],
        ['-f', 'qcow2', '-c', '1'],
        ['-x'],
        ['-c'],
    ]
    write_cases = [
        ['-w', '-c', '300', '--pattern=0xab'],
        ['-w', '-c', '300', '-d', '4', '--flush-interval=10',
         '--pattern=17'],
        ['-w', '-c', '300', '-d', '4', '--flush-interval=4', '--no-drain',
         '--pattern=3'],
        ['-w', '-c', '700', '-s', '4k', '-S', '6k', '-o', '1000',
         '--pattern=0x5a'],
        ['-w', '-c', '50', '-s', '64k', '-t', 'none', '-i', 'native',
         '--pattern=1'],
        ['-w', '-c', '3', '-s', '64k', '-d', '1', '-o', '236k'],
        ['-w', '-c', '2', '-s', '64k', '-d', '1', '-o', '176k'],
        ['-w', '-c', '40', '-s', '60k', '-S', '64k', '-d', '3',
         '--pattern=0x11', '-t', 'writethrough'],
    ]
    failures = []
    fresh('r.raw')
    for argv in cases:
        extra = [] if '-f' in argv else ['-f', 'raw']
        ref = t.run([qemu, 'bench'] + extra + argv + ['r.raw'])
        got = t.run([qb, 'bench'] + extra + argv + ['r.raw'])
        try:
            t.check_same('bench ' + ' '.join(argv), ref, got,
                         filters=(t.filter_prog, t.filter_timing))
        except t.Failure as e:
            failures.append(str(e))
    for argv in write_cases:
        fresh('wa.raw', '300k')
        fresh('wb.raw', '300k')
        ref = t.run([qemu, 'bench', '-f', 'raw'] + argv + ['wa.raw'])
        got = t.run([qb, 'bench', '-f', 'raw'] + argv + ['wb.raw'])
        try:
            t.check_same('bench ' + ' '.join(argv), ref, got,
                         filters=(t.filter_prog, t.filter_timing))
            if ref.rc != 0:
                continue    # failed mid-run: contents depend on timing
            with open(os.path.join(d, 'wa.raw'), 'rb') as fa, \
                    open(os.path.join(d, 'wb.raw'), 'rb') as fb:
                t.check(fa.read() == fb.read(),
                        'bench %s: file contents differ' % ' '.join(argv))
        except t.Failure as e:
            failures.append(str(e))
    n = len(cases) + len(write_cases)
    if failures:
        raise t.Failure('%d of %d cases differ:\n%s'
                        % (len(failures), n, '\n'.join(failures)))
    print('%d cases identical' % n)


if __name__ == '__main__':
    sys.exit(t.main(main))
