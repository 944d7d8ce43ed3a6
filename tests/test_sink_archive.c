/* docker-archive output: a small image (gzip, plain and multi-member gzip
 * layers) written into an archive, read back with libarchive (not our
 * writer's code) and with our own docker-archive source. */
#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

#include "base/blobstore.h"
#include "base/digest.h"
#include "base/json.h"
#include "base/util.h"
#include "oci/layer_writer.h"
#include "oci/ref.h"
#include "support_tar.h"
#include "test.h"
#include "transport/sink_archive.h"
#include "transport/source.h"

#define MAX_LAYERS 4

typedef struct {
	ocil_blobstore *bs;
	ocil_descriptor config;
	ocil_descriptor layers[MAX_LAYERS];
	char diff_ids[MAX_LAYERS][OCIL_DIGEST_STR_SIZE];
	const char *ids[MAX_LAYERS];
	size_t n;
} image;

static void image_clear(image *im)
{
	ocil_descriptor_clear(&im->config);
	for (size_t i = 0; i < im->n; i++)
		ocil_descriptor_clear(&im->layers[i]);
	ocil_blobstore_free(im->bs);
	memset(im, 0, sizeof(*im));
}
#define cleanup_image __attribute__((cleanup(image_clear)))

/* gzip (one member) with zlib directly. */
static char *gz(const void *buf, size_t len, size_t *outlen)
{
	z_stream z;
	memset(&z, 0, sizeof(z));
	deflateInit2(&z, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY);
	size_t cap = deflateBound(&z, (uLong)len) + 64;
	char *out = ocil_xmalloc(cap);
	z.next_in = (unsigned char *)buf;
	z.avail_in = (uInt)len;
	z.next_out = (unsigned char *)out;
	z.avail_out = (uInt)cap;
	deflate(&z, Z_FINISH);
	*outlen = cap - z.avail_out;
	deflateEnd(&z);
	return out;
}

static char *gunzip_buf(const char *in, size_t inlen, size_t *outlen)
{
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
	inflateEnd(&z);
	*outlen = n;
	return out;
}

static int put_layer(image *im, const char *media_type, const void *blob, size_t len,
		     const char *diff_id, ocil_error **err)
{
	ocil_descriptor *d = &im->layers[im->n];
	if (ocil_blobstore_put(im->bs, blob, len, d->digest, err) < 0)
		return -1;
	d->media_type = ocil_xstrdup(media_type);
	d->size = (int64_t)len;
	memcpy(im->diff_ids[im->n], diff_id, OCIL_DIGEST_STR_SIZE);
	im->ids[im->n] = im->diff_ids[im->n];
	im->n++;
	return 0;
}

/* A gzip layer from our layer writer holding one file; its tar into *raw
 * when raw is not NULL (caller frees). */
static int add_gzip_layer(image *im, const char *file, const char *content, char **raw,
			  size_t *raw_len, ocil_error **err)
{
	ocil_layer_opts lo = {.mtime = 0};
	cleanup_layer_writer ocil_layer_writer *w = NULL;
	ocil_layer_result res;
	if (ocil_layer_writer_new(im->bs, &lo, &w, err) < 0 ||
	    ocil_layer_writer_add_parents(w, file, err) < 0 ||
	    ocil_layer_writer_add_file(w, file, 0644, content, strlen(content), err) < 0 ||
	    ocil_layer_writer_finish(w, &res, err) < 0)
		return -1;
	ocil_descriptor *d = &im->layers[im->n];
	memcpy(d->digest, res.digest, OCIL_DIGEST_STR_SIZE);
	d->media_type = ocil_xstrdup(OCIL_MT_OCI_LAYER_GZIP);
	d->size = (int64_t)res.size;
	memcpy(im->diff_ids[im->n], res.diff_id, OCIL_DIGEST_STR_SIZE);
	im->ids[im->n] = im->diff_ids[im->n];
	im->n++;
	if (raw != NULL) {
		cleanup_free char *blob = NULL;
		size_t blen = 0;
		cleanup_free char *path = ocil_blobstore_path(im->bs, res.digest);
		if (ocil_read_file(path, 1 << 20, &blob, &blen, err) < 0)
			return -1;
		*raw = gunzip_buf(blob, blen, raw_len);
	}
	return 0;
}

