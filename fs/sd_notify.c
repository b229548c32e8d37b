/*
 * sd_notify(3) by hand (see sd_notify.h): a socket per datagram (they are rare), MSG_NOSIGNAL,
 * and a timer on the loop that renders the node's role, leader and epoch and sends STATUS= only
 * when that text changed, at most STATUS_POLL_MS apart.
 */
#include "sd_notify.h"

#include <errno.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <uv.h>

#include "kvfs/logging.h"
#include "kvfs/node.h"
#include "kvfs/status.h"

#define STATUS_POLL_MS 250

static struct {
	bool enabled;
	struct sockaddr_un addr;
	socklen_t addr_len;
	bool warned; /* a failed send was logged at warn; later ones at debug */
	/* the watch (sd_notify_ready .. sd_notify_stopping) */
	uv_timer_t timer;
	bool timer_open;
	struct kvfs_node *node;
	bool stopping;
	char last[160]; /* the STATUS= text last sent */
} sn;

int sd_notify_init(char *err, size_t errlen)
{
	const char *s = getenv("NOTIFY_SOCKET");
	size_t len;

	memset(&sn.addr, 0, sizeof(sn.addr));
	sn.enabled = false;
	if (!s || !*s)
		return 0;
	len = strlen(s);
	if ((s[0] != '/' && s[0] != '@') || len < 2 || len >= sizeof(sn.addr.sun_path)) {
		snprintf(err, errlen,
		         "NOTIFY_SOCKET='%.*s' is not usable: expected an absolute path or an "
		         "@abstract name of 2..%zu bytes; not notifying systemd",
		         200, s, sizeof(sn.addr.sun_path) - 1);
		return -EINVAL;
	}
	sn.addr.sun_family = AF_UNIX;
	memcpy(sn.addr.sun_path, s, len);
	if (s[0] == '@')
		sn.addr.sun_path[0] = '\0'; /* abstract: the length, not a NUL, ends the name */
	sn.addr_len =
	    (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len + (s[0] == '/' ? 1 : 0));
	sn.enabled = true;
	return 0;
}

bool sd_notify_enabled(void)
{
	return sn.enabled;
}

int sd_notify_send(const char *msg)
{
	int fd, rv = 0;

	if (!sn.enabled)
		return 0;
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		rv = -errno;
	else if (sendto(fd, msg, strlen(msg), MSG_NOSIGNAL, (struct sockaddr *)&sn.addr,
	                sn.addr_len) < 0)
		rv = -errno;
	if (fd >= 0)
		close(fd);
	if (rv < 0) {
		if (!sn.warned)
			log_warn("cannot notify systemd at NOTIFY_SOCKET=%s: %s",
			         getenv("NOTIFY_SOCKET"), strerror(-rv));
		else
			log_debug("cannot notify systemd: %s", strerror(-rv));
		sn.warned = true;
	}
	return rv;
}

/* The STATUS= text for the node's current role, leader and epoch. */
static void render_status(char *buf, size_t len)
{
	struct kvfs_status st;
	char leader[16] = "none";

	memset(&st, 0, sizeof(st));
	node_status(sn.node, &st);
	if (st.leader)
		snprintf(leader, sizeof(leader), "%" PRIu32, st.leader);
	snprintf(buf, len, "role: %s, leader: %s, epoch: %" PRIu64 "%s",
	         st.role ? st.role : "unknown", leader, st.epoch,
	         st.catching_up ? ", catching up" : "");
}

/* Sends STATUS= (and READY=1 first if ready) when the text differs from the one last sent. */
static void send_status(bool ready)
{
	char text[sizeof(sn.last)], msg[sizeof(sn.last) + 32];

	render_status(text, sizeof(text));
	if (!ready && strcmp(text, sn.last) == 0)
		return;
	snprintf(msg, sizeof(msg), "%sSTATUS=%s\n", ready ? "READY=1\n" : "", text);
	if (sd_notify_send(msg) == 0)
		memcpy(sn.last, text, sizeof(sn.last));
}

static void on_status_timer(uv_timer_t *t)
{
	if (!sn.stopping)
		send_status(false);
}

int sd_notify_ready(struct uv_loop_s *loop, struct kvfs_node *node, bool send_ready)
{
	int rv;

	if (!sn.enabled || sn.stopping)
		return 0;
	sn.node = node;
	if (send_ready)
		send_status(true);
	rv = uv_timer_init(loop, &sn.timer);
	if (rv < 0)
		return rv;
	sn.timer_open = true;
	/* It never keeps the loop alive; sd_notify_stopping closes it. */
	uv_unref((uv_handle_t *)&sn.timer);
	return uv_timer_start(&sn.timer, on_status_timer, STATUS_POLL_MS, STATUS_POLL_MS);
}

static void on_timer_closed(uv_handle_t *h)
{
	sn.timer_open = false;
}

void sd_notify_stopping(void)
{
	if (!sn.enabled || sn.stopping)
		return;
	sn.stopping = true;
	sn.node = NULL;
	if (sn.timer_open && !uv_is_closing((uv_handle_t *)&sn.timer))
		uv_close((uv_handle_t *)&sn.timer, on_timer_closed);
	sd_notify_send("STOPPING=1\nSTATUS=stopping: finishing writes in flight, unmounting\n");
}

void sd_notify_mainpid(pid_t pid)
{
	char msg[64];

	snprintf(msg, sizeof(msg), "MAINPID=%ld\nREADY=1\n", (long)pid);
	sd_notify_send(msg);
}
