/*
 * Peer messages: the typed payloads that ride in peer frames (see frame.h), one frame each, the
 * frame's type saying which. Replicas speak them over TCP: a HELLO each way first (cluster id and
 * node id; another cluster's node is refused), then the replication protocol of DESIGN.md §4.
 *
 * Bodies are little-endian, fields in the order of the structs below; "bytes" is a u32 length and
 * that many bytes, a flag (ok, last) one byte that must be 0 or 1. Each type has an encoder, which
 * cannot fail and returns the bytes it wrote into a buffer the caller sized (KVFS_PEER_*_SIZE or
 * peer_msg_*_size()), and a decoder, which checks every length against what is left before it
 * reads, refuses trailing bytes and values no sender writes, and never allocates: pointers in
 * what it fills borrow from the decoded payload, which must outlive them. A decoder returns 0, or
 * -EBADMSG (the struct's contents are then unspecified), after which the connection is to be
 * dropped. Pure C: no libuv, no sockets.
 */
#ifndef KVFS_PEER_MSG_H
#define KVFS_PEER_MSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define KVFS_PEER_PROTOCOL_VERSION 4u
#define KVFS_PEER_CLUSTER_ID_MAX   64u /* hex characters */

/* Frame types. Values are on the wire: never renumber, only add. */
enum kvfs_peer_msg_type {
	KVFS_MSG_HELLO = 1,         /* both ways, first: who is speaking */
	KVFS_MSG_NEW_EPOCH = 2,     /* new leader -> all: promise me this epoch */
	KVFS_MSG_EPOCH_ACK = 3,     /* -> new leader: promised (or not), and my last entry */
	KVFS_MSG_APPEND = 4,        /* leader -> follower: entries after (prev_epoch, prev_index) */
	KVFS_MSG_APPEND_ACK = 5,    /* follower -> leader: durable up to match_index (or not) */
	KVFS_MSG_FORWARD = 6,       /* follower -> leader: propose this op for me */
	KVFS_MSG_FORWARD_REPLY = 7, /* leader -> follower: its outcome */
	KVFS_MSG_READ_INDEX = 8,    /* follower -> leader: what must I apply to read? */
	KVFS_MSG_READ_INDEX_REPLY = 9, /* leader -> follower: this commit index, at this epoch */
	KVFS_MSG_SNAPSHOT_CHUNK = 10,  /* leader -> follower: a piece of a snapshot file */
	KVFS_MSG_SNAPSHOT_ACK = 11,    /* follower -> leader: have it up to offset (or not) */
	KVFS_MSG_FETCH = 12,       /* new leader -> a follower: send me your entries from here */
	KVFS_MSG_FETCH_REPLY = 13, /* -> new leader: these entries (or not) */
	KVFS_MSG_PEER_STATUS = 14, /* leader -> followers: every replica's match and lag */
	KVFS_MSG_SNAPSHOT_PULL = 15, /* candidate -> a peer: send me your newest snapshot */
	KVFS_MSG_RTT_PING = 16,      /* any -> any: measure the round trip (answered at once) */
	KVFS_MSG_RTT_PONG = 17,      /* the answer, echoing the ping */
	KVFS_MSG__COUNT
};

/*
 * A frame of the transport itself (peer.h), not a message: empty, sent both ways when nothing
 * else was sent for a while, consumed by the transport and never delivered. Outside the range of
 * messages above (which have bodies and decoders); a node that predates it ignores it as a type
 * it does not use.
 */
#define KVFS_MSG_PING 64u

/* A short lowercase name for a frame type ("hello", "append_ack" ...), "unknown" otherwise. */
const char *peer_msg_type_name(unsigned type);

/*
 * HELLO: u8 version  u8 id_len  cluster_id  u32 node_id  u64 epoch. The version comes first so
 * that any later layout can be told apart. The decoder requires 1..KVFS_PEER_CLUSTER_ID_MAX
 * characters of [0-9a-fA-F] and copies them (NUL-terminated) into cluster_id.
 */
struct kvfs_peer_hello {
	uint8_t version;                               /* KVFS_PEER_PROTOCOL_VERSION */
	char cluster_id[KVFS_PEER_CLUSTER_ID_MAX + 1]; /* NUL-terminated */
	uint32_t node_id;                              /* 1..cluster size */
	uint64_t epoch;                                /* the highest epoch the sender promised */
};

size_t peer_msg_hello_size(const struct kvfs_peer_hello *m);
size_t peer_msg_hello_encode(const struct kvfs_peer_hello *m, uint8_t *buf);
int peer_msg_hello_decode(struct kvfs_peer_hello *m, const uint8_t *buf, size_t len);

