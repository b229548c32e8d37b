/*
 * Unit tests of the replication messages on the wire (replica/repl_wire.c): every message type of
 * the core goes through repl_wire_encode(), frame_encode_header(), a frame reader and
 * repl_wire_decode() and comes out field by field the same, entry bytes included (no entries, a
 * full KVFS_REPL_BATCH, empty no-ops); the encoder refuses what no peer would accept; the decoder
 * refuses truncations, trailing bytes, bad flags, other frame types, and survives mutated
 * payloads; and two replicas of a cluster of three (the third absent) elect, fetch, replicate
 * and commit a proposal while every message they exchange travels as bytes.
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

#include "kvfs/config.h"
#include "kvfs/frame.h"
#include "kvfs/peer_msg.h"
#include "kvfs/repl.h"
#include "kvfs/repl_wire.h"
#include "../../xorshift.h"

/* A deterministic generator (xorshift64*), so that a failure can be replayed. */
static uint64_t rng_state = 0x2545f4914f6cdd1dull;

static uint64_t rng(void)
{
	return xorshift64s(&rng_state);
}

/* ---- through a frame and back ---- */

/*
 * Encodes m into a whole frame (*len bytes, malloc'd), checking that the encoder writes exactly
 * repl_wire_size() bytes.
 */
static uint8_t *frame_of(const struct kvfs_repl_msg *m, size_t *len)
{
	size_t size = repl_wire_size(m);
	uint8_t *buf = malloc(KVFS_FRAME_HEADER + size);
	uint8_t type = 0;

	assert_non_null(buf);
	assert_true(size > 0);
	assert_int_equal(repl_wire_encode(m, buf + KVFS_FRAME_HEADER, size, &type), (int)size);
	assert_int_equal(
	    frame_encode_header(buf, type, size ? buf + KVFS_FRAME_HEADER : NULL, (uint32_t)size),
	    0);
	*len = KVFS_FRAME_HEADER + size;
	return buf;
}

/*
 * Sends m through a frame reader (fed in odd-sized chunks) and decodes what comes out into *out
 * and ents[0..max). The payload, and so the entries' data, live in rd: free it after looking.
 */
static int through_wire(const struct kvfs_repl_msg *m, struct kvfs_frame_reader *rd,
                        struct kvfs_repl_msg *out, struct kvfs_repl_entry *ents, size_t max,
                        struct kvfs_frame *f)
{
	size_t len;
	uint8_t *buf = frame_of(m, &len);

	frame_reader_init(rd);
	for (size_t at = 0; at < len; at += 7)
		assert_int_equal(frame_reader_feed(rd, buf + at, len - at < 7 ? len - at : 7), 0);
	free(buf);
	assert_int_equal(frame_reader_next(rd, f), 1);
	return repl_wire_decode(f->type, f->payload, f->len, out, ents, max);
}

/* Every field of a and b, entries byte for byte (a no-op's data is NULL on both sides). */
static void assert_msg_equal(const struct kvfs_repl_msg *a, const struct kvfs_repl_msg *b)
{
	assert_int_equal(a->type, b->type);
	assert_int_equal(a->epoch, b->epoch);
	assert_int_equal(a->ok, b->ok);
	assert_int_equal(a->last_epoch, b->last_epoch);
	assert_int_equal(a->last_index, b->last_index);
	assert_int_equal(a->prev_epoch, b->prev_epoch);
	assert_int_equal(a->prev_index, b->prev_index);
	assert_int_equal(a->commit, b->commit);
	assert_int_equal(a->match_index, b->match_index);
	assert_int_equal(a->hint, b->hint);
	assert_int_equal(a->from_index, b->from_index);
	assert_int_equal(a->n_entries, b->n_entries);
	if (a->n_entries == 0) {
		assert_null(b->entries);
		return;
	}
	for (uint32_t i = 0; i < a->n_entries; i++) {
		const struct kvfs_repl_entry *x = &a->entries[i], *y = &b->entries[i];

		assert_int_equal(x->epoch, y->epoch);
		assert_int_equal(x->index, y->index);
		assert_int_equal(x->len, y->len);
		if (x->len)
			assert_memory_equal(x->data, y->data, x->len);
		else
			assert_null(y->data);
	}
}

/* m survives the trip unchanged, and its entries' data point into the frame's payload. */
static void assert_roundtrip(const struct kvfs_repl_msg *m)
{
	struct kvfs_repl_entry ents[KVFS_REPL_BATCH];
	struct kvfs_frame_reader rd;
	struct kvfs_repl_msg out;
	struct kvfs_frame f;

	memset(&out, 0xa5, sizeof(out));
	assert_int_equal(through_wire(m, &rd, &out, ents, KVFS_REPL_BATCH, &f), 0);
	assert_msg_equal(m, &out);
	if (out.n_entries)
		assert_ptr_equal(out.entries, ents);
	for (uint32_t i = 0; i < out.n_entries; i++)
		if (ents[i].len)
			assert_true(ents[i].data > f.payload &&
			            ents[i].data + ents[i].len <= f.payload + f.len);
	frame_reader_free(&rd);
}

/* n entries of epoch 3 from index first, every fourth an empty no-op, the others "e<index>". */
static uint8_t entry_text[KVFS_REPL_BATCH + 1][24];

