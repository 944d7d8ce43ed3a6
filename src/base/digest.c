#include "base/digest.h"

#include <limits.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"

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

/* ---- base64 (EVP_EncodeBlock / EVP_DecodeBlock) ---- */

/* Decoded base64 is often a secret (Basic credentials): wiped when freed. */
static void wipe_freep(char **p)
{
	if (*p != NULL) {
		explicit_bzero(*p, strlen(*p));
		free(*p);
	}
}
#define cleanup_wipe __attribute__((cleanup(wipe_freep)))

static const char b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

char *ocil_base64_encode(const void *buf, size_t len)
{
	char *out = ocil_xmalloc((len + 2) / 3 * 4 + 1);
	EVP_EncodeBlock((unsigned char *)out, buf, (int)len);
	return out;
}

int ocil_base64_decode(const char *in, const char *what, char **out, size_t *len, ocil_error **err)
{
	size_t n = strlen(in);
	/* Padding is optional (some tools drop it) but must be right when
	 * present: at most two '=' and only at the end of a 4-char group. */
	size_t pad = 0;
	while (n > 0 && in[n - 1] == '=' && pad < 3) {
		n--;
		pad++;
	}
	if (pad > 2 || (pad > 0 && (n + pad) % 4 != 0) || n % 4 == 1 || n > INT_MAX / 2)
		return ocil_error_set(err, OCIL_E_INPUT,
				      "%s: invalid base64 (bad length or padding)", what);
	/* EVP_DecodeBlock skips blanks around the text: only the alphabet */
	size_t ok = strspn(in, b64_alphabet);
	if (ok < n)
		return ocil_error_set(err, OCIL_E_INPUT,
				      "%s: invalid base64 (unexpected character at offset %zu)",
				      what, ok);
	/* EVP_DecodeBlock wants whole groups: pad what was left unpadded */
	size_t missing = (4 - n % 4) % 4;
	cleanup_wipe char *padded = ocil_xmalloc(n + missing + 1);
	memcpy(padded, in, n);
	memset(padded + n, '=', missing);
	padded[n + missing] = '\0';
	cleanup_wipe char *buf = ocil_xcalloc(1, (n + missing) / 4 * 3 + 1);
	int got =
	    EVP_DecodeBlock((unsigned char *)buf, (unsigned char *)padded, (int)(n + missing));
	if (got < 0)
		return ocil_error_set(err, OCIL_E_INPUT, "%s: invalid base64", what);
	size_t o = (size_t)got - missing;
	/* Bits left over in the last character must be zero, or the encoding
	 * is not canonical and most likely corrupt: encoding the bytes again
	 * must give the text back. */
	cleanup_wipe char *again = ocil_base64_encode(buf, o);
	if (strncmp(again, padded, n) != 0)
		return ocil_error_set(err, OCIL_E_INPUT, "%s: invalid base64 (trailing bits)",
				      what);
	buf[o] = '\0';
	*len = o;
	*out = steal_pointer(&buf);
	return 0;
}
