#!/usr/bin/env python3
"""qblock-img create -f qcow2 writes the same bytes as qemu-img 7.2.

Each option set is created by both tools in two directories under the same
file names (so recorded backing/data file names match), then compared with
a byte-for-byte comparison of the image (and of the data file, if any).
Also checks that both tools reject bad option combinations with the same
message.  Environment: QBLOCK_BUILD.  Exit 0 pass, 77 skip, 1 fail.
"""
import filecmp
import os
import shutil
import subprocess
import sys
import tempfile

BUILD = os.environ.get("QBLOCK_BUILD", "build")
QIMG = os.path.abspath(os.path.join(BUILD, "tools", "qblock-img"))

IDENTICAL = [
    ([], "64M"),
    (["-o", "compat=0.10"], "64M"),
    (["-o", "cluster_size=4k"], "64M"),
    (["-o", "cluster_size=512"], "10G"),
    (["-o", "cluster_size=2M"], "1T"),
    (["-o", "refcount_bits=1"], "64M"),
    (["-o", "refcount_bits=64"], "64M"),
    (["-o", "lazy_refcounts=on"], "64M"),
    (["-o", "extended_l2=on"], "64M"),
    (["-o", "compression_type=zstd"], "64M"),
    (["-o", "preallocation=metadata"], "100M"),
    (["-o", "preallocation=metadata,cluster_size=4k"], "20M"),
    (["-o", "data_file=data.raw"], "1M"),
    (["-o", "data_file=data.raw,data_file_raw=on"], "1M"),
    (["-b", "base.qcow2", "-F", "qcow2"], "64M"),
    (["-o", "compat=0.10", "-b", "base.qcow2", "-F", "qcow2"], "1G"),
    ([], "2T"),
    ([], "1000"),
]

ERRORS = [
    ["-o", "cluster_size=1000"],
    ["-o", "refcount_bits=3"],
    ["-o", "compat=0.10,refcount_bits=8"],
    ["-o", "compat=0.10,lazy_refcounts=on"],
    ["-o", "compat=0.10,extended_l2=on"],
    ["-o", "extended_l2=on,cluster_size=8k"],
    ["-o", "compat=0.10,compression_type=zstd"],
    ["-o", "data_file_raw=on"],
    ["-o", "compat=0.10,data_file=x.raw"],
    ["-o", "cluster_size=512"],
]


def run(cmd, cwd):
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)


def main():
    if not shutil.which("qemu-img"):
        return 77
    if not os.path.exists(QIMG):
        return 77
    failed = 0
    with tempfile.TemporaryDirectory(dir=os.path.abspath(BUILD)) as tmp:
        dirs = {}
        for who in ("qemu", "qblock"):
            d = os.path.join(tmp, who)
            os.mkdir(d)
            run(["qemu-img", "create", "-q", "-f", "qcow2", "base.qcow2",
                 "64M"], d)
            dirs[who] = d
        for i, (opts, size) in enumerate(IDENTICAL):
            name = "img%d.qcow2" % i
            r1 = run(["qemu-img", "create", "-q", "-f", "qcow2"] + opts +
                     [name, size], dirs["qemu"])
            r2 = run([QIMG, "create", "-q", "-f", "qcow2"] + opts +
                     [name, size], dirs["qblock"])
            err = None
            if r1.returncode != 0:
                err = "qemu-img failed: " + r1.stderr
            elif r2.returncode != 0:
                err = "qblock-img failed: " + r2.stderr
            else:
                for f in (name, "data.raw"):
                    a = os.path.join(dirs["qemu"], f)
                    b = os.path.join(dirs["qblock"], f)
                    if os.path.exists(a) != os.path.exists(b):
                        err = "%s exists only on one side" % f
                    elif os.path.exists(a) and \
                            not filecmp.cmp(a, b, shallow=False):
                        err = "%s differs" % f
            for d in dirs.values():
                if os.path.exists(os.path.join(d, "data.raw")):
                    os.unlink(os.path.join(d, "data.raw"))
            print("%s create %s %s%s" % ("FAIL" if err else "ok",
                  " ".join(opts), size, ": " + err if err else ""))
            failed += bool(err)
        for opts in ERRORS:
            r1 = run(["qemu-img", "create", "-q", "-f", "qcow2"] + opts +
                     ["e.qcow2", "1T"], dirs["qemu"])
            r2 = run([QIMG, "create", "-q", "-f", "qcow2"] + opts +
                     ["e.qcow2", "1T"], dirs["qblock"])
            m1 = r1.stderr.replace("qemu-img", "PROG")
            m2 = r2.stderr.replace("qblock-img", "PROG")
            ok = r1.returncode == r2.returncode and m1 == m2
            print("%s error %s%s" % ("ok" if ok else "FAIL", " ".join(opts),
                  "" if ok else ": %r vs %r" % (m1, m2)))
            failed += not ok
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
