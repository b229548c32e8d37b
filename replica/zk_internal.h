/*
 * The ZooKeeper binding's private state, shared by zk_session.c (the handle: the watcher,
 * connecting, digest auth, the session file), zk_setup.c (the cluster's znodes, their ACLs and
 * /config at open), zk_znodes.c (the requests of one election round: /members/<id>, the
 * candidates, /leader, /epoch) and zk_election.c (the election thread, its rounds and the
 * interface of zk_election.h). Nothing outside replica/zk_*.c includes it.
 *
 * Threads: ZooKeeper's client calls zk_session_watcher() and zk_session.c's auth completion on
 * its own thread; they only record what happened under `lock` and wake the election thread
 * (`cond`) and the loop (zk_session_wake()). Every ZooKeeper request is made by the election
 * thread, which owns `zh` (or by zk_election_open before the thread starts, zk_election_close after
 * it stopped). ZooKeeper return codes are turned into messages and negative errnos
 * (zk_session_errno()) in these files and go no further.
 *
 * Access (DESIGN §3): with credentials, each handle authenticates before its first request (the
 * election thread runs no round until ZooKeeper has accepted them: zk_session_ready()) and every
 * znode these files create carries acl_of(): the creator's digest identity alone, all rights. The
 * shared /kvfs also lets anyone READ and CREATE, so that a cluster with other credentials can
 * still make its own /kvfs/<name> next to ours; nobody but its creator may delete a cluster's
 * znode from it, change its ACL or write its data. Without credentials everything is open, as
 * before. A node with credentials that finds the cluster's znodes open (made by starts without)
 * tightens them, once no member without credentials is left running (zk_setup.c).
 */
#ifndef KVFS_REPLICA_ZK_INTERNAL_H
#define KVFS_REPLICA_ZK_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>
#include <zookeeper/zookeeper.h>

#include "kvfs/election.h"
#include "kvfs/score.h"
#include "kvfs/config.h"
#include "kvfs/member_req.h"
#include "kvfs/zk_election.h"

#define MAX_CANDIDATES 64
#define MAX_IDS        256 /* ids 1..255 */
#define ZDATA_MAX      512
#define ZK_REQ_RESULTS 8   /* membership results waiting to be written (zk_requests.c) */
#define AUTH_PENDING   1 /* auth_rc while zoo_add_auth has not completed (Z* codes are <= 0) */

struct kvfs_zk {
	struct kvfs_zk_config cfg;
	char *hosts, *cluster, *addr, *session_file; /* owned copies of cfg's strings */
	char *auth;                                  /* "user:password" or NULL; wiped at free */
	int user_len;                                /* length of the user part of auth */
	const char *chroot;                          /* in hosts: "/a/b" or NULL */
	struct ACL root_acl_entries[2];              /* for /kvfs (see the top of this file) */
	struct ACL_vector root_acl;
	char base[128];            /* /kvfs/<cluster> */
	char cand_data[ZDATA_MAX]; /* this node's candidate data */

	pthread_mutex_t lock;
	pthread_cond_t cond;
	pthread_t thread;
	bool started;
	void (*notify)(void *arg); /* protected by lock */
	void *notify_arg;          /* protected by lock */
	int64_t prev_session;      /* our session before this process (from session_file) */

