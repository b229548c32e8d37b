/*
 * A test-only link delay in the peer transport (peer.h, "Testing"): with
 * kvfs_peers_config.test_delay_file set, every message this node sends to a peer (peer_send(),
 * not the handshake, HELLO or the transport's own PINGs) is held for DELAY_MS ± a uniform
 * JITTER_MS, read from that file, in a FIFO per peer, then sent as usual. A frame is due at
 * max(the previous frame's due time, now + delay ± jitter), so order is kept; frames sent in the
 * same turn of the loop share one draw (a burst travels together, so a busy link is not slowed
 * more than a quiet one by taking the latest of several draws). One timer drains the FIFOs.
 * Frames are held before they are framed and sealed, so sealing and its nonces happen in sending
 * order as without the delay. A connection that goes down drops its peer's held frames (the
 * transport may lose messages across a reconnection, never reorder them), and so does closing
 * the mesh.
 *
 * The file holds "DELAY_MS JITTER_MS" (integers 0..10000); a missing or empty file means no
 * delay; anything else is warned about once and means no delay. It is looked at again, at most
 * every PEER_DELAY_CHECK_MS, when a message is sent, and re-read when its mtime, size or inode
 * changed (a test replaces it atomically by renaming a new file over it).
 *
 * Without the option the transport pays one pointer test per send (peer_send()).
 */
#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <uv.h>

#include "kvfs/logging.h"
#include "peer_internal.h"

#define PEER_DELAY_CHECK_MS 100u
#define PEER_DELAY_MAX_MS   10000u

struct held {
	struct held *next;
	uint64_t due; /* uv_now() terms */
	uint8_t type;
	uint32_t len;
	uint8_t payload[];
};

struct held_queue {
	struct held *head, *tail;
	uint64_t last_due;
	uint64_t last_at; /* uv_now() when the last frame was held */
	size_t bytes;     /* payloads held */
};

struct peer_delay {
	uv_timer_t timer;   /* data: the mesh */
	uint64_t armed_due; /* when the timer fires, while it is active */
	char *file;
	uint32_t delay_ms, jitter_ms;
	bool checked;        /* the file was looked at once */
	uint64_t checked_at; /* uv_now() of the last look */
	bool seen;           /* the file existed at the last look: st_* below are its identity */
	dev_t st_dev;
	ino_t st_ino;
	off_t st_size;
	struct timespec st_mtim;
	uint64_t rng;
	uint32_t size; /* q[1..size] */
	struct held_queue q[];
};

static uint64_t next_random(struct peer_delay *d)
{
	uint64_t x = d->rng; /* xorshift64 */

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	d->rng = x;
	return x;
}

/* One integer 0..PEER_DELAY_MAX_MS at *s, advancing *s past it. */
static bool parse_ms(const char **s, uint32_t *out)
{
	const char *p = *s + strspn(*s, " \t\r\n");
	char *end;
	unsigned long v;

	if (*p < '0' || *p > '9')
		return false;
	errno = 0;
	v = strtoul(p, &end, 10);
	if (errno != 0 || v > PEER_DELAY_MAX_MS)
		return false;
	*out = (uint32_t)v;
	*s = end;
	return true;
}

/* "DELAY_MS JITTER_MS", or only blanks (no delay). */
static bool parse_delay(const char *text, uint32_t *delay, uint32_t *jitter)
{
	const char *s = text;

	if (text[strspn(text, " \t\r\n")] == '\0') {
		*delay = *jitter = 0;
		return true;
	}
	if (!parse_ms(&s, delay) || !strchr(" \t", *s) || *s == '\0' || !parse_ms(&s, jitter))
		return false;
	return s[strspn(s, " \t\r\n")] == '\0';
}

static void set_delay(struct peer_delay *d, uint32_t delay, uint32_t jitter)
{
	if (delay == d->delay_ms && jitter == d->jitter_ms)
		return;
	d->delay_ms = delay;
	d->jitter_ms = jitter;
	log_info("test hook: messages to peers are now delayed %" PRIu32 " ms +- %" PRIu32
	         " ms (%s)",
	         delay, jitter, d->file);
}

static void read_file(struct peer_delay *d)
{
	char buf[128];
	uint32_t delay, jitter;
	size_t n = 0;
	FILE *f = fopen(d->file, "re");

	if (f != NULL) {
		n = fread(buf, 1, sizeof(buf) - 1, f);
		fclose(f);
	}
	buf[n] = '\0';
	if (f == NULL || n == sizeof(buf) - 1 || strlen(buf) != n ||
	    !parse_delay(buf, &delay, &jitter)) {
		log_warn("test hook: ignoring %s: expected \"DELAY_MS JITTER_MS\", two integers "
		         "0..%u; no delay until it is fixed",
		         d->file, PEER_DELAY_MAX_MS);
		set_delay(d, 0, 0);
		return;
	}
	set_delay(d, delay, jitter);
}

/* Looks at the file if PEER_DELAY_CHECK_MS passed since the last look; re-reads it if changed. */
static void check_file(struct peer_delay *d, uint64_t now)
{
	struct stat st;

	if (d->checked && now - d->checked_at < PEER_DELAY_CHECK_MS)
		return;
	d->checked = true;
	d->checked_at = now;
	if (stat(d->file, &st) != 0) {
		d->seen = false;
		set_delay(d, 0, 0); /* missing: no delay */
		return;
	}
	if (d->seen && st.st_dev == d->st_dev && st.st_ino == d->st_ino &&
	    st.st_size == d->st_size && st.st_mtim.tv_sec == d->st_mtim.tv_sec &&
	    st.st_mtim.tv_nsec == d->st_mtim.tv_nsec)
		return;
	d->seen = true;
	d->st_dev = st.st_dev;
	d->st_ino = st.st_ino;
	d->st_size = st.st_size;
	d->st_mtim = st.st_mtim;
	read_file(d); /* warns once per version of a bad file */
}

