/*
 * The simulation's shared state (test_repl_sim.c runs the replication core, sim_fwd.c the write
 * forwarding and the clients on top of it): one struct sim per seeded run, one struct node per
 * replica (sim_fwd.h adds what sim_fwd.c and sim_client.c share). Test code only.
 */
#ifndef KVFS_TESTS_UNIT_REPLICA_SIM_H
#define KVFS_TESTS_UNIT_REPLICA_SIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kvfs/repl.h"

struct kvfs_fwd;
struct kvfs_readidx;
struct kvfs_store;

#define MAXN      7 /* member runs: 5 voters and 2 more nodes */
#define PAYLOAD   8   /* bytes of the core's own proposals: a unique number */
#define ENTRY_MAX 160 /* bytes of an entry at most: an encoded client op */

struct sent {
	uint64_t epoch, index;
	uint32_t len;
	uint8_t data[ENTRY_MAX];
};

struct sim_msg {
	uint32_t from, to;
	struct kvfs_repl_msg m;
	struct sent *ents;
};

enum op_type { OP_PERSIST, OP_TRUNCATE, OP_EPOCH, OP_RESET, OP_COMPACT };

struct disk_op {
	enum op_type type;
	struct sent *ents;
	size_t n;
	uint64_t arg;    /* truncate: after; epoch: the epoch; reset: the new base; compact: upto */
	bool void_write; /* persist: a snapshot replaced the log since; only completes */
	uint64_t commit; /* persist: the commit index when it was asked (DATA/commit) */
};

struct snapreq {
	uint32_t from, to;
	uint64_t epoch; /* the leader's (push) or the candidate's (pull) */
	bool pull;      /* a candidate asked `from` for its snapshot */
};

struct sim;
struct sim_fwd;
struct sim_read;

struct node {
	struct sim *s;
	uint32_t id;
	struct kvfs_repl *r;
	bool up;
	/* the disk: what survives a crash */
	uint64_t dsnap; /* a snapshot holds the committed entries 1..dsnap */
	uint64_t dbase; /* dlog[i] is entry dbase + 1 + i (dbase <= dsnap) */
	struct sent *dlog;
	size_t dn, dcap;
	uint64_t dpromised;
	uint64_t dcommit; /* DATA/commit: written after the log write that made it durable */
	bool dmarker;     /* DATA/rejoining: its disk was wiped, it has not caught up since */
	/* writes asked for, not yet done */
	struct disk_op *ops;
	size_t nops, opcap;
	uint64_t applied;     /* this incarnation's state machine has applied 1..applied */
	uint64_t applied_max; /* ... over all incarnations (the recovered store) */
	/* write forwarding and clients (sim_fwd.c) */
	struct kvfs_fwd *fwd;     /* this incarnation's; NULL while down */
	struct kvfs_store *store; /* the state machine: the real store */
	uint32_t incarnation;
	/* reads (sim_read.c) */
	struct kvfs_readidx *ri; /* this incarnation's; NULL while down */
	uint64_t acked;          /* the highest index this incarnation acknowledged to a client */
	uint64_t acked_before;   /* ... and the earlier ones (R2) */
	struct {
		bool session;    /* it holds a ZooKeeper session */
		bool elected;    /* ZooKeeper says it leads `epoch` */
		uint32_t leader; /* the leader ZooKeeper told it of, 0 if none */
		uint64_t epoch;
	} zk;
};

struct committed {
	bool known;
	struct sent e;
	/* sim_fwd.c: what applying it did, as the first replica to apply it saw */
	bool applied;
	bool effective; /* a client's write that took effect here (not a duplicate) */
	uint64_t token; /* the client write it carries, 0 if none */
	int err;
	uint64_t ino;
};

struct notice {
	uint32_t to, leader;
	uint64_t epoch;
};

struct sim {
	uint64_t seed, rng;
	uint32_t n;    /* nodes 1..n */
	uint32_t boot; /* the bootstrap configuration: voters 1..boot (n, or n - 2 in member runs) */
	bool member;   /* member runs: reconfigurations (sim_member.c) */
	bool trace;
	int step;
	struct node nodes[MAXN + 1];
	struct sim_msg *msgs;
	size_t nmsgs, mcap;
	struct notice *notices;
	size_t nnotices, ncap;
	struct snapreq *snapreqs;
	size_t nsnapreqs, srcap;
	struct committed *map; /* by index */
	size_t mapcap;
	uint64_t max_committed;
	uint64_t epoch;           /* the oracle's counter */
	uint32_t leader_of[4096]; /* epoch -> the replica the oracle made its leader */
	uint32_t group[MAXN + 1]; /* partition: replicas talk only within one group */
	uint64_t next_payload;
	unsigned loss, dup;   /* percent */
	unsigned promise_pct; /* how often the promise file is written before the log */
	uint32_t w[32], wsum; /* weights of the events (enum event) */
	uint64_t proposals, commits_seen;
	uint64_t now_ms;    /* the simulated clock: a millisecond per chaos step */
	struct sim_fwd *fw; /* sim_fwd.c's state */
	struct sim_read *rd; /* sim_read.c's state */
};

