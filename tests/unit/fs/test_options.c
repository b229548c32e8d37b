/* Unit tests for the command line: defaults, every option, and the errors a typo gets. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "options.h"

static int parse_args(struct kvfs_options *o, char *err, size_t errlen, char **argv)
{
	int argc = 0;

	while (argv[argc])
		argc++;
	return options_parse(o, argc, argv, err, errlen);
}

#define PARSE(o, err, ...)                                                                         \
	parse_args((o), (err), sizeof(err), (char *[]){"kvfs", __VA_ARGS__, NULL})

static void test_defaults_standalone(void **state)
{
	struct kvfs_options o = {0};
	char err[256] = "";

	assert_int_equal(PARSE(&o, err, "/mnt/x"), KVFS_OPTIONS_RUN);
	assert_int_equal(o.id, 1);
	assert_null(o.zk);
	assert_int_equal(o.cluster_size, 1);
	assert_string_equal(o.cluster, "default");
	assert_string_equal(o.listen, "127.0.0.1:7001");
	assert_string_equal(o.advertise, "127.0.0.1:7001");
	assert_string_equal(o.election, "sequential");
	assert_int_equal(o.priority, 1);
	assert_int_equal(o.read_mode, KVFS_READ_LOCAL);
	assert_int_equal(o.write_timeout_ms, 10000);
	assert_int_equal(o.session_timeout_ms, 6000);
	assert_int_equal(o.hold_down_ms, 3000);
	assert_int_equal(o.max_value, 1048576);
	assert_string_equal(o.data_dir, "/var/lib/kvfs/default/1");
	assert_string_equal(o.mountpoint, "/mnt/x");
	assert_false(o.foreground);
	options_free(&o);
}

static void test_all_options(void **state)
{
	struct kvfs_options o = {0};
	char err[256] = "";

	assert_int_equal(PARSE(&o, err, "--id", "2", "--data", "/d", "--zk", "h:1,h:2", "--cluster",
	                       "c", "--cluster-size", "5", "--listen", "0.0.0.0:9000",
	                       "--advertise", "10.0.0.2:9000", "--election", "priority",
	                       "--priority", "0", "--read", "linearizable", "--write-timeout",
	                       "500", "--session-timeout", "2000", "--hold-down", "750", "--max-value", "4096", "-f",
	                       "--secret-file", "/s1", "--secret-file", "s2", "--zk-auth-file", "/za",
	                       "-o", "allow_other", "-o", "default_permissions", "/m"),
	                 KVFS_OPTIONS_RUN);
	assert_int_equal(o.id, 2);
	assert_string_equal(o.data_dir, "/d");
	assert_string_equal(o.zk, "h:1,h:2");
	assert_string_equal(o.cluster, "c");
	assert_int_equal(o.cluster_size, 5);
	assert_string_equal(o.listen, "0.0.0.0:9000");
	assert_string_equal(o.advertise, "10.0.0.2:9000");
	assert_string_equal(o.election, "priority");
	assert_int_equal(o.priority, 0);
	assert_int_equal(o.read_mode, KVFS_READ_LINEARIZABLE);
	assert_int_equal(o.write_timeout_ms, 500);
	assert_int_equal(o.session_timeout_ms, 2000);
	assert_int_equal(o.hold_down_ms, 750);
	assert_int_equal(o.max_value, 4096);
	assert_int_equal(o.n_secret_files, 2);
	assert_string_equal(o.secret_files[0], "/s1");
	assert_true(o.secret_files[1][0] == '/'); /* made absolute */
	assert_string_equal(o.zk_auth_file, "/za");
	assert_false(o.insecure);
	assert_true(o.foreground);
	assert_string_equal(o.fuse_opts, "allow_other,default_permissions");
	assert_true(options_has_fuse_opt(o.fuse_opts, "default_permissions"));
	assert_true(options_has_fuse_opt(o.fuse_opts, "allow_other"));
	assert_false(options_has_fuse_opt(o.fuse_opts, "default"));
	options_free(&o);
}

static void test_zk_defaults_and_relative_paths(void **state)
{
	struct kvfs_options o = {0};
	char err[256] = "";

	assert_int_equal(PARSE(&o, err, "--zk", "h:2181", "--insecure", "--id", "3", "--data", "rel", "mnt"),
	                 KVFS_OPTIONS_RUN);
	assert_int_equal(o.cluster_size, 3);
	assert_string_equal(o.listen, "127.0.0.1:7003");
	assert_true(o.data_dir[0] == '/');
	assert_true(strlen(o.data_dir) > 4 &&
	            strcmp(o.data_dir + strlen(o.data_dir) - 4, "/rel") == 0);
	assert_true(o.mountpoint[0] == '/');
	options_free(&o);
}

