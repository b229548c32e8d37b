/*
 * Unit tests of the test-only link delay (replica/peer_delay_uv.c, peer.h "Testing"): real TCP on
 * 127.0.0.1 between two meshes in one libuv loop. A node whose delay file says "DELAY JITTER"
 * delivers its messages in order and no sooner than DELAY - JITTER, while the other direction
 * stays fast; over sealed records too (nonces in order). The file is re-read when it is replaced;
 * a missing, empty or bad file means no delay. Held messages count in peer_queued(); a lost
 * connection and closing drop them (run under ASan/LeakSanitizer).
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
#include <unistd.h>
#include <uv.h>

#include "kvfs/logging.h"
#include "kvfs/peer.h"
#include "kvfs/peer_msg.h"
#include "kvfs/peer_sec.h"

#define CLUSTER "c0ffee"
#define WAIT_MS 3000
#define NMSG    200u

static uv_loop_t loop;
static uv_timer_t watchdog;
static bool timed_out;
static char dir[64];
static const struct kvfs_sec_keys *test_keys;

static void watchdog_cb(uv_timer_t *t)
{
	timed_out = true;
}

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
	snprintf(dir, sizeof(dir), "/tmp/kvfs-peer-delay-XXXXXX");
	assert_non_null(mkdtemp(dir));
	assert_int_equal(uv_loop_init(&loop), 0);
	assert_int_equal(uv_timer_init(&loop, &watchdog), 0);
	return 0;
}

static int teardown(void **state)
{
	char path[128];
	int i;

	uv_close((uv_handle_t *)&watchdog, NULL);
	for (i = 0; i < 100 && uv_run(&loop, UV_RUN_NOWAIT) != 0; i++)
		;
	assert_int_equal(uv_loop_close(&loop), 0); /* every handle was closed */
	snprintf(path, sizeof(path), "%s/delay", dir);
	unlink(path);
	rmdir(dir);
	return 0;
}

/* Replaces the delay file atomically (as the cluster harness does); NULL removes it. */
static void write_delay(const char *text)
{
	char path[128], tmp[128];
	FILE *f;

	snprintf(path, sizeof(path), "%s/delay", dir);
	if (text == NULL) {
		unlink(path);
		return;
	}
	snprintf(tmp, sizeof(tmp), "%s/delay.tmp", dir);
	f = fopen(tmp, "w");
	assert_non_null(f);
	fputs(text, f);
	assert_int_equal(fclose(f), 0);
	assert_int_equal(rename(tmp, path), 0);
}

/* ---- nodes ---- */

struct node {
	struct kvfs_peers *p;
	uint32_t id;
	bool up[3];
	uint32_t msgs;
	uint32_t next_seq;
	bool out_of_order;
	uint64_t first_at, last_at; /* uv_now() of the first and last message received */
	bool closed;
};

static void on_message(void *arg, uint32_t from, uint8_t type, const uint8_t *payload, uint32_t len)
{
	struct node *n = arg;
	uint32_t seq;

	assert_int_equal(type, KVFS_MSG_APPEND);
	assert_true(len >= 4);
	memcpy(&seq, payload, 4);
	if (seq != n->next_seq)
		n->out_of_order = true;
	n->next_seq = seq + 1;
	if (n->msgs++ == 0)
		n->first_at = uv_now(&loop);
	n->last_at = uv_now(&loop);
}

static void on_state(void *arg, uint32_t id, bool connected)
{
	((struct node *)arg)->up[id] = connected;
}

