/*
 * The store (see store.h): the replica's tree of directories, files and symlinks in memory.
 *
 * Every inode sits in two hash tables (store_hash.c): by number (linked inodes and unlinked ones
 * still pinned) and by (parent number, name) (linked inodes other than the root). Keying names by
 * the parent's number, not its path, makes a rename O(length of the name). A directory also keeps
 * its children in a doubly linked list in creation order, which gives readdir and snapshots a
 * stable order.
 *
 * store_apply() first checks everything an operation needs and allocates what it will need,
 * then mutates: a helper that returns -ENOMEM has changed nothing. An operation's outcome never
 * depends on pins, which differ between replicas: an unlinked inode, pinned or not, is "missing"
 * to every operation.
 */
#include "kvfs/store.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "kvfs/op.h"
#include "kvfs/value.h"
#include "store_hash.h"

struct kvfs_store {
	struct kvfs_inode *root;
	struct kvfs_store_hash hash; /* linked inodes and unlinked pinned ones */
	uint64_t applied_index, applied_epoch;
	uint64_t inode_count;          /* linked inodes, root included */
	uint64_t value_bytes;          /* bytes of linked regular files' values */
	struct kvfs_session *sessions; /* sorted by origin */
	size_t nsessions, sessions_cap;
};

/* A new unlinked inode with a copy of the name, or NULL if out of memory. */
static struct kvfs_inode *inode_new(uint64_t ino, uint32_t mode, const char *name, size_t len)
{
	struct kvfs_inode *in = calloc(1, sizeof(*in));

	if (!in)
		return NULL;
	in->name = malloc(len + 1);
	if (!in->name) {
		free(in);
		return NULL;
	}
	if (len)
		memcpy(in->name, name, len);
	in->name[len] = '\0';
	in->name_len = (uint32_t)len;
	in->ino = ino;
	in->mode = mode;
	in->nlink = S_ISDIR(mode) ? 2 : 1;
	return in;
}

static void inode_free(struct kvfs_inode *in)
{
	value_unref(in->value);
	free(in->name);
	free(in);
}

/* Enters in (named already) into directory dir: name table, child list, dir's counts. */
static void link_child(struct kvfs_store *s, struct kvfs_inode *dir, struct kvfs_inode *in)
{
	in->parent = dir;
	store_hash_add_name(&s->hash, in);
	in->sib_next = NULL;
	in->sib_prev = dir->child_tail;
	if (dir->child_tail)
		dir->child_tail->sib_next = in;
	else
		dir->child_head = in;
	dir->child_tail = in;
	dir->nchildren++;
	if (S_ISDIR(in->mode))
		dir->nlink++;
}

/* Takes in out of its parent directory, undoing link_child(). */
static void unlink_child(struct kvfs_store *s, struct kvfs_inode *in)
{
	struct kvfs_inode *dir = in->parent;

	store_hash_del_name(&s->hash, in);
	if (in->sib_prev)
		in->sib_prev->sib_next = in->sib_next;
	else
		dir->child_head = in->sib_next;
	if (in->sib_next)
		in->sib_next->sib_prev = in->sib_prev;
	else
		dir->child_tail = in->sib_prev;
	in->sib_prev = in->sib_next = NULL;
	dir->nchildren--;
	if (S_ISDIR(in->mode))
		dir->nlink--;
	in->parent = NULL;
}

/* Marks an inode that unlink_child() took out as removed; frees it unless it is pinned. */
static void drop_inode(struct kvfs_store *s, struct kvfs_inode *in, int64_t time_ns)
{
	assert(in->nchildren == 0);
	s->inode_count--;
	if (S_ISREG(in->mode))
		s->value_bytes -= value_size(in->value);
	in->nlink = 0;
	in->ctime_ns = time_ns;
	if (in->pins == 0) {
		store_hash_del_ino(&s->hash, in);
		inode_free(in);
	}
}

int store_init(struct kvfs_store **out)
{
	struct kvfs_store *s = calloc(1, sizeof(*s));

	if (!s)
		return -ENOMEM;
	if (store_hash_init(&s->hash))
		goto err_free_store;
	s->root = inode_new(KVFS_ROOT_INO, S_IFDIR | 0755, "", 0);
	if (!s->root)
		goto err_free_hash;
	store_hash_add_ino(&s->hash, s->root);
	s->inode_count = 1;
	*out = s;
	return 0;

err_free_hash:
	store_hash_free(&s->hash);
err_free_store:
	free(s);
	return -ENOMEM;
}

