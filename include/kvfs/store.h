/*
 * The store: the replica's state, an in-memory tree of directories, regular files, symlinks,
 * FIFOs, sockets and device nodes; a non-directory may have several names (hard links).
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
struct kvfs_xattrs;

#define KVFS_ROOT_INO 1u
#define KVFS_INO_BASE 16u /* inos 2..15 are left for virtual files (/.status ...) */

/*
 * Names and inodes. A directory entry (struct kvfs_dentry) is one name in one directory; an inode
 * has as many names as links (hard links: several for a non-directory; exactly one for a linked
 * directory; none once unlinked). The root's one name is "" in no directory.
 */
struct kvfs_inode;

struct kvfs_dentry {
	struct kvfs_inode *dir; /* the directory holding the name; NULL for the root's */
	struct kvfs_inode *in;  /* the inode the name gives */

	/* Private to the store. */
	struct kvfs_dentry *name_next;           /* (dir, name) hash chain */
	/* The directory's entries, in creation order: sib_next ends at NULL, the first entry's
	 * sib_prev is the last one (so a directory needs no tail pointer). */
	struct kvfs_dentry *sib_prev, *sib_next;
	struct kvfs_dentry *alias_next;          /* the inode's other names */

	uint32_t name_len;
	/* NUL-terminated; "" for the root. In the dentry's own allocation (one malloc per name, not
	 * two: a million keys spend 32 MB less), so a name never changes: a rename makes a new
	 * dentry in its place. */
	char name[];
};

struct kvfs_inode {
	uint64_t ino;
	uint32_t mode; /* S_IFREG, S_IFDIR, S_IFLNK, S_IFIFO, S_IFSOCK, S_IFCHR or S_IFBLK | 07777 */
	uint32_t uid, gid;
	uint32_t rdev;  /* S_IFCHR, S_IFBLK: the device number (Linux's new encoding); else 0 */
	uint32_t nlink; /* directories: 2 + subdirectories; others: number of names; 0 unlinked */
	uint32_t visit_mark; /* private to the store: the store_foreach() walk that last reached it */
	/* Outside references, see store_pin(). At KVFS_PINS_STUCK it stays there: the inode is then
	 * never freed before the store (2^32 kernel lookups of one inode without a forget). */
	uint32_t pins;
	/* Directories: number of entries. 32 bits: each entry costs over 150 bytes of memory, and
	 * store_check_new_name() refuses one more at UINT32_MAX. */
	uint32_t nchildren;
	int64_t atime_ns, mtime_ns, ctime_ns;
	struct kvfs_value *value;     /* regular file: contents (NULL = empty); symlink: target */
	struct kvfs_dentry *aliases;  /* its names, most recent first; NULL once unlinked */
	struct kvfs_xattrs *xattrs;   /* user.* extended attributes (store_xattr.h); NULL: none */

	/* Private to the store. */
	struct kvfs_inode *ino_next;    /* ino hash chain */
	/* Directories: first entry, in creation order; its sib_prev is the last entry. */
	struct kvfs_dentry *child_head;
	/* 104 bytes, 112 with malloc's header: every field above is needed, and a million keys spend
	 * 16 MB less than with the 120 bytes (128) of 64-bit counts and a tail pointer. */
};

#define KVFS_PINS_STUCK UINT32_MAX

