#!/usr/bin/env python3
"""Opening damaged qcow2 images: qblock-io must fail (or succeed) exactly
like qemu-io 7.2, with the same message (program name aside), and never
crash.  Each case patches fields of a fresh `qemu-img create` image.
Environment: QBLOCK_BUILD.  Exit 0 pass, 77 skip, 1 fail.
"""
import os
import shutil
import struct
import subprocess
import sys
import tempfile

BUILD = os.environ.get("QBLOCK_BUILD", "build")
QIO = os.path.abspath(os.path.join(BUILD, "tools", "qblock-io"))

# name: list of (offset, struct format or None for raw bytes, value)
CASES = {
    "magic": [(0, "I", 0x12345678)],
    "version1": [(4, "I", 1)],
    "version4": [(4, "I", 4)],
    "cluster-bits-8": [(20, "I", 8)],
    "cluster-bits-22": [(20, "I", 22)],
    "refcount-order-7": [(96, "I", 7)],
    "incompat-unknown": [(72, "Q", (1 << 4) | (1 << 10))],
    "incompat-named": [(72, "Q", (1 << 5) | (1 << 0) | (1 << 12)),
                       (0x139, "B", 5)],
    "corrupt-bit": [(72, "Q", 1 << 1)],
    "dirty-bit": [(72, "Q", 1)],
    "header-length-short": [(100, "I", 50)],
    "header-length-105": [(100, "I", 105)],
    "header-length-huge": [(100, "I", 0x20000)],
    "l1-offset": [(40, "Q", 0x30001)],
    "l1-too-large": [(36, "I", 0x7fffffff)],
    "l1-too-small": [(36, "I", 0)],
    "reftable-offset": [(48, "Q", 0x10001)],
    "reftable-too-large": [(56, "I", 0x1000000)],
    "reftable-none": [(56, "I", 0)],
    "crypt-aes": [(32, "I", 1)],
    "crypt-3": [(32, "I", 3)],
    "compression-type-5": [(104, "B", 5)],
    "compression-zstd-no-bit": [(104, "B", 1)],
    "compression-bit-zlib": [(72, "Q", 1 << 3)],
    "size-huge": [(24, "Q", 1 << 62)],
    "backing-offset": [(8, "Q", 0x10000000)],
    "snapshot-offset": [(60, "I", 1), (64, "Q", 0x10001)],
    "snapshots-many": [(60, "I", 70000), (64, "Q", 0x10000)],
    "ext-too-large": [(0x74, "I", 0x10000)],
    "compat-unknown": [(80, "Q", 1 << 5)],
    "autoclear-unknown": [(88, "Q", 1 << 5)],
    "v2": [(4, "I", 2)],
    "size-unaligned": [(24, "Q", 12345)],
    "truncated": "truncate",
}


def patch(path, edits):
    with open(path, "r+b") as f:
        if edits == "truncate":
            f.truncate(50)
            return
        for off, fmt, val in edits:
            f.seek(off)
            f.write(struct.pack(">" + fmt, val))


def run(tool, path):
    p = subprocess.run([tool, "-f", "qcow2", "-c", "read -P 0 64k 4k", path],
                       capture_output=True, text=True, timeout=60)
    name = os.path.basename(tool)
    out = (p.stdout + p.stderr).replace(name, "PROG")
    out = out.replace("/a/", "/X/").replace("/b/", "/X/")
    # Timing lines differ; keep only the first line of each result.
    lines = [l for l in out.splitlines() if "ops/sec" not in l]
    return p.returncode, lines


def main():
    if not shutil.which("qemu-io") or not os.path.exists(QIO):
        return 77
    failed = 0
    with tempfile.TemporaryDirectory(dir=os.path.abspath(BUILD)) as tmp:
        base = os.path.join(tmp, "base.qcow2")
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", base,
                        "64M"], check=True)
        for name, edits in CASES.items():
            for d in ("a", "b"):
                os.makedirs(os.path.join(tmp, d), exist_ok=True)
            a = os.path.join(tmp, "a", name + ".qcow2")
            b = os.path.join(tmp, "b", name + ".qcow2")
            shutil.copy(base, a)
            patch(a, edits)
            shutil.copy(a, b)
            ra = run("qemu-io", a)
            rb = run(QIO, b)
            ok = ra == rb and rb[0] >= 0
            print("%s %s%s" % ("ok" if ok else "FAIL", name,
                               "" if ok else ": %r vs %r" % (ra, rb)))
            failed += not ok
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
