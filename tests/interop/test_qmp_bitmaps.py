#!/usr/bin/env python3
"""Dirty bitmap commands and `transaction` over QMP: the same session
against qemu-storage-daemon and qblock-storage-daemon must give the same
replies (error texts, check order, query-named-block-nodes state before
and after failing transactions).

Env: QBLOCK_BUILD, QBLOCK_SRC.  Exit 0 pass, 77 skip, 1 fail.
"""
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import qmp_session as qs  # noqa: E402


def setup(w):
    for name, size in (("a.qcow2", "4M"), ("b.qcow2", "8M")):
        subprocess.check_call(["qemu-img", "create", "-q", "-f", "qcow2",
                               os.path.join(w, name), size])


def txn(*actions, **props):
    args = {"actions": [{"type": t, "data": d} for t, d in actions]}
    if props:
        args["properties"] = {k.replace("_", "-"): v
                              for k, v in props.items()}
    return ("transaction", args)


Q0 = {"node": "q0"}
SCRIPT = [
    ("blockdev-add", {"driver": "file", "node-name": "f0",
                      "filename": "WORKDIR/a.qcow2"}),
    ("blockdev-add", {"driver": "qcow2", "node-name": "q0", "file": "f0"}),
    ("blockdev-add", {"driver": "file", "node-name": "f1",
                      "filename": "WORKDIR/b.qcow2"}),
    ("blockdev-add", {"driver": "qcow2", "node-name": "q1", "file": "f1"}),
    # add: check order and texts
    ("block-dirty-bitmap-add", {"node": "q0", "name": ""}),
    ("block-dirty-bitmap-add", {"node": "nonode", "name": "x"}),
    ("block-dirty-bitmap-add", {"node": "q0", "name": "x",
                                "granularity": 1000}),
    ("block-dirty-bitmap-add", {"node": "q0", "name": "x",
                                "granularity": 256}),
    ("block-dirty-bitmap-add", {"node": "q0", "name": "x",
                                "granularity": 4294967296}),
    ("block-dirty-bitmap-add", {"node": "q0", "name": "b1"}),
    ("block-dirty-bitmap-add", {"node": "q0", "name": "b1"}),
    ("block-dirty-bitmap-add", {"node": "q0", "name": "b2",
                                "granularity": 512, "disabled": True}),
    ("block-dirty-bitmap-add", {"node": "q1", "name": "big"}),
    ("block-dirty-bitmap-add", {"node": "f0", "name": "p",
                                "persistent": True}),
    ("block-dirty-bitmap-add", {"node": "q0", "name": "y" * 1024}),
    ("block-dirty-bitmap-add", {"node": "q0", "name": "huge",
                                "granularity": 2147483648}),
    ("block-dirty-bitmap-remove", {"node": "q0", "name": "huge"}),
    ("block-dirty-bitmap-remove", {"node": "q0", "name": "nope"}),
    ("block-dirty-bitmap-remove", {"node": "nonode", "name": "nope"}),
    # enable / disable are idempotent
    ("block-dirty-bitmap-enable", {"node": "q0", "name": "b2"}),
    ("block-dirty-bitmap-enable", {"node": "q0", "name": "b2"}),
    ("block-dirty-bitmap-disable", {"node": "q0", "name": "b2"}),
    ("block-dirty-bitmap-disable", {"node": "q0", "name": "b2"}),
    ("block-dirty-bitmap-clear", {"node": "q0", "name": "b1"}),
    ("block-dirty-bitmap-clear", {"node": "q0", "name": "nope"}),
    # merge: local and external sources, size mismatch, bad items
    ("block-dirty-bitmap-merge", {"node": "q0", "target": "b1",
                                  "bitmaps": ["b2", {"node": "q0",
                                                     "name": "b2"}]}),
    ("block-dirty-bitmap-merge", {"node": "q0", "target": "b1",
                                  "bitmaps": [{"node": "q1",
                                               "name": "big"}]}),
    ("block-dirty-bitmap-merge", {"node": "q0", "target": "b1",
                                  "bitmaps": ["nope"]}),
    ("block-dirty-bitmap-merge", {"node": "q0", "target": "nope",
                                  "bitmaps": ["b1"]}),
    ("block-dirty-bitmap-merge", {"node": "q0", "target": "b1",
                                  "bitmaps": [{"node": "nonode",
                                               "name": "b1"}]}),
    ("block-dirty-bitmap-merge", {"node": "q0", "target": "b1",
                                  "bitmaps": [None]}),
    ("block-dirty-bitmap-merge", {"node": "q0", "target": "b1",
                                  "bitmaps": [{"node": "q0"}]}),
    ("x-debug-block-dirty-bitmap-sha256", {"node": "q0", "name": "b1"}),
    ("x-debug-block-dirty-bitmap-sha256", {"node": "q0", "name": "b2"}),
    ("query-named-block-nodes", {"flat": True}),
    # transactions
    txn(),
    ("transaction", {"actions": [{"type": "bogus", "data": {}}]}),
    txn(("block-dirty-bitmap-add", {"node": "q0", "name": "t1"}),
        ("block-dirty-bitmap-clear", {"node": "q0", "name": "b1"}),
        ("block-dirty-bitmap-enable", {"node": "q0", "name": "b2"}),
        ("block-dirty-bitmap-disable", {"node": "q0", "name": "b1"}),
        ("block-dirty-bitmap-merge", {"node": "q0", "target": "b1",
                                      "bitmaps": ["b2"]}),
        ("block-dirty-bitmap-remove", {"node": "q0", "name": "b2"}),
        ("abort", {})),
    ("query-named-block-nodes", {"flat": True}),
    txn(("block-dirty-bitmap-remove", {"node": "q0", "name": "b2"}),
        ("block-dirty-bitmap-clear", {"node": "q0", "name": "b2"})),
    txn(("block-dirty-bitmap-remove", {"node": "q0", "name": "b2"}),
        ("block-dirty-bitmap-enable", {"node": "q0", "name": "b2"})),
    txn(("block-dirty-bitmap-add", {"node": "q0", "name": "x"}),
        ("block-dirty-bitmap-add", {"node": "q0", "name": "x"})),
    txn(("block-dirty-bitmap-add", {"node": "q0", "name": "g"}),
        completion_mode="grouped"),
    txn(("abort", {}), completion_mode="grouped"),
    txn(("block-dirty-bitmap-add", {"node": "q0", "name": "t2"}),
        ("block-dirty-bitmap-disable", {"node": "q0", "name": "t2"}),
        ("block-dirty-bitmap-merge", {"node": "q0", "target": "t2",
                                      "bitmaps": ["b1"]}),
        ("block-dirty-bitmap-remove", {"node": "q0", "name": "b2"})),
    ("query-named-block-nodes", {"flat": True}),
    ("block-dirty-bitmap-remove", {"node": "q0", "name": "b2"}),
]

if __name__ == "__main__":
    sys.exit(qs.compare(SCRIPT, setup=setup))
