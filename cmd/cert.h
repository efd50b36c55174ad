/* SPDX-License-Identifier: Apache-2.0 */
/* picket: the subcommands of `picket cert`. Each takes argc/argv starting at its own name
 * (argv[0] is "create-root", ...) and returns the process exit status: 0 success, 1 failure,
 * 2 bad usage. */
#ifndef PK_CMD_CERT_H
#define PK_CMD_CERT_H

/* picket cert create-root: a self-signed root in one of the CA profiles, with a new key or an
 * existing one (same-key rotation). */
int pk_cmd_cert_create_root(int argc, char **argv);

/* picket cert create-issuer: an issuer signed by a root, in one of the CA profiles; the result
 * is checked as `picket sentry` checks its credentials. */
int pk_cmd_cert_create_issuer(int argc, char **argv);

/* picket cert inspect: each certificate of a PEM file, and whether the chain verifies. */
int pk_cmd_cert_inspect(int argc, char **argv);

#endif
