/*
 * A recording io for the replication core's unit tests (test_repl.c, test_repl_member.c): every
 * message sent, persist, truncation, promise, applied entry, lost leadership and configuration
 * change is counted or kept in struct rec, and rec_io() gives the io table that records them.
 * Failures are cmocka assertions, so these are for use inside a cmocka test only. All static.
 */
#ifndef KVFS_TESTS_REPL_REC_H
#define KVFS_TESTS_REPL_REC_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "kvfs/config.h"
#include "kvfs/repl.h"

#define MAXREC 64

struct rec {
	struct kvfs_repl_msg msg[MAXREC];
	uint32_t to[MAXREC];
	int nmsg;
	int npersist;
	uint64_t persist_first, persist_last, persist_epoch;
	int ntrunc;
	uint64_t trunc_after;
	int nepoch;
	uint64_t epoch;
	uint64_t applied[MAXREC];
	int napplied;
	int lost;
	int nchanged;
	struct kvfs_config changed; /* the last config_changed */
	uint64_t changed_index;
};

static void rec_send(void *arg, uint32_t to, const struct kvfs_repl_msg *m)
{
	struct rec *r = arg;

	assert_true(r->nmsg < MAXREC);
	r->to[r->nmsg] = to;
	r->msg[r->nmsg] = *m;
	r->msg[r->nmsg].entries = NULL;
	r->nmsg++;
}

static void rec_persist(void *arg, const struct kvfs_repl_entry *e, size_t n)
{
	struct rec *r = arg;

	r->npersist++;
	r->persist_first = e[0].index;
	r->persist_last = e[n - 1].index;
	r->persist_epoch = e[n - 1].epoch;
}

static void rec_truncate(void *arg, uint64_t after)
{
	struct rec *r = arg;

	r->ntrunc++;
	r->trunc_after = after;
}

static void rec_persist_epoch(void *arg, uint64_t epoch)
{
	struct rec *r = arg;

	r->nepoch++;
	r->epoch = epoch;
}

static void rec_apply(void *arg, const struct kvfs_repl_entry *e)
{
	struct rec *r = arg;

	assert_true(r->napplied < MAXREC);
	r->applied[r->napplied++] = e->index;
}

static void rec_lost(void *arg)
{
	((struct rec *)arg)->lost++;
}

static void rec_changed(void *arg, const struct kvfs_config *c, uint64_t index)
{
	struct rec *r = arg;

	r->nchanged++;
	r->changed = *c;
	r->changed_index = index;
}

/* The io table that records into rec (config_changed too). */
static inline struct kvfs_repl_io rec_io(struct rec *rec)
{
	return (struct kvfs_repl_io){
	    .arg = rec,
	    .send = rec_send,
	    .persist = rec_persist,
	    .truncate = rec_truncate,
	    .persist_epoch = rec_persist_epoch,
	    .apply = rec_apply,
	    .leadership_lost = rec_lost,
	    .config_changed = rec_changed,
	};
}

#endif /* KVFS_TESTS_REPL_REC_H */
