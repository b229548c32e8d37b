/*
 * The --metrics-listen HTTP server on libuv (see metrics_http.h). Each connection reads its
 * request head into a fixed buffer, answers once, half-closes (shutdown) and drains what the
 * client still sends until it closes or the deadline passes, so the answer is not lost to a
 * reset. Connections form a list, oldest first: the oldest goes when a new one would pass the
 * cap. The server and each connection are freed in their handles' close callbacks only.
 */
#include "kvfs/metrics_http.h"

#include <errno.h>
#include <netdb.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "kvfs/logging.h"

struct conn {
	struct kvfs_metrics_http *srv;
	uv_tcp_t tcp;
	uv_timer_t timer;
	uv_write_t wreq;
	uv_shutdown_t sreq;
	int open_handles;
	bool answered; /* a response is written or being written: discard what comes */
	bool closing;
	char *resp; /* malloc'ed response */
	size_t len;
	char head[KVFS_METRICS_HTTP_HEAD_MAX];
	struct conn *prev, *next;
};

struct kvfs_metrics_http {
	uv_loop_t *loop;
	uv_tcp_t listener;
	kvfs_metrics_render_fn render;
	void *arg;
	struct conn *oldest, *newest; /* open connections */
	unsigned nconns;
	unsigned live; /* connections not yet freed (closing ones too) */
	bool closing, listener_open;
};

static void srv_maybe_free(struct kvfs_metrics_http *s)
{
	if (s->closing && !s->listener_open && s->live == 0)
		free(s);
}

static void on_conn_handle_closed(uv_handle_t *h)
{
	struct conn *c = h->data;
	struct kvfs_metrics_http *s = c->srv;

	if (--c->open_handles > 0)
		return;
	free(c->resp);
	free(c);
	s->live--;
	srv_maybe_free(s);
}

static void conn_close(struct conn *c)
{
	struct kvfs_metrics_http *s = c->srv;

	if (c->closing)
		return;
	c->closing = true;
	if (c->prev)
		c->prev->next = c->next;
	else
		s->oldest = c->next;
	if (c->next)
		c->next->prev = c->prev;
	else
		s->newest = c->prev;
	s->nconns--;
	uv_close((uv_handle_t *)&c->timer, on_conn_handle_closed);
	uv_close((uv_handle_t *)&c->tcp, on_conn_handle_closed);
}

static void on_deadline(uv_timer_t *t)
{
	conn_close(t->data);
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
	struct conn *c = req->data;

	/* Reading goes on (discarding) until the client closes or the deadline. A failed shutdown
	 * (the client reset the connection) or one cancelled by our own close ends it here. */
	if (status < 0 && !c->closing)
		conn_close(c);
}

static void on_written(uv_write_t *req, int status)
{
	struct conn *c = req->data;

	if (c->closing)
		return;
	c->sreq.data = c;
	if (status < 0 || uv_shutdown(&c->sreq, (uv_stream_t *)&c->tcp, on_shutdown) < 0)
		conn_close(c);
}

/* Answers with status line `status`, extra header lines `headers` and body (HEAD: no body). */
static void respond(struct conn *c, const char *status, const char *headers, const char *body,
                    size_t body_len, bool head_only)
{
	int n;
	uv_buf_t buf;

	c->answered = true;
	n = asprintf(&c->resp, "HTTP/1.1 %s\r\n%sContent-Length: %zu\r\nConnection: close\r\n\r\n",
	             status, headers, body_len);
	if (n < 0) {
		c->resp = NULL;
		conn_close(c);
		return;
	}
	c->len = (size_t)n;
	if (!head_only && body_len) {
		char *all = realloc(c->resp, c->len + body_len);

		if (!all) {
			conn_close(c);
			return;
		}
		memcpy(all + c->len, body, body_len);
		c->resp = all;
		c->len += body_len;
	}
	buf = uv_buf_init(c->resp, (unsigned)c->len);
	c->wreq.data = c;
	if (uv_write(&c->wreq, (uv_stream_t *)&c->tcp, &buf, 1, on_written) < 0)
		conn_close(c);
}

