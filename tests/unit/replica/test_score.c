/*
 * Unit tests for the leader score: RTT buckets and their hysteresis, the gates, the order,
 * score_beats' margins, the publisher's rules; and a deterministic election simulation (3 and 5
 * nodes, 10 simulated minutes, jittered RTTs through rtt.c, facts through score_publish, the
 * leader deciding through election_decide) showing that leadership moves once to a
 * well-connected node when the leader's links turn slow, never flaps under jitter, and that
 * priority dominates RTT.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "kvfs/election.h"
#include "kvfs/rtt.h"
#include "kvfs/score.h"

static struct kvfs_candidate cand(uint64_t seq, uint32_t id, uint32_t prio, uint64_t rtt_us)
{
	struct kvfs_candidate c;

	memset(&c, 0, sizeof(c));
	c.seq = seq;
	c.id = id;
	c.priority = prio;
	c.f.known = c.f.contact = c.f.caught_up = c.f.stable = true;
	c.f.rtt_us = rtt_us;
	c.f.rtt_b = score_bucket(rtt_us, 20);
	return c;
}

static void test_bucket(void **state)
{
	static const struct {
		uint64_t rtt;
		uint32_t margin, bucket;
	} t[] = {
	    {0, 20, 0},
	    {400, 20, 0},
	    {999, 20, 0},
	    {1000, 20, 1},
	    {1199, 20, 1},
	    {1200, 20, 2},
	    {1439, 20, 2},
	    {1440, 20, 3},
	    {5000, 20, 9},
	    {41200, 20, 21},
	    {60000000, 20, 61},
	    {1999, 100, 1},
	    {2000, 100, 2},
	    {4000, 100, 3},
	    {10999, 1000, 1},
	    {11000, 1000, 2},
	    {1009, 1, 1},
	    {1010, 1, 2},
	    {1200, 0, 2}, /* 0: the default, 20 % */
	    {UINT64_MAX, 20, UINT32_MAX},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		if (score_bucket(t[i].rtt, t[i].margin) != t[i].bucket)
			fail_msg("rtt %llu margin %u: bucket %u, expected %u",
			         (unsigned long long)t[i].rtt, t[i].margin,
			         score_bucket(t[i].rtt, t[i].margin), t[i].bucket);
	/* Finite for any RTT a znode may carry, even at a 1 % margin. */
	assert_true(score_bucket(UINT64_MAX - 1, 1) < 5000);
}

static void test_bucket_hysteresis(void **state)
{
	(void)state;
	/* 20 %: bucket 1 is [1000, 1200); a quarter bucket is a factor 1.2^(1/4) = 1.0466. Up
	 * from 1 at 1200 * 1.0466 = 1255.97, down at 1000 / 1.0466 = 955.4. */
	assert_int_equal(score_bucket_update(1, 1255, 20), 1);
	assert_int_equal(score_bucket_update(1, 1256, 20), 2);
	assert_int_equal(score_bucket_update(1, 956, 20), 1);
	assert_int_equal(score_bucket_update(1, 955, 20), 0);
	/* From bucket 0 (below 1 ms), up at 1046.6. */
	assert_int_equal(score_bucket_update(0, 1046, 20), 0);
	assert_int_equal(score_bucket_update(0, 1047, 20), 1);
	/* Back to 2 from 3 ([1440, 1728)): below 1440 / 1.0466 = 1375.8. */
	assert_int_equal(score_bucket_update(3, 1376, 20), 3);
	assert_int_equal(score_bucket_update(3, 1375, 20), 2);
	/* More than a bucket away: moves at once. */
	assert_int_equal(score_bucket_update(1, 1500, 20), 3);
	assert_int_equal(score_bucket_update(3, 900, 20), 0);
	assert_int_equal(score_bucket_update(4000000000u, 1000, 20), 1);
	/* None before, or unknown now. */
	assert_int_equal(score_bucket_update(UINT32_MAX, 1255, 20), 2);
	assert_int_equal(score_bucket_update(2, UINT64_MAX, 20), UINT32_MAX);
	/* Inside the bucket: stays. */
	assert_int_equal(score_bucket_update(2, 1300, 20), 2);
}

