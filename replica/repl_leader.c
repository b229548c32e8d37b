/*
 * The candidate and the leader (see repl.h, repl_internal.h). A candidate gathers promises
 * (GATHER), fetches what the most up-to-date promised log has and its own lacks (FETCH), then
 * appends its no-op and brings the followers in line (REPLICATE); it is the leader once the no-op
 * commits. Followers are sent entries from `next` with pipelining (`sent`); a rejection backs
 * `next` off to the follower's hint. Only entries of the leader's own epoch commit by counting,
 * and a follower's acknowledgement counts only up to what this leader sent it in this epoch.
 */
#include "repl_internal.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kvfs/repl.h"

void repl_leader_send_append(struct kvfs_repl *r, uint32_t to, uint64_t from_index)
{
	struct kvfs_repl_msg m = {.type = KVFS_REPL_APPEND};
	struct peer *p = &r->peers[to];
	uint32_t n;

	if (from_index == 0)
		from_index = 1;
	if (from_index > r->last + 1)
		from_index = r->last + 1;
	if (from_index <= r->base) {
		/* It needs entries that a snapshot replaced: the binding sends the snapshot and
		 * tells us with repl_snapshot_sent(). Until then, heartbeats only. */
		if (!p->wants_snapshot && r->io.need_snapshot)
			r->io.need_snapshot(r->io.arg, to);
		p->wants_snapshot = true;
		return;
	}
	n = repl_batch_count(r, from_index);
	m.prev_index = from_index - 1;
	m.prev_epoch = epoch_at(r, m.prev_index);
	m.commit = r->commit;
	m.n_entries = n;
	m.entries = n ? entry_at(r, from_index) : NULL;
	if (m.prev_index + n > p->sent)
		p->sent = m.prev_index + n;
	if (m.prev_index + n > p->hw)
		p->hw = m.prev_index + n;
	repl_send(r, to, &m);
}

void repl_leader_send_new_epoch(struct kvfs_repl *r, uint32_t to)
{
	struct kvfs_repl_msg m = {.type = KVFS_REPL_NEW_EPOCH};

	repl_send(r, to, &m);
}

static void send_fetch(struct kvfs_repl *r)
{
	struct kvfs_repl_msg m = {.type = KVFS_REPL_FETCH, .from_index = r->fetch_next};

	repl_send(r, r->fetch_from, &m);
}

/* The highest index that a majority of the latest configuration's voters hold on disk (this
 * node's stable index, the peers' match indexes): the (V/2 + 1)-th largest of the V voters'
 * indexes, as config_quorum counts them (an id out of range holds nothing); 0 without voters.
 * One pass over the voters per acknowledgement, however many entries are in flight. */
static uint64_t quorum_index(const struct kvfs_repl *r)
{
	const struct kvfs_config *c = latest_cfg(r);
	uint64_t v[KVFS_CONFIG_MAX];
	uint32_t n = 0, need;

	for (uint32_t i = 0; i < c->n && i < KVFS_CONFIG_MAX; i++) {
		uint32_t id = c->m[i].id;

		if (c->m[i].role != KVFS_ROLE_VOTER)
			continue;
		v[n++] = id > KVFS_CONFIG_ID_MAX ? 0 : id == r->id ? r->stable : r->peers[id].match;
	}
	if (n == 0)
		return 0;
	need = n / 2 + 1;
	/* A partial selection sort, descending: n is a handful. */
	for (uint32_t i = 0; i < need; i++) {
		uint32_t max = i;

		for (uint32_t j = i + 1; j < n; j++)
			if (v[j] > v[max])
				max = j;
		uint64_t t = v[i];
		v[i] = v[max];
		v[max] = t;
	}
	return v[need - 1];
}

