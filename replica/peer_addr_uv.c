/*
 * Peer addresses (see peer_addr.h): socket addresses named for logs with libuv's helpers, and the
 * listening socket, made with plain socket calls (hostport_bind()) so that peer_open() can fail
 * before it owns any libuv handle.
 */
#include "peer_addr.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include "kvfs/hostport.h"
#include "kvfs/logging.h"

void peer_addr_name(const struct sockaddr_storage *ss, char *out, size_t len)
{
	char ip[48] = "?";
	int port = 0;

	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)ss;

		uv_ip4_name(sin, ip, sizeof(ip));
		port = ntohs(sin->sin_port);
		snprintf(out, len, "%s:%d", ip, port);
	} else if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)ss;

		uv_ip6_name(sin6, ip, sizeof(ip));
		port = ntohs(sin6->sin6_port);
		snprintf(out, len, "[%s]:%d", ip, port);
	} else {
		snprintf(out, len, "?");
	}
}

/* See peer_addr.h. */
int peer_addr_listen(const char *addr, int *fd_out, int *port)
{
	struct kvfs_hostport hp;
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	char err[160];
	int fd, rv;

	if (hostport_parse(addr, KVFS_HOSTPORT_ANY_PORT, &hp, NULL) != 0)
		return -EINVAL;
	rv = hostport_bind(&hp, false, &fd, err, sizeof(err));
	if (rv != 0) {
		log_debug("cannot listen on %s: %s", addr, err);
		return rv;
	}
	if (listen(fd, SOMAXCONN) < 0 || getsockname(fd, (struct sockaddr *)&ss, &len) < 0) {
		rv = -errno;
		close(fd);
		return rv;
	}
	*port = ntohs(ss.ss_family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
	                                      : ((struct sockaddr_in6 *)&ss)->sin6_port);
	*fd_out = fd;
	return 0;
}
