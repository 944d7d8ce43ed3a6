/* ocilambda assemble: base image + conda prefix + code -> Lambda image. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "build/build.h"
#include "cli/cmd.h"
#include "layers/conda_split.h"

enum {
	OPT_BASE = 256,
	OPT_PREFIX,
	OPT_CODE,
	OPT_HANDLER,
	OPT_OUTPUT,
	OPT_PREFIX_DEST,
	OPT_CODE_DEST,
	OPT_ENV,
	OPT_ENTRYPOINT,
	OPT_PLATFORM,
	OPT_ALLOW_MISMATCH,
	OPT_SOURCE_PREFIX,
	OPT_QUIET,
	OPT_PROGRESS,
	OPT_FORMAT,
	OPT_DIGESTFILE,
	OPT_EXCLUDE,
	OPT_STRICT,
	OPT_SBOM,
	OPT_NO_CHECK,
	OPT_COMPRESSION,
	OPT_LEVEL,
	OPT_NO_CACHE,
	OPT_CONDA_LOCK,
	OPT_PKGS_DIR,
	OPT_WHEELS_DIR,
	OPT_MIRROR,
	OPT_OFFLINE,
	OPT_NO_COMPILE,
	OPT_COMPILE_CODE,
	OPT_LAYERS,
	OPT_CACHE_REPO,
	OPT_CACHE_REPO_MODE,
};

static const ocil_option options[] = {
    {"base", OPT_BASE, "REF",
     "base image: [docker://]HOST/REPO[:TAG][@DIGEST], oci:DIR[:TAG] or docker-archive:FILE"},
    {"conda-prefix", OPT_PREFIX, "DIR", "conda environment to pack (a prefix with conda-meta/)"},
    {"conda-lock", OPT_CONDA_LOCK, "FILE",
     "instead of --conda-prefix: an @EXPLICIT lock (conda list --explicit --md5) or a "
     "conda-lock.yml; no conda needed"},
    {"pkgs-dir", OPT_PKGS_DIR, "DIR",
     "with --conda-lock: directory of locked .conda/.tar.bz2 files; those not in it are "
     "downloaded from the lock's URLs into the blob cache (or found there)"},
    {"wheels-dir", OPT_WHEELS_DIR, "DIR",
     "with --conda-lock: wheels to install into site-packages (the lock's pip entries, "
     "downloaded when not in DIR; else every *.whl in DIR)"},
    {"mirror", OPT_MIRROR, "FROM=TO",
     "with --conda-lock: download what the lock has under the URL prefix FROM from TO "
     "instead (repeatable; the longest FROM wins)"},
    {"offline", OPT_OFFLINE, NULL,
     "never touch the network: packages must be in --pkgs-dir or the cache, the base and "
     "the output local"},
    {"no-compile", OPT_NO_COMPILE, NULL,
     "with --conda-lock: no bytecode layer (python then compiles the modules at every cold "
     "start)"},
    {"code", OPT_CODE, "DIR", "handler code directory"},
    {"compile-code", OPT_COMPILE_CODE, NULL,
     "compile the code's .py files with the environment's python (unchecked-hash pycs in "
     "the code layer)"},
    {"handler", OPT_HANDLER, "MODULE.FUNCTION", "Lambda handler, e.g. example.lambda_handler"},
    {"output", OPT_OUTPUT, "REF",
     "where to write: oci:DIR[:TAG] (TAG defaults to latest), docker-archive:FILE[:REPO:TAG] "
     "or [docker://]HOST/REPO[:TAG] (push)"},
    {"format", OPT_FORMAT, "oci|docker",
     "manifest format for docker:// (default: the base's; oci: outputs are always OCI)"},
    {"digestfile", OPT_DIGESTFILE, "FILE", "write the manifest digest to FILE"},
    {"sbom", OPT_SBOM, "FILE", "write an SPDX 2.3 JSON SBOM of the conda packages to FILE"},
    {"no-check", OPT_NO_CHECK, NULL,
     "publish even if the image fails Lambda's rules (see 'ocilambda check')"},
    {"compression", OPT_COMPRESSION, "gzip|zstd",
     "new layers' compression (default gzip; Lambda does not take zstd images)"},
    {"compression-level", OPT_LEVEL, "N",
     "1 (fastest) .. 9 (smallest), as gzip's (default 6; zstd: see README)"},
    {"no-cache", OPT_NO_CACHE, NULL,
     "take nothing from the layer cache: pack, hash and read everything (then refresh it)"},
    {"layers", OPT_LAYERS, "auto|N",
     "conda layers: auto (the default) gives big packages a layer each and small ones a few "
     "shared, within 100 layers with the base's; N at most N; 1 one layer"},
    {"cache-repo", OPT_CACHE_REPO, "REGISTRY/REPO",
     "share layers between machines (CI runners) through this registry repository: a layer "
     "is looked up there before it is packed, and those packed are recorded there; only a "
     "repository you trust (see README)"},
    {"cache-repo-mode", OPT_CACHE_REPO_MODE, "read|readwrite",
     "with --cache-repo: readwrite (default) records new layers; read only looks them up "
     "(pull access is enough)"},
    {"prefix-dest", OPT_PREFIX_DEST, "PATH", "where the prefix goes in the image (/opt/conda-env)"},
    {"code-dest", OPT_CODE_DEST, "PATH", "where the code goes in the image (/opt/my-code)"},
    {"env", OPT_ENV, "K=V", "set an environment variable (repeatable; replaces the base's)"},
    {"entrypoint", OPT_ENTRYPOINT, "JSON|PATH",
     "entrypoint as a JSON array or one path (default: the base's)"},
    {"platform", OPT_PLATFORM, "OS/ARCH", "platform the base must have (linux/amd64)"},
    {"allow-python-mismatch", OPT_ALLOW_MISMATCH, NULL,
     "build even if the prefix's python minor differs from the base's"},
    {"source-prefix", OPT_SOURCE_PREFIX, "PATH",
     "path the prefix was built at (default: detected from its files)"},
    {"exclude", OPT_EXCLUDE, "GLOB",
     "leave prefix files matching GLOB out (relative to the prefix; repeatable)"},
    {"strict", OPT_STRICT, NULL,
     "fail on unmanaged prefix files that still name the build path, and on package paths "
     "missing from their package (default: warn)"},
    {"quiet", OPT_QUIET, NULL, "print nothing but the manifest digest"},
    {"progress", OPT_PROGRESS, NULL, "print progress on stderr even when it is not a terminal"},
    OCIL_REGISTRY_OPTIONS,
    {0},
};

typedef struct {
	ocil_build_opts b;
	ocil_strv env, excludes;
	ocil_mirror *mirrors;
	bool quiet, progress;
	ocil_cmd_registry reg;
} opts;

/* --layers auto|N */
static int layers_opt(ocil_build_opts *b, const char *arg, ocil_error **err)
{
	if (strcmp(arg, "auto") == 0) {
		b->layers = 0;
		return 0;
	}
	size_t n = strspn(arg, "0123456789");
	long v = n > 0 && n <= 3 && arg[n] == '\0' ? strtol(arg, NULL, 10) : -1;
	if (v < 1 || v > OCIL_SPLIT_MAX_LAYERS)
		return ocil_error_set(err, OCIL_E_USAGE,
				      "--layers \"%s\": want auto or a number of layers, 1..%d",
				      arg, OCIL_SPLIT_MAX_LAYERS);
	b->layers = (size_t)v;
	return 0;
}

