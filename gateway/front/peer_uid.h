/*
 * peer_uid.h - which local user a TCP client is.
 *
 * A client on this host has its own end of the connection in the same
 * kernel: the kernel's socket table (sock_diag, as `ss -e` reads it)
 * names the user that owns that socket. A client on another host has no
 * such socket here.
 */
#ifndef SSMGATE_PEER_UID_H
#define SSMGATE_PEER_UID_H

#include <sys/socket.h>

/* The uid owning the client's socket of the connection peer -> local
 * (both as getpeername / getsockname give them), or -1 when the client
 * is not on this host or the kernel does not say. One netlink round trip
 * to the kernel: microseconds, never the network. */
long peer_uid_lookup(const struct sockaddr_storage *peer,
                     const struct sockaddr_storage *local);

#endif
