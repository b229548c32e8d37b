/*
 * bench_smallfile: small-file throughput of a directory, for comparing kvfs with a local
 * filesystem. It prints figures; it is not a test.
 *
 *   bench_smallfile DIR... [--threads T] [--seconds S] [--names N] [--size B]
 *     With several DIRs (the mounts of a cluster's nodes), thread i works in DIR number
 *     i mod (number of DIRs).
 *     Phase 1 (puts): each thread loops over its own N names (DIR/t<thread>/f<j>) doing
 *     open(O_CREAT|O_TRUNC|O_WRONLY) + write B bytes + close, for S seconds.
 *     Phase 2 (gets): the same names, open(O_RDONLY) + read + close, for S seconds.
 *     Prints one line: threads, puts/s, gets/s and the p50/p99 latency of each.
 *
 *   bench_smallfile --append-fsync FILE [--seconds S] [--size B]
 *     Appends B bytes (default 128) and fdatasyncs, in a loop for S seconds: the rate at which the
 *     disk under FILE makes small writes durable, which bounds kvfs's unbatched commit rate, and
 *     the median time of one append+fdatasync (the anchor of a single writer's put latency).
 *
 * Every failed call is reported and ends the program with status 1.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "bench_util.h"

#define MAX_THREADS 64

struct lat {
	uint64_t *ns; /* one entry per operation */
	size_t n;
	size_t cap;
};

struct worker {
	pthread_t thread;
	int id;
	const char *dir;
	unsigned names;
	size_t size;
	bool gets; /* phase: false = puts, true = gets */
	double seconds;
	uint64_t ops;
	struct lat lat;
	int err; /* errno of the first failure, 0 if none */
	char what[8192];
};

static int lat_add(struct lat *l, uint64_t ns)
{
	if (l->n == l->cap) {
		size_t cap = l->cap ? 2 * l->cap : 4096;
		uint64_t *p = realloc(l->ns, cap * sizeof(*p));

		if (p == NULL)
			return -ENOMEM;
		l->ns = p;
		l->cap = cap;
	}
	l->ns[l->n++] = ns;
	return 0;
}

/* Records the first failure of w and returns -errno. */
static int worker_fail(struct worker *w, int err, const char *call, const char *path)
{
	w->err = err;
	snprintf(w->what, sizeof(w->what), "%s %s: %s", call, path, strerror(err));
	return -err;
}

static int put_one(struct worker *w, const char *path, const char *buf)
{
	int fd = open(path, O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0644);
	ssize_t n;

	if (fd < 0)
		return worker_fail(w, errno, "open", path);
	n = write(fd, buf, w->size);
	if (n < 0 || (size_t)n != w->size) {
		int err = n < 0 ? errno : EIO;

		close(fd);
		return worker_fail(w, err, "write", path);
	}
	if (close(fd) != 0)
		return worker_fail(w, errno, "close", path);
	return 0;
}

static int get_one(struct worker *w, const char *path, char *buf)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return worker_fail(w, errno, "open", path);
	n = read(fd, buf, w->size + 1);
	if (n < 0 || (size_t)n != w->size) {
		int err = n < 0 ? errno : EIO;

		close(fd);
		return worker_fail(w, err, n < 0 ? "read" : "read (short)", path);
	}
	close(fd);
	return 0;
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	char path[4096], buf[65536];
	uint64_t start = now_ns(), end = start + (uint64_t)(w->seconds * 1e9), t = start;
	unsigned j = 0;

	memset(buf, 'a' + w->id % 26, sizeof(buf));
	while (t < end) {
		uint64_t t1;
		int rv;

		snprintf(path, sizeof(path), "%s/t%d/f%u", w->dir, w->id, j);
		rv = w->gets ? get_one(w, path, buf) : put_one(w, path, buf);
		if (rv != 0)
			break;
		t1 = now_ns();
		if (lat_add(&w->lat, t1 - t) != 0) {
			worker_fail(w, ENOMEM, "record", "latency");
			break;
		}
		t = t1;
		w->ops++;
		j = (j + 1) % w->names;
	}
	return NULL;
}

struct result {
	double rate;
	double p50_us;
	double p99_us;
};

/* Runs one phase on all workers; returns 0 or -1 after printing the first failure. */
static int run_phase(struct worker *ws, int threads, bool gets, struct result *res)
{
	uint64_t start, ops = 0;
	struct lat all = {0};
	double elapsed;

	for (int i = 0; i < threads; i++) {
		ws[i].gets = gets;
		ws[i].ops = 0;
		ws[i].lat.n = 0;
		if (pthread_create(&ws[i].thread, NULL, worker_main, &ws[i]) != 0) {
			fprintf(stderr, "bench_smallfile: cannot start thread %d\n", i);
			exit(1);
		}
	}
	start = now_ns();
	for (int i = 0; i < threads; i++)
		pthread_join(ws[i].thread, NULL);
	elapsed = (double)(now_ns() - start) / 1e9;
	for (int i = 0; i < threads; i++) {
		if (ws[i].err != 0) {
			fprintf(stderr, "bench_smallfile: %s\n", ws[i].what);
			return -1;
		}
		ops += ws[i].ops;
		for (size_t k = 0; k < ws[i].lat.n; k++)
			if (lat_add(&all, ws[i].lat.ns[k]) != 0)
				return -1;
	}
	qsort(all.ns, all.n, sizeof(*all.ns), cmp_u64);
	res->rate = (double)ops / elapsed;
	res->p50_us = all.n ? (double)all.ns[all.n / 2] / 1e3 : 0;
	res->p99_us = all.n ? (double)all.ns[all.n * 99 / 100] / 1e3 : 0;
	free(all.ns);
	return 0;
}

