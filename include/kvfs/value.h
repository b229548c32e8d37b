/*
 * Values: the bytes of a regular file or the target of a symlink, reference counted.
 *
 * A value is immutable while more than one reference exists (a snapshot being written holds one),
 * so a reader on another thread can use its bytes without a lock. Reference counts are changed on
 * the loop thread only. The one owner of a value with refs == 1 may grow it in place
 * (value_append), which keeps a stream of appends linear instead of quadratic.
 */
#ifndef KVFS_VALUE_H
#define KVFS_VALUE_H

#include <stddef.h>
#include <stdint.h>

/* A 16-byte header: a 100-byte value is one 128-byte malloc chunk, not 144. A value never
 * exceeds KVFS_DATA_MAX, far below the 4 GiB a 32-bit capacity allows; a bigger one is out of
 * memory (-ENOMEM, NULL). */
struct kvfs_value {
	uint32_t refs;
	uint32_t cap;  /* bytes allocated for data */
	uint64_t size; /* bytes in data */
	uint8_t data[];
};

/* A new value holding a copy of len bytes of data (data may be NULL: zeros). NULL if out of memory.
 */
struct kvfs_value *value_new(const void *data, uint64_t len);

/* Takes a reference; returns v. v may be NULL. */
struct kvfs_value *value_ref(struct kvfs_value *v);

/* Drops a reference, freeing the value with the last one. v may be NULL. */
void value_unref(struct kvfs_value *v);

/*
 * Returns a value holding *v's bytes followed by len bytes of data: *v itself grown in place when
 * it is the only reference, otherwise a copy (and *v's reference is dropped). *v may be NULL.
 * On success *v is replaced and 0 returned; on -ENOMEM *v is unchanged.
 */
int value_append(struct kvfs_value **v, const void *data, uint64_t len);

/* Like value_append but sets the size to len, cutting or zero-filling. Same ownership rules. */
int value_resize(struct kvfs_value **v, uint64_t len);

/*
 * Zeroes the bytes of [off, off + len) that lie within the value's size (the size never
 * changes): in place when *v is the only reference, otherwise in a copy (and *v's reference is
 * dropped). A range that misses the value changes nothing. On success *v is replaced and 0
 * returned; on -ENOMEM *v is unchanged.
 */
int value_zero(struct kvfs_value **v, uint64_t off, uint64_t len);

static inline uint64_t value_size(const struct kvfs_value *v)
{
	return v ? v->size : 0;
}

#endif /* KVFS_VALUE_H */
