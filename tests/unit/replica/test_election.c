/* Unit tests for the pure election logic: names, data, ranking, watches and every decision. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "kvfs/election.h"
#include "kvfs/score.h"

static struct kvfs_candidate cand(uint64_t seq, uint32_t id, uint32_t prio)
{
	struct kvfs_candidate c;
	char name[64];

	memset(&c, 0, sizeof(c));
	snprintf(name, sizeof(name), "%032x-n_%010llu", id, (unsigned long long)seq);
	assert_int_equal(election_parse_name(name, &c), 0);
	c.id = id;
	c.priority = prio;
	snprintf(c.addr, sizeof(c.addr), "127.0.0.1:%u", 7000 + id);
	/* Facts of a healthy, well-connected node: eligible, all in RTT bucket 0. */
	c.f.known = true;
	c.f.contact = true;
	c.f.caught_up = true;
	c.f.stable = true;
	c.f.rtt_us = 300;
	c.f.rtt_b = 0;
	return c;
}

static void test_parse_name(void **state)
{
	struct kvfs_candidate c;

	assert_int_equal(election_parse_name("0123abcd-n_0000000012", &c), 0);
	assert_string_equal(c.guid, "0123abcd");
	assert_int_equal(c.seq, 12);
	assert_string_equal(c.name, "0123abcd-n_0000000012");
	/* Not candidates: wrong shapes are ignored. */
	assert_int_equal(election_parse_name("n_0000000012", &c), -EINVAL);
	assert_int_equal(election_parse_name("-n_0000000012", &c), -EINVAL);
	assert_int_equal(election_parse_name("ABCD-n_0000000012", &c), -EINVAL);
	assert_int_equal(election_parse_name("abcd-n_000000012", &c), -EINVAL);
	assert_int_equal(election_parse_name("abcd-n_00000000123", &c), -EINVAL);
	assert_int_equal(election_parse_name("abcd-n_00000000x2", &c), -EINVAL);
	assert_int_equal(election_parse_name("lock", &c), -EINVAL);
	assert_int_equal(election_parse_name("0123456789abcdef0123456789abcdef0-n_0000000001", &c),
	                 -EINVAL);
}

static void test_parse_data(void **state)
{
	struct kvfs_candidate c;
	char addr[KVFS_ADDR_MAX], id_hex[2 * KVFS_GUID_LEN + 1];
	uint32_t id, size;
	uint64_t epoch;
	const char *d = "id=2 addr=127.0.0.1:7002 priority=5";
	const char *l = "id=3 addr=10.0.0.3:7003 epoch=42";
	const char *cfg = "cluster_id=00ff size=3";

	assert_int_equal(election_parse_candidate(d, strlen(d), &c), 0);
	assert_int_equal(c.id, 2);
	assert_int_equal(c.priority, 5);
	assert_string_equal(c.addr, "127.0.0.1:7002");
	assert_int_equal(election_parse_leader(l, strlen(l), &id, addr, &epoch), 0);
	assert_int_equal(id, 3);
	assert_int_equal(epoch, 42);
	assert_string_equal(addr, "10.0.0.3:7003");
	assert_int_equal(election_parse_config(cfg, strlen(cfg), id_hex, &size), 0);
	assert_string_equal(id_hex, "00ff");
	assert_int_equal(size, 3);
	/* Missing or bad fields are refused, not guessed. */
	assert_int_equal(election_parse_candidate("id=2 addr=x", 11, &c), -EINVAL);
	assert_int_equal(election_parse_candidate("id=0 addr=x priority=1", 22, &c), -EINVAL);
	assert_int_equal(election_parse_candidate("id=2 addr=x priority=1001", 25, &c), -EINVAL);
	assert_int_equal(election_parse_leader("id=3 addr=x epoch=-1", 20, &id, addr, &epoch),
	                 -EINVAL);
	assert_int_equal(election_parse_config("cluster_id=ab size=0", 20, id_hex, &size), -EINVAL);
	/* Only as many bytes as given are read (znode data is not NUL-terminated). */
	assert_int_equal(election_parse_candidate(d, 20, &c), -EINVAL);
	/* A key is matched whole: "xid=" is not "id=". */
	assert_int_equal(election_kv("xid=1 id=7", 10, "id", addr, sizeof(addr)), 0);
	assert_string_equal(addr, "7");
	assert_int_equal(election_kv("id=123456", 9, "id", addr, 4), -EINVAL);
	assert_int_equal(election_kv("a=1", 3, "id", addr, sizeof(addr)), -ENOENT);
}