static void make_entries(struct kvfs_repl_entry *e, uint32_t n, uint64_t first)
{
	assert_true(n <= KVFS_REPL_BATCH + 1);
	for (uint32_t i = 0; i < n; i++) {
		int len = 0;

		if (i % 4 != 1)
			len = snprintf((char *)entry_text[i], sizeof(entry_text[i]), "e%llu",
			               (unsigned long long)(first + i));
		e[i] = (struct kvfs_repl_entry){.epoch = 3,
		                                .index = first + i,
		                                .len = (uint32_t)len,
		                                .data = len ? entry_text[i] : NULL};
	}
}

static void test_roundtrip_every_type(void **state)
{
	struct kvfs_repl_entry e[KVFS_REPL_BATCH];
	struct kvfs_repl_msg m;

	m = (struct kvfs_repl_msg){.type = KVFS_REPL_NEW_EPOCH, .epoch = 0x0102030405060708};
	assert_roundtrip(&m);
	m = (struct kvfs_repl_msg){.type = KVFS_REPL_EPOCH_ACK,
	                           .epoch = 9,
	                           .ok = 1,
	                           .last_epoch = 8,
	                           .last_index = 77,
	                           .cfg_index = 77};
	{
		/* Protocol 3: the configuration at its end travels, ids up to 255. */
		struct kvfs_config c, back;

		assert_int_equal(config_parse("voters=1,2,3,200 observers=6,255", &c, NULL, 0), 0);
		config_to_bits(&c, &m.cfg);
		assert_roundtrip(&m);
		assert_int_equal(config_from_bits(&m.cfg, &back), 0);
		assert_true(config_equal(&c, &back));
	}
	m.ok = 0;
	m.last_epoch = m.last_index = m.cfg_index = 0;
	memset(&m.cfg, 0, sizeof(m.cfg));
	assert_roundtrip(&m);
	m = (struct kvfs_repl_msg){.type = KVFS_REPL_APPEND_ACK,
	                           .epoch = 9,
	                           .ok = 1,
	                           .match_index = 1ull << 40,
	                           .hint = (1ull << 40) + 5};
	assert_roundtrip(&m);
	m.ok = 0;
	assert_roundtrip(&m);
	m = (struct kvfs_repl_msg){.type = KVFS_REPL_FETCH, .epoch = 9, .from_index = 12};
	assert_roundtrip(&m);
	m.from_index = 0;
	assert_roundtrip(&m);

	/* APPEND: a heartbeat, a few, a whole batch; the no-ops among them stay empty. */
	for (uint32_t n = 0; n <= KVFS_REPL_BATCH; n += n < 5 ? 1 : KVFS_REPL_BATCH - 5) {
		make_entries(e, n, 101);
		m = (struct kvfs_repl_msg){.type = KVFS_REPL_APPEND,
		                           .epoch = 4,
		                           .prev_epoch = 2,
		                           .prev_index = 100,
		                           .commit = 99,
		                           .n_entries = n,
		                           .entries = n ? e : NULL};
		assert_roundtrip(&m);
	}
	/* FETCH_REPLY likewise, from index 1; and a refusal. */
	for (uint32_t n = 0; n <= KVFS_REPL_BATCH; n += n < 5 ? 1 : KVFS_REPL_BATCH - 5) {
		make_entries(e, n, 1);
		m = (struct kvfs_repl_msg){.type = KVFS_REPL_FETCH_REPLY,
		                           .epoch = 3,
		                           .ok = 1,
		                           .from_index = 1,
		                           .n_entries = n,
		                           .entries = n ? e : NULL};
		assert_roundtrip(&m);
	}
	m = (struct kvfs_repl_msg){.type = KVFS_REPL_FETCH_REPLY, .epoch = 12};
	assert_roundtrip(&m);
}

/* The core puts a hint in a refused EPOCH_ACK or FETCH_REPLY; it does not travel. */
static void test_unlisted_fields_dropped(void **state)
{
	static const enum kvfs_repl_msg_type types[] = {KVFS_REPL_EPOCH_ACK, KVFS_REPL_FETCH_REPLY};

	for (size_t i = 0; i < 2; i++) {
		struct kvfs_repl_msg m = {.type = types[i], .epoch = 7, .hint = 42, .commit = 3};
		struct kvfs_frame_reader rd;
		struct kvfs_repl_msg out;
		struct kvfs_frame f;

		assert_int_equal(through_wire(&m, &rd, &out, NULL, 0, &f), 0);
		assert_int_equal(out.type, types[i]);
		assert_int_equal(out.epoch, 7);
		assert_int_equal(out.hint, 0);
		assert_int_equal(out.commit, 0);
		frame_reader_free(&rd);
	}
}

/* The frame types on the wire are the peer_msg ones, whatever the core's enum says. */
static void test_frame_types(void **state)
{
	static const struct {
		enum kvfs_repl_msg_type repl;
		uint8_t wire;
	} map[] = {
	    {KVFS_REPL_NEW_EPOCH, KVFS_MSG_NEW_EPOCH},
	    {KVFS_REPL_EPOCH_ACK, KVFS_MSG_EPOCH_ACK},
	    {KVFS_REPL_APPEND, KVFS_MSG_APPEND},
	    {KVFS_REPL_APPEND_ACK, KVFS_MSG_APPEND_ACK},
	    {KVFS_REPL_FETCH, KVFS_MSG_FETCH},
	    {KVFS_REPL_FETCH_REPLY, KVFS_MSG_FETCH_REPLY},
	};
	uint8_t buf[128];

	for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++) {
		struct kvfs_repl_msg m = {.type = map[i].repl, .epoch = 1};
		uint8_t type = 0;

		assert_true(repl_wire_encode(&m, buf, sizeof(buf), &type) > 0);
		assert_int_equal(type, map[i].wire);
	}
}

