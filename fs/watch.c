/*
 * `kvfs watch [--json] [--from INDEX] PATH...` (see watch.h): follows the change feed of the
 * kvfs mount that holds the PATHs and prints the changes under any of them as they commit.
 *
 * It reads the mount's text feed (/.changes, or /.changes@INDEX), parses each line back into a
 * record (changes.h's text format), keeps those under a PATH (changes_match) and prints them as
 * they came, or as JSON lines with --json (changes_fmt_json, the same lines /.changes.json gives).
 */
#include "watch.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kvfs/changes.h"
#include "kvfs/op.h"

#define MAX_PATHS      64
#define LINE_MAX_BYTES (4 * 2 * (KVFS_PATH_MAX + 1) + 256) /* two fully escaped paths */

static int usage(const char *msg)
{
	fprintf(stderr,
	        "kvfs watch: %s\nusage: kvfs watch [--json] [--from INDEX] PATH...\n"
	        "Prints the changes committed under each PATH (in one kvfs mount) as they\n"
	        "commit, one line each (the format of MOUNT/.changes, or of .changes.json with\n"
	        "--json), from the next change on, or from log index INDEX. Runs until stopped.\n"
	        "Exit status: 0 the feed ended (the mount went away cleanly), 1 reading the\n"
	        "feed failed, 2 bad usage or a PATH not in a kvfs mount, 3 INDEX (or the\n"
	        "place a slow watcher had reached) is older than the history the node keeps\n"
	        "(--changes-history; MOUNT/.status shows changes_first).\n",
	        msg);
	return KVFS_WATCH_USAGE;
}

/* Splits path into the kvfs mount holding it (mnt) and the path inside it (rel, "/..."): 0, or
 * -ENOENT when no directory above it is a kvfs mount's root. The path itself need not exist. */
static int locate(const char *path, char *mnt, char *rel)
{
	char abs[PATH_MAX], tail[PATH_MAX] = "", probe[PATH_MAX + 16];
	struct stat st;

	/* The deepest part that exists, resolved; the rest is kept as given. */
	snprintf(abs, sizeof(abs), "%s", path);
	while (!realpath(abs, mnt)) {
		char *slash = strrchr(abs, '/');
		char t[PATH_MAX];

		if (errno != ENOENT)
			return -errno;
		if (snprintf(t, sizeof(t), "/%s%s", slash ? slash + 1 : abs, tail) >=
		        (int)sizeof(t) ||
		    snprintf(tail, sizeof(tail), "%s", t) >= (int)sizeof(tail))
			return -ENAMETOOLONG;
		if (!slash)
			snprintf(abs, sizeof(abs), ".");
		else if (slash == abs)
			snprintf(abs, sizeof(abs), "/");
		else
			*slash = '\0';
	}
	if (snprintf(abs, sizeof(abs), "%s%s", strcmp(mnt, "/") ? mnt : "", tail) >=
	    (int)sizeof(abs))
		return -ENAMETOOLONG;
	/* Up from there to the directory whose .changes is a feed. */
	if (snprintf(mnt, PATH_MAX, "%s", abs) >= PATH_MAX)
		return -ENAMETOOLONG;
	for (;;) {
		if (snprintf(probe, sizeof(probe), "%s/.changes", strcmp(mnt, "/") ? mnt : "") < 0)
			return -EINVAL;
		if (stat(probe, &st) == 0 && S_ISREG(st.st_mode) && st.st_ino == 6)
			break;
		if (strcmp(mnt, "/") == 0)
			return -ENOENT;
		*strrchr(mnt, '/') = '\0';
		if (!mnt[0])
			snprintf(mnt, PATH_MAX, "/");
	}
	snprintf(rel, PATH_MAX, "%s", abs + (strcmp(mnt, "/") ? strlen(mnt) : 0));
	if (!rel[0])
		snprintf(rel, PATH_MAX, "/");
	return 0;
}

