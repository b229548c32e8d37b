/*
 * Unit tests for replica/crc32c.c: the published check values, incremental use, and agreement of
 * the SSE4.2 instruction path with the portable table path for every length and alignment.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "kvfs/crc32c.h"

/* Exported by crc32c.c for this test only. */
uint32_t crc32c_sw(uint32_t crc, const void *buf, size_t len);
uint32_t crc32c_hw(uint32_t crc, const void *buf, size_t len);
bool crc32c_hw_available(void);

/* A small deterministic generator, so that failures reproduce. */
static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint8_t rng_byte(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return (uint8_t)(rng_state >> 24);
}

static void test_vectors(void **state)
{
	uint8_t zeros[32], ones[32];
	uint8_t inc[32];

	memset(zeros, 0, sizeof(zeros));
	memset(ones, 0xff, sizeof(ones));
	for (int i = 0; i < 32; i++)
		inc[i] = (uint8_t)i;

	assert_int_equal(crc32c(0, "123456789", 9), 0xe3069283u);
	assert_int_equal(crc32c(0, zeros, 32), 0x8a9136aau);
	assert_int_equal(crc32c(0, ones, 32), 0x62a8ab43u);
	assert_int_equal(crc32c(0, inc, 32), 0x46dd794eu); /* RFC 3720 B.4 */
	assert_int_equal(crc32c(0, "", 0), 0);
	assert_int_equal(crc32c(0x12345678u, NULL, 0), 0x12345678u);

	assert_int_equal(crc32c_sw(0, "123456789", 9), 0xe3069283u);
	assert_int_equal(crc32c_sw(0, zeros, 32), 0x8a9136aau);
	assert_int_equal(crc32c_sw(0, ones, 32), 0x62a8ab43u);
	if (crc32c_hw_available()) {
		assert_int_equal(crc32c_hw(0, "123456789", 9), 0xe3069283u);
		assert_int_equal(crc32c_hw(0, zeros, 32), 0x8a9136aau);
		assert_int_equal(crc32c_hw(0, ones, 32), 0x62a8ab43u);
	}
}

static void test_incremental(void **state)
{
	uint8_t buf[1000];

	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = rng_byte();
	uint32_t whole = crc32c(0, buf, sizeof(buf));

	for (size_t cut = 0; cut <= sizeof(buf); cut += 7) {
		uint32_t c = crc32c(0, buf, cut);

		assert_int_equal(crc32c(c, buf + cut, sizeof(buf) - cut), whole);
		assert_int_equal(crc32c_sw(crc32c_sw(0, buf, cut), buf + cut, sizeof(buf) - cut),
		                 whole);
	}
	/* byte at a time */
	uint32_t c = 0;

	for (size_t i = 0; i < sizeof(buf); i++)
		c = crc32c(c, buf + i, 1);
	assert_int_equal(c, whole);
}

static void test_hw_matches_sw(void **state)
{
	enum { MAXLEN = 300, ALIGN = 16 };
	uint8_t *buf = malloc(MAXLEN + ALIGN);

	assert_non_null(buf);
	if (!crc32c_hw_available()) {
		free(buf);
		skip();
	}
	for (size_t i = 0; i < MAXLEN + ALIGN; i++)
		buf[i] = rng_byte();
	for (size_t off = 0; off < ALIGN; off++) {
		for (size_t len = 0; len <= MAXLEN; len++) {
			uint32_t seed = (uint32_t)(len * 2654435761u);
			uint32_t s = crc32c_sw(0, buf + off, len);

			assert_int_equal(crc32c_hw(0, buf + off, len), s);
			assert_int_equal(crc32c(0, buf + off, len), s);
			assert_int_equal(crc32c_hw(seed, buf + off, len),
			                 crc32c_sw(seed, buf + off, len));
		}
	}
	free(buf);
}

/* A larger buffer, to run the unrolled loops many times. */
static void test_hw_matches_sw_large(void **state)
{
	size_t n = 1 << 20;
	uint8_t *buf = malloc(n);

	assert_non_null(buf);
	for (size_t i = 0; i < n; i++)
		buf[i] = rng_byte();
	uint32_t s = crc32c_sw(0, buf + 3, n - 3);

	if (crc32c_hw_available())
		assert_int_equal(crc32c_hw(0, buf + 3, n - 3), s);
	assert_int_equal(crc32c(0, buf + 3, n - 3), s);
	free(buf);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_vectors),
	    cmocka_unit_test(test_incremental),
	    cmocka_unit_test(test_hw_matches_sw),
	    cmocka_unit_test(test_hw_matches_sw_large),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
