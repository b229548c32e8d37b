/* Unit tests for the round-trip times: RFC 6298 smoothing, the quorum RTT and contact. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "kvfs/rtt.h"

static struct kvfs_rtt r;

static void test_smoothing(void **state)
{
	(void)state;
	rtt_init(&r);
	/* The first sample sets SRTT = R, RTTVAR = R / 2. */
	rtt_sample(&r, 2, 1000, 5);
	assert_int_equal(r.p[2].srtt_us, 1000);
	assert_int_equal(r.p[2].rttvar_us, 500);
	assert_int_equal(r.p[2].samples, 1);
	assert_int_equal(r.p[2].last_heard_ms, 5);
	/* Then RTTVAR = 3/4 RTTVAR + 1/4 |SRTT - R| (with the old SRTT), SRTT = 7/8 SRTT + 1/8 R.
	 */
	rtt_sample(&r, 2, 2600, 6);
	assert_int_equal(r.p[2].rttvar_us, (3 * 500 + 1600) / 4);
	assert_int_equal(r.p[2].srtt_us, (7 * 1000 + 2600) / 8);
	/* A steady RTT is reached within rounding (4 µs), from above or below. */
	for (int i = 0; i < 200; i++)
		rtt_sample(&r, 2, 40000, 7);
	assert_true(r.p[2].srtt_us >= 40000 - 4 && r.p[2].srtt_us <= 40000 + 4);
	assert_true(r.p[2].rttvar_us <= 8);
	/* Convergence from 40 ms down to 0.3 ms: within 10 % after 25 samples (2.5 s of pings). */
	for (int i = 0; i < 25; i++)
		rtt_sample(&r, 2, 300, 8);
	assert_true(r.p[2].srtt_us < 40000 / 8);
	for (int i = 0; i < 40; i++)
		rtt_sample(&r, 2, 300, 9);
	assert_true(r.p[2].srtt_us >= 300 && r.p[2].srtt_us <= 330);
	/* One outlier moves SRTT by an eighth of the difference only. */
	rtt_sample(&r, 2, 80300, 10);
	assert_true(r.p[2].srtt_us < 300 + 80000 / 8 + 40);
}

static void test_clamp_and_ids(void **state)
{
	(void)state;
	rtt_init(&r);
	rtt_sample(&r, 3, UINT64_MAX - 1, 1);
	assert_int_equal(r.p[3].srtt_us, 60000000);
	assert_int_equal(r.p[3].rttvar_us, 30000000);
	rtt_sample(&r, 3, 120000000, 2);
	assert_int_equal(r.p[3].srtt_us, 60000000);
	/* Ids 1..255 only; the others are ignored, not written out of bounds. */
	rtt_sample(&r, 0, 100, 1);
	rtt_sample(&r, 256, 100, 1);
	rtt_heard(&r, 0, 1);
	rtt_heard(&r, 1000, 1);
	rtt_forget(&r, 9999);
	assert_int_equal(r.p[0].samples, 0);
	assert_int_equal(r.p[0].last_heard_ms, 0);
	rtt_sample(&r, 255, 100, 1);
	assert_int_equal(r.p[255].srtt_us, 100);
	/* Forgotten: SRTT restarts from the next sample. */
	rtt_forget(&r, 3);
	assert_int_equal(r.p[3].samples, 0);
	rtt_sample(&r, 3, 700, 3);
	assert_int_equal(r.p[3].srtt_us, 700);
	assert_int_equal(r.p[3].rttvar_us, 350);
}

/* Every peer in ids (except self) heard at now with its steady SRTT rtts[i]. */
static void setup(const uint32_t *ids, const uint64_t *rtts, size_t n, uint32_t self, uint64_t now)
{
	rtt_init(&r);
	for (size_t i = 0; i < n; i++)
		if (ids[i] != self)
			rtt_sample(&r, ids[i], rtts[i], now);
}

