/*
 * Unit tests of the peer transport (replica/peer_uv.c, peer_conn_uv.c, peer_addr_uv.c): real TCP on
 * 127.0.0.1 with ports the kernel picks, every endpoint in one libuv loop in this process, every
 * wait bounded by a watchdog timer. Three nodes form a mesh and exchange messages in order;
 * strangers (another cluster, a wrong or own node id, a message before the hello, garbage bytes,
 * silence) are cut off; a peer that never reads makes the sender's queue hit its bound and the
 * connection drop
 * (-ENOBUFS); a node without keys that dials one with keys redials slowly; a node reconnects to a
 * peer restarted on the same port; a refused dial is reported;
 * closing frees everything (run under ASan/LeakSanitizer).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include "kvfs/frame.h"
#include "kvfs/logging.h"
#include "kvfs/peer.h"
#include "kvfs/peer_msg.h"
#include "kvfs/peer_sec.h"

#define CLUSTER "c0ffee"
#define WAIT_MS 2000

/* The cluster keys node_open_ex gives the nodes it opens; NULL: --insecure. */
static const struct kvfs_sec_keys *test_keys;

static uv_loop_t loop;
static uv_timer_t watchdog;
static bool timed_out;

static void watchdog_cb(uv_timer_t *t)
{
	timed_out = true;
}

/* Runs the loop until pred(arg) holds or ms pass. Returns pred(arg). */
static bool run_until(bool (*pred)(void *), void *arg, uint64_t ms)
{
	timed_out = false;
	uv_timer_start(&watchdog, watchdog_cb, ms, 0);
	while (!pred(arg) && !timed_out)
		uv_run(&loop, UV_RUN_ONCE);
	uv_timer_stop(&watchdog);
	return pred(arg);
}

static bool never(void *arg)
{
	return false;
}

static bool flag_set(void *arg)
{
	return *(bool *)arg;
}

static int setup(void **state)
{
	assert_int_equal(uv_loop_init(&loop), 0);
	assert_int_equal(uv_timer_init(&loop, &watchdog), 0);
	return 0;
}

static int teardown(void **state)
{
	int i;

	uv_close((uv_handle_t *)&watchdog, NULL);
	for (i = 0; i < 100 && uv_run(&loop, UV_RUN_NOWAIT) != 0; i++)
		;
	assert_int_equal(uv_loop_close(&loop), 0); /* every handle was closed */
	return 0;
}

/* ---- nodes ---- */

struct node {
	struct kvfs_peers *p;
	uint32_t id;
	bool up[KVFS_PEERS_MAX_SIZE + 1];
	int ups, downs;
	uint32_t msgs;
	uint32_t next_seq[8]; /* per sender: the sequence number expected next */
	bool out_of_order;
	bool closed;
};

static void on_message(void *arg, uint32_t from, uint8_t type, const uint8_t *payload, uint32_t len)
{
	struct node *n = arg;
	uint32_t seq;

	assert_true(from >= 1 && from < 8);
	assert_int_equal(type, KVFS_MSG_APPEND);
	assert_true(len >= 4);
	memcpy(&seq, payload, 4);
	if (seq != n->next_seq[from])
		n->out_of_order = true;
	n->next_seq[from] = seq + 1;
	n->msgs++;
}

static void on_state(void *arg, uint32_t id, bool connected)
{
	struct node *n = arg;

	assert_true(n->up[id] != connected); /* alternates, starting with true */
	n->up[id] = connected;
	if (connected)
		n->ups++;
	else
		n->downs++;
}

static int node_open_ex(struct node *n, uint32_t id, uint32_t size, const char *cluster, int port,
                        size_t max_queue, uint32_t idle_ms)
{
	char addr[32];
	struct kvfs_peers_config cfg = {
	    .id = id,
	    .size = size,
	    .cluster_id = cluster,
	    .listen = addr,
	    .epoch = 7,
	    .max_queue = max_queue,
	    .idle_timeout_ms = idle_ms,
	    .on_message = on_message,
	    .on_state = on_state,
	    .arg = n,
	    .keys = test_keys,
	};

	memset(n, 0, sizeof(*n));
	n->id = id;
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
	return peer_open(&n->p, &loop, &cfg);
}

static void node_open(struct node *n, uint32_t id, uint32_t size)
{
	assert_int_equal(node_open_ex(n, id, size, CLUSTER, 0, 0, 0), 0);
}

