/* SPDX-License-Identifier: Apache-2.0 */
/* picket: an asynchronous client for the Kubernetes API server.
 *
 * Implementation notes: a request owns its socket (until the TLS stream takes it), its TLS
 * stream, a deadline timer and three buffers: the request text (secret: it carries the bearer
 * token and, for a TokenReview, the reviewed token), the raw response and the decoded body. It
 * ends in exactly one place, request_finish, which reports to the caller and frees everything;
 * failures found while starting are reported from a zero-delay timer so that the callback never
 * runs inside pk_kube_client_request. */
#include "kube/client.h"

#include <arpa/inet.h>
#include <errno.h>
#include <ev.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <wolfssl/options.h>
#include <wolfssl/ssl.h>

#include "common/fsutil.h"
#include "common/key.h"
#include "common/log.h"
#include "common/mem.h"
#include "kube/http.h"
#include "kube/objects.h"
#include "net/tls_stream.h"

#define CLIENT_MAGIC    0x4b554243u /* "KUBC" */
#define REQUEST_MAGIC   0x4b554252u /* "KUBR" */
#define DEFAULT_TIMEOUT 10.0
#define MAX_TOKEN       (64u * 1024u)
#define MAX_PEM         (256u * 1024u)
#define MAX_REQUEST     (256u * 1024u)

struct pk_kube_client {
    unsigned magic;
    struct ev_loop *loop;
    WOLFSSL_CTX *tls;
    struct sockaddr_storage addr;
    socklen_t addr_len;
    char address[300]; /* host:port */
    char *host_header;
    char *token_path;
    char *server_name;
    double timeout;
    size_t max_response;
    struct pk_kube_request *requests;
};

struct pk_kube_request {
    unsigned magic;
    struct pk_kube_client *c;
    struct pk_kube_request *prev, *next;
    pk_kube_done_fn fn;
    void *ctx;
    int fd;
    ev_io cio;
    ev_timer deadline;
    struct pk_tls_stream *st;
    struct pk_buf out;  /* request text, secret */
    struct pk_buf in;   /* raw response */
    struct pk_buf body; /* decoded body */
    bool sent;
    bool complete;
    int http_status;
    int pending_code; /* a start-up failure waiting to be reported */
    char error[600];
};

struct ev_loop *pk_kube_client_loop(const struct pk_kube_client *c)
{
    return c->loop;
}

const char *pk_kube_client_address(const struct pk_kube_client *c)
{
    return c->address;
}

/* ---- ending a request ---------------------------------------------------------------------- */

static void request_free(struct pk_kube_request *r)
{
    struct pk_kube_client *c = r->c;

    if (r->prev != NULL) {
        r->prev->next = r->next;
    } else {
        c->requests = r->next;
    }
    if (r->next != NULL) {
        r->next->prev = r->prev;
    }
    ev_io_stop(c->loop, &r->cio);
    ev_timer_stop(c->loop, &r->deadline);
    r->st = pk_tls_stream_free(r->st); /* deferred when inside one of its callbacks */
    if (r->fd >= 0) {
        close(r->fd);
    }
    pk_buf_free(&r->out);
    pk_buf_free(&r->in);
    pk_buf_free(&r->body);
    r->magic = 0;
    free(r);
}

/* Report code (0: a response arrived) and free the request. */
static void request_finish(struct pk_kube_request *r, int code)
{
    struct pk_kube_result res = {
            .code = code,
            .http_status = code == 0 ? r->http_status : 0,
            .body = code == 0 ? pk_buf_slice(&r->body) : pk_slice_make("", 0),
            .error = r->error,
    };

    if (code != 0) {
        PK_LOG_DEBUG("kubernetes api request failed server=%s error=\"%s\"", r->c->address,
                     r->error);
    }
    r->fn(r->ctx, &res);
    request_free(r);
}

static int request_fail(struct pk_kube_request *r, int code, const char *fmt, ...) PK_PRINTF(3, 4);

static int request_fail(struct pk_kube_request *r, int code, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(r->error, sizeof(r->error), fmt, ap);
    va_end(ap);
    request_finish(r, code);
    return code;
}

/* ---- TLS stream ops ------------------------------------------------------------------------- */

static int op_handshake_done(void *ctx, WOLFSSL *ssl, struct pk_err *err)
{
    (void)ctx;
    (void)ssl;
    (void)err;
    return 0;
}

/* Try to parse what has arrived. 0 and r->complete once the response is whole. */
static int try_parse(struct pk_kube_request *r, bool eof, struct pk_err *err)
{
    struct pk_kube_http_response resp;
    int rc = pk_kube_http_parse(r->in.data, r->in.len, eof, r->c->max_response, &resp, &r->body,
                                err);

    if (rc == 0) {
        r->http_status = resp.status;
        r->complete = true;
    }
    return rc;
}

