/*
 * Unit tests for replica/log.c, each in a fresh mkdtemp directory: round trips, rotation,
 * compaction, argument checks, and recovery: a cut at every byte of the last records, zero-filled
 * tails and bit flips in the last record are torn tails that must be cut back to the longest valid
 * prefix; bit flips in any earlier record, in any segment, and gaps between segments must be
 * refused with -EBADMSG. A write that fails (EFBIG under RLIMIT_FSIZE) must leave nothing behind.
 * Truncation at every index (mid-segment, at and just after segment boundaries, across segments,
 * to nothing) keeps exactly the prefix, across appends and reopens, and every state a crash can
 * leave in the middle of it reopens as a prefix. Reading back gives what recovery replayed, over
 * any range, across segments and sparse index entries, refuses compacted indices (-ENOENT) and
 * damaged records (-EBADMSG).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kvfs/crc32c.h"
#include "kvfs/log.h"

#define MAXSEG 64
#define MAXREC 256

/* What each record holds is a function of its index, so replay can check every byte. */
static uint32_t payload_len(uint64_t index)
{
	return (uint32_t)((index * 37 + 11) % 90);
}

static uint64_t record_epoch(uint64_t index)
{
	return 1 + index / 10;
}

static uint8_t payload_byte(uint64_t index, uint32_t j)
{
	return (uint8_t)(index * 131 + j * 7 + 3);
}

/* Sealed records first..last in one new buffer of *len bytes. */
static uint8_t *make_batch(uint64_t first, uint64_t last, size_t *len)
{
	size_t total = 0, off = 0;
	uint8_t *buf;

	for (uint64_t i = first; i <= last; i++)
		total += log_record_size(payload_len(i));
	buf = malloc(total);
	assert_non_null(buf);
	for (uint64_t i = first; i <= last; i++) {
		uint32_t n = payload_len(i);

		for (uint32_t j = 0; j < n; j++)
			buf[off + KVFS_LOG_HEADER_SIZE + j] = payload_byte(i, j);
		log_record_seal(buf + off, record_epoch(i), i, n);
		off += log_record_size(n);
	}
	*len = total;
	return buf;
}

static void append_range(struct kvfs_log *log, uint64_t first, uint64_t last)
{
	size_t len;
	uint8_t *buf = make_batch(first, last, &len);

	assert_int_equal(log_append_batch(log, buf, len, first, last), 0);
	free(buf);
	assert_int_equal(log_last_index(log), last);
}

struct replay {
	uint64_t count;
	uint64_t first;
	uint64_t last;
	uint64_t stop_at; /* return -ECANCELED at this index; 0 = never */
};

static int replay_fn(void *arg, const struct kvfs_log_record *rec)
{
	struct replay *r = arg;

	if (r->count > 0 && rec->index != r->last + 1)
		return -EPROTO;
	if (rec->epoch != record_epoch(rec->index) || rec->len != payload_len(rec->index))
		return -EPROTO;
	for (uint32_t j = 0; j < rec->len; j++)
		if (rec->payload[j] != payload_byte(rec->index, j))
			return -EPROTO;
	if (rec->index == r->stop_at)
		return -ECANCELED;
	if (r->count == 0)
		r->first = rec->index;
	r->last = rec->index;
	r->count++;
	return 0;
}

static int open_log(struct kvfs_log **log, const char *dir, uint64_t segment_bytes,
                    struct replay *r, char *err, size_t errlen)
{
	struct kvfs_log_options opts = {.segment_bytes = segment_bytes};

	memset(r, 0, sizeof(*r));
	err[0] = '\0';
	return log_open(log, dir, &opts, replay_fn, r, err, errlen);
}

/* Opens dir, expecting success and exactly the records first..last (none when last == 0). */
static struct kvfs_log *open_expect(const char *dir, uint64_t segment_bytes, uint64_t first,
                                    uint64_t last)
{
	struct kvfs_log *log = NULL;
	struct replay r;
	char err[512];
	int rv = open_log(&log, dir, segment_bytes, &r, err, sizeof(err));

	if (rv != 0)
		fail_msg("log_open(%s) = %d: %s", dir, rv, err);
	assert_non_null(log);
	if (last == 0) {
		assert_int_equal(r.count, 0);
		assert_int_equal(log_first_index(log), 0);
		assert_int_equal(log_last_index(log), 0);
	} else {
		assert_int_equal(r.count, last - first + 1);
		assert_int_equal(r.first, first);
		assert_int_equal(r.last, last);
		assert_int_equal(log_first_index(log), first);
		assert_int_equal(log_last_index(log), last);
	}
	return log;
}

/* Opens dir, expecting -EBADMSG and a message naming file and containing "offset" if given. */
static void open_refused(const char *dir, const char *file, bool offset)
{
	struct kvfs_log *log = NULL;
	struct replay r;
	char err[512];
	int rv = open_log(&log, dir, 0, &r, err, sizeof(err));

	if (rv != -EBADMSG)
		fail_msg("log_open = %d (%s), want -EBADMSG", rv, err);
	assert_null(log);
	if (file != NULL && strstr(err, file) == NULL)
		fail_msg("message does not name %s: %s", file, err);
	if (offset && strstr(err, "offset") == NULL)
		fail_msg("message does not say offset: %s", err);
}

/* ---- directories and files ---- */

static char *make_dir(void)
{
	const char *tmp = getenv("TMPDIR");
	char *dir;

	assert_true(asprintf(&dir, "%s/kvfs-test-log-XXXXXX", tmp ? tmp : "/tmp") > 0);
	assert_non_null(mkdtemp(dir));
	return dir;
}

static void clear_dir(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;

	assert_non_null(d);
	while ((de = readdir(d)) != NULL) {
		char path[512];

		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		assert_int_equal(unlink(path), 0);
	}
	closedir(d);
}

static void remove_dir(char *dir)
{
	clear_dir(dir);
	assert_int_equal(rmdir(dir), 0);
	free(dir);
}

static void write_file(const char *dir, const char *name, const uint8_t *buf, size_t len)
{
	char path[512];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	assert_true(fd >= 0);
	if (len > 0)
		assert_int_equal(write(fd, buf, len), (ssize_t)len);
	close(fd);
}

static uint8_t *read_file(const char *dir, const char *name, size_t *len)
{
	char path[512];
	struct stat st;
	uint8_t *buf;
	int fd;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fd = open(path, O_RDONLY);
	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &st), 0);
	buf = malloc((size_t)st.st_size + 1);
	assert_non_null(buf);
	assert_int_equal(read(fd, buf, (size_t)st.st_size), st.st_size);
	close(fd);
	*len = (size_t)st.st_size;
	return buf;
}