static void node_closed(void *arg)
{
	((struct node *)arg)->closed = true;
}

static void node_close(struct node *n)
{
	peer_close(n->p, node_closed, n);
	assert_true(run_until(flag_set, &n->closed, WAIT_MS));
}

static void point_at(struct node *from, uint32_t id, int port)
{
	char addr[32];

	snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
	peer_set_addr(from->p, id, addr);
}

static int send_seq(struct node *n, uint32_t to, uint32_t seq, uint32_t len)
{
	static uint8_t buf[1 << 16];

	assert_true(len >= 4 && len <= sizeof(buf));
	memcpy(buf, &seq, 4);
	return peer_send(n->p, to, KVFS_MSG_APPEND, buf, len);
}

/* ---- raw sockets that speak (or mangle) the protocol by hand ---- */

struct raw {
	uv_tcp_t tcp;
	uv_connect_t creq;
	int status; /* of the connect; 1 while pending */
	bool eof;   /* the other side closed (or reset) it */
	bool closed;
	size_t rx;
	char buf[4096];
};

static void raw_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	struct raw *r = h->data;

	*buf = uv_buf_init(r->buf, sizeof(r->buf));
}

static void raw_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
	struct raw *r = s->data;

	if (n < 0) {
		r->eof = true;
		uv_read_stop(s);
	} else {
		r->rx += (size_t)n;
	}
}

static void raw_connect_cb(uv_connect_t *req, int status)
{
	struct raw *r = req->data;

	r->status = status;
	if (status == 0)
		assert_int_equal(uv_read_start((uv_stream_t *)&r->tcp, raw_alloc, raw_read), 0);
}

static bool raw_connected(void *arg)
{
	return ((struct raw *)arg)->status <= 0;
}

static bool raw_eof(void *arg)
{
	return ((struct raw *)arg)->eof;
}

static void raw_connect(struct raw *r, int port)
{
	struct sockaddr_in sa;

	memset(r, 0, sizeof(*r));
	r->status = 1;
	assert_int_equal(uv_tcp_init(&loop, &r->tcp), 0);
	r->tcp.data = r;
	r->creq.data = r;
	assert_int_equal(uv_ip4_addr("127.0.0.1", port, &sa), 0);
	assert_int_equal(
	    uv_tcp_connect(&r->creq, &r->tcp, (const struct sockaddr *)&sa, raw_connect_cb), 0);
	assert_true(run_until(raw_connected, r, WAIT_MS));
	assert_int_equal(r->status, 0);
}

static void raw_write_cb(uv_write_t *w, int status)
{
	free(w);
}

static void raw_send(struct raw *r, const void *data, size_t len)
{
	uv_write_t *w = malloc(sizeof(*w) + len);
	uv_buf_t buf;

	assert_non_null(w);
	memcpy(w + 1, data, len);
	buf = uv_buf_init((char *)(w + 1), (unsigned)len);
	assert_int_equal(uv_write(w, (uv_stream_t *)&r->tcp, &buf, 1, raw_write_cb), 0);
}

static void raw_close_cb(uv_handle_t *h)
{
	((struct raw *)h->data)->closed = true;
}

static void raw_close(struct raw *r)
{
	if (!uv_is_closing((uv_handle_t *)&r->tcp))
		uv_close((uv_handle_t *)&r->tcp, raw_close_cb);
	assert_true(run_until(flag_set, &r->closed, WAIT_MS));
}

/* Writes a HELLO frame from node id of cluster into buf; returns its size. */
static size_t hello_frame(uint8_t *buf, const char *cluster, uint32_t id, uint8_t version)
{
	struct kvfs_peer_hello h = {.version = version, .node_id = id, .epoch = 1};
	uint8_t body[128];
	size_t n;

	snprintf(h.cluster_id, sizeof(h.cluster_id), "%s", cluster);
	n = peer_msg_hello_encode(&h, body);
	assert_int_equal(frame_encode(buf, KVFS_MSG_HELLO, body, (uint32_t)n), 0);
	return KVFS_FRAME_HEADER + n;
}

static void raw_hello(struct raw *r, const char *cluster, uint32_t id, uint8_t version)
{
	uint8_t buf[256];

	raw_send(r, buf, hello_frame(buf, cluster, id, version));
}

static void raw_append(struct raw *r)
{
	uint8_t buf[KVFS_FRAME_HEADER + 8] = {0};
	uint8_t body[8] = {0};

	assert_int_equal(frame_encode(buf, KVFS_MSG_APPEND, body, sizeof(body)), 0);
	raw_send(r, buf, sizeof(buf));
}

