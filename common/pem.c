/* SPDX-License-Identifier: Apache-2.0 */
/* picket: PEM blocks (RFC 7468) to and from DER, and a minimal DER reader and writer.
 *
 * Implementation notes
 *
 * A "line" is the text between two LF characters, without the LF, without one CR before it and
 * without trailing spaces or tabs. A block is a BEGIN line, base64 lines, and an END line with
 * the same label. The decoder makes two passes over a block: the first finds the END line and
 * checks every character, so that the DER buffer is allocated once at its exact size (after the
 * PK_PEM_MAX_DER check); the second decodes. Base64 is decoded by our own strict decoder
 * (RFC 4648 §4 alphabet, padding only at the end, zero pad bits), because RFC 7468 §3 asks
 * generators for exactly that and a lenient decoder would give two texts the same DER. */
#include "pem.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base64.h"
#include "mem.h"

static const char pem_begin[] = "-----BEGIN ";
static const char pem_end[] = "-----END ";
static const char pem_dashes[] = "-----";

#define PEM_BEGIN_LEN  (sizeof(pem_begin) - 1)
#define PEM_END_LEN    (sizeof(pem_end) - 1)
#define PEM_DASHES_LEN (sizeof(pem_dashes) - 1)
#define PEM_MAX_LABEL  (sizeof(((struct pk_pem_block *)0)->type) - 1)

/* One line of text[start..next): content is text[start..end). */
struct pem_line {
    size_t start;
    size_t end;
    size_t next;
};

static void pem_line_at(const uint8_t *text, size_t len, size_t pos, struct pem_line *line)
{
    const uint8_t *nl = memchr(text + pos, '\n', len - pos);
    size_t end = nl != NULL ? (size_t)(nl - text) : len;

    line->start = pos;
    line->next = nl != NULL ? end + 1 : len;
    if (end > pos && text[end - 1] == '\r') {
        end--;
    }
    while (end > pos && (text[end - 1] == ' ' || text[end - 1] == '\t')) {
        end--;
    }
    line->end = end;
}

static bool pem_line_starts(const uint8_t *text, const struct pem_line *line, const char *prefix,
                            size_t prefix_len)
{
    return line->end - line->start >= prefix_len &&
           memcmp(text + line->start, prefix, prefix_len) == 0;
}

/* RFC 7468 §3: labelchar = %x21-2C / %x2E-7E; label = [ labelchar *( ["-" / SP] labelchar ) ] */
static bool pem_label_char(uint8_t c)
{
    return (c >= 0x21 && c <= 0x2c) || (c >= 0x2e && c <= 0x7e);
}

static bool pem_label_valid(const uint8_t *label, size_t len)
{
    if (len == 0 || len > PEM_MAX_LABEL) {
        return false;
    }
    if (!pem_label_char(label[0]) || !pem_label_char(label[len - 1])) {
        return false;
    }
    for (size_t i = 1; i + 1 < len; i++) {
        if (pem_label_char(label[i])) {
            continue;
        }
        if ((label[i] != '-' && label[i] != ' ') || !pem_label_char(label[i + 1])) {
            return false;
        }
    }
    return true;
}

/* A BEGIN or END line: prefix, label, five dashes, nothing else. Finds the label. */
static bool pem_boundary(const uint8_t *text, const struct pem_line *line, size_t prefix_len,
                         const uint8_t **label, size_t *label_len)
{
    size_t from = line->start + prefix_len;

    if (line->end - from < PEM_DASHES_LEN ||
        memcmp(text + line->end - PEM_DASHES_LEN, pem_dashes, PEM_DASHES_LEN) != 0) {
        return false;
    }
    *label = text + from;
    *label_len = line->end - PEM_DASHES_LEN - from;
    return pem_label_valid(*label, *label_len);
}

