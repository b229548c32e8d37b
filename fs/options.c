/*
 * Command line parsing (see options.h). Every number is checked whole and against its range, and
 * every error names the option and what is accepted, so a typo costs one glance, not a debugging
 * session.
 */
#include "options.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <libgen.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fuse_mount_opts.h"
#include "kvfs/changes.h"
#include "kvfs/config.h"
#include "kvfs/election.h"
#include "kvfs/hostport.h"
#include "kvfs/op.h"
#include "kvfs/score.h"
#include "options_file.h"

enum {
	OPT_ID = 256,
	OPT_DATA,
	OPT_ZK,
	OPT_CLUSTER,
	OPT_CLUSTER_SIZE,
	OPT_LISTEN,
	OPT_ADVERTISE,
	OPT_ELECTION,
	OPT_PRIORITY,
	OPT_READ,
	OPT_WRITE_TIMEOUT,
	OPT_SESSION_TIMEOUT,
	OPT_HOLD_DOWN,
	OPT_MIN_TENURE,
	OPT_RTT_MARGIN,
	OPT_ZONE,
	OPT_ROLE,
	OPT_PREFER_ZONE,
	OPT_AVOID_ZONE,
	OPT_MAX_VALUE,
	OPT_SNAPSHOT_BYTES,
	OPT_SEGMENT_BYTES,
	OPT_CHANGES_HISTORY,
	OPT_SECRET_FILE,
	OPT_INSECURE,
	OPT_ZK_AUTH_FILE,
	OPT_CONFIG,
	OPT_LOG_LEVEL,
	OPT_LOG_FILE,
	OPT_METRICS_LISTEN,
	OPT_NO_DEFAULT_PERMISSIONS,
	OPT_TEST_PEER_DELAY,
	OPT_HELP,
	OPT_VERSION,
	OPT_END,
};

static const struct option long_opts[] = {
    {"id", required_argument, NULL, OPT_ID},
    {"data", required_argument, NULL, OPT_DATA},
    {"zk", required_argument, NULL, OPT_ZK},
    {"cluster", required_argument, NULL, OPT_CLUSTER},
    {"cluster-size", required_argument, NULL, OPT_CLUSTER_SIZE},
    {"listen", required_argument, NULL, OPT_LISTEN},
    {"advertise", required_argument, NULL, OPT_ADVERTISE},
    {"election", required_argument, NULL, OPT_ELECTION},
    {"priority", required_argument, NULL, OPT_PRIORITY},
    {"read", required_argument, NULL, OPT_READ},
    {"write-timeout", required_argument, NULL, OPT_WRITE_TIMEOUT},
    {"session-timeout", required_argument, NULL, OPT_SESSION_TIMEOUT},
    {"hold-down", required_argument, NULL, OPT_HOLD_DOWN},
    {"min-tenure", required_argument, NULL, OPT_MIN_TENURE},
    {"rtt-margin", required_argument, NULL, OPT_RTT_MARGIN},
    {"zone", required_argument, NULL, OPT_ZONE},
    {"role", required_argument, NULL, OPT_ROLE},
    {"prefer-zone", required_argument, NULL, OPT_PREFER_ZONE},
    {"avoid-zone", required_argument, NULL, OPT_AVOID_ZONE},
    {"max-value", required_argument, NULL, OPT_MAX_VALUE},
    {"snapshot-bytes", required_argument, NULL, OPT_SNAPSHOT_BYTES},
    {"segment-bytes", required_argument, NULL, OPT_SEGMENT_BYTES},
    {"changes-history", required_argument, NULL, OPT_CHANGES_HISTORY},
    {"secret-file", required_argument, NULL, OPT_SECRET_FILE},
    {"insecure", no_argument, NULL, OPT_INSECURE},
    {"zk-auth-file", required_argument, NULL, OPT_ZK_AUTH_FILE},
    {"config", required_argument, NULL, OPT_CONFIG},
    {"log-level", required_argument, NULL, OPT_LOG_LEVEL},
    {"log-file", required_argument, NULL, OPT_LOG_FILE},
    {"metrics-listen", required_argument, NULL, OPT_METRICS_LISTEN},
    {"no-default-permissions", no_argument, NULL, OPT_NO_DEFAULT_PERMISSIONS},
    {"test-peer-delay", required_argument, NULL, OPT_TEST_PEER_DELAY},
    {"help", no_argument, NULL, OPT_HELP},
    {"version", no_argument, NULL, OPT_VERSION},
    {NULL, 0, NULL, 0},
};

