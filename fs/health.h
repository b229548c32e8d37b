/*
 * `kvfs health [--timeout MS] MOUNTPOINT`: exits 0 only when the node mounted there can serve
 * writes now (the `writable` fact of its /.status), after one line saying why or why not.
 * Exit status: 0 healthy, 1 unhealthy, 2 bad usage, 3 the mount did not answer (in time, or at
 * all: not a kvfs mount, a dead mount). The read runs in a child process, so a hung mount costs
 * the timeout, never a hung check.
 */
#ifndef KVFS_FS_HEALTH_H
#define KVFS_FS_HEALTH_H

#include <stddef.h>

#define KVFS_HEALTH_OK        0
#define KVFS_HEALTH_UNHEALTHY 1
#define KVFS_HEALTH_USAGE     2
#define KVFS_HEALTH_NO_ANSWER 3

/* argv[0] is "health". Returns the exit status. */
int health_main(int argc, char **argv);

/* Judges /.status text: writes the one-line verdict ("healthy: follower of 1, epoch 7, lag 0",
 * "unhealthy: no majority (role candidate, leader none, epoch 7)") into line and returns
 * KVFS_HEALTH_OK or KVFS_HEALTH_UNHEALTHY. Pure. */
int health_judge(const char *status, char *line, size_t len);

#endif /* KVFS_FS_HEALTH_H */
