/*
 * Membership requests (`kvfs member ...`), the pure part: what a request znode and its result
 * say, and which configuration a request asks for. The CLI creates a persistent sequential znode
 * /kvfs/<cluster>/requests/req-<10 digits> holding a request; the established leader (only)
 * takes the oldest pending one, proposes the configuration change through the log
 * (repl_propose_config, with the znode's name in the CONFIG entry so that a later leader can tell
 * a request already done), and writes the result into the same znode; the CLI prints it and
 * deletes the znode.
 *
 *   request data  "op=add id=4 role=voter"   op: add | remove | promote | demote
 *                 [force=1]                    role (add only): voter | observer
 *   result data   the request's words, then "state=waiting why=..." | "state=done index=I
 *                 voters=1,2,3,4 observers=6" | "state=refused why=..."  (why: the rest of the
 *                 data, free text)
 *
 * `add ID` as a voter is two steps (Raft's catch-up, etcd's learners): add as an observer, wait
 * until it is within KVFS_CAUGHT_UP_ENTRIES of the commit index, then promote.
 *
 * Pure: no ZooKeeper header, no I/O. Every byte of a znode is hostile input.
 */
#ifndef KVFS_MEMBER_REQ_H
#define KVFS_MEMBER_REQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kvfs/config.h"

enum kvfs_member_op { KVFS_MEMBER_ADD = 1, KVFS_MEMBER_REMOVE, KVFS_MEMBER_PROMOTE, KVFS_MEMBER_DEMOTE };
enum kvfs_member_state {
	KVFS_MEMBER_PENDING = 0, /* no result yet */
	KVFS_MEMBER_WAITING,     /* taken, not done yet (why says for what) */
	KVFS_MEMBER_DONE,
	KVFS_MEMBER_REFUSED,
};

#define KVFS_MEMBER_WHY_MAX 200u

struct kvfs_member_req {
	char name[KVFS_CONFIG_REQ_MAX]; /* the znode's name, "req-0000000012" */
	enum kvfs_member_op op;
	uint32_t id;       /* 1..KVFS_CONFIG_ID_MAX */
	uint8_t role;      /* add: KVFS_ROLE_VOTER or KVFS_ROLE_OBSERVER */
	bool force;
};

struct kvfs_member_result {
	enum kvfs_member_state state;
	uint64_t index;          /* done: the CONFIG entry's index */
	struct kvfs_config cfg;  /* done: the configuration in force after it */
	char why[KVFS_MEMBER_WHY_MAX]; /* waiting / refused: one line */
};

/* Parses a request znode's data (the name is set by the caller). 0 or -EINVAL. */
int member_req_parse(const char *data, size_t len, struct kvfs_member_req *r);
/* Writes a request's data into buf (size bytes). Returns the length, like snprintf. */
size_t member_req_format(const struct kvfs_member_req *r, char *buf, size_t size);

/* Parses the state part of a znode's data (PENDING if there is none). 0 or -EINVAL. */
int member_result_parse(const char *data, size_t len, struct kvfs_member_result *res);
/* Writes request + result into buf, as the leader stores them. Length, like snprintf. */
size_t member_result_format(const struct kvfs_member_req *r, const struct kvfs_member_result *res,
                            char *buf, size_t size);

/*
 * The next configuration the leader should propose for r, given the configuration in force cur,
 * this leader's id, and whether r->id has caught up (match within KVFS_CAUGHT_UP_ENTRIES of the
 * commit index). Returns:
 *   0           *next is one step from cur (config_one_step) and should be proposed;
 *   1           r is already satisfied by cur (done: a request repeated or done by an earlier
 *               leader);
 *   -EAGAIN     wait (why: "node 4 is 3127 entries behind"; an add as voter that must catch up
 *               as an observer first gives *next = cur + observer and returns 0 first);
 *   -EXDEV      r removes or demotes this leader: hand the lead over first (why says so);
 *   -EINVAL     refused (why: unknown id, the last voter, not a member, already a voter ...).
 */
int member_req_next(const struct kvfs_config *cur, const struct kvfs_member_req *r,
                    uint32_t leader_id, bool caught_up, struct kvfs_config *next, char *why,
                    size_t len);

#endif /* KVFS_MEMBER_REQ_H */
