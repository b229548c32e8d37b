/*
 * The peer transport on libuv (see peer.h): one listening socket, one connection struct per TCP
 * connection (dialed or accepted), one redial timer per peer and one timer that closes silent
 * connections.
 *
 * A connection starts unattached: it sends our HELLO, and reads frames of at most HELLO_MAX bytes
 * until the peer's HELLO passes the checks; then it is attached to its peer (peers[id].conn, at
 * most one, the duplicate rule of peer.h deciding) and carries messages. A connection is freed in
 * its close callback only; libuv cancels its pending writes (freeing each write request in its
 * callback) before that. The struct kvfs_peers itself is freed once every handle it owns has
 * been closed.
 */
#include "kvfs/peer.h"

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include "kvfs/frame.h"
#include "kvfs/logging.h"
#include "kvfs/peer_msg.h"

#define HELLO_MAX        4096u /* largest frame accepted before the peer's HELLO */
#define BACKOFF_FIRST_MS 50u
#define BACKOFF_MAX_MS   2000u
#define READ_BUF         (64u << 10)
#define ADDR_STR         64u

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
	uint64_t last_rx; /* uv_now() of the last frame received, or of the connection's start */
	char remote[ADDR_STR];
};

struct wreq {
	uv_write_t req;
	size_t len;
	uint8_t frame[];
};

struct peer {
	uv_timer_t redial;
	struct kvfs_peers *p;
	uint32_t id;
	bool has_addr;
	struct sockaddr_storage addr;
	char addr_str[ADDR_STR];
	struct conn *conn;    /* the connection in use (handshake done); NULL: not connected */
	struct conn *dialing; /* our dial not yet through its handshake */
	uint32_t backoff_ms;  /* before the next redial */
	bool refused;         /* the last dial got ECONNREFUSED */
	bool reported_up;     /* the last on_state() said connected */
};

struct kvfs_peers {
	uv_loop_t *loop;
	struct kvfs_peers_config cfg;
	char cluster_id[KVFS_PEER_CLUSTER_ID_MAX + 1];
	uv_tcp_t listener;
	uv_timer_t tick;
	struct peer *peers; /* [1..size] */
	struct conn *conns; /* every connection not yet freed */
	int port;
	unsigned open_handles; /* listener, tick, redial timers not yet closed */
	bool closing;
	void (*close_cb)(void *arg);
	void *close_arg;
	char rbuf[READ_BUF]; /* every read lands here and is fed to a reader at once */
};

static void conn_close(struct conn *c);
static void dial(struct peer *pr);

/* ---- addresses ---- */

/* Parses "A.B.C.D:PORT" or "[V6]:PORT" into *ss. Returns 0 or -EINVAL. */
static int parse_addr(const char *s, struct sockaddr_storage *ss)
{
	char host[ADDR_STR];
	const char *colon, *h = s;
	size_t hlen;
	char *end;
	unsigned long port;

	if (s == NULL)
		return -EINVAL;
	if (s[0] == '[') {
		const char *close = strchr(s, ']');

		if (close == NULL || close[1] != ':')
			return -EINVAL;
		h = s + 1;
		hlen = (size_t)(close - h);
		colon = close + 1;
	} else {
		colon = strrchr(s, ':');
		if (colon == NULL)
			return -EINVAL;
		hlen = (size_t)(colon - s);
	}
	if (hlen == 0 || hlen >= sizeof(host) || colon[1] < '0' || colon[1] > '9')
		return -EINVAL;
	memcpy(host, h, hlen);
	host[hlen] = '\0';
	errno = 0;
	port = strtoul(colon + 1, &end, 10);
	if (errno || *end != '\0' || port > 65535)
		return -EINVAL;
	memset(ss, 0, sizeof(*ss));
	if (uv_ip4_addr(host, (int)port, (struct sockaddr_in *)ss) == 0)
		return 0;
	if (uv_ip6_addr(host, (int)port, (struct sockaddr_in6 *)ss) == 0)
		return 0;
	return -EINVAL;
}

