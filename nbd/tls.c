/*
 * TLS for NBD over GnuTLS: the registry of credential and authz objects
 * (QEMU's tls-creds-x509, tls-creds-psk, authz-simple), the handshake run
 * after NBD_OPT_STARTTLS on either side, peer checks (certificate chain
 * and hostname, authz identity), and record I/O for nbd/sock.c.  Sockets
 * stay non-blocking: GnuTLS returns GNUTLS_E_AGAIN and the caller parks on
 * the direction GnuTLS was waiting for.
 *
 * Invariants:
 *  1. Credential files are read when the object is created; a session
 *     never touches the filesystem.
 *  2. A socket's session (NBDSock.tls) is set only after a completed
 *     handshake that passed the peer checks.
 */
#include "nbd/tls.h"
#include "nbd/nbd.h"

#include <jansson.h>

#ifdef CONFIG_GNUTLS
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#endif

struct NBDTLSCreds {
    char *id;
    bool psk;
    bool server;
    bool verify_peer;
#ifdef CONFIG_GNUTLS
    gnutls_certificate_credentials_t x509;
    gnutls_psk_server_credentials_t psk_server;
    gnutls_psk_client_credentials_t psk_client;
#endif
};

static GHashTable *creds_by_id;      /* id -> NBDTLSCreds* */
static GHashTable *authz_by_id;      /* id -> identity */
static NBDTLSCreds *server_creds;
static char *server_authz;

static void registry_init(void)
{
    if (!creds_by_id) {
        creds_by_id = g_hash_table_new(g_str_hash, g_str_equal);
        authz_by_id = g_hash_table_new_full(g_str_hash, g_str_equal,
                                            g_free, g_free);
    }
}

bool nbd_tls_object_exists(const char *id)
{
    registry_init();
    return g_hash_table_contains(creds_by_id, id) ||
           g_hash_table_contains(authz_by_id, id);
}

NBDTLSCreds *nbd_tls_creds_find(const char *id, bool server, Error **errp)
{
    NBDTLSCreds *c;

    registry_init();
    c = g_hash_table_lookup(creds_by_id, id);
    if (!c) {
        if (g_hash_table_contains(authz_by_id, id)) {
            error_setg(errp, "Object with id '%s' is not TLS credentials", id);
        } else {
            error_setg(errp, "No TLS credentials with id '%s'", id);
        }
        return NULL;
    }
    if (c->server != server) {
        error_setg(errp, "Expected TLS credentials for a %s endpoint",
                   server ? "server" : "client");
        return NULL;
    }
    return c;
}

bool nbd_tls_authz_add(const char *id, const char *identity, Error **errp)
{
    registry_init();
    if (nbd_tls_object_exists(id)) {
        error_setg(errp, "attempt to add duplicate property '%s' to object "
                   "(type 'container')", id);
        return false;
    }
    g_hash_table_insert(authz_by_id, g_strdup(id), g_strdup(identity));
    return true;
}

bool nbd_tls_authz_exists(const char *id)
{
    registry_init();
    return g_hash_table_contains(authz_by_id, id);
}

bool nbd_tls_is_object_type(const char *type)
{
    return type && (!strcmp(type, "tls-creds-x509") ||
                    !strcmp(type, "tls-creds-psk") ||
                    !strcmp(type, "authz-simple"));
}

/*
 * Properties come as keyval strings; booleans accept QEMU's spellings.
 * Unknown properties use qemu-nbd's text (the daemon checks them first
 * with its own).
 */
