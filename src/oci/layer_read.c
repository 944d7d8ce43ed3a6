/* Reading a layer blob back as its tar (see layer_read.h). */
#include "oci/layer_read.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>
#include <zstd.h>

#include "base/alloc.h"

#define IN_BUF ((size_t)128 << 10)
#define RAW_BUF ((size_t)256 << 10)

typedef struct {
	int fd;
	const char *what;
	ocil_hasher *zh;
	uint64_t *zsize;
	const ocil_cancel *cancel;
	unsigned char *in;
} reader;

/* The next bytes of the blob into r->in (*n = 0 at its end), hashed and
 * counted. */
static int read_in(reader *r, size_t *n, ocil_error **err)
{
	if (ocil_cancel_check(r->cancel, err) < 0)
		return -1;
	for (;;) {
		ssize_t got = read(r->fd, r->in, IN_BUF);
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0)
			return ocil_error_set_errno(err, OCIL_E_IO, errno, "reading %s", r->what);
		*n = (size_t)got;
		if (r->zh != NULL)
			ocil_hasher_update(r->zh, r->in, *n);
		if (r->zsize != NULL)
			*r->zsize += *n;
		return 0;
	}
}

static int read_plain(reader *r, ocil_tar_bytes_fn fn, void *ctx, ocil_error **err)
{
	for (;;) {
		size_t n = 0;
		if (read_in(r, &n, err) < 0)
			return -1;
		if (n == 0)
			return 0;
		if (fn(ctx, r->in, n, err) < 0)
			return -1;
	}
}

static void inflate_endp(z_stream **z)
{
	if (*z != NULL)
		inflateEnd(*z);
}

/* Every gzip member in turn; the stream must end at a member's end. */
static int read_gzip(reader *r, ocil_tar_bytes_fn fn, void *ctx, ocil_error **err)
{
	z_stream zs;
	memset(&zs, 0, sizeof(zs));
	/* 15 + 16: the gzip wrapper only; a zlib or raw stream is no layer */
	if (inflateInit2(&zs, 15 + 16) != Z_OK)
		return ocil_error_set(err, OCIL_E_IO, "zlib: cannot initialise inflate");
	__attribute__((cleanup(inflate_endp))) z_stream *z = &zs;
	cleanup_free unsigned char *raw = ocil_xmalloc(RAW_BUF);
	bool ended = false, out_full = false;
	for (;;) {
		/* a full output buffer may leave output pending without more
		 * input: drain it before reading on */
		if (z->avail_in == 0 && !out_full) {
			size_t n = 0;
			if (read_in(r, &n, err) < 0)
				return -1;
			if (n == 0)
				break;
			z->next_in = r->in;
			z->avail_in = (uInt)n;
		}
		if (ended) {
			/* input after a member's end: the next member */
			inflateReset(z);
			ended = false;
		}
		z->next_out = raw;
		z->avail_out = (uInt)RAW_BUF;
		int zr = inflate(z, Z_NO_FLUSH);
		if (zr == Z_STREAM_END)
			ended = true;
		else if (zr != Z_OK && zr != Z_BUF_ERROR)
			return ocil_error_set(err, OCIL_E_INPUT, "%s: gzip: %s", r->what,
					      z->msg ? z->msg : "corrupt data");
		/* after a member's end everything has been handed out */
		out_full = zr != Z_STREAM_END && z->avail_out == 0;
		size_t have = RAW_BUF - z->avail_out;
		if (have > 0 && fn(ctx, raw, have, err) < 0)
			return -1;
	}
	if (!ended)
		return ocil_error_set(err, OCIL_E_INPUT, "%s: gzip: truncated stream", r->what);
	return 0;
}

static void dstream_freep(ZSTD_DStream **d)
{
	ZSTD_freeDStream(*d);
}

/* Every zstd frame in turn; the stream must end at a frame's end. */
static int read_zstd(reader *r, ocil_tar_bytes_fn fn, void *ctx, ocil_error **err)
{
	__attribute__((cleanup(dstream_freep))) ZSTD_DStream *d = ZSTD_createDStream();
	if (d == NULL)
		return ocil_error_set(err, OCIL_E_IO, "zstd: cannot create a decompressor");
	cleanup_free unsigned char *raw = ocil_xmalloc(RAW_BUF);
	bool ended = true; /* an empty blob holds no frame, and no tar */
	bool any = false;
	for (;;) {
		size_t n = 0;
		if (read_in(r, &n, err) < 0)
			return -1;
		if (n == 0)
			break;
		any = true;
		ZSTD_inBuffer ib = {r->in, n, 0};
		ZSTD_outBuffer ob = {raw, RAW_BUF, 0};
		/* until the input is used and no output is pending: a full
		 * output buffer may hold back more, unless the frame ended */
		bool pending = true;
		while (ib.pos < ib.size || pending) {
			ob.pos = 0;
			size_t rc = ZSTD_decompressStream(d, &ob, &ib);
			if (ZSTD_isError(rc))
				return ocil_error_set(err, OCIL_E_INPUT, "%s: zstd: %s", r->what,
						      ZSTD_getErrorName(rc));
			if (ob.pos > 0 && fn(ctx, raw, ob.pos, err) < 0)
				return -1;
			ended = rc == 0;
			pending = ob.pos == ob.size && !ended;
		}
	}
	if (!any || !ended)
		return ocil_error_set(err, OCIL_E_INPUT, "%s: zstd: truncated stream", r->what);
	return 0;
}

int ocil_layer_read_fd(int fd, ocil_layer_compression comp, const char *what, ocil_hasher *zh,
		       uint64_t *zsize, ocil_tar_bytes_fn fn, void *ctx, const ocil_cancel *cancel,
		       ocil_error **err)
{
	cleanup_free unsigned char *in = ocil_xmalloc(IN_BUF);
	reader r = {.fd = fd, .what = what, .zh = zh, .zsize = zsize, .cancel = cancel, .in = in};
	switch (comp) {
	case OCIL_LAYER_GZIP:
		return read_gzip(&r, fn, ctx, err);
	case OCIL_LAYER_ZSTD:
		return read_zstd(&r, fn, ctx, err);
	case OCIL_LAYER_TAR:
		return read_plain(&r, fn, ctx, err);
	case OCIL_LAYER_UNKNOWN:
		break;
	}
	return ocil_error_set(err, OCIL_E_INPUT, "%s: not a layer media type", what);
}

static int hash_bytes(void *ctx, const void *buf, size_t len, ocil_error **err)
{
	(void)err;
	ocil_hasher_update(ctx, buf, len);
	return 0;
}

static void hasher_freep(ocil_hasher **h)
{
	ocil_hasher_free(*h);
}

int ocil_layer_diff_id(const char *path, ocil_layer_compression comp, const ocil_cancel *cancel,
		       char out[OCIL_DIGEST_STR_SIZE], ocil_error **err)
{
	cleanup_close int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return ocil_error_set_errno(err, OCIL_E_IO, errno, "%s", path);
	__attribute__((cleanup(hasher_freep))) ocil_hasher *h = ocil_hasher_new();
	if (ocil_layer_read_fd(fd, comp, path, NULL, NULL, hash_bytes, h, cancel, err) < 0)
		return -1;
	ocil_hasher_final(h, out);
	return 0;
}
