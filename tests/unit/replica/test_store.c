/*
 * Unit tests of the store (replica/store.c) and of values (replica/value.c): every outcome of
 * every operation type, nlink and size bookkeeping, pins of unlinked inodes, exactly-once
 * sessions, and determinism: a few thousand seeded random operations applied to two stores (one
 * of them with random pins) give the same outcomes and the same trees. Run under ASan to prove
 * that nothing leaks.
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
#include "../../xorshift.h"

static uint64_t mk(struct kvfs_store *s, unsigned type, uint64_t parent, const char *name)
{
	struct kvfs_apply_result res = apply(s, OP(.type = (uint8_t)type, .parent = parent,
	                                           NAME(name), .mode = 0644, DATA("target")));

	assert_int_equal(res.err, 0);
	assert_int_not_equal(res.ino, 0);
	return res.ino;
}

static uint64_t mkfile(struct kvfs_store *s, uint64_t parent, const char *name)
{
	return mk(s, KVFS_OP_CREATE, parent, name);
}

static uint64_t mkdir_(struct kvfs_store *s, uint64_t parent, const char *name)
{
	return mk(s, KVFS_OP_MKDIR, parent, name);
}

/* The (first) name of a linked inode, its directory and the name's text. */
static const struct kvfs_dentry *dent(const struct kvfs_inode *in)
{
	assert_non_null(in->aliases);
	return in->aliases;
}

static struct kvfs_inode *parent_of(const struct kvfs_inode *in)
{
	return in->aliases ? in->aliases->dir : NULL;
}

static const char *name_of(const struct kvfs_inode *in)
{
	return dent(in)->name;
}

static void test_init_root(void **state)
{
	struct kvfs_store *s = *state;
	struct kvfs_inode *root = get(s, ROOT);

	assert_int_equal(root->ino, ROOT);
	assert_int_equal(root->mode, S_IFDIR | 0755);
	assert_int_equal(root->nlink, 2);
	assert_int_equal(root->atime_ns, 0);
	assert_int_equal(root->mtime_ns, 0);
	assert_int_equal(root->ctime_ns, 0);
	assert_string_equal(name_of(root), "");
	assert_null(parent_of(root));
	assert_null(store_child_first(root));
	assert_int_equal(store_path_len(dent(root)), 0);
	assert_int_equal(store_inode_count(s), 1);
	assert_int_equal(store_value_bytes(s), 0);
	assert_int_equal(store_applied_index(s), 0);
	assert_int_equal(store_applied_epoch(s), 0);
	assert_null(store_get(s, 2));
	assert_null(store_get(s, KVFS_INO_BASE));
}

static void test_apply_index(void **state)
{
	struct kvfs_store *s = *state;
	struct kvfs_op op = OP(.type = KVFS_OP_MKDIR, .parent = ROOT, NAME("d"), .time_ns = 5);
	struct kvfs_apply_result res;

	assert_int_equal(store_apply(s, 1, 0, &op, &res), -EINVAL);
	assert_int_equal(store_apply(s, 1, 2, &op, &res), -EINVAL);
	assert_int_equal(store_applied_index(s), 0);
	assert_null(lookup(s, ROOT, "d"));
	assert_int_equal(store_inode_count(s), 1);

	assert_int_equal(store_apply(s, 4, 1, &op, &res), 0);
	assert_int_equal(res.err, 0);
	assert_int_equal(res.ino, KVFS_INO_BASE + 1);
	assert_int_equal(store_applied_index(s), 1);
	assert_int_equal(store_applied_epoch(s), 4);
	assert_int_equal(store_apply(s, 4, 1, &op, &res), -EINVAL);

	/* A failed operation still consumes its index. */
	assert_int_equal(store_apply(s, 5, 2, &op, &res), 0);
	assert_int_equal(res.err, -EEXIST);
	assert_int_equal(res.ino, 0);
	assert_int_equal(store_applied_index(s), 2);
	assert_int_equal(store_applied_epoch(s), 5);
}

static void test_noop_and_unknown(void **state)
{
	struct kvfs_store *s = *state;
	struct kvfs_apply_result res = apply(s, OP(.type = KVFS_OP_NOOP));

	assert_int_equal(res.err, 0);
	assert_int_equal(res.ino, 0);
	assert_false(res.duplicate);
	assert_int_equal(err_of(s, OP(.type = 77)), -EINVAL);
	assert_int_equal(store_applied_index(s), 2);
	assert_int_equal(store_inode_count(s), 1);
}

static void test_create(void **state)
{
	struct kvfs_store *s = *state;
	struct kvfs_apply_result res;
	struct kvfs_inode *in, *root = get(s, ROOT);
	uint64_t d, ino;
	int64_t t;

	apply(s, OP(.type = KVFS_OP_NOOP));
	res = apply(s, OP(.type = KVFS_OP_CREATE, .parent = ROOT, NAME("f"), .mode = 0177777,
	                  .uid = 10, .gid = 20, .time_ns = 777));
	assert_int_equal(res.err, 0);
	assert_int_equal(res.ino, KVFS_INO_BASE + 2);
	in = get(s, res.ino);
	assert_ptr_equal(lookup(s, ROOT, "f"), in);
	assert_int_equal(in->mode, S_IFREG | 07777);
	assert_int_equal(in->uid, 10);
	assert_int_equal(in->gid, 20);
	assert_int_equal(in->nlink, 1);
	assert_int_equal(in->atime_ns, 777);
	assert_int_equal(in->mtime_ns, 777);
	assert_int_equal(in->ctime_ns, 777);
	assert_int_equal(value_size(in->value), 0);
	assert_string_equal(name_of(in), "f");
	assert_ptr_equal(parent_of(in), root);
	assert_int_equal(root->mtime_ns, 777);
	assert_int_equal(root->ctime_ns, 777);
	assert_int_equal(root->nlink, 2);
	assert_int_equal(root->nchildren, 1);
	assert_int_equal(store_inode_count(s), 2);
	ino = in->ino;

	/* Existing regular file without O_EXCL: success, same inode, nothing changes. */
	put(s, ino, "abc");
	t = in->mtime_ns;
	res = apply(s, OP(.type = KVFS_OP_CREATE, .parent = ROOT, NAME("f"), .mode = 0600));
	assert_int_equal(res.err, 0);
	assert_int_equal(res.ino, ino);
	assert_int_equal(in->mode, S_IFREG | 07777);
	assert_int_equal(in->mtime_ns, t);
	assert_int_equal(root->mtime_ns, 777);
	assert_value(in, "abc", 3);
	assert_int_equal(store_inode_count(s), 2);

	assert_int_equal(err_of(s, OP(.type = KVFS_OP_CREATE, .parent = ROOT, NAME("f"),
	                              .flags = KVFS_CREATE_EXCL)),
	                 -EEXIST);
	d = mkdir_(s, ROOT, "d");
	mk(s, KVFS_OP_SYMLINK, ROOT, "l");
	assert_int_equal(err_of(s, OP(.type = KVFS_OP_CREATE, .parent = ROOT, NAME("d"))), -EISDIR);
	assert_int_equal(err_of(s, OP(.type = KVFS_OP_CREATE, .parent = ROOT, NAME("l"))), -EEXIST);
	assert_int_equal(err_of(s, OP(.type = KVFS_OP_CREATE, .parent = ROOT, NAME("d"),
	                              .flags = KVFS_CREATE_EXCL)),
	                 -EEXIST);
	assert_int_equal(err_of(s, OP(.type = KVFS_OP_CREATE, .parent = 999, NAME("x"))), -ENOENT);
	assert_int_equal(err_of(s, OP(.type = KVFS_OP_CREATE, .parent = ino, NAME("x"))), -ENOTDIR);
	assert_int_equal(err_of(s, OP(.type = KVFS_OP_MKDIR, .parent = ino, NAME("x"))), -ENOTDIR);
	assert_int_equal(
	    err_of(s, OP(.type = KVFS_OP_SYMLINK, .parent = ino, NAME("x"), DATA("t"))), -ENOTDIR);
	/* The same name in another directory is another file. */
	assert_int_not_equal(mkfile(s, d, "f"), ino);
	assert_int_equal(store_inode_count(s), 5);
}

static void test_mkdir(void **state)
{
	struct kvfs_store *s = *state;
	struct kvfs_inode *root = get(s, ROOT), *a, *b;
	uint64_t f;

	a = get(s, mkdir_(s, ROOT, "a"));
	assert_int_equal(a->mode, S_IFDIR | 0644);
	assert_int_equal(a->nlink, 2);
	assert_int_equal(root->nlink, 3);
	b = get(s, mkdir_(s, a->ino, "b"));
	assert_int_equal(a->nlink, 3);
	assert_int_equal(b->nlink, 2);
	assert_int_equal(a->mtime_ns, b->mtime_ns);
	f = mkfile(s, a->ino, "f");
	assert_int_equal(a->nlink, 3); /* files do not count */
	assert_int_equal(a->nchildren, 2);
	assert_int_equal(err_of(s, OP(.type = KVFS_OP_MKDIR, .parent = ROOT, NAME("a"))), -EEXIST);
	assert_int_equal(err_of(s, OP(.type = KVFS_OP_MKDIR, .parent = a->ino, NAME("f"))),
	                 -EEXIST);
	assert_int_equal(err_of(s, OP(.type = KVFS_OP_MKDIR, .parent = 12345, NAME("x"))), -ENOENT);
	assert_int_equal(
	    err_of(s, OP(.type = KVFS_OP_MKDIR, .parent = ROOT, NAME("m"), .mode = S_IFREG | 0700)),
	    0);
	assert_int_equal(lookup(s, ROOT, "m")->mode, S_IFDIR | 0700);
	assert_int_equal(root->nlink, 4);
	assert_int_equal(get(s, f)->nlink, 1);
	assert_int_equal(store_path_len(dent(get(s, f))), 3);
	assert_int_equal(store_path_len(dent(b)), 3);
}

static void test_symlink(void **state)
{
	struct kvfs_store *s = *state;
	char target[KVFS_PATH_MAX + 2];
	struct kvfs_apply_result res;
	struct kvfs_inode *l;

	res = apply(s, OP(.type = KVFS_OP_SYMLINK, .parent = ROOT, NAME("l"), DATA("../x/y"),
	                  .uid = 3, .gid = 4, .mode = 0600));
	assert_int_equal(res.err, 0);
	l = get(s, res.ino);
	assert_int_equal(l->mode, S_IFLNK | 0777);
	assert_int_equal(l->nlink, 1);
	assert_int_equal(l->uid, 3);
	assert_int_equal(l->gid, 4);
	assert_value(l, "../x/y", 6);
	assert_int_equal(get(s, ROOT)->nlink, 2);
	/* Symlink targets are not file values. */
	assert_int_equal(store_value_bytes(s), 0);

	assert_int_equal(
	    err_of(s, OP(.type = KVFS_OP_SYMLINK, .parent = ROOT, NAME("l"), DATA("t"))), -EEXIST);
	assert_int_equal(err_of(s, OP(.type = KVFS_OP_SYMLINK, .parent = ROOT, NAME("e"))),
	                 -ENOENT);
	memset(target, 'x', sizeof(target));
	target[KVFS_PATH_MAX + 1] = '\0';
	assert_int_equal(
	    err_of(s, OP(.type = KVFS_OP_SYMLINK, .parent = ROOT, NAME("e"), DATA(target))),
	    -ENAMETOOLONG);
	target[KVFS_PATH_MAX] = '\0';
	assert_int_equal(
	    err_of(s, OP(.type = KVFS_OP_SYMLINK, .parent = ROOT, NAME("e"), DATA(target))), 0);
	assert_int_equal(value_size(lookup(s, ROOT, "e")->value), KVFS_PATH_MAX);
	assert_int_equal(err_of(s, OP(.type = KVFS_OP_SYMLINK, .parent = 99, NAME("z"), DATA("t"))),
	                 -ENOENT);
	assert_int_equal(store_inode_count(s), 3);
}

