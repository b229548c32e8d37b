/*
 * Unit tests of the peer message codec (replica/peer_msg.c): every message survives a round trip;
 * every decoder refuses every truncation and trailing bytes without reading outside the buffer
 * (each input is an exact-size allocation, run under ASan); the semantic checks (cluster id,
 * consecutive APPEND and FETCH_REPLY indices, flags, snapshot bounds) hold; HELLO from a stranger
 * is refused with a message naming both clusters; and 100k random or mutated payloads through every
 * decoder crash nothing, while whatever a decoder accepts re-encodes to exactly the same bytes.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "kvfs/peer_msg.h"
#include "../../xorshift.h"

#define MY_CLUSTER    "0123456789abcdef0123456789abcdef"
#define OTHER_CLUSTER "fedcba9876543210fedcba9876543210"
#define MAX_ENTRIES   8

/* A deterministic generator (xorshift64*), so that a failure can be replayed. */
static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t rng(void)
{
	return xorshift64s(&rng_state);
}

/* A copy of exactly len bytes, so that ASan sees any read past them. */
static uint8_t *exact_copy(const uint8_t *buf, size_t len)
{
	uint8_t *p = malloc(len ? len : 1);

	assert_non_null(p);
	if (len)
		memcpy(p, buf, len);
	return p;
}

static const uint8_t op_bytes[] = "an encoded op, opaque here";
static const uint8_t chunk_bytes[] = "some snapshot bytes";

static const struct kvfs_peer_entry sample_entries[3] = {
    {.epoch = 6, .index = 101, .data = (const uint8_t *)"first", .len = 5},
    {.epoch = 7, .index = 102, .data = NULL, .len = 0},
    {.epoch = 7, .index = 103, .data = (const uint8_t *)"third entry", .len = 11},
};

/*
 * One sample of every type, encoded: *len bytes in a fresh buffer. The samples set every field
 * to something distinctive.
 */
static uint8_t *encode_sample(unsigned type, size_t *len)
{
	uint8_t *buf = malloc(512);
	size_t n = 0;

	assert_non_null(buf);
	switch (type) {
	case KVFS_MSG_HELLO: {
		struct kvfs_peer_hello m = {.version = KVFS_PEER_PROTOCOL_VERSION,
		                            .node_id = 3,
		                            .epoch = 0x1122334455667788};

		strcpy(m.cluster_id, MY_CLUSTER);
		n = peer_msg_hello_size(&m);
		assert_int_equal(peer_msg_hello_encode(&m, buf), n);
		break;
	}
	case KVFS_MSG_NEW_EPOCH: {
		struct kvfs_peer_new_epoch m = {.epoch = 42};

		n = peer_msg_new_epoch_encode(&m, buf);
		assert_int_equal(n, KVFS_PEER_NEW_EPOCH_SIZE);
		break;
	}
	case KVFS_MSG_EPOCH_ACK: {
		struct kvfs_peer_epoch_ack m = {.epoch = 42,
		                                .last_epoch = 41,
		                                .last_index = 1ull << 40,
		                                .ok = true,
		                                .cfg_index = 1ull << 39,
		                                .voters = {0x0e},
		                                .members = {0x0e, [31] = 0x80}};

		n = peer_msg_epoch_ack_encode(&m, buf);
		assert_int_equal(n, KVFS_PEER_EPOCH_ACK_SIZE);
		break;
	}
	case KVFS_MSG_APPEND: {
		struct kvfs_peer_append m = {.epoch = 7,
		                             .prev_epoch = 5,
		                             .prev_index = 100,
		                             .commit_index = 99,
		                             .n_entries = 3,
		                             .entries = sample_entries};

		n = peer_msg_append_size(&m);
		assert_int_equal(peer_msg_append_encode(&m, buf), n);
		break;
	}
	case KVFS_MSG_APPEND_ACK: {
		struct kvfs_peer_append_ack m = {
		    .epoch = 7, .ok = true, .match_index = 103, .hint_index = 250};

		n = peer_msg_append_ack_encode(&m, buf);
		assert_int_equal(n, KVFS_PEER_APPEND_ACK_SIZE);
		break;
	}
	case KVFS_MSG_FORWARD: {
		struct kvfs_peer_forward m = {
		    .origin = 2, .seq = 77, .op = op_bytes, .op_len = sizeof(op_bytes)};

		n = peer_msg_forward_size(&m);
		assert_int_equal(peer_msg_forward_encode(&m, buf), n);
		break;
	}
	case KVFS_MSG_FORWARD_REPLY: {
		struct kvfs_peer_forward_reply m = {
		    .origin = 2, .seq = 77, .err = -EEXIST, .ino = 9};

		n = peer_msg_forward_reply_encode(&m, buf);
		assert_int_equal(n, KVFS_PEER_FORWARD_REPLY_SIZE);
		break;
	}
	case KVFS_MSG_READ_INDEX: {
		struct kvfs_peer_read_index m = {.id = 0xabcdef};

		n = peer_msg_read_index_encode(&m, buf);
		assert_int_equal(n, KVFS_PEER_READ_INDEX_SIZE);
		break;
	}
	case KVFS_MSG_READ_INDEX_REPLY: {
		struct kvfs_peer_read_index_reply m = {
		    .id = 0xabcdef, .epoch = 7, .commit_index = 103, .ok = true};

		n = peer_msg_read_index_reply_encode(&m, buf);
		assert_int_equal(n, KVFS_PEER_READ_INDEX_REPLY_SIZE);
		break;
	}
	case KVFS_MSG_SNAPSHOT_CHUNK: {
		struct kvfs_peer_snapshot_chunk m = {.epoch = 7,
		                                     .snap_index = 90,
		                                     .snap_epoch = 6,
		                                     .offset = 1000,
		                                     .total = 1000 + sizeof(chunk_bytes),
		                                     .last = true,
		                                     .data = chunk_bytes,
		                                     .len = sizeof(chunk_bytes)};

		n = peer_msg_snapshot_chunk_size(&m);
		assert_int_equal(peer_msg_snapshot_chunk_encode(&m, buf), n);
		break;
	}
	case KVFS_MSG_SNAPSHOT_ACK: {
		struct kvfs_peer_snapshot_ack m = {
		    .epoch = 7, .snap_index = 90, .offset = 4096, .ok = true};

		n = peer_msg_snapshot_ack_encode(&m, buf);
		assert_int_equal(n, KVFS_PEER_SNAPSHOT_ACK_SIZE);
		break;
	}
	case KVFS_MSG_SNAPSHOT_PULL: {
		struct kvfs_peer_snapshot_pull m = {.epoch = 9};

		n = peer_msg_snapshot_pull_encode(&m, buf);
		assert_int_equal(n, KVFS_PEER_SNAPSHOT_PULL_SIZE);
		break;
	}
	case KVFS_MSG_RTT_PING:
	case KVFS_MSG_RTT_PONG: {
		struct kvfs_peer_rtt m = {.nonce = 0x1122334455667788ull, .sent_us = 123456789};

		n = peer_msg_rtt_encode(&m, buf);
		assert_int_equal(n, KVFS_PEER_RTT_SIZE);
		break;
	}
	case KVFS_MSG_PEER_STATUS: {
		struct kvfs_peer_status m = {.epoch = 8, .commit_index = 120, .count = 3};

		for (uint32_t i = 0; i < 3; i++)
			m.peers[i] = (struct kvfs_peer_status_entry){i + 1, 117 + i, 10 * i};
		n = peer_msg_status_size(&m);
		assert_int_equal(peer_msg_status_encode(&m, buf), n);
		break;
	}
	case KVFS_MSG_FETCH: {
		struct kvfs_peer_fetch m = {.epoch = 8, .from_index = 101};

		n = peer_msg_fetch_encode(&m, buf);
		assert_int_equal(n, KVFS_PEER_FETCH_SIZE);
		break;
	}
	case KVFS_MSG_FETCH_REPLY: {
		struct kvfs_peer_fetch_reply m = {.epoch = 8,
		                                  .ok = true,
		                                  .from_index = 101,
		                                  .n_entries = 3,
		                                  .entries = sample_entries};

		n = peer_msg_fetch_reply_size(&m);
		assert_int_equal(peer_msg_fetch_reply_encode(&m, buf), n);
		break;
	}
	default:
		fail();
	}
	assert_true(n <= 512);
	*len = n;
	return buf;
}

