/* Unit tests for HOST:PORT strings: what peers, options and znodes accept, hostile input first. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "kvfs/hostport.h"

/* s parses, to host and port, as a name (numeric false) or an IP address. */
static void ok(const char *s, const char *host, unsigned port, bool numeric)
{
	struct kvfs_hostport hp;
	const char *why = NULL;

	if (hostport_parse(s, 0, &hp, &why) != 0)
		fail_msg("'%s' refused: %s", s, why);
	assert_string_equal(hp.host, host);
	assert_int_equal(hp.portnum, port);
	assert_int_equal(hp.numeric, numeric);
}

/* s is refused, and the reason mentions want. */
static void bad(const char *s, const char *want)
{
	struct kvfs_hostport hp;
	const char *why = NULL;

	if (hostport_parse(s, 0, &hp, &why) != -EINVAL)
		fail_msg("'%s' accepted", s);
	assert_non_null(why);
	if (strstr(why, want) == NULL)
		fail_msg("'%s': reason '%s' does not mention '%s'", s, why, want);
}

static void test_accepted(void **state)
{
	ok("localhost:7001", "localhost", 7001, false);
	ok("kvfs-1:7001", "kvfs-1", 7001, false);
	ok("kvfs_node_1:1", "kvfs_node_1", 1, false); /* Docker names may hold '_' */
	ok("kvfs1.default.svc.cluster.local:65535", "kvfs1.default.svc.cluster.local", 65535, false);
	ok("1password.example:80", "1password.example", 80, false);
	ok("10.0.0.2:7000", "10.0.0.2", 7000, true);
	ok("0.0.0.0:7000", "0.0.0.0", 7000, true);
	ok("[::1]:7001", "::1", 7001, true);
	ok("[::]:7001", "::", 7001, true);
	ok("[fe80::1%eth0]:7001", "fe80::1%eth0", 7001, true);
	ok("[::ffff:10.0.0.1]:9", "::ffff:10.0.0.1", 9, true);
	/* 63 bytes: the longest */
	ok("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa:7001",
	   "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", 7001, false);
}

static void test_hostile(void **state)
{
	struct kvfs_hostport hp;

	bad("", "empty");
	bad(":7001", "empty host");
	bad("[]:7001", "empty host");
	bad("localhost", "missing ':PORT'");
	bad("localhost:", "missing port");
	bad("[::1]", "missing port");
	bad("localhost:0", "1..65535");
	bad("localhost:65536", "1..65535");
	bad("localhost:99999", "1..65535");
	bad("localhost:123456", "1..65535");
	bad("localhost:+1", "1..65535");
	bad("localhost:-1", "1..65535");
	bad("localhost: 1", "1..65535");
	bad("localhost:1 ", "1..65535");
	bad("localhost:0x10", "1..65535");
	/* 64 bytes: one too many */
	bad("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa:7001", "too long");
	bad("a b:7001", "host name");
	bad(" localhost:7001", "host name");
	bad("local\nhost:7001", "host name");
	bad("local\rhost:7001", "host name");
	bad("local\thost:7001", "host name");
	bad("local\x7fhost:7001", "host name");
	bad("h\xc3\xa9:7001", "host name");
	bad("-kvfs:7001", "host name");
	bad("kvfs-:7001", "host name");
	bad("a..b:7001", "host name");
	bad(".a:7001", "host name");
	bad("a.:7001", "host name");
	bad("a/b:7001", "host name");
	bad("a@b:7001", "host name");
	bad("a%b:7001", "host name");
	bad("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.b:1", "too long");
	bad("1234567890123456789012345678901234567890123456789012345678901234.b:1", "too long");
	bad("a234567890123456789012345678901234567890123456789012345678901234.b:1", "too long");
	bad("256.0.0.1:7001", "IPv4");
	bad("1.2.3:7001", "IPv4");
	bad("1.2.3.4.5:7001", "IPv4");
	bad("::1:7001", "brackets");
	bad("fe80::1:7001", "brackets");
	bad("[::1:7001", "without ']'");
	bad("::1]:7001", "brackets");
	bad("a]:7001", "without '['");
	bad("[::1]7001", "must follow");
	bad("[::1]x:7001", "must follow");
	bad("[::g]:7001", "IPv6");
	bad("[10.0.0.1]:7001", "IPv6");
	bad("[localhost]:7001", "IPv6");
	bad("[::1%]:7001", "zone");
	bad("[::1%e th0]:7001", "zone");
	bad("[::1%eth0\n]:7001", "zone");
	bad("[::1%aaaaaaaaaaaaaaaa]:7001", "zone");
	/* Port 0 only when asked for. */
	assert_int_equal(hostport_parse("127.0.0.1:0", KVFS_HOSTPORT_ANY_PORT, &hp, NULL), 0);
	assert_int_equal(hp.portnum, 0);
	assert_string_equal(hp.port, "0");
	assert_int_equal(hostport_parse(NULL, 0, &hp, NULL), -EINVAL);
	/* The longest label that fits with a port (a label longer than 63 bytes never fits). */
	ok("a234567890123456789012345678901234567890123456789012345678901:1",
	   "a234567890123456789012345678901234567890123456789012345678901", 1, false);
}

