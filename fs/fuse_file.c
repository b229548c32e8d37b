/*
 * Open files: buffered writes committed on flush, fsync and close.
 *
 * A file opened for writing gets a write buffer holding its value (empty with O_TRUNC), shared by
 * every handle that has the file open for writing on this node, so writes through one descriptor
 * are seen by reads through another, as on a local disk. Writes change only the buffer; flush
 * (every close), fsync and the last release commit it as one PUT and answer once that PUT is
 * durable and applied. A write that would make the value larger than --max-value fails with EFBIG
 * and poisons the buffer: the next flush reports EFBIG, drops the buffer and puts back the value
 * the file had when it was opened, so the file is left as it was rather than cut short. (The
 * put-back matters because shells open "> f" with O_TRUNC and close a duplicate descriptor
 * before the command writes: that close commits the truncation.) One exception: when the refused
 * request may be the rest of one write() the kernel split (may_continue_split), that write()
 * returns the part we took as a short count, so the part stays and close commits it.
 *
 * A file opened with O_APPEND gathers its writes in the handle and commits them as one APPEND,
 * so appends from several writers (and later several nodes) never overwrite each other.
 *
 * Reads come from the write buffer if the file has one here, else from the store.
 */
#include "fs.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kvfs/logging.h"
#include "kvfs/node.h"
#include "kvfs/op.h"
#include "kvfs/store.h"
#include "kvfs/value.h"

static struct kvfs_fs *fs_of(fuse_req_t req)
{
	return fuse_req_userdata(req);
}

static struct handle *handle_of(const struct fuse_file_info *fi)
{
	return (struct handle *)(uintptr_t)fi->fh;
}

struct wbuf *fuse_file_wbuf(const struct kvfs_fs *fs, uint64_t ino)
{
	for (struct wbuf *wb = fs->wbufs; wb; wb = wb->next)
		if (wb->ino == ino)
			return wb;
	return NULL;
}

/* Makes the buffer hold exactly len bytes of src (the committed value): drops any change. */
static int wbuf_load(struct wbuf *wb, const struct kvfs_value *v)
{
	uint64_t len = value_size(v);

	if (len > wb->cap) {
		uint8_t *d = realloc(wb->data, len);

		if (!d)
			return -ENOMEM;
		wb->data = d;
		wb->cap = len;
	}
	if (len)
		memcpy(wb->data, v->data, len);
	wb->size = len;
	wb->dirty = false;
	wb->err = 0;
	return 0;
}

/* The write buffer of in, created from its committed value if there is none; NULL on ENOMEM. */
static struct wbuf *wbuf_get(struct kvfs_fs *fs, struct kvfs_inode *in)
{
	struct wbuf *wb = fuse_file_wbuf(fs, in->ino);

	if (wb) {
		wb->refs++;
		return wb;
	}
	wb = calloc(1, sizeof(*wb));
	if (!wb)
		return NULL;
	wb->ino = in->ino;
	wb->refs = 1;
	wb->gen = 1;
	wb->orig = value_ref(in->value);
	if (wbuf_load(wb, in->value) < 0) {
		value_unref(wb->orig);
		free(wb);
		return NULL;
	}
	wb->next = fs->wbufs;
	fs->wbufs = wb;
	return wb;
}

static void wbuf_put(struct kvfs_fs *fs, struct wbuf *wb)
{
	if (--wb->refs > 0)
		return;
	for (struct wbuf **p = &fs->wbufs; *p; p = &(*p)->next) {
		if (*p == wb) {
			*p = wb->next;
			break;
		}
	}
	value_unref(wb->orig);
	free(wb->data);
	free(wb);
}

void fuse_file_link_handle(struct kvfs_fs *fs, struct handle *h)
{
	h->prev = NULL;
	h->next = fs->handles;
	if (fs->handles)
		fs->handles->prev = h;
	fs->handles = h;
}

