/*
 * bench_etcd: etcd's put rate through its v3 HTTP gateway (POST /v3/kv/put, JSON), as a
 * baseline for kvfs's puts (scripts/bench_compare.sh). It prints figures; it is not a test.
 * Debian ships no Go client library for etcd 3.4, so this is the fairest client we can build
 * from Debian's packages: plain HTTP/1.1 keep-alive, one connection and one request in flight
 * per client thread, no JSON library (the answers are only checked for status 200).
 *
 *   bench_etcd HOST:PORT... [--clients N] [--seconds S] [--warmup W] [--keys K] [--size B]
 *     N (default 64) clients, client i on the endpoint number i mod (number of endpoints),
 *     each putting B (default 100) bytes to its own K (default 8) keys in turn, for W (default
 *     1) seconds of warm-up and then S (default 5) seconds counted.
 *     Prints one line: clients=N puts_per_s=... p50_us=... p99_us=...
 *
 * Every failure is reported and ends the program with status 1.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "bench_util.h"

#define MAX_CLIENTS 1024

struct client {
	pthread_t thread;
	int id;
	struct sockaddr_in addr;
	uint64_t *lat; /* counted latencies (ns) */
	size_t nlat, caplat;
	char err[256]; /* the first failure, empty if none */
};

static int nkeys = 8, value_len = 100;
static uint64_t t_count, t_end;

static void b64(const unsigned char *in, size_t n, char *out)
{
	static const char t[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t i;

	for (i = 0; i + 2 < n; i += 3) {
		*out++ = t[in[i] >> 2];
		*out++ = t[(in[i] & 3) << 4 | in[i + 1] >> 4];
		*out++ = t[(in[i + 1] & 15) << 2 | in[i + 2] >> 6];
		*out++ = t[in[i + 2] & 63];
	}
	if (i < n) {
		*out++ = t[in[i] >> 2];
		*out++ = t[(in[i] & 3) << 4 | (i + 1 < n ? in[i + 1] >> 4 : 0)];
		*out++ = i + 1 < n ? t[(in[i + 1] & 15) << 2] : '=';
		*out++ = '=';
	}
	*out = '\0';
}

/* Reads one HTTP/1.1 answer with a Content-Length from FD; 0 if it is a 200, else -1 with
 * C->err set. BUF holds SIZE bytes. */
static int read_answer(struct client *c, int fd, char *buf, size_t size)
{
	size_t have = 0, need = 0;
	char *end = NULL, *cl;
	ssize_t n;

	for (;;) {
		if (end == NULL && have > 0) {
			buf[have] = '\0';
			end = strstr(buf, "\r\n\r\n");
			if (end != NULL) {
				cl = strcasestr(buf, "\r\nContent-Length:");
				if (cl == NULL || cl > end) {
					snprintf(c->err, sizeof(c->err), "answer without Content-Length");
					return -1;
				}
				need = (size_t)(end + 4 - buf) + strtoul(cl + 17, NULL, 10);
				if (need >= size) {
					snprintf(c->err, sizeof(c->err), "answer of %zu bytes", need);
					return -1;
				}
			}
		}
		if (end != NULL && have >= need)
			break;
		n = read(fd, buf + have, size - 1 - have);
		if (n <= 0) {
			snprintf(c->err, sizeof(c->err), "read: %s",
			         n < 0 ? strerror(errno) : "connection closed");
			return -1;
		}
		have += (size_t)n;
	}
	if (strncmp(buf, "HTTP/1.1 200", 12) != 0) {
		snprintf(c->err, sizeof(c->err), "answer: %.*s", (int)(strchr(buf, '\r') - buf), buf);
		return -1;
	}
	return 0;
}

static void *client_main(void *arg)
{
	struct client *c = arg;
	static char val[65536];
	char key[64], kb64[96], vb64[(sizeof(val) + 2) / 3 * 4 + 1], body[sizeof(vb64) + 256];
	char *req = malloc(sizeof(body) + 256), buf[16384];
	int fd, one = 1, len, blen;
	unsigned j = 0;

	memset(val, 'e', sizeof(val));
	b64((const unsigned char *)val, (size_t)value_len, vb64);
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (req == NULL || fd < 0 || setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) ||
	    connect(fd, (struct sockaddr *)&c->addr, sizeof(c->addr)) != 0) {
		snprintf(c->err, sizeof(c->err), "connect: %s", strerror(errno));
		goto out;
	}
	for (uint64_t t = now_ns(); t < t_end; j = (j + 1) % (unsigned)nkeys) {
		uint64_t t1;

		snprintf(key, sizeof(key), "bench_etcd/c%d/k%u", c->id, j);
		b64((const unsigned char *)key, strlen(key), kb64);
		blen = snprintf(body, sizeof(body), "{\"key\":\"%s\",\"value\":\"%s\"}", kb64, vb64);
		len = snprintf(req, sizeof(body) + 256,
		               "POST /v3/kv/put HTTP/1.1\r\nHost: etcd\r\n"
		               "Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s",
		               blen, body);
		if (write(fd, req, (size_t)len) != len) {
			snprintf(c->err, sizeof(c->err), "write: %s", strerror(errno));
			break;
		}
		if (read_answer(c, fd, buf, sizeof(buf)) != 0)
			break;
		t1 = now_ns();
		if (t >= t_count && t1 <= t_end) {
			if (c->nlat == c->caplat) {
				size_t cap = c->caplat ? 2 * c->caplat : 4096;
				uint64_t *p = realloc(c->lat, cap * sizeof(*p));

				if (p == NULL) {
					snprintf(c->err, sizeof(c->err), "out of memory");
					break;
				}
				c->lat = p;
				c->caplat = cap;
			}
			c->lat[c->nlat++] = t1 - t;
		}
		t = t1;
	}
out:
	if (fd >= 0)
		close(fd);
	free(req);
	return NULL;
}