/* ---- refusals ---- */

static void test_encoder_refuses(void **state)
{
	struct kvfs_repl_entry e[KVFS_REPL_BATCH + 1];
	struct kvfs_repl_msg m = {.type = KVFS_REPL_APPEND, .epoch = 3, .prev_index = 10};
	uint8_t buf[4096], type = 0xee;

	/* not a type of the core */
	m.type = (enum kvfs_repl_msg_type)0;
	assert_int_equal(repl_wire_size(&m), 0);
	assert_int_equal(repl_wire_encode(&m, buf, sizeof(buf), &type), -EINVAL);
	m.type = (enum kvfs_repl_msg_type)(KVFS_REPL_FETCH_REPLY + 1);
	assert_int_equal(repl_wire_encode(&m, buf, sizeof(buf), &type), -EINVAL);

	/* more than a batch */
	make_entries(e, KVFS_REPL_BATCH + 1, 11);
	m = (struct kvfs_repl_msg){.type = KVFS_REPL_APPEND,
	                           .epoch = 3,
	                           .prev_index = 10,
	                           .n_entries = KVFS_REPL_BATCH + 1,
	                           .entries = e};
	assert_int_equal(repl_wire_encode(&m, buf, sizeof(buf), &type), -EINVAL);
	m.n_entries = KVFS_REPL_BATCH;
	assert_true(repl_wire_encode(&m, buf, sizeof(buf), &type) > 0);
	m.n_entries = 3;
	/* entries missing, not following prev_index, epochs out of bounds, data missing */
	m.entries = NULL;
	assert_int_equal(repl_wire_encode(&m, buf, sizeof(buf), &type), -EINVAL);
	m.entries = e;
	m.prev_index = 9;
	assert_int_equal(repl_wire_encode(&m, buf, sizeof(buf), &type), -EINVAL);
	m.prev_index = 10;
	m.epoch = 2;
	assert_int_equal(repl_wire_encode(&m, buf, sizeof(buf), &type), -EINVAL);
	m.epoch = 3;
	m.prev_epoch = 4;
	assert_int_equal(repl_wire_encode(&m, buf, sizeof(buf), &type), -EINVAL);
	m.prev_epoch = 3;
	e[2].data = NULL;
	assert_int_equal(repl_wire_encode(&m, buf, sizeof(buf), &type), -EINVAL);
	make_entries(e, 3, 11);
	/* too small a buffer, by one byte */
	type = 0xee;
	assert_int_equal(repl_wire_encode(&m, buf, repl_wire_size(&m) - 1, &type), -ENOBUFS);
	assert_int_equal(type, 0xee);
	assert_int_equal(repl_wire_encode(&m, buf, repl_wire_size(&m), &type),
	                 (int)repl_wire_size(&m));

	/* FETCH_REPLY: a refusal with entries, entries from index 0 */
	make_entries(e, 3, 1);
	m = (struct kvfs_repl_msg){.type = KVFS_REPL_FETCH_REPLY,
	                           .epoch = 3,
	                           .from_index = 1,
	                           .n_entries = 3,
	                           .entries = e};
	assert_int_equal(repl_wire_encode(&m, buf, sizeof(buf), &type), -EINVAL);
	m.ok = 1;
	assert_true(repl_wire_encode(&m, buf, sizeof(buf), &type) > 0);
	make_entries(e, 3, 0);
	m.from_index = 0;
	assert_int_equal(repl_wire_encode(&m, buf, sizeof(buf), &type), -EINVAL);
}

/* Frames that are not the core's are for someone else. */
static void test_other_frame_types(void **state)
{
	static const unsigned others[] = {0,
	                                  KVFS_MSG_HELLO,
	                                  KVFS_MSG_FORWARD,
	                                  KVFS_MSG_FORWARD_REPLY,
	                                  KVFS_MSG_READ_INDEX,
	                                  KVFS_MSG_READ_INDEX_REPLY,
	                                  KVFS_MSG_SNAPSHOT_CHUNK,
	                                  KVFS_MSG_SNAPSHOT_ACK,
	                                  KVFS_MSG__COUNT,
	                                  255};
	uint8_t payload[32] = {0};
	struct kvfs_repl_msg m = {.type = KVFS_REPL_APPEND, .epoch = 77};

	for (size_t i = 0; i < sizeof(others) / sizeof(others[0]); i++) {
		assert_int_equal(repl_wire_decode((uint8_t)others[i], payload, 8, &m, NULL, 0),
		                 -ENOPROTOOPT);
		assert_int_equal(m.epoch, 77); /* untouched */
	}
}

