/*
 * Reads that must not be stale (see readidx.h for the design): the leader's rounds, a follower's
 * requests, the reads waiting for an index to be applied or for the restart contract, their
 * deadlines, and the caught-up rule. Pure: the binding (node_read_uv.c, or the simulation)
 * carries the messages, the clock, the view of the core and the log lines.
 */
#include "kvfs/readidx.h"

#include "kvfs/config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/*
 * A round's id has this bit set, a follower's request's id has not. The two travel in the same
 * messages, and views differ: a request sent to a node that now follows the sender (who was
 * elected meanwhile) would otherwise be taken for a round of its leader and answered ok, with no
 * commit index, and that answer taken for the answer to the request.
 */
#define ROUND_BIT (1ull << 63)

enum rstate {
	R_NEXT,    /* (leader) waits for the next round */
	R_ROUND,   /* (leader) in the round in flight */
	R_ASKED,   /* (follower) asked the leader (id 0: not yet, or ask again) */
	R_APPLY,   /* knows its index: waits until this node applied it */
	R_CATCHUP, /* a local read after a start: waits until the node caught up */
};

struct rd {
	struct rd *next;
	enum rstate state;
	uint64_t index;    /* the read index, once known */
	uint64_t deadline; /* now_ms() */
	uint64_t id;       /* R_ASKED: our request id; from a follower: its id */
	uint64_t asked_ms; /* R_ASKED: when */
	uint32_t from;     /* 0: a read on this node; else the follower that asked */
	kvfs_readidx_done_fn cb;
	void *arg;
};

struct kvfs_readidx {
	struct kvfs_readidx_config cfg;
	struct kvfs_readidx_io io;
	struct rd *head;
	uint64_t next_id;
	uint64_t round;         /* the round in flight (0: none) */
	uint64_t round_epoch;   /* the epoch it confirms */
	uint64_t round_started; /* now_ms() */
	bool *acked; /* by id (1..KVFS_CONFIG_ID_MAX): answered the round with our epoch */
	struct kvfs_config members; /* whose majority a round needs (readidx_set_config()) */
	bool caught_up;
};

int readidx_init(struct kvfs_readidx **out, const struct kvfs_readidx_config *cfg,
                 const struct kvfs_readidx_io *io)
{
	struct kvfs_readidx *ri;

	if (!cfg->id || cfg->id > KVFS_CONFIG_ID_MAX || !cfg->first_id ||
	    (cfg->first_id & ROUND_BIT))
		return -EINVAL;
	ri = calloc(1, sizeof(*ri));
	if (!ri)
		return -ENOMEM;
	if (config_bootstrap(&ri->members, cfg->cluster_size) < 0) {
		free(ri);
		return -EINVAL;
	}
	ri->acked = calloc(KVFS_CONFIG_ID_MAX + 1, sizeof(bool));
	if (!ri->acked) {
		free(ri);
		return -ENOMEM;
	}
	ri->cfg = *cfg;
	ri->io = *io;
	ri->next_id = cfg->first_id;
	ri->caught_up = cfg->caught_up;
	*out = ri;
	return 0;
}

void readidx_close(struct kvfs_readidx *ri)
{
	struct rd *r, *next;

	if (!ri)
		return;
	for (r = ri->head; r; r = next) {
		next = r->next;
		free(r);
	}
	free(ri->acked);
	free(ri);
}

static uint64_t now_ms(struct kvfs_readidx *ri)
{
	return ri->io.now_ms(ri->io.arg);
}

static void view(struct kvfs_readidx *ri, struct kvfs_readidx_view *v)
{
	memset(v, 0, sizeof(*v));
	ri->io.view(ri->io.arg, v);
}

static void report(struct kvfs_readidx *ri, const struct kvfs_readidx_report *r)
{
	if (ri->io.report)
		ri->io.report(ri->io.arg, r);
}

