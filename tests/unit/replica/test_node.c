/*
 * Unit tests of the node's recovery (replica/node_uv.c, standalone, without a loop): applying is
 * total at start too. A data directory whose log holds a checksummed entry that does not decode,
 * and operations that fail when they apply (a value over their own max_value, a name the store
 * refuses), opens, at every restart, with each of those outcomes recorded as an errno (in the
 * exactly-once table where the entry has an origin) and the entries around them applied.
 * And, on a loop, that node_propose() marks what it proposes with KVFS_OP_RULES2.
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
#include <unistd.h>
#include <uv.h>

#include "kvfs/log.h"
#include "kvfs/node.h"
#include "kvfs/op.h"
#include "kvfs/status.h"
#include "kvfs/store.h"
#include "kvfs/value.h"

#include "tmpdir.h"

struct fixture {
	char dir[64];
	struct kvfs_node_config cfg;
	char err[512];
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	assert_non_null(tmpdir_make(f->dir, sizeof(f->dir), "node"));
	f->cfg = (struct kvfs_node_config){.id = 1, .data_dir = f->dir, .max_value = 1u << 20};
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	tmpdir_remove(f->dir);
	free(f);
	return 0;
}

/* A batch of sealed log records being built: payloads in order from index 1, epoch 1. */
struct records {
	uint8_t buf[4096];
	size_t len;
	uint64_t last;
};

static void add_bytes(struct records *r, const void *payload, uint32_t len)
{
	assert_true(r->len + log_record_size(len) <= sizeof(r->buf));
	memcpy(r->buf + r->len + KVFS_LOG_HEADER_SIZE, payload, len);
	log_record_seal(r->buf + r->len, 1, ++r->last, len);
	r->len += log_record_size(len);
}

static void add_op(struct records *r, const struct kvfs_op *op)
{
	uint8_t payload[512];

	assert_true(op_encoded_size(op) <= sizeof(payload));
	add_bytes(r, payload, (uint32_t)op_encode(op, payload));
}

static struct kvfs_node *open_node(struct fixture *f)
{
	struct kvfs_node *n = NULL;

	f->err[0] = '\0';
	if (node_open(&n, &f->cfg, f->err, sizeof(f->err)) != 0)
		fail_msg("node_open(%s): %s", f->dir, f->err);
	return n;
}

static void assert_session(struct kvfs_store *s, uint32_t origin, uint64_t seq, int err)
{
	struct kvfs_session sess;

	assert_true(store_session_get(s, origin, &sess));
	assert_int_equal(sess.seq, seq);
	assert_int_equal(sess.err, err);
}

static void test_recovery_is_total(void **state)
{
	static const uint8_t junk[] = {0xee, 'n', 'o', 't', ' ', 'a', 'n', ' ', 'o', 'p'};
	struct fixture *f = *state;
	struct kvfs_log_options lopts = {0};
	struct records r = {.len = 0};
	struct kvfs_log *log;
	struct kvfs_node *n;

	/* A data directory as node 1 makes it, then a log written behind its back. */
	node_close(open_node(f), NULL, NULL);
	add_op(&r, &(struct kvfs_op){.type = KVFS_OP_CREATE,
	                             .parent = KVFS_ROOT_INO,
	                             .name = "f",
	                             .name_len = 1,
	                             .mode = 0644,
	                             .origin = 2,
	                             .seq = 1,
	                             .max_value = 1u << 20,
	                             .time_ns = 10});
	add_bytes(&r, junk, sizeof(junk)); /* checksummed, but no operation */
	add_op(&r, &(struct kvfs_op){.type = KVFS_OP_PUT,
	                             .ino = KVFS_INO_BASE + 1,
	                             .data = (const uint8_t *)"too big",
	                             .data_len = 7,
	                             .max_value = 3,
	                             .origin = 3,
	                             .seq = 1,
	                             .time_ns = 11});
	add_op(&r, &(struct kvfs_op){.type = KVFS_OP_MKDIR,
	                             .parent = KVFS_ROOT_INO,
	                             .name = "..",
	                             .name_len = 2,
	                             .origin = 4,
	                             .seq = 1,
	                             .time_ns = 12});
	add_op(&r, &(struct kvfs_op){.type = KVFS_OP_APPEND,
	                             .ino = KVFS_INO_BASE + 1,
	                             .data = (const uint8_t *)"ok",
	                             .data_len = 2,
	                             .max_value = 1u << 20,
	                             .origin = 2,
	                             .seq = 2,
	                             .time_ns = 13});
	assert_int_equal(log_open(&log, f->dir, &lopts, NULL, NULL, f->err, sizeof(f->err)), 0);
	assert_int_equal(log_append_batch(log, r.buf, r.len, 1, r.last), 0);
	log_close(log);

	/* Twice: a restart after a restart sees the same. */
	for (int i = 0; i < 2; i++) {
		struct kvfs_store *s;
		struct kvfs_inode *in;

		n = open_node(f);
		s = node_store(n);
		assert_int_equal(store_applied_index(s), r.last);
		in = store_get(s, KVFS_INO_BASE + 1);
		assert_non_null(in);
		assert_int_equal(value_size(in->value), 2);
		assert_memory_equal(in->value->data, "ok", 2);
		assert_int_equal(store_inode_count(s), 2);
		assert_session(s, 2, 2, 0);
		assert_session(s, 3, 1, -EFBIG);
		assert_session(s, 4, 1, -EINVAL);
		node_close(n, NULL, NULL);
	}
}

