/* rootfs: layers applied bottom-up to an in-memory tree of names.
 *
 * Each node is one name under one parent. Nodes are found through a hash
 * table keyed by (parent, name) and listed through a per-directory sibling
 * list. A removed node is only marked dead: it keeps its hash slot (so a
 * later layer re-adding the name revives it in place) and remembers which
 * layer removed it and how, which lets lookups say why a path is missing.
 * Nodes and names live in arenas freed all at once. */
#include "oci/rootfs.h"

#include "oci/layer_index.h"

#include <ctype.h>
#include <string.h>
#include <sys/stat.h>

#define NODE_CHUNK 4096
#define STR_BLOCK ((size_t)64 << 10)
#define WH_PREFIX ".wh."
#define WH_OPAQUE ".wh..wh..opq"
#define WH_META ".wh..wh."

typedef enum { GONE_WHITEOUT = 1, GONE_OPAQUE, GONE_REPLACED } gone_how;

typedef struct rnode rnode;
struct rnode {
	const char *name;		  /* arena; "" for the root */
	rnode *parent;			  /* NULL for the root */
	rnode *first_child, *next, *prev; /* live children of a directory */
	const char *link;		  /* SYMLINK target, arena */
	const char *data_path; /* hardlinks: path of the entry with the data; NULL: own */
	uint64_t size;
	uint64_t entry_index;
	uint32_t id;
	uint32_t layer;	     /* layer that last defined (or implicitly created) it */
	uint32_t data_layer; /* layer of entry_index / data_path */
	uint32_t removed_in; /* dead nodes */
	mode_t mode;
	uint8_t type; /* ocil_tar_type, never HARDLINK */
	uint8_t gone; /* gone_how, dead nodes */
	bool dead;
};

typedef struct strblock {
	struct strblock *next;
	size_t used, cap;
	char data[];
} strblock;

struct ocil_rootfs {
	char **paths; /* layer blob files */
	char **whats; /* "layer N (sha256:...)" */
	size_t nlayers;
	rnode *root;
	ocil_hashtab index; /* every node, by parent and name */
	rnode **chunks;
	size_t nchunks, chunk_used;
	strblock *strings;
};

/* ---- arenas and the (parent, name) table ---- */

static const char *arena_strndup(ocil_rootfs *fs, const char *s, size_t n)
{
	strblock *b = fs->strings;
	if (b == NULL || b->cap - b->used < n + 1) {
		size_t cap = n + 1 > STR_BLOCK / 4 ? n + 1 : STR_BLOCK;
		strblock *nb = ocil_xmalloc(sizeof(*nb) + cap);
		nb->cap = cap;
		nb->used = 0;
		if (b != NULL && cap != STR_BLOCK) {
			/* a big string gets a block of its own behind the
			 * current one, which keeps its free space */
			nb->next = b->next;
			b->next = nb;
		} else {
			nb->next = b;
			fs->strings = nb;
		}
		b = nb;
	}
	char *p = b->data + b->used;
	memcpy(p, s, n);
	p[n] = '\0';
	b->used += n + 1;
	return p;
}

static const char *arena_strdup(ocil_rootfs *fs, const char *s)
{
	return arena_strndup(fs, s, strlen(s));
}

static rnode *alloc_node(ocil_rootfs *fs)
{
	if (fs->nchunks == 0 || fs->chunk_used == NODE_CHUNK) {
		fs->chunks = ocil_xrealloc(fs->chunks, (fs->nchunks + 1) * sizeof(*fs->chunks));
		fs->chunks[fs->nchunks++] = ocil_xcalloc(NODE_CHUNK, sizeof(rnode));
		fs->chunk_used = 0;
	}
	rnode *n = &fs->chunks[fs->nchunks - 1][fs->chunk_used++];
	n->id = (uint32_t)((fs->nchunks - 1) * NODE_CHUNK + fs->chunk_used - 1);
	return n;
}

static uint64_t key_hash(uint32_t parent_id, const char *name, size_t len)
{
	uint64_t h =
	    ocil_fnv1a(OCIL_FNV1A_INIT ^ ((uint64_t)parent_id * 0x9e3779b97f4a7c15ULL), name, len);
	return h ^ (h >> 29);
}

