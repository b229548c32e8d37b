/*
 * Durable-directory helpers (see disk.h). A new file is only as durable as the directory entry
 * that names it, hence an fsync of the directory after creating, renaming or removing entries.
 */
#include "kvfs/disk.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int disk_fsync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int rv = 0;

	if (fd < 0)
		return -errno;
	if (fsync(fd) < 0)
		rv = -errno;
	close(fd);
	return rv;
}

/* mkdir(path) and, when it made a new entry, an fsync of its parent (the prefix up to `slash`). */
static int make_one(char *path, char *slash)
{
	int rv;

	if (mkdir(path, 0755) < 0)
		return errno == EEXIST ? 0 : -errno;
	if (!slash)
		return disk_fsync_dir(".");
	if (slash == path)
		return disk_fsync_dir("/");
	*slash = '\0';
	rv = disk_fsync_dir(path);
	*slash = '/';
	return rv;
}

int disk_make_dirs(const char *dir)
{
	char path[PATH_MAX];
	char *last = NULL;
	size_t len = strlen(dir);
	int rv;

	if (len == 0 || len >= sizeof(path))
		return -ENAMETOOLONG;
	memcpy(path, dir, len + 1);
	while (len > 1 && path[len - 1] == '/')
		path[--len] = '\0';
	for (char *p = path + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		rv = make_one(path, last);
		*p = '/';
		if (rv < 0)
			return rv;
		last = p;
	}
	return make_one(path, last);
}
