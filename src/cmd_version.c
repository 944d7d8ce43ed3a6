#include <stdio.h>

#include "cmd.h"

static int noopt(void *data, int key, const char *arg, ocil_error **err)
{
	return 0;
}

static int run(const ocil_command *cmd, const ocil_cmd_ctx *ctx, int argc, char **argv,
	       ocil_error **err)
{
	int first = 0;
	int r = ocil_cmd_parse(cmd, argc, argv, noopt, NULL, &first, err);
	if (r != 0)
		return r < 0 ? -1 : 0;
	if (first < argc)
		return ocil_error_set(err, OCIL_E_USAGE, "unexpected argument '%s'", argv[first]);
	printf("ocilambda %s\n", OCIL_VERSION);
	return 0;
}

static const ocil_option options[] = {{NULL}};

const ocil_command ocil_cmd_version = {
    .name = "version",
    .usage = "",
    .summary = "print the version",
    .options = options,
    .run = run,
};
