/*
 * A store image for unit tests: everything visible of a kvfs store (every name of every linked
 * inode in store_foreach() order with the inode's attributes and a copy of its value, the
 * extended attributes, the exactly-once sessions,
 * the applied index and epoch, the inode count and value bytes), copied, so that two stores, or
 * one store at two moments, can be compared field by field. Shared by test_store.c and
 * test_snapshot.c; failures are cmocka assertions, so it is for use inside a cmocka test only.
 */
#ifndef KVFS_TESTS_STORE_IMAGE_H
#define KVFS_TESTS_STORE_IMAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct kvfs_session;
struct kvfs_store;

/* One name and its inode as store_foreach() shows them. */
struct store_image_inode {
	uint64_t ino, parent; /* parent: the directory holding the name, 0 for the root's */
	bool first;           /* the walk's first name of ino */
	uint64_t nchildren, nlink;
	uint32_t mode, uid, gid, rdev;
	int64_t atime_ns, mtime_ns, ctime_ns;
	char *name;     /* NUL-terminated copy; owned */
	uint8_t *value; /* copy of value_len bytes; owned, never NULL */
	uint64_t value_len;
	uint8_t *xattrs; /* its extended attributes, as (u32 len, name, u32 len, value) in order;
	                    owned, never NULL */
	size_t xattrs_len;
};

struct store_image {
	struct store_image_inode *inodes; /* names, in store_foreach() order */
	size_t n, cap;
	size_t ninodes;            /* records with `first` */
	struct kvfs_session *sess; /* in store_session_foreach() order */
	size_t nsess, sess_cap;
	uint64_t index, epoch, inode_count, value_bytes, xattr_bytes;
};

/* Copies everything visible of s into a new image; fails the test if an allocation or a walk
 * fails. Free with store_image_free(). */
struct store_image *store_image_of(const struct kvfs_store *s);

/* Frees im and all it holds; NULL is allowed. */
void store_image_free(struct store_image *im);

/* Fails the test unless x and y are equal in every field, and each walk saw as many inodes
 * (first names) as its store counts. */
void assert_store_images_equal(const struct store_image *x, const struct store_image *y);

/* assert_store_images_equal() on images of a and b. */
void assert_stores_equal(const struct kvfs_store *a, const struct kvfs_store *b);

#endif /* KVFS_TESTS_STORE_IMAGE_H */
