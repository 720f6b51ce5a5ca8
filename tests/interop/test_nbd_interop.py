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

Env: QBLOCK_BUILD, QBLOCK_SRC.  Exit 0 pass, 77 skip, 1 fail.
"""
import os
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
        check(simple_reply() == 28, 'write past EOF not ENOSPC')
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
    return 0


if __name__ == '__main__':
    sys.exit(interop.main(main))