static uint64_t node_hash(const void *item)
{
	const rnode *n = item;
	return key_hash(n->parent->id, n->name, strlen(n->name));
}

typedef struct {
	const rnode *parent;
	const char *name;
	size_t len;
} node_key;

static bool node_eq(const void *item, const void *key)
{
	const rnode *n = item;
	const node_key *k = key;
	return n->parent == k->parent && strncmp(n->name, k->name, k->len) == 0 &&
	       n->name[k->len] == '\0';
}

/* The node (live or dead) for name under parent, or NULL. */
static rnode *find(const ocil_rootfs *fs, const rnode *parent, const char *name, size_t len)
{
	node_key k = {parent, name, len};
	return ocil_hashtab_find(&fs->index, key_hash(parent->id, name, len), node_eq, &k);
}

static void insert(ocil_rootfs *fs, rnode *n)
{
	ocil_hashtab_add(&fs->index, n, 1024, node_hash);
}

static char *node_path(const rnode *n)
{
	if (n->parent == NULL)
		return ocil_xstrdup("/");
	size_t len = 0;
	for (const rnode *m = n; m->parent != NULL; m = m->parent)
		len += 1 + strlen(m->name);
	char *s = ocil_xmalloc(len + 1);
	s[len] = '\0';
	for (const rnode *m = n; m->parent != NULL; m = m->parent) {
		size_t l = strlen(m->name);
		len -= l;
		memcpy(s + len, m->name, l);
		s[--len] = '/';
	}
	return s;
}

/* ---- tree edits ---- */

static void unlink_child(rnode *n)
{
	if (n->prev != NULL)
		n->prev->next = n->next;
	else
		n->parent->first_child = n->next;
	if (n->next != NULL)
		n->next->prev = n->prev;
	n->next = n->prev = NULL;
}

static void mark_dead(rnode *n, uint32_t layer, gone_how how)
{
	n->dead = true;
	n->removed_in = layer;
	n->gone = (uint8_t)how;
	for (rnode *c = n->first_child; c != NULL; c = c->next)
		mark_dead(c, layer, how);
	n->first_child = NULL;
}

static void kill_node(rnode *n, uint32_t layer, gone_how how)
{
	unlink_child(n);
	mark_dead(n, layer, how);
}

/* Remove what lower layers contributed below and at n; whatever layer
 * `layer` itself put there stays (with the directories leading to it).
 * Returns whether n stays. */
static bool prune(rnode *n, uint32_t layer, gone_how how)
{
	bool keep = n->layer == layer;
	for (rnode *c = n->first_child, *next; c != NULL; c = next) {
		next = c->next;
		if (prune(c, layer, how))
			keep = true;
		else
			kill_node(c, layer, how);
	}
	return keep;
}

static void set_implicit_dir(rnode *n, uint32_t layer)
{
	n->type = OCIL_TAR_DIR;
	n->mode = S_IFDIR | 0755;
	n->layer = n->data_layer = layer;
	n->link = n->data_path = NULL;
	n->size = 0;
	n->entry_index = OCIL_ROOTFS_NO_ENTRY;
}

/* The live child name of dir, created or revived (blank, linked into dir)
 * when missing; *created tells which. */
static int get_or_create(ocil_rootfs *fs, rnode *dir, const char *name, size_t len, rnode **out,
			 bool *created, ocil_error **err)
{
	rnode *n = find(fs, dir, name, len);
	if (n != NULL && !n->dead) {
		*out = n;
		*created = false;
		return 0;
	}
	if (n == NULL) {
		if (fs->index.n >= OCIL_ROOTFS_MAX_NODES)
			return ocil_error_set(err, OCIL_E_INPUT,
					      "more than %zu entries in the image",
					      OCIL_ROOTFS_MAX_NODES);
		n = alloc_node(fs);
		n->name = arena_strndup(fs, name, len);
		n->parent = dir;
		insert(fs, n);
	}
	n->dead = false;
	n->gone = 0;
	n->first_child = n->prev = NULL;
	n->next = dir->first_child;
	if (dir->first_child != NULL)
		dir->first_child->prev = n;
	dir->first_child = n;
	*out = n;
	*created = true;
	return 0;
}

