/*
 * The lock table (issue 13): flock(2) and POSIX record locks that exclude across the cluster,
 * kept in the store and changed only by committed operations (LOCK, UNLOCK_OWNER,
 * RELEASE_NODE), so that every replica holds the same table and decides every request the same
 * way. A lock belongs to an owner (node id, node incarnation, FUSE lock owner). flock locks cover
 * the whole file and are shared or exclusive; record locks cover byte ranges, one owner's never
 * overlap, and a new one splits, trims and merges the owner's others as fcntl(2) says. A LOCK
 * that conflicts with another owner's lock fails with EAGAIN and changes nothing (a conversion
 * is atomic: the lock held stays). The fencing token of a granted lock is the log index that
 * granted it. An inode's locks go when it loses its last name (store_lock_drop_ino).
 *
 * The table is one flat array: a node holds few locks, and every lookup is a scan. Pure, like
 * the rest of the store.
 */
#include "kvfs/store.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "kvfs/config.h"
#include "kvfs/op.h"
#include "store_internal.h"

static bool same_owner(const struct kvfs_lock *l, uint32_t node, uint64_t inc, uint64_t owner)
{
	return l->node == node && l->inc == inc && l->owner == owner;
}

static bool overlaps(const struct kvfs_lock *l, uint64_t start, uint64_t end)
{
	return l->start <= end && start <= l->end;
}

/* Room for `more` locks beyond those held. -ENOMEM leaves the table as it was. */
static int reserve(struct kvfs_store *s, size_t more)
{
	struct kvfs_lock *t;
	size_t cap;

	if (s->nlocks + more <= s->locks_cap)
		return 0;
	cap = s->locks_cap ? s->locks_cap * 2 : 8;
	while (cap < s->nlocks + more)
		cap *= 2;
	t = realloc(s->locks, cap * sizeof(*t));
	if (!t)
		return -ENOMEM;
	s->locks = t;
	s->locks_cap = cap;
	return 0;
}

/* Removes lock i, keeping the others in order (the table's order is part of the state). */
static void remove_at(struct kvfs_store *s, size_t i)
{
	memmove(&s->locks[i], &s->locks[i + 1], (s->nlocks - i - 1) * sizeof(*s->locks));
	s->nlocks--;
}

/* See store.h. */
bool store_lock_conflict(const struct kvfs_store *s, const struct kvfs_lock *want,
                         struct kvfs_lock *conflict)
{
	for (size_t i = 0; i < s->nlocks; i++) {
		const struct kvfs_lock *l = &s->locks[i];

		if (l->ino != want->ino || l->kind != want->kind ||
		    same_owner(l, want->node, want->inc, want->owner))
			continue;
		if (want->kind == KVFS_LOCK_POSIX && !overlaps(l, want->start, want->end))
			continue;
		if (l->type == KVFS_LOCK_WR || want->type == KVFS_LOCK_WR) {
			if (conflict)
				*conflict = *l;
			return true;
		}
	}
	return false;
}

/* A flock LOCK: take, convert (atomically: on EAGAIN the lock held stays) or drop. */
static int lock_flock(struct kvfs_store *s, const struct kvfs_lock *want)
{
	size_t i;

	for (i = 0; i < s->nlocks; i++) {
		const struct kvfs_lock *l = &s->locks[i];

		if (l->ino == want->ino && l->kind == KVFS_LOCK_FLOCK &&
		    same_owner(l, want->node, want->inc, want->owner))
			break;
	}
	if (want->type == KVFS_LOCK_UN) {
		if (i < s->nlocks)
			remove_at(s, i);
		return 0;
	}
	if (store_lock_conflict(s, want, NULL))
		return -EAGAIN;
	if (i < s->nlocks) {
		/* The same type again keeps its token: nothing changed hands. */
		if (s->locks[i].type != want->type)
			s->locks[i] = *want;
		return 0;
	}
	if (reserve(s, 1))
		return -ENOMEM;
	s->locks[s->nlocks++] = *want;
	return 0;
}

/*
 * A record LOCK (F_SETLK): after the conflict check, the owner's locks on the file that touch
 * want's range change as fcntl(2) says: same-type locks that overlap or adjoin merge into the
 * new one, others are trimmed, and one that covers the range on both sides is split in two. An
 * F_UNLCK only trims and splits. Room for the split is made first, so -ENOMEM changes nothing.
 */