static void unlink_handle(struct kvfs_fs *fs, struct handle *h)
{
	if (h->prev)
		h->prev->next = h->next;
	else if (fs->handles == h)
		fs->handles = h->next;
	if (h->next)
		h->next->prev = h->prev;
}

struct handle *fuse_file_new_handle(struct kvfs_fs *fs, struct kvfs_inode *in, int flags)
{
	struct handle *h = calloc(1, sizeof(*h));

	if (!h)
		return NULL;
	h->kind = HANDLE_FILE;
	h->in = in;
	if ((flags & O_ACCMODE) != O_RDONLY) {
		if (flags & O_APPEND) {
			h->append = true;
		} else {
			h->wb = wbuf_get(fs, in);
			if (!h->wb) {
				free(h);
				return NULL;
			}
			if ((flags & O_TRUNC) && h->wb->size > 0) {
				h->wb->size = 0;
				h->wb->dirty = true;
				h->wrote_gen = h->wb->gen; /* the truncation is this handle's */
			}
		}
	}
	store_pin(fs->store, in, 1);
	fuse_file_link_handle(fs, h);
	return h;
}

/*
 * Flushes and the commits they wait for.
 *
 * A commit carries the bytes of one or more handles: an APPEND those of its own handle, a PUT of
 * a write buffer those of every handle that wrote into the buffer's generation it carries (and
 * the handle that proposed it). Each carrier counts the commit in `carrying` while it is in
 * flight. A flush (every close() of every descriptor: a dup, a child's inherited copy ...) or an
 * fsync first commits what the handle has pending, then waits until no commit carrying the
 * handle's bytes is in flight, and answers with the handle's sticky error: the outcome of those
 * commits. So no descriptor's close() returns 0 while bytes written through it are not committed,
 * and every descriptor that waited on a failed commit hears of the failure. The error stays with
 * the handle, for every later flush of every descriptor (a child closing its inherited copy first
 * must not take it away from the owner's close), until a later PUT of the write buffer commits
 * everything written through the handle; after a failed APPEND, until the file is closed.
 */
struct flush_wait {
	fuse_req_t req;
	struct fuse_call call;
	struct flush_wait *next;
};

struct commit {
	struct kvfs_fs *fs;
	uint64_t ino;
	struct wbuf *wb;  /* holds a reference while in flight; NULL for an APPEND */
	bool restore;     /* puts back the restore point after EFBIG: not a new restore point */
	bool attrs_shown; /* the write buffer's attrs_shown when the commit was made */
	bool written;     /* the buffer held writes (not only an O_TRUNC): a new restore point */
	uint64_t gen;     /* the buffer generation it carries */
	size_t ncarriers;
	struct handle *carriers[]; /* each counts this commit in its `carrying` */
};

/*
 * Answers a flush/fsync of ino with err, after the kernel has dropped its cached attributes (the
 * commit set mtime; a failed write left a size the store never had) and, with `data`, its cached
 * bytes (an append lands after whatever others appended first).
 */
static void reply_after_inval(struct kvfs_fs *fs, fuse_req_t req, uint64_t ino, bool data, int err)
{
	if (err == -ESHUTDOWN)
		err = -EIO;
	fuse_inval_inode(fs->inval, ino, data, req, err);
}

/*
 * Answers req, a flush or fsync of h with no commit of h's bytes in flight any more, with the
 * handle's sticky error. A plain successful PUT skips
 * the round trip through the invalidation thread unless the kernel was given attributes while the
 * buffer was dirty: write() itself makes the kernel drop the size and mtime it had cached.
 */
static void answer_flush(struct kvfs_fs *fs, struct handle *h, fuse_req_t req, int err)
{
	if (!h->in || (err == 0 && !h->inval_data && !h->inval_attr))
		fuse_reply_err(req, err == -ESHUTDOWN ? EIO : -err); /* !in: shutting down */
	else
		reply_after_inval(fs, req, h->in->ino, h->inval_data || err < 0, err);
}

static void handle_destroy(struct kvfs_fs *fs, struct handle *h);