static int put_config(image *im, const char *const *diff_ids, size_t n, ocil_error **err)
{
	cleanup_json json_t *cfg = json_object();
	json_object_set_new(cfg, "architecture", json_string("amd64"));
	json_object_set_new(cfg, "os", json_string("linux"));
	json_object_set_new(cfg, "config", json_pack("{s:[s]}", "Cmd", "app.handler"));
	json_t *ids = json_array();
	for (size_t i = 0; i < n; i++)
		json_array_append_new(ids, json_string(diff_ids[i]));
	json_object_set_new(cfg, "rootfs",
			    json_pack("{s:s,s:o}", "type", "layers", "diff_ids", ids));
	cleanup_free char *raw = ocil_json_dump(cfg);
	im->config.media_type = ocil_xstrdup(OCIL_MT_OCI_CONFIG);
	im->config.size = (int64_t)strlen(raw);
	return ocil_blobstore_put(im->bs, raw, strlen(raw), im->config.digest, err);
}

/* Three layers: gzip from the layer writer, the same kind of tar stored
 * uncompressed, and a gzip of two members (as pigz or cat a.gz b.gz
 * make). */
static int build_image(image *im, ocil_error **err)
{
	memset(im, 0, sizeof(*im));
	cleanup_free char *store = tpath("store");
	if (ocil_blobstore_open(store, &im->bs, err) < 0 ||
	    add_gzip_layer(im, "/var/task/app.py", "def handler(e, c):\n    return 1\n", NULL, NULL,
			   err) < 0)
		return -1;

	cleanup_free char *raw = NULL;
	size_t raw_len = 0;
	image scratch = {.bs = im->bs};
	if (add_gzip_layer(&scratch, "/opt/lib/x.txt", "plain layer\n", &raw, &raw_len, err) < 0)
		return -1;
	ocil_descriptor_clear(&scratch.layers[0]);
	scratch.n = 0;
	char id[OCIL_DIGEST_STR_SIZE];
	ocil_digest_buf(raw, raw_len, id);
	if (put_layer(im, OCIL_MT_DOCKER_LAYER, raw, raw_len, id, err) < 0)
		return -1;

	cleanup_free char *raw3 = NULL;
	size_t raw3_len = 0;
	if (add_gzip_layer(&scratch, "/opt/multi/y.txt", "two gzip members\n", &raw3, &raw3_len,
			   err) < 0)
		return -1;
	ocil_descriptor_clear(&scratch.layers[0]);
	scratch.n = 0;
	size_t half = raw3_len / 2, l1 = 0, l2 = 0;
	cleanup_free char *g1 = gz(raw3, half, &l1);
	cleanup_free char *g2 = gz(raw3 + half, raw3_len - half, &l2);
	cleanup_free char *cat = ocil_xmalloc(l1 + l2);
	memcpy(cat, g1, l1);
	memcpy(cat + l1, g2, l2);
	ocil_digest_buf(raw3, raw3_len, id);
	if (put_layer(im, OCIL_MT_DOCKER_LAYER_GZIP, cat, l1 + l2, id, err) < 0)
		return -1;
	return put_config(im, im->ids, im->n, err);
}

static ocil_archive_spec spec_of(const image *im, const char *const *tags, size_t n_tags)
{
	return (ocil_archive_spec){
	    .blobs = im->bs,
	    .config = &im->config,
	    .layers = im->layers,
	    .diff_ids = im->ids,
	    .n_layers = im->n,
	    .repo_tags = tags,
	    .n_repo_tags = n_tags,
	};
}

/* Entries of dir whose name contains ".tmp-". */
static int count_tmp(const char *dir)
{
	DIR *d = opendir(dir);
	if (d == NULL)
		return -1;
	int n = 0;
	struct dirent *de;
	while ((de = readdir(d)) != NULL)
		n += strstr(de->d_name, ".tmp-") != NULL;
	closedir(d);
	return n;
}

