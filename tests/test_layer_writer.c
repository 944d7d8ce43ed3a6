#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <locale.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#include "base/blobstore.h"
#include "base/digest.h"
#include "base/util.h"
#include "oci/layer_writer.h"
#include "support_tar.h"
#include "test.h"

/* Whole-file gunzip with zlib, independent of libarchive. */
static char *gunzip_file(const char *file, size_t *outlen)
{
	char *in = NULL;
	size_t inlen = 0;
	ocil_error *err = NULL;
	if (ocil_read_file(file, (size_t)1 << 30, &in, &inlen, &err) < 0) {
		ocil_error_free(err);
		return NULL;
	}
	z_stream z;
	memset(&z, 0, sizeof(z));
	inflateInit2(&z, 15 + 16);
	size_t cap = 1 << 16, n = 0;
	char *out = ocil_xmalloc(cap);
	z.next_in = (unsigned char *)in;
	z.avail_in = (uInt)inlen;
	int r;
	do {
		if (n == cap)
			out = ocil_xrealloc(out, cap *= 2);
		z.next_out = (unsigned char *)out + n;
		z.avail_out = (uInt)(cap - n);
		r = inflate(&z, Z_NO_FLUSH);
		n = cap - z.avail_out;
	} while (r == Z_OK);
	bool trailing = z.avail_in != 0;
	inflateEnd(&z);
	free(in);
	if (r != Z_STREAM_END || trailing) {
		free(out);
		return NULL;
	}
	*outlen = n;
	return out;
}

static void file_digest(const char *file, char out[OCIL_DIGEST_STR_SIZE])
{
	char *buf = NULL;
	size_t len = 0;
	ocil_error *err = NULL;
	if (ocil_read_file(file, (size_t)1 << 30, &buf, &len, &err) < 0) {
		ocil_error_free(err);
		strcpy(out, "unreadable");
		return;
	}
	ocil_digest_buf(buf, len, out);
	free(buf);
}

/* Number of leftover temporary files in the store. */
static int tmp_files(const char *root)
{
	char *dir = ocil_xasprintf("%s/blobs/sha256", root);
	DIR *d = opendir(dir);
	free(dir);
	int n = 0;
	struct dirent *de;
	while (d && (de = readdir(d)) != NULL)
		if (strncmp(de->d_name, ".tmp", 4) == 0)
			n++;
	if (d)
		closedir(d);
	return n;
}

static char long_dir1[200], long_dir2[300], long_file[400], long_target[300];

/* A layer with every kind of entry and awkward names. */
static int build_sample(ocil_blobstore *bs, int64_t mtime, ocil_layer_result *res, ocil_error **err)
{
	/* component lengths stay under 255 (NAME_MAX) */
	memset(long_dir1, 0, sizeof(long_dir1));
	memset(long_dir2, 0, sizeof(long_dir2));
	strcpy(long_dir1, "/opt/");
	memset(long_dir1 + 5, 'a', 120);
	strcpy(long_dir2, long_dir1);
	strcat(long_dir2, "/");
	memset(long_dir2 + strlen(long_dir2), 'b', 150);
	snprintf(long_file, sizeof(long_file), "%s/file-%s", long_dir2, "x");
	memset(long_target, 0, sizeof(long_target));
	memset(long_target, 'z', 250);

	ocil_layer_opts o = {.mtime = mtime};
	ocil_layer_writer *w = NULL;
	if (ocil_layer_writer_new(bs, &o, &w, err) < 0)
		return -1;
	int r = -1;
	if (ocil_layer_writer_add_parents(w, "/opt/x/hello", err) < 0 ||
	    ocil_layer_writer_add_dir(w, "/opt/x", 0755, err) < 0 ||
	    ocil_layer_writer_begin_file(w, "/opt/x/hello", 0644, 11, err) < 0 ||
	    ocil_layer_writer_write(w, "hello", 5, err) < 0 ||
	    ocil_layer_writer_write(w, " world", 6, err) < 0 ||
	    ocil_layer_writer_end_file(w, err) < 0 ||
	    ocil_layer_writer_add_symlink(w, "/opt/x/link", "hello", err) < 0 ||
	    ocil_layer_writer_add_file(w, "/opt/x/run", 0755, "#!/bin/sh\n", 10, err) < 0 ||
	    ocil_layer_writer_add_file(w, "/opt/x/empty", 0644, "", 0, err) < 0 ||
	    ocil_layer_writer_add_file(w, "/opt/x/caf\xc3\xa9", 0644, "u", 1, err) < 0 ||
	    ocil_layer_writer_add_dir(w, long_dir1, 0755, err) < 0 ||
	    ocil_layer_writer_add_dir(w, long_dir2, 0755, err) < 0 ||
	    ocil_layer_writer_add_file(w, long_file, 0644, "long", 4, err) < 0 ||
	    ocil_layer_writer_add_symlink(w, "/opt/x/longlink", long_target, err) < 0)
		goto out;
	r = ocil_layer_writer_finish(w, res, err);
out:
	ocil_layer_writer_free(w);
	return r;
}

