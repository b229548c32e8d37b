/*
 * Unit tests of the cluster configuration (replica/config.c): the CONFIG entry codec survives a
 * round trip and refuses every truncation and (mostly) every bit flip without reading outside the
 * buffer (run under ASan); the one-step rule; the majority test for 1..7 voters with observers;
 * bitmaps; the text form.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "kvfs/config.h"
#include "kvfs/op.h"

static struct kvfs_config parse(const char *s)
{
	struct kvfs_config c;
	char err[160];

	if (config_parse(s, &c, err, sizeof(err)) < 0)
		fail_msg("%s: %s", s, err);
	return c;
}

static void test_bootstrap(void **state)
{
	struct kvfs_config c;
	char text[KVFS_CONFIG_TEXT_MAX];

	(void)state;
	assert_int_equal(config_bootstrap(&c, 3), 0);
	assert_int_equal(config_check(&c), 0);
	assert_int_equal(config_voters(&c), 3);
	assert_true(config_is_voter(&c, 1) && config_is_voter(&c, 3));
	assert_false(config_is_member(&c, 4) || config_is_member(&c, 0));
	assert_int_equal(config_format(&c, text, sizeof(text)), 12);
	assert_string_equal(text, "voters=1,2,3");
	assert_int_equal(config_bootstrap(&c, 0), -EINVAL);
	assert_int_equal(config_bootstrap(&c, KVFS_CONFIG_MAX + 1), -EINVAL);
	assert_int_equal(config_bootstrap(&c, KVFS_CONFIG_MAX), 0);
}

static void test_text(void **state)
{
	struct kvfs_config c = parse("voters=3,1,2 observers=6,255");
	char text[KVFS_CONFIG_TEXT_MAX], err[160];
	static const char *const bad[] = {"",
	                                  "voters=",
	                                  "voters=0",
	                                  "voters=256",
	                                  "voters=1,",
	                                  "voters=1,1",
	                                  "voters=1 observers=1",
	                                  "observers=2",
	                                  "voters=1 observers=",
	                                  "voters=1x",
	                                  "voters=1  observers=2",
	                                  "voters=12345",
	                                  "Voters=1",
	                                  "voters=1 "};

	(void)state;
	assert_int_equal(c.n, 5);
	assert_int_equal(config_role(&c, 6), KVFS_ROLE_OBSERVER);
	assert_int_equal(config_voters(&c), 3);
	assert_int_equal(config_format(&c, text, sizeof(text)), 28);
	assert_string_equal(text, "voters=1,2,3 observers=6,255");
	assert_int_equal(config_format(&c, text, 10), -ENOBUFS);
	assert_int_equal(config_format(&c, text, 28), -ENOBUFS);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = 0;
		if (config_parse(bad[i], &c, err, sizeof(err)) != -EINVAL)
			fail_msg("\"%s\" parsed", bad[i]);
		assert_true(strncmp(err, "config: ", 8) == 0);
		assert_int_equal(c.n, 0);
	}
	/* 64 members with 3-digit ids fit the text buffer, and the 65th is refused. */
	c.n = 0;
	for (uint32_t id = 192; id < 256; id++)
		assert_int_equal(config_set_role(&c, id, KVFS_ROLE_VOTER), 0);
	assert_int_equal(config_set_role(&c, 5, KVFS_ROLE_VOTER), -ENOSPC);
	assert_true(config_format(&c, text, sizeof(text)) > 0);
	{
		struct kvfs_config back = parse(text);

		assert_true(config_equal(&back, &c));
	}
}

static void test_set_role(void **state)
{
	struct kvfs_config c = parse("voters=2,4");

	(void)state;
	assert_int_equal(config_set_role(&c, 3, KVFS_ROLE_OBSERVER), 0);
	assert_int_equal(config_set_role(&c, 1, KVFS_ROLE_VOTER), 0);
	assert_int_equal(config_set_role(&c, 4, KVFS_ROLE_NONE), 0);
	assert_int_equal(config_set_role(&c, 9, KVFS_ROLE_NONE), 0);
	assert_int_equal(config_set_role(&c, 0, KVFS_ROLE_VOTER), -EINVAL);
	assert_int_equal(config_set_role(&c, 256, KVFS_ROLE_VOTER), -EINVAL);
	assert_int_equal(config_set_role(&c, 5, 3), -EINVAL);
	{
		struct kvfs_config want = parse("voters=1,2 observers=3");

		assert_true(config_equal(&c, &want));
	}
	assert_int_equal(config_check(&c), 0);
	c.m[0].id = 2; /* not strictly increasing */
	assert_int_equal(config_check(&c), -EINVAL);
	c = parse("voters=1 observers=2");
	assert_int_equal(config_set_role(&c, 1, KVFS_ROLE_OBSERVER), 0);
	assert_int_equal(config_check(&c), -EINVAL); /* no voter */
}

