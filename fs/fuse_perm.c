/*
 * Permission rules kvfs applies itself, when the kernel does not (no -o default_permissions).
 *
 * With default_permissions (implied by allow_other, main.c) the kernel checks modes, owners,
 * groups and the sticky bit against the attributes we show, exactly as on a local filesystem,
 * and every function here returns 0 at once. Without it the kernel checks nothing, so:
 *  - always (a private mount: the caller is the mounting user, shown as every file's owner):
 *    POSIX's rules for chown, chgrp, chmod, utimes and the sticky bit, against the owner shown
 *    (fuse_ops_fill_attr) and the caller's fsuid/fsgid and supplementary groups;
 *  - with fs->check_access (allow_other with --no-default-permissions): also read, write and
 *    search permission as the kernel's generic_permission() would, against the stored owner.
 * Root (fsuid 0) stands for the capabilities (CAP_CHOWN, CAP_FOWNER, CAP_DAC_OVERRIDE ...).
 */
#include "fs.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kvfs/store.h"

#define FEW_GROUPS 32
/* The kernel's __FMODE_EXEC: in the open flags of the file execve() opens. */
#define KVFS_FMODE_EXEC 040

static uid_t shown_uid(const struct kvfs_fs *fs, const struct kvfs_inode *in)
{
	return fs->stored_owner ? in->uid : fs->uid;
}

static gid_t shown_gid(const struct kvfs_fs *fs, const struct kvfs_inode *in)
{
	return fs->stored_owner ? in->gid : fs->gid;
}

/* Whether the caller of req has gid as its fsgid or among its supplementary groups. */
static bool in_group(fuse_req_t req, gid_t gid)
{
	gid_t few[FEW_GROUPS], *list = few;
	int n, i, cap = FEW_GROUPS;
	bool found = false;

	if (fuse_req_ctx(req)->gid == gid)
		return true;
	n = fuse_req_getgroups(req, FEW_GROUPS, few);
	if (n > FEW_GROUPS) {
		cap = n;
		list = malloc((size_t)n * sizeof(*list));
		if (!list)
			return false;
		n = fuse_req_getgroups(req, n, list);
	}
	if (n > cap)
		n = cap; /* the groups changed between the two calls: read only what we hold */
	for (i = 0; i < n && !found; i++)
		found = list[i] == gid;
	if (list != few)
		free(list);
	return found;
}

/* generic_permission(): 0, or -EACCES when the caller lacks a bit of mask (R_OK|W_OK|X_OK). */
static int may(fuse_req_t req, const struct kvfs_fs *fs, const struct kvfs_inode *in, int mask)
{
	uid_t uid = fuse_req_ctx(req)->uid;
	unsigned bits;

	mask &= R_OK | W_OK | X_OK;
	if (uid == 0) /* CAP_DAC_OVERRIDE: all but executing a file nobody may execute */
		return (mask & X_OK) && !S_ISDIR(in->mode) && !(in->mode & 0111) ? -EACCES : 0;
	if (uid == shown_uid(fs, in))
		bits = (in->mode >> 6) & 7;
	else if (in_group(req, shown_gid(fs, in)))
		bits = (in->mode >> 3) & 7;
	else
		bits = in->mode & 7;
	return (mask & ~(int)bits) ? -EACCES : 0;
}

int fuse_perm_may(fuse_req_t req, const struct kvfs_fs *fs, const struct kvfs_inode *in, int mask)
{
	return fs->check_access ? may(req, fs, in, mask) : 0;
}

/* xattr_permission() for user.*: the kernel has checked the type and the sticky directory
 * whatever the mount options; what is left is inode_permission(). */
int fuse_perm_xattr(fuse_req_t req, const struct kvfs_fs *fs, const struct kvfs_inode *in,
                    bool write)
{
	return fuse_perm_may(req, fs, in, write ? W_OK : R_OK);
}

