/*
 * A failing disk, for tests: an LD_PRELOAD shim that makes fsync(), fdatasync() and syncfs() fail
 * with EIO once the file named by $KVFS_FAIL_SYNC_TRIGGER exists (the test creates it when the
 * disk should "die"; until then every call goes to the C library). That is what a dying disk
 * looks like to a program: writes still land in the page cache, the flush to the device fails.
 *
 * It is a test helper, not a sanitizer-aware library: with an AddressSanitizer build of kvfs,
 * ASAN_OPTIONS must include verify_asan_link_order=0.
 */
#include <dlfcn.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* True once the trigger file exists. Checked on every call: the test arms it at any moment. */
static int armed(void)
{
	const char *path = getenv("KVFS_FAIL_SYNC_TRIGGER");
	int saved = errno, rv;

	if (path == NULL || path[0] == '\0')
		return 0;
	rv = access(path, F_OK) == 0;
	errno = saved;
	return rv;
}

typedef int (*sync_fn)(int);

/* The C library's function `name`, found once (through memcpy: ISO C has no cast from dlsym's
 * object pointer to a function pointer). */
static sync_fn next(sync_fn *cache, const char *name)
{
	if (*cache == NULL) {
		void *sym = dlsym(RTLD_NEXT, name);

		memcpy(cache, &sym, sizeof(sym));
	}
	return *cache;
}

/* What each replacement does: EIO once armed, else the real call. */
static int sync_call(sync_fn *cache, const char *name, int fd)
{
	if (armed()) {
		errno = EIO;
		return -1;
	}
	return next(cache, name)(fd);
}

int fsync(int fd)
{
	static sync_fn real;

	return sync_call(&real, "fsync", fd);
}

int fdatasync(int fd)
{
	static sync_fn real;

	return sync_call(&real, "fdatasync", fd);
}

int syncfs(int fd)
{
	static sync_fn real;

	return sync_call(&real, "syncfs", fd);
}
