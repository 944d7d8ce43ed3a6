/* lambda: the facts of AWS Lambda's container runtime, in one place (see
 * lambda.h). */
#include "lambda/lambda.h"

#include <ctype.h>
#include <string.h>

#include "oci/tarstream.h"

/* Read size while searching libc.so.6 */
#define READ_BLOCK ((size_t)64 << 10)

const char *const ocil_lambda_read_dirs[] = {"/opt", "/var/lang", "/var/runtime", NULL};

/* Up to 4 digits as a number; false when there are none or more follow. */
static bool take_num(const char **s, unsigned *v)
{
	size_t k = 0;
	*v = 0;
	for (; isdigit((unsigned char)(*s)[k]) && k < 4; k++)
		*v = *v * 10 + (unsigned)((*s)[k] - '0');
	*s += k;
	return k > 0 && !isdigit((unsigned char)**s);
}

bool ocil_lambda_python_version(const char *v, unsigned *minor)
{
	unsigned n;
	if (v[0] != '3' || v[1] != '.')
		return false;
	v += 2;
	if (!take_num(&v, &n) || *v != '\0')
		return false;
	if (minor != NULL)
		*minor = n;
	return true;
}

bool ocil_lambda_python_name(const char *name, unsigned *minor)
{
	return ocil_str_has_prefix(name, "python") &&
	       ocil_lambda_python_version(name + strlen("python"), minor);
}

bool ocil_lambda_glibc_from_name(const char *name, ocil_glibc *out)
{
	if (!ocil_str_has_prefix(name, "libc-"))
		return false;
	const char *p = name + strlen("libc-");
	ocil_glibc v;
	if (!take_num(&p, &v.major) || *p++ != '.' || !take_num(&p, &v.minor) ||
	    strcmp(p, ".so") != 0 || v.major == 0)
		return false;
	*out = v;
	return true;
}

/* From "GNU C Library" to its version: no banner is longer. */
#define BANNER_SPAN 256

bool ocil_lambda_glibc_from_banner(const char *buf, size_t len, ocil_glibc *out)
{
	static const char lib[] = "GNU C Library", rel[] = "release version ";
	const char *end = buf + len;
	for (const char *g = buf; (g = memmem(g, (size_t)(end - g), lib, strlen(lib))) != NULL;
	     g++) {
		/* the banner is one C string: stop at its NUL */
		size_t span = (size_t)(end - g) < BANNER_SPAN ? (size_t)(end - g) : BANNER_SPAN;
		const char *nul = memchr(g, '\0', span);
		const char *stop = nul ? nul : g + span;
		const char *r = memmem(g, (size_t)(stop - g), rel, strlen(rel));
		if (r == NULL)
			continue;
		const char *p = r + strlen(rel);
		unsigned v[2] = {0, 0};
		size_t k[2] = {0, 0};
		for (int i = 0; i < 2; i++) {
			for (; p < stop && isdigit((unsigned char)*p) && k[i] < 4; p++, k[i]++)
				v[i] = v[i] * 10 + (unsigned)(*p - '0');
			if (i == 0 && p < stop && *p == '.')
				p++;
			else if (i == 0)
				k[0] = 0;
		}
		/* the number must end inside buf: "2.3" may be "2.36" cut short */
		if (k[0] == 0 || k[1] == 0 || v[0] == 0 || p >= end || isdigit((unsigned char)*p))
			continue;
		*out = (ocil_glibc){v[0], v[1]};
		return true;
	}
	return false;
}

/* Search a libc.so.6 in the image for the banner, a block at a time, the
 * last BANNER_SPAN bytes carried over so a banner across blocks is seen. */
static int scan_banner(ocil_rootfs *fs, const ocil_rootfs_node *node, ocil_glibc *out,
		       ocil_error **err)
{
	cleanup_tarstream ocil_tarstream *ts = NULL;
	if (ocil_rootfs_open_file(fs, node, &ts, err) < 0)
		return -1;
	cleanup_free char *buf = ocil_xmalloc(BANNER_SPAN + READ_BLOCK);
	size_t keep = 0;
	uint64_t left = node->size;
	while (left > 0) {
		size_t want = left < READ_BLOCK ? (size_t)left : READ_BLOCK;
		ssize_t n = ocil_tarstream_read(ts, buf + keep, want, err);
		if (n < 0)
			return -1;
		if (n == 0)
			return ocil_error_set(err, OCIL_E_INPUT, "truncated in its layer");
		left -= (uint64_t)n;
		size_t len = keep + (size_t)n;
		if (ocil_lambda_glibc_from_banner(buf, len, out))
			return 1;
		keep = len < BANNER_SPAN ? len : BANNER_SPAN;
		memmove(buf, buf + len - keep, keep);
	}
	return 0;
}

int ocil_lambda_base_glibc(ocil_rootfs *fs, const char *arch, ocil_glibc *out, char **where,
			   ocil_error **err)
{
	*out = (ocil_glibc){0, 0};
	*where = NULL;
	cleanup_free char *multi = ocil_xasprintf("/lib/%s-linux-gnu", arch);
	cleanup_free char *usr_multi = ocil_xasprintf("/usr/lib/%s-linux-gnu", arch);
	const char *dirs[] = {"/lib64", "/usr/lib64", multi, usr_multi, "/lib", "/usr/lib"};
	for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
		cleanup_free char *path = ocil_xasprintf("%s/libc.so.6", dirs[i]);
		cleanup_rootfs_node ocil_rootfs_node node = {0};
		cleanup_error ocil_error *lerr = NULL;
		int found = ocil_rootfs_lookup(fs, path, true, &node, &lerr);
		if (found < 0 && lerr->code != OCIL_E_INPUT) {
			if (err != NULL)
				*err = steal_pointer(&lerr);
			return -1;
		}
		/* a symlink loop is no libc either */
		if (found <= 0 || node.type != OCIL_TAR_FILE)
			continue;
		const char *slash = strrchr(node.path, '/');
		int r = ocil_lambda_glibc_from_name(slash ? slash + 1 : node.path, out);
		if (!r && node.size <= OCIL_LAMBDA_MAX_LIBC &&
		    (r = scan_banner(fs, &node, out, err)) < 0) {
			char q[OCIL_TAR_QUOTE_SIZE];
			return ocil_error_wrap(err, "%s", ocil_tar_quote(node.path, q));
		}
		if (r > 0) {
			*where = ocil_xstrdup(node.path);
			return 0;
		}
	}
	return 0;
}
