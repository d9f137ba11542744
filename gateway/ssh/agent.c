/*
 * agent.c - the ssh-agent socket (RFC 9987 subset).
 *
 * Model: one listening uv_pipe_t; per accepted client a struct
 * agent_client with its pipe and an input buf. Bytes are read straight
 * into the buf (alloc_cb hands out its free space); after each read every
 * whole frame is parsed on a read-only view (agent_parse_request), the
 * reply built (agent_build_reply) and queued with one uv_write, and only
 * then consumed. A frame that cannot be valid (length 0 or above
 * AGENT_MAX_MSG, a malformed body of a message we implement) closes that
 * client only. Unknown requests - including the session-bind@openssh.com
 * extension ssh sends first - get SSH_AGENT_FAILURE and the connection
 * stays open. A client that does not read its replies stops being read
 * (high/low water marks on write_queue_size).
 *
 * Lifetimes: a client is freed in its close callback; the agent itself
 * once the listener and all clients are closed after agent_stop().
 */
#include "agent.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "common.h"
#include "list.h"
#include "log.h"

#define AGENT_IN_INITIAL  4096
#define AGENT_WQ_HIGH     (64 * 1024)
#define AGENT_WQ_LOW      (16 * 1024)
#define AGENT_MAX_CLIENTS 256
#define AGENT_REPLY_MAX   1024 /* two identities with long comments fit */

int agent_parse_request(const uint8_t *p, size_t len, struct agent_request *req,
                        size_t *consumed, size_t *need)
{
    struct buf_view v = buf_view_of(p, len);
    struct buf_view body;
    uint32_t n;

    if (need != NULL)
        *need = 0;
    memset(req, 0, sizeof(*req));
    if (buf_get_u32(&v, &n) != 0)
        return GW_ENEED_MORE;
    if (n > AGENT_MAX_MSG)
        return GW_ETOO_BIG;
    if (n == 0)
        return GW_EPROTO;
    if (buf_get_view(&v, n, &body) != 0) {
        if (need != NULL)
            *need = 4 + (size_t)n;
        return GW_ENEED_MORE;
    }
    *consumed = 4 + (size_t)n;
    CHECK(buf_get_u8(&body, &req->type) == 0);

    switch (req->type) {
    case AGENTC_SIGN_REQUEST:
        /* string key_blob, string data, uint32 flags, nothing after. */
        if (buf_get_string(&body, AGENT_MAX_MSG, &req->key_blob,
                           &req->key_blob_len) != 0 ||
            buf_get_string(&body, AGENT_MAX_MSG, &req->data, &req->data_len) !=
                0 ||
            buf_get_u32(&body, &req->flags) != 0 || buf_view_left(&body) != 0)
            return GW_EPROTO;
        break;
    case AGENTC_EXTENSION:
        /* string name, then extension-specific data we never read. */
        if (buf_get_string(&body, AGENT_MAX_MSG, &req->ext_name,
                           &req->ext_name_len) != 0)
            return GW_EPROTO;
        break;
    default:
        /* REQUEST_IDENTITIES has no contents; others get FAILURE. */
        break;
    }
    return 0;
}

/* Writes the uint32 length in front of a frame built after 4 bytes. */
static void frame_finish(struct buf *b)
{
    buf_store_u32(b->data + b->rpos, (uint32_t)(buf_len(b) - 4));
}

static int put_identity(struct buf *b, const struct key *k, const char *comment)
{
    if (buf_put_string(b, key_blob(k), KEY_BLOB_LEN) ||
        buf_put_string(b, comment, strlen(comment)))
        return GW_ETOO_BIG;
    return 0;
}

