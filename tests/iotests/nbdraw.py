# A small raw NBD protocol client (Python standard library only) for
# iotests that must speak the protocol byte by byte: option negotiation in
# any order, requests with compact or extended (NBD_OPT_EXTENDED_HEADERS)
# headers, any flags and lengths, and reply parsing that reports exactly
# what came back (simple, structured or extended reply headers, chunk
# types, error codes) so a test can print it and compare against a golden
# output.  Values are those of the NBD protocol specification.
#
# Every socket operation has a timeout, so a server that stops answering
# fails the test instead of hanging it.

import socket
import struct

INIT_MAGIC = 0x4e42444d41474943
OPTS_MAGIC = 0x49484156454f5054
REP_MAGIC = 0x0003e889045565a9
REQUEST_MAGIC = 0x25609513
EXT_REQUEST_MAGIC = 0x21e41c71
SIMPLE_REPLY_MAGIC = 0x67446698
STRUCTURED_REPLY_MAGIC = 0x668e33ef
EXT_REPLY_MAGIC = 0x6e8a278c

FLAG_FIXED_NEWSTYLE = 1
FLAG_NO_ZEROES = 2

OPT_EXPORT_NAME = 1
OPT_ABORT = 2
OPT_LIST = 3
OPT_STARTTLS = 5
OPT_INFO = 6
OPT_GO = 7
OPT_STRUCTURED_REPLY = 8
OPT_LIST_META_CONTEXT = 9
OPT_SET_META_CONTEXT = 10
OPT_EXTENDED_HEADERS = 11

REP_ACK = 1
REP_SERVER = 2
REP_INFO = 3
REP_META_CONTEXT = 4
REP_NAMES = {1: 'ACK', 2: 'SERVER', 3: 'INFO', 4: 'META_CONTEXT',
             2**31 + 1: 'ERR_UNSUP', 2**31 + 2: 'ERR_POLICY',
             2**31 + 3: 'ERR_INVALID', 2**31 + 4: 'ERR_PLATFORM',
             2**31 + 5: 'ERR_TLS_REQD', 2**31 + 6: 'ERR_UNKNOWN',
             2**31 + 7: 'ERR_SHUTDOWN', 2**31 + 8: 'ERR_BLOCK_SIZE_REQD',
             2**31 + 9: 'ERR_TOO_BIG', 2**31 + 10: 'ERR_EXT_HEADER_REQD'}

INFO_EXPORT = 0
INFO_BLOCK_SIZE = 3

CMD_READ = 0
CMD_WRITE = 1
CMD_DISC = 2
CMD_FLUSH = 3
CMD_TRIM = 4
CMD_CACHE = 5
CMD_WRITE_ZEROES = 6
CMD_BLOCK_STATUS = 7

CMD_FLAG_FUA = 1 << 0
CMD_FLAG_NO_HOLE = 1 << 1
CMD_FLAG_DF = 1 << 2
CMD_FLAG_REQ_ONE = 1 << 3
CMD_FLAG_FAST_ZERO = 1 << 4
CMD_FLAG_PAYLOAD_LEN = 1 << 5

REPLY_FLAG_DONE = 1
REPLY_TYPE_NONE = 0
REPLY_TYPE_OFFSET_DATA = 1
REPLY_TYPE_OFFSET_HOLE = 2
REPLY_TYPE_BLOCK_STATUS = 5
REPLY_TYPE_BLOCK_STATUS_EXT = 6
REPLY_TYPE_ERROR = 2**15 + 1
REPLY_TYPE_ERROR_OFFSET = 2**15 + 2
REPLY_TYPE_NAMES = {0: 'NONE', 1: 'OFFSET_DATA', 2: 'OFFSET_HOLE',
                    5: 'BLOCK_STATUS', 6: 'BLOCK_STATUS_EXT',
                    2**15 + 1: 'ERROR', 2**15 + 2: 'ERROR_OFFSET'}

