/* ocilambda inspect: what an image holds, before it is deployed: config,
 * layers and what made them, the python Lambda will start and the conda
 * packages behind it; --json for scripts, --sbom for security teams. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/json.h"
#include "cli/cmd.h"
#include "lambda/inspect.h"
#include "lambda/sbom.h"
#include "registry/registry.h"
#include "transport/source.h"

enum {
	OPT_JSON = 256,
	OPT_SBOM,
	OPT_PLATFORM,
};

static const ocil_option options[] = {
    {"json", OPT_JSON, NULL, "print the description as JSON (keys in 'Output' below)"},
    {"sbom", OPT_SBOM, "FILE", "also write an SPDX 2.3 JSON SBOM of the conda packages to FILE"},
    {"platform", OPT_PLATFORM, "OS/ARCH",
     "which image of a multi-platform index, and the platform expected (linux/amd64)"},
    {"quiet", OCIL_OPT_QUIET, NULL, "no progress on stderr"},
    {"progress", OCIL_OPT_PROGRESS, NULL,
     "print progress on stderr even when it is not a terminal or with --json"},
    OCIL_REGISTRY_OPTIONS,
    {0},
};

typedef struct {
	const char *sbom, *platform;
	bool json, quiet, progress;
	ocil_registry_opts registry;
	ocil_cmd_registry reg;
} opts;

static int on_opt(void *data, int key, const char *arg, ocil_error **err)
{
	opts *o = data;
	int handled = ocil_cmd_shared_opt(&o->reg, &o->quiet, &o->progress, key, arg, err);
	if (handled != 0)
		return handled < 0 ? -1 : 0;
	switch (key) {
	case OPT_JSON:
		o->json = true;
		break;
	case OPT_SBOM:
		o->sbom = arg;
		break;
	case OPT_PLATFORM:
		o->platform = arg;
		break;
	}
	return 0;
}

/* ---- text output ---- */

/* Strings come from the image: control bytes are shown escaped, so an
 * image cannot drive the terminal. */
static void put_safe(const char *s, size_t max)
{
	size_t n = strlen(s);
	size_t cut = n;
	if (max > 0 && n > max) {
		cut = max;
		/* not inside a UTF-8 sequence */
		while (cut > 0 && ((unsigned char)s[cut] & 0xc0) == 0x80)
			cut--;
	}
	for (size_t i = 0; i < cut; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c < 0x20 || c == 0x7f)
			printf("\\x%02x", c);
		else
			putchar(c);
	}
	if (cut < n)
		fputs("...", stdout);
}

static const char *str(const json_t *obj, const char *key)
{
	return ocil_json_opt_string(obj, key);
}

/* obj[key], or "?" when it is not a string. */
static const char *str_q(const json_t *obj, const char *key)
{
	const char *s = ocil_json_opt_string(obj, key);
	return s ? s : "?";
}

static void label(const char *name)
{
	printf("%-12s ", name);
}

/* A JSON array of strings in exec form, as a Dockerfile would write it. */
static void print_argv(const char *name, const json_t *a)
{
	label(name);
	if (!json_is_array(a)) {
		puts("(none)");
		return;
	}
	cleanup_free char *s = json_dumps(a, JSON_COMPACT | JSON_ENSURE_ASCII);
	put_safe(s ? s : "?", 0);
	putchar('\n');
}

static void print_layers(const json_t *doc)
{
	const json_t *layers = json_object_get(doc, "layers");
	char size[32];
	ocil_cmd_human_size(json_integer_value(json_object_get(doc, "layersSize")), size,
			    sizeof(size));
	label("Layers:");
	printf("%zu, %s as stored\n", json_array_size(layers), size);
	size_t i;
	const json_t *l;
	json_array_foreach(layers, i, l)
	{
		ocil_cmd_human_size(json_integer_value(json_object_get(l, "size")), size,
				    sizeof(size));
		printf("  %-3zu %s %10s  ", i, str_q(l, "digest"), size);
		const char *by = str(l, "createdBy");
		put_safe(by ? by : "?", 100);
		putchar('\n');
	}
}

static void print_pythons(const json_t *pythons)
{
	label("Python:");
	if (json_array_size(pythons) == 0)
		puts("(no /var/lang/bin/python3.N)");
	size_t i;
	const json_t *p;
	json_array_foreach(pythons, i, p)
	{
		if (i > 0)
			label("");
		fputs(str_q(p, "path"), stdout);
		const char *link = str(p, "link"), *target = str(p, "target");
		if (link != NULL) {
			fputs(" -> ", stdout);
			put_safe(link, 0);
		}
		if (target != NULL && link == NULL && strcmp(target, str_q(p, "path")) == 0) {
			fputs(" (regular file)", stdout);
		} else if (target != NULL && (link == NULL || strcmp(link, target) != 0)) {
			fputs(" (", stdout);
			put_safe(target, 0);
			putchar(')');
		}
		if (target == NULL) {
			fputs(" (broken: ", stdout);
			put_safe(str_q(p, "missing"), 200);
			putchar(')');
		}
		putchar('\n');
	}
}

