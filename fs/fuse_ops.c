/*
 * The FUSE low-level operations on names and attributes, and the operation table.
 *
 * Each request gets exactly one reply. Lookups and getattr answer at once from the store. Every
 * change (mkdir, unlink, rename, setattr ...) is checked here and becomes one operation handed to
 * fuse_propose() (fuse_propose.c), which answers the request with the outcome the store decided
 * once the operation is durable and applied. The kernel's lookup count of an inode is kept as
 * pins on the store's inode, dropped at forget.
 *
 * Open files (read, write, flush ...) are in fuse_file.c; directory listings in fuse_dir.c;
 * /.status in fuse_status.c.
 */
#include "fs.h"

#include <errno.h>
#include <stdio.h> /* RENAME_NOREPLACE */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h> /* W_OK, X_OK */

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

/* See fs.h. */
void fuse_ops_reply_entry(fuse_req_t req, struct kvfs_fs *fs, struct kvfs_inode *in)
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
	    (strncmp(name, ".status", 7) == 0 || strncmp(name, ".kvfs", 5) == 0 ||
	     fuse_changes_reserved(parent, name)))
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
	/* READDIRPLUS: a listing carries every entry's attributes (fuse_dir.c), so `ls -l` costs
	 * no LOOKUP per name. AUTO: the kernel asks for them in a listing's first request, then
	 * only while the reader looks at the entries (stat): a plain `ls` or `find` does not make
	 * the kernel build an inode for every name. */
	if (conn->capable & FUSE_CAP_READDIRPLUS)
		conn->want |= FUSE_CAP_READDIRPLUS;
	if (conn->capable & FUSE_CAP_READDIRPLUS_AUTO)
		conn->want |= FUSE_CAP_READDIRPLUS_AUTO;
	/* Set-id bits cleared by a write, truncate or chown come as a mode change (the kernel
	 * turns ATTR_KILL_SUID/SGID into one), in the same SETATTR as the chown: one operation. */
	conn->want &= ~(unsigned)FUSE_CAP_HANDLE_KILLPRIV;
	((struct kvfs_fs *)userdata)->max_write = conn->max_write;
}

/* See fs.h. */
int fuse_ops_dir(fuse_req_t req, struct kvfs_fs *fs, fuse_ino_t ino, int mask,
                 struct kvfs_inode **dir)
{
	*dir = store_get(fs->store, ino);
	if (!*dir)
		return -ENOENT;
	if (!S_ISDIR((*dir)->mode))
		return -ENOTDIR;
	if (fuse_perm_may(req, fs, *dir, mask) < 0)
		return -EACCES;
	return 0;
}

static void do_lookup(fuse_req_t req, struct kvfs_fs *fs, fuse_ino_t parent, const char *name)
{
	struct kvfs_inode *dir, *in;
	int rv = fuse_ops_dir(req, fs, parent, X_OK, &dir);

	if (rv < 0) {
		fuse_reply_err(req, -rv);
		return;
	}
	in = store_lookup(fs->store, dir, name, strlen(name));
	if (!in) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	fuse_ops_reply_entry(req, fs, in);
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

	if (parent == KVFS_ROOT_INO && fuse_changes_lookup(req, fs, name))
		return;
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

	if (fuse_changes_forget(fs, ino, nlookup) || fuse_status_is_virtual(ino) ||
	    ino == KVFS_ROOT_INO)
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
	fuse_propose(req, &op, PENDING_ATTR, NULL);
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
		op.flags = KVFS_CREATE_EXCL; /* without O_EXCL too: see fuse_propose.c */
	fuse_propose(req, &op, fi ? PENDING_CREATE : PENDING_ENTRY, fi);
}

