/*
 * Unit tests of snapshots (replica/snapshot.c, snapshot_load.c): capture, write, load back and
 * compare every name, inode (hard links, FIFOs and devices included), session and the applied
 * index; a KVFSSNP1 file written by the previous release still loads; a capture is not disturbed
 * by later changes; a corrupt newest snapshot (any byte flipped, any truncation) falls back to
 * the older one; a snapshot that passes its checksum but is not a valid tree is refused; leftover
 * .tmp files go; prune and oldest_index; and a loaded store goes on applying exactly like the
 * original. Every test works in its own mkdtemp directory.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kvfs/config.h"
#include "kvfs/crc32c.h"
#include "kvfs/op.h"
#include "kvfs/snapshot.h"
#include "kvfs/store.h"
#include "kvfs/store_xattr.h"
#include "kvfs/value.h"

#include "store_image.h"
#include "tmpdir.h"
#include "../../xorshift.h"

#define ROOT       KVFS_ROOT_INO
#define OP(...)    ((struct kvfs_op){__VA_ARGS__})
#define NAME(x)    .name = (x), .name_len = (uint32_t)strlen(x)
#define NEWNAME(x) .newname = (x), .newname_len = (uint32_t)strlen(x)
#define DATA(x)    .data = (const uint8_t *)(x), .data_len = (uint32_t)strlen(x)

struct fixture {
	char dir[64];
	struct kvfs_store *s;
	char err[512];
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	assert_non_null(tmpdir_make(f->dir, sizeof(f->dir), "snapshot"));
	assert_int_equal(store_init(&f->s), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	tmpdir_remove(f->dir);
	store_close(f->s);
	free(f);
	return 0;
}

static struct kvfs_apply_result apply_at(struct kvfs_store *s, uint64_t epoch, struct kvfs_op op)
{
	struct kvfs_apply_result res;

	assert_int_equal(store_apply(s, epoch, store_applied_index(s) + 1, &op, &res), 0);
	return res;
}

static struct kvfs_apply_result apply(struct kvfs_store *s, struct kvfs_op op)
{
	static int64_t now_ns = 1700000000000000000ll;
	struct kvfs_apply_result res;

	if (!op.time_ns)
		op.time_ns = (now_ns += 1000);
	assert_int_equal(store_apply(s, 2, store_applied_index(s) + 1, &op, &res), 0);
	return res;
}

static uint64_t mk(struct kvfs_store *s, unsigned type, uint64_t parent, const char *name)
{
	struct kvfs_apply_result res =
	    apply(s, OP(.type = (uint8_t)type, .parent = parent, NAME(name), .mode = 0640,
	                .uid = 1000, .gid = 100, DATA("../some/target")));

	assert_int_equal(res.err, 0);
	return res.ino;
}

static void put(struct kvfs_store *s, uint64_t ino, const void *data, uint32_t len)
{
	assert_int_equal(
	    apply(s, OP(.type = KVFS_OP_PUT, .ino = ino, .data = data, .data_len = len)).err, 0);
}

/* A small tree of every kind, with sessions and changed root attributes. */
static void populate(struct kvfs_store *s)
{
	struct kvfs_apply_result res;
	uint64_t a = mk(s, KVFS_OP_MKDIR, ROOT, "a"), b = mk(s, KVFS_OP_MKDIR, a, "b");
	uint64_t f = mk(s, KVFS_OP_CREATE, a, "file"), g = mk(s, KVFS_OP_CREATE, b, "g");
	uint8_t *big = malloc(200000);

	assert_non_null(big);
	for (size_t i = 0; i < 200000; i++)
		big[i] = (uint8_t)(i * 7 + i / 1000);
	put(s, f, "contents", 8);
	put(s, g, big, 200000);
	free(big);
	mk(s, KVFS_OP_SYMLINK, ROOT, "link");
	mk(s, KVFS_OP_CREATE, ROOT, "empty");
	mk(s, KVFS_OP_MKDIR, b, "c");
	mk(s, KVFS_OP_CREATE, a, "z\xff\x01 name with spaces");
	apply(s, OP(.type = KVFS_OP_SETATTR, .ino = ROOT, .origin = 3, .seq = 9,
	            .flags = KVFS_SET_MODE | KVFS_SET_UID | KVFS_SET_ATIME, .mode = 0700, .uid = 42,
	            .atime_ns = -7));
	apply(s, OP(.type = KVFS_OP_MKDIR, .parent = ROOT, NAME("a"), .origin = 1, .seq = 4));
	apply(s, OP(.type = KVFS_OP_APPEND, .ino = f, DATA("+more"), .origin = 2, .seq = 1));
	apply(s, OP(.type = KVFS_OP_RENAME, .parent = a, NAME("file"), .newparent = ROOT,
	            NEWNAME("moved")));
	/* Protocol 2: more names of one file, a FIFO, a device. */
	res = apply(s, OP(.type = KVFS_OP_LINK, .flags = KVFS_OP_RULES2, .ino = f, .parent = b,
	                  NAME("second name")));
	assert_int_equal(res.err, 0);
	res = apply(s, OP(.type = KVFS_OP_LINK, .flags = KVFS_OP_RULES2, .ino = f, .parent = a,
	                  NAME("third")));
	assert_int_equal(res.err, 0);
	res = apply(s, OP(.type = KVFS_OP_MKNOD, .flags = KVFS_OP_RULES2, .parent = b, NAME("fifo"),
	                  .mode = S_IFIFO | 0600));
	assert_int_equal(res.err, 0);
	res = apply(s, OP(.type = KVFS_OP_MKNOD, .flags = KVFS_OP_RULES2, .parent = ROOT,
	                  NAME("null"), .mode = S_IFCHR | 0666, .rdev = 0x103));
	assert_int_equal(res.err, 0);
}

/* How many names store_foreach() visits. */
static int count_one(void *arg, const struct kvfs_dentry *d, bool first)
{
	(*(size_t *)arg)++;
	return 0;
}

