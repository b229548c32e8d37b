/*
 * The FUSE low-level operations on names, attributes and directories, and the operation table.
 *
 * Each request gets exactly one reply. Lookups, getattr and readdir answer at once from the
 * store. Every change (mkdir, unlink, rename, setattr ...) becomes one operation proposed to the
 * node; its reply is sent from the node's callback once the operation is durable and applied, with
 * the outcome the store decided (EEXIST for the loser of a mkdir race, and so on). The kernel's
 * lookup count of an inode is kept as pins on the store's inode, dropped at forget.
 *
 * Open files (read, write, flush ...) are in fuse_file.c; /.status in fuse_status.c.
 */
#include "fs.h"

#include <errno.h>
#include <stdio.h> /* RENAME_NOREPLACE */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h> /* R_OK, W_OK, X_OK */

#include "kvfs/node.h"
#include "kvfs/op.h"
#include "kvfs/store.h"
#include "kvfs/value.h"

static struct kvfs_fs *fs_of(fuse_req_t req)
{
	return fuse_req_userdata(req);
}

static void set_time(struct timespec *ts, int64_t ns)
{
	ts->tv_sec = ns / 1000000000;
	ts->tv_nsec = ns % 1000000000;
	if (ts->tv_nsec < 0) {
		ts->tv_sec -= 1;
		ts->tv_nsec += 1000000000;
	}
}

void fuse_ops_fill_attr(const struct kvfs_fs *fs, const struct kvfs_inode *in, struct stat *st)
{
	struct wbuf *wb = S_ISREG(in->mode) ? fuse_file_wbuf(fs, in->ino) : NULL;

	memset(st, 0, sizeof(*st));
	st->st_ino = in->ino;
	st->st_mode = in->mode;
	st->st_nlink = in->nlink;
	st->st_rdev = in->rdev;
	st->st_uid = fs->stored_owner ? in->uid : fs->uid;
	st->st_gid = fs->stored_owner ? in->gid : fs->gid;
	if (S_ISDIR(in->mode))
		st->st_size = 4096;
	else
		st->st_size = (off_t)(wb ? wb->size : value_size(in->value));
	st->st_blksize = 4096;
	st->st_blocks = (st->st_size + 511) / 512;
	if (wb && wb->dirty)
		wb->attrs_shown = true;
	set_time(&st->st_atim, in->atime_ns);
	set_time(&st->st_mtim, in->mtime_ns);
	set_time(&st->st_ctim, in->ctime_ns);
}

/* Answers req with the entry for in, counting one kernel lookup (a pin). */
static void reply_entry(fuse_req_t req, struct kvfs_fs *fs, struct kvfs_inode *in)
{
	struct fuse_entry_param e = {
	    .ino = in->ino,
	    .attr_timeout = fs->attr_timeout,
	    .entry_timeout = fs->entry_timeout,
	};

	fuse_ops_fill_attr(fs, in, &e.attr);
	store_pin(fs->store, in, 1);
	if (fuse_reply_entry(req, &e) != 0)
		store_unpin(fs->store, in, 1); /* interrupted: the kernel did not take it */
}

/* A request waiting for its operation to be applied. */
enum pending_kind { PENDING_ERR, PENDING_ENTRY, PENDING_ATTR, PENDING_CREATE };

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
		reply_entry(p->req, fs, in);
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

