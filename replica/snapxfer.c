/*
 * Snapshot transfer (see snapxfer.h): the sending side keeps one transfer per peer, the
 * receiving side one file at a time. All decisions are here; the file, the network, the clock
 * and the core's state are behind struct kvfs_snapxfer_io.
 *
 * Sending, per peer: IDLE -> OPENING -> SENDING -> IDLE. SENDING streams a window: chunks are read
 * one at a time and sent as each read completes, while the bytes sent but not acknowledged stay
 * under `window` chunks, so reading, the wire and the receiver's writes overlap instead of taking
 * turns. Acknowledgements are cumulative: an ok SNAPSHOT_ACK beyond what was acknowledged moves
 * the window on (past what was sent, too: a receiver that has more, after a restart, is resumed;
 * a chunk read meanwhile below it is not sent); an ok one at it while chunks beyond it went says
 * one was lost (the receiver answers a chunk that does not follow on with what it has): the
 * window is sent again from there, once until it is acknowledged; an ok one below it only shows
 * the receiver is alive; a refusal ends the transfer until retry_at, and the next one resumes
 * from what the receiver acknowledged (or from where its refusal says). Ending a transfer while
 * an open or read is in flight is deferred to its completion, so that completions always find
 * the state that asked.
 *
 * Receiving: IDLE -> RECEIVING (one write in flight at most; each acknowledged, cumulatively,
 * when done) -> SEALING -> LOADING -> LOADED -> INSTALLING -> IDLE. A file is identified by
 * (sender, its epoch, index, snapshot epoch, size): a chunk of the file in hand is written if it
 * is the next one and answered with what we have otherwise (an old one: go on from there; one
 * past a gap: send again from there); a chunk at offset 0 of another file starts that file,
 * replacing a partial one, but never one that is being sealed, loaded or installed (those refuse
 * other files, and tell their own sender every KVFS_SNAPXFER_ALIVE_MS that they are still at
 * it).
 */
#include "kvfs/snapxfer.h"

#include <errno.h>
#include <stdlib.h>

#include "kvfs/peer_msg.h"

enum send_state { S_IDLE, S_OPENING, S_SENDING };

struct sender {
	bool need;   /* leading: the core asked for a snapshot for this peer */
	bool pulled; /* following: this peer, the candidate we follow, asked (SNAPSHOT_PULL) */
	uint64_t pull_epoch; /* ... at this epoch of ours (a candidate of one epoch only) */
	enum send_state state;
	bool stop;      /* end the transfer when the open or read in flight completes */
	uint64_t epoch; /* ours when the transfer started */
	uint64_t index, snap_epoch, total;
	bool reading;         /* SENDING: a read is in flight ... */
	uint64_t roff;        /* ... at this offset ... */
	uint32_t rlen;        /* ... of this many bytes */
	uint64_t next;        /* the next chunk to read starts here: all before it went */
	bool all_sent;        /* the last chunk went */
	bool done;            /* the receiver has installed it (said when a read was in flight) */
	uint64_t acked;       /* the receiver has the file up to here (cumulative) ... */
	uint64_t acked_epoch; /* ... said at this epoch of ours */
	uint64_t recover;  /* sent up to here when chunks were last sent again: not again before */
	uint64_t moved_ms; /* the window last moved on, or was sent again */
	uint64_t last_ms;  /* a chunk went, or the receiver last answered */
	uint64_t retry_at; /* no new transfer before */
};

enum recv_state { R_IDLE, R_RECEIVING, R_SEALING, R_LOADING, R_LOADED, R_INSTALLING };

struct receiver {
	enum recv_state state;
	bool writing;   /* a write is in flight (RECEIVING) ... */
	uint32_t wlen;  /* ... of this many bytes */
	bool wlast;     /* ... the file's last */
	uint32_t from;  /* the file: sender, */
	uint64_t epoch; /* its epoch (ours then), */
	uint64_t index, snap_epoch, total;
	uint64_t offset;   /* bytes written */
	uint64_t last_off; /* where the last chunk written started */
	uint64_t last_ms;  /* the last chunk came */
	uint64_t alive_ms; /* the sender last heard we are installing */
	uint64_t pull_ms;  /* a candidate's SNAPSHOT_PULL last went */
};

