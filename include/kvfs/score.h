/*
 * The leader score (priority mode): who should lead, and when a leader should give way. Pure: no
 * clock, no I/O; the callers give times in milliseconds.
 *
 * Gates. A candidate is eligible when its priority is above 0, it is a voter (not an observer),
 * its zone is not avoided, it is in contact with a majority of the voters and it has caught up
 * (struct kvfs_score_facts). "Stable for the hold-down" is enforced by the leader: it gives way
 * only to a challenger that passed every gate and beat it at every round for the hold-down
 * (election_decide); the published `stable` fact (the gates held for the hold-down by the
 * candidate's own clock) is shown in /.status and does not enter the order. When nobody is
 * eligible (a cluster that just started, a leader just lost), the same order ranks the others, so
 * a cluster always gets a leader; priority 0 and observers never lead.
 *
 * Order, compared in turn, never summed (score_cmp): eligible first; higher priority; preferred
 * zone (zpref +1 before 0); lower quorum-RTT bucket; lower lag bucket; facts known before
 * unknown; lower election sequence number. Buckets, not raw figures, make the order stable under
 * jitter: a bucket spans a factor (1 + margin) of RTT, and a publisher moves to a new bucket only
 * when the RTT is a quarter of a bucket past the boundary (score_bucket_update).
 *
 * Hysteresis. A leader gives way only to an eligible challenger that beats it (score_beats): the
 * leader is no longer eligible; or a higher priority; or, at equal priority, a preferred zone
 * (higher zpref; a lower one never beats); or, at equal priority and zpref, a quorum RTT better
 * by more than the margin (challenger * (1 + margin) < incumbent) and in a lower bucket (so RTTs
 * below 1 ms never move leadership). election_decide adds the rest: continuously for the
 * hold-down, after a minimum tenure, once caught up (the leader's own measure).
 */
#ifndef KVFS_SCORE_H
#define KVFS_SCORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kvfs/election.h"
#include "kvfs/rtt.h"

#define KVFS_CAUGHT_UP_ENTRIES 16u   /* "caught up": at most this many entries behind ... */
#define KVFS_CAUGHT_UP_MS      1000u /* ... of a commit index heard this recently */
#define KVFS_LAG_BUCKET        16u   /* entries per lag bucket */
#define KVFS_RTT_MARGIN_DEFAULT 20u  /* percent */
#define KVFS_RTT_BUCKET_BASE_US 1000u /* bucket 0: below 1 ms, all RTTs count as equal */

/* The bucket of an RTT for a margin in percent (1..1000): 0 below KVFS_RTT_BUCKET_BASE_US, then
 * floor(log(rtt / base) / log(1 + margin)) + 1. UINT64_MAX (unknown) gives UINT32_MAX. */
uint32_t score_bucket(uint64_t rtt_us, uint32_t margin_pct);

/* The bucket to publish now, given the one published before (UINT32_MAX if none): prev unless
 * rtt_us has moved a quarter of a bucket beyond prev's bounds (or is unknown / newly known). */
uint32_t score_bucket_update(uint32_t prev, uint64_t rtt_us, uint32_t margin_pct);

/* Whether c passes every gate. If not, and why != NULL, why (len bytes) says the first that
 * failed: "priority 0", "observer", "avoided zone b", "no contact with a majority", "lagging",
 * "not yet stable", "no facts published". */
bool score_eligible(const struct kvfs_candidate *c, char *why, size_t len);

/* <0 if a should lead rather than b, >0 if b rather than a, 0 only for the same sequence. */
int score_cmp(const struct kvfs_candidate *a, const struct kvfs_candidate *b);

/* Whether challenger beats incumbent (the rules above). why as in election_challenged. */
bool score_beats(const struct kvfs_candidate *challenger, const struct kvfs_candidate *incumbent,
                 uint32_t margin_pct, char *why, size_t len);

/*
 * What a node measures about itself, on its loop (node layer), handed to the election thread,
 * which turns it into published facts (score_publish).
 */
struct kvfs_score_measured {
	uint64_t rtt_us;  /* quorum RTT now (rtt_quorum), UINT64_MAX if unknown */
	uint64_t rttvar_us; /* that peer's RTTVAR (rtt_quorum_var), UINT64_MAX if unknown */
	bool contact;     /* rtt_contact */
	bool caught_up;
	uint64_t lag;     /* entries behind the commit index it knows */
};

/* The publisher's state: the facts as last published, and since when the gates have held. */
struct kvfs_score_pub {
	struct kvfs_score_facts f;
	uint64_t good_since_ms; /* contact && caught_up continuously since, 0 if not now */
	uint64_t published_ms;  /* when f was last published, 0 never */
};

/*
 * Folds a measurement taken at now_ms into p->f (bucket hysteresis, lag bucket, stable after
 * hold_down_ms of contact and caught_up). zone and zpref are the node's own settings. Returns
 * true if the facts changed in a way others rank by (rtt_b, contact, caught_up, stable, lag_b,
 * zpref, observer; or rtt_us moved by more than a quarter of the margin from the published one)
 * and at least min_interval_ms passed since the last publication (or never published): the
 * caller should write them to its candidate znode now and set published_ms.
 */
bool score_publish(struct kvfs_score_pub *p, const struct kvfs_score_measured *m,
                   const char *zone, int zpref, uint64_t now_ms, uint64_t hold_down_ms,
                   uint32_t margin_pct, uint64_t min_interval_ms);

#endif /* KVFS_SCORE_H */