/* /epoch is ZooKeeper data anyone with access could have written: only plain digits, bounded. */
static void test_parse_epoch(void **state)
{
	static const char *const bad[] = {"", "-1", " 7", "7 ", "+7", "7x", "0x10", "4611686018427387905",
	                                  "18446744073709551615", "99999999999999999999999"};
	uint64_t e = 123;

	(void)state;
	assert_int_equal(election_parse_epoch("0", 1, &e), 0);
	assert_int_equal(e, 0);
	assert_int_equal(election_parse_epoch("42", 2, &e), 0);
	assert_int_equal(e, 42);
	assert_int_equal(election_parse_epoch("4611686018427387904", 19, &e), 0);
	assert_true(e == KVFS_EPOCH_MAX);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		e = 123;
		assert_int_equal(election_parse_epoch(bad[i], strlen(bad[i]), &e), -EINVAL);
		assert_int_equal(e, 123);
	}
	/* The leader's epoch is bounded the same way. */
	{
		static const char big[] = "id=1 addr=h:1 epoch=4611686018427387905";
		uint32_t id;
		char addr[KVFS_ADDR_MAX];

		assert_int_equal(election_parse_leader(big, sizeof(big) - 1, &id, addr, &e), -EINVAL);
	}
}

/* The score's facts in a candidate's data: every key optional, a present one must be valid. */
static void test_parse_facts(void **state)
{
	static const char full[] = "id=2 addr=h:1 priority=1 role=voter zone=eu-1.a zpref=1 "
	                           "rtt_us=412 rtt_b=7 rttvar_us=95 contact=1 caught_up=1 stable=0 "
	                           "lag_b=3";
	static const char *const bad[] = {
	    "role=leader", "role=", "zone=", "zone=a/b", "zone=a:b", "zpref=2", "zpref=+1",
	    "zpref=-0", "rtt_us=-1", "rtt_us=12x", "rtt_us=18446744073709551615", "rtt_us=5",
	    "rtt_b=5", "rtt_us=5 rtt_b=4294967295", "contact=2", "contact=yes", "caught_up=",
	    "stable=01x", "lag_b=256", "lag_b=-1", "zone=0123456789012345678901234567890123",
	    "rttvar_us=5", "rtt_us=5 rtt_b=4 rttvar_us=60000001", "rtt_us=5 rtt_b=4 rttvar_us=x"};
	struct kvfs_candidate c;
	char buf[256];

	(void)state;
	assert_int_equal(election_parse_candidate(full, sizeof(full) - 1, &c), 0);
	assert_true(c.f.known);
	assert_false(c.f.observer);
	assert_string_equal(c.f.zone, "eu-1.a");
	assert_int_equal(c.f.zpref, 1);
	assert_int_equal(c.f.rtt_us, 412);
	assert_int_equal(c.f.rtt_b, 7);
	assert_int_equal(c.f.rttvar_us, 95);
	assert_true(c.f.contact && c.f.caught_up && !c.f.stable);
	assert_int_equal(c.f.lag_b, 3);
	/* No facts at all: a node from before them, still a candidate. */
	assert_int_equal(election_parse_candidate("id=2 addr=h:1 priority=1", 24, &c), 0);
	assert_false(c.f.known);
	assert_true(c.f.rtt_us == UINT64_MAX);
	assert_true(c.f.rtt_b == UINT32_MAX);
	/* One fact is enough to be known; the RTT left out is unknown, not 0. */
	assert_int_equal(election_parse_candidate("id=2 addr=h:1 priority=1 contact=1", 34, &c), 0);
	assert_true(c.f.known && c.f.contact);
	assert_true(c.f.rtt_us == UINT64_MAX && c.f.rtt_b == UINT32_MAX);
	assert_int_equal(c.f.rttvar_us, 0);
	/* An RTT from a node before rttvar_us: its variation counts as 0. */
	assert_int_equal(
	    election_parse_candidate("id=2 addr=h:1 priority=1 rtt_us=5 rtt_b=4", 42, &c), 0);
	assert_true(c.f.rtt_us == 5 && c.f.rttvar_us == 0);
	assert_int_equal(election_parse_candidate("id=2 addr=h:1 priority=1 role=observer", 38, &c),
	                 0);
	assert_true(c.f.known && c.f.observer);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(buf, sizeof(buf), "id=2 addr=h:1 priority=1 %s", bad[i]);
		if (election_parse_candidate(buf, strlen(buf), &c) != -EINVAL)
			fail_msg("accepted: %s", buf);
	}
}

