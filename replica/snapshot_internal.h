/*
 * What snapshot.c (capturing, writing, listing and pruning snapshot files) shares with
 * snapshot_load.c (loading one back), private to those two files: the format's magic numbers and
 * record kinds, the error-message helpers and the listing of a directory's snapshots.
 */
#ifndef KVFS_REPLICA_SNAPSHOT_INTERNAL_H
#define KVFS_REPLICA_SNAPSHOT_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SNAP_MAGIC_V1    "KVFSSNP1"
#define SNAP_MAGIC_V2    "KVFSSNP2"
#define SNAP_MAGIC_V3    "KVFSSNP3"
#define SNAP_MAGIC       "KVFSSNP4"
/* One lock of KVFSSNP4's lock section (snapshot.h). */
#define SNAP_LOCK_SIZE (8 + 4 + 8 + 8 + 1 + 1 + 8 + 8 + 4 + 8)
#define SNAP_HEADER_SIZE (8 + 8 + 8 + 8 + 8)

/* Record kinds (KVFSSNP2 to 4). */
#define SNAP_KIND_INODE 0 /* an inode's first name, with the inode */
#define SNAP_KIND_LINK  1 /* another name of an inode recorded earlier */

/* Formats a message into err (errlen bytes, always terminated); does nothing if err is NULL. */
void snapshot_set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* strerror for a negative errno, safe on any thread; the result may live in buf. */
const char *snapshot_errstr(int rv, char *buf, size_t len);

/*
 * The indices of the snap-*.snap files in dir, ascending, in *out (the caller frees it; NULL
 * when there are none). With remove_tmp, snap-*.tmp files are removed on the way. A missing
 * directory holds no snapshot. 0, -ENOMEM or another negative errno from reading dir.
 */
int snapshot_list(const char *dir, bool remove_tmp, uint64_t **out, size_t *n);

#endif
