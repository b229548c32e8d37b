/*
 * Targeted cases of the replication core (repl.c), one replica at a time with a recording io:
 * fencing of old epochs, a follower dropping a conflicting suffix, acknowledgement only once
 * durable, commit only by counting entries of the current epoch, the no-op before proposals,
 * fetching from a more up-to-date follower, and a leader giving up without a majority. The
 * randomised whole-cluster checks live in test_repl_sim.c.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "kvfs/config.h"
#include "kvfs/repl.h"

#include "repl_rec.h"

/* The bootstrap configuration of a cluster of n (valid until the next call). */
static const struct kvfs_config *boot(uint32_t n)
{
	static struct kvfs_config c;

	assert_int_equal(config_bootstrap(&c, n), 0);
	return &c;
}

/* An EPOCH_ACK's configuration: that of a cluster of n. */
static void boot_bits(struct kvfs_repl_msg *m, uint32_t n)
{
	config_to_bits(boot(n), &m->cfg);
}

static struct kvfs_repl *make(struct rec *rec, uint32_t id, uint32_t size, uint64_t promised,
                              const uint64_t *epochs, size_t n)
{
	struct kvfs_repl_io io = {
	    .arg = rec,
	    .send = rec_send,
	    .persist = rec_persist,
	    .truncate = rec_truncate,
	    .persist_epoch = rec_persist_epoch,
	    .apply = rec_apply,
	    .leadership_lost = rec_lost,
	};
	struct kvfs_repl_entry log[16];
	struct kvfs_repl *r;

	memset(rec, 0, sizeof(*rec));
	assert_true(n <= 16);
	for (size_t i = 0; i < n; i++)
		log[i] = (struct kvfs_repl_entry){.epoch = epochs[i], .index = i + 1};
	assert_int_equal(repl_init(&r, id, boot(size), &io, promised, 0, 0, log, n, 0), 0);
	return r;
}

static const struct kvfs_repl_msg *last_msg(struct rec *rec)
{
	assert_true(rec->nmsg > 0);
	return &rec->msg[rec->nmsg - 1];
}

static void test_init_rejects(void **state)
{
	struct rec rec;
	struct kvfs_repl_io io = {.arg = &rec,
	                          .send = rec_send,
	                          .persist = rec_persist,
	                          .truncate = rec_truncate,
	                          .persist_epoch = rec_persist_epoch,
	                          .apply = rec_apply,
	                          .leadership_lost = rec_lost};
	struct kvfs_repl_entry bad[2] = {{.epoch = 2, .index = 1}, {.epoch = 1, .index = 2}};
	struct kvfs_repl *r;

	struct kvfs_config none = {0};

	assert_int_equal(repl_init(&r, 0, boot(3), &io, 0, 0, 0, NULL, 0, 0), -EINVAL);
	assert_int_equal(repl_init(&r, 256, boot(3), &io, 0, 0, 0, NULL, 0, 0), -EINVAL);
	assert_int_equal(repl_init(&r, 1, NULL, &io, 0, 0, 0, NULL, 0, 0), -EINVAL);
	assert_int_equal(repl_init(&r, 1, &none, &io, 0, 0, 0, NULL, 0, 0), -EINVAL); /* no voter */
	assert_int_equal(repl_init(&r, 1, boot(3), &io, 0, 0, 0, NULL, 0, 1), -EINVAL);
	assert_int_equal(repl_init(&r, 1, boot(3), &io, 2, 0, 0, bad, 2, 0),
	                 -EINVAL); /* epochs go down */
	bad[1].epoch = 2;
	bad[1].index = 3;
	assert_int_equal(repl_init(&r, 1, boot(3), &io, 2, 0, 0, bad, 2, 0), -EINVAL); /* a gap */
	/* A node that is no member yet may start (it waits to be added). */
	assert_int_equal(repl_init(&r, 4, boot(3), &io, 0, 0, 0, NULL, 0, 0), 0);
	repl_close(r);
}