/*
 * Runs the decoder of type over buf and, if it accepts, re-encodes what it decoded into out
 * (*out_len bytes). Returns the decoder's verdict.
 */
static int decode_reencode(unsigned type, const uint8_t *buf, size_t len, uint8_t *out,
                           size_t *out_len)
{
	int rv = -EINVAL;

	*out_len = 0;
	switch (type) {
	case KVFS_MSG_HELLO: {
		struct kvfs_peer_hello m;

		if ((rv = peer_msg_hello_decode(&m, buf, len)) == 0)
			*out_len = peer_msg_hello_encode(&m, out);
		break;
	}
	case KVFS_MSG_NEW_EPOCH: {
		struct kvfs_peer_new_epoch m;

		if ((rv = peer_msg_new_epoch_decode(&m, buf, len)) == 0)
			*out_len = peer_msg_new_epoch_encode(&m, out);
		break;
	}
	case KVFS_MSG_EPOCH_ACK: {
		struct kvfs_peer_epoch_ack m;

		if ((rv = peer_msg_epoch_ack_decode(&m, buf, len)) == 0)
			*out_len = peer_msg_epoch_ack_encode(&m, out);
		break;
	}
	case KVFS_MSG_APPEND: {
		struct kvfs_peer_append m;
		struct kvfs_peer_entry e[MAX_ENTRIES];
		uint32_t count = 0;
		int crv = peer_msg_append_count(buf, len, &count);

		rv = peer_msg_append_decode(&m, e, MAX_ENTRIES, buf, len);
		/* The count agrees with the decoder about what is well formed. */
		assert_int_equal(crv, rv == -EBADMSG ? -EBADMSG : 0);
		if (rv != -EBADMSG)
			assert_int_equal(count, m.n_entries);
		if (rv == 0)
			*out_len = peer_msg_append_encode(&m, out);
		break;
	}
	case KVFS_MSG_APPEND_ACK: {
		struct kvfs_peer_append_ack m;

		if ((rv = peer_msg_append_ack_decode(&m, buf, len)) == 0)
			*out_len = peer_msg_append_ack_encode(&m, out);
		break;
	}
	case KVFS_MSG_FORWARD: {
		struct kvfs_peer_forward m;

		if ((rv = peer_msg_forward_decode(&m, buf, len)) == 0)
			*out_len = peer_msg_forward_encode(&m, out);
		break;
	}
	case KVFS_MSG_FORWARD_REPLY: {
		struct kvfs_peer_forward_reply m;

		if ((rv = peer_msg_forward_reply_decode(&m, buf, len)) == 0)
			*out_len = peer_msg_forward_reply_encode(&m, out);
		break;
	}
	case KVFS_MSG_READ_INDEX: {
		struct kvfs_peer_read_index m;

		if ((rv = peer_msg_read_index_decode(&m, buf, len)) == 0)
			*out_len = peer_msg_read_index_encode(&m, out);
		break;
	}
	case KVFS_MSG_READ_INDEX_REPLY: {
		struct kvfs_peer_read_index_reply m;

		if ((rv = peer_msg_read_index_reply_decode(&m, buf, len)) == 0)
			*out_len = peer_msg_read_index_reply_encode(&m, out);
		break;
	}
	case KVFS_MSG_SNAPSHOT_CHUNK: {
		struct kvfs_peer_snapshot_chunk m;

		if ((rv = peer_msg_snapshot_chunk_decode(&m, buf, len)) == 0)
			*out_len = peer_msg_snapshot_chunk_encode(&m, out);
		break;
	}
	case KVFS_MSG_SNAPSHOT_ACK: {
		struct kvfs_peer_snapshot_ack m;

		if ((rv = peer_msg_snapshot_ack_decode(&m, buf, len)) == 0)
			*out_len = peer_msg_snapshot_ack_encode(&m, out);
		break;
	}
	case KVFS_MSG_SNAPSHOT_PULL: {
		struct kvfs_peer_snapshot_pull m;

		if ((rv = peer_msg_snapshot_pull_decode(&m, buf, len)) == 0)
			*out_len = peer_msg_snapshot_pull_encode(&m, out);
		break;
	}
	case KVFS_MSG_RTT_PING:
	case KVFS_MSG_RTT_PONG: {
		struct kvfs_peer_rtt m;

		if ((rv = peer_msg_rtt_decode(&m, buf, len)) == 0)
			*out_len = peer_msg_rtt_encode(&m, out);
		break;
	}
	case KVFS_MSG_PEER_STATUS: {
		struct kvfs_peer_status m;

		if ((rv = peer_msg_status_decode(&m, buf, len)) == 0)
			*out_len = peer_msg_status_encode(&m, out);
		break;
	}
	case KVFS_MSG_FETCH: {
		struct kvfs_peer_fetch m;

		if ((rv = peer_msg_fetch_decode(&m, buf, len)) == 0)
			*out_len = peer_msg_fetch_encode(&m, out);
		break;
	}
	case KVFS_MSG_FETCH_REPLY: {
		struct kvfs_peer_fetch_reply m;
		struct kvfs_peer_entry e[MAX_ENTRIES];
		uint32_t count = 0;
		int crv = peer_msg_fetch_reply_count(buf, len, &count);

		rv = peer_msg_fetch_reply_decode(&m, e, MAX_ENTRIES, buf, len);
		assert_int_equal(crv, rv == -EBADMSG ? -EBADMSG : 0);
		if (rv != -EBADMSG)
			assert_int_equal(count, m.n_entries);
		if (rv == 0)
			*out_len = peer_msg_fetch_reply_encode(&m, out);
		break;
	}
	default:
		fail();
	}
	return rv;
}

