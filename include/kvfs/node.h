/*
 * The node: one replica's running state, owned by the libuv loop thread. It recovers the store
 * from the data directory (newest snapshot + the log after it), takes operations proposed by the
 * filesystem, writes them to the log with group commit (everything proposed while one fdatasync
 * is in flight goes into the next one, off the loop thread), applies them to the store once they
 * are durable, and calls each proposer back with the outcome. It takes snapshots in the
 * background and truncates the log behind them.
 *
 * Standalone, a node is a cluster of one: durable on its own disk = committed. In a cluster
 * (cfg.cluster_size > 0, node_set_cluster()), the replication core (repl.h) sits between the two:
 * the node writes what the core asks to its log, sends and receives the core's messages over the
 * peer transport (peer.h), applies what the core commits, and forwards its own proposals to the
 * leader (or proposes them itself when it leads). A proposal completes when this node applies it,
 * so a write is visible here when its callback runs (read-your-writes).
 */
#ifndef KVFS_NODE_H
#define KVFS_NODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct uv_loop_s;
struct kvfs_op;
struct kvfs_apply_result;
struct kvfs_status;
struct kvfs_store;
struct kvfs_node;

struct kvfs_sec_keys;
struct kvfs_score_measured;
struct kvfs_config;
struct kvfs_member_req;
struct kvfs_member_result;

struct kvfs_node_config {
	uint32_t id;
	const char *data_dir;
	uint64_t max_value;      /* value size limit put into every proposed op */
	uint64_t segment_bytes;  /* log segment size; 0 = default */
	uint64_t snapshot_bytes; /* snapshot after this many log bytes; 0 = default */
	const char *election;    /* shown in /.status */
	uint32_t priority;       /* shown in /.status */
	const char *cluster_id;  /* the cluster the data directory must belong to; NULL or
	                            "standalone" for a node without ZooKeeper */
	/* cluster members only (cluster_size > 0) */
	uint32_t cluster_size;       /* voting replicas, ids 1..cluster_size */
	const char *listen;          /* replication address to listen on, "HOST:PORT" */
	const char *advertise;       /* the address peers are told (/.status); NULL: listen */
	uint64_t write_timeout_ms;   /* a proposal not committed within this fails with EIO */
	uint64_t session_timeout_ms; /* a leader that hears from no majority this long gives up */
	/* The cluster keys peers must prove (peer_sec.h; borrowed: they must outlive the node, the
	 * transport takes a copy at node_start); NULL: --insecure, bare frames. */
	const struct kvfs_sec_keys *peer_keys;
	/* From ZooKeeper at start (zk_election_history()), for an empty data directory: the last
	 * epoch issued, promised before anything else, and whether this id held data before (then
	 * the node rejoins: repl.h, "Rejoining"). */
	uint64_t zk_epoch;
	bool id_held_data;
	/* Records the change feed keeps (changes.h, --changes-history); 0: the default. */
	uint32_t changes_history;
	/* Testing only: the transport's link delay file (peer.h, "Testing"); NULL: none. */
	const char *test_peer_delay;
};

/* What the election says now. */
struct kvfs_node_view {
	bool leading;    /* this node leads, and its lease is current */
	uint32_t leader; /* the leader's id, 0 if none is known */
	uint64_t epoch;  /* the leader's epoch */
};

/*
 * The node's view of the election (ZooKeeper), and what it asks of it. All are called on the loop
 * thread and must not block.
 */
