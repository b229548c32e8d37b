/*
 * Unit tests of the store's protocol-2 operations (replica/store_apply.c): hard links (LINK,
 * UNLINK and RENAME of one of several names), RENAME_EXCHANGE, MKNOD, FALLOCATE, the rules that
 * KVFS_OP_RULES2 turns on (setgid directories, no root-relative path limit) and that an entry
 * without it keeps protocol 1's outcome, exactly-once of the new types, -ENOMEM at every
 * allocation of every new type changing nothing, and value_zero(). test_store.c covers the rest.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "kvfs/op.h"
#include "kvfs/store.h"
#include "kvfs/value.h"

#include "store_image.h"
#include "store_ops.h"

#define R2 KVFS_OP_RULES2

/*
 * Allocation failures on demand (linked with --wrap=malloc,realloc,calloc): the fail_at-th
 * allocation from now fails (0: none), and every one after it.
 */
static long fail_at;
void *__real_malloc(size_t size);
void *__real_realloc(void *p, size_t size);
void *__real_calloc(size_t n, size_t size);
void *__wrap_malloc(size_t size);
void *__wrap_realloc(void *p, size_t size);
void *__wrap_calloc(size_t n, size_t size);

static bool fail_now(void)
{
	return fail_at > 0 && --fail_at == 0 ? (fail_at = -1, true) : fail_at < 0;
}

void *__wrap_malloc(size_t size)
{
	return fail_now() ? NULL : __real_malloc(size);
}

void *__wrap_realloc(void *p, size_t size)
{
	return fail_now() ? NULL : __real_realloc(p, size);
}

void *__wrap_calloc(size_t n, size_t size)
{
	return fail_now() ? NULL : __real_calloc(n, size);
}

static uint64_t mk(struct kvfs_store *s, unsigned type, uint64_t parent, const char *name)
{
	struct kvfs_apply_result res =
	    apply(s, OP(.type = (uint8_t)type, .parent = parent, NAME(name), .mode = 0644,
	                .flags = R2, DATA("target")));

	assert_int_equal(res.err, 0);
	return res.ino;
}

static int link_(struct kvfs_store *s, uint64_t ino, uint64_t dir, const char *name)
{
	return err_of(s,
	              OP(.type = KVFS_OP_LINK, .flags = R2, .ino = ino, .parent = dir, NAME(name)));
}

/* teardown(), and no more failing allocations even when a test stopped halfway. */
static int teardown_alloc(void **state)
{
	fail_at = 0;
	return teardown(state);
}

static void test_link(void **state)
{
	struct kvfs_store *s = *state;
	uint64_t a = mk(s, KVFS_OP_MKDIR, ROOT, "a"), f = mk(s, KVFS_OP_CREATE, ROOT, "f");
	uint64_t l = mk(s, KVFS_OP_SYMLINK, ROOT, "l");
	struct kvfs_apply_result res;

	put(s, f, "data");
	res = apply(s, OP(.type = KVFS_OP_LINK, .flags = R2, .ino = f, .parent = a, NAME("g"),
	                  .time_ns = 77));
	assert_int_equal(res.err, 0);
	assert_int_equal(res.ino, f);
	assert_int_equal(res.nlink_after, 2);
	assert_ptr_equal(lookup(s, a, "g"), get(s, f));
	assert_ptr_equal(lookup(s, ROOT, "f"), get(s, f));
	assert_int_equal(get(s, f)->nlink, 2);
	assert_int_equal(get(s, f)->ctime_ns, 77);
	assert_int_not_equal(get(s, f)->mtime_ns, 77);
	assert_int_equal(get(s, a)->mtime_ns, 77);
	assert_int_equal(get(s, a)->ctime_ns, 77);
	assert_int_equal(get(s, a)->nlink, 2); /* files do not count */
	assert_int_equal(store_inode_count(s), 4);
	assert_int_equal(store_value_bytes(s), 4); /* one value, however many names */
	assert_int_equal(store_path_len(store_lookup_dentry(s, get(s, a), "g", 1)), 3);
	/* A symlink may have several names too. */
	assert_int_equal(link_(s, l, a, "l2"), 0);
	assert_int_equal(get(s, l)->nlink, 2);

	/* In link(2)'s order. */
	assert_int_equal(link_(s, 9999, a, "x"), -ENOENT);
	assert_int_equal(link_(s, f, 9999, "x"), -ENOENT);
	assert_int_equal(link_(s, f, f, "x"), -ENOTDIR);
	assert_int_equal(link_(s, f, a, "a/b"), -EINVAL);
	assert_int_equal(link_(s, f, ROOT, ".status"), -EEXIST);
	assert_int_equal(link_(s, f, ROOT, ".kvfsx"), -EACCES);
	assert_int_equal(link_(s, f, a, "g"), -EEXIST);
	assert_int_equal(link_(s, a, ROOT, "a"), -EEXIST);
	assert_int_equal(link_(s, a, ROOT, "a2"), -EPERM);
	assert_int_equal(link_(s, ROOT, ROOT, "r"), -EPERM);
	/* An unlinked inode, even pinned, is missing. */
	store_pin(s, get(s, l), 1);
	assert_int_equal(err_of(s, OP(.type = KVFS_OP_UNLINK, .parent = ROOT, NAME("l"))), 0);
	assert_int_equal(err_of(s, OP(.type = KVFS_OP_UNLINK, .parent = a, NAME("l2"))), 0);
	assert_int_equal(get(s, l)->nlink, 0);
	assert_int_equal(link_(s, l, ROOT, "back"), -ENOENT);
	store_unpin(s, get(s, l), 1);
	assert_null(store_get(s, l));
	assert_int_equal(get(s, f)->nlink, 2);
}

