/*
 * What ends cluster-wide locks without an unlock call (issue 13; the requests are in
 * fuse_lock.c): close(2) and process death, through FUSE's flush (any close: the closing
 * process's record locks) and release (the last close of an open file: its flock lock, and the
 * record and OFD locks taken through it, which also covers read-only opens that skip flush);
 * an earlier incarnation of this node (RELEASE_NODE at start); and, on the leader, a member whose
 * ZooKeeper znode is gone (crashed, cut off from ZooKeeper past its session, removed): the leader
 * proposes RELEASE_NODE for it. Each of these is a log entry like any unlock, so every replica
 * drops the same locks. A release that fails (no leader or majority in time) is kept and
 * proposed again every second (fuse_lock_retry) until it commits. Loop thread only.
 */
#include "fs.h"
#include "fuse_lock_internal.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "kvfs/logging.h"
#include "kvfs/node.h"
#include "kvfs/op.h"
#include "kvfs/store.h"

static void on_old_released(void *arg, int err, uint64_t ino)
{
	struct kvfs_fs *fs = arg;

	(void)ino;
	if (!fs->locks)
		return;
	fs->locks->releasing_old = false;
	if (err == 0)
		fs->locks->old_released = true;
	else if (err != -ESHUTDOWN)
		log_warn("releasing the locks of this node's earlier incarnations failed (%s); "
		         "trying again every second until it commits",
		         strerror(-err));
}

/* RELEASE_NODE of this node's earlier incarnations: at start, then again before a lock request
 * and every second (fuse_lock_retry) until it has committed once. */
void fuse_lock_close_old(struct kvfs_fs *fs)
{
	struct fuse_locks *L = fs->locks;
	struct kvfs_op op = {
	    .type = KVFS_OP_RELEASE_NODE, .lk_node = fs->node_id, .lk_inc = L->inc};

	if (L->old_released || L->releasing_old || !fs->node)
		return;
	if (node_propose(fs->node, &op, 0, on_old_released, fs) == 0)
		L->releasing_old = true;
}

static struct lock_fh *find_fh(struct fuse_locks *L, const struct lock_wait *w)
{
	for (struct lock_fh *f = L->fhs; f; f = f->next) {
		if (f->fh == w->fh && f->ino == w->op.ino && f->owner == w->op.lk_owner &&
		    f->kind == w->op.lk_kind)
			return f;
	}
	return NULL;
}

void fuse_lock_close_track(struct fuse_locks *L, const struct lock_wait *w)
{
	struct lock_fh *f = find_fh(L, w);

	if (!f) {
		f = malloc(sizeof(*f));
		if (!f)
			return; /* a granted lock still goes at flush and release (holds()) */
		*f = (struct lock_fh){w->fh, w->op.ino, w->op.lk_owner, w->op.lk_kind, 0, L->fhs};
		L->fhs = f;
	}
	f->in_doubt++;
}

void fuse_lock_close_outcome(struct fuse_locks *L, const struct lock_wait *w, int err)
{
	struct lock_fh *f = find_fh(L, w);

	/* Granted: holds() sees it. Refused: nothing to release. Unknown: it stays in doubt
	 * until the open file is released. Gone: released already (its UNLOCK_OWNER proposed). */
	if (f && f->in_doubt && !lock_outcome_unknown(err))
		f->in_doubt--;
}

/* Whether a LOCK for a record lock of owner on ino may still commit (in flight or unknown). */
static bool in_doubt(const struct fuse_locks *L, uint64_t ino, uint64_t owner)
{
	for (const struct lock_fh *f = L->fhs; f; f = f->next) {
		if (f->ino == ino && f->owner == owner && f->kind == KVFS_LOCK_POSIX && f->in_doubt)
			return true;
	}
	return false;
}

/* Whether release of fh proposes the UNLOCK_OWNER of a flock lock of owner on ino anyway. */
static bool tracked(const struct fuse_locks *L, uint64_t fh, uint64_t ino, uint64_t owner,
                    uint8_t kind)
{
	for (const struct lock_fh *f = L->fhs; f; f = f->next) {
		if (f->fh == fh && f->ino == ino && f->owner == owner && f->kind == kind)
			return true;
	}
	return false;
}

/* Whether this incarnation holds a lock of kind for owner on ino (this node's table). */
static bool holds(const struct kvfs_fs *fs, uint64_t ino, uint64_t owner, uint8_t kind)
{
	for (size_t i = 0; i < store_lock_count(fs->store); i++) {
		const struct kvfs_lock *l = store_lock_at(fs->store, i);

		if (l->ino == ino && l->kind == kind && l->owner == owner &&
		    l->node == fs->node_id && l->inc == fs->locks->inc)
			return true;
	}
	return false;
}

/* See fs.h. */
bool fuse_lock_held_here(const struct kvfs_fs *fs, uint64_t ino)
{
	if (!fs->locks)
		return false;
	for (size_t i = 0; i < store_lock_count(fs->store); i++) {
		const struct kvfs_lock *l = store_lock_at(fs->store, i);

		if (l->ino == ino && l->kind == KVFS_LOCK_POSIX && l->node == fs->node_id &&
		    l->inc == fs->locks->inc)
			return true;
	}
	return false;
}