/* What an applied operation did, for replies and for kernel cache invalidation. */
struct kvfs_apply_result {
	int err;               /* 0 or a negative errno: the operation's outcome */
	uint64_t ino;          /* the inode created, changed, removed or renamed; 0 if none */
	uint64_t replaced_ino; /* RENAME: the inode that was replaced at the target; 0 if none */
	uint32_t nlink_after;  /* UNLINK, RENAME, LINK: ino's nlink once applied (0: no name left) */
	uint32_t replaced_nlink_after; /* RENAME: replaced_ino's nlink once applied */
	uint64_t ino2;         /* RENAME with KVFS_RENAME_EXCHANGE: the inode at the target */
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

/* The configuration of the last CONFIG entry applied and its index (*index), or NULL (and
 * *index 0) if none was applied since the store was created or loaded. */
struct kvfs_config;
const struct kvfs_config *store_config(const struct kvfs_store *s, uint64_t *index);

/* The inode with number ino, linked or unlinked-but-pinned; NULL if none. */
struct kvfs_inode *store_get(const struct kvfs_store *s, uint64_t ino);

/* The entry `name` (len bytes) in directory `dir`; NULL if none or dir is not a directory. */
struct kvfs_inode *store_lookup(const struct kvfs_store *s, const struct kvfs_inode *dir,
                                const char *name, size_t len);
const struct kvfs_dentry *store_lookup_dentry(const struct kvfs_store *s,
                                              const struct kvfs_inode *dir, const char *name,
                                              size_t len);

/* The directory holding directory dir ("..": the root for the root); NULL if dir is unlinked
 * or not a directory. */
struct kvfs_inode *store_parent(const struct kvfs_inode *dir);

/* Adds n outside references to in. A count that would pass UINT32_MAX - 1 stays at
 * KVFS_PINS_STUCK from then on, and store_unpin() leaves it there: such an inode is freed only
 * with the store. */
void store_pin(struct kvfs_store *s, struct kvfs_inode *in, uint64_t n);

/* Drops n outside references; an unlinked inode is freed with its last one. */
void store_unpin(struct kvfs_store *s, struct kvfs_inode *in, uint64_t n);

/* Entries of a directory in creation order: first, then next; NULL at the end. */
const struct kvfs_dentry *store_child_first(const struct kvfs_inode *dir);
const struct kvfs_dentry *store_child_next(const struct kvfs_dentry *d);

/* Number of linked inodes (root included) and total bytes of file values. */
uint64_t store_inode_count(const struct kvfs_store *s);
uint64_t store_value_bytes(const struct kvfs_store *s);

/*
 * Snapshots. store_foreach() visits every name of every linked inode, each directory's name
 * before its entries (pre-order, entries in creation order), the root's first; `first` is true
 * the first time the walk reaches d->in (an inode with several names is visited once per name).
 * store_load_inode() and store_load_link() rebuild a store from such a walk: call, on a new
 * store, store_load_inode() for each first visit (the root's call updates the existing root)
 * and store_load_link() for each later one, in visit order, then store_load_done() with the
 * snapshot's index and epoch. store_load_inode takes in's mode, uid, gid, rdev, times and value
 * (a new reference) and ignores its other fields; nlink is counted, never trusted. They return
 * 0, -ENOMEM, or -EBADMSG if the entry does not fit (parent unknown or not a directory, name
 * invalid or taken, ino taken or (link) unknown or a directory, a type or rdev store_apply()
 * could not have made).
 */
typedef int (*kvfs_store_visit_fn)(void *arg, const struct kvfs_dentry *d, bool first);
int store_foreach(const struct kvfs_store *s, kvfs_store_visit_fn fn, void *arg);
int store_load_inode(struct kvfs_store *s, uint64_t parent_ino, const char *name,
                     uint32_t name_len, const struct kvfs_inode *in);
int store_load_link(struct kvfs_store *s, uint64_t parent_ino, const char *name,
                    uint32_t name_len, uint64_t ino);
void store_load_done(struct kvfs_store *s, uint64_t index, uint64_t epoch);
/* A snapshot's configuration (what store_config() then returns), set while loading it. */
void store_load_config(struct kvfs_store *s, const struct kvfs_config *c, uint64_t index);

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

/*
 * The lock table (store_lock.c): flock and record locks, changed by the LOCK, UNLOCK_OWNER and
 * RELEASE_NODE operations (op.h). A lock's range is start..end inclusive (flock locks: 0 ..
 * KVFS_LOCK_END_MAX); token is the log index that granted it (the fencing token).
 */
struct kvfs_lock {
	uint64_t ino;
	uint32_t node;  /* the owner: node id ... */
	uint64_t inc;   /* ... its incarnation ... */
	uint64_t owner; /* ... and FUSE's lock owner */
	uint8_t kind;   /* KVFS_LOCK_FLOCK or KVFS_LOCK_POSIX */
	uint8_t type;   /* KVFS_LOCK_RD or KVFS_LOCK_WR */
	uint64_t start, end;
	uint32_t pid;   /* the process that asked, on node `node` */
	uint64_t token;
};

/* Whether want (type RD or WR) conflicts with another owner's lock: true and the first such lock
 * in *conflict (may be NULL); false if it could be granted now. For F_GETLK. */
bool store_lock_conflict(const struct kvfs_store *s, const struct kvfs_lock *want,
                         struct kvfs_lock *conflict);
/* The locks held, in the table's order (for snapshots): count, and lock i (NULL past the end). */
size_t store_lock_count(const struct kvfs_store *s);
const struct kvfs_lock *store_lock_at(const struct kvfs_store *s, size_t i);
/* The highest fencing token among the locks held on ino: true and *token, or false (none). */
bool store_lock_token(const struct kvfs_store *s, uint64_t ino, uint64_t *token);
/* Adds a lock from a snapshot of index `index`, after its inodes were loaded: 0, -ENOMEM, or
 * -EBADMSG if it is one no sequence of operations could have left (unknown ino, bad kind, type
 * or range, a token past index, a conflict or overlap with a lock loaded before). */
int store_lock_load(struct kvfs_store *s, const struct kvfs_lock *l, uint64_t index);

/* Length of the path of name d from the root ("a/b/c" = 5), 0 for the root. */
size_t store_path_len(const struct kvfs_dentry *d);

#endif /* KVFS_STORE_H */
