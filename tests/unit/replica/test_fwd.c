/*
 * Unit tests of write forwarding (fwd.c) with a scripted io: where writes go, renumbering,
 * refusals, snapshots, barriers. The simulation (test_repl_sim.c, sim_fwd.c) runs it at scale;
 * these pin down single cases, regressions included.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "kvfs/fwd.h"
#include "kvfs/op.h"
#include "kvfs/store.h"

struct env {
	struct kvfs_fwd *f;
	uint64_t now;
	struct kvfs_fwd_view view;
	bool connected;
	uint64_t sent[16]; /* seqs forwarded, in order */
	uint32_t sent_to[16];
	int nsent;
	int proposed;
	struct kvfs_op last_op; /* the last op proposed, decoded from last_buf */
	uint8_t last_buf[256];
	uint32_t last_len;
	int refused_err;
	int done_err[8];
	int ndone[8];
	uint64_t last_seq[8]; /* per origin, 0: none */
	uint64_t clock_us;
};

static uint64_t io_now(void *arg)
{
	return ((struct env *)arg)->now;
}

static void io_view(void *arg, struct kvfs_fwd_view *v)
{
	*v = ((struct env *)arg)->view;
}

static bool io_connected(void *arg, uint32_t id)
{
	return ((struct env *)arg)->connected;
}

static int io_propose(void *arg, const uint8_t *op, uint32_t len)
{
	struct env *e = arg;

	e->proposed++;
	if (len <= sizeof(e->last_buf)) {
		memcpy(e->last_buf, op, len);
		e->last_len = len;
		assert_int_equal(op_decode(&e->last_op, e->last_buf, len), 0);
	}
	return 0;
}

static int io_forward(void *arg, uint32_t to, uint64_t seq, const uint8_t *op, uint32_t len)
{
	struct env *e = arg;
	struct kvfs_op o;

	assert_int_equal(op_decode(&o, op, len), 0);
	assert_int_equal(o.seq, seq);
	assert_true(e->nsent < 16);
	e->sent_to[e->nsent] = to;
	e->sent[e->nsent++] = seq;
	return 0;
}

static bool io_last_seq(void *arg, uint32_t origin, uint64_t *seq)
{
	struct env *e = arg;

	*seq = origin < 8 ? e->last_seq[origin] : 0;
	return *seq != 0;
}

static uint64_t io_clock_us(void *arg)
{
	return ((struct env *)arg)->clock_us;
}

static void io_refuse(void *arg, uint32_t to, uint64_t seq, int err)
{
	((struct env *)arg)->refused_err = err;
}

/* Callback slots: arg points at env->ndone[i]; the error goes to done_err[i]. */
static struct env *cur;

static void on(void *arg, int err, uint64_t ino)
{
	int i = (int)((int *)arg - cur->ndone);

	cur->ndone[i]++;
	cur->done_err[i] = err;
}

static void setup_env(struct env *e, uint32_t leader)
{
	struct kvfs_fwd_io io = {.arg = e,
	                         .now_ms = io_now,
	                         .view = io_view,
	                         .connected = io_connected,
	                         .propose = io_propose,
	                         .forward = io_forward,
	                         .refuse = io_refuse,
	                         .last_seq = io_last_seq,
	                         .clock_us = io_clock_us};
	struct kvfs_fwd_config cfg = {
	    .id = 2, .write_timeout_ms = 1000, .lim = {.max_value = 64}, .first_seq = 100};

	memset(e, 0, sizeof(*e));
	cur = e;
	e->now = 5;
	e->connected = true;
	e->view = (struct kvfs_fwd_view){
	    .zk_leader = leader, .zk_epoch = 3, .core_leader = leader, .core_epoch = 3};
	assert_int_equal(fwd_init(&e->f, &cfg, &io), 0);
}

static void put(struct env *e, int slot, size_t len)
{
	static const uint8_t data[64];
	struct kvfs_op op = {.type = KVFS_OP_PUT,
	                     .ino = 17,
	                     .max_value = 64,
	                     .data = data,
	                     .data_len = (uint32_t)len};

	assert_int_equal(fwd_propose(e->f, &op, 0, on, &e->ndone[slot]), 0);
}

static void applied(struct env *e, uint64_t seq, int err)
{
	struct kvfs_session sess = {.origin = 2, .seq = seq, .err = err};

	fwd_applied(e->f, &sess);
}

/* Writes go to the leader in seq order; the one applied completes, an older one waiting is
 * renumbered and sent again after the others. */
static void test_renumber(void **state)
{
	struct env e;

	setup_env(&e, 1);
	put(&e, 0, 1);
	put(&e, 1, 1);
	assert_int_equal(e.nsent, 2);
	assert_int_equal(e.sent[0], 100);
	assert_int_equal(e.sent[1], 101);
	applied(&e, 101, 0);
	assert_int_equal(e.ndone[1], 1);
	assert_int_equal(e.ndone[0], 0);
	fwd_dispatch(e.f);
	assert_int_equal(e.nsent, 3);
	assert_int_equal(e.sent[2], 102);
	applied(&e, 102, -ENOENT);
	assert_int_equal(e.ndone[0], 1);
	assert_int_equal(e.done_err[0], -ENOENT);
	assert_false(fwd_busy(e.f));
	fwd_close(e.f);
}