static void round_trip(const struct kvfs_score_facts *f, const char *expect)
{
	struct kvfs_candidate c;
	char buf[256];
	size_t n = election_format_candidate(buf, sizeof(buf), 3, "10.0.0.3:7003", 2, f);

	assert_int_equal(n, strlen(buf));
	if (expect)
		assert_string_equal(buf, expect);
	memset(&c, 0, sizeof(c));
	assert_int_equal(election_parse_candidate(buf, n, &c), 0);
	assert_int_equal(c.id, 3);
	assert_int_equal(c.priority, 2);
	assert_string_equal(c.addr, "10.0.0.3:7003");
	assert_int_equal(c.f.known, f->known);
	if (!f->known)
		return;
	assert_int_equal(c.f.observer, f->observer);
	assert_int_equal(c.f.zpref, f->zpref);
	assert_string_equal(c.f.zone, f->zone);
	assert_true(c.f.rtt_us == f->rtt_us);
	assert_int_equal(c.f.rtt_b, f->rtt_b);
	if (f->rtt_us != UINT64_MAX)
		assert_true(c.f.rttvar_us == f->rttvar_us);
	assert_int_equal(c.f.contact, f->contact);
	assert_int_equal(c.f.caught_up, f->caught_up);
	assert_int_equal(c.f.stable, f->stable);
	assert_int_equal(c.f.lag_b, f->lag_b);
}

static void test_format_candidate(void **state)
{
	struct kvfs_score_facts f;
	char small[8];

	(void)state;
	/* Without facts, exactly what nodes wrote before them. */
	memset(&f, 0, sizeof(f));
	round_trip(&f, "id=3 addr=10.0.0.3:7003 priority=2");
	f.known = true;
	f.zpref = -1;
	snprintf(f.zone, sizeof(f.zone), "b");
	f.rtt_us = 41234;
	f.rtt_b = 21;
	f.rttvar_us = 5120;
	f.contact = true;
	f.lag_b = 255;
	round_trip(&f, "id=3 addr=10.0.0.3:7003 priority=2 role=voter zone=b zpref=-1 rtt_us=41234 "
	               "rtt_b=21 rttvar_us=5120 contact=1 caught_up=0 stable=0 lag_b=255");
	/* Unknown RTT and no zone: left out, and read back as unknown. */
	f.rtt_us = UINT64_MAX;
	f.rtt_b = UINT32_MAX;
	f.zone[0] = '\0';
	f.zpref = 0;
	f.observer = true;
	f.caught_up = f.stable = true;
	f.lag_b = 0;
	round_trip(&f, "id=3 addr=10.0.0.3:7003 priority=2 role=observer zpref=0 contact=1 "
	               "caught_up=1 stable=1 lag_b=0");
	f.observer = false;
	f.rtt_us = 0;
	f.rtt_b = 0;
	f.rttvar_us = 0;
	snprintf(f.zone, sizeof(f.zone), "%s", "0123456789012345678901234567890");
	round_trip(&f, NULL);
	/* Like snprintf: the length it would have written. */
	assert_int_equal(election_format_candidate(small, sizeof(small), 3, "h:1", 2, NULL), 24);
	assert_string_equal(small, "id=3 ad");
}