static void test_link_max(void **state)
{
	struct kvfs_store *s = *state;
	uint64_t d = mk(s, KVFS_OP_MKDIR, ROOT, "d"), f = mk(s, KVFS_OP_CREATE, d, "f");
	char name[16];

	for (unsigned i = 1; i < KVFS_LINK_MAX; i++) {
		snprintf(name, sizeof(name), "%u", i);
		assert_int_equal(link_(s, f, d, name), 0);
	}
	assert_int_equal(get(s, f)->nlink, KVFS_LINK_MAX);
	assert_int_equal(link_(s, f, d, "one-more"), -EMLINK);
	assert_int_equal(get(s, d)->nchildren, KVFS_LINK_MAX);
	assert_int_equal(err_of(s, OP(.type = KVFS_OP_UNLINK, .parent = d, NAME("f"))), 0);
	assert_int_equal(link_(s, f, d, "one-more"), 0);
	assert_int_equal(store_inode_count(s), 3);
}

static void test_unlink_names(void **state)
{
	struct kvfs_store *s = *state;
	uint64_t a = mk(s, KVFS_OP_MKDIR, ROOT, "a"), f = mk(s, KVFS_OP_CREATE, ROOT, "f");
	struct kvfs_inode *in = get(s, f);
	struct kvfs_apply_result res;

	put(s, f, "abc");
	assert_int_equal(link_(s, f, a, "g"), 0);
	assert_int_equal(link_(s, f, a, "h"), 0);
	res = apply(s, OP(.type = KVFS_OP_UNLINK, .parent = ROOT, NAME("f"), .time_ns = 5));
	assert_int_equal(res.err, 0);
	assert_int_equal(res.ino, f);
	assert_int_equal(res.nlink_after, 2);
	assert_ptr_equal(store_get(s, f), in);
	assert_int_equal(in->nlink, 2);
	assert_int_equal(in->ctime_ns, 5);
	assert_null(lookup(s, ROOT, "f"));
	assert_int_equal(store_inode_count(s), 3);
	assert_int_equal(store_value_bytes(s), 3);
	res = apply(s, OP(.type = KVFS_OP_UNLINK, .parent = a, NAME("h")));
	assert_int_equal(res.nlink_after, 1);
	store_pin(s, in, 1);
	res = apply(s, OP(.type = KVFS_OP_UNLINK, .parent = a, NAME("g"), .time_ns = 9));
	assert_int_equal(res.nlink_after, 0);
	assert_int_equal(in->nlink, 0);
	assert_int_equal(in->ctime_ns, 9);
	assert_value(in, "abc", 3); /* still readable while pinned */
	assert_int_equal(store_inode_count(s), 2);
	assert_int_equal(store_value_bytes(s), 0);
	store_unpin(s, in, 1);
	assert_null(store_get(s, f));
}

/* A rename gives a name a new dentry (a name lives in its dentry): in the old one's place among
 * its inode's names, whatever the lengths, the other names untouched. */
static void test_rename_alias_order(void **state)
{
	struct kvfs_store *s = *state;
	uint64_t a = mk(s, KVFS_OP_MKDIR, ROOT, "a"), f = mk(s, KVFS_OP_CREATE, ROOT, "f");
	char longname[256];
	const struct kvfs_dentry *d;
	struct kvfs_inode *in;

	memset(longname, 'n', 255);
	longname[255] = '\0';
	assert_int_equal(link_(s, f, a, "g"), 0);
	assert_int_equal(link_(s, f, ROOT, "h"), 0);
	assert_int_equal(apply(s, OP(.type = KVFS_OP_RENAME, .flags = R2, .parent = a, NAME("g"),
	                             .newparent = a, NEWNAME(longname)))
	                     .err,
	                 0);
	in = get(s, f);
	assert_int_equal(in->nlink, 3);
	d = in->aliases; /* most recent first: h, then g (renamed), then f */
	assert_string_equal(d->name, "h");
	d = d->alias_next;
	assert_string_equal(d->name, longname);
	assert_int_equal(d->name_len, 255);
	assert_ptr_equal(d->dir, get(s, a));
	assert_ptr_equal(lookup(s, a, longname), in);
	assert_null(lookup(s, a, "g"));
	d = d->alias_next;
	assert_string_equal(d->name, "f");
	assert_null(d->alias_next);
	/* And back to a short name, in another directory. */
	assert_int_equal(apply(s, OP(.type = KVFS_OP_RENAME, .flags = R2, .parent = a,
	                             NAME(longname), .newparent = ROOT, NEWNAME("g")))
	                     .err,
	                 0);
	assert_string_equal(in->aliases->alias_next->name, "g");
	assert_ptr_equal(in->aliases->alias_next->dir, get(s, ROOT));
	assert_int_equal(get(s, a)->nchildren, 0);
	assert_ptr_equal(lookup(s, ROOT, "g"), in);
}