/* How many BEGIN lines start in text[0..end): gives a block its ordinal for messages. */
static size_t pem_count_begins(const uint8_t *text, size_t end)
{
    struct pem_line line;
    size_t n = 0;

    for (size_t pos = 0; pos < end; pos = line.next) {
        pem_line_at(text, end, pos, &line);
        if (pem_line_starts(text, &line, pem_begin, PEM_BEGIN_LEN)) {
            n++;
        }
    }
    return n;
}

/* Pass 1 over the body lines: check each character, find the END line, count base64 characters
 * and padding. On success *end_line is the END line. */
static int pem_scan_body(const uint8_t *text, size_t len, size_t pos, const char *label,
                         size_t label_len, size_t ordinal, struct pem_line *end_line,
                         size_t *n_chars, size_t *n_pad, struct pk_err *err)
{
    struct pem_line line;
    size_t chars = 0;
    size_t pad = 0;

    for (; pos < len; pos = line.next) {
        pem_line_at(text, len, pos, &line);
        if (pem_line_starts(text, &line, pem_end, PEM_END_LEN)) {
            const uint8_t *end_label;
            size_t end_label_len;
            if (!pem_boundary(text, &line, PEM_END_LEN, &end_label, &end_label_len)) {
                return pk_err_set(err, PK_E_INVALID, "PEM block #%zu (%s): malformed END line",
                                  ordinal, label);
            }
            if (end_label_len != label_len || memcmp(end_label, label, label_len) != 0) {
                return pk_err_set(err, PK_E_INVALID,
                                  "PEM block #%zu (%s): END label '%.*s' does not match", ordinal,
                                  label, (int)end_label_len, (const char *)end_label);
            }
            *end_line = line;
            *n_chars = chars;
            *n_pad = pad;
            return 0;
        }
        if (pem_line_starts(text, &line, pem_dashes, PEM_DASHES_LEN)) {
            return pk_err_set(err, PK_E_INVALID,
                              "PEM block #%zu (%s): no END line before the next boundary", ordinal,
                              label);
        }
        if (line.end == line.start) {
            return pk_err_set(err, PK_E_INVALID, "PEM block #%zu (%s): blank line inside base64",
                              ordinal, label);
        }
        if (memchr(text + line.start, ':', line.end - line.start) != NULL) {
            return pk_err_set(err, PK_E_INVALID,
                              "PEM block #%zu (%s): RFC 1421 headers (an encrypted key?) are "
                              "not supported",
                              ordinal, label);
        }
        for (size_t i = line.start; i < line.end; i++) {
            uint8_t c = text[i];
            if (c == '=') {
                pad++;
            } else if (pk_base64_value(c, PK_BASE64_STD) < 0) {
                return pk_err_set(err, PK_E_INVALID,
                                  "PEM block #%zu (%s): invalid base64 character 0x%02x at "
                                  "offset %zu",
                                  ordinal, label, c, i);
            } else if (pad > 0) {
                return pk_err_set(err, PK_E_INVALID,
                                  "PEM block #%zu (%s): base64 data after padding", ordinal, label);
            }
            chars++;
        }
    }
    return pk_err_set(err, PK_E_INVALID, "PEM block #%zu (%s): no END line", ordinal, label);
}