/* Every malformed name is refused by every operation that names a new entry. */
static void test_name_validity(void **state)
{
	struct kvfs_store *s = *state;
	static const struct {
		const char *name;
		uint32_t len;
		int err;
	} cases[] = {
	    {"", 0, -EINVAL},  {".", 1, -EINVAL},    {"..", 2, -EINVAL}, {"a/b", 3, -EINVAL},
	    {"/", 1, -EINVAL}, {"a\0b", 3, -EINVAL}, {"\0", 1, -EINVAL}, {"ab/", 3, -EINVAL},
	};
	static const unsigned types[] = {KVFS_OP_CREATE, KVFS_OP_MKDIR, KVFS_OP_SYMLINK};
	char long_name[KVFS_NAME_MAX + 2];
	uint64_t d = mkdir_(s, ROOT, "d"), f = mkfile(s, ROOT, "f");

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		for (size_t t = 0; t < 3; t++) {
			struct kvfs_op op =
			    OP(.type = (uint8_t)types[t], .parent = d, .name = cases[i].name,
			       .name_len = cases[i].len, DATA("t"));

			assert_int_equal(err_of(s, op), cases[i].err);
		}
		assert_int_equal(
		    err_of(s, OP(.type = KVFS_OP_RENAME, .parent = ROOT, NAME("f"), .newparent = d,
		                 .newname = cases[i].name, .newname_len = cases[i].len)),
		    cases[i].err);
	}
	memset(long_name, 'n', sizeof(long_name));
	long_name[KVFS_NAME_MAX + 1] = '\0';
	for (size_t t = 0; t < 3; t++) {
		assert_int_equal(err_of(s, OP(.type = (uint8_t)types[t], .parent = d,
		                              NAME(long_name), DATA("t"))),
		                 -ENAMETOOLONG);
	}
	assert_int_equal(err_of(s, OP(.type = KVFS_OP_RENAME, .parent = ROOT, NAME("f"),
	                              .newparent = d, NEWNAME(long_name))),
	                 -ENAMETOOLONG);
	long_name[KVFS_NAME_MAX] = '\0';
	assert_int_equal(err_of(s, OP(.type = KVFS_OP_RENAME, .parent = ROOT, NAME("f"),
	                              .newparent = d, NEWNAME(long_name))),
	                 0);
	assert_int_equal(lookup(s, d, long_name)->ino, f);
	assert_int_equal(get(s, d)->nchildren, 1);
	/* Names that only look special are fine. */
	mkfile(s, d, "...");
	mkfile(s, d, ".a");
	mkfile(s, d, "a b\n\t\xff");
}

static void test_reserved_names(void **state)
{
	struct kvfs_store *s = *state;
	static const struct {
		const char *name;
		int err;
	} cases[] = {
	    {".status", -EEXIST},          {".status.json", -EEXIST}, {".statusx", -EACCES},
	    {".status.json.tmp", -EACCES}, {".status.", -EACCES},     {".kvfs", -EACCES},
	    {".kvfs-lock", -EACCES},       {".kvfsx", -EACCES},
	};
	static const unsigned types[] = {KVFS_OP_CREATE, KVFS_OP_MKDIR, KVFS_OP_SYMLINK};
	uint64_t d = mkdir_(s, ROOT, "d");

	mkfile(s, ROOT, "f");
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		for (size_t t = 0; t < 3; t++) {
			assert_int_equal(err_of(s, OP(.type = (uint8_t)types[t], .parent = ROOT,
			                              NAME(cases[i].name), DATA("t"))),
			                 cases[i].err);
			assert_int_equal(err_of(s, OP(.type = (uint8_t)types[t], .parent = ROOT,
			                              NAME(cases[i].name), DATA("t"),
			                              .flags = KVFS_CREATE_EXCL)),
			                 cases[i].err);
		}
		assert_int_equal(err_of(s, OP(.type = KVFS_OP_RENAME, .parent = ROOT, NAME("f"),
		                              .newparent = ROOT, NEWNAME(cases[i].name))),
		                 cases[i].err);
		assert_int_equal(err_of(s, OP(.type = KVFS_OP_RENAME, .parent = ROOT, NAME("f"),
		                              .newparent = ROOT, NEWNAME(cases[i].name),
		                              .flags = KVFS_RENAME_NOREPLACE)),
		                 cases[i].err);
		assert_null(lookup(s, ROOT, cases[i].name));
		/* Anywhere but the root they are ordinary names. */
		mkfile(s, d, cases[i].name);
	}
	/* Lookalikes in the root are fine. */
	mkfile(s, ROOT, ".statu");
	mkfile(s, ROOT, "status");
	mkfile(s, ROOT, ".kvf");
	mkfile(s, ROOT, "x.status");
	assert_int_equal(store_inode_count(s), 3 + 8 + 4);
}

static void test_path_limit(void **state)
{
	struct kvfs_store *s = *state;
	char n255[256], n254[255];
	uint64_t dir = ROOT, deep, f;

	memset(n255, 'a', 255);
	n255[255] = '\0';
	memset(n254, 'b', 254);
	n254[254] = '\0';
	/* 15 levels of 255-byte names: 15 * 255 + 14 slashes. */
	for (int i = 0; i < 15; i++)
		dir = mkdir_(s, dir, n255);
	assert_int_equal(store_path_len(dent(get(s, dir))), 15 * 255 + 14);
	/* A 16th: exactly KVFS_PATH_MAX. */
	deep = mkdir_(s, dir, n255);
	assert_int_equal(store_path_len(dent(get(s, deep))), KVFS_PATH_MAX);
	assert_int_equal(err_of(s, OP(.type = KVFS_OP_CREATE, .parent = deep, NAME("x"))),
	                 -ENAMETOOLONG);
	assert_int_equal(err_of(s, OP(.type = KVFS_OP_MKDIR, .parent = deep, NAME("x"))),
	                 -ENAMETOOLONG);
	assert_int_equal(
	    err_of(s, OP(.type = KVFS_OP_SYMLINK, .parent = deep, NAME("x"), DATA("t"))),
	    -ENAMETOOLONG);
	/* One byte short of the limit leaves no room for "/x". */
	dir = mkdir_(s, dir, n254);
	assert_int_equal(store_path_len(dent(get(s, dir))), KVFS_PATH_MAX - 1);
	assert_int_equal(err_of(s, OP(.type = KVFS_OP_CREATE, .parent = dir, NAME("x"))),
	                 -ENAMETOOLONG);
	f = mkfile(s, ROOT, "x");
	assert_int_equal(err_of(s, OP(.type = KVFS_OP_RENAME, .parent = ROOT, NAME("x"),
	                              .newparent = dir, NEWNAME("x"))),
	                 -ENAMETOOLONG);
	assert_int_equal(err_of(s, OP(.type = KVFS_OP_RENAME, .parent = ROOT, NAME("x"),
	                              .newparent = deep, NEWNAME("y"))),
	                 -ENAMETOOLONG);
	assert_int_equal(parent_of(get(s, f))->ino, ROOT);
}

static void test_put_append(void **state)
{
	struct kvfs_store *s = *state;
	uint64_t f = mkfile(s, ROOT, "f"), d = mkdir_(s, ROOT, "d");
	uint64_t l = mk(s, KVFS_OP_SYMLINK, ROOT, "l");
	struct kvfs_inode *in = get(s, f);
	struct kvfs_apply_result res;
	struct kvfs_value *held;
	int64_t t;

	res = apply(s, OP(.type = KVFS_OP_PUT, .ino = f, DATA("hello"), .time_ns = 42));
	assert_int_equal(res.err, 0);
	assert_int_equal(res.ino, f);
	assert_value(in, "hello", 5);
	assert_int_equal(in->mtime_ns, 42);
	assert_int_equal(in->ctime_ns, 42);
	assert_int_equal(store_value_bytes(s), 5);

	res = apply(s, OP(.type = KVFS_OP_APPEND, .ino = f, DATA(" world"), .time_ns = 43));
	assert_int_equal(res.err, 0);
	assert_value(in, "hello world", 11);
	assert_int_equal(in->mtime_ns, 43);
	assert_int_equal(store_value_bytes(s), 11);

	/* Limits: nothing changes on EFBIG. */
	t = in->mtime_ns;
	assert_int_equal(
	    err_of(s, OP(.type = KVFS_OP_PUT, .ino = f, DATA("0123456789"), .max_value = 9)),
	    -EFBIG);
	assert_int_equal(
	    err_of(s, OP(.type = KVFS_OP_APPEND, .ino = f, DATA("!"), .max_value = 11)), -EFBIG);
	assert_int_equal(
	    err_of(s, OP(.type = KVFS_OP_APPEND, .ino = f, DATA("0123456789abc"), .max_value = 12)),
	    -EFBIG);
	assert_value(in, "hello world", 11);
	assert_int_equal(in->mtime_ns, t);
	assert_int_equal(store_value_bytes(s), 11);
	assert_int_equal(
	    err_of(s, OP(.type = KVFS_OP_APPEND, .ino = f, DATA("!"), .max_value = 12)), 0);
	assert_value(in, "hello world!", 12);
	assert_int_equal(
	    err_of(s, OP(.type = KVFS_OP_PUT, .ino = f, DATA("0123456789"), .max_value = 10)), 0);
	assert_value(in, "0123456789", 10);
	assert_int_equal(store_value_bytes(s), 10);

	/* A shared value (a snapshot holds it) is never changed: appends copy. */
	held = value_ref(in->value);
	assert_int_equal(err_of(s, OP(.type = KVFS_OP_APPEND, .ino = f, DATA("AB"))), 0);
	assert_ptr_not_equal(in->value, held);
	assert_int_equal(held->size, 10);
	assert_memory_equal(held->data, "0123456789", 10);
	assert_value(in, "0123456789AB", 12);
	value_unref(held);

	/* Empty PUT: empty file. */
	put(s, f, "");
	assert_int_equal(value_size(in->value), 0);
	assert_int_equal(store_value_bytes(s), 0);

	for (int k = 0; k < 2; k++) {
		uint8_t type = k ? KVFS_OP_APPEND : KVFS_OP_PUT;

		assert_int_equal(err_of(s, OP(.type = type, .ino = 9999, DATA("x"))), -ENOENT);
		assert_int_equal(err_of(s, OP(.type = type, .ino = d, DATA("x"))), -EISDIR);
		assert_int_equal(err_of(s, OP(.type = type, .ino = ROOT, DATA("x"))), -EISDIR);
		assert_int_equal(err_of(s, OP(.type = type, .ino = l, DATA("x"))), -EINVAL);
	}
	assert_value(get(s, l), "target", 6);
}