struct kvfs_snapxfer {
	struct kvfs_snapxfer_io io;
	uint32_t id, size, chunk;
	uint64_t window;   /* bytes sent and not acknowledged, at most (a whole number of chunks) */
	struct sender *to; /* by peer id, 0..size */
	struct receiver r;
};

int snapxfer_init(struct kvfs_snapxfer **out, uint32_t id, uint32_t size, uint32_t chunk,
                  uint32_t window, const struct kvfs_snapxfer_io *io)
{
	struct kvfs_snapxfer *x;

	if (!out || !io || id == 0 || id > size)
		return -EINVAL;
	x = calloc(1, sizeof(*x));
	if (!x)
		return -ENOMEM;
	x->to = calloc((size_t)size + 1, sizeof(*x->to));
	if (!x->to) {
		free(x);
		return -ENOMEM;
	}
	x->io = *io;
	x->id = id;
	x->size = size;
	x->chunk = chunk ? chunk : KVFS_SNAPXFER_CHUNK;
	x->window = (uint64_t)x->chunk * (window ? window : KVFS_SNAPXFER_WINDOW);
	*out = x;
	return 0;
}

void snapxfer_close(struct kvfs_snapxfer *x)
{
	if (!x)
		return;
	free(x->to);
	free(x);
}

static uint64_t now(const struct kvfs_snapxfer *x)
{
	return x->io.now_ms(x->io.arg);
}

static struct kvfs_snapxfer_view view(const struct kvfs_snapxfer *x)
{
	struct kvfs_snapxfer_view v = {0};

	x->io.view(x->io.arg, &v);
	return v;
}

static bool peer_ok(const struct kvfs_snapxfer *x, uint32_t id)
{
	return id > 0 && id <= x->size && id != x->id;
}

/* ---- sending ---- */

/* Ends the transfer to `to` (now, or when its file action completes); none before retry_at. */
static void stop_send(struct kvfs_snapxfer *x, uint32_t to, uint64_t retry_at)
{
	struct sender *t = &x->to[to];

	t->retry_at = retry_at;
	if (t->state == S_OPENING || (t->state == S_SENDING && t->reading)) {
		t->stop = true;
		return;
	}
	if (t->state == S_SENDING)
		x->io.close(x->io.arg, to);
	t->state = S_IDLE;
}

/* The peer has installed the snapshot: the transfer is done. Not while a read is in flight. */
static void finish_send(struct kvfs_snapxfer *x, uint32_t to)
{
	struct sender *t = &x->to[to];

	x->io.close(x->io.arg, to);
	t->state = S_IDLE;
	t->need = false;
	t->pulled = false;
	x->io.sent(x->io.arg, to, t->index);
}

/* Reads the next chunk if none is being read, one is left and the window has room for it. */
static void fill(struct kvfs_snapxfer *x, uint32_t to)
{
	struct sender *t = &x->to[to];
	uint64_t left = t->total - t->next;

	if (t->state != S_SENDING || t->reading || t->all_sent || t->next - t->acked >= x->window)
		return;
	t->reading = true;
	t->roff = t->next;
	t->rlen = left > x->chunk ? x->chunk : (uint32_t)left;
	x->io.read(x->io.arg, to, t->roff, t->rlen);
}

/* Sends the window again from what the receiver acknowledged, if chunks beyond it went; not the
 * last chunk alone once sent (a receiver sealing the file says where it was, too: silence covers
 * its loss). */
static void resend(struct kvfs_snapxfer *x, uint32_t to)
{
	struct sender *t = &x->to[to];

	if (t->next <= t->acked || (t->all_sent && t->total - t->acked <= x->chunk))
		return;
	t->recover = t->next;
	t->next = t->acked;
	t->all_sent = false;
	t->moved_ms = now(x);
	fill(x, to);
}

