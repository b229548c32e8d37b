/*
 * Unit tests of peer framing (replica/frame.c): frames survive the trip through the streaming
 * reader however the stream is cut (one byte at a time, random chunks), every single-bit flip of a
 * frame is caught, a header claiming a huge length is refused before anything is allocated for it
 * (the reader's capacity and, under ASan, the process's allocated bytes are checked), the reader
 * gives memory back, and random streams never crash it (run under ASan and UBSan).
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

#include "kvfs/frame.h"
#include "../../xorshift.h"

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TEST_ASAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define TEST_ASAN 1
#endif
#ifdef TEST_ASAN
/* From <sanitizer/allocator_interface.h>, which not every compiler installs. */
size_t __sanitizer_get_current_allocated_bytes(void);
#endif

/* A deterministic generator (xorshift64*), so that a failure can be replayed. */
static uint64_t rng_state;

static void rng_seed(uint64_t seed)
{
	rng_state = seed ? seed : 0x9e3779b97f4a7c15ull;
}

static uint64_t rng(void)
{
	return xorshift64s(&rng_state);
}

/* Uniform enough in [0, n). */
static size_t rng_below(size_t n)
{
	return n ? (size_t)(rng() % n) : 0;
}

static void put_le32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

/* Bytes the process has allocated (under ASan), else 0: a witness that nothing big was. */
static size_t allocated_bytes(void)
{
#ifdef TEST_ASAN
	return __sanitizer_get_current_allocated_bytes();
#else
	return 0;
#endif
}

/* A frame of the given type whose payload is len bytes derived from seed, freshly allocated. */
static uint8_t *make_frame(uint8_t type, uint32_t len, uint64_t seed, size_t *size)
{
	uint8_t *f = malloc(KVFS_FRAME_HEADER + len);

	assert_non_null(f);
	/* A pattern, then (for the huge ones, cheaply) a constant. */
	for (uint32_t i = 0; i < len && i < 65536; i++)
		f[KVFS_FRAME_HEADER + i] = (uint8_t)(seed * 31 + i * 7 + (i >> 8));
	if (len > 65536)
		memset(f + KVFS_FRAME_HEADER + 65536, (int)(seed & 0xff), len - 65536);
	assert_int_equal(frame_encode_header(f, type, f + KVFS_FRAME_HEADER, len), 0);
	*size = KVFS_FRAME_HEADER + len;
	return f;
}

static void test_header_layout(void **state)
{
	uint8_t buf[KVFS_FRAME_HEADER + 3];
	static const uint8_t want[12] = {'K', 'V', 'F', 'S', 1, 9, 0, 0, 3, 0, 0, 0};

	assert_int_equal(frame_encode(buf, 9, "abc", 3), 0);
	assert_memory_equal(buf, want, sizeof(want));
	assert_memory_equal(buf + KVFS_FRAME_HEADER, "abc", 3);
	/* The checksum is stored little-endian over the first 12 bytes and the payload. */
	{
		uint8_t again[KVFS_FRAME_HEADER];

		assert_int_equal(frame_encode_header(again, 9, "abc", 3), 0);
		assert_memory_equal(again, buf, KVFS_FRAME_HEADER);
	}
}

static void test_encode_refuses_oversize(void **state)
{
	uint8_t hdr[KVFS_FRAME_HEADER];

	memset(hdr, 0xaa, sizeof(hdr));
	/* The payload is not read: only its length is judged. */
	assert_int_equal(frame_encode_header(hdr, 1, hdr, KVFS_FRAME_MAX_PAYLOAD + 1), -EMSGSIZE);
	assert_int_equal(frame_encode_header(hdr, 1, hdr, UINT32_MAX), -EMSGSIZE);
	assert_int_equal(frame_encode(hdr, 1, hdr, UINT32_MAX), -EMSGSIZE);
	for (size_t i = 0; i < sizeof(hdr); i++)
		assert_int_equal(hdr[i], 0xaa);
}

