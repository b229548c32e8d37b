/*
 * Peer addresses for the peer transport, private to replica/peer*.c: naming a socket address
 * (for logs), and creating the listening socket (peer_addr_uv.c). The HOST:PORT syntax itself is
 * hostport.h's; dialing, which resolves names, is peer_dial_uv.c's. Nothing here holds any state.
 */
#ifndef KVFS_REPLICA_PEER_ADDR_H
#define KVFS_REPLICA_PEER_ADDR_H

#include <stddef.h>

#define PEER_ADDR_STR 64u /* room for any address peer_addr_name() writes, and its NUL */

struct sockaddr_storage;

/* Writes ss as "A.B.C.D:PORT" or "[V6]:PORT" (or "?" for another family) into out[len]. */
void peer_addr_name(const struct sockaddr_storage *ss, char *out, size_t len);

/*
 * Creates a non-blocking socket listening on addr (HOST:PORT as hostport.h reads it, port 0
 * allowed: a free one), by hand, so that a failure leaves no libuv handle to close. A name is
 * resolved here, once (blocking: this runs at start-up), and the socket bound to the first of
 * its addresses that this machine has; 0.0.0.0 or [::] bind every address. Sets *fd_out to it
 * (the caller owns it) and *port to the port it is bound to. Returns 0; -EINVAL if addr does not
 * parse; -ENOENT if the name does not resolve; or the negative errno of the socket call that
 * failed (-EADDRNOTAVAIL: not an address of this machine), with nothing left open.
 */
int peer_addr_listen(const char *addr, int *fd_out, int *port);

#endif
