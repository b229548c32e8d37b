/*
 * Applying operations to the store (store_apply(), see store.h): one helper per kind of
 * operation over the tree that store.c keeps, and the exactly-once check around them.
 *
 * Each helper first checks everything the operation needs and allocates what it will need, then
 * mutates: a helper that returns -ENOMEM has changed nothing. An operation's outcome never
 * depends on pins, which differ between replicas: an unlinked inode, pinned or not, is "missing"
 * to every operation. An operation without KVFS_OP_RULES2 (written by protocol 1) applies exactly
 * as protocol 1 applied it; the bit changes only what op.h says it changes.
 */
#include "kvfs/store.h"

#include <assert.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "kvfs/op.h"
#include "kvfs/store_xattr.h"
#include "kvfs/value.h"
#include "store_hash.h"
#include "store_internal.h"

/*
 * The operation helpers below return the operation's outcome (0 or a negative errno), except
 * -ENOMEM, which means that nothing changed and the operation must not be consumed.
 */

static bool rules2(const struct kvfs_op *op)
{
	return (op->flags & KVFS_OP_RULES2) != 0;
}

/*
 * The largest value op may leave behind: its own max_value, and never more than KVFS_DATA_MAX
 * (max_value 0 included), so that no committed operation can ask for more memory than any
 * replica will give it: that would stop every replica at the same entry, at every restart.
 */
static uint64_t value_limit(const struct kvfs_op *op)
{
	return op->max_value && op->max_value < KVFS_DATA_MAX ? op->max_value : KVFS_DATA_MAX;
}

/* A directory whose entries changed. */
static void touch_dir(struct kvfs_inode *dir, int64_t time_ns)
{
	dir->mtime_ns = dir->ctime_ns = time_ns;
}

/* Whether directory p is a, or lies below a. */
static bool is_within(const struct kvfs_inode *p, const struct kvfs_inode *a)
{
	for (; p; p = store_dir_of(p)) {
		if (p == a)
			return true;
	}
	return false;
}

/* Books a change of in's contents from `old` bytes made by op: the store's byte count, mtime and
 * ctime, the result. */
static void contents_changed(struct kvfs_store *s, struct kvfs_inode *in, uint64_t old,
                             const struct kvfs_op *op, struct kvfs_apply_result *res)
{
	s->value_bytes = s->value_bytes - old + value_size(in->value);
	in->mtime_ns = in->ctime_ns = op->time_ns;
	res->ino = in->ino;
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
	contents_changed(s, in, old, op, res);
	return 0;
}

/* MKNOD's mode: one of the four special types and permission bits; a device number only for a
 * device. -EINVAL otherwise. */
static int mknod_mode(const struct kvfs_op *op, uint32_t *mode)
{
	uint32_t type = op->mode & (uint32_t)S_IFMT;

	if (type != S_IFIFO && type != S_IFSOCK && type != S_IFCHR && type != S_IFBLK)
		return -EINVAL;
	if (op->rdev && type != S_IFCHR && type != S_IFBLK)
		return -EINVAL;
	*mode = type | (op->mode & 07777);
	return 0;
}

/* Whether op's name may be made in dir (a linked inode, or NULL): -ENOENT, -ENOTDIR, what
 * store_check_new_name() refuses, or 0. */
static int check_new_entry(const struct kvfs_inode *dir, const struct kvfs_op *op)
{
	if (!dir)
		return -ENOENT;
	if (!S_ISDIR(dir->mode))
		return -ENOTDIR;
	return store_check_new_name(dir, op->name, op->name_len, rules2(op));
}

/* What a new name's lookup in apply_create() decides: the mode of the inode to make, or the
 * outcome when none is made (*mode 0). */
static int create_mode(const struct kvfs_op *op, const struct kvfs_inode *old, uint32_t *mode,
                       struct kvfs_apply_result *res)
{
	*mode = 0;
	switch (op->type) {
	case KVFS_OP_CREATE:
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
		*mode = S_IFREG | (op->mode & 07777);
		return 0;
	case KVFS_OP_MKDIR:
		*mode = S_IFDIR | (op->mode & 07777);
		return old ? -EEXIST : 0;
	case KVFS_OP_MKNOD:
		if (old)
			return -EEXIST;
		return mknod_mode(op, mode);
	default:
		if (old)
			return -EEXIST;
		if (op->data_len == 0)
			return -ENOENT;
		if (op->data_len > KVFS_PATH_MAX)
			return -ENAMETOOLONG;
		*mode = S_IFLNK | 0777;
		return 0;
	}
}

