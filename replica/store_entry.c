/*
 * A committed log entry's bytes to an applied outcome (see store_entry_apply() in store.h): the
 * one rule that recovery (node_uv.c), group commit and replication (node_cluster_uv.c) share,
 * so that an entry the decoder does not understand has the same outcome on every replica and at
 * every restart (a no-op failed with EBADMSG) instead of stopping them all. Pure.
 */
#include "kvfs/store.h"

#include <errno.h>
#include <string.h>

#include "kvfs/op.h"

int store_entry_apply(struct kvfs_store *s, uint64_t epoch, uint64_t index, const uint8_t *data,
                      size_t len, struct kvfs_op *op, struct kvfs_apply_result *res)
{
	bool bad = false;
	int rv;

	if (len == 0 || op_decode(op, data, len) < 0) {
		/* A NOOP. The checksum vouches for the bytes, so every replica holds the same ones
		 * and decodes them the same way: a failure here is deterministic. */
		bad = len != 0;
		memset(op, 0, sizeof(*op));
		op->type = KVFS_OP_NOOP;
	}
	rv = store_apply(s, epoch, index, op, res);
	if (rv == 0 && bad)
		res->err = -EBADMSG;
	return rv;
}
