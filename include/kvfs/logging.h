/*
 * Logging: one line per event, "TIME kvfs[ID] LEVEL: message", to stderr or a log file.
 *
 * Safe to call from any thread (the loop, the disk worker, ZooKeeper's threads). The pure core
 * never logs: it returns errors and messages, and the edges decide what to say.
 */
#ifndef KVFS_LOGGING_H
#define KVFS_LOGGING_H

#include <stdint.h>

enum kvfs_log_level { KVFS_LOG_ERROR, KVFS_LOG_WARN, KVFS_LOG_INFO, KVFS_LOG_DEBUG };

/* Sets the node id shown in every line and the most verbose level written. */
void logging_init(uint32_t node_id, enum kvfs_log_level max_level);

/*
 * Sends further lines to the file at path (appended, created 0644), instead of stderr.
 * Returns 0, or a negative errno and the sink stays as it was.
 */
int logging_to_file(const char *path);

void logging_write(enum kvfs_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#define log_error(...) logging_write(KVFS_LOG_ERROR, __VA_ARGS__)
#define log_warn(...)  logging_write(KVFS_LOG_WARN, __VA_ARGS__)
#define log_info(...)  logging_write(KVFS_LOG_INFO, __VA_ARGS__)
#define log_debug(...) logging_write(KVFS_LOG_DEBUG, __VA_ARGS__)

#endif /* KVFS_LOGGING_H */
