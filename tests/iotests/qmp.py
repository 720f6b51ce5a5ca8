"""A small QMP client for tests (stdlib only).

Starts a storage daemon (qblock-storage-daemon or QEMU's
qemu-storage-daemon) with one unix-socket monitor, negotiates capabilities
and sends commands.  Events are collected in order; cmd() returns the reply
object for one command and keeps the events that preceded it.

    with Daemon(binary, ["--blockdev", "null-co,node-name=n0"]) as d:
        r = d.cmd("query-named-block-nodes")
"""
import atexit
import json
import os
import socket
import subprocess
import tempfile
import time


class QMPError(Exception):
    pass


class Connection:
    """One QMP session on a connected socket."""

    def __init__(self, sock, timeout=30.0):
        self.sock = sock
        self.sock.settimeout(timeout)
        self.buf = b""
        self.events = []
        self.greeting = self.read_msg()

    def read_line(self):
        while b"\n" not in self.buf:
            data = self.sock.recv(65536)
            if not data:
                raise EOFError("monitor closed the connection")
            self.buf += data
        line, self.buf = self.buf.split(b"\n", 1)
        return line.decode()

    def read_msg(self):
        return json.loads(self.read_line())

    def send_raw(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def reply(self):
        """Next non-event message; events go to self.events."""
        while True:
            msg = self.read_msg()
            if "event" in msg:
                self.events.append(msg)
                continue
            return msg

    def cmd_raw(self, name, args=None, id=None):
        req = {"execute": name}
        if args is not None:
            req["arguments"] = args
        if id is not None:
            req["id"] = id
        self.send_raw(json.dumps(req))
        return self.reply()

    def cmd(self, _command, **args):
        """Keyword arguments become members (underscores -> dashes)."""
        return self.cmd_raw(_command, {k.replace("_", "-"): v
                                       for k, v in args.items()} or None)

    def negotiate(self):
        r = self.cmd("qmp_capabilities")
        if r != {"return": {}}:
            raise QMPError(r)

    def close(self):
        self.sock.close()


_live = []


@atexit.register
def _kill_leftovers():
    """A test that dies half-way must not leave daemons behind."""
    for proc in _live:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


class Daemon:
    """A storage daemon process with a QMP monitor on a unix socket."""

    def __init__(self, binary, args=(), negotiate=True, sockdir=None):
        self.dir = sockdir or tempfile.mkdtemp(prefix="qmp-")
        self.path = os.path.join(self.dir, "qmp.sock")
        self.argv = [binary,
                     "--chardev",
                     "socket,id=qmp0,path=%s,server=on,wait=off" % self.path,
                     "--monitor", "chardev=qmp0"] + list(args)
        self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT)
        _live.append(self.proc)
        self.conn = self.connect(negotiate)

    def connect(self, negotiate=True, timeout=10.0):
        deadline = time.time() + timeout
        while True:
            if self.proc.poll() is not None:
                out = self.proc.stdout.read().decode()
                raise QMPError("daemon exited (%d): %s"
                               % (self.proc.returncode, out))
            try:
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                s.connect(self.path)
                break
            except OSError:
                s.close()
                if time.time() > deadline:
                    raise
                time.sleep(0.05)
        conn = Connection(s)
        if negotiate:
            conn.negotiate()
        return conn

    def cmd(self, _command, **args):
        return self.conn.cmd(_command, **args)

    def cmd_raw(self, name, args=None, id=None):
        return self.conn.cmd_raw(name, args, id)

    def shutdown(self, timeout=20.0):
        """quit over QMP (or SIGTERM if that fails); returns exit status."""
        if self.proc.poll() is None:
            try:
                self.conn.cmd("quit")
            except (OSError, EOFError):
                self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.conn.close()
        return self.proc.returncode

    def output(self):
        return self.proc.stdout.read().decode()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.shutdown()
        try:
            os.unlink(self.path)
        except OSError:
            pass


def log_script(daemon_binary, script, workdir, log, reply_filter=None,
               daemon_args=()):
    """Run script (a list of (command, arguments) with WORKDIR standing
    for workdir) on a fresh daemon and log each command and its reply as
    one JSON line each.  reply_filter(command, reply) may trim replies."""
    d = Daemon(daemon_binary, list(daemon_args), sockdir=workdir)
    try:
        for name, args in script:
            if args is not None:
                args = json.loads(json.dumps(args).replace("WORKDIR",
                                                           workdir))
            text = json.dumps({"execute": name, "arguments": args}
                              if args is not None else {"execute": name})
            log("-> " + (text if len(text) < 300 else text[:300] + "..."))
            d.conn.events = []
            r = d.cmd_raw(name, args)
            for ev in d.conn.events:
                ev["timestamp"] = "TIMESTAMP"
                log("<- " + json.dumps(ev))
            if reply_filter:
                r = reply_filter(name, r)
            log("<- " + json.dumps(r))
    finally:
        d.shutdown()
