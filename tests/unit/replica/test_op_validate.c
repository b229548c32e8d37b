/*
 * Unit tests of the proposal checks (replica/op_validate.c): every op the FUSE layer builds passes,
 * also once encoded and decoded (as a leader sees a forwarded op) and with KVFS_OP_RULES2, and
 * each kind of bad op gets its errno, the types of protocol 2 (LINK, MKNOD, FALLOCATE, RENAME's
 * EXCHANGE) included.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "kvfs/op.h"
#include "kvfs/store.h"

/* The limits of a node started with --max-value 1M, as the FUSE layer's ops carry them. */
static const struct kvfs_op_limits lim = {.max_value = 1u << 20};

#define OPM(max, ...) ((struct kvfs_op){.max_value = (max), __VA_ARGS__})
#define VOP(...)      OPM(1u << 20, __VA_ARGS__)
#define VNAME(x)      .name = (x), .name_len = (uint32_t)(sizeof(x) - 1)
#define VNAME2(x)     .newname = (x), .newname_len = (uint32_t)(sizeof(x) - 1)

/* The ops fs/fuse_ops.c and fs/fuse_file.c build in normal use, with what they fill in. */
static void test_validate_accepts_fuse_ops(void **state)
{
	static uint8_t big[1u << 20];
	char name[KVFS_NAME_MAX + 1], target[KVFS_PATH_MAX + 1];
	const struct kvfs_op ok[] = {
	    VOP(.type = KVFS_OP_PUT, .ino = 17), /* empty value */
	    VOP(.type = KVFS_OP_PUT, .ino = 17, .data = big, .data_len = sizeof(big)),
	    VOP(.type = KVFS_OP_APPEND, .ino = 17, .data = big, .data_len = 3),
	    VOP(.type = KVFS_OP_CREATE, .parent = 1, VNAME("f"), .mode = 0644, .uid = 1000),
	    VOP(.type = KVFS_OP_CREATE, .parent = 1, VNAME("f"), .mode = 07777,
	        .flags = KVFS_CREATE_EXCL),
	    VOP(.type = KVFS_OP_MKDIR, .parent = 20, VNAME(".hidden"), .mode = 0755),
	    VOP(.type = KVFS_OP_MKDIR, .parent = 20, VNAME("..."), .mode = 0),
	    VOP(.type = KVFS_OP_SYMLINK, .parent = 1, VNAME("l"), .mode = 0777,
	        .data = (const uint8_t *)"../a/b", .data_len = 6),
	    VOP(.type = KVFS_OP_UNLINK, .parent = 1, VNAME("f")),
	    VOP(.type = KVFS_OP_RMDIR, .parent = 1, VNAME("d")),
	    VOP(.type = KVFS_OP_RENAME, .parent = 1, VNAME("a"), .newparent = 30, VNAME2("b")),
	    VOP(.type = KVFS_OP_RENAME, .parent = 1, VNAME("a"), .newparent = 1, VNAME2("a"),
	        .flags = KVFS_RENAME_NOREPLACE),
	    VOP(.type = KVFS_OP_SETATTR, .ino = 17, .flags = KVFS_SET_MODE, .mode = 04755),
	    VOP(.type = KVFS_OP_SETATTR, .ino = 17, .flags = KVFS_SET_SIZE, .size = 1u << 20),
	    VOP(.type = KVFS_OP_SETATTR, .ino = 17,
	        .flags = KVFS_SET_UID | KVFS_SET_GID | KVFS_SET_ATIME | KVFS_SET_MTIME_NOW,
	        .atime_ns = -5, .uid = 0xffffffffu),
	    VOP(.type = KVFS_OP_SETATTR, .ino = 1, .flags = KVFS_SET_ATIME_NOW | KVFS_SET_MTIME),
	    VOP(.type = KVFS_OP_SETATTR, .ino = 17), /* chown(f, -1, -1): ctime only */
	    VOP(.type = KVFS_OP_RENAME, .parent = 1, VNAME("a"), .newparent = 30, VNAME2("b"),
	        .flags = KVFS_RENAME_EXCHANGE),
	    VOP(.type = KVFS_OP_LINK, .ino = KVFS_INO_BASE, .parent = 1, VNAME("second")),
	    VOP(.type = KVFS_OP_LINK, .ino = UINT64_MAX, .parent = 40, VNAME("...")),
	    VOP(.type = KVFS_OP_MKNOD, .parent = 1, VNAME("fifo"), .mode = S_IFIFO | 0644),
	    VOP(.type = KVFS_OP_MKNOD, .parent = 1, VNAME("sock"), .mode = S_IFSOCK | 0755),
	    VOP(.type = KVFS_OP_MKNOD, .parent = 1, VNAME("null"), .mode = S_IFCHR | 0666,
	        .rdev = 0x0103),
	    VOP(.type = KVFS_OP_MKNOD, .parent = 1, VNAME("sda"), .mode = S_IFBLK | 07777,
	        .rdev = 0xffffffffu),
	    VOP(.type = KVFS_OP_MKNOD, .parent = 1, VNAME("zero"), .mode = S_IFCHR), /* rdev 0 */
	    VOP(.type = KVFS_OP_FALLOCATE, .ino = 17, .offset = 0, .length = 1u << 20),
	    VOP(.type = KVFS_OP_FALLOCATE, .ino = 17, .offset = (1u << 20) - 1, .length = 1),
	    VOP(.type = KVFS_OP_FALLOCATE, .ino = 17, .offset = 5, .length = 6,
	        .flags = KVFS_FALLOC_ZERO_RANGE),
	    VOP(.type = KVFS_OP_FALLOCATE, .ino = 17, .offset = 5, .length = 6,
	        .flags = KVFS_FALLOC_ZERO_RANGE | KVFS_FALLOC_KEEP_SIZE),
	    /* With KEEP_SIZE the range may pass the limit: the size does not change. */
	    VOP(.type = KVFS_OP_FALLOCATE, .ino = 17, .offset = 1ull << 40, .length = 1ull << 40,
	        .flags = KVFS_FALLOC_KEEP_SIZE),
	    VOP(.type = KVFS_OP_FALLOCATE, .ino = 17, .offset = 0, .length = INT64_MAX,
	        .flags = KVFS_FALLOC_PUNCH_HOLE | KVFS_FALLOC_KEEP_SIZE),
	    VOP(.type = KVFS_OP_FALLOCATE, .ino = 17, .offset = INT64_MAX - 1, .length = 1,
	        .flags = KVFS_FALLOC_ZERO_RANGE | KVFS_FALLOC_KEEP_SIZE),
	    /* Locks (issue 13): record locks up to the end, flock, unlock, release. */
	    VOP(.type = KVFS_OP_LOCK, .ino = 17, .lk_node = 2, .lk_kind = KVFS_LOCK_POSIX,
	        .lk_type = KVFS_LOCK_WR, .lk_start = 5, .lk_end = KVFS_LOCK_END_MAX),
	    VOP(.type = KVFS_OP_LOCK, .ino = 17, .lk_node = 2, .lk_kind = KVFS_LOCK_FLOCK,
	        .lk_type = KVFS_LOCK_UN),
	    VOP(.type = KVFS_OP_UNLOCK_OWNER, .ino = 17, .lk_node = 2, .lk_owner = UINT64_MAX),
	    VOP(.type = KVFS_OP_RELEASE_NODE, .lk_node = 255, .lk_inc = UINT64_MAX),
	};
	struct kvfs_op op;

	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		assert_int_equal(op_validate(&ok[i], &lim), 0);
		/* Every proposer sets KVFS_OP_RULES2; it changes nothing here. */
		op = ok[i];
		op.flags |= KVFS_OP_RULES2;
		if (op_validate(&op, &lim) != 0)
			fail_msg("ok op %zu (%s) with RULES2: %d", i, op_type_name(op.type),
			         op_validate(&op, &lim));
		/* Also once encoded and decoded, as a leader sees a forwarded op. */
		{
			uint8_t *buf = malloc(op_encoded_size(&ok[i]));
			size_t len;

			assert_non_null(buf);
			len = op_encode(&ok[i], buf);
			assert_int_equal(op_decode(&op, buf, len), 0);
			assert_int_equal(op_validate(&op, &lim), 0);
			free(buf);
		}
	}
	/* The longest name and target the FUSE layer lets through. */
	memset(name, 'n', sizeof(name));
	memset(target, 't', sizeof(target));
	op = VOP(.type = KVFS_OP_SYMLINK, .parent = 1, .name = name, .name_len = KVFS_NAME_MAX,
	         .data = (const uint8_t *)target, .data_len = KVFS_PATH_MAX);
	assert_int_equal(op_validate(&op, &lim), 0);
	/* A smaller max_value than ours (a follower with a smaller --max-value) is fine. */
	op = OPM(10, .type = KVFS_OP_PUT, .ino = 17, .data = big, .data_len = 10);
	assert_int_equal(op_validate(&op, &lim), 0);
}

