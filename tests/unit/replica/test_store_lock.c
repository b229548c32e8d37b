/*
 * Unit tests of the lock table (replica/store_lock.c) through store_apply(): flock conflicts
 * and atomic conversion, record locks split, trimmed and merged as fcntl(2) says, owners and
 * kinds kept apart, UNLOCK_OWNER, RELEASE_NODE by incarnation, locks dropped with the inode's
 * last name, fencing tokens, and the KVFSSNP4 lock section: a round trip, and corrupt locks
 * refused.
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
#include <unistd.h>

#include "kvfs/crc32c.h"
#include "kvfs/op.h"
#include "kvfs/snapshot.h"
#include "kvfs/store.h"

#define ROOT    KVFS_ROOT_INO
#define OP(...) ((struct kvfs_op){__VA_ARGS__})
#define END     KVFS_LOCK_END_MAX

static struct kvfs_apply_result apply(struct kvfs_store *s, struct kvfs_op op)
{
	struct kvfs_apply_result res;

	op.max_value = 1u << 20;
	assert_int_equal(store_apply(s, 1, store_applied_index(s) + 1, &op, &res), 0);
	return res;
}

static uint64_t create(struct kvfs_store *s, const char *name)
{
	struct kvfs_apply_result r =
	    apply(s, OP(.type = KVFS_OP_CREATE, .parent = ROOT, .name = name,
	                .name_len = (uint32_t)strlen(name), .mode = 0644));

	assert_int_equal(r.err, 0);
	return r.ino;
}

/* A LOCK by owner (node, inc 1, owner) of kind on ino: its outcome. */
static int lk(struct kvfs_store *s, uint64_t ino, uint32_t node, uint64_t owner, uint8_t kind,
              uint8_t type, uint64_t start, uint64_t end)
{
	return apply(s, OP(.type = KVFS_OP_LOCK, .origin = node, .ino = ino, .lk_node = node,
	                   .lk_inc = 1, .lk_owner = owner, .lk_kind = kind, .lk_type = type,
	                   .lk_start = start, .lk_end = end, .lk_pid = 100 + node))
	    .err;
}

#define FL(s, ino, node, owner, type)       lk(s, ino, node, owner, KVFS_LOCK_FLOCK, type, 0, 0)
#define PX(s, ino, node, owner, type, a, b) lk(s, ino, node, owner, KVFS_LOCK_POSIX, type, a, b)

