/*
 * The node's private state, shared by node_uv.c (recovery, group commit, apply, snapshots) and
 * node_cluster_uv.c (replication: the core's io on libuv, peers, /.status lag) with its helpers
 * (node_fwd_uv.c: write forwarding; node_read_uv.c, node_snap_uv.c). Nothing outside
 * replica/node*_uv.c includes it.
 */
#ifndef KVFS_REPLICA_NODE_INTERNAL_H
#define KVFS_REPLICA_NODE_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "kvfs/election.h"
#include "kvfs/member_req.h"
#include "kvfs/metrics.h"
#include "kvfs/node.h"
#include "kvfs/op.h"

struct kvfs_fwd;
struct kvfs_peers;
struct kvfs_repl;
struct kvfs_repl_entry;
struct kvfs_readidx;
struct node_snaps;
struct node_score;

struct batch {
	uv_work_t work;
	struct kvfs_node *node;
	uint8_t *buf; /* sealed records first..last */
	size_t len, cap;
	uint64_t first, last; /* 0, 0 when the batch holds no record */
	uint64_t compact_upto; /* cut the log up to here before appending; 0 = no */
	uint64_t commit_write; /* then write this commit index to DATA/commit; 0 = no */
	int commit_rv;
	uint64_t append_us; /* how long the append (write + fdatasync) took */
	/* the replication core's actions this job carries out */
	bool trunc;              /* first drop every record after trunc_after */
	uint64_t trunc_after;
	uint64_t reset_next;     /* first remove every record; the next one is this index */
	bool persisted;          /* then complete the persist actions up to (p_epoch, p_index) */
	uint64_t p_epoch, p_index;
	int append_rv;
	int compact_rv;
	int trunc_rv;
};

struct kvfs_node {
	struct kvfs_node_config cfg;
	char *data_dir;
	struct kvfs_store *store;
	struct kvfs_changes *changes; /* the change feed's ring (changes.h) */
	struct kvfs_log *log;
	int lock_fd;

	uv_loop_t *loop;
	uv_check_t check;
	kvfs_node_apply_fn on_apply;
	kvfs_node_fatal_fn on_fatal;
	void *cb_arg;

	struct batch *pending;  /* being filled; NULL when empty */
	struct batch *inflight; /* being written; NULL when idle */
	/* A job that ran out of descriptors (disk_transient()) before it changed anything, to be
	 * run again before `pending` once the tick sets retry_due; NULL when none. */
	struct batch *retry;
	bool retry_due;
	unsigned retries; /* failed attempts in a row of the job in `retry` */
	uint64_t next_seq;
	uint64_t log_bytes; /* whole log, as of the last completed append */
	uint64_t bytes_since_snapshot;
	uint64_t compact_upto; /* waiting to be done by the next disk job */
	int commit_fd;           /* DATA/commit; -1 */
	uint64_t commit_written; /* the commit index DATA/commit holds (or a job is writing) */
	bool commit_due;         /* a job may write DATA/commit alone (set by the tick) */

	bool snapshotting;
	uv_work_t snap_work;
	struct kvfs_snapshot *snap;
	int snap_rv;
	uint64_t snap_oldest;
	char snap_err[256];
	uint64_t snapshot_index; /* the newest snapshot on disk ... */
	uint64_t snapshot_epoch; /* ... and the epoch of its last entry */

	const struct kvfs_node_cluster *cluster; /* the election; NULL: standalone */
	const struct kvfs_node_reset *reset;     /* the filesystem's say on store resets */
	void (*removed_fn)(void *arg);           /* node_set_removed() */
	struct node_cluster *cl;                 /* replication state (a standalone node is a
	                                            cluster of one: it leads it) */

	bool rejoining; /* DATA/rejoining was there at open (node_rejoin_uv.c) */
	struct kvfs_node_counters counters; /* for /.metrics (the loop thread's) */

	bool fatal;
	bool closing;
	void (*close_cb)(void *arg);
	void *close_arg;
};