static void test_roundtrip_one(void **state)
{
	static const uint32_t lens[] = {0, 1, 15, 16, 17, 4096, 70000};

	for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
		struct kvfs_frame_reader r;
		struct kvfs_frame f;
		size_t size;
		uint8_t *buf = make_frame((uint8_t)(i + 1), lens[i], i, &size);

		frame_reader_init(&r);
		assert_int_equal(frame_reader_next(&r, &f), 0);
		assert_int_equal(frame_reader_feed(&r, buf, size), 0);
		assert_int_equal(frame_reader_next(&r, &f), 1);
		assert_int_equal(f.type, i + 1);
		assert_int_equal(f.len, lens[i]);
		if (lens[i])
			assert_memory_equal(f.payload, buf + KVFS_FRAME_HEADER, lens[i]);
		else
			assert_null(f.payload);
		assert_int_equal(frame_reader_next(&r, &f), 0);
		frame_reader_free(&r);
		free(buf);
	}
}

/* frame_encode builds the payload in place when asked to. */
static void test_encode_in_place(void **state)
{
	uint8_t buf[KVFS_FRAME_HEADER + 5], ref[KVFS_FRAME_HEADER + 5];

	memcpy(buf + KVFS_FRAME_HEADER, "hello", 5);
	assert_int_equal(frame_encode(buf, 2, buf + KVFS_FRAME_HEADER, 5), 0);
	assert_int_equal(frame_encode(ref, 2, "hello", 5), 0);
	assert_memory_equal(buf, ref, sizeof(ref));
}

#define STREAM_FRAMES 400

/* A stream of many frames of assorted types and sizes, concatenated. */
struct stream {
	uint8_t *bytes;
	size_t size;
	size_t off[STREAM_FRAMES]; /* where each frame starts */
	uint32_t len[STREAM_FRAMES];
	uint8_t type[STREAM_FRAMES];
};

static void stream_make(struct stream *s, uint64_t seed)
{
	rng_seed(seed);
	s->size = 0;
	for (int i = 0; i < STREAM_FRAMES; i++) {
		/* Mostly small, some empty, some large. */
		s->len[i] = (uint32_t)(i % 10 == 0   ? 0
		                       : i % 37 == 0 ? rng_below(200000)
		                                     : rng_below(300));
		s->type[i] = (uint8_t)rng();
		s->off[i] = s->size;
		s->size += KVFS_FRAME_HEADER + s->len[i];
	}
	s->bytes = malloc(s->size);
	assert_non_null(s->bytes);
	for (int i = 0; i < STREAM_FRAMES; i++) {
		uint8_t *f = s->bytes + s->off[i];

		for (uint32_t j = 0; j < s->len[i]; j++)
			f[KVFS_FRAME_HEADER + j] = (uint8_t)(i * 31 + j * 7 + (j >> 8));
		assert_int_equal(
		    frame_encode_header(f, s->type[i], f + KVFS_FRAME_HEADER, s->len[i]), 0);
	}
}

/* Feeds the stream in chunks of the sizes chunk() picks and checks every frame comes out once. */
static void stream_check(const struct stream *s, size_t (*chunk)(void), size_t *max_cap)
{
	struct kvfs_frame_reader r;
	struct kvfs_frame f;
	size_t at = 0;
	int got = 0, rv;

	frame_reader_init(&r);
	*max_cap = 0;
	while (at < s->size) {
		size_t n = chunk();

		if (n > s->size - at)
			n = s->size - at;
		assert_int_equal(frame_reader_feed(&r, s->bytes + at, n), 0);
		at += n;
		if (r.cap > *max_cap)
			*max_cap = r.cap;
		while ((rv = frame_reader_next(&r, &f)) == 1) {
			assert_true(got < STREAM_FRAMES);
			assert_int_equal(f.type, s->type[got]);
			assert_int_equal(f.len, s->len[got]);
			if (f.len)
				assert_memory_equal(
				    f.payload, s->bytes + s->off[got] + KVFS_FRAME_HEADER, f.len);
			got++;
		}
		assert_int_equal(rv, 0);
	}
	assert_int_equal(got, STREAM_FRAMES);
	assert_int_equal(frame_reader_next(&r, &f), 0);
	frame_reader_free(&r);
}

static size_t chunk_one(void)
{
	return 1;
}

static size_t chunk_random(void)
{
	/* Mostly small reads, sometimes a whole socket buffer's worth. */
	return 1 + (rng() % 4 == 0 ? rng_below(65536) : rng_below(100));
}