void repl_leader_advance_commit(struct kvfs_repl *r)
{
	uint64_t was = r->commit, n;

	if (r->role == KVFS_REPL_FOLLOWER || r->phase != PHASE_REPLICATE)
		return;
	/* Only an entry of our own epoch is committed by counting (DESIGN §4), by a majority of
	 * the voters of the latest configuration (observers' acknowledgements count for nothing).
	 * Epochs never decrease along the log and ours is the highest, so if the highest index a
	 * majority holds is of our epoch, so is every entry after it. */
	n = quorum_index(r);
	if (n > r->last)
		n = r->last;
	if (n > r->commit && epoch_at(r, n) == r->epoch)
		r->commit = n;
	repl_apply_committed(r);
	if (r->role == KVFS_REPL_CANDIDATE && r->noop_index && r->commit >= r->noop_index)
		r->role = KVFS_REPL_LEADER;
	repl_check_rejoined(r);
	/* Tell the followers at once, so that they apply (and answer their writers) now rather
	 * than at the next heartbeat. */
	if (r->commit > was) {
		const struct kvfs_config *c = latest_cfg(r);

		for (uint32_t i = 0; i < c->n; i++) {
			uint32_t id = c->m[i].id;

			if (id != r->id && !r->peers[id].wants_snapshot)
				repl_leader_send_append(r, id, r->peers[id].sent + 1);
		}
	}
}

/* The log to adopt is in place: cut what it does not have, append the no-op, replicate. */
static void adopt_done(struct kvfs_repl *r)
{
	struct kvfs_repl_entry noop = {.epoch = r->epoch};
	uint64_t keep = r->adopt_index;

	/* The adopted log holds every committed entry; never cut below what we know committed. */
	if (keep < r->commit)
		keep = r->commit;
	repl_log_cut(r, keep);
	if (repl_log_append(r, &noop, 1) < 0) {
		repl_step_down(r);
		return;
	}
	r->noop_index = r->last;
	r->phase = PHASE_REPLICATE;
	for (uint32_t id = 1; id < REPL_IDS; id++) {
		struct peer *p = &r->peers[id];

		p->next = r->noop_index;
		p->sent = p->next - 1;
		p->match = 0;
		if (id != r->id && config_is_member(latest_cfg(r), id))
			repl_leader_send_append(r, id, p->next);
	}
	repl_leader_advance_commit(r); /* a cluster of one */
}

/* The configuration of the log the candidate would adopt: its own (what it holds durably, and
 * the entries it knows committed) or the one peer `best` answered with. */
static void best_config(const struct kvfs_repl *r, uint32_t best, struct kvfs_config *c)
{
	if (best == r->id) {
		*c = *repl_cfg_at(r, r->stable > r->commit ? r->stable : r->commit, NULL);
		return;
	}
	if (config_from_bits(&r->peers[best].cfg, c) < 0)
		c->n = 0; /* checked when it arrived: no majority of nothing */
}

/* The most up-to-date log among this candidate's and the answers so far: its holder, and that
 * log's last (epoch, index). Fills have[] with the answers (and this node unless rejoining). */
static uint32_t best_answer(const struct kvfs_repl *r, bool *have, uint64_t *best_epoch,
                            uint64_t *best_index)
{
	uint32_t best = r->id;

	*best_epoch = epoch_at(r, r->stable);
	*best_index = r->stable;
	/* A rejoining candidate's log may be adopted, but it is no vote (repl.h, Rejoining). */
	have[r->id] = !r->rejoining;
	for (uint32_t id = 1; id < REPL_IDS; id++) {
		const struct peer *p = &r->peers[id];

		if (id == r->id || !p->acked)
			continue;
		have[id] = true;
		if (p->last_epoch > *best_epoch ||
		    (p->last_epoch == *best_epoch && p->last_index > *best_index)) {
			*best_epoch = p->last_epoch;
			*best_index = p->last_index;
			best = id;
		}
	}
	return best;
}

/* During recovery: the configuration of the best log answered so far (best_config). */
static void gather_config(const struct kvfs_repl *r, struct kvfs_config *bc)
{
	bool have[REPL_IDS] = {false};
	uint64_t e, i;

	best_config(r, best_answer(r, have, &e, &i), bc);
}