bool nbd_tls_object_add(json_t *obj, Error **errp)
{
    static const char *const creds_props[] = {
        "qom-type", "id", "dir", "endpoint", "verify-peer", "username",
        "priority", "sanity-check", "loaded", "passwordid", NULL,
    };
    static const char *const authz_props[] = {
        "qom-type", "id", "identity", NULL,
    };
    const char *type = json_string_value(json_object_get(obj, "qom-type"));
    const char *id = json_string_value(json_object_get(obj, "id"));
    const char *vp = json_string_value(json_object_get(obj, "verify-peer"));
    bool authz = !g_strcmp0(type, "authz-simple");
    bool verify = true;
    const char *key;
    json_t *val;

    if (!nbd_tls_is_object_type(type)) {
        error_setg(errp, "Parameter 'qom-type' does not accept value '%s'",
                   type ? type : "");
        return false;
    }
    if (!id) {
        error_setg(errp, "Parameter 'id' is missing");
        return false;
    }
    json_object_foreach(obj, key, val) {
        if (!g_strv_contains(authz ? authz_props : creds_props, key)) {
            error_setg(errp, "Parameter '%s' is unexpected", key);
            return false;
        }
    }
    if (authz) {
        const char *who = json_string_value(json_object_get(obj, "identity"));
        if (!who) {
            error_setg(errp, "Parameter 'identity' is missing");
            return false;
        }
        return nbd_tls_authz_add(id, who, errp);
    }
    if (vp) {
        if (!strcmp(vp, "on") || !strcmp(vp, "yes") || !strcmp(vp, "true")) {
            verify = true;
        } else if (!strcmp(vp, "off") || !strcmp(vp, "no") ||
                   !strcmp(vp, "false")) {
            verify = false;
        } else {
            error_setg(errp, "Parameter 'verify-peer' expects 'on' or 'off'");
            return false;
        }
    }
    return nbd_tls_creds_add(type, id,
                             json_string_value(json_object_get(obj, "dir")),
                             json_string_value(json_object_get(obj,
                                                               "endpoint")),
                             verify,
                             json_string_value(json_object_get(obj,
                                                               "username")),
                             errp);
}

void nbd_server_set_tls(NBDTLSCreds *creds, const char *authz)
{
    server_creds = creds;
    g_free(server_authz);
    server_authz = g_strdup(authz);
}

NBDTLSCreds *nbd_server_tls_creds(void)
{
    return server_creds;
}

const char *nbd_server_tls_authz(void)
{
    return server_authz;
}

#ifdef CONFIG_GNUTLS

bool nbd_tls_available(void)
{
    return true;
}

static bool need_file(const char *dir, const char *name, bool required,
                      char **path, Error **errp)
{
    *path = g_build_filename(dir, name, NULL);
    if (access(*path, R_OK) == 0) {
        return true;
    }
    if (required) {
        error_setg_errno(errp, errno, "Unable to access credentials %s",
                         *path);
    }
    g_free(*path);
    *path = NULL;
    return !required;
}

static const char *cert_status_text(unsigned int status)
{
    if (status & GNUTLS_CERT_SIGNER_NOT_FOUND) {
        return "The certificate hasn't got a known issuer";
    } else if (status & GNUTLS_CERT_REVOKED) {
        return "The certificate has been revoked";
    } else if (status & GNUTLS_CERT_EXPIRED) {
        return "The certificate has expired";
    }
    return "The certificate is invalid";
}

/*
 * QEMU's sanity check at creation: our own certificate must verify against
 * the CA we were given (a peer would refuse it anyway, later and vaguer).
 */
static bool check_own_cert(const char *certfile, const char *cafile,
                           Error **errp)
{
    gnutls_datum_t cdata = { 0 }, adata = { 0 };
    gnutls_x509_crt_t crt = NULL;
    gnutls_x509_crt_t *cas = NULL;
    unsigned int ncas = 0, status = 0;
    bool ok = false;

    if (gnutls_load_file(certfile, &cdata) < 0 ||
        gnutls_load_file(cafile, &adata) < 0 ||
        gnutls_x509_crt_init(&crt) < 0 ||
        gnutls_x509_crt_import(crt, &cdata, GNUTLS_X509_FMT_PEM) < 0 ||
        gnutls_x509_crt_list_import2(&cas, &ncas, &adata,
                                     GNUTLS_X509_FMT_PEM, 0) < 0) {
        /* Unreadable files are reported by the loaders below. */
        ok = true;
        goto out;
    }
    if (gnutls_x509_crt_verify(crt, cas, ncas, 0, &status) < 0 || status) {
        error_setg(errp, "Our own certificate %s failed validation against "
                   "%s: %s", certfile, cafile,
                   cert_status_text(status ? status
                                           : GNUTLS_CERT_INVALID));
        goto out;
    }
    ok = true;
out:
    for (unsigned int i = 0; i < ncas; i++) {
        gnutls_x509_crt_deinit(cas[i]);
    }
    gnutls_free(cas);
    if (crt) {
        gnutls_x509_crt_deinit(crt);
    }
    gnutls_free(cdata.data);
    gnutls_free(adata.data);
    return ok;
}

