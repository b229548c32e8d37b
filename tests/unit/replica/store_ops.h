/*
 * Helpers shared by the store's unit tests (test_store.c, test_store_links.c): building
 * operations (OP, NAME, NEWNAME, DATA), applying them at the next index with a fresh commit
 * time, reading the tree back, and a cmocka setup/teardown that gives each test an empty store.
 * Failures are cmocka assertions, so these are for use inside a cmocka test only. All static:
 * each test has its own copy (and its own commit clock).
 */
#ifndef KVFS_TESTS_STORE_OPS_H
#define KVFS_TESTS_STORE_OPS_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "kvfs/op.h"
#include "kvfs/store.h"
#include "kvfs/value.h"

#define ROOT       KVFS_ROOT_INO
#define OP(...)    ((struct kvfs_op){__VA_ARGS__})
#define NAME(x)    .name = (x), .name_len = (uint32_t)strlen(x)
#define NEWNAME(x) .newname = (x), .newname_len = (uint32_t)strlen(x)
#define DATA(x)    .data = (const uint8_t *)(x), .data_len = (uint32_t)strlen(x)

static int64_t now_ns = 1000000;

/* Applies op at the next index (with a fresh commit time unless op has one); asserts that the
 * store took it (its outcome is in the result). */
static struct kvfs_apply_result apply(struct kvfs_store *s, struct kvfs_op op)
{
	struct kvfs_apply_result res;
	uint64_t index = store_applied_index(s) + 1;

	if (!op.time_ns)
		op.time_ns = (now_ns += 1000);
	assert_int_equal(store_apply(s, 3, index, &op, &res), 0);
	assert_int_equal(store_applied_index(s), index);
	return res;
}

/* The outcome of applying op: 0 or a negative errno. */
static int err_of(struct kvfs_store *s, struct kvfs_op op)
{
	return apply(s, op).err;
}

/* The inode ino, which must exist. */
static struct kvfs_inode *get(struct kvfs_store *s, uint64_t ino)
{
	struct kvfs_inode *in = store_get(s, ino);

	assert_non_null(in);
	return in;
}

/* The inode `name` in directory dir, or NULL. */
static struct kvfs_inode *lookup(struct kvfs_store *s, uint64_t dir, const char *name)
{
	return store_lookup(s, store_get(s, dir), name, strlen(name));
}

/* Replaces the contents of ino with the string data, which must succeed. */
static void put(struct kvfs_store *s, uint64_t ino, const char *data)
{
	assert_int_equal(err_of(s, OP(.type = KVFS_OP_PUT, .ino = ino, DATA(data))), 0);
}

/* Asserts that in holds exactly the n bytes at bytes. */
static void assert_value(const struct kvfs_inode *in, const void *bytes, size_t n)
{
	assert_int_equal(value_size(in->value), n);
	if (n)
		assert_memory_equal(in->value->data, bytes, n);
}

static int setup(void **state)
{
	struct kvfs_store *s;

	assert_int_equal(store_init(&s), 0);
	*state = s;
	return 0;
}

static int teardown(void **state)
{
	store_close(*state);
	return 0;
}

#endif /* KVFS_TESTS_STORE_OPS_H */
