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
 * The clients, the stores and the invariants are in sim_client.c (sim_fwd.h between the two).
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
#include "sim_fwd.h"
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
	return s->fw->nmsgs > 0 || sim_read_busy(s);
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
	sim_read_flush(s);
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
	sim_client_tally(fw);
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

	sim_client_rebuild(nd);
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
		/* As the binding's follow_view: the view goes to the core too. */
		if (nd->zk.leader && nd->zk.leader != nd->id)
			repl_become_follower(nd->r, nd->zk.leader, nd->zk.epoch);
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
	sim_read_kick(nd);
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
	sim_read_tick(nd);
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
		/* As the binding's follow_view: the view goes to the core too. */
		if (nd->zk.leader && nd->zk.leader != id)
			repl_become_follower(nd->r, nd->zk.leader, nd->zk.epoch);
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
