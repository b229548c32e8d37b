/*
 * Snapshots (see snapshot.h for the file format): capturing the store, writing it durably, and
 * listing and pruning the snapshot files of a directory. Loading one back is in snapshot_load.c.
 *
 * A capture is a flat array of name records in store_foreach() order, one buffer holding all
 * the names, references on the values and a copy of the session table: O(names) work on the
 * loop thread and no copy of file contents. Writing streams it through a 64 KiB buffer into
 * snap-N.tmp, computing the CRC32C on the way, then fsync, rename to snap-N.snap and fsync of the
 * directory; it always writes the current format, KVFSSNP4. An inode's extended attributes are
 * captured as a reference on its (immutable) attribute set.
 */
#include "kvfs/snapshot.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kvfs/config.h"
#include "kvfs/crc32c.h"
#include "kvfs/disk.h"
#include "kvfs/store.h"
#include "kvfs/store_xattr.h"
#include "kvfs/value.h"
#include "snapshot_internal.h"

#define SNAP_WBUF_SIZE   (64u << 10)
#define SNAP_NAME_DIGITS 20

/* One name; an inode's attributes and value with its first name only (kind SNAP_KIND_INODE). */
struct snap_rec {
	uint64_t ino, parent_ino;
	uint8_t kind;
	uint32_t mode, uid, gid, rdev;
	int64_t atime_ns, mtime_ns, ctime_ns;
	size_t name_off; /* into kvfs_snapshot.names */
	uint32_t name_len;
	struct kvfs_value *value; /* a reference, or NULL */
	struct kvfs_xattrs *xattrs; /* a reference, or NULL */
};

struct kvfs_snapshot {
	uint64_t index, epoch;
	struct snap_rec *recs;
	size_t nrecs;
	char *names;
	size_t names_len;
	struct kvfs_session *sessions;
	size_t nsessions;
	struct kvfs_config
	    cfg; /* the store's configuration (cfg_index 0: none, the bootstrap one) */
	uint64_t cfg_index;
	uint64_t nxattr_inodes; /* records with attributes */
	struct kvfs_lock *locks; /* a copy of the lock table */
	size_t nlocks;
};

/* See snapshot_internal.h. */
void snapshot_set_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (!err || !errlen)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/* See snapshot_internal.h. */
const char *snapshot_errstr(int rv, char *buf, size_t len)
{
	return strerror_r(-rv, buf, len);
}

/* First pass of a capture: how many names and name bytes. */
static int count_name(void *arg, const struct kvfs_dentry *d, bool first)
{
	struct kvfs_snapshot *snap = arg;

	snap->nrecs++;
	snap->names_len += d->name_len;
	return 0;
}

/* Second pass: copies the name and, at an inode's first name, its metadata and a reference on
 * its value. */
static int copy_name(void *arg, const struct kvfs_dentry *d, bool first)
{
	struct kvfs_snapshot *snap = arg;
	struct snap_rec *r = &snap->recs[snap->nrecs++];
	const struct kvfs_inode *in = d->in;

	r->ino = in->ino;
	r->parent_ino = d->dir ? d->dir->ino : 0;
	r->name_off = snap->names_len;
	r->name_len = d->name_len;
	memcpy(snap->names + snap->names_len, d->name, d->name_len);
	snap->names_len += d->name_len;
	r->kind = first ? SNAP_KIND_INODE : SNAP_KIND_LINK;
	if (!first)
		return 0;
	r->mode = in->mode;
	r->uid = in->uid;
	r->gid = in->gid;
	r->rdev = in->rdev;
	r->atime_ns = in->atime_ns;
	r->mtime_ns = in->mtime_ns;
	r->ctime_ns = in->ctime_ns;
	r->value = value_ref(in->value);
	r->xattrs = store_xattr_ref(in->xattrs);
	if (r->xattrs)
		snap->nxattr_inodes++;
	return 0;
}

static int count_session(void *arg, const struct kvfs_session *sess)
{
	struct kvfs_snapshot *snap = arg;

	snap->nsessions++;
	return 0;
}

static int copy_session(void *arg, const struct kvfs_session *sess)
{
	struct kvfs_snapshot *snap = arg;

	snap->sessions[snap->nsessions++] = *sess;
	return 0;
}

