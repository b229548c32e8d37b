/*
 * The replication state machine (see repl.h): DESIGN §4 as a pure function of events. A replica
 * is a follower, a candidate (it leads its epoch but has not yet established it) or a leader.
 * This file holds the interface, the in-memory log with its durability bookkeeping, fencing and
 * the follower; repl_leader.c holds the candidate's phases (GATHER, FETCH, REPLICATE) and the
 * leader.
 *
 * Durability is tracked by `stable`: the longest prefix of the in-memory log known to be on disk
 * as it is in memory. Each persist action is remembered with a floor (the lowest truncation asked
 * for since it was issued), so that a write that completes after a truncation vouches only for
 * what the truncation kept. A follower acknowledges min(stable, fmatch), fmatch being how far its
 * log is known to match the leader's; everything a replica reports about its log to a new leader
 * is about its durable prefix, which no crash can take away.
 */
#include "kvfs/repl.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "kvfs/config.h"
#include "kvfs/op.h"
#include "repl_internal.h"

void repl_send(struct kvfs_repl *r, uint32_t to, struct kvfs_repl_msg *m)
{
	m->epoch = r->epoch;
	r->io.send(r->io.arg, to, m);
}

void repl_apply_committed(struct kvfs_repl *r)
{
	while (r->applied < r->commit) {
		r->applied++;
		r->io.apply(r->io.arg, entry_at(r, r->applied));
	}
}

/* Drops the entries after `after` in memory and on disk. Never called below the commit index. */
void repl_log_cut(struct kvfs_repl *r, uint64_t after)
{
	if (after >= r->last)
		return;
	for (uint64_t i = after + 1; i <= r->last; i++)
		free((void *)entry_at(r, i)->data);
	r->last = after;
	repl_cfg_cut(r, after);
	r->io.truncate(r->io.arg, after);
	if (r->stable > after)
		r->stable = after;
	if (r->fmatch > after)
		r->fmatch = after;
	for (size_t i = 0; i < r->npend; i++)
		if (r->pend[i].floor > after)
			r->pend[i].floor = after;
}

/*
 * Appends copies of e[0..n) (whose index fields are ignored: they go at last + 1 ...) and asks
 * for them to be persisted. All or nothing: -ENOMEM leaves the log as it was.
 */
int repl_log_append(struct kvfs_repl *r, const struct kvfs_repl_entry *e, size_t n)
{
	size_t i;

	if (n == 0)
		return 0;
	uint64_t held = r->last - r->base;

	if (held + n > r->cap) {
		size_t cap = r->cap ? r->cap : 64;
		struct kvfs_repl_entry *log;

		while (cap < held + n)
			cap *= 2;
		log = realloc(r->log, cap * sizeof(*log));
		if (!log)
			return -ENOMEM;
		r->log = log;
		r->cap = cap;
	}
	if (r->npend == r->pcap) {
		size_t cap = r->pcap ? 2 * r->pcap : 16;
		struct pending *pend = realloc(r->pend, cap * sizeof(*pend));

		if (!pend)
			return -ENOMEM;
		r->pend = pend;
		r->pcap = cap;
	}
	if (repl_cfg_reserve(r, e, n) < 0)
		return -ENOMEM;
	for (i = 0; i < n; i++) {
		struct kvfs_repl_entry *d = entry_at(r, r->last + 1 + i);
		uint8_t *data = NULL;

		if (e[i].len) {
			data = malloc(e[i].len);
			if (!data)
				goto err_free_copies;
			memcpy(data, e[i].data, e[i].len);
		}
		d->epoch = e[i].epoch;
		d->index = r->last + i + 1;
		d->len = e[i].len;
		d->data = data;
	}
	r->pend[r->npend++] =
	    (struct pending){.epoch = e[n - 1].epoch, .index = r->last + n, .floor = r->last + n};
	r->io.persist(r->io.arg, entry_at(r, r->last + 1), n);
	r->last += n;
	repl_cfg_appended(r, r->last - n + 1); /* in force from now on (repl.h, Membership) */
	return 0;

err_free_copies:
	while (i-- > 0)
		free((void *)entry_at(r, r->last + 1 + i)->data);
	return -ENOMEM;
}

