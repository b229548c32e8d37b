/*
 * The store: the replica's state, an in-memory tree of directories, regular files and symlinks.
 *
 * The store changes only through store_apply(), which applies one committed operation at a given
 * log index and decides its outcome (ENOENT, EEXIST, ENOTEMPTY ...) deterministically from the
 * operation and the current state, so every replica reaches the same state. Inode numbers are
 * KVFS_INO_BASE + the log index of the operation that created the inode; they never change (a
 * rename keeps them) and are never reused. The root is KVFS_ROOT_INO.
 *
 * The store also remembers, per origin node, the last sequence number applied and its outcome, so
 * that an operation retried after a leader change takes effect exactly once.
 *
 * Outside references: the FUSE layer pins inodes that the kernel knows (lookup count) and that
 * open files use. An unlinked inode stays reachable by number until its last pin is dropped, so a
 * file removed while open can still be read, as on a local filesystem.
 *
 * Pure: no I/O, no clock, no threads. Not thread-safe: the loop thread owns it.
 */
#ifndef KVFS_STORE_H
#define KVFS_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct kvfs_op;
struct kvfs_value;

#define KVFS_ROOT_INO 1u
#define KVFS_INO_BASE 16u /* inos 2..15 are left for virtual files (/.status ...) */

struct kvfs_inode {
	uint64_t ino;
	uint32_t mode; /* S_IFREG, S_IFDIR or S_IFLNK | permission bits */
	uint32_t uid, gid;
	uint32_t nlink; /* directories: 2 + subdirectories; others: 1; 0 once unlinked */
	int64_t atime_ns, mtime_ns, ctime_ns;
	struct kvfs_value *value; /* regular file: contents (NULL = empty); symlink: target */
	char *name;               /* NUL-terminated; "" for the root; owned */
	uint32_t name_len;
	struct kvfs_inode *parent; /* NULL for the root and for unlinked inodes */
	uint64_t pins;             /* outside references, see store_pin() */
	uint64_t nchildren;        /* directories: number of entries */

	/* Private to store.c. */
	struct kvfs_inode *ino_next;   /* ino hash chain */
	struct kvfs_inode *name_next;  /* (parent, name) hash chain */
	struct kvfs_inode *child_head; /* directories: first child, in creation order */
	struct kvfs_inode *child_tail;
	struct kvfs_inode *sib_prev, *sib_next; /* siblings in the parent's list */
};

/* What an applied operation did, for replies and for kernel cache invalidation. */
struct kvfs_apply_result {
	int err;               /* 0 or a negative errno: the operation's outcome */
	uint64_t ino;          /* the inode created, changed, removed or renamed; 0 if none */
	uint64_t replaced_ino; /* RENAME: the inode that was replaced at the target; 0 if none */
	bool duplicate;        /* (origin, seq) was already applied: nothing changed; err and ino
	                          are those of the first application */
};

struct kvfs_store;

/* Creates an empty store holding only the root directory (mode 0755, times = 0). -ENOMEM on
 * failure. */
int store_init(struct kvfs_store **out);

/* Frees the store and everything in it, pinned or not. */
void store_close(struct kvfs_store *s);

/*
 * Applies op, the entry at log index `index` of epoch `epoch`. index must be
 * store_applied_index() + 1 (-EINVAL otherwise, and nothing changes). Total: every operation,
 * however malformed (unknown type, bad name, data or size over its max_value or over
 * KVFS_DATA_MAX, missing parent ...), gets a deterministic outcome in *res; the operation failing
 * (res->err < 0) still consumes the index and, for a tracked (origin, seq), records that outcome
 * in the exactly-once table, so a retry gets the same errno. Returns 0, or -ENOMEM, in which
 * case the store is unchanged and the index not consumed.
 */
int store_apply(struct kvfs_store *s, uint64_t epoch, uint64_t index, const struct kvfs_op *op,
                struct kvfs_apply_result *res);

