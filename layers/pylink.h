/* pylink: the python link layer, which points the base image's python at the conda
 * environment, the equivalent of
 *
 *   mv /var/lang/bin/python3.X /var/lang/bin/python3.X-clean &&
 *   ln -sf /opt/conda-env/bin/python /var/lang/bin/python3.X
 *
 * /var/runtime/bootstrap runs /var/lang/bin/python3.X, so after this layer
 * the Lambda runtime client starts under the conda python; the original
 * interpreter stays available as python3.X-clean. */
#ifndef OCIL_LAYERS_PYLINK_H
#define OCIL_LAYERS_PYLINK_H

#include "base/error.h"
#include "base/util.h"
#include "lambda/lambda.h"
#include "oci/layer_writer.h"
#include "oci/rootfs.h"

/* Append to minors the "3.N" of every /var/lang/bin/python3.N in the merged
 * base (names matching ^python3\.[0-9]+$ that resolve, inside the image, to
 * a regular file), sorted by N. A base without /var/lang/bin gives none. */
int ocil_pylink_list_pythons(ocil_rootfs *fs, ocil_strv *minors, ocil_error **err);

/* Refuse a base that was patched already (it has python<minor>-clean, as an
 * image built by ocilambda or by the Dockerfile recipe does): patching it
 * again would keep the conda python as "-clean". OCIL_E_INPUT. */
int ocil_pylink_check_unpatched(ocil_rootfs *fs, const char *minor, ocil_error **err);

/* Add to w, in this order: the parents of /var/lang/bin/python<minor>
 * (ocil_layer_writer_add_parents), the symlink /var/lang/bin/python<minor>
 * -> <prefix_dest>/bin/python, and the regular file
 * /var/lang/bin/python<minor>-clean holding the bytes of the base's
 * /var/lang/bin/python<minor> (symlinks followed inside the image; mode
 * normalized by ocil_layer_file_mode), streamed from the base layer.
 * minor is "3.N"; prefix_dest is absolute (e.g. "/opt/conda-env"). A base
 * without that python is an OCIL_E_INPUT error "base image has no
 * /var/lang/bin/python3.N (<why>)". Does not finish w. */
int ocil_pylink_write_layer(ocil_rootfs *fs, const char *minor, const char *prefix_dest,
			    ocil_layer_writer *w, ocil_error **err);

#endif