static void test_rename_names(void **state)
{
	struct kvfs_store *s = *state;
	uint64_t a = mk(s, KVFS_OP_MKDIR, ROOT, "a"), f = mk(s, KVFS_OP_CREATE, ROOT, "f");
	uint64_t g = mk(s, KVFS_OP_CREATE, ROOT, "g");
	struct store_image *before;
	struct kvfs_apply_result res;

	assert_int_equal(link_(s, f, a, "f2"), 0);
	/* Two names of one inode: nothing happens, not even to times. */
	before = store_image_of(s);
	res = apply(s, OP(.type = KVFS_OP_RENAME, .flags = R2, .parent = ROOT, NAME("f"),
	                  .newparent = a, NEWNAME("f2")));
	assert_int_equal(res.err, 0);
	assert_int_equal(res.ino, f);
	assert_int_equal(res.replaced_ino, 0);
	{
		struct store_image *after = store_image_of(s);

		before->index = after->index;
		before->epoch = after->epoch;
		assert_store_images_equal(before, after);
		store_image_free(after);
	}
	store_image_free(before);
	assert_int_equal(apply(s, OP(.type = KVFS_OP_RENAME, .flags = R2 | KVFS_RENAME_NOREPLACE,
	                             .parent = ROOT, NAME("f"), .newparent = a, NEWNAME("f2")))
	                     .err,
	                 0);

	/* Replacing one of two names of g: g keeps the other. */
	assert_int_equal(link_(s, g, a, "g2"), 0);
	res = apply(s, OP(.type = KVFS_OP_RENAME, .flags = R2, .parent = ROOT, NAME("f"),
	                  .newparent = a, NEWNAME("g2"), .time_ns = 42));
	assert_int_equal(res.err, 0);
	assert_int_equal(res.ino, f);
	assert_int_equal(res.nlink_after, 2);
	assert_int_equal(res.replaced_ino, g);
	assert_int_equal(res.replaced_nlink_after, 1);
	assert_int_equal(get(s, g)->nlink, 1);
	assert_int_equal(get(s, g)->ctime_ns, 42);
	assert_ptr_equal(lookup(s, a, "g2"), get(s, f));
	assert_ptr_equal(lookup(s, ROOT, "g"), get(s, g));
	assert_int_equal(store_inode_count(s), 4);
	/* ... and the last one goes with the inode. */
	res = apply(s, OP(.type = KVFS_OP_RENAME, .flags = R2, .parent = a, NAME("f2"),
	                  .newparent = ROOT, NEWNAME("g")));
	assert_int_equal(res.replaced_ino, g);
	assert_int_equal(res.replaced_nlink_after, 0);
	assert_null(store_get(s, g));
	assert_int_equal(get(s, f)->nlink, 2);
	assert_int_equal(store_inode_count(s), 3);
}

static struct kvfs_apply_result xchg(struct kvfs_store *s, uint64_t d1, const char *n1, uint64_t d2,
                                     const char *n2)
{
	return apply(s, OP(.type = KVFS_OP_RENAME, .flags = R2 | KVFS_RENAME_EXCHANGE, .parent = d1,
	                   NAME(n1), .newparent = d2, NEWNAME(n2), .time_ns = 500));
}

