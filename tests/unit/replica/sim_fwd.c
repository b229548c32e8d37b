/*
 * Write forwarding in the simulation (test_repl_sim.c runs the replication core): every simulated
 * replica also runs fwd.c and applies committed entries to a real store (store.c, with its
 * exactly-once table: the last seq per origin). Clients on every node submit writes (appends and
 * puts of unique tokens to a few keys, creates, some of them too large for another node's
 * --max-value, and node_sync barriers) at random steps. FORWARD and FORWARD_REPLY travel over the
 * same faulty network as the core's messages (lost, duplicated, reordered, partitioned);
 * connections drop (the sender hears fwd_peer_down); ZooKeeper sessions are lost and regained
 * (a node then knows of no leader, a leader stops taking writes while its core may still commit);
 * the oracle's news reach nodes late or never, and two elections may follow each other at once;
 * nodes crash with writes in flight (their callers hear nothing) and restart with sequence
 * numbers from the clock, as node_open does.
 *
 * Checked as things happen, so every step:
 *  F1. each log index has the same outcome on every replica (which write, whether it took
 *      effect, its errno and inode), at every restart too;
 *  F2. a write takes effect at one index at most, whether it was resent, renumbered, failed
 *      with EIO or lost in a crash;
 *  F3. a callback runs once, on the incarnation that took the write; success (or an errno of
 *      the store) only once the write took effect, with that outcome, and with this node's
 *      store past it (read-your-writes);
 *  F4. a write refused by a leader's checks (EFBIG) never takes effect, before or after;
 *  F5. a node_sync barrier completes (without EIO) only once every write its node took before
 *      it has completed;
 *  F6. a node is busy exactly while some of its writes or barriers wait.
 * And at the end, with every fault healed (liveness): every waiting write completes (success or
 * EIO at its deadline), and a write submitted on each node afterwards succeeds.
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

#include "kvfs/fwd.h"
#include "kvfs/op.h"
#include "kvfs/repl.h"
#include "kvfs/store.h"
#include "sim.h"

#define MAX_WRITES 1024 /* per run */
#define KEYS       3
#define CALM_MS    20 /* the clock's step in the calm */

enum wstate { W_PENDING = 1, W_DONE, W_EIO, W_REFUSED, W_LOST };

/* A client's write or barrier, by token (its index in sim_fwd.w). */
struct wrec {
	struct sim *s;
	uint64_t token;
	uint32_t node, incarnation;
	uint64_t order; /* submission order, over the run */
	bool barrier;
	bool calm; /* submitted after healing: must succeed */
	enum wstate state;
	int err; /* what its callback said */
	uint64_t ino;
	uint64_t eff_index; /* where it took effect; 0 nowhere (yet) */
	int eff_err;
	uint64_t eff_ino;
};

struct fmsg {
	bool reply;
	uint32_t from, to, origin;
	uint64_t seq;
	int err;
	uint8_t *op;
	uint32_t len;
};

struct sim_fwd {
	struct wrec w[MAX_WRITES + 1];
	uint64_t nw;
	uint32_t npending[MAXN + 1]; /* by node: records waiting (F6) */
	struct fmsg *msgs;
	size_t nmsgs, mcap;
	bool conn[MAXN + 1][MAXN + 1]; /* a's connection to b is up, as a was told */
	uint64_t max_value[MAXN + 1];
	uint64_t timeout_ms;
	bool broken[MAXN + 1][MAXN + 1]; /* a lost message broke the connection (TCP) */
	uint64_t forwards, refusals, renumbered, reports[KVFS_FWD_INVALID + 1];
};

static struct {
	uint64_t writes, done, eio, refused, lost, barriers, forwards, refusals, renumbered;
	uint64_t reports[KVFS_FWD_INVALID + 1];
} totals;

static const struct kvfs_fwd_io io_template;

/* ---- the network ---- */

static bool reachable(const struct sim *s, uint32_t a, uint32_t b)
{
	return a != b && s->nodes[a].up && s->nodes[b].up && s->group[a] == s->group[b];
}

