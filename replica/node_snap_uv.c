/*
 * Catch-up by snapshot (DESIGN §4): a follower that needs entries the leader has compacted away
 * receives the leader's newest snapshot file, then the log after it.
 *
 * The leader streams the file in SNAPSHOT_CHUNKs, one in flight per follower: each SNAPSHOT_ACK
 * says how far the follower has it, and the next chunk starts there. A transfer that goes quiet
 * for a while, or whose connection drops, starts again. When the follower acknowledges the last
 * chunk, it has installed the snapshot: repl_snapshot_sent() lets the core go on from there.
 * A replica that does not follow us yet (a new leader's offer reaching a replica still at the
 * old epoch, typically just after a partition heals) refuses with its own, older epoch; the
 * leader then offers again shortly (NOT_YET_MS), by which time the replica has usually learnt
 * the new epoch from the core's messages or from ZooKeeper.
 *
 * The follower writes the chunks to snap-recv.tmp; after the last it fsyncs the file, renames
 * it to its snapshot name and fsyncs the directory, so a crash from then on restarts from the
 * new snapshot. Then it installs it: it loads the file into a new store, swaps the contents of
 * its store with it, hands the pins the kernel and open files hold over to the new contents
 * (the filesystem then rebinds its open files, and owns the old contents), resets its log so that the next entry is the one after the
 * snapshot (unless the core kept a matching suffix), and tells the core
 * (repl_snapshot_installed()). Only then does it acknowledge the last chunk.
 *
 * Both ends run on the loop thread; file reads and writes are small and sequential (a chunk at
 * a time), the final fsync and the load are the slow steps.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

#include "kvfs/disk.h"
#include "kvfs/logging.h"
#include "kvfs/peer.h"
#include "kvfs/peer_msg.h"
#include "kvfs/repl.h"
#include "kvfs/snapshot.h"
#include "kvfs/store.h"
#include "node_internal.h"

#define CHUNK_BYTES (1u << 20)
#define QUIET_MS    5000 /* a transfer without an answer this long starts again */
#define REFUSED_MS  1000 /* after a refused chunk, wait this long before starting again */
#define NOT_YET_MS  200  /* ... refused by a replica not yet at our epoch: this long */

struct send_state {
	bool wanted; /* the core asked for a snapshot for this peer */
	bool pulled; /* ... or this peer, a candidate we follow, asked (SNAPSHOT_PULL) */
	int fd;      /* -1: no transfer in flight */
	uint64_t index, epoch, total, offset;
	uint64_t last_ms;
	uint64_t retry_at; /* uv_now(): no new transfer before */
};

struct node_snaps {
	struct send_state *to; /* by peer id */
	uint8_t *buf;          /* one chunk's message */

	/* receiving */
	uint64_t pull_ms; /* a candidate's SNAPSHOT_PULL last sent (uv_now()) */
	int rfd;
	uint32_t rfrom;
	uint64_t rindex, repoch, rtotal, roffset;
	bool rcomplete; /* durable under its name; waiting to be installed */
};

static void close_send(struct send_state *s)
{
	if (s->fd >= 0)
		close(s->fd);
	s->fd = -1;
}

int nsnap_init(struct node_cluster *c)
{
	struct node_snaps *s = calloc(1, sizeof(*s));

	if (!s)
		return -ENOMEM;
	c->snaps = s;
	s->rfd = -1;
	s->to = calloc(c->n->cfg.cluster_size + 1, sizeof(*s->to));
	s->buf = malloc(KVFS_PEER_SNAPSHOT_CHUNK_HEADER_SIZE + CHUNK_BYTES);
	if (!s->to || !s->buf)
		return -ENOMEM;
	for (uint32_t id = 0; id <= c->n->cfg.cluster_size; id++)
		s->to[id].fd = -1;
	return 0;
}

