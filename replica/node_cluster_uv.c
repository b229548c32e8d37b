/*
 * The node in a cluster (see node.h): the replication core's io on libuv, the peer transport,
 * and the lag facts of /.status; this node's writes go through fwd.c (see fwd.h for the
 * forwarding design: (origin, seq), resends, renumbering, read-your-writes), bound to the node
 * in node_fwd_uv.c; its reads and the restart contract go through readidx.c (readidx.h), bound
 * in node_read_uv.c.
 *
 * The core's actions map onto the node like this: persist and truncate go into the node's
 * pending disk job (node_uv.c's group commit), in the order asked, and the job's completion
 * reports persist completions back; persist_epoch writes DATA/promise on a worker; send encodes
 * with repl_wire and queues on the peer connection; apply applies to the store.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "kvfs/config.h"
#include "kvfs/crc32c.h"
#include "kvfs/disk.h"
#include "kvfs/election.h"
#include "kvfs/fwd.h"
#include "kvfs/log.h"
#include "kvfs/logging.h"
#include "kvfs/op.h"
#include "kvfs/peer.h"
#include "kvfs/peer_msg.h"
#include "kvfs/readidx.h"
#include "kvfs/repl.h"
#include "kvfs/repl_wire.h"
#include "kvfs/status.h"
#include "kvfs/store.h"
#include "node_internal.h"

#define TICK_MS           100
#define VIEW_FRESH_MS     2000 /* a follower shows the leader's PEER_STATUS this long */
#define LAG_KNOWN_MS      500  /* ... and knows its own lag only if it came this recently */
#define READY_LAG_ENTRIES 16 /* a follower this close may be handed the lead */

/* ---- the promise ---- */

static void promise_path(const struct kvfs_node *n, char *buf, size_t len, const char *suffix)
{
	snprintf(buf, len, "%s/promise%s", n->data_dir, suffix);
}

/* Reads DATA/promise: 0 and *epoch (0 when there is no file), or -EBADMSG with a message. */
int ncl_read_promise(const struct kvfs_node *n, uint64_t *epoch, char *err, size_t errlen)
{
	char path[PATH_MAX], buf[128];
	unsigned long long e;
	FILE *f;
	size_t got;

	*epoch = 0;
	promise_path(n, path, sizeof(path), "");
	f = fopen(path, "re");
	if (!f) {
		if (errno == ENOENT)
			return 0;
		snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
		return -errno;
	}
	got = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[got] = '\0';
	if (sscanf(buf, "kvfs-promise 1\nepoch: %llu\n", &e) != 1) {
		snprintf(err, errlen, "%s is damaged (it should say which epoch this node promised)",
		         path);
		return -EBADMSG;
	}
	*epoch = e;
	return 0;
}

int ncl_write_promise(const struct kvfs_node *n, uint64_t epoch)
{
	char path[PATH_MAX], tmp[PATH_MAX], buf[64];
	int fd, len, rv = 0;

	promise_path(n, path, sizeof(path), "");
	promise_path(n, tmp, sizeof(tmp), ".tmp");
	len = snprintf(buf, sizeof(buf), "kvfs-promise 1\nepoch: %" PRIu64 "\n", epoch);
	fd = disk_openat(AT_FDCWD, tmp, O_WRONLY | O_CREAT | O_TRUNC, KVFS_FILE_MODE);
	if (fd < 0)
		return fd;
	if (write(fd, buf, (size_t)len) != len || fdatasync(fd) < 0)
		rv = errno ? -errno : -EIO;
	close(fd);
	if (rv == 0 && rename(tmp, path) < 0)
		rv = -errno;
	if (rv == 0)
		rv = disk_fsync_dir(n->data_dir);
	return rv;
}

static void promise_work(uv_work_t *req)
{
	struct node_cluster *c = req->data;

	c->promise_rv = ncl_write_promise(c->n, c->promise_writing);
}

static void start_promise(struct node_cluster *c);

static void promise_done(uv_work_t *req, int status)
{
	struct node_cluster *c = req->data;
	struct kvfs_node *n = c->n;

	c->promising = false;
	if (c->promise_rv < 0 && disk_transient(c->promise_rv) && !n->fatal) {
		/* Out of descriptors, not a failed disk: the tick tries again. */
		log_warn("cannot record the promised epoch in %s: %s; trying again", n->data_dir,
		         strerror(-c->promise_rv));
		c->promise_retry = true;
	} else if (c->promise_rv < 0) {
		log_error("cannot record the promised epoch in %s: %s; stopping", n->data_dir,
		          strerror(-c->promise_rv));
		node_go_fatal(n);
	} else if (c->repl && !n->fatal) {
		repl_epoch_persisted(c->repl, c->promise_writing);
	}
	if (!n->fatal && c->promise_want > c->promise_writing)
		start_promise(c);
	node_maybe_finish_close(n);
}