int agent_build_reply(const struct agent_request *req,
                      const struct key_ring *ring, const char *comment,
                      uint64_t now_ms, uint8_t *out, size_t cap, size_t *outlen)
{
    struct buf b;
    const struct key *prev = key_ring_previous(ring, now_ms);
    const struct key *k;
    uint8_t sig[KEY_SIG_BLOB_LEN];

    buf_wrap(&b, out, cap);
    if (buf_put_u32(&b, 0))
        return GW_ETOO_BIG;

    switch (req->type) {
    case AGENTC_REQUEST_IDENTITIES:
        /* The current key first: ssh tries keys in this order. The
         * previous one stays listed during its grace period for logins
         * whose push was made just before a rotation. */
        if (buf_put_u8(&b, AGENT_IDENTITIES_ANSWER) ||
            buf_put_u32(&b, prev != NULL ? 2 : 1) ||
            put_identity(&b, ring->current, comment) ||
            (prev != NULL && put_identity(&b, prev, comment)))
            return GW_ETOO_BIG;
        break;
    case AGENTC_SIGN_REQUEST:
        k = key_ring_find(ring, req->key_blob, req->key_blob_len, now_ms);
        if (k == NULL || key_sign(k, req->data, req->data_len, sig) != 0)
            goto failure;
        if (buf_put_u8(&b, AGENT_SIGN_RESPONSE) ||
            buf_put_string(&b, sig, sizeof(sig)))
            return GW_ETOO_BIG;
        break;
    default:
        goto failure;
    }
    frame_finish(&b);
    *outlen = buf_len(&b);
    return 0;

failure:
    buf_reset(&b);
    if (buf_put_u32(&b, 1) || buf_put_u8(&b, AGENT_FAILURE))
        return GW_ETOO_BIG;
    *outlen = buf_len(&b);
    return 0;
}

/* Owner: struct agent (its list); freed in client_close_done. */
struct agent_client {
    uv_pipe_t pipe;
    uv_timer_t timer; /* runs while a frame is only partly in */
    int handles;      /* open handles; freed when it reaches 0 */
    struct agent *agent;
    struct list link; /* agent->clients */
    struct buf in;
    unsigned id;
    int closing;
    int paused; /* reading stopped: the peer does not read its replies */
};

/* One queued reply; freed in write_done. Agent traffic is a few small
 * messages per ssh login, so a malloc per reply is fine here. */
struct agent_reply {
    uv_write_t req;
    struct agent_client *client;
    size_t len;
    uint8_t data[];
};

/* Owner: the daemon (agent_start / agent_stop). */
struct agent {
    uv_loop_t *loop;
    uv_pipe_t listener;
    const struct key_ring *ring;
    char comment[KEY_COMMENT_MAX + 1];
    struct list clients;
    size_t nclients;
    unsigned next_id;
    int stopping;
    int listener_open;
    uint64_t partial_timeout_ms;
};

static void client_close(struct agent_client *c);
static void client_process(struct agent_client *c);
static void client_alloc(uv_handle_t *h, size_t hint, uv_buf_t *out);
static void client_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *b);

static void agent_maybe_free(struct agent *a)
{
    if (a->stopping && !a->listener_open && list_empty(&a->clients)) {
        memset(a, 0xa5, sizeof(*a)); /* poison */
        free(a);
    }
}

static void client_close_done(uv_handle_t *h)
{
    struct agent_client *c = h->data;
    struct agent *a = c->agent;
    if (--c->handles > 0)
        return;
    list_remove(&c->link);
    a->nclients--;
    buf_free(&c->in);
    memset(c, 0xa5, sizeof(*c)); /* poison */
    free(c);
    agent_maybe_free(a);
}

static void client_close(struct agent_client *c)
{
    if (c->closing)
        return;
    c->closing = 1;
    log_debug("agent client %u: closed", c->id);
    uv_close((uv_handle_t *)&c->pipe, client_close_done);
    uv_close((uv_handle_t *)&c->timer, client_close_done);
}

static void client_timeout(uv_timer_t *t)
{
    struct agent_client *c = t->data;
    log_warn("agent client %u: incomplete message for %llu ms, closing", c->id,
             (unsigned long long)c->agent->partial_timeout_ms);
    client_close(c);
}

static void client_write_done(uv_write_t *req, int status)
{
    struct agent_reply *r = CONTAINER_OF(req, struct agent_reply, req);
    struct agent_client *c = r->client;
    free(r);
    if (status == UV_ECANCELED)
        return;
    if (status < 0) {
        log_debug("agent client %u: write: %s", c->id, uv_strerror(status));
        client_close(c);
        return;
    }
    if (c->paused && !c->closing && c->pipe.write_queue_size <= AGENT_WQ_LOW) {
        c->paused = 0;
        client_process(c);
        if (!c->closing && !c->paused)
            uv_read_start((uv_stream_t *)&c->pipe, client_alloc, client_read);
    }
}