/*
 * Applies the committed log entry `index` of `epoch` whose payload is the len bytes at data:
 * decoded into *op (which then borrows from data) and applied with store_apply(). An empty
 * payload is a no-op. A payload that does not decode is applied as a no-op whose outcome is
 * -EBADMSG, with *op a NOOP: the index is consumed alike on every replica and no session is
 * recorded (its origin is unknown). Returns what store_apply() returns. Lives in store_entry.c.
 */
int store_entry_apply(struct kvfs_store *s, uint64_t epoch, uint64_t index, const uint8_t *data,
                      size_t len, struct kvfs_op *op, struct kvfs_apply_result *res);

/* Swaps the contents of a and b (a snapshot from the leader replaces a store that others point
 * to). Inode pointers keep pointing into the contents they came from. */
void store_exchange(struct kvfs_store *a, struct kvfs_store *b);

/* Index and epoch of the last applied entry (0, 0 for a new store). */
uint64_t store_applied_index(const struct kvfs_store *s);
uint64_t store_applied_epoch(const struct kvfs_store *s);

/* The inode with number ino, linked or unlinked-but-pinned; NULL if none. */
struct kvfs_inode *store_get(const struct kvfs_store *s, uint64_t ino);

/* The entry `name` (len bytes) in directory `dir`; NULL if none or dir is not a directory. */
struct kvfs_inode *store_lookup(const struct kvfs_store *s, const struct kvfs_inode *dir,
                                const char *name, size_t len);

/* Adds n outside references to in. */
void store_pin(struct kvfs_store *s, struct kvfs_inode *in, uint64_t n);

/* Drops n outside references; an unlinked inode is freed with its last one. */
void store_unpin(struct kvfs_store *s, struct kvfs_inode *in, uint64_t n);

/* Children of a directory in creation order: first child, then next sibling; NULL at the end. */
struct kvfs_inode *store_child_first(const struct kvfs_inode *dir);
struct kvfs_inode *store_child_next(const struct kvfs_inode *child);

/* Number of linked inodes (root included) and total bytes of file values. */
uint64_t store_inode_count(const struct kvfs_store *s);
uint64_t store_value_bytes(const struct kvfs_store *s);

/*
 * Snapshots. store_foreach() visits every linked inode, each directory before its children
 * (pre-order, children in creation order), the root first. store_load_inode() rebuilds a store
 * from such a sequence: call it on a new store for each visited inode in visit order (the root's
 * call updates the existing root), then store_load_done() with the snapshot's index and epoch.
 * store_load_inode takes a new reference on `value`. Returns 0, -ENOMEM, or -EBADMSG if the
 * inode does not fit (parent unknown or not a directory, duplicate name or ino).
 */
typedef int (*kvfs_store_visit_fn)(void *arg, const struct kvfs_inode *in);
int store_foreach(const struct kvfs_store *s, kvfs_store_visit_fn fn, void *arg);
int store_load_inode(struct kvfs_store *s, uint64_t parent_ino, const struct kvfs_inode *in);
void store_load_done(struct kvfs_store *s, uint64_t index, uint64_t epoch);

/* Exactly-once table: the last (seq, err, ino) applied per origin. */
struct kvfs_session {
	uint32_t origin;
	uint64_t seq;
	int32_t err;
	uint64_t ino;
};
typedef int (*kvfs_store_session_fn)(void *arg, const struct kvfs_session *sess);
int store_session_foreach(const struct kvfs_store *s, kvfs_store_session_fn fn, void *arg);
/* The last (seq, err, ino) applied for origin: true and *out, or false if none. */
bool store_session_get(const struct kvfs_store *s, uint32_t origin, struct kvfs_session *out);
int store_session_load(struct kvfs_store *s, const struct kvfs_session *sess);

/* Length of the path of in from the root ("a/b/c" = 5), 0 for the root. */
size_t store_path_len(const struct kvfs_inode *in);

#endif /* KVFS_STORE_H */