static void test_unlink(void **state)
{
	struct kvfs_store *s = *state;
	uint64_t d = mkdir_(s, ROOT, "d"), f = mkfile(s, d, "f"),
	         l = mk(s, KVFS_OP_SYMLINK, d, "l");
	struct kvfs_apply_result res;

	put(s, f, "12345");
	assert_int_equal(store_inode_count(s), 4);
	assert_int_equal(err_of(s, OP(.type = KVFS_OP_UNLINK, .parent = 999, NAME("f"))), -ENOENT);
	assert_int_equal(err_of(s, OP(.type = KVFS_OP_UNLINK, .parent = f, NAME("f"))), -ENOTDIR);
	assert_int_equal(err_of(s, OP(.type = KVFS_OP_UNLINK, .parent = d, NAME("g"))), -ENOENT);
	assert_int_equal(err_of(s, OP(.type = KVFS_OP_UNLINK, .parent = ROOT, NAME("f"))), -ENOENT);
	assert_int_equal(err_of(s, OP(.type = KVFS_OP_UNLINK, .parent = ROOT, NAME("d"))), -EISDIR);
	assert_int_equal(err_of(s, OP(.type = KVFS_OP_UNLINK, .parent = ROOT, NAME(".status"))),
	                 -ENOENT);

	res = apply(s, OP(.type = KVFS_OP_UNLINK, .parent = d, NAME("f"), .time_ns = 99));
	assert_int_equal(res.err, 0);
	assert_int_equal(res.ino, f);
	assert_null(store_get(s, f));
	assert_null(lookup(s, d, "f"));
	assert_int_equal(get(s, d)->mtime_ns, 99);
	assert_int_equal(get(s, d)->ctime_ns, 99);
	assert_int_equal(get(s, d)->nchildren, 1);
	assert_int_equal(store_inode_count(s), 3);
	assert_int_equal(store_value_bytes(s), 0);
	assert_int_equal(err_of(s, OP(.type = KVFS_OP_UNLINK, .parent = d, NAME("f"))), -ENOENT);

	assert_int_equal(err_of(s, OP(.type = KVFS_OP_UNLINK, .parent = d, NAME("l"))), 0);
	assert_null(store_get(s, l));
	assert_null(store_child_first(get(s, d)));
	assert_int_equal(get(s, d)->nlink, 2);
	/* A file whose directory went away is gone too. */
	assert_int_equal(err_of(s, OP(.type = KVFS_OP_RMDIR, .parent = ROOT, NAME("d"))), 0);
	assert_int_equal(err_of(s, OP(.type = KVFS_OP_CREATE, .parent = d, NAME("x"))), -ENOENT);
}

static void test_rmdir(void **state)
{
	struct kvfs_store *s = *state;
	uint64_t a = mkdir_(s, ROOT, "a"), b = mkdir_(s, a, "b");
	struct kvfs_apply_result res;

	mkfile(s, ROOT, "f");
	assert_int_equal(get(s, ROOT)->nlink, 3);
	assert_int_equal(err_of(s, OP(.type = KVFS_OP_RMDIR, .parent = 999, NAME("a"))), -ENOENT);
	assert_int_equal(err_of(s, OP(.type = KVFS_OP_RMDIR, .parent = ROOT, NAME("zz"))), -ENOENT);
	assert_int_equal(err_of(s, OP(.type = KVFS_OP_RMDIR, .parent = ROOT, NAME("f"))), -ENOTDIR);
	assert_int_equal(err_of(s, OP(.type = KVFS_OP_RMDIR, .parent = ROOT, NAME("a"))),
	                 -ENOTEMPTY);
	res = apply(s, OP(.type = KVFS_OP_RMDIR, .parent = a, NAME("b"), .time_ns = 5));
	assert_int_equal(res.err, 0);
	assert_int_equal(res.ino, b);
	assert_null(store_get(s, b));
	assert_int_equal(get(s, a)->nlink, 2);
	assert_int_equal(get(s, a)->mtime_ns, 5);
	mkfile(s, a, "g");
	assert_int_equal(err_of(s, OP(.type = KVFS_OP_RMDIR, .parent = ROOT, NAME("a"))),
	                 -ENOTEMPTY);
	assert_int_equal(err_of(s, OP(.type = KVFS_OP_UNLINK, .parent = a, NAME("g"))), 0);
	assert_int_equal(err_of(s, OP(.type = KVFS_OP_RMDIR, .parent = ROOT, NAME("a"))), 0);
	assert_int_equal(get(s, ROOT)->nlink, 2);
	assert_int_equal(store_inode_count(s), 2);
}

static void test_rename_move(void **state)
{
	struct kvfs_store *s = *state;
	uint64_t a = mkdir_(s, ROOT, "a"), b = mkdir_(s, ROOT, "b");
	uint64_t f = mkfile(s, a, "f"), sub = mkdir_(s, a, "sub"), g = mkfile(s, a, "g");
	struct kvfs_apply_result res;
	struct kvfs_inode *in;

	put(s, f, "data");
	/* Within a directory: same ino, new name, moved to the end of the list. */
	res = apply(s, OP(.type = KVFS_OP_RENAME, .parent = a, NAME("f"), .newparent = a,
	                  NEWNAME("f2"), .time_ns = 10));
	assert_int_equal(res.err, 0);
	assert_int_equal(res.ino, f);
	assert_int_equal(res.replaced_ino, 0);
	in = get(s, f);
	assert_string_equal(name_of(in), "f2");
	assert_int_equal(dent(in)->name_len, 2);
	assert_null(lookup(s, a, "f"));
	assert_ptr_equal(lookup(s, a, "f2"), in);
	assert_int_equal(in->ctime_ns, 10);
	assert_int_equal(get(s, a)->mtime_ns, 10);
	assert_value(in, "data", 4);
	assert_int_equal(store_child_first(get(s, a))->in->ino, sub);
	assert_int_equal(store_child_next(store_child_first(get(s, a)))->in->ino, g);
	assert_ptr_equal(store_child_next(store_child_next(store_child_first(get(s, a)))),
	                 dent(in));

	/* Across directories: parents' counts and times. */
	res = apply(s, OP(.type = KVFS_OP_RENAME, .parent = a, NAME("sub"), .newparent = b,
	                  NEWNAME("sub"), .time_ns = 11));
	assert_int_equal(res.err, 0);
	assert_int_equal(res.ino, sub);
	assert_int_equal(get(s, a)->nlink, 2);
	assert_int_equal(get(s, b)->nlink, 3);
	assert_int_equal(get(s, a)->nchildren, 2);
	assert_int_equal(get(s, b)->nchildren, 1);
	assert_int_equal(get(s, a)->mtime_ns, 11);
	assert_int_equal(get(s, b)->ctime_ns, 11);
	assert_int_equal(get(s, sub)->ctime_ns, 11);
	assert_int_equal(parent_of(get(s, sub))->ino, b);
	assert_int_equal(get(s, ROOT)->nlink, 4);

	/* A directory's children go with it. */
	mkfile(s, sub, "deep");
	assert_int_equal(err_of(s, OP(.type = KVFS_OP_RENAME, .parent = ROOT, NAME("b"),
	                              .newparent = a, NEWNAME("bb"))),
	                 0);
	assert_non_null(lookup(s, sub, "deep"));
	assert_int_equal(store_path_len(dent(lookup(s, sub, "deep"))), strlen("a/bb/sub/deep"));
	assert_int_equal(get(s, ROOT)->nlink, 3);
	assert_int_equal(get(s, a)->nlink, 3);
	assert_int_equal(store_inode_count(s), 7);
}

static void test_rename_errors(void **state)
{
	struct kvfs_store *s = *state;
	uint64_t a = mkdir_(s, ROOT, "a"), b = mkdir_(s, a, "b"), c = mkdir_(s, b, "c");
	uint64_t f = mkfile(s, ROOT, "f"), e = mkdir_(s, ROOT, "e");
	struct kvfs_apply_result res;
	int64_t t;

	mkfile(s, ROOT, "g");
	mkfile(s, e, "inside");
	mkdir_(s, ROOT, "empty");
#define RN(p, n, np, nn, fl)                                                                       \
	err_of(s, OP(.type = KVFS_OP_RENAME, .parent = (p), NAME(n), .newparent = (np),            \
	             NEWNAME(nn), .flags = (fl)))
	assert_int_equal(RN(999, "f", ROOT, "x", 0), -ENOENT);
	assert_int_equal(RN(ROOT, "f", 999, "x", 0), -ENOENT);
	assert_int_equal(RN(f, "f", ROOT, "x", 0), -ENOTDIR);
	assert_int_equal(RN(ROOT, "f", f, "x", 0), -ENOTDIR);
	assert_int_equal(RN(ROOT, "nope", ROOT, "x", 0), -ENOENT);
	assert_int_equal(RN(ROOT, "nope", ROOT, "f", 0), -ENOENT);

	/* Same inode: success, nothing changes. */
	t = get(s, ROOT)->mtime_ns;
	res = apply(s, OP(.type = KVFS_OP_RENAME, .parent = ROOT, NAME("f"), .newparent = ROOT,
	                  NEWNAME("f")));
	assert_int_equal(res.err, 0);
	assert_int_equal(res.ino, f);
	assert_int_equal(res.replaced_ino, 0);
	assert_int_equal(get(s, ROOT)->mtime_ns, t);
	assert_int_equal(RN(ROOT, "f", ROOT, "f", KVFS_RENAME_NOREPLACE), 0);

	assert_int_equal(RN(ROOT, "f", ROOT, "g", KVFS_RENAME_NOREPLACE), -EEXIST);
	assert_int_equal(RN(ROOT, "a", ROOT, "e", KVFS_RENAME_NOREPLACE), -EEXIST);
	/* Into itself or its own subtree. */
	assert_int_equal(RN(ROOT, "a", a, "x", 0), -EINVAL);
	assert_int_equal(RN(ROOT, "a", b, "x", 0), -EINVAL);
	assert_int_equal(RN(ROOT, "a", c, "x", 0), -EINVAL);
	assert_int_equal(RN(a, "b", c, "b", 0), -EINVAL);
	/* Type clashes with the target. */
	assert_int_equal(RN(ROOT, "a", ROOT, "f", 0), -ENOTDIR);
	assert_int_equal(RN(ROOT, "f", ROOT, "a", 0), -EISDIR);
	assert_int_equal(RN(ROOT, "empty", ROOT, "e", 0), -ENOTEMPTY);
	/* The parent of the source over the source's ancestor: a non-empty directory. */
	assert_int_equal(RN(b, "c", ROOT, "a", 0), -ENOTEMPTY);

	/* Nothing moved. */
	assert_int_equal(parent_of(get(s, b))->ino, a);
	assert_int_equal(parent_of(get(s, c))->ino, b);
	assert_int_equal(parent_of(get(s, f))->ino, ROOT);
	assert_int_equal(get(s, ROOT)->nchildren, 5);
	assert_int_equal(store_inode_count(s), 9);
	/* A file may move next to itself under another name, a directory to a sibling. */
	assert_int_equal(RN(a, "b", ROOT, "b2", KVFS_RENAME_NOREPLACE), 0);
	assert_int_equal(RN(ROOT, "b2", c, "f", KVFS_RENAME_NOREPLACE), -EINVAL);
#undef RN
}

