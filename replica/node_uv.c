/*
 * The node on libuv (see node.h): recovery at start, group commit, apply, background snapshots.
 *
 * There is one write path, standalone or in a cluster: node_propose() validates an operation and
 * hands it to write forwarding (fwd.c, node_fwd_uv.c), which proposes it to the replication
 * core (repl.c) when this node leads, or forwards it to the leader. A standalone node is a
 * cluster of one that elects itself (node_cluster_uv.c). The core's persist actions become
 * sealed log records in the pending batch; after each loop iteration's I/O (a uv_check handle),
 * if no disk job is in flight, the pending batch becomes the in-flight one and a libuv worker
 * appends it with one write and one fdatasync (group commit: everything proposed meanwhile
 * waits in the next batch, so fdatasyncs per second stay at what the disk can do while
 * operations per fdatasync grow with the load). The completion, back on the loop thread, tells
 * the core, which commits and applies, and each proposer is called when its entry is applied.
 *
 * Only one disk job runs at a time: it appends a batch and/or cuts the log behind the newest
 * snapshots, so the log is touched by one thread at a time (the rule log.h sets). A job that
 * fails for lack of file descriptors (disk.h) is not a failed disk: it runs again after the
 * next tick, before any newer one (a cluster of one fails its writers with EIO instead). Snapshots are
 * captured on the loop thread (cheap: metadata and value references) and written by another
 * worker, concurrently with appends: they touch only snap-* files.
 */
#include "kvfs/node.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "kvfs/changes.h"
#include "kvfs/disk.h"
#include "kvfs/log.h"
#include "kvfs/logging.h"
#include "kvfs/op.h"
#include "kvfs/repl.h"
#include "kvfs/snapshot.h"
#include "kvfs/status.h"
#include "kvfs/store.h"
#include "node_internal.h"

#define SNAPSHOT_BYTES_DEFAULT (64u << 20)
#define SNAPSHOTS_KEPT         2

int64_t node_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/*
 * Takes the data directory's lock file, so a second kvfs on the same directory is refused instead
 * of interleaving its writes with ours. The lock holds our pid for the message the loser prints.
 */
static int lock_data_dir(struct kvfs_node *n, char *err, size_t errlen)
{
	char path[PATH_MAX], pid[32];
	int fd, len;

	snprintf(path, sizeof(path), "%s/lock", n->data_dir);
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, KVFS_FILE_MODE);
	if (fd < 0) {
		int rv = -errno;

		snprintf(err, errlen, "cannot use data directory %s: %s", n->data_dir,
		         strerror(-rv));
		return rv;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		ssize_t got = pread(fd, pid, sizeof(pid) - 1, 0);

		pid[got > 0 ? got : 0] = '\0';
		pid[strcspn(pid, "\n")] = '\0';
		snprintf(err, errlen,
		         "data directory %s is in use by another kvfs (pid %s); stop it or choose "
		         "another --data",
		         n->data_dir, pid[0] ? pid : "unknown");
		close(fd);
		return -EBUSY;
	}
	len = snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
	if (ftruncate(fd, 0) < 0 || pwrite(fd, pid, (size_t)len, 0) != len) {
		int rv = -errno;

		snprintf(err, errlen, "cannot write %s: %s", path, strerror(-rv));
		close(fd);
		return rv;
	}
	n->lock_fd = fd;
	return 0;
}

/*
 * The metadata file names the node the directory belongs to, so that starting node 2 on node 1's
 * data is refused rather than silently merging two replicas' histories. Written once, atomically.
 */