/* An encoded sample of each type (into buf, *len bytes, frame type *type). */
static void sample(unsigned which, uint8_t *buf, size_t *len, uint8_t *type)
{
	static struct kvfs_repl_entry e[3];
	struct kvfs_repl_msg m;
	int n;

	switch (which) {
	case 0:
		m = (struct kvfs_repl_msg){.type = KVFS_REPL_NEW_EPOCH, .epoch = 5};
		break;
	case 1:
		m = (struct kvfs_repl_msg){.type = KVFS_REPL_EPOCH_ACK,
		                           .epoch = 5,
		                           .ok = 1,
		                           .last_epoch = 4,
		                           .last_index = 9};
		m.cfg.members[0] = m.cfg.voters[0] = 0x0e; /* voters 1, 2, 3 */
		break;
	case 2:
		make_entries(e, 3, 10);
		m = (struct kvfs_repl_msg){.type = KVFS_REPL_APPEND,
		                           .epoch = 5,
		                           .prev_epoch = 3,
		                           .prev_index = 9,
		                           .commit = 8,
		                           .n_entries = 3,
		                           .entries = e};
		break;
	case 3:
		m = (struct kvfs_repl_msg){.type = KVFS_REPL_APPEND_ACK,
		                           .epoch = 5,
		                           .ok = 1,
		                           .match_index = 12,
		                           .hint = 12};
		break;
	case 4:
		m = (struct kvfs_repl_msg){.type = KVFS_REPL_FETCH, .epoch = 5, .from_index = 2};
		break;
	default:
		make_entries(e, 3, 2);
		m = (struct kvfs_repl_msg){.type = KVFS_REPL_FETCH_REPLY,
		                           .epoch = 5,
		                           .ok = 1,
		                           .from_index = 2,
		                           .n_entries = 3,
		                           .entries = e};
		break;
	}
	n = repl_wire_encode(&m, buf, 512, type);
	assert_true(n > 0);
	*len = (size_t)n;
}

#define NSAMPLES 6

/* A copy of exactly len bytes, so that ASan sees any read past them. */
static uint8_t *exact_copy(const uint8_t *buf, size_t len)
{
	uint8_t *p = malloc(len ? len : 1);

	assert_non_null(p);
	if (len)
		memcpy(p, buf, len);
	return p;
}

static void test_malformed_refused(void **state)
{
	struct kvfs_repl_entry ents[KVFS_REPL_BATCH];
	struct kvfs_repl_msg m;

	for (unsigned s = 0; s < NSAMPLES; s++) {
		uint8_t buf[512], type;
		size_t len;

		sample(s, buf, &len, &type);
		/* every truncation */
		for (size_t cut = 0; cut < len; cut++) {
			uint8_t *p = exact_copy(buf, cut);

			assert_int_equal(
			    repl_wire_decode(type, p, (uint32_t)cut, &m, ents, KVFS_REPL_BATCH),
			    -EBADMSG);
			free(p);
		}
		/* trailing bytes */
		buf[len] = 0;
		assert_int_equal(
		    repl_wire_decode(type, buf, (uint32_t)len + 1, &m, ents, KVFS_REPL_BATCH),
		    -EBADMSG);
		/* the whole of it is fine */
		assert_int_equal(
		    repl_wire_decode(type, buf, (uint32_t)len, &m, ents, KVFS_REPL_BATCH), 0);
	}
	{
		/* a flag that is neither 0 nor 1: EPOCH_ACK's 25th byte, APPEND_ACK's 9th,
		 * FETCH_REPLY's 9th */
		uint8_t buf[512], type;
		size_t len;

		sample(1, buf, &len, &type);
		buf[24] = 2;
		assert_int_equal(repl_wire_decode(type, buf, (uint32_t)len, &m, ents, 8), -EBADMSG);
		sample(3, buf, &len, &type);
		buf[8] = 0x80;
		assert_int_equal(repl_wire_decode(type, buf, (uint32_t)len, &m, ents, 8), -EBADMSG);
		sample(5, buf, &len, &type);
		buf[8] = 3;
		assert_int_equal(repl_wire_decode(type, buf, (uint32_t)len, &m, ents, 8), -EBADMSG);
		/* an APPEND's bytes under another type */
		sample(2, buf, &len, &type);
		assert_int_equal(
		    repl_wire_decode(KVFS_MSG_FETCH_REPLY, buf, (uint32_t)len, &m, ents, 8),
		    -EBADMSG);
		assert_int_equal(
		    repl_wire_decode(KVFS_MSG_EPOCH_ACK, buf, (uint32_t)len, &m, ents, 8),
		    -EBADMSG);
		/* a null payload of length 0 */
		assert_int_equal(repl_wire_decode(KVFS_MSG_NEW_EPOCH, NULL, 0, &m, ents, 8),
		                 -EBADMSG);
	}
}

