/* SPDX-License-Identifier: Apache-2.0 */
/* picket: test-only gRPC server whose one method echoes its request bytes (net/grpc_server).
 *
 * Usage: grpc_echo_server --cert CHAIN.pem --key KEY [--anchors ROOTS.pem] [--listen ADDR]
 *                         [--port N] [--method /pkg.Service/Method] [--tls12]
 * KEY is PKCS#8, DER or PEM ("BEGIN PRIVATE KEY"). With --anchors, clients must present a
 * certificate that chains to ROOTS. The bound port is printed on stdout as "port=N" once the
 * server listens; it runs until SIGINT or SIGTERM. The default method is
 * /picket.test.Echo/Echo, answered with the request bytes unchanged; a request that starts with
 * "status:N:" is answered with gRPC status N and the rest as grpc-message, so tests can drive
 * error paths from any client. */
#include <errno.h>
#include <ev.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/coding.h>

#include "common/buf.h"
#include "common/err.h"
#include "common/grpc.h"
#include "common/mem.h"
#include "common/tls.h"
#include "net/grpc_server.h"

#define MAX_FILE (1024 * 1024)

static int read_file(const char *path, struct pk_buf *out, struct pk_err *err)
{
    FILE *f = fopen(path, "rb");
    uint8_t chunk[4096];
    size_t n;
    int rc = 0;

    if (f == NULL) {
        return pk_err_set(err, -errno, "%s: %s", path, strerror(errno));
    }
    pk_buf_init_secret(out, MAX_FILE);
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
        rc = pk_buf_append(out, chunk, n);
        if (rc != 0) {
            pk_err_set(err, rc, "%s: larger than %d bytes", path, MAX_FILE);
            break;
        }
    }
    pk_wipe(chunk, sizeof(chunk));
    fclose(f);
    return rc;
}

/* A PEM "PRIVATE KEY" block becomes its PKCS#8 DER; DER input is left alone. */
static int key_to_der(struct pk_buf *key, struct pk_err *err)
{
    static const char begin[] = "-----BEGIN PRIVATE KEY-----";
    static const char end[] = "-----END PRIVATE KEY-----";
    const char *text = (const char *)key->data;
    const char *b;
    const char *e;

    if (key->len == 0 || (b = strstr(text, begin)) == NULL) {
        return 0;
    }
    b += sizeof(begin) - 1;
    e = strstr(b, end);
    if (e == NULL) {
        return pk_err_set(err, PK_E_INVALID, "key: PEM block has no END line");
    }
    struct pk_buf der;
    pk_buf_init_secret(&der, MAX_FILE);
    uint8_t *dst;
    word32 dlen = (word32)(e - b);
    int r = pk_buf_reserve(&der, dlen, &dst);
    if (r == 0 && Base64_Decode((const byte *)b, (word32)(e - b), dst, &dlen) != 0) {
        r = pk_err_set(err, PK_E_INVALID, "key: PEM body is not base64");
    }
    if (r == 0) {
        pk_buf_commit(&der, dlen);
        pk_buf_free(key);
        *key = der;
    } else {
        pk_buf_free(&der);
    }
    return r;
}

static void echo(void *ctx, const struct pk_rpc_request *req, struct pk_rpc_reply *reply)
{
    const char *p = (const char *)req->message.ptr;
    size_t n = req->message.len;

    if (n > 7 && memcmp(p, "status:", 7) == 0) {
        char *endp;
        char head[16];
        snprintf(head, sizeof(head), "%.*s", (int)PK_MIN(n - 7, 15), p + 7);
        long st = strtol(head, &endp, 10);
        if (endp != head && *endp == ':' && st >= 0 && st <= 16) {
            size_t skip = 7 + (size_t)(endp - head) + 1;
            reply->status = (int)st;
            snprintf(reply->message, sizeof(reply->message), "%.*s", (int)(n - skip), p + skip);
            return;
        }
    }
    if (pk_buf_append(&reply->body, req->message.ptr, req->message.len) != 0) {
        reply->status = PK_GRPC_RESOURCE_EXHAUSTED;
        snprintf(reply->message, sizeof(reply->message), "echo does not fit");
        return;
    }
    reply->status = PK_GRPC_OK;
}

