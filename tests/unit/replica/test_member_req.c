/*
 * Unit tests of membership requests (replica/member_req.c): request and result texts survive a
 * round trip; hostile znode data (every truncation, unknown keys and operations, ids 0 and 256,
 * huge numbers, control bytes, repeated keys) is refused without reading outside the buffer (run
 * under ASan: every case is parsed from an exact-size heap copy); and member_req_next's table.
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
#include "kvfs/member_req.h"

static struct kvfs_config parse_cfg(const char *s)
{
	struct kvfs_config c;
	char err[160];

	if (config_parse(s, &c, err, sizeof(err)) < 0)
		fail_msg("%s: %s", s, err);
	return c;
}

/* Parses exactly len bytes from a heap copy of that size (ASan sees any overread). */
static int req_parse(const char *s, size_t len, struct kvfs_member_req *r)
{
	char *copy = malloc(len ? len : 1);
	int rv;

	assert_non_null(copy);
	memcpy(copy, s, len);
	rv = member_req_parse(copy, len, r);
	free(copy);
	return rv;
}

static int res_parse(const char *s, size_t len, struct kvfs_member_result *res)
{
	char *copy = malloc(len ? len : 1);
	int rv;

	assert_non_null(copy);
	memcpy(copy, s, len);
	rv = member_result_parse(copy, len, res);
	free(copy);
	return rv;
}

static void test_request_roundtrip(void **state)
{
	static const char *const good[] = {
	    "op=add id=4 role=voter", "op=add id=6 role=observer", "op=remove id=255",
	    "op=promote id=1",        "op=demote id=3 force=1",    "op=add id=4 role=voter force=1",
	};
	struct kvfs_member_req r;
	char buf[256];

	(void)state;
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		assert_int_equal(req_parse(good[i], strlen(good[i]), &r), 0);
		assert_int_equal(member_req_format(&r, buf, sizeof(buf)), strlen(good[i]));
		assert_string_equal(buf, good[i]);
	}
	/* add without role is a voter; keys in any order */
	assert_int_equal(req_parse("id=9 op=add", 11, &r), 0);
	assert_int_equal(r.op, KVFS_MEMBER_ADD);
	assert_int_equal(r.id, 9);
	assert_int_equal(r.role, KVFS_ROLE_VOTER);
	/* a request that already carries a result still parses as the request */
	assert_int_equal(req_parse("op=promote id=4 state=waiting why=node 4 lags", 45, &r), 0);
	assert_int_equal(r.op, KVFS_MEMBER_PROMOTE);
	assert_int_equal(r.id, 4);
	/* snprintf-like: the length even when the buffer is short */
	assert_int_equal(member_req_format(&r, buf, 4), strlen("op=promote id=4"));
	assert_string_equal(buf, "op=");
}

static void test_request_hostile(void **state)
{
	static const char *const bad[] = {
	    "",
	    " ",
	    "op=add",
	    "id=4",
	    "op=add id=0",
	    "op=add id=256",
	    "op=add id=04",
	    "op=add id=-4",
	    "op=add id=+4",
	    "op=add id=4x",
	    "op=add id=18446744073709551616",
	    "op=add id=99999999999999999999999",
	    "op=add id=4 id=5",
	    "op=add op=add id=4",
	    "op=join id=4",
	    "op=ADD id=4",
	    "op= id=4",
	    "op=add id=",
	    "op=add id=4 role=leader",
	    "op=add id=4 role=",
	    "op=add id=4 role=voter role=voter",
	    "op=remove id=4 role=voter",
	    "op=add id=4 color=blue",
	    "op=add id=4 force=2",
	    "op=add id=4 force=yes",
	    "op=add  id=4",
	    " op=add id=4",
	    "op=add id=4 ",
	    "op=add\nid=4",
	    "op=add\tid=4",
	    "op=add id=4\n",
	    "op=add id=4 =",
	    "op=add id=4 x",
	    "state=done index=5 voters=1",
	};
	struct kvfs_member_req r;
	char nul[] = "op=add id=4\0 role=voter";
	char big[2048];

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (req_parse(bad[i], strlen(bad[i]), &r) != -EINVAL)
			fail_msg("accepted \"%s\"", bad[i]);
	assert_int_equal(req_parse(nul, sizeof(nul) - 1, &r), -EINVAL);
	assert_int_equal(member_req_parse(NULL, 0, &r), -EINVAL);
	assert_int_equal(req_parse("\xff\xfe", 2, &r), -EINVAL);
	memset(big, 'a', sizeof(big));
	memcpy(big, "op=add id=4 x=", 14);
	assert_int_equal(req_parse(big, sizeof(big), &r), -EINVAL);
}