static size_t count_names(const struct kvfs_store *s)
{
	size_t n = 0;

	store_foreach(s, count_one, &n);
	return n;
}

static void take(struct fixture *f)
{
	struct kvfs_snapshot *snap;

	assert_int_equal(snapshot_capture(f->s, &snap), 0);
	assert_int_equal(snapshot_index(snap), store_applied_index(f->s));
	assert_int_equal(snapshot_epoch(snap), store_applied_epoch(f->s));
	assert_int_equal(snapshot_write(snap, f->dir, f->err, sizeof(f->err)), 0);
	snapshot_free(snap);
}

static void snap_path(const struct fixture *f, uint64_t index, const char *suffix, char *path,
                      size_t len)
{
	snprintf(path, len, "%s/snap-%020llu.%s", f->dir, (unsigned long long)index, suffix);
}

static bool exists(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0;
}

static size_t count_files(const struct fixture *f)
{
	DIR *d = opendir(f->dir);
	struct dirent *de;
	size_t n = 0;

	assert_non_null(d);
	while ((de = readdir(d)))
		n += de->d_name[0] != '.';
	closedir(d);
	return n;
}

static uint8_t *read_file(const char *path, size_t *len)
{
	FILE *fp = fopen(path, "rb");
	uint8_t *buf;
	long n;

	assert_non_null(fp);
	fseek(fp, 0, SEEK_END);
	n = ftell(fp);
	rewind(fp);
	buf = malloc((size_t)n + 1);
	assert_non_null(buf);
	assert_int_equal(fread(buf, 1, (size_t)n, fp), (size_t)n);
	fclose(fp);
	*len = (size_t)n;
	return buf;
}

static void write_file(const char *path, const uint8_t *buf, size_t len)
{
	FILE *fp = fopen(path, "wb");

	assert_non_null(fp);
	assert_int_equal(fwrite(buf, 1, len, fp), len);
	fclose(fp);
}

/* Writes buf to path with its trailing CRC32C made right again. */
static void write_resealed(const char *path, uint8_t *buf, size_t len)
{
	uint32_t crc = crc32c(0, buf, len - 4);

	for (int i = 0; i < 4; i++)
		buf[len - 4 + (size_t)i] = (uint8_t)(crc >> (8 * i));
	write_file(path, buf, len);
}

static void test_roundtrip(void **state)
{
	struct fixture *f = *state;
	struct kvfs_store *t = NULL;
	char path[256];
	uint64_t index = 99;
	size_t len;
	uint8_t *buf;

	populate(f->s);
	take(f);
	snap_path(f, store_applied_index(f->s), "snap", path, sizeof(path));
	assert_true(exists(path));
	assert_int_equal(count_files(f), 1);

	/* The documented layout: magic, index, epoch, counts; root first; CRC of all before it. */
	buf = read_file(path, &len);
	assert_memory_equal(buf, "KVFSSNP4", 8);
	assert_int_equal(buf[8], store_applied_index(f->s));
	assert_int_equal(buf[16], 2);
	assert_int_equal(buf[24], count_names(f->s));
	assert_int_equal(count_names(f->s), store_inode_count(f->s) + 2);
	assert_int_equal(buf[32], 3);
	assert_int_equal(buf[40], 0);    /* the root's record: in no directory, */
	assert_int_equal(buf[48], 0);    /* named "", */
	assert_int_equal(buf[52], ROOT); /* its number, */
	assert_int_equal(buf[60], 0);    /* the first name of its inode */
	assert_int_equal(crc32c(0, buf, len - 4),
	                 (uint32_t)buf[len - 4] | (uint32_t)buf[len - 3] << 8 |
	                     (uint32_t)buf[len - 2] << 16 | (uint32_t)buf[len - 1] << 24);
	free(buf);

	assert_int_equal(snapshot_load_latest(f->dir, &t, &index, f->err, sizeof(f->err)), 0);
	assert_int_equal(index, store_applied_index(f->s));
	assert_string_equal(f->err, "");
	assert_stores_equal(f->s, t);
	store_close(t);
}

static void test_empty_store(void **state)
{
	struct fixture *f = *state;
	struct kvfs_store *t = NULL;
	uint64_t index = 5;

	/* No snapshot at all: an empty store. A missing directory holds none either. */
	assert_int_equal(snapshot_load_latest(f->dir, &t, &index, f->err, sizeof(f->err)), 0);
	assert_int_equal(index, 0);
	assert_stores_equal(f->s, t);
	store_close(t);
	assert_int_equal(
	    snapshot_load_latest("/nonexistent/kvfs", &t, &index, f->err, sizeof(f->err)), 0);
	store_close(t);
	assert_int_equal(snapshot_oldest_index(f->dir), 0);
	assert_int_equal(snapshot_oldest_index("/nonexistent/kvfs"), 0);

	/* A snapshot of the fresh store (index 0) round-trips as well. */
	take(f);
	assert_int_equal(snapshot_load_latest(f->dir, &t, &index, f->err, sizeof(f->err)), 0);
	assert_int_equal(index, 0);
	assert_stores_equal(f->s, t);
	store_close(t);
}

