/*
 * Leader election through ZooKeeper (DESIGN §3): the session, the cluster's znodes, and an
 * election thread that keeps this node's candidacy and acts on election_decide().
 *
 * Threads: ZooKeeper's C client (libzookeeper_mt) runs its own I/O and completion threads; its
 * watcher only records what happened and wakes the election thread, which makes every ZooKeeper
 * call (synchronous ones) and closes and replaces the handle after an expiry, never inside a
 * ZooKeeper callback. The loop thread reads the outcome through zk_election_view(), which takes
 * a lock and never blocks on the network.
 *
 * Leadership is also a lease: the election thread confirms its session with a round trip at
 * least every quarter of the session timeout, and zk_election_view() says `leading` only until
 * two thirds of the timeout after the last confirmed one. A leader that was paused (SIGSTOP) past its
 * session stops calling itself leader the moment it runs again, before its client has even
 * noticed the expiry; one that loses its connection stops at once.
 */
#ifndef KVFS_ZK_ELECTION_H
#define KVFS_ZK_ELECTION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kvfs/election.h"

struct kvfs_zk;

struct kvfs_zk_config {
	const char *hosts;   /* connect string "host:port,..." */
	const char *cluster; /* name: znodes live under /kvfs/<cluster> */
	uint32_t id;
	uint32_t cluster_size;   /* the size a new cluster is created with (voters 1..N) */
	bool cluster_size_given; /* false: an existing cluster's size is taken, not checked */
	const char *addr; /* this node's replication address, announced to the others */
	uint32_t priority;
	enum kvfs_election_mode mode;
	uint64_t session_timeout_ms;
	uint64_t hold_down_ms;       /* priority mode: how long a better newcomer waits */
	uint64_t min_tenure_ms;      /* priority mode: a leader is not asked to give way sooner */
	uint32_t rtt_margin_pct;     /* priority mode: score_beats' RTT margin (score.h) */
	const char *zone;            /* --zone, "" or NULL if none (copied) */
	int zpref;                   /* +1 this node's zone is preferred, -1 avoided, 0 neither */
	uint64_t connect_timeout_ms; /* zk_election_open gives up after this long */
	/* Where this node keeps the id of its ZooKeeper session (in its data directory), so that
	 * after a restart it can tell its own leftover znodes, which it removes, from those of
	 * another live process started with the same --id, which it must not fight. */
	const char *session_file;
	/* ZooKeeper digest credentials "user:password" (--zk-auth-file; copied), or NULL. With them
	 * every handle authenticates (zoo_add_auth) before its first request, and every znode under
	 * /kvfs/<cluster> gets ZOO_CREATOR_ALL_ACL: only this identity reads or changes it; the
	 * shared /kvfs gets that plus world READ|CREATE, so that clusters with other credentials
	 * still make their own /kvfs/<name>. Znodes of the cluster left open by an earlier start
	 * without credentials are tightened to the same ACLs (an upgrade), unless another member
	 * runs without credentials now: then zk_election_open refuses (-EACCES) rather than lock it
	 * out. Without credentials every znode is open to anyone (world:anyone, all rights). */
	const char *auth;
	/* --role: what this node asks to be while it is not in the configuration: KVFS_ROLE_VOTER
	 * (config.h; 0 means voter too), registered as role=voter in /members/<id>, waits for
	 * `kvfs member add`; KVFS_ROLE_OBSERVER is added as an observer by the leader (auto-join). */
	uint8_t role;
};

/* What the loop may show and act on; a copy taken under the lock. */
struct kvfs_zk_view {
	const char *zk;  /* "connected", "connecting", "expired" */
	bool leading;    /* this node leads, and its lease is current */
	uint32_t leader; /* 0 = none known */
	char leader_addr[KVFS_ADDR_MAX];
	uint64_t epoch; /* the leader's epoch (this node's own when it leads) */
};

/*
 * Connects to ZooKeeper, creates the cluster's znodes if they are missing and reads /config,
 * creating it (with a new random cluster id and cfg->cluster_size) on the first start. Returns 0
 * and the cluster id in cluster_id (2 * KVFS_GUID_LEN + 1 bytes); or -ETIMEDOUT ("cannot reach
 * ZooKeeper at ... after 10 s; is it running?"), -EXDEV (the cluster was created with another
 * size), -EACCES (ZooKeeper refused the credentials, or the cluster's znodes are protected by
 * ACLs for other credentials: "NOAUTH: /kvfs/x/config is protected ...", or a member without
 * credentials runs while this node would protect the cluster's znodes), -ENOENT (the chroot of
 * the connect string does not exist), other negative errnos; each with a message in err.
 */
int zk_election_open(struct kvfs_zk **out, const struct kvfs_zk_config *cfg, char *cluster_id,
                     char *err, size_t errlen);

/* After zk_election_open: the size the cluster was created with (/config's; cfg->cluster_size
 * when this node created it or was given it). */