static int on_opt(void *data, int key, const char *arg, ocil_error **err)
{
	opts *o = data;
	ocil_build_opts *b = &o->b;
	int handled = ocil_cmd_registry_opt(&o->reg, key, arg, err);
	if (handled != 0)
		return handled < 0 ? -1 : 0;
	/* the options that are a string each */
	const char **str[] = {
	    [OPT_BASE] = &b->base,
	    [OPT_PREFIX] = &b->prefix,
	    [OPT_CONDA_LOCK] = &b->lock,
	    [OPT_PKGS_DIR] = &b->pkgs_dir,
	    [OPT_WHEELS_DIR] = &b->wheels_dir,
	    [OPT_CODE] = &b->code,
	    [OPT_HANDLER] = &b->handler,
	    [OPT_OUTPUT] = &b->output,
	    [OPT_PREFIX_DEST] = &b->prefix_dest,
	    [OPT_CODE_DEST] = &b->code_dest,
	    [OPT_ENTRYPOINT] = &b->entrypoint,
	    [OPT_PLATFORM] = &b->platform,
	    [OPT_SOURCE_PREFIX] = &b->source_prefix,
	    [OPT_SBOM] = &b->sbom,
	    [OPT_DIGESTFILE] = &b->digestfile,
	    [OPT_CACHE_REPO] = &b->cache_repo,
	    [OPT_CACHE_REPO_MODE] = &b->cache_repo_mode,
	};
	/* and the flags */
	bool *flag[] = {
	    [OPT_ALLOW_MISMATCH] = &b->allow_mismatch,
	    [OPT_QUIET] = &o->quiet,
	    [OPT_PROGRESS] = &o->progress,
	    [OPT_STRICT] = &b->strict,
	    [OPT_NO_CHECK] = &b->no_check,
	    [OPT_NO_CACHE] = &b->no_cache,
	    [OPT_NO_COMPILE] = &b->no_compile,
	    [OPT_COMPILE_CODE] = &b->compile_code,
	    [OPT_OFFLINE] = &b->offline,
	};
	size_t i = (size_t)key;
	if (i < sizeof(str) / sizeof(str[0]) && str[i] != NULL) {
		*str[i] = arg;
		return 0;
	}
	if (i < sizeof(flag) / sizeof(flag[0]) && flag[i] != NULL) {
		*flag[i] = true;
		return 0;
	}
	switch (key) {
	case OPT_FORMAT:
		return ocil_format_parse(arg, &b->format, err);
	case OPT_EXCLUDE:
		ocil_strv_push(&o->excludes, ocil_xstrdup(arg));
		break;
	case OPT_COMPRESSION:
		if (strcmp(arg, "gzip") != 0 && strcmp(arg, "zstd") != 0)
			return ocil_error_set(err, OCIL_E_USAGE,
					      "--compression \"%s\": want gzip or zstd", arg);
		b->zstd = strcmp(arg, "zstd") == 0;
		break;
	case OPT_LEVEL:
		if (strlen(arg) != 1 || arg[0] < '1' || arg[0] > '9')
			return ocil_error_set(err, OCIL_E_USAGE,
					      "--compression-level \"%s\": want 1..9", arg);
		b->level = arg[0] - '0';
		break;
	case OPT_ENV:
		return ocil_cmd_env_opt(&o->env, arg, err);
	case OPT_MIRROR:
		o->mirrors = ocil_xrealloc(o->mirrors, (b->n_mirrors + 1) * sizeof(*o->mirrors));
		if (ocil_mirror_parse(arg, &o->mirrors[b->n_mirrors], err) < 0)
			return -1;
		b->n_mirrors++;
		break;
	case OPT_LAYERS:
		return layers_opt(b, arg, err);
	}
	return 0;
}