/* node_member_uv.c: the `kvfs member` request the leader is carrying out. */
struct node_member {
	bool active;                 /* req is being carried out */
	bool finished;               /* ... and its final result was reported */
	struct kvfs_member_req req;
	uint64_t index;              /* the CONFIG entry proposed for it, 0 if none in flight */
	struct kvfs_config proposed; /* ... and its configuration */
	uint64_t started_ms;         /* uv_now() when this leader took req */
	uint64_t proposed_ms;        /* ... and when it proposed index */
	uint64_t next_try_ms;        /* waiting: look again from then */
	uint64_t handed_over_epoch;  /* resigned in this epoch for req (remove/demote of itself) */
	enum kvfs_member_state said; /* the last result reported, when, and why */
	uint64_t said_ms;
	char said_why[KVFS_MEMBER_WHY_MAX];
};

struct node_cluster {
	struct kvfs_node *n;
	struct kvfs_repl *repl;
	struct kvfs_peers *peers;
	uv_timer_t tick;
	bool tick_open, peers_open, closing;

	struct kvfs_fwd *fwd; /* this node's writes (fwd.c, bound in node_fwd_uv.c) */

	uint8_t *sendbuf;
	size_t sendcap;
	char (*addrs)[KVFS_ADDR_MAX]; /* by id: what we gave the transport */

	/* the promise (DATA/promise), written on a worker */
	uv_work_t promise_work;
	bool promising;
	uint64_t promise_want, promise_writing;
	int promise_rv;
	bool promise_retry; /* the last write ran out of descriptors: the tick tries again */

	struct kvfs_readidx *reads; /* linearizable reads, the restart contract (readidx.c,
	                               bound in node_read_uv.c) */
	struct node_snaps *snaps; /* snapshot transfer (node_snap_uv.c) */
	uint64_t evicted_epoch;   /* fast failover asked for this leader epoch already */
	struct kvfs_peer_status *leader_view; /* a follower's copy of the leader's PEER_STATUS */
	uint64_t leader_view_ms;              /* when it came (uv_now()) */
	uint64_t behind_since;  /* uv_now() when this node fell behind; 0 caught up */
	uint64_t *peer_behind;  /* on the leader, by id: when that peer fell behind */
	uint64_t solo_epoch;    /* standalone: the epoch it leads (node_cluster's view) */
	struct node_score *score; /* RTTs and the score's measurement (node_score_uv.c) */

	/* rejoining after a lost disk (node_rejoin_uv.c) */
	uv_work_t unmark_work;         /* removes DATA/rejoining */
	bool unmarking;
	int unmark_rv;
	uint64_t rejoin_warned_epoch; /* a candidate said who does not vote in this epoch */

	struct node_member member; /* `kvfs member` requests on the leader (node_member_uv.c) */
	/* the configuration in force (node_config_uv.c) */
	bool started;       /* ncl_start ran: config_changed passes it on */
	bool cfg_published; /* set_config was called ... */
	uint64_t cfg_index; /* ... with this index */
	bool cfg_committed; /* ... and this committed flag */
	bool was_member;    /* a committed configuration held this node */
	bool removed;       /* ... and a later one does not: stopping */
};

/* Voting replicas in the replication core: the cluster's, or 1 for a standalone node. */
static inline uint32_t ncl_size(const struct kvfs_node *n)
{
	return n->cfg.cluster_size ? n->cfg.cluster_size : 1;
}

/* The configuration a freshly loaded store (a snapshot) holds, into *out with its entry's index
 * (*index, 0 for none): the snapshot's (store_config()), else the bootstrap one, voters
 * 1..cluster size; standalone, this node alone. 0 or -EINVAL. (node_config_uv.c) */
struct kvfs_config;
int ncl_store_config(const struct kvfs_node *n, struct kvfs_config *out, uint64_t *index);

/* node_config_uv.c: the configuration in force. ncl_config: the latest (repl_config());
 * ncl_config_changed is the core's io config_changed; nconfig_start at ncl_start, once the
 * transport is open; nconfig_tick on every cluster tick. */
const struct kvfs_config *ncl_config(const struct node_cluster *c);
void ncl_config_changed(void *arg, const struct kvfs_config *cfg, uint64_t index);
void nconfig_start(struct node_cluster *c);
void nconfig_tick(struct node_cluster *c);
/* A follower heard its leader's PEER_STATUS (at its epoch): if this node, a member before, is not
 * listed, the leader's committed configuration left it out (the leader sends it to non-members
 * only then). */
