/*
 * Kernel cache invalidation, from a thread of its own.
 *
 * fuse_lowlevel_notify_inval_inode/_inval_entry/_delete write to /dev/fuse and the kernel may make
 * them wait for a lock held by a request in flight (a read holding a page, a mkdir holding its
 * directory). Only the loop thread answers requests, so it must never make these calls itself:
 * it queues them here, and this thread, which answers no request, makes them in order. Delete
 * notices for names another node removed go to a second such thread (see struct kvfs_inval).
 *
 * An invalidation may carry a reply: a close() whose commit changed what the kernel believes
 * (the commit time, a failed O_TRUNC write) is answered only after the kernel has forgotten
 * it, so a `stat` or `cat` right after close() never sees the old belief.
 */
#include "fs.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kvfs/logging.h"
#include "kvfs/op.h"

#define ENTRY_STALE_MS 2000 /* above the entry timeout (fuse_ops.c, main.c: 1 s) */

enum inval_kind { INVAL_INODE, INVAL_ENTRY };

struct inval_item {
	enum inval_kind kind;
	bool data;
	uint64_t ino;   /* INVAL_INODE: the inode; INVAL_ENTRY: the directory */
	uint64_t child; /* INVAL_ENTRY: the removed inode, or 0 */
	fuse_req_t req; /* answered with -err once the invalidation is done; may be NULL */
	int err;
	uint64_t queued_ms; /* CLOCK_MONOTONIC */
	size_t len;
	struct inval_item *next;
	char name[];
};

struct kvfs_inval {
	struct fuse_session *se;
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct inval_item *head, *tail; /* protected by lock */
	bool stop;                      /* protected by lock */
	int holds;                      /* protected by lock: see fuse_inval_hold() */
	bool stopped;                   /* the thread is gone: replies are sent at once */
	/* Delete notices (fuse_inval_entry with a child) go to a second thread of their own: the
	 * kernel makes one wait for the removed inode's lock, which a local fsync holds until its
	 * reply, and that reply comes through this thread's queue. NULL in that second one. */
	struct kvfs_inval *del;
};

static void run_item(struct kvfs_inval *iv, const struct inval_item *it)
{
	int rv;

	if (it->kind == INVAL_INODE) {
		rv = fuse_lowlevel_notify_inval_inode(iv->se, it->ino, it->data ? 0 : -1, 0);
	} else if (it->child) {
		/* The inode lost its last name: a delete notice, which also gives inotify watchers
		 * of the directory IN_DELETE (the kernel's d_delete_notify) when the name was in
		 * the dentry cache. Not cached (ENOENT) or no longer that inode: a plain
		 * invalidation does all there is to do. */
		rv = fuse_lowlevel_notify_delete(iv->se, it->ino, it->child, it->name, it->len);
		if (rv < 0)
			rv = fuse_lowlevel_notify_inval_entry(iv->se, it->ino, it->name, it->len);
	} else {
		rv = fuse_lowlevel_notify_inval_entry(iv->se, it->ino, it->name, it->len);
	}
	/* ENOENT: the kernel did not have it cached, which is fine. */
	if (rv < 0 && rv != -ENOENT && rv != -ENOTDIR && rv != -EBADF && rv != -ENODEV)
		log_debug("cache invalidation of inode %llu: %s", (unsigned long long)it->ino,
		          strerror(-rv));
}

static uint64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Unlinks it, which follows prev (NULL: it is the head), from the queue. */
static void take(struct kvfs_inval *iv, struct inval_item *prev, struct inval_item *it)
{
	if (prev)
		prev->next = it->next;
	else
		iv->head = it->next;
	if (iv->tail == it)
		iv->tail = prev;
}

/*
 * The next item to run, taken from the queue; NULL if none may run now. An entry invalidation
 * locks the directory in the kernel, which a local create or unlink in flight may hold until we
 * answer it: while any is in flight (holds), entry invalidations wait. Were we to block in the
 * kernel behind them instead, a kill -9 of this process could never complete (this thread would
 * never leave the kernel to let the mount go). Inode invalidations (and the replies they carry)
 * take no directory lock and go past them. An entry invalidation that waited longer than the
 * entry timeout is dropped: the kernel has already stopped trusting that entry.
 */
static struct inval_item *next_item(struct kvfs_inval *iv)
{
	struct inval_item *prev = NULL, *it;

	if (iv->holds == 0 || iv->stop) {
		it = iv->head;
		if (it)
			take(iv, NULL, it);
		return it;
	}
	for (it = iv->head; it; prev = it, it = it->next) {
		if (it->kind == INVAL_INODE || mono_ms() - it->queued_ms > ENTRY_STALE_MS) {
			take(iv, prev, it);
			if (it->kind == INVAL_ENTRY) {
				free(it);
				return next_item(iv);
			}
			return it;
		}
	}
	return NULL;
}

