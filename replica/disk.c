/*
 * Data-directory helpers (see disk.h). A new file is only as durable as the directory entry
 * that names it, hence an fsync of the directory after creating, renaming or removing entries.
 * The reserve descriptor is the one piece of process-wide state: it is shared by the loop and
 * the disk workers, under a lock.
 */
#include "kvfs/disk.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static pthread_mutex_t reserve_lock = PTHREAD_MUTEX_INITIALIZER;
static int reserve_fd = -1; /* protected by reserve_lock; on /dev/null, or -1 once spent */

/* Takes the reserve descriptor again if it was spent. Called with reserve_lock held. */
static void refill_locked(void)
{
	if (reserve_fd < 0)
		reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
}

int disk_reserve_init(void)
{
	int rv;

	pthread_mutex_lock(&reserve_lock);
	refill_locked();
	rv = reserve_fd < 0 ? -errno : 0;
	pthread_mutex_unlock(&reserve_lock);
	return rv;
}

bool disk_transient(int rv)
{
	return rv == -EMFILE || rv == -ENFILE;
}

int disk_openat(int dirfd, const char *path, int flags, mode_t mode)
{
	int fd, err;

	flags |= O_CLOEXEC;
	/* Only a spent reserve is refilled here: a descriptor is free now, or this call fails
	 * on its own too and uses none. */
	pthread_mutex_lock(&reserve_lock);
	refill_locked();
	pthread_mutex_unlock(&reserve_lock);
	fd = openat(dirfd, path, flags, mode);
	if (fd >= 0)
		return fd;
	err = errno;
	if (err != EMFILE && err != ENFILE)
		return -err;
	pthread_mutex_lock(&reserve_lock);
	if (reserve_fd >= 0) {
		close(reserve_fd);
		reserve_fd = -1;
		fd = openat(dirfd, path, flags, mode);
		err = errno;
		refill_locked(); /* most likely fails now: the next call tries again */
	}
	pthread_mutex_unlock(&reserve_lock);
	return fd >= 0 ? fd : -err;
}

int disk_fsync_dir(const char *dir)
{
	int fd = disk_openat(AT_FDCWD, dir, O_RDONLY | O_DIRECTORY, 0);
	int rv = 0;

	if (fd < 0)
		return fd;
	if (fsync(fd) < 0)
		rv = -errno;
	close(fd);
	return rv;
}

/* mkdir(path, mode) and, when it made a new entry, an fsync of its parent (the prefix up to
 * `slash`). */
static int make_one(char *path, char *slash, mode_t mode)
{
	int rv;

	if (mkdir(path, mode) < 0)
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
		rv = make_one(path, last, 0755);
		*p = '/';
		if (rv < 0)
			return rv;
		last = p;
	}
	return make_one(path, last, KVFS_DIR_MODE);
}

int disk_tighten(const char *dir, char *msg, size_t len)
{
	struct dirent *e;
	struct stat st;
	unsigned files = 0;
	bool dir_changed = false;
	mode_t dir_was = 0;
	DIR *d;
	int fd, rv = 0;

	msg[0] = '\0';
	fd = disk_openat(AT_FDCWD, dir, O_RDONLY | O_DIRECTORY, 0);
	if (fd < 0) {
		snprintf(msg, len, "cannot read %s: %s", dir, strerror(-fd));
		return fd;
	}
	if (fstat(fd, &st) < 0) {
		rv = -errno;
		snprintf(msg, len, "cannot stat %s: %s", dir, strerror(-rv));
		close(fd);
		return rv;
	}
	if ((st.st_mode & 07777) != KVFS_DIR_MODE) {
		dir_was = st.st_mode & 07777;
		if (fchmod(fd, KVFS_DIR_MODE) < 0) {
			rv = -errno;
			snprintf(msg, len, "cannot make %s private (chmod 0700): %s", dir,
			         strerror(-rv));
			close(fd);
			return rv;
		}
		dir_changed = true;
	}
	d = fdopendir(fd);
	if (!d) {
		rv = -errno;
		snprintf(msg, len, "cannot read %s: %s", dir, strerror(-rv));
		close(fd);
		return rv;
	}
	while ((e = readdir(d)) != NULL) {
		if (fstatat(fd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(st.st_mode) ||
		    !(st.st_mode & 077))
			continue;
		if (fchmodat(fd, e->d_name, st.st_mode & 0700, 0) < 0) {
			rv = -errno;
			snprintf(msg, len, "cannot make %s/%s private (chmod 0600): %s", dir,
			         e->d_name, strerror(-rv));
			break;
		}
		files++;
	}
	closedir(d);
	if (rv < 0)
		return rv;
	if (dir_changed || files) {
		char what[64] = "";

		if (dir_changed)
			snprintf(what, sizeof(what), "the directory from %04o to 0700, ",
			         (unsigned)dir_was);
		snprintf(msg, len,
		         "made data directory %s private (an older kvfs let other local users read "
		         "it): %s%u file(s) to 0600",
		         dir, what, files);
	}
	return (int)files + (dir_changed ? 1 : 0);
}