static bool same_file(const char *a, const char *b)
{
	ocil_error *err = NULL;
	char *x = NULL, *y = NULL;
	size_t xl = 0, yl = 0;
	bool same = ocil_read_file(a, 1 << 24, &x, &xl, &err) == 0 &&
		    ocil_read_file(b, 1 << 24, &y, &yl, &err) == 0 && xl == yl &&
		    memcmp(x, y, xl) == 0;
	ocil_error_free(err);
	free(x);
	free(y);
	return same;
}

static char *hex_name(const char *digest, const char *suffix)
{
	return ocil_xasprintf("%s%s", ocil_digest_hex(digest), suffix);
}

static void test_members(void)
{
	ocil_error *err = NULL;
	cleanup_image image im;
	CHECK_OK(build_image(&im, &err), &err);
	const char *tags[] = {"fn:v1", "registry.example:5000/team/fn"};
	ocil_archive_spec s = spec_of(&im, tags, NENTS(tags));
	s.mtime = 1700000000;
	cleanup_free char *out = tpath("fn.tar");
	CHECK_OK(ocil_sink_archive_write(out, &s, &err), &err);

	rlayer l;
	memset(&l, 0, sizeof(l));
	int r = read_layer(out, &l);
	cleanup_free char *cfg = hex_name(im.config.digest, ".json");
	cleanup_free char *l0 = hex_name(im.ids[0], ".tar");
	cleanup_free char *l1 = hex_name(im.ids[1], ".tar");
	cleanup_free char *l2 = hex_name(im.ids[2], ".tar");
	const char *want[] = {cfg, l0, l1, l2, "manifest.json", "repositories"};
	bool names = r == 0 && rlayer_names_are(&l, want, NENTS(want));
	bool meta = true, ids = true;
	for (size_t i = 0; r == 0 && i < l.n; i++) {
		const rentry *e = &l.e[i];
		meta = meta && e->type == S_IFREG && e->perm == 0644 && e->uid == 0 &&
		       e->gid == 0 && e->mtime == 1700000000;
		if (i >= 1 && i <= 3) {
			char d[OCIL_DIGEST_STR_SIZE];
			ocil_digest_buf(e->data, e->size, d);
			ids = ids && strcmp(d, im.ids[i - 1]) == 0;
		}
	}
	cleanup_free char *cfg_blob = NULL;
	size_t cfg_len = 0;
	cleanup_free char *cfg_path = ocil_blobstore_path(im.bs, im.config.digest);
	CHECK_OK(ocil_read_file(cfg_path, 1 << 20, &cfg_blob, &cfg_len, &err), &err);
	cleanup_free char *want_manifest = ocil_xasprintf(
	    "[{\"Config\":\"%s\",\"Layers\":[\"%s\",\"%s\",\"%s\"],\"RepoTags\":[\"fn:v1\","
	    "\"registry.example:5000/team/fn:latest\"]}]",
	    cfg, l0, l1, l2);
	cleanup_free char *want_repos =
	    ocil_xasprintf("{\"fn\":{\"v1\":\"%s\"},\"registry.example:5000/team/fn\":{"
			   "\"latest\":\"%s\"}}",
			   ocil_digest_hex(im.ids[2]), ocil_digest_hex(im.ids[2]));
	bool cfg_same = r == 0 && l.n == 6 && l.e[0].size == cfg_len &&
			memcmp(l.e[0].data, cfg_blob, cfg_len) == 0;
	bool mj = r == 0 && l.n == 6 && strcmp(l.e[4].data, want_manifest) == 0;
	bool rp = r == 0 && l.n == 6 && strcmp(l.e[5].data, want_repos) == 0;
	if (r == 0 && l.n == 6 && (!mj || !rp))
		fprintf(stderr, "manifest.json: %s\nrepositories: %s\n", l.e[4].data, l.e[5].data);
	rlayer_clear(&l);
	CHECK(names && meta && ids && cfg_same && mj && rp);

	/* Plain ustar, no pax records: every header says "ustar\0" "00" and
	 * is a regular file ('0'), and the file is exactly headers, padded
	 * data and the two zero blocks. */
	cleanup_free char *buf = NULL;
	size_t len = 0;
	CHECK_OK(ocil_read_file(out, 1 << 24, &buf, &len, &err), &err);
	size_t off = 0, members = 0;
	while (off + 512 <= len && buf[off] != '\0') {
		CHECK(memcmp(buf + off + 257,
			     "ustar\0"
			     "00",
			     8) == 0);
		CHECK(buf[off + 156] == '0');
		CHECK(buf[off + 265] == '\0' && buf[off + 297] == '\0'); /* no uname/gname */
		unsigned long long size = strtoull(buf + off + 124, NULL, 8);
		off += 512 + (size + 511) / 512 * 512;
		members++;
	}
	CHECK(members == 6);
	CHECK(off + 1024 == len);
	for (size_t i = off; i < len; i++)
		CHECK(buf[i] == '\0');
	struct stat st;
	CHECK(stat(out, &st) == 0 && (st.st_mode & 0777) == 0644);
	CHECK(count_tmp(ocil_test_tmpdir()) == 0);
}