void store_close(struct kvfs_store *s)
{
	if (!s)
		return;
	store_hash_drain(&s->hash, inode_free);
	store_hash_free(&s->hash);
	free(s->sessions);
	free(s);
}

uint64_t store_applied_index(const struct kvfs_store *s)
{
	return s->applied_index;
}

uint64_t store_applied_epoch(const struct kvfs_store *s)
{
	return s->applied_epoch;
}

uint64_t store_inode_count(const struct kvfs_store *s)
{
	return s->inode_count;
}

uint64_t store_value_bytes(const struct kvfs_store *s)
{
	return s->value_bytes;
}

struct kvfs_inode *store_get(const struct kvfs_store *s, uint64_t ino)
{
	return store_hash_get_ino(&s->hash, ino);
}

/* The linked inode ino: what operations may address. NULL if none or unlinked. */
static struct kvfs_inode *store_get_linked(const struct kvfs_store *s, uint64_t ino)
{
	struct kvfs_inode *in = store_get(s, ino);

	return in && in->nlink ? in : NULL;
}

struct kvfs_inode *store_lookup(const struct kvfs_store *s, const struct kvfs_inode *dir,
                                const char *name, size_t len)
{
	if (!dir || !S_ISDIR(dir->mode) || len == 0 || dir->nchildren == 0)
		return NULL;
	return store_hash_get_name(&s->hash, dir, name, len);
}

void store_pin(struct kvfs_store *s, struct kvfs_inode *in, uint64_t n)
{
	assert(in->pins + n >= in->pins);
	in->pins += n;
}

void store_unpin(struct kvfs_store *s, struct kvfs_inode *in, uint64_t n)
{
	assert(in->pins >= n);
	in->pins -= n;
	if (in->pins == 0 && in->nlink == 0) {
		store_hash_del_ino(&s->hash, in);
		inode_free(in);
	}
}

struct kvfs_inode *store_child_first(const struct kvfs_inode *dir)
{
	return dir->child_head;
}

struct kvfs_inode *store_child_next(const struct kvfs_inode *child)
{
	return child->sib_next;
}

size_t store_path_len(const struct kvfs_inode *in)
{
	size_t n = 0;

	for (; in && in->parent; in = in->parent)
		n += in->name_len + (in->parent->parent ? 1 : 0);
	return n;
}

static bool name_is(const char *name, size_t len, const char *s)
{
	return len == strlen(s) && memcmp(name, s, len) == 0;
}

static bool name_starts(const char *name, size_t len, const char *prefix)
{
	size_t n = strlen(prefix);

	return len >= n && memcmp(name, prefix, n) == 0;
}

/* 0 if name is a well-formed entry name (not ".", "..", no '/' or NUL, NAME_MAX at most). */
static int check_name_syntax(const char *name, size_t len)
{
	if (len == 0 || name_is(name, len, ".") || name_is(name, len, ".."))
		return -EINVAL;
	if (memchr(name, '/', len) || memchr(name, '\0', len))
		return -EINVAL;
	if (len > KVFS_NAME_MAX)
		return -ENAMETOOLONG;
	return 0;
}

/*
 * 0 if name may be created in dir: well-formed, the new path no longer than KVFS_PATH_MAX, and
 * not reserved (names starting with ".status" or ".kvfs" in the root belong to virtual files).
 */
static int check_new_name(const struct kvfs_inode *dir, const char *name, size_t len)
{
	int rv = check_name_syntax(name, len);

	if (rv)
		return rv;
	if (dir->ino != KVFS_ROOT_INO)
		return store_path_len(dir) + 1 + len > KVFS_PATH_MAX ? -ENAMETOOLONG : 0;
	if (name_is(name, len, ".status") || name_is(name, len, ".status.json"))
		return -EEXIST;
	if (name_starts(name, len, ".status") || name_starts(name, len, ".kvfs"))
		return -EACCES;
	return 0;
}

/*
 * The operation helpers below return the operation's outcome (0 or a negative errno), except
 * -ENOMEM, which means that nothing changed and the operation must not be consumed.
 */