/* Removes and frees r (its callback, if any, already ran). */
static void unlink_rd(struct kvfs_readidx *ri, struct rd *r)
{
	struct rd **pp = &ri->head;

	while (*pp && *pp != r)
		pp = &(*pp)->next;
	if (*pp)
		*pp = r->next;
	free(r);
}

/* Takes the reads for which done(r) holds out of the list, in order, then answers each with err
 * (remote ones just go: the follower asks again). The callbacks run after the walk, on reads no
 * longer in the list: one may add reads, or free others (a cluster of one confirms a round at
 * once), without breaking the walk. */
static void finish_where(struct kvfs_readidx *ri, bool (*done)(const struct kvfs_readidx *ri,
                                                               const struct rd *r, uint64_t x),
                         uint64_t x, int err)
{
	struct rd *out = NULL, **tail = &out, **pp = &ri->head, *r;

	while ((r = *pp) != NULL) {
		if (!done(ri, r, x)) {
			pp = &r->next;
			continue;
		}
		*pp = r->next;
		r->next = NULL;
		*tail = r;
		tail = &r->next;
	}
	while ((r = out) != NULL) {
		kvfs_readidx_done_fn cb = r->from ? NULL : r->cb;
		void *arg = r->arg;

		out = r->next;
		free(r);
		if (cb)
			cb(arg, err, 0);
	}
}

static struct rd *rd_new(struct kvfs_readidx *ri, uint64_t deadline, kvfs_readidx_done_fn cb,
                         void *arg)
{
	struct rd *r = calloc(1, sizeof(*r));

	if (!r)
		return NULL;
	r->cb = cb;
	r->arg = arg;
	r->deadline = deadline ? deadline : now_ms(ri) + ri->cfg.write_timeout_ms;
	r->next = ri->head;
	ri->head = r;
	return r;
}

/* The round in flight is confirmed: its reads know their index. */
static void round_done(struct kvfs_readidx *ri)
{
	struct rd *r, *next;

	ri->round = 0;
	for (r = ri->head; r; r = next) {
		next = r->next;
		if (r->state != R_ROUND)
			continue;
		if (r->from) {
			ri->io.send_reply(ri->io.arg, r->from, r->id, ri->round_epoch, r->index,
			                  true);
			unlink_rd(ri, r);
		} else {
			r->state = R_APPLY;
		}
	}
}

static void check_round(struct kvfs_readidx *ri)
{
	ri->acked[ri->cfg.id] = true;
	if (config_quorum(&ri->members, ri->acked))
		round_done(ri);
}

/*
 * Starts a round for every read waiting for one (an established leader only). Each read's index
 * is the commit index now, in the epoch the round confirms: it covers every write acknowledged
 * before the read arrived (the read came before the round), and it is noted afresh at each
 * round, so an index noted in an earlier epoch of ours (a leadership lost and regained between
 * two ticks, with another leader's commits in between) is never confirmed by a later round.
 */
static void start_round(struct kvfs_readidx *ri, const struct kvfs_readidx_view *v)
{
	bool any = false;

	for (struct rd *r = ri->head; r; r = r->next)
		if (r->state == R_NEXT || r->state == R_ROUND) {
			r->state = R_ROUND;
			r->index = v->commit;
			any = true;
		}
	if (!any)
		return;
	ri->round = ri->next_id++ | ROUND_BIT;
	ri->round_epoch = v->epoch;
	ri->round_started = now_ms(ri);
	memset(ri->acked, 0, (KVFS_CONFIG_ID_MAX + 1) * sizeof(bool));
	for (uint32_t i = 0; i < ri->members.n; i++)
		if (ri->members.m[i].role == KVFS_ROLE_VOTER && ri->members.m[i].id != ri->cfg.id)
			ri->io.send_index(ri->io.arg, ri->members.m[i].id, ri->round);
	check_round(ri); /* a cluster of one */
}