void options_usage(FILE *f, const char *prog)
{
	fprintf(
	    f,
	    "usage: %s [options] MOUNTPOINT\n"
	    "       %s [options] SOURCE MOUNTPOINT   (as mount -t fuse.kvfs runs it)\n"
	    "\n"
	    "Mounts a kvfs node at MOUNTPOINT: files are keys, their contents are values.\n"
	    "Without --zk the node runs standalone (a cluster of one). SOURCE is a name\n"
	    "without '/': without a config file, %s/SOURCE.conf is read if it exists.\n"
	    "\n"
	    "  --id N                 node id, 1..255 (default 1)\n"
	    "  --data DIR             data directory, created if missing\n"
	    "                         (default /var/lib/kvfs/CLUSTER/ID for root, else\n"
	    "                         $XDG_DATA_HOME or ~/.local/share, then kvfs/CLUSTER/ID)\n"
	    "  --zk HOSTS             ZooKeeper connect string (host:port,...)\n"
	    "  --cluster NAME         cluster name (default \"default\")\n"
	    "  --cluster-size N       voting replicas the cluster is created with, ids 1..N\n"
	    "                         (default 3 with --zk, 1 without; an existing cluster's\n"
	    "                         own when not given; then kvfs member)\n"
	    "  --listen HOST:PORT     replication address (default 127.0.0.1:(7000+id)); HOST is a\n"
	    "                         name, an IPv4 address or [IPv6], and must be this machine's\n"
	    "                         (0.0.0.0 or [::]: every address)\n"
	    "  --advertise HOST:PORT  address announced to peers (default: --listen), a name\n"
	    "                         resolved again at every connection attempt\n"
	    "  --election sequential|priority   (default sequential)\n"
	    "  --priority N           0..1000 (default 1; 0 never leads)\n"
	    "  --read local|linearizable        (default local)\n"
	    "  --write-timeout MS     fail a write with EIO after this long (default 10000)\n"
	    "  --session-timeout MS   ZooKeeper session timeout (default 6000)\n"
	    "  --hold-down MS         priority mode: a better newcomer takes over after this\n"
	    "                         long, once caught up (default 3000); the leader score\n"
	    "                         (README) must beat the leader's that long without a break\n"
	    "  --min-tenure MS        priority mode: a new leader is not asked to give way\n"
	    "                         sooner (0..3600000, default: --hold-down)\n"
	    "  --rtt-margin PCT       priority mode: a challenger's quorum RTT must be this much\n"
	    "                         better than the leader's (1..1000, default 20)\n"
	    "  --role voter|observer  what this node joins as while it is not a member: an\n"
	    "                         observer is added by the leader at once; a voter waits\n"
	    "                         for `kvfs member add ID` (default voter)\n"
	    "  --zone NAME            this node's zone, 1..31 of A-Z a-z 0-9 . _ -\n"
	    "  --prefer-zone Z[,Z...] priority mode: nodes in these zones lead first\n"
	    "  --avoid-zone Z[,Z...]  priority mode: nodes in these zones do not lead while\n"
	    "                         another is eligible\n",
	    prog, prog, KVFS_CONFIG_DIR);
	fprintf(
	    f,
	    "  --max-value SIZE       largest value; bigger writes fail with EFBIG\n"
	    "                         (default 1M, at most %u bytes)\n"
	    "  --snapshot-bytes SIZE  snapshot after SIZE of log (default 64M)\n"
	    "  --segment-bytes SIZE   log segment size (default 64M)\n"
	    "                         sizes: bytes, or K, M, G, T (KiB... too; 1K = 1024)\n"
	    "  --changes-history N    committed changes /.changes keeps for readers to resume\n"
	    "                         from (default 65536, 1..67108864)\n"
	    "  --secret-file PATH     the cluster's shared peer secret, at least 32 bytes, mode\n"
	    "                         600 (required with --zk unless --insecure); give it twice\n"
	    "                         to rotate: dial with the first, accept either\n"
	    "  --insecure             peers without authentication or encryption (trusted\n"
	    "                         networks only; shown in /.status)\n"
	    "  --zk-auth-file PATH    ZooKeeper digest credentials user:password, mode 600;\n"
	    "                         every znode kvfs creates gets an ACL for them alone\n"
	    "  --config FILE          options from FILE: `key = value` lines, the keys being\n"
	    "                         the long options without --, plus mountpoint and\n"
	    "                         options (FUSE -o options); flags override it\n"
	    "  --log-level error|warn|info|debug   (default info)\n"
	    "  --log-file PATH        append the log to PATH (created 0600); SIGUSR1 and\n"
	    "                         SIGHUP reopen it (default: stderr with -f, else\n"
	    "                         DATA/kvfs.log)\n"
	    "  --metrics-listen HOST:PORT  serve GET /metrics (Prometheus text) over HTTP\n"
	    "                         there (no TLS, no auth: bind it where only scrapers reach)\n"
	    "  -f                     stay in the foreground\n"
	    "  -d                     FUSE debug output (implies -f)\n"
	    "  -v                     --log-level debug\n"
	    "  -o OPTIONS             FUSE mount options, e.g. allow_other,default_permissions;\n"
	    "                         also config=FILE and every long option as key=value;\n"
	    "                         allow_other implies default_permissions (the kernel\n"
	    "                         checks modes and owners)\n"
	    "  --no-default-permissions   UNSAFE: allow_other without default_permissions;\n"
	    "                         kvfs then checks permissions itself (see README)\n"
	    "  -h, --help             this text\n"
	    "  -V, --version          the version\n"
	    "\n"
	    "Exit status: 0 clean shutdown, 1 runtime failure, 2 bad usage, 3 mountpoint problem,\n"
	    "4 data directory problem, 5 cluster problem (ZooKeeper unreachable, another\n"
	    "cluster's data directory, a --cluster-size the cluster was not created with, znodes\n"
	    "protected by ZooKeeper ACLs for other credentials).\n",
	    KVFS_DATA_MAX);
	fputs("\nTesting only, with KVFS_TEST_HOOKS=1 in the environment (refused otherwise):\n"
	      "  --test-peer-delay FILE delay every message to a peer by FILE's \"DELAY_MS\n"
	      "                         JITTER_MS\" (0..10000 each), re-read when it changes\n",
	      f);
}