void nsnap_free(struct node_cluster *c)
{
	struct node_snaps *s = c->snaps;

	if (!s)
		return;
	for (uint32_t id = 0; s->to && id <= c->n->cfg.cluster_size; id++)
		close_send(&s->to[id]);
	if (s->rfd >= 0)
		close(s->rfd);
	free(s->to);
	free(s->buf);
	free(s);
	c->snaps = NULL;
}

void nsnap_need(struct node_cluster *c, uint32_t to)
{
	if (to == 0 || to > c->n->cfg.cluster_size)
		return;
	log_info("node %u needs entries this node compacted: sending it a snapshot", to);
	c->snaps->to[to].wanted = true;
}

static void send_pull(struct node_cluster *c, uint32_t from)
{
	struct kvfs_peer_snapshot_pull m = {.epoch = repl_epoch(c->repl)};
	uint8_t buf[KVFS_PEER_SNAPSHOT_PULL_SIZE];

	peer_msg_snapshot_pull_encode(&m, buf);
	c->snaps->pull_ms = uv_now(c->n->loop);
	peer_send(c->peers, from, KVFS_MSG_SNAPSHOT_PULL, buf, sizeof(buf));
}

void nsnap_pull(struct node_cluster *c, uint32_t from)
{
	log_info("node %u compacted entries this node needs to lead: asking it for its snapshot",
	         from);
	send_pull(c, from);
}

/* A candidate we promised asks for our snapshot: it must adopt our log, which we compacted. */
static void on_pull(struct node_cluster *c, uint32_t from, const uint8_t *p, uint32_t len)
{
	struct kvfs_peer_snapshot_pull m;
	struct send_state *t = &c->snaps->to[from];

	if (peer_msg_snapshot_pull_decode(&m, p, len) < 0 || m.epoch != repl_epoch(c->repl) ||
	    from != repl_leader(c->repl) || repl_role(c->repl) != KVFS_REPL_FOLLOWER)
		return;
	t->wanted = true;
	t->pulled = true;
}

void nsnap_peer_down(struct node_cluster *c, uint32_t id)
{
	if (id <= c->n->cfg.cluster_size)
		close_send(&c->snaps->to[id]);
}

/* ---- leader: sending ---- */

static void send_chunk(struct node_cluster *c, uint32_t to)
{
	struct send_state *t = &c->snaps->to[to];
	struct kvfs_peer_snapshot_chunk m = {
	    .epoch = repl_epoch(c->repl),
	    .snap_index = t->index,
	    .snap_epoch = t->epoch,
	    .offset = t->offset,
	    .total = t->total,
	};
	uint64_t left = t->total - t->offset;
	ssize_t got;
	size_t len;

	m.len = left > CHUNK_BYTES ? CHUNK_BYTES : (uint32_t)left;
	m.last = t->offset + m.len == t->total;
	/* The data goes straight into its place in the message. */
	got = m.len ? pread(t->fd, c->snaps->buf + KVFS_PEER_SNAPSHOT_CHUNK_HEADER_SIZE, m.len,
	                    (off_t)t->offset)
	            : 0;
	if (got != (ssize_t)m.len) {
		log_warn("cannot read the snapshot for node %u: %s; trying again", to,
		         got < 0 ? strerror(errno) : "short read");
		close_send(t);
		return;
	}
	m.data = m.len ? c->snaps->buf + KVFS_PEER_SNAPSHOT_CHUNK_HEADER_SIZE : NULL;
	len = peer_msg_snapshot_chunk_encode(&m, c->snaps->buf);
	t->last_ms = uv_now(c->n->loop);
	if (peer_send(c->peers, to, KVFS_MSG_SNAPSHOT_CHUNK, c->snaps->buf, (uint32_t)len) < 0)
		close_send(t);
}