/* Every type: decode, re-encode, same bytes. */
static void test_roundtrip_bytes(void **state)
{
	for (unsigned t = 1; t < KVFS_MSG__COUNT; t++) {
		size_t len, out_len;
		uint8_t *buf = encode_sample(t, &len), *p = exact_copy(buf, len);
		uint8_t out[512];

		assert_int_equal(decode_reencode(t, p, len, out, &out_len), 0);
		assert_int_equal(out_len, len);
		assert_memory_equal(out, buf, len);
		free(p);
		free(buf);
	}
}

/* Every type: the decoded fields are the sample's. */
static void test_roundtrip_fields(void **state)
{
	size_t len;
	uint8_t *buf;

	{
		struct kvfs_peer_hello m;

		buf = encode_sample(KVFS_MSG_HELLO, &len);
		assert_int_equal(peer_msg_hello_decode(&m, buf, len), 0);
		assert_int_equal(m.version, KVFS_PEER_PROTOCOL_VERSION);
		assert_string_equal(m.cluster_id, MY_CLUSTER);
		assert_int_equal(m.node_id, 3);
		assert_int_equal(m.epoch, 0x1122334455667788);
		free(buf);
	}
	{
		struct kvfs_peer_new_epoch m;

		buf = encode_sample(KVFS_MSG_NEW_EPOCH, &len);
		assert_int_equal(peer_msg_new_epoch_decode(&m, buf, len), 0);
		assert_int_equal(m.epoch, 42);
		free(buf);
	}
	{
		struct kvfs_peer_epoch_ack m;

		buf = encode_sample(KVFS_MSG_EPOCH_ACK, &len);
		assert_int_equal(peer_msg_epoch_ack_decode(&m, buf, len), 0);
		assert_int_equal(m.epoch, 42);
		assert_int_equal(m.last_epoch, 41);
		assert_int_equal(m.last_index, 1ull << 40);
		assert_true(m.ok);
		/* protocol 3: the configuration at the log's end (voters 1-3, observer 255) */
		assert_int_equal(m.cfg_index, 1ull << 39);
		assert_int_equal(m.voters[0], 0x0e);
		assert_int_equal(m.members[0], 0x0e);
		assert_int_equal(m.members[31], 0x80);
		free(buf);
	}
	{
		struct kvfs_peer_append m;
		struct kvfs_peer_entry e[MAX_ENTRIES];

		buf = encode_sample(KVFS_MSG_APPEND, &len);
		assert_int_equal(peer_msg_append_decode(&m, e, MAX_ENTRIES, buf, len), 0);
		assert_int_equal(m.epoch, 7);
		assert_int_equal(m.prev_epoch, 5);
		assert_int_equal(m.prev_index, 100);
		assert_int_equal(m.commit_index, 99);
		assert_int_equal(m.n_entries, 3);
		assert_ptr_equal(m.entries, e);
		for (int i = 0; i < 3; i++) {
			assert_int_equal(e[i].epoch, sample_entries[i].epoch);
			assert_int_equal(e[i].index, sample_entries[i].index);
			assert_int_equal(e[i].len, sample_entries[i].len);
			if (e[i].len) {
				assert_memory_equal(e[i].data, sample_entries[i].data, e[i].len);
				/* borrowed from the payload */
				assert_true(e[i].data > buf && e[i].data + e[i].len <= buf + len);
			} else {
				assert_null(e[i].data);
			}
		}
		free(buf);
	}
	{
		struct kvfs_peer_append_ack m;

		buf = encode_sample(KVFS_MSG_APPEND_ACK, &len);
		assert_int_equal(peer_msg_append_ack_decode(&m, buf, len), 0);
		assert_int_equal(m.epoch, 7);
		assert_true(m.ok);
		assert_int_equal(m.match_index, 103);
		assert_int_equal(m.hint_index, 250);
		free(buf);
	}
	{
		struct kvfs_peer_forward m;

		buf = encode_sample(KVFS_MSG_FORWARD, &len);
		assert_int_equal(peer_msg_forward_decode(&m, buf, len), 0);
		assert_int_equal(m.origin, 2);
		assert_int_equal(m.seq, 77);
		assert_int_equal(m.op_len, sizeof(op_bytes));
		assert_memory_equal(m.op, op_bytes, sizeof(op_bytes));
		assert_true(m.op > buf && m.op + m.op_len == buf + len);
		free(buf);
	}
	{
		struct kvfs_peer_forward_reply m;

		buf = encode_sample(KVFS_MSG_FORWARD_REPLY, &len);
		assert_int_equal(peer_msg_forward_reply_decode(&m, buf, len), 0);
		assert_int_equal(m.origin, 2);
		assert_int_equal(m.seq, 77);
		assert_int_equal(m.err, -EEXIST);
		assert_int_equal(m.ino, 9);
		free(buf);
	}
	{
		struct kvfs_peer_read_index m;
		struct kvfs_peer_read_index_reply mr;

		buf = encode_sample(KVFS_MSG_READ_INDEX, &len);
		assert_int_equal(peer_msg_read_index_decode(&m, buf, len), 0);
		assert_int_equal(m.id, 0xabcdef);
		free(buf);
		buf = encode_sample(KVFS_MSG_READ_INDEX_REPLY, &len);
		assert_int_equal(peer_msg_read_index_reply_decode(&mr, buf, len), 0);
		assert_int_equal(mr.id, 0xabcdef);
		assert_int_equal(mr.epoch, 7);
		assert_int_equal(mr.commit_index, 103);
		assert_true(mr.ok);
		free(buf);
	}
	{
		struct kvfs_peer_snapshot_chunk m;
		struct kvfs_peer_snapshot_ack ma;

		buf = encode_sample(KVFS_MSG_SNAPSHOT_CHUNK, &len);
		assert_int_equal(peer_msg_snapshot_chunk_decode(&m, buf, len), 0);
		assert_int_equal(m.epoch, 7);
		assert_int_equal(m.snap_index, 90);
		assert_int_equal(m.snap_epoch, 6);
		assert_int_equal(m.offset, 1000);
		assert_int_equal(m.total, 1000 + sizeof(chunk_bytes));
		assert_true(m.last);
		assert_int_equal(m.len, sizeof(chunk_bytes));
		assert_memory_equal(m.data, chunk_bytes, sizeof(chunk_bytes));
		free(buf);
		buf = encode_sample(KVFS_MSG_SNAPSHOT_ACK, &len);
		assert_int_equal(peer_msg_snapshot_ack_decode(&ma, buf, len), 0);
		assert_int_equal(ma.epoch, 7);
		assert_int_equal(ma.snap_index, 90);
		assert_int_equal(ma.offset, 4096);
		assert_true(ma.ok);
		free(buf);
	}
	{
		struct kvfs_peer_fetch m;

		buf = encode_sample(KVFS_MSG_FETCH, &len);
		assert_int_equal(peer_msg_fetch_decode(&m, buf, len), 0);
		assert_int_equal(m.epoch, 8);
		assert_int_equal(m.from_index, 101);
		free(buf);
	}
	{
		struct kvfs_peer_fetch_reply m;
		struct kvfs_peer_entry e[MAX_ENTRIES];

		buf = encode_sample(KVFS_MSG_FETCH_REPLY, &len);
		assert_int_equal(peer_msg_fetch_reply_decode(&m, e, MAX_ENTRIES, buf, len), 0);
		assert_int_equal(m.epoch, 8);
		assert_true(m.ok);
		assert_int_equal(m.from_index, 101);
		assert_int_equal(m.n_entries, 3);
		assert_ptr_equal(m.entries, e);
		for (int i = 0; i < 3; i++) {
			assert_int_equal(e[i].epoch, sample_entries[i].epoch);
			assert_int_equal(e[i].index, sample_entries[i].index);
			assert_int_equal(e[i].len, sample_entries[i].len);
			if (e[i].len) {
				assert_memory_equal(e[i].data, sample_entries[i].data, e[i].len);
				assert_true(e[i].data > buf && e[i].data + e[i].len <= buf + len);
			} else {
				assert_null(e[i].data);
			}
		}
		free(buf);
	}
}

