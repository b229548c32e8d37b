/*
 * Operations: the unit of change that the log carries, replication ships and the store applies.
 *
 * An operation is deterministic to apply: everything that could differ between replicas (the
 * commit time, the size limit, the proposer's identity) is filled in before it enters the log, so
 * every replica that applies the same sequence of operations reaches the same state and the same
 * outcomes (EEXIST, ENOTEMPTY ...). Inodes are addressed by number, which is the same on every
 * replica (see store.h). The wire/disk encoding is little-endian and versioned by the record that
 * carries it; decoding checks every length before it trusts it and never allocates.
 */
#ifndef KVFS_OP_H
#define KVFS_OP_H

#include <stddef.h>
#include <stdint.h>

enum kvfs_op_type {
	KVFS_OP_NOOP = 0,    /* nothing; a new leader's first entry */
	KVFS_OP_PUT = 1,     /* ino, data: the regular file's whole new value */
	KVFS_OP_APPEND = 2,  /* ino, data: appended to the regular file's value */
	KVFS_OP_CREATE = 3,  /* parent, name, mode, uid, gid; flags: KVFS_CREATE_EXCL */
	KVFS_OP_MKDIR = 4,   /* parent, name, mode, uid, gid */
	KVFS_OP_SYMLINK = 5, /* parent, name, uid, gid, data = link target */
	KVFS_OP_UNLINK = 6,  /* parent, name (not a directory) */
	KVFS_OP_RMDIR = 7,   /* parent, name (an empty directory) */
	KVFS_OP_RENAME = 8,  /* parent, name -> newparent, newname; flags: KVFS_RENAME_NOREPLACE */
	KVFS_OP_SETATTR = 9, /* ino; flags: KVFS_SET_* say which of mode, uid, gid, size, times */
	KVFS_OP_LINK = 10,   /* ino -> parent, name: another name for a non-directory */
	KVFS_OP_MKNOD = 11,  /* parent, name, mode (S_IFIFO, S_IFSOCK, S_IFCHR or S_IFBLK | perms),
	                        uid, gid, rdev (0 unless a device) */
	KVFS_OP_FALLOCATE = 12, /* ino, offset, length; flags: KVFS_FALLOC_* */
	KVFS_OP_CONFIG = 13,    /* the cluster configuration from here on (config.h): data, data_len
	                           = the body from its version byte to the last member; name,
	                           name_len = the request name. Only repl_propose_config() writes
	                           one; the store records it and changes nothing else */
	KVFS_OP_SETXATTR = 14,  /* ino, name = attribute name, data = value; flags:
	                           KVFS_XATTR_CREATE or KVFS_XATTR_REPLACE (limits: store_xattr.h) */
	KVFS_OP_REMOVEXATTR = 15, /* ino, name = attribute name */
	KVFS_OP_LOCK = 16,         /* ino, lk_*: take, convert or drop a lock (store_lock.c) */
	KVFS_OP_UNLOCK_OWNER = 17, /* ino, lk_node, lk_inc, lk_owner, lk_kind: drop every lock of
	                              that owner on ino (close, process death) */
	KVFS_OP_RELEASE_NODE = 18, /* lk_node, lk_inc: drop every lock of node lk_node taken by an
	                              incarnation below lk_inc (session gone, node restarted) */
	KVFS_OP__COUNT
};

/* KVFS_OP_CREATE flags */
#define KVFS_CREATE_EXCL 0x1u /* fail with EEXIST if the name exists (O_EXCL) */

/* KVFS_OP_RENAME flags */
#define KVFS_RENAME_NOREPLACE 0x1u /* fail with EEXIST if newname exists */
#define KVFS_RENAME_EXCHANGE  0x2u /* swap the two names atomically; both must exist */

/* KVFS_OP_FALLOCATE flags (fallocate(2) modes; none = allocate, growing the size) */
#define KVFS_FALLOC_KEEP_SIZE  0x1u /* never change the size */
#define KVFS_FALLOC_PUNCH_HOLE 0x2u /* zero the range; only with KEEP_SIZE */
#define KVFS_FALLOC_ZERO_RANGE 0x4u /* zero the range, growing the size unless KEEP_SIZE */

/* KVFS_OP_SETXATTR flags (setxattr(2)'s XATTR_CREATE and XATTR_REPLACE; both: EINVAL) */
#define KVFS_XATTR_CREATE  0x1u /* fail with EEXIST if the attribute exists */
#define KVFS_XATTR_REPLACE 0x2u /* fail with ENODATA if it does not */
/* Lock kinds (KVFS_OP_LOCK, KVFS_OP_UNLOCK_OWNER): flock(2) locks and POSIX record locks
 * (fcntl F_SETLK, and OFD locks, which FUSE passes as record locks) live in separate spaces. */
