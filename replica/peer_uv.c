/*
 * The peer transport on libuv (see peer.h): the mesh. It owns one listening socket, one peer
 * record per node with its redial timer, and one timer that pings quiet connections and closes
 * silent ones (the liveness rules of peer.h); it starts dials (the lower id first, then with
 * backoff), accepts, and keeps at most one connection per peer by
 * the duplicate rule of peer.h, reporting each peer up or down. One connection's life (HELLO,
 * reading, the write queue, closing) is in peer_conn_uv.c, a dial attempt (resolving the peer's
 * name, trying its addresses, the redial timer) in peer_dial_uv.c, addresses and the listening
 * socket in peer_addr_uv.c; the state they share is described in peer_internal.h. The struct kvfs_peers is
 * freed once every handle it owns has been closed and every connection freed.
 */
#include "kvfs/peer.h"

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include "kvfs/frame.h"
#include "kvfs/hostport.h"
#include "kvfs/logging.h"
#include "kvfs/peer_msg.h"
#include "kvfs/peer_sec.h"
#include "peer_addr.h"
#include "peer_internal.h"

/* ---- state reports ---- */

static void report_up(struct peer *pr)
{
	struct kvfs_peers *p = pr->p;

	if (p->closing || p->cfg.on_state == NULL) {
		pr->reported_up = true;
		return;
	}
	if (pr->reported_up) /* a deferred "down" not yet told: tell it first */
		p->cfg.on_state(p->cfg.arg, pr->id, false);
	pr->reported_up = true;
	p->cfg.on_state(p->cfg.arg, pr->id, true);
}

/* Tells a "down" not yet told, if the peer is still without a connection. */
void peer_report_down(struct peer *pr)
{
	struct kvfs_peers *p = pr->p;

	if (!pr->reported_up || pr->conn != NULL)
		return;
	pr->reported_up = false;
	if (!p->closing && p->cfg.on_state != NULL)
		p->cfg.on_state(p->cfg.arg, pr->id, false);
}

/* ---- attaching and detaching connections (the duplicate rule) ---- */

/* See peer_internal.h. */
void peer_detach(struct conn *c, bool defer_report)
{
	struct peer *pr;

	if (c->id == 0)
		return;
	pr = &c->p->peers[c->id];
	if (pr->dialing == c) {
		pr->dialing = NULL;
		if (peer_dial_failed(pr, c))
			return; /* the attempt goes on with the name's next address */
	}
	if (pr->conn == c) {
		pr->conn = NULL;
		if (c->p->delay != NULL)
			peer_delay_drop(c->p, c->id);
		if (!defer_report)
			peer_report_down(pr);
	}
	peer_schedule_redial(pr);
}

/* Whether c was dialed by the lower of the two ids (the connection the duplicate rule keeps). */
static bool dialed_by_lower(const struct conn *c)
{
	return c->outbound == (c->p->cfg.id < c->id);
}

/*
 * Makes c, whose HELLO passed, the connection to its peer, unless the peer already has one that
 * the duplicate rule prefers. Returns whether c was kept (otherwise it is closing).
 */