/*
 * The largest value op may leave behind: its own max_value, and never more than KVFS_DATA_MAX
 * (max_value 0 included), so that no committed operation can ask for more memory than any
 * replica will give it: that would stop every replica at the same entry, at every restart.
 */
static uint64_t value_limit(const struct kvfs_op *op)
{
	return op->max_value && op->max_value < KVFS_DATA_MAX ? op->max_value : KVFS_DATA_MAX;
}

/* PUT and APPEND. */
static int apply_write(struct kvfs_store *s, const struct kvfs_op *op,
                       struct kvfs_apply_result *res)
{
	struct kvfs_inode *in = store_get_linked(s, op->ino);
	uint64_t old, max = value_limit(op);
	struct kvfs_value *v = NULL;
	int rv;

	if (!in)
		return -ENOENT;
	if (S_ISDIR(in->mode))
		return -EISDIR;
	if (!S_ISREG(in->mode))
		return -EINVAL;
	old = value_size(in->value);
	if (op->type == KVFS_OP_PUT) {
		if (op->data_len > max)
			return -EFBIG;
		if (op->data_len) {
			v = value_new(op->data, op->data_len);
			if (!v)
				return -ENOMEM;
		}
		value_unref(in->value);
		in->value = v;
	} else {
		if (op->data_len > max || old > max - op->data_len)
			return -EFBIG;
		rv = value_append(&in->value, op->data, op->data_len);
		if (rv)
			return rv;
	}
	s->value_bytes = s->value_bytes - old + value_size(in->value);
	in->mtime_ns = in->ctime_ns = op->time_ns;
	res->ino = in->ino;
	return 0;
}

/* CREATE, MKDIR and SYMLINK; the new inode's number comes from the log index. */
static int apply_create(struct kvfs_store *s, uint64_t index, const struct kvfs_op *op,
                        struct kvfs_apply_result *res)
{
	struct kvfs_inode *dir = store_get_linked(s, op->parent), *old, *in;
	struct kvfs_value *v = NULL;
	uint32_t mode;
	int rv;

	if (!dir)
		return -ENOENT;
	if (!S_ISDIR(dir->mode))
		return -ENOTDIR;
	rv = check_new_name(dir, op->name, op->name_len);
	if (rv)
		return rv;
	old = store_lookup(s, dir, op->name, op->name_len);
	if (op->type == KVFS_OP_CREATE) {
		if (old) {
			if (op->flags & KVFS_CREATE_EXCL)
				return -EEXIST;
			if (S_ISDIR(old->mode))
				return -EISDIR;
			if (!S_ISREG(old->mode))
				return -EEXIST;
			res->ino = old->ino;
			return 0;
		}
		mode = S_IFREG | (op->mode & 07777);
	} else if (op->type == KVFS_OP_MKDIR) {
		if (old)
			return -EEXIST;
		mode = S_IFDIR | (op->mode & 07777);
	} else {
		if (old)
			return -EEXIST;
		if (op->data_len == 0)
			return -ENOENT;
		if (op->data_len > KVFS_PATH_MAX)
			return -ENAMETOOLONG;
		mode = S_IFLNK | 0777;
		v = value_new(op->data, op->data_len);
		if (!v)
			return -ENOMEM;
	}

	in = inode_new(KVFS_INO_BASE + index, mode, op->name, op->name_len);
	if (!in) {
		value_unref(v);
		return -ENOMEM;
	}
	/* Numbers come from log indices, which store_apply() only lets grow. */
	assert(!store_get(s, in->ino));
	in->uid = op->uid;
	in->gid = op->gid;
	in->atime_ns = in->mtime_ns = in->ctime_ns = op->time_ns;
	in->value = v;
	store_hash_grow(&s->hash);
	store_hash_add_ino(&s->hash, in);
	link_child(s, dir, in);
	dir->mtime_ns = dir->ctime_ns = op->time_ns;
	s->inode_count++;
	res->ino = in->ino;
	return 0;
}

/* UNLINK and RMDIR. */
static int apply_remove(struct kvfs_store *s, const struct kvfs_op *op,
                        struct kvfs_apply_result *res)
{
	struct kvfs_inode *dir = store_get_linked(s, op->parent), *in;