/* Parses all of s as a decimal number in min..max. */
static int parse_u64(const char *name, const char *s, uint64_t min, uint64_t max, uint64_t *out,
                     char *err, size_t errlen)
{
	char *end;
	unsigned long long v;

	if (*s < '0' || *s > '9')
		return options_fail(err, errlen, "%s: '%s' is not a number", name, s);
	errno = 0;
	v = strtoull(s, &end, 10);
	if (*end != '\0')
		return options_fail(err, errlen, "%s: '%s' is not a number", name, s);
	if (errno == ERANGE || v < min || v > max)
		return options_fail(err, errlen, "%s: %s is out of range %" PRIu64 "..%" PRIu64, name, s,
		            min, max);
	*out = v;
	return 0;
}

static int parse_u32(const char *name, const char *s, uint32_t min, uint32_t max, uint32_t *out,
                     char *err, size_t errlen)
{
	uint64_t v;
	int rv = parse_u64(name, s, min, max, &v, err, errlen);

	if (rv == 0)
		*out = (uint32_t)v;
	return rv;
}

/*
 * Parses all of s as a size in min..max bytes: a decimal number with an optional binary suffix
 * K, M, G or T (also k, KiB ...: 1K = 1024).
 */
static int parse_size(const char *name, const char *s, uint64_t min, uint64_t max, uint64_t *out,
                      char *err, size_t errlen)
{
	static const char units[] = "KMGT";
	char *end;
	const char *u;
	unsigned long long v;
	unsigned shift = 0;

	if (*s < '0' || *s > '9')
		goto bad;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (*end != '\0') {
		u = strchr(units, end[0] >= 'a' ? end[0] - 'a' + 'A' : end[0]);
		if (!u || !*u || (end[1] != '\0' && strcmp(end + 1, "iB") != 0))
			goto bad;
		shift = 10 * (unsigned)(u - units + 1);
	}
	if (errno == ERANGE || v > (UINT64_MAX >> shift) || (v << shift) < min ||
	    (v << shift) > max)
		return options_fail(err, errlen, "%s: %s is out of range %" PRIu64 "..%" PRIu64 " bytes",
		            name, s, min, max);
	*out = (uint64_t)v << shift;
	return 0;
bad:
	return options_fail(err, errlen,
	            "%s: '%s' is not a size (bytes, or a number with K, M, G or T: 1K = 1024)",
	            name, s);
}

/*
 * Checks HOST:PORT as the peers read it (hostport.h: a host name, an IPv4 address or a bracketed
 * IPv6 one); an address to listen on must also resolve to one of this machine's.
 */
static int check_addr(const char *name, const char *s, char *err, size_t errlen)
{
	struct kvfs_hostport hp;
	const char *why;
	char reason[256];

	if (hostport_parse(s, 0, &hp, &why) != 0)
		return options_fail(err, errlen, "%s: '%s' is not HOST:PORT: %s (expected %s)", name, s, why,
		            KVFS_HOSTPORT_ACCEPTED);
	if (strcmp(name, "--listen") == 0 && hostport_check_listen(s, reason, sizeof(reason)) < 0)
		return options_fail(err, errlen, "--listen: '%s' is unusable: %s (give an address of this "
		            "machine, or 0.0.0.0:PORT for all)", s, reason);
	return 0;
}

