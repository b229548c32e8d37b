/*
 * The peer transport: a full mesh of TCP connections between a cluster's nodes, on one libuv
 * loop, carrying the frames of frame.h and the messages of peer_msg.h.
 *
 * Who dials whom. Every node dials every peer whose address it knows (peer_set_addr()) and with
 * which it has no connection, and accepts connections from any peer; so a node whose peer dies
 * notices on its own that the peer's port refuses connections (peer_refused(), for fast
 * failover), whatever the two ids. When both dial at once, two connections complete; the one
 * dialed by the lower id is kept, and a later connection dialed by the same side as the current
 * one replaces it (the peer evidently gave the old one up). Both ends apply the same rule, so they
 * keep the same connection. A failed dial or a lost connection is retried after 50 ms, doubling
 * to 500 ms, reset once a connection completes; the higher id of a pair waits 50 ms more (and does
 * not dial at once on peer_set_addr()), so that the lower id's dial usually wins the race and no
 * duplicate is made.
 *
 * Handshake. With cluster keys (the default: --secret-file), a connection first runs the mutual
 * handshake of peer_sec.h, in which each side proves it holds a key of the cluster and which node
 * it is, before either sends anything else; from then on every frame travels sealed. A
 * connection that fails it is closed with one warning (summed up when strangers keep trying); a
 * dial that failed it is retried no sooner than PEER_BACKOFF_AUTH_MS. A node without keys
 * (--insecure) treats a peer that opens with the handshake the same way, saying that the two
 * disagree on --secret-file/--insecure, and sums up the warnings about any other stranger whose
 * bytes are refused before its HELLO. At most PEER_MAX_UNPROVEN
 * inbound connections may be before their HELLO at once; more are closed as soon as accepted.
 * Then each side sends a HELLO (cluster id, node id, epoch). Until the peer's HELLO
 * has arrived and passed peer_msg_hello_check() (same cluster, id in 1..size and not ours, same
 * protocol version; the id we dialed, on a connection we dialed; the id the handshake proved),
 * frames are limited to a few KiB and any other type closes the connection, with a warning that
 * says why. A second connection for a peer whose connection is alive (it has received within
 * half the idle timeout) and was dialed by the same side is refused rather than replacing it: two
 * nodes claiming one id cannot make the mesh flap.
 *
 * Liveness. A partition drops packets silently: TCP alone would keep such a connection for
 * minutes, and a dial into it hangs on SYN retransmissions. So a connection over which nothing
 * has arrived for idle_timeout_ms (1 s) is closed, and one that has not completed its handshake
 * within half of that (a dial included) too; to keep a quiet but healthy connection alive, each
 * side sends a PING frame (empty, consumed here, never delivered) when it has sent nothing for a
 * quarter of idle_timeout_ms and has nothing queued. TCP_USER_TIMEOUT is idle_timeout_ms as well,
 * so data left unacknowledged that long fails the connection in the kernel too. A loop that was
 * itself stalled (a stopped process, a long synchronous step) does not blame its peers for the
 * silence: when the mesh's timer runs late, every connection gets a fresh idle_timeout_ms.
 *
 * Backpressure. Each connection's unwritten bytes are bounded (max_queue, 64 MiB): a send that
 * would pass the bound closes the connection and drops its queue, so a slow or dead follower
 * cannot make the leader run out of memory; the replication core resends after the reconnection.
 * Messages are delivered in order per pair of nodes over one connection; across a reconnection
 * (on_state() false, then true) some may have been lost, never reordered.
 *
 * Addresses are HOST:PORT as hostport.h reads them: a host name, an IPv4 address or a bracketed
 * IPv6 one ("kvfs2:7000", "10.0.0.2:7000", "[::1]:7000"). The listening address is resolved once,
 * in peer_open() (blocking); a peer's address is resolved again at every dial attempt, a name
 * with uv_getaddrinfo() on libuv's thread pool, and the addresses it yields are dialed one after
 * the other, in order, until one connects (one that does not answer costs half of
 * idle_timeout_ms). A peer counts as refused (peer_refused()) when every address of the last
 * attempt refused. A name that does not resolve is warned about once and retried at each redial.
 * Everything runs on the loop's thread; nothing here is thread-safe.
 *
 * Testing. test_delay_file (kvfs --test-peer-delay, only with KVFS_TEST_HOOKS=1) makes a slow
 * link without root or tc: every message sent with peer_send() is held DELAY_MS ± a uniform
 * JITTER_MS, read from the file ("DELAY_MS JITTER_MS", 0..10000 each; missing or empty: no
 * delay), in order per peer, then sent; the file is re-read when it changes (looked at every
 * 100 ms at most). Only what this node sends is delayed, so a delay on one node slows every round
 * trip through it. Held messages count in peer_queued() and max_queue; a connection lost drops
 * those held for its peer (peer_delay_uv.c).
 */
#ifndef KVFS_PEER_H
#define KVFS_PEER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct uv_loop_s;
struct kvfs_peers;
struct kvfs_sec_keys;