static void make_entry(fuse_req_t req, fuse_ino_t parent, const char *name, uint8_t type,
                       mode_t mode, const char *target, struct fuse_file_info *fi)
{
	make_entry_op(req, parent, name, type, mode, 0, target, fi);
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
	make_entry_op(req, parent, name, KVFS_OP_MKNOD, mode, (uint32_t)rdev, NULL, NULL);
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

	if (parent == KVFS_ROOT_INO &&
	    (fuse_status_lookup(name) || fuse_changes_reserved(parent, name))) {
		fuse_reply_err(req, EACCES);
		return;
	}
	rv = fuse_perm_unlink(req, fs_of(req), parent, name);
	if (rv < 0) {
		fuse_reply_err(req, -rv);
		return;
	}
	fuse_propose(req, &op, PENDING_ERR, NULL);
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
	fuse_propose(req, &op, PENDING_ERR, NULL);
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
	fuse_propose(req, &op, PENDING_ENTRY, NULL);
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

/* Whether a file open on this node has inode ino. */
static bool open_here(const struct kvfs_fs *fs, uint64_t ino)
{
	for (const struct handle *h = fs->handles; h; h = h->next)
		if (h->in && h->in->ino == ino)
			return true;
	return false;
}

/*
 * Another node changed the name `name` in dir, which gave inode ino (0: none). The kernel's
 * delete notice (which gives inotify watches of the removed entry IN_DELETE_SELF) would also
 * zero the inode's link count: it is given only when the inode lost its last name (nlink_after
 * 0); otherwise the name is forgotten and the inode's attributes reread. It also takes the
 * inode's lock in the kernel, which a local fsync holds until its reply: for an inode open on
 * this node the plain invalidation is used (and notices run on a thread of their own, so a
 * reply never waits behind one: fuse_inval.c).
 */
static void inval_name(struct kvfs_fs *fs, uint64_t dir, const char *name, uint32_t len,
                       uint64_t ino, uint32_t nlink_after)
{
	fuse_inval_entry(fs->inval, dir, name, len,
	                 nlink_after == 0 && !open_here(fs, ino) ? ino : 0);
	if (ino && nlink_after > 0)
		fuse_inval_inode(fs->inval, ino, false, NULL, 0);
}

void fuse_ops_on_apply(void *arg, const struct kvfs_op *op, const struct kvfs_apply_result *res)
{
	struct kvfs_fs *fs = arg;

	fuse_lock_on_apply(fs, op, res);
	if (res->err < 0 || res->duplicate)
		return;
	fuse_changes_wake(fs); /* the node recorded op (if it changed something) before this */
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
		case KVFS_OP_SETXATTR:
		case KVFS_OP_REMOVEXATTR:
			/* Its ctime; the kernel caches no attribute values. */
			fuse_inval_inode(fs->inval, op->ino, false, NULL, 0);
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
		case KVFS_OP_LOCK:
		case KVFS_OP_UNLOCK_OWNER:
		case KVFS_OP_RELEASE_NODE:
			break; /* the kernel caches nothing of locks (fuse_lock.c) */
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

/* Whether an open file, a write buffer or a backup holds a reference to a value (of the old
 * contents, after a snapshot replaced them): those change their counts on the loop thread. */
static bool values_held(const struct kvfs_fs *fs)
{
	for (const struct handle *h = fs->handles; h; h = h->next)
		if (h->rval || h->backup)
			return true;
	for (const struct wbuf *wb = fs->wbufs; wb; wb = wb->next)
		if (wb->orig)
			return true;
	return false;
}

void fuse_ops_on_reset(void *arg, struct kvfs_store *old)
{
	static struct grave kept_forever; /* out of memory: the old contents are never freed */
	struct kvfs_fs *fs = arg;
	struct grave *g = calloc(1, sizeof(*g));
	bool oom = !g;
	const uint64_t *pinned;
	size_t npinned = 0;

	/* Whatever the kernel knows came from the old contents. Names it caches expire with the
	 * entry timeout; attributes and data go now: of the inodes it holds (pinned), which the
	 * node found as it moved their pins, or else a walk finds. */
	pinned = node_reset_pinned(fs->node, &npinned);
	if (pinned) {
		for (size_t i = 0; i < npinned; i++)
			fuse_inval_inode(fs->inval, pinned[i], true, NULL, 0);
	} else {
		store_foreach(old, inval_known, fs);
	}
	fuse_changes_wake(fs); /* readers waiting for entries the snapshot stands for: ERANGE */
	fuse_inval_inode(fs->inval, KVFS_ROOT_INO, true, NULL, 0);
	fuse_lock_on_reset(fs);
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
	/* A million keys take seconds to free: on a worker, when nothing here refers to them. */
	if (values_held(fs))
		store_close(old);
	else
		node_store_close_later(fs->node, old);
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
    .flush = fuse_lock_flush,
    .fsync = fuse_file_fsync,
    .release = fuse_lock_release,
    .opendir = fuse_dir_opendir,
    .readdir = fuse_dir_readdir,
    .readdirplus = fuse_dir_readdirplus,
    .releasedir = fuse_dir_releasedir,
    .fsyncdir = fuse_dir_fsyncdir,
    .statfs = op_statfs,
    .setxattr = fuse_xattr_set,
    .getxattr = fuse_xattr_get,
    .listxattr = fuse_xattr_list,
    .removexattr = fuse_xattr_remove,
    .getlk = fuse_lock_getlk,
    .setlk = fuse_lock_setlk,
    .flock = fuse_lock_flock,
    .poll = fuse_changes_poll,
};