/* Parses "HOST:PORT" (an IPv4 address) into SA; 0 or -1. */
static int parse_addr(const char *s, struct sockaddr_in *sa)
{
	char host[64];
	const char *colon = strrchr(s, ':');

	if (colon == NULL || (size_t)(colon - s) >= sizeof(host))
		return -1;
	memcpy(host, s, (size_t)(colon - s));
	host[colon - s] = '\0';
	memset(sa, 0, sizeof(*sa));
	sa->sin_family = AF_INET;
	sa->sin_port = htons((uint16_t)atoi(colon + 1));
	return inet_pton(AF_INET, host, &sa->sin_addr) == 1 ? 0 : -1;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"clients", required_argument, NULL, 'c'},
	    {"seconds", required_argument, NULL, 's'},
	    {"warmup", required_argument, NULL, 'w'},
	    {"keys", required_argument, NULL, 'k'},
	    {"size", required_argument, NULL, 'b'},
	    {NULL, 0, NULL, 0},
	};
	static struct client cs[MAX_CLIENTS];
	struct sockaddr_in addrs[16];
	double seconds = 5, warmup = 1;
	int clients = 64, naddrs = 0, opt, rv = 0;
	uint64_t *all, n = 0;

	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (opt) {
		case 'c':
			clients = atoi(optarg);
			break;
		case 's':
			seconds = atof(optarg);
			break;
		case 'w':
			warmup = atof(optarg);
			break;
		case 'k':
			nkeys = atoi(optarg);
			break;
		case 'b':
			value_len = atoi(optarg);
			break;
		default:
			goto usage;
		}
	}
	for (; optind < argc && naddrs < 16; optind++)
		if (parse_addr(argv[optind], &addrs[naddrs++]) != 0)
			goto usage;
	if (optind != argc || naddrs == 0 || clients < 1 || clients > MAX_CLIENTS ||
	    seconds <= 0 || warmup < 0 || nkeys < 1 || value_len < 0 || value_len > 65536)
		goto usage;
	t_count = now_ns() + (uint64_t)(warmup * 1e9);
	t_end = t_count + (uint64_t)(seconds * 1e9);
	for (int i = 0; i < clients; i++) {
		cs[i].id = i;
		cs[i].addr = addrs[i % naddrs];
		if (pthread_create(&cs[i].thread, NULL, client_main, &cs[i]) != 0) {
			fprintf(stderr, "bench_etcd: cannot start client %d\n", i);
			return 1;
		}
	}
	for (int i = 0; i < clients; i++)
		pthread_join(cs[i].thread, NULL);
	for (int i = 0; i < clients; i++) {
		if (cs[i].err[0] != '\0' && rv == 0) {
			fprintf(stderr, "bench_etcd: client %d: %s\n", i, cs[i].err);
			rv = 1;
		}
		n += cs[i].nlat;
	}
	all = malloc((n ? n : 1) * sizeof(*all));
	if (all == NULL)
		return 1;
	n = 0;
	for (int i = 0; i < clients; i++) {
		memcpy(all + n, cs[i].lat, cs[i].nlat * sizeof(*all));
		n += cs[i].nlat;
		free(cs[i].lat);
	}
	qsort(all, n, sizeof(*all), cmp_u64);
	if (rv == 0)
		printf("clients=%d puts_per_s=%.0f p50_us=%.0f p99_us=%.0f\n", clients,
		       (double)n / seconds, n ? (double)all[n / 2] / 1e3 : 0,
		       n ? (double)all[n * 99 / 100] / 1e3 : 0);
	free(all);
	return rv;
usage:
	fprintf(stderr, "usage: bench_etcd HOST:PORT... [--clients N] [--seconds S] [--warmup W] "
	                "[--keys K] [--size B]\n");
	return 2;
}
