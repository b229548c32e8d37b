/*
 * One peer connection on libuv (see peer_internal.h), dialed or accepted: with cluster keys it
 * runs the handshake of peer_sec.h and seals every frame after it; it sends our HELLO, checks the
 * peer's, then reads frames and hands each message to on_message(); messages go out
 * through its write queue, bounded by max_queue. Which peer a connection serves, and whether it
 * is kept, is the mesh's business (peer_uv.c): this file calls peer_attach() when a HELLO passes
 * and peer_detach() when the connection starts closing.
 */
#include "peer_internal.h"

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <sodium.h>
#include <string.h>
#include <uv.h>

#include "kvfs/frame.h"
#include "kvfs/logging.h"
#include "kvfs/peer.h"
#include "kvfs/peer_msg.h"
#include "kvfs/peer_sec.h"
#include "peer_addr.h"

struct wreq {
	uv_write_t req;
	size_t cap; /* bytes at frame[] */
	uint8_t frame[];
};

/* ---- writing ---- */

static void write_cb(uv_write_t *req, int status)
{
	struct conn *c = req->handle->data;

	free(req->data);
	if (status < 0 && status != UV_ECANCELED && !c->closing) {
		log_info("connection with node %" PRIu32 " (%s) lost: %s", c->id, c->remote,
		         uv_strerror(status));
		peer_conn_close(c);
	}
}

/* Queues w (size bytes at w->frame, ready to go) on c; frees it on failure. */
static int queue_write(struct conn *c, struct wreq *w, size_t size)
{
	uv_buf_t buf;
	int rv;

	w->req.data = w;
	buf = uv_buf_init((char *)w->frame, (unsigned)size);
	rv = uv_write(&w->req, (uv_stream_t *)&c->tcp, &buf, 1, write_cb);
	if (rv != 0) {
		free(w);
		return rv;
	}
	return 0;
}

/* Where frames start in a pending write: after a record's length when c is sealed. */
static size_t pend_off(const struct conn *c)
{
	return c->sealed ? KVFS_SEC_LEN_BYTES : 0;
}

size_t peer_conn_queued(const struct conn *c)
{
	return uv_stream_get_write_queue_size((const uv_stream_t *)&c->tcp) + c->pend_len;
}

int peer_conn_flush(struct conn *c)
{
	struct wreq *w = c->pend;
	size_t size = c->pend_len;

	if (w == NULL)
		return 0;
	c->pend = NULL;
	c->pend_len = 0;
	if (c->sealed) {
		if (sec_seal(&c->tx, w->frame, (uint32_t)size) != 0) {
			free(w);
			return -EOVERFLOW;
		}
		size += KVFS_SEC_OVERHEAD;
	}
	return queue_write(c, w, size);
}

void peer_conn_drop_pending(struct conn *c)
{
	free(c->pend);
	c->pend = NULL;
	c->pend_len = 0;
}

/*
 * Appends one frame to c's pending write (see peer_internal.h), starting one when there is none
 * and sealing what is pending first when the frame would make the record pass PEER_COALESCE_MAX.
 */
int peer_conn_write(struct conn *c, uint8_t type, const uint8_t *payload, uint32_t len)
{
	size_t flen = KVFS_FRAME_HEADER + (size_t)len, off = pend_off(c);
	size_t extra = c->sealed ? KVFS_SEC_OVERHEAD : 0;
	size_t queued = peer_conn_queued(c);
	struct wreq *w;
	int rv;

	if (queued > 0 && queued + flen + extra > c->p->cfg.max_queue)
		return -ENOBUFS;
	if (c->pend != NULL && c->pend_len + flen > PEER_COALESCE_MAX) {
		rv = peer_conn_flush(c);
		if (rv != 0)
			return rv;
	}
	w = c->pend;
	if (w == NULL || w->cap < off + c->pend_len + flen + KVFS_SEC_TAG_BYTES) {
		size_t cap = off + c->pend_len + flen + KVFS_SEC_TAG_BYTES;

		if (w != NULL && cap < 2 * w->cap)
			cap = 2 * w->cap;
		if (cap < PEER_PEND_FIRST)
			cap = PEER_PEND_FIRST;
		w = realloc(w, sizeof(*w) + cap);
		if (w == NULL)
			return -ENOMEM; /* c->pend is still valid */
		w->cap = cap;
		c->pend = w;
	}
	rv = frame_encode(w->frame + off + c->pend_len, type, payload, len);
	assert(rv == 0); /* len was checked against KVFS_FRAME_MAX_PAYLOAD */
	c->pend_len += flen;
	c->last_tx = uv_now(c->p->loop);
	peer_mark_pending(c->p);
	return 0;
}

