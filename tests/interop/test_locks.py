#!/usr/bin/env python3
"""Image locks: qblock-io and QEMU's qemu-io must see each other's locks.

For every pair (holder, second) where the holder keeps an image open
(rw / ro / ro with -U) and the second tool tries to open it (rw / ro /
ro -U / -U), the outcome -- success, or the exact error lines -- must be the
same whichever of the two tools is qemu-io or qblock-io.  The reference is
the pair with qemu-io on both sides.  The byte sets a holder locks (seen in
/proc/locks) must also be QEMU's.

Scenarios:
  raw/raw      raw holder, raw opener (the full 4-way tool matrix)
  qcow2/raw    qemu-io holding a qcow2 image; opener uses -f raw on the
               same file: the opener must see the qcow2 holder's locks
  raw/qcow2    holder uses -f raw; qemu-io opens the file as qcow2: QEMU
               must see the raw holder's locks
  qcow2/qcow2  full matrix, only when qblock-io can open qcow2 images

Env: QBLOCK_BUILD (build dir, has tools/qblock-io), QBLOCK_SRC.  Exit 0 pass,
77 skip (no qemu-io, or no qblock-io: then only the QEMU baseline is
checked), 1 fail.
"""
import os
import re
import select
import shutil
import subprocess
import sys
import tempfile
import time

HOLDER_MODES = {"rw": [], "ro": ["-r"], "ro-U": ["-r", "-U"]}
SECOND_MODES = {"rw": [], "ro": ["-r"], "ro-U": ["-r", "-U"], "U": ["-U"]}
TIMEOUT = 20