static void patch_file(const char *dir, const char *name, size_t off, const void *bytes, size_t len)
{
	char path[512];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fd = open(path, O_WRONLY);
	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, bytes, len, (off_t)off), (ssize_t)len);
	close(fd);
}

static bool file_exists(const char *dir, const char *name)
{
	char path[512];

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	return access(path, F_OK) == 0;
}

static int seg_filter(const struct dirent *de)
{
	return strncmp(de->d_name, "log-", 4) == 0;
}

/* ---- a snapshot of a log directory and the place of each record in it ---- */

struct image {
	size_t nseg;
	char name[MAXSEG][256];
	uint8_t *data[MAXSEG];
	size_t len[MAXSEG];
	uint64_t start[MAXSEG]; /* offset of the segment in the concatenation */
	size_t nrec;
	struct {
		size_t seg;
		size_t off; /* in its segment */
		size_t size;
		uint64_t index;
	} rec[MAXREC];
};

static void image_load(struct image *im, const char *dir)
{
	struct dirent **list;
	int n = scandir(dir, &list, seg_filter, alphasort);
	uint64_t pos = 0;

	assert_true(n > 0 && n <= MAXSEG);
	memset(im, 0, sizeof(*im));
	im->nseg = (size_t)n;
	for (int s = 0; s < n; s++) {
		size_t off = 0;

		snprintf(im->name[s], sizeof(im->name[s]), "%s", list[s]->d_name);
		free(list[s]);
		im->data[s] = read_file(dir, im->name[s], &im->len[s]);
		im->start[s] = pos;
		pos += im->len[s];
		while (off < im->len[s]) {
			uint32_t len;

			assert_true(im->nrec < MAXREC);
			memcpy(&len, im->data[s] + off + 4, 4); /* little-endian host */
			im->rec[im->nrec].seg = (size_t)s;
			im->rec[im->nrec].off = off;
			im->rec[im->nrec].size = log_record_size(len);
			memcpy(&im->rec[im->nrec].index, im->data[s] + off + 16, 8);
			off += log_record_size(len);
			im->nrec++;
		}
		assert_int_equal(off, im->len[s]);
	}
	free(list);
}

static void image_free(struct image *im)
{
	for (size_t s = 0; s < im->nseg; s++)
		free(im->data[s]);
}

/* Replaces dir's contents with the image cut to its first cut bytes (a segment the cut falls
 * at the very start of is left as an empty file, as a crash right after a rotation would). */
static void image_store_cut(const struct image *im, const char *dir, uint64_t cut)
{
	clear_dir(dir);
	for (size_t s = 0; s < im->nseg && im->start[s] <= cut; s++) {
		size_t len = im->len[s];

		if (cut - im->start[s] < len)
			len = (size_t)(cut - im->start[s]);
		write_file(dir, im->name[s], im->data[s], len);
	}
}

static void image_restore_seg(const struct image *im, const char *dir, size_t s)
{
	write_file(dir, im->name[s], im->data[s], im->len[s]);
}

/* Builds a log of records 1..n in batches of varying size under small segments. */
#define SEG_BYTES 700u
static void build_log(const char *dir, uint64_t n)
{
	static const uint64_t sizes[] = {1, 3, 2, 5, 1, 4, 7, 2, 1, 1, 6};
	struct kvfs_log *log = open_expect(dir, SEG_BYTES, 0, 0);
	uint64_t next = 1;

	for (size_t k = 0; next <= n; k++) {
		uint64_t last = next + sizes[k % (sizeof(sizes) / sizeof(sizes[0]))] - 1;

		if (last > n)
			last = n;
		append_range(log, next, last);
		next = last + 1;
	}
	log_close(log);
}

/* ---- tests ---- */

static void test_roundtrip(void **state)
{
	char *dir = make_dir();
	struct kvfs_log *log = open_expect(dir, 0, 0, 0);
	uint64_t bytes = 0;

	assert_int_equal(log_bytes(log), 0);
	append_range(log, 1, 1);
	append_range(log, 2, 4);
	append_range(log, 5, 11);
	append_range(log, 12, 13);
	assert_int_equal(log_first_index(log), 1);
	for (uint64_t i = 1; i <= 13; i++)
		bytes += log_record_size(payload_len(i));
	assert_int_equal(log_bytes(log), bytes);
	log_close(log);

	log = open_expect(dir, 0, 1, 13);
	assert_int_equal(log_bytes(log), bytes);
	append_range(log, 14, 20);
	log_close(log);
	log = open_expect(dir, 0, 1, 20);
	log_close(log);
	assert_true(file_exists(dir, "log-00000000000000000001.seg"));
	remove_dir(dir);
}

/* An empty log accepts any first index, and its segment is named after it. */
static void test_first_index_any(void **state)
{
	char *dir = make_dir();
	struct kvfs_log *log = open_expect(dir, 0, 0, 0);

	append_range(log, 1000, 1002);
	log_close(log);
	assert_true(file_exists(dir, "log-00000000000000001000.seg"));
	log = open_expect(dir, 0, 1000, 1002);
	log_close(log);
	remove_dir(dir);
}

/* A log directory that does not exist yet is created. */
static void test_creates_dir(void **state)
{
	char *dir = make_dir();
	char *sub;
	struct kvfs_log *log;

	assert_true(asprintf(&sub, "%s/sub", dir) > 0);
	log = open_expect(sub, 0, 0, 0);
	append_range(log, 1, 2);
	log_close(log);
	log = open_expect(sub, 0, 1, 2);
	log_close(log);
	clear_dir(sub);
	assert_int_equal(rmdir(sub), 0);
	free(sub);
	remove_dir(dir);
}

