/*
 * Membership requests, the pure part (see kvfs/member_req.h): the text of a request znode and of
 * its result, strictly parsed (every byte is hostile: words "key=value" separated by one space,
 * known keys only, each once, decimal numbers without sign or excess), and the one-step
 * configuration a request asks the leader to propose next.
 */
#include "kvfs/member_req.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "kvfs/score.h"

/* Longest znode data read at all: a request with a full result fits in far less. */
#define DATA_MAX 1024u

static const char *const op_names[] = {
    [KVFS_MEMBER_ADD] = "add",
    [KVFS_MEMBER_REMOVE] = "remove",
    [KVFS_MEMBER_PROMOTE] = "promote",
    [KVFS_MEMBER_DEMOTE] = "demote",
};

static const char *const state_names[] = {
    [KVFS_MEMBER_PENDING] = "pending",
    [KVFS_MEMBER_WAITING] = "waiting",
    [KVFS_MEMBER_DONE] = "done",
    [KVFS_MEMBER_REFUSED] = "refused",
};

/* A decimal number of at most 20 digits, no sign, no leading zero, at most max. */
static int parse_u64(const char *s, size_t n, uint64_t max, uint64_t *out)
{
	uint64_t v = 0;

	if (n == 0 || n > 20 || (n > 1 && s[0] == '0'))
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		unsigned d;

		if (s[i] < '0' || s[i] > '9')
			return -EINVAL;
		d = (unsigned)(s[i] - '0');
		if (v > (UINT64_MAX - d) / 10)
			return -EINVAL;
		v = v * 10 + d;
	}
	if (v > max)
		return -EINVAL;
	*out = v;
	return 0;
}

/* Whether word w (n bytes) is "key=..."; *val and *vlen get the value. */
static bool is_key(const char *w, size_t n, const char *key, const char **val, size_t *vlen)
{
	size_t k = strlen(key);

	if (n <= k || w[k] != '=' || memcmp(w, key, k) != 0)
		return false;
	*val = w + k + 1;
	*vlen = n - k - 1;
	return true;
}

static bool value_is(const char *v, size_t n, const char *s)
{
	return n == strlen(s) && memcmp(v, s, n) == 0;
}

/* Where the result part starts in data: the word "state=..." (len if none). */
static size_t result_start(const char *data, size_t len)
{
	for (size_t i = 0; i + 6 <= len; i++)
		if ((i == 0 || data[i - 1] == ' ') && memcmp(data + i, "state=", 6) == 0)
			return i;
	return len;
}

/* Data must be printable ASCII, one line, words separated by exactly one space. */
static int check_text(const char *data, size_t len)
{
	if (len == 0 || len > DATA_MAX || data[0] == ' ' || data[len - 1] == ' ')
		return -EINVAL;
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)data[i] < 0x20 || (unsigned char)data[i] > 0x7e)
			return -EINVAL;
	return 0;
}

/* One word of a request into r; seen is a bitmask of keys already met. */
static int req_word(const char *w, size_t n, struct kvfs_member_req *r, unsigned *seen)
{
	const char *v;
	size_t vn;
	uint64_t num;
	unsigned bit;

	if (is_key(w, n, "op", &v, &vn)) {
		bit = 1;
		r->op = 0;
		for (int op = KVFS_MEMBER_ADD; op <= KVFS_MEMBER_DEMOTE; op++)
			if (value_is(v, vn, op_names[op]))
				r->op = (enum kvfs_member_op)op;
		if (!r->op)
			return -EINVAL;
	} else if (is_key(w, n, "id", &v, &vn)) {
		bit = 2;
		if (parse_u64(v, vn, KVFS_CONFIG_ID_MAX, &num) < 0 || num == 0)
			return -EINVAL;
		r->id = (uint32_t)num;
	} else if (is_key(w, n, "role", &v, &vn)) {
		bit = 4;
		if (value_is(v, vn, "voter"))
			r->role = KVFS_ROLE_VOTER;
		else if (value_is(v, vn, "observer"))
			r->role = KVFS_ROLE_OBSERVER;
		else
			return -EINVAL;
	} else if (is_key(w, n, "force", &v, &vn)) {
		bit = 8;
		if (!value_is(v, vn, "1") && !value_is(v, vn, "0"))
			return -EINVAL;
		r->force = v[0] == '1';
	} else {
		return -EINVAL;
	}
	if (*seen & bit)
		return -EINVAL;
	*seen |= bit;
	return 0;
}