static void test_gates(void **state)
{
	static const struct {
		const char *what;
		uint32_t prio;
		bool known, observer, contact, caught_up, stable;
		int zpref;
		const char *why;
	} t[] = {
	    {"healthy", 1, true, false, true, true, true, 0, ""},
	    {"not yet stable: not a gate", 1, true, false, true, true, false, 0, ""},
	    {"preferred zone", 1, true, false, true, true, true, 1, ""},
	    {"priority 0 first", 0, false, true, false, false, false, -1, "priority 0"},
	    {"observer", 1, true, true, false, false, false, -1, "observer"},
	    {"avoided zone", 1, false, false, false, false, false, -1, "avoided zone b"},
	    {"no facts", 1, false, false, false, false, false, 0, "no facts published"},
	    {"no contact", 1, true, false, false, false, false, 0, "no contact with a majority"},
	    {"lagging", 1, true, false, true, false, true, 0, "lagging"},
	};
	char why[64];

	(void)state;
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		struct kvfs_candidate c = cand(1, 1, t[i].prio, 300);

		c.f.known = t[i].known;
		c.f.observer = t[i].observer;
		c.f.contact = t[i].contact;
		c.f.caught_up = t[i].caught_up;
		c.f.stable = t[i].stable;
		c.f.zpref = (int8_t)t[i].zpref;
		snprintf(c.f.zone, sizeof(c.f.zone), "b");
		if (score_eligible(&c, why, sizeof(why)) != (t[i].why[0] == '\0') ||
		    strcmp(why, t[i].why) != 0)
			fail_msg("%s: \"%s\", expected \"%s\"", t[i].what, why, t[i].why);
		assert_int_equal(score_eligible(&c, NULL, 0), t[i].why[0] == '\0');
	}
}

static void test_order(void **state)
{
	struct kvfs_candidate c[9];
	char why[16];

	(void)state;
	/* In the order a cluster should pick them. */
	c[0] = cand(9, 1, 2, 40000); /* priority dominates RTT */
	c[1] = cand(8, 2, 1, 40000);
	c[1].f.zpref = 1; /* a preferred zone comes before RTT */
	c[2] = cand(7, 3, 1, 300);
	c[3] = cand(6, 4, 1, 300);
	c[3].f.lag_b = 2;                 /* then the lag bucket */
	c[4] = cand(1, 5, 1, 1300);       /* a worse RTT bucket, whatever the sequence */
	c[5] = cand(2, 6, 1, UINT64_MAX); /* unknown RTT: worst of the eligible */
	c[6] = cand(3, 7, 9, 300);
	c[6].f.contact = false; /* eligibility dominates priority */
	c[7] = cand(4, 8, 1, 300);
	c[7].f.caught_up = false;
	c[8] = cand(5, 9, 1, 300);
	c[8].f.known = false; /* known before unknown, among the ineligible */
	for (size_t i = 0; i < 9; i++)
		for (size_t j = 0; j < 9; j++) {
			int r = score_cmp(&c[i], &c[j]);

			if ((i < j && r >= 0) || (i > j && r <= 0) || (i == j && r != 0))
				fail_msg("score_cmp(%zu, %zu) = %d", i, j, r);
		}
	/* Equal in all but the sequence: the lower leads. */
	c[0] = cand(4, 1, 1, 300);
	c[1] = cand(3, 2, 1, 350);
	assert_true(score_cmp(&c[1], &c[0]) < 0);
	assert_true(score_cmp(&c[0], &c[1]) > 0);
	assert_false(score_eligible(&c[6], why, sizeof(why)));
}

static bool beats(const struct kvfs_candidate *ch, const struct kvfs_candidate *in, char *why)
{
	return score_beats(ch, in, 20, why, 128);
}

