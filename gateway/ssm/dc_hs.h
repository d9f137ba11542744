/*
 * dc_hs.h - what ssmgate makes of the agent's HandshakeRequest: a Port
 * session with the SessionType action alone is supported; anything else
 * (another session type, KMSEncryption, ...) is refused by name. Pure.
 */
#ifndef SSMGATE_DC_HS_H
#define SSMGATE_DC_HS_H

#include <stddef.h>

#include "dc_msg.h"

/* 1 when the session type is Port (the HandshakeResponse says so). */
int dc_hs_is_port(const struct dc_handshake_request *hs);
/* 0 when ssmgate supports everything hs asks for; else 1 and the reason
 * for the log and the client in why. */
int dc_hs_refusal(const struct dc_handshake_request *hs, char *why, size_t n);

#endif
