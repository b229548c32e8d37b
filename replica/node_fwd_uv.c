/*
 * This node's writes in a cluster: the binding of the pure forwarding module (fwd.c, see fwd.h
 * for the design) to the node. It gives the module the loop's clock, who leads (the election's
 * view and the replication core's), the peer connections (FORWARD and FORWARD_REPLY, encoded
 * here), the core (repl_propose) and the log; node_cluster_uv.c calls in on each event.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "kvfs/fwd.h"
#include "kvfs/logging.h"
#include "kvfs/op.h"
#include "kvfs/peer.h"
#include "kvfs/peer_msg.h"
#include "kvfs/repl.h"
#include "kvfs/store.h"
#include "node_internal.h"

static uint64_t io_now_ms(void *arg)
{
	struct node_cluster *c = arg;

	return uv_now(c->n->loop);
}

static void io_view(void *arg, struct kvfs_fwd_view *out)
{
	struct node_cluster *c = arg;
	struct kvfs_node_view v;

	ncl_view(c, &v);
	*out = (struct kvfs_fwd_view){
	    .elected = v.leading,
	    .zk_leader = v.leader,
	    .zk_epoch = v.epoch,
	    .established = repl_role(c->repl) == KVFS_REPL_LEADER,
	    .core_leader = repl_leader(c->repl),
	    .core_epoch = repl_epoch(c->repl),
	};
}

static bool io_last_seq(void *arg, uint32_t origin, uint64_t *seq)
{
	struct node_cluster *c = arg;
	struct kvfs_session sess;

	if (!store_session_get(c->n->store, origin, &sess))
		return false;
	*seq = sess.seq;
	return true;
}

static uint64_t io_clock_us(void *arg)
{
	int64_t ns = node_now_ns();

	return ns > 0 ? (uint64_t)ns / 1000 : 0;
}

static bool io_connected(void *arg, uint32_t id)
{
	struct node_cluster *c = arg;

	return c->peers && peer_connected(c->peers, id);
}

static int io_propose(void *arg, const uint8_t *op, uint32_t len)
{
	struct node_cluster *c = arg;

	return repl_propose(c->repl, op, len, NULL);
}

static int io_forward(void *arg, uint32_t to, uint64_t seq, const uint8_t *op, uint32_t len)
{
	struct node_cluster *c = arg;
	struct kvfs_peer_forward m = {.origin = c->n->cfg.id, .seq = seq, .op = op, .op_len = len};
	size_t size = peer_msg_forward_size(&m);
	uint8_t *buf;
	int rv;

	if (!c->peers)
		return -ESHUTDOWN;
	buf = malloc(size);
	if (!buf)
		return -ENOMEM;
	peer_msg_forward_encode(&m, buf);
	rv = peer_send(c->peers, to, KVFS_MSG_FORWARD, buf, (uint32_t)size);
	free(buf);
	return rv;
}

static void io_refuse(void *arg, uint32_t to, uint64_t seq, int err)
{
	struct node_cluster *c = arg;
	struct kvfs_peer_forward_reply m = {.origin = to, .seq = seq, .err = err};
	uint8_t buf[KVFS_PEER_FORWARD_REPLY_SIZE];

	if (!c->peers)
		return;
	peer_msg_forward_reply_encode(&m, buf);
	peer_send(c->peers, to, KVFS_MSG_FORWARD_REPLY, buf, sizeof(buf));
}

static void io_report(void *arg, const struct kvfs_fwd_report *r)
{
	struct node_cluster *c = arg;

	switch (r->event) {
	case KVFS_FWD_EXPIRED:
		log_warn("%u write(s) failed with EIO: nothing was committed within %" PRIu64
		         " ms (%s)",
		         r->count, c->n->cfg.write_timeout_ms, r->why);
		break;
	case KVFS_FWD_RESET_UNKNOWN:
		log_warn("%u write(s) failed with EIO: a snapshot from the leader covered them, "
		         "without their outcome",
		         r->count);
		break;
	case KVFS_FWD_REFUSED_LATE:
		log_warn(
		    "a write failed with EIO: leader %u refused it (%s), but an earlier leader "
		    "may have committed it",
		    r->peer, strerror(-r->err));
		break;
	case KVFS_FWD_MALFORMED:
		log_warn("node %u forwarded a write that is not well formed; ignored", r->peer);
		break;
	case KVFS_FWD_INVALID:
		log_warn("node %u forwarded a %s that this leader refuses: %s", r->peer,
		         op_type_name(r->op_type), strerror(-r->err));
		break;
	}
}

int nfwd_open(struct node_cluster *c)
{
	struct kvfs_fwd_io io = {
	    .arg = c,
	    .now_ms = io_now_ms,
	    .view = io_view,
	    .connected = io_connected,
	    .propose = io_propose,
	    .forward = io_forward,
	    .refuse = io_refuse,
	    .report = io_report,
	    .last_seq = io_last_seq,
	    .clock_us = io_clock_us,
	};
	struct kvfs_fwd_config cfg = {
	    .id = c->n->cfg.id,
	    .write_timeout_ms = c->n->cfg.write_timeout_ms,
	    .lim = node_limits(c->n),
	    .first_seq = c->n->next_seq ? c->n->next_seq : 1,
	};

	return fwd_init(&c->fwd, &cfg, &io);
}

void nfwd_dispatch(struct node_cluster *c)
{
	if (!c->closing && !c->n->fatal && c->fwd)
		fwd_dispatch(c->fwd);
}

void nfwd_applied(struct node_cluster *c)
{
	struct kvfs_session sess;

	if (store_session_get(c->n->store, c->n->cfg.id, &sess))
		fwd_applied(c->fwd, &sess);
}

void nfwd_after_reset(struct node_cluster *c)
{
	struct kvfs_session sess;

	if (store_session_get(c->n->store, c->n->cfg.id, &sess))
		fwd_after_reset(c->fwd, &sess);
}

void nfwd_on_forward(struct node_cluster *c, uint32_t from, const uint8_t *p, uint32_t len)
{
	struct kvfs_peer_forward m;

	if (peer_msg_forward_decode(&m, p, len) < 0) {
		log_warn("node %u forwarded a write that is not well formed; ignored", from);
		return;
	}
	fwd_on_forward(c->fwd, from, m.origin, m.seq, m.op, m.op_len);
}

void nfwd_on_reply(struct node_cluster *c, uint32_t from, const uint8_t *p, uint32_t len)
{
	struct kvfs_peer_forward_reply m;

	if (peer_msg_forward_reply_decode(&m, p, len) == 0)
		fwd_on_reply(c->fwd, from, m.origin, m.seq, m.err);
}

int ncl_propose(struct kvfs_node *n, struct kvfs_op *op, uint64_t deadline, kvfs_node_done_fn cb,
                void *arg)
{
	/* max_value is set (node_propose); origin and seq are the module's, past what node_open
	 * found (the clock, the store: it sets next_seq after ncl_open). */
	op->time_ns = node_now_ns();
	fwd_seq_at_least(n->cl->fwd, n->next_seq);
	return fwd_propose(n->cl->fwd, op, deadline, cb, arg);
}

int ncl_sync(struct kvfs_node *n, kvfs_node_done_fn cb, void *arg)
{
	return fwd_sync(n->cl->fwd, cb, arg); /* completed from the loop (ncl_check) */
}

bool ncl_busy(const struct kvfs_node *n)
{
	return fwd_busy(n->cl->fwd);
}