static void net_send(struct sim *s, const struct fmsg *m)
{
	struct sim_fwd *fw = s->fw;
	int copies = sim_below(s, 100) < s->dup ? 2 : 1;

	if (sim_below(s, 100) < s->loss) {
		sim_trace(s, "%u -> %u %s seq %" PRIu64 " lost", m->from, m->to,
		          m->reply ? "FORWARD_REPLY" : "FORWARD", m->seq);
		/* Mostly as TCP loses data: with the connection, which both ends then hear of
		 * (at the next tick: this runs inside a call into fwd). Otherwise silently. */
		if (sim_below(s, 4))
			fw->broken[m->from][m->to] = true;
		return;
	}
	while (copies-- > 0) {
		struct fmsg *c;

		fw->msgs = sim_grow(fw->msgs, &fw->mcap, fw->nmsgs + 1, sizeof(*fw->msgs));
		c = &fw->msgs[fw->nmsgs++];
		*c = *m;
		c->op = NULL;
		if (m->len) {
			c->op = malloc(m->len);
			assert_non_null(c->op);
			memcpy(c->op, m->op, m->len);
		}
	}
}

static void deliver_msg(struct sim *s, const struct fmsg *m)
{
	struct node *to = &s->nodes[m->to];

	if (!to->up || !to->fwd || !s->fw->conn[m->to][m->from] || !reachable(s, m->from, m->to))
		return;
	sim_trace(s, "%u -> %u %s seq %" PRIu64 " err %d", m->from, m->to,
	          m->reply ? "FORWARD_REPLY" : "FORWARD", m->seq, m->err);
	/* As node_cluster_uv.c's on_message: no dispatch after these. */
	if (m->reply)
		fwd_on_reply(to->fwd, m->from, m->origin, m->seq, m->err);
	else
		fwd_on_forward(to->fwd, m->from, m->origin, m->seq, m->op, m->len);
}

void sim_fwd_deliver(struct sim *s, bool duplicate)
{
	struct sim_fwd *fw = s->fw;
	struct fmsg m;
	size_t i;

	if (!fw->nmsgs)
		return;
	i = sim_below(s, (uint32_t)fw->nmsgs); /* any of them: reordering */
	m = fw->msgs[i];
	if (!duplicate)
		fw->msgs[i] = fw->msgs[--fw->nmsgs];
	deliver_msg(s, &m);
	if (!duplicate)
		free(m.op);
}

bool sim_fwd_busy(const struct sim *s)
{
	return s->fw->nmsgs > 0;
}

void sim_fwd_flush(struct sim *s)
{
	struct sim_fwd *fw = s->fw;

	for (int guard = 0; guard < 100000 && fw->nmsgs; guard++) {
		struct fmsg m = fw->msgs[0];

		fw->msgs[0] = fw->msgs[--fw->nmsgs];
		deliver_msg(s, &m);
		free(m.op);
	}
	CHECK(s, fw->nmsgs == 0, "forwarding does not settle");
}

/* Tells every node of the connections that went or came since it last heard. */
void sim_fwd_net(struct sim *s)
{
	struct sim_fwd *fw = s->fw;
	bool was[MAXN + 1][MAXN + 1];

	memcpy(was, fw->conn, sizeof(was));
	for (uint32_t a = 1; a <= s->n; a++)
		for (uint32_t b = 1; b <= s->n; b++)
			fw->conn[a][b] = reachable(s, a, b);
	for (uint32_t a = 1; a <= s->n; a++) {
		struct node *nd = &s->nodes[a];
		bool up = false;

		if (!nd->fwd)
			continue;
		for (uint32_t b = 1; b <= s->n; b++) {
			if (was[a][b] && !fw->conn[a][b])
				fwd_peer_down(nd->fwd, b);
			up |= !was[a][b] && fw->conn[a][b];
		}
		if (up)
			sim_fwd_kick(nd);
	}
}

