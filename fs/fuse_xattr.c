/*
 * Extended attributes through FUSE: setxattr, getxattr, listxattr and removexattr.
 *
 * Only the "user." namespace is stored (store_xattr.h). A change becomes one SETXATTR or
 * REMOVEXATTR operation, proposed like a chmod and answered once applied (fuse_propose.c); a
 * read answers from the local store, with getattr's consistency (fuse_ops_gate). Other
 * namespaces are not supported: setting, removing and reading are ENOTSUP, answered at once
 * without looking at the store, because the kernel asks getxattr("security.capability") before
 * every write() to a file (to know whether the write must drop file capabilities). kvfs's own
 * "user.kvfs." names are computed, never stored (fuse_xattr_reserved.c): EPERM to change, and
 * listed only when they have a value. Virtual files (/.status ...) carry no attributes: EPERM
 * to change (as Linux says for user.* on special files), ENODATA to read, an empty list.
 *
 * Permissions as Linux's xattr_permission() for user.*: the kernel itself refuses them on
 * anything but regular files and directories and in sticky directories one does not own, and,
 * with default_permissions, checks write (set, remove) or read (get, list) permission; without
 * it, fuse_perm_xattr() checks the same (fuse_perm.c).
 */
#include "fs.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>

#include "kvfs/op.h"
#include "kvfs/store.h"
#include "kvfs/store_xattr.h"
#include "kvfs/value.h"

static struct kvfs_fs *fs_of(fuse_req_t req)
{
	return fuse_req_userdata(req);
}

/* A virtual file: kvfs's own (/.status ..., the change feeds), not in the store. */
static bool is_virtual(fuse_ino_t ino)
{
	return fuse_status_is_virtual(ino) || (ino != KVFS_ROOT_INO && ino < KVFS_INO_BASE);
}

static bool is_user(const char *name)
{
	return strncmp(name, KVFS_XATTR_USER, sizeof(KVFS_XATTR_USER) - 1) == 0;
}

static bool is_reserved(const char *name)
{
	return strncmp(name, KVFS_XATTR_RESERVED, sizeof(KVFS_XATTR_RESERVED) - 1) == 0;
}

/*
 * The checks a change shares (setxattr, removexattr): the name's namespace, the inode and the
 * caller's permission. 0, or the errno to answer.
 */
static int check_change(fuse_req_t req, struct kvfs_fs *fs, fuse_ino_t ino, const char *name)
{
	struct kvfs_inode *in;
	int rv;

	if (is_virtual(ino))
		return -EPERM;
	rv = store_xattr_check_name(name, strlen(name));
	if (rv)
		return rv;
	in = store_get(fs->store, ino);
	if (!in)
		return -ENOENT;
	if (!S_ISREG(in->mode) && !S_ISDIR(in->mode))
		return -EPERM;
	return fuse_perm_xattr(req, fs, in, true);
}

void fuse_xattr_set(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value,
                    size_t size, int flags)
{
	struct kvfs_fs *fs = fs_of(req);
	struct kvfs_op op = {.type = KVFS_OP_SETXATTR, .ino = ino};
	int rv;

	if (flags & ~(XATTR_CREATE | XATTR_REPLACE)) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	rv = check_change(req, fs, ino, name);
	if (rv < 0) {
		fuse_reply_err(req, -rv);
		return;
	}
	if (size > KVFS_XATTR_VALUE_MAX) {
		fuse_reply_err(req, E2BIG);
		return;
	}
	op.flags = ((flags & XATTR_CREATE) ? KVFS_XATTR_CREATE : 0) |
	           ((flags & XATTR_REPLACE) ? KVFS_XATTR_REPLACE : 0);
	op.name = name;
	op.name_len = (uint32_t)strlen(name);
	op.data = (const uint8_t *)value;
	op.data_len = (uint32_t)size;
	fuse_propose(req, &op, PENDING_ERR, NULL);
}

void fuse_xattr_remove(fuse_req_t req, fuse_ino_t ino, const char *name)
{
	struct kvfs_fs *fs = fs_of(req);
	struct kvfs_op op = {.type = KVFS_OP_REMOVEXATTR, .ino = ino};
	int rv = check_change(req, fs, ino, name);

	if (rv < 0) {
		fuse_reply_err(req, -rv);
		return;
	}
	op.name = name;
	op.name_len = (uint32_t)strlen(name);
	fuse_propose(req, &op, PENDING_ERR, NULL);
}