/* Changes after the capture do not reach the snapshot, and do not touch its values. */
static void test_capture_isolated(void **state)
{
	struct fixture *f = *state;
	struct kvfs_snapshot *snap;
	struct kvfs_store *t;
	struct kvfs_inode *moved;
	struct store_image *before;
	uint64_t index, ino;

	populate(f->s);
	moved = store_lookup(f->s, store_get(f->s, ROOT), "moved", 5);
	assert_non_null(moved);
	ino = moved->ino;
	before = store_image_of(f->s);
	assert_int_equal(snapshot_capture(f->s, &snap), 0);
	assert_int_equal(moved->value->refs, 2);

	apply(f->s, OP(.type = KVFS_OP_APPEND, .ino = ino, DATA("after capture")));
	apply(f->s, OP(.type = KVFS_OP_SETATTR, .ino = ino, .flags = KVFS_SET_SIZE, .size = 2));
	apply(f->s, OP(.type = KVFS_OP_UNLINK, .parent = ROOT, NAME("empty")));
	apply(f->s, OP(.type = KVFS_OP_RENAME, .parent = ROOT, NAME("a"), .newparent = ROOT,
	               NEWNAME("a2")));
	apply(f->s, OP(.type = KVFS_OP_CREATE, .parent = ROOT, NAME("new"), .origin = 7, .seq = 1));
	assert_int_equal(snapshot_write(snap, f->dir, f->err, sizeof(f->err)), 0);
	snapshot_free(snap);
	assert_int_equal(store_get(f->s, ino)->value->refs, 1);

	assert_int_equal(snapshot_load_latest(f->dir, &t, &index, f->err, sizeof(f->err)), 0);
	assert_int_equal(index, before->index);
	{
		struct store_image *loaded = store_image_of(t);

		assert_store_images_equal(before, loaded);
		store_image_free(loaded);
	}
	store_image_free(before);
	store_close(t);
	snapshot_free(NULL);
}

/* Any byte of the newest snapshot flipped, or any truncation of it: the older one loads. */
static void test_corrupt_newest_falls_back(void **state)
{
	struct fixture *f = *state;
	struct kvfs_store *t;
	struct store_image *old;
	uint64_t old_index, new_index, index;
	char path[256];
	uint8_t *good;
	size_t len;

	mk(f->s, KVFS_OP_CREATE, ROOT, "x");
	take(f);
	old = store_image_of(f->s);
	old_index = store_applied_index(f->s);
	mk(f->s, KVFS_OP_MKDIR, ROOT, "y");
	put(f->s, store_lookup(f->s, store_get(f->s, ROOT), "x", 1)->ino, "abc", 3);
	assert_int_equal(
	    apply(f->s, OP(.type = KVFS_OP_LINK, .parent = ROOT, NAME("x2"),
	                   .ino = store_lookup(f->s, store_get(f->s, ROOT), "x", 1)->ino))
	        .err,
	    0);
	take(f);
	new_index = store_applied_index(f->s);
	snap_path(f, new_index, "snap", path, sizeof(path));
	good = read_file(path, &len);

	for (size_t i = 0; i < len; i++) {
		good[i] ^= 0xff;
		write_file(path, good, len);
		good[i] ^= 0xff;
		f->err[0] = '\0';
		assert_int_equal(snapshot_load_latest(f->dir, &t, &index, f->err, sizeof(f->err)),
		                 0);
		assert_int_equal(index, old_index);
		assert_non_null(strstr(f->err, "checksum"));
		if (i % 16 == 0) {
			struct store_image *loaded = store_image_of(t);

			assert_store_images_equal(old, loaded);
			store_image_free(loaded);
		}
		store_close(t);
	}
	for (size_t cut = 0; cut < len; cut++) {
		write_file(path, good, cut);
		assert_int_equal(snapshot_load_latest(f->dir, &t, &index, f->err, sizeof(f->err)),
		                 0);
		assert_int_equal(index, old_index);
		store_close(t);
	}
	/* Repaired: the newest loads again. */
	write_file(path, good, len);
	assert_int_equal(snapshot_load_latest(f->dir, &t, &index, f->err, sizeof(f->err)), 0);
	assert_int_equal(index, new_index);
	assert_string_equal(f->err, "");
	assert_stores_equal(f->s, t);
	store_close(t);
	free(good);
	store_image_free(old);
}

/* With no older snapshot to fall back to, a corrupt one is refused, not replaced by nothing. */
static void test_all_corrupt_refused(void **state)
{
	struct fixture *f = *state;
	struct kvfs_store *t = (struct kvfs_store *)(uintptr_t)1;
	uint64_t index = 77;
	char path[256];
	uint8_t *buf;
	size_t len;

	mk(f->s, KVFS_OP_CREATE, ROOT, "x");
	take(f);
	snap_path(f, store_applied_index(f->s), "snap", path, sizeof(path));
	buf = read_file(path, &len);
	buf[len / 2] ^= 0x01;
	write_file(path, buf, len);
	free(buf);
	assert_int_equal(snapshot_load_latest(f->dir, &t, &index, f->err, sizeof(f->err)),
	                 -EBADMSG);
	assert_ptr_equal(t, (struct kvfs_store *)(uintptr_t)1);
	assert_int_equal(index, 77);
	assert_non_null(strstr(f->err, "checksum"));
}