/* See peer_internal.h. */
int peer_conn_overflow(struct conn *c)
{
	log_warn("closing connection with node %" PRIu32 " (%s): more than %zu bytes queued "
	         "for it; it reads too slowly or not at all",
	         c->id, c->remote, c->p->cfg.max_queue);
	peer_conn_close_ex(c, true);
	return -ENOBUFS;
}

/* See peer_internal.h. */
int peer_conn_send(struct conn *c, uint8_t type, const uint8_t *payload, uint32_t len)
{
	int rv = peer_conn_write(c, type, payload, len);

	if (rv == -ENOBUFS)
		return peer_conn_overflow(c);
	if (rv != 0 && rv != -ENOMEM) {
		log_warn("closing connection with node %" PRIu32 " (%s): %s", c->id, c->remote,
		         uv_strerror(rv));
		peer_conn_close_ex(c, true);
		rv = -ENOTCONN;
	}
	return rv;
}

/* Sends what the handshake has to say now, bare (it is not framed). */
static int send_hs_output(struct conn *c)
{
	uint8_t buf[sizeof(c->hs->out)];
	size_t n = hs_take_output(c->hs, buf);
	struct wreq *w;

	if (n == 0)
		return 0;
	w = malloc(sizeof(*w) + n);
	if (w == NULL)
		return -ENOMEM;
	w->cap = n;
	memcpy(w->frame, buf, n);
	c->last_tx = uv_now(c->p->loop);
	return queue_write(c, w, n);
}

static int send_hello(struct conn *c)
{
	struct kvfs_peers *p = c->p;
	struct kvfs_peer_hello h = {
	    .version = KVFS_PEER_PROTOCOL_VERSION, .node_id = p->cfg.id, .epoch = p->cfg.epoch};
	uint8_t buf[128];
	size_t n;
	int rv;

	memcpy(h.cluster_id, p->cluster_id, sizeof(h.cluster_id));
	assert(peer_msg_hello_size(&h) <= sizeof(buf));
	n = peer_msg_hello_encode(&h, buf);
	rv = peer_conn_write(c, KVFS_MSG_HELLO, buf, (uint32_t)n);
	/* Alone in its record: the peer reads at most PEER_HELLO_MAX until it has checked it. */
	return rv != 0 ? rv : peer_conn_flush(c);
}

/* ---- opening and closing ---- */

struct conn *peer_conn_new(struct kvfs_peers *p)
{
	struct conn *c = calloc(1, sizeof(*c));

	if (c == NULL)
		return NULL;
	if (uv_tcp_init(p->loop, &c->tcp) != 0) {
		free(c);
		return NULL;
	}
	c->p = p;
	c->tcp.data = c;
	c->connect.data = c;
	c->started = c->last_rx = c->last_tx = uv_now(p->loop);
	frame_reader_init(&c->reader);
	frame_reader_set_max(&c->reader, PEER_HELLO_MAX);
	snprintf(c->remote, sizeof(c->remote), "?");
	c->next = p->conns;
	if (p->conns)
		p->conns->prev = c;
	p->conns = c;
	return c;
}