static void test_exchange(void **state)
{
	struct kvfs_store *s = *state;
	uint64_t a = mk(s, KVFS_OP_MKDIR, ROOT, "a"), b = mk(s, KVFS_OP_MKDIR, ROOT, "b");
	uint64_t f = mk(s, KVFS_OP_CREATE, a, "f"), d = mk(s, KVFS_OP_MKDIR, b, "d");
	uint64_t sub = mk(s, KVFS_OP_MKDIR, d, "sub"), z = mk(s, KVFS_OP_CREATE, a, "z");
	struct kvfs_apply_result res;

	/* A file and a directory across parents: the parents' nlink follow the directory. */
	assert_int_equal(get(s, a)->nlink, 2);
	assert_int_equal(get(s, b)->nlink, 3);
	res = xchg(s, a, "f", b, "d");
	assert_int_equal(res.err, 0);
	assert_int_equal(res.ino, f);
	assert_int_equal(res.ino2, d);
	assert_int_equal(res.replaced_ino, 0);
	assert_ptr_equal(lookup(s, a, "f"), get(s, d));
	assert_ptr_equal(lookup(s, b, "d"), get(s, f));
	assert_int_equal(get(s, a)->nlink, 3);
	assert_int_equal(get(s, b)->nlink, 2);
	assert_ptr_equal(store_parent(get(s, d)), get(s, a));
	assert_int_equal(store_path_len(store_lookup_dentry(s, get(s, d), "sub", 3)), 7);
	assert_int_equal(get(s, a)->ctime_ns, 500);
	assert_int_equal(get(s, b)->ctime_ns, 500);
	assert_int_equal(get(s, f)->ctime_ns, 500);
	assert_int_equal(get(s, d)->ctime_ns, 500);
	assert_int_equal(get(s, a)->mtime_ns, 500);
	assert_int_equal(get(s, b)->mtime_ns, 500);
	assert_int_not_equal(get(s, f)->mtime_ns, 500);
	/* Entries keep their places: "f" still comes before "z" in a. */
	assert_ptr_equal(store_child_first(get(s, a))->in, get(s, d));
	assert_ptr_equal(store_child_next(store_child_first(get(s, a)))->in, get(s, z));
	/* And back, within one directory, two files. */
	assert_int_equal(xchg(s, a, "f", b, "d").err, 0);
	assert_int_equal(xchg(s, a, "f", a, "z").err, 0);
	assert_ptr_equal(lookup(s, a, "f"), get(s, z));

	/* Errors. */
	assert_int_equal(xchg(s, a, "f", b, "nope").err, -ENOENT);
	assert_int_equal(xchg(s, a, "nope", b, "d").err, -ENOENT);
	assert_int_equal(xchg(s, a, "f", 9999, "d").err, -ENOENT);
	assert_int_equal(xchg(s, a, "f", z, "d").err, -ENOTDIR);
	assert_int_equal(err_of(s, OP(.type = KVFS_OP_RENAME,
	                              .flags = R2 | KVFS_RENAME_EXCHANGE | KVFS_RENAME_NOREPLACE,
	                              .parent = a, NAME("f"), .newparent = b, NEWNAME("d"))),
	                 -EINVAL);
	/* A directory into its own subtree, either way round. */
	assert_int_equal(xchg(s, b, "d", d, "sub").err, -EINVAL);
	assert_int_equal(xchg(s, d, "sub", b, "d").err, -EINVAL);
	assert_int_equal(xchg(s, ROOT, "b", d, "sub").err, -EINVAL);
	assert_ptr_equal(lookup(s, d, "sub"), get(s, sub));
	/* Two names of one inode, or one name twice: nothing changes. */
	assert_int_equal(link_(s, f, b, "f2"), 0);
	res = xchg(s, a, "z", b, "f2");
	assert_int_equal(res.err, 0);
	assert_int_equal(res.ino, f);
	assert_int_equal(res.ino2, f);
	assert_int_equal(xchg(s, b, "d", b, "d").err, 0);
	/* Two directories in different parents: parents' nlink unchanged. */
	assert_int_equal(xchg(s, ROOT, "a", b, "d").err, 0);
	assert_int_equal(get(s, ROOT)->nlink, 4);
	assert_int_equal(get(s, b)->nlink, 3);
	assert_ptr_equal(store_parent(get(s, a)), get(s, b));
	assert_ptr_equal(store_parent(get(s, d)), get(s, ROOT));
	/* A file with two names swapped with another: both names stay its. */
	assert_int_equal(xchg(s, b, "f2", b, "d").err, 0);
	assert_int_equal(get(s, f)->nlink, 2);
	assert_ptr_equal(lookup(s, b, "d"), get(s, f));
	assert_ptr_equal(lookup(s, b, "f2"), get(s, a));
	assert_ptr_equal(lookup(s, a, "z"), get(s, f));
}

static void test_mknod(void **state)
{
	struct kvfs_store *s = *state;
	static const uint32_t types[] = {S_IFIFO, S_IFSOCK, S_IFCHR, S_IFBLK};
	static const uint32_t bad[] = {S_IFREG, S_IFDIR, S_IFLNK, 0, 0170000};
	uint64_t d = mk(s, KVFS_OP_MKDIR, ROOT, "d");
	char name[8];

	for (unsigned i = 0; i < 4; i++) {
		uint32_t rdev = types[i] == S_IFCHR || types[i] == S_IFBLK ? 0x12345 + i : 0;
		struct kvfs_apply_result res;
		struct kvfs_inode *in;

		snprintf(name, sizeof(name), "n%u", i);
		res = apply(s, OP(.type = KVFS_OP_MKNOD, .flags = R2, .parent = d, NAME(name),
		                  .mode = types[i] | 04751, .uid = 7, .gid = 8, .rdev = rdev,
		                  .time_ns = 900 + i));
		assert_int_equal(res.err, 0);
		in = get(s, res.ino);
		assert_ptr_equal(lookup(s, d, name), in);
		assert_int_equal(in->mode, types[i] | 04751);
		assert_int_equal(in->rdev, rdev);
		assert_int_equal(in->uid, 7);
		assert_int_equal(in->gid, 8);
		assert_int_equal(in->nlink, 1);
		assert_null(in->value);
		assert_int_equal(in->atime_ns, 900 + i);
		assert_int_equal(get(s, d)->mtime_ns, 900 + i);
		/* Not a file: no writes, no size. */
		assert_int_equal(err_of(s, OP(.type = KVFS_OP_PUT, .ino = res.ino, DATA("x"))),
		                 -EINVAL);
		assert_int_equal(err_of(s, OP(.type = KVFS_OP_SETATTR, .ino = res.ino,
		                              .flags = KVFS_SET_SIZE, .size = 1)),
		                 -EINVAL);
		assert_int_equal(err_of(s, OP(.type = KVFS_OP_CREATE, .parent = d, NAME(name))),
		                 -EEXIST);
	}
	assert_int_equal(store_inode_count(s), 6);
	for (unsigned i = 0; i < 5; i++)
		assert_int_equal(err_of(s, OP(.type = KVFS_OP_MKNOD, .flags = R2, .parent = d,
		                              NAME("x"), .mode = bad[i] | 0644)),
		                 -EINVAL);
	assert_int_equal(err_of(s, OP(.type = KVFS_OP_MKNOD, .parent = d, NAME("x"),
	                              .mode = S_IFIFO | 0644, .rdev = 1)),
	                 -EINVAL);
	assert_int_equal(err_of(s, OP(.type = KVFS_OP_MKNOD, .parent = d, NAME("x"),
	                              .mode = S_IFSOCK | 0644, .rdev = 1)),
	                 -EINVAL);
	assert_int_equal(
	    err_of(s, OP(.type = KVFS_OP_MKNOD, .parent = d, NAME("n0"), .mode = S_IFIFO | 0644)),
	    -EEXIST);
	assert_int_equal(
	    err_of(s, OP(.type = KVFS_OP_MKNOD, .parent = 9999, NAME("x"), .mode = S_IFIFO | 0644)),
	    -ENOENT);
	assert_int_equal(err_of(s, OP(.type = KVFS_OP_MKNOD, .parent = ROOT, NAME(".status"),
	                              .mode = S_IFIFO | 0644)),
	                 -EEXIST);
	assert_null(lookup(s, d, "x"));
	assert_int_equal(store_inode_count(s), 6);
}

