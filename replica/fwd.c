/*
 * Write forwarding with exactly-once retries (see fwd.h for the design): the list of this node's
 * writes in seq order, where each one goes, what a refusal or an apply means for it, and the
 * leader's side of FORWARD. Pure: the binding (node_fwd_uv.c, or the simulation) carries the
 * messages, the clock, the core and the log lines.
 */
#include "kvfs/fwd.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "kvfs/op.h"
#include "kvfs/store.h"

/* One write of this node, or a fwd_sync() barrier (op NULL). */
struct fwd_write {
	struct fwd_write *prev, *next;
	uint64_t seq;
	uint64_t order; /* when it was taken: a barrier waits for the writes taken before it */
	uint8_t *op;    /* the encoded op (origin, seq inside) */
	uint32_t len;
	kvfs_fwd_done_fn cb;
	void *arg;
	uint64_t deadline;    /* now_ms() */
	uint32_t sent_to;     /* where it went last (0: nowhere yet) ... */
	uint64_t sent_epoch;  /* ... in that leader's epoch */
	uint32_t first_to;    /* where this seq went first (0: nowhere yet) ... */
	uint64_t first_epoch; /* ... in that leader's epoch: a refusal is final only from it */
};

struct kvfs_fwd {
	struct kvfs_fwd_config cfg;
	struct kvfs_fwd_io io;
	uint64_t next_seq;
	uint64_t next_order;
	size_t nbarriers;
	struct fwd_write *head, *tail; /* writes in seq order; barriers among them */
	const char *why_stuck;         /* why writes wait, for the EIO report */
};

int fwd_init(struct kvfs_fwd **out, const struct kvfs_fwd_config *cfg, const struct kvfs_fwd_io *io)
{
	struct kvfs_fwd *f;

	if (!cfg->id || !cfg->first_seq)
		return -EINVAL;
	f = calloc(1, sizeof(*f));
	if (!f)
		return -ENOMEM;
	f->cfg = *cfg;
	f->io = *io;
	f->next_seq = cfg->first_seq;
	*out = f;
	return 0;
}

static void write_free(struct fwd_write *w)
{
	free(w->op);
	free(w);
}

void fwd_close(struct kvfs_fwd *f)
{
	struct fwd_write *w, *next;

	if (!f)
		return;
	for (w = f->head; w; w = next) {
		next = w->next;
		write_free(w);
	}
	free(f);
}

void fwd_seq_at_least(struct kvfs_fwd *f, uint64_t seq)
{
	if (f->next_seq < seq)
		f->next_seq = seq;
}

static void report(struct kvfs_fwd *f, const struct kvfs_fwd_report *r)
{
	if (f->io.report)
		f->io.report(f->io.arg, r);
}

static void unlink_write(struct kvfs_fwd *f, struct fwd_write *w)
{
	if (w->prev)
		w->prev->next = w->next;
	else
		f->head = w->next;
	if (w->next)
		w->next->prev = w->prev;
	else
		f->tail = w->prev;
	w->prev = w->next = NULL;
}

static void append_write(struct kvfs_fwd *f, struct fwd_write *w)
{
	w->prev = f->tail;
	w->next = NULL;
	if (f->tail)
		f->tail->next = w;
	else
		f->head = w;
	f->tail = w;
}

static void finish(struct kvfs_fwd *f, struct fwd_write *w, int err, uint64_t ino)
{
	unlink_write(f, w);
	if (!w->op)
		f->nbarriers--;
	w->cb(w->arg, err, ino);
	write_free(w);
}

/*
 * A barrier completes once no write taken before it waits. Not simply "once it is at the head":
 * a renumbered write goes to the back of the list, behind barriers taken after it.
 */
void fwd_settle(struct kvfs_fwd *f)
{
	struct fwd_write *w, *next;
	uint64_t oldest = UINT64_MAX;

	if (!f->nbarriers)
		return;
	for (w = f->head; w; w = w->next)
		if (w->op && w->order < oldest)
			oldest = w->order;
	for (w = f->head; w; w = next) {
		next = w->next;
		if (!w->op && w->order < oldest)
			finish(f, w, 0, 0);
	}
}