static void test_bad_arguments(void **state)
{
	char *dir = make_dir();
	struct kvfs_log *log = open_expect(dir, 0, 0, 0);
	size_t len;
	uint8_t *buf = make_batch(1, 3, &len);

	assert_int_equal(log_append_batch(log, buf, len, 0, 2), -EINVAL);     /* index 0 */
	assert_int_equal(log_append_batch(log, buf, len, 1, 2), -EINVAL);     /* holds 3 */
	assert_int_equal(log_append_batch(log, buf, len, 1, 4), -EINVAL);     /* holds 3 */
	assert_int_equal(log_append_batch(log, buf, len, 2, 4), -EINVAL);     /* holds 1..3 */
	assert_int_equal(log_append_batch(log, buf, len - 1, 1, 3), -EINVAL); /* short */
	buf[30] ^= 1;
	assert_int_equal(log_append_batch(log, buf, len, 1, 3), -EINVAL); /* bad crc */
	buf[30] ^= 1;
	assert_int_equal(log_append_batch(log, buf, 0, 1, 3), -EINVAL);
	assert_int_equal(log_append_batch(log, buf, len, 1, 3), 0);
	free(buf);
	buf = make_batch(5, 5, &len);
	assert_int_equal(log_append_batch(log, buf, len, 5, 5), -EINVAL); /* not last + 1 */
	free(buf);
	buf = make_batch(3, 3, &len);
	assert_int_equal(log_append_batch(log, buf, len, 3, 3), -EINVAL); /* already there */
	free(buf);
	append_range(log, 4, 4);
	log_close(log);
	log = open_expect(dir, 0, 1, 4);
	log_close(log);
	remove_dir(dir);
}

static void test_rotation(void **state)
{
	char *dir = make_dir();
	struct image im;
	struct kvfs_log *log;
	uint64_t total = 0;

	build_log(dir, 120);
	image_load(&im, dir);
	assert_true(im.nseg >= 5);
	assert_int_equal(im.nrec, 120);
	for (size_t s = 0; s < im.nseg; s++) {
		uint64_t first = 0;

		/* named after the first record; each but the last reached SEG_BYTES */
		for (size_t k = 0; k < im.nrec; k++)
			if (im.rec[k].seg == s && im.rec[k].off == 0)
				first = im.rec[k].index;
		assert_int_equal(strtoull(im.name[s] + 4, NULL, 10), first);
		if (s + 1 < im.nseg)
			assert_true(im.len[s] >= SEG_BYTES);
		total += im.len[s];
	}
	log = open_expect(dir, SEG_BYTES, 1, 120);
	assert_int_equal(log_bytes(log), total);
	append_range(log, 121, 125);
	log_close(log);
	image_free(&im);
	log = open_expect(dir, SEG_BYTES, 1, 125);
	log_close(log);
	remove_dir(dir);
}

static void test_compaction(void **state)
{
	char *dir = make_dir();
	struct image im;
	struct kvfs_log *log;

	build_log(dir, 120);
	image_load(&im, dir);
	assert_true(im.nseg >= 5);
	log = open_expect(dir, SEG_BYTES, 1, 120);

	/* segment s holds [first(s), first(s+1) - 1] */
	uint64_t first[MAXSEG];

	for (size_t s = 0; s < im.nseg; s++)
		first[s] = strtoull(im.name[s] + 4, NULL, 10);

	/* upto just below the end of segment 1: only segment 0 goes */
	assert_int_equal(log_compact(log, first[2] - 2), 0);
	assert_false(file_exists(dir, im.name[0]));
	assert_true(file_exists(dir, im.name[1]));
	assert_int_equal(log_first_index(log), first[1]);
	assert_int_equal(log_last_index(log), 120);
	/* upto 0 and upto below a segment's end remove nothing */
	assert_int_equal(log_compact(log, 0), 0);
	assert_int_equal(log_first_index(log), first[1]);
	/* exactly the end of segment 2 */
	assert_int_equal(log_compact(log, first[3] - 1), 0);
	assert_false(file_exists(dir, im.name[2]));
	assert_true(file_exists(dir, im.name[3]));
	assert_int_equal(log_first_index(log), first[3]);
	{
		uint64_t bytes = 0;

		for (size_t s = 3; s < im.nseg; s++)
			bytes += im.len[s];
		assert_int_equal(log_bytes(log), bytes);
	}
	log_close(log);
	log = open_expect(dir, SEG_BYTES, first[3], 120);

	/* everything: the active segment stays */
	assert_int_equal(log_compact(log, UINT64_MAX), 0);
	for (size_t s = 0; s + 1 < im.nseg; s++)
		assert_false(file_exists(dir, im.name[s]));
	assert_true(file_exists(dir, im.name[im.nseg - 1]));
	assert_int_equal(log_first_index(log), first[im.nseg - 1]);
	assert_int_equal(log_bytes(log), im.len[im.nseg - 1]);
	append_range(log, 121, 122);
	log_close(log);
	log = open_expect(dir, SEG_BYTES, first[im.nseg - 1], 122);
	log_close(log);
	image_free(&im);
	remove_dir(dir);
}

static void test_replay_abort(void **state)
{
	char *dir = make_dir();
	struct kvfs_log *log = NULL;
	struct kvfs_log_options opts = {.segment_bytes = SEG_BYTES};
	struct replay r = {.stop_at = 50};
	char err[256];

	build_log(dir, 60);
	assert_int_equal(log_open(&log, dir, &opts, replay_fn, &r, err, sizeof(err)), -ECANCELED);
	assert_null(log);
	assert_int_equal(r.count, 49);
	log = open_expect(dir, SEG_BYTES, 1, 60);
	log_close(log);
	remove_dir(dir);
}

/* An empty segment after the last (a crash right after a rotation) is dropped. */
static void test_empty_segment(void **state)
{
	char *dir = make_dir();
	struct kvfs_log *log;

	build_log(dir, 30);
	write_file(dir, "log-00000000000000000031.seg", NULL, 0);
	log = open_expect(dir, SEG_BYTES, 1, 30);
	assert_false(file_exists(dir, "log-00000000000000000031.seg"));
	append_range(log, 31, 33);
	log_close(log);
	log = open_expect(dir, SEG_BYTES, 1, 33);
	log_close(log);

	/* also one that does not follow on: nothing was in it */
	write_file(dir, "log-00000000000000000099.seg", NULL, 0);
	log = open_expect(dir, SEG_BYTES, 1, 33);
	log_close(log);
	assert_false(file_exists(dir, "log-00000000000000000099.seg"));
	remove_dir(dir);
}

/* Records delivered and kept when the log is cut at byte cut: those wholly before it. */
static uint64_t survivors(const struct image *im, uint64_t cut)
{
	uint64_t n = 0;

	for (size_t k = 0; k < im->nrec; k++)
		if (im->start[im->rec[k].seg] + im->rec[k].off + im->rec[k].size <= cut)
			n = im->rec[k].index;
	return n;
}

/*
 * The test: a log of n records cut at every byte offset inside its last three records
 * (and not cut at all) keeps exactly the records wholly before the cut, then takes the next
 * index and reopens. Returns whether the last three records spanned a segment boundary.
 */