int member_req_parse(const char *data, size_t len, struct kvfs_member_req *r)
{
	unsigned seen = 0;
	size_t end, i = 0;

	r->op = 0;
	r->id = 0;
	r->role = KVFS_ROLE_NONE;
	r->force = false;
	if (!data || check_text(data, len) < 0)
		return -EINVAL;
	end = result_start(data, len);
	if (end < len)
		end = end ? end - 1 : 0; /* the space before "state=" */
	while (i < end) {
		size_t j = i;

		while (j < end && data[j] != ' ')
			j++;
		if (j == i || req_word(data + i, j - i, r, &seen) < 0)
			return -EINVAL;
		i = j + 1;
	}
	if ((seen & 3) != 3)
		return -EINVAL;
	/* role belongs to add alone, where it defaults to voter */
	if (r->op == KVFS_MEMBER_ADD && !(seen & 4))
		r->role = KVFS_ROLE_VOTER;
	else if (r->op != KVFS_MEMBER_ADD && (seen & 4))
		return -EINVAL;
	return 0;
}

size_t member_req_format(const struct kvfs_member_req *r, char *buf, size_t size)
{
	const char *op =
	    r->op >= KVFS_MEMBER_ADD && r->op <= KVFS_MEMBER_DEMOTE ? op_names[r->op] : "?";
	int n;

	if (r->op == KVFS_MEMBER_ADD)
		n = snprintf(buf, size, "op=%s id=%u role=%s%s", op, r->id,
		             r->role == KVFS_ROLE_OBSERVER ? "observer" : "voter",
		             r->force ? " force=1" : "");
	else
		n = snprintf(buf, size, "op=%s id=%u%s", op, r->id, r->force ? " force=1" : "");
	return n < 0 ? 0 : (size_t)n;
}

/* "index=I voters=... [observers=...]" of a done result (s: n bytes after "state=done "). */
static int parse_done(const char *s, size_t n, struct kvfs_member_result *res)
{
	char text[KVFS_CONFIG_TEXT_MAX];
	const char *v;
	size_t vn, sp = 0;

	while (sp < n && s[sp] != ' ')
		sp++;
	if (!is_key(s, sp, "index", &v, &vn) || parse_u64(v, vn, UINT64_MAX, &res->index) < 0 ||
	    res->index == 0 || sp >= n || n - sp - 1 >= sizeof(text))
		return -EINVAL;
	memcpy(text, s + sp + 1, n - sp - 1);
	text[n - sp - 1] = '\0';
	if (config_parse(text, &res->cfg, NULL, 0) < 0 || config_check(&res->cfg) < 0)
		return -EINVAL;
	/* config_parse takes any order: only the canonical form is accepted back */
	{
		char canon[KVFS_CONFIG_TEXT_MAX];

		if (config_format(&res->cfg, canon, sizeof(canon)) < 0 || strcmp(canon, text) != 0)
			return -EINVAL;
	}
	return 0;
}

int member_result_parse(const char *data, size_t len, struct kvfs_member_result *res)
{
	const char *s, *v = NULL;
	size_t start, n, sp = 0, vn = 0;

	memset(res, 0, sizeof(*res));
	res->state = KVFS_MEMBER_PENDING;
	if (!data || check_text(data, len) < 0)
		return -EINVAL;
	start = result_start(data, len);
	if (start == len)
		return 0;
	s = data + start;
	n = len - start;
	while (sp < n && s[sp] != ' ')
		sp++;
	is_key(s, sp, "state", &v, &vn);
	if (value_is(v, vn, "done")) {
		res->state = KVFS_MEMBER_DONE;
		return sp < n ? parse_done(s + sp + 1, n - sp - 1, res) : -EINVAL;
	}
	if (value_is(v, vn, "waiting"))
		res->state = KVFS_MEMBER_WAITING;
	else if (value_is(v, vn, "refused"))
		res->state = KVFS_MEMBER_REFUSED;
	else
		return -EINVAL;
	/* "why=" and the rest of the line, free text */
	if (sp == n)
		return 0;
	s += sp + 1;
	n -= sp + 1;
	if (!is_key(s, n, "why", &v, &vn) || vn >= sizeof(res->why))
		return -EINVAL;
	memcpy(res->why, v, vn);
	res->why[vn] = '\0';
	return 0;
}