static void test_rename_replace(void **state)
{
	struct kvfs_store *s = *state;
	uint64_t a = mkdir_(s, ROOT, "a"), b = mkdir_(s, ROOT, "b");
	uint64_t f = mkfile(s, a, "f"), g = mkfile(s, b, "g");
	uint64_t da = mkdir_(s, a, "da"), db = mkdir_(s, b, "db");
	struct kvfs_apply_result res;

	put(s, f, "new");
	put(s, g, "old-contents");
	assert_int_equal(store_value_bytes(s), 15);
	res = apply(
	    s, OP(.type = KVFS_OP_RENAME, .parent = a, NAME("f"), .newparent = b, NEWNAME("g")));
	assert_int_equal(res.err, 0);
	assert_int_equal(res.ino, f);
	assert_int_equal(res.replaced_ino, g);
	assert_null(store_get(s, g));
	assert_ptr_equal(lookup(s, b, "g"), get(s, f));
	assert_value(get(s, f), "new", 3);
	assert_int_equal(store_value_bytes(s), 3);
	assert_int_equal(store_inode_count(s), 6);

	/* Directory over an empty directory, across parents. */
	assert_int_equal(get(s, a)->nlink, 3);
	assert_int_equal(get(s, b)->nlink, 3);
	mkfile(s, da, "x");
	res = apply(
	    s, OP(.type = KVFS_OP_RENAME, .parent = a, NAME("da"), .newparent = b, NEWNAME("db")));
	assert_int_equal(res.err, 0);
	assert_int_equal(res.ino, da);
	assert_int_equal(res.replaced_ino, db);
	assert_null(store_get(s, db));
	assert_int_equal(get(s, a)->nlink, 2);
	assert_int_equal(get(s, b)->nlink, 3);
	assert_int_equal(get(s, a)->nchildren, 0);
	assert_int_equal(get(s, b)->nchildren, 2);
	assert_non_null(lookup(s, da, "x"));
	assert_int_equal(store_inode_count(s), 6);

	/* Directory over an empty directory in the same parent. */
	mkdir_(s, b, "e");
	res = apply(
	    s, OP(.type = KVFS_OP_RENAME, .parent = b, NAME("db"), .newparent = b, NEWNAME("e")));
	assert_int_equal(res.err, 0);
	assert_int_equal(get(s, b)->nlink, 3);
	assert_int_equal(get(s, b)->nchildren, 2);
	/* Symlink over file. */
	mk(s, KVFS_OP_SYMLINK, b, "l");
	res = apply(
	    s, OP(.type = KVFS_OP_RENAME, .parent = b, NAME("l"), .newparent = b, NEWNAME("g")));
	assert_int_equal(res.err, 0);
	assert_int_equal(res.replaced_ino, f);
	assert_int_equal(store_value_bytes(s), 0);
	assert_true(S_ISLNK(lookup(s, b, "g")->mode));
}

static void test_setattr(void **state)
{
	struct kvfs_store *s = *state;
	uint64_t f = mkfile(s, ROOT, "f"), d = mkdir_(s, ROOT, "d");
	uint64_t l = mk(s, KVFS_OP_SYMLINK, ROOT, "l");
	struct kvfs_inode *in = get(s, f);
	struct kvfs_apply_result res;

	put(s, f, "hello");
	res = apply(s, OP(.type = KVFS_OP_SETATTR, .ino = f, .time_ns = 50,
	                  .flags = KVFS_SET_MODE | KVFS_SET_UID | KVFS_SET_GID,
	                  .mode = S_IFDIR | 04711, .uid = 7, .gid = 8));
	assert_int_equal(res.err, 0);
	assert_int_equal(res.ino, f);
	assert_int_equal(in->mode, S_IFREG | 04711);
	assert_int_equal(in->uid, 7);
	assert_int_equal(in->gid, 8);
	assert_int_equal(in->ctime_ns, 50);
	assert_int_not_equal(in->mtime_ns, 50);

	/* Size: cut, then zero-extend; mtime follows unless given. */
	res = apply(s, OP(.type = KVFS_OP_SETATTR, .ino = f, .time_ns = 60, .flags = KVFS_SET_SIZE,
	                  .size = 2));
	assert_int_equal(res.err, 0);
	assert_value(in, "he", 2);
	assert_int_equal(in->mtime_ns, 60);
	assert_int_equal(in->ctime_ns, 60);
	assert_int_equal(store_value_bytes(s), 2);
	res = apply(s, OP(.type = KVFS_OP_SETATTR, .ino = f, .time_ns = 70,
	                  .flags = KVFS_SET_SIZE | KVFS_SET_MTIME, .size = 5, .mtime_ns = 3));
	assert_int_equal(res.err, 0);
	assert_int_equal(value_size(in->value), 5);
	assert_memory_equal(in->value->data, "he\0\0\0", 5);
	assert_int_equal(in->mtime_ns, 3);
	assert_int_equal(store_value_bytes(s), 5);

	/* Times: explicit and now. */
	res = apply(s, OP(.type = KVFS_OP_SETATTR, .ino = f, .time_ns = 80,
	                  .flags = KVFS_SET_ATIME | KVFS_SET_MTIME, .atime_ns = -1, .mtime_ns = 2));
	assert_int_equal(in->atime_ns, -1);
	assert_int_equal(in->mtime_ns, 2);
	assert_int_equal(in->ctime_ns, 80);
	res = apply(s, OP(.type = KVFS_OP_SETATTR, .ino = f, .time_ns = 90,
	                  .flags = KVFS_SET_ATIME_NOW | KVFS_SET_MTIME_NOW, .atime_ns = 1,
	                  .mtime_ns = 1));
	assert_int_equal(in->atime_ns, 90);
	assert_int_equal(in->mtime_ns, 90);
	res = apply(s, OP(.type = KVFS_OP_SETATTR, .ino = f, .time_ns = 95));
	assert_int_equal(res.err, 0);
	assert_int_equal(in->ctime_ns, 95);
	assert_int_equal(in->mtime_ns, 90);
	assert_int_equal(value_size(in->value), 5);
	assert_memory_equal(in->value->data, "he\0\0\0", 5);

	/* Errors change nothing, not even the fields that would have been fine. */
	assert_int_equal(
	    err_of(s, OP(.type = KVFS_OP_SETATTR, .ino = 5555, .flags = KVFS_SET_MODE)), -ENOENT);
	assert_int_equal(err_of(s, OP(.type = KVFS_OP_SETATTR, .ino = d,
	                              .flags = KVFS_SET_SIZE | KVFS_SET_MODE, .mode = 0)),
	                 -EISDIR);
	assert_int_equal(get(s, d)->mode, S_IFDIR | 0644);
	assert_int_equal(err_of(s, OP(.type = KVFS_OP_SETATTR, .ino = l,
	                              .flags = KVFS_SET_SIZE | KVFS_SET_UID, .uid = 1)),
	                 -EINVAL);
	assert_int_equal(get(s, l)->uid, 0);
	assert_int_equal(err_of(s, OP(.type = KVFS_OP_SETATTR, .ino = f, .max_value = 10,
	                              .flags = KVFS_SET_SIZE | KVFS_SET_MODE | KVFS_SET_MTIME_NOW,
	                              .size = 11, .mode = 0)),
	                 -EFBIG);
	assert_int_equal(in->mode, S_IFREG | 04711);
	assert_int_equal(in->ctime_ns, 95);
	assert_int_equal(in->mtime_ns, 90);
	assert_int_equal(value_size(in->value), 5);
	assert_int_equal(err_of(s, OP(.type = KVFS_OP_SETATTR, .ino = f, .max_value = 10,
	                              .flags = KVFS_SET_SIZE, .size = 10)),
	                 0);
	assert_int_equal(store_value_bytes(s), 10);
	assert_int_equal(
	    err_of(s, OP(.type = KVFS_OP_SETATTR, .ino = f, .flags = KVFS_SET_SIZE, .size = 0)), 0);
	assert_int_equal(value_size(in->value), 0);
	assert_int_equal(store_value_bytes(s), 0);

	/* Directories and symlinks take mode, owner and times. */
	assert_int_equal(
	    err_of(s, OP(.type = KVFS_OP_SETATTR, .ino = d, .flags = KVFS_SET_MODE, .mode = 0700)),
	    0);
	assert_int_equal(get(s, d)->mode, S_IFDIR | 0700);
	assert_int_equal(err_of(s, OP(.type = KVFS_OP_SETATTR, .ino = ROOT, .flags = KVFS_SET_MTIME,
	                              .mtime_ns = 12)),
	                 0);
	assert_int_equal(get(s, ROOT)->mtime_ns, 12);
	assert_int_equal(
	    err_of(s, OP(.type = KVFS_OP_SETATTR, .ino = l, .flags = KVFS_SET_GID, .gid = 9)), 0);
	assert_int_equal(get(s, l)->gid, 9);
}

struct sess_list {
	struct kvfs_session s[8];
	size_t n;
};

static int collect_session(void *arg, const struct kvfs_session *sess)
{
	struct sess_list *l = arg;

	assert_true(l->n < 8);
	l->s[l->n++] = *sess;
	return 0;
}

/*
 * Allocation failures on demand: this test links with -Wl,--wrap=malloc,--wrap=realloc, so the
 * store's and the values' allocations come here and fail while fail_alloc is set.
 */
static bool fail_alloc;
void *__real_malloc(size_t size);
void *__real_realloc(void *p, size_t size);
void *__wrap_malloc(size_t size);
void *__wrap_realloc(void *p, size_t size);

void *__wrap_malloc(size_t size)
{
	return fail_alloc ? NULL : __real_malloc(size);
}

void *__wrap_realloc(void *p, size_t size)
{
	return fail_alloc ? NULL : __real_realloc(p, size);
}

/*
 * -ENOMEM leaves the store unchanged and the index unconsumed, whether the value to grow is the
 * store's alone (realloc) or shared with a snapshot (a copy).
 */