static bool cut_every_offset(const char *dir, uint64_t n)
{
	struct image im;
	uint64_t from, end;
	bool spans;

	clear_dir(dir);
	build_log(dir, n);
	image_load(&im, dir);
	spans = im.rec[im.nrec - 3].seg != im.rec[im.nrec - 1].seg;
	from = im.start[im.rec[im.nrec - 3].seg] + im.rec[im.nrec - 3].off;
	end = im.start[im.nseg - 1] + im.len[im.nseg - 1];
	for (uint64_t cut = from; cut <= end; cut++) {
		uint64_t keep = survivors(&im, cut);
		struct kvfs_log *log;

		image_store_cut(&im, dir, cut);
		log = open_expect(dir, SEG_BYTES, 1, keep);
		append_range(log, keep + 1, keep + 2);
		log_close(log);
		log = open_expect(dir, SEG_BYTES, 1, keep + 2);
		log_close(log);
	}
	image_free(&im);
	return spans;
}

static void test_cut_every_offset(void **state)
{
	char *dir = make_dir();
	uint64_t n;

	assert_false(cut_every_offset(dir, 60));
	/* and a log whose last records straddle a rotation, so that some cuts leave an empty
	 * last segment or fall in the one before it */
	for (n = 61; n < 120; n++) {
		struct image im;
		bool spans;

		clear_dir(dir);
		build_log(dir, n);
		image_load(&im, dir);
		spans = im.rec[im.nrec - 3].seg != im.rec[im.nrec - 1].seg;
		image_free(&im);
		if (spans)
			break;
	}
	assert_true(n < 120);
	assert_true(cut_every_offset(dir, n));
	remove_dir(dir);
}

/* A torn tail in a segment that is followed by empty segment files is still a torn tail. */
static void test_cut_then_empty_segments(void **state)
{
	char *dir = make_dir();
	struct image im;
	struct kvfs_log *log;
	size_t last;

	build_log(dir, 40);
	image_load(&im, dir);
	last = im.nseg - 1;
	write_file(dir, im.name[last], im.data[last], im.len[last] - 5);
	write_file(dir, "log-00000000000000000041.seg", NULL, 0);
	write_file(dir, "log-00000000000000000042.seg", NULL, 0);
	log = open_expect(dir, SEG_BYTES, 1, 39);
	log_close(log);
	assert_false(file_exists(dir, "log-00000000000000000041.seg"));
	image_free(&im);
	remove_dir(dir);
}

/* Zeros after the end, and a last record overwritten with zeros, are a torn tail. */
static void test_zero_tail(void **state)
{
	static const size_t ext[] = {1,  2,  3,  4,  5,   7,   8,   11,  16,   23,   24,   25,  31,
	                             47, 48, 49, 64, 100, 255, 256, 511, 1000, 2048, 4095, 4096};
	char *dir = make_dir();
	struct image im;
	size_t last, lastrec;
	uint8_t *buf;

	build_log(dir, 50);
	image_load(&im, dir);
	last = im.nseg - 1;
	lastrec = im.nrec - 1;
	buf = calloc(1, im.len[last] + 4096);
	assert_non_null(buf);
	for (size_t k = 0; k < sizeof(ext) / sizeof(ext[0]); k++) {
		struct kvfs_log *log;

		memcpy(buf, im.data[last], im.len[last]);
		write_file(dir, im.name[last], buf, im.len[last] + ext[k]);
		log = open_expect(dir, SEG_BYTES, 1, 50);
		log_close(log);

		/* and the last record zeroed, with the same extension */
		memset(buf + im.rec[lastrec].off, 0, im.rec[lastrec].size);
		write_file(dir, im.name[last], buf, im.len[last] + ext[k]);
		log = open_expect(dir, SEG_BYTES, 1, 49);
		append_range(log, 50, 51);
		log_close(log);
		log = open_expect(dir, SEG_BYTES, 1, 51);
		log_close(log);
		image_store_cut(&im, dir, UINT64_MAX); /* undoes the append's rotation too */
		memset(buf, 0, im.len[last] + 4096);
	}
	/* the last record zeroed without extension */
	memcpy(buf, im.data[last], im.len[last]);
	memset(buf + im.rec[lastrec].off, 0, im.rec[lastrec].size);
	write_file(dir, im.name[last], buf, im.len[last]);
	log_close(open_expect(dir, SEG_BYTES, 1, 49));
	log_close(open_expect(dir, SEG_BYTES, 1, 49));
	free(buf);
	image_free(&im);
	remove_dir(dir);
}

/* Any single bit flipped in the last record makes it the torn tail. */
static void test_flip_last_record(void **state)
{
	char *dir = make_dir();
	struct image im;
	size_t s, off, size;

	build_log(dir, 50);
	image_load(&im, dir);
	s = im.rec[im.nrec - 1].seg;
	off = im.rec[im.nrec - 1].off;
	size = im.rec[im.nrec - 1].size;
	for (size_t bit = 0; bit < size * 8; bit++) {
		uint8_t b = im.data[s][off + bit / 8] ^ (uint8_t)(1u << (bit % 8));
		struct kvfs_log *log;

		patch_file(dir, im.name[s], off + bit / 8, &b, 1);
		log = open_expect(dir, SEG_BYTES, 1, 49);
		log_close(log);
		image_restore_seg(&im, dir, s);
	}
	image_free(&im);
	remove_dir(dir);
}

/*
 * A bit flipped in any record but the last is damage to an acknowledged write: refused, and the
 * message names the file and the offset. All header bits and every third payload bit of every
 * record, in every segment (so damage in a segment that later ones follow is covered).
 */
static void test_flip_earlier_records(void **state)
{
	char *dir = make_dir();
	struct image im;

	build_log(dir, 50);
	image_load(&im, dir);
	for (size_t k = 0; k + 1 < im.nrec; k++) {
		size_t s = im.rec[k].seg, off = im.rec[k].off;

		for (size_t bit = 0; bit < im.rec[k].size * 8; bit++) {
			uint8_t b;

			if (bit >= KVFS_LOG_HEADER_SIZE * 8 && bit % 3 != 0)
				continue;
			b = im.data[s][off + bit / 8] ^ (uint8_t)(1u << (bit % 8));
			patch_file(dir, im.name[s], off + bit / 8, &b, 1);
			open_refused(dir, im.name[s], true);
			patch_file(dir, im.name[s], off + bit / 8, &im.data[s][off + bit / 8], 1);
		}
	}
	/* the files were not touched by the refusals */
	log_close(open_expect(dir, SEG_BYTES, 1, 50));
	image_free(&im);
	remove_dir(dir);
}

