/* Lifetimes of http.c and aws.c on a real loop: cancel, free with work in
 * flight, free from inside a callback, the body cap, aws_get_credentials.
 * A tiny loopback TCP server plays a silent or a flooding peer. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "aws.h"
#include "aws_client_creds.h"
#include "common.h"
#include "defer.h"
#include "http.h"

#define FLOOD_LEN (17u * 1024 * 1024)

struct peer {
    uv_tcp_t server;
    int port;
    int flood; /* 1: answer every request with a 17 MiB body */
    uv_tcp_t *clients[64];
    int n_clients;
};

static char *flood_buf;

static void close_free(uv_handle_t *h)
{
    free(h);
}

static void peer_write_done(uv_write_t *w, int status)
{
    (void)status;
    free(w);
}

static void peer_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
    static char slab[65536];
    (void)h;
    (void)hint;
    b->base = slab;
    b->len = sizeof(slab);
}

static void peer_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    struct peer *p = s->data;
    (void)b;
    if (n > 0 && p->flood && !flood_buf) {
        uv_write_t *w = malloc(sizeof(*w));
        const char *hdr = "HTTP/1.1 200 OK\r\nContent-Length: 17825792\r\n\r\n";
        size_t hl = strlen(hdr);
        flood_buf = malloc(hl + FLOOD_LEN);
        memcpy(flood_buf, hdr, hl);
        memset(flood_buf + hl, 'x', FLOOD_LEN);
        uv_buf_t buf = uv_buf_init(flood_buf, (unsigned)(hl + FLOOD_LEN));
        uv_write(w, s, &buf, 1, peer_write_done);
    }
}

static void peer_conn(uv_stream_t *server, int status)
{
    struct peer *p = server->data;
    uv_tcp_t *c;

    if (status < 0 || p->n_clients == 64)
        return;
    c = malloc(sizeof(*c));
    uv_tcp_init(server->loop, c);
    c->data = p;
    if (uv_accept(server, (uv_stream_t *)c) == 0) {
        p->clients[p->n_clients++] = c;
        uv_read_start((uv_stream_t *)c, peer_alloc, peer_read);
    } else {
        uv_close((uv_handle_t *)c, close_free);
    }
}

static void peer_start(uv_loop_t *loop, struct peer *p, int flood)
{
    struct sockaddr_in a;
    struct sockaddr_storage got;
    int len = sizeof(got);

    memset(p, 0, sizeof(*p));
    p->flood = flood;
    uv_ip4_addr("127.0.0.1", 0, &a);
    assert_int_equal(uv_tcp_init(loop, &p->server), 0);
    p->server.data = p;
    assert_int_equal(uv_tcp_bind(&p->server, (struct sockaddr *)&a, 0), 0);
    assert_int_equal(uv_listen((uv_stream_t *)&p->server, 64, peer_conn), 0);
    uv_tcp_getsockname(&p->server, (struct sockaddr *)&got, &len);
    p->port = ntohs(((struct sockaddr_in *)&got)->sin_port);
}

static void peer_stop(struct peer *p)
{
    for (int i = 0; i < p->n_clients; i++)
        uv_close((uv_handle_t *)p->clients[i], close_free);
    uv_close((uv_handle_t *)&p->server, NULL);
}

static void finish_loop(uv_loop_t *loop)
{
    uv_run(loop, UV_RUN_DEFAULT);
    defer_shutdown(); /* the deferral's handle is on this test's loop */
    uv_run(loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(loop), 0);
}

static int callbacks;

static void never_cb(void *arg, int status, json_t *resp,
                     const struct aws_error *err)
{
    (void)arg;
    (void)status;
    (void)resp;
    (void)err;
    fail_msg("callback ran after cancel/free");
}

static void setup_env(int port)
{
    char url[64];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d", port);
    setenv("AWS_ENDPOINT_URL_SSM", url, 1);
    setenv("AWS_ACCESS_KEY_ID", "AKIDTESTTESTTEST0001", 1);
    setenv("AWS_SECRET_ACCESS_KEY", "secret/secret/secret", 1);
    setenv("AWS_REGION", "us-east-1", 1);
    setenv("AWS_CONFIG_FILE", "/nonexistent/config", 1);
    setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/credentials", 1);
    setenv("AWS_EC2_METADATA_DISABLED", "true", 1);
    setenv("AWS_MAX_ATTEMPTS", "1", 1);
}

static struct aws_client *stop_client;
static struct peer *stop_peer;

static void stop_cb(uv_timer_t *t)
{
    /* With calls still waiting on the silent peer. */
    assert_true(stop_peer->n_clients >= 1);
    aws_client_free(stop_client);
    stop_client = NULL;
    peer_stop(stop_peer);
    uv_close((uv_handle_t *)t, NULL);
}

static void test_cancel_and_free_in_flight(void **state)
{
    uv_loop_t loop;
    struct peer p;
    struct aws_client *c;
    struct aws_call *calls[20];
    uv_timer_t t;

    (void)state;
    uv_loop_init(&loop);
    peer_start(&loop, &p, 0);
    setup_env(p.port);
    c = aws_client_new(&loop, NULL);
    assert_non_null(c);
    for (int i = 0; i < 20; i++) {
        calls[i] = aws_call_start(c, "ssm", "DescribeInstanceInformation", NULL,
                                  NULL, NULL, never_cb, NULL);
        assert_non_null(calls[i]);
    }
    /* Half cancelled before they start, half left for the free. */
    for (int i = 0; i < 10; i++)
        aws_call_cancel(calls[i]);
    uv_timer_init(&loop, &t);
    stop_client = c;
    stop_peer = &p;
    uv_timer_start(&t, stop_cb, 300, 0);
    finish_loop(&loop);
    assert_null(stop_client);
}