static void roundtrip(void)
{
	ocil_error *err = NULL;
	ocil_blobstore *bs = NULL;
	CHECK_OK(ocil_blobstore_open(ocil_test_tmpdir(), &bs, &err), &err);
	ocil_layer_result res;
	int r = build_sample(bs, 1234567, &res, &err);
	char *blob = ocil_blobstore_path(bs, res.digest);
	ocil_blobstore_free(bs);
	CHECK_OK(r, &err);
	CHECK(res.entries == 11);
	CHECK(tmp_files(ocil_test_tmpdir()) == 0);

	/* digest is the blob's sha256, diff_id the tar's */
	char d[OCIL_DIGEST_STR_SIZE];
	file_digest(blob, d);
	CHECK_STREQ(d, res.digest);
	struct stat st;
	CHECK(stat(blob, &st) == 0 && (uint64_t)st.st_size == res.size);
	size_t tlen = 0;
	char *tar = gunzip_file(blob, &tlen);
	CHECK(tar != NULL);
	ocil_digest_buf(tar, tlen, d);
	free(tar);
	CHECK_STREQ(d, res.diff_id);
	CHECK(tlen == res.uncompressed_size);
	CHECK(tlen % 512 == 0);

	/* fixed gzip header: no mtime, no name, OS=Unix */
	FILE *f = fopen(blob, "rb");
	unsigned char h[10];
	CHECK(f && fread(h, 1, 10, f) == 10);
	fclose(f);
	static const unsigned char want[] = {0x1f, 0x8b, 8, 0, 0, 0, 0, 0};
	CHECK(memcmp(h, want, 8) == 0 && h[9] == 3);

	rlayer l = {.n = 0};
	CHECK(read_layer(blob, &l) == 0);
	free(blob);
	static const char *names[] = {"opt/",	   "opt/x/",	  "opt/x/hello",      "opt/x/link",
				      "opt/x/run", "opt/x/empty", "opt/x/caf\xc3\xa9"};
	int ok = l.n == 11;
	for (size_t i = 0; ok && i < 7; i++)
		ok = strcmp(l.e[i].name, names[i]) == 0;
	for (size_t i = 0; ok && i < l.n; i++)
		ok = l.e[i].uid == 0 && l.e[i].gid == 0 && l.e[i].mtime == 1234567;
	rentry e[11];
	memcpy(e, l.e, sizeof(e));
	int data_ok = ok && e[0].type == AE_IFDIR && e[0].perm == 0755 && e[2].type == AE_IFREG &&
		      e[2].perm == 0644 && strcmp(e[2].data, "hello world") == 0 &&
		      e[3].type == AE_IFLNK && strcmp(e[3].link, "hello") == 0 &&
		      e[4].perm == 0755 && strcmp(e[4].data, "#!/bin/sh\n") == 0 && e[5].size == 0;
	/* long names come back whole */
	char *d1 = ocil_xasprintf("%s/", long_dir1 + 1), *d2 = ocil_xasprintf("%s/", long_dir2 + 1);
	int long_ok = ok && strcmp(e[7].name, d1) == 0 && strcmp(e[8].name, d2) == 0 &&
		      strcmp(e[9].name, long_file + 1) == 0 && strcmp(e[9].data, "long") == 0 &&
		      strcmp(e[10].link, long_target) == 0;
	free(d1);
	free(d2);
	rlayer_clear(&l);
	CHECK(ok);
	CHECK(data_ok);
	CHECK(long_ok);
	CHECK(strlen(long_file) > 255);
}