void repl_leader_check_gather(struct kvfs_repl *r)
{
	uint64_t best_epoch, best_index;
	bool have[REPL_IDS] = {false};
	uint32_t best;
	struct kvfs_config bc;

	if (r->role != KVFS_REPL_CANDIDATE || r->phase != PHASE_GATHER || r->promised < r->epoch)
		return;
	best = best_answer(r, have, &best_epoch, &best_index);
	/* A majority of the configuration of the log we adopt, not of ours (repl.h, Membership:
	 * ours may be stale, and a majority of it could miss every holder of a committed entry). */
	best_config(r, best, &bc);
	if (!config_quorum(&bc, have))
		return;
	if (!config_is_voter(&bc, r->id)) {
		/* That log no longer has us vote: we cannot lead it. */
		repl_step_down(r);
		return;
	}
	r->adopt_epoch = best_epoch;
	r->adopt_index = best_index;
	if (best == r->id || (best_index <= r->last && epoch_at(r, best_index) == best_epoch)) {
		adopt_done(r);
		return;
	}
	r->phase = PHASE_FETCH;
	r->fetch_snapshot = false;
	r->fetch_from = best;
	r->fetch_next = r->commit + 1;
	send_fetch(r);
}

/*
 * The peer we fetch from cannot give us what it promised: ask it again, choose again. A peer that
 * compacted the entries we lack never can (we would need its snapshot): after a few tries we give
 * the lead up, so that a replica that holds the newest log can take it.
 */
static void fetch_failed(struct kvfs_repl *r)
{
	if (++r->fetch_failures >= KVFS_REPL_FETCH_TRIES) {
		repl_step_down(r);
		return;
	}
	r->peers[r->fetch_from].acked = false;
	r->phase = PHASE_GATHER;
	repl_leader_send_new_epoch(r, r->fetch_from);
	repl_leader_check_gather(r);
}

/* Once the log to adopt can be fetched on from fetch_next (or is all here): go on. */
static void fetch_next_or_adopt(struct kvfs_repl *r)
{
	if (r->adopt_index <= r->last && epoch_at(r, r->adopt_index) == r->adopt_epoch)
		adopt_done(r);
	else if (r->fetch_next > r->adopt_index)
		fetch_failed(r);
	else
		send_fetch(r);
}

void repl_leader_snapshot_fetched(struct kvfs_repl *r)
{
	if (r->role != KVFS_REPL_CANDIDATE || r->phase != PHASE_FETCH)
		return;
	r->fetch_snapshot = false;
	r->fetch_next = r->base + 1;
	fetch_next_or_adopt(r);
}

void repl_leader_on_fetch_reply(struct kvfs_repl *r, uint32_t from, const struct kvfs_repl_msg *m)
{
	uint64_t first = m->from_index;
	uint32_t i;

	if (r->phase != PHASE_FETCH || from != r->fetch_from || !m->ok)
		return;
	if (m->n_entries == 0 && first > r->fetch_next && first <= r->adopt_index + 1) {
		/* It compacted what we lack: its snapshot first, if the binding can get it. */
		if (!r->io.need_snapshot_from) {
			fetch_failed(r);
		} else if (!r->fetch_snapshot) {
			r->fetch_snapshot = true;
			r->io.need_snapshot_from(r->io.arg, from);
		}
		return;
	}
	if (first != r->fetch_next || !repl_entries_valid(m, first, 0))
		return;
	if (m->n_entries == 0) {
		fetch_failed(r);
		return;
	}
	for (i = 0; i < m->n_entries; i++) {
		uint64_t k = first + i;

		if (k > r->last)
			break;
		if (epoch_at(r, k) != m->entries[i].epoch) {
			if (k <= r->commit) {
				fetch_failed(r);
				return;
			}
			repl_log_cut(r, k - 1);
			break;
		}
	}
	if (i < m->n_entries && repl_log_append(r, m->entries + i, m->n_entries - i) < 0)
		return; /* the tick asks again */
	r->fetch_next = first + m->n_entries;
	fetch_next_or_adopt(r);
}