/* One FALLOCATE on a fresh file holding `init` (n bytes): its outcome. */
static int falloc(struct kvfs_store *s, uint64_t f, uint32_t flags, uint64_t off, uint64_t len,
                  uint64_t max)
{
	return err_of(s, OP(.type = KVFS_OP_FALLOCATE, .flags = R2 | flags, .ino = f, .offset = off,
	                    .length = len, .max_value = max, .time_ns = 4242));
}

static void test_fallocate(void **state)
{
	struct kvfs_store *s = *state;
	uint64_t f = mk(s, KVFS_OP_CREATE, ROOT, "f"), d = mk(s, KVFS_OP_MKDIR, ROOT, "d");
	uint64_t l = mk(s, KVFS_OP_SYMLINK, ROOT, "l");
	uint64_t p =
	    apply(s, OP(.type = KVFS_OP_MKNOD, .parent = ROOT, NAME("p"), .mode = S_IFIFO | 0600))
	        .ino;
	struct kvfs_inode *in = get(s, f);
	struct kvfs_value *held;

	/* Mode 0: grows with zeros; within the size changes no byte but the times. */
	put(s, f, "abcdef");
	assert_int_equal(falloc(s, f, 0, 4, 6, 0), 0);
	assert_value(in, "abcdef\0\0\0\0", 10);
	assert_int_equal(in->mtime_ns, 4242);
	assert_int_equal(in->ctime_ns, 4242);
	assert_int_equal(store_value_bytes(s), 10);
	in->mtime_ns = in->ctime_ns = 0;
	assert_int_equal(falloc(s, f, 0, 0, 3, 0), 0);
	assert_int_equal(value_size(in->value), 10);
	assert_int_equal(in->mtime_ns, 4242);
	/* KEEP_SIZE: no size change, even far out. */
	assert_int_equal(falloc(s, f, KVFS_FALLOC_KEEP_SIZE, 100, 1000, 0), 0);
	assert_int_equal(value_size(in->value), 10);
	/* PUNCH_HOLE: zeroes within the size only; the value a snapshot holds stays. */
	put(s, f, "abcdefgh");
	held = value_ref(in->value);
	assert_int_equal(falloc(s, f, KVFS_FALLOC_PUNCH_HOLE | KVFS_FALLOC_KEEP_SIZE, 2, 100, 0),
	                 0);
	assert_value(in, "ab\0\0\0\0\0\0", 8);
	assert_memory_equal(held->data, "abcdefgh", 8);
	value_unref(held);
	put(s, f, "abcdefgh");
	assert_int_equal(falloc(s, f, KVFS_FALLOC_PUNCH_HOLE | KVFS_FALLOC_KEEP_SIZE, 1, 2, 0), 0);
	assert_value(in, "a\0\0defgh", 8);
	assert_int_equal(falloc(s, f, KVFS_FALLOC_PUNCH_HOLE | KVFS_FALLOC_KEEP_SIZE, 50, 2, 0), 0);
	assert_int_equal(value_size(in->value), 8);
	/* ZERO_RANGE: zeroes and grows, unless KEEP_SIZE. */
	put(s, f, "abcdefgh");
	assert_int_equal(falloc(s, f, KVFS_FALLOC_ZERO_RANGE, 6, 4, 0), 0);
	assert_value(in, "abcdef\0\0\0\0", 10);
	put(s, f, "abcdefgh");
	assert_int_equal(falloc(s, f, KVFS_FALLOC_ZERO_RANGE | KVFS_FALLOC_KEEP_SIZE, 6, 4, 0), 0);
	assert_value(in, "abcdef\0\0", 8);
	assert_int_equal(store_value_bytes(s), 8); /* symlink targets do not count */
	/* An empty file. */
	put(s, f, "");
	assert_int_equal(falloc(s, f, KVFS_FALLOC_PUNCH_HOLE | KVFS_FALLOC_KEEP_SIZE, 0, 5, 0), 0);
	assert_null(in->value);
	assert_int_equal(falloc(s, f, 0, 0, 3, 0), 0);
	assert_value(in, "\0\0\0", 3);

	/* Errors, nothing changed. */
	in->mtime_ns = 1;
	assert_int_equal(falloc(s, 9999, 0, 0, 1, 0), -ENOENT);
	assert_int_equal(falloc(s, d, 0, 0, 1, 0), -EISDIR);
	assert_int_equal(falloc(s, l, 0, 0, 1, 0), -ENODEV);
	assert_int_equal(falloc(s, p, 0, 0, 1, 0), -ENODEV);
	assert_int_equal(falloc(s, f, 0, 0, 0, 0), -EINVAL);
	assert_int_equal(falloc(s, f, KVFS_FALLOC_PUNCH_HOLE, 0, 1, 0), -EINVAL);
	assert_int_equal(
	    falloc(s, f, KVFS_FALLOC_PUNCH_HOLE | KVFS_FALLOC_ZERO_RANGE | KVFS_FALLOC_KEEP_SIZE, 0,
	           1, 0),
	    -EINVAL);
	assert_int_equal(falloc(s, f, 0x8, 0, 1, 0), -EINVAL);
	assert_int_equal(falloc(s, f, 0, UINT64_MAX, 2, 0), -EFBIG);
	assert_int_equal(falloc(s, f, KVFS_FALLOC_KEEP_SIZE, (uint64_t)INT64_MAX, 1, 0), -EFBIG);
	assert_int_equal(falloc(s, f, 0, 10, 7, 16), -EFBIG);
	assert_int_equal(falloc(s, f, KVFS_FALLOC_ZERO_RANGE, 0, KVFS_DATA_MAX + 1ull, 0), -EFBIG);
	assert_value(in, "\0\0\0", 3);
	assert_int_equal(in->mtime_ns, 1);
	/* Over the limit is fine when it does not grow. */
	assert_int_equal(falloc(s, f, KVFS_FALLOC_KEEP_SIZE, 10, 7, 16), 0);
	assert_int_equal(falloc(s, f, 0, 0, 3, 2), 0);
	assert_int_equal(falloc(s, f, 0, 10, 6, 16), 0);
	assert_int_equal(value_size(in->value), 16);
	assert_int_equal(store_value_bytes(s), 16);
}

