/*
 * Flat temporary directories for the unit tests that need a data directory (test_snapshot.c,
 * test_node.c): made with mkdtemp under /tmp, removed with the files in them. Header-only.
 */
#ifndef KVFS_TESTS_TMPDIR_H
#define KVFS_TESTS_TMPDIR_H

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

/* Makes /tmp/kvfs-test-TAG-XXXXXX in dir (size bytes). Returns dir, or NULL (errno set). */
static inline char *tmpdir_make(char *dir, size_t size, const char *tag)
{
	snprintf(dir, size, "/tmp/kvfs-test-%s-XXXXXX", tag);
	return mkdtemp(dir);
}

/* Removes dir and the files in it (not subdirectories), as far as it can. */
static inline void tmpdir_remove(const char *dir)
{
	struct dirent *de;
	char path[512];
	DIR *d = opendir(dir);

	while (d && (de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		unlink(path);
	}
	if (d)
		closedir(d);
	rmdir(dir);
}

#endif /* KVFS_TESTS_TMPDIR_H */