/* The open or read in flight for `to` completed: false (and the file closed if it was open)
 * if the transfer was to end meanwhile. */
static bool still_sending(struct kvfs_snapxfer *x, uint32_t to, bool file_open)
{
	struct sender *t = &x->to[to];

	if (!t->stop && view(x).epoch == t->epoch)
		return true;
	t->stop = false;
	if (file_open)
		x->io.close(x->io.arg, to);
	t->state = S_IDLE;
	return false;
}

void snapxfer_opened(struct kvfs_snapxfer *x, uint32_t to, int rv, uint64_t index, uint64_t epoch,
                     uint64_t total)
{
	struct sender *t;

	if (!peer_ok(x, to) || x->to[to].state != S_OPENING)
		return;
	t = &x->to[to];
	if (rv < 0) {
		/* No snapshot to send (yet), or it cannot be read: not again at every tick. */
		t->stop = false;
		t->state = S_IDLE;
		t->retry_at = now(x) + KVFS_SNAPXFER_REFUSED_MS;
		return;
	}
	if (!still_sending(x, to, true))
		return;
	/* The same file again (a transfer that ended on silence, a refusal or a dropped
	 * connection): on from what the receiver acknowledged; it refuses that if it no longer has
	 * it, and says from where it takes it. */
	if (index != t->index || epoch != t->snap_epoch || total != t->total || t->acked >= total ||
	    t->acked_epoch != t->epoch)
		t->acked = 0;
	t->index = index;
	t->snap_epoch = epoch;
	t->total = total;
	t->acked_epoch = t->epoch;
	t->next = t->recover = t->acked;
	t->moved_ms = now(x);
	t->all_sent = t->done = t->reading = false;
	t->state = S_SENDING;
	t->last_ms = now(x);
	fill(x, to);
}

void snapxfer_read_done(struct kvfs_snapxfer *x, uint32_t to, int rv, const uint8_t *data)
{
	struct sender *t;
	struct kvfs_peer_snapshot_chunk m;

	if (!peer_ok(x, to) || x->to[to].state != S_SENDING || !x->to[to].reading)
		return;
	t = &x->to[to];
	t->reading = false;
	if (!still_sending(x, to, true))
		return;
	if (t->done) {
		finish_send(x, to); /* it said so while the read was in flight */
		return;
	}
	if (rv < 0) {
		x->io.close(x->io.arg, to);
		t->state = S_IDLE;
		t->retry_at = now(x) + KVFS_SNAPXFER_REFUSED_MS;
		return;
	}
	/* The window moved meanwhile (on past it: a transfer resumed; back before it: a resend):
	 * that chunk is not the next any more. */
	if (t->roff == t->next) {
		t->next += t->rlen;
		m = (struct kvfs_peer_snapshot_chunk){
		    .epoch = t->epoch,
		    .snap_index = t->index,
		    .snap_epoch = t->snap_epoch,
		    .offset = t->roff,
		    .total = t->total,
		    .last = t->roff + t->rlen == t->total,
		    .data = t->rlen ? data : NULL,
		    .len = t->rlen,
		};
		t->all_sent = m.last;
		t->last_ms = now(x);
		x->io.send_chunk(x->io.arg, to, &m);
	}
	fill(x, to);
}

void snapxfer_need(struct kvfs_snapxfer *x, uint32_t to)
{
	if (peer_ok(x, to))
		x->to[to].need = true;
}

void snapxfer_on_pull(struct kvfs_snapxfer *x, uint32_t from, uint64_t epoch)
{
	struct kvfs_snapxfer_view v = view(x);

	/* A candidate we promised must adopt our log, which we compacted. */
	if (!peer_ok(x, from) || epoch != v.epoch || from != v.leader ||
	    v.role != KVFS_REPL_FOLLOWER)
		return;
	x->to[from].pulled = true;
	x->to[from].pull_epoch = epoch;
}