/* A directory with the setgid bit hands down its group, and the bit to directories, under
 * RULES2 only. */
static void test_setgid_dir(void **state)
{
	struct kvfs_store *s = *state;
	uint64_t g = apply(s, OP(.type = KVFS_OP_MKDIR, .parent = ROOT, NAME("g"), .mode = 02775,
	                         .uid = 1, .gid = 50))
	                 .ino;
	static const uint8_t types[] = {KVFS_OP_CREATE, KVFS_OP_MKDIR, KVFS_OP_SYMLINK,
	                                KVFS_OP_MKNOD};

	for (unsigned rules = 0; rules < 2; rules++) {
		for (unsigned i = 0; i < 4; i++) {
			char name[8];
			struct kvfs_apply_result res;
			struct kvfs_inode *in;

			snprintf(name, sizeof(name), "%u%u", rules, i);
			res = apply(s, OP(.type = types[i], .flags = rules ? R2 : 0, .parent = g,
			                  NAME(name), .mode = (i == 3 ? S_IFIFO : 0) | 0755,
			                  .uid = 2, .gid = 60, DATA("t")));
			assert_int_equal(res.err, 0);
			in = get(s, res.ino);
			assert_int_equal(in->uid, 2);
			assert_int_equal(in->gid, rules ? 50 : 60);
			assert_int_equal(in->mode & S_ISGID,
			                 rules && types[i] == KVFS_OP_MKDIR ? S_ISGID : 0);
		}
	}
	/* Outside a setgid directory, the op's group. */
	assert_int_equal(get(s, apply(s, OP(.type = KVFS_OP_CREATE, .flags = R2, .parent = ROOT,
	                                    NAME("x"), .gid = 60))
	                            .ino)
	                     ->gid,
	                 60);
}

/* The root-relative path limit: protocol 1's outcome without the bit, none with it. */
static void test_path_limit_rules(void **state)
{
	struct kvfs_store *s = *state;
	char n255[256];
	uint64_t dir = ROOT, f = mk(s, KVFS_OP_CREATE, ROOT, "f");
	struct kvfs_apply_result res;

	memset(n255, 'a', 255);
	n255[255] = '\0';
	for (int i = 0; i < 16; i++)
		dir = apply(s, OP(.type = KVFS_OP_MKDIR, .parent = dir, NAME(n255))).ino;
	assert_int_equal(err_of(s, OP(.type = KVFS_OP_MKDIR, .parent = dir, NAME("x"))),
	                 -ENAMETOOLONG);
	assert_int_equal(err_of(s, OP(.type = KVFS_OP_RENAME, .parent = ROOT, NAME("f"),
	                              .newparent = dir, NEWNAME("x"))),
	                 -ENAMETOOLONG);
	for (int i = 0; i < 20; i++) {
		res = apply(s, OP(.type = KVFS_OP_MKDIR, .flags = R2, .parent = dir, NAME(n255)));
		assert_int_equal(res.err, 0);
		dir = res.ino;
	}
	assert_int_equal(store_path_len(get(s, dir)->aliases), 36 * 255 + 35);
	assert_int_equal(err_of(s, OP(.type = KVFS_OP_RENAME, .flags = R2, .parent = ROOT,
	                              NAME("f"), .newparent = dir, NEWNAME("x"))),
	                 0);
	assert_int_equal(link_(s, f, dir, "y"), 0);
	assert_int_equal(err_of(s, OP(.type = KVFS_OP_MKNOD, .flags = R2, .parent = dir, NAME("z"),
	                              .mode = S_IFSOCK | 0600)),
	                 0);
	/* Without the bit, still refused there. */
	assert_int_equal(err_of(s, OP(.type = KVFS_OP_CREATE, .parent = dir, NAME("w"))),
	                 -ENAMETOOLONG);
	assert_int_equal(err_of(s, OP(.type = KVFS_OP_LINK, .ino = f, .parent = dir, NAME("w"))),
	                 -ENAMETOOLONG);
}