static void addr_name(const struct sockaddr_storage *ss, char *out, size_t len)
{
	char ip[48] = "?";
	int port = 0;

	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)ss;

		uv_ip4_name(sin, ip, sizeof(ip));
		port = ntohs(sin->sin_port);
		snprintf(out, len, "%s:%d", ip, port);
	} else if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)ss;

		uv_ip6_name(sin6, ip, sizeof(ip));
		port = ntohs(sin6->sin6_port);
		snprintf(out, len, "[%s]:%d", ip, port);
	} else {
		snprintf(out, len, "?");
	}
}

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
static void report_down(struct peer *pr)
{
	struct kvfs_peers *p = pr->p;

	if (!pr->reported_up || pr->conn != NULL)
		return;
	pr->reported_up = false;
	if (!p->closing && p->cfg.on_state != NULL)
		p->cfg.on_state(p->cfg.arg, pr->id, false);
}

/* ---- redial ---- */

static void redial_cb(uv_timer_t *t)
{
	struct peer *pr = t->data;

	if (!pr->p->closing && pr->has_addr && pr->conn == NULL && pr->dialing == NULL)
		dial(pr);
}

/* Arms the redial timer if the peer is known, unconnected and not being dialed. */
static void schedule_redial(struct peer *pr)
{
	if (pr->p->closing || !pr->has_addr || pr->conn != NULL || pr->dialing != NULL ||
	    uv_is_active((uv_handle_t *)&pr->redial))
		return;
	/*
	 * The higher id waits a little longer, so that when both ends redial, the lower id's dial
	 * (the one the duplicate rule keeps) usually completes first and the other is never made.
	 */
	uv_timer_start(&pr->redial, redial_cb,
	               pr->backoff_ms + (pr->p->cfg.id > pr->id ? BACKOFF_FIRST_MS : 0), 0);
	pr->backoff_ms = pr->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : pr->backoff_ms * 2;
}

/* ---- writing ---- */

static void write_cb(uv_write_t *req, int status)
{
	struct conn *c = req->handle->data;

	free(req->data);
	if (status < 0 && status != UV_ECANCELED && !c->closing) {
		log_info("connection with node %" PRIu32 " (%s) lost: %s", c->id, c->remote,
		         uv_strerror(status));
		conn_close(c);
	}
}

/*
 * Frames and queues one message on c. Returns 0; -ENOBUFS if c's unwritten bytes would pass
 * max_queue (a frame alone may, when nothing is queued); -ENOMEM; or libuv's error.
 */
static int conn_write(struct conn *c, uint8_t type, const uint8_t *payload, uint32_t len)
{
	size_t size = KVFS_FRAME_HEADER + (size_t)len;
	size_t queued = uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp);
	struct wreq *w;
	uv_buf_t buf;
	int rv;

	if (queued > 0 && queued + size > c->p->cfg.max_queue)
		return -ENOBUFS;
	w = malloc(sizeof(*w) + size);
	if (w == NULL)
		return -ENOMEM;
	rv = frame_encode(w->frame, type, payload, len);
	assert(rv == 0); /* len was checked against KVFS_FRAME_MAX_PAYLOAD */
	w->len = size;
	w->req.data = w;
	buf = uv_buf_init((char *)w->frame, (unsigned)size);
	rv = uv_write(&w->req, (uv_stream_t *)&c->tcp, &buf, 1, write_cb);
	if (rv != 0) {
		free(w);
		return rv;
	}
	return 0;
}

static int send_hello(struct conn *c)
{
	struct kvfs_peers *p = c->p;
	struct kvfs_peer_hello h = {
	    .version = KVFS_PEER_PROTOCOL_VERSION, .node_id = p->cfg.id, .epoch = p->cfg.epoch};
	uint8_t buf[128];
	size_t n;

	memcpy(h.cluster_id, p->cluster_id, sizeof(h.cluster_id));
	assert(peer_msg_hello_size(&h) <= sizeof(buf));
	n = peer_msg_hello_encode(&h, buf);
	return conn_write(c, KVFS_MSG_HELLO, buf, (uint32_t)n);
}

/* ---- connections ---- */

static void conn_close_cb(uv_handle_t *h);

static void finish_close(struct kvfs_peers *p)
{
	void (*cb)(void *) = p->close_cb;
	void *arg = p->close_arg;

	if (!p->closing || p->open_handles > 0 || p->conns != NULL)
		return;
	free(p->peers);
	free(p);
	if (cb)
		cb(arg);
}

static struct conn *conn_new(struct kvfs_peers *p)
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
	c->last_rx = uv_now(p->loop);
	frame_reader_init(&c->reader);
	frame_reader_set_max(&c->reader, HELLO_MAX);
	snprintf(c->remote, sizeof(c->remote), "?");
	c->next = p->conns;
	if (p->conns)
		p->conns->prev = c;
	p->conns = c;
	return c;
}

