/*
 * The leader score (score.h): RTT buckets with hysteresis, the eligibility gates, the order among
 * candidates, whether a challenger beats the leader, and the publisher that turns a node's
 * measurements into the facts it writes to its election znode. Pure: no clock, no I/O, and no
 * libm (buckets are found by repeated multiplication, at most a few thousand steps).
 */
#include "kvfs/score.h"

#include <stdio.h>
#include <string.h>

/* Margins outside 1..1000 % are not configurable (the options refuse them); 0 means "not set"
 * (a view built without one) and gets the default. */
static double growth(uint32_t margin_pct)
{
	if (margin_pct == 0)
		margin_pct = KVFS_RTT_MARGIN_DEFAULT;
	if (margin_pct > 1000)
		margin_pct = 1000;
	return 1.0 + margin_pct / 100.0;
}

static uint32_t margin_of(uint32_t margin_pct)
{
	if (margin_pct == 0)
		return KVFS_RTT_MARGIN_DEFAULT;
	return margin_pct > 1000 ? 1000 : margin_pct;
}

/* The lowest RTT of bucket k >= 1: base * g^(k-1). */
static double bucket_low(uint32_t k, double g)
{
	double low = KVFS_RTT_BUCKET_BASE_US;

	for (uint32_t i = 1; i < k; i++)
		low *= g;
	return low;
}

/* x >= bound, counting a bound within rounding error of x as reached (exact boundaries belong to
 * the upper bucket, as floor(log) says). */
static bool reaches(double x, double bound)
{
	return x >= bound * (1.0 - 1e-12);
}

uint32_t score_bucket(uint64_t rtt_us, uint32_t margin_pct)
{
	double g = growth(margin_pct), next = KVFS_RTT_BUCKET_BASE_US * g;
	uint32_t k = 1;

	if (rtt_us == UINT64_MAX)
		return UINT32_MAX;
	if (rtt_us < KVFS_RTT_BUCKET_BASE_US)
		return 0;
	while (reaches((double)rtt_us, next)) {
		next *= g;
		k++;
	}
	return k;
}

/* g^(1/4), by Newton's method on x^4 = g (g in (1, 11]: converges in a few steps). */
static double quarter_root(double g)
{
	double x = 1.0 + (g - 1.0) / 4.0;

	for (int i = 0; i < 30; i++)
		x -= (x * x * x * x - g) / (4.0 * x * x * x);
	return x;
}

uint32_t score_bucket_update(uint32_t prev, uint64_t rtt_us, uint32_t margin_pct)
{
	double g = growth(margin_pct), q = quarter_root(g);
	uint32_t b = score_bucket(rtt_us, margin_pct);

	if (b == UINT32_MAX || prev == UINT32_MAX || b == prev)
		return b;
	/* A whole bucket or more away: surely a quarter past prev's bounds. */
	if (b > prev + 1 || b + 1 < prev)
		return b;
	if (b == prev + 1) /* up: a quarter bucket above b's (prev's upper) bound */
		return reaches((double)rtt_us, bucket_low(b, g) * q) ? b : prev;
	/* down: a quarter bucket below prev's lower bound */
	return (double)rtt_us < bucket_low(prev, g) / q ? b : prev;
}

static bool fail(char *why, size_t len, const char *fmt, const char *arg)
{
	if (why && len > 0)
		snprintf(why, len, fmt, arg);
	return false;
}

bool score_eligible(const struct kvfs_candidate *c, char *why, size_t len)
{
	const struct kvfs_score_facts *f = &c->f;

	if (c->priority == 0)
		return fail(why, len, "%s", "priority 0");
	if (f->observer)
		return fail(why, len, "%s", "observer");
	if (f->zpref < 0)
		return fail(why, len, "avoided zone %s", f->zone[0] ? f->zone : "(none)");
	if (!f->known)
		return fail(why, len, "%s", "no facts published");
	if (!f->contact)
		return fail(why, len, "%s", "no contact with a majority");
	if (!f->caught_up)
		return fail(why, len, "%s", "lagging");
	if (why && len > 0)
		why[0] = '\0';
	return true;
}

/* Facts not published rank as the worst known ones would. */
static uint32_t rtt_b_of(const struct kvfs_candidate *c)
{
	return c->f.known ? c->f.rtt_b : UINT32_MAX;
}

static uint32_t lag_b_of(const struct kvfs_candidate *c)
{
	return c->f.known ? c->f.lag_b : UINT32_MAX;
}

static int cmp_u64(uint64_t a, uint64_t b)
{
	return a < b ? -1 : a > b;
}

int score_cmp(const struct kvfs_candidate *a, const struct kvfs_candidate *b)
{
	bool ea = score_eligible(a, NULL, 0), eb = score_eligible(b, NULL, 0);
	int za = a->f.known ? a->f.zpref : 0, zb = b->f.known ? b->f.zpref : 0;

	if (ea != eb)
		return ea ? -1 : 1;
	if (a->priority != b->priority)
		return a->priority > b->priority ? -1 : 1;
	if (za != zb)
		return za > zb ? -1 : 1;
	if (rtt_b_of(a) != rtt_b_of(b))
		return cmp_u64(rtt_b_of(a), rtt_b_of(b));
	if (lag_b_of(a) != lag_b_of(b))
		return cmp_u64(lag_b_of(a), lag_b_of(b));
	if (a->f.known != b->f.known)
		return a->f.known ? -1 : 1;
	return cmp_u64(a->seq, b->seq);
}

static bool rtt_known(const struct kvfs_candidate *c)
{
	return c->f.known && c->f.rtt_us != UINT64_MAX && c->f.rtt_b != UINT32_MAX;
}

