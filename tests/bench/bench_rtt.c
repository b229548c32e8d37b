/*
 * bench_rtt: one loopback TCP round trip, the other anchor (beside one fdatasync) of a put's
 * latency (scripts/bench_compare.sh). It prints figures; it is not a test.
 *
 *   bench_rtt [--count N] [--size B]
 *     An echo thread and a client thread on 127.0.0.1 (an ephemeral port, TCP_NODELAY on both
 *     ends) send B (default 128) bytes back and forth N (default 20000) times after 1000
 *     unrecorded ones. Prints one line: rtt_p50_us=... rtt_p99_us=... bytes=B
 *
 * Every failure is reported and ends the program with status 1.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "bench_util.h"

#define WARMUP 1000

static size_t size = 128;

/* Reads exactly N bytes; 0, or -1 at an error or end of stream. */
static int read_full(int fd, char *buf, size_t n)
{
	while (n > 0) {
		ssize_t r = read(fd, buf, n);

		if (r <= 0)
			return -1;
		buf += r;
		n -= (size_t)r;
	}
	return 0;
}

/* The echo end: sends back every SIZE bytes it reads until the client closes. */
static void *echo_main(void *arg)
{
	int lfd = *(int *)arg, fd, one = 1;
	char buf[65536];

	fd = accept(lfd, NULL, NULL);
	if (fd < 0)
		return NULL;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	while (read_full(fd, buf, size) == 0 && write(fd, buf, size) == (ssize_t)size)
		;
	close(fd);
	return NULL;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"count", required_argument, NULL, 'n'},
	    {"size", required_argument, NULL, 'b'},
	    {NULL, 0, NULL, 0},
	};
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t salen = sizeof(sa);
	long count = 20000;
	int lfd, fd, one = 1, opt;
	char buf[65536];
	uint64_t *lat;
	pthread_t echo;

	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (opt == 'n')
			count = atol(optarg);
		else if (opt == 'b')
			size = (size_t)atol(optarg);
		else
			goto usage;
	}
	if (optind != argc || count < 1 || size < 1 || size > sizeof(buf))
		goto usage;
	lat = malloc((size_t)count * sizeof(*lat));
	lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (lat == NULL || lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
	    listen(lfd, 1) != 0 || getsockname(lfd, (struct sockaddr *)&sa, &salen) != 0 ||
	    pthread_create(&echo, NULL, echo_main, &lfd) != 0) {
		fprintf(stderr, "bench_rtt: listen on 127.0.0.1: %s\n", strerror(errno));
		return 1;
	}
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) != 0 ||
	    connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		fprintf(stderr, "bench_rtt: connect to 127.0.0.1: %s\n", strerror(errno));
		return 1;
	}
	memset(buf, 'r', size);
	for (long i = -WARMUP; i < count; i++) {
		uint64_t t = now_ns();

		if (write(fd, buf, size) != (ssize_t)size || read_full(fd, buf, size) != 0) {
			fprintf(stderr, "bench_rtt: ping-pong: %s\n",
			        errno ? strerror(errno) : "connection closed");
			return 1;
		}
		if (i >= 0)
			lat[i] = now_ns() - t;
	}
	close(fd);
	pthread_join(echo, NULL);
	close(lfd);
	qsort(lat, (size_t)count, sizeof(*lat), cmp_u64);
	printf("rtt_p50_us=%.1f rtt_p99_us=%.1f bytes=%zu\n", (double)lat[count / 2] / 1e3,
	       (double)lat[count * 99 / 100] / 1e3, size);
	free(lat);
	return 0;
usage:
	fprintf(stderr, "usage: bench_rtt [--count N] [--size B]\n");
	return 2;
}