/* The connection a <-> b drops (what it carried is lost) and comes back later (sim_fwd_net). */
static void drop_link(struct sim *s, uint32_t a, uint32_t b)
{
	struct sim_fwd *fw = s->fw;
	size_t i = 0;

	if (!fw->conn[a][b] || !s->nodes[a].fwd || !s->nodes[b].fwd)
		return;
	sim_trace(s, "connection %u <-> %u drops", a, b);
	while (i < fw->nmsgs) {
		struct fmsg *m = &fw->msgs[i];

		if ((m->from == a && m->to == b) || (m->from == b && m->to == a)) {
			free(m->op);
			*m = fw->msgs[--fw->nmsgs];
		} else {
			i++;
		}
	}
	fw->conn[a][b] = fw->conn[b][a] = false;
	fwd_peer_down(s->nodes[a].fwd, b);
	fwd_peer_down(s->nodes[b].fwd, a);
}

void sim_fwd_link_drop(struct sim *s)
{
	uint32_t a = sim_random_up(s), b = sim_random_up(s);

	if (a && b && a != b)
		drop_link(s, a, b);
}

/* ---- the io of one node's fwd ---- */

static uint64_t io_now_ms(void *arg)
{
	struct node *nd = arg;

	return nd->s->now_ms;
}

static void io_view(void *arg, struct kvfs_fwd_view *v)
{
	struct node *nd = arg;
	bool zk = nd->zk.session;

	*v = (struct kvfs_fwd_view){
	    .elected = zk && nd->zk.elected,
	    .zk_leader = zk ? nd->zk.leader : 0,
	    .zk_epoch = zk ? nd->zk.epoch : 0,
	    .established = repl_role(nd->r) == KVFS_REPL_LEADER,
	    .core_leader = repl_leader(nd->r),
	    .core_epoch = repl_epoch(nd->r),
	};
}

static bool io_connected(void *arg, uint32_t id)
{
	struct node *nd = arg;

	return nd->s->fw->conn[nd->id][id];
}

static int io_propose(void *arg, const uint8_t *op, uint32_t len)
{
	struct node *nd = arg;
	uint64_t index = 0;
	int rv = repl_propose(nd->r, op, len, &index);

	sim_trace(nd->s, "%u proposes a write at %" PRIu64 ": %d", nd->id, index, rv);
	return rv;
}

static int io_forward(void *arg, uint32_t to, uint64_t seq, const uint8_t *op, uint32_t len)
{
	struct node *nd = arg;
	struct sim *s = nd->s;
	struct fmsg m = {.from = nd->id,
	                 .to = to,
	                 .origin = nd->id,
	                 .seq = seq,
	                 .op = (uint8_t *)op,
	                 .len = len};

	if (!s->fw->conn[nd->id][to])
		return -ENOTCONN;
	s->fw->forwards++;
	net_send(s, &m);
	return 0;
}

static void io_refuse(void *arg, uint32_t to, uint64_t seq, int err)
{
	struct node *nd = arg;
	struct sim *s = nd->s;
	struct fmsg m = {
	    .reply = true, .from = nd->id, .to = to, .origin = to, .seq = seq, .err = err};

	s->fw->refusals++;
	if (s->fw->conn[nd->id][to])
		net_send(s, &m);
}

static void io_report(void *arg, const struct kvfs_fwd_report *r)
{
	struct node *nd = arg;

	if (r->event <= KVFS_FWD_INVALID)
		nd->s->fw->reports[r->event]++;
	sim_trace(nd->s, "%u fwd report %d: count %u peer %u err %d %s", nd->id, (int)r->event,
	          r->count, r->peer, r->err, r->why ? r->why : "");
	CHECK(nd->s, r->event != KVFS_FWD_MALFORMED,
	      "node %u: a well-formed FORWARD from %u refused", nd->id, r->peer);
}

static const struct kvfs_fwd_io io_template = {
    .now_ms = io_now_ms,
    .view = io_view,
    .connected = io_connected,
    .propose = io_propose,
    .forward = io_forward,
    .refuse = io_refuse,
    .report = io_report,
};

/* ---- the store ---- */

