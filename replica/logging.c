/*
 * Logging (see logging.h). A mutex keeps lines whole when several threads log at once; lines are
 * short and rare enough (no logging on the per-request path) that it is never contended.
 */
#include "kvfs/logging.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* Held lines beyond this are dropped (and counted): a start-up that logs more is broken. */
#define HELD_MAX (256 * 1024)

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static uint32_t node_id = 1;                          /* protected by lock */
static enum kvfs_log_level max_level = KVFS_LOG_INFO; /* protected by lock */
static FILE *sink;                                    /* protected by lock; NULL = stderr */
static char *sink_path;                               /* protected by lock; sink's path */
static bool journal;          /* protected by lock; stderr is the journal: "<N>" prefixes */
static bool holding;          /* protected by lock; lines wait in held for a file */
static char *held;            /* protected by lock */
static size_t held_len;       /* protected by lock */
static unsigned held_dropped; /* protected by lock */

static const char *const level_names[] = {"error", "warn", "info", "debug"};
/* syslog priorities (sd-daemon(3)): LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG */
static const int level_priorities[] = {3, 4, 6, 7};

bool logging_stderr_is_journal(const char *journal_stream, int fd)
{
	uintmax_t dev, ino;
	struct stat st;
	int n = -1;

	if (!journal_stream || sscanf(journal_stream, "%ju:%ju%n", &dev, &ino, &n) != 2 || n < 0 ||
	    journal_stream[n] != '\0')
		return false;
	if (fstat(fd, &st) < 0)
		return false;
	return (uintmax_t)st.st_dev == dev && (uintmax_t)st.st_ino == ino;
}

void logging_init(uint32_t id, enum kvfs_log_level level)
{
	bool j = logging_stderr_is_journal(getenv("JOURNAL_STREAM"), 2);

	pthread_mutex_lock(&lock);
	node_id = id;
	max_level = level;
	journal = j;
	pthread_mutex_unlock(&lock);
}

/* Writes what was held to f, and forgets it. Called under lock. */
static void flush_held(FILE *f)
{
	if (held_len > 0)
		fwrite(held, 1, held_len, f);
	if (held_dropped > 0)
		fprintf(f, "(kvfs dropped %u log lines written before the log was open)\n",
		        held_dropped);
	fflush(f);
	free(held);
	held = NULL;
	held_len = 0;
	held_dropped = 0;
	holding = false;
}

static int open_file(const char *path, FILE **out)
{
	/* 0600: the log names keys, and it may live in the (private) data directory. */
	int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	FILE *f;

	if (fd < 0)
		return -errno;
	f = fdopen(fd, "a");
	if (!f) {
		int rv = -errno;

		close(fd);
		return rv;
	}
	setvbuf(f, NULL, _IOLBF, 0);
	*out = f;
	return 0;
}

int logging_to_file(const char *path)
{
	char *copy = strdup(path);
	FILE *f;
	int rv;

	if (!copy)
		return -ENOMEM;
	rv = open_file(path, &f);
	if (rv < 0) {
		free(copy);
		return rv;
	}
	pthread_mutex_lock(&lock);
	if (sink)
		fclose(sink);
	sink = f;
	free(sink_path);
	sink_path = copy;
	if (holding)
		flush_held(sink);
	pthread_mutex_unlock(&lock);
	return 0;
}

int logging_reopen(void)
{
	char path[4096];
	FILE *f;
	int rv;

	pthread_mutex_lock(&lock);
	if (!sink_path) {
		pthread_mutex_unlock(&lock);
		return 0;
	}
	snprintf(path, sizeof(path), "%s", sink_path);
	pthread_mutex_unlock(&lock);
	rv = open_file(path, &f);
	if (rv < 0)
		return rv;
	pthread_mutex_lock(&lock);
	if (sink)
		fclose(sink);
	sink = f;
	pthread_mutex_unlock(&lock);
	return 1;
}

void logging_hold(void)
{
	pthread_mutex_lock(&lock);
	if (!sink)
		holding = true;
	pthread_mutex_unlock(&lock);
}

void logging_release(void)
{
	pthread_mutex_lock(&lock);
	if (holding)
		flush_held(stderr);
	pthread_mutex_unlock(&lock);
}

/* Keeps a formatted line for the file to come. Called under lock. */
static void hold_line(const char *line, size_t len)
{
	char *grown;

	if (held_len + len > HELD_MAX || !(grown = realloc(held, held_len + len))) {
		held_dropped++;
		return;
	}
	held = grown;
	memcpy(held + held_len, line, len);
	held_len += len;
}

void logging_write(enum kvfs_log_level level, const char *fmt, ...)
{
	struct timespec ts;
	struct tm tm;
	char stamp[32], *msg = NULL, *line = NULL;
	va_list ap;
	int len;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
	va_start(ap, fmt);
	/* the ternary quiets a gcc -fsanitize false positive */
	len = vasprintf(&msg, fmt ? fmt : "(null)", ap);
	va_end(ap);
	if (len < 0)
		return;

	pthread_mutex_lock(&lock);
	if (level > max_level)
		goto out;
	if (!sink && !holding && journal)
		len = asprintf(&line, "<%d>kvfs[%u] %s: %s\n", level_priorities[level], node_id,
		               level_names[level], msg);
	else
		len = asprintf(&line, "%s.%03ldZ kvfs[%u] %s: %s\n", stamp, ts.tv_nsec / 1000000,
		               node_id, level_names[level], msg);
	if (len < 0) {
		line = NULL;
		goto out;
	}
	if (!sink && holding)
		hold_line(line, (size_t)len);
	else {
		FILE *out = sink ? sink : stderr;

		fwrite(line, 1, (size_t)len, out);
		fflush(out);
	}
out:
	pthread_mutex_unlock(&lock);
	free(line);
	free(msg);
}