/* A listener that answers every connection with a HELLO and (if reading) watches for EOF. */
struct raw_server {
	uv_tcp_t tcp;
	struct raw conns[8];
	int n, port;
	const char *cluster;
	uint32_t hello_id;
	const uint8_t *greeting; /* sent instead of the HELLO when not NULL */
	size_t greeting_len;
	bool reads;
	bool closed;
};

static void raw_server_conn(uv_stream_t *s, int status)
{
	struct raw_server *srv = s->data;
	struct raw *r;

	if (status != 0 || srv->n == 8)
		return;
	r = &srv->conns[srv->n++];
	memset(r, 0, sizeof(*r));
	assert_int_equal(uv_tcp_init(&loop, &r->tcp), 0);
	r->tcp.data = r;
	assert_int_equal(uv_accept(s, (uv_stream_t *)&r->tcp), 0);
	if (srv->greeting)
		raw_send(r, srv->greeting, srv->greeting_len);
	else
		raw_hello(r, srv->cluster, srv->hello_id, KVFS_PEER_PROTOCOL_VERSION);
	if (srv->reads)
		assert_int_equal(uv_read_start((uv_stream_t *)&r->tcp, raw_alloc, raw_read), 0);
}

static void raw_server_open(struct raw_server *srv, uint32_t hello_id, bool reads, int rcvbuf)
{
	struct sockaddr_in sa;
	struct sockaddr_storage ss;
	int len = sizeof(ss);
	uv_os_fd_t fd;

	memset(srv, 0, sizeof(*srv));
	srv->cluster = CLUSTER;
	srv->hello_id = hello_id;
	srv->reads = reads;
	assert_int_equal(uv_tcp_init(&loop, &srv->tcp), 0);
	srv->tcp.data = srv;
	assert_int_equal(uv_ip4_addr("127.0.0.1", 0, &sa), 0);
	assert_int_equal(uv_tcp_bind(&srv->tcp, (const struct sockaddr *)&sa, 0), 0);
	if (rcvbuf) {
		/* Accepted sockets inherit the listener's receive buffer. */
		assert_int_equal(uv_fileno((uv_handle_t *)&srv->tcp, &fd), 0);
		assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf)), 0);
	}
	assert_int_equal(uv_listen((uv_stream_t *)&srv->tcp, 8, raw_server_conn), 0);
	assert_int_equal(uv_tcp_getsockname(&srv->tcp, (struct sockaddr *)&ss, &len), 0);
	srv->port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

static void raw_server_close_cb(uv_handle_t *h)
{
	((struct raw_server *)h->data)->closed = true;
}

static void raw_server_close(struct raw_server *srv)
{
	int i;

	for (i = 0; i < srv->n; i++)
		raw_close(&srv->conns[i]);
	uv_close((uv_handle_t *)&srv->tcp, raw_server_close_cb);
	assert_true(run_until(flag_set, &srv->closed, WAIT_MS));
}

/* A port on which nothing listens (bound once, then released). */
static int dead_port(void)
{
	struct raw_server srv;
	int port;

	raw_server_open(&srv, 2, false, 0);
	port = srv.port;
	raw_server_close(&srv);
	return port;
}

/* ---- predicates ---- */

struct mesh {
	struct node *n;
	int count;
	uint32_t want;
};

static bool mesh_connected(void *arg)
{
	struct mesh *m = arg;
	int i, j;

	for (i = 0; i < m->count; i++)
		for (j = 0; j < m->count; j++)
			if (i != j && !m->n[i].up[m->n[j].id])
				return false;
	return true;
}

static bool mesh_received(void *arg)
{
	struct mesh *m = arg;
	int i;

	for (i = 0; i < m->count; i++)
		if (m->n[i].msgs < m->want)
			return false;
	return true;
}

/* ---- tests ---- */