/* Proposes op and arranges for req to be answered as `kind` once it is applied. */
static void propose(fuse_req_t req, struct kvfs_op *op, enum pending_kind kind,
                    const struct fuse_file_info *fi)
{
	struct kvfs_fs *fs = fs_of(req);
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

/*
 * Checks a name given for a new entry before proposing anything: the store would refuse it too,
 * but a bad name should not cost a log entry. Returns 0 or a negative errno.
 */
static int check_new_name(fuse_ino_t parent, const char *name)
{
	size_t len = strlen(name);

	if (len > KVFS_NAME_MAX)
		return -ENAMETOOLONG;
	if (parent == KVFS_ROOT_INO && fuse_status_lookup(name))
		return -EEXIST;
	if (parent == KVFS_ROOT_INO &&
	    (strncmp(name, ".status", 7) == 0 || strncmp(name, ".kvfs", 5) == 0))
		return -EACCES;
	return 0;
}

static void op_init(void *userdata, struct fuse_conn_info *conn)
{
	conn->time_gran = 1;
	/* O_TRUNC arrives with open(), so "> file" can stay in the write buffer until close and a
	 * failed write (EFBIG) leaves the file as it was. */
	if (conn->capable & FUSE_CAP_ATOMIC_O_TRUNC)
		conn->want |= FUSE_CAP_ATOMIC_O_TRUNC;
	/* No writeback cache: the kernel sends every write() to us before it returns, so a write
	 * past --max-value can still fail (fuse_file_write). */
	conn->want &= ~(unsigned)FUSE_CAP_WRITEBACK_CACHE;
	/* Set-id bits cleared by a write, truncate or chown come as a mode change (the kernel
	 * turns ATTR_KILL_SUID/SGID into one), in the same SETATTR as the chown: one operation. */
	conn->want &= ~(unsigned)FUSE_CAP_HANDLE_KILLPRIV;
	((struct kvfs_fs *)userdata)->max_write = conn->max_write;
}

static void do_lookup(fuse_req_t req, struct kvfs_fs *fs, fuse_ino_t parent, const char *name)
{
	struct kvfs_inode *dir, *in;

	dir = store_get(fs->store, parent);
	if (!dir) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	if (!S_ISDIR(dir->mode)) {
		fuse_reply_err(req, ENOTDIR);
		return;
	}
	if (fuse_perm_may(req, fs, dir, X_OK) < 0) {
		fuse_reply_err(req, EACCES);
		return;
	}
	in = store_lookup(fs->store, dir, name, strlen(name));
	if (!in) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	reply_entry(req, fs, in);
}

/* A request that reads the store, held by fuse_ops_gate() until the node may answer it. */
struct gated {
	fuse_req_t req;
	struct kvfs_fs *fs;
	fuse_gated_fn fn;
	fuse_ino_t ino;
	bool has_fi;
	struct fuse_file_info fi;
	struct fuse_call call;
	char name[];
};

static void on_gate_open(void *arg, int err, uint64_t unused)
{
	struct gated *g = arg;

	fuse_call_end(g->fs, &g->call);
	fuse_metrics_read_wait(g->fs, &g->call, err);
	if (err < 0)
		fuse_reply_err(g->req, EIO);
	else
		g->fn(g->req, g->fs, g->ino, g->name, g->has_fi ? &g->fi : NULL);
	free(g);
}

void fuse_ops_gate(fuse_req_t req, fuse_ino_t ino, const char *name, struct fuse_file_info *fi,
                   bool barrier, fuse_gated_fn fn)
{
	struct kvfs_fs *fs = fs_of(req);
	size_t len = name ? strlen(name) : 0;
	struct gated *g;
	int rv;

	barrier = barrier && fs->linearizable;
	if (!barrier && node_reads_ready(fs->node)) {
		fn(req, fs, ino, name, fi);
		return;
	}
	g = malloc(sizeof(*g) + len + 1);
	if (!g) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	*g = (struct gated){.req = req, .fs = fs, .fn = fn, .ino = ino, .has_fi = fi != NULL};
	if (fi)
		g->fi = *fi;
	memcpy(g->name, name ? name : "", len + 1);
	fuse_call_begin(fs, req, &g->call);
	rv = barrier ? node_read_barrier(fs->node, g->call.deadline, on_gate_open, g)
	             : node_read_wait(fs->node, g->call.deadline, on_gate_open, g);
	if (rv != 0) {
		free(g);
		if (rv > 0)
			fn(req, fs, ino, name, fi);
		else
			fuse_reply_err(req, rv == -ENOMEM ? ENOMEM : EIO);
	}
}

static void gated_lookup(fuse_req_t req, struct kvfs_fs *fs, fuse_ino_t parent, const char *name,
                         struct fuse_file_info *fi)
{
	do_lookup(req, fs, parent, name);
}

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct kvfs_fs *fs = fs_of(req);
	fuse_ino_t vino;

	if (parent == KVFS_ROOT_INO && (vino = fuse_status_lookup(name)) != 0) {
		struct fuse_entry_param e = {.ino = vino};

		fuse_status_attr(fs, vino, &e.attr);
		fuse_reply_entry(req, &e);
		return;
	}
	if (strlen(name) > KVFS_NAME_MAX) {
		fuse_reply_err(req, ENAMETOOLONG);
		return;
	}
	/* --read linearizable: a name another node just created must be found here too. */
	fuse_ops_gate(req, parent, name, NULL, true, gated_lookup);
}