static void test_stream_one_byte_at_a_time(void **state)
{
	struct stream s;
	size_t max_cap;

	stream_make(&s, 1);
	stream_check(&s, chunk_one, &max_cap);
	/* Byte by byte, the buffer never holds more than one frame's worth (doubling). */
	assert_true(max_cap <= 2 * (KVFS_FRAME_HEADER + 200000));
	free(s.bytes);
}

static void test_stream_random_chunks(void **state)
{
	for (uint64_t seed = 1; seed <= 8; seed++) {
		struct stream s;
		size_t max_cap;

		stream_make(&s, seed);
		rng_seed(seed * 1000003);
		stream_check(&s, chunk_random, &max_cap);
		/* Compaction keeps the buffer near one frame plus one chunk. */
		assert_true(max_cap <= 4 * (KVFS_FRAME_HEADER + 200000 + 65536));
		free(s.bytes);
	}
}

/* Feeds buf, then zeros for as long as the reader waits, up to limit bytes. Returns its verdict. */
static int verdict(const uint8_t *buf, size_t size, size_t limit)
{
	static uint8_t zeros[1 << 20];
	struct kvfs_frame_reader r;
	struct kvfs_frame f;
	size_t fed = size;
	int rv;

	frame_reader_init(&r);
	assert_int_equal(frame_reader_feed(&r, buf, size), 0);
	while ((rv = frame_reader_next(&r, &f)) == 0 && fed < limit) {
		size_t n = limit - fed < sizeof(zeros) ? limit - fed : sizeof(zeros);

		assert_int_equal(frame_reader_feed(&r, zeros, n), 0);
		fed += n;
	}
	frame_reader_free(&r);
	return rv;
}

/*
 * Every single-bit flip of a frame is refused: in magic, version and flags by the header check,
 * elsewhere by the checksum. A flipped length that grows the frame makes the reader wait for the
 * rest; once it is in (zeros here, the next frames on a real stream), the checksum catches it.
 * Lengths past ZERO_FEED_MAX take the same path; for them the test (to stay fast under ASan)
 * only checks that nothing is delivered while the reader waits.
 */
#define ZERO_FEED_MAX (4u << 20)
static void test_every_bit_flip_detected(void **state)
{
	size_t size;
	uint8_t *frame = make_frame(4, 40, 77, &size);

	for (size_t byte = 0; byte < size; byte++) {
		for (unsigned bit = 0; bit < 8; bit++) {
			uint32_t len = 40;
			int rv;

			if (byte >= 8 && byte < 12)
				len ^= 1u << (8 * (byte - 8) + bit);
			frame[byte] ^= (uint8_t)(1u << bit);
			if (len > 40 && len <= KVFS_FRAME_MAX_PAYLOAD && len > ZERO_FEED_MAX) {
				assert_int_equal(verdict(frame, size, size + ZERO_FEED_MAX / 2), 0);
				frame[byte] ^= (uint8_t)(1u << bit);
				continue;
			}
			rv = verdict(frame, size, KVFS_FRAME_HEADER + (size_t)len);
			frame[byte] ^= (uint8_t)(1u << bit);

			if (byte < 5 || byte == 6 || byte == 7)
				assert_int_equal(rv, -EPROTO);
			else if (len > KVFS_FRAME_MAX_PAYLOAD)
				assert_int_equal(rv, -EMSGSIZE);
			else
				assert_int_equal(rv, -EBADMSG);
		}
	}
	/* and unflipped it passes */
	assert_int_equal(verdict(frame, size, size), 1);
	free(frame);
}

/* A header claiming 4 GiB is refused as soon as it is in, before any buffer is sized for it. */
static void test_huge_length_refused_before_allocation(void **state)
{
	struct kvfs_frame_reader r;
	struct kvfs_frame f;
	uint8_t hdr[KVFS_FRAME_HEADER];
	size_t before;

	assert_int_equal(frame_encode_header(hdr, 4, NULL, 0), 0);
	put_le32(hdr + 8, 0xffffffffu);

	frame_reader_init(&r);
	before = allocated_bytes();
	assert_int_equal(frame_reader_feed(&r, hdr, sizeof(hdr)), 0);
	assert_int_equal(frame_reader_next(&r, &f), -EMSGSIZE);
	assert_true(r.cap <= sizeof(hdr));
	assert_true(allocated_bytes() <= before + 4096);
	/* The violation sticks: the connection is to be dropped. */
	assert_int_equal(frame_reader_next(&r, &f), -EMSGSIZE);
	assert_int_equal(frame_reader_feed(&r, hdr, sizeof(hdr)), -EMSGSIZE);
	assert_true(r.cap <= sizeof(hdr));
	frame_reader_free(&r);
}

