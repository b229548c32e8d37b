/*
 * bench_zk: ZooKeeper's write rate through its C client, as a baseline for kvfs's puts
 * (scripts/bench_compare.sh). It prints figures; it is not a test.
 *
 *   bench_zk HOSTS [--outstanding N] [--seconds S] [--warmup W] [--znodes K] [--size B]
 *     One session to HOSTS (a ZooKeeper connection string). Creates /bench_zk/z0 .. z<K-1>
 *     (default 8) if missing, then keeps N (default 1) asynchronous setData (zoo_aset) of B
 *     (default 100) bytes in flight, spread over the K znodes, for W (default 2) seconds of
 *     warm-up (the JIT of the servers) and then S (default 5) seconds counted.
 *     Prints one line: outstanding=N sets_per_s=... p50_us=... p99_us=...
 *
 * Every failure is reported and ends the program with status 1.
 */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zookeeper/zookeeper.h>

#include "bench_util.h"

#define MAX_OUTSTANDING 4096
#define MAX_ZNODES 1024

struct slot {
	int id;
	uint64_t t0;
};

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static bool connected;          /* protected by mu */
static unsigned in_flight;      /* protected by mu */
static int failed;              /* first ZooKeeper error code, 0 if none; protected by mu */
static uint64_t *lat;           /* counted latencies (ns); protected by mu */
static size_t nlat, caplat;     /* protected by mu */
static uint64_t t_count, t_end; /* counting window; set before the first request */
static zhandle_t *zh;
static char value[65536];
static int value_len = 100, znodes = 8;

static void watcher(zhandle_t *h, int type, int state, const char *path, void *ctx)
{
	if (type != ZOO_SESSION_EVENT)
		return;
	pthread_mutex_lock(&mu);
	connected = state == ZOO_CONNECTED_STATE;
	if (state == ZOO_EXPIRED_SESSION_STATE && failed == 0)
		failed = ZSESSIONEXPIRED;
	pthread_cond_broadcast(&cv);
	pthread_mutex_unlock(&mu);
}

static void set_done(int rc, const struct Stat *stat, const void *data);

/* Sends slot S's next setData; on failure records it and takes S out of flight. */
static void issue(struct slot *s)
{
	char path[64];
	int rc;

	snprintf(path, sizeof(path), "/bench_zk/z%d", s->id % znodes);
	s->t0 = now_ns();
	rc = zoo_aset(zh, path, value, value_len, -1, set_done, s);
	if (rc != ZOK) {
		pthread_mutex_lock(&mu);
		if (failed == 0)
			failed = rc;
		in_flight--;
		pthread_cond_broadcast(&cv);
		pthread_mutex_unlock(&mu);
	}
}

/* On the client's completion thread: counts the answer and sends the next request. */
static void set_done(int rc, const struct Stat *stat, const void *data)
{
	struct slot *s = (struct slot *)data;
	uint64_t t = now_ns();
	bool again = false;

	pthread_mutex_lock(&mu);
	if (rc != ZOK && failed == 0)
		failed = rc;
	if (rc == ZOK && s->t0 >= t_count && t <= t_end) {
		if (nlat == caplat) {
			size_t c = caplat ? 2 * caplat : 65536;
			uint64_t *p = realloc(lat, c * sizeof(*p));

			if (p == NULL)
				failed = ZSYSTEMERROR;
			else {
				lat = p;
				caplat = c;
			}
		}
		if (nlat < caplat)
			lat[nlat++] = t - s->t0;
	}
	again = failed == 0 && t < t_end;
	if (!again) {
		in_flight--;
		pthread_cond_broadcast(&cv);
	}
	pthread_mutex_unlock(&mu);
	if (again)
		issue(s);
}