static void test_one_step(void **state)
{
	static const struct {
		const char *cur, *next;
		int want;
	} t[] = {
	    {"voters=1,2,3", "voters=1,2,3,4", 0},                     /* add a voter */
	    {"voters=1,2,3", "voters=1,2", 0},                         /* remove a voter */
	    {"voters=1,2,3", "voters=1,2,3 observers=6", 0},           /* add an observer */
	    {"voters=1,2,3 observers=6", "voters=1,2,3", 0},           /* remove it */
	    {"voters=1,2,3 observers=6", "voters=1,2,3,6", 0},         /* promote */
	    {"voters=1,2,3", "voters=1,2 observers=3", 0},             /* demote */
	    {"voters=1", "voters=1,2", 0},                             /* 1 -> 2 */
	    {"voters=1,2", "voters=1", 0},                             /* 2 -> 1 */
	    {"voters=1,2,3", "voters=1,2,3", -EINVAL},                 /* no change */
	    {"voters=1,2,3", "voters=1,2,3,4,5", -EINVAL},             /* two voters */
	    {"voters=1,2,3", "voters=1,2,4", -EINVAL},                 /* a swap */
	    {"voters=1,2,3", "voters=1,2,3 observers=6,7", -EINVAL},   /* two observers */
	    {"voters=1,2,3 observers=6", "voters=1,2,3,6,7", -EINVAL}, /* two members */
	    {"voters=1,2,3", "voters=1 observers=2", -EINVAL},         /* two members */
	    {"voters=1 observers=2", "observers=2", -EINVAL},          /* unparseable */
	};

	(void)state;
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		struct kvfs_config a = parse(t[i].cur), b;

		if (config_parse(t[i].next, &b, NULL, 0) < 0) {
			assert_int_equal(t[i].want, -EINVAL);
			continue;
		}
		if (config_one_step(&a, &b) != t[i].want)
			fail_msg("%s -> %s: want %d", t[i].cur, t[i].next, t[i].want);
	}
	/* No voter left: not well formed, so no step either. */
	{
		struct kvfs_config a = parse("voters=1 observers=2"), b = a;

		b.m[0].role = KVFS_ROLE_OBSERVER;
		assert_int_equal(config_one_step(&a, &b), -EINVAL);
	}
}

/* Every subset of voters 1..v with observers v+1..v+2 and a non-member: a majority iff more
 * than half of the voters, whatever the observers and non-members. */
static void test_quorum_table(void **state)
{
	(void)state;
	for (uint32_t v = 1; v <= 7; v++) {
		struct kvfs_config c;

		assert_int_equal(config_bootstrap(&c, v), 0);
		assert_int_equal(config_set_role(&c, v + 1, KVFS_ROLE_OBSERVER), 0);
		assert_int_equal(config_set_role(&c, v + 2, KVFS_ROLE_OBSERVER), 0);
		for (uint32_t mask = 0; mask < (1u << (v + 3)); mask++) {
			bool have[KVFS_CONFIG_ID_MAX + 1] = {0};
			uint32_t voters = 0;

			for (uint32_t id = 1; id <= v + 3; id++) {
				have[id] = mask >> (id - 1) & 1;
				voters += have[id] && id <= v;
			}
			if (config_quorum(&c, have) != (2 * voters > v))
				fail_msg("%u voters, mask %x", v, mask);
		}
	}
	/* The table the README gives: voters -> the majority. */
	{
		static const uint32_t need[] = {0, 1, 2, 2, 3, 3, 4, 4};

		for (uint32_t v = 1; v <= 7; v++) {
			struct kvfs_config c;
			bool have[KVFS_CONFIG_ID_MAX + 1] = {0};

			config_bootstrap(&c, v);
			for (uint32_t id = 1; id < need[v]; id++)
				have[id] = true;
			assert_false(config_quorum(&c, have));
			have[need[v]] = true;
			assert_true(config_quorum(&c, have));
		}
	}
}

