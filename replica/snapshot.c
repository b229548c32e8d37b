/*
 * Snapshots (see snapshot.h for the file format): capturing the store, writing it durably and
 * loading it back.
 *
 * A capture is a flat array of name records in store_foreach() order, one buffer holding all
 * the names, references on the values and a copy of the session table: O(names) work on the
 * loop thread and no copy of file contents. Writing streams it through a 64 KiB buffer into
 * snap-N.tmp, computing the CRC32C on the way, then fsync, rename to snap-N.snap and fsync of the
 * directory; it always writes the current format, KVFSSNP2. Loading maps the file, checks the
 * trailing CRC32C over the whole file before it trusts any byte, then checks every length as it
 * rebuilds the store through store_load_inode() and store_load_link(); it reads KVFSSNP1 files
 * (written before hard links: one record per inode, no device numbers) as well.
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
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kvfs/crc32c.h"
#include "kvfs/disk.h"
#include "kvfs/op.h"
#include "kvfs/store.h"
#include "kvfs/value.h"

#define SNAP_MAGIC_V1    "KVFSSNP1"
#define SNAP_MAGIC       "KVFSSNP2"
#define SNAP_HEADER_SIZE (8 + 8 + 8 + 8 + 8)
#define SNAP_WBUF_SIZE   (64u << 10)
#define SNAP_NAME_DIGITS 20

/* Record kinds (KVFSSNP2). */
#define SNAP_KIND_INODE 0 /* an inode's first name, with the inode */
#define SNAP_KIND_LINK  1 /* another name of an inode recorded earlier */

/* One name; an inode's attributes and value with its first name only (kind SNAP_KIND_INODE). */
struct snap_rec {
	uint64_t ino, parent_ino;
	uint8_t kind;
	uint32_t mode, uid, gid, rdev;
	int64_t atime_ns, mtime_ns, ctime_ns;
	size_t name_off; /* into kvfs_snapshot.names */
	uint32_t name_len;
	struct kvfs_value *value; /* a reference, or NULL */
};

struct kvfs_snapshot {
	uint64_t index, epoch;
	struct snap_rec *recs;
	size_t nrecs;
	char *names;
	size_t names_len;
	struct kvfs_session *sessions;
	size_t nsessions;
};

static void set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (!err || !errlen)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/* strerror for a negative errno, safe on any thread. */
static const char *errstr(int rv, char *buf, size_t len)
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
	store_foreach(s, count_name, snap);
	store_session_foreach(s, count_session, snap);
	nrecs = snap->nrecs;
	names_len = snap->names_len;
	nsessions = snap->nsessions;
	snap->recs = calloc(nrecs, sizeof(*snap->recs));
	snap->names = malloc(names_len + 1);
	snap->sessions = calloc(nsessions + 1, sizeof(*snap->sessions));
	if (!snap->recs || !snap->names || !snap->sessions)
		goto err_free_arrays;
	snap->nrecs = snap->names_len = snap->nsessions = 0;
	store_foreach(s, copy_name, snap);
	store_session_foreach(s, copy_session, snap);
	*out = snap;
	return 0;