/* Gives w a new sequence number (its old one can no longer apply) and queues it last. */
static void renumber(struct kvfs_fwd *f, struct fwd_write *w)
{
	struct kvfs_op op;

	if (op_decode(&op, w->op, w->len) < 0)
		return; /* cannot happen: we encoded it */
	op.seq = w->seq = f->next_seq++;
	op_encode(&op, w->op);
	w->sent_to = 0;
	w->sent_epoch = 0;
	w->first_to = 0; /* the old seq can never apply: no leader has the new one */
	w->first_epoch = 0;
	unlink_write(f, w);
	append_write(f, w);
}

void fwd_applied(struct kvfs_fwd *f, const struct kvfs_session *last)
{
	struct fwd_write *w = f->head, *next;

	/* The store remembers last->seq (with its outcome) as our latest applied: that write is
	 * done, and any other of ours at or below it that still waits can never apply (the store
	 * would take it for a duplicate), so it goes again under a new seq. A duplicate of a seq
	 * below last->seq carries no outcome: if that write still waits, it never applied (its
	 * entry came after a later one of ours). */
	/* Renumbered writes go past last->seq, however it got there (a bogus leader may have
	 * committed a seq of ours far ahead): below it they would apply as duplicates forever. */
	if (last->seq < KVFS_SEQ_MAX)
		fwd_seq_at_least(f, last->seq + 1);
	for (; w; w = next) {
		next = w->next;
		if (!w->op || w->seq > last->seq)
			continue;
		if (w->seq == last->seq)
			finish(f, w, last->err, last->ino);
		else
			renumber(f, w);
	}
	fwd_settle(f);
}

void fwd_after_reset(struct kvfs_fwd *f, const struct kvfs_session *last)
{
	struct fwd_write *w, *next;
	unsigned unknown = 0;

	if (!last)
		return;
	fwd_seq_at_least(f, last->seq + 1);
	/* Entries the snapshot covered were never applied here one by one: the write of the last
	 * seq it remembers is done; one below it most likely applied before it, but its outcome
	 * is not known, and sending it again could apply it twice. */
	for (w = f->head; w; w = w->next)
		unknown += w->op && w->seq < last->seq;
	if (unknown)
		report(f, &(struct kvfs_fwd_report){.event = KVFS_FWD_RESET_UNKNOWN,
		                                    .count = unknown});
	for (w = f->head; w; w = next) {
		next = w->next;
		if (!w->op || w->seq > last->seq)
			continue;
		finish(f, w, w->seq == last->seq ? last->err : -EIO,
		       w->seq == last->seq ? last->ino : 0);
	}
	fwd_settle(f);
}

/*
 * Where our writes go now: this node (when it leads and its no-op has committed) or the leader
 * it follows, if connected. False if there is nowhere to send them yet (why_stuck says why).
 */
static bool target(struct kvfs_fwd *f, uint32_t *to, uint64_t *epoch)
{
	struct kvfs_fwd_view v = {0};
	uint32_t leader;

	f->io.view(f->io.arg, &v);
	leader = v.core_leader;
	*epoch = v.core_epoch;
	f->why_stuck = NULL; /* set again below if something is in the way now */
	if (v.elected && v.zk_epoch == *epoch && v.established) {
		*to = f->cfg.id;
		return true;
	}
	if (v.zk_leader && v.zk_epoch > *epoch) {
		leader = v.zk_leader;
		*epoch = v.zk_epoch;
	}
	if (!leader) {
		f->why_stuck = "no leader is known (is a majority of the cluster up?)";
		return false;
	}
	if (leader == f->cfg.id) {
		f->why_stuck = "this node was elected but has not yet gathered a majority";
		return false;
	}
	if (!f->io.connected(f->io.arg, leader)) {
		f->why_stuck = "the leader cannot be reached";
		return false;
	}
	*to = leader;
	return true;
}