/* The record locks of (node, owner) on ino as "t:a-b " pieces in table order, sorted by start. */
static const char *ranges(struct kvfs_store *s, uint64_t ino, uint32_t node, uint64_t owner)
{
	static char buf[512];
	const struct kvfs_lock *got[32];
	size_t n = 0, off = 0;

	for (size_t i = 0; i < store_lock_count(s); i++) {
		const struct kvfs_lock *l = store_lock_at(s, i);

		if (l->ino == ino && l->node == node && l->owner == owner &&
		    l->kind == KVFS_LOCK_POSIX)
			got[n++] = l;
	}
	for (size_t i = 1; i < n; i++)
		for (size_t j = i; j > 0 && got[j - 1]->start > got[j]->start; j--) {
			const struct kvfs_lock *t = got[j];

			got[j] = got[j - 1];
			got[j - 1] = t;
		}
	buf[0] = '\0';
	for (size_t i = 0; i < n; i++)
		off +=
		    got[i]->end == END
		        ? (size_t)snprintf(buf + off, sizeof(buf) - off, "%s%c:%llu-", i ? " " : "",
		                           got[i]->type == KVFS_LOCK_WR ? 'w' : 'r',
		                           (unsigned long long)got[i]->start)
		        : (size_t)snprintf(buf + off, sizeof(buf) - off, "%s%c:%llu-%llu",
		                           i ? " " : "", got[i]->type == KVFS_LOCK_WR ? 'w' : 'r',
		                           (unsigned long long)got[i]->start,
		                           (unsigned long long)got[i]->end);
	return buf;
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

static void test_flock(void **state)
{
	struct kvfs_store *s = *state;
	uint64_t f = create(s, "f"), g = create(s, "g"), token;

	assert_int_equal(FL(s, f, 1, 10, KVFS_LOCK_RD), 0);
	assert_int_equal(FL(s, f, 2, 10, KVFS_LOCK_RD),
	                 0); /* shared: same owner number, other node */
	assert_int_equal(FL(s, f, 2, 11, KVFS_LOCK_WR), -EAGAIN);
	/* Upgrading while another shares it fails and keeps the shared lock (atomic). */
	assert_int_equal(FL(s, f, 1, 10, KVFS_LOCK_WR), -EAGAIN);
	assert_int_equal(store_lock_count(s), 2);
	assert_int_equal(FL(s, f, 2, 10, KVFS_LOCK_UN), 0);
	assert_int_equal(FL(s, f, 1, 10, KVFS_LOCK_WR), 0);
	assert_int_equal(store_lock_count(s), 1);
	assert_true(store_lock_token(s, f, &token));
	assert_int_equal(token, store_applied_index(s)); /* granted by the last entry */
	assert_int_equal(FL(s, f, 3, 1, KVFS_LOCK_RD), -EAGAIN);
	assert_int_equal(FL(s, g, 3, 1, KVFS_LOCK_WR), 0); /* another file */
	/* flock and record locks do not see each other. */
	assert_int_equal(PX(s, f, 3, 1, KVFS_LOCK_WR, 0, END), 0);
	/* Downgrade, then another reader gets in. */
	assert_int_equal(FL(s, f, 1, 10, KVFS_LOCK_RD), 0);
	assert_int_equal(FL(s, f, 3, 1, KVFS_LOCK_RD), 0);
	/* Unlocking what is not held is fine. */
	assert_int_equal(FL(s, f, 4, 1, KVFS_LOCK_UN), 0);
	/* The root directory can be flocked (`flock /mnt cmd`). */
	assert_int_equal(FL(s, ROOT, 1, 10, KVFS_LOCK_WR), 0);
	assert_int_equal(FL(s, ROOT, 2, 10, KVFS_LOCK_WR), -EAGAIN);
	assert_int_equal(FL(s, ROOT, 1, 10, KVFS_LOCK_UN), 0);
	/* A file that does not exist, a node speaking for another. */
	assert_int_equal(FL(s, 999, 1, 10, KVFS_LOCK_RD), -ENOENT);
	assert_int_equal(apply(s, OP(.type = KVFS_OP_LOCK, .origin = 2, .ino = f, .lk_node = 1,
	                             .lk_inc = 1, .lk_type = KVFS_LOCK_UN))
	                     .err,
	                 -EINVAL);
}

static void test_posix_ranges(void **state)
{
	struct kvfs_store *s = *state;
	uint64_t f = create(s, "f");

	assert_int_equal(PX(s, f, 1, 7, KVFS_LOCK_WR, 0, 99), 0);
	/* Unlock the middle: split in two. */
	assert_int_equal(PX(s, f, 1, 7, KVFS_LOCK_UN, 40, 59), 0);
	assert_string_equal(ranges(s, f, 1, 7), "w:0-39 w:60-99");
	/* A read lock across the hole converts what it covers. */
	assert_int_equal(PX(s, f, 1, 7, KVFS_LOCK_RD, 30, 69), 0);
	assert_string_equal(ranges(s, f, 1, 7), "w:0-29 r:30-69 w:70-99");
	/* Adjoining same-type locks merge, also those a merge makes adjoin. */
	assert_int_equal(PX(s, f, 1, 7, KVFS_LOCK_WR, 30, 69), 0);
	assert_string_equal(ranges(s, f, 1, 7), "w:0-99");
	assert_int_equal(PX(s, f, 1, 7, KVFS_LOCK_WR, 100, END), 0);
	assert_string_equal(ranges(s, f, 1, 7), "w:0-");
	/* Other owners: conflicts only where ranges overlap and one writes. */
	assert_int_equal(PX(s, f, 1, 8, KVFS_LOCK_RD, 5, 5), -EAGAIN);
	assert_int_equal(PX(s, f, 1, 7, KVFS_LOCK_UN, 0, 9), 0);
	assert_int_equal(PX(s, f, 1, 8, KVFS_LOCK_RD, 5, 5), 0);
	assert_int_equal(PX(s, f, 2, 7, KVFS_LOCK_RD, 0, 9), 0);
	assert_int_equal(PX(s, f, 2, 7, KVFS_LOCK_WR, 0, 9), -EAGAIN);
	assert_int_equal(PX(s, f, 2, 7, KVFS_LOCK_WR, 6, 9), 0);
	assert_string_equal(ranges(s, f, 2, 7), "r:0-5 w:6-9");
	/* F_GETLK's view. */
	{
		struct kvfs_lock want = {.ino = f,
		                         .node = 3,
		                         .inc = 1,
		                         .owner = 1,
		                         .kind = KVFS_LOCK_POSIX,
		                         .type = KVFS_LOCK_RD,
		                         .start = 8,
		                         .end = 8},
		                 c;

		assert_true(store_lock_conflict(s, &want, &c));
		assert_int_equal(c.node, 2);
		assert_int_equal(c.pid, 102);
		assert_int_equal(c.start, 6);
		want.start = want.end = 2;
		assert_false(store_lock_conflict(s, &want, NULL));
	}
	/* UNLOCK_OWNER drops one owner's locks of one kind on one file. */
	assert_int_equal(FL(s, f, 2, 7, KVFS_LOCK_WR), 0);
	assert_int_equal(
	    apply(s, OP(.type = KVFS_OP_UNLOCK_OWNER, .origin = 2, .ino = f, .lk_node = 2,
	                .lk_inc = 1, .lk_owner = 7, .lk_kind = KVFS_LOCK_POSIX))
	        .err,
	    0);
	assert_string_equal(ranges(s, f, 2, 7), "");
	assert_string_equal(ranges(s, f, 1, 7), "w:10-");
	assert_int_equal(FL(s, f, 3, 3, KVFS_LOCK_RD), -EAGAIN); /* the flock lock stayed */
	/* Bad ranges and types fail at apply time too (op_validate refuses them first). */
	assert_int_equal(PX(s, f, 1, 7, KVFS_LOCK_WR, 9, 8), -EINVAL);
	assert_int_equal(PX(s, f, 1, 7, KVFS_LOCK_WR, 0, END + 1), -EINVAL);
	assert_int_equal(PX(s, f, 1, 7, 7, 0, 1), -EINVAL);
}

static void test_release_node_and_unlink(void **state)
{
	struct kvfs_store *s = *state;
	uint64_t f = create(s, "f"), g = create(s, "g");
	uint64_t token;

	assert_int_equal(FL(s, f, 1, 1, KVFS_LOCK_WR), 0);
	assert_int_equal(PX(s, g, 1, 1, KVFS_LOCK_WR, 0, 9), 0);
	assert_int_equal(PX(s, g, 2, 1, KVFS_LOCK_WR, 10, 19), 0);
	/* A later incarnation's release spares locks of that incarnation and later. */
	assert_int_equal(
	    apply(s, OP(.type = KVFS_OP_RELEASE_NODE, .origin = 3, .lk_node = 1, .lk_inc = 1)).err,
	    0);
	assert_int_equal(store_lock_count(s), 3);
	assert_int_equal(apply(s, OP(.type = KVFS_OP_RELEASE_NODE, .origin = 3, .lk_node = 1,
	                             .lk_inc = UINT64_MAX))
	                     .err,
	                 0);
	assert_int_equal(store_lock_count(s), 1);
	assert_false(store_lock_token(s, f, &token));
	assert_int_equal(FL(s, f, 2, 5, KVFS_LOCK_WR), 0);
	/* The file's last name goes: its locks go with it, on every replica alike. */
	assert_int_equal(
	    apply(s, OP(.type = KVFS_OP_UNLINK, .parent = ROOT, .name = "g", .name_len = 1)).err,
	    0);
	assert_int_equal(store_lock_count(s), 1);
	assert_int_equal(store_lock_at(s, 0)->ino, f);
}

static void write_resealed(const char *path, uint8_t *buf, size_t len)
{
	uint32_t crc = crc32c(0, buf, len - 4);
	FILE *fp;

	for (int i = 0; i < 4; i++)
		buf[len - 4 + (size_t)i] = (uint8_t)(crc >> (8 * i));
	fp = fopen(path, "wb");
	assert_non_null(fp);
	assert_int_equal(fwrite(buf, 1, len, fp), len);
	fclose(fp);
}

static void test_snapshot(void **state)
{
	struct kvfs_store *s = *state, *t;
	struct kvfs_snapshot *snap;
	char dir[] = "/tmp/kvfs-test-lock-XXXXXX", path[256], err[512];
	uint64_t f = create(s, "f"), index;
	uint8_t *buf;
	size_t len;
	FILE *fp;
	const size_t lock_size = 58;

	assert_int_equal(FL(s, f, 1, 1, KVFS_LOCK_RD), 0);
	assert_int_equal(FL(s, f, 2, 1, KVFS_LOCK_RD), 0);
	assert_int_equal(PX(s, f, 2, 9, KVFS_LOCK_WR, 5, 10), 0);
	assert_non_null(mkdtemp(dir));
	assert_int_equal(snapshot_capture(s, &snap), 0);
	assert_int_equal(snapshot_write(snap, dir, err, sizeof(err)), 0);
	snapshot_free(snap);
	assert_int_equal(snapshot_load_latest(dir, &t, &index, err, sizeof(err)), 0);
	assert_int_equal(store_lock_count(t), 3);
	for (size_t i = 0; i < 3; i++) {
		const struct kvfs_lock *a = store_lock_at(t, i), *b = store_lock_at(s, i);

		assert_true(a->ino == b->ino && a->node == b->node && a->inc == b->inc &&
		            a->owner == b->owner && a->kind == b->kind && a->type == b->type &&
		            a->start == b->start && a->end == b->end && a->pid == b->pid &&
		            a->token == b->token);
	}
	/* The loaded table goes on deciding as the original does. */
	assert_int_equal(FL(t, f, 3, 1, KVFS_LOCK_WR), -EAGAIN);
	store_close(t);

	snprintf(path, sizeof(path), "%s/snap-%020llu.snap", dir,
	         (unsigned long long)store_applied_index(s));
	fp = fopen(path, "rb");
	assert_non_null(fp);
	buf = malloc(4096);
	len = fread(buf, 1, 4096, fp);
	fclose(fp);
	assert_memory_equal(buf, "KVFSSNP4", 8);
	/* Corrupt locks (checksum made right) are refused: the third lock, at the end. */
	{
		static const struct {
			size_t off;
			uint8_t val;
		} cases[] = {
		    {0, 0x77},      /* an unknown ino */
		    {8, 0x00},      /* node 0 (node is 2) */
		    {9, 0x01},      /* node 258: beyond KVFS_CONFIG_ID_MAX */
		    {28, 0x05},     /* an unknown kind */
		    {29, 0x02},     /* type F_UNLCK: never held */
		    {30, 0x20},     /* start past end */
		    {38 + 7, 0x80}, /* end past KVFS_LOCK_END_MAX */
		    {50 + 7, 0x01}, /* a token past the snapshot's index */
		    {50, 0x00},     /* token 0 (the index is below 256) */
		};
		uint8_t *bad = malloc(len);
		size_t third = len - 4 - lock_size;

		for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
			memcpy(bad, buf, len);
			bad[third + cases[i].off] = cases[i].val;
			write_resealed(path, bad, len);
			t = NULL;
			assert_int_equal(snapshot_load_latest(dir, &t, &index, err, sizeof(err)),
			                 -EBADMSG);
			assert_null(t);
		}
		/* A conflict: the second flock reader made a writer. */
		memcpy(bad, buf, len);
		bad[third - lock_size + 29] = KVFS_LOCK_WR;
		write_resealed(path, bad, len);
		assert_int_equal(snapshot_load_latest(dir, &t, &index, err, sizeof(err)), -EBADMSG);
		/* A count beyond what the file holds; a non-zero xattr count. */
		memcpy(bad, buf, len);
		bad[len - 4 - 3 * lock_size - 4] = 4;
		write_resealed(path, bad, len);
		assert_int_equal(snapshot_load_latest(dir, &t, &index, err, sizeof(err)), -EBADMSG);
		memcpy(bad, buf, len);
		bad[len - 4 - 3 * lock_size - 8] = 1;
		write_resealed(path, bad, len);
		assert_int_equal(snapshot_load_latest(dir, &t, &index, err, sizeof(err)), -EBADMSG);
		free(bad);
	}
	unlink(path);
	rmdir(dir);
	free(buf);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
	const struct CMUnitTest tests[] = {
	    T(test_flock),
	    T(test_posix_ranges),
	    T(test_release_node_and_unlink),
	    T(test_snapshot),
	};
#undef T

	return cmocka_run_group_tests(tests, NULL, NULL);
}