static void test_rank(void **state)
{
	struct kvfs_candidate c[4] = {cand(7, 1, 5), cand(3, 2, 0), cand(9, 3, 10), cand(5, 4, 10)};

	/* Sequential: lowest sequence, but priority 0 never leads. */
	assert_int_equal(election_rank(KVFS_ELECTION_SEQUENTIAL, c, 4), 3);
	assert_int_equal(election_rank(KVFS_ELECTION_SEQUENTIAL, c, 2), 0);
	/* Priority: highest priority, ties by lowest sequence. */
	assert_int_equal(election_rank(KVFS_ELECTION_PRIORITY, c, 4), 3);
	assert_int_equal(election_rank(KVFS_ELECTION_PRIORITY, c, 3), 2);
	assert_int_equal(election_rank(KVFS_ELECTION_PRIORITY, c + 1, 1), -1);
	assert_int_equal(election_rank(KVFS_ELECTION_PRIORITY, c, 0), -1);
}

static void test_predecessor(void **state)
{
	struct kvfs_candidate c[4] = {cand(7, 1, 1), cand(3, 2, 1), cand(9, 3, 1), cand(5, 4, 1)};

	assert_int_equal(election_predecessor(c, 4, 9), 0);
	assert_int_equal(election_predecessor(c, 4, 7), 3);
	assert_int_equal(election_predecessor(c, 4, 5), 1);
	assert_int_equal(election_predecessor(c, 4, 3), -1);
}

static struct kvfs_election_decision decide(enum kvfs_election_mode mode,
                                            const struct kvfs_candidate *c, size_t n, int mine,
                                            bool leader_exists, bool leader_mine, bool leading)
{
	struct kvfs_election_view v = {
	    .mode = mode,
	    .cands = c,
	    .n = n,
	    .mine = mine,
	    .leader_exists = leader_exists,
	    .leader_mine = leader_mine,
	    .leading = leading,
	    .hold_down_ms = 3000,
	};
	struct kvfs_election_decision d;

	election_decide(&v, &d);
	return d;
}

static void test_decide_sequential(void **state)
{
	const enum kvfs_election_mode S = KVFS_ELECTION_SEQUENTIAL;
	struct kvfs_candidate c[3] = {cand(1, 1, 1), cand(2, 2, 1), cand(3, 3, 1)};
	struct kvfs_election_decision d;

	d = decide(S, c, 3, -1, false, false, false);
	assert_int_equal(d.action, KVFS_ELECT_REJOIN);
	/* The first leads when there is no /leader. */
	d = decide(S, c, 3, 0, false, false, false);
	assert_int_equal(d.action, KVFS_ELECT_TAKE);
	assert_int_equal(d.top, 0);
	assert_int_equal(d.watch, -1);
	/* ... and, leading, does nothing more. */
	d = decide(S, c, 3, 0, true, true, true);
	assert_int_equal(d.action, KVFS_ELECT_NONE);
	/* Others wait, each watching only its predecessor (no herd). */
	d = decide(S, c, 3, 1, true, false, false);
	assert_int_equal(d.action, KVFS_ELECT_NONE);
	assert_int_equal(d.watch, 0);
	d = decide(S, c, 3, 2, true, false, false);
	assert_int_equal(d.watch, 1);
	/* The first's znode is gone but its /leader is not yet (session still alive): wait. */
	d = decide(S, c + 1, 2, 0, true, false, false);
	assert_int_equal(d.action, KVFS_ELECT_WAIT);
	/* Reconnected with the same session and /leader still ours: lead on at the same epoch. */
	d = decide(S, c, 3, 0, true, true, false);
	assert_int_equal(d.action, KVFS_ELECT_RESUME);
	/* ... but after an outage longer than the session timeout, a new term. */
	{
		struct kvfs_election_view v = {.mode = S,
		                               .cands = c,
		                               .n = 3,
		                               .mine = 0,
		                               .leader_exists = true,
		                               .leader_mine = true,
		                               .reconnected_late = true};

		election_decide(&v, &d);
		assert_int_equal(d.action, KVFS_ELECT_RETAKE);
	}
}

