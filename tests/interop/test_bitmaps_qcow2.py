#!/usr/bin/env python3
"""Persistent dirty bitmaps in qcow2 across qblock and QEMU 7.2.

1. Bitmaps qblock-img writes (with qblock-io writes recorded in them) are
   listed identically by the real `qemu-img info` (json and human) as for
   the same steps done with qemu-img / qemu-io, real `qemu-img check` is
   clean, and the serialized bits read straight from the file are equal.
2. Bitmaps real QEMU writes load in qblock with the same bits: the SHA-256
   of qblock-storage-daemon's x-debug-block-dirty-bitmap-sha256 equals
   qemu-storage-daemon's and the one computed from the file.
3. A bitmap-unaware write (autoclear bit 0 cleared by hand) makes both
   tools print the same warning; a qblock rw open drops the extension and
   real `qemu-img check` then reports the same leaks.

Env: QBLOCK_BUILD, QBLOCK_SRC.  Exit 0 pass, 77 skip, 1 fail.
"""
import hashlib
import json
import os
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import interop  # noqa: E402
from interop import run, check, check_same  # noqa: E402

sys.path.insert(0, os.path.join(interop.SRC, 'tests', 'iotests'))
from qmp import Daemon  # noqa: E402


def read_bitmaps(path):
    """{name: (flags, granularity, sha256 of serialized bits)} from the
    file (qcow2-bitmaps.md §1-4), independent of both implementations."""
    with open(path, 'rb') as f:
        data = f.read()
    cluster_bits = struct.unpack('>I', data[20:24])[0]
    cs = 1 << cluster_bits
    size = struct.unpack('>Q', data[24:32])[0]
    autoclear = struct.unpack('>Q', data[88:96])[0]
    hlen = struct.unpack('>I', data[100:104])[0]
    off, ext = hlen, None
    while off + 8 <= cs:
        magic, ln = struct.unpack('>II', data[off:off + 8])
        if magic == 0:
            break
        if magic == 0x23852875:
            ext = data[off + 8:off + 8 + ln]
        off += 8 + ((ln + 7) & ~7)
    out = {}
    if ext is None or not autoclear & 1:
        return out
    nb, _, dsize, doff = struct.unpack('>IIQQ', ext)
    d = data[doff:doff + dsize]
    p = 0
    for _ in range(nb):
        toff, tsize, flags, typ, gbits, nsz, extra = struct.unpack(
            '>QIIBBHI', d[p:p + 24])
        name = d[p + 24 + extra:p + 24 + extra + nsz].decode()
        p += (24 + extra + nsz + 7) & ~7
        gran = 1 << gbits
        nbits = (size + gran - 1) // gran
        nbytes = 8 * ((nbits + 63) // 64)
        bits = bytearray()
        for i in range(tsize):
            e = struct.unpack('>Q', data[toff + 8 * i:toff + 8 * i + 8])[0]
            o = e & 0x00fffffffffffe00
            if o:
                bits += data[o:o + cs]
            else:
                bits += (b'\xff' if e & 1 else b'\0') * cs
        out[name] = (flags, gran,
                     hashlib.sha256(bytes(bits[:nbytes])).hexdigest())
    return out


def info(img, fmt_json):
    args = ['qemu-img', 'info'] + (['--output=json'] if fmt_json else [])
    r = run(args + [img])
    check(r.rc == 0, 'qemu-img info failed: %s' % r.err)
    return r.out


def daemon_sha(binary, img, names):
    with Daemon(binary, ['--blockdev',
                         'driver=file,node-name=f0,filename=%s' % img,
                         '--blockdev', 'driver=qcow2,node-name=q0,file=f0,'
                         'read-only=on']) as d:
        res = {}
        for n in names:
            r = d.cmd('x-debug-block-dirty-bitmap-sha256', node='q0', name=n)
            r = r.get('return', r) if isinstance(r, dict) else r
            res[n] = r['sha256'] if isinstance(r, dict) and 'sha256' in r \
                else repr(r)
        q = d.cmd('query-named-block-nodes')
    return res, q


def make(tool_img, tool_io, img):
    """The same steps with either tool set."""
    for argv in (['create', '-q', '-f', 'qcow2', img, '64M'],
                 ['bitmap', '--add', img, 'en'],
                 ['bitmap', '--add', '-g', '512', img, 'fine'],
                 ['bitmap', '--add', '--disable', img, 'dis'],
                 ['bitmap', '--add', '-g', '2M', img, 'coarse']):
        r = run([tool_img] + argv)
        check(r.rc == 0, '%s %s: %s' % (tool_img, argv, r.err))
    r = run([tool_io, '-c', 'write 1M 4k', '-c', 'write 40M 3M',
             '-c', 'write 63M 1M', img])
    check(r.rc == 0, '%s: %s' % (tool_io, r.err))
    r = run([tool_img, 'bitmap', '--enable', '--clear', img, 'dis'])
    check(r.rc == 0, 'enable/clear: %s' % r.err)
    r = run([tool_io, '-c', 'write 5M 64k', img])
    check(r.rc == 0, '%s: %s' % (tool_io, r.err))
    r = run([tool_img, 'bitmap', '--disable', img, 'fine'])
    check(r.rc == 0, 'disable: %s' % r.err)


def main():
    qimg = interop.qblock_tool('qblock-img')
    qio = interop.qblock_tool('qblock-io')
    qsd_ours = interop.qblock_tool('qblock-storage-daemon')
    for t in ('qemu-img', 'qemu-io', 'qemu-storage-daemon'):
        interop.qemu_tool(t)
    w = interop.scratch_dir()
    ref, ours = os.path.join(w, 'ref.qcow2'), os.path.join(w, 'ours.qcow2')

    # 1. qblock writes, QEMU reads.
    make('qemu-img', 'qemu-io', ref)
    make(qimg, qio, ours)
    for js in (False, True):
        a, b = info(ref, js), info(ours, js)
        if js:
            a = json.loads(a)['format-specific']
            b = json.loads(b)['format-specific']
            check(a == b, 'info json differs:\n%s\n%s' % (a, b))
        else:
            a = a[a.index('Format specific'):]
            b = b[b.index('Format specific'):]
            check(a == b, 'info human differs:\n' + interop.diff(a, b))
    r = run(['qemu-img', 'check', ours])
    check(r.rc == 0 and 'No errors' in r.out,
          'check of qblock image: %s %s' % (r.out, r.err))
    bits_ref, bits_ours = read_bitmaps(ref), read_bitmaps(ours)
    check(bits_ref == bits_ours, 'bits differ:\n%s\n%s' % (bits_ref,
                                                          bits_ours))
    check(len(bits_ref) == 4, 'expected 4 bitmaps: %s' % bits_ref)

    # 2. QEMU writes, qblock loads the same bits.
    names = sorted(bits_ref)
    sha_q, _ = daemon_sha('qemu-storage-daemon', ref, names)
    sha_o, q = daemon_sha(qsd_ours, ref, names)
    check(sha_q == sha_o, 'daemon sha256 differ:\n%s\n%s' % (sha_q, sha_o))
    for n in names:
        check(sha_q[n] == bits_ref[n][2],
              'file bits of %s differ from qemu: %s' % (n, sha_q[n]))
    # in qblock's RAM too, not only the driver's file: qblock-io writes on
    # a QEMU image land in the bitmaps QEMU stored.
    r = run([qio, '-c', 'write 10M 64k', ref])
    check(r.rc == 0, 'qblock-io on qemu image: %s' % r.err)
    r = run(['qemu-io', '-c', 'write 10M 64k', ours])
    check(r.rc == 0, 'qemu-io on qblock image: %s' % r.err)
    check(read_bitmaps(ref) == read_bitmaps(ours),
          'after cross writes bits differ')
    r = run(['qemu-img', 'check', ref])
    check(r.rc == 0, 'check after qblock write: %s' % r.out)

    # 3. Stale bitmaps (autoclear bit 0 cleared by an unaware writer).
    stale = {}
    for tag, tool in (('q', 'qemu-io'), ('o', qio)):
        img = os.path.join(w, 'stale-%s.qcow2' % tag)
        make('qemu-img', 'qemu-io', img)
        with open(img, 'r+b') as f:
            f.seek(88)
            ac = struct.unpack('>Q', f.read(8))[0]
            f.seek(88)
            f.write(struct.pack('>Q', ac & ~1))
        r = run([tool, '-c', 'write 0 4k', img])
        c = run(['qemu-img', 'check', '--output=json', img])
        ci = json.loads(c.out)
        stale[tag] = (interop.filter_prog(r.err), c.rc, ci.get('leaks'),
                      read_bitmaps(img), 'bitmaps' in info(img, False))
    check(stale['q'] == stale['o'], 'stale handling differs:\n%s\n%s'
          % (stale['q'], stale['o']))
    check(stale['o'][1] == 3 and stale['o'][2], 'expected leaks: %s'
          % (stale['o'],))
    return 0


if __name__ == '__main__':
    sys.exit(interop.main(main))
