/*
 * The leader score (score.h). STUB: helper B replaces this file.
 */
#include "kvfs/score.h"

#include <stdio.h>

uint32_t score_bucket(uint64_t rtt_us, uint32_t margin_pct)
{
	(void)margin_pct;
	return rtt_us == UINT64_MAX ? UINT32_MAX : 0;
}

uint32_t score_bucket_update(uint32_t prev, uint64_t rtt_us, uint32_t margin_pct)
{
	(void)prev;
	return score_bucket(rtt_us, margin_pct);
}

bool score_eligible(const struct kvfs_candidate *c, char *why, size_t len)
{
	if (c->priority == 0) {
		if (why)
			snprintf(why, len, "priority 0");
		return false;
	}
	return true;
}

int score_cmp(const struct kvfs_candidate *a, const struct kvfs_candidate *b)
{
	if (a->priority != b->priority)
		return a->priority > b->priority ? -1 : 1;
	return a->seq < b->seq ? -1 : a->seq > b->seq;
}

bool score_beats(const struct kvfs_candidate *challenger, const struct kvfs_candidate *incumbent,
                 uint32_t margin_pct, char *why, size_t len)
{
	(void)margin_pct;
	if (challenger->priority > incumbent->priority) {
		if (why)
			snprintf(why, len, "priority %u > %u", challenger->priority,
			         incumbent->priority);
		return true;
	}
	return false;
}

bool score_publish(struct kvfs_score_pub *p, const struct kvfs_score_measured *m,
                   const char *zone, int zpref, uint64_t now_ms, uint64_t hold_down_ms,
                   uint32_t margin_pct, uint64_t min_interval_ms)
{
	(void)p, (void)m, (void)zone, (void)zpref, (void)now_ms, (void)hold_down_ms,
	    (void)margin_pct, (void)min_interval_ms;
	return false;
}
