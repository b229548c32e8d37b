/*
 * The cluster configuration (see kvfs/config.h): a sorted member list, its codec as a log entry
 * and as bitmaps, the one majority test, the one-step rule, and its text form.
 */
#include "kvfs/config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "kvfs/op.h"
#include "kvfs/wire.h"

int config_bootstrap(struct kvfs_config *c, uint32_t n)
{
	c->n = 0;
	if (n == 0 || n > KVFS_CONFIG_MAX)
		return -EINVAL;
	for (uint32_t i = 0; i < n; i++)
		c->m[i] = (struct kvfs_config_member){.id = i + 1, .role = KVFS_ROLE_VOTER};
	c->n = n;
	return 0;
}

int config_check(const struct kvfs_config *c)
{
	uint32_t prev = 0;

	if (c->n > KVFS_CONFIG_MAX || config_voters(c) == 0)
		return -EINVAL;
	for (uint32_t i = 0; i < c->n; i++) {
		if (c->m[i].id <= prev || c->m[i].id > KVFS_CONFIG_ID_MAX ||
		    (c->m[i].role != KVFS_ROLE_VOTER && c->m[i].role != KVFS_ROLE_OBSERVER))
			return -EINVAL;
		prev = c->m[i].id;
	}
	return 0;
}

enum kvfs_config_role config_role(const struct kvfs_config *c, uint32_t id)
{
	for (uint32_t i = 0; i < c->n && i < KVFS_CONFIG_MAX; i++)
		if (c->m[i].id == id)
			return (enum kvfs_config_role)c->m[i].role;
	return KVFS_ROLE_NONE;
}

bool config_is_voter(const struct kvfs_config *c, uint32_t id)
{
	return config_role(c, id) == KVFS_ROLE_VOTER;
}

bool config_is_member(const struct kvfs_config *c, uint32_t id)
{
	return config_role(c, id) != KVFS_ROLE_NONE;
}

uint32_t config_voters(const struct kvfs_config *c)
{
	uint32_t v = 0;

	for (uint32_t i = 0; i < c->n && i < KVFS_CONFIG_MAX; i++)
		v += c->m[i].role == KVFS_ROLE_VOTER;
	return v;
}

bool config_equal(const struct kvfs_config *a, const struct kvfs_config *b)
{
	if (a->n != b->n)
		return false;
	for (uint32_t i = 0; i < a->n && i < KVFS_CONFIG_MAX; i++)
		if (a->m[i].id != b->m[i].id || a->m[i].role != b->m[i].role)
			return false;
	return true;
}

bool config_quorum(const struct kvfs_config *c, const bool *have)
{
	uint32_t count = 0, voters = 0;

	for (uint32_t i = 0; i < c->n && i < KVFS_CONFIG_MAX; i++) {
		if (c->m[i].role != KVFS_ROLE_VOTER)
			continue;
		voters++;
		if (c->m[i].id <= KVFS_CONFIG_ID_MAX && have[c->m[i].id])
			count++;
	}
	return 2 * (uint64_t)count > voters;
}

int config_one_step(const struct kvfs_config *cur, const struct kvfs_config *next)
{
	uint32_t changed = 0, vc = 0, vn = 0;

	if (config_check(cur) < 0 || config_check(next) < 0)
		return -EINVAL;
	for (uint32_t id = 1; id <= KVFS_CONFIG_ID_MAX; id++) {
		enum kvfs_config_role a = config_role(cur, id), b = config_role(next, id);

		changed += a != b;
		vc += a == KVFS_ROLE_VOTER;
		vn += b == KVFS_ROLE_VOTER;
	}
	/* One member changes role; voters move by at most one (voter <-> none or observer). */
	if (changed != 1 || vc > vn + 1 || vn > vc + 1)
		return -EINVAL;
	return 0;
}

int config_set_role(struct kvfs_config *c, uint32_t id, enum kvfs_config_role role)
{
	uint32_t i = 0;

	if (id == 0 || id > KVFS_CONFIG_ID_MAX || role > KVFS_ROLE_OBSERVER ||
	    c->n > KVFS_CONFIG_MAX)
		return -EINVAL;
	while (i < c->n && c->m[i].id < id)
		i++;
	if (i < c->n && c->m[i].id == id) {
		if (role != KVFS_ROLE_NONE) {
			c->m[i].role = (uint8_t)role;
		} else {
			memmove(&c->m[i], &c->m[i + 1], (c->n - i - 1) * sizeof(c->m[0]));
			c->n--;
		}
		return 0;
	}
	if (role == KVFS_ROLE_NONE)
		return 0;
	if (c->n == KVFS_CONFIG_MAX)
		return -ENOSPC;
	memmove(&c->m[i + 1], &c->m[i], (c->n - i) * sizeof(c->m[0]));
	c->m[i] = (struct kvfs_config_member){.id = id, .role = (uint8_t)role};
	c->n++;
	return 0;
}