void fwd_dispatch(struct kvfs_fwd *f)
{
	uint32_t to;
	uint64_t epoch;

	if (!f->head || !target(f, &to, &epoch))
		return;
	for (struct fwd_write *w = f->head; w; w = w->next) {
		int rv;

		if (!w->op || (w->sent_to == to && w->sent_epoch == epoch))
			continue;
		if (to == f->cfg.id)
			rv = f->io.propose(f->io.arg, w->op, w->len);
		else
			rv = f->io.forward(f->io.arg, to, w->seq, w->op, w->len);
		if (rv < 0) {
			f->why_stuck = "the leader did not take the write";
			break;
		}
		w->sent_to = to;
		w->sent_epoch = epoch;
		if (!w->first_to) {
			w->first_to = to;
			w->first_epoch = epoch;
		}
	}
}

/* Resends everything from seq on (peer 0), or everything sent to peer. */
static void unsend(struct kvfs_fwd *f, uint64_t seq, uint32_t peer)
{
	for (struct fwd_write *w = f->head; w; w = w->next)
		if (w->op && (peer ? w->sent_to == peer : w->seq >= seq)) {
			w->sent_to = 0;
			w->sent_epoch = 0;
		}
}

void fwd_peer_down(struct kvfs_fwd *f, uint32_t id)
{
	if (id)
		unsend(f, 0, id);
}

void fwd_expire(struct kvfs_fwd *f, uint64_t now)
{
	struct fwd_write *w, *next;
	unsigned failed = 0;

	for (w = f->head; w; w = w->next)
		failed += w->deadline <= now;
	if (!failed)
		return;
	/* The report first, so that its log line is there by the time the caller sees EIO. */
	report(f, &(struct kvfs_fwd_report){
	              .event = KVFS_FWD_EXPIRED,
	              .count = failed,
	              .why = f->why_stuck ? f->why_stuck : "no majority of replicas answered"});
	for (w = f->head; w; w = next) {
		next = w->next;
		if (w->deadline <= now)
			finish(f, w, -EIO, 0);
	}
	fwd_settle(f);
}

void fwd_fail_all(struct kvfs_fwd *f, int err)
{
	while (f->head)
		finish(f, f->head, f->head->op ? err : 0, 0);
}

static struct fwd_write *write_new(struct kvfs_fwd *f, uint64_t deadline, kvfs_fwd_done_fn cb,
                                   void *arg)
{
	struct fwd_write *w = calloc(1, sizeof(*w));

	if (!w)
		return NULL;
	w->cb = cb;
	w->arg = arg;
	w->order = f->next_order++;
	w->deadline = deadline ? deadline : f->io.now_ms(f->io.arg) + f->cfg.write_timeout_ms;
	return w;
}

int fwd_propose(struct kvfs_fwd *f, struct kvfs_op *op, uint64_t deadline, kvfs_fwd_done_fn cb,
                void *arg)
{
	struct fwd_write *w = write_new(f, deadline, cb, arg);

	if (!w)
		return -ENOMEM;
	w->len = (uint32_t)op_encoded_size(op);
	w->op = malloc(w->len);
	if (!w->op) {
		free(w);
		return -ENOMEM;
	}
	op->origin = f->cfg.id;
	op->seq = w->seq = f->next_seq++;
	op_encode(op, w->op);
	append_write(f, w);
	fwd_dispatch(f);
	return 0;
}

int fwd_sync(struct kvfs_fwd *f, kvfs_fwd_done_fn cb, void *arg)
{
	struct fwd_write *w = write_new(f, 0, cb, arg);

	if (!w)
		return -ENOMEM;
	f->nbarriers++;
	append_write(f, w); /* completed by fwd_settle(), never from here */
	return 0;
}

bool fwd_busy(const struct kvfs_fwd *f)
{
	return f->head != NULL;
}

const char *fwd_why_stuck(const struct kvfs_fwd *f)
{
	return f->why_stuck;
}

/* ---- the leader's side ---- */

/*
 * Proposes a follower's op (decoded from the len bytes at buf) under this leader's limits: a
 * max_value above ours (or 0) becomes ours, and an op without KVFS_OP_RULES2 gets it (every
 * peer speaks protocol 2, whose proposers set it; a new entry never applies under the old
 * rules), re-encoded; then the op must pass op_validate().
 * Returns 0, op_validate()'s errno (nothing proposed), or the core's error.
 */
