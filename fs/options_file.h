/*
 * Reading a kvfs configuration file (--config FILE): lines of `key = value` or `key value`, a bare
 * `key` for a switch, blank lines and `#` comment lines. Only the syntax and the file's safety
 * are checked here; options.c gives the keys their meaning.
 */
#ifndef KVFS_FS_OPTIONS_FILE_H
#define KVFS_FS_OPTIONS_FILE_H

#include <stddef.h>

/*
 * Called for each key, value NULL for a bare key. Returns 0, or a negative errno with a message
 * in err (without the file and line: the reader adds them).
 */
/* Writes the formatted one-line message into err and returns -EINVAL: `return options_fail(...)`. */
int options_fail(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

typedef int (*kvfs_options_line_fn)(void *arg, const char *key, const char *value, char *err,
                                    size_t errlen);

/*
 * Reads the file at path and calls line() for each key in order. The file must be a regular
 * file that is not writable by everyone (it says what the daemon runs as). Returns 0, or -EINVAL
 * with a one-line message in err: "PATH:LINE: what is wrong", or "PATH: what is wrong".
 */
int options_file_read(const char *path, kvfs_options_line_fn line, void *arg, char *err,
                      size_t errlen);

#endif /* KVFS_FS_OPTIONS_FILE_H */