static int check_meta(struct kvfs_node *n, char *err, size_t errlen)
{
	const char *want = n->cfg.cluster_id ? n->cfg.cluster_id : "standalone";
	char path[PATH_MAX], tmp[PATH_MAX], buf[256], cluster[80] = "standalone";
	const char *line;
	unsigned long id;
	FILE *f;
	int fd, len, rv;

	snprintf(path, sizeof(path), "%s/meta", n->data_dir);
	f = fopen(path, "re");
	if (f) {
		size_t got = fread(buf, 1, sizeof(buf) - 1, f);

		fclose(f);
		buf[got] = '\0';
		if (sscanf(buf, "kvfs-meta 1\nnode: %lu", &id) != 1) {
			snprintf(
			    err, errlen,
			    "%s is not a kvfs metadata file; is %s another program's directory?",
			    path, n->data_dir);
			return -EBADMSG;
		}
		/* Directories made before clusters existed have no cluster line: standalone. */
		line = strstr(buf, "\ncluster: ");
		if (line)
			sscanf(line, "\ncluster: %79s", cluster);
		if (strcmp(cluster, want) != 0) {
			if (strcmp(cluster, "standalone") == 0)
				snprintf(
				    err, errlen,
				    "data directory %s holds a standalone node's data; a cluster "
				    "member needs a fresh --data directory",
				    n->data_dir);
			else
				snprintf(
				    err, errlen,
				    "data directory %s belongs to cluster %s, not to this cluster "
				    "(%s); use this cluster's --data or a fresh directory",
				    n->data_dir, cluster, want);
			return -EXDEV;
		}
		if (id != n->cfg.id) {
			snprintf(
			    err, errlen,
			    "data directory %s belongs to node %lu, not node %u; use --id %lu or "
			    "another --data",
			    n->data_dir, id, n->cfg.id, id);
			return -EINVAL;
		}
		return 0;
	}
	if (errno != ENOENT) {
		rv = -errno;
		snprintf(err, errlen, "cannot read %s: %s", path, strerror(-rv));
		return rv;
	}
	snprintf(tmp, sizeof(tmp), "%s/meta.tmp", n->data_dir);
	len = snprintf(buf, sizeof(buf), "kvfs-meta 1\nnode: %u\ncluster: %s\n", n->cfg.id, want);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, KVFS_FILE_MODE);
	if (fd < 0)
		goto err_io;
	if (write(fd, buf, (size_t)len) != len || fsync(fd) < 0) {
		close(fd);
		goto err_io;
	}
	close(fd);
	if (rename(tmp, path) < 0)
		goto err_io;
	rv = disk_fsync_dir(n->data_dir);
	if (rv < 0) {
		snprintf(err, errlen, "cannot fsync %s: %s", n->data_dir, strerror(-rv));
		return rv;
	}
	return 0;

err_io:
	rv = -errno;
	snprintf(err, errlen, "cannot write %s: %s", path, strerror(-rv));
	return rv;
}

int node_apply_entry(struct kvfs_node *n, uint64_t epoch, uint64_t index, const uint8_t *data,
                     size_t len, struct kvfs_op *op, struct kvfs_apply_result *res)
{
	int rv = store_entry_apply(n->store, epoch, index, data, len, op, res);

	if (rv == 0)
		changes_record(n->changes, n->store, epoch, index, op, res);

	if (rv == 0 && res->err == -EBADMSG && op->type == KVFS_OP_NOOP)
		log_warn("log entry %" PRIu64 " is not an operation this kvfs understands; applied "
		         "as a no-op that failed (EBADMSG), as on every replica",
		         index);
	return rv;
}

struct replay {
	struct kvfs_node *node;
	uint64_t snapshot_index;
	char *err;
	size_t errlen;
	/* the records after the snapshot, kept for the replication core, which applies them once
	 * it knows they are committed */
	uint64_t snapshot_epoch;
	bool diverged; /* the log went another way than the snapshot (see node_open) */
	struct kvfs_repl_entry *log;
	size_t n, cap;
};

/* Keeps a copy of rec for the replication core. */
static int collect_record(struct replay *r, const struct kvfs_log_record *rec)
{
	uint8_t *data = NULL;

	if (r->n == r->cap) {
		size_t cap = r->cap ? 2 * r->cap : 1024;
		struct kvfs_repl_entry *log = realloc(r->log, cap * sizeof(*log));

		if (!log)
			return -ENOMEM;
		r->log = log;
		r->cap = cap;
	}
	if (rec->len) {
		data = malloc(rec->len);
		if (!data)
			return -ENOMEM;
		memcpy(data, rec->payload, rec->len);
	}
	r->log[r->n++] = (struct kvfs_repl_entry){
	    .epoch = rec->epoch, .index = rec->index, .len = rec->len, .data = data};
	return 0;
}

static void free_collected(struct replay *r)
{
	for (size_t i = 0; i < r->n; i++)
		free((void *)r->log[i].data);
	free(r->log);
}