static void start_promise(struct node_cluster *c)
{
	if (c->promising || !c->n->loop)
		return;
	c->promising = true;
	c->promise_retry = false;
	c->promise_writing = c->promise_want;
	c->promise_work.data = c;
	uv_queue_work(c->n->loop, &c->promise_work, promise_work, promise_done);
}

/* ---- the commit index (DATA/commit) ----
 *
 * The commit index is written after the disk job that made the entries up to it durable, so the
 * file never names an entry the log may lack. It is not fsynced: it survives a crash of the
 * process (the page cache keeps it), and one older than the truth after a power loss only means
 * fewer entries applied at start. A restarted node applies its committed entries at once from
 * it, and still waits for its leader before it answers reads (node_reads_ready).
 */

#define COMMIT_FILE_MAGIC 0x31544d43534656ull /* "VFSCMT1" */
#define COMMIT_FILE_SIZE  24

void ncl_commit_encode(uint8_t buf[COMMIT_FILE_SIZE], uint64_t commit)
{
	uint64_t magic = COMMIT_FILE_MAGIC;
	uint32_t crc, pad = 0;

	memcpy(buf, &magic, 8);
	memcpy(buf + 8, &commit, 8);
	crc = crc32c(0, buf, 16);
	memcpy(buf + 16, &crc, 4);
	memcpy(buf + 20, &pad, 4);
}

/* The commit index DATA/commit holds; 0 when there is none or it is damaged (torn). */
static uint64_t read_commit(const struct kvfs_node *n)
{
	char path[PATH_MAX];
	uint8_t buf[COMMIT_FILE_SIZE];
	uint64_t magic, commit;
	uint32_t crc;
	ssize_t got;
	int fd;

	snprintf(path, sizeof(path), "%s/commit", n->data_dir);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	got = pread(fd, buf, sizeof(buf), 0);
	close(fd);
	if (got != (ssize_t)sizeof(buf))
		return 0;
	memcpy(&magic, buf, 8);
	memcpy(&commit, buf + 8, 8);
	memcpy(&crc, buf + 16, 4);
	if (magic != COMMIT_FILE_MAGIC || crc != crc32c(0, buf, 16)) {
		log_warn("%s/commit is damaged; applying only the snapshot at start", n->data_dir);
		return 0;
	}
	return commit;
}

uint64_t ncl_commit_to_write(const struct kvfs_node *n, uint64_t durable_end)
{
	uint64_t commit = repl_commit_index(n->cl->repl);

	if (!n->cfg.cluster_size)
		return 0; /* standalone: its whole log is committed, and applied at start */
	if (commit > durable_end)
		commit = durable_end;
	return commit > n->commit_written ? commit : 0;
}

/* Applies the committed entries of the recovered log, before the core starts (ncl_open). */
static int apply_recovered(struct kvfs_node *n, const struct kvfs_repl_entry *log, size_t count,
                           char *err, size_t errlen)
{
	for (size_t i = 0; i < count; i++) {
		struct kvfs_op op;
		struct kvfs_apply_result res;
		int rv = node_apply_entry(n, log[i].epoch, log[i].index, log[i].data, log[i].len, &op,
		                          &res);

		if (rv < 0) {
			snprintf(err, errlen, "cannot apply committed log entry %" PRIu64 " in %s: %s",
			         log[i].index, n->data_dir, strerror(-rv));
			return rv;
		}
	}
	return 0;
}

/* ---- the core's io ---- */

static void io_send(void *arg, uint32_t to, const struct kvfs_repl_msg *m)
{
	struct node_cluster *c = arg;
	size_t need = repl_wire_size(m);
	uint8_t type;
	int len;

	if (!c->peers || c->closing || need == 0)
		return;
	if (need > c->sendcap) {
		uint8_t *buf = realloc(c->sendbuf, need);

		if (!buf)
			return; /* a lost message: the core sends again */
		c->sendbuf = buf;
		c->sendcap = need;
	}
	len = repl_wire_encode(m, c->sendbuf, c->sendcap, &type);
	if (len < 0) {
		log_warn("cannot encode a replication message for node %u: %s", to,
		         strerror(-len));
		return;
	}
	peer_send(c->peers, to, type, c->sendbuf, (uint32_t)len);
}

static void io_persist(void *arg, const struct kvfs_repl_entry *e, size_t count)
{
	struct node_cluster *c = arg;
	struct kvfs_node *n = c->n;
	struct batch *b;
	size_t bytes = 0;

	if (n->fatal)
		return; /* nothing is written any more: the node is stopping */
	b = node_pending_batch(n);
	for (size_t i = 0; i < count; i++)
		bytes += log_record_size(e[i].len);
	if (!b || node_batch_reserve(b, bytes) < 0) {
		log_error("out of memory for the log; stopping");
		node_go_fatal(n);
		return;
	}
	for (size_t i = 0; i < count; i++) {
		if (e[i].len)
			memcpy(b->buf + b->len + KVFS_LOG_HEADER_SIZE, e[i].data, e[i].len);
		log_record_seal(b->buf + b->len, e[i].epoch, e[i].index, e[i].len);
		b->len += log_record_size(e[i].len);
		if (!b->first)
			b->first = e[i].index;
		b->last = e[i].index;
	}
	b->persisted = true;
	b->p_epoch = e[count - 1].epoch;
	b->p_index = e[count - 1].index;
}