/* CREATE, MKDIR, SYMLINK and MKNOD; the new inode's number comes from the log index. */
static int apply_create(struct kvfs_store *s, uint64_t index, const struct kvfs_op *op,
                        struct kvfs_apply_result *res)
{
	struct kvfs_inode *dir = store_get_linked(s, op->parent), *in;
	struct kvfs_value *v = NULL;
	struct kvfs_dentry *d;
	uint32_t mode;
	int rv;

	if (op->type == KVFS_OP_MKNOD) {
		/* As mknod(2), a bad type is refused before the name is looked at. */
		rv = mknod_mode(op, &mode);
		if (rv)
			return rv;
	}
	rv = check_new_entry(dir, op);
	if (rv)
		return rv;
	rv = create_mode(op, store_lookup(s, dir, op->name, op->name_len), &mode, res);
	if (rv || !mode)
		return rv;
	if (S_ISLNK(mode)) {
		v = value_new(op->data, op->data_len);
		if (!v)
			return -ENOMEM;
	}
	in = store_inode_new(KVFS_INO_BASE + index, mode);
	d = store_dentry_new(op->name, op->name_len);
	if (!in || !d) {
		free(in);
		store_dentry_free(d);
		value_unref(v);
		return -ENOMEM;
	}
	/* Numbers come from log indices, which store_apply() only lets grow. */
	assert(!store_get(s, in->ino));
	in->uid = op->uid;
	in->gid = op->gid;
	if (rules2(op) && (dir->mode & S_ISGID)) {
		/* A setgid directory hands its group down, and its setgid bit to directories. */
		in->gid = dir->gid;
		if (S_ISDIR(mode))
			in->mode |= S_ISGID;
	}
	if (op->type == KVFS_OP_MKNOD)
		in->rdev = op->rdev;
	in->atime_ns = in->mtime_ns = in->ctime_ns = op->time_ns;
	in->value = v;
	store_hash_grow(&s->hash);
	store_hash_add_ino(&s->hash, in);
	store_link_name(s, dir, d, in);
	touch_dir(dir, op->time_ns);
	s->inode_count++;
	res->ino = in->ino;
	return 0;
}

/* Takes name d away from its inode (which keeps its other names, if any) and frees it. The
 * inode's nlink once done, 0 if it went with its last name. */
static uint32_t remove_name(struct kvfs_store *s, struct kvfs_dentry *d, int64_t time_ns)
{
	struct kvfs_inode *in = d->in;

	store_unlink_name(s, d);
	store_dentry_free(d);
	if (in->aliases) {
		in->ctime_ns = time_ns;
		return in->nlink;
	}
	store_drop_inode(s, in, time_ns);
	return 0;
}

/* UNLINK and RMDIR. */
static int apply_remove(struct kvfs_store *s, const struct kvfs_op *op,
                        struct kvfs_apply_result *res)
{
	struct kvfs_inode *dir = store_get_linked(s, op->parent), *in;
	struct kvfs_dentry *d;

	if (!dir)
		return -ENOENT;
	if (!S_ISDIR(dir->mode))
		return -ENOTDIR;
	d = store_find_name(s, dir, op->name, op->name_len);
	if (!d)
		return -ENOENT;
	in = d->in;
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
	res->nlink_after = remove_name(s, d, op->time_ns);
	touch_dir(dir, op->time_ns);
	return 0;
}

/* LINK: another name for a linked non-directory, in the order of link(2)'s checks. */
static int apply_link(struct kvfs_store *s, const struct kvfs_op *op, struct kvfs_apply_result *res)
{
	struct kvfs_inode *in = store_get_linked(s, op->ino);
	struct kvfs_inode *dir = store_get_linked(s, op->parent);
	struct kvfs_dentry *d;
	int rv;

	if (!in)
		return -ENOENT;
	rv = check_new_entry(dir, op);
	if (rv)
		return rv;
	if (store_find_name(s, dir, op->name, op->name_len))
		return -EEXIST;
	if (S_ISDIR(in->mode))
		return -EPERM;
	if (in->nlink >= KVFS_LINK_MAX)
		return -EMLINK;
	d = store_dentry_new(op->name, op->name_len);
	if (!d)
		return -ENOMEM;
	store_hash_grow(&s->hash);
	store_link_name(s, dir, d, in);
	in->ctime_ns = op->time_ns;
	touch_dir(dir, op->time_ns);
	res->ino = in->ino;
	res->nlink_after = in->nlink;
	return 0;
}

/* RENAME with KVFS_RENAME_EXCHANGE, once both names are known to exist: the two names swap
 * their inodes. Cannot fail. */
static void exchange_names(struct kvfs_dentry *sd, struct kvfs_dentry *dd, int64_t time_ns,
                           struct kvfs_apply_result *res)
{
	struct kvfs_inode *a = sd->in, *b = dd->in;