/* Passes its checksum but is not a valid tree: -EBADMSG, no fallback, *out untouched. */
static void test_bad_tree_refused(void **state)
{
	struct fixture *f = *state;
	struct kvfs_store *t = NULL;
	uint64_t index = 0, a, fino;
	char path[256], older[256];
	uint8_t *good, *buf;
	size_t len;
	/*
	 * Offsets in the file: header 40 bytes, the root's record 69 (its ino at 52), then the
	 * first child's: parent 0, name_len 8, name 12 ("a"), ino 13, kind 21, mode 22, uid 26,
	 * gid 30, rdev 34, times 38, value_len 62 (a directory: no value); "f" at child + 70 (a
	 * file without a value: 70 bytes too), then "g", another name of f: child + 140.
	 */
	const size_t child = 40 + 69, lrec = child + 140;

	take(f); /* an older, valid snapshot that must not be used */
	snap_path(f, 0, "snap", older, sizeof(older));
	a = mk(f->s, KVFS_OP_MKDIR, ROOT, "a");
	fino = mk(f->s, KVFS_OP_CREATE, a, "f");
	assert_int_equal(
	    apply(f->s, OP(.type = KVFS_OP_LINK, .ino = fino, .parent = ROOT, NAME("g"))).err, 0);
	take(f);
	snap_path(f, store_applied_index(f->s), "snap", path, sizeof(path));
	good = read_file(path, &len);
	assert_int_equal(good[child + 13], a);
	assert_int_equal(good[child + 70 + 13], fino);
	assert_int_equal(good[lrec + 12], 'g');
	assert_int_equal(good[lrec + 13], fino);
	assert_int_equal(good[lrec + 21], 1);
	/* no configuration: index 0, len 0; no attributes, no locks: two u32 counts 0 */
	assert_int_equal(len, lrec + 22 + 12 + 8 + 4);
	buf = malloc(len);
	assert_non_null(buf);

	const struct {
		size_t off;
		uint8_t val;
	} cases[] = {
	    {child, 0x55},               /* parent unknown */
	    {52, 0x02},                  /* root not first */
	    {child + 13, 0x01},          /* first child's ino becomes the root's */
	    {child + 70 + 13 + 7, 0x01}, /* the last inode's ino: beyond what the index allows */
	    {child + 23, 0xf0},          /* mode: no type store_apply() makes */
	    {child + 23, 0x10},          /* "a" a FIFO: "f" is then in no directory */
	    {child + 70 + 23, 0x40},     /* "f" a directory: cannot have a second name */
	    {child + 34, 0x01},          /* a device number on a directory */
	    {child + 70 + 35, 0x01},     /* ... on a file */
	    {child + 21, 0x02},          /* an unknown kind */
	    {child + 21, 0x01},          /* "a" a second name of an inode not seen yet */
	    {lrec + 13, (uint8_t)KVFS_INO_BASE}, /* a second name of an unknown inode */
	    {lrec + 13, 0x01},                   /* ... of the root, a directory */
	    {lrec + 0, 0x00},                    /* ... in no directory */
	    {lrec + 12, '/'},                    /* a slash in a second name */
	    {lrec + 8, 0x02},                    /* its length runs into the next field */
	    {child + 8, 0x04},                   /* name length runs into the next field */
	    {child + 9, 0x10},                   /* name length over KVFS_NAME_MAX */
	    {child + 12, '/'},                   /* a slash in the name */
	    {8, 0x7f},                           /* index does not match the file name */
	    {0, 'X'},                            /* magic */
	    {7, '5'},                            /* a format from the future */
	    {lrec + 34, 0x01},                   /* an attribute section that is not there */
	    {lrec + 38, 0x01},                   /* a lock (not recorded by this release) */
	    {lrec + 22, 0x01},                   /* a configuration index, no configuration */
	    {lrec + 22 + 8, 0x01},               /* a configuration length, no index */
	    {24, 0x09},                          /* more records than the file holds */
	    {32, 0x01},                          /* a session the file does not hold */
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		memcpy(buf, good, len);
		buf[cases[i].off] = cases[i].val;
		write_resealed(path, buf, len);
		t = NULL;
		f->err[0] = '\0';
		assert_int_equal(snapshot_load_latest(f->dir, &t, &index, f->err, sizeof(f->err)),
		                 -EBADMSG);
		assert_null(t);
		assert_non_null(strstr(f->err, "valid tree"));
	}
	/* A second name of a directory: "g" made a name of "a". */
	memcpy(buf, good, len);
	buf[lrec + 13] = (uint8_t)a;
	write_resealed(path, buf, len);
	assert_int_equal(snapshot_load_latest(f->dir, &t, &index, f->err, sizeof(f->err)),
	                 -EBADMSG);
	assert_null(t);
	/* Cut anywhere in the records (count and checksum kept honest): refused. */
	for (size_t cut = 40; cut < len - 4; cut++) {
		memcpy(buf, good, cut);
		write_resealed(path, buf, cut + 4);
		assert_int_equal(snapshot_load_latest(f->dir, &t, &index, f->err, sizeof(f->err)),
		                 -EBADMSG);
		assert_null(t);
	}
	/* Trailing bytes after the sessions, resealed. */
	buf = realloc(buf, len + 1);
	memcpy(buf, good, len - 4);
	buf[len - 4] = 0;
	write_resealed(path, buf, len + 1);
	assert_int_equal(snapshot_load_latest(f->dir, &t, &index, f->err, sizeof(f->err)),
	                 -EBADMSG);
	assert_null(t);
	assert_true(exists(older));
	free(buf);
	free(good);
}

static void test_tmp_removed(void **state)
{
	struct fixture *f = *state;
	struct kvfs_store *t;
	char path[256], other[256];
	uint64_t index;

	mk(f->s, KVFS_OP_CREATE, ROOT, "x");
	take(f);
	snap_path(f, 500, "tmp", path, sizeof(path));
	write_file(path, (const uint8_t *)"torn", 4);
	snprintf(other, sizeof(other), "%s/log-00000000000000000001.seg", f->dir);
	write_file(other, (const uint8_t *)"keep", 4);
	assert_int_equal(count_files(f), 3);
	assert_int_equal(snapshot_load_latest(f->dir, &t, &index, f->err, sizeof(f->err)), 0);
	assert_int_equal(index, store_applied_index(f->s));
	assert_false(exists(path));
	assert_true(exists(other));
	assert_int_equal(count_files(f), 2);
	store_close(t);
}

static void test_prune_and_oldest(void **state)
{
	struct fixture *f = *state;
	uint64_t idx[4];
	char path[256];

	for (int i = 0; i < 4; i++) {
		mk(f->s, KVFS_OP_CREATE, ROOT, (const char *[]){"a", "b", "c", "d"}[i]);
		take(f);
		idx[i] = store_applied_index(f->s);
	}
	/* Files that only look like snapshots are left alone. */
	snprintf(path, sizeof(path), "%s/snap-1.snap", f->dir);
	write_file(path, (const uint8_t *)"x", 1);
	assert_int_equal(snapshot_oldest_index(f->dir), idx[0]);
	assert_int_equal(snapshot_prune(f->dir, 5), 0);
	assert_int_equal(count_files(f), 5);
	assert_int_equal(snapshot_prune(f->dir, 2), 0);
	assert_int_equal(snapshot_oldest_index(f->dir), idx[2]);
	assert_int_equal(count_files(f), 3);
	snap_path(f, idx[3], "snap", path, sizeof(path));
	assert_true(exists(path));
	assert_int_equal(snapshot_prune(f->dir, 0), 0);
	assert_int_equal(snapshot_oldest_index(f->dir), 0);
	assert_int_equal(count_files(f), 1);
}

