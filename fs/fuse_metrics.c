/*
 * The filesystem's counters for /.metrics (struct kvfs_fs_counters): changes and reads as the
 * callers of this mount see them, from request to reply, counted on the loop thread with plain
 * increments; and the rendering of /.metrics from the node's facts and counters, which
 * --metrics-listen serves too.
 */
#include "fs.h"

#include <errno.h>
#include <stdlib.h>
#include <time.h>

#include "kvfs/metrics.h"
#include "kvfs/node.h"
#include "kvfs/status.h"

uint64_t fuse_metrics_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

static uint64_t since(uint64_t start_us)
{
	uint64_t now = fuse_metrics_now_us();

	return now > start_us ? now - start_us : 0;
}

void fuse_metrics_write(struct kvfs_fs *fs, const struct fuse_call *call, int err)
{
	fs->counters.writes++;
	metrics_observe(&fs->counters.write, since(call->start_us));
	if (err == -EIO || err == -ESHUTDOWN)
		fs->counters.eio++;
}

void fuse_metrics_read(struct kvfs_fs *fs, uint64_t start_us)
{
	fs->counters.reads++;
	metrics_observe(&fs->counters.read, since(start_us));
}

void fuse_metrics_read_wait(struct kvfs_fs *fs, const struct fuse_call *call, int err)
{
	metrics_observe(&fs->counters.read_wait, since(call->start_us));
	if (err < 0)
		fs->counters.eio++;
}

char *fuse_metrics_render(void *arg, size_t *len)
{
	struct kvfs_fs *fs = arg;
	struct kvfs_status st;
	struct kvfs_node_counters nc;
	struct kvfs_metrics m = {.st = &st, .fs = &fs->counters, .node = &nc};
	size_t need;
	char *buf;

	node_status(fs->node, &st);
	node_metrics(fs->node, &nc);
	need = metrics_render(&m, NULL, 0);
	buf = malloc(need + 1);
	if (!buf)
		return NULL;
	*len = metrics_render(&m, buf, need + 1);
	return buf;
}
