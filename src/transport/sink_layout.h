/* OCI image layout output (oci:DIR[:TAG]).
 *
 * Everything is staged in a sibling directory ".<name>.ocilambda-XXXXXX"
 * that is itself a layout. Commit either renames it into place (new output)
 * or, when DIR is already a layout, moves the missing blobs in and replaces
 * index.json atomically, keeping the other tags. Until commit, DIR is never
 * touched; freeing an uncommitted sink removes the staging directory. */
#ifndef OCIL_SINK_LAYOUT_H
#define OCIL_SINK_LAYOUT_H

#include "base/blobstore.h"
#include "oci/image.h"

typedef struct ocil_layout_sink ocil_layout_sink;

/* Fails (OCIL_E_INPUT) when dir exists and is neither a layout nor an empty
 * directory. */
int ocil_layout_sink_open(const char *dir, ocil_layout_sink **out, ocil_error **err);
ocil_blobstore *ocil_layout_sink_blobs(ocil_layout_sink *s);
/* Record manifest under tag and publish. */
int ocil_layout_sink_commit(ocil_layout_sink *s, const char *tag, const ocil_descriptor *manifest,
			    ocil_error **err);
void ocil_layout_sink_free(ocil_layout_sink *s);

#endif