/*
 * Whether an answer's configuration can be true. An answer whose log is at least as up to date as
 * ours holds every entry we know committed (its last entry's leader held them, or wrote ours in
 * the same epoch), so a configuration it says was set by such an entry must be ours at that
 * index. Anything else is a lie or a bug, and counting it could let a single answer that names a
 * configuration whose only voter is itself make a "majority" on its own. (An answer behind ours
 * may hold another, uncommitted entry at that index: nothing to compare, and it is not adopted.)
 */
static bool cfg_plausible(const struct kvfs_repl *r, const struct kvfs_repl_msg *m,
                          const struct kvfs_config *c)
{
	uint64_t set_at, idx = m->cfg_index, my_epoch = epoch_at(r, r->stable);
	const struct kvfs_config *mine;

	if (m->last_epoch < my_epoch || (m->last_epoch == my_epoch && m->last_index < r->stable))
		return true;
	if (idx <= r->base || idx > r->commit || idx > r->last)
		return true; /* not an entry of our log we know committed: nothing to compare */
	mine = repl_cfg_at(r, idx, &set_at);
	return set_at == idx && config_equal(mine, c);
}

void repl_leader_on_epoch_ack(struct kvfs_repl *r, uint32_t from, const struct kvfs_repl_msg *m)
{
	struct peer *p = &r->peers[from];
	struct kvfs_config c;

	if (!m->ok && m->epoch == r->epoch && !p->acked)
		p->rejoining = true; /* it abstains (repl.h, Rejoining): no vote */
	if (!m->ok || m->last_epoch > r->epoch || (m->last_index == 0) != (m->last_epoch == 0))
		return;
	if (r->phase != PHASE_GATHER || config_from_bits(&m->cfg, &c) < 0 ||
	    !cfg_plausible(r, m, &c))
		return;
	p->acked = true;
	p->rejoining = false;
	p->last_epoch = m->last_epoch;
	p->last_index = m->last_index;
	p->cfg = m->cfg;
	/* Members of its configuration that ours lacks must be asked too: their answers may be
	 * what a majority of that configuration needs. */
	for (uint32_t i = 0; i < c.n; i++) {
		uint32_t id = c.m[i].id;

		if (id != r->id && !bit_is_set(r->targets.members, id)) {
			r->targets.members[id / 8] |= (uint8_t)(1u << (id % 8));
			repl_leader_send_new_epoch(r, id);
		}
	}
	repl_leader_check_gather(r);
}

void repl_leader_on_append_ack(struct kvfs_repl *r, uint32_t from, const struct kvfs_repl_msg *m)
{
	struct peer *p = &r->peers[from];

	if (r->phase != PHASE_REPLICATE)
		return;
	if (m->ok) {
		/* A follower matches at most what we told it of our log in this epoch: anything
		 * more is a lie or a bug, and counting it could commit what a majority lacks. */
		if (m->match_index > r->last || m->match_index > p->hw)
			return;
		if (m->match_index > p->match)
			p->match = m->match_index;
		if (p->next < p->match + 1)
			p->next = p->match + 1;
		if (p->sent < p->match)
			p->sent = p->match;
		repl_leader_advance_commit(r);
		if (p->sent < r->last)
			repl_leader_send_append(r, from, p->sent + 1);
		return;
	}
	/* prev did not match: back off to the follower's hint, never below its match, unless
	 * the follower lost what it acknowledged (its disk was replaced, or a snapshot it said it
	 * had was not yet on it when it crashed): then from what it holds now. */
	if (m->hint < p->match)
		p->match = m->hint;
	p->next = p->next - 1 < m->hint + 1 ? p->next - 1 : m->hint + 1;
	if (p->next < p->match + 1)
		p->next = p->match + 1;
	p->sent = p->next - 1;
	repl_leader_send_append(r, from, p->next);
}

