/*
 * HOST:PORT strings (see hostport.h): the syntax, checked by hand so that a znode written by
 * anyone cannot smuggle a space, a control character or an overlong label into a resolver, a log
 * line or /.status; and the blocking resolve-and-bind used at start-up for --listen.
 */
#include "kvfs/hostport.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "kvfs/election.h"

_Static_assert(KVFS_HOSTPORT_MAX == KVFS_ADDR_MAX, "one length limit for peer addresses");

#define LABEL_MAX 63
#define ZONE_MAX  15 /* IF_NAMESIZE - 1 */

static bool is_alnum(char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9');
}

/* Sets *why to the reason; -EINVAL. */
static int bad(const char **why, const char *reason)
{
	*why = reason;
	return -EINVAL;
}

/* A host name: labels of letters, digits, '-' (inside) and '_', separated by single dots. */
static bool valid_name(const char *h, size_t n)
{
	size_t i = 0;

	while (i < n) {
		size_t start = i;

		while (i < n && h[i] != '.') {
			if (!is_alnum(h[i]) && h[i] != '-' && h[i] != '_')
				return false;
			i++;
		}
		if (i == start || i - start > LABEL_MAX || h[start] == '-' || h[i - 1] == '-')
			return false;
		if (i < n && ++i == n) /* a trailing dot */
			return false;
	}
	return true;
}

/* The host part of s (n bytes, brackets removed), checked and copied into hp->host. */
static int parse_host(const char *h, size_t n, bool bracketed, struct kvfs_hostport *hp,
                      const char **why)
{
	unsigned char buf[sizeof(struct in6_addr)];
	const char *pct;

	if (n == 0)
		return bad(why, "empty host");
	memcpy(hp->host, h, n);
	hp->host[n] = '\0';
	if (bracketed) {
		pct = strchr(hp->host, '%');
		if (pct != NULL) {
			size_t zlen = strlen(pct + 1);

			if (zlen == 0 || zlen > ZONE_MAX)
				return bad(why, "bad IPv6 zone");
			for (const char *z = pct + 1; *z; z++)
				if (!is_alnum(*z) && *z != '-' && *z != '_' && *z != '.')
					return bad(why, "bad IPv6 zone");
			hp->host[pct - hp->host] = '\0';
		}
		if (inet_pton(AF_INET6, hp->host, buf) != 1)
			return bad(why, "not an IPv6 address in the brackets");
		memcpy(hp->host, h, n); /* the zone back */
		hp->host[n] = '\0';
		hp->numeric = true;
		return 0;
	}
	if (strspn(hp->host, "0123456789.") == n) {
		if (inet_pton(AF_INET, hp->host, buf) != 1)
			return bad(why, "not an IPv4 address (a.b.c.d, each 0..255)");
		hp->numeric = true;
		return 0;
	}
	if (!valid_name(h, n))
		return bad(why, "not a valid host name (labels of letters, digits, '-', '_', "
		                "separated by dots)");
	hp->numeric = false;
	return 0;
}

static int parse_port(const char *p, unsigned flags, struct kvfs_hostport *hp, const char **why)
{
	size_t n = strlen(p);
	unsigned long v = 0;

	if (n == 0)
		return bad(why, "missing port");
	if (n > 5 || strspn(p, "0123456789") != n)
		return bad(why, "port is not a number 1..65535");
	for (size_t i = 0; i < n; i++)
		v = v * 10 + (unsigned long)(p[i] - '0');
	if (v > 65535 || (v == 0 && !(flags & KVFS_HOSTPORT_ANY_PORT)))
		return bad(why, "port out of range 1..65535");
	hp->portnum = (uint16_t)v;
	snprintf(hp->port, sizeof(hp->port), "%lu", v);
	return 0;
}

