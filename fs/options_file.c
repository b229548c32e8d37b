/*
 * Configuration file syntax (see options_file.h). One line, one key: no continuation lines, no
 * quoting and no comment after a value (a '#' there is part of the value), so what a line says
 * is exactly what it sets.
 */
#include "options_file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define LINE_MAX_LEN 4096

int options_fail(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

static char *trim(char *s)
{
	char *end;

	while (*s == ' ' || *s == '\t')
		s++;
	end = s + strlen(s);
	while (end > s && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\n' || end[-1] == '\r'))
		*--end = '\0';
	return s;
}

/* Splits "key = value", "key=value" or "key value" in place; *value is NULL for a bare key. */
static void split_line(char *s, char **key, char **value)
{
	size_t klen = strcspn(s, " \t=");
	char *v = s + klen, sep = *v;

	*key = s;
	*value = NULL;
	if (sep == '\0')
		return;
	*v++ = '\0';
	v = trim(v);
	if (sep != '=' && *v == '=') /* "key = value": the '=' came after blanks */
		v = trim(v + 1);
	*value = v;
}

/* Refuses what would let someone else choose what kvfs runs with. */
static int check_file(FILE *f, const char *path, char *err, size_t errlen)
{
	struct stat st;

	if (fstat(fileno(f), &st) < 0)
		return options_fail(err, errlen, "%s: %s", path, strerror(errno));
	if (!S_ISREG(st.st_mode))
		return options_fail(err, errlen, "%s: not a regular file", path);
	if (st.st_mode & S_IWOTH)
		return options_fail(err, errlen,
		            "%s: writable by everyone (mode %04o); refusing it: chmod o-w %s", path,
		            (unsigned)(st.st_mode & 07777), path);
	if (st.st_uid != 0 && st.st_uid != geteuid())
		return options_fail(err, errlen,
		            "%s: owned by uid %u, neither root nor this user (uid %u); refusing it: "
		            "chown it", path, (unsigned)st.st_uid, (unsigned)geteuid());
	if ((st.st_mode & S_IWGRP) && st.st_gid != 0)
		return options_fail(err, errlen,
		            "%s: writable by group %u (mode %04o); refusing it: chmod g-w %s", path,
		            (unsigned)st.st_gid, (unsigned)(st.st_mode & 07777), path);
	return 0;
}

int options_file_read(const char *path, kvfs_options_line_fn line, void *arg, char *err,
                      size_t errlen)
{
	char *buf = NULL, msg[512];
	size_t cap = 0;
	ssize_t n;
	unsigned lineno = 0;
	int rv;
	FILE *f = fopen(path, "re");

	if (!f)
		return options_fail(err, errlen, "--config: cannot read %s: %s", path, strerror(errno));
	rv = check_file(f, path, err, errlen);
	while (rv == 0 && (n = getline(&buf, &cap, f)) >= 0) {
		char *s, *key, *value;

		lineno++;
		if (n > LINE_MAX_LEN) {
			rv = options_fail(err, errlen, "%s:%u: line longer than %d bytes", path, lineno,
			          LINE_MAX_LEN);
			break;
		}
		if (memchr(buf, '\0', (size_t)n)) {
			rv = options_fail(err, errlen, "%s:%u: a NUL byte (not a text file?)", path,
			                  lineno);
			break;
		}
		s = trim(buf);
		if (*s == '\0' || *s == '#')
			continue;
		split_line(s, &key, &value);
		if (*key == '\0') {
			rv = options_fail(err, errlen, "%s:%u: a line must start with a key (key = value)",
			          path, lineno);
			break;
		}
		msg[0] = '\0';
		rv = line(arg, key, value, msg, sizeof(msg));
		if (rv < 0)
			snprintf(err, errlen, "%s:%u: %s", path, lineno, msg);
	}
	if (rv == 0 && ferror(f))
		rv = options_fail(err, errlen, "%s: read error", path);
	free(buf);
	fclose(f);
	return rv;
}