/*
 * Whether the peer that sent h may join this node's cluster (my_cluster, node ids
 * 1..cluster_size: the transport passes KVFS_PEERS_MAX_SIZE, since membership changes at runtime
 * and the replication core ignores non-members). Returns 0; -EPERM for a node of another cluster
 * ("node 4 belongs to cluster ab12..., not cd34... (this node's); refusing it: do two clusters
 * share ..."); -EINVAL for a node id outside 1..cluster_size; -EPROTO for another protocol version.
 * On error writes a one-line explanation naming the node and both values to err (errlen bytes; may
 * be NULL).
 */
int peer_msg_hello_check(const struct kvfs_peer_hello *h, const char *my_cluster,
                         uint32_t cluster_size, char *err, size_t errlen);

/* NEW_EPOCH: u64 epoch. */
#define KVFS_PEER_NEW_EPOCH_SIZE 8u
struct kvfs_peer_new_epoch {
	uint64_t epoch;
};

size_t peer_msg_new_epoch_encode(const struct kvfs_peer_new_epoch *m, uint8_t *buf);
int peer_msg_new_epoch_decode(struct kvfs_peer_new_epoch *m, const uint8_t *buf, size_t len);

/* EPOCH_ACK: u64 epoch  u64 last_epoch  u64 last_index  u8 ok  u64 cfg_index
 * 32 bytes voters  32 bytes members (protocol 3: the configuration at last_index, as id bitmaps,
 * bit id of byte id / 8; repl_wire.c checks what they say). */
#define KVFS_PEER_EPOCH_ACK_SIZE 97u
struct kvfs_peer_epoch_ack {
	uint64_t epoch;      /* ok: the epoch promised; otherwise the higher one already promised */
	uint64_t last_epoch; /* the sender's last log entry */
	uint64_t last_index;
	bool ok;
	uint64_t cfg_index; /* the entry that set the configuration below (0: before the log) */
	uint8_t voters[32]; /* the configuration at last_index */
	uint8_t members[32];
};

size_t peer_msg_epoch_ack_encode(const struct kvfs_peer_epoch_ack *m, uint8_t *buf);
int peer_msg_epoch_ack_decode(struct kvfs_peer_epoch_ack *m, const uint8_t *buf, size_t len);

/* One log entry in an APPEND or FETCH_REPLY: u64 epoch  u64 index  bytes (an encoded kvfs_op). */
struct kvfs_peer_entry {
	uint64_t epoch;
	uint64_t index;
	const uint8_t *data; /* NULL when len is 0 */
	uint32_t len;
};

/*
 * APPEND: u64 epoch  u64 prev_epoch  u64 prev_index  u64 commit_index  u32 n  n entries.
 * The decoder requires the entries' indices to run prev_index + 1, prev_index + 2 ... and their
 * epochs to be non-decreasing, at least prev_epoch and at most epoch.
 */
#define KVFS_PEER_APPEND_HEADER_SIZE 36u /* up to and including n */
#define KVFS_PEER_ENTRY_HEADER_SIZE  20u /* everything before an entry's data */
struct kvfs_peer_append {
	uint64_t epoch;      /* the leader's */
	uint64_t prev_epoch; /* the entry just before the first one carried; 0, 0: none */
	uint64_t prev_index;
	uint64_t commit_index; /* the leader's */
	uint32_t n_entries;
	const struct kvfs_peer_entry *entries;
};

size_t peer_msg_append_size(const struct kvfs_peer_append *m);
size_t peer_msg_append_encode(const struct kvfs_peer_append *m, uint8_t *buf);

/*
 * Checks that buf is a well-formed APPEND (as the decoder does) and sets *n to its number of
 * entries, so the caller can size the array for peer_msg_append_decode() from a count that the
 * payload's bytes vouch for. Returns 0 or -EBADMSG.
 */
int peer_msg_append_count(const uint8_t *buf, size_t len, uint32_t *n);

/*
 * Decodes an APPEND into *m, its entries into the caller's array of max; m->entries then points
 * to that array and the entries' data into buf. Returns 0; -EBADMSG if buf is malformed; -E2BIG
 * if it is well-formed but holds more than max entries (m->n_entries then says how many, and the
 * array's contents are unspecified).
 */
int peer_msg_append_decode(struct kvfs_peer_append *m, struct kvfs_peer_entry *entries,
                           uint32_t max, const uint8_t *buf, size_t len);

