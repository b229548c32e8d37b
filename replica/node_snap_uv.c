/*
 * Catch-up by snapshot (DESIGN §4) on libuv: the binding of snapxfer.c, which decides who sends
 * what to whom and when (see snapxfer.h), to this node's files, peers, clock and store.
 *
 * Sending: the newest snapshot file is opened per peer and read a chunk at a time with pread on
 * the loop thread, straight into its place in the one message buffer, and sent at once (the peer
 * layer copies it into its queue, which holds the window of chunks in flight).
 * Receiving: chunks are written to DATA/snap-recv.tmp with pwrite on libuv workers, behind the
 * loop's back (write_behind(): NSNAP_WRITE_BEHIND_MAX bytes at most); the slow steps run on a libuv
 * worker, one at a time, once those writes are done: the seal (fsync the file, rename it to its
 * snapshot name, fsync the directory, so a crash from then on restarts from it) and the load of
 * that file into a new store. Only the swap runs on the loop thread, after the load: the pins the
 * kernel and open files hold move to the same inodes in the new contents (the filesystem then
 * rebinds its open files, and owns the old contents), the store's contents are exchanged, the log
 * is reset so that the next entry is the one after the snapshot (unless the core kept a matching
 * suffix), and the core is told (repl_snapshot_installed()). The old contents are freed on a
 * worker too once nothing refers to them (node_store_close_later(); the filesystem decides, as
 * it owns them after the swap). A failure to seal or load stops the node (node_go_fatal), as a
 * failed log write does, unless it was for lack of file descriptors (disk.h) or a chunk written
 * behind failed: that transfer ends, and the leader sends again. Closing waits for the workers
 * (nsnap_busy()).
 *
 * snapxfer.c's completions must not come from inside the io call that asked: the binding does
 * the quick file actions at once (a write) or when it drains its queue (open, read, install) and
 * reports them when it drains, at the end of each nsnap_message() and nsnap_tick() and after the
 * worker; the calls from inside the core (nsnap_need, nsnap_pull) only set flags or send.
 */
#include <assert.h>
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

#include "kvfs/changes.h"
#include "kvfs/config.h"
#include "kvfs/disk.h"
#include "kvfs/logging.h"
#include "kvfs/peer.h"
#include "kvfs/peer_msg.h"
#include "kvfs/repl.h"
#include "kvfs/snapshot.h"
#include "kvfs/snapxfer.h"
#include "kvfs/store.h"
#include "node_internal.h"

enum pend_kind { P_OPEN, P_READ, P_WRITTEN, P_INSTALL, P_SENT };

/* A file action done (or to be done) and reported to snapxfer.c when the queue drains. */
struct pend {
	enum pend_kind kind;
	uint32_t peer;
	int rv;
	uint64_t a, b; /* read: offset, len; install: index, epoch; sent: index */
};

enum work_kind { W_SEAL, W_LOAD };

/*
 * Bytes of received chunks copied and waiting for the worker that writes them, at most. The
 * worker copies into the page cache at the rate the machine gives fresh pages (on the virtual
 * machines of the benchmarks, ~380 MB/s: the host backs guest pages at first touch), which is
 * slower than chunks arrive and are decrypted: the loop, writing itself beyond this, would
 * contend with the worker for the file's lock. 64 MiB, against a store of hundreds.
 */
#define NSNAP_WRITE_BEHIND_MAX (64u << 20)
/* Writers at a time: one copies while the other's completion waits for the loop (the kernel lets
 * one write a file at a time anyway). */
#define NSNAP_WRITERS 2u

struct node_snaps {
	struct node_cluster *c;
	struct kvfs_snapxfer *x;
	int *fd;          /* by peer id: the snapshot file being sent to it, -1 */
	uint64_t *retain; /* by peer id: keep the log after this index for it (nsnap_retain), 0 */
	uint8_t *buf;     /* one chunk's message */

	struct pend *q; /* a ring */
	size_t qhead, qlen, qcap;
	bool draining;

