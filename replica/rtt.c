/*
 * Round-trip times to the peers (rtt.h). STUB: helper B replaces this file.
 */
#include "kvfs/rtt.h"

#include <string.h>

void rtt_init(struct kvfs_rtt *r)
{
	memset(r, 0, sizeof(*r));
}

void rtt_sample(struct kvfs_rtt *r, uint32_t id, uint64_t rtt_us, uint64_t now_ms)
{
	if (id == 0 || id > KVFS_RTT_MAX_ID)
		return;
	r->p[id].srtt_us = rtt_us;
	r->p[id].samples++;
	r->p[id].last_heard_ms = now_ms;
}

void rtt_heard(struct kvfs_rtt *r, uint32_t id, uint64_t now_ms)
{
	if (id > 0 && id <= KVFS_RTT_MAX_ID)
		r->p[id].last_heard_ms = now_ms;
}

void rtt_forget(struct kvfs_rtt *r, uint32_t id)
{
	if (id > 0 && id <= KVFS_RTT_MAX_ID)
		memset(&r->p[id], 0, sizeof(r->p[id]));
}

uint64_t rtt_quorum(const struct kvfs_rtt *r, const uint32_t *voters, size_t n, uint32_t self,
                    uint64_t now_ms)
{
	(void)r, (void)voters, (void)n, (void)self, (void)now_ms;
	return UINT64_MAX;
}

bool rtt_contact(const struct kvfs_rtt *r, const uint32_t *voters, size_t n, uint32_t self,
                 uint64_t now_ms)
{
	(void)r, (void)voters, (void)n, (void)self, (void)now_ms;
	return false;
}