err_free_arrays:
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
	for (size_t i = 0; i < snap->nrecs; i++)
		value_unref(snap->recs[i].value);
	free(snap->recs);
	free(snap->names);
	free(snap->sessions);
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
		set_err(err, errlen, "snapshot directory name too long: %s", dir);
		return -ENAMETOOLONG;
	}
	w = malloc(sizeof(*w));
	if (!w) {
		set_err(err, errlen, "out of memory writing snapshot %s", path);
		return -ENOMEM;
	}
	fd = disk_openat(AT_FDCWD, tmp, O_WRONLY | O_CREAT | O_TRUNC, KVFS_FILE_MODE);
	if (fd < 0) {
		rv = fd;
		set_err(err, errlen, "cannot create snapshot %s: %s", tmp,
		        errstr(rv, eb, sizeof(eb)));
		goto err_free_buf;
	}
	w->fd = fd;
	w->err = 0;
	w->crc = 0;
	w->len = 0;
	rv = snapshot_write_body(snap, w);
	if (rv) {
		set_err(err, errlen, "cannot write snapshot %s: %s", tmp,
		        errstr(rv, eb, sizeof(eb)));
		goto err_close_fd;
	}
	if (fsync(fd) < 0) {
		rv = -errno;
		set_err(err, errlen, "cannot fsync snapshot %s: %s", tmp,
		        errstr(rv, eb, sizeof(eb)));
		goto err_close_fd;
	}
	if (close(fd) < 0) {
		rv = -errno;
		set_err(err, errlen, "cannot close snapshot %s: %s", tmp,
		        errstr(rv, eb, sizeof(eb)));
		goto err_unlink_tmp;
	}
	if (rename(tmp, path) < 0) {
		rv = -errno;
		set_err(err, errlen, "cannot rename %s to %s: %s", tmp, path,
		        errstr(rv, eb, sizeof(eb)));
		goto err_unlink_tmp;
	}
	rv = disk_fsync_dir(dir);
	if (rv) {
		set_err(err, errlen, "cannot fsync directory %s after writing %s: %s", dir, path,
		        errstr(rv, eb, sizeof(eb)));
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

/*
 * The indices of the snap-*.snap files in dir, ascending, in *out (the caller frees it; NULL
 * when there are none). With remove_tmp, snap-*.tmp files are removed on the way. A missing
 * directory holds no snapshot. 0, -ENOMEM or another negative errno from reading dir.
 */
static int list_snaps(const char *dir, bool remove_tmp, uint64_t **out, size_t *n)
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

/* A read cursor over a mapped snapshot that fails (ok = false) instead of reading past the end. */
struct rcur {
	const uint8_t *p;
	size_t left;
	bool ok;
};

static const uint8_t *get_bytes(struct rcur *r, uint64_t n)
{
	const uint8_t *p = r->p;

	if (!r->ok || n > r->left) {
		r->ok = false;
		return NULL;
	}
	r->p += n;
	r->left -= (size_t)n;
	return p;
}

static uint64_t get_le(struct rcur *r, unsigned bytes)
{
	const uint8_t *p = get_bytes(r, bytes);
	uint64_t v = 0;

	for (unsigned i = 0; p && i < bytes; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

/* A record read from the file: a name, and with kind SNAP_KIND_INODE the inode (value borrowed
 * from the mapping). */
struct rec {
	uint64_t parent;
	const char *name;
	uint32_t name_len;
	uint8_t kind;
	struct kvfs_inode in;
	const uint8_t *vdata;
	uint64_t vlen;
};

static void get_name(struct rcur *r, struct rec *rec)
{
	rec->name_len = (uint32_t)get_le(r, 4);
	if (rec->name_len > KVFS_NAME_MAX)
		r->ok = false;
	rec->name = (const char *)get_bytes(r, rec->name_len);
}

static void get_times(struct rcur *r, struct rec *rec)
{
	rec->in.atime_ns = (int64_t)get_le(r, 8);
	rec->in.mtime_ns = (int64_t)get_le(r, 8);
	rec->in.ctime_ns = (int64_t)get_le(r, 8);
}

/* Reads one record of a KVFSSNP1 file (an inode, always with its one name). */
static void get_rec_v1(struct rcur *r, struct rec *rec)
{
	rec->in.ino = get_le(r, 8);
	rec->parent = get_le(r, 8);
	rec->in.mode = (uint32_t)get_le(r, 4);
	rec->in.uid = (uint32_t)get_le(r, 4);
	rec->in.gid = (uint32_t)get_le(r, 4);
	get_times(r, rec);
	get_name(r, rec);
	rec->kind = SNAP_KIND_INODE;
	rec->vlen = get_le(r, 8);
	rec->vdata = get_bytes(r, rec->vlen);
}

/* Reads one record of a KVFSSNP2 file. */
static void get_rec_v2(struct rcur *r, struct rec *rec)
{
	rec->parent = get_le(r, 8);
	get_name(r, rec);
	rec->in.ino = get_le(r, 8);
	rec->kind = (uint8_t)get_le(r, 1);
	if (rec->kind == SNAP_KIND_LINK)
		return;
	if (rec->kind != SNAP_KIND_INODE)
		r->ok = false;
	rec->in.mode = (uint32_t)get_le(r, 4);
	rec->in.uid = (uint32_t)get_le(r, 4);
	rec->in.gid = (uint32_t)get_le(r, 4);
	rec->in.rdev = (uint32_t)get_le(r, 4);
	get_times(r, rec);
	rec->vlen = get_le(r, 8);
	rec->vdata = get_bytes(r, rec->vlen);
}

/*
 * Adds record i of a snapshot at `index` to s: 0, -ENOMEM or -EBADMSG. The root comes first, and
 * no inode has a number that a later create could hand out again.
 */
static int load_rec(struct kvfs_store *s, const struct rec *rec, uint64_t i, uint64_t index)
{
	struct kvfs_value *v = NULL;
	uint64_t ino = rec->in.ino;
	struct kvfs_inode in = rec->in;
	int rv;

	if ((i == 0) != (ino == KVFS_ROOT_INO && rec->kind == SNAP_KIND_INODE) ||
	    (ino != KVFS_ROOT_INO && ino > KVFS_INO_BASE + index))
		return -EBADMSG;
	if (rec->kind == SNAP_KIND_LINK)
		return store_load_link(s, rec->parent, rec->name, rec->name_len, ino);
	if (rec->vlen) {
		v = value_new(rec->vdata, rec->vlen);
		if (!v)
			return -ENOMEM;
	}
	in.value = v;
	rv = store_load_inode(s, rec->parent, rec->name, rec->name_len, &in);
	value_unref(v);
	return rv;
}

/*
 * Rebuilds a store from the checksummed body of snapshot file_index (len bytes, CRC excluded),
 * in either format. 0 with *out set, -ENOMEM, or -EBADMSG with *what saying which part does
 * not fit.
 */
static int snapshot_parse(const uint8_t *buf, size_t len, uint64_t file_index,
                          struct kvfs_store **out, const char **what)
{
	struct rcur r = {buf, len, true};
	uint64_t index, epoch, nrecs, nsessions;
	const uint8_t *magic = get_bytes(&r, 8);
	struct kvfs_store *s;
	bool v1;
	int rv;

	index = get_le(&r, 8);
	epoch = get_le(&r, 8);
	nrecs = get_le(&r, 8);
	nsessions = get_le(&r, 8);
	*what = "header";
	if (!r.ok || index != file_index || nrecs == 0)
		return -EBADMSG;
	v1 = memcmp(magic, SNAP_MAGIC_V1, 8) == 0;
	if (!v1 && memcmp(magic, SNAP_MAGIC, 8) != 0)
		return -EBADMSG;
	rv = store_init(&s);
	if (rv)
		return rv;
	for (uint64_t i = 0; i < nrecs; i++) {
		struct rec rec = {0};

		*what = v1 ? "inode" : "name record";
		if (v1)
			get_rec_v1(&r, &rec);
		else
			get_rec_v2(&r, &rec);
		rv = r.ok ? load_rec(s, &rec, i, index) : -EBADMSG;
		if (rv)
			goto err_close_store;
	}
	for (uint64_t i = 0; i < nsessions; i++) {
		struct kvfs_session sess;

		*what = "session";
		sess.origin = (uint32_t)get_le(&r, 4);
		sess.seq = get_le(&r, 8);
		sess.err = (int32_t)(uint32_t)get_le(&r, 4);
		sess.ino = get_le(&r, 8);
		if (!r.ok) {
			rv = -EBADMSG;
			goto err_close_store;
		}
		rv = store_session_load(s, &sess);
		if (rv)
			goto err_close_store;
	}
	*what = "trailing bytes";
	if (r.left != 0) {
		rv = -EBADMSG;
		goto err_close_store;
	}
	store_load_done(s, index, epoch);
	*out = s;
	return 0;

err_close_store:
	store_close(s);
	return rv;
}

/*
 * Loads snapshot file `index` of dir. 0 with *out set; 1 if the file is too short or fails its
 * checksum (the caller may try an older one); a negative errno otherwise, with a message.
 */
static int snapshot_load_file(const char *dir, uint64_t index, struct kvfs_store **out, char *err,
                              size_t errlen)
{
	char path[PATH_MAX], eb[128];
	const char *what = "";
	struct stat st;
	uint8_t *map;
	size_t size;
	uint32_t crc;
	int fd, rv;

	if ((size_t)snprintf(path, sizeof(path), "%s/snap-%020llu.snap", dir,
	                     (unsigned long long)index) >= sizeof(path)) {
		set_err(err, errlen, "snapshot directory name too long: %s", dir);
		return -ENAMETOOLONG;
	}
	fd = disk_openat(AT_FDCWD, path, O_RDONLY, 0);
	if (fd < 0) {
		rv = fd;
		set_err(err, errlen, "cannot open snapshot %s: %s", path,
		        errstr(rv, eb, sizeof(eb)));
		return rv;
	}
	if (fstat(fd, &st) < 0) {
		rv = -errno;
		set_err(err, errlen, "cannot stat snapshot %s: %s", path,
		        errstr(rv, eb, sizeof(eb)));
		goto err_close_fd;
	}
	if (st.st_size < SNAP_HEADER_SIZE + 4 || st.st_size != (off_t)(size_t)st.st_size) {
		rv = 1;
		goto err_close_fd;
	}
	size = (size_t)st.st_size;
	map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
	if (map == MAP_FAILED) {
		rv = -errno;
		set_err(err, errlen, "cannot map snapshot %s: %s", path,
		        errstr(rv, eb, sizeof(eb)));
		goto err_close_fd;
	}
	crc = (uint32_t)map[size - 4] | (uint32_t)map[size - 3] << 8 |
	      (uint32_t)map[size - 2] << 16 | (uint32_t)map[size - 1] << 24;
	if (crc32c(0, map, size - 4) != crc) {
		rv = 1;
		goto err_unmap;
	}
	rv = snapshot_parse(map, size - 4, index, out, &what);
	if (rv == -EBADMSG)
		set_err(err, errlen,
		        "snapshot %s passes its checksum but its %s does not make a valid tree; "
		        "refusing to load it (move it away to start from an older one)",
		        path, what);
	else if (rv)
		set_err(err, errlen, "cannot load snapshot %s: %s", path,
		        errstr(rv, eb, sizeof(eb)));

err_unmap:
	munmap(map, size);
err_close_fd:
	close(fd);
	return rv;
}

/* See snapshot.h: one file, no older one in its place. */
int snapshot_load(const char *dir, uint64_t index, struct kvfs_store **out, char *err,
                  size_t errlen)
{
	int rv;

	set_err(err, errlen, "%s", "");
	rv = snapshot_load_file(dir, index, out, err, errlen);
	if (rv == 1) {
		set_err(err, errlen, "snapshot snap-%020llu.snap in %s is too short or fails its checksum",
		        (unsigned long long)index, dir);
		rv = -EBADMSG;
	}
	return rv;
}

/*
 * See snapshot.h. A snapshot that fails its checksum is skipped for an older one, with a note in
 * err. When every snapshot fails its checksum, the call fails with -EBADMSG rather than start
 * from an empty store: the log before those snapshots may be gone, and starting empty would
 * lose acknowledged writes silently.
 */
int snapshot_load_latest(const char *dir, struct kvfs_store **out, uint64_t *index, char *err,
                         size_t errlen)
{
	struct kvfs_store *s = NULL;
	uint64_t *idx, loaded = 0;
	size_t n, skipped = 0;
	char eb[128];
	int rv;

	set_err(err, errlen, "%s", "");
	rv = list_snaps(dir, true, &idx, &n);
	if (rv) {
		set_err(err, errlen, "cannot list snapshots in %s: %s", dir,
		        errstr(rv, eb, sizeof(eb)));
		return rv;
	}
	for (size_t i = n; i-- > 0;) {
		rv = snapshot_load_file(dir, idx[i], &s, err, errlen);
		if (rv < 0)
			goto err_free_list;
		if (rv == 0) {
			loaded = idx[i];
			break;
		}
		skipped++;
	}
	if (skipped && !s) {
		set_err(err, errlen,
		        "all %zu snapshots in %s fail their checksum (newest snap-%020llu.snap); "
		        "refusing to start from an empty store",
		        n, dir, (unsigned long long)idx[n - 1]);
		rv = -EBADMSG;
		goto err_free_list;
	}
	if (skipped)
		set_err(err, errlen,
		        "skipped %zu snapshot(s) in %s that fail their checksum (newest "
		        "snap-%020llu.snap); loaded the older snap-%020llu.snap",
		        skipped, dir, (unsigned long long)idx[n - 1], (unsigned long long)loaded);
	if (!s) {
		rv = store_init(&s);
		if (rv) {
			set_err(err, errlen, "out of memory creating an empty store");
			goto err_free_list;
		}
	}
	free(idx);
	*out = s;
	*index = loaded;
	return 0;

err_free_list:
	free(idx);
	return rv;
}

/* Removes the oldest snapshot files, keeping `keep`, then fsyncs dir. First error or 0. */
int snapshot_prune(const char *dir, unsigned keep)
{
	char path[PATH_MAX];
	uint64_t *idx;
	size_t n;
	int rv = list_snaps(dir, false, &idx, &n);

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

	if (list_snaps(dir, false, &idx, &n) == 0 && n)
		oldest = idx[0];
	free(idx);
	return oldest;
}