#define KVFS_LOCK_FLOCK 0u /* whole file, shared or exclusive */
#define KVFS_LOCK_POSIX 1u /* byte ranges, per owner */
/* Lock types: Linux's F_RDLCK, F_WRLCK, F_UNLCK values. */
#define KVFS_LOCK_RD 0u
#define KVFS_LOCK_WR 1u
#define KVFS_LOCK_UN 2u
/* The last byte a record lock may reach (Linux's OFFSET_MAX): "to the end of the file". */
#define KVFS_LOCK_END_MAX ((uint64_t)INT64_MAX)

/*
 * Any type: the operation applies under the rules of protocol 2 (this release): every SETATTR
 * changes ctime, a truncate changes mtime even to the same size, new entries in a setgid
 * directory take its group (and new directories its setgid bit), and no root-relative path
 * limit applies to new names. An entry without it (written by protocol 1) applies exactly as it
 * did then, so replicas replaying an old log reach the same state. Every proposer sets it.
 */
#define KVFS_OP_RULES2 0x80000000u

/* KVFS_OP_SETATTR flags: which fields to set */
#define KVFS_SET_MODE      0x01u /* permission bits of mode (the type bits never change) */
#define KVFS_SET_UID       0x02u
#define KVFS_SET_GID       0x04u
#define KVFS_SET_SIZE      0x08u /* regular files only: truncate or zero-extend */
#define KVFS_SET_ATIME     0x10u /* atime_ns */
#define KVFS_SET_MTIME     0x20u /* mtime_ns */
#define KVFS_SET_ATIME_NOW 0x40u /* atime = time_ns (the commit time) */
#define KVFS_SET_MTIME_NOW 0x80u /* mtime = time_ns */
#define KVFS_SET_ALL       0xffu

/* Limits that the store enforces and the decoder checks. */
#define KVFS_NAME_MAX 255u
#define KVFS_PATH_MAX 4095u
#define KVFS_DATA_MAX (64u << 20) /* hard cap of one op's data, whatever --max-value says */
#define KVFS_LINK_MAX 65000u      /* names of one inode (link(2) beyond: EMLINK) */

/*
 * Exactly-once sequence numbers. A node starts its seqs from the wall clock in microseconds
 * (about 2^51 today) and counts up by one per write, so 2^62 is never reached honestly: an op
 * with a higher seq is refused by the leader and fails with EINVAL when it applies (recorded
 * nowhere), so that no origin's "last seq" can come near UINT64_MAX and seq + 1 never wraps. A
 * leader also refuses a forwarded seq more than KVFS_SEQ_AHEAD past both the last one applied
 * for its origin and its own clock in microseconds (about 12.7 days of clock skew or downtime):
 * one bogus write cannot throw an origin's numbering far ahead.
 */
#define KVFS_SEQ_MAX   ((uint64_t)1 << 62)
#define KVFS_SEQ_AHEAD ((uint64_t)1 << 40)

/*
 * A decoded or to-be-encoded operation. Pointers (name, newname, data) are borrowed: after
 * op_decode() they point into the buffer that was decoded, which must outlive the op.
 */
struct kvfs_op {
	uint8_t type;    /* enum kvfs_op_type */
	uint32_t flags;  /* per-type flags, see above */
	uint32_t origin; /* id of the node that proposed it; 0 = internal (no-op, recovery) */
	uint64_t seq;    /* per-origin sequence number, > 0; 0 = not deduplicated */
	int64_t time_ns; /* commit time (CLOCK_REALTIME ns), set by the leader */
	uint64_t
	    max_value;   /* value size limit for PUT/APPEND/SETATTR size, fixed by the proposer */
	uint64_t ino;    /* PUT, APPEND, SETATTR, LINK, FALLOCATE, SETXATTR, REMOVEXATTR */
	uint64_t parent; /* CREATE, MKDIR, SYMLINK, UNLINK, RMDIR, RENAME, LINK, MKNOD */
	uint64_t newparent;         /* RENAME */
	uint32_t mode;              /* CREATE, MKDIR (type bits implied), SETATTR; MKNOD (with type) */
	uint32_t uid, gid;          /* CREATE, MKDIR, SYMLINK, SETATTR, MKNOD */
	uint32_t rdev;              /* MKNOD: the device number (Linux's new encoding), else 0 */
	uint64_t size;              /* SETATTR */
	uint64_t offset, length;    /* FALLOCATE: the range, length > 0 */
	int64_t atime_ns, mtime_ns; /* SETATTR */
	const char *name; /* CREATE ... RENAME, LINK (the new name), MKNOD, SETXATTR and REMOVEXATTR
	                     (the attribute's name); not NUL-terminated */
	uint32_t name_len;
	const char *newname; /* RENAME, not NUL-terminated */
	uint32_t newname_len;
	const uint8_t *data; /* PUT, APPEND: bytes; SYMLINK: target; SETXATTR: the value */
	uint32_t data_len;
	/* LOCK, UNLOCK_OWNER, RELEASE_NODE: the lock owner is (lk_node, lk_inc, lk_owner): a node
	 * id, that node's incarnation (fs/fuse_lock.c: new at every start) and FUSE's 64-bit
	 * lock owner. LOCK: lk_kind, lk_type, the range lk_start..lk_end (inclusive, POSIX only;
	 * flock locks cover the whole file), lk_pid (shown by F_GETLK on the holder's node). */
	uint32_t lk_node;
	uint64_t lk_inc, lk_owner;
	uint8_t lk_kind, lk_type;
	uint64_t lk_start, lk_end;
	uint32_t lk_pid;
};