static int propose_forwarded(struct kvfs_fwd *f, struct kvfs_op *op, const uint8_t *buf,
                             uint32_t len)
{
	const struct kvfs_op_limits *lim = &f->cfg.lim;
	uint8_t *copy;
	int rv;

	if (op->max_value != 0 && op->max_value <= lim->max_value && (op->flags & KVFS_OP_RULES2)) {
		rv = op_validate(op, lim);
		return rv < 0 ? rv : f->io.propose(f->io.arg, buf, len);
	}
	if (op->max_value == 0 || op->max_value > lim->max_value)
		op->max_value = lim->max_value;
	op->flags |= KVFS_OP_RULES2;
	rv = op_validate(op, lim);
	if (rv < 0)
		return rv;
	/* Same size: max_value and flags are fixed-width fields of the header. */
	copy = malloc(len);
	if (!copy)
		return -ENOMEM;
	op_encode(op, copy);
	rv = f->io.propose(f->io.arg, copy, len);
	free(copy);
	return rv;
}

/* Whether a forwarded seq of origin is one an honest origin could use now (see fwd.h). */
static bool seq_plausible(const struct kvfs_fwd *f, uint32_t origin, uint64_t seq)
{
	uint64_t last = 0, clock = 0, floor;

	if (seq == 0 || seq > KVFS_SEQ_MAX)
		return false;
	if (!f->io.last_seq)
		return true;
	if (!f->io.last_seq(f->io.arg, origin, &last))
		last = 0;
	if (f->io.clock_us)
		clock = f->io.clock_us(f->io.arg);
	floor = last > clock ? last : clock;
	return floor > KVFS_SEQ_MAX || seq - 1 < floor + KVFS_SEQ_AHEAD;
}

void fwd_on_forward(struct kvfs_fwd *f, uint32_t from, uint32_t origin, uint64_t seq,
                    const uint8_t *buf, uint32_t len)
{
	struct kvfs_op op;
	uint32_t to;
	uint64_t epoch;
	int rv;

	if (origin != from || op_decode(&op, buf, len) < 0 || op.origin != from || op.seq != seq ||
	    seq == 0) {
		report(f, &(struct kvfs_fwd_report){.event = KVFS_FWD_MALFORMED, .peer = from});
		return;
	}
	if (!target(f, &to, &epoch) || to != f->cfg.id) {
		f->io.refuse(f->io.arg, from, seq, -EROFS);
		return;
	}
	rv = seq_plausible(f, from, seq) ? propose_forwarded(f, &op, buf, len) : -EINVAL;
	if (rv == 0)
		return;
	if (rv == -EROFS || rv == -ENOMEM) {
		f->io.refuse(f->io.arg, from, seq, rv == -EROFS ? -EROFS : -EAGAIN);
		return;
	}
	report(f, &(struct kvfs_fwd_report){
	              .event = KVFS_FWD_INVALID, .peer = from, .err = rv, .op_type = op.type});
	f->io.refuse(f->io.arg, from, seq, rv);
}

void fwd_on_reply(struct kvfs_fwd *f, uint32_t from, uint32_t origin, uint64_t seq, int err)
{
	struct fwd_write *w;

	if (origin != f->cfg.id || err == 0)
		return;
	if (err == -EROFS || err == -EAGAIN) {
		f->why_stuck = "the leader refused the write (it is not ready to lead)";
		unsend(f, seq, 0); /* the next dispatch sends them again, in order */
		return;
	}
	for (w = f->head; w && !(w->op && w->seq == seq); w = w->next)
		;
	if (!w || w->sent_to != from)
		return; /* done already, or sent elsewhere since: that answer counts */
	if (w->first_to == from && w->first_epoch == w->sent_epoch) {
		finish(f, w, err, 0);
	} else {
		report(f, &(struct kvfs_fwd_report){
		              .event = KVFS_FWD_REFUSED_LATE, .peer = from, .err = err});
		finish(f, w, -EIO, 0);
	}
	fwd_settle(f);
}