/* A record zeroed in the middle, and a segment whose records are all garbage, are refused. */
static void test_zeroed_middle(void **state)
{
	char *dir = make_dir();
	struct image im;
	uint8_t *zero;
	size_t k;

	build_log(dir, 50);
	image_load(&im, dir);
	k = im.nrec / 2;
	zero = calloc(1, im.rec[k].size);
	assert_non_null(zero);
	patch_file(dir, im.name[im.rec[k].seg], im.rec[k].off, zero, im.rec[k].size);
	open_refused(dir, im.name[im.rec[k].seg], true);
	free(zero);

	/* the first segment wholly garbage, the others fine */
	image_store_cut(&im, dir, UINT64_MAX);
	zero = malloc(im.len[0]);
	assert_non_null(zero);
	memset(zero, 0xa5, im.len[0]);
	write_file(dir, im.name[0], zero, im.len[0]);
	open_refused(dir, im.name[0], true);
	free(zero);
	image_free(&im);
	remove_dir(dir);
}

/* Damage at the end of a segment whose successor holds a single record is refused too. */
static void test_flip_before_single_record_segment(void **state)
{
	char *dir = make_dir();
	struct kvfs_log *log;
	struct image im;
	size_t k;

	build_log(dir, 50);
	log = open_expect(dir, 1, 1, 50); /* every batch starts a segment */
	append_range(log, 51, 51);
	log_close(log);
	image_load(&im, dir);
	k = im.nrec - 2;
	assert_int_equal(im.rec[k].index, 50);
	assert_int_equal(im.rec[k + 1].off, 0);
	for (size_t bit = 0; bit < im.rec[k].size * 8; bit += 5) {
		size_t s = im.rec[k].seg, at = im.rec[k].off + bit / 8;
		uint8_t b = im.data[s][at] ^ (uint8_t)(1u << (bit % 8));

		patch_file(dir, im.name[s], at, &b, 1);
		open_refused(dir, im.name[s], true);
		patch_file(dir, im.name[s], at, &im.data[s][at], 1);
	}
	log_close(open_expect(dir, SEG_BYTES, 1, 51));
	image_free(&im);
	remove_dir(dir);
}

/*
 * A record with a good checksum but the wrong index is invalid: refused in the middle of the log,
 * cut as the tail at the end.
 */
static void test_wrong_index(void **state)
{
	char *dir = make_dir();
	struct image im;
	size_t k, s;
	uint8_t *copy;

	build_log(dir, 50);
	image_load(&im, dir);
	for (int delta = -1; delta <= 1; delta += 2) {
		/* a middle record of the last segment, resealed one index off */
		k = im.nrec - 3;
		s = im.rec[k].seg;
		copy = malloc(im.len[s]);
		assert_non_null(copy);
		memcpy(copy, im.data[s], im.len[s]);
		log_record_seal(copy + im.rec[k].off, record_epoch(im.rec[k].index),
		                im.rec[k].index + (uint64_t)delta,
		                (uint32_t)(im.rec[k].size - KVFS_LOG_HEADER_SIZE));
		write_file(dir, im.name[s], copy, im.len[s]);
		open_refused(dir, im.name[s], true);
		image_restore_seg(&im, dir, s);

		/* the last record resealed one index off: a tail to cut */
		k = im.nrec - 1;
		memcpy(copy, im.data[s], im.len[s]);
		log_record_seal(copy + im.rec[k].off, record_epoch(im.rec[k].index),
		                im.rec[k].index + (uint64_t)delta,
		                (uint32_t)(im.rec[k].size - KVFS_LOG_HEADER_SIZE));
		write_file(dir, im.name[s], copy, im.len[s]);
		log_close(open_expect(dir, SEG_BYTES, 1, 49));
		image_restore_seg(&im, dir, s);
		free(copy);
	}
	log_close(open_expect(dir, SEG_BYTES, 1, 50));
	image_free(&im);
	remove_dir(dir);
}

/* A missing segment in the middle, or a misnamed one, is a gap: refused. */
static void test_gap(void **state)
{
	char *dir = make_dir();
	struct image im;
	char path[512], path2[512];

	build_log(dir, 60);
	image_load(&im, dir);
	assert_true(im.nseg >= 4);

	snprintf(path, sizeof(path), "%s/%s", dir, im.name[2]);
	assert_int_equal(unlink(path), 0);
	open_refused(dir, im.name[3], false);
	image_restore_seg(&im, dir, 2);
	log_close(open_expect(dir, SEG_BYTES, 1, 60));

	/* segment 2 renamed one index later: its first record no longer matches either */
	snprintf(path2, sizeof(path2), "%s/log-%020" PRIu64 ".seg", dir,
	         (uint64_t)strtoull(im.name[2] + 4, NULL, 10) + 1);
	assert_int_equal(rename(path, path2), 0);
	open_refused(dir, NULL, false);
	assert_int_equal(rename(path2, path), 0);
	log_close(open_expect(dir, SEG_BYTES, 1, 60));

	image_free(&im);
	remove_dir(dir);
}

/* A write that fails (EFBIG past RLIMIT_FSIZE, like ENOSPC) leaves nothing of the batch. */
static void test_write_failure(void **state)
{
	char *dir = make_dir();
	struct image im;
	struct kvfs_log *log;
	struct rlimit old, lim;
	size_t len, len2;
	uint8_t *buf, *buf2;
	uint64_t bytes;

	build_log(dir, 20);
	log = open_expect(dir, 1u << 20, 1, 20); /* no rotation */
	image_load(&im, dir);
	bytes = log_bytes(log);

	assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
	signal(SIGXFSZ, SIG_IGN);
	buf = make_batch(21, 30, &len);
	lim = old;
	lim.rlim_cur = im.len[im.nseg - 1] + len / 2; /* the batch fits halfway */
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
	assert_int_equal(log_append_batch(log, buf, len, 21, 30), -EFBIG);
	assert_int_equal(log_last_index(log), 20);
	assert_int_equal(log_bytes(log), bytes);
	{
		size_t now;
		uint8_t *cur = read_file(dir, im.name[im.nseg - 1], &now);

		assert_int_equal(now, im.len[im.nseg - 1]);
		free(cur);
	}
	/* still usable: a smaller batch fits */
	buf2 = make_batch(21, 21, &len2);
	assert_true(im.len[im.nseg - 1] + len2 <= lim.rlim_cur);
	assert_int_equal(log_append_batch(log, buf2, len2, 21, 21), 0);
	free(buf2);
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
	log_close(log);
	log = open_expect(dir, 1u << 20, 1, 21);
	append_range(log, 22, 25);
	log_close(log);

	/* a failed batch that had started a new segment removes it */
	log = open_expect(dir, 64, 1, 25); /* the active segment is full */
	free(buf);
	buf = make_batch(26, 28, &len);
	lim.rlim_cur = 10;
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
	assert_int_equal(log_append_batch(log, buf, len, 26, 28), -EFBIG);
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
	assert_false(file_exists(dir, "log-00000000000000000026.seg"));
	assert_int_equal(log_last_index(log), 25);
	assert_int_equal(log_append_batch(log, buf, len, 26, 28), 0);
	assert_true(file_exists(dir, "log-00000000000000000026.seg"));
	log_close(log);
	log = open_expect(dir, 64, 1, 28);
	log_close(log);
	signal(SIGXFSZ, SIG_DFL);
	free(buf);
	image_free(&im);
	remove_dir(dir);
}

