/*
 * Unit tests of extended attributes in the store (replica/store_xattr.c) and of their proposal
 * checks (op_validate.c): set, get, replace and remove with setxattr(2)'s flags and errors, the
 * types that may carry them, the per-inode limits (ENOSPC), ctime, byte accounting, a snapshot
 * capture seeing the set it captured while the store moves on, attributes freed with their
 * inode (ASan's leak check), an unlinked open file keeping them, and allocation failures that
 * change nothing.
 */
#include "store_ops.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "kvfs/store_xattr.h"
#include "store_image.h"

/* Allocation failure injection: the next `fail_after` allocations succeed, then all fail. */
static long fail_after = -1;
void *__real_malloc(size_t n);
void *__wrap_malloc(size_t n);
void *__real_realloc(void *p, size_t n);
void *__wrap_realloc(void *p, size_t n);

void *__wrap_malloc(size_t n)
{
	if (fail_after == 0)
		return NULL;
	if (fail_after > 0)
		fail_after--;
	return __real_malloc(n);
}

void *__wrap_realloc(void *p, size_t n)
{
	if (fail_after == 0)
		return NULL;
	if (fail_after > 0)
		fail_after--;
	return __real_realloc(p, n);
}

#define SETX(ino_, name_, val_, fl)                                                                \
	OP(.type = KVFS_OP_SETXATTR, .ino = (ino_), .flags = (fl), NAME(name_), DATA(val_))
#define RMX(ino_, name_) OP(.type = KVFS_OP_REMOVEXATTR, .ino = (ino_), NAME(name_))

static uint64_t mk(struct kvfs_store *s, unsigned type, const char *name, uint32_t mode)
{
	struct kvfs_apply_result r = apply(
	    s, OP(.type = (uint8_t)type, .parent = ROOT, .mode = mode, NAME(name), DATA("target")));

	assert_int_equal(r.err, 0);
	return r.ino;
}

/* The value of attribute name of ino as a string ("" if empty), or NULL if absent. */
static const char *getx(struct kvfs_store *s, uint64_t ino, const char *name)
{
	static char buf[128];
	bool found;
	const struct kvfs_value *v = store_xattr_get(get(s, ino), name, strlen(name), &found);

	if (!found)
		return NULL;
	assert_true(value_size(v) < sizeof(buf));
	memcpy(buf, v ? v->data : (const uint8_t *)"", value_size(v));
	buf[value_size(v)] = '\0';
	return buf;
}

