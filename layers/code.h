/* The code layer: the user's handler directory at dest (e.g. /opt/my-code).
 *
 * Entries: the parents of dest, dest itself, then the tree depth-first with
 * siblings in bytewise order. Left out: __pycache__ and .git directories at
 * any depth, and *.pyc files (Lambda's filesystem is read-only, so Python
 * could not refresh them anyway). Symlinks are kept as they are; modes are
 * normalized with ocil_layer_file_mode; hardlinked files become regular
 * files; sockets, fifos and devices are an OCIL_E_INPUT error naming them. */
#ifndef OCIL_CODE_H
#define OCIL_CODE_H

#include "base/error.h"
#include "base/util.h"
#include "oci/layer_writer.h"

/* dir missing or not a directory -> OCIL_E_INPUT naming dir. */
int ocil_code_write_layer(const char *dir, const char *dest, const ocil_cancel *cancel,
			  ocil_layer_writer *w, ocil_error **err);
/* The same with the code's bytecode (--compile-code, bytecode.h):
 * bytecode_dir holds <image dir>/__pycache__/<name>.pyc (NULL: none); each
 * such __pycache__ and its pycs (sorted) come right after their directory.
 * The other __pycache__ and .pyc files stay out, as above. */
int ocil_code_write_layer_bytecode(const char *dir, const char *dest, const char *bytecode_dir,
				   const ocil_cancel *cancel, ocil_layer_writer *w,
				   ocil_error **err);
/* The python sources the layer holds (regular .py files), as image paths
 * under dest, appended to out in walk order. Errors: as the walk. */
int ocil_code_sources(const char *dir, const char *dest, ocil_strv *out, ocil_error **err);

/* Fold what the layer takes of dir into a cache key (hasher h): each
 * entry's path, type, exec bit and contents (a symlink's target), in walk
 * order, with what the layer leaves out left out; nothing of the machine
 * (times, inodes). Errors: as the walk, OCIL_E_IO reading a file. */
struct ocil_hasher;
int ocil_code_fold(const char *dir, struct ocil_hasher *h, const ocil_cancel *cancel,
		   ocil_error **err);

#endif
