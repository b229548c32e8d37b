/*
 * Membership in the replication core (repl.h, Membership), one replica at a time with a recording
 * io: repl_propose_config()'s rules, a configuration in force on append and reverted when its
 * entry is cut, recovery counting a majority of the configuration of the log it adopts (the
 * 3 -> 4 -> 5 example where a majority of the old configuration misses a committed entry),
 * observers' acknowledgements never committing, and an observer or a non-member handed the lead
 * giving it up. test_repl_sim.c runs random changes through whole clusters.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include "kvfs/config.h"
#include "kvfs/op.h"
#include "kvfs/repl.h"

#include "repl_rec.h"

static struct kvfs_config cfg(const char *text)
{
	struct kvfs_config c;

	assert_int_equal(config_parse(text, &c, NULL, 0), 0);
	return c;
}

static bool is_cfg(const struct kvfs_config *c, const char *text)
{
	struct kvfs_config want = cfg(text);

	return c && config_equal(c, &want);
}

static struct kvfs_repl *make(struct rec *rec, uint32_t id, const char *base, uint64_t promised,
                              const struct kvfs_repl_entry *log, size_t n)
{
	struct kvfs_repl_io io = rec_io(rec);
	struct kvfs_config c = cfg(base);
	struct kvfs_repl *r;

	memset(rec, 0, sizeof(*rec));
	assert_int_equal(repl_init(&r, id, &c, &io, promised, 0, 0, log, n, 0), 0);
	return r;
}

static void epoch_ack(struct kvfs_repl *r, uint32_t from, uint64_t epoch, uint64_t last_epoch,
                      uint64_t last_index, const char *config, uint64_t cfg_index)
{
	struct kvfs_repl_msg m = {.type = KVFS_REPL_EPOCH_ACK,
	                          .epoch = epoch,
	                          .ok = 1,
	                          .last_epoch = last_epoch,
	                          .last_index = last_index,
	                          .cfg_index = cfg_index};
	struct kvfs_config c = cfg(config);

	config_to_bits(&c, &m.cfg);
	repl_receive(r, from, &m);
}

static void append_ack(struct kvfs_repl *r, uint32_t from, uint64_t epoch, uint64_t match)
{
	struct kvfs_repl_msg m = {
	    .type = KVFS_REPL_APPEND_ACK, .epoch = epoch, .ok = 1, .match_index = match};

	repl_receive(r, from, &m);
}

static bool sent_to(const struct rec *rec, int from, uint32_t to, enum kvfs_repl_msg_type t)
{
	for (int i = from; i < rec->nmsg; i++)
		if (rec->to[i] == to && rec->msg[i].type == t)
			return true;
	return false;
}

/* Replica 1 of `base`, an established leader of epoch 2 with 2's help (empty logs). */
static struct kvfs_repl *leader(struct rec *rec, const char *base)
{
	struct kvfs_repl *r = make(rec, 1, base, 1, NULL, 0);

	repl_become_leader(r, 2);
	repl_epoch_persisted(r, 2);
	epoch_ack(r, 2, 2, 0, 0, base, 0);
	assert_int_equal(repl_last_index(r), 1); /* the no-op */
	repl_persisted(r, 2, 1);
	append_ack(r, 2, 2, 1);
	assert_int_equal(repl_role(r), KVFS_REPL_LEADER);
	return r;
}