static void print_bytecode(const json_t *b)
{
	label("Bytecode:");
	if (!json_is_object(b)) {
		puts("(no python)");
		return;
	}
	json_int_t pycs = json_integer_value(json_object_get(b, "pycs"));
	json_int_t stale = json_integer_value(json_object_get(b, "stale"));
	printf("%lld .pyc file%s for python %s, %lld stale%s\n", (long long)pycs,
	       pycs == 1 ? "" : "s", str_q(b, "python"), (long long)stale,
	       stale > 0 ? " (compiled again at every cold start)" : "");
	size_t i;
	const json_t *x;
	json_array_foreach(json_object_get(b, "biggestStale"), i, x)
	{
		char size[32];
		ocil_cmd_human_size(json_integer_value(json_object_get(x, "size")), size,
				    sizeof(size));
		label("");
		put_safe(str_q(x, "source"), 0);
		printf(" (%s, %s)\n", size, str_q(x, "why"));
	}
}

static void print_conda(const json_t *conda)
{
	label("Conda:");
	if (!json_is_object(conda)) {
		puts("(no conda prefix found)");
		return;
	}
	const json_t *pk = json_object_get(conda, "packages");
	put_safe(str_q(conda, "prefix"), 0);
	printf(", %zu package%s\n", json_array_size(pk), json_array_size(pk) == 1 ? "" : "s");
	/* Column widths from the data, capped so one odd name cannot push
	 * everything off screen. */
	int w[3] = {4, 7, 5};
	static const char *const keys[3] = {"name", "version", "build"};
	size_t i;
	const json_t *p;
	json_array_foreach(pk, i, p)
	{
		for (int k = 0; k < 3; k++) {
			int len = (int)strlen(str_q(p, keys[k]));
			if (len > w[k])
				w[k] = len < 40 ? len : 40;
		}
	}
	if (json_array_size(pk) > 0)
		printf("  %-*s %-*s %-*s %s\n", w[0], "NAME", w[1], "VERSION", w[2], "BUILD",
		       "CHANNEL");
	json_array_foreach(pk, i, p)
	{
		fputs("  ", stdout);
		for (int k = 0; k < 3; k++) {
			const char *s = str_q(p, keys[k]);
			put_safe(s, 40);
			printf("%*s", w[k] - (int)(strlen(s) < 40 ? strlen(s) : 40) + 1, "");
		}
		const char *ch = str(p, "channel");
		put_safe(ch ? ch : "-", 100);
		putchar('\n');
	}
}

static void print_text(const json_t *doc)
{
	label("Image:");
	put_safe(str_q(doc, "ref"), 0);
	putchar('\n');
	const json_t *m = json_object_get(doc, "manifest");
	label("Manifest:");
	printf("%s (", str_q(m, "digest"));
	put_safe(str_q(m, "mediaType"), 100);
	printf(", %lld bytes)\n", (long long)json_integer_value(json_object_get(m, "size")));
	label("Config:");
	printf("%s\n", str_q(json_object_get(doc, "config"), "digest"));
	const json_t *pl = json_object_get(doc, "platform");
	label("Platform:");
	put_safe(str_q(pl, "os"), 40);
	putchar('/');
	put_safe(str_q(pl, "architecture"), 40);
	if (str(pl, "variant") != NULL) {
		putchar('/');
		put_safe(str(pl, "variant"), 40);
	}
	putchar('\n');
	label("Created:");
	put_safe(str(doc, "created") ? str(doc, "created") : "(not recorded)", 100);
	putchar('\n');
	print_layers(doc);
	const json_t *env = json_object_get(doc, "env");
	label("Env:");
	if (json_array_size(env) == 0)
		puts("(none)");
	size_t i;
	const json_t *e;
	json_array_foreach(env, i, e)
	{
		if (i > 0)
			label("");
		put_safe(json_string_value(e), 0);
		putchar('\n');
	}
	print_argv("Entrypoint:", json_object_get(doc, "entrypoint"));
	print_argv("Cmd:", json_object_get(doc, "cmd"));
	label("WorkingDir:");
	put_safe(str(doc, "workingDir") ? str(doc, "workingDir") : "(none)", 0);
	putchar('\n');
	if (str(doc, "user") != NULL) {
		label("User:");
		put_safe(str(doc, "user"), 0);
		putchar('\n');
	}
	print_pythons(json_object_get(doc, "pythons"));
	print_bytecode(json_object_get(doc, "bytecode"));
	print_conda(json_object_get(doc, "conda"));
}