/* log_open's callback: keeps each record after the snapshot for the replication core (which
 * applies the committed ones: ncl_open), checking there is no gap. */
static int replay_record(void *arg, const struct kvfs_log_record *rec)
{
	struct replay *r = arg;
	uint64_t want;

	if (rec->index == r->snapshot_index && rec->epoch != r->snapshot_epoch)
		r->diverged = true;
	if (rec->index <= r->snapshot_index)
		return 0;
	if (r->n == 0 && rec->epoch < r->snapshot_epoch)
		r->diverged = true;
	want = r->n ? r->log[r->n - 1].index + 1 : r->snapshot_index + 1;
	if (rec->index != want) {
		snprintf(r->err, r->errlen,
		         "log in %s jumps from index %" PRIu64 " to %" PRIu64
		         " (entries are missing); refusing to start",
		         r->node->data_dir, want - 1, rec->index);
		return -EBADMSG;
	}
	return collect_record(r, rec);
}

static void batch_free(struct batch *b);

static void node_free(struct kvfs_node *n)
{
	if (n->cl)
		ncl_free(n);
	if (n->log)
		log_close(n->log);
	if (n->store)
		store_close(n->store);
	changes_close(n->changes);
	if (n->lock_fd >= 0)
		close(n->lock_fd);
	if (n->commit_fd >= 0)
		close(n->commit_fd);
	if (n->retry)
		batch_free(n->retry);
	free(n->data_dir);
	free(n);
}

