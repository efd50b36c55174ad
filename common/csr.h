/* SPDX-License-Identifier: Apache-2.0 */
/* picket: PKCS#10 certificate signing requests: build one for a key, parse and verify one. */
#ifndef PK_CSR_H
#define PK_CSR_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "compiler.h"
#include "err.h"
#include "key.h"

/* Build a PKCS#10 CSR signed by key (borrowed; ECDSA-SHA256 or PureEd25519) and append it as a
 * "CERTIFICATE REQUEST" PEM block to out. common_name (borrowed) may be NULL for an empty subject
 * and no extensions; when it is given (1..64 printable ASCII characters) the CSR also carries it
 * as a DNS SAN (what Sentry ≤1.13 wanted; later ones ignore both). The CSR is checked with
 * pk_csr_parse_verify before it is returned. 0, PK_E_INVALID (common name), PK_E_CRYPTO,
 * PK_E_TOOBIG (out unchanged). */
int pk_csr_create(const struct pk_key *key, const char *common_name, struct pk_buf *out,
                  struct pk_err *err) PK_MUST_USE;

/* Parse a CSR's DER (borrowed; exactly len bytes, at most 64 KiB), check its self-signature,
 * and return its public key (*out takes it). PK_E_INVALID with a message saying whether the DER
 * or the signature is bad; PK_E_UNSUPPORTED for a key type other than P-256 or Ed25519. */
int pk_csr_parse_verify(const uint8_t *der, size_t len, struct pk_pubkey **out, struct pk_err *err)
        PK_MUST_USE;

#endif
