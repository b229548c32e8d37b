/*
 * Write forwarding with exactly-once retries, pure (DESIGN §1 "Writes"): a node's writes, from
 * node_propose() until this node applies them, and the leader's side of the FORWARD message.
 *
 * Every write of this node gets (origin = our id, seq), is kept in a list in seq order until this
 * node applies an entry carrying it, and is sent to whoever leads: into the local replication
 * core when we lead, in a FORWARD to the leader otherwise. Whenever the leader or its connection
 * changes, or the leader refuses, what has not been applied is sent again, in order. The store
 * applies an (origin, seq) at most once and remembers only the last seq per origin, so:
 *  - a resent write that had committed after all is a no-op the second time;
 *  - when seq s applies, a write of ours with a lower seq still waiting can never apply any more
 *    (it would be taken for a duplicate): it is given a new seq and sent again.
 * The callback runs when the entry is applied here: that is read-your-writes. A write not applied
 * by its deadline fails with EIO, and the report says why.
 *
 * Like repl.c it includes no libuv, FUSE or ZooKeeper header, reads no clock and draws no random
 * number: it reaches out only through struct kvfs_fwd_io, and never prints (it reports what the
 * binding should log). replica/node_fwd_uv.c binds it to the node (peer messages, the clock);
 * tests/unit/replica/test_repl_sim.c runs it on every simulated replica.
 */
#ifndef KVFS_FWD_H
#define KVFS_FWD_H

#include <stdbool.h>
#include <stdint.h>

#include "kvfs/op.h"

struct kvfs_fwd;
struct kvfs_session;

/* A write's (or barrier's) completion: err 0 or a negative errno, ino the inode it made. */
typedef void (*kvfs_fwd_done_fn)(void *arg, int err, uint64_t ino);

/* Who leads, as this node knows it now: ZooKeeper's view and its replication core's. */
struct kvfs_fwd_view {
	bool elected;         /* ZooKeeper: this node leads zk_epoch, and its lease is current */
	uint32_t zk_leader;   /* ZooKeeper: the leader's id, 0 if none is known */
	uint64_t zk_epoch;    /* ZooKeeper: the leader's epoch */
	bool established;     /* the core: an established leader (repl_role() LEADER) */
	uint32_t core_leader; /* the core: repl_leader() */
	uint64_t core_epoch;  /* the core: repl_epoch() */
};

/* What the binding should log (the module never prints). */
enum kvfs_fwd_event {
	KVFS_FWD_EXPIRED,       /* count writes failed with EIO at their deadline; why */
	KVFS_FWD_RESET_UNKNOWN, /* count writes failed with EIO: a snapshot covered them, without
	                           their outcome */
	KVFS_FWD_REFUSED_LATE,  /* a write failed with EIO: peer refused it (err), but an earlier
	                           leader may have committed it */
	KVFS_FWD_MALFORMED,     /* peer forwarded a write that is not well formed; ignored */
	KVFS_FWD_INVALID,       /* peer forwarded an op of op_type this leader refuses (err) */
};

struct kvfs_fwd_report {
	enum kvfs_fwd_event event;
	unsigned count;
	uint32_t peer;
	int err;
	unsigned op_type;
	const char *why; /* EXPIRED: why the writes waited (static text) */
};

/*
 * The binding. None of these may call back into the module before it returns. Messages may be
 * lost, duplicated or reordered: the module stays safe (a write applies at most once, and only a
 * refusal that no leader could have overridden is reported as the write's outcome); it resends
 * on fwd_peer_down(), on a change of leader and on a refusal, so a transport that loses messages
 * only along with the connection (TCP) also keeps it live.
 */
struct kvfs_fwd_io {
	void *arg;
	uint64_t (*now_ms)(void *arg); /* a monotonic clock, for deadlines */
	void (*view)(void *arg, struct kvfs_fwd_view *v);
	bool (*connected)(void *arg, uint32_t id); /* a connection to peer id is up */
	/* Proposes the encoded op into the local core (repl_propose()): 0 or a negative errno
	 * (-EROFS: not an established leader now). */
	int (*propose)(void *arg, const uint8_t *op, uint32_t len);
	/* Sends a FORWARD of (our id, seq, op) to peer `to`: 0, or a negative errno if it was not
	 * taken (it is tried again later). */
	int (*forward)(void *arg, uint32_t to, uint64_t seq, const uint8_t *op, uint32_t len);
	/* Sends a FORWARD_REPLY to peer `to` (the write's origin): its write seq was refused. */
	void (*refuse)(void *arg, uint32_t to, uint64_t seq, int err);
	/* Optional: something to log, before the callbacks of the writes it concerns. */
	void (*report)(void *arg, const struct kvfs_fwd_report *r);
	/* Optional, for the leader's check of forwarded seqs (op.h, KVFS_SEQ_AHEAD): the last seq
	 * this node applied for origin (false: none), and the wall clock in microseconds (the
	 * clock seqs start from). Without them only KVFS_SEQ_MAX is checked. */
	bool (*last_seq)(void *arg, uint32_t origin, uint64_t *seq);
	uint64_t (*clock_us)(void *arg);
};