/* ---- truncation and reading back ---- */

/* A copy of records delivered by log_open or log_read. */
struct collect {
	size_t n, cap;
	struct {
		uint64_t epoch, index;
		uint32_t len;
		uint8_t *payload;
	} * rec;
	uint64_t stop_at; /* return -ECANCELED at this index; 0 = never */
};

static int collect_fn(void *arg, const struct kvfs_log_record *rec)
{
	struct collect *c = arg;

	if (rec->index == c->stop_at)
		return -ECANCELED;
	if (c->n == c->cap) {
		c->cap = c->cap ? c->cap * 2 : 64;
		c->rec = realloc(c->rec, c->cap * sizeof(*c->rec));
		assert_non_null(c->rec);
	}
	c->rec[c->n].epoch = rec->epoch;
	c->rec[c->n].index = rec->index;
	c->rec[c->n].len = rec->len;
	c->rec[c->n].payload = malloc(rec->len + 1u);
	assert_non_null(c->rec[c->n].payload);
	memcpy(c->rec[c->n].payload, rec->payload, rec->len);
	c->n++;
	return 0;
}

static void collect_free(struct collect *c)
{
	for (size_t i = 0; i < c->n; i++)
		free(c->rec[i].payload);
	free(c->rec);
	memset(c, 0, sizeof(*c));
}

/* Reads from..to, expecting rv and, when it is 0, exactly the records first..last. */
static void read_expect(struct kvfs_log *log, uint64_t from, uint64_t to, uint64_t first,
                        uint64_t last)
{
	struct replay r;
	int rv;

	memset(&r, 0, sizeof(r));
	rv = log_read(log, from, to, replay_fn, &r);
	if (rv != 0)
		fail_msg("log_read(%" PRIu64 ", %" PRIu64 ") = %d", from, to, rv);
	assert_int_equal(r.count, last >= first ? last - first + 1 : 0);
	if (last >= first) {
		assert_int_equal(r.first, first);
		assert_int_equal(r.last, last);
	}
}

/* Sum of the sizes of dir's segment files, and how many there are in *n. */
static uint64_t dir_bytes(const char *dir, size_t *n)
{
	struct dirent **list;
	int k = scandir(dir, &list, seg_filter, alphasort);
	uint64_t bytes = 0;

	assert_true(k >= 0);
	for (int i = 0; i < k; i++) {
		char path[512];
		struct stat st;

		snprintf(path, sizeof(path), "%s/%s", dir, list[i]->d_name);
		assert_int_equal(stat(path, &st), 0);
		bytes += (uint64_t)st.st_size;
		free(list[i]);
	}
	free(list);
	*n = (size_t)k;
	return bytes;
}

/*
 * From the image of a log of records 1..n restored into dir: truncates after keep, checks the
 * log and the directory, reads back, reopens, appends keep + 1..keep + 3, reopens again.
 */
static void truncate_check(const struct image *im, const char *dir, uint64_t seg_bytes,
                           uint64_t keep)
{
	uint64_t n = im->rec[im->nrec - 1].index;
	struct kvfs_log *log;
	size_t nfiles, want_files = 0;

	image_store_cut(im, dir, UINT64_MAX);
	log = open_expect(dir, seg_bytes, 1, n);
	assert_int_equal(log_truncate_after(log, keep), 0);
	assert_int_equal(log_last_index(log), keep);
	assert_int_equal(log_first_index(log), keep > 0 ? 1 : 0);
	for (size_t s = 0; s < im->nseg; s++)
		if (strtoull(im->name[s] + 4, NULL, 10) <= keep)
			want_files++;
	assert_int_equal(log_bytes(log), dir_bytes(dir, &nfiles));
	assert_int_equal(nfiles, want_files);
	if (keep > 0)
		read_expect(log, 1, UINT64_MAX, 1, keep);
	read_expect(log, keep + 1, UINT64_MAX, 1, 0);
	/* again, and above the end: nothing to do */
	assert_int_equal(log_truncate_after(log, keep), 0);
	assert_int_equal(log_truncate_after(log, keep + 5), 0);
	log_close(log);

	log = open_expect(dir, seg_bytes, 1, keep);
	append_range(log, keep + 1, keep + 3);
	read_expect(log, 1, UINT64_MAX, 1, keep + 3);
	log_close(log);
	log = open_expect(dir, seg_bytes, 1, keep + 3);
	log_close(log);
}

/* Truncation at every index of a log of small segments, then appends without reopening. */
static void test_truncate_every_index(void **state)
{
	char *dir = make_dir();
	struct image im;
	struct kvfs_log *log;

	build_log(dir, 60);
	image_load(&im, dir);
	assert_true(im.nseg >= 5);
	for (uint64_t keep = 0; keep <= 60; keep++)
		truncate_check(&im, dir, SEG_BYTES, keep);

	/* straight on: the next append must be keep + 1 and lands where the log now ends */
	for (uint64_t keep = 0; keep <= 60; keep += 7) {
		size_t len;
		uint8_t *buf;

		image_store_cut(&im, dir, UINT64_MAX);
		log = open_expect(dir, SEG_BYTES, 1, 60);
		assert_int_equal(log_truncate_after(log, keep), 0);
		buf = make_batch(keep + 2, keep + 2, &len);
		assert_int_equal(log_append_batch(log, buf, len, keep + 2, keep + 2), -EINVAL);
		free(buf);
		append_range(log, keep + 1, keep + 4);
		read_expect(log, 1, UINT64_MAX, 1, keep + 4);
		assert_int_equal(log_truncate_after(log, keep + 2), 0);
		append_range(log, keep + 3, keep + 3);
		log_close(log);
		log = open_expect(dir, SEG_BYTES, 1, keep + 3);
		log_close(log);
	}
	image_free(&im);
	remove_dir(dir);
}