static bool load_x509(NBDTLSCreds *c, const char *dir, Error **errp)
{
    const char *who = c->server ? "server" : "client";
    g_autofree char *ca = NULL, *cert = NULL, *key = NULL;
    g_autofree char *cert_name = g_strdup_printf("%s-cert.pem", who);
    g_autofree char *key_name = g_strdup_printf("%s-key.pem", who);
    int ret;

    /* A server needs the CA only to verify clients; a client always. */
    if (!need_file(dir, "ca-cert.pem", !c->server || c->verify_peer, &ca,
                   errp) ||
        !need_file(dir, cert_name, c->server, &cert, errp) ||
        !need_file(dir, key_name, c->server, &key, errp)) {
        return false;
    }
    if (ca && cert && !check_own_cert(cert, ca, errp)) {
        return false;
    }
    gnutls_certificate_allocate_credentials(&c->x509);
    if (ca) {
        ret = gnutls_certificate_set_x509_trust_file(c->x509, ca,
                                                     GNUTLS_X509_FMT_PEM);
        if (ret < 0) {
            error_setg(errp, "Cannot load CA certificate '%s': %s", ca,
                       gnutls_strerror(ret));
            return false;
        }
    }
    if (cert && key) {
        ret = gnutls_certificate_set_x509_key_file(c->x509, cert, key,
                                                   GNUTLS_X509_FMT_PEM);
        if (ret < 0) {
            error_setg(errp, "Cannot load certificate '%s' & key '%s': %s",
                       cert, key, gnutls_strerror(ret));
            return false;
        }
    }
    return true;
}

static bool load_psk(NBDTLSCreds *c, const char *dir, const char *username,
                     Error **errp)
{
    g_autofree char *path = NULL;
    int ret;

    if (!need_file(dir, "keys.psk", true, &path, errp)) {
        return false;
    }
    if (c->server) {
        gnutls_psk_allocate_server_credentials(&c->psk_server);
        ret = gnutls_psk_set_server_credentials_file(c->psk_server, path);
        if (ret < 0) {
            error_setg(errp, "Cannot set PSK server credentials: %s",
                       gnutls_strerror(ret));
            return false;
        }
        return true;
    } else {
        g_autofree char *contents = NULL;
        g_auto(GStrv) lines = NULL;
        const char *user = username ? username : "qemu";
        GError *gerr = NULL;

        if (!g_file_get_contents(path, &contents, NULL, &gerr)) {
            error_setg(errp, "Cannot read PSK file %s: %s", path,
                       gerr->message);
            g_error_free(gerr);
            return false;
        }
        lines = g_strsplit(contents, "\n", -1);
        for (int i = 0; lines[i]; i++) {
            size_t ulen = strlen(user);
            if (strncmp(lines[i], user, ulen) == 0 && lines[i][ulen] == ':') {
                gnutls_datum_t k = {
                    .data = (unsigned char *)lines[i] + ulen + 1,
                    .size = strlen(lines[i] + ulen + 1),
                };
                gnutls_psk_allocate_client_credentials(&c->psk_client);
                ret = gnutls_psk_set_client_credentials(c->psk_client, user,
                                                        &k,
                                                        GNUTLS_PSK_KEY_HEX);
                if (ret < 0) {
                    error_setg(errp, "Cannot set PSK client credentials: %s",
                               gnutls_strerror(ret));
                    return false;
                }
                return true;
            }
        }
        error_setg(errp, "Username %s not found in PSK file %s", user, path);
        return false;
    }
}

static void creds_free(NBDTLSCreds *c)
{
    if (c->x509) {
        gnutls_certificate_free_credentials(c->x509);
    }
    if (c->psk_server) {
        gnutls_psk_free_server_credentials(c->psk_server);
    }
    if (c->psk_client) {
        gnutls_psk_free_client_credentials(c->psk_client);
    }
    g_free(c->id);
    g_free(c);
}