int snapshot_capture(const struct kvfs_store *s, struct kvfs_snapshot **out)
{
	struct kvfs_snapshot *snap = calloc(1, sizeof(*snap));
	size_t nrecs, names_len, nsessions;

	if (!snap)
		return -ENOMEM;
	snap->index = store_applied_index(s);
	snap->epoch = store_applied_epoch(s);
	{
		const struct kvfs_config *cfg = store_config(s, &snap->cfg_index);

		if (cfg)
			snap->cfg = *cfg;
	}
	store_foreach(s, count_name, snap);
	store_session_foreach(s, count_session, snap);
	nrecs = snap->nrecs;
	names_len = snap->names_len;
	nsessions = snap->nsessions;
	snap->recs = calloc(nrecs, sizeof(*snap->recs));
	snap->names = malloc(names_len + 1);
	snap->sessions = calloc(nsessions + 1, sizeof(*snap->sessions));
	snap->nlocks = store_lock_count(s);
	snap->locks = calloc(snap->nlocks + 1, sizeof(*snap->locks));
	if (!snap->recs || !snap->names || !snap->sessions || !snap->locks)
		goto err_free_arrays;
	for (size_t i = 0; i < snap->nlocks; i++)
		snap->locks[i] = *store_lock_at(s, i);
	snap->nrecs = snap->names_len = snap->nsessions = 0;
	store_foreach(s, copy_name, snap);
	store_session_foreach(s, copy_session, snap);
	*out = snap;
	return 0;

err_free_arrays:
	free(snap->locks);
	free(snap->recs);
	free(snap->names);
	free(snap->sessions);
	free(snap);
	return -ENOMEM;
}

uint64_t snapshot_index(const struct kvfs_snapshot *snap)
{
	return snap->index;
}

uint64_t snapshot_epoch(const struct kvfs_snapshot *snap)
{
	return snap->epoch;
}

void snapshot_free(struct kvfs_snapshot *snap)
{
	if (!snap)
		return;
	for (size_t i = 0; i < snap->nrecs; i++) {
		value_unref(snap->recs[i].value);
		store_xattr_unref(snap->recs[i].xattrs);
	}
	free(snap->recs);
	free(snap->names);
	free(snap->sessions);
	free(snap->locks);
	free(snap);
}

/* Writes all n bytes, retrying short writes and EINTR. 0 or a negative errno. */
static int write_all(int fd, const void *p, size_t n)
{
	const uint8_t *b = p;

	while (n > 0) {
		ssize_t w = write(fd, b, n);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		b += w;
		n -= (size_t)w;
	}
	return 0;
}

/* A buffered writer that checksums what passes through it and keeps the first error. */
struct wbuf {
	int fd;
	int err;
	uint32_t crc;
	size_t len;
	uint8_t buf[SNAP_WBUF_SIZE];
};

static void wb_flush(struct wbuf *w)
{
	if (!w->err && w->len)
		w->err = write_all(w->fd, w->buf, w->len);
	w->len = 0;
}

static void wb_put(struct wbuf *w, const void *p, size_t n)
{
	if (!n)
		return;
	w->crc = crc32c(w->crc, p, n);
	if (w->len + n > sizeof(w->buf))
		wb_flush(w);
	if (n >= sizeof(w->buf)) {
		if (!w->err)
			w->err = write_all(w->fd, p, n);
		return;
	}
	memcpy(w->buf + w->len, p, n);
	w->len += n;
}

/* The low `bytes` bytes of v, little-endian. */
static void wb_le(struct wbuf *w, uint64_t v, unsigned bytes)
{
	uint8_t b[8];

	for (unsigned i = 0; i < bytes; i++)
		b[i] = (uint8_t)(v >> (8 * i));
	wb_put(w, b, bytes);
}

/* KVFSSNP3's configuration: u64 index, u32 len and config.h's body (no request name), or
 * index 0 and len 0 when the store applied no CONFIG entry (the bootstrap one). */
static void snapshot_write_config(const struct kvfs_snapshot *snap, struct wbuf *w)
{
	const struct kvfs_config *c = &snap->cfg;

	wb_le(w, snap->cfg_index, 8);
	if (!snap->cfg_index) {
		wb_le(w, 0, 4);
		return;
	}
	wb_le(w, 1 + 4 + 5 * (uint64_t)c->n + 4, 4);
	wb_le(w, KVFS_CONFIG_VERSION, 1);
	wb_le(w, c->n, 4);
	for (uint32_t i = 0; i < c->n; i++) {
		wb_le(w, c->m[i].id, 4);
		wb_le(w, c->m[i].role, 1);
	}
	wb_le(w, 0, 4); /* no request name */
}

/*
 * KVFSSNP4's extended attributes: u32 count of inodes that have any, then for each (in record
 * order) u64 ino  u32 n  n x (u32 name_len  name  u32 value_len  value), names ascending; and
 * then the lock section (snapshot.h), from the copy of the lock table.
 */
static void snapshot_write_xattrs(const struct kvfs_snapshot *snap, struct wbuf *w)
{
	wb_le(w, snap->nxattr_inodes, 4);
	for (size_t i = 0; i < snap->nrecs; i++) {
		const struct kvfs_xattrs *x = snap->recs[i].xattrs;

		if (!x)
			continue;
		wb_le(w, snap->recs[i].ino, 8);
		wb_le(w, x->n, 4);
		for (uint32_t j = 0; j < x->n; j++) {
			uint64_t vlen = value_size(x->a[j].value);

			wb_le(w, x->a[j].name->size, 4);
			wb_put(w, x->a[j].name->data, (size_t)x->a[j].name->size);
			wb_le(w, vlen, 4);
			if (vlen)
				wb_put(w, x->a[j].value->data, (size_t)vlen);
		}
	}
}