static void test_propose_config_rules(void **state)
{
	struct rec rec;
	struct kvfs_repl *r = make(&rec, 1, "voters=1,2,3", 1, NULL, 0);
	struct kvfs_config c4 = cfg("voters=1,2,3,4"), c;
	uint8_t op[128];
	uint64_t index = 0, at;
	int n, mark;

	/* Only an established leader. */
	assert_int_equal(repl_propose_config(r, &c4, NULL, &index), -EROFS);
	repl_close(r);
	r = leader(&rec, "voters=1,2,3");
	/* Not one step, or without this leader as a voter: refused. */
	c = cfg("voters=1,2,3,4,5");
	assert_int_equal(repl_propose_config(r, &c, NULL, &index), -EINVAL);
	c = cfg("voters=2,3");
	assert_int_equal(repl_propose_config(r, &c, NULL, &index), -EINVAL);
	c = cfg("voters=2,3 observers=1");
	assert_int_equal(repl_propose_config(r, &c, NULL, &index), -EINVAL);
	c = cfg("voters=1,2,3");
	assert_int_equal(repl_propose_config(r, &c, NULL, &index), -EINVAL); /* no change */
	assert_int_equal(repl_propose_config(r, NULL, NULL, &index), -EINVAL);
	/* A CONFIG entry never enters through repl_propose(). */
	n = config_entry_encode(&c4, "x", op, sizeof(op));
	assert_true(n > 0);
	assert_int_equal(repl_propose(r, op, (uint32_t)n, &index), -EINVAL);
	assert_int_equal(repl_last_index(r), 1);
	/* Add voter 4: in force at once, and 4 is sent the log. */
	mark = rec.nmsg;
	assert_int_equal(repl_propose_config(r, &c4, "req-1", &index), 0);
	assert_int_equal(index, 2);
	assert_true(config_equal(repl_config(r, &at), &c4));
	assert_int_equal(at, 2);
	assert_int_equal(rec.nchanged, 1);
	assert_true(config_equal(&rec.changed, &c4));
	assert_true(repl_config_pending(r));
	assert_true(sent_to(&rec, mark, 4, KVFS_REPL_APPEND));
	assert_true(is_cfg(repl_committed_config(r, &at), "voters=1,2,3"));
	/* One uncommitted change at a time. */
	c = cfg("voters=1,2,3,4 observers=6");
	assert_int_equal(repl_propose_config(r, &c, NULL, &index), -EBUSY);
	/* It commits on a majority of the new configuration: 3 of 4, not 2. */
	repl_persisted(r, 2, 2);
	append_ack(r, 2, 2, 2);
	assert_int_equal(repl_commit_index(r), 1);
	append_ack(r, 4, 2, 1); /* 4 backs off to the start ... */
	append_ack(r, 4, 2, 2);
	assert_int_equal(repl_commit_index(r), 2);
	assert_false(repl_config_pending(r));
	assert_true(config_equal(repl_committed_config(r, &at), &c4));
	/* Now the next step is welcome. */
	assert_int_equal(repl_propose_config(r, &c, NULL, &index), 0);
	repl_close(r);
}

/* Observers are sent the log; their acknowledgements count for no majority. */
static void test_observer_acks_never_commit(void **state)
{
	struct rec rec;
	struct kvfs_repl *r = make(&rec, 1, "voters=1,2,3 observers=6,7", 1, NULL, 0);
	const char *base = "voters=1,2,3 observers=6,7";

	repl_become_leader(r, 2);
	assert_true(sent_to(&rec, 0, 6, KVFS_REPL_NEW_EPOCH));
	repl_epoch_persisted(r, 2);
	/* Two observers promise: no majority of voters (1 of 3). */
	epoch_ack(r, 6, 2, 0, 0, base, 0);
	epoch_ack(r, 7, 2, 0, 0, base, 0);
	assert_int_equal(repl_last_index(r), 0);
	epoch_ack(r, 2, 2, 0, 0, base, 0);
	assert_int_equal(repl_last_index(r), 1);
	repl_persisted(r, 2, 1);
	append_ack(r, 6, 2, 1);
	append_ack(r, 7, 2, 1);
	assert_int_equal(repl_commit_index(r), 0);
	assert_int_equal(repl_role(r), KVFS_REPL_CANDIDATE);
	assert_int_equal(repl_peer_match(r, 6), 1); /* known, for promotion and /.status */
	append_ack(r, 3, 2, 1);
	assert_int_equal(repl_commit_index(r), 1);
	assert_int_equal(repl_role(r), KVFS_REPL_LEADER);
	/* Hearing only observers is hearing no majority: the leader gives up. */
	repl_set_lost_ticks(r, 2);
	repl_tick(r); /* 3 was heard since the last tick */
	assert_int_equal(rec.lost, 0);
	for (int t = 0; t < 2; t++) {
		append_ack(r, 6, 2, 1);
		append_ack(r, 7, 2, 1);
		repl_tick(r);
	}
	assert_int_equal(rec.lost, 1);
	repl_close(r);
}