/* Every prefix of a valid text: parsed or refused, never read past its end. */
static void test_every_truncation(void **state)
{
	static const char *const texts[] = {
	    "op=add id=4 role=observer force=1 state=done index=18446744073709551615 voters=1,2,3 "
	    "observers=4",
	    "op=promote id=4 state=waiting why=node 4 is catching up",
	    "op=remove id=2 state=refused why=node 2 is the last voter",
	};
	struct kvfs_member_req r;
	struct kvfs_member_result res;

	(void)state;
	for (size_t t = 0; t < sizeof(texts) / sizeof(texts[0]); t++) {
		size_t len = strlen(texts[t]);

		for (size_t n = 0; n <= len; n++) {
			int a = req_parse(texts[t], n, &r);
			int b = res_parse(texts[t], n, &res);

			assert_true(a == 0 || a == -EINVAL);
			assert_true(b == 0 || b == -EINVAL);
		}
		assert_int_equal(req_parse(texts[t], len, &r), 0);
		assert_int_equal(res_parse(texts[t], len, &res), 0);
	}
	/* a cut inside a done result's configuration is refused */
	assert_int_equal(res_parse(texts[0], strlen(texts[0]) - 1, &res),
	                 -EINVAL);                                             /* "observers=" */
	assert_int_equal(res_parse(texts[0], strlen(texts[0]) - 12, &res), 0); /* no observer */
	assert_int_equal(res.cfg.n, 3);
}

static void test_result_roundtrip(void **state)
{
	struct kvfs_member_req r = {.op = KVFS_MEMBER_ADD, .id = 4, .role = KVFS_ROLE_VOTER};
	struct kvfs_member_result res = {.state = KVFS_MEMBER_DONE, .index = 5311}, back;
	char buf[512];

	(void)state;
	res.cfg = parse_cfg("voters=1,2,3,4 observers=6");
	member_result_format(&r, &res, buf, sizeof(buf));
	assert_string_equal(buf, "op=add id=4 role=voter state=done index=5311 voters=1,2,3,4 "
	                         "observers=6");
	assert_int_equal(res_parse(buf, strlen(buf), &back), 0);
	assert_int_equal(back.state, KVFS_MEMBER_DONE);
	assert_int_equal(back.index, 5311);
	assert_true(config_equal(&back.cfg, &res.cfg));

	res = (struct kvfs_member_result){.state = KVFS_MEMBER_WAITING};
	strcpy(res.why, "node 4 is\n3127  entries\tbehind ");
	member_result_format(&r, &res, buf, sizeof(buf));
	assert_string_equal(buf, "op=add id=4 role=voter state=waiting why=node 4 is 3127 entries "
	                         "behind");
	assert_int_equal(res_parse(buf, strlen(buf), &back), 0);
	assert_int_equal(back.state, KVFS_MEMBER_WAITING);
	assert_string_equal(back.why, "node 4 is 3127 entries behind");

	res.state = KVFS_MEMBER_REFUSED;
	strcpy(res.why, "node 1 is the last voter");
	member_result_format(&r, &res, buf, sizeof(buf));
	assert_int_equal(res_parse(buf, strlen(buf), &back), 0);
	assert_int_equal(back.state, KVFS_MEMBER_REFUSED);
	assert_string_equal(back.why, "node 1 is the last voter");

	res.state = KVFS_MEMBER_PENDING;
	member_result_format(&r, &res, buf, sizeof(buf));
	assert_string_equal(buf, "op=add id=4 role=voter");
	assert_int_equal(res_parse(buf, strlen(buf), &back), 0);
	assert_int_equal(back.state, KVFS_MEMBER_PENDING);
}