/*
 * Starts closing c (once): detaches it from its peer, reporting the peer down (now, or from the
 * close callback when called from peer_send()), and arms a redial.
 */
static void conn_close_ex(struct conn *c, bool defer_report)
{
	struct peer *pr = c->id ? &c->p->peers[c->id] : NULL;

	if (c->closing)
		return;
	c->closing = true;
	uv_close((uv_handle_t *)&c->tcp, conn_close_cb);
	if (pr == NULL)
		return;
	if (pr->dialing == c)
		pr->dialing = NULL;
	if (pr->conn == c) {
		pr->conn = NULL;
		if (!defer_report)
			report_down(pr);
	}
	schedule_redial(pr);
}

static void conn_close(struct conn *c)
{
	conn_close_ex(c, false);
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
	if (c->id)
		report_down(&p->peers[c->id]);
	free(c);
	finish_close(p);
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
static bool conn_attach(struct conn *c)
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
			conn_close(c);
			return false;
		}
		log_debug("node %" PRIu32 ": new connection %s replaces %s", c->id, c->remote,
		          old->remote);
		pr->conn = NULL;
		report_down(pr);
		pr->conn = c;
		conn_close(old);
	}
	pr->conn = c;
	/* Our own dial would lose to c when it completes: spare the peer a useless connection. */
	if (pr->dialing != NULL && dialed_by_lower(c) && !dialed_by_lower(pr->dialing))
		conn_close(pr->dialing);
	pr->backoff_ms = BACKOFF_FIRST_MS;
	pr->refused = false;
	uv_timer_stop(&pr->redial);
	frame_reader_set_max(&c->reader, KVFS_FRAME_MAX_PAYLOAD);
	log_info("connected to node %" PRIu32 " (%s, %s)", c->id, c->remote,
	         c->outbound ? "dialed" : "accepted");
	report_up(pr);
	return true;
}

/* Checks the first frame of c, which must be a valid HELLO. Returns whether c is still open. */
static bool conn_hello(struct conn *c, const struct kvfs_frame *f)
{
	struct kvfs_peers *p = c->p;
	struct kvfs_peer_hello h;
	char why[512];

	if (f->type != KVFS_MSG_HELLO) {
		log_warn("closing connection with %s: it sent %s (type %u) before its hello",
		         c->remote, peer_msg_type_name(f->type), (unsigned)f->type);
		conn_close(c);
		return false;
	}
	if (peer_msg_hello_decode(&h, f->payload, f->len) != 0) {
		log_warn("closing connection with %s: malformed hello", c->remote);
		conn_close(c);
		return false;
	}
	if (peer_msg_hello_check(&h, p->cluster_id, p->cfg.size, why, sizeof(why)) != 0) {
		log_warn("closing connection with %s: %s", c->remote, why);
		conn_close(c);
		return false;
	}
	if (h.node_id == p->cfg.id) {
		log_warn("closing connection with %s: it says it is node %" PRIu32
		         ", this node's own id; are two nodes started with the same --id?",
		         c->remote, h.node_id);
		conn_close(c);
		return false;
	}
	if (c->outbound && h.node_id != c->id) {
		log_warn("closing connection with %s: dialed node %" PRIu32
		         " there but node %" PRIu32
		         " answered; is the address in the membership stale?",
		         c->remote, c->id, h.node_id);
		conn_close(c);
		return false;
	}
	c->id = h.node_id;
	c->hello_ok = true;
	return conn_attach(c) && !c->closing;
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
	struct kvfs_frame f;
	int rv;

	if (c->closing || nread == 0)
		return;
	if (nread < 0) {
		if (c->hello_ok)
			log_info("connection with node %" PRIu32 " (%s) lost: %s", c->id, c->remote,
			         nread == UV_EOF ? "closed by the peer" : uv_strerror((int)nread));
		else
			log_debug("connection with %s lost before its hello: %s", c->remote,
			          uv_strerror((int)nread));
		conn_close(c);
		return;
	}
	rv = frame_reader_feed(&c->reader, buf->base, (size_t)nread);
	for (;;) {
		if (rv == 0)
			rv = frame_reader_next(&c->reader, &f);
		if (rv == 0)
			return;
		if (rv < 0) {
			log_warn("closing connection with %s: %s (%s)", c->remote,
			         rv == -EMSGSIZE ? "frame too large"
			         : rv == -ENOMEM ? "out of memory"
			                         : "bad frame",
			         strerror(-rv));
			conn_close(c);
			return;
		}
		rv = 0;
		c->last_rx = uv_now(p->loop);
		if (!c->hello_ok) {
			if (!conn_hello(c, &f))
				return;
			continue;
		}
		if (f.type == KVFS_MSG_HELLO) {
			log_warn("closing connection with node %" PRIu32 " (%s): a second hello",
			         c->id, c->remote);
			conn_close(c);
			return;
		}
		p->cfg.on_message(p->cfg.arg, c->id, f.type, f.payload, f.len);
		if (c->closing || p->closing)
			return;
	}
}

