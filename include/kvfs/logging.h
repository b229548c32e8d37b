/*
 * Logging: one line per event, "TIME kvfs[ID] LEVEL: message", to stderr or a log file. When
 * stderr is the systemd journal (JOURNAL_STREAM names it), lines there carry the syslog priority
 * instead of the time: "<6>kvfs[ID] info: message" (sd-daemon(3)).
 *
 * Safe to call from any thread (the loop, the disk worker, ZooKeeper's threads). The pure core
 * never logs: it returns errors and messages, and the edges decide what to say.
 */
#ifndef KVFS_LOGGING_H
#define KVFS_LOGGING_H

#include <stdbool.h>
#include <stdint.h>

enum kvfs_log_level { KVFS_LOG_ERROR, KVFS_LOG_WARN, KVFS_LOG_INFO, KVFS_LOG_DEBUG };

/*
 * Sets the node id shown in every line and the most verbose level written, and whether stderr is
 * the journal (logging_stderr_is_journal of $JOURNAL_STREAM and fd 2).
 */
void logging_init(uint32_t node_id, enum kvfs_log_level max_level);

/* True when journal_stream ("DEV:INODE", systemd's $JOURNAL_STREAM) names what fd is. */
bool logging_stderr_is_journal(const char *journal_stream, int fd);

/*
 * Sends further lines to the file at path (appended, created 0600), instead of stderr, after the
 * lines held since logging_hold(). Returns 0, or a negative errno and the sink stays as it was.
 */
int logging_to_file(const char *path);

/*
 * Opens the log file again by its path (after logrotate moved it away), appending or creating it.
 * Returns 1 when reopened, 0 when logging to stderr (nothing to reopen), or a negative errno (the
 * old file stays in use).
 */
int logging_reopen(void);

/*
 * Keeps the lines in memory, not on stderr, until logging_to_file() (they go there first) or
 * logging_release(). For a daemon whose log file cannot be opened yet.
 */
void logging_hold(void);

/* Writes the held lines to stderr and stops holding (the start failed before the file). */
void logging_release(void);

void logging_write(enum kvfs_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#define log_error(...) logging_write(KVFS_LOG_ERROR, __VA_ARGS__)
#define log_warn(...)  logging_write(KVFS_LOG_WARN, __VA_ARGS__)
#define log_info(...)  logging_write(KVFS_LOG_INFO, __VA_ARGS__)
#define log_debug(...) logging_write(KVFS_LOG_DEBUG, __VA_ARGS__)

#endif /* KVFS_LOGGING_H */
