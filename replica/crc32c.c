/*
 * CRC32C (Castagnoli, reflected polynomial 0x82f63b78), the checksum of every log record, snapshot
 * and peer frame. On x86-64 CPUs with SSE4.2 it runs on the crc32 instruction, eight bytes at a
 * time; elsewhere it falls back to a portable slicing-by-8 table walk. The choice and the tables
 * are made once, on first use, under pthread_once, so crc32c() may be called from any thread.
 * Both paths give the same result; crc32c_sw and crc32c_hw are exported (undeclared in the
 * header) only so that the unit test can check that they agree.
 */
#include "kvfs/crc32c.h"

#include <pthread.h>
#include <stdbool.h>
#include <string.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define KVFS_CRC32C_HAVE_HW 1
#include <nmmintrin.h>
#else
#define KVFS_CRC32C_HAVE_HW 0
#endif

#define CRC32C_POLY 0x82f63b78u

/* For the unit test only: the table path, the instruction path and whether the latter may run. */
uint32_t crc32c_sw(uint32_t crc, const void *buf, size_t len);
uint32_t crc32c_hw(uint32_t crc, const void *buf, size_t len);
bool crc32c_hw_available(void);

static pthread_once_t crc32c_once = PTHREAD_ONCE_INIT;
static uint32_t crc32c_table[8][256]; /* written once under crc32c_once, then read-only */
static bool crc32c_use_hw;            /* likewise */

static void crc32c_init(void)
{
	for (uint32_t n = 0; n < 256; n++) {
		uint32_t c = n;

		for (int k = 0; k < 8; k++)
			c = (c & 1) ? (c >> 1) ^ CRC32C_POLY : c >> 1;
		crc32c_table[0][n] = c;
	}
	for (uint32_t n = 0; n < 256; n++) {
		uint32_t c = crc32c_table[0][n];

		for (int t = 1; t < 8; t++) {
			c = crc32c_table[0][c & 0xff] ^ (c >> 8);
			crc32c_table[t][n] = c;
		}
	}
#if KVFS_CRC32C_HAVE_HW
	__builtin_cpu_init();
	crc32c_use_hw = __builtin_cpu_supports("sse4.2");
#endif
}

/* Loads 8 bytes little-endian from any alignment. */
static inline uint64_t load_le64(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, sizeof(v));
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
	v = __builtin_bswap64(v);
#endif
	return v;
}

/* Slicing-by-8 over the tables; the caller has run crc32c_init. crc is pre-inverted. */
static uint32_t crc32c_sw_raw(uint32_t crc, const uint8_t *p, size_t len)
{
	uint32_t(*t)[256] = crc32c_table;

	while (len >= 8) {
		uint64_t v = load_le64(p) ^ crc;

		crc = t[7][v & 0xff] ^ t[6][(v >> 8) & 0xff] ^ t[5][(v >> 16) & 0xff] ^
		      t[4][(v >> 24) & 0xff] ^ t[3][(v >> 32) & 0xff] ^ t[2][(v >> 40) & 0xff] ^
		      t[1][(v >> 48) & 0xff] ^ t[0][v >> 56];
		p += 8;
		len -= 8;
	}
	while (len--)
		crc = t[0][(crc ^ *p++) & 0xff] ^ (crc >> 8);
	return crc;
}

/* Table path. Same contract as crc32c(). */
uint32_t crc32c_sw(uint32_t crc, const void *buf, size_t len)
{
	pthread_once(&crc32c_once, crc32c_init);
	return ~crc32c_sw_raw(~crc, buf, len);
}

#if KVFS_CRC32C_HAVE_HW
/* The crc32 instruction, 8 bytes per step once p is aligned. crc is pre-inverted. */
__attribute__((target("sse4.2"))) static uint32_t crc32c_hw_raw(uint32_t crc, const uint8_t *p,
                                                                size_t len)
{
	uint64_t c = crc;

	while (len > 0 && ((uintptr_t)p & 7) != 0) {
		c = _mm_crc32_u8((uint32_t)c, *p++);
		len--;
	}
	while (len >= 32) {
		uint64_t a, b, d, e;

		memcpy(&a, p, 8);
		memcpy(&b, p + 8, 8);
		memcpy(&d, p + 16, 8);
		memcpy(&e, p + 24, 8);
		c = _mm_crc32_u64(c, a);
		c = _mm_crc32_u64(c, b);
		c = _mm_crc32_u64(c, d);
		c = _mm_crc32_u64(c, e);
		p += 32;
		len -= 32;
	}
	while (len >= 8) {
		uint64_t a;

		memcpy(&a, p, 8);
		c = _mm_crc32_u64(c, a);
		p += 8;
		len -= 8;
	}
	while (len--)
		c = _mm_crc32_u8((uint32_t)c, *p++);
	return (uint32_t)c;
}
#endif

/* Whether crc32c_hw may be called on this CPU. */
bool crc32c_hw_available(void)
{
	pthread_once(&crc32c_once, crc32c_init);
	return crc32c_use_hw;
}

/* Instruction path; the caller has checked crc32c_hw_available(). Same contract as crc32c(). */
uint32_t crc32c_hw(uint32_t crc, const void *buf, size_t len)
{
#if KVFS_CRC32C_HAVE_HW
	pthread_once(&crc32c_once, crc32c_init);
	return ~crc32c_hw_raw(~crc, buf, len);
#else
	return crc32c_sw(crc, buf, len);
#endif
}

/* Extends crc with len bytes of buf, on the fastest path this CPU has. Cannot fail. */
uint32_t crc32c(uint32_t crc, const void *buf, size_t len)
{
	pthread_once(&crc32c_once, crc32c_init);
#if KVFS_CRC32C_HAVE_HW
	if (crc32c_use_hw)
		return ~crc32c_hw_raw(~crc, buf, len);
#endif
	return ~crc32c_sw_raw(~crc, buf, len);
}
