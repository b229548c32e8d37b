/*
 * Linearizable reads (--read linearizable, DESIGN §1): a read index confirmed by a majority.
 *
 * A read may go ahead once this node has applied every entry committed before the read began.
 * The leader knows that index (its commit index) but must first prove it still leads: a deposed
 * leader that has not heard of its successor would answer stale. So the leader runs rounds: it
 * sends READ_INDEX(round) to every follower, and a follower answers READ_INDEX_REPLY(round, its
 * epoch). Once a majority (the leader included) answered with the leader's own epoch, no other
 * leader can have committed anything before the round began (a successor needs promises from a
 * majority, which intersects this one), so every read that joined the round before it began may
 * use the commit index it noted on arrival. Reads arriving during a round wait for the next one,
 * so one round serves any number of reads.
 *
 * A follower asks the leader with READ_INDEX(id); the leader puts the request in a round and
 * answers READ_INDEX_REPLY(id, epoch, commit index, ok). The follower then waits until it has
 * applied that index. The message names are the same both ways: a node that leads takes
 * READ_INDEX as a request and READ_INDEX_REPLY as a round's answer; a follower takes READ_INDEX
 * from its leader as a round to answer and READ_INDEX_REPLY as the answer to its request.
 *
 * A read that cannot be confirmed within --write-timeout fails with EIO.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "kvfs/logging.h"
#include "kvfs/peer.h"
#include "kvfs/peer_msg.h"
#include "kvfs/repl.h"
#include "kvfs/store.h"
#include "node_internal.h"

#define ROUND_RETRY_MS 300 /* a round without a majority's answer starts over */

enum rstate {
	R_NEXT,  /* (leader) waits for the next round */
	R_ROUND, /* (leader) in the round in flight */
	R_ASKED, /* (follower) asked the leader */
	R_APPLY, /* knows its index: waits until this node applied it */
	R_CATCHUP, /* a local read after a start: waits until the node caught up (node.h) */
};

struct rd {
	struct rd *next;
	enum rstate state;
	uint64_t index;    /* the read index, once known */
	uint64_t deadline; /* uv_now() ms */
	uint64_t id;       /* R_ASKED: our request id; from a follower: its id */
	uint64_t asked_ms; /* R_ASKED: when (uv_now()) */
	uint32_t from;     /* 0: a read on this node; else the follower that asked */
	kvfs_node_done_fn cb;
	void *arg;
};

struct node_reads {
	struct rd *head;
	uint64_t next_id;
	uint64_t round;         /* the round in flight (0: none) */
	uint64_t round_epoch;   /* the epoch it confirms */
	uint64_t round_started; /* uv_now() ms */
	bool *acked;            /* by id: answered the round with our epoch */
};

static uint64_t now_ms(struct node_cluster *c)
{
	return uv_now(c->n->loop);
}

int nread_init(struct node_cluster *c)
{
	c->reads = calloc(1, sizeof(*c->reads));
	if (!c->reads)
		return -ENOMEM;
	c->reads->acked = calloc(c->n->cfg.cluster_size + 1, sizeof(bool));
	if (!c->reads->acked)
		return -ENOMEM;
	c->reads->next_id = 1;
	return 0;
}

void nread_free(struct node_cluster *c)
{
	if (!c->reads)
		return;
	nread_fail_all(c, -ESHUTDOWN);
	free(c->reads->acked);
	free(c->reads);
	c->reads = NULL;
}

static bool leads(struct node_cluster *c)
{
	return repl_role(c->repl) == KVFS_REPL_LEADER;
}

static void send_index_reply(struct node_cluster *c, uint32_t to, uint64_t id, uint64_t commit,
                             bool ok)
{
	struct kvfs_peer_read_index_reply m = {
	    .id = id, .epoch = repl_epoch(c->repl), .commit_index = commit, .ok = ok};
	uint8_t buf[KVFS_PEER_READ_INDEX_REPLY_SIZE];

	if (!c->peers)
		return;
	peer_msg_read_index_reply_encode(&m, buf);
	peer_send(c->peers, to, KVFS_MSG_READ_INDEX_REPLY, buf, sizeof(buf));
}

static void send_index(struct node_cluster *c, uint32_t to, uint64_t id)
{
	struct kvfs_peer_read_index m = {.id = id};
	uint8_t buf[KVFS_PEER_READ_INDEX_SIZE];

	if (!c->peers)
		return;
	peer_msg_read_index_encode(&m, buf);
	peer_send(c->peers, to, KVFS_MSG_READ_INDEX, buf, sizeof(buf));
}

