/*
 * Dialing a peer (see peer.h and peer_internal.h): one attempt resolves the peer's advertised
 * HOST:PORT afresh with libuv's resolver (uv_getaddrinfo: a name on the loop's thread pool, off
 * the loop; an IP address at once), then tries the addresses it got in order, one connection at a
 * time, until one connects; when none does, the redial timer starts the next attempt, with its
 * own lookup. So a peer that comes back under its name at a new address (a container restarted)
 * is found at the next redial, and a name with several addresses is served by whichever listens.
 */
#include "peer_internal.h"

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "kvfs/logging.h"

/* A lookup in flight; freed in its callback, which libuv always calls (UV_EAI_CANCELED too). */
struct lookup {
	uv_getaddrinfo_t req;
	struct kvfs_peers *p;
	uint32_t id;
};

static void redial_cb(uv_timer_t *t)
{
	struct peer *pr = t->data;

	if (!pr->p->closing && pr->has_addr && pr->conn == NULL && !peer_dial_busy(pr))
		peer_dial(pr);
}

/* See peer_internal.h. */
bool peer_dial_busy(const struct peer *pr)
{
	return pr->dialing != NULL || pr->lookup != NULL;
}

/* See peer_internal.h. */
void peer_schedule_redial(struct peer *pr)
{
	if (pr->p->closing || !pr->has_addr || pr->conn != NULL || peer_dial_busy(pr) ||
	    uv_is_active((uv_handle_t *)&pr->redial))
		return;
	/*
	 * The higher id waits a little longer, so that when both ends redial, the lower id's dial
	 * (the one the duplicate rule keeps) usually completes first and the other is never made.
	 */
	uv_timer_start(&pr->redial, redial_cb,
	               (pr->auth_failed && pr->backoff_ms < PEER_BACKOFF_AUTH_MS ? PEER_BACKOFF_AUTH_MS
	                                                                      : pr->backoff_ms) +
	                   (pr->p->cfg.id > pr->id ? PEER_BACKOFF_FIRST_MS : 0),
	               0);
	pr->backoff_ms =
	    pr->backoff_ms * 2 > PEER_BACKOFF_MAX_MS ? PEER_BACKOFF_MAX_MS : pr->backoff_ms * 2;
}

static void connect_cb(uv_connect_t *req, int status)
{
	struct conn *c = req->data;
	struct peer *pr;

	if (status == UV_ECANCELED || c->closing)
		return;
	pr = &c->p->peers[c->id];
	if (status < 0) {
		c->refused = status == UV_ECONNREFUSED;
		log_debug("cannot connect to node %" PRIu32 " at %s (%s): %s", c->id, pr->addr_str,
		          c->remote, uv_strerror(status));
		peer_conn_close(c);
		return;
	}
	pr->refused = false;
	peer_conn_start(c);
}

/* Dials the attempt's next address. */
static void dial_one(struct peer *pr)
{
	struct kvfs_peers *p = pr->p;
	const struct sockaddr_storage *ss = &pr->ai[pr->next_ai++];
	struct conn *c;
	int rv;

	assert(pr->conn == NULL && pr->dialing == NULL && pr->has_addr && !p->closing);
	c = peer_conn_new(p);
	if (c == NULL) {
		log_warn("cannot dial node %" PRIu32 ": out of memory", pr->id);
		pr->nai = 0;
		peer_schedule_redial(pr);
		return;
	}
	c->outbound = true;
	c->id = pr->id;
	peer_addr_name(ss, c->remote, sizeof(c->remote));
	pr->dialing = c;
	rv = uv_tcp_connect(&c->connect, &c->tcp, (const struct sockaddr *)ss, connect_cb);
	if (rv != 0) {
		c->refused = rv == UV_ECONNREFUSED;
		log_debug("cannot connect to node %" PRIu32 " at %s (%s): %s", pr->id, pr->addr_str,
		          c->remote, uv_strerror(rv));
		peer_conn_close(c);
	}
}

/* See peer_internal.h. */
bool peer_dial_failed(struct peer *pr, const struct conn *c)
{
	if (c->connected) {
		pr->nai = 0; /* it answered: the attempt is over, and nothing was refused */
		return false;
	}
	pr->attempt_refused = pr->attempt_refused && c->refused;
	if (!pr->p->closing && pr->conn == NULL && pr->has_addr && pr->next_ai < pr->nai) {
		dial_one(pr);
		return true;
	}
	if (pr->nai > 0)
		pr->refused = pr->attempt_refused;
	pr->nai = 0;
	return false;
}