/* The commits carrying h's bytes are all done: every waiting flush hears their outcome. */
static void handle_settled(struct kvfs_fs *fs, struct handle *h)
{
	struct flush_wait *w = h->waiters;
	int err = h->err;

	if (w) {
		h->waiters = NULL;
		while (w) {
			struct flush_wait *next = w->next;

			fuse_call_end(fs, &w->call);
			fuse_metrics_write(fs, &w->call, err);
			answer_flush(fs, h, w->req, err);
			free(w);
			w = next;
		}
		h->inval_data = h->inval_attr = false;
	}
	if (h->released)
		handle_destroy(fs, h);
}

/* Gives every handle that wrote into generation gen of wb (or a later one, built on it) the
 * error err, to report at its next flush: the commit that carried their bytes failed, or the
 * bytes were dropped. Handles whose bytes an earlier, successful commit carried hear nothing. */
static void fail_writers(struct kvfs_fs *fs, const struct wbuf *wb, uint64_t gen, int err)
{
	for (struct handle *h = fs->handles; h; h = h->next)
		if (h->wb == wb && h->wrote_gen >= gen && !h->err)
			h->err = err;
}

/* Makes in's current value the buffer's restore point (what EFBIG puts back). */
static void wbuf_set_orig(struct wbuf *wb, const struct kvfs_inode *in)
{
	value_unref(wb->orig);
	wb->orig = value_ref(in->value);
}

/* The store value of ino, if it is still linked; a commit to an unlinked file has nowhere to go. */
static struct kvfs_inode *linked(struct kvfs_fs *fs, uint64_t ino)
{
	struct kvfs_inode *in = store_get(fs->store, ino);

	return in && in->nlink > 0 ? in : NULL;
}

static void on_commit_done(void *arg, int err, uint64_t ino)
{
	struct commit *c = arg;
	struct kvfs_inode *in = linked(c->fs, c->ino);

	/* Written to a file that was removed meanwhile: as on a local disk, the bytes go with it.
	 */
	if (err == -ENOENT && !in)
		err = 0;
	if (err < 0) {
		/* Nothing of the commit happened (or, after EIO, its outcome is unknown). Everyone
		 * whose bytes were in it, or in a later generation built on it, hears so. */
		log_warn("commit of inode %llu failed: %s", (unsigned long long)c->ino,
		         strerror(-err));
		if (c->wb)
			fail_writers(c->fs, c->wb, c->gen, err);
	} else if (c->wb && c->written && !c->restore && in) {
		wbuf_set_orig(c->wb, in);
	}
	for (size_t i = 0; i < c->ncarriers; i++) {
		struct handle *h = c->carriers[i];

		if (err < 0 && !h->err)
			h->err = err;
		else if (err == 0 && c->wb && !c->restore)
			h->err = 0; /* the whole buffer, all it wrote, is committed now */
		h->inval_data |= err < 0 || !c->wb || c->restore;
		h->inval_attr |= c->attrs_shown;
		if (--h->carrying == 0)
			handle_settled(c->fs, h);
	}
	if (c->wb)
		wbuf_put(c->fs, c->wb);
	free(c);
}

/* Adds h to the carriers of c (c has room for every handle of fs). */
static void add_carrier(struct commit *c, struct handle *h)
{
	for (size_t i = 0; i < c->ncarriers; i++)
		if (c->carriers[i] == h)
			return;
	c->carriers[c->ncarriers++] = h;
	h->carrying++;
}

/*
 * Proposes op for handle h as a commit carrying h's bytes (and, for a write buffer's PUT, those
 * of every handle that wrote into the generation it carries). On failure every such handle is
 * given the error and nothing is in flight.
 */