bool nbd_tls_creds_add(const char *type, const char *id, const char *dir,
                       const char *endpoint, bool verify_peer,
                       const char *username, Error **errp)
{
    NBDTLSCreds *c;
    bool ok;

    registry_init();
    if (nbd_tls_object_exists(id)) {
        error_setg(errp, "attempt to add duplicate property '%s' to object "
                   "(type 'container')", id);
        return false;
    }
    if (endpoint && strcmp(endpoint, "server") && strcmp(endpoint, "client")) {
        error_setg(errp, "Parameter 'endpoint' does not accept value '%s'",
                   endpoint);
        return false;
    }
    if (!dir) {
        error_setg(errp, "Missing 'dir' property value");
        return false;
    }
    c = g_new0(NBDTLSCreds, 1);
    c->id = g_strdup(id);
    c->psk = strcmp(type, "tls-creds-psk") == 0;
    /* QEMU's default endpoint is client. */
    c->server = endpoint && strcmp(endpoint, "server") == 0;
    c->verify_peer = verify_peer;
    ok = c->psk ? load_psk(c, dir, username, errp) : load_x509(c, dir, errp);
    if (!ok) {
        creds_free(c);
        return false;
    }
    g_hash_table_insert(creds_by_id, c->id, c);
    return true;
}

/* The peer's identity for authz: the x509 DN or the PSK username. */
static char *peer_identity(gnutls_session_t sess, bool psk)
{
    if (psk) {
        const char *u = gnutls_psk_server_get_username(sess);
        return g_strdup(u ? u : "");
    } else {
        unsigned int n = 0;
        const gnutls_datum_t *certs = gnutls_certificate_get_peers(sess, &n);
        gnutls_x509_crt_t crt;
        char dn[1024];
        size_t dnlen = sizeof(dn);

        if (!certs || n == 0 || gnutls_x509_crt_init(&crt) < 0) {
            return NULL;
        }
        if (gnutls_x509_crt_import(crt, &certs[0], GNUTLS_X509_FMT_DER) < 0 ||
            gnutls_x509_crt_get_dn(crt, dn, &dnlen) < 0) {
            gnutls_x509_crt_deinit(crt);
            return NULL;
        }
        gnutls_x509_crt_deinit(crt);
        return g_strdup(dn);
    }
}

static bool check_peer(gnutls_session_t sess, NBDTLSCreds *c,
                       const char *hostname, const char *authz, Error **errp)
{
    if (!c->psk && !c->server && !hostname) {
        /* As QEMU: a Unix socket has no name to check the certificate
         * against unless tls-hostname gives one. */
        error_setg(errp, "No hostname for certificate validation");
        return false;
    }
    if (!c->psk && (!c->server || c->verify_peer)) {
        unsigned int status = 0;
        int ret = gnutls_certificate_verify_peers3(
            sess, c->server ? NULL : hostname, &status);

        if (ret < 0) {
            error_setg(errp, "Cannot check peer certificate: %s",
                       gnutls_strerror(ret));
            return false;
        }
        if (status & GNUTLS_CERT_UNEXPECTED_OWNER) {
            error_setg(errp, "Certificate does not match the hostname %s",
                       hostname ? hostname : "");
            return false;
        }
        if (status) {
            error_setg(errp, "%s", cert_status_text(status));
            return false;
        }
    }
    /* QEMU 7.2 checks tls-authz against x509 distinguished names only;
     * a PSK client is not matched against it (same behaviour here). */
    if (c->server && authz && !c->psk) {
        g_autofree char *who = peer_identity(sess, c->psk);
        const char *allowed;

        registry_init();
        allowed = g_hash_table_lookup(authz_by_id, authz);
        if (!allowed) {
            error_setg(errp, "Cannot find authorization object '%s'", authz);
            return false;
        }
        if (!who || strcmp(who, allowed) != 0) {
            error_setg(errp, "TLS %s authz check for %s is denied",
                       c->psk ? "PSK" : "x509", who ? who : "(unknown)");
            return false;
        }
    }
    return true;
}