static int lock_posix(struct kvfs_store *s, const struct kvfs_lock *want)
{
	struct kvfs_lock nl = *want;
	bool merged;

	if (want->type != KVFS_LOCK_UN && store_lock_conflict(s, want, NULL))
		return -EAGAIN;
	if (reserve(s, 2))
		return -ENOMEM;
	/* Merge same-type neighbours until none is left: a merge can make another adjoin. */
	do {
		merged = false;
		for (size_t i = 0; want->type != KVFS_LOCK_UN && i < s->nlocks; i++) {
			struct kvfs_lock *l = &s->locks[i];

			if (l->ino != nl.ino || l->kind != KVFS_LOCK_POSIX ||
			    !same_owner(l, nl.node, nl.inc, nl.owner) || l->type != nl.type)
				continue;
			if (!overlaps(l, nl.start, nl.end) &&
			    !(nl.end != UINT64_MAX && l->start == nl.end + 1) &&
			    !(nl.start != 0 && l->end == nl.start - 1))
				continue;
			if (l->start < nl.start)
				nl.start = l->start;
			if (l->end > nl.end)
				nl.end = l->end;
			remove_at(s, i);
			merged = true;
			break;
		}
	} while (merged);
	/* Trim or split the owner's locks of the other type within the requested range (same-type
	 * ones there merged already). */
	for (size_t i = 0; i < s->nlocks; i++) {
		struct kvfs_lock *l = &s->locks[i];
		struct kvfs_lock right;

		if (l->ino != want->ino || l->kind != KVFS_LOCK_POSIX ||
		    !same_owner(l, want->node, want->inc, want->owner) ||
		    !overlaps(l, want->start, want->end))
			continue;
		if (l->start < want->start && l->end > want->end) {
			right = *l;
			right.start = want->end + 1;
			l->end = want->start - 1;
			memmove(&s->locks[i + 2], &s->locks[i + 1],
			        (s->nlocks - i - 1) * sizeof(*s->locks));
			s->locks[i + 1] = right;
			s->nlocks++;
			i++;
		} else if (l->start < want->start) {
			l->end = want->start - 1;
		} else if (l->end > want->end) {
			l->start = want->end + 1;
		} else {
			remove_at(s, i);
			i--;
		}
	}
	if (want->type != KVFS_LOCK_UN)
		s->locks[s->nlocks++] = nl;
	return 0;
}

/* Drops the locks for which drop() says true; the number dropped. */
static size_t drop_if(struct kvfs_store *s,
                      bool (*drop)(const struct kvfs_lock *l, const struct kvfs_op *op),
                      const struct kvfs_op *op)
{
	size_t kept = 0, n = s->nlocks;

	for (size_t i = 0; i < n; i++) {
		if (!drop(&s->locks[i], op))
			s->locks[kept++] = s->locks[i];
	}
	s->nlocks = kept;
	return n - kept;
}

static bool of_owner(const struct kvfs_lock *l, const struct kvfs_op *op)
{
	return l->ino == op->ino && l->kind == op->lk_kind &&
	       same_owner(l, op->lk_node, op->lk_inc, op->lk_owner);
}

static bool of_old_node(const struct kvfs_lock *l, const struct kvfs_op *op)
{
	return l->node == op->lk_node && l->inc < op->lk_inc;
}

/* See store_internal.h. */
int store_lock_apply(struct kvfs_store *s, uint64_t index, const struct kvfs_op *op,
                     struct kvfs_apply_result *res)
{
	struct kvfs_inode *in;
	struct kvfs_lock want;
	int rv;

