/*
 * What sim_fwd.c (the nodes' forwarding and its network) and sim_client.c (clients, stores,
 * invariants) share. Test code only.
 */
#ifndef KVFS_TESTS_UNIT_REPLICA_SIM_FWD_H
#define KVFS_TESTS_UNIT_REPLICA_SIM_FWD_H

#include <stdbool.h>
#include <stdint.h>

#include "kvfs/fwd.h"
#include "sim.h"

#define MAX_WRITES 1024 /* per run */
#define KEYS       3
#define CALM_MS    20 /* the clock's step in the calm */

enum wstate { W_PENDING = 1, W_DONE, W_EIO, W_REFUSED, W_LOST };

/* A client's write or barrier, by token (its index in sim_fwd.w). */
struct wrec {
	struct sim *s;
	uint64_t token;
	uint32_t node, incarnation;
	uint64_t order; /* submission order, over the run */
	bool barrier;
	bool calm; /* submitted after healing: must succeed */
	enum wstate state;
	int err; /* what its callback said */
	uint64_t ino;
	uint64_t eff_index; /* where it took effect; 0 nowhere (yet) */
	int eff_err;
	uint64_t eff_ino;
};

struct fmsg {
	bool reply;
	uint32_t from, to, origin;
	uint64_t seq;
	int err;
	uint8_t *op;
	uint32_t len;
};

struct sim_fwd {
	struct wrec w[MAX_WRITES + 1];
	uint64_t nw;
	uint32_t npending[MAXN + 1]; /* by node: records waiting (F6) */
	struct fmsg *msgs;
	size_t nmsgs, mcap;
	bool conn[MAXN + 1][MAXN + 1]; /* a's connection to b is up, as a was told */
	uint64_t max_value[MAXN + 1];
	uint64_t timeout_ms;
	bool broken[MAXN + 1][MAXN + 1]; /* a lost message broke the connection (TCP) */
	uint64_t forwards, refusals, renumbered, reports[KVFS_FWD_INVALID + 1];
};

/* sim_client.c */
void sim_client_rebuild(struct node *nd); /* nd's store from the committed entries 1..applied */
void sim_client_tally(const struct sim_fwd *fw); /* adds a finished run to the totals */

#endif /* KVFS_TESTS_UNIT_REPLICA_SIM_FWD_H */
