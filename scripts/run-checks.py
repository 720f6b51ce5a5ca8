#!/usr/bin/env python3
"""Run every test suite and print one closing line: 'N passed, N failed, N skipped'.

Suites: unit tests (meson test, suite 'unit'), iotests (tests/iotests/check),
interop tests against the real QEMU tools (tests/interop/run), and the
embedding example.  Each suite prints its own details; this script only sums.
"""
import argparse
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_unit(build):
    subprocess.run(['meson', 'test', '-C', build, '--suite', 'unit',
                    '--print-errorlogs', '--num-processes', '2'])
    log = os.path.join(build, 'meson-logs', 'testlog.json')
    passed = failed = skipped = 0
    if not os.path.exists(log):
        return 0, 1, 0
    with open(log) as f:
        for line in f:
            if not line.strip():
                continue
            r = json.loads(line)
            if r.get('result') in ('OK', 'EXPECTEDFAIL'):
                passed += 1
            elif r.get('result') == 'SKIP':
                skipped += 1
            else:
                failed += 1
    return passed, failed, skipped


def run_counted(cmd, label):
    """Run a suite script whose last line is 'N passed, N failed[, N skipped]'."""
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True)
    sys.stdout.write(proc.stdout)
    last = [l for l in proc.stdout.splitlines() if 'passed,' in l]
    if not last:
        print(f'{label}: no summary line (exit {proc.returncode})')
        return 0, 1, 0
    parts = dict((w[1].rstrip(','), int(w[0])) for w in
                 zip(last[-1].split()[::2], last[-1].split()[1::2]))
    p, f, s = parts.get('passed', 0), parts.get('failed', 0), parts.get('skipped', 0)
    if proc.returncode != 0 and f == 0:
        f = 1
    return p, f, s


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--build', default='build')
    ap.add_argument('--slow', action='store_true')
    ap.add_argument('--no-interop', action='store_true')
    args = ap.parse_args()
    build = os.path.abspath(args.build)
    totals = [0, 0, 0]

    def add(res, name):
        print(f'== {name}: {res[0]} passed, {res[1]} failed, {res[2]} skipped', flush=True)
        for i in range(3):
            totals[i] += res[i]

    print('== unit tests', flush=True)
    add(run_unit(build), 'unit')

    iotests = os.path.join(ROOT, 'tests', 'iotests', 'check')
    if os.path.exists(iotests):
        # Once per image format: a test declares the formats it supports
        # and is skipped for the others.
        for fmt in ('raw', 'qcow2'):
            print('== iotests -f %s' % fmt, flush=True)
            cmd = [sys.executable, iotests, '--build', build, '-f', fmt]
            if args.slow:
                cmd.append('--slow')
            add(run_counted(cmd, 'iotests'), 'iotests -f ' + fmt)

    interop = os.path.join(ROOT, 'tests', 'interop', 'run')
    if os.path.exists(interop) and not args.no_interop:
        print('== interop tests', flush=True)
        cmd = [sys.executable, interop, '--build', build]
        if args.slow:
            cmd.append('--slow')
        add(run_counted(cmd, 'interop'), 'interop')

    print(f'{totals[0]} passed, {totals[1]} failed, {totals[2]} skipped')
    sys.exit(1 if totals[1] else 0)


if __name__ == '__main__':
    main()
