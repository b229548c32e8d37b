/*
 * Round-trip times to the peers, for the leader score (score.h). The node sends RTT_PING to
 * every connected peer every 100 ms (peer_msg.h) and feeds each RTT_PONG's round trip here, and
 * notes every message heard from a peer. Per peer: SRTT and RTTVAR as RFC 6298 (alpha 1/8, beta
 * 1/4; the first sample sets SRTT = R, RTTVAR = R/2), in microseconds.
 *
 * Pure: no clock (times are given by the caller), no I/O. Peers are indexed by id, 1..255.
 */
#ifndef KVFS_RTT_H
#define KVFS_RTT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define KVFS_RTT_MAX_ID 255u
#define KVFS_CONTACT_MS 300u /* "in contact": heard within this (pings every 100 ms) */

struct kvfs_rtt_peer {
	uint64_t srtt_us;   /* 0 with samples == 0 */
	uint64_t rttvar_us;
	uint64_t last_heard_ms; /* anything heard from it (a pong, any message); 0 never */
	uint64_t samples;
};

struct kvfs_rtt {
	struct kvfs_rtt_peer p[KVFS_RTT_MAX_ID + 1];
};

void rtt_init(struct kvfs_rtt *r);

/* A round trip of rtt_us measured to peer id at now_ms (an out-of-range id is ignored; a sample
 * above 60 s is clamped to 60 s). Counts as hearing it. */
void rtt_sample(struct kvfs_rtt *r, uint32_t id, uint64_t rtt_us, uint64_t now_ms);

/* Something was heard from peer id at now_ms. */
void rtt_heard(struct kvfs_rtt *r, uint32_t id, uint64_t now_ms);

/* Forget peer id (its connection dropped): its SRTT restarts from the next sample. */
void rtt_forget(struct kvfs_rtt *r, uint32_t id);

/*
 * Quorum RTT of node `self` among `voters` (n ids, self may or may not be among them): a leader
 * needs acks from majority - 1 other voters besides itself (majority = n / 2 + 1 when self is a
 * voter, else it needs a full majority), so its commit latency is bounded by the (majority - 1)-th
 * smallest SRTT among the other voters heard within KVFS_CONTACT_MS and having a sample. Returns
 * that SRTT in microseconds, 0 for a single voter that is self, UINT64_MAX if too few are heard.
 */
uint64_t rtt_quorum(const struct kvfs_rtt *r, const uint32_t *voters, size_t n, uint32_t self,
                    uint64_t now_ms);

/* rtt_quorum, and in *rttvar_us (if not NULL) the RTTVAR of the same peer: 0 when the quorum RTT
 * is 0, UINT64_MAX when it is unknown. */
uint64_t rtt_quorum_var(const struct kvfs_rtt *r, const uint32_t *voters, size_t n, uint32_t self,
                        uint64_t now_ms, uint64_t *rttvar_us);

/* Whether self (counted if among voters) and the voters heard within KVFS_CONTACT_MS make a
 * majority of voters. */
bool rtt_contact(const struct kvfs_rtt *r, const uint32_t *voters, size_t n, uint32_t self,
                 uint64_t now_ms);

#endif /* KVFS_RTT_H */
