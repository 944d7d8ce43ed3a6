/* sha256 digests: "sha256:<64 lowercase hex>" parsing, formatting and a
 * streaming hasher (OpenSSL EVP); the hex and base64 encodings, through
 * libcrypto too. */
#ifndef OCIL_DIGEST_H
#define OCIL_DIGEST_H

#include <stdbool.h>
#include <stddef.h>

#include "base/error.h"

#define OCIL_DIGEST_HEX_LEN 64
/* "sha256:" + 64 hex + NUL */
#define OCIL_DIGEST_STR_SIZE 72

typedef struct ocil_hasher ocil_hasher;

/* True when s is exactly "sha256:" followed by 64 lowercase hex digits. */
bool ocil_digest_valid(const char *s);
/* Validate, with an error naming what the digest belongs to. */
int ocil_digest_check(const char *s, const char *what, ocil_error **err);
/* The n bytes of buf as 2n lowercase hex digits and a NUL in out (2n + 1
 * bytes): the one hex encoder (digests, md5 sums, request ids). */
void ocil_hex_encode(const unsigned char *buf, size_t n, char *out);

/* Pointer to the hex part of a valid digest. */
const char *ocil_digest_hex(const char *digest);

ocil_hasher *ocil_hasher_new(void);
void ocil_hasher_update(ocil_hasher *h, const void *buf, size_t len);
/* Writes "sha256:<hex>" into out (OCIL_DIGEST_STR_SIZE bytes); the hasher can
 * not be updated afterwards. */
void ocil_hasher_final(ocil_hasher *h, char out[OCIL_DIGEST_STR_SIZE]);
/* The digest of what went in so far; h can take more afterwards. */
void ocil_hasher_peek(const ocil_hasher *h, char out[OCIL_DIGEST_STR_SIZE]);
void ocil_hasher_free(ocil_hasher *h);

/* One-shot digest of a buffer. */
void ocil_digest_buf(const void *buf, size_t len, char out[OCIL_DIGEST_STR_SIZE]);

/* Standard base64 (RFC 4648, padding optional) of a byte string (Basic
 * credentials, Lambda's client context). Returns the decoded bytes
 * NUL-terminated, or -1 with an OCIL_E_INPUT error naming what. */
int ocil_base64_decode(const char *in, const char *what, char **out, size_t *len, ocil_error **err);
char *ocil_base64_encode(const void *buf, size_t len);

#endif