bool peer_attach(struct conn *c)
{
	struct peer *pr = &c->p->peers[c->id];
	struct conn *old = pr->conn;

	if (pr->dialing == c)
		pr->dialing = NULL;
	if (old != NULL) {
		if (!dialed_by_lower(c) && dialed_by_lower(old)) {
			log_debug("node %" PRIu32
			          " has a connection already; closing the one from %s",
			          c->id, c->remote);
			peer_conn_close(c);
			return false;
		}
		if (dialed_by_lower(c) == dialed_by_lower(old) &&
		    uv_now(c->p->loop) - old->last_rx < c->p->cfg.idle_timeout_ms / 2) {
			peer_warn_stranger(c->p,
			                   "node %" PRIu32 " is connected (%s) and alive; refusing a "
			                   "second connection that says it is node %" PRIu32
			                   " from %s (are two nodes started with --id %" PRIu32 "?)",
			                   c->id, old->remote, c->id, c->remote, c->id);
			peer_conn_close(c);
			return false;
		}
		log_debug("node %" PRIu32 ": new connection %s replaces %s", c->id, c->remote,
		          old->remote);
		pr->conn = NULL;
		if (c->p->delay != NULL) /* held for the old connection: lost with it */
			peer_delay_drop(c->p, c->id);
		peer_report_down(pr);
		pr->conn = c;
		peer_conn_close(old);
	}
	pr->conn = c;
	/* Our own dial would lose to c when it completes: spare the peer a useless connection. */
	if (pr->dialing != NULL && dialed_by_lower(c) && !dialed_by_lower(pr->dialing))
		peer_conn_close(pr->dialing);
	pr->backoff_ms = PEER_BACKOFF_FIRST_MS;
	pr->refused = false;
	pr->auth_failed = false;
	pr->nai = 0; /* a dial attempt, if any, is over */
	uv_timer_stop(&pr->redial);
	frame_reader_set_max(&c->reader, KVFS_FRAME_MAX_PAYLOAD);
	log_info("connected to node %" PRIu32 " (%s, %s)", c->id, c->remote,
	         c->outbound ? "dialed" : "accepted");
	report_up(pr);
	return true;
}

/* ---- accepting ---- */

void peer_warn_stranger(struct kvfs_peers *p, const char *fmt, ...)
{
	uint64_t now = uv_now(p->loop);
	char line[512];
	va_list ap;

	if (p->warn_at != 0 && now - p->warn_at < PEER_WARN_EVERY_MS) {
		p->warn_suppressed++;
		return;
	}
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (p->warn_suppressed)
		log_warn("%s (and %u such warnings in the last %u s)", line, p->warn_suppressed,
		         PEER_WARN_EVERY_MS / 1000);
	else
		log_warn("%s", line);
	p->warn_at = now ? now : 1;
	p->warn_suppressed = 0;
}

/*
 * Makes room for one more inbound connection in its handshake, if PEER_MAX_UNPROVEN are: the
 * oldest goes. A peer's handshake takes a round trip, so a flood of strangers cannot keep a peer
 * out, only hold the ones that are slowest to prove themselves.
 */
static void evict_unproven(struct kvfs_peers *p)
{
	struct conn *c, *oldest = NULL;

	if (p->unproven < PEER_MAX_UNPROVEN)
		return;
	for (c = p->conns; c != NULL; c = c->next)
		if (c->counted && !c->closing && (oldest == NULL || c->started < oldest->started))
			oldest = c;
	if (oldest == NULL)
		return;
	peer_warn_stranger(p,
	                   "closing connection from %s: %u connections are in their handshake "
	                   "already (a flood of strangers?)",
	                   oldest->remote, PEER_MAX_UNPROVEN);
	peer_conn_close(oldest);
}

static void on_connection(uv_stream_t *server, int status)
{
	struct kvfs_peers *p = server->data;
	struct conn *c;

	if (status < 0) {
		log_warn("cannot accept a peer connection: %s", uv_strerror(status));
		return;
	}
	evict_unproven(p);
	c = peer_conn_new(p);
	if (c == NULL) {
		log_warn("cannot accept a peer connection: out of memory");
		return;
	}
	if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0) {
		peer_conn_close(c);
		return;
	}
	c->counted = true;
	p->unproven++;
	peer_conn_start(c);
}

/* ---- flushing what connections have pending ---- */

/*
 * Idle callback: runs once per turn of the loop while active, before the loop waits (an active
 * idle handle makes that wait not block), so frames queued anywhere in a turn go out in the
 * next at the latest, together.
 */
static void flush_cb(uv_idle_t *h)
{
	struct kvfs_peers *p = h->data;
	struct conn *c, *next;
	int rv;

	uv_idle_stop(&p->flush);
	for (c = p->conns; c != NULL; c = next) {
		next = c->next;
		if (c->closing || c->pend == NULL)
			continue;
		rv = peer_conn_flush(c);
		if (rv != 0) {
			log_warn("closing connection with node %" PRIu32 " (%s): %s", c->id,
			         c->remote, rv == -ENOMEM ? "out of memory" : uv_strerror(rv));
			peer_conn_close(c);
		}
	}
}

