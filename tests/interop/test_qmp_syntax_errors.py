#!/usr/bin/env python3
"""Malformed QMP input: qblock-storage-daemon must answer exactly as
qemu-storage-daemon 7.2 does.

Each case runs on a fresh connection of one daemon of each kind (the
daemons have several monitors so that cases run side by side): greeting,
qmp_capabilities (unless the case is about negotiation), then the case's
bytes; the replies arriving within 0.4 s are recorded, then a newline and a
sentinel command are sent and the replies up to the sentinel's (or the end
of the connection, or 3 s) recorded too (the newline ends a pending number
or keyword, and resynchronises the lexer after an error).  The two
transcripts, with the version numbers masked, must be identical, as must
the connection state at the end (open / closed).

The table covers bad literals and keywords, bad escapes, invalid UTF-8,
control characters in strings, unterminated strings, stray closers,
numbers with bad syntax, nesting past the limit, non-object messages,
requests without "execute", wrong types for "execute" / "arguments",
unknown members (several bad members: the one QEMU's member order puts
first), odd "id" values, capability negotiation and "exec-oob" with and
without the oob capability.

Known, deliberate differences are not in the table: integers between
2^63 and 2^64 and numbers beyond double range (QEMU echoes them as an
unsigned integer and as "inf", which jansson cannot represent).

Env: QBLOCK_BUILD.  Exit 0 pass, 77 skip, 1 fail.
"""
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.setrecursionlimit(20000)  # replies echo 1023-deep ids

SENTINEL = b'{"execute": "query-version", "id": "sentinel"}'
Q = '{"execute": "query-version", "id": %s}'
QS = '{"execute": "query-version", "id": "%s"}'
QB = b'{"execute": "query-version", "id": "%s"}'