static void test_open_errors(void **state)
{
	struct node a, b;
	struct kvfs_peers *p = NULL;
	struct kvfs_peers_config cfg = {.id = 1,
	                                .size = 3,
	                                .cluster_id = CLUSTER,
	                                .listen = "127.0.0.1:0",
	                                .on_message = on_message};

	cfg.id = 4;
	assert_int_equal(peer_open(&p, &loop, &cfg), -EINVAL);
	cfg.id = 1;
	cfg.cluster_id = "not hex";
	assert_int_equal(peer_open(&p, &loop, &cfg), -EINVAL);
	cfg.cluster_id = CLUSTER;
	cfg.listen = "localhost";
	assert_int_equal(peer_open(&p, &loop, &cfg), -EINVAL);
	cfg.listen = "127.0.0.1:70000";
	assert_int_equal(peer_open(&p, &loop, &cfg), -EINVAL);
	assert_null(p);

	node_open(&a, 1, 3);
	assert_true(peer_port(a.p) > 0);
	assert_int_equal(node_open_ex(&b, 2, 3, CLUSTER, peer_port(a.p), 0, 0), -EADDRINUSE);
	assert_int_equal(peer_send(a.p, 2, KVFS_MSG_APPEND, (const uint8_t *)"abcd", 4), -ENOTCONN);
	assert_int_equal(peer_send(a.p, 1, KVFS_MSG_APPEND, (const uint8_t *)"abcd", 4), -EINVAL);
	assert_int_equal(peer_send(a.p, 4, KVFS_MSG_APPEND, (const uint8_t *)"abcd", 4), -EINVAL);
	assert_int_equal(peer_send(a.p, 2, KVFS_MSG_HELLO, (const uint8_t *)"abcd", 4), -EINVAL);
	run_until(never, NULL, 20);
	node_close(&a);
	assert_int_equal(b.ups + b.downs + (int)b.msgs, 0);
}

static void mesh_run(void);
static bool both_up(void *arg);

/* arg: two struct node pointers, ids 1 and 2. */
static bool both_up_ab(void *arg)
{
	struct node **n = arg;

	return n[0]->up[2] && n[1]->up[1];
}

static bool got_one_each(void *arg)
{
	struct node **n = arg;

	return n[0]->msgs >= 1 && n[1]->msgs >= 1;
}

static struct kvfs_sec_keys keys_a, keys_b, keys_ab;

static void make_keys(void)
{
	uint8_t sa[32], sb[32];

	memset(sa, 'a', sizeof(sa));
	memset(sb, 'b', sizeof(sb));
	memset(&keys_a, 0, sizeof(keys_a));
	memset(&keys_b, 0, sizeof(keys_b));
	memset(&keys_ab, 0, sizeof(keys_ab));
	assert_int_equal(sec_keys_add(&keys_a, sa, 32), 0);
	assert_int_equal(sec_keys_add(&keys_b, sb, 32), 0);
	assert_int_equal(sec_keys_add(&keys_ab, sb, 32), 0);
	assert_int_equal(sec_keys_add(&keys_ab, sa, 32), 0);
}

static void test_mesh(void **state)
{
	test_keys = NULL;
	mesh_run();
}

/* The same over sealed records: the handshake, then every message in order, no flapping. */
static void test_mesh_secure(void **state)
{
	make_keys();
	test_keys = &keys_a;
	mesh_run();
	test_keys = NULL;
}

/* Nodes holding different secrets never connect, whoever dials; rotation: either key works. */
static void test_wrong_secret_and_rotation(void **state)
{
	struct node a, b;

	make_keys();
	test_keys = &keys_a;
	node_open(&a, 1, 2);
	test_keys = &keys_b;
	node_open(&b, 2, 2);
	point_at(&a, 2, peer_port(b.p));
	point_at(&b, 1, peer_port(a.p));
	run_until(never, NULL, 500);
	assert_int_equal(a.ups + b.ups + (int)a.msgs + (int)b.msgs, 0);
	node_close(&b);

	/* b now holds the new and the old secret: a (old only) connects to it. */
	test_keys = &keys_ab;
	node_open(&b, 2, 2);
	point_at(&a, 2, peer_port(b.p));
	point_at(&b, 1, peer_port(a.p));
	assert_true(run_until(both_up_ab, (struct node *[]){&a, &b}, 4 * WAIT_MS));
	assert_int_equal(send_seq(&a, 2, 0, 100), 0);
	assert_int_equal(send_seq(&b, 1, 0, 100), 0);
	assert_true(run_until(got_one_each, (struct node *[]){&a, &b}, WAIT_MS));
	node_close(&a);
	node_close(&b);
	test_keys = NULL;
}

