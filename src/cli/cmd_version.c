/* ocilambda version: ours, and the libraries' (what a bug report needs). */
#include <stdio.h>
#include <string.h>

#include "base/json.h"
#include "base/version.h"
#include "cli/cmd.h"

enum {
	OPT_JSON = 256,
};

static const ocil_option options[] = {
    {"json", OPT_JSON, NULL, "print the versions as JSON"},
    {0},
};

static int on_opt(void *data, int key, const char *arg, ocil_error **err)
{
	if (key == OPT_JSON)
		*(bool *)data = true;
	return 0;
}

static void print_json(const ocil_lib_version *v, size_t n)
{
	cleanup_json json_t *doc = json_object();
	json_object_set_new(doc, "version", json_string(OCIL_VERSION));
	json_t *libs = json_array();
	for (size_t i = 0; i < n; i++)
		json_array_append_new(libs, json_pack("{s:s, s:s, s:s, s:s}", "name", v[i].name,
						      "version", v[i].version, "compiled",
						      v[i].compiled, "source",
						      v[i].runtime ? "runtime" : "compile-time"));
	json_object_set_new(doc, "libraries", libs);
	json_dumpf(doc, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	fputc('\n', stdout);
}

static void print_human(const ocil_lib_version *v, size_t n)
{
	printf("ocilambda %s\n", OCIL_VERSION);
	for (size_t i = 0; i < n; i++) {
		printf("  %-11s %s", v[i].name, v[i].version);
		if (!v[i].runtime)
			fputs(" (headers at build time; no version call)", stdout);
		else if (strcmp(v[i].version, v[i].compiled) != 0)
			printf(" (built with %s)", v[i].compiled);
		fputc('\n', stdout);
	}
}

static int run(const ocil_command *cmd, const ocil_cmd_ctx *ctx, int argc, char **argv,
	       ocil_error **err)
{
	bool json = false;
	int first = 0;
	int r = ocil_cmd_parse(cmd, argc, argv, on_opt, &json, &first, err);
	if (r != 0)
		return r < 0 ? -1 : 0;
	if (first < argc)
		return ocil_error_set(err, OCIL_E_USAGE, "unexpected argument '%s'", argv[first]);
	ocil_lib_version v[16];
	size_t n = ocil_lib_versions(v, 16);
	if (n > 16)
		n = 16;
	if (json)
		print_json(v, n);
	else
		print_human(v, n);
	return 0;
}

const ocil_command ocil_cmd_version = {
    .name = "version",
    .usage = "[options]",
    .summary = "print the version of ocilambda and of the libraries it runs with",
    .details = "Library versions are asked of the libraries themselves; libdeflate and isa-l\n"
	       "have no such call, so theirs are the headers' at build time.\n",
    .options = options,
    .exits = OCIL_X_USAGE | OCIL_X_IO,
    .run = run,
};