/* Every raw header (including pax 'x' headers) has uid/gid 0, no user or
 * group names, the fixed mtime, and pax records only for names. */
static void raw_headers(void)
{
	ocil_error *err = NULL;
	ocil_blobstore *bs = NULL;
	CHECK_OK(ocil_blobstore_open(ocil_test_tmpdir(), &bs, &err), &err);
	ocil_layer_result res;
	int r = build_sample(bs, 0777, &res, &err);
	char *blob = ocil_blobstore_path(bs, res.digest);
	ocil_blobstore_free(bs);
	CHECK_OK(r, &err);
	size_t tlen = 0;
	char *tar = gunzip_file(blob, &tlen);
	free(blob);
	CHECK(tar != NULL);
	int bad = 0, xheaders = 0, headers = 0;
	size_t off = 0;
	while (off + 512 <= tlen && tar[off] != '\0') {
		const char *hd = tar + off;
		headers++;
		if (strtol(hd + 108, NULL, 8) != 0 || strtol(hd + 116, NULL, 8) != 0 ||
		    hd[108] != '0' || hd[116] != '0')
			bad++, fprintf(stderr, "uid/gid in %.100s\n", hd);
		if (strtoll(hd + 136, NULL, 8) != 0777)
			bad++, fprintf(stderr, "mtime in %.100s\n", hd);
		if (hd[265] != '\0' || hd[297] != '\0')
			bad++, fprintf(stderr, "uname/gname in %.100s\n", hd);
		if (memcmp(hd + 257, "ustar", 5) != 0)
			bad++;
		size_t sz = (size_t)strtoull(hd + 124, NULL, 8);
		if (hd[156] == 'x') {
			xheaders++;
			if (strstr(hd, "PaxHeader/") == NULL)
				bad++, fprintf(stderr, "pax name %.100s\n", hd);
			/* records: "<len> key=value\n" */
			const char *p = hd + 512, *end = p + sz;
			while (p < end) {
				char *sp = memchr(p, ' ', (size_t)(end - p));
				long rl = strtol(p, NULL, 10);
				if (sp == NULL || rl <= 0)
					break;
				if (strncmp(sp + 1, "path=", 5) != 0 &&
				    strncmp(sp + 1, "linkpath=", 9) != 0 &&
				    strncmp(sp + 1, "hdrcharset=", 11) != 0)
					bad++, fprintf(stderr, "pax record %.40s\n", sp + 1);
				p += rl;
			}
		}
		off += 512 + (sz + 511) / 512 * 512;
	}
	free(tar);
	CHECK(bad == 0);
	CHECK(headers == 11 + xheaders);
	CHECK(xheaders >= 3); /* long dir, long file, long link target, café */
}

/* Same inputs, same digest: in this process, and in a child with another
 * pid and a UTF-8 locale. */
