/*
 * The log: the replica's write-ahead log, a directory of segment files of records.
 *
 * A segment is named log-<first index, 20 digits>.seg and holds consecutive records. A record is
 *
 *     u32 crc32c   of everything after this field (len, epoch, index, payload)
 *     u32 len      payload bytes
 *     u64 epoch
 *     u64 index    one more than the previous record's, across segments
 *     payload      len bytes (an encoded struct kvfs_op)
 *
 * all little-endian. A batch of records is written with one write and made durable with one
 * fdatasync before the next batch is written, so after a crash only the last batch can be torn.
 *
 * Recovery (log_open) reads every segment in order. At the first record that is not valid
 * (short, bad length, bad checksum, wrong index) it looks for any valid record after it in the
 * same segment or a later one: if there is none, the bad bytes are a torn or zero-filled tail and
 * are cut off (ftruncate + fsync, later segments removed); if there is one, records that were
 * already acknowledged are damaged and log_open refuses with a message naming the file and offset.
 *
 * Truncation (log_truncate_after) removes the segments after the one that keeps the new last
 * record, the last one first with a directory fsync after each, then cuts that one (ftruncate +
 * fdatasync): a crash at any point leaves a prefix of the log, never a gap, so recovery accepts it.
 *
 * Reading back (log_read) preads the segment files, using an in-memory index of the segments and,
 * within each, the offset of every 64th record (built at open and on append); each record's
 * checksum and index are checked again.
 *
 * Threads: log_open/log_close on any one thread; log_append_batch, log_truncate_after,
 * log_compact and log_read are called from one worker thread at a time (never concurrently with
 * each other: a read may not overlap an append); the getters from the thread that owns the log
 * while none of those is in flight. No clock, no libuv.
 */
#ifndef KVFS_LOG_H
#define KVFS_LOG_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define KVFS_LOG_HEADER_SIZE           24u
#define KVFS_LOG_SEGMENT_BYTES_DEFAULT (64u << 20)

struct kvfs_log;

struct kvfs_log_record {
	uint64_t epoch;
	uint64_t index;
	const uint8_t *payload; /* borrowed; valid only during the callback */
	uint32_t len;
};

/* Called by log_open (and log_read) for each valid record in index order. A non-zero return stops
 * log_open, which closes what it opened and returns that value (log_read likewise returns it). It
 * must not call into the log. */
typedef int (*kvfs_log_replay_fn)(void *arg, const struct kvfs_log_record *rec);

struct kvfs_log_options {
	uint64_t
	    segment_bytes; /* start a new segment once the current one reaches this; 0 = default */
};

/*
 * Opens (creating if needed) the log in directory dir, recovering as described above and calling
 * fn for every valid record. On success *out is the log and 0 is returned. On failure returns a
 * negative errno and writes a one-line explanation to err (errlen bytes): -EBADMSG for damaged
 * acknowledged records or a gap in the indices ("log-...seg: record at offset 4242 (index 17) is
 * damaged but valid records follow at offset 5000; refusing to start: acknowledged writes would
 * be lost"), other errnos for I/O errors.
 */
int log_open(struct kvfs_log **out, const char *dir, const struct kvfs_log_options *opts,
             kvfs_log_replay_fn fn, void *arg, char *err, size_t errlen);

/* Closes the log's files and frees it. */
void log_close(struct kvfs_log *log);

/*
 * First and last index present in the log; both 0 when it holds no record. Exception: when
 * log_truncate_after(log, index) has removed every record, log_last_index is index (the next
 * append must carry index + 1) until the log is closed; a reopened empty log takes any index.
 */
uint64_t log_first_index(const struct kvfs_log *log);
uint64_t log_last_index(const struct kvfs_log *log);

/* Bytes a record with a payload of len bytes takes. */
static inline size_t log_record_size(uint32_t len)
{
	return KVFS_LOG_HEADER_SIZE + (size_t)len;
}

/* The payload length of the sealed record at rec (its header's len field). */
static inline uint32_t log_record_len(const uint8_t *rec)
{
	uint32_t len;

	memcpy(&len, rec + 4, 4);
	return len;
}

/*
 * Fills in the header of the record at rec, whose payload of len bytes is already in place at
 * rec + KVFS_LOG_HEADER_SIZE, checksum included.
 */
void log_record_seal(uint8_t *rec, uint64_t epoch, uint64_t index, uint32_t len);

/*
 * Appends len bytes of sealed records buf, indices first..last
 * (first == log_last_index() + 1, or any index when the log holds no record and was not emptied
 * by log_truncate_after) and makes them
 * durable (fdatasync; a new segment also fsyncs the directory). Returns 0 once
 * durable. If the write fails (-ENOSPC, -EDQUOT ...), the segment is cut back to its previous
 * length, nothing of the batch remains and that errno is returned: the caller may go on. Any
 * other failure, an fsync error above all, returns -EIO and leaves the log unusable: the caller
 * must stop, since the kernel may have dropped the dirty pages.
 */
int log_append_batch(struct kvfs_log *log, const uint8_t *buf, size_t len, uint64_t first,
                     uint64_t last);

/*
 * Removes whole segments all of whose records have index <= upto (never the segment being
 * written), then fsyncs the directory. Returns 0 or a negative errno (the log stays usable).
 */
int log_compact(struct kvfs_log *log, uint64_t upto);

/*
 * Removes durably every record with an index above index, so that log_last_index() == index and
 * the next append must carry index + 1. index >= log_last_index() does nothing and returns 0;
 * index < log_first_index() - 1 returns -EINVAL (those records were compacted away, not
 * truncated). The segment holding index + 1 is cut at that record (ftruncate + fdatasync), or
 * removed if that record is its first; the segments after it are removed first, the last one
 * first, each followed by a directory fsync: after a crash at any point, recovery finds the log as
 * before, as after, or a prefix of it in between, never a gap. A failure before anything changed
 * on disk (-EBADMSG if the record cannot be found where the log wrote it, -EMFILE, -ENOMEM ...)
 * leaves the log as it was and usable; once a file was removed or cut, any failure returns -EIO
 * and leaves the log unusable (the caller must stop), like log_append_batch. Returns 0 once
 * durable. A log already unusable returns -EIO.
 */
int log_truncate_after(struct kvfs_log *log, uint64_t index);

/*
 * Removes every record (a snapshot from the leader replaced them all): the next append must carry
 * index `next`. Segments go newest first, each followed by a directory fsync. Same thread rule as
 * log_append_batch. Returns 0, -EINVAL (next 0), -EIO (an earlier failure), or an unlink/fsync
 * errno (the log then holds a prefix of what it held).
 */
int log_reset(struct kvfs_log *log, uint64_t next);

/*
 * Calls fn for the records from..to (inclusive; to is clamped to log_last_index()) in index order,
 * read from the segment files with pread, each one's length, checksum and index checked. Returns 0
 * (also when from > log_last_index(): nothing to deliver), fn's non-zero value (which stops the
 * read), -EINVAL (from 0, from > to, fn NULL), -ENOENT if from is below log_first_index() (it was
 * compacted away, or removed by a truncation that emptied the log), -EBADMSG if a record is not
 * what the log wrote (bad checksum, wrong index, file shorter than written), -EIO if the log is
 * unusable, another negative errno on I/O errors. fn may have been called for the records before
 * a failure. The log is unchanged either way. Same thread rule as log_append_batch.
 */
int log_read(struct kvfs_log *log, uint64_t from, uint64_t to, kvfs_log_replay_fn fn, void *arg);

/* Total bytes of all segments. */
uint64_t log_bytes(const struct kvfs_log *log);

#endif /* KVFS_LOG_H */
