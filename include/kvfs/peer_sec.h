/*
 * Peer security (DESIGN §4): the mutual handshake that opens every peer connection, and the
 * sealed records that carry its frames afterwards. Pure: libsodium only (its X25519, BLAKE2b and
 * ChaCha20-Poly1305; no primitive of our own), no libuv, no sockets, no clock.
 *
 * Keys. The contents of each --secret-file are hashed into a 32-byte cluster key (BLAKE2b-256,
 * with a kvfs-specific personalisation). A node holds one, or two while the secret is rotated: it
 * dials with the first and accepts a peer that proves either.
 *
 * Handshake. The dialer is the initiator I, the other side the responder R. Both send message 1
 * at once; I sends message 2 once it has R's message 1; R answers message 3 once message 2 proved
 * I's knowledge of a key:
 *
 *   1. I -> R, R -> I   "KVFS-HS1" || an ephemeral X25519 public key          (40 bytes)
 *   2. I -> R          AEAD(k_auth_I, u32 id_I || u32 id_R, ad "kvfs-m2")   (24 bytes)
 *   3. R -> I          AEAD(k_auth_R, u32 id_R || u32 id_I, ad "kvfs-m3")   (24 bytes)
 *
 * where, for a cluster key K,
 *   prk = BLAKE2b-256(key K, "kvfs-peer-v1" || u8 n || cluster id (n bytes) || pk_I || pk_R ||
 *                     X25519(own secret key, peer's public key))
 *   k_auth_I, k_auth_R, k_I2R, k_R2I = crypto_kdf_derive_from_key(prk, 1..4, "kvfspeer")
 * and AEAD is ChaCha20-Poly1305 (IETF) with an all-zero nonce (each key seals one message).
 * R tries each of its keys on message 2 and answers with the one that opened it.
 *
 * What this gives: before the other side has proven itself, a side has sent only a fresh public
 * key; no id, no cluster id, no secret-dependent byte. Message 2 proves I, message 3 proves R; both
 * bind the cluster id, both ids and both fresh keys, so a message captured from another handshake
 * never opens (every derived key changes with the other side's fresh key). The ephemeral
 * Diffie-Hellman keeps recorded traffic secret even if the cluster secret leaks later.
 *
 * Records. After the handshake frames (frame.h, header included) travel in records, one or more
 * whole frames each (those queued together; a HELLO alone):
 *   u32 L (little-endian) || AEAD(k_dir, frames, ad = the 4 bytes of L)   (L = frames + 16)
 * with a 96-bit nonce holding a per-direction counter that starts at 0 and grows by one per
 * record: a record dropped, replayed, reordered or moved to the other direction does not open,
 * and the connection is closed.
 */
#ifndef KVFS_PEER_SEC_H
#define KVFS_PEER_SEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define KVFS_SEC_KEY_BYTES     32u
#define KVFS_SEC_MAX_KEYS      2u
#define KVFS_SEC_SECRET_MIN    32u /* bytes a --secret-file must hold */
#define KVFS_SEC_M1_BYTES      40u
#define KVFS_SEC_AUTH_BYTES    24u
#define KVFS_SEC_TAG_BYTES     16u
#define KVFS_SEC_LEN_BYTES     4u
#define KVFS_SEC_OVERHEAD      (KVFS_SEC_LEN_BYTES + KVFS_SEC_TAG_BYTES) /* per record */

/* The cluster keys a node holds: [0] dials, every one is accepted. */
struct kvfs_sec_keys {
	unsigned n;
	uint8_t key[KVFS_SEC_MAX_KEYS][KVFS_SEC_KEY_BYTES];
};

/* One direction of a connection after its handshake. */
struct kvfs_sec_dir {
	uint8_t key[KVFS_SEC_KEY_BYTES];
	uint64_t counter; /* the next record's */
};

enum kvfs_hs_state {
	KVFS_HS_WAIT_M1,   /* both: waiting for the peer's message 1 */
	KVFS_HS_WAIT_AUTH, /* I: waiting for message 3; R: waiting for message 2 */
	KVFS_HS_DONE,
	KVFS_HS_FAILED,
};

