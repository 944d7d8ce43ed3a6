/* What the files of run/ share (run.h): the function's configuration and
 * the image it runs. Not for use outside run/. */
#ifndef OCIL_RUN_INTERNAL_H
#define OCIL_RUN_INTERNAL_H

#include "oci/image.h"
#include "oci/ref.h"
#include "run/run.h"
#include "transport/source.h"

#define OCIL_RUN_FUNCTION_VERSION "$LATEST"

/* What Lambda's configuration says: from the options, or from --env as the
 * emulator reads it; both given and different is an error. */
typedef struct {
	char name[65];
	long timeout_s, memory_mb;
	char *arn, *region;
} run_config;

int run_config_resolve(const ocil_run_opts *o, run_config *c, ocil_error **err);
void run_config_clear(run_config *c);

typedef struct {
	ocil_ref ref;
	ocil_platform platform;
	ocil_source *src;
	ocil_strv argv; /* Entrypoint + Cmd */
	ocil_strv env;	/* KEY=VALUE, later ones win */
	char *workdir;
	char *rootfs;
	char *cache_dir;
	char *handler; /* Cmd[0], for _HANDLER */
	ocil_strv extensions;
} run_image;

/* The reference and the platform, before anything is read. */
int run_image_parse(const ocil_run_opts *o, run_image *im, ocil_error **err);
/* The image opened, its config read, its tree unpacked (or found in the
 * cache), its extensions listed. */
int run_image_open(const ocil_run_opts *o, run_image *im, ocil_error **err);
void run_image_clear(run_image *im);

/* The sandbox's command line: bwrap on the image's tree with the image's
 * Env, what Lambda sets and the options' env, the extensions started
 * first, then the Entrypoint + Cmd. */
void run_image_argv(const ocil_run_opts *o, const run_config *c, const run_image *im, int rapi_port,
		    ocil_strv *argv);

#endif
