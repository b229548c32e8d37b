/*
 * Membership in the simulation (test_repl_sim.c's member runs): clusters that start with voters
 * 1..boot and two more nodes that are no members, where established leaders make random one-step
 * changes (add or remove an observer, promote, demote, add or remove a voter; never the leader
 * itself, which the core refuses) among lossy delivery, crashes, partitions, compaction and
 * snapshots, and where the oracle may hand the lead to an observer or a non-member (which must
 * give it up). Checked with the other invariants (check_full):
 *  M1. every committed entry is on the disks of enough voters of the latest committed
 *      configuration that every majority of them includes one (see sim_member_check());
 *  M2. no observer or non-member is an established leader (its latest configuration has it
 *      vote: it started the lead as a voter and gave it up if its adopted log says otherwise);
 *  M3. an established leader's log holds at most one configuration past what is committed, one
 *      step from the committed one;
 *  M4. every replica's configuration at its applied index is the committed one there (the core's
 *      history and the store's record of the last CONFIG entry applied).
 * Liveness, in the calm: the leader adds every non-member as an observer, then everyone applies.
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
#include <string.h>

#include "kvfs/config.h"
#include "kvfs/readidx.h"
#include "kvfs/repl.h"
#include "kvfs/store.h"
#include "sim.h"

static struct {
	uint64_t events, with_leader, proposed, busy, refused_self, committed_changes;
} totals;

/* An established leader proposes one random change of one member's role. */
void sim_member_reconfig(struct sim *s)
{
	uint32_t leaders[MAXN], nl = 0, id, target;
	struct kvfs_config next;
	const struct kvfs_config *cur;
	enum kvfs_config_role from, to;
	char text[KVFS_CONFIG_TEXT_MAX];
	uint64_t index;
	int rv, want;

	/* Leaders are rarely established in the chaos, and more rarely commit: now and then
	 * the oracle elects someone (an observer or a non-member refuses) and a stretch without
	 * faults follows. */
	totals.events++;
	if (sim_below(s, 4) == 0 && (id = sim_random_up(s)) != 0)
		sim_elect(s, id, sim_below(s, 2));
	sim_progress(s, 120);
	for (id = 1; id <= s->n; id++)
		if (s->nodes[id].up && repl_role(s->nodes[id].r) == KVFS_REPL_LEADER)
			leaders[nl++] = id;
	if (!nl)
		return;
	totals.with_leader++;
	id = leaders[sim_below(s, nl)];
	cur = repl_config(s->nodes[id].r, NULL);
	next = *cur;
	target = 1 + sim_below(s, s->n);
	from = config_role(cur, target);
	to = (enum kvfs_config_role)((from + 1 + sim_below(s, 2)) % 3); /* another role */
	CHECK(s, config_set_role(&next, target, to) == 0, "set_role");
	want = repl_config_pending(s->nodes[id].r)     ? -EBUSY
	       : target == id && to != KVFS_ROLE_VOTER ? -EINVAL
	                                               : 0;
	rv = repl_propose_config(s->nodes[id].r, &next, "sim", &index);
	config_format(&next, text, sizeof(text));
	CHECK(s, rv == want, "leader %u proposing %s: %d, expected %d", id, text, rv, want);
	totals.busy += rv == -EBUSY;
	totals.refused_self += rv == -EINVAL;
	if (rv == 0) {
		totals.proposed++;
		sim_trace(s, "%u proposes config %s at %" PRIu64, id, text, index);
		sim_progress(s, 60);
	}
}

/* M1 for entry k (whose holders are have[]): no majority of C's voters lacks it. */
static void check_held(struct sim *s, const struct kvfs_config *c, const bool *held, uint64_t k)
{
	uint32_t lacking = 0, voters = config_voters(c);
	char text[KVFS_CONFIG_TEXT_MAX];

	for (uint32_t i = 0; i < c->n; i++)
		if (c->m[i].role == KVFS_ROLE_VOTER && !held[c->m[i].id])
			lacking++;
	config_format(c, text, sizeof(text));
	/* Not "a majority holds it": an entry committed by a majority of a pending configuration
	 * (C + one voter) before that configuration commits may be on only half of C's voters
	 * when C has an even number; every majority of C still meets its holders, which is what
	 * recovery needs (repl.h, Membership). */
	CHECK(s, 2 * lacking <= voters,
	      "committed %" PRIu64 " is missing from %u of the %u voters of %s", k, lacking, voters,
	      text);
}

/* M1: holders of entry k, as check_full counts them (a rejoining replica holds everything). */
void sim_member_check_entry(struct sim *s, uint64_t k, const bool *held)
{
	struct kvfs_config c;

	sim_config_at(s, s->max_committed, &c, NULL);
	check_held(s, &c, held, k);
}

/* M3: the leader's log past what it knows committed (an established leader's commit index
 * covers every entry it adopted; a deposed one may lag the cluster's). */