static int op_recv(void *ctx, const uint8_t *p, size_t len, struct pk_err *err)
{
    struct pk_kube_request *r = ctx;
    int rc;

    PK_ASSERT(r->magic == REQUEST_MAGIC);
    if (r->complete) {
        return 0;
    }
    if (pk_buf_append(&r->in, p, len) != 0) {
        request_fail(r, PK_E_TOOBIG, "answer from %s larger than %zu bytes", r->c->address,
                     r->in._max);
        return 0;
    }
    rc = try_parse(r, false, err);
    if (rc == 0) {
        request_finish(r, 0);
    } else if (rc != PK_E_AGAIN) {
        request_fail(r, rc, "bad answer from %s: %s", r->c->address, err->msg);
    }
    return 0;
}

static int op_produce(void *ctx, struct pk_buf *out, struct pk_err *err)
{
    struct pk_kube_request *r = ctx;

    PK_ASSERT(r->magic == REQUEST_MAGIC);
    if (r->sent) {
        return 0;
    }
    if (pk_buf_space(out) < r->out.len) {
        return 0; /* comes back when the stream has drained */
    }
    if (pk_buf_append(out, r->out.data, r->out.len) != 0) {
        return pk_err_set(err, PK_E_TOOBIG, "request larger than the TLS output buffer");
    }
    r->sent = true;
    return 0;
}

static void op_closed(void *ctx, int code, const char *msg)
{
    struct pk_kube_request *r = ctx;
    struct pk_err err = {{0}};
    int rc;

    PK_ASSERT(r->magic == REQUEST_MAGIC);
    if (code == 0 && r->sent) {
        rc = try_parse(r, true, &err);
        if (rc == 0) {
            request_finish(r, 0);
        } else {
            request_fail(r, rc, "bad answer from %s: %s", r->c->address, err.msg);
        }
        return;
    }
    request_fail(r, code != 0 ? code : PK_E_EOF, "connection to %s failed: %s", r->c->address, msg);
}

static const struct pk_tls_stream_ops request_ops = {
        .handshake_done = op_handshake_done,
        .recv = op_recv,
        .produce = op_produce,
        .closed = op_closed,
};

/* ---- connecting ---------------------------------------------------------------------------- */

static void request_start_tls(struct pk_kube_request *r)
{
    struct pk_kube_client *c = r->c;
    struct pk_tls_stream_config scfg = {
            .handshake_timeout = c->timeout + 1.0, /* the deadline comes first */
            .out_max = MAX_REQUEST,
    };
    struct pk_err err = {{0}};
    WOLFSSL *ssl = NULL;

    ssl = wolfSSL_new(c->tls);
    if (ssl == NULL || wolfSSL_set_fd(ssl, r->fd) != WOLFSSL_SUCCESS ||
        wolfSSL_UseSNI(ssl, WOLFSSL_SNI_HOST_NAME, c->server_name,
                       (unsigned short)strlen(c->server_name)) != WOLFSSL_SUCCESS ||
        wolfSSL_check_domain_name(ssl, c->server_name) != WOLFSSL_SUCCESS) {
        /* The API server is identified by a DNS name in its certificate, as client-go checks
         * it; a session that cannot be told the name is not started. */
        if (ssl != NULL) {
            wolfSSL_free(ssl);
        }
        request_fail(r, PK_E_TLS, "cannot start TLS with %s for the name `%s'", c->address,
                     c->server_name);
        return;
    }
    if (pk_tls_stream_new(c->loop, r->fd, ssl, &scfg, &request_ops, r, &r->st, &err) != 0) {
        wolfSSL_free(ssl);
        request_fail(r, PK_E_TLS, "cannot start TLS with %s: %s", c->address, err.msg);
        return;
    }
    r->fd = -1; /* taken by the stream */
    pk_tls_stream_start(r->st);
}

static void connect_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct pk_kube_request *r = w->data;
    int soerr = 0;
    socklen_t len = sizeof(soerr);

    (void)revents;
    PK_ASSERT(r->magic == REQUEST_MAGIC);
    ev_io_stop(loop, &r->cio);
    if (getsockopt(r->fd, SOL_SOCKET, SO_ERROR, &soerr, &len) != 0) {
        soerr = errno;
    }
    if (soerr != 0) {
        request_fail(r, -soerr, "cannot connect to the Kubernetes API server %s: %s", r->c->address,
                     strerror(soerr));
        return;
    }
    request_start_tls(r);
}

