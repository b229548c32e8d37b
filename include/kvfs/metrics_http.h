/*
 * --metrics-listen: a tiny HTTP/1.1 server on the node's libuv loop that answers `GET /metrics`
 * with the node's metrics text (200, Content-Type: text/plain; version=0.0.4), 404 for any other
 * path, 405 for any other method (HEAD is answered like GET, without the body), 400 for what is
 * not an HTTP/1.x request line, 431 for a request head over KVFS_METRICS_HTTP_HEAD_MAX bytes,
 * and closes each connection after its one response.
 *
 * Hardened for strangers: a connection gets KVFS_METRICS_HTTP_DEADLINE_MS to send its head and
 * take its answer, then is closed; at most KVFS_METRICS_HTTP_CONNS are open at once (a new one
 * closes the oldest); what a client sends is read into a fixed buffer of the head's cap, so no
 * allocation depends on it. No TLS and no authentication: bind it to an address only scrapers
 * reach.
 */
#ifndef KVFS_METRICS_HTTP_H
#define KVFS_METRICS_HTTP_H

#include <stddef.h>

#define KVFS_METRICS_HTTP_HEAD_MAX    8192
#define KVFS_METRICS_HTTP_CONNS       32
#define KVFS_METRICS_HTTP_DEADLINE_MS 5000

struct uv_loop_s;
struct kvfs_metrics_http;

/* Returns the metrics text as a new malloc'ed buffer (the server frees it), its length in
 * *len; NULL on ENOMEM (answered 503). Called on the loop thread. */
typedef char *(*kvfs_metrics_render_fn)(void *arg, size_t *len);

/*
 * Listens on addr ("HOST:PORT", "[V6]:PORT"; a host name is resolved now, once) on loop and
 * serves render(arg). Returns 0, or a negative errno with a one-line explanation in err
 * (-EADDRINUSE: the port is taken; -EINVAL: not HOST:PORT or no such host).
 */
int metrics_http_start(struct kvfs_metrics_http **out, struct uv_loop_s *loop, const char *addr,
                       kvfs_metrics_render_fn render, void *arg, char *err, size_t errlen);

/* Stops listening and closes every connection; the memory goes once libuv has closed the
 * handles (the loop must run on). NULL is accepted. */
void metrics_http_close(struct kvfs_metrics_http *h);

#endif /* KVFS_METRICS_HTTP_H */
