"""Shared helpers for the side-by-side benchmarks scripts/bench-{qcow2,
bitmaps,qmp,nbd}: locating the qblock and QEMU tools, timing a child
process together with its peak resident memory, interleaving runs of the
two implementations, and writing one section at the end of
docs/performance.md.

Every comparison reports medians of interleaved runs (qemu, qblock,
qblock, qemu, ...) so that a slow phase of the shared machine hits both
sides alike, and the ratio QEMU / qblock (> 1: qblock is faster or uses
less).  Peak memory of the measured child comes
from GNU time (/usr/bin/time, Debian package `time`).
"""
import argparse
import datetime
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOC = os.path.join(ROOT, 'docs', 'performance.md')
GNU_TIME = '/usr/bin/time'


def parse_args(doc, default_runs=3):
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument('--build', default=os.path.join(ROOT, 'build'))
    ap.add_argument('--runs', type=int, default=default_runs)
    ap.add_argument('--quick', action='store_true',
                    help='1 run, smaller sizes: a smoke test')
    ap.add_argument('--dir', help='scratch directory (default '
                    'BUILD/bench-scratch-NAME)')
    ap.add_argument('--write-doc', action='store_true',
                    help='replace this script\'s section at the end of '
                    'docs/performance.md')
    args = ap.parse_args()
    args.build = os.path.abspath(args.build)
    if args.quick:
        args.runs = 1
    return args


def tool(build, rel, qemu_name):
    """(qblock path, qemu path) or exit 2 when one is missing."""
    qb = os.path.join(build, rel)
    qe = shutil.which(qemu_name)
    if not os.path.exists(qb) or not qe:
        print('need %s and %s' % (qb, qemu_name), file=sys.stderr)
        sys.exit(2)
    return qb, qe


def scratch_dir(args, name):
    d = os.path.abspath(args.dir or os.path.join(args.build,
                                                 'bench-scratch-' + name))
    os.makedirs(d, exist_ok=True)
    return d


def run(argv, check=True, timeout=600, **kw):
    """Run a setup command quietly; raise with its output on failure."""
    p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=timeout, **kw)
    if check and p.returncode != 0:
        raise RuntimeError('%s failed (%d): %s%s' % (
            ' '.join(argv), p.returncode,
            p.stdout.decode(errors='replace')[-2000:],
            p.stderr.decode(errors='replace')[-2000:]))
    return p


def timed(argv, timeout=600, stdin=None):
    """Run argv; return (seconds, peak RSS in KiB, stdout text).

    The peak RSS comes from GNU time (`time` package) wrapped around the
    child: wait4() in this Python process would report the forked
    interpreter's own high-water mark, which survives execve.  The wall
    time is measured here (time's own start-up is a few hundred us).
    """
    rssf = os.path.join('/tmp', 'benchlib-rss.%d' % os.getpid())
    full = argv
    if os.path.exists(GNU_TIME):
        full = [GNU_TIME, '-f', '%M', '-o', rssf] + argv
    t0 = time.monotonic()
    p = subprocess.run(full, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       stdin=subprocess.DEVNULL if stdin is None else stdin,
                       timeout=timeout)
    dt = time.monotonic() - t0
    out = p.stdout.decode(errors='replace')
    err = p.stderr.decode(errors='replace')
    if p.returncode != 0:
        raise RuntimeError('%s failed (%d): %s%s' % (
            ' '.join(argv), p.returncode, out[-2000:], err[-2000:]))
    kib = 0
    if full is not argv:
        with open(rssf) as f:
            kib = int(f.read().split()[-1])
        os.unlink(rssf)
    return dt, kib, out


def interleave(runs, qemu_fn, qblock_fn, setup=None):
    """Call each measuring function `runs` times, alternating which goes
    first; each returns a dict of numbers (e.g. {'s': 1.2, 'kib': 900}).
    `setup(side)` runs untimed before every measurement.  Returns
    (median dict for qemu, median dict for qblock)."""
    res = {'qemu': [], 'qblock': []}
    for i in range(runs):
        order = [('qemu', qemu_fn), ('qblock', qblock_fn)]
        if i % 2:
            order.reverse()
        for side, fn in order:
            if setup:
                setup(side)
            res[side].append(fn())

    def med(lst):
        return {k: statistics.median(d[k] for d in lst) for k in lst[0]}
    return med(res['qemu']), med(res['qblock'])


