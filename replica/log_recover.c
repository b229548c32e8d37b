/*
 * Recovery of the write-ahead log at open (see kvfs/log.h for the format and log.c for the rest):
 * lists the segment files of the directory, reads each one whole, delivers its valid records and
 * fills its sparse offset index, and at the first invalid record decides between a torn tail,
 * which is cut, and damage to acknowledged records, which makes open refuse. Every segment left in
 * the array holds at least one record: empty segment files, which a crash right after a rotation
 * can leave, are removed. Everything it changes on disk it changes so that a crash part-way leaves
 * the same state to find again at the next open.
 */
#include "kvfs/log.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kvfs/disk.h"
#include "log_internal.h"

/* Whether name is exactly log-<20 digits>.seg with a first index that fits and is not 0. */
static bool seg_parse_name(const char *name, uint64_t *first)
{
	uint64_t v = 0;

	if (strlen(name) != LOG_NAME_SIZE - 1 || strncmp(name, "log-", 4) != 0 ||
	    strcmp(name + 24, ".seg") != 0)
		return false;
	for (int i = 4; i < 24; i++) {
		unsigned d = (unsigned)(name[i] - '0');

		if (d > 9 || v > (UINT64_MAX - d) / 10)
			return false;
		v = v * 10 + d;
	}
	*first = v;
	return v != 0;
}

/* Reads segment name whole into a new buffer (*buf NULL when empty). Returns 0 or -errno. */
static int read_segment(int dirfd, const char *name, uint8_t **buf, size_t *size)
{
	struct stat st;
	uint8_t *b = NULL;
	size_t got = 0;
	int fd, rv;

	fd = disk_openat(dirfd, name, O_RDONLY, 0);
	if (fd < 0)
		return fd;
	if (fstat(fd, &st) != 0) {
		rv = -errno;
		goto err_close_fd;
	}
	if ((uint64_t)st.st_size > SIZE_MAX / 2) {
		rv = -EFBIG;
		goto err_close_fd;
	}
	if (st.st_size > 0) {
		b = malloc((size_t)st.st_size);
		if (b == NULL) {
			rv = -ENOMEM;
			goto err_close_fd;
		}
	}
	while (got < (size_t)st.st_size) {
		ssize_t n = pread(fd, b + got, (size_t)st.st_size - got, (off_t)got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rv = -errno;
			goto err_free_buf;
		}
		if (n == 0)
			break; /* shrank under us: what we have is what there is */
		got += (size_t)n;
	}
	close(fd);
	*buf = b;
	*size = got;
	return 0;

err_free_buf:
	free(b);
err_close_fd:
	close(fd);
	return rv;
}

static int seg_cmp(const void *a, const void *b)
{
	const struct log_segment *x = a, *y = b;

	return (x->first > y->first) - (x->first < y->first);
}

