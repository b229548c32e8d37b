/*
 * Status rendering for /.status and /.status.json (see status.h). Both renderers walk the same
 * list of facts in the same order, so the two files cannot drift apart: a fact added to
 * kvfs_status shows up in both or in neither.
 */
#include "kvfs/status.h"
#include "kvfs/textout.h"

#include <stdio.h>

/* Appends s as a JSON string body: quotes, backslashes and control characters escaped. */
static void out_json_str(struct kvfs_out *o, const char *s)
{
	kvfs_out_printf(o, "\"");
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\')
			kvfs_out_printf(o, "\\%c", c);
		else if (c < 0x20)
			kvfs_out_printf(o, "\\u%04x", c);
		else
			kvfs_out_printf(o, "%c", c);
	}
	kvfs_out_printf(o, "\"");
}

enum fact_kind { FACT_STR, FACT_U64, FACT_LEADER, FACT_LAG, FACT_MS };

/* Microseconds as milliseconds with two decimals ("0.41"); -1 for UINT64_MAX (unknown). */
static void out_ms(struct kvfs_out *o, uint64_t us, const char *unknown)
{
	if (us == UINT64_MAX)
		kvfs_out_printf(o, "%s", unknown);
	else
		kvfs_out_printf(o, "%llu.%02llu", (unsigned long long)(us / 1000),
		                (unsigned long long)(us % 1000 / 10));
}

/* A count, or `unknown` for the value that means it is not known. */
static void out_known(struct kvfs_out *o, uint64_t v, uint64_t none, const char *unknown)
{
	if (v == none)
		kvfs_out_printf(o, "%s", unknown);
	else
		kvfs_out_printf(o, "%llu", (unsigned long long)v);
}

struct fact {
	const char *key;
	enum fact_kind kind;
	const char *s;
	uint64_t u;
};

/* The facts in contract order (DESIGN §1), then the extra ones. */
static size_t facts_of(const struct kvfs_status *st, struct fact *f)
{
	size_t n = 0;

#define STR(k, v) f[n++] = (struct fact){.key = (k), .kind = FACT_STR, .s = (v) ? (v) : "none"}
#define U64(k, v)                                                                                  \
	f[n++] = (struct fact)                                                                     \
	{                                                                                          \
		.key = (k), .kind = FACT_U64, .u = (v)                                             \
	}
	U64("node", st->node);
	STR("role", st->role);
	f[n++] = (struct fact){.key = "leader", .kind = FACT_LEADER, .u = st->leader};
	STR("leader_addr", st->leader_addr[0] ? st->leader_addr : "none");
	U64("epoch", st->epoch);
	STR("zk", st->zk);
	STR("election", st->election);
	U64("priority", st->priority);
	U64("commit_index", st->commit_index);
	U64("applied_index", st->applied_index);
	f[n++] = (struct fact){.key = "lag_entries", .kind = FACT_LAG, .u = st->lag_entries,
	                       .s = st->catching_up || st->lag_unknown ? "" : NULL};
	f[n++] = (struct fact){.key = "lag_ms", .kind = FACT_LAG, .u = st->lag_ms,
	                       .s = st->catching_up || st->lag_unknown ? "" : NULL};
	STR("catching_up", st->catching_up ? "yes" : "no");
	STR("peer_security", st->peer_security);
	STR("zk_auth", st->zk_auth);
	U64("keys", st->keys);
	U64("value_bytes", st->value_bytes);
	U64("log_bytes", st->log_bytes);
	U64("snapshot_index", st->snapshot_index);
	STR("rejoining", st->rejoining ? "yes" : "no");
	STR("writable", st->writable ? "yes" : "no");
	STR("writable_reason", st->writable ? "none" : st->writable_reason);
	if (st->has_quorum_rtt)
		f[n++] = (struct fact){.key = "quorum_rtt_ms", .kind = FACT_MS, .u = st->quorum_rtt_us};
	if (st->member_role) {
		STR("member_role", st->member_role);
		U64("config_index", st->config_index);
		STR("voters", st->voters[0] ? st->voters : "none");
		STR("observers", st->observers[0] ? st->observers : "none");
	}
#undef STR
#undef U64
	return n;
}

#define MAX_FACTS 32