/* Raises the epoch heard to `epoch` (promising it) and follows `leader` (0: unknown). Only
 * ZooKeeper's view calls it (see repl.h: no peer message raises the epoch). */
static void raise_epoch(struct kvfs_repl *r, uint64_t epoch, uint32_t leader)
{
	r->epoch = epoch;
	r->role = KVFS_REPL_FOLLOWER;
	r->leader = leader == r->id ? 0 : leader;
	r->fmatch = 0;
	r->acked_match = 0;
	r->leader_commit = 0;
	r->got_append = false;
	r->owe_epoch_ack = false;
	r->rejoin_heard = false;
	r->rejoin_target = 0;
	r->io.persist_epoch(r->io.arg, epoch);
}

void repl_step_down(struct kvfs_repl *r)
{
	r->role = KVFS_REPL_FOLLOWER;
	r->leader = 0;
	r->io.leadership_lost(r->io.arg);
}

/* ---- follower ---- */

static void send_epoch_ack(struct kvfs_repl *r)
{
	struct kvfs_repl_msg m = {.type = KVFS_REPL_EPOCH_ACK, .ok = 1};

	if (!r->owe_epoch_ack || r->role != KVFS_REPL_FOLLOWER || !r->leader ||
	    r->promised < r->epoch)
		return;
	r->owe_epoch_ack = false;
	if (r->rejoining) {
		/* Abstain: our log may lack what our lost disk acknowledged (repl.h). */
		m.ok = 0;
		repl_send(r, r->leader, &m);
		return;
	}
	m.last_epoch = epoch_at(r, r->stable);
	m.last_index = r->stable;
	/* The config of the log we vouch for: recovery counts a majority of that one. */
	config_to_bits(repl_cfg_at(r, r->stable, &m.cfg_index), &m.cfg);
	repl_send(r, r->leader, &m);
}

/*
 * A rejoining replica votes again once its durable log reaches the first commit index its leader
 * sent it in this epoch and an entry of this epoch (repl.h, Rejoining, has the argument). On a
 * leader: once its own no-op, which follows every entry it adopted, is durable here.
 */
void repl_check_rejoined(struct kvfs_repl *r)
{
	uint64_t d = repl_durable_commit(r);

	if (!r->rejoining || r->promised < r->epoch)
		return;
	if (r->role == KVFS_REPL_FOLLOWER) {
		if (!r->leader || !r->rejoin_heard || d == 0 || d < r->rejoin_target ||
		    epoch_at(r, d) != r->epoch)
			return;
	} else if (r->role != KVFS_REPL_LEADER || r->stable < r->noop_index) {
		return;
	}
	r->rejoining = false;
	if (r->io.rejoined)
		r->io.rejoined(r->io.arg);
}

/* Acknowledges what is durable and matches the leader (always if force, else if it grew). */
static void follower_ack(struct kvfs_repl *r, bool force)
{
	struct kvfs_repl_msg m = {.type = KVFS_REPL_APPEND_ACK, .ok = 1};
	uint64_t match = r->fmatch < r->stable ? r->fmatch : r->stable;

	/* An acknowledgement counts toward a commit: only once the promise is durable. */
	if (r->role != KVFS_REPL_FOLLOWER || !r->leader || !r->got_append || r->promised < r->epoch)
		return;
	repl_check_rejoined(r);
	if (!force && match <= r->acked_match)
		return;
	if (match > r->acked_match)
		r->acked_match = match;
	m.match_index = match;
	m.hint = r->last;
	repl_send(r, r->leader, &m);
}

uint32_t repl_batch_count(const struct kvfs_repl *r, uint64_t first)
{
	uint64_t bytes = 0;
	uint32_t n = 0;

	while (first + n <= r->last && n < KVFS_REPL_BATCH) {
		bytes += entry_at(r, first + n)->len;
		if (n > 0 && bytes > KVFS_REPL_BATCH_BYTES)
			break;
		n++;
	}
	return n;
}

