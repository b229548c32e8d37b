/*
 * Leader election, the pure part (see election.h): parsing the znodes' names and data, ranking
 * the candidates, and deciding this node's next step from what it knows. The ZooKeeper binding
 * calls election_decide() after every change it sees, so every rule of the election lives here,
 * where a unit test can reach each case without a ZooKeeper.
 */
#include "kvfs/election.h"

#include "kvfs/score.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int election_parse_name(const char *name, struct kvfs_candidate *c)
{
	const char *dash = strstr(name, "-n_");
	size_t glen, len = strlen(name);
	uint64_t seq = 0;

	if (!dash || len >= sizeof(c->name))
		return -EINVAL;
	glen = (size_t)(dash - name);
	if (glen == 0 || glen > KVFS_GUID_LEN || strlen(dash + 3) != 10)
		return -EINVAL;
	for (size_t i = 0; i < glen; i++)
		if (!((name[i] >= '0' && name[i] <= '9') || (name[i] >= 'a' && name[i] <= 'f')))
			return -EINVAL;
	for (const char *p = dash + 3; *p; p++) {
		if (*p < '0' || *p > '9')
			return -EINVAL;
		seq = seq * 10 + (uint64_t)(*p - '0');
	}
	memcpy(c->name, name, len + 1);
	memcpy(c->guid, name, glen);
	c->guid[glen] = '\0';
	c->seq = seq;
	return 0;
}

int election_kv(const char *data, size_t len, const char *key, char *out, size_t size)
{
	size_t klen = strlen(key);
	size_t i = 0;

	while (i < len) {
		size_t start, end;

		while (i < len && (data[i] == ' ' || data[i] == '\n'))
			i++;
		start = i;
		while (i < len && data[i] != ' ' && data[i] != '\n')
			i++;
		end = i;
		if (end - start > klen && data[start + klen] == '=' &&
		    memcmp(data + start, key, klen) == 0) {
			size_t vlen = end - start - klen - 1;

			if (vlen + 1 > size)
				return -EINVAL;
			memcpy(out, data + start + klen + 1, vlen);
			out[vlen] = '\0';
			return 0;
		}
	}
	return -ENOENT;
}

/* The value of key as a decimal number no larger than max. */
static int kv_number(const char *data, size_t len, const char *key, uint64_t max, uint64_t *out)
{
	char buf[24], *end;
	unsigned long long v;

	if (election_kv(data, len, key, buf, sizeof(buf)) < 0 || buf[0] < '0' || buf[0] > '9')
		return -EINVAL;
	errno = 0;
	v = strtoull(buf, &end, 10);
	if (*end || errno || v > max)
		return -EINVAL;
	*out = v;
	return 0;
}

static bool zone_valid(const char *z)
{
	size_t n = strlen(z);

	if (n == 0 || n >= KVFS_ZONE_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((z[i] >= 'a' && z[i] <= 'z') || (z[i] >= 'A' && z[i] <= 'Z') ||
		      (z[i] >= '0' && z[i] <= '9') || z[i] == '.' || z[i] == '_' || z[i] == '-'))
			return false;
	return true;
}

/* An optional key: 0 if absent (*present false), or its value as a number no larger than max,
 * or -EINVAL. */
static int opt_number(const char *data, size_t len, const char *key, uint64_t max, bool *present,
                      uint64_t *out)
{
	char buf[2];

	*present = election_kv(data, len, key, buf, 1) != -ENOENT;
	return *present ? kv_number(data, len, key, max, out) : 0;
}

/* An optional 0/1 flag. */
static int opt_flag(const char *data, size_t len, const char *key, bool *known, bool *out)
{
	uint64_t v = 0;
	bool present;

	if (opt_number(data, len, key, 1, &present, &v) < 0)
		return -EINVAL;
	*known |= present;
	*out = v == 1;
	return 0;
}

