#include "layers/condalock.h"

#include <ctype.h>
#include <string.h>
#include <yaml.h>

#include "base/util.h"
#include "registry/http.h"

/* Offending entries named in one error, at most. */
#define MAX_NAMED 20

static void pkg_clear(ocil_condalock_pkg *p)
{
	free(p->url);
	free(p->public_url);
	free(p->fn);
	free(p->channel);
	free(p->subdir);
	free(p->md5);
	free(p->sha256);
	memset(p, 0, sizeof(*p));
}

void ocil_condalock_clear(ocil_condalock *l)
{
	if (l == NULL)
		return;
	for (size_t i = 0; i < l->n_pkgs; i++)
		pkg_clear(&l->pkgs[i]);
	for (size_t i = 0; i < l->n_wheels; i++)
		pkg_clear(&l->wheels[i]);
	free(l->pkgs);
	free(l->wheels);
	memset(l, 0, sizeof(*l));
}

static bool is_hex(const char *s, size_t n)
{
	if (strlen(s) != n)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!isxdigit((unsigned char)s[i]))
			return false;
	return true;
}

static char *lower(char *s)
{
	for (char *c = s; *c; c++)
		*c = (char)tolower((unsigned char)*c);
	return s;
}

static int set_hash(const char *path, unsigned line, char **slot, const char *hex, size_t n,
		    const char *kind, ocil_error **err)
{
	if (!is_hex(hex, n))
		return ocil_error_set(err, OCIL_E_INPUT, "%s:%u: %s is not %zu hex digits", path,
				      line, kind, n);
	free(*slot);
	*slot = lower(ocil_xstrdup(hex));
	return 0;
}

/* url -> fn, subdir, channel. Wheels keep only fn. */
static int split_url(const char *path, ocil_condalock_pkg *p, bool wheel, ocil_error **err)
{
	const char *u = p->url;
	const char *slash = strrchr(u, '/');
	const char *fn = slash ? slash + 1 : u;
	bool ok = wheel
		      ? ocil_str_has_suffix(fn, ".whl")
		      : (ocil_str_has_suffix(fn, ".conda") || ocil_str_has_suffix(fn, ".tar.bz2"));
	const char *sd = NULL;
	if (ok && !wheel) {
		sd = slash;
		while (sd != NULL && sd > u && sd[-1] != '/')
			sd--;
		ok = sd != NULL && sd > u + 1 && sd < slash;
	}
	if (!ok || fn[0] == '\0' || fn[0] == '.') {
		cleanup_free char *shown = ocil_url_redact(u);
		return ocil_error_set(err, OCIL_E_INPUT,
				      "%s:%u: \"%.300s\" is not a %s URL (<channel>/<subdir>/%s)",
				      path, p->line, shown, wheel ? "wheel" : "conda package",
				      wheel ? "<name>.whl" : "<name>.conda or .tar.bz2");
	}
	p->fn = ocil_xstrdup(fn);
	if (!wheel) {
		p->subdir = ocil_xstrndup(sd, (size_t)(slash - sd));
	}
	if (wheel) {
		p->public_url = ocil_url_public(u);
		return 0;
	}
	/* credentials and tokens belong to the channel part only */
	cleanup_free char *channel = ocil_xstrndup(u, (size_t)(sd - 1 - u));
	p->channel = ocil_url_public(channel);
	p->public_url = ocil_xasprintf("%s%s", p->channel, sd - 1);
	return 0;
}

static void push(ocil_condalock_pkg **v, size_t *n, ocil_condalock_pkg *p)
{
	*v = ocil_xrealloc(*v, (*n + 1) * sizeof(**v));
	(*v)[(*n)++] = *p;
	memset(p, 0, sizeof(*p));
}

/* ---- explicit ---- */

/* "URL#md5" or "URL#sha256:hex" */
static int explicit_line(const char *path, unsigned line, char *s, ocil_condalock *l,
			 ocil_error **err)
{
	ocil_condalock_pkg p = {.line = line};
	char *hash = strrchr(s, '#');
	int r = 0;
	if (hash == NULL) {
		cleanup_free char *shown = ocil_url_redact(s);
		r = ocil_error_set(err, OCIL_E_INPUT,
				   "%s:%u: %.300s has no #md5 or #sha256:HEX (write the lock with "
				   "'conda list --explicit --md5')",
				   path, line, shown);
	}
	if (r == 0) {
		*hash++ = '\0';
		p.url = ocil_xstrdup(s);
		if (ocil_str_has_prefix(hash, "sha256:"))
			r = set_hash(path, line, &p.sha256, hash + 7, 64, "sha256", err);
		else
			r = set_hash(path, line, &p.md5, hash, 32, "md5", err);
	}
	if (r == 0)
		r = split_url(path, &p, false, err);
	if (r == 0 && l->n_pkgs >= OCIL_CONDALOCK_MAX_PACKAGES)
		r = ocil_error_set(err, OCIL_E_INPUT, "%s: more than %d packages", path,
				   OCIL_CONDALOCK_MAX_PACKAGES);
	if (r == 0)
		push(&l->pkgs, &l->n_pkgs, &p);
	pkg_clear(&p);
	return r;
}