	/* receiving */
	const struct kvfs_peer_snapshot_chunk *chunk; /* being handled, for the log */
	uint32_t chunk_from;
	uint32_t rfrom;  /* who sent the file being received, for the log */
	int rfd;         /* DATA/snap-recv.tmp */
	uint64_t rgen;   /* files received so far: which file a write belongs to */
	unsigned writes; /* chunks being written on a worker or waiting to be (write-behind) */
	size_t wbytes;   /* ... their bytes */
	struct write_job *wq_head, *wq_tail; /* ... those waiting, in order */
	unsigned wrunning;                   /* ... those on workers (NSNAP_WRITERS at most) */
	int wfail;     /* the first of this file's that failed, not yet reported */
	bool seal_due; /* the seal waits for those writes */
	uint64_t seal_index;
	int wfailed; /* the seal is to fail with this (a chunk was not written) */

	/* the worker: one seal or load at a time */
	uv_work_t work;
	bool working;
	enum work_kind wkind;
	char *data_dir;
	int wfd;
	uint64_t windex;
	int wrv;
	char werr[PATH_MAX + 256];
	struct kvfs_store *loaded; /* what the load made; the loop's once the work is done */

	unsigned freeing; /* replaced contents being freed on workers (node_store_close_later) */
	/* during an install's done(): the inodes pinned in the old contents (node_reset_pinned) */
	const uint64_t *pinned;
	size_t npinned;
	bool pinned_known;
};

/* A chunk written on a worker: its own descriptor (a dup, so that closing rfd meanwhile is safe)
 * and copy of the bytes. */
struct write_job {
	uv_work_t work;
	struct node_snaps *s;
	struct write_job *next;
	uint64_t gen, offset;
	uint32_t len;
	int fd, rv;
	uint8_t data[];
};

/* Replaced contents freed on a worker. */
struct free_job {
	uv_work_t work;
	struct node_snaps *s;
	struct kvfs_store *store;
};

static void recv_path(const char *dir, char *buf, size_t len)
{
	snprintf(buf, len, "%s/snap-recv.tmp", dir);
}

static void push(struct node_snaps *s, struct pend p)
{
	/* snapxfer.c has one file action in flight per peer and one on the receiving side, and a
	 * peer's `sent` is drained before its next transfer can end: the ring never fills. */
	assert(s->qlen < s->qcap);
	s->q[(s->qhead + s->qlen++) % s->qcap] = p;
}

/* ---- snapxfer's io ---- */

static uint64_t io_now_ms(void *arg)
{
	struct node_snaps *s = arg;

	return uv_now(s->c->n->loop);
}

static void io_view(void *arg, struct kvfs_snapxfer_view *v)
{
	struct kvfs_repl *r = ((struct node_snaps *)arg)->c->repl;

	v->role = repl_role(r);
	v->epoch = repl_epoch(r);
	v->leader = repl_leader(r);
	v->commit = repl_commit_index(r);
	v->durable = repl_durable_commit(r);
	v->source = repl_snapshot_source(r);
	v->wanted = repl_snapshot_wanted(r, v->commit + 1);
}

static bool io_connected(void *arg, uint32_t id)
{
	struct node_snaps *s = arg;

	return s->c->peers && peer_connected(s->c->peers, id);
}

static void send_msg(struct node_snaps *s, uint32_t to, uint8_t type, const uint8_t *buf,
                     size_t len)
{
	if (s->c->peers)
		peer_send(s->c->peers, to, type, buf, (uint32_t)len);
}

static void io_send_chunk(void *arg, uint32_t to, const struct kvfs_peer_snapshot_chunk *m)
{
	struct node_snaps *s = arg;

	/* m->data is already where the encoding puts it (io_read read it there). */
	assert(!m->len || m->data == s->buf + KVFS_PEER_SNAPSHOT_CHUNK_HEADER_SIZE);
	send_msg(s, to, KVFS_MSG_SNAPSHOT_CHUNK, s->buf, peer_msg_snapshot_chunk_encode(m, s->buf));
}

static void io_send_ack(void *arg, uint32_t to, const struct kvfs_peer_snapshot_ack *m)
{
	uint8_t buf[KVFS_PEER_SNAPSHOT_ACK_SIZE];

	send_msg(arg, to, KVFS_MSG_SNAPSHOT_ACK, buf, peer_msg_snapshot_ack_encode(m, buf));
}