static void test_result_hostile(void **state)
{
	static const char *const bad[] = {
	    "op=add id=4 state=",
	    "op=add id=4 state=finished",
	    "op=add id=4 state=done",
	    "op=add id=4 state=done index=0 voters=1",
	    "op=add id=4 state=done index=5",
	    "op=add id=4 state=done index=5 voters=",
	    "op=add id=4 state=done index=5 voters=0",
	    "op=add id=4 state=done index=5 voters=256",
	    "op=add id=4 state=done index=5 voters=2,1",
	    "op=add id=4 state=done index=5 voters=1 observers=1",
	    "op=add id=4 state=done index=5 observers=1",
	    "op=add id=4 state=done index=18446744073709551616 voters=1",
	    "op=add id=4 state=done index=-1 voters=1",
	    "op=add id=4 state=done voters=1 index=5",
	    "op=add id=4 state=done index=5 voters=1 extra=1",
	    "op=add id=4 state=waiting because=x",
	    "op=add id=4 state=refused why",
	    "op=add id=4 state=done index=5 voters=1\n",
	};
	struct kvfs_member_result res;
	char why[400];

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (res_parse(bad[i], strlen(bad[i]), &res) != -EINVAL)
			fail_msg("accepted \"%s\"", bad[i]);
	/* why longer than KVFS_MEMBER_WHY_MAX */
	strcpy(why, "op=add id=4 state=refused why=");
	memset(why + strlen(why), 'x', 300);
	why[30 + 300] = '\0';
	assert_int_equal(res_parse(why, strlen(why), &res), -EINVAL);
	assert_int_equal(member_result_parse(NULL, 0, &res), -EINVAL);
}

struct next_case {
	const char *cur;
	enum kvfs_member_op op;
	uint32_t id;
	uint8_t role;
	uint32_t leader;
	bool caught_up;
	int rv;
	const char *next; /* for rv 0 */
	const char *why;  /* a part of why, for rv != 0 */
};

