/* Layer entry indexes: what the layer writer leaves is exactly what reading
 * the layer back gives (so check and rootfs see the same entries either
 * way); a layer read in full leaves an index, used the next time; a damaged
 * index is dropped and the layer read again. Also the tree fingerprint the
 * conda layer cache is keyed by. */
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include "base/blobstore.h"
#include "base/digest.h"
#include "base/util.h"
#include "base/walk.h"
#include "oci/layer_index.h"
#include "oci/layer_writer.h"
#include "oci/rootfs.h"
#include "support_tar.h"
#include "test.h"

/* "type mode size path -> link" per entry, one a line. */
static char *listing(const char *blob, const char *index_dir, bool *indexed, ocil_error **err)
{
	cleanup_layer_entries ocil_layer_entries *it = NULL;
	if (ocil_layer_entries_open(blob, "layer", index_dir, &it, err) < 0)
		return NULL;
	*indexed = ocil_layer_entries_indexed(it);
	char *out = ocil_xstrdup("");
	for (uint64_t n = 0;; n++) {
		const ocil_tar_entry *e;
		int r = ocil_layer_entries_next(it, &e, err);
		if (r < 0) {
			free(out);
			return NULL;
		}
		if (r == 0)
			return out;
		char *line = ocil_xasprintf(
		    "%s%d %o %llu %s -> %s @%llu%s\n", out, (int)e->type, (unsigned)e->mode,
		    (unsigned long long)e->size, e->path, e->link ? e->link : "(none)",
		    (unsigned long long)e->index, e->index == n ? "" : " WRONG INDEX");
		free(out);
		out = line;
	}
}

static int write_sample(ocil_blobstore *bs, const char *index_dir, bool zstd,
			ocil_layer_result *res, ocil_error **err)
{
	ocil_layer_opts lo = {.mtime = 1234, .index_dir = index_dir, .zstd = zstd};
	cleanup_layer_writer ocil_layer_writer *w = NULL;
	if (ocil_layer_writer_new(bs, &lo, &w, err) < 0)
		return -1;
	/* over ustar's 100 and 155 bytes: pax records */
	char longname[400] = "/opt/long/";
	memset(longname + 10, 'x', 300);
	longname[160] = '/';
	int r = ocil_layer_writer_add_parents(w, "/opt/conda-env/bin/python", err) ||
		ocil_layer_writer_add_dir(w, "/opt/conda-env/bin", 0700, err) ||
		ocil_layer_writer_add_file(w, "/opt/conda-env/bin/python", 0755, "#!x\n", 4, err) ||
		ocil_layer_writer_add_symlink(w, "/opt/conda-env/bin/python3", "python", err) ||
		ocil_layer_writer_add_file(w, "/opt/conda-env/bin/caf\xc3\xa9", 0644, "", 0, err) ||
		ocil_layer_writer_add_file(w, "/opt/conda-env/bin/raw\xff", 0600, "ab", 2, err) ||
		ocil_layer_writer_add_parents(w, longname, err) ||
		ocil_layer_writer_add_file(w, longname, 0644, "long", 4, err) ||
		ocil_layer_writer_add_symlink(w, "/opt/long/ln", longname, err);
	if (r != 0)
		return -1;
	return ocil_layer_writer_finish(w, res, err);
}

static void writer_index_equals_reading(void)
{
	ocil_error *err = NULL;
	cleanup_free char *store = tpath("store");
	cleanup_free char *idx = tpath("index");
	cleanup_blobstore ocil_blobstore *bs = NULL;
	CHECK_OK(ocil_blobstore_open(store, &bs, &err), &err);
	for (int z = 0; z < 2; z++) {
		ocil_layer_result res;
		CHECK_OK(write_sample(bs, idx, z == 1, &res, &err), &err);
		cleanup_free char *blob = ocil_blobstore_path(bs, res.digest);
		bool indexed = false;
		cleanup_free char *from_tar = listing(blob, NULL, &indexed, &err);
		if (from_tar == NULL)
			fprintf(stderr, "reading back: %s\n", err->msg);
		CHECK(from_tar != NULL && !indexed);
		cleanup_free char *from_index = listing(blob, idx, &indexed, &err);
		CHECK(from_index != NULL && indexed);
		if (strcmp(from_tar, from_index) != 0)
			fprintf(stderr, "tar:\n%s\nindex:\n%s\n", from_tar, from_index);
		CHECK_STREQ(from_index, from_tar);
		CHECK(strstr(from_tar, "WRONG") == NULL);
		CHECK(res.entries == 11);
	}
}

