/*
 * /.kvfs-backup.tar: a read-only virtual file whose contents are a POSIX tar archive (pax
 * format, tar.h) of the whole store as of one applied index.
 *
 * Opening it captures the store on the loop thread, between two applied operations: one record
 * per name of a linked inode (the name, its directory, the inode's mode, owner, mtime) and a
 * reference on its value, which
 * stays immutable while referenced (value.h). No file contents are copied, so the capture costs
 * O(keys) time and memory, and writers go on at once; a value they replace meanwhile lives on
 * until the backup is closed. The capture also computes where each entry starts in the archive,
 * so a read at any offset finds its entry by binary search (sequential reads, the usual case,
 * continue from the last one) and encodes only that entry's header. The archive begins with a
 * pax global header naming the cluster, the node, and the epoch and index of the last applied
 * operation, then the root ("./") and every entry in store_foreach() order (each directory
 * before its contents), and ends with two zero blocks. A file with several names (hard links)
 * has its contents at its first name; each later name is a hard link entry naming that path, so
 * extracting gives one file with all its names (as `tar --hard-dereference` would not). FIFOs
 * and device nodes are archived with their type and numbers; sockets are left out, as GNU tar
 * leaves them out (a socket belongs to the process that listens on it).
 *
 * stat shows the size a backup taken now would have (computed by the same walk, without the
 * capture); the file is read with direct I/O, so readers get the archive of their open to its end.
 */
#include "fs.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "kvfs/store.h"
#include "kvfs/store_xattr.h"
#include "kvfs/value.h"
#include "tar.h"

/* One captured name. */
struct bk_entry {
	size_t name_off; /* into fuse_backup.names */
	uint32_t name_len;
	uint32_t mode, uid, gid;
	size_t parent; /* index of the parent's entry (the root, entry 0, is its own) */
	size_t link_to; /* another name of a file archived earlier: 1 + that entry's index; else 0 */
	uint32_t rdev;
	int64_t mtime_ns;
	struct kvfs_value *value; /* a reference: contents or symlink target; NULL if empty */
	struct kvfs_xattrs *xattrs; /* a reference: extended attributes (first names); or NULL */
};

/*
 * The archive is a sequence of pieces: 0 the global header, 1..nents the entries (header, data,
 * padding), nents + 1 the trailer. Piece p covers [start[p], start[p + 1]).
 */
struct fuse_backup {
	struct bk_entry *ents;
	size_t nents, cap;
	char *names;
	size_t names_len, names_cap;
	uint64_t *start; /* nents + 3 offsets */
	uint8_t *global;
	size_t global_len;
	size_t cursor;    /* the piece where the next sequential read begins */
	size_t hdr_piece; /* the piece whose header hdr holds; 0: none */
	uint8_t *hdr;
	size_t hdr_len, hdr_cap;
	char *path; /* scratch: an entry's path in the archive */
	size_t path_cap;
	char *link_path; /* scratch: the path a hard link entry names */
	size_t link_path_cap;
};

/* A file with several names: where the walk archived its first one. */
struct first_name {
	uint64_t ino; /* 0: a free slot */
	size_t idx;
	char *path;
	size_t path_len;
};

/* A pre-order walk of the store that builds each entry's archive path ("./a/b", "./d/") and adds
 * up the archive's size; with `b`, it also records the entries. */
struct walk {
	struct fuse_backup *b;
	uint64_t size;
	struct walk_dir {
		const struct kvfs_inode *in;
		size_t path_len; /* of its path, trailing '/' included */
		size_t idx;      /* its entry */
	} * stack;
	size_t depth, stack_cap;
	char *path;
	size_t path_cap;
	struct first_name *firsts; /* open addressing by ino; a power of two, at most half full */
	size_t nfirsts, firsts_cap;
};

/* Makes *buf hold at least need bytes (it grows by doubling). 0 or -ENOMEM. */
static int grow(void **buf, size_t *cap, size_t need, size_t elem)
{
	size_t n = *cap ? *cap : 16;
	void *p;

	if (need <= *cap)
		return 0;
	while (n < need)
		n *= 2;
	p = realloc(*buf, n * elem);
	if (!p)
		return -ENOMEM;
	*buf = p;
	*cap = n;
	return 0;
}

