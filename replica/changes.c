/*
 * The change feed's ring (see changes.h): records of the recent committed changes, resolved to
 * paths when they apply, kept in log order in a fixed array of slots used round-robin.
 */
#include "kvfs/changes.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "kvfs/op.h"
#include "kvfs/store.h"
#include "kvfs/value.h"

struct kvfs_changes {
	struct kvfs_change *slots;
	size_t cap;
	size_t head;          /* slot of the oldest record */
	size_t count;         /* records held */
	uint64_t first, next; /* the covered index range [first, next) */
	size_t path_bytes;    /* bytes of the records' path allocations */
};

int changes_init(struct kvfs_changes **out, size_t cap)
{
	struct kvfs_changes *c;

	if (cap == 0 || cap > KVFS_CHANGES_MAX)
		return -EINVAL;
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->slots = calloc(cap, sizeof(*c->slots));
	if (!c->slots) {
		free(c);
		return -ENOMEM;
	}
	c->cap = cap;
	c->first = c->next = 1;
	*out = c;
	return 0;
}

static struct kvfs_change *slot(const struct kvfs_changes *c, size_t i)
{
	return &c->slots[(c->head + i) % c->cap];
}

static void drop_oldest(struct kvfs_changes *c)
{
	struct kvfs_change *ch = slot(c, 0);

	c->first = ch->index + 1;
	c->path_bytes -= (size_t)ch->path_len + ch->newpath_len + 2;
	free(ch->paths);
	ch->paths = NULL;
	c->head = (c->head + 1) % c->cap;
	c->count--;
}

void changes_reset(struct kvfs_changes *c, uint64_t next)
{
	while (c->count)
		drop_oldest(c);
	c->head = 0;
	c->first = c->next = next;
}

void changes_close(struct kvfs_changes *c)
{
	if (!c)
		return;
	changes_reset(c, 1);
	free(c->slots);
	free(c);
}

/* Bytes of the path of name d ("/a/b"), 1 for the root's. */
static size_t dentry_path_len(const struct kvfs_dentry *d)
{
	size_t n = 0;

	for (; d && d->dir; d = d->dir->aliases)
		n += 1 + d->name_len;
	return n ? n : 1;
}

/* Writes the path of d into buf (dentry_path_len(d) bytes, no NUL). */
static void dentry_path(const struct kvfs_dentry *d, char *buf)
{
	size_t end = dentry_path_len(d);

	buf[0] = '/';
	for (; d && d->dir; d = d->dir->aliases) {
		end -= d->name_len;
		memcpy(buf + end, d->name, d->name_len);
		buf[--end] = '/';
	}
}

/* The path of `name` in directory dir, or of ino's newest name (name NULL): a new string in *out
 * and its length; "" when there is none. -ENOMEM. */
static int resolve(const struct kvfs_store *s, uint64_t ino, const char *name, uint32_t name_len,
                   char **out, uint32_t *len)
{
	const struct kvfs_inode *in = store_get(s, ino);
	const struct kvfs_dentry *d = in ? in->aliases : NULL;
	size_t n = 0, dn;
	char *p;

	if (d)
		n = dentry_path_len(d);
	dn = n;
	if (name && d)
		n += (dn > 1 ? 1 : 0) + name_len;
	p = malloc(n + 1);
	if (!p)
		return -ENOMEM;
	if (d)
		dentry_path(d, p);
	if (name && d) {
		if (dn > 1)
			p[dn++] = '/';
		memcpy(p + dn, name, name_len);
	}
	p[n] = '\0';
	*out = p;
	*len = (uint32_t)n;
	return 0;
}

/* Lock operations change no file: a feed of them would flood readers with every flock(). */
static bool changes_is_lock_op(unsigned type)
{
	return type == KVFS_OP_LOCK || type == KVFS_OP_UNLOCK_OWNER || type == KVFS_OP_RELEASE_NODE;
}

