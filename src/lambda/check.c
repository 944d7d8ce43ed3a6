/* check: the Lambda rules as findings. Three parts: the manifest and config
 * rules (documents only), a pass over every layer's tar entries (modes,
 * hardlinks, parents, sizes), and the python rules on the merged view
 * (rootfs), which is built in a second thread while the first pass runs. */
#include "lambda/check.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "base/json.h"
#include "lambda/lambda.h"
#include "oci/layer_index.h"
#include "oci/pyc.h"
#include "oci/rootfs.h"
#include "oci/tarstream.h"
#include "registry/registry.h"

/* Largest handler module read for the static check. */
#define MODULE_MAX ((size_t)16 << 20)

/* ---- findings ---- */

const char *ocil_severity_name(ocil_severity s)
{
	switch (s) {
	case OCIL_SEV_ERROR:
		return "error";
	case OCIL_SEV_WARNING:
		return "warning";
	case OCIL_SEV_INFO:
		break;
	}
	return "info";
}

char *ocil_finding_format(const ocil_finding *x)
{
	if (x->where[0] != '\0')
		return ocil_xasprintf("%s %s %s: %s", x->rule, ocil_severity_name(x->sev), x->where,
				      x->msg);
	return ocil_xasprintf("%s %s %s", x->rule, ocil_severity_name(x->sev), x->msg);
}

void ocil_findings_clear(ocil_findings *f)
{
	for (size_t i = 0; i < f->n; i++) {
		free(f->v[i].where);
		free(f->v[i].msg);
	}
	free(f->v);
	memset(f, 0, sizeof(*f));
}

size_t ocil_findings_count(const ocil_findings *f, ocil_severity sev)
{
	size_t n = 0;
	for (size_t i = 0; i < f->n; i++)
		n += f->v[i].sev == sev;
	return n;
}

bool ocil_findings_have_errors(const ocil_findings *f)
{
	return ocil_findings_count(f, OCIL_SEV_ERROR) > 0;
}

char *ocil_findings_failed_rules(const ocil_findings *f)
{
	char *rules = ocil_xstrdup("");
	for (size_t i = 0; i < f->n; i++) {
		if (f->v[i].sev != OCIL_SEV_ERROR || strstr(rules, f->v[i].rule) != NULL)
			continue;
		char *n = ocil_xasprintf("%s%s%s", rules, rules[0] ? ", " : "", f->v[i].rule);
		free(rules);
		rules = n;
	}
	return rules;
}

const ocil_finding *ocil_findings_find(const ocil_findings *f, const char *rule)
{
	for (size_t i = 0; i < f->n; i++)
		if (strcmp(f->v[i].rule, rule) == 0)
			return &f->v[i];
	return NULL;
}

static void findings_push(ocil_findings *f, const char *rule, ocil_severity sev, char *where,
			  char *msg)
{
	if (f->n == f->cap) {
		f->cap = f->cap ? f->cap * 2 : 16;
		f->v = ocil_xrealloc(f->v, f->cap * sizeof(*f->v));
	}
	f->v[f->n++] = (ocil_finding){.rule = rule, .sev = sev, .where = where, .msg = msg};
}

/* Rules by position in OCIL_CHECK_RULES. */
enum {
	R_MERGE,     /* L000 */
	R_MANIFEST,  /* L001 */
	R_MEDIA,     /* L002 */
	R_PLATFORM,  /* L003 */
	R_FILE_MODE, /* L004 */
	R_DIR_MODE,  /* L005 */
	R_HARDLINK,  /* L006 */
	R_PARENT,    /* L007 */
	R_SPECIAL,   /* L008 */
	R_SIZE,	     /* L009 */
	R_EXEC_FORM, /* L010 */
	R_CMD,	     /* L011 */
	R_HANDLER,   /* L012 */
	R_PYTHON,    /* L013 */
	R_CONDA,     /* L014 */
	R_SETID,     /* L015 */
	R_BYTECODE,  /* L016 */
	NRULES
};

/* The static rule ids, so findings can point at them. */
#define RULE_ID(id, sev, summary) #id,
static const char *const rule_ids[] = {OCIL_CHECK_RULES(RULE_ID)};
_Static_assert(sizeof(rule_ids) / sizeof(rule_ids[0]) == NRULES, "one enum value per rule");

typedef struct {
	const ocil_check_opts *o;
	ocil_findings *out;
	size_t start;		 /* our first finding in out */
	size_t count[NRULES][3]; /* findings added per rule and severity */
	size_t more[NRULES][3];	 /* per-entry findings left out */
	/* where the function reads and runs from: per-entry mode rules are
	 * errors there, warnings elsewhere (a base's /root, /etc/shadow) */
	ocil_strv roots;
	int py_minor; /* of the python /var/lang/bin/python3.X runs, -1: none */
} ctx;

static void ctx_clear(ctx *c)
{
	ocil_strv_clear(&c->roots);
}

