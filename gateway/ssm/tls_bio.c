/*
 * tls_bio.c - batched reads and writes under an SSL object.
 *
 * The writer is OpenSSL's own buffering filter. The reader is ours: it
 * keeps a chunk read ahead and reports when bytes are left in it, which
 * OpenSSL's read_ahead cannot do (the caller could not tell a whole
 * buffered record from half of one, and would either stall or spin).
 */
#include "tls_bio.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define TLS_RECORD_HEADER 5

struct reader {
    uint8_t *buf; /* TLS_BIO_READ_CHUNK, only while it holds bytes */
    size_t off, len;
    void (*on_input)(void *arg);
    void *arg;
};

BIO *tls_bio_gather_writes(SSL *ssl, int size)
{
    BIO *sock = SSL_get_wbio(ssl);
    BIO *b = BIO_new(BIO_f_buffer());
    if (sock == NULL || b == NULL || BIO_up_ref(sock) != 1) {
        BIO_free(b);
        return NULL;
    }
    if (BIO_set_write_buffer_size(b, size) != 1) {
        BIO_free(sock);
        BIO_free(b);
        return NULL;
    }
    BIO_push(b, sock);
    SSL_set0_wbio(ssl, b); /* drops the SSL's own reference to sock */
    return b;
}

int tls_bio_flush(BIO *writer)
{
    if (writer == NULL || BIO_wpending(writer) == 0)
        return 1;
    if (BIO_flush(writer) == 1)
        return 1;
    return BIO_should_retry(writer) ? 0 : -1;
}

static int reader_new(BIO *b)
{
    BIO_set_init(b, 1);
    return 1;
}

static int reader_free(BIO *b)
{
    struct reader *r = BIO_get_data(b);
    if (r != NULL) {
        free(r->buf);
        free(r);
    }
    BIO_set_data(b, NULL);
    return 1;
}

static int reader_read(BIO *b, char *out, int outl)
{
    struct reader *r = BIO_get_data(b);
    BIO *next = BIO_next(b);
    BIO_clear_retry_flags(b);
    if (r == NULL || next == NULL || out == NULL || outl <= 0)
        return 0;
    if (r->len == 0) {
        if (r->buf == NULL && (r->buf = malloc(TLS_BIO_READ_CHUNK)) == NULL) {
            int n = BIO_read(next, out, outl); /* unbatched, still right */
            BIO_copy_next_retry(b);
            return n;
        }
        int n = BIO_read(next, r->buf, TLS_BIO_READ_CHUNK);
        if (n <= 0) {
            BIO_copy_next_retry(b);
            free(r->buf); /* idle connections hold no buffer */
            r->buf = NULL;
            return n;
        }
        r->off = 0;
        r->len = (size_t)n;
    }
    size_t m = (size_t)outl < r->len ? (size_t)outl : r->len;
    memcpy(out, r->buf + r->off, m);
    r->off += m;
    r->len -= m;
    if (r->len == 0) {
        free(r->buf);
        r->buf = NULL;
    } else if (r->on_input != NULL) {
        r->on_input(r->arg);
    }
    return (int)m;
}

static long reader_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    struct reader *r = BIO_get_data(b);
    BIO *next = BIO_next(b);
    size_t held = r != NULL ? r->len : 0;
    switch (cmd) {
    case BIO_CTRL_PENDING:
        return (long)held + (next != NULL ? BIO_ctrl(next, cmd, num, ptr) : 0);
    case BIO_CTRL_EOF:
        if (held > 0)
            return 0;
        break;
    case BIO_CTRL_DUP:
        return 0; /* never duplicated: SSL objects here are not dup'ed */
    default:
        break;
    }
    return next != NULL ? BIO_ctrl(next, cmd, num, ptr) : 0;
}

static long reader_callback_ctrl(BIO *b, int cmd, BIO_info_cb *fp)
{
    BIO *next = BIO_next(b);
    return next != NULL ? BIO_callback_ctrl(next, cmd, fp) : 0;
}

static const BIO_METHOD *reader_method(void)
{
    static BIO_METHOD *m; /* one per process, like OpenSSL's own */
    if (m != NULL)
        return m;
    BIO_METHOD *n =
        BIO_meth_new(BIO_get_new_index() | BIO_TYPE_FILTER, "read-ahead");
    if (n == NULL || !BIO_meth_set_create(n, reader_new) ||
        !BIO_meth_set_destroy(n, reader_free) ||
        !BIO_meth_set_read(n, reader_read) ||
        !BIO_meth_set_ctrl(n, reader_ctrl) ||
        !BIO_meth_set_callback_ctrl(n, reader_callback_ctrl)) {
        BIO_meth_free(n);
        return NULL;
    }
    return m = n;
}

BIO *tls_bio_buffer_reads(SSL *ssl, void (*on_input)(void *arg), void *arg)
{
    const BIO_METHOD *method = reader_method();
    BIO *sock = SSL_get_rbio(ssl);
    struct reader *r = calloc(1, sizeof(*r));
    BIO *b = method != NULL ? BIO_new(method) : NULL;
    if (sock == NULL || r == NULL || b == NULL || BIO_up_ref(sock) != 1) {
        free(r);
        BIO_free(b);
        return NULL;
    }
    r->on_input = on_input;
    r->arg = arg;
    BIO_set_data(b, r);
    BIO_push(b, sock);
    SSL_set0_rbio(ssl, b); /* drops the SSL's own reference to sock */
    return b;
}

int tls_bio_has_record(BIO *reader)
{
    const struct reader *r = BIO_get_data(reader);
    if (r == NULL || r->len < TLS_RECORD_HEADER)
        return 0;
    const uint8_t *h = r->buf + r->off;
    size_t body = (size_t)h[3] << 8 | h[4];
    return r->len >= TLS_RECORD_HEADER + body;
}
