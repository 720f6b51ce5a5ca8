#!/usr/bin/env python3
"""blockdev-create, query-jobs and the job-* commands over QMP: the same
session against qemu-storage-daemon and qblock-storage-daemon must give the
same replies and the same JOB_STATUS_CHANGE sequences (including where the
events fall relative to each reply), the images created must be byte
identical (cmp), and the qcow2 ones must pass the real `qemu-img check`.
The session ends with `quit` while jobs still exist.

iotest 250 runs SESSION on one daemon and logs it (its golden output is
proven against the real daemon with `check --oracle`).

Env: QBLOCK_BUILD, QBLOCK_SRC.  Exit 0 pass, 77 skip, 1 fail.
"""
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.environ.get("QBLOCK_SRC", os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "..")),
    "tests", "iotests"))
from qmp import Daemon  # noqa: E402

SKIP = 77
MiB = 1 << 20


def file_create(job, name, size=0, **extra):
    return ("blockdev-create", {"job-id": job, "options": dict(
        {"driver": "file", "filename": "WORKDIR/" + name, "size": size},
        **extra)})


def qcow2_create(job, node, size=MiB, **extra):
    opts = {"driver": "qcow2", "file": node, "size": size}
    opts.update({k.replace("_", "-"): v for k, v in extra.items()})
    return ("blockdev-create", {"job-id": job, "options": opts})


def add_file(node, name):
    return ("blockdev-add", {"driver": "file", "node-name": node,
                             "filename": "WORKDIR/" + name})


def wait(job):
    return ("wait", job)


# qcow2 option variants whose images are compared byte for byte.  (qcow2
# preallocation=falloc/full is left out: qblock places the refcount
# structures differently from QEMU there, for qemu-img create as well.)
QCOW2_VARIANTS = [
    {},
    {"size": 64 * MiB, "cluster_size": 4096},
    {"version": "v2"},
    {"lazy_refcounts": True},
    {"refcount_bits": 1},
    {"refcount_bits": 64},
    {"extended_l2": True},
    {"compression_type": "zstd"},
    {"preallocation": "metadata"},
    {"backing_file": "base.img", "backing_fmt": "raw"},
    {"size": 1 << 30, "cluster_size": 2 * MiB},
    {"size": 1 << 40, "cluster_size": 512},
]

