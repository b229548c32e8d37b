/*
 * The write-ahead log (see kvfs/log.h for the format and the rules): a directory of segment files
 * log-<first index>.seg, kept in memory as an array of (first, last, size), of which the last is
 * the active segment, open for writing. This file keeps that array (open, close, the helpers that
 * grow and shrink it) and changes the log: a batch goes to the active segment with one pwrite at
 * its known end and one fdatasync; a batch that finds the active segment full first starts a new
 * one (O_EXCL, then the directory is fsynced with the batch). Each segment also keeps a sparse
 * index of record offsets (every LOG_SPARSE_EVERYth record), filled during recovery and on
 * append, trimmed by truncation, which log_read.c uses to find a record without scanning the
 * whole segment. Truncation removes later segments one at a time (each removal made durable
 * before the next) and then cuts the segment that keeps the new last record, so that every crash
 * state is a prefix of the log. What log_open finds on disk is checked and repaired by
 * log_recover.c before the log is used.
 */
#include "kvfs/log.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kvfs/crc32c.h"
#include "kvfs/disk.h"
#include "log_internal.h"

void log_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

static void put_le32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void put_le64(uint8_t *p, uint64_t v)
{
	put_le32(p, (uint32_t)v);
	put_le32(p + 4, (uint32_t)(v >> 32));
}

void log_record_seal(uint8_t *rec, uint64_t epoch, uint64_t index, uint32_t len)
{
	put_le32(rec + 4, len);
	put_le64(rec + 8, epoch);
	put_le64(rec + 16, index);
	put_le32(rec, crc32c(0, rec + 4, log_record_size(len) - 4));
}

