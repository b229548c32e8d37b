/*
 * Cluster-wide locks through FUSE (issue 13): flock(2) and fcntl record locks (F_SETLK,
 * F_SETLKW, F_GETLK, and OFD locks, which the kernel passes as record locks owned by the open
 * file) become LOCK operations that the leader orders in the log; every replica applies them to
 * the same lock table (replica/store_lock.c), and a request is answered from the outcome its
 * LOCK had when this node applied it. Nothing is decided locally: a lock is held once the log
 * says so, so two nodes can never both hold a conflicting lock.
 *
 * Waiting (F_SETLKW, flock without LOCK_NB) never polls: a refused request is parked on this
 * node, and every unlock, UNLOCK_OWNER or RELEASE_NODE that this node applies (every node applies
 * every operation) proposes the parked requests on its inode again. A signal interrupts the wait
 * (FUSE_INTERRUPT: EINTR at once when parked; when its LOCK is in flight, the outcome answers, a
 * grant as success and a refusal as EINTR); one that would close a cycle of waiters on this node
 * fails with EDEADLK. Locks go when their owner unlocks, and without an unlock at close, process
 * death, a restart or the loss of the holding node's ZooKeeper session (fuse_lock_close.c).
 *
 * The owner of a lock is (node id, incarnation, FUSE lock owner); the incarnation is the
 * process's start time in microseconds, so a restart never inherits locks. Everything here runs
 * on the loop thread.
 */
#include "fs.h"
#include "fuse_lock_internal.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>

#include "kvfs/logging.h"
#include "kvfs/node.h"
#include "kvfs/op.h"
#include "kvfs/store.h"