static void io_send_pull(void *arg, uint32_t to, uint64_t epoch)
{
	struct kvfs_peer_snapshot_pull m = {.epoch = epoch};
	uint8_t buf[KVFS_PEER_SNAPSHOT_PULL_SIZE];

	send_msg(arg, to, KVFS_MSG_SNAPSHOT_PULL, buf, peer_msg_snapshot_pull_encode(&m, buf));
}

static void io_open(void *arg, uint32_t to)
{
	push(arg, (struct pend){.kind = P_OPEN, .peer = to});
}

static void io_read(void *arg, uint32_t to, uint64_t offset, uint32_t len)
{
	push(arg, (struct pend){.kind = P_READ, .peer = to, .a = offset, .b = len});
}

static void io_close(void *arg, uint32_t to)
{
	struct node_snaps *s = arg;

	if (s->fd[to] >= 0)
		close(s->fd[to]);
	s->fd[to] = -1;
}

static void io_sent(void *arg, uint32_t to, uint64_t index)
{
	push(arg, (struct pend){.kind = P_SENT, .peer = to, .a = index});
}

static void io_heard(void *arg, uint32_t id)
{
	struct node_snaps *s = arg;

	repl_peer_heard(s->c->repl, id);
}

static void close_recv(struct node_snaps *s)
{
	if (s->rfd >= 0)
		close(s->rfd);
	s->rfd = -1;
}

static void start_seal(struct node_snaps *s);

static int write_all(int fd, const uint8_t *data, uint32_t len, uint64_t offset)
{
	errno = 0;
	if (pwrite(fd, data, len, (off_t)offset) != (ssize_t)len)
		return errno ? -errno : -ENOSPC; /* a short write: the disk is full */
	return 0;
}

static void write_work(uv_work_t *req)
{
	struct write_job *j = req->data;

	j->rv = write_all(j->fd, j->data, j->len, j->offset);
	close(j->fd);
}

static void write_done(uv_work_t *req, int status);

/* Waiting chunks go to workers, in order, NSNAP_WRITERS at a time: more would only take turns
 * at the file's lock in the kernel, spinning. */
static void write_next(struct node_snaps *s)
{
	while (s->wq_head && s->wrunning < NSNAP_WRITERS) {
		struct write_job *j = s->wq_head;
		int rv;

		s->wq_head = j->next;
		if (!s->wq_head)
			s->wq_tail = NULL;
		rv = uv_queue_work(s->c->n->loop, &j->work, write_work, write_done);
		assert(rv == 0); /* it fails only on a NULL work_cb */
		(void)rv;
		s->wrunning++;
	}
}

static void write_done(uv_work_t *req, int status)
{
	struct write_job *j = req->data;
	struct node_snaps *s = j->s;
	struct kvfs_node *n = s->c->n;

	(void)status;
	s->wrunning--;
	write_next(s);
	s->writes--;
	s->wbytes -= j->len;
	if (j->rv < 0 && j->gen == s->rgen && !s->wfail) {
		log_warn("cannot write the snapshot being received: %s", strerror(-j->rv));
		s->wfail = j->rv;
	}
	free(j);
	if (s->writes)
		return;
	if (s->seal_due && (n->fatal || s->c->closing)) {
		close(s->wfd);
		s->seal_due = false;
	}
	if (s->seal_due)
		start_seal(s);
	node_maybe_finish_close(n);
}

/*
 * Writes a chunk of the file being received behind the loop's back: the page cache copy of a
 * MiB costs the loop as much as receiving and decrypting it. The chunk counts as written at
 * once (a failure is reported at the next write or at the seal, which waits for them all); at
 * most NSNAP_WRITE_BEHIND_MAX bytes are copied and queued, handed to workers in order,
 * NSNAP_WRITERS at a time; beyond that (or out of memory) the loop writes itself. 0 or a negative
 * errno.
 */
static int write_behind(struct node_snaps *s, uint64_t offset, const uint8_t *data, uint32_t len)
{
	struct write_job *j;

	if (s->wbytes + len > NSNAP_WRITE_BEHIND_MAX || !(j = malloc(sizeof(*j) + len)))
		return write_all(s->rfd, data, len, offset);
	j->fd = dup(s->rfd);
	if (j->fd < 0) {
		free(j);
		return write_all(s->rfd, data, len, offset);
	}
	j->work.data = j;
	j->s = s;
	j->next = NULL;
	j->gen = s->rgen;
	j->offset = offset;
	j->len = len;
	memcpy(j->data, data, len);
	if (s->wq_tail)
		s->wq_tail->next = j;
	else
		s->wq_head = j;
	s->wq_tail = j;
	write_next(s);
	s->writes++;
	s->wbytes += len;
	return 0;
}