void peer_mark_pending(struct kvfs_peers *p)
{
	if (!p->closing && !uv_is_active((uv_handle_t *)&p->flush))
		uv_idle_start(&p->flush, flush_cb);
}

/* ---- the liveness timer ---- */

/* How often the liveness timer runs: twice per ping interval. */
static uint64_t tick_ms(const struct kvfs_peers *p)
{
	return p->cfg.idle_timeout_ms / 8 + 1;
}

/* One connection's liveness (see peer.h): a ping, or closing it. */
static void check_conn(struct conn *c, uint64_t now)
{
	struct kvfs_peers *p = c->p;
	uint32_t idle = p->cfg.idle_timeout_ms;
	int rv;

	if (!c->hello_ok) {
		/* Connecting or in the handshake: both take one or two round trips when the peer is
		 * reachable. A dial into a partition would otherwise wait for SYN retransmissions
		 * (1 s, 3 s, 7 s ...) and so notice a heal late. */
		if (now - c->started < idle / 2)
			return;
		if (c->outbound)
			log_debug("cannot connect to node %" PRIu32
			          " at %s: no hello within %" PRIu32 " ms",
			          c->id, c->remote, idle / 2);
		else
			peer_warn_stranger(p, "closing connection with %s: no hello within %" PRIu32
			                      " ms",
			                   c->remote, idle / 2);
		peer_conn_close(c);
		return;
	}
	if (now - c->last_rx >= idle) {
		log_warn("closing connection with node %" PRIu32
		         " (%s): nothing received for %" PRIu64 " ms",
		         c->id, c->remote, now - c->last_rx);
		peer_conn_close(c);
		return;
	}
	/* Only when nothing is queued: queued bytes reach a live peer anyway, and a peer that
	 * does not read would only see the pings pile up. */
	if (now - c->last_tx >= idle / 4 &&
	    peer_conn_queued(c) == 0) {
		rv = peer_conn_write(c, KVFS_MSG_PING, NULL, 0);
		if (rv != 0 && rv != -ENOMEM) {
			log_warn("closing connection with node %" PRIu32 " (%s): %s", c->id,
			         c->remote, rv == -ENOBUFS ? "write queue full" : uv_strerror(rv));
			peer_conn_close(c);
		}
	}
}

static void tick_cb(uv_timer_t *t)
{
	struct kvfs_peers *p = t->data;
	uint64_t now = uv_now(p->loop), late = now - p->last_tick;
	struct conn *c;

	p->last_tick = now;
	if (late > p->cfg.idle_timeout_ms / 2) {
		/* This loop did not run for a while (a stopped process, a long synchronous step):
		 * what the peers sent meanwhile is still unread in the sockets. Give every
		 * connection a fresh start rather than blame the peers for our own silence. */
		log_debug("the loop stalled for %" PRIu64
		          " ms: connections get a fresh idle timeout",
		          late);
		for (c = p->conns; c != NULL; c = c->next)
			c->started = c->last_rx = now;
		return;
	}
	for (c = p->conns; c != NULL && !p->closing; c = c->next)
		if (!c->closing)
			check_conn(c, now);
}

/* ---- opening and closing ---- */

/* See peer_internal.h. */
void peer_finish_close(struct kvfs_peers *p)
{
	void (*cb)(void *) = p->close_cb;
	void *arg = p->close_arg;

	if (!p->closing || p->open_handles > 0 || p->conns != NULL || p->lookups > 0)
		return;
	sec_keys_wipe(&p->keys);
	peer_delay_free(p->delay);
	free(p->peers);
	free(p);
	if (cb)
		cb(arg);
}

/* Close callbacks of the listener and tick timer (data: the mesh), and of a redial timer. */
static void mesh_handle_closed(struct kvfs_peers *p)
{
	assert(p->open_handles > 0);
	p->open_handles--;
	peer_finish_close(p);
}

static void fixed_close_cb(uv_handle_t *h)
{
	mesh_handle_closed(h->data);
}

static void redial_close_cb(uv_handle_t *h)
{
	mesh_handle_closed(((struct peer *)h->data)->p);
}