/* c * (100 + m) < i * 100, without overflow for any RTT a znode may carry. */
static bool better_by_margin(uint64_t c, uint64_t i, uint32_t m)
{
	if (c <= UINT64_MAX / 1100 && i <= UINT64_MAX / 1100)
		return c * (100 + m) < i * 100;
	return (double)c * (100 + m) < (double)i * 100;
}

/* Whether the challenger's lead exceeds how much both RTTs vary (the sum of their RTTVARs): two
 * nodes whose quorum RTTs are the same up to jitter never beat each other, however the smoothed
 * figures happen to fall. Called with ch->f.rtt_us < in->f.rtt_us. */
static bool beyond_noise(const struct kvfs_candidate *ch, const struct kvfs_candidate *in)
{
	uint64_t vc = ch->f.rttvar_us, vi = in->f.rttvar_us;

	if (vc > KVFS_RTTVAR_MAX_US)
		vc = KVFS_RTTVAR_MAX_US;
	if (vi > KVFS_RTTVAR_MAX_US)
		vi = KVFS_RTTVAR_MAX_US;
	return in->f.rtt_us - ch->f.rtt_us > vc + vi;
}

bool score_beats(const struct kvfs_candidate *challenger, const struct kvfs_candidate *incumbent,
                 uint32_t margin_pct, char *why, size_t len)
{
	const struct kvfs_candidate *ch = challenger, *in = incumbent;
	uint32_t m = margin_of(margin_pct);
	char ibuf[64];
	int zc = ch->f.zpref, zi = in->f.known ? in->f.zpref : 0;

	if (why && len > 0)
		why[0] = '\0';
	if (!score_eligible(ch, NULL, 0))
		return false;
	if (!score_eligible(in, ibuf, sizeof(ibuf))) {
		if (why && len > 0)
			snprintf(why, len, "node %u is not eligible (%s)", in->id, ibuf);
		return true;
	}
	if (ch->priority != in->priority) {
		if (ch->priority > in->priority && why && len > 0)
			snprintf(why, len, "priority %u > %u", ch->priority, in->priority);
		return ch->priority > in->priority;
	}
	/* A preferred zone is a step like priority's (the order puts it next). */
	if (zc != zi) {
		if (zc > zi && why && len > 0)
			snprintf(why, len, "zone %s preferred",
			         ch->f.zone[0] ? ch->f.zone : "(none)");
		return zc > zi;
	}
	/* Both eligible, so both are in contact: an unknown RTT here is one not measured yet (a
	 * quorum of voters without samples); it is not beaten until it is known. */
	if (!rtt_known(ch) || !rtt_known(in))
		return false;
	if (ch->f.rtt_b >= in->f.rtt_b || !better_by_margin(ch->f.rtt_us, in->f.rtt_us, m) ||
	    !beyond_noise(ch, in))
		return false;
	if (why && len > 0)
		snprintf(why, len, "quorum RTT %.1f ms beats %.1f ms by more than %u %%",
		         (double)ch->f.rtt_us / 1000.0, (double)in->f.rtt_us / 1000.0, m);
	return true;
}

/* Whether rtt moved by more than a quarter of the margin from the published one. */
static bool rtt_moved(uint64_t published, uint64_t now, uint32_t m)
{
	uint64_t diff;

	if (published == UINT64_MAX || now == UINT64_MAX)
		return published != now;
	diff = published > now ? published - now : now - published;
	if (diff <= UINT64_MAX / 400 && published <= UINT64_MAX / 1000)
		return diff * 400 > published * m;
	return (double)diff * 400 > (double)published * m;
}

static bool ranked_change(const struct kvfs_score_facts *a, const struct kvfs_score_facts *b)
{
	return a->known != b->known || a->rtt_b != b->rtt_b || a->contact != b->contact ||
	       a->caught_up != b->caught_up || a->stable != b->stable || a->lag_b != b->lag_b ||
	       a->zpref != b->zpref || a->observer != b->observer || strcmp(a->zone, b->zone) != 0;
}

bool score_publish(struct kvfs_score_pub *p, const struct kvfs_score_measured *m, const char *zone,
                   int zpref, uint64_t now_ms, uint64_t hold_down_ms, uint32_t margin_pct,
                   uint64_t min_interval_ms)
{
	struct kvfs_score_facts nf = p->f;
	uint64_t lag_b = m->lag / KVFS_LAG_BUCKET;

	if (m->contact && m->caught_up) {
		if (p->good_since_ms == 0)
			p->good_since_ms = now_ms;
	} else {
		p->good_since_ms = 0;
	}
	nf.known = true;
	nf.zpref = (int8_t)(zpref < 0 ? -1 : zpref > 0 ? 1 : 0);
	snprintf(nf.zone, sizeof(nf.zone), "%s", zone ? zone : "");
	nf.rtt_us = m->rtt_us;
	nf.rttvar_us = m->rttvar_us == UINT64_MAX || m->rtt_us == UINT64_MAX ? 0 : m->rttvar_us;
	nf.rtt_b = score_bucket_update(p->f.known ? p->f.rtt_b : UINT32_MAX, m->rtt_us, margin_pct);
	nf.contact = m->contact;
	nf.caught_up = m->caught_up;
	nf.stable = p->good_since_ms != 0 && now_ms >= p->good_since_ms &&
	            now_ms - p->good_since_ms >= hold_down_ms;
	nf.lag_b = (uint32_t)(lag_b > 255 ? 255 : lag_b);

	if (!ranked_change(&p->f, &nf) && !rtt_moved(p->f.rtt_us, nf.rtt_us, margin_of(margin_pct)))
		return false;
	if (p->published_ms != 0 && now_ms < p->published_ms + min_interval_ms)
		return false;
	p->f = nf;
	p->published_ms = now_ms;
	return true;
}