static void test_fencing(void **state)
{
	static const uint64_t epochs[] = {1, 1};
	struct rec rec;
	struct kvfs_repl *r = make(&rec, 2, 3, 5, epochs, 2);
	struct kvfs_repl_msg m = {
	    .type = KVFS_REPL_APPEND, .epoch = 3, .prev_epoch = 1, .prev_index = 2, .commit = 2};

	/* An APPEND of an older epoch is refused with ours, and changes nothing. */
	repl_receive(r, 1, &m);
	assert_int_equal(last_msg(&rec)->type, KVFS_REPL_APPEND_ACK);
	assert_int_equal(last_msg(&rec)->ok, 0);
	assert_int_equal(last_msg(&rec)->epoch, 5);
	assert_int_equal(repl_commit_index(r), 0);
	assert_int_equal(rec.napplied, 0);
	/* So is a NEW_EPOCH, without any promise. */
	m = (struct kvfs_repl_msg){.type = KVFS_REPL_NEW_EPOCH, .epoch = 4};
	repl_receive(r, 3, &m);
	assert_int_equal(last_msg(&rec)->type, KVFS_REPL_EPOCH_ACK);
	assert_int_equal(last_msg(&rec)->ok, 0);
	assert_int_equal(last_msg(&rec)->epoch, 5);
	assert_int_equal(rec.nepoch, 0);
	/* And ZooKeeper news of an older epoch. */
	repl_become_follower(r, 1, 4);
	assert_int_equal(repl_epoch(r), 5);
	/* Leading an epoch already promised is impossible: give it up. */
	repl_become_leader(r, 5);
	assert_int_equal(rec.lost, 1);
	assert_int_equal(repl_role(r), KVFS_REPL_FOLLOWER);
	repl_close(r);
}

static void test_deposed_leader_steps_down(void **state)
{
	struct rec rec;
	struct kvfs_repl *r = make(&rec, 1, 3, 0, NULL, 0);
	struct kvfs_repl_msg m = {.type = KVFS_REPL_APPEND_ACK, .epoch = 7, .ok = 0};

	repl_become_leader(r, 6);
	assert_int_equal(repl_role(r), KVFS_REPL_CANDIDATE);
	assert_int_equal(rec.nmsg, 2); /* NEW_EPOCH to 2 and 3 */
	assert_int_equal(rec.msg[0].type, KVFS_REPL_NEW_EPOCH);
	/* A peer's word that epoch 7 exists is not ZooKeeper's: nothing promised ... */
	repl_receive(r, 2, &m);
	assert_int_equal(repl_role(r), KVFS_REPL_CANDIDATE);
	assert_int_equal(repl_epoch(r), 6);
	assert_int_equal(rec.epoch, 6);
	/* ... but it is no answer either: without a majority the candidate gives up. */
	for (int i = 0; i < KVFS_REPL_LOST_TICKS; i++) {
		repl_receive(r, 2, &m);
		repl_tick(r);
	}
	assert_int_equal(repl_role(r), KVFS_REPL_FOLLOWER);
	assert_int_equal(rec.lost, 1);
	/* ZooKeeper names the next leader: this replica follows and promises its epoch. */
	repl_become_follower(r, 3, 7);
	assert_int_equal(repl_epoch(r), 7);
	assert_int_equal(repl_leader(r), 3);
	assert_int_equal(rec.epoch, 7);
	assert_int_equal(repl_propose(r, (const uint8_t *)"x", 1, NULL), -EROFS);
	repl_close(r);
}

static void test_follower_truncates_conflict(void **state)
{
	static const uint64_t epochs[] = {1, 1, 1, 1};
	struct kvfs_repl_entry in[2] = {{.epoch = 3, .index = 3}, {.epoch = 3, .index = 4}};
	struct rec rec;
	struct kvfs_repl *r = make(&rec, 2, 3, 1, epochs, 4);
	struct kvfs_repl_msg m = {.type = KVFS_REPL_APPEND,
	                          .epoch = 3,
	                          .prev_epoch = 1,
	                          .prev_index = 2,
	                          .commit = 4,
	                          .entries = in,
	                          .n_entries = 2};
	struct kvfs_repl_entry e;

	repl_become_follower(r, 1, 3); /* ZooKeeper: 1 leads epoch 3 */
	repl_receive(r, 1, &m);
	/* Entries 3 and 4 of epoch 1 conflict: dropped, then the leader's appended. */
	assert_int_equal(rec.ntrunc, 1);
	assert_int_equal(rec.trunc_after, 2);
	assert_int_equal(rec.npersist, 1);
	assert_int_equal(rec.persist_first, 3);
	assert_int_equal(rec.persist_last, 4);
	assert_int_equal(repl_entry(r, 4, &e), 0);
	assert_int_equal(e.epoch, 3);
	/* Committed as far as it matches the leader; applied in order. */
	assert_int_equal(repl_commit_index(r), 4);
	assert_int_equal(rec.napplied, 4);
	/* No acknowledgement before the promise and the entries are durable. */
	assert_int_equal(rec.nmsg, 0);
	assert_int_equal(rec.epoch, 3);
	repl_epoch_persisted(r, 3);
	assert_int_equal(rec.nmsg, 1);
	assert_int_equal(last_msg(&rec)->ok, 1);
	assert_int_equal(last_msg(&rec)->match_index, 2); /* 3 and 4 are not on disk yet */
	repl_persisted(r, 3, 4);
	assert_int_equal(rec.nmsg, 2);
	assert_int_equal(last_msg(&rec)->match_index, 4);
	/* A duplicate of the same APPEND changes nothing but is answered. */
	repl_receive(r, 1, &m);
	assert_int_equal(rec.ntrunc, 1);
	assert_int_equal(rec.npersist, 1);
	assert_int_equal(last_msg(&rec)->match_index, 4);
	repl_close(r);
}