static char entry_type(uint32_t mode)
{
	switch (mode & S_IFMT) {
	case S_IFDIR:
		return KVFS_TAR_DIR;
	case S_IFLNK:
		return KVFS_TAR_SYMLINK;
	case S_IFCHR:
		return KVFS_TAR_CHR;
	case S_IFBLK:
		return KVFS_TAR_BLK;
	case S_IFIFO:
		return KVFS_TAR_FIFO;
	default:
		return KVFS_TAR_FILE;
	}
}

/*
 * The tar entry of an inode with this path in the archive; with `first` (the path of its first
 * name, already archived), a hard link to it. rdev is in Linux's 32-bit encoding.
 */
static struct kvfs_tar_entry tar_entry(const char *path, size_t path_len, uint32_t mode,
                                       uint32_t uid, uint32_t gid, uint32_t rdev,
                                       int64_t mtime_ns, const struct kvfs_value *v,
                                       const char *first, size_t first_len)
{
	struct kvfs_tar_entry e = {
	    .path = path,
	    .path_len = path_len,
	    .type = first ? KVFS_TAR_HARDLINK : entry_type(mode),
	    .mode = mode & 07777,
	    .uid = uid,
	    .gid = gid,
	    .mtime_ns = mtime_ns,
	    .link = first,
	    .link_len = first_len,
	};

	if (e.type == KVFS_TAR_CHR || e.type == KVFS_TAR_BLK) {
		e.devmajor = (rdev & 0xfff00u) >> 8;
		e.devminor = (rdev & 0xffu) | ((rdev >> 12) & 0xfff00u);
	}
	if (e.type == KVFS_TAR_FILE)
		e.size = value_size(v);
	if (e.type == KVFS_TAR_SYMLINK) {
		e.link = v ? (const char *)v->data : "";
		e.link_len = value_size(v);
	}
	return e;
}

/* Bytes entry e takes in the archive. */
static uint64_t entry_bytes(const struct kvfs_tar_entry *e)
{
	return tar_header(e, NULL, 0) + tar_padded(e->size);
}

static int record(struct fuse_backup *b, const struct kvfs_dentry *d, size_t parent,
                  size_t link_to)
{
	const struct kvfs_inode *in = d->in;
	struct bk_entry *e;

	if (grow((void **)&b->ents, &b->cap, b->nents + 1, sizeof(*b->ents)) < 0 ||
	    grow((void **)&b->names, &b->names_cap, b->names_len + d->name_len + 1, 1) < 0)
		return -ENOMEM;
	e = &b->ents[b->nents];
	*e = (struct bk_entry){.name_off = b->names_len,
	                       .name_len = d->name_len,
	                       .mode = in->mode,
	                       .uid = in->uid,
	                       .gid = in->gid,
	                       .parent = parent,
	                       .link_to = link_to,
	                       .rdev = in->rdev,
	                       .mtime_ns = in->mtime_ns};
	memcpy(b->names + b->names_len, d->name, d->name_len);
	b->names_len += d->name_len;
	e->value = link_to ? NULL : value_ref(in->value);
	e->xattrs = link_to ? NULL : store_xattr_ref(in->xattrs);
	b->nents++;
	return 0;
}

/* The slot of ino in w's table of first names: its entry or the free slot for it. */
static struct first_name *first_slot(const struct walk *w, uint64_t ino)
{
	size_t mask = w->firsts_cap - 1, i = (size_t)(ino * UINT64_C(0x9e3779b97f4a7c15)) & mask;

	while (w->firsts[i].ino && w->firsts[i].ino != ino)
		i = (i + 1) & mask;
	return &w->firsts[i];
}

/* Remembers that entry idx, at path, is the first name of ino. 0 or -ENOMEM. */
static int remember_first(struct walk *w, uint64_t ino, size_t idx, const char *path,
                          size_t len)
{
	struct first_name *f;

	if (2 * (w->nfirsts + 1) > w->firsts_cap) {
		struct walk bigger = {.firsts_cap = w->firsts_cap ? 2 * w->firsts_cap : 64};

		bigger.firsts = calloc(bigger.firsts_cap, sizeof(*bigger.firsts));
		if (!bigger.firsts)
			return -ENOMEM;
		for (size_t i = 0; i < w->firsts_cap; i++)
			if (w->firsts[i].ino)
				*first_slot(&bigger, w->firsts[i].ino) = w->firsts[i];
		free(w->firsts);
		w->firsts = bigger.firsts;
		w->firsts_cap = bigger.firsts_cap;
	}
	f = first_slot(w, ino);
	f->path = malloc(len);
	if (!f->path)
		return -ENOMEM;
	memcpy(f->path, path, len);
	f->ino = ino;
	f->idx = idx;
	f->path_len = len;
	w->nfirsts++;
	return 0;
}

