/*
 * Deadlines of calls: --write-timeout bounds how long a call into the filesystem waits for the
 * cluster, whatever it waits for (a read index, catching up after a start, a commit).
 *
 * One call of a program is often several FUSE requests, each of which may wait: `echo x > f` is a
 * lookup (which waits for a read index under --read linearizable), a create or an open, a write
 * and a flush (which waits for the commit). Each request alone is bounded by the write timeout,
 * but while the cluster is in trouble their waits would add up (a lookup that waited 4.9 s for a
 * read index, then a flush that waits 5 s for a commit). So a process's requests share one
 * deadline while the cluster keeps it waiting: a request that waited at least SLOW_MS leaves its
 * deadline behind for its process, and every request of that process that arrives within GAP_MS
 * of the last such answer inherits it instead of starting a new one. In normal operation
 * (commits in a few ms) nothing is shared, and a long-running program (`cp -r`) that met one slow
 * request gets fresh deadlines again a second later.
 */
#include "fs.h"

#include "kvfs/node.h"

#define SLOW_MS 200 /* a request that waited this long was held up by the cluster */
#define GAP_MS  1000 /* the next request this soon after it belongs to the same call */

/* The slot of pid, or the least recently used one if it has none (when `take`). */
static struct fuse_call *slot(struct kvfs_fs *fs, pid_t pid, bool take)
{
	struct fuse_call *lru = &fs->calls[0];

	for (size_t i = 0; i < KVFS_FS_CALLS; i++) {
		if (fs->calls[i].pid == pid)
			return &fs->calls[i];
		if (fs->calls[i].answered_ms < lru->answered_ms)
			lru = &fs->calls[i];
	}
	return take ? lru : NULL;
}

void fuse_call_begin(struct kvfs_fs *fs, fuse_req_t req, struct fuse_call *call)
{
	const struct fuse_ctx *ctx = fuse_req_ctx(req);
	uint64_t now = node_now_ms(fs->node);
	const struct fuse_call *prev;

	call->pid = ctx ? ctx->pid : 0;
	call->arrived_ms = now;
	call->start_us = fuse_metrics_now_us();
	prev = call->pid ? slot(fs, call->pid, false) : NULL;
	if (prev && now - prev->answered_ms <= GAP_MS)
		call->deadline = prev->deadline;
	else
		call->deadline = now + fs->write_timeout_ms;
}

void fuse_call_end(struct kvfs_fs *fs, const struct fuse_call *call)
{
	uint64_t now = node_now_ms(fs->node);
	struct fuse_call *s;

	if (!call->pid || now - call->arrived_ms < SLOW_MS)
		return;
	s = slot(fs, call->pid, true);
	*s = *call;
	s->answered_ms = now;
}