static void test_follower_rejects_gap(void **state)
{
	static const uint64_t epochs[] = {1, 2, 2};
	struct rec rec;
	struct kvfs_repl *r = make(&rec, 2, 3, 2, epochs, 3);
	struct kvfs_repl_msg m = {
	    .type = KVFS_REPL_APPEND, .epoch = 4, .prev_epoch = 3, .prev_index = 3};

	/* prev (3, 3) does not match our (2, 3): back off over all of epoch 2. */
	repl_become_follower(r, 1, 4);
	repl_receive(r, 1, &m);
	assert_int_equal(last_msg(&rec)->ok, 0);
	assert_int_equal(last_msg(&rec)->epoch, 4);
	assert_int_equal(last_msg(&rec)->hint, 1);
	/* prev beyond our log: hint is our last index. */
	m.prev_index = 9;
	repl_receive(r, 1, &m);
	assert_int_equal(last_msg(&rec)->hint, 3);
	assert_int_equal(rec.ntrunc, 0);
	repl_close(r);
}

/* Makes replica 1 of 3 the candidate of epoch 2 with majority acks from replica 2. */
static struct kvfs_repl *candidate(struct rec *rec, const uint64_t *epochs, size_t n,
                                   uint64_t peer_epoch, uint64_t peer_index)
{
	struct kvfs_repl *r = make(rec, 1, 3, 1, epochs, n);
	struct kvfs_repl_msg ack = {.type = KVFS_REPL_EPOCH_ACK,
	                            .epoch = 2,
	                            .ok = 1,
	                            .last_epoch = peer_epoch,
	                            .last_index = peer_index};

	boot_bits(&ack, 3);
	repl_become_leader(r, 2);
	repl_receive(r, 2, &ack);
	assert_int_equal(repl_last_index(r), n); /* nothing before our own promise is durable */
	repl_epoch_persisted(r, 2);
	return r;
}

static void test_commit_current_epoch_only(void **state)
{
	static const uint64_t epochs[] = {1, 1};
	struct rec rec;
	struct kvfs_repl *r = candidate(&rec, epochs, 2, 1, 1);
	struct kvfs_repl_msg ack = {.type = KVFS_REPL_APPEND_ACK, .epoch = 2, .ok = 1};

	/* Our log is the best: the no-op of epoch 2 goes at 3. */
	assert_int_equal(repl_last_index(r), 3);
	assert_int_equal(rec.persist_epoch, 2);
	assert_int_equal(repl_role(r), KVFS_REPL_CANDIDATE);
	assert_int_equal(repl_propose(r, (const uint8_t *)"x", 1, NULL), -EROFS);
	/* A majority holds entry 2 (epoch 1): not committed by counting. */
	ack.match_index = 2;
	repl_receive(r, 2, &ack);
	assert_int_equal(repl_commit_index(r), 0);
	assert_int_equal(rec.napplied, 0);
	/* The no-op durable here but not on a majority: still nothing. */
	repl_persisted(r, 2, 3);
	assert_int_equal(repl_commit_index(r), 0);
	/* Follower 2 has the no-op: it commits, and everything before it. */
	ack.match_index = 3;
	repl_receive(r, 2, &ack);
	assert_int_equal(repl_commit_index(r), 3);
	assert_int_equal(rec.napplied, 3);
	assert_int_equal(rec.applied[2], 3);
	assert_int_equal(repl_role(r), KVFS_REPL_LEADER);
	assert_int_equal(repl_peer_match(r, 2), 3);
	assert_int_equal(repl_peer_match(r, 1), 3);
	repl_close(r);
}

static void test_noop_before_proposals(void **state)
{
	struct rec rec;
	struct kvfs_repl *r = candidate(&rec, NULL, 0, 0, 0);
	struct kvfs_repl_msg ack = {
	    .type = KVFS_REPL_APPEND_ACK, .epoch = 2, .ok = 1, .match_index = 1};
	uint64_t index = 0;

	assert_int_equal(repl_last_index(r), 1); /* the no-op */
	assert_int_equal(repl_propose(r, (const uint8_t *)"x", 1, &index), -EROFS);
	repl_persisted(r, 2, 1);
	repl_receive(r, 3, &ack);
	assert_int_equal(repl_role(r), KVFS_REPL_LEADER);
	assert_int_equal(repl_propose(r, (const uint8_t *)"x", 1, &index), 0);
	assert_int_equal(index, 2);
	assert_int_equal(last_msg(&rec)->type, KVFS_REPL_APPEND);
	assert_int_equal(last_msg(&rec)->n_entries, 1);
	assert_int_equal(last_msg(&rec)->commit, 1);
	repl_close(r);
}

