/*
 * Reads in the simulation (test_repl_sim.c runs the replication core, sim_fwd.c and
 * sim_client.c the writes): every simulated replica also runs readidx.c, whose READ_INDEX and
 * READ_INDEX_REPLY travel over the same faulty network (lost, duplicated, reordered,
 * partitioned; never to a later incarnation of their receiver, as a TCP connection dies with its
 * process). Clients on every node issue linearizable reads (readidx_barrier) and local reads
 * (readidx_wait_caught_up, then the store), some with their own deadlines; nodes crash and
 * restart from their simulated disk, DATA/commit included (test_repl_sim.c: written after the
 * log write that made its entries durable, with the commit index of when that write was asked,
 * so possibly stale).
 *
 * Checked at each read's completion, and after every step:
 *  R1. a linearizable read answered with success observes (applied index at the answer) every
 *      write acknowledged anywhere before it was invoked, and every entry any replica had
 *      applied (so committed) by then;
 *  R2. a replica answers no read (local or linearizable) from a state older than the newest it
 *      acknowledged (a write's completion, a read's answer) in any earlier incarnation; while it
 *      is catching up it answers no local read; and once caught up, its store stays at least
 *      that new (every step);
 *  R3. so a deposed leader, or one whose epoch a majority left, answers no linearizable read
 *      after another leader committed what it lacks (R1's "every entry applied anywhere");
 *  and a read completes once, on the incarnation that took it, never from inside the call that
 *  took it, with EIO only at or after its deadline.
 * Liveness at the end, with every fault healed: every waiting read completes, and a
 * linearizable and a local read on every node then succeed.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kvfs/readidx.h"
#include "kvfs/repl.h"
#include "kvfs/store.h"
#include "sim.h"
#include "sim_fwd.h"

#define MAX_READS 1024 /* per run */

enum rdstate { RD_PENDING = 1, RD_DONE, RD_EIO, RD_LOST };

struct rdrec {
	struct sim *s;
	uint32_t node, incarnation;
	bool linearizable;
	bool calm;
	enum rdstate state;
	uint64_t deadline;  /* absolute; 0 for the module's default */
	uint64_t issued_ms; /* invocation */
	uint64_t need_ack;  /* the newest write acknowledged anywhere at invocation */
	uint64_t need_seen; /* the newest entry applied anywhere at invocation */
	uint64_t answered;  /* applied index at the answer */
};

struct rmsg {
	bool reply;
	uint32_t from, to;
	uint32_t from_incarnation, to_incarnation;
	uint64_t id, epoch, commit;
	bool ok;
};

struct sim_read {
	struct rdrec r[MAX_READS + 1];
	uint64_t nr;
	struct rmsg *msgs;
	size_t nmsgs, mcap;
	uint64_t ack_max;     /* the newest write acknowledged anywhere */
	bool in_call;         /* inside readidx_barrier / readidx_wait_caught_up */
	uint64_t sent, lost;
};

static struct {
	uint64_t lin, local, done, eio, lost, waited_catchup, sent, stale_avoided;
	uint64_t reports[KVFS_READIDX_CAUGHT_UP + 1];
} totals;

/* ---- the network ---- */

static void net_send(struct sim *s, const struct rmsg *m)
{
	struct sim_read *rd = s->rd;
	int copies = sim_below(s, 100) < s->dup ? 2 : 1;

	rd->sent++;
	if (!s->fw->conn[m->from][m->to] || sim_below(s, 100) < s->loss) {
		rd->lost++;
		return;
	}
	while (copies-- > 0) {
		rd->msgs = sim_grow(rd->msgs, &rd->mcap, rd->nmsgs + 1, sizeof(*rd->msgs));
		rd->msgs[rd->nmsgs++] = *m;
	}
}

static void deliver_msg(struct sim *s, const struct rmsg *m)
{
	struct node *to = &s->nodes[m->to];

	if (!to->up || !to->ri || to->incarnation != m->to_incarnation ||
	    !s->nodes[m->from].up || s->nodes[m->from].incarnation != m->from_incarnation ||
	    s->group[m->from] != s->group[m->to])
		return;
	sim_trace(s, "%u -> %u %s id %" PRIu64 " e%" PRIu64 " commit %" PRIu64 " ok %d", m->from,
	          m->to, m->reply ? "READ_INDEX_REPLY" : "READ_INDEX", m->id, m->epoch, m->commit,
	          m->ok);
	if (m->reply)
		readidx_on_reply(to->ri, m->from, m->id, m->epoch, m->commit, m->ok);
	else
		readidx_on_index(to->ri, m->from, m->id);
	sim_fwd_kick(to);
}

