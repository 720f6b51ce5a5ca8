#!/usr/bin/env python3
"""qblock-img's top-level command line vs qemu-img's: usage errors, unknown
commands and options, missing arguments, -T handling; same stdout, stderr
and exit status after replacing the program name.  (--help and --version
name the program and its version, so only their exit status and the
shape of the help are checked.)
"""
import sys

import interop as t


def main():
    qemu = t.qemu_tool('qemu-img')
    qb = t.qblock_tool('qblock-img')
    r = t.run([qemu, 'create', '-q', '-f', 'raw', 'a.raw', '1M'])
    t.check(r.rc == 0, r.err)

    cases = [
        [], ['foo'], ['-x'], ['-x', 'info'], ['--bogus'], ['-T'],
        ['info', '-c'], ['bench', '-c'], ['create', '-o'], ['info'],
        ['bench'], ['create'], ['info', '--bogus', 'a.raw'],
        ['-T', 'foo', 'info', 'a.raw'],
        ['-T', 'enable=foo,file=/dev/null', 'info', 'a.raw'],
        ['-T', 'foo*', 'info', 'a.raw'],
        ['-T', 'events=/dev/null', 'info', 'a.raw'],
    ]
    failures = []
    for argv in cases:
        try:
            t.check_same(' '.join(argv) or '(no args)',
                         t.run([qemu] + argv), t.run([qb] + argv))
        except t.Failure as e:
            failures.append(str(e))

    for argv in (['--help'], ['-h'], ['info', '-h'], ['bench', '--help']):
        a, b = t.run([qemu] + argv), t.run([qb] + argv)
        if a.rc != b.rc:
            failures.append('%s: exit %d vs %d' % (argv, a.rc, b.rc))
        for needle in ('usage: qblock-img [standard options] command '
                       '[command options]', 'Command syntax:',
                       '  info [--object objectdef] [--image-opts] [-f fmt] '
                       '[--output=ofmt] [--backing-chain] [-U] filename',
                       'Supported formats:'):
            if needle not in b.out:
                failures.append('%s: help lacks %r' % (argv, needle))
    v = t.run([qb, '--version'])
    if v.rc != 0 or not v.out.startswith('qblock-img version '):
        failures.append('--version: %r' % v.out)

    if failures:
        raise t.Failure('\n'.join(failures))
    print('%d cases identical' % len(cases))


if __name__ == '__main__':
    sys.exit(t.main(main))
