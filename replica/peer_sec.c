/*
 * Peer security (see kvfs/peer_sec.h for the protocol): the handshake's state machine, key
 * derivation and the records' sealing, all on libsodium.
 */
#include "kvfs/peer_sec.h"

#include <errno.h>
#include <sodium.h>
#include <string.h>

static const uint8_t m1_magic[8] = {'K', 'V', 'F', 'S', '-', 'H', 'S', '1'};
static const char kdf_ctx[crypto_kdf_CONTEXTBYTES] = {'k', 'v', 'f', 's', 'p', 'e', 'e', 'r'};

_Static_assert(crypto_aead_chacha20poly1305_ietf_ABYTES == KVFS_SEC_TAG_BYTES, "tag size");
_Static_assert(crypto_aead_chacha20poly1305_ietf_KEYBYTES == KVFS_SEC_KEY_BYTES, "key size");
_Static_assert(crypto_kdf_KEYBYTES == KVFS_SEC_KEY_BYTES, "kdf key size");
_Static_assert(crypto_scalarmult_BYTES == 32 && crypto_scalarmult_SCALARBYTES == 32, "x25519");
_Static_assert(KVFS_SEC_AUTH_BYTES == 8 + KVFS_SEC_TAG_BYTES, "auth message size");

static void put_le32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get_le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

int sec_init(void)
{
	return sodium_init() < 0 ? -1 : 0;
}

int sec_keys_add(struct kvfs_sec_keys *k, const uint8_t *secret, size_t len)
{
	static const uint8_t personal[crypto_generichash_blake2b_PERSONALBYTES] = "kvfs-secret-v1";

	if (len < KVFS_SEC_SECRET_MIN)
		return -EINVAL;
	if (k->n >= KVFS_SEC_MAX_KEYS)
		return -ENOSPC;
	crypto_generichash_blake2b_salt_personal(k->key[k->n], KVFS_SEC_KEY_BYTES, secret, len,
	                                         NULL, 0, NULL, personal);
	k->n++;
	return 0;
}

void sec_keys_wipe(struct kvfs_sec_keys *k)
{
	sodium_memzero(k, sizeof(*k));
}

/* ---- the handshake ---- */

static void hs_fail(struct kvfs_handshake *hs)
{
	hs_wipe(hs);
	hs->state = KVFS_HS_FAILED;
}

void hs_wipe(struct kvfs_handshake *hs)
{
	sodium_memzero(hs->sk, sizeof(hs->sk));
	sodium_memzero(hs->k_auth_i, sizeof(hs->k_auth_i));
	sodium_memzero(hs->k_auth_r, sizeof(hs->k_auth_r));
	sodium_memzero(&hs->tx, sizeof(hs->tx));
	sodium_memzero(&hs->rx, sizeof(hs->rx));
}

void hs_start(struct kvfs_handshake *hs, const struct kvfs_sec_keys *keys, const char *cluster_id,
              uint32_t size, uint32_t self, uint32_t peer)
{
	memset(hs, 0, sizeof(*hs));
	hs->keys = keys;
	hs->cluster_id = cluster_id;
	hs->size = size;
	hs->self = self;
	hs->peer = peer;
	hs->initiator = peer != 0;
	hs->state = KVFS_HS_WAIT_M1;
	randombytes_buf(hs->sk, sizeof(hs->sk));
	crypto_scalarmult_base(hs->pk, hs->sk);
	memcpy(hs->out, m1_magic, sizeof(m1_magic));
	memcpy(hs->out + sizeof(m1_magic), hs->pk, sizeof(hs->pk));
	hs->out_len = KVFS_SEC_M1_BYTES;
}

size_t hs_take_output(struct kvfs_handshake *hs, uint8_t *buf)
{
	size_t n = hs->out_len;

	memcpy(buf, hs->out, n);
	hs->out_len = 0;
	return n;
}

/*
 * The four keys of this handshake under cluster key `key` (see peer_sec.h), into k_auth_i,
 * k_auth_r and (not yet the caller's) the two directions. Returns 0, or -EBADMSG if the peer's
 * public key is degenerate (a low-order point: the shared secret would be all zero).
 */
