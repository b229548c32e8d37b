/*
 * The replication core's messages on the wire (see kvfs/repl_wire.h): a switch per direction that
 * copies fields between struct kvfs_repl_msg and the peer_msg structs, and lets peer_msg.c do the
 * bytes. Entries are converted through a stack array of KVFS_REPL_BATCH peer entries, which is
 * why no more than that travel in one message. The encoder checks what the decoder at the other
 * end will check, so that a bug here fails one send instead of dropping the connection.
 */
#include "kvfs/repl_wire.h"

#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include "kvfs/config.h"
#include "kvfs/frame.h"
#include "kvfs/peer_msg.h"
#include "kvfs/repl.h"

/* Payload bytes of m's entries, each laid out as a peer entry (none if they are missing). */
static size_t entries_size(const struct kvfs_repl_msg *m)
{
	size_t n = 0;

	if (!m->entries)
		return 0; /* the encoder refuses n_entries without entries */
	for (uint32_t i = 0; i < m->n_entries; i++)
		n += KVFS_PEER_ENTRY_HEADER_SIZE + m->entries[i].len;
	return n;
}

size_t repl_wire_size(const struct kvfs_repl_msg *m)
{
	switch (m->type) {
	case KVFS_REPL_NEW_EPOCH:
		return KVFS_PEER_NEW_EPOCH_SIZE;
	case KVFS_REPL_EPOCH_ACK:
		return KVFS_PEER_EPOCH_ACK_SIZE;
	case KVFS_REPL_APPEND:
		return KVFS_PEER_APPEND_HEADER_SIZE + entries_size(m);
	case KVFS_REPL_APPEND_ACK:
		return KVFS_PEER_APPEND_ACK_SIZE;
	case KVFS_REPL_FETCH:
		return KVFS_PEER_FETCH_SIZE;
	case KVFS_REPL_FETCH_REPLY:
		return KVFS_PEER_FETCH_REPLY_HEADER_SIZE + entries_size(m);
	}
	return 0;
}

/*
 * Copies m's entries into out[] as peer entries, checking them as the peer's decoder will: at
 * most KVFS_REPL_BATCH, indices after + 1, after + 2 ... without wrapping, epochs non-decreasing
 * within [min_epoch, m->epoch], data wherever len is not 0. Returns 0 or -EINVAL.
 */
static int entries_out(const struct kvfs_repl_msg *m, uint64_t after, uint64_t min_epoch,
                       struct kvfs_peer_entry *out)
{
	uint64_t epoch = min_epoch;

	if (m->n_entries > KVFS_REPL_BATCH || (m->n_entries && !m->entries) ||
	    m->n_entries > UINT64_MAX - after)
		return -EINVAL;
	for (uint32_t i = 0; i < m->n_entries; i++) {
		const struct kvfs_repl_entry *e = &m->entries[i];

		if (e->index != after + 1 + i || e->epoch < epoch || e->epoch > m->epoch ||
		    (e->len && !e->data))
			return -EINVAL;
		epoch = e->epoch;
		out[i] = (struct kvfs_peer_entry){.epoch = e->epoch,
		                                  .index = e->index,
		                                  .data = e->len ? e->data : NULL,
		                                  .len = e->len};
	}
	return 0;
}

/*
 * Values no correct replica sends, whatever the bytes' layout allows: a leader message of epoch
 * 0 (ZooKeeper's epochs start at 1), an entry of epoch 0, an index beyond KVFS_REPL_INDEX_MAX,
 * an EPOCH_ACK whose log ends in a later epoch than its own or names an index without an epoch
 * (or the reverse).
 */
static bool cfg_in_range(const struct kvfs_repl_msg *m)
{
	static const struct kvfs_config_bits none;
	struct kvfs_config c;

	/* A promise names the configuration of its log (a well-formed one, set at or before its
	 * end); a refusal carries none. */
	if (!m->ok)
		return m->cfg_index == 0 && memcmp(&m->cfg, &none, sizeof(none)) == 0;
	return m->cfg_index <= m->last_index && config_from_bits(&m->cfg, &c) == 0;
}

static bool in_range(const struct kvfs_repl_msg *m)
{
	const uint64_t max = KVFS_REPL_INDEX_MAX;

	if ((m->type == KVFS_REPL_NEW_EPOCH || m->type == KVFS_REPL_APPEND ||
	     m->type == KVFS_REPL_FETCH) &&
	    m->epoch == 0)
		return false;
	if (m->last_index > max || m->prev_index > max || m->commit > max || m->match_index > max ||
	    m->hint > max || m->from_index > max)
		return false;
	if (m->type == KVFS_REPL_EPOCH_ACK && m->ok &&
	    (m->last_epoch > m->epoch || (m->last_index == 0) != (m->last_epoch == 0)))
		return false;
	if (m->type == KVFS_REPL_EPOCH_ACK && !cfg_in_range(m))
		return false;
	for (uint32_t i = 0; m->entries && i < m->n_entries; i++)
		if (m->entries[i].epoch == 0 || m->entries[i].index > max)
			return false;
	return true;
}

