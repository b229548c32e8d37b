/*
 * The replication core's private state, shared by repl.c (the interface, the log, the follower)
 * and repl_leader.c (the candidate and the leader). Nothing outside replica/repl*.c includes it.
 */
#ifndef KVFS_REPLICA_REPL_INTERNAL_H
#define KVFS_REPLICA_REPL_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kvfs/config.h"
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
	struct kvfs_config_bits cfg; /* its EPOCH_ACK: the config at its durable end */
};

/* A CONFIG entry of the log: the configuration from `index` on. */
struct cfg_at {
	uint64_t index;
	struct kvfs_config cfg;
};

/* Ids run 1..KVFS_CONFIG_ID_MAX: peers[] has a slot for each (and [0], unused). */
#define REPL_IDS (KVFS_CONFIG_ID_MAX + 1)

/* A persist action not yet completed. */
struct pending {
	uint64_t epoch, index; /* its last entry */
	uint64_t floor;        /* min(index, every truncation asked for since) */
};

struct kvfs_repl {
	uint32_t id;
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

	/* The configuration history (repl.h, Membership): base_cfg holds at base (it was set at
	 * base_cfg_index, 0 if not known), then cfgs[0..ncfg) are the CONFIG entries of
	 * base + 1 .. last, in index order. A config takes effect when appended. */
	struct kvfs_config base_cfg;
	uint64_t base_cfg_index;
	struct cfg_at *cfgs;
	size_t ncfg, cfgcap;

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
	struct peer *peers;                /* by id, REPL_IDS of them, [0] unused */
	struct kvfs_config_bits targets;   /* GATHER: who gets NEW_EPOCH (members of our latest
	                                      config and of every config answered) */
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

/* The latest configuration (of the last CONFIG entry in the log, or the base one). */
static inline const struct kvfs_config *latest_cfg(const struct kvfs_repl *r)
{
	return r->ncfg ? &r->cfgs[r->ncfg - 1].cfg : &r->base_cfg;
}

static inline uint64_t latest_cfg_index(const struct kvfs_repl *r)
{
	return r->ncfg ? r->cfgs[r->ncfg - 1].index : r->base_cfg_index;
}

/* Whether the ids set in have[REPL_IDS] are a majority of the latest configuration's voters:
 * every majority the core computes outside recovery (repl.h, Membership). */
static inline bool quorum(const struct kvfs_repl *r, const bool *have)
{
	return config_quorum(latest_cfg(r), have);
}

static inline bool bit_is_set(const uint8_t *bits, uint32_t id)
{
	return id < REPL_IDS && (bits[id / 8] >> (id % 8) & 1);
}

/* repl.c */
void repl_send(struct kvfs_repl *r, uint32_t to, struct kvfs_repl_msg *m);
void repl_apply_committed(struct kvfs_repl *r);
void repl_log_cut(struct kvfs_repl *r, uint64_t after);
int repl_log_append(struct kvfs_repl *r, const struct kvfs_repl_entry *e, size_t n);
void repl_step_down(struct kvfs_repl *r);
/* Appends op as an entry of the leader's epoch and sends it (repl_propose() without checks). */
int repl_propose_entry(struct kvfs_repl *r, const uint8_t *op, uint32_t len, uint64_t *index);
void repl_check_rejoined(struct kvfs_repl *r);
/* How many entries from `first` go in one message: at most KVFS_REPL_BATCH and about
 * KVFS_REPL_BATCH_BYTES of data, and at least one if first <= last. */
uint32_t repl_batch_count(const struct kvfs_repl *r, uint64_t first);
bool repl_entries_valid(const struct kvfs_repl_msg *m, uint64_t first, uint64_t min_epoch);

/* repl_config.c */
/* The configuration in force at index (base .. last), and the index of the entry that set it
 * (0 if not known: at or before base). */
const struct kvfs_config *repl_cfg_at(const struct kvfs_repl *r, uint64_t index,
                                      uint64_t *set_at);
/* Makes room for the CONFIG entries among e[0..n) (all or nothing): 0 or -ENOMEM. */
int repl_cfg_reserve(struct kvfs_repl *r, const struct kvfs_repl_entry *e, size_t n);
/* The entries base + 1 .. last were appended from `first` on: record their CONFIG entries. */
void repl_cfg_appended(struct kvfs_repl *r, uint64_t first);
/* The log was cut after `after`: forget the CONFIG entries past it. */
void repl_cfg_cut(struct kvfs_repl *r, uint64_t after);
/* The log now starts after `upto`: fold the CONFIG entries up to it into base_cfg. */
void repl_cfg_compact(struct kvfs_repl *r, uint64_t upto);
/* Scans the initial log (base_cfg set): -ENOMEM or 0. */
int repl_cfg_init(struct kvfs_repl *r);
/* A new member of the latest configuration gets a fresh peer slot (leader, candidate). */
void repl_cfg_reset_peer(struct kvfs_repl *r, uint32_t id);

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