/* ---- the log entry ---- */

size_t config_entry_size(const struct kvfs_config *c, size_t req_len)
{
	return KVFS_OP_HEADER_SIZE + 1 + 4 + 5 * (size_t)c->n + 4 + req_len;
}

int config_entry_encode(const struct kvfs_config *c, const char *req, uint8_t *buf, size_t len)
{
	size_t req_len = req ? strlen(req) : 0;
	struct kvfs_wcur w = {buf};

	if (config_check(c) < 0 || req_len > KVFS_CONFIG_REQ_MAX)
		return -EINVAL;
	if (len < config_entry_size(c, req_len))
		return -ENOBUFS;
	wire_put_u8(&w, KVFS_OP_CONFIG);
	wire_put_u32(&w, 0); /* flags */
	wire_put_u32(&w, 0); /* origin */
	wire_put_u64(&w, 0); /* seq */
	wire_put_u64(&w, 0); /* time_ns */
	wire_put_u64(&w, 0); /* max_value */
	wire_put_u8(&w, KVFS_CONFIG_VERSION);
	wire_put_u32(&w, c->n);
	for (uint32_t i = 0; i < c->n; i++) {
		wire_put_u32(&w, c->m[i].id);
		wire_put_u8(&w, c->m[i].role);
	}
	wire_put_bytes(&w, req, (uint32_t)req_len);
	return (int)wire_done(&w, buf);
}

int config_body_decode(const uint8_t *body, size_t body_len, struct kvfs_config *c, char *req)
{
	struct kvfs_rcur r = {body, body_len, true};
	const uint8_t *b;
	uint32_t count, req_len;

	if (wire_get_u8(&r) != KVFS_CONFIG_VERSION)
		return -EBADMSG;
	count = wire_get_u32(&r);
	if (!r.ok || count > KVFS_CONFIG_MAX)
		return -EBADMSG;
	c->n = count;
	for (uint32_t i = 0; i < count; i++) {
		c->m[i].id = wire_get_u32(&r);
		c->m[i].role = wire_get_u8(&r);
	}
	wire_get_bytes(&r, &b, &req_len, KVFS_CONFIG_REQ_MAX);
	if (!r.ok || r.left != 0 || config_check(c) < 0) {
		c->n = 0;
		return -EBADMSG;
	}
	if (req) {
		if (req_len)
			memcpy(req, b, req_len);
		req[req_len] = '\0';
	}
	return 0;
}

int config_entry_decode(const uint8_t *data, size_t len, struct kvfs_config *c, char *req)
{
	if (!data || len < KVFS_OP_HEADER_SIZE || data[0] != KVFS_OP_CONFIG)
		return -ENOENT;
	return config_body_decode(data + KVFS_OP_HEADER_SIZE, len - KVFS_OP_HEADER_SIZE, c, req);
}

int config_from_op(const struct kvfs_op *op, struct kvfs_config *c)
{
	uint8_t body[1 + 4 + 5 * KVFS_CONFIG_MAX + 4];

	c->n = 0;
	if (op->type != KVFS_OP_CONFIG || op->data_len > sizeof(body) - 4 ||
	    (op->data_len && !op->data))
		return -EBADMSG;
	/* The members, then an empty request: the request name is not the store's business. */
	if (op->data_len)
		memcpy(body, op->data, op->data_len);
	memset(body + op->data_len, 0, 4);
	return config_body_decode(body, op->data_len + 4, c, NULL);
}

/* ---- bitmaps ---- */

void config_to_bits(const struct kvfs_config *c, struct kvfs_config_bits *b)
{
	memset(b, 0, sizeof(*b));
	for (uint32_t i = 0; i < c->n && i < KVFS_CONFIG_MAX; i++) {
		uint32_t id = c->m[i].id;

		if (id == 0 || id > KVFS_CONFIG_ID_MAX)
			continue;
		b->members[id / 8] |= (uint8_t)(1u << (id % 8));
		if (c->m[i].role == KVFS_ROLE_VOTER)
			b->voters[id / 8] |= (uint8_t)(1u << (id % 8));
	}
}