CASES = [
    # literals and keywords
    'tru', 'nul', 'truex', 'True', 'NULL', 'nulL', 'null5', 'nu ll', 'true1',
    'truefalse', 'a_b', 'ab1', 'x' * 70, 'x' * 5000 + ' ', '1' * 5000 + ' ',
    '[' + '1,' * 3000 + '1]', b'"' + b'a' * 3000 + b'\x01',
    b'"' + b'a' * 3000 + b'\xff', 'Infinity', 'NaN',
    '{"execute": tru}', Q % 'nan',
    # escapes
    QS % '\\q', QS % '\\u12', QS % '\\u12"', QS % '\\uZZZZ', QS % '\\ud800',
    QS % '\\udc00\\ud800x', QS % '\\uD83D', QS % '\\ud800\\u0041',
    QS % '\\u0000', QS % '\\/\\\'\\b\\f\\n\\r\\t', QS % '\\ud83d\\ude00',
    QS % '\\u00e9\\u00E9', '"a\\\'b"', "'a\\'b'",
    # raw bytes and UTF-8
    QB % b'\xff', QB % b'\xfe', b'\xff', b'\xc3\xa9', QB % b'\xc0\x80',
    QB % b'\xc0\x81', QB % b'\xc1\xbf', QB % b'\xe0\x80\x80',
    QB % b'\xed\xa0\x80', QB % b'\xed\xbf\xbf', QB % b'\xe2\x82',
    QB % b'\xc3', QB % b'\x80', QB % b'\xf4\x90\x80\x80',
    QB % b'\xc3\xa9\xf8\x88\x80\x80\x80', QB % b'\xf0\x9f\x98\x80',
    QB % b'\xc3\xa9', b'{"execute": "query-version", \xc3\xa9}',
    # control characters
    QB % b'\x01', QB % b'a\tb', QB % b'a\nb', QB % b'a\rb', QB % b'\x7f',
    b'"\t"', b'\x00', b'\x1f', b'\x7f', b'\x04',
    b'{"execute": "query-version"}\x00', b'.\x00 7\n', b'.\xff 7\n',
    # unterminated strings
    '{"execute": "query-version', '"abc', "'abc",
    # stray closers and structure
    '}', ']', '{"execute": "query-version"}}', '[}', '{]', '[1}',
    '{"execute": "query-version"]', '{"a": 1]', '{"execute" "x"}',
    '{"a"}', '{1: 2}', '{"a":}', '{,}', '[,]', '[1,]', '[1 2]',
    '{"a": 1 "b": 2}', '{"execute": "query-version",}',
    '{"execute": "query-version", "execute": "quit"}', '{"": 1}',
    '{"execute": "query-version"} junk', '/* c */ {"execute": "query-version"}',
    '.{ 7\n', '.} 7\n', '.[ 7\n', '.] 7\n', '., 7\n', '.: 7\n', '.  7\n',
    '.\n 7\n', '." 7\n', '.a 7\n', '%d', '@', '\\', '$x',
    # numbers
    '01', '00', '-01', '1.', '.5', '-', '-a', '1e', '1ee', '1e+', '0.5e',
    '+1', '0x10', '1.5.5', '1e+5', '1E-5x', '-0.0', '-0', '0e5 ', '0E5 ',
    '-0e1 ', '-0E1 ', '0.5e1 ', '[0e1]', '0Ee',
    Q % '01', Q % '1.', Q % '99999999999999999999', Q % '1.5e3', Q % '-0',
    Q % '0.1', Q % '1E2', Q % '1.0', Q % '-0.0', Q % '1e22', Q % '1e-400',
    Q % '12345678901234567890123', Q % '-9223372036854775808',
    Q % '-9223372036854775809', Q % '9223372036854775807',
    # nesting
    '[' * 1023 + ']' * 1023, '[' * 1024 + ']' * 1024,
    '[' * 1025 + ']' * 1025, '{"a":' * 1025 + '1' + '}' * 1025,
    Q % ('[' * 1023 + ']' * 1023), Q % ('[' * 1024 + ']' * 1024),
    # messages that are not requests
    '[]', '1', '"str"', 'null', 'true', 'false', '[1, 2]', '{}',
    '{"id": 1}', '{"arguments": {}}', '{"execute": 1}', '{"execute": null}',
    '{"execute": "query-version", "arguments": []}',
    '{"execute": "query-version", "arguments": 1}',
    '{"execute": "query-version", "arguments": null}',
    '{"execute": "query-version", "id": "x", "arguments": {"a": 1}}',
    '{"execute": "query-version", "foo": 1}',
    '{"control": {}, "execute": "query-version"}',
    '{"exec-oob": "query-version"}', '{"exec-oob": "query-version", "id": 5}',
    '{"execute": "query-version", "exec-oob": "query-version"}',
    '{"exec-oob": "query-version", "execute": "query-version"}',
    '{"exec-oob": 1}', '{"execute": "nonexistent", "id": "n"}',
    '{"execute": "qmp_capabilities", "id": 7}',
    # id of every type
    Q % '[1, {"a": null}]', Q % 'true', Q % 'null', Q % '{}', Q % '1.5',
    Q % '-7', Q % '"x"', Q % '""', Q % '{"b": 1, "a": [2]}',
    "{'execute': 'query-version'}", "{'execute': 'query-version', 'id': 'a\"b'}",
    "{'execute': 'query-version', 'id': 'a\\'b'}",
    # negotiation
    ('{"execute": "query-version", "id": 1}', False),
    ('{"execute": "qmp_capabilities", "arguments": {"enable": ["oob"]}}', False),
    ('{"execute": "qmp_capabilities", "arguments": {"enable": "oob"}}', False),
    ('{"execute": "qmp_capabilities", "arguments": {"enable": ["x"]}}', False),
    ('{"execute": "qmp_capabilities", "arguments": {"enable": [1]}}', False),
    ('{"execute": "qmp_capabilities", "arguments": {"foo": 1}}', False),
    ('{"execute": "qmp_capabilities", "arguments": {"enable": []}, "id": 3}',
     False),
    ('{"exec-oob": "qmp_capabilities"}', False), ('[]', False),
    ('tru', False), ('{"execute": "qmp_capabilities", "id": [1]}', False),
    ('{"execute": "qmp_capabilities", "arguments": {"enable": ["oob"]}}'
     '{"exec-oob": "query-version", "id": "o"}'
     '{"exec-oob": "query-named-block-nodes"}'
     '{"execute": "query-version", "id": "i"}', False),
    # several bad members: QEMU reports the first in its QDict order
    '{"execute": 1, "exec-oob": "x"}', '{"exec-oob": "x", "execute": 1}',
    '{"foo": 1, "bar": 2}', '{"bar": 2, "foo": 1}',
    '{"arguments": 1, "execute": 2}', '{"execute": 2, "arguments": 1}',
    '{"foo": 1, "execute": 2}', '{"execute": 2, "foo": 1}',
    '{"arguments": 1, "foo": 2}', '{"foo": 2, "arguments": 1}',
    '{"exec-oob": 1, "arguments": 1}', '{"arguments": 1, "exec-oob": 1}',
    '{"exec-oob": "x", "foo": 1}', '{"foo": 1, "exec-oob": "x"}',
    '{"id": 1, "arguments": []}', '{"zzz": 1, "aaa": 2, "execute": 3}',
    # with the oob capability
    ('{"exec-oob": 1}', 'oob'), ('{"exec-oob": 1, "id": 1}', 'oob'),
    ('{"execute": "query-version", "exec-oob": "query-version", "id": 1}',
     'oob'),
    ('{"exec-oob": "query-version"}', 'oob'),
    ('{"exec-oob": "query-version", "id": null}', 'oob'),
    ('{"exec-oob": "nonexistent", "id": 3}', 'oob'),
    ('{"exec-oob": "qmp_capabilities", "id": 4}', 'oob'),
    ('{"exec-oob": "query-version", "arguments": [], "id": 5}', 'oob'),
    ('{"execute": "query-version", "id": 6}', 'oob'),
    ('{"execute": 1, "exec-oob": "x"}', 'oob'),
    ('{"exec-oob": "x", "foo": 1}', 'oob'),
    ('{"execute": "qmp_capabilities"}', 'oob'),
]