void snapxfer_on_ack(struct kvfs_snapxfer *x, uint32_t from, const struct kvfs_peer_snapshot_ack *m)
{
	struct kvfs_snapxfer_view v = view(x);
	struct sender *t;

	if (!peer_ok(x, from))
		return;
	t = &x->to[from];
	if (t->state != S_SENDING)
		return;
	if (m->snap_index != t->index)
		return;
	if (m->epoch != v.epoch) {
		/* Not an answer at our epoch, so not progress; but a refusal from an older epoch
		 * means "I do not follow you yet", not "I am busy": offer again soon rather than
		 * after the quiet timeout. (A newer epoch: we are deposed, and the tick stops us.)
		 */
		if (!m->ok && m->epoch < v.epoch)
			stop_send(x, from, now(x) + KVFS_SNAPXFER_NOT_YET_MS);
		return;
	}
	/* A follower busy with a long transfer is alive: the leader must not give up for want of
	 * its APPEND_ACKs. */
	x->io.heard(x->io.arg, from);
	if (t->epoch != v.epoch)
		return; /* about an older transfer */
	if (!m->ok) {
		/* It cannot write it, or a chunk did not follow on: again later, not in a loop,
		 * from where it says it takes the file (0, or the end of what it has). */
		if (m->offset < t->acked)
			t->acked = m->offset;
		stop_send(x, from, now(x) + KVFS_SNAPXFER_REFUSED_MS);
		return;
	}
	if (m->offset > t->total)
		return;
	t->last_ms = now(x);
	if (m->offset == t->total) {
		/* Only a replica that has installed it (or committed past it) says so. */
		t->done = true;
		if (!t->reading)
			finish_send(x, from); /* else when the read completes */
		return;
	}
	if (m->offset == t->acked &&
	    (t->acked >= t->recover || now(x) - t->moved_ms >= KVFS_SNAPXFER_NOT_YET_MS)) {
		/* Again where it was, with chunks beyond it sent: one was lost, and those after
		 * it did not follow on. Send again from there, once per window (until that is
		 * acknowledged) or per KVFS_SNAPXFER_NOT_YET_MS. */
		resend(x, from);
		return;
	}
	if (m->offset <= t->acked)
		return; /* an old acknowledgement again, or "still installing" */
	t->acked = m->offset;
	t->moved_ms = now(x);
	if (t->next < t->acked) {
		/* It has more than we sent (a transfer resumed): on from there. */
		t->next = t->acked;
		t->all_sent = false;
	}
	fill(x, from);
}

void snapxfer_peer_down(struct kvfs_snapxfer *x, uint32_t id)
{
	if (peer_ok(x, id))
		stop_send(x, id, x->to[id].retry_at);
}

static void tick_send(struct kvfs_snapxfer *x, const struct kvfs_snapxfer_view *v, uint64_t t_now)
{
	for (uint32_t id = 1; id <= x->size; id++) {
		struct sender *t = &x->to[id];
		bool leading = v->role != KVFS_REPL_FOLLOWER, want;

		if (id == x->id)
			continue;
		/* A leader sends to whoever needs it; a follower only to the candidate it follows
		 * that pulled. What was asked in the other role is stale: a pull heard as a
		 * follower must not cancel a need the core has since asked as a leader. */
		if (leading)
			t->pulled = false;
		else
			t->need = false;
		want =
		    leading ? t->need : t->pulled && id == v->leader && t->pull_epoch == v->epoch;
		if (!want) {
			stop_send(x, id, 0);
			t->pulled = false;
			continue;
		}
		if (t->state != S_IDLE && t->epoch != v->epoch)
			stop_send(x, id, 0); /* chunks of another epoch of ours would be refused */
		else if (t->state == S_SENDING && t_now - t->last_ms >= KVFS_SNAPXFER_QUIET_MS)
			stop_send(x, id, 0);
		else if (t->state == S_SENDING && !t->reading &&
		         t_now - t->moved_ms >= KVFS_SNAPXFER_RESEND_MS)
			resend(x, id); /* what was lost was the window's end: no answer says so */
		if (t->state == S_IDLE && t_now >= t->retry_at && x->io.connected(x->io.arg, id)) {
			t->state = S_OPENING;
			t->stop = false;
			t->epoch = v->epoch;
			x->io.open(x->io.arg, id);
		}
	}
}