/* Streams the whole file, checksum last, to w->fd. 0 or a negative errno. */
static int snapshot_write_body(const struct kvfs_snapshot *snap, struct wbuf *w)
{
	uint32_t crc;

	wb_put(w, SNAP_MAGIC, 8);
	wb_le(w, snap->index, 8);
	wb_le(w, snap->epoch, 8);
	wb_le(w, snap->nrecs, 8);
	wb_le(w, snap->nsessions, 8);
	for (size_t i = 0; i < snap->nrecs; i++) {
		const struct snap_rec *r = &snap->recs[i];
		uint64_t vlen = value_size(r->value);

		wb_le(w, r->parent_ino, 8);
		wb_le(w, r->name_len, 4);
		wb_put(w, snap->names + r->name_off, r->name_len);
		wb_le(w, r->ino, 8);
		wb_le(w, r->kind, 1);
		if (r->kind != SNAP_KIND_INODE)
			continue;
		wb_le(w, r->mode, 4);
		wb_le(w, r->uid, 4);
		wb_le(w, r->gid, 4);
		wb_le(w, r->rdev, 4);
		wb_le(w, (uint64_t)r->atime_ns, 8);
		wb_le(w, (uint64_t)r->mtime_ns, 8);
		wb_le(w, (uint64_t)r->ctime_ns, 8);
		wb_le(w, vlen, 8);
		if (vlen)
			wb_put(w, r->value->data, (size_t)vlen);
	}
	for (size_t i = 0; i < snap->nsessions; i++) {
		const struct kvfs_session *sess = &snap->sessions[i];

		wb_le(w, sess->origin, 4);
		wb_le(w, sess->seq, 8);
		wb_le(w, (uint32_t)sess->err, 4);
		wb_le(w, sess->ino, 8);
	}
	snapshot_write_config(snap, w);
	snapshot_write_xattrs(snap, w);
	wb_le(w, snap->nlocks, 4);
	for (size_t i = 0; i < snap->nlocks; i++) {
		const struct kvfs_lock *l = &snap->locks[i];

		wb_le(w, l->ino, 8);
		wb_le(w, l->node, 4);
		wb_le(w, l->inc, 8);
		wb_le(w, l->owner, 8);
		wb_le(w, l->kind, 1);
		wb_le(w, l->type, 1);
		wb_le(w, l->start, 8);
		wb_le(w, l->end, 8);
		wb_le(w, l->pid, 4);
		wb_le(w, l->token, 8);
	}
	crc = w->crc;
	wb_le(w, crc, 4);
	wb_flush(w);
	return w->err;
}

/*
 * See snapshot.h. The failure message names the file and the step that failed. If the final
 * fsync of the directory fails, the renamed file is removed again.
 */
int snapshot_write(const struct kvfs_snapshot *snap, const char *dir, char *err, size_t errlen)
{
	char tmp[PATH_MAX], path[PATH_MAX], eb[128];
	unsigned long long idx = (unsigned long long)snap->index;
	struct wbuf *w;
	int fd, rv;

	if ((size_t)snprintf(tmp, sizeof(tmp), "%s/snap-%020llu.tmp", dir, idx) >= sizeof(tmp) ||
	    (size_t)snprintf(path, sizeof(path), "%s/snap-%020llu.snap", dir, idx) >=
	        sizeof(path)) {
		snapshot_set_err(err, errlen, "snapshot directory name too long: %s", dir);
		return -ENAMETOOLONG;
	}
	w = malloc(sizeof(*w));
	if (!w) {
		snapshot_set_err(err, errlen, "out of memory writing snapshot %s", path);
		return -ENOMEM;
	}
	fd = disk_openat(AT_FDCWD, tmp, O_WRONLY | O_CREAT | O_TRUNC, KVFS_FILE_MODE);
	if (fd < 0) {
		rv = fd;
		snapshot_set_err(err, errlen, "cannot create snapshot %s: %s", tmp,
		                 snapshot_errstr(rv, eb, sizeof(eb)));
		goto err_free_buf;
	}
	w->fd = fd;
	w->err = 0;
	w->crc = 0;
	w->len = 0;
	rv = snapshot_write_body(snap, w);
	if (rv) {
		snapshot_set_err(err, errlen, "cannot write snapshot %s: %s", tmp,
		                 snapshot_errstr(rv, eb, sizeof(eb)));
		goto err_close_fd;
	}
	if (fsync(fd) < 0) {
		rv = -errno;
		snapshot_set_err(err, errlen, "cannot fsync snapshot %s: %s", tmp,
		                 snapshot_errstr(rv, eb, sizeof(eb)));
		goto err_close_fd;
	}
	if (close(fd) < 0) {
		rv = -errno;
		snapshot_set_err(err, errlen, "cannot close snapshot %s: %s", tmp,
		                 snapshot_errstr(rv, eb, sizeof(eb)));
		goto err_unlink_tmp;
	}
	if (rename(tmp, path) < 0) {
		rv = -errno;
		snapshot_set_err(err, errlen, "cannot rename %s to %s: %s", tmp, path,
		                 snapshot_errstr(rv, eb, sizeof(eb)));
		goto err_unlink_tmp;
	}
	rv = disk_fsync_dir(dir);
	if (rv) {
		snapshot_set_err(err, errlen, "cannot fsync directory %s after writing %s: %s", dir,
		                 path, snapshot_errstr(rv, eb, sizeof(eb)));
		unlink(path);
		goto err_free_buf;
	}
	free(w);
	return 0;

err_close_fd:
	close(fd);
err_unlink_tmp:
	unlink(tmp);
err_free_buf:
	free(w);
	return rv;
}

