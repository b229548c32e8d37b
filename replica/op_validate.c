/*
 * Validation of proposed operations (see op_validate() in op.h): what a leader refuses to put in
 * its log, with its own limits, whoever proposed the operation. Applying is total whatever the
 * log holds (store.c decides an outcome for every operation); this is the earlier, friendlier
 * gate that keeps malformed or oversized operations from costing a log entry at all, and answers
 * the proposer with the reason. Pure: no I/O, no allocation.
 */
#include "kvfs/op.h"

#include "kvfs/config.h"
#include "kvfs/store.h"
#include "kvfs/store_xattr.h"

#include <errno.h>
#include <stdbool.h>
#include <string.h>
#include <sys/stat.h>

/* The flags each type may carry; KVFS_OP_RULES2 on any. */
static uint32_t allowed_flags(unsigned type)
{
	switch (type) {
	case KVFS_OP_CREATE:
		return KVFS_OP_RULES2 | KVFS_CREATE_EXCL;
	case KVFS_OP_RENAME:
		return KVFS_OP_RULES2 | KVFS_RENAME_NOREPLACE | KVFS_RENAME_EXCHANGE;
	case KVFS_OP_SETATTR:
		return KVFS_OP_RULES2 | KVFS_SET_ALL;
	case KVFS_OP_FALLOCATE:
		return KVFS_OP_RULES2 | KVFS_FALLOC_KEEP_SIZE | KVFS_FALLOC_PUNCH_HOLE |
		       KVFS_FALLOC_ZERO_RANGE;
	case KVFS_OP_SETXATTR:
		return KVFS_OP_RULES2 | KVFS_XATTR_CREATE | KVFS_XATTR_REPLACE;
	default:
		return KVFS_OP_RULES2;
	}
}

/* 0 if the len bytes at name make an entry name; the errno of op_validate() otherwise. */
static int check_name(const char *name, uint32_t len)
{
	if (len > KVFS_NAME_MAX)
		return -ENAMETOOLONG;
	if (len == 0 || !name)
		return -EINVAL;
	if ((len == 1 && name[0] == '.') || (len == 2 && name[0] == '.' && name[1] == '.'))
		return -EINVAL;
	if (memchr(name, '/', len) || memchr(name, '\0', len))
		return -EINVAL;
	return 0;
}

/* 0 if op's data is within op->max_value and its bytes are there. */
static int check_data(const struct kvfs_op *op)
{
	if (op->data_len && !op->data)
		return -EINVAL;
	return op->data_len > op->max_value ? -EFBIG : 0;
}

/* MKNOD: a FIFO, socket or device node with permission bits only; rdev only for a device. */
static int check_mknod(const struct kvfs_op *op)
{
	uint32_t type = op->mode & S_IFMT;

	if (op->mode & ~(uint32_t)(S_IFMT | 07777))
		return -EINVAL;
	switch (type) {
	case S_IFIFO:
	case S_IFSOCK:
		if (op->rdev != 0)
			return -EINVAL;
		break;
	case S_IFCHR:
	case S_IFBLK:
		break;
	default:
		return -EINVAL; /* regular files are CREATE, directories MKDIR, symlinks SYMLINK */
	}
	return check_name(op->name, op->name_len);
}

/*
 * FALLOCATE: the modes fallocate(2) allows together, a non-empty range that ends within a file
 * offset (INT64_MAX, as Linux's s_maxbytes), and within op->max_value if the file may grow. With
 * KEEP_SIZE (PUNCH_HOLE carries it) the range may pass the end of the file and the limit: the
 * size does not change.
 */
static int check_fallocate(const struct kvfs_op *op)
{
	uint32_t punch_zero = KVFS_FALLOC_PUNCH_HOLE | KVFS_FALLOC_ZERO_RANGE;

	if (op->length == 0)
		return -EINVAL;
	if ((op->flags & punch_zero) == punch_zero)
		return -EINVAL;
	if ((op->flags & KVFS_FALLOC_PUNCH_HOLE) && !(op->flags & KVFS_FALLOC_KEEP_SIZE))
		return -EINVAL;
	if (op->offset > (uint64_t)INT64_MAX || op->length > (uint64_t)INT64_MAX - op->offset)
		return -EFBIG;
	if (!(op->flags & KVFS_FALLOC_KEEP_SIZE) && op->offset + op->length > op->max_value)
		return -EFBIG;
	return 0;
}

/* LOCK, UNLOCK_OWNER, RELEASE_NODE: a real node, an inode of the tree, a known kind, type and
 * range. */
