/*
 * The peer message codec (see kvfs/peer_msg.h for the layouts): one encoder and one decoder per
 * frame type, built from the same two cursors as the operation codec. The write cursor trusts the
 * caller to have sized the buffer; the read cursor fails instead of reading past the end, and a
 * decoder looks at it once, at the end, together with the trailing-bytes check. Beyond lengths,
 * decoders refuse what no correct sender writes (a flag that is not 0 or 1, a non-hex cluster id,
 * an APPEND or FETCH_REPLY whose indices do not follow on, a snapshot chunk past the file's end),
 * so that the replication logic only ever sees well-formed messages.
 */
#include "kvfs/peer_msg.h"

#include "kvfs/wire.h"

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#define HELLO_FIXED_SIZE   (1 + 1 + 4 + 8) /* everything but the cluster id */
#define FORWARD_FIXED_SIZE (4 + 8 + 4)     /* everything but the op */
#define ERRNO_MAX          4095            /* errno values are 1..4095 (Linux MAX_ERRNO) */

/* The decoder's verdict: every read stayed inside the buffer and consumed all of it. */
static int rcur_end(const struct kvfs_rcur *r)
{
	return r->ok && r->left == 0 ? 0 : -EBADMSG;
}

const char *peer_msg_type_name(unsigned type)
{
	static const char *const names[KVFS_MSG__COUNT] = {
	    [KVFS_MSG_HELLO] = "hello",
	    [KVFS_MSG_NEW_EPOCH] = "new_epoch",
	    [KVFS_MSG_EPOCH_ACK] = "epoch_ack",
	    [KVFS_MSG_APPEND] = "append",
	    [KVFS_MSG_APPEND_ACK] = "append_ack",
	    [KVFS_MSG_FORWARD] = "forward",
	    [KVFS_MSG_FORWARD_REPLY] = "forward_reply",
	    [KVFS_MSG_READ_INDEX] = "read_index",
	    [KVFS_MSG_READ_INDEX_REPLY] = "read_index_reply",
	    [KVFS_MSG_SNAPSHOT_CHUNK] = "snapshot_chunk",
	    [KVFS_MSG_SNAPSHOT_ACK] = "snapshot_ack",
	    [KVFS_MSG_FETCH] = "fetch",
	    [KVFS_MSG_FETCH_REPLY] = "fetch_reply",
	    [KVFS_MSG_PEER_STATUS] = "peer_status",
	    [KVFS_MSG_SNAPSHOT_PULL] = "snapshot_pull",
	    [KVFS_MSG_RTT_PING] = "rtt_ping",
	    [KVFS_MSG_RTT_PONG] = "rtt_pong",
	};

	if (type == KVFS_MSG_PING)
		return "ping";
	return type < KVFS_MSG__COUNT && names[type] ? names[type] : "unknown";
}

/* ---- HELLO ---- */

static size_t cluster_id_len(const struct kvfs_peer_hello *m)
{
	size_t n = strnlen(m->cluster_id, sizeof(m->cluster_id));

	/* the array holds a NUL-terminated string by contract */
	assert(n <= KVFS_PEER_CLUSTER_ID_MAX);
	return n;
}

size_t peer_msg_hello_size(const struct kvfs_peer_hello *m)
{
	return HELLO_FIXED_SIZE + cluster_id_len(m);
}

size_t peer_msg_hello_encode(const struct kvfs_peer_hello *m, uint8_t *buf)
{
	struct kvfs_wcur w = {buf};
	size_t n = cluster_id_len(m);

	wire_put_u8(&w, m->version);
	wire_put_u8(&w, (uint8_t)n);
	memcpy(w.p, m->cluster_id, n);
	w.p += n;
	wire_put_u32(&w, m->node_id);
	wire_put_u64(&w, m->epoch);
	return wire_done(&w, buf);
}

static bool is_hex(const uint8_t *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		uint8_t c = s[i];

		if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')))
			return false;
	}
	return true;
}

