#!/usr/bin/env python3
"""qblock-img info vs qemu-img info on raw images: human and JSON output,
--backing-chain, -f, -U, --image-opts, json: filenames and the error cases
must be byte-identical after replacing the program name.
"""
import os
import sys

import interop as t


def main():
    qemu = t.qemu_tool('qemu-img')
    qb = t.qblock_tool('qblock-img')
    d = t.scratch_dir()

    # Images of several sizes and allocation states, made by qemu-img so
    # that the only thing under test is info.
    images = {
        'empty.raw': ['0'],
        'small.raw': ['512'],
        'one-mib.raw': ['1M'],
        'odd.raw': ['12345678'],
        # size_to_str corners: unit switch at 1000, three digits.
        's1023k.raw': ['1023k'],
        's1000k.raw': ['1000k'],
        's999k.raw': ['999k'],
        's1537.raw': ['1537'],
        's100000.raw': ['100000'],
        's1t.raw': ['1T'],
        's15t.raw': ['15T'],
        'big.raw': ['1536M'],
        'falloc.raw': ['-o', 'preallocation=falloc', '2M'],
        'full.raw': ['-o', 'preallocation=full', '1M'],
        'name with spaces.raw': ['64k'],
        'uml\u00e4ut-\u20ac.raw': ['3k'],
    }
    for name, args in images.items():
        r = t.run([qemu, 'create', '-q', '-f', 'raw'] +
                  args[:-1] + [name, args[-1]])
        t.check(r.rc == 0, 'qemu-img create %s failed: %s' % (name, r.err))
    # A file with data in the middle (actual-size differs from 4 KiB).
    with open(os.path.join(d, 'one-mib.raw'), 'r+b') as f:
        f.seek(300 * 1024)
        f.write(b'\xa5' * 70000)

    cases = []
    for name in images:
        for extra in ([], ['--output=json'], ['--output=human'],
                      ['-f', 'raw'], ['-U'], ['--backing-chain'],
                      ['--backing-chain', '--output=json']):
            cases.append(['info'] + extra + [name])
        cases.append(['info', '--output=json', os.path.join(d, name)])
    cases += [
        ['info', '--image-opts',
         'driver=raw,file.driver=file,file.filename=one-mib.raw'],
        ['info', '--output=json', '--image-opts',
         'driver=file,filename=small.raw'],
        ['info', '-f', 'file', 'odd.raw'],
        ['info', '--image-opts', 'small.raw'],
        ['info', '--image-opts', 'small.raw,driver=raw'],
        ['info', '--image-opts', 'driver=raw,small.raw'],
        ['info', '--image-opts',
         'driver=raw,file.filename=small.raw,read-only'],
        ['info', '--image-opts', 'driver=raw,file.filename=small.raw,id=x'],
        ['info', '--image-opts',
         'small.raw,driver=raw,file.filename=small.raw'],
        ['info', '-U', '--image-opts', 'driver=raw,file.filename=small.raw'],
        ['info', 'json:{"driver": "raw", "file": {"driver": "file", '
                 '"filename": "small.raw"}}'],
        # Errors.
        ['info'],
        ['info', 'a', 'b'],
        ['info', '--output=xml', 'small.raw'],
        ['info', '--output'],
        ['info', '-x', 'small.raw'],
        ['info', 'does-not-exist.raw'],
        ['info', '-f', 'raw', '--image-opts', 'driver=raw'],
    ]

    failures = []
    for argv in cases:
        ref = t.run([qemu] + argv)
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