/* APPEND_ACK: u64 epoch  u8 ok  u64 match_index  u64 hint_index. */
#define KVFS_PEER_APPEND_ACK_SIZE 25u
struct kvfs_peer_append_ack {
	uint64_t epoch; /* ok: the leader's; otherwise the higher epoch the follower promised */
	bool ok;        /* false: prev entry not matched, or an older epoch */
	uint64_t match_index; /* ok: the follower holds the leader's log durably up to here */
	uint64_t hint_index; /* the follower's last index, so that the leader backs off in one go */
};

size_t peer_msg_append_ack_encode(const struct kvfs_peer_append_ack *m, uint8_t *buf);
int peer_msg_append_ack_decode(struct kvfs_peer_append_ack *m, const uint8_t *buf, size_t len);

/*
 * FETCH: u64 epoch  u64 from_index. A candidate that must adopt a more up-to-date log asks the
 * follower holding it for its entries from from_index on.
 */
#define KVFS_PEER_FETCH_SIZE 16u
struct kvfs_peer_fetch {
	uint64_t epoch; /* the candidate's */
	uint64_t from_index;
};

size_t peer_msg_fetch_encode(const struct kvfs_peer_fetch *m, uint8_t *buf);
int peer_msg_fetch_decode(struct kvfs_peer_fetch *m, const uint8_t *buf, size_t len);

/*
 * FETCH_REPLY: u64 epoch  u8 ok  u64 from_index  u32 n  n entries (laid out as in an APPEND).
 * The decoder requires the entries' indices to run from_index, from_index + 1 ... (so from_index
 * is at least 1 when there are entries), their epochs to be non-decreasing and at most epoch, and
 * a refusal (ok false) to carry no entries.
 */
#define KVFS_PEER_FETCH_REPLY_HEADER_SIZE 21u /* up to and including n */
struct kvfs_peer_fetch_reply {
	uint64_t epoch; /* ok: the candidate's; otherwise the higher epoch the sender promised */
	bool ok;
	uint64_t from_index; /* the first entry carried (the FETCH's, 0 read as 1) */
	uint32_t n_entries;  /* 0 with ok: the sender has nothing from from_index on */
	const struct kvfs_peer_entry *entries;
};

size_t peer_msg_fetch_reply_size(const struct kvfs_peer_fetch_reply *m);
size_t peer_msg_fetch_reply_encode(const struct kvfs_peer_fetch_reply *m, uint8_t *buf);

/* As peer_msg_append_count(), for a FETCH_REPLY. Returns 0 or -EBADMSG. */
int peer_msg_fetch_reply_count(const uint8_t *buf, size_t len, uint32_t *n);

/* As peer_msg_append_decode(), for a FETCH_REPLY: 0, -EBADMSG or -E2BIG. */
int peer_msg_fetch_reply_decode(struct kvfs_peer_fetch_reply *m, struct kvfs_peer_entry *entries,
                                uint32_t max, const uint8_t *buf, size_t len);

/* FORWARD: u32 origin  u64 seq  bytes op (an encoded struct kvfs_op). */
struct kvfs_peer_forward {
	uint32_t origin; /* the follower that proposes */
	uint64_t seq;    /* its sequence number, echoed in the reply */
	const uint8_t *op;
	uint32_t op_len;
};

size_t peer_msg_forward_size(const struct kvfs_peer_forward *m);
size_t peer_msg_forward_encode(const struct kvfs_peer_forward *m, uint8_t *buf);
int peer_msg_forward_decode(struct kvfs_peer_forward *m, const uint8_t *buf, size_t len);

/* FORWARD_REPLY: u32 origin  u64 seq  i32 err  u64 ino. The decoder requires -4095 <= err <= 0. */
#define KVFS_PEER_FORWARD_REPLY_SIZE 24u
struct kvfs_peer_forward_reply {
	uint32_t origin;
	uint64_t seq;
	int32_t err;  /* 0 or a negative errno: the op's outcome once committed and applied */
	uint64_t ino; /* the inode it created, if any */
};

size_t peer_msg_forward_reply_encode(const struct kvfs_peer_forward_reply *m, uint8_t *buf);
int peer_msg_forward_reply_decode(struct kvfs_peer_forward_reply *m, const uint8_t *buf,
                                  size_t len);

/* READ_INDEX: u64 id. */
#define KVFS_PEER_READ_INDEX_SIZE 8u
struct kvfs_peer_read_index {
	uint64_t id; /* the asker's, echoed in the reply */
};

size_t peer_msg_read_index_encode(const struct kvfs_peer_read_index *m, uint8_t *buf);
int peer_msg_read_index_decode(struct kvfs_peer_read_index *m, const uint8_t *buf, size_t len);