/* A node that holds keys hangs up on every bare frame, garbage and replays; delivers nothing. */
static void test_secure_refuses_plaintext(void **state)
{
	struct node a;
	struct raw r, r2;
	uint8_t m1[KVFS_SEC_M1_BYTES] = {'K', 'V', 'F', 'S', '-', 'H', 'S', '1'};
	uint8_t junk[KVFS_SEC_AUTH_BYTES];

	make_keys();
	test_keys = &keys_a;
	node_open(&a, 1, 3);

	raw_connect(&r, peer_port(a.p)); /* a plaintext hello of the right cluster */
	raw_hello(&r, CLUSTER, 2, KVFS_PEER_PROTOCOL_VERSION);
	raw_append(&r);
	assert_true(run_until(raw_eof, &r, WAIT_MS));
	raw_close(&r);

	raw_connect(&r, peer_port(a.p)); /* a handshake's message 1, then a forged message 2 */
	for (size_t i = 8; i < sizeof(m1); i++)
		m1[i] = (uint8_t)(i * 7 + 1);
	memset(junk, 0x5a, sizeof(junk));
	raw_send(&r, m1, sizeof(m1));
	raw_send(&r, junk, sizeof(junk));
	assert_true(run_until(raw_eof, &r, WAIT_MS));
	raw_close(&r);

	raw_connect(&r, peer_port(a.p)); /* silence: closed after half the idle timeout */
	raw_connect(&r2, peer_port(a.p));
	assert_true(run_until(raw_eof, &r, 2 * WAIT_MS));
	assert_true(run_until(raw_eof, &r2, WAIT_MS));
	raw_close(&r);
	raw_close(&r2);

	assert_int_equal(a.ups + (int)a.msgs, 0);
	node_close(&a);
	test_keys = NULL;
}

/*
 * A node without keys (--insecure) that dials a node with keys, which greets it with the
 * handshake's message 1: refused, and redialed no sooner than PEER_BACKOFF_AUTH_MS (2 s), as a
 * dial that failed its handshake is, not every 50 to 500 ms with a warning each time.
 */
static void test_insecure_dials_secure_slowly(void **state)
{
	uint8_t m1[KVFS_SEC_M1_BYTES] = {'K', 'V', 'F', 'S', '-', 'H', 'S', '1'};
	struct raw_server srv;
	struct node a;

	test_keys = NULL;
	node_open(&a, 1, 2);
	raw_server_open(&srv, 2, true, 0);
	for (size_t i = 8; i < sizeof(m1); i++)
		m1[i] = (uint8_t)(i * 13 + 5);
	srv.greeting = m1;
	srv.greeting_len = sizeof(m1);
	point_at(&a, 2, srv.port);
	run_until(never, NULL, 1500);
	assert_int_equal(srv.n, 1);
	assert_true(srv.conns[0].eof); /* it hung up on the handshake */
	assert_int_equal(a.ups + (int)a.msgs, 0);
	node_close(&a);
	raw_server_close(&srv);
}

/* Hundreds of strangers holding connections open do not keep two peers apart. */
static void test_unproven_flood(void **state)
{
	enum { FLOOD = 200 };
	static struct raw r[FLOOD];
	struct node n[2];
	int i;

	make_keys();
	test_keys = &keys_a;
	node_open(&n[0], 1, 2);
	node_open(&n[1], 2, 2);
	for (i = 0; i < FLOOD; i++)
		raw_connect(&r[i], peer_port(n[i % 2].p));
	point_at(&n[0], 2, peer_port(n[1].p));
	point_at(&n[1], 1, peer_port(n[0].p));
	assert_true(run_until(both_up, n, 2 * WAIT_MS));
	assert_int_equal(send_seq(&n[0], 2, 0, 100), 0);
	assert_true(run_until(got_one_each, (struct node *[]){&n[1], &n[1]}, WAIT_MS));
	for (i = 0; i < FLOOD; i++)
		raw_close(&r[i]);
	node_close(&n[0]);
	node_close(&n[1]);
	test_keys = NULL;
}

/*
 * Two nodes that hold the secret and both say they are node 2 (a misconfiguration, or an old
 * process not quite gone): node 1 keeps the connection it has while it is alive, refuses the
 * other, and the mesh does not flap.
 */