static void forget_one(struct kvfs_fs *fs, fuse_ino_t ino, uint64_t nlookup)
{
	struct kvfs_inode *in;

	if (fuse_status_is_virtual(ino) || ino == KVFS_ROOT_INO)
		return;
	in = store_get(fs->store, ino);
	/* After a snapshot replaced the store (fuse_ops_on_reset), the kernel may forget more
	 * than the new contents hold for it. */
	if (in)
		store_unpin(fs->store, in, nlookup < in->pins ? nlookup : in->pins);
}

static void op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	forget_one(fs_of(req), ino, nlookup);
	fuse_reply_none(req);
}

static void op_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets)
{
	for (size_t i = 0; i < count; i++)
		forget_one(fs_of(req), forgets[i].ino, forgets[i].nlookup);
	fuse_reply_none(req);
}

static void gated_getattr(fuse_req_t req, struct kvfs_fs *fs, fuse_ino_t ino, const char *name,
                          struct fuse_file_info *fi)
{
	struct kvfs_inode *in = store_get(fs->store, ino);
	struct stat st;

	if (!in) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	fuse_ops_fill_attr(fs, in, &st);
	fuse_reply_attr(req, &st, fs->attr_timeout);
}

static void op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct kvfs_fs *fs = fs_of(req);
	struct stat st;

	if (fuse_status_is_virtual(ino)) {
		fuse_status_attr(fs, ino, &st);
		fuse_reply_attr(req, &st, 0);
		return;
	}
	/* The mount point itself always answers (mount tools, `df`, `test -d` of the mount). */
	if (ino == KVFS_ROOT_INO)
		gated_getattr(req, fs, ino, NULL, fi);
	else
		fuse_ops_gate(req, ino, NULL, NULL, false, gated_getattr);
}

static void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
                       struct fuse_file_info *fi)
{
	struct kvfs_fs *fs = fs_of(req);
	struct kvfs_op op = {.type = KVFS_OP_SETATTR, .ino = ino};
	struct kvfs_inode *in;
	struct wbuf *wb;
	int rv;

