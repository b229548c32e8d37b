/*
 * HOST:PORT strings: the peer addresses of --listen and --advertise and those the znodes carry.
 * hostport_parse() checks the syntax only (pure: no resolver, no socket), so that option checking,
 * the ZooKeeper binding and the peer transport refuse the same strings for the same reasons;
 * hostport_bind() resolves a HOST:PORT (blocking, for start-up only) and binds a socket to it,
 * which is how --listen is checked and opened. Dialing resolves again at every dial, off the loop
 * (peer_dial_uv.c).
 *
 * Accepted: HOST:PORT where HOST is
 *   - a host name: dot-separated labels of 1..63 letters, digits, '-' (not first or last) and
 *     '_' (RFC 1123, plus the underscore that Docker's service and container names may hold),
 *     no trailing dot;
 *   - an IPv4 address in dotted-quad form (a HOST of only digits and dots must be one);
 *   - an IPv6 address in brackets, optionally with a zone: [::1], [fe80::1%eth0];
 * and PORT is 1..65535 in decimal (0 too with KVFS_HOSTPORT_ANY_PORT: "any free port", for
 * tests). The whole string is at most KVFS_HOSTPORT_MAX - 1 bytes.
 */
#ifndef KVFS_HOSTPORT_H
#define KVFS_HOSTPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define KVFS_HOSTPORT_MAX 64 /* with its NUL; the same as KVFS_ADDR_MAX (election.h) */

/* What hostport_parse() accepts, for error messages. */
#define KVFS_HOSTPORT_ACCEPTED                                                                    \
	"HOST:PORT with HOST a host name, an IPv4 address or an IPv6 address in brackets "          \
	"([::1]:7001) and PORT 1..65535"

#define KVFS_HOSTPORT_ANY_PORT 1u /* hostport_parse(): accept port 0 */

struct kvfs_hostport {
	char host[KVFS_HOSTPORT_MAX]; /* without the brackets of an IPv6 address */
	char port[6];                 /* decimal, for getaddrinfo() */
	uint16_t portnum;
	bool numeric; /* an IP address, not a name: resolving it asks no one */
};

/*
 * Parses s (see above) into *hp. Returns 0, or -EINVAL with *why (if why is not NULL) set to a
 * short static phrase saying what is wrong ("empty host", "port out of range 1..65535" ...).
 */
int hostport_parse(const char *s, unsigned flags, struct kvfs_hostport *hp, const char **why);

/* Whether hp is a wildcard address (0.0.0.0, [::]): one to listen on, never to dial. */
bool hostport_is_any(const struct kvfs_hostport *hp);

/*
 * Copies s into out[len] for a log line: at most len - 1 bytes, anything but printable ASCII
 * replaced by '?' (an address that failed hostport_parse() may hold anything).
 */
void hostport_printable(const char *s, char *out, size_t len);

/*
 * Resolves hp (getaddrinfo(), blocking: for start-up only) and binds a new socket (SO_REUSEADDR,
 * non-blocking, close-on-exec) to the first of its addresses that can be bound, on hp's port or,
 * if port_zero, on port 0. Returns 0 and sets *fd_out (the caller closes it); or a negative errno
 * (-ENOENT: the name does not resolve; -EADDRNOTAVAIL: none of its addresses is one of this
 * machine's; another: the socket call that failed) with err set to a one-line reason, and nothing
 * left open.
 */
int hostport_bind(const struct kvfs_hostport *hp, bool port_zero, int *fd_out, char *err,
                  size_t errlen);

/*
 * Option checking for --listen: s parses and this machine can listen there (hostport_bind() on
 * port 0: the port itself may still be taken at start). 0, or -EINVAL with err set.
 */
int hostport_check_listen(const char *s, char *err, size_t errlen);

#endif