static void conn_close_cb(uv_handle_t *h)
{
	struct conn *c = h->data;
	struct kvfs_peers *p = c->p;

	if (c->prev)
		c->prev->next = c->next;
	else
		p->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	frame_reader_free(&c->reader);
	if (c->hs) {
		hs_wipe(c->hs);
		free(c->hs);
	}
	sodium_memzero(&c->tx, sizeof(c->tx));
	sodium_memzero(&c->rx, sizeof(c->rx));
	if (c->id)
		peer_report_down(&p->peers[c->id]);
	free(c);
	peer_finish_close(p);
}

/* c has its HELLO, or is closing: it no longer counts against PEER_MAX_UNPROVEN. */
static void uncount(struct conn *c)
{
	if (c->counted) {
		c->counted = false;
		c->p->unproven--;
	}
}

void peer_conn_close_ex(struct conn *c, bool defer_report)
{
	if (c->closing)
		return;
	c->closing = true;
	uncount(c);
	peer_conn_drop_pending(c);
	uv_close((uv_handle_t *)&c->tcp, conn_close_cb);
	peer_detach(c, defer_report);
}

void peer_conn_close(struct conn *c)
{
	peer_conn_close_ex(c, false);
}

/* ---- reading ---- */

/* Checks the first frame of c, which must be a valid HELLO. Returns whether c is still open. */
static bool conn_hello(struct conn *c, const struct kvfs_frame *f)
{
	struct kvfs_peers *p = c->p;
	struct kvfs_peer_hello h;
	char why[512];

	if (f->type != KVFS_MSG_HELLO) {
		log_warn("closing connection with %s: it sent %s (type %u) before its hello",
		         c->remote, peer_msg_type_name(f->type), (unsigned)f->type);
		peer_conn_close(c);
		return false;
	}
	if (peer_msg_hello_decode(&h, f->payload, f->len) != 0) {
		log_warn("closing connection with %s: malformed hello", c->remote);
		peer_conn_close(c);
		return false;
	}
	if (peer_msg_hello_check(&h, p->cluster_id, p->cfg.size, why, sizeof(why)) != 0) {
		log_warn("closing connection with %s: %s", c->remote, why);
		peer_conn_close(c);
		return false;
	}
	if (h.node_id == p->cfg.id) {
		log_warn("closing connection with %s: it says it is node %" PRIu32
		         ", this node's own id; are two nodes started with the same --id?",
		         c->remote, h.node_id);
		peer_conn_close(c);
		return false;
	}
	if (c->sealed && h.node_id != c->proven_id) {
		log_warn("closing connection with %s: it proved to be node %" PRIu32
		         " but its hello says node %" PRIu32,
		         c->remote, c->proven_id, h.node_id);
		peer_conn_close(c);
		return false;
	}
	if (c->outbound && h.node_id != c->id) {
		log_warn("closing connection with %s: dialed node %" PRIu32
		         " there but node %" PRIu32
		         " answered; is the address in the membership stale?",
		         c->remote, c->id, h.node_id);
		peer_conn_close(c);
		return false;
	}
	c->id = h.node_id;
	c->hello_ok = true;
	uncount(c);
	return peer_attach(c) && !c->closing;
}

/* Opens a sealed record for the frame reader (frame_reader_set_opener). */
static int open_record(void *arg, uint8_t *rec, uint32_t L)
{
	return sec_open(&((struct conn *)arg)->rx, rec, L);
}

/* Our dial's handshake failed: warn once until a dial succeeds, and redial slowly. */
static void dial_failed_auth(struct conn *c, const char *why)
{
	struct peer *pr = &c->p->peers[c->id];

	if (!pr->auth_failed)
		log_warn("cannot connect to node %" PRIu32 " at %s: %s; retrying every %u ms",
		         c->id, c->remote, why, PEER_BACKOFF_AUTH_MS);
	pr->auth_failed = true;
	peer_conn_close(c);
}

