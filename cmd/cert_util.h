/* SPDX-License-Identifier: Apache-2.0 */
/* picket: helpers shared by the `picket cert` subcommands: reading certificates and keys with
 * messages that name the file, writing them atomically (keys 0600), and showing a certificate
 * to a person. */
#ifndef PK_CMD_CERT_UTIL_H
#define PK_CMD_CERT_UTIL_H

#include <stdio.h>
#include <sys/types.h>
#include <time.h>

#include "common/compiler.h"
#include "common/err.h"
#include "common/key.h"
#include "common/x509.h"

/* The largest certificate or key file read: a bundle of many roots fits. */
#define PK_CERT_UTIL_MAX_FILE (1024u * 1024u)

/* Read every certificate of the PEM file at path (borrowed) into certs (start empty). 0, or an
 * error with err naming the file (missing, unreadable, no certificate, a malformed block). */
int pk_cert_util_read_certs(const char *path, struct pk_certs *certs, struct pk_err *err)
        PK_MUST_USE;

/* Read the private key of the PEM file at path (borrowed); *out takes it. The file's text is
 * read into a wiped buffer. 0, or an error with err naming the file. */
int pk_cert_util_read_key(const char *path, struct pk_key **out, struct pk_err *err) PK_MUST_USE;

/* Write cert (borrowed) as one PEM block to path, atomically, with mode 0644. */
int pk_cert_util_write_cert(const char *path, const struct pk_cert *cert, struct pk_err *err)
        PK_MUST_USE;

/* Write key (borrowed) as a PKCS#8 PEM block to path, atomically, with mode 0600; the encoded
 * key is wiped from memory afterwards. */
int pk_cert_util_write_key(const char *path, const struct pk_key *key, struct pk_err *err)
        PK_MUST_USE;

/* "2026-01-02T03:04:05Z" into out. */
void pk_cert_util_format_time(time_t t, char *out, size_t len);

/* How a validity period stands at now, for a person: "expires in 364d 23h",
 * "expired 2h 5m ago", "not valid for another 10m". */
void pk_cert_util_format_left(time_t not_before, time_t not_after, time_t now, char *out,
                              size_t len);

/* Print cert's fields, one indented "name: value" line each: subject, issuer, SPIFFE ID, DNS
 * names, serial, validity, key type, CA constraints, key usages, SHA-256 fingerprint. */
void pk_cert_util_describe(FILE *out, const struct pk_cert *cert, time_t now);

#endif
