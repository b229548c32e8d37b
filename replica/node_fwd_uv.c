/*
 * This node's writes in a cluster (see node.h, and node_cluster_uv.c for the rest): every
 * proposal of this node gets (origin = our id, seq), is kept in a list in seq order until this
 * node applies an entry carrying it, and is sent to whoever leads: into the replication core when
 * we lead, in a FORWARD to the leader otherwise. Whenever the leader or its connection changes,
 * or the leader refuses, what has not been applied is sent again, in order. The store applies an
 * (origin, seq) at most once and remembers only the last seq per origin, so:
 *  - a resent write that had committed after all is a no-op the second time;
 *  - when seq s applies, a write of ours with a lower seq still waiting can never apply any more
 *    (it would be taken for a duplicate): it is given a new seq and sent again.
 * The callback runs when the entry is applied here: that is read-your-writes. A write not applied
 * within --write-timeout fails with EIO and a log line saying why.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "kvfs/logging.h"
#include "kvfs/op.h"
#include "kvfs/peer.h"
#include "kvfs/peer_msg.h"
#include "kvfs/repl.h"
#include "kvfs/store.h"
#include "node_internal.h"

static void fwd_unlink(struct node_cluster *c, struct fwd *f)
{
	if (f->prev)
		f->prev->next = f->next;
	else
		c->head = f->next;
	if (f->next)
		f->next->prev = f->prev;
	else
		c->tail = f->prev;
	f->prev = f->next = NULL;
	c->nfwd--;
}

static void fwd_append(struct node_cluster *c, struct fwd *f)
{
	f->prev = c->tail;
	f->next = NULL;
	if (c->tail)
		c->tail->next = f;
	else
		c->head = f;
	c->tail = f;
	c->nfwd++;
}

static void finish(struct node_cluster *c, struct fwd *f, int err, uint64_t ino)
{
	fwd_unlink(c, f);
	f->cb(f->arg, err, ino);
	free(f->op);
	free(f);
}

/* Barriers complete once nothing proposed before them waits. */
void nfwd_settle(struct node_cluster *c)
{
	while (c->head && !c->head->op)
		finish(c, c->head, 0, 0);
}

/* Gives f a new sequence number (its old one can no longer apply) and queues it last. */
static void fwd_renumber(struct node_cluster *c, struct fwd *f)
{
	struct kvfs_op op;

	if (op_decode(&op, f->op, f->len) < 0)
		return;
	op.seq = f->seq = c->n->next_seq++;
	op_encode(&op, f->op);
	f->sent_to = 0;
	f->sent_epoch = 0;
	f->first_to = 0; /* the old seq can never apply: no leader has the new one */
	f->first_epoch = 0;
	fwd_unlink(c, f);
	fwd_append(c, f);
}

/*
 * The store now remembers `last` (with its outcome err, ino) as our latest applied seq: the write
 * of that seq is done, and any other of ours at or below it that still waits can never apply
 * (the store would take it for a duplicate), so it goes again under a new seq.
 */
static void settle_upto(struct node_cluster *c, uint64_t last, int err, uint64_t ino)
{
	struct fwd *f = c->head, *next;

	for (; f; f = next) {
		next = f->next;
		if (!f->op || f->seq > last)
			continue;
		if (f->seq == last)
			finish(c, f, err, ino);
		else
			fwd_renumber(c, f);
	}
	nfwd_settle(c);
}

void nfwd_applied(struct node_cluster *c, uint64_t seq, const struct kvfs_apply_result *res)
{
	struct kvfs_session sess;

	/* A duplicate of a seq below the last one applied carries no outcome: if that write
	 * still waits, it never applied (its entry came after a later one of ours). */
	if (res->duplicate && store_session_get(c->n->store, c->n->cfg.id, &sess) &&
	    sess.seq != seq) {
		settle_upto(c, sess.seq, sess.err, sess.ino);
		return;
	}
	settle_upto(c, seq, res->err, res->ino);
}

void nfwd_after_reset(struct node_cluster *c)
{
	struct kvfs_session sess = {0};
	struct fwd *f = c->head, *next;
	unsigned unknown = 0;

	if (!store_session_get(c->n->store, c->n->cfg.id, &sess))
		return;
	if (c->n->next_seq <= sess.seq)
		c->n->next_seq = sess.seq + 1;
	/* Entries the snapshot covered were never applied here one by one: the write of the last
	 * seq it remembers is done; one below it most likely applied before it, but its outcome
	 * is not known, and sending it again could apply it twice. */
	for (; f; f = next) {
		next = f->next;
		if (!f->op || f->seq > sess.seq)
			continue;
		if (f->seq == sess.seq) {
			finish(c, f, sess.err, sess.ino);
		} else {
			unknown++;
			finish(c, f, -EIO, 0);
		}
	}
	if (unknown)
		log_warn("%u write(s) failed with EIO: a snapshot from the leader covered them, "
		         "without their outcome",
		         unknown);
	nfwd_settle(c);
}