static void test_set_get_remove(void **state)
{
	struct kvfs_store *s = *state;
	uint64_t f = mk(s, KVFS_OP_CREATE, "f", 0644), d = mk(s, KVFS_OP_MKDIR, "d", 0755);
	const struct kvfs_xattrs *x;
	int64_t ctime;

	assert_null(getx(s, f, "user.a"));
	ctime = get(s, f)->ctime_ns;
	assert_int_equal(err_of(s, SETX(f, "user.b", "2", 0)), 0);
	assert_true(get(s, f)->ctime_ns > ctime); /* as Linux: an attribute change is a ctime */
	assert_int_equal(err_of(s, SETX(f, "user.a", "1", 0)), 0);
	assert_int_equal(err_of(s, SETX(f, "user.ab", "", 0)), 0);
	assert_string_equal(getx(s, f, "user.a"), "1");
	assert_string_equal(getx(s, f, "user.b"), "2");
	assert_string_equal(getx(s, f, "user.ab"), ""); /* empty values exist */
	x = get(s, f)->xattrs;
	assert_int_equal(x->n, 3); /* sorted: a prefix first */
	assert_memory_equal(x->a[0].name->data, "user.a", 6);
	assert_memory_equal(x->a[1].name->data, "user.ab", 7);
	assert_memory_equal(x->a[2].name->data, "user.b", 6);
	assert_int_equal(x->bytes, 6 + 1 + 7 + 6 + 1);
	assert_int_equal(x->list_len, 7 + 8 + 7);
	assert_int_equal(store_xattr_bytes(s), 21);

	/* CREATE and REPLACE, as setxattr(2). */
	assert_int_equal(err_of(s, SETX(f, "user.a", "x", KVFS_XATTR_CREATE)), -EEXIST);
	assert_int_equal(err_of(s, SETX(f, "user.c", "x", KVFS_XATTR_REPLACE)), -ENODATA);
	assert_int_equal(err_of(s, SETX(f, "user.a", "x", KVFS_XATTR_CREATE | KVFS_XATTR_REPLACE)),
	                 -EINVAL);
	assert_int_equal(err_of(s, SETX(f, "user.a", "new", KVFS_XATTR_REPLACE)), 0);
	assert_int_equal(err_of(s, SETX(f, "user.c", "3", KVFS_XATTR_CREATE)), 0);
	assert_string_equal(getx(s, f, "user.a"), "new");
	assert_int_equal(store_xattr_bytes(s), 21 + 2 + 7);

	/* Directories too; removal. */
	assert_int_equal(err_of(s, SETX(d, "user.d", "dir", 0)), 0);
	assert_int_equal(err_of(s, RMX(f, "user.zz")), -ENODATA);
	assert_int_equal(err_of(s, RMX(f, "user.a")), 0);
	assert_int_equal(err_of(s, RMX(f, "user.a")), -ENODATA);
	assert_null(getx(s, f, "user.a"));
	assert_int_equal(err_of(s, RMX(f, "user.ab")), 0);
	assert_int_equal(err_of(s, RMX(f, "user.b")), 0);
	assert_int_equal(err_of(s, RMX(f, "user.c")), 0);
	assert_null(get(s, f)->xattrs); /* nothing left: no set */
	assert_int_equal(store_xattr_bytes(s), 6 + 3);
	assert_string_equal(getx(s, d, "user.d"), "dir");
}

static void test_refused(void **state)
{
	struct kvfs_store *s = *state;
	uint64_t f = mk(s, KVFS_OP_CREATE, "f", 0644), l = mk(s, KVFS_OP_SYMLINK, "l", 0);
	char long_name[300];
	static uint8_t big[(64u << 10) + 1];
	uint64_t fifo;

	fifo =
	    apply(s, OP(.type = KVFS_OP_MKNOD, .parent = ROOT, .mode = S_IFIFO | 0644, NAME("p")))
	        .ino;
	assert_int_equal(err_of(s, SETX(999, "user.a", "1", 0)), -ENOENT);
	assert_int_equal(err_of(s, RMX(999, "user.a")), -ENOENT);
	/* Linux keeps user.* off symlinks and special files. */
	assert_int_equal(err_of(s, SETX(l, "user.a", "1", 0)), -EPERM);
	assert_int_equal(err_of(s, SETX(fifo, "user.a", "1", 0)), -EPERM);
	assert_int_equal(err_of(s, RMX(l, "user.a")), -EPERM);
	/* Names: only user.*, not kvfs's own, not empty, not too long. */
	assert_int_equal(err_of(s, SETX(f, "trusted.a", "1", 0)), -EOPNOTSUPP);
	assert_int_equal(err_of(s, SETX(f, "security.capability", "1", 0)), -EOPNOTSUPP);
	assert_int_equal(err_of(s, SETX(f, "user.kvfs.lock", "1", 0)), -EPERM);
	assert_int_equal(err_of(s, RMX(f, "user.kvfs.x")), -EPERM);
	assert_int_equal(err_of(s, SETX(f, "user.", "1", 0)), -EINVAL);
	assert_int_equal(err_of(s, SETX(f, "", "1", 0)), -ERANGE);
	assert_int_equal(
	    err_of(s, OP(.type = KVFS_OP_SETXATTR, .ino = f, .name = "user.a\0b", .name_len = 8)),
	    -EINVAL);
	memset(long_name, 'x', sizeof(long_name));
	memcpy(long_name, "user.", 5);
	assert_int_equal(
	    err_of(s, OP(.type = KVFS_OP_SETXATTR, .ino = f, .name = long_name, .name_len = 256)),
	    -ERANGE);
	assert_int_equal(
	    err_of(s, OP(.type = KVFS_OP_SETXATTR, .ino = f, .name = long_name, .name_len = 255)),
	    0);
	assert_int_equal(err_of(s, OP(.type = KVFS_OP_SETXATTR, .ino = f, NAME("user.big"),
	                              .data = big, .data_len = sizeof(big))),
	                 -E2BIG);
	assert_int_equal(err_of(s, OP(.type = KVFS_OP_SETXATTR, .ino = f, NAME("user.big"),
	                              .data = big, .data_len = sizeof(big) - 1)),
	                 0);
	assert_int_equal(
	    err_of(s, OP(.type = KVFS_OP_SETXATTR, .ino = f, .flags = 0x4, NAME("user.a"))),
	    -EINVAL);
	assert_int_equal(get(s, f)->xattrs->n, 2);
}

