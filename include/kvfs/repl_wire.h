/*
 * The replication core's messages on the wire: the mapping, field by field, between the core's
 * in-memory struct kvfs_repl_msg (repl.h) and the peer message payloads (peer_msg.h) that ride in
 * frames (frame.h). NEW_EPOCH, EPOCH_ACK, APPEND, APPEND_ACK, FETCH and FETCH_REPLY each travel
 * as the peer message of the same name; the other frame types (HELLO, FORWARD ...) are not the
 * core's and are refused here. Only the fields repl.h lists for a type travel; the others arrive
 * as 0 (the core puts a hint in a refused EPOCH_ACK or FETCH_REPLY, which nobody reads: it is
 * dropped). At most KVFS_REPL_BATCH entries travel in one message, as the core sends.
 *
 * Pure C: no libuv, no sockets, no allocation. The binding encodes inside io.send (the entries'
 * data live only until send returns) and decodes each frame just before repl_receive(), which
 * copies what it keeps.
 */
#ifndef KVFS_REPL_WIRE_H
#define KVFS_REPL_WIRE_H

#include <stddef.h>
#include <stdint.h>

struct kvfs_repl_msg;
struct kvfs_repl_entry;

/*
 * The payload bytes repl_wire_encode() writes for m; 0 if m's type is not a known one. For a
 * message the encoder refuses (-EINVAL), a value not to rely on.
 */
size_t repl_wire_size(const struct kvfs_repl_msg *m);

/*
 * Writes m's payload into buf (len bytes; repl_wire_size(m) suffice) and its frame type (enum
 * kvfs_peer_msg_type) into *type. Returns the payload's length; -EINVAL (buf and *type untouched)
 * for a message no peer would accept: an unknown type, more than KVFS_REPL_BATCH entries, entries
 * missing or not following on (indices from prev_index + 1 or from_index, epochs non-decreasing,
 * at least prev_epoch and at most epoch), a refused FETCH_REPLY carrying entries, values out
 * of range (a leader message or an entry of epoch 0, an index over KVFS_REPL_INDEX_MAX, an
 * EPOCH_ACK whose last_epoch is above its epoch or whose last_index and last_epoch are not both
 * 0 or both set); -EMSGSIZE if
 * the payload exceeds KVFS_FRAME_MAX_PAYLOAD; -ENOBUFS if len is too small.
 */
int repl_wire_encode(const struct kvfs_repl_msg *m, uint8_t *buf, size_t len, uint8_t *type);

/*
 * Decodes the payload of a frame of the given type into *m, the entries of an APPEND or
 * FETCH_REPLY into entries[0..max_entries) (which may be NULL when max_entries is 0); m->entries
 * then points to that array (NULL when there are none) and each entry's data into payload, which
 * must outlive them. Returns 0; -ENOPROTOOPT if type is not a replication message (*m untouched);
 * -EBADMSG if the payload is malformed (see peer_msg.h) or its values out of range (as
 * repl_wire_encode() refuses them; the connection is to be dropped); -E2BIG
 * if it is well formed but carries more than max_entries or KVFS_REPL_BATCH entries (m->n_entries
 * then says how many). On error *m and entries are otherwise unspecified.
 */
int repl_wire_decode(uint8_t type, const uint8_t *payload, uint32_t len, struct kvfs_repl_msg *m,
                     struct kvfs_repl_entry *entries, size_t max_entries);

#endif /* KVFS_REPL_WIRE_H */