static bool valid_cluster_id(const char *s)
{
	size_t n = s ? strlen(s) : 0;

	if (n == 0 || n > KVFS_PEER_CLUSTER_ID_MAX)
		return false;
	return strspn(s, "0123456789abcdefABCDEF") == n;
}

int peer_open(struct kvfs_peers **out, uv_loop_t *loop, const struct kvfs_peers_config *cfg)
{
	struct kvfs_peers *p;
	uint32_t i;
	int fd = -1, rv;

	if (out == NULL || loop == NULL || cfg == NULL || cfg->on_message == NULL ||
	    cfg->size == 0 || cfg->size > KVFS_PEERS_MAX_SIZE || cfg->id == 0 ||
	    cfg->id > cfg->size || !valid_cluster_id(cfg->cluster_id))
		return -EINVAL;
	p = calloc(1, sizeof(*p));
	if (p == NULL)
		return -ENOMEM;
	p->peers = calloc(cfg->size + 1, sizeof(*p->peers));
	if (p->peers == NULL) {
		rv = -ENOMEM;
		goto err_free;
	}
	p->loop = loop;
	p->cfg = *cfg;
	p->cfg.listen = NULL; /* not kept: the caller's string */
	p->cfg.cluster_id = p->cluster_id;
	snprintf(p->cluster_id, sizeof(p->cluster_id), "%s", cfg->cluster_id);
	if (p->cfg.max_queue == 0)
		p->cfg.max_queue = KVFS_PEERS_MAX_QUEUE_DEFAULT;
	if (p->cfg.idle_timeout_ms == 0)
		p->cfg.idle_timeout_ms = KVFS_PEERS_IDLE_TIMEOUT_MS;
	if (cfg->keys != NULL) {
		if (cfg->keys->n == 0 || cfg->keys->n > KVFS_SEC_MAX_KEYS) {
			rv = -EINVAL;
			goto err_free;
		}
		p->keys = *cfg->keys;
		p->secure = true;
	}
	p->cfg.keys = NULL; /* not kept: p->keys is the copy */
	if (cfg->test_delay_file != NULL) {
		p->delay = peer_delay_new(cfg->test_delay_file, cfg->size);
		if (p->delay == NULL) {
			rv = -ENOMEM;
			goto err_free;
		}
	}
	p->cfg.test_delay_file = NULL; /* not kept: the caller's string */

	rv = peer_addr_listen(cfg->listen, &fd, &p->port);
	if (rv != 0)
		goto err_free;
	rv = uv_tcp_init(loop, &p->listener);
	if (rv != 0) {
		close(fd);
		goto err_free;
	}
	p->listener.data = p;
	p->open_handles = 1;
	rv = uv_tcp_open(&p->listener, fd);
	if (rv != 0)
		close(fd);
	else
		rv = uv_listen((uv_stream_t *)&p->listener, SOMAXCONN, on_connection);
	if (rv != 0) {
		/* The handle exists: it is freed from its close callback, without any of ours. */
		p->closing = true;
		uv_close((uv_handle_t *)&p->listener, fixed_close_cb);
		return rv;
	}

	uv_timer_init(loop, &p->tick);
	p->tick.data = p;
	p->open_handles++;
	uv_idle_init(loop, &p->flush);
	p->flush.data = p;
	p->open_handles++;
	p->last_tick = uv_now(loop);
	uv_timer_start(&p->tick, tick_cb, tick_ms(p), tick_ms(p));
	if (p->delay != NULL) {
		peer_delay_start(p);
		p->open_handles++;
	}
	for (i = 1; i <= cfg->size; i++) {
		struct peer *pr = &p->peers[i];

		pr->p = p;
		pr->id = i;
		pr->backoff_ms = PEER_BACKOFF_FIRST_MS;
		uv_timer_init(loop, &pr->redial);
		pr->redial.data = pr;
		p->open_handles++;
	}
	*out = p;
	return 0;

err_free:
	assert(rv != 0);
	sec_keys_wipe(&p->keys);
	peer_delay_free(p->delay);
	free(p->peers);
	free(p);
	return rv;
}

int peer_port(const struct kvfs_peers *p)
{
	return p->port;
}

