/*
 * Loading a snapshot (see snapshot.h for the file format) back into a store: maps the file,
 * checks the trailing CRC32C over the whole file before it trusts any byte, then checks every
 * length as it rebuilds the store through store_load_inode() and store_load_link(). It reads
 * KVFSSNP1 files (written before hard links: one record per inode, no device numbers) and
 * KVFSSNP2 files (no configuration: the bootstrap one) and KVFSSNP3 files (no extended
 * attributes, no locks) as well as the current KVFSSNP4.
 * Capturing and writing are in snapshot.c.
 */
#include "kvfs/snapshot.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kvfs/config.h"
#include "kvfs/crc32c.h"
#include "kvfs/disk.h"
#include "kvfs/op.h"
#include "kvfs/store.h"
#include "kvfs/store_xattr.h"
#include "kvfs/value.h"
#include "snapshot_internal.h"
#include "store_internal.h"

/* The fewest bytes of a record: parent, name length, ino and kind of a link with an empty name. */
#define SNAP_MIN_REC 21u

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

/* KVFSSNP3's configuration (snapshot.c writes it): index 0 and no body, or an index up to the
 * snapshot's and a well-formed body. 0 or -EBADMSG. */
static int get_config(struct rcur *r, struct kvfs_store *s, uint64_t index)
{
	uint64_t cfg_index = get_le(r, 8);
	uint32_t len = (uint32_t)get_le(r, 4);
	const uint8_t *body = get_bytes(r, len);
	struct kvfs_config c;

	if (!r->ok || (cfg_index == 0) != (len == 0) || cfg_index > index)
		return -EBADMSG;
	if (cfg_index == 0)
		return 0;
	if (config_body_decode(body, len, &c, NULL) < 0)
		return -EBADMSG;
	store_load_config(s, &c, cfg_index);
	return 0;
}

/* KVFSSNP4's locks, each checked by store_lock_load(). 0, -ENOMEM or -EBADMSG. */
static int get_locks(struct rcur *r, struct kvfs_store *s, uint64_t index)
{
	uint32_t nlocks;
	int rv;

	nlocks = (uint32_t)get_le(r, 4);
	if (!r->ok || nlocks > r->left / SNAP_LOCK_SIZE)
		return -EBADMSG;
	for (uint32_t i = 0; i < nlocks; i++) {
		struct kvfs_lock l;

		l.ino = get_le(r, 8);
		l.node = (uint32_t)get_le(r, 4);
		l.inc = get_le(r, 8);
		l.owner = get_le(r, 8);
		l.kind = (uint8_t)get_le(r, 1);
		l.type = (uint8_t)get_le(r, 1);
		l.start = get_le(r, 8);
		l.end = get_le(r, 8);
		l.pid = (uint32_t)get_le(r, 4);
		l.token = get_le(r, 8);
		if (!r->ok)
			return -EBADMSG;
		rv = store_lock_load(s, &l, index);
		if (rv)
			return rv;
	}
	return 0;
}

/*
 * KVFSSNP4's extended attributes (snapshot.c writes them). Every name, value, order and limit
 * is checked by store_xattr_load(). 0, -ENOMEM or -EBADMSG.
 */