static void *inval_main(void *arg)
{
	struct kvfs_inval *iv = arg;

	pthread_mutex_lock(&iv->lock);
	for (;;) {
		struct inval_item *it;
		bool stopping;

		while (!iv->head && !iv->stop)
			pthread_cond_wait(&iv->cond, &iv->lock);
		if (!iv->head)
			break; /* stop, and nothing left */
		it = next_item(iv);
		if (!it) {
			struct timespec ts;

			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_nsec += 200 * 1000000L;
			if (ts.tv_nsec >= 1000000000L) {
				ts.tv_sec++;
				ts.tv_nsec -= 1000000000L;
			}
			pthread_cond_timedwait(&iv->cond, &iv->lock, &ts);
			continue;
		}
		stopping = iv->stop;
		pthread_mutex_unlock(&iv->lock);
		if (!stopping)
			run_item(iv, it);
		if (it->req)
			fuse_reply_err(it->req, -it->err);
		free(it);
		pthread_mutex_lock(&iv->lock);
	}
	pthread_mutex_unlock(&iv->lock);
	return NULL;
}

static int start_one(struct kvfs_inval **out, struct fuse_session *se)
{
	struct kvfs_inval *iv = calloc(1, sizeof(*iv));
	int rv;

	if (!iv)
		return -ENOMEM;
	iv->se = se;
	pthread_mutex_init(&iv->lock, NULL);
	pthread_cond_init(&iv->cond, NULL);
	rv = pthread_create(&iv->thread, NULL, inval_main, iv);
	if (rv != 0) {
		pthread_cond_destroy(&iv->cond);
		pthread_mutex_destroy(&iv->lock);
		free(iv);
		return -rv;
	}
	*out = iv;
	return 0;
}

static void push(struct kvfs_inval *iv, struct inval_item *it)
{
	if (iv->stopped) {
		/* Stopping, the mount is going: only the reply still matters. */
		if (it->req)
			fuse_reply_err(it->req, -it->err);
		free(it);
		return;
	}
	pthread_mutex_lock(&iv->lock);
	if (iv->tail)
		iv->tail->next = it;
	else
		iv->head = it;
	iv->tail = it;
	pthread_cond_signal(&iv->cond);
	pthread_mutex_unlock(&iv->lock);
}

int fuse_inval_start(struct kvfs_inval **out, struct fuse_session *se)
{
	struct kvfs_inval *iv, *del;
	int rv = start_one(&iv, se);

	if (rv < 0)
		return rv;
	rv = start_one(&del, se);
	if (rv < 0) {
		fuse_inval_free(iv);
		return rv;
	}
	iv->del = del;
	*out = iv;
	return 0;
}

void fuse_inval_inode(struct kvfs_inval *iv, uint64_t ino, bool data, fuse_req_t req, int err)
{
	struct inval_item *it = calloc(1, sizeof(*it));

	if (!it) {
		/* The attribute timeout bounds how long the cache can be wrong. */
		if (req)
			fuse_reply_err(req, -err);
		return;
	}
	it->kind = INVAL_INODE;
	it->ino = ino;
	it->data = data;
	it->req = req;
	it->err = err;
	push(iv, it);
}

void fuse_inval_entry(struct kvfs_inval *iv, uint64_t parent, const char *name, size_t len,
                      uint64_t child)
{
	struct inval_item *it;

	if (len > KVFS_NAME_MAX)
		return;
	it = calloc(1, sizeof(*it) + len + 1);
	if (!it)
		return;
	it->kind = INVAL_ENTRY;
	it->queued_ms = mono_ms();
	it->ino = parent;
	it->child = child;
	it->len = len;
	memcpy(it->name, name, len);
	push(child && iv->del ? iv->del : iv, it);
}

void fuse_inval_hold(struct kvfs_inval *iv, int delta)
{
	pthread_mutex_lock(&iv->lock);
	iv->holds += delta;
	if (iv->holds == 0)
		pthread_cond_broadcast(&iv->cond);
	pthread_mutex_unlock(&iv->lock);
	if (iv->del)
		fuse_inval_hold(iv->del, delta);
}

void fuse_inval_stop(struct kvfs_inval *iv)
{
	pthread_mutex_lock(&iv->lock);
	iv->stop = true;
	pthread_cond_signal(&iv->cond);
	pthread_mutex_unlock(&iv->lock);
	pthread_join(iv->thread, NULL);
	iv->stopped = true;
	if (iv->del)
		fuse_inval_stop(iv->del);
}

void fuse_inval_free(struct kvfs_inval *iv)
{
	if (!iv)
		return;
	if (!iv->stopped)
		fuse_inval_stop(iv);
	fuse_inval_free(iv->del);
	pthread_cond_destroy(&iv->cond);
	pthread_mutex_destroy(&iv->lock);
	free(iv);
}
