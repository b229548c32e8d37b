/*
 * Logging (see logging.h). A mutex keeps lines whole when several threads log at once; lines are
 * short and rare enough (no logging on the per-request path) that it is never contended.
 */
#include "kvfs/logging.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static uint32_t node_id = 1;                          /* protected by lock */
static enum kvfs_log_level max_level = KVFS_LOG_INFO; /* protected by lock */
static FILE *sink;                                    /* protected by lock; NULL = stderr */

static const char *const level_names[] = {"error", "warn", "info", "debug"};

void logging_init(uint32_t id, enum kvfs_log_level level)
{
	pthread_mutex_lock(&lock);
	node_id = id;
	max_level = level;
	pthread_mutex_unlock(&lock);
}

int logging_to_file(const char *path)
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
	pthread_mutex_lock(&lock);
	if (sink)
		fclose(sink);
	sink = f;
	pthread_mutex_unlock(&lock);
	return 0;
}

void logging_write(enum kvfs_log_level level, const char *fmt, ...)
{
	struct timespec ts;
	struct tm tm;
	char stamp[32];
	FILE *out;
	va_list ap;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);

	pthread_mutex_lock(&lock);
	if (level > max_level) {
		pthread_mutex_unlock(&lock);
		return;
	}
	out = sink ? sink : stderr;
	fprintf(out, "%s.%03ldZ kvfs[%u] %s: ", stamp, ts.tv_nsec / 1000000, node_id,
	        level_names[level]);
	va_start(ap, fmt);
	vfprintf(out, fmt ? fmt : "(null)",
	         ap); /* the ternary quiets a gcc -fsanitize false positive */
	va_end(ap);
	fputc('\n', out);
	fflush(out);
	pthread_mutex_unlock(&lock);
}