/* Drops the records after `after` from batch b (they were not written yet). */
static void cut_batch(struct batch *b, uint64_t after)
{
	size_t off = 0;

	if (!b->len || b->last <= after)
		return;
	if (b->first > after) {
		b->len = 0;
		b->first = b->last = 0;
		return;
	}
	for (uint64_t i = b->first; i <= after; i++)
		off += log_record_size(log_record_len(b->buf + off));
	b->len = off;
	b->last = after;
}

static void io_truncate(void *arg, uint64_t after)
{
	struct node_cluster *c = arg;
	struct batch *b;

	if (c->n->fatal)
		return;
	b = node_pending_batch(c->n);
	if (!b) {
		log_error("out of memory for the log; stopping");
		node_go_fatal(c->n);
		return;
	}
	cut_batch(b, after);
	/* Records still pending start at or before `after`: the disk holds nothing past them.
	 * Otherwise what is (or is being) written must be cut first. */
	if (!b->len && (!b->trunc || after < b->trunc_after)) {
		b->trunc = true;
		b->trunc_after = after;
	}
}

static void io_persist_epoch(void *arg, uint64_t epoch)
{
	struct node_cluster *c = arg;

	if (epoch > c->promise_want)
		c->promise_want = epoch;
	start_promise(c);
}

static void io_apply(void *arg, const struct kvfs_repl_entry *e)
{
	struct node_cluster *c = arg;
	struct kvfs_node *n = c->n;
	struct kvfs_op op;
	struct kvfs_apply_result res;
	int rv;

	if (n->fatal)
		return;
	rv = node_apply_entry(n, e->epoch, e->index, e->data, e->len, &op, &res);
	if (rv < 0) {
		/* Out of memory: applying is total otherwise (an undecodable entry is a failed
		 * no-op on every replica). */
		log_error("cannot apply log entry %" PRIu64 " of %s (%s); stopping", e->index,
		          n->data_dir, strerror(-rv));
		node_go_fatal(n);
		return;
	}
	if (op.type != KVFS_OP_NOOP && n->on_apply)
		n->on_apply(n->cb_arg, &op, &res);
	if (op.origin == n->cfg.id && op.seq)
		nfwd_applied(c);
}

static void io_leadership_lost(void *arg)
{
	struct node_cluster *c = arg;
	struct kvfs_node *n = c->n;

	if (c->closing)
		return;
	if (n->cluster)
		n->cluster->resign(n->cluster->arg);
	else
		c->solo_epoch = repl_epoch(c->repl) + 1; /* lead again, at the next tick */
}

static void io_need_snapshot(void *arg, uint32_t to)
{
	nsnap_need(arg, to);
}

static void io_need_snapshot_from(void *arg, uint32_t from)
{
	nsnap_pull(arg, from);
}

/* ---- incoming messages: one handler per type ---- */

typedef void (*msg_handler)(struct node_cluster *c, uint32_t from, uint8_t type,
                            const uint8_t *p, uint32_t len);

/* The replication core's messages (repl_wire). */
static void on_repl(struct node_cluster *c, uint32_t from, uint8_t type, const uint8_t *p,
                    uint32_t len)
{
	struct kvfs_repl_entry entries[KVFS_REPL_BATCH];
	struct kvfs_repl_msg m;
	int rv = repl_wire_decode(type, p, len, &m, entries, KVFS_REPL_BATCH);

	if (rv < 0) {
		log_warn("node %u sent a malformed replication message (type %u): %s", from, type,
		         strerror(-rv));
		return;
	}
	repl_receive(c->repl, from, &m);
	nfwd_dispatch(c);
}

static void on_forward(struct node_cluster *c, uint32_t from, uint8_t type, const uint8_t *p,
                       uint32_t len)
{
	nfwd_on_forward(c, from, p, len);
}

static void on_forward_reply(struct node_cluster *c, uint32_t from, uint8_t type,
                             const uint8_t *p, uint32_t len)
{
	nfwd_on_reply(c, from, p, len);
}

static void on_read(struct node_cluster *c, uint32_t from, uint8_t type, const uint8_t *p,
                    uint32_t len)
{
	nread_message(c, from, type, p, len);
}

static void on_snapshot(struct node_cluster *c, uint32_t from, uint8_t type, const uint8_t *p,
                        uint32_t len)
{
	nsnap_message(c, from, type, p, len);
}

