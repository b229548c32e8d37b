/*
 * POSIX tar headers (pax format, POSIX.1-2001): the encoding behind /.kvfs-backup.tar
 * (fuse_backup.c).
 *
 * An entry is a 512-byte ustar header, preceded by a pax extended header ('x') when ustar cannot
 * say exactly what the entry is: a path or link target over 100 bytes, an mtime that is not a
 * whole number of seconds or does not fit the octal field, a size, uid or gid too large for it.
 * Paths and targets in pax records that are not valid UTF-8 are marked `hdrcharset=BINARY`, so
 * every name a Linux filesystem accepts comes back byte for byte. Extended attributes go into
 * "SCHILY.xattr.NAME=VALUE" pax records (the value's bytes as they are), GNU tar's and star's
 * convention, which `tar --xattrs` and Python's tarfile read. The file's data follows the
 * header, padded with zeros to a multiple of 512 bytes; the archive ends with two zero blocks.
 *
 * Pure: no I/O. Functions return the number of bytes the encoding takes, like snprintf, and
 * write only when the buffer holds all of it.
 */
#ifndef KVFS_FS_TAR_H
#define KVFS_FS_TAR_H

#include <stddef.h>
#include <stdint.h>

struct kvfs_xattrs;

#define KVFS_TAR_BLOCK   512u
#define KVFS_TAR_TRAILER (2 * KVFS_TAR_BLOCK) /* two zero blocks end an archive */

#define KVFS_TAR_FILE     '0'
#define KVFS_TAR_HARDLINK '1' /* another name of a file archived earlier: link = its path */
#define KVFS_TAR_SYMLINK  '2'
#define KVFS_TAR_CHR      '3'
#define KVFS_TAR_BLK      '4'
#define KVFS_TAR_DIR      '5'
#define KVFS_TAR_FIFO     '6'

struct kvfs_tar_entry {
	const char *path; /* as stored in the archive ("./a/b", directories end with '/') */
	size_t path_len;
	char type;     /* KVFS_TAR_FILE, _HARDLINK, _SYMLINK, _CHR, _BLK, _DIR or _FIFO */
	uint32_t mode; /* permission bits (07777) */
	uint64_t uid, gid;
	int64_t mtime_ns; /* since the epoch; may be negative */
	uint64_t size;    /* bytes of data that follow (regular files; 0 otherwise) */
	const char *link; /* symlinks: the target; hard links: the first name's path */
	size_t link_len;
	uint32_t devmajor, devminor; /* KVFS_TAR_CHR, KVFS_TAR_BLK */
	const struct kvfs_xattrs *xattrs; /* extended attributes (store_xattr.h), or NULL: a
	                                     "SCHILY.xattr.NAME" pax record each, as GNU tar
	                                     --xattrs writes and reads them */
};

/* Bytes n takes once padded to whole blocks. */
static inline uint64_t tar_padded(uint64_t n)
{
	return (n + KVFS_TAR_BLOCK - 1) / KVFS_TAR_BLOCK * KVFS_TAR_BLOCK;
}

/*
 * Encodes the header(s) of e: a pax extended header if needed, then the ustar header. Returns
 * the number of bytes they take, a multiple of 512; writes them to buf only if they fit in len
 * (buf may be NULL to ask for the size).
 */
size_t tar_header(const struct kvfs_tar_entry *e, uint8_t *buf, size_t len);

/*
 * Encodes a pax global header ('g') holding the n records keys[i]=values[i] (each value a
 * NUL-terminated string), named `pax_global_header` with the given mtime (seconds). Same return
 * convention as tar_header().
 */
size_t tar_global(const char *const *keys, const char *const *values, size_t n, int64_t mtime,
                  uint8_t *buf, size_t len);

#endif /* KVFS_FS_TAR_H */