static void client_alloc(uv_handle_t *h, size_t hint, uv_buf_t *out)
{
    struct agent_client *c = CONTAINER_OF(h, struct agent_client, pipe);
    uint8_t *p = NULL;
    size_t n = buf_reserve_all(&c->in, &p);
    *out = uv_buf_init((char *)p, (unsigned int)n);
}

static void client_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *b)
{
    struct agent_client *c = CONTAINER_OF(s, struct agent_client, pipe);
    if (nread < 0) {
        if (nread != UV_EOF)
            log_debug("agent client %u: read: %s", c->id,
                      uv_strerror((int)nread));
        client_close(c);
        return;
    }
    if (nread == 0)
        return;
    buf_commit(&c->in, (size_t)nread);
    client_process(c);
}

/* Makes room for a frame of need bytes (need <= 4 + AGENT_MAX_MSG). */
static int client_grow(struct agent_client *c, size_t need)
{
    struct buf bigger;
    if (need <= c->in.cap)
        return 0;
    if (buf_init(&bigger, need) != 0)
        return GW_ENOMEM;
    CHECK(buf_put(&bigger, buf_rptr(&c->in), buf_len(&c->in)) == 0);
    buf_free(&c->in);
    c->in = bigger;
    return 0;
}

static int client_send(struct agent_client *c, const uint8_t *p, size_t len)
{
    struct agent_reply *r = malloc(sizeof(*r) + len);
    if (r == NULL)
        return GW_ENOMEM;
    r->client = c;
    r->len = len;
    memcpy(r->data, p, len);
    uv_buf_t ub = uv_buf_init((char *)r->data, (unsigned int)len);
    int rc =
        uv_write(&r->req, (uv_stream_t *)&c->pipe, &ub, 1, client_write_done);
    if (rc < 0)
        free(r);
    return rc;
}

static const char *msg_name(uint8_t type)
{
    switch (type) {
    case AGENTC_REQUEST_IDENTITIES:
        return "REQUEST_IDENTITIES";
    case AGENTC_SIGN_REQUEST:
        return "SIGN_REQUEST";
    case AGENTC_EXTENSION:
        return "EXTENSION";
    default:
        return "unsupported request";
    }
}

/* Answers every whole frame in the input buffer. */
static void client_process(struct agent_client *c)
{
    struct agent *a = c->agent;
    uint8_t out[AGENT_REPLY_MAX];

    while (!c->closing && !c->paused) {
        struct agent_request req;
        size_t used = 0, need = 0, outlen = 0;
        int rc = agent_parse_request(buf_rptr(&c->in), buf_len(&c->in), &req,
                                     &used, &need);
        if (rc == GW_ENEED_MORE) {
            /* A slow or stuck peer may not pin a client forever. */
            if (buf_len(&c->in) > 0) {
                if (!uv_is_active((uv_handle_t *)&c->timer))
                    uv_timer_start(&c->timer, client_timeout,
                                   a->partial_timeout_ms, 0);
            } else {
                uv_timer_stop(&c->timer);
            }
            if (need > 0 && client_grow(c, need) != 0) {
                log_warn("agent client %u: no memory for a %zu-byte "
                         "message",
                         c->id, need);
                client_close(c);
            } else if (buf_len(&c->in) == 0 && c->in.cap > AGENT_IN_INITIAL) {
                /* Give back a big buffer once its message is done. */
                buf_free(&c->in);
                if (buf_init(&c->in, AGENT_IN_INITIAL) != 0)
                    client_close(c);
            }
            return;
        }
        if (rc != 0) {
            log_warn_r(rc, "agent client %u: bad message, closing", c->id);
            client_close(c);
            return;
        }
        rc = agent_build_reply(&req, a->ring, a->comment, uv_now(a->loop), out,
                               sizeof(out), &outlen);
        if (rc == 0) {
            log_debug("agent client %u: %s (type %u) -> %s", c->id,
                      msg_name(req.type), req.type,
                      out[4] == AGENT_FAILURE ? "FAILURE" : "answered");
            rc = client_send(c, out, outlen);
        }
        buf_consume(&c->in, used);
        uv_timer_stop(&c->timer); /* progress: a new deadline per frame */
        if (rc != 0) {
            log_warn_r(rc, "agent client %u: reply failed", c->id);
            client_close(c);
            return;
        }
        if (c->pipe.write_queue_size > AGENT_WQ_HIGH) {
            c->paused = 1;
            uv_read_stop((uv_stream_t *)&c->pipe);
            log_debug("agent client %u: not reading its replies, paused",
                      c->id);
            return;
        }
    }
}