/* Even a legal length allocates nothing ahead: the buffer grows only with bytes fed. */
static void test_legal_length_not_preallocated(void **state)
{
	struct kvfs_frame_reader r;
	struct kvfs_frame f;
	uint8_t hdr[KVFS_FRAME_HEADER + 1];
	size_t before;

	assert_int_equal(frame_encode_header(hdr, 4, NULL, 0), 0);
	put_le32(hdr + 8, KVFS_FRAME_MAX_PAYLOAD);
	hdr[KVFS_FRAME_HEADER] = 0;

	frame_reader_init(&r);
	before = allocated_bytes();
	assert_int_equal(frame_reader_feed(&r, hdr, KVFS_FRAME_HEADER), 0);
	assert_int_equal(frame_reader_next(&r, &f), 0);
	assert_int_equal(frame_reader_feed(&r, hdr + KVFS_FRAME_HEADER, 1), 0);
	assert_int_equal(frame_reader_next(&r, &f), 0);
	assert_true(r.cap <= 2 * sizeof(hdr));
	assert_true(allocated_bytes() <= before + 4096);
	frame_reader_free(&r);

	/* One byte over the maximum is refused. */
	put_le32(hdr + 8, KVFS_FRAME_MAX_PAYLOAD + 1);
	frame_reader_init(&r);
	assert_int_equal(frame_reader_feed(&r, hdr, KVFS_FRAME_HEADER), 0);
	assert_int_equal(frame_reader_next(&r, &f), -EMSGSIZE);
	frame_reader_free(&r);
}

/* A frame of exactly the maximum payload passes, and the big buffer is given back after it. */
static void test_max_payload_and_release(void **state)
{
	struct kvfs_frame_reader r;
	struct kvfs_frame f;
	size_t size;
	uint8_t *frame = make_frame(10, KVFS_FRAME_MAX_PAYLOAD, 5, &size);

	frame_reader_init(&r);
	for (size_t at = 0; at < size; at += 8u << 20) {
		size_t n = size - at < (8u << 20) ? size - at : (8u << 20);

		assert_int_equal(frame_reader_feed(&r, frame + at, n), 0);
	}
	assert_int_equal(frame_reader_next(&r, &f), 1);
	assert_int_equal(f.len, KVFS_FRAME_MAX_PAYLOAD);
	assert_int_equal(f.type, 10);
	assert_memory_equal(f.payload, frame + KVFS_FRAME_HEADER, 4096);
	/* Doubling stopped at the frame's end instead of at 128 MiB. */
	assert_int_equal(r.cap, size);
	assert_int_equal(frame_reader_next(&r, &f), 0);
	assert_int_equal(r.cap, 0);
	assert_null(r.buf);
	frame_reader_free(&r);
	free(frame);
}

/* A lowered limit refuses frames the default would take, until it is raised again. */
static void test_set_max(void **state)
{
	struct kvfs_frame_reader r;
	struct kvfs_frame f;
	size_t size;
	uint8_t *frame = make_frame(1, 5000, 1, &size);

	frame_reader_init(&r);
	frame_reader_set_max(&r, 4096);
	assert_int_equal(frame_reader_feed(&r, frame, KVFS_FRAME_HEADER), 0);
	assert_int_equal(frame_reader_next(&r, &f), -EMSGSIZE);
	frame_reader_free(&r);

	frame_reader_init(&r);
	frame_reader_set_max(&r, 4096);
	frame_reader_set_max(&r, UINT32_MAX); /* clamped to the protocol's maximum */
	assert_int_equal(r.max, KVFS_FRAME_MAX_PAYLOAD);
	assert_int_equal(frame_reader_feed(&r, frame, size), 0);
	assert_int_equal(frame_reader_next(&r, &f), 1);
	frame_reader_free(&r);
	free(frame);
}

