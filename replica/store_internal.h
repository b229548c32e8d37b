/*
 * What store.c (the tree of names and inodes, pins, walks, loading, sessions) shares with
 * store_apply.c (the operations), private to those two files. The tree helpers change only the
 * structure they name; none of them allocates except the _new ones, so an operation allocates
 * first and then mutates with helpers that cannot fail.
 */
#ifndef KVFS_REPLICA_STORE_INTERNAL_H
#define KVFS_REPLICA_STORE_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kvfs/config.h"
#include "kvfs/store.h"
#include "store_hash.h"

struct kvfs_store {
	struct kvfs_inode *root;
	struct kvfs_store_hash hash; /* linked inodes and unlinked pinned ones; linked names */
	uint64_t applied_index, applied_epoch;
	struct kvfs_config config; /* the last CONFIG entry applied (config_index 0: none) */
	uint64_t config_index;
	uint64_t inode_count;          /* linked inodes, root included */
	uint64_t value_bytes;          /* bytes of linked regular files' values */
	uint64_t xattr_bytes;          /* names + values of linked inodes' attributes */
	struct kvfs_session *sessions; /* sorted by origin */
	size_t nsessions, sessions_cap;
	uint32_t walks; /* store_foreach() calls so far: the mark of the current walk (never 0) */
	struct kvfs_lock *locks; /* the lock table (store_lock.c), in the order ops left it */
	size_t nlocks, locks_cap;
};

/* store_lock.c: applies LOCK, UNLOCK_OWNER or RELEASE_NODE at log index `index` (the outcome,
 * or -ENOMEM: nothing changed); drops every lock of ino (it lost its last name). */
int store_lock_apply(struct kvfs_store *s, uint64_t index, const struct kvfs_op *op,
                     struct kvfs_apply_result *res);
void store_lock_drop_ino(struct kvfs_store *s, uint64_t ino);

/* A new inode with no name (nlink 2 for a directory, else 0), or NULL if out of memory. */
struct kvfs_inode *store_inode_new(uint64_t ino, uint32_t mode);

/* A new name (a copy of len bytes) in no directory, or NULL if out of memory. */
struct kvfs_dentry *store_dentry_new(const char *name, size_t len);
void store_dentry_free(struct kvfs_dentry *d);

/*
 * Gives inode `in` the name d (not yet in any directory) in directory dir: the name table, dir's
 * entry list (at its end) and counts, in's names and nlink. The caller made room in the hash
 * tables (store_hash_grow).
 */
void store_link_name(struct kvfs_store *s, struct kvfs_inode *dir, struct kvfs_dentry *d,
                     struct kvfs_inode *in);

/* Takes name d out of its directory and off its inode (nlink of a non-directory drops by one),
 * undoing store_link_name(); d is not freed. */
void store_unlink_name(struct kvfs_store *s, struct kvfs_dentry *d);

/* Takes d out of its directory only (the name table, the entry list, the directory's counts),
 * keeping its inode; store_attach() puts it back, at the end of dir's entries. For a rename. */
void store_detach(struct kvfs_store *s, struct kvfs_dentry *d);
void store_attach(struct kvfs_store *s, struct kvfs_inode *dir, struct kvfs_dentry *d);

/* Puts nd (in no directory, on no inode) in the place of old (detached from its directory) among
 * the names of old's inode, keeping their order; old is left on no inode, to be freed. */
void store_replace_alias(struct kvfs_dentry *old, struct kvfs_dentry *nd);

/* Makes d a name of `to` instead of its present inode, in place (RENAME_EXCHANGE): alias lists,
 * nlink of non-directories and of d's directory when a directory comes or goes. */
void store_rebind(struct kvfs_dentry *d, struct kvfs_inode *to);

/* An inode whose last name went: counts it out, nlink 0, ctime; frees it unless it is pinned. */
void store_drop_inode(struct kvfs_store *s, struct kvfs_inode *in, int64_t time_ns);

/* The linked inode ino: what operations may address. NULL if none or unlinked. */
struct kvfs_inode *store_get_linked(const struct kvfs_store *s, uint64_t ino);

/* store_lookup_dentry(), but the name may be changed. */
struct kvfs_dentry *store_find_name(const struct kvfs_store *s, const struct kvfs_inode *dir,
                                    const char *name, size_t len);

/* The directory holding linked directory dir, NULL for the root. */
struct kvfs_inode *store_dir_of(const struct kvfs_inode *dir);

/* 0 if name is a well-formed entry name (not ".", "..", no '/' or NUL, NAME_MAX at most):
 * -EINVAL or -ENAMETOOLONG otherwise. */
int store_check_name(const char *name, size_t len);

/*
 * 0 if name may be created in dir: well-formed, not reserved (names starting with ".status" or
 * ".kvfs" in the root belong to virtual files: -EEXIST or -EACCES) and, unless rules2 (see
 * KVFS_OP_RULES2), a path from the root no longer than KVFS_PATH_MAX (-ENAMETOOLONG).
 */
int store_check_new_name(const struct kvfs_inode *dir, const char *name, size_t len, bool rules2);

/* Exactly-once table. store_session_find: the position of origin in the sorted table, or where
 * it would go, and whether it is there. store_session_reserve: room for one more (-ENOMEM,
 * nothing changed). store_session_set: records sess (a new origin needs the room). */
size_t store_session_find(const struct kvfs_store *s, uint32_t origin, bool *found);
int store_session_reserve(struct kvfs_store *s);
void store_session_set(struct kvfs_store *s, const struct kvfs_session *sess);

#endif /* KVFS_REPLICA_STORE_INTERNAL_H */
