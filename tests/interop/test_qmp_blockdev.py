#!/usr/bin/env python3
"""blockdev-add / blockdev-del / blockdev-reopen / x-debug-query-block-graph
over QMP: the same session against qemu-storage-daemon and
qblock-storage-daemon must give the same replies (error texts, permission
conflicts, ownership rules, graph edges and permissions, reopen checks).

Env: QBLOCK_BUILD, QBLOCK_SRC.  Exit 0 pass, 77 skip, 1 fail.
"""
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import qmp_session as qs  # noqa: E402


def setup(w):
    subprocess.check_call(["qemu-img", "create", "-q", "-f", "qcow2",
                           os.path.join(w, "a.qcow2"), "4M"])
    subprocess.check_call(["qemu-img", "create", "-q", "-f", "raw",
                           os.path.join(w, "r.raw"), "1M"])


FILE_A = {"driver": "file", "filename": "WORKDIR/a.qcow2"}

SCRIPT = [
    ("blockdev-add", {"driver": "null-co"}),
    ("blockdev-add", {"driver": "null-co", "node-name": "#bad"}),
    ("blockdev-add", {"driver": "file", "node-name": "fx",
                      "filename": "WORKDIR/nonexist"}),
    ("blockdev-add", {"driver": "qcow2", "node-name": "qx",
                      "file": "nope"}),
    ("blockdev-add", {"driver": "qcow2", "node-name": "qx"}),
    ("blockdev-add", {"driver": "file", "node-name": "fr",
                      "filename": "WORKDIR/r.raw"}),
    ("blockdev-add", {"driver": "qcow2", "node-name": "qr", "file": "fr"}),
    ("blockdev-add", {"driver": "file", "node-name": "fr",
                      "filename": "WORKDIR/r.raw"}),
    ("blockdev-add", dict(FILE_A, **{"node-name": "f0"})),
    ("blockdev-add", {"driver": "qcow2", "node-name": "q0", "file": "f0"}),
    ("blockdev-add", {"driver": "qcow2", "node-name": "q1", "file": "f0"}),
    ("blockdev-add", {"driver": "qcow2", "node-name": "q1",
                      "file": "f0", "read-only": True}),
    ("blockdev-add", dict(FILE_A, **{"node-name": "f1"})),
    ("blockdev-add", dict(FILE_A, **{"node-name": "f2",
                                     "read-only": True})),
    ("blockdev-add", dict(FILE_A, **{"node-name": "f3",
                                     "force-share": True})),
    ("blockdev-add", {"driver": "raw", "node-name": "rw0", "file": "fr",
                      "offset": 512, "size": 4096}),
    ("blockdev-add", {"driver": "null-co", "node-name": "n0",
                      "size": 1048576}),
    ("x-debug-query-block-graph", None),
    ("blockdev-del", {"node-name": "f0"}),
    ("blockdev-del", {"node-name": "q0"}),
    ("blockdev-del", {"node-name": "f0"}),
    ("blockdev-del", {"node-name": "f0"}),
    # inline children go with their parent and are not monitor owned
    ("blockdev-add", {"driver": "qcow2", "node-name": "qi",
                      "file": dict(FILE_A, **{"node-name": "fi"})}),
    ("blockdev-del", {"node-name": "fi"}),
    ("blockdev-del", {"node-name": "qi"}),
    ("blockdev-del", {"node-name": "fi"}),
    # reopen
    ("blockdev-add", dict(FILE_A, **{"node-name": "f0"})),
    ("blockdev-add", {"driver": "qcow2", "node-name": "q0", "file": "f0"}),
    ("blockdev-reopen", {"options": [{"driver": "qcow2",
                                      "node-name": "nope", "file": "f0"}]}),
    ("blockdev-reopen", {"options": [{"driver": "qcow2", "file": "f0"}]}),
    ("blockdev-reopen", {"options": [{"driver": "qcow2",
                                      "node-name": "q0"}]}),
    ("blockdev-reopen", {"options": [{"driver": "raw", "node-name": "q0",
                                      "file": "f0"}]}),
    ("blockdev-reopen", {"options": [dict(FILE_A, **{"node-name": "f0",
                                                     "read-only": True})]}),
    ("blockdev-reopen", {"options": [{"driver": "qcow2", "node-name": "q0",
                                      "file": "f0", "read-only": True}]}),
    ("blockdev-reopen", {"options": [{"driver": "qcow2", "node-name": "q0",
                                      "file": "f0", "backing": "q0"}]}),
    ("blockdev-reopen", {"options": [{"driver": "qcow2", "node-name": "q0",
                                      "file": "f0"}]}),
    ("blockdev-reopen", {"options": [{"driver": "file", "node-name": "f0",
                                      "filename": "WORKDIR/r.raw"}]}),
    ("blockdev-reopen", {"options": [{"driver": "null-co",
                                      "node-name": "n0"}]}),
    ("x-debug-query-block-graph", None),
]

if __name__ == "__main__":
    sys.exit(qs.compare(SCRIPT, setup=setup))