static void test_enomem_changes_nothing(void **state)
{
	struct kvfs_store *s = *state;
	uint64_t f = mkfile(s, ROOT, "f");
	struct kvfs_op op =
	    OP(.type = KVFS_OP_SETATTR, .ino = f, .time_ns = 5, .origin = 4, .seq = 2,
	       .flags = KVFS_SET_SIZE | KVFS_SET_MODE | KVFS_SET_UID, .size = 100000, .mode = 0);
	struct kvfs_apply_result res;
	struct kvfs_value *held;
	uint64_t index;

	put(s, f, "abc");
	apply(s, OP(.type = KVFS_OP_NOOP, .origin = 4, .seq = 1));
	index = store_applied_index(s) + 1;
	for (int shared = 0; shared < 2; shared++) {
		struct sess_list list = {.n = 0};

		held = shared ? value_ref(get(s, f)->value) : NULL;
		fail_alloc = true;
		assert_int_equal(store_apply(s, 1, index, &op, &res), -ENOMEM);
		fail_alloc = false;
		assert_int_equal(res.err, 0);
		assert_false(res.duplicate);
		assert_int_equal(store_applied_index(s), index - 1);
		assert_int_equal(get(s, f)->mode, S_IFREG | 0644);
		assert_int_not_equal(get(s, f)->ctime_ns, 5);
		assert_value(get(s, f), "abc", 3);
		assert_int_equal(store_value_bytes(s), 3);
		store_session_foreach(s, collect_session, &list);
		assert_int_equal(list.n, 1);
		assert_int_equal(list.s[0].seq, 1);
		value_unref(held);
	}
	op.size = 1;
	assert_int_equal(store_apply(s, 1, index, &op, &res), 0);
	assert_int_equal(res.err, 0);
	assert_value(get(s, f), "a", 1);
	assert_int_equal(get(s, f)->mode, S_IFREG);

	/* A size no allocation could hold is an outcome, not an error: it must not stop every
	 * replica at this entry. max_value 0 does not lift the hard cap. */
	op = OP(.type = KVFS_OP_SETATTR, .ino = f, .flags = KVFS_SET_SIZE, .size = UINT64_MAX - 1);
	assert_int_equal(err_of(s, op), -EFBIG);
	op.size = KVFS_DATA_MAX + 1ull;
	assert_int_equal(err_of(s, op), -EFBIG);
	assert_value(get(s, f), "a", 1);
}

static void test_pins(void **state)
{
	struct kvfs_store *s = *state;
	uint64_t d = mkdir_(s, ROOT, "d"), f = mkfile(s, d, "f"), g = mkfile(s, d, "g");
	uint64_t e = mkdir_(s, d, "e"), h = mkfile(s, ROOT, "h");
	struct kvfs_inode *in = get(s, f);

	put(s, f, "still readable");
	put(s, g, "gg");
	store_pin(s, in, 2);
	assert_int_equal(err_of(s, OP(.type = KVFS_OP_UNLINK, .parent = d, NAME("f"))), 0);
	assert_ptr_equal(store_get(s, f), in);
	assert_int_equal(in->nlink, 0);
	assert_null(parent_of(in));
	assert_null(lookup(s, d, "f"));
	assert_value(in, "still readable", 14);
	assert_int_equal(store_inode_count(s), 5);
	assert_int_equal(store_value_bytes(s), 2);
	/* To every operation an unlinked inode is missing, pinned or not. */
	assert_int_equal(err_of(s, OP(.type = KVFS_OP_PUT, .ino = f, DATA("x"))), -ENOENT);
	assert_int_equal(err_of(s, OP(.type = KVFS_OP_APPEND, .ino = f, DATA("x"))), -ENOENT);
	assert_int_equal(err_of(s, OP(.type = KVFS_OP_SETATTR, .ino = f, .flags = KVFS_SET_MODE)),
	                 -ENOENT);
	assert_value(in, "still readable", 14);
	store_unpin(s, in, 1);
	assert_ptr_equal(store_get(s, f), in);
	store_unpin(s, in, 1);
	assert_null(store_get(s, f));

	/* A pinned directory removed by rmdir. */
	in = get(s, e);
	store_pin(s, in, 1);
	assert_int_equal(err_of(s, OP(.type = KVFS_OP_RMDIR, .parent = d, NAME("e"))), 0);
	assert_ptr_equal(store_get(s, e), in);
	assert_int_equal(in->nlink, 0);
	assert_null(store_lookup(s, in, "x", 1));
	assert_int_equal(err_of(s, OP(.type = KVFS_OP_CREATE, .parent = e, NAME("x"))), -ENOENT);
	assert_int_equal(err_of(s, OP(.type = KVFS_OP_RENAME, .parent = ROOT, NAME("h"),
	                              .newparent = e, NEWNAME("h"))),
	                 -ENOENT);
	assert_int_equal(get(s, d)->nlink, 2);
	store_unpin(s, in, 1);
	assert_null(store_get(s, e));

	/* A pinned inode replaced by a rename. */
	in = get(s, g);
	store_pin(s, in, 3);
	assert_int_equal(err_of(s, OP(.type = KVFS_OP_RENAME, .parent = ROOT, NAME("h"),
	                              .newparent = d, NEWNAME("g"))),
	                 0);
	assert_ptr_equal(store_get(s, g), in);
	assert_int_equal(in->nlink, 0);
	assert_value(in, "gg", 2);
	assert_int_equal(lookup(s, d, "g")->ino, h);
	assert_int_equal(store_value_bytes(s), 0);
	store_unpin(s, in, 3);
	assert_null(store_get(s, g));

	/* Pins on linked inodes do nothing else; unlinked pinned ones are freed by close. */
	store_pin(s, get(s, ROOT), 1);
	store_unpin(s, get(s, ROOT), 1);
	store_pin(s, get(s, h), 1);
	assert_int_equal(err_of(s, OP(.type = KVFS_OP_UNLINK, .parent = d, NAME("g"))), 0);
	assert_non_null(store_get(s, h));
	assert_int_equal(store_inode_count(s), 2);

	/* A count that would wrap sticks at its top instead: such an inode (h, unlinked above and
	 * pinned once) outlives every unpin and goes with the store (close, under ASan: no leak,
	 * no double free). */
	in = store_get(s, h);
	assert_int_equal(in->nlink, 0);
	store_pin(s, in, KVFS_PINS_STUCK - 2);
	assert_int_equal(in->pins, KVFS_PINS_STUCK - 1);
	store_pin(s, in, 1);
	assert_int_equal(in->pins, KVFS_PINS_STUCK);
	store_pin(s, in, UINT64_MAX);
	assert_int_equal(in->pins, KVFS_PINS_STUCK);
	store_unpin(s, in, 5);
	assert_int_equal(in->pins, KVFS_PINS_STUCK);
	store_unpin(s, in, KVFS_PINS_STUCK);
	assert_ptr_equal(store_get(s, h), in);
}

/* The names of dir, in listing order, space-separated, checked both ways round: forwards along
 * sib_next and backwards from the first entry's sib_prev (the last entry). */
static void assert_children(struct kvfs_store *s, uint64_t dir, const char *want)
{
	const struct kvfs_dentry *first = store_child_first(get(s, dir)), *c;
	char fwd[256] = "", back[256] = "", tmp[256];
	uint32_t n = 0;

	for (c = first; c; c = store_child_next(c), n++) {
		strcat(fwd, *fwd ? " " : "");
		strcat(fwd, c->name);
	}
	assert_string_equal(fwd, want);
	assert_int_equal(n, get(s, dir)->nchildren);
	if (!first)
		return;
	c = first->sib_prev;
	for (uint32_t i = 0; i < n; i++, c = c->sib_prev) {
		snprintf(tmp, sizeof(tmp), "%s%s%s", c->name, *back ? " " : "", back);
		strcpy(back, tmp);
		assert_true(i + 1 == n ? c == first : c != first);
	}
	assert_string_equal(back, want);
	assert_null(first->sib_prev->sib_next);
}

/* A directory's entries: a list with no tail pointer (the first entry's sib_prev is the last),
 * through removals at the head, the tail and the middle, and renames within and across. */
static void test_child_order(void **state)
{
	struct kvfs_store *s = *state;
	uint64_t d = mkdir_(s, ROOT, "d"), e = mkdir_(s, ROOT, "e");
	const char *names[] = {"a", "b", "c", "f", "g"};

	assert_children(s, d, "");
	for (size_t i = 0; i < 5; i++)
		mkfile(s, d, names[i]);
	assert_children(s, d, "a b c f g");
	assert_int_equal(err_of(s, OP(.type = KVFS_OP_UNLINK, .parent = d, NAME("c"))), 0);
	assert_children(s, d, "a b f g");
	assert_int_equal(err_of(s, OP(.type = KVFS_OP_UNLINK, .parent = d, NAME("g"))), 0);
	assert_children(s, d, "a b f");
	assert_int_equal(err_of(s, OP(.type = KVFS_OP_UNLINK, .parent = d, NAME("a"))), 0);
	assert_children(s, d, "b f");
	mkfile(s, d, "h");
	assert_children(s, d, "b f h");
	/* A rename makes a new name at the end; one to another directory leaves this one. */
	assert_int_equal(err_of(s, OP(.type = KVFS_OP_RENAME, .parent = d, NAME("b"), .newparent = d,
	                              NEWNAME("i"))),
	                 0);
	assert_children(s, d, "f h i");
	assert_int_equal(err_of(s, OP(.type = KVFS_OP_RENAME, .parent = d, NAME("i"), .newparent = e,
	                              NEWNAME("i"))),
	                 0);
	assert_children(s, d, "f h");
	assert_children(s, e, "i");
	assert_int_equal(err_of(s, OP(.type = KVFS_OP_UNLINK, .parent = d, NAME("h"))), 0);
	assert_int_equal(err_of(s, OP(.type = KVFS_OP_UNLINK, .parent = d, NAME("f"))), 0);
	assert_children(s, d, "");
	mkfile(s, d, "j");
	assert_children(s, d, "j");
}