static void test_decide_priority(void **state)
{
	const enum kvfs_election_mode P = KVFS_ELECTION_PRIORITY;
	struct kvfs_candidate c[4] = {cand(1, 1, 0), cand(2, 2, 5), cand(3, 3, 10), cand(4, 4, 20)};
	struct kvfs_election_view v;
	struct kvfs_election_decision d;

	/* {0, 5, 10}: 10 takes; 5 and 0 do nothing; nobody watches a predecessor. */
	d = decide(P, c, 3, 2, false, false, false);
	assert_int_equal(d.action, KVFS_ELECT_TAKE);
	d = decide(P, c, 3, 1, true, false, false);
	assert_int_equal(d.action, KVFS_ELECT_NONE);
	assert_int_equal(d.watch, -1);
	d = decide(P, c, 3, 0, false, false, false);
	assert_int_equal(d.action, KVFS_ELECT_NONE);
	/* 10 is gone: 5 takes. 0 alone never does. */
	d = decide(P, c, 2, 1, false, false, false);
	assert_int_equal(d.action, KVFS_ELECT_TAKE);
	d = decide(P, c, 1, 0, false, false, false);
	assert_int_equal(d.action, KVFS_ELECT_NONE);
	assert_int_equal(d.top, -1);

	/* 20 joins while 10 leads: 10 keeps leading until 20 caught up and the hold-down passed. */
	v = (struct kvfs_election_view){.mode = P,
	                                .cands = c,
	                                .n = 4,
	                                .mine = 2,
	                                .leader_exists = true,
	                                .leader_mine = true,
	                                .leading = true,
	                                .hold_down_ms = 3000};
	election_decide(&v, &d);
	assert_int_equal(d.action, KVFS_ELECT_NONE);
	v.better_waited_ms = 3000;
	election_decide(&v, &d);
	assert_int_equal(d.action, KVFS_ELECT_NONE); /* not caught up yet */
	v.successor_ready = true;
	v.better_waited_ms = 2999;
	election_decide(&v, &d);
	assert_int_equal(d.action, KVFS_ELECT_NONE);
	v.better_waited_ms = 3000;
	election_decide(&v, &d);
	assert_int_equal(d.action, KVFS_ELECT_HAND_OVER);
	/* Meanwhile 20 waits for /leader to go, and then takes. */
	d = decide(P, c, 4, 3, true, false, false);
	assert_int_equal(d.action, KVFS_ELECT_WAIT);
	d = decide(P, c, 4, 3, false, false, false);
	assert_int_equal(d.action, KVFS_ELECT_TAKE);
	/* 10 still holds /leader after a disconnection but no longer leads: it hands over at
	 * once, whatever the hold-down (it has nothing to hold). */
	v.leading = false;
	v.better_waited_ms = 0;
	v.successor_ready = false;
	election_decide(&v, &d);
	assert_int_equal(d.action, KVFS_ELECT_HAND_OVER);
	/* The one that handed over does not take again. */
	d = decide(P, c, 4, 2, true, false, false);
	assert_int_equal(d.action, KVFS_ELECT_NONE);
}

