/*
 * Snapshot transfer (see snapxfer.h): the sending side keeps one transfer per peer, the
 * receiving side one file at a time. All decisions are here; the file, the network, the clock
 * and the core's state are behind struct kvfs_snapxfer_io.
 *
 * Sending, per peer: IDLE -> OPENING -> (READING -> WAITING)* -> IDLE. WAITING has one chunk in
 * flight; an ok SNAPSHOT_ACK beyond it moves on to the offset acknowledged (so a receiver that
 * has more, after a restart, is resumed), an ok one at or below it only shows the receiver is
 * alive, a refusal ends the transfer until retry_at. Ending a transfer while an open or read is
 * in flight is deferred to its completion, so that completions always find the state that asked.
 *
 * Receiving: IDLE -> RECEIVING (one write in flight at most) -> SEALING -> LOADING -> LOADED ->
 * INSTALLING -> IDLE. A file is identified by (sender, its epoch, index, snapshot epoch, size): a
 * chunk of the file in hand is written if it is the next one and acknowledged again if it is an
 * old one; a chunk at offset 0 of another file starts that file, replacing a partial one, but
 * never one that is being sealed, loaded or installed (those refuse other files, and tell their
 * own sender every KVFS_SNAPXFER_ALIVE_MS that they are still at it).
 */
#include "kvfs/snapxfer.h"

#include <errno.h>
#include <stdlib.h>

#include "kvfs/peer_msg.h"

enum send_state { S_IDLE, S_OPENING, S_READING, S_WAITING };

struct sender {
	bool need;   /* leading: the core asked for a snapshot for this peer */
	bool pulled; /* following: this peer, the candidate we follow, asked (SNAPSHOT_PULL) */
	uint64_t pull_epoch; /* ... at this epoch of ours (a candidate of one epoch only) */
	enum send_state state;
	bool stop;      /* end the transfer when the open or read in flight completes */
	uint64_t epoch; /* ours when the transfer started */
	uint64_t index, snap_epoch, total;
	uint64_t offset;   /* of the chunk being read or in flight */
	uint32_t len;      /* ... and its length */
	uint64_t last_ms;  /* the chunk went, or the receiver last answered */
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
	struct sender *to; /* by peer id, 0..size */
	struct receiver r;
};

int snapxfer_init(struct kvfs_snapxfer **out, uint32_t id, uint32_t size, uint32_t chunk,
                  const struct kvfs_snapxfer_io *io)
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
	if (t->state == S_OPENING || t->state == S_READING) {
		t->stop = true;
		return;
	}
	if (t->state == S_WAITING)
		x->io.close(x->io.arg, to);
	t->state = S_IDLE;
}

static void read_next(struct kvfs_snapxfer *x, uint32_t to)
{
	struct sender *t = &x->to[to];
	uint64_t left = t->total - t->offset;

	t->len = left > x->chunk ? x->chunk : (uint32_t)left;
	t->state = S_READING;
	x->io.read(x->io.arg, to, t->offset, t->len);
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
	t->index = index;
	t->snap_epoch = epoch;
	t->total = total;
	t->offset = 0;
	read_next(x, to);
}

void snapxfer_read_done(struct kvfs_snapxfer *x, uint32_t to, int rv, const uint8_t *data)
{
	struct sender *t;
	struct kvfs_peer_snapshot_chunk m;

	if (!peer_ok(x, to) || x->to[to].state != S_READING)
		return;
	t = &x->to[to];
	if (!still_sending(x, to, true))
		return;
	if (rv < 0) {
		x->io.close(x->io.arg, to);
		t->state = S_IDLE;
		t->retry_at = now(x) + KVFS_SNAPXFER_REFUSED_MS;
		return;
	}
	m = (struct kvfs_peer_snapshot_chunk){
	    .epoch = t->epoch,
	    .snap_index = t->index,
	    .snap_epoch = t->snap_epoch,
	    .offset = t->offset,
	    .total = t->total,
	    .last = t->offset + t->len == t->total,
	    .data = t->len ? data : NULL,
	    .len = t->len,
	};
	t->state = S_WAITING;
	t->last_ms = now(x);
	x->io.send_chunk(x->io.arg, to, &m);
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
	if (t->state != S_WAITING && t->state != S_READING)
		return;
	if (m->snap_index != t->index)
		return;
	if (m->epoch != v.epoch) {
		/* Not an answer at our epoch, so not progress; but a refusal from an older epoch
		 * means "I do not follow you yet", not "I am busy": offer again soon rather than
		 * after the quiet timeout. (A newer epoch: we are deposed, and the tick stops us.)
		 */
		if (!m->ok && m->epoch < v.epoch && t->state == S_WAITING)
			stop_send(x, from, now(x) + KVFS_SNAPXFER_NOT_YET_MS);
		return;
	}
	/* A follower busy with a long transfer is alive: the leader must not give up for want of
	 * its APPEND_ACKs. */
	x->io.heard(x->io.arg, from);
	if (t->state != S_WAITING || t->epoch != v.epoch)
		return; /* about a chunk before the one we are reading, or an older transfer */
	if (!m->ok) {
		/* It cannot write it, or the chunk did not follow on: again later, not in a loop.
		 */
		stop_send(x, from, now(x) + KVFS_SNAPXFER_REFUSED_MS);
		return;
	}
	if (m->offset > t->total)
		return;
	t->last_ms = now(x);
	if (m->offset == t->total) {
		/* Only a replica that has installed it (or committed past it) says so. */
		x->io.close(x->io.arg, from);
		t->state = S_IDLE;
		t->need = false;
		t->pulled = false;
		x->io.sent(x->io.arg, from, t->index);
		return;
	}
	if (m->offset <= t->offset)
		return; /* an old acknowledgement again, or "still installing" */
	t->offset = m->offset;
	read_next(x, from);
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
		else if (t->state == S_WAITING && t_now - t->last_ms >= KVFS_SNAPXFER_QUIET_MS)
			stop_send(x, id, 0);
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
		return; /* the sender waits for that write's acknowledgement */
	if (r->state == R_RECEIVING && same) {
		if (m->offset == r->offset)
			write_chunk(x, m);
		else if (m->offset < r->offset)
			send_ack(x, from, r->index, r->offset,
			         true); /* a resend: go on from here */
		else
			send_ack(x, from, r->index, r->offset, false); /* a gap */
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