	if (fuse_status_is_virtual(ino)) {
		fuse_reply_err(req, EACCES);
		return;
	}
	in = store_get(fs->store, ino);
	if (!in) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	if (to_set & FUSE_SET_ATTR_MODE) {
		op.flags |= KVFS_SET_MODE;
		op.mode = attr->st_mode & 07777;
	}
	if (to_set & FUSE_SET_ATTR_UID) {
		op.flags |= KVFS_SET_UID;
		op.uid = attr->st_uid;
	}
	if (to_set & FUSE_SET_ATTR_GID) {
		op.flags |= KVFS_SET_GID;
		op.gid = attr->st_gid;
	}
	if (to_set & FUSE_SET_ATTR_SIZE) {
		if (S_ISDIR(in->mode)) {
			fuse_reply_err(req, EISDIR);
			return;
		}
		if ((uint64_t)attr->st_size > fs->max_value) {
			fuse_reply_err(req, EFBIG);
			return;
		}
		op.flags |= KVFS_SET_SIZE;
		op.size = (uint64_t)attr->st_size;
	}
	if (to_set & FUSE_SET_ATTR_ATIME_NOW) {
		op.flags |= KVFS_SET_ATIME_NOW;
	} else if (to_set & FUSE_SET_ATTR_ATIME) {
		op.flags |= KVFS_SET_ATIME;
		op.atime_ns = (int64_t)attr->st_atim.tv_sec * 1000000000 + attr->st_atim.tv_nsec;
	}
	if (to_set & FUSE_SET_ATTR_MTIME_NOW) {
		op.flags |= KVFS_SET_MTIME_NOW;
	} else if (to_set & FUSE_SET_ATTR_MTIME) {
		op.flags |= KVFS_SET_MTIME;
		op.mtime_ns = (int64_t)attr->st_mtim.tv_sec * 1000000000 + attr->st_mtim.tv_nsec;
	}
	rv = fuse_perm_setattr(req, fs, in, attr, to_set, fi, &op.mode);
	if (rv < 0) {
		fuse_reply_err(req, -rv);
		return;
	}
	/* op.flags 0 (chown(f, -1, -1): only the ctime) is proposed too: the store sets ctime. */
	/* Writes made before this call commit before it. A file open for writing here then keeps
	 * its buffer in step with the truncation, so a later commit does not bring cut bytes back.
	 */
	fuse_file_commit_pending(fs, ino);
	wb = (op.flags & KVFS_SET_SIZE) ? fuse_file_wbuf(fs, ino) : NULL;
	if (wb && fuse_alloc_wbuf_resize(wb, op.size) < 0) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	propose(req, &op, PENDING_ATTR, NULL);
}

static void gated_readlink(fuse_req_t req, struct kvfs_fs *fs, fuse_ino_t ino, const char *name,
                           struct fuse_file_info *fi)
{
	struct kvfs_inode *in = store_get(fs->store, ino);
	char target[KVFS_PATH_MAX + 1];
	uint64_t len;

	if (!in) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	if (!S_ISLNK(in->mode)) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	len = value_size(in->value);
	if (len > KVFS_PATH_MAX)
		len = KVFS_PATH_MAX;
	if (len)
		memcpy(target, in->value->data, len);
	target[len] = '\0';
	fuse_reply_readlink(req, target);
}

static void op_readlink(fuse_req_t req, fuse_ino_t ino)
{
	fuse_ops_gate(req, ino, NULL, NULL, false, gated_readlink);
}

/*
 * Proposes the creation of `name` in parent (a file, directory or symlink to target). With fi
 * (create()), the reply is an open file and O_EXCL decides whether an existing file is an error;
 * without it (mknod, mkdir, symlink), the reply is an entry and an existing name is EEXIST.
 */
static void make_entry_op(fuse_req_t req, fuse_ino_t parent, const char *name, uint8_t type,
                          mode_t mode, uint32_t rdev, const char *target,
                          struct fuse_file_info *fi)
{
	const struct fuse_ctx *ctx = fuse_req_ctx(req);
	struct kvfs_op op = {
	    .type = type,
	    .parent = parent,
	    .name = name,
	    .name_len = (uint32_t)strlen(name),
	    .mode = mode & (type == KVFS_OP_MKNOD ? S_IFMT | 07777 : 07777),
	    .uid = ctx->uid,
	    .gid = ctx->gid,
	    .rdev = rdev,
	};
	int rv = check_new_name(parent, name);
	struct kvfs_inode *dir = store_get(fs_of(req)->store, parent);