	if (!dir)
		return -ENOENT;
	if (!S_ISDIR(dir->mode))
		return -ENOTDIR;
	in = store_lookup(s, dir, op->name, op->name_len);
	if (!in)
		return -ENOENT;
	if (op->type == KVFS_OP_UNLINK) {
		if (S_ISDIR(in->mode))
			return -EISDIR;
	} else {
		if (!S_ISDIR(in->mode))
			return -ENOTDIR;
		if (in->nchildren)
			return -ENOTEMPTY;
	}
	res->ino = in->ino;
	unlink_child(s, in);
	drop_inode(s, in, op->time_ns);
	dir->mtime_ns = dir->ctime_ns = op->time_ns;
	return 0;
}

static int apply_rename(struct kvfs_store *s, const struct kvfs_op *op,
                        struct kvfs_apply_result *res)
{
	struct kvfs_inode *dir = store_get_linked(s, op->parent);
	struct kvfs_inode *ndir = store_get_linked(s, op->newparent);
	struct kvfs_inode *src, *dst;
	char *name;
	int rv;

	if (!dir || !ndir)
		return -ENOENT;
	if (!S_ISDIR(dir->mode) || !S_ISDIR(ndir->mode))
		return -ENOTDIR;
	src = store_lookup(s, dir, op->name, op->name_len);
	if (!src)
		return -ENOENT;
	rv = check_new_name(ndir, op->newname, op->newname_len);
	if (rv)
		return rv;
	dst = store_lookup(s, ndir, op->newname, op->newname_len);
	if (dst == src) {
		res->ino = src->ino;
		return 0;
	}
	if (dst && (op->flags & KVFS_RENAME_NOREPLACE))
		return -EEXIST;
	if (S_ISDIR(src->mode)) {
		for (const struct kvfs_inode *p = ndir; p; p = p->parent) {
			if (p == src)
				return -EINVAL;
		}
	}
	if (dst) {
		if (S_ISDIR(src->mode) && !S_ISDIR(dst->mode))
			return -ENOTDIR;
		if (!S_ISDIR(src->mode) && S_ISDIR(dst->mode))
			return -EISDIR;
		if (dst->nchildren)
			return -ENOTEMPTY;
	}

	name = malloc(op->newname_len + 1u);
	if (!name)
		return -ENOMEM;
	memcpy(name, op->newname, op->newname_len);
	name[op->newname_len] = '\0';
	if (dst) {
		res->replaced_ino = dst->ino;
		unlink_child(s, dst);
		drop_inode(s, dst, op->time_ns);
	}
	unlink_child(s, src);
	free(src->name);
	src->name = name;
	src->name_len = op->newname_len;
	link_child(s, ndir, src);
	dir->mtime_ns = dir->ctime_ns = op->time_ns;
	ndir->mtime_ns = ndir->ctime_ns = op->time_ns;
	src->ctime_ns = op->time_ns;
	res->ino = src->ino;
	return 0;
}

static int apply_setattr(struct kvfs_store *s, const struct kvfs_op *op,
                         struct kvfs_apply_result *res)
{
	struct kvfs_inode *in = store_get_linked(s, op->ino);
	uint32_t f = op->flags;
	uint64_t old;
	int rv;

	if (!in)
		return -ENOENT;
	if (f & KVFS_SET_SIZE) {
		if (S_ISDIR(in->mode))
			return -EISDIR;
		if (!S_ISREG(in->mode))
			return -EINVAL;
		if (op->size > value_limit(op))
			return -EFBIG;
		/* The last step that can fail: everything after it cannot. */
		old = value_size(in->value);
		rv = value_resize(&in->value, op->size);
		if (rv)
			return rv;
		s->value_bytes = s->value_bytes - old + op->size;
		if (!(f & (KVFS_SET_MTIME | KVFS_SET_MTIME_NOW)))
			in->mtime_ns = op->time_ns;
	}
	if (f & KVFS_SET_MODE)
		in->mode = (in->mode & (uint32_t)S_IFMT) | (op->mode & 07777);
	if (f & KVFS_SET_UID)
		in->uid = op->uid;
	if (f & KVFS_SET_GID)
		in->gid = op->gid;
	if (f & KVFS_SET_ATIME_NOW)
		in->atime_ns = op->time_ns;
	else if (f & KVFS_SET_ATIME)
		in->atime_ns = op->atime_ns;
	if (f & KVFS_SET_MTIME_NOW)
		in->mtime_ns = op->time_ns;
	else if (f & KVFS_SET_MTIME)
		in->mtime_ns = op->mtime_ns;
	in->ctime_ns = op->time_ns;
	res->ino = in->ino;
	return 0;
}