/*
 * Where our proposals go now: this node (when it leads and its no-op has committed) or the
 * leader it follows, if connected. False if there is nowhere to send them yet.
 */
static bool target(struct node_cluster *c, uint32_t *to, uint64_t *epoch)
{
	struct kvfs_node *n = c->n;
	struct kvfs_node_view v = {0};
	uint32_t leader = repl_leader(c->repl);

	n->cluster->view(n->cluster->arg, &v);
	*epoch = repl_epoch(c->repl);
	c->why_stuck = NULL; /* set again below if something is in the way now */
	if (v.leading && v.epoch == *epoch && repl_role(c->repl) == KVFS_REPL_LEADER) {
		*to = n->cfg.id;
		return true;
	}
	if (v.leader && v.epoch > *epoch) {
		leader = v.leader;
		*epoch = v.epoch;
	}
	if (!leader) {
		c->why_stuck = "no leader is known (is a majority of the cluster up?)";
		return false;
	}
	if (leader == n->cfg.id) {
		c->why_stuck = "this node was elected but has not yet gathered a majority";
		return false;
	}
	if (!peer_connected(c->peers, leader)) {
		c->why_stuck = "the leader cannot be reached";
		return false;
	}
	*to = leader;
	return true;
}

/* Sends every proposal not yet sent to the current leader in its epoch, in order. */
void nfwd_dispatch(struct node_cluster *c)
{
	struct kvfs_node *n = c->n;
	uint32_t to;
	uint64_t epoch;

	if (c->closing || n->fatal || !c->head || !target(c, &to, &epoch))
		return;
	for (struct fwd *f = c->head; f; f = f->next) {
		int rv;

		if (!f->op || (f->sent_to == to && f->sent_epoch == epoch))
			continue;
		if (to == n->cfg.id) {
			rv = repl_propose(c->repl, f->op, f->len, NULL);
		} else {
			struct kvfs_peer_forward m = {
			    .origin = n->cfg.id, .seq = f->seq, .op = f->op, .op_len = f->len};
			size_t size = peer_msg_forward_size(&m);
			uint8_t *buf = malloc(size);

			if (!buf)
				break;
			peer_msg_forward_encode(&m, buf);
			rv = peer_send(c->peers, to, KVFS_MSG_FORWARD, buf, (uint32_t)size);
			free(buf);
		}
		if (rv < 0) {
			c->why_stuck = "the leader did not take the write";
			break;
		}
		f->sent_to = to;
		f->sent_epoch = epoch;
		if (!f->first_to) {
			f->first_to = to;
			f->first_epoch = epoch;
		}
	}
}

/* Resends everything from seq on (the leader refused it, or the connection went). */
void nfwd_unsend(struct node_cluster *c, uint64_t seq, uint32_t peer)
{
	for (struct fwd *f = c->head; f; f = f->next)
		if (f->op && (peer ? f->sent_to == peer : f->seq >= seq)) {
			f->sent_to = 0;
			f->sent_epoch = 0;
		}
}

/* Fails what has waited past the write timeout. */
void nfwd_expire(struct node_cluster *c)
{
	uint64_t now = uv_now(c->n->loop);
	struct fwd *f = c->head, *next;
	unsigned failed = 0;

	for (; f; f = f->next)
		failed += f->deadline <= now;
	if (!failed)
		return;
	/* The log line first, so that it is there by the time the caller sees EIO. */
	log_warn("%u write(s) failed with EIO: nothing was committed within %" PRIu64 " ms (%s)",
	         failed, c->n->cfg.write_timeout_ms,
	         c->why_stuck ? c->why_stuck : "no majority of replicas answered");
	for (f = c->head; f; f = next) {
		next = f->next;
		if (f->deadline <= now)
			finish(c, f, -EIO, 0);
	}
	nfwd_settle(c);
}

static struct fwd *fwd_new(struct kvfs_node *n, uint64_t deadline, kvfs_node_done_fn cb,
                           void *arg)
{
	struct fwd *f = calloc(1, sizeof(*f));

	if (!f)
		return NULL;
	f->cb = cb;
	f->arg = arg;
	f->deadline = deadline ? deadline : uv_now(n->loop) + n->cfg.write_timeout_ms;
	return f;
}

int ncl_propose(struct kvfs_node *n, struct kvfs_op *op, uint64_t deadline, kvfs_node_done_fn cb,
                void *arg)
{
	struct node_cluster *c = n->cl;
	struct fwd *f = fwd_new(n, deadline, cb, arg);

	if (!f)
		return -ENOMEM;
	node_stamp_op(n, op);
	f->seq = op->seq;
	f->len = (uint32_t)op_encoded_size(op);
	f->op = malloc(f->len);
	if (!f->op) {
		free(f);
		return -ENOMEM;
	}
	op_encode(op, f->op);
	fwd_append(c, f);
	nfwd_dispatch(c);
	return 0;
}

