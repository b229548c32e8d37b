/*
 * fsx: a seeded, replayable random file exerciser in the spirit of the classic fsx, for kvfs
 * mounts.
 *
 * It keeps a few files (DIR/fsx0, fsx1, ...) and an in-memory model of each (its bytes, whether it
 * exists, whether fsx holds it open), and applies random operations to both: pwrite at random
 * offsets (holes included), ftruncate shrinking and growing, O_APPEND writes through a second
 * open, pread and read at random ranges, close and reopen (sometimes with O_TRUNC), fsync and
 * fdatasync, rename of one file over another, unlink, fstat and stat. Every read and every size is
 * compared with the model; a mismatch prints the seed, the operation number, the last operations,
 * the offsets and the first differing byte, and exits 1.
 *
 * The choice of each operation depends only on the seed and the model, never on what the
 * filesystem answered, so `fsx -V -s SEED -n OPS DIR` replays the model alone and checks that the
 * files in DIR equal its final state (after a remount, for instance).
 *
 * Data written by operation N at file offset P is the byte (N % 253 + 1 + P % 256) & 0xff, so a
 * wrong byte tells which operation wrote it (modulo 253).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <dirent.h>
#include <time.h>
#include <unistd.h>
#include "../xorshift.h"

#define MAX_FILES    16
#define MAX_IO       65536
#define LOG_ENTRIES  20
#define LOG_LINE_LEN 160

struct mfile {
	unsigned char *data; /* model content, cap bytes allocated */
	size_t size;
	bool exists;
	bool open; /* fsx holds an O_RDWR descriptor on it */
	int fd;    /* that descriptor (not used in replay mode) */
};

struct fsx {
	uint64_t seed;
	uint64_t rng;
	uint64_t op; /* number of the current operation, from 1 */
	uint64_t nops;
	int nfiles;
	size_t maxsize;
	const char *dir;
	bool replay;      /* model only, no filesystem calls (-V, until the final check) */
	bool replay_mode; /* -V was given */
	bool verbose;
	struct mfile files[MAX_FILES];
	char log[LOG_ENTRIES][LOG_LINE_LEN];
	unsigned char *buf; /* MAX_IO + maxsize bytes for reads */
	uint64_t counts[16];
};

enum op_kind {
	OP_WRITE,
	OP_READ,
	OP_READSEQ,
	OP_TRUNCATE,
	OP_APPEND,
	OP_REOPEN,
	OP_FSYNC,
	OP_RENAME,
	OP_STAT,
	OP_UNLINK,
	OP_CLOSE,
	OP_COUNT
};

static const char *const op_names[OP_COUNT] = {
    "write", "read",   "readseq", "truncate", "append", "reopen",
    "fsync", "rename", "stat",    "unlink",   "close",
};

/* Relative weights of the operations. */
static const unsigned op_weights[OP_COUNT] = {
    [OP_WRITE] = 25, [OP_READ] = 20,  [OP_READSEQ] = 5, [OP_TRUNCATE] = 8,
    [OP_APPEND] = 8, [OP_REOPEN] = 8, [OP_FSYNC] = 4,   [OP_RENAME] = 4,
    [OP_STAT] = 10,  [OP_UNLINK] = 2, [OP_CLOSE] = 3,
};

static uint64_t rnd(struct fsx *x)
{
	return xorshift64s(&x->rng);
}

static uint64_t rnd_below(struct fsx *x, uint64_t n)
{
	return n == 0 ? 0 : rnd(x) % n;
}

/* A length in 1..max, small ones more likely. */
static size_t rnd_len(struct fsx *x, size_t max)
{
	size_t cap;

	switch (rnd_below(x, 4)) {
	case 0:
		cap = 16;
		break;
	case 1:
		cap = 4096;
		break;
	default:
		cap = max;
		break;
	}
	if (cap > max)
		cap = max;
	return cap == 0 ? 0 : 1 + (size_t)rnd_below(x, cap);
}

static void *xmalloc(size_t size)
{
	void *p = calloc(1, size ? size : 1);

	if (p == NULL) {
		perror("fsx: out of memory");
		exit(2);
	}
	return p;
}