/* Pass 2: decode the already checked lines text[pos..stop) into der (exactly der_len bytes). */
static int pem_decode_body(const uint8_t *text, size_t pos, size_t stop, uint8_t *der,
                           size_t der_len)
{
    struct pem_line line;
    uint32_t acc = 0;
    unsigned sextets = 0;
    size_t out = 0;

    for (; pos < stop; pos = line.next) {
        pem_line_at(text, stop, pos, &line);
        for (size_t i = line.start; i < line.end; i++) {
            if (text[i] == '=') {
                continue;
            }
            acc = (acc << 6) | (uint32_t)pk_base64_value(text[i], PK_BASE64_STD);
            if (++sextets == 4) {
                der[out++] = (uint8_t)(acc >> 16);
                der[out++] = (uint8_t)(acc >> 8);
                der[out++] = (uint8_t)acc;
                acc = 0;
                sextets = 0;
            }
        }
    }
    /* A final group of 2 or 3 characters: its unused low bits must be zero (RFC 4648 §3.5). */
    if (sextets == 2) {
        if ((acc & 0x0f) != 0) {
            return PK_E_INVALID;
        }
        der[out++] = (uint8_t)(acc >> 4);
    } else if (sextets == 3) {
        if ((acc & 0x03) != 0) {
            return PK_E_INVALID;
        }
        der[out++] = (uint8_t)(acc >> 10);
        der[out++] = (uint8_t)(acc >> 2);
    } else if (sextets != 0) {
        return PK_E_INVALID;
    }
    return out == der_len ? 0 : PK_E_INVALID;
}

int pk_pem_next(const uint8_t *text, size_t len, size_t *offset, struct pk_pem_block *out,
                struct pk_err *err)
{
    struct pem_line line;
    struct pem_line end_line = {0};
    const uint8_t *label;
    size_t label_len = 0;
    char type[sizeof(out->type)];
    size_t pos = *offset;
    size_t ordinal;
    size_t n_chars = 0;
    size_t n_pad = 0;
    size_t der_len;
    uint8_t *der = NULL;
    int r;

    PK_ASSERT(pos <= len);
    for (;; pos = line.next) {
        if (pos >= len) {
            return pk_err_set(err, PK_E_NOTFOUND, "no further PEM block");
        }
        pem_line_at(text, len, pos, &line);
        if (pem_line_starts(text, &line, pem_begin, PEM_BEGIN_LEN)) {
            break;
        }
    }
    ordinal = pem_count_begins(text, line.start) + 1;
    if (!pem_boundary(text, &line, PEM_BEGIN_LEN, &label, &label_len)) {
        return pk_err_set(err, PK_E_INVALID, "PEM block #%zu: malformed BEGIN line", ordinal);
    }
    memcpy(type, label, label_len);
    type[label_len] = '\0';

    r = pem_scan_body(text, len, line.next, type, label_len, ordinal, &end_line, &n_chars, &n_pad,
                      err);
    if (r != 0) {
        return r;
    }
    if (n_chars == 0) {
        return pk_err_set(err, PK_E_INVALID, "PEM block #%zu (%s): no data", ordinal, type);
    }
    if (n_pad > 2) {
        return pk_err_set(err, PK_E_INVALID, "PEM block #%zu (%s): too much base64 padding",
                          ordinal, type);
    }
    if (n_chars % 4 != 0) {
        return pk_err_set(err, PK_E_INVALID,
                          "PEM block #%zu (%s): base64 length %zu is not a multiple of 4", ordinal,
                          type, n_chars);
    }
    der_len = n_chars / 4 * 3 - n_pad;
    if (der_len > PK_PEM_MAX_DER) {
        return pk_err_set(err, PK_E_TOOBIG, "PEM block #%zu (%s): %zu bytes, more than %u", ordinal,
                          type, der_len, PK_PEM_MAX_DER);
    }
    der = pk_xmalloc(der_len);
    if (pem_decode_body(text, line.next, end_line.start, der, der_len) != 0) {
        r = pk_err_set(err, PK_E_INVALID, "PEM block #%zu (%s): non-canonical base64 padding",
                       ordinal, type);
        goto out;
    }
    memcpy(out->type, type, label_len + 1);
    out->der = der;
    out->der_len = der_len;
    der = NULL;
    *offset = end_line.next;
    r = 0;
out:
    pk_free_secret(der, der_len);
    return r;
}

void pk_pem_block_clear(struct pk_pem_block *block)
{
    block->der = pk_free_secret(block->der, block->der_len);
    block->der_len = 0;
    block->type[0] = '\0';
}

