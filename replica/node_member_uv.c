/*
 * Membership on the node's loop: on the established leader (repl_role() LEADER: its no-op is
 * committed), each tick takes the oldest `kvfs member` request from the election
 * (node.h next_request), asks member_req_next() for the one-step configuration it needs, proposes
 * it (repl_propose_config(), the request's name in the entry) and reports the outcome
 * (request_result) once the entry is committed and applied. An add as a voter is two entries:
 * the node joins as an observer, catches up (its match index within KVFS_CAUGHT_UP_ENTRIES of the
 * commit index), then is promoted; in between the request is reported as waiting. Removing or
 * demoting this leader itself hands the lead over first (n->cluster->resign: this node leaves the
 * election for its hold-down, another takes over) and leaves the request pending for the next
 * leader, which finds it in ZooKeeper. A later leader tells a request already carried out by the
 * configuration itself (member_req_next() returns 1), so a request survives leader changes.
 * The leader keeps trying while the request's znode exists; the CLI's --timeout deletes it.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "kvfs/logging.h"
#include "kvfs/repl.h"
#include "kvfs/score.h"
#include "node_internal.h"

#define WAIT_RETRY_MS  200u  /* a request that waits is looked at again this often */
#define WAIT_REPORT_MS 1000u /* ... and its new reason written at most this often */

/* Reports state (and why, or index and cfg for done) for the request, once per change. */
static void report(struct node_cluster *c, enum kvfs_member_state state, const char *why,
                   uint64_t index, const struct kvfs_config *cfg)
{
	struct kvfs_node *n = c->n;
	struct node_member *m = &c->member;
	struct kvfs_member_result res = {.state = state, .index = index};
	uint64_t now = uv_now(n->loop);

	if (state == m->said && state != KVFS_MEMBER_DONE &&
	    (strcmp(why ? why : "", m->said_why) == 0 ||
	     (state == KVFS_MEMBER_WAITING && now - m->said_ms < WAIT_REPORT_MS)))
		return; /* nothing new, or a catch-up figure written less than a second ago */
	m->said = state;
	m->said_ms = now;
	snprintf(m->said_why, sizeof(m->said_why), "%s", why ? why : "");
	snprintf(res.why, sizeof(res.why), "%s", why ? why : "");
	if (cfg)
		res.cfg = *cfg;
	if (state == KVFS_MEMBER_DONE || state == KVFS_MEMBER_REFUSED)
		m->finished = true;
	n->cluster->request_result(n->cluster->arg, &m->req, &res);
}

static const char *op_word(enum kvfs_member_op op)
{
	switch (op) {
	case KVFS_MEMBER_ADD:
		return "add";
	case KVFS_MEMBER_REMOVE:
		return "remove";
	case KVFS_MEMBER_PROMOTE:
		return "promote";
	case KVFS_MEMBER_DEMOTE:
		return "demote";
	}
	return "?";
}

/* The request is carried out by the configuration in force: done, at the entry that set it. */
static void report_done(struct node_cluster *c, const struct kvfs_config *cfg, uint64_t set_at)
{
	struct kvfs_node *n = c->n;
	struct node_member *m = &c->member;
	char text[KVFS_CONFIG_TEXT_MAX];
	uint64_t index = set_at ? set_at : repl_commit_index(c->repl);

	if (config_format(cfg, text, sizeof(text)) < 0)
		text[0] = '\0';
	log_info("membership request %s (%s node %u) done at index %" PRIu64 " in %" PRIu64
	         " ms: %s",
	         m->req.name, op_word(m->req.op), m->req.id, index, uv_now(n->loop) - m->started_ms,
	         text);
	report(c, KVFS_MEMBER_DONE, NULL, index, cfg);
	if (n->cluster->set_config)
		n->cluster->set_config(n->cluster->arg, cfg, index, true);
}

/*
 * Whether the new configuration could commit now: a majority of its voters (this leader
 * included) in contact and caught up. Otherwise the change would be in force as soon as it is
 * appended and could never commit (removing a voter while another is down leaves two of which
 * one is dead): every write would stall until the dead node came back. why says who is missing.
 */
static bool next_can_commit(struct node_cluster *c, const struct kvfs_config *next, char *why,
                            size_t len)
{
	bool have[KVFS_CONFIG_ID_MAX + 1] = {false};
	uint64_t commit = repl_commit_index(c->repl);
	size_t off = (size_t)snprintf(why, len, "node");
	unsigned missing = 0;

	for (uint32_t i = 0; i < next->n; i++) {
		uint32_t id = next->m[i].id;

		if (next->m[i].role != KVFS_ROLE_VOTER)
			continue;
		have[id] = id == c->n->cfg.id ||
		           (nscore_in_contact(c, id) &&
		            repl_peer_match(c->repl, id) + KVFS_CAUGHT_UP_ENTRIES >= commit);
		if (!have[id] && off < len)
			off += (size_t)snprintf(why + off, len - off, "%s %u", missing++ ? "," : "",
			                        id);
	}
	if (config_quorum(next, have))
		return true;
	if (off < len)
		snprintf(why + off, len - off,
		         " down or behind: the new voters would not make a majority (--force to "
		         "change anyway)");
	return false;
}

