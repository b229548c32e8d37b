/*
 * The change feed's memory: a bounded ring of the most recent committed changes this node applied
 * (issue 13, /.changes). The node records every applied log entry here, on the loop thread, right
 * after the store applied it, so the ring follows the log's order on every replica alike.
 *
 * Only entries that changed something become records: failed operations (ENOENT, EEXIST ...),
 * duplicates (a retried write already applied) and NOOPs (a new leader's first entry) change
 * nothing and are left out, and so are the lock operations (lock, unlock_owner, release_node:
 * they change no file, and a feed of every flock() would drown the changes); extended-attribute
 * changes (setxattr, removexattr) are kept like setattr; CONFIG entries (membership) are kept,
 * with no path. Paths are
 * resolved when the entry applies, from the store as it then is: a name-based operation (create,
 * mkdir, unlink, rmdir, rename, link, symlink, mknod) gives the path of the name(s) it names; an
 * operation on an inode (put, append, setattr, fallocate, setxattr, removexattr) gives the inode's most recently made
 * name (a file with several hard links shows that one). The store treats an unlinked inode as
 * missing (a write through a file still open after its unlink fails on every replica), so such an
 * operation never makes a record; a record without a path is a CONFIG.
 *
 * The ring covers a range of log indices [first, next): for every index in it, a record exists
 * exactly when that entry changed something. Older records are dropped when the ring is full
 * (first moves past them), and a snapshot installed from the leader (which skips entries this
 * node never applied one by one) empties it: a reader asking for an index below `first` is told
 * (-ERANGE) rather than given a stream with holes.
 *
 * Pure: no I/O, no clock, no threads; the loop thread owns it.
 */
#ifndef KVFS_CHANGES_H
#define KVFS_CHANGES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct kvfs_op;
struct kvfs_apply_result;
struct kvfs_store;

#define KVFS_CHANGES_DEFAULT 65536u /* --changes-history */
#define KVFS_CHANGES_MAX     (1u << 26)

/* One committed change. */
struct kvfs_change {
	uint64_t index;
	uint64_t epoch;
	int64_t time_ns;   /* the commit time the leader put into the op */
	int64_t size;      /* bytes of the file (or symlink target) named, after the op; 0 for other
	                      types; -1 when the op left no inode at the path (unlink, rmdir, config) */
	uint32_t origin;   /* the node that proposed it (0: internal) */
	uint8_t type;      /* enum kvfs_op_type */
	bool exchange;     /* RENAME with KVFS_RENAME_EXCHANGE */
	uint32_t path_len; /* bytes of path, without its NUL */
	uint32_t newpath_len; /* RENAME: bytes of newpath; 0 otherwise */
	char *paths; /* path "\0" newpath "\0" (one allocation, owned); path "" when none. Paths
	                start with "/" and may hold any byte but NUL */
};

struct kvfs_changes;

/* A ring for up to cap records (1..KVFS_CHANGES_MAX), empty, covering [1, 1). -EINVAL, -ENOMEM. */
int changes_init(struct kvfs_changes **out, size_t cap);
void changes_close(struct kvfs_changes *c);

/* Drops every record: the ring covers [next, next) (after a snapshot was loaded or installed). */
void changes_reset(struct kvfs_changes *c, uint64_t next);

/*
 * Records the entry `index` of `epoch` that the store s has just applied as op with outcome res.
 * An index other than the next one expected (a gap: entries applied without passing here) empties
 * the ring first. Cannot fail: out of memory, the ring is emptied to cover [index + 1, ...), so a
 * reader learns that it lost records (-ERANGE) instead of missing one silently.
 */
void changes_record(struct kvfs_changes *c, const struct kvfs_store *s, uint64_t epoch,
                    uint64_t index, const struct kvfs_op *op, const struct kvfs_apply_result *res);

/* The covered range: first index, and the next index to be applied (last applied + 1). */
uint64_t changes_first(const struct kvfs_changes *c);
uint64_t changes_next(const struct kvfs_changes *c);
size_t changes_count(const struct kvfs_changes *c);
/* Bytes the ring holds: its slots and the paths of its records. */
size_t changes_bytes(const struct kvfs_changes *c);

/*
 * The oldest record with index >= from: 0 and *out (valid until the next changes_record or
 * changes_reset); -EAGAIN when there is none yet (from >= first); -ERANGE when from < first
 * (those records are gone or were never kept).
 */
int changes_find(const struct kvfs_changes *c, uint64_t from, const struct kvfs_change **out);

/*
 * changes_fmt.c: one record as one line, with its '\n', into buf (at most len bytes, NUL-ended
 * when len > 0); returns the line's length (as snprintf: larger than len - 1 means cut).
 *
 * Text: "INDEX EPOCH SECONDS.NANOSECONDS OP ORIGIN SIZE PATH [NEWPATH]\n", fields separated by one
 * space; SIZE is "-" for none; PATH is "-" for none; OP is op_type_name()'s, or "exchange" for a
 * RENAME_EXCHANGE. In paths every byte outside printable ASCII 0x21..0x7e, and the backslash,
 * is written as a backslash and three octal digits (as /proc/self/mounts does: " " is "\040",
 * "\\" is "\134"), so a line never holds a space, tab or newline of a name and is plain ASCII.
 *
 * JSON: one object per line: {"index":N,"epoch":N,"time_ns":N,"op":"put","origin":N,"size":N,
 * "path":"/a","newpath":"/b"} (size null for none, path null for none, newpath only for
 * renames). A path that is valid UTF-8 is given as itself (JSON-escaped); one that is not is
 * given in the text format's escaped form, and "path_escaped":true is added.
 */
size_t changes_fmt_text(const struct kvfs_change *ch, char *buf, size_t len);
size_t changes_fmt_json(const struct kvfs_change *ch, char *buf, size_t len);

/* Whether the record concerns the path `prefix` (plen bytes, starting with "/"): its path or its
 * new path is prefix itself or lies under it (whole components: "/a" matches "/a" and "/a/b",
 * not "/ab"). The prefix "/" (or "") matches everything, records without a path included. */
bool changes_match(const struct kvfs_change *ch, const char *prefix, size_t plen);

#endif /* KVFS_CHANGES_H */