static void propose_commit(struct kvfs_fs *fs, struct handle *h, struct kvfs_op *op,
                           uint64_t deadline, bool written, bool restore)
{
	size_t nh = 0;
	struct commit *c;
	int rv;

	for (struct handle *o = fs->handles; o; o = o->next)
		nh++;
	c = calloc(1, sizeof(*c) + (nh + 1) * sizeof(c->carriers[0]));
	if (!c) {
		rv = -ENOMEM;
		goto err;
	}
	*c = (struct commit){.fs = fs,
	                     .ino = h->in->ino,
	                     .wb = h->wb,
	                     .restore = restore,
	                     .written = written};
	rv = node_propose(fs->node, op, deadline, on_commit_done, c);
	if (rv < 0) {
		free(c);
		goto err;
	}
	add_carrier(c, h);
	if (h->wb) {
		for (struct handle *o = fs->handles; o; o = o->next)
			if (o->wb == h->wb && o->wrote_gen == h->wb->gen)
				add_carrier(c, o);
		c->attrs_shown = h->wb->attrs_shown;
		c->gen = h->wb->gen++;
		h->wb->refs++;
		h->wb->dirty = false;
		h->wb->written = false;
		h->wb->attrs_shown = false;
	} else {
		h->alen = 0;
	}
	return;

err:
	if (rv == -ESHUTDOWN)
		rv = -EIO;
	if (h->wb)
		fail_writers(fs, h->wb, h->wb->gen, rv);
	else
		h->alen = 0;
	if (!h->err)
		h->err = rv;
	h->inval_data = true;
}

/*
 * Commits what handle h has pending, if anything: its append buffer, or its file's dirty write
 * buffer, failing with EIO if not committed by deadline (0: the write timeout from now). Errors
 * (EFBIG from an earlier write, a failed proposal) become h's sticky error, which the next flush
 * reports. The buffers are copied by node_propose, so writes that come after this call go into
 * the next commit.
 */
static void commit_handle(struct kvfs_fs *fs, struct handle *h, uint64_t deadline)
{
	struct kvfs_op op = {.ino = h->in->ino};

	if (h->in->nlink == 0) {
		/* The file was removed (or replaced by a rename) while open: nothing to commit. */
		h->alen = 0;
		if (h->wb)
			h->wb->dirty = false;
	} else if (h->append) {
		if (h->aerr) {
			/* The kernel counted the dropped bytes into its idea of the size. */
			if (!h->err)
				h->err = h->aerr;
			h->aerr = 0;
			h->alen = 0;
			h->inval_data = true;
		} else if (h->alen > 0) {
			op.type = KVFS_OP_APPEND;
			op.data = h->abuf;
			op.data_len = (uint32_t)h->alen;
			propose_commit(fs, h, &op, deadline, true, false);
		}
	} else if (h->wb && h->wb->err) {
		/* A write failed with EFBIG: drop the buffer, every writer's bytes in it (they hear
		 * so), and put back the restore point if the store moved away from it (the
		 * truncation a shell's "> f" committed); the kernel must forget what it believed.
		 */
		struct kvfs_value *orig = h->wb->orig;
		int err = h->wb->err;

		fail_writers(fs, h->wb, h->wb->gen, err);
		h->err = err;
		h->inval_data = true;
		wbuf_load(h->wb, orig);
		if (h->in->value != orig) {
			op.type = KVFS_OP_PUT;
			op.data = orig ? orig->data : NULL;
			op.data_len = (uint32_t)value_size(orig);
			propose_commit(fs, h, &op, deadline, false, true);
		}
	} else if (h->wb && h->wb->dirty) {
		op.type = KVFS_OP_PUT;
		op.data = h->wb->data;
		op.data_len = (uint32_t)h->wb->size;
		propose_commit(fs, h, &op, deadline, h->wb->written, false);
	}
}

/* flush and fsync: commit what is pending, then answer once the commits carrying this handle's
 * bytes are done, with their outcome. */
static void flush_handle(struct kvfs_fs *fs, struct handle *h, fuse_req_t req)
{
	struct fuse_call call;
	struct flush_wait *w;
	int err;

	fuse_call_begin(fs, req, &call);
	commit_handle(fs, h, call.deadline);
	if (h->carrying == 0) {
		err = h->err;
		if (err < 0) /* a commit that failed at once, or an error kept for this flush */
			fuse_metrics_write(fs, &call, err);
		answer_flush(fs, h, req, err);
		h->inval_data = h->inval_attr = false;
		return;
	}
	w = malloc(sizeof(*w));
	if (!w) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	w->req = req;
	w->call = call;
	w->next = h->waiters;
	h->waiters = w;
}

