/*
 * The -o option list, as a user, /etc/fstab or mount(8) through /sbin/mount.fuse3 give it: split
 * with libfuse's fuse_opt into kvfs's own keys, options that only mean something to mount(8)
 * (dropped), and FUSE mount options (passed on). Also the checks on FUSE options that must come
 * before anything is created, and the hint after a failed mount.
 */
#ifndef KVFS_FS_FUSE_MOUNT_OPTS_H
#define KVFS_FS_FUSE_MOUNT_OPTS_H

#include <stdbool.h>
#include <stddef.h>

/*
 * Called for each option of the list, unescaped ("id=2", "insecure", "allow_other"): returns 1
 * when it is kvfs's own (taken), 0 when it is not, or a negative errno to stop the split.
 */
typedef int (*kvfs_mount_opt_fn)(void *arg, const char *opt);

/*
 * Splits one -o argument (comma-separated, "\," escapes a comma). Options own() does not take and
 * that are not mount(8)'s own (_netdev, nofail, noauto, auto, user, nouser, users, owner, group,
 * defaults, x-*, comment=*) are appended to *kept, comma-joined and escaped again (*kept is
 * malloc'd or stays NULL). Returns 0, the negative errno from own(), or -ENOMEM.
 */
int fuse_mount_opts_split(const char *list, kvfs_mount_opt_fn own, void *arg, char **kept);

/*
 * The permission policy: a list with allow_other but not default_permissions gets
 * ",default_permissions" appended (a shared mount must check who may do what), unless opt_out
 * (--no-default-permissions). Returns 1 when it was added, 0 when *opts stays, or -ENOMEM.
 */
int fuse_mount_opts_imply_permissions(char **opts, bool opt_out);

/* True for an option that only mount(8) or mount.fuse3 use, never FUSE nor kvfs. */
bool fuse_mount_opts_mount_only(const char *opt);

/*
 * True when a user other than root may mount with allow_other: the fuse.conf at path has a line
 * "user_allow_other" (what fusermount3 checks).
 */
bool fuse_mount_opts_user_allow_other(const char *fuse_conf);

/*
 * After fuse_session_mount failed (libfuse or fusermount3 has printed its own line): writes to buf
 * the likeliest reason with what to do, from the state of the device at dev_fuse.
 */
void fuse_mount_opts_hint(const char *dev_fuse, char *buf, size_t len);

#endif /* KVFS_FS_FUSE_MOUNT_OPTS_H */