	/* protected by lock; written only by the election thread (and open/close), which may
	 * therefore read it without the lock */
	zhandle_t *zh;
	int state;                /* last session state from the watcher */
	int auth_rc;              /* the handle's zoo_add_auth: ZOK, AUTH_PENDING or a Z* error */
	bool expired;             /* the session expired: the handle must be replaced */
	uint64_t disconnected_at; /* when the connection was lost; 0 while connected */
	bool reconnected_late;    /* it came back after more than a session timeout */
	bool changed;             /* a watch fired or the session changed: run a round */
	bool stop;
	bool leading;
	uint64_t lease_until_ms; /* CLOCK_BOOTTIME */
	uint64_t session_ms;     /* the session timeout ZooKeeper granted (it may clamp ours) */
	int64_t session_id;      /* the current session; 0 before the first connection */
	int fatal;               /* a reason to stop (another process uses our id): -EXDEV */
	char fatal_msg[640];
	uint64_t epoch;
	uint32_t leader;
	char leader_addr[KVFS_ADDR_MAX];
	char addrs[MAX_IDS][KVFS_ADDR_MAX]; /* members' replication addresses, "" if unknown */
	bool ready[MAX_IDS];                /* caught up enough to be handed the lead */
	/* membership (zk_election_set_config): the configuration in force */
	bool have_config;
	struct kvfs_config config;
	uint64_t config_index;
	bool config_committed;
	/* membership requests (zk_requests.c): the oldest pending one, for the loop, and the
	 * results the loop reported, not yet written to their znodes */
	bool have_request;
	struct kvfs_member_req request;
	unsigned req_nres;
	struct {
		char name[KVFS_CONFIG_REQ_MAX];
		char data[ZDATA_MAX];
	} req_res[ZK_REQ_RESULTS];
	bool standing_off; /* the election thread: not a voter, candidacy withdrawn (logged) */
	uint64_t member_addrs_ms; /* the election thread: when it last read every /members addr */
	bool resign;                        /* the replication core gave the lead up */
	uint32_t evict_id;                  /* a dead leader to remove (fast failover) ... */
	uint64_t evict_epoch;               /* ... at this epoch */
	uint64_t addr_asked_ms;             /* the last round asked for by member_addr */
	/* At open (zk_setup.c): /epoch, and whether /nodes/<id> existed (this id held data). */
	uint64_t open_epoch;
	bool id_held_data;
	/* Priority mode: the loop's latest measurement (zk_election_set_facts) and the last
	 * round's candidates, ranked, for /.status (zk_election_scores). */
	struct kvfs_score_measured measured;
	bool have_measured;
	struct kvfs_zk_score scores[MAX_CANDIDATES];
	size_t nscores;

	/* election thread only */
	uint64_t rejoin_after_ms; /* after resigning, stand again only from then */
	char guid[KVFS_GUID_LEN + 1];
	bool have_znode;
	char my_name[KVFS_GUID_LEN + 32];
	bool member_registered;
	bool node_marked; /* /nodes/<id> exists: this id may hold data from now on */
	uint64_t better_since_ms; /* the top candidate has beaten this leader since; 0 not now */
	uint32_t challenger;      /* ... that candidate's id */
	char challenge_why[96];   /* ... and how (election_challenged) */
	uint64_t led_since_ms;    /* this node took /leader in this term then; 0 not leading */
	char zone[KVFS_ZONE_MAX]; /* cfg.zone points here */
	struct kvfs_score_pub pub; /* the facts as published (score_publish) */
	bool pub_dirty;            /* ... not yet written to the candidate znode */
	char facts_logged[96];     /* the gates last logged at info (zk_score.c) ... */
	uint32_t facts_logged_b;   /* ... and the RTT bucket */
	struct kvfs_zk_score ranked[MAX_CANDIDATES]; /* zk_score_keep's scratch */
	uint64_t bad_addr_warned_ms; /* the last warning about an unusable address in a znode */
	unsigned bad_addrs;          /* such addresses not warned about since */
	uint64_t config_written;     /* the highest configuration index /config holds */
	bool not_member_said;        /* "node 4 is not a member ..." was logged */
	/* zk_locks.c: the ids whose /members znode exists, listed while this node leads */
	bool live_known;             /* protected by lock */
	uint8_t live[MAX_IDS / 8];   /* protected by lock */
	uint64_t live_seq;           /* listings so far; protected by lock */
	bool was_member;             /* the configuration held this node at some point */
};

