/*
 * crash_writer: a deterministic stream of writes into a kvfs mount, and the checker that tells
 * whether a crash lost any of them.
 *
 * Write mode (`crash_writer [-s SEED] [-n MAXOPS] DIR`) performs operations 0, 1, 2, ... in order.
 * Operation i is either a put (open O_CREAT|O_TRUNC, write, close) of a file k<id> whose content
 * is derived from (SEED, i) — a new key or a rewrite of an earlier one, 0..20000 bytes — or an
 * append (O_APPEND) of one line derived from i to the shared file `log`. Only after close() has
 * returned 0 does it print "ack <i>" to stdout and flush it; it stops at the first error. Since
 * operations run one at a time, at most one operation (the one after the last ack) was in flight
 * when the daemon died.
 *
 * Check mode (`crash_writer -c ACKFILE [-s SEED] DIR`) replays the same plan and requires:
 * - each key holds exactly the content of its last acknowledged put, or that of the in-flight put
 *   when it targets this key (a new key of the in-flight put may also be absent or empty: the file
 *   is created at open, its value is committed at close);
 * - `log` holds exactly the acknowledged append lines, in order, each once, optionally followed by
 *   the in-flight line when that operation is an append;
 * - nothing else is in DIR.
 * It prints every violation and exits 1 if there is one.
 */
#include <dirent.h>
#include <stdarg.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_PUT_SIZE 20000
#define LOG_NAME     "log"

enum op_kind { OP_PUT, OP_APPEND };

struct op {
	uint64_t i;
	enum op_kind kind;
	uint64_t key; /* OP_PUT: the key's id (the op number of its first put) */
	size_t size;  /* OP_PUT: the value's size */
};

/* The sequence of operations, a function of the seed only. */
struct plan {
	uint64_t seed;
	uint64_t next;  /* number of the next operation plan_next returns */
	uint64_t *keys; /* ids of the keys put so far, in order of first put */
	size_t nkeys;
	size_t cap;
};