static int read_explicit(const char *path, char *buf, ocil_condalock *l, ocil_error **err)
{
	bool seen = false;
	unsigned line = 0;
	for (char *s = buf, *next; s != NULL; s = next) {
		line++;
		next = strchr(s, '\n');
		if (next != NULL)
			*next++ = '\0';
		size_t n = strlen(s);
		while (n > 0 && isspace((unsigned char)s[n - 1]))
			s[--n] = '\0';
		while (isspace((unsigned char)*s))
			s++;
		if (s[0] == '\0' || s[0] == '#')
			continue;
		if (strcmp(s, "@EXPLICIT") == 0) {
			seen = true;
			continue;
		}
		if (!seen)
			return ocil_error_set(err, OCIL_E_INPUT,
					      "%s:%u: package line before the @EXPLICIT line", path,
					      line);
		if (explicit_line(path, line, s, l, err) < 0)
			return -1;
	}
	return 0;
}

/* ---- conda-lock.yml ---- */

static yaml_node_t *map_get(yaml_document_t *d, yaml_node_t *map, const char *key)
{
	if (map == NULL || map->type != YAML_MAPPING_NODE)
		return NULL;
	for (yaml_node_pair_t *pr = map->data.mapping.pairs.start; pr < map->data.mapping.pairs.top;
	     pr++) {
		yaml_node_t *k = yaml_document_get_node(d, pr->key);
		if (k != NULL && k->type == YAML_SCALAR_NODE &&
		    strcmp((const char *)k->data.scalar.value, key) == 0)
			return yaml_document_get_node(d, pr->value);
	}
	return NULL;
}

static const char *map_str(yaml_document_t *d, yaml_node_t *map, const char *key)
{
	yaml_node_t *v = map_get(d, map, key);
	if (v == NULL || v->type != YAML_SCALAR_NODE)
		return NULL;
	return (const char *)v->data.scalar.value;
}

static int yaml_entry(const char *path, yaml_document_t *d, yaml_node_t *e, const char *subdir,
		      ocil_condalock *l, ocil_error **err)
{
	unsigned line = (unsigned)e->start_mark.line + 1;
	if (e->type != YAML_MAPPING_NODE)
		return ocil_error_set(err, OCIL_E_INPUT, "%s:%u: a package entry is not a mapping",
				      path, line);
	const char *platform = map_str(d, e, "platform");
	const char *manager = map_str(d, e, "manager");
	const char *url = map_str(d, e, "url");
	if (platform == NULL || manager == NULL || url == NULL)
		return ocil_error_set(err, OCIL_E_INPUT,
				      "%s:%u: a package entry needs platform, manager and url",
				      path, line);
	if (strcmp(platform, subdir) != 0)
		return 0;
	bool wheel = strcmp(manager, "pip") == 0;
	if (!wheel && strcmp(manager, "conda") != 0)
		return ocil_error_set(err, OCIL_E_INPUT, "%s:%u: unknown manager \"%.100s\"", path,
				      line, manager);
	yaml_node_t *hash = map_get(d, e, "hash");
	const char *md5 = map_str(d, hash, "md5"), *sha = map_str(d, hash, "sha256");
	ocil_condalock_pkg p = {.line = line, .url = ocil_xstrdup(url)};
	int r = 0;
	if (md5 == NULL && sha == NULL) {
		cleanup_free char *shown = ocil_url_redact(url);
		r = ocil_error_set(err, OCIL_E_INPUT,
				   "%s:%u: %.300s has no hash.md5 or hash.sha256", path, line,
				   shown);
	}
	if (r == 0 && md5 != NULL)
		r = set_hash(path, line, &p.md5, md5, 32, "md5", err);
	if (r == 0 && sha != NULL)
		r = set_hash(path, line, &p.sha256, sha, 64, "sha256", err);
	if (r == 0)
		r = split_url(path, &p, wheel, err);
	if (r == 0 && l->n_pkgs + l->n_wheels >= OCIL_CONDALOCK_MAX_PACKAGES)
		r = ocil_error_set(err, OCIL_E_INPUT, "%s: more than %d packages", path,
				   OCIL_CONDALOCK_MAX_PACKAGES);
	if (r == 0 && wheel)
		push(&l->wheels, &l->n_wheels, &p);
	else if (r == 0)
		push(&l->pkgs, &l->n_pkgs, &p);
	pkg_clear(&p);
	return r;
}