/* The optional keys of the score's facts (election.h); absent ones get "unknown" values. */
static int parse_facts(const char *data, size_t len, struct kvfs_score_facts *f)
{
	char word[16];
	uint64_t rtt = UINT64_MAX, rtt_b = UINT32_MAX, lag_b = 255, rttvar = 0;
	bool has_rtt, has_rtt_b, has_rttvar, has_lag, known = false;
	int rv;

	memset(f, 0, sizeof(*f));
	rv = election_kv(data, len, "role", word, sizeof(word));
	if (rv == 0) {
		if (strcmp(word, "observer") != 0 && strcmp(word, "voter") != 0)
			return -EINVAL;
		f->observer = strcmp(word, "observer") == 0;
		known = true;
	} else if (rv != -ENOENT) {
		return -EINVAL;
	}
	rv = election_kv(data, len, "zone", f->zone, sizeof(f->zone));
	if (rv == 0 && !zone_valid(f->zone))
		return -EINVAL;
	if (rv != 0 && rv != -ENOENT)
		return -EINVAL;
	known |= rv == 0;
	rv = election_kv(data, len, "zpref", word, sizeof(word));
	if (rv == 0) {
		if (strcmp(word, "-1") != 0 && strcmp(word, "0") != 0 && strcmp(word, "1") != 0)
			return -EINVAL;
		f->zpref = (int8_t)(word[0] == '-' ? -1 : word[0] - '0');
		known = true;
	} else if (rv != -ENOENT) {
		return -EINVAL;
	}
	if (opt_number(data, len, "rtt_us", UINT64_MAX - 1, &has_rtt, &rtt) < 0 ||
	    opt_number(data, len, "rtt_b", UINT32_MAX - 1, &has_rtt_b, &rtt_b) < 0 ||
	    has_rtt != has_rtt_b ||
	    opt_number(data, len, "rttvar_us", KVFS_RTTVAR_MAX_US, &has_rttvar, &rttvar) < 0 ||
	    (has_rttvar && !has_rtt) || opt_number(data, len, "lag_b", 255, &has_lag, &lag_b) < 0 ||
	    opt_flag(data, len, "contact", &known, &f->contact) < 0 ||
	    opt_flag(data, len, "caught_up", &known, &f->caught_up) < 0 ||
	    opt_flag(data, len, "stable", &known, &f->stable) < 0)
		return -EINVAL;
	f->known = known || has_rtt || has_lag;
	f->rtt_us = rtt;
	f->rtt_b = (uint32_t)rtt_b;
	f->rttvar_us = rttvar;
	f->lag_b = (uint32_t)lag_b;
	return 0;
}

int election_parse_candidate(const char *data, size_t len, struct kvfs_candidate *c)
{
	struct kvfs_score_facts f;
	uint64_t id, prio;

	if (kv_number(data, len, "id", UINT32_MAX, &id) < 0 || id == 0 ||
	    kv_number(data, len, "priority", 1000, &prio) < 0 ||
	    election_kv(data, len, "addr", c->addr, sizeof(c->addr)) < 0 ||
	    parse_facts(data, len, &f) < 0)
		return -EINVAL;
	c->id = (uint32_t)id;
	c->priority = (uint32_t)prio;
	c->f = f;
	return 0;
}

int election_parse_leader(const char *data, size_t len, uint32_t *id, char *addr, uint64_t *epoch)
{
	uint64_t v;

	if (kv_number(data, len, "id", UINT32_MAX, &v) < 0 || v == 0 ||
	    kv_number(data, len, "epoch", KVFS_EPOCH_MAX, epoch) < 0 ||
	    election_kv(data, len, "addr", addr, KVFS_ADDR_MAX) < 0)
		return -EINVAL;
	*id = (uint32_t)v;
	return 0;
}

int election_parse_epoch(const char *data, size_t len, uint64_t *epoch)
{
	uint64_t v = 0;

	if (len == 0 || len > 20)
		return -EINVAL;
	for (size_t i = 0; i < len; i++) {
		if (data[i] < '0' || data[i] > '9')
			return -EINVAL;
		v = v * 10 + (uint64_t)(data[i] - '0');
		if (v > KVFS_EPOCH_MAX)
			return -EINVAL;
	}
	*epoch = v;
	return 0;
}

int election_parse_config(const char *data, size_t len, char *cluster_id, uint32_t *size)
{
	uint64_t v;

	if (kv_number(data, len, "size", 1000, &v) < 0 || v == 0 ||
	    election_kv(data, len, "cluster_id", cluster_id, 2 * KVFS_GUID_LEN + 1) < 0)
		return -EINVAL;
	*size = (uint32_t)v;
	return 0;
}

/* True if a ranks before b (a would lead rather than b). */
static bool ranks_before(enum kvfs_election_mode mode, const struct kvfs_candidate *a,
                         const struct kvfs_candidate *b)
{
	if (mode == KVFS_ELECTION_PRIORITY)
		return score_cmp(a, b) < 0;
	return a->seq < b->seq;
}

int election_rank(enum kvfs_election_mode mode, const struct kvfs_candidate *c, size_t n)
{
	int best = -1;

	for (size_t i = 0; i < n; i++) {
		if (c[i].priority == 0 || c[i].f.observer)
			continue;
		if (best < 0 || ranks_before(mode, &c[i], &c[best]))
			best = (int)i;
	}
	return best;
}

int election_predecessor(const struct kvfs_candidate *c, size_t n, uint64_t seq)
{
	int pred = -1;

	for (size_t i = 0; i < n; i++)
		if (c[i].seq < seq && (pred < 0 || c[i].seq > c[pred].seq))
			pred = (int)i;
	return pred;
}