int node_open(struct kvfs_node **out, const struct kvfs_node_config *cfg, char *err, size_t errlen)
{
	struct kvfs_log_options lopts = {.segment_bytes = cfg->segment_bytes};
	struct kvfs_node *n;
	struct replay r;
	char note[512] = "";
	uint64_t snap_index = 0, last;
	struct stat st;
	int rv;

	n = calloc(1, sizeof(*n));
	if (!n)
		return -ENOMEM;
	n->cfg = *cfg;
	n->lock_fd = -1;
	n->commit_fd = -1;
	n->data_dir = strdup(cfg->data_dir);
	if (!n->data_dir) {
		rv = -ENOMEM;
		goto err_free;
	}
	rv = disk_make_dirs(n->data_dir);
	if (rv == 0 && (stat(n->data_dir, &st) < 0 || !S_ISDIR(st.st_mode)))
		rv = -ENOTDIR;
	if (rv == 0 && access(n->data_dir, W_OK | X_OK) < 0)
		rv = -errno;
	if (rv < 0) {
		snprintf(err, errlen, "cannot use data directory %s: %s", n->data_dir,
		         strerror(-rv));
		goto err_free;
	}
	rv = lock_data_dir(n, err, errlen);
	if (rv < 0)
		goto err_free;
	{
		char msg[PATH_MAX + 256];

		/* Values are private to their owners on the mount: so are they here. */
		if (disk_tighten(n->data_dir, msg, sizeof(msg)) != 0)
			log_info("%s", msg);
	}
	/* A descriptor kept back, so that running out of them (idle connections) fails an
	 * operation for a while rather than stopping the node (disk.h). */
	rv = disk_reserve_init();
	if (rv < 0)
		log_warn("cannot keep a reserve file descriptor: %s", strerror(-rv));
	rv = nrejoin_prepare(n, err, errlen);
	if (rv < 0)
		goto err_free;
	rv = check_meta(n, err, errlen);
	if (rv < 0)
		goto err_free;
	{
		char path[PATH_MAX];

		snprintf(path, sizeof(path), "%s/commit", n->data_dir);
		n->commit_fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, KVFS_FILE_MODE);
		if (n->commit_fd < 0) {
			rv = -errno;
			snprintf(err, errlen, "cannot open %s: %s", path, strerror(-rv));
			goto err_free;
		}
	}
	rv = snapshot_load_latest(n->data_dir, &n->store, &snap_index, note, sizeof(note));
	if (rv < 0) {
		snprintf(err, errlen, "%s", note);
		goto err_free;
	}
	if (note[0])
		log_warn("%s", note);
	rv = changes_init(&n->changes,
	                  cfg->changes_history ? cfg->changes_history : KVFS_CHANGES_DEFAULT);
	if (rv < 0) {
		snprintf(err, errlen, "cannot keep %u change feed records: %s",
		         cfg->changes_history ? cfg->changes_history : KVFS_CHANGES_DEFAULT,
		         strerror(-rv));
		goto err_free;
	}
	/* What the snapshot holds came in whole: the feed starts after it. */
	changes_reset(n->changes, store_applied_index(n->store) + 1);
	r = (struct replay){.node = n,
	                    .snapshot_index = snap_index,
	                    .err = err,
	                    .errlen = errlen,
	                    .snapshot_epoch = store_applied_epoch(n->store)};
	err[0] = '\0';
	rv = log_open(&n->log, n->data_dir, &lopts, replay_record, &r, err, errlen);
	if (rv == 0 && r.diverged) {
		/* The snapshot holds committed entries; a log that went another way at its index
		 * holds none after it (a crash came before a truncation was durable): drop it. */
		log_warn("the log in %s after index %" PRIu64 " is not the committed history; "
		         "dropping it (the leader sends the right entries)",
		         n->data_dir, snap_index);
		free_collected(&r);
		r.log = NULL;
		r.n = 0;
		rv = log_reset(n->log, snap_index + 1);
		if (rv < 0)
			snprintf(err, errlen, "cannot reset the log in %s: %s", n->data_dir,
			         strerror(-rv));
	}
	if (rv == 0)
		rv = ncl_open(n, snap_index, store_applied_epoch(n->store), r.log, r.n, err, errlen);
	free_collected(&r);
	if (rv < 0)
		goto err_free;
	last = log_last_index(n->log);
	if (last != 0 && last < snap_index) {
		/* A snapshot from the leader replaced the whole log, and the removal of the old
		 * segments was cut short: finish it. */
		rv = log_reset(n->log, snap_index + 1);
		if (rv < 0) {
			snprintf(err, errlen, "cannot remove the log in %s that a snapshot replaced: %s",
			         n->data_dir, strerror(-rv));
			goto err_free;
		}
		last = 0;
	}
	if (last != 0 && last < snap_index) {
		snprintf(err, errlen,
		         "log in %s ends at index %" PRIu64 " but the snapshot is at %" PRIu64
		         "; refusing to start",
		         n->data_dir, last, snap_index);
		rv = -EBADMSG;
		goto err_free;
	}
	if (log_first_index(n->log) > snap_index + 1) {
		snprintf(err, errlen,
		         "log in %s starts at index %" PRIu64
		         " but the newest snapshot ends at %" PRIu64
		         " (entries are missing); refusing to start",
		         n->data_dir, log_first_index(n->log), snap_index);
		rv = -EBADMSG;
		goto err_free;
	}
	n->snapshot_index = snap_index;
	n->snapshot_epoch = r.snapshot_epoch;
	n->log_bytes = log_bytes(n->log);
	n->bytes_since_snapshot = n->log_bytes;
	/* Sequence numbers must grow across restarts, or the exactly-once table would take a new
	 * operation for a duplicate of an old one: start from the clock (in µs), and in any case
	 * past the last one of ours the store remembers (and, in a cluster, the log holds:
	 * ncl_open), should the clock have gone back. */
	{
		uint64_t clk = (uint64_t)(node_now_ns() / 1000);
		struct kvfs_session sess;

		if (n->next_seq < clk)
			n->next_seq = clk;
		if (store_session_get(n->store, n->cfg.id, &sess) && sess.seq >= n->next_seq)
			n->next_seq = sess.seq + 1;
	}
	*out = n;
	log_info("recovered %s: snapshot at %" PRIu64 ", log to %" PRIu64 ", %" PRIu64 " keys%s",
	         n->data_dir, snap_index, last ? last : store_applied_index(n->store),
	         store_inode_count(n->store) - 1,
	         n->cfg.cluster_size ? " (entries after the snapshot apply once the cluster commits "
	                               "them)"
	                             : "");
	return 0;

err_free:
	node_free(n);
	assert(rv != 0);
	return rv;
}

/* A new empty batch, or NULL if out of memory. */
static struct batch *batch_new(struct kvfs_node *n)
{
	struct batch *b = calloc(1, sizeof(*b));

	if (b)
		b->node = n;
	return b;
}

