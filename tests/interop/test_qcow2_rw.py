#!/usr/bin/env python3
"""qcow2 read/write interop with QEMU 7.2.

For each scenario: create two identical images with the real qemu-img, run
the same qemu-io command list on one with the real qemu-io and on the other
with qblock-io, then require that `qemu-img check` finds no errors and no
leaks in ours and that `qemu-img compare` says the images are identical.
Then read the QEMU-written image back through qblock-io with the patterns
used, to check the read path on images QEMU wrote.

Environment: QBLOCK_BUILD (build dir).  Exit 0 pass, 77 skip, 1 fail.
"""
import os
import shutil
import subprocess
import sys
import tempfile

BUILD = os.environ.get("QBLOCK_BUILD", "build")
QIO = os.path.join(BUILD, "tools", "qblock-io")

# (name, qemu-img create -o options, size, backing?, [qemu-io commands])
BASIC = [
    "write -P 0xab 0 100k",
    "write -P 0xcd 1M 64k",
    "write -P 0x11 1000 3000",
    "write -z 2M 64k",
    "write -P 0x22 3M 1k",
    "discard 1M 64k",
    "write -c -P 0x33 2560k 128k",
    "write -P 0x44 2600k 4k",
    "write -z 3000k 100k",
    "write -z -u 0 64k",
    "write -P 0x55 4000k 96k",
]
SCENARIOS = [
    ("default", "", "4M", False, BASIC),
    ("v2", "compat=0.10", "4M", False, BASIC),
    ("cl512", "cluster_size=512", "4M", False, BASIC),
    ("cl4k-rc1", "cluster_size=4096,refcount_bits=1", "4M", False, BASIC),
    ("rc64", "refcount_bits=64", "4M", False, BASIC),
    ("zstd", "compression_type=zstd", "4M", False, BASIC),
    ("extl2", "extended_l2=on", "4M", False, BASIC),
    ("extl2-small", "extended_l2=on,cluster_size=16k", "4M", False, BASIC),
    ("lazy", "lazy_refcounts=on", "4M", False, BASIC),
    ("backing", "", "4M", True, BASIC),
    ("backing-v2", "compat=0.10", "4M", True, BASIC),
    ("backing-extl2", "extended_l2=on", "4M", True, BASIC),
    # Enough clusters to need more refcount blocks and a bigger table.
    ("grow-refcounts", "cluster_size=512,refcount_bits=64", "64M", False,
     ["write -P 0x66 0 3M", "write -P 0x67 40M 1M", "discard 1M 512k",
      "write -P 0x68 2M 64k"]),
    ("grow-refcounts-4k", "cluster_size=4k,refcount_bits=64", "256M", False,
     ["write -P 0x66 0 3M", "write -P 0x67 200M 1M", "discard 1M 512k",
      "write -P 0x68 2M 64k", "write -P 0x69 2M 4k"]),
    ("cl4k-compress", "cluster_size=4k", "4M", False, BASIC),
    # Tiny caches and L2 slices: eviction and write-back order.
    ("tiny-cache", "", "64M", True, BASIC + ["write -P 0x77 8M 9M"],
     "l2-cache-entry-size=512,l2-cache-size=1024,refcount-cache-size=1"),
    ("tiny-cache-extl2", "extended_l2=on,cluster_size=16k", "64M", True,
     BASIC + ["write -P 0x77 8M 9M"],
     "l2-cache-entry-size=1024,l2-cache-size=1,refcount-cache-size=1,"
     "overlap-check=all"),
    ("lazy-opt", "", "64M", False, BASIC, "lazy-refcounts=on"),
    ("truncate", "cluster_size=4k", "4M", False,
     ["write -P 1 0 4M", "truncate 3000k", "truncate 3M", "write -P 2 2M 1M",
      "truncate 6G", "write -P 5 5G 64k", "truncate 1M", "truncate 2M"]),
    ("grow-l1", "cluster_size=512", "64M", False,
     ["write -P 0x70 63M 1M", "write -P 0x71 0 512"]),
]


def run(cmd, check=True):
    p = subprocess.run(cmd, capture_output=True, text=True)
    if check and p.returncode != 0:
        raise RuntimeError("%s failed (%d): %s%s" % (" ".join(cmd),
                           p.returncode, p.stdout, p.stderr))
    return p


