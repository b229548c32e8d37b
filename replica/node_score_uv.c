/*
 * What a cluster node measures for the leader score (score.h), on its loop: round-trip times to
 * its peers (rtt.h) from RTT_PING / RTT_PONG (peer_msg.h) sent every tick through the normal peer
 * send path, so that they see the queues replication sees; whether it is in contact with a
 * majority of the voters and has caught up with its leader. Every tick the measurement goes to
 * the election (n->cluster->set_facts), which decides what to publish; /.status gets this node's
 * quorum RTT and its RTT to each member.
 *
 * Pongs are matched against the last PINGS_KEPT pings sent to that peer, and the round trip is
 * taken from this node's own record of when it sent the ping, never from the echoed body: a
 * peer can at worst make itself look slower. Anything else is ignored.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "kvfs/config.h"
#include "kvfs/logging.h"
#include "kvfs/peer.h"
#include "kvfs/peer_msg.h"
#include "kvfs/repl.h"
#include "kvfs/rtt.h"
#include "kvfs/score.h"
#include "kvfs/status.h"
#include "kvfs/store.h"
#include "node_internal.h"

#define PINGS_KEPT 16 /* outstanding pings matched per peer: 1.6 s of round trip at one a tick */

struct ping_sent {
	uint64_t nonce; /* 0: free */
	uint64_t sent_us;
};

struct node_score {
	struct kvfs_rtt rtt;
	uint64_t next_nonce;
	struct ping_sent (*sent)[PINGS_KEPT]; /* by peer id, 1..KVFS_CONFIG_ID_MAX */
	unsigned *next_slot;                  /* by peer id: the ring's next slot */
};

static uint64_t now_us(void)
{
	return uv_hrtime() / 1000;
}

size_t ncl_voters(const struct kvfs_node *n, uint32_t *out, size_t max)
{
	const struct kvfs_config *cfg = ncl_config(n->cl);
	size_t k = 0;

	/* The voters of the latest configuration (config.h). */
	for (uint32_t i = 0; i < cfg->n && k < max; i++)
		if (cfg->m[i].role == KVFS_ROLE_VOTER)
			out[k++] = cfg->m[i].id;
	return k;
}

int nscore_open(struct node_cluster *c)
{
	struct node_score *s = calloc(1, sizeof(*s));
	uint32_t size = KVFS_CONFIG_ID_MAX; /* by id: any member, now or later */

	if (!s)
		return -ENOMEM;
	c->score = s;
	rtt_init(&s->rtt);
	s->sent = calloc(size + 1, sizeof(*s->sent));
	s->next_slot = calloc(size + 1, sizeof(*s->next_slot));
	if (!s->sent || !s->next_slot)
		return -ENOMEM;
	/* Nonces only tell this node's own pings apart: any start will do, never 0. */
	s->next_nonce = (uv_hrtime() << 16) | 1;
	return 0;
}

void nscore_free(struct node_cluster *c)
{
	if (!c->score)
		return;
	free(c->score->sent);
	free(c->score->next_slot);
	free(c->score);
	c->score = NULL;
}

void nscore_heard(struct node_cluster *c, uint32_t from)
{
	if (c->score && from <= KVFS_CONFIG_ID_MAX)
		rtt_heard(&c->score->rtt, from, uv_now(c->n->loop));
}

bool nscore_in_contact(const struct node_cluster *c, uint32_t id)
{
	uint64_t heard;

	if (id == c->n->cfg.id)
		return true;
	if (id == 0 || id > KVFS_RTT_MAX_ID)
		return false;
	heard = c->score->rtt.p[id].last_heard_ms;
	return heard && uv_now(c->n->loop) - heard <= KVFS_CONTACT_MS;
}

void nscore_peer_down(struct node_cluster *c, uint32_t id)
{
	struct node_score *s = c->score;

	if (!s || id == 0 || id > KVFS_CONFIG_ID_MAX)
		return;
	rtt_forget(&s->rtt, id);
	memset(s->sent[id], 0, sizeof(s->sent[id]));
}

/* RTT_PING: answered at once with the same body. */
void nscore_on_ping(struct node_cluster *c, uint32_t from, const uint8_t *p, uint32_t len)
{
	struct kvfs_peer_rtt m;
	uint8_t buf[KVFS_PEER_RTT_SIZE];

	if (peer_msg_rtt_decode(&m, p, len) < 0 || !c->peers)
		return;
	peer_send(c->peers, from, KVFS_MSG_RTT_PONG, buf, (uint32_t)peer_msg_rtt_encode(&m, buf));
}