void fuse_file_commit_pending(struct kvfs_fs *fs, uint64_t ino)
{
	const struct wbuf *wb = fuse_file_wbuf(fs, ino);

	if (!wb || !wb->dirty || wb->err)
		return;
	for (struct handle *h = fs->handles; h; h = h->next) {
		if (h->kind == HANDLE_FILE && h->wb == wb) {
			commit_handle(fs, h, 0);
			return;
		}
	}
}

void fuse_file_value_changed(struct kvfs_fs *fs, const struct kvfs_op *op)
{
	struct wbuf *wb = fuse_file_wbuf(fs, op->ino);
	struct kvfs_inode *in;

	/* Our own PUTs come from the buffer itself (on_commit_done takes care of them). */
	if (!wb || (op->type == KVFS_OP_PUT && op->origin == fs->node_id))
		return;
	in = linked(fs, op->ino);
	if (!in)
		return;
	/* Someone else's change (an append, a truncate, another node's put): a buffer with no
	 * unsaved writes takes the new value, so reads here show it and a later commit does not
	 * undo it; a buffer with unsaved writes keeps them (its commit wins, last writer wins).
	 * Either way the new value is what EFBIG would put back. */
	if (!wb->dirty && !wb->err)
		wbuf_load(wb, in->value);
	wbuf_set_orig(wb, in);
}

/* Frees what h holds; the struct itself once no commit carries its bytes any more. */
static void handle_destroy(struct kvfs_fs *fs, struct handle *h)
{
	if (h->carrying > 0)
		return;
	for (size_t i = 0; i < h->nents; i++)
		free(h->ents[i].name);
	free(h->ents);
	free(h->abuf);
	free(h->text);
	free(h);
}

void fuse_file_free_handle(struct kvfs_fs *fs, struct handle *h, bool commit)
{
	if (!h)
		return;
	if (commit && h->kind == HANDLE_FILE)
		commit_handle(fs, h, 0);
	unlink_handle(fs, h);
	if (h->wb)
		wbuf_put(fs, h->wb);
	h->wb = NULL;
	if (h->grave) {
		if (--h->grave->refs == 0 && h->grave->store) {
			store_close(h->grave->store);
			free(h->grave);
		}
	} else if (h->in) {
		store_unpin(fs->store, h->in, 1);
	}
	h->grave = NULL;
	h->in = NULL;
	value_unref(h->rval);
	h->rval = NULL;
	fuse_backup_free(h->backup);
	h->backup = NULL;
	fuse_changes_close(h->feed);
	h->feed = NULL;
	h->released = true;
	handle_destroy(fs, h);
}

/* Answers an open of in with a new handle. */
static void finish_open(fuse_req_t req, struct kvfs_fs *fs, struct kvfs_inode *in,
                        struct fuse_file_info *fi)
{
	struct handle *h = fuse_file_new_handle(fs, in, fi->flags);

	if (!h) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	fi->fh = (uint64_t)(uintptr_t)h;
	/* The page cache stays valid across opens: every change this node did not write through
	 * the kernel itself is invalidated when it is applied (fuse_ops_on_apply, and the replies
	 * to flush). A reader's close has nothing to commit, so it costs no FLUSH round trip.
	 * Linearizable reads drop it: an invalidation queued by a change just applied may not
	 * have reached the kernel yet. */
	fi->keep_cache = !fs->linearizable;
	if ((fi->flags & O_ACCMODE) == O_RDONLY) {
		/* ... unless this node holds record locks on it: closing any descriptor of the
		 * file drops the closing process's (fuse_lock_flush). */
		fi->noflush = !fuse_lock_held_here(fs, in->ino);
		/* A read must return one committed value whole. Through the page cache the kernel
		 * cuts or pads what we return to the size it cached, which another node's change
		 * (invalidated asynchronously) may have made stale: readers bypass it, and each of
		 * their sequential reads goes through one value (fuse_file_read). */
		fi->direct_io = 1;
	}
	if (fuse_reply_open(req, fi) != 0)
		fuse_file_free_handle(fs, h, false);
}