static void add(ctx *c, int rule, ocil_severity sev, const char *where, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static void add(ctx *c, int rule, ocil_severity sev, const char *where, const char *fmt, ...)
{
	/* the per-entry rules stop after a screenful */
	if (((rule >= R_FILE_MODE && rule <= R_SPECIAL) || rule == R_SETID) &&
	    c->count[rule][sev] >= OCIL_CHECK_MAX_PER_RULE) {
		c->more[rule][sev]++;
		return;
	}
	c->count[rule][sev]++;
	char *msg = NULL;
	va_list ap;
	va_start(ap, fmt);
	if (vasprintf(&msg, fmt, ap) < 0)
		abort();
	va_end(ap);
	findings_push(c->out, rule_ids[rule], sev, ocil_xstrdup(where ? where : ""), msg);
}

/* Append the "... and N more" lines, then group by rule and severity
 * keeping the order of discovery (a stable sort by hand: qsort is not). */
static void finish(ctx *c)
{
	for (int r = 0; r < NRULES; r++)
		for (int sev = 0; sev < 3; sev++)
			if (c->more[r][sev] > 0)
				findings_push(c->out, rule_ids[r], (ocil_severity)sev,
					      ocil_xstrdup(""),
					      ocil_xasprintf("... and %zu more", c->more[r][sev]));
	ocil_findings *f = c->out;
	size_t n = f->n - c->start;
	if (n < 2)
		return;
	ocil_finding *sorted = ocil_xcalloc(n, sizeof(*sorted));
	size_t k = 0;
	for (int r = 0; r < NRULES; r++)
		for (int sev = 0; sev < 3; sev++)
			for (size_t i = c->start; i < f->n; i++)
				if (f->v[i].rule == rule_ids[r] &&
				    f->v[i].sev == (ocil_severity)sev)
					sorted[k++] = f->v[i];
	memcpy(f->v + c->start, sorted, k * sizeof(*sorted));
	free(sorted);
}

/* ---- small helpers ---- */

/* "layer 2 (sha256:0123456789ab)" */
static char *layer_name(size_t i, const ocil_descriptor *d)
{
	return ocil_xasprintf("layer %zu (%.19s)", i, d->digest);
}

static char *human_size(uint64_t n)
{
	if (n >= ((uint64_t)1 << 30))
		return ocil_xasprintf("%.2f GiB", n / 1073741824.0);
	if (n >= ((uint64_t)1 << 20))
		return ocil_xasprintf("%.1f MiB", n / 1048576.0);
	return ocil_xasprintf("%.1f KiB", n / 1024.0);
}

/* Dirname of a normalized absolute path, in buf. */
static void parent_of(const char *path, char *buf, size_t size)
{
	const char *slash = strrchr(path, '/');
	size_t n = slash == NULL || slash == path ? 1 : (size_t)(slash - path);
	if (n >= size)
		n = size - 1;
	memcpy(buf, slash == NULL ? "/" : path, n);
	buf[n] = '\0';
}

static const char *base_of(const char *path)
{
	const char *slash = strrchr(path, '/');
	return slash ? slash + 1 : path;
}

/* ---- manifest and config rules ---- */

static void rule_manifest_type(ctx *c, const char *served, bool picked)
{
	if (ocil_media_type_is_index(served))
		add(c, R_MANIFEST, OCIL_SEV_ERROR, "manifest",
		    "the reference names an index (%s), not an image manifest; Lambda rejects "
		    "it: push the manifest of one platform%s",
		    served, picked ? " (the other rules check the image picked from it)" : "");
	else if (!ocil_media_type_is_manifest(served))
		add(c, R_MANIFEST, OCIL_SEV_ERROR, "manifest",
		    "media type %s is not an image manifest", served ? served : "(none)");
}

static void rule_media_types(ctx *c, const ocil_manifest *m)
{
	const char *cmt = m->config.media_type;
	if (cmt == NULL ||
	    (strcmp(cmt, OCIL_MT_OCI_CONFIG) != 0 && strcmp(cmt, OCIL_MT_DOCKER_CONFIG) != 0))
		add(c, R_MEDIA, OCIL_SEV_ERROR, "config",
		    "media type %s is not an image config; Lambda rejects it",
		    cmt ? cmt : "(none)");
	bool told_archive = false;
	for (size_t i = 0; i < m->n_layers; i++) {
		const ocil_descriptor *d = &m->layers[i];
		cleanup_free char *where = layer_name(i, d);
		switch (ocil_layer_media_compression(d->media_type)) {
		case OCIL_LAYER_GZIP:
			break;
		case OCIL_LAYER_ZSTD:
			add(c, R_MEDIA, OCIL_SEV_ERROR, where,
			    "zstd-compressed (%s); Lambda takes gzip layers only", d->media_type);
			break;
		case OCIL_LAYER_TAR:
			if (c->o->layers_compressed_on_push) {
				if (!told_archive)
					add(c, R_MEDIA, OCIL_SEV_INFO, where,
					    "stored uncompressed, as in any docker-archive; "
					    "docker push and skopeo copy compress layers with "
					    "gzip");
				told_archive = true;
			} else {
				add(c, R_MEDIA, OCIL_SEV_ERROR, where,
				    "uncompressed (%s); Lambda takes gzip layers only",
				    d->media_type);
			}
			break;
		case OCIL_LAYER_UNKNOWN:
			add(c, R_MEDIA, OCIL_SEV_ERROR, where, "media type %s is not a gzip layer",
			    d->media_type ? d->media_type : "(none)");
			break;
		}
	}
}

static void rule_platform(ctx *c, const json_t *config)
{
	const char *os = ocil_json_opt_string(config, "os");
	const char *arch = ocil_json_opt_string(config, "architecture");
	const char *variant = ocil_json_opt_string(config, "variant");
	cleanup_free char *is = ocil_xasprintf("%s/%s%s%s", os ? os : "?", arch ? arch : "?",
					       variant ? "/" : "", variant ? variant : "");
	bool bad = false;
	if (os == NULL || strcmp(os, "linux") != 0) {
		add(c, R_PLATFORM, OCIL_SEV_ERROR, "config.os",
		    "image is %s: Lambda runs linux images", is);
		bad = true;
	}
	if (arch == NULL || (strcmp(arch, "amd64") != 0 && strcmp(arch, "arm64") != 0)) {
		add(c, R_PLATFORM, OCIL_SEV_ERROR, "config.architecture",
		    "image is %s: Lambda runs amd64 (x86_64) or arm64 only", is);
		bad = true;
	}
	const ocil_platform *want = c->o->platform;
	if (!bad && want != NULL &&
	    (strcmp(os, want->os) != 0 || strcmp(arch, want->arch) != 0 ||
	     (want->variant != NULL && (variant == NULL || strcmp(variant, want->variant) != 0)))) {
		cleanup_free char *w = ocil_platform_format(want);
		add(c, R_PLATFORM, OCIL_SEV_ERROR, "config.architecture",
		    "image is %s, the function is %s (--platform)", is, w);
		bad = true;
	}
	if (bad)
		return;
	if (want != NULL)
		add(c, R_PLATFORM, OCIL_SEV_INFO, "config.architecture", "image is %s", is);
	else
		add(c, R_PLATFORM, OCIL_SEV_INFO, "config.architecture",
		    "image is %s: deploy it to a function with architecture %s", is,
		    strcmp(arch, "amd64") == 0 ? "x86_64" : "arm64");
}

/* The shell form Docker stores: ["/bin/sh", "-c", "..."]. */
static bool shell_form(const json_t *a)
{
	const char *sh = json_string_value(json_array_get(a, 0));
	const char *dash_c = json_string_value(json_array_get(a, 1));
	if (sh == NULL || dash_c == NULL || strcmp(dash_c, "-c") != 0)
		return false;
	const char *b = base_of(sh);
	return strcmp(b, "sh") == 0 || strcmp(b, "bash") == 0 || strcmp(b, "dash") == 0 ||
	       strcmp(b, "ash") == 0;
}

/* Returns true when field is usable as exec form (absent counts). */
static bool exec_form(ctx *c, const json_t *v, const char *where)
{
	if (v == NULL || json_is_null(v))
		return true;
	if (json_is_string(v)) {
		add(c, R_EXEC_FORM, OCIL_SEV_ERROR, where,
		    "a string (shell form \"%.80s\"); Lambda wants exec form, a JSON array",
		    json_string_value(v));
		return false;
	}
	if (!json_is_array(v)) {
		add(c, R_EXEC_FORM, OCIL_SEV_ERROR, where, "not a JSON array of strings");
		return false;
	}
	size_t i;
	const json_t *e;
	json_array_foreach(v, i, e)
	{
		if (!json_is_string(e)) {
			add(c, R_EXEC_FORM, OCIL_SEV_ERROR, where, "element %zu is not a string",
			    i);
			return false;
		}
	}
	if (shell_form(v)) {
		add(c, R_EXEC_FORM, OCIL_SEV_ERROR, where,
		    "shell form [\"%s\", \"-c\", ...]; Lambda wants exec form, the program and "
		    "its arguments",
		    json_string_value(json_array_get(v, 0)));
		return false;
	}
	return true;
}

/* Cmd[0] when Cmd is exec form and not empty, else NULL. */
static const char *rule_entrypoint_cmd(ctx *c, const json_t *cc)
{
	const json_t *ep = json_object_get(cc, "Entrypoint");
	const json_t *cmd = json_object_get(cc, "Cmd");
	exec_form(c, ep, "config.Entrypoint");
	bool cmd_ok = exec_form(c, cmd, "config.Cmd");
	bool has_ep = json_is_array(ep) && json_array_size(ep) > 0;
	bool has_cmd = json_is_array(cmd) && json_array_size(cmd) > 0;
	if (!has_cmd && cmd_ok)
		add(c, R_CMD, OCIL_SEV_WARNING, "config.Cmd",
		    "%s; the function configuration must give %s (ImageConfig)",
		    has_ep ? "no Cmd" : "neither Entrypoint nor Cmd",
		    has_ep ? "the handler as Command" : "EntryPoint and Command");
	return cmd_ok && has_cmd ? json_string_value(json_array_get(cmd, 0)) : NULL;
}

/* ---- the per-entry pass over every layer ---- */

#define GONE_SELF 1  /* a whiteout, or a non-directory over a lower directory */
#define GONE_BELOW 2 /* an opaque directory: what lower layers have below it */

typedef struct {
	char *parent, *child;
} pending;

typedef struct {
	/* directories of the merged lower layers: 1 present, 0 gone since */
	ocil_strmap dirs;
	uint64_t tar_bytes; /* estimated uncompressed size so far */
	/* per layer */
	ocil_strmap own, gone, pend_seen;
	pending *pend;
	size_t npend, cappend;
} scan;

static void scan_layer_reset(scan *s)
{
	ocil_strmap_clear(&s->own);
	ocil_strmap_clear(&s->gone);
	ocil_strmap_clear(&s->pend_seen);
	for (size_t i = 0; i < s->npend; i++) {
		free(s->pend[i].parent);
		free(s->pend[i].child);
	}
	s->npend = 0;
}

static void scan_clear(scan *s)
{
	scan_layer_reset(s);
	free(s->pend);
	ocil_strmap_clear(&s->dirs);
}

/* Whether this layer's whiteouts (gone) hide path as lower layers had it. */
static bool hidden(const ocil_strmap *gone, const char *path)
{
	if (ocil_strmap_size(gone) == 0)
		return false;
	char buf[OCIL_TAR_NAME_MAX + 2];
	snprintf(buf, sizeof(buf), "%s", path);
	bool self = true;
	for (;;) {
		unsigned char v = 0;
		if (ocil_strmap_get(gone, buf, &v) &&
		    ((v & GONE_SELF) || ((v & GONE_BELOW) && !self)))
			return true;
		if (strcmp(buf, "/") == 0)
			return false;
		char *slash = strrchr(buf, '/');
		if (slash == buf)
			slash[1] = '\0';
		else
			*slash = '\0';
		self = false;
	}
}

static void gone_put(ocil_strmap *gone, const char *path, unsigned char bit)
{
	unsigned char v = 0;
	ocil_strmap_get(gone, path, &v);
	ocil_strmap_put(gone, path, v | bit);
}

static uint64_t pad512(uint64_t n)
{
	return (n + 511) & ~(uint64_t)511;
}

/* Whether the function uses path: at or under a root, or (a directory)
 * on the way to one. */
static bool in_use(const ctx *c, const char *path, bool dir)
{
	size_t pl = strlen(path);
	for (size_t i = 0; i < c->roots.n; i++) {
		const char *r = c->roots.v[i];
		size_t rl = strlen(r);
		if (ocil_str_has_prefix(path, r) && (path[rl] == '\0' || path[rl] == '/'))
			return true;
		if (dir && (pl == 1 || (ocil_str_has_prefix(r, path) && r[pl] == '/')))
			return true;
	}
	return false;
}

static void mode_finding(ctx *c, int rule, const ocil_tar_entry *e, const char *where,
			 const char *lname)
{
	bool dir = e->type == OCIL_TAR_DIR;
	bool used = in_use(c, e->path, dir);
	add(c, rule, used ? OCIL_SEV_ERROR : OCIL_SEV_WARNING, where, "%s (mode %04o; %s)%s",
	    dir ? "directory not world-readable and searchable" : "not world-readable",
	    (unsigned)(e->mode & 07777), lname,
	    used ? "" : "; outside the paths the function uses");
}

static void scan_entry(ctx *c, scan *s, const ocil_tar_entry *e, const char *lname)
{
	/* quoted only for a finding: most entries have none */
	char q[OCIL_TAR_QUOTE_SIZE];
	/* tar bytes: a header, data in 512-byte blocks, and for long names
	 * the extra header pax or GNU writers add */
	s->tar_bytes += 512 + pad512(e->size);
	if (strlen(e->path) > 100 || (e->link != NULL && strlen(e->link) > 100))
		s->tar_bytes += 1024;
	unsigned perm = (unsigned)(e->mode & 07777);
	if (strcmp(e->path, "/") == 0) {
		if ((perm & 0555) != 0555)
			mode_finding(c, R_DIR_MODE, e, ocil_tar_quote(e->path, q), lname);
		return;
	}
	const char *base = base_of(e->path);
	char parent[OCIL_TAR_NAME_MAX + 2];
	parent_of(e->path, parent, sizeof(parent));
	if (strncmp(base, ".wh.", 4) == 0) {
		if (strcmp(base, ".wh..wh..opq") == 0)
			gone_put(&s->gone, parent, GONE_BELOW);
		else if (strncmp(base, ".wh..wh.", 8) != 0) {
			cleanup_free char *victim =
			    ocil_xasprintf("%s/%s", strcmp(parent, "/") ? parent : "", base + 4);
			gone_put(&s->gone, victim, GONE_SELF);
		}
	} else {
		switch (e->type) {
		case OCIL_TAR_FILE:
			if ((perm & 0444) != 0444)
				mode_finding(c, R_FILE_MODE, e, ocil_tar_quote(e->path, q), lname);
			if ((perm & (S_ISUID | S_ISGID)) != 0)
				add(c, R_SETID, OCIL_SEV_WARNING, ocil_tar_quote(e->path, q),
				    "%s file (mode %04o; %s); nothing in Lambda needs it",
				    (perm & S_ISUID) && (perm & S_ISGID) ? "setuid and setgid"
				    : (perm & S_ISUID)			 ? "setuid"
									 : "setgid",
				    perm, lname);
			break;
		case OCIL_TAR_DIR:
			if ((perm & 0555) != 0555)
				mode_finding(c, R_DIR_MODE, e, ocil_tar_quote(e->path, q), lname);
			ocil_strmap_put(&s->own, e->path, 1);
			break;
		case OCIL_TAR_HARDLINK: {
			char q2[OCIL_TAR_QUOTE_SIZE];
			add(c, R_HARDLINK, OCIL_SEV_ERROR, ocil_tar_quote(e->path, q),
			    "hardlink to %s (%s); Lambda's image optimization fails on hardlink "
			    "entries: store a copy or a symlink",
			    ocil_tar_quote(e->link, q2), lname);
			break;
		}
		case OCIL_TAR_OTHER: {
			const char *kind = S_ISCHR(e->mode) || S_ISBLK(e->mode) ? "device node"
					   : S_ISFIFO(e->mode)			? "fifo"
					   : S_ISSOCK(e->mode)			? "socket"
										: "special file";
			add(c, R_SPECIAL, OCIL_SEV_WARNING, ocil_tar_quote(e->path, q),
			    "%s (%s); the function cannot use it (no devices in Lambda)", kind,
			    lname);
			break;
		}
		case OCIL_TAR_SYMLINK:
			break;
		}
		unsigned char v = 0;
		if (e->type != OCIL_TAR_DIR && ocil_strmap_get(&s->dirs, e->path, &v) && v == 1)
			gone_put(&s->gone, e->path, GONE_SELF);
	}
	if (strcmp(parent, "/") == 0 || ocil_strmap_get(&s->own, parent, NULL) ||
	    ocil_strmap_get(&s->pend_seen, parent, NULL))
		return;
	/* decided at the end of the layer: the directory may come later in
	 * it, or this layer's whiteouts may hide the lower one */
	ocil_strmap_put(&s->pend_seen, parent, 1);
	if (s->npend == s->cappend) {
		s->cappend = s->cappend ? s->cappend * 2 : 64;
		s->pend = ocil_xrealloc(s->pend, s->cappend * sizeof(*s->pend));
	}
	s->pend[s->npend++] = (pending){ocil_xstrdup(parent), ocil_xstrdup(e->path)};
}

static void scan_layer_end(ctx *c, scan *s, const char *lname)
{
	for (size_t i = 0; i < s->npend; i++) {
		const char *p = s->pend[i].parent;
		unsigned char v = 0;
		if (ocil_strmap_get(&s->own, p, NULL) ||
		    (ocil_strmap_get(&s->dirs, p, &v) && v == 1 && !hidden(&s->gone, p)))
			continue;
		char q[OCIL_TAR_QUOTE_SIZE], q2[OCIL_TAR_QUOTE_SIZE];
		add(c, R_PARENT, OCIL_SEV_ERROR, ocil_tar_quote(p, q),
		    "parent directory missing: %s has %s but no directory entry for it, nor has "
		    "any layer below",
		    lname, ocil_tar_quote(s->pend[i].child, q2));
	}
	/* what lower layers had and this one removed */
	const char *key;
	unsigned char *val;
	if (ocil_strmap_size(&s->gone) > 0)
		for (size_t pos = 0; ocil_strmap_next(&s->dirs, &pos, &key, &val);)
			if (*val == 1 && hidden(&s->gone, key))
				*val = 0;
	for (size_t pos = 0; ocil_strmap_next(&s->own, &pos, &key, &val);)
		ocil_strmap_put(&s->dirs, key, 1);
	s->tar_bytes += 1024; /* end-of-archive blocks */
	scan_layer_reset(s);
}

static int scan_layers(ctx *c, const ocil_manifest *m, const char *const *paths, scan *s,
		       ocil_error **err)
{
	for (size_t i = 0; i < m->n_layers; i++) {
		cleanup_free char *lname = layer_name(i, &m->layers[i]);
		cleanup_layer_entries ocil_layer_entries *it = NULL;
		if (ocil_layer_entries_open(paths[i], lname, c->o->index_dir, &it, err) < 0)
			return -1;
		for (;;) {
			if (ocil_cancel_check(c->o->cancel, err) < 0)
				return -1;
			const ocil_tar_entry *e;
			int r = ocil_layer_entries_next(it, &e, err);
			if (r < 0)
				return -1;
			if (r == 0)
				break;
			scan_entry(c, s, e, lname);
		}
		scan_layer_end(c, s, lname);
	}
	return 0;
}

static void rule_sizes(ctx *c, const ocil_manifest *m, size_t manifest_len, size_t config_len,
		       uint64_t tar_bytes)
{
	uint64_t compressed = 0;
	for (size_t i = 0; i < m->n_layers; i++)
		compressed += (uint64_t)m->layers[i].size;
	uint64_t total = tar_bytes + manifest_len + config_len;
	cleanup_free char *t = human_size(total);
	cleanup_free char *z = human_size(compressed);
	if (total > OCIL_LAMBDA_MAX_UNCOMPRESSED)
		add(c, R_SIZE, OCIL_SEV_ERROR, "image",
		    "about %s uncompressed (%llu bytes), over Lambda's 10 GiB limit", t,
		    (unsigned long long)total);
	else
		add(c, R_SIZE, OCIL_SEV_INFO, "image",
		    "about %s uncompressed in %zu layer%s (%s compressed); the limit is 10 GiB", t,
		    m->n_layers, m->n_layers == 1 ? "" : "s", z);
	if (manifest_len > OCIL_LAMBDA_MAX_MANIFEST)
		add(c, R_SIZE, OCIL_SEV_ERROR, "manifest",
		    "%zu bytes, over the 4 MiB registries accept (distribution and containerd cap "
		    "manifests there)",
		    manifest_len);
}

/* ---- rules on the merged view ---- */

static const char *env_get(const json_t *cc, const char *key)
{
	size_t kl = strlen(key), i;
	const json_t *e;
	const char *val = NULL;
	json_array_foreach(json_object_get(cc, "Env"), i, e)
	{
		const char *s = json_string_value(e);
		if (s != NULL && strncmp(s, key, kl) == 0 && s[kl] == '=')
			val = s + kl + 1; /* the last one wins, as in a shell */
	}
	return val;
}

/* A lookup where a symlink loop is a missing path, not an error. */
static int lookup(ocil_rootfs *fs, const char *path, bool follow, ocil_rootfs_node *node,
		  ocil_error **err)
{
	ocil_error *e = NULL;
	int r = ocil_rootfs_lookup(fs, path, follow, node, &e);
	if (r < 0 && e->code == OCIL_E_INPUT) {
		node->missing = ocil_xstrdup(e->msg);
		ocil_error_free(e);
		return 0;
	}
	if (r < 0)
		*err = e;
	return r;
}

/* The minor version ("3.9") of the conda python installed in prefix, from
 * conda-meta/python-<version>-<build>.json; NULL when there is none. */
static int conda_python(ocil_rootfs *fs, const char *prefix, char **minor, char **record,
			ocil_error **err)
{
	*minor = *record = NULL;
	cleanup_free char *meta = ocil_xasprintf("%s/conda-meta", prefix);
	cleanup_strv ocil_strv names = {0};
	if (ocil_rootfs_list(fs, meta, &names, err) < 0)
		return -1;
	for (size_t i = 0; i < names.n; i++) {
		const char *n = names.v[i];
		if (strncmp(n, "python-", 7) != 0 || !isdigit((unsigned char)n[7]) ||
		    !ocil_str_has_suffix(n, ".json"))
			continue;
		const char *v = n + 7;
		const char *dot = strchr(v, '.');
		if (dot == NULL)
			continue;
		size_t len = strspn(dot + 1, "0123456789");
		*minor = ocil_xstrndup(v, (size_t)(dot + 1 + len - v));
		*record = ocil_xasprintf("%s/%s", meta, n);
		return 0;
	}
	return 0;
}

/* L013 and L014 for /var/lang/bin/python3.X (name). */
static int check_python(ctx *c, ocil_rootfs *fs, const char *name, ocil_error **err)
{
	cleanup_free char *path = ocil_xasprintf("%s/%s", OCIL_LAMBDA_PYTHON_DIR, name);
	const char *minor = name + 6;
	cleanup_rootfs_node ocil_rootfs_node node = {0};
	cleanup_rootfs_node ocil_rootfs_node target = {0};
	if (lookup(fs, path, false, &node, err) < 0)
		return -1;
	if (node.path == NULL)
		return 0; /* listed, so only a race; nothing to say */
	int r = lookup(fs, path, true, &target, err);
	if (r < 0)
		return -1;
	if (r == 0) {
		add(c, R_PYTHON, OCIL_SEV_ERROR, path,
		    "python symlink target missing: -> %s (%s); the Lambda runtime cannot start",
		    node.link ? node.link : "?", target.missing ? target.missing : "not found");
		return 0;
	}
	if (target.type != OCIL_TAR_FILE) {
		add(c, R_PYTHON, OCIL_SEV_ERROR, path, "%s%s is not a regular file",
		    node.type == OCIL_TAR_SYMLINK ? "resolves to " : "",
		    node.type == OCIL_TAR_SYMLINK ? target.path : "it");
		return 0;
	}
	if ((target.mode & 0555) != 0555)
		add(c, R_PYTHON, OCIL_SEV_ERROR, path,
		    "%s is not executable by everyone (mode %04o)", target.path,
		    (unsigned)(target.mode & 07777));
	/* <prefix>/bin/pythonX.Y: the prefix it belongs to */
	char bindir[OCIL_TAR_NAME_MAX + 2], prefix[OCIL_TAR_NAME_MAX + 2];
	parent_of(target.path, bindir, sizeof(bindir));
	parent_of(bindir, prefix, sizeof(prefix));
	cleanup_free char *cminor = NULL, *record = NULL;
	if (strcmp(base_of(bindir), "bin") == 0 &&
	    conda_python(fs, prefix, &cminor, &record, err) < 0)
		return -1;
	/* the minor it runs: the conda record's, else the file name's */
	const char *tname = base_of(target.path);
	const char *runs = cminor				  ? cminor
			   : ocil_lambda_python_name(tname, NULL) ? tname + 6
								  : NULL;
	c->py_minor = ocil_pyc_minor(runs ? runs : minor);
	if (runs != NULL && strcmp(runs, minor) != 0) {
		if (cminor != NULL)
			add(c, R_CONDA, OCIL_SEV_ERROR, path,
			    "runs the python %s of the conda prefix %s (%s); the Lambda runtime "
			    "of this image is python %s: build the environment with python=%s",
			    cminor, prefix, record, minor, minor);
		else
			add(c, R_CONDA, OCIL_SEV_ERROR, path,
			    "runs %s, a python %s; the Lambda runtime of this image is python %s",
			    target.path, runs, minor);
	} else if (node.type == OCIL_TAR_SYMLINK) {
		add(c, R_PYTHON, OCIL_SEV_INFO, path, "-> %s%s%s%s", target.path,
		    cminor ? " (python " : "", cminor ? cminor : "",
		    cminor ? " of a conda prefix)" : "");
	} else {
		add(c, R_PYTHON, OCIL_SEV_INFO, path, "a regular file");
	}
	return 0;
}

/* A python identifier, as the Lambda runtime's import accepts in practice. */
static bool identifier(const char *s, size_t n)
{
	if (n == 0 || isdigit((unsigned char)s[0]))
		return false;
	for (size_t i = 0; i < n; i++)
		if (!(isalnum((unsigned char)s[i]) || s[i] == '_' || (unsigned char)s[i] >= 0x80))
			return false;
	return true;
}

/* Read a FILE node, at most MODULE_MAX bytes. *buf NULL when too large. */
static int read_node(ocil_rootfs *fs, const ocil_rootfs_node *node, char **buf, size_t *len,
		     ocil_error **err)
{
	*buf = NULL;
	*len = 0;
	if (node->size > MODULE_MAX)
		return 0;
	cleanup_tarstream ocil_tarstream *ts = NULL;
	if (ocil_rootfs_open_file(fs, node, &ts, err) < 0)
		return -1;
	cleanup_free char *b = ocil_xmalloc(node->size + 1);
	size_t n = 0;
	for (;;) {
		ssize_t r = ocil_tarstream_read(ts, b + n, node->size - n, err);
		if (r < 0)
			return -1;
		if (r == 0 || (n += (size_t)r) == node->size)
			break;
	}
	b[n] = '\0';
	*len = n;
	*buf = steal_pointer(&b);
	return 0;
}

/* Whether dir holds a compiled form of module base: base.pyc or
 * base.<tag>.so / base.so. */
static int compiled_module(ocil_rootfs *fs, const char *dir, const char *base, char **found,
			   ocil_error **err)
{
	*found = NULL;
	cleanup_strv ocil_strv names = {0};
	if (ocil_rootfs_list(fs, dir, &names, err) < 0)
		return -1;
	size_t bl = strlen(base);
	for (size_t i = 0; i < names.n; i++) {
		const char *n = names.v[i];
		if (strncmp(n, base, bl) != 0 || n[bl] != '.')
			continue;
		if (strcmp(n + bl, ".pyc") == 0 || ocil_str_has_suffix(n + bl, ".so")) {
			*found = ocil_xasprintf("%s/%s", strcmp(dir, "/") ? dir : "", n);
			return 0;
		}
	}
	return 0;
}

/* Directories python searches for the handler module: PYTHONPATH, then
 * LAMBDA_TASK_ROOT (relative PYTHONPATH entries from WorkingDir). */
static void module_dirs(const json_t *cc, ocil_strv *dirs)
{
	const char *pp = env_get(cc, "PYTHONPATH");
	const char *wd = ocil_json_opt_string(cc, "WorkingDir");
	if (wd == NULL || wd[0] != '/')
		wd = "/";
	if (pp != NULL) {
		cleanup_free char *copy = ocil_xstrdup(pp);
		char *save = NULL;
		for (char *t = strtok_r(copy, ":", &save); t; t = strtok_r(NULL, ":", &save))
			ocil_strv_push(dirs, t[0] == '/' ? ocil_xstrdup(t)
							 : ocil_xasprintf("%s/%s", wd, t));
	}
	const char *tr = env_get(cc, "LAMBDA_TASK_ROOT");
	ocil_strv_push(dirs, ocil_xstrdup(tr && tr[0] == '/' ? tr : OCIL_LAMBDA_TASK_ROOT));
}

/* What the function reads and runs: the Lambda directories, the module
 * search path, the programs of Entrypoint and Cmd. */
static void function_roots(const json_t *cc, ocil_strv *roots)
{
	for (const char *const *d = ocil_lambda_read_dirs; *d != NULL; d++)
		ocil_strv_push(roots, ocil_xstrdup(*d));
	module_dirs(cc, roots);
	const char *keys[] = {"Entrypoint", "Cmd"};
	for (size_t i = 0; i < 2; i++) {
		const char *prog =
		    json_string_value(json_array_get(json_object_get(cc, keys[i]), 0));
		if (prog != NULL && prog[0] == '/')
			ocil_strv_push(roots, ocil_xstrdup(prog));
	}
	/* normalized: no trailing slash (the root itself is everything) */
	for (size_t i = 0; i < roots->n; i++) {
		char *r = roots->v[i];
		size_t n = strlen(r);
		while (n > 1 && r[n - 1] == '/')
			r[--n] = '\0';
	}
}

static int check_handler(ctx *c, ocil_rootfs *fs, const json_t *cc, const char *handler,
			 ocil_error **err)
{
	const char *where = "config.Cmd[0]";
	const char *dot = strrchr(handler, '.');
	if (dot == NULL || dot == handler || !identifier(dot + 1, strlen(dot + 1))) {
		add(c, R_HANDLER, OCIL_SEV_ERROR, where,
		    "handler \"%.200s\" is not MODULE.FUNCTION (e.g. app.handler)", handler);
		return 0;
	}
	const char *func = dot + 1;
	/* the runtime imports module.replace("/", "."): a/b.f and a.b.f are the same */
	cleanup_free char *mpath = ocil_xstrndup(handler, (size_t)(dot - handler));
	for (char *p = mpath; *p; p++)
		if (*p == '.')
			*p = '/';
	for (const char *p = mpath, *end; *p; p = *end ? end + 1 : end) {
		end = strchrnul(p, '/');
		if (!identifier(p, (size_t)(end - p))) {
			add(c, R_HANDLER, OCIL_SEV_ERROR, where,
			    "handler \"%.200s\": module name \"%.*s\" is not a python identifier",
			    handler, (int)(dot - handler), handler);
			return 0;
		}
	}
	cleanup_strv ocil_strv dirs = {0};
	module_dirs(cc, &dirs);
	cleanup_free char *searched = ocil_xstrdup("");
	for (size_t i = 0; i < dirs.n; i++) {
		const char *d = strcmp(dirs.v[i], "/") == 0 ? "" : dirs.v[i];
		char *s = ocil_xasprintf("%s%s%s", searched, i ? ":" : "", dirs.v[i]);
		free(searched);
		searched = s;
		for (int pkg = 0; pkg < 2; pkg++) {
			cleanup_free char *file =
			    ocil_xasprintf(pkg ? "%s/%s/__init__.py" : "%s/%s.py", d, mpath);
			cleanup_rootfs_node ocil_rootfs_node node = {0};
			int r = lookup(fs, file, true, &node, err);
			if (r < 0)
				return -1;
			if (r == 0 || node.type != OCIL_TAR_FILE)
				continue;
			cleanup_free char *text = NULL;
			size_t len = 0;
			if (read_node(fs, &node, &text, &len, err) < 0)
				return -1;
			if (text == NULL)
				add(c, R_HANDLER, OCIL_SEV_WARNING, file,
				    "handler module over %zu MiB; \"%s\" not looked for",
				    MODULE_MAX >> 20, func);
			else if (!ocil_check_py_defines(text, len, func))
				add(c, R_HANDLER, OCIL_SEV_ERROR, file,
				    "handler %s: the module does not define %s at top level (no "
				    "\"def %s(\")",
				    handler, func, func);
			else
				add(c, R_HANDLER, OCIL_SEV_INFO, file, "handler %s: defines %s",
				    handler, func);
			return 0;
		}
		char dir[OCIL_TAR_NAME_MAX + 2];
		cleanup_free char *full = ocil_xasprintf("%s/%s", d, mpath);
		parent_of(full, dir, sizeof(dir));
		cleanup_free char *compiled = NULL;
		if (compiled_module(fs, dir, base_of(full), &compiled, err) < 0)
			return -1;
		if (compiled != NULL) {
			add(c, R_HANDLER, OCIL_SEV_WARNING, compiled,
			    "handler module %s is compiled; \"%s\" not looked for", handler, func);
			return 0;
		}
	}
	add(c, R_HANDLER, OCIL_SEV_ERROR, where,
	    "handler %s: no %s.py or %s/__init__.py under PYTHONPATH or LAMBDA_TASK_ROOT (%s)",
	    handler, mpath, mpath, searched);
	return 0;
}

/* Whether Cmd[0] is a handler for this Entrypoint: the base's
 * /lambda-entrypoint.sh, the runtime client run as a module, or none (the
 * function configuration then gives one, the base's as a rule). */
static bool runtime_entrypoint(const json_t *ep)
{
	if (json_array_size(ep) == 0)
		return true;
	const char *ep0 = json_string_value(json_array_get(ep, 0));
	if (ep0 != NULL && strcmp(base_of(ep0), "lambda-entrypoint.sh") == 0)
		return true;
	size_t i;
	const json_t *e;
	json_array_foreach(ep, i, e)
	{
		const char *v = json_string_value(e);
		if (v != NULL && strcmp(v, "awslambdaric") == 0)
			return true;
	}
	return false;
}

/* ocil_pyc_stale_reason's word, for a finding */
static const char *stale_why(const char *why)
{
	if (strcmp(why, "mtime") == 0)
		return "the source's mtime differs";
	if (strcmp(why, "size") == 0)
		return "the source's size differs";
	if (strcmp(why, "hash") == 0)
		return "the source's hash differs";
	if (strcmp(why, "magic") == 0)
		return "another python's magic number";
	return "a damaged header";
}

static char *kib(uint64_t n)
{
	return n >= ((uint64_t)1 << 20)	  ? ocil_xasprintf("%.1f MiB", n / 1048576.0)
	       : n >= ((uint64_t)1 << 10) ? ocil_xasprintf("%.1f KiB", n / 1024.0)
					  : ocil_xasprintf("%llu bytes", (unsigned long long)n);
}

/* L016: the bytecode the image's python reads, from every layer (their
 * facts kept beside the entry indexes). */
static int rule_bytecode(ctx *c, const char *const *paths, size_t n, ocil_rootfs *fs,
			 ocil_error **err)
{
	if (c->py_minor < 0)
		return 0;
	ocil_pyc_scan_opts so = {.cancel = c->o->cancel, .facts_dir = c->o->index_dir};
	ocil_pyc_stats st;
	if (ocil_pyc_scan_image(paths, n, fs, c->py_minor, &so, &st, err) < 0)
		return -1;
	if (st.stale == 0) {
		add(c, R_BYTECODE, OCIL_SEV_INFO, "image",
		    "%zu .pyc file%s for python 3.%d, none stale", st.pycs, st.pycs == 1 ? "" : "s",
		    c->py_minor);
	} else {
		add(c, R_BYTECODE, OCIL_SEV_WARNING, "image",
		    "%zu of %zu .pyc files for python 3.%d are stale: python compiles those "
		    "modules again at every cold start (Lambda's file system is read-only, "
		    "nothing is kept); the biggest follow",
		    st.stale, st.pycs, c->py_minor);
		for (size_t i = 0; i < st.n_top; i++) {
			cleanup_free char *size = kib(st.top[i].size);
			char q[OCIL_TAR_QUOTE_SIZE];
			add(c, R_BYTECODE, OCIL_SEV_WARNING, ocil_tar_quote(st.top[i].source, q),
			    "stale bytecode (%s): %s of source compiled at every cold start",
			    stale_why(st.top[i].why), size);
		}
	}
	ocil_pyc_stats_clear(&st);
	return 0;
}

static int rules_rootfs(ctx *c, ocil_rootfs *fs, const json_t *cc, const char *handler,
			ocil_error **err)
{
	cleanup_strv ocil_strv names = {0};
	if (ocil_rootfs_list(fs, OCIL_LAMBDA_PYTHON_DIR, &names, err) < 0)
		return -1;
	size_t pythons = 0;
	for (size_t i = 0; i < names.n; i++) {
		if (!ocil_lambda_python_name(names.v[i], NULL))
			continue;
		pythons++;
		if (check_python(c, fs, names.v[i], err) < 0)
			return -1;
	}
	if (pythons == 0) {
		add(c, R_PYTHON, OCIL_SEV_INFO, OCIL_LAMBDA_PYTHON_DIR,
		    "no python3.X: not a Lambda python image; handler and python rules skipped");
		return 0;
	}
	if (handler == NULL || handler[0] == '/')
		return 0;
	if (!runtime_entrypoint(json_object_get(cc, "Entrypoint"))) {
		add(c, R_HANDLER, OCIL_SEV_INFO, "config.Entrypoint",
		    "not the Lambda runtime's (/lambda-entrypoint.sh, awslambdaric): Cmd[0] "
		    "\"%.200s\" "
		    "not checked as a handler",
		    handler);
		return 0;
	}
	return check_handler(c, fs, cc, handler, err);
}

/* ---- the whole check ---- */

typedef struct {
	const char *const *paths;
	size_t n;
	const char *index_dir;
	ocil_cancel cancel;
	volatile int stop;
	ocil_rootfs *fs;
	ocil_error *err;
	int r;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool done;
} fs_job;

static void *fs_thread(void *p)
{
	fs_job *j = p;
	j->r = ocil_rootfs_open_indexed(j->paths, j->n, j->index_dir, &j->cancel, &j->fs, &j->err);
	pthread_mutex_lock(&j->mu);
	j->done = true;
	pthread_cond_signal(&j->cv);
	pthread_mutex_unlock(&j->mu);
	return NULL;
}

/* Wait for the merged view, passing a cancellation on. */
static void fs_join(pthread_t t, fs_job *j, const ocil_cancel *cancel)
{
	pthread_mutex_lock(&j->mu);
	while (!j->done) {
		if (cancel != NULL && cancel->flag != NULL && *cancel->flag)
			j->stop = 1;
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 100 * 1000 * 1000;
		if (ts.tv_nsec >= 1000000000) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000;
		}
		pthread_cond_timedwait(&j->cv, &j->mu, &ts);
	}
	pthread_mutex_unlock(&j->mu);
	pthread_join(t, NULL);
}