/* Keeps the IPv4 and IPv6 addresses of res, in order, as the attempt's list. */
static void take_addrs(struct peer *pr, const struct addrinfo *res)
{
	pr->nai = 0;
	pr->next_ai = 0;
	pr->attempt_refused = true;
	for (; res != NULL && pr->nai < PEER_MAX_ADDRS; res = res->ai_next) {
		if ((res->ai_family != AF_INET && res->ai_family != AF_INET6) ||
		    res->ai_addrlen > sizeof(pr->ai[0]))
			continue;
		memset(&pr->ai[pr->nai], 0, sizeof(pr->ai[0]));
		memcpy(&pr->ai[pr->nai], res->ai_addr, res->ai_addrlen);
		pr->nai++;
	}
}

/* What a lookup found (status: 0 or a UV_EAI_* error): dial, or wait for the next attempt. */
static void resolved(struct peer *pr, int status, const struct addrinfo *res)
{
	if (status == 0)
		take_addrs(pr, res);
	if (status != 0 || pr->nai == 0) {
		/* Said once until a lookup succeeds: a peer that is down in Compose or Kubernetes
		 * has no name either, and is redialed every 500 ms. */
		if (!pr->resolve_failed)
			log_warn("cannot resolve the address %s of node %" PRIu32 ": %s; retrying",
			         pr->addr_str, pr->id,
			         status ? uv_strerror(status) : "no IPv4 or IPv6 address");
		else
			log_debug("cannot resolve the address %s of node %" PRIu32 ": %s",
			          pr->addr_str, pr->id,
			          status ? uv_strerror(status) : "no IPv4 or IPv6 address");
		pr->resolve_failed = true;
		pr->refused = false;
		pr->nai = 0;
		peer_schedule_redial(pr);
		return;
	}
	if (pr->resolve_failed)
		log_info("node %" PRIu32 "'s address %s resolves again", pr->id, pr->addr_str);
	pr->resolve_failed = false;
	dial_one(pr);
}

static void lookup_cb(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
	struct lookup *l = req->data;
	struct kvfs_peers *p = l->p;
	struct peer *pr = &p->peers[l->id];

	assert(p->lookups > 0);
	p->lookups--;
	if (pr->lookup == l) {
		pr->lookup = NULL;
		/* An inbound connection may have won meanwhile. */
		if (!p->closing && pr->conn == NULL && pr->has_addr && pr->dialing == NULL)
			resolved(pr, status, res);
	}
	uv_freeaddrinfo(res);
	free(l);
	if (p->closing)
		peer_finish_close(p);
}

/* See peer_internal.h. */
void peer_dial(struct peer *pr)
{
	struct kvfs_peers *p = pr->p;
	struct addrinfo hints = {.ai_family = AF_UNSPEC,
	                         .ai_socktype = SOCK_STREAM,
	                         .ai_flags = AI_NUMERICSERV};
	struct lookup *l;
	int rv;

	assert(pr->conn == NULL && !peer_dial_busy(pr) && pr->has_addr && !p->closing);
	if (pr->hp.numeric) {
		/* Nothing to ask anyone: at once, on the loop. */
		uv_getaddrinfo_t req;

		hints.ai_flags |= AI_NUMERICHOST;
		rv = uv_getaddrinfo(p->loop, &req, NULL, pr->hp.host, pr->hp.port, &hints);
		resolved(pr, rv, rv == 0 ? req.addrinfo : NULL);
		if (rv == 0)
			uv_freeaddrinfo(req.addrinfo);
		return;
	}
	l = calloc(1, sizeof(*l));
	if (l == NULL) {
		log_warn("cannot dial node %" PRIu32 ": out of memory", pr->id);
		peer_schedule_redial(pr);
		return;
	}
	l->p = p;
	l->id = pr->id;
	l->req.data = l;
	rv = uv_getaddrinfo(p->loop, &l->req, lookup_cb, pr->hp.host, pr->hp.port, &hints);
	if (rv != 0) {
		free(l);
		resolved(pr, rv, NULL);
		return;
	}
	pr->lookup = l;
	p->lookups++;
}

/* See peer_internal.h. */
void peer_dial_stop(struct peer *pr)
{
	struct lookup *l = pr->lookup;

	pr->nai = 0;
	uv_timer_stop(&pr->redial);
	if (l != NULL) {
		pr->lookup = NULL; /* its callback drops what it finds */
		uv_cancel((uv_req_t *)&l->req);
	}
	if (pr->dialing != NULL)
		peer_conn_close(pr->dialing);
}