/* A follower that lost what it acknowledged (a replaced disk; a crash before what it said it had
 * was on its disk) is sent its entries again from what it holds, not refused forever. */
static void test_follower_lost_its_match(void **state)
{
	static const uint64_t epochs[] = {1, 1, 1, 1};
	struct rec rec;
	struct kvfs_repl *r = candidate(&rec, epochs, 4, 1, 4);
	struct kvfs_repl_msg ack = {
	    .type = KVFS_REPL_APPEND_ACK, .epoch = 2, .ok = 1, .match_index = 5};

	repl_persisted(r, 2, 5);
	repl_receive(r, 2, &ack); /* the no-op at 5 commits */
	assert_int_equal(repl_role(r), KVFS_REPL_LEADER);
	assert_int_equal(repl_peer_match(r, 2), 5);
	/* Replica 2 comes back with nothing after index 2. */
	ack = (struct kvfs_repl_msg){.type = KVFS_REPL_APPEND_ACK, .epoch = 2, .ok = 0, .hint = 2};
	repl_receive(r, 2, &ack);
	assert_int_equal(repl_peer_match(r, 2), 2);
	assert_int_equal(last_msg(&rec)->type, KVFS_REPL_APPEND);
	assert_int_equal(rec.to[rec.nmsg - 1], 2);
	assert_int_equal(last_msg(&rec)->prev_index, 2);
	assert_int_equal(repl_commit_index(r), 5); /* a commit never goes back */
	repl_close(r);
}

static void test_fetch_from_best(void **state)
{
	static const uint64_t epochs[] = {1};
	struct kvfs_repl_entry more[2] = {{.epoch = 1, .index = 2}, {.epoch = 1, .index = 3}};
	struct rec rec;
	struct kvfs_repl *r = candidate(&rec, epochs, 1, 1, 3);
	struct kvfs_repl_msg reply = {.type = KVFS_REPL_FETCH_REPLY,
	                              .epoch = 2,
	                              .ok = 1,
	                              .from_index = 1,
	                              .entries = more,
	                              .n_entries = 0};

	/* Replica 2 has (1, 3), more than our (1, 1): we fetch before anything else. */
	assert_int_equal(last_msg(&rec)->type, KVFS_REPL_FETCH);
	assert_int_equal(rec.to[rec.nmsg - 1], 2);
	assert_int_equal(last_msg(&rec)->from_index, 1);
	assert_int_equal(repl_last_index(r), 1);
	/* A reply from elsewhere is ignored. */
	reply.entries = more;
	reply.from_index = 2;
	reply.n_entries = 2;
	repl_receive(r, 3, &reply);
	assert_int_equal(repl_last_index(r), 1);
	/* A stale one (wrong from_index) too. */
	repl_receive(r, 2, &reply);
	assert_int_equal(repl_last_index(r), 1);
	/* We ask from 1; the real answer carries 1..3. */
	{
		struct kvfs_repl_entry all[3] = {
		    {.epoch = 1, .index = 1}, {.epoch = 1, .index = 2}, {.epoch = 1, .index = 3}};

		reply.from_index = 1;
		reply.entries = all;
		reply.n_entries = 3;
		repl_receive(r, 2, &reply);
	}
	/* Adopted: 1..3, then the no-op at 4, sent to the followers from 4. */
	assert_int_equal(repl_last_index(r), 4);
	assert_int_equal(rec.persist_first, 4);
	assert_int_equal(last_msg(&rec)->type, KVFS_REPL_APPEND);
	assert_int_equal(last_msg(&rec)->prev_index, 3);
	repl_close(r);
}

static void test_leadership_lost(void **state)
{
	struct rec rec;
	struct kvfs_repl *r = candidate(&rec, NULL, 0, 0, 0);
	struct kvfs_repl_msg ack = {.type = KVFS_REPL_APPEND_ACK, .epoch = 2, .ok = 1};

	/* Hearing from one follower each tick keeps a majority of 3. */
	for (int i = 0; i < 5; i++) {
		repl_receive(r, 2, &ack);
		repl_tick(r);
	}
	assert_int_equal(rec.lost, 0);
	/* Silence for KVFS_REPL_LOST_TICKS ticks: give up. */
	for (int i = 0; i < KVFS_REPL_LOST_TICKS; i++)
		repl_tick(r);
	assert_int_equal(rec.lost, 1);
	assert_int_equal(repl_role(r), KVFS_REPL_FOLLOWER);
	repl_tick(r);
	assert_int_equal(rec.lost, 1);
	repl_close(r);
}