static void test_no_tags(void)
{
	ocil_error *err = NULL;
	cleanup_image image im;
	CHECK_OK(build_image(&im, &err), &err);
	ocil_archive_spec s = spec_of(&im, NULL, 0);
	cleanup_free char *out = tpath("notag.tar");
	CHECK_OK(ocil_sink_archive_write(out, &s, &err), &err);
	rlayer l;
	memset(&l, 0, sizeof(l));
	int r = read_layer(out, &l);
	bool ok = r == 0 && l.n == 6 && strstr(l.e[4].data, "\"RepoTags\":[]") != NULL &&
		  strcmp(l.e[5].data, "{}") == 0 && l.e[0].mtime == 0;
	rlayer_clear(&l);
	CHECK(ok);
}

/* Tags are completed, deduplicated and grouped per repository. */
static void test_tags(void)
{
	ocil_error *err = NULL;
	cleanup_image image im;
	CHECK_OK(build_image(&im, &err), &err);
	const char *tags[] = {"fn", "fn:v3", "localhost/fn:x", "fn:latest", "[::1]:5000/a/b_c:v-1"};
	ocil_archive_spec s = spec_of(&im, tags, NENTS(tags));
	cleanup_free char *out = tpath("tags.tar");
	CHECK_OK(ocil_sink_archive_write(out, &s, &err), &err);
	rlayer l;
	memset(&l, 0, sizeof(l));
	int r = read_layer(out, &l);
	const char *hex = ocil_digest_hex(im.ids[2]);
	cleanup_free char *want_repos = ocil_xasprintf(
	    "{\"[::1]:5000/a/b_c\":{\"v-1\":\"%s\"},\"fn\":{\"latest\":\"%s\",\"v3\":\"%s\"},"
	    "\"localhost/fn\":{\"x\":\"%s\"}}",
	    hex, hex, hex, hex);
	bool ok = r == 0 && l.n == 6 &&
		  strstr(l.e[4].data, "\"RepoTags\":[\"fn:latest\",\"fn:v3\",\"localhost/fn:x\","
				      "\"[::1]:5000/a/b_c:v-1\"]") != NULL &&
		  strcmp(l.e[5].data, want_repos) == 0;
	if (!ok && r == 0 && l.n == 6)
		fprintf(stderr, "manifest.json: %s\nrepositories: %s\n", l.e[4].data, l.e[5].data);
	rlayer_clear(&l);
	CHECK(ok);

	char *repo = NULL, *tag = NULL;
	CHECK_OK(ocil_archive_parse_tag("Registry.Example/x/y", &repo, &tag, &err), &err);
	bool split = strcmp(repo, "Registry.Example/x/y") == 0 && strcmp(tag, "latest") == 0;
	free(repo);
	free(tag);
	CHECK(split);
}

