/*
 * fallocate(2) on a kvfs file: one KVFS_OP_FALLOCATE operation, applied by the store with the
 * same outcome on every replica (store_apply.c). kvfs keeps no blocks, so "allocating" is only
 * about the size: mode 0 grows the file to offset + length with zeros, KEEP_SIZE alone changes
 * nothing but is accepted (space is never reserved: the disk may still fill), PUNCH_HOLE (always
 * with KEEP_SIZE) and ZERO_RANGE turn the range into zeros, ZERO_RANGE growing the file unless
 * KEEP_SIZE. Any other mode bit (COLLAPSE_RANGE, INSERT_RANGE ...) is EOPNOTSUPP, which the
 * kernel remembers for the mode.
 *
 * The write buffer of a file open for writing here is kept in step the way a truncate keeps it
 * (op_setattr): what was written before the call commits first, and the buffer takes the change
 * at once, so writes that come before the operation applies build on it.
 */
#include "fs.h"

#include <errno.h>
#include <linux/falloc.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "kvfs/op.h"
#include "kvfs/store.h"

int fuse_alloc_wbuf_resize(struct wbuf *wb, size_t size)
{
	if (size > wb->cap) {
		uint8_t *d = realloc(wb->data, size);

		if (!d)
			return -ENOMEM;
		wb->data = d;
		wb->cap = size;
	}
	if (size > wb->size)
		memset(wb->data + wb->size, 0, size - wb->size);
	wb->size = size;
	return 0;
}

/* The kvfs flags for a fallocate(2) mode, or -EOPNOTSUPP. */
static int falloc_flags(int mode, uint32_t *flags)
{
	*flags = 0;
	if (mode & ~(FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE))
		return -EOPNOTSUPP;
	if (mode & FALLOC_FL_KEEP_SIZE)
		*flags |= KVFS_FALLOC_KEEP_SIZE;
	if (mode & FALLOC_FL_PUNCH_HOLE)
		*flags |= KVFS_FALLOC_PUNCH_HOLE;
	if (mode & FALLOC_FL_ZERO_RANGE)
		*flags |= KVFS_FALLOC_ZERO_RANGE;
	return 0;
}

/* Applies op's change to the write buffer wb, as the store will apply it to the value. */
static int mirror(struct wbuf *wb, const struct kvfs_op *op)
{
	uint64_t end = op->offset + op->length;
	bool zero = op->flags & (KVFS_FALLOC_PUNCH_HOLE | KVFS_FALLOC_ZERO_RANGE);
	int rv = 0;

	if (!(op->flags & KVFS_FALLOC_KEEP_SIZE) && end > wb->size)
		rv = fuse_alloc_wbuf_resize(wb, end);
	if (rv == 0 && zero && op->offset < wb->size)
		memset(wb->data + op->offset, 0,
		       (end < wb->size ? end : wb->size) - op->offset);
	return rv;
}

void fuse_alloc_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t offset, off_t length,
                          struct fuse_file_info *fi)
{
	struct kvfs_fs *fs = fuse_req_userdata(req);
	struct kvfs_op op = {.type = KVFS_OP_FALLOCATE, .ino = ino};
	struct kvfs_inode *in;
	struct wbuf *wb;
	int rv = falloc_flags(mode, &op.flags);

	if (rv == 0 && (offset < 0 || length <= 0))
		rv = -EINVAL;
	if (rv == 0 && fuse_status_is_virtual(ino))
		rv = -EOPNOTSUPP;
	in = rv == 0 ? store_get(fs->store, ino) : NULL;
	if (rv == 0 && !in)
		rv = -ENOENT;
	if (rv == 0 && !S_ISREG(in->mode))
		rv = S_ISDIR(in->mode) ? -EISDIR : -ENODEV;
	if (rv == 0 && !(op.flags & KVFS_FALLOC_KEEP_SIZE) &&
	    (uint64_t)offset + (uint64_t)length > fs->max_value)
		rv = -EFBIG;
	if (rv < 0) {
		fuse_reply_err(req, -rv);
		return;
	}
	op.offset = (uint64_t)offset;
	op.length = (uint64_t)length;
	fuse_file_commit_pending(fs, ino);
	wb = fuse_file_wbuf(fs, ino);
	if (wb && mirror(wb, &op) < 0) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	fuse_propose(req, &op, PENDING_ERR, NULL);
}