struct kvfs_node_cluster {
	void (*view)(void *arg, struct kvfs_node_view *v);
	/* Overwrites role, leader, leader_addr, epoch and zk in st. */
	void (*status)(void *arg, struct kvfs_status *st);
	/* The replication address member `id` announced; "" if unknown. */
	void (*member_addr)(void *arg, uint32_t id, char *buf, size_t len);
	/* The replication core cannot hold a majority: give the lead up so another can try. */
	void (*resign)(void *arg);
	/* Member `id`, leader at `epoch`, is dead (its port refuses): remove its leadership. */
	void (*evict)(void *arg, uint32_t id, uint64_t epoch);
	/* Priority handover: member `id` has (not) caught up with this leader. */
	void (*set_ready)(void *arg, uint32_t id, bool ready);
	/* Priority mode: what this node measures about itself for the leader score (score.h), every
	 * tick (100 ms); the election decides what to publish. May be NULL. */
	void (*set_facts)(void *arg, const struct kvfs_score_measured *m);
	/* Membership: the configuration in force changed (repl io config_changed, and once at
	 * start). index: its CONFIG entry (0: the bootstrap or snapshot one); committed: whether that
	 * index is committed. The election uses it: observers never stand, the leader rewrites
	 * ZooKeeper's /config after a committed change. May be NULL. */
	void (*set_config)(void *arg, const struct kvfs_config *cfg, uint64_t index, bool committed);
	/* Membership, on the leader: the oldest pending `kvfs member` request, 0 and *req, or
	 * -ENOENT. Non-blocking (the election thread fetched it). May be NULL. */
	int (*next_request)(void *arg, struct kvfs_member_req *req);
	/* Membership, on the leader: the outcome of request `req` (written to its znode by the
	 * election thread). May be NULL. */
	void (*request_result)(void *arg, const struct kvfs_member_req *req,
	                       const struct kvfs_member_result *res);
	void *arg;
};

/* Called once per proposal, on the loop thread, when it has been applied (err = its outcome, ino
 * = the inode it created or changed) or has failed (-EIO, -ENOSPC, -ESHUTDOWN ...). */
typedef void (*kvfs_node_done_fn)(void *arg, int err, uint64_t ino);

/* Called on the loop thread after each operation is applied, before its proposer is called. */
typedef void (*kvfs_node_apply_fn)(void *arg, const struct kvfs_op *op,
                                   const struct kvfs_apply_result *res);

/*
 * Called once, on the loop thread, when the node cannot go on (a log or promise write or fsync
 * failed, a committed entry cannot be applied): the node has logged why, naming its data
 * directory. From then on every node_* call that would need the disk fails with -EIO, what
 * waited fails with -EIO (the proposal whose write failed before this returns, the others,
 * forwarded writes and read barriers included, at the next loop iteration), and in a cluster the
 * node no longer takes part in replication. The caller must stop: node_close at once (there is
 * nothing worth draining) and leave the election. It may be called inside any node_* call or
 * callback, also after node_close has begun.
 */
typedef void (*kvfs_node_fatal_fn)(void *arg);

/*
 * Opens the data directory (creating it if missing), locks it against a second kvfs, and recovers
 * the store. Runs synchronously, before the loop exists. Returns 0, or a negative errno with a
 * one-line explanation in err: -EBUSY (in use by another kvfs), -EBADMSG (damaged log or
 * snapshot), -EINVAL (belongs to another node id), -EXDEV (belongs to another cluster), other
 * errnos for I/O trouble.
 */
int node_open(struct kvfs_node **out, const struct kvfs_node_config *cfg, char *err, size_t errlen);

/*
 * A follower too far behind (the leader compacted the entries it lacks) receives a snapshot that
 * replaces the contents of its store: node_store() stays the same object, but inode pointers
 * taken before point into the old contents. The pins (store_pin) on inodes that exist in both
 * move to the new contents first. done() is then called, on the loop thread with node_start's
 * arg: the filesystem rebinds what it holds and owns `old` from then on (store_close it when
 * nothing points into it any more). Without the hook the old contents are freed at once.
 */
struct kvfs_node_reset {
	void (*done)(void *arg, struct kvfs_store *old);
};

void node_set_reset(struct kvfs_node *n, const struct kvfs_node_reset *reset);

/*
 * From inside done(): the numbers of the inodes pinned in the old contents, each once (the walk
 * that moved their pins found them), so that the filesystem need not walk a million inodes to
 * find the few the kernel knows. NULL when not known (out of memory: walk them). Valid until
 * done() returns.
 */
const uint64_t *node_reset_pinned(const struct kvfs_node *n, size_t *count);

/*
 * Frees old contents that done() was given (store_close) on a libuv worker instead of the loop
 * thread: a million keys take seconds to free. The caller promises that nothing refers to `old`
 * any more, nor to a value or attribute set in it (their reference counts change on the loop
 * thread only): no open file reads or writes through one, no backup holds one. The node frees
 * it on the loop, at once, when it cannot promise the same (a snapshot of those contents is
 * being written), when closing, or when out of memory. Call on the loop thread.
 */
void node_store_close_later(struct kvfs_node *n, struct kvfs_store *old);