# Largest payload a reply may carry before we call the server broken.
MAX_REPLY_PAYLOAD = 64 * 1024 * 1024 + 1024


class Closed(Exception):
    """The server closed the connection."""


def rep_name(t):
    return REP_NAMES.get(t, hex(t))


class Reply:
    """One reply message: a simple reply or one structured/extended chunk.
    kind is 'simple', 'structured' or 'extended'."""

    def __init__(self, kind, cookie, error=0, flags=0, rtype=None,
                 offset=None, payload=b''):
        self.kind = kind
        self.cookie = cookie
        self.error = error
        self.flags = flags
        self.type = rtype
        self.offset = offset
        self.payload = payload

    @property
    def done(self):
        return self.kind == 'simple' or bool(self.flags & REPLY_FLAG_DONE)

    def describe(self):
        """A one-line, deterministic description for golden output."""
        if self.kind == 'simple':
            return 'simple error=%d len=%d' % (self.error, len(self.payload))
        s = '%s %s%s' % (self.kind, REPLY_TYPE_NAMES.get(self.type,
                                                         hex(self.type)),
                         ' done' if self.done else '')
        if self.kind == 'extended':
            s += ' offset=%d' % self.offset
        p = self.payload
        if self.type == REPLY_TYPE_OFFSET_DATA:
            s += ' at=%d len=%d' % (struct.unpack('>Q', p[:8])[0],
                                   len(p) - 8)
        elif self.type == REPLY_TYPE_OFFSET_HOLE:
            s += ' at=%d len=%d' % struct.unpack('>QI', p[:12])
        elif self.type in (REPLY_TYPE_BLOCK_STATUS,
                           REPLY_TYPE_BLOCK_STATUS_EXT):
            ctx, ext = self.extents()
            s += ' ctx=%d %s' % (ctx, ext)
        elif self.type in (REPLY_TYPE_ERROR, REPLY_TYPE_ERROR_OFFSET):
            err, mlen = struct.unpack('>IH', p[:6])
            s += ' error=%d' % err
        return s

    def extents(self):
        """(context id, [(length, flags)...]) of a block status chunk;
        checks the descriptor count of BLOCK_STATUS_EXT against the
        length, as a client must."""
        p = self.payload
        if self.type == REPLY_TYPE_BLOCK_STATUS:
            ctx = struct.unpack('>I', p[:4])[0]
            body = p[4:]
            assert len(body) % 8 == 0 and body, 'bad BLOCK_STATUS length'
            return ctx, [struct.unpack('>II', body[i:i + 8])
                         for i in range(0, len(body), 8)]
        ctx, count = struct.unpack('>II', p[:8])
        body = p[8:]
        assert len(body) % 16 == 0 and body, 'bad BLOCK_STATUS_EXT length'
        assert count in (0, len(body) // 16), 'descriptor count mismatch'
        return ctx, [struct.unpack('>QQ', body[i:i + 16])
                     for i in range(0, len(body), 16)]

    def error_code(self):
        if self.kind == 'simple':
            return self.error
        if self.type in (REPLY_TYPE_ERROR, REPLY_TYPE_ERROR_OFFSET):
            return struct.unpack('>I', self.payload[:4])[0]
        return 0


class NBDRaw:
    def __init__(self, path=None, host=None, port=None, timeout=10):
        if path:
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.settimeout(timeout)
            self.sock.connect(path)
        else:
            self.sock = socket.create_connection((host, port), timeout)
        self.extended = False
        self.structured = False
        self.next_cookie = 1
        self.size = None
        self.eflags = None

    # --- bytes ---
    def send(self, data):
        self.sock.sendall(data)

    def recv(self, n):
        buf = b''
        while len(buf) < n:
            try:
                chunk = self.sock.recv(n - len(buf))
            except ConnectionResetError:
                chunk = b''
            if not chunk:
                raise Closed('connection closed after %d of %d bytes'
                             % (len(buf), n))
            buf += chunk
        return buf

    def is_closed(self):
        """True if the server closed the connection (waits for it up to the
        socket timeout); False if it is still open and quiet."""
        old = self.sock.gettimeout()
        self.sock.settimeout(min(old or 5, 5))
        try:
            data = self.sock.recv(1)
        except ConnectionResetError:
            return True
        except socket.timeout:
            return False
        finally:
            self.sock.settimeout(old)
        if data:
            raise AssertionError('unexpected data from the server')
        return True

    def close(self):
        self.sock.close()

    # --- handshake ---
    def greet(self, cflags=FLAG_FIXED_NEWSTYLE | FLAG_NO_ZEROES):
        magic, opts, hflags = struct.unpack('>QQH', self.recv(18))
        assert magic == INIT_MAGIC and opts == OPTS_MAGIC, 'bad greeting'
        self.send(struct.pack('>I', cflags))
        self.no_zeroes = bool(cflags & FLAG_NO_ZEROES)
        return hflags

    def send_opt(self, opt, payload=b'', length=None):
        if length is None:
            length = len(payload)
        self.send(struct.pack('>QII', OPTS_MAGIC, opt, length) + payload)

    def read_opt_reply(self):
        magic, opt, rtype, length = struct.unpack('>QIII', self.recv(20))
        assert magic == REP_MAGIC, 'bad option reply magic %#x' % magic
        assert length <= 1 << 20, 'option reply too long'
        return opt, rtype, self.recv(length)

    def opt(self, opt, payload=b''):
        """Send one option; return its replies [(type, data)] through the
        final one (ACK or an error)."""
        self.send_opt(opt, payload)
        out = []
        while True:
            ropt, rtype, data = self.read_opt_reply()
            assert ropt == opt, 'reply to option %d, expected %d' % (ropt, opt)
            out.append((rtype, data))
            if rtype == REP_ACK or rtype & 2**31:
                return out

    def opt_final(self, opt, payload=b''):
        """Name of the final reply to a simple option."""
        return rep_name(self.opt(opt, payload)[-1][0])

    def structured_reply(self):
        r = self.opt_final(OPT_STRUCTURED_REPLY)
        if r == 'ACK':
            self.structured = True
        return r

    def extended_headers(self):
        r = self.opt_final(OPT_EXTENDED_HEADERS)
        if r == 'ACK':
            self.extended = self.structured = True
        return r

    @staticmethod
    def meta_payload(export, queries):
        p = struct.pack('>I', len(export)) + export.encode()
        p += struct.pack('>I', len(queries))
        for q in queries:
            p += struct.pack('>I', len(q)) + q.encode()
        return p

    def set_meta(self, export, queries):
        """SET_META_CONTEXT: ({name: id}, final reply name)."""
        reps = self.opt(OPT_SET_META_CONTEXT, self.meta_payload(export,
                                                                queries))
        ctx = {}
        for rtype, data in reps:
            if rtype == REP_META_CONTEXT:
                ctx[data[4:].decode()] = struct.unpack('>I', data[:4])[0]
        return ctx, rep_name(reps[-1][0])

    def go(self, export='', infos=(), opt=OPT_GO):
        """GO (or INFO); returns the final reply name; sets size/eflags."""
        p = struct.pack('>I', len(export)) + export.encode()
        p += struct.pack('>H', len(infos))
        for i in infos:
            p += struct.pack('>H', i)
        reps = self.opt(opt, p)
        for rtype, data in reps:
            if rtype == REP_INFO and struct.unpack('>H', data[:2])[0] == \
                    INFO_EXPORT:
                self.size, self.eflags = struct.unpack('>QH', data[2:12])
        return rep_name(reps[-1][0])

    def export_name(self, export=''):
        """EXPORT_NAME: the server answers with size and flags, or closes."""
        self.send_opt(OPT_EXPORT_NAME, export.encode())
        self.size, self.eflags = struct.unpack('>QH', self.recv(10))
        if not self.no_zeroes:
            self.recv(124)

    # --- transmission ---
    def request(self, cmd, offset=0, length=0, flags=0, payload=b'',
                cookie=None, extended=None):
        """Send one request (extended headers if negotiated, unless
        extended= says otherwise); returns its cookie."""
        if cookie is None:
            cookie = self.next_cookie
            self.next_cookie += 1
        if extended is None:
            extended = self.extended
        if extended:
            hdr = struct.pack('>IHHQQQ', EXT_REQUEST_MAGIC, flags, cmd,
                              cookie, offset, length)
        else:
            hdr = struct.pack('>IHHQQI', REQUEST_MAGIC, flags, cmd, cookie,
                              offset, length)
        self.send(hdr + payload)
        return cookie

    def read_reply(self, read_len=None):
        """One reply message.  read_len: the payload length of a simple
        reply to a READ (the header does not say)."""
        magic = struct.unpack('>I', self.recv(4))[0]
        if magic == SIMPLE_REPLY_MAGIC:
            error, cookie = struct.unpack('>IQ', self.recv(12))
            data = self.recv(read_len) if read_len and not error else b''
            return Reply('simple', cookie, error=error, payload=data)
        if magic == STRUCTURED_REPLY_MAGIC:
            flags, rtype, cookie, length = struct.unpack('>HHQI',
                                                         self.recv(16))
            assert length <= MAX_REPLY_PAYLOAD, 'reply payload too long'
            return Reply('structured', cookie, flags=flags, rtype=rtype,
                         payload=self.recv(length))
        if magic == EXT_REPLY_MAGIC:
            flags, rtype, cookie, offset, length = \
                struct.unpack('>HHQQQ', self.recv(28))
            assert length <= MAX_REPLY_PAYLOAD, 'reply payload too long'
            return Reply('extended', cookie, flags=flags, rtype=rtype,
                         offset=offset, payload=self.recv(length))
        raise AssertionError('bad reply magic %#x' % magic)

    def replies(self, cookie, read_len=None, limit=100000):
        """All reply messages of one request, through the final one."""
        out = []
        for _ in range(limit):
            r = self.read_reply(read_len)
            assert r.cookie == cookie, 'cookie %d, expected %d' % (r.cookie,
                                                                   cookie)
            out.append(r)
            if r.done:
                return out
        raise AssertionError('no final chunk')

    def cmd(self, cmd, offset=0, length=0, flags=0, payload=b'', **kw):
        """Request + its replies."""
        c = self.request(cmd, offset, length, flags, payload, **kw)
        return self.replies(c, read_len=length if cmd == CMD_READ else None)

    def read_data(self, offset, length, flags=0):
        """READ and reassemble the data from its chunks (holes as zeroes);
        returns (bytes or None on error, replies)."""
        reps = self.cmd(CMD_READ, offset, length, flags)
        if any(r.error_code() for r in reps):
            return None, reps
        if reps[0].kind == 'simple':
            return reps[0].payload, reps
        buf = bytearray(length)
        for r in reps:
            if r.type == REPLY_TYPE_OFFSET_DATA:
                at = struct.unpack('>Q', r.payload[:8])[0] - offset
                buf[at:at + len(r.payload) - 8] = r.payload[8:]
        return bytes(buf), reps

    def disconnect(self):
        self.request(CMD_DISC)
        self.close()


def connect_go(path, export='', extended=False, structured=False,
               meta=(), go=True):
    """A client negotiated up to transmission: optional STRUCTURED_REPLY
    and EXTENDED_HEADERS (in that order), SET_META_CONTEXT for meta."""
    c = NBDRaw(path)
    c.greet()
    if structured:
        assert c.structured_reply() == 'ACK'
    if extended:
        assert c.extended_headers() == 'ACK'
    c.contexts = {}
    if meta:
        c.contexts, r = c.set_meta(export, list(meta))
        assert r == 'ACK', r
    if go:
        r = c.go(export)
        assert r == 'ACK', r
    return c