/* Copies the cluster id out (it is tiny) so that it is a C string; -EBADMSG if malformed. */
int peer_msg_hello_decode(struct kvfs_peer_hello *m, const uint8_t *buf, size_t len)
{
	struct kvfs_rcur r = {buf, len, true};
	const uint8_t *id;
	size_t n;

	memset(m, 0, sizeof(*m));
	m->version = wire_get_u8(&r);
	n = wire_get_u8(&r);
	if (n == 0 || n > KVFS_PEER_CLUSTER_ID_MAX)
		return -EBADMSG;
	wire_get_raw(&r, &id, n);
	if (!r.ok || !is_hex(id, n))
		return -EBADMSG;
	memcpy(m->cluster_id, id, n);
	m->cluster_id[n] = '\0';
	m->node_id = wire_get_u32(&r);
	m->epoch = wire_get_u64(&r);
	return rcur_end(&r);
}

/* Refuses another cluster, a node id outside the cluster, another protocol; see peer_msg.h. */
int peer_msg_hello_check(const struct kvfs_peer_hello *h, const char *my_cluster,
                         uint32_t cluster_size, char *err, size_t errlen)
{
	char dummy[1];

	if (err == NULL || errlen == 0) {
		err = dummy;
		errlen = sizeof(dummy);
	}
	if (strcmp(h->cluster_id, my_cluster) != 0) {
		snprintf(err, errlen,
		         "node %" PRIu32
		         " belongs to cluster %s, not %s (this node's); refusing it: do two "
		         "clusters share peer addresses, or is it started with another --zk or "
		         "--cluster?",
		         h->node_id, h->cluster_id, my_cluster);
		return -EPERM;
	}
	if (h->node_id == 0 || h->node_id > cluster_size) {
		snprintf(err, errlen,
		         "node %" PRIu32 " cannot be a member of cluster %s, whose node ids are "
		         "1..%" PRIu32 "; refusing it: check its --id",
		         h->node_id, my_cluster, cluster_size);
		return -EINVAL;
	}
	if (h->version != KVFS_PEER_PROTOCOL_VERSION) {
		snprintf(err, errlen,
		         "node %" PRIu32 " speaks peer protocol %u, this node %u; refusing it: run "
		         "the same kvfs version on every node",
		         h->node_id, (unsigned)h->version, KVFS_PEER_PROTOCOL_VERSION);
		return -EPROTO;
	}
	return 0;
}

/* ---- NEW_EPOCH, EPOCH_ACK ---- */

size_t peer_msg_new_epoch_encode(const struct kvfs_peer_new_epoch *m, uint8_t *buf)
{
	struct kvfs_wcur w = {buf};

	wire_put_u64(&w, m->epoch);
	return wire_done(&w, buf);
}

int peer_msg_new_epoch_decode(struct kvfs_peer_new_epoch *m, const uint8_t *buf, size_t len)
{
	struct kvfs_rcur r = {buf, len, true};

	m->epoch = wire_get_u64(&r);
	return rcur_end(&r);
}

size_t peer_msg_epoch_ack_encode(const struct kvfs_peer_epoch_ack *m, uint8_t *buf)
{
	struct kvfs_wcur w = {buf};

	wire_put_u64(&w, m->epoch);
	wire_put_u64(&w, m->last_epoch);
	wire_put_u64(&w, m->last_index);
	wire_put_u8(&w, m->ok);
	wire_put_u64(&w, m->cfg_index);
	memcpy(w.p, m->voters, sizeof(m->voters));
	w.p += sizeof(m->voters);
	memcpy(w.p, m->members, sizeof(m->members));
	w.p += sizeof(m->members);
	return wire_done(&w, buf);
}

int peer_msg_epoch_ack_decode(struct kvfs_peer_epoch_ack *m, const uint8_t *buf, size_t len)
{
	struct kvfs_rcur r = {buf, len, true};
	const uint8_t *b;

	memset(m, 0, sizeof(*m));
	m->epoch = wire_get_u64(&r);
	m->last_epoch = wire_get_u64(&r);
	m->last_index = wire_get_u64(&r);
	m->ok = wire_get_flag(&r);
	m->cfg_index = wire_get_u64(&r);
	wire_get_raw(&r, &b, sizeof(m->voters));
	if (b)
		memcpy(m->voters, b, sizeof(m->voters));
	wire_get_raw(&r, &b, sizeof(m->members));
	if (b)
		memcpy(m->members, b, sizeof(m->members));
	return rcur_end(&r);
}