/* A flush or release waiting for the UNLOCK_OWNERs it proposed, then handed on. */
struct close_wait {
	struct kvfs_fs *fs;
	fuse_req_t req;
	fuse_ino_t ino;
	struct fuse_file_info fi;
	bool release;
	unsigned pending;
};

/* An UNLOCK_OWNER of a close in flight. */
struct close_unlock {
	struct close_wait *c;
	struct kvfs_op op;
};

bool fuse_lock_close_pending(const struct fuse_locks *L, const struct kvfs_op *want)
{
	for (const struct lock_retry *r = L->retries; r; r = r->next) {
		if (r->op.type == KVFS_OP_UNLOCK_OWNER && r->op.ino == want->ino &&
		    r->op.lk_owner == want->lk_owner && r->op.lk_kind == want->lk_kind)
			return true;
	}
	return false;
}

/* Keeps op (a release that failed) for fuse_lock_retry. */
static void pend_release(struct kvfs_fs *fs, const struct kvfs_op *op, int err)
{
	struct fuse_locks *L = fs->locks;
	struct lock_retry *r;

	if (fuse_lock_close_pending(L, op))
		return;
	r = calloc(1, sizeof(*r));
	if (!r) {
		log_warn("releasing the locks of a closed file failed (%s) and cannot be retried "
		         "(out of memory): they stay until this node restarts or its ZooKeeper "
		         "session ends",
		         strerror(-err));
		return;
	}
	log_warn("releasing the locks of a closed file failed (%s); trying again every second "
	         "until it commits (new locks of that owner on that file fail with ENOLCK "
	         "meanwhile)",
	         strerror(-err));
	*r = (struct lock_retry){.fs = fs, .op = *op, .next = L->retries};
	L->retries = r;
}

static void close_step(struct close_wait *c);

static void on_close_unlocked(void *arg, int err, uint64_t ino)
{
	struct close_unlock *u = arg;
	struct close_wait *c = u->c;

	(void)ino;
	/* Unknown outcome (no leader, no majority by the deadline): keep it. An apply error
	 * (the file is gone, and its locks with it) needs no retry. */
	if (lock_outcome_unknown(err) && err != -ESHUTDOWN && c->fs->locks)
		pend_release(c->fs, &u->op, err);
	free(u);
	close_step(c);
}

/* One proposal of c has completed (or the initial count of one): hand req on after the last. */
static void close_step(struct close_wait *c)
{
	if (--c->pending)
		return;
	if (c->fs->locks->stopping) {
		/* The daemon stopped taking requests and frees every handle (finish_stop): the
		 * file layer must not see this one again. */
		fuse_reply_err(c->req, 0);
		free(c);
		return;
	}
	if (c->release)
		fuse_file_release(c->req, c->ino, &c->fi);
	else
		fuse_file_flush(c->req, c->ino, &c->fi);
	free(c);
}

static void propose_unlock_owner(struct kvfs_fs *fs, struct close_wait *c, uint64_t ino,
                                 uint64_t owner, uint8_t kind)
{
	struct kvfs_op op = {.type = KVFS_OP_UNLOCK_OWNER,
	                     .ino = ino,
	                     .lk_node = fs->node_id,
	                     .lk_inc = fs->locks->inc,
	                     .lk_owner = owner,
	                     .lk_kind = kind};
	struct close_unlock *u = malloc(sizeof(*u));
	int rv = -ENOMEM;

	if (u) {
		*u = (struct close_unlock){c, op};
		rv = node_propose(fs->node, &op, 0, on_close_unlocked, u);
	}
	if (rv == 0) {
		c->pending++;
		return;
	}
	free(u);
	if (rv != -ESHUTDOWN)
		pend_release(fs, &op, rv);
}

/*
 * Proposes the UNLOCK_OWNERs a flush or release needs and hands req on to fn once they have
 * applied, so that close(2) returns with the locks gone cluster-wide; at once if none is held.
 */
static void unlock_then(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi, bool release)
{
	struct kvfs_fs *fs = fuse_req_userdata(req);
	struct fuse_locks *L = fs->locks;
	struct close_wait *c = NULL;

	if (L && ino >= KVFS_INO_BASE)
		c = calloc(1, sizeof(*c));
	if (c) {
		*c = (struct close_wait){fs, req, ino, *fi, release, 1};
		if (!release && (holds(fs, ino, fi->lock_owner, KVFS_LOCK_POSIX) ||
		                 in_doubt(L, ino, fi->lock_owner)))
			propose_unlock_owner(fs, c, ino, fi->lock_owner, KVFS_LOCK_POSIX);
		if (release && fi->flock_release &&
		    holds(fs, ino, fi->lock_owner, KVFS_LOCK_FLOCK) &&
		    !tracked(L, fi->fh, ino, fi->lock_owner, KVFS_LOCK_FLOCK))
			propose_unlock_owner(fs, c, ino, fi->lock_owner, KVFS_LOCK_FLOCK);
		/* Every LOCK proposed through this open file, whatever holds() says: one still in
		 * flight or of unknown outcome may commit later (an UNLOCK_OWNER of nothing is
		 * harmless). */
		for (struct lock_fh **p = &L->fhs; release && *p;) {
			struct lock_fh *f = *p;

			if (f->fh != fi->fh) {
				p = &f->next;
				continue;
			}
			propose_unlock_owner(fs, c, f->ino, f->owner, f->kind);
			*p = f->next;
			free(f);
		}
		close_step(c); /* the initial count of one */
		return;
	}
	if (release)
		fuse_file_release(req, ino, fi);
	else
		fuse_file_flush(req, ino, fi);
}