typedef struct {
	const char *served;
	size_t manifest_len;
	const ocil_manifest *m;
	const json_t *config;
	size_t config_len;
	const char *const *paths;
} image;

static int check_image(const image *img, const ocil_check_opts *o, ocil_findings *out,
		       ocil_error **err)
{
	__attribute__((cleanup(ctx_clear)))
	ctx c = {.o = o, .out = out, .start = out->n, .py_minor = -1};
	const json_t *cc = json_object_get(img->config, "config");
	rule_manifest_type(&c, img->served, true);
	rule_media_types(&c, img->m);
	rule_platform(&c, img->config);
	const char *handler = rule_entrypoint_cmd(&c, cc);
	function_roots(cc, &c.roots);

	/* the merged view in a thread of its own, while this one scans */
	fs_job job = {.paths = img->paths, .n = img->m->n_layers, .index_dir = o->index_dir};
	job.cancel.flag = &job.stop;
	pthread_mutex_init(&job.mu, NULL);
	pthread_cond_init(&job.cv, NULL);
	pthread_t t;
	bool threaded = pthread_create(&t, NULL, fs_thread, &job) == 0;
	scan s = {0};
	int r = scan_layers(&c, img->m, img->paths, &s, err);
	if (r < 0)
		job.stop = 1;
	if (threaded)
		fs_join(t, &job, o->cancel);
	else if (r == 0)
		fs_thread(&job);
	pthread_cond_destroy(&job.cv);
	pthread_mutex_destroy(&job.mu);
	uint64_t tar_bytes = s.tar_bytes;
	scan_clear(&s);
	cleanup_error ocil_error *fs_err = job.err;
	cleanup_rootfs ocil_rootfs *fs = job.fs;
	if (r < 0)
		return -1;
	if (ocil_cancel_check(o->cancel, err) < 0)
		return -1;
	rule_sizes(&c, img->m, img->manifest_len, img->config_len, tar_bytes);
	if (job.r < 0 && fs_err->code != OCIL_E_INPUT) {
		*err = steal_pointer(&fs_err);
		return -1;
	}
	if (job.r < 0)
		add(&c, R_MERGE, OCIL_SEV_ERROR, "image",
		    "%s; rules on the merged filesystem (python, handler) skipped", fs_err->msg);
	else if (rules_rootfs(&c, fs, cc, handler, err) < 0 ||
		 rule_bytecode(&c, img->paths, img->m->n_layers, fs, err) < 0)
		return -1;
	finish(&c);
	return 0;
}