/* More entries than the caller's array, or than a batch: -E2BIG with the count. */
static void test_too_many_entries(void **state)
{
	struct kvfs_repl_entry e[KVFS_REPL_BATCH + 1], ents[KVFS_REPL_BATCH + 1];
	struct kvfs_peer_entry pe[KVFS_REPL_BATCH + 1];
	struct kvfs_repl_msg m = {.type = KVFS_REPL_APPEND,
	                          .epoch = 3,
	                          .prev_index = 10,
	                          .n_entries = 5,
	                          .entries = e},
	                     out;
	uint8_t buf[8192], type;
	int n;

	make_entries(e, KVFS_REPL_BATCH + 1, 11);
	n = repl_wire_encode(&m, buf, sizeof(buf), &type);
	assert_true(n > 0);
	assert_int_equal(repl_wire_decode(type, buf, (uint32_t)n, &out, ents, 4), -E2BIG);
	assert_int_equal(out.n_entries, 5);
	assert_int_equal(repl_wire_decode(type, buf, (uint32_t)n, &out, NULL, 0), -E2BIG);
	assert_int_equal(repl_wire_decode(type, buf, (uint32_t)n, &out, ents, 5), 0);

	m = (struct kvfs_repl_msg){
	    .type = KVFS_REPL_FETCH_REPLY, .epoch = 3, .ok = 1, .from_index = 11, .n_entries = 5};
	m.entries = e;
	n = repl_wire_encode(&m, buf, sizeof(buf), &type);
	assert_true(n > 0);
	assert_int_equal(repl_wire_decode(type, buf, (uint32_t)n, &out, ents, 4), -E2BIG);
	assert_int_equal(out.n_entries, 5);
	assert_int_equal(repl_wire_decode(type, buf, (uint32_t)n, &out, ents, 5), 0);

	/* A peer that sends more than a batch (well formed for peer_msg) is refused too. */
	for (uint32_t i = 0; i < KVFS_REPL_BATCH + 1; i++)
		pe[i] = (struct kvfs_peer_entry){
		    .epoch = e[i].epoch, .index = e[i].index, .data = e[i].data, .len = e[i].len};
	{
		struct kvfs_peer_append a = {
		    .epoch = 3, .prev_index = 10, .n_entries = KVFS_REPL_BATCH + 1, .entries = pe};
		struct kvfs_peer_fetch_reply fr = {.epoch = 3,
		                                   .ok = true,
		                                   .from_index = 11,
		                                   .n_entries = KVFS_REPL_BATCH + 1,
		                                   .entries = pe};
		size_t len;

		assert_true(peer_msg_append_size(&a) <= sizeof(buf));
		len = peer_msg_append_encode(&a, buf);
		assert_int_equal(repl_wire_decode(KVFS_MSG_APPEND, buf, (uint32_t)len, &out, ents,
		                                  KVFS_REPL_BATCH + 1),
		                 -E2BIG);
		assert_int_equal(out.n_entries, KVFS_REPL_BATCH + 1);
		len = peer_msg_fetch_reply_encode(&fr, buf);
		assert_int_equal(repl_wire_decode(KVFS_MSG_FETCH_REPLY, buf, (uint32_t)len, &out,
		                                  ents, KVFS_REPL_BATCH + 1),
		                 -E2BIG);
	}
}

/*
 * 50k mutated or random payloads under every replication frame type: no crash, no read outside
 * the buffer, only the documented errors, and whatever is accepted re-encodes to the same bytes
 * and frame type.
 */
static void test_fuzz(void **state)
{
	static const uint8_t types[] = {KVFS_MSG_NEW_EPOCH, KVFS_MSG_EPOCH_ACK,
	                                KVFS_MSG_APPEND,    KVFS_MSG_APPEND_ACK,
	                                KVFS_MSG_FETCH,     KVFS_MSG_FETCH_REPLY};
	uint8_t samples[NSAMPLES][512], sample_type[NSAMPLES], tmp[600], out[600];
	size_t sample_len[NSAMPLES];
	unsigned accepted = 0;

	for (unsigned s = 0; s < NSAMPLES; s++)
		sample(s, samples[s], &sample_len[s], &sample_type[s]);
	for (int iter = 0; iter < 50000; iter++) {
		size_t len;

		if (iter % 4 == 0) {
			len = (size_t)(rng() % 64);
			for (size_t i = 0; i < len; i++)
				tmp[i] = (uint8_t)rng();
		} else {
			unsigned s = (unsigned)(rng() % NSAMPLES);
			int flips = 1 + (int)(rng() % 2);

			len = sample_len[s];
			memcpy(tmp, samples[s], len);
			for (int k = 0; k < flips; k++) {
				size_t at = (size_t)(rng() % len);

				if (rng() % 4)
					tmp[at] ^= (uint8_t)(1u << (rng() % 8));
				else
					tmp[at] = (uint8_t)rng();
			}
			if (rng() % 8 == 0)
				len = (size_t)(rng() % (len + 1));
		}
		{
			uint8_t *p = exact_copy(tmp, len);

			for (size_t t = 0; t < sizeof(types); t++) {
				struct kvfs_repl_entry ents[4];
				struct kvfs_repl_msg m;
				uint8_t type = 0;
				int rv = repl_wire_decode(types[t], p, (uint32_t)len, &m, ents, 4);

				if (rv != 0) {
					assert_true(rv == -EBADMSG || rv == -E2BIG);
					continue;
				}
				accepted++;
				assert_int_equal(repl_wire_encode(&m, out, sizeof(out), &type),
				                 (int)len);
				assert_int_equal(type, types[t]);
				assert_memory_equal(out, p, len);
			}
			free(p);
		}
	}
	assert_true(accepted > 1000);
}

/* ---- two replicas over an in-memory wire ---- */

#define NODES   3 /* node 3 is never started: what is sent to it is lost */
#define MAXQ    256
#define MAXAPPL 16

struct cluster;

/* One replica's io state: what it asked for, completed between deliveries. */
struct node {
	struct cluster *c;
	uint32_t id;
	struct kvfs_repl *r;
	uint64_t persist_epoch[MAXQ], persist_index[MAXQ];
	int npersist;
	uint64_t epoch_to_persist;
	struct {
		uint64_t epoch, index;
		uint32_t len;
		uint8_t data[16];
	} applied[MAXAPPL];
	int napplied;
	int lost;
};