static void check_leader_log(struct sim *s, struct node *nd)
{
	const struct kvfs_config *committed = repl_committed_config(nd->r, NULL);
	struct kvfs_config c;
	uint32_t found = 0;

	for (uint64_t i = repl_commit_index(nd->r) + 1; i <= repl_last_index(nd->r); i++) {
		struct kvfs_repl_entry e;

		if (repl_entry(nd->r, i, &e) < 0 || config_entry_decode(e.data, e.len, &c, NULL))
			continue;
		found++;
		CHECK(s, found == 1, "leader %u's log holds %u uncommitted configurations", nd->id,
		      found);
		CHECK(s, config_one_step(committed, &c) == 0,
		      "leader %u's uncommitted configuration at %" PRIu64
		      " is not one step from its committed one",
		      nd->id, i);
	}
}

void sim_member_check(struct sim *s)
{
	for (uint32_t id = 1; id <= s->n; id++) {
		struct node *nd = &s->nodes[id];
		struct kvfs_config want;
		const struct kvfs_config *c, *stored;
		uint64_t at, want_at, stored_at;
		enum kvfs_repl_role role;

		if (!nd->up)
			continue;
		role = repl_role(nd->r);
		/* M2 (for an established leader: a candidate that installs a snapshot while it
		 * fetches the log it adopts passes through that snapshot's configuration) */
		if (role == KVFS_REPL_LEADER) {
			CHECK(s, config_is_voter(repl_config(nd->r, NULL), id),
			      "replica %u leads epoch %" PRIu64
			      " but is no voter of its configuration",
			      id, repl_epoch(nd->r));
			check_leader_log(s, nd);
		}
		/* M4 */
		sim_config_at(s, nd->applied, &want, &want_at);
		c = repl_config_at(nd->r, nd->applied, &at);
		if (c) {
			CHECK(s, config_equal(c, &want),
			      "replica %u's configuration at its applied %" PRIu64 " differs", id,
			      nd->applied);
			CHECK(s, at == 0 || at == want_at,
			      "replica %u's configuration at %" PRIu64 " was set at %" PRIu64
			      ", not %" PRIu64,
			      id, nd->applied, at, want_at);
		}
		stored = store_config(nd->store, &stored_at);
		if (stored)
			CHECK(s, stored_at == want_at && config_equal(stored, &want),
			      "replica %u's store records the configuration of %" PRIu64
			      ", the committed one at %" PRIu64 " was set at %" PRIu64,
			      id, stored_at, nd->applied, want_at);
	}
}

/*
 * The calm: the established leader adds every node that is no member as an observer, one change
 * at a time. Returns true once every node is a member and nothing is pending.
 */
bool sim_member_calm(struct sim *s, uint32_t leader)
{
	struct kvfs_repl *r = s->nodes[leader].r;
	struct kvfs_config next;

	if (repl_role(r) != KVFS_REPL_LEADER)
		return false;
	if (repl_config_pending(r))
		return false;
	next = *repl_config(r, NULL);
	for (uint32_t id = 1; id <= s->n; id++) {
		if (config_is_member(&next, id))
			continue;
		CHECK(s, config_set_role(&next, id, KVFS_ROLE_OBSERVER) == 0, "set_role");
		CHECK(s, repl_propose_config(r, &next, "calm", NULL) == 0,
		      "leader %u cannot add %u as an observer", leader, id);
		sim_trace(s, "calm: %u adds observer %u", leader, id);
		return false;
	}
	return true;
}

/* The next replica to elect in the calm: one whose own log has it vote. */
uint32_t sim_member_calm_pick(struct sim *s, uint32_t after)
{
	for (uint32_t k = 1; k <= s->n; k++) {
		uint32_t id = (after + k - 1) % s->n + 1;

		if (s->nodes[id].up && config_is_voter(repl_config(s->nodes[id].r, NULL), id))
			return id;
	}
	return after % s->n + 1;
}

void sim_member_run_done(struct sim *s)
{
	struct kvfs_config c;
	uint64_t at;

	sim_config_at(s, s->max_committed, &c, &at);
	for (uint64_t i = 1; i <= s->max_committed; i++)
		totals.committed_changes +=
		    config_entry_decode(s->map[i].e.data, s->map[i].e.len, &c, NULL) == 0;
}

void sim_member_summary(unsigned long seeds)
{
	printf("membership, per run: %.1f change events (%.1f with an established leader), %.2f "
	       "changes proposed and %.2f committed; %.2f refused busy, %.2f refused for removing "
	       "or demoting the leader\n",
	       (double)totals.events / (double)seeds, (double)totals.with_leader / (double)seeds,
	       (double)totals.proposed / (double)seeds,
	       (double)totals.committed_changes / (double)seeds,
	       (double)totals.busy / (double)seeds, (double)totals.refused_self / (double)seeds);
	memset(&totals, 0, sizeof(totals));
}
