#!/usr/bin/env python3
"""Corrupt-image corpus: generate damaged qcow2 images and check that
qblock's tools reject or repair them cleanly -- never crash, hang or run out
of memory.

Generation starts from small valid images made by the real qemu-img (empty,
with data, with 512-byte clusters, with an internal snapshot, with a
persistent bitmap, version 2) and applies
  - hand-made corruptions, each named after what it breaks (truncation,
    L1/L2/refcount table offsets out of range or unaligned, metadata that
    overlaps, huge sizes and counts, refcount_order 7, garbage header_length,
    cluster_bits 8/22, unknown incompatible bits, bad bitmap directories, bad
    snapshot tables, ...), and
  - seeded random mutations of the metadata clusters,
and also takes every file already in tests/corrupt/corpus/ (reproducers of
past findings).

Each case is run through
    qblock-img info -f qcow2 CASE
    qblock-io -f qcow2 -r -c 'read 0 1M' CASE
    qblock-img check -f qcow2 CASE
    qblock-img check -f qcow2 -r all COPY-OF-CASE
with a 5 s time limit and a 1 GiB address-space limit (RLIMIT_AS).  Death
by a signal (including abort() on a failed allocation), a hang or a command
that fails without printing anything is a failure; any clean error message,
a successful read or a repair passes.

Usage:
  corrupt_images.py gen OUTDIR [--random N] [--seed S]   write the corpus
  corrupt_images.py run [--build DIR] [--random N] [--seed S] [-v] [FILTER]
Exit: 0 pass, 1 failure, 77 tools missing.
"""
import argparse
import gzip
import os
import random
import resource
import shutil
import struct
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS_DIR = os.path.join(HERE, 'corpus')
TIME_LIMIT = 5.0
MEM_LIMIT = 1 << 30

# Known failures in other people's code: case name -> where the bug is.
# A failing case listed here counts as an expected failure (the suite stays
# green); one that starts passing is reported as XPASS so it can be removed.
# Known bugs in the code under test: case name -> file and function at fault.
# A listed case that passes is reported as XPASS (remove it then).
# History (all fixed, reproducers kept in corpus/ as regression cases):
# bitmap.c handle_stale_extension freed a garbage pointer; snapshot.c
# rebuild_l1_list dereferenced NULL; check.c inc_refs indexed its GArray
# with a negative cluster index from a corrupt refcount-table offset;
# check -r all used a refcount-table entry below one cluster as a block.
EXPECTED_FAIL = {}

BITMAPS_MAGIC = 0x23852875


# ---- base images -----------------------------------------------------------

def sh(argv, cwd=None):
    p = subprocess.run(argv, cwd=cwd, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=60)
    if p.returncode != 0:
        raise RuntimeError('%s failed: %s' % (' '.join(argv),
                                              p.stdout.decode()))


def make_bases(qemu_img, qemu_io, d):
    """Small valid images; returns name -> bytes."""
    def qio(img, *cmds):
        argv = [qemu_io, '-f', 'qcow2']
        for c in cmds:
            argv += ['-c', c]
        sh(argv + [img])

    bases = {}
    p = os.path.join(d, 'empty.qcow2')
    sh([qemu_img, 'create', '-q', '-f', 'qcow2', p, '1M'])
    bases['empty'] = p

    p = os.path.join(d, 'data.qcow2')
    sh([qemu_img, 'create', '-q', '-f', 'qcow2', p, '4M'])
    qio(p, 'write -P 0x11 0 64k', 'write -P 0x22 1M 128k',
        'write -z 2M 64k', 'write -P 0x33 3M 4k')
    bases['data'] = p

    p = os.path.join(d, 'small.qcow2')
    sh([qemu_img, 'create', '-q', '-f', 'qcow2', '-o', 'cluster_size=512',
        p, '1M'])
    qio(p, 'write -P 0x44 0 8k', 'write -P 0x55 512k 4k')
    bases['small'] = p

    p = os.path.join(d, 'snap.qcow2')
    sh([qemu_img, 'create', '-q', '-f', 'qcow2', p, '1M'])
    qio(p, 'write -P 0x66 0 64k')
    sh([qemu_img, 'snapshot', '-c', 'snap1', p])
    qio(p, 'write -P 0x77 0 4k')
    bases['snap'] = p

    p = os.path.join(d, 'bitmap.qcow2')
    sh([qemu_img, 'create', '-q', '-f', 'qcow2', p, '1M'])
    qio(p, 'write -P 0x12 0 64k')
    sh([qemu_img, 'bitmap', '--add', p, 'bm0'])
    sh([qemu_img, 'bitmap', '--add', '-g', '512', p, 'bm1'])
    bases['bitmap'] = p

    p = os.path.join(d, 'v2.qcow2')
    sh([qemu_img, 'create', '-q', '-f', 'qcow2', '-o', 'compat=0.10',
        p, '1M'])
    qio(p, 'write -P 0x21 64k 64k')
    bases['v2'] = p

    out = {}
    for name, path in bases.items():
        with open(path, 'rb') as f:
            out[name] = f.read()
    return out


