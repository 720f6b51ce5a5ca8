#!/usr/bin/env python3
"""qcow2 amend across qblock and QEMU 7.2.

1. The same sequence of amends done by the real qemu-img on one copy and by
   qblock-img on another leaves images whose `qemu-img info` format
   specific data and virtual size are equal, whose data compare equal
   (`qemu-img compare`), and that the real `qemu-img check` finds clean
   after every step: compat downgrade (zero clusters expanded, with and
   without a backing file, lazy refcounts on, internal snapshots) and
   upgrade, lazy_refcounts, refcount_bits 1..64, size.
2. Refusals print qemu-img's message and leave the data untouched.
3. compat=0.10 on an image holding persistent bitmaps is refused (QEMU 7.2
   goes ahead and leaks the bitmap clusters); the bitmap survives.

Env: QBLOCK_BUILD, QBLOCK_SRC.  Exit 0 pass, 77 skip, 1 fail.
"""
import json
import os
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import interop  # noqa: E402
from interop import run, check, check_same  # noqa: E402


def ok(r, what):
    check(r.rc == 0, '%s failed: rc=%d\n%s%s' % (what, r.rc, r.out, r.err))
    return r


def qcheck(path, what):
    r = run(['qemu-img', 'check', path])
    check(r.rc == 0 and 'No errors were found' in r.out,
          '%s: qemu-img check: rc=%d\n%s%s' % (what, r.rc, r.out, r.err))


def spec(path):
    j = json.loads(ok(run(['qemu-img', 'info', '--output=json', '-U',
                           path]), 'info').out)
    return j['virtual-size'], j.get('format-specific')


def prepare(path, backing=None, create_opts='compat=1.1'):
    argv = ['qemu-img', 'create', '-q', '-f', 'qcow2', '-o', create_opts]
    if backing:
        argv += ['-b', backing, '-F', 'qcow2']
    ok(run(argv + [path, '64M']), 'create')
    ok(run(['qemu-io', '-c', 'write -P 1 0 1M', '-c', 'write -z 1M 128k',
            '-c', 'write -z 2M 64k', '-c', 'write -c -P 9 3M 64k',
            '-c', 'write -z -u 4M 128k', path]), 'fill')


SEQUENCES = [
    ['compat=0.10'],
    ['compat=0.10', 'compat=1.1,lazy_refcounts=on', 'lazy_refcounts=off'],
    ['lazy_refcounts=on', 'compat=0.10'],
    ['refcount_bits=1', 'refcount_bits=64', 'refcount_bits=8',
     'refcount_bits=16'],
    ['size=128M', 'size=32M'],
    ['compat=v2', 'compat=v3,refcount_bits=4'],
]


def main():
    qimg = interop.qblock_tool('qblock-img')
    for t in ('qemu-img', 'qemu-io'):
        interop.qemu_tool(t)
    w = interop.scratch_dir()
    back = os.path.join(w, 'back.qcow2')
    ok(run(['qemu-img', 'create', '-q', '-f', 'qcow2', back, '64M']), 'b')
    ok(run(['qemu-io', '-c', 'write -P 7 0 8M', back]), 'back data')

    # 1. Same amends, both tools.
    for with_backing in (False, True):
        for seq in SEQUENCES:
            ref, ours = os.path.join(w, 'ref.qcow2'), os.path.join(w, 'o.qcow2')
            orig = os.path.join(w, 'orig.qcow2')
            prepare(orig, back if with_backing else None)
            shutil.copy(orig, ref)
            shutil.copy(orig, ours)
            for o in seq:
                a = run(['qemu-img', 'amend', '-o', o, ref])
                b = run([qimg, 'amend', '-o', o, ours])
                check_same('amend -o %s' % o, a, b)
                qcheck(ours, 'after %s' % o)
                check(spec(ref) == spec(ours), 'after %s: info differs:\n'
                      '%s\n%s' % (o, spec(ref), spec(ours)))
                r = run(['qemu-img', 'compare', '-f', 'qcow2', '-F', 'qcow2',
                         orig, ours])
                check(r.rc == 0, 'after %s: data changed: %s%s'
                      % (o, r.out, r.err))
            for p in (ref, ours, orig):
                os.unlink(p)

    # Downgrade with an internal snapshot sharing zero clusters.
    ref, ours = os.path.join(w, 'sref.qcow2'), os.path.join(w, 'sours.qcow2')
    prepare(ref, back)
    ok(run(['qemu-img', 'snapshot', '-c', 's', ref]), 'snapshot')
    ok(run(['qemu-io', '-c', 'write -z 5M 64k', ref]), 'more zeroes')
    shutil.copy(ref, ours)
    ok(run(['qemu-img', 'amend', '-o', 'compat=0.10', ref]), 'ref amend')
    ok(run([qimg, 'amend', '-o', 'compat=0.10', ours]), 'amend')
    qcheck(ours, 'downgrade with snapshot')
    r = run(['qemu-img', 'compare', ref, ours])
    check(r.rc == 0, 'downgrade with snapshot: %s' % r.out)
    ok(run([qimg, 'snapshot', '-a', 's', ours]), 'apply')
    ok(run(['qemu-img', 'snapshot', '-a', 's', ref]), 'ref apply')
    qcheck(ours, 'apply after downgrade')
    r = run(['qemu-img', 'compare', ref, ours])
    check(r.rc == 0, 'snapshot data after downgrade: %s' % r.out)

    # 2. Refusals: message as qemu-img's, data untouched.
    orig = os.path.join(w, 'r.qcow2')
    prepare(orig)
    ok(run(['qemu-img', 'snapshot', '-c', 's', orig]), 'snapshot')
    for o in ('cluster_size=4096', 'compat=foo', 'refcount_bits=3',
              'refcount_bits=1', 'backing_file=x', 'lazy_refcounts=x',
              'data_file=x', 'encryption=on', 'size=1M'):
        ref, ours = os.path.join(w, 'a.qcow2'), os.path.join(w, 'b.qcow2')
        shutil.copy(orig, ref)
        shutil.copy(orig, ours)
        a = run(['qemu-img', 'amend', '-o', o, ref])
        b = run([qimg, 'amend', '-o', o, ours])
        if o == 'size=1M':
            # QEMU 7.2 resizes images with snapshots; qblock refuses.
            check(b.rc == 1 and 'snapshots' in b.err, 'size: ' + b.err)
        else:
            check_same('refused -o %s' % o, a, b)
        qcheck(ours, 'refused %s' % o)
        r = run(['qemu-img', 'compare', orig, ours])
        check(r.rc == 0, 'refused %s changed data' % o)

    # 3. Persistent bitmaps block a downgrade.
    bm = os.path.join(w, 'bm.qcow2')
    prepare(bm)
    ok(run(['qemu-img', 'bitmap', '--add', bm, 'b0']), 'bitmap')
    r = run([qimg, 'amend', '-o', 'compat=0.10', bm])
    check(r.rc == 1 and 'persistent dirty bitmaps' in r.err,
          'bitmap downgrade: rc=%d %s' % (r.rc, r.err))
    qcheck(bm, 'refused bitmap downgrade')
    size, fs = spec(bm)
    check(fs['data']['compat'] == '1.1' and
          [b['name'] for b in fs['data'].get('bitmaps', [])] == ['b0'],
          'bitmap image changed: %s' % fs)
    return 0


if __name__ == '__main__':
    sys.exit(interop.main(main))
