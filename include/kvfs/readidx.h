/*
 * Reads that must not be stale, pure (DESIGN §1 "Reads", §5): the read index of --read
 * linearizable, and the restart contract that local reads wait for.
 *
 * The read index. A read may go ahead once this node has applied every entry committed before
 * the read began. The leader knows that index (its commit index) but must first prove it still
 * leads: a deposed leader that has not heard of its successor would answer stale. So the leader
 * runs rounds: it sends READ_INDEX(round) to every follower, and a follower answers
 * READ_INDEX_REPLY(round, its epoch, ok: the sender is its leader). Once a majority (the leader
 * included) answered with the leader's own epoch, no other leader can have committed anything
 * before the round began (a successor needs promises from a majority, which intersects this
 * one), so every read that joined the round before it began may use the commit index the leader
 * had, in that same epoch, when the read arrived. Reads arriving during a round wait for the
 * next one, so one round serves any number of reads. A follower asks the leader with
 * READ_INDEX(id); the leader puts the request in a round and answers READ_INDEX_REPLY(id, epoch,
 * commit index, ok). The follower then waits until it has applied that index. The message names
 * are the same both ways: a node that leads takes READ_INDEX as a request and READ_INDEX_REPLY
 * as a round's answer; a follower takes READ_INDEX from its leader as a round to answer and
 * READ_INDEX_REPLY as the answer to its request.
 *
 * The restart contract. After its start a member does not know how far behind its leader it is,
 * and its store may lack writes it acknowledged before it stopped (its commit index on disk may
 * be stale). It is caught up once it leads (established), or once it has heard from its leader
 * a commit index that covers an entry of the leader's own epoch (so not a candidate's stale one:
 * an established leader's commit index covers everything committed before its epoch, this
 * node's acknowledged writes included) and applied up to it. Until then local reads wait.
 *
 * A read that is not answered by its deadline fails with EIO, and the report says which of the
 * two it waited for. Like repl.c and fwd.c it includes no libuv, FUSE or ZooKeeper header, reads
 * no clock and never prints: it reaches out only through struct kvfs_readidx_io.
 * replica/node_read_uv.c binds it to the node; tests/unit/replica/sim_read.c runs it on every
 * simulated replica.
 */
#ifndef KVFS_READIDX_H
#define KVFS_READIDX_H

#include <stdbool.h>
#include <stdint.h>

struct kvfs_readidx;

#define KVFS_READIDX_RETRY_MS 300 /* a round or request without an answer starts over */

/* A read's completion: err 0 or a negative errno; the third argument is always 0 (it has the
 * shape of the node's completions). */
typedef void (*kvfs_readidx_done_fn)(void *arg, int err, uint64_t zero);

/* What the module needs to know of the replication core and the store, now. */
struct kvfs_readidx_view {
	bool leads;       /* an established leader (repl_role() LEADER) */
	uint64_t epoch;   /* repl_epoch() */
	uint32_t leader;  /* repl_leader(): the leader followed, 0 if none */
	uint64_t commit;  /* repl_commit_index() */
	uint64_t heard;   /* repl_heard_commit(): the leader's commit index, as sent to us */
	uint64_t applied; /* the store's applied index */
};

/* What the binding should log (the module never prints). */
enum kvfs_readidx_event {
	KVFS_READIDX_EXPIRED,         /* count linearizable reads failed with EIO: the leader did
	                                 not confirm its commit index with a majority in time */
	KVFS_READIDX_CATCHUP_EXPIRED, /* count reads failed with EIO: not caught up in time */
	KVFS_READIDX_CAUGHT_UP,       /* caught up at applied index `index`: reads are served */
};

struct kvfs_readidx_report {
	enum kvfs_readidx_event event;
	unsigned count;
	uint64_t index;
};

/*
 * The binding. None of these may call back into the module before it returns. Messages may be
 * lost, duplicated or reordered (the module stays safe, and asks again after
 * KVFS_READIDX_RETRY_MS). The restart contract relies on one thing of the transport: no message
 * sent to this node before its start reaches it after (as with TCP connections, which die with
 * their process), so that a commit index heard now was sent now.
 */