	store_rebind(sd, b);
	store_rebind(dd, a);
	touch_dir(sd->dir, time_ns);
	touch_dir(dd->dir, time_ns);
	a->ctime_ns = b->ctime_ns = time_ns;
	res->ino = a->ino;
	res->ino2 = b->ino;
	res->nlink_after = a->nlink;
}

/* RENAME once the checks passed: moves name sd to (ndir, newname), replacing dd if any. The
 * name is a new dentry in sd's place among its inode's names (a dentry's name lives in it). */
static int move_name(struct kvfs_store *s, struct kvfs_dentry *sd, struct kvfs_inode *ndir,
                     struct kvfs_dentry *dd, const struct kvfs_op *op,
                     struct kvfs_apply_result *res)
{
	struct kvfs_inode *dir = sd->dir, *in = sd->in;
	struct kvfs_dentry *nd = store_dentry_new(op->newname, op->newname_len);

	if (!nd)
		return -ENOMEM;
	if (dd) {
		/* A replaced file with other names loses this one only. */
		res->replaced_ino = dd->in->ino;
		res->replaced_nlink_after = remove_name(s, dd, op->time_ns);
	}
	store_detach(s, sd);
	store_replace_alias(sd, nd);
	store_dentry_free(sd);
	store_attach(s, ndir, nd);
	touch_dir(dir, op->time_ns);
	touch_dir(ndir, op->time_ns);
	in->ctime_ns = op->time_ns;
	res->ino = in->ino;
	res->nlink_after = in->nlink;
	return 0;
}

static int apply_rename(struct kvfs_store *s, const struct kvfs_op *op,
                        struct kvfs_apply_result *res)
{
	struct kvfs_inode *dir = store_get_linked(s, op->parent);
	struct kvfs_inode *ndir = store_get_linked(s, op->newparent);
	bool exchange = op->flags & KVFS_RENAME_EXCHANGE;
	struct kvfs_dentry *sd, *dd;
	int rv;

	if (exchange && (op->flags & KVFS_RENAME_NOREPLACE))
		return -EINVAL;
	if (!dir || !ndir)
		return -ENOENT;
	if (!S_ISDIR(dir->mode) || !S_ISDIR(ndir->mode))
		return -ENOTDIR;
	sd = store_find_name(s, dir, op->name, op->name_len);
	if (!sd)
		return -ENOENT;
	/* An exchange makes no new name: the target must exist, whatever it is called. */
	rv = exchange ? store_check_name(op->newname, op->newname_len)
	              : store_check_new_name(ndir, op->newname, op->newname_len, rules2(op));
	if (rv)
		return rv;
	dd = store_find_name(s, ndir, op->newname, op->newname_len);
	if (exchange && !dd)
		return -ENOENT;
	if (dd && dd->in == sd->in) {
		/* Two names of one inode (or one name twice): POSIX says do nothing. */
		res->ino = sd->in->ino;
		res->ino2 = exchange ? dd->in->ino : 0;
		res->nlink_after = sd->in->nlink;
		return 0;
	}
	if (dd && (op->flags & KVFS_RENAME_NOREPLACE))
		return -EEXIST;
	if (S_ISDIR(sd->in->mode) && is_within(ndir, sd->in))
		return -EINVAL;
	if (exchange) {
		if (S_ISDIR(dd->in->mode) && is_within(dir, dd->in))
			return -EINVAL;
		exchange_names(sd, dd, op->time_ns, res);
		return 0;
	}
	if (dd) {
		if (S_ISDIR(sd->in->mode) && !S_ISDIR(dd->in->mode))
			return -ENOTDIR;
		if (!S_ISDIR(sd->in->mode) && S_ISDIR(dd->in->mode))
			return -EISDIR;
		if (dd->in->nchildren)
			return -ENOTEMPTY;
	}
	return move_name(s, sd, ndir, dd, op, res);
}

/* SETATTR. Every one changes ctime, and a size mtime (unless times are given), in both
 * protocols: protocol 1 did so already, which is what KVFS_OP_RULES2 asks. */
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

/* FALLOCATE's checks, in fallocate(2)'s order once the inode is known: 0 or the errno. */
static int fallocate_check(const struct kvfs_op *op, const struct kvfs_inode *in)
{
	uint32_t mode = op->flags & ~KVFS_OP_RULES2;
	uint64_t end = op->offset + op->length;

	if (mode & ~(KVFS_FALLOC_KEEP_SIZE | KVFS_FALLOC_PUNCH_HOLE | KVFS_FALLOC_ZERO_RANGE))
		return -EINVAL;
	if ((mode & KVFS_FALLOC_PUNCH_HOLE) &&
	    (!(mode & KVFS_FALLOC_KEEP_SIZE) || (mode & KVFS_FALLOC_ZERO_RANGE)))
		return -EINVAL;
	if (op->length == 0)
		return -EINVAL;
	if (S_ISDIR(in->mode))
		return -EISDIR;
	if (!S_ISREG(in->mode))
		return -ENODEV;
	/* Linux counts in a signed loff_t. */
	if (end < op->offset || end > (uint64_t)INT64_MAX)
		return -EFBIG;
	return 0;
}

