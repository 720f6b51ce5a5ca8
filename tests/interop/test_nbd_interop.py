#!/usr/bin/env python3
"""NBD interop: qblock-nbd against the real NBD peers, and qblock's NBD
client against a real qemu-nbd.

Checks:
  1. `nbdinfo --map` (base:allocation and qemu:allocation-depth) of a
     qblock-nbd export equals that of a qemu-nbd export of the same image;
     `qemu-nbd -L` prints the same listing for both servers.
  2. Real qemu-io writes through a qblock-nbd export; real `qemu-img
     compare` then reads the export and finds it identical to a local copy
     written by qemu-io directly.
  3. qblock-io reads and writes a real qemu-nbd export with the same
     results as qemu-io.
  4. Hostile clients (garbage, bad magic, huge option and request lengths,
     early disconnects, 8 concurrent clients) leave the server serving.
  5. `nbdinfo --map` of base:allocation, qemu:allocation-depth and
     qemu:dirty-bitmap:NAME (an enabled and a disabled bitmap) of a
     qblock-storage-daemon export equals that of a qemu-storage-daemon
     export of the same qcow2 image (block-export-add over QMP).
  6. `nbdcopy` copies a qblock-nbd export bit-exactly into a file, and a
     file bit-exactly into a writable qblock-nbd export.
  7. qblock's client (qblock-img map with x-dirty-bitmap, qblock-io) reads a
     real `qemu-nbd -B` export and its dirty-bitmap context as the real
     qemu-img / qemu-io do.

Env: QBLOCK_BUILD, QBLOCK_SRC.  Exit 0 pass, 77 skip, 1 fail.
"""
import filecmp
import os
import shutil
import socket
import struct
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import interop  # noqa: E402
from interop import check, run  # noqa: E402


class Server:
    """A server process on a Unix socket, killed on exit."""

    def __init__(self, argv, sock):
        self.sock = sock
        if os.path.exists(sock):
            os.unlink(sock)
        self.p = subprocess.Popen(argv, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE)
        for _ in range(200):              # bounded: 10 s
            if os.path.exists(sock) or self.p.poll() is not None:
                break
            time.sleep(0.05)
        if not os.path.exists(sock):
            self.stop()
            raise interop.Failure('server did not start: %r: %s' % (
                argv, self.p.stderr.read().decode(errors='replace')))

    def uri(self, export=''):
        return 'nbd+unix:///%s?socket=%s' % (export, self.sock)

    def alive(self):
        return self.p.poll() is None

    def stop(self):
        if self.p.poll() is None:
            self.p.terminate()
            try:
                self.p.wait(10)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.stop()


def make_image(d, name):
    qemu_io = interop.qemu_tool('qemu-io')
    img = os.path.join(d, name)
    with open(img, 'wb') as f:
        f.truncate(8 * 1024 * 1024)
    r = run([qemu_io, '-f', 'raw', '-c', 'write -P 0x11 0 64k',
             '-c', 'write -P 0x22 1M 192k', '-c', 'write -z 2M 64k',
             '-c', 'write -P 0x33 7M 4k', img])
    check(r.rc == 0, 'qemu-io setup failed: %s' % r.err)
    return img


def check_maps(d, qnbd, qemu_nbd, nbdinfo):
    img = make_image(d, 'map.raw')
    maps = {}
    for tag, tool in (('qemu', qemu_nbd), ('qblock', qnbd)):
        sock = os.path.join(d, '%s.sock' % tag)
        with Server([tool, '-k', sock, '-f', 'raw', '-r', '-t', '-A',
                     '-x', 'e', '-D', 'desc', img], sock) as s:
            out = []
            for ctx in ('base:allocation', 'qemu:allocation-depth'):
                r = run([nbdinfo, '--map=' + ctx, s.uri('e')])
                check(r.rc == 0, '%s: nbdinfo --map=%s: %s' % (tag, ctx, r.err))
                out.append(r.out)
            r = run([qemu_nbd, '-L', '-k', sock])
            check(r.rc == 0, '%s: qemu-nbd -L failed: %s' % (tag, r.err))
            out.append(r.out)
            r = run([nbdinfo, '--list', s.uri()])
            check(r.rc == 0, '%s: nbdinfo --list failed: %s' % (tag, r.err))
            out.append(r.out.replace(sock, 'SOCK'))
        maps[tag] = out
    for i, what in enumerate(('base:allocation map', 'allocation-depth map',
                              'qemu-nbd -L', 'nbdinfo --list')):
        d_ = interop.diff(maps['qemu'][i], maps['qblock'][i])
        check(not d_, '%s differs:\n%s' % (what, d_))