/* why with anything outside printable ASCII made a space, trimmed, cut to fit. */
static void clean_why(const char *in, char *out, size_t size)
{
	size_t n = 0;

	for (size_t i = 0; in[i] && n + 1 < size; i++) {
		unsigned char ch = (unsigned char)in[i];

		if (ch < 0x20 || ch > 0x7e)
			ch = ' ';
		if (ch == ' ' && (n == 0 || out[n - 1] == ' '))
			continue;
		out[n++] = (char)ch;
	}
	while (n > 0 && out[n - 1] == ' ')
		n--;
	out[n] = '\0';
}

size_t member_result_format(const struct kvfs_member_req *r, const struct kvfs_member_result *res,
                            char *buf, size_t size)
{
	size_t n = member_req_format(r, buf, size);
	char text[KVFS_CONFIG_TEXT_MAX], why[KVFS_MEMBER_WHY_MAX];
	const char *st = res->state <= KVFS_MEMBER_REFUSED ? state_names[res->state] : "refused";
	int m;

	if (res->state == KVFS_MEMBER_PENDING)
		return n;
	if (res->state == KVFS_MEMBER_DONE) {
		if (config_format(&res->cfg, text, sizeof(text)) < 0)
			text[0] = '\0';
		m = snprintf(n < size ? buf + n : NULL, n < size ? size - n : 0,
		             " state=done index=%llu %s", (unsigned long long)res->index, text);
	} else {
		clean_why(res->why, why, sizeof(why));
		m = snprintf(n < size ? buf + n : NULL, n < size ? size - n : 0, " state=%s%s%s",
		             st, why[0] ? " why=" : "", why);
	}
	return n + (m < 0 ? 0 : (size_t)m);
}