int config_from_bits(const struct kvfs_config_bits *b, struct kvfs_config *c)
{
	c->n = 0;
	if ((b->members[0] & 1) != 0)
		return -EINVAL;
	for (uint32_t id = 1; id <= KVFS_CONFIG_ID_MAX; id++) {
		bool member = b->members[id / 8] >> (id % 8) & 1;
		bool voter = b->voters[id / 8] >> (id % 8) & 1;

		if (voter && !member)
			goto bad;
		if (!member)
			continue;
		if (c->n == KVFS_CONFIG_MAX)
			goto bad;
		c->m[c->n++] = (struct kvfs_config_member){
		    .id = id, .role = voter ? KVFS_ROLE_VOTER : KVFS_ROLE_OBSERVER};
	}
	if ((b->voters[0] & 1) != 0 || config_voters(c) == 0)
		goto bad;
	return 0;
bad:
	c->n = 0;
	return -EINVAL;
}

/* ---- text ---- */

static int format_role(const struct kvfs_config *c, uint8_t role, char *buf, size_t len, size_t *at)
{
	bool first = true;

	for (uint32_t i = 0; i < c->n && i < KVFS_CONFIG_MAX; i++) {
		int k;

		if (c->m[i].role != role)
			continue;
		k = snprintf(buf + *at, len - *at, "%s%u", first ? "" : ",", (unsigned)c->m[i].id);
		if (k < 0 || (size_t)k >= len - *at)
			return -ENOBUFS;
		*at += (size_t)k;
		first = false;
	}
	return 0;
}

int config_format(const struct kvfs_config *c, char *buf, size_t len)
{
	size_t at = 0;
	int k;

	k = snprintf(buf, len, "voters=");
	if (k < 0 || (size_t)k >= len)
		return -ENOBUFS;
	at = (size_t)k;
	if (format_role(c, KVFS_ROLE_VOTER, buf, len, &at) < 0)
		return -ENOBUFS;
	if (config_voters(c) == c->n)
		return (int)at;
	k = snprintf(buf + at, len - at, " observers=");
	if (k < 0 || (size_t)k >= len - at)
		return -ENOBUFS;
	at += (size_t)k;
	if (format_role(c, KVFS_ROLE_OBSERVER, buf, len, &at) < 0)
		return -ENOBUFS;
	return (int)at;
}

static int parse_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err && errlen) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return -EINVAL;
}

/* "1,2,3" up to the end or a space, each id with `role`; *s moves past it. */
static int parse_ids(const char **s, struct kvfs_config *c, uint8_t role, char *err, size_t errlen)
{
	const char *p = *s;

	for (;;) {
		unsigned id = 0;
		int digits = 0;

		while (*p >= '0' && *p <= '9' && digits < 4) {
			id = id * 10 + (unsigned)(*p++ - '0');
			digits++;
		}
		if (digits == 0 || id == 0 || id > KVFS_CONFIG_ID_MAX)
			return parse_err(err, errlen,
			                 "config: expected a node id 1..%u at \"%.16s\"",
			                 KVFS_CONFIG_ID_MAX, *s);
		if (config_is_member(c, id))
			return parse_err(err, errlen, "config: node id %u listed twice", id);
		if (config_set_role(c, id, (enum kvfs_config_role)role) < 0)
			return parse_err(err, errlen, "config: more than %u members",
			                 KVFS_CONFIG_MAX);
		if (*p != ',')
			break;
		p++;
	}
	*s = p;
	return 0;
}

int config_parse(const char *s, struct kvfs_config *c, char *err, size_t errlen)
{
	static const char usage[] =
	    "config: expected \"voters=<ids>[ observers=<ids>]\" (ids 1..255, comma-separated)";

	c->n = 0;
	if (!s || strncmp(s, "voters=", 7) != 0)
		return parse_err(err, errlen, "%s", usage);
	s += 7;
	if (parse_ids(&s, c, KVFS_ROLE_VOTER, err, errlen) < 0)
		goto bad;
	if (strncmp(s, " observers=", 11) == 0) {
		s += 11;
		if (parse_ids(&s, c, KVFS_ROLE_OBSERVER, err, errlen) < 0)
			goto bad;
	}
	if (*s != '\0') {
		parse_err(err, errlen, "%s", usage);
		goto bad;
	}
	return 0;
bad:
	c->n = 0;
	return -EINVAL;
}