/* The client token an op carries: data's first 8 bytes, or a create's uid. 0 for none. */
static uint64_t token_of(const struct kvfs_op *op)
{
	uint64_t t = 0;

	if (!op->origin || !op->seq)
		return 0;
	if ((op->type == KVFS_OP_PUT || op->type == KVFS_OP_APPEND) && op->data_len >= 8)
		memcpy(&t, op->data, 8);
	else if (op->type == KVFS_OP_CREATE)
		t = op->uid;
	return t;
}

/* Applies one committed entry to nd's store and checks F1, F2, F4; tells fwd if live. */
static void apply_one(struct node *nd, uint64_t epoch, uint64_t index, const uint8_t *data,
                      uint32_t len, bool live)
{
	struct sim *s = nd->s;
	struct sim_fwd *fw = s->fw;
	struct kvfs_apply_result res;
	struct kvfs_op op;
	struct committed *o;
	uint64_t token;
	bool eff;
	int rv;

	rv = store_entry_apply(nd->store, epoch, index, data, len, &op, &res);
	CHECK(s, rv == 0, "replica %u cannot apply %" PRIu64 ": %d", nd->id, index, rv);
	token = token_of(&op);
	CHECK(s, token <= fw->nw, "entry %" PRIu64 " carries an unknown token", index);
	eff = token && !res.duplicate;
	CHECK(s, index <= s->max_committed && s->map[index].known,
	      "replica %u applies %" PRIu64 ", which is not committed", nd->id, index);
	o = &s->map[index];
	if (!o->applied) {
		o->applied = true;
		o->effective = eff;
		o->token = token;
		o->err = res.err;
		o->ino = res.ino;
		if (eff) {
			struct wrec *w = &fw->w[token];

			CHECK(s, w->node == op.origin, "write %" PRIu64 " of %u applies as %u's",
			      token, w->node, op.origin);
			/* F2 */
			CHECK(s, !w->eff_index,
			      "write %" PRIu64 " of %u took effect at %" PRIu64
			      " and again at %" PRIu64 " (seq %" PRIu64 ")",
			      token, w->node, w->eff_index, index, op.seq);
			/* F4 */
			CHECK(s, w->state != W_REFUSED,
			      "write %" PRIu64 " of %u, refused with %d, took effect at %" PRIu64,
			      token, w->node, w->err, index);
			w->eff_index = index;
			w->eff_err = res.err;
			w->eff_ino = res.ino;
			sim_trace(s,
			          "write %" PRIu64 " of %u takes effect at %" PRIu64
			          " (seq %" PRIu64 ", err %d)",
			          token, w->node, index, op.seq, res.err);
		}
	} else {
		/* F1 */
		CHECK(s,
		      o->token == token && o->effective == eff && o->err == res.err &&
		          o->ino == res.ino,
		      "replica %u: entry %" PRIu64 " has token %" PRIu64 " effective %d err %d ino "
		      "%" PRIu64 " here, token %" PRIu64 " effective %d err %d ino %" PRIu64
		      " elsewhere",
		      nd->id, index, token, eff, res.err, res.ino, o->token, o->effective, o->err,
		      o->ino);
	}
	if (token && res.duplicate && op.origin == nd->id && live)
		fw->renumbered++; /* a resent copy, or one whose seq went past */
	if (live && nd->fwd && op.origin == nd->id && op.seq) {
		struct kvfs_session sess;

		CHECK(s, store_session_get(nd->store, nd->id, &sess), "no session after an apply");
		fwd_applied(nd->fwd, &sess);
	}
}

/* nd's store: what applying the committed entries 1..nd->applied makes (recovery, snapshot). */
static void rebuild_store(struct node *nd)
{
	struct sim *s = nd->s;

	store_close(nd->store);
	nd->store = NULL;
	CHECK(s, store_init(&nd->store) == 0, "store_init");
	for (uint64_t k = 1; k <= nd->applied; k++)
		apply_one(nd, s->map[k].e.epoch, k, s->map[k].e.data, s->map[k].e.len, false);
}

void sim_fwd_apply(struct node *nd, const struct kvfs_repl_entry *e)
{
	apply_one(nd, e->epoch, e->index, e->data, e->len, true);
}

void sim_fwd_reset_store(struct node *nd)
{
	rebuild_store(nd);
}