/* No index yet: reading the layer fully leaves one; a damaged one is
 * removed and the layer read again. */
static void read_leaves_index(void)
{
	ocil_error *err = NULL;
	cleanup_free char *store = tpath("store");
	cleanup_free char *idx = tpath("index");
	cleanup_blobstore ocil_blobstore *bs = NULL;
	CHECK_OK(ocil_blobstore_open(store, &bs, &err), &err);
	ocil_layer_result res;
	CHECK_OK(write_sample(bs, NULL, false, &res, &err), &err);
	cleanup_free char *blob = ocil_blobstore_path(bs, res.digest);
	cleanup_free char *ifile = ocil_xasprintf("%s/%s", idx, ocil_digest_hex(res.digest));
	bool indexed = true;
	cleanup_free char *a = listing(blob, idx, &indexed, &err);
	CHECK(a != NULL && !indexed);
	CHECK(access(ifile, F_OK) == 0);
	cleanup_free char *b = listing(blob, idx, &indexed, &err);
	CHECK(b != NULL && indexed);
	CHECK_STREQ(a, b);

	/* flip a byte in a path */
	int fd = open(ifile, O_RDWR);
	CHECK(fd >= 0);
	CHECK(pwrite(fd, "Q", 1, 30) == 1);
	close(fd);
	cleanup_free char *c = listing(blob, idx, &indexed, &err);
	CHECK(c != NULL && !indexed);
	CHECK_STREQ(a, c);
	cleanup_free char *d = listing(blob, idx, &indexed, &err);
	CHECK(d != NULL && indexed); /* written again */
	CHECK_STREQ(a, d);

	/* the same entries checksummed without the writer's version (as
	 * another version would): made again, not trusted */
	{
		cleanup_free char *raw = NULL;
		size_t len = 0;
		CHECK_OK(ocil_read_file(ifile, 1 << 20, &raw, &len, &err), &err);
		CHECK(len > OCIL_DIGEST_HEX_LEN);
		char sum[OCIL_DIGEST_STR_SIZE];
		ocil_digest_buf(raw, len - OCIL_DIGEST_HEX_LEN, sum);
		memcpy(raw + len - OCIL_DIGEST_HEX_LEN, ocil_digest_hex(sum), OCIL_DIGEST_HEX_LEN);
		CHECK_OK(ocil_write_file_atomic(ifile, raw, len, &err), &err);
		cleanup_free char *v = listing(blob, idx, &indexed, &err);
		CHECK(v != NULL && !indexed);
		CHECK_STREQ(a, v);
	}

	/* a path that does not name a digest: never indexed */
	cleanup_free char *copy = tpath("layer.tar.gz");
	cleanup_free char *cmd = ocil_xasprintf("cp '%s' '%s'", blob, copy);
	CHECK(system(cmd) == 0);
	cleanup_free char *e = listing(copy, idx, &indexed, &err);
	CHECK(e != NULL && !indexed);
	CHECK_STREQ(a, e);

	/* rootfs over the index sees what it sees over the tar */
	const char *paths[] = {blob};
	cleanup_rootfs ocil_rootfs *fs1 = NULL;
	cleanup_rootfs ocil_rootfs *fs2 = NULL;
	CHECK_OK(ocil_rootfs_open(paths, 1, NULL, &fs1, &err), &err);
	CHECK_OK(ocil_rootfs_open_indexed(paths, 1, idx, NULL, &fs2, &err), &err);
	cleanup_rootfs_node ocil_rootfs_node n1 = {0};
	cleanup_rootfs_node ocil_rootfs_node n2 = {0};
	CHECK(ocil_rootfs_lookup(fs1, "/opt/conda-env/bin/python3", true, &n1, &err) == 1);
	CHECK(ocil_rootfs_lookup(fs2, "/opt/conda-env/bin/python3", true, &n2, &err) == 1);
	CHECK(n1.size == 4 && n2.size == 4 && n1.entry_index == n2.entry_index);
	CHECK_STREQ(n1.path, n2.path);
}

