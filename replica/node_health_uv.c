/*
 * Whether this node can serve writes now: the `writable` fact of /.status (and kvfs_writable in
 * /.metrics, and the exit status of `kvfs health`). A write on any node commits through the
 * established leader with a majority, then applies here; so the node says yes only when each
 * link of that chain was seen working a moment ago:
 *  - a leader: established (its epoch's no-op committed), still leading in ZooKeeper with a
 *    live session, and it heard from a majority within the last few replication ticks;
 *  - a follower: a live ZooKeeper session, a leader of the current epoch whose PEER_STATUS (sent
 *    every tick by an established leader only) came recently, caught up since its start, and
 *    not far behind (the write's reply waits until it applies here);
 *  - standalone: always, until its data directory fails or it stops.
 * The reasons are fixed strings (no numbers), so that scripts and alerts can match them.
 */
#include <string.h>

#include "kvfs/config.h"
#include "kvfs/peer.h"
#include "kvfs/peer_msg.h"
#include "kvfs/readidx.h"
#include "kvfs/repl.h"
#include "kvfs/status.h"
#include "node_internal.h"

#define HEARD_MS        1000 /* a follower heard its leader this recently */
#define MISSED_TICKS    3    /* a leader heard a majority within this many ticks */
#define WRITABLE_LAG_MS 5000 /* a follower whose oldest unapplied entry is older is too slow */

bool nhealth_leader_heard(const struct node_cluster *c, uint32_t leader)
{
	return leader && repl_leader(c->repl) == leader && c->leader_view_ms &&
	       c->leader_view->epoch == repl_epoch(c->repl);
}

/* Why an elected node whose epoch is not established cannot take writes. */
static const char *candidate_reason(const struct kvfs_node *n)
{
	const struct node_cluster *c = n->cl;
	const struct kvfs_config *cfg = ncl_config(c);
	bool reach[KVFS_CONFIG_ID_MAX + 1] = {false};

	if (repl_role(c->repl) != KVFS_REPL_CANDIDATE)
		return "no leader";
	for (uint32_t i = 0; i < cfg->n; i++) {
		uint32_t id = cfg->m[i].id;

		reach[id] = id == n->cfg.id || (c->peers && peer_connected(c->peers, id));
	}
	return config_quorum(cfg, reach) ? "new epoch not established" : "no majority";
}

static const char *not_writable(const struct kvfs_node *n, const struct kvfs_status *st)
{
	const struct node_cluster *c = n->cl;
	uint64_t now = n->loop ? uv_now(n->loop) : 0;

	if (n->fatal)
		return "data directory failed";
	if (n->closing)
		return "stopping";
	if (!n->cluster)
		return NULL; /* standalone */
	if (strcmp(st->zk, "connected") != 0)
		return strcmp(st->zk, "expired") == 0 ? "zookeeper session expired"
		                                      : "zookeeper disconnected";
	if (strcmp(st->role, "leader") == 0)
		return repl_missed_ticks(c->repl) < MISSED_TICKS ? NULL : "no majority";
	if (strcmp(st->role, "follower") != 0 && strcmp(st->role, "observer") != 0)
		return candidate_reason(n);
	if (now - c->leader_view_ms > HEARD_MS)
		return "leader not heard recently";
	if (st->catching_up)
		return "catching up";
	if (st->lag_ms > WRITABLE_LAG_MS)
		return "lagging behind the leader";
	return NULL;
}

void nhealth_status(const struct kvfs_node *n, struct kvfs_status *st)
{
	st->writable_reason = not_writable(n, st);
	st->writable = st->writable_reason == NULL;
}