/* Milliseconds on CLOCK_BOOTTIME. */
static inline uint64_t now_ms(void)
{
	struct timespec ts;

	/* BOOTTIME goes on during a suspend, as ZooKeeper's clock does: a lease must not. */
	clock_gettime(CLOCK_BOOTTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* The ACL for a znode this node creates: /kvfs is shared (root), the rest is the cluster's. */
static inline const struct ACL_vector *acl_of(const struct kvfs_zk *z, bool root)
{
	if (!z->auth)
		return &ZOO_OPEN_ACL_UNSAFE;
	return root ? &z->root_acl : &ZOO_CREATOR_ALL_ACL;
}

/* buf = "/kvfs/<cluster>/<rel>" (z->base and rel). */
static inline void path_of(const struct kvfs_zk *z, char *buf, size_t size, const char *rel)
{
	snprintf(buf, size, "%s/%s", z->base, rel);
}

/* What /leader says, as zk_znodes_read_leader() found it. */
struct leader_info {
	bool exists;
	bool mine;
	uint32_t id;
	char addr[KVFS_ADDR_MAX];
	uint64_t epoch;
	int version;
};

/* ---- the session (zk_session.c) ---- */

/* A negative errno for a ZooKeeper return code. */
int zk_session_errno(int rc);

/* The session id recorded in path by an earlier run of this node, or 0. */
int64_t zk_session_file_read(const char *path);

/* Records the current session id (best effort: without it a restart waits for the old session
 * to time out instead of removing its znodes). */
void zk_session_file_write(const char *path, int64_t id);

/* Calls the loop's notify hook (zk_election_start), if it is set: the view may have changed. */
void zk_session_wake(struct kvfs_zk *z);

/* zk_locks.c: one election round's listing of /members (with a watch) while leading; when not
 * leading, forgets the last one. */
void zk_locks_round(struct kvfs_zk *z, bool leading);

/*
 * The one watcher, for session events and every watch set. It runs on the client's thread: it
 * records and wakes, nothing more.
 */
void zk_session_watcher(zhandle_t *zh, int type, int state, const char *path, void *ctx);

/* True (lock held) once the handle may be used: connected, and its credentials (if any)
 * accepted. */
bool zk_session_ready(const struct kvfs_zk *z);

/* True (lock held) when ZooKeeper refused the credentials: this handle will never be ready. */
bool zk_session_auth_refused(const struct kvfs_zk *z);

/* Waits (lock held) until the session is connected and authenticated (zk_session_ready()), or
 * refused, or until deadline; true if ready. */
bool zk_session_wait(struct kvfs_zk *z, uint64_t deadline);

/*
 * A new handle (called with z->lock held), given the credentials at once if there are any.
 * NULL when the client cannot make one.
 */
zhandle_t *zk_session_connect(struct kvfs_zk *z);

/*
 * The first connection, at open: silences the client's own log, makes z->zh and waits until
 * deadline for it to be ready. Returns 0; or -EACCES (the credentials were refused) or
 * -ETIMEDOUT, with a message in err. On error z->zh may be set: the caller closes it.
 */
int zk_session_open(struct kvfs_zk *z, uint64_t deadline, char *err, size_t errlen);

/* ---- the cluster's znodes at open (zk_setup.c) ---- */

/*
 * Makes the cluster's tree exist, reads (or creates) /config and checks it, tightening open znodes
 * with credentials; a connection lost or a request timed out is tried again on the next
 * connection until deadline. Returns 0 and the cluster id in cluster_id, or a negative errno with
 * a message in err (as zk_election_open).
 */
int zk_setup_open(struct kvfs_zk *z, uint64_t deadline, char *cluster_id, char *err, size_t errlen);

/* Unusable addresses in znodes are warned about at most this often. */
#define BAD_ADDR_WARN_EVERY_MS 10000u

/* ---- one round's requests (zk_znodes.c); election thread only ---- */

/*
 * Registers /members/<id> (ephemeral): the lock on this node's id. Returns true once registered;
 * false to try again next round, or after zk_election_set_fatal() when another process holds it.
 */
bool zk_znodes_register_member(struct kvfs_zk *z);

/*
 * Creates /nodes/<id> (persistent) if it is missing: from now on this id may hold data, and a
 * start with an empty data directory rejoins (zk_setup.c). Made before the first round publishes a
 * leader, so before this node can acknowledge anything. Returns true once it exists.
 */
bool zk_znodes_mark_node(struct kvfs_zk *z);

/* Creates this node's candidate znode election/<guid>-n_ (ephemeral, sequential). Returns 0 or a
 * negative errno. */
int zk_znodes_create_candidate(struct kvfs_zk *z, int64_t session);

/*
 * Reads the live candidates into c (at most MAX_CANDIDATES), watching the election if `watch`.
 * Sets *mine to this node's index or -1. Returns 0 or a negative errno.
 */
int zk_znodes_read_candidates(struct kvfs_zk *z, bool watch, struct kvfs_candidate *c, size_t *n,
                              int *mine);

/* Reads /leader into l and watches it. Returns 0, -EAGAIN (read again now) or a negative errno. */
int zk_znodes_read_leader(struct kvfs_zk *z, int64_t session, struct leader_info *l);

/* Takes leadership in one multi. Returns the new epoch, or 0 if another step must come first. */
uint64_t zk_znodes_take_leadership(struct kvfs_zk *z, bool retake, int leader_version);

/* Confirms, through the ZooKeeper leader, that this session is alive. */
bool zk_znodes_confirm_session(struct kvfs_zk *z);

/* Election thread: the replication addresses of the configuration's members without a
 * candidacy among c[0..n) (observers), from /members/<id> ("addr=HOST:PORT ..."), into
 * z->addrs: those not known yet at every call, all of them every few seconds. */
void zk_znodes_read_member_addrs(struct kvfs_zk *z, const struct kvfs_candidate *c, size_t n,
                                 uint64_t now);

/* ---- the score, priority mode (zk_score.c); election thread only unless said ---- */

/* At open: copies cfg.zone, clears the facts, formats cand_data. */
void zk_score_init(struct kvfs_zk *z);

/* cand_data from the id, address, priority and the published facts (election_format_candidate). */
void zk_score_format(struct kvfs_zk *z);

/* Folds the loop's latest measurement into the facts (score_publish) and writes them to this
 * node's candidate znode when they changed (or an earlier write failed). */
void zk_score_publish(struct kvfs_zk *z, uint64_t now);

/* This node's candidate znode was just made from cand_data: nothing left to write. */
void zk_score_created(struct kvfs_zk *z);

/* On the leader: whether candidate `top` beats it now (election_challenged), counting how long
 * this has held into v->better_waited_ms and logging when a challenge starts or ends early. */
void zk_score_challenge(struct kvfs_zk *z, struct kvfs_election_view *v, int top, uint64_t now);

/* The log line of a handover (rv: what deleting /leader gave); ends the challenge. */
void zk_score_log_handover(struct kvfs_zk *z, const struct kvfs_election_view *v,
                           const struct kvfs_election_decision *d, uint64_t epoch, uint64_t now,
                           int rv);

/* Keeps the round's candidates, ranked (score_cmp), for zk_election_scores. */
void zk_score_keep(struct kvfs_zk *z, const struct kvfs_election_view *v, int top,
                   const struct leader_info *l);

/* ---- membership requests (zk_requests.c); election thread only ---- */

/*
 * One round's membership work: writes the results the loop reported; on the leader (leading),
 * finds the oldest pending request (or an auto-join of an observer) for
 * zk_election_next_request and rewrites /config after a committed change; on a node that is not
 * a member, says so once.
 */
void zk_requests_round(struct kvfs_zk *z, bool leading);

/* ---- the election (zk_election.c) ---- */

/* Writes a new random guid (KVFS_GUID_LEN hex digits and a NUL) to out. */
void zk_election_new_guid(char *out);

/* Records a reason this node must stop (the first one wins; zk_election_fatal), logs it and
 * wakes the loop. */
void zk_election_set_fatal(struct kvfs_zk *z, const char *msg);

#endif /* KVFS_REPLICA_ZK_INTERNAL_H */
