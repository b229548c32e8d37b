/*
 * Process-level parts of the daemon (see daemon.h). The library versions are the ones the process
 * runs with (fuse_pkgversion, uv_version_string, sodium_version_string), except ZooKeeper's C
 * client, which has no run-time version call: its headers' ZOO_VERSION.
 */
#include "daemon.h"

#include <errno.h>
#include <limits.h>
#include <string.h>
#include <unistd.h>
#include <fuse_lowlevel.h>
#include <sodium.h>
#include <uv.h>
#include <zookeeper/zookeeper_version.h>

#include "fuse_mount_opts.h"
#include "kvfs/logging.h"
#include "options.h"

void daemon_print_version(FILE *f)
{
	fprintf(f,
	        "kvfs %s\n"
	        "libfuse %s (FUSE API %d), libuv %s, libsodium %s, ZooKeeper C client %s\n",
	        KVFS_VERSION, fuse_pkgversion(), FUSE_USE_VERSION, uv_version_string(),
	        sodium_version_string(), ZOO_VERSION);
}

int daemon_start_logging(const struct kvfs_options *opts, char *err, size_t errlen)
{
	int rv;

	logging_init(opts->id, opts->log_level);
	if (opts->log_file) {
		rv = logging_to_file(opts->log_file);
		if (rv < 0) {
			snprintf(err, errlen, "--log-file: cannot open %s: %s", opts->log_file,
			         strerror(-rv));
			return -1;
		}
	} else if (!opts->foreground) {
		logging_hold();
	}
	return 0;
}

int daemon_log_to_data_dir(const struct kvfs_options *opts, char *err, size_t errlen)
{
	char path[PATH_MAX];
	int rv;

	if (opts->foreground || opts->log_file)
		return 0;
	snprintf(path, sizeof(path), "%s/kvfs.log", opts->data_dir);
	rv = logging_to_file(path);
	if (rv < 0) {
		snprintf(err, errlen, "cannot write the log %s: %s (or give --log-file)", path,
		         strerror(-rv));
		return -1;
	}
	return 0;
}

int daemon_check_fuse_user(const struct kvfs_options *opts, const char *fuse_conf, char *err,
                           size_t errlen)
{
	if (getuid() == 0 || !options_has_fuse_opt(opts->fuse_opts, "allow_other") ||
	    fuse_mount_opts_user_allow_other(fuse_conf))
		return 0;
	snprintf(err, errlen,
	         "-o allow_other: a user other than root may use it only when %s has a line "
	         "user_allow_other (ask the administrator to add it), or run kvfs as root, or "
	         "drop allow_other",
	         fuse_conf);
	return -1;
}
