/*
 * kvfs's own extended attributes, under "user.kvfs.": computed when asked, never stored, never
 * set by anyone (fuse_xattr.c answers EPERM). This release computes none: every name answers
 * ENODATA and none is listed. The cluster-wide locks give "user.kvfs.lock" (the fencing token
 * of a file's lock) its value here.
 */
#include "fs.h"

#include <errno.h>

/* Every name fuse_xattr_reserved_get() may answer, NULL-terminated (listxattr asks each). */
const char *const fuse_xattr_reserved_names[] = {"user.kvfs.lock", NULL};

/* The most bytes those names take in a list, each with its NUL. */
const size_t fuse_xattr_reserved_list_max = sizeof("user.kvfs.lock");

int fuse_xattr_reserved_get(struct kvfs_fs *fs, fuse_ino_t ino, const char *name, char *buf,
                            size_t len)
{
	return -ENODATA;
}
