/*
 * The FUSE view of a node: state shared by the fuse_*.c files of fs/.
 *
 * All FUSE requests are read and answered on the libuv loop thread, the thread that owns the
 * node and its store (main.c polls fuse_session_fd()). Reads are answered at once from the store.
 * Changes become operations proposed to the node and are answered when the node calls back, that
 * is once they are durable and applied: a request's reply may come many loop iterations after it
 * arrived. Kernel cache invalidations go through a thread of their own (fuse_inval.c), because
 * the kernel may make such a call wait for a request that only the loop thread can answer.
 */
#ifndef KVFS_FS_FS_H
#define KVFS_FS_FS_H

#include <fuse_lowlevel.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "kvfs/metrics.h"

struct kvfs_node;
struct kvfs_store;
struct kvfs_inode;
struct kvfs_inval;
struct kvfs_op;
struct kvfs_apply_result;

/* Virtual files at the root; their inode numbers lie below KVFS_INO_BASE. */
#define KVFS_STATUS_INO      2u
#define KVFS_STATUS_JSON_INO 3u
#define KVFS_METRICS_INO     4u /* /.metrics (issue 10) */
#define KVFS_BACKUP_INO      5u /* /.kvfs-backup.tar (issue 10) */
#define KVFS_CHANGES_INO      6u /* /.changes (issue 13) */
#define KVFS_CHANGES_JSON_INO 7u /* /.changes.json */
/* Feeds named with a start index or a prefix (/.changes@12?prefix=...) get an inode each from
 * here up: real inode numbers (KVFS_INO_BASE + a log index) never come near. */
#define KVFS_FEED_INO_BASE ((uint64_t)1 << 62)

/* A write buffer: the uncommitted contents of a file open for writing on this node, shared by
 * all its write handles, committed as one PUT on flush/fsync/close. */
struct wbuf {
	uint64_t ino;
	unsigned refs; /* write handles + commits in flight */
	uint8_t *data;
	size_t size, cap;
	bool dirty; /* differs from what was last proposed */
	int err;    /* sticky: a write failed (EFBIG); the next flush reports it and drops all */
	struct kvfs_value *orig; /* the committed value when the buffer was made (a reference) */
	bool attrs_shown;        /* attributes were given to the kernel while dirty: it may cache an
	                            mtime that the next commit makes stale */
	bool written; /* bytes were written since the last commit (not only an O_TRUNC) */
	uint64_t gen; /* commits proposed from this buffer so far + 1: writes go into this one */
	uint64_t last_off, last_end; /* the last write request taken (fuse_file.c: split writes) */
	struct wbuf *next;
};

enum handle_kind { HANDLE_FILE, HANDLE_DIR, HANDLE_VIRTUAL };

struct flush_wait;
struct fuse_feed;
struct fuse_changes;

/* One request's share of a call (fuse_call.c): who made it, when, and by when it must be
 * answered. */
struct fuse_call {
	pid_t pid;
	uint64_t arrived_ms;  /* node_now_ms() */
	uint64_t deadline;    /* node_now_ms() terms */
	uint64_t answered_ms; /* in fs->calls: when the last slow request of pid was answered */
	uint64_t start_us;    /* fuse_metrics_now_us() at arrival, for /.metrics */
};

#define KVFS_FS_CALLS 16

struct dirent_snap {
	char *name;
	uint64_t ino;
	uint32_t mode;
};

/* What fi->fh points at. */
/* Contents of the store that a snapshot from the leader replaced, kept while open files whose
 * inode the snapshot no longer has still point into them. */
struct grave {
	struct kvfs_store *store;
	unsigned refs; /* handles pointing into it */
};