struct kvfs_peer_status;
void nconfig_leader_view(struct node_cluster *c, uint32_t leader, const struct kvfs_peer_status *m);
/* /.status: role observer, member_role, config_index, voters, observers. */
struct kvfs_status;
void nconfig_status(const struct node_cluster *c, struct kvfs_status *st);
/* Gives the transport the address of every member of the latest
 * configuration and of the leader (from ZooKeeper's /members), forgets the others'. */
void ncl_update_addrs(struct node_cluster *c);

/* node_member_uv.c: `kvfs member` requests on the leader (member_req.h). nmember_tick runs on
 * every cluster tick; nmember_config_changed on every change of the configuration in force. */
struct kvfs_config;
void nmember_tick(struct node_cluster *c);
void nmember_config_changed(struct node_cluster *c, const struct kvfs_config *cfg,
                            uint64_t index);

/* node_uv.c */
struct batch *node_pending_batch(struct kvfs_node *n);
int node_batch_reserve(struct batch *b, size_t bytes);
void node_go_fatal(struct kvfs_node *n);
void node_maybe_finish_close(struct kvfs_node *n);
void node_maybe_snapshot(struct kvfs_node *n);
int64_t node_now_ns(void);
/* The limits this node holds proposals to (op_validate()): its --max-value. */
struct kvfs_op_limits node_limits(const struct kvfs_node *n);
/*
 * Applies a committed entry to the node's store with store_entry_apply() (total: an undecodable
 * payload is a failed no-op, logged), filling *op and *res. Returns 0, or -ENOMEM: the node must
 * stop (the entry is not consumed, and no later one can apply before it).
 */
int node_apply_entry(struct kvfs_node *n, uint64_t epoch, uint64_t index, const uint8_t *data,
                     size_t len, struct kvfs_op *op, struct kvfs_apply_result *res);

/* node_cluster_uv.c: the cluster half of each node_* entry point. */
/* DATA/promise: read (0 and *epoch, 0 without the file; or -EBADMSG and others, with a message
 * in err), written durably (0 or a negative errno). */
int ncl_read_promise(const struct kvfs_node *n, uint64_t *epoch, char *err, size_t errlen);
int ncl_write_promise(const struct kvfs_node *n, uint64_t epoch);
int ncl_open(struct kvfs_node *n, uint64_t base, uint64_t base_epoch,
             const struct kvfs_repl_entry *log, size_t nlog, char *err, size_t errlen);
int ncl_start(struct kvfs_node *n);
int ncl_propose(struct kvfs_node *n, struct kvfs_op *op, uint64_t deadline, kvfs_node_done_fn cb,
                void *arg);
int ncl_sync(struct kvfs_node *n, kvfs_node_done_fn cb, void *arg);
bool ncl_busy(const struct kvfs_node *n);
void ncl_check(struct kvfs_node *n);            /* each loop iteration */
void ncl_disk_done(struct kvfs_node *n, struct batch *b); /* a job completed without error */
/* A job's append failed cleanly (the log holds nothing of it): a cluster of one drops its
 * entries and fails their writers with that error (true); a cluster member must stop (false). */
bool ncl_persist_failed(struct kvfs_node *n, const struct batch *b);
void ncl_snapshot_done(struct kvfs_node *n, uint64_t index); /* a snapshot was written */
void ncl_status(const struct kvfs_node *n, struct kvfs_status *st);
/* What the election says now; standalone, this node leads solo_epoch. */
void ncl_view(const struct node_cluster *c, struct kvfs_node_view *v);
/* The commit index for the next disk job to write to DATA/commit (the log is durable up to
 * durable_end once that job has appended), or 0 if DATA/commit holds it already. */
uint64_t ncl_commit_to_write(const struct kvfs_node *n, uint64_t durable_end);
void ncl_commit_encode(uint8_t buf[24], uint64_t commit);
void ncl_close(struct kvfs_node *n);            /* starts closing; node_maybe_finish_close */
bool ncl_closed(const struct kvfs_node *n);     /* ... waits for this */
void ncl_free(struct kvfs_node *n);

/* node_health_uv.c: the writable fact (after ncl_status), and whether a follower has heard
 * `leader` lead the current epoch (an established leader's PEER_STATUS came). */
void nhealth_status(const struct kvfs_node *n, struct kvfs_status *st);
bool nhealth_leader_heard(const struct node_cluster *c, uint32_t leader);

