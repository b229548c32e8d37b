/*
 * The leader score in the election thread (priority mode; score.h for the rules): this node's
 * measurement from the loop (zk_election_set_facts) folded into the facts its candidate znode
 * publishes (score_publish, then a zoo_set of its own znode); on the leader, how long the top
 * candidate has beaten it (election_challenged at every round), with a log line when a challenge
 * starts, ends early, or ends in a handover; and a copy of the last round's candidates, ranked,
 * for /.status (zk_election_scores). The rules live in score.c and election.c; this file moves
 * facts between them, ZooKeeper and the loop.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zookeeper/zookeeper.h>

#include "kvfs/logging.h"
#include "kvfs/score.h"
#include "zk_internal.h"

#define PUBLISH_MIN_MS 500 /* facts are written to the candidate znode at most this often */

void zk_score_init(struct kvfs_zk *z)
{
	snprintf(z->zone, sizeof(z->zone), "%s", z->cfg.zone ? z->cfg.zone : "");
	z->cfg.zone = z->zone;
	memset(&z->pub, 0, sizeof(z->pub));
	z->pub.f.rtt_us = UINT64_MAX;
	z->pub.f.rtt_b = UINT32_MAX;
	z->facts_logged_b = UINT32_MAX;
	zk_score_format(z);
}

void zk_score_format(struct kvfs_zk *z)
{
	election_format_candidate(z->cand_data, sizeof(z->cand_data), z->cfg.id, z->addr,
	                          z->cfg.priority, &z->pub.f);
}

void zk_election_set_facts(struct kvfs_zk *z, const struct kvfs_score_measured *m)
{
	pthread_mutex_lock(&z->lock);
	z->measured = *m;
	z->have_measured = true;
	pthread_mutex_unlock(&z->lock);
}

/* "quorum RTT 41.2 ms (bucket 21)" or "quorum RTT unknown". */
static void rtt_text(char *buf, size_t len, uint64_t rtt_us, uint32_t bucket)
{
	if (rtt_us == UINT64_MAX)
		snprintf(buf, len, "quorum RTT unknown");
	else
		snprintf(buf, len, "quorum RTT %" PRIu64 ".%" PRIu64 " ms (bucket %u)",
		         rtt_us / 1000, rtt_us % 1000 / 100, bucket);
}

/*
 * One line when the facts others rank by change: at info when a gate changes or the RTT bucket
 * moved by LOG_BUCKETS or more since the last info line (a link that got much slower or faster),
 * at debug for the smaller moves jitter makes, so a busy link does not fill the log.
 */
#define LOG_BUCKETS 3u

static void log_facts(struct kvfs_zk *z)
{
	const struct kvfs_score_facts *f = &z->pub.f;
	char key[96], rtt[64];
	uint32_t was = z->facts_logged_b;
	bool big;

	snprintf(key, sizeof(key), "%d %d %d %d %d %d", f->contact, f->caught_up, f->stable,
	         f->lag_b > 0, f->zpref, f->observer);
	big = strcmp(key, z->facts_logged) != 0 || (was == UINT32_MAX) != (f->rtt_b == UINT32_MAX) ||
	      (f->rtt_b > was ? f->rtt_b - was : was - f->rtt_b) >= LOG_BUCKETS;
	rtt_text(rtt, sizeof(rtt), f->rtt_us, f->rtt_b);
	if (!big) {
		log_debug("score: %s, contact %s, caught up %s, stable %s", rtt,
		          f->contact ? "yes" : "no", f->caught_up ? "yes" : "no",
		          f->stable ? "yes" : "no");
		return;
	}
	snprintf(z->facts_logged, sizeof(z->facts_logged), "%s", key);
	z->facts_logged_b = f->rtt_b;
	log_info("score: %s, contact %s, caught up %s, stable %s", rtt, f->contact ? "yes" : "no",
	         f->caught_up ? "yes" : "no", f->stable ? "yes" : "no");
}

void zk_score_publish(struct kvfs_zk *z, uint64_t now)
{
	struct kvfs_score_measured m;
	bool have;
	char path[512];
	int rc;

	if (z->cfg.mode != KVFS_ELECTION_PRIORITY)
		return;
	pthread_mutex_lock(&z->lock);
	m = z->measured;
	have = z->have_measured;
	pthread_mutex_unlock(&z->lock);
	if (have && score_publish(&z->pub, &m, z->zone, z->cfg.zpref, now, z->cfg.hold_down_ms,
	                          z->cfg.rtt_margin_pct, PUBLISH_MIN_MS)) {
		z->pub.published_ms = now;
		zk_score_format(z);
		log_facts(z);
		z->pub_dirty = true;
	}
	/* A candidate znode made from here on carries the new data; one that exists is set. */
	if (!z->pub_dirty || !z->have_znode)
		return;
	snprintf(path, sizeof(path), "%s/election/%s", z->base, z->my_name);
	rc = zoo_set(z->zh, path, z->cand_data, (int)strlen(z->cand_data), -1);
	if (rc == ZOK || rc == ZNONODE)
		z->pub_dirty = false; /* gone: the next candidacy is made with the new data */
	else
		log_warn("cannot publish the score's facts in %s: %s; trying again", path,
		         zerror(rc));
}