struct handle {
	enum handle_kind kind;
	struct kvfs_inode *in; /* pinned; NULL for virtual files */
	struct grave *grave;   /* non-NULL: in points into these replaced contents, unpinned */
	struct wbuf *wb;       /* files opened for writing without O_APPEND */
	bool append;           /* O_APPEND: writes gather here and commit as one APPEND */
	uint8_t *abuf;
	size_t alen, acap;
	int aerr;                 /* sticky error of the append buffer */
	/* the last append request taken, at the kernel's offsets (fuse_file.c: split writes) */
	uint64_t alast_off, alast_end;
	uint64_t wrote_gen;       /* the buffer generation this handle last wrote into; 0: never */
	int err;                  /* sticky: reported by every flush/fsync of this handle until a
	                             later commit carries all it wrote (fuse_file.c) */
	unsigned carrying;        /* commits in flight that carry bytes written through it */
	struct flush_wait *waiters; /* flush/fsync requests waiting for those commits */
	bool inval_data;          /* before they hear back, the kernel must drop its cached data */
	bool inval_attr;          /* ... or at least its cached attributes */
	bool released;            /* the kernel let go of it: freed once `carrying` is 0 */
	struct kvfs_value *rval;  /* read-only handles: the value a sequential read goes through */
	struct dirent_snap *ents; /* directories: the listing taken at opendir */
	size_t nents;
	char *text; /* virtual files: the content rendered at open */
	size_t text_len;
	struct fuse_backup *backup; /* /.kvfs-backup.tar: the store captured at open */
	struct fuse_feed *feed;     /* /.changes ...: where this reader is in the change feed */
	struct handle *prev, *next; /* all open handles, freed at shutdown */
};

struct fuse_locks;

struct kvfs_fs {
	struct fuse_session *se;
	struct kvfs_node *node;
	struct kvfs_store *store;
	struct kvfs_inval *inval;
	const char *data_dir;
	uint32_t node_id;
	const char *cluster;    /* --cluster; NULL for a standalone node */
	const char *cluster_id; /* the id ZooKeeper's /config holds; NULL for a standalone node */
	uint64_t max_value;
	/* the largest write request the kernel sends (set at FUSE init) */
	uint32_t max_write;
	bool stored_owner; /* show stored uid/gid (default_permissions or check_access) */
	bool may_mknod_dev; /* the daemon runs as root: device nodes may be made (mknod) */
	uid_t uid;         /* the mounting user, shown as owner otherwise */
	gid_t gid;
	bool kernel_perms; /* -o default_permissions: the kernel checks permissions */
	bool check_access; /* allow_other + --no-default-permissions: fuse_perm.c checks them */
	bool linearizable; /* --read linearizable: lookups and opens for reading wait for
	                      node_read_barrier() */
	double entry_timeout;
	double attr_timeout;
	uint64_t write_timeout_ms;
	struct fuse_call calls[KVFS_FS_CALLS]; /* processes whose last request waited long */
	struct wbuf *wbufs;     /* all write buffers (few: one per file open for writing) */
	struct handle *handles; /* all open handles */
	struct kvfs_fs_counters counters; /* /.metrics (fuse_metrics.c) */
	struct fuse_locks *locks;         /* cluster-wide locks (fuse_lock.c) */
	struct fuse_changes *changes;     /* the change feed's names and readers (fuse_changes.c) */
};

/*
 * fuse_ops.c: answers a request that reads the store through fn, once the node may answer it: at
 * once (the usual case); after the node's read barrier with `barrier` under --read linearizable
 * (the leader's commit index, confirmed by a majority, applied here); after the node has caught
 * up with its leader since its start (node_reads_ready). Answers EIO when that takes longer than
 * the write timeout. name (may be NULL) and fi (may be NULL) are copied for fn.
 */
typedef void (*fuse_gated_fn)(fuse_req_t req, struct kvfs_fs *fs, fuse_ino_t ino, const char *name,
                              struct fuse_file_info *fi);
void fuse_ops_gate(fuse_req_t req, fuse_ino_t ino, const char *name, struct fuse_file_info *fi,
                   bool barrier, fuse_gated_fn fn);