static void test_duplicate_id_no_flap(void **state)
{
	struct node a, b1, b2;

	make_keys();
	test_keys = &keys_a;
	node_open(&a, 1, 3);
	node_open(&b1, 2, 3);
	node_open(&b2, 2, 3);
	point_at(&b1, 1, peer_port(a.p));
	assert_true(run_until(both_up_ab, (struct node *[]){&a, &b1}, WAIT_MS));
	point_at(&b2, 1, peer_port(a.p));
	run_until(never, NULL, 1500);
	assert_int_equal(a.ups, 1);
	assert_int_equal(a.downs, 0);
	assert_int_equal(b1.downs, 0);
	assert_false(b2.up[1]);
	node_close(&b2);
	node_close(&b1);
	node_close(&a);
	test_keys = NULL;
}

static void mesh_run(void)
{
	struct node n[3];
	struct mesh m = {n, 3, 0};
	uint32_t seq, i, j;

	for (i = 0; i < 3; i++)
		node_open(&n[i], i + 1, 3);
	for (i = 0; i < 3; i++)
		for (j = 0; j < 3; j++)
			if (i != j)
				point_at(&n[i], j + 1, peer_port(n[j].p));
	assert_true(run_until(mesh_connected, &m, WAIT_MS));
	for (i = 0; i < 3; i++) {
		assert_int_equal(n[i].ups, 2); /* one connection per pair, no flapping */
		for (j = 0; j < 3; j++)
			assert_int_equal(peer_connected(n[i].p, j + 1), i != j);
	}

	/* Every node sends 300 messages to each other one, sizes varying, interleaved. */
	for (seq = 0; seq < 300; seq++)
		for (i = 0; i < 3; i++)
			for (j = 0; j < 3; j++)
				if (i != j)
					assert_int_equal(
					    send_seq(&n[i], j + 1, seq, 4 + (seq * 97 + i) % 5000),
					    0);
	m.want = 600;
	assert_true(run_until(mesh_received, &m, WAIT_MS));
	for (i = 0; i < 3; i++) {
		assert_false(n[i].out_of_order);
		assert_int_equal(n[i].msgs, 600);
		assert_int_equal(n[i].downs, 0);
		for (j = 0; j < 3; j++)
			if (i != j)
				assert_int_equal(n[i].next_seq[j + 1], 300);
	}
	for (i = 0; i < 3; i++)
		node_close(&n[i]);
}

static void test_foreign_cluster_refused(void **state)
{
	struct node a, x;
	struct raw r;

	node_open(&a, 1, 3);

	/* By hand: another cluster's hello, then a message; the node hangs up, delivers nothing. */
	raw_connect(&r, peer_port(a.p));
	raw_hello(&r, "bad0", 2, KVFS_PEER_PROTOCOL_VERSION);
	raw_append(&r);
	assert_true(run_until(raw_eof, &r, WAIT_MS));
	raw_close(&r);

	/* A real node of another cluster, dialing and dialed. */
	assert_int_equal(node_open_ex(&x, 2, 3, "bad0", 0, 0, 0), 0);
	point_at(&x, 1, peer_port(a.p));
	point_at(&a, 2, peer_port(x.p));
	run_until(never, NULL, 300);
	assert_int_equal(a.ups + (int)a.msgs + x.ups + (int)x.msgs, 0);
	assert_int_equal(send_seq(&a, 2, 0, 4), -ENOTCONN);
	node_close(&x);
	node_close(&a);
}

static void test_bad_hello_refused(void **state)
{
	struct node a;
	struct raw r;
	struct raw_server srv;

	node_open(&a, 1, 3);

	raw_connect(&r, peer_port(a.p)); /* our own id */
	raw_hello(&r, CLUSTER, 1, KVFS_PEER_PROTOCOL_VERSION);
	assert_true(run_until(raw_eof, &r, WAIT_MS));
	raw_close(&r);

	raw_connect(&r, peer_port(a.p)); /* out of range */
	raw_hello(&r, CLUSTER, 4, KVFS_PEER_PROTOCOL_VERSION);
	assert_true(run_until(raw_eof, &r, WAIT_MS));
	raw_close(&r);

	raw_connect(&r, peer_port(a.p)); /* another protocol version */
	raw_hello(&r, CLUSTER, 2, KVFS_PEER_PROTOCOL_VERSION + 1);
	assert_true(run_until(raw_eof, &r, WAIT_MS));
	raw_close(&r);

	raw_connect(&r, peer_port(a.p)); /* the previous release's protocol (1, before issue 11) */
	raw_hello(&r, CLUSTER, 2, KVFS_PEER_PROTOCOL_VERSION - 1);
	assert_true(run_until(raw_eof, &r, WAIT_MS));
	raw_close(&r);

	raw_connect(&r, peer_port(a.p)); /* a message before the hello */
	raw_append(&r);
	assert_true(run_until(raw_eof, &r, WAIT_MS));
	raw_close(&r);

	raw_connect(&r, peer_port(a.p)); /* garbage: bad magic */
	raw_send(&r, "GET / HTTP/1.0\r\n\r\n", 18);
	assert_true(run_until(raw_eof, &r, WAIT_MS));
	raw_close(&r);

	/* Dialed as node 2, but node 3 answers. */
	raw_server_open(&srv, 3, true, 0);
	point_at(&a, 2, srv.port);
	assert_true(run_until(raw_eof, &srv.conns[0], WAIT_MS));
	raw_server_close(&srv);

	assert_int_equal(a.ups + (int)a.msgs, 0);
	node_close(&a);
}