/* Removes and frees r (its callback, if any, already ran). */
static void unlink_rd(struct node_reads *s, struct rd *r)
{
	struct rd **pp = &s->head;

	while (*pp && *pp != r)
		pp = &(*pp)->next;
	if (*pp)
		*pp = r->next;
	free(r);
}

static void finish(struct node_cluster *c, struct rd *r, int err)
{
	kvfs_node_done_fn cb = r->cb;
	void *arg = r->arg;

	unlink_rd(c->reads, r);
	if (cb)
		cb(arg, err, 0);
}

/* The round in flight is confirmed: its reads know their index. */
static void round_done(struct node_cluster *c)
{
	struct node_reads *s = c->reads;
	struct rd *r, *next;

	s->round = 0;
	for (r = s->head; r; r = next) {
		next = r->next;
		if (r->state != R_ROUND)
			continue;
		if (r->from) {
			send_index_reply(c, r->from, r->id, r->index, true);
			unlink_rd(s, r);
		} else {
			r->state = R_APPLY;
		}
	}
}

static void check_round(struct node_cluster *c)
{
	struct node_reads *s = c->reads;
	uint32_t count = 1;

	for (uint32_t id = 1; id <= c->n->cfg.cluster_size; id++)
		if (id != c->n->cfg.id && s->acked[id])
			count++;
	if (2 * count > c->n->cfg.cluster_size)
		round_done(c);
}

/* Starts a round for every read waiting for one (leader only). */
static void start_round(struct node_cluster *c)
{
	struct node_reads *s = c->reads;
	bool any = false;

	for (struct rd *r = s->head; r; r = r->next)
		if (r->state == R_NEXT || r->state == R_ROUND) {
			r->state = R_ROUND;
			any = true;
		}
	if (!any)
		return;
	s->round = s->next_id++;
	s->round_epoch = repl_epoch(c->repl);
	s->round_started = now_ms(c);
	memset(s->acked, 0, (c->n->cfg.cluster_size + 1) * sizeof(bool));
	for (uint32_t id = 1; id <= c->n->cfg.cluster_size; id++)
		if (id != c->n->cfg.id)
			send_index(c, id, s->round);
	check_round(c); /* a cluster of one */
}

/* A read joins: on the leader, the next round; on a follower, a request to the leader. */
static void place(struct node_cluster *c, struct rd *r)
{
	struct node_reads *s = c->reads;
	uint32_t leader = repl_leader(c->repl);

	if (leads(c)) {
		r->state = R_NEXT;
		r->index = repl_commit_index(c->repl);
		if (!s->round)
			start_round(c);
		return;
	}
	r->state = R_ASKED;
	if (!r->from && leader && leader != c->n->cfg.id && c->peers &&
	    peer_connected(c->peers, leader)) {
		r->id = s->next_id++;
		r->asked_ms = now_ms(c);
		send_index(c, leader, r->id);
	}
}

int nread_barrier(struct node_cluster *c, uint64_t deadline, kvfs_node_done_fn cb, void *arg)
{
	struct rd *r = calloc(1, sizeof(*r));

	if (!r)
		return -ENOMEM;
	r->cb = cb;
	r->arg = arg;
	r->deadline = deadline ? deadline : now_ms(c) + c->n->cfg.write_timeout_ms;
	r->next = c->reads->head;
	c->reads->head = r;
	place(c, r);
	return 0;
}

int nread_wait_caught_up(struct node_cluster *c, uint64_t deadline, kvfs_node_done_fn cb,
                         void *arg)
{
	struct rd *r;

	if (c->caught_up)
		return 1;
	r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	r->state = R_CATCHUP;
	r->cb = cb;
	r->arg = arg;
	r->deadline = deadline ? deadline : now_ms(c) + c->n->cfg.write_timeout_ms;
	r->next = c->reads->head;
	c->reads->head = r;
	return 0;
}

/* On the leader: a follower's request, or an answer to our round. */
static void leader_message(struct node_cluster *c, uint32_t from, uint8_t type,
                           const uint8_t *p, uint32_t len)
{
	struct node_reads *s = c->reads;

	if (type == KVFS_MSG_READ_INDEX) {
		struct kvfs_peer_read_index m;
		struct rd *r;

		if (peer_msg_read_index_decode(&m, p, len) < 0)
			return;
		r = calloc(1, sizeof(*r));
		if (!r) {
			send_index_reply(c, from, m.id, 0, false);
			return;
		}
		r->from = from;
		r->id = m.id;
		r->deadline = now_ms(c) + c->n->cfg.write_timeout_ms;
		r->next = s->head;
		s->head = r;
		place(c, r);
	} else {
		struct kvfs_peer_read_index_reply m;

		if (peer_msg_read_index_reply_decode(&m, p, len) < 0 || m.id != s->round ||
		    !s->round || !m.ok || m.epoch != s->round_epoch ||
		    s->round_epoch != repl_epoch(c->repl))
			return;
		s->acked[from] = true;
		check_round(c);
		if (!s->round)
			start_round(c); /* reads that came during this one */
	}
}