/* ---- what the build reports, on stderr ---- */

typedef struct {
	bool progress;		 /* steps and downloads shown */
	ocil_cmd_progress fetch; /* the download line */
	ocil_cmd_progress blobs; /* the registry's */
} report;

static void end_fetch_line(report *r)
{
	ocil_cmd_fetch_progress_end(&r->fetch);
}

static void on_progress(void *data, const char *msg)
{
	end_fetch_line(data);
	ocil_cmd_print_notice(NULL, msg);
}

static void on_warning(void *data, const char *msg)
{
	end_fetch_line(data);
	cleanup_free char *line = ocil_xasprintf("ocilambda: warning: %s", msg);
	ocil_cmd_print_line(line);
}

static void on_finding(void *data, const ocil_finding *f, bool notable)
{
	const report *r = data;
	if (notable || r->progress)
		ocil_cmd_put_finding(stderr, "ocilambda: check: ", f, ocil_cmd_color(2));
}

static void on_fetch(void *data, const ocil_fetch_progress *p)
{
	report *r = data;
	if (p == NULL)
		end_fetch_line(r);
	else
		ocil_cmd_fetch_progress(&r->fetch, p);
}

/* After a build (not with --quiet): each layer, what made it, its sizes,
 * whether a cache gave it; the output, its digest, the time. */
