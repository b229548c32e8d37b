/*
 * Changes made through FUSE: each becomes one operation proposed to the node, and the request
 * waits, counted as a call (fuse_call.c), until the node calls back once the operation is durable
 * and applied; the reply then carries the outcome the store decided (EEXIST for the loser of a
 * mkdir race, and so on): an error alone, a new entry, attributes, or an open file for create().
 * While such a request holds a directory's lock in the kernel, entry invalidations wait
 * (fuse_inval_hold).
 *
 * The operations themselves are built and checked in fuse_ops.c and fuse_alloc.c.
 */
#include "fs.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "kvfs/node.h"
#include "kvfs/op.h"
#include "kvfs/store.h"

/* A request waiting for its operation to be applied. */
struct pending {
	fuse_req_t req;
	struct kvfs_fs *fs;
	enum pending_kind kind;
	bool holds_dir;           /* counted in fuse_inval_hold() */
	struct fuse_file_info fi; /* PENDING_CREATE */
	struct fuse_call call;
	uint64_t parent; /* PENDING_CREATE: where the file is made, under name */
	char name[];
};

/*
 * A create() without O_EXCL proposes an exclusive create: the kernel sent it because it found no
 * such name, and checks no permission on what create() opens (it believes it made the file). If
 * someone else made the name meanwhile, the existing file is opened here instead, with the read
 * and write permission its open flags need. Returns 0 with *in, or a negative errno.
 */
static int open_existing(struct pending *p, struct kvfs_inode **in)
{
	struct kvfs_inode *dir = store_get(p->fs->store, p->parent);

	*in = dir ? store_lookup(p->fs->store, dir, p->name, strlen(p->name)) : NULL;
	if (!*in)
		return -ENOENT; /* removed again already */
	if (!S_ISREG((*in)->mode))
		return 0; /* EISDIR or EEXIST below */
	return fuse_perm_open_existing(p->req, p->fs, *in, p->fi.flags);
}

static void on_done(void *arg, int err, uint64_t ino)
{
	struct pending *p = arg;
	struct kvfs_fs *fs = p->fs;
	struct kvfs_inode *in = NULL;
	struct handle *h;
	struct stat st;

	fuse_call_end(fs, &p->call);
	if (err == -EEXIST && p->kind == PENDING_CREATE && !(p->fi.flags & O_EXCL))
		err = open_existing(p, &in);
	else if (err == 0 && p->kind != PENDING_ERR && !(in = store_get(fs->store, ino)))
		err = -ENOENT; /* already gone again: a later operation removed it */
	fuse_metrics_write(fs, &p->call, err);
	if (err < 0 || p->kind == PENDING_ERR) {
		fuse_reply_err(p->req, err == -ESHUTDOWN ? EIO : -err);
		goto out;
	}
	switch (p->kind) {
	case PENDING_ENTRY:
		fuse_ops_reply_entry(p->req, fs, in);
		break;
	case PENDING_ATTR:
		fuse_ops_fill_attr(fs, in, &st);
		fuse_reply_attr(p->req, &st, fs->attr_timeout);
		break;
	case PENDING_CREATE: {
		struct fuse_entry_param e = {
		    .ino = in->ino,
		    .attr_timeout = fs->attr_timeout,
		    .entry_timeout = fs->entry_timeout,
		};

		if (!S_ISREG(in->mode)) {
			fuse_reply_err(p->req, S_ISDIR(in->mode) ? EISDIR : EEXIST);
			break;
		}
		store_pin(fs->store, in, 1); /* the kernel's lookup */
		h = fuse_file_new_handle(fs, in, p->fi.flags);
		if (!h) {
			store_unpin(fs->store, in, 1);
			fuse_reply_err(p->req, ENOMEM);
			break;
		}
		p->fi.fh = (uint64_t)(uintptr_t)h;
		p->fi.keep_cache = !fs->linearizable; /* as in fuse_file_open() */
		fuse_ops_fill_attr(fs, in, &e.attr);
		if (fuse_reply_create(p->req, &e, &p->fi) != 0) {
			fuse_file_free_handle(fs, h, false);
			store_unpin(fs->store, in, 1);
		}
		break;
	}
	case PENDING_ERR:
		break;
	}
out:
	if (p->holds_dir)
		fuse_inval_hold(fs->inval, -1);
	free(p);
}

/* Whether the kernel holds a directory's lock while it waits for our answer to op. */
static bool locks_dir(const struct kvfs_op *op)
{
	switch (op->type) {
	case KVFS_OP_CREATE:
	case KVFS_OP_MKDIR:
	case KVFS_OP_SYMLINK:
	case KVFS_OP_UNLINK:
	case KVFS_OP_RMDIR:
	case KVFS_OP_RENAME:
	case KVFS_OP_LINK:
	case KVFS_OP_MKNOD:
		return true;
	default:
		return false;
	}
}

/* See fs.h. */
void fuse_propose(fuse_req_t req, struct kvfs_op *op, enum pending_kind kind,
                  const struct fuse_file_info *fi)
{
	struct kvfs_fs *fs = fuse_req_userdata(req);
	size_t name_len = kind == PENDING_CREATE ? op->name_len : 0;
	struct pending *p = malloc(sizeof(*p) + name_len + 1);
	int rv;

	if (!p) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	*p = (struct pending){.req = req, .fs = fs, .kind = kind, .holds_dir = locks_dir(op)};
	if (fi)
		p->fi = *fi;
	p->parent = op->parent;
	memcpy(p->name, op->name ? op->name : "", name_len);
	p->name[name_len] = '\0';
	if (p->holds_dir)
		fuse_inval_hold(fs->inval, 1);
	fuse_call_begin(fs, req, &p->call);
	rv = node_propose(fs->node, op, p->call.deadline, on_done, p);
	if (rv < 0) {
		if (p->holds_dir)
			fuse_inval_hold(fs->inval, -1);
		fuse_metrics_write(fs, &p->call, rv);
		free(p);
		fuse_reply_err(req, rv == -ESHUTDOWN ? EIO : -rv);
	}
}
