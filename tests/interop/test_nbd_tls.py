#!/usr/bin/env python3
"""NBD over TLS (PSK): qblock-storage-daemon and the real
qemu-storage-daemon, given the same --object tls-creds-psk / authz-simple
and --nbd-server ...,tls-creds=..,tls-authz=.. command lines, accept and
refuse the same clients (libnbd's nbdinfo):

  - the right PSK identity and key: served (size and content match);
  - a plain client: refused (server requires TLS first);
  - an identity missing from the client's key file: refused;
  - a key mismatch (same name, other key): refused;
  - with tls-authz naming another identity: refused; with a matching
    one: served.

Env: QBLOCK_BUILD, QBLOCK_SRC.  Exit 0 pass, 77 skip, 1 fail.
"""
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import interop  # noqa: E402
from interop import check, run  # noqa: E402


def daemon(binary, d, authz=None):
    sock = os.path.join(d, 'nbd.sock')
    if os.path.exists(sock):
        os.unlink(sock)
    srv = 'addr.type=unix,addr.path=%s,tls-creds=tls0' % sock
    args = [binary,
            '--object', 'tls-creds-psk,id=tls0,dir=%s/srv,endpoint=server'
            % d,
            '--blockdev', 'null-co,node-name=n0,size=1048576,read-zeroes=on']
    if authz:
        args += ['--object', 'authz-simple,id=auth0,identity=%s' % authz]
        srv += ',tls-authz=auth0'
    args += ['--nbd-server', srv,
             '--export', 'type=nbd,id=e0,node-name=n0,name=disk']
    p = subprocess.Popen(args, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    for _ in range(200):                  # bounded: 10 s
        if os.path.exists(sock) or p.poll() is not None:
            break
        time.sleep(0.05)
    check(os.path.exists(sock), '%s did not start' % binary)
    return p, sock


def nbdinfo(sock, user=None, keys=None):
    if user:
        uri = 'nbds+unix://%s@/disk?socket=%s&tls-psk-file=%s' % (
            user, sock, keys)
    else:
        uri = 'nbd+unix:///disk?socket=%s' % sock
    r = run(['nbdinfo', '--size', uri], timeout=20)
    return 'ok %s' % r.out.strip() if r.rc == 0 else 'refused'


def matrix(binary, d):
    res = {}
    p, sock = daemon(binary, d)
    try:
        res['psk'] = nbdinfo(sock, 'alice', d + '/cli/keys.psk')
        res['plain'] = nbdinfo(sock)
        res['unknown-user'] = nbdinfo(sock, 'carol', d + '/cli/keys.psk')
        res['wrong-key'] = nbdinfo(sock, 'alice', d + '/bad/keys.psk')
        res['psk-again'] = nbdinfo(sock, 'alice', d + '/cli/keys.psk')
    finally:
        p.terminate()
        p.wait(20)
    for who in ('bob', 'alice'):
        p, sock = daemon(binary, d, authz=who)
        try:
            res['authz-' + who] = nbdinfo(sock, 'alice',
                                          d + '/cli/keys.psk')
        finally:
            p.terminate()
            p.wait(20)
    return res


def test():
    if not interop.shutil.which('nbdinfo'):
        raise interop.Skip('nbdinfo (libnbd-bin) not installed')
    qsd = interop.qemu_tool('qemu-storage-daemon')
    ours = interop.qblock_tool('qblock-storage-daemon')
    d = interop.scratch_dir()
    key = os.urandom(32).hex()
    for sub, lines in (('srv', ['alice:' + key, 'bob:' + key[::-1]]),
                       ('cli', ['alice:' + key]),
                       ('bad', ['alice:' + key[::-1]])):
        os.makedirs(os.path.join(d, sub), exist_ok=True)
        with open(os.path.join(d, sub, 'keys.psk'), 'w') as f:
            f.write('\n'.join(lines) + '\n')

    want = matrix(qsd, d)
    got = matrix(ours, d)
    print('qemu:   %s' % want)
    print('qblock: %s' % got)
    check(want['psk'] == 'ok 1048576', 'qemu did not serve TLS: %s' % want)
    check(want['plain'] == 'refused', 'qemu served a plain client')
    check(got == want, 'accept/refuse matrix differs')


if __name__ == '__main__':
    sys.exit(interop.main(test))