/* Only our own uid (or root) may use the keys, whatever the path's mode. */
static int peer_allowed(uv_pipe_t *p)
{
    uv_os_fd_t fd;
    struct ucred cred;
    socklen_t len = sizeof(cred);
    if (uv_fileno((uv_handle_t *)p, &fd) != 0 ||
        getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0)
        return 0;
    return cred.uid == geteuid() || cred.uid == 0;
}

static void agent_on_connection(uv_stream_t *server, int status)
{
    struct agent *a = CONTAINER_OF(server, struct agent, listener);
    struct agent_client *c = NULL;
    if (status < 0) {
        log_warn("agent: accept: %s", uv_strerror(status));
        return;
    }
    c = calloc(1, sizeof(*c));
    if (c == NULL || buf_init(&c->in, AGENT_IN_INITIAL) != 0) {
        free(c);
        log_warn("agent: out of memory for a client");
        return;
    }
    CHECK(uv_pipe_init(a->loop, &c->pipe, 0) == 0);
    CHECK(uv_timer_init(a->loop, &c->timer) == 0);
    c->pipe.data = c;
    c->timer.data = c;
    c->handles = 2;
    c->agent = a;
    c->id = ++a->next_id;
    list_insert_head(&a->clients, &c->link);
    a->nclients++;

    int rc = uv_accept(server, (uv_stream_t *)&c->pipe);
    if (rc != 0) {
        log_warn("agent: accept: %s", uv_strerror(rc));
        client_close(c);
        return;
    }
    if (a->nclients > AGENT_MAX_CLIENTS) {
        log_warn("agent: more than %d clients, refusing one",
                 AGENT_MAX_CLIENTS);
        client_close(c);
        return;
    }
    if (!peer_allowed(&c->pipe)) {
        log_warn("agent client %u: other user, refused", c->id);
        client_close(c);
        return;
    }
    log_debug("agent client %u: connected", c->id);
    uv_read_start((uv_stream_t *)&c->pipe, client_alloc, client_read);
}

static void agent_listener_closed(uv_handle_t *h)
{
    struct agent *a = CONTAINER_OF(h, struct agent, listener);
    a->listener_open = 0;
    agent_maybe_free(a);
}

int agent_start(uv_loop_t *loop, const char *path, const struct key_ring *ring,
                const char *comment, struct agent **out)
{
    int rc;
    if (comment == NULL)
        comment = "";
    if (strlen(comment) > KEY_COMMENT_MAX)
        return GW_EINVAL;
    struct agent *a = calloc(1, sizeof(*a));
    if (a == NULL)
        return GW_ENOMEM;
    a->loop = loop;
    a->ring = ring;
    a->partial_timeout_ms = AGENT_PARTIAL_TIMEOUT_MS;
    list_init(&a->clients);
    snprintf(a->comment, sizeof(a->comment), "%s", comment);
    CHECK(uv_pipe_init(loop, &a->listener, 0) == 0);
    a->listener_open = 1;

    /* The directory is 0700 already; the umask closes the moment between
     * bind() and chmod() as well. */
    mode_t old = umask(0177);
    rc = uv_pipe_bind(&a->listener, path);
    umask(old);
    if (rc != 0)
        goto fail;
    if (chmod(path, 0600) != 0) {
        rc = uv_translate_sys_error(errno);
        goto fail;
    }
    rc = uv_listen((uv_stream_t *)&a->listener, 64, agent_on_connection);
    if (rc != 0)
        goto fail;
    log_debug("agent: listening on %s", path);
    *out = a;
    return 0;

fail:
    a->stopping = 1;
    uv_close((uv_handle_t *)&a->listener, agent_listener_closed);
    return rc;
}

void agent_stop(struct agent *a)
{
    if (a == NULL || a->stopping)
        return;
    a->stopping = 1;
    uv_close((uv_handle_t *)&a->listener, agent_listener_closed);
    for (struct list *l = a->clients.next; l != &a->clients; l = l->next)
        client_close(CONTAINER_OF(l, struct agent_client, link));
}

void agent_set_partial_timeout(struct agent *a, uint64_t ms)
{
    a->partial_timeout_ms = ms;
}

size_t agent_client_count(const struct agent *a)
{
    return a->nclients;
}