static int get_xattrs(struct rcur *r, struct kvfs_store *s)
{
	uint32_t count = (uint32_t)get_le(r, 4);
	int rv;

	for (uint32_t i = 0; i < count && r->ok; i++) {
		uint64_t ino = get_le(r, 8);
		uint32_t n = (uint32_t)get_le(r, 4);

		if (!r->ok || n == 0 || n > KVFS_XATTR_COUNT_MAX)
			return -EBADMSG;
		for (uint32_t j = 0; j < n; j++) {
			uint32_t name_len = (uint32_t)get_le(r, 4);
			const uint8_t *name = get_bytes(r, name_len);
			uint32_t value_len = (uint32_t)get_le(r, 4);
			const uint8_t *value = get_bytes(r, value_len);

			if (!r->ok)
				return -EBADMSG;
			rv = store_xattr_load(s, ino, j == 0, (const char *)name, name_len, value,
			                      value_len);
			if (rv)
				return rv;
		}
	}
	return r->ok ? 0 : -EBADMSG;
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
	bool v1, v3, v4;
	int rv;

	index = get_le(&r, 8);
	epoch = get_le(&r, 8);
	nrecs = get_le(&r, 8);
	nsessions = get_le(&r, 8);
	*what = "header";
	if (!r.ok || index != file_index || nrecs == 0)
		return -EBADMSG;
	v1 = memcmp(magic, SNAP_MAGIC_V1, 8) == 0;
	v4 = memcmp(magic, SNAP_MAGIC, 8) == 0;
	v3 = v4 || memcmp(magic, SNAP_MAGIC_V3, 8) == 0;
	if (!v1 && !v3 && memcmp(magic, SNAP_MAGIC_V2, 8) != 0)
		return -EBADMSG;
	rv = store_init(&s);
	if (rv)
		return rv;
	/* The tables sized for the records at once rather than doubled as they come; a count
	 * beyond what the file can hold (a name record is at least SNAP_MIN_REC bytes) is cut to
	 * that, and a wrong one only costs memory or doublings. */
	store_hash_reserve(&s->hash, (size_t)(nrecs < len / SNAP_MIN_REC ? nrecs
	                                                                     : len / SNAP_MIN_REC));
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
	*what = "configuration";
	if (v3 && get_config(&r, s, index) < 0) {
		rv = -EBADMSG;
		goto err_close_store;
	}
	*what = "extended attributes";
	if (v4) {
		rv = get_xattrs(&r, s);
		if (rv)
			goto err_close_store;
		*what = "locks";
		rv = get_locks(&r, s, index);
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
		snapshot_set_err(err, errlen, "snapshot directory name too long: %s", dir);
		return -ENAMETOOLONG;
	}
	fd = disk_openat(AT_FDCWD, path, O_RDONLY, 0);
	if (fd < 0) {
		rv = fd;
		snapshot_set_err(err, errlen, "cannot open snapshot %s: %s", path,
		                 snapshot_errstr(rv, eb, sizeof(eb)));
		return rv;
	}
	if (fstat(fd, &st) < 0) {
		rv = -errno;
		snapshot_set_err(err, errlen, "cannot stat snapshot %s: %s", path,
		                 snapshot_errstr(rv, eb, sizeof(eb)));
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
		snapshot_set_err(err, errlen, "cannot map snapshot %s: %s", path,
		                 snapshot_errstr(rv, eb, sizeof(eb)));
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
		snapshot_set_err(
		    err, errlen,
		    "snapshot %s passes its checksum but its %s does not make a valid tree; "
		    "refusing to load it (move it away to start from an older one)",
		    path, what);
	else if (rv)
		snapshot_set_err(err, errlen, "cannot load snapshot %s: %s", path,
		                 snapshot_errstr(rv, eb, sizeof(eb)));

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

	snapshot_set_err(err, errlen, "%s", "");
	rv = snapshot_load_file(dir, index, out, err, errlen);
	if (rv == 1) {
		snapshot_set_err(
		    err, errlen,
		    "snapshot snap-%020llu.snap in %s is too short or fails its checksum",
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

	snapshot_set_err(err, errlen, "%s", "");
	rv = snapshot_list(dir, true, &idx, &n);
	if (rv) {
		snapshot_set_err(err, errlen, "cannot list snapshots in %s: %s", dir,
		                 snapshot_errstr(rv, eb, sizeof(eb)));
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
		snapshot_set_err(
		    err, errlen,
		    "all %zu snapshots in %s fail their checksum (newest snap-%020llu.snap); "
		    "refusing to start from an empty store",
		    n, dir, (unsigned long long)idx[n - 1]);
		rv = -EBADMSG;
		goto err_free_list;
	}
	if (skipped)
		snapshot_set_err(err, errlen,
		                 "skipped %zu snapshot(s) in %s that fail their checksum (newest "
		                 "snap-%020llu.snap); loaded the older snap-%020llu.snap",
		                 skipped, dir, (unsigned long long)idx[n - 1],
		                 (unsigned long long)loaded);
	if (!s) {
		rv = store_init(&s);
		if (rv) {
			snapshot_set_err(err, errlen, "out of memory creating an empty store");
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
