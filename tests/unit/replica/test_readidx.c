/*
 * Unit tests of the read index and the restart contract (readidx.c) with a scripted io: a round
 * needs a majority at the leader's epoch, a follower waits for the index it was given, reads
 * expire with EIO and say why, and the caught-up rule. The simulation (test_repl_sim.c,
 * sim_read.c) runs it at scale; these pin down single cases, regressions included.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "kvfs/readidx.h"

struct env {
	struct kvfs_readidx *ri;
	uint64_t now;
	struct kvfs_readidx_view view;
	uint64_t entry_epoch; /* of every entry */
	bool connected;
	uint32_t index_to[16]; /* READ_INDEX sent */
	uint64_t index_id[16];
	int nindex;
	uint32_t reply_to; /* the last READ_INDEX_REPLY sent */
	uint64_t reply_id, reply_epoch, reply_commit;
	bool reply_ok;
	int nreply;
	int reports[3];
	int done_err[4];
	int ndone[4];
};

static struct env *cur;

#define ROUND(id) ((1ull << 63) | (id)) /* a round's id (readidx.c) */

static uint64_t io_now(void *arg)
{
	return ((struct env *)arg)->now;
}

static void io_view(void *arg, struct kvfs_readidx_view *v)
{
	*v = ((struct env *)arg)->view;
}

static uint64_t io_entry_epoch(void *arg, uint64_t index)
{
	return ((struct env *)arg)->entry_epoch;
}

static bool io_connected(void *arg, uint32_t id)
{
	return ((struct env *)arg)->connected;
}

static void io_send_index(void *arg, uint32_t to, uint64_t id)
{
	struct env *e = arg;

	assert_true(e->nindex < 16);
	e->index_to[e->nindex] = to;
	e->index_id[e->nindex++] = id;
}

static void io_send_reply(void *arg, uint32_t to, uint64_t id, uint64_t epoch, uint64_t commit,
                          bool ok)
{
	struct env *e = arg;

	e->reply_to = to;
	e->reply_id = id;
	e->reply_epoch = epoch;
	e->reply_commit = commit;
	e->reply_ok = ok;
	e->nreply++;
}

static void io_report(void *arg, const struct kvfs_readidx_report *r)
{
	((struct env *)arg)->reports[r->event]++;
}

/* Callback slots: arg points at env->ndone[i]; the error goes to done_err[i]. */
static void on(void *arg, int err, uint64_t zero)
{
	int i = (int)((int *)arg - cur->ndone);

	assert_int_equal(zero, 0);
	cur->ndone[i]++;
	cur->done_err[i] = err;
}

static void setup(struct env *e, uint32_t id, uint32_t size)
{
	struct kvfs_readidx_io io = {
	    .arg = e,
	    .now_ms = io_now,
	    .view = io_view,
	    .entry_epoch = io_entry_epoch,
	    .connected = io_connected,
	    .send_index = io_send_index,
	    .send_reply = io_send_reply,
	    .report = io_report,
	};
	struct kvfs_readidx_config cfg = {
	    .id = id, .cluster_size = size, .write_timeout_ms = 1000, .first_id = 1000};

	memset(e, 0, sizeof(*e));
	cur = e;
	e->now = 100;
	e->connected = true;
	assert_int_equal(readidx_init(&e->ri, &cfg, &io), 0);
}

static void test_bad_config(void **state)
{
	struct kvfs_readidx *ri;
	struct kvfs_readidx_io io = {0};
	struct kvfs_readidx_config cfg = {.id = 256, .cluster_size = 3, .first_id = 1};

	assert_int_equal(readidx_init(&ri, &cfg, &io), -EINVAL);
	cfg.id = 1;
	cfg.cluster_size = 0;
	assert_int_equal(readidx_init(&ri, &cfg, &io), -EINVAL);
	cfg.cluster_size = 3;
	cfg.id = 0;
	assert_int_equal(readidx_init(&ri, &cfg, &io), -EINVAL);
	cfg.id = 1;
	cfg.first_id = 0;
	assert_int_equal(readidx_init(&ri, &cfg, &io), -EINVAL);
	cfg.first_id = 1ull << 63;
	assert_int_equal(readidx_init(&ri, &cfg, &io), -EINVAL);
}

