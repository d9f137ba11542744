/*
 * Unit tests for tls_bio.c: a real TLS client (with the read-ahead reader
 * and the write gatherer) against an OpenSSL server whose bytes the test
 * delivers to the client's socket in whatever pieces it likes.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include "tls_bio.h"

#define RECORD 1000
#define BURST  (2 * TLS_BIO_READ_CHUNK / RECORD + 8) /* records */

struct pair {
    int fd[2]; /* [0] the client's socket, [1] the test's end */
    SSL_CTX *cctx, *sctx;
    SSL *client, *server;
    BIO *s_in, *s_out; /* the server's memory BIOs */
    BIO *reader, *writer;
    int inputs; /* on_input calls */
};

static void count_input(void *arg)
{
    ((struct pair *)arg)->inputs++;
}

static X509 *self_signed(EVP_PKEY *key)
{
    X509 *x = X509_new();
    assert_non_null(x);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), 0);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600);
    X509_NAME *name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                               (const unsigned char *)"localhost", -1, -1, 0);
    X509_set_issuer_name(x, name);
    X509_set_pubkey(x, key);
    assert_true(X509_sign(x, key, EVP_sha256()) > 0);
    return x;
}

/* Moves what the server wrote to the client's socket (up to max bytes)
 * and what the client wrote to the server. Returns bytes to the client. */
static size_t shuttle(struct pair *p, size_t max)
{
    char buf[65536];
    ssize_t n;
    while ((n = read(p->fd[1], buf, sizeof(buf))) > 0)
        BIO_write(p->s_in, buf, (int)n);
    size_t moved = 0;
    while (moved < max && BIO_ctrl_pending(p->s_out) > 0) {
        size_t want = max - moved < sizeof(buf) ? max - moved : sizeof(buf);
        int got = BIO_read(p->s_out, buf, (int)want);
        assert_true(got > 0);
        assert_int_equal(write(p->fd[1], buf, (size_t)got), got);
        moved += (size_t)got;
    }
    return moved;
}

static int setup(void **state)
{
    struct pair *p = calloc(1, sizeof(*p));
    assert_non_null(p);
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, p->fd), 0);
    for (int i = 0; i < 2; i++)
        fcntl(p->fd[i], F_SETFL, fcntl(p->fd[i], F_GETFL) | O_NONBLOCK);

    EVP_PKEY *key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    assert_non_null(key);
    X509 *cert = self_signed(key);
    p->sctx = SSL_CTX_new(TLS_server_method());
    assert_int_equal(SSL_CTX_use_certificate(p->sctx, cert), 1);
    assert_int_equal(SSL_CTX_use_PrivateKey(p->sctx, key), 1);
    p->cctx = SSL_CTX_new(TLS_client_method());
    /* the test's own throwaway certificate: trust it, verify it */
    X509_STORE_add_cert(SSL_CTX_get_cert_store(p->cctx), cert);
    SSL_CTX_set_verify(p->cctx, SSL_VERIFY_PEER, NULL);
    X509_free(cert);
    EVP_PKEY_free(key);

    p->server = SSL_new(p->sctx);
    p->s_in = BIO_new(BIO_s_mem());
    p->s_out = BIO_new(BIO_s_mem());
    SSL_set_bio(p->server, p->s_in, p->s_out);
    SSL_set_accept_state(p->server);
    p->client = SSL_new(p->cctx);
    SSL_set_fd(p->client, p->fd[0]);
    SSL_set1_host(p->client, "localhost");
    SSL_set_connect_state(p->client);

    int cdone = 0, sdone = 0;
    for (int i = 0; i < 100 && !(cdone && sdone); i++) {
        if (!cdone)
            cdone = SSL_do_handshake(p->client) == 1;
        shuttle(p, SIZE_MAX);
        if (!sdone)
            sdone = SSL_do_handshake(p->server) == 1;
        shuttle(p, SIZE_MAX);
    }
    assert_true(cdone && sdone);
    /* TLS 1.3 session tickets: let the client take them before the test */
    char c;
    assert_true(SSL_read(p->client, &c, 1) <= 0);

    p->writer = tls_bio_gather_writes(p->client, 64 * 1024);
    p->reader = tls_bio_buffer_reads(p->client, count_input, p);
    assert_non_null(p->writer);
    assert_non_null(p->reader);
    *state = p;
    return 0;
}

static int teardown(void **state)
{
    struct pair *p = *state;
    SSL_free(p->client);
    SSL_free(p->server);
    SSL_CTX_free(p->cctx);
    SSL_CTX_free(p->sctx);
    close(p->fd[0]);
    close(p->fd[1]);
    free(p);
    return 0;
}

static void server_send_records(struct pair *p, int n, uint8_t first)
{
    uint8_t rec[RECORD];
    for (int i = 0; i < n; i++) {
        memset(rec, (uint8_t)(first + i), sizeof(rec));
        assert_int_equal(SSL_write(p->server, rec, sizeof(rec)), RECORD);
    }
}

static int client_read(struct pair *p, uint8_t *out, int len)
{
    int n = SSL_read(p->client, out, len);
    if (n <= 0)
        assert_int_equal(SSL_get_error(p->client, n), SSL_ERROR_WANT_READ);
    return n;
}

static void expect_record(struct pair *p, uint8_t fill)
{
    uint8_t got[4096];
    assert_int_equal(client_read(p, got, sizeof(got)), RECORD);
    for (int i = 0; i < RECORD; i++)
        assert_int_equal(got[i], fill);
}

/* One read() takes a whole chunk; the records in it come out one per
 * SSL_read with has_record saying so, then the rest from the socket. */