/* Bytes of the header every operation starts with (op.c). */
#define KVFS_OP_HEADER_SIZE (1 + 4 + 4 + 8 + 8 + 8)

/* Bytes that op_encode() will write for op. */
size_t op_encoded_size(const struct kvfs_op *op);

/* Encodes op into buf, which has room for op_encoded_size(op) bytes. Returns the bytes written. */
size_t op_encode(const struct kvfs_op *op, uint8_t *buf);

/*
 * Decodes len bytes of buf into op, whose pointers then borrow from buf.
 * Returns 0, or -EBADMSG if the bytes are not exactly one well-formed operation (unknown type,
 * a length that runs past the end, a name longer than KVFS_NAME_MAX, trailing bytes); op is then
 * unspecified.
 */
int op_decode(struct kvfs_op *op, const uint8_t *buf, size_t len);

/* The limits a node holds the operations it proposes to: its own configuration. */
struct kvfs_op_limits {
	uint64_t max_value; /* --max-value: the largest value, 1..KVFS_DATA_MAX */
};

/*
 * Whether op may be proposed under lim, checked before it enters the log (the leader checks
 * every operation, its own and those forwarded to it, with its own limits). Looks only at the
 * fields op's type carries (see op.c). KVFS_OP_RULES2 is allowed on every type and required on
 * none (the proposers set it: node_propose(), and a leader on what it is forwarded). Returns 0 or
 * the errno the proposer's caller gets:
 *  -EINVAL       an unknown type, or NOOP (only a leader's recovery writes one) or CONFIG (only
 *                repl_propose_config() writes one), unknown flags,
 *                mode bits beyond 07777 (MKNOD: beyond S_IFMT | 07777), a name that is empty,
 *                ".", "..", or holds '/' or NUL, a symlink target holding NUL, max_value 0 or
 *                above lim->max_value, a length without the bytes it counts (data or name NULL);
 *                RENAME with both NOREPLACE and EXCHANGE; MKNOD of a type other than FIFO,
 *                socket, character or block device, or with rdev for a FIFO or socket;
 *                FALLOCATE of length 0, PUNCH_HOLE without KEEP_SIZE, PUNCH_HOLE with
 *                ZERO_RANGE (fallocate(2) says EOPNOTSUPP: the kernel refuses those first);
 *                SETXATTR with both KVFS_XATTR_CREATE and KVFS_XATTR_REPLACE; an attribute
 *                name that is "user." alone or holds NUL;
 *  -EOPNOTSUPP   SETXATTR, REMOVEXATTR of a name outside the "user." namespace;
 *  -EPERM        SETXATTR, REMOVEXATTR of a reserved "user.kvfs." name;
 *  -ERANGE       an attribute name that is empty or over KVFS_XATTR_NAME_MAX bytes (as
 *                setxattr(2));
 *  -E2BIG        an attribute value over KVFS_XATTR_VALUE_MAX bytes (as setxattr(2));
 *  -EPERM        LINK of an ino below KVFS_INO_BASE (the root directory, a virtual file);
 *  -ENAMETOOLONG a name over KVFS_NAME_MAX or a symlink target over KVFS_PATH_MAX bytes;
 *  -ENOENT       an empty symlink target (as symlink(2) says);
 *  -EINVAL       (locks) LOCK of an unknown kind or type, a range with lk_start > lk_end or
 *                lk_end past KVFS_LOCK_END_MAX, an ino below KVFS_INO_BASE other than the
 *                root's (a virtual file), lk_node 0;
 *  -EFBIG        data, or a SETATTR size, over op->max_value; a FALLOCATE range ending past
 *                INT64_MAX, or past op->max_value without KEEP_SIZE (it could grow the file).
 * What depends on the store (the parent exists, the path stays within KVFS_PATH_MAX, reserved
 * names, an inode's type and size) is decided when the operation applies.
 */
int op_validate(const struct kvfs_op *op, const struct kvfs_op_limits *lim);

/* A short lowercase name for an op type ("put", "rename" ...), "unknown" otherwise. */
const char *op_type_name(unsigned type);

#endif /* KVFS_OP_H */