static void respond_text(struct conn *c, const char *status, const char *headers, const char *text)
{
	respond(c, status, headers, text, strlen(text), false);
}

static void serve_metrics(struct conn *c, bool head_only)
{
	size_t len = 0;
	char *text = c->srv->render(c->srv->arg, &len);

	if (!text) {
		respond_text(c, "503 Service Unavailable", "Content-Type: text/plain\r\n",
		             "out of memory\n");
		return;
	}
	respond(c, "200 OK", "Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n", text,
	        len, head_only);
	free(text);
}

/* Whether line (NUL-terminated) is "METHOD TARGET HTTP/1.x", split into the three. */
static bool parse_request_line(const char *line, char method[16], char target[256],
                               char version[16])
{
	char extra;

	return sscanf(line, "%15s %255s %15s %c", method, target, version, &extra) == 3 &&
	       strncmp(version, "HTTP/1.", 7) == 0;
}

/* The request line is c->head's first line_len bytes (the head is complete). */
static void answer(struct conn *c, size_t line_len)
{
	char method[16], target[256], version[16], line[512];
	const char *plain = "Content-Type: text/plain\r\n";
	size_t tlen;

	if (line_len < sizeof(line)) {
		memcpy(line, c->head, line_len);
		line[line_len] = '\0';
	}
	if (line_len >= sizeof(line) || !parse_request_line(line, method, target, version)) {
		respond_text(c, "400 Bad Request", plain,
		             "expected an HTTP/1.x request line: GET /metrics HTTP/1.1\n");
		return;
	}
	if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
		respond_text(c, "405 Method Not Allowed",
		             "Content-Type: text/plain\r\nAllow: GET, HEAD\r\n",
		             "only GET /metrics is served\n");
		return;
	}
	tlen = strcspn(target, "?");
	if (tlen != strlen("/metrics") || strncmp(target, "/metrics", tlen) != 0) {
		respond(c, "404 Not Found", plain, "only /metrics is served\n",
		        strlen("only /metrics is served\n"), strcmp(method, "HEAD") == 0);
		return;
	}
	serve_metrics(c, strcmp(method, "HEAD") == 0);
}

/* Where the head ends (after its blank line), or 0 if it has not ended within len bytes; the
 * first `from` bytes were searched before (so a trickle of bytes costs no rescans). */
static size_t head_end(const char *p, size_t from, size_t len)
{
	for (size_t i = from > 3 ? from - 3 : 0; i + 1 < len; i++) {
		if (p[i] == '\n' && p[i + 1] == '\n')
			return i + 2;
		if (i + 3 < len && memcmp(p + i, "\r\n\r\n", 4) == 0)
			return i + 4;
	}
	return 0;
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	struct conn *c = h->data;

	/* Before the answer: the head buffer's free room; after it: the whole buffer again, as a
	 * place to drop what the client still sends. */
	if (c->answered)
		*buf = uv_buf_init(c->head, sizeof(c->head));
	else
		*buf = uv_buf_init(c->head + c->len, (unsigned)(sizeof(c->head) - c->len));
}

static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
	struct conn *c = st->data;
	size_t end;

	if (c->closing)
		return;
	if (nread < 0) {
		conn_close(c);
		return;
	}
	if (c->answered || nread == 0)
		return;
	c->len += (size_t)nread;
	end = head_end(c->head, c->len - (size_t)nread, c->len);
	if (end) {
		const char *eol = memchr(c->head, '\n', end);

		answer(c, (size_t)(eol - c->head));
		return;
	}
	if (c->len == sizeof(c->head))
		respond_text(c, "431 Request Header Fields Too Large",
		             "Content-Type: text/plain\r\n",
		             "the request head is limited to 8192 bytes\n");
}