static void test_exactly_once(void **state)
{
	struct kvfs_store *s = *state;
	struct kvfs_apply_result res;
	struct sess_list list = {.n = 0};
	uint64_t f;

	res =
	    apply(s, OP(.type = KVFS_OP_CREATE, .parent = ROOT, NAME("f"), .origin = 5, .seq = 1));
	assert_int_equal(res.err, 0);
	assert_false(res.duplicate);
	f = res.ino;
	res = apply(s, OP(.type = KVFS_OP_PUT, .ino = f, DATA("one"), .origin = 5, .seq = 2));
	assert_false(res.duplicate);

	/* The retried create: its first outcome, nothing changes, the index is consumed. */
	res = apply(s, OP(.type = KVFS_OP_CREATE, .parent = ROOT, NAME("g"), .origin = 5, .seq = 2,
	                  .flags = KVFS_CREATE_EXCL));
	assert_true(res.duplicate);
	assert_int_equal(res.err, 0);
	assert_int_equal(res.ino, f);
	assert_null(lookup(s, ROOT, "g"));
	assert_int_equal(store_applied_index(s), 3);
	/* Older than the last: nothing changes, outcome unknown (0). */
	res = apply(s, OP(.type = KVFS_OP_PUT, .ino = f, DATA("two"), .origin = 5, .seq = 1));
	assert_true(res.duplicate);
	assert_int_equal(res.err, 0);
	assert_int_equal(res.ino, 0);
	assert_value(get(s, f), "one", 3);

	/* A failed operation's outcome is remembered too. */
	res = apply(s, OP(.type = KVFS_OP_MKDIR, .parent = ROOT, NAME("f"), .origin = 5, .seq = 3));
	assert_int_equal(res.err, -EEXIST);
	assert_false(res.duplicate);
	res =
	    apply(s, OP(.type = KVFS_OP_MKDIR, .parent = ROOT, NAME("new"), .origin = 5, .seq = 3));
	assert_true(res.duplicate);
	assert_int_equal(res.err, -EEXIST);
	assert_int_equal(res.ino, 0);
	assert_null(lookup(s, ROOT, "new"));

	/* Origins are independent; origin 0 and seq 0 are never deduplicated. */
	res = apply(s, OP(.type = KVFS_OP_APPEND, .ino = f, DATA("+"), .origin = 2, .seq = 1));
	assert_false(res.duplicate);
	res = apply(s, OP(.type = KVFS_OP_APPEND, .ino = f, DATA("+"), .origin = 9, .seq = 1));
	assert_false(res.duplicate);
	for (int i = 0; i < 2; i++) {
		res = apply(s,
		            OP(.type = KVFS_OP_APPEND, .ino = f, DATA("0"), .origin = 0, .seq = 1));
		assert_false(res.duplicate);
		res = apply(s,
		            OP(.type = KVFS_OP_APPEND, .ino = f, DATA("s"), .origin = 2, .seq = 0));
		assert_false(res.duplicate);
	}
	assert_value(get(s, f), "one++0s0s", 9);
	res = apply(s, OP(.type = KVFS_OP_APPEND, .ino = f, DATA("+"), .origin = 2, .seq = 1));
	assert_true(res.duplicate);
	assert_int_equal(res.ino, f);
	assert_value(get(s, f), "one++0s0s", 9);
	/* A gap in the sequence is fine. */
	res = apply(s, OP(.type = KVFS_OP_APPEND, .ino = f, DATA("!"), .origin = 2, .seq = 10));
	assert_false(res.duplicate);

	store_session_foreach(s, collect_session, &list);
	assert_int_equal(list.n, 3);
	assert_int_equal(list.s[0].origin, 2);
	assert_int_equal(list.s[0].seq, 10);
	assert_int_equal(list.s[0].ino, f);
	assert_int_equal(list.s[1].origin, 5);
	assert_int_equal(list.s[1].seq, 3);
	assert_int_equal(list.s[1].err, -EEXIST);
	assert_int_equal(list.s[2].origin, 9);
	assert_int_equal(list.s[2].seq, 1);
	assert_int_equal(list.s[2].err, 0);
}

/* Issue 9: a committed op whose seq is out of range fails with EINVAL, remembered nowhere (so
 * its origin's numbering cannot wrap), and a huge SETATTR size fails with EFBIG, not ENOMEM:
 * the same outcome on every replica, never an error of the call. */
static void test_seq_and_size_out_of_range(void **state)
{
	struct kvfs_store *s = *state;
	struct kvfs_apply_result res;
	struct kvfs_session sess;
	uint64_t f = mkfile(s, ROOT, "f");

	res = apply(s, OP(.type = KVFS_OP_PUT, .ino = f, DATA("one"), .origin = 5, .seq = 7));
	assert_int_equal(res.err, 0);
	res = apply(
	    s, OP(.type = KVFS_OP_PUT, .ino = f, DATA("evil"), .origin = 5, .seq = UINT64_MAX));
	assert_int_equal(res.err, -EINVAL);
	assert_false(res.duplicate);
	res = apply(s, OP(.type = KVFS_OP_PUT, .ino = f, DATA("evil"), .origin = 5,
	                  .seq = KVFS_SEQ_MAX + 1));
	assert_int_equal(res.err, -EINVAL);
	assert_value(get(s, f), "one", 3);
	assert_true(store_session_get(s, 5, &sess));
	assert_int_equal(sess.seq, 7);
	res = apply(s, OP(.type = KVFS_OP_PUT, .ino = f, DATA("two"), .origin = 5, .seq = 8));
	assert_int_equal(res.err, 0);
	assert_value(get(s, f), "two", 3);
	/* The highest seq in range is taken. */
	res = apply(
	    s, OP(.type = KVFS_OP_PUT, .ino = f, DATA("max"), .origin = 6, .seq = KVFS_SEQ_MAX));
	assert_int_equal(res.err, 0);

	/* SETATTR to 2^50 bytes, with max_value 0 ("unlimited") or 2^60: EFBIG. */
	res = apply(s, OP(.type = KVFS_OP_SETATTR, .ino = f, .flags = KVFS_SET_SIZE,
	                  .size = 1ull << 50, .max_value = 0, .origin = 5, .seq = 9));
	assert_int_equal(res.err, -EFBIG);
	res = apply(s, OP(.type = KVFS_OP_SETATTR, .ino = f, .flags = KVFS_SET_SIZE,
	                  .size = 1ull << 50, .max_value = 1ull << 60));
	assert_int_equal(res.err, -EFBIG);
	assert_value(get(s, f), "max", 3);

	/* A snapshot's session table may not carry such a seq either. */
	{
		struct kvfs_store *t;
		struct kvfs_session bad = {.origin = 3, .seq = UINT64_MAX};

		assert_int_equal(store_init(&t), 0);
		assert_int_equal(store_session_load(t, &bad), -EBADMSG);
		bad.seq = KVFS_SEQ_MAX;
		assert_int_equal(store_session_load(t, &bad), 0);
		store_close(t);
	}
}

/* Counts the inodes visited and stops the walk with 42 at the third. */
static int stop_at_third(void *arg, const struct kvfs_dentry *d, bool first)
{
	size_t *n = arg;

	(void)d;
	return ++*n == 3 ? 42 : 0;
}

/* Checks the counters and links of a store against a full walk: every name is found by lookup,
 * every inode's names are its aliases and count in its nlink, a directory has one name. */
static void assert_consistent(struct kvfs_store *s)
{
	struct store_image *im = store_image_of(s);
	uint64_t bytes = 0;

	assert_int_equal(im->ninodes, store_inode_count(s));
	for (size_t i = 0; i < im->n; i++) {
		struct kvfs_inode *in = get(s, im->inodes[i].ino);
		const struct kvfs_dentry *c, *d;
		uint64_t n = 0, subdirs = 0, names = 0;

		if (im->inodes[i].parent) {
			d = store_lookup_dentry(s, get(s, im->inodes[i].parent), im->inodes[i].name,
			                        strlen(im->inodes[i].name));
			assert_non_null(d);
			assert_ptr_equal(d->in, in);
		}
		if (!im->inodes[i].first)
			continue;
		if (S_ISREG(in->mode))
			bytes += value_size(in->value);
		for (d = in->aliases; d; d = d->alias_next) {
			assert_ptr_equal(d->in, in);
			if (d->dir)
				assert_ptr_equal(
				    store_lookup_dentry(s, d->dir, d->name, d->name_len), d);
			names++;
		}
		for (c = store_child_first(in); c; c = store_child_next(c)) {
			assert_ptr_equal(c->dir, in);
			n++;
			subdirs += S_ISDIR(c->in->mode);
		}
		assert_int_equal(n, in->nchildren);
		assert_int_equal(in->nlink, S_ISDIR(in->mode) ? 2 + subdirs : names);
		if (S_ISDIR(in->mode))
			assert_int_equal(names, 1);
		if (!S_ISCHR(in->mode) && !S_ISBLK(in->mode))
			assert_int_equal(in->rdev, 0);
	}
	assert_int_equal(bytes, store_value_bytes(s));
	store_image_free(im);
}

static void test_foreach_order(void **state)
{
	struct kvfs_store *s = *state;
	uint64_t a = mkdir_(s, ROOT, "a"), f = mkfile(s, ROOT, "f"), b = mkdir_(s, a, "b");
	uint64_t g = mkfile(s, a, "g"), h = mkfile(s, b, "h"), z = mkdir_(s, ROOT, "z");
	uint64_t want[] = {ROOT, a, b, h, g, f, z};
	struct store_image *im = store_image_of(s);
	size_t visited = 0;

	assert_int_equal(im->n, 7);
	for (size_t i = 0; i < 7; i++)
		assert_int_equal(im->inodes[i].ino, want[i]);
	store_image_free(im);
	assert_int_equal(store_foreach(s, stop_at_third, &visited), 42);
	assert_int_equal(visited, 3);
	assert_consistent(s);
}

/* xorshift64*: the random operations must be the same on every run. */
static uint64_t rnd(uint64_t *x)
{
	return xorshift64s(x);
}

/*
 * A random inode number from inos[]: usually one that is still linked in s (a directory when
 * want_dir), sometimes any, which may be gone by now.
 */
static uint64_t pick(uint64_t *x, const struct kvfs_store *s, const uint64_t *inos, size_t n,
                     bool want_dir)
{
	uint64_t ino = inos[rnd(x) % n];

	if (want_dir && rnd(x) % 4 == 0)
		return KVFS_ROOT_INO;
	for (int tries = 0; tries < 8 && rnd(x) % 8 != 0; tries++) {
		const struct kvfs_inode *in = store_get(s, ino);

		if (in && in->nlink && (!want_dir || S_ISDIR(in->mode)))
			break;
		ino = inos[rnd(x) % n];
	}
	return ino;
}

/*
 * A random operation over a small name space, on inodes from inos[], chosen with the help of
 * store s (which has no pins, so that the choice is the same for both stores under test).
 */
static struct kvfs_op random_op(uint64_t *x, const struct kvfs_store *s, const uint64_t *inos,
                                size_t ninos, uint64_t *seqs, uint8_t *data)
{
	static const char *const names[] = {"a",       "b",      "c",   "d", "e",
	                                    ".status", ".kvfsx", "a/b", ""};
	static const uint64_t limits[] = {0, 0, 16, 64};
	static const uint8_t types[] = {
	    KVFS_OP_NOOP,   KVFS_OP_PUT,     KVFS_OP_PUT,    KVFS_OP_APPEND,  KVFS_OP_APPEND,
	    KVFS_OP_CREATE, KVFS_OP_CREATE,  KVFS_OP_CREATE, KVFS_OP_MKDIR,   KVFS_OP_MKDIR,
	    KVFS_OP_MKDIR,  KVFS_OP_SYMLINK, KVFS_OP_UNLINK, KVFS_OP_UNLINK,  KVFS_OP_RMDIR,
	    KVFS_OP_RENAME, KVFS_OP_RENAME,  KVFS_OP_RENAME, KVFS_OP_SETATTR, KVFS_OP_SETATTR,
	};
	struct kvfs_op op = {0};
	const char *name = names[rnd(x) % 10 == 0 ? rnd(x) % 9 : rnd(x) % 5];
	const char *newname = names[rnd(x) % 10 == 0 ? rnd(x) % 9 : rnd(x) % 5];

	op.type = types[rnd(x) % sizeof(types)];
	op.flags = (uint32_t)(rnd(x) % 4 == 0 ? rnd(x) & 0xff : 0);
	op.time_ns = (int64_t)(rnd(x) % 1000000);
	op.max_value = limits[rnd(x) % 4];
	op.ino = pick(x, s, inos, ninos, false);
	op.parent = pick(x, s, inos, ninos, true);
	op.newparent = rnd(x) % 2 ? op.parent : pick(x, s, inos, ninos, true);
	op.mode = (uint32_t)rnd(x);
	op.uid = (uint32_t)(rnd(x) % 3);
	op.gid = (uint32_t)(rnd(x) % 3);
	op.size = rnd(x) % 40;
	op.atime_ns = (int64_t)(rnd(x) % 100);
	op.mtime_ns = (int64_t)(rnd(x) % 100);
	op.name = name;
	op.name_len = (uint32_t)strlen(name);
	op.newname = newname;
	op.newname_len = (uint32_t)strlen(newname);
	op.data_len = (uint32_t)(rnd(x) % 24);
	for (uint32_t i = 0; i < op.data_len; i++)
		data[i] = (uint8_t)('a' + rnd(x) % 26);
	op.data = data;
	if (op.type == KVFS_OP_SYMLINK && rnd(x) % 8 == 0)
		op.data_len = 0;
	op.origin = (uint32_t)(rnd(x) % 4);
	if (op.origin) {
		uint64_t *seq = &seqs[op.origin];

		/* Mostly the next number, sometimes a retry of an old one. */
		op.seq = rnd(x) % 8 == 0 && *seq > 2 ? *seq - rnd(x) % 3 : ++*seq;
	}
	return op;
}