struct trunc_open {
	fuse_req_t req;
	struct kvfs_fs *fs;
	uint64_t ino;
	struct fuse_file_info fi;
	struct fuse_call call;
};

static void on_truncated(void *arg, int err, uint64_t ino)
{
	struct trunc_open *t = arg;
	struct kvfs_inode *in = store_get(t->fs->store, t->ino);

	fuse_call_end(t->fs, &t->call);
	fuse_metrics_write(t->fs, &t->call, err);
	if (err == 0 && !in)
		err = -ENOENT;
	if (err < 0)
		fuse_reply_err(t->req, err == -ESHUTDOWN ? EIO : -err);
	else
		finish_open(t->req, t->fs, in, &t->fi);
	free(t);
}

/*
 * O_TRUNC on a handle without a write buffer (O_APPEND, or O_RDONLY, which Linux truncates too):
 * the kernel leaves the truncation to us (atomic O_TRUNC), so it is committed before the open is
 * answered.
 */
static void truncate_then_open(fuse_req_t req, struct kvfs_fs *fs, struct kvfs_inode *in,
                               struct fuse_file_info *fi)
{
	struct kvfs_op op = {.type = KVFS_OP_SETATTR, .ino = in->ino, .flags = KVFS_SET_SIZE};
	struct trunc_open *t = malloc(sizeof(*t));
	int rv;

	if (!t) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	*t = (struct trunc_open){.req = req, .fs = fs, .ino = in->ino, .fi = *fi};
	fuse_file_commit_pending(fs, in->ino);
	fuse_call_begin(fs, req, &t->call);
	rv = node_propose(fs->node, &op, t->call.deadline, on_truncated, t);
	if (rv < 0) {
		free(t);
		fuse_reply_err(req, rv == -ESHUTDOWN ? EIO : -rv);
	}
}

static void do_open(fuse_req_t req, struct kvfs_fs *fs, fuse_ino_t ino, const char *name,
                    struct fuse_file_info *fi);

void fuse_file_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	/* --read linearizable: an open for reading first waits for the leader's confirmed commit
	 * index to be applied here. */
	if (fuse_status_is_virtual(ino) && ino != KVFS_BACKUP_INO)
		do_open(req, fs_of(req), ino, NULL, fi);
	else
		fuse_ops_gate(req, ino, NULL, fi, (fi->flags & O_ACCMODE) != O_WRONLY, do_open);
}

static void do_open(fuse_req_t req, struct kvfs_fs *fs, fuse_ino_t ino, const char *name,
                    struct fuse_file_info *fi)
{
	struct kvfs_inode *in;
	struct handle *h;

	if (fuse_status_is_virtual(ino)) {
		int rv = 0;

		if ((fi->flags & O_ACCMODE) != O_RDONLY || (fi->flags & O_TRUNC)) {
			fuse_reply_err(req, EACCES);
			return;
		}
		h = calloc(1, sizeof(*h));
		if (h && fuse_changes_is_feed(ino)) {
			rv = fuse_changes_open(fs, ino, &h->feed);
			if (rv < 0) {
				free(h);
				fuse_reply_err(req, -rv);
				return;
			}
			/* A stream: offsets mean nothing, so no seeking back over lines. */
			fi->nonseekable = 1;
		} else if (h && ino == KVFS_BACKUP_INO)
			fuse_backup_open(fs, &h->backup);
		else if (h)
			h->text = fuse_status_render(fs, ino, &h->text_len);
		if (!h || (!h->text && !h->backup && !h->feed)) {
			free(h);
			fuse_reply_err(req, ENOMEM);
			return;
		}
		h->kind = HANDLE_VIRTUAL;
		fuse_file_link_handle(fs, h);
		fi->fh = (uint64_t)(uintptr_t)h;
		fi->direct_io = 1; /* regenerated at every open; the page cache must not keep it */
		if (fuse_reply_open(req, fi) != 0)
			fuse_file_free_handle(fs, h, false);
		return;
	}
	in = store_get(fs->store, ino);
	if (!in) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	if (S_ISDIR(in->mode)) {
		fuse_reply_err(req, EISDIR);
		return;
	}
	if ((fi->flags & O_TRUNC) && value_size(in->value) > 0 &&
	    ((fi->flags & O_APPEND) || (fi->flags & O_ACCMODE) == O_RDONLY)) {
		truncate_then_open(req, fs, in, fi);
		return;
	}
	finish_open(req, fs, in, fi);
}