static void test_cluster_of_one(void **state)
{
	struct rec rec;
	struct kvfs_repl *r = make(&rec, 1, 1, 0, NULL, 0);
	uint64_t index;

	repl_become_leader(r, 1);
	repl_epoch_persisted(r, 1);
	assert_int_equal(repl_last_index(r), 1);
	repl_persisted(r, 1, 1);
	assert_int_equal(repl_role(r), KVFS_REPL_LEADER);
	assert_int_equal(repl_propose(r, (const uint8_t *)"abc", 3, &index), 0);
	repl_persisted(r, 1, 2);
	assert_int_equal(repl_commit_index(r), 2);
	assert_int_equal(rec.napplied, 2);
	repl_close(r);
}

/* A cluster of one on a full disk: a failed persist drops what it did not write, the no-op
 * included, which the next tick appends again; nothing dropped ever applies. */
static void test_persist_failed(void **state)
{
	struct rec rec;
	struct kvfs_repl *r = make(&rec, 1, 1, 0, NULL, 0);
	uint64_t index;

	repl_become_leader(r, 1);
	repl_epoch_persisted(r, 1);
	assert_int_equal(repl_last_index(r), 1); /* the no-op, not yet durable */
	assert_int_equal(repl_persist_failed(r, 1), 0);
	assert_int_equal(repl_last_index(r), 0);
	repl_persisted(r, 1, 1); /* a late completion of what failed changes nothing */
	assert_int_equal(repl_role(r), KVFS_REPL_CANDIDATE);
	assert_int_equal(repl_commit_index(r), 0);
	repl_tick(r);
	assert_int_equal(repl_last_index(r), 1);
	repl_persisted(r, 1, 1);
	assert_int_equal(repl_role(r), KVFS_REPL_LEADER);

	assert_int_equal(repl_propose(r, (const uint8_t *)"abc", 3, &index), 0);
	assert_int_equal(repl_propose(r, (const uint8_t *)"def", 3, &index), 0);
	assert_int_equal(repl_persist_failed(r, 2), 0);
	assert_int_equal(repl_last_index(r), 1);
	assert_int_equal(repl_persist_failed(r, 1), -EINVAL); /* durable: not droppable */
	assert_int_equal(repl_propose(r, (const uint8_t *)"ghi", 3, &index), 0);
	assert_int_equal(index, 2);
	repl_persisted(r, 1, 2);
	assert_int_equal(repl_commit_index(r), 2);
	assert_int_equal(rec.napplied, 2);
	repl_close(r);

	/* Only a cluster of one may drop entries: a member's peers may hold them. */
	r = make(&rec, 1, 3, 0, NULL, 0);
	repl_become_leader(r, 1);
	assert_int_equal(repl_persist_failed(r, 1), -EINVAL);
	repl_close(r);
}

/* Issue 9: a peer's NEW_EPOCH(2^62) (or any message of an epoch ZooKeeper has not shown) never
 * becomes a promise; a genuine new leader's NEW_EPOCH that beats ZooKeeper's view is held and
 * answered when the view names it. */