static void deterministic(void)
{
	ocil_error *err = NULL;
	char *root1 = ocil_xasprintf("%s/a", ocil_test_tmpdir());
	char *root2 = ocil_xasprintf("%s/b", ocil_test_tmpdir());
	char *root3 = ocil_xasprintf("%s/c", ocil_test_tmpdir());
	ocil_blobstore *b1 = NULL, *b2 = NULL;
	ocil_layer_result r1, r2;
	int ok = ocil_blobstore_open(root1, &b1, &err) == 0 &&
		 ocil_blobstore_open(root2, &b2, &err) == 0 &&
		 build_sample(b1, 42, &r1, &err) == 0 && build_sample(b2, 42, &r2, &err) == 0;
	ocil_blobstore_free(b1);
	ocil_blobstore_free(b2);
	free(root1);
	free(root2);
	CHECK_OK(ok ? 0 : -1, &err);
	CHECK_STREQ(r1.digest, r2.digest);
	CHECK_STREQ(r1.diff_id, r2.diff_id);

	int pfd[2];
	CHECK(pipe(pfd) == 0);
	fflush(stdout); /* or the child repeats what is buffered */
	pid_t pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		close(pfd[0]);
		setlocale(LC_ALL, "C.UTF-8");
		ocil_blobstore *b3 = NULL;
		ocil_layer_result r3;
		ocil_error *e3 = NULL;
		int bad = ocil_blobstore_open(root3, &b3, &e3) < 0 ||
			  build_sample(b3, 42, &r3, &e3) < 0 ||
			  write(pfd[1], r3.digest, OCIL_DIGEST_STR_SIZE) != OCIL_DIGEST_STR_SIZE;
		/* free everything: valgrind checks the child's leaks too */
		ocil_blobstore_free(b3);
		ocil_error_free(e3);
		free(root3);
		close(pfd[1]);
		_exit(bad);
	}
	close(pfd[1]);
	char d3[OCIL_DIGEST_STR_SIZE] = "";
	ssize_t n = read(pfd[0], d3, sizeof(d3));
	close(pfd[0]);
	int status = 0;
	waitpid(pid, &status, 0);
	free(root3);
	CHECK(n == OCIL_DIGEST_STR_SIZE && WIFEXITED(status) && WEXITSTATUS(status) == 0);
	CHECK_STREQ(d3, r1.digest);

	/* a different mtime is a different layer */
	ocil_blobstore *b4 = NULL;
	ocil_layer_result r4;
	CHECK_OK(ocil_blobstore_open(ocil_test_tmpdir(), &b4, &err), &err);
	int r = build_sample(b4, 43, &r4, &err);
	ocil_blobstore_free(b4);
	CHECK_OK(r, &err);
	CHECK(strcmp(r4.digest, r1.digest) != 0);
}

static void size_mismatch(void)
{
	ocil_error *err = NULL;
	cleanup_blobstore ocil_blobstore *bs = NULL;
	CHECK_OK(ocil_blobstore_open(ocil_test_tmpdir(), &bs, &err), &err);
	{
		cleanup_layer_writer ocil_layer_writer *w = NULL;
		CHECK_OK(ocil_layer_writer_new(bs, NULL, &w, &err), &err);
		CHECK_OK(ocil_layer_writer_begin_file(w, "/f", 0644, 10, &err), &err);
		CHECK_OK(ocil_layer_writer_write(w, "12345", 5, &err), &err);
		CHECK_FAIL(ocil_layer_writer_end_file(w, &err), &err, OCIL_E_IO,
			   "/f: declared 10 bytes but 5 were written");
		/* the writer is dead now */
		CHECK_FAIL(ocil_layer_writer_finish(w, NULL, &err), &err, OCIL_E_IO,
			   "earlier error");
		CHECK_FAIL(ocil_layer_writer_add_dir(w, "/d", 0755, &err), &err, OCIL_E_IO,
			   "earlier error");
	}
	CHECK(tmp_files(ocil_test_tmpdir()) == 0);
	{
		cleanup_layer_writer ocil_layer_writer *w = NULL;
		CHECK_OK(ocil_layer_writer_new(bs, NULL, &w, &err), &err);
		CHECK_OK(ocil_layer_writer_begin_file(w, "/f", 0644, 3, &err), &err);
		CHECK_FAIL(ocil_layer_writer_write(w, "1234", 4, &err), &err, OCIL_E_IO,
			   "more data than the declared 3 bytes");
	}
	CHECK(tmp_files(ocil_test_tmpdir()) == 0);
	{
		/* forgetting end_file */
		cleanup_layer_writer ocil_layer_writer *w = NULL;
		CHECK_OK(ocil_layer_writer_new(bs, NULL, &w, &err), &err);
		CHECK_OK(ocil_layer_writer_begin_file(w, "/f", 0644, 1, &err), &err);
		CHECK_OK(ocil_layer_writer_write(w, "1", 1, &err), &err);
		CHECK_FAIL(ocil_layer_writer_add_dir(w, "/d", 0755, &err), &err, OCIL_E_IO,
			   "file not ended");
	}
}