/* Per inode: KVFS_XATTR_SIZE_MAX bytes, KVFS_XATTR_COUNT_MAX names, KVFS_XATTR_LIST_MAX of list. */
static void test_limits(void **state)
{
	struct kvfs_store *s = *state;
	uint64_t f = mk(s, KVFS_OP_CREATE, "f", 0644), g = mk(s, KVFS_OP_CREATE, "g", 0644);
	uint64_t h = mk(s, KVFS_OP_CREATE, "h", 0644);
	static uint8_t val[64u << 10];
	char name[256];
	uint32_t i;

	/* Four values of 64 KiB minus their names fit 256 KiB; a fifth byte does not. */
	for (i = 0; i < 4; i++) {
		snprintf(name, sizeof(name), "user.v%u", i);
		assert_int_equal(err_of(s, OP(.type = KVFS_OP_SETXATTR, .ino = f, NAME(name),
		                              .data = val, .data_len = (64u << 10) - 7)),
		                 0);
	}
	assert_int_equal(get(s, f)->xattrs->bytes, 256u << 10);
	assert_int_equal(err_of(s, SETX(f, "user.x", "", 0)), -ENOSPC);
	/* Replacing a value by a shorter one is always possible. */
	assert_int_equal(err_of(s, SETX(f, "user.v0", "short", 0)), 0);
	assert_int_equal(err_of(s, SETX(f, "user.x", "", 0)), 0);

	/* 1024 names, then ENOSPC. */
	for (i = 0; i < KVFS_XATTR_COUNT_MAX; i++) {
		snprintf(name, sizeof(name), "user.%04u", i);
		assert_int_equal(err_of(s, SETX(g, name, "", 0)), 0);
	}
	assert_int_equal(err_of(s, SETX(g, "user.one-more", "", 0)), -ENOSPC);
	assert_int_equal(err_of(s, SETX(g, "user.0000", "still fine", 0)), 0);
	assert_int_equal(get(s, g)->xattrs->n, KVFS_XATTR_COUNT_MAX);

	/* Long names: 256 names of 255 bytes (+ NUL) make exactly 64 KiB of list. */
	memset(name, 'n', sizeof(name));
	memcpy(name, "user.", 5);
	for (i = 0; i < 256; i++) {
		snprintf(name + 5, 6, "%05u", i);
		name[10] = 'n';
		assert_int_equal(err_of(s, OP(.type = KVFS_OP_SETXATTR, .ino = h, .name = name,
		                              .name_len = 255)),
		                 0);
	}
	assert_int_equal(get(s, h)->xattrs->list_len, KVFS_XATTR_LIST_MAX);
	assert_int_equal(err_of(s, SETX(h, "user.z", "", 0)), -ENOSPC);
}

/* A captured set (a snapshot holds a reference) never changes; the inode moves on. Removing the
 * file frees its attributes (ASan would report a leak), but an open (pinned) unlinked file keeps
 * them until it is closed. */