/* A follower keeps its leader's last PEER_STATUS for /.status. */
static void on_peer_status(struct node_cluster *c, uint32_t from, uint8_t type,
                           const uint8_t *p, uint32_t len)
{
	if (from == repl_leader(c->repl) && peer_msg_status_decode(c->leader_view, p, len) == 0 &&
	    c->leader_view->epoch == repl_epoch(c->repl)) {
		c->leader_view_ms = uv_now(c->n->loop);
		nconfig_leader_view(c, from, c->leader_view);
	}
}

static void on_rtt(struct node_cluster *c, uint32_t from, uint8_t type, const uint8_t *p,
                   uint32_t len)
{
	if (type == KVFS_MSG_RTT_PING)
		nscore_on_ping(c, from, p, len);
	else
		nscore_on_pong(c, from, p, len);
}

static const msg_handler handlers[] = {
    [KVFS_MSG_NEW_EPOCH] = on_repl,
    [KVFS_MSG_EPOCH_ACK] = on_repl,
    [KVFS_MSG_APPEND] = on_repl,
    [KVFS_MSG_APPEND_ACK] = on_repl,
    [KVFS_MSG_FETCH] = on_repl,
    [KVFS_MSG_FETCH_REPLY] = on_repl,
    [KVFS_MSG_FORWARD] = on_forward,
    [KVFS_MSG_FORWARD_REPLY] = on_forward_reply,
    [KVFS_MSG_READ_INDEX] = on_read,
    [KVFS_MSG_READ_INDEX_REPLY] = on_read,
    [KVFS_MSG_SNAPSHOT_CHUNK] = on_snapshot,
    [KVFS_MSG_SNAPSHOT_ACK] = on_snapshot,
    [KVFS_MSG_SNAPSHOT_PULL] = on_snapshot,
    [KVFS_MSG_PEER_STATUS] = on_peer_status,
    [KVFS_MSG_RTT_PING] = on_rtt,
    [KVFS_MSG_RTT_PONG] = on_rtt,
};

/* The transport's on_message: a type this node does not know (a newer peer's) is ignored. */
static void on_message(void *arg, uint32_t from, uint8_t type, const uint8_t *payload,
                       uint32_t len)
{
	struct node_cluster *c = arg;

	if (c->closing || c->n->fatal)
		return;
	nscore_heard(c, from); /* a newer peer's message too: it is alive */
	if (type >= sizeof(handlers) / sizeof(handlers[0]) || !handlers[type])
		return;
	handlers[type](c, from, type, payload, len);
}

static void on_state(void *arg, uint32_t id, bool connected)
{
	struct node_cluster *c = arg;

	if (c->closing)
		return;
	if (!connected) {
		fwd_peer_down(c->fwd, id);
		nsnap_peer_down(c, id);
		nscore_peer_down(c, id);
	} else
		nfwd_dispatch(c);
}

/* ---- the election's view ---- */

void ncl_view(const struct node_cluster *c, struct kvfs_node_view *v)
{
	const struct kvfs_node *n = c->n;

	memset(v, 0, sizeof(*v));
	if (n->cluster) {
		n->cluster->view(n->cluster->arg, v);
	} else {
		/* A cluster of one elects itself, at a new epoch each time it starts. */
		v->leading = true;
		v->leader = n->cfg.id;
		v->epoch = c->solo_epoch;
	}
}

/* Follows what ZooKeeper says: lead the epoch we were given, or follow its leader. The rules
 * (which epoch may be led, when to give the lead up) are the core's: repl_zk_view(). */
static void follow_view(struct node_cluster *c)
{
	struct kvfs_node *n = c->n;
	struct kvfs_node_view v;
	uint64_t was = repl_epoch(c->repl);

	ncl_view(c, &v);
	if (n->cluster && v.leading && v.epoch > was)
		log_info("leading epoch %" PRIu64 ": gathering a majority", v.epoch);
	else if (n->cluster && v.leading && repl_role(c->repl) == KVFS_REPL_FOLLOWER)
		log_warn("ZooKeeper made this node leader of epoch %" PRIu64 ", but it has promised "
		         "epoch %" PRIu64 " already; giving the lead up to stand again",
		         v.epoch, was);
	repl_zk_view(c->repl, v.leading, v.leader, v.epoch);
	if (c->peers && repl_role(c->repl) != KVFS_REPL_FOLLOWER && repl_epoch(c->repl) > was)
		peer_set_epoch(c->peers, repl_epoch(c->repl));
}

void node_cluster_changed(struct kvfs_node *n)
{
	struct node_cluster *c = n->cl;

	if (!c || c->closing || n->fatal || !c->peers)
		return;
	ncl_update_addrs(c);
	follow_view(c);
	nfwd_dispatch(c);
}