/*
 * The value a read at off goes through. A read from the start takes the committed value of now
 * and keeps it (a reference: values do not change while referenced), so the reads that follow
 * it through the file, which the kernel may also cut one large read() into, all come from that
 * one value: a reader never sees the start of one value glued to the end of another. A read at
 * the end of the kept value moves on to the current one only if that one extends it (an append:
 * `tail -f` follows a growing file); a replaced value starts at the next read from the start.
 */
static void pick_read_value(struct handle *h, off_t off)
{
	struct kvfs_value *now = h->in->value, *kept = h->rval;

	if (kept == now)
		return;
	if (kept && off > 0) {
		uint64_t klen = value_size(kept);

		if ((uint64_t)off < klen || value_size(now) < klen ||
		    (klen && memcmp(now->data, kept->data, klen) != 0))
			return;
	}
	value_unref(kept);
	h->rval = value_ref(now);
}

void fuse_file_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                    struct fuse_file_info *fi)
{
	struct kvfs_fs *fs = fs_of(req);
	struct handle *h = handle_of(fi);
	uint64_t start_us = fuse_metrics_now_us();
	const uint8_t *data;
	const struct wbuf *wb;
	size_t len;

	if (h->backup) {
		fuse_backup_read(req, h->backup, size, off);
		return;
	} else if (h->feed) {
		fuse_changes_read(req, fs, h->feed, size, fi);
		return;
	} else if (h->kind == HANDLE_VIRTUAL) {
		data = (const uint8_t *)h->text;
		len = h->text_len;
	} else if ((wb = fuse_file_wbuf(fs, h->in->ino)) != NULL) {
		data = wb->data;
		len = wb->size;
	} else {
		pick_read_value(h, off);
		data = h->rval ? h->rval->data : NULL;
		len = value_size(h->rval);
	}
	if (off < 0 || (uint64_t)off >= len)
		size = 0;
	else if (size > len - (size_t)off)
		size = len - (size_t)off;
	fuse_reply_buf(req, size ? (const char *)data + off : NULL, size);
	if (h->kind != HANDLE_VIRTUAL)
		fuse_metrics_read(fs, start_us);
}

/*
 * Whether a write request refused at off may be the rest of the write() whose earlier part was
 * the request [prev_off, prev_end) we took. Without writeback cache the kernel sends a buffered
 * write() as several requests, each after the reply to the one before: the first page alone
 * when the write starts inside a page that is not in the page cache, then pieces of at most
 * max_write bytes (max_pages pages). An error after the first piece reaches the caller only as a
 * short count: the write() reports the pieces we took as written. Such a piece starts inside a
 * page and ends on a page boundary, or is max_write bytes long. A write() of its own that looks
 * the same (rare) is treated the same: keeping bytes never loses an acknowledged one.
 */
static bool may_continue_split(const struct kvfs_fs *fs, uint64_t prev_off, uint64_t prev_end,
                               uint64_t off)
{
	uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE);

	if (prev_end <= prev_off || off != prev_end)
		return false;
	return prev_end - prev_off == fs->max_write ||
	       (prev_off % page != 0 && prev_end % page == 0);
}