static void test_burst_is_read_in_chunks(void **state)
{
    struct pair *p = *state;
    server_send_records(p, BURST, 0);
    size_t wire = shuttle(p, SIZE_MAX);
    assert_true(wire > 2 * TLS_BIO_READ_CHUNK);

    expect_record(p, 0);
    int queued = 0;
    assert_int_equal(ioctl(p->fd[0], FIONREAD, &queued), 0);
    assert_int_equal((size_t)queued, wire - TLS_BIO_READ_CHUNK);
    assert_true(p->inputs > 0);

    int from_buffer = 0;
    while (tls_bio_has_record(p->reader)) {
        expect_record(p, (uint8_t)(1 + from_buffer));
        from_buffer++;
    }
    /* the records wholly inside the first chunk, less the one read */
    assert_int_equal(from_buffer, TLS_BIO_READ_CHUNK / (wire / BURST) - 1);
    for (int i = 1 + from_buffer; i < BURST; i++)
        expect_record(p, (uint8_t)i);
    assert_false(tls_bio_has_record(p->reader));
    assert_int_equal(BIO_ctrl_pending(p->reader), 0);
    uint8_t got[16];
    assert_int_equal(client_read(p, got, sizeof(got)), -1);
}

/* A record of the largest size still fits the buffer whole: a reader
 * smaller than that would never report one and leave it to poll(). */
static void test_largest_records_are_whole_in_the_buffer(void **state)
{
    struct pair *p = *state;
    static uint8_t big[16384], got[16384];
    for (int i = 0; i < 3; i++) {
        memset(big, 'a' + i, sizeof(big));
        assert_int_equal(SSL_write(p->server, big, sizeof(big)), sizeof(big));
    }
    shuttle(p, SIZE_MAX);
    /* The first chunk holds record 0 and most of record 1; completing
     * record 1 reads record 2 whole. */
    for (int i = 0; i < 3; i++) {
        assert_int_equal(tls_bio_has_record(p->reader), i == 2);
        assert_int_equal(client_read(p, got, sizeof(got)), sizeof(got));
        assert_int_equal(got[0], 'a' + i);
        assert_int_equal(got[sizeof(got) - 1], 'a' + i);
    }
    assert_false(tls_bio_has_record(p->reader));
}

/* Part of a record is held but never claimed as a whole one; the rest
 * arriving later completes it. */
static void test_partial_record_waits_for_the_rest(void **state)
{
    struct pair *p = *state;
    server_send_records(p, 2, 7);
    shuttle(p, 0);
    size_t total = BIO_ctrl_pending(p->s_out);
    size_t one = total / 2;
    uint8_t got[4096];

    for (size_t cut = 1; cut < one; cut += one / 3) {
        /* the first record and `cut` bytes of the second */
        shuttle(p, one + cut);
        expect_record(p, 7);
        assert_false(tls_bio_has_record(p->reader));
        assert_int_equal(client_read(p, got, sizeof(got)), -1);
        assert_false(tls_bio_has_record(p->reader));
        /* the rest: the second record comes out whole */
        shuttle(p, SIZE_MAX);
        expect_record(p, 8);
        server_send_records(p, 2, 7);
        shuttle(p, 0);
    }
}

/* Gathered writes leave in one piece on flush; a clean close and a cut
 * connection both end reads instead of waiting. */
static void test_writes_gather_and_ends_are_seen(void **state)
{
    struct pair *p = *state;
    uint8_t msg[RECORD];
    memset(msg, 'w', sizeof(msg));
    for (int i = 0; i < 10; i++)
        assert_int_equal(SSL_write(p->client, msg, sizeof(msg)), RECORD);
    int queued = 0;
    assert_int_equal(ioctl(p->fd[1], FIONREAD, &queued), 0);
    assert_int_equal(queued, 0); /* still gathered */
    assert_int_equal(tls_bio_flush(p->writer), 1);
    assert_int_equal(ioctl(p->fd[1], FIONREAD, &queued), 0);
    assert_true(queued > 10 * RECORD);
    shuttle(p, 0);
    uint8_t got[RECORD];
    for (int i = 0; i < 10; i++)
        assert_int_equal(SSL_read(p->server, got, sizeof(got)), RECORD);

    server_send_records(p, 3, 1);
    SSL_shutdown(p->server);
    shuttle(p, SIZE_MAX);
    for (int i = 0; i < 3; i++)
        expect_record(p, (uint8_t)(1 + i));
    assert_int_equal(SSL_read(p->client, got, sizeof(got)), 0);
    assert_int_equal(SSL_get_error(p->client, 0), SSL_ERROR_ZERO_RETURN);
}

static void test_cut_mid_record_is_an_error(void **state)
{
    struct pair *p = *state;
    server_send_records(p, 1, 3);
    shuttle(p, 0);
    shuttle(p, BIO_ctrl_pending(p->s_out) / 2);
    close(p->fd[1]);
    p->fd[1] = open("/dev/null", O_RDONLY); /* for teardown */
    uint8_t got[RECORD];
    int n = SSL_read(p->client, got, sizeof(got));
    assert_true(n <= 0);
    int err = SSL_get_error(p->client, n);
    assert_true(err == SSL_ERROR_SYSCALL || err == SSL_ERROR_SSL);
    assert_false(tls_bio_has_record(p->reader));
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN); /* the client's alert to a closed peer */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_burst_is_read_in_chunks, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_partial_record_waits_for_the_rest,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_largest_records_are_whole_in_the_buffer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_writes_gather_and_ends_are_seen,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_cut_mid_record_is_an_error, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