static void on_connection(uv_stream_t *ls, int status)
{
	struct kvfs_metrics_http *s = ls->data;
	struct conn *c;

	if (status < 0 || s->closing)
		return;
	if (s->nconns >= KVFS_METRICS_HTTP_CONNS && s->oldest)
		conn_close(s->oldest);
	c = calloc(1, sizeof(*c));
	if (!c || uv_tcp_init(s->loop, &c->tcp) < 0) {
		/* Left unaccepted: libuv waits with the listener until memory allows. */
		free(c);
		log_warn("metrics: cannot take a connection: out of memory");
		return;
	}
	s->live++;
	c->srv = s;
	c->tcp.data = c->timer.data = c;
	c->open_handles = 1;
	uv_timer_init(s->loop, &c->timer);
	c->open_handles = 2;
	c->prev = s->newest;
	if (s->newest)
		s->newest->next = c;
	else
		s->oldest = c;
	s->newest = c;
	s->nconns++;
	if (uv_accept(ls, (uv_stream_t *)&c->tcp) < 0 ||
	    uv_timer_start(&c->timer, on_deadline, KVFS_METRICS_HTTP_DEADLINE_MS, 0) < 0 ||
	    uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) < 0)
		conn_close(c);
}

/* Splits "HOST:PORT" or "[V6]:PORT" and resolves it (numeric or a name) for binding. */
static int resolve(uv_loop_t *loop, const char *addr, struct sockaddr_storage *ss, char *err,
                   size_t errlen)
{
	char host[256];
	const char *colon = strrchr(addr, ':'), *h = addr;
	size_t hlen;
	uv_getaddrinfo_t req;
	struct addrinfo hints = {
	    .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE};
	int rv;

	if (!colon || colon == addr || !colon[1])
		goto bad;
	hlen = (size_t)(colon - addr);
	if (addr[0] == '[' && colon[-1] == ']') {
		h++;
		hlen -= 2;
	}
	if (hlen == 0 || hlen >= sizeof(host))
		goto bad;
	memcpy(host, h, hlen);
	host[hlen] = '\0';
	rv = uv_getaddrinfo(loop, &req, NULL, host, colon + 1, &hints);
	if (rv < 0) {
		snprintf(err, errlen, "--metrics-listen: cannot resolve '%s': %s", addr,
		         uv_strerror(rv));
		return -EINVAL;
	}
	memcpy(ss, req.addrinfo->ai_addr, req.addrinfo->ai_addrlen);
	uv_freeaddrinfo(req.addrinfo);
	return 0;
bad:
	snprintf(err, errlen, "--metrics-listen: '%s' is not HOST:PORT", addr);
	return -EINVAL;
}

static void on_listener_closed(uv_handle_t *h)
{
	struct kvfs_metrics_http *s = h->data;

	s->listener_open = false;
	srv_maybe_free(s);
}

int metrics_http_start(struct kvfs_metrics_http **out, uv_loop_t *loop, const char *addr,
                       kvfs_metrics_render_fn render, void *arg, char *err, size_t errlen)
{
	struct kvfs_metrics_http *s;
	struct sockaddr_storage ss;
	int rv = resolve(loop, addr, &ss, err, errlen);

	if (rv < 0)
		return rv;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->loop = loop;
	s->render = render;
	s->arg = arg;
	rv = uv_tcp_init(loop, &s->listener);
	if (rv < 0) {
		free(s);
		return rv;
	}
	s->listener.data = s;
	s->listener_open = true;
	rv = uv_tcp_bind(&s->listener, (const struct sockaddr *)&ss, 0);
	if (rv == 0)
		rv = uv_listen((uv_stream_t *)&s->listener, 64, on_connection);
	if (rv < 0) {
		snprintf(err, errlen, "--metrics-listen: cannot listen on %s: %s", addr,
		         uv_strerror(rv));
		s->closing = true;
		uv_close((uv_handle_t *)&s->listener, on_listener_closed);
		return rv;
	}
	*out = s;
	return 0;
}

void metrics_http_close(struct kvfs_metrics_http *s)
{
	if (!s || s->closing)
		return;
	s->closing = true;
	while (s->oldest)
		conn_close(s->oldest);
	uv_close((uv_handle_t *)&s->listener, on_listener_closed);
}