/* A frame in flight. */
struct packet {
	uint32_t from, to;
	uint8_t *bytes;
	size_t len;
};

struct cluster {
	struct node nodes[NODES + 1]; /* by id */
	struct packet q[MAXQ];
	int head, tail;
	struct kvfs_frame_reader links[NODES + 1][NODES + 1]; /* [from][to] */
	unsigned seen[KVFS_MSG__COUNT];                       /* frame types that travelled */
	unsigned dropped;
};

/* The core's message becomes bytes right here: its entries' data live only until we return. */
static void wire_send(void *arg, uint32_t to, const struct kvfs_repl_msg *m)
{
	struct node *n = arg;
	struct cluster *c = n->c;
	size_t len;
	uint8_t *bytes = frame_of(m, &len);

	assert_true(to >= 1 && to <= NODES && to != n->id);
	c->seen[bytes[5]]++; /* the frame header's type byte */
	if (!c->nodes[to].r) {
		c->dropped++;
		free(bytes);
		return;
	}
	assert_true(c->tail < MAXQ);
	c->q[c->tail++] = (struct packet){.from = n->id, .to = to, .bytes = bytes, .len = len};
}

static void wire_persist(void *arg, const struct kvfs_repl_entry *e, size_t count)
{
	struct node *n = arg;

	assert_true(n->npersist < MAXQ);
	n->persist_epoch[n->npersist] = e[count - 1].epoch;
	n->persist_index[n->npersist] = e[count - 1].index;
	n->npersist++;
}

static void wire_truncate(void *arg, uint64_t after)
{
}

static void wire_persist_epoch(void *arg, uint64_t epoch)
{
	struct node *n = arg;

	n->epoch_to_persist = epoch;
}

static void wire_apply(void *arg, const struct kvfs_repl_entry *e)
{
	struct node *n = arg;

	assert_true(n->napplied < MAXAPPL);
	assert_true(e->len <= sizeof(n->applied[0].data));
	n->applied[n->napplied].epoch = e->epoch;
	n->applied[n->napplied].index = e->index;
	n->applied[n->napplied].len = e->len;
	if (e->len)
		memcpy(n->applied[n->napplied].data, e->data, e->len);
	n->napplied++;
}

static void wire_lost(void *arg)
{
	struct node *n = arg;

	n->lost++;
}

static void start(struct cluster *c, uint32_t id, uint64_t promised,
                  const struct kvfs_repl_entry *log, size_t n)
{
	struct node *nd = &c->nodes[id];
	struct kvfs_repl_io io = {
	    .arg = nd,
	    .send = wire_send,
	    .persist = wire_persist,
	    .truncate = wire_truncate,
	    .persist_epoch = wire_persist_epoch,
	    .apply = wire_apply,
	    .leadership_lost = wire_lost,
	};

	nd->c = c;
	nd->id = id;
	struct kvfs_config boot;

	assert_int_equal(config_bootstrap(&boot, NODES), 0);
	assert_int_equal(repl_init(&nd->r, id, &boot, &io, promised, 0, 0, log, n, 0), 0);
}

/* Completes what each replica asked of its disk (never from inside an io call). */
static bool complete_disk(struct cluster *c)
{
	bool any = false;

	for (uint32_t id = 1; id <= NODES; id++) {
		struct node *n = &c->nodes[id];

		if (!n->r)
			continue;
		if (n->epoch_to_persist) {
			uint64_t e = n->epoch_to_persist;

			n->epoch_to_persist = 0;
			repl_epoch_persisted(n->r, e);
			any = true;
		}
		if (n->npersist) {
			int k = n->npersist - 1;

			n->npersist = 0;
			/* group commit: the last completes them all */
			repl_persisted(n->r, n->persist_epoch[k], n->persist_index[k]);
			any = true;
		}
	}
	return any;
}

/* Delivers every frame in flight (and those they cause) and completes disk work, until quiet. */
static void drive(struct cluster *c)
{
	for (int rounds = 0; rounds < 1000; rounds++) {
		bool any = false;

		while (c->head < c->tail) {
			struct packet p = c->q[c->head++];
			struct kvfs_frame_reader *rd = &c->links[p.from][p.to];
			struct kvfs_repl_entry ents[KVFS_REPL_BATCH];
			struct kvfs_repl_msg m;
			struct kvfs_frame f;

			assert_int_equal(frame_reader_feed(rd, p.bytes, p.len), 0);
			free(p.bytes);
			assert_int_equal(frame_reader_next(rd, &f), 1);
			assert_int_equal(
			    repl_wire_decode(f.type, f.payload, f.len, &m, ents, KVFS_REPL_BATCH),
			    0);
			/* f's payload (and so m's entries) stays valid until rd is next used */
			repl_receive(c->nodes[p.to].r, p.from, &m);
			any = true;
		}
		if (c->head == c->tail)
			c->head = c->tail = 0;
		any |= complete_disk(c);
		if (!any)
			return;
	}
	fail_msg("the cluster never went quiet");
}