static void deadline_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct pk_kube_request *r = w->data;

    (void)loop;
    (void)revents;
    PK_ASSERT(r->magic == REQUEST_MAGIC);
    if (r->pending_code != 0) {
        request_finish(r, r->pending_code);
        return;
    }
    request_fail(r, PK_E_TIMEOUT, "no answer from the Kubernetes API server %s within %.1fs%s",
                 r->c->address, r->c->timeout, r->st == NULL ? " (not connected)" : "");
}

/* Report a failure found while starting, from the loop. */
static void request_fail_later(struct pk_kube_request *r, int code, const char *fmt, ...)
        PK_PRINTF(3, 4);

static void request_fail_later(struct pk_kube_request *r, int code, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(r->error, sizeof(r->error), fmt, ap);
    va_end(ap);
    r->pending_code = code;
    ev_timer_stop(r->c->loop, &r->deadline);
    ev_timer_set(&r->deadline, 0., 0.);
    ev_timer_start(r->c->loop, &r->deadline);
}

/* The request text: request line, headers (the bearer token read now, so a rotated token is
 * used), body. */
static int build_request(struct pk_kube_request *r, const char *method, const char *path,
                         struct pk_slice body, struct pk_err *err)
{
    struct pk_kube_client *c = r->c;
    struct pk_buf token;
    int rc;

    pk_buf_init_secret(&token, MAX_TOKEN);
    if (pk_buf_printf(&r->out,
                      "%s %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: picket-sentry\r\n"
                      "Accept: application/json\r\nConnection: close\r\n",
                      method, path, c->host_header) != 0) {
        rc = pk_err_set(err, PK_E_TOOBIG, "request path too long");
        goto out;
    }
    if (c->token_path != NULL) {
        size_t n;
        rc = pk_fs_read_file(c->token_path, MAX_TOKEN, &token, err);
        if (rc != 0) {
            pk_err_prefix(err, rc, "service account token");
            goto out;
        }
        n = token.len;
        while (n > 0 && (token.data[n - 1] == '\n' || token.data[n - 1] == '\r' ||
                         token.data[n - 1] == ' ')) {
            n--;
        }
        if (n == 0) {
            rc = pk_err_set(err, PK_E_INVALID, "service account token file %s is empty",
                            c->token_path);
            goto out;
        }
        for (size_t i = 0; i < n; i++) {
            if (token.data[i] < 0x21 || token.data[i] > 0x7e) {
                rc = pk_err_set(err, PK_E_INVALID,
                                "service account token file %s holds a byte that cannot be "
                                "sent in a header (offset %zu)",
                                c->token_path, i);
                goto out;
            }
        }
        if (pk_buf_append_str(&r->out, "Authorization: Bearer ") != 0 ||
            pk_buf_append(&r->out, token.data, n) != 0 || pk_buf_append_str(&r->out, "\r\n") != 0) {
            rc = pk_err_set(err, PK_E_TOOBIG, "service account token too long");
            goto out;
        }
    }
    if (body.len > 0 &&
        pk_buf_printf(&r->out, "Content-Type: application/json\r\nContent-Length: %zu\r\n",
                      body.len) != 0) {
        rc = pk_err_set(err, PK_E_TOOBIG, "request too long");
        goto out;
    }
    if (pk_buf_append_str(&r->out, "\r\n") != 0 ||
        pk_buf_append(&r->out, body.ptr, body.len) != 0) {
        rc = pk_err_set(err, PK_E_TOOBIG, "request body too long");
        goto out;
    }
    rc = 0;
out:
    pk_buf_free(&token);
    return rc;
}

int pk_kube_client_request(struct pk_kube_client *c, const char *method, const char *path,
                           struct pk_slice body, pk_kube_done_fn fn, void *ctx,
                           struct pk_kube_request **out, struct pk_err *err)
{
    struct pk_kube_request *r;
    int one = 1;