/* An observer or a non-member that ZooKeeper hands the lead gives it up, promising nothing. */
static void test_observer_never_leads(void **state)
{
	static const uint32_t ids[] = {6, 9};
	struct rec rec;

	for (size_t i = 0; i < 2; i++) {
		struct kvfs_repl *r = make(&rec, ids[i], "voters=1,2,3 observers=6", 1, NULL, 0);

		repl_become_leader(r, 2);
		assert_int_equal(rec.lost, 1);
		assert_int_equal(repl_role(r), KVFS_REPL_FOLLOWER);
		assert_int_equal(repl_epoch(r), 1);
		assert_int_equal(rec.nmsg, 0);
		repl_zk_view(r, true, ids[i], 3);
		assert_int_equal(rec.lost, 2);
		/* It follows as anyone does. */
		repl_zk_view(r, false, 1, 3);
		assert_int_equal(repl_leader(r), 1);
		repl_close(r);
	}
}

/* A follower's configuration is in force on append and reverts when a new leader cuts it. */
static void test_config_reverts_on_cut(void **state)
{
	struct rec rec;
	struct kvfs_repl *r = make(&rec, 3, "voters=1,2,3", 1, NULL, 0);
	struct kvfs_config c4 = cfg("voters=1,2,3,4");
	uint8_t op[128];
	int n = config_entry_encode(&c4, NULL, op, sizeof(op));
	struct kvfs_repl_entry e[2] = {{.epoch = 2, .index = 1}, {.epoch = 2, .index = 2}};
	struct kvfs_repl_msg m = {
	    .type = KVFS_REPL_APPEND, .epoch = 2, .commit = 1, .entries = e, .n_entries = 2};
	uint64_t at;

	e[1].data = op;
	e[1].len = (uint32_t)n;
	repl_become_follower(r, 1, 2);
	repl_epoch_persisted(r, 2);
	repl_receive(r, 1, &m);
	assert_int_equal(repl_last_index(r), 2);
	assert_true(config_equal(repl_config(r, &at), &c4));
	assert_int_equal(at, 2);
	assert_int_equal(rec.nchanged, 1);
	assert_true(is_cfg(repl_config_at(r, 1, &at), "voters=1,2,3"));
	assert_int_equal(at, 0);
	/* Leader 2 of epoch 3 never had it: entry 2 is cut, the bootstrap one is back. */
	repl_become_follower(r, 2, 3);
	repl_epoch_persisted(r, 3);
	e[1] = (struct kvfs_repl_entry){.epoch = 3, .index = 2};
	m = (struct kvfs_repl_msg){.type = KVFS_REPL_APPEND,
	                           .epoch = 3,
	                           .prev_epoch = 2,
	                           .prev_index = 1,
	                           .commit = 1,
	                           .entries = &e[1],
	                           .n_entries = 1};
	repl_receive(r, 2, &m);
	assert_int_equal(rec.ntrunc, 1);
	assert_int_equal(repl_last_index(r), 2);
	assert_true(is_cfg(repl_config(r, &at), "voters=1,2,3"));
	assert_int_equal(at, 0);
	assert_int_equal(rec.nchanged, 2);
	assert_true(is_cfg(&rec.changed, "voters=1,2,3"));
	repl_close(r);
}

/*
 * Recovery counts a majority of the configuration of the log it adopts. History: voters 1..3;
 * C1 = +4 at index 2, committed on {2, 3, 4}; C2 = +5 at index 3, committed on {3, 4, 5}; entry
 * 4 committed on {3, 4, 5}. Candidate 1 lags at index 1 (configuration 1..3). Counting its own
 * configuration, {1, 2} would be a majority, and 2's log (up to 2) would be adopted without the
 * committed entry 4. Counted in C1 (2's log), {1, 2} is 2 of 4: no. Once 3 answers, its log (C2)
 * is the best, and {1, 2, 3} is 3 of 5: that log is adopted, entry 4 with it.
 */