static void test_next_table(void **state)
{
	static const struct next_case cases[] = {
	    /* add observer */
	    {"voters=1,2,3", KVFS_MEMBER_ADD, 6, KVFS_ROLE_OBSERVER, 1, false, 0,
	     "voters=1,2,3 observers=6", NULL},
	    {"voters=1,2,3 observers=6", KVFS_MEMBER_ADD, 6, KVFS_ROLE_OBSERVER, 1, false, 1, NULL,
	     "observer already"},
	    {"voters=1,2,3", KVFS_MEMBER_ADD, 3, KVFS_ROLE_OBSERVER, 1, true, -EINVAL, NULL,
	     "demote"},
	    /* add voter: observer first, then promote once caught up */
	    {"voters=1,2,3", KVFS_MEMBER_ADD, 4, KVFS_ROLE_VOTER, 1, true, 0,
	     "voters=1,2,3 observers=4", NULL},
	    {"voters=1,2,3 observers=4", KVFS_MEMBER_ADD, 4, KVFS_ROLE_VOTER, 1, false, -EAGAIN,
	     NULL, "catching up"},
	    {"voters=1,2,3 observers=4", KVFS_MEMBER_ADD, 4, KVFS_ROLE_VOTER, 1, true, 0,
	     "voters=1,2,3,4", NULL},
	    {"voters=1,2,3,4", KVFS_MEMBER_ADD, 4, KVFS_ROLE_VOTER, 1, true, 1, NULL,
	     "voter already"},
	    /* remove */
	    {"voters=1,2,3,4,5", KVFS_MEMBER_REMOVE, 5, 0, 1, false, 0, "voters=1,2,3,4", NULL},
	    {"voters=1,2,3 observers=6", KVFS_MEMBER_REMOVE, 6, 0, 1, false, 0, "voters=1,2,3",
	     NULL},
	    {"voters=1,2,3", KVFS_MEMBER_REMOVE, 7, 0, 1, false, 1, NULL, "not a member"},
	    {"voters=1,2,3", KVFS_MEMBER_REMOVE, 1, 0, 1, true, -EXDEV, NULL,
	     "hands the lead over"},
	    {"voters=1 observers=2", KVFS_MEMBER_REMOVE, 1, 0, 1, true, -EINVAL, NULL,
	     "last voter"},
	    {"voters=1 observers=2", KVFS_MEMBER_REMOVE, 2, 0, 1, false, 0, "voters=1", NULL},
	    /* promote */
	    {"voters=1,2,3 observers=4", KVFS_MEMBER_PROMOTE, 4, 0, 1, true, 0, "voters=1,2,3,4",
	     NULL},
	    {"voters=1,2,3 observers=4", KVFS_MEMBER_PROMOTE, 4, 0, 1, false, -EAGAIN, NULL,
	     "not caught up"},
	    {"voters=1,2,3", KVFS_MEMBER_PROMOTE, 3, 0, 1, false, 1, NULL, "voter already"},
	    {"voters=1,2,3", KVFS_MEMBER_PROMOTE, 9, 0, 1, true, -EINVAL, NULL,
	     "kvfs member add 9"},
	    /* demote */
	    {"voters=1,2,3", KVFS_MEMBER_DEMOTE, 3, 0, 1, false, 0, "voters=1,2 observers=3", NULL},
	    {"voters=1,2,3", KVFS_MEMBER_DEMOTE, 1, 0, 1, false, -EXDEV, NULL,
	     "hands the lead over"},
	    {"voters=1,2 observers=3", KVFS_MEMBER_DEMOTE, 3, 0, 1, false, 1, NULL,
	     "observer already"},
	    {"voters=1,2", KVFS_MEMBER_DEMOTE, 7, 0, 1, false, -EINVAL, NULL, "not a member"},
	    {"voters=2 observers=1", KVFS_MEMBER_DEMOTE, 2, 0, 2, false, -EINVAL, NULL,
	     "last voter"},
	    /* bad requests */
	    {"voters=1,2,3", KVFS_MEMBER_ADD, 0, KVFS_ROLE_VOTER, 1, false, -EINVAL, NULL,
	     "1..255"},
	    {"voters=1,2,3", KVFS_MEMBER_ADD, 256, KVFS_ROLE_VOTER, 1, false, -EINVAL, NULL,
	     "1..255"},
	    {"voters=1,2,3", KVFS_MEMBER_ADD, 4, 7, 1, false, -EINVAL, NULL, "role"},
	    {"voters=1,2,3", (enum kvfs_member_op)9, 4, 0, 1, false, -EINVAL, NULL, "unknown"},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct next_case *k = &cases[i];
		struct kvfs_config cur = parse_cfg(k->cur), next;
		struct kvfs_member_req r = {.op = k->op, .id = k->id, .role = k->role};
		char why[KVFS_MEMBER_WHY_MAX];
		int rv =
		    member_req_next(&cur, &r, k->leader, k->caught_up, &next, why, sizeof(why));

		if (rv != k->rv)
			fail_msg("case %zu (%s op %d id %u): %d, wanted %d (%s)", i, k->cur, k->op,
			         k->id, rv, k->rv, why);
		if (rv == 0) {
			struct kvfs_config want = parse_cfg(k->next);

			assert_true(config_equal(&next, &want));
			assert_int_equal(config_one_step(&cur, &next), 0);
		} else if (!strstr(why, k->why)) {
			fail_msg("case %zu: why \"%s\" lacks \"%s\"", i, why, k->why);
		}
	}
}

/* A full configuration has no room for one more member. */
static void test_next_full(void **state)
{
	struct kvfs_config cur;
	struct kvfs_config next;
	struct kvfs_member_req r = {.op = KVFS_MEMBER_ADD, .id = 200, .role = KVFS_ROLE_OBSERVER};
	char why[KVFS_MEMBER_WHY_MAX];

	(void)state;
	assert_int_equal(config_bootstrap(&cur, KVFS_CONFIG_MAX), 0);
	assert_int_equal(member_req_next(&cur, &r, 1, true, &next, why, sizeof(why)), -EINVAL);
	assert_non_null(strstr(why, "no room"));
	/* a malformed configuration in force is refused, not used */
	cur.n = KVFS_CONFIG_MAX + 1;
	assert_int_equal(member_req_next(&cur, &r, 1, true, &next, why, sizeof(why)), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_request_roundtrip), cmocka_unit_test(test_request_hostile),
	    cmocka_unit_test(test_every_truncation),  cmocka_unit_test(test_result_roundtrip),
	    cmocka_unit_test(test_result_hostile),    cmocka_unit_test(test_next_table),
	    cmocka_unit_test(test_next_full),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