/* RTT_PONG: a round trip, if it answers one of our outstanding pings to that peer. */
void nscore_on_pong(struct node_cluster *c, uint32_t from, const uint8_t *p, uint32_t len)
{
	struct node_score *s = c->score;
	struct kvfs_peer_rtt m;
	uint64_t now = now_us();

	if (!s || from == 0 || from > KVFS_CONFIG_ID_MAX || peer_msg_rtt_decode(&m, p, len) < 0 ||
	    m.nonce == 0)
		return;
	for (unsigned i = 0; i < PINGS_KEPT; i++) {
		struct ping_sent *ps = &s->sent[from][i];

		if (ps->nonce != m.nonce)
			continue;
		rtt_sample(&s->rtt, from, now > ps->sent_us ? now - ps->sent_us : 0,
		           uv_now(c->n->loop));
		ps->nonce = 0; /* each ping counts once */
		return;
	}
}

static void send_pings(struct node_cluster *c)
{
	struct node_score *s = c->score;
	const struct kvfs_node *n = c->n;
	uint8_t buf[KVFS_PEER_RTT_SIZE];
	const struct kvfs_config *cfg = ncl_config(c);

	for (uint32_t i = 0; i < cfg->n; i++) {
		uint32_t id = cfg->m[i].id;
		struct kvfs_peer_rtt m = {.nonce = s->next_nonce, .sent_us = now_us()};
		struct ping_sent *ps;

		if (id == n->cfg.id || !peer_connected(c->peers, id))
			continue;
		if (peer_send(c->peers, id, KVFS_MSG_RTT_PING, buf,
		              (uint32_t)peer_msg_rtt_encode(&m, buf)) < 0)
			continue;
		ps = &s->sent[id][s->next_slot[id]];
		s->next_slot[id] = (s->next_slot[id] + 1) % PINGS_KEPT;
		*ps = (struct ping_sent){.nonce = m.nonce, .sent_us = m.sent_us};
		if (++s->next_nonce == 0)
			s->next_nonce = 1;
	}
}

/* This node's measurement now: quorum RTT, contact, caught up (score.h). */
static void measure(const struct node_cluster *c, struct kvfs_score_measured *m)
{
	const struct kvfs_node *n = c->n;
	uint32_t voters[KVFS_RTT_MAX_ID];
	size_t nv = ncl_voters(n, voters, KVFS_RTT_MAX_ID);
	uint64_t now = uv_now(n->loop), applied = store_applied_index(n->store);
	uint32_t leader = repl_leader(c->repl);

	m->rtt_us = rtt_quorum_var(&c->score->rtt, voters, nv, n->cfg.id, now, &m->rttvar_us);
	m->contact = rtt_contact(&c->score->rtt, voters, nv, n->cfg.id, now);
	if (repl_role(c->repl) != KVFS_REPL_FOLLOWER) {
		/* The leader (or one establishing its epoch): the commit index is its own. */
		m->caught_up = true;
		m->lag = 0;
	} else if (leader && leader <= KVFS_CONFIG_ID_MAX && repl_heard_commit(c->repl)) {
		uint64_t commit = repl_leader_commit(c->repl);
		uint64_t heard = c->score->rtt.p[leader].last_heard_ms;

		m->lag = commit > applied ? commit - applied : 0;
		m->caught_up =
		    m->lag <= KVFS_CAUGHT_UP_ENTRIES && heard && now - heard <= KVFS_CAUGHT_UP_MS;
	} else {
		/* No leader heard in this epoch: how far behind it is, nobody knows. */
		m->caught_up = false;
		m->lag = UINT64_MAX;
	}
}

void nscore_tick(struct node_cluster *c)
{
	struct kvfs_node *n = c->n;
	struct kvfs_score_measured m;

	if (!c->score || !c->peers)
		return;
	send_pings(c);
	if (!n->cluster || !n->cluster->set_facts)
		return;
	measure(c, &m);
	n->cluster->set_facts(n->cluster->arg, &m);
}

void nscore_status(const struct kvfs_node *n, struct kvfs_status *st)
{
	const struct node_cluster *c = n->cl;
	const struct kvfs_rtt *r;
	uint32_t voters[KVFS_RTT_MAX_ID];
	size_t nv;
	uint64_t now;

	if (!c || !c->score || !n->cfg.cluster_size || !n->loop)
		return;
	r = &c->score->rtt;
	now = uv_now(n->loop);
	nv = ncl_voters(n, voters, KVFS_RTT_MAX_ID);
	st->has_quorum_rtt = true;
	st->quorum_rtt_us = rtt_quorum(r, voters, nv, n->cfg.id, now);
	st->nmembers = 0;
	for (uint32_t i = 0; i < ncl_config(c)->n && st->nmembers < KVFS_STATUS_MAX_PEERS; i++) {
		uint32_t id = ncl_config(c)->m[i].id;
		const struct kvfs_rtt_peer *p = &r->p[id];

		if (id == n->cfg.id)
			continue;
		st->members[st->nmembers++] = (struct kvfs_status_member){
		    .id = id,
		    .measured = p->samples > 0,
		    .srtt_us = p->srtt_us,
		    .rttvar_us = p->rttvar_us,
		    .heard_ms_ago = p->last_heard_ms ? now - p->last_heard_ms : UINT64_MAX,
		};
	}
}
