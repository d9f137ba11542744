/*
 * http1.h - the HTTP/1.1 message syntax a forwarding proxy needs (RFC 9112),
 * shared by the request parser (httpconnect.c) and the forwarder
 * (httpfwd.c). Pure: bytes in, facts out.
 *
 *  - where a head ends;
 *  - its field lines, read strictly (a proxy that is lax where the origin
 *    is strict, or the other way round, is how requests get smuggled);
 *  - the fields that decide framing and the connection: Content-Length,
 *    Transfer-Encoding, Connection and the options it lists;
 *  - a body decoder that finds where a body ends without changing it
 *    (chunked bodies are forwarded as they came).
 */
#ifndef SSMGATE_HTTP1_H
#define SSMGATE_HTTP1_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define HTTP1_CONN_OPTS  16   /* Connection options one message may list */
#define HTTP1_CHUNK_LINE 4096 /* a chunk-size line with its extensions */
#define HTTP1_TRAILER    8192 /* all trailer lines of a chunked body */

/* The length of the head at p through its blank line ("\r\n\r\n", or
 * "\n\n" from lax clients), or 0 when it has not ended within len. */
size_t http1_head_len(const uint8_t *p, size_t len);

struct http1_field {
    const char *name;
    size_t name_len;
    const char *value; /* optional whitespace trimmed */
    size_t value_len;
};

/*
 * Reads the field line at *line (before end, inside a head that ends in a
 * blank line): 1 with *f and *line past it, 0 at the blank line, or
 * GW_EPROTO for what RFC 9112 section 5 says to reject: a name that is no
 * token, space before the colon, a folded line (obs-fold), a CR alone or
 * a control byte in the value.
 */
int http1_next_field(const char **line, const char *end, struct http1_field *f);

/* Whether the field is called name (case-insensitive). */
int http1_field_is(const struct http1_field *f, const char *name);
/* Whether the comma list v[0..n) holds token (case-insensitive). */
int http1_list_has(const char *v, size_t n, const char *token);

/* What a message's fields say about its framing and its connection. */
struct http1_facts {
    int n_cl;            /* Content-Length fields seen */
    uint64_t cl;         /* their value */
    int cl_bad;          /* not digits, too big, or two that differ */
    int has_te;          /* Transfer-Encoding seen */
    int te_chunked;      /* ... and its last coding is chunked */
    int conn_close;      /* Connection (or Proxy-Connection): close */
    int conn_keep_alive; /* ... keep-alive */
    int n_opts;          /* Connection options (hop-by-hop field names) */
    int opts_overflow;   /* more than HTTP1_CONN_OPTS */
    struct {
        const char *p;
        size_t n;
    } opts[HTTP1_CONN_OPTS];
};

/* Notes one field in *facts (zeroed before the first). */
void http1_facts_add(struct http1_facts *facts, const struct http1_field *f);

/* Whether a proxy must drop f before forwarding (RFC 9110 section 7.6.1):
 * Connection, Proxy-Connection, Keep-Alive, TE, Trailer, Upgrade and
 * every field the Connection fields name. Transfer-Encoding stays: the
 * body is forwarded in the coding it came in. */
int http1_hop_by_hop(const struct http1_facts *facts,
                     const struct http1_field *f);

/* How a body ends (RFC 9112 section 6.3). */
enum http1_body_mode {
    HTTP1_BODY_NONE,    /* no body */
    HTTP1_BODY_LENGTH,  /* Content-Length bytes */
    HTTP1_BODY_CHUNKED, /* the last chunk and the trailer section */
    HTTP1_BODY_CLOSE,   /* the end of the connection (responses only) */
};

struct http1_body {
    enum http1_body_mode mode;
    uint64_t left; /* LENGTH: bytes to go; CHUNKED: of this chunk */
    int state;     /* CHUNKED: where in the framing */
    size_t line;   /* CHUNKED: bytes of the current size or trailer line(s) */
    int done;      /* the body's last byte was scanned */
};

void http1_body_init(struct http1_body *b, enum http1_body_mode mode,
                     uint64_t length);
/*
 * Scans the next n bytes of a message at its body: returns how many of
 * them belong to the body (fewer than n only when it ended among them,
 * then b->done), or GW_EPROTO for broken chunked framing. The bytes are
 * not changed.
 */
ssize_t http1_body_scan(struct http1_body *b, const uint8_t *p, size_t n);

#endif