int repl_persist_failed(struct kvfs_repl *r, uint64_t first)
{
	size_t k = 0;

	const struct kvfs_config *c = latest_cfg(r);
	uint64_t set_at = 0;

	if (c->n != 1 || c->m[0].id != r->id || r->role == KVFS_REPL_FOLLOWER ||
	    r->phase != PHASE_REPLICATE || first <= r->stable || first <= r->commit ||
	    first > r->last)
		return -EINVAL;
	/* Only entries no other replica can hold may go: this node must have been the only
	 * member since before `first` (no configuration set at or after it, none before it with
	 * other members), or another replica may have made one durable, and a different entry
	 * at its index could later be committed over it. */
	c = repl_cfg_at(r, first - 1, &set_at);
	if (c->n != 1 || c->m[0].id != r->id || latest_cfg_index(r) >= first)
		return -EINVAL;
	for (uint64_t i = first; i <= r->last; i++)
		free((void *)entry_at(r, i)->data);
	r->last = first - 1;
	repl_cfg_cut(r, first - 1);
	for (size_t i = 0; i < r->npend; i++)
		if (r->pend[i].index < first)
			r->pend[k++] = r->pend[i];
	r->npend = k;
	if (r->noop_index >= first)
		r->noop_index = 0; /* appended again at the next tick */
	return 0;
}

/* A candidate still gathering also needs to hear a majority of the configuration of the best log
 * answered so far: a candidate whose own configuration is stale (a node removed, partitioned with
 * others removed) could hear a majority of that forever and never finish, holding the lead that
 * ZooKeeper gave it while the real configuration waits. */
static bool gather_hears(const struct kvfs_repl *r, const bool *have)
{
	struct kvfs_config bc;

	if (r->role != KVFS_REPL_CANDIDATE || r->phase != PHASE_GATHER)
		return true;
	gather_config(r, &bc);
	return bc.n == 0 || config_quorum(&bc, have);
}

void repl_leader_tick(struct kvfs_repl *r)
{
	struct kvfs_repl_entry noop = {.epoch = r->epoch};
	bool have[REPL_IDS] = {false};
	const struct kvfs_config *c;

	/* The no-op was lost with a failed persist (repl_persist_failed): try again. */
	if (r->phase == PHASE_REPLICATE && r->noop_index == 0) {
		if (repl_log_append(r, &noop, 1) == 0)
			r->noop_index = r->last;
	}

	for (uint32_t id = 1; id < REPL_IDS; id++) {
		have[id] = id == r->id || r->peers[id].heard;
		r->peers[id].heard = false;
	}
	if (quorum(r, have) && gather_hears(r, have)) {
		r->missed = 0;
	} else if (++r->missed >= r->lost_ticks) {
		repl_step_down(r);
		return;
	}
	c = latest_cfg(r);
	for (uint32_t id = 1; id < REPL_IDS; id++) {
		struct peer *p = &r->peers[id];

		/* Recovery asks every member it knows of; then the latest configuration's. */
		if (id == r->id || !(r->phase == PHASE_REPLICATE
		                         ? config_is_member(c, id)
		                         : bit_is_set(r->targets.members, id) ||
		                               (r->phase == PHASE_FETCH && id == r->fetch_from)))
			continue;
		if (r->phase == PHASE_REPLICATE) {
			p->sent = p->next - 1;
			repl_leader_send_append(r, id, p->next);
		} else if (r->phase == PHASE_FETCH && id == r->fetch_from) {
			if (!r->fetch_snapshot)
				send_fetch(r);
		} else {
			/* Also a heartbeat: the promised answer again, so we keep hearing a
			 * majority. */
			repl_leader_send_new_epoch(r, id);
		}
	}
}

void repl_snapshot_sent(struct kvfs_repl *r, uint32_t to, uint64_t index)
{
	struct peer *p;

	if (r->role == KVFS_REPL_FOLLOWER || r->phase != PHASE_REPLICATE || to == 0 ||
	    to > KVFS_CONFIG_ID_MAX || to == r->id || index > r->last)
		return;
	p = &r->peers[to];
	p->wants_snapshot = false;
	if (index > p->hw)
		p->hw = index;
	if (index > p->match)
		p->match = index;
	if (p->next < p->match + 1)
		p->next = p->match + 1;
	p->sent = p->next - 1;
	repl_leader_advance_commit(r);
	repl_leader_send_append(r, to, p->next);
}
