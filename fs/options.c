/*
 * Command line parsing (see options.h). Every number is checked whole and against its range, and
 * every error names the option and what is accepted, so a typo costs one glance, not a debugging
 * session.
 */
#include "options.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kvfs/election.h"
#include "kvfs/hostport.h"
#include "kvfs/op.h"

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
	OPT_MAX_VALUE,
	OPT_SNAPSHOT_BYTES,
	OPT_SEGMENT_BYTES,
	OPT_SECRET_FILE,
	OPT_INSECURE,
	OPT_ZK_AUTH_FILE,
	OPT_HELP,
	OPT_VERSION,
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
    {"max-value", required_argument, NULL, OPT_MAX_VALUE},
    {"snapshot-bytes", required_argument, NULL, OPT_SNAPSHOT_BYTES},
    {"segment-bytes", required_argument, NULL, OPT_SEGMENT_BYTES},
    {"secret-file", required_argument, NULL, OPT_SECRET_FILE},
    {"insecure", no_argument, NULL, OPT_INSECURE},
    {"zk-auth-file", required_argument, NULL, OPT_ZK_AUTH_FILE},
    {"help", no_argument, NULL, OPT_HELP},
    {"version", no_argument, NULL, OPT_VERSION},
    {NULL, 0, NULL, 0},
};

void options_usage(FILE *f, const char *prog)
{
	fprintf(
	    f,
	    "usage: %s [options] MOUNTPOINT\n"
	    "\n"
	    "Mounts a kvfs node at MOUNTPOINT: files are keys, their contents are values.\n"
	    "Without --zk the node runs standalone (a cluster of one).\n"
	    "\n"
	    "  --id N                 node id, 1..N (default 1)\n"
	    "  --data DIR             data directory, created if missing\n"
	    "                         (default /var/lib/kvfs/CLUSTER/ID)\n"
	    "  --zk HOSTS             ZooKeeper connect string (host:port,...)\n"
	    "  --cluster NAME         cluster name (default \"default\")\n"
	    "  --cluster-size N       voting replicas (default 3 with --zk, 1 without)\n"
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
	    "                         long, once caught up (default 3000)\n"
	    "  --max-value BYTES      largest value; bigger writes fail with EFBIG\n"
	    "                         (default 1048576, at most %u)\n"
	    "  --snapshot-bytes N     snapshot after N bytes of log (default 67108864)\n"
	    "  --segment-bytes N      log segment size (default 67108864)\n"
	    "  --secret-file PATH     the cluster's shared peer secret, at least 32 bytes, mode\n"
	    "                         600 (required with --zk unless --insecure); give it twice\n"
	    "                         to rotate: dial with the first, accept either\n"
	    "  --insecure             peers without authentication or encryption (trusted\n"
	    "                         networks only; shown in /.status)\n"
	    "  --zk-auth-file PATH    ZooKeeper digest credentials user:password, mode 600;\n"
	    "                         every znode kvfs creates gets an ACL for them alone\n"
	    "  -f                     stay in the foreground, log to stderr\n"
	    "  -d                     FUSE debug output (implies -f)\n"
	    "  -v                     verbose log\n"
	    "  -o OPTIONS             FUSE mount options, e.g. allow_other,default_permissions\n"
	    "  -h, --help             this text\n"
	    "  -V, --version          the version\n"
	    "\n"
	    "Exit status: 0 clean shutdown, 1 runtime failure, 2 bad usage, 3 mountpoint problem,\n"
	    "4 data directory problem, 5 cluster problem (ZooKeeper unreachable, another\n"
	    "cluster's data directory, a --cluster-size the cluster was not created with, znodes\n"
	    "protected by ZooKeeper ACLs for other credentials).\n",
	    prog, KVFS_DATA_MAX);
}