/*
 * This node leads and `top` (not this node) should. Hard reasons hand over at once: this node
 * may no longer lead at all (priority 0, an observer, nobody may lead), or sequential mode (the
 * order there is the znodes' and does not change under a running leader except for these). A
 * better score waits for the hysteresis: beaten continuously for the hold-down, after the
 * minimum tenure, with a successor that has caught up.
 */
static bool leader_gives_way(const struct kvfs_election_view *v, int top)
{
	const struct kvfs_candidate *me = &v->cands[v->mine];

	if (top < 0 || me->priority == 0 || me->f.observer || v->mode == KVFS_ELECTION_SEQUENTIAL)
		return true;
	return election_challenged(v, top, NULL, 0) && v->better_waited_ms >= v->hold_down_ms &&
	       v->led_ms >= v->min_tenure_ms && v->successor_ready;
}

void election_decide(const struct kvfs_election_view *v, struct kvfs_election_decision *d)
{
	d->action = KVFS_ELECT_NONE;
	d->top = election_rank(v->mode, v->cands, v->n);
	d->watch = -1;
	if (v->mine < 0) {
		d->action = KVFS_ELECT_REJOIN;
		return;
	}
	/* Sequential mode: each candidate watches only the one just before it, so a deletion
	 * wakes one node, not all of them. Priority mode watches the children instead. */
	if (v->mode == KVFS_ELECTION_SEQUENTIAL && d->top != v->mine)
		d->watch = election_predecessor(v->cands, v->n, v->cands[v->mine].seq);

	if (d->top == v->mine) {
		if (v->leading)
			d->action = KVFS_ELECT_NONE;
		else if (!v->leader_exists)
			d->action = KVFS_ELECT_TAKE;
		else if (v->leader_mine)
			d->action = v->reconnected_late ? KVFS_ELECT_RETAKE : KVFS_ELECT_RESUME;
		else
			d->action = KVFS_ELECT_WAIT;
		return;
	}
	/* Someone else should lead. A running leader is not displaced at once: in priority mode
	 * the better newcomer must have caught up and waited out the hold-down, and then this
	 * leader hands over by deleting /leader. A leader that can no longer rank first for any
	 * other reason (its priority is 0 now, say) hands over at once. */
	if (v->leader_mine && !v->leading) {
		/* We hold /leader but do not act on it (a disconnection came between): there is
		 * nothing to hold down, let the one that should lead take over now. */
		d->action = KVFS_ELECT_HAND_OVER;
	} else if (v->leading) {
		d->action = leader_gives_way(v, d->top) ? KVFS_ELECT_HAND_OVER : KVFS_ELECT_NONE;
	}
}

const char *election_role(bool leading, bool leader_known)
{
	if (leading)
		return "leader";
	return leader_known ? "follower" : "candidate";
}

size_t election_format_candidate(char *buf, size_t size, uint32_t id, const char *addr,
                                 uint32_t priority, const struct kvfs_score_facts *f)
{
	char zone[KVFS_ZONE_MAX + 8] = "", rtt[96] = "";
	int zpref = f && f->zpref < 0 ? -1 : f && f->zpref > 0 ? 1 : 0, n;

	if (!f || !f->known)
		return (size_t)snprintf(buf, size, "id=%u addr=%s priority=%u", id, addr, priority);
	/* Only what election_parse_candidate accepts is written: an invalid zone is left out, the
	 * RTT only when both its figures are known, the lag bucket at most 255. */
	if (zone_valid(f->zone))
		snprintf(zone, sizeof(zone), " zone=%s", f->zone);
	if (f->rtt_us != UINT64_MAX && f->rtt_b != UINT32_MAX)
		snprintf(rtt, sizeof(rtt), " rtt_us=%llu rtt_b=%u rttvar_us=%llu",
		         (unsigned long long)f->rtt_us, f->rtt_b,
		         (unsigned long long)(f->rttvar_us > KVFS_RTTVAR_MAX_US ? KVFS_RTTVAR_MAX_US
		                                                                : f->rttvar_us));
	n = snprintf(buf, size,
	             "id=%u addr=%s priority=%u role=%s%s zpref=%d%s contact=%d caught_up=%d "
	             "stable=%d lag_b=%u",
	             id, addr, priority, f->observer ? "observer" : "voter", zone, zpref, rtt,
	             f->contact, f->caught_up, f->stable, f->lag_b > 255 ? 255 : f->lag_b);
	return n < 0 ? 0 : (size_t)n;
}

bool election_challenged(const struct kvfs_election_view *v, int top, char *why, size_t len)
{
	if (why && len > 0)
		why[0] = '\0';
	if (v->mode != KVFS_ELECTION_PRIORITY || top < 0 || v->mine < 0 || top == v->mine ||
	    (size_t)top >= v->n || (size_t)v->mine >= v->n)
		return false;
	return score_beats(&v->cands[top], &v->cands[v->mine], v->rtt_margin_pct, why, len);
}