bool repl_entries_valid(const struct kvfs_repl_msg *m, uint64_t first, uint64_t min_epoch)
{
	uint64_t e = min_epoch;

	if (m->n_entries && !m->entries)
		return false;
	for (uint32_t i = 0; i < m->n_entries; i++) {
		const struct kvfs_repl_entry *x = &m->entries[i];

		/* No entry is of epoch 0 (repl_init would refuse the log at the next start). */
		if (x->index != first + i || x->epoch == 0 || x->epoch < e || x->epoch > m->epoch ||
		    (x->len && !x->data))
			return false;
		e = x->epoch;
	}
	return true;
}

static void on_append(struct kvfs_repl *r, uint32_t from, const struct kvfs_repl_msg *msg)
{
	struct kvfs_repl_msg ack = {.type = KVFS_REPL_APPEND_ACK}, shifted;
	const struct kvfs_repl_msg *m = msg;
	uint64_t prev = m->prev_index, end;
	uint32_t i;

	if (!repl_entries_valid(m, prev + 1, m->prev_epoch) || (prev == 0 && m->prev_epoch != 0))
		return;
	if (m->commit > r->leader_commit)
		r->leader_commit = m->commit;
	if (!r->rejoin_heard) {
		/* Sent after we started (no message outlives its connection): it covers what the
		 * leader had committed when our disk was lost, if that was in its epoch. */
		r->rejoin_heard = true;
		r->rejoin_target = m->commit;
	}
	if (prev < r->base) {
		/* What we compacted was committed, so it is the leader's too: skip it. */
		uint64_t skip = r->base - prev;

		shifted = *m;
		shifted.prev_index = r->base;
		shifted.prev_epoch = r->base_epoch;
		shifted.n_entries = skip >= m->n_entries ? 0 : m->n_entries - (uint32_t)skip;
		shifted.entries = shifted.n_entries ? m->entries + skip : NULL;
		m = &shifted;
		prev = r->base;
	}
	if (prev > r->last || epoch_at(r, prev) != m->prev_epoch) {
		uint64_t hint = prev - 1 < r->last ? prev - 1 : r->last;

		/* Skip back over the mismatching epoch; never below what is committed. */
		if (prev <= r->last)
			while (hint > r->commit && epoch_at(r, hint) == epoch_at(r, prev))
				hint--;
		ack.hint = hint;
		repl_send(r, from, &ack);
		return;
	}
	for (i = 0; i < m->n_entries; i++) {
		uint64_t k = prev + 1 + i;

		if (k > r->last)
			break;
		if (epoch_at(r, k) != m->entries[i].epoch) {
			if (k <= r->commit)
				return; /* a committed entry never conflicts: a bad peer */
			repl_log_cut(r, k - 1);
			break;
		}
	}
	if (i < m->n_entries && repl_log_append(r, m->entries + i, m->n_entries - i) < 0)
		return; /* no ack: the leader resends */
	r->got_append = true;
	end = prev + m->n_entries;
	if (end > r->fmatch)
		r->fmatch = end;
	/* What we now know matches the leader's log, and no further. */
	if ((m->commit < end ? m->commit : end) > r->commit) {
		r->commit = m->commit < end ? m->commit : end;
		repl_apply_committed(r);
	}
	follower_ack(r, true);
}

static void on_fetch(struct kvfs_repl *r, uint32_t from, const struct kvfs_repl_msg *m)
{
	struct kvfs_repl_msg reply = {.type = KVFS_REPL_FETCH_REPLY, .ok = 1};
	uint64_t first = m->from_index ? m->from_index : 1;

	reply.from_index = first;
	if (first <= r->base) {
		/* Compacted: an empty reply that starts after our snapshot tells the candidate to
		 * get that snapshot first (need_snapshot_from). */
		reply.from_index = r->base + 1;
	} else if (first <= r->last) {
		reply.n_entries = repl_batch_count(r, first);
		reply.entries = entry_at(r, first);
	}
	repl_send(r, from, &reply);
}

/* ---- the interface ---- */