def check_qemu_io_through_qblock(d, qnbd, qemu_io, qemu_img):
    img = make_image(d, 'rw.raw')
    ref = make_image(d, 'ref.raw')
    cmds = ['-c', 'write -P 0x44 100k 300k', '-c', 'write -z 1M 64k',
            '-c', 'discard 3M 64k', '-c', 'write -P 0x55 8388000 608',
            '-c', 'flush']
    r = run([qemu_io, '-f', 'raw'] + cmds + [ref])
    check(r.rc == 0, 'qemu-io on the reference failed: %s' % r.err)
    sock = os.path.join(d, 'rw.sock')
    with Server([qnbd, '-k', sock, '-f', 'raw', '-t', '-e', '2', img],
                sock) as s:
        r = run([qemu_io, '-f', 'raw'] + cmds + [s.uri()])
        check(r.rc == 0 and 'error' not in r.out.lower(),
              'qemu-io through qblock-nbd failed: %s %s' % (r.out, r.err))
        r = run([qemu_io, '-f', 'raw', '-c', 'read -P 0x44 100k 300k',
                 '-c', 'read -P 0 1M 64k', '-c', 'read -P 0x55 8388000 608',
                 s.uri()])
        check(r.rc == 0 and 'Pattern verification failed' not in r.out,
              'read-back through qblock-nbd failed: %s %s' % (r.out, r.err))
        r = run([qemu_img, 'compare', '-f', 'raw', '-F', 'raw', ref,
                 s.uri()])
        check(r.rc == 0, 'qemu-img compare through qblock-nbd: %s %s'
              % (r.out, r.err))
    r = run([qemu_img, 'compare', '-f', 'raw', '-F', 'raw', ref, img])
    check(r.rc == 0, 'image written through qblock-nbd differs: %s' % r.out)


def check_qblock_client(d, qbio, qemu_io, qemu_nbd):
    img = make_image(d, 'client.raw')
    sock = os.path.join(d, 'qn.sock')
    cmds = ['-c', 'read -P 0x11 0 64k', '-c', 'read -P 0x22 1M 192k',
            '-c', 'read -P 0 2M 64k', '-c', 'write -P 0x66 5M 12k',
            '-c', 'read -P 0x66 5M 12k', '-c', 'write -z 5M 4k',
            '-c', 'read -P 0 5M 4k', '-c', 'flush']
    res = {}
    for tag, tool in (('qemu', qemu_io), ('qblock', qbio)):
        with Server([qemu_nbd, '-k', sock, '-f', 'raw', '-t', '-x', 'ex',
                     img], sock) as s:
            res[tag] = run([tool, '-f', 'raw'] + cmds + [s.uri('ex')])
            res[tag + '-bad'] = run([tool, '-f', 'raw', '-c', 'read 0 1',
                                     s.uri('nope')])
    for k in ('', '-bad'):
        a, b = res['qemu' + k], res['qblock' + k]
        f = (interop.filter_prog, interop.filter_timing)
        interop.check_same('client%s' % k, a, b, filters=f)


def handshake(sock_path):
    """Connect and negotiate GO on '' with structured replies."""
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(5)
    s.connect(sock_path)
    greet = recv_exact(s, 18)
    check(greet[:8] == b'NBDMAGIC', 'bad greeting %r' % greet)
    s.sendall(struct.pack('>I', 3))
    return s


def recv_exact(s, n):
    buf = b''
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            break
        buf += chunk
    return buf


def opt(s, o, data=b''):
    s.sendall(struct.pack('>QII', 0x49484156454F5054, o, len(data)) + data)


def read_opt_reply(s):
    hdr = recv_exact(s, 20)
    if len(hdr) < 20:
        return None
    magic, o, typ, ln = struct.unpack('>QIII', hdr)
    return typ, recv_exact(s, ln)