    PK_ASSERT(c->magic == CLIENT_MAGIC);
    if (path[0] != '/' || strpbrk(path, " \r\n") != NULL || strpbrk(method, " \r\n") != NULL) {
        return pk_err_set(err, PK_E_INVALID, "bad request line for %s", method);
    }
    r = pk_xcalloc(1, sizeof(*r));
    r->magic = REQUEST_MAGIC;
    r->c = c;
    r->fn = fn;
    r->ctx = ctx;
    r->fd = -1;
    pk_buf_init_secret(&r->out, MAX_REQUEST);
    /* Room for the head and a chunked body's framing around max_response bytes. Both are
     * wiped when freed: a TokenReview answer echoes the reviewed token, a Secret holds a key. */
    pk_buf_init_secret(&r->in, 2 * c->max_response + PK_KUBE_HTTP_MAX_HEAD);
    pk_buf_init_secret(&r->body, c->max_response);
    ev_io_init(&r->cio, connect_cb, -1, EV_WRITE);
    r->cio.data = r;
    ev_timer_init(&r->deadline, deadline_cb, c->timeout, 0.);
    r->deadline.data = r;
    r->next = c->requests;
    if (c->requests != NULL) {
        c->requests->prev = r;
    }
    c->requests = r;
    ev_timer_start(c->loop, &r->deadline);
    if (out != NULL) {
        *out = r;
    }