static void io_write(void *arg, uint64_t offset, const uint8_t *data, uint32_t len)
{
	struct node_snaps *s = arg;
	const struct kvfs_node *n = s->c->n;
	char path[PATH_MAX];
	int rv = 0;

	if (offset == 0) {
		close_recv(s);
		recv_path(n->data_dir, path, sizeof(path));
		/* Writes of another file still in flight go to that one, unlinked: not here. */
		unlink(path);
		s->rgen++;
		s->wfail = 0;
		s->rfd = disk_openat(AT_FDCWD, path, O_WRONLY | O_CREAT | O_TRUNC, KVFS_FILE_MODE);
		if (s->rfd < 0) {
			rv = s->rfd;
			log_warn("cannot write %s: %s", path, strerror(-rv));
		} else if (s->chunk) {
			s->rfrom = s->chunk_from;
			log_info("receiving a snapshot at index %" PRIu64 " (%" PRIu64
			         " bytes) from node %u",
			         s->chunk->snap_index, s->chunk->total, s->chunk_from);
		}
	}
	if (rv == 0 && s->wfail) {
		rv = s->wfail; /* an earlier chunk of it (already logged) */
		s->wfail = 0;
	} else if (rv == 0 && len) {
		rv = write_behind(s, offset, data, len);
		if (rv < 0)
			log_warn("cannot write the snapshot being received: %s", strerror(-rv));
	}
	push(s, (struct pend){.kind = P_WRITTEN, .rv = rv});
}

static void io_discard(void *arg)
{
	struct node_snaps *s = arg;
	char path[PATH_MAX];

	close_recv(s);
	s->rgen++; /* its writes still in flight fail unheard */
	recv_path(s->c->n->data_dir, path, sizeof(path));
	unlink(path);
}

/* The worker: seal (fsync, rename, fsync the directory) or load the received snapshot. */
static void work(uv_work_t *req)
{
	struct node_snaps *s = req->data;
	char tmp[PATH_MAX], path[PATH_MAX];

	if (s->wkind == W_LOAD) {
		s->wrv =
		    snapshot_load(s->data_dir, s->windex, &s->loaded, s->werr, sizeof(s->werr));
		return;
	}
	recv_path(s->data_dir, tmp, sizeof(tmp));
	if (s->wfailed) {
		s->wrv = s->wfailed;
		snprintf(s->werr, sizeof(s->werr), "a chunk was not written: %s",
		         strerror(-s->wrv));
		close(s->wfd);
		unlink(tmp);
		return;
	}
	s->wrv = snapshot_path(s->data_dir, s->windex, path, sizeof(path));
	if (s->wrv == 0 && fsync(s->wfd) < 0)
		s->wrv = -errno;
	close(s->wfd);
	if (s->wrv == 0 && rename(tmp, path) < 0)
		s->wrv = -errno;
	if (s->wrv == 0)
		s->wrv = disk_fsync_dir(s->data_dir);
	if (s->wrv < 0)
		snprintf(s->werr, sizeof(s->werr), "cannot store it as %s: %s", path,
		         strerror(-s->wrv));
}

static void drain(struct node_snaps *s);