static void test_bogus_epoch_never_promised(void **state)
{
	static const uint64_t epochs[] = {1, 1};
	const uint64_t huge = (uint64_t)1 << 62;
	struct rec rec;
	struct kvfs_repl *r = make(&rec, 2, 3, 1, epochs, 2);
	struct kvfs_repl_msg m = {.type = KVFS_REPL_NEW_EPOCH, .epoch = huge};
	struct kvfs_repl_entry in = {
	    .epoch = huge, .index = 3, .len = 4, .data = (const uint8_t *)"evil"};

	repl_become_follower(r, 1, 2); /* ZooKeeper: 1 leads epoch 2 */
	repl_epoch_persisted(r, 2);
	assert_int_equal(rec.nepoch, 1);
	repl_receive(r, 3, &m);
	m = (struct kvfs_repl_msg){.type = KVFS_REPL_APPEND,
	                           .epoch = huge,
	                           .prev_epoch = 1,
	                           .prev_index = 2,
	                           .commit = 3,
	                           .entries = &in,
	                           .n_entries = 1};
	repl_receive(r, 3, &m);
	m = (struct kvfs_repl_msg){.type = KVFS_REPL_FETCH, .epoch = huge};
	repl_receive(r, 3, &m);
	m = (struct kvfs_repl_msg){.type = KVFS_REPL_APPEND_ACK, .epoch = huge, .hint = 9};
	repl_receive(r, 3, &m);
	m = (struct kvfs_repl_msg){.type = KVFS_REPL_EPOCH_ACK, .epoch = huge};
	repl_receive(r, 3, &m);
	assert_int_equal(rec.nepoch, 1);
	assert_int_equal(repl_epoch(r), 2);
	assert_int_equal(repl_promised_epoch(r), 2);
	assert_int_equal(repl_leader(r), 1);
	assert_int_equal(rec.npersist, 0);
	assert_int_equal(rec.napplied, 0);
	assert_int_equal(rec.nmsg, 0);

	/* Node 3 is elected at epoch 3; its NEW_EPOCH arrives before our /leader watch fires. */
	m = (struct kvfs_repl_msg){.type = KVFS_REPL_NEW_EPOCH, .epoch = 3};
	repl_receive(r, 3, &m);
	assert_int_equal(rec.nepoch, 1);
	assert_int_equal(rec.nmsg, 0);
	repl_zk_view(r, false, 3, 3);
	assert_int_equal(repl_epoch(r), 3);
	assert_int_equal(rec.epoch, 3);
	assert_int_equal(rec.nmsg, 0); /* not before the promise is durable */
	repl_epoch_persisted(r, 3);
	assert_int_equal(rec.nmsg, 1);
	assert_int_equal(last_msg(&rec)->type, KVFS_REPL_EPOCH_ACK);
	assert_int_equal(last_msg(&rec)->ok, 1);
	assert_int_equal(last_msg(&rec)->last_index, 2);
	assert_int_equal(rec.to[0], 3);
	/* Node 1 is not the leader of epoch 3: its NEW_EPOCH and APPEND are not answered. */
	m = (struct kvfs_repl_msg){.type = KVFS_REPL_NEW_EPOCH, .epoch = 3};
	repl_receive(r, 1, &m);
	assert_int_equal(rec.nmsg, 1);
	repl_close(r);

	/* A restart with a promise but no view yet: NEW_EPOCH of that epoch waits for the view. */
	r = make(&rec, 2, 3, 4, epochs, 2);
	m = (struct kvfs_repl_msg){.type = KVFS_REPL_NEW_EPOCH, .epoch = 4};
	repl_receive(r, 1, &m);
	assert_int_equal(rec.nmsg, 0);
	repl_become_follower(r, 1, 4);
	assert_int_equal(rec.nmsg, 1);
	assert_int_equal(last_msg(&rec)->type, KVFS_REPL_EPOCH_ACK);
	assert_int_equal(last_msg(&rec)->ok, 1);
	repl_close(r);
}

/* Issue 9: ZooKeeper hands this node an epoch it has promised to another: it gives the lead up
 * (the binding resigns and stands again) rather than neither leading nor resigning. */
static void test_zk_hands_promised_epoch(void **state)
{
	struct rec rec;
	struct kvfs_repl *r = make(&rec, 2, 3, 0, NULL, 0);

	repl_zk_view(r, false, 1, 5);
	assert_int_equal(repl_epoch(r), 5);
	repl_zk_view(r, true, 2, 5);
	assert_int_equal(rec.lost, 1);
	assert_int_equal(repl_role(r), KVFS_REPL_FOLLOWER);
	assert_int_equal(repl_leader(r), 1);
	/* An older epoch too. */
	repl_zk_view(r, true, 2, 4);
	assert_int_equal(rec.lost, 2);
	/* Standing again, it gets a newer one and leads it. */
	repl_zk_view(r, true, 2, 6);
	assert_int_equal(rec.lost, 2);
	assert_int_equal(repl_role(r), KVFS_REPL_CANDIDATE);
	assert_int_equal(repl_epoch(r), 6);
	/* While it leads that epoch, the same view is no news. */
	repl_zk_view(r, true, 2, 6);
	assert_int_equal(rec.lost, 2);
	assert_int_equal(repl_role(r), KVFS_REPL_CANDIDATE);
	repl_close(r);
}

/* Issue 9: a follower takes APPENDs only from its leader and commits only what the APPEND proved
 * to match, never on the sender's word beyond it. */
