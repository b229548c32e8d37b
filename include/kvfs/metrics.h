/*
 * Metrics rendering: /.metrics and the --metrics-listen endpoint, in the Prometheus text
 * exposition format 0.0.4. The facts are those of /.status (struct kvfs_status) plus counters
 * and latency histograms that the loop thread keeps as plain numbers (struct kvfs_hist: fixed
 * buckets, one increment per observation).
 *
 * Pure: the caller gathers facts and counters into struct kvfs_metrics; this module only
 * formats them (and metrics_observe() counts).
 */
#ifndef KVFS_METRICS_H
#define KVFS_METRICS_H

#include <stddef.h>
#include <stdint.h>

struct kvfs_status;

/* Upper bounds of the histogram buckets, in microseconds (100 us .. 10 s). */
#define KVFS_HIST_BOUNDS 16
extern const uint64_t kvfs_hist_bounds_us[KVFS_HIST_BOUNDS];

/* A latency histogram: buckets[i] counts observations <= bound i (and above bound i - 1);
 * buckets[KVFS_HIST_BOUNDS] those above the last bound. Zeroed is empty. */
struct kvfs_hist {
	uint64_t buckets[KVFS_HIST_BOUNDS + 1];
	uint64_t count;
	uint64_t sum_us;
};

/* Counts one observation of `us` microseconds. */
void metrics_observe(struct kvfs_hist *h, uint64_t us);

/* What the filesystem counts, as FUSE callers see it (fs/fuse_metrics.c). */
struct kvfs_fs_counters {
	uint64_t writes;        /* changes answered: create, mkdir, unlink, rename, setattr ...
	                           and flush/fsync that carried a commit */
	uint64_t reads;         /* read() requests on files */
	uint64_t eio;           /* requests answered EIO (a commit or read barrier not reached in
	                           time, outcome unknown) */
	struct kvfs_hist write; /* request to reply */
	struct kvfs_hist read;  /* request to reply */
	struct kvfs_hist read_wait; /* requests held until the node may answer reads (linearizable
	                               barrier, catching up after a start) */
};

/* What the node counts (node_metrics()). */
struct kvfs_node_counters {
	struct kvfs_hist fsync;  /* one group-commit write + fdatasync of the log */
	uint64_t fsync_bytes;    /* bytes those wrote */
	uint64_t snapshot_bytes; /* size of the newest snapshot file; 0 if none */
};

struct kvfs_metrics {
	const struct kvfs_status *st;
	const struct kvfs_fs_counters *fs;     /* NULL: shown as zero */
	const struct kvfs_node_counters *node; /* NULL: shown as zero */
};

/*
 * Renders m into buf (size bytes) in the Prometheus text format 0.0.4. Returns the length the
 * full text has (like snprintf): if it is >= size the output was cut, and the caller should call
 * again with a larger buffer.
 */
size_t metrics_render(const struct kvfs_metrics *m, char *buf, size_t size);

#endif /* KVFS_METRICS_H */