/* Position of origin in the sorted session table, or where it would go; *found says which. */
static size_t session_pos(const struct kvfs_store *s, uint32_t origin, bool *found)
{
	size_t lo = 0, hi = s->nsessions;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (s->sessions[mid].origin < origin)
			lo = mid + 1;
		else
			hi = mid;
	}
	*found = lo < s->nsessions && s->sessions[lo].origin == origin;
	return lo;
}

/* Makes room for one more session. -ENOMEM (nothing changed) on failure. */
static int session_reserve(struct kvfs_store *s)
{
	struct kvfs_session *t;
	size_t cap;

	if (s->nsessions < s->sessions_cap)
		return 0;
	cap = s->sessions_cap ? s->sessions_cap * 2 : 8;
	t = realloc(s->sessions, cap * sizeof(*t));
	if (!t)
		return -ENOMEM;
	s->sessions = t;
	s->sessions_cap = cap;
	return 0;
}

/* Records sess, replacing its origin's entry; a new origin needs room (session_reserve). */
static void session_set(struct kvfs_store *s, const struct kvfs_session *sess)
{
	bool found;
	size_t i = session_pos(s, sess->origin, &found);

	if (!found) {
		assert(s->nsessions < s->sessions_cap);
		memmove(&s->sessions[i + 1], &s->sessions[i],
		        (s->nsessions - i) * sizeof(*s->sessions));
		s->nsessions++;
	}
	s->sessions[i] = *sess;
}

static int apply_op(struct kvfs_store *s, uint64_t index, const struct kvfs_op *op,
                    struct kvfs_apply_result *res)
{
	switch (op->type) {
	case KVFS_OP_NOOP:
		return 0;
	case KVFS_OP_PUT:
	case KVFS_OP_APPEND:
		return apply_write(s, op, res);
	case KVFS_OP_CREATE:
	case KVFS_OP_MKDIR:
	case KVFS_OP_SYMLINK:
		return apply_create(s, index, op, res);
	case KVFS_OP_UNLINK:
	case KVFS_OP_RMDIR:
		return apply_remove(s, op, res);
	case KVFS_OP_RENAME:
		return apply_rename(s, op, res);
	case KVFS_OP_SETATTR:
		return apply_setattr(s, op, res);
	default:
		/* op_decode() lets none through; an op built by hand fails deterministically. */
		return -EINVAL;
	}
}

/*
 * See store.h. Total: whatever op holds (an unknown type, bad names, sizes over its limit), its
 * outcome is an errno in res->err, recorded in the exactly-once table like any other, so that it
 * cannot wedge the replica. Only running out of memory is an error of the call.
 */
int store_apply(struct kvfs_store *s, uint64_t epoch, uint64_t index, const struct kvfs_op *op,
                struct kvfs_apply_result *res)
{
	bool track = op->origin != 0 && op->seq != 0;
	int rv;

	memset(res, 0, sizeof(*res));
	if (index != s->applied_index + 1)
		return -EINVAL;
	if (track && op->seq > KVFS_SEQ_MAX) {
		/* Out of range (op.h): a failed op, remembered nowhere, so that no origin's seq
		 * can be pushed to where the next one would wrap. */
		res->err = -EINVAL;
		goto consume;
	}
	if (track) {
		bool found;
		size_t i = session_pos(s, op->origin, &found);

		if (found && s->sessions[i].seq >= op->seq) {
			res->duplicate = true;
			if (s->sessions[i].seq == op->seq) {
				res->err = s->sessions[i].err;
				res->ino = s->sessions[i].ino;
			}
			goto consume;
		}
		if (!found && session_reserve(s))
			return -ENOMEM;
	}
	rv = apply_op(s, index, op, res);
	if (rv == -ENOMEM) {
		memset(res, 0, sizeof(*res));
		return -ENOMEM;
	}
	if (rv) {
		res->ino = 0;
		res->replaced_ino = 0;
	}
	res->err = rv;
	if (track) {
		struct kvfs_session sess = {op->origin, op->seq, rv, res->ino};

		session_set(s, &sess);
	}
consume:
	s->applied_index = index;
	s->applied_epoch = epoch;
	return 0;
}