static void test_gather_counts_adopted_config(void **state)
{
	struct rec rec;
	struct kvfs_repl_entry log[1] = {{.epoch = 1, .index = 1}};
	struct kvfs_repl *r = make(&rec, 1, "voters=1,2,3", 1, log, 1);
	int mark;

	repl_become_leader(r, 5);
	repl_epoch_persisted(r, 5);
	assert_false(sent_to(&rec, 0, 4, KVFS_REPL_NEW_EPOCH)); /* 4 is no member we know of */
	mark = rec.nmsg;
	epoch_ack(r, 2, 5, 1, 2, "voters=1,2,3,4", 2);
	/* No majority of C1, so no FETCH and no no-op; 4 is asked now. */
	assert_false(sent_to(&rec, mark, 2, KVFS_REPL_FETCH));
	assert_int_equal(rec.npersist, 0);
	assert_true(sent_to(&rec, mark, 4, KVFS_REPL_NEW_EPOCH));
	mark = rec.nmsg;
	epoch_ack(r, 3, 5, 1, 4, "voters=1,2,3,4,5", 3);
	assert_true(sent_to(&rec, mark, 5, KVFS_REPL_NEW_EPOCH));
	assert_true(sent_to(&rec, mark, 3, KVFS_REPL_FETCH)); /* it adopts 3's log */
	assert_false(sent_to(&rec, mark, 2, KVFS_REPL_FETCH));
	repl_close(r);

	/* The same answers in the other order: 3's alone (with 1) is no majority of C2. */
	r = make(&rec, 1, "voters=1,2,3", 1, log, 1);
	repl_become_leader(r, 5);
	repl_epoch_persisted(r, 5);
	epoch_ack(r, 3, 5, 1, 4, "voters=1,2,3,4,5", 3);
	assert_false(sent_to(&rec, 0, 3, KVFS_REPL_FETCH));
	epoch_ack(r, 2, 5, 1, 2, "voters=1,2,3,4", 2);
	assert_true(sent_to(&rec, 0, 3, KVFS_REPL_FETCH));
	repl_close(r);
}

/* A candidate whose adopted log no longer has it vote cannot lead: it gives up. */
static void test_gather_adopted_config_without_us(void **state)
{
	struct rec rec;
	struct kvfs_repl *r = make(&rec, 1, "voters=1,2,3", 1, NULL, 0);

	repl_become_leader(r, 2);
	repl_epoch_persisted(r, 2);
	epoch_ack(r, 2, 2, 1, 3, "voters=2,3 observers=1", 3);
	assert_int_equal(rec.lost, 0); /* 1 is no vote there: 2 alone is no majority of {2, 3} */
	epoch_ack(r, 3, 2, 1, 3, "voters=2,3 observers=1", 3);
	assert_int_equal(rec.lost, 1);
	assert_int_equal(repl_role(r), KVFS_REPL_FOLLOWER);
	repl_close(r);
}

/* Compaction folds the configurations behind the base; a snapshot brings its own. */
static void test_config_compact_and_snapshot(void **state)
{
	struct rec rec;
	struct kvfs_config c4 = cfg("voters=1,2,3,4"), c5 = cfg("voters=1,2,3,4,5");
	uint8_t op[128];
	int n = config_entry_encode(&c4, NULL, op, sizeof(op));
	struct kvfs_repl_entry log[3] = {{.epoch = 1, .index = 1},
	                                 {.epoch = 1, .index = 2, .len = (uint32_t)n, .data = op},
	                                 {.epoch = 1, .index = 3}};
	struct kvfs_repl *r;
	struct kvfs_repl_io io = {.arg = &rec,
	                          .send = rec_send,
	                          .persist = rec_persist,
	                          .truncate = rec_truncate,
	                          .persist_epoch = rec_persist_epoch,
	                          .apply = rec_apply,
	                          .leadership_lost = rec_lost};
	struct kvfs_config boot = cfg("voters=1,2,3");
	uint64_t at;

	memset(&rec, 0, sizeof(rec));
	/* The initial log's configurations are in force at start. */
	assert_int_equal(repl_init(&r, 2, &boot, &io, 1, 0, 0, log, 3, 3), 0);
	assert_true(config_equal(repl_config(r, &at), &c4));
	assert_int_equal(at, 2);
	repl_compact(r, 3);
	assert_int_equal(repl_base_index(r), 3);
	assert_true(config_equal(repl_config(r, &at), &c4));
	assert_int_equal(at, 2);
	assert_null(repl_config_at(r, 2, NULL));
	/* A snapshot at 10 carries C2, set at 7. */
	repl_become_follower(r, 1, 2);
	repl_epoch_persisted(r, 2);
	assert_int_equal(repl_snapshot_installed(r, 10, 2, &c5, 11), -EINVAL); /* set after it */
	assert_int_equal(repl_snapshot_installed(r, 10, 2, &c5, 7), 0);
	assert_true(config_equal(repl_config(r, &at), &c5));
	assert_int_equal(at, 7);
	repl_close(r);
}