	if (rv == 0 && dir)
		rv = fuse_perm_may(req, fs_of(req), dir, W_OK | X_OK);
	if (rv < 0) {
		fuse_reply_err(req, -rv);
		return;
	}
	if (target) {
		size_t len = strlen(target);

		if (len > KVFS_PATH_MAX) {
			fuse_reply_err(req, ENAMETOOLONG);
			return;
		}
		op.data = (const uint8_t *)target;
		op.data_len = (uint32_t)len;
	}
	if (type == KVFS_OP_CREATE)
		op.flags = KVFS_CREATE_EXCL; /* without O_EXCL too: see open_existing() */
	propose(req, &op, fi ? PENDING_CREATE : PENDING_ENTRY, fi);
}

static void make_entry(fuse_req_t req, fuse_ino_t parent, const char *name, uint8_t type,
                       mode_t mode, const char *target, struct fuse_file_info *fi)
{
	make_entry_op(req, parent, name, type, mode, 0, target, fi);
}

static void make_entry_rdev(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
                            uint32_t rdev)
{
	make_entry_op(req, parent, name, KVFS_OP_MKNOD, mode, rdev, NULL, NULL);
}

static void op_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
	make_entry(req, parent, name, KVFS_OP_MKDIR, mode, NULL, NULL);
}

static void op_symlink(fuse_req_t req, const char *link, fuse_ino_t parent, const char *name)
{
	make_entry(req, parent, name, KVFS_OP_SYMLINK, 0777, link, NULL);
}

/*
 * mknod(2): a regular file is a create; a FIFO or socket is stored with its type (the kernel gives
 * it its behaviour); a device node only when the daemon runs as root, as a tmpfs mounted by root
 * allows it (the kernel has checked CAP_MKNOD of the caller already). rdev arrives in the kernel's
 * 32-bit encoding, which is how it is stored and shown again.
 */
static void op_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev)
{
	struct kvfs_fs *fs = fs_of(req);

	/* The kernel opens FIFOs, sockets and devices without asking us: where only kvfs checks
	 * permissions (--no-default-permissions), nothing would guard them. */
	if (fs->check_access && !S_ISREG(mode)) {
		fuse_reply_err(req, EPERM);
		return;
	}
	switch (mode & S_IFMT) {
	case S_IFREG:
		make_entry(req, parent, name, KVFS_OP_CREATE, mode, NULL, NULL);
		return;
	case S_IFIFO:
	case S_IFSOCK:
		rdev = 0;
		break;
	case S_IFCHR:
	case S_IFBLK:
		if (!fs->may_mknod_dev) {
			fuse_reply_err(req, EPERM);
			return;
		}
		if (rdev > UINT32_MAX) {
			fuse_reply_err(req, EINVAL);
			return;
		}
		break;
	default:
		fuse_reply_err(req, EINVAL);
		return;
	}
	make_entry_rdev(req, parent, name, mode, (uint32_t)rdev);
}

static void op_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
                      struct fuse_file_info *fi)
{
	make_entry(req, parent, name, KVFS_OP_CREATE, mode, NULL, fi);
}

static void remove_entry(fuse_req_t req, fuse_ino_t parent, const char *name, uint8_t type)
{
	struct kvfs_op op = {
	    .type = type,
	    .parent = parent,
	    .name = name,
	    .name_len = (uint32_t)strlen(name),
	};
	int rv;

	if (parent == KVFS_ROOT_INO && fuse_status_lookup(name)) {
		fuse_reply_err(req, EACCES);
		return;
	}
	rv = fuse_perm_unlink(req, fs_of(req), parent, name);
	if (rv < 0) {
		fuse_reply_err(req, -rv);
		return;
	}
	propose(req, &op, PENDING_ERR, NULL);
}

static void op_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	remove_entry(req, parent, name, KVFS_OP_UNLINK);
}

static void op_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	remove_entry(req, parent, name, KVFS_OP_RMDIR);
}

