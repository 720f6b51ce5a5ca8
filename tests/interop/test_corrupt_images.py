"""Corrupt qcow2 images: qblock-img info, qblock-io read, qblock-img check
and check -r all must fail cleanly or repair -- never crash, hang (5 s) or
exceed 1 GiB of address space -- on every image of the corpus made by
tests/corrupt/corrupt_images.py (hand-made corruptions of real qemu-img
images, seeded random mutations, and the reproducers in tests/corrupt/corpus/).
50 random mutations normally, 600 with --slow.  Known bugs are listed in
EXPECTED_FAIL there (expected failures, reported but not failing).
"""
import os
import sys

import interop

sys.path.insert(0, os.path.join(interop.SRC, 'tests', 'corrupt'))
import corrupt_images  # noqa: E402


def main():
    n_random = 600 if interop.SLOW else 50
    counts, lines = corrupt_images.run_suite(os.path.abspath(interop.BUILD),
                                             n_random, 1)
    if counts is None:
        raise interop.Skip(lines)
    for line in lines:
        print(line)
    print('%(passed)d cases passed, %(failed)d failed, %(xfail)d expected '
          'failures, %(xpass)d unexpectedly passed' % counts)
    return 1 if counts['failed'] else 0


if __name__ == '__main__':
    sys.exit(interop.main(main))