static void test_beats(void **state)
{
	struct kvfs_candidate in = cand(1, 1, 1, 12000), ch = cand(2, 2, 1, 10000);
	char why[128];

	(void)state;
	/* 20 %: the challenger must be below incumbent / 1.2 = 10000, strictly. */
	assert_false(beats(&ch, &in, why));
	ch = cand(2, 2, 1, 9999);
	assert_true(beats(&ch, &in, why));
	assert_string_equal(why, "quorum RTT 10.0 ms beats 12.0 ms by more than 20 %");
	/* Better by the margin but in the same bucket (the publisher's hysteresis kept it there):
	 * no. */
	in = cand(1, 1, 1, 1250);
	in.f.rtt_b = 1;
	ch = cand(2, 2, 1, 1000);
	assert_false(beats(&ch, &in, why));
	/* Below 1 ms nothing moves, however large the ratio. */
	in = cand(1, 1, 1, 950);
	ch = cand(2, 2, 1, 50);
	assert_false(beats(&ch, &in, why));
	/* Priority dominates RTT, both ways. */
	in = cand(1, 1, 1, 300);
	ch = cand(2, 2, 2, 40000);
	assert_true(beats(&ch, &in, why));
	assert_string_equal(why, "priority 2 > 1");
	assert_false(beats(&in, &ch, why));
	/* An ineligible challenger never beats; an ineligible incumbent is beaten by anyone. */
	ch.f.caught_up = false;
	assert_false(beats(&ch, &in, why));
	assert_true(beats(&in, &ch, why));
	assert_string_equal(why, "node 2 is not eligible (lagging)");
	/* Unknown RTTs: not beaten while the incumbent is in contact; beaten when it is not. */
	in = cand(1, 1, 1, UINT64_MAX);
	ch = cand(2, 2, 1, 300);
	assert_false(beats(&ch, &in, why));
	assert_false(beats(&in, &ch, why));
	in.f.contact = false;
	assert_true(beats(&ch, &in, why));
	/* A preferred zone is a step like priority's. */
	in = cand(1, 1, 1, 300);
	ch = cand(2, 2, 1, 5000);
	ch.f.zpref = 1;
	snprintf(ch.f.zone, sizeof(ch.f.zone), "a");
	assert_true(beats(&ch, &in, why));
	assert_string_equal(why, "zone a preferred");
	assert_false(beats(&in, &ch, why));
	/* Larger margins: 100 % needs half the RTT. */
	in = cand(1, 1, 1, 10000);
	ch = cand(2, 2, 1, 4999);
	ch.f.rtt_b = score_bucket(4999, 100);
	in.f.rtt_b = score_bucket(10000, 100);
	assert_true(score_beats(&ch, &in, 100, NULL, 0));
	ch.f.rtt_us = 5000;
	assert_false(score_beats(&ch, &in, 100, NULL, 0));
	/* Better by the margin and a bucket, but not by more than the two RTTs vary (the sum of
	 * their RTTVARs): no. */
	in = cand(1, 1, 1, 4500);
	ch = cand(2, 2, 1, 3200);
	assert_true(beats(&ch, &in, why));
	in.f.rttvar_us = 700;
	ch.f.rttvar_us = 600;
	assert_false(beats(&ch, &in, why));
	ch.f.rttvar_us = 599;
	assert_true(beats(&ch, &in, why));
	/* A slow leader's links vary a lot, but a fast challenger is far beyond that. */
	in = cand(1, 1, 1, 41000);
	in.f.rttvar_us = 5000;
	ch = cand(2, 2, 1, 300);
	ch.f.rttvar_us = 100;
	assert_true(beats(&ch, &in, why));
	ch.f.rttvar_us = KVFS_RTTVAR_MAX_US * 2; /* capped, never an overflow */
	assert_false(beats(&ch, &in, why));
}

