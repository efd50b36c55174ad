/* SPDX-License-Identifier: Apache-2.0 */
#include "common/addr.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/un.h>

#include "common/log.h"

/* Room for a quoted address in a message. */
#define QUOTE_LEN 160

#define SYNTAX "expected HOST:PORT, [V6]:PORT or unix:/PATH: "

_Static_assert(sizeof(((struct sockaddr_un *)0)->sun_path) == PK_ADDR_MAX_UNIX_PATH + 1,
               "PK_ADDR_MAX_UNIX_PATH is sun_path less its NUL");

/* A syntax error: with unix sockets allowed, the message names the whole grammar first. */
static int syntax_error(unsigned flags, struct pk_err *err, const char *text, const char *what)
{
    char q[QUOTE_LEN];

    return pk_err_set(err, PK_E_INVALID, "%s'%s'%s", (flags & PK_ADDR_NAMES) ? "" : SYNTAX,
                      pk_quote(q, sizeof(q), text, strlen(text)), what);
}

static int parse_unix(const char *text, unsigned flags, struct pk_addr *out, struct pk_err *err)
{
    struct sockaddr_un *un = (struct sockaddr_un *)&out->sa;
    const char *path = text + 5;
    size_t n = strlen(path);
    char q[QUOTE_LEN];

    if (!(flags & PK_ADDR_UNIX_RELATIVE) && path[0] != '/') {
        return pk_err_set(err, PK_E_INVALID,
                          "'%s': a unix socket path must be absolute, as in unix:/run/app.sock",
                          pk_quote(q, sizeof(q), text, strlen(text)));
    }
    if (n == 0) {
        return pk_err_set(err, PK_E_INVALID, "'%s': a unix socket path must not be empty",
                          pk_quote(q, sizeof(q), text, strlen(text)));
    }
    if (n > PK_ADDR_MAX_UNIX_PATH) {
        return pk_err_set(err, PK_E_INVALID,
                          "'%s': a unix socket path must be shorter than %d bytes",
                          pk_quote(q, sizeof(q), text, strlen(text)), PK_ADDR_MAX_UNIX_PATH + 1);
    }
    out->kind = PK_ADDR_UNIX;
    un->sun_family = AF_UNIX;
    memcpy(un->sun_path, path, n + 1);
    out->sa_len = (socklen_t)sizeof(*un);
    return 0;
}

/* A numeric host (no brackets) into out->sa; false when it is neither IPv4 nor IPv6. */
static bool numeric_host(const char *host, bool v6_only, uint16_t port, struct pk_addr *out)
{
    struct sockaddr_in *in4 = (struct sockaddr_in *)&out->sa;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&out->sa;

    memset(&out->sa, 0, sizeof(out->sa));
    if (!v6_only && inet_pton(AF_INET, host, &in4->sin_addr) == 1) {
        in4->sin_family = AF_INET;
        in4->sin_port = htons(port);
        out->sa_len = (socklen_t)sizeof(*in4);
        return true;
    }
    if (inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons(port);
        out->sa_len = (socklen_t)sizeof(*in6);
        return true;
    }
    return false;
}

/* The port after the last colon: digits only, min_port to 65535. */
static bool parse_port(const char *text, unsigned min_port, uint16_t *out)
{
    unsigned long v = 0;

    if (*text == '\0') {
        return false;
    }
    for (const char *s = text; *s != '\0'; s++) {
        if (*s < '0' || *s > '9') {
            return false;
        }
        v = v * 10 + (unsigned long)(*s - '0');
        if (v > 65535) {
            return false;
        }
    }
    if (v < min_port) {
        return false;
    }
    *out = (uint16_t)v;
    return true;
}

int pk_addr_parse(const char *text, unsigned flags, struct pk_addr *out, struct pk_err *err)
{
    const char *colon = strrchr(text, ':');
    unsigned min_port = (flags & PK_ADDR_PORT_ZERO) ? 0 : 1;
    bool bracketed = text[0] == '[';
    const char *host;
    size_t host_len;
    char q[QUOTE_LEN];
    char what[48];

    memset(out, 0, sizeof(*out));
    if (!(flags & PK_ADDR_NAMES) && strncmp(text, "unix:", 5) == 0) {
        return parse_unix(text, flags, out, err);
    }
    if (colon == NULL || colon == text) {
        return syntax_error(flags, err, text, " is not HOST:PORT");
    }
    host_len = (size_t)(colon - text);
    for (const char *s = text; s < colon; s++) {
        if ((unsigned char)*s <= ' ' || (unsigned char)*s >= 0x7f) {
            return syntax_error(flags, err, text, ": the host has a blank or control byte");
        }
    }
    if (bracketed) {
        if (host_len < 3 || colon[-1] != ']' || memchr(text + 1, ']', host_len - 2) != NULL) {
            return syntax_error(flags, err, text, ": bad [IPv6] host");
        }
    } else if (memchr(text, ':', host_len) != NULL || memchr(text, ']', host_len) != NULL) {
        return syntax_error(flags, err, text,
                            ": put an IPv6 address in brackets, as in [::1]:50001");
    }
    if (!parse_port(colon + 1, min_port, &out->port)) {
        snprintf(what, sizeof(what), ": the port is not a number from %u to 65535", min_port);
        return syntax_error(flags, err, text, what);
    }
    host = bracketed ? text + 1 : text;
    host_len = bracketed ? host_len - 2 : host_len;
    if (host_len >= sizeof(out->host)) {
        return pk_err_set(err, PK_E_INVALID, "'%s': the host is longer than %zu bytes",
                          pk_quote(q, sizeof(q), text, strlen(text)), sizeof(out->host) - 1);
    }
    memcpy(out->host, host, host_len);
    out->host[host_len] = '\0';
    out->kind = PK_ADDR_INET;
    if (bracketed) {
        /* inet_pton refuses zones ("%eth0") and names. */
        if (!numeric_host(out->host, true, out->port, out)) {
            return pk_err_set(err, PK_E_INVALID, "'%s': not an IPv6 address in brackets",
                              pk_quote(q, sizeof(q), text, strlen(text)));
        }
        return 0;
    }
    if (flags & PK_ADDR_NAMES) {
        /* A Sentry address: a literal IPv4 address is connected to as it is; anything else,
         * localhost included, is for the resolver (and is also the TLS server name). */
        if (!numeric_host(out->host, false, out->port, out)) {
            memset(&out->sa, 0, sizeof(out->sa));
            out->sa_len = 0;
            out->kind = PK_ADDR_NAME;
        }
        return 0;
    }
    /* Not bracketed, so not IPv6 (its colons were refused above). */
    if (numeric_host(strcmp(out->host, "localhost") == 0 ? "127.0.0.1" : out->host, false,
                     out->port, out)) {
        return 0;
    }
    return pk_err_set(err, PK_E_INVALID,
                      "'%s': the host must be a numeric IPv4 address, [IPv6] or localhost (names "
                      "are not resolved)",
                      pk_quote(q, sizeof(q), text, strlen(text)));
}

