/*
 * `kvfs health` (see health.h): reads MOUNTPOINT/.status in a child process that hands the
 * text back through a pipe, waits for it at most --timeout ms (a FUSE read of a stopped or
 * hung daemon may never return; SIGKILL ends such a child), then judges the text.
 */
#include "health.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define STATUS_MAX         65536
#define DEFAULT_TIMEOUT_MS 3000

/* The value of `key: value` in text, copied into out; "" when absent. */
static void fact(const char *text, const char *key, char *out, size_t len)
{
	size_t kl = strlen(key);

	out[0] = '\0';
	for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
		if (strncmp(p, key, kl) == 0 && p[kl] == ':' && p[kl + 1] == ' ') {
			size_t vl = strcspn(p + kl + 2, "\n");

			snprintf(out, len, "%.*s", (int)(vl < len ? vl : len - 1), p + kl + 2);
			return;
		}
	}
}

int health_judge(const char *status, char *line, size_t len)
{
	char role[32], leader[32], epoch[32], lag[32], writable[8], reason[128];

	fact(status, "role", role, sizeof(role));
	fact(status, "leader", leader, sizeof(leader));
	fact(status, "epoch", epoch, sizeof(epoch));
	fact(status, "lag_entries", lag, sizeof(lag));
	fact(status, "writable", writable, sizeof(writable));
	fact(status, "writable_reason", reason, sizeof(reason));
	if (strcmp(writable, "yes") == 0) {
		if (strcmp(role, "follower") == 0 || strcmp(role, "observer") == 0)
			snprintf(line, len, "healthy: %s of %s, epoch %s, lag %s", role, leader,
			         epoch, lag);
		else if (strcmp(role, "leader") == 0)
			snprintf(line, len, "healthy: leader, epoch %s", epoch);
		else
			snprintf(line, len, "healthy: %s", role[0] ? role : "writable");
		return KVFS_HEALTH_OK;
	}
	if (!writable[0]) {
		snprintf(line, len,
		         "unhealthy: the status has no writable fact (not a kvfs node, or "
		         "an older one)");
		return KVFS_HEALTH_UNHEALTHY;
	}
	snprintf(line, len, "unhealthy: %s (role %s, leader %s, epoch %s)",
	         reason[0] ? reason : "not writable", role, leader, epoch);
	return KVFS_HEALTH_UNHEALTHY;
}

static int usage(const char *msg)
{
	fprintf(stderr,
	        "kvfs health: %s\nusage: kvfs health [--timeout MS] MOUNTPOINT\n"
	        "Exits 0 when the node mounted at MOUNTPOINT can serve writes now, 1 when it\n"
	        "cannot, 3 when the mount does not answer within MS (default %d, 1..600000).\n",
	        msg, DEFAULT_TIMEOUT_MS);
	return KVFS_HEALTH_USAGE;
}

/* In the child: copies path's content to fd. Exits 0, or 100 + errno (capped) on failure. */
static void child_read(const char *path, int fd) __attribute__((noreturn));

static void child_read(const char *path, int fd)
{
	char buf[4096];
	ssize_t n;
	int in = open(path, O_RDONLY | O_CLOEXEC);

	if (in < 0)
		_exit(100 + (errno < 150 ? errno : 150));
	while ((n = read(in, buf, sizeof(buf))) > 0)
		if (write(fd, buf, (size_t)n) != n)
			_exit(100 + EPIPE);
	_exit(n < 0 ? 100 + (errno < 150 ? errno : 150) : 0);
}

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * Reads path through a child within timeout_ms into buf (NUL-terminated). Returns 0, -ETIMEDOUT,
 * or the errno the child met (negative).
 */
static int read_with_timeout(const char *path, char *buf, size_t size, long long timeout_ms)
{
	long long deadline = now_ms() + timeout_ms;
	size_t len = 0;
	int p[2], status, rv = 0;
	pid_t pid;

	if (pipe2(p, O_CLOEXEC) < 0)
		return -errno;
	pid = fork();
	if (pid < 0) {
		rv = -errno;
		close(p[0]);
		close(p[1]);
		return rv;
	}
	if (pid == 0) {
		close(p[0]);
		child_read(path, p[1]);
	}
	close(p[1]);
	for (;;) {
		struct pollfd pfd = {.fd = p[0], .events = POLLIN};
		long long left = deadline - now_ms();
		ssize_t n;

		if (left <= 0 || poll(&pfd, 1, (int)left) == 0) {
			rv = -ETIMEDOUT;
			break;
		}
		n = read(p[0], buf + len, size - 1 - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += (size_t)n;
		if (len == size - 1)
			break; /* more than any status: judge what came */
	}
	buf[len] = '\0';
	close(p[0]);
	if (rv == -ETIMEDOUT) {
		kill(pid, SIGKILL);
		waitpid(pid, &status, WNOHANG); /* a child stuck in the kernel is left to init */
		return rv;
	}
	if (waitpid(pid, &status, 0) < 0)
		return -errno;
	if (WIFEXITED(status) && WEXITSTATUS(status) >= 100)
		return -(WEXITSTATUS(status) - 100);
	return 0;
}

int health_main(int argc, char **argv)
{
	long long timeout_ms = DEFAULT_TIMEOUT_MS;
	char path[PATH_MAX], line[512], *end, *buf;
	const char *mnt = NULL;
	int rv;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--timeout") == 0 && i + 1 < argc) {
			errno = 0;
			timeout_ms = strtoll(argv[++i], &end, 10);
			if (errno || *end || end == argv[i] || timeout_ms < 1 ||
			    timeout_ms > 600000)
				return usage("--timeout: expected milliseconds, 1..600000");
		} else if (argv[i][0] == '-' && argv[i][1]) {
			return usage("unknown option (only --timeout MS)");
		} else if (mnt) {
			return usage("one MOUNTPOINT only");
		} else {
			mnt = argv[i];
		}
	}
	if (!mnt || !*mnt)
		return usage("missing MOUNTPOINT");
	if ((size_t)snprintf(path, sizeof(path), "%s/.status", mnt) >= sizeof(path))
		return usage("MOUNTPOINT is too long");
	buf = malloc(STATUS_MAX);
	if (!buf) {
		fprintf(stderr, "kvfs health: out of memory\n");
		return KVFS_HEALTH_NO_ANSWER;
	}
	rv = read_with_timeout(path, buf, STATUS_MAX, timeout_ms);
	if (rv == -ETIMEDOUT)
		printf("no answer: %s did not answer within %lld ms\n", path, timeout_ms);
	else if (rv < 0)
		printf("no answer: cannot read %s: %s\n", path, strerror(-rv));
	if (rv < 0) {
		free(buf);
		return KVFS_HEALTH_NO_ANSWER;
	}
	rv = health_judge(buf, line, sizeof(line));
	printf("%s\n", line);
	free(buf);
	return rv;
}
