# A scriptable fake NBD server (Python standard library only) for iotests
# that check how the NBD client driver copes with a broken or hostile
# server: replies a correct server never sends (a simple reply where a
# structured chunk is required, chunks outside the request), replies cut
# in the middle, a connection that stops taking requests.  The
# negotiation is fixed newstyle with STRUCTURED_REPLY, SET_META_CONTEXT
# base:allocation and GO, and never extended headers, so both qblock's
# client and QEMU 7.2's see the same server and the goldens can be proven
# with --oracle.
#
# The server runs in a thread of the test, serves one client per
# accept, and hands every request to the test's handler, which answers
# with the helpers of Conn.  Every socket operation has a timeout, so a
# client that stops talking ends the thread instead of hanging the test.

import os
import socket
import struct
import threading
import time

from nbdraw import (INIT_MAGIC, OPTS_MAGIC, REP_MAGIC, SIMPLE_REPLY_MAGIC,
                    STRUCTURED_REPLY_MAGIC, OPT_GO, OPT_STRUCTURED_REPLY,
                    OPT_SET_META_CONTEXT, REP_ACK, REP_INFO,
                    REP_META_CONTEXT, INFO_EXPORT, INFO_BLOCK_SIZE,
                    CMD_DISC)

REP_ERR_UNSUP = 2**31 + 1
META_ID = 1
TIMEOUT = 20


class Closed(Exception):
    """The client closed the connection."""


class Conn:
    """One client connection, as the handler sees it."""

    def __init__(self, sock):
        self.sock = sock
        self.requests = 0

    def recvn(self, n):
        b = b''
        while len(b) < n:
            d = self.sock.recv(n - len(b))
            if not d:
                raise Closed()
            b += d
        return b

    def send(self, data):
        self.sock.sendall(data)

    def simple(self, handle, error=0, data=b''):
        self.send(struct.pack('>IIQ', SIMPLE_REPLY_MAGIC, error, handle) +
                  data)

    @staticmethod
    def chunk_bytes(flags, ctype, handle, payload=b''):
        return struct.pack('>IHHQI', STRUCTURED_REPLY_MAGIC, flags, ctype,
                           handle, len(payload)) + payload

    def chunk(self, flags, ctype, handle, payload=b''):
        self.send(self.chunk_bytes(flags, ctype, handle, payload))

    @staticmethod
    def simple_bytes(handle, error=0, data=b''):
        return struct.pack('>IIQ', SIMPLE_REPLY_MAGIC, error, handle) + data

    def send_trickle(self, data, step=1, delay=0.003):
        """Send data in pieces of step bytes, pausing between them, so
        the client sees a reply arrive in many small reads."""
        for i in range(0, len(data), step):
            self.send(data[i:i + step])
            time.sleep(delay)

    def shutdown_read(self):
        """Take no more requests: the client's next send fails (EPIPE on
        a Unix socket), while what we send still reaches it."""
        self.sock.shutdown(socket.SHUT_RD)


def _opt_reply(sock, opt, rtype, data=b''):
    sock.sendall(struct.pack('>QIII', REP_MAGIC, opt, rtype, len(data)) +
                 data)


def _negotiate(conn, size, max_block):
    sock = conn.sock
    sock.sendall(struct.pack('>QQH', INIT_MAGIC, OPTS_MAGIC, 3))
    conn.recvn(4)
    while True:
        _, opt, ln = struct.unpack('>QII', conn.recvn(16))
        data = conn.recvn(ln)
        if opt == OPT_STRUCTURED_REPLY:
            _opt_reply(sock, opt, REP_ACK)
        elif opt == OPT_SET_META_CONTEXT:
            nlen = struct.unpack('>I', data[:4])[0]
            pos = 4 + nlen
            nq = struct.unpack('>I', data[pos:pos + 4])[0]
            pos += 4
            for _ in range(nq):
                ql = struct.unpack('>I', data[pos:pos + 4])[0]
                pos += 4
                q = data[pos:pos + ql]
                pos += ql
                if q == b'base:allocation':
                    _opt_reply(sock, opt, REP_META_CONTEXT,
                               struct.pack('>I', META_ID) + q)
            _opt_reply(sock, opt, REP_ACK)
        elif opt == OPT_GO:
            # HAS_FLAGS | SEND_FLUSH | CAN_MULTI_CONN... kept minimal:
            # flags 1 (has flags) | 4 (flush) | 512 (df).
            _opt_reply(sock, opt, REP_INFO,
                       struct.pack('>HQH', INFO_EXPORT, size, 1 | 4 | 512))
            if max_block:
                _opt_reply(sock, opt, REP_INFO,
                           struct.pack('>HIII', INFO_BLOCK_SIZE, 1, 4096,
                                       max_block))
            _opt_reply(sock, opt, REP_ACK)
            return
        else:
            _opt_reply(sock, opt, REP_ERR_UNSUP)


class FakeServer:
    """Listens on the Unix socket path; handler(conn, flags, cmd, handle,
    offset, length) answers each request (a WRITE's payload has been read
    already).  Serves clients one after another until close()."""

    def __init__(self, path, handler, size=1 << 20, max_block=0):
        self.path = path
        self.handler = handler
        self.size = size
        self.max_block = max_block
        self.errors = []
        if os.path.exists(path):
            os.unlink(path)
        self.lsock = socket.socket(socket.AF_UNIX)
        self.lsock.bind(path)
        self.lsock.listen(4)
        self.lsock.settimeout(TIMEOUT)
        self.stop = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _serve(self, conn):
        _negotiate(conn, self.size, self.max_block)
        while True:
            _, flags, cmd, handle, off, ln = struct.unpack(
                '>IHHQQI', conn.recvn(28))
            if cmd == CMD_DISC:
                return
            if cmd == 1:
                conn.recvn(ln)
            conn.requests += 1
            self.handler(conn, flags, cmd, handle, off, ln)

    def _run(self):
        while not self.stop:
            try:
                c, _ = self.lsock.accept()
            except OSError:
                return
            c.settimeout(TIMEOUT)
            conn = Conn(c)
            try:
                self._serve(conn)
            except (Closed, OSError):
                pass
            except Exception as e:      # a bug in the test's handler
                self.errors.append(repr(e))
            c.close()

    def close(self):
        self.stop = True
        try:
            self.lsock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.lsock.close()
        self.thread.join(TIMEOUT)
        if os.path.exists(self.path):
            os.unlink(self.path)
        if self.errors:
            raise AssertionError('fake server: ' + '; '.join(self.errors))