/* On a follower: a round of our leader to answer, or the answer to our request. */
static void follower_message(struct node_cluster *c, uint32_t from, uint8_t type,
                             const uint8_t *p, uint32_t len)
{
	struct node_reads *s = c->reads;

	if (type == KVFS_MSG_READ_INDEX) {
		struct kvfs_peer_read_index m;

		if (peer_msg_read_index_decode(&m, p, len) < 0)
			return;
		/* Our epoch tells it whether it still leads us. */
		send_index_reply(c, from, m.id, 0, from == repl_leader(c->repl));
	} else {
		struct kvfs_peer_read_index_reply m;

		if (peer_msg_read_index_reply_decode(&m, p, len) < 0)
			return;
		for (struct rd *r = s->head; r; r = r->next) {
			if (r->state != R_ASKED || r->id != m.id || r->from)
				continue;
			if (m.ok && m.epoch >= repl_epoch(c->repl)) {
				r->state = R_APPLY;
				r->index = m.commit_index;
			} else {
				r->id = 0; /* ask again at the next tick */
			}
			break;
		}
	}
}

bool nread_message(struct node_cluster *c, uint32_t from, uint8_t type, const uint8_t *p,
                   uint32_t len)
{
	if (type != KVFS_MSG_READ_INDEX && type != KVFS_MSG_READ_INDEX_REPLY)
		return false;
	if (leads(c))
		leader_message(c, from, type, p, len);
	else
		follower_message(c, from, type, p, len);
	nread_progress(c);
	return true;
}

void nread_progress(struct node_cluster *c)
{
	struct node_reads *s = c->reads;
	uint64_t applied = store_applied_index(c->n->store);
	struct rd *r, *next;

	if (!s)
		return;
	for (r = s->head; r; r = next) {
		next = r->next;
		if ((r->state == R_APPLY && r->index <= applied) ||
		    (r->state == R_CATCHUP && c->caught_up))
			finish(c, r, 0);
	}
}

void nread_tick(struct node_cluster *c)
{
	struct node_reads *s = c->reads;
	uint64_t now = now_ms(c);
	unsigned failed = 0, waited = 0;
	struct rd *r, *next;

	/* The log lines first, so that they are there by the time the callers see EIO. */
	for (r = s->head; r; r = r->next)
		if (r->deadline <= now && !r->from)
			r->state == R_CATCHUP ? waited++ : failed++;
	if (failed)
		log_warn("%u linearizable read(s) failed with EIO: the leader could not confirm "
		         "its commit index with a majority within %" PRIu64 " ms",
		         failed, c->n->cfg.write_timeout_ms);
	if (waited)
		log_warn("%u read(s) failed with EIO: since its start this node has not heard its "
		         "leader's commit index within %" PRIu64 " ms, so it cannot tell whether "
		         "its store holds every write it acknowledged before",
		         waited, c->n->cfg.write_timeout_ms);
	for (r = s->head; r; r = next) {
		next = r->next;
		if (r->deadline <= now) {
			if (r->from)
				unlink_rd(s, r);
			else
				finish(c, r, -EIO);
			continue;
		}
		/* Roles change: a read waiting for the wrong kind of answer starts again. */
		/* An unanswered request is asked again (the leader or its connection changed). */
		if ((r->state == R_ASKED &&
		     (leads(c) || !r->id || now - r->asked_ms >= ROUND_RETRY_MS)) ||
		    ((r->state == R_NEXT || r->state == R_ROUND) && !leads(c))) {
			if (r->from && !leads(c)) {
				send_index_reply(c, r->from, r->id, 0, false);
				unlink_rd(s, r);
				continue;
			}
			r->id = 0;
			place(c, r);
		}
	}
	if (leads(c) && (!s->round || now - s->round_started >= ROUND_RETRY_MS))
		start_round(c);
	nread_progress(c);
}

void nread_fail_all(struct node_cluster *c, int err)
{
	struct node_reads *s = c->reads;

	while (s && s->head) {
		struct rd *r = s->head;

		s->head = r->next;
		if (!r->from && r->cb)
			r->cb(r->arg, err, 0);
		free(r);
	}
}