static void batch_free(struct batch *b)
{
	free(b->buf);
	free(b);
}

int node_batch_reserve(struct batch *b, size_t bytes)
{
	if (b->len + bytes > b->cap) {
		size_t cap = b->cap ? b->cap : 4096;
		uint8_t *buf;

		while (cap < b->len + bytes)
			cap *= 2;
		buf = realloc(b->buf, cap);
		if (!buf)
			return -ENOMEM;
		b->buf = buf;
		b->cap = cap;
	}
	return 0;
}

/* The batch that new proposals go into, created on demand. */
struct batch *node_pending_batch(struct kvfs_node *n)
{
	if (!n->pending)
		n->pending = batch_new(n);
	return n->pending;
}

struct kvfs_op_limits node_limits(const struct kvfs_node *n)
{
	uint64_t max = n->cfg.max_value;

	if (max == 0 || max > KVFS_DATA_MAX)
		max = KVFS_DATA_MAX;
	return (struct kvfs_op_limits){.max_value = max};
}

uint64_t node_now_ms(const struct kvfs_node *n)
{
	return uv_now(n->loop);
}

int node_propose(struct kvfs_node *n, struct kvfs_op *op, uint64_t deadline, kvfs_node_done_fn cb,
                 void *arg)
{
	struct kvfs_op_limits lim = node_limits(n);
	int rv;

	if (n->fatal)
		return -EIO;
	if (n->closing)
		return -ESHUTDOWN;
	/* Our own limits: when we lead, no one checks after us (forwarded writes are checked
	 * again by the leader, with its limits: fwd_on_forward). */
	if (op->max_value == 0)
		op->max_value = lim.max_value;
	op->flags |= KVFS_OP_RULES2; /* every new op applies under this release's rules (op.h) */
	rv = op_validate(op, &lim);
	if (rv < 0)
		return rv;
	return ncl_propose(n, op, deadline, cb, arg);
}

int node_sync(struct kvfs_node *n, kvfs_node_done_fn cb, void *arg)
{
	if (n->fatal)
		return -EIO;
	if (n->closing)
		return -ESHUTDOWN;
	return ncl_sync(n, cb, arg);
}

int node_busy(const struct kvfs_node *n)
{
	return n->pending || n->inflight || n->retry || ncl_busy(n);
}

/*
 * The node cannot go on (an fsync or an apply failed; the caller has logged why): what waits in
 * the pending batch fails now, nothing new starts, and the owner hears of it (on_fatal). In a
 * cluster the replication core is left alone from here and this node's forwarded writes and
 * read barriers fail at the next loop iteration (ncl_check): this may run inside a walk of those
 * lists.
 */
void node_go_fatal(struct kvfs_node *n)
{
	if (n->fatal)
		return;
	n->fatal = true;
	if (n->pending) {
		batch_free(n->pending); /* its writers hear EIO from ncl_check */
		n->pending = NULL;
	}
	if (n->on_fatal)
		n->on_fatal(n->cb_arg);
}

/* The disk job, on a worker thread: reset or truncate, append the batch, then cut the log
 * behind the snapshots. */
static void disk_work(uv_work_t *req)
{
	struct batch *b = req->data;
	struct kvfs_node *n = b->node;

	/* In the order they were asked for: a truncation and the records after it were asked for
	 * before the snapshot behind the compaction was taken. */
	if (b->reset_next)
		b->trunc_rv = log_reset(n->log, b->reset_next);
	else if (b->trunc)
		b->trunc_rv = log_truncate_after(n->log, b->trunc_after);
	if (b->len && b->trunc_rv == 0) {
		uint64_t t0 = uv_hrtime();

		b->append_rv = log_append_batch(n->log, b->buf, b->len, b->first, b->last);
		b->append_us = (uv_hrtime() - t0) / 1000;
	}
	if (b->compact_upto && !b->reset_next && b->trunc_rv == 0 && b->append_rv == 0)
		b->compact_rv = log_compact(n->log, b->compact_upto);
	if (b->commit_write && b->trunc_rv == 0 && b->append_rv == 0) {
		uint8_t rec[24];

		ncl_commit_encode(rec, b->commit_write);
		if (pwrite(n->commit_fd, rec, sizeof(rec), 0) != (ssize_t)sizeof(rec))
			b->commit_rv = errno ? -errno : -EIO;
	}
}

