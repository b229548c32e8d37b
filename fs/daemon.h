/*
 * Process-level parts of the kvfs daemon that are not the node: the version line, where log lines
 * go from the first one, and the checks of FUSE options that need the running user.
 */
#ifndef KVFS_FS_DAEMON_H
#define KVFS_FS_DAEMON_H

#include <stddef.h>
#include <stdio.h>

struct kvfs_options;

/* Writes "kvfs VERSION" and the versions of the libraries it runs with to f. */
void daemon_print_version(FILE *f);

/*
 * Sets the log level and destination for opts: --log-file (opened now, so that every line goes
 * there), stderr (-f), or, in the background, lines held until daemon_log_to_data_dir. Returns 0,
 * or -1 with a message in err.
 */
int daemon_start_logging(const struct kvfs_options *opts, char *err, size_t errlen);

/*
 * The background default, once the data directory exists: DATA/kvfs.log gets the held lines and
 * every later one. Does nothing with -f or --log-file. Returns 0, or -1 with a message in err.
 */
int daemon_log_to_data_dir(const struct kvfs_options *opts, char *err, size_t errlen);

/*
 * Refuses FUSE options this user cannot mount with, before anything is created: allow_other for
 * a user other than root without user_allow_other in fuse_conf (fusermount3 would refuse it
 * only at the mount). Returns 0, or -1 with a message in err.
 */
int daemon_check_fuse_user(const struct kvfs_options *opts, const char *fuse_conf, char *err,
                           size_t errlen);

#endif /* KVFS_FS_DAEMON_H */