struct peer_delay *peer_delay_new(const char *file, uint32_t size)
{
	struct peer_delay *d = calloc(1, sizeof(*d) + (size + 1) * sizeof(d->q[0]));

	if (d == NULL)
		return NULL;
	d->file = strdup(file);
	if (d->file == NULL) {
		free(d);
		return NULL;
	}
	d->size = size;
	return d;
}

void peer_delay_start(struct kvfs_peers *p)
{
	struct peer_delay *d = p->delay;

	uv_timer_init(p->loop, &d->timer);
	d->timer.data = p;
	d->rng = uv_hrtime() ^ ((uint64_t)p->cfg.id << 32) ^ 0x9e3779b97f4a7c15u;
	if (d->rng == 0)
		d->rng = 1;
	check_file(d, uv_now(p->loop));
}

void peer_delay_drop(struct kvfs_peers *p, uint32_t id)
{
	struct held_queue *q = &p->delay->q[id];

	while (q->head != NULL) {
		struct held *h = q->head;

		q->head = h->next;
		free(h);
	}
	q->tail = NULL;
	q->bytes = 0;
	q->last_due = 0;
	q->last_at = 0;
}

size_t peer_delay_queued(const struct kvfs_peers *p, uint32_t id)
{
	return p->delay->q[id].bytes;
}

static void timer_cb(uv_timer_t *t);

/* Arms the timer for the earliest frame held, if any. */
static void arm(struct kvfs_peers *p)
{
	struct peer_delay *d = p->delay;
	uint64_t now = uv_now(p->loop), first = UINT64_MAX;

	for (uint32_t i = 1; i <= d->size; i++)
		if (d->q[i].head != NULL && d->q[i].head->due < first)
			first = d->q[i].head->due;
	if (first == UINT64_MAX) {
		uv_timer_stop(&d->timer);
		return;
	}
	d->armed_due = first;
	uv_timer_start(&d->timer, timer_cb, first > now ? first - now : 0, 0);
}

static void timer_cb(uv_timer_t *t)
{
	struct kvfs_peers *p = t->data;
	struct peer_delay *d = p->delay;
	uint64_t now = uv_now(p->loop);

	for (uint32_t i = 1; i <= d->size && !p->closing; i++) {
		struct held_queue *q = &d->q[i];

		while (q->head != NULL && q->head->due <= now && !p->closing) {
			struct held *h = q->head;
			struct conn *c = p->peers[i].conn;

			q->head = h->next;
			if (q->head == NULL)
				q->tail = NULL;
			q->bytes -= h->len;
			/* A failed send closes c, whose detach drops what is left
			 * (peer_delay_drop). */
			if (c != NULL)
				peer_conn_send(c, h->type, h->len ? h->payload : NULL, h->len);
			free(h);
		}
	}
	if (!p->closing)
		arm(p);
}

/* The delay for the next frame: delay_ms ± uniform jitter_ms, at least 0. */
static uint64_t draw_delay(struct peer_delay *d)
{
	int64_t ms = d->delay_ms;

	if (d->jitter_ms > 0)
		ms += (int64_t)(next_random(d) % (2u * (uint64_t)d->jitter_ms + 1)) - d->jitter_ms;
	return ms > 0 ? (uint64_t)ms : 0;
}

int peer_delay_send(struct kvfs_peers *p, struct conn *c, uint8_t type, const uint8_t *payload,
                    uint32_t len)
{
	struct peer_delay *d = p->delay;
	struct held_queue *q = &d->q[c->id];
	uint64_t now = uv_now(p->loop), due;
	size_t queued;
	struct held *h;

	check_file(d, now);
	if (q->head == NULL && d->delay_ms == 0 && d->jitter_ms == 0)
		return peer_conn_send(c, type, payload, len);
	queued = peer_conn_queued(c) + q->bytes;
	if (queued > 0 && queued + len > p->cfg.max_queue)
		return peer_conn_overflow(c);
	h = malloc(sizeof(*h) + len);
	if (h == NULL)
		return -ENOMEM;
	/* Frames sent in one turn of the loop travel together, as a burst on a real link does:
	 * one draw for the burst, not the latest of several (which would slow busy links more). */
	due = q->head != NULL && q->last_at == now ? q->last_due : now + draw_delay(d);
	if (due < q->last_due)
		due = q->last_due;
	q->last_due = due;
	q->last_at = now;
	h->next = NULL;
	h->due = due;
	h->type = type;
	h->len = len;
	if (len > 0)
		memcpy(h->payload, payload, len);
	if (q->tail != NULL)
		q->tail->next = h;
	else
		q->head = h;
	q->tail = h;
	q->bytes += len;
	if (!uv_is_active((uv_handle_t *)&d->timer) || d->armed_due > due) {
		d->armed_due = due;
		uv_timer_start(&d->timer, timer_cb, due - now, 0);
	}
	return 0;
}

void peer_delay_close(struct kvfs_peers *p, uv_close_cb cb)
{
	for (uint32_t i = 1; i <= p->delay->size; i++)
		peer_delay_drop(p, i);
	uv_close((uv_handle_t *)&p->delay->timer, cb);
}

void peer_delay_free(struct peer_delay *d)
{
	if (d == NULL)
		return;
	for (uint32_t i = 1; i <= d->size; i++) {
		while (d->q[i].head != NULL) {
			struct held *h = d->q[i].head;

			d->q[i].head = h->next;
			free(h);
		}
	}
	free(d->file);
	free(d);
}