int pk_pem_encode(const char *type, const uint8_t *der, size_t der_len, struct pk_buf *out)
{
    static const char alphabet[] =
            "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t type_len = strlen(type);
    size_t b64_len;
    size_t total;
    uint8_t *dst;
    size_t col = 0;
    size_t o = 0;
    int r;

    if (!pem_label_valid((const uint8_t *)type, type_len) || der_len == 0) {
        return PK_E_INVALID;
    }
    if (der_len > PK_PEM_MAX_DER) {
        return PK_E_TOOBIG;
    }
    b64_len = (der_len + 2) / 3 * 4;
    total = PEM_BEGIN_LEN + type_len + PEM_DASHES_LEN + 1 + b64_len + (b64_len + 63) / 64 +
            PEM_END_LEN + type_len + PEM_DASHES_LEN + 1;
    r = pk_buf_reserve(out, total, &dst);
    if (r != 0) {
        return r;
    }
    memcpy(dst + o, pem_begin, PEM_BEGIN_LEN);
    o += PEM_BEGIN_LEN;
    memcpy(dst + o, type, type_len);
    o += type_len;
    memcpy(dst + o, pem_dashes, PEM_DASHES_LEN);
    o += PEM_DASHES_LEN;
    dst[o++] = '\n';
    for (size_t i = 0; i < der_len; i += 3) {
        uint32_t v = (uint32_t)der[i] << 16;
        size_t n = der_len - i < 3 ? der_len - i : 3;
        if (n > 1) {
            v |= (uint32_t)der[i + 1] << 8;
        }
        if (n > 2) {
            v |= der[i + 2];
        }
        dst[o++] = (uint8_t)alphabet[(v >> 18) & 0x3f];
        dst[o++] = (uint8_t)alphabet[(v >> 12) & 0x3f];
        dst[o++] = n > 1 ? (uint8_t)alphabet[(v >> 6) & 0x3f] : '=';
        dst[o++] = n > 2 ? (uint8_t)alphabet[v & 0x3f] : '=';
        col += 4;
        if (col == 64 || i + 3 >= der_len) {
            dst[o++] = '\n';
            col = 0;
        }
    }
    memcpy(dst + o, pem_end, PEM_END_LEN);
    o += PEM_END_LEN;
    memcpy(dst + o, type, type_len);
    o += type_len;
    memcpy(dst + o, pem_dashes, PEM_DASHES_LEN);
    o += PEM_DASHES_LEN;
    dst[o++] = '\n';
    PK_ASSERT(o == total);
    pk_buf_commit(out, total);
    return 0;
}

int pk_der_read(struct pk_slice *in, struct pk_der *out)
{
    const uint8_t *p = in->ptr;
    size_t n = in->len;
    size_t hdr = 2;
    size_t len;

    if (n < 2) {
        return PK_E_TRUNCATED;
    }
    if ((p[0] & 0x1f) == 0x1f) {
        return PK_E_INVALID; /* high tag number form: nothing picket reads uses it */
    }
    if (p[1] < 0x80) {
        len = p[1];
    } else {
        size_t nb = p[1] & 0x7f;
        if (nb == 0 || nb > 4) {
            return PK_E_INVALID; /* indefinite (BER only), or more than 4 GiB */
        }
        if (n - 2 < nb) {
            return PK_E_TRUNCATED;
        }
        if (p[2] == 0) {
            return PK_E_INVALID; /* leading zero octet: not the shortest form */
        }
        len = 0;
        for (size_t i = 0; i < nb; i++) {
            len = (len << 8) | p[2 + i];
        }
        if (len < 0x80) {
            return PK_E_INVALID; /* would have fitted the short form */
        }
        hdr += nb;
    }
    if (len > n - hdr) {
        return PK_E_TRUNCATED;
    }
    out->tag = p[0];
    out->tlv = p;
    out->tlv_len = hdr + len;
    out->val = p + hdr;
    out->len = len;
    in->ptr += hdr + len;
    in->len -= hdr + len;
    return 0;
}

