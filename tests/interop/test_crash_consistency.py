"""Crash consistency: SIGKILL a writer (tests/crash/crash-writer) at random
points on raw and qcow2 images; afterwards the real qemu-img check must find
the image clean or leaks-only, and every write acknowledged before a
completed flush must read back (real qemu-img convert, qemu-io and qblock-io
`read -P`).  24 runs normally, 240 with --slow.  The harness itself is
tests/crash/crash_consistency.py (see docs/design/robustness.md).
"""
import os
import sys

import interop

sys.path.insert(0, os.path.join(interop.SRC, 'tests', 'crash'))
import crash_consistency  # noqa: E402


def main():
    runs = 240 if interop.SLOW else 24
    # A different seed range per mode so the slow run explores new cases.
    seed = 1000 if interop.SLOW else 1
    passed, failures, note = crash_consistency.run_suite(
        os.path.abspath(interop.BUILD), runs, ['raw', 'qcow2'], seed)
    if passed is None:
        raise interop.Skip(note)
    for fmt, s, msg in failures:
        print('FAIL %s seed %d: %s' % (fmt, s, msg))
    print('%d runs passed, %d failed%s' % (passed, len(failures),
                                          ('; ' + note) if note else ''))
    return 1 if failures else 0


if __name__ == '__main__':
    sys.exit(interop.main(main))
