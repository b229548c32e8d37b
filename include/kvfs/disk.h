/*
 * Small durable-directory helpers shared by the log's neighbours (node, snapshots): the steps that
 * make a new file or a rename survive a crash.
 */
#ifndef KVFS_DISK_H
#define KVFS_DISK_H

/* fsyncs the directory dir, so entries created, renamed or removed in it are durable.
 * Returns 0 or a negative errno. */
int disk_fsync_dir(const char *dir);

/* Creates dir and its missing parents (mode 0755), like mkdir -p, fsyncing each parent whose
 * entries changed. Returns 0 (also when dir exists) or a negative errno. */
int disk_make_dirs(const char *dir);

#endif /* KVFS_DISK_H */