static void test_write_failure(void **state)
{
	struct fixture *f = *state;
	struct kvfs_snapshot *snap;
	char dir[128];

	snprintf(dir, sizeof(dir), "%s/missing", f->dir);
	assert_int_equal(snapshot_capture(f->s, &snap), 0);
	f->err[0] = '\0';
	assert_int_equal(snapshot_write(snap, dir, f->err, sizeof(f->err)), -ENOENT);
	assert_non_null(strstr(f->err, "missing"));
	snapshot_free(snap);
	assert_int_equal(count_files(f), 0);
}

/* xorshift64*, for reproducible random operations. */
static uint64_t rnd(uint64_t *x)
{
	return xorshift64s(x);
}

/* A random linked inode of s, a directory if want_dir, from the last 200 indices or the root. */
static uint64_t pick(const struct kvfs_store *s, uint64_t *x, bool want_dir)
{
	uint64_t index = store_applied_index(s) + 1;
	uint64_t base = index > 200 ? index - 200 : 1;

	for (int tries = 0; tries < 16; tries++) {
		uint64_t ino = KVFS_INO_BASE + base + rnd(x) % (index - base);
		const struct kvfs_inode *in = store_get(s, ino);

		if (in && in->nlink && (!want_dir || S_ISDIR(in->mode)))
			return ino;
	}
	return ROOT;
}

/*
 * Applies n random operations to both stores and checks they agree all along. Returns how many
 * succeeded.
 */
static int apply_random_to_both(struct kvfs_store *a, struct kvfs_store *b, uint64_t *x, int n)
{
	static const char *const names[] = {"p", "q", "r", "s", "t", "u", "v", "w"};
	uint8_t data[16];
	int ok = 0;

	for (int i = 0; i < n; i++) {
		struct kvfs_apply_result ra, rb;
		uint64_t index = store_applied_index(a) + 1;
		uint64_t dir = rnd(x) % 4 == 0 ? ROOT : pick(a, x, true);
		struct kvfs_op op = {
		    .type = (uint8_t)(1 + rnd(x) % KVFS_OP_FALLOCATE), /* the filesystem ops */
		    .time_ns = (int64_t)index * 10,
		    .ino = pick(a, x, false),
		    .parent = dir,
		    .newparent = rnd(x) % 2 ? dir : pick(a, x, true),
		    .mode = 0644,
		    .name = names[rnd(x) % 8],
		    .name_len = 1,
		    .newname = names[rnd(x) % 8],
		    .newname_len = 1,
		    .data = data,
		    .data_len = (uint32_t)(1 + rnd(x) % sizeof(data)),
		    .flags = KVFS_SET_SIZE,
		    .size = rnd(x) % 8,
		    .origin = (uint32_t)(rnd(x) % 3),
		};

		if (op.origin)
			op.seq = index;
		op.flags |= KVFS_OP_RULES2;
		if (op.type == KVFS_OP_MKNOD)
			op.mode = (rnd(x) % 2 ? S_IFIFO : S_IFCHR) | 0644;
		if (op.type == KVFS_OP_MKNOD && S_ISCHR(op.mode))
			op.rdev = (uint32_t)rnd(x);
		if (op.type == KVFS_OP_FALLOCATE) {
			op.flags =
			    KVFS_OP_RULES2 | (uint32_t)(rnd(x) % 2 ? KVFS_FALLOC_ZERO_RANGE : 0);
			op.offset = rnd(x) % 8;
			op.length = 1 + rnd(x) % 8;
		}
		if (op.type == KVFS_OP_RENAME)
			op.flags =
			    KVFS_OP_RULES2 | (uint32_t)(rnd(x) % 3 == 0 ? KVFS_RENAME_EXCHANGE : 0);
		if (rnd(x) % 5 == 0) {
			/* Extended attributes, one op in five: a few names, replaced and removed.
			 */
			static const char *const xnames[] = {"user.a", "user.b", "user.c"};

			op.type = rnd(x) % 3 ? KVFS_OP_SETXATTR : KVFS_OP_REMOVEXATTR;
			op.name = xnames[rnd(x) % 3];
			op.name_len = 6;
			op.flags =
			    KVFS_OP_RULES2 | (uint32_t)(rnd(x) % 4 == 0 ? KVFS_XATTR_CREATE : 0);
		}
		memset(data, 'a' + (int)(index % 26), sizeof(data));
		assert_int_equal(store_apply(a, 3, index, &op, &ra), 0);
		assert_int_equal(store_apply(b, 3, index, &op, &rb), 0);
		assert_int_equal(ra.err, rb.err);
		assert_int_equal(ra.ino, rb.ino);
		assert_int_equal(ra.replaced_ino, rb.replaced_ino);
		assert_int_equal(ra.duplicate, rb.duplicate);
		ok += ra.err == 0;
	}
	return ok;
}

/* A loaded store goes on from the next index exactly like the store it was taken from. */
static void test_continue_after_load(void **state)
{
	struct fixture *f = *state;
	struct kvfs_store *t;
	struct kvfs_apply_result res;
	struct kvfs_op op = OP(.type = KVFS_OP_CREATE, .parent = ROOT, NAME("next"));
	uint64_t x = 42, index, before;
	int ok;

	populate(f->s);
	take(f);
	assert_int_equal(snapshot_load_latest(f->dir, &t, &index, f->err, sizeof(f->err)), 0);
	assert_int_equal(index, store_applied_index(f->s));
	before = store_inode_count(t);
	assert_int_equal(store_apply(t, 3, index + 2, &op, &res), -EINVAL);
	assert_int_equal(store_apply(t, 3, index + 1, &op, &res), 0);
	assert_int_equal(res.err, 0);
	assert_int_equal(res.ino, KVFS_INO_BASE + index + 1);
	assert_int_equal(store_inode_count(t), before + 1);
	assert_int_equal(store_apply(f->s, 3, index + 1, &op, &res), 0);
	/* A retry that the snapshot remembers is still a duplicate. */
	op = OP(.type = KVFS_OP_MKDIR, .parent = ROOT, NAME("dup"), .origin = 1, .seq = 4);
	assert_int_equal(store_apply(t, 3, index + 2, &op, &res), 0);
	assert_true(res.duplicate);
	assert_int_equal(res.err, -EEXIST);
	assert_int_equal(store_apply(f->s, 3, index + 2, &op, &res), 0);
	assert_stores_equal(f->s, t);

	ok = apply_random_to_both(f->s, t, &x, 3000);
	print_message("continue: %d of 3000 applied\n", ok);
	assert_true(ok > 500); /* one op in six: the random targets are often wrong */
	assert_stores_equal(f->s, t);
	assert_true(store_xattr_bytes(f->s) > 0); /* attributes are part of what is compared */
	/* And a snapshot of the result, taken again, loads to the same. */
	store_close(t);
	take(f);
	assert_int_equal(snapshot_load_latest(f->dir, &t, &index, f->err, sizeof(f->err)), 0);
	assert_stores_equal(f->s, t);
	store_close(t);
}