static void kick(struct kvfs_node *n);

/*
 * Whether job b failed only for lack of descriptors (disk_transient()), before it changed what
 * it failed on: a truncation that could not open its segment, or an append that could not open
 * a new one (log_truncate_after and log_append_batch leave the log as it was then).
 */
static bool failed_transiently(const struct batch *b)
{
	if (b->trunc_rv < 0)
		return disk_transient(b->trunc_rv);
	return b->append_rv < 0 && disk_transient(b->append_rv);
}

/*
 * Keeps job b, which failed_transiently(), to run again before anything newer (kick() runs it
 * after the next tick). What it did already is not done again: a reset or truncation that
 * succeeded, with the compaction behind it (asked for before the reset).
 */
static void keep_for_retry(struct kvfs_node *n, struct batch *b)
{
	/* Once per episode at warn (a retry per tick would flood the log), then at debug. */
	logging_write(n->retries ? KVFS_LOG_DEBUG : KVFS_LOG_WARN,
	              "cannot %s the log in %s: %s (out of file descriptors, not a disk "
	              "failure); trying again",
	              b->trunc_rv < 0 ? "truncate" : "write", n->data_dir,
	              strerror(b->trunc_rv < 0 ? -b->trunc_rv : -b->append_rv));
	n->retries++;
	if (b->trunc_rv == 0 && (b->trunc || b->reset_next)) {
		if (b->reset_next)
			b->compact_upto = 0;
		b->trunc = false;
		b->reset_next = 0;
	}
	b->trunc_rv = b->append_rv = b->compact_rv = b->commit_rv = 0;
	n->retry = b;
	n->retry_due = false;
}

static void disk_done(uv_work_t *req, int status)
{
	struct batch *b = req->data;
	struct kvfs_node *n = b->node;

	n->inflight = NULL;
	if (b->compact_rv < 0)
		log_warn("cannot remove old log segments: %s (will retry after the next snapshot)",
		         strerror(-b->compact_rv));
	if (b->commit_rv < 0)
		log_warn("cannot write %s/commit: %s (a restart applies fewer entries at once)",
		         n->data_dir, strerror(-b->commit_rv));
	if (b->append_rv == 0 && b->trunc_rv == 0) {
		n->log_bytes = log_bytes(n->log); /* a truncation or compaction may have shrunk it */
		n->bytes_since_snapshot += b->len;
		if (b->len) {
			metrics_observe(&n->counters.fsync, b->append_us);
			n->counters.fsync_bytes += b->len;
		}
	}
	if (b->trunc_rv == 0 && b->append_rv < 0 && b->append_rv != -EIO && b->len &&
	    ncl_persist_failed(n, b)) {
		/* A node of its own (a cluster of one) on a full disk or out of descriptors: the
		 * log holds nothing of this batch, and its writers heard the error. */
	} else if (failed_transiently(b) && !n->closing) {
		/* A cluster member cannot take back entries its peers may hold: the same job
		 * runs again, and its writers wait for it (or for their timeout). */
		keep_for_retry(n, b);
		b = NULL;
	} else if (b->append_rv < 0 || b->trunc_rv < 0) {
		/* The replication core counts on what it asked for being durable: stop rather than
		 * vouch for entries that are not on disk. Acknowledged writes are safe (on this
		 * disk, and in a cluster on the other replicas too). */
		log_error("cannot %s the log in %s: %s; stopping (acknowledged writes are safe)",
		          b->trunc_rv < 0 ? "truncate" : "write", n->data_dir,
		          strerror(b->trunc_rv < 0 ? -b->trunc_rv : -b->append_rv));
		node_go_fatal(n);
	} else {
		if (n->retries) {
			log_info("the log in %s is written again (after %u attempts out of file "
			         "descriptors)",
			         n->data_dir, n->retries);
			n->retries = 0;
		}
		ncl_disk_done(n, b);
	}
	if (b)
		batch_free(b);
	node_maybe_snapshot(n);
	kick(n);
	node_maybe_finish_close(n);
}