/* One large segment: truncation finds its record through the sparse index. */
static void test_truncate_large_segment(void **state)
{
	char *dir = make_dir();
	struct image im;
	struct kvfs_log *log;

	log = open_expect(dir, 1u << 20, 0, 0);
	for (uint64_t i = 1; i <= 200; i += 10)
		append_range(log, i, i + 9);
	log_close(log);
	image_load(&im, dir);
	assert_int_equal(im.nseg, 1);
	for (uint64_t keep = 0; keep <= 200; keep++)
		if (keep < 3 || keep % 64 < 2 || keep % 64 > 61 || keep % 17 == 0 || keep > 197)
			truncate_check(&im, dir, 1u << 20, keep);
	/* without a reopen: the sparse index is cut back, then appends extend it past an entry */
	image_store_cut(&im, dir, UINT64_MAX);
	log = open_expect(dir, 1u << 20, 1, 200);
	assert_int_equal(log_truncate_after(log, 100), 0);
	append_range(log, 101, 140);
	read_expect(log, 1, 140, 1, 140);
	read_expect(log, 129, 131, 129, 131);
	assert_int_equal(log_truncate_after(log, 64), 0);
	append_range(log, 65, 70);
	read_expect(log, 60, 200, 60, 70);
	log_close(log);
	log_close(open_expect(dir, 1u << 20, 1, 70));
	image_free(&im);
	remove_dir(dir);
}

/* After compaction: not below the first index - 1; down to it empties the log. */
static void test_truncate_after_compaction(void **state)
{
	char *dir = make_dir();
	struct image im;
	struct kvfs_log *log;
	uint64_t first2;
	size_t len;
	uint8_t *buf;

	build_log(dir, 60);
	image_load(&im, dir);
	first2 = strtoull(im.name[2] + 4, NULL, 10);
	log = open_expect(dir, SEG_BYTES, 1, 60);
	assert_int_equal(log_compact(log, first2 - 1), 0);
	assert_int_equal(log_first_index(log), first2);
	assert_int_equal(log_truncate_after(log, first2 - 2), -EINVAL);
	assert_int_equal(log_truncate_after(log, 0), -EINVAL);
	assert_int_equal(log_last_index(log), 60);
	assert_int_equal(log_truncate_after(log, first2 + 1), 0);
	assert_int_equal(log_last_index(log), first2 + 1);
	assert_int_equal(log_truncate_after(log, first2 - 1), 0);
	assert_int_equal(log_first_index(log), 0);
	assert_int_equal(log_last_index(log), first2 - 1);
	assert_int_equal(log_bytes(log), 0);
	assert_int_equal(log_read(log, first2 - 1, 60, replay_fn, &(struct replay){0}), -ENOENT);
	read_expect(log, first2, 60, 1, 0);
	assert_int_equal(log_truncate_after(log, first2 - 2), -EINVAL);
	buf = make_batch(first2 + 5, first2 + 5, &len);
	assert_int_equal(log_append_batch(log, buf, len, first2 + 5, first2 + 5), -EINVAL);
	free(buf);
	append_range(log, first2, first2 + 2);
	assert_int_equal(log_first_index(log), first2);
	log_close(log);
	log = open_expect(dir, SEG_BYTES, first2, first2 + 2);
	log_close(log);
	image_free(&im);
	remove_dir(dir);
}

/*
 * Every state a crash can leave during log_truncate_after(keep): the original, then one segment
 * fewer at a time from the end, then the cut segment at its old length. Each reopens as a prefix
 * of the log, and truncating again from there ends where a truncation without a crash does.
 */
static void test_truncate_crash_states(void **state)
{
	static const uint64_t keeps[] = {0, 1, 9, 17, 23, 30, 44, 58, 59};
	char *dir = make_dir();
	struct image im;

	build_log(dir, 60);
	image_load(&im, dir);
	for (size_t t = 0; t < sizeof(keeps) / sizeof(keeps[0]); t++) {
		uint64_t keep = keeps[t];
		size_t ks = 0, nkeep;

		/* segments kept: those whose first record is <= keep */
		for (size_t s = 0; s < im.nseg; s++)
			if (strtoull(im.name[s] + 4, NULL, 10) <= keep)
				ks = s + 1;
		for (nkeep = im.nseg; nkeep + 1 > ks; nkeep--) {
			uint64_t last = 0;
			struct kvfs_log *log;

			/* the crash state: segments 0..nkeep-1 whole */
			clear_dir(dir);
			for (size_t s = 0; s < nkeep; s++)
				image_restore_seg(&im, dir, s);
			for (size_t k = 0; k < im.nrec; k++)
				if (im.rec[k].seg < nkeep)
					last = im.rec[k].index;
			log = open_expect(dir, SEG_BYTES, last > 0 ? 1 : 0, last);
			assert_true(last >= keep);
			assert_int_equal(log_truncate_after(log, keep), 0);
			log_close(log);
			log = open_expect(dir, SEG_BYTES, keep > 0 ? 1 : 0, keep);
			append_range(log, keep + 1, keep + 1);
			log_close(log);
			log = open_expect(dir, SEG_BYTES, 1, keep + 1);
			log_close(log);
			if (nkeep == 0)
				break;
		}
	}
	image_free(&im);
	remove_dir(dir);
}

/* log_read gives what recovery replayed, for every range start and several lengths. */
static void test_read_ranges(void **state)
{
	static const uint64_t lens[] = {1, 2, 7, 13, 64, 65, 200};
	char *dir = make_dir();
	struct collect opened = {0}, got = {0};
	struct kvfs_log *log = NULL;
	struct kvfs_log_options opts = {.segment_bytes = SEG_BYTES};
	char err[256];

	build_log(dir, 120);
	assert_int_equal(log_open(&log, dir, &opts, collect_fn, &opened, err, sizeof(err)), 0);
	assert_int_equal(opened.n, 120);
	assert_int_equal(log_read(log, 1, UINT64_MAX, collect_fn, &got), 0);
	assert_int_equal(got.n, opened.n);
	for (size_t i = 0; i < got.n; i++) {
		assert_int_equal(got.rec[i].index, opened.rec[i].index);
		assert_int_equal(got.rec[i].epoch, opened.rec[i].epoch);
		assert_int_equal(got.rec[i].len, opened.rec[i].len);
		assert_memory_equal(got.rec[i].payload, opened.rec[i].payload, got.rec[i].len);
	}
	for (uint64_t from = 1; from <= 120; from++)
		for (size_t l = 0; l < sizeof(lens) / sizeof(lens[0]); l++) {
			uint64_t to = from + lens[l] - 1;

			read_expect(log, from, to, from, to < 120 ? to : 120);
		}
	read_expect(log, 121, 130, 1, 0);
	assert_int_equal(log_read(log, 0, 5, replay_fn, &(struct replay){0}), -EINVAL);
	assert_int_equal(log_read(log, 5, 4, replay_fn, &(struct replay){0}), -EINVAL);
	assert_int_equal(log_read(log, 1, 5, NULL, NULL), -EINVAL);

	/* the callback stops the read and its value is returned */
	collect_free(&got);
	got.stop_at = 40;
	assert_int_equal(log_read(log, 30, 50, collect_fn, &got), -ECANCELED);
	assert_int_equal(got.n, 10);
	collect_free(&got);
	log_close(log);
	collect_free(&opened);
	remove_dir(dir);
}

