/*
 * Leader election, the pure part: what the candidates' znodes mean, who should lead, whom to
 * watch, and what this node should do next. The ZooKeeper binding (zk_election.c) gathers a view
 * of the election (the live candidates under /election with their data, /leader, this node's own
 * state) and asks election_decide() for one action; it never decides anything itself.
 *
 * Names and data (DESIGN §3):
 *   /election/<guid>-n_<10 digits>   data "id=N addr=HOST:PORT priority=P" and, from nodes
 *                                    that measure them, the score's facts (struct
 *                                    kvfs_score_facts; election_format_candidate)
 *   /leader                          data "id=N addr=HOST:PORT epoch=E"
 *   /config                          data "cluster_id=HEX size=N"
 *   /members/<id>                    data "addr=HOST:PORT priority=P"
 *
 * Ranking. Sequential mode: the lowest sequence number leads. Priority mode: the score decides
 * (score.h): eligible candidates first, then priority, preferred zone, quorum RTT bucket, lag
 * bucket, and the lowest sequence number last. In both modes a candidate with priority 0, or an
 * observer, never leads (it still replicates).
 *
 * Pure: no ZooKeeper header, no clock, no I/O. Times are given in milliseconds by the caller.
 */
#ifndef KVFS_ELECTION_H
#define KVFS_ELECTION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The largest epoch kvfs accepts from ZooKeeper (/epoch, /leader): far beyond any real count of
 * leader changes, far below where arithmetic on it could wrap. */
#define KVFS_EPOCH_MAX ((uint64_t)1 << 62)

#define KVFS_GUID_LEN 32 /* hex characters of a per-attempt guid */
#define KVFS_ADDR_MAX 64
#define KVFS_RTTVAR_MAX_US 60000000u /* a published rttvar_us above this is refused (rtt.h clamps
                                        samples to 60 s, so its RTTVAR stays below) */
#define KVFS_ZONE_MAX 32 /* a --zone label: 1..31 of [A-Za-z0-9._-], NUL-terminated */

/*
 * What a candidate publishes about itself for the score (priority mode), in its election znode's
 * data as "role=voter zone=a zpref=0 rtt_us=412 rtt_b=7 contact=1 caught_up=1 stable=1 lag_b=0".
 * Every key is optional when parsed: a candidate that published none (a node from before these
 * facts) has known == false and ranks as the worst eligible one would, behind every candidate
 * that published them, but it is still a candidate (priority and sequence still order it).
 */
struct kvfs_score_facts {
	bool known;     /* the candidate published facts at all */
	bool observer;  /* role=observer: never leads (always false until observers exist) */
	int8_t zpref;   /* +1: its zone is preferred (--prefer-zone), -1: avoided, 0: neither */
	char zone[KVFS_ZONE_MAX]; /* "" if none */
	uint64_t rtt_us; /* quorum RTT, smoothed (rtt.h), UINT64_MAX if unknown */
	uint32_t rtt_b;  /* its bucket (score_bucket), UINT32_MAX if unknown */
	uint64_t rttvar_us; /* the RTTVAR beside rtt_us (how much it varies), 0 if not published */
	bool contact;    /* heard a majority of the voters (itself included) within KVFS_CONTACT_MS */
	bool caught_up;  /* within KVFS_CAUGHT_UP_ENTRIES of the commit index it last heard, which
	                    it heard within KVFS_CAUGHT_UP_MS (the leader always is) */
	bool stable;     /* contact and caught_up have held continuously for the hold-down */
	uint32_t lag_b;  /* entries behind the commit index / KVFS_LAG_BUCKET, at most 255 */
};

enum kvfs_election_mode { KVFS_ELECTION_SEQUENTIAL, KVFS_ELECTION_PRIORITY };

struct kvfs_candidate {
	char name[KVFS_GUID_LEN + 32]; /* znode name under /election */
	char guid[KVFS_GUID_LEN + 1];
	uint64_t seq;
	uint32_t id;
	uint32_t priority;
	char addr[KVFS_ADDR_MAX];
	int64_t owner; /* the ZooKeeper session that owns the znode (ephemeralOwner) */
	struct kvfs_score_facts f;
};

/*
 * Parses an election child's name "<guid>-n_<10 digits>" (guid: 1..KVFS_GUID_LEN lowercase hex).
 * Returns 0 and fills c->name, c->guid and c->seq, or -EINVAL for any other name (such znodes are
 * not candidates and are ignored).
 */
int election_parse_name(const char *name, struct kvfs_candidate *c);

/*
 * Parses a candidate's data into c->id, c->addr, c->priority and c->f (the facts; each key
 * optional, but a key that is present must be valid, or the whole candidate is refused: it was
 * not written by kvfs). 0 or -EINVAL.
 */
int election_parse_candidate(const char *data, size_t len, struct kvfs_candidate *c);

/*
 * Writes a candidate's data, "id=N addr=A priority=P" followed by the facts if f->known, into buf
 * (size bytes, NUL-terminated). Returns the length, like snprintf; election_parse_candidate reads
 * back exactly what it wrote.
 */
