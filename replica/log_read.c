/*
 * Reading the write-ahead log back (see kvfs/log.h): for followers catching up, and to find where
 * log_truncate_after cuts. The in-memory array of segments (first, last, size) says which file
 * holds an index; each segment's sparse offset index (the offset of every LOG_SPARSE_EVERYth
 * record, kept at open (log_recover.c) and on append (log.c)) says where to start in it, so that at
 * most LOG_SPARSE_EVERY - 1 headers are skipped. The files are read with pread, in chunks, and
 * every record delivered has its length, checksum and index checked again: the bytes come from the
 * disk, not from what recovery saw.
 */
#include "kvfs/log.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include "kvfs/disk.h"
#include "log_internal.h"

/* Bytes read at a time; a record larger than this is read whole. */
#define READ_CHUNK (64u << 10)

/* One segment file open for reading, and a window of its bytes. */
struct reader {
	int fd;
	uint64_t size; /* of the segment, as the log knows it */
	uint8_t *buf;
	size_t cap;
	uint64_t at; /* file offset of buf[0] */
	size_t have; /* valid bytes in buf */
};

static int reader_open(struct kvfs_log *log, size_t s, struct reader *r)
{
	char name[LOG_NAME_SIZE];

	seg_name(name, log->segs[s].first);
	r->fd = disk_openat(log->dirfd, name, O_RDONLY, 0);
	if (r->fd < 0)
		return r->fd;
	r->size = log->segs[s].size;
	r->have = 0;
	return 0;
}

static void reader_close(struct reader *r)
{
	if (r->fd >= 0)
		close(r->fd);
	r->fd = -1;
}

/*
 * Makes bytes [off, off + n) of the segment available at *p, valid until the next call. Returns
 * 0, -EBADMSG if they lie beyond the segment's known size or the file is shorter than that,
 * -ENOMEM, or the errno of pread.
 */
static int reader_get(struct reader *r, uint64_t off, size_t n, const uint8_t **p)
{
	size_t want, got = 0;

	if (off > r->size || n > r->size - off)
		return -EBADMSG;
	if (off >= r->at && off - r->at <= r->have && n <= r->have - (off - r->at)) {
		*p = r->buf + (off - r->at);
		return 0;
	}
	want = n > READ_CHUNK ? n : READ_CHUNK;
	if (want > r->size - off)
		want = (size_t)(r->size - off);
	if (want > r->cap) {
		uint8_t *b = realloc(r->buf, want);

		if (b == NULL)
			return -ENOMEM;
		r->buf = b;
		r->cap = want;
	}
	r->at = off;
	r->have = 0;
	while (got < want) {
		ssize_t k = pread(r->fd, r->buf + got, want - got, (off_t)(off + got));

		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			return -errno;
		if (k == 0)
			break;
		got += (size_t)k;
	}
	r->have = got;
	if (got < n)
		return -EBADMSG; /* the file is shorter than what was written to it */
	*p = r->buf;
	return 0;
}

/*
 * Sets *off to the offset of record index in segment seg (open in r): from the sparse index entry
 * at or below it, over the headers in between, each of which must carry the expected index.
 */
static int reader_seek(struct reader *r, const struct log_segment *seg, uint64_t index,
                       uint64_t *off)
{
	uint64_t k = (index - seg->first) / LOG_SPARSE_EVERY;
	uint64_t o, i;

	assert(index >= seg->first && index <= seg->last && k < seg->noffs);
	o = seg->offs[k];
	for (i = seg->first + k * LOG_SPARSE_EVERY;; i++) {
		const uint8_t *h;
		int rv = reader_get(r, o, KVFS_LOG_HEADER_SIZE, &h);

		if (rv != 0)
			return rv;
		if (get_le64(h + 16) != i || get_le32(h + 4) > LOG_PAYLOAD_MAX)
			return -EBADMSG;
		if (i == index)
			break;
		o += log_record_size(get_le32(h + 4));
	}
	*off = o;
	return 0;
}

int log_read_offset(struct kvfs_log *log, size_t s, uint64_t index, uint64_t *off)
{
	struct reader r = {.fd = -1};
	int rv;

	rv = reader_open(log, s, &r);
	if (rv == 0)
		rv = reader_seek(&r, &log->segs[s], index, off);
	reader_close(&r);
	free(r.buf);
	return rv;
}

/* The segment holding index, which the log holds. */
static size_t find_segment(const struct kvfs_log *log, uint64_t index)
{
	size_t lo = 0, hi = log->nsegs - 1;

	while (lo < hi) {
		size_t mid = lo + (hi - lo + 1) / 2;

		if (log->segs[mid].first <= index)
			lo = mid;
		else
			hi = mid - 1;
	}
	return lo;
}

int log_read(struct kvfs_log *log, uint64_t from, uint64_t to, kvfs_log_replay_fn fn, void *arg)
{
	struct reader r = {.fd = -1};
	uint64_t last = log_last_index(log), want = from;
	size_t s;
	int rv = 0;

	if (log->broken)
		return -EIO;
	if (fn == NULL || from == 0 || from > to)
		return -EINVAL;
	if (log->nsegs > 0 ? from < log->segs[0].first : from <= last)
		return -ENOENT;
	if (to > last)
		to = last;
	if (from > to)
		return 0;
	for (s = find_segment(log, from); want <= to; s++) {
		const struct log_segment *seg = &log->segs[s];
		uint64_t off;

		assert(s < log->nsegs && seg->first <= want && want <= seg->last);
		rv = reader_open(log, s, &r);
		if (rv == 0)
			rv = reader_seek(&r, seg, want, &off);
		for (; rv == 0 && want <= to && want <= seg->last; want++) {
			struct kvfs_log_record rec;
			const uint8_t *p;
			size_t size;

			rv = reader_get(&r, off, KVFS_LOG_HEADER_SIZE, &p);
			if (rv != 0)
				break;
			if (get_le32(p + 4) > LOG_PAYLOAD_MAX) {
				rv = -EBADMSG;
				break;
			}
			size = log_record_size(get_le32(p + 4));
			rv = reader_get(&r, off, size, &p);
			if (rv != 0)
				break;
			if (!record_parse(p, size, &rec) || rec.index != want) {
				rv = -EBADMSG;
				break;
			}
			rv = fn(arg, &rec);
			off += size;
		}
		reader_close(&r);
		if (rv != 0)
			break;
	}
	free(r.buf);
	return rv;
}