static void test_follower_commit_bounded(void **state)
{
	static const uint64_t epochs[] = {1, 1, 1};
	struct rec rec;
	struct kvfs_repl *r = make(&rec, 2, 3, 1, epochs, 3);
	struct kvfs_repl_entry in = {
	    .epoch = 2, .index = 4, .len = 4, .data = (const uint8_t *)"evil"};
	struct kvfs_repl_msg m = {.type = KVFS_REPL_APPEND,
	                          .epoch = 2,
	                          .prev_epoch = 1,
	                          .prev_index = 3,
	                          .commit = 1000,
	                          .entries = &in,
	                          .n_entries = 1};

	repl_become_follower(r, 1, 2);
	repl_epoch_persisted(r, 2);
	/* Node 3, not the leader of epoch 2, injects an entry and a commit index. */
	repl_receive(r, 3, &m);
	assert_int_equal(rec.npersist, 0);
	assert_int_equal(repl_last_index(r), 3);
	assert_int_equal(repl_commit_index(r), 0);
	assert_int_equal(rec.napplied, 0);
	assert_int_equal(repl_leader(r), 1);
	/* The leader's heartbeat proves entries up to 2 only: commit 2, not 1000 nor 3. */
	m = (struct kvfs_repl_msg){
	    .type = KVFS_REPL_APPEND, .epoch = 2, .prev_epoch = 1, .prev_index = 2, .commit = 1000};
	repl_receive(r, 1, &m);
	assert_int_equal(repl_commit_index(r), 2);
	assert_int_equal(rec.napplied, 2);
	/* The leader's entry 4: commit up to it, and applied. */
	m.prev_index = 3;
	m.entries = &in;
	m.n_entries = 1;
	repl_receive(r, 1, &m);
	assert_int_equal(repl_commit_index(r), 4);
	assert_int_equal(rec.napplied, 4);
	repl_close(r);
}

/*
 * Issue 10: a replica whose disk was replaced (repl_set_rejoining) gives no vote until its
 * durable log reaches the first commit index its leader sent and an entry of the leader's epoch.
 */
static void test_rejoining_follower(void **state)
{
	static const uint8_t x[3] = "abc";
	struct kvfs_repl_entry e[3] = {{.epoch = 5, .index = 1},
	                               {.epoch = 5, .index = 2, .len = 1, .data = x},
	                               {.epoch = 5, .index = 3, .len = 1, .data = x + 1}};
	struct rec rec;
	struct kvfs_repl *r = make(&rec, 2, 3, 5, NULL, 0);
	struct kvfs_repl_msg m = {.type = KVFS_REPL_NEW_EPOCH, .epoch = 5};

	repl_set_rejoining(r);
	repl_become_follower(r, 1, 5);
	/* It abstains: an answer no leader counts. */
	repl_receive(r, 1, &m);
	assert_int_equal(last_msg(&rec)->type, KVFS_REPL_EPOCH_ACK);
	assert_int_equal(last_msg(&rec)->ok, 0);
	assert_int_equal(last_msg(&rec)->epoch, 5);
	/* Its leader committed 3 before it proved entry 1 (its no-op) only: still rejoining. */
	m = (struct kvfs_repl_msg){.type = KVFS_REPL_APPEND,
	                           .epoch = 5,
	                           .commit = 3,
	                           .entries = e,
	                           .n_entries = 1};
	repl_receive(r, 1, &m);
	repl_persisted(r, 5, 1);
	assert_int_equal(repl_commit_index(r), 1);
	assert_true(repl_rejoining(r));
	/* The entries up to 3, durable: it votes again. */
	m.prev_epoch = 5;
	m.prev_index = 1;
	m.entries = e + 1;
	m.n_entries = 2;
	repl_receive(r, 1, &m);
	assert_true(repl_rejoining(r)); /* not durable yet */
	repl_persisted(r, 5, 3);
	assert_false(repl_rejoining(r));
	m = (struct kvfs_repl_msg){.type = KVFS_REPL_NEW_EPOCH, .epoch = 6};
	repl_become_follower(r, 3, 6);
	repl_epoch_persisted(r, 6);
	repl_receive(r, 3, &m);
	assert_int_equal(last_msg(&rec)->type, KVFS_REPL_EPOCH_ACK);
	assert_int_equal(last_msg(&rec)->ok, 1);
	assert_int_equal(last_msg(&rec)->last_index, 3);
	repl_close(r);
}

/* A rejoining candidate does not count itself: it needs a majority of the others. */
static void test_rejoining_candidate(void **state)
{
	struct rec rec;
	struct kvfs_repl *r = make(&rec, 2, 3, 5, NULL, 0);
	struct kvfs_repl_msg ack = {.type = KVFS_REPL_EPOCH_ACK, .epoch = 6, .ok = 1};

	boot_bits(&ack, 3);
	repl_set_rejoining(r);
	repl_become_leader(r, 6);
	repl_epoch_persisted(r, 6);
	repl_receive(r, 3, &ack);
	assert_int_equal(rec.npersist, 0); /* no no-op: 3 alone is no majority */
	/* 1 abstains (it is rejoining too): still none. */
	ack.ok = 0;
	repl_receive(r, 1, &ack);
	assert_true(repl_peer_rejoining(r, 1));
	assert_int_equal(rec.npersist, 0);
	ack.ok = 1;
	repl_receive(r, 1, &ack);
	assert_false(repl_peer_rejoining(r, 1));
	assert_int_equal(rec.npersist, 1); /* the no-op */
	assert_true(repl_rejoining(r));
	repl_close(r);
}