/* Fast failover: the leader's port refuses connections, so the process is gone. */
static void check_dead_leader(struct node_cluster *c)
{
	struct kvfs_node *n = c->n;
	struct kvfs_node_view v;

	if (!n->cluster)
		return;
	ncl_view(c, &v);
	if (v.leading || !v.leader || v.leader == n->cfg.id || v.epoch == c->evicted_epoch)
		return;
	if (peer_connected(c->peers, v.leader) || !peer_refused(c->peers, v.leader))
		return;
	c->evicted_epoch = v.epoch;
	n->cluster->evict(n->cluster->arg, v.leader, v.epoch);
}

/* On the leader: every replica's match and lag, for the followers' /.status. */
static void send_peer_status(struct node_cluster *c)
{
	struct kvfs_node *n = c->n;
	struct kvfs_peer_status m = {.epoch = repl_epoch(c->repl),
	                             .commit_index = repl_commit_index(c->repl)};
	uint64_t now = uv_now(n->loop);
	uint8_t buf[64 + KVFS_PEER_STATUS_MAX * 20];
	const struct kvfs_config *cfg = ncl_config(c);
	size_t len;

	if (!c->peers)
		return; /* standalone: no one to tell */
	for (uint32_t i = 0; i < cfg->n && m.count < KVFS_PEER_STATUS_MAX; i++) {
		uint32_t id = cfg->m[i].id;
		uint64_t match = repl_peer_match(c->repl, id);

		m.peers[m.count++] = (struct kvfs_peer_status_entry){
		    .id = id,
		    .match = match,
		    .lag_ms = c->peer_behind[id] && match < m.commit_index
		                  ? now - c->peer_behind[id]
		                  : 0};
	}
	len = peer_msg_status_encode(&m, buf);
	/* To the members; once the configuration is committed, to connected non-members too: a
	 * removed node learns so from it (nconfig_leader_view). */
	for (uint32_t id = 1; id <= KVFS_CONFIG_ID_MAX; id++)
		if (id != n->cfg.id && peer_connected(c->peers, id) &&
		    (config_is_member(cfg, id) || !repl_config_pending(c->repl)))
			peer_send(c->peers, id, KVFS_MSG_PEER_STATUS, buf, (uint32_t)len);
}

/* Lag bookkeeping for /.status, and who may be handed the lead. */
static void track_lag(struct node_cluster *c)
{
	struct kvfs_node *n = c->n;
	uint64_t now = uv_now(n->loop), commit = repl_leader_commit(c->repl);
	bool leader = repl_role(c->repl) != KVFS_REPL_FOLLOWER;
	const struct kvfs_config *cfg = ncl_config(c);

	if (store_applied_index(n->store) < commit) {
		if (!c->behind_since)
			c->behind_since = now;
	} else {
		c->behind_since = 0;
	}
	for (uint32_t i = 0; i < cfg->n; i++) {
		uint32_t id = cfg->m[i].id;
		uint64_t match = repl_peer_match(c->repl, id);

		if (leader && match < repl_commit_index(c->repl)) {
			if (!c->peer_behind[id])
				c->peer_behind[id] = now;
		} else {
			c->peer_behind[id] = 0;
		}
		/* The lead is handed to a voter only (an observer never leads). */
		if (id != n->cfg.id && n->cluster)
			n->cluster->set_ready(n->cluster->arg, id,
			                      leader && cfg->m[i].role == KVFS_ROLE_VOTER &&
			                          match + READY_LAG_ENTRIES >=
			                              repl_commit_index(c->repl));
	}
}

static void on_tick(uv_timer_t *t)
{
	struct node_cluster *c = t->data;

	if (c->closing || c->n->fatal)
		return;
	c->n->commit_due = true;
	c->n->retry_due = true;
	if (c->promise_retry && !c->promising) {
		c->promise_retry = false;
		start_promise(c);
	}
	ncl_update_addrs(c);
	follow_view(c);
	repl_tick(c->repl);
	check_dead_leader(c);
	nfwd_dispatch(c);
	fwd_expire(c->fwd, uv_now(c->n->loop));
	readidx_tick(c->reads);
	nsnap_tick(c);
	nrejoin_tick(c);
	nmember_tick(c);
	nconfig_tick(c);
	track_lag(c);
	if (repl_role(c->repl) == KVFS_REPL_LEADER)
		send_peer_status(c);
	nscore_tick(c);
}

/* ---- the node's entry points ---- */

