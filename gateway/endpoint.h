/*
 * endpoint.h - where a client of the daemon (`ssmgate proxy`, `ssh-config`)
 * dials: its SOCKS/HTTP port, or a [forward]'s port.
 *
 * The running daemon is asked first (control socket, "listeners"): it knows
 * the port the OS chose for "listen = 127.0.0.1:0" and any --listen it was
 * started with. With no daemon the config is the answer, unless its port is
 * 0: then there is nothing to dial and the error says so. Wildcard
 * addresses are dialled on loopback.
 */
#ifndef SSMGATE_ENDPOINT_H
#define SSMGATE_ENDPOINT_H

#include <jansson.h>
#include <stddef.h>

struct config;

#define ENDPOINT_MAX 96

/*
 * forward: NULL for the SOCKS/HTTP port, else a [forward] name.
 * ask_daemon: 0 when --listen on this command line already says where.
 * 0 with "ADDR:PORT" in out, or GW_EUNREACHABLE with a sentence in err.
 * *from_daemon (may be NULL) says whether the daemon answered.
 */
int endpoint_resolve(const struct config *cfg, const char *forward,
                     int ask_daemon, char *out, size_t len, char *err,
                     size_t errlen, int *from_daemon);

/* From a "listeners" answer, the address of the first SOCKS listener
 * (forward NULL) or of that [forward], on loopback when it is a wildcard.
 * 0, or GW_ENOT_FOUND when the answer has no such well-formed entry. */
int endpoint_pick(const json_t *answer, const char *forward, char *out,
                  size_t len);

/* addr on loopback: 0.0.0.0:N -> 127.0.0.1:N, [::]:N -> [::1]:N. */
void endpoint_loopback(const char *addr, char *out, size_t len);

/* The port of "ADDR:PORT" (0 when absent or not a number). */
unsigned endpoint_port(const char *addr);

#endif
