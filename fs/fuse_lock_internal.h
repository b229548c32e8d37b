/*
 * What fuse_lock.c (lock requests and their waiting) and fuse_lock_close.c (what ends locks
 * without an unlock: close, process death, a dead node, an earlier incarnation) share: the
 * filesystem's lock state. Nothing outside those two files includes it. Loop thread only.
 */
#ifndef KVFS_FS_FUSE_LOCK_INTERNAL_H
#define KVFS_FS_FUSE_LOCK_INTERNAL_H

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>

#include "fs.h"
#include "kvfs/op.h"

#define LIVE_BYTES 32 /* node ids 1..255 */

/* A lock request: in flight (a LOCK proposed) or parked until an unlock on its inode. */
struct lock_wait {
	fuse_req_t req;
	struct kvfs_fs *fs;
	struct kvfs_op op;
	uint64_t fh;      /* the open file it came through (release drops record locks too) */
	bool sleep;       /* wait on EAGAIN (F_SETLKW, blocking flock) */
	bool in_flight;   /* its LOCK is proposed */
	bool answered;    /* req was answered (shutdown): free once its LOCK is done */
	bool interrupted; /* FUSE_INTERRUPT came while in flight or being set up: the outcome
	                     answers (0 if granted), but it is not parked again (EINTR) */
	bool setup;       /* lock_request is still setting it up: on_interrupt must not reply */
	uint64_t gen;     /* fuse_locks.gen when its LOCK was proposed */
	struct lock_wait *prev, *next;
};

/*
 * An open file through which a LOCK (record, OFD or flock) was proposed, whatever its outcome:
 * its release proposes UNLOCK_OWNER for it, and a flush for a record lock's owner while one of
 * its LOCKs is in flight or its outcome unknown (in_doubt: it may still commit after the close).
 */
struct lock_fh {
	uint64_t fh, ino, owner;
	uint8_t kind;      /* KVFS_LOCK_FLOCK or KVFS_LOCK_POSIX */
	unsigned in_doubt; /* LOCKs proposed whose outcome is not known (in flight, or -EIO...) */
	struct lock_fh *next;
};

/* A release (UNLOCK_OWNER at close, RELEASE_NODE of an earlier incarnation) that failed: it is
 * proposed again every second (fuse_lock_retry) until it commits. */
struct lock_retry {
	struct kvfs_fs *fs;
	struct kvfs_op op;
	bool in_flight;
	struct lock_retry *next;
};

struct fuse_locks {
	uint64_t inc;       /* this process's incarnation */
	bool old_released;  /* RELEASE_NODE of earlier incarnations has committed */
	bool releasing_old; /* ... is in flight */
	uint64_t gen;       /* unlocks applied so far: a parked request refused before one
	                       applied is proposed again at once */
	struct lock_wait *waits;
	struct lock_fh *fhs;
	struct lock_retry *retries;
	bool stopping;
	/* In a cluster: whether this node's ZooKeeper session is connected (NULL: standalone). */
	bool (*session_connected)(void *arg);
	void *session_arg;
	/* On the leader: the live members (fuse_lock_members), the applied index when that list
	 * arrived, and the nodes whose RELEASE_NODE is in flight. */
	bool live_known;
	uint8_t live[LIVE_BYTES];
	uint64_t live_index;
	uint64_t live_seq; /* the listing they came from (zk_election_live_members) */
	uint8_t releasing[LIVE_BYTES];
};

static inline bool lock_bit(const uint8_t *bits, uint32_t id)
{
	return id < 8 * LIVE_BYTES && (bits[id / 8] & (1u << (id % 8)));
}

static inline void lock_set_bit(uint8_t *bits, uint32_t id, bool on)
{
	if (id >= 8 * LIVE_BYTES)
		return;
	if (on)
		bits[id / 8] |= (uint8_t)(1u << (id % 8));
	else
		bits[id / 8] &= (uint8_t) ~(1u << (id % 8));
}

/* fuse_lock_close.c: RELEASE_NODE of this node's earlier incarnations, at start and before a
 * lock request until it has committed once; the leader's RELEASE_NODE for members whose
 * ZooKeeper znode is gone. fuse_lock_close_track: w's LOCK was proposed (record the open file
 * it went through, for flush and release); fuse_lock_close_outcome: ... and is done with err,
 * which leaves it in doubt if lock_outcome_unknown(err). */
void fuse_lock_close_old(struct kvfs_fs *fs);
void fuse_lock_close_dead(struct kvfs_fs *fs);
void fuse_lock_close_track(struct fuse_locks *L, const struct lock_wait *w);
void fuse_lock_close_outcome(struct fuse_locks *L, const struct lock_wait *w, int err);

/* fuse_lock_close.c: whether an UNLOCK_OWNER of w's owner, kind and inode is waiting to be
 * retried: a new LOCK of that owner must not be ordered before it (it would be dropped). */
bool fuse_lock_close_pending(const struct fuse_locks *L, const struct kvfs_op *want);

/* Whether a LOCK that failed with err may still commit later (nothing committed by the
 * deadline, for want of a leader or a majority; the node stopping): answered ENOLCK. */
static inline bool lock_outcome_unknown(int err)
{
	return err == -EIO || err == -ESHUTDOWN || err == -ETIMEDOUT || err == -ENOMEM;
}

#endif /* KVFS_FS_FUSE_LOCK_INTERNAL_H */