static void logop(struct fsx *x, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void logop(struct fsx *x, const char *fmt, ...)
{
	char *line = x->log[x->op % LOG_ENTRIES];
	va_list ap;
	int n;

	n = snprintf(line, LOG_LINE_LEN, "%6" PRIu64 " ", x->op);
	va_start(ap, fmt);
	vsnprintf(line + n, LOG_LINE_LEN - (size_t)n, fmt, ap);
	va_end(ap);
	if (x->verbose)
		printf("%s\n", line);
}

static void dump_log(struct fsx *x)
{
	uint64_t first = x->op > LOG_ENTRIES ? x->op - LOG_ENTRIES + 1 : 1;

	printf("fsx: the last operations:\n");
	for (uint64_t i = first; i <= x->op && i <= x->nops; i++)
		printf("  %s\n", x->log[i % LOG_ENTRIES]);
}

static void fail(struct fsx *x, const char *fmt, ...)
    __attribute__((format(printf, 2, 3), noreturn));

static void fail(struct fsx *x, const char *fmt, ...)
{
	va_list ap;

	fflush(stdout);
	printf("fsx: FAILURE (seed %" PRIu64 ", %s, operation %" PRIu64 " of %" PRIu64 "): ",
	       x->seed, x->replay_mode ? "replay check" : "run", x->op, x->nops);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	dump_log(x);
	printf("fsx: replay with: fsx -s %" PRIu64 " -n %" PRIu64 " -f %d -m %zu DIR\n", x->seed,
	       x->nops, x->nfiles, x->maxsize);
	fflush(stdout);
	exit(1);
}

static void path_of(const struct fsx *x, int f, char *path, size_t len)
{
	snprintf(path, len, "%s/fsx%d", x->dir, f);
}

static void fill_pattern(const struct fsx *x, unsigned char *buf, size_t off, size_t len)
{
	for (size_t k = 0; k < len; k++)
		buf[k] = (unsigned char)(x->op % 253 + 1 + (off + k) % 256);
}

/* Compares len bytes read at off of file f with the model; fails with the first difference. */
static void compare(struct fsx *x, int f, const char *what, size_t off, const unsigned char *got,
                    size_t got_len, size_t want_len)
{
	const struct mfile *m = &x->files[f];
	size_t k;

	if (got_len != want_len)
		fail(x, "fsx%d: %s at offset %zu returned %zu bytes, expected %zu (model size %zu)",
		     f, what, off, got_len, want_len, m->size);
	for (k = 0; k < want_len; k++)
		if (got[k] != m->data[off + k])
			break;
	if (k == want_len)
		return;
	{
		size_t pos = off + k;
		int writer = (int)((got[k] - 1 - pos % 256 + 256 * 2) % 256);

		printf("fsx: fsx%d, %zu bytes at offset %zu: first difference at file offset %zu "
		       "(0x%zx)\n",
		       f, want_len, off, pos, pos);
		printf("  expected:");
		for (size_t j = k; j < want_len && j < k + 16; j++)
			printf(" %02x", m->data[off + j]);
		printf("\n  actual:  ");
		for (size_t j = k; j < want_len && j < k + 16; j++)
			printf(" %02x", got[j]);
		printf("\n");
		fail(x,
		     "fsx%d: %s at offset %zu: byte %zu is 0x%02x, expected 0x%02x (%s; a byte of "
		     "operation N here reads 0x%02x for N %% 253 == %d)",
		     f, what, off, pos, got[k], m->data[off + k],
		     got[k] == 0 ? "zero: a hole or lost data" : "data", got[k], writer);
	}
}

/* Grows or shrinks the model of f to size (zeros when growing). */
static void model_resize(struct fsx *x, int f, size_t size)
{
	struct mfile *m = &x->files[f];

	if (size > m->size)
		memset(m->data + m->size, 0, size - m->size);
	m->size = size;
}

static void model_write(struct fsx *x, int f, size_t off, const unsigned char *data, size_t len)
{
	struct mfile *m = &x->files[f];

	if (off > m->size)
		model_resize(x, f, off);
	memcpy(m->data + off, data, len);
	if (off + len > m->size)
		m->size = off + len;
}

/* --- the real calls (skipped in replay mode) ----------------------------------------------- */

static void do_close(struct fsx *x, int f)
{
	struct mfile *m = &x->files[f];

	if (!m->open)
		return;
	m->open = false;
	if (x->replay)
		return;
	if (close(m->fd) != 0)
		fail(x, "fsx%d: close: %s", f, strerror(errno));
	m->fd = -1;
}

/* Opens f O_RDWR (creating it if the model says it does not exist), optionally with O_TRUNC. */
static void do_open(struct fsx *x, int f, bool trunc)
{
	struct mfile *m = &x->files[f];
	char path[4096];
	int flags = O_RDWR | O_CLOEXEC;

	if (!m->exists)
		flags |= O_CREAT | O_EXCL;
	if (trunc)
		flags |= O_TRUNC;
	m->open = true;
	m->exists = true;
	if (trunc)
		m->size = 0;
	if (x->replay)
		return;
	path_of(x, f, path, sizeof(path));
	m->fd = open(path, flags, 0644);
	if (m->fd < 0)
		fail(x, "open %s (%s%s): %s", path, flags & O_CREAT ? "O_CREAT|O_EXCL" : "existing",
		     trunc ? ", O_TRUNC" : "", strerror(errno));
}

static void ensure_open(struct fsx *x, int f)
{
	if (!x->files[f].open)
		do_open(x, f, false);
}

static void op_write(struct fsx *x, int f)
{
	struct mfile *m = &x->files[f];
	size_t off, len;
	ssize_t n;

	ensure_open(x, f);
	off = (size_t)rnd_below(x, m->size + 16384);
	if (off >= x->maxsize)
		off = (size_t)rnd_below(x, x->maxsize);
	len = rnd_len(x, MAX_IO);
	if (off + len > x->maxsize)
		len = x->maxsize - off;
	fill_pattern(x, x->buf, off, len);
	logop(x, "write    fsx%d %zu..%zu (%zu bytes; size %zu)", f, off, off + len, len, m->size);
	if (!x->replay) {
		n = pwrite(m->fd, x->buf, len, (off_t)off);
		if (n < 0)
			fail(x, "fsx%d: pwrite %zu bytes at %zu: %s", f, len, off, strerror(errno));
		if ((size_t)n != len)
			fail(x, "fsx%d: short pwrite: %zd of %zu bytes at %zu", f, n, len, off);
	}
	model_write(x, f, off, x->buf, len);
}

static void op_read(struct fsx *x, int f, bool seq)
{
	struct mfile *m = &x->files[f];
	size_t off, len, want;
	ssize_t n = 0;
	size_t got = 0;

	ensure_open(x, f);
	off = (size_t)rnd_below(x, m->size + 1024);
	len = rnd_len(x, MAX_IO);
	want = off >= m->size ? 0 : (m->size - off < len ? m->size - off : len);
	logop(x, "%s fsx%d %zu..%zu (%zu bytes; size %zu)", seq ? "readseq " : "read    ", f, off,
	      off + len, len, m->size);
	if (x->replay)
		return;
	if (!seq) {
		n = pread(m->fd, x->buf, len, (off_t)off);
		if (n < 0)
			fail(x, "fsx%d: pread %zu bytes at %zu: %s", f, len, off, strerror(errno));
		got = (size_t)n;
	} else {
		if (lseek(m->fd, (off_t)off, SEEK_SET) != (off_t)off)
			fail(x, "fsx%d: lseek to %zu: %s", f, off, strerror(errno));
		while (got < len) {
			n = read(m->fd, x->buf + got, len - got);
			if (n < 0)
				fail(x, "fsx%d: read at %zu: %s", f, off + got, strerror(errno));
			if (n == 0)
				break;
			got += (size_t)n;
		}
	}
	compare(x, f, seq ? "read" : "pread", off, x->buf, got, want);
}

static void op_truncate(struct fsx *x, int f)
{
	struct mfile *m = &x->files[f];
	size_t size;

	ensure_open(x, f);
	switch (rnd_below(x, 4)) {
	case 0:
		size = 0;
		break;
	case 1:
		size = (size_t)rnd_below(x, m->size + 1); /* shrink */
		break;
	default:
		size = (size_t)rnd_below(x, x->maxsize + 1);
		break;
	}
	logop(x, "truncate fsx%d %zu -> %zu", f, m->size, size);
	if (!x->replay && ftruncate(m->fd, (off_t)size) != 0)
		fail(x, "fsx%d: ftruncate to %zu: %s", f, size, strerror(errno));
	model_resize(x, f, size);
}

static void op_append(struct fsx *x, int f)
{
	struct mfile *m = &x->files[f];
	char path[4096];
	int fd = -1, chunks = 1 + (int)rnd_below(x, 3);

	/* A second open with buffered writes of its own would race the first: commit it first. */
	do_close(x, f);
	logop(x, "append   fsx%d %d chunk(s) at %zu%s", f, chunks, m->size,
	      m->exists ? "" : " (creating)");
	m->exists = true;
	if (!x->replay) {
		path_of(x, f, path, sizeof(path));
		fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
		if (fd < 0)
			fail(x, "open %s O_APPEND: %s", path, strerror(errno));
	}
	for (int c = 0; c < chunks; c++) {
		size_t len = rnd_len(x, 16384);

		if (m->size + len > x->maxsize)
			len = x->maxsize - m->size;
		if (len == 0)
			break;
		fill_pattern(x, x->buf, m->size, len);
		if (!x->replay) {
			ssize_t n = write(fd, x->buf, len);

			if (n < 0)
				fail(x, "fsx%d: O_APPEND write of %zu bytes: %s", f, len,
				     strerror(errno));
			if ((size_t)n != len)
				fail(x, "fsx%d: short O_APPEND write: %zd of %zu", f, n, len);
		}
		model_write(x, f, m->size, x->buf, len);
	}
	if (!x->replay && close(fd) != 0)
		fail(x, "fsx%d: close after O_APPEND writes: %s", f, strerror(errno));
}

static void op_reopen(struct fsx *x, int f)
{
	bool trunc = rnd_below(x, 3) == 0;

	logop(x, "reopen   fsx%d%s (size %zu)", f, trunc ? " O_TRUNC" : "", x->files[f].size);
	do_close(x, f);
	do_open(x, f, trunc);
}

static void op_fsync(struct fsx *x, int f)
{
	struct mfile *m = &x->files[f];
	bool data = rnd_below(x, 2) == 0;

	ensure_open(x, f);
	logop(x, "%s fsx%d (size %zu)", data ? "fdatasync" : "fsync    ", f, m->size);
	if (!x->replay && (data ? fdatasync(m->fd) : fsync(m->fd)) != 0)
		fail(x, "fsx%d: %s: %s", f, data ? "fdatasync" : "fsync", strerror(errno));
}

static void op_rename(struct fsx *x, int f)
{
	int g = (f + 1 + (int)rnd_below(x, (uint64_t)x->nfiles - 1)) % x->nfiles;
	struct mfile *src = &x->files[f], *dst = &x->files[g];
	char from[4096], to[4096];
	unsigned char *tmp;

	if (x->nfiles < 2 || !src->exists) {
		logop(x, "rename   skipped (fsx%d does not exist)", f);
		return;
	}
	do_close(x, f);
	do_close(x, g);
	logop(x, "rename   fsx%d (%zu bytes) -> fsx%d (%s)", f, src->size, g,
	      dst->exists ? "replacing" : "new");
	if (!x->replay) {
		path_of(x, f, from, sizeof(from));
		path_of(x, g, to, sizeof(to));
		if (rename(from, to) != 0)
			fail(x, "rename %s -> %s: %s", from, to, strerror(errno));
	}
	tmp = dst->data;
	dst->data = src->data;
	src->data = tmp;
	dst->size = src->size;
	dst->exists = true;
	src->size = 0;
	src->exists = false;
}

static void op_stat(struct fsx *x, int f)
{
	struct mfile *m = &x->files[f];
	char path[4096];
	struct stat st;
	bool by_fd = m->open;

	logop(x, "stat     fsx%d%s (model: %s, size %zu)", f, by_fd ? " (fstat)" : "",
	      m->exists ? "exists" : "absent", m->size);
	if (x->replay)
		return;
	path_of(x, f, path, sizeof(path));
	if (by_fd ? fstat(m->fd, &st) : stat(path, &st)) {
		if (!by_fd && errno == ENOENT && !m->exists)
			return;
		fail(x, "fsx%d: %s: %s (model: %s)", f, by_fd ? "fstat" : "stat", strerror(errno),
		     m->exists ? "exists" : "absent");
	}
	if (!m->exists)
		fail(x, "fsx%d: stat succeeded but the file should not exist", f);
	if (!S_ISREG(st.st_mode))
		fail(x, "fsx%d: not a regular file (mode 0%o)", f, (unsigned)st.st_mode);
	if ((size_t)st.st_size != m->size)
		fail(x, "fsx%d: %s size %jd, expected %zu", f, by_fd ? "fstat" : "stat",
		     (intmax_t)st.st_size, m->size);
}

static void op_unlink(struct fsx *x, int f)
{
	struct mfile *m = &x->files[f];
	char path[4096];

	if (!m->exists) {
		logop(x, "unlink   skipped (fsx%d does not exist)", f);
		return;
	}
	do_close(x, f);
	logop(x, "unlink   fsx%d (%zu bytes)", f, m->size);
	if (!x->replay) {
		path_of(x, f, path, sizeof(path));
		if (unlink(path) != 0)
			fail(x, "unlink %s: %s", path, strerror(errno));
	}
	m->exists = false;
	m->size = 0;
}

static void op_close(struct fsx *x, int f)
{
	logop(x, "close    fsx%d (size %zu)%s", f, x->files[f].size,
	      x->files[f].open ? "" : " (was not open)");
	do_close(x, f);
}

static void step(struct fsx *x)
{
	unsigned total = 0, r;
	int f = (int)rnd_below(x, (uint64_t)x->nfiles);
	enum op_kind k;

	for (k = 0; k < OP_COUNT; k++)
		total += op_weights[k];
	r = (unsigned)rnd_below(x, total);
	for (k = 0; k < OP_COUNT; k++) {
		if (r < op_weights[k])
			break;
		r -= op_weights[k];
	}
	x->counts[k]++;
	switch (k) {
	case OP_WRITE:
		op_write(x, f);
		break;
	case OP_READ:
		op_read(x, f, false);
		break;
	case OP_READSEQ:
		op_read(x, f, true);
		break;
	case OP_TRUNCATE:
		op_truncate(x, f);
		break;
	case OP_APPEND:
		op_append(x, f);
		break;
	case OP_REOPEN:
		op_reopen(x, f);
		break;
	case OP_FSYNC:
		op_fsync(x, f);
		break;
	case OP_RENAME:
		op_rename(x, f);
		break;
	case OP_STAT:
		op_stat(x, f);
		break;
	case OP_UNLINK:
		op_unlink(x, f);
		break;
	case OP_CLOSE:
	case OP_COUNT:
		op_close(x, f);
		break;
	}
}

/* Compares every file in DIR, freshly opened, with the model; and DIR holds nothing else. */
static void verify_all(struct fsx *x)
{
	char path[4096];
	DIR *d;
	struct dirent *de;

	for (int f = 0; f < x->nfiles; f++) {
		struct mfile *m = &x->files[f];
		struct stat st;
		size_t got = 0;
		int fd;

		path_of(x, f, path, sizeof(path));
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0) {
			if (errno == ENOENT && !m->exists)
				continue;
			fail(x, "final check: open %s: %s (model: %s, %zu bytes)", path,
			     strerror(errno), m->exists ? "exists" : "absent", m->size);
		}
		if (!m->exists)
			fail(x, "final check: %s exists but should not", path);
		if (fstat(fd, &st) != 0)
			fail(x, "final check: fstat %s: %s", path, strerror(errno));
		if ((size_t)st.st_size != m->size)
			fail(x, "final check: %s has size %jd, expected %zu", path,
			     (intmax_t)st.st_size, m->size);
		for (;;) {
			ssize_t n = read(fd, x->buf + got, x->maxsize + MAX_IO - got);

			if (n < 0)
				fail(x, "final check: read %s: %s", path, strerror(errno));
			if (n == 0)
				break;
			got += (size_t)n;
		}
		close(fd);
		compare(x, f, "final read", 0, x->buf, got, m->size);
	}
	d = opendir(x->dir);
	if (d == NULL)
		fail(x, "final check: opendir %s: %s", x->dir, strerror(errno));
	while ((de = readdir(d)) != NULL) {
		int f;
		char extra;

		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (sscanf(de->d_name, "fsx%d%c", &f, &extra) != 1 || f < 0 || f >= x->nfiles ||
		    !x->files[f].exists)
			fail(x, "final check: unexpected entry %s/%s", x->dir, de->d_name);
	}
	closedir(d);
}