def scenario(tmp, name, opts, size, backing, cmds, qopts=None):
    ref = os.path.join(tmp, name + "-ref.qcow2")
    mine = os.path.join(tmp, name + "-mine.qcow2")
    create = ["qemu-img", "create", "-q", "-f", "qcow2"]
    if opts:
        create += ["-o", opts]
    if backing:
        base = os.path.join(tmp, name + "-base.qcow2")
        run(create + [base, size])
        run(["qemu-io", "-c", "write -P 0x99 0 4M", "-c",
             "write -P 0x98 1500k 7k", base])
        create += ["-b", base, "-F", "qcow2"]
    run(create + [ref] + ([] if backing else [size]))
    run(create + [mine] + ([] if backing else [size]))
    args = []
    for c in cmds:
        args += ["-c", c]
    run(["qemu-io"] + args + [ref])
    if qopts:
        p = run([QIO, "--image-opts"] + args +
                ["driver=qcow2,file.filename=%s,%s" % (mine, qopts)],
                check=False)
    else:
        p = run([QIO] + args + [mine], check=False)
    if p.returncode != 0 or "failed" in p.stdout + p.stderr:
        return "qblock-io failed: " + p.stdout + p.stderr
    p = run(["qemu-img", "check", mine], check=False)
    if p.returncode != 0:
        return "qemu-img check: " + p.stdout + p.stderr
    p = run(["qemu-img", "compare", ref, mine], check=False)
    if p.returncode != 0:
        return "qemu-img compare: " + p.stdout + p.stderr
    # Read QEMU's image through qblock and ours through qemu-io: compare
    # whole-image contents by hashing reads in 1 MiB steps.
    p1 = run([QIO, "-r", "-c", "read -v 0 64k", ref], check=False)
    p2 = run(["qemu-io", "-r", "-c", "read -v 0 64k", ref], check=False)
    if p1.stdout.splitlines()[:-1] != p2.stdout.splitlines()[:-1]:
        return "read -v of QEMU's image differs"
    for c in cmds:
        parts = c.split()
        if parts[0] == "write" and "-P" in parts:
            pat = parts[parts.index("-P") + 1]
            off, ln = parts[-2], parts[-1]
            r1 = run([QIO, "-r", "-c", "read -v %s %s" % (off, ln), ref],
                     check=False)
            r2 = run(["qemu-io", "-r", "-c", "read -v %s %s" % (off, ln),
                      ref], check=False)
            if r1.stdout.splitlines()[:-1] != r2.stdout.splitlines()[:-1]:
                return "read of %s %s (pattern %s) differs" % (off, ln, pat)
    return None


def snapshot_scenario(tmp):
    """Writes over clusters shared with an internal snapshot (COW of
    non-COPIED clusters and L2 tables); the snapshot must stay intact."""
    imgs = {}
    for who in ("ref", "mine"):
        path = os.path.join(tmp, "snap-%s.qcow2" % who)
        run(["qemu-img", "create", "-q", "-f", "qcow2", path, "4M"])
        run(["qemu-io", "-c", "write -P 1 0 1M", "-c",
             "write -c -P 2 2M 64k", path])
        run(["qemu-img", "snapshot", "-c", "s1", path])
        imgs[who] = path
    args = ["-c", "write -P 3 100k 10k", "-c", "write -P 4 2M 4k", "-c",
            "discard 512k 128k", "-c", "write -z 768k 64k"]
    run(["qemu-io"] + args + [imgs["ref"]])
    p = run([QIO] + args + [imgs["mine"]], check=False)
    if p.returncode != 0:
        return "qblock-io failed: " + p.stderr
    for step in ("after writes", "after snapshot -a"):
        p = run(["qemu-img", "check", imgs["mine"]], check=False)
        if p.returncode != 0:
            return "check %s: %s" % (step, p.stdout)
        p = run(["qemu-img", "compare", imgs["ref"], imgs["mine"]],
                check=False)
        if p.returncode != 0:
            return "compare %s: %s" % (step, p.stdout)
        for img in imgs.values():
            run(["qemu-img", "snapshot", "-a", "s1", img])
    return None


def main():
    if not shutil.which("qemu-img") or not shutil.which("qemu-io"):
        return 77
    if not os.path.exists(QIO):
        print("qblock-io not built")
        return 77
    failed = 0
    with tempfile.TemporaryDirectory(dir=os.path.abspath(BUILD)) as tmp:
        for sc in SCENARIOS:
            try:
                err = scenario(tmp, *sc)
            except RuntimeError as e:
                err = str(e)
            print("%s %s%s" % ("ok" if not err else "FAIL", sc[0],
                               "" if not err else ": " + err))
            failed += bool(err)
        try:
            err = snapshot_scenario(tmp)
        except RuntimeError as e:
            err = str(e)
        print("%s snapshot%s" % ("ok" if not err else "FAIL",
                                 "" if not err else ": " + err))
        failed += bool(err)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
