/*
 * The node: one replica's running state, owned by the libuv loop thread. It recovers the store
 * from the data directory (newest snapshot + the log after it), takes operations proposed by the
 * filesystem, writes them to the log with group commit (everything proposed while one fdatasync
 * is in flight goes into the next one, off the loop thread), applies them to the store once they
 * are durable, and calls each proposer back with the outcome. It takes snapshots in the
 * background and truncates the log behind them.
 *
 * Today a node is a cluster of one (standalone): durable on its own disk = committed. Replication
 * plugs in between "durable here" and "applied" without changing this interface.
 */
#ifndef KVFS_NODE_H
#define KVFS_NODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct uv_loop_s;
struct kvfs_op;
struct kvfs_apply_result;
struct kvfs_status;
struct kvfs_store;
struct kvfs_node;

struct kvfs_node_config {
	uint32_t id;
	const char *data_dir;
	uint64_t max_value;      /* value size limit put into every proposed op */
	uint64_t segment_bytes;  /* log segment size; 0 = default */
	uint64_t snapshot_bytes; /* snapshot after this many log bytes; 0 = default */
	const char *election;    /* shown in /.status */
	uint32_t priority;       /* shown in /.status */
	const char *cluster_id;  /* the cluster the data directory must belong to; NULL or
	                            "standalone" for a node without ZooKeeper */
};

/*
 * How a node in a cluster learns whether it may commit writes, and what /.status says about the
 * cluster. Both are called on the loop thread and must not block.
 */
struct kvfs_node_cluster {
	/* True if this node leads now, with *epoch its epoch; writes elsewhere get -EROFS. */
	bool (*leading)(void *arg, uint64_t *epoch);
	/* Overwrites role, leader, leader_addr, epoch and zk in st. */
	void (*status)(void *arg, struct kvfs_status *st);
	void *arg;
};

/* Called once per proposal, on the loop thread, when it has been applied (err = its outcome, ino
 * = the inode it created or changed) or has failed (-EIO, -ENOSPC, -ESHUTDOWN ...). */
typedef void (*kvfs_node_done_fn)(void *arg, int err, uint64_t ino);

/* Called on the loop thread after each operation is applied, before its proposer is called. */
typedef void (*kvfs_node_apply_fn)(void *arg, const struct kvfs_op *op,
                                   const struct kvfs_apply_result *res);

/* Called on the loop thread when the node cannot go on (an fsync failed): the caller must stop. */
typedef void (*kvfs_node_fatal_fn)(void *arg);

/*
 * Opens the data directory (creating it if missing), locks it against a second kvfs, and recovers
 * the store. Runs synchronously, before the loop exists. Returns 0, or a negative errno with a
 * one-line explanation in err: -EBUSY (in use by another kvfs), -EBADMSG (damaged log or
 * snapshot), -EINVAL (belongs to another node id), -EXDEV (belongs to another cluster), other
 * errnos for I/O trouble.
 */
int node_open(struct kvfs_node **out, const struct kvfs_node_config *cfg, char *err, size_t errlen);

/* Makes the node a cluster member: it takes writes only while cluster->leading() says so. Call
 * before node_start; cluster must outlive the node. Without it the node is standalone. */
void node_set_cluster(struct kvfs_node *n, const struct kvfs_node_cluster *cluster);

/* Attaches the node to loop; it starts taking proposals. Returns 0 or a negative errno. */
int node_start(struct kvfs_node *n, struct uv_loop_s *loop, kvfs_node_apply_fn on_apply,
               kvfs_node_fatal_fn on_fatal, void *arg);

/*
 * Proposes op. The node fills in origin, seq, time_ns and (if 0) max_value, and copies what it
 * needs, so op and its buffers may go once this returns. On success returns 0 and calls cb
 * exactly once later; on failure (-EROFS on a cluster node that does not lead, -ESHUTDOWN while
 * closing, -ENOMEM) returns it and never calls cb.
 */
int node_propose(struct kvfs_node *n, struct kvfs_op *op, kvfs_node_done_fn cb, void *arg);

/* Calls cb (err 0, ino 0) once every operation proposed before this call has completed. Same
 * return and callback rules as node_propose. */
int node_sync(struct kvfs_node *n, kvfs_node_done_fn cb, void *arg);

/* True while proposals are waiting or being written. */
int node_busy(const struct kvfs_node *n);

struct kvfs_store *node_store(struct kvfs_node *n);
void node_status(const struct kvfs_node *n, struct kvfs_status *st);

/*
 * Stops taking proposals, lets those in flight finish, closes the log and frees the node. Must be
 * called on the loop thread after node_start, or without a loop after node_open alone; the loop
 * must keep running until cb is called (cb may be NULL; it is called with arg). After node_open
 * alone, everything is freed before node_close returns and cb is called at once.
 */
void node_close(struct kvfs_node *n, void (*cb)(void *arg), void *arg);

#endif /* KVFS_NODE_H */
