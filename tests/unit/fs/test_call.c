/*
 * Unit tests for call deadlines (fs/fuse_call.c): a process's slow requests in a row share one
 * write timeout; quick requests, other processes and pauses between calls start afresh. The
 * node's clock and libfuse's request context are stubbed here.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "fs.h"
#include "kvfs/node.h"

static uint64_t clock_ms;
static struct fuse_ctx ctx;

uint64_t node_now_ms(const struct kvfs_node *n)
{
	return clock_ms;
}

uint64_t fuse_metrics_now_us(void)
{
	return clock_ms * 1000;
}

const struct fuse_ctx *fuse_req_ctx(fuse_req_t req)
{
	return &ctx;
}

static struct kvfs_fs fs = {.write_timeout_ms = 5000};

/* One request of pid that arrives now and is answered after `waited` ms; returns its deadline. */
static uint64_t request(pid_t pid, uint64_t waited)
{
	struct fuse_call call;

	ctx.pid = pid;
	fuse_call_begin(&fs, NULL, &call);
	clock_ms += waited;
	fuse_call_end(&fs, &call);
	return call.deadline;
}

static int setup(void **state)
{
	memset(fs.calls, 0, sizeof(fs.calls));
	clock_ms = 100000;
	return 0;
}

/* Normal operation: every request gets the whole write timeout. */
static void test_quick_requests_get_their_own_deadline(void **state)
{
	for (int i = 0; i < 100; i++) {
		uint64_t now = clock_ms;

		assert_int_equal(request(42, 3), now + 5000);
	}
}

/* A lookup that waited 4.9 s for a read index, then the create and the flush of `echo > f`:
 * all within one write timeout of the lookup's arrival. */
static void test_slow_requests_in_a_row_share_one_deadline(void **state)
{
	uint64_t t0 = clock_ms;

	assert_int_equal(request(42, 4900), t0 + 5000);
	clock_ms += 2;
	assert_int_equal(request(42, 100), t0 + 5000); /* the create */
	clock_ms += 50;
	assert_int_equal(request(42, 0), t0 + 5000); /* the flush */
}

/* Another process, or the same one after a pause, starts a call of its own. */
static void test_other_processes_and_pauses_start_afresh(void **state)
{
	uint64_t t0 = clock_ms, t1;

	request(42, 3000);
	t1 = clock_ms;
	assert_int_equal(request(43, 0), t1 + 5000);
	clock_ms += 1500;
	t1 = clock_ms;
	assert_int_equal(request(42, 0), t1 + 5000);
	(void)t0;
}

/* A call ends a second after its last slow request, however many quick ones came meanwhile. */
static void test_the_call_ends_a_second_after_its_last_slow_request(void **state)
{
	uint64_t t0 = clock_ms, t1;

	request(42, 300);
	for (int i = 0; i < 9; i++) {
		clock_ms += 100;
		assert_int_equal(request(42, 5), t0 + 5000);
	}
	clock_ms += 300;
	t1 = clock_ms;
	assert_int_equal(request(42, 0), t1 + 5000);
}

/* Requests the kernel makes on no process's behalf (pid 0) never share. */
static void test_pid_zero_never_shares(void **state)
{
	uint64_t t1;

	request(0, 4000);
	t1 = clock_ms;
	assert_int_equal(request(0, 0), t1 + 5000);
}

/* More slow processes than slots: the least recently answered one makes room. */
static void test_many_processes(void **state)
{
	uint64_t t0 = clock_ms, t1;

	for (pid_t p = 1; p <= 2 * KVFS_FS_CALLS; p++)
		request(p, 300);
	t1 = clock_ms;
	/* The most recent ones still share their deadline ... */
	assert_int_equal(request(2 * KVFS_FS_CALLS, 0), t1 - 300 + 5000);
	/* ... the oldest were forgotten. */
	assert_int_equal(request(1, 0), t1 + 5000);
	(void)t0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup(test_quick_requests_get_their_own_deadline, setup),
	    cmocka_unit_test_setup(test_slow_requests_in_a_row_share_one_deadline, setup),
	    cmocka_unit_test_setup(test_other_processes_and_pauses_start_afresh, setup),
	    cmocka_unit_test_setup(test_the_call_ends_a_second_after_its_last_slow_request, setup),
	    cmocka_unit_test_setup(test_pid_zero_never_shares, setup),
	    cmocka_unit_test_setup(test_many_processes, setup),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