/* Opens this node's newest snapshot for peer `to` and sends the first chunk. */
static void start_send(struct node_cluster *c, uint32_t to)
{
	struct kvfs_node *n = c->n;
	struct send_state *t = &c->snaps->to[to];
	char path[PATH_MAX];
	struct stat st;

	if (!n->snapshot_index || snapshot_path(n->data_dir, n->snapshot_index, path,
	                                        sizeof(path)) < 0)
		return;
	t->fd = open(path, O_RDONLY | O_CLOEXEC);
	if (t->fd < 0) {
		log_warn("cannot open %s for node %u: %s", path, to, strerror(errno));
		return;
	}
	if (fstat(t->fd, &st) < 0) {
		close_send(t);
		return;
	}
	t->index = n->snapshot_index;
	t->epoch = n->snapshot_epoch;
	t->total = (uint64_t)st.st_size;
	t->offset = 0;
	log_info("sending node %u the snapshot at index %" PRIu64 " (%" PRIu64 " bytes)", to,
	         t->index, t->total);
	send_chunk(c, to);
}

static void on_ack(struct node_cluster *c, uint32_t from, const uint8_t *p, uint32_t len)
{
	struct send_state *t = &c->snaps->to[from];
	struct kvfs_peer_snapshot_ack m;

	if (peer_msg_snapshot_ack_decode(&m, p, len) < 0 || t->fd < 0 || m.snap_index != t->index)
		return;
	if (m.epoch != repl_epoch(c->repl)) {
		/* Not an answer at our epoch, so not progress; but a refusal from an older epoch
		 * means "I do not follow you yet", not "I am busy": dropping it would leave the
		 * transfer to the QUIET_MS timeout. Offer again soon. (A newer epoch: we are deposed,
		 * and the tick stops sending.) */
		if (!m.ok && m.epoch < repl_epoch(c->repl)) {
			close_send(t);
			t->retry_at = uv_now(c->n->loop) + NOT_YET_MS;
		}
		return;
	}
	/* A follower busy with a long transfer is alive: the leader must not give up for want of
	 * its APPEND_ACKs. */
	repl_peer_heard(c->repl, from);
	if (m.offset > t->total || (!m.ok && m.offset != t->total)) {
		/* Refused (it cannot write it, or it does not follow us yet): start again later,
		 * not in a loop of chunks. */
		close_send(t);
		t->retry_at = uv_now(c->n->loop) + REFUSED_MS;
		return;
	}
	t->offset = m.offset;
	if (m.ok && m.offset == t->total) {
		log_info("node %u installed the snapshot at index %" PRIu64, from, t->index);
		close_send(t);
		t->wanted = false;
		t->pulled = false;
		repl_snapshot_sent(c->repl, from, t->index);
		return;
	}
	send_chunk(c, from);
}

/* ---- follower: receiving and installing ---- */

static void send_ack(struct node_cluster *c, uint32_t to, uint64_t index, uint64_t offset,
                     bool ok)
{
	struct kvfs_peer_snapshot_ack m = {
	    .epoch = repl_epoch(c->repl), .snap_index = index, .offset = offset, .ok = ok};
	uint8_t buf[KVFS_PEER_SNAPSHOT_ACK_SIZE];

	peer_msg_snapshot_ack_encode(&m, buf);
	peer_send(c->peers, to, KVFS_MSG_SNAPSHOT_ACK, buf, sizeof(buf));
}

static void recv_path(const struct kvfs_node *n, char *buf, size_t len)
{
	snprintf(buf, len, "%s/snap-recv.tmp", n->data_dir);
}

static void drop_recv(struct node_cluster *c)
{
	struct node_snaps *s = c->snaps;
	char path[PATH_MAX];

	if (s->rfd >= 0)
		close(s->rfd);
	s->rfd = -1;
	s->rcomplete = false;
	recv_path(c->n, path, sizeof(path));
	unlink(path);
}