/* fuse_ops.c: the operation table, and the hook the node calls after applying an operation. */
extern const struct fuse_lowlevel_ops fuse_ops_table;
void fuse_ops_on_apply(void *arg, const struct kvfs_op *op, const struct kvfs_apply_result *res);
/* Fills st for in, as the kernel is to see it (the write buffer's size while one exists). */
void fuse_ops_fill_attr(const struct kvfs_fs *fs, const struct kvfs_inode *in, struct stat *st);
/* Answers req with the entry for in, counting one kernel lookup (a pin). */
void fuse_ops_reply_entry(fuse_req_t req, struct kvfs_fs *fs, struct kvfs_inode *in);
/* The directory ino in *dir, if req may use it as mask asks (fuse_perm_may: X_OK to look a name
 * up, R_OK to list it): 0, or -ENOENT, -ENOTDIR or -EACCES. */
int fuse_ops_dir(fuse_req_t req, struct kvfs_fs *fs, fuse_ino_t ino, int mask,
                 struct kvfs_inode **dir);

/*
 * fuse_propose.c: proposes op for req and answers req once op is applied: PENDING_ERR with the
 * outcome alone (0 or an errno), PENDING_ENTRY with the entry op made or named, PENDING_ATTR with
 * the inode's attributes, PENDING_CREATE with an open file (fi: create()'s flags; without O_EXCL,
 * a file someone else made meanwhile is opened instead). If the node refuses op, req is answered
 * with the error at once. op is copied; it need not outlive the call.
 */
enum pending_kind { PENDING_ERR, PENDING_ENTRY, PENDING_ATTR, PENDING_CREATE };
void fuse_propose(fuse_req_t req, struct kvfs_op *op, enum pending_kind kind,
                  const struct fuse_file_info *fi);

/*
 * fuse_perm.c: the permission rules kvfs applies itself when the kernel does not
 * (!fs->kernel_perms), against the owner shown (fuse_ops_fill_attr) and the caller of req. Each
 * returns 0 or a negative errno. fuse_perm_may: generic_permission (mask of R_OK, W_OK, X_OK),
 * only with fs->check_access (0 otherwise). fuse_perm_setattr: POSIX's chown, chmod and utimes
 * rules (fi: ftruncate's file handle, or NULL); may clear S_ISGID from *mode as the kernel's
 * setattr_prepare does. fuse_perm_unlink and fuse_perm_rename: removing or replacing names:
 * write and search permission on the directories with check_access, and the sticky bit (EPERM).
 * A name or directory that does not exist passes: the store answers ENOENT.
 */
int fuse_perm_may(fuse_req_t req, const struct kvfs_fs *fs, const struct kvfs_inode *in, int mask);
int fuse_perm_setattr(fuse_req_t req, const struct kvfs_fs *fs, const struct kvfs_inode *in,
                      const struct stat *attr, int to_set, const struct fuse_file_info *fi,
                      uint32_t *mode);
int fuse_perm_unlink(fuse_req_t req, const struct kvfs_fs *fs, fuse_ino_t parent, const char *name);
/* An open(O_CREAT) that found the file made by someone else meanwhile: the kernel, which thought
 * it was creating the file, checked nothing; read/write permission as the flags ask, against
 * the stored owner (both permission modes). 0 or -EACCES. */
int fuse_perm_open_existing(fuse_req_t req, const struct kvfs_fs *fs, const struct kvfs_inode *in,
                            int flags);
int fuse_perm_rename(fuse_req_t req, const struct kvfs_fs *fs, fuse_ino_t parent, const char *name,
                     fuse_ino_t newparent, const char *newname, bool exchange);
/* The .access operation: access(2), chdir(2) (only asked without default_permissions). */
void fuse_perm_access(fuse_req_t req, fuse_ino_t ino, int mask);
/* The .open operation: fuse_file_open after the read/write permission check (check_access). */
void fuse_perm_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);

/* fuse_perm.c: whether the caller of req may change (write) or read the extended attributes of
 * in: write or read permission, only with fs->check_access (the kernel checks them otherwise).
 * 0 or -EACCES. */
int fuse_perm_xattr(fuse_req_t req, const struct kvfs_fs *fs, const struct kvfs_inode *in,
                    bool write);

/* fuse_xattr.c: the .setxattr, .getxattr, .listxattr and .removexattr operations. */
void fuse_xattr_set(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value,
                    size_t size, int flags);
