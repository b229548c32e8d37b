/*
 * Unit tests of the change feed's ring and line formats (replica/changes.c, changes_fmt.c): paths
 * resolved at apply time (nested names, renames, hard links, unlinked inodes), failed and
 * duplicate operations left out, the bound (oldest records dropped, -ERANGE below the first
 * index), gaps, the text escapes and the JSON lines, the prefix filter.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kvfs/changes.h"
#include "kvfs/op.h"
#include "kvfs/store.h"

#include "store_ops.h"

/* Applies op at the next index and records it in c; returns its outcome. */
static int feed(struct kvfs_store *s, struct kvfs_changes *c, struct kvfs_op op)
{
	struct kvfs_apply_result res;
	uint64_t index = store_applied_index(s) + 1;

	if (!op.time_ns)
		op.time_ns = (now_ns += 1000);
	if (!op.origin)
		op.origin = 2;
	assert_int_equal(store_apply(s, 7, index, &op, &res), 0);
	changes_record(c, s, 7, index, &op, &res);
	return res.err < 0 ? res.err : (int)res.ino;
}

static const char *text_of(const struct kvfs_changes *c, uint64_t index)
{
	static char line[4096];
	const struct kvfs_change *ch;

	if (changes_find(c, index, &ch) != 0)
		fail_msg("no record at %llu", (unsigned long long)index);
	assert_int_equal(ch->index, index);
	assert_true(changes_fmt_text(ch, line, sizeof(line)) < sizeof(line));
	return line;
}

/* The text line of index with its first three fields (index, epoch, time) cut off. */
static const char *tail_of(const struct kvfs_changes *c, uint64_t index)
{
	const char *l = text_of(c, index);

	for (int i = 0; i < 3; i++)
		l = strchr(l, ' ') + 1;
	return l;
}

static void test_paths(void **state)
{
	struct kvfs_store *s = *state;
	struct kvfs_changes *c;
	int d, f;

	assert_int_equal(changes_init(&c, 100), 0);
	d = feed(s, c,
	         OP(.type = KVFS_OP_MKDIR, .parent = ROOT, NAME("dir"), .mode = 0755,
	            .time_ns = 1000000005));
	f = feed(s, c, OP(.type = KVFS_OP_CREATE, .parent = (uint64_t)d, NAME("f"), .mode = 0644));
	feed(s, c, OP(.type = KVFS_OP_PUT, .ino = (uint64_t)f, DATA("hello"), .max_value = 100));
	feed(s, c, OP(.type = KVFS_OP_APPEND, .ino = (uint64_t)f, DATA("!"), .max_value = 100));
	assert_string_equal(tail_of(c, 1), "mkdir 2 0 /dir\n");
	assert_string_equal(tail_of(c, 2), "create 2 0 /dir/f\n");
	assert_string_equal(tail_of(c, 3), "put 2 5 /dir/f\n");
	assert_string_equal(tail_of(c, 4), "append 2 6 /dir/f\n");
	/* The time: seconds.nanoseconds. */
	assert_string_equal(text_of(c, 1), "1 7 1.000000005 mkdir 2 0 /dir\n");
	/* A failed op (EEXIST) changes nothing: no record, the index is still covered. */
	assert_int_equal(feed(s, c, OP(.type = KVFS_OP_MKDIR, .parent = ROOT, NAME("dir"))),
	                 -EEXIST);
	assert_int_equal(changes_next(c), 6);
	/* Rename: both paths; the size of what was renamed. */
	feed(s, c,
	     OP(.type = KVFS_OP_RENAME, .parent = (uint64_t)d, NAME("f"), .newparent = ROOT,
	        NEWNAME("g")));
	assert_string_equal(tail_of(c, 6), "rename 2 6 /dir/f /g\n");
	/* Hard link: the file's newest name; unlink: no size. */
	feed(s, c,
	     OP(.type = KVFS_OP_LINK, .flags = KVFS_OP_RULES2, .ino = (uint64_t)f,
	        .parent = (uint64_t)d, NAME("h")));
	assert_string_equal(tail_of(c, 7), "link 2 6 /dir/h\n");
	feed(s, c, OP(.type = KVFS_OP_PUT, .ino = (uint64_t)f, DATA("x"), .max_value = 100));
	assert_string_equal(tail_of(c, 8), "put 2 1 /dir/h\n");
	feed(s, c, OP(.type = KVFS_OP_UNLINK, .parent = (uint64_t)d, NAME("h")));
	assert_string_equal(tail_of(c, 9), "unlink 2 - /dir/h\n");
	/* An unlinked inode still open (pinned) is missing to the store: a write to it fails
	 * (ENOENT) on every replica and makes no record. */
	store_pin(s, get(s, (uint64_t)f), 1);
	feed(s, c, OP(.type = KVFS_OP_UNLINK, .parent = ROOT, NAME("g")));
	assert_int_equal(
	    feed(s, c, OP(.type = KVFS_OP_PUT, .ino = (uint64_t)f, DATA("yz"), .max_value = 100)),
	    -ENOENT);
	assert_string_equal(tail_of(c, 10), "unlink 2 - /g\n");
	store_unpin(s, get(s, (uint64_t)f), 1);
	feed(s, c, OP(.type = KVFS_OP_RMDIR, .parent = ROOT, NAME("dir")));
	assert_string_equal(tail_of(c, 12), "rmdir 2 - /dir\n");
	assert_int_equal(changes_first(c), 1);
	assert_int_equal(changes_count(c), 10);
	changes_close(c);
}