/* Regression (found by the simulation): a barrier taken after a write must wait for it even when
 * that write is renumbered and moves behind the barrier. */
static void test_barrier_waits_for_renumbered(void **state)
{
	struct env e;

	setup_env(&e, 1);
	put(&e, 0, 1);                                       /* seq 100 */
	assert_int_equal(fwd_sync(e.f, on, &e.ndone[1]), 0); /* barrier */
	put(&e, 2, 1);                                       /* seq 101 */
	applied(&e, 101, 0);                                 /* 100 is renumbered to 102 */
	assert_int_equal(e.ndone[2], 1);
	fwd_settle(e.f);
	assert_int_equal(e.ndone[1], 0);
	applied(&e, 102, 0);
	assert_int_equal(e.ndone[0], 1);
	assert_int_equal(e.ndone[1], 1);
	assert_int_equal(e.done_err[1], 0);
	fwd_close(e.f);
}

/* A refusal is the outcome only from the leader and epoch the write went to first. */
static void test_refusal(void **state)
{
	struct env e;

	setup_env(&e, 1);
	put(&e, 0, 1);
	fwd_on_reply(e.f, 1, 2, 100, -EFBIG);
	assert_int_equal(e.done_err[0], -EFBIG);
	put(&e, 1, 1); /* seq 101 to leader 1, epoch 3 */
	e.view.zk_leader = 3;
	e.view.zk_epoch = 4;
	fwd_dispatch(e.f); /* ... and again to leader 3, epoch 4 */
	assert_int_equal(e.sent_to[e.nsent - 1], 3);
	fwd_on_reply(e.f, 3, 2, 101, -EFBIG);
	assert_int_equal(e.ndone[1], 1);
	assert_int_equal(e.done_err[1], -EIO);
	fwd_close(e.f);
}

/* The leader's side: its own limits decide; a non-leader answers EROFS. */
static void test_leader_side(void **state)
{
	struct env e;
	struct kvfs_op op = {
	    .type = KVFS_OP_PUT, .origin = 3, .seq = 7, .ino = 17, .max_value = 1000};
	uint8_t data[100] = {0}, buf[256];
	size_t len;

	setup_env(&e, 2);
	e.view.elected = true;
	e.view.established = true;
	op.data = data;
	op.data_len = 100;
	len = op_encode(&op, buf);
	fwd_on_forward(e.f, 3, 3, 7, buf, (uint32_t)len);
	assert_int_equal(e.refused_err, -EFBIG);
	op.data_len = 10;
	len = op_encode(&op, buf);
	fwd_on_forward(e.f, 3, 3, 7, buf, (uint32_t)len);
	assert_int_equal(e.proposed, 1);
	e.view.established = false;
	fwd_on_forward(e.f, 3, 3, 7, buf, (uint32_t)len);
	assert_int_equal(e.refused_err, -EROFS);
	fwd_close(e.f);
}

/*
 * Issue 11: what the leader proposes for a peer carries KVFS_OP_RULES2 (new entries never apply
 * under protocol 1's rules), set here if the peer's op lacks it; an op that has it and fits our
 * limits is proposed as sent, byte for byte. Our own writes carry it from node_propose().
 */
static void test_leader_sets_rules2(void **state)
{
	struct env e;
	struct kvfs_op op = {.type = KVFS_OP_MKNOD,
	                     .origin = 3,
	                     .seq = 7,
	                     .parent = 1,
	                     .mode = 010644, /* S_IFIFO | 0644 */
	                     .name = "fifo",
	                     .name_len = 4,
	                     .max_value = 64};
	uint8_t buf[256];
	size_t len;

	setup_env(&e, 2);
	e.view.elected = true;
	e.view.established = true;
	len = op_encode(&op, buf);
	fwd_on_forward(e.f, 3, 3, 7, buf, (uint32_t)len);
	assert_int_equal(e.proposed, 1);
	assert_int_equal(e.last_len, len);
	assert_int_equal(e.last_op.flags, KVFS_OP_RULES2);
	assert_int_equal(e.last_op.max_value, 64);
	assert_int_equal(e.last_op.type, KVFS_OP_MKNOD);
	assert_int_equal(e.last_op.mode, 010644);

	/* With the bit and a smaller max_value: unchanged. */
	op.flags = KVFS_OP_RULES2;
	op.max_value = 10;
	op.seq = 8;
	len = op_encode(&op, buf);
	fwd_on_forward(e.f, 3, 3, 8, buf, (uint32_t)len);
	assert_int_equal(e.proposed, 2);
	assert_int_equal(e.last_len, len);
	assert_memory_equal(e.last_buf, buf, len);

	/* Without it and with too large a max_value: both fixed, the other flags kept. */
	op = (struct kvfs_op){.type = KVFS_OP_FALLOCATE,
	                      .origin = 3,
	                      .seq = 9,
	                      .ino = 17,
	                      .offset = 1,
	                      .length = 2,
	                      .flags = KVFS_FALLOC_KEEP_SIZE,
	                      .max_value = 1000};
	len = op_encode(&op, buf);
	fwd_on_forward(e.f, 3, 3, 9, buf, (uint32_t)len);
	assert_int_equal(e.proposed, 3);
	assert_int_equal(e.last_op.flags, KVFS_OP_RULES2 | KVFS_FALLOC_KEEP_SIZE);
	assert_int_equal(e.last_op.max_value, 64);
	assert_int_equal(e.last_op.length, 2);

	/* The bit does not make an invalid op valid. */
	op = (struct kvfs_op){.type = KVFS_OP_FALLOCATE,
	                      .origin = 3,
	                      .seq = 10,
	                      .ino = 17,
	                      .offset = 1,
	                      .flags = KVFS_OP_RULES2,
	                      .max_value = 64};
	len = op_encode(&op, buf);
	fwd_on_forward(e.f, 3, 3, 10, buf, (uint32_t)len);
	assert_int_equal(e.proposed, 3);
	assert_int_equal(e.refused_err, -EINVAL);
	fwd_close(e.f);
}