static void test_publish(void **state)
{
	struct kvfs_score_pub p;
	struct kvfs_score_measured m = {.rtt_us = 1150, .contact = true, .caught_up = true};
	char zone[40];

	(void)state;
	memset(&p, 0, sizeof(p));
	memset(zone, 'z', sizeof(zone) - 1);
	zone[sizeof(zone) - 1] = '\0';
	/* First: published at once, known, stable not yet; the zone cut to 31 characters. */
	assert_true(score_publish(&p, &m, zone, 1, 1000, 3000, 20, 500));
	assert_true(p.f.known && p.f.contact && p.f.caught_up && !p.f.stable);
	assert_int_equal(p.f.rtt_b, 1);
	assert_int_equal(p.f.zpref, 1);
	assert_int_equal(strlen(p.f.zone), KVFS_ZONE_MAX - 1);
	assert_int_equal(p.published_ms, 1000);
	assert_int_equal(p.good_since_ms, 1000);
	/* Nothing new: nothing to write. Moved by 4 % (< margin / 4): nothing either. */
	assert_false(score_publish(&p, &m, zone, 1, 1100, 3000, 20, 500));
	m.rtt_us = 1196;
	assert_false(score_publish(&p, &m, zone, 1, 1200, 3000, 20, 500));
	/* By 7.8 %: yes, once 500 ms have passed; the bucket stays (1240 < 1256). */
	m.rtt_us = 1240;
	assert_false(score_publish(&p, &m, zone, 1, 1499, 3000, 20, 500));
	assert_int_equal(p.f.rtt_us, 1150);
	assert_true(score_publish(&p, &m, zone, 1, 1500, 3000, 20, 500));
	assert_int_equal(p.f.rtt_us, 1240);
	assert_int_equal(p.f.rtt_b, 1);
	/* Stable after the hold-down of contact and catch-up, which is a ranked change. */
	assert_false(score_publish(&p, &m, zone, 1, 3999, 3000, 20, 500));
	assert_true(score_publish(&p, &m, zone, 1, 4000, 3000, 20, 500));
	assert_true(p.f.stable);
	/* Contact lost: published once 500 ms have passed; stability restarts from scratch. */
	m.contact = false;
	assert_false(score_publish(&p, &m, zone, 1, 4100, 3000, 20, 500));
	assert_int_equal(p.good_since_ms, 0);
	assert_true(p.f.contact);
	assert_true(score_publish(&p, &m, zone, 1, 4500, 3000, 20, 500));
	assert_false(p.f.contact || p.f.stable);
	m.contact = true;
	assert_true(score_publish(&p, &m, zone, 1, 5000, 3000, 20, 500));
	assert_true(p.f.contact && !p.f.stable);
	assert_int_equal(p.good_since_ms, 5000);
	/* Lag buckets of 16 entries, at most 255. */
	m.lag = 15;
	assert_false(score_publish(&p, &m, zone, 1, 5500, 3000, 20, 500));
	assert_int_equal(p.f.lag_b, 0);
	m.lag = 16;
	assert_true(score_publish(&p, &m, zone, 1, 5700, 3000, 20, 500));
	assert_int_equal(p.f.lag_b, 1);
	m.lag = UINT64_MAX;
	assert_true(score_publish(&p, &m, zone, 1, 6200, 3000, 20, 500));
	assert_int_equal(p.f.lag_b, 255);
	/* RTT unknown (too few peers heard) is a change; the zone preference too. */
	m.rtt_us = UINT64_MAX;
	assert_true(score_publish(&p, &m, zone, 1, 6700, 3000, 20, 500));
	assert_int_equal(p.f.rtt_b, UINT32_MAX);
	assert_true(score_publish(&p, &m, zone, -1, 7200, 3000, 20, 500));
	assert_int_equal(p.f.zpref, -1);
	assert_false(score_publish(&p, &m, zone, -5, 7700, 3000, 20, 500));
}