/* A read joins: on the leader, the next round; on a follower, a request to the leader. */
static void place(struct kvfs_readidx *ri, struct rd *r, const struct kvfs_readidx_view *v,
                  bool start)
{
	if (v->leads) {
		r->state = R_NEXT;
		if (start && !ri->round)
			start_round(ri, v);
		return;
	}
	r->state = R_ASKED;
	r->id = 0;
	if (!r->from && v->leader && v->leader != ri->cfg.id &&
	    ri->io.connected(ri->io.arg, v->leader)) {
		r->id = ri->next_id++ & ~ROUND_BIT; /* the clock's µs never reach it */
		r->asked_ms = now_ms(ri);
		ri->io.send_index(ri->io.arg, v->leader, r->id);
	}
}

int readidx_barrier(struct kvfs_readidx *ri, uint64_t deadline, kvfs_readidx_done_fn cb,
                    void *arg)
{
	struct kvfs_readidx_view v;
	struct rd *r = rd_new(ri, deadline, cb, arg);

	if (!r)
		return -ENOMEM;
	view(ri, &v);
	place(ri, r, &v, true);
	return 0;
}

/* The restart contract (see readidx.h). */
static void check_caught_up(struct kvfs_readidx *ri, const struct kvfs_readidx_view *v)
{
	if (ri->caught_up)
		return;
	if (!v->leads) {
		if (!v->heard || v->applied < v->heard)
			return;
		/* An entry we cannot see (compacted into a snapshot) proves nothing: the
		 * leader's commit index moves past it soon enough. */
		if (ri->io.entry_epoch(ri->io.arg, v->heard) != v->epoch)
			return;
	}
	ri->caught_up = true;
	report(ri, &(struct kvfs_readidx_report){.event = KVFS_READIDX_CAUGHT_UP,
	                                         .index = v->applied});
}

bool readidx_caught_up(const struct kvfs_readidx *ri)
{
	return ri->caught_up;
}

bool readidx_busy(const struct kvfs_readidx *ri)
{
	return ri->head != NULL;
}

int readidx_wait_caught_up(struct kvfs_readidx *ri, uint64_t deadline, kvfs_readidx_done_fn cb,
                           void *arg)
{
	struct kvfs_readidx_view v;
	struct rd *r;

	view(ri, &v);
	check_caught_up(ri, &v);
	if (ri->caught_up)
		return 1;
	r = rd_new(ri, deadline, cb, arg);
	if (!r)
		return -ENOMEM;
	r->state = R_CATCHUP;
	return 0;
}

/* A read whose index is applied, or that waited for this node to catch up, which it has. */
static bool readable(const struct kvfs_readidx *ri, const struct rd *r, uint64_t applied)
{
	return (r->state == R_APPLY && r->index <= applied) ||
	       (r->state == R_CATCHUP && ri->caught_up);
}

static void progress(struct kvfs_readidx *ri, const struct kvfs_readidx_view *v)
{
	check_caught_up(ri, v);
	finish_where(ri, readable, v->applied, 0);
}

void readidx_progress(struct kvfs_readidx *ri)
{
	struct kvfs_readidx_view v;

	if (!ri->head && ri->caught_up)
		return;
	view(ri, &v);
	progress(ri, &v);
}

void readidx_on_index(struct kvfs_readidx *ri, uint32_t from, uint64_t id)
{
	struct kvfs_readidx_view v;
	struct rd *r;

	view(ri, &v);
	if (id & ROUND_BIT) {
		/* A leader's round: our epoch tells it whether it still leads us. */
		ri->io.send_reply(ri->io.arg, from, id, v.epoch, 0, !v.leads && from == v.leader);
		return;
	}
	if (!v.leads) {
		ri->io.send_reply(ri->io.arg, from, id, v.epoch, 0, false); /* ask whoever leads */
		return;
	}
	r = rd_new(ri, 0, NULL, NULL);
	if (!r) {
		ri->io.send_reply(ri->io.arg, from, id, v.epoch, 0, false);
		return;
	}
	r->from = from;
	r->id = id;
	place(ri, r, &v, true);
}