/*
 * Appends to an O_APPEND handle's buffer (off: where the kernel believes the end is); EFBIG when
 * the value would pass the limit, taking nothing of it. Unless the request may continue a split
 * write() (may_continue_split), the handle's appends since its last commit are dropped too.
 */
static int append_write(struct kvfs_fs *fs, struct handle *h, const char *buf, size_t size,
                        off_t off)
{
	uint64_t base = value_size(h->in->value);

	if (h->aerr)
		return h->aerr;
	if (base + h->alen + size > fs->max_value) {
		if (!may_continue_split(fs, h->alast_off, h->alast_end, (uint64_t)off))
			h->aerr = -EFBIG;
		return -EFBIG;
	}
	if (h->alen + size > h->acap) {
		size_t cap = h->acap ? h->acap : 4096;
		uint8_t *d;

		while (cap < h->alen + size)
			cap *= 2;
		d = realloc(h->abuf, cap);
		if (!d)
			return -ENOMEM;
		h->abuf = d;
		h->acap = cap;
	}
	memcpy(h->abuf + h->alen, buf, size);
	h->alen += size;
	h->alast_off = (uint64_t)off;
	h->alast_end = (uint64_t)off + size;
	return 0;
}

/*
 * Writes into the shared write buffer at off, zero-filling any gap. Past the limit: EFBIG, taking
 * nothing of it, and unless the request may continue a split write() (may_continue_split), the
 * buffer is poisoned: the next flush drops it and puts back the file as it was.
 */
static int buffer_write(struct kvfs_fs *fs, struct wbuf *wb, const char *buf, size_t size,
                        off_t off)
{
	uint64_t end = (uint64_t)off + size;

	if (wb->err)
		return wb->err;
	if (end > fs->max_value) {
		if (!may_continue_split(fs, wb->last_off, wb->last_end, (uint64_t)off))
			wb->err = -EFBIG;
		return -EFBIG;
	}
	if (end > wb->cap) {
		size_t cap = wb->cap ? wb->cap : 4096;
		uint8_t *d;

		while (cap < end)
			cap *= 2;
		if (cap > fs->max_value)
			cap = fs->max_value;
		d = realloc(wb->data, cap);
		if (!d)
			return -ENOMEM;
		wb->data = d;
		wb->cap = cap;
	}
	if ((uint64_t)off > wb->size)
		memset(wb->data + wb->size, 0, (size_t)off - wb->size);
	memcpy(wb->data + off, buf, size);
	if (end > wb->size)
		wb->size = end;
	wb->dirty = true;
	wb->written = true;
	wb->attrs_shown = false; /* the kernel drops size and mtime after each write */
	wb->last_off = (uint64_t)off;
	wb->last_end = end;
	return 0;
}

void fuse_file_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
                     struct fuse_file_info *fi)
{
	struct kvfs_fs *fs = fs_of(req);
	struct handle *h = handle_of(fi);
	int rv;

	if (h->kind != HANDLE_FILE || (!h->append && !h->wb)) {
		fuse_reply_err(req, EBADF);
		return;
	}
	if (off < 0) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	rv = h->append ? append_write(fs, h, buf, size, off)
	               : buffer_write(fs, h->wb, buf, size, off);
	if (rv == 0 && h->wb)
		h->wrote_gen = h->wb->gen;
	if (rv < 0)
		fuse_reply_err(req, -rv);
	else
		fuse_reply_write(req, size);
}

void fuse_file_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct handle *h = handle_of(fi);

	if (h->kind != HANDLE_FILE) {
		fuse_reply_err(req, 0);
		return;
	}
	flush_handle(fs_of(req), h, req);
}

void fuse_file_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	fuse_file_flush(req, ino, fi);
}

void fuse_file_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	/* Normally flush committed everything already; a write that came after the last flush
	 * (a shared mmap written back late) is committed here, with no one to tell. */
	fuse_file_free_handle(fs_of(req), handle_of(fi), true);
	fuse_reply_err(req, 0);
}
