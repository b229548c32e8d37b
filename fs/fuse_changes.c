/*
 * The change feed as files: /.changes (text lines) and /.changes.json (JSON lines), streams of
 * the committed changes this node applies, from the ring the node keeps (kvfs/changes.h).
 *
 * Opening /.changes starts at the next change to commit. A name of the form
 *   .changes[.json][@INDEX][?prefix=ESCAPED]
 * starts at log index INDEX (the records the ring still holds from there on, then the live
 * stream) and/or keeps only changes under the path prefix (URL-escaped, "%2F" for "/", as a
 * name cannot hold a "/"). Each lookup of such a name makes an inode of its own (numbers from
 * KVFS_FEED_INO_BASE up, never a real one), forgotten with the kernel's lookup count.
 *
 * A read returns the lines that are ready (at most its size; a line cut by a small read goes on
 * in the next one) or, when none is, waits until one is: the request is kept and answered when
 * the node applies a change (fuse_changes_wake, from fuse_ops_on_apply), without blocking the
 * loop: a slow reader only falls behind. O_NONBLOCK reads get EAGAIN instead; poll/select work
 * (FUSE poll handles, woken with fuse_lowlevel_notify_poll); a signal interrupts a waiting read
 * (EINTR). A reader whose next index is no longer in the ring (it fell behind by more than
 * --changes-history records, or a snapshot from the leader replaced the entries it waited for)
 * gets ERANGE, at open or at every read from then on: a stream never skips a change silently.
 * The files are not seekable (ESPIPE): `read` in a shell then reads byte by byte and never
 * seeks back over what the feed gave it.
 *
 * Everything here runs on the loop thread (fs.h): requests, interrupts and wake-ups alike. The
 * poll notification is a plain wake-up in the kernel (no inode lock), so it is sent from here.
 */
#include "fs.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>

#include "kvfs/changes.h"
#include "kvfs/node.h"
#include "kvfs/store.h"

/* A parameterised feed name, looked up: what its opens start from and keep. */
struct feed_spec {
	uint64_t ino;
	uint64_t nlookup; /* the kernel's lookup count: freed at 0 */
	bool json;
	bool has_from;
	uint64_t from;
	char *prefix; /* NULL: everything */
	size_t plen;
	struct feed_spec *next;
};

struct feed_read {
	fuse_req_t req;
	size_t size;
	struct fuse_feed *feed;
	struct feed_read *next;
};

/* One open feed (handle->feed). */
struct fuse_feed {
	struct fuse_changes *fc;
	uint64_t pos; /* the next index to look at */
	bool json;
	char *prefix;
	size_t plen;
	char *out; /* rendered, not yet read: out[off, len) */
	size_t off, len, cap;
	struct feed_read *reads; /* waiting reads, oldest first */
	struct fuse_pollhandle *ph;
	struct fuse_feed *prev, *next;
};

struct fuse_changes {
	struct feed_spec *specs;
	uint64_t next_ino;
	struct fuse_feed *feeds;
};

static struct fuse_changes *fc_of(struct kvfs_fs *fs)
{
	if (!fs->changes) {
		fs->changes = calloc(1, sizeof(*fs->changes));
		if (fs->changes)
			fs->changes->next_ino = KVFS_FEED_INO_BASE;
	}
	return fs->changes;
}

bool fuse_changes_is_feed(fuse_ino_t ino)
{
	return ino == KVFS_CHANGES_INO || ino == KVFS_CHANGES_JSON_INO ||
	       (uint64_t)ino >= KVFS_FEED_INO_BASE;
}