/* Starts a disk job if one is due and none is in flight. */
static void kick(struct kvfs_node *n)
{
	uint64_t commit = 0;
	struct batch *b;
	int rv;

	if (n->inflight || n->fatal)
		return;
	if (n->retry) {
		/* Before anything newer; at once when closing (a second failure then stops). */
		if (!n->retry_due && !n->closing)
			return;
		b = n->retry;
		n->retry = NULL;
		b->work.data = b;
		rv = uv_queue_work(n->loop, &b->work, disk_work, disk_done);
		assert(rv == 0);
		n->inflight = b;
		return;
	}
	commit = ncl_commit_to_write(n, n->pending && n->pending->len ? n->pending->last
	                                                               : log_last_index(n->log));
	/* A job for DATA/commit alone only now and then (the tick says when): after every commit
	 * it would make the next batch wait for it. With other work it rides along. */
	if (!n->pending && !n->compact_upto && !(commit && n->commit_due))
		return;
	b = n->pending ? n->pending : batch_new(n);
	if (!b)
		return; /* retried at the next loop iteration */
	n->pending = NULL;
	if (b->len == 0 && !n->compact_upto && !b->trunc && !b->persisted && !b->reset_next &&
	    !commit) {
		batch_free(b); /* nothing to do */
		node_maybe_finish_close(n);
		return;
	}
	b->compact_upto = n->compact_upto;
	n->compact_upto = 0;
	b->commit_write = commit;
	if (commit) {
		n->commit_written = commit;
		n->commit_due = false;
	}
	b->work.data = b;
	rv = uv_queue_work(n->loop, &b->work, disk_work, disk_done);
	assert(rv == 0);
	n->inflight = b;
}

static void on_check(uv_check_t *h)
{
	struct kvfs_node *n = h->data;

	ncl_check(n);
	kick(n);
}

static void snapshot_work(uv_work_t *req)
{
	struct kvfs_node *n = req->data;

	n->snap_rv = snapshot_write(n->snap, n->data_dir, n->snap_err, sizeof(n->snap_err));
	if (n->snap_rv == 0) {
		int rv = snapshot_prune(n->data_dir, SNAPSHOTS_KEPT);

		if (rv < 0)
			snprintf(n->snap_err, sizeof(n->snap_err), "cannot prune snapshots: %s",
			         strerror(-rv));
		n->snap_oldest = snapshot_oldest_index(n->data_dir);
	}
}

static void snapshot_done(uv_work_t *req, int status)
{
	struct kvfs_node *n = req->data;
	uint64_t index = snapshot_index(n->snap), epoch = snapshot_epoch(n->snap);

	snapshot_free(n->snap);
	n->snap = NULL;
	n->snapshotting = false;
	if (n->snap_rv < 0) {
		/* Try again after another half interval of log, not at once. */
		log_warn("snapshot at index %" PRIu64 " failed: %s", index, n->snap_err);
		n->bytes_since_snapshot /= 2;
	} else {
		/* Never backwards: a snapshot from the leader may have been installed meanwhile. */
		if (index > n->snapshot_index) {
			n->snapshot_index = index;
			n->snapshot_epoch = epoch;
		}
		if (n->snap_err[0])
			log_warn("%s", n->snap_err);
		/* Keep the log from just after the oldest kept snapshot, so a damaged newest one
		 * still leaves a complete history to start from. */
		if (n->snap_oldest)
			n->compact_upto = n->snap_oldest;
		ncl_snapshot_done(n, index);
		log_info("snapshot at index %" PRIu64 " written", index);
	}
	node_maybe_finish_close(n);
}

void node_maybe_snapshot(struct kvfs_node *n)
{
	uint64_t every = n->cfg.snapshot_bytes ? n->cfg.snapshot_bytes : SNAPSHOT_BYTES_DEFAULT;
	int rv;

	if (n->snapshotting || n->closing || n->fatal || n->bytes_since_snapshot < every)
		return;
	rv = snapshot_capture(n->store, &n->snap);
	if (rv < 0) {
		log_warn("cannot capture a snapshot: %s", strerror(-rv));
		return;
	}
	n->bytes_since_snapshot = 0;
	n->snap_err[0] = '\0';
	n->snapshotting = true;
	n->snap_work.data = n;
	rv = uv_queue_work(n->loop, &n->snap_work, snapshot_work, snapshot_done);
	assert(rv == 0);
}