static void test_bad_tags(void)
{
	ocil_error *err = NULL;
	cleanup_image image im;
	CHECK_OK(build_image(&im, &err), &err);
	static const char *const bad[] = {
	    "",
	    "Fn:v1",
	    "fn:",
	    "fn:-x",
	    "fn:bad tag",
	    "fn@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
	    "a//b",
	    "/fn",
	    "fn/",
	    "-fn",
	    "fn..x",
	    "fn___x",
	    "registry.example:port/fn",
	    "-registry.example/fn",
	    "registry.example/",
	    "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
	};
	cleanup_free char *out = tpath("bad.tar");
	CHECK(putn("bad.tar", "keep", 4, 0644) == 0);
	for (size_t i = 0; i < NENTS(bad); i++) {
		const char *tags[] = {"good:v1", bad[i]};
		ocil_archive_spec s = spec_of(&im, tags, NENTS(tags));
		int r = ocil_sink_archive_write(out, &s, &err);
		if (r == 0 || err == NULL || err->code != OCIL_E_USAGE) {
			fprintf(stderr, "tag \"%s\" was not refused: %s\n", bad[i],
				err ? err->msg : "(accepted)");
			ocil_error_free(err);
			CHECK(0);
		}
		CHECK(strstr(err->msg, "docker-archive tag") != NULL);
		ocil_error_free(err);
		err = NULL;
	}
	CHECK(count_tmp(ocil_test_tmpdir()) == 0);
	char *keep = NULL;
	size_t kl = 0;
	CHECK_OK(ocil_read_file(out, 100, &keep, &kl, &err), &err);
	bool kept = kl == 4 && memcmp(keep, "keep", 4) == 0;
	free(keep);
	CHECK(kept);
}

/* Our own docker-archive source reads the archive back as the same image. */
static void test_read_back(void)
{
	ocil_error *err = NULL;
	cleanup_image image im;
	CHECK_OK(build_image(&im, &err), &err);
	const char *tags[] = {"fn:v1"};
	ocil_archive_spec s = spec_of(&im, tags, 1);
	cleanup_free char *out = tpath("rb.tar");
	CHECK_OK(ocil_sink_archive_write(out, &s, &err), &err);

	const char *refs[] = {"", ":fn:v1"};
	for (size_t k = 0; k < NENTS(refs); k++) {
		cleanup_free char *ref_s = ocil_xasprintf("docker-archive:%s%s", out, refs[k]);
		ocil_ref ref;
		CHECK_OK(ocil_ref_parse(ref_s, &ref, &err), &err);
		ocil_source_opts o = {0};
		ocil_source *src = NULL;
		int r = ocil_source_open(&ref, &o, &src, &err);
		ocil_ref_clear(&ref);
		CHECK_OK(r, &err);
		bool ok = strcmp(src->manifest.config.digest, im.config.digest) == 0 &&
			  src->manifest.n_layers == im.n;
		const json_t *ids =
		    json_object_get(json_object_get(src->config, "rootfs"), "diff_ids");
		for (size_t i = 0; ok && i < im.n; i++)
			ok = strcmp(json_string_value(json_array_get(ids, i)), im.ids[i]) == 0 &&
			     strcmp(src->manifest.layers[i].digest, im.ids[i]) == 0;
		/* the bytes of the multi-member layer, as the source hands them */
		cleanup_free char *store2 = ocil_xasprintf("%s/copy%zu", ocil_test_tmpdir(), k);
		ocil_blobstore *bs2 = NULL;
		if (ok &&
		    (ocil_blobstore_open(store2, &bs2, &err) < 0 ||
		     ocil_source_copy_blob(src, &src->manifest.layers[2], bs2, NULL, &err) < 0))
			ok = false;
		ocil_blobstore_free(bs2);
		ocil_source_free(src);
		CHECK_OK(ok ? 0 : -1, &err);
	}
	cleanup_free char *bad_s = ocil_xasprintf("docker-archive:%s:fn:v2", out);
	ocil_ref ref;
	CHECK_OK(ocil_ref_parse(bad_s, &ref, &err), &err);
	ocil_source_opts o = {0};
	ocil_source *src = NULL;
	int r = ocil_source_open(&ref, &o, &src, &err);
	ocil_ref_clear(&ref);
	CHECK_FAIL(r, &err, OCIL_E_INPUT, "no image tagged \"fn:v2\"");
}