int snapshot_path(const char *dir, uint64_t index, char *buf, size_t len)
{
	size_t n = (size_t)snprintf(buf, len, "%s/snap-%020llu.snap", dir,
	                            (unsigned long long)index);

	return n >= len ? -ENAMETOOLONG : 0;
}

/* Parses "snap-<20 digits><suffix>" into *index; false if name is anything else. */
static bool parse_snap_name(const char *name, const char *suffix, uint64_t *index)
{
	size_t slen = strlen(suffix);
	uint64_t v = 0;

	if (strlen(name) != 5 + SNAP_NAME_DIGITS + slen || strncmp(name, "snap-", 5) != 0 ||
	    strcmp(name + 5 + SNAP_NAME_DIGITS, suffix) != 0)
		return false;
	for (size_t i = 5; i < 5 + SNAP_NAME_DIGITS; i++) {
		unsigned d = (unsigned)(name[i] - '0');

		if (d > 9 || v > (UINT64_MAX - d) / 10)
			return false;
		v = v * 10 + d;
	}
	*index = v;
	return true;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* See snapshot_internal.h. */
int snapshot_list(const char *dir, bool remove_tmp, uint64_t **out, size_t *n)
{
	uint64_t *v = NULL, idx;
	size_t len = 0, cap = 0;
	struct dirent *de;
	DIR *d;
	int rv = 0;

	*out = NULL;
	*n = 0;
	d = opendir(dir);
	if (!d)
		return errno == ENOENT ? 0 : -errno;
	while ((errno = 0, de = readdir(d))) {
		if (remove_tmp && parse_snap_name(de->d_name, ".tmp", &idx)) {
			unlinkat(dirfd(d), de->d_name, 0);
			continue;
		}
		if (!parse_snap_name(de->d_name, ".snap", &idx))
			continue;
		if (len == cap) {
			uint64_t *nv = realloc(v, (cap ? cap * 2 : 16) * sizeof(*v));

			if (!nv) {
				rv = -ENOMEM;
				goto err_free_list;
			}
			v = nv;
			cap = cap ? cap * 2 : 16;
		}
		v[len++] = idx;
	}
	if (errno) {
		rv = -errno;
		goto err_free_list;
	}
	closedir(d);
	if (len)
		qsort(v, len, sizeof(*v), cmp_u64);
	*out = v;
	*n = len;
	return 0;

err_free_list:
	free(v);
	closedir(d);
	return rv;
}

/* Removes the oldest snapshot files, keeping `keep`, then fsyncs dir. First error or 0. */
int snapshot_prune(const char *dir, unsigned keep)
{
	char path[PATH_MAX];
	uint64_t *idx;
	size_t n;
	int rv = snapshot_list(dir, false, &idx, &n);

	if (rv || n <= keep) {
		free(idx);
		return rv;
	}
	for (size_t i = 0; i < n - keep; i++) {
		if ((size_t)snprintf(path, sizeof(path), "%s/snap-%020llu.snap", dir,
		                     (unsigned long long)idx[i]) >= sizeof(path)) {
			rv = -ENAMETOOLONG;
			break;
		}
		if (unlink(path) < 0 && errno != ENOENT && !rv)
			rv = -errno;
	}
	free(idx);
	if (!rv)
		rv = disk_fsync_dir(dir);
	return rv;
}

uint64_t snapshot_oldest_index(const char *dir)
{
	uint64_t *idx, oldest = 0;
	size_t n;

	if (snapshot_list(dir, false, &idx, &n) == 0 && n)
		oldest = idx[0];
	free(idx);
	return oldest;
}
