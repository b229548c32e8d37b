/*
 * Peer frames: how the replicas' binary protocol is cut out of a TCP byte stream.
 *
 * Every message between peers travels in one frame, a 16-byte header and a payload:
 *
 *     u32 magic    0x5346564b ("KVFS" on the wire)
 *     u8  version  KVFS_FRAME_VERSION
 *     u8  type     what the payload is (enum kvfs_peer_msg_type, see peer_msg.h)
 *     u16 flags    0; anything else is refused
 *     u32 length   payload bytes, at most KVFS_FRAME_MAX_PAYLOAD
 *     u32 crc32c   of the header's first 12 bytes, then the payload
 *     payload      length bytes
 *
 * all little-endian. The reader checks magic, version, flags and length as soon as the header has
 * arrived, before it buffers the payload; the checksum once the payload is complete. Any violation
 * means the stream can no longer be trusted (nor resynchronised): the connection is to be dropped.
 * The reader only ever holds bytes that were fed to it; it never allocates from a length it read.
 * Pure C: no libuv, no sockets, no clock.
 */
#ifndef KVFS_FRAME_H
#define KVFS_FRAME_H

#include <stddef.h>
#include <stdint.h>

#define KVFS_FRAME_MAGIC       0x5346564bu
#define KVFS_FRAME_VERSION     1u
#define KVFS_FRAME_HEADER      16u
#define KVFS_FRAME_MAX_PAYLOAD (80u << 20) /* a snapshot chunk or a batch of entries fits */

/* A frame that frame_reader_next() returned; payload is borrowed from the reader. */
struct kvfs_frame {
	uint8_t type;
	const uint8_t *payload; /* NULL when len is 0 */
	uint32_t len;
};

/*
 * A streaming decoder for one connection. The caller owns the struct (embed it in the
 * connection); its fields are private to frame.c.
 */
struct kvfs_frame_reader {
	uint8_t *buf;      /* fed bytes, [start, end) not yet consumed */
	size_t cap;        /* bytes allocated at buf */
	size_t start, end; /* consumed prefix, end of the fed bytes */
	uint32_t max;      /* largest payload accepted, <= KVFS_FRAME_MAX_PAYLOAD */
	int err;           /* 0, or the violation already reported (sticky) */
	/* Sealed records (see frame_reader_set_opener): NULL while frames arrive bare. */
	int (*open)(void *arg, uint8_t *rec, uint32_t L);
	void *open_arg;
	size_t opened; /* bytes of frames left in the record opened at start (its tag follows) */
};

/* Initialises r, empty, accepting payloads up to KVFS_FRAME_MAX_PAYLOAD. Cannot fail. */
void frame_reader_init(struct kvfs_frame_reader *r);

/* Frees r's buffer. r may then be initialised again. */
void frame_reader_free(struct kvfs_frame_reader *r);

/*
 * Lowers (or restores) the largest payload r accepts in headers not yet returned, e.g. to a few KiB
 * until the peer's HELLO has been checked, so that a stranger cannot make the node buffer 80 MiB.
 * max is clamped to KVFS_FRAME_MAX_PAYLOAD.
 */
void frame_reader_set_max(struct kvfs_frame_reader *r, uint32_t max);

/*
 * From now on every frame arrives sealed in a record of peer_sec.h: u32 L, then L bytes that
 * open(open_arg, rec, L) unseals in place (rec points at L; the frame is then at rec + 4, L - 16
 * bytes), returning 0 or a negative errno. A record holds one or more whole frames. L is judged
 * against the maximum (the largest frame accepted, sealed) before anything is buffered for it; a
 * record that does not open is -EBADMSG, one that ends inside a frame -EPROTO, both sticky like
 * every violation.
 */
void frame_reader_set_opener(struct kvfs_frame_reader *r,
                             int (*open)(void *arg, uint8_t *rec, uint32_t L), void *open_arg);

/*
 * Appends len bytes of buf (as read from the socket, any chunk size) to r. The buffer grows with
 * what is fed, never with what a header claims. Returns 0; -ENOMEM if the buffer cannot grow (r
 * is unchanged); or the error r has already reported, in which case nothing is buffered.
 * Invalidates the payload of the frame last returned.
 */
int frame_reader_feed(struct kvfs_frame_reader *r, const void *buf, size_t len);

/*
 * Takes the next complete frame out of r. Returns 1 and fills *out (its payload is valid until
 * the next call to any frame_reader_* on r); 0 if more bytes are needed; or, for a protocol
 * violation, -EPROTO (bad magic, version or flags), -EMSGSIZE (length above the maximum) or
 * -EBADMSG (checksum mismatch), after which the connection is to be dropped: r keeps returning
 * that error. Bad magic is reported from the first wrong byte and a bad header as soon as its 16
 * bytes are in, without waiting for the payload.
 */
int frame_reader_next(struct kvfs_frame_reader *r, struct kvfs_frame *out);

/*
 * Writes the header of a frame of the given type whose payload is the len bytes at payload
 * (NULL if len is 0), checksum included, into hdr. The payload may already sit right after hdr.
 * Returns 0, or -EMSGSIZE (hdr untouched) if len is above KVFS_FRAME_MAX_PAYLOAD.
 */
int frame_encode_header(uint8_t hdr[KVFS_FRAME_HEADER], uint8_t type, const void *payload,
                        uint32_t len);

/*
 * Writes a whole frame, header then a copy of payload, into buf, which has room for
 * KVFS_FRAME_HEADER + len bytes. Returns 0, or -EMSGSIZE (buf untouched) as above.
 */
int frame_encode(uint8_t *buf, uint8_t type, const void *payload, uint32_t len);

#endif /* KVFS_FRAME_H */