/* Decodes a text-format path field in place (\ooo escapes, "-" for none): its length, or -1. */
static long unescape(char *s)
{
	size_t o = 0;

	if (strcmp(s, "-") == 0)
		return 0;
	for (size_t i = 0; s[i]; i++) {
		if (s[i] == '\\') {
			unsigned v = 0;

			for (int k = 1; k <= 3; k++) {
				if (s[i + k] < '0' || s[i + k] > '7')
					return -1;
				v = v * 8 + (unsigned)(s[i + k] - '0');
			}
			if (v > 255)
				return -1;
			s[o++] = (char)v;
			i += 3;
		} else {
			s[o++] = s[i];
		}
	}
	s[o] = '\0';
	return (long)o;
}

/* Parses one text line (without its '\n') into *ch, whose paths then live in buf (ch->paths
 * points into it): 0, or -EBADMSG. */
static int parse_line(char *line, struct kvfs_change *ch, char *buf, size_t buflen)
{
	char *f[8] = {0}, *save = NULL, *tok;
	unsigned long long sec, nsec;
	long pl, nl = 0;
	int n = 0;

	for (tok = strtok_r(line, " ", &save); tok && n < 8; tok = strtok_r(NULL, " ", &save))
		f[n++] = tok;
	if (n < 7 || tok)
		return -EBADMSG;
	memset(ch, 0, sizeof(*ch));
	if (sscanf(f[0], "%" SCNu64, &ch->index) != 1 ||
	    sscanf(f[1], "%" SCNu64, &ch->epoch) != 1 ||
	    sscanf(f[2], "%llu.%llu", &sec, &nsec) != 2 ||
	    sscanf(f[4], "%" SCNu32, &ch->origin) != 1)
		return -EBADMSG;
	ch->time_ns = (int64_t)(sec * 1000000000ull + nsec);
	ch->type = KVFS_OP__COUNT;
	if (strcmp(f[3], "exchange") == 0) {
		ch->type = KVFS_OP_RENAME;
		ch->exchange = true;
	}
	for (unsigned t = 0; t < KVFS_OP__COUNT && ch->type == KVFS_OP__COUNT; t++)
		if (strcmp(f[3], op_type_name(t)) == 0)
			ch->type = (uint8_t)t;
	if (ch->type == KVFS_OP__COUNT)
		return -EBADMSG;
	if (strcmp(f[5], "-") == 0)
		ch->size = -1;
	else if (sscanf(f[5], "%" SCNd64, &ch->size) != 1)
		return -EBADMSG;
	pl = unescape(f[6]);
	if (n == 8)
		nl = unescape(f[7]);
	if (pl < 0 || nl < 0 || (size_t)pl + (size_t)nl + 2 > buflen)
		return -EBADMSG;
	memcpy(buf, f[6], (size_t)pl);
	buf[pl] = '\0';
	if (nl)
		memcpy(buf + pl + 1, f[7], (size_t)nl);
	buf[pl + 1 + nl] = '\0';
	ch->paths = buf;
	ch->path_len = (uint32_t)pl;
	ch->newpath_len = (uint32_t)nl;
	return 0;
}

/* Handles one complete line: prints it if it concerns one of the prefixes. 0 or -EIO (stdout
 * failed). */
static int one_line(char *line, size_t len, char *const *prefixes, int nprefixes, bool json)
{
	static char copy[LINE_MAX_BYTES], paths[2 * (KVFS_PATH_MAX + 1)];
	static char out[LINE_MAX_BYTES];
	struct kvfs_change ch;
	bool match = false;

	if (len >= sizeof(copy))
		return 0;
	memcpy(copy, line, len);
	copy[len] = '\0';
	if (parse_line(copy, &ch, paths, sizeof(paths)) < 0) {
		fprintf(stderr, "kvfs watch: cannot parse a line of the feed: %.*s\n", (int)len,
		        line);
		return 0;
	}
	for (int i = 0; i < nprefixes && !match; i++)
		match = changes_match(&ch, prefixes[i], strlen(prefixes[i]));
	if (!match)
		return 0;
	if (json) {
		changes_fmt_json(&ch, out, sizeof(out));
		fputs(out, stdout);
	} else {
		fwrite(line, 1, len, stdout);
		putchar('\n');
	}
	return fflush(stdout) == 0 ? 0 : -EIO;
}