/* ---- receiving ---- */

static void send_ack(struct kvfs_snapxfer *x, uint32_t to, uint64_t index, uint64_t offset, bool ok)
{
	struct kvfs_peer_snapshot_ack m = {
	    .epoch = view(x).epoch, .snap_index = index, .offset = offset, .ok = ok};

	x->io.send_ack(x->io.arg, to, &m);
}

static void tell_alive(struct kvfs_snapxfer *x)
{
	struct receiver *r = &x->r;

	r->alive_ms = now(x);
	send_ack(x, r->from, r->index, r->last_off, true);
}

static void write_chunk(struct kvfs_snapxfer *x, const struct kvfs_peer_snapshot_chunk *m)
{
	struct receiver *r = &x->r;

	r->writing = true;
	r->wlen = m->len;
	r->wlast = m->last;
	r->last_ms = now(x);
	x->io.write(x->io.arg, m->offset, m->data, m->len);
}

/* The loaded snapshot goes in if the core takes it now; stays loaded if not yet. */
static void try_install(struct kvfs_snapxfer *x)
{
	struct kvfs_snapxfer_view v = view(x);
	struct receiver *r = &x->r;

	if (r->index <= v.durable) {
		/* Caught up meanwhile, on disk: it has all that. */
		x->io.unload(x->io.arg);
		r->state = R_IDLE;
		send_ack(x, r->from, r->index, r->total, true);
		return;
	}
	if (!v.wanted)
		return; /* not a follower right now: see at the next tick */
	r->state = R_INSTALLING;
	x->io.install(x->io.arg, r->index, r->snap_epoch);
}

void snapxfer_on_chunk(struct kvfs_snapxfer *x, uint32_t from,
                       const struct kvfs_peer_snapshot_chunk *m)
{
	struct kvfs_snapxfer_view v = view(x);
	struct receiver *r = &x->r;
	bool same;

	if (!peer_ok(x, from))
		return;
	if (m->epoch != v.epoch || from != v.source) {
		send_ack(x, from, m->snap_index, 0, false);
		return;
	}
	x->io.heard(x->io.arg, from); /* a candidate pulling: its source is alive */
	if (m->snap_index <= v.durable) {
		send_ack(x, from, m->snap_index, m->total, true); /* we have all that, on disk */
		return;
	}
	same = r->state != R_IDLE && from == r->from && m->epoch == r->epoch &&
	       m->snap_index == r->index && m->snap_epoch == r->snap_epoch && m->total == r->total;
	if (r->state == R_RECEIVING && r->writing)
		return; /* lost: the next one leaves a gap (the node's binding completes a write
		         * before it reads the next message, so only a simulation gets here) */
	if (r->state == R_RECEIVING && same) {
		/* Not the next one: a resend (go on from here), or a gap (one was lost: the same
		 * answer makes the sender send again from here). */
		if (m->offset == r->offset)
			write_chunk(x, m);
		else
			send_ack(x, from, r->index, r->offset, true);
		return;
	}
	if (r->state != R_IDLE && r->state != R_RECEIVING) {
		if (same) {
			tell_alive(x); /* a resend while we install it */
			return;
		}
		if (r->state != R_LOADED || m->offset != 0) {
			/* Another file while one is being sealed or loaded: later. */
			send_ack(x, from, m->snap_index, 0, false);
			return;
		}
		x->io.unload(x->io.arg);
		r->state = R_IDLE;
	}
	if (m->offset != 0) {
		send_ack(x, from, m->snap_index, 0, false); /* from the start, please */
		return;
	}
	/* A new file; the write at offset 0 replaces a partial one. */
	*r = (struct receiver){
	    .state = R_RECEIVING,
	    .from = from,
	    .epoch = m->epoch,
	    .index = m->snap_index,
	    .snap_epoch = m->snap_epoch,
	    .total = m->total,
	    .pull_ms = r->pull_ms,
	};
	write_chunk(x, m);
}