void sim_fwd_installed(struct node *nd)
{
	struct kvfs_session sess;

	if (nd->fwd && store_session_get(nd->store, nd->id, &sess))
		fwd_after_reset(nd->fwd, &sess);
	sim_fwd_kick(nd);
}

/* ---- nodes ---- */

void sim_fwd_init(struct sim *s)
{
	struct sim_fwd *fw = calloc(1, sizeof(*fw));

	assert_non_null(fw);
	s->fw = fw;
	fw->timeout_ms = 150 + sim_below(s, 600);
	for (uint32_t id = 1; id <= s->n; id++)
		fw->max_value[id] = 16 + sim_below(s, 40);
}

void sim_fwd_free(struct sim *s)
{
	struct sim_fwd *fw = s->fw;

	for (uint32_t id = 1; id <= s->n; id++) {
		fwd_close(s->nodes[id].fwd);
		store_close(s->nodes[id].store);
	}
	for (size_t i = 0; i < fw->nmsgs; i++)
		free(fw->msgs[i].op);
	free(fw->msgs);
	totals.forwards += fw->forwards;
	totals.refusals += fw->refusals;
	totals.renumbered += fw->renumbered;
	for (int i = 0; i <= KVFS_FWD_INVALID; i++)
		totals.reports[i] += fw->reports[i];
	for (uint64_t t = 1; t <= fw->nw; t++) {
		totals.writes += !fw->w[t].barrier;
		totals.barriers += fw->w[t].barrier;
		totals.done += fw->w[t].state == W_DONE && !fw->w[t].barrier;
		totals.eio += fw->w[t].state == W_EIO;
		totals.refused += fw->w[t].state == W_REFUSED;
		totals.lost += fw->w[t].state == W_LOST;
	}
	free(fw);
	s->fw = NULL;
}

void sim_fwd_start(struct node *nd)
{
	struct sim *s = nd->s;
	struct kvfs_fwd_io io = io_template;
	struct kvfs_fwd_config cfg = {
	    .id = nd->id,
	    .write_timeout_ms = s->fw->timeout_ms,
	    .lim = {.max_value = s->fw->max_value[nd->id]},
	    /* As node_open: from the clock (µs there; here a million per ms, more than a node
	     * ever uses), past any of ours that its log or store holds. */
	    .first_seq = s->now_ms * 1000000 + 1,
	};
	struct kvfs_session sess;

	rebuild_store(nd);
	for (size_t i = 0; i < nd->dn; i++) {
		struct kvfs_op op;

		if (nd->dlog[i].len && op_decode(&op, nd->dlog[i].data, nd->dlog[i].len) == 0 &&
		    op.origin == nd->id && op.seq >= cfg.first_seq)
			cfg.first_seq = op.seq + 1;
	}
	if (store_session_get(nd->store, nd->id, &sess) && sess.seq >= cfg.first_seq)
		cfg.first_seq = sess.seq + 1;
	io.arg = nd;
	CHECK(s, fwd_init(&nd->fwd, &cfg, &io) == 0, "fwd_init");
	nd->incarnation++;
	/* ZooKeeper: a session, and maybe the current leader (or it learns from the core). */
	memset(&nd->zk, 0, sizeof(nd->zk));
	nd->zk.session = true;
	if (s->epoch && s->leader_of[s->epoch] != nd->id && sim_below(s, 2)) {
		nd->zk.leader = s->leader_of[s->epoch];
		nd->zk.epoch = s->epoch;
	}
}

void sim_fwd_crash(struct node *nd)
{
	struct sim_fwd *fw = nd->s->fw;

	/* The process is gone: its callers hear nothing (or EIO from their own side). */
	for (uint64_t t = 1; t <= fw->nw; t++) {
		struct wrec *w = &fw->w[t];

		if (w->node == nd->id && w->state == W_PENDING) {
			w->state = W_LOST;
			fw->npending[nd->id]--;
		}
	}
	fwd_close(nd->fwd);
	nd->fwd = NULL;
	store_close(nd->store);
	nd->store = NULL;
	memset(&nd->zk, 0, sizeof(nd->zk));
}