/* An index whose checksum is right but whose entries break what tarstream
 * guarantees (crafted, or from a buggy writer) is refused and removed, not
 * handed to rootfs and check. */
static void crafted_index_refused(void)
{
	static const struct {
		ocil_tar_type type;
		const char *path, *link;
	} bad[] = {
	    {OCIL_TAR_FILE, "", NULL},		{OCIL_TAR_FILE, "relative", NULL},
	    {OCIL_TAR_FILE, "/a/../etc", NULL}, {OCIL_TAR_FILE, "/a//b", NULL},
	    {OCIL_TAR_FILE, "/a/", NULL},	{OCIL_TAR_FILE, "/", NULL},
	    {OCIL_TAR_HARDLINK, "/x", "y"},	{OCIL_TAR_HARDLINK, "/x", NULL},
	    {OCIL_TAR_SYMLINK, "/x", ""},	{OCIL_TAR_DIR, "/d", "/x"},
	};
	const char *digest =
	    "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
	cleanup_free char *idx = tpath("crafted-index");
	cleanup_free char *blob = tpath("blobs/sha256/0123456789abcdef0123456789abcdef0123456789"
					"abcdef0123456789abcdef");
	cleanup_free char *ifile = ocil_xasprintf("%s/%s", idx, ocil_digest_hex(digest));
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ocil_error *err = NULL;
		ocil_layer_index_writer *w = NULL;
		CHECK_OK(ocil_layer_index_writer_begin(idx, &w, &err), &err);
		ocil_tar_entry root = {.path = "/", .type = OCIL_TAR_DIR, .mode = 040755};
		ocil_tar_entry x = {.path = bad[i].path,
				    .type = bad[i].type,
				    .mode = 0100644,
				    .link = bad[i].link,
				    .index = 1};
		ocil_layer_index_writer_add(w, &root);
		ocil_layer_index_writer_add(w, &x);
		CHECK_OK(ocil_layer_index_writer_commit(w, digest, &err), &err);
		ocil_layer_index_writer_free(w);
		cleanup_layer_entries ocil_layer_entries *it = NULL;
		CHECK_OK(ocil_layer_entries_open(blob, "layer", idx, &it, &err), &err);
		CHECK(ocil_layer_entries_indexed(it));
		const ocil_tar_entry *e;
		CHECK(ocil_layer_entries_next(it, &e, &err) == 1 && strcmp(e->path, "/") == 0);
		int r = ocil_layer_entries_next(it, &e, &err);
		if (r != -1)
			fprintf(stderr, "case %zu (%s) accepted\n", i, bad[i].path);
		CHECK(r == -1 && err != NULL && strstr(err->msg, "damaged layer index") != NULL);
		ocil_error_free(err);
		CHECK(access(ifile, F_OK) != 0);
	}
}

static void fp(const char *root, char out[OCIL_DIGEST_STR_SIZE])
{
	ocil_error *err = NULL;
	ocil_hasher *h = ocil_hasher_new();
	if (ocil_walk_fingerprint(root, h, NULL, &err) < 0) {
		fprintf(stderr, "fingerprint: %s\n", err->msg);
		ocil_error_free(err);
		strcpy(out, "error");
	} else {
		ocil_hasher_final(h, out);
	}
	ocil_hasher_free(h);
}

