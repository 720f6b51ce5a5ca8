# A recording NBD proxy (Python standard library only) for iotests that
# must see what an NBD *client* puts on the wire: it listens on a Unix
# socket, forwards every connection to an upstream server byte for byte,
# and parses the client's side of the stream (the options it sends, then
# each request with its framing: compact 28-byte or extended 32-byte
# header, command, flags, offset and length).  The server's side is
# forwarded unparsed.  Values are those of the NBD protocol specification.
#
# Every socket has a timeout and every thread is a daemon, so a stuck peer
# fails the test instead of hanging it.

import os
import socket
import struct
import threading

OPTS_MAGIC = b'IHAVEOPT'
REQUEST_MAGIC = 0x25609513
EXT_REQUEST_MAGIC = 0x21e41c71
CMD_WRITE = 1
CMD_FLAG_PAYLOAD_LEN = 1 << 5
OPT_EXPORT_NAME = 1
OPT_GO = 7

CMD_NAMES = {0: 'READ', 1: 'WRITE', 2: 'DISC', 3: 'FLUSH', 4: 'TRIM',
             5: 'CACHE', 6: 'WRITE_ZEROES', 7: 'BLOCK_STATUS'}
OPT_NAMES = {1: 'EXPORT_NAME', 2: 'ABORT', 3: 'LIST', 5: 'STARTTLS',
             6: 'INFO', 7: 'GO', 8: 'STRUCTURED_REPLY',
             9: 'LIST_META_CONTEXT', 10: 'SET_META_CONTEXT',
             11: 'EXTENDED_HEADERS'}


class Closed(Exception):
    pass


class Proxy:
    """Listen on path; forward to upstream (a Unix socket path).  Each
    client connection appends its events to self.log as tuples:
    ('opt', NAME) and ('req', 'compact'|'extended', CMD, flags, offset,
    length)."""

    def __init__(self, path, upstream, timeout=30):
        self.path = path
        self.upstream = upstream
        self.timeout = timeout
        self.log = []
        self.lock = threading.Lock()
        self.idle = threading.Condition(self.lock)
        self.active = 0          # client connections still being read
        if os.path.exists(path):
            os.unlink(path)
        self.lsock = socket.socket(socket.AF_UNIX)
        self.lsock.bind(path)
        self.lsock.listen(8)
        self.lsock.settimeout(0.2)
        self.stopping = False
        self.threads = []
        t = threading.Thread(target=self._accept_loop, daemon=True)
        t.start()
        self.threads.append(t)

    def _record(self, ev):
        with self.lock:
            self.log.append(ev)

    def take_log(self, timeout=5):
        """The events so far.  Waits (bounded) until every client
        connection has been read to its end: a client that exits right
        after sending DISC has not necessarily had it recorded yet."""
        with self.lock:
            self.idle.wait_for(lambda: self.active == 0, timeout)
            log, self.log = self.log, []
        return log

    def _accept_loop(self):
        while not self.stopping:
            try:
                c, _ = self.lsock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            u = socket.socket(socket.AF_UNIX)
            u.settimeout(self.timeout)
            c.settimeout(self.timeout)
            try:
                u.connect(self.upstream)
            except OSError:
                c.close()
                continue
            with self.lock:
                self.active += 1
            for fn in (self._client_to_server, self._server_to_client):
                t = threading.Thread(target=fn, args=(c, u), daemon=True)
                t.start()
                self.threads.append(t)

    @staticmethod
    def _recv(s, n):
        b = b''
        while len(b) < n:
            chunk = s.recv(n - len(b))
            if not chunk:
                raise Closed()
            b += chunk
        return b

    def _server_to_client(self, c, u):
        try:
            while True:
                b = u.recv(65536)
                if not b:
                    break
                c.sendall(b)
        except OSError:
            pass
        finally:
            for s in (c, u):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def _client_to_server(self, c, u):
        def fwd(n):
            b = self._recv(c, n)
            u.sendall(b)
            return b

        try:
            fwd(4)                                  # client flags
            transmission = False
            while not transmission:
                hdr = fwd(16)
                if hdr[:8] != OPTS_MAGIC:
                    return
                opt, ln = struct.unpack('>II', hdr[8:])
                self._record(('opt', OPT_NAMES.get(opt, str(opt))))
                # skip the payload in bounded pieces
                while ln:
                    n = min(ln, 65536)
                    fwd(n)
                    ln -= n
                if opt in (OPT_GO, OPT_EXPORT_NAME):
                    # another option follows only if this one failed
                    head = self._recv(c, 4)
                    u.sendall(head)
                    if head != OPTS_MAGIC[:4]:
                        transmission = True
                        pending = head
                    else:
                        rest = fwd(12)
                        # re-enter the option loop with the header read
                        opt, ln = struct.unpack('>II', rest[4:])
                        self._record(('opt', OPT_NAMES.get(opt, str(opt))))
                        while ln:
                            n = min(ln, 65536)
                            fwd(n)
                            ln -= n
                        if opt in (OPT_GO, OPT_EXPORT_NAME):
                            head = fwd(4)
                            transmission = True
                            pending = head
            while True:
                magic = struct.unpack('>I', pending)[0]
                if magic == REQUEST_MAGIC:
                    rest = fwd(24)
                    flags, cmd, _h, off, ln = struct.unpack('>HHQQI', rest)
                    mode = 'compact'
                    payload = ln if cmd == CMD_WRITE else 0
                elif magic == EXT_REQUEST_MAGIC:
                    rest = fwd(28)
                    flags, cmd, _h, off, ln = struct.unpack('>HHQQQ', rest)
                    mode = 'extended'
                    payload = ln if (cmd == CMD_WRITE or
                                     flags & CMD_FLAG_PAYLOAD_LEN) else 0
                else:
                    self._record(('garbage', hex(magic)))
                    return
                self._record(('req', mode, CMD_NAMES.get(cmd, str(cmd)),
                              flags, off, ln))
                while payload:
                    n = min(payload, 1 << 20)
                    fwd(n)
                    payload -= n
                pending = fwd(4)
        except (Closed, OSError):
            pass
        finally:
            try:
                u.shutdown(socket.SHUT_WR)
            except OSError:
                pass
            with self.lock:
                self.active -= 1
                self.idle.notify_all()

    def close(self):
        self.stopping = True
        self.lsock.close()
        for t in self.threads:
            t.join(5)
        if os.path.exists(self.path):
            os.unlink(self.path)