int pk_der_expect(struct pk_slice *in, uint8_t tag, struct pk_der *out)
{
    struct pk_slice rest = *in;
    struct pk_der el;
    int r = pk_der_read(&rest, &el);

    if (r != 0) {
        return r;
    }
    if (el.tag != tag) {
        return PK_E_INVALID;
    }
    *in = rest;
    *out = el;
    return 0;
}

bool pk_der_is_oid(const struct pk_der *el, const uint8_t *oid, size_t oid_len)
{
    return el->tag == PK_DER_OID && el->len == oid_len && memcmp(el->val, oid, oid_len) == 0;
}

void pk_der_oid_str(const uint8_t *oid, size_t oid_len, char *out, size_t out_len)
{
    size_t o = 0;
    uint64_t v = 0;
    bool first = true;
    bool in_arc = false;

    if (out_len == 0) {
        return;
    }
    out[0] = '\0';
    for (size_t i = 0; i < oid_len; i++) {
        if (!in_arc && oid[i] == 0x80) {
            goto invalid; /* non-minimal arc */
        }
        if (v > (UINT64_MAX >> 7)) {
            goto invalid;
        }
        v = (v << 7) | (oid[i] & 0x7f);
        in_arc = (oid[i] & 0x80) != 0;
        if (in_arc) {
            continue;
        }
        int n;
        if (first) {
            unsigned top = v < 40 ? 0 : v < 80 ? 1 : 2;
            n = snprintf(out + o, out_len - o, "%u.%llu", top, (unsigned long long)(v - 40u * top));
            first = false;
        } else {
            n = snprintf(out + o, out_len - o, ".%llu", (unsigned long long)v);
        }
        if (n < 0 || (size_t)n >= out_len - o) {
            return; /* truncated but terminated */
        }
        o += (size_t)n;
        v = 0;
    }
    if (!in_arc && !first) {
        return;
    }
invalid:
    snprintf(out, out_len, "(invalid OID)");
}

/* Bytes a DER header for a value of len bytes takes. */
static size_t der_header_len(size_t len)
{
    size_t n = 2;

    if (len < 0x80) {
        return n;
    }
    for (size_t l = len; l > 0; l >>= 8) {
        n++;
    }
    return n;
}

static void der_write_header(uint8_t *dst, uint8_t tag, size_t len, size_t hdr)
{
    dst[0] = tag;
    if (hdr == 2) {
        dst[1] = (uint8_t)len;
        return;
    }
    dst[1] = (uint8_t)(0x80 | (hdr - 2));
    for (size_t i = hdr; i > 2; i--) {
        dst[i - 1] = (uint8_t)len;
        len >>= 8;
    }
}

int pk_der_put(struct pk_buf *out, uint8_t tag, const void *val, size_t len)
{
    size_t hdr = der_header_len(len);
    uint8_t *dst;
    int r;

    if (len > SIZE_MAX - hdr) {
        return PK_E_TOOBIG;
    }
    r = pk_buf_reserve(out, hdr + len, &dst);
    if (r != 0) {
        return r;
    }
    der_write_header(dst, tag, len, hdr);
    if (len > 0) {
        memcpy(dst + hdr, val, len);
    }
    pk_buf_commit(out, hdr + len);
    return 0;
}

int pk_der_wrap(struct pk_buf *out, size_t start, uint8_t tag)
{
    size_t len;
    size_t hdr;
    uint8_t *dst;
    int r;

    PK_ASSERT(start <= out->len);
    len = out->len - start;
    hdr = der_header_len(len);
    r = pk_buf_reserve(out, hdr, &dst);
    if (r != 0) {
        return r;
    }
    if (len > 0) {
        memmove(out->data + start + hdr, out->data + start, len);
    }
    der_write_header(out->data + start, tag, len, hdr);
    pk_buf_commit(out, hdr);
    return 0;
}