static void work_done(uv_work_t *req, int status)
{
	struct node_snaps *s = req->data;
	struct kvfs_node *n = s->c->n;
	enum work_kind kind = s->wkind;

	(void)status;
	s->working = false;
	if (s->wrv < 0 && (disk_transient(s->wrv) || s->wfailed) && !n->fatal && !s->c->closing) {
		/* Out of descriptors, not a failed disk, or a write that failed (and was not
		 * acknowledged as failed, having been written behind): this transfer ends
		 * (snapxfer.c starts another) and the node goes on, as after a refused write. */
		log_warn("cannot %s the snapshot at index %" PRIu64 " received: %s; trying again "
		         "later",
		         kind == W_SEAL ? "seal" : "load", s->windex, s->werr);
	} else if (s->wrv < 0 && !n->fatal && !s->c->closing) {
		log_error("cannot %s the snapshot at index %" PRIu64 " received: %s; stopping",
		          kind == W_SEAL ? "seal" : "load", s->windex, s->werr);
		node_go_fatal(n);
	}
	if (n->fatal || s->c->closing) {
		if (s->loaded)
			store_close(s->loaded);
		s->loaded = NULL;
		node_maybe_finish_close(n);
		return;
	}
	/* Where an install's time goes (scripts/bench_scale.sh reads these lines): the transfer
	 * from "receiving" to "received", the seal, the load, and the install up to "installed". */
	if (s->wrv == 0)
		log_info("%s the snapshot at index %" PRIu64, kind == W_SEAL ? "sealed" : "loaded",
		         s->windex);
	if (kind == W_SEAL)
		snapxfer_sealed(s->x, s->wrv);
	else
		snapxfer_loaded(s->x, s->wrv);
	drain(s);
}

static void start_work(struct node_snaps *s, enum work_kind kind, uint64_t index)
{
	int rv;

	assert(!s->working);
	s->working = true;
	s->wkind = kind;
	s->windex = index;
	s->wrv = 0;
	s->werr[0] = '\0';
	if (kind != W_SEAL)
		s->wfailed = 0;
	s->work.data = s;
	rv = uv_queue_work(s->c->n->loop, &s->work, work, work_done);
	assert(rv == 0);
}

/* Every chunk is written (or failed): the seal goes to the worker. */
static void start_seal(struct node_snaps *s)
{
	s->seal_due = false;
	s->wfailed = s->wfail;
	s->wfail = 0;
	if (!s->wfailed)
		log_info("received the snapshot at index %" PRIu64, s->seal_index);
	start_work(s, W_SEAL, s->seal_index);
}

static void io_seal(void *arg, uint64_t index)
{
	struct node_snaps *s = arg;

	s->wfd = s->rfd; /* the worker's now */
	s->rfd = -1;
	s->seal_index = index;
	if (s->writes)
		s->seal_due = true; /* when they are done (write_done) */
	else
		start_seal(s);
}

static void io_load(void *arg, uint64_t index)
{
	start_work(arg, W_LOAD, index);
}

static void io_unload(void *arg)
{
	struct node_snaps *s = arg;

	store_close(s->loaded);
	s->loaded = NULL;
}

static void free_work(uv_work_t *req)
{
	struct free_job *j = req->data;

	store_close(j->store);
}

static void free_done(uv_work_t *req, int status)
{
	struct free_job *j = req->data;
	struct node_snaps *s = j->s;

	(void)status;
	free(j);
	s->freeing--;
	node_maybe_finish_close(s->c->n);
}

void node_store_close_later(struct kvfs_node *n, struct kvfs_store *old)
{
	struct node_snaps *s = n->cl ? n->cl->snaps : NULL;
	struct free_job *j;

	/* A snapshot being written holds references to values of these contents (they were the
	 * node's when it was captured), and drops them on the loop: not now, then. */
	if (!old || !s || n->closing || n->snapshotting || !(j = malloc(sizeof(*j)))) {
		store_close(old);
		return;
	}
	j->work.data = j;
	j->s = s;
	j->store = old;
	if (uv_queue_work(n->loop, &j->work, free_work, free_done) != 0) {
		free(j);
		store_close(old);
		return;
	}
	s->freeing++;
}

static void io_install(void *arg, uint64_t index, uint64_t epoch)
{
	push(arg, (struct pend){.kind = P_INSTALL, .a = index, .b = epoch});
}

/* ---- the actions done when the queue drains ---- */

static int open_newest(struct node_snaps *s, uint32_t to, uint64_t *total)
{
	struct kvfs_node *n = s->c->n;
	char path[PATH_MAX];
	struct stat st;
	int rv;

	if (!n->snapshot_index)
		return -ENOENT;
	rv = snapshot_path(n->data_dir, n->snapshot_index, path, sizeof(path));
	if (rv < 0)
		return rv;
	s->fd[to] = disk_openat(AT_FDCWD, path, O_RDONLY, 0);
	if (s->fd[to] < 0 || fstat(s->fd[to], &st) < 0) {
		rv = s->fd[to] < 0 ? s->fd[to] : -errno;
		log_warn("cannot open %s for node %u: %s", path, to, strerror(-rv));
		io_close(s, to);
		return rv;
	}
	*total = (uint64_t)st.st_size;
	log_info("sending node %u the snapshot at index %" PRIu64 " (%" PRIu64 " bytes)", to,
	         n->snapshot_index, *total);
	if (s->retain[to] < n->snapshot_index)
		s->retain[to] = n->snapshot_index;
	return 0;
}