/* The leader answers only once a majority answered its round with its own epoch. */
static void test_leader_round(void **state)
{
	struct env e;
	uint64_t round;

	setup(&e, 1, 5);
	e.view = (struct kvfs_readidx_view){
	    .leads = true, .epoch = 7, .leader = 0, .commit = 40, .applied = 40};
	assert_int_equal(readidx_barrier(e.ri, 0, on, &e.ndone[0]), 0);
	assert_int_equal(e.nindex, 4); /* a round to every follower */
	round = e.index_id[0];
	assert_int_equal(e.ndone[0], 0);
	/* a stale epoch, a refusal, a wrong id, a duplicate: none counts */
	readidx_on_reply(e.ri, 2, round, 6, 0, true);
	readidx_on_reply(e.ri, 3, round, 7, 0, false);
	readidx_on_reply(e.ri, 4, round + 1, 7, 0, true);
	readidx_on_reply(e.ri, 5, round, 7, 0, true);
	readidx_on_reply(e.ri, 5, round, 7, 0, true);
	assert_int_equal(e.ndone[0], 0);
	/* a read arriving during the round waits for the next one */
	assert_int_equal(readidx_barrier(e.ri, 0, on, &e.ndone[1]), 0);
	assert_int_equal(e.nindex, 4);
	readidx_on_reply(e.ri, 2, round, 7, 0, true); /* 1, 5, 2: a majority of 5 */
	assert_int_equal(e.ndone[0], 1);
	assert_int_equal(e.done_err[0], 0);
	assert_int_equal(e.ndone[1], 0);
	assert_int_equal(e.nindex, 8); /* the next round started at once */
	readidx_close(e.ri);
}

/* A deposed leader (its followers moved to a newer epoch) never answers; the read fails with
 * EIO at its deadline, reported as such. */
static void test_deposed_leader_expires(void **state)
{
	struct env e;

	setup(&e, 1, 3);
	e.view = (struct kvfs_readidx_view){.leads = true, .epoch = 3, .commit = 10, .applied = 10};
	assert_int_equal(readidx_barrier(e.ri, 500, on, &e.ndone[0]), 0);
	readidx_on_reply(e.ri, 2, e.index_id[0], 4, 0, true);
	readidx_on_reply(e.ri, 3, e.index_id[1], 4, 0, false);
	e.now = 400;
	readidx_tick(e.ri); /* a new round */
	assert_int_equal(e.nindex, 4);
	assert_int_equal(e.ndone[0], 0);
	e.now = 500;
	readidx_tick(e.ri);
	assert_int_equal(e.ndone[0], 1);
	assert_int_equal(e.done_err[0], -EIO);
	assert_int_equal(e.reports[KVFS_READIDX_EXPIRED], 1);
	assert_int_equal(e.reports[KVFS_READIDX_CATCHUP_EXPIRED], 0);
	assert_false(readidx_busy(e.ri));
	readidx_close(e.ri);
}

/* A follower asks its leader, then waits until it applied the index it was given; the leader
 * answers a follower's request after its round. */
