#include "gzip.h"

#include <string.h>
#include <zlib.h>

#include "util.h"

#define OUTBUF (1 << 17)

struct ocil_gzip_blob {
	z_stream z;
	gz_header gzh; /* zlib keeps a pointer to it until the header is out */
	bool z_init;
	ocil_blob_writer *w;
	ocil_hasher *raw;
	uint64_t raw_size;
	unsigned char *out;
};

int ocil_gzip_blob_begin(ocil_blobstore *bs, int level, ocil_gzip_blob **out, ocil_error **err)
{
	ocil_gzip_blob *g = ocil_xcalloc(1, sizeof(*g));
	/* windowBits 15 + 16: gzip wrapper. The header gets mtime 0, no name
	 * and OS=Unix explicitly, so the bytes do not depend on zlib's build. */
	if (deflateInit2(&g->z, level > 0 ? level : 6, Z_DEFLATED, 15 + 16, 8,
			 Z_DEFAULT_STRATEGY) != Z_OK) {
		free(g);
		return ocil_error_set(err, OCIL_E_IO, "zlib: cannot initialise deflate");
	}
	g->z_init = true;
	g->gzh.os = 3;
	deflateSetHeader(&g->z, &g->gzh);
	if (ocil_blobstore_begin(bs, &g->w, err) < 0) {
		ocil_gzip_blob_free(g);
		return -1;
	}
	g->raw = ocil_hasher_new();
	g->out = ocil_xmalloc(OUTBUF);
	*out = g;
	return 0;
}

static int pump(ocil_gzip_blob *g, int flush, ocil_error **err)
{
	for (;;) {
		g->z.next_out = g->out;
		g->z.avail_out = OUTBUF;
		int zr = deflate(&g->z, flush);
		if (zr == Z_STREAM_ERROR)
			return ocil_error_set(err, OCIL_E_IO, "zlib: deflate failed");
		size_t have = OUTBUF - g->z.avail_out;
		if (have > 0 && ocil_blob_writer_write(g->w, g->out, have, err) < 0)
			return -1;
		if (flush == Z_FINISH ? zr == Z_STREAM_END : g->z.avail_out != 0)
			return 0;
	}
}

int ocil_gzip_blob_write(ocil_gzip_blob *g, const void *buf, size_t len, ocil_error **err)
{
	ocil_hasher_update(g->raw, buf, len);
	g->raw_size += len;
	const unsigned char *p = buf;
	while (len > 0) {
		/* avail_in is 32-bit; feed large buffers in pieces. */
		size_t chunk = len > (1u << 30) ? (1u << 30) : len;
		g->z.next_in = (unsigned char *)p;
		g->z.avail_in = (uInt)chunk;
		if (pump(g, Z_NO_FLUSH, err) < 0)
			return -1;
		p += chunk;
		len -= chunk;
	}
	return 0;
}

int ocil_gzip_blob_finish(ocil_gzip_blob *g, ocil_gzip_result *res, ocil_error **err)
{
	g->z.next_in = NULL;
	g->z.avail_in = 0;
	if (pump(g, Z_FINISH, err) < 0)
		return -1;
	memset(res, 0, sizeof(*res));
	ocil_hasher_final(g->raw, res->diff_id);
	res->raw_size = g->raw_size;
	return ocil_blob_writer_commit(g->w, NULL, -1, res->digest, &res->size, err);
}

void ocil_gzip_blob_free(ocil_gzip_blob *g)
{
	if (g == NULL)
		return;
	if (g->z_init)
		deflateEnd(&g->z);
	ocil_blob_writer_free(g->w);
	ocil_hasher_free(g->raw);
	free(g->out);
	free(g);
}