/* Hash a file in place against d. */
static int verify_file(const char *path, const ocil_descriptor *d, const ocil_cancel *cancel,
		       ocil_error **err)
{
	return ocil_blob_file_verify(path, d->digest, d->size, cancel, err);
}

int ocil_check_source(ocil_source *src, const char *manifest_media_type, const ocil_check_opts *o,
		      ocil_findings *out, ocil_error **err)
{
	const ocil_manifest *m = &src->manifest;
	size_t n = m->n_layers;
	__attribute__((cleanup(ocil_tmpdir_remove))) ocil_tmpdir tmpdir = {0};
	cleanup_blobstore ocil_blobstore *tmp = NULL;
	ocil_strv paths = {0};
	int r = 0;
	for (size_t i = 0; r == 0 && i < n; i++) {
		const ocil_descriptor *d = &m->layers[i];
		if (o->blobs != NULL && ocil_blobstore_has(o->blobs, d->digest)) {
			char *p = ocil_blobstore_path(o->blobs, d->digest);
			ocil_strv_push(&paths, p);
			r = verify_file(p, d, o->cancel, err);
			if (r < 0)
				ocil_error_wrap(err, "%s", src->name);
			continue;
		}
		if (tmp == NULL) {
			if ((r = ocil_tmpdir_create(NULL, "check", &tmpdir, err)) < 0 ||
			    (r = ocil_blobstore_open(tmpdir.path, &tmp, err)) < 0)
				break;
		}
		r = ocil_source_copy_blob(src, d, tmp, o->cancel, err);
		ocil_strv_push(&paths, ocil_blobstore_path(tmp, d->digest));
	}
	if (r == 0) {
		image img = {
		    .served = manifest_media_type ? manifest_media_type : m->media_type,
		    .manifest_len = src->manifest_len,
		    .m = m,
		    .config = src->config,
		    .config_len = src->config_len,
		    .paths = (const char *const *)paths.v,
		};
		r = check_image(&img, o, out, err);
	}
	ocil_strv_clear(&paths);
	return r;
}

