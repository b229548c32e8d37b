/*
 * The peer transport's private state, shared by peer_uv.c (the mesh: the peers, dialing and
 * redialing, the duplicate rule, the idle timer, the interface of peer.h) and peer_conn_uv.c (one
 * connection's life: HELLO, reading frames, the write queue, closing). Nothing outside
 * replica/peer*.c includes it.
 *
 * A connection starts unattached: it sends our HELLO, and reads frames of at most
 * PEER_HELLO_MAX bytes until the peer's HELLO passes the checks; then it is attached to its peer
 * (peers[id].conn, at most one, the duplicate rule of peer.h deciding) and carries messages. A
 * connection is freed in its close callback only; libuv cancels its pending writes (freeing each
 * write request in its callback) before that. The struct kvfs_peers itself is freed once every
 * handle it owns has been closed and every connection freed.
 */
#ifndef KVFS_REPLICA_PEER_INTERNAL_H
#define KVFS_REPLICA_PEER_INTERNAL_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <uv.h>

#include "kvfs/frame.h"
#include "kvfs/hostport.h"
#include "kvfs/peer.h"
#include "kvfs/peer_msg.h"
#include "kvfs/peer_sec.h"
#include "peer_addr.h"

#define PEER_HELLO_MAX        4096u /* largest frame accepted before the peer's HELLO */
#define PEER_BACKOFF_FIRST_MS 50u
#define PEER_BACKOFF_MAX_MS   500u /* a healed partition is redialed within this (+ a dial) */
#define PEER_READ_BUF         (64u << 10)
/* Inbound connections still in their handshake; more are accepted and closed at once. */
#define PEER_MAX_UNPROVEN     64u
/* A dial that failed its handshake (another secret?) is not retried sooner than this. */
#define PEER_BACKOFF_AUTH_MS  2000u
/*
 * Frames queued on a connection during one turn of the loop go out together: one write and, when
 * sealed, one record, up to this many bytes of frames (a larger frame goes alone). Fewer records
 * and system calls per message under load; nothing waits longer than the rest of the loop's turn.
 */
#define PEER_COALESCE_MAX     (64u << 10)
#define PEER_PEND_FIRST       4096u /* a pending write's first allocation */
/* Addresses of a peer's name tried per dial attempt, in the resolver's order. */
#define PEER_MAX_ADDRS        8u
/* Repeated warnings about strangers are summed up at most this often. */
#define PEER_WARN_EVERY_MS    10000u

struct wreq;   /* a write request and its bytes (peer_conn_uv.c) */
struct lookup; /* a name lookup in flight (peer_dial_uv.c) */
struct peer_delay; /* the test-only link delay (peer_delay_uv.c) */

struct conn {
	uv_tcp_t tcp;
	uv_connect_t connect;
	struct kvfs_peers *p;
	struct conn *prev, *next; /* p->conns */
	struct kvfs_frame_reader reader;
	uint32_t id;   /* the peer dialed, or (inbound) the one its HELLO named; 0: not yet */
	bool outbound; /* we dialed it */
	bool hello_ok; /* the peer's HELLO passed the checks */
	bool closing;
	bool counted;  /* inbound and counted in p->unproven */
	bool connected; /* the TCP connection was made (peer_conn_start() ran) */
	bool refused;   /* our dial got ECONNREFUSED */
	/* Without cluster keys: the first bytes the peer sent, to tell a node that speaks the
	 * handshake (it has --secret-file) from garbage when its first frame is refused. */
	uint8_t head[8];
	uint8_t nhead;
	/* With cluster keys: the handshake while it runs (NULL before and after), then the
	 * sealed channel's two directions (peer_sec.h), and the id the handshake proved. */
	struct kvfs_handshake *hs;
	bool sealed;
	uint32_t proven_id;
	struct kvfs_sec_dir tx, rx;
	uint64_t started; /* uv_now() when the connection was made (dial or accept) */
	uint64_t last_rx; /* uv_now() of the last bytes received, or of the connection's start */
	uint64_t last_tx; /* uv_now() of the last frame queued */
	/* Frames queued since the last flush, not yet handed to libuv (peer_conn_write): one
	 * buffer, with room for a record's length before and its tag after when sealed. */
	struct wreq *pend;
	size_t pend_len;
	char remote[PEER_ADDR_STR];
};