static int smallfile(char **dirs, int ndirs, int threads, double seconds, unsigned names,
                     size_t size)
{
	struct worker ws[MAX_THREADS];
	struct result put, get;
	char path[4096];

	memset(ws, 0, sizeof(ws));
	for (int i = 0; i < threads; i++) {
		const char *dir = dirs[i % ndirs];

		snprintf(path, sizeof(path), "%s/t%d", dir, i);
		if (mkdir(path, 0755) != 0 && errno != EEXIST) {
			fprintf(stderr, "bench_smallfile: mkdir %s: %s\n", path, strerror(errno));
			return 1;
		}
		ws[i].id = i;
		ws[i].dir = dir;
		ws[i].names = names;
		ws[i].size = size;
		ws[i].seconds = seconds;
	}
	if (run_phase(ws, threads, false, &put) != 0)
		return 1;
	/* Names never written in the put phase (a very slow target) are left out of the gets. */
	for (int i = 0; i < threads; i++)
		if (ws[i].ops < names)
			ws[i].names = ws[i].ops ? (unsigned)ws[i].ops : 1;
	if (run_phase(ws, threads, true, &get) != 0)
		return 1;
	printf("threads=%d puts_per_s=%.0f put_p50_us=%.0f put_p99_us=%.0f gets_per_s=%.0f "
	       "get_p50_us=%.0f get_p99_us=%.0f\n",
	       threads, put.rate, put.p50_us, put.p99_us, get.rate, get.p50_us, get.p99_us);
	for (int i = 0; i < threads; i++)
		free(ws[i].lat.ns);
	return 0;
}

static int append_fsync(const char *file, double seconds, size_t size)
{
	char buf[65536];
	uint64_t start, end, t, t1, ops = 0;
	struct lat lat = {0};
	int fd = open(file, O_CREAT | O_WRONLY | O_APPEND | O_CLOEXEC, 0644);

	if (fd < 0) {
		fprintf(stderr, "bench_smallfile: open %s: %s\n", file, strerror(errno));
		return 1;
	}
	memset(buf, 'x', sizeof(buf));
	start = now_ns();
	end = start + (uint64_t)(seconds * 1e9);
	for (t = start; t < end; t = t1) {
		if (write(fd, buf, size) != (ssize_t)size || fdatasync(fd) != 0) {
			fprintf(stderr, "bench_smallfile: append+fdatasync %s: %s\n", file,
			        strerror(errno));
			close(fd);
			free(lat.ns);
			return 1;
		}
		t1 = now_ns();
		if (lat_add(&lat, t1 - t) != 0) {
			fprintf(stderr, "bench_smallfile: out of memory\n");
			close(fd);
			free(lat.ns);
			return 1;
		}
		ops++;
	}
	close(fd);
	qsort(lat.ns, lat.n, sizeof(*lat.ns), cmp_u64);
	printf("append_fsync_per_s=%.0f bytes=%zu fsync_p50_us=%.0f\n",
	       (double)ops / ((double)(t - start) / 1e9), size,
	       lat.n ? (double)lat.ns[lat.n / 2] / 1e3 : 0);
	free(lat.ns);
	return 0;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: bench_smallfile DIR... [--threads T] [--seconds S] [--names N] [--size B]\n"
	           "       bench_smallfile --append-fsync FILE [--seconds S] [--size B]\n");
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"threads", required_argument, NULL, 't'},
	    {"seconds", required_argument, NULL, 's'},
	    {"names", required_argument, NULL, 'n'},
	    {"size", required_argument, NULL, 'b'},
	    {"append-fsync", no_argument, NULL, 'a'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	int threads = 1, opt;
	double seconds = 5;
	long names = 300;
	long size = -1;
	bool fsync_mode = false;

	while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (opt) {
		case 't':
			threads = atoi(optarg);
			break;
		case 's':
			seconds = atof(optarg);
			break;
		case 'n':
			names = atol(optarg);
			break;
		case 'b':
			size = atol(optarg);
			break;
		case 'a':
			fsync_mode = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind >= argc || (fsync_mode && optind != argc - 1) || threads < 1 ||
	    threads > MAX_THREADS || seconds <= 0 || names < 1 || size > 65535) {
		usage(stderr);
		return 2;
	}
	if (fsync_mode)
		return append_fsync(argv[optind], seconds, size < 0 ? 128 : (size_t)size);
	return smallfile(argv + optind, argc - optind, threads, seconds, (unsigned)names,
	                 size < 0 ? 100 : (size_t)size);
}