SESSION = [
    # file: success (the job yields in its I/O, so only created and
    # running precede the reply), sizes not aligned, options
    file_create("c1", "a.img", MiB),
    wait("c1"),
    ("query-jobs", None),
    file_create("c2", "b.img", 1000),
    wait("c2"),
    file_create("c3", "p.img", MiB, preallocation="falloc", nocow=True),
    wait("c3"),
    file_create("c4", "f.img", 65536, preallocation="full",
                **{"extent-size-hint": MiB}),
    wait("c4"),
    # command-time errors: no job is created
    file_create("c1", "x.img", MiB),
    file_create("#x", "x.img", MiB),
    file_create("1x", "x.img", MiB),
    file_create("", "x.img", MiB),
    ("blockdev-create", {"job-id": "e0", "options": {"driver": "raw",
                                                     "size": MiB}}),
    ("blockdev-create", {"job-id": "e0", "options": {"driver": "null-co"}}),
    ("blockdev-create", {"job-id": "e0", "options": {"driver": "qcow2",
                                                     "size": MiB}}),
    ("blockdev-create", {"job-id": "e0", "options": {"driver": "file",
                                                     "size": MiB}}),
    ("blockdev-create", {"job-id": "e0", "options": {"driver": "bogus"}}),
    ("blockdev-create", {"options": {"driver": "file", "filename": "x",
                                     "size": MiB}}),
    # errors inside the job (only in query-jobs)
    file_create("e1", "m.img", MiB, preallocation="metadata"),
    wait("e1"),
    ("blockdev-create", {"job-id": "e2", "options": {
        "driver": "file", "filename": "/nonexistent/dir/x.img",
        "size": MiB}}),
    wait("e2"),
    qcow2_create("e3", "nope", 1000),
    wait("e3"),
    add_file("nf", "a.img"),
    qcow2_create("e4", "nf", 1000),
    wait("e4"),
    qcow2_create("e5", "nf", cluster_size=1000),
    wait("e5"),
    qcow2_create("e6", "nf", version="v2", lazy_refcounts=True),
    wait("e6"),
    qcow2_create("e7", "nf", refcount_bits=3),
    wait("e7"),
    qcow2_create("e8", "nf", backing_fmt="raw"),
    wait("e8"),
    qcow2_create("e9", "nf", version="v2", extended_l2=True),
    wait("e9"),
    qcow2_create("e10", "nf", extended_l2=True, cluster_size=4096),
    wait("e10"),
    qcow2_create("e11", "nf", data_file_raw=True),
    wait("e11"),
    # a qcow2 image on the file node, then the file node is in use
    qcow2_create("q", "nf"),
    wait("q"),
    ("blockdev-add", {"driver": "qcow2", "node-name": "nq", "file": "nf"}),
    qcow2_create("e12", "nf"),
    wait("e12"),
    ("query-jobs", None),
    # verbs on concluded jobs and unknown ids
    ("job-cancel", {"id": "c1"}),
    ("job-pause", {"id": "c1"}),
    ("job-resume", {"id": "c1"}),
    ("job-complete", {"id": "c1"}),
    ("job-finalize", {"id": "c1"}),
    ("job-cancel", {"id": "zz"}),
    ("job-pause", {"id": "zz"}),
    ("job-resume", {"id": "zz"}),
    ("job-complete", {"id": "zz"}),
    ("job-finalize", {"id": "zz"}),
    ("job-dismiss", {"id": "zz"}),
    ("job-dismiss", {"id": "c1"}),
    ("job-dismiss", {"id": "c1"}),
    ("job-dismiss", {"id": "e3"}),
    # a dismissed id can be used again
    file_create("c1", "a2.img", 4096),
    wait("c1"),
    ("query-jobs", None),
]

# Images of the variants, each on its own file node.
for _i, _v in enumerate(QCOW2_VARIANTS):
    SESSION += [
        file_create("vf%d" % _i, "v%d.qcow2" % _i),
        wait("vf%d" % _i),
        add_file("v%d" % _i, "v%d.qcow2" % _i),
        qcow2_create("vq%d" % _i, "v%d" % _i, **_v),
        wait("vq%d" % _i),
        ("job-dismiss", {"id": "vf%d" % _i}),
        ("job-dismiss", {"id": "vq%d" % _i}),
    ]
SESSION += [
    # external data file (the name recorded is relative to the daemon)
    file_create("df", "data.raw"),
    wait("df"),
    add_file("dd", "data.raw"),
    file_create("dq", "d.qcow2"),
    wait("dq"),
    add_file("dn", "d.qcow2"),
    qcow2_create("dc", "dn", data_file="dd", data_file_raw=True),
    wait("dc"),
    # the image's file given as an inline node definition
    file_create("if", "i.qcow2"),
    wait("if"),
    qcow2_create("iq", {"driver": "file", "filename": "WORKDIR/i.qcow2"}),
    wait("iq"),
    qcow2_create("ie", {"driver": "file", "filename": "WORKDIR/none"}),
    wait("ie"),
    ("query-jobs", None),
]

# Files whose bytes depend on the scratch directory's path.
PATH_DEPENDENT = {"d.qcow2"}


def _subst(obj, workdir):
    return json.loads(json.dumps(obj).replace("WORKDIR", workdir))