void sim_read_deliver(struct sim *s, bool duplicate)
{
	struct sim_read *rd = s->rd;
	struct rmsg m;
	size_t i;

	if (!rd->nmsgs)
		return;
	i = sim_below(s, (uint32_t)rd->nmsgs); /* any of them: reordering */
	m = rd->msgs[i];
	if (!duplicate)
		rd->msgs[i] = rd->msgs[--rd->nmsgs];
	deliver_msg(s, &m);
}

bool sim_read_busy(const struct sim *s)
{
	return s->rd->nmsgs > 0;
}

void sim_read_flush(struct sim *s)
{
	struct sim_read *rd = s->rd;

	for (int guard = 0; guard < 100000 && rd->nmsgs; guard++) {
		struct rmsg m = rd->msgs[0];

		rd->msgs[0] = rd->msgs[--rd->nmsgs];
		deliver_msg(s, &m);
	}
	CHECK(s, rd->nmsgs == 0, "read messages do not settle");
}

/* ---- the io of one node's readidx ---- */

static uint64_t io_now_ms(void *arg)
{
	return ((struct node *)arg)->s->now_ms;
}

static void io_view(void *arg, struct kvfs_readidx_view *v)
{
	struct node *nd = arg;

	*v = (struct kvfs_readidx_view){
	    .leads = repl_role(nd->r) == KVFS_REPL_LEADER,
	    .epoch = repl_epoch(nd->r),
	    .leader = repl_leader(nd->r),
	    .commit = repl_commit_index(nd->r),
	    .heard = repl_heard_commit(nd->r),
	    .applied = store_applied_index(nd->store),
	};
}

static uint64_t io_entry_epoch(void *arg, uint64_t index)
{
	struct node *nd = arg;
	struct kvfs_repl_entry e;

	return repl_entry(nd->r, index, &e) == 0 ? e.epoch : 0;
}

static bool io_connected(void *arg, uint32_t id)
{
	struct node *nd = arg;

	return nd->s->fw->conn[nd->id][id];
}

static void io_send_index(void *arg, uint32_t to, uint64_t id)
{
	struct node *nd = arg;
	struct rmsg m = {.from = nd->id,
	                 .to = to,
	                 .from_incarnation = nd->incarnation,
	                 .to_incarnation = nd->s->nodes[to].incarnation,
	                 .id = id};

	net_send(nd->s, &m);
}

static void io_send_reply(void *arg, uint32_t to, uint64_t id, uint64_t epoch, uint64_t commit,
                          bool ok)
{
	struct node *nd = arg;
	struct rmsg m = {.reply = true,
	                 .from = nd->id,
	                 .to = to,
	                 .from_incarnation = nd->incarnation,
	                 .to_incarnation = nd->s->nodes[to].incarnation,
	                 .id = id,
	                 .epoch = epoch,
	                 .commit = commit,
	                 .ok = ok};

	net_send(nd->s, &m);
}

static void io_report(void *arg, const struct kvfs_readidx_report *r)
{
	struct node *nd = arg;

	totals.reports[r->event]++;
	sim_trace(nd->s, "%u read report %d: count %u index %" PRIu64, nd->id, (int)r->event,
	          r->count, r->index);
}

static const struct kvfs_readidx_io io_template = {
    .now_ms = io_now_ms,
    .view = io_view,
    .entry_epoch = io_entry_epoch,
    .connected = io_connected,
    .send_index = io_send_index,
    .send_reply = io_send_reply,
    .report = io_report,
};

/* ---- nodes ---- */

void sim_read_init(struct sim *s)
{
	s->rd = calloc(1, sizeof(*s->rd));
	assert_non_null(s->rd);
}

static void tally(const struct sim_read *rd)
{
	totals.sent += rd->sent;
	for (uint64_t i = 1; i <= rd->nr; i++) {
		const struct rdrec *r = &rd->r[i];

		totals.lin += r->linearizable;
		totals.local += !r->linearizable;
		totals.done += r->state == RD_DONE;
		totals.eio += r->state == RD_EIO;
		totals.lost += r->state == RD_LOST;
	}
}

void sim_read_free(struct sim *s)
{
	for (uint32_t id = 1; id <= s->n; id++)
		readidx_close(s->nodes[id].ri);
	tally(s->rd);
	free(s->rd->msgs);
	free(s->rd);
	s->rd = NULL;
}