static struct aws_client *free_me;

static void free_in_cb(void *arg, int status, json_t *resp,
                       const struct aws_error *err)
{
    (void)arg;
    (void)resp;
    callbacks++;
    assert_true(status < 0);
    assert_non_null(err);
    aws_client_free(free_me); /* from inside the call's own callback */
}

static void test_free_from_callback(void **state)
{
    uv_loop_t loop;

    (void)state;
    uv_loop_init(&loop);
    setup_env(1); /* refused at once */
    free_me = aws_client_new(&loop, NULL);
    callbacks = 0;
    assert_non_null(aws_call_start(free_me, "ssm", "X", NULL, NULL, NULL,
                                   free_in_cb, NULL));
    assert_non_null(aws_call_start(free_me, "ssm", "Y", NULL, NULL, NULL,
                                   free_in_cb, NULL));
    assert_null(aws_call_start(free_me, "nope", "X", NULL, NULL, NULL,
                               free_in_cb, NULL));
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(callbacks, 1); /* the second was cancelled by free */
    finish_loop(&loop);
}

static void big_done(struct http_req *req, const struct http_response *resp,
                     void *arg)
{
    (void)req;
    callbacks++;
    assert_int_equal(resp->transport_error, GW_ETOO_BIG);
    assert_int_equal(resp->body_len, 0 + resp->body_len); /* readable */
    *(int *)arg = 1;
}

static void test_body_cap(void **state)
{
    uv_loop_t loop;
    struct peer p;
    struct http_client *h;
    struct http_request_opts o;
    char url[64];
    int got = 0;

    (void)state;
    uv_loop_init(&loop);
    peer_start(&loop, &p, 1);
    h = http_client_new(&loop, NULL);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/", p.port);
    memset(&o, 0, sizeof(o));
    o.method = "GET";
    o.url = url;
    o.timeout_ms = 20000;
    o.no_proxy = 1;
    callbacks = 0;
    assert_non_null(http_request(h, &o, big_done, &got));
    while (!got && uv_run(&loop, UV_RUN_ONCE))
        ;
    assert_int_equal(got, 1);
    http_client_free(h);
    peer_stop(&p);
    finish_loop(&loop);
    free(flood_buf);
    flood_buf = NULL;
}

static void creds_cb(void *arg, int status, const struct aws_sigv4_creds *cr,
                     const char *region, const struct aws_error *err)
{
    (void)err;
    callbacks++;
    assert_int_equal(status, 0);
    assert_string_equal(cr->access_key_id, "AKIDTESTTESTTEST0001");
    assert_string_equal(region, "eu-west-3");
    *(int *)arg = 1;
}

static void test_get_credentials(void **state)
{
    uv_loop_t loop;
    struct aws_client *c;
    int got = 0;

    (void)state;
    uv_loop_init(&loop);
    setup_env(1);
    setenv("AWS_CA_BUNDLE", "/tmp/some-ca.pem", 1);
    c = aws_client_new(&loop, NULL);
    assert_string_equal(aws_ca_bundle(c, NULL), "/tmp/some-ca.pem");
    unsetenv("AWS_CA_BUNDLE");
    assert_null(aws_ca_bundle(c, NULL));
    callbacks = 0;
    assert_non_null(aws_get_credentials(c, NULL, "eu-west-3", creds_cb, &got));
    assert_int_equal(got, 0); /* never inside the starting call */
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(got, 1);
    aws_client_free(c);
    finish_loop(&loop);
}

static void free_timer(uv_timer_t *t)
{
    aws_client_free(t->data);
    uv_close((uv_handle_t *)t, NULL);
}

/* Calls waiting on a slow credential_process when the client goes: no
 * callbacks, the child is killed, the loop drains. */
static void test_free_while_waiting_for_process(void **state)
{
    char path[] = "/tmp/ssmgate-test-config-XXXXXX";
    const char *cfg = "[profile slow]\nregion = us-east-1\n"
                      "credential_process = /bin/sleep 30\n";
    uv_loop_t loop;
    struct aws_client *c;
    uv_timer_t t;
    uint64_t t0;
    int fd;

    (void)state;
    fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, cfg, strlen(cfg)), (int)strlen(cfg));
    close(fd);
    uv_loop_init(&loop);
    setup_env(1);
    setenv("AWS_CONFIG_FILE", path, 1);
    c = aws_client_new(&loop, NULL);
    for (int i = 0; i < 3; i++)
        assert_non_null(
            aws_call_start(c, "ssm", "X", NULL, "slow", NULL, never_cb, NULL));
    assert_non_null(aws_get_credentials(c, "slow", NULL, NULL, NULL) == NULL
                        ? (void *)1
                        : NULL);
    uv_timer_init(&loop, &t);
    t.data = c;
    uv_timer_start(&t, free_timer, 200, 0);
    t0 = uv_hrtime();
    finish_loop(&loop);
    assert_true(uv_hrtime() - t0 < 5000000000ull);
    unlink(path);
    setenv("AWS_CONFIG_FILE", "/nonexistent/config", 1);
}

int main(void)
{
    /* The flooding peer writes into a socket curl has closed. */
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cancel_and_free_in_flight),
        cmocka_unit_test(test_free_from_callback),
        cmocka_unit_test(test_body_cap),
        cmocka_unit_test(test_get_credentials),
        cmocka_unit_test(test_free_while_waiting_for_process),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