static void test_deterministic(void)
{
	ocil_error *err = NULL;
	cleanup_image image im;
	CHECK_OK(build_image(&im, &err), &err);
	const char *tags[] = {"fn:v1"};
	ocil_archive_spec s = spec_of(&im, tags, 1);
	cleanup_free char *a = tpath("a.tar");
	cleanup_free char *b = tpath("b.tar");
	CHECK_OK(ocil_sink_archive_write(a, &s, &err), &err);
	CHECK_OK(ocil_sink_archive_write(b, &s, &err), &err);
	CHECK(same_file(a, b));
	/* overwriting an existing archive works and gives the same bytes */
	CHECK_OK(ocil_sink_archive_write(b, &s, &err), &err);
	CHECK(same_file(a, b));
	/* and the mtime is the only thing the mtime changes */
	s.mtime = 1;
	CHECK_OK(ocil_sink_archive_write(b, &s, &err), &err);
	CHECK(!same_file(a, b));
}

/* A layer listed twice (two empty layers, say) is stored once. */
static void test_duplicate_layer(void)
{
	ocil_error *err = NULL;
	cleanup_image image im;
	memset(&im, 0, sizeof(im));
	cleanup_free char *store = tpath("store");
	CHECK_OK(ocil_blobstore_open(store, &im.bs, &err), &err);
	CHECK_OK(add_gzip_layer(&im, "/a", "same\n", NULL, NULL, &err), &err);
	CHECK_OK(add_gzip_layer(&im, "/a", "same\n", NULL, NULL, &err), &err);
	CHECK_OK(put_config(&im, im.ids, im.n, &err), &err);
	ocil_archive_spec s = spec_of(&im, NULL, 0);
	cleanup_free char *out = tpath("dup.tar");
	CHECK_OK(ocil_sink_archive_write(out, &s, &err), &err);
	rlayer l;
	memset(&l, 0, sizeof(l));
	int r = read_layer(out, &l);
	cleanup_free char *ln = hex_name(im.ids[0], ".tar");
	cleanup_free char *lay = ocil_xasprintf("\"Layers\":[\"%s\",\"%s\"]", ln, ln);
	bool ok =
	    r == 0 && l.n == 4 && strcmp(l.e[1].name, ln) == 0 && strstr(l.e[2].data, lay) != NULL;
	rlayer_clear(&l);
	CHECK(ok);
}

/* Every failure leaves no temporary file and the old archive in place. */
static void expect_failure(const ocil_archive_spec *s, ocil_code code, const char *needle)
{
	ocil_error *err = NULL;
	cleanup_free char *out = tpath("old.tar");
	CHECK(putn("old.tar", "previous archive", 16, 0644) == 0);
	CHECK_FAIL(ocil_sink_archive_write(out, s, &err), &err, code, needle);
	CHECK(count_tmp(ocil_test_tmpdir()) == 0);
	char *keep = NULL;
	size_t kl = 0;
	CHECK_OK(ocil_read_file(out, 100, &keep, &kl, &err), &err);
	bool kept = kl == 16 && memcmp(keep, "previous archive", 16) == 0;
	free(keep);
	CHECK(kept);
}

/* expect_failure's CHECKs return from it, not from the test */
#define EXPECT_FAILURE(...)                                                                        \
	do {                                                                                       \
		expect_failure(__VA_ARGS__);                                                       \
		if (ocil_test_failed)                                                              \
			return;                                                                    \
	} while (0)