int ncl_open(struct kvfs_node *n, uint64_t base, uint64_t base_epoch,
             const struct kvfs_repl_entry *log, size_t nlog, char *err, size_t errlen)
{
	struct kvfs_repl_io io = {
	    .send = io_send,
	    .persist = io_persist,
	    .truncate = io_truncate,
	    .persist_epoch = io_persist_epoch,
	    .apply = io_apply,
	    .leadership_lost = io_leadership_lost,
	    .need_snapshot = io_need_snapshot,
	    .need_snapshot_from = io_need_snapshot_from,
	    .rejoined = nrejoin_done,
	    .config_changed = ncl_config_changed,
	};
	struct node_cluster *c;
	uint64_t promised, hint;
	struct kvfs_config base_cfg;
	uint64_t cfg_index;
	int rv;

	rv = ncl_read_promise(n, &promised, err, errlen);
	if (rv < 0)
		return rv;
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	n->cl = c;
	c->n = n;
	c->addrs = calloc(KVFS_CONFIG_ID_MAX + 1, sizeof(*c->addrs));
	c->peer_behind = calloc(KVFS_CONFIG_ID_MAX + 1, sizeof(*c->peer_behind));
	if (!c->addrs || !c->peer_behind)
		return -ENOMEM;
	c->promise_want = promised;
	c->leader_view = calloc(1, sizeof(*c->leader_view));
	if (!c->leader_view || nread_open(c) < 0 || nsnap_init(c) < 0 || nscore_open(c) < 0)
		return -ENOMEM;
	io.arg = c;
	/* Our sequence numbers must grow past any of ours the store or the log holds, whatever
	 * the clock did meanwhile. */
	for (size_t i = 0; i < nlog; i++) {
		struct kvfs_op op;

		if (log[i].len && op_decode(&op, log[i].data, log[i].len) == 0 &&
		    op.origin == n->cfg.id && op.seq >= n->next_seq && op.seq < KVFS_SEQ_MAX)
			n->next_seq = op.seq + 1; /* above KVFS_SEQ_MAX: failed with EINVAL (op.h) */
	}
	{
		struct kvfs_session sess;

		if (store_session_get(n->store, n->cfg.id, &sess) && sess.seq >= n->next_seq)
			n->next_seq = sess.seq + 1;
	}
	if (nfwd_open(c) < 0)
		return -ENOMEM;
	/* A cluster of one committed every entry its log holds: it made each durable itself. */
	hint = n->cfg.cluster_size ? read_commit(n) : base + nlog;
	if (hint < base)
		hint = base;
	if (hint > base + nlog)
		hint = base + nlog;
	/* The configuration at base (repl.h, Membership): the snapshot's, or the bootstrap one;
	 * taken before the log's committed entries apply to the store. */
	rv = ncl_store_config(n, &base_cfg, &cfg_index);
	if (rv < 0) {
		snprintf(err, errlen, "cannot start replication: bad cluster size %u", ncl_size(n));
		return rv;
	}
	rv = apply_recovered(n, log, (size_t)(hint - base), err, errlen);
	if (rv < 0)
		return rv;
	n->commit_written = hint;
	rv = repl_init(&c->repl, n->cfg.id, &base_cfg, &io, promised, base, base_epoch, log, nlog,
	               hint);
	if (rv < 0) {
		snprintf(err, errlen, "cannot start replication from the log in %s: %s",
		         n->data_dir, strerror(-rv));
		return rv;
	}
	{
		uint64_t ticks = n->cfg.session_timeout_ms / TICK_MS;

		repl_set_lost_ticks(c->repl, ticks > KVFS_REPL_LOST_TICKS ? (unsigned)ticks
		                                                          : KVFS_REPL_LOST_TICKS);
	}
	if (n->rejoining)
		repl_set_rejoining(c->repl);
	if (!n->cfg.cluster_size) {
		/* Standalone: its own log is all there is, applied already; it leads a new epoch. */
		c->solo_epoch = repl_epoch(c->repl) + 1;
	}
	return 0;
}

bool ncl_persist_failed(struct kvfs_node *n, const struct batch *b)
{
	struct node_cluster *c = n->cl;
	unsigned failed = 0;
	/* Out of descriptors: the writers hear EIO (outcome unknown, try again), not EMFILE,
	 * which a write(2) never means. */
	int err = disk_transient(b->append_rv) ? -EIO : b->append_rv;

	if (n->cfg.cluster_size || repl_persist_failed(c->repl, b->first) < 0)
		return false;
	/* The log line first, so that it is there by the time the writers hear the error.
	 * Entries proposed meanwhile follow it in the pending batch: they are gone too. */
	log_error("cannot write the log in %s: %s; the writes in it fail with that error",
	          n->data_dir, strerror(-b->append_rv));
	for (const struct batch *x = b; x; x = x == b ? n->pending : NULL) {
		for (size_t off = 0; off < x->len;) {
			uint32_t plen = log_record_len(x->buf + off);
			struct kvfs_op op;

			if (op_decode(&op, x->buf + off + KVFS_LOG_HEADER_SIZE, plen) == 0 &&
			    op.origin == n->cfg.id) {
				fwd_on_reply(c->fwd, n->cfg.id, n->cfg.id, op.seq, err);
				failed++;
			}
			off += log_record_size(plen);
		}
	}
	if (n->pending) {
		free(n->pending->buf);
		free(n->pending);
		n->pending = NULL;
	}
	log_info("%u write(s) failed", failed);
	return true;
}

