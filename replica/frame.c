/*
 * Peer frames (see kvfs/frame.h for the layout): the encoder, which seals a header over a
 * payload, and the streaming reader, which cuts frames out of whatever chunks the socket hands
 * over. The reader keeps the fed bytes in one buffer, [start, end) still unconsumed. It grows the
 * buffer only to hold bytes that were actually fed (doubling, so a large frame arriving in small
 * chunks costs amortised O(1) per byte, but not past the end of a frame whose header is in),
 * slides the unconsumed tail to the front when that makes room, and lets a large buffer go once it
 * is empty, so an idle connection holds little memory.
 * A header is judged as soon as its bytes are in: a stranger speaking HTTP is refused at its first
 * byte, and a header claiming 4 GiB is refused before anything is buffered for it.
 */
#include "kvfs/frame.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "kvfs/crc32c.h"
#include "kvfs/peer_sec.h"

/* Bytes of the header that the checksum covers: everything before the checksum itself. */
#define FRAME_CRC_COVERED 12u
/* An empty reader keeps a buffer up to this size for the next frames, and frees a larger one. */
#define FRAME_READER_KEEP (1u << 20)

static void put_le16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static void put_le32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get_le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint32_t frame_crc(const uint8_t *hdr, const void *payload, uint32_t len)
{
	uint32_t crc = crc32c(0, hdr, FRAME_CRC_COVERED);

	return len ? crc32c(crc, payload, len) : crc;
}

/* Seals the header over a payload whose length has been checked. The payload may follow hdr. */
int frame_encode_header(uint8_t hdr[KVFS_FRAME_HEADER], uint8_t type, const void *payload,
                        uint32_t len)
{
	if (len > KVFS_FRAME_MAX_PAYLOAD)
		return -EMSGSIZE;
	put_le32(hdr, KVFS_FRAME_MAGIC);
	hdr[4] = KVFS_FRAME_VERSION;
	hdr[5] = type;
	put_le16(hdr + 6, 0);
	put_le32(hdr + 8, len);
	put_le32(hdr + 12, frame_crc(hdr, payload, len));
	return 0;
}

/* Header and a copy of the payload; -EMSGSIZE with buf untouched if len is over the maximum. */
int frame_encode(uint8_t *buf, uint8_t type, const void *payload, uint32_t len)
{
	if (len > KVFS_FRAME_MAX_PAYLOAD)
		return -EMSGSIZE;
	/* memmove: the caller may have built the payload in place already */
	if (len)
		memmove(buf + KVFS_FRAME_HEADER, payload, len);
	return frame_encode_header(buf, type, buf + KVFS_FRAME_HEADER, len);
}

void frame_reader_init(struct kvfs_frame_reader *r)
{
	memset(r, 0, sizeof(*r));
	r->max = KVFS_FRAME_MAX_PAYLOAD;
}

void frame_reader_free(struct kvfs_frame_reader *r)
{
	free(r->buf);
	memset(r, 0, sizeof(*r));
}

void frame_reader_set_max(struct kvfs_frame_reader *r, uint32_t max)
{
	r->max = max < KVFS_FRAME_MAX_PAYLOAD ? max : KVFS_FRAME_MAX_PAYLOAD;
}

void frame_reader_set_opener(struct kvfs_frame_reader *r,
                             int (*open)(void *arg, uint8_t *rec, uint32_t L), void *open_arg)
{
	r->open = open;
	r->open_arg = open_arg;
}

/* The most a record may hold: the largest acceptable frame and a tag. */
static uint64_t record_max(const struct kvfs_frame_reader *r)
{
	return (uint64_t)KVFS_FRAME_HEADER + r->max + KVFS_SEC_TAG_BYTES;
}

/*
 * Called on entry to feed and next, once the frame last returned may be forgotten: an empty
 * buffer starts over at its front, and a large one is given back.
 */
static void reader_settle(struct kvfs_frame_reader *r)
{
	if (r->start != r->end)
		return;
	r->start = r->end = 0;
	if (r->cap > FRAME_READER_KEEP) {
		free(r->buf);
		r->buf = NULL;
		r->cap = 0;
	}
}

/*
 * The size of the frame at the front of the buffer, header included, if its header is in and its
 * length acceptable; 0 otherwise. Growth stops there rather than doubling past a large frame.
 */
static size_t pending_frame_size(const struct kvfs_frame_reader *r)
{
	uint32_t len;

	if (r->open) {
		if (r->opened > 0 || r->end - r->start < KVFS_SEC_LEN_BYTES)
			return 0; /* an opened record is all in already */
		len = get_le32(r->buf + r->start);
		return len <= record_max(r) ? KVFS_SEC_LEN_BYTES + (size_t)len : 0;
	}
	if (r->end - r->start < KVFS_FRAME_HEADER)
		return 0;
	len = get_le32(r->buf + r->start + 8);
	return len <= r->max ? KVFS_FRAME_HEADER + (size_t)len : 0;
}

