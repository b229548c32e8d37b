/*
 * Extended attributes of the store's inodes (see store_xattr.h): checking names, applying
 * SETXATTR and REMOVEXATTR, and loading them from a snapshot.
 *
 * A set is never changed once made (except while a snapshot is being loaded into a store no one
 * else sees yet): a change builds the next set, taking new references on the names and values
 * it keeps, and drops the old set. That keeps a snapshot's capture O(1) per inode (a reference)
 * and costs O(names of the inode) per change, at most KVFS_XATTR_COUNT_MAX.
 */
#include "kvfs/store_xattr.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "kvfs/op.h"
#include "kvfs/store.h"
#include "kvfs/value.h"
#include "store_internal.h"

/* memcmp order, a prefix before the longer name. */
static int name_cmp(const struct kvfs_value *a, const char *b, size_t blen)
{
	size_t alen = (size_t)a->size;
	int c = memcmp(a->data, b, alen < blen ? alen : blen);

	if (c)
		return c;
	return alen < blen ? -1 : alen > blen;
}

/* The position of name in x (x may be NULL), or where it would go; *found says which. */
static uint32_t find(const struct kvfs_xattrs *x, const char *name, size_t len, bool *found)
{
	uint32_t lo = 0, hi = x ? x->n : 0;

	*found = false;
	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;
		int c = name_cmp(x->a[mid].name, name, len);

		if (c == 0) {
			*found = true;
			return mid;
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

const struct kvfs_value *store_xattr_get(const struct kvfs_inode *in, const char *name, size_t len,
                                         bool *found)
{
	uint32_t i = find(in->xattrs, name, len, found);

	return *found ? in->xattrs->a[i].value : NULL;
}

uint64_t store_xattr_bytes(const struct kvfs_store *s)
{
	return s->xattr_bytes;
}

struct kvfs_xattrs *store_xattr_ref(struct kvfs_xattrs *x)
{
	if (x)
		x->refs++;
	return x;
}

void store_xattr_unref(struct kvfs_xattrs *x)
{
	if (!x || --x->refs > 0)
		return;
	for (uint32_t i = 0; i < x->n; i++) {
		value_unref(x->a[i].name);
		value_unref(x->a[i].value);
	}
	free(x);
}

static struct kvfs_xattrs *set_new(uint32_t n)
{
	struct kvfs_xattrs *x = malloc(sizeof(*x) + (size_t)n * sizeof(x->a[0]));

	if (!x)
		return NULL;
	x->refs = 1;
	x->n = 0;
	x->bytes = x->list_len = 0;
	return x;
}

/* Appends (name, value) to x, taking the references given. */
static void set_push(struct kvfs_xattrs *x, struct kvfs_value *name, struct kvfs_value *value)
{
	x->a[x->n].name = name;
	x->a[x->n].value = value;
	x->n++;
	x->bytes += name->size + value_size(value);
	x->list_len += name->size + 1;
}

/* Whether x fits the per-inode limits. */
static bool set_fits(uint64_t n, uint64_t bytes, uint64_t list_len)
{
	return n <= KVFS_XATTR_COUNT_MAX && bytes <= KVFS_XATTR_SIZE_MAX &&
	       list_len <= KVFS_XATTR_LIST_MAX;
}

/*
 * The set that old becomes with entry i replaced by (name, value) (found), inserted at i (!found
 * and name), or removed (found and !name), in *out (NULL: nothing left). Takes the references on
 * name and value. 0 or -ENOMEM (references not taken).
 */
static int set_edit(const struct kvfs_xattrs *old, uint32_t i, bool found, struct kvfs_value *name,
                    struct kvfs_value *value, struct kvfs_xattrs **out)
{
	uint32_t n = old ? old->n : 0, m = n + (found ? 0 : 1) - (name ? 0 : 1);
	struct kvfs_xattrs *x;

	*out = NULL;
	if (m == 0)
		return 0;
	x = set_new(m);
	if (!x)
		return -ENOMEM;
	for (uint32_t j = 0; j < n; j++) {
		if (j == i) {
			if (name)
				set_push(x, name, value);
			if (found)
				continue;
		}
		set_push(x, value_ref(old->a[j].name), value_ref(old->a[j].value));
	}
	if (i == n && name && !found)
		set_push(x, name, value);
	*out = x;
	return 0;
}

/* Replaces in's set with x (x may be NULL), booking the bytes. */
static void set_install(struct kvfs_store *s, struct kvfs_inode *in, struct kvfs_xattrs *x)
{
	s->xattr_bytes -= in->xattrs ? in->xattrs->bytes : 0;
	s->xattr_bytes += x ? x->bytes : 0;
	store_xattr_unref(in->xattrs);
	in->xattrs = x;
}

/* Whether in may carry user.* attributes: Linux refuses them on anything else (EPERM). */
static bool may_have(const struct kvfs_inode *in)
{
	return S_ISREG(in->mode) || S_ISDIR(in->mode);
}

int store_xattr_apply(struct kvfs_store *s, const struct kvfs_op *op, uint64_t *ino)
{
	struct kvfs_inode *in = store_get_linked(s, op->ino);
	const struct kvfs_xattrs *old;
	struct kvfs_value *name = NULL, *value = NULL;
	struct kvfs_xattrs *x;
	uint64_t bytes, list_len, n;
	bool set = op->type == KVFS_OP_SETXATTR, found;
	uint32_t i;
	int rv;

	if (set && (op->flags & ~(KVFS_OP_RULES2 | KVFS_XATTR_CREATE | KVFS_XATTR_REPLACE) ||
	            (op->flags & (KVFS_XATTR_CREATE | KVFS_XATTR_REPLACE)) ==
	                (KVFS_XATTR_CREATE | KVFS_XATTR_REPLACE)))
		return -EINVAL;
	if (op->name_len && !op->name)
		return -EINVAL;
	rv = store_xattr_check_name(op->name, op->name_len);
	if (rv)
		return rv;
	if (set && (op->data_len > KVFS_XATTR_VALUE_MAX || (op->data_len && !op->data)))
		return -E2BIG;
	if (!in)
		return -ENOENT;
	if (!may_have(in))
		return -EPERM;
	old = in->xattrs;
	i = find(old, op->name, op->name_len, &found);
	if (!set || (op->flags & KVFS_XATTR_REPLACE)) {
		if (!found)
			return -ENODATA;
	} else if (found && (op->flags & KVFS_XATTR_CREATE)) {
		return -EEXIST;
	}
	if (set) {
		bytes = old ? old->bytes : 0;
		list_len = old ? old->list_len : 0;
		n = old ? old->n : 0;
		if (found) {
			bytes -= old->a[i].name->size + value_size(old->a[i].value);
			list_len -= old->a[i].name->size + 1;
			n--;
		}
		if (!set_fits(n + 1, bytes + op->name_len + op->data_len,
		              list_len + op->name_len + 1))
			return -ENOSPC;
		name = value_new(op->name, op->name_len);
		value = op->data_len ? value_new(op->data, op->data_len) : NULL;
		if (!name || (op->data_len && !value))
			goto err_nomem;
	}
	if (set_edit(old, i, found, name, value, &x))
		goto err_nomem;
	set_install(s, in, x);
	in->ctime_ns = op->time_ns;
	*ino = in->ino;
	return 0;

err_nomem:
	value_unref(name);
	value_unref(value);
	return -ENOMEM;
}

int store_xattr_load(struct kvfs_store *s, uint64_t ino, bool first, const char *name,
                     uint32_t name_len, const uint8_t *value, uint32_t value_len)
{
	struct kvfs_inode *in = store_get_linked(s, ino);
	struct kvfs_xattrs *x;
	struct kvfs_value *nv, *vv = NULL;
	uint32_t cap;

	if (!in || !may_have(in) || (first != (in->xattrs == NULL)))
		return -EBADMSG;
	if (store_xattr_check_name(name, name_len) || value_len > KVFS_XATTR_VALUE_MAX)
		return -EBADMSG;
	x = in->xattrs;
	if (x && name_cmp(x->a[x->n - 1].name, name, name_len) >= 0)
		return -EBADMSG;
	if (x && !set_fits((uint64_t)x->n + 1, x->bytes + name_len + value_len,
	                   x->list_len + name_len + 1))
		return -EBADMSG;
	/* A store being loaded is seen by no one: its sets grow in place, by doubling. */
	if (!x || (x->n & (x->n - 1)) == 0) {
		struct kvfs_xattrs *g;

		cap = x ? 2 * x->n : 1;
		g = realloc(x, sizeof(*g) + (size_t)cap * sizeof(g->a[0]));
		if (!g)
			return -ENOMEM;
		if (!x) {
			g->refs = 1;
			g->n = 0;
			g->bytes = g->list_len = 0;
		}
		in->xattrs = x = g;
	}
	nv = value_new(name, name_len);
	if (value_len)
		vv = value_new(value, value_len);
	if (!nv || (value_len && !vv)) {
		value_unref(nv);
		value_unref(vv);
		return -ENOMEM;
	}
	set_push(x, nv, vv);
	s->xattr_bytes += (uint64_t)name_len + value_len;
	return 0;
}