void sim_fwd_kick(struct node *nd)
{
	if (!nd->up || !nd->fwd)
		return;
	fwd_dispatch(nd->fwd);
	fwd_settle(nd->fwd);
}

void sim_fwd_tick(struct node *nd)
{
	if (!nd->up || !nd->fwd)
		return;
	struct sim_fwd *fw = nd->s->fw;

	for (uint32_t a = 1; a <= nd->s->n; a++)
		for (uint32_t b = 1; b <= nd->s->n; b++)
			if (fw->broken[a][b]) {
				fw->broken[a][b] = false;
				drop_link(nd->s, a, b);
			}
	sim_fwd_net(nd->s); /* dropped connections come back */
	sim_fwd_kick(nd);
	fwd_expire(nd->fwd, nd->s->now_ms);
}

void sim_fwd_elected(struct node *nd, uint64_t epoch)
{
	if (!nd->fwd)
		return;
	nd->zk.session = true;
	nd->zk.elected = true;
	nd->zk.leader = nd->id;
	nd->zk.epoch = epoch;
	sim_fwd_kick(nd);
}

void sim_fwd_notice(struct node *nd, uint32_t leader, uint64_t epoch)
{
	if (!nd->fwd || !nd->zk.session || epoch < nd->zk.epoch)
		return;
	nd->zk.elected = false;
	nd->zk.leader = leader;
	nd->zk.epoch = epoch;
	sim_fwd_kick(nd);
}

void sim_fwd_lost_lead(struct node *nd)
{
	/* The binding resigns: its znodes go, ZooKeeper no longer says it leads. Inside a core
	 * call: no call into fwd from here. */
	if (nd->zk.leader == nd->id) {
		nd->zk.elected = false;
		nd->zk.leader = 0;
	}
}

/* A node loses its ZooKeeper session (it no longer knows who leads, and stops leading; the
 * oracle may elect another at once), or regains it and reads who leads now. */
void sim_fwd_session(struct sim *s)
{
	uint32_t id = sim_random_up(s);
	struct node *nd;

	if (!id)
		return;
	nd = &s->nodes[id];
	if (nd->zk.session) {
		sim_trace(s, "%u loses its ZooKeeper session", id);
		memset(&nd->zk, 0, sizeof(nd->zk));
		if (s->epoch && s->leader_of[s->epoch] == id && sim_below(s, 2)) {
			uint32_t other = sim_random_up(s);

			if (other != id)
				sim_elect(s, other, false);
		}
	} else {
		sim_trace(s, "%u regains its ZooKeeper session", id);
		nd->zk.session = true;
		nd->zk.elected = s->epoch && s->leader_of[s->epoch] == id;
		nd->zk.leader = s->leader_of[s->epoch];
		nd->zk.epoch = s->epoch;
	}
	sim_fwd_kick(nd);
}

void sim_fwd_heal(struct sim *s)
{
	for (uint32_t id = 1; id <= s->n; id++) {
		struct node *nd = &s->nodes[id];

		if (!nd->up || nd->zk.session)
			continue;
		nd->zk.session = true;
		nd->zk.elected = false;
		nd->zk.leader = s->leader_of[s->epoch];
		nd->zk.epoch = s->epoch;
	}
}

/* ---- clients ---- */