/* The .flush operation: close(2) of a descriptor drops the closing process's record locks. */
void fuse_lock_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	unlock_then(req, ino, fi, false);
}

/* The .release operation: the last close of an open file drops its flock lock and the record
 * and OFD locks taken through it. */
void fuse_lock_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	unlock_then(req, ino, fi, true);
}

/* A RELEASE_NODE the leader proposed. */
struct node_release {
	struct kvfs_fs *fs;
	uint32_t node;
};

static void on_node_released(void *arg, int err, uint64_t ino);

/* The leader: RELEASE_NODE for every node that holds locks granted before the last listing of
 * /members and is not in it. */
void fuse_lock_close_dead(struct kvfs_fs *fs)
{
	struct fuse_locks *L = fs->locks;

	if (!L || !L->live_known || L->stopping || !fs->node)
		return;
	for (size_t i = 0; i < store_lock_count(fs->store); i++) {
		const struct kvfs_lock *l = store_lock_at(fs->store, i);
		struct kvfs_op op = {.type = KVFS_OP_RELEASE_NODE, .lk_node = l->node};
		struct node_release *r;

		/* A lock granted after the listing may be a newcomer's: the next listing says. */
		if (lock_bit(L->live, l->node) || lock_bit(L->releasing, l->node) ||
		    l->token > L->live_index)
			continue;
		/* Only the incarnations seen before the listing: a restarted node's next one,
		 * whose locks came later, keeps them. */
		for (size_t k = 0; k < store_lock_count(fs->store); k++) {
			const struct kvfs_lock *o = store_lock_at(fs->store, k);

			if (o->node == l->node && o->token <= L->live_index && o->inc >= op.lk_inc)
				op.lk_inc = o->inc == UINT64_MAX ? UINT64_MAX : o->inc + 1;
		}
		log_info("node %" PRIu32 " holds locks and its ZooKeeper session is gone: "
		         "releasing them",
		         l->node);
		r = malloc(sizeof(*r));
		if (!r)
			return;
		*r = (struct node_release){fs, l->node};
		if (node_propose(fs->node, &op, 0, on_node_released, r) < 0) {
			free(r);
			return;
		}
		lock_set_bit(L->releasing, l->node, true);
	}
}

static void on_node_released(void *arg, int err, uint64_t ino)
{
	struct node_release *r = arg;
	struct kvfs_fs *fs = r->fs;

	(void)ino;
	lock_set_bit(fs->locks->releasing, r->node, false);
	if (err < 0 && err != -ESHUTDOWN)
		log_warn("releasing the locks of node %" PRIu32 " failed: %s; trying again",
		         r->node, strerror(-err));
	free(r);
	if (err != -ESHUTDOWN)
		fuse_lock_close_dead(fs);
}

/* See fs.h. */
void fuse_lock_members(struct kvfs_fs *fs, bool known, const uint8_t *live, size_t len,
                       uint64_t seq)
{
	struct fuse_locks *L = fs->locks;

	if (!L)
		return;
	if (!known) {
		L->live_known = false;
		return;
	}
	if (L->live_known && seq == L->live_seq)
		return; /* the listing we acted on already: its index stays where it was */
	L->live_known = true;
	L->live_seq = seq;
	memset(L->live, 0, sizeof(L->live));
	memcpy(L->live, live, len < sizeof(L->live) ? len : sizeof(L->live));
	/* Locks granted from here on may be newcomers' that this listing predates. */
	L->live_index = store_applied_index(fs->store);
	fuse_lock_close_dead(fs);
}

static void on_retried(void *arg, int err, uint64_t ino)
{
	struct lock_retry *r = arg;
	struct fuse_locks *L = r->fs->locks;

	(void)ino;
	r->in_flight = false;
	if (!L || lock_outcome_unknown(err))
		return; /* the next second tries again (-ESHUTDOWN: fuse_lock_free frees it) */
	for (struct lock_retry **p = &L->retries; *p; p = &(*p)->next) {
		if (*p == r) {
			*p = r->next;
			break;
		}
	}
	log_info("a lock release that had failed has committed");
	free(r);
}

/* See fs.h. */
void fuse_lock_retry(struct kvfs_fs *fs)
{
	struct fuse_locks *L = fs->locks;

	if (!L || L->stopping || !fs->node)
		return;
	fuse_lock_close_old(fs);
	for (struct lock_retry *r = L->retries; r; r = r->next) {
		struct kvfs_op op = r->op;

		if (!r->in_flight && node_propose(fs->node, &op, 0, on_retried, r) == 0)
			r->in_flight = true;
	}
}