static void handshake_failed(struct conn *c, int rv)
{
	const char *why;
	char buf[160];

	switch (rv) {
	case -EPROTO:
		why = "it does not speak the kvfs handshake (a node started with --insecure, or "
		      "not kvfs at all)";
		break;
	case -EACCES:
		why = "it did not prove it holds this cluster's secret (another --secret-file, or "
		      "another cluster)";
		break;
	case -ENXIO:
		snprintf(buf, sizeof(buf),
		         "it holds the secret but the node ids do not fit (it says node %" PRIu32
		         "; is the membership stale, or two nodes started with one --id?)",
		         c->hs->peer);
		why = buf;
		break;
	default:
		why = "a malformed handshake";
		break;
	}
	if (c->outbound)
		dial_failed_auth(c, why);
	else {
		peer_warn_stranger(c->p, "closing connection from %s: %s", c->remote, why);
		peer_conn_close(c);
	}
}

/*
 * Feeds received bytes to c's handshake and sends what it answers. Returns 1 when it is done
 * (*used bytes were the handshake's; the rest are sealed records), 0 when it needs more (all
 * bytes were used), -1 when c was closed.
 */
static int conn_handshake(struct conn *c, const uint8_t *data, size_t len, size_t *used)
{
	int rv = hs_feed(c->hs, data, len, used), wrv;

	if (rv < 0) {
		handshake_failed(c, rv);
		return -1;
	}
	wrv = send_hs_output(c);
	if (wrv == 0 && rv == 1) {
		c->proven_id = c->hs->peer;
		c->tx = c->hs->tx;
		c->rx = c->hs->rx;
		hs_wipe(c->hs);
		free(c->hs);
		c->hs = NULL;
		c->sealed = true;
		frame_reader_set_opener(&c->reader, open_record, c);
		wrv = send_hello(c);
	}
	if (wrv != 0) {
		log_warn("closing connection with %s: %s", c->remote,
		         wrv == -ENOMEM ? "out of memory" : uv_strerror(wrv));
		peer_conn_close(c);
		return -1;
	}
	return rv;
}

/*
 * The reader refused what c sent (rv): the stream can no longer be trusted; closes c. Before its
 * HELLO, on a node without keys, a peer that opens with the handshake holds a --secret-file: that
 * is said once per dial target (which is then redialed slowly) or in the strangers' rate-limited
 * warnings, not as a bad frame at every redial. Any other refusal before an accepted
 * connection's HELLO is a stranger's too, and rate-limited likewise.
 */
static void frame_failed(struct conn *c, int rv)
{
	static const char why[] = "it speaks the authenticated handshake: it was started with "
	                          "--secret-file and this node with --insecure (the nodes of a "
	                          "cluster must agree)";
	const char *what;

	if (!c->hello_ok && !c->p->secure && rv == -EPROTO &&
	    sec_looks_like_m1(c->head, c->nhead)) {
		if (c->outbound) {
			dial_failed_auth(c, why);
		} else {
			peer_warn_stranger(c->p, "closing connection from %s: %s", c->remote, why);
			peer_conn_close(c);
		}
		return;
	}
	what = rv == -EMSGSIZE ? "frame too large" : rv == -ENOMEM ? "out of memory" : "bad frame";
	if (!c->hello_ok && !c->outbound) /* a stranger: one line per PEER_WARN_EVERY_MS */
		peer_warn_stranger(c->p, "closing connection from %s: %s (%s) before its hello",
		                   c->remote, what, strerror(-rv));
	else
		log_warn("closing connection with %s: %s (%s)", c->remote, what, strerror(-rv));
	peer_conn_close(c);
}

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	struct conn *c = h->data;

	*buf = uv_buf_init(c->p->rbuf, sizeof(c->p->rbuf));
}

