/*
 * Status rendering: the facts a node shows in /.status (key: value lines, in the order DESIGN §1
 * fixes) and /.status.json (one JSON object with the same facts, peers as an array).
 *
 * Pure: the caller gathers the facts into struct kvfs_status; this module only formats them.
 */
#ifndef KVFS_STATUS_H
#define KVFS_STATUS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define KVFS_STATUS_MAX_PEERS 64 /* KVFS_CONFIG_MAX */

struct kvfs_status_peer {
	uint32_t id;
	char addr[64];
	const char *role; /* "leader", "follower", "observer", "down" */
	uint64_t match;
	uint64_t lag_entries;
	uint64_t lag_ms;
	bool lag_unknown; /* shown as -1: this node cannot know its lag yet */
};

struct kvfs_status_member {
	uint32_t id;
	bool measured;      /* false: no round trip yet */
	uint64_t srtt_us;
	uint64_t rttvar_us;
	uint64_t heard_ms_ago; /* UINT64_MAX never */
};

struct kvfs_status_score {
	uint32_t id;
	unsigned rank; /* 1 = should lead */
	bool eligible;
	char why[48];  /* why not eligible */
	uint32_t priority;
	uint64_t quorum_rtt_us; /* UINT64_MAX unknown */
	uint32_t rtt_b;
	uint32_t lag_b;
	char zone[32];
	bool leader;
	uint64_t beats_leader_ms; /* a challenger, on the leader: beaten it this long; 0 not */
};

struct kvfs_status {
	uint32_t node;
	const char *role; /* "leader" | "follower" | "candidate" | "observer" | "standalone" */
	uint32_t leader;  /* 0 = none */
	char leader_addr[64];
	uint64_t epoch;
	const char *zk;       /* "connected" | "connecting" | "expired" | "none" */
	const char *election; /* "sequential" | "priority" */
	uint32_t priority;
	uint64_t commit_index;
	uint64_t applied_index;
	uint64_t lag_entries;
	uint64_t lag_ms;
	/* Since its start, this node has not yet heard its leader's commit index and applied up to
	 * it: it cannot tell how far behind it is. lag_entries and lag_ms show -1,
	 * `catching_up: yes` says so, and reads wait. */
	bool catching_up;
	/* This node cannot tell its lag now (it has not heard its leader for a moment, or no
	 * leader is established): lag_entries and lag_ms show -1, reads are served as usual. */
	bool lag_unknown;
	/* How peers are protected: "encrypted", "insecure" (--insecure) or "none" (standalone). */
	const char *peer_security;
	/* How this node authenticates to ZooKeeper: "digest" (--zk-auth-file) or "none". */
	const char *zk_auth;
	/* Facts beyond the contract's minimum, shown after it. */
	uint64_t keys;        /* linked inodes, root excluded */
	uint64_t value_bytes; /* bytes of all file values */
	uint64_t log_bytes;
	uint64_t snapshot_index;
	/* This node's data directory was lost and it has not caught up since: it takes no part in
	 * elections yet (`rejoining: yes`). */
	bool rejoining;
	/* This node can serve writes now (computed by the node: an established leader hearing a
	 * majority, or a follower hearing its leader, caught up, with a live ZooKeeper session);
	 * shown after everything above, so the documented order stays. */
	bool writable;
	const char *writable_reason; /* why not ("no majority" ...); NULL when writable */
	unsigned npeers;
	struct kvfs_status_peer peers[KVFS_STATUS_MAX_PEERS];
	/* The leader score (priority mode, score.h), shown after the peer lines: this node's quorum
	 * RTT, its own RTT to each member ("member:" lines), and each candidate's score as the last
	 * election round saw it ("score:" lines). Absent when nmembers / nscores are 0. */
	bool has_quorum_rtt;
	uint64_t quorum_rtt_us; /* UINT64_MAX: unknown */
	/* Membership (config.h), after quorum_rtt_ms: this node's role in the configuration in
	 * force ("voter" | "observer" | "none"; NULL: no line, standalone), the index of its CONFIG
	 * entry (0: the bootstrap or a snapshot's), its voters and observers ("1,2,3"; "" shows
	 * as none). */
	const char *member_role;
	uint64_t config_index;
	char voters[256 * 4];
	char observers[256 * 4];
	unsigned nmembers;
	struct kvfs_status_member members[KVFS_STATUS_MAX_PEERS];
	unsigned nscores;
	struct kvfs_status_score scores[KVFS_STATUS_MAX_PEERS];
	/* The change feed (changes.h), shown last: the oldest index a reader may start from and
	 * the last index applied here. Absent when has_changes is false. */
	bool has_changes;
	uint64_t changes_first;
	uint64_t changes_last;
};

/*
 * Renders st into buf (size bytes) as /.status text or as /.status.json. Returns the length the
 * full text has (like snprintf): if it is >= size the output was cut, and the caller should call
 * again with a larger buffer.
 */
size_t status_render_text(const struct kvfs_status *st, char *buf, size_t size);
size_t status_render_json(const struct kvfs_status *st, char *buf, size_t size);

#endif /* KVFS_STATUS_H */