int nbd_tls_handshake(NBDSock *s, NBDTLSCreds *c, bool server,
                      const char *hostname, const char *authz, Error **errp)
{
    gnutls_session_t sess;
    int ret;

    gnutls_init(&sess, (server ? GNUTLS_SERVER : GNUTLS_CLIENT) |
                       GNUTLS_NONBLOCK);
    if (c->psk) {
        gnutls_priority_set_direct(sess, "NORMAL:+ECDHE-PSK:+DHE-PSK:+PSK",
                                   NULL);
        gnutls_credentials_set(sess, GNUTLS_CRD_PSK,
                               server ? (void *)c->psk_server
                                      : (void *)c->psk_client);
    } else {
        gnutls_set_default_priority(sess);
        gnutls_credentials_set(sess, GNUTLS_CRD_CERTIFICATE, c->x509);
        if (server && c->verify_peer) {
            gnutls_certificate_server_set_request(sess, GNUTLS_CERT_REQUIRE);
        }
        if (!server && hostname) {
            gnutls_server_name_set(sess, GNUTLS_NAME_DNS, hostname,
                                   strlen(hostname));
        }
    }
    gnutls_transport_set_int(sess, s->fd);

    for (;;) {
        if (s->shutdown) {
            error_setg(errp, "TLS handshake interrupted");
            goto fail;
        }
        ret = gnutls_handshake(sess);
        if (ret == GNUTLS_E_SUCCESS) {
            break;
        }
        if (ret == GNUTLS_E_AGAIN || ret == GNUTLS_E_INTERRUPTED) {
            nbd_sock_wait(s, gnutls_record_get_direction(sess) == 1);
            continue;
        }
        if (!gnutls_error_is_fatal(ret)) {
            continue;
        }
        error_setg(errp, "TLS handshake failed: %s", gnutls_strerror(ret));
        goto fail;
    }
    if (!check_peer(sess, c, hostname, authz, errp)) {
        goto fail;
    }
    s->tls = sess;
    return 0;

fail:
    gnutls_deinit(sess);
    return -1;
}

static ssize_t tls_result(NBDSock *s, ssize_t ret, bool *out)
{
    if (ret >= 0) {
        return ret;
    }
    if (ret == GNUTLS_E_AGAIN || ret == GNUTLS_E_INTERRUPTED) {
        *out = gnutls_record_get_direction(s->tls) == 1;
        return -EAGAIN;
    }
    if (ret == GNUTLS_E_PREMATURE_TERMINATION) {
        return 0;    /* EOF without close_notify: treat as EOF */
    }
    return -EIO;
}

ssize_t nbd_tls_recv(NBDSock *s, void *buf, size_t len, bool *out)
{
    return tls_result(s, gnutls_record_recv(s->tls, buf, len), out);
}

ssize_t nbd_tls_send(NBDSock *s, const void *buf, size_t len, bool *out)
{
    return tls_result(s, gnutls_record_send(s->tls, buf, len), out);
}

void nbd_tls_free(NBDSock *s)
{
    if (s->tls) {
        gnutls_deinit(s->tls);
        s->tls = NULL;
    }
}

#else /* !CONFIG_GNUTLS */

bool nbd_tls_available(void)
{
    return false;
}

bool nbd_tls_creds_add(const char *type, const char *id, const char *dir,
                       const char *endpoint, bool verify_peer,
                       const char *username, Error **errp)
{
    error_setg(errp, "TLS credentials support requires GNUTLS");
    return false;
}

int nbd_tls_handshake(NBDSock *s, NBDTLSCreds *c, bool server,
                      const char *hostname, const char *authz, Error **errp)
{
    error_setg(errp, "TLS credentials support requires GNUTLS");
    return -1;
}

ssize_t nbd_tls_recv(NBDSock *s, void *buf, size_t len, bool *out)
{
    return -EIO;
}

ssize_t nbd_tls_send(NBDSock *s, const void *buf, size_t len, bool *out)
{
    return -EIO;
}

void nbd_tls_free(NBDSock *s)
{
}

#endif