static void test_any(void **state)
{
	struct kvfs_hostport hp;

	assert_int_equal(hostport_parse("0.0.0.0:1", 0, &hp, NULL), 0);
	assert_true(hostport_is_any(&hp));
	assert_int_equal(hostport_parse("[::]:1", 0, &hp, NULL), 0);
	assert_true(hostport_is_any(&hp));
	assert_int_equal(hostport_parse("[0:0::0]:1", 0, &hp, NULL), 0);
	assert_true(hostport_is_any(&hp));
	assert_int_equal(hostport_parse("127.0.0.1:1", 0, &hp, NULL), 0);
	assert_false(hostport_is_any(&hp));
	assert_int_equal(hostport_parse("[::1]:1", 0, &hp, NULL), 0);
	assert_false(hostport_is_any(&hp));
	assert_int_equal(hostport_parse("any:1", 0, &hp, NULL), 0);
	assert_false(hostport_is_any(&hp));
}

static void test_printable(void **state)
{
	char out[8];

	hostport_printable("a\nb\x01\xff", out, sizeof(out));
	assert_string_equal(out, "a?b??");
	hostport_printable("0123456789", out, sizeof(out));
	assert_string_equal(out, "0123456");
	hostport_printable(NULL, out, sizeof(out));
	assert_string_equal(out, "");
}

static void test_check_listen(void **state)
{
	char err[256];

	assert_int_equal(hostport_check_listen("127.0.0.1:7001", err, sizeof(err)), 0);
	assert_int_equal(hostport_check_listen("0.0.0.0:7001", err, sizeof(err)), 0);
	assert_int_equal(hostport_check_listen("localhost:7001", err, sizeof(err)), 0);
	err[0] = '\0';
	assert_int_equal(hostport_check_listen("nosuch.invalid:7001", err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "cannot resolve 'nosuch.invalid'"));
	/* TEST-NET-1 (RFC 5737): not an address of this machine. */
	assert_int_equal(hostport_check_listen("192.0.2.1:7001", err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "not an address of this machine"));
	assert_int_equal(hostport_check_listen("localhost", err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "missing ':PORT'"));
}

static void test_bind(void **state)
{
	struct kvfs_hostport hp;
	char err[256];
	int fd = -1;

	assert_int_equal(hostport_parse("localhost:0", KVFS_HOSTPORT_ANY_PORT, &hp, NULL), 0);
	assert_int_equal(hostport_bind(&hp, false, &fd, err, sizeof(err)), 0);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(hostport_parse("nosuch.invalid:1", 0, &hp, NULL), 0);
	assert_int_equal(hostport_bind(&hp, true, &fd, err, sizeof(err)), -ENOENT);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_accepted),
	    cmocka_unit_test(test_hostile),
	    cmocka_unit_test(test_any),
	    cmocka_unit_test(test_printable),
	    cmocka_unit_test(test_check_listen),
	    cmocka_unit_test(test_bind),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