static void op_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
                      const char *newname, unsigned int flags)
{
	struct kvfs_op op = {
	    .type = KVFS_OP_RENAME,
	    .parent = parent,
	    .name = name,
	    .name_len = (uint32_t)strlen(name),
	    .newparent = newparent,
	    .newname = newname,
	    .newname_len = (uint32_t)strlen(newname),
	};
	int rv;

	if (flags & ~(unsigned)(RENAME_NOREPLACE | RENAME_EXCHANGE)) {
		fuse_reply_err(req, EINVAL); /* RENAME_WHITEOUT */
		return;
	}
	if ((parent == KVFS_ROOT_INO && fuse_status_lookup(name)) ||
	    (newparent == KVFS_ROOT_INO && fuse_status_lookup(newname))) {
		fuse_reply_err(req, EACCES);
		return;
	}
	rv = check_new_name(newparent, newname);
	if (rv == -EEXIST)
		rv = -EACCES;
	if (rv == 0)
		rv = fuse_perm_rename(req, fs_of(req), parent, name, newparent, newname,
		                      flags & RENAME_EXCHANGE);
	if (rv < 0) {
		fuse_reply_err(req, -rv);
		return;
	}
	if (flags & RENAME_NOREPLACE)
		op.flags |= KVFS_RENAME_NOREPLACE;
	if (flags & RENAME_EXCHANGE)
		op.flags |= KVFS_RENAME_EXCHANGE;
	propose(req, &op, PENDING_ERR, NULL);
}

/* link(2): another name for a file (never a directory: the kernel refuses that first). */
static void op_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname)
{
	struct kvfs_op op = {
	    .type = KVFS_OP_LINK,
	    .ino = ino,
	    .parent = newparent,
	    .name = newname,
	    .name_len = (uint32_t)strlen(newname),
	};
	struct kvfs_fs *fs = fs_of(req);
	struct kvfs_inode *dir = store_get(fs->store, newparent);
	int rv;

	if (fuse_status_is_virtual(ino)) {
		fuse_reply_err(req, EPERM);
		return;
	}

	rv = check_new_name(newparent, newname);
	if (rv == 0 && dir)
		rv = fuse_perm_may(req, fs, dir, W_OK | X_OK);
	if (rv < 0) {
		fuse_reply_err(req, -rv);
		return;
	}
	propose(req, &op, PENDING_ENTRY, NULL);
}

void fuse_ops_propose(fuse_req_t req, struct kvfs_op *op)
{
	propose(req, op, PENDING_ERR, NULL);
}

static void gated_opendir(fuse_req_t req, struct kvfs_fs *fs, fuse_ino_t ino, const char *name,
                          struct fuse_file_info *fi)
{
	struct kvfs_inode *dir = store_get(fs->store, ino);
	const struct kvfs_dentry *c;
	struct kvfs_inode *up;
	struct handle *h;
	size_t n = 0, cap;

	if (!dir) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	if (!S_ISDIR(dir->mode)) {
		fuse_reply_err(req, ENOTDIR);
		return;
	}
	if (fuse_perm_may(req, fs, dir, R_OK) < 0) {
		fuse_reply_err(req, EACCES);
		return;
	}
	/* The listing is taken once here, so readdir offsets stay valid whatever changes later. */
	cap = dir->nchildren + 2;
	h = calloc(1, sizeof(*h));
	if (!h)
		goto err_nomem;
	h->kind = HANDLE_DIR;
	h->ents = calloc(cap, sizeof(*h->ents));
	if (!h->ents)
		goto err_free;
	h->ents[n++] = (struct dirent_snap){.name = strdup("."), .ino = dir->ino, .mode = S_IFDIR};
	up = store_parent(dir); /* NULL once unlinked */
	h->ents[n++] = (struct dirent_snap){
	    .name = strdup(".."), .ino = up ? up->ino : dir->ino, .mode = S_IFDIR};
	/* The virtual files (/.status ...) are reachable by name but never listed (DESIGN §1, like
	 * ZFS's snapdir=hidden), so tar, rsync -a --delete, cp -a and find copy only user data. */
	for (c = store_child_first(dir); c && n < cap; c = store_child_next(c))
		h->ents[n++] = (struct dirent_snap){
		    .name = strdup(c->name), .ino = c->in->ino, .mode = c->in->mode & S_IFMT};
	h->nents = n;
	for (size_t i = 0; i < n; i++)
		if (!h->ents[i].name)
			goto err_free;
	fuse_file_link_handle(fs, h);
	fi->fh = (uint64_t)(uintptr_t)h;
	if (fuse_reply_open(req, fi) != 0)
		fuse_file_free_handle(fs, h, false);
	return;

err_free:
	for (size_t i = 0; h->ents && i < n; i++)
		free(h->ents[i].name);
	free(h->ents);
	free(h);
err_nomem:
	fuse_reply_err(req, ENOMEM);
}