/* Membership: called once, on the loop thread with node_start's arg, when a committed
 * configuration no longer holds this node, which was a member (it was removed; the node has
 * logged it): the caller stops cleanly, as on SIGTERM, with exit status 0. NULL: nothing. */
void node_set_removed(struct kvfs_node *n, void (*removed)(void *arg));

/* Connects the node (opened with cfg.cluster_size > 0) to the election. Call before node_start;
 * cluster must outlive the node. */
void node_set_cluster(struct kvfs_node *n, const struct kvfs_node_cluster *cluster);

/* The election's view may have changed (call on the loop thread). */
void node_cluster_changed(struct kvfs_node *n);

/* Attaches the node to loop (and, in a cluster, starts listening to its peers); it starts taking
 * proposals. Every hook (on_apply, on_fatal, and node_set_reset's done) is called with the same
 * arg. Returns 0 or a negative errno (-EADDRINUSE: the replication port is taken). */
int node_start(struct kvfs_node *n, struct uv_loop_s *loop, kvfs_node_apply_fn on_apply,
               kvfs_node_fatal_fn on_fatal, void *arg);

/* The node's clock, in ms (the loop's): what deadlines below are given in. */
uint64_t node_now_ms(const struct kvfs_node *n);

/*
 * Proposes op. The node fills in origin, seq, time_ns and (if 0) max_value, and copies what it
 * needs, so op and its buffers may go once this returns. On success returns 0 and calls cb
 * exactly once later; on failure (-ESHUTDOWN while closing, -EIO after a fatal error, -ENOMEM)
 * returns it and never calls cb. In a cluster the callback may say -EIO: nothing was committed
 * by `deadline` (node_now_ms() terms; 0: the write timeout from now), for want of a leader or a
 * majority.
 */
int node_propose(struct kvfs_node *n, struct kvfs_op *op, uint64_t deadline, kvfs_node_done_fn cb,
                 void *arg);

/* Calls cb (err 0, ino 0) once every operation proposed before this call has completed. Same
 * return and callback rules as node_propose. */
int node_sync(struct kvfs_node *n, kvfs_node_done_fn cb, void *arg);

/*
 * A linearizable read's barrier: calls cb (err 0, ino 0) once this node has applied everything
 * committed before this call, as confirmed by the leader with a majority (so neither a deposed
 * leader nor a lagging follower answers stale); -EIO if that has not happened by `deadline` (as
 * for node_propose). Same return and callback rules as node_propose.
 */
int node_read_barrier(struct kvfs_node *n, uint64_t deadline, kvfs_node_done_fn cb, void *arg);

/*
 * The restart contract (DESIGN §5): after its start, a cluster member does not know how far
 * behind its leader it is, and its store may lack writes it acknowledged before it stopped, until
 * it has heard its leader's commit index (of the leader's own epoch) and applied up to it.
 * node_reads_ready() says whether it has (always true standalone). node_read_wait() calls cb
 * (err 0, ino 0) once it has, or -EIO if it has not by `deadline` (as for node_propose); same
 * return and callback rules as node_propose, except that it returns 1, and never calls cb, when
 * reads are ready already.
 */
bool node_reads_ready(const struct kvfs_node *n);
int node_read_wait(struct kvfs_node *n, uint64_t deadline, kvfs_node_done_fn cb, void *arg);

/* True while proposals are waiting or being written. */
int node_busy(const struct kvfs_node *n);

struct kvfs_store *node_store(struct kvfs_node *n);
/* The change feed's ring (changes.h): every applied entry is recorded there before on_apply. */
struct kvfs_changes;
const struct kvfs_changes *node_changes(const struct kvfs_node *n);
void node_status(const struct kvfs_node *n, struct kvfs_status *st);
/* The node's counters for /.metrics (group-commit fsync latency, snapshot size). */
struct kvfs_node_counters;
void node_metrics(const struct kvfs_node *n, struct kvfs_node_counters *out);

/*
 * Stops taking proposals, lets those in flight finish, closes the log and frees the node. Must be
 * called on the loop thread after node_start, or without a loop after node_open alone; the loop
 * must keep running until cb is called (cb may be NULL; it is called with arg). After node_open
 * alone, everything is freed before node_close returns and cb is called at once.
 */
void node_close(struct kvfs_node *n, void (*cb)(void *arg), void *arg);

#endif /* KVFS_NODE_H */
