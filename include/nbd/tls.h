/*
 * TLS for NBD: credential objects (QEMU's tls-creds-x509 and tls-creds-psk,
 * created by --object in the daemon and qblock-nbd), authz-simple objects,
 * and the GnuTLS session that nbd/sock.c runs under an NBDSock after
 * STARTTLS.  Without GnuTLS in the build, creating credentials fails with a
 * clear error and everything else behaves as "no TLS configured".
 */
#ifndef NBD_TLS_H
#define NBD_TLS_H

#include "util/common.h"
#include "util/error.h"
#include <jansson.h>

typedef struct NBDTLSCreds NBDTLSCreds;
typedef struct NBDSock NBDSock;

bool nbd_tls_available(void);

/*
 * type is "tls-creds-x509" or "tls-creds-psk"; dir holds the PEM files
 * (ca-cert.pem, server-cert.pem, server-key.pem / client-*.pem) or
 * keys.psk ("username:hexkey" lines); endpoint "server" or "client";
 * verify_peer applies to x509; username picks the PSK identity of a client
 * (default "qemu").  The files are loaded now, so errors surface at
 * creation as with QEMU.
 */
bool nbd_tls_creds_add(const char *type, const char *id, const char *dir,
                       const char *endpoint, bool verify_peer,
                       const char *username, Error **errp);
/* By id, checking the endpoint, with QEMU's texts. */
NBDTLSCreds *nbd_tls_creds_find(const char *id, bool server, Error **errp);
bool nbd_tls_object_exists(const char *id);

/* A --object of one of the types above (keyval parsed into obj, with
 * "qom-type"), as qemu-nbd creates it; QEMU's texts on error. */
bool nbd_tls_is_object_type(const char *type);
bool nbd_tls_object_add(json_t *obj, Error **errp);

/* authz-simple,id=ID,identity=NAME */
bool nbd_tls_authz_add(const char *id, const char *identity, Error **errp);
bool nbd_tls_authz_exists(const char *id);

/*
 * Run the TLS handshake on s (coroutine or blocking) and switch the socket
 * to TLS.  hostname (client, x509) is checked against the certificate;
 * authz (server) names an authz-simple object the peer's identity (x509
 * distinguished name or PSK username) must match.  0 or -1 with errp.
 */
int nbd_tls_handshake(NBDSock *s, NBDTLSCreds *creds, bool server,
                      const char *hostname, const char *authz, Error **errp);
/* I/O under TLS (used by nbd/sock.c): as recv/send, -EAGAIN to wait for
 * the direction *out says. */
ssize_t nbd_tls_recv(NBDSock *s, void *buf, size_t len, bool *out);
ssize_t nbd_tls_send(NBDSock *s, const void *buf, size_t len, bool *out);
void nbd_tls_free(NBDSock *s);

/* The server's TLS settings (nbd-server-start tls-creds/tls-authz). */
void nbd_server_set_tls(NBDTLSCreds *creds, const char *authz);
NBDTLSCreds *nbd_server_tls_creds(void);
const char *nbd_server_tls_authz(void);

#endif