static void read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	struct conn *c = s->data;
	struct kvfs_peers *p = c->p;
	const uint8_t *data = (const uint8_t *)buf->base;
	struct kvfs_frame f;
	size_t used;
	int rv;

	if (c->closing || nread == 0)
		return;
	/* Any bytes are a sign of life: a large frame may take longer than the idle timeout to
	 * arrive whole. */
	if (nread > 0)
		c->last_rx = uv_now(p->loop);
	if (nread < 0) {
		if (c->hs && c->outbound && c->hs->state == KVFS_HS_WAIT_AUTH && nread == UV_EOF) {
			/* It closed on us after our proof: it did not accept it. */
			dial_failed_auth(c, "it closed the connection after our proof; does it hold "
			                    "the same --secret-file?");
			return;
		}
		if (c->hello_ok)
			log_info("connection with node %" PRIu32 " (%s) lost: %s", c->id, c->remote,
			         nread == UV_EOF ? "closed by the peer" : uv_strerror((int)nread));
		else
			log_debug("connection with %s lost before its hello: %s", c->remote,
			          uv_strerror((int)nread));
		peer_conn_close(c);
		return;
	}
	if (c->hs) {
		rv = conn_handshake(c, data, (size_t)nread, &used);
		if (rv <= 0 || (size_t)nread == used)
			return;
		data += used;
		nread -= (ssize_t)used;
	}
	if (!p->secure && c->nhead < sizeof(c->head)) {
		used = sizeof(c->head) - c->nhead < (size_t)nread ? sizeof(c->head) - c->nhead
		                                                  : (size_t)nread;
		memcpy(c->head + c->nhead, data, used);
		c->nhead += (uint8_t)used;
	}
	rv = frame_reader_feed(&c->reader, data, (size_t)nread);
	for (;;) {
		if (rv == 0)
			rv = frame_reader_next(&c->reader, &f);
		if (rv == 0)
			return;
		if (rv < 0) {
			frame_failed(c, rv);
			return;
		}
		rv = 0;
		if (!c->hello_ok) {
			if (!conn_hello(c, &f))
				return;
			continue;
		}
		if (f.type == KVFS_MSG_HELLO) {
			log_warn("closing connection with node %" PRIu32 " (%s): a second hello",
			         c->id, c->remote);
			peer_conn_close(c);
			return;
		}
		if (f.type == KVFS_MSG_PING)
			continue; /* it did its job: last_rx */
		p->cfg.on_message(p->cfg.arg, c->id, f.type, f.payload, f.len);
		if (c->closing || p->closing)
			return;
	}
}

/*
 * Unacknowledged data fails the connection after the idle timeout instead of TCP's ~15 minutes
 * of retransmissions (Linux; elsewhere the idle timer alone does it). Best effort: a refusal is
 * only logged.
 */
static void set_user_timeout(struct conn *c)
{
#ifdef TCP_USER_TIMEOUT
	unsigned int ms = c->p->cfg.idle_timeout_ms;
	uv_os_fd_t fd;

	if (uv_fileno((uv_handle_t *)&c->tcp, &fd) == 0 &&
	    setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &ms, sizeof(ms)) < 0)
		log_debug("cannot set TCP_USER_TIMEOUT on the connection with %s: %s", c->remote,
		          strerror(errno));
#else
	(void)c;
#endif
}

void peer_conn_start(struct conn *c)
{
	struct sockaddr_storage ss;
	int len = sizeof(ss);
	int rv;

	c->connected = true;
	if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len) == 0)
		peer_addr_name(&ss, c->remote, sizeof(c->remote));
	uv_tcp_nodelay(&c->tcp, 1);
	set_user_timeout(c);
	c->last_rx = uv_now(c->p->loop);
	if (c->p->secure) {
		c->hs = malloc(sizeof(*c->hs));
		if (c->hs == NULL) {
			rv = UV_ENOMEM;
		} else {
			hs_start(c->hs, &c->p->keys, c->p->cluster_id, c->p->cfg.size, c->p->cfg.id,
			         c->outbound ? c->id : 0);
			rv = send_hs_output(c);
		}
	} else {
		rv = send_hello(c);
	}
	if (rv == 0)
		rv = uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, read_cb);
	if (rv != 0) {
		log_warn("closing connection with %s: %s", c->remote, uv_strerror(rv));
		peer_conn_close(c);
	}
}