/*
 * The election simulation. Nodes 1..n; every 100 ms each pings every other (one sample per
 * link and direction, base RTT +- 25 % uniform jitter, seeded) and publishes its facts through
 * score_publish (500 ms apart at most); every 200 ms the leader runs election_decide, counting
 * how long the top candidate has beaten it continuously (reset when it does not, or when
 * another comes on top). A hand-over makes the top candidate the leader at once.
 */
#define SIM_MAX           5
#define SIM_STEP_MS       100
#define SIM_ROUND_MS      200
#define SIM_END_MS        (10 * 60 * 1000)
#define SIM_MAX_HANDOVERS 16

struct sim {
	size_t n;
	uint64_t now, seed;
	uint64_t base[SIM_MAX + 1][SIM_MAX + 1]; /* by id, microseconds */
	uint32_t voters[SIM_MAX];
	struct kvfs_rtt rtt[SIM_MAX];
	struct kvfs_score_pub pub[SIM_MAX];
	struct kvfs_candidate c[SIM_MAX];
	uint64_t hold_down, tenure;
	uint64_t jitter_us; /* 0, or each direction of each sample is further held 0..jitter_us */
	uint32_t stall_pct; /* a sample is also held 20 ms (a stalled process) with this chance */
	uint64_t leader_tax_us; /* the leader's own samples are this much longer (a busier loop) */
	int leader, challenger;
	uint64_t led_since, challenged_since;
	size_t handovers;
	uint64_t ho_at[SIM_MAX_HANDOVERS];
	int ho_to[SIM_MAX_HANDOVERS];
};