static void expect_error(const char *want, int rv, const char *err)
{
	assert_int_equal(rv, -EINVAL);
	if (!strstr(err, want))
		fail_msg("error '%s' does not mention '%s'", err, want);
}

static void test_errors(void **state)
{
	struct kvfs_options o;
	char err[256];

#define BAD(want, ...)                                                                             \
	do {                                                                                       \
		memset(&o, 0, sizeof(o));                                                          \
		err[0] = '\0';                                                                     \
		expect_error(want, PARSE(&o, err, __VA_ARGS__), err);                              \
		options_free(&o);                                                                  \
	} while (0)

	BAD("missing MOUNTPOINT", "-f");
	BAD("unexpected argument", "/a", "/b");
	BAD("--priority: 2000 is out of range 0..1000", "--priority", "2000", "/m");
	BAD("--id: 'x' is not a number", "--id", "x", "/m");
	BAD("--id: 0 is out of range", "--id", "0", "/m");
	BAD("--max-value: '12k' is not a number", "--max-value", "12k", "/m");
	BAD("--max-value", "--max-value", "0", "/m");
	BAD("--write-timeout", "--write-timeout", "-5", "/m");
	BAD("--election: 'random'", "--election", "random", "/m");
	BAD("--read: 'stale'", "--read", "stale", "/m");
	BAD("--listen: 'nohost'", "--listen", "nohost", "/m");
	BAD("--listen", "--listen", "h:99999", "/m");
	BAD("too long", "--advertise",
	    "a-very-long-host-name.of-a-pod.in-a-namespace.of-a-kubernetes-cluster.local:7001",
	    "/m");
	BAD("--listen: 'nosuch.invalid:7001' is unusable: cannot resolve", "--listen",
	    "nosuch.invalid:7001", "/m");
	BAD("not an address of this machine", "--listen", "192.0.2.1:7001", "/m");
	BAD("brackets", "--listen", "::1:7001", "/m");
	BAD("port out of range", "--listen", "localhost:0", "/m");
	BAD("--advertise: 'a b:1' is not HOST:PORT: not a valid host name", "--advertise", "a b:1",
	    "/m");
	BAD("--advertise: peers cannot dial '0.0.0.0:7001'", "--zk", "h:1", "--insecure",
	    "--listen", "0.0.0.0:7001", "/m");
	BAD("--advertise: peers cannot dial '[::]:7001'", "--zk", "h:1", "--insecure",
	    "--advertise", "[::]:7001", "/m");
	BAD("--cluster", "--cluster", "a/b", "/m");
	BAD("unknown option --bogus", "--bogus", "/m");
	BAD("unknown option -q", "-q", "/m");
	BAD("needs a value", "/m", "--id");
	BAD("not a voting replica", "--zk", "h:1", "--insecure", "--id", "4", "/m");
	BAD("--secret-file is required with --zk", "--zk", "h:1", "/m");
	BAD("one or the other", "--zk", "h:1", "--insecure", "--secret-file", "/s", "/m");
	BAD("at most two", "--zk", "h:1", "--secret-file", "/a", "--secret-file", "/b",
	    "--secret-file", "/c", "/m");
#undef BAD
}

/* Host names: --listen must resolve to this machine; --advertise need only be well formed (a
 * container's own name may not resolve until it runs: see README). */
static void test_host_names(void **state)
{
	struct kvfs_options o = {0};
	char err[256] = "";

	assert_int_equal(PARSE(&o, err, "--zk", "zk1:2181", "--insecure", "--listen",
	                       "localhost:7001", "--advertise", "kvfs-1.kvfs.svc:7001", "/m"),
	                 KVFS_OPTIONS_RUN);
	assert_string_equal(o.listen, "localhost:7001");
	assert_string_equal(o.advertise, "kvfs-1.kvfs.svc:7001");
	options_free(&o);
	memset(&o, 0, sizeof(o));
	assert_int_equal(PARSE(&o, err, "--zk", "zk1:2181", "--insecure", "--listen",
	                       "0.0.0.0:7001", "--advertise", "kvfs_node_1:7001", "/m"),
	                 KVFS_OPTIONS_RUN);
	assert_string_equal(o.advertise, "kvfs_node_1:7001");
	options_free(&o);
}

static void test_help_version(void **state)
{
	struct kvfs_options o = {0};
	char err[256];

	assert_int_equal(PARSE(&o, err, "--help"), KVFS_OPTIONS_HELP);
	options_free(&o);
	memset(&o, 0, sizeof(o));
	assert_int_equal(PARSE(&o, err, "-V"), KVFS_OPTIONS_VERSION);
	options_free(&o);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_defaults_standalone),
	    cmocka_unit_test(test_all_options),
	    cmocka_unit_test(test_zk_defaults_and_relative_paths),
	    cmocka_unit_test(test_errors),
	    cmocka_unit_test(test_host_names),
	    cmocka_unit_test(test_help_version),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