struct peer {
	uv_timer_t redial;
	struct kvfs_peers *p;
	uint32_t id;
	bool has_addr;
	struct kvfs_hostport hp;           /* its address as advertised, parsed */
	char addr_str[KVFS_HOSTPORT_MAX]; /* ... and as a string (a name, in logs) */
	struct lookup *lookup; /* the dial attempt's lookup in flight, or NULL */
	/* The dial attempt's addresses (what the lookup found); the next to try is ai[next_ai].
	 * nai is 0 between attempts. */
	struct sockaddr_storage ai[PEER_MAX_ADDRS];
	unsigned nai, next_ai;
	bool attempt_refused; /* every address of the attempt so far refused the connection */
	bool resolve_failed;  /* the last lookup failed (warned once) */
	struct conn *conn;    /* the connection in use (handshake done); NULL: not connected */
	struct conn *dialing; /* our dial not yet through its handshake */
	uint32_t backoff_ms;  /* before the next redial */
	bool refused;         /* the last dial got ECONNREFUSED */
	bool reported_up;     /* the last on_state() said connected */
	bool auth_failed;     /* our last dial failed its handshake: redial slowly, warn once */
};

struct kvfs_peers {
	uv_loop_t *loop;
	struct kvfs_peers_config cfg;
	char cluster_id[KVFS_PEER_CLUSTER_ID_MAX + 1];
	uv_tcp_t listener;
	uv_timer_t tick;    /* liveness: pings, idle and handshake timeouts */
	uv_idle_t flush;    /* active while a connection has pending frames (peer_mark_pending) */
	uint64_t last_tick; /* uv_now() of the tick's last run */
	struct peer *peers; /* [1..size] */
	struct conn *conns; /* every connection not yet freed */
	int port;
	unsigned open_handles; /* listener, tick, redial timers not yet closed */
	unsigned lookups;      /* name lookups whose callback has not run yet */
	bool secure;           /* cluster keys given: every connection starts with a handshake */
	struct kvfs_sec_keys keys;
	unsigned unproven;       /* inbound connections before their HELLO */
	uint64_t warn_at;        /* uv_now() of the last warning about a stranger */
	unsigned warn_suppressed; /* warnings about strangers not logged since */
	bool closing;
	void (*close_cb)(void *arg);
	void *close_arg;
	struct peer_delay *delay; /* test_delay_file given; NULL: none (the usual case) */
	char rbuf[PEER_READ_BUF]; /* every read lands here and is fed to a reader at once */
};

/* ---- one connection (peer_conn_uv.c) ---- */

/*
 * Allocates an unattached connection with its TCP handle initialised, and links it into
 * p->conns. Returns NULL (nothing allocated, nothing to close) if out of memory or if libuv
 * refuses the handle.
 */
struct conn *peer_conn_new(struct kvfs_peers *p);

/* Once connected (dialed or accepted): sends our HELLO and starts reading. Closes c on error. */
void peer_conn_start(struct conn *c);

/*
 * Frames one message and appends it to c's pending write, which the mesh flushes before the
 * loop next waits (peer_mark_pending). Returns 0; -ENOBUFS if c's unwritten bytes would pass
 * max_queue (a frame alone may, when nothing is queued); -ENOMEM; or the error of flushing what
 * was pending to make room.
 */
int peer_conn_write(struct conn *c, uint8_t type, const uint8_t *payload, uint32_t len);

/*
 * Queues a message on c (attached to its peer) as peer_send() does once it has checked its
 * arguments: on -ENOBUFS or a write error c is closed (the report deferred). Returns as
 * peer_send().
 */
int peer_conn_send(struct conn *c, uint8_t type, const uint8_t *payload, uint32_t len);

/* c's queue would pass max_queue: warns, closes c (the report deferred), returns -ENOBUFS. */
int peer_conn_overflow(struct conn *c);

/* Hands c's pending frames to libuv, sealed in one record if c is sealed. 0 or an error (the
 * frames are dropped: close c). */
int peer_conn_flush(struct conn *c);

