#!/usr/bin/env python3
"""The embedding example (docs/examples/embed.c, built as docs/embed) runs,
passes its own checks, and leaves an image that qemu-img agrees with:
raw, 4 MiB, with the pattern it wrote.
"""
import os
import sys
import time

import interop as t


def main():
    exe = t.qblock_tool('embed')
    d = t.scratch_dir()
    img = os.path.join(d, 'embed.raw')
    start = time.monotonic()
    r = t.run([exe, img], timeout=60)
    elapsed = time.monotonic() - start
    print(r.out, end='')
    t.check(r.rc == 0, 'embed exited %d:\n%s%s' % (r.rc, r.out, r.err))
    for line in ('created %s (4194304 bytes)' % img,
                 'read back 8 chunks of 65536 bytes (driven by poll on '
                 'qblock_get_fd)',
                 'read past the end: Input/output error',
                 "error: Could not open 'does-not-exist.raw': ",
                 'all checks passed'):
        t.check(line in r.out, 'missing output line %r' % line)
    t.check('FAILED' not in r.out, 'a check failed')
    # Each poll() in the example is capped at 1 s: a run that long means
    # completions did not wake the fd.
    t.check(elapsed < 0.9, 'example took %.2fs: fd wakeups lost?' % elapsed)

    # The image it left behind, as the real QEMU sees it.
    with open(img, 'rb') as f:
        data = f.read()
    t.check(len(data) == 4 * 1024 * 1024, 'image size %d' % len(data))
    chunk = 64 * 1024
    t.check(data[:chunk] == bytes(chunk), 'first chunk not zeroed')
    for i in range(1, 8):
        off = i * 2 * chunk
        t.check(data[off:off + chunk] == bytes([i + 1]) * chunk,
                'chunk %d has wrong contents' % i)
        t.check(data[off - chunk:off] == bytes(chunk),
                'gap before chunk %d not zero' % i)
    try:
        qemu = t.qemu_tool('qemu-img')
    except t.Skip:
        return 0
    r = t.run([qemu, 'info', '--output=json', '-f', 'raw', img])
    t.check(r.rc == 0 and '"virtual-size": 4194304' in r.out,
            'qemu-img info: %s%s' % (r.out, r.err))


if __name__ == '__main__':
    sys.exit(t.main(main))