int repl_init(struct kvfs_repl **out, uint32_t id, const struct kvfs_config *base_cfg,
              const struct kvfs_repl_io *io, uint64_t promised_epoch, uint64_t base,
              uint64_t base_epoch, const struct kvfs_repl_entry *log, size_t n,
              uint64_t commit_hint)
{
	struct kvfs_repl *r;
	uint64_t e = base_epoch;

	if (!out || !io || !base_cfg || config_check(base_cfg) < 0 || id == 0 ||
	    id > KVFS_CONFIG_ID_MAX || commit_hint < base || commit_hint > base + n ||
	    (base == 0) != (base_epoch == 0) || (n && !log) || !io->send || !io->persist ||
	    !io->truncate || !io->persist_epoch || !io->apply || !io->leadership_lost)
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		if (log[i].index != base + i + 1 || log[i].epoch < e || log[i].epoch == 0 ||
		    (log[i].len && !log[i].data))
			return -EINVAL;
		e = log[i].epoch;
	}
	r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	r->peers = calloc(REPL_IDS, sizeof(*r->peers));
	if (!r->peers)
		goto err_free_repl;
	r->id = id;
	r->base_cfg = *base_cfg;
	r->lost_ticks = KVFS_REPL_LOST_TICKS;
	r->io = *io;
	/* An entry of epoch e was accepted only after e was promised. */
	r->promised = promised_epoch > e ? promised_epoch : e;
	r->epoch = r->promised;
	r->base = base;
	r->base_epoch = base_epoch;
	r->last = base;
	if (n) {
		r->log = calloc(n, sizeof(*r->log));
		if (!r->log)
			goto err_free_peers;
		r->cap = n;
		for (size_t i = 0; i < n; i++) {
			uint8_t *data = NULL;

			if (log[i].len) {
				data = malloc(log[i].len);
				if (!data)
					goto err_free_log;
				memcpy(data, log[i].data, log[i].len);
			}
			r->log[i] = log[i];
			r->log[i].data = data;
			r->last = base + i + 1;
		}
	}
	r->stable = r->last;
	r->commit = commit_hint;
	r->applied = commit_hint;
	if (repl_cfg_init(r) < 0)
		goto err_free_log;
	*out = r;
	return 0;

err_free_log:
	for (uint64_t i = base + 1; i <= r->last; i++)
		free((void *)entry_at(r, i)->data);
	free(r->log);
err_free_peers:
	free(r->peers);
err_free_repl:
	free(r);
	return -ENOMEM;
}

void repl_set_rejoining(struct kvfs_repl *r)
{
	r->rejoining = true;
}

void repl_close(struct kvfs_repl *r)
{
	if (!r)
		return;
	for (uint64_t i = r->base + 1; i <= r->last; i++)
		free((void *)entry_at(r, i)->data);
	free(r->log);
	free(r->pend);
	free(r->cfgs);
	free(r->peers);
	free(r);
}

void repl_become_leader(struct kvfs_repl *r, uint64_t epoch)
{
	const struct kvfs_config *c = latest_cfg(r);

	if (epoch <= r->epoch) {
		if (!(epoch == r->epoch && r->role != KVFS_REPL_FOLLOWER))
			r->io.leadership_lost(r->io.arg);
		return;
	}
	if (!config_is_voter(c, r->id)) {
		/* An observer or a non-member never leads (repl.h, Membership). */
		r->io.leadership_lost(r->io.arg);
		return;
	}
	raise_epoch(r, epoch, 0);
	r->role = KVFS_REPL_CANDIDATE;
	r->phase = PHASE_GATHER;
	r->leader = r->id;
	r->missed = 0;
	r->fetch_failures = 0;
	r->fetch_snapshot = false;
	memset(r->peers, 0, REPL_IDS * sizeof(*r->peers));
	config_to_bits(c, &r->targets);
	for (uint32_t i = 0; i < c->n; i++)
		if (c->m[i].id != r->id)
			repl_leader_send_new_epoch(r, c->m[i].id);
}

/* A NEW_EPOCH held for ZooKeeper's view (see repl.h) is answered once the view names its
 * sender leader of our epoch. */
static void answer_held(struct kvfs_repl *r)
{
	if (r->role != KVFS_REPL_FOLLOWER || !r->leader || r->held_from != r->leader ||
	    r->held_epoch != r->epoch)
		return;
	r->held_epoch = 0;
	r->held_from = 0;
	r->owe_epoch_ack = true;
	send_epoch_ack(r);
}

