/*
 * The store's two hash tables, private to the store (store.c, store_apply.c): inodes by number,
 * and names (dentries) by (directory number, name). Both are intrusive (chained through the
 * inodes' ino_next and the dentries' name_next fields, so adding an entry never allocates) and
 * have a power-of-two number of buckets.
 */
#ifndef KVFS_REPLICA_STORE_HASH_H
#define KVFS_REPLICA_STORE_HASH_H

#include <stddef.h>
#include <stdint.h>

struct kvfs_dentry;
struct kvfs_inode;

struct kvfs_store_hash {
	struct kvfs_inode **by_ino; /* chained through ino_next */
	size_t ino_buckets;
	size_t ino_entries;
	struct kvfs_dentry **by_name; /* chained through name_next */
	size_t name_buckets;
	size_t name_entries;
};

/* Empty tables. -ENOMEM (nothing to free) on failure. */
int store_hash_init(struct kvfs_store_hash *h);

/* Frees the tables, not the inodes in them. */
void store_hash_free(struct kvfs_store_hash *h);

/* Doubles each table that holds as many entries as buckets. Cannot fail: out of memory, a table
 * keeps its size and its chains grow longer. */
void store_hash_grow(struct kvfs_store_hash *h);

/* Makes room for n entries in each table at once (a bulk load that knows how many), instead of
 * doubling as they come. Cannot fail: out of memory, a table keeps its size. */
void store_hash_reserve(struct kvfs_store_hash *h, size_t n);

/* By number: in->ino is set; an inode is added at most once. */
void store_hash_add_ino(struct kvfs_store_hash *h, struct kvfs_inode *in);
void store_hash_del_ino(struct kvfs_store_hash *h, struct kvfs_inode *in);
struct kvfs_inode *store_hash_get_ino(const struct kvfs_store_hash *h, uint64_t ino);

/* By name: d->dir, d->name and d->name_len are set and do not change while it is in. */
void store_hash_add_name(struct kvfs_store_hash *h, struct kvfs_dentry *d);
void store_hash_del_name(struct kvfs_store_hash *h, struct kvfs_dentry *d);
struct kvfs_dentry *store_hash_get_name(const struct kvfs_store_hash *h,
                                        const struct kvfs_inode *dir, const char *name, size_t len);

/* Calls fn on every inode of the number table; fn may free the inode it is given. */
void store_hash_drain(struct kvfs_store_hash *h, void (*fn)(struct kvfs_inode *in));

#endif /* KVFS_REPLICA_STORE_HASH_H */