static size_t encode(const struct kvfs_config *c, const char *req, uint8_t *buf, size_t len)
{
	int n = config_entry_encode(c, req, buf, len);

	assert_true(n > 0);
	assert_int_equal((size_t)n, config_entry_size(c, req ? strlen(req) : 0));
	return (size_t)n;
}

static void test_entry_roundtrip(void **state)
{
	struct kvfs_config c = parse("voters=1,2,3,4 observers=6,7"), d;
	char req[KVFS_CONFIG_REQ_MAX + 1], longreq[KVFS_CONFIG_REQ_MAX + 2];
	uint8_t buf[1024];
	struct kvfs_op op;
	size_t n;

	(void)state;
	n = encode(&c, "req-0000000012", buf, sizeof(buf));
	assert_int_equal(config_entry_decode(buf, n, &d, req), 0);
	assert_true(config_equal(&c, &d));
	assert_string_equal(req, "req-0000000012");
	/* It is an operation: op.c decodes it, and the store's view of it is the same. */
	assert_int_equal(op_decode(&op, buf, n), 0);
	assert_int_equal(op.type, KVFS_OP_CONFIG);
	assert_string_equal(op_type_name(op.type), "config");
	assert_int_equal(op.name_len, 14);
	assert_int_equal(config_from_op(&op, &d), 0);
	assert_true(config_equal(&c, &d));
	/* A proposer may not put one in the log: only repl_propose_config() does. */
	{
		struct kvfs_op_limits lim = {.max_value = 1 << 20};

		op.max_value = 1;
		assert_int_equal(op_validate(&op, &lim), -EINVAL);
	}
	n = encode(&c, NULL, buf, sizeof(buf));
	assert_int_equal(config_entry_decode(buf, n, &d, req), 0);
	assert_string_equal(req, "");
	assert_int_equal(config_entry_decode(buf, n, &d, NULL), 0);
	memset(longreq, 'x', sizeof(longreq) - 1);
	longreq[sizeof(longreq) - 1] = 0;
	assert_int_equal(config_entry_encode(&c, longreq, buf, sizeof(buf)), -EINVAL);
	longreq[KVFS_CONFIG_REQ_MAX] = 0;
	n = encode(&c, longreq, buf, sizeof(buf));
	assert_int_equal(config_entry_decode(buf, n, &d, req), 0);
	assert_string_equal(req, longreq);
	assert_int_equal(config_entry_encode(&c, longreq, buf, n - 1), -ENOBUFS);
	/* Other ops and the no-op are not CONFIG entries. */
	assert_int_equal(config_entry_decode(NULL, 0, &d, NULL), -ENOENT);
	{
		struct kvfs_op put = {.type = KVFS_OP_PUT, .max_value = 1};
		uint8_t pb[64];
		size_t pn = op_encode(&put, pb);

		assert_int_equal(config_entry_decode(pb, pn, &d, NULL), -ENOENT);
		assert_int_equal(config_from_op(&put, &d), -EBADMSG);
	}
	c.n = 0; /* no voter */
	assert_int_equal(config_entry_encode(&c, NULL, buf, sizeof(buf)), -EINVAL);
}

/* Every truncation and every extension is refused, by both decoders, within the buffer. */
static void test_entry_every_truncation(void **state)
{
	struct kvfs_config c = parse("voters=1,2,3 observers=9"), d;
	uint8_t buf[512];
	size_t n;

	(void)state;
	n = encode(&c, "abc", buf, sizeof(buf));
	for (size_t len = 0; len < n + 8; len++) {
		uint8_t *copy = malloc(len ? len : 1);
		struct kvfs_op op;
		int rv;

		memcpy(copy, buf, len < n ? len : n);
		if (len > n)
			memset(copy + n, 0, len - n);
		rv = config_entry_decode(copy, len, &d, NULL);
		if (len == n) {
			assert_int_equal(rv, 0);
		} else {
			if (rv != (len < KVFS_OP_HEADER_SIZE ? -ENOENT : -EBADMSG))
				fail_msg("length %zu of %zu: %d", len, n, rv);
			assert_int_equal(op_decode(&op, copy, len), -EBADMSG);
		}
		free(copy);
	}
}