/* node_fwd_uv.c: binds this node's writes (fwd.c) to the peers, the core and the clock. The
 * rest of the module is called directly (fwd_settle, fwd_expire, fwd_peer_down, fwd_fail_all). */
int nfwd_open(struct node_cluster *c);      /* creates c->fwd; -ENOMEM */
void nfwd_dispatch(struct node_cluster *c); /* send what the leader lacks, unless stopping */
void nfwd_applied(struct node_cluster *c);  /* an entry of ours applied */
void nfwd_after_reset(struct node_cluster *c); /* a snapshot replaced the store */
void nfwd_on_forward(struct node_cluster *c, uint32_t from, const uint8_t *p, uint32_t len);
void nfwd_on_reply(struct node_cluster *c, uint32_t from, const uint8_t *p, uint32_t len);

/* node_read_uv.c: binds readidx.c (linearizable reads, the restart contract) to the peers, the
 * core, the store and the clock. The rest of the module is called directly (readidx_barrier,
 * readidx_wait_caught_up, readidx_progress, readidx_tick, readidx_fail_all). */
int nread_open(struct node_cluster *c); /* creates c->reads; -ENOMEM */
bool nread_message(struct node_cluster *c, uint32_t from, uint8_t type, const uint8_t *p,
                   uint32_t len); /* true if it was a read message */

/* node_rejoin_uv.c: a node whose data directory was lost, started again under its id. */
/* In node_open, before the metadata file is made: an empty directory of a cluster member
 * promises ZooKeeper's last epoch and, if its id held data before, gets the durable marker
 * DATA/rejoining; n->rejoining says whether the marker is there. 0, or a negative errno with a
 * message in err. */
int nrejoin_prepare(struct kvfs_node *n, char *err, size_t errlen);
void nrejoin_done(void *arg); /* the core's io.rejoined: remove the marker (on a worker) */
void nrejoin_tick(struct node_cluster *c); /* a candidate says who does not vote */

/* node_snap_uv.c: snapxfer.c (sending a snapshot to a follower that needs one, receiving and
 * installing one) on libuv. */
int nsnap_init(struct node_cluster *c);
void nsnap_free(struct node_cluster *c);
void nsnap_need(struct node_cluster *c, uint32_t to);
void nsnap_pull(struct node_cluster *c, uint32_t from); /* a candidate needs from's snapshot */
bool nsnap_message(struct node_cluster *c, uint32_t from, uint8_t type, const uint8_t *p,
                   uint32_t len); /* true if it was a snapshot message */
void nsnap_peer_down(struct node_cluster *c, uint32_t id);
void nsnap_tick(struct node_cluster *c);
bool nsnap_busy(const struct node_cluster *c); /* a seal, load or free on a worker: closing
                                                waits */
/* The lowest index after which the log must be kept for a peer catching up from a snapshot this
 * node sent it; 0: none. Compaction (ncl_snapshot_done) stops there. */
uint64_t nsnap_retain(const struct node_cluster *c);

/* node_score_uv.c: RTT_PING / RTT_PONG, the RTTs to the peers (rtt.h) and this node's
 * measurement for the leader score (score.h), handed to the election every tick. */
/* The voters (ids, at most max) into out; their number. The one place that says who votes. */
size_t ncl_voters(const struct kvfs_node *n, uint32_t *out, size_t max);
int nscore_open(struct node_cluster *c); /* creates c->score; -ENOMEM */
void nscore_free(struct node_cluster *c);
void nscore_heard(struct node_cluster *c, uint32_t from);     /* any message from a peer */
void nscore_peer_down(struct node_cluster *c, uint32_t id);   /* its connection dropped */
void nscore_on_ping(struct node_cluster *c, uint32_t from, const uint8_t *p, uint32_t len);
void nscore_on_pong(struct node_cluster *c, uint32_t from, const uint8_t *p, uint32_t len);
void nscore_tick(struct node_cluster *c); /* pings every peer, hands the measurement over */
/* Whether peer id was heard from within KVFS_CONTACT_MS (always true for this node). */
bool nscore_in_contact(const struct node_cluster *c, uint32_t id);
/* /.status: this node's quorum RTT and its RTT to each other member. */
void nscore_status(const struct kvfs_node *n, struct kvfs_status *st);

#endif /* KVFS_REPLICA_NODE_INTERNAL_H */