/* Takes one step for the request: propose, wait, hand over, or finish. */
static void step(struct node_cluster *c, uint64_t now)
{
	struct kvfs_node *n = c->n;
	struct node_member *m = &c->member;
	struct kvfs_config next;
	char why[KVFS_MEMBER_WHY_MAX];
	uint64_t cur_at, idx, commit = repl_commit_index(c->repl);
	uint64_t match = repl_peer_match(c->repl, m->req.id);
	const struct kvfs_config *cur = repl_config(c->repl, &cur_at);
	/* Caught up: within KVFS_CAUGHT_UP_ENTRIES of the commit index, and holding the entry that
	 * made the configuration in force (so it was heard from since it joined: in a young log,
	 * being "within 16 entries" says nothing). */
	bool caught_up = match + KVFS_CAUGHT_UP_ENTRIES >= commit && match >= cur_at;
	int rv;

	if (repl_config_pending(c->repl))
		return; /* an earlier change is not committed yet */
	rv = member_req_next(cur, &m->req, n->cfg.id, caught_up, &next, why, sizeof(why));
	switch (rv) {
	case 0:
		if (!m->req.force && !next_can_commit(c, &next, why, sizeof(why))) {
			report(c, KVFS_MEMBER_WAITING, why, 0, NULL);
			m->next_try_ms = now + WAIT_RETRY_MS;
			return;
		}
		rv = repl_propose_config(c->repl, &next, m->req.name, &idx);
		if (rv == 0) {
			config_format(&next, why, sizeof(why));
			log_info(
			    "membership request %s (%s node %u): proposing %s at index %" PRIu64,
			    m->req.name, op_word(m->req.op), m->req.id, why, idx);
			m->index = idx;
			m->proposed = next;
			m->proposed_ms = now;
		} else if (rv != -EBUSY && rv != -EROFS && rv != -ENOMEM) {
			snprintf(why, sizeof(why), "the replication core refused the change: %s",
			         strerror(-rv));
			report(c, KVFS_MEMBER_REFUSED, why, 0, NULL);
		}
		return;
	case 1:
		report_done(c, cur, cur_at);
		return;
	case -EAGAIN:
		snprintf(why, sizeof(why),
		         "node %u is catching up as an observer: %" PRIu64 " entries behind the "
		         "commit index %" PRIu64,
		         m->req.id, commit > match ? commit - match : 0, commit);
		report(c, KVFS_MEMBER_WAITING, why, 0, NULL);
		m->next_try_ms = now + WAIT_RETRY_MS;
		return;
	case -EXDEV:
		if (m->handed_over_epoch != repl_epoch(c->repl)) {
			m->handed_over_epoch = repl_epoch(c->repl);
			log_info(
			    "membership request %s (%s node %u, this leader): handing the lead "
			    "over first; the next leader carries it out",
			    m->req.name, op_word(m->req.op), m->req.id);
			report(c, KVFS_MEMBER_WAITING, why, 0, NULL);
			n->cluster->resign(n->cluster->arg);
		}
		return;
	default:
		log_warn("membership request %s (%s node %u) refused: %s", m->req.name,
		         op_word(m->req.op), m->req.id, why);
		report(c, KVFS_MEMBER_REFUSED, why, 0, NULL);
		return;
	}
}

/* A proposed entry in flight: committed and applied, cut off, or not yet. */
static void check_proposed(struct node_cluster *c, uint64_t now)
{
	struct node_member *m = &c->member;
	uint64_t set_at = 0;
	const struct kvfs_config *at;

	if (m->index < repl_base_index(c->repl)) {
		/* compacted away: only committed entries are, so it held */
		at = &m->proposed;
		set_at = m->index;
	} else {
		at = repl_config_at(c->repl, m->index, &set_at);
		if (!at || set_at != m->index || !config_equal(at, &m->proposed)) {
			log_info("membership request %s: the entry at index %" PRIu64
			         " was cut off; proposing again",
			         m->req.name, m->index);
			m->index = 0;
			return;
		}
	}
	if (repl_commit_index(c->repl) < m->index || repl_applied_index(c->repl) < m->index)
		return;
	log_info("membership request %s: index %" PRIu64 " committed in %" PRIu64 " ms",
	         m->req.name, m->index, now - m->proposed_ms);
	m->index = 0;
	/* Done if that was the last step; an add as a voter goes on to the promotion. */
	step(c, now);
}

void nmember_tick(struct node_cluster *c)
{
	struct kvfs_node *n = c->n;
	struct node_member *m = &c->member;
	struct kvfs_member_req req;
	uint64_t now = uv_now(n->loop);

	if (!n->cluster || !n->cluster->next_request || !n->cluster->request_result)
		return;
	if (repl_role(c->repl) != KVFS_REPL_LEADER) {
		/* the next leader takes the request from ZooKeeper and its log */
		m->active = false;
		m->index = 0;
		return;
	}
	if (m->active && m->index) {
		check_proposed(c, now);
		return;
	}
	if (n->cluster->next_request(n->cluster->arg, &req) < 0) {
		m->active = false;
		return;
	}
	if (!m->active || strcmp(m->req.name, req.name) != 0) {
		*m = (struct node_member){.active = true,
		                          .req = req,
		                          .started_ms = now,
		                          .said = KVFS_MEMBER_PENDING,
		                          .handed_over_epoch = m->handed_over_epoch};
		log_info("membership request %s: %s node %u%s", req.name, op_word(req.op), req.id,
		         req.op == KVFS_MEMBER_ADD
		             ? (req.role == KVFS_ROLE_OBSERVER ? " as an observer" : " as a voter")
		             : "");
	}
	if (m->finished || now < m->next_try_ms)
		return;
	step(c, now);
}

void nmember_config_changed(struct node_cluster *c, const struct kvfs_config *cfg, uint64_t index)
{
	/* The tick checks the entry it proposed against repl_config_at() itself: a cut or a
	 * snapshot is seen there. Nothing to do at once. */
	(void)c, (void)cfg, (void)index;
}