/* See hostport.h. */
int hostport_parse(const char *s, unsigned flags, struct kvfs_hostport *hp, const char **why)
{
	const char *dummy, *colon, *h;
	size_t n, hlen;
	bool bracketed = false;

	if (why == NULL)
		why = &dummy;
	if (s == NULL || s[0] == '\0')
		return bad(why, "empty address");
	n = strnlen(s, KVFS_HOSTPORT_MAX);
	if (n >= KVFS_HOSTPORT_MAX)
		return bad(why, "too long");
	memset(hp, 0, sizeof(*hp));
	h = s;
	if (s[0] == '[') {
		const char *close = strchr(s, ']');

		if (close == NULL)
			return bad(why, "'[' without ']'");
		if (close[1] != ':')
			return bad(why, close[1] ? "':' must follow ']'" : "missing port");
		bracketed = true;
		h = s + 1;
		hlen = (size_t)(close - h);
		colon = close + 1;
	} else {
		colon = strchr(s, ':');
		if (colon == NULL)
			return bad(why, "missing ':PORT'");
		if (strchr(colon + 1, ':') != NULL)
			return bad(why, "an IPv6 address goes in brackets ([::1]:7001)");
		if (memchr(s, ']', (size_t)(colon - s)) != NULL)
			return bad(why, "']' without '['");
		hlen = (size_t)(colon - s);
	}
	if (parse_host(h, hlen, bracketed, hp, why) != 0)
		return -EINVAL;
	return parse_port(colon + 1, flags, hp, why);
}

/* See hostport.h. */
bool hostport_is_any(const struct kvfs_hostport *hp)
{
	struct in6_addr a6;
	struct in_addr a4;

	if (!hp->numeric)
		return false;
	if (inet_pton(AF_INET, hp->host, &a4) == 1)
		return a4.s_addr == htonl(INADDR_ANY);
	return strchr(hp->host, '%') == NULL && inet_pton(AF_INET6, hp->host, &a6) == 1 &&
	       IN6_IS_ADDR_UNSPECIFIED(&a6);
}

/* See hostport.h. */
void hostport_printable(const char *s, char *out, size_t len)
{
	size_t i;

	if (len == 0)
		return;
	for (i = 0; s != NULL && s[i] != '\0' && i + 1 < len; i++)
		out[i] = s[i] >= 0x20 && s[i] < 0x7f ? s[i] : '?';
	out[i] = '\0';
}

/* Binds a new socket to ai; the fd, or a negative errno with nothing open. */
static int bind_one(const struct addrinfo *ai)
{
	int fd, one = 1, rv;

	fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    bind(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
		rv = -errno;
		close(fd);
		return rv;
	}
	return fd;
}

/* Sets port 0 in a resolved address. */
static void zero_port(struct sockaddr *sa)
{
	if (sa->sa_family == AF_INET)
		((struct sockaddr_in *)sa)->sin_port = 0;
	else if (sa->sa_family == AF_INET6)
		((struct sockaddr_in6 *)sa)->sin6_port = 0;
}

/* See hostport.h. */
int hostport_bind(const struct kvfs_hostport *hp, bool port_zero, int *fd_out, char *err,
                  size_t errlen)
{
	struct addrinfo hints = {.ai_family = AF_UNSPEC,
	                         .ai_socktype = SOCK_STREAM,
	                         .ai_flags = AI_PASSIVE | AI_NUMERICSERV |
	                                     (hp->numeric ? AI_NUMERICHOST : 0)};
	struct addrinfo *res, *ai;
	int rv, fd = -EADDRNOTAVAIL;

	rv = getaddrinfo(hp->host, hp->port, &hints, &res);
	if (rv != 0) {
		snprintf(err, errlen, "cannot resolve '%s': %s", hp->host,
		         rv == EAI_SYSTEM ? strerror(errno) : gai_strerror(rv));
		return -ENOENT;
	}
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		if (ai->ai_family != AF_INET && ai->ai_family != AF_INET6)
			continue;
		if (port_zero)
			zero_port(ai->ai_addr);
		fd = bind_one(ai);
		if (fd >= 0)
			break;
	}
	freeaddrinfo(res);
	if (fd < 0) {
		if (fd == -EADDRNOTAVAIL)
			snprintf(err, errlen, "'%s' is not an address of this machine", hp->host);
		else
			snprintf(err, errlen, "cannot bind to '%s' port %s: %s", hp->host,
			         port_zero ? "0" : hp->port, strerror(-fd));
		return fd;
	}
	*fd_out = fd;
	return 0;
}

/* See hostport.h. */
int hostport_check_listen(const char *s, char *err, size_t errlen)
{
	struct kvfs_hostport hp;
	const char *why;
	int fd;

	if (hostport_parse(s, 0, &hp, &why) != 0) {
		snprintf(err, errlen, "%s (expected %s)", why, KVFS_HOSTPORT_ACCEPTED);
		return -EINVAL;
	}
	if (hostport_bind(&hp, true, &fd, err, errlen) != 0)
		return -EINVAL;
	close(fd);
	return 0;
}