/* "member: 2 rtt_ms=0.42 rttvar_ms=0.05 heard_ms=30", one per other member. */
static void render_members_text(struct kvfs_out *o, const struct kvfs_status *st)
{
	for (unsigned i = 0; i < st->nmembers && i < KVFS_STATUS_MAX_PEERS; i++) {
		const struct kvfs_status_member *m = &st->members[i];

		kvfs_out_printf(o, "member: %u rtt_ms=", m->id);
		out_ms(o, m->measured ? m->srtt_us : UINT64_MAX, "-1");
		kvfs_out_printf(o, " rttvar_ms=");
		out_ms(o, m->measured ? m->rttvar_us : UINT64_MAX, "-1");
		kvfs_out_printf(o, " heard_ms=");
		out_known(o, m->heard_ms_ago, UINT64_MAX, "-1");
		kvfs_out_printf(o, "\n");
	}
}

/* "score: 2 rank=1 eligible=yes priority=1 quorum_rtt_ms=0.40 rtt_b=0 lag_b=0 zone=a
 * leader=yes beats_leader_ms=0 why=-", one per candidate, the why last (it has spaces). */
static void render_scores_text(struct kvfs_out *o, const struct kvfs_status *st)
{
	for (unsigned i = 0; i < st->nscores && i < KVFS_STATUS_MAX_PEERS; i++) {
		const struct kvfs_status_score *s = &st->scores[i];

		kvfs_out_printf(o, "score: %u rank=%u eligible=%s priority=%u quorum_rtt_ms=", s->id,
		                s->rank, s->eligible ? "yes" : "no", s->priority);
		out_ms(o, s->quorum_rtt_us, "-1");
		kvfs_out_printf(o, " rtt_b=");
		out_known(o, s->rtt_b, UINT32_MAX, "-1");
		kvfs_out_printf(o, " lag_b=");
		out_known(o, s->lag_b, UINT32_MAX, "-1");
		kvfs_out_printf(o, " zone=%s leader=%s beats_leader_ms=%llu why=%s\n",
		                s->zone[0] ? s->zone : "-", s->leader ? "yes" : "no",
		                (unsigned long long)s->beats_leader_ms,
		                s->eligible || !s->why[0] ? "-" : s->why);
	}
}

static void render_members_json(struct kvfs_out *o, const struct kvfs_status *st)
{
	if (!st->nmembers)
		return;
	kvfs_out_printf(o, ", \"members\": [");
	for (unsigned i = 0; i < st->nmembers && i < KVFS_STATUS_MAX_PEERS; i++) {
		const struct kvfs_status_member *m = &st->members[i];

		kvfs_out_printf(o, "%s{\"id\": %u, \"rtt_ms\": ", i ? ", " : "", m->id);
		out_ms(o, m->measured ? m->srtt_us : UINT64_MAX, "null");
		kvfs_out_printf(o, ", \"rttvar_ms\": ");
		out_ms(o, m->measured ? m->rttvar_us : UINT64_MAX, "null");
		kvfs_out_printf(o, ", \"heard_ms\": ");
		out_known(o, m->heard_ms_ago, UINT64_MAX, "null");
		kvfs_out_printf(o, "}");
	}
	kvfs_out_printf(o, "]");
}

static void render_scores_json(struct kvfs_out *o, const struct kvfs_status *st)
{
	if (!st->nscores)
		return;
	kvfs_out_printf(o, ", \"scores\": [");
	for (unsigned i = 0; i < st->nscores && i < KVFS_STATUS_MAX_PEERS; i++) {
		const struct kvfs_status_score *s = &st->scores[i];

		kvfs_out_printf(o,
		                "%s{\"id\": %u, \"rank\": %u, \"eligible\": \"%s\", "
		                "\"priority\": %u, \"quorum_rtt_ms\": ",
		                i ? ", " : "", s->id, s->rank, s->eligible ? "yes" : "no",
		                s->priority);
		out_ms(o, s->quorum_rtt_us, "null");
		kvfs_out_printf(o, ", \"rtt_b\": ");
		out_known(o, s->rtt_b, UINT32_MAX, "null");
		kvfs_out_printf(o, ", \"lag_b\": ");
		out_known(o, s->lag_b, UINT32_MAX, "null");
		kvfs_out_printf(o, ", \"zone\": ");
		if (s->zone[0])
			out_json_str(o, s->zone);
		else
			kvfs_out_printf(o, "null");
		kvfs_out_printf(o, ", \"leader\": \"%s\", \"beats_leader_ms\": %llu, \"why\": ",
		                s->leader ? "yes" : "no", (unsigned long long)s->beats_leader_ms);
		if (s->eligible || !s->why[0])
			kvfs_out_printf(o, "null");
		else
			out_json_str(o, s->why);
		kvfs_out_printf(o, "}");
	}
	kvfs_out_printf(o, "]");
}