static void test_shared_and_freed(void **state)
{
	struct kvfs_store *s = *state;
	uint64_t f = mk(s, KVFS_OP_CREATE, "f", 0644), g = mk(s, KVFS_OP_CREATE, "g", 0644);
	struct kvfs_xattrs *held;

	assert_int_equal(err_of(s, SETX(f, "user.a", "1", 0)), 0);
	held = store_xattr_ref(get(s, f)->xattrs);
	assert_int_equal(err_of(s, SETX(f, "user.a", "2", 0)), 0);
	assert_int_equal(err_of(s, SETX(f, "user.b", "3", 0)), 0);
	assert_int_equal(held->n, 1);
	assert_memory_equal(held->a[0].value->data, "1", 1);
	assert_string_equal(getx(s, f, "user.a"), "2");
	store_xattr_unref(held);
	/* Writing the contents leaves the attributes alone. */
	put(s, f, "contents");
	assert_value(get(s, f), "contents", 8);
	assert_string_equal(getx(s, f, "user.b"), "3");

	assert_int_equal(err_of(s, SETX(g, "user.kept", "yes", 0)), 0);
	assert_ptr_equal(lookup(s, ROOT, "g"), get(s, g));
	store_pin(s, get(s, g), 1);
	assert_int_equal(err_of(s, OP(.type = KVFS_OP_UNLINK, .parent = ROOT, NAME("g"))), 0);
	assert_string_equal(getx(s, g, "user.kept"), "yes");
	assert_int_equal(store_xattr_bytes(s), 6 + 1 + 6 + 1); /* g's no longer counted */
	/* Unlinked: no operation reaches it. */
	assert_int_equal(err_of(s, SETX(g, "user.more", "", 0)), -ENOENT);
	store_unpin(s, get(s, g), 1);
	assert_int_equal(err_of(s, OP(.type = KVFS_OP_UNLINK, .parent = ROOT, NAME("f"))), 0);
	assert_int_equal(store_xattr_bytes(s), 0);
}

/* Every replica reaches the same state: the same ops on two stores give equal images, including
 * the outcome of a retried (origin, seq). */
static void test_deterministic(void **state)
{
	struct kvfs_store *s = *state, *t;
	struct kvfs_op ops[] = {
	    OP(.type = KVFS_OP_CREATE, .parent = ROOT, .mode = 0644, NAME("f")),
	    SETX(KVFS_INO_BASE + 1, "user.z", "last", 0),
	    SETX(KVFS_INO_BASE + 1, "user.a", "first", 0),
	    SETX(KVFS_INO_BASE + 1, "user.a", "again", KVFS_XATTR_CREATE),
	    RMX(KVFS_INO_BASE + 1, "user.z"),
	};

	assert_int_equal(store_init(&t), 0);
	for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++) {
		ops[i].time_ns = 5000 + (int64_t)i;
		ops[i].origin = 2;
		ops[i].seq = 10 + i;
		assert_int_equal(apply(s, ops[i]).err, apply(t, ops[i]).err);
	}
	assert_stores_equal(s, t);
	/* The refused CREATE retried: the same outcome, nothing changes. */
	{
		struct kvfs_apply_result r = apply(s, ops[3]);

		assert_true(r.duplicate);
	}
	store_close(t);
}

/* Out of memory at every allocation of a set, a replace and a remove: -ENOMEM from the store,
 * nothing changed, the index not consumed; then it works. */
