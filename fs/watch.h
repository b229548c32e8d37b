/*
 * `kvfs watch [--json] [--from INDEX] PATH...`: prints the changes committed under the PATHs
 * (all in one kvfs mount; they need not exist) as they commit, from the mount's change feed
 * (/.changes, fuse_changes.c), one line each in the feed's text format, or as JSON lines.
 * Exit status: 0 the feed ended, 1 reading it failed, 2 bad usage or a PATH in no kvfs mount,
 * 3 the start index (or the point a slow watcher had reached) is older than the node keeps.
 */
#ifndef KVFS_FS_WATCH_H
#define KVFS_FS_WATCH_H

#define KVFS_WATCH_ENDED  0
#define KVFS_WATCH_FAILED 1
#define KVFS_WATCH_USAGE  2
#define KVFS_WATCH_GONE   3

/* argv[0] is "watch". Returns the exit status. */
int watch_main(int argc, char **argv);

#endif /* KVFS_FS_WATCH_H */