/* KVFSSNP1: generated by main @ bbdf0e9's snapshot writer */
static const uint8_t snap_v1[] = {
    0x4b, 0x56, 0x46, 0x53, 0x53, 0x4e, 0x50, 0x31, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x06, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xc9, 0x41, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0xf9, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x70, 0x17, 0x2a, 0x36,
    0xfe, 0x9c, 0x97, 0x17, 0x58, 0x1b, 0x2a, 0x36, 0xfe, 0x9c, 0x97, 0x17, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x11, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xe8, 0x41, 0x00, 0x00, 0xe8, 0x03, 0x00, 0x00,
    0x64, 0x00, 0x00, 0x00, 0xe8, 0x03, 0x2a, 0x36, 0xfe, 0x9c, 0x97, 0x17, 0x88, 0x13, 0x2a, 0x36,
    0xfe, 0x9c, 0x97, 0x17, 0x88, 0x13, 0x2a, 0x36, 0xfe, 0x9c, 0x97, 0x17, 0x01, 0x00, 0x00, 0x00,
    0x61, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x12, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x11, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xa0, 0x81, 0x00, 0x00, 0xe8, 0x03, 0x00,
    0x00, 0x64, 0x00, 0x00, 0x00, 0xd0, 0x07, 0x2a, 0x36, 0xfe, 0x9c, 0x97, 0x17, 0xb8, 0x0b, 0x2a,
    0x36, 0xfe, 0x9c, 0x97, 0x17, 0xb8, 0x0b, 0x2a, 0x36, 0xfe, 0x9c, 0x97, 0x17, 0x04, 0x00, 0x00,
    0x00, 0x66, 0x69, 0x6c, 0x65, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x63, 0x6f, 0x6e,
    0x74, 0x65, 0x6e, 0x74, 0x73, 0x15, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x11, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0xc0, 0x41, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x88, 0x13, 0x2a, 0x36, 0xfe, 0x9c, 0x97, 0x17, 0x88, 0x13, 0x2a, 0x36, 0xfe, 0x9c, 0x97,
    0x17, 0x88, 0x13, 0x2a, 0x36, 0xfe, 0x9c, 0x97, 0x17, 0x01, 0x00, 0x00, 0x00, 0x62, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x14, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xff, 0xa1, 0x00, 0x00, 0x07, 0x00, 0x00, 0x00, 0x08, 0x00,
    0x00, 0x00, 0xa0, 0x0f, 0x2a, 0x36, 0xfe, 0x9c, 0x97, 0x17, 0xa0, 0x0f, 0x2a, 0x36, 0xfe, 0x9c,
    0x97, 0x17, 0xa0, 0x0f, 0x2a, 0x36, 0xfe, 0x9c, 0x97, 0x17, 0x04, 0x00, 0x00, 0x00, 0x6c, 0x69,
    0x6e, 0x6b, 0x06, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x61, 0x2f, 0x66, 0x69, 0x6c, 0x65,
    0x16, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x80, 0x81, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x70, 0x17, 0x2a, 0x36,
    0xfe, 0x9c, 0x97, 0x17, 0x70, 0x17, 0x2a, 0x36, 0xfe, 0x9c, 0x97, 0x17, 0x70, 0x17, 0x2a, 0x36,
    0xfe, 0x9c, 0x97, 0x17, 0x05, 0x00, 0x00, 0x00, 0x65, 0x6d, 0x70, 0x74, 0x79, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x04, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0xef, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00,
    0x00, 0x05, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x12, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x04, 0x00, 0x00, 0x00, 0x4d, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x16, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x70, 0xff, 0xa8,
    0x46,
};

static void assert_value_of(struct kvfs_store *s, uint64_t ino, const char *want)
{
	const struct kvfs_inode *in = store_get(s, ino);

	assert_non_null(in);
	assert_int_equal(value_size(in->value), strlen(want));
	assert_memory_equal(in->value->data, want, strlen(want));
}

/*
 * The KVFSSNP1 file above (written by the release before hard links) loads into the store that
 * the same operations build now; taken again, it is written as KVFSSNP4 and loads the same.
 */