int repl_wire_encode(const struct kvfs_repl_msg *m, uint8_t *buf, size_t len, uint8_t *type)
{
	struct kvfs_peer_entry entries[KVFS_REPL_BATCH];
	size_t size = repl_wire_size(m);
	size_t n;
	int rv;

	if (size == 0 || !in_range(m))
		return -EINVAL;
	/* The entries first: a malformed message is -EINVAL whatever the buffer. */
	if (m->type == KVFS_REPL_APPEND) {
		rv = entries_out(m, m->prev_index, m->prev_epoch, entries);
		if (rv < 0)
			return rv;
	} else if (m->type == KVFS_REPL_FETCH_REPLY) {
		/* from_index 0 (after UINT64_MAX) admits no entry; nor does a refusal */
		if (m->n_entries && !m->ok)
			return -EINVAL;
		rv = entries_out(m, m->from_index - 1, 0, entries);
		if (rv < 0)
			return rv;
	}
	if (size > KVFS_FRAME_MAX_PAYLOAD)
		return -EMSGSIZE;
	if (len < size)
		return -ENOBUFS;

	switch (m->type) {
	case KVFS_REPL_NEW_EPOCH: {
		struct kvfs_peer_new_epoch p = {.epoch = m->epoch};

		*type = KVFS_MSG_NEW_EPOCH;
		n = peer_msg_new_epoch_encode(&p, buf);
		break;
	}
	case KVFS_REPL_EPOCH_ACK: {
		struct kvfs_peer_epoch_ack p = {.epoch = m->epoch,
		                                .last_epoch = m->last_epoch,
		                                .last_index = m->last_index,
		                                .ok = m->ok != 0,
		                                .cfg_index = m->cfg_index};

		memcpy(p.voters, m->cfg.voters, sizeof(p.voters));
		memcpy(p.members, m->cfg.members, sizeof(p.members));
		*type = KVFS_MSG_EPOCH_ACK;
		n = peer_msg_epoch_ack_encode(&p, buf);
		break;
	}
	case KVFS_REPL_APPEND: {
		struct kvfs_peer_append p = {.epoch = m->epoch,
		                             .prev_epoch = m->prev_epoch,
		                             .prev_index = m->prev_index,
		                             .commit_index = m->commit,
		                             .n_entries = m->n_entries,
		                             .entries = entries};

		*type = KVFS_MSG_APPEND;
		n = peer_msg_append_encode(&p, buf);
		break;
	}
	case KVFS_REPL_APPEND_ACK: {
		struct kvfs_peer_append_ack p = {.epoch = m->epoch,
		                                 .ok = m->ok != 0,
		                                 .match_index = m->match_index,
		                                 .hint_index = m->hint};

		*type = KVFS_MSG_APPEND_ACK;
		n = peer_msg_append_ack_encode(&p, buf);
		break;
	}
	case KVFS_REPL_FETCH: {
		struct kvfs_peer_fetch p = {.epoch = m->epoch, .from_index = m->from_index};

		*type = KVFS_MSG_FETCH;
		n = peer_msg_fetch_encode(&p, buf);
		break;
	}
	case KVFS_REPL_FETCH_REPLY:
	default: {
		struct kvfs_peer_fetch_reply p = {.epoch = m->epoch,
		                                  .ok = m->ok != 0,
		                                  .from_index = m->from_index,
		                                  .n_entries = m->n_entries,
		                                  .entries = entries};

		/* repl_wire_size() returned 0 for any other type */
		*type = KVFS_MSG_FETCH_REPLY;
		n = peer_msg_fetch_reply_encode(&p, buf);
		break;
	}
	}
	return (int)n;
}

/*
 * Copies n decoded peer entries into the caller's array and points m at it. The data stay in the
 * payload.
 */
static void entries_in(struct kvfs_repl_msg *m, const struct kvfs_peer_entry *in, uint32_t n,
                       struct kvfs_repl_entry *entries)
{
	for (uint32_t i = 0; i < n; i++)
		entries[i] = (struct kvfs_repl_entry){.epoch = in[i].epoch,
		                                      .index = in[i].index,
		                                      .len = in[i].len,
		                                      .data = in[i].data};
	m->n_entries = n;
	m->entries = n ? entries : NULL;
}

/*
 * The common check of a message with entries, once peer_msg_*_count() has vouched for n (count_rv
 * 0): at most max_entries and KVFS_REPL_BATCH. Sets m->n_entries.
 */