bool fuse_changes_reserved(fuse_ino_t parent, const char *name)
{
	return parent == KVFS_ROOT_INO && strncmp(name, ".changes", 8) == 0;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Parses name (".changes..." at the root) into *sp: 0, or -ENOENT for a name that is not one
 * of the feed's, -ENOMEM. */
static int parse_name(const char *name, struct feed_spec *sp)
{
	const char *p = name + 8;
	char *pre;
	size_t n = 0;

	memset(sp, 0, sizeof(*sp));
	if (strncmp(p, ".json", 5) == 0) {
		sp->json = true;
		p += 5;
	}
	if (*p == '@') {
		char *end;

		p++;
		if (*p < '0' || *p > '9')
			return -ENOENT;
		errno = 0;
		sp->from = strtoull(p, &end, 10);
		if (errno || end == p)
			return -ENOENT;
		sp->has_from = true;
		p = end;
	}
	if (*p == '\0')
		return 0;
	if (strncmp(p, "?prefix=", 8) != 0)
		return -ENOENT;
	p += 8;
	pre = malloc(strlen(p) + 2);
	if (!pre)
		return -ENOMEM;
	if (*p != '/' && strncmp(p, "%2F", 3) != 0 && strncmp(p, "%2f", 3) != 0)
		pre[n++] = '/';
	while (*p) {
		if (*p == '%') {
			int hi = hexval(p[1]), lo = hi < 0 ? -1 : hexval(p[2]);

			if (lo < 0 || (hi == 0 && lo == 0)) {
				free(pre);
				return -ENOENT;
			}
			pre[n++] = (char)(hi << 4 | lo);
			p += 3;
		} else {
			pre[n++] = *p++;
		}
	}
	pre[n] = '\0';
	sp->prefix = pre;
	sp->plen = n;
	return 0;
}

bool fuse_changes_lookup(fuse_req_t req, struct kvfs_fs *fs, const char *name)
{
	struct fuse_entry_param e = {0};
	struct fuse_changes *fc;
	struct feed_spec tmp, *sp;
	int rv;

	if (!fuse_changes_reserved(KVFS_ROOT_INO, name))
		return false;
	if (strcmp(name, ".changes") == 0 || strcmp(name, ".changes.json") == 0) {
		e.ino = name[8] ? KVFS_CHANGES_JSON_INO : KVFS_CHANGES_INO;
		fuse_status_virtual_attr(fs, e.ino, 0444, 0, &e.attr);
		fuse_reply_entry(req, &e);
		return true;
	}
	rv = parse_name(name, &tmp);
	fc = fc_of(fs);
	sp = rv == 0 && fc ? malloc(sizeof(*sp)) : NULL;
	if (!sp) {
		free(tmp.prefix);
		fuse_reply_err(req, rv < 0 ? -rv : ENOMEM);
		return true;
	}
	*sp = tmp;
	sp->ino = fc->next_ino++;
	sp->nlookup = 1;
	sp->next = fc->specs;
	fc->specs = sp;
	e.ino = sp->ino;
	fuse_status_virtual_attr(fs, e.ino, 0444, 0, &e.attr);
	if (fuse_reply_entry(req, &e) != 0)
		fuse_changes_forget(fs, e.ino, 1);
	return true;
}

bool fuse_changes_forget(struct kvfs_fs *fs, fuse_ino_t ino, uint64_t nlookup)
{
	struct fuse_changes *fc = fs->changes;

	if ((uint64_t)ino < KVFS_FEED_INO_BASE)
		return false;
	for (struct feed_spec **p = fc ? &fc->specs : NULL; p && *p; p = &(*p)->next) {
		struct feed_spec *sp = *p;

		if (sp->ino != ino)
			continue;
		sp->nlookup -= nlookup < sp->nlookup ? nlookup : sp->nlookup;
		if (!sp->nlookup) {
			*p = sp->next;
			free(sp->prefix);
			free(sp);
		}
		break;
	}
	return true;
}

static const struct feed_spec *spec_of(struct fuse_changes *fc, fuse_ino_t ino)
{
	for (struct feed_spec *sp = fc ? fc->specs : NULL; sp; sp = sp->next)
		if (sp->ino == ino)
			return sp;
	return NULL;
}

/* Renders lines into f->out until it holds `want` bytes or no record is ready: 0, -ERANGE
 * (the next index is gone and nothing is buffered), -ENOMEM. */
static int fill(struct kvfs_fs *fs, struct fuse_feed *f, size_t want)
{
	const struct kvfs_changes *ring = node_changes(fs->node);
	const struct kvfs_change *ch;

	if (f->off == f->len)
		f->off = f->len = 0;
	while (f->len - f->off < want) {
		size_t need;
		int rv = changes_find(ring, f->pos, &ch);

		if (rv == -ERANGE)
			return f->len > f->off ? 0 : -ERANGE;
		if (rv < 0)
			return 0;
		if (f->prefix && !changes_match(ch, f->prefix, f->plen)) {
			f->pos = ch->index + 1;
			continue;
		}
		need = f->json ? changes_fmt_json(ch, NULL, 0) : changes_fmt_text(ch, NULL, 0);
		if (f->len + need + 1 > f->cap) {
			size_t cap =
			    f->len + need + 1 > 2 * f->cap ? f->len + need + 1 : 2 * f->cap;
			char *out;

			if (f->off) { /* slide what is left to the front first */
				memmove(f->out, f->out + f->off, f->len - f->off);
				f->len -= f->off;
				f->off = 0;
				continue;
			}
			out = realloc(f->out, cap);
			if (!out)
				return f->len > f->off ? 0 : -ENOMEM;
			f->out = out;
			f->cap = cap;
		}
		if (f->json)
			changes_fmt_json(ch, f->out + f->len, need + 1);
		else
			changes_fmt_text(ch, f->out + f->len, need + 1);
		f->len += need;
		f->pos = ch->index + 1;
	}
	return 0;
}

/* Answers req with up to size ready bytes: true if it was answered (bytes or an error), false
 * if nothing is ready yet. */
static bool try_answer(struct kvfs_fs *fs, struct fuse_feed *f, fuse_req_t req, size_t size)
{
	int rv = fill(fs, f, size);
	size_t n;

	if (rv < 0) {
		fuse_reply_err(req, -rv);
		return true;
	}
	n = f->len - f->off;
	if (!n)
		return false;
	if (n > size)
		n = size;
	fuse_reply_buf(req, f->out + f->off, n);
	f->off += n;
	return true;
}

int fuse_changes_open(struct kvfs_fs *fs, fuse_ino_t ino, struct fuse_feed **out)
{
	struct fuse_changes *fc = fc_of(fs);
	const struct kvfs_changes *ring = node_changes(fs->node);
	const struct feed_spec *sp = spec_of(fc, ino);
	struct fuse_feed *f;

	if (!fc)
		return -ENOMEM;
	if (ino >= KVFS_FEED_INO_BASE && !sp)
		return -ENOENT;
	if (sp && sp->has_from && sp->from < changes_first(ring))
		return -ERANGE;
	f = calloc(1, sizeof(*f));
	if (!f)
		return -ENOMEM;
	f->fc = fc;
	f->json = ino == KVFS_CHANGES_JSON_INO || (sp && sp->json);
	f->pos = sp && sp->has_from ? sp->from : changes_next(ring);
	if (sp && sp->prefix) {
		f->prefix = strdup(sp->prefix);
		if (!f->prefix) {
			free(f);
			return -ENOMEM;
		}
		f->plen = sp->plen;
	}
	f->next = fc->feeds;
	if (fc->feeds)
		fc->feeds->prev = f;
	fc->feeds = f;
	*out = f;
	return 0;
}

static void unqueue(struct fuse_feed *f, struct feed_read *r)
{
	for (struct feed_read **p = &f->reads; *p; p = &(*p)->next) {
		if (*p == r) {
			*p = r->next;
			return;
		}
	}
}

/* A signal came for a waiting read (the loop thread, from the INTERRUPT request). Registered
 * only after checking the request was not interrupted already, so this never runs inside
 * fuse_req_interrupt_func, where answering would free the request under libfuse's feet. */
static void on_interrupt(fuse_req_t req, void *arg)
{
	struct feed_read *r = arg;

	unqueue(r->feed, r);
	fuse_reply_err(req, EINTR);
	free(r);
}

void fuse_changes_read(fuse_req_t req, struct kvfs_fs *fs, struct fuse_feed *f, size_t size,
                       const struct fuse_file_info *fi)
{
	struct feed_read *r, **tail;

	if (!f->reads && try_answer(fs, f, req, size))
		return;
	if (fi->flags & O_NONBLOCK) {
		fuse_reply_err(req, EAGAIN);
		return;
	}
	if (fuse_req_interrupted(req)) {
		fuse_reply_err(req, EINTR);
		return;
	}
	r = calloc(1, sizeof(*r));
	if (!r) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	*r = (struct feed_read){.req = req, .size = size, .feed = f};
	for (tail = &f->reads; *tail; tail = &(*tail)->next)
		;
	*tail = r;
	fuse_req_interrupt_func(req, on_interrupt, r);
}

/* Whether a read would be answered at once (bytes or an error). */
static bool ready(struct kvfs_fs *fs, struct fuse_feed *f)
{
	return fill(fs, f, 1) < 0 || f->len > f->off;
}

void fuse_changes_poll(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi,
                       struct fuse_pollhandle *ph)
{
	struct kvfs_fs *fs = fuse_req_userdata(req);
	struct handle *h = (struct handle *)(uintptr_t)fi->fh;
	struct fuse_feed *f = h ? h->feed : NULL;

	if (!f) {
		/* Everything else is always ready, as without a poll method. */
		if (ph)
			fuse_pollhandle_destroy(ph);
		fuse_reply_poll(req, POLLIN | POLLOUT | POLLRDNORM | POLLWRNORM);
		return;
	}
	if (ph) {
		if (f->ph)
			fuse_pollhandle_destroy(f->ph);
		f->ph = ph;
	}
	fuse_reply_poll(req, ready(fs, f) ? POLLIN | POLLRDNORM : 0);
}

void fuse_changes_wake(struct kvfs_fs *fs)
{
	struct fuse_changes *fc = fs->changes;

	for (struct fuse_feed *f = fc ? fc->feeds : NULL; f; f = f->next) {
		while (f->reads) {
			struct feed_read *r = f->reads;

			if (!try_answer(fs, f, r->req, r->size))
				break;
			f->reads = r->next;
			free(r);
		}
		if (f->ph && ready(fs, f)) {
			fuse_lowlevel_notify_poll(f->ph);
			fuse_pollhandle_destroy(f->ph);
			f->ph = NULL;
		}
	}
}

void fuse_changes_close(struct fuse_feed *f)
{
	struct fuse_changes *fc;

	if (!f)
		return;
	fc = f->fc;
	/* Only at shutdown: the kernel releases a file once no read is in it. */
	while (f->reads) {
		struct feed_read *r = f->reads;

		f->reads = r->next;
		fuse_reply_err(r->req, EIO);
		free(r);
	}
	if (f->ph)
		fuse_pollhandle_destroy(f->ph);
	if (f->prev)
		f->prev->next = f->next;
	else
		fc->feeds = f->next;
	if (f->next)
		f->next->prev = f->prev;
	free(f->prefix);
	free(f->out);
	free(f);
}

void fuse_changes_shutdown(struct kvfs_fs *fs)
{
	struct fuse_changes *fc = fs->changes;

	if (!fc)
		return;
	while (fc->feeds)
		fuse_changes_close(fc->feeds);
	while (fc->specs) {
		struct feed_spec *sp = fc->specs;

		fc->specs = sp->next;
		free(sp->prefix);
		free(sp);
	}
	free(fc);
	fs->changes = NULL;
}