static void test_v1_fixture(void **state)
{
	struct fixture *f = *state;
	struct kvfs_store *s = f->s, *t = NULL;
	int64_t t0 = 1700000000000000000ll;
	struct kvfs_apply_result res;
	uint64_t a, file = 0, index;
	char path[256];
	uint8_t *buf;
	size_t len;
	const struct kvfs_op ops[] = {
	    OP(.type = KVFS_OP_CREATE, .mode = 0640, .uid = 1000, .gid = 100, NAME("file")),
	    OP(.type = KVFS_OP_PUT, DATA("contents"), .origin = 2, .seq = 5),
	    OP(.type = KVFS_OP_SYMLINK, .parent = ROOT, NAME("link"), .uid = 7, .gid = 8,
	       DATA("a/file")),
	    OP(.type = KVFS_OP_MKDIR, .mode = 0700, NAME("b")),
	    OP(.type = KVFS_OP_CREATE, .parent = ROOT, NAME("empty"), .mode = 0600, .uid = 1,
	       .gid = 2, .origin = 4, .seq = 77),
	    OP(.type = KVFS_OP_SETATTR, .ino = ROOT, .flags = KVFS_SET_MODE | KVFS_SET_ATIME,
	       .mode = 0711, .atime_ns = -7),
	    OP(.type = KVFS_OP_MKDIR, .parent = ROOT, NAME("a"), .origin = 1, .seq = 4),
	};

	/* The operations the fixture was made with, at the same times and epoch. */
	res = apply_at(s, 3,
	               OP(.type = KVFS_OP_MKDIR, .parent = ROOT, NAME("a"), .mode = 0750,
	                  .uid = 1000, .gid = 100, .time_ns = t0 + 1000));
	a = res.ino;
	for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++) {
		struct kvfs_op op = ops[i];

		op.time_ns = t0 + 1000 * (int64_t)(i + 2);
		if (op.type == KVFS_OP_CREATE && !op.parent)
			op.parent = a;
		if (op.type == KVFS_OP_MKDIR && !op.parent)
			op.parent = a;
		if (op.type == KVFS_OP_PUT)
			op.ino = file;
		res = apply_at(s, 3, op);
		if (i == 0)
			file = res.ino;
	}
	assert_int_equal(store_applied_index(s), 8);
	assert_int_equal(res.err, -EEXIST);
	assert_int_equal(store_inode_count(s), 6);
	assert_value_of(s, file, "contents");

	snap_path(f, 8, "snap", path, sizeof(path));
	write_file(path, snap_v1, sizeof(snap_v1));
	assert_int_equal(snapshot_load_latest(f->dir, &t, &index, f->err, sizeof(f->err)), 0);
	assert_int_equal(index, 8);
	assert_stores_equal(s, t);
	store_close(t);
	take(f);
	buf = read_file(path, &len);
	assert_memory_equal(buf, "KVFSSNP4", 8);
	free(buf);
	assert_int_equal(snapshot_load_latest(f->dir, &t, &index, f->err, sizeof(f->err)), 0);
	assert_stores_equal(s, t);
	store_close(t);
}

/* Applies a CONFIG entry for "voters=<v> observers=<o>" text as the next entry of s. */
static void apply_config_text(struct kvfs_store *s, const char *text)
{
	struct kvfs_config c;
	uint8_t buf[512];
	struct kvfs_op op;
	int len;

	assert_int_equal(config_parse(text, &c, NULL, 0), 0);
	len = config_entry_encode(&c, "req-0000000001", buf, sizeof(buf));
	assert_true(len > 0);
	assert_int_equal(op_decode(&op, buf, (size_t)len), 0);
	apply_at(s, 2, op);
}

/* KVFSSNP3 carries the store's configuration and its index; one without (a store that applied
 * no CONFIG entry) loads with none, the bootstrap one. */
static void test_v3_config(void **state)
{
	struct fixture *f = *state;
	struct kvfs_store *t = NULL;
	const struct kvfs_config *c;
	char text[KVFS_CONFIG_TEXT_MAX];
	uint64_t index, cfg_index = 99;
	char path[256];
	uint8_t *buf;
	size_t len;

	populate(f->s);
	take(f);
	assert_int_equal(snapshot_load_latest(f->dir, &t, &index, f->err, sizeof(f->err)), 0);
	assert_null(store_config(t, &cfg_index));
	assert_int_equal(cfg_index, 0);
	store_close(t);

	apply_config_text(f->s, "voters=1,2,3,4 observers=6");
	assert_int_equal(store_config(f->s, &cfg_index) != NULL, 1);
	assert_int_equal(cfg_index, store_applied_index(f->s));
	apply(f->s, OP(.type = KVFS_OP_MKDIR, .parent = ROOT, .mode = 0755, NAME("after")));
	take(f);
	snap_path(f, store_applied_index(f->s), "snap", path, sizeof(path));
	buf = read_file(path, &len);
	assert_memory_equal(buf, "KVFSSNP4", 8);
	assert_int_equal(snapshot_load_latest(f->dir, &t, &index, f->err, sizeof(f->err)), 0);
	assert_int_equal(index, store_applied_index(f->s));
	assert_stores_equal(f->s, t);
	c = store_config(t, &index);
	assert_non_null(c);
	assert_int_equal(index, cfg_index);
	assert_true(config_format(c, text, sizeof(text)) > 0);
	assert_string_equal(text, "voters=1,2,3,4 observers=6");
	store_close(t);

	/* A configuration index past the snapshot's is refused (checksum made right). */
	/* config_index, low byte: before a 34-byte body (5 members) and the two u32 counts */
	buf[len - 4 - 8 - 34 - 4 - 8] = 0xff;
	write_resealed(path, buf, len);
	assert_int_equal(snapshot_load_latest(f->dir, &t, &index, f->err, sizeof(f->err)),
	                 -EBADMSG);
	assert_non_null(strstr(f->err, "configuration"));
	free(buf);
}

/* A KVFSSNP2 file (KVFSSNP3 without the configuration) still loads, with no configuration. */
static void test_v2_loads(void **state)
{
	struct fixture *f = *state;
	struct kvfs_store *t = NULL;
	uint64_t index, cfg_index = 7;
	char path[256];
	uint8_t *buf;
	size_t len;

	populate(f->s);
	take(f);
	snap_path(f, store_applied_index(f->s), "snap", path, sizeof(path));
	buf = read_file(path, &len);
	/* Drop u64 config_index 0, u32 len 0 and the two u32 counts of KVFSSNP4 before the CRC;
	 * call it KVFSSNP2. */
	memmove(buf + len - 24, buf + len - 4, 4);
	len -= 20;
	memcpy(buf, "KVFSSNP2", 8);
	write_resealed(path, buf, len);
	free(buf);
	assert_int_equal(snapshot_load_latest(f->dir, &t, &index, f->err, sizeof(f->err)), 0);
	assert_string_equal(f->err, "");
	assert_int_equal(index, store_applied_index(f->s));
	assert_stores_equal(f->s, t);
	assert_null(store_config(t, &cfg_index));
	assert_int_equal(cfg_index, 0);
	store_close(t);
}