static void test_determinism(void **state)
{
	enum { NOPS = 5000, MAXINOS = NOPS + 1 };
	struct kvfs_store *a = *state, *b;
	uint64_t *inos = calloc(MAXINOS, sizeof(*inos)), seqs[4] = {0}, x = 0x1234567887654321ull;
	struct kvfs_inode **pinned = calloc(NOPS, sizeof(*pinned));
	size_t ninos = 1, npinned = 0, ok = 0, dups = 0;
	uint64_t errs_seen = 0;
	uint8_t data[32];

	assert_non_null(inos);
	assert_non_null(pinned);
	assert_int_equal(store_init(&b), 0);
	inos[0] = ROOT;
	for (uint64_t i = 1; i <= NOPS; i++) {
		struct kvfs_op op = random_op(&x, b, inos, ninos, seqs, data);
		struct kvfs_apply_result ra, rb;
		uint64_t r = rnd(&x);

		assert_int_equal(store_apply(a, 1 + i / 1000, i, &op, &ra), 0);
		assert_int_equal(store_apply(b, 1 + i / 1000, i, &op, &rb), 0);
		assert_int_equal(ra.err, rb.err);
		assert_int_equal(ra.ino, rb.ino);
		assert_int_equal(ra.replaced_ino, rb.replaced_ino);
		assert_int_equal(ra.duplicate, rb.duplicate);
		ok += ra.err == 0 && !ra.duplicate && op.type != KVFS_OP_NOOP;
		dups += ra.duplicate;
		if (ra.err < 0 && ra.err > -64)
			errs_seen |= 1ull << -ra.err;
		if (ra.ino && ra.ino == KVFS_INO_BASE + i)
			inos[ninos++] = ra.ino;
		/* Only a has pins: outcomes must not depend on them. */
		if (r % 3 == 0) {
			struct kvfs_inode *in = store_get(a, inos[(r >> 8) % ninos]);

			if (in) {
				store_pin(a, in, 1);
				pinned[npinned++] = in;
			}
		} else if (r % 3 == 1 && npinned) {
			size_t k = (size_t)((r >> 8) % npinned);

			store_unpin(a, pinned[k], 1);
			pinned[k] = pinned[--npinned];
		}
		if (i % 500 == 0) {
			assert_consistent(a);
			assert_stores_equal(a, b);
		}
	}
	/* The run must have done real work, not just failed. */
	print_message("determinism: %zu of %d applied, %zu duplicates, %llu inodes, errnos %llx\n",
	              ok, NOPS, dups, (unsigned long long)store_inode_count(a),
	              (unsigned long long)errs_seen);
	assert_true(ok > NOPS / 5);
	assert_true(dups > 50);
	/* ENOENT ENOTDIR EISDIR EINVAL EEXIST ENOTEMPTY EFBIG EACCES. */
	assert_true(__builtin_popcountll(errs_seen) >= 8);
	assert_true(store_inode_count(a) > 5);
	assert_stores_equal(a, b);
	while (npinned)
		store_unpin(a, pinned[--npinned], 1);
	assert_stores_equal(a, b);
	store_close(b);
	free(pinned);
	free(inos);
}

/*
 * Bends op into what no FUSE layer builds but a buggy or hostile peer might: unknown types and
 * flags, max_value 0 or huge, sizes no allocation can hold, inode numbers 0 and ~0, names that
 * are empty, ".", "..", overlong or hold '/' and NUL, data up to sizeof(junk) bytes.
 */
static void mutate_op(uint64_t *x, struct kvfs_op *op, const uint8_t *junk, size_t njunk)
{
	static const uint64_t sizes[] = {
	    0, 1, 39, 4096, KVFS_DATA_MAX + 1ull, 1ull << 40, UINT64_MAX - 1, UINT64_MAX};
	static const uint64_t inos[] = {0, 1, 2, KVFS_INO_BASE, UINT64_MAX};
	static const char *const names[] = {".", "..", "a/b", "/", "a\0b", ".status.json"};

	switch (rnd(x) % 10) {
	case 0:
		op->type = (uint8_t)(rnd(x) % 16);
		break;
	case 1:
		op->flags = (uint32_t)rnd(x);
		break;
	case 2:
		op->max_value = sizes[rnd(x) % 8];
		op->size = sizes[rnd(x) % 8];
		op->flags |= KVFS_SET_SIZE;
		break;
	case 3:
		op->ino = inos[rnd(x) % 5];
		op->parent = inos[rnd(x) % 5];
		break;
	case 4:
		op->name = names[rnd(x) % 6];
		op->name_len =
		    (uint32_t)(op->name[0] == 'a' && op->name[1] == '\0' ? 3 : strlen(op->name));
		break;
	case 5:
		op->newname = (const char *)junk;
		op->newname_len = (uint32_t)(rnd(x) % 300);
		break;
	case 6:
		op->name = (const char *)junk + rnd(x) % 8;
		op->name_len = (uint32_t)(rnd(x) % 300);
		break;
	case 7:
		op->data = junk;
		op->data_len = (uint32_t)(rnd(x) % njunk);
		op->max_value = sizes[rnd(x) % 8];
		break;
	case 8:
		op->mode = (uint32_t)rnd(x);
		op->flags |= KVFS_SET_MODE;
		break;
	default:
		op->data_len = 0;
		op->name_len = 0;
		op->newname_len = 0;
		break;
	}
}

/* Bends the len encoded bytes of an op at buf (room for cap): flips, cuts, grows, or junk. */
static size_t mutate_bytes(uint64_t *x, uint8_t *buf, size_t len, size_t cap)
{
	switch (rnd(x) % 5) {
	case 0:
		for (int i = 0; i < 3 && len; i++)
			buf[rnd(x) % len] ^= (uint8_t)(1u << rnd(x) % 8);
		return len;
	case 1:
		return len ? (size_t)(rnd(x) % len) : 0;
	case 2:
		while (len < cap && rnd(x) % 4)
			buf[len++] = (uint8_t)rnd(x);
		return len;
	case 3:
		len = (size_t)(rnd(x) % 64);
		for (size_t i = 0; i < len; i++)
			buf[i] = (uint8_t)rnd(x);
		return len;
	default:
		return len; /* intact */
	}
}

/*
 * Applying is total: thousands of random, bent and undecodable entries, applied to two stores
 * (as ops, or as log payloads through store_entry_apply()), never make the call fail (no
 * allocation can fail here, so not even -ENOMEM), consume every index, and leave both stores
 * identical.
 */
static void test_apply_total(void **state)
{
	enum { NOPS = 20000, MAXINOS = NOPS + 1, JUNK = 4096 };
	struct kvfs_store *a = *state, *b;
	uint64_t *inos = calloc(MAXINOS, sizeof(*inos)), seqs[4] = {0}, x = 0x9e3779b97f4a7c15ull;
	uint8_t *junk = malloc(JUNK), *buf = malloc(2 * JUNK + 1024), data[32];
	size_t ninos = 1, ok = 0, bad = 0, errs = 0;

	assert_non_null(inos);
	assert_non_null(junk);
	assert_non_null(buf);
	for (size_t i = 0; i < JUNK; i++)
		junk[i] =
		    rnd(&x) % 8 == 0 ? (uint8_t) "/.\0"[rnd(&x) % 3] : (uint8_t)('a' + rnd(&x) % 3);
	assert_int_equal(store_init(&b), 0);
	inos[0] = ROOT;
	for (uint64_t i = 1; i <= NOPS; i++) {
		struct kvfs_op op = random_op(&x, b, inos, ninos, seqs, data), oa, ob;
		struct kvfs_apply_result ra, rb;
		uint64_t how = rnd(&x) % 3;

		if (rnd(&x) % 2)
			mutate_op(&x, &op, junk, JUNK);
		if (how == 0) {
			assert_int_equal(store_apply(a, 7, i, &op, &ra), 0);
			assert_int_equal(store_apply(b, 7, i, &op, &rb), 0);
		} else {
			size_t len = op_encoded_size(&op);

			assert_true(len <= 2 * JUNK + 1024);
			op_encode(&op, buf);
			if (how == 2)
				len = mutate_bytes(&x, buf, len, 2 * JUNK + 1024);
			assert_int_equal(store_entry_apply(a, 7, i, buf, len, &oa, &ra), 0);
			assert_int_equal(store_entry_apply(b, 7, i, buf, len, &ob, &rb), 0);
			assert_int_equal(oa.type, ob.type);
			bad += ra.err == -EBADMSG && oa.type == KVFS_OP_NOOP;
		}
		assert_int_equal(store_applied_index(a), i);
		assert_int_equal(store_applied_index(b), i);
		assert_int_equal(ra.err, rb.err);
		assert_int_equal(ra.ino, rb.ino);
		assert_int_equal(ra.replaced_ino, rb.replaced_ino);
		assert_int_equal(ra.duplicate, rb.duplicate);
		ok += ra.err == 0 && !ra.duplicate;
		errs += ra.err < 0;
		if (ra.ino && ra.ino == KVFS_INO_BASE + i)
			inos[ninos++] = ra.ino;
		if (i % 2000 == 0) {
			assert_consistent(a);
			assert_stores_equal(a, b);
		}
	}
	print_message("total: %zu applied, %zu failed, %zu undecodable, %llu inodes\n", ok, errs,
	              bad, (unsigned long long)store_inode_count(a));
	assert_true(ok > NOPS / 20);
	assert_true(errs > NOPS / 5);
	assert_true(bad > NOPS / 20);
	assert_stores_equal(a, b);
	store_close(b);
	free(buf);
	free(junk);
	free(inos);
}