/* ---- APPEND, APPEND_ACK ---- */

/* A u32 count, then the entries (shared by APPEND and FETCH_REPLY). */
static void put_entries(struct kvfs_wcur *w, const struct kvfs_peer_entry *e, uint32_t n)
{
	wire_put_u32(w, n);
	for (uint32_t i = 0; i < n; i++) {
		wire_put_u64(w, e[i].epoch);
		wire_put_u64(w, e[i].index);
		wire_put_bytes(w, e[i].data, e[i].len);
	}
}

static size_t entries_size(const struct kvfs_peer_entry *e, uint32_t n)
{
	size_t size = 0;

	for (uint32_t i = 0; i < n; i++)
		size += KVFS_PEER_ENTRY_HEADER_SIZE + e[i].len;
	return size;
}

/*
 * Reads a u32 count and that many entries, which must carry indices after + 1, after + 2 ... and
 * non-decreasing epochs within [min_epoch, max_epoch]; fills *n and the first max of entries
 * (which may be NULL when max is 0). Returns false, the cursor failed, if anything is off.
 */
static bool get_entries(struct kvfs_rcur *r, uint32_t *n, uint64_t after, uint64_t min_epoch,
                        uint64_t max_epoch, struct kvfs_peer_entry *entries, uint32_t max)
{
	uint64_t epoch = min_epoch;

	*n = wire_get_u32(r);
	/* Each entry takes at least its header: a count the bytes cannot hold is a lie. */
	if (!r->ok || *n > r->left / KVFS_PEER_ENTRY_HEADER_SIZE)
		goto err;
	/* after + n must not wrap */
	if (*n > UINT64_MAX - after)
		goto err;
	for (uint32_t i = 0; i < *n; i++) {
		struct kvfs_peer_entry e;

		e.epoch = wire_get_u64(r);
		e.index = wire_get_u64(r);
		wire_get_bytes(r, &e.data, &e.len, UINT32_MAX);
		if (!r->ok || e.index != after + 1 + i || e.epoch < epoch || e.epoch > max_epoch)
			goto err;
		epoch = e.epoch;
		if (i < max)
			entries[i] = e;
	}
	return true;

err:
	r->ok = false;
	return false;
}

size_t peer_msg_append_size(const struct kvfs_peer_append *m)
{
	return KVFS_PEER_APPEND_HEADER_SIZE + entries_size(m->entries, m->n_entries);
}

size_t peer_msg_append_encode(const struct kvfs_peer_append *m, uint8_t *buf)
{
	struct kvfs_wcur w = {buf};

	wire_put_u64(&w, m->epoch);
	wire_put_u64(&w, m->prev_epoch);
	wire_put_u64(&w, m->prev_index);
	wire_put_u64(&w, m->commit_index);
	put_entries(&w, m->entries, m->n_entries);
	return wire_done(&w, buf);
}

/*
 * Walks a whole APPEND, filling *m and the first max entries of entries (which may be NULL when
 * max is 0). Returns 0, -EBADMSG or -E2BIG as peer_msg_append_decode().
 */
static int append_walk(struct kvfs_peer_append *m, struct kvfs_peer_entry *entries, uint32_t max,
                       const uint8_t *buf, size_t len)
{
	struct kvfs_rcur r = {buf, len, true};

	memset(m, 0, sizeof(*m));
	m->epoch = wire_get_u64(&r);
	m->prev_epoch = wire_get_u64(&r);
	m->prev_index = wire_get_u64(&r);
	m->commit_index = wire_get_u64(&r);
	if (!get_entries(&r, &m->n_entries, m->prev_index, m->prev_epoch, m->epoch, entries, max) ||
	    rcur_end(&r) < 0)
		return -EBADMSG;
	m->entries = entries;
	return m->n_entries > max ? -E2BIG : 0;
}

int peer_msg_append_count(const uint8_t *buf, size_t len, uint32_t *n)
{
	struct kvfs_peer_append m;
	int rv = append_walk(&m, NULL, 0, buf, len);

	if (rv == -EBADMSG)
		return rv;
	*n = m.n_entries;
	return 0;
}

int peer_msg_append_decode(struct kvfs_peer_append *m, struct kvfs_peer_entry *entries,
                           uint32_t max, const uint8_t *buf, size_t len)
{
	return append_walk(m, entries, max, buf, len);
}

