#!/usr/bin/env python3
"""qblock-img create -f qcow2 writes the same bytes as qemu-img 7.2.

Each option set is created by both tools in two directories under the same
file names (so recorded backing/data file names match), then compared with
a byte-for-byte comparison of the image (and of the data file, if any),
of `qemu-img map --output=json` and of the allocated size (st_blocks, what
`disk size` shows: preallocation=falloc|full must really allocate).
Also checks that both tools reject bad option combinations with the same
message, and that `resize --preallocation=falloc|full` of the same image
(made by qemu-img) leaves byte-identical files.  Environment: QBLOCK_BUILD.  Exit 0 pass, 77 skip, 1 fail.
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
    (["-o", "preallocation=falloc"], "64M"),
    (["-o", "preallocation=full"], "64M"),
    (["-o", "preallocation=falloc,cluster_size=4k"], "20M"),
    (["-o", "preallocation=full,cluster_size=512"], "4M"),
    (["-o", "preallocation=falloc,refcount_bits=1,cluster_size=4k"], "300M"),
    (["-o", "preallocation=falloc,refcount_bits=64"], "1G"),
    (["-o", "preallocation=falloc,extended_l2=on"], "64M"),
    (["-o", "preallocation=falloc,cluster_size=2M"], "1000"),
    (["-o", "preallocation=falloc,compat=0.10"], "1G"),
    (["-o", "preallocation=full,lazy_refcounts=on"], "1M"),
    (["-o", "preallocation=full,data_file=data.raw"], "8M"),
    (["-o", "preallocation=falloc,extended_l2=on", "-b", "base.qcow2",
      "-F", "qcow2"], "64M"),
    (["-o", "preallocation=metadata,extended_l2=on"], "64M"),
    (["-o", "preallocation=metadata,extended_l2=on", "-b", "base.qcow2",
      "-F", "qcow2"], "64M"),
]

# (options of the image qemu-img creates, size, resize arguments)
RESIZES = [
    ([], "64M", ["--preallocation=falloc", "128M"]),
    ([], "64M", ["--preallocation=full", "+1M"]),
    (["-o", "cluster_size=4k"], "1000", ["--preallocation=falloc", "1M"]),
    (["-o", "preallocation=metadata"], "64M",
     ["--preallocation=falloc", "100M"]),
    (["-o", "cluster_size=4k,refcount_bits=1"], "100M",
     ["--preallocation=full", "300M"]),
    (["-o", "extended_l2=on"], "64M", ["--preallocation=falloc", "130M"]),
    (["-o", "compat=0.10"], "64M", ["--preallocation=full", "65M"]),
]

ERRORS = [
    ["-o", "preallocation=full", "-b", "base.qcow2", "-F", "qcow2"],
    ["-o", "preallocation=metadata,compat=0.10,refcount_bits=8", "-b",
     "base.qcow2", "-F", "qcow2"],
    ["-o", "extended_l2=on,cluster_size=8k,refcount_bits=3"],
    ["-o", "compat=0.10,lazy_refcounts=on,refcount_bits=3"],
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


def same_files(dirs, name):
    """None if name (and data.raw) are identical on both sides, in bytes,
    in qemu-img's map and in allocated blocks; else what differs."""
    for f in (name, "data.raw"):
        a = os.path.join(dirs["qemu"], f)
        b = os.path.join(dirs["qblock"], f)
        if os.path.exists(a) != os.path.exists(b):
            return "%s exists only on one side" % f
        if not os.path.exists(a):
            continue
        if not filecmp.cmp(a, b, shallow=False):
            return "%s differs" % f
        # st_blocks also counts the file system's extent tree, which
        # depends on fragmentation: allow a few blocks of that.
        if abs(os.stat(a).st_blocks - os.stat(b).st_blocks) > 64:
            return "%s: %d vs %d blocks allocated" % (
                f, os.stat(a).st_blocks, os.stat(b).st_blocks)
    maps = [run(["qemu-img", "map", "--output=json", name], dirs[w]).stdout
            for w in ("qemu", "qblock")]
    if maps[0] != maps[1]:
        return "map differs: %s vs %s" % (maps[0][:300], maps[1][:300])
    return None


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
                err = same_files(dirs, name)
            for d in dirs.values():
                if os.path.exists(os.path.join(d, "data.raw")):
                    os.unlink(os.path.join(d, "data.raw"))
                # big preallocated images: keep the scratch space small
                os.unlink(os.path.join(d, name))
            print("%s create %s %s%s" % ("FAIL" if err else "ok",
                  " ".join(opts), size, ": " + err if err else ""))
            failed += bool(err)
        for i, (opts, size, args) in enumerate(RESIZES):
            name = "r%d.qcow2" % i
            err = None
            for who, tool in (("qemu", "qemu-img"), ("qblock", QIMG)):
                r = run(["qemu-img", "create", "-q", "-f", "qcow2"] + opts +
                        [name, size], dirs[who])
                if r.returncode == 0:
                    r = run(["qemu-io", "-f", "qcow2", "-c",
                             "write -P 7 0 512", name], dirs[who])
                if r.returncode == 0:
                    r = run([tool, "resize", "-q"] + args[:-1] +
                            [name, args[-1]], dirs[who])
                if r.returncode != 0:
                    err = "%s failed: %s" % (tool, r.stderr)
            err = err or same_files(dirs, name)
            for d in dirs.values():
                os.unlink(os.path.join(d, name))
            print("%s resize %s %s -> %s%s" % (
                "FAIL" if err else "ok", " ".join(opts), size,
                " ".join(args), ": " + err if err else ""))
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