static void test_many_inodes(void **state)
{
	enum { N = 20000 };
	struct kvfs_store *s = *state;
	uint64_t dirs[8], first = 0;
	char name[32];

	for (int d = 0; d < 8; d++) {
		snprintf(name, sizeof(name), "dir%d", d);
		dirs[d] = mkdir_(s, ROOT, name);
	}
	for (int i = 0; i < N; i++) {
		uint64_t ino;

		snprintf(name, sizeof(name), "file-%d", i);
		ino = mkfile(s, dirs[i % 8], name);
		if (!first)
			first = ino;
		put(s, ino, "v");
	}
	assert_int_equal(store_inode_count(s), 1 + 8 + N);
	assert_int_equal(store_value_bytes(s), N);
	for (int i = 0; i < N; i++) {
		struct kvfs_inode *in;

		snprintf(name, sizeof(name), "file-%d", i);
		in = lookup(s, dirs[i % 8], name);
		assert_non_null(in);
		assert_ptr_equal(store_get(s, in->ino), in);
		assert_null(lookup(s, dirs[(i + 1) % 8], name));
	}
	assert_int_equal(get(s, dirs[0])->nchildren, N / 8);
	assert_consistent(s);
	for (int i = 0; i < N; i += 2) {
		snprintf(name, sizeof(name), "file-%d", i);
		assert_int_equal(
		    err_of(s, OP(.type = KVFS_OP_UNLINK, .parent = dirs[i % 8], NAME(name))), 0);
	}
	assert_int_equal(store_inode_count(s), 1 + 8 + N / 2);
	assert_int_equal(store_value_bytes(s), N / 2);
	assert_consistent(s);
}

/* Rebuilding a store from store_foreach() with store_load_inode() and store_load_link(). */
struct loader {
	struct kvfs_store *dst;
};

static int load_one(void *arg, const struct kvfs_dentry *d, bool first)
{
	struct loader *l = arg;
	uint64_t dir = d->dir ? d->dir->ino : 0;

	if (!first)
		return store_load_link(l->dst, dir, d->name, d->name_len, d->in->ino);
	return store_load_inode(l->dst, dir, d->name, d->name_len, d->in);
}

static int load_sess(void *arg, const struct kvfs_session *sess)
{
	struct loader *l = arg;

	return store_session_load(l->dst, sess);
}

#define LOAD(t, parent, nm, in)  store_load_inode(t, parent, nm, (uint32_t)strlen(nm), in)
#define LINK(t, parent, nm, ino) store_load_link(t, parent, nm, (uint32_t)strlen(nm), ino)

static void test_load(void **state)
{
	struct kvfs_store *s = *state, *t;
	uint64_t a = mkdir_(s, ROOT, "a"), f = mkfile(s, a, "f"), l, fifo;
	struct loader ld;
	struct kvfs_inode in;
	struct kvfs_session sess = {.origin = 3, .seq = 4, .err = -EEXIST, .ino = 0};

	put(s, f, "contents");
	l = mk(s, KVFS_OP_SYMLINK, a, "l");
	apply(s, OP(.type = KVFS_OP_SETATTR, .ino = ROOT, .flags = KVFS_SET_MODE | KVFS_SET_UID,
	            .mode = 0711, .uid = 5, .origin = 1, .seq = 7));
	mkdir_(s, a, "sub");
	/* Names of one file in three directories, a device and a FIFO. */
	assert_int_equal(err_of(s, OP(.type = KVFS_OP_LINK, .ino = f, .parent = ROOT, NAME("f1"))),
	                 0);
	assert_int_equal(err_of(s, OP(.type = KVFS_OP_LINK, .ino = f,
	                              .parent = lookup(s, a, "sub")->ino, NAME("f2"))),
	                 0);
	assert_int_equal(err_of(s, OP(.type = KVFS_OP_MKNOD, .parent = a, NAME("dev"),
	                              .mode = S_IFCHR | 0600, .rdev = 0x10203)),
	                 0);
	fifo = apply(s, OP(.type = KVFS_OP_MKNOD, .parent = ROOT, NAME("fifo"),
	                   .mode = S_IFIFO | 0600))
	           .ino;
	assert_int_equal(store_init(&t), 0);
	ld.dst = t;
	assert_int_equal(store_foreach(s, load_one, &ld), 0);
	assert_int_equal(store_session_foreach(s, load_sess, &ld), 0);
	store_load_done(t, store_applied_index(s), store_applied_epoch(s));
	assert_stores_equal(s, t);
	assert_consistent(t);
	assert_int_equal(get(t, f)->nlink, 3);
	assert_int_equal(lookup(t, a, "dev")->rdev, 0x10203);
	/* The value is shared, not copied. */
	assert_ptr_equal(get(t, f)->value, get(s, f)->value);
	assert_int_equal(get(s, f)->value->refs, 2);

	/* What does not fit. */
	memset(&in, 0, sizeof(in));
	in.ino = 1000;
	in.mode = S_IFREG | 0644;
	assert_int_equal(LOAD(t, 999, "x", &in), -EBADMSG); /* unknown parent */
	assert_int_equal(LOAD(t, f, "x", &in), -EBADMSG);   /* parent not a directory */
	in.ino = l;
	assert_int_equal(LOAD(t, ROOT, "x", &in), -EBADMSG); /* known ino */
	in.ino = 1000;
	assert_int_equal(LOAD(t, a, "f", &in), -EBADMSG);   /* known name */
	assert_int_equal(LOAD(t, a, "a/b", &in), -EBADMSG); /* bad name */
	in.mode = 0170000 | 0644;
	assert_int_equal(LOAD(t, a, "y", &in), -EBADMSG); /* bad type */
	in.mode = S_IFLNK | 0777;
	assert_int_equal(LOAD(t, a, "y", &in), -EBADMSG); /* symlink without target */
	in.mode = S_IFIFO | 0644;
	in.rdev = 5;
	assert_int_equal(LOAD(t, a, "y", &in), -EBADMSG); /* a device number on a FIFO */
	in.mode = S_IFREG | 0644;
	assert_int_equal(LOAD(t, a, "y", &in), -EBADMSG); /* ... on a file */
	in.rdev = 0;
	in.mode = S_IFSOCK | 0644;
	in.value = get(s, f)->value;
	assert_int_equal(LOAD(t, a, "y", &in), -EBADMSG); /* a socket with a value */
	in.value = NULL;
	in.mode = S_IFREG | 0644;
	in.ino = 5;
	assert_int_equal(LOAD(t, a, "y", &in), -EBADMSG); /* reserved number */
	in.ino = ROOT;
	assert_int_equal(LOAD(t, a, "y", &in), -EBADMSG);      /* root with a parent */
	assert_int_equal(LINK(t, a, "y", 999), -EBADMSG);      /* link to an unknown inode */
	assert_int_equal(LINK(t, ROOT, "y", a), -EBADMSG);     /* link to a directory */
	assert_int_equal(LINK(t, ROOT, "f1", fifo), -EBADMSG); /* name taken */
	assert_int_equal(LINK(t, f, "y", fifo), -EBADMSG);     /* not in a directory */
	assert_int_equal(LINK(t, ROOT, "..", fifo), -EBADMSG); /* bad name */
	assert_int_equal(LINK(t, ROOT, "fifo2", fifo), 0);
	assert_int_equal(get(t, fifo)->nlink, 2);
	assert_int_equal(store_session_load(t, &sess), 0);
	assert_int_equal(store_session_load(t, &sess), -EBADMSG);
	sess.origin = 0;
	assert_int_equal(store_session_load(t, &sess), -EBADMSG);
	in.ino = 1000;
	assert_int_equal(LOAD(t, a, "y", &in), 0);
	assert_consistent(t);

	/* The loaded store goes on from the next index; its new inodes do not collide. */
	l = mkfile(t, a, "after");
	assert_int_equal(l, KVFS_INO_BASE + store_applied_index(t));
	assert_int_equal(store_inode_count(t), store_inode_count(s) + 2);
	assert_consistent(t);
	store_close(t);
	assert_int_equal(get(s, f)->value->refs, 1);
}

static void test_value(void **state)
{
	struct kvfs_value *v = NULL, *w, *held;

	assert_int_equal(value_append(&v, "abc", 3), 0);
	assert_non_null(v);
	assert_int_equal(value_size(v), 3);
	assert_int_equal(v->refs, 1);
	/* Sole owner: grows in place with geometric capacity. */
	for (int i = 0; i < 1000; i++) {
		bool room = v->cap >= v->size + 1;

		w = v;
		assert_int_equal(value_append(&v, "x", 1), 0);
		if (room)
			assert_ptr_equal(v, w);
	}
	assert_int_equal(value_size(v), 1003);
	assert_true(v->cap < 4 * 1003);
	assert_memory_equal(v->data, "abcx", 4);

	/* Shared: a copy, the original is untouched and keeps one reference. */
	held = value_ref(v);
	assert_int_equal(held->refs, 2);
	assert_int_equal(value_append(&v, "yz", 2), 0);
	assert_ptr_not_equal(v, held);
	assert_int_equal(held->refs, 1);
	assert_int_equal(held->size, 1003);
	assert_int_equal(v->size, 1005);
	assert_memory_equal(v->data + 1003, "yz", 2);
	assert_memory_equal(v->data, held->data, 1003);

	/* Resize: cut, extend with zeros, shared copy, zero drops the value. */
	assert_int_equal(value_resize(&v, 2), 0);
	assert_int_equal(value_size(v), 2);
	assert_int_equal(value_resize(&v, 6), 0);
	assert_memory_equal(v->data, "ab\0\0\0\0", 6);
	w = value_ref(v);
	assert_int_equal(value_resize(&v, 1), 0);
	assert_ptr_not_equal(v, w);
	assert_int_equal(w->size, 6);
	assert_memory_equal(v->data, "a", 1);
	value_unref(w);
	assert_int_equal(value_resize(&v, 0), 0);
	assert_null(v);
	assert_int_equal(value_resize(&v, 3), 0);
	assert_memory_equal(v->data, "\0\0\0", 3);
	value_unref(v);

	v = value_new(NULL, 4);
	assert_memory_equal(v->data, "\0\0\0\0", 4);
	assert_int_equal(value_append(&v, NULL, 0), 0);
	assert_int_equal(value_size(v), 4);
	value_unref(v);
	value_unref(held);
	value_unref(NULL);
	assert_null(value_ref(NULL));
	assert_int_equal(value_size(NULL), 0);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
	const struct CMUnitTest tests[] = {
	    T(test_init_root),
	    T(test_apply_index),
	    T(test_noop_and_unknown),
	    T(test_create),
	    T(test_mkdir),
	    T(test_symlink),
	    T(test_name_validity),
	    T(test_reserved_names),
	    T(test_path_limit),
	    T(test_put_append),
	    T(test_unlink),
	    T(test_rmdir),
	    T(test_rename_move),
	    T(test_rename_errors),
	    T(test_rename_replace),
	    T(test_setattr),
	    T(test_enomem_changes_nothing),
	    T(test_pins),
	    T(test_child_order),
	    T(test_exactly_once),
	    T(test_seq_and_size_out_of_range),
	    T(test_foreach_order),
	    T(test_determinism),
	    T(test_apply_total),
	    T(test_many_inodes),
	    T(test_load),
	    T(test_value),
	};
#undef T

	return cmocka_run_group_tests(tests, NULL, NULL);
}
