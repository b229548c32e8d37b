/*
 * Reads that must not be stale, in a cluster: the binding of the pure module readidx.c (see
 * readidx.h for the read index of --read linearizable and the restart contract) to the node. It
 * gives the module the loop's clock, the replication core's and the store's view, the peer
 * connections (READ_INDEX and READ_INDEX_REPLY, encoded here) and the log; node_cluster_uv.c
 * calls in on each event, and asks it whether this node has caught up (node_reads_ready(),
 * /.status).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "kvfs/logging.h"
#include "kvfs/peer.h"
#include "kvfs/peer_msg.h"
#include "kvfs/readidx.h"
#include "kvfs/repl.h"
#include "kvfs/store.h"
#include "node_internal.h"

static uint64_t io_now_ms(void *arg)
{
	struct node_cluster *c = arg;

	return uv_now(c->n->loop);
}

static void io_view(void *arg, struct kvfs_readidx_view *v)
{
	struct node_cluster *c = arg;

	*v = (struct kvfs_readidx_view){
	    .leads = repl_role(c->repl) == KVFS_REPL_LEADER,
	    .epoch = repl_epoch(c->repl),
	    .leader = repl_leader(c->repl),
	    .commit = repl_commit_index(c->repl),
	    .heard = repl_heard_commit(c->repl),
	    .applied = store_applied_index(c->n->store),
	};
}

static uint64_t io_entry_epoch(void *arg, uint64_t index)
{
	struct node_cluster *c = arg;
	struct kvfs_repl_entry e;

	return repl_entry(c->repl, index, &e) == 0 ? e.epoch : 0;
}

static bool io_connected(void *arg, uint32_t id)
{
	struct node_cluster *c = arg;

	return c->peers && peer_connected(c->peers, id);
}

static void io_send_index(void *arg, uint32_t to, uint64_t id)
{
	struct node_cluster *c = arg;
	struct kvfs_peer_read_index m = {.id = id};
	uint8_t buf[KVFS_PEER_READ_INDEX_SIZE];

	if (!c->peers)
		return;
	peer_msg_read_index_encode(&m, buf);
	peer_send(c->peers, to, KVFS_MSG_READ_INDEX, buf, sizeof(buf));
}

static void io_send_reply(void *arg, uint32_t to, uint64_t id, uint64_t epoch, uint64_t commit,
                          bool ok)
{
	struct node_cluster *c = arg;
	struct kvfs_peer_read_index_reply m = {
	    .id = id, .epoch = epoch, .commit_index = commit, .ok = ok};
	uint8_t buf[KVFS_PEER_READ_INDEX_REPLY_SIZE];

	if (!c->peers)
		return;
	peer_msg_read_index_reply_encode(&m, buf);
	peer_send(c->peers, to, KVFS_MSG_READ_INDEX_REPLY, buf, sizeof(buf));
}

static void io_report(void *arg, const struct kvfs_readidx_report *r)
{
	struct node_cluster *c = arg;

	switch (r->event) {
	case KVFS_READIDX_EXPIRED:
		log_warn("%u linearizable read(s) failed with EIO: the leader could not confirm "
		         "its commit index with a majority within %" PRIu64 " ms",
		         r->count, c->n->cfg.write_timeout_ms);
		break;
	case KVFS_READIDX_CATCHUP_EXPIRED:
		log_warn("%u read(s) failed with EIO: since its start this node has not heard its "
		         "leader's commit index within %" PRIu64 " ms, so it cannot tell whether "
		         "its store holds every write it acknowledged before",
		         r->count, c->n->cfg.write_timeout_ms);
		break;
	case KVFS_READIDX_CAUGHT_UP:
		log_info("caught up with the leader at index %" PRIu64 "; serving reads", r->index);
		break;
	}
}

int nread_open(struct node_cluster *c)
{
	struct kvfs_readidx_io io = {
	    .arg = c,
	    .now_ms = io_now_ms,
	    .view = io_view,
	    .entry_epoch = io_entry_epoch,
	    .connected = io_connected,
	    .send_index = io_send_index,
	    .send_reply = io_send_reply,
	    .report = io_report,
	};
	struct kvfs_readidx_config cfg = {
	    .id = c->n->cfg.id,
	    .cluster_size = ncl_size(c->n),
	    .write_timeout_ms = c->n->cfg.write_timeout_ms,
	    /* µs of the wall clock: a leader may answer our predecessor's requests to us */
	    .first_id = (uint64_t)node_now_ns() / 1000 + 1,
	    /* standalone: its log was applied at start (ncl_open), and it is all there is */
	    .caught_up = c->n->cfg.cluster_size == 0,
	};

	return readidx_init(&c->reads, &cfg, &io);
}

bool nread_message(struct node_cluster *c, uint32_t from, uint8_t type, const uint8_t *p,
                   uint32_t len)
{
	if (type == KVFS_MSG_READ_INDEX) {
		struct kvfs_peer_read_index m;

		if (peer_msg_read_index_decode(&m, p, len) == 0)
			readidx_on_index(c->reads, from, m.id);
		return true;
	}
	if (type == KVFS_MSG_READ_INDEX_REPLY) {
		struct kvfs_peer_read_index_reply m;

		if (peer_msg_read_index_reply_decode(&m, p, len) == 0)
			readidx_on_reply(c->reads, from, m.id, m.epoch, m.commit_index, m.ok);
		return true;
	}
	return false;
}