/* The directory that holds path's last component, made the way unpacking
 * would: missing parents are created, and a parent that is not a directory
 * is replaced by one (each layer is unpacked into a directory of its own,
 * so a layer's "a/b" never goes through a lower symlink "a"). */
static int make_parent(ocil_rootfs *fs, const char *path, uint32_t layer, rnode **dir,
		       const char **base, ocil_error **err)
{
	rnode *cur = fs->root;
	const char *p = path + 1;
	for (;;) {
		const char *slash = strchr(p, '/');
		if (slash == NULL) {
			*dir = cur;
			*base = p;
			return 0;
		}
		rnode *c = NULL;
		bool created = false;
		if (get_or_create(fs, cur, p, (size_t)(slash - p), &c, &created, err) < 0)
			return -1;
		if (created || c->type != OCIL_TAR_DIR)
			set_implicit_dir(c, layer); /* a non-directory has no children */
		cur = c;
		p = slash + 1;
	}
}

/* The live node at a normalized path, without following symlinks. */
static rnode *find_literal(ocil_rootfs *fs, const char *path)
{
	rnode *cur = fs->root;
	const char *p = path + 1;
	while (*p != '\0') {
		if (cur->type != OCIL_TAR_DIR)
			return NULL;
		const char *end = strchrnul(p, '/');
		rnode *c = find(fs, cur, p, (size_t)(end - p));
		if (c == NULL || c->dead)
			return NULL;
		cur = c;
		p = *end ? end + 1 : end;
	}
	return cur;
}

static int entry_error(ocil_error **err, const char *what, const char *path, const char *msg)
{
	char q[OCIL_TAR_QUOTE_SIZE];
	return ocil_error_set(err, OCIL_E_INPUT, "%s: entry \"%s\": %s", what,
			      ocil_tar_quote(path, q), msg);
}

static int apply_whiteout(rnode *dir, const char *base, uint32_t layer, ocil_rootfs *fs,
			  const char *what, const char *path, ocil_error **err)
{
	if (strcmp(base, WH_OPAQUE) == 0) {
		for (rnode *c = dir->first_child, *next; c != NULL; c = next) {
			next = c->next;
			if (!prune(c, layer, GONE_OPAQUE))
				kill_node(c, layer, GONE_OPAQUE);
		}
		return 0;
	}
	/* AUFS bookkeeping (.wh..wh.plnk, .wh..wh.aufs): not content */
	if (strncmp(base, WH_META, strlen(WH_META)) == 0)
		return 0;
	const char *victim = base + strlen(WH_PREFIX);
	if (victim[0] == '\0' || strcmp(victim, ".") == 0 || strcmp(victim, "..") == 0)
		return entry_error(err, what, path, "invalid whiteout");
	rnode *v = find(fs, dir, victim, strlen(victim));
	if (v != NULL && !v->dead && !prune(v, layer, GONE_WHITEOUT))
		kill_node(v, layer, GONE_WHITEOUT);
	return 0;
}