static void test_follower(void **state)
{
	struct env e;
	uint64_t id;

	setup(&e, 2, 3);
	e.view = (struct kvfs_readidx_view){.epoch = 5, .leader = 1, .commit = 8, .applied = 8};
	assert_int_equal(readidx_barrier(e.ri, 0, on, &e.ndone[0]), 0);
	assert_int_equal(e.nindex, 1);
	assert_int_equal(e.index_to[0], 1);
	id = e.index_id[0];
	/* Regression (simulation, 3 replicas, seed 939): ids start where the binding says (a
	 * clock), so that a leader's answer to our predecessor's request is not taken for ours. */
	assert_int_equal(id, 1000);
	readidx_on_reply(e.ri, 1, id, 5, 12, true);
	assert_int_equal(e.ndone[0], 0); /* applied 8 < 12 */
	e.view.applied = 12;
	readidx_progress(e.ri);
	assert_int_equal(e.ndone[0], 1);
	assert_int_equal(e.done_err[0], 0);

	/* A refusal, or no answer, is asked again. */
	assert_int_equal(readidx_barrier(e.ri, 0, on, &e.ndone[1]), 0);
	readidx_on_reply(e.ri, 1, e.index_id[1], 5, 0, false);
	readidx_tick(e.ri);
	assert_int_equal(e.nindex, 3);
	e.now += KVFS_READIDX_RETRY_MS;
	readidx_tick(e.ri);
	assert_int_equal(e.nindex, 4);
	/* A reply from an older epoch than ours does not count. */
	readidx_on_reply(e.ri, 1, e.index_id[3], 4, 12, true);
	assert_int_equal(e.ndone[1], 0);

	/* Our leader's round: ok only from our leader, with our epoch. */
	readidx_on_index(e.ri, 1, ROUND(77));
	assert_int_equal(e.reply_id, ROUND(77));
	assert_true(e.reply_ok);
	assert_int_equal(e.reply_epoch, 5);
	readidx_on_index(e.ri, 3, ROUND(78));
	assert_false(e.reply_ok);
	readidx_fail_all(e.ri, -ESHUTDOWN);
	assert_int_equal(e.done_err[1], -ESHUTDOWN);
	readidx_close(e.ri);

	/* The leader's side of a follower's request. */
	setup(&e, 1, 3);
	e.view = (struct kvfs_readidx_view){.leads = true, .epoch = 5, .commit = 20, .applied = 20};
	readidx_on_index(e.ri, 2, 9);
	assert_int_equal(e.nreply, 0);
	assert_int_equal(e.nindex, 2);
	readidx_on_reply(e.ri, 3, e.index_id[0], 5, 0, true);
	assert_int_equal(e.nreply, 1);
	assert_int_equal(e.reply_to, 2);
	assert_int_equal(e.reply_id, 9);
	assert_int_equal(e.reply_commit, 20);
	assert_true(e.reply_ok);
	/* Deposed with a request waiting: the follower hears no. */
	readidx_on_index(e.ri, 2, 10);
	e.view.leads = false;
	readidx_tick(e.ri);
	assert_int_equal(e.reply_id, 10);
	assert_false(e.reply_ok);
	assert_false(readidx_busy(e.ri));
	readidx_close(e.ri);
}

/* Regression: a read noted on a leader that lost and regained the lead between two ticks is
 * answered with the commit index of the epoch its round confirms, not the older one. */
static void test_index_of_the_confirming_epoch(void **state)
{
	struct env e;

	setup(&e, 1, 3);
	e.view = (struct kvfs_readidx_view){.leads = true, .epoch = 3, .commit = 10, .applied = 10};
	readidx_on_index(e.ri, 2, 1); /* in the round of epoch 3 */
	e.view = (struct kvfs_readidx_view){.leads = true, .epoch = 9, .commit = 30, .applied = 30};
	readidx_tick(e.ri); /* a round of epoch 9 */
	readidx_on_reply(e.ri, 3, e.index_id[e.nindex - 1], 9, 0, true);
	assert_int_equal(e.nreply, 1);
	assert_int_equal(e.reply_commit, 30);
	assert_int_equal(e.reply_epoch, 9);
	readidx_close(e.ri);
}

/*
 * Regression (simulation, seed 7 of 5 replicas): node 2 asked node 4, its leader then, for a
 * read index; by the time the request arrived node 2 had been elected and node 4 followed it.
 * Node 4 took the request for its leader's round and answered ok (with no commit index), and
 * node 2 took that for the answer to its request: a linearizable read answered at index 0.
 */