void sim_read_start(struct node *nd)
{
	struct sim *s = nd->s;
	struct kvfs_readidx_io io = io_template;
	struct kvfs_readidx_config cfg = {
	    .id = nd->id,
	    .cluster_size = s->boot,
	    .write_timeout_ms = s->fw->timeout_ms,
	    .first_id = s->now_ms * 1000000 + 1, /* as node_read_uv.c: from the clock */
	};

	io.arg = nd;
	CHECK(s, readidx_init(&nd->ri, &cfg, &io) == 0, "readidx_init");
	if (nd->r)
		CHECK(s, readidx_set_config(nd->ri, repl_config(nd->r, NULL)) == 0,
		      "readidx_set_config");
	if (nd->acked > nd->acked_before)
		nd->acked_before = nd->acked;
	nd->acked = 0;
}

void sim_read_crash(struct node *nd)
{
	struct sim_read *rd = nd->s->rd;

	for (uint64_t i = 1; i <= rd->nr; i++)
		if (rd->r[i].node == nd->id && rd->r[i].state == RD_PENDING)
			rd->r[i].state = RD_LOST;
	readidx_close(nd->ri);
	nd->ri = NULL;
}

void sim_read_kick(struct node *nd)
{
	if (nd->up && nd->ri)
		readidx_progress(nd->ri);
}

void sim_read_tick(struct node *nd)
{
	if (nd->up && nd->ri)
		readidx_tick(nd->ri);
}

void sim_read_acked(struct node *nd)
{
	uint64_t applied = store_applied_index(nd->store);

	if (applied > nd->acked)
		nd->acked = applied;
}

void sim_read_write_acked(struct sim *s, uint64_t index)
{
	if (index > s->rd->ack_max)
		s->rd->ack_max = index;
}

/* ---- clients ---- */

/* A read is answered now on r's node: R1, R2. */
static void answered(struct rdrec *r)
{
	struct sim *s = r->s;
	struct node *nd = &s->nodes[r->node];
	uint64_t applied = store_applied_index(nd->store);

	r->answered = applied;
	r->state = RD_DONE;
	/* R2 */
	CHECK(s, applied >= nd->acked_before,
	      "node %u answers a %s read at %" PRIu64 ", having acknowledged %" PRIu64
	      " before its restart",
	      nd->id, r->linearizable ? "linearizable" : "local", applied, nd->acked_before);
	if (!r->linearizable)
		CHECK(s, readidx_caught_up(nd->ri),
		      "node %u answers a local read while catching up", nd->id);
	/* R1, R3 */
	if (r->linearizable) {
		CHECK(s, applied >= r->need_ack,
		      "node %u answers a linearizable read at %" PRIu64 ", but write at %" PRIu64
		      " was acknowledged before it was invoked",
		      nd->id, applied, r->need_ack);
		CHECK(s, applied >= r->need_seen,
		      "node %u (%s, epoch %" PRIu64 ") answers a linearizable read at %" PRIu64
		      ", but %" PRIu64 " was committed (e%" PRIu64 ") before it was invoked",
		      nd->id, repl_role(nd->r) == KVFS_REPL_LEADER ? "leader" : "not leading",
		      repl_epoch(nd->r), applied, r->need_seen, s->map[r->need_seen].e.epoch);
	}
	if (applied > nd->acked)
		nd->acked = applied;
	sim_trace(s, "%u: %s read %" PRIu64 " answered at %" PRIu64, nd->id,
	          r->linearizable ? "linearizable" : "local", (uint64_t)(r - s->rd->r), applied);
}

static void on_read(void *arg, int err, uint64_t zero)
{
	struct rdrec *r = arg;
	struct sim *s = r->s;
	struct node *nd = &s->nodes[r->node];

	CHECK(s, !s->rd->in_call, "a read completes inside the call that took it");
	CHECK(s, r->state == RD_PENDING, "read %" PRIu64 " completes twice",
	      (uint64_t)(r - s->rd->r));
	CHECK(s, nd->up && nd->incarnation == r->incarnation,
	      "read %" PRIu64 " completes on another incarnation of %u", (uint64_t)(r - s->rd->r),
	      r->node);
	CHECK(s, zero == 0, "a read's completion with %" PRIu64, zero);
	if (err) {
		uint64_t deadline = r->deadline ? r->deadline : r->issued_ms + s->fw->timeout_ms;

		CHECK(s, err == -EIO, "read %" PRIu64 ": %d", (uint64_t)(r - s->rd->r), err);
		CHECK(s, s->now_ms >= deadline, "read %" PRIu64 " fails at %" PRIu64
		      " before its deadline %" PRIu64, (uint64_t)(r - s->rd->r), s->now_ms, deadline);
		r->state = RD_EIO;
		sim_trace(s, "%u: read %" PRIu64 " fails with EIO", nd->id, (uint64_t)(r - s->rd->r));
		return;
	}
	answered(r);
}

static struct rdrec *read_submit(struct sim *s, struct node *nd, bool linearizable, bool calm)
{
	struct sim_read *rd = s->rd;
	struct rdrec *r;
	int rv;