int pk_addr_from_host(const char *host, uint16_t port, struct pk_addr *out, struct pk_err *err)
{
    size_t n = strlen(host);
    char q[QUOTE_LEN];

    memset(out, 0, sizeof(*out));
    out->kind = PK_ADDR_INET;
    out->port = port;
    if (n >= 2 && host[0] == '[' && host[n - 1] == ']') {
        host++;
        n -= 2;
    }
    if (n < sizeof(out->host)) {
        memcpy(out->host, host, n);
        out->host[n] = '\0';
        if (numeric_host(strcmp(out->host, "localhost") == 0 ? "127.0.0.1" : out->host, false, port,
                         out)) {
            return 0;
        }
    }
    return pk_err_set(err, PK_E_INVALID,
                      "listen address \"%s\" is not a numeric IP address or \"localhost\"",
                      pk_quote(q, sizeof(q), host, n));
}

const char *pk_addr_format(const struct pk_addr *a, char *buf, size_t len)
{
    char host[INET6_ADDRSTRLEN];

    switch (a->kind) {
    case PK_ADDR_UNIX:
        snprintf(buf, len, "unix:%s", ((const struct sockaddr_un *)&a->sa)->sun_path);
        break;
    case PK_ADDR_NAME:
        snprintf(buf, len, "%s:%u", a->host, a->port);
        break;
    case PK_ADDR_INET:
        if (a->sa.ss_family == AF_INET6) {
            inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)&a->sa)->sin6_addr, host,
                      sizeof(host));
            snprintf(buf, len, "[%s]:%u", host, a->port);
        } else {
            inet_ntop(AF_INET, &((const struct sockaddr_in *)&a->sa)->sin_addr, host, sizeof(host));
            snprintf(buf, len, "%s:%u", host, a->port);
        }
        break;
    }
    return buf;
}

bool pk_addr_is_loopback(const struct pk_addr *a)
{
    if (a->kind == PK_ADDR_UNIX) {
        return true;
    }
    if (a->kind != PK_ADDR_INET) {
        return false;
    }
    if (a->sa.ss_family == AF_INET6) {
        return IN6_IS_ADDR_LOOPBACK(&((const struct sockaddr_in6 *)&a->sa)->sin6_addr);
    }
    return (ntohl(((const struct sockaddr_in *)&a->sa)->sin_addr.s_addr) >> 24) == 127;
}

static bool is_wildcard(const struct pk_addr *a)
{
    if (a->sa.ss_family == AF_INET6) {
        return IN6_IS_ADDR_UNSPECIFIED(&((const struct sockaddr_in6 *)&a->sa)->sin6_addr);
    }
    return ((const struct sockaddr_in *)&a->sa)->sin_addr.s_addr == htonl(INADDR_ANY);
}

static bool same_host(const struct pk_addr *a, const struct pk_addr *b)
{
    if (a->sa.ss_family == AF_INET6) {
        return memcmp(&((const struct sockaddr_in6 *)&a->sa)->sin6_addr,
                      &((const struct sockaddr_in6 *)&b->sa)->sin6_addr,
                      sizeof(struct in6_addr)) == 0;
    }
    return ((const struct sockaddr_in *)&a->sa)->sin_addr.s_addr ==
           ((const struct sockaddr_in *)&b->sa)->sin_addr.s_addr;
}

bool pk_addr_overlaps(const struct pk_addr *a, const struct pk_addr *b)
{
    if (a->kind != b->kind) {
        return false;
    }
    if (a->kind == PK_ADDR_UNIX) {
        return strcmp(((const struct sockaddr_un *)&a->sa)->sun_path,
                      ((const struct sockaddr_un *)&b->sa)->sun_path) == 0;
    }
    if (a->kind != PK_ADDR_INET || a->sa.ss_family != b->sa.ss_family || a->port != b->port ||
        a->port == 0) {
        return false;
    }
    return is_wildcard(a) || is_wildcard(b) || same_host(a, b);
}