static void test_two_of_three_over_the_wire(void **state)
{
	/* Node 2 holds more of epoch 1 than node 1, which must fetch it before leading epoch 2. */
	static const struct kvfs_repl_entry log1[] = {
	    {.epoch = 1, .index = 1, .len = 1, .data = (const uint8_t *)"a"}};
	static const struct kvfs_repl_entry log2[] = {
	    {.epoch = 1, .index = 1, .len = 1, .data = (const uint8_t *)"a"},
	    {.epoch = 1, .index = 2, .len = 2, .data = (const uint8_t *)"bb"},
	    {.epoch = 1, .index = 3, .len = 0, .data = NULL}};
	static const char *const want[] = {"a", "bb", "", "", "hello"};
	struct cluster *c = calloc(1, sizeof(*c));
	uint64_t index = 0;

	assert_non_null(c);
	for (uint32_t from = 0; from <= NODES; from++)
		for (uint32_t to = 0; to <= NODES; to++)
			frame_reader_init(&c->links[from][to]);
	start(c, 1, 1, log1, 1);
	start(c, 2, 1, log2, 3);

	/* ZooKeeper says: 1 leads epoch 2. */
	repl_become_follower(c->nodes[2].r, 1, 2);
	drive(c);
	repl_become_leader(c->nodes[1].r, 2);
	drive(c);
	assert_int_equal(repl_role(c->nodes[1].r), KVFS_REPL_LEADER);
	assert_int_equal(repl_last_index(c->nodes[1].r), 4); /* 1..3 fetched, the no-op */
	assert_int_equal(repl_commit_index(c->nodes[1].r), 4);

	assert_int_equal(repl_propose(c->nodes[1].r, (const uint8_t *)"hello", 5, &index), 0);
	assert_int_equal(index, 5);
	drive(c);
	/* The follower learns the commit index from the next APPEND: a tick's heartbeat. */
	for (int t = 0; t < 2; t++) {
		repl_tick(c->nodes[1].r);
		drive(c);
	}
	assert_int_equal(repl_role(c->nodes[1].r), KVFS_REPL_LEADER);
	assert_int_equal(c->nodes[1].lost, 0);

	for (uint32_t id = 1; id <= 2; id++) {
		struct node *n = &c->nodes[id];

		assert_int_equal(repl_commit_index(n->r), 5);
		assert_int_equal(n->napplied, 5);
		for (int i = 0; i < 5; i++) {
			assert_int_equal(n->applied[i].index, i + 1);
			assert_int_equal(n->applied[i].epoch, i < 3 ? 1 : 2);
			assert_int_equal(n->applied[i].len, strlen(want[i]));
			assert_memory_equal(n->applied[i].data, want[i], strlen(want[i]));
		}
	}
	/* Every replication message crossed the wire, and node 3 heard none. */
	assert_true(c->seen[KVFS_MSG_NEW_EPOCH] > 0);
	assert_true(c->seen[KVFS_MSG_EPOCH_ACK] > 0);
	assert_true(c->seen[KVFS_MSG_FETCH] > 0);
	assert_true(c->seen[KVFS_MSG_FETCH_REPLY] > 0);
	assert_true(c->seen[KVFS_MSG_APPEND] > 0);
	assert_true(c->seen[KVFS_MSG_APPEND_ACK] > 0);
	assert_true(c->dropped > 0);

	for (uint32_t id = 1; id <= 2; id++)
		repl_close(c->nodes[id].r);
	for (uint32_t from = 0; from <= NODES; from++)
		for (uint32_t to = 0; to <= NODES; to++)
			frame_reader_free(&c->links[from][to]);
	free(c);
}