/* SETATTR's times, the same in both protocols: ctime always, mtime with a size. */
static void test_setattr_times(void **state)
{
	struct kvfs_store *s = *state;
	uint64_t f = mk(s, KVFS_OP_CREATE, ROOT, "f");
	struct kvfs_inode *in = get(s, f);

	put(s, f, "abc");
	for (int pass = 0; pass < 2; pass++) {
		uint32_t rules = pass ? R2 : 0;

		in->mtime_ns = in->ctime_ns = in->atime_ns = 1;
		assert_int_equal(
		    err_of(s, OP(.type = KVFS_OP_SETATTR, .flags = rules, .ino = f, .time_ns = 70)),
		    0);
		assert_int_equal(in->ctime_ns, 70);
		assert_int_equal(in->mtime_ns, 1);
		assert_int_equal(in->atime_ns, 1);
		assert_int_equal(
		    err_of(s, OP(.type = KVFS_OP_SETATTR, .flags = rules | KVFS_SET_SIZE, .ino = f,
		                 .size = 3, .time_ns = 80)),
		    0);
		assert_int_equal(in->ctime_ns, 80);
		assert_int_equal(in->mtime_ns, 80);
		assert_int_equal(value_size(in->value), 3);
	}
}

/* A retried LINK, MKNOD, FALLOCATE or EXCHANGE takes effect once and answers the same. */
static void test_exactly_once(void **state)
{
	struct kvfs_store *s = *state;
	uint64_t a = mk(s, KVFS_OP_MKDIR, ROOT, "a"), f = mk(s, KVFS_OP_CREATE, ROOT, "f");
	uint64_t g = mk(s, KVFS_OP_CREATE, ROOT, "g");
	struct kvfs_op ops[] = {
	    OP(.type = KVFS_OP_LINK, .flags = R2, .ino = f, .parent = a, NAME("l")),
	    OP(.type = KVFS_OP_MKNOD, .flags = R2, .parent = a, NAME("n"), .mode = S_IFIFO | 0600),
	    OP(.type = KVFS_OP_FALLOCATE, .flags = R2 | KVFS_FALLOC_ZERO_RANGE, .ino = g,
	       .offset = 0, .length = 5),
	    OP(.type = KVFS_OP_RENAME, .flags = R2 | KVFS_RENAME_EXCHANGE, .parent = ROOT,
	       NAME("f"), .newparent = ROOT, NEWNAME("g")),
	    OP(.type = KVFS_OP_LINK, .flags = R2, .ino = a, .parent = a, NAME("bad")),
	};

	put(s, g, "abc");
	for (unsigned i = 0; i < 5; i++) {
		struct kvfs_apply_result first, again;
		struct store_image *im;

		ops[i].origin = 7;
		ops[i].seq = 100 + i;
		ops[i].time_ns = 10 + i;
		first = apply(s, ops[i]);
		assert_false(first.duplicate);
		im = store_image_of(s);
		ops[i].time_ns = 999;
		again = apply(s, ops[i]);
		assert_true(again.duplicate);
		assert_int_equal(again.err, first.err);
		assert_int_equal(again.ino, first.ino);
		{
			struct store_image *now = store_image_of(s);

			im->index = now->index;
			assert_store_images_equal(im, now);
			store_image_free(now);
		}
		store_image_free(im);
	}
	assert_int_equal(get(s, f)->nlink, 2);
	assert_value(get(s, g), "\0\0\0\0\0", 5);
	assert_ptr_equal(lookup(s, ROOT, "f"), get(s, g));
	assert_int_equal(apply(s, ops[4]).err, -EPERM); /* same seq: same answer */
}

/*
 * Every allocation of every new kind of operation failing in turn: -ENOMEM, nothing changed
 * (the image, the index), then the operation succeeds once memory is back.
 */