/* See fs.h. */
int fuse_lock_start(struct kvfs_fs *fs)
{
	struct fuse_locks *L = calloc(1, sizeof(*L));
	struct timespec ts;

	if (!L)
		return -ENOMEM;
	clock_gettime(CLOCK_REALTIME, &ts);
	L->inc = (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
	/* Above every earlier incarnation's, even if the clock went back: the store recovered
	 * what this node applied before it stopped, its own grants included. */
	for (size_t i = 0; i < store_lock_count(fs->store); i++) {
		const struct kvfs_lock *l = store_lock_at(fs->store, i);

		if (l->node == fs->node_id && l->inc >= L->inc)
			L->inc = l->inc + 1;
	}
	fs->locks = L;
	fuse_lock_close_old(fs);
	return 0;
}

/* See fs.h. */
void fuse_lock_set_session(struct kvfs_fs *fs, bool (*connected)(void *arg), void *arg)
{
	if (!fs->locks)
		return;
	fs->locks->session_connected = connected;
	fs->locks->session_arg = arg;
}

/*
 * Whether this node may ask for a new lock: its own ZooKeeper session is connected. A node cut
 * off from ZooKeeper but not from its peers could still have LOCKs committed, and the leader
 * releases them (RELEASE_NODE) once the session expires: a lock taken then would be revoked
 * unseen. Unlocks are always proposed.
 */
static bool may_lock(const struct fuse_locks *L)
{
	return !L->session_connected || L->session_connected(L->session_arg);
}

static void unlink_wait(struct fuse_locks *L, struct lock_wait *w)
{
	if (w->prev)
		w->prev->next = w->next;
	else
		L->waits = w->next;
	if (w->next)
		w->next->prev = w->prev;
}

/* The errno a lock request answers for its LOCK's outcome: the cluster could not decide it in
 * time (no leader, no majority: this node may be cut off) is ENOLCK, never a success. */
static int answer_err(int err)
{
	if (lock_outcome_unknown(err))
		return ENOLCK;
	return -err;
}

static void propose_wait(struct lock_wait *w);

/* The lock of the table that keeps want (a record lock request of this node) waiting. */
static bool blocker_of(const struct kvfs_fs *fs, const struct kvfs_op *want, struct kvfs_lock *c)
{
	struct kvfs_lock l = {
	    .ino = want->ino,
	    .node = want->lk_node,
	    .inc = want->lk_inc,
	    .owner = want->lk_owner,
	    .kind = want->lk_kind,
	    .type = want->lk_type,
	    .start = want->lk_start,
	    .end = want->lk_end,
	};

	return store_lock_conflict(fs->store, &l, c);
}

/*
 * Whether parking w (a record lock request refused with EAGAIN) would close a cycle of waiters
 * on this node: the holder of what w waits for waits itself, through at most DEADLOCK_STEPS
 * owners, for a lock of w's owner. Linux answers F_SETLKW with EDEADLK then; kvfs does too for
 * waiters on one node. Waiters on other nodes are not known here (README: not detected).
 */
#define DEADLOCK_STEPS 10

static bool would_deadlock(const struct kvfs_fs *fs, const struct lock_wait *w)
{
	struct kvfs_lock c;
	const struct kvfs_op *want = &w->op;

	if (w->op.lk_kind != KVFS_LOCK_POSIX)
		return false; /* as Linux: flock waits are not checked */
	for (int step = 0; step < DEADLOCK_STEPS && blocker_of(fs, want, &c); step++) {
		const struct lock_wait *next = NULL;

		if (c.node != w->op.lk_node || c.inc != w->op.lk_inc)
			return false; /* held elsewhere: its waits are not known here */
		if (c.owner == w->op.lk_owner)
			return true;
		for (const struct lock_wait *o = fs->locks->waits; o && !next; o = o->next) {
			if (o != w && !o->answered && o->sleep && o->op.lk_owner == c.owner &&
			    o->op.lk_kind == KVFS_LOCK_POSIX)
				next = o;
		}
		if (!next)
			return false;
		want = &next->op;
	}
	return false;
}

static void on_lock_done(void *arg, int err, uint64_t ino)
{
	struct lock_wait *w = arg;
	struct kvfs_fs *fs = w->fs;
	struct fuse_locks *L = fs->locks;

	(void)ino;
	w->in_flight = false;
	if (L && w->op.lk_type != KVFS_LOCK_UN)
		fuse_lock_close_outcome(L, w, err);
	if (w->answered || !L) {
		/* Answered at shutdown: a late grant goes with this incarnation (RELEASE_NODE at
		 * the next start, or the session). Never an unlock here: the owner may hold the
		 * lock by another request by now. */
		if (L)
			unlink_wait(L, w);
		free(w);
		return;
	}
	if (err == -EAGAIN && w->interrupted) {
		/* A signal came while the LOCK was in flight: not parked again. A grant is
		 * answered as one (the process holds it, which it can undo), never undone
		 * behind its back: a retried request of the same owner would have succeeded as
		 * a no-op, and an unlock proposed here would then drop the lock it holds. */
		err = -EINTR;
	} else if (err == -EAGAIN && w->sleep && !L->stopping) {
		if (L->gen != w->gen) {
			propose_wait(w); /* an unlock applied meanwhile: try again now */
			return;
		}
		if (!would_deadlock(fs, w))
			return; /* parked: fuse_lock_on_apply wakes it */
		err = -EDEADLK;
	}
	fuse_reply_err(w->req, answer_err(err));
	unlink_wait(L, w);
	free(w);
}

static void propose_wait(struct lock_wait *w)
{
	struct kvfs_fs *fs = w->fs;
	struct kvfs_op op = w->op;
	int rv;

	w->gen = fs->locks->gen;
	if (op.lk_type != KVFS_LOCK_UN &&
	    (!may_lock(fs->locks) || fuse_lock_close_pending(fs->locks, &op)))
		rv = -ENOLCK; /* a parked request woken then too */
	else
		rv = node_propose(fs->node, &op, 0, on_lock_done, w);
	if (rv == 0) {
		w->in_flight = true;
		/* Recorded now, not when granted: a LOCK whose outcome is unknown, or still in
		 * flight at close, may commit later; the close must release it anyway. */
		if (op.lk_type != KVFS_LOCK_UN)
			fuse_lock_close_track(fs->locks, w);
		return;
	}
	if (!w->answered)
		fuse_reply_err(w->req, answer_err(rv));
	unlink_wait(fs->locks, w);
	free(w);
}

/* FUSE_INTERRUPT for a waiting request. A parked one answers EINTR now. One whose LOCK is in
 * flight (or that is still being set up) is only flagged: its outcome answers it, a grant as 0
 * and a refusal as EINTR (on_lock_done), so that what the caller is told is what the log says. */
static void on_interrupt(fuse_req_t req, void *data)
{
	struct lock_wait *w = data;

	if (w->answered)
		return;
	if (w->in_flight || w->setup) {
		w->interrupted = true;
		return;
	}
	w->answered = true;
	fuse_reply_err(req, EINTR);
	unlink_wait(w->fs->locks, w);
	free(w);
}

/* Proposes a lock request for req (answered when its LOCK applies, or parked). */
static void lock_request(fuse_req_t req, struct kvfs_fs *fs, fuse_ino_t ino,
                         struct fuse_file_info *fi, const struct kvfs_op *op, bool sleep)
{
	struct fuse_locks *L = fs->locks;
	struct lock_wait *w;

	if (!L || L->stopping || fuse_status_is_virtual(ino) ||
	    (ino < KVFS_INO_BASE && ino != KVFS_ROOT_INO)) {
		fuse_reply_err(req, ENOLCK);
		return;
	}
	fuse_lock_close_old(fs);
	w = calloc(1, sizeof(*w));
	if (!w) {
		fuse_reply_err(req, ENOLCK);
		return;
	}
	w->req = req;
	w->fs = fs;
	w->op = *op;
	w->op.ino = ino;
	w->op.lk_node = fs->node_id;
	w->op.lk_inc = L->inc;
	w->op.lk_owner = fi->lock_owner;
	w->fh = fi->fh;
	w->sleep = sleep && op->lk_type != KVFS_LOCK_UN;
	w->next = L->waits;
	if (L->waits)
		L->waits->prev = w;
	L->waits = w;
	if (w->sleep) {
		/* Called at once if the interrupt came first. */
		w->setup = true;
		fuse_req_interrupt_func(req, on_interrupt, w);
		w->setup = false;
		if (w->interrupted) {
			/* Replied here, not from inside fuse_req_interrupt_func. */
			fuse_reply_err(req, EINTR);
			unlink_wait(L, w);
			free(w);
			return;
		}
	}
	propose_wait(w);
}

/* The .setlk operation: F_SETLK (sleep 0), F_SETLKW (sleep 1), and OFD locks alike. */
void fuse_lock_setlk(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi, struct flock *lock,
                     int sleep)
{
	struct kvfs_op op = {.type = KVFS_OP_LOCK, .lk_kind = KVFS_LOCK_POSIX};

	switch (lock->l_type) {
	case F_RDLCK:
		op.lk_type = KVFS_LOCK_RD;
		break;
	case F_WRLCK:
		op.lk_type = KVFS_LOCK_WR;
		break;
	case F_UNLCK:
		op.lk_type = KVFS_LOCK_UN;
		break;
	default:
		fuse_reply_err(req, EINVAL);
		return;
	}
	/* libfuse gives l_whence SEEK_SET, and l_len 0 for "to the end" (the kernel's OFFSET_MAX).
	 */
	if (lock->l_start < 0 || lock->l_len < 0) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	op.lk_start = (uint64_t)lock->l_start;
	op.lk_end = lock->l_len == 0 ? KVFS_LOCK_END_MAX
	                             : (uint64_t)lock->l_start + (uint64_t)lock->l_len - 1;
	if (op.lk_end > KVFS_LOCK_END_MAX || op.lk_end < op.lk_start) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	op.lk_pid = lock->l_pid > 0 ? (uint32_t)lock->l_pid : 0;
	lock_request(req, fuse_req_userdata(req), ino, fi, &op, sleep != 0);
}

/* The .flock operation: LOCK_SH, LOCK_EX or LOCK_UN, with LOCK_NB or waiting. */
void fuse_lock_flock(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi, int op_)
{
	struct kvfs_op op = {
	    .type = KVFS_OP_LOCK, .lk_kind = KVFS_LOCK_FLOCK, .lk_end = KVFS_LOCK_END_MAX};
	const struct fuse_ctx *ctx = fuse_req_ctx(req);

	switch (op_ & ~LOCK_NB) {
	case LOCK_SH:
		op.lk_type = KVFS_LOCK_RD;
		break;
	case LOCK_EX:
		op.lk_type = KVFS_LOCK_WR;
		break;
	case LOCK_UN:
		op.lk_type = KVFS_LOCK_UN;
		break;
	default:
		fuse_reply_err(req, EINVAL);
		return;
	}
	op.lk_pid = ctx && ctx->pid > 0 ? (uint32_t)ctx->pid : 0;
	lock_request(req, fuse_req_userdata(req), ino, fi, &op, !(op_ & LOCK_NB));
}

/* The .getlk operation, answered from this node's table (what it has applied). A holder on
 * another node shows l_pid 0. */
void fuse_lock_getlk(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi, struct flock *lock)
{
	struct kvfs_fs *fs = fuse_req_userdata(req);
	struct kvfs_lock want = {.ino = ino,
	                         .node = fs->node_id,
	                         .owner = fi->lock_owner,
	                         .kind = KVFS_LOCK_POSIX},
	                 c;

	if (!fs->locks || (lock->l_type != F_RDLCK && lock->l_type != F_WRLCK) ||
	    lock->l_start < 0 || lock->l_len < 0) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	want.inc = fs->locks->inc;
	want.type = lock->l_type == F_WRLCK ? KVFS_LOCK_WR : KVFS_LOCK_RD;
	want.start = (uint64_t)lock->l_start;
	want.end = lock->l_len == 0 ? KVFS_LOCK_END_MAX
	                            : (uint64_t)lock->l_start + (uint64_t)lock->l_len - 1;
	if (!store_lock_conflict(fs->store, &want, &c)) {
		lock->l_type = F_UNLCK;
		fuse_reply_lock(req, lock);
		return;
	}
	lock->l_type = c.type == KVFS_LOCK_WR ? F_WRLCK : F_RDLCK;
	lock->l_whence = SEEK_SET;
	lock->l_start = (off_t)c.start;
	lock->l_len = c.end == KVFS_LOCK_END_MAX ? 0 : (off_t)(c.end - c.start + 1);
	lock->l_pid = c.node == fs->node_id && c.inc == fs->locks->inc ? (pid_t)c.pid : 0;
	fuse_reply_lock(req, lock);
}

/* Proposes again the parked requests on ino (every parked one when ino is 0). */
static void wake(struct kvfs_fs *fs, uint64_t ino)
{
	struct fuse_locks *L = fs->locks;
	struct lock_wait *w, *next;

	L->gen++;
	for (w = L->waits; w; w = next) {
		next = w->next;
		if (!w->in_flight && !w->answered && (ino == 0 || w->op.ino == ino))
			propose_wait(w);
	}
}

/* See fs.h. */
void fuse_lock_on_apply(struct kvfs_fs *fs, const struct kvfs_op *op,
                        const struct kvfs_apply_result *res)
{
	if (!fs->locks || res->err < 0 || res->duplicate)
		return;
	switch (op->type) {
	case KVFS_OP_LOCK:
		/* An unlock or a downgrade may let parked requests in. */
		if (op->lk_type != KVFS_LOCK_WR)
			wake(fs, op->ino);
		fuse_lock_close_dead(fs);
		break;
	case KVFS_OP_UNLOCK_OWNER:
		wake(fs, op->ino);
		break;
	case KVFS_OP_RELEASE_NODE:
		wake(fs, 0);
		break;
	case KVFS_OP_UNLINK:
	case KVFS_OP_RENAME:
		/* A file's last name went, and its locks with it. */
		if (res->nlink_after == 0 || res->replaced_ino)
			wake(fs, 0);
		break;
	default:
		break;
	}
}

/* See fs.h. */
void fuse_lock_on_reset(struct kvfs_fs *fs)
{
	if (fs->locks)
		wake(fs, 0);
}

/* See fs.h. */
int fuse_lock_token_text(struct kvfs_fs *fs, fuse_ino_t ino, char *buf, size_t len)
{
	uint64_t token;
	int n;

	if (!store_lock_token(fs->store, ino, &token))
		return -ENODATA;
	n = snprintf(buf, len, "%" PRIu64, token);
	return n < 0 || (size_t)n >= len ? -ERANGE : n;
}

/* See fs.h. */
void fuse_lock_stop(struct kvfs_fs *fs)
{
	struct fuse_locks *L = fs->locks;
	struct lock_wait *w, *next;

	if (!L)
		return;
	L->stopping = true;
	for (w = L->waits; w; w = next) {
		next = w->next;
		if (!w->answered)
			fuse_reply_err(w->req, ENOLCK);
		w->answered = true;
		if (!w->in_flight) {
			unlink_wait(L, w);
			free(w);
		}
	}
}

/* See fs.h. */
void fuse_lock_free(struct kvfs_fs *fs)
{
	struct fuse_locks *L = fs->locks;

	if (!L)
		return;
	fuse_lock_stop(fs);
	while (L->waits) {
		struct lock_wait *w = L->waits;

		L->waits = w->next;
		free(w);
	}
	while (L->fhs) {
		struct lock_fh *f = L->fhs;

		L->fhs = f->next;
		free(f);
	}
	while (L->retries) {
		struct lock_retry *r = L->retries;

		L->retries = r->next;
		free(r);
	}
	free(L);
	fs->locks = NULL;
}
