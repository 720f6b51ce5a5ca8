#!/usr/bin/env python3
"""qblock-storage-daemon under hostile or odd QMP input, where QEMU 7.2
itself misbehaves (so there is no reference to compare with): the daemon
must answer with an error or a harmless success and keep serving.

- block-dirty-bitmap-merge with "bitmaps": [] (QEMU 7.2: SIGSEGV) succeeds
  and leaves the target unchanged;
- blockdev-reopen with "options": [] (QEMU 7.2: assertion) succeeds;
- nesting deeper than 1024 (errors as QEMU's), a message over 64 MiB (also
  as an unclosed string of escapes; an invalid byte in its skipped rest
  ends it, so the next command is served as by QSD 7.2, compared with
  QBLOCK_QSD_HUGE=1: QSD reads a byte per read(), ~4 minutes), invalid UTF-8 and
  control bytes, a client that disconnects mid-message or before reading
  its replies, and a message trickled one byte per write: error replies or
  closed connections, and a fresh client is served afterwards;
- throughput: 2000 small commands in one write are answered quickly.

Env: QBLOCK_BUILD, QBLOCK_SRC, QBLOCK_QSD_HUGE.  Exit 0 pass, 77 skip, 1 fail.
"""
import json
import os
import socket
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.environ.get("QBLOCK_SRC",
                                               os.path.join(HERE, "..", "..")),
                                "tests", "iotests"))
from qmp import Connection, Daemon  # noqa: E402

failures = []


def check(what, cond):
    print("%s: %s" % ("ok" if cond else "FAIL", what))
    if not cond:
        failures.append(what)


def err_desc(r):
    return r.get("error", {}).get("desc")


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as st:
        for line in st:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def reply_within(c, secs=10.0):
    """The next reply, or {} when none comes within secs."""
    c.sock.settimeout(secs)
    try:
        return c.reply()
    except (socket.timeout, TimeoutError):
        return {}
    finally:
        c.sock.settimeout(30.0)


def replies_until(c, wanted_id, limit=100):
    """Error texts (or ids) of the replies up to the one with wanted_id;
    (seen, None) when a reply is missing."""
    seen = []
    for _ in range(limit):
        r = reply_within(c)
        if not r:
            break
        if r.get("id") == wanted_id:
            return seen, r
        seen.append(err_desc(r) or r.get("id"))
    return seen, None


def huge_then_invalid_byte(c):
    """A 65 MiB string (past the size cap, so the rest of its message is
    skipped), an invalid byte inside it, then a normal command.  The error
    token ends the dropped message, so the command is answered: QSD 7.2
    replies "JSON token size limit exceeded", "invalid keyword 'aaa...",
    "stray '\\x01'", then the command."""
    chunk = b"a" * (1 << 20)
    c.send_raw(b'{"execute": "query-version", "arguments": {"a": "')
    for _ in range(65):
        c.send_raw(chunk)
    c.send_raw(b'\x01\n{"execute": "query-version", "id": "after"}\n')
    return replies_until(c, "after")