static uint64_t mix(uint64_t x)
{
	/* splitmix64's finalizer */
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

static void *xrealloc(void *p, size_t size)
{
	p = realloc(p, size);
	if (p == NULL) {
		perror("crash_writer: out of memory");
		exit(2);
	}
	return p;
}

/* Computes operation number plan->next and advances. */
static void plan_next(struct plan *plan, struct op *op)
{
	uint64_t i = plan->next++;
	uint64_t r = mix(plan->seed ^ mix(i));

	memset(op, 0, sizeof(*op));
	op->i = i;
	if (r % 5 == 0) {
		op->kind = OP_APPEND;
		return;
	}
	op->kind = OP_PUT;
	if (plan->nkeys == 0 || (r >> 8) % 5 < 2) {
		op->key = i;
		if (plan->nkeys == plan->cap) {
			plan->cap = plan->cap ? 2 * plan->cap : 64;
			plan->keys = xrealloc(plan->keys, plan->cap * sizeof(*plan->keys));
		}
		plan->keys[plan->nkeys++] = i;
	} else {
		op->key = plan->keys[(r >> 16) % plan->nkeys];
	}
	switch ((r >> 32) % 10) {
	case 0:
		op->size = 0;
		break;
	case 1:
		op->size = 1 + (r >> 40) % 100;
		break;
	default:
		op->size = (r >> 40) % (MAX_PUT_SIZE + 1);
		break;
	}
}

/* Fills buf with the value of put op (op->size bytes). */
static void put_content(uint64_t seed, const struct op *op, unsigned char *buf)
{
	char head[64];
	int n = snprintf(head, sizeof(head), "put %" PRIu64 " key %" PRIu64 "\n", op->i, op->key);
	uint64_t x = mix(seed ^ 0x5eed ^ mix(op->i));

	for (size_t k = 0; k < op->size; k++) {
		if (k < (size_t)n) {
			buf[k] = (unsigned char)head[k];
			continue;
		}
		if (k % 8 == 0)
			x = mix(x);
		buf[k] = (unsigned char)(x >> (8 * (k % 8)));
	}
}

/* Writes the line of append op i into buf (at least 128 bytes); returns its length. */
static size_t append_line(const struct op *op, char *buf)
{
	int pad = (int)(op->i % 40);

	return (size_t)sprintf(buf, "append %" PRIu64 " %.*s\n", op->i, pad,
	                       "........................................");
}

static void key_path(char *path, size_t len, const char *dir, uint64_t key)
{
	snprintf(path, len, "%s/k%" PRIu64, dir, key);
}

/* write(2) until everything is written. Returns 0 or -errno. */
static int write_all(int fd, const void *buf, size_t len)
{
	const unsigned char *p = buf;

	while (len > 0) {
		ssize_t n = write(fd, p, len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/*
 * Performs op on dir. Returns 0 once close() returned 0, else -errno with *stage naming the call
 * that failed.
 */
static int run_op(uint64_t seed, const char *dir, const struct op *op, const char **stage)
{
	static unsigned char buf[MAX_PUT_SIZE];
	char path[4096];
	const void *data = buf;
	size_t len;
	int fd, flags, rv;

	if (op->kind == OP_PUT) {
		key_path(path, sizeof(path), dir, op->key);
		put_content(seed, op, buf);
		len = op->size;
		flags = O_WRONLY | O_CREAT | O_TRUNC;
	} else {
		snprintf(path, sizeof(path), "%s/%s", dir, LOG_NAME);
		len = append_line(op, (char *)buf);
		flags = O_WRONLY | O_CREAT | O_APPEND;
	}
	*stage = "open";
	fd = open(path, flags | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	*stage = "write";
	rv = write_all(fd, data, len);
	if (rv != 0) {
		close(fd);
		return rv;
	}
	*stage = "close";
	if (close(fd) != 0)
		return -errno;
	return 0;
}

static int do_write(uint64_t seed, uint64_t maxops, const char *dir)
{
	struct plan plan = {.seed = seed};
	struct op op;
	const char *stage = "";
	uint64_t acked = 0;

	setvbuf(stdout, NULL, _IOLBF, 0);
	fprintf(stderr, "crash_writer: seed %" PRIu64 ", writing into %s\n", seed, dir);
	while (plan.next < maxops) {
		int rv;

		plan_next(&plan, &op);
		rv = run_op(seed, dir, &op, &stage);
		if (rv != 0) {
			fprintf(stderr,
			        "crash_writer: op %" PRIu64
			        " (%s) failed at %s: %s; stopping after %" PRIu64
			        " acknowledged ops\n",
			        op.i, op.kind == OP_PUT ? "put" : "append", stage, strerror(-rv),
			        acked);
			break;
		}
		/* Only now is the operation acknowledged. */
		printf("ack %" PRIu64 "\n", op.i);
		fflush(stdout);
		acked++;
	}
	free(plan.keys);
	return 0;
}

/* Reads all of path into *buf (malloc'ed). Returns 0, or -errno (-ENOENT when absent). */
static int read_file(const char *path, unsigned char **buf, size_t *len)
{
	size_t cap = 65536, n = 0;
	unsigned char *b;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	b = xrealloc(NULL, cap);
	for (;;) {
		ssize_t r;

		if (n == cap) {
			cap *= 2;
			b = xrealloc(b, cap);
		}
		r = read(fd, b + n, cap - n);
		if (r < 0) {
			int err = errno;

			if (err == EINTR)
				continue;
			free(b);
			close(fd);
			return -err;
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	close(fd);
	*buf = b;
	*len = n;
	return 0;
}

static size_t first_difference(const unsigned char *a, size_t alen, const unsigned char *b,
                               size_t blen)
{
	size_t k = 0;

	while (k < alen && k < blen && a[k] == b[k])
		k++;
	return k;
}

/* Reads the ack file: returns the number of acknowledged ops (they must be 0..n-1), or -1. */
static int64_t read_acks(const char *ackfile)
{
	FILE *f = fopen(ackfile, "r");
	char line[128];
	int64_t n = 0;

	if (f == NULL) {
		fprintf(stderr, "crash_writer: cannot open %s: %s\n", ackfile, strerror(errno));
		return -1;
	}
	while (fgets(line, sizeof(line), f) != NULL) {
		uint64_t i;

		if (sscanf(line, "ack %" SCNu64, &i) != 1 || i != (uint64_t)n) {
			fprintf(stderr,
			        "crash_writer: %s: line %" PRId64
			        " is \"%.*s\", expected ack %" PRId64 "\n",
			        ackfile, n + 1, (int)strcspn(line, "\n"), line, n);
			fclose(f);
			return -1;
		}
		n++;
	}
	fclose(f);
	return n;
}

struct checker {
	uint64_t seed;
	const char *dir;
	int violations;
};

static void violation(struct checker *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void violation(struct checker *c, const char *fmt, ...)
{
	va_list ap;

	c->violations++;
	printf("VIOLATION: ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
}

static bool same(const unsigned char *a, size_t alen, const unsigned char *b, size_t blen)
{
	return alen == blen && (alen == 0 || memcmp(a, b, alen) == 0);
}

/* Says which put's content a file seems to hold, from the header each value starts with. */
static const char *describe(const unsigned char *buf, size_t len)
{
	static char text[128];
	char head[64];
	uint64_t i, key;

	if (len == 0)
		return "the file is empty";
	memcpy(head, buf, len < sizeof(head) - 1 ? len : sizeof(head) - 1);
	head[len < sizeof(head) - 1 ? len : sizeof(head) - 1] = '\0';
	if (sscanf(head, "put %" SCNu64 " key %" SCNu64, &i, &key) == 2)
		snprintf(text, sizeof(text),
		         "the file starts like the value of put %" PRIu64 " (key %" PRIu64 ")", i,
		         key);
	else
		snprintf(text, sizeof(text), "the file does not start like any put's value");
	return text;
}

/*
 * Checks key against its last acknowledged put (acked, or NULL) and the in-flight put (inflight,
 * or NULL when the in-flight op is not a put of this key).
 */
static void check_key(struct checker *c, uint64_t key, const struct op *acked,
                      const struct op *inflight)
{
	char path[4096];
	unsigned char *actual = NULL, *want = NULL;
	size_t len = 0;
	int rv;

	key_path(path, sizeof(path), c->dir, key);
	rv = read_file(path, &actual, &len);
	if (rv == -ENOENT) {
		if (acked != NULL)
			violation(c,
			          "k%" PRIu64 " is missing; its put %" PRIu64
			          " (%zu bytes) was acknowledged",
			          key, acked->i, acked->size);
		return;
	}
	if (rv != 0) {
		violation(c, "k%" PRIu64 ": cannot read: %s", key, strerror(-rv));
		return;
	}
	if (acked != NULL) {
		want = xrealloc(NULL, acked->size + 1);
		put_content(c->seed, acked, want);
		if (same(actual, len, want, acked->size))
			goto out;
	}
	if (inflight != NULL) {
		unsigned char *w2 = xrealloc(NULL, inflight->size + 1);
		bool ok;

		put_content(c->seed, inflight, w2);
		ok = same(actual, len, w2, inflight->size) || (acked == NULL && len == 0);
		free(w2);
		if (ok)
			goto out;
	}
	if (acked != NULL) {
		size_t k = first_difference(want, acked->size, actual, len);

		violation(c,
		          "k%" PRIu64
		          ": %zu bytes on disk, not the %zu bytes of its last acknowledged put "
		          "%" PRIu64 "%s; first difference at byte %zu; %s",
		          key, len, acked->size, acked->i,
		          inflight != NULL ? " (nor those of the in-flight put)" : "", k,
		          describe(actual, len));
	} else {
		violation(c, "k%" PRIu64 ": has %zu bytes but no put of it was acknowledged%s", key,
		          len, inflight != NULL ? " and they are not the in-flight put's" : "");
	}
out:
	free(want);
	free(actual);
}

static void check_log(struct checker *c, const char *expect, size_t elen, const char *extra,
                      size_t xlen)
{
	char path[4096];
	unsigned char *actual = NULL;
	size_t len = 0, k;
	int rv;

	snprintf(path, sizeof(path), "%s/%s", c->dir, LOG_NAME);
	rv = read_file(path, &actual, &len);
	if (rv == -ENOENT) {
		if (elen != 0)
			violation(c, "%s is missing; %zu bytes of appends were acknowledged",
			          LOG_NAME, elen);
		return;
	}
	if (rv != 0) {
		violation(c, "%s: cannot read: %s", LOG_NAME, strerror(-rv));
		return;
	}
	if (len == elen && memcmp(actual, expect, elen) == 0)
		goto out;
	if (extra != NULL && len == elen + xlen && memcmp(actual, expect, elen) == 0 &&
	    memcmp(actual + elen, extra, xlen) == 0)
		goto out;
	k = first_difference((const unsigned char *)expect, elen, actual, len);
	{
		/* Show the line where they part. */
		size_t ls = k;

		while (ls > 0 && expect[ls - 1] != '\n')
			ls--;
		violation(
		    c,
		    "%s: %zu bytes, expected %zu (the acknowledged appends)%s; first difference at "
		    "byte %zu: expected \"%.*s\", found \"%.*s\"",
		    LOG_NAME, len, elen, extra != NULL ? " or those plus the in-flight line" : "",
		    k, (int)strcspn(expect + ls, "\n"), expect + ls,
		    ls < len ? (int)strcspn((char *)actual + ls, "\n") : 0,
		    ls < len ? (char *)actual + ls : "");
	}
out:
	free(actual);
}

static int do_check(uint64_t seed, const char *ackfile, const char *dir)
{
	struct checker c = {.seed = seed, .dir = dir};
	struct plan plan = {.seed = seed};
	int64_t nacked = read_acks(ackfile);
	struct op *ops, *inflight;
	uint64_t *last_put;  /* key id -> 1 + index of its last acknowledged put, 0 for none */
	char *expect = NULL; /* the acknowledged append lines */
	size_t elen = 0, nappends = 0, nputs = 0;
	char extra[128];
	size_t xlen = 0;
	DIR *d;
	struct dirent *de;

	if (nacked < 0)
		return 2;
	ops = xrealloc(NULL, ((size_t)nacked + 1) * sizeof(*ops));
	last_put = calloc((size_t)nacked + 1, sizeof(*last_put));
	if (last_put == NULL)
		return 2;
	expect = xrealloc(NULL, ((size_t)nacked + 1) * 128);
	for (int64_t i = 0; i <= nacked; i++)
		plan_next(&plan, &ops[i]);
	for (int64_t i = 0; i < nacked; i++) {
		if (ops[i].kind == OP_PUT) {
			last_put[ops[i].key] = (uint64_t)i + 1;
			nputs++;
		} else {
			elen += append_line(&ops[i], expect + elen);
			nappends++;
		}
	}
	inflight = &ops[nacked];
	for (size_t k = 0; k < plan.nkeys; k++) {
		uint64_t key = plan.keys[k];
		const struct op *acked = last_put[key] ? &ops[last_put[key] - 1] : NULL;
		bool in = inflight->kind == OP_PUT && inflight->key == key;

		check_key(&c, key, acked, in ? inflight : NULL);
	}
	if (inflight->kind == OP_APPEND)
		xlen = append_line(inflight, extra);
	check_log(&c, expect, elen, xlen ? extra : NULL, xlen);

	/* Nothing but the planned keys and the log. */
	d = opendir(dir);
	if (d == NULL) {
		violation(&c, "cannot list %s: %s", dir, strerror(errno));
	} else {
		while ((de = readdir(d)) != NULL) {
			uint64_t key;
			char *end;
			bool known = false;

			if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0 ||
			    strcmp(de->d_name, LOG_NAME) == 0)
				continue;
			if (de->d_name[0] == 'k') {
				errno = 0;
				key = strtoull(de->d_name + 1, &end, 10);
				if (errno == 0 && *end == '\0' && end != de->d_name + 1)
					known = key <= (uint64_t)nacked &&
					        (last_put[key] != 0 || (inflight->kind == OP_PUT &&
					                                inflight->key == key));
			}
			if (!known)
				violation(&c, "unexpected entry %s/%s", dir, de->d_name);
		}
		closedir(d);
	}
	printf("crash_writer: checked %s: %" PRId64
	       " acknowledged ops (%zu puts over %zu keys, %zu "
	       "appends), in-flight op %" PRId64 " (%s): %d violation%s\n",
	       dir, nacked, nputs, plan.nkeys, nappends, nacked,
	       inflight->kind == OP_PUT ? "put" : "append", c.violations,
	       c.violations == 1 ? "" : "s");
	free(ops);
	free(last_put);
	free(expect);
	free(plan.keys);
	return c.violations ? 1 : 0;
}

static void usage(FILE *f)
{
	fprintf(
	    f,
	    "usage: crash_writer [-s SEED] [-n MAXOPS] DIR\n"
	    "       crash_writer -c ACKFILE [-s SEED] DIR\n"
	    "Writes a deterministic stream of puts and appends into DIR, printing \"ack I\" once\n"
	    "operation I is acknowledged (close returned 0); stops at the first error.\n"
	    "With -c, checks that DIR holds every operation acknowledged in ACKFILE.\n");
}

int main(int argc, char **argv)
{
	uint64_t seed = 1, maxops = UINT64_MAX;
	const char *ackfile = NULL;
	int opt;

	while ((opt = getopt(argc, argv, "s:n:c:h")) != -1) {
		switch (opt) {
		case 's':
			seed = strtoull(optarg, NULL, 0);
			break;
		case 'n':
			maxops = strtoull(optarg, NULL, 0);
			break;
		case 'c':
			ackfile = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc - 1) {
		usage(stderr);
		return 2;
	}
	if (ackfile != NULL)
		return do_check(seed, ackfile, argv[optind]);
	return do_write(seed, maxops, argv[optind]);
}