/* A flipped bit either is refused or decodes to a well-formed configuration that encodes back
 * to exactly those bytes (a flip in the header's unused fields, a role or id that stays valid). */
static void test_entry_bit_flips(void **state)
{
	struct kvfs_config c = parse("voters=1,2,3 observers=6"), d;
	uint8_t buf[512], again[512];
	char req[KVFS_CONFIG_REQ_MAX + 1];
	size_t n;
	unsigned accepted = 0, refused = 0;

	(void)state;
	n = encode(&c, "rq", buf, sizeof(buf));
	for (size_t bit = 0; bit < 8 * n; bit++) {
		int rv;

		buf[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		rv = config_entry_decode(buf, n, &d, req);
		if (rv == 0) {
			assert_int_equal(config_check(&d), 0);
			if (bit >= 8 * KVFS_OP_HEADER_SIZE) {
				/* the body re-encodes to the flipped bytes */
				int k = config_entry_encode(&d, req, again, sizeof(again));

				assert_int_equal(k, (int)n);
				assert_memory_equal(again + KVFS_OP_HEADER_SIZE,
				                    buf + KVFS_OP_HEADER_SIZE,
				                    n - KVFS_OP_HEADER_SIZE);
			}
			accepted++;
		} else {
			assert_true(rv == -EBADMSG || rv == -ENOENT);
			refused++;
		}
		buf[bit / 8] ^= (uint8_t)(1u << (bit % 8));
	}
	assert_true(refused > 0 && accepted > 0);
	/* Random garbage behind a CONFIG type byte: never a crash, only well-formed results. */
	{
		uint64_t x = 88172645463325252ull;

		for (int i = 0; i < 20000; i++) {
			uint8_t g[80];
			size_t len = 1 + (size_t)(x % sizeof(g));

			for (size_t k = 0; k < len; k++) {
				x ^= x << 13;
				x ^= x >> 7;
				x ^= x << 17;
				g[k] = (uint8_t)x;
			}
			g[0] = KVFS_OP_CONFIG;
			if (len > KVFS_OP_HEADER_SIZE)
				g[KVFS_OP_HEADER_SIZE] = KVFS_CONFIG_VERSION;
			if (config_entry_decode(g, len, &d, req) == 0)
				assert_int_equal(config_check(&d), 0);
		}
	}
}

static void test_bits(void **state)
{
	struct kvfs_config c = parse("voters=1,8,255 observers=7,100"), d;
	struct kvfs_config_bits b;

	(void)state;
	config_to_bits(&c, &b);
	assert_int_equal(config_from_bits(&b, &d), 0);
	assert_true(config_equal(&c, &d));
	b.members[0] |= 1; /* id 0 */
	assert_int_equal(config_from_bits(&b, &d), -EINVAL);
	b.members[0] &= (uint8_t)~1u;
	b.voters[0] |= 1u << 4; /* a voter that is not a member */
	assert_int_equal(config_from_bits(&b, &d), -EINVAL);
	memset(&b, 0, sizeof(b));
	b.members[1] = 2; /* no voter */
	assert_int_equal(config_from_bits(&b, &d), -EINVAL);
	memset(&b, 0xff, sizeof(b));
	b.members[0] = b.voters[0] = 0xfe; /* 255 members: too many */
	assert_int_equal(config_from_bits(&b, &d), -EINVAL);
	assert_int_equal(d.n, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_bootstrap),
	    cmocka_unit_test(test_text),
	    cmocka_unit_test(test_set_role),
	    cmocka_unit_test(test_one_step),
	    cmocka_unit_test(test_quorum_table),
	    cmocka_unit_test(test_entry_roundtrip),
	    cmocka_unit_test(test_entry_every_truncation),
	    cmocka_unit_test(test_entry_bit_flips),
	    cmocka_unit_test(test_bits),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