static void bad_paths(void)
{
	ocil_error *err = NULL;
	cleanup_blobstore ocil_blobstore *bs = NULL;
	cleanup_layer_writer ocil_layer_writer *w = NULL;
	CHECK_OK(ocil_blobstore_open(ocil_test_tmpdir(), &bs, &err), &err);
	CHECK_OK(ocil_layer_writer_new(bs, NULL, &w, &err), &err);
	static const char *bad[] = {"",	 "rel/x",  "/a/../b", "/a//b", "/a/",
				    "/", "/a/./b", "/..",     "/a/.."};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int r = ocil_layer_writer_add_dir(w, bad[i], 0755, &err);
		if (r == 0)
			fprintf(stderr, "accepted \"%s\"\n", bad[i]);
		CHECK_FAIL(r, &err, OCIL_E_INPUT, "layer writer: ");
		CHECK_FAIL(ocil_layer_writer_add_parents(w, bad[i], &err), &err, OCIL_E_INPUT,
			   "layer writer: ");
	}
	cleanup_free char *huge = ocil_xmalloc(5000);
	memset(huge, 'a', 4999);
	huge[0] = '/';
	huge[4999] = '\0';
	CHECK_FAIL(ocil_layer_writer_add_file(w, huge, 0644, "", 0, &err), &err, OCIL_E_INPUT,
		   "longer than");
	/* children need their parent first */
	CHECK_FAIL(ocil_layer_writer_add_file(w, "/nodir/f", 0644, "", 0, &err), &err, OCIL_E_IO,
		   "parent directory /nodir was not added");
	CHECK_FAIL(ocil_layer_writer_add_symlink(w, "/l", "", &err), &err, OCIL_E_INPUT,
		   "empty symlink target");
	/* bad paths do not poison the writer */
	ocil_layer_result res;
	CHECK_OK(ocil_layer_writer_add_dir(w, "/ok", 0755, &err), &err);
	CHECK_OK(ocil_layer_writer_add_dir(w, "/ok", 0755, &err), &err); /* no duplicate */
	CHECK_OK(ocil_layer_writer_add_parents(w, "/ok/x", &err), &err);
	/* nothing goes through a symlink: not one over a directory (an
	 * extractor would then write /ok's later children to /etc) */
	CHECK_FAIL(ocil_layer_writer_add_symlink(w, "/ok", "/etc", &err), &err, OCIL_E_INPUT,
		   "layer writer: /ok: a symlink where a directory was added");
	CHECK_FAIL(ocil_layer_writer_add_file(w, "/ok", 0644, "", 0, &err), &err, OCIL_E_INPUT,
		   "layer writer: /ok: a file where a directory was added");
	CHECK_OK(ocil_layer_writer_add_symlink(w, "/ok/l", "/etc", &err), &err);
	CHECK_FAIL(ocil_layer_writer_add_parents(w, "/ok/l/passwd", &err), &err, OCIL_E_INPUT,
		   "layer writer: /ok/l: a directory where a symlink was added");
	CHECK_OK(ocil_layer_writer_finish(w, &res, &err), &err);
	CHECK(res.entries == 2);
	CHECK_FAIL(ocil_layer_writer_add_dir(w, "/d", 0755, &err), &err, OCIL_E_IO,
		   "already finished");
}