/* A stranger that is not a peer is refused at its first byte. */
static void test_garbage_refused_early(void **state)
{
	struct kvfs_frame_reader r;
	struct kvfs_frame f;
	uint8_t hdr[KVFS_FRAME_HEADER];

	frame_reader_init(&r);
	assert_int_equal(frame_reader_feed(&r, "G", 1), 0);
	assert_int_equal(frame_reader_next(&r, &f), -EPROTO);
	frame_reader_free(&r);

	/* A correct prefix waits; a wrong version is refused at its byte. */
	assert_int_equal(frame_encode_header(hdr, 1, NULL, 0), 0);
	frame_reader_init(&r);
	assert_int_equal(frame_reader_feed(&r, hdr, 4), 0);
	assert_int_equal(frame_reader_next(&r, &f), 0);
	assert_int_equal(frame_reader_feed(&r, "\x02", 1), 0);
	assert_int_equal(frame_reader_next(&r, &f), -EPROTO);
	frame_reader_free(&r);

	/* Nonzero flags are refused. */
	hdr[7] = 0x80;
	frame_reader_init(&r);
	assert_int_equal(frame_reader_feed(&r, hdr, 8), 0);
	assert_int_equal(frame_reader_next(&r, &f), -EPROTO);
	frame_reader_free(&r);
}

/* A valid frame followed by a damaged one: the first comes out, then the error. */
static void test_error_after_good_frames(void **state)
{
	struct kvfs_frame_reader r;
	struct kvfs_frame f;
	size_t size;
	uint8_t *frame = make_frame(3, 10, 3, &size);
	uint8_t two[2 * (KVFS_FRAME_HEADER + 10)];

	memcpy(two, frame, size);
	memcpy(two + size, frame, size);
	two[size + KVFS_FRAME_HEADER + 3] ^= 1;
	frame_reader_init(&r);
	assert_int_equal(frame_reader_feed(&r, two, sizeof(two)), 0);
	assert_int_equal(frame_reader_next(&r, &f), 1);
	assert_int_equal(frame_reader_next(&r, &f), -EBADMSG);
	assert_int_equal(frame_reader_next(&r, &f), -EBADMSG);
	frame_reader_free(&r);
	free(frame);
}

/* Random streams, some starting like a frame, never crash the reader. */
static void test_random_streams(void **state)
{
	uint8_t buf[256];

	rng_seed(42);
	for (int iter = 0; iter < 100000; iter++) {
		struct kvfs_frame_reader r;
		struct kvfs_frame f;
		size_t n = rng_below(sizeof(buf) + 1);
		int rv;

		for (size_t i = 0; i < n; i++)
			buf[i] = (uint8_t)rng();
		if (n >= 8 && iter % 2) {
			/* a plausible header: right magic, version and flags, small length */
			assert_int_equal(frame_encode_header(buf, buf[5], NULL, 0), 0);
			put_le32(buf + 8, (uint32_t)rng_below(n));
		}
		frame_reader_init(&r);
		for (size_t at = 0; at < n;) {
			size_t c = 1 + rng_below(n - at);

			assert_int_equal(frame_reader_feed(&r, buf + at, c), 0);
			at += c;
			while ((rv = frame_reader_next(&r, &f)) == 1)
				;
			if (rv < 0) {
				assert_true(rv == -EPROTO || rv == -EMSGSIZE || rv == -EBADMSG);
				break;
			}
		}
		frame_reader_free(&r);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_header_layout),
	    cmocka_unit_test(test_encode_refuses_oversize),
	    cmocka_unit_test(test_roundtrip_one),
	    cmocka_unit_test(test_encode_in_place),
	    cmocka_unit_test(test_stream_one_byte_at_a_time),
	    cmocka_unit_test(test_stream_random_chunks),
	    cmocka_unit_test(test_every_bit_flip_detected),
	    cmocka_unit_test(test_huge_length_refused_before_allocation),
	    cmocka_unit_test(test_legal_length_not_preallocated),
	    cmocka_unit_test(test_max_payload_and_release),
	    cmocka_unit_test(test_set_max),
	    cmocka_unit_test(test_garbage_refused_early),
	    cmocka_unit_test(test_error_after_good_frames),
	    cmocka_unit_test(test_random_streams),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