void fuse_xattr_get(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size);
void fuse_xattr_list(fuse_req_t req, fuse_ino_t ino, size_t size);
void fuse_xattr_remove(fuse_req_t req, fuse_ino_t ino, const char *name);

/*
 * fuse_xattr_reserved.c: kvfs's own "user.kvfs." attributes, computed when asked. The value of
 * `name` for inode ino: its length, copied into buf when len > 0 (len 0: the length only);
 * -ENODATA when the name has no value now, -ERANGE when len is too small. The names it may
 * answer are listed (NULL-terminated) in fuse_xattr_reserved_names, taking at most
 * fuse_xattr_reserved_list_max bytes of a list with their NULs.
 */
int fuse_xattr_reserved_get(struct kvfs_fs *fs, fuse_ino_t ino, const char *name, char *buf,
                            size_t len);
extern const char *const fuse_xattr_reserved_names[];
extern const size_t fuse_xattr_reserved_list_max;

/* fuse_file.c: open files. */
void fuse_file_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void fuse_file_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                    struct fuse_file_info *fi);
void fuse_file_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
                     struct fuse_file_info *fi);
void fuse_file_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void fuse_file_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi);
void fuse_file_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
/* Opens a handle on in (already pinned once for the kernel's lookup) for create(); NULL on ENOMEM.
 */
struct handle *fuse_file_new_handle(struct kvfs_fs *fs, struct kvfs_inode *in, int flags);
/*
 * Commits what this node's open files hold for ino (a dirty write buffer) ahead of an operation
 * that must come after those writes, as the calls came: "write; futimens; close" must keep the
 * time futimens set, not the commit time of the close.
 */
void fuse_file_commit_pending(struct kvfs_fs *fs, uint64_t ino);
/* Called when op (a PUT, APPEND or SETATTR of another writer or node) changed ino's value:
 * brings this node's write buffer of ino, if any, in step with the store. */
void fuse_file_value_changed(struct kvfs_fs *fs, const struct kvfs_op *op);
/* The write buffer of ino on this node, or NULL when no one has the file open for writing. */
struct wbuf *fuse_file_wbuf(const struct kvfs_fs *fs, uint64_t ino);
/* Frees a handle, unpinning its inode; with `commit`, a dirty write buffer is proposed first. */
void fuse_file_free_handle(struct kvfs_fs *fs, struct handle *h, bool commit);
void fuse_file_link_handle(struct kvfs_fs *fs, struct handle *h);

/* fuse_dir.c: directory listings (the listing is taken at opendir; see there). */
void fuse_dir_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void fuse_dir_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                      struct fuse_file_info *fi);
/* readdirplus: entries with their attributes; each entry given with an inode is pinned once
 * (the kernel counts it as a lookup, dropped at forget). */
void fuse_dir_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                          struct fuse_file_info *fi);
void fuse_dir_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void fuse_dir_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi);

/* fuse_alloc.c: fallocate(2) (modes 0, KEEP_SIZE, PUNCH_HOLE, ZERO_RANGE), one operation. */
void fuse_alloc_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t offset, off_t length,
                          struct fuse_file_info *fi);
/* Resizes a write buffer to size bytes, zero-filling growth; -ENOMEM leaves it as it was. */
int fuse_alloc_wbuf_resize(struct wbuf *wb, size_t size);

/* fuse_status.c: /.status and /.status.json. */
bool fuse_status_is_virtual(fuse_ino_t ino);
/* The virtual file `name` in the root (its ino), or 0. */
fuse_ino_t fuse_status_lookup(const char *name);
void fuse_status_attr(struct kvfs_fs *fs, fuse_ino_t ino, struct stat *st);
/* The attributes of a virtual file: regular, perm, owned by the mounting user, times now. */
void fuse_status_virtual_attr(const struct kvfs_fs *fs, fuse_ino_t ino, mode_t perm, uint64_t size,
                              struct stat *st);