static bool elsewhere(const ocil_check_opts *o, const char *digest)
{
	for (size_t i = 0; o->index_dir != NULL && i < o->n_elsewhere; i++)
		if (strcmp(o->elsewhere[i], digest) == 0)
			return true;
	return false;
}

int ocil_check_blobs(ocil_blobstore *bs, const ocil_descriptor *manifest, const ocil_check_opts *o,
		     ocil_findings *out, ocil_error **err)
{
	cleanup_free char *mraw = NULL, *craw = NULL;
	size_t mlen = 0, clen = 0;
	cleanup_close int mfd = -1;
	if (manifest->size > (int64_t)OCIL_JSON_MAX)
		return ocil_error_set(err, OCIL_E_INPUT, "manifest %s: %lld bytes, over %zu",
				      manifest->digest, (long long)manifest->size, OCIL_JSON_MAX);
	if (ocil_blobstore_open_blob(bs, manifest->digest, &mfd, err) < 0 ||
	    ocil_read_fd(mfd, manifest->digest, OCIL_JSON_MAX, &mraw, &mlen, err) < 0 ||
	    ocil_verify_bytes(mraw, mlen, manifest, "manifest", err) < 0)
		return -1;
	ocil_manifest m = {0};
	cleanup_free char *mwhat = ocil_xasprintf("manifest %s", manifest->digest);
	if (ocil_manifest_parse(mraw, mlen, mwhat, manifest->media_type, &m, err) < 0)
		return -1;
	int r = 0;
	cleanup_close int cfd = -1;
	cleanup_json json_t *config = NULL;
	cleanup_free char *cwhat = ocil_xasprintf("config %s", m.config.digest);
	if (m.config.size > (int64_t)OCIL_JSON_MAX)
		r = ocil_error_set(err, OCIL_E_INPUT, "%s: %lld bytes, over %zu", cwhat,
				   (long long)m.config.size, OCIL_JSON_MAX);
	if (r == 0)
		r = ocil_blobstore_open_blob(bs, m.config.digest, &cfd, err);
	if (r == 0)
		r = ocil_read_fd(cfd, m.config.digest, OCIL_JSON_MAX, &craw, &clen, err);
	if (r == 0)
		r = ocil_verify_bytes(craw, clen, &m.config, "config", err);
	if (r == 0)
		r = ocil_json_parse(craw, clen, cwhat, &config, err);
	if (r == 0 && !json_is_object(config))
		r = ocil_error_set(err, OCIL_E_INPUT, "%s: not a JSON object", cwhat);
	ocil_strv paths = {0};
	for (size_t i = 0; r == 0 && i < m.n_layers; i++) {
		if (!ocil_blobstore_has(bs, m.layers[i].digest) &&
		    !elsewhere(o, m.layers[i].digest))
			r = ocil_error_set(err, OCIL_E_INPUT, "layer %s is not in %s",
					   m.layers[i].digest, ocil_blobstore_root(bs));
		ocil_strv_push(&paths, ocil_blobstore_path(bs, m.layers[i].digest));
	}
	if (r == 0) {
		image img = {.served = manifest->media_type,
			     .manifest_len = mlen,
			     .m = &m,
			     .config = config,
			     .config_len = clen,
			     .paths = (const char *const *)paths.v};
		r = check_image(&img, o, out, err);
	}
	ocil_strv_clear(&paths);
	ocil_manifest_clear(&m);
	return r;
}