def run_session(binary, workdir, log, session=SESSION, timeout=30.0):
    """Run session on a fresh daemon in workdir; log one line per command,
    reply and event (events are logged where they arrive: before the
    reply they precede, or at the next ("wait", id) step).  Ends with quit
    (with jobs still present) and returns the daemon's exit status."""
    d = Daemon(binary, [], sockdir=workdir)
    concluded = set()

    def log_events(evs):
        for ev in evs:
            data = ev.get("data", {})
            if ev.get("event") == "JOB_STATUS_CHANGE" and \
                    data.get("status") == "concluded":
                concluded.add(data.get("id"))
            log("<- event %s %s" % (ev["event"], json.dumps(data)))

    try:
        for name, args in session:
            if name == "wait":
                log("-- wait for %s" % args)
                deadline = time.time() + timeout
                while args not in concluded:
                    if time.time() > deadline:
                        log("!! timeout waiting for %s" % args)
                        break
                    msg = d.conn.read_msg()
                    if "event" not in msg:
                        log("!! unexpected %s" % json.dumps(msg))
                        continue
                    log_events([msg])
                continue
            if args is not None:
                args = _subst(args, workdir)
            text = json.dumps({"execute": name, "arguments": args}
                              if args is not None else {"execute": name})
            log("-> " + text.replace(workdir, "WORKDIR"))
            d.conn.events = []
            r = d.cmd_raw(name, args)
            log_events(d.conn.events)
            log("<- " + json.dumps(r).replace(workdir, "WORKDIR"))
            if name == "job-dismiss" and "return" in r:
                concluded.discard(args["id"])
        d.conn.events = []
        log("-> quit")
        r = d.cmd_raw("quit")
        log_events(d.conn.events)
        log("<- " + json.dumps(r))
        rc = d.proc.wait(timeout)
        log("daemon exit status %d" % rc)
        return rc
    finally:
        if d.proc.poll() is None:
            d.proc.kill()
            d.proc.wait()
        d.conn.close()


def image_files(workdir):
    return sorted(f for f in os.listdir(workdir)
                  if os.path.isfile(os.path.join(workdir, f))
                  and not f.endswith(".sock"))


def digest(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def describe_images(workdir, log, qemu_img="qemu-img"):
    """Size and digest of each file; qemu-img check of qcow2 ones."""
    for f in image_files(workdir):
        p = os.path.join(workdir, f)
        dg = "(path dependent)" if f in PATH_DEPENDENT else digest(p)[:16]
        log("%s: %d bytes %s" % (f, os.path.getsize(p), dg))
        if f.endswith(".qcow2"):
            r = subprocess.run([qemu_img, "check", "-f", "qcow2", p],
                               stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, timeout=60,
                               cwd=workdir)
            for line in r.stdout.decode().splitlines():
                log("  " + line.replace(workdir, "WORKDIR"))


def main():
    build = os.environ.get("QBLOCK_BUILD")
    qsd = shutil.which("qemu-storage-daemon")
    ours = os.path.join(build, "storage-daemon", "qblock-storage-daemon") \
        if build else None
    if not qsd or not shutil.which("qemu-img") or not ours or \
            not os.path.exists(ours):
        print("SKIP: need qemu-storage-daemon, qemu-img and QBLOCK_BUILD")
        return SKIP
    logs, dirs = [], []
    try:
        for binary in (qsd, ours):
            w = tempfile.mkdtemp(prefix="qmp-jobs-")
            dirs.append(w)
            lines = []
            run_session(binary, w, lines.append)
            describe_images(w, lines.append)
            logs.append(lines)
        failures = 0
        for i in range(max(len(logs[0]), len(logs[1]))):
            a = logs[0][i] if i < len(logs[0]) else None
            b = logs[1][i] if i < len(logs[1]) else None
            if a != b:
                failures += 1
                print("DIFF line %d:\n  qemu:   %s\n  qblock: %s" % (i, a, b))
                if failures > 20:
                    break
        # byte for byte, every file both created
        names = image_files(dirs[0])
        if names != image_files(dirs[1]):
            failures += 1
            print("DIFF file lists: %s vs %s" % (names, image_files(dirs[1])))
        for f in names:
            if f in PATH_DEPENDENT:
                continue
            a, b = (os.path.join(x, f) for x in dirs)
            if os.path.exists(b) and \
                    subprocess.call(["cmp", "-s", a, b]) != 0:
                failures += 1
                print("DIFF image bytes: %s" % f)
        print("%d lines, %d images compared, %d differ"
              % (len(logs[0]), len(names), failures))
        return 1 if failures else 0
    finally:
        for w in dirs:
            shutil.rmtree(w, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
