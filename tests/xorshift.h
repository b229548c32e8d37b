/*
 * The tests' deterministic random numbers: xorshift64* (Vigna), so that a seed replays a run.
 * Header-only; the state must not be 0.
 */
#ifndef KVFS_TESTS_XORSHIFT_H
#define KVFS_TESTS_XORSHIFT_H

#include <stdint.h>

static inline uint64_t xorshift64s(uint64_t *state)
{
	*state ^= *state >> 12;
	*state ^= *state << 25;
	*state ^= *state >> 27;
	return *state * 0x2545f4914f6cdd1dull;
}

#endif /* KVFS_TESTS_XORSHIFT_H */