static int add_entry(ocil_rootfs *fs, const ocil_tar_entry *e, uint32_t layer, const char *what,
		     ocil_error **err)
{
	if (strcmp(e->path, "/") == 0) {
		/* tarstream guarantees the root is a directory */
		fs->root->mode = e->mode;
		fs->root->layer = fs->root->data_layer = layer;
		fs->root->entry_index = e->index;
		return 0;
	}
	rnode *dir;
	const char *base;
	if (make_parent(fs, e->path, layer, &dir, &base, err) < 0)
		return ocil_error_wrap(err, "%s", what);
	if (strncmp(base, WH_PREFIX, strlen(WH_PREFIX)) == 0)
		return apply_whiteout(dir, base, layer, fs, what, e->path, err);

	/* A hardlink takes over its target's data and metadata; copy them
	 * before touching the tree, the target may be at the same path. */
	rnode src;
	memset(&src, 0, sizeof(src));
	if (e->type == OCIL_TAR_HARDLINK) {
		rnode *t = find_literal(fs, e->link);
		if (t == NULL) {
			char q[OCIL_TAR_QUOTE_SIZE];
			cleanup_free char *m =
			    ocil_xasprintf("hardlink to \"%s\", which is not in the image",
					   ocil_tar_quote(e->link, q));
			return entry_error(err, what, e->path, m);
		}
		if (t->type == OCIL_TAR_DIR)
			return entry_error(err, what, e->path, "hardlink to a directory");
		src = *t;
		if (src.data_path == NULL) {
			cleanup_free char *p = node_path(t);
			src.data_path = arena_strdup(fs, p);
		}
	} else {
		src.type = (uint8_t)e->type;
		src.mode = e->mode;
		src.size = e->size;
		src.link = e->link != NULL ? arena_strdup(fs, e->link) : NULL;
		src.data_path = NULL;
		src.data_layer = layer;
		src.entry_index = e->index;
	}

	rnode *n = NULL;
	bool created = false;
	if (get_or_create(fs, dir, base, strlen(base), &n, &created, err) < 0)
		return ocil_error_wrap(err, "%s", what);
	if (!created && n->type == OCIL_TAR_DIR && src.type != OCIL_TAR_DIR) {
		/* a non-directory over a directory: nothing below survives */
		for (rnode *c = n->first_child, *next; c != NULL; c = next) {
			next = c->next;
			kill_node(c, layer, GONE_REPLACED);
		}
	}
	/* A directory over a directory merges: children stay. */
	n->type = src.type;
	n->mode = src.mode;
	n->size = src.size;
	n->link = src.link;
	n->data_path = src.data_path;
	n->data_layer = src.data_layer;
	n->entry_index = src.entry_index;
	n->layer = layer;
	return 0;
}

/* "layer 2 (sha256:<hex>)" for blobs in a blob store, else the path. */
static char *layer_what(size_t i, const char *path)
{
	const char *slash = strrchr(path, '/');
	const char *base = slash != NULL ? slash + 1 : path;
	bool hex = strlen(base) == 64;
	for (const char *p = base; hex && *p; p++)
		hex = isdigit((unsigned char)*p) || (*p >= 'a' && *p <= 'f');
	if (hex && slash != NULL && slash - path >= 6 && memcmp(slash - 6, "sha256", 6) == 0)
		return ocil_xasprintf("layer %zu (sha256:%s)", i, base);
	return ocil_xasprintf("layer %zu (%s)", i, path);
}

static int index_layer(ocil_rootfs *fs, size_t i, const char *index_dir, const ocil_cancel *cancel,
		       ocil_error **err)
{
	cleanup_layer_entries ocil_layer_entries *it = NULL;
	if (ocil_layer_entries_open(fs->paths[i], fs->whats[i], index_dir, &it, err) < 0)
		return -1;
	for (;;) {
		if (ocil_cancel_check(cancel, err) < 0)
			return -1;
		const ocil_tar_entry *e;
		int r = ocil_layer_entries_next(it, &e, err);
		if (r <= 0)
			return r;
		if (add_entry(fs, e, (uint32_t)i, fs->whats[i], err) < 0)
			return -1;
	}
}

int ocil_rootfs_open(const char *const *layer_paths, size_t n, const ocil_cancel *cancel,
		     ocil_rootfs **out, ocil_error **err)
{
	return ocil_rootfs_open_indexed(layer_paths, n, NULL, cancel, out, err);
}

int ocil_rootfs_open_indexed(const char *const *layer_paths, size_t n, const char *index_dir,
			     const ocil_cancel *cancel, ocil_rootfs **out, ocil_error **err)
{
	if (n > OCIL_ROOTFS_MAX_LAYERS)
		return ocil_error_set(err, OCIL_E_INPUT, "image has %zu layers, more than %d", n,
				      OCIL_ROOTFS_MAX_LAYERS);
	cleanup_rootfs ocil_rootfs *fs = ocil_xcalloc(1, sizeof(*fs));
	fs->paths = ocil_xcalloc(n + 1, sizeof(char *));
	fs->whats = ocil_xcalloc(n + 1, sizeof(char *));
	fs->root = alloc_node(fs);
	fs->root->name = "";
	set_implicit_dir(fs->root, 0);
	for (size_t i = 0; i < n; i++) {
		fs->paths[i] = ocil_xstrdup(layer_paths[i]);
		fs->whats[i] = layer_what(i, layer_paths[i]);
		fs->nlayers = i + 1;
		if (index_layer(fs, i, index_dir, cancel, err) < 0)
			return -1;
	}
	*out = steal_pointer(&fs);
	return 0;
}