static int read_yaml(const char *path, const char *buf, size_t len, const char *subdir,
		     ocil_condalock *l, ocil_error **err)
{
	yaml_parser_t parser;
	yaml_document_t doc;
	if (!yaml_parser_initialize(&parser))
		return ocil_error_set(err, OCIL_E_IO, "%s: out of memory", path);
	yaml_parser_set_input_string(&parser, (const unsigned char *)buf, len);
	if (!yaml_parser_load(&parser, &doc)) {
		int r = ocil_error_set(
		    err, OCIL_E_INPUT, "%s:%zu: not an @EXPLICIT lock nor YAML: %s", path,
		    parser.problem_mark.line + 1, parser.problem ? parser.problem : "parse error");
		yaml_parser_delete(&parser);
		return r;
	}
	yaml_parser_delete(&parser);
	l->yaml = true;
	yaml_node_t *root = yaml_document_get_root_node(&doc);
	yaml_node_t *pk = map_get(&doc, root, "package");
	int r = 0;
	if (pk == NULL || pk->type != YAML_SEQUENCE_NODE)
		r = ocil_error_set(err, OCIL_E_INPUT,
				   "%s: neither an @EXPLICIT lock nor a conda-lock.yml (no "
				   "\"package\" list)",
				   path);
	for (yaml_node_item_t *it = pk && r == 0 ? pk->data.sequence.items.start : NULL;
	     it != NULL && it < pk->data.sequence.items.top && r == 0; it++)
		r = yaml_entry(path, &doc, yaml_document_get_node(&doc, *it), subdir, l, err);
	yaml_document_delete(&doc);
	return r;
}

/* ---- both ---- */

static bool has_explicit_line(const char *buf)
{
	for (const char *s = buf; (s = strstr(s, "@EXPLICIT")) != NULL; s++)
		if ((s == buf || s[-1] == '\n') && (s[9] == '\0' || isspace((unsigned char)s[9])))
			return true;
	return false;
}

static int check_subdirs(const char *path, const char *subdir, const ocil_condalock *l,
			 ocil_error **err)
{
	cleanup_free char *named = ocil_xstrdup("");
	size_t bad = 0;
	for (size_t i = 0; i < l->n_pkgs; i++) {
		const ocil_condalock_pkg *p = &l->pkgs[i];
		if (strcmp(p->subdir, subdir) == 0 || strcmp(p->subdir, "noarch") == 0)
			continue;
		if (bad++ < MAX_NAMED) {
			char *n = ocil_xasprintf("%s%s%s/%s", named, named[0] ? ", " : "",
						 p->subdir, p->fn);
			free(named);
			named = n;
		}
	}
	if (bad == 0)
		return 0;
	return ocil_error_set(err, OCIL_E_INPUT,
			      "%s lists %zu package%s for another platform than %s: %s%s (make "
			      "the lock for %s)",
			      path, bad, bad == 1 ? "" : "s", subdir, named,
			      bad > MAX_NAMED ? ", ..." : "", subdir);
}

static int read_lock(const char *path, const char *subdir, ocil_condalock *l, ocil_error **err)
{
	cleanup_free char *buf = NULL;
	size_t len = 0;
	if (ocil_read_file(path, OCIL_CONDALOCK_MAX_SIZE, &buf, &len, err) < 0)
		return ocil_error_wrap(err, "conda lock");
	if (memchr(buf, '\0', len) != NULL)
		return ocil_error_set(err, OCIL_E_INPUT, "%s: not a text file", path);
	int r = has_explicit_line(buf) ? read_explicit(path, buf, l, err)
				       : read_yaml(path, buf, len, subdir, l, err);
	if (r < 0)
		return -1;
	if (l->n_pkgs == 0)
		return ocil_error_set(err, OCIL_E_INPUT, "%s lists no conda packages%s%s", path,
				      l->yaml ? " for " : "", l->yaml ? subdir : "");
	return check_subdirs(path, subdir, l, err);
}

int ocil_condalock_read(const char *path, const char *subdir, ocil_condalock *out, ocil_error **err)
{
	memset(out, 0, sizeof(*out));
	if (read_lock(path, subdir, out, err) < 0) {
		ocil_condalock_clear(out);
		return -1;
	}
	return 0;
}