/* Fills log->segs with the segment files of the directory, sorted, sizes from stat. */
static int log_list(struct kvfs_log *log, char *err, size_t errlen)
{
	struct dirent *de;
	DIR *d;
	int fd, rv = 0;

	fd = dup(log->dirfd);
	if (fd < 0 || (d = fdopendir(fd)) == NULL) {
		rv = -errno;
		if (fd >= 0)
			close(fd);
		log_err(err, errlen, "cannot list log directory %s: %s", log->dir, strerror(-rv));
		return rv;
	}
	while ((errno = 0, de = readdir(d)) != NULL) {
		struct stat st;
		uint64_t first;

		if (!seg_parse_name(de->d_name, &first))
			continue;
		if (fstatat(log->dirfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
			rv = -errno;
			log_err(err, errlen, "%s/%s: cannot stat: %s", log->dir, de->d_name,
			        strerror(-rv));
			goto out_closedir;
		}
		if (!S_ISREG(st.st_mode)) {
			rv = -EBADMSG;
			log_err(err, errlen, "%s/%s: not a regular file; refusing to start",
			        log->dir, de->d_name);
			goto out_closedir;
		}
		rv = log_reserve(log, log->nsegs + 1);
		if (rv != 0) {
			log_err(err, errlen, "out of memory listing log directory %s", log->dir);
			goto out_closedir;
		}
		log->segs[log->nsegs++] = (struct log_segment){
		    .first = first, .last = first - 1, .size = (uint64_t)st.st_size, .offs = NULL};
	}
	if (errno != 0) {
		rv = -errno;
		log_err(err, errlen, "cannot list log directory %s: %s", log->dir, strerror(-rv));
	}
out_closedir:
	closedir(d);
	if (rv == 0 && log->nsegs > 1)
		qsort(log->segs, log->nsegs, sizeof(*log->segs), seg_cmp);
	return rv;
}

/* Drops segs[i] from the array (not from the disk), freeing what it owns. */
static void log_forget(struct kvfs_log *log, size_t i)
{
	free(log->segs[i].offs);
	memmove(&log->segs[i], &log->segs[i + 1], (log->nsegs - i - 1) * sizeof(*log->segs));
	log->nsegs--;
}

/*
 * Looks for a valid record after the invalid one at offset from of segment i (whose bytes are
 * buf) or anywhere in a later segment: one with an index above last_good that the bytes in
 * between could have held (each record takes at least a header). Returns 1 and sets *at_seg and
 * *at_off when there is one, 0 when there is none, a negative errno if a segment cannot be read.
 */
static int log_scan(struct kvfs_log *log, size_t i, const uint8_t *buf, size_t size, uint64_t from,
                    uint64_t last_good, size_t *at_seg, uint64_t *at_off, char *err, size_t errlen)
{
	uint64_t remaining = size - from;
	uint64_t max_ahead;

	for (size_t j = i + 1; j < log->nsegs; j++)
		remaining += log->segs[j].size;
	max_ahead = remaining / KVFS_LOG_HEADER_SIZE + 1;

	for (size_t j = i; j < log->nsegs; j++) {
		char name[LOG_NAME_SIZE];
		uint8_t *own = NULL;
		const uint8_t *b = buf;
		size_t n = size;
		uint64_t p = j == i ? from + 1 : 0;
		int rv;

		if (j > i) {
			seg_name(name, log->segs[j].first);
			rv = read_segment(log->dirfd, name, &own, &n);
			if (rv != 0) {
				log_err(err, errlen, "%s/%s: cannot read: %s", log->dir, name,
				        strerror(-rv));
				return rv;
			}
			b = own;
		}
		for (; p + KVFS_LOG_HEADER_SIZE <= n; p++) {
			struct kvfs_log_record rec;
			uint32_t len = get_le32(b + p + 4);
			uint64_t index = get_le64(b + p + 16);

			/* cheap filters first: this runs at every byte of a damaged region */
			if (len > LOG_PAYLOAD_MAX || log_record_size(len) > n - p)
				continue;
			if (index <= last_good || index - last_good > max_ahead)
				continue;
			if (record_parse(b + p, n - p, &rec)) {
				free(own);
				*at_seg = j;
				*at_off = p;
				return 1;
			}
		}
		free(own);
	}
	return 0;
}

/*
 * Cuts the log at offset off of segment i, where the first invalid record was found and nothing
 * valid follows: later segments go first (so that a crash in between leaves the same damaged tail
 * to find again, never a gap), then segment i is truncated and synced, or removed if nothing is
 * left of it.
 */
static int log_cut(struct kvfs_log *log, size_t i, uint64_t off, char *err, size_t errlen)
{
	char name[LOG_NAME_SIZE];
	int fd, rv;

	/* log->bytes is summed after recovery; log_drop_after's running count is moot here */
	rv = log_drop_after(log, off == 0 ? i : i + 1, err, errlen);
	if (rv != 0 || off == 0)
		return rv;
	seg_name(name, log->segs[i].first);
	fd = disk_openat(log->dirfd, name, O_WRONLY, 0);
	if (fd < 0) {
		rv = fd;
		log_err(err, errlen, "%s/%s: cannot open to cut the torn tail: %s", log->dir, name,
		        strerror(-rv));
		return rv;
	}
	if (ftruncate(fd, (off_t)off) != 0 || fsync(fd) != 0) {
		rv = -errno;
		log_err(err, errlen, "%s/%s: cannot cut the torn tail at offset %" PRIu64 ": %s",
		        log->dir, name, off, strerror(-rv));
		goto err_close_fd;
	}
	close(fd);
	log->segs[i].size = off;
	return 0;

err_close_fd:
	close(fd);
	return rv;
}

/*
 * Deals with the first invalid record, at offset off of segment i (whose size bytes are buf),
 * where index last_good + 1 was due: if no valid record follows it, the log is cut there and 0
 * returned; if one does, -EBADMSG with a message naming both places; another errno on I/O errors.
 */
static int log_end_at(struct kvfs_log *log, size_t i, const uint8_t *buf, size_t size, uint64_t off,
                      uint64_t last_good, char *err, size_t errlen)
{
	char name[LOG_NAME_SIZE], at[LOG_NAME_SIZE];
	size_t at_seg = 0;
	uint64_t at_off = 0;
	int rv;

	rv = log_scan(log, i, buf, size, off, last_good, &at_seg, &at_off, err, errlen);
	if (rv < 0)
		return rv;
	if (rv == 0)
		return log_cut(log, i, off, err, errlen);
	seg_name(name, log->segs[i].first);
	seg_name(at, log->segs[at_seg].first);
	log_err(err, errlen,
	        "%s/%s: record at offset %" PRIu64 " (index %" PRIu64 ") is damaged but valid "
	        "records follow at offset %" PRIu64 "%s%s; refusing to start: acknowledged writes "
	        "would be lost",
	        log->dir, name, off, last_good + 1, at_off, at_seg == i ? "" : " of ",
	        at_seg == i ? "" : at);
	return -EBADMSG;
}

/*
 * Reads every segment in order, delivering valid records to fn, and ends the log at the first
 * invalid record if nothing valid follows it. Leaves in log->segs only segments with records,
 * with their last index and size set. Returns 0, fn's non-zero value, -EBADMSG for damage or a
 * gap, or another negative errno; a message in err for all but fn's value.
 */
static int log_replay_segments(struct kvfs_log *log, kvfs_log_replay_fn fn, void *arg, char *err,
                               size_t errlen)
{
	uint64_t last_good = 0;
	bool have_prev = false;
	size_t i = 0;
	int rv;

	while (i < log->nsegs) {
		struct log_segment *seg = &log->segs[i];
		char name[LOG_NAME_SIZE];
		uint8_t *buf = NULL;
		size_t size = 0;
		uint64_t off = 0;

		seg_name(name, seg->first);
		if (seg->size == 0) {
			/* created just before a crash, never written: no record lost */
			rv = log_unlink(log, seg->first, err, errlen);
			if (rv == 0)
				rv = log_sync_dir(log, err, errlen);
			if (rv != 0)
				return rv;
			log_forget(log, i);
			continue;
		}
		if (have_prev && seg->first != last_good + 1) {
			char prev[LOG_NAME_SIZE];

			seg_name(prev, log->segs[i - 1].first);
			log_err(
			    err, errlen,
			    "%s/%s: starts at index %" PRIu64 " but %s ends at index %" PRIu64
			    ": the segments do not follow on (a segment is missing or misnamed); "
			    "refusing to start",
			    log->dir, name, seg->first, prev, last_good);
			return -EBADMSG;
		}
		if (!have_prev)
			last_good = seg->first - 1;
		have_prev = true;

		rv = read_segment(log->dirfd, name, &buf, &size);
		if (rv != 0) {
			log_err(err, errlen, "%s/%s: cannot read: %s", log->dir, name,
			        strerror(-rv));
			return rv;
		}
		seg->size = size;
		while (off < size) {
			struct kvfs_log_record rec;

			if (!record_parse(buf + off, size - off, &rec) ||
			    rec.index != last_good + 1)
				break;
			if (log_sparse_reserve(seg, rec.index) != 0) {
				free(buf);
				log_err(err, errlen, "out of memory indexing log segment %s/%s",
				        log->dir, name);
				return -ENOMEM;
			}
			log_sparse_note(seg, rec.index, off);
			if (fn != NULL) {
				rv = fn(arg, &rec);
				if (rv != 0) {
					free(buf);
					return rv;
				}
			}
			last_good = rec.index;
			seg->last = rec.index;
			off += log_record_size(rec.len);
		}
		if (off < size) {
			rv = log_end_at(log, i, buf, size, off, last_good, err, errlen);
			free(buf);
			return rv;
		}
		free(buf);
		i++;
	}
	return 0;
}

int log_recover(struct kvfs_log *log, kvfs_log_replay_fn fn, void *arg, char *err, size_t errlen)
{
	int rv;

	rv = log_list(log, err, errlen);
	if (rv != 0)
		return rv;
	return log_replay_segments(log, fn, arg, err, errlen);
}
