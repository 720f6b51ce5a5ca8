"""Helpers shared by the interop tests (tests/interop/test_*.py).

A test compares what a qblock tool and the matching QEMU tool print for the
same input.  It finds both binaries (skip with 77 when one is missing), runs
them on scratch images, normalises the program names and compares.

Conventions: a test's main() returns 0 (pass), 77 (skip) or 1 (fail) and is
run as `sys.exit(interop.main(main))`, which turns an uncaught Failure or
Skip into the exit status and removes the scratch directory.
"""
import difflib
import os
import re
import shutil
import subprocess
import sys
import tempfile

SKIP = 77
BUILD = os.environ.get('QBLOCK_BUILD') or os.path.join(
    os.path.dirname(os.path.dirname(os.path.dirname(
        os.path.abspath(__file__)))), 'build')
SRC = os.environ.get('QBLOCK_SRC') or os.path.dirname(os.path.dirname(
    os.path.dirname(os.path.abspath(__file__))))
SLOW = os.environ.get('QBLOCK_SLOW') == '1'
TIMEOUT = 60


class Skip(Exception):
    """Raise to skip the test (exit 77) with a reason."""


class Failure(Exception):
    """Raise to fail the test with a message."""


def qblock_tool(name):
    """Absolute path of a qblock binary in the build dir, or Skip."""
    for sub in ('tools', 'storage-daemon', 'docs/examples', 'docs', ''):
        p = os.path.join(BUILD, sub, name)
        if os.path.isfile(p) and os.access(p, os.X_OK):
            return p
    raise Skip('%s not built in %s' % (name, BUILD))


def qemu_tool(name):
    """Path of a real QEMU tool (qemu-img, qemu-io, ...), or Skip."""
    p = shutil.which(name)
    if not p:
        raise Skip('%s not installed' % name)
    return p


_scratch = None


def scratch_dir():
    """A per-test scratch directory, removed when the test ends."""
    global _scratch
    if _scratch is None:
        base = os.path.join(BUILD, 'interop-scratch')
        os.makedirs(base, exist_ok=True)
        _scratch = tempfile.mkdtemp(prefix='t-', dir=base)
    return _scratch


class Result:
    def __init__(self, argv, rc, out, err):
        self.argv, self.rc, self.out, self.err = argv, rc, out, err

    def __repr__(self):
        return 'Result(%r, rc=%r)' % (self.argv, self.rc)


def run(argv, cwd=None, input=None, timeout=TIMEOUT, env=None):
    """Run argv; return a Result with decoded stdout and stderr."""
    p = subprocess.run(argv, cwd=cwd or scratch_dir(), input=input,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=timeout, env=env)
    return Result(argv, p.returncode, p.stdout.decode(errors='replace'),
                  p.stderr.decode(errors='replace'))


_PROG = re.compile(r'\b(qemu|qblock)-(img|io|nbd|storage-daemon)\b')


def filter_prog(text):
    """Replace program names by a neutral 'TOOL-img' etc."""
    return _PROG.sub(r'TOOL-\2', text)


def filter_paths(text, *paths):
    """Replace each of paths by PATHn (longest first)."""
    for i, p in sorted(enumerate(paths), key=lambda x: -len(x[1])):
        text = text.replace(p, 'PATH%d' % i)
    return text


def filter_timing(text):
    """Replace rates and times (qemu-io and bench print them)."""
    text = re.sub(r'Run completed in [0-9.]+ seconds\.',
                  'Run completed in X seconds.', text)
    # qemu-io: "512 bytes, 1 ops; 00.00 sec (1.2 MiB/sec and 2345.6 ops/sec)"
    return re.sub(r'[0-9]+ ops; [0-9/:. sec]* \([0-9/.inf]+ [EPTGMKiBbytes]*'
                  r'/sec and [0-9/.inf]+ ops/sec\)',
                  'X ops; XX:XX:XX.X (XXX YYY/sec and XXX ops/sec)', text)


def diff(expected, actual, label_a='qemu', label_b='qblock'):
    """Unified diff of two texts ('' when equal)."""
    return ''.join(difflib.unified_diff(
        expected.splitlines(True), actual.splitlines(True),
        fromfile=label_a, tofile=label_b))


def check_same(what, ref, got, filters=(filter_prog,)):
    """Compare two Results (rc, stdout, stderr) after filters; raise Failure."""
    problems = []
    for attr in ('out', 'err'):
        a, b = getattr(ref, attr), getattr(got, attr)
        for f in filters:
            a, b = f(a), f(b)
        d = diff(a, b)
        if d:
            problems.append('%s: %s differs:\n%s' % (what, attr, d))
    if ref.rc != got.rc:
        problems.append('%s: exit status %r (qemu) vs %r (qblock)'
                        % (what, ref.rc, got.rc))
    if problems:
        raise Failure('\n'.join(problems))


def check(cond, msg):
    if not cond:
        raise Failure(msg)


def main(fn):
    """Run a test's main function; map Skip/Failure to exit codes."""
    import traceback
    try:
        rc = fn()
        rc = 0 if rc is None else rc
    except Skip as e:
        print('skip: %s' % e)
        rc = SKIP
    except Failure as e:
        print('FAIL: %s' % e)
        rc = 1
    except Exception:
        traceback.print_exc()
        rc = 1
    if _scratch:
        if rc == 1:
            print('scratch kept in %s' % _scratch)
        else:
            shutil.rmtree(_scratch, ignore_errors=True)
    return rc
