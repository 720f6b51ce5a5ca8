"""Run one scripted QMP session against qemu-storage-daemon and
qblock-storage-daemon and compare the replies after normalisation.

A script is a list of steps; each step is (command, arguments) or a
callable(workdir) run between commands (e.g. to create images).  Replies
are normalised (auto-generated node names, version / package, event
timestamps) and compared one by one; events that precede a reply are
compared too.  Used by tests/interop/test_qmp_*.py.
"""
import difflib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.environ.get("QBLOCK_SRC", os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "..")),
    "tests", "iotests"))
from qmp import Daemon  # noqa: E402

SKIP = 77


def find_binaries():
    build = os.environ.get("QBLOCK_BUILD")
    qsd = shutil.which("qemu-storage-daemon")
    ours = os.path.join(build, "storage-daemon", "qblock-storage-daemon") \
        if build else None
    if not qsd or not ours or not os.path.exists(ours):
        print("SKIP: need qemu-storage-daemon and QBLOCK_BUILD's "
              "qblock-storage-daemon")
        sys.exit(SKIP)
    return qsd, ours


def normalise(obj, workdir):
    text = json.dumps(obj)
    text = text.replace(workdir, "WORKDIR")
    text = re.sub(r'"#block\d+"', '"#blockN"', text)
    obj = json.loads(text)

    def walk(o):
        if isinstance(o, dict):
            if "timestamp" in o and "event" in o:
                o["timestamp"] = "TS"
            if set(o.keys()) == {"qemu", "package"}:
                o["qemu"]["micro"] = "MICRO"
                o["package"] = "PACKAGE"
            for v in o.values():
                walk(v)
        elif isinstance(o, list):
            for v in o:
                walk(v)
    walk(obj)
    return obj


def run_script(binary, script, workdir, daemon_args=()):
    out = []
    with Daemon(binary, list(daemon_args)) as d:
        for step in script:
            if callable(step):
                step(workdir)
                continue
            name, args = step
            d.conn.events = []
            r = d.cmd_raw(name, args)
            for ev in d.conn.events:
                out.append(("event", normalise(ev, workdir)))
            out.append((name, normalise(r, workdir)))
    return out


def drop_file_dirty_flag(step):
    """Known difference (file-posix has no bdrv_get_info yet): QEMU shows
    "dirty-flag": false in the image info of file nodes."""
    def walk(o):
        if isinstance(o, dict):
            if o.get("format") == "file":
                o.pop("dirty-flag", None)
            for v in o.values():
                walk(v)
        elif isinstance(o, list):
            for v in o:
                walk(v)
    step = json.loads(json.dumps(step))
    walk(step)
    return step


def compare(script, daemon_args=(), setup=None, known=drop_file_dirty_flag):
    """Returns 0 when both daemons gave the same replies, 1 otherwise.
    known(step) normalises differences already reported to their owners."""
    qsd, ours = find_binaries()
    results = []
    for binary in (qsd, ours):
        workdir = tempfile.mkdtemp(prefix="qmp-interop-")
        try:
            if setup:
                setup(workdir)
            args = [a.replace("WORKDIR", workdir) for a in daemon_args]
            steps = [s if callable(s) else
                     (s[0], json.loads(json.dumps(s[1]).replace(
                         "WORKDIR", workdir)) if s[1] is not None else None)
                     for s in script]
            results.append(run_script(binary, steps, workdir, args))
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
    ref, got = results
    failures = 0
    for i in range(max(len(ref), len(got))):
        a = ref[i] if i < len(ref) else None
        b = got[i] if i < len(got) else None
        if known and a and b:
            a, b = known(a), known(b)
        if a != b:
            failures += 1
            print("DIFF at step %d (%s):" % (i, (a or b)[0]))
            sys.stdout.writelines(difflib.unified_diff(
                json.dumps(a, indent=1).splitlines(True),
                json.dumps(b, indent=1).splitlines(True),
                "qemu-storage-daemon", "qblock-storage-daemon", n=2))
    print("%d replies compared, %d differ" % (len(ref), failures))
    return 1 if failures else 0
