#!/usr/bin/env python3
"""A QMP session on a stdio chardev, compact and pretty: the whole output
of qemu-storage-daemon and qblock-storage-daemon must be byte-identical
(CR LF line ends, QEMU's member order and pretty layout) after normalising
the version numbers.  The nodes come from --blockdev in dotted-key and JSON
form, so this also checks the command line's blockdev-add.

Env: QBLOCK_BUILD, QBLOCK_SRC.  Exit 0 pass, 77 skip, 1 fail.
"""
import difflib
import os
import re
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import qmp_session as qs  # noqa: E402

INPUT = "".join(line + "\n" for line in [
    '{"execute": "qmp_capabilities"}',
    '{"execute": "query-version", "id": 1}',
    '{"execute": "query-named-block-nodes", "arguments": {"flat": true}}',
    '{"execute": "x-debug-query-block-graph"}',
    '{"execute": "block-dirty-bitmap-add", "arguments": '
    '{"node": "n1", "name": "b", "granularity": 512}}',
    '{"execute": "query-named-block-nodes"}',
    '{"execute": "nope", "id": [1, "x"]}',
    '{"execute": "quit"}',
])


def run(binary, pretty, workdir):
    args = [binary,
            "--blockdev", "driver=null-co,node-name=n0,size=1048576",
            "--blockdev", '{"driver": "null-co", "node-name": "n1", '
                          '"size": 4194304, "read-zeroes": true}',
            "--chardev", "stdio,id=m0",
            "--monitor", "chardev=m0,pretty=%s" % ("on" if pretty else "off")]
    p = subprocess.run(args, input=INPUT.encode(), stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=30, cwd=workdir)
    out = p.stdout.decode("utf-8", "replace")
    out = re.sub(r'"micro": \d+', '"micro": M', out)
    out = re.sub(r'"package": "[^"]*"', '"package": "P"', out)
    return out + "exit status %d\n" % p.returncode


def main():
    qsd, ours = qs.find_binaries()
    fails = 0
    with tempfile.TemporaryDirectory() as w:
        for pretty in (False, True):
            a, b = run(qsd, pretty, w), run(ours, pretty, w)
            if a != b:
                fails += 1
                sys.stdout.writelines(difflib.unified_diff(
                    a.splitlines(True), b.splitlines(True),
                    "qemu-storage-daemon", "qblock-storage-daemon"))
            print("pretty=%s: %s (%d bytes)" % (pretty, "same" if a == b
                                                else "DIFFERENT", len(a)))
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