static uint64_t sim_rand(struct sim *s)
{
	uint64_t z = (s->seed += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static void sim_links(struct sim *s, uint32_t id, uint64_t rtt_us)
{
	for (size_t j = 1; j <= s->n; j++)
		if (j != id)
			s->base[id][j] = s->base[j][id] = rtt_us;
}

static void sim_init(struct sim *s, size_t n, uint64_t base_us, uint64_t seed)
{
	memset(s, 0, sizeof(*s));
	s->n = n;
	s->seed = seed;
	s->hold_down = 3000;
	s->tenure = 3000;
	s->leader = s->challenger = -1;
	for (size_t i = 0; i < n; i++) {
		s->voters[i] = (uint32_t)i + 1;
		rtt_init(&s->rtt[i]);
		s->c[i].seq = i + 1;
		s->c[i].id = (uint32_t)i + 1;
		s->c[i].priority = 1;
		sim_links(s, (uint32_t)i + 1, base_us);
	}
}

static void sim_measure(struct sim *s)
{
	for (size_t i = 0; i < s->n; i++) {
		uint32_t self = (uint32_t)i + 1;
		struct kvfs_score_measured m;

		for (uint32_t j = 1; j <= s->n; j++) {
			uint64_t b = s->base[self][j];
			uint64_t jitter = sim_rand(s) % (b / 2 + 1); /* 0 .. b/2 */

			if (j == self)
				continue;
			if (s->jitter_us)
				jitter += sim_rand(s) % (s->jitter_us + 1) +
				          sim_rand(s) % (s->jitter_us + 1);
			if (s->stall_pct && sim_rand(s) % 100 < s->stall_pct)
				jitter += 20000;
			if ((int)i == s->leader)
				jitter += s->leader_tax_us;
			rtt_sample(&s->rtt[i], j, b - b / 4 + jitter, s->now);
		}
		m.rtt_us = rtt_quorum_var(&s->rtt[i], s->voters, s->n, self, s->now, &m.rttvar_us);
		m.contact = rtt_contact(&s->rtt[i], s->voters, s->n, self, s->now);
		m.caught_up = true;
		m.lag = sim_rand(s) % KVFS_LAG_BUCKET;
		if (score_publish(&s->pub[i], &m, "", 0, s->now, s->hold_down, 20, 500))
			s->c[i].f = s->pub[i].f;
	}
}

static void sim_round(struct sim *s)
{
	struct kvfs_election_view v = {.mode = KVFS_ELECTION_PRIORITY,
	                               .cands = s->c,
	                               .n = s->n,
	                               .mine = s->leader,
	                               .leader_exists = true,
	                               .leader_mine = true,
	                               .leading = true,
	                               .hold_down_ms = s->hold_down,
	                               .min_tenure_ms = s->tenure,
	                               .rtt_margin_pct = 20};
	struct kvfs_election_decision d;
	int top = election_rank(KVFS_ELECTION_PRIORITY, s->c, s->n);

	if (s->leader < 0) {
		s->leader = top;
		s->led_since = s->now;
		return;
	}
	if (!election_challenged(&v, top, NULL, 0)) {
		s->challenger = -1;
	} else if (top != s->challenger) {
		s->challenger = top;
		s->challenged_since = s->now;
	}
	v.better_waited_ms = s->challenger < 0 ? 0 : s->now - s->challenged_since;
	v.led_ms = s->now - s->led_since;
	v.successor_ready = top >= 0 && s->c[top].f.caught_up;
	election_decide(&v, &d);
	if (d.action != KVFS_ELECT_HAND_OVER)
		return;
	/* Only after the tenure and the hold-down, to the one that beat it all along. */
	assert_true(v.led_ms >= s->tenure);
	assert_true(v.better_waited_ms >= s->hold_down);
	assert_int_equal(d.top, s->challenger);
	assert_true(s->handovers < SIM_MAX_HANDOVERS);
	s->ho_at[s->handovers] = s->now;
	s->ho_to[s->handovers++] = d.top;
	s->leader = d.top;
	s->led_since = s->now;
	s->challenger = -1;
}

static void sim_run(struct sim *s, uint64_t until_ms)
{
	while (s->now < until_ms) {
		s->now += SIM_STEP_MS;
		sim_measure(s);
		if (s->now % SIM_ROUND_MS == 0)
			sim_round(s);
	}
}

/* All links equal under jitter, below and above 1 ms: no hand-over in 10 minutes. */
static void test_sim_steady(void **state)
{
	static const uint64_t bases[] = {300, 5000, 40000};
	struct sim s;

	(void)state;
	for (size_t n = 3; n <= 5; n += 2)
		for (size_t b = 0; b < sizeof(bases) / sizeof(bases[0]); b++)
			for (uint64_t seed = 1; seed <= 4; seed++) {
				sim_init(&s, n, bases[b], seed * 7919 + n);
				sim_run(&s, SIM_END_MS);
				assert_true(s.leader >= 0);
				if (s.handovers != 0)
					fail_msg("n %zu base %llu us seed %llu: %zu hand-overs, "
					         "first at "
					         "%llu ms",
					         n, (unsigned long long)bases[b],
					         (unsigned long long)seed, s.handovers,
					         (unsigned long long)s.ho_at[0]);
			}
}

/* Jitter as large as the RTT itself on every link (each direction held 0..4 ms, as
 * tests/cluster/test_score.py does), now and then a sample held 20 ms more by a stalled process,
 * and the leader's own samples 1.5 ms longer (its loop is the busier one): the leader's quorum
 * RTT is worse than the others' by more than the margin, but not by more than the RTTs vary, so
 * no hand-over in 10 minutes (without the RTTVAR rule, leadership moves on every tenure). */
static void test_sim_heavy_jitter(void **state)
{
	struct sim s;

	(void)state;
	for (size_t n = 3; n <= 5; n += 2)
		for (uint64_t seed = 1; seed <= 6; seed++) {
			sim_init(&s, n, 200, seed * 65537 + n);
			s.jitter_us = 4000;
			s.stall_pct = seed % 3;
			s.leader_tax_us = 1500;
			sim_run(&s, SIM_END_MS);
			assert_true(s.leader >= 0);
			if (s.handovers != 0)
				fail_msg("n %zu seed %llu: %zu hand-overs, first at %llu ms", n,
				         (unsigned long long)seed, s.handovers,
				         (unsigned long long)s.ho_at[0]);
		}
}

/* The leader's links turn 10x slower (and, from 0.3 ms, to 40 ms) at 60 s: exactly one
 * hand-over, to a node with fast links, between the hold-down and the hold-down + 2 s later;
 * restoring the links at 300 s does not bring leadership back. */
static void test_sim_slow_leader(void **state)
{
	static const uint64_t bases[][2] = {{300, 40000}, {4000, 40000}};
	struct sim s;

	(void)state;
	for (size_t n = 3; n <= 5; n += 2)
		for (size_t b = 0; b < 2; b++)
			for (uint64_t seed = 1; seed <= 3; seed++) {
				int old;

				sim_init(&s, n, bases[b][0], seed * 104729 + n);
				sim_run(&s, 60000);
				assert_int_equal(s.handovers, 0);
				old = s.leader;
				sim_links(&s, (uint32_t)old + 1, bases[b][1]);
				sim_run(&s, 300000);
				sim_links(&s, (uint32_t)old + 1, bases[b][0]);
				sim_run(&s, SIM_END_MS);
				if (s.handovers != 1)
					fail_msg("n %zu base %llu seed %llu: %zu hand-overs", n,
					         (unsigned long long)bases[b][0],
					         (unsigned long long)seed, s.handovers);
				assert_int_not_equal(s.ho_to[0], old);
				assert_true(s.ho_at[0] >= 60000 + s.hold_down);
				assert_true(s.ho_at[0] <= 60000 + s.hold_down + 2000);
			}
}

/* A longer tenure: the leader, slow from its first second, stays until the tenure is served. */
static void test_sim_tenure(void **state)
{
	struct sim s;

	(void)state;
	sim_init(&s, 3, 300, 42);
	s.tenure = 20000;
	sim_run(&s, 1000);
	assert_true(s.leader >= 0);
	sim_links(&s, (uint32_t)s.leader + 1, 40000);
	sim_run(&s, SIM_END_MS);
	assert_int_equal(s.handovers, 1);
	assert_true(s.ho_at[0] >= s.tenure);
	assert_true(s.ho_at[0] <= s.tenure + 2 * SIM_ROUND_MS);
}

/* Priority dominates RTT: a priority-2 node with 40 ms links leads over priority-1 fast ones,
 * from the start and when raised later, and keeps leading. */
static void test_sim_priority(void **state)
{
	struct sim s;

	(void)state;
	for (size_t n = 3; n <= 5; n += 2) {
		sim_init(&s, n, 300, 5 + n);
		s.c[n - 1].priority = 2;
		sim_links(&s, (uint32_t)n, 40000);
		sim_run(&s, SIM_END_MS);
		assert_int_equal(s.leader, (int)n - 1);
		assert_int_equal(s.handovers, 0);

		sim_init(&s, n, 300, 11 + n);
		sim_links(&s, 2, 40000);
		sim_run(&s, 60000);
		assert_int_equal(s.leader, 0);
		s.c[1].priority = 2;
		sim_run(&s, SIM_END_MS);
		assert_int_equal(s.handovers, 1);
		assert_int_equal(s.ho_to[0], 1);
		assert_true(s.ho_at[0] >= 60000 + s.hold_down);
		assert_true(s.ho_at[0] <= 60000 + s.hold_down + 2000);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_bucket),     cmocka_unit_test(test_bucket_hysteresis),
	    cmocka_unit_test(test_gates),      cmocka_unit_test(test_order),
	    cmocka_unit_test(test_beats),      cmocka_unit_test(test_publish),
	    cmocka_unit_test(test_sim_steady), cmocka_unit_test(test_sim_heavy_jitter),
	    cmocka_unit_test(test_sim_slow_leader),
	    cmocka_unit_test(test_sim_tenure), cmocka_unit_test(test_sim_priority),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