int ncl_start(struct kvfs_node *n)
{
	struct node_cluster *c = n->cl;
	struct kvfs_peers_config pc = {
	    .id = n->cfg.id,
	    .size = KVFS_PEERS_MAX_SIZE, /* any id; members: ncl_update_addrs(), the core */
	    .cluster_id = n->cfg.cluster_id,
	    .listen = n->cfg.listen,
	    .epoch = repl_epoch(c->repl),
	    .keys = n->cfg.peer_keys,
	    .test_delay_file = n->cfg.test_peer_delay,
	    .on_message = on_message,
	    .on_state = on_state,
	    .arg = c,
	};
	int rv;

	if (n->cfg.cluster_size) {
		rv = peer_open(&c->peers, n->loop, &pc);
		if (rv < 0) {
			log_error("cannot listen for replication on %s: %s", n->cfg.listen,
			          strerror(-rv));
			c->peers = NULL;
			return rv;
		}
		c->peers_open = true;
	}
	uv_timer_init(n->loop, &c->tick);
	c->tick.data = c;
	c->tick_open = true;
	uv_timer_start(&c->tick, on_tick, TICK_MS, TICK_MS);
	nconfig_start(c);
	if (!n->cluster)
		follow_view(c); /* a cluster of one leads at once */
	return 0;
}

void ncl_check(struct kvfs_node *n)
{
	if (n->fatal) {
		/* Nothing of ours can commit or be applied here any more: answer now rather than
		 * at the write timeout. Here, at the top of the loop, not in node_go_fatal, which
		 * may run inside a walk of these lists. */
		fwd_fail_all(n->cl->fwd, -EIO);
		readidx_fail_all(n->cl->reads, -EIO);
		return;
	}
	fwd_settle(n->cl->fwd);
	readidx_progress(n->cl->reads); /* the restart contract too (readidx.h) */
	/* A cluster of one sends its entries to no one: it keeps none in memory once applied
	 * (they are in its log on disk). */
	if (!n->cfg.cluster_size && repl_applied_index(n->cl->repl) > repl_base_index(n->cl->repl))
		repl_compact(n->cl->repl, repl_applied_index(n->cl->repl));
}

bool node_reads_ready(const struct kvfs_node *n)
{
	return !n->cl || readidx_caught_up(n->cl->reads);
}

int node_read_wait(struct kvfs_node *n, uint64_t deadline, kvfs_node_done_fn cb, void *arg)
{
	if (n->fatal)
		return -EIO;
	if (n->closing)
		return -ESHUTDOWN;
	if (!n->cl)
		return 1;
	return readidx_wait_caught_up(n->cl->reads, deadline, cb, arg);
}

int node_read_barrier(struct kvfs_node *n, uint64_t deadline, kvfs_node_done_fn cb, void *arg)
{
	if (n->fatal)
		return -EIO;
	if (n->closing)
		return -ESHUTDOWN;
	/* Standalone, what is applied is all there is: wait only for writes in flight. */
	if (!n->cl)
		return node_sync(n, cb, arg);
	return readidx_barrier(n->cl->reads, deadline, cb, arg);
}

void ncl_disk_done(struct kvfs_node *n, struct batch *b)
{
	struct node_cluster *c = n->cl;

	if (n->fatal)
		return;
	if (b->persisted && c->repl)
		repl_persisted(c->repl, b->p_epoch, b->p_index);
	nfwd_dispatch(c);
}

void ncl_snapshot_done(struct kvfs_node *n, uint64_t index)
{
	uint64_t keep = nsnap_retain(n->cl);

	/* The core keeps in memory only the log after the newest snapshot (the disk keeps it from
	 * the older one too): a follower that lacks what comes before gets that snapshot. Not past
	 * what a peer catching up from a snapshot still needs (nsnap_retain), on disk either. */
	if (keep && keep < index)
		index = keep;
	if (keep && n->compact_upto > keep)
		n->compact_upto = keep;
	repl_compact(n->cl->repl, index);
}