#define KVFS_PEERS_MAX_QUEUE_DEFAULT (64u << 20)
#define KVFS_PEERS_IDLE_TIMEOUT_MS   1000u
#define KVFS_PEERS_MAX_SIZE          255u /* nodes in a cluster */

/*
 * A message from peer `from` (after its HELLO). payload (NULL when len is 0) is valid until the
 * callback returns. The callback may call any peer_* function, peer_close() included.
 */
typedef void (*kvfs_peers_message_fn)(void *arg, uint32_t from, uint8_t type,
                                      const uint8_t *payload, uint32_t len);

/*
 * Peer `id` became reachable (a connection completed its handshake) or unreachable (it was
 * lost, closed by a timeout or a full queue, or replaced: false then true). Calls alternate per
 * peer, starting with true. Never called from inside peer_send(); never after peer_close().
 */
typedef void (*kvfs_peers_state_fn)(void *arg, uint32_t id, bool connected);

struct kvfs_peers_config {
	uint32_t id;              /* this node, 1..size */
	/* The highest node id accepted, 1..KVFS_PEERS_MAX_SIZE (the node passes the maximum: which
	 * ids are members changes at runtime, and the replication core ignores non-members; the
	 * transport dials the peers it is given an address for, peer_set_addr()). */
	uint32_t size;
	const char *cluster_id;   /* hex, as in HELLO; copied */
	const char *listen;       /* "HOST:PORT" (a name too); port 0 takes a free one (peer_port()) */
	uint64_t epoch;           /* sent in HELLO; see peer_set_epoch() */
	size_t max_queue;         /* unwritten bytes per connection; 0: 64 MiB */
	uint32_t idle_timeout_ms; /* close a connection silent this long; 0: 1 s (see above) */
	/* The cluster keys (copied): every connection starts with the handshake of peer_sec.h and
	 * then carries sealed records. NULL: bare frames, no authentication (--insecure). */
	const struct kvfs_sec_keys *keys;
	/* Testing only (see above): the link delay's file; NULL: no delay, no cost. Copied. */
	const char *test_delay_file;
	kvfs_peers_message_fn on_message;
	kvfs_peers_state_fn on_state; /* may be NULL */
	void *arg;                    /* passed to both callbacks */
};

/*
 * Starts listening on cfg->listen. Returns 0 and sets *out; or -EINVAL (bad configuration or
 * address), -ENOENT (the name does not resolve), -EADDRINUSE, -EACCES, -EADDRNOTAVAIL (not an
 * address of this machine), -ENOMEM ... and nothing was started and no
 * callback will ever be called. Close with peer_close().
 */
int peer_open(struct kvfs_peers **out, struct uv_loop_s *loop, const struct kvfs_peers_config *cfg);

/* The port the node listens on (useful after asking for port 0). */
int peer_port(const struct kvfs_peers *p);

/*
 * Peer `id` listens at addr ("HOST:PORT", copied); the transport dials it now unless already
 * connected, and keeps reconnecting, resolving a name again at every attempt. A new address ends
 * an attempt in progress for the old one (an established connection stays); the same address
 * again changes nothing. NULL forgets the address: no more dials (connections stay). An id out
 * of range or our own is logged and ignored; so is an address that hostport_parse() refuses
 * (port 0 included), at most one line per PEER_WARN_EVERY_MS with the strangers' warnings.
 */
void peer_set_addr(struct kvfs_peers *p, uint32_t id, const char *addr);

/* Whether the last dial to peer `id` was refused (ECONNREFUSED: nothing listens there). */
bool peer_refused(const struct kvfs_peers *p, uint32_t id);

/* Whether peer `id` has a connection that completed its handshake. */
bool peer_connected(const struct kvfs_peers *p, uint32_t id);

/* Bytes queued to peer `id` and not yet handed to the kernel (0 when not connected). */
size_t peer_queued(const struct kvfs_peers *p, uint32_t id);

/* The epoch put in HELLOs sent from now on. */
void peer_set_epoch(struct kvfs_peers *p, uint64_t epoch);

/*
 * Frames the len bytes at payload (copied; NULL if len is 0) as a message of this type and
 * queues it to peer `to`. Returns 0; -EINVAL (to out of range or our own, or type HELLO);
 * -EMSGSIZE (len above KVFS_FRAME_MAX_PAYLOAD); -ENOTCONN (no connection with a completed
 * handshake); -ENOMEM; or -ENOBUFS: the queue would pass max_queue, so the connection was closed
 * and its queue dropped (on_state(to, false) follows, later, from the loop).
 */
int peer_send(struct kvfs_peers *p, uint32_t to, uint8_t type, const uint8_t *payload,
              uint32_t len);

/*
 * Closes every connection, timer and the listener; once libuv has closed them all, frees p and
 * calls cb(arg) (cb may be NULL). No on_message/on_state after this call. Queued messages are
 * dropped.
 */
void peer_close(struct kvfs_peers *p, void (*cb)(void *arg), void *arg);

#endif /* KVFS_PEER_H */
