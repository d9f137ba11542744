/*
 * tls_bio.h - BIO filters under a TLS connection's SSL object.
 *
 * A data channel message is one WebSocket frame and one TLS record of
 * ~1.1 KiB. Without help OpenSSL reads each record with two read() calls
 * (header, then body) and sends each one with its own send(). These
 * filters batch both directions:
 *  - the writer gathers the records of a burst until tls_bio_flush;
 *  - the reader fetches up to TLS_BIO_READ_CHUNK bytes per read() and
 *    serves OpenSSL's small reads from that.
 * Bytes the reader holds are invisible to poll(): the owner must go on
 * reading while tls_bio_has_record() says a whole record is waiting.
 * on_input runs after every read that leaves bytes in the buffer.
 */
#ifndef SSMGATE_TLS_BIO_H
#define SSMGATE_TLS_BIO_H

#include <openssl/bio.h>
#include <openssl/ssl.h>

#define TLS_BIO_READ_CHUNK (32 * 1024) /* > one whole record (16 KiB + 256) */

/* Puts a write-gathering buffer of `size` bytes under ssl. Returns the
 * buffer BIO (owned by ssl) or NULL; without it writes go out unbatched. */
BIO *tls_bio_gather_writes(SSL *ssl, int size);

/* 1 when everything is out, 0 when the socket is full, -1 on error. */
int tls_bio_flush(BIO *writer);

/* Puts a read-ahead buffer under ssl. Returns the reader (owned by ssl)
 * or NULL; without it reads go to the socket unbatched. */
BIO *tls_bio_buffer_reads(SSL *ssl, void (*on_input)(void *arg), void *arg);

/* Whether a complete TLS record is buffered (OpenSSL reads records whole,
 * so between SSL_read calls the buffer starts at a record boundary). */
int tls_bio_has_record(BIO *reader);

#endif