/* Pre-order, without recursion: trees can be 2000 levels deep. */
int store_foreach(const struct kvfs_store *s, kvfs_store_visit_fn fn, void *arg)
{
	const struct kvfs_inode *in = s->root;
	int rv;

	while (in) {
		rv = fn(arg, in);
		if (rv)
			return rv;
		if (in->child_head) {
			in = in->child_head;
			continue;
		}
		while (in != s->root && !in->sib_next)
			in = in->parent;
		in = in == s->root ? NULL : in->sib_next;
	}
	return 0;
}

/*
 * See store.h. Checks that the inode makes a valid tree: a known ino is -EBADMSG, as are a number
 * below KVFS_INO_BASE (other than the root), a type other than file, directory or symlink, a
 * malformed name, a directory with a value and a symlink without one. Path lengths and reserved
 * names are not checked: a renamed directory can legitimately hold paths longer than
 * KVFS_PATH_MAX.
 */
int store_load_inode(struct kvfs_store *s, uint64_t parent_ino, const struct kvfs_inode *in)
{
	struct kvfs_inode *dir, *n;
	uint32_t type = in->mode & S_IFMT;

	if (in->ino == KVFS_ROOT_INO) {
		if (parent_ino != 0 || type != S_IFDIR || in->name_len != 0 || in->value)
			return -EBADMSG;
		s->root->mode = in->mode;
		s->root->uid = in->uid;
		s->root->gid = in->gid;
		s->root->atime_ns = in->atime_ns;
		s->root->mtime_ns = in->mtime_ns;
		s->root->ctime_ns = in->ctime_ns;
		return 0;
	}
	if (in->ino < KVFS_INO_BASE || store_get(s, in->ino))
		return -EBADMSG;
	if (type != S_IFREG && type != S_IFDIR && type != S_IFLNK)
		return -EBADMSG;
	if ((type == S_IFDIR && in->value) || (type == S_IFLNK && value_size(in->value) == 0))
		return -EBADMSG;
	dir = store_get_linked(s, parent_ino);
	if (!dir || !S_ISDIR(dir->mode) || check_name_syntax(in->name, in->name_len))
		return -EBADMSG;
	if (store_lookup(s, dir, in->name, in->name_len))
		return -EBADMSG;

	n = inode_new(in->ino, in->mode, in->name, in->name_len);
	if (!n)
		return -ENOMEM;
	n->uid = in->uid;
	n->gid = in->gid;
	n->atime_ns = in->atime_ns;
	n->mtime_ns = in->mtime_ns;
	n->ctime_ns = in->ctime_ns;
	n->value = value_ref(in->value);
	store_hash_grow(&s->hash);
	store_hash_add_ino(&s->hash, n);
	link_child(s, dir, n);
	s->inode_count++;
	if (type == S_IFREG)
		s->value_bytes += value_size(n->value);
	return 0;
}

void store_load_done(struct kvfs_store *s, uint64_t index, uint64_t epoch)
{
	s->applied_index = index;
	s->applied_epoch = epoch;
}

/* Visits the sessions in increasing origin order; a non-zero return stops and is returned. */
int store_session_foreach(const struct kvfs_store *s, kvfs_store_session_fn fn, void *arg)
{
	for (size_t i = 0; i < s->nsessions; i++) {
		int rv = fn(arg, &s->sessions[i]);

		if (rv)
			return rv;
	}
	return 0;
}

/* Adds a session while loading a snapshot: -EBADMSG for origin or seq 0, a seq over
 * KVFS_SEQ_MAX (store_apply never records one) or a known origin. */
int store_session_load(struct kvfs_store *s, const struct kvfs_session *sess)
{
	bool found;

	if (sess->origin == 0 || sess->seq == 0 || sess->seq > KVFS_SEQ_MAX)
		return -EBADMSG;
	session_pos(s, sess->origin, &found);
	if (found)
		return -EBADMSG;
	if (session_reserve(s))
		return -ENOMEM;
	session_set(s, sess);
	return 0;
}

void store_exchange(struct kvfs_store *a, struct kvfs_store *b)
{
	struct kvfs_store t = *a;

	*a = *b;
	*b = t;
}

bool store_session_get(const struct kvfs_store *s, uint32_t origin, struct kvfs_session *out)
{
	bool found;
	size_t i = session_pos(s, origin, &found);

	if (found)
		*out = s->sessions[i];
	return found;
}