static void test_escapes_and_json(void **state)
{
	struct kvfs_store *s = *state;
	struct kvfs_changes *c;
	const struct kvfs_change *ch;
	char line[1024];

	assert_int_equal(changes_init(&c, 10), 0);
	feed(s, c,
	     OP(.type = KVFS_OP_CREATE, .parent = ROOT, NAME("a b\nc\\d\"\xff"), .mode = 0644,
	        .time_ns = 1001000));
	assert_string_equal(tail_of(c, 1), "create 2 0 /a\\040b\\012c\\134d\"\\377\n");
	assert_int_equal(changes_find(c, 1, &ch), 0);
	changes_fmt_json(ch, line, sizeof(line));
	assert_string_equal(line,
	                    "{\"index\":1,\"epoch\":7,\"time_ns\":1001000,\"op\":\"create\","
	                    "\"origin\":2,\"size\":0,\"path\":\"/a\\\\040b\\\\012c\\\\134d\\\""
	                    "\\\\377\",\"path_escaped\":true}\n");
	feed(s, c,
	     OP(.type = KVFS_OP_CREATE, .parent = ROOT, NAME("\xc3\xa9t\xc3\xa9\t\""), .mode = 0644,
	        .time_ns = 1002000));
	assert_int_equal(changes_find(c, 2, &ch), 0);
	changes_fmt_json(ch, line, sizeof(line));
	assert_string_equal(
	    line, "{\"index\":2,\"epoch\":7,\"time_ns\":1002000,\"op\":\"create\","
	          "\"origin\":2,\"size\":0,\"path\":\"/\xc3\xa9t\xc3\xa9\\u0009\\\"\"}\n");
	feed(s, c, OP(.type = KVFS_OP_UNLINK, .parent = ROOT, NAME("\xc3\xa9t\xc3\xa9\t\"")));
	assert_int_equal(changes_find(c, 3, &ch), 0);
	changes_fmt_json(ch, line, sizeof(line));
	assert_non_null(strstr(line, "\"size\":null"));
	/* snprintf-like: the length needed, the cut line NUL-ended. */
	assert_int_equal(changes_fmt_text(ch, line, 5), changes_fmt_text(ch, NULL, 0));
	assert_int_equal(strlen(line), 4);
	changes_close(c);
}