void snapxfer_written(struct kvfs_snapxfer *x, int rv)
{
	struct receiver *r = &x->r;

	if (r->state != R_RECEIVING || !r->writing)
		return;
	r->writing = false;
	if (rv < 0) {
		x->io.discard(x->io.arg);
		r->state = R_IDLE;
		send_ack(x, r->from, r->index, 0, false);
		return;
	}
	r->last_off = r->offset;
	r->offset += r->wlen;
	if (!r->wlast) {
		send_ack(x, r->from, r->index, r->offset, true);
		return;
	}
	r->state = R_SEALING;
	r->alive_ms = now(x);
	x->io.seal(x->io.arg, r->index);
}

/* A seal or load completed: true to go on; a failure ends the file (nothing left to undo). */
static bool step_done(struct receiver *r, enum recv_state state, int rv)
{
	if (r->state != state)
		return false;
	if (rv < 0)
		r->state = R_IDLE;
	return rv == 0;
}

void snapxfer_sealed(struct kvfs_snapxfer *x, int rv)
{
	if (!step_done(&x->r, R_SEALING, rv))
		return;
	x->r.state = R_LOADING;
	x->io.load(x->io.arg, x->r.index);
}

void snapxfer_loaded(struct kvfs_snapxfer *x, int rv)
{
	if (!step_done(&x->r, R_LOADING, rv))
		return;
	x->r.state = R_LOADED;
	try_install(x);
}

void snapxfer_installed(struct kvfs_snapxfer *x, int rv)
{
	struct receiver *r = &x->r;

	if (r->state != R_INSTALLING)
		return;
	if (rv == -EAGAIN) {
		r->state = R_LOADED;
		return;
	}
	r->state = R_IDLE;
	if (rv == 0)
		send_ack(x, r->from, r->index, r->total, true);
}

void snapxfer_pull(struct kvfs_snapxfer *x, uint32_t from)
{
	if (!peer_ok(x, from))
		return;
	x->r.pull_ms = now(x);
	x->io.send_pull(x->io.arg, from, view(x).epoch);
}

static void tick_recv(struct kvfs_snapxfer *x, const struct kvfs_snapxfer_view *v, uint64_t t_now)
{
	struct receiver *r = &x->r;

	if (r->state == R_RECEIVING && !r->writing &&
	    t_now - r->last_ms >= KVFS_SNAPXFER_QUIET_MS) {
		/* Its sender went away: a candidate pulls again, a follower waits for an offer. */
		x->io.discard(x->io.arg);
		r->state = R_IDLE;
	}
	if (r->state == R_LOADED)
		try_install(x);
	if (r->state >= R_SEALING && r->epoch == v->epoch &&
	    t_now - r->alive_ms >= KVFS_SNAPXFER_ALIVE_MS)
		tell_alive(x);
	/* A candidate waiting for a snapshot it pulled asks again if nothing comes. */
	if (v->role == KVFS_REPL_CANDIDATE && v->source && r->state == R_IDLE &&
	    t_now - r->pull_ms >= KVFS_SNAPXFER_QUIET_MS) {
		r->pull_ms = t_now;
		x->io.send_pull(x->io.arg, v->source, v->epoch);
	}
}

void snapxfer_tick(struct kvfs_snapxfer *x)
{
	struct kvfs_snapxfer_view v = view(x);
	uint64_t t_now = now(x);

	tick_recv(x, &v, t_now);
	tick_send(x, &v, t_now);
}

bool snapxfer_installing(const struct kvfs_snapxfer *x)
{
	return x->r.state >= R_SEALING;
}