def ratio(q, b):
    return q / b if b else float('inf')


def fmt_row(cells):
    return '| ' + ' | '.join(str(c) for c in cells) + ' |'


def machine():
    cpu = 'unknown CPU'
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('model name'):
                    cpu = line.split(':', 1)[1].strip()
                    break
    except OSError:
        pass
    qemu = run(['qemu-img', '--version']).stdout.decode().splitlines()[0]
    return ('%s, %d CPUs shared with other engineers\' builds and tests '
            'while measuring, Linux %s; %s'
            % (cpu, os.cpu_count() or 0, platform.release(), qemu))


def write_section(name, title, body_lines, quick, runs, load):
    """Replace (or append) the section of script `name` at the end of
    docs/performance.md, delimited by HTML comment markers so reruns of
    one script never touch the text of another (or H14's part above)."""
    begin = '<!-- %s begin -->' % name
    end = '<!-- %s end -->' % name
    now = datetime.datetime.now(datetime.timezone.utc)
    lines = [begin, '## %s' % title, '',
             'Measured with `scripts/%s%s` on %s; %d interleaved run(s) per '
             'row, medians.  Machine: %s.  Load average (1 min) at start / '
             'end: %.1f / %.1f.  Ratio = QEMU / qblock (> 1: qblock faster '
             'or smaller).'
             % (name, ' --quick' if quick else '',
                now.strftime('%Y-%m-%d %H:%M UTC'), runs, machine(),
                load[0], load[1]), ''] + body_lines + [end]
    text = ''
    if os.path.exists(DOC):
        with open(DOC) as f:
            text = f.read()
    block = '\n'.join(lines) + '\n'
    if begin in text and end in text:
        a = text.index(begin)
        b = text.index(end) + len(end)
        if b < len(text) and text[b] == '\n':
            b += 1
        text = text[:a] + block + text[b:]
    else:
        if text and not text.endswith('\n'):
            text += '\n'
        text += '\n' + block
    with open(DOC, 'w') as f:
        f.write(text)
    print('wrote section %s of %s' % (name, DOC))


def mib(kib):
    return '%.1f' % (kib / 1024.0)


class QMP:
    """A minimal blocking QMP client on a unix socket: enough for timing
    round trips (greeting, qmp_capabilities, execute)."""

    def __init__(self, path, timeout=10.0):
        import socket
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(path)
        self.buf = b''

    def recv_msg(self):
        import json
        while b'\n' not in self.buf:
            data = self.sock.recv(1 << 16)
            if not data:
                raise RuntimeError('QMP connection closed')
            self.buf += data
        line, self.buf = self.buf.split(b'\n', 1)
        return json.loads(line)

    def cmd(self, name, **arguments):
        """Execute; return the reply (events in between are skipped)."""
        import json
        msg = {'execute': name}
        if arguments:
            msg['arguments'] = arguments
        self.sock.sendall(json.dumps(msg).encode() + b'\n')
        while True:
            r = self.recv_msg()
            if 'return' in r or 'error' in r:
                if 'error' in r:
                    raise RuntimeError('%s: %s' % (name, r['error']))
                return r['return']

    def close(self):
        self.sock.close()


def connect_retry(path, proc, timeout=10.0):
    """Connect to a unix socket a just-started server will create; return
    (QMP, its greeting).  Polls every 0.5 ms so start-up time is exact to
    about that."""
    t_end = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise RuntimeError('server exited with %d' % proc.returncode)
        try:
            q = QMP(path)
            return q, q.recv_msg()
        except (FileNotFoundError, ConnectionRefusedError):
            if time.monotonic() > t_end:
                raise
            time.sleep(0.0005)


def vm_hwm_kib(pid):
    with open('/proc/%d/status' % pid) as f:
        for line in f:
            if line.startswith('VmHWM:'):
                return int(line.split()[1])
    return 0


def stop(proc):
    """Terminate a server started by a benchmark and reap it."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
