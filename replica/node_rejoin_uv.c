/*
 * A node whose data directory was lost, started again under its id (README, "Replacing a node";
 * repl.h, "Rejoining", has the protocol and why it is safe). At open, a cluster member whose data
 * directory is empty (no DATA/meta yet) first promises durably the last epoch ZooKeeper issued,
 * so that no deposed leader to which its lost disk promised more can use it; and if ZooKeeper
 * says its id held data before (/nodes/<id>), it writes the durable marker DATA/rejoining, before
 * DATA/meta, so that a crash at any point of the start or of the catch-up keeps it rejoining.
 * While the marker is there the replication core gives no vote; once the core says it has caught
 * up (io.rejoined), the marker is removed on a worker. A candidate that cannot count some peers
 * because they rejoin says so in the log, once per epoch.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

#include "kvfs/disk.h"
#include "kvfs/logging.h"
#include "kvfs/repl.h"
#include "node_internal.h"

static void marker_path(const struct kvfs_node *n, char *buf, size_t len)
{
	snprintf(buf, len, "%s/rejoining", n->data_dir);
}

/* Writes DATA/rejoining durably. 0 or a negative errno. */
static int write_marker(const struct kvfs_node *n)
{
	char path[PATH_MAX], buf[96];
	int fd, len, rv = 0;

	marker_path(n, path, sizeof(path));
	len = snprintf(buf, sizeof(buf), "kvfs-rejoining 1\nepoch: %" PRIu64 "\n", n->cfg.zk_epoch);
	fd = disk_openat(AT_FDCWD, path, O_WRONLY | O_CREAT | O_TRUNC, KVFS_FILE_MODE);
	if (fd < 0)
		return fd;
	if (write(fd, buf, (size_t)len) != len || fdatasync(fd) < 0)
		rv = errno ? -errno : -EIO;
	close(fd);
	if (rv == 0)
		rv = disk_fsync_dir(n->data_dir);
	return rv;
}

int nrejoin_prepare(struct kvfs_node *n, char *err, size_t errlen)
{
	char path[PATH_MAX];
	struct stat st;
	uint64_t promised;
	bool empty;
	int rv;

	if (!n->cfg.cluster_size)
		return 0;
	snprintf(path, sizeof(path), "%s/meta", n->data_dir);
	empty = stat(path, &st) < 0 && errno == ENOENT;
	if (empty && n->cfg.id_held_data) {
		rv = write_marker(n);
		if (rv < 0) {
			snprintf(err, errlen, "cannot write %s/rejoining: %s", n->data_dir,
			         strerror(-rv));
			return rv;
		}
		log_warn("data directory %s is empty, but node %u of this cluster held data before "
		         "(ZooKeeper has its /nodes/%u): rejoining. It takes no part in elections "
		         "until it has caught up from an established leader; /.status says "
		         "'rejoining: yes' meanwhile",
		         n->data_dir, n->cfg.id, n->cfg.id);
	}
	if (empty && n->cfg.zk_epoch) {
		rv = ncl_read_promise(n, &promised, err, errlen);
		if (rv == 0 && promised < n->cfg.zk_epoch)
			rv = ncl_write_promise(n, n->cfg.zk_epoch);
		if (rv < 0) {
			if (!err[0])
				snprintf(err, errlen, "cannot write %s/promise: %s", n->data_dir,
				         strerror(-rv));
			return rv;
		}
	}
	marker_path(n, path, sizeof(path));
	if (stat(path, &st) == 0) {
		n->rejoining = true;
		if (!empty)
			log_warn(
			    "%s is there: this node is still rejoining after its data directory "
			    "was replaced, and takes no part in elections until it has caught up",
			    path);
	} else if (errno != ENOENT) {
		rv = -errno;
		snprintf(err, errlen, "cannot read %s: %s", path, strerror(-rv));
		return rv;
	}
	return 0;
}

static void unmark_work(uv_work_t *req)
{
	struct node_cluster *c = req->data;
	char path[PATH_MAX];

	marker_path(c->n, path, sizeof(path));
	c->unmark_rv = unlink(path) < 0 && errno != ENOENT ? -errno : 0;
	if (c->unmark_rv == 0)
		c->unmark_rv = disk_fsync_dir(c->n->data_dir);
}

static void unmark_done(uv_work_t *req, int status)
{
	struct node_cluster *c = req->data;
	struct kvfs_node *n = c->n;

	(void)status;
	c->unmarking = false;
	/* Kept, the marker only makes the next start rejoin again: safe, so no reason to stop. */
	if (c->unmark_rv < 0)
		log_warn("cannot remove %s/rejoining: %s; the next start rejoins again",
		         n->data_dir, strerror(-c->unmark_rv));
	node_maybe_finish_close(n);
}

void nrejoin_done(void *arg)
{
	struct node_cluster *c = arg;
	struct kvfs_node *n = c->n;

	log_info("caught up after its data directory was replaced (durable to index %" PRIu64
	         ", epoch %" PRIu64 "): this node votes again",
	         repl_durable_commit(c->repl), repl_epoch(c->repl));
	if (c->unmarking || !n->loop || n->fatal)
		return;
	c->unmarking = true;
	c->unmark_work.data = c;
	uv_queue_work(n->loop, &c->unmark_work, unmark_work, unmark_done);
}

void nrejoin_tick(struct node_cluster *c)
{
	struct kvfs_node *n = c->n;
	const struct kvfs_config *cfg = ncl_config(c);
	char ids[128] = "";
	size_t len = 0;

	if (repl_role(c->repl) != KVFS_REPL_CANDIDATE ||
	    c->rejoin_warned_epoch == repl_epoch(c->repl))
		return;
	for (uint32_t i = 0; i < cfg->n; i++) {
		uint32_t id = cfg->m[i].id;
		bool rejoining =
		    id == n->cfg.id ? repl_rejoining(c->repl) : repl_peer_rejoining(c->repl, id);

		if (rejoining && len < sizeof(ids))
			len += (size_t)snprintf(ids + len, sizeof(ids) - len, "%s%u",
			                        len ? ", " : "", id);
	}
	if (!len)
		return;
	c->rejoin_warned_epoch = repl_epoch(c->repl);
	log_warn("epoch %" PRIu64 ": node(s) %s lost their data and rejoin without a vote; this "
	         "leader waits for a majority of nodes that kept theirs (if a majority lost its "
	         "data, no leader can be established: see 'Replacing a node' in the README)",
	         repl_epoch(c->repl), ids);
}