/* ---- what a reference names, before a platform is picked ---- */

#define ANN_REF_NAME "org.opencontainers.image.ref.name"

/* oci:DIR[:TAG]: the index.json entry for the tag, and (for an index) its
 * bytes. Anything odd is left for ocil_source_open to report: *mt NULL. */
static int served_layout(const ocil_ref *ref, char **mt, char **buf, size_t *len, ocil_error **err)
{
	*mt = NULL;
	cleanup_free char *index_file = ocil_xasprintf("%s/index.json", ref->path);
	cleanup_json json_t *index = NULL;
	ocil_error *e = NULL;
	if (ocil_json_load_file(index_file, OCIL_JSON_MAX, &index, &e) < 0) {
		ocil_error_free(e);
		return 0;
	}
	const json_t *ms = json_object_get(index, "manifests"), *pick = NULL, *m;
	size_t i;
	if (ref->tag == NULL && json_array_size(ms) == 1)
		pick = json_array_get(ms, 0);
	json_array_foreach(ms, i, m)
	{
		const char *t =
		    ocil_json_opt_string(json_object_get(m, "annotations"), ANN_REF_NAME);
		if (ref->tag != NULL && pick == NULL && t != NULL && strcmp(t, ref->tag) == 0)
			pick = m;
	}
	ocil_descriptor d = {0};
	if (pick == NULL || ocil_descriptor_parse(pick, "index.json", &d, &e) < 0) {
		ocil_error_free(e);
		return 0;
	}
	*mt = ocil_xstrdup(d.media_type);
	int r = 0;
	if (ocil_media_type_is_index(d.media_type)) {
		cleanup_blobstore ocil_blobstore *bs = NULL;
		cleanup_close int fd = -1;
		cleanup_free char *what = ocil_xasprintf("%s: index", ref->input);
		r = d.size > (int64_t)OCIL_JSON_MAX
			? ocil_error_set(err, OCIL_E_INPUT, "%s %s: over %zu bytes", what, d.digest,
					 OCIL_JSON_MAX)
			: 0;
		if (r == 0)
			r = ocil_blobstore_open(ref->path, &bs, err);
		if (r == 0)
			r = ocil_blobstore_open_blob(bs, d.digest, &fd, err);
		if (r == 0)
			r = ocil_read_fd(fd, d.digest, OCIL_JSON_MAX, buf, len, err);
		if (r == 0)
			r = ocil_verify_bytes(*buf, *len, &d, what, err);
		if (r < 0)
			ocil_error_wrap(err, "%s", ref->input);
	}
	ocil_descriptor_clear(&d);
	return r;
}