static void test_request_is_not_a_round(void **state)
{
	struct env e;

	setup(&e, 4, 5);
	e.view = (struct kvfs_readidx_view){.epoch = 28, .leader = 2, .commit = 6, .applied = 6};
	readidx_on_index(e.ri, 2, 2); /* node 2's request, not a round */
	assert_int_equal(e.nreply, 1);
	assert_false(e.reply_ok);
	readidx_close(e.ri);

	setup(&e, 2, 5);
	e.view = (struct kvfs_readidx_view){.epoch = 26, .leader = 4, .commit = 6, .applied = 0};
	assert_int_equal(readidx_barrier(e.ri, 0, on, &e.ndone[0]), 0);
	e.view = (struct kvfs_readidx_view){.epoch = 28, .leader = 0, .commit = 6, .applied = 0};
	/* an ok answer to a round it never ran, carrying its request's id: not an answer */
	readidx_on_reply(e.ri, 4, ROUND(e.index_id[0]), 28, 0, true);
	assert_int_equal(e.ndone[0], 0);
	readidx_close(e.ri);
}

/* The restart contract: caught up once the leader's commit index of its own epoch is applied. */
static void test_caught_up(void **state)
{
	struct env e;

	setup(&e, 2, 3);
	e.view = (struct kvfs_readidx_view){.epoch = 4, .leader = 1, .applied = 5};
	assert_false(readidx_caught_up(e.ri));
	assert_int_equal(readidx_wait_caught_up(e.ri, 0, on, &e.ndone[0]), 0);
	/* heard, but not applied */
	e.view.heard = 9;
	e.entry_epoch = 4;
	readidx_progress(e.ri);
	assert_false(readidx_caught_up(e.ri));
	/* applied, but the entry is of an older epoch: a candidate's stale commit index */
	e.view.applied = 9;
	e.entry_epoch = 3;
	readidx_progress(e.ri);
	assert_false(readidx_caught_up(e.ri));
	/* or not in the log (compacted): proves nothing */
	e.entry_epoch = 0;
	readidx_progress(e.ri);
	assert_false(readidx_caught_up(e.ri));
	e.entry_epoch = 4;
	readidx_progress(e.ri);
	assert_true(readidx_caught_up(e.ri));
	assert_int_equal(e.ndone[0], 1);
	assert_int_equal(e.done_err[0], 0);
	assert_int_equal(e.reports[KVFS_READIDX_CAUGHT_UP], 1);
	assert_int_equal(readidx_wait_caught_up(e.ri, 0, on, &e.ndone[1]), 1);
	assert_int_equal(e.ndone[1], 0);
	readidx_close(e.ri);

	/* An established leader is caught up; a wait that times out says why. */
	setup(&e, 1, 3);
	e.view = (struct kvfs_readidx_view){.epoch = 4};
	assert_int_equal(readidx_wait_caught_up(e.ri, 300, on, &e.ndone[0]), 0);
	e.now = 300;
	readidx_tick(e.ri);
	assert_int_equal(e.done_err[0], -EIO);
	assert_int_equal(e.reports[KVFS_READIDX_CATCHUP_EXPIRED], 1);
	assert_int_equal(e.reports[KVFS_READIDX_EXPIRED], 0);
	e.view.leads = true;
	assert_int_equal(readidx_wait_caught_up(e.ri, 0, on, &e.ndone[1]), 1);
	readidx_close(e.ri);
}

/* A cluster of one confirms its round at once (no peer to ask). */
static void test_cluster_of_one(void **state)
{
	struct env e;

	setup(&e, 1, 1);
	e.view = (struct kvfs_readidx_view){.leads = true, .epoch = 1, .commit = 3, .applied = 2};
	assert_int_equal(readidx_barrier(e.ri, 0, on, &e.ndone[0]), 0);
	assert_int_equal(e.nindex, 0);
	assert_int_equal(e.ndone[0], 0); /* never from inside the call */
	readidx_progress(e.ri);
	assert_int_equal(e.ndone[0], 0); /* applied 2 < 3 */
	e.view.applied = 3;
	readidx_progress(e.ri);
	assert_int_equal(e.ndone[0], 1);
	readidx_close(e.ri);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_bad_config),
	    cmocka_unit_test(test_leader_round),
	    cmocka_unit_test(test_deposed_leader_expires),
	    cmocka_unit_test(test_follower),
	    cmocka_unit_test(test_index_of_the_confirming_epoch),
	    cmocka_unit_test(test_request_is_not_a_round),
	    cmocka_unit_test(test_caught_up),
	    cmocka_unit_test(test_cluster_of_one),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