/* What node_propose() puts in the log, as every replica applies it and the disk keeps it. */
struct proposed {
	int done, err, applied;
	uint64_t ino;
	uint32_t applied_flags[4];
	uint32_t logged_flags[8];
	int logged;
	bool closed;
};

static void on_done(void *arg, int err, uint64_t ino)
{
	struct proposed *p = arg;

	p->done++;
	p->err = err;
	p->ino = ino;
}

static void on_apply(void *arg, const struct kvfs_op *op, const struct kvfs_apply_result *res)
{
	struct proposed *p = arg;

	if (p->applied < 4)
		p->applied_flags[p->applied] = op->flags;
	p->applied++;
}

static void on_closed(void *arg)
{
	((struct proposed *)arg)->closed = true;
}

static int on_record(void *arg, const struct kvfs_log_record *rec)
{
	struct proposed *p = arg;
	struct kvfs_op op;

	if (rec->len && op_decode(&op, rec->payload, rec->len) == 0 && op.type != KVFS_OP_NOOP &&
	    p->logged < 8)
		p->logged_flags[p->logged++] = op.flags;
	return 0;
}

/* Issue 11: every op a node proposes carries KVFS_OP_RULES2, its own flags kept; the ones the
 * log held before (without it) keep applying as they did. */
static void test_propose_sets_rules2(void **state)
{
	struct fixture *f = *state;
	struct kvfs_log_options lopts = {0};
	struct proposed p = {0};
	struct kvfs_log *log;
	struct kvfs_node *n;
	uv_loop_t loop;
	struct kvfs_op ops[] = {
	    {.type = KVFS_OP_CREATE,
	     .parent = KVFS_ROOT_INO,
	     .name = "f",
	     .name_len = 1,
	     .mode = 0644,
	     .flags = KVFS_CREATE_EXCL},
	    {.type = KVFS_OP_SETATTR, .flags = KVFS_SET_MODE, .mode = 0600}, /* ino: f's */
	};

	f->cfg.write_timeout_ms = 10000;
	assert_int_equal(uv_loop_init(&loop), 0);
	n = open_node(f);
	assert_int_equal(node_start(n, &loop, on_apply, NULL, &p), 0);
	for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++) {
		assert_int_equal(node_propose(n, &ops[i], 0, on_done, &p), 0);
		while (p.done <= (int)i)
			uv_run(&loop, UV_RUN_ONCE);
		assert_int_equal(p.err, 0);
		ops[1].ino = p.ino;
	}
	node_close(n, on_closed, &p);
	while (!p.closed)
		uv_run(&loop, UV_RUN_ONCE);
	assert_int_equal(uv_loop_close(&loop), 0);

	assert_int_equal(p.applied, 2);
	assert_int_equal(p.applied_flags[0], KVFS_OP_RULES2 | KVFS_CREATE_EXCL);
	assert_int_equal(p.applied_flags[1], KVFS_OP_RULES2 | KVFS_SET_MODE);
	assert_int_equal(log_open(&log, f->dir, &lopts, on_record, &p, f->err, sizeof(f->err)), 0);
	log_close(log);
	assert_int_equal(p.logged, 2);
	assert_int_equal(p.logged_flags[0], KVFS_OP_RULES2 | KVFS_CREATE_EXCL);
	assert_int_equal(p.logged_flags[1], KVFS_OP_RULES2 | KVFS_SET_MODE);
}

/* Issue 12: a standalone node is a configuration of one, itself, whatever its id: it leads and
 * commits; its status shows no membership facts. */
static void test_standalone_any_id(void **state)
{
	struct fixture *f = *state;
	struct proposed p = {0};
	struct kvfs_status st;
	struct kvfs_node *n;
	uv_loop_t loop;
	struct kvfs_op op = {.type = KVFS_OP_CREATE,
	                     .parent = KVFS_ROOT_INO,
	                     .name = "f",
	                     .name_len = 1,
	                     .mode = 0644};

	f->cfg.id = 7;
	f->cfg.write_timeout_ms = 10000;
	assert_int_equal(uv_loop_init(&loop), 0);
	n = open_node(f);
	assert_int_equal(node_start(n, &loop, on_apply, NULL, &p), 0);
	assert_int_equal(node_propose(n, &op, 0, on_done, &p), 0);
	while (p.done < 1)
		uv_run(&loop, UV_RUN_ONCE);
	assert_int_equal(p.err, 0);
	memset(&st, 0, sizeof(st));
	st.role = "standalone";
	node_status(n, &st);
	assert_null(st.member_role);
	node_close(n, on_closed, &p);
	while (!p.closed)
		uv_run(&loop, UV_RUN_ONCE);
	assert_int_equal(uv_loop_close(&loop), 0);
	assert_int_equal(p.applied, 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_recovery_is_total, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_propose_sets_rules2, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_standalone_any_id, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