void ocil_rootfs_free(ocil_rootfs *fs)
{
	if (fs == NULL)
		return;
	for (size_t i = 0; i < fs->nlayers; i++) {
		free(fs->paths[i]);
		free(fs->whats[i]);
	}
	free(fs->paths);
	free(fs->whats);
	for (size_t i = 0; i < fs->nchunks; i++)
		free(fs->chunks[i]);
	free(fs->chunks);
	ocil_hashtab_release(&fs->index);
	for (strblock *b = fs->strings, *next; b != NULL; b = next) {
		next = b->next;
		free(b);
	}
	free(fs);
}

size_t ocil_rootfs_layer_count(const ocil_rootfs *fs)
{
	return fs->nlayers;
}

/* ---- lookups ---- */

static char *missing_reason(const rnode *dir, const char *name, size_t len, const rnode *dead)
{
	cleanup_free char *dp = node_path(dir);
	cleanup_free char *p =
	    ocil_xasprintf("%s%s%.*s", dp, dir->parent ? "/" : "", (int)len, name);
	char q[OCIL_TAR_QUOTE_SIZE];
	ocil_tar_quote(p, q);
	if (dead == NULL)
		return ocil_xasprintf("%s does not exist", q);
	switch (dead->gone) {
	case GONE_WHITEOUT:
		return ocil_xasprintf("%s was deleted by a whiteout in layer %u", q,
				      dead->removed_in);
	case GONE_OPAQUE:
		return ocil_xasprintf("%s was hidden by an opaque directory in layer %u", q,
				      dead->removed_in);
	default:
		return ocil_xasprintf("%s was replaced by a non-directory in layer %u", q,
				      dead->removed_in);
	}
}

/* Path resolution as the kernel does it, with the image root as both "/"
 * and the limit of "..". Returns 1 (*out), 0 (*why, malloc'd) or -1. */
static int resolve(ocil_rootfs *fs, const char *path, bool follow_last, rnode **out, char **why,
		   ocil_error **err)
{
	char q[OCIL_TAR_QUOTE_SIZE];
	if (strlen(path) > OCIL_TAR_NAME_MAX)
		return ocil_error_set(err, OCIL_E_INPUT, "\"%s\": path longer than %d bytes",
				      ocil_tar_quote(path, q), OCIL_TAR_NAME_MAX);
	/* the part still to walk; a symlink's target is spliced in front */
	cleanup_free char *buf = ocil_xstrdup(path);
	const char *rest = buf;
	rnode *cur = fs->root;
	int hops = 0;
	for (;;) {
		while (*rest == '/')
			rest++;
		if (*rest == '\0') {
			*out = cur;
			return 1;
		}
		const char *end = strchrnul(rest, '/');
		size_t len = (size_t)(end - rest);
		const char *after = end;
		while (*after == '/')
			after++;
		if (len == 1 && rest[0] == '.') {
			rest = end;
			continue;
		}
		if (len == 2 && rest[0] == '.' && rest[1] == '.') {
			if (cur->parent != NULL)
				cur = cur->parent;
			rest = end;
			continue;
		}
		if (cur->type != OCIL_TAR_DIR) {
			cleanup_free char *cp = node_path(cur);
			*why = ocil_xasprintf("%s is not a directory", ocil_tar_quote(cp, q));
			return 0;
		}
		rnode *c = find(fs, cur, rest, len);
		if (c == NULL || c->dead) {
			*why = missing_reason(cur, rest, len, c);
			return 0;
		}
		/* a trailing slash asks for a directory, so it follows too */
		bool last = *end == '\0';
		if (c->type == OCIL_TAR_SYMLINK && (!last || follow_last)) {
			if (++hops > OCIL_ROOTFS_MAX_HOPS)
				return ocil_error_set(err, OCIL_E_INPUT,
						      "%s: too many levels of symbolic links",
						      ocil_tar_quote(path, q));
			char *nb = ocil_xasprintf("%s%s%s", c->link, *end ? "/" : "", after);
			if (c->link[0] == '/')
				cur = fs->root;
			free(buf);
			buf = nb;
			rest = buf;
			continue;
		}
		if (*end == '/' && *after == '\0' && c->type != OCIL_TAR_DIR) {
			cleanup_free char *cp = node_path(c);
			*why = ocil_xasprintf("%s is not a directory", ocil_tar_quote(cp, q));
			return 0;
		}
		cur = c;
		rest = end;
	}
}