/* Renders the file's content into a new malloc'ed buffer; NULL on ENOMEM. */
char *fuse_status_render(struct kvfs_fs *fs, fuse_ino_t ino, size_t *len);

/*
 * fuse_backup.c: /.kvfs-backup.tar, a tar archive of the whole store as of one applied index.
 * fuse_backup_open captures the store now (O(keys): metadata and value references, no contents);
 * -ENOMEM on failure. fuse_backup_read answers a read at any offset of that archive.
 * fuse_backup_free drops the capture (loop thread: it drops value references). fuse_backup_attr
 * fills st with the size a backup taken now would have.
 */
struct fuse_backup;
int fuse_backup_open(struct kvfs_fs *fs, struct fuse_backup **out);
void fuse_backup_read(fuse_req_t req, struct fuse_backup *b, size_t size, off_t off);
void fuse_backup_free(struct fuse_backup *b);
void fuse_backup_attr(struct kvfs_fs *fs, struct stat *st);
/*
 * fuse_changes.c: /.changes, /.changes.json and the names .changes[.json][@INDEX][?prefix=P].
 * fuse_changes_is_feed: ino is one of them. fuse_changes_reserved: the name is taken by them
 * (at the root, starting with ".changes"). fuse_changes_lookup answers the lookup of such a name
 * (true) or leaves it (false). fuse_changes_forget: a feed ino's lookup count drops (true), or
 * ino is no feed's (false). fuse_changes_open: a new reader of ino in *out: 0, -ERANGE (the
 * start index is no longer kept), -ENOENT, -ENOMEM. fuse_changes_read answers (or keeps, until
 * a change is applied) a read of it; fuse_changes_poll is the .poll operation (every file);
 * fuse_changes_wake: changes were applied or the store was replaced, answer who waits.
 * fuse_changes_close: the reader's handle goes. fuse_changes_shutdown frees the rest, after the
 * handles.
 */
bool fuse_changes_is_feed(fuse_ino_t ino);
bool fuse_changes_reserved(fuse_ino_t parent, const char *name);
bool fuse_changes_lookup(fuse_req_t req, struct kvfs_fs *fs, const char *name);
bool fuse_changes_forget(struct kvfs_fs *fs, fuse_ino_t ino, uint64_t nlookup);
int fuse_changes_open(struct kvfs_fs *fs, fuse_ino_t ino, struct fuse_feed **out);
void fuse_changes_read(fuse_req_t req, struct kvfs_fs *fs, struct fuse_feed *f, size_t size,
                       const struct fuse_file_info *fi);
void fuse_changes_poll(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi,
                       struct fuse_pollhandle *ph);
void fuse_changes_wake(struct kvfs_fs *fs);
void fuse_changes_close(struct fuse_feed *f);
void fuse_changes_shutdown(struct kvfs_fs *fs);

/* fuse_metrics.c: counting for /.metrics, on the loop thread. A change (call begun with
 * fuse_call_begin) was answered with err; a read() that began at start_us was answered; a
 * request held by fuse_ops_gate was let through or failed (err). */
uint64_t fuse_metrics_now_us(void);
void fuse_metrics_write(struct kvfs_fs *fs, const struct fuse_call *call, int err);
void fuse_metrics_read(struct kvfs_fs *fs, uint64_t start_us);
void fuse_metrics_read_wait(struct kvfs_fs *fs, const struct fuse_call *call, int err);
/* /.metrics as a new malloc'ed text (arg: the struct kvfs_fs); NULL on ENOMEM. */
char *fuse_metrics_render(void *arg, size_t *len);

/* fuse_ops.c: the filesystem's side of a store reset (struct kvfs_node_reset). */
void fuse_ops_on_reset(void *arg, struct kvfs_store *old);