void repl_become_follower(struct kvfs_repl *r, uint32_t leader, uint64_t epoch)
{
	if (leader == 0 || leader > KVFS_CONFIG_ID_MAX || epoch < r->epoch)
		return;
	if (epoch > r->epoch)
		raise_epoch(r, epoch, leader);
	else if (r->role == KVFS_REPL_FOLLOWER && !r->leader && leader != r->id)
		r->leader = leader;
	answer_held(r);
}

void repl_zk_view(struct kvfs_repl *r, bool leading, uint32_t leader, uint64_t epoch)
{
	if (leading) {
		if (epoch > r->epoch)
			repl_become_leader(r, epoch);
		else if (r->role == KVFS_REPL_FOLLOWER)
			/* Handed an epoch already promised (to another leader, or one we gave up),
			 * or an older one: we cannot lead it, and waiting would leave the cluster
			 * without a leader. Resign and stand again, for a newer epoch. */
			r->io.leadership_lost(r->io.arg);
		return;
	}
	if (leader && leader != r->id)
		repl_become_follower(r, leader, epoch);
}

int repl_propose_entry(struct kvfs_repl *r, const uint8_t *op, uint32_t len, uint64_t *index)
{
	struct kvfs_repl_entry e = {.epoch = r->epoch, .len = len, .data = op};
	const struct kvfs_config *c;
	int rv;

	rv = repl_log_append(r, &e, 1);
	if (rv < 0)
		return rv;
	if (index)
		*index = r->last;
	c = latest_cfg(r); /* the new one, if op is a CONFIG entry */
	for (uint32_t i = 0; i < c->n; i++) {
		uint32_t id = c->m[i].id;
		struct peer *p = &r->peers[id];

		if (id != r->id && p->sent < r->last)
			repl_leader_send_append(r, id, p->sent + 1);
	}
	return 0;
}

int repl_propose(struct kvfs_repl *r, const uint8_t *op, uint32_t len, uint64_t *index)
{
	if (r->role != KVFS_REPL_LEADER)
		return -EROFS;
	if (len && !op)
		return -EINVAL;
	/* A configuration enters the log only through repl_propose_config()'s checks. */
	if (len >= KVFS_OP_HEADER_SIZE && op[0] == KVFS_OP_CONFIG)
		return -EINVAL;
	return repl_propose_entry(r, op, len, index);
}

void repl_receive(struct kvfs_repl *r, uint32_t from, const struct kvfs_repl_msg *m)
{
	bool from_leader;

	if (from == 0 || from > KVFS_CONFIG_ID_MAX || from == r->id || !m)
		return;
	from_leader = m->type == KVFS_REPL_NEW_EPOCH || m->type == KVFS_REPL_APPEND ||
	              m->type == KVFS_REPL_FETCH;
	if (m->epoch > r->epoch) {
		/* An epoch ZooKeeper has not shown us: never promised on a peer's word (repl.h).
		 * A genuine new leader's NEW_EPOCH waits for our view to catch up. */
		if (m->type == KVFS_REPL_NEW_EPOCH) {
			r->held_epoch = m->epoch;
			r->held_from = from;
		}
		return;
	}

	if (m->epoch < r->epoch) {
		/* Fencing: tell the sender of its successor; answers to us are simply late. */
		struct kvfs_repl_msg rej = {0};

		if (!from_leader)
			return;
		rej.type = m->type == KVFS_REPL_NEW_EPOCH ? KVFS_REPL_EPOCH_ACK
		           : m->type == KVFS_REPL_APPEND  ? KVFS_REPL_APPEND_ACK
		                                          : KVFS_REPL_FETCH_REPLY;
		/* Only APPEND_ACK carries a hint (repl.h: unlisted fields are 0). */
		if (rej.type == KVFS_REPL_APPEND_ACK)
			rej.hint = r->last;
		repl_send(r, from, &rej);
		return;
	}

	if (from_leader) {
		if (r->role != KVFS_REPL_FOLLOWER)
			return; /* one leader per epoch: we are it */
		if (from != r->leader) {
			/* Only the leader ZooKeeper named leads this epoch. Not known yet (we
			 * restarted with this promise): a NEW_EPOCH waits for the view. */
			if (m->type == KVFS_REPL_NEW_EPOCH && !r->leader) {
				r->held_epoch = m->epoch;
				r->held_from = from;
			}
			return;
		}
		switch (m->type) {
		case KVFS_REPL_NEW_EPOCH:
			r->owe_epoch_ack = true;
			send_epoch_ack(r);
			break;
		case KVFS_REPL_APPEND:
			on_append(r, from, m);
			break;
		default:
			on_fetch(r, from, m);
			break;
		}
		return;
	}
	if (r->role == KVFS_REPL_FOLLOWER)
		return;
	r->peers[from].heard = true;
	switch (m->type) {
	case KVFS_REPL_EPOCH_ACK:
		repl_leader_on_epoch_ack(r, from, m);
		break;
	case KVFS_REPL_APPEND_ACK:
		repl_leader_on_append_ack(r, from, m);
		break;
	case KVFS_REPL_FETCH_REPLY:
		repl_leader_on_fetch_reply(r, from, m);
		break;
	default:
		break;
	}
}