void ncl_status(const struct kvfs_node *n, struct kvfs_status *st)
{
	const struct node_cluster *c = n->cl;
	uint64_t now = n->loop ? uv_now(n->loop) : 0, commit = repl_leader_commit(c->repl);
	bool leader = repl_role(c->repl) != KVFS_REPL_FOLLOWER;
	const struct kvfs_config *cfg = ncl_config(c);
	const struct kvfs_peer_status *view =
	    !leader && c->leader_view_ms && now - c->leader_view_ms < VIEW_FRESH_MS &&
	            c->leader_view->epoch == repl_epoch(c->repl)
	        ? c->leader_view
	        : NULL;

	/* Only an established leader is named (issue 10): one elected whose epoch is not yet
	 * established (no majority, or its no-op has not committed) cannot take writes, and a
	 * follower names its leader once it has heard that leader's established epoch. */
	if ((strcmp(st->role, "leader") == 0 && repl_role(c->repl) != KVFS_REPL_LEADER) ||
	    (strcmp(st->role, "follower") == 0 && !nhealth_leader_heard(c, st->leader))) {
		st->role = "candidate";
		st->leader = 0;
		st->leader_addr[0] = '\0';
	}
	nconfig_status(c, st);
	if (!n->cluster)
		st->epoch = repl_epoch(c->repl);
	st->commit_index = repl_commit_index(c->repl);
	st->applied_index = store_applied_index(n->store);
	st->lag_entries = commit > st->applied_index ? commit - st->applied_index : 0;
	st->lag_ms = c->behind_since && st->lag_entries ? now - c->behind_since : 0;
	st->catching_up = !readidx_caught_up(c->reads);
	st->rejoining = repl_rejoining(c->repl);
	/* Numbers are true: only an established leader, or a follower that heard its leader a
	 * moment ago, knows how far behind it is. One cut off from its leader may be any way
	 * behind while its last news said 0. */
	st->lag_unknown = repl_role(c->repl) != KVFS_REPL_LEADER &&
	                  !(c->leader_view_ms && now - c->leader_view_ms < LAG_KNOWN_MS &&
	                    c->leader_view->epoch == repl_epoch(c->repl));
	st->npeers = 0;
	for (uint32_t i = 0; i < cfg->n && st->npeers < KVFS_STATUS_MAX_PEERS; i++) {
		uint32_t id = cfg->m[i].id;
		struct kvfs_status_peer *p = &st->peers[st->npeers++];
		bool self = id == n->cfg.id;

		p->id = id;
		snprintf(p->addr, sizeof(p->addr), "%s",
		         !self                ? c->addrs[id]
		         : n->cfg.advertise ? n->cfg.advertise
		                            : n->cfg.listen);
		if (!p->addr[0])
			snprintf(p->addr, sizeof(p->addr), "unknown");
		p->role = id == st->leader                                       ? "leader"
		          : !self && !(c->peers && peer_connected(c->peers, id)) ? "down"
		          : cfg->m[i].role == KVFS_ROLE_OBSERVER                 ? "observer"
		                                                                 : "follower";
		if (leader) {
			p->match = repl_peer_match(c->repl, id);
			p->lag_entries = commit > p->match ? commit - p->match : 0;
			p->lag_ms = c->peer_behind[id] && p->lag_entries ? now - c->peer_behind[id] : 0;
		} else if (view) {
			/* As the leader sees it (its last PEER_STATUS), and this node's own
			 * durable match when that is ahead of what the leader said. */
			for (uint32_t k = 0; k < view->count; k++)
				if (view->peers[k].id == id) {
					p->match = view->peers[k].match;
					p->lag_ms = view->peers[k].lag_ms;
				}
			if (self && st->applied_index > p->match)
				p->match = st->applied_index;
			p->lag_entries = commit > p->match ? commit - p->match : 0;
			if (!p->lag_entries)
				p->lag_ms = 0;
		} else if (self) {
			p->match = st->applied_index;
			p->lag_entries = st->lag_entries;
			p->lag_ms = st->lag_ms;
		} else if (id == st->leader) {
			p->match = commit;
		}
		if (self)
			p->lag_unknown = st->catching_up || st->lag_unknown;
	}
	nscore_status(n, st);
}

static void on_tick_closed(uv_handle_t *h)
{
	struct node_cluster *c = h->data;

	c->tick_open = false;
	node_maybe_finish_close(c->n);
}

static void on_peers_closed(void *arg)
{
	struct node_cluster *c = arg;

	c->peers_open = false;
	node_maybe_finish_close(c->n);
}

void ncl_close(struct kvfs_node *n)
{
	struct node_cluster *c = n->cl;
	struct kvfs_peers *peers = c->peers;

	if (c->closing)
		return;
	c->closing = true;
	fwd_fail_all(c->fwd, n->fatal ? -EIO : -ESHUTDOWN);
	readidx_fail_all(c->reads, n->fatal ? -EIO : -ESHUTDOWN);
	c->peers = NULL;
	if (peers)
		peer_close(peers, on_peers_closed, c);
	if (c->tick_open)
		uv_close((uv_handle_t *)&c->tick, on_tick_closed);
}

bool ncl_closed(const struct kvfs_node *n)
{
	const struct node_cluster *c = n->cl;

	return !c->peers_open && !c->tick_open && !c->promising && !c->unmarking && !nsnap_busy(c);
}

void ncl_free(struct kvfs_node *n)
{
	struct node_cluster *c = n->cl;

	if (c->fwd)
		fwd_fail_all(c->fwd, -ESHUTDOWN);
	fwd_close(c->fwd);
	readidx_fail_all(c->reads, -ESHUTDOWN);
	readidx_close(c->reads);
	nsnap_free(c);
	nscore_free(c);
	repl_close(c->repl);
	free(c->sendbuf);
	free(c->addrs);
	free(c->peer_behind);
	free(c->leader_view);
	free(c);
	n->cl = NULL;
}