/* READ_INDEX_REPLY: u64 id  u64 epoch  u64 commit_index  u8 ok. */
#define KVFS_PEER_READ_INDEX_REPLY_SIZE 25u
struct kvfs_peer_read_index_reply {
	uint64_t id;
	uint64_t epoch;        /* the leader's */
	uint64_t commit_index; /* ok: apply up to here, then read */
	bool ok;               /* false: not (or no longer) the leader */
};

size_t peer_msg_read_index_reply_encode(const struct kvfs_peer_read_index_reply *m, uint8_t *buf);
int peer_msg_read_index_reply_decode(struct kvfs_peer_read_index_reply *m, const uint8_t *buf,
                                     size_t len);

/*
 * SNAPSHOT_CHUNK: u64 epoch  u64 snap_index  u64 snap_epoch  u64 offset  u64 total  u8 last
 * bytes data. The decoder requires offset + len <= total, and last exactly when they are equal.
 */
#define KVFS_PEER_SNAPSHOT_CHUNK_HEADER_SIZE 45u /* everything before the data */
struct kvfs_peer_snapshot_chunk {
	uint64_t epoch;      /* the leader's */
	uint64_t snap_index; /* the snapshot's last applied entry */
	uint64_t snap_epoch;
	uint64_t offset; /* of data within the snapshot file */
	uint64_t total;  /* the snapshot file's size */
	bool last;
	const uint8_t *data; /* NULL when len is 0 */
	uint32_t len;
};

size_t peer_msg_snapshot_chunk_size(const struct kvfs_peer_snapshot_chunk *m);
size_t peer_msg_snapshot_chunk_encode(const struct kvfs_peer_snapshot_chunk *m, uint8_t *buf);
int peer_msg_snapshot_chunk_decode(struct kvfs_peer_snapshot_chunk *m, const uint8_t *buf,
                                   size_t len);

/* SNAPSHOT_ACK: u64 epoch  u64 snap_index  u64 offset  u8 ok. */
#define KVFS_PEER_SNAPSHOT_ACK_SIZE 25u
struct kvfs_peer_snapshot_ack {
	uint64_t epoch;
	uint64_t snap_index;
	uint64_t offset; /* ok: bytes received durably so far; the next chunk starts here */
	bool ok;         /* false: an older epoch, or a chunk out of order */
};

size_t peer_msg_snapshot_ack_encode(const struct kvfs_peer_snapshot_ack *m, uint8_t *buf);
int peer_msg_snapshot_ack_decode(struct kvfs_peer_snapshot_ack *m, const uint8_t *buf, size_t len);

/*
 * PEER_STATUS: u64 epoch  u64 commit_index  u32 count  count times (u32 id  u64 match
 * u64 lag_ms). The leader's view of its replicas, for the followers' /.status. The decoder
 * refuses a count above KVFS_PEER_STATUS_MAX or one the length does not hold.
 */
#define KVFS_PEER_STATUS_MAX 64u /* KVFS_CONFIG_MAX */
struct kvfs_peer_status_entry {
	uint32_t id;
	uint64_t match;
	uint64_t lag_ms;
};

struct kvfs_peer_status {
	uint64_t epoch;
	uint64_t commit_index;
	uint32_t count;
	struct kvfs_peer_status_entry peers[KVFS_PEER_STATUS_MAX];
};

size_t peer_msg_status_size(const struct kvfs_peer_status *m);
size_t peer_msg_status_encode(const struct kvfs_peer_status *m, uint8_t *buf);
int peer_msg_status_decode(struct kvfs_peer_status *m, const uint8_t *buf, size_t len);

/* SNAPSHOT_PULL: u64 epoch (the candidate's). */
#define KVFS_PEER_SNAPSHOT_PULL_SIZE 8u
struct kvfs_peer_snapshot_pull {
	uint64_t epoch;
};

size_t peer_msg_snapshot_pull_encode(const struct kvfs_peer_snapshot_pull *m, uint8_t *buf);
int peer_msg_snapshot_pull_decode(struct kvfs_peer_snapshot_pull *m, const uint8_t *buf,
                                  size_t len);

/*
 * RTT_PING and RTT_PONG: u64 nonce  u64 sent_us. The pong echoes the ping's body unchanged; the
 * pinger matches the nonce to one it sent and takes now - sent_us as the round trip (rtt.h). A
 * node that predates them ignores both (an unknown type), so its RTT stays unknown.
 */
#define KVFS_PEER_RTT_SIZE 16u
struct kvfs_peer_rtt {
	uint64_t nonce;
	uint64_t sent_us;
};

size_t peer_msg_rtt_encode(const struct kvfs_peer_rtt *m, uint8_t *buf);
int peer_msg_rtt_decode(struct kvfs_peer_rtt *m, const uint8_t *buf, size_t len);

#endif /* KVFS_PEER_MSG_H */
