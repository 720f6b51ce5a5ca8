#!/usr/bin/env python3
"""query-named-block-nodes (nested and flat) over a varied graph must give
the same replies from qemu-storage-daemon and qblock-storage-daemon.

Regression test for building the reply as the generated C types directly
(block/qmp/blockdev.c) instead of JSON run through the input visitor: a
qcow2 overlay over a qcow2 backing file (backing-image, backing_file,
backing_file_depth), an internal snapshot (snapshots), persistent and
non-persistent bitmaps (dirty-bitmaps, enabled and disabled), a
read-only node, cache.direct / no-flush, detect-zeroes, null-co and raw.

Env: QBLOCK_BUILD, QBLOCK_SRC.  Exit 0 pass, 77 skip, 1 fail.
"""
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import qmp_session as qs  # noqa: E402


def setup(w):
    def img(*args):
        subprocess.check_call(["qemu-img"] + list(args),
                              stdout=subprocess.DEVNULL)
    img("create", "-q", "-f", "qcow2", os.path.join(w, "base.qcow2"), "4M")
    img("snapshot", "-c", "snap1", os.path.join(w, "base.qcow2"))
    img("create", "-q", "-f", "qcow2", "-F", "qcow2", "-b",
        os.path.join(w, "base.qcow2"), os.path.join(w, "top.qcow2"))
    img("bitmap", "--add", os.path.join(w, "top.qcow2"), "pb")
    img("create", "-q", "-f", "raw", os.path.join(w, "r.raw"), "1M")


SCRIPT = [
    ("blockdev-add", {"driver": "qcow2", "node-name": "top",
                      "file": {"driver": "file", "node-name": "top-file",
                               "filename": "WORKDIR/top.qcow2"}}),
    ("blockdev-add", {"driver": "raw", "node-name": "r", "read-only": True,
                      "detect-zeroes": "on",
                      "cache": {"direct": False, "no-flush": True},
                      "file": {"driver": "file", "node-name": "r-file",
                               "filename": "WORKDIR/r.raw"}}),
    ("blockdev-add", {"driver": "null-co", "node-name": "n0",
                      "size": 1 << 30}),
    ("block-dirty-bitmap-add", {"node": "top", "name": "tmp",
                                "granularity": 131072}),
    ("block-dirty-bitmap-add", {"node": "n0", "name": "off",
                                "disabled": True}),
    ("query-named-block-nodes", None),
    ("query-named-block-nodes", {"flat": True}),
    ("query-named-block-nodes", {"flat": False}),
    ("block-dirty-bitmap-remove", {"node": "top", "name": "tmp"}),
    ("blockdev-del", {"node-name": "n0"}),
    ("query-named-block-nodes", {"flat": True}),
]

def known(step):
    """Each daemon gets its own images, so snapshot times differ."""
    step = qs.drop_file_dirty_flag(step)

    def walk(o):
        if isinstance(o, dict):
            for k in ("date-sec", "date-nsec"):
                if k in o:
                    o[k] = "TIME"
            for v in o.values():
                walk(v)
        elif isinstance(o, list):
            for v in o:
                walk(v)
    walk(step)
    return step


if __name__ == "__main__":
    sys.exit(qs.compare(SCRIPT, setup=setup, known=known))