static int read_chunk(struct node_snaps *s, uint32_t to, uint64_t offset, uint32_t len)
{
	ssize_t got = len ? pread(s->fd[to], s->buf + KVFS_PEER_SNAPSHOT_CHUNK_HEADER_SIZE, len,
	                          (off_t)offset)
	                  : 0;

	if (got == (ssize_t)len)
		return 0;
	log_warn("cannot read the snapshot for node %u: %s; trying again", to,
	         got < 0 ? strerror(errno) : "short read");
	return got < 0 ? -errno : -EIO;
}

/* The walk of the old contents at an install: the store the pins go to, and the pinned inodes
 * found (for node_reset_pinned()). */
struct pin_walk {
	struct kvfs_store *to;
	uint64_t *inos;
	size_t n, cap;
	bool lost; /* out of memory: the list is incomplete */
};

static int hand_over_pin(void *arg, const struct kvfs_dentry *d, bool first)
{
	struct pin_walk *w = arg;
	const struct kvfs_inode *in = d->in;
	struct kvfs_inode *now;
	uint64_t *grown;

	/* Once per inode, however many names it has. */
	if (!first || !in->pins)
		return 0;
	if ((now = store_get(w->to, in->ino)) != NULL)
		store_pin(w->to, now, in->pins);
	if (w->n == w->cap && !w->lost) {
		grown = realloc(w->inos, (w->cap ? 2 * w->cap : 64) * sizeof(*w->inos));
		if (grown) {
			w->inos = grown;
			w->cap = w->cap ? 2 * w->cap : 64;
		} else {
			w->lost = true;
		}
	}
	if (!w->lost)
		w->inos[w->n++] = in->ino;
	return 0;
}

const uint64_t *node_reset_pinned(const struct kvfs_node *n, size_t *count)
{
	static const uint64_t none[1]; /* an empty list, not an unknown one */
	const struct node_snaps *s = n->cl ? n->cl->snaps : NULL;

	if (!s || !s->pinned_known)
		return NULL;
	*count = s->npinned;
	return s->pinned ? s->pinned : none;
}

/* Replaces this node's state with the loaded snapshot: 0, -EAGAIN (the core does not take it
 * now; it stays loaded), or -EIO after stopping the node. */
static int install(struct node_snaps *s, uint64_t index, uint64_t epoch)
{
	struct node_cluster *c = s->c;
	struct kvfs_node *n = c->n;
	struct kvfs_store *loaded = s->loaded;
	struct pin_walk walk = {.to = loaded};
	struct kvfs_repl_entry e;
	struct kvfs_config cfg;
	uint64_t cfg_index;
	struct batch *b;

	if (!repl_snapshot_wanted(c->repl, index))
		return -EAGAIN;
	s->loaded = NULL;
	/* The kernel's and the open files' references (pins) move to the same inodes in the new
	 * contents. */
	store_foreach(n->store, hand_over_pin, &walk);
	store_exchange(n->store, loaded);
	/* The entries the snapshot stands for were never applied here one by one: the change
	 * feed has no record of them, and readers waiting for them learn it (-ERANGE). */
	changes_reset(n->changes, index + 1);
	if (index > n->snapshot_index) {
		n->snapshot_index = index;
		n->snapshot_epoch = epoch;
	}
	n->bytes_since_snapshot = 0;
	s->pinned = walk.inos;
	s->npinned = walk.n;
	s->pinned_known = !walk.lost;
	if (n->reset && n->reset->done)
		n->reset->done(n->cb_arg, loaded); /* the filesystem owns the old contents now */
	else
		node_store_close_later(n, loaded);
	s->pinned_known = false;
	s->pinned = NULL;
	free(walk.inos);
	/* The log goes too, unless it goes on from the snapshot's last entry; before the core
	 * hears of it, since a candidate may append its no-op at once. */
	if (repl_entry(c->repl, index, &e) < 0 || e.epoch != epoch) {
		b = node_pending_batch(n);
		if (!b) {
			node_go_fatal(n);
			return -EIO;
		}
		b->len = 0;
		b->first = b->last = 0;
		b->trunc = false;
		b->reset_next = index + 1;
	}
	if (ncl_store_config(n, &cfg, &cfg_index) < 0 ||
	    repl_snapshot_installed(c->repl, index, epoch, &cfg, cfg_index) < 0) {
		log_error("the replication core refused the snapshot at index %" PRIu64
		          "; stopping",
		          index);
		node_go_fatal(n);
		return -EIO;
	}
	nfwd_after_reset(c);
	log_info("installed the snapshot at index %" PRIu64 " from node %u (%" PRIu64 " keys)",
	         index, s->rfrom, store_inode_count(n->store) - 1);
	return 0;
}

