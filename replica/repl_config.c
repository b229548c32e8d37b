/*
 * The replication core's configuration history (see repl.h, Membership): the configuration at
 * base and the CONFIG entries after it, kept in step with the log (append, cut, compaction,
 * snapshot), and the leader's one-step proposals.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "kvfs/config.h"
#include "kvfs/op.h"
#include "kvfs/repl.h"
#include "repl_internal.h"

const struct kvfs_config *repl_cfg_at(const struct kvfs_repl *r, uint64_t index, uint64_t *set_at)
{
	size_t k = r->ncfg;

	while (k > 0 && r->cfgs[k - 1].index > index)
		k--;
	if (set_at)
		*set_at = k ? r->cfgs[k - 1].index : r->base_cfg_index;
	return k ? &r->cfgs[k - 1].cfg : &r->base_cfg;
}

static bool is_config_entry(const struct kvfs_repl_entry *e)
{
	return e->len >= KVFS_OP_HEADER_SIZE && e->data && e->data[0] == KVFS_OP_CONFIG;
}

int repl_cfg_reserve(struct kvfs_repl *r, const struct kvfs_repl_entry *e, size_t n)
{
	size_t want = r->ncfg;

	for (size_t i = 0; i < n; i++)
		want += is_config_entry(&e[i]);
	if (want > r->cfgcap) {
		size_t cap = r->cfgcap ? r->cfgcap : 4;
		struct cfg_at *c;

		while (cap < want)
			cap *= 2;
		c = realloc(r->cfgs, cap * sizeof(*c));
		if (!c)
			return -ENOMEM;
		r->cfgs = c;
		r->cfgcap = cap;
	}
	return 0;
}

void repl_cfg_reset_peer(struct kvfs_repl *r, uint32_t id)
{
	struct peer *p = &r->peers[id];

	if (r->role == KVFS_REPL_FOLLOWER || id == r->id)
		return;
	/* Nothing known of it in this epoch: start at the end, back off on its hints. */
	memset(p, 0, sizeof(*p));
	p->next = r->last;
	p->sent = p->next - 1;
}

static void changed(struct kvfs_repl *r)
{
	if (r->io.config_changed)
		r->io.config_changed(r->io.arg, latest_cfg(r), latest_cfg_index(r));
}

void repl_cfg_appended(struct kvfs_repl *r, uint64_t first)
{
	bool any = false;

	for (uint64_t i = first; i <= r->last; i++) {
		const struct kvfs_repl_entry *e = entry_at(r, i);
		struct kvfs_config was = *latest_cfg(r), c;

		/* A malformed one (no leader writes it) changes nothing, alike everywhere. */
		if (!is_config_entry(e) || config_entry_decode(e->data, e->len, &c, NULL) < 0)
			continue;
		r->cfgs[r->ncfg].index = i;
		r->cfgs[r->ncfg].cfg = c;
		r->ncfg++;
		any = true;
		for (uint32_t k = 0; k < c.n; k++)
			if (!config_is_member(&was, c.m[k].id))
				repl_cfg_reset_peer(r, c.m[k].id);
	}
	if (any)
		changed(r);
}

void repl_cfg_cut(struct kvfs_repl *r, uint64_t after)
{
	size_t was = r->ncfg;

	while (r->ncfg > 0 && r->cfgs[r->ncfg - 1].index > after)
		r->ncfg--;
	if (r->ncfg != was)
		changed(r); /* reverted to an earlier one (Raft §4.1) */
}

void repl_cfg_compact(struct kvfs_repl *r, uint64_t upto)
{
	size_t k = 0;

	while (k < r->ncfg && r->cfgs[k].index <= upto)
		k++;
	if (k == 0)
		return;
	r->base_cfg = r->cfgs[k - 1].cfg;
	r->base_cfg_index = r->cfgs[k - 1].index;
	memmove(r->cfgs, r->cfgs + k, (r->ncfg - k) * sizeof(*r->cfgs));
	r->ncfg -= k;
}

int repl_cfg_init(struct kvfs_repl *r)
{
	if (r->last == r->base)
		return 0;
	if (repl_cfg_reserve(r, entry_at(r, r->base + 1), r->last - r->base) < 0)
		return -ENOMEM;
	repl_cfg_appended(r, r->base + 1);
	return 0;
}

/* ---- the interface ---- */

int repl_propose_config(struct kvfs_repl *r, const struct kvfs_config *next, const char *req,
                        uint64_t *index)
{
	const struct kvfs_config *cur = latest_cfg(r);
	size_t req_len = req ? strlen(req) : 0;
	uint8_t buf[KVFS_OP_HEADER_SIZE + 1 + 4 + 5 * KVFS_CONFIG_MAX + 4 + KVFS_CONFIG_REQ_MAX];
	int n;

	if (r->role != KVFS_REPL_LEADER)
		return -EROFS;
	if (latest_cfg_index(r) > r->commit)
		return -EBUSY; /* one uncommitted change at a time */
	if (!next || req_len > KVFS_CONFIG_REQ_MAX || config_one_step(cur, next) < 0 ||
	    !config_is_voter(next, r->id))
		return -EINVAL;
	n = config_entry_encode(next, req, buf, sizeof(buf));
	if (n < 0)
		return n;
	return repl_propose_entry(r, buf, (uint32_t)n, index);
}

const struct kvfs_config *repl_config(const struct kvfs_repl *r, uint64_t *index)
{
	if (index)
		*index = latest_cfg_index(r);
	return latest_cfg(r);
}

const struct kvfs_config *repl_config_at(const struct kvfs_repl *r, uint64_t index,
                                         uint64_t *set_at)
{
	if (index < r->base || index > r->last)
		return NULL;
	return repl_cfg_at(r, index, set_at);
}

const struct kvfs_config *repl_committed_config(const struct kvfs_repl *r, uint64_t *index)
{
	return repl_cfg_at(r, r->commit < r->last ? r->commit : r->last, index);
}

bool repl_config_pending(const struct kvfs_repl *r)
{
	return latest_cfg_index(r) > r->commit;
}