size_t peer_msg_append_ack_encode(const struct kvfs_peer_append_ack *m, uint8_t *buf)
{
	struct kvfs_wcur w = {buf};

	wire_put_u64(&w, m->epoch);
	wire_put_u8(&w, m->ok);
	wire_put_u64(&w, m->match_index);
	wire_put_u64(&w, m->hint_index);
	return wire_done(&w, buf);
}

int peer_msg_append_ack_decode(struct kvfs_peer_append_ack *m, const uint8_t *buf, size_t len)
{
	struct kvfs_rcur r = {buf, len, true};

	m->epoch = wire_get_u64(&r);
	m->ok = wire_get_flag(&r);
	m->match_index = wire_get_u64(&r);
	m->hint_index = wire_get_u64(&r);
	return rcur_end(&r);
}

/* ---- FETCH, FETCH_REPLY ---- */

size_t peer_msg_fetch_encode(const struct kvfs_peer_fetch *m, uint8_t *buf)
{
	struct kvfs_wcur w = {buf};

	wire_put_u64(&w, m->epoch);
	wire_put_u64(&w, m->from_index);
	return wire_done(&w, buf);
}

int peer_msg_fetch_decode(struct kvfs_peer_fetch *m, const uint8_t *buf, size_t len)
{
	struct kvfs_rcur r = {buf, len, true};

	m->epoch = wire_get_u64(&r);
	m->from_index = wire_get_u64(&r);
	return rcur_end(&r);
}

size_t peer_msg_fetch_reply_size(const struct kvfs_peer_fetch_reply *m)
{
	return KVFS_PEER_FETCH_REPLY_HEADER_SIZE + entries_size(m->entries, m->n_entries);
}

size_t peer_msg_fetch_reply_encode(const struct kvfs_peer_fetch_reply *m, uint8_t *buf)
{
	struct kvfs_wcur w = {buf};

	wire_put_u64(&w, m->epoch);
	wire_put_u8(&w, m->ok);
	wire_put_u64(&w, m->from_index);
	put_entries(&w, m->entries, m->n_entries);
	return wire_done(&w, buf);
}

/* As append_walk(), for a FETCH_REPLY. */
static int fetch_reply_walk(struct kvfs_peer_fetch_reply *m, struct kvfs_peer_entry *entries,
                            uint32_t max, const uint8_t *buf, size_t len)
{
	struct kvfs_rcur r = {buf, len, true};

	memset(m, 0, sizeof(*m));
	m->epoch = wire_get_u64(&r);
	m->ok = wire_get_flag(&r);
	m->from_index = wire_get_u64(&r);
	/* Entries start at from_index; from_index 0 (after = UINT64_MAX) admits none. */
	if (!get_entries(&r, &m->n_entries, m->from_index - 1, 0, m->epoch, entries, max) ||
	    rcur_end(&r) < 0)
		return -EBADMSG;
	/* A refusal carries no entries. */
	if (m->n_entries && !m->ok)
		return -EBADMSG;
	m->entries = entries;
	return m->n_entries > max ? -E2BIG : 0;
}

int peer_msg_fetch_reply_count(const uint8_t *buf, size_t len, uint32_t *n)
{
	struct kvfs_peer_fetch_reply m;
	int rv = fetch_reply_walk(&m, NULL, 0, buf, len);

	if (rv == -EBADMSG)
		return rv;
	*n = m.n_entries;
	return 0;
}

int peer_msg_fetch_reply_decode(struct kvfs_peer_fetch_reply *m, struct kvfs_peer_entry *entries,
                                uint32_t max, const uint8_t *buf, size_t len)
{
	return fetch_reply_walk(m, entries, max, buf, len);
}

/* ---- FORWARD, FORWARD_REPLY ---- */

size_t peer_msg_forward_size(const struct kvfs_peer_forward *m)
{
	return FORWARD_FIXED_SIZE + (size_t)m->op_len;
}

size_t peer_msg_forward_encode(const struct kvfs_peer_forward *m, uint8_t *buf)
{
	struct kvfs_wcur w = {buf};

	wire_put_u32(&w, m->origin);
	wire_put_u64(&w, m->seq);
	wire_put_bytes(&w, m->op, m->op_len);
	return wire_done(&w, buf);
}