def check_hostile(d, qnbd, nbdinfo):
    img = make_image(d, 'hostile.raw')
    sock = os.path.join(d, 'h.sock')
    with Server([qnbd, '-k', sock, '-f', 'raw', '-t', '-e', '20', img],
                sock) as srv:
        # Garbage and early disconnects.
        for payload in (b'', b'\x00' * 3, os.urandom(64), b'x' * 4000):
            s = socket.socket(socket.AF_UNIX)
            s.settimeout(5)
            s.connect(sock)
            if payload:
                try:
                    s.sendall(payload)
                except OSError:
                    pass
            s.close()
        # Unknown client flags: the server must hang up.
        s = socket.socket(socket.AF_UNIX)
        s.settimeout(5)
        s.connect(sock)
        recv_exact(s, 18)
        s.sendall(struct.pack('>I', 0xffff))
        check(recv_exact(s, 1) == b'', 'server accepted unknown flags')
        s.close()
        # Unknown option -> ERR_UNSUP; meta before structured -> INVALID;
        # unknown export -> ERR_UNKNOWN; huge option length -> hang up.
        s = handshake(sock)
        opt(s, 99)
        check(read_opt_reply(s)[0] == 0x80000001, 'unknown option not UNSUP')
        opt(s, 10, struct.pack('>I', 0) + struct.pack('>I', 0))
        check(read_opt_reply(s)[0] == 0x80000003,
              'SET_META_CONTEXT before structured not INVALID')
        opt(s, 7, struct.pack('>I', 4) + b'nope' + struct.pack('>H', 0))
        r = read_opt_reply(s)
        check(r[0] == 0x80000006 and b"export 'nope' not present" in r[1],
              'unknown export: %r' % (r,))
        opt(s, 8, b'x')
        check(read_opt_reply(s)[0] == 0x80000003, 'STRUCTURED with data')
        s.sendall(struct.pack('>QII', 0x49484156454F5054, 1, 0xfffffff0))
        check(recv_exact(s, 1) == b'', 'huge option accepted')
        s.close()
        # Transmission: bad requests get errors, huge writes a hang-up.
        s = handshake(sock)
        opt(s, 7, struct.pack('>I', 0) + struct.pack('>H', 0))
        for _ in range(10):
            r = read_opt_reply(s)
            if r is None or r[0] == 1:
                break
        check(r is not None and r[0] == 1, 'GO failed: %r' % (r,))

        def req(t, off, ln, flags=0, handle=7):
            s.sendall(struct.pack('>IHHQQI', 0x25609513, flags, t, handle,
                                  off, ln))

        def simple_reply():
            hdr = recv_exact(s, 16)
            check(len(hdr) == 16, 'no reply')
            magic, err, h = struct.unpack('>IIQ', hdr)
            check(magic == 0x67446698, 'bad reply magic')
            return err

        req(0, 1 << 62, 512)                       # read past EOF
        check(simple_reply() == 22, 'read past EOF not EINVAL')
        req(0, 0, 64 * 1024 * 1024)                # read too large
        check(simple_reply() == 22, 'huge read not EINVAL')
        req(1, (8 << 20) - 1, 2)                   # write past EOF
        s.sendall(b'ab')
        # QEMU 7.2 says EINVAL, the NBD spec suggests ENOSPC; the exact
        # code is pinned down by iotest 339.
        check(simple_reply() in (22, 28), 'write past EOF not an error')
        req(7, 0, 512)                             # block status w/o meta
        check(simple_reply() == 22, 'block status without meta')
        req(0, 0, 512, flags=0x8000)               # unknown flag
        check(simple_reply() == 22, 'unknown flag accepted')
        req(0, 0, 4096)
        check(simple_reply() == 0 and len(recv_exact(s, 4096)) == 4096,
              'good read failed')
        req(1, 0, 0x7fffffff)                      # absurd write payload
        check(recv_exact(s, 1) == b'', 'absurd write not dropped')
        s.close()
        # A client disconnecting with requests in flight.
        s = handshake(sock)
        opt(s, 7, struct.pack('>I', 0) + struct.pack('>H', 0))
        for _ in range(10):
            r = read_opt_reply(s)
            if r is None or r[0] == 1:
                break
        for i in range(16):
            s.sendall(struct.pack('>IHHQQI', 0x25609513, 0, 0, i,
                                  0, 1 << 20))
        s.close()
        # Still serving, and serving many at once.
        check(srv.alive(), 'server died')
        procs = [subprocess.Popen([nbdinfo, '--map', srv.uri()],
                                  stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE) for _ in range(8)]
        outs = [p.communicate(timeout=30) for p in procs]
        check(all(p.returncode == 0 for p in procs),
              'concurrent clients failed: %r' % [o[1] for o in outs])
        check(len(set(o[0] for o in outs)) == 1, 'concurrent maps differ')
        check(srv.alive(), 'server died after concurrent clients')


