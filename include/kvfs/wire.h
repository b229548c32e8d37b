/*
 * Little-endian byte cursors shared by the codecs (op.c, peer_msg.c): a write cursor for buffers
 * the caller has sized, and a read cursor that fails (ok = false) instead of reading past the
 * end, so a decoder checks every length before it trusts it and tests `ok` once at the end.
 * Header-only: the functions are tiny and sit on every encode and decode.
 */
#ifndef KVFS_WIRE_H
#define KVFS_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* A write cursor; the caller has sized the buffer. */
struct kvfs_wcur {
	uint8_t *p;
};

/* A read cursor over `left` bytes at p; ok turns false at the first read past the end. */
struct kvfs_rcur {
	const uint8_t *p;
	size_t left;
	bool ok;
};

static inline void wire_put_u8(struct kvfs_wcur *w, uint8_t v)
{
	*w->p++ = v;
}

static inline void wire_put_u32(struct kvfs_wcur *w, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		*w->p++ = (uint8_t)(v >> (8 * i));
}

static inline void wire_put_u64(struct kvfs_wcur *w, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		*w->p++ = (uint8_t)(v >> (8 * i));
}

/* A u32 length, then the bytes (which may be NULL when len is 0). */
static inline void wire_put_bytes(struct kvfs_wcur *w, const void *b, uint32_t len)
{
	wire_put_u32(w, len);
	if (len) {
		memcpy(w->p, b, len);
		w->p += len;
	}
}

/* The bytes written since start. */
static inline size_t wire_done(const struct kvfs_wcur *w, const uint8_t *start)
{
	return (size_t)(w->p - start);
}

/* True if n more bytes can be read; otherwise fails the cursor. */
static inline bool wire_take(struct kvfs_rcur *r, size_t n)
{
	if (!r->ok || r->left < n) {
		r->ok = false;
		return false;
	}
	return true;
}

static inline uint8_t wire_get_u8(struct kvfs_rcur *r)
{
	if (!wire_take(r, 1))
		return 0;
	r->left--;
	return *r->p++;
}

static inline uint32_t wire_get_u32(struct kvfs_rcur *r)
{
	uint32_t v = 0;

	if (!wire_take(r, 4))
		return 0;
	for (int i = 0; i < 4; i++)
		v |= (uint32_t)r->p[i] << (8 * i);
	r->p += 4;
	r->left -= 4;
	return v;
}

static inline uint64_t wire_get_u64(struct kvfs_rcur *r)
{
	uint64_t v = 0;

	if (!wire_take(r, 8))
		return 0;
	for (int i = 0; i < 8; i++)
		v |= (uint64_t)r->p[i] << (8 * i);
	r->p += 8;
	r->left -= 8;
	return v;
}

/* A flag byte: 0 or 1; anything else fails the cursor. */
static inline bool wire_get_flag(struct kvfs_rcur *r)
{
	uint8_t v = wire_get_u8(r);

	if (v > 1)
		r->ok = false;
	return v == 1;
}

/* n bytes, which *out then borrows (NULL when n is 0). */
static inline void wire_get_raw(struct kvfs_rcur *r, const uint8_t **out, size_t n)
{
	*out = NULL;
	if (!wire_take(r, n))
		return;
	if (n)
		*out = r->p;
	r->p += n;
	r->left -= n;
}

/* A u32 length of at most max, then that many bytes, which *out then borrows. */
static inline void wire_get_bytes(struct kvfs_rcur *r, const uint8_t **out, uint32_t *len,
                                  uint32_t max)
{
	uint32_t n = wire_get_u32(r);

	*out = NULL;
	*len = 0;
	if (!r->ok || n > max || n > r->left) {
		r->ok = false;
		return;
	}
	*out = n ? r->p : NULL;
	*len = n;
	r->p += n;
	r->left -= n;
}

#endif /* KVFS_WIRE_H */