/* Writes all len bytes of buf at off. Returns 0 or a negative errno (then some may be written). */
static int write_all(int fd, const uint8_t *buf, size_t len, uint64_t off)
{
	while (len > 0) {
		ssize_t n = pwrite(fd, buf, len, (off_t)off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EIO;
		buf += n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return 0;
}

/* Makes room for n segments in log->segs. Returns 0 or -ENOMEM (log unchanged). */
int log_reserve(struct kvfs_log *log, size_t n)
{
	struct log_segment *s;
	size_t cap;

	if (n <= log->cap)
		return 0;
	cap = log->cap ? log->cap * 2 : 8;
	while (cap < n)
		cap *= 2;
	s = realloc(log->segs, cap * sizeof(*s));
	if (s == NULL)
		return -ENOMEM;
	log->segs = s;
	log->cap = cap;
	return 0;
}

/* Makes room in seg's sparse index for the entries of records up to index last. */
int log_sparse_reserve(struct log_segment *seg, uint64_t last)
{
	size_t n = (size_t)((last - seg->first) / LOG_SPARSE_EVERY) + 1, cap;
	uint64_t *o;

	if (n <= seg->offcap)
		return 0;
	cap = seg->offcap ? seg->offcap * 2 : 16;
	while (cap < n)
		cap *= 2;
	o = realloc(seg->offs, cap * sizeof(*o));
	if (o == NULL)
		return -ENOMEM;
	seg->offs = o;
	seg->offcap = cap;
	return 0;
}

/* Notes that record index of seg is at offset off; room was reserved (log_sparse_reserve). */
void log_sparse_note(struct log_segment *seg, uint64_t index, uint64_t off)
{
	if ((index - seg->first) % LOG_SPARSE_EVERY == 0) {
		assert(seg->noffs < seg->offcap &&
		       seg->noffs == (index - seg->first) / LOG_SPARSE_EVERY);
		seg->offs[seg->noffs++] = off;
	}
}

/* Drops the last segment from the array (not from the disk), freeing what it owns. */
static void log_pop(struct kvfs_log *log)
{
	assert(log->nsegs > 0);
	log->nsegs--;
	free(log->segs[log->nsegs].offs);
	log->segs[log->nsegs].offs = NULL;
}

static void log_free_segs(struct kvfs_log *log)
{
	while (log->nsegs > 0)
		log_pop(log);
	free(log->segs);
	log->segs = NULL;
	log->cap = 0;
}

/* Removes segment file first. Returns 0 or -errno, with a message. */
int log_unlink(struct kvfs_log *log, uint64_t first, char *err, size_t errlen)
{
	char name[LOG_NAME_SIZE];

	seg_name(name, first);
	if (unlinkat(log->dirfd, name, 0) != 0) {
		int rv = -errno;

		log_err(err, errlen, "%s/%s: cannot remove: %s", log->dir, name, strerror(-rv));
		return rv;
	}
	return 0;
}

int log_sync_dir(struct kvfs_log *log, char *err, size_t errlen)
{
	if (fsync(log->dirfd) != 0) {
		int rv = -errno;

		log_err(err, errlen, "cannot fsync log directory %s: %s", log->dir, strerror(-rv));
		return rv;
	}
	return 0;
}

/*
 * Removes the segments after segs[keep - 1] from the disk and the array, the last one first, with
 * a directory sync after each removal: a crash at any point leaves a prefix of the log, never a
 * gap (removals that reach the disk out of order would leave one). Returns 0 or a negative errno
 * with a message; the array then still holds the segments not yet removed.
 */
int log_drop_after(struct kvfs_log *log, size_t keep, char *err, size_t errlen)
{
	while (log->nsegs > keep) {
		int rv = log_unlink(log, log->segs[log->nsegs - 1].first, err, errlen);

		if (rv != 0)
			return rv;
		log->bytes -= log->segs[log->nsegs - 1].size;
		log_pop(log);
		rv = log_sync_dir(log, err, errlen);
		if (rv != 0)
			return rv;
	}
	return 0;
}

/* Creates dir if it does not exist, making its entry durable. */
static int log_mkdir(const char *dir, char *err, size_t errlen)
{
	char *parent, *slash;
	int fd, rv = 0;

	if (mkdir(dir, KVFS_DIR_MODE) != 0) {
		if (errno == EEXIST)
			return 0;
		rv = -errno;
		log_err(err, errlen, "cannot create log directory %s: %s", dir, strerror(-rv));
		return rv;
	}
	parent = strdup(dir);
	if (parent == NULL) {
		log_err(err, errlen, "out of memory creating log directory %s", dir);
		return -ENOMEM;
	}
	while ((slash = strrchr(parent, '/')) != NULL && slash[1] == '\0' && slash != parent)
		*slash = '\0'; /* trailing slashes */
	slash = strrchr(parent, '/');
	if (slash == NULL)
		strcpy(parent, ".");
	else if (slash == parent)
		parent[1] = '\0';
	else
		*slash = '\0';
	fd = open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || fsync(fd) != 0) {
		rv = -errno;
		log_err(err, errlen, "cannot fsync %s after creating %s: %s", parent, dir,
		        strerror(-rv));
	}
	if (fd >= 0)
		close(fd);
	free(parent);
	return rv;
}

int log_open(struct kvfs_log **out, const char *dir, const struct kvfs_log_options *opts,
             kvfs_log_replay_fn fn, void *arg, char *err, size_t errlen)
{
	struct kvfs_log *log;
	int rv;

	if (out == NULL || dir == NULL || dir[0] == '\0') {
		log_err(err, errlen, "log_open: no directory given");
		return -EINVAL;
	}
	rv = log_mkdir(dir, err, errlen);
	if (rv != 0)
		return rv;
	log = calloc(1, sizeof(*log));
	if (log == NULL)
		goto err_nomem;
	log->fd = -1;
	log->segment_bytes = opts != NULL && opts->segment_bytes != 0
	                         ? opts->segment_bytes
	                         : KVFS_LOG_SEGMENT_BYTES_DEFAULT;
	log->dir = strdup(dir);
	if (log->dir == NULL)
		goto err_free_log;
	log->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (log->dirfd < 0) {
		rv = -errno;
		log_err(err, errlen, "cannot open log directory %s: %s", dir, strerror(-rv));
		goto err_free_dir;
	}
	rv = log_recover(log, fn, arg, err, errlen);
	if (rv != 0)
		goto err_close_dirfd;
	log->bytes = 0;
	for (size_t i = 0; i < log->nsegs; i++)
		log->bytes += log->segs[i].size;
	if (log->nsegs > 0) {
		char name[LOG_NAME_SIZE];

		log->next = log->segs[log->nsegs - 1].last + 1;
		seg_name(name, log->segs[log->nsegs - 1].first);
		log->fd = disk_openat(log->dirfd, name, O_WRONLY, 0);
		if (log->fd < 0) {
			rv = log->fd;
			log_err(err, errlen, "%s/%s: cannot open for writing: %s", dir, name,
			        strerror(-rv));
			goto err_close_dirfd;
		}
	}
	*out = log;
	return 0;

err_close_dirfd:
	close(log->dirfd);
err_free_dir:
	log_free_segs(log);
	free(log->dir);
	free(log);
	return rv;
err_free_log:
	free(log);
err_nomem:
	log_err(err, errlen, "out of memory opening log %s", dir);
	return -ENOMEM;
}

void log_close(struct kvfs_log *log)
{
	if (log == NULL)
		return;
	if (log->fd >= 0)
		close(log->fd);
	close(log->dirfd);
	log_free_segs(log);
	free(log->dir);
	free(log);
}

uint64_t log_first_index(const struct kvfs_log *log)
{
	return log->nsegs > 0 ? log->segs[0].first : 0;
}

uint64_t log_last_index(const struct kvfs_log *log)
{
	return log->next > 0 ? log->next - 1 : 0;
}

uint64_t log_bytes(const struct kvfs_log *log)
{
	return log->bytes;
}

/* Whether buf holds exactly the sealed records first..last, each one that recovery would accept. */
static bool batch_valid(const uint8_t *buf, size_t len, uint64_t first, uint64_t last)
{
	uint64_t want = first;
	size_t off = 0;

	while (off < len) {
		struct kvfs_log_record rec;

		if (want > last || !record_parse(buf + off, len - off, &rec) || rec.index != want)
			return false;
		off += log_record_size(rec.len);
		want++;
	}
	return want == last + 1;
}

int log_append_batch(struct kvfs_log *log, const uint8_t *buf, size_t len, uint64_t first,
                     uint64_t last)
{
	struct log_segment *active = log->nsegs > 0 ? &log->segs[log->nsegs - 1] : NULL;
	struct log_segment fresh = {.first = first, .last = last, .size = len, .offs = NULL};
	struct log_segment *seg;
	char name[LOG_NAME_SIZE];
	bool rotate, undone;
	uint64_t off;
	size_t p;
	int fd, rv;

	if (log->broken)
		return -EIO;
	if (buf == NULL || len == 0 || first == 0 || first > last)
		return -EINVAL;
	if (log->next != 0 && first != log->next)
		return -EINVAL;
	if (!batch_valid(buf, len, first, last))
		return -EINVAL;

	rotate = active == NULL || active->size >= log->segment_bytes;
	seg = rotate ? &fresh : active;
	/* all allocation before the write: nothing may fail once the batch is durable */
	rv = log_sparse_reserve(seg, last);
	if (rv == 0 && rotate)
		rv = log_reserve(log, log->nsegs + 1);
	if (rv != 0)
		goto err_free_fresh;
	if (rotate) {
		seg_name(name, first);
		/* Out of descriptors (-EMFILE) fails this batch with nothing changed: the caller
		 * may try again (disk_transient()). */
		fd = disk_openat(log->dirfd, name, O_WRONLY | O_CREAT | O_EXCL, KVFS_FILE_MODE);
		if (fd < 0) {
			rv = fd;
			goto err_free_fresh;
		}
		off = 0;
	} else {
		fd = log->fd;
		off = active->size;
	}

	rv = write_all(fd, buf, len, off);
	if (rv != 0)
		goto err_rollback;
	if (fdatasync(fd) != 0 || (rotate && fsync(log->dirfd) != 0)) {
		/* the kernel may have dropped the dirty pages: nothing on disk can be trusted */
		log->broken = true;
		rv = -EIO;
		goto err_close_new;
	}

	for (p = 0; p < len; p += log_record_size(get_le32(buf + p + 4)))
		log_sparse_note(seg, get_le64(buf + p + 16), off + p);
	if (rotate) {
		if (log->fd >= 0)
			close(log->fd);
		log->fd = fd;
		log->segs[log->nsegs++] = fresh;
	} else {
		active->last = last;
		active->size += len;
	}
	log->bytes += len;
	log->next = last + 1;
	return 0;

err_rollback:
	/* nothing of the batch may survive, even a crash: the caller is told that it failed */
	if (rotate)
		undone = unlinkat(log->dirfd, name, 0) == 0 && fsync(log->dirfd) == 0;
	else
		undone = ftruncate(fd, (off_t)off) == 0 && fdatasync(fd) == 0;
	if (!undone) {
		log->broken = true;
		rv = -EIO;
	}
err_close_new:
	if (rotate)
		close(fd);
err_free_fresh:
	free(fresh.offs);
	return rv;
}

int log_compact(struct kvfs_log *log, uint64_t upto)
{
	size_t n = 0;
	int rv = 0;

	/* one directory sync per removal, so that a crash can only leave a contiguous suffix */
	while (n + 1 < log->nsegs && log->segs[n].last <= upto) {
		rv = log_unlink(log, log->segs[n].first, NULL, 0);
		if (rv != 0)
			break;
		log->bytes -= log->segs[n].size;
		n++;
		if (fsync(log->dirfd) != 0) {
			rv = -errno;
			break;
		}
	}
	if (n > 0) {
		for (size_t i = 0; i < n; i++)
			free(log->segs[i].offs);
		memmove(log->segs, log->segs + n, (log->nsegs - n) * sizeof(*log->segs));
		log->nsegs -= n;
	}
	return rv;
}

int log_reset(struct kvfs_log *log, uint64_t next)
{
	int rv = 0;

	if (log->broken)
		return -EIO;
	if (next == 0)
		return -EINVAL;
	/* newest first, one directory sync each: a crash leaves a prefix, which the snapshot
	 * that replaces it covers */
	while (log->nsegs > 0) {
		struct log_segment *seg = &log->segs[log->nsegs - 1];

		rv = log_unlink(log, seg->first, NULL, 0);
		if (rv == 0 && fsync(log->dirfd) != 0)
			rv = -errno;
		if (rv != 0)
			return rv;
		log->bytes -= seg->size;
		free(seg->offs);
		log->nsegs--;
		if (log->nsegs == 0 && log->fd >= 0) {
			close(log->fd);
			log->fd = -1;
		}
	}
	log->next = next;
	return 0;
}

int log_truncate_after(struct kvfs_log *log, uint64_t index)
{
	uint64_t last = log_last_index(log), off = 0;
	char name[LOG_NAME_SIZE];
	size_t s, keep;
	int fd = -1, rv;

	if (log->broken)
		return -EIO;
	if (index < (log->nsegs > 0 ? log->segs[0].first - 1 : last))
		return -EINVAL;
	if (index >= last)
		return 0;
	/* a record above index exists, so there is a segment */
	s = log->nsegs - 1;
	while (log->segs[s].first > index + 1)
		s--;
	if (log->segs[s].first <= index) {
		rv = log_read_offset(log, s, index + 1, &off);
		if (rv != 0)
			return rv;
	}
	keep = off > 0 ? s + 1 : s;
	/* the segment that becomes the active one is opened before anything changes, so that
	 * nothing but I/O can fail once something has */
	if (keep > 0) {
		seg_name(name, log->segs[keep - 1].first);
		fd = disk_openat(log->dirfd, name, O_WRONLY, 0);
		if (fd < 0)
			return fd;
	}
	/* the last segments first, then the cut: a crash in between leaves a prefix of the log
	 * that recovery accepts, and the repeated truncation finishes the job */
	if (log_drop_after(log, keep, NULL, 0) != 0)
		goto err_broken;
	if (off > 0) {
		struct log_segment *seg = &log->segs[s];

		if (ftruncate(fd, (off_t)off) != 0 || fdatasync(fd) != 0)
			goto err_broken;
		log->bytes -= seg->size - off;
		seg->size = off;
		seg->last = index;
		seg->noffs = (size_t)((index - seg->first) / LOG_SPARSE_EVERY) + 1;
	}
	if (log->fd >= 0)
		close(log->fd);
	log->fd = fd;
	log->next = index + 1;
	return 0;

err_broken:
	/* what is on disk is a prefix of the log, but not the one asked for */
	log->broken = true;
	if (fd >= 0)
		close(fd);
	return -EIO;
}