static void test_every_truncation_rejected(void **state)
{
	for (unsigned t = 1; t < KVFS_MSG__COUNT; t++) {
		size_t len, out_len;
		uint8_t *buf = encode_sample(t, &len);
		uint8_t out[512];

		for (size_t cut = 0; cut < len; cut++) {
			uint8_t *p = exact_copy(buf, cut);

			assert_int_equal(decode_reencode(t, p, cut, out, &out_len), -EBADMSG);
			free(p);
		}
		assert_int_equal(decode_reencode(t, NULL, 0, out, &out_len), -EBADMSG);
		free(buf);
	}
}

static void test_trailing_bytes_rejected(void **state)
{
	for (unsigned t = 1; t < KVFS_MSG__COUNT; t++) {
		size_t len, out_len;
		uint8_t *buf = encode_sample(t, &len);
		uint8_t out[512];

		for (size_t extra = 1; extra <= 8; extra++) {
			uint8_t *p = malloc(len + extra);

			assert_non_null(p);
			memcpy(p, buf, len);
			memset(p + len, 0, extra);
			assert_int_equal(decode_reencode(t, p, len + extra, out, &out_len),
			                 -EBADMSG);
			free(p);
		}
		free(buf);
	}
}

static struct kvfs_peer_hello hello(const char *cluster, uint32_t node)
{
	struct kvfs_peer_hello h = {.version = KVFS_PEER_PROTOCOL_VERSION, .node_id = node};

	strcpy(h.cluster_id, cluster);
	return h;
}