/* Reading back from one large segment, written by appends (sparse index built on append) and
 * recovered (built at open). */
static void test_read_large_segment(void **state)
{
	char *dir = make_dir();
	struct kvfs_log *log = open_expect(dir, 1u << 20, 0, 0);

	for (int pass = 0; pass < 2; pass++) {
		if (pass == 0) {
			for (uint64_t i = 1; i <= 300; i += 30)
				append_range(log, i, i + 29);
		} else {
			log = open_expect(dir, 1u << 20, 1, 300);
		}
		for (uint64_t from = 1; from <= 300; from++)
			read_expect(log, from, from + 2, from, from + 2 < 300 ? from + 2 : 300);
		read_expect(log, 1, 300, 1, 300);
		log_close(log);
	}
	remove_dir(dir);
}

/* After compaction the compacted indices are gone: -ENOENT; the rest reads on. */
static void test_read_after_compaction(void **state)
{
	char *dir = make_dir();
	struct image im;
	struct kvfs_log *log;
	uint64_t first3;

	build_log(dir, 120);
	image_load(&im, dir);
	first3 = strtoull(im.name[3] + 4, NULL, 10);
	log = open_expect(dir, SEG_BYTES, 1, 120);
	assert_int_equal(log_compact(log, first3 - 1), 0);
	assert_int_equal(log_read(log, 1, 120, replay_fn, &(struct replay){0}), -ENOENT);
	assert_int_equal(log_read(log, first3 - 1, 120, replay_fn, &(struct replay){0}), -ENOENT);
	read_expect(log, first3, 120, first3, 120);
	read_expect(log, first3 + 3, first3 + 20, first3 + 3, first3 + 20);
	log_close(log);
	image_free(&im);
	remove_dir(dir);
}

/* A payload bit flipped on disk under an open log: the read stops there with -EBADMSG. */
static void test_read_damaged(void **state)
{
	char *dir = make_dir();
	struct image im;
	struct kvfs_log *log;
	struct replay r;
	size_t k, s, at;
	uint8_t b;

	build_log(dir, 60);
	image_load(&im, dir);
	log = open_expect(dir, SEG_BYTES, 1, 60);
	k = im.nrec / 2;
	while (im.rec[k].size == KVFS_LOG_HEADER_SIZE) /* one with a payload */
		k++;
	s = im.rec[k].seg;
	at = im.rec[k].off + KVFS_LOG_HEADER_SIZE + (im.rec[k].size - KVFS_LOG_HEADER_SIZE) / 2;
	b = im.data[s][at] ^ 0x10;
	patch_file(dir, im.name[s], at, &b, 1);

	memset(&r, 0, sizeof(r));
	assert_int_equal(log_read(log, 1, 60, replay_fn, &r), -EBADMSG);
	assert_int_equal(r.last, im.rec[k].index - 1); /* everything before it was delivered */
	memset(&r, 0, sizeof(r));
	assert_int_equal(log_read(log, im.rec[k].index, im.rec[k].index, replay_fn, &r), -EBADMSG);
	assert_int_equal(r.count, 0);
	/* ranges that avoid it still read */
	read_expect(log, 1, im.rec[k].index - 1, 1, im.rec[k].index - 1);
	read_expect(log, im.rec[k].index + 1, 60, im.rec[k].index + 1, 60);
	/* truncation does not need its checksum: it is the first record dropped */
	assert_int_equal(log_truncate_after(log, im.rec[k].index - 1), 0);
	read_expect(log, 1, 60, 1, im.rec[k].index - 1);
	log_close(log);
	log = open_expect(dir, SEG_BYTES, 1, im.rec[k].index - 1);
	log_close(log);

	/* a file shorter than the log wrote (cut behind its back) */
	image_store_cut(&im, dir, UINT64_MAX);
	log = open_expect(dir, SEG_BYTES, 1, 60);
	write_file(dir, im.name[s], im.data[s], im.rec[k].off + 3);
	assert_int_equal(log_read(log, im.rec[k].index, 60, replay_fn, &(struct replay){0}),
	                 -EBADMSG);
	log_close(log);
	image_free(&im);
	remove_dir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_roundtrip),
	    cmocka_unit_test(test_first_index_any),
	    cmocka_unit_test(test_creates_dir),
	    cmocka_unit_test(test_bad_arguments),
	    cmocka_unit_test(test_rotation),
	    cmocka_unit_test(test_compaction),
	    cmocka_unit_test(test_replay_abort),
	    cmocka_unit_test(test_empty_segment),
	    cmocka_unit_test(test_cut_every_offset),
	    cmocka_unit_test(test_cut_then_empty_segments),
	    cmocka_unit_test(test_zero_tail),
	    cmocka_unit_test(test_flip_last_record),
	    cmocka_unit_test(test_flip_earlier_records),
	    cmocka_unit_test(test_zeroed_middle),
	    cmocka_unit_test(test_flip_before_single_record_segment),
	    cmocka_unit_test(test_wrong_index),
	    cmocka_unit_test(test_gap),
	    cmocka_unit_test(test_write_failure),
	    cmocka_unit_test(test_truncate_every_index),
	    cmocka_unit_test(test_truncate_large_segment),
	    cmocka_unit_test(test_truncate_after_compaction),
	    cmocka_unit_test(test_truncate_crash_states),
	    cmocka_unit_test(test_read_ranges),
	    cmocka_unit_test(test_read_large_segment),
	    cmocka_unit_test(test_read_after_compaction),
	    cmocka_unit_test(test_read_damaged),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
