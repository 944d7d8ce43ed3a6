/* Bytecode compiled by the image's own python: the modules a lock build
 * installs without valid bytecode (conda compiles noarch: python packages
 * at install time, pip its wheels; ocilambda installs without running
 * anything), and with --compile-code the handler code.
 *
 * The python is the environment's, in the image being built: the base's
 * layers (and a lock's conda layer) unpacked, run under bubblewrap as
 * `ocilambda run` runs the function (sandbox.h: read-only tree, uid 993,
 * nothing shared, not even the network), with a prefix or a code directory
 * bound read-only where the image will have it. A small driver compiles
 * each source with py_compile into a directory bound writable at /tmp,
 * as unchecked-hash pycs (PEP 552): their bytes depend on the source and
 * the interpreter only, never on a time, and python never stats the
 * source to use them. One process compiles the sorted list with
 * PYTHONHASHSEED=0, so the same inputs give the same bytes (marshal's
 * output depends on the interpreter's state, which is then the same).
 * Sources that do not compile (python 2 syntax in test data, templates)
 * are skipped and counted, as compileall does. */
#ifndef OCIL_BYTECODE_H
#define OCIL_BYTECODE_H

#include <stdbool.h>
#include <stddef.h>

#include "base/error.h"
#include "base/util.h"
#include "oci/layer_writer.h"
#include "oci/pyc.h"

/* The driver python runs (for cache keys: the bytes depend on it). */
const char *ocil_bytecode_driver(void);

/* The sources of a layer (its facts, pyc.h) python 3.minor will compile at
 * every import: regular .py files under <dest>/lib/python3.X whose
 * bytecode (__pycache__/M.cpython-3X.pyc) is missing or stale in that
 * layer. Appended to out, sorted. */
void ocil_bytecode_select(const ocil_pyc_facts *f, const char *dest, const char *minor,
			  ocil_strv *out);

/* Whether programs for the OCI arch (amd64, arm64, ...) run on this
 * machine: its own arch, or one binfmt_misc hands to an emulator opened
 * at registration (flag F, so that it works inside the sandbox). When not,
 * *why (caller frees) says what is missing. */
bool ocil_bytecode_runs_here(const char *arch, char **why);

/* The tree python runs on: layers (blob files, bottom first) unpacked
 * with the directories mounts (image paths) made for binds. With a
 * cache_dir it is kept as <cache_dir>/rootfs/<hex> (keyed by the layers'
 * digests and the mounts; see unpack.h) and made once; without, it is a
 * temporary directory that _clear removes. */
typedef struct {
	char *path;
	ocil_tmpdir tmp;
} ocil_bytecode_tree;
int ocil_bytecode_tree_make(const char *cache_dir, const char *const *layer_paths,
			    const char *const *digests, size_t n, const char *const *mounts,
			    const ocil_cancel *cancel, ocil_bytecode_tree *t, ocil_error **err);
void ocil_bytecode_tree_clear(ocil_bytecode_tree *t);

typedef struct {
	const char *tree;
	/* host path, image path pairs bound read-only (NULL-terminated) */
	const char *const *ro_binds;
	const char *python; /* the interpreter's image path */
	const ocil_cancel *cancel;
} ocil_bytecode_opts;

typedef struct {
	size_t compiled, failed;
	char *first_failed; /* "<source>: SyntaxError", or NULL */
} ocil_bytecode_result;
void ocil_bytecode_result_clear(ocil_bytecode_result *r);

/* Compile sources (image paths) with the python of o into out_dir, at
 * <out_dir><image path of each pyc>. Errors: bubblewrap missing or unable
 * to make the sandbox, the python not starting or failing (OCIL_E_IO with
 * what it said), cancellation. */
int ocil_bytecode_compile(const ocil_bytecode_opts *o, const ocil_strv *sources,
			  const char *out_dir, ocil_bytecode_result *res, ocil_error **err);

/* Everything under out_dir into the layer at its image path: directories
 * 0755 (parents of the pycs), pycs 0644, in walk order. */
int ocil_bytecode_write_layer(const char *out_dir, ocil_layer_writer *w, const ocil_cancel *cancel,
			      ocil_error **err);

#endif