static int fail(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

/* Parses all of s as a decimal number in min..max. */
static int parse_u64(const char *name, const char *s, uint64_t min, uint64_t max, uint64_t *out,
                     char *err, size_t errlen)
{
	char *end;
	unsigned long long v;

	if (*s < '0' || *s > '9')
		return fail(err, errlen, "%s: '%s' is not a number", name, s);
	errno = 0;
	v = strtoull(s, &end, 10);
	if (*end != '\0')
		return fail(err, errlen, "%s: '%s' is not a number", name, s);
	if (errno == ERANGE || v < min || v > max)
		return fail(err, errlen, "%s: %s is out of range %" PRIu64 "..%" PRIu64, name, s,
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
 * Checks HOST:PORT as the peers read it (hostport.h: a host name, an IPv4 address or a bracketed
 * IPv6 one); an address to listen on must also resolve to one of this machine's.
 */
static int check_addr(const char *name, const char *s, char *err, size_t errlen)
{
	struct kvfs_hostport hp;
	const char *why;
	char reason[256];

	if (hostport_parse(s, 0, &hp, &why) != 0)
		return fail(err, errlen, "%s: '%s' is not HOST:PORT: %s (expected %s)", name, s, why,
		            KVFS_HOSTPORT_ACCEPTED);
	if (strcmp(name, "--listen") == 0 && hostport_check_listen(s, reason, sizeof(reason)) < 0)
		return fail(err, errlen, "--listen: '%s' is unusable: %s (give an address of this "
		            "machine, or 0.0.0.0:PORT for all)", s, reason);
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

/* An absolute version of path (not resolved through symlinks; the path need not exist). */
static char *absolute(const char *path)
{
	char cwd[PATH_MAX];
	char *out;

	if (path[0] == '/')
		return strdup(path);
	if (!getcwd(cwd, sizeof(cwd)))
		return NULL;
	if (asprintf(&out, "%s/%s", cwd, path) < 0)
		return NULL;
	return out;
}

static int append_fuse_opts(struct kvfs_options *o, const char *opts)
{
	char *joined;

	if (!o->fuse_opts)
		return set_str(&o->fuse_opts, opts);
	if (asprintf(&joined, "%s,%s", o->fuse_opts, opts) < 0)
		return -ENOMEM;
	free(o->fuse_opts);
	o->fuse_opts = joined;
	return 0;
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
	if (o->zk && o->id > o->cluster_size)
		return fail(err, errlen,
		            "--id: %u is not a voting replica of a cluster of %u (ids 1..%u)",
		            o->id, o->cluster_size, o->cluster_size);
	if (!o->listen) {
		if (o->id > 65535 - 7000)
			return fail(err, errlen, "--id %u needs an explicit --listen", o->id);
		snprintf(buf, sizeof(buf), "127.0.0.1:%u", 7000 + o->id);
		if (set_str(&o->listen, buf) < 0)
			return -ENOMEM;
	}
	if (o->zk && o->insecure && o->n_secret_files > 0)
		return fail(err, errlen, "--insecure and --secret-file: give one or the other");
	if (o->zk && !o->insecure && o->n_secret_files == 0)
		return fail(err, errlen,
		            "--secret-file is required with --zk: the peers' shared secret, the "
		            "same file on every node (make one with: (umask 077; head -c 32 "
		            "/dev/urandom | base64 > /etc/kvfs/secret)); or --insecure for a "
		            "network where every host is trusted");
	if (!o->advertise && set_str(&o->advertise, o->listen) < 0)
		return -ENOMEM;
	if (o->zk && hostport_parse(o->advertise, 0, &hp, NULL) == 0 && hostport_is_any(&hp))
		return fail(err, errlen, "--advertise: peers cannot dial '%s'; with --listen on every "
		            "address, give --advertise HOST:PORT, a name or address they reach",
		            o->advertise);
	if (!o->data_dir) {
		snprintf(buf, sizeof(buf), "/var/lib/kvfs/%s/%u", o->cluster, o->id);
		if (set_str(&o->data_dir, buf) < 0)
			return -ENOMEM;
	}
	return 0;
}

int options_parse(struct kvfs_options *o, int argc, char **argv, char *err, size_t errlen)
{
	bool size_given = false;
	char *path;
	int c, rv = 0;

	o->id = 1;
	o->priority = 1;
	o->write_timeout_ms = 10000;
	o->session_timeout_ms = 6000;
	o->hold_down_ms = 3000;
	o->max_value = 1048576;
	if (set_str(&o->cluster, "default") < 0 || set_str(&o->election, "sequential") < 0)
		return -ENOMEM;

	optind = 1;
	opterr = 0;
	while (rv == 0 && (c = getopt_long(argc, argv, ":fdvo:hV", long_opts, NULL)) != -1) {
		switch (c) {
		case OPT_ID:
			rv = parse_u32("--id", optarg, 1, 1000000, &o->id, err, errlen);
			break;
		case OPT_DATA:
			if (!*optarg)
				return fail(err, errlen, "--data: empty path");
			path = absolute(optarg);
			if (!path)
				return -ENOMEM;
			free(o->data_dir);
			o->data_dir = path;
			break;
		case OPT_ZK:
			if (!*optarg)
				return fail(err, errlen, "--zk: empty connect string");
			rv = set_str(&o->zk, optarg);
			break;
		case OPT_CLUSTER:
			if (!*optarg || strchr(optarg, '/') || strlen(optarg) > 64)
				return fail(err, errlen,
				            "--cluster: '%s' must be 1..64 characters without '/'",
				            optarg);
			rv = set_str(&o->cluster, optarg);
			break;
		case OPT_CLUSTER_SIZE:
			rv = parse_u32("--cluster-size", optarg, 1, 15, &o->cluster_size, err,
			               errlen);
			size_given = true;
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
				return fail(err, errlen,
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
				return fail(err, errlen,
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
		case OPT_MAX_VALUE:
			rv = parse_u64("--max-value", optarg, 1, KVFS_DATA_MAX, &o->max_value, err,
			               errlen);
			break;
		case OPT_SNAPSHOT_BYTES:
			rv = parse_u64("--snapshot-bytes", optarg, 4096, UINT64_C(1) << 40,
			               &o->snapshot_bytes, err, errlen);
			break;
		case OPT_SEGMENT_BYTES:
			rv = parse_u64("--segment-bytes", optarg, 4096, UINT64_C(1) << 32,
			               &o->segment_bytes, err, errlen);
			break;
		case OPT_SECRET_FILE:
			if (!*optarg)
				return fail(err, errlen, "--secret-file: empty path");
			if (o->n_secret_files == 2)
				return fail(err, errlen,
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
				return fail(err, errlen, "--zk-auth-file: empty path");
			path = absolute(optarg);
			if (!path)
				return -ENOMEM;
			free(o->zk_auth_file);
			o->zk_auth_file = path;
			break;
		case 'f':
			o->foreground = true;
			break;
		case 'd':
			o->debug = true;
			o->foreground = true;
			break;
		case 'v':
			o->verbose = true;
			break;
		case 'o':
			rv = append_fuse_opts(o, optarg);
			break;
		case 'h':
		case OPT_HELP:
			return KVFS_OPTIONS_HELP;
		case 'V':
		case OPT_VERSION:
			return KVFS_OPTIONS_VERSION;
		case ':':
			return fail(err, errlen, "%s needs a value", argv[optind - 1]);
		default:
			if (optopt)
				return fail(err, errlen, "unknown option -%c", optopt);
			return fail(err, errlen, "unknown option %s", argv[optind - 1]);
		}
	}
	if (rv < 0)
		return rv;
	if (optind >= argc)
		return fail(err, errlen, "missing MOUNTPOINT");
	if (optind + 1 < argc)
		return fail(err, errlen, "unexpected argument '%s' (one MOUNTPOINT only)",
		            argv[optind + 1]);
	o->mountpoint = absolute(argv[optind]);
	if (!o->mountpoint)
		return -ENOMEM;
	return set_defaults(o, size_given, err, errlen);
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
}