static void print_summary(FILE *f, const char *output, const ocil_build_result *res, double seconds)
{
	/* after the digest on stdout, when both are a terminal */
	fflush(stdout);
	fprintf(f, "  %-3s %-8s %11s %12s  %-6s  %s\n", "#", "layer", "compressed", "uncompressed",
		"cache", "digest");
	int64_t total = 0, total_raw = 0;
	bool raw_known = true;
	for (size_t i = 0; i < res->n_layers; i++) {
		const ocil_build_layer *r = &res->layers[i];
		char z[32], u[32];
		ocil_cmd_human_size(r->size, z, sizeof(z));
		if (r->uncompressed >= 0)
			ocil_cmd_human_size(r->uncompressed, u, sizeof(u));
		else
			snprintf(u, sizeof(u), "-");
		total += r->size;
		total_raw += r->uncompressed > 0 ? r->uncompressed : 0;
		raw_known = raw_known && r->uncompressed >= 0;
		fprintf(f, "  %-3zu %-8s %11s %12s  %-6s  %.19s%s%.60s\n", i + 1, r->made_by, z, u,
			r->base	    ? "-"
			: r->remote ? "repo"
			: r->cached ? "cached"
				    : "new",
			r->digest, r->what ? "  " : "", r->what ? r->what : "");
	}
	char z[32], u[32];
	ocil_cmd_human_size(total, z, sizeof(z));
	ocil_cmd_human_size(total_raw, u, sizeof(u));
	fprintf(f, "  %-3s %-8s %11s %12s\n", "", "total", z, raw_known ? u : "-");
	fprintf(f, "ocilambda: built %s (%s) in %.1f s\n", output, res->digest, seconds);
	if (res->bytecode_note != NULL)
		fprintf(f, "ocilambda: %s\n", res->bytecode_note);
}

static int assemble(opts *o, const ocil_cancel *cancel, ocil_error **err)
{
	double t0 = ocil_cmd_now();
	report rep = {.progress = ocil_cmd_progress_on(o->quiet, o->progress)};
	ocil_build_report br = {.data = &rep,
				.progress = rep.progress ? on_progress : NULL,
				.warning = o->quiet ? NULL : on_warning,
				.finding = o->quiet ? NULL : on_finding,
				.notice = ocil_cmd_print_notice,
				.fetch = rep.progress ? on_fetch : NULL};
	ocil_build_opts *b = &o->b;
	ocil_cmd_registry_callbacks(&b->registry, rep.progress ? &rep.blobs : NULL);
	/* --jobs: the lock's package downloads too */
	b->jobs = b->registry.jobs;
	b->env = (const char *const *)o->env.v;
	b->n_env = o->env.n;
	b->excludes = (const char *const *)o->excludes.v;
	b->n_excludes = o->excludes.n;
	b->mirrors = o->mirrors;
	b->cache_dir = o->reg.cache_dir;
	b->cancel = cancel;
	b->report = &br;
	__attribute__((cleanup(ocil_build_result_clear))) ocil_build_result res = {0};
	if (ocil_build_assemble(b, &res, err) < 0)
		return -1;
	printf("%s\n", res.published);
	if (!o->quiet)
		print_summary(stderr, o->b.output, &res, ocil_cmd_now() - t0);
	return 0;
}

static int run(const ocil_command *cmd, const ocil_cmd_ctx *ctx, int argc, char **argv,
	       ocil_error **err)
{
	opts o = {.b.registry = OCIL_REGISTRY_OPTS_DEFAULT};
	o.reg.registry = &o.b.registry;
	int first = 0;
	int r = ocil_cmd_parse(cmd, argc, argv, on_opt, &o, &first, err);
	if (r == 0 && first < argc)
		r = ocil_error_set(err, OCIL_E_USAGE, "unexpected argument '%s'", argv[first]);
	if (r == 0) {
		ocil_cancel cancel = {.flag = ctx->cancel_flag};
		r = assemble(&o, &cancel, err);
	}
	ocil_strv_clear(&o.env);
	ocil_strv_clear(&o.excludes);
	for (size_t i = 0; i < o.b.n_mirrors; i++)
		ocil_mirror_clear(&o.mirrors[i]);
	free(o.mirrors);
	return r < 0 ? -1 : 0;
}