struct kvfs_handshake {
	const struct kvfs_sec_keys *keys;
	const char *cluster_id; /* borrowed; outlives the handshake */
	uint32_t size;          /* the peer's id must be in 1..size */
	uint32_t self;
	uint32_t peer; /* I: the node dialed; R: 0 until message 2 names it */
	bool initiator;
	enum kvfs_hs_state state;
	unsigned key_index; /* the key the peer proved (valid once DONE) */
	uint8_t sk[32], pk[32], peer_pk[32];
	uint8_t k_auth_i[KVFS_SEC_KEY_BYTES], k_auth_r[KVFS_SEC_KEY_BYTES];
	uint8_t in[KVFS_SEC_M1_BYTES]; /* the message being received */
	size_t have;
	uint8_t out[KVFS_SEC_M1_BYTES + KVFS_SEC_AUTH_BYTES]; /* to send, see hs_take_output */
	size_t out_len;
	struct kvfs_sec_dir tx, rx; /* valid once DONE */
};

/* libsodium's own initialisation. Returns 0, or -1 (then nothing here may be used). */
int sec_init(void);

/*
 * Adds the cluster key made from a secret's bytes (len >= KVFS_SEC_SECRET_MIN). Returns 0,
 * -EINVAL (too short) or -ENOSPC (already KVFS_SEC_MAX_KEYS).
 */
int sec_keys_add(struct kvfs_sec_keys *k, const uint8_t *secret, size_t len);

/* Wipes every key. */
void sec_keys_wipe(struct kvfs_sec_keys *k);

/*
 * Starts a handshake as initiator (peer: the id dialed) or responder (peer 0), and queues message
 * 1 as output. keys must hold at least one key. cluster_id is borrowed.
 */
void hs_start(struct kvfs_handshake *hs, const struct kvfs_sec_keys *keys, const char *cluster_id,
              uint32_t size, uint32_t self, uint32_t peer);

/*
 * Feeds bytes received from the peer. Sets *used to how many it took: the bytes after a finished
 * handshake are the peer's first record and belong to the caller. Returns 0 (more needed), 1 (the
 * handshake is done: hs->peer is proven, tx and rx are ready), or, the handshake having failed
 * for good (wiped):
 *   -EPROTO        message 1 is not a kvfs handshake (a stranger, another protocol)
 *   -EACCES        the peer did not prove it holds a cluster key of ours with this cluster id
 *                  (another secret, another cluster, a replay)
 *   -EBADMSG       a degenerate public key
 *   -ENXIO         the peer proved the key but names ids that do not fit (another id dialed,
 *                  our own id, out of range)
 * After each call the caller sends what hs_take_output() gives.
 */
int hs_feed(struct kvfs_handshake *hs, const uint8_t *data, size_t len, size_t *used);

/* Moves the bytes to send into buf (room for sizeof(hs->out)); returns how many (0: none). */
size_t hs_take_output(struct kvfs_handshake *hs, uint8_t *buf);

/* Wipes the handshake's secrets (the directions are copied out first by the caller). */
void hs_wipe(struct kvfs_handshake *hs);

/*
 * Whether the first len bytes a peer sent are the start of a message 1 ("KVFS-HS1"), as opposed
 * to a bare frame of frame.h, whose magic is the same first 4 bytes "KVFS": false with fewer
 * than 5 bytes. Lets a node without keys (--insecure) say why it refuses a node that has them.
 */
bool sec_looks_like_m1(const uint8_t *data, size_t len);

/*
 * Seals the record at rec in place: rec[4 .. 4 + len) holds the plaintext and rec has room for
 * KVFS_SEC_OVERHEAD + len bytes. Writes the length, encrypts, appends the tag and advances the
 * counter. Returns 0, or -EOVERFLOW when the direction's counter is used up (close then).
 */
int sec_seal(struct kvfs_sec_dir *d, uint8_t *rec, uint32_t len);

/*
 * Opens the record at rec (4 + L bytes, L >= KVFS_SEC_TAG_BYTES as its first 4 bytes say) in
 * place: the plaintext is left at rec + 4, L - 16 bytes. Returns 0 and advances the counter, or
 * -EBADMSG (forged, replayed, reordered or damaged) or -EOVERFLOW.
 */
int sec_open(struct kvfs_sec_dir *d, uint8_t *rec, uint32_t L);

#endif /* KVFS_PEER_SEC_H */