/* Does the queued actions and reports them, until nothing more is queued. */
static void drain(struct node_snaps *s)
{
	struct node_cluster *c = s->c;

	if (s->draining)
		return; /* the outer drain goes on */
	s->draining = true;
	while (s->qlen && !c->closing && !c->n->fatal) {
		struct pend p = s->q[s->qhead];
		uint64_t total = 0;
		int rv;

		s->qhead = (s->qhead + 1) % s->qcap;
		s->qlen--;
		switch (p.kind) {
		case P_OPEN:
			rv = open_newest(s, p.peer, &total);
			snapxfer_opened(s->x, p.peer, rv, c->n->snapshot_index,
			                c->n->snapshot_epoch, total);
			break;
		case P_READ:
			rv = read_chunk(s, p.peer, p.a, (uint32_t)p.b);
			snapxfer_read_done(s->x, p.peer, rv,
			                   s->buf + KVFS_PEER_SNAPSHOT_CHUNK_HEADER_SIZE);
			break;
		case P_WRITTEN:
			snapxfer_written(s->x, p.rv);
			break;
		case P_INSTALL:
			snapxfer_installed(s->x, install(s, p.a, p.b));
			break;
		case P_SENT:
			log_info("node %u installed the snapshot at index %" PRIu64, p.peer, p.a);
			repl_snapshot_sent(c->repl, p.peer, p.a);
			break;
		}
	}
	if (c->closing || c->n->fatal)
		s->qlen = 0;
	s->draining = false;
}

/* ---- the node's calls ---- */

int nsnap_init(struct node_cluster *c)
{
	uint32_t size = KVFS_CONFIG_ID_MAX; /* by id: any member, now or later */
	struct kvfs_snapxfer_io io = {
	    .now_ms = io_now_ms,
	    .view = io_view,
	    .connected = io_connected,
	    .send_chunk = io_send_chunk,
	    .send_ack = io_send_ack,
	    .send_pull = io_send_pull,
	    .open = io_open,
	    .read = io_read,
	    .close = io_close,
	    .sent = io_sent,
	    .heard = io_heard,
	    .write = io_write,
	    .discard = io_discard,
	    .seal = io_seal,
	    .load = io_load,
	    .unload = io_unload,
	    .install = io_install,
	};
	struct node_snaps *s = calloc(1, sizeof(*s));

	if (!s)
		return -ENOMEM;
	c->snaps = s;
	s->c = c;
	s->rfd = -1;
	s->fd = malloc((size + 1) * sizeof(*s->fd));
	s->retain = calloc(size + 1, sizeof(*s->retain));
	s->qcap = 2 * ((size_t)size + 1) + 2;
	s->q = calloc(s->qcap, sizeof(*s->q));
	s->buf = malloc(KVFS_PEER_SNAPSHOT_CHUNK_HEADER_SIZE + KVFS_SNAPXFER_CHUNK);
	s->data_dir = c->n->data_dir;
	if (!s->fd || !s->retain || !s->q || !s->buf)
		return -ENOMEM;
	for (uint32_t id = 0; id <= size; id++)
		s->fd[id] = -1;
	io.arg = s;
	return snapxfer_init(&s->x, c->n->cfg.id, size, KVFS_SNAPXFER_CHUNK, KVFS_SNAPXFER_WINDOW,
	                     &io);
}