/* Answers a getxattr or listxattr of `size` (0: the size only) with the len bytes at buf. */
static void reply_bytes(fuse_req_t req, size_t size, const void *buf, size_t len)
{
	if (size == 0)
		fuse_reply_xattr(req, len);
	else if (size < len)
		fuse_reply_err(req, ERANGE);
	else
		fuse_reply_buf(req, buf, len);
}

/* The linked or open inode ino that the caller may read attributes of: 0 with *in, or errno. */
static int readable(fuse_req_t req, struct kvfs_fs *fs, fuse_ino_t ino, struct kvfs_inode **in)
{
	*in = store_get(fs->store, ino);
	if (!*in)
		return -ENOENT;
	return fuse_perm_xattr(req, fs, *in, false);
}

/* getxattr once the node may answer reads; the size asked for rides in fi->fh. */
static void gated_get(fuse_req_t req, struct kvfs_fs *fs, fuse_ino_t ino, const char *name,
                      struct fuse_file_info *fi)
{
	size_t size = (size_t)fi->fh;
	const struct kvfs_value *v;
	struct kvfs_inode *in;
	bool found;
	int rv = readable(req, fs, ino, &in);

	if (rv < 0) {
		fuse_reply_err(req, -rv);
		return;
	}
	if (is_reserved(name)) {
		char *buf = size ? malloc(size) : NULL;

		if (size && !buf) {
			fuse_reply_err(req, ENOMEM);
			return;
		}
		rv = fuse_xattr_reserved_get(fs, ino, name, buf, size);
		if (rv < 0)
			fuse_reply_err(req, -rv);
		else if (size == 0)
			fuse_reply_xattr(req, (size_t)rv);
		else
			fuse_reply_buf(req, buf, (size_t)rv);
		free(buf);
		return;
	}
	v = store_xattr_get(in, name, strlen(name), &found);
	if (!found) {
		fuse_reply_err(req, ENODATA);
		return;
	}
	reply_bytes(req, size, v ? v->data : NULL, (size_t)value_size(v));
}

void fuse_xattr_get(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
	struct fuse_file_info fi = {.fh = size};

	/* Any other namespace (security.capability, asked before every write; ACLs; security
	 * labels): not supported, as setting them is not. ENOTSUP rather than ENODATA also lets
	 * `ls -l` stop asking: it remembers per filesystem that labels and ACLs are unsupported,
	 * where ENODATA costs two round trips per entry listed. */
	if (!is_user(name)) {
		fuse_reply_err(req, EOPNOTSUPP);
		return;
	}
	if (is_virtual(ino) || strlen(name) > KVFS_XATTR_NAME_MAX) {
		fuse_reply_err(req, ENODATA);
		return;
	}
	fuse_ops_gate(req, ino, name, &fi, false, gated_get);
}

/* listxattr once the node may answer reads; the size asked for rides in fi->fh. */
static void gated_list(fuse_req_t req, struct kvfs_fs *fs, fuse_ino_t ino, const char *name,
                       struct fuse_file_info *fi)
{
	size_t size = (size_t)fi->fh, len = 0, cap;
	const struct kvfs_xattrs *x;
	struct kvfs_inode *in;
	char *buf;
	int rv = readable(req, fs, ino, &in);

	if (rv < 0) {
		fuse_reply_err(req, -rv);
		return;
	}
	x = in->xattrs;
	cap = (x ? x->list_len : 0) + fuse_xattr_reserved_list_max;
	buf = malloc(cap ? cap : 1);
	if (!buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	for (uint32_t i = 0; x && i < x->n; i++) {
		memcpy(buf + len, x->a[i].name->data, (size_t)x->a[i].name->size);
		len += (size_t)x->a[i].name->size;
		buf[len++] = '\0';
	}
	/* kvfs's own names, only those that have a value now, and only within listxattr's limit:
	 * a file whose own names fill it still lists them (getxattr of the name still works). */
	for (const char *const *r = fuse_xattr_reserved_names; *r; r++) {
		size_t n = strlen(*r) + 1;

		if (len + n <= cap && len + n <= KVFS_XATTR_LIST_MAX &&
		    fuse_xattr_reserved_get(fs, ino, *r, NULL, 0) >= 0) {
			memcpy(buf + len, *r, n);
			len += n;
		}
	}
	if (len > KVFS_XATTR_LIST_MAX)
		fuse_reply_err(req, E2BIG); /* as listxattr(2) past XATTR_LIST_MAX */
	else
		reply_bytes(req, size, buf, len);
	free(buf);
}

void fuse_xattr_list(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	struct fuse_file_info fi = {.fh = size};

	if (is_virtual(ino)) {
		reply_bytes(req, size, "", 0);
		return;
	}
	fuse_ops_gate(req, ino, NULL, &fi, false, gated_list);
}