/* Once connected (dialed or accepted): sends our HELLO and starts reading. Closes c on error. */
static void conn_start(struct conn *c)
{
	struct sockaddr_storage ss;
	int len = sizeof(ss);
	int rv;

	if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len) == 0)
		addr_name(&ss, c->remote, sizeof(c->remote));
	uv_tcp_nodelay(&c->tcp, 1);
	c->last_rx = uv_now(c->p->loop);
	rv = send_hello(c);
	if (rv == 0)
		rv = uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, read_cb);
	if (rv != 0) {
		log_warn("closing connection with %s: %s", c->remote, uv_strerror(rv));
		conn_close(c);
	}
}

static void connect_cb(uv_connect_t *req, int status)
{
	struct conn *c = req->data;
	struct peer *pr;

	if (status == UV_ECANCELED || c->closing)
		return;
	pr = &c->p->peers[c->id];
	pr->refused = status == UV_ECONNREFUSED;
	if (status < 0) {
		log_debug("cannot connect to node %" PRIu32 " at %s: %s", c->id, pr->addr_str,
		          uv_strerror(status));
		conn_close(c);
		return;
	}
	conn_start(c);
}

static void dial(struct peer *pr)
{
	struct kvfs_peers *p = pr->p;
	struct conn *c;
	int rv;

	assert(pr->conn == NULL && pr->dialing == NULL && pr->has_addr && !p->closing);
	c = conn_new(p);
	if (c == NULL) {
		log_warn("cannot dial node %" PRIu32 ": out of memory", pr->id);
		schedule_redial(pr);
		return;
	}
	c->outbound = true;
	c->id = pr->id;
	snprintf(c->remote, sizeof(c->remote), "%s", pr->addr_str);
	pr->dialing = c;
	rv = uv_tcp_connect(&c->connect, &c->tcp, (const struct sockaddr *)&pr->addr, connect_cb);
	if (rv != 0) {
		pr->refused = rv == UV_ECONNREFUSED;
		log_debug("cannot connect to node %" PRIu32 " at %s: %s", pr->id, pr->addr_str,
		          uv_strerror(rv));
		conn_close(c);
	}
}

static void on_connection(uv_stream_t *server, int status)
{
	struct kvfs_peers *p = server->data;
	struct conn *c;

	if (status < 0) {
		log_warn("cannot accept a peer connection: %s", uv_strerror(status));
		return;
	}
	c = conn_new(p);
	if (c == NULL) {
		log_warn("cannot accept a peer connection: out of memory");
		return;
	}
	if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0) {
		conn_close(c);
		return;
	}
	conn_start(c);
}

static void tick_cb(uv_timer_t *t)
{
	struct kvfs_peers *p = t->data;
	uint64_t now = uv_now(p->loop);
	struct conn *c;

	for (c = p->conns; c != NULL && !p->closing; c = c->next) {
		if (c->closing || now - c->last_rx < p->cfg.idle_timeout_ms)
			continue;
		if (c->hello_ok)
			log_warn("closing connection with node %" PRIu32
			         " (%s): nothing received for %" PRIu32 " ms",
			         c->id, c->remote, p->cfg.idle_timeout_ms);
		else
			log_warn("closing connection with %s: no hello within %" PRIu32 " ms",
			         c->remote, p->cfg.idle_timeout_ms);
		conn_close(c);
	}
}

/* ---- the mesh ---- */