/* test_repl_sim.c */
uint64_t sim_rnd(struct sim *s);
uint32_t sim_below(struct sim *s, uint32_t n);
void sim_trace(struct sim *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void sim_fail(struct sim *s, int line, const char *cond, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
void *sim_grow(void *p, size_t *cap, size_t need, size_t size);
/* The oracle makes id the leader of a new epoch and tells the others, some late or never
 * (all, if tell_all). */
void sim_elect(struct sim *s, uint32_t id, bool tell_all);
uint32_t sim_random_up(struct sim *s); /* a random live replica, 0 if none */
/* The committed configuration at index (<= max_committed), and the index that set it. */
struct kvfs_config;
void sim_config_at(struct sim *s, uint64_t index, struct kvfs_config *c, uint64_t *set_at);

/* sim_member.c */
void sim_member_reconfig(struct sim *s);
void sim_member_check_entry(struct sim *s, uint64_t k, const bool *held);
void sim_member_check(struct sim *s);
bool sim_member_calm(struct sim *s, uint32_t leader);
uint32_t sim_member_calm_pick(struct sim *s, uint32_t after);
void sim_member_run_done(struct sim *s);
void sim_member_summary(unsigned long seeds);
/* Delivers every message and completes every write until all is quiet. */
void sim_settle(struct sim *s);
/* A stretch of calm inside the chaos: `steps` deliveries and disk completions, no faults. */
void sim_progress(struct sim *s, int steps);

#define CHECK(s, cond, ...)                                                                        \
	do {                                                                                       \
		if (!(cond))                                                                       \
			sim_fail((s), __LINE__, #cond, __VA_ARGS__);                               \
	} while (0)

/* sim_fwd.c (nodes, network) and sim_client.c (clients, stores, checks): every replica also runs
 * fwd.c, with clients submitting writes. */
void sim_fwd_init(struct sim *s); /* draws the run's parameters */
void sim_fwd_free(struct sim *s);
void sim_fwd_start(struct node *nd); /* nd (re)started: its store and its fwd */
void sim_fwd_crash(struct node *nd); /* its writes in flight are lost with it */
void sim_fwd_apply(struct node *nd, const struct kvfs_repl_entry *e);
void sim_fwd_reset_store(struct node *nd); /* a snapshot replaces its store at nd->applied */
void sim_fwd_installed(struct node *nd);   /* ... and the core has been told */
void sim_fwd_kick(struct node *nd);        /* after an event on nd: dispatch, barriers */
void sim_fwd_tick(struct node *nd);        /* nd's timer: dispatch, deadlines */
void sim_fwd_elected(struct node *nd, uint64_t epoch);
void sim_fwd_notice(struct node *nd, uint32_t leader, uint64_t epoch);
void sim_fwd_lost_lead(struct node *nd);
void sim_fwd_net(struct sim *s); /* connectivity may have changed (partition, crash, restart) */
/* Chaos events: a client write or barrier, a FORWARD (or reply) delivered, duplicated, a
 * ZooKeeper session lost or regained, a connection dropped. */
void sim_fwd_write(struct sim *s);
void sim_fwd_deliver(struct sim *s, bool duplicate);
void sim_fwd_session(struct sim *s);
void sim_fwd_link_drop(struct sim *s);
bool sim_fwd_busy(const struct sim *s); /* messages in flight */
void sim_fwd_flush(struct sim *s);      /* delivers them all */
void sim_fwd_heal(struct sim *s);       /* sessions back, views current */
void sim_fwd_calm(struct sim *s);       /* liveness, once healed with an established leader */
/* sim_client.c: a calm round (the clock moves, every node ticks, everything is delivered, the
 * cheap invariants of writes and reads hold); sim_fwd_calm and sim_read_calm run these. */
void sim_calm_round(struct sim *s);
void sim_fwd_check(struct sim *s);      /* cheap invariants */
void sim_fwd_summary(uint64_t seeds);   /* prints and resets the totals */

/* sim_read.c: every replica also runs readidx.c; clients issue linearizable and local reads. */
void sim_read_init(struct sim *s);
void sim_read_free(struct sim *s);
void sim_read_start(struct node *nd); /* after sim_fwd_start */
void sim_read_crash(struct node *nd);
void sim_read_kick(struct node *nd);  /* after an event on nd: progress */
void sim_read_tick(struct node *nd);  /* nd's timer */
void sim_read_acked(struct node *nd); /* nd acknowledged a write to a client (R2) ... */
void sim_read_write_acked(struct sim *s, uint64_t index); /* ... which took effect at index (R1) */
void sim_read_client(struct sim *s);  /* chaos: a client reads */
void sim_read_deliver(struct sim *s, bool duplicate);
bool sim_read_busy(const struct sim *s);
void sim_read_flush(struct sim *s);
void sim_read_check(struct sim *s);   /* cheap invariants */
void sim_read_calm(struct sim *s);    /* liveness, after sim_fwd_calm */
void sim_read_summary(uint64_t seeds);

#endif /* KVFS_TESTS_UNIT_REPLICA_SIM_H */
