/*
 * Peer addresses (see peer_addr.h): the numeric "HOST:PORT" strings of the membership and of
 * --listen, read and written with libuv's address helpers, and the listening socket, made with
 * plain socket calls so that peer_open() can fail before it owns any libuv handle.
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

/* See peer_addr.h. */
int peer_addr_parse(const char *s, struct sockaddr_storage *ss)
{
	char host[PEER_ADDR_STR];
	const char *colon, *h = s;
	size_t hlen;
	char *end;
	unsigned long port;

	if (s == NULL)
		return -EINVAL;
	if (s[0] == '[') {
		const char *close = strchr(s, ']');

		if (close == NULL || close[1] != ':')
			return -EINVAL;
		h = s + 1;
		hlen = (size_t)(close - h);
		colon = close + 1;
	} else {
		colon = strrchr(s, ':');
		if (colon == NULL)
			return -EINVAL;
		hlen = (size_t)(colon - s);
	}
	if (hlen == 0 || hlen >= sizeof(host) || colon[1] < '0' || colon[1] > '9')
		return -EINVAL;
	memcpy(host, h, hlen);
	host[hlen] = '\0';
	errno = 0;
	port = strtoul(colon + 1, &end, 10);
	if (errno || *end != '\0' || port > 65535)
		return -EINVAL;
	memset(ss, 0, sizeof(*ss));
	if (uv_ip4_addr(host, (int)port, (struct sockaddr_in *)ss) == 0)
		return 0;
	if (uv_ip6_addr(host, (int)port, (struct sockaddr_in6 *)ss) == 0)
		return 0;
	return -EINVAL;
}

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
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	int fd, one = 1, rv;

	rv = peer_addr_parse(addr, &ss);
	if (rv != 0)
		return rv;
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    bind(fd, (struct sockaddr *)&ss,
	         ss.ss_family == AF_INET ? sizeof(struct sockaddr_in)
	                                 : sizeof(struct sockaddr_in6)) < 0 ||
	    listen(fd, SOMAXCONN) < 0 || getsockname(fd, (struct sockaddr *)&ss, &len) < 0) {
		rv = -errno;
		close(fd);
		return rv;
	}
	*port = ntohs(ss.ss_family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
	                                      : ((struct sockaddr_in6 *)&ss)->sin6_port);
	*fd_out = fd;
	return 0;
}
