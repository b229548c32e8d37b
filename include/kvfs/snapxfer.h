/*
 * Snapshot transfer, pure (DESIGN §4 "Catch-up"): the bookkeeping of streaming a snapshot file
 * from one replica to another, without the file or the network. A leader sends its newest
 * snapshot to a follower that needs entries it compacted (repl.h's need_snapshot); a follower
 * sends its newest snapshot to the candidate it follows when that candidate pulls it
 * (SNAPSHOT_PULL; repl.h's need_snapshot_from on the candidate).
 *
 * The sender streams SNAPSHOT_CHUNKs, up to a window of them in flight per peer (read ahead one at
 * a time while earlier ones travel); each SNAPSHOT_ACK says how far the receiver has the file
 * (cumulative) and moves the window on; a receiver ahead of what was sent (a transfer resumed)
 * moves it there. The receiver writes chunks in order, one write at a time, and answers one that
 * does not follow on with what it has, so the sender sends again from there (as it does after
 * KVFS_SNAPXFER_RESEND_MS without the window moving on); a refusal, a dropped
 * connection or silence ends the transfer, which starts again from what the receiver
 * acknowledged. The receiver takes chunks only from its
 * snapshot source (repl_snapshot_source()) at its own epoch and refuses others with its epoch;
 * it writes them in order, then seals the file (durable under its snapshot name), loads it and,
 * once the core wants it, installs it; only then does it acknowledge the last byte, and only
 * then does the sender report the peer done (repl_snapshot_sent()). A transfer that goes quiet
 * starts again; a refused one starts again after a pause; a candidate that receives nothing
 * pulls again.
 *
 * Like repl.c it includes no libuv, FUSE or ZooKeeper header, reads no clock and calls nothing
 * but struct kvfs_snapxfer_io, which gives it the time, the core's facts (view) and the file and
 * network actions. Actions that take time are reported back by a completion call
 * (snapxfer_opened() ...), never from inside the io function that asked. At most one file
 * action is in flight per peer on the sending side and one on the receiving side.
 * node_snap_uv.c binds it to the node; tests/unit/replica/test_snapxfer.c runs it over a faulty
 * simulated channel.
 */
#ifndef KVFS_SNAPXFER_H
#define KVFS_SNAPXFER_H

#include <stdbool.h>
#include <stdint.h>

#include "kvfs/repl.h"

struct kvfs_snapxfer;
struct kvfs_peer_snapshot_chunk;
struct kvfs_peer_snapshot_ack;

#define KVFS_SNAPXFER_CHUNK      (1u << 20) /* bytes of file per chunk at most (the default) */
/* Chunks sent and not yet acknowledged, per peer, at most (the default). The sender's peer queue
 * holds them: window x chunk bytes per peer being sent a snapshot, well under the peer layer's
 * max_queue. */
#define KVFS_SNAPXFER_WINDOW     8u
#define KVFS_SNAPXFER_QUIET_MS   5000 /* a transfer without an answer this long starts again */
#define KVFS_SNAPXFER_RESEND_MS  1000 /* a window not acknowledged this long is sent again */
#define KVFS_SNAPXFER_REFUSED_MS 1000 /* after a refusal, wait this long before starting again */
#define KVFS_SNAPXFER_NOT_YET_MS 200  /* ... by a replica not yet at our epoch: this long */
#define KVFS_SNAPXFER_ALIVE_MS   1000 /* a receiver busy installing tells its sender this often */

/* What the module needs to know of the replication core, read afresh at every decision. */
struct kvfs_snapxfer_view {
	enum kvfs_repl_role role;
	uint64_t epoch;  /* repl_epoch() */
	uint32_t leader; /* repl_leader() */
	uint64_t commit; /* repl_commit_index() */
	uint64_t durable; /* repl_durable_commit(): only what it holds on disk may be said had */
	uint32_t source; /* repl_snapshot_source() */
	bool wanted;     /* repl_snapshot_wanted(commit + 1): snapshots past commit are taken now */
};

/*
 * The actions. Those with a completion call it later, from outside any snapxfer call; the
 * others take effect at once and call nothing back.
 */