int peer_msg_forward_decode(struct kvfs_peer_forward *m, const uint8_t *buf, size_t len)
{
	struct kvfs_rcur r = {buf, len, true};

	m->origin = wire_get_u32(&r);
	m->seq = wire_get_u64(&r);
	wire_get_bytes(&r, &m->op, &m->op_len, UINT32_MAX);
	return rcur_end(&r);
}

size_t peer_msg_forward_reply_encode(const struct kvfs_peer_forward_reply *m, uint8_t *buf)
{
	struct kvfs_wcur w = {buf};

	wire_put_u32(&w, m->origin);
	wire_put_u64(&w, m->seq);
	wire_put_u32(&w, (uint32_t)m->err);
	wire_put_u64(&w, m->ino);
	return wire_done(&w, buf);
}

int peer_msg_forward_reply_decode(struct kvfs_peer_forward_reply *m, const uint8_t *buf, size_t len)
{
	struct kvfs_rcur r = {buf, len, true};

	m->origin = wire_get_u32(&r);
	m->seq = wire_get_u64(&r);
	m->err = (int32_t)wire_get_u32(&r);
	m->ino = wire_get_u64(&r);
	if (m->err > 0 || m->err < -ERRNO_MAX)
		return -EBADMSG;
	return rcur_end(&r);
}

/* ---- READ_INDEX, READ_INDEX_REPLY ---- */

size_t peer_msg_read_index_encode(const struct kvfs_peer_read_index *m, uint8_t *buf)
{
	struct kvfs_wcur w = {buf};

	wire_put_u64(&w, m->id);
	return wire_done(&w, buf);
}

int peer_msg_read_index_decode(struct kvfs_peer_read_index *m, const uint8_t *buf, size_t len)
{
	struct kvfs_rcur r = {buf, len, true};

	m->id = wire_get_u64(&r);
	return rcur_end(&r);
}

size_t peer_msg_read_index_reply_encode(const struct kvfs_peer_read_index_reply *m, uint8_t *buf)
{
	struct kvfs_wcur w = {buf};

	wire_put_u64(&w, m->id);
	wire_put_u64(&w, m->epoch);
	wire_put_u64(&w, m->commit_index);
	wire_put_u8(&w, m->ok);
	return wire_done(&w, buf);
}

int peer_msg_read_index_reply_decode(struct kvfs_peer_read_index_reply *m, const uint8_t *buf,
                                     size_t len)
{
	struct kvfs_rcur r = {buf, len, true};

	m->id = wire_get_u64(&r);
	m->epoch = wire_get_u64(&r);
	m->commit_index = wire_get_u64(&r);
	m->ok = wire_get_flag(&r);
	return rcur_end(&r);
}

/* ---- SNAPSHOT_CHUNK, SNAPSHOT_ACK ---- */

size_t peer_msg_snapshot_chunk_size(const struct kvfs_peer_snapshot_chunk *m)
{
	return KVFS_PEER_SNAPSHOT_CHUNK_HEADER_SIZE + (size_t)m->len;
}

size_t peer_msg_snapshot_chunk_encode(const struct kvfs_peer_snapshot_chunk *m, uint8_t *buf)
{
	struct kvfs_wcur w = {buf};

	wire_put_u64(&w, m->epoch);
	wire_put_u64(&w, m->snap_index);
	wire_put_u64(&w, m->snap_epoch);
	wire_put_u64(&w, m->offset);
	wire_put_u64(&w, m->total);
	wire_put_u8(&w, m->last);
	wire_put_bytes(&w, m->data, m->len);
	return wire_done(&w, buf);
}

int peer_msg_snapshot_chunk_decode(struct kvfs_peer_snapshot_chunk *m, const uint8_t *buf,
                                   size_t len)
{
	struct kvfs_rcur r = {buf, len, true};

	m->epoch = wire_get_u64(&r);
	m->snap_index = wire_get_u64(&r);
	m->snap_epoch = wire_get_u64(&r);
	m->offset = wire_get_u64(&r);
	m->total = wire_get_u64(&r);
	m->last = wire_get_flag(&r);
	wire_get_bytes(&r, &m->data, &m->len, UINT32_MAX);
	if (rcur_end(&r) < 0)
		return -EBADMSG;
	/* The chunk lies within the file, and last says whether it reaches the end. */
	if (m->offset > m->total || m->len > m->total - m->offset ||
	    m->last != (m->len == m->total - m->offset))
		return -EBADMSG;
	return 0;
}