#define SETX(ino_, name_, val_) OP(.type = KVFS_OP_SETXATTR, .ino = (ino_), NAME(name_), DATA(val_))

/*
 * KVFSSNP4 carries extended attributes: they round-trip, a capture keeps the attributes it
 * took while the store changes them, every corruption of the section is refused (checksum made
 * right), and a KVFSSNP3 file (no sections) still loads, without attributes.
 */
static void test_xattrs(void **state)
{
	struct fixture *f = *state;
	struct kvfs_store *t = NULL;
	struct kvfs_snapshot *snap;
	uint64_t index, d, file, l;
	char path[256];
	uint8_t *good, *buf;
	size_t len, xs, fe;
	bool found;

	d = mk(f->s, KVFS_OP_MKDIR, ROOT, "d");
	file = mk(f->s, KVFS_OP_CREATE, ROOT, "f");
	l = mk(f->s, KVFS_OP_SYMLINK, ROOT, "l");
	assert_int_equal(apply(f->s, SETX(file, "user.b", "2")).err, 0);
	assert_int_equal(apply(f->s, SETX(file, "user.a", "1")).err, 0);
	assert_int_equal(apply(f->s, SETX(d, "user.d", "dir")).err, 0);

	/* A capture keeps what it took. */
	assert_int_equal(snapshot_capture(f->s, &snap), 0);
	assert_int_equal(apply(f->s, SETX(file, "user.a", "changed later")).err, 0);
	assert_int_equal(snapshot_write(snap, f->dir, f->err, sizeof(f->err)), 0);
	snapshot_free(snap);
	assert_int_equal(
	    snapshot_load(f->dir, store_applied_index(f->s) - 1, &t, f->err, sizeof(f->err)), 0);
	assert_memory_equal(store_xattr_get(store_get(t, file), "user.a", 6, &found)->data, "1", 1);
	store_close(t);

	take(f);
	assert_int_equal(snapshot_load_latest(f->dir, &t, &index, f->err, sizeof(f->err)), 0);
	assert_stores_equal(f->s, t);
	assert_int_equal(store_xattr_bytes(t), 6 + 3 + 6 + 13 + 6 + 1);
	store_close(t);

	snap_path(f, store_applied_index(f->s), "snap", path, sizeof(path));
	good = read_file(path, &len);
	/* Record order: d (29 bytes: ino, n, one name and value), then f (8 + 4 + 2 x 15 + 13
	 * for "changed later" = 54), after the u32 count; then the lock count and the CRC. */
	xs = len - 8 - (4 + 29 + 54);
	fe = xs + 4 + 29;
	assert_int_equal(good[xs], 2);
	assert_int_equal(good[xs + 4], d);
	assert_int_equal(good[fe], file);
	assert_memory_equal(good + fe + 16, "user.a", 6);
	assert_memory_equal(good + fe + 16 + 6 + 4 + 13 + 4, "user.b", 6);
	buf = malloc(len);
	assert_non_null(buf);
	const struct {
		size_t off;
		uint8_t val;
	} cases[] = {
	    {xs, 3},             /* one more inode than there is */
	    {xs, 1},             /* one fewer: bytes left over */
	    {fe, (uint8_t)l},    /* attributes on a symlink */
	    {fe, (uint8_t)d},    /* d twice */
	    {fe, 0x7f},          /* an unknown inode */
	    {fe + 8, 0},         /* an empty set */
	    {fe + 8, 3},         /* more names than there are */
	    {fe + 16, 's'},      /* not "user." */
	    {fe + 16 + 5, 'c'},  /* user.c before user.b: not sorted */
	    {fe + 16 + 5, 'b'},  /* user.b twice */
	    {fe + 16 + 5, '\0'}, /* a NUL in a name */
	    {fe + 16 + 4, 'k'},  /* "userka": not user. */
	    {fe + 12, 0},        /* an empty name */
	    {fe + 12, 0xff},     /* a name running past the end */
	    {fe + 22 + 2, 0x01}, /* a value over 64 KiB */
	    {len - 8, 1},        /* a lock */
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		memcpy(buf, good, len);
		buf[cases[i].off] = cases[i].val;
		write_resealed(path, buf, len);
		if (snapshot_load(f->dir, store_applied_index(f->s), &t, f->err, sizeof(f->err)) !=
		    -EBADMSG)
			fail_msg("case %zu (offset %zu) loaded", i, cases[i].off);
	}
	free(buf);

	/* KVFSSNP3: the same file without the two sections loads, with no attributes. */
	buf = malloc(len);
	assert_non_null(buf);
	memcpy(buf, good, xs);
	memcpy(buf, "KVFSSNP3", 8);
	memcpy(buf + xs, good + len - 4, 4);
	write_resealed(path, buf, xs + 4);
	assert_int_equal(
	    snapshot_load(f->dir, store_applied_index(f->s), &t, f->err, sizeof(f->err)), 0);
	assert_null(store_get(t, file)->xattrs);
	assert_int_equal(store_xattr_bytes(t), 0);
	store_close(t);
	free(buf);
	free(good);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
	const struct CMUnitTest tests[] = {
	    T(test_roundtrip),
	    T(test_empty_store),
	    T(test_capture_isolated),
	    T(test_corrupt_newest_falls_back),
	    T(test_all_corrupt_refused),
	    T(test_bad_tree_refused),
	    T(test_tmp_removed),
	    T(test_prune_and_oldest),
	    T(test_write_failure),
	    T(test_continue_after_load),
	    T(test_v1_fixture),
	    T(test_v3_config),
	    T(test_v2_loads),
	    T(test_xattrs),
	};
#undef T

	return cmocka_run_group_tests(tests, NULL, NULL);
}