int node_start(struct kvfs_node *n, uv_loop_t *loop, kvfs_node_apply_fn on_apply,
               kvfs_node_fatal_fn on_fatal, void *arg)
{
	int rv;

	n->loop = loop;
	n->on_apply = on_apply;
	n->on_fatal = on_fatal;
	n->cb_arg = arg;
	rv = uv_check_init(loop, &n->check);
	if (rv < 0)
		return rv;
	n->check.data = n;
	rv = uv_check_start(&n->check, on_check);
	if (rv == 0)
		rv = ncl_start(n);
	return rv;
}

void node_set_reset(struct kvfs_node *n, const struct kvfs_node_reset *reset)
{
	n->reset = reset;
}

void node_set_removed(struct kvfs_node *n, void (*removed)(void *arg))
{
	n->removed_fn = removed;
}

void node_set_cluster(struct kvfs_node *n, const struct kvfs_node_cluster *cluster)
{
	n->cluster = cluster;
}

struct kvfs_store *node_store(struct kvfs_node *n)
{
	return n->store;
}

const struct kvfs_changes *node_changes(const struct kvfs_node *n)
{
	return n->changes;
}

void node_status(const struct kvfs_node *n, struct kvfs_status *st)
{
	uint64_t applied = store_applied_index(n->store);

	memset(st, 0, sizeof(*st));
	st->node = n->cfg.id;
	st->role = "standalone";
	st->leader = n->cfg.id;
	snprintf(st->leader_addr, sizeof(st->leader_addr), "local");
	st->zk = "none";
	st->zk_auth = "none";
	st->peer_security = !n->cfg.cluster_size ? "none" : n->cfg.peer_keys ? "encrypted" : "insecure";
	st->election = n->cfg.election ? n->cfg.election : "sequential";
	st->priority = n->cfg.priority;
	st->applied_index = applied;
	st->keys = store_inode_count(n->store) - 1;
	st->value_bytes = store_value_bytes(n->store);
	st->log_bytes = n->log_bytes;
	st->snapshot_index = n->snapshot_index;
	if (n->cluster)
		n->cluster->status(n->cluster->arg, st);
	ncl_status(n, st);
	nhealth_status(n, st);
	st->has_changes = true;
	st->changes_first = changes_first(n->changes);
	st->changes_last = changes_next(n->changes) - 1;
}

void node_metrics(const struct kvfs_node *n, struct kvfs_node_counters *out)
{
	char path[PATH_MAX];
	struct stat sb;

	*out = n->counters;
	out->snapshot_bytes = 0;
	/* Looked up when asked (a scrape), not tracked through every way a snapshot appears. */
	if (n->snapshot_index &&
	    snapshot_path(n->data_dir, n->snapshot_index, path, sizeof(path)) == 0 &&
	    stat(path, &sb) == 0)
		out->snapshot_bytes = (uint64_t)sb.st_size;
}

static void on_check_closed(uv_handle_t *h)
{
	struct kvfs_node *n = h->data;
	void (*cb)(void *) = n->close_cb;
	void *arg = n->close_arg;

	node_free(n);
	if (cb)
		cb(arg);
}

void node_maybe_finish_close(struct kvfs_node *n)
{
	if (n->closing && n->fatal && n->pending) {
		/* Nothing will write it any more (kick() starts no job after a fatal error). */
		batch_free(n->pending);
		n->pending = NULL;
	}
	if (n->closing && n->fatal && n->retry) {
		batch_free(n->retry);
		n->retry = NULL;
	}
	if (!n->closing || n->pending || n->inflight || n->retry || n->snapshotting)
		return;
	if (!ncl_closed(n))
		return;
	if (uv_is_closing((uv_handle_t *)&n->check))
		return;
	uv_close((uv_handle_t *)&n->check, on_check_closed);
}

void node_close(struct kvfs_node *n, void (*cb)(void *arg), void *arg)
{
	if (!n->loop) {
		node_free(n);
		if (cb)
			cb(arg);
		return;
	}
	n->closing = true;
	n->close_cb = cb;
	n->close_arg = arg;
	ncl_close(n);
	kick(n);
	node_maybe_finish_close(n);
}