/* Makes the received file a snapshot of this node's: fsync, rename, fsync the directory. */
static int seal_recv(struct node_cluster *c)
{
	struct node_snaps *s = c->snaps;
	char tmp[PATH_MAX], path[PATH_MAX];
	int rv = 0;

	recv_path(c->n, tmp, sizeof(tmp));
	if (snapshot_path(c->n->data_dir, s->rindex, path, sizeof(path)) < 0)
		return -ENAMETOOLONG;
	if (fsync(s->rfd) < 0)
		rv = -errno;
	close(s->rfd);
	s->rfd = -1;
	if (rv == 0 && rename(tmp, path) < 0)
		rv = -errno;
	if (rv == 0)
		rv = disk_fsync_dir(c->n->data_dir);
	return rv;
}

static int hand_over_pin(void *arg, const struct kvfs_inode *in)
{
	struct kvfs_store *to = arg;
	struct kvfs_inode *now;

	if (in->pins && (now = store_get(to, in->ino)) != NULL)
		store_pin(to, now, in->pins);
	return 0;
}

/* Replaces this node's state with the received snapshot. True once done (or given up). */
static bool install(struct node_cluster *c)
{
	struct kvfs_node *n = c->n;
	struct node_snaps *s = c->snaps;
	struct kvfs_store *loaded = NULL;
	struct kvfs_repl_entry e;
	uint64_t index = 0;
	char err[256] = "";
	struct batch *b;
	int rv;

	if (s->rindex <= repl_commit_index(c->repl)) {
		send_ack(c, s->rfrom, s->rindex, s->rtotal, true); /* caught up meanwhile */
		return true;
	}
	if (!repl_snapshot_wanted(c->repl, s->rindex))
		return false; /* not a follower right now: see at the next tick */
	rv = snapshot_load_latest(n->data_dir, &loaded, &index, err, sizeof(err));
	if (rv < 0 || index != s->rindex) {
		log_error("cannot load the snapshot received from node %u: %s; stopping", s->rfrom,
		          rv < 0 ? err : "it is not the newest valid one");
		if (loaded)
			store_close(loaded);
		node_go_fatal(n);
		return true;
	}
	/* The kernel's and the open files' references (pins) move to the same inodes in the new
	 * contents. */
	store_foreach(n->store, hand_over_pin, loaded);
	store_exchange(n->store, loaded);
	if (index > n->snapshot_index) {
		n->snapshot_index = index;
		n->snapshot_epoch = s->repoch;
	}
	n->bytes_since_snapshot = 0;
	if (n->reset && n->reset->done)
		n->reset->done(n->cb_arg, loaded); /* the filesystem owns the old contents now */
	else
		store_close(loaded);
	/* The log goes too, unless it goes on from the snapshot's last entry; before the core
	 * hears of it, since a candidate may append its no-op at once. */
	if (repl_entry(c->repl, s->rindex, &e) < 0 || e.epoch != s->repoch) {
		b = node_pending_batch(n);
		if (!b) {
			node_go_fatal(n);
			return true;
		}
		b->len = 0;
		b->first = b->last = 0;
		b->trunc = false;
		b->reset_next = s->rindex + 1;
	}
	rv = repl_snapshot_installed(c->repl, s->rindex, s->repoch);
	if (rv < 0) {
		log_error("the replication core refused the snapshot at index %" PRIu64 "; stopping",
		          s->rindex);
		node_go_fatal(n);
		return true;
	}
	nfwd_after_reset(c);
	log_info("installed the snapshot at index %" PRIu64 " from node %u (%" PRIu64 " keys)",
	         s->rindex, s->rfrom, store_inode_count(n->store) - 1);
	send_ack(c, s->rfrom, s->rindex, s->rtotal, true);
	return true;
}

