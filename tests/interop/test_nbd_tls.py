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

Then the full client matrix with qblock-nbd and qemu-nbd as servers
(--object tls-creds-psk,...,endpoint=server --tls-creds): each of
{nbdinfo, qblock-io / qemu-io (nbd driver, tls-creds), qblock-nbd -L /
qemu-nbd -L} x {right PSK, wrong key, unknown user, no TLS} gets the same
outcome and (tool names aside) the same error text from both servers, and
each qblock client says what its QEMU counterpart says.  With certtool
(gnutls-bin), the same for X.509 (verify-peer=on): right certificates,
a client whose CA does not sign its own certificate, a wrong and a
missing tls-hostname.

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


def nbd_server(binary, d, img):
    """qblock-nbd or qemu-nbd serving img over TLS on a Unix socket."""
    sock = os.path.join(d, 'tls.sock')
    if os.path.exists(sock):
        os.unlink(sock)
    p = subprocess.Popen(
        [binary, '-f', 'raw', '-t', '-k', sock, '-x', 'disk',
         '--object', 'tls-creds-psk,id=tls0,dir=%s/srv,endpoint=server' % d,
         '--tls-creds', 'tls0', img],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(200):                  # bounded: 10 s
        if os.path.exists(sock) or p.poll() is not None:
            break
        time.sleep(0.05)
    check(os.path.exists(sock), '%s did not start' % binary)
    return p, sock


CASES = {
    # case: (client key dir, username)
    'psk': ('cli', 'alice'),
    'wrong-key': ('bad', 'alice'),
    'unknown-user': ('cli', 'carol'),
    'plain': (None, None),
}


def norm(r, tool):
    """rc and stderr with the tool's name taken out, timings dropped."""
    err = r.err.replace(os.path.basename(tool) + ':', 'TOOL:')
    out = '\n'.join(l for l in r.out.splitlines() if 'ops/sec' not in l)
    return (r.rc, out.strip(), err.strip())


def client(kind, tool, sock, d, case):
    keys, user = CASES[case]
    obj = []
    if keys:
        obj = ['--object', 'tls-creds-psk,id=c0,dir=%s/%s,endpoint=client,'
               'username=%s' % (d, keys, user)]
    if kind == 'nbdinfo':
        return nbdinfo(sock, user, keys and '%s/%s/keys.psk' % (d, keys))
    if kind == 'io':
        opts = 'driver=nbd,server.type=unix,server.path=%s,export=disk' % sock
        if keys:
            opts += ',tls-creds=c0'
        r = run([tool] + obj + ['--image-opts', opts, '-c', 'read -P 0 0 4k',
                                '-c', 'write -P 0x5a 4k 4k',
                                '-c', 'read -P 0x5a 4k 4k'], timeout=20)
    else:
        r = run([tool] + obj + (['--tls-creds', 'c0'] if keys else []) +
                ['-L', '-k', sock], timeout=20)
    return norm(r, tool)


def client_matrix(server, d, img, tools):
    res = {}
    p, sock = nbd_server(server, d, img)
    try:
        for case in CASES:
            for kind, tool in tools:
                res[(case, kind)] = client(kind, tool, sock, d, case)
    finally:
        p.terminate()
        p.wait(20)
    return res


def test_nbd_servers(d):
    img = os.path.join(d, 'tls.raw')
    with open(img, 'wb') as f:
        f.truncate(1 << 20)
    qemu = [('io', interop.qemu_tool('qemu-io')),
            ('list', interop.qemu_tool('qemu-nbd'))]
    ours = [('io', interop.qblock_tool('qblock-io')),
            ('list', interop.qblock_tool('qblock-nbd'))]
    if interop.shutil.which('nbdinfo'):
        qemu.append(('nbdinfo', None))
    for name, server in (('qemu-nbd', interop.qemu_tool('qemu-nbd')),
                         ('qblock-nbd', interop.qblock_tool('qblock-nbd'))):
        want = client_matrix(server, d, img, qemu)
        got = client_matrix(server, d, img, ours)
        check(want[('psk', 'io')][0] == 0,
              'qemu-io over TLS to %s failed: %s' % (name, want))
        check(want[('plain', 'io')][0] != 0,
              '%s served a plain client' % name)
        for key in want:
            if key[1] == 'nbdinfo':
                continue
            check(got[key] == want[key], '%s, %s: qblock %s, qemu %s' % (
                name, key, got[key], want[key]))
        print('%s: %d client cases agree' % (name, len(want)))
        if name == 'qemu-nbd':
            ref = want
        else:
            # The same clients see the same outcomes from both servers.
            for key in want:
                check(want[key] == ref[key], 'servers differ on %s: '
                      'qblock-nbd %s, qemu-nbd %s' % (key, want[key],
                                                      ref[key]))


def certtool(d, *args):
    r = run(['certtool'] + list(args), cwd=d, timeout=60)
    check(r.rc == 0, 'certtool %s failed: %s' % (args, r.err))


def make_x509(d):
    """A CA, a server cert for localhost, a client cert, and a client
    whose CA is another one (its own cert fails the sanity check)."""
    x = os.path.join(d, 'x509')
    for sub in ('srv', 'cli', 'other'):
        os.makedirs(os.path.join(x, sub), exist_ok=True)
    tmpl = {
        'ca.info': 'cn = Test CA\nca\ncert_signing_key\n'
                   'expiration_days = 10\n',
        'srv.info': 'organization = qblock\ncn = localhost\n'
                    'dns_name = localhost\ntls_www_server\nencryption_key\n'
                    'signing_key\nexpiration_days = 10\n',
        'cli.info': 'organization = qblock\ncn = client1\ntls_www_client\n'
                    'encryption_key\nsigning_key\nexpiration_days = 10\n',
    }
    for name, text in tmpl.items():
        with open(os.path.join(x, name), 'w') as f:
            f.write(text)
    certtool(x, '--generate-privkey', '--outfile', 'ca-key.pem')
    certtool(x, '--generate-self-signed', '--load-privkey', 'ca-key.pem',
             '--template', 'ca.info', '--outfile', 'ca-cert.pem')
    for who, sub, info in (('server', 'srv', 'srv.info'),
                           ('client', 'cli', 'cli.info')):
        key = '%s/%s-key.pem' % (sub, who)
        certtool(x, '--generate-privkey', '--outfile', key)
        certtool(x, '--generate-certificate', '--load-privkey', key,
                 '--load-ca-certificate', 'ca-cert.pem',
                 '--load-ca-privkey', 'ca-key.pem', '--template', info,
                 '--outfile', '%s/%s-cert.pem' % (sub, who))
        with open(os.path.join(x, 'ca-cert.pem')) as f:
            ca = f.read()
        with open(os.path.join(x, sub, 'ca-cert.pem'), 'w') as f:
            f.write(ca)
    certtool(x, '--generate-privkey', '--outfile', 'o-key.pem')
    certtool(x, '--generate-self-signed', '--load-privkey', 'o-key.pem',
             '--template', 'ca.info', '--outfile', 'other/ca-cert.pem')
    for n in ('client-cert.pem', 'client-key.pem'):
        with open(os.path.join(x, 'cli', n)) as f:
            data = f.read()
        with open(os.path.join(x, 'other', n), 'w') as f:
            f.write(data)
    return x


def x509_matrix(server, x, img, tools):
    res = {}
    sock = os.path.join(x, 'x.sock')
    if os.path.exists(sock):
        os.unlink(sock)
    p = subprocess.Popen(
        [server, '-f', 'raw', '-t', '-k', sock,
         '--object', 'tls-creds-x509,id=t0,dir=%s/srv,endpoint=server,'
         'verify-peer=on' % x, '--tls-creds', 't0', img],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(200):              # bounded: 10 s
            if os.path.exists(sock) or p.poll() is not None:
                break
            time.sleep(0.05)
        check(os.path.exists(sock), '%s did not start' % server)
        for case, sub, host in (('ok', 'cli', 'localhost'),
                                ('other-ca', 'other', 'localhost'),
                                ('wrong-host', 'cli', 'wrong.example'),
                                ('no-host', 'cli', None)):
            obj = ['--object', 'tls-creds-x509,id=c0,dir=%s/%s,'
                   'endpoint=client' % (x, sub)]
            for kind, tool in tools:
                if kind == 'io':
                    opts = ('driver=nbd,server.type=unix,server.path=%s,'
                            'tls-creds=c0' % sock)
                    if host:
                        opts += ',tls-hostname=' + host
                    argv = [tool] + obj + ['--image-opts', opts,
                                           '-c', 'read 0 4k']
                else:
                    argv = [tool] + obj + ['--tls-creds', 'c0', '-L',
                                           '-k', sock]
                    if host:
                        argv += ['--tls-hostname', host]
                res[(case, kind)] = norm(run(argv, timeout=20), tool)
    finally:
        p.terminate()
        p.wait(20)
    return res


def test_x509(d):
    if not interop.shutil.which('certtool'):
        print('x509: certtool (gnutls-bin) not installed, skipped')
        return
    x = make_x509(d)
    img = os.path.join(d, 'tls.raw')
    qemu = [('io', interop.qemu_tool('qemu-io')),
            ('list', interop.qemu_tool('qemu-nbd'))]
    ours = [('io', interop.qblock_tool('qblock-io')),
            ('list', interop.qblock_tool('qblock-nbd'))]
    ref = None
    for name, server in (('qemu-nbd', interop.qemu_tool('qemu-nbd')),
                         ('qblock-nbd', interop.qblock_tool('qblock-nbd'))):
        want = x509_matrix(server, x, img, qemu)
        got = x509_matrix(server, x, img, ours)
        check(want[('ok', 'io')][0] == 0,
              'qemu-io over x509 to %s failed: %s' % (name, want))
        check(got == want, 'x509 via %s: qblock %s, qemu %s' % (
            name, got, want))
        if ref is not None:
            check(want == ref, 'x509 servers differ: %s vs %s' % (want,
                                                                  ref))
        ref = want
        print('x509 %s: %d client cases agree' % (name, len(want)))


def test():
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

    test_nbd_servers(d)
    test_x509(d)

    if not interop.shutil.which('nbdinfo'):
        raise interop.Skip('nbdinfo (libnbd-bin) not installed')
    want = matrix(qsd, d)
    got = matrix(ours, d)
    print('qemu:   %s' % want)
    print('qblock: %s' % got)
    check(want['psk'] == 'ok 1048576', 'qemu did not serve TLS: %s' % want)
    check(want['plain'] == 'refused', 'qemu served a plain client')
    check(got == want, 'accept/refuse matrix differs')


if __name__ == '__main__':
    sys.exit(interop.main(test))