static void test_slow_reader_bounded(void **state)
{
	const size_t max_queue = 256u << 10;
	const uint32_t len = 60000;
	struct node a;
	struct raw_server srv;
	int rv = 0, i;

	raw_server_open(&srv, 2, false, 4096); /* never reads; tiny receive buffer */
	assert_int_equal(node_open_ex(&a, 1, 2, CLUSTER, 0, max_queue, 0), 0);
	point_at(&a, 2, srv.port);
	assert_true(run_until(flag_set, &a.up[2], WAIT_MS));

	/* 64 MiB if nothing stopped it; the kernel's buffers and the queue bound do. */
	for (i = 0; i < 1100; i++) {
		rv = send_seq(&a, 2, (uint32_t)i, len);
		if (rv != 0)
			break;
		assert_true(peer_queued(a.p, 2) <= max_queue + KVFS_FRAME_HEADER + len);
	}
	assert_int_equal(rv, -ENOBUFS);
	assert_true(i < 1000);
	assert_false(peer_connected(a.p, 2));
	assert_int_equal(send_seq(&a, 2, 0, 4), -ENOTCONN);
	assert_true(a.up[2]); /* told later, from the loop, not from inside peer_send */
	for (i = 0; i < 50 && a.downs == 0; i++)
		uv_run(&loop, UV_RUN_ONCE);
	assert_int_equal(a.downs, 1);

	/* It redials (the raw server says hello again), then closing drops everything queued. */
	assert_true(run_until(flag_set, &a.up[2], WAIT_MS));
	for (i = 0; i < 20; i++)
		assert_int_equal(send_seq(&a, 2, (uint32_t)i, len), 0);
	node_close(&a);
	raw_server_close(&srv);
}

static bool both_up(void *arg)
{
	struct node *n = arg;

	return n[0].up[2] && n[1].up[1];
}

static bool down_1_2(void *arg)
{
	return !((struct node *)arg)->up[2];
}

static void test_reconnect(void **state)
{
	struct node n[2];
	struct mesh m = {n, 2, 1};
	int port;

	node_open(&n[0], 1, 2);
	node_open(&n[1], 2, 2);
	port = peer_port(n[1].p);
	point_at(&n[0], 2, port);
	point_at(&n[1], 1, peer_port(n[0].p));
	assert_true(run_until(both_up, n, WAIT_MS));

	node_close(&n[1]);
	assert_true(run_until(down_1_2, &n[0], WAIT_MS));
	assert_int_equal(send_seq(&n[0], 2, 0, 4), -ENOTCONN);
	run_until(never, NULL, 100); /* node 1 redials in vain meanwhile */
	assert_true(peer_refused(n[0].p, 2));

	/* Node 2 comes back on the same port, without node 1's address: node 1 must redial. */
	assert_int_equal(node_open_ex(&n[1], 2, 2, CLUSTER, port, 0, 0), 0);
	assert_true(run_until(both_up, n, WAIT_MS));
	assert_false(peer_refused(n[0].p, 2));
	assert_int_equal(send_seq(&n[0], 2, 0, 4), 0);
	assert_int_equal(send_seq(&n[1], 1, 0, 4), 0);
	assert_true(run_until(mesh_received, &m, WAIT_MS));
	node_close(&n[0]);
	node_close(&n[1]);
}

static bool refused_2(void *arg)
{
	return peer_refused(arg, 2);
}

static void test_refused(void **state)
{
	struct node a;

	node_open(&a, 1, 2);
	assert_false(peer_refused(a.p, 2));
	point_at(&a, 2, dead_port());
	assert_true(run_until(refused_2, a.p, WAIT_MS));
	run_until(never, NULL, 200); /* a few redials with backoff */
	assert_true(peer_refused(a.p, 2));
	assert_int_equal(a.ups, 0);
	node_close(&a);
}