/* Connects within 30 s and makes the znodes; 0 or -1 after saying why. */
static int setup(const char *hosts)
{
	struct timespec deadline;
	char path[64];
	int rc = ZOK;

	zh = zookeeper_init(hosts, watcher, 10000, NULL, NULL, 0);
	if (zh == NULL) {
		fprintf(stderr, "bench_zk: zookeeper_init %s: %s\n", hosts, strerror(errno));
		return -1;
	}
	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += 30;
	pthread_mutex_lock(&mu);
	while (!connected && rc == 0)
		rc = pthread_cond_timedwait(&cv, &mu, &deadline);
	pthread_mutex_unlock(&mu);
	if (!connected) {
		fprintf(stderr, "bench_zk: cannot reach ZooKeeper at %s after 30 s; is it running?\n",
		        hosts);
		return -1;
	}
	rc = zoo_create(zh, "/bench_zk", NULL, -1, &ZOO_OPEN_ACL_UNSAFE, 0, NULL, 0);
	for (int i = 0; (rc == ZOK || rc == ZNODEEXISTS) && i < znodes; i++) {
		snprintf(path, sizeof(path), "/bench_zk/z%d", i);
		rc = zoo_create(zh, path, value, value_len, &ZOO_OPEN_ACL_UNSAFE, 0, NULL, 0);
	}
	if (rc != ZOK && rc != ZNODEEXISTS) {
		fprintf(stderr, "bench_zk: create %s: %s\n", path, zerror(rc));
		return -1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"outstanding", required_argument, NULL, 'o'},
	    {"seconds", required_argument, NULL, 's'},
	    {"warmup", required_argument, NULL, 'w'},
	    {"znodes", required_argument, NULL, 'k'},
	    {"size", required_argument, NULL, 'b'},
	    {NULL, 0, NULL, 0},
	};
	static struct slot slots[MAX_OUTSTANDING];
	double seconds = 5, warmup = 2;
	int outstanding = 1, opt, rv = 1;
	uint64_t t0;

	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (opt) {
		case 'o':
			outstanding = atoi(optarg);
			break;
		case 's':
			seconds = atof(optarg);
			break;
		case 'w':
			warmup = atof(optarg);
			break;
		case 'k':
			znodes = atoi(optarg);
			break;
		case 'b':
			value_len = atoi(optarg);
			break;
		default:
			goto usage;
		}
	}
	if (optind != argc - 1 || outstanding < 1 || outstanding > MAX_OUTSTANDING ||
	    seconds <= 0 || warmup < 0 || znodes < 1 || znodes > MAX_ZNODES || value_len < 0 ||
	    value_len > (int)sizeof(value))
		goto usage;
	memset(value, 'z', sizeof(value));
	zoo_set_debug_level(ZOO_LOG_LEVEL_ERROR);
	if (setup(argv[optind]) != 0)
		goto out;
	t0 = now_ns();
	t_count = t0 + (uint64_t)(warmup * 1e9);
	t_end = t_count + (uint64_t)(seconds * 1e9);
	in_flight = (unsigned)outstanding;
	for (int i = 0; i < outstanding; i++) {
		slots[i].id = i;
		issue(&slots[i]);
	}
	pthread_mutex_lock(&mu);
	while (in_flight > 0)
		pthread_cond_wait(&cv, &mu);
	pthread_mutex_unlock(&mu);
	if (failed != 0) {
		fprintf(stderr, "bench_zk: setData: %s\n", zerror(failed));
		goto out;
	}
	qsort(lat, nlat, sizeof(*lat), cmp_u64);
	printf("outstanding=%d sets_per_s=%.0f p50_us=%.0f p99_us=%.0f\n", outstanding,
	       (double)nlat / seconds, nlat ? (double)lat[nlat / 2] / 1e3 : 0,
	       nlat ? (double)lat[nlat * 99 / 100] / 1e3 : 0);
	rv = 0;
out:
	if (zh != NULL)
		zookeeper_close(zh);
	free(lat);
	return rv;
usage:
	fprintf(stderr, "usage: bench_zk HOSTS [--outstanding N] [--seconds S] [--warmup W] "
	                "[--znodes K] [--size B]\n");
	return 2;
}