void readidx_on_reply(struct kvfs_readidx *ri, uint32_t from, uint64_t id, uint64_t epoch,
                      uint64_t commit, bool ok)
{
	struct kvfs_readidx_view v;

	view(ri, &v);
	if (id & ROUND_BIT) {
		if (!v.leads || !ri->round || id != ri->round || !ok || epoch != ri->round_epoch ||
		    ri->round_epoch != v.epoch || from == ri->cfg.id || from > KVFS_CONFIG_ID_MAX)
			return;
		ri->acked[from] = true;
		check_round(ri);
		if (!ri->round)
			start_round(ri, &v); /* reads that came during this one */
	} else {
		for (struct rd *r = ri->head; r; r = r->next) {
			if (r->state != R_ASKED || r->id != id || r->from)
				continue;
			if (ok && epoch >= v.epoch) {
				r->state = R_APPLY;
				r->index = commit;
			} else {
				r->id = 0; /* ask again at the next tick */
			}
			break;
		}
	}
	progress(ri, &v);
}

/* Fails with EIO what waits past its deadline, the report first, so that its log line is there
 * by the time the callers see EIO. Followers' requests just go (the follower asks again). */
static bool expired(const struct kvfs_readidx *ri, const struct rd *r, uint64_t now)
{
	return r->deadline <= now;
}

static void expire(struct kvfs_readidx *ri, uint64_t now)
{
	unsigned failed = 0, waited = 0;
	struct rd *r;

	for (r = ri->head; r; r = r->next)
		if (r->deadline <= now && !r->from)
			r->state == R_CATCHUP ? waited++ : failed++;
	if (failed)
		report(ri, &(struct kvfs_readidx_report){.event = KVFS_READIDX_EXPIRED,
		                                         .count = failed});
	if (waited)
		report(ri, &(struct kvfs_readidx_report){.event = KVFS_READIDX_CATCHUP_EXPIRED,
		                                         .count = waited});
	finish_where(ri, expired, now, -EIO);
}

void readidx_tick(struct kvfs_readidx *ri)
{
	struct kvfs_readidx_view v;
	uint64_t now = now_ms(ri);
	struct rd *r, *next;

	expire(ri, now);
	view(ri, &v);
	for (r = ri->head; r; r = next) {
		next = r->next;
		/* Roles change: a read waiting for the wrong kind of answer starts again; an
		 * unanswered request is asked again (the leader or its connection changed). */
		if ((r->state == R_ASKED &&
		     (v.leads || !r->id || now - r->asked_ms >= KVFS_READIDX_RETRY_MS)) ||
		    ((r->state == R_NEXT || r->state == R_ROUND) && !v.leads)) {
			if (r->from && !v.leads) {
				ri->io.send_reply(ri->io.arg, r->from, r->id, v.epoch, 0, false);
				unlink_rd(ri, r);
				continue;
			}
			/* No round from inside this walk: a cluster of one confirms it at once,
			 * and round_done frees the remote reads, `next` among them. The round
			 * starts below. */
			place(ri, r, &v, false);
		}
	}
	if (v.leads && (!ri->round || ri->round_epoch != v.epoch ||
	                now - ri->round_started >= KVFS_READIDX_RETRY_MS))
		start_round(ri, &v);
	progress(ri, &v);
}

void readidx_fail_all(struct kvfs_readidx *ri, int err)
{
	while (ri && ri->head) {
		struct rd *r = ri->head;

		ri->head = r->next;
		if (!r->from && r->cb)
			r->cb(r->arg, err, 0);
		free(r);
	}
}

int readidx_set_config(struct kvfs_readidx *ri, const struct kvfs_config *c)
{
	if (config_check(c) < 0)
		return -EINVAL;
	ri->members = *c;
	if (ri->round)
		check_round(ri); /* a smaller majority may be there already */
	return 0;
}