struct kvfs_snapxfer_io {
	void *arg;
	uint64_t (*now_ms)(void *arg); /* a monotonic clock */
	void (*view)(void *arg, struct kvfs_snapxfer_view *v);
	bool (*connected)(void *arg, uint32_t id); /* whether a message to id can go now */
	/* Messages; each may be lost. m->data (chunk) lives until the call returns. */
	void (*send_chunk)(void *arg, uint32_t to, const struct kvfs_peer_snapshot_chunk *m);
	void (*send_ack)(void *arg, uint32_t to, const struct kvfs_peer_snapshot_ack *m);
	void (*send_pull)(void *arg, uint32_t to, uint64_t epoch);
	/* Sending. open: this replica's newest snapshot, for peer `to`, then snapxfer_opened().
	 * read: len bytes at offset of the file open for `to`, then snapxfer_read_done(). close:
	 * releases that file (never while an open or read for `to` is in flight). */
	void (*open)(void *arg, uint32_t to);
	void (*read)(void *arg, uint32_t to, uint64_t offset, uint32_t len);
	void (*close)(void *arg, uint32_t to);
	/* Peer `to` has installed the snapshot ending at index (repl_snapshot_sent()). */
	void (*sent)(void *arg, uint32_t to, uint64_t index);
	/* Peer `id` is alive and busy with a transfer (repl_peer_heard()). */
	void (*heard)(void *arg, uint32_t id);
	/* Receiving. write: data at offset of the file being received (offset 0 starts a new one,
	 * replacing any other), then snapxfer_written(). discard: removes the file being received
	 * (never while a write, seal or load is in flight). seal: makes the received file durable
	 * as the snapshot ending at index, then snapxfer_sealed(). load: loads that snapshot, then
	 * snapxfer_loaded(). unload: drops what load loaded. install: replaces this replica's state
	 * with what load loaded (repl_snapshot_installed()), then snapxfer_installed(). */
	void (*write)(void *arg, uint64_t offset, const uint8_t *data, uint32_t len);
	void (*discard)(void *arg);
	void (*seal)(void *arg, uint64_t index);
	void (*load)(void *arg, uint64_t index);
	void (*unload)(void *arg);
	void (*install)(void *arg, uint64_t index, uint64_t epoch);
};

/*
 * Creates the transfer state of replica `id` in a cluster of `size` (ids 1..size), sending at
 * most chunk bytes per SNAPSHOT_CHUNK (0: KVFS_SNAPXFER_CHUNK) and at most window chunks not yet
 * acknowledged per peer (0: KVFS_SNAPXFER_WINDOW). io is copied; io->arg must outlive it. 0 and
 * *out, or -EINVAL, -ENOMEM.
 */
int snapxfer_init(struct kvfs_snapxfer **out, uint32_t id, uint32_t size, uint32_t chunk,
                  uint32_t window, const struct kvfs_snapxfer_io *io);

/* Frees x. No io function is called: the caller releases files it still holds. */
void snapxfer_close(struct kvfs_snapxfer *x);

/* The core asks for a snapshot for peer `to` (need_snapshot): sent from the next tick on. */
void snapxfer_need(struct kvfs_snapxfer *x, uint32_t to);

/* This candidate must get peer `from`'s snapshot (need_snapshot_from): asks it (send_pull). */
void snapxfer_pull(struct kvfs_snapxfer *x, uint32_t from);

/* Messages from peer `from`, decoded. */
void snapxfer_on_chunk(struct kvfs_snapxfer *x, uint32_t from,
                       const struct kvfs_peer_snapshot_chunk *m);
void snapxfer_on_ack(struct kvfs_snapxfer *x, uint32_t from,
                     const struct kvfs_peer_snapshot_ack *m);
void snapxfer_on_pull(struct kvfs_snapxfer *x, uint32_t from, uint64_t epoch);

/* The connection to `id` dropped: a transfer to it starts again. */
void snapxfer_peer_down(struct kvfs_snapxfer *x, uint32_t id);

/* The caller's timer (every 100 ms, say): starts, times out and retries transfers. */
void snapxfer_tick(struct kvfs_snapxfer *x);

/*
 * Completions. opened: rv 0 with the snapshot's index, epoch and size, or a negative errno
 * (nothing to close then). read_done: rv 0 with data (len bytes as asked, valid during the call)
 * or a negative errno. written, sealed, loaded: 0 or a negative errno (a failed seal or load
 * leaves nothing to discard or unload; the caller decides whether it is fatal). installed: 0,
 * -EAGAIN (the core does not take it now: it stays loaded) or another negative errno.
 */
void snapxfer_opened(struct kvfs_snapxfer *x, uint32_t to, int rv, uint64_t index, uint64_t epoch,
                     uint64_t total);
void snapxfer_read_done(struct kvfs_snapxfer *x, uint32_t to, int rv, const uint8_t *data);
void snapxfer_written(struct kvfs_snapxfer *x, int rv);
void snapxfer_sealed(struct kvfs_snapxfer *x, int rv);
void snapxfer_loaded(struct kvfs_snapxfer *x, int rv);
void snapxfer_installed(struct kvfs_snapxfer *x, int rv);

/* Whether the receiving side has a seal, load or install in flight, or a loaded snapshot. */
bool snapxfer_installing(const struct kvfs_snapxfer *x);

#endif /* KVFS_SNAPXFER_H */