/* Drops c's pending frames (c is closing). */
void peer_conn_drop_pending(struct conn *c);

/* Bytes queued on c and not yet handed to the kernel: libuv's queue and the pending frames. */
size_t peer_conn_queued(const struct conn *c);

/*
 * Starts closing c (once): detaches it from its peer, reporting the peer down (now, or from the
 * close callback when called from peer_send()), and arms a redial. c is freed in its close
 * callback.
 */
void peer_conn_close_ex(struct conn *c, bool defer_report);

/* peer_conn_close_ex(c, false). */
void peer_conn_close(struct conn *c);

/* ---- the mesh (peer_uv.c), as a connection's life reaches it ---- */

/*
 * Makes c, whose HELLO passed, the connection to its peer, unless the peer already has one that
 * the duplicate rule prefers. Returns whether c was kept (otherwise it is closing).
 */
bool peer_attach(struct conn *c);

/*
 * Detaches c, which has just started closing, from its peer (if it has one): reports the peer
 * down unless defer_report, and arms a redial.
 */
void peer_detach(struct conn *c, bool defer_report);

/* Tells a "down" not yet told, if the peer is still without a connection. */
void peer_report_down(struct peer *pr);

/*
 * Logs a warning about a connection that is not a peer of ours (a wrong secret, a stranger), at
 * most one line per PEER_WARN_EVERY_MS, with a count of the lines left out since.
 */
void peer_warn_stranger(struct kvfs_peers *p, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* ---- dialing (peer_dial_uv.c) ---- */

/*
 * Starts a dial attempt to pr (known, unconnected, not being dialed): resolves its address
 * (a name off the loop), then dials the addresses found in order (peer_dial_failed() moves on).
 * A failure arms the redial timer, whose expiry starts the next attempt with a new lookup.
 */
void peer_dial(struct peer *pr);

/* Whether an attempt is under way: a lookup in flight or a dial not through its handshake. */
bool peer_dial_busy(const struct peer *pr);

/*
 * Our dial c of pr has just started closing (pr->dialing was c): if it never connected and the
 * attempt has addresses left, dials the next at once and returns true; otherwise ends the
 * attempt (pr->refused: every address refused) and returns false (the caller arms a redial).
 */
bool peer_dial_failed(struct peer *pr, const struct conn *c);

/* Arms the redial timer if pr is known, unconnected and no attempt is under way. */
void peer_schedule_redial(struct peer *pr);

/* Ends the attempt under way, if any: drops its lookup (cancelled if it has not started) and
 * closes its dial; stops the redial timer. */
void peer_dial_stop(struct peer *pr);

/* Some connection has pending frames: flush them before the loop next waits. */
void peer_mark_pending(struct kvfs_peers *p);

/* Frees p and calls peer_close()'s callback if p is closing and nothing it owns is left. */
void peer_finish_close(struct kvfs_peers *p);

/* ---- the test-only link delay (peer_delay_uv.c; peer.h, "Testing") ---- */

/* Allocates the delay's state for a mesh of size nodes reading file (copied); NULL: no memory. */
struct peer_delay *peer_delay_new(const char *file, uint32_t size);

/* Initialises its timer on p's loop (p->delay set, one more of p->open_handles) and reads the
 * file a first time. */
void peer_delay_start(struct kvfs_peers *p);

/*
 * peer_send() with p->delay set, c being peer `c->id`'s connection: holds the message for the
 * file's delay (or sends it at once when there is none and nothing is held for that peer).
 * Returns as peer_send().
 */
int peer_delay_send(struct kvfs_peers *p, struct conn *c, uint8_t type, const uint8_t *payload,
                    uint32_t len);

/* Bytes held for peer id. */
size_t peer_delay_queued(const struct kvfs_peers *p, uint32_t id);

/* Drops what is held for peer id (its connection went down). */
void peer_delay_drop(struct kvfs_peers *p, uint32_t id);

/* Drops everything held and closes the timer (peer_close()); cb is its close callback. */
void peer_delay_close(struct kvfs_peers *p, uv_close_cb cb);

/* Frees the state (NULL: nothing), after peer_delay_close()'s callback or if never started. */
void peer_delay_free(struct peer_delay *d);

#endif