static void unfinished_free(void)
{
	ocil_error *err = NULL;
	cleanup_blobstore ocil_blobstore *bs = NULL;
	CHECK_OK(ocil_blobstore_open(ocil_test_tmpdir(), &bs, &err), &err);
	{
		cleanup_layer_writer ocil_layer_writer *w = NULL;
		CHECK_OK(ocil_layer_writer_new(bs, NULL, &w, &err), &err);
		CHECK_OK(ocil_layer_writer_add_parents(w, "/a/b/c", &err), &err);
		CHECK_OK(ocil_layer_writer_begin_file(w, "/a/b/c", 0644, 100, &err), &err);
		CHECK_OK(ocil_layer_writer_write(w, "x", 1, &err), &err);
		CHECK(tmp_files(ocil_test_tmpdir()) == 1);
	}
	CHECK(tmp_files(ocil_test_tmpdir()) == 0);
}

/* Several MiB of incompressible data in odd-sized pieces exercises the
 * deflate output loop. */
static void big_file(void)
{
	ocil_error *err = NULL;
	ocil_blobstore *bs = NULL;
	ocil_layer_writer *w = NULL;
	CHECK_OK(ocil_blobstore_open(ocil_test_tmpdir(), &bs, &err), &err);
	int r = ocil_layer_writer_new(bs, &(ocil_layer_opts){.compression_level = 1}, &w, &err);
	char *blob = NULL;
	const size_t size = 3 * 1000 * 1000 + 7;
	char *data = ocil_xmalloc(size);
	uint32_t x = 12345;
	for (size_t i = 0; i < size; i++) {
		x = x * 1103515245u + 12345u;
		data[i] = (char)(x >> 24);
	}
	ocil_layer_result res;
	if (r == 0)
		r = ocil_layer_writer_begin_file(w, "/big", 0600, size, &err);
	for (size_t off = 0, step = 1; r == 0 && off < size; off += step, step = step * 3 + 1) {
		if (step > size - off)
			step = size - off;
		r = ocil_layer_writer_write(w, data + off, step, &err);
	}
	if (r == 0)
		r = ocil_layer_writer_end_file(w, &err) || ocil_layer_writer_finish(w, &res, &err);
	if (r == 0)
		blob = ocil_blobstore_path(bs, res.digest);
	ocil_layer_writer_free(w);
	ocil_blobstore_free(bs);
	if (r != 0)
		free(data);
	CHECK_OK(r, &err);
	rlayer l = {.n = 0};
	int ok = read_layer(blob, &l) == 0 && l.n == 1 && l.e[0].size == size &&
		 memcmp(l.e[0].data, data, size) == 0 && l.e[0].perm == 0600;
	rlayer_clear(&l);
	free(blob);
	free(data);
	CHECK(ok);
	CHECK(res.size > size); /* random data does not compress */
}

static void file_modes(void)
{
	CHECK(ocil_layer_file_mode(S_IFREG | 0600) == 0644);
	CHECK(ocil_layer_file_mode(S_IFREG | 04700) == 0755);
	CHECK(ocil_layer_file_mode(S_IFREG | 0610) == 0755);
	CHECK(ocil_layer_file_mode(S_IFDIR | 0700) == 0755);
	CHECK(ocil_layer_file_mode(S_IFDIR | 01777) == 0755);
}

static void bad_options(void)
{
	ocil_error *err = NULL;
	ocil_blobstore *bs = NULL;
	ocil_layer_writer *w = NULL;
	CHECK_OK(ocil_blobstore_open(ocil_test_tmpdir(), &bs, &err), &err);
	int r1 = ocil_layer_writer_new(bs, &(ocil_layer_opts){.compression_level = 10}, &w, &err);
	ocil_error_free(err);
	err = NULL;
	int r2 = ocil_layer_writer_new(bs, &(ocil_layer_opts){.mtime = -1}, &w, &err);
	ocil_blobstore_free(bs);
	CHECK(r1 != 0);
	CHECK_FAIL(r2, &err, OCIL_E_USAGE, "mtime -1");
}

TEST_MAIN(T(roundtrip), T(raw_headers), T(deterministic), T(size_mismatch), T(bad_paths),
	  T(unfinished_free), T(big_file), T(file_modes), T(bad_options))
