#include "digest.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

struct ocil_hasher {
	EVP_MD_CTX *ctx;
};

bool ocil_digest_valid(const char *s)
{
	if (s == NULL || strncmp(s, "sha256:", 7) != 0)
		return false;
	s += 7;
	size_t i;
	for (i = 0; s[i]; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return i == OCIL_DIGEST_HEX_LEN;
}

int ocil_digest_check(const char *s, const char *what, ocil_error **err)
{
	if (ocil_digest_valid(s))
		return 0;
	return ocil_error_set(err, OCIL_E_INPUT,
			      "%s: invalid digest \"%.80s\" (want sha256:<64 hex>)", what,
			      s ? s : "(null)");
}

const char *ocil_digest_hex(const char *digest)
{
	return digest + 7;
}

ocil_hasher *ocil_hasher_new(void)
{
	ocil_hasher *h = ocil_xcalloc(1, sizeof(*h));
	h->ctx = EVP_MD_CTX_new();
	if (h->ctx == NULL || EVP_DigestInit_ex(h->ctx, EVP_sha256(), NULL) != 1) {
		fputs("ocilambda: cannot initialise sha256\n", stderr);
		abort();
	}
	return h;
}

void ocil_hasher_update(ocil_hasher *h, const void *buf, size_t len)
{
	if (len > 0)
		EVP_DigestUpdate(h->ctx, buf, len);
}

void ocil_hasher_final(ocil_hasher *h, char out[OCIL_DIGEST_STR_SIZE])
{
	unsigned char md[32];
	unsigned int n = 0;
	EVP_DigestFinal_ex(h->ctx, md, &n);
	memcpy(out, "sha256:", 7);
	ocil_hex_encode(md, 32, out + 7);
}

void ocil_hex_encode(const unsigned char *buf, size_t n, char *out)
{
	/* OPENSSL_buf2hexstr_ex writes upper case; digests are lower case */
	static const char digits[] = "0123456789abcdef";
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[buf[i] >> 4];
		out[2 * i + 1] = digits[buf[i] & 15];
	}
	out[2 * n] = '\0';
}

void ocil_hasher_peek(const ocil_hasher *h, char out[OCIL_DIGEST_STR_SIZE])
{
	ocil_hasher copy = {.ctx = EVP_MD_CTX_new()};
	if (copy.ctx == NULL || EVP_MD_CTX_copy_ex(copy.ctx, h->ctx) != 1) {
		fputs("ocilambda: cannot copy a sha256 state\n", stderr);
		abort();
	}
	ocil_hasher_final(&copy, out);
	EVP_MD_CTX_free(copy.ctx);
}

void ocil_hasher_free(ocil_hasher *h)
{
	if (h == NULL)
		return;
	EVP_MD_CTX_free(h->ctx);
	free(h);
}

void ocil_digest_buf(const void *buf, size_t len, char out[OCIL_DIGEST_STR_SIZE])
{
	ocil_hasher *h = ocil_hasher_new();
	ocil_hasher_update(h, buf, len);
	ocil_hasher_final(h, out);
	ocil_hasher_free(h);
}