static int walk_visit(void *arg, const struct kvfs_dentry *d, bool first)
{
	const struct kvfs_inode *in = d->in;
	struct walk *w = arg;
	size_t plen = 0, len, idx = w->b ? w->b->nents : 0, parent = 0;
	const struct first_name *f = NULL;
	struct kvfs_tar_entry e;

	if (S_ISSOCK(in->mode))
		return 0; /* as GNU tar: a socket is a live process's, not data */
	if (!first) {
		f = first_slot(w, in->ino);
		if (!f->ino)
			return -EIO; /* a later name of an inode never seen: cannot happen */
	}
	if (d->dir) {
		while (w->depth > 0 && w->stack[w->depth - 1].in != d->dir)
			w->depth--;
		if (w->depth == 0)
			return -EINVAL; /* not pre-order: cannot happen (store_foreach) */
		plen = w->stack[w->depth - 1].path_len;
		parent = w->stack[w->depth - 1].idx;
	}
	len = d->dir ? plen + d->name_len + (S_ISDIR(in->mode) ? 1 : 0) : 2;
	if (grow((void **)&w->path, &w->path_cap, len + 1, 1) < 0)
		return -ENOMEM;
	if (d->dir) {
		memcpy(w->path + plen, d->name, d->name_len);
		if (S_ISDIR(in->mode))
			w->path[len - 1] = '/';
	} else {
		memcpy(w->path, "./", 2);
	}
	e = tar_entry(w->path, len, in->mode, in->uid, in->gid, in->rdev, in->mtime_ns, in->value,
	              f ? f->path : NULL, f ? f->path_len : 0);
	if (!f)
		e.xattrs = in->xattrs;
	if (w->b) {
		w->b->start[idx + 1] = w->size;
		if (record(w->b, d, parent, f ? f->idx + 1 : 0) < 0)
			return -ENOMEM;
	}
	if (first && !S_ISDIR(in->mode) && in->nlink > 1 &&
	    remember_first(w, in->ino, idx, w->path, len) < 0)
		return -ENOMEM;
	w->size += entry_bytes(&e);
	if (S_ISDIR(in->mode)) {
		if (grow((void **)&w->stack, &w->stack_cap, w->depth + 1, sizeof(*w->stack)) < 0)
			return -ENOMEM;
		w->stack[w->depth++] = (struct walk_dir){.in = in, .path_len = len, .idx = idx};
	}
	return 0;
}

/* Walks s: the archive's entries' size in w->size (and, with w->b, the records). */
static int walk_store(const struct kvfs_store *s, struct walk *w)
{
	int rv = store_foreach(s, walk_visit, w);

	for (size_t i = 0; i < w->firsts_cap; i++)
		free(w->firsts[i].path);
	free(w->firsts);
	free(w->stack);
	free(w->path);
	return rv;
}

/*
 * Encodes the pax global header, what the backup holds for an operator: the cluster, the node,
 * the epoch and index of the last applied operation, the number of keys. Returns its size and
 * writes it to buf only if it fits in len (buf may be NULL), like tar_global().
 */
static size_t encode_global(const struct kvfs_fs *fs, const struct kvfs_store *s, time_t now,
                            uint8_t *buf, size_t len)
{
	char node[16], epoch[24], index[24], keys[24], when[32], comment[200];
	const char *cluster = fs->cluster ? fs->cluster : "standalone";
	const char *k[] = {"comment",       "KVFS.cluster",       "KVFS.node",
	                   "KVFS.epoch",    "KVFS.applied_index", "KVFS.keys",
	                   "KVFS.taken_at", "KVFS.cluster_id"};
	const char *v[] = {comment, cluster, node, epoch, index, keys, when, fs->cluster_id};
	struct tm tm;

	snprintf(node, sizeof(node), "%" PRIu32, fs->node_id);
	snprintf(epoch, sizeof(epoch), "%" PRIu64, store_applied_epoch(s));
	snprintf(index, sizeof(index), "%" PRIu64, store_applied_index(s));
	snprintf(keys, sizeof(keys), "%" PRIu64, store_inode_count(s) - 1); /* root excluded */
	gmtime_r(&now, &tm);
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
	snprintf(comment, sizeof(comment),
	         "kvfs backup of cluster %.40s from node %s at epoch %s, applied index %s", cluster,
	         node, epoch, index);
	return tar_global(k, v, fs->cluster_id ? 8 : 7, (int64_t)now, buf, len);
}