struct kvfs_readidx_io {
	void *arg;
	uint64_t (*now_ms)(void *arg); /* a monotonic clock, for deadlines and retries */
	void (*view)(void *arg, struct kvfs_readidx_view *v);
	/* The epoch of entry `index` in this node's log, 0 if it is not there (compacted into a
	 * snapshot, or not yet received). */
	uint64_t (*entry_epoch)(void *arg, uint64_t index);
	bool (*connected)(void *arg, uint32_t id); /* a connection to peer id is up */
	void (*send_index)(void *arg, uint32_t to, uint64_t id);
	void (*send_reply)(void *arg, uint32_t to, uint64_t id, uint64_t epoch, uint64_t commit,
	                   bool ok);
	/* Optional: something to log, before the callbacks of the reads it concerns. */
	void (*report)(void *arg, const struct kvfs_readidx_report *r);
};

struct kvfs_readidx_config {
	uint32_t id;               /* this node */
	uint32_t cluster_size;     /* voters 1..cluster_size until readidx_set_config() */
	uint64_t write_timeout_ms; /* a read's deadline when its caller gives none */
	uint64_t first_id;         /* the first request id (> 0, below 2^63): past any that an
	                              earlier incarnation of this node used, which a leader may
	                              still answer (the binding takes it from a clock) */
	bool caught_up;            /* start caught up: a cluster of one, whose own log is all
	                              there is and was applied at start */
};

/* Creates the module: 0 and *out, -EINVAL (id outside 1..KVFS_CONFIG_ID_MAX, cluster_size
 * outside 1..KVFS_CONFIG_MAX, first_id 0 or from 2^63), -ENOMEM. io is copied. It starts
 * catching up, unless cfg->caught_up. */
int readidx_init(struct kvfs_readidx **out, const struct kvfs_readidx_config *cfg,
                 const struct kvfs_readidx_io *io);

/* The configuration whose voters' majority confirms a round from now on: the latest one of the
 * replication core (repl_config(), io config_changed). Only voters are asked. 0 or -EINVAL. */
struct kvfs_config;
int readidx_set_config(struct kvfs_readidx *ri, const struct kvfs_config *c);

/* Frees ri. Callbacks still pending are not called (readidx_fail_all() first, if they must be). */
void readidx_close(struct kvfs_readidx *ri);

/*
 * A linearizable read's barrier: cb (0) once this node has applied everything committed before
 * this call, as confirmed by its leader with a majority; -EIO at the deadline (absolute,
 * now_ms(); 0 means now + write timeout). cb runs exactly once, from a later call into the
 * module, never from this one. Returns 0, or -ENOMEM (cb is never called).
 */
int readidx_barrier(struct kvfs_readidx *ri, uint64_t deadline, kvfs_readidx_done_fn cb,
                    void *arg);

/*
 * The restart contract's wait: returns 1 (cb is never called) if this node is caught up;
 * otherwise 0, and cb (0) runs once it is, or (-EIO) at the deadline (as for readidx_barrier).
 * -ENOMEM: cb is never called.
 */
int readidx_wait_caught_up(struct kvfs_readidx *ri, uint64_t deadline, kvfs_readidx_done_fn cb,
                           void *arg);

/* Whether this node has caught up since its start (as of the last call into the module that
 * looked: readidx_progress() and the others below). */
bool readidx_caught_up(const struct kvfs_readidx *ri);

/* True while reads wait (this node's, or followers' requests on the leader). */
bool readidx_busy(const struct kvfs_readidx *ri);

/* Peer `from` sent READ_INDEX(id): a follower's request (when we lead) or our leader's round. */
void readidx_on_index(struct kvfs_readidx *ri, uint32_t from, uint64_t id);

/* Peer `from` sent READ_INDEX_REPLY: an answer to our round (when we lead) or to our request. */
void readidx_on_reply(struct kvfs_readidx *ri, uint32_t from, uint64_t id, uint64_t epoch,
                      uint64_t commit, bool ok);

/* Something changed (an apply, a message to the core, a role): checks the restart contract and
 * completes the reads whose index this node has applied. */
void readidx_progress(struct kvfs_readidx *ri);

/* The timer: fails with EIO what waits past its deadline (reported first), places again the
 * reads that wait for the wrong kind of answer (roles changed) or for too long, starts a round
 * if one is due, then readidx_progress(). */
void readidx_tick(struct kvfs_readidx *ri);

/* Stopping: err to every read of this node waiting (followers' requests are dropped). */
void readidx_fail_all(struct kvfs_readidx *ri, int err);

#endif /* KVFS_READIDX_H */