static int derive(struct kvfs_handshake *hs, const uint8_t *key)
{
	static const char label[] = "kvfs-peer-v1";
	const uint8_t *pk_i = hs->initiator ? hs->pk : hs->peer_pk;
	const uint8_t *pk_r = hs->initiator ? hs->peer_pk : hs->pk;
	size_t n = strlen(hs->cluster_id);
	uint8_t shared[32], prk[crypto_kdf_KEYBYTES], k_i2r[32], k_r2i[32], nb;
	crypto_generichash_state st;

	if (crypto_scalarmult(shared, hs->sk, hs->peer_pk) != 0)
		return -EBADMSG;
	nb = (uint8_t)(n > 255 ? 255 : n);
	crypto_generichash_init(&st, key, KVFS_SEC_KEY_BYTES, sizeof(prk));
	crypto_generichash_update(&st, (const uint8_t *)label, sizeof(label) - 1);
	crypto_generichash_update(&st, &nb, 1);
	crypto_generichash_update(&st, (const uint8_t *)hs->cluster_id, nb);
	crypto_generichash_update(&st, pk_i, 32);
	crypto_generichash_update(&st, pk_r, 32);
	crypto_generichash_update(&st, shared, sizeof(shared));
	crypto_generichash_final(&st, prk, sizeof(prk));
	crypto_kdf_derive_from_key(hs->k_auth_i, 32, 1, kdf_ctx, prk);
	crypto_kdf_derive_from_key(hs->k_auth_r, 32, 2, kdf_ctx, prk);
	crypto_kdf_derive_from_key(k_i2r, 32, 3, kdf_ctx, prk);
	crypto_kdf_derive_from_key(k_r2i, 32, 4, kdf_ctx, prk);
	memcpy(hs->tx.key, hs->initiator ? k_i2r : k_r2i, 32);
	memcpy(hs->rx.key, hs->initiator ? k_r2i : k_i2r, 32);
	hs->tx.counter = hs->rx.counter = 0;
	sodium_memzero(shared, sizeof(shared));
	sodium_memzero(prk, sizeof(prk));
	sodium_memzero(k_i2r, sizeof(k_i2r));
	sodium_memzero(k_r2i, sizeof(k_r2i));
	sodium_memzero(&st, sizeof(st));
	return 0;
}

static const uint8_t zero_nonce[crypto_aead_chacha20poly1305_ietf_NPUBBYTES];

/* Appends an authentication message (2 or 3) to the output: ids a, b sealed under key. */
static void put_auth(struct kvfs_handshake *hs, const uint8_t *key, const char *ad, uint32_t a,
                     uint32_t b)
{
	uint8_t pt[8];

	put_le32(pt, a);
	put_le32(pt + 4, b);
	crypto_aead_chacha20poly1305_ietf_encrypt(hs->out + hs->out_len, NULL, pt, sizeof(pt),
	                                          (const uint8_t *)ad, strlen(ad), NULL,
	                                          zero_nonce, key);
	hs->out_len += KVFS_SEC_AUTH_BYTES;
}

/* Opens an authentication message: 0 and the two ids, or -1. */
static int open_auth(const uint8_t *msg, const uint8_t *key, const char *ad, uint32_t *a,
                     uint32_t *b)
{
	uint8_t pt[8];

	if (crypto_aead_chacha20poly1305_ietf_decrypt(pt, NULL, NULL, msg, KVFS_SEC_AUTH_BYTES,
	                                              (const uint8_t *)ad, strlen(ad), zero_nonce,
	                                              key) != 0)
		return -1;
	*a = get_le32(pt);
	*b = get_le32(pt + 4);
	return 0;
}

/* The peer's message 1 is in. */
static int got_m1(struct kvfs_handshake *hs)
{
	if (memcmp(hs->in, m1_magic, sizeof(m1_magic)) != 0)
		return -EPROTO;
	memcpy(hs->peer_pk, hs->in + sizeof(m1_magic), 32);
	hs->state = KVFS_HS_WAIT_AUTH;
	if (!hs->initiator)
		return 0;
	/* The initiator proves itself first, with its first key. */
	hs->key_index = 0;
	if (derive(hs, hs->keys->key[0]) != 0)
		return -EBADMSG;
	put_auth(hs, hs->k_auth_i, "kvfs-m2", hs->self, hs->peer);
	return 0;
}

/* Responder: message 2 is in. */
static int got_m2(struct kvfs_handshake *hs)
{
	uint32_t id_i = 0, id_r = 0;
	unsigned k;
	int rv;

	for (k = 0; k < hs->keys->n; k++) {
		rv = derive(hs, hs->keys->key[k]);
		if (rv != 0)
			return rv;
		if (open_auth(hs->in, hs->k_auth_i, "kvfs-m2", &id_i, &id_r) == 0)
			break;
	}
	if (k == hs->keys->n)
		return -EACCES;
	hs->key_index = k;
	if (id_r != hs->self || id_i == 0 || id_i > hs->size || id_i == hs->self) {
		hs->peer = id_i;
		return -ENXIO;
	}
	hs->peer = id_i;
	put_auth(hs, hs->k_auth_r, "kvfs-m3", hs->self, id_i);
	return 1;
}