def make_bitmap_image(d, name):
    """A qcow2 image with data, zeroes, holes and two persistent bitmaps:
    'live' (enabled) and 'old' (disabled), dirtied by different writes."""
    qemu_img = interop.qemu_tool('qemu-img')
    qemu_io = interop.qemu_tool('qemu-io')
    img = os.path.join(d, name)
    r = run([qemu_img, 'create', '-q', '-f', 'qcow2', img, '16M'])
    check(r.rc == 0, 'qemu-img create: %s' % r.err)
    r = run([qemu_io, '-f', 'qcow2', '-c', 'write -P 1 0 1M',
             '-c', 'write -z 2M 256k', img])
    check(r.rc == 0, 'qemu-io setup: %s' % r.err)
    for args in (['--add', '-g', '65536', img, 'old'],
                 ['--add', img, 'live']):
        r = run([qemu_img, 'bitmap'] + args)
        check(r.rc == 0, 'qemu-img bitmap %r: %s' % (args, r.err))
    r = run([qemu_io, '-f', 'qcow2', '-c', 'write -P 2 512k 64k',
             '-c', 'write -P 3 5M 1M', '-c', 'write -P 4 16711168 512', img])
    check(r.rc == 0, 'qemu-io writes: %s' % r.err)
    r = run([qemu_img, 'bitmap', '--disable', img, 'live'])
    r = run([qemu_img, 'bitmap', '--enable', img, 'old'])
    r = run([qemu_io, '-f', 'qcow2', '-c', 'write -P 5 9M 128k', img])
    r = run([qemu_img, 'bitmap', '--disable', img, 'old'])
    r = run([qemu_img, 'bitmap', '--enable', img, 'live'])
    check(r.rc == 0, 'qemu-img bitmap: %s' % r.err)
    return img


def check_daemon_maps(d, ours, qsd, nbdinfo):
    sys.path.insert(0, os.path.join(interop.SRC, 'tests', 'iotests'))
    import qmp
    src = make_bitmap_image(d, 'dm.qcow2')
    contexts = ('base:allocation', 'qemu:allocation-depth',
                'qemu:dirty-bitmap:live', 'qemu:dirty-bitmap:old')
    maps = {}
    for tag, binary in (('qemu', qsd), ('qblock', ours)):
        img = os.path.join(d, 'dm-%s.qcow2' % tag)
        shutil.copyfile(src, img)
        sock = os.path.join(d, 'dm-%s.sock' % tag)
        dm = qmp.Daemon(binary, [
            '--blockdev', 'file,node-name=f0,filename=' + img,
            '--blockdev', 'qcow2,node-name=q0,file=f0'], sockdir=d)
        try:
            for name, args in (
                    ('nbd-server-start', {'addr': {'type': 'unix',
                                                   'data': {'path': sock}}}),
                    ('block-export-add', {'type': 'nbd', 'id': 'e0',
                                          'node-name': 'q0', 'name': 'disk',
                                          'writable': True,
                                          'allocation-depth': True,
                                          'bitmaps': ['live', 'old']})):
                r = dm.cmd_raw(name, args)
                check(r == {'return': {}}, '%s: %s %r' % (tag, name, r))
            out = []
            for ctx in contexts:
                r = run([nbdinfo, '--map=' + ctx,
                         'nbd+unix:///disk?socket=' + sock])
                check(r.rc == 0, '%s: nbdinfo --map=%s: %s' % (tag, ctx, r.err))
                out.append(r.out)
            maps[tag] = out
        finally:
            dm.shutdown()
    for i, ctx in enumerate(contexts):
        d_ = interop.diff(maps['qemu'][i], maps['qblock'][i])
        check(not d_, 'daemon export: nbdinfo --map=%s differs:\n%s'
              % (ctx, d_))
    check(maps['qemu'][2] != maps['qemu'][3] and '1  dirty' in maps['qemu'][2],
          'the bitmaps of the test image are not distinct: %r' % maps['qemu'])


