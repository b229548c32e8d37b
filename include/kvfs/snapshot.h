/*
 * Snapshots: the whole store at one log index, in one file, so the log before it can go.
 *
 * File snap-<index, 20 digits>.snap in the data directory:
 *
 *     "KVFSSNP4"  u64 index  u64 epoch  u64 record_count  u64 session_count
 *     record_count times:  u64 parent_ino  u32 name_len  name  u64 ino  u8 kind
 *         kind 0 (the inode's first name), then:  u32 mode  u32 uid  u32 gid  u32 rdev
 *                         i64 atime_ns  i64 mtime_ns  i64 ctime_ns  u64 value_len  value
 *         kind 1 (another name of an inode recorded earlier): nothing more
 *     session_count times: u32 origin  u64 seq  i32 err  u64 ino
 *     u64 config_index  u32 config_len  config_len bytes: the body of the CONFIG entry (config.h)
 *         of the configuration in force at index, request name empty; 0 and 0 when the store
 *         applied no CONFIG entry (the bootstrap configuration, voters 1..cluster size)
 *     u32 xattr_count  xattr_count times (inodes with extended attributes, record order):
 *         u64 ino  u32 n  n times: u32 name_len  name  u32 value_len  value  (names ascending)
 *     u32 lock_count, lock_count times: u64 ino  u32 node  u64 incarnation  u64 owner  u8 kind
 *         u8 type  u64 start  u64 end  u32 pid  u64 token   (the lock table, store.h)
 *     u32 crc32c of everything before it
 *
 * little-endian, one record per name in store_foreach() order (the root's first, a directory's
 * before its entries). Files of the previous format, "KVFSSNP1" (one record per inode:
 * u64 ino  u64 parent_ino  u32 mode  u32 uid  u32 gid  i64 atime_ns  i64 mtime_ns  i64 ctime_ns
 * u32 name_len  name  u64 value_len  value), of "KVFSSNP2" (KVFSSNP3 without the
 * configuration: the bootstrap one) and of "KVFSSNP3" (KVFSSNP4 without the attribute and lock
 * sections: no attributes, no locks) still load; snapshots are always written as KVFSSNP4, which a
 * release before it refuses to load. store_config() of a loaded store is the snapshot's
 * configuration (NULL: the bootstrap one).
 *
 * Taking one does not stop service: snapshot_capture() runs on the loop thread and only copies
 * metadata and takes references on the (immutable while shared) values; snapshot_write() does
 * the slow part on a worker thread: write snap-N.tmp, fsync it, rename it to snap-N.snap, fsync
 * the directory. snapshot_free() runs on the loop thread again, since it drops value references.
 */
#ifndef KVFS_SNAPSHOT_H
#define KVFS_SNAPSHOT_H

#include <stddef.h>
#include <stdint.h>

struct kvfs_store;
struct kvfs_snapshot;

/* Captures the store's current state (at store_applied_index()). -ENOMEM on failure. */
int snapshot_capture(const struct kvfs_store *s, struct kvfs_snapshot **out);

/* Index and epoch of a captured snapshot. */
uint64_t snapshot_index(const struct kvfs_snapshot *snap);
uint64_t snapshot_epoch(const struct kvfs_snapshot *snap);

/*
 * Writes snap durably into dir as described above. Returns 0, or a negative errno with a message
 * in err; on failure the temporary file is removed and no .snap file appears.
 */
int snapshot_write(const struct kvfs_snapshot *snap, const char *dir, char *err, size_t errlen);

/* Frees a captured snapshot, dropping its value references. NULL is ignored. */
void snapshot_free(struct kvfs_snapshot *snap);

/*
 * Loads the newest valid snapshot in dir into a new store, *out (an empty store from store_init()
 * when there is no snapshot). Snapshot files that fail their checksum are skipped in favour of an
 * older one (a note goes to err, and the call still succeeds). Sets *index to the snapshot's index
 * (0: none). Returns 0, or a negative errno with a message in err and *out untouched (-EBADMSG:
 * a snapshot passed its checksum but does not make a valid tree). Leftover snap-*.tmp files are
 * removed.
 */
int snapshot_load_latest(const char *dir, struct kvfs_store **out, uint64_t *index, char *err,
                         size_t errlen);

/*
 * Loads snapshot file `index` of dir (one received from a peer) into a new store, *out. Returns
 * 0, or a negative errno with a message in err and *out untouched (-EBADMSG: the file is too
 * short, fails its checksum or does not make a valid tree). Removes nothing.
 */
int snapshot_load(const char *dir, uint64_t index, struct kvfs_store **out, char *err,
                  size_t errlen);

/* The path of the snapshot file of `index` in dir: 0, or -ENAMETOOLONG. */
int snapshot_path(const char *dir, uint64_t index, char *buf, size_t len);

/* Removes all but the `keep` newest snapshot files in dir. Returns 0 or a negative errno. */
int snapshot_prune(const char *dir, unsigned keep);

/* Index of the oldest snapshot file in dir (0 if none): the log is needed from just after it. */
uint64_t snapshot_oldest_index(const char *dir);

#endif /* KVFS_SNAPSHOT_H */
