/* The end of a build: Lambda's rules on what is about to be published,
 * the SBOM, the sink's commit (the output appears whole or not at all),
 * the digest file. */
#include <string.h>

#include "base/json.h"
#include "build/internal.h"

/* Lambda's rules on the image: errors stop the build (OCIL_E_CHECK) unless
 * --no-check; warnings (mostly the base's own, e.g. /root 0550 on Amazon
 * Linux) are reported. A python mismatch the user allowed is not an error
 * here either, nor zstd layers asked for (said once more, notably). */
static int check_output(build *b, ocil_error **err)
{
	const ocil_build_opts *o = &b->o;
	ocil_findings f = {0};
	ocil_check_opts co = {.platform = &b->platform,
			      .cancel = o->cancel,
			      .index_dir = o->no_cache && b->absent.n == 0 ? NULL : b->index_dir,
			      .elsewhere = (const char *const *)b->absent.v,
			      .n_elsewhere = b->absent.n};
	int r = ocil_check_blobs(ocil_sink_blobs(b->sink), &b->manifest, &co, &f, err);
	if (r < 0 && b->absent.n > 0 && (*err)->code != OCIL_E_CANCELLED) {
		/* a rule read a file of a layer left in the cache repository
		 * (a handler module installed in the environment, say): they
		 * are downloaded after all */
		build_say(b, "checking reads layers left in the cache repository: %s", (*err)->msg);
		ocil_error_free(*err);
		*err = NULL;
		ocil_findings_clear(&f);
		if (build_repo_bring(b, err) < 0)
			return -1;
		co.elsewhere = NULL;
		co.n_elsewhere = 0;
		r = ocil_check_blobs(ocil_sink_blobs(b->sink), &b->manifest, &co, &f, err);
	}
	for (size_t i = 0; r == 0 && i < f.n; i++) {
		ocil_finding *x = &f.v[i];
		if (x->sev == OCIL_SEV_ERROR && o->allow_mismatch && strcmp(x->rule, "L014") == 0)
			x->sev = OCIL_SEV_WARNING;
		bool asked = x->sev == OCIL_SEV_ERROR && o->zstd && strcmp(x->rule, "L002") == 0 &&
			     strstr(x->msg, "zstd-compressed") != NULL;
		if (asked)
			x->sev = OCIL_SEV_WARNING;
		if (x->sev != OCIL_SEV_INFO && b->rep->finding != NULL)
			b->rep->finding(b->rep->data, x, x->sev == OCIL_SEV_ERROR || asked);
	}
	if (r == 0 && ocil_findings_have_errors(&f)) {
		cleanup_free char *failed = ocil_findings_failed_rules(&f);
		r = ocil_error_set(err, OCIL_E_CHECK,
				   "the image breaks Lambda's rules (%s); nothing was published "
				   "(--no-check publishes anyway)",
				   failed[0] ? failed : "see 'ocilambda check'");
	}
	ocil_findings_clear(&f);
	return r;
}

/* The conda packages of the environment as SPDX, named after the output
 * and tied to the image's digest. */
static int write_sbom(build *b, ocil_error **err)
{
	const ocil_build_opts *o = &b->o;
	cleanup_sbom_packages ocil_sbom_packages pk = {0};
	int r = o->lock == NULL ? ocil_sbom_read_prefix(o->prefix, &pk, err)
				: build_lock_packages(b, err);
	ocil_sbom_opts so = {.name = o->output,
			     .image_digest = b->manifest.digest,
			     .prefix = o->prefix_dest,
			     .created = b->epoch};
	if (r < 0 || ocil_sbom_write(o->sbom, &so, o->lock ? &b->lock_sbom : &pk, err) < 0)
		return ocil_error_wrap(err, "--sbom");
	return 0;
}

int build_publish(build *b, const json_t *config, ocil_error **err)
{
	const ocil_build_opts *o = &b->o;
	if (!o->no_check && check_output(b, err) < 0)
		return -1;
	/* Before publishing: a failed SBOM must not leave a published image. */
	if (o->sbom != NULL && write_sbom(b, err) < 0)
		return -1;
	cleanup_free char *raw = NULL;
	size_t len = 0;
	cleanup_free char *path = ocil_blobstore_path(ocil_sink_blobs(b->sink), b->manifest.digest);
	ocil_manifest m = {0};
	if (ocil_read_file(path, OCIL_JSON_MAX, &raw, &len, err) < 0 ||
	    ocil_manifest_parse(raw, len, "new manifest", NULL, &m, err) < 0)
		return -1;
	const json_t *ids = json_object_get(json_object_get(config, "rootfs"), "diff_ids");
	cleanup_free const char **diff_ids = ocil_xcalloc(m.n_layers + 1, sizeof(char *));
	for (size_t i = 0; i < m.n_layers; i++)
		diff_ids[i] = json_string_value(json_array_get(ids, i));
	ocil_sink_image img = {.manifest = &b->manifest,
			       .config = &m.config,
			       .layers = m.layers,
			       .n_layers = m.n_layers,
			       .diff_ids = diff_ids};
	/* the cache repository: after a push, so that it mounts what was
	 * pushed; before files are written, while their blobs are staged */
	bool push = b->out_ref.transport == OCIL_REF_DOCKER;
	if (!push)
		build_repo_record(b);
	build_say(b, "writing %s", o->output);
	int r = ocil_sink_commit(b->sink, &img, &b->published, err);
	ocil_manifest_clear(&m);
	if (r == 0 && push)
		build_repo_record(b);
	if (r < 0)
		return ocil_error_wrap(err, "output %s", o->output);
	if (o->digestfile != NULL && ocil_write_file_atomic(o->digestfile, b->manifest.digest,
							    strlen(b->manifest.digest), err) < 0)
		return ocil_error_wrap(err, "--digestfile");
	return 0;
}