void repl_persisted(struct kvfs_repl *r, uint64_t epoch, uint64_t index)
{
	size_t k;

	for (k = 0; k < r->npend; k++)
		if (r->pend[k].epoch == epoch && r->pend[k].index == index)
			break;
	if (k == r->npend)
		return;
	for (size_t i = 0; i <= k; i++)
		if (r->pend[i].floor > r->stable)
			r->stable = r->pend[i].floor;
	memmove(r->pend, r->pend + k + 1, (r->npend - k - 1) * sizeof(*r->pend));
	r->npend -= k + 1;
	if (r->role == KVFS_REPL_FOLLOWER)
		follower_ack(r, false);
	else
		repl_leader_advance_commit(r);
}

void repl_epoch_persisted(struct kvfs_repl *r, uint64_t epoch)
{
	if (epoch <= r->promised || epoch > r->epoch)
		return;
	r->promised = epoch;
	if (r->role == KVFS_REPL_FOLLOWER) {
		send_epoch_ack(r);
		follower_ack(r, true);
	} else {
		repl_leader_check_gather(r);
	}
}

void repl_tick(struct kvfs_repl *r)
{
	if (r->role != KVFS_REPL_FOLLOWER)
		repl_leader_tick(r);
}

enum kvfs_repl_role repl_role(const struct kvfs_repl *r)
{
	return r->role;
}

bool repl_rejoining(const struct kvfs_repl *r)
{
	return r->rejoining;
}

bool repl_peer_rejoining(const struct kvfs_repl *r, uint32_t id)
{
	if (r->role == KVFS_REPL_FOLLOWER || id == 0 || id > KVFS_CONFIG_ID_MAX || id == r->id)
		return false;
	return r->peers[id].rejoining;
}

uint64_t repl_epoch(const struct kvfs_repl *r)
{
	return r->epoch;
}

uint64_t repl_promised_epoch(const struct kvfs_repl *r)
{
	return r->promised;
}

uint32_t repl_leader(const struct kvfs_repl *r)
{
	return r->leader;
}

uint64_t repl_commit_index(const struct kvfs_repl *r)
{
	return r->commit;
}

uint64_t repl_applied_index(const struct kvfs_repl *r)
{
	return r->applied;
}

uint64_t repl_last_index(const struct kvfs_repl *r)
{
	return r->last;
}

uint64_t repl_peer_match(const struct kvfs_repl *r, uint32_t id)
{
	if (r->role == KVFS_REPL_FOLLOWER || id == 0 || id > KVFS_CONFIG_ID_MAX)
		return 0;
	return id == r->id ? r->stable : r->peers[id].match;
}

int repl_entry(const struct kvfs_repl *r, uint64_t index, struct kvfs_repl_entry *e)
{
	if (index <= r->base || index > r->last)
		return -ENOENT;
	*e = *entry_at(r, index);
	return 0;
}

uint64_t repl_base_index(const struct kvfs_repl *r)
{
	return r->base;
}

uint64_t repl_durable_commit(const struct kvfs_repl *r)
{
	uint64_t d = r->stable < r->commit ? r->stable : r->commit;

	return d > r->base ? d : r->base;
}