/* Issue 9: the leader counts an APPEND_ACK only up to what it sent that peer in its epoch. */
static void test_fake_append_ack(void **state)
{
	struct rec rec;
	struct kvfs_repl_io io = {.arg = &rec,
	                          .send = rec_send,
	                          .persist = rec_persist,
	                          .truncate = rec_truncate,
	                          .persist_epoch = rec_persist_epoch,
	                          .apply = rec_apply,
	                          .leadership_lost = rec_lost};
	struct kvfs_repl_msg m = {
	    .type = KVFS_REPL_EPOCH_ACK, .epoch = 2, .ok = 1, .last_epoch = 1, .last_index = 10};
	struct kvfs_repl *r;

	memset(&rec, 0, sizeof(rec));
	/* A snapshot up to 10 of epoch 1, nothing after it. */
	assert_int_equal(repl_init(&r, 1, boot(3), &io, 1, 10, 1, NULL, 0, 10), 0);
	/* Before it leads, an acknowledgement counts for nothing. */
	repl_become_leader(r, 2);
	m = (struct kvfs_repl_msg){
	    .type = KVFS_REPL_APPEND_ACK, .epoch = 2, .ok = 1, .match_index = 11};
	repl_receive(r, 3, &m);
	m = (struct kvfs_repl_msg){
	    .type = KVFS_REPL_EPOCH_ACK, .epoch = 2, .ok = 1, .last_epoch = 1, .last_index = 10};
	boot_bits(&m, 3);
	repl_receive(r, 2, &m);
	repl_epoch_persisted(r, 2);
	assert_int_equal(repl_last_index(r), 11); /* the no-op */
	repl_persisted(r, 2, 11);
	m = (struct kvfs_repl_msg){
	    .type = KVFS_REPL_APPEND_ACK, .epoch = 2, .ok = 1, .match_index = 11};
	repl_receive(r, 2, &m);
	assert_int_equal(repl_role(r), KVFS_REPL_LEADER);
	/* Node 3 lost its disk: it needs the snapshot, so it is sent no entries. */
	m = (struct kvfs_repl_msg){.type = KVFS_REPL_APPEND_ACK, .epoch = 2, .ok = 0, .hint = 0};
	repl_receive(r, 3, &m);
	assert_int_equal(repl_propose(r, (const uint8_t *)"x", 1, NULL), 0);
	repl_persisted(r, 2, 12);
	/* Node 2 is down. Node 3 claims 12, which it was never sent: no commit. */
	m = (struct kvfs_repl_msg){
	    .type = KVFS_REPL_APPEND_ACK, .epoch = 2, .ok = 1, .match_index = 12};
	repl_receive(r, 3, &m);
	assert_int_equal(repl_commit_index(r), 11);
	assert_int_equal(repl_peer_match(r, 3), 0);
	/* Beyond the log, neither. */
	m.match_index = 13;
	repl_receive(r, 2, &m);
	assert_int_equal(repl_commit_index(r), 11);
	/* Node 2's real acknowledgement commits it. */
	m.match_index = 12;
	repl_receive(r, 2, &m);
	assert_int_equal(repl_commit_index(r), 12);
	repl_close(r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_init_rejects),
	    cmocka_unit_test(test_fencing),
	    cmocka_unit_test(test_deposed_leader_steps_down),
	    cmocka_unit_test(test_follower_truncates_conflict),
	    cmocka_unit_test(test_follower_rejects_gap),
	    cmocka_unit_test(test_commit_current_epoch_only),
	    cmocka_unit_test(test_noop_before_proposals),
	    cmocka_unit_test(test_follower_lost_its_match),
	    cmocka_unit_test(test_fetch_from_best),
	    cmocka_unit_test(test_leadership_lost),
	    cmocka_unit_test(test_cluster_of_one),
	    cmocka_unit_test(test_persist_failed),
	    cmocka_unit_test(test_bogus_epoch_never_promised),
	    cmocka_unit_test(test_zk_hands_promised_epoch),
	    cmocka_unit_test(test_follower_commit_bounded),
	    cmocka_unit_test(test_fake_append_ack),
	    cmocka_unit_test(test_rejoining_follower),
	    cmocka_unit_test(test_rejoining_candidate),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