class Holder:
    """A tool keeping an image open: interactive, reading commands on stdin."""

    def __init__(self, tool, args, fmt, img):
        self.argv = [tool] + args + ["-f", fmt, img]
        self.p = subprocess.Popen(self.argv, stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT)
        self.buf = b""
        # Prove the image is open (and locked) by reading from it.
        self.cmd(None)

    def _send(self, line):
        self.p.stdin.write(line.encode() + b"\n")
        self.p.stdin.flush()

    def _read_until(self, start, done, what):
        """Collect output until done(output since start); bounded by TIMEOUT."""
        fd = self.p.stdout.fileno()
        deadline = time.monotonic() + TIMEOUT
        while not done(self.buf[start:]):
            left = deadline - time.monotonic()
            ready = select.select([fd], [], [], max(0, min(left, 0.5)))[0]
            chunk = os.read(fd, 65536) if ready else b""
            self.buf += chunk
            if (ready and not chunk) or left <= 0:
                self._finish()
                raise RuntimeError("holder %s: %s: %r"
                                   % (self.argv, what, self.buf))

    def cmd(self, line):
        """Run line (if any), then a read; return the line's output.

        One command at a time: qemu-io only looks at stdin again when it
        prints its prompt, so a second line sent early may sit unread."""
        start = len(self.buf)
        if line:
            self._send(line)
            self._read_until(start, lambda b: b.rstrip().endswith(b">"),
                             "no prompt after %r" % line)
        mark = len(self.buf)
        self._send("read 0 512")
        # Wait for the prompt too, so that nothing of this read is still
        # on its way when the next command is sent.
        self._read_until(mark,
                         lambda b: b"read 512/512 bytes at offset 0" in b
                         and b.rstrip().endswith(b">"),
                         "image not readable")
        return self.buf[start:mark].decode(errors="replace")

    def _finish(self):
        # communicate() closes stdin: the tool sees EOF and exits.
        try:
            rest, _ = self.p.communicate(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            self.p.kill()
            rest, _ = self.p.communicate()
        return rest or b""

    def close(self):
        self._finish()


def normalize(text, img, tool):
    """Tool-independent form of a second tool's output."""
    name = os.path.basename(tool)
    lines = []
    for line in text.splitlines():
        # Timing line of a successful read varies from run to run.
        if re.match(r"^\d+ bytes, \d+ ops; ", line):
            continue
        line = line.replace(name + ":", "TOOL:")
        line = line.replace(img, "IMG")
        lines.append(line)
    return lines


def run_second(tool, args, fmt, img):
    p = subprocess.run([tool] + args + ["-f", fmt, img, "-c", "read 0 512"],
                       stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=TIMEOUT)
    return p.returncode, normalize(p.stdout.decode(errors="replace"), img,
                                   tool)


def proc_locks(img):
    """Byte ranges read-locked on img, as a sorted list of bytes."""
    ino = os.stat(img).st_ino
    locked = set()
    try:
        with open("/proc/locks") as f:
            for line in f:
                fields = line.split()
                # N: KIND ADVISORY READ PID MAJ:MIN:INO START END
                if len(fields) < 8 or fields[5].split(":")[-1] != str(ino):
                    continue
                start = int(fields[6])
                end = start + 1000 if fields[7] == "EOF" else int(fields[7])
                locked.update(range(start, end + 1))
    except OSError:
        return None
    return sorted(locked)


def outcome(holder_tool, hmode, hfmt, second_tool, smode, sfmt, img):
    h = Holder(holder_tool, HOLDER_MODES[hmode], hfmt, img)
    try:
        locks = proc_locks(img)
        res = run_second(second_tool, SECOND_MODES[smode], sfmt, img)
    finally:
        h.close()
    return locks, res


def make_images(tmp, qemu_img):
    raw = os.path.join(tmp, "img.raw")
    with open(raw, "wb") as f:
        f.truncate(1 << 20)
    qcow2 = None
    if qemu_img:
        qcow2 = os.path.join(tmp, "img.qcow2")
        subprocess.run([qemu_img, "create", "-q", "-f", "qcow2", qcow2, "1M"],
                       check=True, timeout=TIMEOUT)
    return raw, qcow2


def scenario(name, hfmt, sfmt, img, holders, seconds, qemu_io, failures):
    """Compare every (holder, second) tool pair against qemu-io/qemu-io."""
    checked = 0
    for hmode in HOLDER_MODES:
        for smode in SECOND_MODES:
            ref_locks, ref = outcome(qemu_io, hmode, hfmt, qemu_io, smode,
                                     sfmt, img)
            for ht in holders:
                for st in seconds:
                    if ht == qemu_io and st == qemu_io:
                        continue
                    locks, got = outcome(ht, hmode, hfmt, st, smode, sfmt,
                                         img)
                    what = ("%s: holder %s %s -f %s, second %s %s -f %s"
                            % (name, os.path.basename(ht), hmode, hfmt,
                               os.path.basename(st), smode, sfmt))
                    checked += 1
                    if got != ref:
                        failures.append("%s\n  qemu gives: %r\n  got:       %r"
                                        % (what, ref, got))
                    if ht != qemu_io and ref_locks is not None \
                            and locks != ref_locks:
                        failures.append("%s\n  qemu holder locks %s, "
                                        "qblock holder locks %s"
                                        % (what, ref_locks, locks))
    print("%s: %d pairs compared" % (name, checked))


def baseline(qemu_io, raw, qcow2, failures):
    """Sanity of the reference itself: known QEMU 7.2 outcomes."""
    expect = [
        # (holder mode, holder fmt, second mode, second fmt, rc, first line)
        ("rw", "raw", "rw", "raw", 0, "read 512/512 bytes at offset 0"),
        ("rw", "raw", "U", "raw", 1, "TOOL: can't open device IMG: "
         "force-share=on can only be used with read-only images"),
    ]
    if qcow2:
        expect += [
            ("rw", "qcow2", "rw", "qcow2", 1,
             "TOOL: can't open device IMG: Failed to get \"write\" lock"),
            ("rw", "qcow2", "ro", "qcow2", 1,
             "TOOL: can't open device IMG: Failed to get shared \"write\" lock"),
            ("ro", "qcow2", "rw", "qcow2", 1,
             "TOOL: can't open device IMG: Failed to get \"write\" lock"),
            ("rw", "qcow2", "ro-U", "qcow2", 0,
             "read 512/512 bytes at offset 0"),
        ]
    for hmode, hfmt, smode, sfmt, rc, first in expect:
        img = raw if hfmt == "raw" else qcow2
        _, (got_rc, lines) = outcome(qemu_io, hmode, hfmt, qemu_io, smode,
                                     sfmt, img)
        if got_rc != rc or not lines or lines[0] != first:
            failures.append("baseline %s %s / %s %s: expected rc %d %r, got "
                            "rc %d %r" % (hmode, hfmt, smode, sfmt, rc, first,
                                          got_rc, lines))
        if rc == 1 and "lock" in first and \
                (len(lines) < 2 or lines[1] !=
                 "Is another process using the image [IMG]?"):
            failures.append("baseline: missing hint line in %r" % lines)
    # Lock sets QEMU 7.2 takes (docs/drivers/file.md).
    want = {("rw", "raw"): [100, 101], ("ro", "raw"): [100],
            ("ro-U", "raw"): [100]}
    if qcow2:
        want.update({("rw", "qcow2"): [100, 101, 103, 201, 203],
                     ("ro", "qcow2"): [100, 201, 203],
                     ("ro-U", "qcow2"): [100]})
    for (mode, fmt), bytes_ in want.items():
        img = raw if fmt == "raw" else qcow2
        h = Holder(qemu_io, HOLDER_MODES[mode], fmt, img)
        try:
            got = proc_locks(img)
        finally:
            h.close()
        if got is not None and got != bytes_:
            failures.append("baseline: qemu-io %s %s locks %s, expected %s"
                            % (mode, fmt, got, bytes_))


def reopen_locks(tool, img):
    """Lock sets of a raw rw holder across reopen -r / reopen -w, or None
    when the tool has no reopen command."""
    h = Holder(tool, [], "raw", img)
    sets = [proc_locks(img)]
    try:
        for line in ("reopen -r", "reopen -w"):
            out = h.cmd(line)
            if "not supported" in out or "command not found" in out:
                return None
            sets.append(proc_locks(img))
    finally:
        h.close()
    return sets


def main():
    qemu_io = shutil.which("qemu-io")
    qemu_img = shutil.which("qemu-img")
    if not qemu_io:
        print("SKIP: qemu-io not installed")
        return 77
    build = os.environ.get("QBLOCK_BUILD", "")
    qblock_io = os.path.join(build, "tools", "qblock-io") if build else ""
    have_qblock = bool(qblock_io) and os.access(qblock_io, os.X_OK)

    scratch_parent = build if build and os.path.isdir(build) else None
    tmp = tempfile.mkdtemp(prefix="test_locks.", dir=scratch_parent)
    failures = []
    try:
        raw, qcow2 = make_images(tmp, qemu_img)
        baseline(qemu_io, raw, qcow2, failures)
        if not have_qblock:
            for f in failures:
                print("FAIL: " + f)
            if failures:
                return 1
            print("SKIP: %s not built; QEMU baseline passed"
                  % (qblock_io or "qblock-io"))
            return 77

        both = [qemu_io, qblock_io]
        ref = reopen_locks(qemu_io, raw)
        got = reopen_locks(qblock_io, raw)
        if got is None:
            print("note: qblock-io has no reopen command yet; reopen lock "
                  "sets not compared")
        elif got != ref:
            failures.append("reopen rw -> ro -> rw: qemu-io locks %s, "
                            "qblock-io locks %s" % (ref, got))
        else:
            print("reopen: lock sets %s match" % (got,))
        scenario("raw/raw", "raw", "raw", raw, both, both, qemu_io, failures)
        if qcow2:
            scenario("qcow2/raw", "qcow2", "raw", qcow2, [qemu_io], both,
                     qemu_io, failures)
            scenario("raw/qcow2", "raw", "qcow2", qcow2, both, [qemu_io],
                     qemu_io, failures)
            rc, lines = run_second(qblock_io, ["-r"], "qcow2", qcow2)
            if rc == 0:
                scenario("qcow2/qcow2", "qcow2", "qcow2", qcow2, both, both,
                         qemu_io, failures)
            else:
                print("note: qblock-io cannot open qcow2 yet (%r); "
                      "qcow2/qcow2 matrix not run" % lines[:1])
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    for f in failures:
        print("FAIL: " + f)
    if failures:
        print("%d mismatches" % len(failures))
        return 1
    print("all lock outcomes match QEMU")
    return 0


if __name__ == "__main__":
    sys.exit(main())