static void test_validate_refuses(void **state)
{
	static uint8_t big[(1u << 20) + 1];
	char name[KVFS_NAME_MAX + 1], target[KVFS_PATH_MAX + 1];
	struct kvfs_op_limits small = {.max_value = 100};
	struct {
		struct kvfs_op op;
		int err;
	} bad[] = {
	    /* type */
	    {VOP(.type = KVFS_OP_NOOP), -EINVAL},
	    {VOP(.type = KVFS_OP__COUNT), -EINVAL},
	    {VOP(.type = 0xff), -EINVAL},
	    /* flags */
	    {VOP(.type = KVFS_OP_PUT, .ino = 17, .flags = 1), -EINVAL},
	    {VOP(.type = KVFS_OP_CREATE, .parent = 1, VNAME("f"), .flags = 2), -EINVAL},
	    {VOP(.type = KVFS_OP_MKDIR, .parent = 1, VNAME("f"), .flags = KVFS_CREATE_EXCL),
	     -EINVAL},
	    {VOP(.type = KVFS_OP_RENAME, .parent = 1, VNAME("a"), .newparent = 1, VNAME2("b"),
	         .flags = 8),
	     -EINVAL},
	    {VOP(.type = KVFS_OP_SETATTR, .ino = 17, .flags = 0x100), -EINVAL},
	    /* max_value */
	    {OPM(0, .type = KVFS_OP_PUT, .ino = 17), -EINVAL},
	    {OPM((1u << 20) + 1, .type = KVFS_OP_PUT, .ino = 17), -EINVAL},
	    /* sizes */
	    {VOP(.type = KVFS_OP_PUT, .ino = 17, .data = big, .data_len = sizeof(big)), -EFBIG},
	    {VOP(.type = KVFS_OP_APPEND, .ino = 17, .data = big, .data_len = sizeof(big)), -EFBIG},
	    {OPM(10, .type = KVFS_OP_PUT, .ino = 17, .data = big, .data_len = 11), -EFBIG},
	    {VOP(.type = KVFS_OP_SETATTR, .ino = 17, .flags = KVFS_SET_SIZE, .size = 1ull << 40),
	     -EFBIG},
	    {VOP(.type = KVFS_OP_SETATTR, .ino = 17, .flags = KVFS_SET_SIZE, .size = UINT64_MAX),
	     -EFBIG},
	    /* a length without its bytes */
	    {VOP(.type = KVFS_OP_PUT, .ino = 17, .data_len = 5), -EINVAL},
	    {VOP(.type = KVFS_OP_UNLINK, .parent = 1, .name_len = 5), -EINVAL},
	    /* modes */
	    {VOP(.type = KVFS_OP_CREATE, .parent = 1, VNAME("f"), .mode = S_IFREG | 0644), -EINVAL},
	    {VOP(.type = KVFS_OP_MKDIR, .parent = 1, VNAME("f"), .mode = 010000), -EINVAL},
	    {VOP(.type = KVFS_OP_SETATTR, .ino = 17, .flags = KVFS_SET_MODE, .mode = S_IFDIR),
	     -EINVAL},
	    /* names */
	    {VOP(.type = KVFS_OP_CREATE, .parent = 1, VNAME("")), -EINVAL},
	    {VOP(.type = KVFS_OP_CREATE, .parent = 1, VNAME(".")), -EINVAL},
	    {VOP(.type = KVFS_OP_MKDIR, .parent = 1, VNAME("..")), -EINVAL},
	    {VOP(.type = KVFS_OP_CREATE, .parent = 1, VNAME("a/b")), -EINVAL},
	    {VOP(.type = KVFS_OP_UNLINK, .parent = 1, VNAME("a\0b")), -EINVAL},
	    {VOP(.type = KVFS_OP_RMDIR, .parent = 1, VNAME("/")), -EINVAL},
	    {VOP(.type = KVFS_OP_RENAME, .parent = 1, VNAME(".."), .newparent = 1, VNAME2("b")),
	     -EINVAL},
	    {VOP(.type = KVFS_OP_RENAME, .parent = 1, VNAME("a"), .newparent = 1, VNAME2("b/c")),
	     -EINVAL},
	    {VOP(.type = KVFS_OP_RENAME, .parent = 1, VNAME("a"), .newparent = 1, VNAME2("")),
	     -EINVAL},
	    {VOP(.type = KVFS_OP_CREATE, .parent = 1, .name = name, .name_len = KVFS_NAME_MAX + 1),
	     -ENAMETOOLONG},
	    {VOP(.type = KVFS_OP_RENAME, .parent = 1, VNAME("a"), .newparent = 1, .newname = name,
	         .newname_len = KVFS_NAME_MAX + 1),
	     -ENAMETOOLONG},
	    /* symlink targets */
	    {VOP(.type = KVFS_OP_SYMLINK, .parent = 1, VNAME("l")), -ENOENT},
	    {VOP(.type = KVFS_OP_SYMLINK, .parent = 1, VNAME("l"), .data = (const uint8_t *)target,
	         .data_len = KVFS_PATH_MAX + 1),
	     -ENAMETOOLONG},
	    {VOP(.type = KVFS_OP_SYMLINK, .parent = 1, VNAME("l"), .data = (const uint8_t *)"a\0b",
	         .data_len = 3),
	     -EINVAL},
	    {VOP(.type = KVFS_OP_SYMLINK, .parent = 1, VNAME("l"), .data_len = 3), -EINVAL},
	    /* RULES2 does not make a NOOP proposable; other high bits stay unknown */
	    {VOP(.type = KVFS_OP_NOOP, .flags = KVFS_OP_RULES2), -EINVAL},
	    {VOP(.type = KVFS_OP_PUT, .ino = 17, .flags = KVFS_OP_RULES2 | 0x40000000u), -EINVAL},
	    /* RENAME_EXCHANGE */
	    {VOP(.type = KVFS_OP_RENAME, .parent = 1, VNAME("a"), .newparent = 1, VNAME2("b"),
	         .flags = KVFS_RENAME_EXCHANGE | KVFS_RENAME_NOREPLACE),
	     -EINVAL},
	    {VOP(.type = KVFS_OP_RENAME, .parent = 1, VNAME("a"), .newparent = 1, VNAME2("b"),
	         .flags = 0x4),
	     -EINVAL},
	    {VOP(.type = KVFS_OP_RENAME, .parent = 1, VNAME("a"), .newparent = 1, VNAME2(".."),
	         .flags = KVFS_RENAME_EXCHANGE),
	     -EINVAL},
	    /* LINK */
	    {VOP(.type = KVFS_OP_LINK, .ino = 17, .parent = 1, VNAME("l"), .flags = 1), -EINVAL},
	    {VOP(.type = KVFS_OP_LINK, .ino = 0, .parent = 1, VNAME("l")), -EPERM},
	    {VOP(.type = KVFS_OP_LINK, .ino = KVFS_ROOT_INO, .parent = 1, VNAME("l")), -EPERM},
	    {VOP(.type = KVFS_OP_LINK, .ino = 2, .parent = 1, VNAME("l")), -EPERM},
	    {VOP(.type = KVFS_OP_LINK, .ino = KVFS_INO_BASE - 1, .parent = 1, VNAME("l")), -EPERM},
	    {VOP(.type = KVFS_OP_LINK, .ino = 17, .parent = 1, VNAME("")), -EINVAL},
	    {VOP(.type = KVFS_OP_LINK, .ino = 17, .parent = 1, VNAME("..")), -EINVAL},
	    {VOP(.type = KVFS_OP_LINK, .ino = 17, .parent = 1, VNAME("a/b")), -EINVAL},
	    {VOP(.type = KVFS_OP_LINK, .ino = 17, .parent = 1, .name_len = 2), -EINVAL},
	    {VOP(.type = KVFS_OP_LINK, .ino = 17, .parent = 1, .name = name,
	         .name_len = KVFS_NAME_MAX + 1),
	     -ENAMETOOLONG},
	    /* MKNOD */
	    {VOP(.type = KVFS_OP_MKNOD, .parent = 1, VNAME("p"), .mode = S_IFIFO, .flags = 1),
	     -EINVAL},
	    {VOP(.type = KVFS_OP_MKNOD, .parent = 1, VNAME("p"), .mode = S_IFREG | 0644), -EINVAL},
	    {VOP(.type = KVFS_OP_MKNOD, .parent = 1, VNAME("p"), .mode = S_IFDIR | 0755), -EINVAL},
	    {VOP(.type = KVFS_OP_MKNOD, .parent = 1, VNAME("p"), .mode = S_IFLNK | 0777), -EINVAL},
	    {VOP(.type = KVFS_OP_MKNOD, .parent = 1, VNAME("p"), .mode = 0644), -EINVAL},
	    {VOP(.type = KVFS_OP_MKNOD, .parent = 1, VNAME("p"), .mode = S_IFMT | 0644), -EINVAL},
	    {VOP(.type = KVFS_OP_MKNOD, .parent = 1, VNAME("p"), .mode = 0200000 | S_IFIFO),
	     -EINVAL},
	    {VOP(.type = KVFS_OP_MKNOD, .parent = 1, VNAME("p"), .mode = S_IFIFO | 0644, .rdev = 1),
	     -EINVAL},
	    {VOP(.type = KVFS_OP_MKNOD, .parent = 1, VNAME("s"), .mode = S_IFSOCK | 0644,
	         .rdev = 0x0103),
	     -EINVAL},
	    {VOP(.type = KVFS_OP_MKNOD, .parent = 1, VNAME("."), .mode = S_IFIFO | 0644), -EINVAL},
	    {VOP(.type = KVFS_OP_MKNOD, .parent = 1, VNAME("a\0"), .mode = S_IFCHR | 0644),
	     -EINVAL},
	    {VOP(.type = KVFS_OP_MKNOD, .parent = 1, .name = name, .name_len = KVFS_NAME_MAX + 1,
	         .mode = S_IFIFO | 0644),
	     -ENAMETOOLONG},
	    /* FALLOCATE */
	    {VOP(.type = KVFS_OP_FALLOCATE, .ino = 17, .offset = 0, .length = 1, .flags = 0x8),
	     -EINVAL},
	    {VOP(.type = KVFS_OP_FALLOCATE, .ino = 17, .offset = 0, .length = 0), -EINVAL},
	    {VOP(.type = KVFS_OP_FALLOCATE, .ino = 17, .offset = 5, .length = 0,
	         .flags = KVFS_FALLOC_KEEP_SIZE),
	     -EINVAL},
	    {VOP(.type = KVFS_OP_FALLOCATE, .ino = 17, .offset = 0, .length = 1,
	         .flags = KVFS_FALLOC_PUNCH_HOLE),
	     -EINVAL},
	    {VOP(.type = KVFS_OP_FALLOCATE, .ino = 17, .offset = 0, .length = 1,
	         .flags = KVFS_FALLOC_PUNCH_HOLE | KVFS_FALLOC_ZERO_RANGE),
	     -EINVAL},
	    {VOP(.type = KVFS_OP_FALLOCATE, .ino = 17, .offset = 0, .length = 1,
	         .flags = KVFS_FALLOC_PUNCH_HOLE | KVFS_FALLOC_ZERO_RANGE | KVFS_FALLOC_KEEP_SIZE),
	     -EINVAL},
	    {VOP(.type = KVFS_OP_FALLOCATE, .ino = 17, .offset = 0, .length = (1u << 20) + 1),
	     -EFBIG},
	    {VOP(.type = KVFS_OP_FALLOCATE, .ino = 17, .offset = 1u << 20, .length = 1), -EFBIG},
	    {VOP(.type = KVFS_OP_FALLOCATE, .ino = 17, .offset = 1, .length = 1u << 20,
	         .flags = KVFS_FALLOC_ZERO_RANGE),
	     -EFBIG},
	    {VOP(.type = KVFS_OP_FALLOCATE, .ino = 17, .offset = UINT64_MAX, .length = 2,
	         .flags = KVFS_FALLOC_KEEP_SIZE),
	     -EFBIG},
	    {VOP(.type = KVFS_OP_FALLOCATE, .ino = 17, .offset = 2, .length = UINT64_MAX,
	         .flags = KVFS_FALLOC_PUNCH_HOLE | KVFS_FALLOC_KEEP_SIZE),
	     -EFBIG},
	    {VOP(.type = KVFS_OP_FALLOCATE, .ino = 17, .offset = INT64_MAX, .length = 1,
	         .flags = KVFS_FALLOC_KEEP_SIZE),
	     -EFBIG},
	    {VOP(.type = KVFS_OP_FALLOCATE, .ino = 17, .offset = (uint64_t)INT64_MAX + 1,
	         .length = 1, .flags = KVFS_FALLOC_KEEP_SIZE),
	     -EFBIG},
	    /* locks: no node, a virtual file, unknown kind or type, a bad range */
	    {VOP(.type = KVFS_OP_LOCK, .ino = 17, .lk_type = KVFS_LOCK_RD), -EINVAL},
	    {VOP(.type = KVFS_OP_RELEASE_NODE), -EINVAL},
	    /* a node id no cluster has; the largest incarnation (no later one could release it) */
	    {VOP(.type = KVFS_OP_RELEASE_NODE, .lk_node = 256), -EINVAL},
	    {VOP(.type = KVFS_OP_LOCK, .ino = 17, .lk_node = 256), -EINVAL},
	    {VOP(.type = KVFS_OP_LOCK, .ino = 17, .lk_node = 1, .lk_inc = UINT64_MAX), -EINVAL},
	    {VOP(.type = KVFS_OP_UNLOCK_OWNER, .ino = 17, .lk_node = 1, .lk_inc = UINT64_MAX),
	     -EINVAL},
	    {VOP(.type = KVFS_OP_LOCK, .ino = 2, .lk_node = 1), -EINVAL},
	    {VOP(.type = KVFS_OP_UNLOCK_OWNER, .ino = 17, .lk_node = 1, .lk_kind = 2), -EINVAL},
	    {VOP(.type = KVFS_OP_LOCK, .ino = 17, .lk_node = 1, .lk_type = 3), -EINVAL},
	    {VOP(.type = KVFS_OP_LOCK, .ino = 17, .lk_node = 1, .lk_start = 2, .lk_end = 1),
	     -EINVAL},
	    {VOP(.type = KVFS_OP_LOCK, .ino = 17, .lk_node = 1, .lk_end = KVFS_LOCK_END_MAX + 1),
	     -EINVAL},
	    {VOP(.type = KVFS_OP_LOCK, .ino = 17, .lk_node = 1, .flags = 1), -EINVAL},
	};

	memset(name, 'n', sizeof(name));
	memset(target, 't', sizeof(target));
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (op_validate(&bad[i].op, &lim) != bad[i].err)
			fail_msg("bad op %zu (%s): %d, not %d", i, op_type_name(bad[i].op.type),
			         op_validate(&bad[i].op, &lim), bad[i].err);
	}
	/* The limits are the validator's, not the op's: a 1M op is too big for a 100-byte node. */
	assert_int_equal(op_validate(&VOP(.type = KVFS_OP_PUT, .ino = 17), &small), -EINVAL);
	assert_int_equal(
	    op_validate(&OPM(100, .type = KVFS_OP_PUT, .ino = 17, .data = big, .data_len = 101),
	                &small),
	    -EFBIG);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_validate_accepts_fuse_ops),
	    cmocka_unit_test(test_validate_refuses),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