void ocil_rootfs_node_clear(ocil_rootfs_node *node)
{
	free(node->path);
	free(node->layer_path);
	free(node->link);
	free(node->missing);
	memset(node, 0, sizeof(*node));
}

int ocil_rootfs_lookup(ocil_rootfs *fs, const char *path, bool follow_last, ocil_rootfs_node *node,
		       ocil_error **err)
{
	ocil_rootfs_node_clear(node);
	rnode *n = NULL;
	char *why = NULL;
	int r = resolve(fs, path, follow_last, &n, &why, err);
	if (r <= 0) {
		node->missing = why;
		return r;
	}
	node->path = node_path(n);
	node->layer = n->data_layer;
	node->layer_path = n->data_path != NULL ? ocil_xstrdup(n->data_path) : node_path(n);
	node->entry_index = n->entry_index;
	node->type = (ocil_tar_type)n->type;
	node->mode = n->mode;
	node->size = n->size;
	node->link = n->link != NULL ? ocil_xstrdup(n->link) : NULL;
	return 1;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int ocil_rootfs_list(ocil_rootfs *fs, const char *dir, ocil_strv *names, ocil_error **err)
{
	rnode *d = NULL;
	cleanup_free char *why = NULL;
	int r = resolve(fs, dir, true, &d, &why, err);
	if (r <= 0)
		return r;
	if (d->type != OCIL_TAR_DIR)
		return 0;
	size_t start = names->n;
	for (const rnode *c = d->first_child; c != NULL; c = c->next)
		ocil_strv_push(names, ocil_xstrdup(c->name));
	if (names->n - start > 1)
		qsort(names->v + start, names->n - start, sizeof(char *), cmp_str);
	return 1;
}

int ocil_rootfs_open_file(ocil_rootfs *fs, const ocil_rootfs_node *node, ocil_tarstream **out,
			  ocil_error **err)
{
	char q[OCIL_TAR_QUOTE_SIZE];
	if (node->path == NULL || node->type != OCIL_TAR_FILE)
		return ocil_error_set(err, OCIL_E_INPUT, "%s: not a regular file",
				      node->path ? ocil_tar_quote(node->path, q) : "(no node)");
	if (node->layer >= fs->nlayers || node->entry_index == OCIL_ROOTFS_NO_ENTRY)
		return ocil_error_set(err, OCIL_E_IO, "%s: node does not belong to this image",
				      ocil_tar_quote(node->path, q));
	cleanup_tarstream ocil_tarstream *ts = NULL;
	const char *what = fs->whats[node->layer];
	if (ocil_tarstream_open_path(fs->paths[node->layer], what, &ts, err) < 0)
		return -1;
	for (;;) {
		const ocil_tar_entry *e;
		int r = ocil_tarstream_next(ts, &e, err);
		if (r < 0)
			return -1;
		if (r == 0 || e->index > node->entry_index)
			break;
		if (e->index < node->entry_index)
			continue;
		/* the blob is content-addressed, but its file could still
		 * have been swapped under us */
		if (strcmp(e->path, node->layer_path) != 0 || e->type != OCIL_TAR_FILE ||
		    e->size != node->size)
			break;
		*out = steal_pointer(&ts);
		return 0;
	}
	return ocil_error_set(err, OCIL_E_IO, "%s: entry %llu is no longer \"%s\"; layer changed?",
			      what, (unsigned long long)node->entry_index,
			      ocil_tar_quote(node->layer_path, q));
}