static void test_nomem(void **state)
{
	struct kvfs_store *s = *state;
	uint64_t f = mk(s, KVFS_OP_CREATE, "f", 0644);
	struct kvfs_op ops[] = {SETX(f, "user.a", "1", 0), SETX(f, "user.b", "2", 0),
	                        SETX(f, "user.a", "3", 0), RMX(f, "user.b")};

	for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++) {
		for (long k = 0;; k++) {
			struct store_image *before = store_image_of(s), *after;
			struct kvfs_apply_result res;
			uint64_t index = store_applied_index(s) + 1;
			int rv;

			ops[i].time_ns = 9000 + (int64_t)i;
			fail_after = k;
			rv = store_apply(s, 3, index, &ops[i], &res);
			fail_after = -1;
			if (rv == 0) {
				assert_int_equal(res.err, 0);
				store_image_free(before);
				break;
			}
			assert_int_equal(rv, -ENOMEM);
			after = store_image_of(s);
			assert_store_images_equal(before, after);
			store_image_free(before);
			store_image_free(after);
		}
	}
	assert_string_equal(getx(s, f, "user.a"), "3");
	assert_null(getx(s, f, "user.b"));
}

/* op_validate(): what a leader refuses before the log. */
static void test_validate(void **state)
{
	struct kvfs_op_limits lim = {.max_value = 1u << 20};
	static uint8_t big[(64u << 10) + 1];
	const struct {
		struct kvfs_op op;
		int err;
	} cases[] = {
	    {SETX(17, "user.a", "v", 0), 0},
	    {SETX(17, "user.a", "", KVFS_XATTR_CREATE), 0},
	    {SETX(17, "user.a", "v", KVFS_XATTR_REPLACE | KVFS_OP_RULES2), 0},
	    {SETX(17, "user.a", "v", KVFS_XATTR_CREATE | KVFS_XATTR_REPLACE), -EINVAL},
	    {SETX(17, "user.a", "v", 0x4), -EINVAL},
	    {SETX(17, "user.", "v", 0), -EINVAL},
	    {SETX(17, "", "v", 0), -ERANGE},
	    {SETX(17, "security.capability", "v", 0), -EOPNOTSUPP},
	    {SETX(17, "trusted.x", "v", 0), -EOPNOTSUPP},
	    {SETX(17, "user.kvfs.lock", "v", 0), -EPERM},
	    {SETX(17, "user.kvfs.", "v", 0), -EPERM},
	    {SETX(17, "user.kvfsx", "v", 0), 0},
	    {RMX(17, "user.a"), 0},
	    {RMX(17, "user.kvfs.lock"), -EPERM},
	    {RMX(17, "system.posix_acl_access"), -EOPNOTSUPP},
	    {OP(.type = KVFS_OP_REMOVEXATTR, .ino = 17, NAME("user.a"), .flags = KVFS_XATTR_CREATE),
	     -EINVAL},
	    {OP(.type = KVFS_OP_REMOVEXATTR, .ino = 17, .name_len = 3), -EINVAL},
	    {OP(.type = KVFS_OP_SETXATTR, .ino = 17, NAME("user.a"), .data_len = 3), -EINVAL},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct kvfs_op op = cases[i].op;

		op.max_value = 1u << 20;
		if (op_validate(&op, &lim) != cases[i].err)
			fail_msg("case %zu: %d, want %d", i, op_validate(&op, &lim), cases[i].err);
	}
	{
		struct kvfs_op op = OP(.type = KVFS_OP_SETXATTR, .ino = 17, NAME("user.big"),
		                       .data = big, .data_len = sizeof(big), .max_value = 1u << 20);
		char name[257];

		assert_int_equal(op_validate(&op, &lim), -E2BIG);
		op.data_len--;
		assert_int_equal(op_validate(&op, &lim), 0);
		memset(name, 'n', sizeof(name));
		memcpy(name, "user.", 5);
		op.name = name;
		op.name_len = 256;
		assert_int_equal(op_validate(&op, &lim), -ERANGE);
	}
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
	const struct CMUnitTest tests[] = {
	    T(test_set_get_remove), T(test_refused), T(test_limits),   T(test_shared_and_freed),
	    T(test_deterministic),  T(test_nomem),   T(test_validate),
	};
#undef T

	return cmocka_run_group_tests(tests, NULL, NULL);
}