size_t status_render_text(const struct kvfs_status *st, char *buf, size_t size)
{
	struct kvfs_out o = {.buf = buf, .size = size};
	struct fact f[MAX_FACTS];
	size_t n = facts_of(st, f);

	if (size)
		buf[0] = '\0';
	for (size_t i = 0; i < n; i++) {
		if (f[i].kind == FACT_STR)
			kvfs_out_printf(&o, "%s: %s\n", f[i].key, f[i].s);
		else if (f[i].kind == FACT_LEADER && f[i].u == 0)
			kvfs_out_printf(&o, "%s: none\n", f[i].key);
		else if (f[i].kind == FACT_LAG && f[i].s)
			kvfs_out_printf(&o, "%s: -1\n", f[i].key);
		else if (f[i].kind == FACT_MS) {
			kvfs_out_printf(&o, "%s: ", f[i].key);
			out_ms(&o, f[i].u, "-1");
			kvfs_out_printf(&o, "\n");
		} else
			kvfs_out_printf(&o, "%s: %llu\n", f[i].key, (unsigned long long)f[i].u);
	}
	for (unsigned i = 0; i < st->npeers && i < KVFS_STATUS_MAX_PEERS; i++) {
		const struct kvfs_status_peer *p = &st->peers[i];

		kvfs_out_printf(&o, "peer: %u %s %s match=%llu ", p->id, p->addr[0] ? p->addr : "none",
		           p->role ? p->role : "unknown", (unsigned long long)p->match);
		if (p->lag_unknown)
			kvfs_out_printf(&o, "lag_entries=-1 lag_ms=-1\n");
		else
			kvfs_out_printf(&o, "lag_entries=%llu lag_ms=%llu\n",
			           (unsigned long long)p->lag_entries, (unsigned long long)p->lag_ms);
	}
	render_members_text(&o, st);
	render_scores_text(&o, st);
	if (st->has_changes)
		kvfs_out_printf(&o, "changes_first: %llu\nchanges_last: %llu\n",
		                (unsigned long long)st->changes_first,
		                (unsigned long long)st->changes_last);
	return o.len;
}

size_t status_render_json(const struct kvfs_status *st, char *buf, size_t size)
{
	struct kvfs_out o = {.buf = buf, .size = size};
	struct fact f[MAX_FACTS];
	size_t n = facts_of(st, f);

	if (size)
		buf[0] = '\0';
	kvfs_out_printf(&o, "{");
	for (size_t i = 0; i < n; i++) {
		kvfs_out_printf(&o, "%s\"%s\": ", i ? ", " : "", f[i].key);
		if (f[i].kind == FACT_STR)
			out_json_str(&o, f[i].s);
		else if (f[i].kind == FACT_LEADER && f[i].u == 0)
			kvfs_out_printf(&o, "null");
		else if (f[i].kind == FACT_LAG && f[i].s)
			kvfs_out_printf(&o, "-1");
		else if (f[i].kind == FACT_MS)
			out_ms(&o, f[i].u, "null");
		else
			kvfs_out_printf(&o, "%llu", (unsigned long long)f[i].u);
	}
	kvfs_out_printf(&o, ", \"peers\": [");
	for (unsigned i = 0; i < st->npeers && i < KVFS_STATUS_MAX_PEERS; i++) {
		const struct kvfs_status_peer *p = &st->peers[i];

		kvfs_out_printf(&o, "%s{\"id\": %u, \"addr\": ", i ? ", " : "", p->id);
		out_json_str(&o, p->addr[0] ? p->addr : "none");
		kvfs_out_printf(&o, ", \"role\": ");
		out_json_str(&o, p->role ? p->role : "unknown");
		kvfs_out_printf(&o, ", \"match\": %llu, ", (unsigned long long)p->match);
		if (p->lag_unknown)
			kvfs_out_printf(&o, "\"lag_entries\": -1, \"lag_ms\": -1}");
		else
			kvfs_out_printf(&o, "\"lag_entries\": %llu, \"lag_ms\": %llu}",
			           (unsigned long long)p->lag_entries, (unsigned long long)p->lag_ms);
	}
	kvfs_out_printf(&o, "]");
	render_members_json(&o, st);
	render_scores_json(&o, st);
	if (st->has_changes)
		kvfs_out_printf(&o, ", \"changes_first\": %llu, \"changes_last\": %llu",
		                (unsigned long long)st->changes_first,
		                (unsigned long long)st->changes_last);
	kvfs_out_printf(&o, "}\n");
	return o.len;
}
