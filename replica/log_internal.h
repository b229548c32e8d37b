/*
 * The write-ahead log's private state, shared by log.c (the segment array, open, append, truncate,
 * compact), log_recover.c (checking and repairing the segment files at open) and log_read.c
 * (reading records back from the segment files). Nothing outside replica/log*.c includes it.
 */
#ifndef KVFS_REPLICA_LOG_INTERNAL_H
#define KVFS_REPLICA_LOG_INTERNAL_H

#include <inttypes.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "kvfs/crc32c.h"
#include "kvfs/log.h"
#include "kvfs/op.h"

/* The largest payload a record may claim: one op's data plus room for its other fields. */
#define LOG_PAYLOAD_MAX (KVFS_DATA_MAX + 4096u)
/* "log-" + 20 digits + ".seg" + NUL */
#define LOG_NAME_SIZE 29
/* The sparse offset index of a segment keeps the offset of every LOG_SPARSE_EVERYth record. */
#define LOG_SPARSE_EVERY 64u

struct log_segment {
	uint64_t first; /* index of its first record, as in its name */
	uint64_t last;  /* index of its last record */
	uint64_t size;  /* bytes */
	/* offs[k] is the offset of record first + k * LOG_SPARSE_EVERY, for every such record
	 * that the segment holds (noffs of them); owned, freed with the segment */
	uint64_t *offs;
	size_t noffs;
	size_t offcap;
};

struct kvfs_log {
	char *dir;
	int dirfd;
	int fd; /* the active (last) segment, open for writing; -1 when there is none */
	uint64_t segment_bytes;
	struct log_segment *segs; /* in index order, each with at least one record */
	size_t nsegs;
	size_t cap;
	uint64_t bytes; /* sum of segs[].size */
	/* the index the next append must carry: segs' last + 1, or, when no segment is left,
	 * one more than what log_truncate_after kept; 0 when any index will do */
	uint64_t next;
	bool broken; /* a sync, a rollback or a truncation failed: appends refuse with -EIO */
};

static inline void seg_name(char name[LOG_NAME_SIZE], uint64_t first)
{
	snprintf(name, LOG_NAME_SIZE, "log-%020" PRIu64 ".seg", first);
}

static inline uint32_t get_le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline uint64_t get_le64(const uint8_t *p)
{
	return (uint64_t)get_le32(p) | (uint64_t)get_le32(p + 4) << 32;
}

/*
 * Whether avail bytes at p start with a well-formed record (sane length, fits, checksum right),
 * whatever its index. If so fills in rec (payload borrowed from p).
 */
static inline bool record_parse(const uint8_t *p, size_t avail, struct kvfs_log_record *rec)
{
	uint32_t len;

	if (avail < KVFS_LOG_HEADER_SIZE)
		return false;
	len = get_le32(p + 4);
	if (len > LOG_PAYLOAD_MAX || log_record_size(len) > avail)
		return false;
	if (crc32c(0, p + 4, log_record_size(len) - 4) != get_le32(p))
		return false;
	rec->epoch = get_le64(p + 8);
	rec->index = get_le64(p + 16);
	rec->payload = p + KVFS_LOG_HEADER_SIZE;
	rec->len = len;
	return true;
}

/*
 * Formats a message into err (errlen bytes, always terminated), or does nothing when err is NULL
 * or errlen 0. Cannot fail. (log.c)
 */
__attribute__((format(printf, 3, 4))) void log_err(char *err, size_t errlen, const char *fmt, ...);

/* Makes room for n segments in log->segs. Returns 0 or -ENOMEM (log unchanged). (log.c) */
int log_reserve(struct kvfs_log *log, size_t n);

/*
 * Makes room in seg's sparse index for the entries of records up to index last. Returns 0 or
 * -ENOMEM (seg unchanged). (log.c)
 */
int log_sparse_reserve(struct log_segment *seg, uint64_t last);

/* Notes that record index of seg is at offset off; room was reserved (log_sparse_reserve). (log.c)
 */
void log_sparse_note(struct log_segment *seg, uint64_t index, uint64_t off);

/* Removes segment file first. Returns 0 or -errno, with a message in err. (log.c) */
int log_unlink(struct kvfs_log *log, uint64_t first, char *err, size_t errlen);

/* Fsyncs the log directory. Returns 0 or -errno, with a message in err. (log.c) */
int log_sync_dir(struct kvfs_log *log, char *err, size_t errlen);

/*
 * Removes the segments after segs[keep - 1] from the disk and the array, the last one first, with
 * a directory sync after each removal, so that a crash at any point leaves a prefix of the log.
 * Returns 0 or a negative errno with a message in err; the array then still holds the segments
 * not yet removed. (log.c)
 */
int log_drop_after(struct kvfs_log *log, size_t keep, char *err, size_t errlen);

/*
 * Fills log->segs (empty on entry) with the segment files of log->dir and recovers them: delivers
 * every valid record to fn (when not NULL) in order, fills each segment's sparse index, removes
 * empty segment files, and ends the log at the first invalid record if nothing valid follows it.
 * Leaves in log->segs only segments with records, with their last index and size set (log->bytes,
 * log->next and log->fd are the caller's). Returns 0, fn's non-zero value, -EBADMSG for damage, a
 * gap or a non-regular file, or another negative errno; a message in err for all but fn's value.
 * On failure log->segs holds what was listed so far and the caller frees it. (log_recover.c)
 */
int log_recover(struct kvfs_log *log, kvfs_log_replay_fn fn, void *arg, char *err, size_t errlen);

/*
 * Finds the byte offset of record index in segment s (segs[s].first <= index <= segs[s].last)
 * from the sparse index and the record headers after it, checking that each header read has a
 * sane length and the expected index (checksums are not checked). Returns 0 and sets *off, or
 * -EBADMSG if the file does not hold what the log wrote, another negative errno on I/O errors.
 * Reads only; the log is unchanged. (log_read.c)
 */
int log_read_offset(struct kvfs_log *log, size_t s, uint64_t index, uint64_t *off);

#endif /* KVFS_REPLICA_LOG_INTERNAL_H */