size_t election_format_candidate(char *buf, size_t size, uint32_t id, const char *addr,
                                 uint32_t priority, const struct kvfs_score_facts *f);

/* Parses /leader's data. 0 or -EINVAL. addr has room for KVFS_ADDR_MAX bytes. */
int election_parse_leader(const char *data, size_t len, uint32_t *id, char *addr, uint64_t *epoch);

/*
 * Parses /epoch's data: only decimal digits, at most KVFS_EPOCH_MAX (anything else was not written
 * by kvfs; an absurd epoch must never become a durable promise). 0 or -EINVAL.
 */
int election_parse_epoch(const char *data, size_t len, uint64_t *epoch);

/* Parses /config's data. 0 or -EINVAL. cluster_id has room for 2 * KVFS_GUID_LEN + 1 bytes. */
int election_parse_config(const char *data, size_t len, char *cluster_id, uint32_t *size);

/*
 * The value of `key` in data made of space-separated key=value words, copied into out (size
 * bytes, NUL-terminated). 0, -ENOENT if the key is missing, -EINVAL if the value does not fit.
 */
int election_kv(const char *data, size_t len, const char *key, char *out, size_t size);

/*
 * Index of the candidate that should lead, or -1 if none may (none, or all priority 0 or
 * observers). Priority mode ranks by score_cmp (score.h).
 */
int election_rank(enum kvfs_election_mode mode, const struct kvfs_candidate *c, size_t n);

/* Sequential mode: the candidate just before seq (the highest sequence below it), or -1. */
int election_predecessor(const struct kvfs_candidate *c, size_t n, uint64_t seq);

/* What this node knows, for election_decide(). */
struct kvfs_election_view {
	enum kvfs_election_mode mode;
	const struct kvfs_candidate *cands; /* the live candidates, with their data */
	size_t n;
	int mine;              /* index of this node's own candidate in cands, -1 if it has none */
	bool leader_exists;    /* /leader exists */
	bool leader_mine;      /* ... and is owned by this node's session */
	bool leading;          /* this node acts as leader (it took /leader in this session and has
	                          not lost the connection since) */
	bool reconnected_late; /* the session survived an outage longer than its timeout (the
	                          whole ensemble was down): peers may have given up on us */
	bool successor_ready;  /* priority mode: the better candidate has caught up */
	/* Priority mode, on the leader: how long the top candidate has beaten this one
	 * continuously (election_challenged held at every round since), 0 if it does not now. */
	uint64_t better_waited_ms;
	uint64_t hold_down_ms;
	uint64_t led_ms;        /* how long this node has led in this term, 0 if it does not */
	uint64_t min_tenure_ms; /* a leader is not asked to hand over before this */
	uint32_t rtt_margin_pct; /* score_beats: an RTT challenger must be this much better */
};

enum kvfs_election_action {
	KVFS_ELECT_NONE,   /* nothing to do until the next event */
	KVFS_ELECT_REJOIN, /* this node has no candidate znode: create one (a new guid) */
	KVFS_ELECT_TAKE,   /* lead: one multi (check own znode, create /leader, bump /epoch) */
	KVFS_ELECT_RESUME, /* reconnected soon, same session, /leader still ours: lead again at the
	                      same epoch (no one else can have led meanwhile) */
	KVFS_ELECT_RETAKE, /* the same, after an outage longer than the session timeout: start a new
	                      term, replacing our /leader at a new epoch */
	KVFS_ELECT_WAIT,   /* this node should lead but another holds /leader: watch it */
	KVFS_ELECT_HAND_OVER, /* a better candidate waited out the hold-down: stop, delete /leader
	                       */
};

struct kvfs_election_decision {
	enum kvfs_election_action action;
	int top;   /* index of the candidate that should lead, -1 if none may */
	int watch; /* sequential mode: index of the candidate to watch for deletion, -1 if none */
};

/*
 * Priority mode, on the leader: whether candidate `top` (the one that ranks first) beats this
 * node (v->mine) by the score's margin now (score_beats). The binding counts how long this held
 * continuously and gives it as better_waited_ms. why (len bytes, may be NULL) gets a one-line
 * reason for the log: "priority 2 > 1", "quorum RTT 0.4 ms beats 41.2 ms by more than 20 %",
 * "node 1 is not eligible (no contact with a majority)".
 */
bool election_challenged(const struct kvfs_election_view *v, int top, char *why, size_t len);

/*
 * Decides what this node does next. Pure and total: every view has an answer. A leader hands
 * over at once for a hard reason (its priority is 0, it is an observer, it holds /leader but does
 * not act on it); for a better score only when the challenger has beaten it continuously for the
 * hold-down, it has led at least min_tenure_ms, and the challenger has caught up.
 */
void election_decide(const struct kvfs_election_view *v, struct kvfs_election_decision *d);

/* "leader", "follower" or "candidate", from the node's state. */
const char *election_role(bool leading, bool leader_known);

#endif /* KVFS_ELECTION_H */