class Reader:
    def __init__(self, sock):
        self.sock = sock
        self.buf = b""
        self.closed = False

    def collect(self, seconds, until=None, first=False):
        out = []
        deadline = time.time() + seconds
        while True:
            while b"\n" in self.buf:
                line, self.buf = self.buf.split(b"\n", 1)
                out.append(line.rstrip(b"\r").decode("utf-8", "replace"))
                if first or (until and until in line):
                    return out
            rest = deadline - time.time()
            if self.closed or rest <= 0:
                return out
            self.sock.settimeout(rest)
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                return out
            except OSError:
                data = b""
            if not data:
                self.closed = True
                if self.buf:
                    out.append("partial: " + self.buf.decode("utf-8",
                                                             "replace"))
                    self.buf = b""
            self.buf += data


def mask(line):
    """Replace query-version's numbers and package (they differ)."""
    try:
        msg = json.loads(line)
    except (ValueError, RecursionError):
        return line
    if isinstance(msg, dict) and isinstance(msg.get("return"), dict) and \
            "qemu" in msg["return"]:
        msg["return"] = "VERSION"
        return "(version reply) " + json.dumps(msg, sort_keys=False)
    if isinstance(msg, dict) and "QMP" in msg:
        return "(greeting) " + json.dumps(sorted(msg["QMP"]))
    return line


def run_case(path, data, negotiate):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(path)
    r = Reader(s)
    transcript = [mask(x) for x in r.collect(5, first=True)]
    if negotiate:
        s.sendall(b'{"execute": "qmp_capabilities"%s}\n'
                  % (b', "arguments": {"enable": ["oob"]}'
                     if negotiate == "oob" else b""))
        r.collect(5, first=True)
    try:
        s.sendall(data)
        # No marker goes into the transcript between the two parts: on a
        # loaded machine a reply may arrive after the newline was sent
        # even though it did not need it.
        transcript += r.collect(0.4)
        s.sendall(b"\n" + SENTINEL + b"\n")
        transcript += r.collect(3, until=b"sentinel")
    except OSError:
        r.closed = True
    s.close()
    return [mask(x) for x in transcript], "closed" if r.closed else "open"


PARALLEL = 8


def run_all(binary, workdir):
    """Every case against one daemon with PARALLEL monitors (each serves
    one client at a time), the cases spread over them in threads."""
    paths = [os.path.join(workdir, "m%d.sock" % i) for i in range(PARALLEL)]
    argv = [binary, "--blockdev", "null-co,node-name=n0"]
    for i, path in enumerate(paths):
        argv += ["--chardev", "socket,id=m%d,path=%s,server=on,wait=off"
                 % (i, path), "--monitor", "chardev=m%d" % i]
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    results = [None] * len(CASES)

    def worker(k):
        for n in range(k, len(CASES), PARALLEL):
            case = CASES[n]
            data, negotiate = case if isinstance(case, tuple) else (case, True)
            if isinstance(data, str):
                data = data.encode()
            results[n] = run_case(paths[k], data, negotiate)

    try:
        deadline = time.time() + 10
        while not all(os.path.exists(p) for p in paths):
            if time.time() > deadline or proc.poll() is not None:
                raise RuntimeError("%s did not start" % binary)
            time.sleep(0.05)
        threads = [threading.Thread(target=worker, args=(k,))
                   for k in range(PARALLEL)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(600)
    finally:
        proc.terminate()
        proc.wait(10)
    return results


def main():
    build = os.environ.get("QBLOCK_BUILD")
    qb = os.path.join(build or "", "storage-daemon", "qblock-storage-daemon")
    qe = shutil.which("qemu-storage-daemon")
    if not build or not os.path.exists(qb) or not qe:
        print("SKIP: need qblock-storage-daemon and qemu-storage-daemon")
        return 77
    workdir = tempfile.mkdtemp(prefix="qmp-syntax-")
    try:
        ref = run_all(qe, workdir)
        got = run_all(qb, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    bad = 0
    for case, a, b in zip(CASES, ref, got):
        if a != b:
            bad += 1
            print("DIFF for %r" % (case if len(repr(case)) < 120
                                   else repr(case)[:120] + "..."))
            for line in a[0] + [a[1]]:
                print("  qemu:   " + line[:300])
            for line in b[0] + [b[1]]:
                print("  qblock: " + line[:300])
    print("%d cases, %d differ" % (len(CASES), bad))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