static void on_chunk(struct node_cluster *c, uint32_t from, const uint8_t *p, uint32_t len)
{
	struct node_snaps *s = c->snaps;
	struct kvfs_peer_snapshot_chunk m;
	char path[PATH_MAX];
	int rv;

	if (peer_msg_snapshot_chunk_decode(&m, p, len) < 0)
		return;
	if (m.epoch < repl_epoch(c->repl) || from != repl_snapshot_source(c->repl)) {
		send_ack(c, from, m.snap_index, 0, false);
		return;
	}
	repl_peer_heard(c->repl, from); /* a candidate pulling: its source is alive */
	if (m.snap_index <= repl_commit_index(c->repl)) {
		send_ack(c, from, m.snap_index, m.total, true); /* we have all that */
		return;
	}
	if (s->rcomplete) {
		if (m.snap_index == s->rindex && m.last)
			return; /* a resend while we wait to install */
		drop_recv(c);
	}
	if (m.offset == 0) {
		drop_recv(c);
		recv_path(c->n, path, sizeof(path));
		s->rfd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		if (s->rfd < 0) {
			log_warn("cannot write %s: %s", path, strerror(errno));
			send_ack(c, from, m.snap_index, 0, false);
			return;
		}
		s->rfrom = from;
		s->rindex = m.snap_index;
		s->repoch = m.snap_epoch;
		s->rtotal = m.total;
		s->roffset = 0;
		log_info("receiving a snapshot at index %" PRIu64 " (%" PRIu64 " bytes) from node %u",
		         m.snap_index, m.total, from);
	}
	if (s->rfd < 0 || m.snap_index != s->rindex || m.offset != s->roffset ||
	    m.total != s->rtotal) {
		send_ack(c, from, m.snap_index, s->rfd >= 0 ? s->roffset : 0, false);
		return;
	}
	if (m.len && pwrite(s->rfd, m.data, m.len, (off_t)m.offset) != (ssize_t)m.len) {
		log_warn("cannot write the snapshot from node %u: %s", from, strerror(errno));
		drop_recv(c);
		send_ack(c, from, m.snap_index, 0, false);
		return;
	}
	s->roffset += m.len;
	if (!m.last) {
		send_ack(c, from, m.snap_index, s->roffset, true);
		return;
	}
	rv = seal_recv(c);
	if (rv < 0) {
		log_error("cannot store the snapshot from node %u: %s; stopping", from,
		          strerror(-rv));
		node_go_fatal(c->n);
		return;
	}
	s->rcomplete = true;
	if (install(c))
		s->rcomplete = false;
}

bool nsnap_message(struct node_cluster *c, uint32_t from, uint8_t type, const uint8_t *p,
                   uint32_t len)
{
	if (type == KVFS_MSG_SNAPSHOT_CHUNK)
		on_chunk(c, from, p, len);
	else if (type == KVFS_MSG_SNAPSHOT_ACK)
		on_ack(c, from, p, len);
	else if (type == KVFS_MSG_SNAPSHOT_PULL)
		on_pull(c, from, p, len);
	else
		return false;
	return true;
}

void nsnap_tick(struct node_cluster *c)
{
	struct node_snaps *s = c->snaps;
	bool leader = repl_role(c->repl) != KVFS_REPL_FOLLOWER;
	uint64_t now = uv_now(c->n->loop);

	uint32_t source = repl_snapshot_source(c->repl);

	if (s->rcomplete && install(c))
		s->rcomplete = false;
	/* A candidate waiting for a snapshot it pulled asks again if nothing comes. */
	if (!leader || repl_role(c->repl) != KVFS_REPL_CANDIDATE || !source || s->rfd >= 0 ||
	    s->rcomplete)
		;
	else if (now - s->pull_ms >= QUIET_MS)
		send_pull(c, source);
	for (uint32_t id = 1; id <= c->n->cfg.cluster_size; id++) {
		struct send_state *t = &s->to[id];

		/* A leader sends to whoever needs it; a follower only to the candidate it follows
		 * that pulled. */
		if (!(leader ? !t->pulled : t->pulled && id == repl_leader(c->repl))) {
			close_send(t);
			t->wanted = false;
			t->pulled = false;
			continue;
		}
		if (t->fd >= 0 && now - t->last_ms >= QUIET_MS)
			close_send(t);
		if (t->wanted && t->fd < 0 && now >= t->retry_at && peer_connected(c->peers, id))
			start_send(c, id);
	}
}