/* Observers never lead, in either mode; in priority mode the score ranks the rest. */
static void test_rank_score(void **state)
{
	struct kvfs_candidate c[4] = {cand(1, 1, 1), cand(2, 2, 1), cand(3, 3, 1), cand(4, 4, 2)};

	(void)state;
	c[0].f.observer = true;
	c[3].f.observer = true;
	assert_int_equal(election_rank(KVFS_ELECTION_SEQUENTIAL, c, 4), 1);
	assert_int_equal(election_rank(KVFS_ELECTION_PRIORITY, c, 4), 1);
	assert_int_equal(election_rank(KVFS_ELECTION_PRIORITY, c, 1), -1);
	/* A lower RTT bucket ranks first at equal priority ... */
	c[1].f.rtt_b = 5;
	c[2].f.rtt_b = 3;
	assert_int_equal(election_rank(KVFS_ELECTION_PRIORITY, c, 4), 2);
	/* ... but not before an eligible one: no contact, and it ranks behind. */
	c[2].f.contact = false;
	assert_int_equal(election_rank(KVFS_ELECTION_PRIORITY, c, 4), 1);
	/* Sequential mode ignores the score. */
	assert_int_equal(election_rank(KVFS_ELECTION_SEQUENTIAL, c + 1, 2), 0);
}

static void test_challenged(void **state)
{
	struct kvfs_candidate c[3] = {cand(1, 1, 1), cand(2, 2, 1), cand(3, 3, 2)};
	struct kvfs_election_view v = {.mode = KVFS_ELECTION_PRIORITY,
	                               .cands = c,
	                               .n = 3,
	                               .mine = 0,
	                               .leading = true,
	                               .rtt_margin_pct = 20};
	char why[128];

	(void)state;
	assert_true(election_challenged(&v, 2, why, sizeof(why)));
	assert_string_equal(why, "priority 2 > 1");
	/* Not against itself, not with nobody on top, not in sequential mode. */
	assert_false(election_challenged(&v, 0, why, sizeof(why)));
	assert_false(election_challenged(&v, -1, why, sizeof(why)));
	v.mode = KVFS_ELECTION_SEQUENTIAL;
	assert_false(election_challenged(&v, 2, why, sizeof(why)));
	v.mode = KVFS_ELECTION_PRIORITY;
	/* Equal priority: only a quorum RTT better by the margin and in a lower bucket. */
	c[0].f.rtt_us = 41200;
	c[0].f.rtt_b = score_bucket(41200, 20);
	c[1].f.rtt_us = 400;
	assert_true(election_challenged(&v, 1, why, sizeof(why)));
	assert_string_equal(why, "quorum RTT 0.4 ms beats 41.2 ms by more than 20 %");
	c[0].f.rtt_us = 450;
	c[0].f.rtt_b = 0;
	assert_false(election_challenged(&v, 1, why, sizeof(why)));
	assert_string_equal(why, "");
	/* A leader that lost contact is beaten by any eligible one. */
	c[0].f.contact = false;
	assert_true(election_challenged(&v, 1, why, sizeof(why)));
	assert_string_equal(why, "node 1 is not eligible (no contact with a majority)");
	assert_true(election_challenged(&v, 1, NULL, 0));
}

/* Priority mode, equal priorities, the leader's quorum RTT far worse: it hands over only after
 * the hold-down, the minimum tenure and the successor's catch-up, all three. */