# ---- layout helpers ------------------------------------------------------

class Img:
    """A mutable image with accessors for the qcow2 structures in it."""

    def __init__(self, data):
        self.b = bytearray(data)

    def u32(self, off):
        return struct.unpack_from('>I', self.b, off)[0]

    def u64(self, off):
        return struct.unpack_from('>Q', self.b, off)[0]

    def p8(self, off, v):
        self._grow(off + 1)
        self.b[off] = v & 0xff

    def p16(self, off, v):
        self._grow(off + 2)
        struct.pack_into('>H', self.b, off, v & 0xffff)

    def p32(self, off, v):
        self._grow(off + 4)
        struct.pack_into('>I', self.b, off, v & 0xffffffff)

    def p64(self, off, v):
        self._grow(off + 8)
        struct.pack_into('>Q', self.b, off, v & 0xffffffffffffffff)

    def _grow(self, n):
        if len(self.b) < n:
            self.b += bytes(n - len(self.b))

    @property
    def cluster_size(self):
        return 1 << self.u32(20)

    @property
    def l1_offset(self):
        return self.u64(40)

    @property
    def reftable_offset(self):
        return self.u64(48)

    def first_l2(self):
        """(offset of the L1 entry, L2 table offset) of the first used L1
        entry, or None."""
        for i in range(self.u32(36)):
            e = self.u64(self.l1_offset + 8 * i) & 0x00fffffffffffe00
            if e:
                return self.l1_offset + 8 * i, e
        return None

    def first_l2_entry(self):
        """Offset of the first non-zero L2 entry, or None."""
        l2 = self.first_l2()
        if not l2:
            return None
        for i in range(self.cluster_size // 8):
            if self.u64(l2[1] + 8 * i):
                return l2[1] + 8 * i
        return None

    def first_refblock(self):
        return self.u64(self.reftable_offset) & ~0x1ff

    def header_ext(self, magic):
        """Offset of the data of the header extension with this magic."""
        off = self.u32(100) if self.u32(4) >= 3 else 72
        while off + 8 <= self.cluster_size:
            m, n = self.u32(off), self.u32(off + 4)
            if m == 0:
                return None
            if m == magic:
                return off + 8
            off += 8 + ((n + 7) & ~7)
        return None

    def bitmap_dir(self):
        ext = self.header_ext(BITMAPS_MAGIC)
        return ext, (self.u64(ext + 16) if ext else None)

    def snapshot_table(self):
        return self.u64(64)


def mutate_entry(off_fn, value_fn):
    """A corruption writing value_fn(img, entry) at off_fn(img), if the
    structure exists in the base image."""
    def f(img):
        off = off_fn(img)
        if off is None:
            return False
        img.p64(off, value_fn(img, off))
        return True
    return f


def hdr(off, fmt, v):
    def f(img):
        {'B': img.p8, 'H': img.p16, 'I': img.p32, 'Q': img.p64}[fmt](off, v)
        return True
    return f


def seq(*fns):
    def f(img):
        return all(fn(img) for fn in fns)
    return f


def truncate_to(n_fn):
    def f(img):
        img.b = img.b[:n_fn(img)]
        return True
    return f


def l1e(img):
    x = img.first_l2()
    return x[0] if x else None


def l2e(img):
    return img.first_l2_entry()


def reft0(img):
    return img.reftable_offset


def refblock_entry(i):
    def f(img):
        rb = img.first_refblock()
        if not rb or rb + 2 * i + 2 > len(img.b):
            return None
        return rb + 2 * i
    return f


def set_refcount16(i, v):
    def f(img):
        off = refblock_entry(i)(img)
        if off is None:
            return False
        img.p16(off, v)
        return True
    return f


def bm_field(rel, fmt, v):
    """Patch a field of the bitmaps extension (rel from its data)."""
    def f(img):
        ext, _ = img.bitmap_dir()
        if ext is None:
            return False
        return hdr(ext + rel, fmt, v)(img)
    return f


def bm_entry(rel, fmt, v):
    """Patch a field of the first bitmap directory entry."""
    def f(img):
        _, d = img.bitmap_dir()
        if d is None:
            return False
        return hdr(d + rel, fmt, v)(img)
    return f


def bm_table_entry(v):
    def f(img):
        _, d = img.bitmap_dir()
        if d is None:
            return False
        t = img.u64(d) if img.u64(d) else None
        if not t:
            return False
        img.p64(t, v)
        return True
    return f


def sn_field(rel, fmt, v):
    def f(img):
        st = img.snapshot_table()
        if not st or img.u32(60) == 0:
            return False
        return hdr(st + rel, fmt, v)(img)
    return f


EOF_FAR = 1 << 40

# name -> (base images it applies to, corruption)
CORRUPTIONS = {
    # -- truncation
    'trunc-50': (None, truncate_to(lambda i: 50)),
    'trunc-104': (None, truncate_to(lambda i: 104)),
    'trunc-header-cluster': (None, truncate_to(lambda i: i.cluster_size - 1)),
    'trunc-half': (None, truncate_to(lambda i: len(i.b) // 2)),
    'trunc-last-cluster': (None, truncate_to(
        lambda i: max(0, len(i.b) - i.cluster_size))),
    # -- header fields
    'cluster-bits-8': (None, hdr(20, 'I', 8)),
    'cluster-bits-22': (None, hdr(20, 'I', 22)),
    'cluster-bits-0': (None, hdr(20, 'I', 0)),
    'cluster-bits-63': (None, hdr(20, 'I', 63)),
    'cluster-bits-255': (None, hdr(20, 'I', 0xffffffff)),
    'size-huge': (None, hdr(24, 'Q', 1 << 62)),
    'size-max': (None, hdr(24, 'Q', 0xffffffffffffffff)),
    'size-2p55': (None, hdr(24, 'Q', 1 << 55)),
    'size-unaligned': (None, hdr(24, 'Q', 12345)),
    'refcount-order-7': (None, hdr(96, 'I', 7)),
    'refcount-order-6': (None, hdr(96, 'I', 6)),
    'refcount-order-0': (None, hdr(96, 'I', 0)),
    'refcount-order-huge': (None, hdr(96, 'I', 0xffffffff)),
    'header-length-0': (None, hdr(100, 'I', 0)),
    'header-length-50': (None, hdr(100, 'I', 50)),
    'header-length-105': (None, hdr(100, 'I', 105)),
    'header-length-huge': (None, hdr(100, 'I', 0xffffffff)),
    'header-length-cluster': (None, hdr(100, 'I', 65536)),
    'incompat-unknown': (None, hdr(72, 'Q', 1 << 40)),
    'incompat-all': (None, hdr(72, 'Q', 0xffffffffffffffff)),
    'incompat-extl2': (None, hdr(72, 'Q', 1 << 4)),
    'incompat-datafile': (None, hdr(72, 'Q', 1 << 2)),
    'incompat-corrupt': (None, hdr(72, 'Q', 1 << 1)),
    'incompat-dirty': (None, hdr(72, 'Q', 1)),
    'compression-type-bad': (None, seq(hdr(72, 'Q', 1 << 3),
                                       hdr(104, 'B', 0xff))),
    'crypt-method-9': (None, hdr(32, 'I', 9)),
    'version-0': (None, hdr(4, 'I', 0)),
    'version-huge': (None, hdr(4, 'I', 0xffffffff)),
    'backing-offset-eof': (None, seq(hdr(8, 'Q', EOF_FAR),
                                     hdr(16, 'I', 10))),
    'backing-size-huge': (None, seq(hdr(8, 'Q', 512), hdr(16, 'I', 0xffffffff))),
    'backing-size-cluster': (None, seq(hdr(8, 'Q', 0x200),
                                       hdr(16, 'I', 0xfe00))),
    'ext-len-huge': (None, hdr(0x70 + 4, 'I', 0xfffffff0)),
    'ext-chain-runs-off': (None, seq(hdr(0x70, 'I', 0x12345678),
                                     hdr(0x74, 'I', 0xff00))),
    # -- L1 table
    'l1-offset-eof': (None, hdr(40, 'Q', EOF_FAR)),
    'l1-offset-unaligned': (None, hdr(40, 'Q', 0x30008)),
    'l1-offset-zero': (None, hdr(40, 'Q', 0)),
    'l1-offset-header': (None, hdr(40, 'Q', 0)),
    'l1-size-huge': (None, hdr(36, 'I', 0x7fffffff)),
    'l1-size-max': (None, hdr(36, 'I', 0xffffffff)),
    'l1-size-zero': (None, hdr(36, 'I', 0)),
    'l1-size-4M-entries': (None, hdr(36, 'I', 4 << 20)),
    'l1e-eof': (['data', 'small', 'snap', 'bitmap', 'v2'],
                mutate_entry(l1e, lambda i, o: (1 << 63) | EOF_FAR)),
    'l1e-unaligned': (['data', 'small', 'snap', 'bitmap', 'v2'],
                      mutate_entry(l1e, lambda i, o: (1 << 63) |
                                   (i.u64(o) & ~(1 << 63)) + 8)),
    'l1e-header': (['data', 'small', 'snap', 'bitmap', 'v2'],
                   mutate_entry(l1e, lambda i, o: (1 << 63))),
    'l1e-points-reftable': (['data', 'small', 'snap', 'bitmap', 'v2'],
                            mutate_entry(l1e, lambda i, o: (1 << 63) |
                                         i.reftable_offset)),
    'l1e-points-l1': (['data', 'small', 'snap', 'bitmap', 'v2'],
                      mutate_entry(l1e, lambda i, o: (1 << 63) |
                                   i.l1_offset)),
    'l1e-reserved-bits': (['data', 'small', 'snap', 'bitmap', 'v2'],
                          mutate_entry(l1e, lambda i, o: i.u64(o) |
                                       0x7f000000000001ff)),
    'l1e-all-ones': (['data', 'small', 'snap', 'bitmap', 'v2'],
                     mutate_entry(l1e, lambda i, o: 0xffffffffffffffff)),
    # -- L2 entries
    'l2e-eof': (['data', 'small', 'snap', 'bitmap', 'v2'],
                mutate_entry(l2e, lambda i, o: (1 << 63) | EOF_FAR)),
    'l2e-unaligned': (['data', 'small', 'snap', 'bitmap', 'v2'],
                      mutate_entry(l2e, lambda i, o: i.u64(o) + 0x200)),
    'l2e-header': (['data', 'small', 'snap', 'bitmap', 'v2'],
                   mutate_entry(l2e, lambda i, o: (1 << 63) | 0)),
    'l2e-points-l1': (['data', 'small', 'snap', 'bitmap', 'v2'],
                      mutate_entry(l2e, lambda i, o: (1 << 63) |
                                   i.l1_offset)),
    'l2e-points-reftable': (['data', 'small', 'snap', 'bitmap', 'v2'],
                            mutate_entry(l2e, lambda i, o: (1 << 63) |
                                         i.reftable_offset)),
    'l2e-compressed-huge': (['data', 'small', 'snap', 'bitmap', 'v2'],
                            mutate_entry(l2e, lambda i, o: (1 << 62) |
                                         0x3fffffffffffffff)),
    'l2e-compressed-eof': (['data', 'small', 'snap', 'bitmap', 'v2'],
                           mutate_entry(l2e, lambda i, o: (1 << 62) |
                                        (1 << 50))),
    'l2e-all-ones': (['data', 'small', 'snap', 'bitmap', 'v2'],
                     mutate_entry(l2e, lambda i, o: 0xffffffffffffffff)),
    'l2e-zero-flag-v2': (['v2'], mutate_entry(l2e, lambda i, o:
                                              i.u64(o) | 1)),
    # -- refcount structures
    'reftable-offset-eof': (None, hdr(48, 'Q', EOF_FAR)),
    'reftable-offset-unaligned': (None, hdr(48, 'Q', 0x10010)),
    'reftable-offset-zero': (None, hdr(48, 'Q', 0)),
    'reftable-clusters-huge': (None, hdr(56, 'I', 0xffffffff)),
    'reftable-clusters-zero': (None, hdr(56, 'I', 0)),
    'reftable-clusters-256': (None, hdr(56, 'I', 256)),
    'reftable-entry-eof': (None, mutate_entry(reft0, lambda i, o: EOF_FAR)),
    'reftable-entry-unaligned': (None, mutate_entry(
        reft0, lambda i, o: i.u64(o) + 0x100)),
    'reftable-entry-zero': (None, mutate_entry(reft0, lambda i, o: 0)),
    'reftable-entry-tiny': (None, mutate_entry(reft0, lambda i, o: 1)),
    'reftable-entry-points-l1': (None, mutate_entry(
        reft0, lambda i, o: i.l1_offset)),
    'reftable-entry-self': (None, mutate_entry(
        reft0, lambda i, o: i.reftable_offset)),
    'refcount-header-zero': (None, set_refcount16(0, 0)),
    'refcount-all-zero': (None, seq(*[set_refcount16(k, 0)
                                      for k in range(16)])),
    'refcount-max': (None, seq(*[set_refcount16(k, 0xffff)
                                 for k in range(16)])),
    'refcount-far-beyond': (None, set_refcount16(4000, 5)),
    # -- snapshots
    'snapshots-count-2p32': (None, seq(hdr(60, 'I', 0xffffffff),
                                       hdr(64, 'Q', 0x10000))),
    'snapshots-count-70000': (None, seq(hdr(60, 'I', 70000),
                                        hdr(64, 'Q', 0x10000))),
    'snapshots-offset-eof': (['snap'], hdr(64, 'Q', EOF_FAR)),
    'snapshots-offset-unaligned': (['snap'], hdr(64, 'Q', 0x50008)),
    'snapshots-count-plus-one': (['snap'], hdr(60, 'I', 2)),
    'snapshot-l1-eof': (['snap'], sn_field(0, 'Q', EOF_FAR)),
    'snapshot-l1-unaligned': (['snap'], sn_field(0, 'Q', 0x30008)),
    'snapshot-l1-size-huge': (['snap'], sn_field(8, 'I', 0xffffffff)),
    'snapshot-id-size-huge': (['snap'], sn_field(12, 'H', 0xffff)),
    'snapshot-name-size-huge': (['snap'], sn_field(14, 'H', 0xffff)),
    'snapshot-extra-huge': (['snap'], sn_field(36, 'I', 0xffffffff)),
    'snapshot-vmstate-huge': (['snap'], sn_field(32, 'I', 0xffffffff)),
    # -- persistent bitmaps
    'bitmaps-count-huge': (['bitmap'], bm_field(0, 'I', 0xffffffff)),
    'bitmaps-count-zero': (['bitmap'], bm_field(0, 'I', 0)),
    'bitmaps-count-plus-one': (['bitmap'], bm_field(0, 'I', 3)),
    'bitmaps-reserved': (['bitmap'], bm_field(4, 'I', 1)),
    'bitmaps-dir-size-huge': (['bitmap'], bm_field(8, 'Q', 1 << 62)),
    'bitmaps-dir-size-zero': (['bitmap'], bm_field(8, 'Q', 0)),
    'bitmaps-dir-size-small': (['bitmap'], bm_field(8, 'Q', 10)),
    'bitmaps-dir-offset-eof': (['bitmap'], bm_field(16, 'Q', EOF_FAR)),
    'bitmaps-dir-offset-unaligned': (['bitmap'],
                                     bm_field(16, 'Q', 0x50004)),
    'bitmaps-dir-offset-zero': (['bitmap'], bm_field(16, 'Q', 0)),
    'bitmaps-no-autoclear': (['bitmap'], hdr(88, 'Q', 0)),
    'bitmap-table-eof': (['bitmap'], bm_entry(0, 'Q', EOF_FAR)),
    'bitmap-table-unaligned': (['bitmap'], bm_entry(0, 'Q', 0x50008)),
    'bitmap-table-size-huge': (['bitmap'], bm_entry(8, 'I', 0xffffffff)),
    'bitmap-table-size-zero': (['bitmap'], bm_entry(8, 'I', 0)),
    'bitmap-flags-unknown': (['bitmap'], bm_entry(12, 'I', 0xfffffffc)),
    'bitmap-flags-in-use': (['bitmap'], bm_entry(12, 'I', 3)),
    'bitmap-type-bad': (['bitmap'], bm_entry(16, 'B', 7)),
    'bitmap-granularity-8': (['bitmap'], bm_entry(17, 'B', 8)),
    'bitmap-granularity-64': (['bitmap'], bm_entry(17, 'B', 64)),
    'bitmap-granularity-255': (['bitmap'], bm_entry(17, 'B', 255)),
    'bitmap-name-size-zero': (['bitmap'], bm_entry(18, 'H', 0)),
    'bitmap-name-size-huge': (['bitmap'], bm_entry(18, 'H', 0xffff)),
    'bitmap-extra-huge': (['bitmap'], bm_entry(20, 'I', 0xffffffff)),
    'bitmap-extra-small': (['bitmap'], bm_entry(20, 'I', 8)),
    'bitmap-table-entry-eof': (['bitmap'], bm_table_entry(EOF_FAR)),
    'bitmap-table-entry-unaligned': (['bitmap'], bm_table_entry(0x50100)),
    'bitmap-table-entry-header': (['bitmap'], bm_table_entry(0x200 | 0)),
    'bitmap-table-entry-reserved': (['bitmap'],
                                    bm_table_entry(0xff000000000001fe)),
}


def random_mutation(base, rnd):
    img = Img(base)
    cs = img.cluster_size if 9 <= img.u32(20) <= 21 else 65536
    # Mutate the metadata-dense start of the file (header, reftable, first
    # refblock, L1, L2), sometimes anywhere.
    limit = min(len(img.b), 6 * cs) if rnd.random() < 0.8 else len(img.b)
    for _ in range(rnd.randint(1, 8)):
        kind = rnd.random()
        off = rnd.randrange(0, max(1, limit))
        if kind < 0.4:
            img.p8(off, img.b[off] ^ (1 << rnd.randrange(8)) if off < len(img.b) else 1)
        elif kind < 0.7:
            img.p8(off, rnd.choice([0, 0xff, 0x7f, 0x80, rnd.randrange(256)]))
        elif kind < 0.9:
            off &= ~7
            img.p64(off, rnd.choice([0, 0xffffffffffffffff, 1 << 63,
                                     (1 << 63) | rnd.randrange(1 << 30),
                                     rnd.randrange(1 << 64)]))
        else:
            img.b = img.b[:rnd.randrange(0, len(img.b) + 1)]
    return bytes(img.b)


def generate(outdir, qemu_img, qemu_io, n_random, seed):
    """Write every case to outdir; returns the sorted list of paths."""
    os.makedirs(outdir, exist_ok=True)
    bdir = tempfile.mkdtemp(prefix='bases-', dir=outdir)
    try:
        bases = make_bases(qemu_img, qemu_io, bdir)
    finally:
        shutil.rmtree(bdir, ignore_errors=True)
    paths = []

    def emit(name, data):
        p = os.path.join(outdir, name + '.qcow2')
        with open(p, 'wb') as f:
            f.write(data)
        paths.append(p)

    for bname, data in sorted(bases.items()):
        emit('valid@' + bname, data)
    for cname, (only, fn) in CORRUPTIONS.items():
        for bname, data in sorted(bases.items()):
            if only is not None and bname not in only:
                continue
            if only is None and bname not in ('empty', 'data', 'bitmap'):
                continue            # header cases: a few bases suffice
            img = Img(data)
            if fn(img):
                emit('%s@%s' % (cname, bname), bytes(img.b))
    rnd = random.Random(seed)
    names = sorted(bases)
    for k in range(n_random):
        bname = rnd.choice(names)
        emit('random-%d-%05d@%s' % (seed, k, bname),
             random_mutation(bases[bname], rnd))
    if os.path.isdir(CORPUS_DIR):
        for fn in sorted(os.listdir(CORPUS_DIR)):
            src = os.path.join(CORPUS_DIR, fn)
            if fn.endswith('.qcow2.gz'):
                # Reproducers are stored gzipped (they are mostly zeros).
                with gzip.open(src, 'rb') as f:
                    emit('corpus-' + fn[:-len('.qcow2.gz')], f.read())
    return sorted(paths)


# ---- running ---------------------------------------------------------------

def _limits():
    resource.setrlimit(resource.RLIMIT_AS, (MEM_LIMIT, MEM_LIMIT))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def run_limited(argv):
    """Returns (problem or None, output)."""
    try:
        p = subprocess.run(argv, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=TIME_LIMIT,
                           preexec_fn=_limits)
    except subprocess.TimeoutExpired as e:
        return 'hang (no exit after %gs)' % TIME_LIMIT, \
            (e.stdout or b'').decode(errors='replace')
    out = p.stdout.decode(errors='replace')
    if p.returncode < 0:
        return 'killed by signal %d' % -p.returncode, out
    if 'out of memory' in out.lower() or 'failed to allocate' in out:
        return 'allocation failure under %d MiB limit' % (MEM_LIMIT >> 20), out
    if p.returncode != 0 and not out.strip():
        return 'exit %d without any message' % p.returncode, out
    if p.returncode not in (0, 1, 2, 3, 63):
        return 'unexpected exit status %d' % p.returncode, out
    return None, out


def check_case(path, tools, scratch):
    """Returns a list of problem strings (empty: pass)."""
    problems = []
    img, io = tools['qblock-img'], tools['qblock-io']
    copy = os.path.join(scratch, 'repair.qcow2')
    shutil.copyfile(path, copy)
    for label, argv in (
            ('info', [img, 'info', '-f', 'qcow2', path]),
            ('read', [io, '-f', 'qcow2', '-r', '-c', 'read -q 0 1M', path]),
            ('check', [img, 'check', '-f', 'qcow2', path]),
            ('check -r all', [img, 'check', '-f', 'qcow2', '-r', 'all',
                              copy])):
        prob, out = run_limited(argv)
        if prob:
            tail = '\n'.join(out.strip().splitlines()[-3:])
            problems.append('%s: %s%s' % (label, prob,
                                          ('\n      ' + tail) if tail else ''))
    os.unlink(copy)
    return problems


def find_tools(build):
    tools = {
        'qblock-img': os.path.join(build, 'tools', 'qblock-img'),
        'qblock-io': os.path.join(build, 'tools', 'qblock-io'),
        'qemu-img': shutil.which('qemu-img'),
        'qemu-io': shutil.which('qemu-io'),
    }
    missing = [k for k, v in tools.items()
               if not v or not os.access(v, os.X_OK)]
    return tools, missing


def case_name(path):
    return os.path.basename(path)[:-len('.qcow2')] \
        if path.endswith('.qcow2') else os.path.basename(path)


def run_suite(build, n_random, seed, filters=(), verbose=False):
    """Returns (counts dict, failure lines) or (None, reason)."""
    tools, missing = find_tools(build)
    if missing:
        return None, 'missing: ' + ', '.join(missing)
    base = os.path.join(build, 'corrupt-scratch')
    os.makedirs(base, exist_ok=True)
    work = tempfile.mkdtemp(prefix='k-', dir=base)
    counts = dict(passed=0, failed=0, xfail=0, xpass=0)
    lines = []
    try:
        cases = generate(os.path.join(work, 'cases'), tools['qemu-img'],
                         tools['qemu-io'], n_random, seed)
        for path in cases:
            name = case_name(path)
            if filters and not any(f in name for f in filters):
                continue
            problems = check_case(path, tools, work)
            # Keys: the full case name, the corruption name, or '@BASE'
            # for every case made from one base image.
            known = EXPECTED_FAIL.get(name) or \
                EXPECTED_FAIL.get(name.split('@')[0])
            base_known = EXPECTED_FAIL.get('@' + name.split('@')[1]) \
                if '@' in name else None
            if problems and not known:
                known = base_known      # a base-wide entry: no XPASS noise
            if problems and known:
                counts['xfail'] += 1
                if verbose:
                    lines.append('XFAIL %s (%s)' % (name, known))
            elif problems:
                counts['failed'] += 1
                lines.append('FAIL %s\n    %s' % (name,
                                                  '\n    '.join(problems)))
                keep = os.path.join(base, 'failed')
                os.makedirs(keep, exist_ok=True)
                shutil.copyfile(path, os.path.join(keep,
                                                   os.path.basename(path)))
            elif known:
                counts['xpass'] += 1
                lines.append('XPASS %s: fixed? remove it from '
                             'EXPECTED_FAIL (%s)' % (name, known))
            else:
                counts['passed'] += 1
                if verbose:
                    lines.append('ok %s' % name)
        return counts, lines
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest='cmd', required=True)
    g = sub.add_parser('gen')
    g.add_argument('outdir')
    g.add_argument('--random', type=int, default=50)
    g.add_argument('--seed', type=int, default=1)
    r = sub.add_parser('run')
    r.add_argument('--build', default=os.environ.get('QBLOCK_BUILD', 'build'))
    r.add_argument('--random', type=int, default=50)
    r.add_argument('--seed', type=int, default=1)
    r.add_argument('-v', '--verbose', action='store_true')
    r.add_argument('filters', nargs='*')
    args = ap.parse_args()
    if args.cmd == 'gen':
        qi, qo = shutil.which('qemu-img'), shutil.which('qemu-io')
        if not qi or not qo:
            print('qemu-img / qemu-io not installed')
            return 77
        for p in generate(args.outdir, qi, qo, args.random, args.seed):
            print(p)
        return 0
    counts, lines = run_suite(os.path.abspath(args.build), args.random,
                              args.seed, args.filters, args.verbose)
    if counts is None:
        print('skip: ' + lines)
        return 77
    for line in lines:
        print(line)
    print('%(passed)d cases passed, %(failed)d failed, %(xfail)d expected '
          'failures, %(xpass)d unexpectedly passed' % counts)
    return 1 if counts['failed'] else 0


if __name__ == '__main__':
    sys.exit(main())