void nsnap_free(struct node_cluster *c)
{
	struct node_snaps *s = c->snaps;

	if (!s)
		return;
	assert(!s->working && !s->freeing && !s->writes);
	for (uint32_t id = 0; s->fd && id <= KVFS_CONFIG_ID_MAX; id++)
		io_close(s, id);
	close_recv(s);
	if (s->loaded)
		store_close(s->loaded);
	snapxfer_close(s->x);
	free(s->fd);
	free(s->retain);
	free(s->q);
	free(s->buf);
	free(s);
	c->snaps = NULL;
}

void nsnap_need(struct node_cluster *c, uint32_t to)
{
	if (to == 0 || to > KVFS_CONFIG_ID_MAX)
		return;
	log_info("node %u needs entries this node compacted: sending it a snapshot", to);
	snapxfer_need(c->snaps->x, to);
}

void nsnap_pull(struct node_cluster *c, uint32_t from)
{
	log_info("node %u compacted entries this node needs to lead: asking it for its snapshot",
	         from);
	snapxfer_pull(c->snaps->x, from);
}

bool nsnap_message(struct node_cluster *c, uint32_t from, uint8_t type, const uint8_t *p,
                   uint32_t len)
{
	struct node_snaps *s = c->snaps;
	struct kvfs_peer_snapshot_chunk chunk;
	struct kvfs_peer_snapshot_ack ack;
	struct kvfs_peer_snapshot_pull pull;

	if (type == KVFS_MSG_SNAPSHOT_CHUNK) {
		if (peer_msg_snapshot_chunk_decode(&chunk, p, len) == 0) {
			s->chunk = &chunk;
			s->chunk_from = from;
			snapxfer_on_chunk(s->x, from, &chunk);
			s->chunk = NULL;
		}
	} else if (type == KVFS_MSG_SNAPSHOT_ACK) {
		if (peer_msg_snapshot_ack_decode(&ack, p, len) == 0)
			snapxfer_on_ack(s->x, from, &ack);
	} else if (type == KVFS_MSG_SNAPSHOT_PULL) {
		if (peer_msg_snapshot_pull_decode(&pull, p, len) == 0)
			snapxfer_on_pull(s->x, from, pull.epoch);
	} else {
		return false;
	}
	drain(s);
	return true;
}

void nsnap_peer_down(struct node_cluster *c, uint32_t id)
{
	if (id <= KVFS_CONFIG_ID_MAX)
		c->snaps->retain[id] = 0; /* a peer that went away holds nothing back */
	snapxfer_peer_down(c->snaps->x, id);
	drain(c->snaps);
}

/*
 * A peer sent a snapshot at index S next needs the log from S + 1, and as it catches up, from
 * its match index on. Compacting past that while it catches up (a snapshot taken meanwhile, under
 * writers) would make it need a snapshot again, and again: under steady writes a large snapshot
 * could never be caught up with. So the log is kept for such a peer until it has everything
 * committed, for as long as it stays connected; a peer that goes away holds nothing back.
 */
static void update_retain(struct node_cluster *c)
{
	struct node_snaps *s = c->snaps;
	bool leader = repl_role(c->repl) == KVFS_REPL_LEADER;
	uint64_t commit = repl_commit_index(c->repl);

	for (uint32_t id = 1; id <= KVFS_CONFIG_ID_MAX; id++) {
		uint64_t m = leader ? repl_peer_match(c->repl, id) : 0;

		if (!s->retain[id])
			continue;
		if (!leader || m >= commit)
			s->retain[id] = 0;
		else if (m > s->retain[id])
			s->retain[id] = m;
	}
}

uint64_t nsnap_retain(const struct node_cluster *c)
{
	uint64_t r = 0;

	for (uint32_t id = 1; c->snaps && id <= KVFS_CONFIG_ID_MAX; id++)
		if (c->snaps->retain[id] && (!r || c->snaps->retain[id] < r))
			r = c->snaps->retain[id];
	return r;
}

void nsnap_tick(struct node_cluster *c)
{
	update_retain(c);
	snapxfer_tick(c->snaps->x);
	drain(c->snaps);
}

bool nsnap_busy(const struct node_cluster *c)
{
	return c->snaps && (c->snaps->working || c->snaps->freeing || c->snaps->writes);
}