static void on_signal(struct ev_loop *loop, ev_signal *w, int revents)
{
    ev_break(loop, EVBREAK_ALL);
}

static void usage(void)
{
    fprintf(stderr, "usage: grpc_echo_server --cert CHAIN.pem --key KEY [--anchors ROOTS.pem] "
                    "[--listen ADDR] [--port N] [--method PATH] [--tls12]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    const char *cert = NULL, *key = NULL, *anchors = NULL, *listen = "127.0.0.1";
    const char *method = "/picket.test.Echo/Echo";
    unsigned long port = 0;
    bool tls12 = false;
    struct pk_buf chain_pem, key_der, anchors_pem;
    struct pk_tls_ctx *tls = NULL;
    struct pk_rpc_server *server = NULL;
    struct pk_err err = {{0}};
    struct ev_loop *loop = EV_DEFAULT;
    ev_signal sigint, sigterm;
    int rc = 1;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--tls12") == 0) {
            tls12 = true;
            continue;
        }
        if (v == NULL) {
            usage();
        }
        i++;
        if (strcmp(a, "--cert") == 0) {
            cert = v;
        } else if (strcmp(a, "--key") == 0) {
            key = v;
        } else if (strcmp(a, "--anchors") == 0) {
            anchors = v;
        } else if (strcmp(a, "--listen") == 0) {
            listen = v;
        } else if (strcmp(a, "--method") == 0) {
            method = v;
        } else if (strcmp(a, "--port") == 0) {
            char *end;
            port = strtoul(v, &end, 10);
            if (*v == '\0' || *end != '\0' || port > 65535) {
                usage();
            }
        } else {
            usage();
        }
    }
    if (cert == NULL || key == NULL) {
        usage();
    }
    pk_buf_init(&chain_pem, MAX_FILE);
    pk_buf_init_secret(&key_der, MAX_FILE);
    pk_buf_init(&anchors_pem, MAX_FILE);
    if (read_file(cert, &chain_pem, &err) != 0 || read_file(key, &key_der, &err) != 0 ||
        key_to_der(&key_der, &err) != 0 ||
        (anchors != NULL && read_file(anchors, &anchors_pem, &err) != 0)) {
        goto out;
    }
    struct pk_tls_config tcfg = {
            .server = true,
            .chain_pem = chain_pem.data,
            .chain_pem_len = chain_pem.len,
            .key_der = key_der.data,
            .key_der_len = key_der.len,
            .anchors_pem = anchors ? anchors_pem.data : NULL,
            .anchors_pem_len = anchors_pem.len,
            .require_peer_cert = anchors != NULL,
            .alpn = "h2",
            .allow_tls12 = tls12,
    };
    if (pk_tls_ctx_new(&tcfg, &tls, &err) != 0) {
        goto out;
    }
    struct pk_rpc_server_config scfg = {
            .listen_address = listen,
            .port = (uint16_t)port,
            .idle_timeout = 30,
    };
    if (pk_rpc_server_new(loop, &scfg, &server, &err) != 0) {
        goto out;
    }
    if (pk_rpc_server_add_method(server, method, echo, NULL) != 0) {
        pk_err_set(&err, PK_E_INVALID, "bad method path `%s'", method);
        goto out;
    }
    pk_rpc_server_set_tls(server, tls);
    if (pk_rpc_server_start(server, &err) != 0) {
        goto out;
    }
    printf("port=%u\n", pk_rpc_server_port(server));
    fflush(stdout);
    ev_signal_init(&sigint, on_signal, SIGINT);
    ev_signal_init(&sigterm, on_signal, SIGTERM);
    ev_signal_start(loop, &sigint);
    ev_signal_start(loop, &sigterm);
    ev_run(loop, 0);
    rc = 0;
out:
    if (rc != 0) {
        fprintf(stderr, "grpc_echo_server: %s\n", err.msg);
    }
    pk_rpc_server_free(server);
    pk_tls_ctx_unref(tls);
    pk_buf_free(&chain_pem);
    pk_buf_free(&key_der);
    pk_buf_free(&anchors_pem);
    return rc;
}