static int count_name(void *arg, const struct kvfs_dentry *d, bool first)
{
	if (!S_ISSOCK(d->in->mode))
		(*(size_t *)arg)++;
	return 0;
}

int fuse_backup_open(struct kvfs_fs *fs, struct fuse_backup **out)
{
	struct fuse_backup *b = calloc(1, sizeof(*b));
	struct walk w = {.b = b};
	size_t n = 0; /* entries: names, the root's included */
	time_t now = time(NULL);
	int rv = -ENOMEM;

	if (!b)
		return -ENOMEM;
	store_foreach(fs->store, count_name, &n);
	b->start = calloc(n + 3, sizeof(*b->start));
	if (!b->start || grow((void **)&b->ents, &b->cap, n, sizeof(*b->ents)) < 0)
		goto err_free;
	rv = walk_store(fs->store, &w);
	if (rv == 0 && b->nents != n)
		rv = -EIO; /* two walks of one store disagree: cannot happen */
	if (rv < 0)
		goto err_free;
	b->global_len = encode_global(fs, fs->store, now, NULL, 0);
	b->global = malloc(b->global_len);
	if (!b->global) {
		rv = -ENOMEM;
		goto err_free;
	}
	encode_global(fs, fs->store, now, b->global, b->global_len);
	for (size_t p = 1; p <= n; p++)
		b->start[p] += b->global_len;
	b->start[n + 1] = b->global_len + w.size;
	b->start[n + 2] = b->start[n + 1] + KVFS_TAR_TRAILER;
	*out = b;
	return 0;

err_free:
	fuse_backup_free(b);
	return rv;
}

void fuse_backup_free(struct fuse_backup *b)
{
	if (!b)
		return;
	for (size_t i = 0; i < b->nents; i++) {
		value_unref(b->ents[i].value);
		store_xattr_unref(b->ents[i].xattrs);
	}
	free(b->ents);
	free(b->names);
	free(b->start);
	free(b->global);
	free(b->hdr);
	free(b->path);
	free(b->link_path);
	free(b);
}

/* Puts entry i's archive path into *buf; returns its length, or 0 on ENOMEM. */
static size_t entry_path(struct fuse_backup *b, size_t i, char **buf, size_t *cap)
{
	const struct bk_entry *e = &b->ents[i];
	size_t len = 2 + (S_ISDIR(e->mode) && i ? 1 : 0), pos;
	char *path;

	for (size_t j = i; j; j = b->ents[j].parent)
		len += b->ents[j].name_len + 1;
	len -= i ? 1 : 0;
	if (grow((void **)buf, cap, len + 1, 1) < 0)
		return 0;
	path = *buf;
	pos = len;
	if (S_ISDIR(e->mode) && i)
		path[--pos] = '/';
	for (size_t j = i; j; j = b->ents[j].parent) {
		pos -= b->ents[j].name_len;
		memcpy(path + pos, b->names + b->ents[j].name_off, b->ents[j].name_len);
		path[--pos] = '/';
	}
	path[0] = '.';
	path[1] = '/';
	return len;
}

/* Encodes the header of piece p (an entry) into b->hdr. 0 or -ENOMEM. */
static int load_header(struct fuse_backup *b, size_t p)
{
	const struct bk_entry *be = &b->ents[p - 1];
	struct kvfs_tar_entry e;
	size_t len, link_len = 0;

	if (b->hdr_piece == p)
		return 0;
	len = entry_path(b, p - 1, &b->path, &b->path_cap);
	if (be->link_to)
		link_len = entry_path(b, be->link_to - 1, &b->link_path, &b->link_path_cap);
	if (!len || (be->link_to && !link_len))
		return -ENOMEM;
	e = tar_entry(b->path, len, be->mode, be->uid, be->gid, be->rdev, be->mtime_ns, be->value,
	              be->link_to ? b->link_path : NULL, link_len);
	e.xattrs = be->xattrs;
	b->hdr_len = tar_header(&e, NULL, 0);
	if (grow((void **)&b->hdr, &b->hdr_cap, b->hdr_len, 1) < 0)
		return -ENOMEM;
	tar_header(&e, b->hdr, b->hdr_cap);
	b->hdr_piece = p;
	return 0;
}