/* Rewrite FILE in place with CONTENT (of its size), put its times back to
 * TS, and wait until that moved its ctime: only the ctime can tell. On a
 * filesystem with 1-second timestamps that takes up to a second, so poll
 * rather than sleep a fixed time. */
static void rewrite_same_size_and_mtime(const char *file, const char *content,
					const struct timespec ts[2])
{
	struct stat before, after;
	CHECK(stat(file, &before) == 0);
	for (int i = 0; i < 500; i++) {
		int fd = open(file, O_WRONLY);
		CHECK(fd >= 0 &&
		      pwrite(fd, content, strlen(content), 0) == (ssize_t)strlen(content));
		close(fd);
		CHECK(utimensat(AT_FDCWD, file, ts, 0) == 0);
		CHECK(stat(file, &after) == 0);
		if (after.st_ctim.tv_sec != before.st_ctim.tv_sec ||
		    after.st_ctim.tv_nsec != before.st_ctim.tv_nsec)
			return;
		usleep(10000);
	}
	CHECK(!"the ctime never moved in 5 s");
}

/* Deep enough to be split over threads (depth 4 and below). */
static void fingerprint(void)
{
	cleanup_free char *root = tpath("tree");
	CHECK(putn("tree/a/b/c/d/e/f.py", "print(1)\n", 9, 0644) == 0);
	CHECK(putn("tree/a/b/c/d2/g.py", "x", 1, 0644) == 0);
	CHECK(putn("tree/a/top.txt", "top", 3, 0644) == 0);
	CHECK(sym("b/c", "tree/a/ln") == 0);
	char d0[OCIL_DIGEST_STR_SIZE], d1[OCIL_DIGEST_STR_SIZE];
	fp(root, d0);
	fp(root, d1);
	CHECK_STREQ(d0, d1);

	/* same size and mtime, other content: ctime moves */
	cleanup_free char *f = tpath("tree/a/b/c/d/e/f.py");
	struct stat st;
	CHECK(stat(f, &st) == 0);
	CHECK(putn("tree/a/b/c/d/e/f.py", "print(2)\n", 9, 0644) == 0);
	/* putn renames a new file in: inode changes too; rewrite in place */
	int fd = open(f, O_WRONLY);
	CHECK(fd >= 0 && pwrite(fd, "print(3)\n", 9, 0) == 9);
	close(fd);
	struct timespec ts[2] = {st.st_atim, st.st_mtim};
	CHECK(utimensat(AT_FDCWD, f, ts, 0) == 0);
	char d2[OCIL_DIGEST_STR_SIZE];
	fp(root, d2);
	CHECK(strcmp(d2, d0) != 0);
	char d3[OCIL_DIGEST_STR_SIZE];
	rewrite_same_size_and_mtime(f, "print(4)\n", ts);
	fp(root, d3);
	CHECK(strcmp(d3, d2) != 0);

	/* mode, symlink target, a new empty directory deep down */
	CHECK(chmod(f, 0755) == 0);
	char d4[OCIL_DIGEST_STR_SIZE];
	fp(root, d4);
	CHECK(strcmp(d4, d3) != 0);
	cleanup_free char *ln = tpath("tree/a/ln");
	CHECK(unlink(ln) == 0);
	CHECK(sym("b/d", "tree/a/ln") == 0);
	char d5[OCIL_DIGEST_STR_SIZE];
	fp(root, d5);
	CHECK(strcmp(d5, d4) != 0);
	cleanup_free char *nd = tpath("tree/a/b/c/d/new");
	CHECK(mkdir(nd, 0755) == 0);
	char d6[OCIL_DIGEST_STR_SIZE];
	fp(root, d6);
	CHECK(strcmp(d6, d5) != 0);
	char d7[OCIL_DIGEST_STR_SIZE];
	fp(root, d7);
	CHECK_STREQ(d7, d6);
}

TEST_MAIN(T(writer_index_equals_reading), T(read_leaves_index), T(crafted_index_refused),
	  T(fingerprint))