/* A snapshot: the write of the remembered seq completes, older ones fail with EIO. */
static void test_after_reset(void **state)
{
	struct env e;
	struct kvfs_session sess = {.origin = 2, .seq = 101, .ino = 20};

	setup_env(&e, 1);
	put(&e, 0, 1);
	put(&e, 1, 1);
	put(&e, 2, 1);
	fwd_after_reset(e.f, &sess);
	assert_int_equal(e.done_err[0], -EIO);
	assert_int_equal(e.done_err[1], 0);
	assert_int_equal(e.ndone[2], 0);
	e.now = 5000;
	fwd_expire(e.f, e.now);
	assert_int_equal(e.done_err[2], -EIO);
	assert_false(fwd_busy(e.f));
	fwd_close(e.f);
}

/* Issue 9: the leader refuses forwarded seqs that could wrap an origin's numbering or throw it
 * far ahead; whatever was applied, our own next seqs go past it. */
static void test_seq_range(void **state)
{
	struct env e;
	struct kvfs_op op = {.type = KVFS_OP_UNLINK,
	                     .origin = 3,
	                     .parent = 1,
	                     .name = "a",
	                     .name_len = 1,
	                     .max_value = 64};
	uint8_t buf[256];
	size_t len;
	const uint64_t seqs[] = {UINT64_MAX, KVFS_SEQ_MAX + 1,
	                         ((uint64_t)1 << 51) + KVFS_SEQ_AHEAD + 1};

	setup_env(&e, 2);
	e.view.elected = true;
	e.view.established = true;
	e.clock_us = (uint64_t)1 << 51;
	e.last_seq[3] = 1000;
	for (size_t i = 0; i < sizeof(seqs) / sizeof(seqs[0]); i++) {
		op.seq = seqs[i];
		len = op_encode(&op, buf);
		e.refused_err = 0;
		fwd_on_forward(e.f, 3, 3, seqs[i], buf, (uint32_t)len);
		assert_int_equal(e.refused_err, -EINVAL);
		assert_int_equal(e.proposed, 0);
	}
	/* From the clock on, or from the origin's last seq on, within the window: proposed. */
	op.seq = ((uint64_t)1 << 51) + 5;
	len = op_encode(&op, buf);
	fwd_on_forward(e.f, 3, 3, op.seq, buf, (uint32_t)len);
	assert_int_equal(e.proposed, 1);
	e.clock_us = 0;
	e.last_seq[3] = (uint64_t)1 << 60;
	op.seq = ((uint64_t)1 << 60) + KVFS_SEQ_AHEAD;
	len = op_encode(&op, buf);
	fwd_on_forward(e.f, 3, 3, op.seq, buf, (uint32_t)len);
	assert_int_equal(e.proposed, 2);
	/* Another node's seq, forwarded by 3: malformed, never proposed. */
	op.origin = 4;
	len = op_encode(&op, buf);
	fwd_on_forward(e.f, 3, 4, op.seq, buf, (uint32_t)len);
	assert_int_equal(e.proposed, 2);
	fwd_close(e.f);

	/* A seq of ours far ahead got applied (a bogus leader): what waits goes past it. */
	setup_env(&e, 1);
	put(&e, 0, 1); /* seq 100 */
	applied(&e, KVFS_SEQ_MAX - 10, 0);
	assert_int_equal(e.ndone[0], 0);
	put(&e, 1, 1);
	e.nsent = 0;
	fwd_peer_down(e.f, 1);
	fwd_dispatch(e.f);
	assert_true(e.nsent >= 1);
	for (int i = 0; i < e.nsent; i++)
		assert_true(e.sent[i] > KVFS_SEQ_MAX - 10);
	fwd_close(e.f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_renumber),
	    cmocka_unit_test(test_barrier_waits_for_renumbered),
	    cmocka_unit_test(test_refusal),
	    cmocka_unit_test(test_leader_side),
	    cmocka_unit_test(test_after_reset),
	    cmocka_unit_test(test_seq_range),
	    cmocka_unit_test(test_leader_sets_rules2),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
