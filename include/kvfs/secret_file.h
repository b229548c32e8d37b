/*
 * Secret files: the cluster's peer secret (--secret-file) and the ZooKeeper credentials
 * (--zk-auth-file). Read once at start, before anything else happens, and refused like ssh refuses
 * a private key when anyone but its owner may read or change it.
 *
 * Rules: PATH (symbolic links are followed: Docker and Kubernetes mount secrets that way) must be
 * a regular file of at most KVFS_SECRET_FILE_MAX bytes, owned by this process's user or by root,
 * with no permission bit for group or others (chmod 600 or 400). Its contents are used as they
 * are, except that trailing white space (a newline left by an editor or `echo`) is dropped.
 * Pure: plain POSIX calls, no globals.
 */
#ifndef KVFS_SECRET_FILE_H
#define KVFS_SECRET_FILE_H

#include <stddef.h>
#include <stdint.h>

#define KVFS_SECRET_FILE_MAX 4096u

/*
 * Reads PATH into buf (cap bytes, more than KVFS_SECRET_FILE_MAX) and sets *len. Returns 0; or
 * -errno with a one-line message naming PATH and what to do in err: -ENOENT and the like (cannot
 * open), -EPERM (group/other permission bits, or a foreign owner), -EINVAL (not a regular file,
 * too large, or fewer than min_len bytes once trailing white space is dropped). On error buf
 * holds nothing of the file.
 */
int secret_file_read(const char *option, const char *path, size_t min_len, uint8_t *buf,
                     size_t cap, size_t *len, char *err, size_t errlen);

/*
 * Checks that buf (len bytes, as secret_file_read() left them) holds ZooKeeper digest
 * credentials: one line `user:password`, the user non-empty and without ':', the password
 * non-empty (it may hold ':'), no control characters. Returns 0, or -EINVAL with a one-line
 * message naming option and path in err. Reveals nothing of the password in err.
 */
int secret_file_check_digest(const char *option, const char *path, const uint8_t *buf, size_t len,
                             char *err, size_t errlen);

#endif /* KVFS_SECRET_FILE_H */
