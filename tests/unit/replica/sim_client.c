/*
 * The clients of the simulated nodes (see sim_fwd.c): they submit writes and barriers, each
 * replica applies committed entries to a real store (store.c, with its exactly-once table: the
 * last seq per origin), and the outcomes are checked.
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
#include <sys/stat.h>

#include "kvfs/fwd.h"
#include "kvfs/op.h"
#include "kvfs/repl.h"
#include "kvfs/store.h"
#include "sim.h"
#include "sim_fwd.h"

static struct {
	uint64_t writes, done, eio, refused, lost, barriers, forwards, refusals, renumbered;
	uint64_t reports[KVFS_FWD_INVALID + 1];
} totals;

/* ---- the store ---- */

/* The client token an op carries: data's first 8 bytes, a create's or mknod's uid, a link's
 * name ("L<token>"), a fallocate's offset. 0 for none. */
static uint64_t token_of(const struct kvfs_op *op)
{
	uint64_t t = 0;

	if (!op->origin || !op->seq)
		return 0;
	if ((op->type == KVFS_OP_PUT || op->type == KVFS_OP_APPEND) && op->data_len >= 8)
		memcpy(&t, op->data, 8);
	else if (op->type == KVFS_OP_CREATE || op->type == KVFS_OP_MKNOD)
		t = op->uid;
	else if (op->type == KVFS_OP_FALLOCATE)
		t = op->offset;
	else if (op->type == KVFS_OP_LINK && op->name_len > 1 && op->name[0] == 'L')
		for (uint32_t i = 1; i < op->name_len; i++)
			t = t * 10 + (uint64_t)(op->name[i] - '0');
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
void sim_client_rebuild(struct node *nd)
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
	sim_client_rebuild(nd);
}

void sim_fwd_installed(struct node *nd)
{
	struct kvfs_session sess;

	if (nd->fwd && store_session_get(nd->store, nd->id, &sess))
		fwd_after_reset(nd->fwd, &sess);
	sim_fwd_kick(nd);
}

void sim_client_tally(const struct sim_fwd *fw)
{
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
		sim_read_acked(nd);
		sim_read_write_acked(s, w->eff_index);
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
	char name[8], lname[24];
	struct wrec *w;
	uint64_t deadline = 0;
	unsigned kind = calm ? 0 : sim_below(s, 13);
	const struct kvfs_inode *in;
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
	in = store_lookup(nd->store, store_get(nd->store, KVFS_ROOT_INO), name, strlen(name));
	if (kind < 6) {
		op.type = kind < 4 ? KVFS_OP_APPEND : KVFS_OP_PUT;
		op.ino = in ? in->ino : KVFS_INO_BASE + 1000; /* ENOENT */
		op.data = data;
		op.data_len = calm ? 8 : 8 + sim_below(s, (uint32_t)(lim.max_value - 8 + 1));
		memset(data, 'x', sizeof(data));
		memcpy(data, &w->token, 8);
	} else if (kind < 9) {
		op.type = KVFS_OP_CREATE;
		op.parent = KVFS_ROOT_INO;
		op.name = name;
		op.name_len = (uint32_t)strlen(name);
		op.mode = 0644;
		op.uid = (uint32_t)w->token;
		op.flags = kind == 8 ? KVFS_CREATE_EXCL : 0;
	} else if (kind == 10) {
		/* Another name for a key (ENOENT if it has none yet): "L<token>" in the root. */
		op.type = KVFS_OP_LINK;
		op.ino = in ? in->ino : KVFS_INO_BASE + 1000;
		op.parent = KVFS_ROOT_INO;
		snprintf(lname, sizeof(lname), "L%" PRIu64, w->token);
		op.name = lname;
		op.name_len = (uint32_t)strlen(lname);
	} else if (kind == 11) {
		/* A FIFO or socket named like a key: EEXIST when the key is there. */
		op.type = KVFS_OP_MKNOD;
		op.parent = KVFS_ROOT_INO;
		op.name = name;
		op.name_len = (uint32_t)strlen(name);
		op.mode = (sim_below(s, 2) ? S_IFIFO : S_IFSOCK) | 0600;
		op.uid = (uint32_t)w->token;
	} else {
		/* At the token's offset, never growing: zero, punch or only allocate. */
		static const uint32_t modes[] = {KVFS_FALLOC_KEEP_SIZE,
		                                 KVFS_FALLOC_KEEP_SIZE | KVFS_FALLOC_PUNCH_HOLE,
		                                 KVFS_FALLOC_KEEP_SIZE | KVFS_FALLOC_ZERO_RANGE};

		op.type = KVFS_OP_FALLOCATE;
		op.ino = in ? in->ino : KVFS_INO_BASE + 1000;
		op.flags = modes[sim_below(s, 3)];
		op.offset = w->token;
		op.length = 1 + sim_below(s, 16);
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

void sim_calm_round(struct sim *s)
{
	s->now_ms += CALM_MS;
	s->step++;
	for (uint32_t id = 1; id <= s->n; id++) {
		repl_tick(s->nodes[id].r);
		sim_fwd_tick(&s->nodes[id]);
	}
	sim_settle(s);
	sim_fwd_check(s);
	sim_read_check(s);
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
		sim_calm_round(s);
	for (uint64_t t = 1; t <= fw->nw; t++)
		CHECK(s, fw->w[t].state != W_PENDING,
		      "write %" PRIu64 " of %u still waits after the calm", t, fw->w[t].node);
	/* A write on each node now succeeds. */
	for (uint32_t id = 1; id <= s->n; id++)
		calm[id] = submit(s, &s->nodes[id], true);
	for (uint64_t r = 0; r < rounds; r++) {
		sim_calm_round(s);
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