/* Opens node id (1 or 2) of a cluster of 2; delayed: with the test's delay file. */
static void node_open(struct node *n, uint32_t id, bool delayed)
{
	char path[128];
	struct kvfs_peers_config cfg = {
	    .id = id,
	    .size = 2,
	    .cluster_id = CLUSTER,
	    .listen = "127.0.0.1:0",
	    .epoch = 7,
	    .keys = test_keys,
	    .on_message = on_message,
	    .on_state = on_state,
	    .arg = n,
	};

	snprintf(path, sizeof(path), "%s/delay", dir);
	cfg.test_delay_file = delayed ? path : NULL;
	memset(n, 0, sizeof(*n));
	n->id = id;
	assert_int_equal(peer_open(&n->p, &loop, &cfg), 0);
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

static bool both_up(void *arg)
{
	struct node *n = arg;

	return n[0].up[2] && n[1].up[1];
}

static void connect_pair(struct node *n)
{
	char addr[32];

	snprintf(addr, sizeof(addr), "127.0.0.1:%d", peer_port(n[1].p));
	peer_set_addr(n[0].p, 2, addr);
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", peer_port(n[0].p));
	peer_set_addr(n[1].p, 1, addr);
	assert_true(run_until(both_up, n, WAIT_MS));
}

static void send_seqs(struct node *n, uint32_t to, uint32_t from, uint32_t count)
{
	uint8_t buf[64] = {0};

	for (uint32_t s = from; s < from + count; s++) {
		memcpy(buf, &s, 4);
		assert_int_equal(peer_send(n->p, to, KVFS_MSG_APPEND, buf, sizeof(buf)), 0);
	}
}

struct want {
	struct node *n;
	uint32_t msgs;
};

static bool received(void *arg)
{
	struct want *w = arg;

	return w->n->msgs >= w->msgs;
}

/* Sends NMSG each way at once: node 1's arrive in order, no sooner than min_ms; node 2's (no
 * delay) within fast_ms. */
static void exchange(struct node *n, uint64_t min_ms, uint64_t fast_ms)
{
	struct want w0 = {&n[0], NMSG}, w1 = {&n[1], NMSG};
	uint64_t t0;

	n[0].msgs = n[1].msgs = 0;
	uv_update_time(&loop);
	t0 = uv_now(&loop);
	send_seqs(&n[0], 2, n[1].next_seq, NMSG);
	send_seqs(&n[1], 1, n[0].next_seq, NMSG);
	assert_true(run_until(received, &w0, WAIT_MS));
	assert_true(run_until(received, &w1, WAIT_MS));
	assert_false(n[0].out_of_order || n[1].out_of_order);
	assert_true(n[1].first_at >= t0 + min_ms); /* delayed */
	assert_true(n[0].last_at <= t0 + fast_ms); /* not delayed */
}

/* ---- tests ---- */

static void delayed_pair_run(void)
{
	struct node n[2];

	write_delay("100 20\n");
	node_open(&n[0], 1, true);
	node_open(&n[1], 2, false);
	connect_pair(n);
	exchange(n, 80, 60);
	/* Messages sent over time, each with its own jitter, still arrive in order. */
	write_delay("30 30");
	run_until(never, NULL, 150); /* the file is looked at again after 100 ms */
	{
		struct want w = {&n[1], n[1].msgs + 50};
		uint32_t base = n[1].next_seq;

		for (uint32_t i = 0; i < 50; i++) {
			send_seqs(&n[0], 2, base + i, 1);
			run_until(never, NULL, 2);
		}
		assert_true(run_until(received, &w, WAIT_MS));
	}
	assert_false(n[1].out_of_order);
	node_close(&n[0]);
	node_close(&n[1]);
}

static void test_delay_in_order_and_later(void **state)
{
	test_keys = NULL;
	delayed_pair_run();
}

/* Over sealed records: frames are held before sealing, so the nonces stay in order. */
static void test_delay_sealed(void **state)
{
	static struct kvfs_sec_keys keys;
	uint8_t secret[32];

	memset(secret, 's', sizeof(secret));
	memset(&keys, 0, sizeof(keys));
	assert_int_equal(sec_keys_add(&keys, secret, sizeof(secret)), 0);
	test_keys = &keys;
	delayed_pair_run();
	test_keys = NULL;
}

/* A missing, empty or bad file: no delay; a new file takes effect within 100 ms. */
static void test_delay_file_changes(void **state)
{
	struct node n[2];

	write_delay(NULL);
	node_open(&n[0], 1, true);
	node_open(&n[1], 2, false);
	connect_pair(n);
	exchange(n, 0, 60);
	write_delay("150 0");
	run_until(never, NULL, 150);
	exchange(n, 150, 60);
	write_delay("abc 3");
	run_until(never, NULL, 150);
	exchange(n, 0, 60);
	write_delay("150 10001");
	run_until(never, NULL, 150);
	exchange(n, 0, 60);
	write_delay("");
	run_until(never, NULL, 150);
	exchange(n, 0, 60);
	node_close(&n[0]);
	node_close(&n[1]);
}

static bool one_down(void *arg)
{
	return !((struct node *)arg)[0].up[2];
}

/* Held messages count in peer_queued(); losing the connection drops them, and so does closing:
 * LeakSanitizer finds nothing left. */
static void test_delay_dropped_on_close(void **state)
{
	struct node n[2];

	write_delay("5000 0");
	node_open(&n[0], 1, true);
	node_open(&n[1], 2, false);
	connect_pair(n);
	send_seqs(&n[0], 2, 0, 10);
	assert_true(peer_queued(n[0].p, 2) >= 10 * 64);
	node_close(&n[1]);
	assert_true(run_until(one_down, n, WAIT_MS));
	assert_int_equal(peer_queued(n[0].p, 2), 0);
	/* A new connection: what was held for the old one is gone, new messages go out. */
	node_open(&n[1], 2, false);
	write_delay("0 0");
	connect_pair(n);
	run_until(never, NULL, 150);
	send_seqs(&n[0], 2, 0, 3);
	{
		struct want w = {&n[1], 3};

		assert_true(run_until(received, &w, WAIT_MS));
	}
	assert_false(n[1].out_of_order);
	/* Closing with messages held frees them. */
	write_delay("5000 0");
	run_until(never, NULL, 150);
	send_seqs(&n[0], 2, 3, 10);
	assert_true(peer_queued(n[0].p, 2) > 0);
	node_close(&n[0]);
	node_close(&n[1]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_delay_in_order_and_later, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_delay_sealed, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_delay_file_changes, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_delay_dropped_on_close, setup, teardown),
	};

	logging_init(0, KVFS_LOG_WARN);
	if (sec_init() != 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