struct kvfs_fwd_config {
	uint32_t id;               /* this node's id: the origin of its writes */
	uint64_t write_timeout_ms; /* a write's deadline when its caller gives none */
	struct kvfs_op_limits lim; /* this node's limits, applied to forwarded writes as leader */
	uint64_t first_seq;        /* the first sequence number to use (> 0) */
};

/* Creates the module: 0 and *out, -EINVAL (id or first_seq 0), -ENOMEM. io is copied. */
int fwd_init(struct kvfs_fwd **out, const struct kvfs_fwd_config *cfg,
             const struct kvfs_fwd_io *io);

/* Frees f. Callbacks still pending are not called (fwd_fail_all() first, if they must be). */
void fwd_close(struct kvfs_fwd *f);

/* Sequence numbers from now on are seq or above (they must grow past any of ours that a log,
 * a store or the network may still hold). */
void fwd_seq_at_least(struct kvfs_fwd *f, uint64_t seq);

/*
 * Takes a write: op (validated by the caller with its own limits, time and max_value set) gets
 * origin and seq here, is copied, and is sent where it should go. deadline is absolute (now_ms());
 * 0 means now + write timeout. cb runs exactly once, from a later call into the module, never from
 * this one: (0 or the op's outcome, ino) once this node applied it, a refusal's errno, or -EIO at
 * the deadline (outcome unknown). Returns 0, or -ENOMEM (cb is never called).
 */
int fwd_propose(struct kvfs_fwd *f, struct kvfs_op *op, uint64_t deadline, kvfs_fwd_done_fn cb,
                void *arg);

/* A barrier: cb (0, 0) once every write taken before has completed (fwd_settle()), or -EIO at
 * now + write timeout. Returns 0 or -ENOMEM (cb is never called). */
int fwd_sync(struct kvfs_fwd *f, kvfs_fwd_done_fn cb, void *arg);

/* True while writes or barriers wait. */
bool fwd_busy(const struct kvfs_fwd *f);

/* Sends every write not yet sent to the current leader in its epoch, in order. Call it whenever
 * who leads may have changed, a connection came up, or on a timer. */
void fwd_dispatch(struct kvfs_fwd *f);

/* The connection to peer id went: what was sent there goes again (next fwd_dispatch()). */
void fwd_peer_down(struct kvfs_fwd *f, uint32_t id);

/*
 * This node applied an entry of ours (origin = our id, seq > 0); last is what its store
 * remembers for our origin now (store_session_get()). The write of last->seq completes with its
 * outcome; others of ours at or below it still waiting are renumbered and sent again.
 */
void fwd_applied(struct kvfs_fwd *f, const struct kvfs_session *last);

/*
 * A snapshot replaced this node's store; last is what it remembers for our origin (NULL: none).
 * The write of last->seq completes with its outcome; earlier ones still waiting fail with EIO
 * (they most likely applied, but their outcome is lost) and are reported (RESET_UNKNOWN).
 */
void fwd_after_reset(struct kvfs_fwd *f, const struct kvfs_session *last);

/* Completes the barriers that nothing proposed before them waits for. */
void fwd_settle(struct kvfs_fwd *f);

/* Fails with EIO what waits with a deadline at or before now (reported first: EXPIRED). */
void fwd_expire(struct kvfs_fwd *f, uint64_t now);

/* Stopping: err to every write waiting (0 to barriers), in order. */
void fwd_fail_all(struct kvfs_fwd *f, int err);

/*
 * On the leader: peer `from` forwarded (origin, seq, op). Proposed if it passes this leader's own
 * checks (origin is the sender; seq in 1..KVFS_SEQ_MAX and not more than KVFS_SEQ_AHEAD past
 * both the origin's last applied seq and this leader's clock: -EINVAL; op_validate() with this
 * leader's limits); otherwise the peer hears why (refuse): EROFS and EAGAIN mean "send it again,
 * to whoever leads"; any other errno is the write's outcome. What is proposed carries
 * KVFS_OP_RULES2 and a max_value within this leader's, set here if the peer's op lacks them.
 */
void fwd_on_forward(struct kvfs_fwd *f, uint32_t from, uint32_t origin, uint64_t seq,
                    const uint8_t *op, uint32_t len);

/*
 * On the origin: peer `from` refused our write seq with err. EROFS and EAGAIN: send again from seq
 * on. Any other errno is the write's outcome if the write never went to another leader or epoch
 * (which may have proposed it): then it is -EIO (reported, REFUSED_LATE).
 */
void fwd_on_reply(struct kvfs_fwd *f, uint32_t from, uint32_t origin, uint64_t seq, int err);

/* Why writes wait now (for a log line), NULL if nothing is in the way. */
const char *fwd_why_stuck(const struct kvfs_fwd *f);

#endif /* KVFS_FWD_H */
