/*
 * kvfs's own extended attributes, under "user.kvfs.": computed when asked, never stored, never
 * set by anyone (fuse_xattr.c answers EPERM). Today there is one: "user.kvfs.lock", the fencing
 * token of the file's locks (fuse_lock_token_text(): the log index that granted the newest lock
 * held on it), ENODATA while nobody holds one.
 */
#include "fs.h"

#include <errno.h>
#include <string.h>

/* Every name fuse_xattr_reserved_get() may answer, NULL-terminated (listxattr asks each). */
const char *const fuse_xattr_reserved_names[] = {"user.kvfs.lock", NULL};

/* The most bytes those names take in a list, each with its NUL. */
const size_t fuse_xattr_reserved_list_max = sizeof("user.kvfs.lock");

int fuse_xattr_reserved_get(struct kvfs_fs *fs, fuse_ino_t ino, const char *name, char *buf,
                            size_t len)
{
	char text[32];
	int n;

	if (strcmp(name, "user.kvfs.lock") != 0)
		return -ENODATA;
	n = fuse_lock_token_text(fs, ino, text, sizeof(text));
	if (n < 0 || len == 0)
		return n; /* len 0: the size */
	if ((size_t)n > len)
		return -ERANGE;
	memcpy(buf, text, (size_t)n);
	return n;
}