uint64_t repl_heard_commit(const struct kvfs_repl *r)
{
	return r->role == KVFS_REPL_FOLLOWER ? r->leader_commit : 0;
}

uint64_t repl_leader_commit(const struct kvfs_repl *r)
{
	if (r->role != KVFS_REPL_FOLLOWER)
		return r->commit;
	return r->leader_commit > r->commit ? r->leader_commit : r->commit;
}

unsigned repl_missed_ticks(const struct kvfs_repl *r)
{
	return r->role == KVFS_REPL_FOLLOWER ? 0 : r->missed;
}

void repl_set_lost_ticks(struct kvfs_repl *r, unsigned ticks)
{
	r->lost_ticks = ticks ? ticks : 1;
}

void repl_compact(struct kvfs_repl *r, uint64_t upto)
{
	uint64_t drop;

	if (upto > r->applied)
		upto = r->applied;
	if (upto <= r->base)
		return;
	drop = upto - r->base;
	r->base_epoch = epoch_at(r, upto);
	for (uint64_t i = 0; i < drop; i++)
		free((void *)r->log[i].data);
	memmove(r->log, r->log + drop, (r->last - upto) * sizeof(*r->log));
	r->base = upto;
	repl_cfg_compact(r, upto);
}

bool repl_snapshot_wanted(const struct kvfs_repl *r, uint64_t index)
{
	if (index <= r->commit)
		return false;
	if (r->role == KVFS_REPL_FOLLOWER)
		return true;
	/* A candidate that must adopt a log whose owner compacted what it lacks. */
	return r->role == KVFS_REPL_CANDIDATE && r->phase == PHASE_FETCH && r->fetch_snapshot;
}

uint32_t repl_snapshot_source(const struct kvfs_repl *r)
{
	if (r->role == KVFS_REPL_FOLLOWER)
		return r->leader;
	return r->phase == PHASE_FETCH && r->fetch_snapshot ? r->fetch_from : 0;
}

int repl_snapshot_installed(struct kvfs_repl *r, uint64_t index, uint64_t epoch,
                            const struct kvfs_config *cfg, uint64_t cfg_index)
{
	if (index == 0 || epoch == 0 || !repl_snapshot_wanted(r, index) ||
	    (cfg && (config_check(cfg) < 0 || cfg_index > index)))
		return -EINVAL;
	if (index <= r->last && epoch_at(r, index) == epoch) {
		/* Our log goes on past the snapshot, the same: keep that suffix (and the configs
		 * in it; the one at index is ours, which is the snapshot's). */
		r->commit = index;
		r->applied = index;
		repl_compact(r, index);
	} else {
		/* The configuration at index is the snapshot's; without one (a snapshot format
		 * that carries none), what our history says at index stands in. */
		const struct kvfs_config *at =
		    repl_cfg_at(r, index < r->last ? index : r->last, &r->base_cfg_index);

		r->base_cfg = cfg ? *cfg : *at;
		if (cfg)
			r->base_cfg_index = cfg_index;
		r->ncfg = 0;
		if (r->io.config_changed)
			r->io.config_changed(r->io.arg, &r->base_cfg, r->base_cfg_index);
		/* The binding has replaced its log with the snapshot: ours goes the same way. */
		for (uint64_t i = r->base + 1; i <= r->last; i++)
			free((void *)entry_at(r, i)->data);
		for (size_t i = 0; i < r->npend; i++)
			if (r->pend[i].floor > index)
				r->pend[i].floor = index;
		r->last = index;
		r->base = index;
		r->base_epoch = epoch;
		r->commit = index;
		r->applied = index;
		/* What the disk held after index is gone with the log. */
		r->stable = index;
		r->fmatch = index;
	}
	if (r->stable < index)
		r->stable = index;
	if (r->fmatch < index)
		r->fmatch = index;
	if (r->role == KVFS_REPL_CANDIDATE)
		repl_leader_snapshot_fetched(r);
	else
		follower_ack(r, true);
	return 0;
}

void repl_peer_heard(struct kvfs_repl *r, uint32_t id)
{
	if (r->role != KVFS_REPL_FOLLOWER && id > 0 && id <= KVFS_CONFIG_ID_MAX)
		r->peers[id].heard = true;
}