/* Appends the fed bytes; -ENOMEM leaves the unconsumed bytes as they were. */
int frame_reader_feed(struct kvfs_frame_reader *r, const void *buf, size_t len)
{
	size_t have;

	if (r->err)
		return r->err;
	if (len == 0)
		return 0;
	reader_settle(r);
	have = r->end - r->start;
	if (r->cap - r->end < len) {
		if (len > SIZE_MAX / 2 - have)
			return -ENOMEM;
		if (r->cap - have >= len) {
			memmove(r->buf, r->buf + r->start, have);
		} else {
			size_t need = have + len, frame = pending_frame_size(r);
			size_t cap = r->cap * 2 > need ? r->cap * 2 : need;
			uint8_t *nb;

			if (frame > need && frame < cap)
				cap = frame;
			nb = malloc(cap);
			if (nb == NULL)
				return -ENOMEM;
			if (have)
				memcpy(nb, r->buf + r->start, have);
			free(r->buf);
			r->buf = nb;
			r->cap = cap;
		}
		r->start = 0;
		r->end = have;
	}
	memcpy(r->buf + r->end, buf, len);
	r->end += len;
	return 0;
}

static int reader_fail(struct kvfs_frame_reader *r, int err)
{
	r->err = err;
	return err;
}

/*
 * Judges the first have bytes (any number) of a header: magic, version and flags as far as they
 * have arrived. Returns 0 or -EPROTO.
 */
static int check_header_prefix(const uint8_t *p, size_t have)
{
	static const uint8_t magic[4] = {
	    KVFS_FRAME_MAGIC & 0xff,
	    (KVFS_FRAME_MAGIC >> 8) & 0xff,
	    (KVFS_FRAME_MAGIC >> 16) & 0xff,
	    KVFS_FRAME_MAGIC >> 24,
	};

	if (memcmp(p, magic, have < 4 ? have : 4) != 0)
		return -EPROTO;
	if (have > 4 && p[4] != KVFS_FRAME_VERSION)
		return -EPROTO;
	if (have > 6 && p[6] != 0)
		return -EPROTO;
	if (have > 7 && p[7] != 0)
		return -EPROTO;
	return 0;
}

/*
 * Opens the record at the front of the buffer in place and steps into it: its frames are then
 * at r->start, r->opened bytes of them, and its tag after them. Returns 1, 0 if the record is
 * not all in, or a violation.
 */
static int open_record(struct kvfs_frame_reader *r)
{
	uint8_t *rec = r->buf + r->start;
	uint32_t L;

	if (r->end - r->start < KVFS_SEC_LEN_BYTES)
		return 0;
	L = get_le32(rec);
	if (L > record_max(r))
		return -EMSGSIZE;
	if (L < KVFS_FRAME_HEADER + KVFS_SEC_TAG_BYTES)
		return -EPROTO;
	if (r->end - r->start - KVFS_SEC_LEN_BYTES < L)
		return 0;
	if (r->open(r->open_arg, rec, L) != 0)
		return -EBADMSG;
	r->start += KVFS_SEC_LEN_BYTES;
	r->opened = L - KVFS_SEC_TAG_BYTES;
	return 1;
}

/* One complete frame out of the buffer, or 0, or a sticky violation; see frame.h. */
int frame_reader_next(struct kvfs_frame_reader *r, struct kvfs_frame *out)
{
	uint8_t *p;
	size_t have;
	uint32_t len;
	int rv;

	if (r->err)
		return r->err;
	reader_settle(r);
	if (r->open && r->opened == 0) {
		rv = open_record(r);
		if (rv <= 0)
			return rv < 0 ? reader_fail(r, rv) : 0;
	}
	have = r->open ? r->opened : r->end - r->start;
	if (have == 0)
		return 0;
	p = r->buf + r->start;
	rv = check_header_prefix(p, have < KVFS_FRAME_HEADER ? have : KVFS_FRAME_HEADER);
	if (rv < 0)
		return reader_fail(r, rv);
	if (have < KVFS_FRAME_HEADER)
		return r->open ? reader_fail(r, -EPROTO) : 0; /* a record holds whole frames */
	len = get_le32(p + 8);
	if (len > r->max)
		return reader_fail(r, -EMSGSIZE);
	if (have - KVFS_FRAME_HEADER < len)
		return r->open ? reader_fail(r, -EPROTO) : 0;
	if (frame_crc(p, p + KVFS_FRAME_HEADER, len) != get_le32(p + 12))
		return reader_fail(r, -EBADMSG);

	out->type = p[5];
	out->payload = len ? p + KVFS_FRAME_HEADER : NULL;
	out->len = len;
	r->start += KVFS_FRAME_HEADER + (size_t)len;
	if (r->open) {
		r->opened -= KVFS_FRAME_HEADER + (size_t)len;
		if (r->opened == 0)
			r->start += KVFS_SEC_TAG_BYTES; /* the record's tag: done with it */
	}
	return 1;
}