/* docker://: GET what the reference names (or read it from the cache for a
 * digest we have), keep it in the cache, and pin the reference to it. */
static int served_registry(const ocil_ref *ref, const ocil_source_opts *so, ocil_check_target *t,
			   char **buf, size_t *len, ocil_error **err)
{
	cleanup_free char *dflt = so->cache_dir ? NULL : ocil_source_default_cache_dir();
	if (ocil_blobstore_open(so->cache_dir ? so->cache_dir : dflt, &t->blobs, err) < 0)
		return ocil_error_wrap(err, "blob cache");
	char digest[OCIL_DIGEST_STR_SIZE];
	cleanup_free char *content_type = NULL;
	if (ref->digest != NULL && ocil_blobstore_has(t->blobs, ref->digest)) {
		cleanup_close int fd = -1;
		if (ocil_blobstore_open_blob(t->blobs, ref->digest, &fd, err) < 0 ||
		    ocil_read_fd(fd, ref->digest, OCIL_JSON_MAX, buf, len, err) < 0)
			return -1;
		ocil_digest_buf(*buf, *len, digest);
		if (strcmp(digest, ref->digest) != 0)
			return ocil_error_set(err, OCIL_E_IO,
					      "blob cache %s: %s is corrupt (content is %s); "
					      "remove it",
					      ocil_blobstore_root(t->blobs), ref->digest, digest);
	} else {
		ocil_registry_opts ro = {.tls_verify = true, .retries = 3, .timeout_s = 600};
		if (so->registry != NULL)
			ro = *so->registry;
		ro.cancel = so->cancel;
		ocil_registry *reg = NULL;
		int r = ocil_registry_open(ref->registry, ref->repository, &ro, &reg, err);
		if (r == 0)
			r = ocil_registry_get_manifest(reg, ref->digest ? ref->digest : ref->tag,
						       buf, len, &content_type, digest, err);
		ocil_registry_free(reg);
		char stored[OCIL_DIGEST_STR_SIZE];
		if (r < 0 || ocil_blobstore_put(t->blobs, *buf, *len, stored, err) < 0)
			return ocil_error_wrap(err, "%s", ref->input);
	}
	/* as the source will see it: the document's mediaType, else the
	 * Content-Type, else its shape */
	cleanup_json json_t *doc = NULL;
	ocil_error *e = NULL;
	if (ocil_json_parse(*buf, *len, ref->input, &doc, &e) == 0) {
		const char *mt = ocil_manifest_detect_type(doc, content_type);
		t->media_type = mt ? ocil_xstrdup(mt) : NULL;
	}
	ocil_error_free(e);
	ocil_ref *p = ocil_xcalloc(1, sizeof(*p));
	p->transport = ref->transport;
	p->input = ocil_xstrdup(ref->input);
	p->registry = ocil_xstrdup(ref->registry);
	p->repository = ocil_xstrdup(ref->repository);
	p->tag = ref->tag ? ocil_xstrdup(ref->tag) : NULL;
	p->digest = ocil_xstrdup(digest);
	t->pinned = p;
	return 0;
}

/* From an index, the platform to check: o->platform, else linux/amd64, else
 * linux/arm64. Returns 1 and fills t->platform, or 0 after adding findings. */
static int pick_platform(const char *buf, size_t len, const ocil_ref *ref, const ocil_check_opts *o,
			 ocil_check_target *t, ocil_findings *out, ocil_error **err)
{
	static const char *const dflt[] = {"linux/amd64", "linux/arm64"};
	cleanup_error ocil_error *e = NULL;
	for (size_t i = 0; i < (o->platform ? 1 : 2); i++) {
		ocil_platform p = {0};
		if (o->platform == NULL && ocil_platform_parse(dflt[i], &p, err) < 0)
			return -1;
		const ocil_platform *want = o->platform ? o->platform : &p;
		ocil_descriptor d = {0};
		ocil_error_free(steal_pointer(&e));
		int r = ocil_index_select(buf, len, ref->input, want, &d, &e);
		ocil_descriptor_clear(&d);
		if (r == 0) {
			if (o->platform == NULL) {
				t->platform = p;
			} else {
				t->platform.os = ocil_xstrdup(o->platform->os);
				t->platform.arch = ocil_xstrdup(o->platform->arch);
				t->platform.variant = o->platform->variant
							  ? ocil_xstrdup(o->platform->variant)
							  : NULL;
			}
			return 1;
		}
		ocil_platform_clear(&p);
		if (e->code != OCIL_E_INPUT) {
			*err = steal_pointer(&e);
			return -1;
		}
	}
	ctx c = {.o = o, .out = out, .start = out->n, .py_minor = -1};
	rule_manifest_type(&c, t->media_type, false);
	const char *avail = e != NULL ? strstr(e->msg, "(available:") : NULL;
	cleanup_free char *want = o->platform ? ocil_platform_format(o->platform) : NULL;
	add(&c, R_PLATFORM, OCIL_SEV_ERROR, "manifest", "the index has no %s image %s",
	    want ? want : "linux/amd64 or linux/arm64", avail ? avail : "");
	finish(&c);
	return 0;
}