static void op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	/* --read linearizable: a listing shows every name committed before it began. */
	fuse_ops_gate(req, ino, NULL, fi, true, gated_opendir);
}

static void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                       struct fuse_file_info *fi)
{
	struct handle *h = (struct handle *)(uintptr_t)fi->fh;
	char *buf = malloc(size);
	size_t used = 0;

	if (!buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	for (size_t i = (size_t)off; i < h->nents; i++) {
		struct stat st = {.st_ino = h->ents[i].ino, .st_mode = h->ents[i].mode};
		size_t need = fuse_add_direntry(req, buf + used, size - used, h->ents[i].name, &st,
		                                (off_t)(i + 1));

		if (need > size - used)
			break;
		used += need;
	}
	fuse_reply_buf(req, buf, used);
	free(buf);
}

static void op_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	fuse_file_free_handle(fs_of(req), (struct handle *)(uintptr_t)fi->fh, false);
	fuse_reply_err(req, 0);
}

static void op_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	fuse_reply_err(req, 0); /* directory changes are durable when their call returns */
}

static void op_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct kvfs_fs *fs = fs_of(req);
	struct statvfs sv;

	if (statvfs(fs->data_dir, &sv) < 0)
		memset(&sv, 0, sizeof(sv));
	sv.f_files = store_inode_count(fs->store) + sv.f_ffree;
	sv.f_namemax = KVFS_NAME_MAX;
	fuse_reply_statfs(req, &sv);
}

/*
 * Another node changed the name `name` in dir, which gave inode ino (0: none). The kernel's
 * delete notice would also zero the inode's link count: it is given only when the inode lost its
 * last name (nlink_after 0); otherwise the name is forgotten and the inode's attributes reread.
 */
static void inval_name(struct kvfs_fs *fs, uint64_t dir, const char *name, uint32_t len,
                       uint64_t ino, uint32_t nlink_after)
{
	fuse_inval_entry(fs->inval, dir, name, len, nlink_after == 0 ? ino : 0);
	if (ino && nlink_after > 0)
		fuse_inval_inode(fs->inval, ino, false, NULL, 0);
}