/* ---- the command ---- */

static int do_inspect(const opts *o, const char *image, const ocil_cancel *cancel, ocil_error **err)
{
	ocil_registry_opts ro = o->registry;
	ocil_cmd_progress prog = {0};
	bool progress = ocil_cmd_progress_on(o->quiet || (o->json && !o->progress), o->progress);
	ocil_cmd_registry_callbacks(&ro, progress ? &prog : NULL);
	ocil_inspect_ref_opts io = {.image = image,
				    .platform = o->platform,
				    .sbom = o->sbom,
				    .registry = &ro,
				    .cache_dir = o->reg.cache_dir,
				    .cancel = cancel};
	__attribute__((cleanup(ocil_inspect_result_clear))) ocil_inspect_result res = {0};
	if (ocil_inspect_ref(&io, &res, err) < 0)
		return -1;
	if (o->json) {
		cleanup_free char *s =
		    json_dumps(res.doc, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_ENSURE_ASCII);
		if (s == NULL)
			return ocil_error_set(err, OCIL_E_IO, "encoding the JSON output");
		puts(s);
	} else {
		print_text(res.doc);
	}
	if (fflush(stdout) != 0 || ferror(stdout))
		return ocil_error_set_errno(err, OCIL_E_IO, errno, "writing to stdout");
	return 0;
}

static int run(const ocil_command *cmd, const ocil_cmd_ctx *ctx, int argc, char **argv,
	       ocil_error **err)
{
	opts o = {.platform = "linux/amd64", .registry = OCIL_REGISTRY_OPTS_DEFAULT};
	o.reg.registry = &o.registry;
	int first = 0;
	int r = ocil_cmd_parse(cmd, argc, argv, on_opt, &o, &first, err);
	if (r != 0)
		return r < 0 ? -1 : 0;
	if (first >= argc)
		return ocil_error_set(err, OCIL_E_USAGE, "missing the image reference to inspect");
	if (first + 1 < argc)
		return ocil_error_set(err, OCIL_E_USAGE, "unexpected argument '%s'",
				      argv[first + 1]);
	ocil_cancel cancel = {.flag = ctx->cancel_flag};
	return do_inspect(&o, argv[first], &cancel, err);
}

const ocil_command ocil_cmd_inspect = {
    .name = "inspect",
    .usage = "[options] IMAGE",
    .summary = "show what an image holds: config, layers, python, conda packages",
    .details =
	"IMAGE is oci:DIR[:TAG], docker-archive:FILE[:REPO:TAG] or [docker://]HOST/REPO[:TAG].\n"
	"Every layer is read twice (from the layout, the blob cache, or a temporary copy\n"
	"for docker-archive) to find /var/lang/bin/python3.N and the conda prefix: the\n"
	"directory above the bin/ the newest python resolves to, else the first\n"
	"/opt/NAME with a conda-meta directory; its packages come from conda-meta/*.json.\n"
	"\nOutput (--json; schemaVersion 1, every key always present, null when unset):\n"
	"  schemaVersion, ref, manifest {digest, mediaType, size}, config {digest,\n"
	"  mediaType, size}, platform {os, architecture, variant}, created,\n"
	"  layers [{digest, mediaType, size, diffId, createdBy, comment}] (size: the\n"
	"  blob as stored, compressed unless the source stores plain tar; createdBy:\n"
	"  from the config history), layersSize, env,\n"
	"  entrypoint, cmd, workingDir, user, pythons [{path, minor, link, target,\n"
	"  missing}], conda {prefix, packages [{name, version, build, channel, subdir,\n"
	"  license, sha256, url}]} or null, bytecode {python, pycs, stale,\n"
	"  biggestStale [{source, size, why}]} or null: the .pyc files the newest\n"
	"  python reads and how many of them are stale (compiled at every cold start).\n"
	"\n--sbom FILE writes SPDX 2.3 JSON: one package per conda record (name,\n"
	"version, license, sha256, download URL, a pkg:conda purl), created at\n"
	"SOURCE_DATE_EPOCH (else 1970-01-01), its namespace a hash of its content,\n"
	"so the same image gives the same bytes.\n"
	"\nExample:\n"
	"  ocilambda inspect oci:./out:latest\n"
	"  ocilambda inspect --json --sbom sbom.spdx.json oci:./out:latest\n",
    .options = options,
    .exits = OCIL_X_IMAGE,
    .run = run,
};