	if (op->type == KVFS_OP_RELEASE_NODE) {
		if (op->lk_node == 0)
			return -EINVAL;
		drop_if(s, of_old_node, op);
		return 0;
	}
	/* A node takes and drops only its own locks; only a RELEASE_NODE drops another's. */
	if (op->lk_node == 0 || op->lk_node > KVFS_CONFIG_ID_MAX || op->lk_inc == UINT64_MAX ||
	    op->lk_node != op->origin || op->lk_kind > KVFS_LOCK_POSIX)
		return -EINVAL;
	in = store_get_linked(s, op->ino);
	if (!in)
		return -ENOENT;
	res->ino = in->ino;
	if (op->type == KVFS_OP_UNLOCK_OWNER) {
		drop_if(s, of_owner, op);
		return 0;
	}
	if (op->lk_type > KVFS_LOCK_UN || op->lk_start > op->lk_end ||
	    op->lk_end > KVFS_LOCK_END_MAX)
		return -EINVAL;
	if (S_ISDIR(in->mode) && op->lk_kind == KVFS_LOCK_POSIX)
		return -EBADF; /* fcntl(2) on a directory: it is never open for writing */
	want = (struct kvfs_lock){
	    .ino = in->ino,
	    .node = op->lk_node,
	    .inc = op->lk_inc,
	    .owner = op->lk_owner,
	    .kind = op->lk_kind,
	    .type = op->lk_type,
	    .start = op->lk_kind == KVFS_LOCK_POSIX ? op->lk_start : 0,
	    .end = op->lk_kind == KVFS_LOCK_POSIX ? op->lk_end : KVFS_LOCK_END_MAX,
	    .pid = op->lk_pid,
	    .token = index,
	};
	rv = want.kind == KVFS_LOCK_FLOCK ? lock_flock(s, &want) : lock_posix(s, &want);
	return rv;
}

static bool of_ino(const struct kvfs_lock *l, const struct kvfs_op *op)
{
	return l->ino == op->ino;
}

/* See store_internal.h. */
void store_lock_drop_ino(struct kvfs_store *s, uint64_t ino)
{
	struct kvfs_op op = {.ino = ino};

	if (s->nlocks)
		drop_if(s, of_ino, &op);
}

/* See store.h. */
size_t store_lock_count(const struct kvfs_store *s)
{
	return s->nlocks;
}

const struct kvfs_lock *store_lock_at(const struct kvfs_store *s, size_t i)
{
	return i < s->nlocks ? &s->locks[i] : NULL;
}

bool store_lock_token(const struct kvfs_store *s, uint64_t ino, uint64_t *token)
{
	bool found = false;

	*token = 0;
	for (size_t i = 0; i < s->nlocks; i++) {
		if (s->locks[i].ino == ino && s->locks[i].token > *token) {
			*token = s->locks[i].token;
			found = true;
		}
	}
	return found;
}

/* See store.h. Loading runs the same checks a LOCK would, so a snapshot cannot hold a table
 * that applying could not have made. */
int store_lock_load(struct kvfs_store *s, const struct kvfs_lock *l, uint64_t index)
{
	struct kvfs_inode *in = store_get_linked(s, l->ino);

	if (!in || l->node == 0 || l->node > KVFS_CONFIG_ID_MAX || l->inc == UINT64_MAX ||
	    l->kind > KVFS_LOCK_POSIX || l->type > KVFS_LOCK_WR ||
	    l->start > l->end || l->end > KVFS_LOCK_END_MAX || l->token == 0 || l->token > index)
		return -EBADMSG;
	if (l->kind == KVFS_LOCK_FLOCK && (l->start != 0 || l->end != KVFS_LOCK_END_MAX))
		return -EBADMSG;
	if (S_ISDIR(in->mode) && l->kind == KVFS_LOCK_POSIX)
		return -EBADMSG;
	for (size_t i = 0; i < s->nlocks; i++) {
		const struct kvfs_lock *o = &s->locks[i];

		if (o->ino != l->ino || o->kind != l->kind)
			continue;
		if (same_owner(o, l->node, l->inc, l->owner)) {
			/* One flock lock per owner; an owner's record locks never overlap. */
			if (l->kind == KVFS_LOCK_FLOCK || overlaps(o, l->start, l->end))
				return -EBADMSG;
		} else if ((l->kind == KVFS_LOCK_FLOCK || overlaps(o, l->start, l->end)) &&
		           (o->type == KVFS_LOCK_WR || l->type == KVFS_LOCK_WR)) {
			return -EBADMSG;
		}
	}
	if (reserve(s, 1))
		return -ENOMEM;
	s->locks[s->nlocks++] = *l;
	return 0;
}