/*
 * fuse_lock.c, fuse_lock_close.c: cluster-wide flock and fcntl locks (issue 13). fuse_lock_start: after node_start
 * (fs->node_id set): this process's incarnation, and the release of earlier incarnations' locks;
 * -ENOMEM. The operations .setlk, .getlk, .flock, and .flush and .release, which drop the
 * closing owner's locks before fuse_file_flush / fuse_file_release run. fuse_lock_on_apply: from
 * fuse_ops_on_apply, wakes parked requests. fuse_lock_on_reset: the table was replaced by a
 * snapshot. fuse_lock_members: on the leader, the members whose ZooKeeper znode exists (known
 * false: not leading, or not listed yet) as of listing number seq; the locks of the others,
 * granted before this node first saw that listing, are released.
 * fuse_lock_token_text: the fencing token shown as user.kvfs.lock (the highest token of the
 * locks held on ino, in decimal): its length, -ENODATA without a lock, -ERANGE if len is too
 * small. fuse_lock_held_here: whether this process holds record locks on ino (an open for
 * reading then keeps its FLUSH at close). fuse_lock_stop: before unmounting, answers waiting requests (ENOLCK). fuse_lock_free:
 * after node_close has completed. fuse_lock_set_session: in a cluster, after fuse_lock_start:
 * connected(arg) says whether this node's ZooKeeper session is connected; while it is not, new
 * lock requests (not unlocks) fail with ENOLCK (the leader would release them with the session).
 * fuse_lock_retry: every second (and when the election changes): proposes again the releases
 * that failed (UNLOCK_OWNER at close, RELEASE_NODE of earlier incarnations) until they commit.
 */
int fuse_lock_start(struct kvfs_fs *fs);
void fuse_lock_set_session(struct kvfs_fs *fs, bool (*connected)(void *arg), void *arg);
void fuse_lock_retry(struct kvfs_fs *fs);
void fuse_lock_setlk(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi,
                     struct flock *lock, int sleep);
void fuse_lock_getlk(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi,
                     struct flock *lock);
void fuse_lock_flock(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi, int op);
void fuse_lock_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void fuse_lock_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void fuse_lock_on_apply(struct kvfs_fs *fs, const struct kvfs_op *op,
                        const struct kvfs_apply_result *res);
void fuse_lock_on_reset(struct kvfs_fs *fs);
void fuse_lock_members(struct kvfs_fs *fs, bool known, const uint8_t *live, size_t len,
                       uint64_t seq);
int fuse_lock_token_text(struct kvfs_fs *fs, fuse_ino_t ino, char *buf, size_t len);
bool fuse_lock_held_here(const struct kvfs_fs *fs, uint64_t ino);
void fuse_lock_stop(struct kvfs_fs *fs);
void fuse_lock_free(struct kvfs_fs *fs);

/* fuse_call.c: a request that may wait for the cluster begins a call share (its deadline: the
 * write timeout from now, or that of the slow call its process is in the middle of) and ends it
 * when it is answered. */
void fuse_call_begin(struct kvfs_fs *fs, fuse_req_t req, struct fuse_call *call);
void fuse_call_end(struct kvfs_fs *fs, const struct fuse_call *call);

/* fuse_inval.c: the invalidation thread. */
int fuse_inval_start(struct kvfs_inval **out, struct fuse_session *se);
/* Queues an invalidation of ino's attributes, and of its cached data when `data` is true; then,
 * if req is not NULL, answers it with fuse_reply_err(req, -err). */
void fuse_inval_inode(struct kvfs_inval *iv, uint64_t ino, bool data, fuse_req_t req, int err);
/* Queues an invalidation of the entry `name` in directory parent (child: its inode, or 0). */
void fuse_inval_entry(struct kvfs_inval *iv, uint64_t parent, const char *name, size_t len,
                      uint64_t child);
/* Stops the thread after what is queued (answering queued replies); later calls only answer
 * their replies. Call before the session's fd closes (fuse_session_unmount). */
/* A local request that holds a directory's lock in the kernel until we answer it (create,
 * mkdir, unlink, rename ...) starts (+1) or is answered (-1): entry invalidations wait meanwhile. */
void fuse_inval_hold(struct kvfs_inval *iv, int delta);
void fuse_inval_stop(struct kvfs_inval *iv);
void fuse_inval_free(struct kvfs_inval *iv);

#endif /* KVFS_FS_FS_H */