void zk_score_created(struct kvfs_zk *z)
{
	z->pub_dirty = false; /* made with cand_data as it is now */
}

void zk_score_challenge(struct kvfs_zk *z, struct kvfs_election_view *v, int top, uint64_t now)
{
	char why[sizeof(z->challenge_why)];
	bool beaten = v->mode == KVFS_ELECTION_PRIORITY && v->leading && v->mine >= 0 && top >= 0 &&
	              top != v->mine && election_challenged(v, top, why, sizeof(why));

	if (!beaten) {
		if (z->better_since_ms)
			log_info("node %u no longer beats this leader after %" PRIu64
			         " ms; staying leader",
			         z->challenger, now - z->better_since_ms);
		z->better_since_ms = 0;
		z->challenger = 0;
		v->better_waited_ms = 0;
		return;
	}
	snprintf(z->challenge_why, sizeof(z->challenge_why), "%s", why);
	if (!z->better_since_ms || z->challenger != v->cands[top].id) {
		/* A new top candidate that beats us too keeps the clock: we have been beaten
		 * continuously all the same. */
		if (!z->better_since_ms)
			z->better_since_ms = now;
		z->challenger = v->cands[top].id;
		log_info("node %u beats this leader: %s; handing over if it lasts %" PRIu64 " ms",
		         z->challenger, why, v->hold_down_ms);
	}
	v->better_waited_ms = now - z->better_since_ms;
}

void zk_score_log_handover(struct kvfs_zk *z, const struct kvfs_election_view *v,
                           const struct kvfs_election_decision *d, uint64_t epoch, uint64_t now,
                           int rv)
{
	char why[160];
	uint32_t to = d->top >= 0 ? v->cands[d->top].id : 0;

	if (v->leader_mine && !v->leading)
		snprintf(why, sizeof(why), "this node holds /leader but does not lead now");
	else if (z->better_since_ms)
		snprintf(why, sizeof(why), "%s for %" PRIu64 " ms", z->challenge_why,
		         now - z->better_since_ms);
	else if (v->mine >= 0 && !score_eligible(&v->cands[v->mine], why, sizeof(why)))
		; /* why says which gate this node fails */
	else
		snprintf(why, sizeof(why), "node %u ranks first", to);
	log_info("handing over leadership (epoch %" PRIu64 ") to node %u: %s; tenure %" PRIu64
	         ".%" PRIu64 " s: %s",
	         epoch, to, why, v->led_ms / 1000, v->led_ms % 1000 / 100,
	         rv < 0 ? strerror(-rv) : "done");
	z->better_since_ms = 0;
	z->challenger = 0;
}

static int cmp_scores(const void *a, const void *b)
{
	return score_cmp(&((const struct kvfs_zk_score *)a)->c,
	                 &((const struct kvfs_zk_score *)b)->c);
}

void zk_score_keep(struct kvfs_zk *z, const struct kvfs_election_view *v, int top,
                   const struct leader_info *l)
{
	struct kvfs_zk_score *s = z->ranked;
	size_t n = v->n < MAX_CANDIDATES ? v->n : MAX_CANDIDATES;

	if (v->mode != KVFS_ELECTION_PRIORITY)
		return;
	for (size_t i = 0; i < n; i++) {
		s[i] = (struct kvfs_zk_score){.c = v->cands[i]};
		s[i].eligible = score_eligible(&s[i].c, s[i].why, sizeof(s[i].why));
		if (s[i].eligible)
			s[i].why[0] = '\0';
		s[i].leader = l->exists && l->id == s[i].c.id;
		if ((int)i == top && top != v->mine)
			s[i].beats_ms = v->better_waited_ms;
	}
	qsort(s, n, sizeof(*s), cmp_scores);
	for (size_t i = 0; i < n; i++)
		s[i].rank = (unsigned)i + 1;
	pthread_mutex_lock(&z->lock);
	memcpy(z->scores, s, n * sizeof(*s));
	z->nscores = n;
	pthread_mutex_unlock(&z->lock);
}

size_t zk_election_scores(struct kvfs_zk *z, struct kvfs_zk_score *out, size_t max)
{
	size_t n;

	pthread_mutex_lock(&z->lock);
	n = z->nscores < max ? z->nscores : max;
	memcpy(out, z->scores, n * sizeof(*out));
	pthread_mutex_unlock(&z->lock);
	return n;
}