static void test_diff_id_mismatch(void)
{
	ocil_error *err = NULL;
	cleanup_image image im;
	CHECK_OK(build_image(&im, &err), &err);
	/* the multi-member gzip layer claims another diff_id, consistently
	 * in the config too: only decompressing tells */
	char real[OCIL_DIGEST_STR_SIZE];
	memcpy(real, im.diff_ids[2], sizeof(real));
	ocil_digest_buf("other", 5, im.diff_ids[2]);
	ocil_descriptor_clear(&im.config);
	CHECK_OK(put_config(&im, im.ids, im.n, &err), &err);
	ocil_archive_spec s = spec_of(&im, NULL, 0);
	EXPECT_FAILURE(&s, OCIL_E_INPUT, "diff_id mismatch");

	/* the config disagreeing with the diff_ids given */
	memcpy(im.diff_ids[2], real, sizeof(real));
	EXPECT_FAILURE(&s, OCIL_E_INPUT, "rootfs.diff_ids[2]");
}

static void test_corrupt_blobs(void)
{
	ocil_error *err = NULL;
	cleanup_image image im;
	CHECK_OK(build_image(&im, &err), &err);
	ocil_archive_spec s = spec_of(&im, NULL, 0);

	/* a gzip layer whose stored bytes were damaged after the store
	 * checked them: the compressed digest catches it, or zlib does */
	cleanup_free char *p0 = ocil_blobstore_path(im.bs, im.layers[0].digest);
	cleanup_free char *orig = NULL;
	size_t olen = 0;
	CHECK_OK(ocil_read_file(p0, 1 << 20, &orig, &olen, &err), &err);
	FILE *f = fopen(p0, "r+");
	CHECK(f != NULL);
	fseek(f, (long)olen - 8, SEEK_SET); /* the CRC: zlib notices */
	fputc(orig[olen - 8] ^ 0x55, f);
	fclose(f);
	EXPECT_FAILURE(&s, OCIL_E_INPUT, "gzip:");
	CHECK_OK(ocil_write_file_atomic(p0, orig, olen, &err), &err);

	/* a truncated gzip layer */
	CHECK_OK(ocil_write_file_atomic(p0, orig, olen / 2, &err), &err);
	EXPECT_FAILURE(&s, OCIL_E_INPUT, "gzip: truncated stream");
	CHECK_OK(ocil_write_file_atomic(p0, orig, olen, &err), &err);

	/* a plain layer whose bytes changed (same size) */
	cleanup_free char *p1 = ocil_blobstore_path(im.bs, im.layers[1].digest);
	cleanup_free char *orig1 = NULL;
	size_t olen1 = 0;
	CHECK_OK(ocil_read_file(p1, 1 << 20, &orig1, &olen1, &err), &err);
	orig1[0] ^= 1;
	CHECK_OK(ocil_write_file_atomic(p1, orig1, olen1, &err), &err);
	EXPECT_FAILURE(&s, OCIL_E_INPUT, "digest mismatch");
	orig1[0] ^= 1;
	CHECK_OK(ocil_write_file_atomic(p1, orig1, olen1, &err), &err);

	/* a missing blob */
	cleanup_free char *moved = tpath("moved");
	CHECK(rename(p1, moved) == 0);
	EXPECT_FAILURE(&s, OCIL_E_INPUT, "layer 1: blob sha256:");
	CHECK(rename(moved, p1) == 0);

	/* and with everything restored it works again */
	cleanup_free char *out = tpath("ok.tar");
	CHECK_OK(ocil_sink_archive_write(out, &s, &err), &err);
}

static void test_zstd(void)
{
	ocil_error *err = NULL;
	cleanup_image image im;
	CHECK_OK(build_image(&im, &err), &err);
	free(im.layers[0].media_type);
	im.layers[0].media_type = ocil_xstrdup(OCIL_MT_OCI_LAYER_ZSTD);
	ocil_archive_spec s = spec_of(&im, NULL, 0);
	EXPECT_FAILURE(&s, OCIL_E_INPUT, "docker-archive needs gzip or tar layers");
	free(im.layers[0].media_type);
	im.layers[0].media_type = ocil_xstrdup("application/octet-stream");
	EXPECT_FAILURE(&s, OCIL_E_INPUT, "docker-archive needs gzip or tar layers");
	/* a plain layer's digest must be its diff_id */
	free(im.layers[0].media_type);
	im.layers[0].media_type = ocil_xstrdup(OCIL_MT_OCI_LAYER);
	EXPECT_FAILURE(&s, OCIL_E_INPUT, "an uncompressed layer's digest is its diff_id");
}