static void on_done(void *arg, int err, uint64_t ino)
{
	struct wrec *w = arg;
	struct sim *s = w->s;
	struct sim_fwd *fw = s->fw;
	struct node *nd = &s->nodes[w->node];

	/* F3 */
	CHECK(s, w->state == W_PENDING, "write %" PRIu64 " of %u completes twice (%d, then %d)",
	      w->token, w->node, w->err, err);
	CHECK(s, nd->up && nd->incarnation == w->incarnation,
	      "write %" PRIu64 " completes on another incarnation of %u", w->token, w->node);
	fw->npending[w->node]--;
	w->err = err;
	w->ino = ino;
	sim_trace(s, "write %" PRIu64 " of %u completes: %d", w->token, w->node, err);
	if (w->barrier) {
		/* F5 */
		CHECK(s, err == 0 || err == -EIO, "barrier %" PRIu64 ": %d", w->token, err);
		for (uint64_t t = 1; !err && t < w->token; t++)
			CHECK(s, fw->w[t].node != w->node || fw->w[t].state != W_PENDING,
			      "barrier %" PRIu64 " of %u completes before write %" PRIu64, w->token,
			      w->node, t);
		w->state = err ? W_EIO : W_DONE;
		return;
	}
	if (err == -EIO) {
		w->state = W_EIO;
		return;
	}
	if (w->eff_index) {
		CHECK(s, err == w->eff_err && ino == w->eff_ino,
		      "write %" PRIu64 " of %u reports (%d, %" PRIu64 "), it took effect as (%d, "
		      "%" PRIu64 ")",
		      w->token, w->node, err, ino, w->eff_err, w->eff_ino);
		CHECK(s, store_applied_index(nd->store) >= w->eff_index,
		      "write %" PRIu64 " of %u done before its node applied %" PRIu64, w->token,
		      w->node, w->eff_index);
		w->state = W_DONE;
	} else {
		CHECK(s, err == -EFBIG, "write %" PRIu64 " of %u reports %d but took no effect",
		      w->token, w->node, err);
		w->state = W_REFUSED;
	}
}

/* A client of nd submits a write (or a barrier); calm: a small one that must succeed. */
static struct wrec *submit(struct sim *s, struct node *nd, bool calm)
{
	struct sim_fwd *fw = s->fw;
	struct kvfs_op_limits lim = {.max_value = fw->max_value[nd->id]};
	struct kvfs_op op = {0};
	uint8_t data[64];
	char name[8];
	struct wrec *w;
	uint64_t deadline = 0;
	unsigned kind = calm ? 0 : sim_below(s, 10);
	int rv;

	if (!nd->up || !nd->fwd || fw->nw >= MAX_WRITES)
		return NULL;
	w = &fw->w[++fw->nw];
	*w = (struct wrec){.s = s,
	                   .token = fw->nw,
	                   .node = nd->id,
	                   .incarnation = nd->incarnation,
	                   .calm = calm,
	                   .state = W_PENDING};
	fw->npending[nd->id]++;
	if (kind == 9) {
		w->barrier = true;
		CHECK(s, fwd_sync(nd->fwd, on_done, w) == 0, "fwd_sync");
		sim_trace(s, "%u: barrier %" PRIu64, nd->id, w->token);
		return w;
	}
	snprintf(name, sizeof(name), "k%u", sim_below(s, KEYS));
	op.max_value = lim.max_value;
	op.time_ns = (int64_t)s->now_ms;
	if (kind < 6) {
		const struct kvfs_inode *in = store_lookup(
		    nd->store, store_get(nd->store, KVFS_ROOT_INO), name, strlen(name));

		op.type = kind < 4 ? KVFS_OP_APPEND : KVFS_OP_PUT;
		op.ino = in ? in->ino : KVFS_INO_BASE + 1000; /* ENOENT */
		op.data = data;
		op.data_len = calm ? 8 : 8 + sim_below(s, (uint32_t)(lim.max_value - 8 + 1));
		memset(data, 'x', sizeof(data));
		memcpy(data, &w->token, 8);
	} else {
		op.type = KVFS_OP_CREATE;
		op.parent = KVFS_ROOT_INO;
		op.name = name;
		op.name_len = (uint32_t)strlen(name);
		op.mode = 0644;
		op.uid = (uint32_t)w->token;
		op.flags = kind == 8 ? KVFS_CREATE_EXCL : 0;
	}
	/* node_propose's own check */
	CHECK(s, op_validate(&op, &lim) == 0, "a client's op does not validate");
	if (!calm && sim_below(s, 4) == 0)
		deadline = s->now_ms + 1 + sim_below(s, (uint32_t)(2 * fw->timeout_ms));
	rv = fwd_propose(nd->fwd, &op, deadline, on_done, w);
	CHECK(s, rv == 0, "fwd_propose: %d", rv);
	sim_trace(s, "%u: write %" PRIu64 " (%s %s, %u bytes) seq %" PRIu64, nd->id, w->token,
	          op_type_name(op.type), name, op.data_len, op.seq);
	return w;
}