/* The piece holding byte off (< the archive's size). */
static size_t find_piece(const struct fuse_backup *b, uint64_t off)
{
	size_t lo = 0, hi = b->nents + 1;

	if (b->cursor <= b->nents + 1 && off >= b->start[b->cursor] &&
	    off < b->start[b->cursor + 1])
		return b->cursor;
	while (lo < hi) { /* the last piece starting at or before off */
		size_t mid = lo + (hi - lo + 1) / 2;

		if (b->start[mid] <= off)
			lo = mid;
		else
			hi = mid - 1;
	}
	return lo;
}

/* Copies n bytes of piece p from its byte `from` to dst. 0 or -ENOMEM. */
static int copy_piece(struct fuse_backup *b, size_t p, uint64_t from, uint8_t *dst, size_t n)
{
	const struct kvfs_value *v;
	uint64_t dlen;

	if (p == 0) {
		memcpy(dst, b->global + from, n);
		return 0;
	}
	if (p == b->nents + 1) {
		memset(dst, 0, n);
		return 0;
	}
	if (load_header(b, p) < 0)
		return -ENOMEM;
	v = b->ents[p - 1].value;
	/* A hard link entry carries no data: its first name's entry did. */
	dlen = S_ISREG(b->ents[p - 1].mode) && !b->ents[p - 1].link_to ? value_size(v) : 0;
	while (n > 0) {
		size_t k;

		if (from < b->hdr_len) {
			k = b->hdr_len - from < n ? (size_t)(b->hdr_len - from) : n;
			memcpy(dst, b->hdr + from, k);
		} else if (from < b->hdr_len + dlen) {
			k = b->hdr_len + dlen - from < n ? (size_t)(b->hdr_len + dlen - from) : n;
			memcpy(dst, v->data + (from - b->hdr_len), k);
		} else {
			k = n; /* padding to the block */
			memset(dst, 0, k);
		}
		dst += k;
		from += k;
		n -= k;
	}
	return 0;
}

void fuse_backup_read(fuse_req_t req, struct fuse_backup *b, size_t size, off_t off)
{
	uint64_t total = b->start[b->nents + 2], pos = (uint64_t)off;
	uint8_t *buf;
	size_t done = 0, p;

	if (off < 0 || pos >= total || size == 0) {
		fuse_reply_buf(req, NULL, 0);
		return;
	}
	if (size > total - pos)
		size = (size_t)(total - pos);
	buf = malloc(size);
	if (!buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	for (p = find_piece(b, pos); done < size; p++) {
		uint64_t end = b->start[p + 1];
		size_t k = end - pos < size - done ? (size_t)(end - pos) : size - done;

		if (copy_piece(b, p, pos - b->start[p], buf + done, k) < 0) {
			free(buf);
			fuse_reply_err(req, ENOMEM);
			return;
		}
		done += k;
		pos += k;
		b->cursor = pos < end ? p : p + 1; /* where the next sequential read begins */
	}
	fuse_reply_buf(req, (const char *)buf, size);
	free(buf);
}

void fuse_backup_attr(struct kvfs_fs *fs, struct stat *st)
{
	/* The size walks every key: computed once per applied index, so a loop of stat cannot keep
	 * the loop thread busy (the global header's time stamp may make it differ by a byte or
	 * two from a backup opened later, like any backup of a changing store). */
	static const struct kvfs_store *store;
	static uint64_t index = UINT64_MAX, size;
	struct walk w = {0};

	if (store != fs->store || index != store_applied_index(fs->store)) {
		size = 0;
		if (walk_store(fs->store, &w) == 0)
			size = encode_global(fs, fs->store, time(NULL), NULL, 0) + w.size +
			       KVFS_TAR_TRAILER;
		store = fs->store;
		index = store_applied_index(fs->store);
	}
	/* 0400: every key's contents, for the mounting user only */
	fuse_status_virtual_attr(fs, KVFS_BACKUP_INO, 0400, size, st);
}