static void test_quorum(void **state)
{
	const uint32_t v1[] = {1}, v3[] = {1, 2, 3}, v5[] = {1, 2, 3, 4, 5};
	const uint64_t slow3[] = {0, 40000, 400}, slow5[] = {0, 40000, 300, 500, 900};
	const uint64_t fast3[] = {40000, 400, 0};

	(void)state;
	/* One voter, self: commits alone. */
	rtt_init(&r);
	assert_true(rtt_quorum(&r, v1, 1, 1, 1000) == 0);
	assert_true(rtt_contact(&r, v1, 1, 1, 1000));
	/* Three voters, one slow: self needs one ack, the fastest. */
	setup(v3, slow3, 3, 1, 1000);
	assert_true(rtt_quorum(&r, v3, 3, 1, 1000) == 400);
	{
		uint64_t var = 1;

		/* The RTTVAR beside it is that same peer's (one sample: half of it). */
		assert_true(rtt_quorum_var(&r, v3, 3, 1, 1000, &var) == 400);
		assert_true(var == 200);
		assert_true(rtt_quorum_var(&r, v1, 1, 1, 1000, &var) == 0 && var == 0);
		assert_true(rtt_quorum_var(&r, v3, 3, 1, 1001 + KVFS_CONTACT_MS, &var) ==
		                UINT64_MAX &&
		            var == UINT64_MAX);
	}
	/* From the slow node's own view every link is slow. */
	setup(v3, (const uint64_t[]){40000, 0, 40000}, 3, 2, 1000);
	assert_true(rtt_quorum(&r, v3, 3, 2, 1000) == 40000);
	setup(v3, fast3, 3, 3, 1000);
	assert_true(rtt_quorum(&r, v3, 3, 3, 1000) == 400);
	/* Five voters, one slow: two acks needed, the second fastest. */
	setup(v5, slow5, 5, 1, 1000);
	assert_true(rtt_quorum(&r, v5, 5, 1, 1000) == 500);
	assert_true(rtt_contact(&r, v5, 5, 1, 1000));
	/* A silent peer (not heard within KVFS_CONTACT_MS) does not count, whatever its SRTT. */
	rtt_sample(&r, 3, 300, 1000 - KVFS_CONTACT_MS - 1);
	assert_true(rtt_quorum(&r, v5, 5, 1, 1000) == 900);
	rtt_heard(&r, 3, 1000); /* heard again: counts again */
	assert_true(rtt_quorum(&r, v5, 5, 1, 1000) == 500);
	/* Heard exactly KVFS_CONTACT_MS ago still counts. */
	assert_true(rtt_quorum(&r, v5, 5, 1, 1000 + KVFS_CONTACT_MS) == 500);
	assert_true(rtt_quorum(&r, v5, 5, 1, 1001 + KVFS_CONTACT_MS) == UINT64_MAX);
	/* Too few heard: unknown. */
	setup(v5, slow5, 5, 1, 1000);
	rtt_forget(&r, 3);
	rtt_forget(&r, 4);
	rtt_forget(&r, 5);
	assert_true(rtt_quorum(&r, v5, 5, 1, 1000) == UINT64_MAX);
	/* Heard but never sampled: in contact, yet no RTT to count. */
	rtt_heard(&r, 3, 1000);
	assert_true(rtt_quorum(&r, v5, 5, 1, 1000) == UINT64_MAX);
	assert_true(rtt_contact(&r, v5, 5, 1, 1000));
	/* Duplicates and invalid ids in the voters are not counted twice. */
	setup(v3, slow3, 3, 1, 1000);
	assert_true(rtt_quorum(&r, (const uint32_t[]){1, 2, 2, 3, 0, 300}, 6, 1, 1000) == 400);
}

/* A node that is not a voter (an observer) needs acks from a full majority of the voters. */
static void test_self_not_voter(void **state)
{
	const uint32_t v3[] = {1, 2, 3};

	(void)state;
	rtt_init(&r);
	rtt_sample(&r, 1, 300, 1000);
	rtt_sample(&r, 2, 40000, 1000);
	rtt_sample(&r, 3, 700, 1000);
	assert_true(rtt_quorum(&r, v3, 3, 9, 1000) == 700);
	assert_true(rtt_contact(&r, v3, 3, 9, 1000));
	rtt_forget(&r, 3);
	assert_true(rtt_quorum(&r, v3, 3, 9, 1000) == 40000);
	rtt_forget(&r, 1);
	assert_true(rtt_quorum(&r, v3, 3, 9, 1000) == UINT64_MAX);
	assert_false(rtt_contact(&r, v3, 3, 9, 1000));
	/* No voters at all: nothing to be in contact with. */
	assert_false(rtt_contact(&r, v3, 0, 9, 1000));
	assert_true(rtt_quorum(&r, v3, 0, 9, 1000) == UINT64_MAX);
}

static void test_contact(void **state)
{
	const uint32_t v3[] = {1, 2, 3}, v5[] = {1, 2, 3, 4, 5}, v4[] = {1, 2, 3, 4};

	(void)state;
	rtt_init(&r);
	/* Alone among three: no majority. */
	assert_false(rtt_contact(&r, v3, 3, 1, 1000));
	/* Self and one more of three: a majority. Any message counts, not only pongs. */
	rtt_heard(&r, 3, 900);
	assert_true(rtt_contact(&r, v3, 3, 1, 1000));
	assert_false(rtt_contact(&r, v3, 3, 1, 900 + KVFS_CONTACT_MS + 1));
	/* Five: self and two others. */
	assert_false(rtt_contact(&r, v5, 5, 1, 1000));
	rtt_sample(&r, 5, 800, 1000);
	assert_true(rtt_contact(&r, v5, 5, 1, 1000));
	/* Four voters: a majority is three. */
	assert_true(rtt_contact(&r, v4, 4, 1, 1000) == false);
	rtt_heard(&r, 2, 1000);
	assert_true(rtt_contact(&r, v4, 4, 1, 1000));
	/* A peer heard "in the future" (clocks given by the caller out of order) counts. */
	rtt_init(&r);
	rtt_heard(&r, 2, 5000);
	assert_true(rtt_contact(&r, v3, 3, 1, 1000));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_smoothing), cmocka_unit_test(test_clamp_and_ids),
	    cmocka_unit_test(test_quorum),    cmocka_unit_test(test_self_not_voter),
	    cmocka_unit_test(test_contact),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
