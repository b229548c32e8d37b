/*
 * Extended attributes of the store's inodes: the "user." namespace only, on regular files and
 * directories (as Linux allows), changed by KVFS_OP_SETXATTR and KVFS_OP_REMOVEXATTR through
 * store_apply() like everything else, so every replica holds the same ones.
 *
 * An inode's attributes are one immutable, reference-counted set (struct kvfs_xattrs) sorted by
 * name: a change builds a new set sharing the unchanged names and values (struct kvfs_value), so
 * a snapshot capture only takes a reference on the set, and readers on the loop thread see a
 * consistent set. Reference counts change on the loop thread only.
 *
 * Limits (the same on every replica, checked when proposing, when applying and when loading a
 * snapshot): a name is "user." and 1..250 more bytes without NUL, at most KVFS_XATTR_NAME_MAX in
 * all; a value at most KVFS_XATTR_VALUE_MAX bytes; per inode at most KVFS_XATTR_COUNT_MAX names,
 * KVFS_XATTR_SIZE_MAX bytes of names and values together, and a name list (listxattr(2): each
 * name and a NUL) of at most KVFS_XATTR_LIST_MAX bytes. Names under "user.kvfs." are kvfs's own
 * (computed by the FUSE layer, never stored): setting or removing one is EPERM.
 *
 * Pure: no I/O. Lives in replica/store_xattr.c.
 */
#ifndef KVFS_STORE_XATTR_H
#define KVFS_STORE_XATTR_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

struct kvfs_store;
struct kvfs_inode;
struct kvfs_value;
struct kvfs_op;

#define KVFS_XATTR_NAME_MAX  255u         /* XATTR_NAME_MAX */
#define KVFS_XATTR_VALUE_MAX (64u << 10)  /* XATTR_SIZE_MAX */
#define KVFS_XATTR_SIZE_MAX  (256u << 10) /* names + values of one inode */
#define KVFS_XATTR_COUNT_MAX 1024u        /* names of one inode */
#define KVFS_XATTR_LIST_MAX  (64u << 10)  /* XATTR_LIST_MAX: listxattr's largest answer */
#define KVFS_XATTR_USER      "user."
#define KVFS_XATTR_RESERVED  "user.kvfs."

/* One attribute: its name (bytes, no NUL) and value, each a reference. */
struct kvfs_xattr {
	struct kvfs_value *name;
	struct kvfs_value *value;
};

/* An inode's attributes, sorted by name (memcmp order, a prefix first); never empty. */
struct kvfs_xattrs {
	uint32_t refs;
	uint32_t n;
	uint64_t bytes;    /* names + values */
	uint64_t list_len; /* names + one NUL each: listxattr's answer */
	struct kvfs_xattr a[];
};

/*
 * Whether the len bytes at name may name a stored attribute: 0, -ERANGE (empty or over
 * KVFS_XATTR_NAME_MAX), -EOPNOTSUPP (not "user."), -EINVAL ("user." alone, or a NUL), -EPERM
 * (reserved, "user.kvfs."). Inline: op_validate.c, the store and the FUSE layer share it.
 */
static inline int store_xattr_check_name(const char *name, size_t len)
{
	size_t user = sizeof(KVFS_XATTR_USER) - 1, reserved = sizeof(KVFS_XATTR_RESERVED) - 1;

	if (len == 0 || len > KVFS_XATTR_NAME_MAX)
		return -ERANGE;
	if (len < user || memcmp(name, KVFS_XATTR_USER, user) != 0)
		return -EOPNOTSUPP;
	if (len == user || memchr(name, '\0', len))
		return -EINVAL;
	if (len >= reserved && memcmp(name, KVFS_XATTR_RESERVED, reserved) == 0)
		return -EPERM;
	return 0;
}

/* The value of attribute `name` (len bytes) of in, or NULL (none; the value may be NULL: empty,
 * see *found). */
const struct kvfs_value *store_xattr_get(const struct kvfs_inode *in, const char *name, size_t len,
                                         bool *found);

/* Bytes of names and values of every linked inode's attributes. */
uint64_t store_xattr_bytes(const struct kvfs_store *s);

/* Takes / drops a reference on a set (NULL is ignored); the last drop frees it. */
struct kvfs_xattrs *store_xattr_ref(struct kvfs_xattrs *x);
void store_xattr_unref(struct kvfs_xattrs *x);

/*
 * Applies a SETXATTR or REMOVEXATTR (store_apply() calls it). Returns the outcome, as store.h's
 * operation helpers do: 0; -ENOENT (no such linked inode), -EPERM (not a regular file or
 * directory, or a reserved name), -EOPNOTSUPP, -EINVAL, -ERANGE (a bad name, as
 * store_xattr_check_name), -EINVAL (both flags, unknown flags), -E2BIG (value too long),
 * -EEXIST (CREATE and present), -ENODATA (REPLACE or remove, and absent), -ENOSPC (a limit of
 * the inode would be passed); or -ENOMEM with nothing changed. Sets the inode's ctime.
 */
int store_xattr_apply(struct kvfs_store *s, const struct kvfs_op *op, uint64_t *ino);

/*
 * Loading a snapshot: adds attribute (name, value) to linked inode ino of s, after the ones
 * loaded before for it. The first call for an inode must find it without attributes (first
 * true), later ones (first false) must come in strictly ascending name order. 0, -ENOMEM, or
 * -EBADMSG if ino is unknown, not a file or directory, the name is not a storable one, the
 * order is wrong or a limit is passed.
 */
int store_xattr_load(struct kvfs_store *s, uint64_t ino, bool first, const char *name,
                     uint32_t name_len, const uint8_t *value, uint32_t value_len);

#endif /* KVFS_STORE_XATTR_H */
