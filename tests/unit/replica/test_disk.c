/*
 * Unit tests of the data-directory helpers (replica/disk.c): disk_make_dirs makes the data
 * directory 0700 whatever the umask; disk_tighten makes a directory left by an older kvfs (0755,
 * files 0644) private and says so once, leaving symbolic links and subdirectories alone; and
 * disk_openat, with the open files limit lowered until the process is out of descriptors, opens
 * one more file by giving up its reserve descriptor, then reports -EMFILE (a transient error),
 * and takes the reserve back once a descriptor is free.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kvfs/disk.h"

#include "tmpdir.h"

static mode_t mode_of(const char *path)
{
	struct stat st;

	assert_int_equal(lstat(path, &st), 0);
	return st.st_mode & 07777;
}

static void make_file(const char *path, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);

	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(chmod(path, mode), 0);
}

static void test_make_dirs_private(void **state)
{
	char tmp[64], dir[128];
	mode_t old = umask(0);

	(void)state;
	assert_non_null(tmpdir_make(tmp, sizeof(tmp), "disk"));
	snprintf(dir, sizeof(dir), "%s/data", tmp);
	assert_int_equal(disk_make_dirs(dir), 0);
	umask(old);
	assert_int_equal(mode_of(dir), KVFS_DIR_MODE);
	assert_int_equal(disk_make_dirs(dir), 0); /* exists: fine */
	rmdir(dir);
	tmpdir_remove(tmp);
}

static void test_tighten(void **state)
{
	char dir[64], path[128], msg[512], sub[128], link[128];

	(void)state;
	assert_non_null(tmpdir_make(dir, sizeof(dir), "disk"));
	assert_int_equal(chmod(dir, 0755), 0);
	snprintf(path, sizeof(path), "%s/log-00000000000000000001.seg", dir);
	make_file(path, 0644);
	snprintf(path, sizeof(path), "%s/meta", dir);
	make_file(path, 0600); /* already private */
	snprintf(path, sizeof(path), "%s/commit", dir);
	make_file(path, 0666);
	snprintf(sub, sizeof(sub), "%s/sub", dir);
	assert_int_equal(mkdir(sub, 0755), 0);
	snprintf(link, sizeof(link), "%s/link", dir);
	assert_int_equal(symlink("/etc/hostname", link), 0);

	assert_int_equal(disk_tighten(dir, msg, sizeof(msg)), 3); /* the directory, two files */
	assert_non_null(strstr(msg, "0755 to 0700"));
	assert_non_null(strstr(msg, "2 file(s) to 0600"));
	assert_int_equal(mode_of(dir), 0700);
	assert_int_equal(mode_of(path), 0600);
	snprintf(path, sizeof(path), "%s/log-00000000000000000001.seg", dir);
	assert_int_equal(mode_of(path), 0600);
	snprintf(path, sizeof(path), "%s/meta", dir);
	assert_int_equal(mode_of(path), 0600);
	assert_int_equal(mode_of(sub), 0755); /* not ours: left alone */

	/* Private already: nothing to say. */
	assert_int_equal(disk_tighten(dir, msg, sizeof(msg)), 0);
	assert_string_equal(msg, "");

	unlink(link);
	rmdir(sub);
	tmpdir_remove(dir);
}

static void test_tighten_missing(void **state)
{
	char msg[256];

	(void)state;
	assert_int_equal(disk_tighten("/nonexistent/kvfs-data", msg, sizeof(msg)), -ENOENT);
	assert_non_null(strstr(msg, "cannot read"));
}

static void test_openat_reserve(void **state)
{
	struct rlimit saved, low;
	char dir[64];
	int fds[64], n = 0, fd, fd2;

	(void)state;
	assert_non_null(tmpdir_make(dir, sizeof(dir), "disk"));
	assert_int_equal(disk_reserve_init(), 0);
	assert_int_equal(getrlimit(RLIMIT_NOFILE, &saved), 0);
	/* Room for a few more descriptors only, then take them all. */
	fd = open("/dev/null", O_RDONLY);
	assert_true(fd >= 0);
	close(fd);
	low = saved;
	low.rlim_cur = (rlim_t)fd + 8;
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
	while (n < 64 && (fd = open("/dev/null", O_RDONLY)) >= 0)
		fds[n++] = fd;
	assert_int_equal(errno, EMFILE);
	assert_true(n < 64);

	/* Out of descriptors: the reserve makes room for one file. */
	fd = disk_openat(AT_FDCWD, dir, O_RDONLY | O_DIRECTORY, 0);
	assert_true(fd >= 0);
	/* The reserve is spent and cannot be taken again: the next one is a transient error. */
	fd2 = disk_openat(AT_FDCWD, dir, O_RDONLY | O_DIRECTORY, 0);
	assert_int_equal(fd2, -EMFILE);
	assert_true(disk_transient(fd2));
	assert_false(disk_transient(-EIO));
	assert_true(disk_transient(disk_fsync_dir(dir)));

	/* A descriptor is free again: the next call takes the reserve back first, and then
	 * still has the reserve to spend for its own file. */
	close(fds[--n]);
	fd2 = disk_openat(AT_FDCWD, dir, O_RDONLY | O_DIRECTORY, 0);
	assert_true(fd2 >= 0);
	close(fd2);

	close(fd);
	while (n > 0)
		close(fds[--n]);
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &saved), 0);
	assert_int_equal(disk_fsync_dir(dir), 0);
	tmpdir_remove(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_make_dirs_private),
	    cmocka_unit_test(test_tighten),
	    cmocka_unit_test(test_tighten_missing),
	    cmocka_unit_test(test_openat_reserve),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