/* Host names: resolved at every dial; a name that does not resolve is retried, one that refuses
 * counts as refused; unusable addresses are ignored; closing waits for a lookup in flight. */
static void test_names(void **state)
{
	struct node n[2], c;
	char addr[64];

	node_open(&n[0], 1, 2);
	node_open(&n[1], 2, 2);
	peer_set_addr(n[0].p, 2, "a b:1");
	peer_set_addr(n[0].p, 2, "localhost:0");
	peer_set_addr(n[0].p, 2, "[::1");
	peer_set_addr(n[0].p, 2, "evil\n:1");
	run_until(never, NULL, 50);
	assert_int_equal(n[0].ups + n[1].ups, 0);

	snprintf(addr, sizeof(addr), "nosuch.invalid:%d", peer_port(n[1].p));
	peer_set_addr(n[0].p, 2, addr);
	run_until(never, NULL, 200);
	assert_false(peer_refused(n[0].p, 2));
	assert_int_equal(n[0].ups + n[1].ups, 0);

	snprintf(addr, sizeof(addr), "localhost:%d", dead_port());
	peer_set_addr(n[0].p, 2, addr);
	assert_true(run_until(refused_2, n[0].p, WAIT_MS));

	snprintf(addr, sizeof(addr), "localhost:%d", peer_port(n[1].p));
	peer_set_addr(n[0].p, 2, addr);
	snprintf(addr, sizeof(addr), "localhost:%d", peer_port(n[0].p));
	peer_set_addr(n[1].p, 1, addr);
	assert_true(run_until(both_up, n, WAIT_MS));
	assert_false(peer_refused(n[0].p, 2));
	node_close(&n[0]);
	node_close(&n[1]);

	/* Closed with a lookup in flight: the close completes once the lookup is back. */
	node_open(&c, 1, 2);
	peer_set_addr(c.p, 2, "nosuch.invalid:7001");
	node_close(&c);
}

static void test_idle_timeout(void **state)
{
	struct node a;
	struct raw r;

	assert_int_equal(node_open_ex(&a, 1, 3, CLUSTER, 0, 0, 150), 0);

	raw_connect(&r, peer_port(a.p)); /* says nothing at all */
	assert_true(run_until(raw_eof, &r, WAIT_MS));
	raw_close(&r);

	raw_connect(&r, peer_port(a.p)); /* says hello, then nothing */
	raw_hello(&r, CLUSTER, 3, KVFS_PEER_PROTOCOL_VERSION);
	assert_true(run_until(flag_set, &a.up[3], WAIT_MS));
	assert_true(run_until(raw_eof, &r, WAIT_MS));
	raw_close(&r);
	assert_int_equal(a.ups, 1);
	assert_int_equal(a.downs, 1);
	node_close(&a);
}

/* Two nodes with nothing to say to each other stay connected: their pings keep the quiet
 * connection alive past many idle timeouts, and no ping reaches on_message. */
static void test_quiet_connection_kept(void **state)
{
	struct node n[2];

	assert_int_equal(node_open_ex(&n[0], 1, 2, CLUSTER, 0, 0, 120), 0);
	assert_int_equal(node_open_ex(&n[1], 2, 2, CLUSTER, 0, 0, 120), 0);
	point_at(&n[0], 2, peer_port(n[1].p));
	point_at(&n[1], 1, peer_port(n[0].p));
	assert_true(run_until(both_up, n, WAIT_MS));
	run_until(never, NULL, 1000);
	assert_int_equal(n[0].downs + n[1].downs, 0);
	assert_int_equal(n[0].msgs + n[1].msgs, 0);
	assert_true(peer_connected(n[0].p, 2) && peer_connected(n[1].p, 1));
	node_close(&n[0]);
	node_close(&n[1]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_open_errors, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_mesh, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_mesh_secure, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_wrong_secret_and_rotation, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_secure_refuses_plaintext, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_insecure_dials_secure_slowly, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_unproven_flood, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_duplicate_id_no_flap, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_foreign_cluster_refused, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_bad_hello_refused, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_slow_reader_bounded, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_reconnect, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_refused, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_names, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_idle_timeout, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_quiet_connection_kept, setup, teardown),
	};

	logging_init(0, KVFS_LOG_WARN);
	if (sec_init() != 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