static void test_bound_and_gaps(void **state)
{
	struct kvfs_store *s = *state;
	struct kvfs_changes *c;
	const struct kvfs_change *ch;
	char name[16];

	assert_int_equal(changes_init(&c, 4), 0);
	assert_int_equal(changes_find(c, 1, &ch), -EAGAIN);
	assert_int_equal(changes_find(c, 0, &ch), -ERANGE);
	for (int i = 0; i < 6; i++) {
		snprintf(name, sizeof(name), "f%d", i);
		feed(s, c, OP(.type = KVFS_OP_CREATE, .parent = ROOT, NAME(name), .mode = 0644));
	}
	/* 4 kept of 6: 3..6; asking for 2 is an error, never a silent skip. */
	assert_int_equal(changes_count(c), 4);
	assert_int_equal(changes_first(c), 3);
	assert_int_equal(changes_find(c, 2, &ch), -ERANGE);
	assert_int_equal(changes_find(c, 3, &ch), 0);
	assert_int_equal(ch->index, 3);
	assert_int_equal(changes_find(c, 7, &ch), -EAGAIN);
	assert_true(changes_bytes(c) >= 4 * sizeof(struct kvfs_change));
	/* A failed op between records: finding from it gives the next record. */
	feed(s, c, OP(.type = KVFS_OP_UNLINK, .parent = ROOT, NAME("nope")));
	feed(s, c, OP(.type = KVFS_OP_UNLINK, .parent = ROOT, NAME("f0")));
	assert_int_equal(changes_find(c, 7, &ch), 0);
	assert_int_equal(ch->index, 8);
	/* A gap (a snapshot installed): everything before is gone. */
	{
		struct kvfs_op op =
		    OP(.type = KVFS_OP_MKDIR, .parent = ROOT, NAME("z"), .mode = 0755);
		struct kvfs_apply_result res = {.ino = 0};

		changes_record(c, s, 8, 20, &op, &res);
	}
	assert_int_equal(changes_first(c), 20);
	assert_int_equal(changes_next(c), 21);
	assert_int_equal(changes_find(c, 19, &ch), -ERANGE);
	changes_reset(c, 30);
	assert_int_equal(changes_count(c), 0);
	assert_int_equal(changes_find(c, 29, &ch), -ERANGE);
	assert_int_equal(changes_find(c, 30, &ch), -EAGAIN);
	assert_int_equal(changes_init(&c, 0), -EINVAL);
	changes_close(c);
}

static void test_match(void **state)
{
	struct kvfs_store *s = *state;
	struct kvfs_changes *c;
	const struct kvfs_change *ch;
	int d;

	assert_int_equal(changes_init(&c, 10), 0);
	d = feed(s, c, OP(.type = KVFS_OP_MKDIR, .parent = ROOT, NAME("a"), .mode = 0755));
	feed(s, c, OP(.type = KVFS_OP_CREATE, .parent = (uint64_t)d, NAME("x"), .mode = 0644));
	feed(s, c, OP(.type = KVFS_OP_CREATE, .parent = ROOT, NAME("ab"), .mode = 0644));
	feed(s, c,
	     OP(.type = KVFS_OP_RENAME, .parent = ROOT, NAME("ab"), .newparent = (uint64_t)d,
	        NEWNAME("y")));
	assert_int_equal(changes_find(c, 1, &ch), 0);
	assert_true(changes_match(ch, "/a", 2));
	assert_true(changes_match(ch, "/a/", 3));
	assert_false(changes_match(ch, "/a/x", 4));
	assert_int_equal(changes_find(c, 2, &ch), 0);
	assert_true(changes_match(ch, "/a", 2));
	assert_true(changes_match(ch, "/", 1));
	assert_true(changes_match(ch, "", 0));
	assert_int_equal(changes_find(c, 3, &ch), 0);
	assert_false(changes_match(ch, "/a", 2)); /* "/ab" is not under "/a" */
	assert_int_equal(changes_find(c, 4, &ch), 0);
	assert_true(changes_match(ch, "/a", 2));  /* renamed into it */
	assert_true(changes_match(ch, "/ab", 3)); /* ... and away from there */
	changes_close(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_paths, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_escapes_and_json, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_bound_and_gaps, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_match, setup, teardown),
	};

	(void)assert_value; /* store_ops.h's helpers this test does not need */
	(void)put;
	(void)lookup;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
