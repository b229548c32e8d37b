/*
 * Peer addresses for the peer transport, private to replica/peer*.c: parsing the numeric
 * "HOST:PORT" strings of the membership and of --listen, naming a socket address back, and
 * creating the listening socket (peer_addr_uv.c). Nothing here holds any state.
 */
#ifndef KVFS_REPLICA_PEER_ADDR_H
#define KVFS_REPLICA_PEER_ADDR_H

#include <stddef.h>

#define PEER_ADDR_STR 64u /* room for any address peer_addr_name() writes, and its NUL */

struct sockaddr_storage;

/* Parses "A.B.C.D:PORT" or "[V6]:PORT" into *ss. Returns 0 or -EINVAL. */
int peer_addr_parse(const char *s, struct sockaddr_storage *ss);

/* Writes ss as "A.B.C.D:PORT" or "[V6]:PORT" (or "?" for another family) into out[len]. */
void peer_addr_name(const struct sockaddr_storage *ss, char *out, size_t len);

/*
 * Creates a non-blocking socket listening on addr (as peer_addr_parse() reads it), by hand, so
 * that a failure leaves no libuv handle to close. Sets *fd_out to it (the caller owns it) and
 * *port to the port it is bound to. Returns 0; -EINVAL if addr does not parse; or the negative
 * errno of the socket call that failed, with nothing left open.
 */
int peer_addr_listen(const char *addr, int *fd_out, int *port);

#endif