def check_nbdcopy(d, qnbd, nbdcopy):
    src = make_image(d, 'copy-src.raw')
    with open(src, 'r+b') as f:                 # some noise everywhere
        for i in range(0, 8 << 20, 1 << 20):
            f.seek(i + 4096 * (i >> 20))
            f.write(os.urandom(3000))
    sock = os.path.join(d, 'copy.sock')
    out = os.path.join(d, 'copy-out.raw')
    with Server([qnbd, '-k', sock, '-f', 'raw', '-r', '-t', '-x', 'src',
                 src], sock) as s:
        r = run([nbdcopy, s.uri('src'), out])
        check(r.rc == 0, 'nbdcopy out of qblock-nbd: %s' % r.err)
    check(filecmp.cmp(src, out, shallow=False),
          'nbdcopy out of a qblock-nbd export is not bit-exact')
    dst = os.path.join(d, 'copy-dst.raw')
    with open(dst, 'wb') as f:
        f.write(b'\xee' * (8 << 20))           # must be overwritten, zeroes too
    with Server([qnbd, '-k', sock, '-f', 'raw', '-t', '-x', 'dst', dst],
                sock) as s:
        r = run([nbdcopy, src, s.uri('dst')])
        check(r.rc == 0, 'nbdcopy into qblock-nbd: %s' % r.err)
    check(filecmp.cmp(src, dst, shallow=False),
          'nbdcopy into a qblock-nbd export is not bit-exact')


def check_client_bitmap(d, qbimg, qbio, qemu_img, qemu_io, qemu_nbd):
    img = make_bitmap_image(d, 'cb.qcow2')
    sock = os.path.join(d, 'cb.sock')
    res = {}
    with Server([qemu_nbd, '-k', sock, '-f', 'qcow2', '-r', '-t', '-x', 'e',
                 '-B', 'live', '-B', 'old', '-A', img], sock):
        for tag, imgtool, iotool in (('qemu', qemu_img, qemu_io),
                                     ('qblock', qbimg, qbio)):
            out = []
            for ctx in ('qemu:dirty-bitmap:live', 'qemu:dirty-bitmap:old'):
                r = run([imgtool, 'map', '--output=json', '--image-opts',
                         'driver=nbd,server.type=unix,server.path=%s,'
                         'export=e,x-dirty-bitmap=%s' % (sock, ctx)])
                check(r.rc == 0, '%s: map of %s: %s' % (tag, ctx, r.err))
                out.append(r.out)
            r = run([imgtool, 'map', '--output=json', '-f', 'raw',
                     'nbd+unix:///e?socket=' + sock])
            check(r.rc == 0, '%s: map: %s' % (tag, r.err))
            out.append(r.out)
            r = run([iotool, '-r', '-f', 'raw', '-c', 'read -P 1 0 512k',
                     '-c', 'read -P 2 512k 64k', '-c', 'read -P 3 5M 1M',
                     '-c', 'read -P 5 9M 128k', '-c', 'read -P 0 2M 256k',
                     'nbd+unix:///e?socket=' + sock])
            check(r.rc == 0 and 'verification failed' not in r.out,
                  '%s: reads through the export: %s %s' % (tag, r.out, r.err))
            out.append(interop.filter_timing(interop.filter_prog(r.out)))
            res[tag] = out
    for i, what in enumerate(('dirty-bitmap live', 'dirty-bitmap old',
                              'base:allocation', 'reads')):
        d_ = interop.diff(res['qemu'][i], res['qblock'][i])
        check(not d_, 'qblock client vs qemu client on qemu-nbd, %s:\n%s'
              % (what, d_))


def main():
    qnbd = interop.qblock_tool('qblock-nbd')
    qbio = interop.qblock_tool('qblock-io')
    qemu_nbd = interop.qemu_tool('qemu-nbd')
    qemu_io = interop.qemu_tool('qemu-io')
    qemu_img = interop.qemu_tool('qemu-img')
    nbdinfo = interop.qemu_tool('nbdinfo')
    d = interop.scratch_dir()
    check_maps(d, qnbd, qemu_nbd, nbdinfo)
    check_qemu_io_through_qblock(d, qnbd, qemu_io, qemu_img)
    check_qblock_client(d, qbio, qemu_io, qemu_nbd)
    check_hostile(d, qnbd, nbdinfo)
    check_daemon_maps(d, interop.qblock_tool('qblock-storage-daemon'),
                      interop.qemu_tool('qemu-storage-daemon'), nbdinfo)
    check_nbdcopy(d, qnbd, interop.qemu_tool('nbdcopy'))
    check_client_bitmap(d, interop.qblock_tool('qblock-img'), qbio, qemu_img,
                        qemu_io, qemu_nbd)
    return 0


if __name__ == '__main__':
    sys.exit(interop.main(main))