size_t peer_msg_snapshot_ack_encode(const struct kvfs_peer_snapshot_ack *m, uint8_t *buf)
{
	struct kvfs_wcur w = {buf};

	wire_put_u64(&w, m->epoch);
	wire_put_u64(&w, m->snap_index);
	wire_put_u64(&w, m->offset);
	wire_put_u8(&w, m->ok);
	return wire_done(&w, buf);
}

int peer_msg_snapshot_ack_decode(struct kvfs_peer_snapshot_ack *m, const uint8_t *buf, size_t len)
{
	struct kvfs_rcur r = {buf, len, true};

	m->epoch = wire_get_u64(&r);
	m->snap_index = wire_get_u64(&r);
	m->offset = wire_get_u64(&r);
	m->ok = wire_get_flag(&r);
	return rcur_end(&r);
}

/* ---- PEER_STATUS ---- */

#define STATUS_HEADER 20u /* epoch, commit_index, count */
#define STATUS_ENTRY  20u /* id, match, lag_ms */

size_t peer_msg_status_size(const struct kvfs_peer_status *m)
{
	return STATUS_HEADER + (size_t)m->count * STATUS_ENTRY;
}

size_t peer_msg_status_encode(const struct kvfs_peer_status *m, uint8_t *buf)
{
	struct kvfs_wcur w = {buf};

	wire_put_u64(&w, m->epoch);
	wire_put_u64(&w, m->commit_index);
	wire_put_u32(&w, m->count);
	for (uint32_t i = 0; i < m->count && i < KVFS_PEER_STATUS_MAX; i++) {
		wire_put_u32(&w, m->peers[i].id);
		wire_put_u64(&w, m->peers[i].match);
		wire_put_u64(&w, m->peers[i].lag_ms);
	}
	return wire_done(&w, buf);
}

int peer_msg_status_decode(struct kvfs_peer_status *m, const uint8_t *buf, size_t len)
{
	struct kvfs_rcur r = {buf, len, true};

	m->epoch = wire_get_u64(&r);
	m->commit_index = wire_get_u64(&r);
	m->count = wire_get_u32(&r);
	if (!r.ok || m->count > KVFS_PEER_STATUS_MAX ||
	    len != STATUS_HEADER + (size_t)m->count * STATUS_ENTRY)
		return -EBADMSG;
	for (uint32_t i = 0; i < m->count; i++) {
		m->peers[i].id = wire_get_u32(&r);
		m->peers[i].match = wire_get_u64(&r);
		m->peers[i].lag_ms = wire_get_u64(&r);
	}
	return rcur_end(&r);
}

/* ---- SNAPSHOT_PULL ---- */

size_t peer_msg_snapshot_pull_encode(const struct kvfs_peer_snapshot_pull *m, uint8_t *buf)
{
	struct kvfs_wcur w = {buf};

	wire_put_u64(&w, m->epoch);
	return wire_done(&w, buf);
}

int peer_msg_snapshot_pull_decode(struct kvfs_peer_snapshot_pull *m, const uint8_t *buf,
                                  size_t len)
{
	struct kvfs_rcur r = {buf, len, true};

	m->epoch = wire_get_u64(&r);
	return rcur_end(&r);
}

/* ---- RTT_PING, RTT_PONG ---- */

size_t peer_msg_rtt_encode(const struct kvfs_peer_rtt *m, uint8_t *buf)
{
	struct kvfs_wcur w = {buf};

	wire_put_u64(&w, m->nonce);
	wire_put_u64(&w, m->sent_us);
	return wire_done(&w, buf);
}

int peer_msg_rtt_decode(struct kvfs_peer_rtt *m, const uint8_t *buf, size_t len)
{
	struct kvfs_rcur r = {buf, len, true};

	m->nonce = wire_get_u64(&r);
	m->sent_us = wire_get_u64(&r);
	return rcur_end(&r);
}