static int say(char *why, size_t len, int rv, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int say(char *why, size_t len, int rv, const char *fmt, ...)
{
	va_list ap;

	if (why && len) {
		va_start(ap, fmt);
		vsnprintf(why, len, fmt, ap);
		va_end(ap);
	}
	return rv;
}

/* next = cur with r->id in role; 0, or -EINVAL with why. */
static int step(const struct kvfs_config *cur, uint32_t id, enum kvfs_config_role role,
                struct kvfs_config *next, char *why, size_t len)
{
	*next = *cur;
	if (config_set_role(next, id, role) < 0 || config_one_step(cur, next) < 0)
		return say(why, len, -EINVAL,
		           "the configuration has no room for node %u (%u members at most)", id,
		           KVFS_CONFIG_MAX);
	return 0;
}

static int next_add(const struct kvfs_config *cur, const struct kvfs_member_req *r, bool caught_up,
                    struct kvfs_config *next, char *why, size_t len)
{
	enum kvfs_config_role now = config_role(cur, r->id);

	if (r->role == KVFS_ROLE_OBSERVER) {
		if (now == KVFS_ROLE_OBSERVER)
			return say(why, len, 1, "node %u is an observer already", r->id);
		if (now == KVFS_ROLE_VOTER)
			return say(why, len, -EINVAL,
			           "node %u is a voter already; demote it to make it an observer",
			           r->id);
		return step(cur, r->id, KVFS_ROLE_OBSERVER, next, why, len);
	}
	if (now == KVFS_ROLE_VOTER)
		return say(why, len, 1, "node %u is a voter already", r->id);
	if (now == KVFS_ROLE_NONE) /* first as an observer, to catch up without counting */
		return step(cur, r->id, KVFS_ROLE_OBSERVER, next, why, len);
	if (!caught_up)
		return say(why, len, -EAGAIN,
		           "node %u is catching up as an observer (more than %u entries behind the "
		           "commit index)",
		           r->id, KVFS_CAUGHT_UP_ENTRIES);
	return step(cur, r->id, KVFS_ROLE_VOTER, next, why, len);
}

static int next_remove(const struct kvfs_config *cur, const struct kvfs_member_req *r,
                       uint32_t leader_id, struct kvfs_config *next, char *why, size_t len)
{
	enum kvfs_config_role now = config_role(cur, r->id);

	if (now == KVFS_ROLE_NONE)
		return say(why, len, 1, "node %u is not a member", r->id);
	if (now == KVFS_ROLE_VOTER && config_voters(cur) == 1)
		return say(why, len, -EINVAL, "node %u is the last voter", r->id);
	if (r->id == leader_id)
		return say(why, len, -EXDEV, "node %u leads: it hands the lead over first", r->id);
	return step(cur, r->id, KVFS_ROLE_NONE, next, why, len);
}

static int next_promote(const struct kvfs_config *cur, const struct kvfs_member_req *r,
                        bool caught_up, struct kvfs_config *next, char *why, size_t len)
{
	enum kvfs_config_role now = config_role(cur, r->id);

	if (now == KVFS_ROLE_NONE)
		return say(why, len, -EINVAL,
		           "node %u is not a member; add it with: kvfs member add %u", r->id,
		           r->id);
	if (now == KVFS_ROLE_VOTER)
		return say(why, len, 1, "node %u is a voter already", r->id);
	if (!caught_up)
		return say(
		    why, len, -EAGAIN,
		    "node %u has not caught up (more than %u entries behind the commit index)",
		    r->id, KVFS_CAUGHT_UP_ENTRIES);
	return step(cur, r->id, KVFS_ROLE_VOTER, next, why, len);
}

static int next_demote(const struct kvfs_config *cur, const struct kvfs_member_req *r,
                       uint32_t leader_id, struct kvfs_config *next, char *why, size_t len)
{
	enum kvfs_config_role now = config_role(cur, r->id);

	if (now == KVFS_ROLE_NONE)
		return say(why, len, -EINVAL, "node %u is not a member", r->id);
	if (now == KVFS_ROLE_OBSERVER)
		return say(why, len, 1, "node %u is an observer already", r->id);
	if (config_voters(cur) == 1)
		return say(why, len, -EINVAL, "node %u is the last voter", r->id);
	if (r->id == leader_id)
		return say(why, len, -EXDEV, "node %u leads: it hands the lead over first", r->id);
	return step(cur, r->id, KVFS_ROLE_OBSERVER, next, why, len);
}

int member_req_next(const struct kvfs_config *cur, const struct kvfs_member_req *r,
                    uint32_t leader_id, bool caught_up, struct kvfs_config *next, char *why,
                    size_t len)
{
	if (why && len)
		why[0] = '\0';
	*next = *cur;
	if (config_check(cur) < 0)
		return say(why, len, -EINVAL, "the configuration in force is malformed");
	if (r->id == 0 || r->id > KVFS_CONFIG_ID_MAX)
		return say(why, len, -EINVAL, "node ids are 1..%u", KVFS_CONFIG_ID_MAX);
	switch (r->op) {
	case KVFS_MEMBER_ADD:
		if (r->role != KVFS_ROLE_VOTER && r->role != KVFS_ROLE_OBSERVER)
			return say(why, len, -EINVAL, "role must be voter or observer");
		return next_add(cur, r, caught_up, next, why, len);
	case KVFS_MEMBER_REMOVE:
		return next_remove(cur, r, leader_id, next, why, len);
	case KVFS_MEMBER_PROMOTE:
		return next_promote(cur, r, caught_up, next, why, len);
	case KVFS_MEMBER_DEMOTE:
		return next_demote(cur, r, leader_id, next, why, len);
	}
	return say(why, len, -EINVAL, "unknown operation (add, remove, promote or demote)");
}