static int check_lock(const struct kvfs_op *op)
{
	/* A node id of the cluster's range. A lock's incarnation stays below the largest, so that
	 * a RELEASE_NODE up to UINT64_MAX (every incarnation) can always drop it (store_lock.c). */
	if (op->lk_node == 0 || op->lk_node > KVFS_CONFIG_ID_MAX)
		return -EINVAL;
	if (op->type == KVFS_OP_RELEASE_NODE)
		return 0;
	if (op->lk_inc == UINT64_MAX)
		return -EINVAL;
	/* An inode of the tree, not a virtual file. Directories (the root included) are accepted
	 * but never come from FUSE: the kernel keeps a directory's locks itself (node-local). */
	if ((op->ino < KVFS_INO_BASE && op->ino != KVFS_ROOT_INO) || op->lk_kind > KVFS_LOCK_POSIX)
		return -EINVAL;
	if (op->type == KVFS_OP_UNLOCK_OWNER)
		return 0;
	if (op->lk_type > KVFS_LOCK_UN || op->lk_start > op->lk_end ||
	    op->lk_end > KVFS_LOCK_END_MAX)
		return -EINVAL;
	return 0;
}

int op_validate(const struct kvfs_op *op, const struct kvfs_op_limits *lim)
{
	uint64_t max = lim->max_value < KVFS_DATA_MAX ? lim->max_value : KVFS_DATA_MAX;
	int rv;

	if (op->type == KVFS_OP_NOOP || op->type == KVFS_OP_CONFIG || op->type >= KVFS_OP__COUNT)
		return -EINVAL;
	if (op->flags & ~allowed_flags(op->type))
		return -EINVAL;
	if (op->max_value == 0 || op->max_value > max)
		return -EINVAL;

	switch (op->type) {
	case KVFS_OP_PUT:
	case KVFS_OP_APPEND:
		return check_data(op);
	case KVFS_OP_CREATE:
	case KVFS_OP_MKDIR:
		if (op->mode & ~07777u)
			return -EINVAL;
		return check_name(op->name, op->name_len);
	case KVFS_OP_SYMLINK:
		rv = check_name(op->name, op->name_len);
		if (rv)
			return rv;
		if (op->data_len > KVFS_PATH_MAX)
			return -ENAMETOOLONG;
		if (op->data_len == 0)
			return -ENOENT;
		if (!op->data || memchr(op->data, '\0', op->data_len))
			return -EINVAL;
		return 0;
	case KVFS_OP_UNLINK:
	case KVFS_OP_RMDIR:
		return check_name(op->name, op->name_len);
	case KVFS_OP_RENAME:
		if ((op->flags & KVFS_RENAME_NOREPLACE) && (op->flags & KVFS_RENAME_EXCHANGE))
			return -EINVAL;
		rv = check_name(op->name, op->name_len);
		return rv ? rv : check_name(op->newname, op->newname_len);
	case KVFS_OP_SETATTR:
		if ((op->flags & KVFS_SET_MODE) && (op->mode & ~07777u))
			return -EINVAL;
		if ((op->flags & KVFS_SET_SIZE) && op->size > op->max_value)
			return -EFBIG;
		return 0;
	case KVFS_OP_LINK:
		/* The root is a directory, inos below KVFS_INO_BASE are virtual files. */
		if (op->ino < KVFS_INO_BASE)
			return -EPERM;
		return check_name(op->name, op->name_len);
	case KVFS_OP_MKNOD:
		return check_mknod(op);
	case KVFS_OP_FALLOCATE:
		return check_fallocate(op);
	case KVFS_OP_SETXATTR:
		if ((op->flags & KVFS_XATTR_CREATE) && (op->flags & KVFS_XATTR_REPLACE))
			return -EINVAL;
		rv = op->name_len && !op->name ? -EINVAL
		                               : store_xattr_check_name(op->name, op->name_len);
		if (rv)
			return rv;
		if (op->data_len && !op->data)
			return -EINVAL;
		return op->data_len > KVFS_XATTR_VALUE_MAX ? -E2BIG : 0;
	case KVFS_OP_REMOVEXATTR:
		if (op->name_len && !op->name)
			return -EINVAL;
		return store_xattr_check_name(op->name, op->name_len);
	case KVFS_OP_LOCK:
	case KVFS_OP_UNLOCK_OWNER:
	case KVFS_OP_RELEASE_NODE:
		return check_lock(op);
	default:
		return -EINVAL;
	}
}