const ocil_command ocil_cmd_assemble = {
    .name = "assemble",
    .usage = "--base REF (--conda-prefix DIR | --conda-lock FILE [--pkgs-dir DIR]) --code DIR "
	     "--handler MODULE.FUNCTION --output REF [options]",
    .summary = "build a Lambda container image from a base image, a conda prefix and code",
    .details =
	"Writes the base layers unchanged plus new layers: the conda environment\n"
	"(relocated to --prefix-dest) in layers per package (--layers: big packages\n"
	"alone, small ones in a few groups by a hash of their name, files no record\n"
	"owns apart; within 100 layers with the base's), the code, and a runtime patch\n"
	"that keeps the base python as /var/lang/bin/python3.X-clean and points\n"
	"python3.X at the prefix's bin/python. The config gets PYTHONPATH, Entrypoint\n"
	"and Cmd [handler].\n"
	"Prints the manifest digest on stdout. Output is built under a temporary name\n"
	"and renamed into place; an existing layout keeps its other tags.\n"
	"SOURCE_DATE_EPOCH sets the timestamps (default 0): same inputs, same digests.\n"
	"New layers are gzip (one member, what Lambda takes); --compression zstd\n"
	"writes OCI zstd layers instead, which Lambda does not deploy: check's L002\n"
	"finding is then shown as a warning.\n"
	"An unchanged conda prefix (every file's metadata, every option) and runtime\n"
	"patch come from the layer cache under --cache-dir, and after a dependency bump\n"
	"only the changed package's layer is packed; --no-cache takes nothing from it.\n"
	"--cache-repo REGISTRY/REPO shares layers between machines: each is looked up\n"
	"there by a key of its contents before it is packed (a push to the same\n"
	"registry mounts it, other outputs download and verify it), and new ones are\n"
	"recorded there (one OCI artifact per key, tagged sha256-<key>); writing is\n"
	"best effort, --cache-repo-mode read never writes. Whoever can push to it can\n"
	"change your images: use a repository only trusted builds write.\n"
	"With --conda-lock the conda layer is built from the locked package files in\n"
	"--pkgs-dir (each checked against the lock's md5/sha256), without conda; it\n"
	"is cached too (the lock's bytes, the metadata of --pkgs-dir and --wheels-dir).\n"
	"Packages not in --pkgs-dir are downloaded from the lock's URLs (--mirror\n"
	"rewrites them; --jobs at once; https verified as for registries; credentials\n"
	"from ~/.netrc or $NETRC) into the blob cache, checked before they are kept,\n"
	"and taken from there next time; --offline never downloads.\n"
	"Python bytecode stays valid: a prefix's .py files get the mtime their valid\n"
	"__pycache__ files record; a lock's modules without valid bytecode are compiled\n"
	"by the environment's python (under bubblewrap, unchecked-hash pycs) into a\n"
	"bytecode layer after the conda layer, unless --no-compile or the image's\n"
	"programs cannot run here (then the build says what every cold start will\n"
	"compile); --compile-code compiles the code the same way.\n"
	"\nExample:\n"
	"  ocilambda assemble --base oci:./base:3.8 --conda-prefix ./env --code ./src \\\n"
	"      --handler example.lambda_handler --output oci:./out:latest\n"
	"  ocilambda assemble --base oci:./base:3.8 --conda-lock explicit.txt \\\n"
	"      --pkgs-dir ./pkgs --code ./src --handler example.lambda_handler \\\n"
	"      --output oci:./out:latest\n"
	"  ocilambda assemble --base oci:./base:3.8 --conda-lock conda-lock.yml \\\n"
	"      --mirror https://conda.anaconda.org/conda-forge=https://mirror.example/cf \\\n"
	"      --code ./src --handler example.lambda_handler --output oci:./out:latest\n",
    .options = options,
    .exits = OCIL_X_IMAGE | OCIL_X_CHECK,
    .run = run,
};