uint32_t zk_election_cluster_size(const struct kvfs_zk *z);

/*
 * What ZooKeeper said at open about this node's past, for a start with an empty data directory
 * (DESIGN §4, "Replacing a node" in the README): *epoch, the last epoch ZooKeeper issued
 * (/epoch), which such a node promises before anything else; *held_data, whether this id may have
 * held data before (/nodes/<id> exists: made by each node before it can acknowledge anything;
 * for a cluster made before /nodes existed, every id is taken to have held data), in which case
 * such a node rejoins without a vote until it has caught up.
 */
void zk_election_history(const struct kvfs_zk *z, uint64_t *epoch, bool *held_data);

/*
 * Starts the election thread. notify(arg) is called, from any thread, whenever the view may have
 * changed (it should only wake the loop, e.g. uv_async_send). Returns 0 or a negative errno.
 */
int zk_election_start(struct kvfs_zk *z, void (*notify)(void *arg), void *arg);

/*
 * 0, or -EXDEV with a message when the election found a reason this node must stop: another live
 * process takes part in the election with this node's id.
 */
int zk_election_fatal(struct kvfs_zk *z, char *msg, size_t len);


void zk_election_view(struct kvfs_zk *z, struct kvfs_zk_view *v);

/* The replication address member `id` announced ("" if none is known yet). */
void zk_election_member_addr(struct kvfs_zk *z, uint32_t id, char *buf, size_t len);

/* Priority mode, on the leader: whether member `id` has caught up enough to take over. */
void zk_election_set_ready(struct kvfs_zk *z, uint32_t id, bool ready);

struct kvfs_score_measured;

/* Priority mode: this node's latest measurement (score.h); the election thread folds it into the
 * facts it publishes in its candidate znode (score_publish). Any thread. */
void zk_election_set_facts(struct kvfs_zk *z, const struct kvfs_score_measured *m);

struct kvfs_config;
struct kvfs_member_req;
struct kvfs_member_result;

/* Membership (node.h set_config): the configuration in force. Observers and non-members never
 * stand; the established leader rewrites /config after a committed change. Any thread. */
void zk_election_set_config(struct kvfs_zk *z, const struct kvfs_config *cfg, uint64_t index,
                            bool committed);

/* Membership, on the leader (node.h next_request / request_result): the oldest pending request
 * under /requests (0, or -ENOENT), and writing a request's result into its znode (done by the
 * election thread; non-blocking here). Any thread. */
int zk_election_next_request(struct kvfs_zk *z, struct kvfs_member_req *req);
void zk_election_request_result(struct kvfs_zk *z, const struct kvfs_member_req *req,
                                const struct kvfs_member_result *res);

/* One candidate as the last election round saw it, for /.status. */
struct kvfs_zk_score {
	struct kvfs_candidate c;
	unsigned rank;       /* 1 = should lead */
	bool eligible;
	char why[48];        /* why not eligible ("" if eligible) */
	bool leader;         /* holds /leader */
	uint64_t beats_ms;   /* on the leader: how long this challenger has beaten it, 0 if not */
};

/* Copies up to max candidates of the last round (ranked order) into out; returns how many. */
size_t zk_election_scores(struct kvfs_zk *z, struct kvfs_zk_score *out, size_t max);

/*
 * Gives the lead up at once (the replication core lost its majority): /leader and this node's
 * candidacy are deleted, and it stands again after the hold-down.
 */
void zk_election_resign(struct kvfs_zk *z);

/*
 * Fast failover: member `id`, which leads at `epoch`, is dead (its replication port refuses
 * connections). Its /leader and candidate znodes are deleted if they still name it at that
 * epoch, so the next candidate takes over without waiting for its session to time out.
 */
void zk_election_evict(struct kvfs_zk *z, uint32_t id, uint64_t epoch);

/*
 * Stops: the election thread steps down (deletes /leader if it holds it) and closes the session,
 * so the other nodes elect a new leader at once; then everything is freed. Blocks until done.
 */
void zk_election_close(struct kvfs_zk *z);

/*
 * Lock holders (zk_locks.c): while this node leads, the ids whose /members/<id> znode exists, as
 * a bitmap (bit id % 8 of byte id / 8) in bits (len bytes; ids past them are left out): true.
 * False (and bits zeroed) when this node does not lead or has not listed them in this term.
 * *seq counts the listings: a new value means a listing taken since the last call.
 */
bool zk_election_live_members(struct kvfs_zk *z, uint8_t *bits, size_t len, uint64_t *seq);

/*
 * Locks (zk_locks.c): whether this node's own ZooKeeper session is connected now (not
 * connecting, not expired). A node that is not may not take new locks: the leader releases the
 * locks of a member whose session expires, so a lock granted to it now could be revoked unseen.
 */
bool zk_election_session_connected(struct kvfs_zk *z);

#endif /* KVFS_ZK_ELECTION_H */
