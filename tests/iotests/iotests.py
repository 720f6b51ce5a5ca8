# Helpers for python iotests (stdlib only).
#
# A python test does:
#     import iotests
#     iotests.script_main(test_fn, supported_fmts=['raw'])
# and prints through iotests.log(), which applies the filters, so that its
# output can be compared with the golden NNN.out like a bash test's.
# The runner (./check) provides the environment (QBLOCK_IO, IMGFMT,
# TEST_DIR, TEST_IMG, NOTRUN_FILE).

import os
import re
import subprocess
import sys

qemu_io_prog = os.environ.get('QBLOCK_IO', 'qblock-io')
qemu_img_prog = os.environ.get('QBLOCK_IMG', 'qblock-img')
imgfmt = os.environ.get('IMGFMT', 'raw')
test_dir = os.environ.get('TEST_DIR', '/tmp')
test_img = os.environ.get('TEST_IMG', os.path.join(test_dir, 't.' + imgfmt))


def notrun(reason):
    """Skip the test: the runner reports it with reason."""
    with open(os.environ['NOTRUN_FILE'], 'w') as f:
        f.write(reason + '\n')
    sys.exit(0)


def supported_fmts(fmts):
    if imgfmt not in fmts and 'generic' not in fmts:
        notrun('not suitable for this image format: %s' % imgfmt)


# --- filters ---------------------------------------------------------------

_TIMING = re.compile(r'[0-9]* ops; [0-9/:. sec]*')
_RATE = re.compile(r'\([0-9.]* [A-Za-z]*/sec and [0-9.]* ops/sec\)')
_CSV = re.compile(r'^([0-9]+),([0-9]+),[0-9:.]+,[0-9.]+,[0-9.]+$', re.M)


def filter_qemu_io(text):
    """Hide timings ("X ops; XX:XX:XX.X (XXX YYY/sec and XXX ops/sec)")
    and the interactive prompt, as common.filter's _filter_qemu_io."""
    text = _TIMING.sub('X ops; XX:XX:XX.X ', text)
    text = _RATE.sub('(XXX YYY/sec and XXX ops/sec)', text)
    text = _CSV.sub(r'\1,\2,TIME,RATE,OPS', text)
    return text.replace('qemu-io> ', '').replace('qblock-io> ', '')


def filter_test_dir(text):
    return text.replace(test_dir, 'TEST_DIR')


def filter_img(text):
    return filter_test_dir(text).replace(imgfmt, 'IMGFMT')


def filter_prog(text):
    for ours, theirs in (('qblock-io', 'qemu-io'), ('qblock-img', 'qemu-img')):
        text = text.replace(ours, theirs)
    return text


def log(msg, filters=(filter_test_dir,)):
    for f in filters:
        msg = f(msg)
    print(msg)
    sys.stdout.flush()


# --- running tools ---------------------------------------------------------

def run(args, stdin=None):
    """Run a program; returns (exit status, stdout+stderr)."""
    p = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       input=stdin.encode() if stdin is not None else None,
                       timeout=60)
    return p.returncode, p.stdout.decode('utf-8', 'replace')


def qemu_io(*args, stdin=None):
    """Run the qemu-io compatible tool; returns its filtered output."""
    _, out = run([qemu_io_prog] + list(args), stdin)
    return filter_prog(filter_test_dir(filter_qemu_io(out)))


def qemu_io_rc(*args, stdin=None):
    rc, out = run([qemu_io_prog] + list(args), stdin)
    return rc, filter_prog(filter_test_dir(filter_qemu_io(out)))


def io_cmds(img, *cmds, fmt=None, extra=()):
    """qemu_io(-f FMT -c CMD... IMG)."""
    args = ['-f', fmt or imgfmt] + list(extra)
    for c in cmds:
        args += ['-c', c]
    return qemu_io(*(args + [img]))


def create_raw(path, size):
    with open(path, 'wb') as f:
        f.truncate(size)


def script_main(test_fn, supported_fmts_list=('raw',)):
    supported_fmts(list(supported_fmts_list))
    test_fn()
    log('*** done')