static void test_hello_check(void **state)
{
	struct kvfs_peer_hello h = hello(OTHER_CLUSTER, 4);
	char err[512] = "";

	assert_int_equal(peer_msg_hello_check(&h, MY_CLUSTER, 5, err, sizeof(err)), -EPERM);
	assert_non_null(strstr(err, "node 4"));
	assert_non_null(strstr(err, OTHER_CLUSTER));
	assert_non_null(strstr(err, MY_CLUSTER));
	/* The peer's cluster is named first: "belongs to <theirs>, not <mine>". */
	assert_true(strstr(err, OTHER_CLUSTER) < strstr(err, MY_CLUSTER));

	h = hello(MY_CLUSTER, 0);
	assert_int_equal(peer_msg_hello_check(&h, MY_CLUSTER, 3, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "node 0"));
	h = hello(MY_CLUSTER, 4);
	assert_int_equal(peer_msg_hello_check(&h, MY_CLUSTER, 3, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "1..3"));

	/* Protocol 4 (issue 13: new operation types) refuses protocols 1 and 2, whose nodes
	 * would count other majorities, 3, whose nodes could not decode the new operations, and
	 * any later one. */
	assert_int_equal(KVFS_PEER_PROTOCOL_VERSION, 4);
	h = hello(MY_CLUSTER, 3);
	h.version = 1;
	assert_int_equal(peer_msg_hello_check(&h, MY_CLUSTER, 3, err, sizeof(err)), -EPROTO);
	assert_non_null(strstr(err, "node 3 speaks peer protocol 1, this node 4"));
	assert_non_null(strstr(err, "run the same kvfs version on every node"));
	h.version = 2;
	assert_int_equal(peer_msg_hello_check(&h, MY_CLUSTER, 3, err, sizeof(err)), -EPROTO);
	assert_non_null(strstr(err, "node 3 speaks peer protocol 2, this node 4"));
	h.version = 3;
	assert_int_equal(peer_msg_hello_check(&h, MY_CLUSTER, 3, err, sizeof(err)), -EPROTO);
	assert_non_null(strstr(err, "protocol 3"));
	h.version = 5;
	assert_int_equal(peer_msg_hello_check(&h, MY_CLUSTER, 3, err, sizeof(err)), -EPROTO);
	assert_non_null(strstr(err, "protocol 5"));
	h.version = 0;
	assert_int_equal(peer_msg_hello_check(&h, MY_CLUSTER, 3, err, sizeof(err)), -EPROTO);

	h = hello(MY_CLUSTER, 3);
	err[0] = '\0';
	assert_int_equal(peer_msg_hello_check(&h, MY_CLUSTER, 3, err, sizeof(err)), 0);
	assert_string_equal(err, "");
	h = hello(MY_CLUSTER, 1);
	assert_int_equal(peer_msg_hello_check(&h, MY_CLUSTER, 1, NULL, 0), 0);

	/* Without room for a message the verdict stands. */
	h = hello(OTHER_CLUSTER, 2);
	assert_int_equal(peer_msg_hello_check(&h, MY_CLUSTER, 3, NULL, 0), -EPERM);
	assert_int_equal(peer_msg_hello_check(&h, MY_CLUSTER, 3, err, 4), -EPERM);
	assert_int_equal(strlen(err), 3);
}

/* Through the wire: a stranger's HELLO decodes, then is refused. */
static void test_hello_from_another_cluster_on_the_wire(void **state)
{
	struct kvfs_peer_hello h = hello(OTHER_CLUSTER, 2), got;
	uint8_t buf[128];
	size_t n = peer_msg_hello_encode(&h, buf);
	char err[512];

	assert_int_equal(peer_msg_hello_decode(&got, buf, n), 0);
	assert_int_equal(peer_msg_hello_check(&got, MY_CLUSTER, 3, err, sizeof(err)), -EPERM);
	assert_non_null(strstr(err, OTHER_CLUSTER));
	assert_non_null(strstr(err, MY_CLUSTER));
}

static void test_hello_cluster_id_checked(void **state)
{
	static const char *const bad[] = {"xyz", "ab\n", "ab cd", "ab/cd", "\x01", "\xc3\xa9"};
	struct kvfs_peer_hello h = hello("ab", 1), got;
	uint8_t buf[128];
	size_t n;

	/* 64 hex characters, upper or lower case, pass. */
	memset(h.cluster_id, 'A', KVFS_PEER_CLUSTER_ID_MAX);
	h.cluster_id[KVFS_PEER_CLUSTER_ID_MAX] = '\0';
	h.cluster_id[0] = 'f';
	n = peer_msg_hello_encode(&h, buf);
	assert_int_equal(peer_msg_hello_decode(&got, buf, n), 0);
	assert_string_equal(got.cluster_id, h.cluster_id);

	/* A length byte over 64 is refused, even with the bytes there. */
	buf[1] = KVFS_PEER_CLUSTER_ID_MAX + 1;
	assert_int_equal(peer_msg_hello_decode(&got, buf, n + 1), -EBADMSG);
	buf[1] = 0xff;
	assert_int_equal(peer_msg_hello_decode(&got, buf, n), -EBADMSG);

	/* An empty id is refused. */
	h.cluster_id[0] = '\0';
	n = peer_msg_hello_encode(&h, buf);
	assert_int_equal(peer_msg_hello_decode(&got, buf, n), -EBADMSG);

	/* So is anything but hex: it would end up in log lines. */
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		h = hello(bad[i], 1);
		n = peer_msg_hello_encode(&h, buf);
		assert_int_equal(peer_msg_hello_decode(&got, buf, n), -EBADMSG);
	}
}

/* An APPEND with the given entries (after prev 100 of epoch 5, at epoch 7), decoded. */
static int append_with(const struct kvfs_peer_entry *e, uint32_t n, uint64_t prev_index)
{
	struct kvfs_peer_append m = {.epoch = 7,
	                             .prev_epoch = 5,
	                             .prev_index = prev_index,
	                             .commit_index = 1,
	                             .n_entries = n,
	                             .entries = e},
	                        got;
	struct kvfs_peer_entry out[MAX_ENTRIES];
	size_t len = peer_msg_append_size(&m);
	uint8_t *buf = malloc(len);
	uint32_t count;
	int rv;

	assert_non_null(buf);
	assert_int_equal(peer_msg_append_encode(&m, buf), len);
	rv = peer_msg_append_decode(&got, out, MAX_ENTRIES, buf, len);
	assert_int_equal(peer_msg_append_count(buf, len, &count), rv == -EBADMSG ? -EBADMSG : 0);
	free(buf);
	return rv;
}