int watch_main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"json", no_argument, NULL, 'j'},
	    {"from", required_argument, NULL, 'f'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	char mnt[PATH_MAX], first_mnt[PATH_MAX] = "", feed[PATH_MAX + 64];
	char *prefixes[MAX_PATHS];
	const char *from = NULL;
	static char buf[LINE_MAX_BYTES];
	size_t have = 0;
	bool json = false;
	int c, n = 0, fd, code = KVFS_WATCH_USAGE;

	optind = 1;
	while ((c = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
		if (c == 'j') {
			json = true;
		} else if (c == 'f') {
			char *end;

			errno = 0;
			if (!*optarg || strtoull(optarg, &end, 10) == 0 || errno || *end ||
			    optarg[0] == '-')
				return usage("--from: a log index, 1 or more");
			from = optarg;
		} else if (c == 'h') {
			usage("follows changes");
			return 0;
		} else {
			return usage("unknown option");
		}
	}
	if (optind >= argc)
		return usage("no PATH");
	if (argc - optind > MAX_PATHS)
		return usage("too many PATHs (at most 64)");
	for (int i = optind; i < argc; i++, n++) {
		char rel[PATH_MAX];
		int rv = locate(argv[i], mnt, rel);

		if (rv < 0) {
			fprintf(stderr, "kvfs watch: %s is not in a kvfs mount (%s)\n", argv[i],
			        strerror(-rv));
			goto out;
		}
		if (first_mnt[0] && strcmp(first_mnt, mnt) != 0) {
			fprintf(stderr, "kvfs watch: %s and %s are in different mounts\n",
			        argv[optind], argv[i]);
			goto out;
		}
		snprintf(first_mnt, sizeof(first_mnt), "%s", mnt);
		prefixes[n] = strdup(rel);
		if (!prefixes[n]) {
			code = KVFS_WATCH_FAILED;
			goto out;
		}
	}
	if (snprintf(feed, sizeof(feed), "%s/.changes%s%s", strcmp(first_mnt, "/") ? first_mnt : "",
	             from ? "@" : "", from ? from : "") >= (int)sizeof(feed)) {
		usage("--from: too long");
		goto out;
	}
	fd = open(feed, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		code = errno == ERANGE ? KVFS_WATCH_GONE : KVFS_WATCH_FAILED;
		fprintf(stderr, "kvfs watch: cannot open %s: %s%s\n", feed, strerror(errno),
		        errno == ERANGE ? " (older than the history this node keeps; see "
		                          "changes_first in .status)"
		                        : "");
		goto out;
	}
	for (;;) {
		ssize_t got = read(fd, buf + have, sizeof(buf) - have);
		char *p, *nl;

		if (got < 0 && errno == EINTR)
			continue;
		if (got <= 0) {
			code = got == 0          ? KVFS_WATCH_ENDED
			       : errno == ERANGE ? KVFS_WATCH_GONE
			                         : KVFS_WATCH_FAILED;
			if (got < 0)
				fprintf(stderr, "kvfs watch: reading %s: %s\n", feed,
				        strerror(errno));
			break;
		}
		have += (size_t)got;
		for (p = buf; (nl = memchr(p, '\n', have - (size_t)(p - buf))) != NULL;
		     p = nl + 1) {
			if (one_line(p, (size_t)(nl - p), prefixes, n, json) < 0) {
				code = KVFS_WATCH_FAILED;
				close(fd);
				goto out;
			}
		}
		have -= (size_t)(p - buf);
		memmove(buf, p, have);
		if (have == sizeof(buf))
			have = 0; /* no line is this long: drop it */
	}
	close(fd);
out:
	for (int i = 0; i < n; i++)
		free(prefixes[i]);
	return code;
}
