/*
 * The replication core's private state, shared by repl.c (the interface, the log, the follower)
 * and repl_leader.c (the candidate and the leader). Nothing outside replica/repl*.c includes it.
 */
#ifndef KVFS_REPLICA_REPL_INTERNAL_H
#define KVFS_REPLICA_REPL_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kvfs/repl.h"

enum phase { PHASE_GATHER, PHASE_FETCH, PHASE_REPLICATE };

struct peer {
	uint64_t next;  /* next index to send */
	uint64_t sent;  /* last index sent (pipelining); reset to next - 1 on every resend */
	uint64_t match; /* highest index known durable there and matching our log */
	uint64_t last_epoch, last_index; /* its EPOCH_ACK */
	bool acked;                      /* it promised our epoch (EPOCH_ACK ok) */
	bool wants_snapshot;             /* it needs entries we compacted: need_snapshot asked */
	bool heard;                      /* it answered in our epoch since the last tick */
	bool rejoining;                  /* it abstained from our epoch: it is rejoining */
	uint64_t hw; /* the highest index sent to it in this epoch (entries or a snapshot): what
	                it can acknowledge at most; 0 while nothing was sent */
};

/* A persist action not yet completed. */
struct pending {
	uint64_t epoch, index; /* its last entry */
	uint64_t floor;        /* min(index, every truncation asked for since) */
};

struct kvfs_repl {
	uint32_t id, size;
	struct kvfs_repl_io io;
	enum kvfs_repl_role role;
	enum phase phase;
	uint64_t epoch;    /* highest epoch heard: the promise made or being made */
	uint64_t promised; /* the durable promise */
	uint32_t leader;   /* leader of epoch, 0 if unknown; only ZooKeeper names it */
	/* A NEW_EPOCH that ZooKeeper's view does not vouch for yet (a higher epoch, or ours with
	 * no leader known): answered once the view names this sender at it (0: none held). */
	uint64_t held_epoch;
	uint32_t held_from;

	/* The log holds indices base + 1 .. last: log[i - base - 1] is index i (data owned). The
	 * entries up to base were applied and compacted away (a snapshot holds them); base_epoch
	 * is the epoch of entry base. */
	struct kvfs_repl_entry *log;
	uint64_t base, base_epoch;
	uint64_t last;
	size_t cap;
	uint64_t stable, commit, applied;
	struct pending *pend;
	size_t npend, pcap;

	/* follower */
	uint64_t fmatch;      /* log known to match the leader's up to here (this epoch) */
	uint64_t acked_match; /* highest match acknowledged (this epoch) */
	bool got_append;      /* an APPEND of this epoch was accepted */
	bool owe_epoch_ack;   /* a NEW_EPOCH awaits its answer */
	uint64_t leader_commit; /* the highest commit index the leader sent (this epoch) */

	/* rejoining (repl_set_rejoining): this replica's disk was replaced, so it may lack entries
	 * it once acknowledged; it does not vote until its durable log covers rejoin_target (the
	 * first commit index its leader of this epoch sent it) and an entry of that epoch. */
	bool rejoining;
	bool rejoin_heard; /* rejoin_target was taken in this epoch */
	uint64_t rejoin_target;

	/* candidate and leader */
	struct peer *peers;                /* by id, [0] unused */
	uint64_t adopt_epoch, adopt_index; /* the log being adopted ends here */
	uint64_t fetch_next, noop_index;
	uint32_t fetch_from;
	unsigned fetch_failures; /* this epoch */
	bool fetch_snapshot;     /* fetch_from compacted what we lack: need_snapshot_from asked */
	unsigned missed;     /* consecutive ticks without a majority */
	unsigned lost_ticks; /* ... after which a leader gives up */
};

/* The epoch of entry `index`: base_epoch at base, 0 below it (compacted) or past the end. */
static inline uint64_t epoch_at(const struct kvfs_repl *r, uint64_t index)
{
	if (index == r->base)
		return r->base_epoch;
	return index < r->base || index > r->last ? 0 : r->log[index - r->base - 1].epoch;
}

/* Entry `index`, which must be in base + 1 .. last (or last + 1, for the slot after the end). */
static inline struct kvfs_repl_entry *entry_at(const struct kvfs_repl *r, uint64_t index)
{
	return &r->log[index - r->base - 1];
}

/* A candidate that cannot fetch the log it must adopt this many times gives up. */
#define KVFS_REPL_FETCH_TRIES 3

static inline bool quorum(const struct kvfs_repl *r, uint32_t count)
{
	return 2 * (uint64_t)count > r->size;
}

/* repl.c */
void repl_send(struct kvfs_repl *r, uint32_t to, struct kvfs_repl_msg *m);
void repl_apply_committed(struct kvfs_repl *r);
void repl_log_cut(struct kvfs_repl *r, uint64_t after);
int repl_log_append(struct kvfs_repl *r, const struct kvfs_repl_entry *e, size_t n);
void repl_step_down(struct kvfs_repl *r);
void repl_check_rejoined(struct kvfs_repl *r);
/* How many entries from `first` go in one message: at most KVFS_REPL_BATCH and about
 * KVFS_REPL_BATCH_BYTES of data, and at least one if first <= last. */
uint32_t repl_batch_count(const struct kvfs_repl *r, uint64_t first);
bool repl_entries_valid(const struct kvfs_repl_msg *m, uint64_t first, uint64_t min_epoch);

/* repl_leader.c */
void repl_leader_send_append(struct kvfs_repl *r, uint32_t to, uint64_t from_index);
void repl_leader_send_new_epoch(struct kvfs_repl *r, uint32_t to);
void repl_leader_advance_commit(struct kvfs_repl *r);
void repl_leader_check_gather(struct kvfs_repl *r);
void repl_leader_on_epoch_ack(struct kvfs_repl *r, uint32_t from, const struct kvfs_repl_msg *m);
void repl_leader_on_append_ack(struct kvfs_repl *r, uint32_t from, const struct kvfs_repl_msg *m);
void repl_leader_on_fetch_reply(struct kvfs_repl *r, uint32_t from, const struct kvfs_repl_msg *m);
void repl_leader_tick(struct kvfs_repl *r);
void repl_leader_snapshot_fetched(struct kvfs_repl *r);

#endif /* KVFS_REPLICA_REPL_INTERNAL_H */