static void test_append_indices_checked(void **state)
{
	struct kvfs_peer_entry e[3];

	memcpy(e, sample_entries, sizeof(e));
	assert_int_equal(append_with(e, 3, 100), 0);
	/* a gap */
	e[2].index = 104;
	assert_int_equal(append_with(e, 3, 100), -EBADMSG);
	/* a repeat */
	e[2].index = 102;
	assert_int_equal(append_with(e, 3, 100), -EBADMSG);
	/* going back */
	e[2].index = 101;
	assert_int_equal(append_with(e, 3, 100), -EBADMSG);
	/* not starting at prev_index + 1 */
	memcpy(e, sample_entries, sizeof(e));
	assert_int_equal(append_with(e, 3, 99), -EBADMSG);
	assert_int_equal(append_with(e, 3, 101), -EBADMSG);
	/* epochs going down, below prev_epoch, above the leader's */
	e[2].epoch = 6;
	assert_int_equal(append_with(e, 3, 100), -EBADMSG);
	memcpy(e, sample_entries, sizeof(e));
	e[0].epoch = 4;
	assert_int_equal(append_with(e, 3, 100), -EBADMSG);
	memcpy(e, sample_entries, sizeof(e));
	e[2].epoch = 8;
	assert_int_equal(append_with(e, 3, 100), -EBADMSG);
	/* no entries: a heartbeat */
	assert_int_equal(append_with(e, 0, 100), 0);
	/* indices that would wrap */
	e[0].index = 0;
	assert_int_equal(append_with(e, 1, UINT64_MAX), -EBADMSG);
	e[0].index = UINT64_MAX;
	assert_int_equal(append_with(e, 1, UINT64_MAX - 1), 0);
}

/* More entries than the array holds: -E2BIG and the count, then a second pass that fits. */
static void test_append_two_passes(void **state)
{
	struct kvfs_peer_entry big[MAX_ENTRIES + 3], out[MAX_ENTRIES];
	struct kvfs_peer_append m = {.epoch = 9,
	                             .prev_epoch = 9,
	                             .prev_index = 10,
	                             .n_entries = MAX_ENTRIES + 3,
	                             .entries = big},
	                        got;
	uint8_t buf[1024];
	size_t len;
	uint32_t count = 0;

	for (uint32_t i = 0; i < MAX_ENTRIES + 3; i++)
		big[i] = (struct kvfs_peer_entry){
		    .epoch = 9, .index = 11 + i, .data = (const uint8_t *)"xy", .len = 2};
	len = peer_msg_append_encode(&m, buf);
	assert_int_equal(len, peer_msg_append_size(&m));
	assert_int_equal(peer_msg_append_decode(&got, out, MAX_ENTRIES, buf, len), -E2BIG);
	assert_int_equal(got.n_entries, MAX_ENTRIES + 3);

	assert_int_equal(peer_msg_append_count(buf, len, &count), 0);
	assert_int_equal(count, MAX_ENTRIES + 3);
	{
		struct kvfs_peer_entry *all = calloc(count, sizeof(*all));

		assert_non_null(all);
		assert_int_equal(peer_msg_append_decode(&got, all, count, buf, len), 0);
		for (uint32_t i = 0; i < count; i++)
			assert_int_equal(all[i].index, 11 + i);
		free(all);
	}
}

/* A count the payload's bytes cannot hold is refused before anything trusts it. */
static void test_append_count_lie(void **state)
{
	size_t len;
	uint8_t *buf = encode_sample(KVFS_MSG_APPEND, &len);
	uint32_t count = 12345;
	static const uint32_t lies[] = {0xffffffffu, 0x10000000u, 4, 2};

	for (size_t i = 0; i < sizeof(lies) / sizeof(lies[0]); i++) {
		buf[32] = (uint8_t)lies[i];
		buf[33] = (uint8_t)(lies[i] >> 8);
		buf[34] = (uint8_t)(lies[i] >> 16);
		buf[35] = (uint8_t)(lies[i] >> 24);
		assert_int_equal(peer_msg_append_count(buf, len, &count), -EBADMSG);
		assert_int_equal(count, 12345);
	}
	free(buf);
}

/* A FETCH_REPLY (epoch 7, ok unless told) with the given entries from from_index, decoded. */
static int fetch_reply_with(const struct kvfs_peer_entry *e, uint32_t n, uint64_t from_index,
                            bool ok)
{
	struct kvfs_peer_fetch_reply m = {.epoch = 7,
	                                  .ok = ok,
	                                  .from_index = from_index,
	                                  .n_entries = n,
	                                  .entries = e},
	                             got;
	struct kvfs_peer_entry out[MAX_ENTRIES];
	size_t len = peer_msg_fetch_reply_size(&m);
	uint8_t *buf = malloc(len);
	uint32_t count;
	int rv;

	assert_non_null(buf);
	assert_int_equal(peer_msg_fetch_reply_encode(&m, buf), len);
	rv = peer_msg_fetch_reply_decode(&got, out, MAX_ENTRIES, buf, len);
	assert_int_equal(peer_msg_fetch_reply_count(buf, len, &count),
	                 rv == -EBADMSG ? -EBADMSG : 0);
	free(buf);
	return rv;
}

