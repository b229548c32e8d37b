/*
 * The write-ahead log (see kvfs/log.h for the format and the rules): a directory of segment files
 * log-<first index>.seg, kept in memory as an array of (first, last, size), of which the last is
 * the active segment, open for writing. A batch goes to the active segment with one pwrite at its
 * known end and one fdatasync; a batch that finds the active segment full first starts a new one
 * (O_EXCL, then the directory is fsynced with the batch). Recovery reads each segment whole,
 * delivers its valid records, and at the first invalid one decides between a torn tail (cut) and
 * damage to acknowledged records (refuse). Every segment in the array holds at least one record:
 * empty segment files, which a crash right after a rotation can leave, are removed at open.
 * Each segment also keeps a sparse index of record offsets (every LOG_SPARSE_EVERYth record),
 * filled during recovery and on append, trimmed by truncation, which log_read.c uses to find a
 * record without scanning the whole segment. Truncation removes later segments one at a time
 * (each removal made durable before the next) and then cuts the segment that keeps the new last
 * record, so that every crash state is a prefix of the log.
 */
#include "kvfs/log.h"

#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kvfs/crc32c.h"
#include "log_internal.h"

__attribute__((format(printf, 3, 4))) static void log_err(char *err, size_t errlen, const char *fmt,
                                                          ...)
{
	va_list ap;

	if (err == NULL || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

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

/* Reads segment name whole into a new buffer (*buf NULL when empty). Returns 0 or -errno. */
static int read_segment(int dirfd, const char *name, uint8_t **buf, size_t *size)
{
	struct stat st;
	uint8_t *b = NULL;
	size_t got = 0;
	int fd, rv;

	fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
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

/* Makes room for n segments in log->segs. Returns 0 or -ENOMEM (log unchanged). */
static int log_reserve(struct kvfs_log *log, size_t n)
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
static int sparse_reserve(struct log_segment *seg, uint64_t last)
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

/* Notes that record index of seg is at offset off; room was reserved (sparse_reserve). */
static void sparse_note(struct log_segment *seg, uint64_t index, uint64_t off)
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

/* Removes segment file first. Returns 0 or -errno, with a message. */
static int log_unlink(struct kvfs_log *log, uint64_t first, char *err, size_t errlen)
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

static int log_sync_dir(struct kvfs_log *log, char *err, size_t errlen)
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
static int log_drop_after(struct kvfs_log *log, size_t keep, char *err, size_t errlen)
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
	fd = openat(log->dirfd, name, O_WRONLY | O_CLOEXEC);
	if (fd < 0) {
		rv = -errno;
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
static int log_recover(struct kvfs_log *log, kvfs_log_replay_fn fn, void *arg, char *err,
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
			if (sparse_reserve(seg, rec.index) != 0) {
				free(buf);
				log_err(err, errlen, "out of memory indexing log segment %s/%s",
				        log->dir, name);
				return -ENOMEM;
			}
			sparse_note(seg, rec.index, off);
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

/* Creates dir if it does not exist, making its entry durable. */
static int log_mkdir(const char *dir, char *err, size_t errlen)
{
	char *parent, *slash;
	int fd, rv = 0;

	if (mkdir(dir, 0755) != 0) {
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
	rv = log_list(log, err, errlen);
	if (rv != 0)
		goto err_close_dirfd;
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
		log->fd = openat(log->dirfd, name, O_WRONLY | O_CLOEXEC);
		if (log->fd < 0) {
			rv = -errno;
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
	rv = sparse_reserve(seg, last);
	if (rv == 0 && rotate)
		rv = log_reserve(log, log->nsegs + 1);
	if (rv != 0)
		goto err_free_fresh;
	if (rotate) {
		seg_name(name, first);
		fd = openat(log->dirfd, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
		if (fd < 0) {
			rv = -errno;
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
		sparse_note(seg, get_le64(buf + p + 16), off + p);
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
		fd = openat(log->dirfd, name, O_WRONLY | O_CLOEXEC);
		if (fd < 0)
			return -errno;
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