/* Issue 9: values no correct replica sends are refused both ways, whatever the layout allows. */
static void test_out_of_range(void **state)
{
	struct kvfs_repl_entry e0 = {
	    .epoch = 0, .index = 1, .len = 1, .data = (const uint8_t *)"x"};
	const struct kvfs_repl_msg bad[] = {
	    {.type = KVFS_REPL_NEW_EPOCH, .epoch = 0},
	    {.type = KVFS_REPL_APPEND, .epoch = 0},
	    {.type = KVFS_REPL_FETCH, .epoch = 0, .from_index = 1},
	    {.type = KVFS_REPL_FETCH_REPLY,
	     .epoch = 3,
	     .ok = 1,
	     .from_index = 1,
	     .entries = &e0,
	     .n_entries = 1},
	    {.type = KVFS_REPL_APPEND, .epoch = 3, .commit = KVFS_REPL_INDEX_MAX + 1},
	    {.type = KVFS_REPL_APPEND, .epoch = 3, .prev_epoch = 1, .prev_index = UINT64_MAX - 1},
	    {.type = KVFS_REPL_APPEND_ACK, .epoch = 3, .ok = 1, .match_index = UINT64_MAX},
	    {.type = KVFS_REPL_APPEND_ACK, .epoch = 3, .hint = UINT64_MAX},
	    {.type = KVFS_REPL_FETCH, .epoch = 3, .from_index = UINT64_MAX},
	    {.type = KVFS_REPL_EPOCH_ACK, .epoch = 3, .ok = 1, .last_epoch = 4, .last_index = 1},
	    {.type = KVFS_REPL_EPOCH_ACK, .epoch = 3, .ok = 1, .last_epoch = 0, .last_index = 5},
	    {.type = KVFS_REPL_EPOCH_ACK,
	     .epoch = 3,
	     .ok = 1,
	     .last_epoch = 2,
	     .last_index = KVFS_REPL_INDEX_MAX + 1},
	    /* Protocol 3's configuration (voters 1..3 added below where it is not the point) */
	    {.type = KVFS_REPL_EPOCH_ACK,
	     .epoch = 3,
	     .ok = 1,
	     .last_epoch = 2,
	     .last_index = 4,
	     .cfg_index = 5}, /* set after the log's end */
	    {.type = KVFS_REPL_EPOCH_ACK,
	     .epoch = 3,
	     .ok = 1,
	     .last_epoch = 2,
	     .last_index = 4,
	     .cfg = {.voters = {0x01}, .members = {0x03}}}, /* id 0 */
	    {.type = KVFS_REPL_EPOCH_ACK,
	     .epoch = 3,
	     .ok = 1,
	     .last_epoch = 2,
	     .last_index = 4,
	     .cfg = {.voters = {0x04}, .members = {0x02}}}, /* a voter that is no member */
	    {.type = KVFS_REPL_EPOCH_ACK,
	     .epoch = 3,
	     .ok = 1,
	     .last_epoch = 2,
	     .last_index = 4,
	     .cfg = {.members = {0x02}}}, /* no voter */
	    {.type = KVFS_REPL_EPOCH_ACK,
	     .epoch = 3,
	     .ok = 0,
	     .cfg = {.voters = {0x02}, .members = {0x02}}}, /* a refusal names none */
	    {.type = KVFS_REPL_EPOCH_ACK,
	     .epoch = 3,
	     .ok = 1,
	     .last_epoch = 2,
	     .last_index = 4,
	     .cfg = {.voters = {0xfe}, .members = {0xfe}}}, /* valid, but ... */
	};
	uint8_t buf[256], type = 0;
	struct kvfs_repl_entry out[4];
	struct kvfs_repl_msg m;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct kvfs_peer_entry pe = {
		    .epoch = 0, .index = 1, .len = 1, .data = (const uint8_t *)"x"};
		struct kvfs_repl_msg b = bad[i];
		size_t n = 0;

		if (i == sizeof(bad) / sizeof(bad[0]) - 1) {
			/* ... the last one is fine until 70 members make it too many */
			assert_true(repl_wire_encode(&b, buf, sizeof(buf), &type) > 0);
			memset(b.cfg.members + 1, 0xff, 8);
		} else if (b.type == KVFS_REPL_EPOCH_ACK && b.ok && !b.cfg.members[0]) {
			b.cfg.members[0] = b.cfg.voters[0] = 0x0e;
		}
		assert_int_equal(repl_wire_encode(&b, buf, sizeof(buf), &type), -EINVAL);
		/* The same bytes, written by hand, are refused by the decoder. */
		switch (bad[i].type) {
		case KVFS_REPL_NEW_EPOCH:
			type = KVFS_MSG_NEW_EPOCH;
			n = peer_msg_new_epoch_encode(
			    &(struct kvfs_peer_new_epoch){.epoch = bad[i].epoch}, buf);
			break;
		case KVFS_REPL_APPEND:
			type = KVFS_MSG_APPEND;
			n = peer_msg_append_encode(
			    &(struct kvfs_peer_append){.epoch = bad[i].epoch,
			                               .prev_epoch = bad[i].prev_epoch,
			                               .prev_index = bad[i].prev_index,
			                               .commit_index = bad[i].commit},
			    buf);
			break;
		case KVFS_REPL_FETCH:
			type = KVFS_MSG_FETCH;
			n = peer_msg_fetch_encode(
			    &(struct kvfs_peer_fetch){.epoch = bad[i].epoch,
			                              .from_index = bad[i].from_index},
			    buf);
			break;
		case KVFS_REPL_FETCH_REPLY:
			type = KVFS_MSG_FETCH_REPLY;
			n = peer_msg_fetch_reply_encode(
			    &(struct kvfs_peer_fetch_reply){.epoch = bad[i].epoch,
			                                    .ok = 1,
			                                    .from_index = 1,
			                                    .entries = &pe,
			                                    .n_entries = 1},
			    buf);
			break;
		case KVFS_REPL_APPEND_ACK:
			type = KVFS_MSG_APPEND_ACK;
			n = peer_msg_append_ack_encode(
			    &(struct kvfs_peer_append_ack){.epoch = bad[i].epoch,
			                                   .ok = bad[i].ok,
			                                   .match_index = bad[i].match_index,
			                                   .hint_index = bad[i].hint},
			    buf);
			break;
		default:
			type = KVFS_MSG_EPOCH_ACK;
			{
				struct kvfs_peer_epoch_ack pa = {.epoch = b.epoch,
				                                 .ok = b.ok,
				                                 .last_epoch = b.last_epoch,
				                                 .last_index = b.last_index,
				                                 .cfg_index = b.cfg_index};

				memcpy(pa.voters, b.cfg.voters, sizeof(pa.voters));
				memcpy(pa.members, b.cfg.members, sizeof(pa.members));
				n = peer_msg_epoch_ack_encode(&pa, buf);
			}
			break;
		}
		assert_int_equal(repl_wire_decode(type, buf, (uint32_t)n, &m, out, 4), -EBADMSG);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_roundtrip_every_type),
	    cmocka_unit_test(test_unlisted_fields_dropped),
	    cmocka_unit_test(test_frame_types),
	    cmocka_unit_test(test_encoder_refuses),
	    cmocka_unit_test(test_other_frame_types),
	    cmocka_unit_test(test_malformed_refused),
	    cmocka_unit_test(test_too_many_entries),
	    cmocka_unit_test(test_fuzz),
	    cmocka_unit_test(test_two_of_three_over_the_wire),
	    cmocka_unit_test(test_out_of_range),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