static void test_fetch_reply_indices_checked(void **state)
{
	struct kvfs_peer_entry e[3];

	memcpy(e, sample_entries, sizeof(e));
	assert_int_equal(fetch_reply_with(e, 3, 101, true), 0);
	/* a gap, a repeat, going back */
	e[2].index = 104;
	assert_int_equal(fetch_reply_with(e, 3, 101, true), -EBADMSG);
	e[2].index = 102;
	assert_int_equal(fetch_reply_with(e, 3, 101, true), -EBADMSG);
	e[2].index = 101;
	assert_int_equal(fetch_reply_with(e, 3, 101, true), -EBADMSG);
	/* not starting at from_index */
	memcpy(e, sample_entries, sizeof(e));
	assert_int_equal(fetch_reply_with(e, 3, 100, true), -EBADMSG);
	assert_int_equal(fetch_reply_with(e, 3, 102, true), -EBADMSG);
	/* epochs going down, above the sender's */
	e[2].epoch = 6;
	e[1].epoch = 7;
	assert_int_equal(fetch_reply_with(e, 3, 101, true), -EBADMSG);
	memcpy(e, sample_entries, sizeof(e));
	e[2].epoch = 8;
	assert_int_equal(fetch_reply_with(e, 3, 101, true), -EBADMSG);
	/* any epoch from 0 up is fine: there is no prev to bound it */
	memcpy(e, sample_entries, sizeof(e));
	e[0].epoch = 0;
	assert_int_equal(fetch_reply_with(e, 3, 101, true), 0);
	/* nothing to give, or a refusal: no entries, any from_index */
	assert_int_equal(fetch_reply_with(e, 0, 101, true), 0);
	assert_int_equal(fetch_reply_with(e, 0, 0, false), 0);
	assert_int_equal(fetch_reply_with(e, 0, UINT64_MAX, true), 0);
	/* a refusal carrying entries */
	memcpy(e, sample_entries, sizeof(e));
	assert_int_equal(fetch_reply_with(e, 3, 101, false), -EBADMSG);
	/* index 0 holds no entry */
	e[0].index = 0;
	assert_int_equal(fetch_reply_with(e, 1, 0, true), -EBADMSG);
	/* indices that would wrap */
	e[0].index = UINT64_MAX;
	e[1].index = 0;
	assert_int_equal(fetch_reply_with(e, 2, UINT64_MAX, true), -EBADMSG);
	assert_int_equal(fetch_reply_with(e, 1, UINT64_MAX, true), 0);
}

/* As for APPEND: -E2BIG with the count, then a second pass that fits. */
static void test_fetch_reply_two_passes(void **state)
{
	struct kvfs_peer_entry big[MAX_ENTRIES + 3], out[MAX_ENTRIES];
	struct kvfs_peer_fetch_reply m = {.epoch = 9,
	                                  .ok = true,
	                                  .from_index = 11,
	                                  .n_entries = MAX_ENTRIES + 3,
	                                  .entries = big},
	                             got;
	uint8_t buf[1024];
	size_t len;
	uint32_t count = 0;

	for (uint32_t i = 0; i < MAX_ENTRIES + 3; i++)
		big[i] = (struct kvfs_peer_entry){
		    .epoch = 1 + i / 4, .index = 11 + i, .data = (const uint8_t *)"xy", .len = 2};
	len = peer_msg_fetch_reply_encode(&m, buf);
	assert_int_equal(len, peer_msg_fetch_reply_size(&m));
	assert_int_equal(peer_msg_fetch_reply_decode(&got, out, MAX_ENTRIES, buf, len), -E2BIG);
	assert_int_equal(got.n_entries, MAX_ENTRIES + 3);

	assert_int_equal(peer_msg_fetch_reply_count(buf, len, &count), 0);
	assert_int_equal(count, MAX_ENTRIES + 3);
	{
		struct kvfs_peer_entry *all = calloc(count, sizeof(*all));

		assert_non_null(all);
		assert_int_equal(peer_msg_fetch_reply_decode(&got, all, count, buf, len), 0);
		for (uint32_t i = 0; i < count; i++) {
			assert_int_equal(all[i].index, 11 + i);
			assert_int_equal(all[i].epoch, 1 + i / 4);
		}
		free(all);
	}
}

/* A FETCH_REPLY count the payload's bytes cannot hold is refused; so is a bad ok flag. */
static void test_fetch_reply_count_lie_and_flag(void **state)
{
	size_t len, out_len;
	uint8_t *buf = encode_sample(KVFS_MSG_FETCH_REPLY, &len);
	uint8_t out[512];
	uint32_t count = 12345;
	static const uint32_t lies[] = {0xffffffffu, 0x10000000u, 4, 2};

	for (size_t i = 0; i < sizeof(lies) / sizeof(lies[0]); i++) {
		buf[17] = (uint8_t)lies[i];
		buf[18] = (uint8_t)(lies[i] >> 8);
		buf[19] = (uint8_t)(lies[i] >> 16);
		buf[20] = (uint8_t)(lies[i] >> 24);
		assert_int_equal(peer_msg_fetch_reply_count(buf, len, &count), -EBADMSG);
		assert_int_equal(count, 12345);
	}
	free(buf);

	buf = encode_sample(KVFS_MSG_FETCH_REPLY, &len);
	buf[8] = 2;
	assert_int_equal(decode_reencode(KVFS_MSG_FETCH_REPLY, buf, len, out, &out_len), -EBADMSG);
	free(buf);
}

/* Flags are 0 or 1; an error is 0 or a negative errno; a chunk lies within its snapshot. */
static void test_values_checked(void **state)
{
	/* the last byte of READ_INDEX_REPLY and SNAPSHOT_ACK is their ok flag, EPOCH_ACK's 25th */
	static const unsigned flagged[] = {KVFS_MSG_EPOCH_ACK, KVFS_MSG_READ_INDEX_REPLY,
	                                   KVFS_MSG_SNAPSHOT_ACK};
	size_t len, out_len;
	uint8_t out[512], *buf;

	for (size_t i = 0; i < 3; i++) {
		size_t at;

		buf = encode_sample(flagged[i], &len);
		at = flagged[i] == KVFS_MSG_EPOCH_ACK ? 24 : len - 1;
		buf[at] = 2;
		assert_int_equal(decode_reencode(flagged[i], buf, len, out, &out_len), -EBADMSG);
		buf[at] = 0;
		assert_int_equal(decode_reencode(flagged[i], buf, len, out, &out_len), 0);
		free(buf);
	}
	buf = encode_sample(KVFS_MSG_APPEND_ACK, &len);
	buf[8] = 0xff;
	assert_int_equal(decode_reencode(KVFS_MSG_APPEND_ACK, buf, len, out, &out_len), -EBADMSG);
	free(buf);

	{
		struct kvfs_peer_forward_reply m = {.origin = 1, .seq = 1};
		struct kvfs_peer_forward_reply got;
		static const int32_t bad[] = {1, 4096, -4096, INT32_MIN, INT32_MAX};

		for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
			m.err = bad[i];
			len = peer_msg_forward_reply_encode(&m, out);
			assert_int_equal(peer_msg_forward_reply_decode(&got, out, len), -EBADMSG);
		}
		m.err = -4095;
		len = peer_msg_forward_reply_encode(&m, out);
		assert_int_equal(peer_msg_forward_reply_decode(&got, out, len), 0);
	}
	{
		struct kvfs_peer_snapshot_chunk m = {
		    .offset = 10, .total = 15, .last = true, .data = chunk_bytes, .len = 5};
		struct kvfs_peer_snapshot_chunk got;

		len = peer_msg_snapshot_chunk_encode(&m, out);
		assert_int_equal(peer_msg_snapshot_chunk_decode(&got, out, len), 0);
		m.last = false; /* but it reaches the end */
		len = peer_msg_snapshot_chunk_encode(&m, out);
		assert_int_equal(peer_msg_snapshot_chunk_decode(&got, out, len), -EBADMSG);
		m.total = 16; /* now it does not: last must be false */
		len = peer_msg_snapshot_chunk_encode(&m, out);
		assert_int_equal(peer_msg_snapshot_chunk_decode(&got, out, len), 0);
		m.last = true;
		len = peer_msg_snapshot_chunk_encode(&m, out);
		assert_int_equal(peer_msg_snapshot_chunk_decode(&got, out, len), -EBADMSG);
		m.total = 14; /* past the end */
		len = peer_msg_snapshot_chunk_encode(&m, out);
		assert_int_equal(peer_msg_snapshot_chunk_decode(&got, out, len), -EBADMSG);
		m.offset = UINT64_MAX - 2; /* offset + len would wrap */
		m.total = UINT64_MAX;
		len = peer_msg_snapshot_chunk_encode(&m, out);
		assert_int_equal(peer_msg_snapshot_chunk_decode(&got, out, len), -EBADMSG);
		/* an empty snapshot is one empty last chunk */
		m = (struct kvfs_peer_snapshot_chunk){.last = true};
		len = peer_msg_snapshot_chunk_encode(&m, out);
		assert_int_equal(peer_msg_snapshot_chunk_decode(&got, out, len), 0);
		assert_null(got.data);
	}
}