/* Fills ch's paths and size from op and the store: 0 or -ENOMEM. */
static int describe(struct kvfs_change *ch, const struct kvfs_store *s, const struct kvfs_op *op,
                    const struct kvfs_apply_result *res)
{
	const struct kvfs_inode *in = NULL;
	char *path = NULL, *newpath = NULL;
	uint32_t plen = 0, nlen = 0;
	int rv = 0;

	switch (op->type) {
	case KVFS_OP_PUT:
	case KVFS_OP_APPEND:
	case KVFS_OP_SETATTR:
	case KVFS_OP_FALLOCATE:
		rv = resolve(s, op->ino, NULL, 0, &path, &plen);
		in = store_get(s, op->ino);
		break;
	case KVFS_OP_RENAME:
		rv = resolve(s, op->parent, op->name, op->name_len, &path, &plen);
		if (rv == 0)
			rv = resolve(s, op->newparent, op->newname, op->newname_len, &newpath,
			             &nlen);
		in = store_get(s, res->ino);
		break;
	case KVFS_OP_CREATE:
	case KVFS_OP_MKDIR:
	case KVFS_OP_SYMLINK:
	case KVFS_OP_UNLINK:
	case KVFS_OP_RMDIR:
	case KVFS_OP_LINK:
	case KVFS_OP_MKNOD:
		rv = resolve(s, op->parent, op->name, op->name_len, &path, &plen);
		if (op->type != KVFS_OP_UNLINK && op->type != KVFS_OP_RMDIR)
			in = store_get(s, res->ino);
		break;
	case KVFS_OP_CONFIG:
		break;
	default:
		/* A type added later: the inode it names, if any (its name is not known here). */
		if (op->ino) {
			rv = resolve(s, op->ino, NULL, 0, &path, &plen);
			in = store_get(s, op->ino);
		}
		break;
	}
	if (rv == 0) {
		ch->paths = malloc((size_t)plen + nlen + 2);
		if (!ch->paths)
			rv = -ENOMEM;
	}
	if (rv == 0) {
		if (plen)
			memcpy(ch->paths, path, plen);
		ch->paths[plen] = '\0';
		if (nlen)
			memcpy(ch->paths + plen + 1, newpath, nlen);
		ch->paths[plen + 1 + nlen] = '\0';
		ch->path_len = plen;
		ch->newpath_len = nlen;
	}
	free(path);
	free(newpath);
	if (!in)
		ch->size = -1;
	else if (S_ISREG(in->mode) || S_ISLNK(in->mode))
		ch->size = (int64_t)value_size(in->value);
	else
		ch->size = 0;
	return rv;
}

void changes_record(struct kvfs_changes *c, const struct kvfs_store *s, uint64_t epoch,
                    uint64_t index, const struct kvfs_op *op, const struct kvfs_apply_result *res)
{
	struct kvfs_change ch = {
	    .index = index,
	    .epoch = epoch,
	    .time_ns = op->time_ns,
	    .origin = op->origin,
	    .type = op->type,
	    .exchange = op->type == KVFS_OP_RENAME && (op->flags & KVFS_RENAME_EXCHANGE),
	};

	if (index != c->next)
		changes_reset(c, index);
	c->next = index + 1;
	if (res->err < 0 || res->duplicate || op->type == KVFS_OP_NOOP ||
	    op->type >= KVFS_OP__COUNT || changes_is_lock_op(op->type))
		return;
	if (describe(&ch, s, op, res) < 0) {
		changes_reset(c, index + 1);
		return;
	}
	if (c->count == c->cap)
		drop_oldest(c);
	*slot(c, c->count) = ch;
	c->count++;
	c->path_bytes += (size_t)ch.path_len + ch.newpath_len + 2;
}

uint64_t changes_first(const struct kvfs_changes *c)
{
	return c->first;
}

uint64_t changes_next(const struct kvfs_changes *c)
{
	return c->next;
}

size_t changes_count(const struct kvfs_changes *c)
{
	return c->count;
}

size_t changes_bytes(const struct kvfs_changes *c)
{
	return sizeof(*c) + c->cap * sizeof(*c->slots) + c->path_bytes;
}

int changes_find(const struct kvfs_changes *c, uint64_t from, const struct kvfs_change **out)
{
	size_t lo = 0, hi = c->count;

	if (from < c->first)
		return -ERANGE;
	/* Records are in index order: the first one at or past `from`. */
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (slot(c, mid)->index < from)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo == c->count)
		return -EAGAIN;
	*out = slot(c, lo);
	return 0;
}