int ocil_check_target_open(const ocil_ref *ref, const ocil_source_opts *so,
			   const ocil_check_opts *o, ocil_check_target *t, ocil_findings *out,
			   ocil_error **err)
{
	memset(t, 0, sizeof(*t));
	cleanup_free char *buf = NULL;
	size_t len = 0;
	int r = 0;
	switch (ref->transport) {
	case OCIL_REF_OCI:
		r = served_layout(ref, &t->media_type, &buf, &len, err);
		break;
	case OCIL_REF_DOCKER:
		r = served_registry(ref, so, t, &buf, &len, err);
		break;
	case OCIL_REF_DOCKER_ARCHIVE:
		t->archive = true;
		t->media_type = ocil_xstrdup(OCIL_MT_DOCKER_MANIFEST);
		break;
	}
	if (r < 0)
		return -1;
	bool index = ocil_media_type_is_index(t->media_type);
	if (index) {
		r = pick_platform(buf, len, ref, o, t, out, err);
		if (r <= 0)
			return r;
	}
	ocil_source_opts sopts = *so;
	/* an image manifest: no platform, so that a wrong one is a finding (L003) */
	sopts.platform = index ? &t->platform : NULL;
	if (ocil_source_open(t->pinned ? t->pinned : ref, &sopts, &t->src, err) < 0)
		return -1;
	if (t->media_type == NULL)
		t->media_type = ocil_xstrdup(t->src->manifest.media_type);
	if (ref->transport == OCIL_REF_OCI && ocil_blobstore_open(ref->path, &t->blobs, err) < 0)
		return -1;
	return 0;
}

void ocil_check_target_clear(ocil_check_target *t)
{
	ocil_source_free(t->src);
	free(t->media_type);
	ocil_blobstore_free(t->blobs);
	if (t->pinned != NULL) {
		ocil_ref_clear(t->pinned);
		free(t->pinned);
	}
	ocil_platform_clear(&t->platform);
	memset(t, 0, sizeof(*t));
}

/* ---- the static look at python text ---- */

static bool ident_char(char ch)
{
	return isalnum((unsigned char)ch) || ch == '_' || (unsigned char)ch >= 0x80;
}

/* At p: the word w followed by a non-identifier character. */
static const char *word(const char *p, const char *end, const char *w)
{
	size_t n = strlen(w);
	if ((size_t)(end - p) < n || memcmp(p, w, n) != 0)
		return NULL;
	if (p + n < end && ident_char(p[n]))
		return NULL;
	return p + n;
}

static const char *skip_ws(const char *p, const char *end)
{
	while (p < end && (*p == ' ' || *p == '\t'))
		p++;
	return p;
}

/* Whether the names bound by an import list (after "import") include name:
 * "a, b as c, (d,\n e)". */
static bool import_binds(const char *p, const char *end, const char *name, bool from)
{
	size_t nl = strlen(name);
	bool paren = false;
	while (p < end) {
		p = skip_ws(p, end);
		if (p < end && *p == '(') {
			paren = true;
			p++;
			continue;
		}
		if (p < end && (*p == '\n' || *p == '\\')) {
			if (!paren && *p == '\n')
				return false;
			p++;
			continue;
		}
		if (p < end && (*p == ')' || *p == '#'))
			return false;
		const char *s = p;
		while (p < end && (ident_char(*p) || *p == '.'))
			p++;
		if (p == s) {
			if (p < end && *p == ',') {
				p++;
				continue;
			}
			return false;
		}
		const char *bound = from ? s : NULL;
		size_t blen = from ? (size_t)(p - s) : 0;
		const char *q = skip_ws(p, end);
		const char *after_as = word(q, end, "as");
		if (after_as != NULL) {
			q = skip_ws(after_as, end);
			bound = q;
			while (q < end && ident_char(*q))
				q++;
			blen = (size_t)(q - bound);
			p = q;
		}
		if (bound != NULL && blen == nl && memcmp(bound, name, nl) == 0)
			return true;
		p = skip_ws(p, end);
		if (p < end && *p == ',')
			p++;
	}
	return false;
}

static bool line_defines(const char *p, const char *end, const char *name)
{
	const char *q;
	if ((q = word(p, end, "async")) != NULL)
		p = skip_ws(q, end);
	bool def = (q = word(p, end, "def")) != NULL;
	if (!def)
		def = (q = word(p, end, "class")) != NULL;
	if (def) {
		q = skip_ws(q, end);
		if ((q = word(q, end, name)) == NULL)
			return false;
		q = skip_ws(q, end);
		return q < end && (*q == '(' || *q == ':');
	}
	if ((q = word(p, end, "from")) != NULL) {
		const char *imp = q;
		while (imp < end && *imp != '\n' && word(imp, end, "import") == NULL)
			imp++;
		if (imp >= end || *imp == '\n')
			return false;
		return import_binds(imp + 6, end, name, true);
	}
	if ((q = word(p, end, "import")) != NULL)
		return import_binds(q, end, name, false);
	if ((q = word(p, end, name)) != NULL) {
		q = skip_ws(q, end);
		/* "name = ...", "name: T = ...", not "name == ..." */
		return q < end && ((*q == '=' && (q + 1 >= end || q[1] != '=')) || *q == ':');
	}
	return false;
}

bool ocil_check_py_defines(const char *text, size_t len, const char *name)
{
	const char *p = text, *end = text + len;
	char quote = 0; /* inside a triple-quoted string: its quote character */
	while (p < end) {
		const char *eol = memchr(p, '\n', (size_t)(end - p));
		if (eol == NULL)
			eol = end;
		if (quote == 0 && p < eol && ident_char(*p) && line_defines(p, end, name))
			return true;
		/* triple quotes opened or closed on this line (outside comments,
		 * roughly: a '#' before any quote ends the scan) */
		for (const char *s = p; s + 2 < eol + 1 && s < eol; s++) {
			if (quote == 0 && *s == '#')
				break;
			if ((*s == '"' || *s == '\'') && s + 2 < eol && s[1] == *s && s[2] == *s) {
				if (quote == 0)
					quote = *s;
				else if (quote == *s)
					quote = 0;
				s += 2;
			} else if (quote == 0 && (*s == '"' || *s == '\'')) {
				/* a one-line string: skip to its end */
				char qc = *s;
				for (s++; s < eol && *s != qc; s++)
					if (*s == '\\')
						s++;
			}
		}
		p = eol + 1;
	}
	return false;
}

int ocil_check_ref(const ocil_check_ref_opts *o, ocil_check_report *c, ocil_error **err)
{
	memset(c, 0, sizeof(*c));
	if (o->platform != NULL && ocil_platform_parse(o->platform, &c->platform, err) < 0)
		return -1;
	if (ocil_ref_parse(o->image, &c->ref, err) < 0)
		return -1;
	ocil_source_opts so = {
	    .cancel = o->cancel, .registry = o->registry, .cache_dir = o->cache_dir};
	ocil_check_opts co = {.platform = o->platform ? &c->platform : NULL, .cancel = o->cancel};
	if (ocil_check_target_open(&c->ref, &so, &co, &c->target, &c->findings, err) < 0)
		return -1;
	if (c->target.src == NULL)
		return 0;
	co.blobs = c->target.blobs;
	co.layers_compressed_on_push = c->target.archive;
	if (ocil_check_source(c->target.src, c->target.media_type, &co, &c->findings, err) < 0)
		return ocil_error_wrap(err, "%s", o->image);
	return 0;
}

void ocil_check_report_clear(ocil_check_report *c)
{
	ocil_check_target_clear(&c->target);
	ocil_findings_clear(&c->findings);
	ocil_platform_clear(&c->platform);
	ocil_ref_clear(&c->ref);
}

char *ocil_check_image_platform(const ocil_source *src)
{
	if (src == NULL)
		return NULL;
	const char *os = ocil_json_opt_string(src->config, "os");
	const char *arch = ocil_json_opt_string(src->config, "architecture");
	const char *variant = ocil_json_opt_string(src->config, "variant");
	if (os == NULL || arch == NULL)
		return NULL;
	return ocil_xasprintf("%s/%s%s%s", os, arch, variant ? "/" : "", variant ? variant : "");
}

json_t *ocil_check_report_json(const char *input, const ocil_check_target *t,
			       const ocil_findings *f)
{
	const ocil_source *src = t->src;
	cleanup_free char *plat = ocil_check_image_platform(src);
	json_t *doc = json_object();
	json_object_set_new(doc, "image", json_string(input));
	json_object_set_new(doc, "media_type",
			    t->media_type ? json_string(t->media_type) : json_null());
	json_object_set_new(doc, "digest", src ? json_string(src->manifest_digest) : json_null());
	json_object_set_new(doc, "platform", plat ? json_string(plat) : json_null());
	json_t *arr = json_array();
	for (size_t i = 0; i < f->n; i++)
		json_array_append_new(arr,
				      json_pack("{s:s, s:s, s:s, s:s}", "rule", f->v[i].rule,
						"severity", ocil_severity_name(f->v[i].sev),
						"where", f->v[i].where, "message", f->v[i].msg));
	json_object_set_new(doc, "findings", arr);
	size_t ne = ocil_findings_count(f, OCIL_SEV_ERROR);
	json_object_set_new(doc, "summary",
			    json_pack("{s:I, s:I, s:I, s:b}", "errors", (json_int_t)ne, "warnings",
				      (json_int_t)ocil_findings_count(f, OCIL_SEV_WARNING), "infos",
				      (json_int_t)ocil_findings_count(f, OCIL_SEV_INFO), "passed",
				      ne == 0));
	return doc;
}