/* Close callbacks of the listener and tick timer (data: the mesh), and of a redial timer. */
static void mesh_handle_closed(struct kvfs_peers *p)
{
	assert(p->open_handles > 0);
	p->open_handles--;
	finish_close(p);
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

/* Creates the listening socket by hand, so that a failure leaves no libuv handle to close. */
static int listen_socket(const char *addr, int *fd_out, int *port)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	int fd, one = 1, rv;

	rv = parse_addr(addr, &ss);
	if (rv != 0)
		return rv;
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    bind(fd, (struct sockaddr *)&ss,
	         ss.ss_family == AF_INET ? sizeof(struct sockaddr_in)
	                                 : sizeof(struct sockaddr_in6)) < 0 ||
	    listen(fd, SOMAXCONN) < 0 || getsockname(fd, (struct sockaddr *)&ss, &len) < 0) {
		rv = -errno;
		close(fd);
		return rv;
	}
	*port = ntohs(ss.ss_family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
	                                      : ((struct sockaddr_in6 *)&ss)->sin6_port);
	*fd_out = fd;
	return 0;
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

	rv = listen_socket(cfg->listen, &fd, &p->port);
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
	uv_timer_start(&p->tick, tick_cb, p->cfg.idle_timeout_ms / 4 + 1,
	               p->cfg.idle_timeout_ms / 4 + 1);
	for (i = 1; i <= cfg->size; i++) {
		struct peer *pr = &p->peers[i];

		pr->p = p;
		pr->id = i;
		pr->backoff_ms = BACKOFF_FIRST_MS;
		uv_timer_init(loop, &pr->redial);
		pr->redial.data = pr;
		p->open_handles++;
	}
	*out = p;
	return 0;

err_free:
	assert(rv != 0);
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
	struct sockaddr_storage ss;
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
		uv_timer_stop(&pr->redial);
		if (pr->dialing)
			conn_close(pr->dialing);
		return;
	}
	if (parse_addr(addr, &ss) != 0) {
		log_warn("ignoring address \"%s\" for node %" PRIu32
		         ": expected a numeric HOST:PORT such as 10.0.0.2:7000 or [::1]:7000",
		         addr, id);
		return;
	}
	if (pr->has_addr && memcmp(&ss, &pr->addr, sizeof(ss)) == 0)
		return;
	pr->addr = ss;
	pr->has_addr = true;
	addr_name(&ss, pr->addr_str, sizeof(pr->addr_str));
	pr->backoff_ms = BACKOFF_FIRST_MS;
	if (pr->dialing)
		conn_close(pr->dialing);
	if (pr->conn == NULL && pr->dialing == NULL) {
		uv_timer_stop(&pr->redial);
		if (p->cfg.id < id)
			dial(pr);
		else
			schedule_redial(pr); /* give the lower id's dial a head start */
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
	return uv_stream_get_write_queue_size((const uv_stream_t *)&p->peers[id].conn->tcp);
}

void peer_set_epoch(struct kvfs_peers *p, uint64_t epoch)
{
	p->cfg.epoch = epoch;
}

int peer_send(struct kvfs_peers *p, uint32_t to, uint8_t type, const uint8_t *payload, uint32_t len)
{
	struct conn *c;
	int rv;

	if (to == 0 || to > p->cfg.size || to == p->cfg.id || type == KVFS_MSG_HELLO ||
	    (payload == NULL && len > 0))
		return -EINVAL;
	if (len > KVFS_FRAME_MAX_PAYLOAD)
		return -EMSGSIZE;
	c = p->peers[to].conn;
	if (c == NULL || p->closing)
		return -ENOTCONN;
	rv = conn_write(c, type, payload, len);
	if (rv == -ENOBUFS) {
		log_warn("closing connection with node %" PRIu32
		         " (%s): more than %zu bytes queued "
		         "for it; it reads too slowly or not at all",
		         to, c->remote, p->cfg.max_queue);
		conn_close_ex(c, true);
	} else if (rv != 0 && rv != -ENOMEM) {
		log_warn("closing connection with node %" PRIu32 " (%s): %s", to, c->remote,
		         uv_strerror(rv));
		conn_close_ex(c, true);
		rv = -ENOTCONN;
	}
	return rv;
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
		conn_close(c);
	uv_close((uv_handle_t *)&p->listener, fixed_close_cb);
	uv_close((uv_handle_t *)&p->tick, fixed_close_cb);
	for (i = 1; i <= p->cfg.size; i++)
		uv_close((uv_handle_t *)&p->peers[i].redial, redial_close_cb);
}
