#!/usr/bin/env python3
"""The QMP wire protocol: greeting, capability negotiation, the request
envelope checks, id echo, JSON framing (split and batched writes) and
parse errors.  The same raw byte sequences are sent to qemu-storage-daemon
and qblock-storage-daemon; every line they send back must be the same
after normalising the version numbers and package string.

Each case is followed by a sync command whose reply marks its end, so the
comparison does not depend on timing.

Env: QBLOCK_BUILD, QBLOCK_SRC.  Exit 0 pass, 77 skip, 1 fail.
"""
import json
import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import qmp_session as qs  # noqa: E402
from qmp import Daemon  # noqa: E402

SYNC = '{"execute": "query-commands", "id": "sync"}'

# Sent before qmp_capabilities.
BEFORE = [
    '{"execute": "query-version"}',
    '{"execute": "nope"}',
    '{"execute": "query-version", "foo": 1}',
    '{"execute": "qmp_capabilities", "arguments": {"bogus": 1}}',
    '{"execute": "qmp_capabilities", "arguments": {"enable": "oob"}}',
    '{"execute": "qmp_capabilities", "arguments": {"enable": ["oob"]},'
    ' "id": {"a": [1, 2.5, null, true]}}',
]
# After negotiation.  A list is written piece by piece.
AFTER = [
    '{"execute": "qmp_capabilities"}',
    '{"execute": "query-version", "id": 1}',
    '{"execute": "nope", "id": "x"}',
    '{"execute": "query-version", "id": 1, "foo": 2}',
    '{"execute": 1}',
    '{"execute": "quit", "arguments": []}',
    '{"execute": "query-version", "arguments": {"a": 1}}',
    '{"arguments": {}}',
    '[]', '1\n', '"abc"', 'null\n',
    '{"execute": }',
    '}',
    'garbage\n',
    '{"a": 1, "a": 2}',
    '{"execute": "query-version",}',
    "{'execute': 'query-version', 'id': 'single'}",
    '{"execute": "query-version", "id": "\\u00e9x"}',
    '{"execute":"query-version","id":1}{"execute":"query-version","id":2}',
    ['{"exec', 'ute":"query-', 'version", "id": "split"}'],
    '{"execute": "query-version"} junk {"execute": "query-version"}',
    '{"execute": "query-version", "id": -0}',
    '{"execute": "query-version", "id": [true, false, {}]}',
    '{"execute": "block-dirty-bitmap-add", "arguments": {"node": 1}}',
    '{"execute": "block-dirty-bitmap-add", "arguments": {"name": "x"}}',
    '{"execute": "block-dirty-bitmap-add", "arguments": '
    '{"node": "n", "name": "x", "granularity": -1}}',
    '{"execute": "blockdev-add", "arguments": {"driver": "bogus"}}',
    '{"execute": "blockdev-del", "arguments": {"node-name": "nope"}}',
    '{"exec-oob": "query-version"}',
    '{"exec-oob": "query-version", "execute": "query-version"}',
]


def normalise_line(line):
    line = re.sub(r'"micro": \d+', '"micro": M', line)
    line = re.sub(r'"package": "[^"]*"', '"package": "P"', line)
    if '"id": "sync"' in line:
        return "SYNC"
    return line


def session(binary):
    d = Daemon(binary, negotiate=False)
    out = ["greeting: " + normalise_line(json.dumps(d.conn.greeting))]
    try:
        for phase in (BEFORE, AFTER):
            for case in phase:
                pieces = case if isinstance(case, list) else [case]
                for p in pieces:
                    d.conn.send_raw(p)
                    time.sleep(0.02)
                d.conn.send_raw(SYNC)
                lines = []
                while True:
                    line = normalise_line(d.conn.read_line())
                    if line == "SYNC" or len(lines) > 100:
                        break
                    lines.append(line)
                out.append((case, lines))
    finally:
        d.shutdown()
    return out


def main():
    qsd, ours = qs.find_binaries()
    ref, got = session(qsd), session(ours)
    failures = 0
    for a, b in zip(ref, got):
        if a != b:
            failures += 1
            print("DIFF for %r:\n  qemu:   %s\n  qblock: %s"
                  % (a[0] if isinstance(a, tuple) else "greeting",
                     a[1] if isinstance(a, tuple) else a,
                     b[1] if isinstance(b, tuple) else b))
    print("%d cases compared, %d differ" % (len(ref), failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