/*
 * FALLOCATE on a regular file: mode 0 grows the size to offset + length (zeros), KEEP_SIZE alone
 * changes no byte, PUNCH_HOLE (with KEEP_SIZE) zeroes the range within the size, ZERO_RANGE
 * zeroes it and grows the size unless KEEP_SIZE. Growing past the value limit is -EFBIG. Every
 * success sets mtime and ctime, as tmpfs does (file_modified(), Linux 6.18), even when nothing
 * else changed.
 */
static int apply_fallocate(struct kvfs_store *s, const struct kvfs_op *op,
                           struct kvfs_apply_result *res)
{
	struct kvfs_inode *in = store_get_linked(s, op->ino);
	uint64_t end = op->offset + op->length, old;
	bool grow;
	int rv;

	if (!in)
		return -ENOENT;
	rv = fallocate_check(op, in);
	if (rv)
		return rv;
	old = value_size(in->value);
	grow = !(op->flags & KVFS_FALLOC_KEEP_SIZE) && end > old;
	if (grow && end > value_limit(op))
		return -EFBIG;
	if (grow) {
		rv = value_resize(&in->value, end);
		if (rv)
			return rv;
	}
	if (op->flags & (KVFS_FALLOC_PUNCH_HOLE | KVFS_FALLOC_ZERO_RANGE)) {
		/* After a resize the value is this inode's alone, so zeroing cannot fail: it fails
		 * (needing a copy of a shared value) only as the first step. */
		rv = value_zero(&in->value, op->offset, op->length);
		assert(rv == 0 || !grow);
		if (rv)
			return rv;
	}
	contents_changed(s, in, old, op, res);
	return 0;
}

/* The cluster's configuration from here on: recorded, nothing else changes (config.h). */
static int apply_config(struct kvfs_store *s, uint64_t index, const struct kvfs_op *op)
{
	struct kvfs_config c;

	if (config_from_op(op, &c) < 0)
		return -EINVAL;
	s->config = c;
	s->config_index = index;
	return 0;
}

static int apply_op(struct kvfs_store *s, uint64_t index, const struct kvfs_op *op,
                    struct kvfs_apply_result *res)
{
	switch (op->type) {
	case KVFS_OP_NOOP:
		return 0;
	case KVFS_OP_CONFIG:
		return apply_config(s, index, op);
	case KVFS_OP_PUT:
	case KVFS_OP_APPEND:
		return apply_write(s, op, res);
	case KVFS_OP_CREATE:
	case KVFS_OP_MKDIR:
	case KVFS_OP_SYMLINK:
	case KVFS_OP_MKNOD:
		return apply_create(s, index, op, res);
	case KVFS_OP_UNLINK:
	case KVFS_OP_RMDIR:
		return apply_remove(s, op, res);
	case KVFS_OP_RENAME:
		return apply_rename(s, op, res);
	case KVFS_OP_SETATTR:
		return apply_setattr(s, op, res);
	case KVFS_OP_LINK:
		return apply_link(s, op, res);
	case KVFS_OP_FALLOCATE:
		return apply_fallocate(s, op, res);
	case KVFS_OP_SETXATTR:
	case KVFS_OP_REMOVEXATTR:
		return store_xattr_apply(s, op, &res->ino);
	case KVFS_OP_LOCK:
	case KVFS_OP_UNLOCK_OWNER:
	case KVFS_OP_RELEASE_NODE:
		return store_lock_apply(s, index, op, res);
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
		struct kvfs_session sess;
		bool found = store_session_get(s, op->origin, &sess);

		if (found && sess.seq >= op->seq) {
			res->duplicate = true;
			if (sess.seq == op->seq) {
				res->err = sess.err;
				res->ino = sess.ino;
			}
			goto consume;
		}
		if (!found && store_session_reserve(s))
			return -ENOMEM;
	}
	rv = apply_op(s, index, op, res);
	if (rv == -ENOMEM) {
		memset(res, 0, sizeof(*res));
		return -ENOMEM;
	}
	if (rv)
		memset(res, 0, sizeof(*res));
	res->err = rv;
	if (track) {
		struct kvfs_session sess = {op->origin, op->seq, rv, res->ino};

		store_session_set(s, &sess);
	}
consume:
	s->applied_index = index;
	s->applied_epoch = epoch;
	return 0;
}