	if (!nd->up || !nd->ri || rd->nr >= MAX_READS)
		return NULL;
	r = &rd->r[++rd->nr];
	*r = (struct rdrec){.s = s,
	                    .node = nd->id,
	                    .incarnation = nd->incarnation,
	                    .linearizable = linearizable,
	                    .calm = calm,
	                    .state = RD_PENDING,
	                    .issued_ms = s->now_ms,
	                    .need_ack = rd->ack_max,
	                    .need_seen = s->max_committed};
	if (!calm && sim_below(s, 4) == 0)
		r->deadline = s->now_ms + 1 + sim_below(s, (uint32_t)(2 * s->fw->timeout_ms));
	sim_trace(s, "%u: %s read %" PRIu64 " (must see %" PRIu64 ")", nd->id,
	          linearizable ? "linearizable" : "local", rd->nr, r->need_seen);
	rd->in_call = true;
	if (linearizable) {
		rv = readidx_barrier(nd->ri, r->deadline, on_read, r);
		rd->in_call = false;
		CHECK(s, rv == 0, "readidx_barrier: %d", rv);
		return r;
	}
	rv = readidx_wait_caught_up(nd->ri, r->deadline, on_read, r);
	rd->in_call = false;
	CHECK(s, rv == 0 || rv == 1, "readidx_wait_caught_up: %d", rv);
	if (rv == 1)
		answered(r);
	else
		totals.waited_catchup++;
	return r;
}

void sim_read_client(struct sim *s)
{
	uint32_t id = sim_random_up(s);

	if (id)
		read_submit(s, &s->nodes[id], sim_below(s, 3) != 0, false);
}

/* ---- invariants and liveness ---- */

void sim_read_check(struct sim *s)
{
	for (uint32_t id = 1; id <= s->n; id++) {
		struct node *nd = &s->nodes[id];

		/* R2: a caught-up node serves local reads at any moment */
		if (nd->up && nd->ri && readidx_caught_up(nd->ri))
			CHECK(s, store_applied_index(nd->store) >= nd->acked_before,
			      "node %u is caught up at %" PRIu64 ", having acknowledged %" PRIu64
			      " before its restart",
			      id, store_applied_index(nd->store), nd->acked_before);
	}
}

static bool any_pending(const struct sim_read *rd, uint64_t from)
{
	for (uint64_t i = from; i <= rd->nr; i++)
		if (rd->r[i].state == RD_PENDING)
			return true;
	return false;
}

void sim_read_calm(struct sim *s)
{
	struct sim_read *rd = s->rd;
	uint64_t rounds = 3 * s->fw->timeout_ms / CALM_MS + 10, first;

	/* Whatever waits completes: answered, or EIO at its deadline. */
	for (uint64_t k = 0; k < rounds && any_pending(rd, 1); k++)
		sim_calm_round(s);
	for (uint64_t i = 1; i <= rd->nr; i++)
		CHECK(s, rd->r[i].state != RD_PENDING, "read %" PRIu64 " of %u still waits after the calm",
		      i, rd->r[i].node);
	/* A linearizable and a local read on each node now succeed. */
	first = rd->nr + 1;
	for (uint32_t id = 1; id <= s->n; id++) {
		read_submit(s, &s->nodes[id], true, true);
		read_submit(s, &s->nodes[id], false, true);
	}
	for (uint64_t k = 0; k < rounds && any_pending(rd, first); k++)
		sim_calm_round(s);
	for (uint64_t i = first; i <= rd->nr; i++)
		CHECK(s, rd->r[i].state == RD_DONE, "node %u's %s read after healing ends %d",
		      rd->r[i].node, rd->r[i].linearizable ? "linearizable" : "local",
		      rd->r[i].state);
}

void sim_read_summary(uint64_t seeds)
{
	double n = seeds ? (double)seeds : 1;

	printf("  reads, per run: %.1f linearizable, %.1f local (%.1f waited to catch up); %.1f "
	       "answered, %.1f EIO, %.1f lost in a crash; %.1f messages; reports: %.2f expired, "
	       "%.2f catch-up expired, %.2f caught up\n",
	       (double)totals.lin / n, (double)totals.local / n, (double)totals.waited_catchup / n,
	       (double)totals.done / n, (double)totals.eio / n, (double)totals.lost / n,
	       (double)totals.sent / n, (double)totals.reports[KVFS_READIDX_EXPIRED] / n,
	       (double)totals.reports[KVFS_READIDX_CATCHUP_EXPIRED] / n,
	       (double)totals.reports[KVFS_READIDX_CAUGHT_UP] / n);
	memset(&totals, 0, sizeof(totals));
}
