/*
 * Unit tests of `kvfs member`'s command line (fs/member_args.c): each command with its options
 * in any order, the defaults, and every usage error refused with a message naming what is
 * accepted.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "kvfs/config.h"
#include "kvfs/member_req.h"
#include "member.h"

#define MAXARGS 16

/* Parses the words of line (split on spaces) after "member". */
static int parse(const char *line, struct member_args *a, char *err, size_t errlen)
{
	static char buf[512];
	char *argv[MAXARGS] = {"member"};
	int argc = 1;

	snprintf(buf, sizeof(buf), "%s", line);
	for (char *t = strtok(buf, " "); t && argc < MAXARGS; t = strtok(NULL, " "))
		argv[argc++] = t;
	return member_args_parse(argc, argv, a, err, errlen);
}

static void test_good(void **state)
{
	struct member_args a;
	char err[256] = "";

	(void)state;
	assert_int_equal(parse("add 4 --zk 127.0.0.1:2181", &a, err, sizeof(err)), 0);
	assert_false(a.list);
	assert_int_equal(a.op, KVFS_MEMBER_ADD);
	assert_int_equal(a.id, 4);
	assert_int_equal(a.role, KVFS_ROLE_VOTER);
	assert_string_equal(a.zk, "127.0.0.1:2181");
	assert_string_equal(a.cluster, "default");
	assert_int_equal(a.timeout_ms, KVFS_MEMBER_TIMEOUT_MS);
	assert_false(a.force);
	assert_null(a.auth_file);

	assert_int_equal(parse("--zk=h:1 --cluster c1 add --role observer 255 --timeout=5000 "
	                       "--zk-auth-file /etc/kvfs/zk --force",
	                       &a, err, sizeof(err)),
	                 0);
	assert_int_equal(a.id, 255);
	assert_int_equal(a.role, KVFS_ROLE_OBSERVER);
	assert_string_equal(a.cluster, "c1");
	assert_int_equal(a.timeout_ms, 5000);
	assert_string_equal(a.auth_file, "/etc/kvfs/zk");
	assert_true(a.force);

	assert_int_equal(parse("remove 1 --zk h:1", &a, err, sizeof(err)), 0);
	assert_int_equal(a.op, KVFS_MEMBER_REMOVE);
	assert_int_equal(parse("promote 6 --zk h:1", &a, err, sizeof(err)), 0);
	assert_int_equal(a.op, KVFS_MEMBER_PROMOTE);
	assert_int_equal(parse("demote 2 --zk h:1", &a, err, sizeof(err)), 0);
	assert_int_equal(a.op, KVFS_MEMBER_DEMOTE);
	assert_int_equal(parse("list --zk h:1", &a, err, sizeof(err)), 0);
	assert_true(a.list);
	assert_int_equal(parse("list --help", &a, err, sizeof(err)), 1);
}

static void test_bad(void **state)
{
	static const struct {
		const char *line;
		const char *says;
	} bad[] = {
	    {"", "missing command"},
	    {"--zk h:1", "missing command"},
	    {"join 4 --zk h:1", "unknown command 'join'"},
	    {"add --zk h:1", "missing the node ID"},
	    {"add 0 --zk h:1", "1..255"},
	    {"add 256 --zk h:1", "1..255"},
	    {"add 04 --zk h:1", "1..255"},
	    {"add -4 --zk h:1", "unknown option -4"},
	    {"add 4x --zk h:1", "1..255"},
	    {"add 99999999999999999999999 --zk h:1", "1..255"},
	    {"add 4 5 --zk h:1", "unexpected argument '5'"},
	    {"list 4 --zk h:1", "unexpected argument '4'"},
	    {"add 4", "--zk HOSTS is required"},
	    {"add 4 --zk", "--zk needs a value"},
	    {"add 4 --zk=", "--zk: '' is not a connect string"},
	    {"add 4 --zk h:1 --cluster a/b", "1..64 characters without '/'"},
	    {"add 4 --zk h:1 --role leader", "--role: 'leader' must be voter or observer"},
	    {"remove 4 --zk h:1 --role observer", "--role goes with add only"},
	    {"add 4 --zk h:1 --timeout 0", "--timeout: '0' is not a number in 1..86400000"},
	    {"add 4 --zk h:1 --timeout 1e3", "--timeout"},
	    {"add 4 --zk h:1 --timeout 86400001", "--timeout"},
	    {"add 4 --zk h:1 --force=1", "--force takes no value"},
	    {"add 4 --zk h:1 --colour blue", "unknown option --colour"},
	    {"add 4 --zk h:1 -f", "unknown option -f"},
	    {"add 4 --zk h:1 --zk-auth-file=", "--zk-auth-file: empty path"},
	};
	struct member_args a;
	char err[256];

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		if (parse(bad[i].line, &a, err, sizeof(err)) != -EINVAL)
			fail_msg("accepted '%s'", bad[i].line);
		if (!strstr(err, bad[i].says))
			fail_msg("'%s': message '%s' lacks '%s'", bad[i].line, err, bad[i].says);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_good),
	    cmocka_unit_test(test_bad),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