def main():
    build = os.environ.get("QBLOCK_BUILD")
    binary = os.path.join(build or "", "storage-daemon",
                          "qblock-storage-daemon")
    if not build or not os.path.exists(binary):
        print("SKIP: no qblock-storage-daemon in QBLOCK_BUILD")
        return 77
    with Daemon(binary, ["--blockdev", "null-co,node-name=n0"]) as d:
        c = d.conn
        r = d.cmd("block-dirty-bitmap-add", node="n0", name="t")
        check("bitmap add", r == {"return": {}})
        sha0 = d.cmd("x-debug-block-dirty-bitmap-sha256", node="n0",
                     name="t")
        r = d.cmd_raw("block-dirty-bitmap-merge",
                      {"node": "n0", "target": "t", "bitmaps": []})
        check("merge with an empty list succeeds", r == {"return": {}})
        sha1 = d.cmd("x-debug-block-dirty-bitmap-sha256", node="n0",
                     name="t")
        check("... and leaves the target unchanged", sha0 == sha1)
        r = d.cmd_raw("transaction", {"actions": [
            {"type": "block-dirty-bitmap-merge",
             "data": {"node": "n0", "target": "t", "bitmaps": []}}]})
        check("transaction merge with an empty list", r == {"return": {}})
        r = d.cmd_raw("blockdev-reopen", {"options": []})
        check("reopen with an empty list succeeds", r == {"return": {}})

        # deep nesting, then a normal command on the same connection.  As
        # in QEMU the over-deep message is dropped at the offending bracket
        # and the rest is read afresh: more limit errors, then one error
        # per leftover closer (test_qmp_syntax_errors compares the exact
        # replies with QEMU's on smaller inputs).
        c.send_raw("[" * 5000 + "]" * 5000)
        c.send_raw('{"execute": "query-version", "id": "deep"}')
        errors = []
        for _ in range(20000):
            r = c.reply()
            if r.get("id") == "deep":
                break
            errors.append(err_desc(r))
        check("nesting 5000 deep: error",
              errors[:1] == ["JSON nesting depth limit exceeded"])
        check("served after deep nesting", "return" in r)

        # 65 MiB string
        t0 = time.time()
        c.send_raw('{"execute": "query-version", "id": "')
        chunk = "a" * (1 << 20)
        for _ in range(65):
            c.send_raw(chunk)
        c.send_raw('"}')
        r = c.reply()
        check("65 MiB message: error",
              err_desc(r) == "JSON token size limit exceeded")
        r = d.cmd("query-version")
        check("served after a huge message (%.1fs)" % (time.time() - t0),
              "return" in r)

        # 65 MiB keyword: a token of any length is fine up to the message
        # limit (QEMU echoes a 5000-letter keyword whole), past it the
        # same error as for a huge string
        c.send_raw("[")
        for _ in range(65):
            c.send_raw(chunk)
        c.send_raw(']{"execute": "query-version", "id": "kw"}')
        r = c.reply()
        check("65 MiB keyword: error",
              err_desc(r) == "JSON token size limit exceeded")
        r = c.reply()
        check("served after a huge keyword", r.get("id") == "kw")

        # an unclosed string of nothing but escapes meets the same cap as
        # plain text: the error comes while the string is still open and
        # the daemon does not keep the 100 MiB (it kept all before)
        base = rss_kib(d.proc.pid)
        c.send_raw('{"execute": "query-version", "id": "esc", "s": "')
        esc = "\\n" * (1 << 19)
        for _ in range(100):
            c.send_raw(esc)
        r = reply_within(c)
        grown = (rss_kib(d.proc.pid) - base) // 1024
        check("100 MiB unclosed string of escapes: error before its end",
              err_desc(r) == "JSON token size limit exceeded")
        check("... memory stays bounded (RSS +%d MiB)" % grown, grown < 48)
        c.send_raw('"}{"execute": "query-version", "id": "esc2"}')
        r = c.reply()
        check("served after the escapes", r.get("id") == "esc2")

        # an invalid byte in the skipped rest of a huge message ends it:
        # the next command is answered (it was swallowed before)
        errors, r = huge_then_invalid_byte(c)
        check("huge message + invalid byte: errors %r" % (errors,),
              errors == ["JSON token size limit exceeded",
                         "JSON parse error, stray '\x01'"])
        check("... next command served", r is not None and "return" in r)
        if os.environ.get("QBLOCK_QSD_HUGE") == "1":
            # QSD reads QMP input a byte per read(): ~4 minutes
            with Daemon("qemu-storage-daemon", []) as q:
                qerr, qr = huge_then_invalid_byte(q.conn)
            check("QSD too: next command served, last error %r"
                  % (qerr[-1:],),
                  qr is not None and "return" in qr and
                  qerr[-1:] == errors[-1:])

        # invalid bytes and control characters inside a string
        c.send_raw(b'{"execute": "query-version", "id": "\xff\x01"}')
        r = c.reply()
        check("bad bytes in a string: JSON parse error",
              (err_desc(r) or "").startswith("JSON parse error"))
        c.send_raw(b"\x00\xff\xfe garbage ")
        c.send_raw('{"execute": "query-version", "id": "sync"}')
        errors = []
        for _ in range(10):
            r = c.reply()
            if r.get("id") == "sync":
                break
            errors.append(err_desc(r) or "")
        check("binary garbage: JSON parse errors (%d)" % len(errors),
              errors and all(e.startswith("JSON parse error")
                             for e in errors))
        check("served after garbage", "return" in r and r["id"] == "sync")

        # throughput: many commands in one write
        n = 2000
        t0 = time.time()
        c.send_raw("".join('{"execute": "query-version", "id": %d}' % i
                           for i in range(n)))
        ids = [c.reply().get("id") for _ in range(n)]
        dt = time.time() - t0
        check("%d batched commands answered in order (%.2fs)" % (n, dt),
              ids == list(range(n)) and dt < 20)

        # one message, one byte per write
        msg = '{"execute": "query-version", "id": "trickle"}'
        for ch in msg:
            c.send_raw(ch)
        r = c.reply()
        check("message trickled byte by byte", r.get("id") == "trickle")

        # a client that leaves mid-message, and one that never reads
        c.close()
        for partial in ('{"execute": "query-ver',
                        '{"execute": "query-commands"}' * 200):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(d.path)
            s.sendall(partial.encode())
            s.close()
            time.sleep(0.1)
        d.conn = d.connect()
        r = d.cmd("query-version")
        check("new client served after abrupt disconnects", "return" in r)
        check("daemon still running", d.proc.poll() is None)
    print("%d checks failed" % len(failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
