/*
 * A process out of file descriptors, for tests: an LD_PRELOAD shim that makes open() and
 * openat() (and their 64-bit names) fail with EMFILE for every path whose last component
 * contains one of the comma-separated strings of $KVFS_FAIL_OPEN_MATCH (e.g. "log-,snap-" for
 * log segments and snapshots), while the file named by
 * $KVFS_FAIL_OPEN_TRIGGER exists. Every other call, and every call while the trigger is absent,
 * goes to the C library. Every matching call fails, the retry after kvfs gives up its reserve
 * descriptor included: what is left to see is how kvfs handles a lack of descriptors that lasts.
 *
 * It is a test helper, not a sanitizer-aware library: with an AddressSanitizer build of kvfs,
 * ASAN_OPTIONS must include verify_asan_link_order=0.
 */
/* Both names of each call are defined here: the headers must not rename open to open64. */
#undef _FILE_OFFSET_BITS
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef int (*open_fn)(const char *, int, ...);
typedef int (*openat_fn)(int, const char *, int, ...);

/* True when the call on path must fail now. Checked on every call: the test arms it at any
 * moment. */
static int fails(const char *path)
{
	const char *match = getenv("KVFS_FAIL_OPEN_MATCH");
	const char *trigger = getenv("KVFS_FAIL_OPEN_TRIGGER");
	const char *base;
	int saved = errno, rv;

	if (!path || !match || !match[0] || !trigger || !trigger[0])
		return 0;
	base = strrchr(path, '/');
	base = base ? base + 1 : path;
	rv = 0;
	for (const char *m = match; *m && !rv;) {
		size_t len = strcspn(m, ",");

		for (const char *p = base; len && *p && !rv; p++)
			rv = strncmp(p, m, len) == 0;
		m += len;
		m += *m == ',';
	}
	if (rv)
		rv = access(trigger, F_OK) == 0;
	errno = saved;
	return rv;
}

/* The C library's function `name`; the callers copy it into a function pointer with memcpy (ISO
 * C has no cast from dlsym's object pointer to a function pointer). */
static void *next(const char *name)
{
	return dlsym(RTLD_NEXT, name);
}

static mode_t mode_arg(int flags, va_list ap)
{
	return (flags & O_CREAT) || (flags & O_TMPFILE) == O_TMPFILE ? (mode_t)va_arg(ap, int) : 0;
}

static int do_open(const char *name, const char *path, int flags, mode_t mode)
{
	void *sym = next(name);
	open_fn real;

	if (fails(path)) {
		errno = EMFILE;
		return -1;
	}
	memcpy(&real, &sym, sizeof(sym));
	return real(path, flags, mode);
}

static int do_openat(const char *name, int dirfd, const char *path, int flags, mode_t mode)
{
	void *sym = next(name);
	openat_fn real;

	if (fails(path)) {
		errno = EMFILE;
		return -1;
	}
	memcpy(&real, &sym, sizeof(sym));
	return real(dirfd, path, flags, mode);
}

int open(const char *path, int flags, ...)
{
	va_list ap;
	mode_t mode;

	va_start(ap, flags);
	mode = mode_arg(flags, ap);
	va_end(ap);
	return do_open("open", path, flags, mode);
}

int open64(const char *path, int flags, ...)
{
	va_list ap;
	mode_t mode;

	va_start(ap, flags);
	mode = mode_arg(flags, ap);
	va_end(ap);
	return do_open("open64", path, flags, mode);
}

int openat(int dirfd, const char *path, int flags, ...)
{
	va_list ap;
	mode_t mode;

	va_start(ap, flags);
	mode = mode_arg(flags, ap);
	va_end(ap);
	return do_openat("openat", dirfd, path, flags, mode);
}

int openat64(int dirfd, const char *path, int flags, ...)
{
	va_list ap;
	mode_t mode;

	va_start(ap, flags);
	mode = mode_arg(flags, ap);
	va_end(ap);
	return do_openat("openat64", dirfd, path, flags, mode);
}
