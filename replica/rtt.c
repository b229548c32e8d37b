/*
 * Round-trip times to the peers (rtt.h): per peer, RFC 6298's smoothed RTT and variation in
 * microseconds, when it was last heard, and from these the two figures the leader score needs,
 * the quorum RTT (what a commit waits for) and contact with a majority of the voters. Pure: the
 * caller gives every time.
 */
#include "kvfs/rtt.h"

#include <string.h>

#define RTT_CLAMP_US 60000000u /* 60 s: anything longer is a dead peer, not a round trip */

void rtt_init(struct kvfs_rtt *r)
{
	memset(r, 0, sizeof(*r));
}

static bool id_ok(uint32_t id)
{
	return id > 0 && id <= KVFS_RTT_MAX_ID;
}

void rtt_sample(struct kvfs_rtt *r, uint32_t id, uint64_t rtt_us, uint64_t now_ms)
{
	struct kvfs_rtt_peer *p;

	if (!id_ok(id))
		return;
	p = &r->p[id];
	if (rtt_us > RTT_CLAMP_US)
		rtt_us = RTT_CLAMP_US;
	if (p->samples == 0) {
		p->srtt_us = rtt_us;
		p->rttvar_us = rtt_us / 2;
	} else {
		uint64_t diff = p->srtt_us > rtt_us ? p->srtt_us - rtt_us : rtt_us - p->srtt_us;

		/* RTTVAR first, from the SRTT before this sample (RFC 6298 §2.3); rounded to the
		 * nearest microsecond so a steady RTT is reached, not approached from below. */
		p->rttvar_us = (3 * p->rttvar_us + diff + 2) / 4;
		p->srtt_us = (7 * p->srtt_us + rtt_us + 4) / 8;
	}
	p->samples++;
	p->last_heard_ms = now_ms;
}

void rtt_heard(struct kvfs_rtt *r, uint32_t id, uint64_t now_ms)
{
	if (id_ok(id))
		r->p[id].last_heard_ms = now_ms;
}

void rtt_forget(struct kvfs_rtt *r, uint32_t id)
{
	if (id_ok(id))
		memset(&r->p[id], 0, sizeof(r->p[id]));
}

static bool heard_recently(const struct kvfs_rtt_peer *p, uint64_t now_ms)
{
	if (p->last_heard_ms == 0)
		return false;
	return p->last_heard_ms >= now_ms || now_ms - p->last_heard_ms <= KVFS_CONTACT_MS;
}

/* What walk_voters found among the voters. */
struct voter_walk {
	bool self_voter;
	size_t distinct;
	size_t others; /* others heard recently (and, if need_sample, sampled) */
	uint64_t srtt[KVFS_RTT_MAX_ID + 1];
	uint64_t rttvar[KVFS_RTT_MAX_ID + 1];
};

/* Counts the distinct valid voters (duplicates and ids out of 1..255 are skipped), notes whether
 * self is one, and collects the SRTTs of the others heard within KVFS_CONTACT_MS. */
static void walk_voters(const struct kvfs_rtt *r, const uint32_t *voters, size_t n, uint32_t self,
                        uint64_t now_ms, bool need_sample, struct voter_walk *w)
{
	bool seen[KVFS_RTT_MAX_ID + 1] = {false};

	w->self_voter = false;
	w->distinct = 0;
	w->others = 0;
	for (size_t i = 0; i < n; i++) {
		uint32_t id = voters[i];
		const struct kvfs_rtt_peer *p;

		if (!id_ok(id) || seen[id])
			continue;
		seen[id] = true;
		w->distinct++;
		if (id == self) {
			w->self_voter = true;
			continue;
		}
		p = &r->p[id];
		if (!heard_recently(p, now_ms) || (need_sample && p->samples == 0))
			continue;
		w->rttvar[w->others] = p->rttvar_us;
		w->srtt[w->others++] = p->srtt_us;
	}
}

uint64_t rtt_quorum(const struct kvfs_rtt *r, const uint32_t *voters, size_t n, uint32_t self,
                    uint64_t now_ms)
{
	return rtt_quorum_var(r, voters, n, self, now_ms, NULL);
}

uint64_t rtt_quorum_var(const struct kvfs_rtt *r, const uint32_t *voters, size_t n, uint32_t self,
                        uint64_t now_ms, uint64_t *rttvar_us)
{
	struct voter_walk w;
	size_t need;

	if (rttvar_us)
		*rttvar_us = 0;
	walk_voters(r, voters, n, self, now_ms, true, &w);
	need = w.distinct / 2 + 1 - (w.self_voter ? 1 : 0);
	if (need == 0)
		return 0;
	if (w.others < need) {
		if (rttvar_us)
			*rttvar_us = UINT64_MAX;
		return UINT64_MAX;
	}
	/* The need-th smallest: a partial selection sort, n is small. */
	for (size_t i = 0; i < need; i++) {
		size_t min = i;

		for (size_t j = i + 1; j < w.others; j++)
			if (w.srtt[j] < w.srtt[min])
				min = j;
		uint64_t t = w.srtt[i], v = w.rttvar[i];
		w.srtt[i] = w.srtt[min];
		w.srtt[min] = t;
		w.rttvar[i] = w.rttvar[min];
		w.rttvar[min] = v;
	}
	if (rttvar_us)
		*rttvar_us = w.rttvar[need - 1];
	return w.srtt[need - 1];
}

bool rtt_contact(const struct kvfs_rtt *r, const uint32_t *voters, size_t n, uint32_t self,
                 uint64_t now_ms)
{
	struct voter_walk w;

	walk_voters(r, voters, n, self, now_ms, false, &w);
	if (w.distinct == 0)
		return false;
	return w.others + (w.self_voter ? 1 : 0) >= w.distinct / 2 + 1;
}