/* Checks a zone name, or with `list` a comma-separated list of them (KVFS_ZONE_MAX). */
static int check_zones(const char *name, const char *s, bool list, char *err, size_t errlen)
{
	static const char ok[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-";

	for (const char *z = s;; z++) {
		size_t len = strspn(z, ok);

		if (len == 0 || len >= KVFS_ZONE_MAX || (z[len] && (z[len] != ',' || !list)))
			return options_fail(err, errlen,
			            "%s: '%s' is not %s 1..%u characters of A-Z a-z 0-9 . _ -",
			            name, s, list ? "a comma-separated list of zones of" : "a zone of",
			            KVFS_ZONE_MAX - 1);
		z += len;
		if (!*z)
			return 0;
	}
}

/* Whether the comma-separated list has the zone. */
static bool zone_in(const char *list, const char *zone)
{
	size_t n = strlen(zone);

	for (const char *z = list; z && *z; z += strcspn(z, ",") + (z[strcspn(z, ",")] == ',')) {
		if (strcspn(z, ",") == n && memcmp(z, zone, n) == 0)
			return true;
	}
	return false;
}

/* This node's zone preference from --zone, --prefer-zone and --avoid-zone. */
static int zone_preference(struct kvfs_options *o, char *err, size_t errlen)
{
	const char *z = o->prefer_zones;

	for (; z && *z; z += strcspn(z, ",") + (z[strcspn(z, ",")] == ',')) {
		char zone[KVFS_ZONE_MAX];

		snprintf(zone, sizeof(zone), "%.*s", (int)strcspn(z, ","), z);
		if (zone_in(o->avoid_zones, zone))
			return options_fail(err, errlen,
			            "--prefer-zone and --avoid-zone both name zone '%s': give it "
			            "in one of them",
			            zone);
	}
	o->zpref = !o->zone                           ? 0
	           : zone_in(o->prefer_zones, o->zone) ? 1
	           : zone_in(o->avoid_zones, o->zone)  ? -1
	                                               : 0;
	if (!o->min_tenure_given)
		o->min_tenure_ms = o->hold_down_ms;
	return 0;
}

/* Replaces *dst with a copy of src, freeing the old one. */
static int set_str(char **dst, const char *src)
{
	char *s = strdup(src);

	if (!s)
		return -ENOMEM;
	free(*dst);
	*dst = s;
	return 0;
}

/* The directory relative paths are resolved against while a config file is read; NULL: the
 * current directory. options_parse is not reentrant anyway (getopt's state is global). */
static const char *rel_base;

/* An absolute version of path (not resolved through symlinks; the path need not exist). */
static char *absolute(const char *path)
{
	char cwd[PATH_MAX];
	char *out;

	if (path[0] == '/')
		return strdup(path);
	if (rel_base)
		snprintf(cwd, sizeof(cwd), "%s", rel_base);
	else if (!getcwd(cwd, sizeof(cwd)))
		return NULL;
	if (asprintf(&out, "%s/%s", cwd, path) < 0)
		return NULL;
	return out;
}

/*
 * A test hook's file (--test-peer-delay): refused unless KVFS_TEST_HOOKS=1 is in the
 * environment, so that no production configuration can slow its links by accident.
 */
static int test_hook_path(const char *name, const char *s, char **dst, char *err, size_t errlen)
{
	const char *env = getenv("KVFS_TEST_HOOKS");

	if (!env || strcmp(env, "1") != 0)
		return options_fail(err, errlen,
		            "%s is a test hook: it is accepted only with KVFS_TEST_HOOKS=1 in the "
		            "environment (never in production)",
		            name);
	if (!*s)
		return options_fail(err, errlen, "%s: empty path", name);
	free(*dst);
	*dst = absolute(s);
	return *dst ? 0 : -ENOMEM;
}

bool options_has_fuse_opt(const char *opts, const char *name)
{
	size_t n = strlen(name);

	while (opts && *opts) {
		size_t len = strcspn(opts, ",");

		if (len == n && memcmp(opts, name, n) == 0)
			return true;
		opts += len;
		if (*opts == ',')
			opts++;
	}
	return false;
}

static int set_defaults(struct kvfs_options *o, bool size_given, char *err, size_t errlen)
{
	struct kvfs_hostport hp;
	char buf[PATH_MAX];

	if (!size_given)
		o->cluster_size = o->zk ? 3 : 1;
	o->cluster_size_given = size_given;
	/* Any id may be a member (membership changes at runtime, `kvfs member`); --cluster-size
	 * is the size the cluster is created with: voters 1..N. */
	if (o->zk && o->id > KVFS_CONFIG_ID_MAX)
		return options_fail(err, errlen, "--id: %u is not a node id (1..%u in a cluster)",
		                    o->id, KVFS_CONFIG_ID_MAX);
	if (!o->listen) {
		if (o->id > 65535 - 7000)
			return options_fail(err, errlen, "--id %u needs an explicit --listen", o->id);
		snprintf(buf, sizeof(buf), "127.0.0.1:%u", 7000 + o->id);
		if (set_str(&o->listen, buf) < 0)
			return -ENOMEM;
	}
	if (o->zk && o->insecure && o->n_secret_files > 0)
		return options_fail(err, errlen, "--insecure and --secret-file: give one or the other");
	if (o->zk && !o->insecure && o->n_secret_files == 0)
		return options_fail(err, errlen,
		            "--secret-file is required with --zk: the peers' shared secret, the "
		            "same file on every node (make one with: (umask 077; head -c 32 "
		            "/dev/urandom | base64 > /etc/kvfs/secret)); or --insecure for a "
		            "network where every host is trusted");
	if (!o->advertise && set_str(&o->advertise, o->listen) < 0)
		return -ENOMEM;
	if (o->zk && hostport_parse(o->advertise, 0, &hp, NULL) == 0 && hostport_is_any(&hp))
		return options_fail(err, errlen, "--advertise: peers cannot dial '%s'; with --listen on every "
		            "address, give --advertise HOST:PORT, a name or address they reach",
		            o->advertise);
	if (!o->data_dir) {
		if (options_default_data_dir(geteuid() == 0, getenv("XDG_DATA_HOME"),
		                             getenv("HOME"), o->cluster, o->id, buf, sizeof(buf),
		                             err, errlen) < 0)
			return -EINVAL;
		if (set_str(&o->data_dir, buf) < 0)
			return -ENOMEM;
	}
	return 0;
}

int options_default_data_dir(bool root, const char *xdg_data_home, const char *home,
                             const char *cluster, uint32_t id, char *buf, size_t len, char *err,
                             size_t errlen)
{
	if (root)
		snprintf(buf, len, "/var/lib/kvfs/%s/%u", cluster, id);
	else if (xdg_data_home && xdg_data_home[0] == '/')
		snprintf(buf, len, "%s/kvfs/%s/%u", xdg_data_home, cluster, id);
	else if (home && home[0] == '/')
		snprintf(buf, len, "%s/.local/share/kvfs/%s/%u", home, cluster, id);
	else
		return options_fail(err, errlen,
		            "--data is needed: no default data directory for a user other than "
		            "root without HOME or XDG_DATA_HOME");
	return 0;
}

/* The state of one options_parse. */
struct parse {
	struct kvfs_options *o;
	char *err;
	size_t errlen;
	bool from_file;        /* applying a line of the config file */
	bool given[OPT_END];   /* what the command line (its -o included) set: the file cannot */
	bool size_given;       /* --cluster-size, from anywhere */
	bool mountpoint_given; /* on the command line */
	char **pending;        /* "--key=value" words from -o, applied after the other flags */
	unsigned n_pending;
	char *file_fuse_opts; /* the config file's `options` */
};

static int parse_level(const char *s, enum kvfs_log_level *out, char *err, size_t errlen)
{
	static const char *const names[] = {"error", "warn", "info", "debug"};

	for (int i = 0; i < 4; i++) {
		if (strcmp(s, names[i]) == 0) {
			*out = (enum kvfs_log_level)i;
			return 0;
		}
	}
	return options_fail(err, errlen, "--log-level: '%s' is not error, warn, info or debug", s);
}

/* The long option named by the len first bytes of key, as a config key or -o key=value. */
static const struct option *find_key(const char *key, size_t len)
{
	for (const struct option *lo = long_opts; lo->name; lo++)
		if (lo->val != OPT_HELP && lo->val != OPT_VERSION && strlen(lo->name) == len &&
		    memcmp(lo->name, key, len) == 0)
			return lo;
	return NULL;
}

/*
 * The command-line word for a key and its value (NULL for a bare key): "--id=2", "--insecure",
 * or *word NULL for a switch set to false. Returns 0, -ENOMEM, or -EINVAL with a message.
 */
static int key_word(const struct option *lo, const char *value, char **word, char *err,
                    size_t errlen)
{
	*word = NULL;
	if (lo->has_arg == no_argument) {
		if (!value || strcmp(value, "true") == 0 || strcmp(value, "yes") == 0)
			return asprintf(word, "--%s", lo->name) < 0 ? -ENOMEM : 0;
		if (strcmp(value, "false") == 0 || strcmp(value, "no") == 0)
			return 0;
		return options_fail(err, errlen, "%s: '%s' is not true or false (or give %s alone)",
		            lo->name, value, lo->name);
	}
	if (!value)
		return options_fail(err, errlen, "'%s' needs a value (%s = VALUE, or -o %s=VALUE)",
		            lo->name, lo->name, lo->name);
	return asprintf(word, "--%s=%s", lo->name, value) < 0 ? -ENOMEM : 0;
}

/* fuse_mount_opts_split's hook for a -o of the command line: takes config=FILE and the long
 * options as key=value, to be applied after the other flags. */
static int own_opt(void *arg, const char *opt)
{
	struct parse *p = arg;
	size_t klen = strcspn(opt, "=");
	const char *value = opt[klen] ? opt + klen + 1 : NULL;
	const struct option *lo = find_key(opt, klen);
	char *word, **grown;
	int rv;

	if (!lo)
		return 0;
	rv = key_word(lo, value, &word, p->err, p->errlen);
	if (rv < 0 || !word)
		return rv < 0 ? rv : 1;
	grown = realloc(p->pending, (p->n_pending + 1) * sizeof(*grown));
	if (!grown) {
		free(word);
		return -ENOMEM;
	}
	p->pending = grown;
	p->pending[p->n_pending++] = word;
	return 1;
}

/* The same hook for the config file's `options`: kvfs's keys belong on lines of their own. */
static int own_opt_in_file(void *arg, const char *opt)
{
	struct parse *p = arg;

	if (!find_key(opt, strcspn(opt, "=")))
		return 0;
	return options_fail(p->err, p->errlen,
	            "options: '%s' is a kvfs key, not a FUSE option: give it a line of its own",
	            opt);
}

/*
 * Applies the options of one argument vector: the command line, the "--key=value" words its -o
 * gave, or one line of the config file (p->from_file: then what the command line set is left
 * alone). Returns 0 (optind is then at the first operand), KVFS_OPTIONS_HELP or _VERSION, or a
 * negative errno with a message in p->err.
 */
static int parse_argv(struct parse *p, int argc, char **argv)
{
	struct kvfs_options *o = p->o;
	char *err = p->err;
	size_t errlen = p->errlen;
	char *path;
	int c, rv = 0;

	optind = 0; /* glibc: a full reinitialisation, as several vectors are parsed */
	opterr = 0;
	while (rv == 0 && (c = getopt_long(argc, argv, ":fdvo:hV", long_opts, NULL)) != -1) {
		if (c > 0 && c < OPT_END) {
			if (p->from_file && p->given[c])
				continue;
			if (!p->from_file)
				p->given[c] = true;
		}
		switch (c) {
		case OPT_ID:
			rv = parse_u32("--id", optarg, 1, 1000000, &o->id, err, errlen);
			break;
		case OPT_DATA:
			if (!*optarg)
				return options_fail(err, errlen, "--data: empty path");
			path = absolute(optarg);
			if (!path)
				return -ENOMEM;
			free(o->data_dir);
			o->data_dir = path;
			break;
		case OPT_ZK:
			if (!*optarg)
				return options_fail(err, errlen, "--zk: empty connect string");
			rv = set_str(&o->zk, optarg);
			break;
		case OPT_CLUSTER:
			if (!*optarg || strchr(optarg, '/') || strlen(optarg) > 64)
				return options_fail(err, errlen,
				            "--cluster: '%s' must be 1..64 characters without '/'",
				            optarg);
			rv = set_str(&o->cluster, optarg);
			break;
		case OPT_CLUSTER_SIZE:
			rv = parse_u32("--cluster-size", optarg, 1, 15, &o->cluster_size, err,
			               errlen);
			p->size_given = true;
			break;
		case OPT_LISTEN:
			rv = check_addr("--listen", optarg, err, errlen);
			if (rv == 0)
				rv = set_str(&o->listen, optarg);
			break;
		case OPT_ADVERTISE:
			rv = check_addr("--advertise", optarg, err, errlen);
			if (rv == 0)
				rv = set_str(&o->advertise, optarg);
			break;
		case OPT_ELECTION:
			if (strcmp(optarg, "sequential") != 0 && strcmp(optarg, "priority") != 0)
				return options_fail(err, errlen,
				            "--election: '%s' is not sequential or priority",
				            optarg);
			rv = set_str(&o->election, optarg);
			break;
		case OPT_PRIORITY:
			rv = parse_u32("--priority", optarg, 0, 1000, &o->priority, err, errlen);
			break;
		case OPT_READ:
			if (strcmp(optarg, "local") == 0)
				o->read_mode = KVFS_READ_LOCAL;
			else if (strcmp(optarg, "linearizable") == 0)
				o->read_mode = KVFS_READ_LINEARIZABLE;
			else
				return options_fail(err, errlen,
				            "--read: '%s' is not local or linearizable", optarg);
			break;
		case OPT_WRITE_TIMEOUT:
			rv = parse_u64("--write-timeout", optarg, 1, 86400000, &o->write_timeout_ms,
			               err, errlen);
			break;
		case OPT_SESSION_TIMEOUT:
			rv = parse_u64("--session-timeout", optarg, 100, 600000,
			               &o->session_timeout_ms, err, errlen);
			break;
		case OPT_HOLD_DOWN:
			rv = parse_u64("--hold-down", optarg, 0, 3600000, &o->hold_down_ms, err,
			               errlen);
			break;
		case OPT_MIN_TENURE:
			rv = parse_u64("--min-tenure", optarg, 0, 3600000, &o->min_tenure_ms, err,
			               errlen);
			o->min_tenure_given = true;
			break;
		case OPT_RTT_MARGIN:
			rv = parse_u32("--rtt-margin", optarg, 1, 1000, &o->rtt_margin_pct, err,
			               errlen);
			break;
		case OPT_ROLE:
			if (strcmp(optarg, "voter") == 0)
				o->role_observer = false;
			else if (strcmp(optarg, "observer") == 0)
				o->role_observer = true;
			else
				return options_fail(err, errlen,
				            "--role: '%s' must be voter or observer", optarg);
			break;
		case OPT_ZONE:
			rv = check_zones("--zone", optarg, false, err, errlen);
			if (rv == 0)
				rv = set_str(&o->zone, optarg);
			break;
		case OPT_PREFER_ZONE:
		case OPT_AVOID_ZONE:
			rv = check_zones(c == OPT_PREFER_ZONE ? "--prefer-zone" : "--avoid-zone",
			                 optarg, true, err, errlen);
			if (rv == 0)
				rv = set_str(c == OPT_PREFER_ZONE ? &o->prefer_zones : &o->avoid_zones,
				             optarg);
			break;
		case OPT_MAX_VALUE:
			rv = parse_size("--max-value", optarg, 1, KVFS_DATA_MAX, &o->max_value, err,
			                errlen);
			break;
		case OPT_SNAPSHOT_BYTES:
			rv = parse_size("--snapshot-bytes", optarg, 4096, UINT64_C(1) << 40,
			                &o->snapshot_bytes, err, errlen);
			break;
		case OPT_CHANGES_HISTORY:
			rv = parse_u32("--changes-history", optarg, 1, KVFS_CHANGES_MAX,
			               &o->changes_history, err, errlen);
			break;
		case OPT_SEGMENT_BYTES:
			rv = parse_size("--segment-bytes", optarg, 4096, UINT64_C(1) << 32,
			                &o->segment_bytes, err, errlen);
			break;
		case OPT_SECRET_FILE:
			if (!*optarg)
				return options_fail(err, errlen, "--secret-file: empty path");
			if (o->n_secret_files == 2)
				return options_fail(err, errlen,
				            "--secret-file: at most two (the current secret and the "
				            "next, while rotating)");
			path = absolute(optarg);
			if (!path)
				return -ENOMEM;
			o->secret_files[o->n_secret_files++] = path;
			break;
		case OPT_INSECURE:
			o->insecure = true;
			break;
		case OPT_ZK_AUTH_FILE:
			if (!*optarg)
				return options_fail(err, errlen, "--zk-auth-file: empty path");
			path = absolute(optarg);
			if (!path)
				return -ENOMEM;
			free(o->zk_auth_file);
			o->zk_auth_file = path;
			break;
		case OPT_NO_DEFAULT_PERMISSIONS:
			o->no_default_permissions = true;
			break;
		case OPT_METRICS_LISTEN:
			rv = check_addr("--metrics-listen", optarg, err, errlen);
			if (rv == 0)
				rv = set_str(&o->metrics_listen, optarg);
			break;
		case OPT_TEST_PEER_DELAY:
			rv = test_hook_path("--test-peer-delay", optarg, &o->test_peer_delay, err,
			                    errlen);
			break;
		case 'f':
			o->foreground = true;
			break;
		case 'd':
			o->debug = true;
			o->foreground = true;
			break;
		case OPT_CONFIG:
			if (!*optarg)
				return options_fail(err, errlen, "--config: empty path");
			path = absolute(optarg);
			if (!path)
				return -ENOMEM;
			free(o->config);
			o->config = path;
			break;
		case OPT_LOG_LEVEL:
			rv = parse_level(optarg, &o->log_level, err, errlen);
			break;
		case OPT_LOG_FILE:
			if (!*optarg)
				return options_fail(err, errlen, "--log-file: empty path");
			path = absolute(optarg);
			if (!path)
				return -ENOMEM;
			free(o->log_file);
			o->log_file = path;
			break;
		case 'v':
			o->log_level = KVFS_LOG_DEBUG;
			break;
		case 'o':
			rv = fuse_mount_opts_split(optarg, own_opt, p, &o->fuse_opts);
			break;
		case 'h':
		case OPT_HELP:
			return KVFS_OPTIONS_HELP;
		case 'V':
		case OPT_VERSION:
			return KVFS_OPTIONS_VERSION;
		case ':':
			return options_fail(err, errlen, "%s needs a value", argv[optind - 1]);
		default:
			if (optopt)
				return options_fail(err, errlen, "unknown option -%c", optopt);
			return options_fail(err, errlen, "unknown option %s", argv[optind - 1]);
		}
	}
	return rv;
}

/* options_file_read's hook: one key of the config file. */
static int file_line(void *arg, const char *key, const char *value, char *err, size_t errlen)
{
	struct parse *p = arg;
	const struct option *lo = find_key(key, strlen(key));
	char *saved_err = p->err, *word, *argv[3] = {"kvfs", NULL, NULL};
	size_t saved_len = p->errlen;
	int rv;

	p->err = err;
	p->errlen = errlen;
	if (strcmp(key, "mountpoint") == 0 || strcmp(key, "options") == 0) {
		if (!value || !*value)
			rv = options_fail(err, errlen, "'%s' needs a value (%s = VALUE)", key, key);
		else if (key[0] == 'o')
			rv = fuse_mount_opts_split(value, own_opt_in_file, p, &p->file_fuse_opts);
		else if (p->mountpoint_given)
			rv = 0;
		else {
			free(p->o->mountpoint);
			p->o->mountpoint = absolute(value);
			rv = p->o->mountpoint ? 0 : -ENOMEM;
		}
	} else if (!lo) {
		rv = options_fail(err, errlen,
		          "unknown key '%s' (the keys are the long options without --, and "
		          "mountpoint and options; see kvfs --help)",
		          key);
	} else if (lo->val == OPT_CONFIG) {
		rv = options_fail(err, errlen,
		          "'config' in a config file: a config file cannot name another");
	} else {
		rv = key_word(lo, value, &word, err, errlen);
		if (rv == 0 && word) {
			argv[1] = word;
			p->from_file = true;
			rv = parse_argv(p, 2, argv);
			p->from_file = false;
			free(word);
		}
	}
	p->err = saved_err;
	p->errlen = saved_len;
	return rv;
}

/* The operands: MOUNTPOINT, or SOURCE MOUNTPOINT (mount.fuse3 passes them so). */
static int take_operands(struct parse *p, int argc, char **argv, int first)
{
	struct kvfs_options *o = p->o;
	int n = argc - first;
	bool source_ok = n >= 2 && !strchr(argv[first], '/');

	if (n > 2 || (n == 2 && !source_ok))
		return options_fail(p->err, p->errlen,
		            "unexpected argument '%s' (one MOUNTPOINT, or SOURCE MOUNTPOINT where "
		            "SOURCE is a name without '/')",
		            argv[source_ok ? first + 2 : first + 1]);
	if (n == 2 && argv[first][0] && set_str(&o->source, argv[first]) < 0)
		return -ENOMEM;
	if (n > 0) {
		o->mountpoint = absolute(argv[argc - 1]);
		if (!o->mountpoint)
			return -ENOMEM;
		p->mountpoint_given = true;
	}
	return 0;
}

/* Reads the config file: --config, -o config=, or KVFS_CONFIG_DIR/SOURCE.conf if there is one. */
static int read_config(struct parse *p)
{
	struct kvfs_options *o = p->o;
	char *dir, *joined;
	int rv;

	if (!o->config && o->source) {
		if (asprintf(&o->config, "%s/%s.conf", KVFS_CONFIG_DIR, o->source) < 0) {
			o->config = NULL;
			return -ENOMEM;
		}
		if (access(o->config, F_OK) < 0) {
			free(o->config);
			o->config = NULL;
		}
	}
	if (!o->config)
		return 0;
	dir = strdup(o->config);
	if (!dir)
		return -ENOMEM;
	rel_base = dirname(dir);
	rv = options_file_read(o->config, file_line, p, p->err, p->errlen);
	rel_base = NULL;
	free(dir);
	if (rv < 0 || !p->file_fuse_opts)
		return rv;
	/* The command line's come last: libfuse lets the last of two options win. */
	if (!o->fuse_opts) {
		o->fuse_opts = p->file_fuse_opts;
		p->file_fuse_opts = NULL;
		return 0;
	}
	if (asprintf(&joined, "%s,%s", p->file_fuse_opts, o->fuse_opts) < 0)
		return -ENOMEM;
	free(o->fuse_opts);
	o->fuse_opts = joined;
	return 0;
}

static int parse_all(struct parse *p, int argc, char **argv)
{
	char **words;
	int rv, added;

	rv = parse_argv(p, argc, argv);
	if (rv == 0)
		rv = take_operands(p, argc, argv, optind);
	if (rv == 0 && p->n_pending > 0) {
		words = calloc(p->n_pending + 2, sizeof(*words));
		if (!words)
			return -ENOMEM;
		words[0] = "kvfs";
		memcpy(words + 1, p->pending, p->n_pending * sizeof(*words));
		rv = parse_argv(p, (int)p->n_pending + 1, words);
		free(words);
	}
	if (rv == 0)
		rv = read_config(p);
	if (rv == 0 && !p->o->mountpoint)
		rv = options_fail(p->err, p->errlen,
		          "missing MOUNTPOINT (give it last, or as mountpoint in the config file)");
	if (rv == 0)
		rv = set_defaults(p->o, p->size_given, p->err, p->errlen);
	if (rv == 0)
		rv = zone_preference(p->o, p->err, p->errlen);
	if (rv == 0) {
		added = fuse_mount_opts_imply_permissions(&p->o->fuse_opts,
		                                          p->o->no_default_permissions);
		p->o->default_permissions_implied = added > 0;
		rv = added < 0 ? added : 0;
	}
	return rv;
}

int options_parse(struct kvfs_options *o, int argc, char **argv, char *err, size_t errlen)
{
	struct parse p = {.o = o, .err = err, .errlen = errlen};
	int rv;

	o->id = 1;
	o->priority = 1;
	o->write_timeout_ms = 10000;
	o->session_timeout_ms = 6000;
	o->hold_down_ms = 3000;
	o->rtt_margin_pct = KVFS_RTT_MARGIN_DEFAULT;
	o->max_value = 1048576;
	o->log_level = KVFS_LOG_INFO;
	if (set_str(&o->cluster, "default") < 0 || set_str(&o->election, "sequential") < 0)
		return -ENOMEM;
	rv = parse_all(&p, argc, argv);
	for (unsigned i = 0; i < p.n_pending; i++)
		free(p.pending[i]);
	free(p.pending);
	free(p.file_fuse_opts);
	return rv;
}

void options_free(struct kvfs_options *o)
{
	free(o->data_dir);
	free(o->zk);
	free(o->cluster);
	free(o->listen);
	free(o->advertise);
	free(o->election);
	free(o->fuse_opts);
	free(o->mountpoint);
	free(o->secret_files[0]);
	free(o->secret_files[1]);
	free(o->zk_auth_file);
	free(o->test_peer_delay);
	free(o->log_file);
	free(o->config);
	free(o->source);
	free(o->metrics_listen);
	free(o->zone);
	free(o->prefer_zones);
	free(o->avoid_zones);
}