/* A mode change that only clears S_ISUID and/or S_ISGID: what the kernel sends for a write,
 * truncate or chown of a set-id file (ATTR_KILL_SUID/SGID without FUSE_CAP_HANDLE_KILLPRIV). */
static bool kills_privs(const struct kvfs_inode *in, uint32_t mode)
{
	uint32_t old = in->mode & 07777;

	return mode != old && (mode & ~old) == 0 &&
	       ((old ^ mode) & ~(uint32_t)(S_ISUID | S_ISGID)) == 0;
}

/* chown_ok() and chgrp_ok() of the kernel. */
static int may_chown(fuse_req_t req, const struct kvfs_fs *fs, const struct kvfs_inode *in,
                     const struct stat *attr, int to_set)
{
	uid_t uid = fuse_req_ctx(req)->uid, owner = shown_uid(fs, in);

	if (uid == 0)
		return 0;
	if ((to_set & FUSE_SET_ATTR_UID) && (uid != owner || attr->st_uid != owner))
		return -EPERM;
	if ((to_set & FUSE_SET_ATTR_GID) &&
	    (uid != owner || (attr->st_gid != shown_gid(fs, in) && !in_group(req, attr->st_gid))))
		return -EPERM;
	return 0;
}

int fuse_perm_setattr(fuse_req_t req, const struct kvfs_fs *fs, const struct kvfs_inode *in,
                      const struct stat *attr, int to_set, const struct fuse_file_info *fi,
                      uint32_t *mode)
{
	uid_t uid = fuse_req_ctx(req)->uid;
	bool owner = uid == 0 || uid == shown_uid(fs, in);
	bool explicit_time =
	    ((to_set & FUSE_SET_ATTR_ATIME) && !(to_set & FUSE_SET_ATTR_ATIME_NOW)) ||
	    ((to_set & FUSE_SET_ATTR_MTIME) && !(to_set & FUSE_SET_ATTR_MTIME_NOW));
	gid_t gid;
	int rv;

	if (fs->kernel_perms)
		return 0;
	rv = may_chown(req, fs, in, attr, to_set);
	if (rv < 0)
		return rv;
	if ((to_set & FUSE_SET_ATTR_MODE) && !owner) {
		/* Anyone who may write the file may have its set-id bits cleared. */
		if (!kills_privs(in, *mode) || fuse_perm_may(req, fs, in, W_OK) < 0)
			return -EPERM;
	} else if ((to_set & FUSE_SET_ATTR_MODE) && uid != 0) {
		gid = (to_set & FUSE_SET_ATTR_GID) ? attr->st_gid : shown_gid(fs, in);
		if ((*mode & S_ISGID) && !in_group(req, gid))
			*mode &= ~(uint32_t)S_ISGID; /* as setattr_prepare() does */
	}
	if (explicit_time && !owner)
		return -EPERM;
	if ((to_set & (FUSE_SET_ATTR_ATIME_NOW | FUSE_SET_ATTR_MTIME_NOW)) && !owner &&
	    may(req, fs, in, W_OK) < 0)
		return -EACCES;
	if ((to_set & FUSE_SET_ATTR_SIZE) && !fi)
		return fuse_perm_may(req, fs, in, W_OK); /* truncate(2); ftruncate(2) has an fd */
	return 0;
}

/* may_delete(): the caller may remove (or replace) victim's name in dir. */
static int may_remove(fuse_req_t req, const struct kvfs_fs *fs, const struct kvfs_inode *dir,
                      const struct kvfs_inode *victim)
{
	uid_t uid = fuse_req_ctx(req)->uid;
	int rv = fuse_perm_may(req, fs, dir, W_OK | X_OK);

	if (rv < 0 || !victim)
		return rv;
	if ((dir->mode & S_ISVTX) && uid != 0 && uid != shown_uid(fs, victim) &&
	    uid != shown_uid(fs, dir))
		return -EPERM;
	return 0;
}