    if (build_request(r, method, path, body, err) != 0) {
        request_fail_later(r, PK_E_INVALID, "%s", err->msg);
        return 0;
    }
    r->fd = socket(c->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (r->fd < 0) {
        request_fail_later(r, -errno, "cannot connect to %s: %s", c->address, strerror(errno));
        return 0;
    }
    setsockopt(r->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (connect(r->fd, (const struct sockaddr *)&c->addr, c->addr_len) == 0) {
        request_start_tls(r);
        return 0;
    }
    if (errno != EINPROGRESS) {
        request_fail_later(r, -errno, "cannot connect to the Kubernetes API server %s: %s",
                           c->address, strerror(errno));
        return 0;
    }
    ev_io_set(&r->cio, r->fd, EV_WRITE);
    ev_io_start(c->loop, &r->cio);
    return 0;
}

void pk_kube_request_cancel(struct pk_kube_request *r)
{
    if (r != NULL) {
        PK_ASSERT(r->magic == REQUEST_MAGIC);
        request_free(r);
    }
}

/* ---- the client ----------------------------------------------------------------------------- */

/* The API server is an ordinary TLS server, not a SPIFFE peer: its certificate (RSA on most
 * clusters) carries DNS names and chains to the cluster CA. So this context is plain wolfSSL with
 * its own chain verification and name check, not picket's SPIFFE TLS policy (common/tls), which
 * knows only P-256 and Ed25519 certificates. TLS 1.2 (ECDHE with AEAD) or 1.3. */
static const char kube_ciphers[] =
        "TLS13-AES128-GCM-SHA256:TLS13-AES256-GCM-SHA384:TLS13-CHACHA20-POLY1305-SHA256:"
        "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
        "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
        "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";

static int make_tls(const struct pk_kube_client_config *cfg, const struct pk_buf *ca,
                    WOLFSSL_CTX **out, struct pk_err *err)
{
    WOLFSSL_CTX *ctx = wolfSSL_CTX_new(wolfSSLv23_client_method());
    struct pk_buf chain, key_pem, key_der;
    struct pk_key *key = NULL;
    int rc = 0;

    pk_buf_init(&chain, MAX_PEM);
    pk_buf_init_secret(&key_pem, MAX_PEM);
    pk_buf_init_secret(&key_der, MAX_PEM);
    if (ctx == NULL || wolfSSL_CTX_SetMinVersion(ctx, WOLFSSL_TLSV1_2) != WOLFSSL_SUCCESS ||
        wolfSSL_CTX_set_cipher_list(ctx, kube_ciphers) != WOLFSSL_SUCCESS) {
        rc = pk_err_set(err, PK_E_TLS, "cannot set up a TLS context");
        goto out;
    }
    if (wolfSSL_CTX_load_verify_buffer(ctx, ca->data, (long)ca->len, WOLFSSL_FILETYPE_PEM) !=
        WOLFSSL_SUCCESS) {
        rc = pk_err_set(err, PK_E_INVALID, "%s: no usable CA certificate", cfg->ca_path);
        goto out;
    }
    wolfSSL_CTX_set_verify(ctx, WOLFSSL_VERIFY_PEER, NULL);
    if (cfg->client_cert_path != NULL) {
        rc = pk_fs_read_file(cfg->client_cert_path, MAX_PEM, &chain, err);
        if (rc == 0) {
            rc = pk_fs_read_file(cfg->client_key_path, MAX_PEM, &key_pem, err);
        }
        if (rc == 0) {
            rc = pk_key_load_pem(key_pem.data, key_pem.len, cfg->client_key_path, &key, err);
        }
        if (rc != 0) {
            goto out;
        }
        if (pk_key_to_der(key, &key_der) != 0 ||
            wolfSSL_CTX_use_certificate_chain_buffer(ctx, chain.data, (long)chain.len) !=
                    WOLFSSL_SUCCESS ||
            wolfSSL_CTX_use_PrivateKey_buffer(ctx, key_der.data, (long)key_der.len,
                                              WOLFSSL_FILETYPE_ASN1) != WOLFSSL_SUCCESS ||
            wolfSSL_CTX_check_private_key(ctx) != WOLFSSL_SUCCESS) {
            rc = pk_err_set(err, PK_E_INVALID, "%s and %s: not a matching certificate and key",
                            cfg->client_cert_path, cfg->client_key_path);
            goto out;
        }
    }
    *out = ctx;
    ctx = NULL;
out:
    if (ctx != NULL) {
        wolfSSL_CTX_free(ctx);
    }
    pk_key_free(key);
    pk_buf_free(&chain);
    pk_buf_free(&key_pem);
    pk_buf_free(&key_der);
    return rc;
}

int pk_kube_client_new(struct ev_loop *loop, const struct pk_kube_client_config *cfg,
                       struct pk_kube_client **out, struct pk_err *err)
{
    struct pk_kube_client *c = NULL;
    struct pk_buf ca;
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV};
    struct addrinfo *res = NULL;
    bool v6;
    int rc, gr;

    pk_buf_init(&ca, MAX_PEM);
    if (cfg->host == NULL || cfg->host[0] == '\0' || cfg->port == NULL || cfg->port[0] == '\0') {
        rc = pk_err_set(err, PK_E_INVALID,
                        "no Kubernetes API server: KUBERNETES_SERVICE_HOST and "
                        "KUBERNETES_SERVICE_PORT are not set");
        goto out;
    }
    if (cfg->ca_path == NULL || cfg->ca_path[0] == '\0') {
        rc = pk_err_set(err, PK_E_INVALID, "no CA file for the Kubernetes API server");
        goto out;
    }
    if ((cfg->client_cert_path == NULL) != (cfg->client_key_path == NULL)) {
        rc = pk_err_set(err, PK_E_INVALID,
                        "a client certificate for the Kubernetes API needs both a certificate "
                        "and a key file");
        goto out;
    }
    rc = pk_fs_read_file(cfg->ca_path, MAX_PEM, &ca, err);
    if (rc != 0) {
        pk_err_prefix(err, rc, "Kubernetes API CA");
        goto out;
    }
    gr = getaddrinfo(cfg->host, cfg->port, &hints, &res);
    if (gr != 0 || res == NULL) {
        rc = pk_err_set(err, PK_E_INVALID, "Kubernetes API server %s port %s: %s", cfg->host,
                        cfg->port, gr != 0 ? gai_strerror(gr) : "no address");
        goto out;
    }
    c = pk_xcalloc(1, sizeof(*c));
    c->magic = CLIENT_MAGIC;
    c->loop = loop;
    memcpy(&c->addr, res->ai_addr, res->ai_addrlen);
    c->addr_len = res->ai_addrlen;
    v6 = strchr(cfg->host, ':') != NULL;
    snprintf(c->address, sizeof(c->address), "%s%s%s:%s", v6 ? "[" : "", cfg->host, v6 ? "]" : "",
             cfg->port);
    c->host_header = pk_xstrdup(c->address);
    c->token_path = cfg->token_path != NULL && cfg->token_path[0] != '\0'
                            ? pk_xstrdup(cfg->token_path)
                            : NULL;
    c->server_name = pk_xstrdup(cfg->server_name != NULL && cfg->server_name[0] != '\0'
                                        ? cfg->server_name
                                        : PK_KUBE_DEFAULT_SERVER_NAME);
    c->timeout = cfg->timeout > 0 ? cfg->timeout : DEFAULT_TIMEOUT;
    c->max_response = cfg->max_response > 0 ? cfg->max_response : PK_KUBE_MAX_RESPONSE;
    rc = make_tls(cfg, &ca, &c->tls, err);
    if (rc != 0) {
        pk_err_prefix(err, rc, "Kubernetes API TLS");
        goto out;
    }
    *out = c;
    c = NULL;
out:
    if (res != NULL) {
        freeaddrinfo(res);
    }
    pk_kube_client_free(c);
    pk_buf_free(&ca);
    return rc;
}

struct pk_kube_client *pk_kube_client_free(struct pk_kube_client *c)
{
    if (c == NULL) {
        return NULL;
    }
    PK_ASSERT(c->magic == CLIENT_MAGIC);
    while (c->requests != NULL) {
        request_free(c->requests);
    }
    if (c->tls != NULL) {
        wolfSSL_CTX_free(c->tls);
    }
    free(c->host_header);
    free(c->token_path);
    free(c->server_name);
    c->magic = 0;
    free(c);
    return NULL;
}
