/*
 * Values: reference-counted byte strings, the contents of regular files and the targets of
 * symlinks (see value.h). A value has one allocation: the header and its bytes. The sole owner
 * grows it in place with geometric capacity, so n appends cost O(n) copies in total; a value
 * that is shared (a snapshot holds a reference) is never written again, and a change to it makes
 * a copy instead.
 */
#include "kvfs/value.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Capacity above which a value cut to under a quarter of it gives the rest back. */
#define VALUE_SHRINK_MIN 4096u

/* NULL if cap is over the 32 bits of kvfs_value.cap or malloc fails. */
static struct kvfs_value *value_alloc(uint64_t cap)
{
	struct kvfs_value *v;

	if (cap > UINT32_MAX)
		return NULL;
	v = malloc(sizeof(*v) + (size_t)cap);
	if (!v)
		return NULL;
	v->refs = 1;
	v->size = 0;
	v->cap = (uint32_t)cap;
	return v;
}

/* Reallocates v to hold cap bytes; NULL (v untouched) on failure. */
static struct kvfs_value *value_realloc(struct kvfs_value *v, uint64_t cap)
{
	struct kvfs_value *nv;

	if (cap > UINT32_MAX)
		return NULL;
	nv = realloc(v, sizeof(*v) + (size_t)cap);
	if (!nv)
		return NULL;
	nv->cap = (uint32_t)cap;
	return nv;
}

/* The capacity to grow to from cap to hold need bytes: at least double, within 32 bits when need
 * is (a bigger need fails in value_realloc). */
static uint64_t value_grow_cap(uint64_t cap, uint64_t need)
{
	uint64_t c = cap * 2;

	if (c < 64)
		c = 64;
	if (c > UINT32_MAX)
		c = UINT32_MAX;
	return c > need ? c : need;
}

/* Copies len bytes of data to dst, or zeros if data is NULL. */
static void fill(uint8_t *dst, const void *data, uint64_t len)
{
	if (!len)
		return;
	if (data)
		memcpy(dst, data, (size_t)len);
	else
		memset(dst, 0, (size_t)len);
}

struct kvfs_value *value_new(const void *data, uint64_t len)
{
	struct kvfs_value *v = value_alloc(len);

	if (!v)
		return NULL;
	fill(v->data, data, len);
	v->size = len;
	return v;
}

struct kvfs_value *value_ref(struct kvfs_value *v)
{
	if (v) {
		assert(v->refs > 0 && v->refs < UINT32_MAX);
		v->refs++;
	}
	return v;
}

void value_unref(struct kvfs_value *v)
{
	if (!v)
		return;
	assert(v->refs > 0);
	if (--v->refs == 0)
		free(v);
}

/*
 * A private copy of old's first keep bytes with room for cap, size set to keep; old's reference
 * is not dropped. NULL if out of memory.
 */
static struct kvfs_value *value_copy(const struct kvfs_value *old, uint64_t keep, uint64_t cap)
{
	struct kvfs_value *nv = value_alloc(cap);

	if (!nv)
		return NULL;
	fill(nv->data, old ? old->data : NULL, keep);
	nv->size = keep;
	return nv;
}

int value_append(struct kvfs_value **v, const void *data, uint64_t len)
{
	struct kvfs_value *old = *v, *nv;
	uint64_t size = value_size(old);

	if (len == 0)
		return 0;
	if (len > UINT64_MAX - size)
		return -ENOMEM;
	if (old && old->refs == 1) {
		nv = old;
		if (size + len > old->cap) {
			nv = value_realloc(old, value_grow_cap(old->cap, size + len));
			if (!nv)
				return -ENOMEM;
		}
	} else {
		nv = value_copy(old, size, size + len);
		if (!nv)
			return -ENOMEM;
		value_unref(old);
	}
	fill(nv->data + size, data, len);
	nv->size = size + len;
	*v = nv;
	return 0;
}

/*
 * Cutting to zero drops the value (*v becomes NULL, the empty value). A sole owner's value that is
 * cut far below its capacity gives memory back when realloc lets it.
 */
int value_resize(struct kvfs_value **v, uint64_t len)
{
	struct kvfs_value *old = *v, *nv;
	uint64_t size = value_size(old);

	if (len == size)
		return 0;
	if (len == 0) {
		value_unref(old);
		*v = NULL;
		return 0;
	}
	if (old && old->refs == 1) {
		nv = old;
		if (len > old->cap) {
			nv = value_realloc(old, value_grow_cap(old->cap, len));
			if (!nv)
				return -ENOMEM;
		} else if (len < size && old->cap > VALUE_SHRINK_MIN && len < old->cap / 4) {
			nv = value_realloc(old, len);
			if (!nv)
				nv = old;
		}
	} else {
		nv = value_copy(old, len < size ? len : size, len);
		if (!nv)
			return -ENOMEM;
		value_unref(old);
	}
	if (len > size)
		fill(nv->data + size, NULL, len - size);
	nv->size = len;
	*v = nv;
	return 0;
}

int value_zero(struct kvfs_value **v, uint64_t off, uint64_t len)
{
	struct kvfs_value *old = *v, *nv = old;
	uint64_t size = value_size(old), end;

	if (off >= size || len == 0)
		return 0;
	end = len > size - off ? size : off + len;
	if (old->refs > 1) {
		nv = value_copy(old, size, size);
		if (!nv)
			return -ENOMEM;
		value_unref(old);
	}
	fill(nv->data + off, NULL, end - off);
	*v = nv;
	return 0;
}