static int entries_fit(struct kvfs_repl_msg *m, int count_rv, uint32_t n, size_t max_entries)
{
	if (count_rv < 0)
		return -EBADMSG;
	m->n_entries = n;
	return n > max_entries || n > KVFS_REPL_BATCH ? -E2BIG : 0;
}

static int decode_fields(uint8_t type, const uint8_t *payload, uint32_t len,
                         struct kvfs_repl_msg *m, struct kvfs_repl_entry *entries,
                         size_t max_entries);

int repl_wire_decode(uint8_t type, const uint8_t *payload, uint32_t len, struct kvfs_repl_msg *m,
                     struct kvfs_repl_entry *entries, size_t max_entries)
{
	int rv = decode_fields(type, payload, len, m, entries, max_entries);

	if (rv == 0 && !in_range(m))
		return -EBADMSG;
	return rv;
}

static int decode_fields(uint8_t type, const uint8_t *payload, uint32_t len,
                         struct kvfs_repl_msg *m, struct kvfs_repl_entry *entries,
                         size_t max_entries)
{
	struct kvfs_peer_entry in[KVFS_REPL_BATCH];
	uint32_t n = 0;
	int rv;

	switch (type) {
	case KVFS_MSG_NEW_EPOCH:
	case KVFS_MSG_EPOCH_ACK:
	case KVFS_MSG_APPEND:
	case KVFS_MSG_APPEND_ACK:
	case KVFS_MSG_FETCH:
	case KVFS_MSG_FETCH_REPLY:
		break;
	default:
		return -ENOPROTOOPT;
	}
	memset(m, 0, sizeof(*m));

	switch (type) {
	case KVFS_MSG_NEW_EPOCH: {
		struct kvfs_peer_new_epoch p;

		rv = peer_msg_new_epoch_decode(&p, payload, len);
		if (rv < 0)
			return rv;
		m->type = KVFS_REPL_NEW_EPOCH;
		m->epoch = p.epoch;
		return 0;
	}
	case KVFS_MSG_EPOCH_ACK: {
		struct kvfs_peer_epoch_ack p;

		rv = peer_msg_epoch_ack_decode(&p, payload, len);
		if (rv < 0)
			return rv;
		m->type = KVFS_REPL_EPOCH_ACK;
		m->epoch = p.epoch;
		m->ok = p.ok;
		m->last_epoch = p.last_epoch;
		m->last_index = p.last_index;
		m->cfg_index = p.cfg_index;
		memcpy(m->cfg.voters, p.voters, sizeof(p.voters));
		memcpy(m->cfg.members, p.members, sizeof(p.members));
		return 0;
	}
	case KVFS_MSG_APPEND: {
		struct kvfs_peer_append p;

		m->type = KVFS_REPL_APPEND;
		rv = peer_msg_append_count(payload, len, &n);
		rv = entries_fit(m, rv, n, max_entries);
		if (rv < 0)
			return rv;
		rv = peer_msg_append_decode(&p, in, KVFS_REPL_BATCH, payload, len);
		if (rv < 0)
			return rv; /* not after the count said yes */
		m->epoch = p.epoch;
		m->prev_epoch = p.prev_epoch;
		m->prev_index = p.prev_index;
		m->commit = p.commit_index;
		entries_in(m, in, p.n_entries, entries);
		return 0;
	}
	case KVFS_MSG_APPEND_ACK: {
		struct kvfs_peer_append_ack p;

		rv = peer_msg_append_ack_decode(&p, payload, len);
		if (rv < 0)
			return rv;
		m->type = KVFS_REPL_APPEND_ACK;
		m->epoch = p.epoch;
		m->ok = p.ok;
		m->match_index = p.match_index;
		m->hint = p.hint_index;
		return 0;
	}
	case KVFS_MSG_FETCH: {
		struct kvfs_peer_fetch p;

		rv = peer_msg_fetch_decode(&p, payload, len);
		if (rv < 0)
			return rv;
		m->type = KVFS_REPL_FETCH;
		m->epoch = p.epoch;
		m->from_index = p.from_index;
		return 0;
	}
	default: {
		struct kvfs_peer_fetch_reply p;

		/* FETCH_REPLY: the first switch let nothing else through */
		m->type = KVFS_REPL_FETCH_REPLY;
		rv = peer_msg_fetch_reply_count(payload, len, &n);
		rv = entries_fit(m, rv, n, max_entries);
		if (rv < 0)
			return rv;
		rv = peer_msg_fetch_reply_decode(&p, in, KVFS_REPL_BATCH, payload, len);
		if (rv < 0)
			return rv;
		m->epoch = p.epoch;
		m->ok = p.ok;
		m->from_index = p.from_index;
		entries_in(m, in, p.n_entries, entries);
		return 0;
	}
	}
}