int ncl_sync(struct kvfs_node *n, kvfs_node_done_fn cb, void *arg)
{
	struct fwd *f = fwd_new(n, 0, cb, arg);

	if (!f)
		return -ENOMEM;
	fwd_append(n->cl, f); /* completed from the loop (ncl_check), never from here */
	return 0;
}

bool ncl_busy(const struct kvfs_node *n)
{
	return n->cl->head != NULL;
}

/* ---- messages from peers ---- */

static void reply_forward(struct node_cluster *c, uint32_t to, uint64_t seq, int err)
{
	struct kvfs_peer_forward_reply m = {.origin = to, .seq = seq, .err = err};
	uint8_t buf[KVFS_PEER_FORWARD_REPLY_SIZE];

	peer_msg_forward_reply_encode(&m, buf);
	peer_send(c->peers, to, KVFS_MSG_FORWARD_REPLY, buf, sizeof(buf));
}

/*
 * Proposes a follower's op (decoded from the len bytes at buf) under this leader's limits: a
 * max_value above ours (or 0) becomes ours, re-encoded, and then the op must pass op_validate().
 * Returns 0, op_validate()'s errno (nothing proposed), or repl_propose()'s error.
 */
static int propose_forwarded(struct node_cluster *c, struct kvfs_op *op, const uint8_t *buf,
                             uint32_t len)
{
	struct kvfs_op_limits lim = node_limits(c->n);
	uint8_t *copy;
	int rv;

	if (op->max_value != 0 && op->max_value <= lim.max_value) {
		rv = op_validate(op, &lim);
		return rv < 0 ? rv : repl_propose(c->repl, buf, len, NULL);
	}
	op->max_value = lim.max_value;
	rv = op_validate(op, &lim);
	if (rv < 0)
		return rv;
	/* Same size: max_value is a fixed-width field of the header. */
	copy = malloc(len);
	if (!copy)
		return -ENOMEM;
	op_encode(op, copy);
	rv = repl_propose(c->repl, copy, len, NULL);
	free(copy);
	return rv;
}

/*
 * On the leader: a follower's write. Proposed if it passes our own checks (its origin and seq
 * make it once); otherwise the follower hears why, in a FORWARD_REPLY: EROFS and EAGAIN mean
 * "send it again (to whoever leads)", any other errno is the write's outcome.
 */
void nfwd_on_forward(struct node_cluster *c, uint32_t from, const uint8_t *p, uint32_t len)
{
	struct kvfs_peer_forward m;
	struct kvfs_op op;
	uint32_t to;
	uint64_t epoch;
	int rv;

	if (peer_msg_forward_decode(&m, p, len) < 0 || m.origin != from ||
	    op_decode(&op, m.op, m.op_len) < 0 || op.origin != from || op.seq != m.seq) {
		log_warn("node %u forwarded a write that is not well formed; ignored", from);
		return;
	}
	if (!target(c, &to, &epoch) || to != c->n->cfg.id) {
		reply_forward(c, from, m.seq, -EROFS);
		return;
	}
	rv = propose_forwarded(c, &op, m.op, m.op_len);
	if (rv == 0)
		return;
	if (rv == -EROFS || rv == -ENOMEM) {
		reply_forward(c, from, m.seq, rv == -EROFS ? -EROFS : -EAGAIN);
		return;
	}
	log_warn("node %u forwarded a %s that this leader refuses: %s", from, op_type_name(op.type),
	         strerror(-rv));
	reply_forward(c, from, m.seq, rv);
}

/*
 * On a follower: the leader refused a write. EROFS and EAGAIN (it no longer leads, or not yet):
 * send it again. Any other errno: the leader's checks refused the op, and it was not proposed;
 * that is the write's outcome, unless the write went to another leader (or epoch) before, which
 * may have proposed it: then its outcome is unknown (EIO).
 */
void nfwd_on_reply(struct node_cluster *c, uint32_t from, const uint8_t *p, uint32_t len)
{
	struct kvfs_peer_forward_reply m;
	struct fwd *f;

	if (peer_msg_forward_reply_decode(&m, p, len) < 0 || m.origin != c->n->cfg.id)
		return;
	if (m.err == 0)
		return;
	if (m.err == -EROFS || m.err == -EAGAIN) {
		c->why_stuck = "the leader refused the write (it is not ready to lead)";
		nfwd_unsend(c, m.seq, 0); /* the next tick sends them again, in order */
		return;
	}
	for (f = c->head; f && !(f->op && f->seq == m.seq); f = f->next)
		;
	if (!f || f->sent_to != from)
		return; /* done already, or sent elsewhere since: that answer counts */
	if (f->first_to == from && f->first_epoch == f->sent_epoch) {
		finish(c, f, m.err, 0);
	} else {
		log_warn(
		    "a write failed with EIO: leader %u refused it (%s), but an earlier leader "
		    "may have committed it",
		    from, strerror(-m.err));
		finish(c, f, -EIO, 0);
	}
	nfwd_settle(c);
}

void nfwd_fail_all(struct node_cluster *c, int err)
{
	while (c->head)
		finish(c, c->head, c->head->op ? err : 0, 0);
}