/* The directory parent and its entry name (NULL when missing: the store will say so). */
static struct kvfs_inode *entry(const struct kvfs_fs *fs, fuse_ino_t parent, const char *name,
                                struct kvfs_inode **dir)
{
	*dir = store_get(fs->store, parent);
	if (!*dir || !S_ISDIR((*dir)->mode))
		return *dir = NULL;
	return store_lookup(fs->store, *dir, name, strlen(name));
}

int fuse_perm_unlink(fuse_req_t req, const struct kvfs_fs *fs, fuse_ino_t parent, const char *name)
{
	struct kvfs_inode *dir, *victim;

	if (fs->kernel_perms)
		return 0;
	victim = entry(fs, parent, name, &dir);
	return dir && victim ? may_remove(req, fs, dir, victim) : 0;
}

int fuse_perm_rename(fuse_req_t req, const struct kvfs_fs *fs, fuse_ino_t parent, const char *name,
                     fuse_ino_t newparent, const char *newname, bool exchange)
{
	struct kvfs_inode *dir, *newdir, *src, *dst;
	int rv;

	if (fs->kernel_perms)
		return 0;
	src = entry(fs, parent, name, &dir);
	dst = entry(fs, newparent, newname, &newdir);
	if (!dir || !src || !newdir)
		return 0;
	rv = may_remove(req, fs, dir, src);
	if (rv == 0)
		rv = dst ? may_remove(req, fs, newdir, dst)
		         : fuse_perm_may(req, fs, newdir, W_OK | X_OK);
	/* A directory moving elsewhere gets a new "..": write permission on it too. */
	if (rv == 0 && S_ISDIR(src->mode) && newdir != dir)
		rv = fuse_perm_may(req, fs, src, W_OK);
	/* RENAME_EXCHANGE moves the target the other way. */
	if (rv == 0 && exchange && dst && S_ISDIR(dst->mode) && newdir != dir)
		rv = fuse_perm_may(req, fs, dst, W_OK);
	return rv;
}

/* What opening with these flags asks: R_OK, W_OK (O_TRUNC too), or X_OK for execve(). */
static int open_mask(int flags)
{
	int acc = flags & O_ACCMODE, mask = 0;

	if (acc == O_RDONLY || acc == O_RDWR)
		mask |= R_OK;
	if (acc == O_WRONLY || acc == O_RDWR || (flags & O_TRUNC))
		mask |= W_OK;
	if (flags & KVFS_FMODE_EXEC)
		mask = X_OK; /* execve() needs execute permission, not read permission */
	return mask;
}

int fuse_perm_open_existing(fuse_req_t req, const struct kvfs_fs *fs, const struct kvfs_inode *in,
                            int flags)
{
	/* A private mount's only user is every file's owner (shown), as before. */
	if (!fs->kernel_perms && !fs->check_access)
		return 0;
	return may(req, fs, in, open_mask(flags));
}

/* The open operation: read or write permission, as the open flags ask, with check_access. */
void fuse_perm_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct kvfs_fs *fs = fuse_req_userdata(req);
	struct kvfs_inode *in = fs->check_access ? store_get(fs->store, ino) : NULL;

	if (in && may(req, fs, in, open_mask(fi->flags)) < 0) {
		fuse_reply_err(req, EACCES);
		return;
	}
	fuse_file_open(req, ino, fi);
}

void fuse_perm_access(fuse_req_t req, fuse_ino_t ino, int mask)
{
	struct kvfs_fs *fs = fuse_req_userdata(req);
	struct kvfs_inode *in;

	if (!fs->check_access) {
		fuse_reply_err(req, ENOSYS); /* the kernel stops asking: access() succeeds */
		return;
	}
	if (fuse_status_is_virtual(ino)) {
		fuse_reply_err(req, (mask & (W_OK | X_OK)) ? EACCES : 0);
		return;
	}
	in = store_get(fs->store, ino);
	fuse_reply_err(req, !in ? ENOENT : -may(req, fs, in, mask));
}