/* Initiator: message 3 is in. */
static int got_m3(struct kvfs_handshake *hs)
{
	uint32_t id_r, id_i;

	if (open_auth(hs->in, hs->k_auth_r, "kvfs-m3", &id_r, &id_i) != 0)
		return -EACCES;
	if (id_r != hs->peer || id_i != hs->self)
		return -ENXIO;
	return 1;
}

int hs_feed(struct kvfs_handshake *hs, const uint8_t *data, size_t len, size_t *used)
{
	size_t want, take;
	int rv = 0;

	*used = 0;
	if (hs->state == KVFS_HS_FAILED)
		return -EPROTO;
	while (rv == 0 && *used < len && hs->state != KVFS_HS_DONE) {
		want = hs->state == KVFS_HS_WAIT_M1 ? KVFS_SEC_M1_BYTES : KVFS_SEC_AUTH_BYTES;
		take = want - hs->have < len - *used ? want - hs->have : len - *used;
		memcpy(hs->in + hs->have, data + *used, take);
		hs->have += take;
		*used += take;
		/* A stranger is told apart at its first wrong byte, not after 40. */
		if (hs->state == KVFS_HS_WAIT_M1 &&
		    memcmp(hs->in, m1_magic,
		           hs->have < sizeof(m1_magic) ? hs->have : sizeof(m1_magic)) != 0)
			rv = -EPROTO;
		if (rv != 0 || hs->have < want)
			break;
		hs->have = 0;
		if (hs->state == KVFS_HS_WAIT_M1)
			rv = got_m1(hs);
		else
			rv = hs->initiator ? got_m3(hs) : got_m2(hs);
		if (rv == 1)
			hs->state = KVFS_HS_DONE;
	}
	if (rv < 0) {
		hs->out_len = 0;
		hs_fail(hs);
		return rv;
	}
	if (hs->state == KVFS_HS_DONE) {
		sodium_memzero(hs->sk, sizeof(hs->sk));
		sodium_memzero(hs->k_auth_i, sizeof(hs->k_auth_i));
		sodium_memzero(hs->k_auth_r, sizeof(hs->k_auth_r));
		return 1;
	}
	return 0;
}

bool sec_looks_like_m1(const uint8_t *data, size_t len)
{
	if (len > sizeof(m1_magic))
		len = sizeof(m1_magic);
	return len > 4 && memcmp(data, m1_magic, len) == 0;
}

/* ---- records ---- */

static void record_nonce(uint8_t nonce[crypto_aead_chacha20poly1305_ietf_NPUBBYTES], uint64_t n)
{
	memset(nonce, 0, crypto_aead_chacha20poly1305_ietf_NPUBBYTES);
	for (int i = 0; i < 8; i++)
		nonce[4 + i] = (uint8_t)(n >> (8 * i));
}

int sec_seal(struct kvfs_sec_dir *d, uint8_t *rec, uint32_t len)
{
	uint8_t nonce[crypto_aead_chacha20poly1305_ietf_NPUBBYTES];
	unsigned long long clen;

	if (d->counter == UINT64_MAX || len > UINT32_MAX - KVFS_SEC_TAG_BYTES)
		return -EOVERFLOW;
	put_le32(rec, len + KVFS_SEC_TAG_BYTES);
	record_nonce(nonce, d->counter);
	/* In place: libsodium allows the ciphertext to start where the message does. */
	crypto_aead_chacha20poly1305_ietf_encrypt(rec + KVFS_SEC_LEN_BYTES, &clen,
	                                          rec + KVFS_SEC_LEN_BYTES, len, rec,
	                                          KVFS_SEC_LEN_BYTES, NULL, nonce, d->key);
	d->counter++;
	return 0;
}

int sec_open(struct kvfs_sec_dir *d, uint8_t *rec, uint32_t L)
{
	uint8_t nonce[crypto_aead_chacha20poly1305_ietf_NPUBBYTES];

	if (d->counter == UINT64_MAX)
		return -EOVERFLOW;
	if (L < KVFS_SEC_TAG_BYTES || get_le32(rec) != L)
		return -EBADMSG;
	record_nonce(nonce, d->counter);
	if (crypto_aead_chacha20poly1305_ietf_decrypt(rec + KVFS_SEC_LEN_BYTES, NULL, NULL,
	                                              rec + KVFS_SEC_LEN_BYTES, L, rec,
	                                              KVFS_SEC_LEN_BYTES, nonce, d->key) != 0)
		return -EBADMSG;
	d->counter++;
	return 0;
}