static void usage(FILE *out)
{
	fprintf(out,
	        "usage: fsx [-s SEED] [-n OPS] [-f FILES] [-m MAXSIZE] [-V] [-v] DIR\n"
	        "  -s SEED     random seed (default: from the clock; printed at start)\n"
	        "  -n OPS      number of operations (default 10000)\n"
	        "  -f FILES    number of files DIR/fsx0.. (default 3, at most %d)\n"
	        "  -m MAXSIZE  largest file size in bytes (default 262144)\n"
	        "  -V          replay the model only, then check that DIR matches its final state\n"
	        "  -v          print every operation\n",
	        MAX_FILES);
}

int main(int argc, char **argv)
{
	struct fsx x = {.nops = 10000, .nfiles = 3, .maxsize = 262144};
	bool have_seed = false;
	int opt;

	while ((opt = getopt(argc, argv, "s:n:f:m:Vvh")) != -1) {
		switch (opt) {
		case 's':
			x.seed = strtoull(optarg, NULL, 0);
			have_seed = true;
			break;
		case 'n':
			x.nops = strtoull(optarg, NULL, 0);
			break;
		case 'f':
			x.nfiles = atoi(optarg);
			break;
		case 'm':
			x.maxsize = strtoull(optarg, NULL, 0);
			break;
		case 'V':
			x.replay = x.replay_mode = true;
			break;
		case 'v':
			x.verbose = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc - 1 || x.nfiles < 1 || x.nfiles > MAX_FILES || x.maxsize < 1) {
		usage(stderr);
		return 2;
	}
	x.dir = argv[optind];
	if (!have_seed)
		x.seed = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 16);
	x.rng = x.seed * 0x9e3779b97f4a7c15ull + 0x632be59bd9b4e019ull;
	if (x.rng == 0)
		x.rng = 1;
	for (int f = 0; f < x.nfiles; f++) {
		x.files[f].data = xmalloc(x.maxsize);
		x.files[f].fd = -1;
	}
	x.buf = xmalloc(x.maxsize + MAX_IO);
	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("fsx: seed %" PRIu64 ", %" PRIu64
	       " operations on %d files of at most %zu bytes in %s%s\n",
	       x.seed, x.nops, x.nfiles, x.maxsize, x.dir, x.replay ? " (replay and check)" : "");

	for (x.op = 1; x.op <= x.nops; x.op++)
		step(&x);
	x.op = x.nops;
	/* The replayed model ends with every file closed, like the run. */
	for (int f = 0; f < x.nfiles; f++)
		do_close(&x, f);
	x.replay = false;
	verify_all(&x);

	printf("fsx: ok, seed %" PRIu64 ":", x.seed);
	for (int k = 0; k < OP_COUNT; k++)
		printf(" %s %" PRIu64, op_names[k], x.counts[k]);
	printf("\n");
	for (int f = 0; f < x.nfiles; f++)
		free(x.files[f].data);
	free(x.buf);
	return 0;
}
