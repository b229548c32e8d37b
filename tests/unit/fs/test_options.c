/* Unit tests for the command line: defaults, every option, and the errors a typo gets. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

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

/* allow_other implies default_permissions unless --no-default-permissions (any spelling). */
static void test_default_permissions(void **state)
{
	struct kvfs_options o = {0};
	char err[256] = "";

	assert_int_equal(PARSE(&o, err, "-o", "allow_other", "/m"), KVFS_OPTIONS_RUN);
	assert_string_equal(o.fuse_opts, "allow_other,default_permissions");
	assert_true(o.default_permissions_implied);
	options_free(&o);
	memset(&o, 0, sizeof(o));
	assert_int_equal(PARSE(&o, err, "-o", "default_permissions,allow_other", "/m"),
	                 KVFS_OPTIONS_RUN);
	assert_string_equal(o.fuse_opts, "default_permissions,allow_other");
	assert_false(o.default_permissions_implied);
	options_free(&o);
	memset(&o, 0, sizeof(o));
	assert_int_equal(PARSE(&o, err, "-o", "allow_other", "--no-default-permissions", "/m"),
	                 KVFS_OPTIONS_RUN);
	assert_string_equal(o.fuse_opts, "allow_other");
	assert_true(o.no_default_permissions);
	options_free(&o);
	memset(&o, 0, sizeof(o));
	assert_int_equal(PARSE(&o, err, "-o", "allow_other,no-default-permissions", "/m"),
	                 KVFS_OPTIONS_RUN);
	assert_string_equal(o.fuse_opts, "allow_other");
	options_free(&o);
	memset(&o, 0, sizeof(o));
	assert_int_equal(PARSE(&o, err, "-o", "ro", "/m"), KVFS_OPTIONS_RUN);
	assert_string_equal(o.fuse_opts, "ro"); /* a private mount: nothing added */
	assert_false(o.default_permissions_implied);
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
	BAD("--max-value: '12x' is not a size", "--max-value", "12x", "/m");
	BAD("--max-value: '1KB' is not a size", "--max-value", "1KB", "/m");
	BAD("--max-value: 2G is out of range", "--max-value", "2G", "/m");
	BAD("--segment-bytes: 1K is out of range 4096..", "--segment-bytes", "1K", "/m");
	BAD("--snapshot-bytes: 99999999999999999999T is out of range", "--snapshot-bytes",
	    "99999999999999999999T", "/m");
	BAD("--log-level: 'loud' is not error, warn, info or debug", "--log-level", "loud", "/m");
	BAD("unexpected argument '/b'", "src", "/a", "/b");
	BAD("'id' needs a value", "-o", "id", "/m");
	BAD("insecure: 'maybe' is not true or false", "-o", "insecure=maybe", "/m");
	BAD("--id: 'x' is not a number", "-o", "allow_other,id=x", "/m");
	BAD("--config: cannot read /nonexistent/kvfs.conf", "--config", "/nonexistent/kvfs.conf", "/m");
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
	BAD("is not a node id (1..255", "--zk", "h:1", "--insecure", "--id", "256", "/m");
	/* Any id 1..255 may join a cluster created with 3 voters (kvfs member add). */
	memset(&o, 0, sizeof(o));
	assert_int_equal(PARSE(&o, err, "--zk", "h:1", "--insecure", "--id", "4", "/m"), 0);
	assert_int_equal(o.id, 4);
	assert_int_equal(o.cluster_size, 3);
	assert_false(o.cluster_size_given); /* an existing cluster's size is taken */
	options_free(&o);
	memset(&o, 0, sizeof(o));
	assert_int_equal(PARSE(&o, err, "--zk", "h:1", "--insecure", "--cluster-size", "5", "/m"), 0);
	assert_int_equal(o.cluster_size, 5);
	assert_true(o.cluster_size_given); /* checked against the cluster's */
	options_free(&o);
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

static void test_sizes(void **state)
{
	struct kvfs_options o = {0};
	char err[256] = "";

	assert_int_equal(PARSE(&o, err, "--max-value", "1k", "--snapshot-bytes", "1G",
	                       "--segment-bytes", "64MiB", "/m"),
	                 KVFS_OPTIONS_RUN);
	assert_int_equal(o.max_value, 1024);
	assert_int_equal(o.snapshot_bytes, UINT64_C(1) << 30);
	assert_int_equal(o.segment_bytes, UINT64_C(64) << 20);
	options_free(&o);
	memset(&o, 0, sizeof(o));
	assert_int_equal(PARSE(&o, err, "--max-value", "64K", "--snapshot-bytes", "1T", "/m"),
	                 KVFS_OPTIONS_RUN);
	assert_int_equal(o.max_value, 65536);
	assert_int_equal(o.snapshot_bytes, UINT64_C(1) << 40);
	options_free(&o);
}

/* The leader score's options: defaults, this node's zone preference, every bad value. */
static void test_score_options(void **state)
{
	struct kvfs_options o = {0};
	char err[256] = "";

	assert_int_equal(PARSE(&o, err, "--hold-down", "1500", "/m"), KVFS_OPTIONS_RUN);
	assert_int_equal(o.rtt_margin_pct, 20);
	assert_int_equal(o.min_tenure_ms, 1500); /* follows --hold-down */
	assert_null(o.zone);
	assert_int_equal(o.zpref, 0);
	options_free(&o);
	memset(&o, 0, sizeof(o));
	assert_int_equal(PARSE(&o, err, "--zone", "eu-1.b_2", "--prefer-zone", "us,eu-1.b_2",
	                       "--avoid-zone", "ap", "--rtt-margin", "35", "--min-tenure", "0",
	                       "/m"),
	                 KVFS_OPTIONS_RUN);
	assert_string_equal(o.zone, "eu-1.b_2");
	assert_int_equal(o.zpref, 1);
	assert_int_equal(o.rtt_margin_pct, 35);
	assert_int_equal(o.min_tenure_ms, 0);
	options_free(&o);
	memset(&o, 0, sizeof(o));
	assert_int_equal(PARSE(&o, err, "--zone", "ap", "--prefer-zone", "us", "--avoid-zone",
	                       "eu,ap", "/m"),
	                 KVFS_OPTIONS_RUN);
	assert_int_equal(o.zpref, -1);
	options_free(&o);
	memset(&o, 0, sizeof(o));
	/* Prefix of a listed zone is not that zone. */
	assert_int_equal(PARSE(&o, err, "--zone", "a", "--prefer-zone", "ab", "/m"),
	                 KVFS_OPTIONS_RUN);
	assert_int_equal(o.zpref, 0);
	options_free(&o);

#define BAD(want, ...)                                                                             \
	do {                                                                                       \
		memset(&o, 0, sizeof(o));                                                          \
		err[0] = '\0';                                                                     \
		expect_error(want, PARSE(&o, err, __VA_ARGS__), err);                              \
		options_free(&o);                                                                  \
	} while (0)

	BAD("--rtt-margin: 0 is out of range 1..1000", "--rtt-margin", "0", "/m");
	BAD("--rtt-margin: 1001 is out of range 1..1000", "--rtt-margin", "1001", "/m");
	BAD("--rtt-margin: '20%' is not a number", "--rtt-margin", "20%", "/m");
	BAD("--min-tenure: 3600001 is out of range 0..3600000", "--min-tenure", "3600001", "/m");
	BAD("--zone: '' is not a zone of 1..31 characters", "--zone", "", "/m");
	BAD("--zone: 'a b' is not a zone", "--zone", "a b", "/m");
	BAD("--zone: 'a,b' is not a zone", "--zone", "a,b", "/m");
	BAD("--zone: 'abcdefghijabcdefghijabcdefghijab' is not", "--zone",
	    "abcdefghijabcdefghijabcdefghijab", "/m");
	BAD("--prefer-zone: 'a,' is not a comma-separated list", "--prefer-zone", "a,", "/m");
	BAD("--avoid-zone: 'a,,b' is not a comma-separated list", "--avoid-zone", "a,,b", "/m");
	BAD("--prefer-zone and --avoid-zone both name zone 'b'", "--zone", "a", "--prefer-zone",
	    "a,b", "--avoid-zone", "b", "/m");
#undef BAD
}

/* --role: what a node that is not a member joins as. */
static void test_role_option(void **state)
{
	struct kvfs_options o = {0};
	char err[256] = "";

	(void)state;
	assert_int_equal(PARSE(&o, err, "/m"), KVFS_OPTIONS_RUN);
	assert_false(o.role_observer);
	options_free(&o);
	memset(&o, 0, sizeof(o));
	assert_int_equal(PARSE(&o, err, "--role", "observer", "/m"), KVFS_OPTIONS_RUN);
	assert_true(o.role_observer);
	options_free(&o);
	memset(&o, 0, sizeof(o));
	assert_int_equal(PARSE(&o, err, "--role", "observer", "--role", "voter", "/m"),
	                 KVFS_OPTIONS_RUN);
	assert_false(o.role_observer);
	options_free(&o);
	memset(&o, 0, sizeof(o));
	expect_error("--role: 'leader' must be voter or observer",
	             PARSE(&o, err, "--role", "leader", "/m"), err);
	options_free(&o);
}

static void test_logging_options(void **state)
{
	struct kvfs_options o = {0};
	char err[256] = "";

	assert_int_equal(PARSE(&o, err, "/m"), KVFS_OPTIONS_RUN);
	assert_int_equal(o.log_level, KVFS_LOG_INFO);
	assert_null(o.log_file);
	options_free(&o);
	memset(&o, 0, sizeof(o));
	assert_int_equal(PARSE(&o, err, "--log-level", "warn", "--log-file", "k.log", "/m"),
	                 KVFS_OPTIONS_RUN);
	assert_int_equal(o.log_level, KVFS_LOG_WARN);
	assert_true(o.log_file[0] == '/');
	options_free(&o);
	memset(&o, 0, sizeof(o));
	assert_int_equal(PARSE(&o, err, "-v", "/m"), KVFS_OPTIONS_RUN);
	assert_int_equal(o.log_level, KVFS_LOG_DEBUG);
	options_free(&o);
}

/* -o as mount.fuse3 passes it: kvfs's keys taken, mount(8)'s dropped, FUSE's kept. */
static void test_mount_helper_form(void **state)
{
	struct kvfs_options o = {0};
	char err[256] = "";

	assert_int_equal(PARSE(&o, err, "name", "/mnt/kv", "-o",
	                       "rw,id=1,max-value=4K,_netdev,nofail,defaults,x-systemd.automount,"
	                       "comment=x,allow_other,insecure,zk=h1:1\\,h2:2,dev,suid",
	                       "-o", "default_permissions,log-level=debug"),
	                 KVFS_OPTIONS_RUN);
	assert_string_equal(o.source, "name");
	assert_string_equal(o.mountpoint, "/mnt/kv");
	assert_int_equal(o.max_value, 4096);
	assert_true(o.insecure);
	assert_string_equal(o.zk, "h1:1,h2:2");
	assert_int_equal(o.log_level, KVFS_LOG_DEBUG);
	assert_string_equal(o.fuse_opts, "rw,allow_other,dev,suid,default_permissions");
	assert_null(o.config); /* no /etc/kvfs/name.conf here */
	options_free(&o);
}

/* Writes text to a new file in dir and returns its path (static buffer). */
static char *write_conf(const char *dir, const char *name, const char *text, mode_t mode)
{
	static char path[512];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	assert_int_equal(chmod(path, mode), 0);
	return path;
}

static void test_config_file(void **state)
{
	char dir[] = "/tmp/kvfs-test-options.XXXXXX";
	struct kvfs_options o = {0};
	char err[256] = "", want[600];
	char *conf;

	assert_non_null(mkdtemp(dir));
	conf = write_conf(dir, "a.conf",
	                  "# node two\n"
	                  "\n"
	                  "id = 2\n"
	                  "zk=h:2181,h2:2181\n"
	                  "  cluster   prod\n"
	                  "cluster-size = 3\n"
	                  "secret-file = secret.old\n"
	                  "secret-file /etc/kvfs/secret.new\n"
	                  "insecure = false\n"
	                  "data = d\n"
	                  "max-value = 64K\n"
	                  "log-level = debug\n"
	                  "options = allow_other,ro\n"
	                  "mountpoint = mnt\n",
	                  0640);
	assert_int_equal(PARSE(&o, err, "--config", conf, "--max-value", "1k", "-o", "rw"),
	                 KVFS_OPTIONS_RUN);
	assert_int_equal(o.id, 2);
	assert_string_equal(o.zk, "h:2181,h2:2181");
	assert_string_equal(o.cluster, "prod");
	assert_int_equal(o.n_secret_files, 2);
	snprintf(want, sizeof(want), "%s/secret.old", dir);
	assert_string_equal(o.secret_files[0], want);
	assert_string_equal(o.secret_files[1], "/etc/kvfs/secret.new");
	assert_false(o.insecure);
	snprintf(want, sizeof(want), "%s/d", dir);
	assert_string_equal(o.data_dir, want);
	snprintf(want, sizeof(want), "%s/mnt", dir);
	assert_string_equal(o.mountpoint, want);
	assert_int_equal(o.max_value, 1024); /* the flag wins, though it came after --config */
	assert_int_equal(o.log_level, KVFS_LOG_DEBUG);
	/* the command line's last; allow_other brings default_permissions */
	assert_string_equal(o.fuse_opts, "allow_other,ro,rw,default_permissions");
	assert_true(o.default_permissions_implied);
	assert_string_equal(o.config, conf);
	options_free(&o);

	/* Flags win over the file, -o ones too, whatever their order; repeated keys as well. */
	memset(&o, 0, sizeof(o));
	conf = write_conf(dir, "a.conf", "id = 2\nzk = h:1\nsecret-file = /s\n", 0600);
	assert_int_equal(PARSE(&o, err, "--id", "3", "-o", "config=" , "/m"), -EINVAL);
	options_free(&o);
	memset(&o, 0, sizeof(o));
	snprintf(want, sizeof(want), "config=%s,secret-file=/t", conf);
	assert_int_equal(PARSE(&o, err, "/m", "--id", "3", "-o", want), KVFS_OPTIONS_RUN);
	assert_int_equal(o.id, 3);
	assert_int_equal(o.n_secret_files, 1);
	assert_string_equal(o.secret_files[0], "/t");
	assert_string_equal(o.mountpoint, "/m");
	options_free(&o);

	unlink(conf);
	rmdir(dir);
}

static void test_config_errors(void **state)
{
	char dir[] = "/tmp/kvfs-test-options.XXXXXX";
	struct kvfs_options o;
	char err[256], want[600];
	char *conf;

	assert_non_null(mkdtemp(dir));
#define BAD_CONF(text, mode, line, msg)                                                            \
	do {                                                                                       \
		memset(&o, 0, sizeof(o));                                                          \
		err[0] = '\0';                                                                     \
		conf = write_conf(dir, "b.conf", text, mode);                                      \
		snprintf(want, sizeof(want), "%s%s%s", conf, line, msg);                           \
		expect_error(want, PARSE(&o, err, "--config", conf, "/m"), err);                   \
		options_free(&o);                                                                  \
	} while (0)

	BAD_CONF("id = 2\n\n# c\nzk_hosts = h:1\n", 0600, ":4: ", "unknown key 'zk_hosts'");
	BAD_CONF("id = x\n", 0600, ":1: ", "--id: 'x' is not a number");
	BAD_CONF("id\n", 0600, ":1: ", "'id' needs a value");
	BAD_CONF("insecure = maybe\n", 0600, ":1: ", "insecure: 'maybe' is not true or false");
	BAD_CONF("config = /x\n", 0600, ":1: ", "'config' in a config file");
	BAD_CONF("help\n", 0600, ":1: ", "unknown key 'help'");
	BAD_CONF("options = allow_other,id=2\n", 0600, ":1: ", "options: 'id=2' is a kvfs key");
	BAD_CONF("mountpoint =\n", 0600, ":1: ", "'mountpoint' needs a value");
	BAD_CONF("= 2\n", 0600, ":1: ", "a line must start with a key");
	BAD_CONF("id = 2\n", 0666, ": ", "writable by everyone");
	/* A file someone else may change decides what kvfs (often root) runs with: refused. */
	if (geteuid() == 0) {
		conf = write_conf(dir, "b.conf", "id = 2\n", 0660);
		assert_int_equal(chown(conf, 0, 4321), 0);
		memset(&o, 0, sizeof(o));
		expect_error("writable by group 4321", PARSE(&o, err, "--config", conf, "/m"), err);
		options_free(&o);
		assert_int_equal(chown(conf, 4321, 0), 0);
		assert_int_equal(chmod(conf, 0600), 0);
		memset(&o, 0, sizeof(o));
		expect_error("owned by uid 4321", PARSE(&o, err, "--config", conf, "/m"), err);
		options_free(&o);
	}
	/* A NUL byte would cut the line short silently: refused with its line number. */
	{
		static const char nul[] = "id = 2\nzk = h:1\0cluster = x\n";
		FILE *f = fopen(conf, "w");

		assert_non_null(f);
		assert_int_equal(fwrite(nul, 1, sizeof(nul) - 1, f), sizeof(nul) - 1);
		fclose(f);
		if (geteuid() == 0)
			assert_int_equal(chown(conf, 0, 0), 0);
		memset(&o, 0, sizeof(o));
		snprintf(want, sizeof(want), "%s:2: a NUL byte", conf);
		expect_error(want, PARSE(&o, err, "--config", conf, "/m"), err);
		options_free(&o);
	}
#undef BAD_CONF
	unlink(conf);
	rmdir(dir);
}

static void test_default_data_dir(void **state)
{
	char buf[256], err[256];

	assert_int_equal(options_default_data_dir(true, "/x", "/home/u", "c", 2, buf, sizeof(buf),
	                                          err, sizeof(err)),
	                 0);
	assert_string_equal(buf, "/var/lib/kvfs/c/2");
	assert_int_equal(options_default_data_dir(false, "/x", "/home/u", "c", 2, buf, sizeof(buf),
	                                          err, sizeof(err)),
	                 0);
	assert_string_equal(buf, "/x/kvfs/c/2");
	assert_int_equal(options_default_data_dir(false, "rel", "/home/u", "c", 2, buf,
	                                          sizeof(buf), err, sizeof(err)),
	                 0);
	assert_string_equal(buf, "/home/u/.local/share/kvfs/c/2");
	assert_int_equal(options_default_data_dir(false, NULL, NULL, "c", 2, buf, sizeof(buf), err,
	                                          sizeof(err)),
	                 -EINVAL);
	assert_non_null(strstr(err, "--data is needed"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_defaults_standalone),
	    cmocka_unit_test(test_all_options),
	    cmocka_unit_test(test_default_permissions),
	    cmocka_unit_test(test_zk_defaults_and_relative_paths),
	    cmocka_unit_test(test_errors),
	    cmocka_unit_test(test_host_names),
	    cmocka_unit_test(test_help_version),
	    cmocka_unit_test(test_sizes),
	    cmocka_unit_test(test_score_options),
	    cmocka_unit_test(test_role_option),
	    cmocka_unit_test(test_logging_options),
	    cmocka_unit_test(test_mount_helper_form),
	    cmocka_unit_test(test_config_file),
	    cmocka_unit_test(test_config_errors),
	    cmocka_unit_test(test_default_data_dir),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