void peer_set_addr(struct kvfs_peers *p, uint32_t id, const char *addr)
{
	struct kvfs_hostport hp;
	const char *why;
	struct peer *pr;

	if (p->closing)
		return;
	if (id == 0 || id > p->cfg.size || id == p->cfg.id) {
		log_warn("ignoring an address for node %" PRIu32 ": not a peer of node %" PRIu32
		         " in a cluster of %" PRIu32,
		         id, p->cfg.id, p->cfg.size);
		return;
	}
	pr = &p->peers[id];
	if (addr == NULL) {
		pr->has_addr = false;
		peer_dial_stop(pr);
		return;
	}
	if (hostport_parse(addr, 0, &hp, &why) != 0) {
		char shown[KVFS_HOSTPORT_MAX];

		hostport_printable(addr, shown, sizeof(shown));
		peer_warn_stranger(p, "ignoring address \"%s\" for node %" PRIu32 ": %s (expected %s)",
		                   shown, id, why, KVFS_HOSTPORT_ACCEPTED);
		return;
	}
	/* The same name: nothing to do, since every dial resolves it again anyway. */
	if (pr->has_addr && strcmp(addr, pr->addr_str) == 0)
		return;
	pr->hp = hp;
	pr->has_addr = true;
	snprintf(pr->addr_str, sizeof(pr->addr_str), "%s", addr);
	pr->backoff_ms = PEER_BACKOFF_FIRST_MS;
	pr->resolve_failed = false;
	peer_dial_stop(pr);
	if (pr->conn == NULL && !peer_dial_busy(pr)) {
		uv_timer_stop(&pr->redial);
		if (p->cfg.id < id)
			peer_dial(pr);
		else
			peer_schedule_redial(pr); /* give the lower id's dial a head start */
	}
}

bool peer_refused(const struct kvfs_peers *p, uint32_t id)
{
	return id >= 1 && id <= p->cfg.size && p->peers[id].refused;
}

bool peer_connected(const struct kvfs_peers *p, uint32_t id)
{
	return id >= 1 && id <= p->cfg.size && p->peers[id].conn != NULL;
}

size_t peer_queued(const struct kvfs_peers *p, uint32_t id)
{
	if (!peer_connected(p, id))
		return 0;
	if (p->delay != NULL)
		return peer_conn_queued(p->peers[id].conn) + peer_delay_queued(p, id);
	return peer_conn_queued(p->peers[id].conn);
}

void peer_set_epoch(struct kvfs_peers *p, uint64_t epoch)
{
	p->cfg.epoch = epoch;
}

int peer_send(struct kvfs_peers *p, uint32_t to, uint8_t type, const uint8_t *payload, uint32_t len)
{
	struct conn *c;

	if (to == 0 || to > p->cfg.size || to == p->cfg.id || type == KVFS_MSG_HELLO ||
	    (payload == NULL && len > 0))
		return -EINVAL;
	if (len > KVFS_FRAME_MAX_PAYLOAD)
		return -EMSGSIZE;
	c = p->peers[to].conn;
	if (c == NULL || p->closing)
		return -ENOTCONN;
	if (p->delay != NULL)
		return peer_delay_send(p, c, type, payload, len);
	return peer_conn_send(c, type, payload, len);
}

void peer_close(struct kvfs_peers *p, void (*cb)(void *arg), void *arg)
{
	struct conn *c;
	uint32_t i;

	assert(!p->closing);
	p->closing = true;
	p->close_cb = cb;
	p->close_arg = arg;
	for (c = p->conns; c != NULL; c = c->next)
		peer_conn_close(c);
	for (i = 1; i <= p->cfg.size; i++)
		peer_dial_stop(&p->peers[i]);
	uv_close((uv_handle_t *)&p->listener, fixed_close_cb);
	uv_close((uv_handle_t *)&p->tick, fixed_close_cb);
	uv_close((uv_handle_t *)&p->flush, fixed_close_cb);
	if (p->delay != NULL)
		peer_delay_close(p, fixed_close_cb);
	for (i = 1; i <= p->cfg.size; i++)
		uv_close((uv_handle_t *)&p->peers[i].redial, redial_close_cb);
}