static void test_cancel(void)
{
	ocil_error *err = NULL;
	cleanup_image image im;
	CHECK_OK(build_image(&im, &err), &err);
	volatile int flag = 1;
	ocil_cancel c = {.flag = &flag};
	ocil_archive_spec s = spec_of(&im, NULL, 0);
	s.cancel = &c;
	EXPECT_FAILURE(&s, OCIL_E_CANCELLED, "interrupted");
	cleanup_free char *fresh = tpath("fresh.tar");
	CHECK_FAIL(ocil_sink_archive_write(fresh, &s, &err), &err, OCIL_E_CANCELLED, "interrupted");
	CHECK(access(fresh, F_OK) != 0 && count_tmp(ocil_test_tmpdir()) == 0);
}

static void test_bad_args(void)
{
	ocil_error *err = NULL;
	cleanup_image image im;
	CHECK_OK(build_image(&im, &err), &err);
	ocil_archive_spec s = spec_of(&im, NULL, 0);
	s.mtime = -1;
	EXPECT_FAILURE(&s, OCIL_E_USAGE, "mtime -1 is out of range");
	s.mtime = 0;
	/* a directory that does not exist */
	cleanup_free char *out = tpath("no/such/dir/x.tar");
	CHECK_FAIL(ocil_sink_archive_write(out, &s, &err), &err, OCIL_E_IO,
		   "creating a temporary file");
	/* a directory in the way: the rename fails, the temp file goes */
	cleanup_free char *dir = tpath("adir");
	CHECK(mkdir(dir, 0755) == 0);
	CHECK_FAIL(ocil_sink_archive_write(dir, &s, &err), &err, OCIL_E_IO, "renaming");
	CHECK(count_tmp(ocil_test_tmpdir()) == 0);
}

/* Sizes past ustar's 11 octal digits (a layer of 8 GiB or more) go in
 * base-256; libarchive (as Go's archive/tar) reads them back. */
static void test_big_size_header(void)
{
	const uint64_t sizes[] = {0, 1, 077777777777ULL, 077777777777ULL + 1,
				  ((uint64_t)10 << 30) + 12345};
	for (size_t i = 0; i < NENTS(sizes); i++) {
		char h[512];
		ocil_archive_ustar_header(h, "x.tar", sizes[i], 077777777777LL);
		CHECK((sizes[i] > 077777777777ULL) == ((unsigned char)h[124] == 0x80));
		cleanup_free char *file = tpath("h.tar");
		CHECK(putn("h.tar", h, sizeof(h), 0644) == 0);
		struct archive *a = archive_read_new();
		archive_read_support_format_tar(a);
		struct archive_entry *e = NULL;
		bool ok = archive_read_open_filename(a, file, 512) == ARCHIVE_OK &&
			  archive_read_next_header(a, &e) == ARCHIVE_OK &&
			  strcmp(archive_entry_pathname(e), "x.tar") == 0 &&
			  (uint64_t)archive_entry_size(e) == sizes[i] &&
			  archive_entry_mtime(e) == 077777777777LL && archive_entry_uid(e) == 0 &&
			  archive_entry_perm(e) == 0644 && archive_entry_filetype(e) == AE_IFREG &&
			  archive_format(a) == ARCHIVE_FORMAT_TAR_USTAR;
		archive_read_free(a);
		CHECK(ok);
	}
}

TEST_MAIN(T(test_members), T(test_no_tags), T(test_tags), T(test_bad_tags), T(test_read_back),
	  T(test_deterministic), T(test_duplicate_layer), T(test_diff_id_mismatch),
	  T(test_corrupt_blobs), T(test_zstd), T(test_cancel), T(test_bad_args),
	  T(test_big_size_header))
