/*
 * Readiness and status notification for systemd (sd_notify(3), Type=notify) without libsystemd:
 * the protocol is one datagram of "KEY=VALUE" lines sent to the AF_UNIX socket named by
 * $NOTIFY_SOCKET (a path, or "@name" for the abstract namespace). Without $NOTIFY_SOCKET (not
 * started by systemd) every call here does nothing.
 *
 * What the daemon says: READY=1 (with STATUS=) once the node has recovered and its mount serves
 * requests; STATUS=role: ..., leader: ..., epoch: ... whenever one of those changes (looked at
 * four times a second on the loop, sent only on a change); STOPPING=1 when shutdown begins; and,
 * from the waiting parent of a background start, MAINPID= of the daemon with its READY=1.
 * State is process-wide (the environment is); all calls are made on the loop thread, or before
 * the loop exists.
 */
#ifndef KVFS_FS_SD_NOTIFY_H
#define KVFS_FS_SD_NOTIFY_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct uv_loop_s;
struct kvfs_node;

/*
 * Reads and checks $NOTIFY_SOCKET. Returns 0 when it is unset (notifications off) or usable;
 * -EINVAL with a one-line message in err when it is set but unusable (not an absolute path or
 * an @abstract name, or too long): notifications stay off and the caller says so.
 */
int sd_notify_init(char *err, size_t errlen);

/* True when $NOTIFY_SOCKET was usable at sd_notify_init. */
bool sd_notify_enabled(void);

/*
 * Sends msg ("KEY=VALUE" lines) in one datagram. Returns 0 (also when notifications are off),
 * or a negative errno when the socket cannot be reached; nothing is retried.
 */
int sd_notify_send(const char *msg);

/*
 * The node serves its mount: sends READY=1 (unless send_ready is false: the parent of a
 * background start says it, see sd_notify_mainpid) with the first STATUS=, then watches the
 * node's role, leader and epoch on a timer of the loop and sends STATUS= when they change, until
 * sd_notify_stopping(). node must stay open until then. Returns 0 or a negative libuv error
 * (nothing is watched then).
 */
int sd_notify_ready(struct uv_loop_s *loop, struct kvfs_node *node, bool send_ready);

/* Shutdown begins: sends STOPPING=1 (once) and stops watching the node; the timer closes with
 * the loop's next iteration. Idempotent; safe before sd_notify_ready. */
void sd_notify_stopping(void);

/* In the parent of a background start, once the daemon (pid) serves the mount: MAINPID= and
 * READY=1, so a Type=notify unit follows the daemon rather than the parent that exits. */
void sd_notify_mainpid(pid_t pid);

#endif /* KVFS_FS_SD_NOTIFY_H */