void sim_fwd_write(struct sim *s)
{
	uint32_t id = sim_random_up(s);

	if (id)
		submit(s, &s->nodes[id], false);
}

/* ---- invariants and liveness ---- */

void sim_fwd_check(struct sim *s)
{
	/* F6 */
	for (uint32_t id = 1; id <= s->n; id++) {
		struct node *nd = &s->nodes[id];

		if (nd->fwd)
			CHECK(s, fwd_busy(nd->fwd) == (s->fw->npending[id] > 0),
			      "node %u busy %d with %u writes waiting", id, fwd_busy(nd->fwd),
			      s->fw->npending[id]);
	}
}

/* A calm round: the clock moves, every node ticks, everything is delivered. */
static void calm_round(struct sim *s)
{
	s->now_ms += CALM_MS;
	s->step++;
	for (uint32_t id = 1; id <= s->n; id++) {
		repl_tick(s->nodes[id].r);
		sim_fwd_tick(&s->nodes[id]);
	}
	sim_settle(s);
	sim_fwd_check(s);
}

static bool any_pending(const struct sim *s)
{
	for (uint32_t id = 1; id <= s->n; id++)
		if (s->fw->npending[id])
			return true;
	return false;
}

void sim_fwd_calm(struct sim *s)
{
	struct sim_fwd *fw = s->fw;
	struct wrec *calm[MAXN + 1] = {0};
	uint64_t rounds = 3 * fw->timeout_ms / CALM_MS + 10;
	bool left;

	/* Whatever waits completes: applied, or EIO at its deadline. */
	for (uint64_t r = 0; r < rounds && any_pending(s); r++)
		calm_round(s);
	for (uint64_t t = 1; t <= fw->nw; t++)
		CHECK(s, fw->w[t].state != W_PENDING,
		      "write %" PRIu64 " of %u still waits after the calm", t, fw->w[t].node);
	/* A write on each node now succeeds. */
	for (uint32_t id = 1; id <= s->n; id++)
		calm[id] = submit(s, &s->nodes[id], true);
	for (uint64_t r = 0; r < rounds; r++) {
		calm_round(s);
		left = false;
		for (uint32_t id = 1; id <= s->n; id++)
			left |= calm[id] && calm[id]->state == W_PENDING;
		if (!left)
			break;
	}
	for (uint32_t id = 1; id <= s->n; id++) {
		struct wrec *w = calm[id];

		if (!w)
			continue;
		CHECK(s, w->state == W_DONE, "node %u's write after healing ends %d (err %d)", id,
		      w->state, w->err);
		for (uint32_t k = 1; k <= s->n; k++)
			CHECK(s, store_applied_index(s->nodes[k].store) >= w->eff_index,
			      "replica %u lacks write %" PRIu64 " at %" PRIu64, k, w->token,
			      w->eff_index);
	}
}

void sim_fwd_summary(uint64_t seeds)
{
	double n = seeds ? (double)seeds : 1;

	printf("  forwarding, per run: %.1f writes (%.1f done, %.1f EIO, %.1f refused, %.1f lost "
	       "in a crash), %.1f barriers, %.1f FORWARDs, %.1f refusals, %.1f stale copies "
	       "applied as duplicates; reports: %.2f expired, %.2f reset, %.2f refused late, "
	       "%.2f invalid\n",
	       (double)totals.writes / n, (double)totals.done / n, (double)totals.eio / n,
	       (double)totals.refused / n, (double)totals.lost / n, (double)totals.barriers / n,
	       (double)totals.forwards / n, (double)totals.refusals / n,
	       (double)totals.renumbered / n, (double)totals.reports[KVFS_FWD_EXPIRED] / n,
	       (double)totals.reports[KVFS_FWD_RESET_UNKNOWN] / n,
	       (double)totals.reports[KVFS_FWD_REFUSED_LATE] / n,
	       (double)totals.reports[KVFS_FWD_INVALID] / n);
	memset(&totals, 0, sizeof(totals));
}