/*
 * 100k payloads, random or mutations of valid messages, through every decoder: no crash, no read
 * outside the buffer, and anything accepted re-encodes to the very same bytes.
 */
static void test_fuzz_every_decoder(void **state)
{
	uint8_t *samples[KVFS_MSG__COUNT] = {NULL};
	size_t sample_len[KVFS_MSG__COUNT] = {0};
	uint8_t tmp[600], out[1024];
	unsigned accepted = 0;

	for (unsigned t = 1; t < KVFS_MSG__COUNT; t++)
		samples[t] = encode_sample(t, &sample_len[t]);

	for (int iter = 0; iter < 100000; iter++) {
		size_t len;

		if (iter % 2) {
			len = (size_t)(rng() % 120);
			for (size_t i = 0; i < len; i++)
				tmp[i] = (uint8_t)rng();
		} else {
			/* a valid message of some type with a few bytes changed, cut or grown */
			unsigned s = 1 + (unsigned)(rng() % (KVFS_MSG__COUNT - 1));
			int flips = 1 + (int)(rng() % 3);

			len = sample_len[s];
			memcpy(tmp, samples[s], len);
			for (int f = 0; f < flips; f++) {
				size_t at = (size_t)(rng() % len);

				if (rng() % 4)
					tmp[at] ^= (uint8_t)(1u << (rng() % 8));
				else
					tmp[at] = (uint8_t)rng();
			}
			if (rng() % 4 == 0)
				len = (size_t)(rng() % (len + 1));
			else if (rng() % 8 == 0)
				len += rng() % 4;
		}
		{
			uint8_t *p = exact_copy(tmp, len);

			for (unsigned t = 1; t < KVFS_MSG__COUNT; t++) {
				size_t out_len;
				int rv = decode_reencode(t, p, len, out, &out_len);

				if (rv == 0) {
					accepted++;
					assert_int_equal(out_len, len);
					assert_memory_equal(out, p, len);
				} else {
					assert_true(rv == -EBADMSG ||
					            (rv == -E2BIG && (t == KVFS_MSG_APPEND ||
					                              t == KVFS_MSG_FETCH_REPLY)));
				}
			}
			free(p);
		}
	}
	/* The mutations reach past the first checks. */
	assert_true(accepted > 1000);
	for (unsigned t = 1; t < KVFS_MSG__COUNT; t++)
		free(samples[t]);
}

static void test_type_names(void **state)
{
	static const char *const names[] = {
	    "unknown",        "hello",        "new_epoch",     "epoch_ack",   "append",
	    "append_ack",     "forward",      "forward_reply", "read_index",  "read_index_reply",
	    "snapshot_chunk", "snapshot_ack", "fetch",         "fetch_reply", "peer_status",
	    "snapshot_pull",  "rtt_ping",     "rtt_pong",
	};

	assert_int_equal(sizeof(names) / sizeof(names[0]), KVFS_MSG__COUNT);
	for (unsigned t = 0; t < KVFS_MSG__COUNT; t++)
		assert_string_equal(peer_msg_type_name(t), names[t]);
	assert_string_equal(peer_msg_type_name(KVFS_MSG__COUNT), "unknown");
	assert_string_equal(peer_msg_type_name(255), "unknown");
	assert_string_equal(peer_msg_type_name(~0u), "unknown");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_roundtrip_bytes),
	    cmocka_unit_test(test_roundtrip_fields),
	    cmocka_unit_test(test_every_truncation_rejected),
	    cmocka_unit_test(test_trailing_bytes_rejected),
	    cmocka_unit_test(test_hello_check),
	    cmocka_unit_test(test_hello_from_another_cluster_on_the_wire),
	    cmocka_unit_test(test_hello_cluster_id_checked),
	    cmocka_unit_test(test_append_indices_checked),
	    cmocka_unit_test(test_append_two_passes),
	    cmocka_unit_test(test_append_count_lie),
	    cmocka_unit_test(test_fetch_reply_indices_checked),
	    cmocka_unit_test(test_fetch_reply_two_passes),
	    cmocka_unit_test(test_fetch_reply_count_lie_and_flag),
	    cmocka_unit_test(test_values_checked),
	    cmocka_unit_test(test_fuzz_every_decoder),
	    cmocka_unit_test(test_type_names),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