void fuse_ops_on_apply(void *arg, const struct kvfs_op *op, const struct kvfs_apply_result *res)
{
	struct kvfs_fs *fs = arg;

	if (res->err < 0 || res->duplicate)
		return;
	if (op->type == KVFS_OP_PUT || op->type == KVFS_OP_APPEND || op->type == KVFS_OP_SETATTR ||
	    op->type == KVFS_OP_FALLOCATE)
		fuse_file_value_changed(fs, op);
	if (op->origin != fs->node_id) {
		/* Another node's change: nothing the kernel cached about these names or inodes
		 * can be trusted. (Standalone nodes never get here; replication will.) */
		switch (op->type) {
		case KVFS_OP_PUT:
		case KVFS_OP_APPEND:
		case KVFS_OP_SETATTR:
		case KVFS_OP_FALLOCATE:
			fuse_inval_inode(fs->inval, op->ino, true, NULL, 0);
			break;
		case KVFS_OP_LINK:
			fuse_inval_inode(fs->inval, op->ino, false, NULL, 0);
			fuse_inval_inode(fs->inval, op->parent, false, NULL, 0);
			break;
		case KVFS_OP_RENAME:
			inval_name(fs, op->newparent, op->newname, op->newname_len,
			           (op->flags & KVFS_RENAME_EXCHANGE) ? res->ino2 : res->replaced_ino,
			           (op->flags & KVFS_RENAME_EXCHANGE) ? 1 : res->replaced_nlink_after);
			inval_name(fs, op->parent, op->name, op->name_len, res->ino, 1);
			break;
		case KVFS_OP_UNLINK:
		case KVFS_OP_RMDIR:
			inval_name(fs, op->parent, op->name, op->name_len, res->ino, res->nlink_after);
			break;
		default:
			/* A new name: the kernel caches no negative entries (lookup answers ENOENT),
			 * so only the directory's attributes are stale. */
			if (op->type != KVFS_OP_NOOP)
				fuse_inval_inode(fs->inval, op->parent, false, NULL, 0);
			break;
		}
		return;
	}
	/* Our own change: the reply tells the kernel about the names and attributes it asked to
	 * change; commits of written files invalidate before they answer (fuse_file.c). */
}

static int inval_known(void *arg, const struct kvfs_dentry *d, bool first)
{
	struct kvfs_fs *fs = arg;

	if (first && d->in->pins)
		fuse_inval_inode(fs->inval, d->in->ino, true, NULL, 0);
	return 0;
}

void fuse_ops_on_reset(void *arg, struct kvfs_store *old)
{
	static struct grave kept_forever; /* out of memory: the old contents are never freed */
	struct kvfs_fs *fs = arg;
	struct grave *g = calloc(1, sizeof(*g));
	bool oom = !g;

	/* Whatever the kernel knows came from the old contents. Names it caches expire with the
	 * entry timeout; attributes and data go now. */
	store_foreach(old, inval_known, fs);
	fuse_inval_inode(fs->inval, KVFS_ROOT_INO, true, NULL, 0);
	/* Open files move to the same inode in the new contents (their pins moved already). One
	 * whose file the snapshot no longer has keeps reading what it had open, from the old
	 * contents, which stay until the last such file is closed; its writes fail (ENOENT). */
	for (struct handle *h = fs->handles; h; h = h->next) {
		struct kvfs_inode *now;

		if (!h->in || h->grave)
			continue;
		now = store_get(fs->store, h->in->ino);
		if (now) {
			h->in = now;
		} else {
			h->grave = oom ? &kept_forever : g;
			h->grave->refs++;
		}
	}
	if (oom)
		return;
	if (g->refs) {
		g->store = old;
		return;
	}
	free(g);
	store_close(old);
}

const struct fuse_lowlevel_ops fuse_ops_table = {
    .init = op_init,
    .lookup = op_lookup,
    .forget = op_forget,
    .forget_multi = op_forget_multi,
    .getattr = op_getattr,
    .setattr = op_setattr,
    .readlink = op_readlink,
    .mknod = op_mknod,
    .mkdir = op_mkdir,
    .symlink = op_symlink,
    .unlink = op_unlink,
    .rmdir = op_rmdir,
    .rename = op_rename,
    .link = op_link,
    .fallocate = fuse_alloc_fallocate,
    .create = op_create,
    .open = fuse_perm_open,
    .access = fuse_perm_access,
    .read = fuse_file_read,
    .write = fuse_file_write,
    .flush = fuse_file_flush,
    .fsync = fuse_file_fsync,
    .release = fuse_file_release,
    .opendir = op_opendir,
    .readdir = op_readdir,
    .releasedir = op_releasedir,
    .fsyncdir = op_fsyncdir,
    .statfs = op_statfs,
};