static void test_enomem(void **state)
{
	struct kvfs_store *s = *state;
	uint64_t a = mk(s, KVFS_OP_MKDIR, ROOT, "a"), f = mk(s, KVFS_OP_CREATE, ROOT, "f");
	uint64_t g = mk(s, KVFS_OP_CREATE, ROOT, "g");
	struct kvfs_op ops[] = {
	    OP(.type = KVFS_OP_LINK, .flags = R2, .ino = f, .parent = a, NAME("l")),
	    OP(.type = KVFS_OP_MKNOD, .flags = R2, .parent = a, NAME("n"), .mode = S_IFCHR | 0600,
	       .rdev = 3),
	    OP(.type = KVFS_OP_FALLOCATE, .flags = R2 | KVFS_FALLOC_ZERO_RANGE, .ino = g,
	       .offset = 1, .length = 500),
	    OP(.type = KVFS_OP_FALLOCATE,
	       .flags = R2 | KVFS_FALLOC_PUNCH_HOLE | KVFS_FALLOC_KEEP_SIZE, .ino = g, .offset = 0,
	       .length = 2),
	    OP(.type = KVFS_OP_RENAME, .flags = R2, .parent = a, NAME("l"), .newparent = ROOT,
	       NEWNAME("g")),
	    OP(.type = KVFS_OP_RENAME, .flags = R2 | KVFS_RENAME_EXCHANGE, .parent = ROOT,
	       NAME("f"), .newparent = ROOT, NEWNAME("a")),
	};

	put(s, g, "abc");
	for (unsigned i = 0; i < sizeof(ops) / sizeof(ops[0]); i++) {
		/* A snapshot holds the value: zeroing must copy. */
		struct kvfs_inode *gin = store_get(s, g);
		struct kvfs_value *held = gin ? value_ref(gin->value) : NULL;
		struct kvfs_apply_result res;
		uint64_t index = store_applied_index(s) + 1;
		long k = 1;
		int rv;

		ops[i].origin = 9;
		ops[i].seq = 1 + i;
		ops[i].time_ns = 5000 + i;
		for (;; k++) {
			struct store_image *before = store_image_of(s), *after;

			fail_at = k;
			rv = store_apply(s, 1, index, &ops[i], &res);
			fail_at = 0;
			if (rv == 0) {
				store_image_free(before);
				break;
			}
			assert_int_equal(rv, -ENOMEM);
			assert_int_equal(store_applied_index(s), index - 1);
			after = store_image_of(s);
			assert_store_images_equal(before, after);
			store_image_free(before);
			store_image_free(after);
		}
		assert_int_equal(res.err, 0);
		assert_true(k > 1 || i == 5); /* each allocates, but an exchange */
		value_unref(held);
	}
	assert_int_equal(get(s, f)->nlink, 2);
	assert_ptr_equal(lookup(s, ROOT, "a"), get(s, f));
}

static void test_value_zero(void **state)
{
	struct kvfs_value *v = value_new("abcdef", 6), *w, *held;

	(void)state;
	w = v;
	assert_int_equal(value_zero(&v, 1, 2), 0);
	assert_ptr_equal(v, w); /* sole owner: in place */
	assert_memory_equal(v->data, "a\0\0def", 6);
	assert_int_equal(value_zero(&v, 4, 100), 0);
	assert_memory_equal(v->data, "a\0\0d\0\0", 6);
	assert_int_equal(value_size(v), 6);
	held = value_ref(v);
	assert_int_equal(value_zero(&v, 6, 1), 0); /* past the end: nothing, no copy */
	assert_ptr_equal(v, held);
	assert_int_equal(value_zero(&v, 0, 1), 0);
	assert_ptr_not_equal(v, held); /* shared: a copy */
	assert_int_equal(held->refs, 1);
	assert_memory_equal(held->data, "a\0\0d\0\0", 6);
	assert_memory_equal(v->data, "\0\0\0d\0\0", 6);
	value_unref(held);
	assert_int_equal(value_zero(&v, 0, 0), 0);
	value_unref(v);
	v = NULL;
	assert_int_equal(value_zero(&v, 0, 10), 0);
	assert_null(v);
}

/* store_foreach() visits every name; `first` marks one per inode, the walk's first. */
struct seen {
	uint64_t ino[16];
	bool first[16];
	size_t n;
};

static int see(void *arg, const struct kvfs_dentry *d, bool first)
{
	struct seen *w = arg;

	assert_true(w->n < 16);
	w->ino[w->n] = d->in->ino;
	w->first[w->n++] = first;
	return 0;
}

static void test_foreach_names(void **state)
{
	struct kvfs_store *s = *state;
	uint64_t a = mk(s, KVFS_OP_MKDIR, ROOT, "a"), f = mk(s, KVFS_OP_CREATE, ROOT, "f");
	uint64_t want[] = {ROOT, a, f, f, f};
	bool first[] = {true, true, true, false, false};

	assert_int_equal(link_(s, f, a, "g"), 0);
	assert_int_equal(link_(s, f, ROOT, "h"), 0);
	for (int pass = 0; pass < 2; pass++) {
		struct seen w = {.n = 0};

		assert_int_equal(store_foreach(s, see, &w), 0);
		assert_int_equal(w.n, 5);
		for (size_t i = 0; i < 5; i++) {
			assert_int_equal(w.ino[i], want[i]);
			assert_int_equal(w.first[i], first[i]);
		}
	}
	assert_ptr_equal(store_parent(get(s, ROOT)), get(s, ROOT));
	assert_ptr_equal(store_parent(get(s, a)), get(s, ROOT));
	assert_null(store_parent(get(s, f)));
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown_alloc)
	const struct CMUnitTest tests[] = {
	    T(test_link),          T(test_link_max),      T(test_unlink_names),
	    T(test_rename_names),  T(test_exchange),      T(test_mknod),
	    T(test_fallocate),     T(test_setgid_dir),    T(test_path_limit_rules),
	    T(test_setattr_times), T(test_exactly_once),  T(test_enomem),
	    T(test_value_zero),    T(test_foreach_names), T(test_rename_alias_order),
	};
#undef T

	return cmocka_run_group_tests(tests, NULL, NULL);
}