/* One authenticated liar cannot finish recovery alone by naming a configuration in which it is
 * the only voter, set by an entry this candidate knows is committed and holds otherwise. */
static void test_gather_refuses_implausible_config(void **state)
{
	struct rec rec;
	struct kvfs_repl_entry log[2] = {{.epoch = 1, .index = 1}, {.epoch = 1, .index = 2}};
	struct kvfs_repl *r;

	struct kvfs_repl_io io = rec_io(&rec);
	struct kvfs_config c = cfg("voters=1,2,3");

	memset(&rec, 0, sizeof(rec));
	assert_int_equal(repl_init(&r, 1, &c, &io, 1, 0, 0, log, 2, 2), 0);
	repl_become_leader(r, 2);
	repl_epoch_persisted(r, 2);
	/* 2 claims entry 2 (committed, an ordinary entry here) set "voters=2", and a longer log. */
	epoch_ack(r, 2, 2, 1, 9, "voters=2", 2);
	assert_false(sent_to(&rec, 0, 2, KVFS_REPL_FETCH));
	assert_int_equal(rec.npersist, 0);
	/* An honest answer with the configuration we know completes the majority. */
	epoch_ack(r, 3, 2, 1, 2, "voters=1,2,3", 0);
	assert_true(rec.npersist > 0); /* its own log adopted: the no-op is appended */
	assert_false(sent_to(&rec, 0, 2, KVFS_REPL_FETCH));
	repl_close(r);
}

/* A candidate whose own configuration is stale and that hears only a majority of it, not of the
 * configuration of the best log answered, gives the lead up after the lost ticks. */
static void test_gather_stale_config_gives_up(void **state)
{
	struct rec rec;
	struct kvfs_repl *r = make(&rec, 3, "voters=1,2,3", 1, NULL, 0);

	repl_become_leader(r, 2);
	repl_epoch_persisted(r, 2);
	/* 2 holds a later configuration without 3: {1, 2}. 1 is away. */
	epoch_ack(r, 2, 2, 1, 4, "voters=1,2", 4);
	assert_int_equal(rec.lost, 0);
	for (int i = 0; i < 200 && rec.lost == 0; i++) {
		epoch_ack(r, 2, 2, 1, 4, "voters=1,2", 4); /* 2 keeps answering: heard */
		repl_tick(r);
	}
	assert_int_equal(rec.lost, 1);
	repl_close(r);
}

/* After shrinking to itself, a leader may not drop a failed write that it appended while
 * another member was still in the configuration: that member may hold it. */
static void test_persist_failed_after_shrink(void **state)
{
	struct rec rec;
	struct kvfs_repl *r = leader(&rec, "voters=1,2");
	struct kvfs_config solo = cfg("voters=1");
	uint8_t op[1] = {0xEE};
	uint64_t ie, ic;

	assert_int_equal(repl_propose(r, op, 1, &ie), 0); /* sent to 2 under {1, 2} */
	assert_int_equal(repl_propose_config(r, &solo, NULL, &ic), 0);
	assert_true(ic > ie);
	assert_true(is_cfg(repl_config(r, NULL), "voters=1"));
	assert_int_equal(repl_persist_failed(r, ie), -EINVAL);
	assert_int_equal(repl_persist_failed(r, ic), -EINVAL); /* it set the configuration */
	repl_close(r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_propose_config_rules),
	    cmocka_unit_test(test_observer_acks_never_commit),
	    cmocka_unit_test(test_observer_never_leads),
	    cmocka_unit_test(test_config_reverts_on_cut),
	    cmocka_unit_test(test_gather_counts_adopted_config),
	    cmocka_unit_test(test_gather_adopted_config_without_us),
	    cmocka_unit_test(test_gather_refuses_implausible_config),
	    cmocka_unit_test(test_gather_stale_config_gives_up),
	    cmocka_unit_test(test_persist_failed_after_shrink),
	    cmocka_unit_test(test_config_compact_and_snapshot),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
