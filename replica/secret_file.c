/* Secret files (see secret_file.h). */
#include "kvfs/secret_file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int secret_file_read(const char *option, const char *path, size_t min_len, uint8_t *buf, size_t cap,
                     size_t *len, char *err, size_t errlen)
{
	struct stat st;
	size_t n = 0;
	ssize_t r;
	int fd, rv = 0;

	*len = 0;
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0) {
		rv = -errno;
		snprintf(err, errlen, "%s: cannot open %s: %s", option, path, strerror(errno));
		return rv;
	}
	if (fstat(fd, &st) < 0) {
		rv = -errno;
		snprintf(err, errlen, "%s: cannot stat %s: %s", option, path, strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		rv = -EINVAL;
		snprintf(err, errlen, "%s: %s is not a regular file", option, path);
		goto out;
	}
	if (st.st_mode & 077) {
		rv = -EPERM;
		snprintf(err, errlen,
		         "%s: %s is accessible to group or others (mode %04o); it holds a secret: "
		         "chmod 600 %s",
		         option, path, (unsigned)(st.st_mode & 07777), path);
		goto out;
	}
	if (st.st_uid != geteuid() && st.st_uid != 0) {
		rv = -EPERM;
		snprintf(err, errlen,
		         "%s: %s belongs to uid %u, neither this user (uid %u) nor root; it holds "
		         "a secret: chown it",
		         option, path, (unsigned)st.st_uid, (unsigned)geteuid());
		goto out;
	}
	if (st.st_size < 0 || (size_t)st.st_size > KVFS_SECRET_FILE_MAX ||
	    cap <= KVFS_SECRET_FILE_MAX) {
		rv = -EINVAL;
		snprintf(err, errlen, "%s: %s is larger than %u bytes", option, path,
		         KVFS_SECRET_FILE_MAX);
		goto out;
	}
	for (;;) {
		r = read(fd, buf + n, cap - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			rv = -errno;
			snprintf(err, errlen, "%s: cannot read %s: %s", option, path,
			         strerror(errno));
			goto out;
		}
		if (r == 0)
			break;
		n += (size_t)r;
		if (n > KVFS_SECRET_FILE_MAX) {
			rv = -EINVAL;
			snprintf(err, errlen, "%s: %s is larger than %u bytes", option, path,
			         KVFS_SECRET_FILE_MAX);
			goto out;
		}
	}
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' ' ||
	                 buf[n - 1] == '\t'))
		n--;
	if (n < min_len) {
		rv = -EINVAL;
		if (min_len >= 32)
			snprintf(err, errlen,
			         "%s: %s holds %zu bytes; at least %zu are needed (make one with: "
			         "(umask 077; head -c 32 /dev/urandom | base64 > %s))",
			         option, path, n, min_len, path);
		else
			snprintf(err, errlen, "%s: %s holds %zu bytes; at least %zu are needed",
			         option, path, n, min_len);
		goto out;
	}
	*len = n;
out:
	if (rv < 0 && n > 0)
		memset(buf, 0, n < cap ? n : cap);
	close(fd);
	return rv;
}

int secret_file_check_digest(const char *option, const char *path, const uint8_t *buf, size_t len,
                             char *err, size_t errlen)
{
	const uint8_t *colon = memchr(buf, ':', len);

	for (size_t i = 0; i < len; i++) {
		if (buf[i] < 0x20 || buf[i] == 0x7f) {
			snprintf(err, errlen,
			         "%s: %s holds a control character (a second line?); it must hold "
			         "one line user:password",
			         option, path);
			return -EINVAL;
		}
	}
	if (!colon) {
		snprintf(err, errlen,
		         "%s: %s holds no ':'; it must hold one line user:password (ZooKeeper "
		         "digest credentials)",
		         option, path);
		return -EINVAL;
	}
	if (colon == buf) {
		snprintf(err, errlen,
		         "%s: %s: the user before the ':' is empty; write user:password", option,
		         path);
		return -EINVAL;
	}
	if ((size_t)(colon - buf) == len - 1) {
		snprintf(err, errlen,
		         "%s: %s: the password after the ':' is empty; write user:password", option,
		         path);
		return -EINVAL;
	}
	return 0;
}
