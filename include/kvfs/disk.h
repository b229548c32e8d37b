/*
 * Small helpers for the files of a data directory, shared by the log and its neighbours (node,
 * snapshots): the steps that make a new file or a rename survive a crash, the modes that keep
 * the data private (the directory 0700, every file in it 0600: values are readable by their
 * owner on the mount only), and opening files when the process runs out of descriptors.
 *
 * Out of descriptors (EMFILE, ENFILE) is a transient failure, not a disk failure: the process
 * keeps one reserve descriptor (on /dev/null, opened by disk_reserve_init), gives it back to
 * open what it must and takes it again later, so a file the node needs can still be opened
 * while idle connections hold every other descriptor. A caller that still gets -EMFILE or
 * -ENFILE (disk_transient()) fails the current operation and tries again later; the node does
 * not stop, as it must on an I/O error (EIO from write or fsync).
 */
#ifndef KVFS_DISK_H
#define KVFS_DISK_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* The modes of the data directory and of every file kvfs makes in it. */
#define KVFS_DIR_MODE  0700
#define KVFS_FILE_MODE 0600

/* Opens the reserve descriptor if it is not open (once per process is enough; later calls do
 * nothing). Returns 0 or a negative errno (then there is no reserve yet; disk_openat tries
 * again). Thread-safe. */
int disk_reserve_init(void);

/*
 * openat(dirfd, path, flags, mode) with O_CLOEXEC added; a file it creates gets `mode` (pass
 * KVFS_FILE_MODE), whatever the umask allows beyond it. When the process or the system is out of
 * descriptors, the reserve descriptor is given up for one more try, and taken again as soon as
 * there is room (at a later call). Returns the descriptor, or a negative errno: -EMFILE or -ENFILE
 * still means out of descriptors (disk_transient()). Thread-safe.
 */
int disk_openat(int dirfd, const char *path, int flags, mode_t mode);

/* Whether rv (a negative errno) is a transient lack of resources (out of descriptors), worth
 * trying again later, rather than a failure of the disk. */
bool disk_transient(int rv);

/* fsyncs the directory dir, so entries created, renamed or removed in it are durable.
 * Returns 0 or a negative errno (disk_transient() for no descriptor to open it with). */
int disk_fsync_dir(const char *dir);

/* Creates dir and its missing parents, like mkdir -p, fsyncing each parent whose entries
 * changed: dir itself with KVFS_DIR_MODE, the parents with 0755. Returns 0 (also when dir
 * exists) or a negative errno. */
int disk_make_dirs(const char *dir);

/*
 * Tightens a data directory made by an older kvfs: the directory to KVFS_DIR_MODE, and each
 * regular file directly in it that others may read or write to its owner's bits alone (0644
 * becomes 0600). Symbolic links and subdirectories are left alone. Returns the number of
 * entries changed (the directory counts as one) and says in msg what changed ("" when nothing
 * did); or a negative errno (the directory cannot be read or changed; some entries may have been
 * tightened), with a message in msg.
 */
int disk_tighten(const char *dir, char *msg, size_t len);

#endif /* KVFS_DISK_H */