static void test_decide_hysteresis(void **state)
{
	struct kvfs_candidate c[3] = {cand(1, 1, 1), cand(2, 2, 1), cand(3, 3, 1)};
	struct kvfs_election_view v = {.mode = KVFS_ELECTION_PRIORITY,
	                               .cands = c,
	                               .n = 3,
	                               .mine = 0,
	                               .leader_exists = true,
	                               .leader_mine = true,
	                               .leading = true,
	                               .successor_ready = true,
	                               .better_waited_ms = 3000,
	                               .hold_down_ms = 3000,
	                               .led_ms = 10000,
	                               .min_tenure_ms = 10000,
	                               .rtt_margin_pct = 20};
	struct kvfs_election_decision d;

	(void)state;
	c[0].f.rtt_us = 40000;
	c[0].f.rtt_b = score_bucket(40000, 20);
	election_decide(&v, &d);
	assert_int_equal(d.top, 1);
	assert_int_equal(d.action, KVFS_ELECT_HAND_OVER);
	v.led_ms = 9999; /* tenure not served */
	election_decide(&v, &d);
	assert_int_equal(d.action, KVFS_ELECT_NONE);
	v.led_ms = 10000;
	v.better_waited_ms = 2999; /* hold-down not waited out */
	election_decide(&v, &d);
	assert_int_equal(d.action, KVFS_ELECT_NONE);
	v.better_waited_ms = 3000;
	v.successor_ready = false; /* successor behind */
	election_decide(&v, &d);
	assert_int_equal(d.action, KVFS_ELECT_NONE);
	v.successor_ready = true;
	/* Within the margin: a worse leader by less than 20 % keeps leading, however long. */
	c[0].f.rtt_us = 1500;
	c[0].f.rtt_b = score_bucket(1500, 20);
	c[1].f.rtt_us = c[2].f.rtt_us = 1300;
	c[1].f.rtt_b = c[2].f.rtt_b = score_bucket(1300, 20);
	assert_true(c[1].f.rtt_b < c[0].f.rtt_b);
	v.better_waited_ms = 600000;
	election_decide(&v, &d);
	assert_int_equal(d.top, 1);
	assert_int_equal(d.action, KVFS_ELECT_NONE);
	/* Hard reasons skip hold-down and tenure: its priority became 0, or it is an observer. */
	v.better_waited_ms = 0;
	v.led_ms = 0;
	v.successor_ready = false;
	c[0].priority = 0;
	election_decide(&v, &d);
	assert_int_equal(d.action, KVFS_ELECT_HAND_OVER);
	c[0].priority = 1;
	c[0].f.observer = true;
	election_decide(&v, &d);
	assert_int_equal(d.action, KVFS_ELECT_HAND_OVER);
	/* Nobody may lead (all observers or priority 0): the leader steps down too. */
	c[1].priority = c[2].priority = 0;
	election_decide(&v, &d);
	assert_int_equal(d.top, -1);
	assert_int_equal(d.action, KVFS_ELECT_HAND_OVER);
	/* Sequential mode: someone else first means hand over, as before. */
	c[0].f.observer = false;
	c[1].priority = c[2].priority = 1;
	v.mode = KVFS_ELECTION_SEQUENTIAL;
	v.mine = 1;
	election_decide(&v, &d);
	assert_int_equal(d.top, 0);
	assert_int_equal(d.action, KVFS_ELECT_HAND_OVER);
}

static void test_role(void **state)
{
	assert_string_equal(election_role(true, true), "leader");
	assert_string_equal(election_role(false, true), "follower");
	assert_string_equal(election_role(false, false), "candidate");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_parse_name),
	    cmocka_unit_test(test_parse_data),
	    cmocka_unit_test(test_parse_epoch),
	    cmocka_unit_test(test_parse_facts),
	    cmocka_unit_test(test_format_candidate),
	    cmocka_unit_test(test_rank),
	    cmocka_unit_test(test_rank_score),
	    cmocka_unit_test(test_challenged),
	    cmocka_unit_test(test_decide_hysteresis),
	    cmocka_unit_test(test_predecessor),
	    cmocka_unit_test(test_decide_sequential),
	    cmocka_unit_test(test_decide_priority),
	    cmocka_unit_test(test_role),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
