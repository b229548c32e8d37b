/*
 * The cluster's configuration: which node ids are members, and which of those vote. It lives in
 * the log (a KVFS_OP_CONFIG entry, op.h), so that every replica agrees on the configuration at
 * every index: the configuration at index i is the base one (the bootstrap one, voters
 * 1..cluster size, or the one a snapshot carries) changed by every CONFIG entry up to i. Voters
 * make up every majority (config_quorum() is the one majority test of the replication core);
 * observers receive the log and count for nothing. A change adds or removes one voter at a time
 * (config_one_step(); repl.h has the argument for why that is safe without joint consensus).
 *
 * Pure C: no allocation, no libuv, no I/O.
 *
 * A CONFIG entry is an operation (op.c's common header, type KVFS_OP_CONFIG, origin 0) followed
 * by the body
 *
 *     u8 version (1)  u32 count  count x (u32 id, u8 role: 1 voter, 2 observer)  u32 req_len  req
 *
 * ids strictly increasing in 1..KVFS_CONFIG_ID_MAX, at most KVFS_CONFIG_MAX members, at least one
 * voter; req (at most KVFS_CONFIG_REQ_MAX bytes, may be empty) names the request that asked for
 * the change, so that a new leader can tell a request that was carried out already.
 */
#ifndef KVFS_CONFIG_H
#define KVFS_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define KVFS_CONFIG_MAX     64u  /* members of one configuration at most */
#define KVFS_CONFIG_ID_MAX  255u /* node ids are 1..255 (KVFS_PEERS_MAX_SIZE) */
#define KVFS_CONFIG_REQ_MAX 64u  /* bytes of a CONFIG entry's request name at most */
#define KVFS_CONFIG_VERSION 1u
/* Bytes of one id bitmap (bit id of byte id / 8, least significant first; bit 0 unused). */
#define KVFS_CONFIG_BITMAP 32u
/* Longest config_format() text, NUL included: 64 ids of up to 3 digits and a comma, two keys. */
#define KVFS_CONFIG_TEXT_MAX 300u

enum kvfs_config_role {
	KVFS_ROLE_NONE = 0, /* not a member */
	KVFS_ROLE_VOTER = 1,
	KVFS_ROLE_OBSERVER = 2,
};

struct kvfs_config_member {
	uint32_t id;
	uint8_t role; /* KVFS_ROLE_VOTER or KVFS_ROLE_OBSERVER */
};

/* Members sorted by id, each once. */
struct kvfs_config {
	uint32_t n;
	struct kvfs_config_member m[KVFS_CONFIG_MAX];
};

/* A configuration as two id bitmaps (what EPOCH_ACK carries): voters is a subset of members. */
struct kvfs_config_bits {
	uint8_t voters[KVFS_CONFIG_BITMAP];
	uint8_t members[KVFS_CONFIG_BITMAP];
};

/* Voters 1..n, no observer: the configuration a cluster created with size n starts with.
 * Returns 0, or -EINVAL if n is 0 or above KVFS_CONFIG_MAX (c then holds nothing). */
int config_bootstrap(struct kvfs_config *c, uint32_t n);

/* 0 if c is well formed (ids strictly increasing in 1..KVFS_CONFIG_ID_MAX, n at most
 * KVFS_CONFIG_MAX, every role a voter or an observer, at least one voter), else -EINVAL. */
int config_check(const struct kvfs_config *c);

enum kvfs_config_role config_role(const struct kvfs_config *c, uint32_t id);
bool config_is_voter(const struct kvfs_config *c, uint32_t id);
bool config_is_member(const struct kvfs_config *c, uint32_t id);
uint32_t config_voters(const struct kvfs_config *c);
bool config_equal(const struct kvfs_config *a, const struct kvfs_config *b);

/*
 * THE majority test: whether the ids i with have[i] set (have has KVFS_CONFIG_ID_MAX + 1
 * entries) include more than half of c's voters. Observers and non-members count for nothing.
 */
bool config_quorum(const struct kvfs_config *c, const bool *have);

/*
 * Whether `next` may follow `cur` in one change: both well formed and they differ in exactly one
 * member's role (none, voter, observer) such that the voters change by at most one: add or
 * remove an observer, add or remove a voter, promote an observer, demote a voter. 0 or -EINVAL
 * (also for no change at all).
 */
int config_one_step(const struct kvfs_config *cur, const struct kvfs_config *next);

/* Sets c to c with id in `role` (KVFS_ROLE_NONE removes it). -EINVAL for a bad id or role,
 * -ENOSPC past KVFS_CONFIG_MAX members. Does not check that a voter remains. */
int config_set_role(struct kvfs_config *c, uint32_t id, enum kvfs_config_role role);

/* Bytes config_entry_encode() writes for c and a request name of req_len bytes. */
size_t config_entry_size(const struct kvfs_config *c, size_t req_len);

/*
 * Writes the CONFIG entry (an op: header with time_ns and origin 0, then the body) for c and the
 * request name req (NULL or up to KVFS_CONFIG_REQ_MAX bytes, no NUL) into buf. Returns the bytes
 * written, or -EINVAL (c malformed, req too long), -ENOBUFS (len too small).
 */
int config_entry_encode(const struct kvfs_config *c, const char *req, uint8_t *buf, size_t len);

/*
 * Decodes a log entry's data. Returns 0 and fills *c (and req, a NUL-terminated copy of the
 * request name, if req is not NULL; it has KVFS_CONFIG_REQ_MAX + 1 bytes); -ENOENT if the data
 * is not a CONFIG operation (another op, a no-op, bytes too short for an op header); -EBADMSG
 * for a CONFIG operation that is malformed (strictly: exact length, version 1, ids increasing in
 * range, roles known, at least one voter).
 */
int config_entry_decode(const uint8_t *data, size_t len, struct kvfs_config *c, char *req);

/* The body alone (version .. members, then req_len and req), as op.c lays it out after the op
 * header; body_len is exact. Same results as config_entry_decode() without -ENOENT. */
int config_body_decode(const uint8_t *body, size_t body_len, struct kvfs_config *c, char *req);

/* A decoded KVFS_OP_CONFIG operation's configuration (op->data: version .. the last member).
 * 0, or -EBADMSG (not a CONFIG op, or malformed as config_body_decode() says). */
struct kvfs_op;
int config_from_op(const struct kvfs_op *op, struct kvfs_config *c);

/* c as two bitmaps, and back: -EINVAL if the bitmaps are not a well-formed configuration
 * (bit 0 set, a voter that is not a member, more than KVFS_CONFIG_MAX members, no voter). */
void config_to_bits(const struct kvfs_config *c, struct kvfs_config_bits *b);
int config_from_bits(const struct kvfs_config_bits *b, struct kvfs_config *c);

/*
 * "voters=1,2,3 observers=6" (" observers=..." only when there are observers) into buf (len
 * bytes; KVFS_CONFIG_TEXT_MAX suffice). Returns the length written (without the NUL), or
 * -ENOBUFS.
 */
int config_format(const struct kvfs_config *c, char *buf, size_t len);

/*
 * The reverse of config_format(): "voters=<ids>" then optionally " observers=<ids>", ids
 * decimal 1..255 separated by commas, in any order, each at most once in all. Returns 0, or
 * -EINVAL with a one-line reason in err (errlen bytes, may be NULL).
 */
int config_parse(const char *s, struct kvfs_config *c, char *err, size_t errlen);

#endif /* KVFS_CONFIG_H */
