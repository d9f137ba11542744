/*
 * control.c - one request per connection: read a line, answer, close;
 * and the client side of that exchange.
 *
 * Clients are local and trusted by the socket's 0600 mode, but still
 * bounded: a line longer than CONTROL_LINE_MAX or a client silent for
 * CONTROL_TIMEOUT_MS is dropped, so a stuck client cannot pin memory.
 */
#include "control.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "common.h"
#include "config.h"
#include "list.h"
#include "log.h"
#include "rundir.h"

#define CONTROL_LINE_MAX   256
#define CONTROL_TIMEOUT_MS 5000
#define CONTROL_CMDS_MAX   8

struct control {
    uv_pipe_t listener;
    control_status_fn *status;
    void *arg;
    struct control_cmd {
        const char *name;
        control_answer_fn *fn;
        void *arg;
    } cmds[CONTROL_CMDS_MAX];
    int n_cmds;
    struct list clients; /* struct control_client, for control_stop */
    int closing;
};

/* Owned by its control; freed after both handles closed. */
struct control_client {
    struct control *owner;
    struct list link; /* in owner->clients */
    uv_pipe_t pipe;
    uv_timer_t timer;
    uv_write_t write_req;
    char line[CONTROL_LINE_MAX];
    size_t len;
    char *answer;
    int handles_open;
    int killed;
};

static void client_close_done(uv_handle_t *h)
{
    struct control_client *cl = h->data;
    if (--cl->handles_open > 0)
        return;
    free(cl->answer);
    free(cl);
}

static void client_kill(struct control_client *cl)
{
    if (cl->killed)
        return;
    cl->killed = 1;
    list_remove(&cl->link);
    uv_close((uv_handle_t *)&cl->pipe, client_close_done);
    uv_close((uv_handle_t *)&cl->timer, client_close_done);
}

static void client_write_done(uv_write_t *req, int status)
{
    struct control_client *cl =
        CONTAINER_OF(req, struct control_client, write_req);
    if (status == UV_ECANCELED)
        return;
    client_kill(cl);
}

static void client_answer(struct control_client *cl)
{
    json_t *doc = NULL;
    const struct control *c = cl->owner;
    int i = 0;
    while (i < c->n_cmds && strcmp(cl->line, c->cmds[i].name) != 0)
        i++;
    if (i < c->n_cmds) {
        doc = c->cmds[i].fn(c->cmds[i].arg);
    } else if (strcmp(cl->line, "status") == 0) {
        doc = json_object();
        if (doc != NULL)
            c->status(c->arg, doc);
    } else {
        doc = json_pack("{s:s}", "error", "unknown command");
    }
    cl->answer = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
    json_decref(doc);
    if (cl->answer == NULL) {
        client_kill(cl);
        return;
    }
    uv_read_stop((uv_stream_t *)&cl->pipe);
    uv_buf_t b = uv_buf_init(cl->answer, (unsigned)strlen(cl->answer));
    if (uv_write(&cl->write_req, (uv_stream_t *)&cl->pipe, &b, 1,
                 client_write_done) != 0)
        client_kill(cl);
}

static void client_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
    struct control_client *cl = h->data;
    b->base = cl->line + cl->len;
    b->len = sizeof(cl->line) - 1 - cl->len;
}

static void client_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    struct control_client *cl = s->data;
    if (n < 0) {
        client_kill(cl);
        return;
    }
    cl->len += (size_t)n;
    cl->line[cl->len] = '\0';
    char *nl = strchr(cl->line, '\n');
    if (nl != NULL) {
        *nl = '\0';
        client_answer(cl);
    } else if (cl->len >= sizeof(cl->line) - 1) {
        log_warn("control: request line too long; dropping the client");
        client_kill(cl);
    }
}

static void client_timeout(uv_timer_t *t)
{
    client_kill(t->data);
}

static void control_on_connection(uv_stream_t *server, int status)
{
    struct control *c = CONTAINER_OF(server, struct control, listener);
    if (status < 0 || c->closing)
        return;
    struct control_client *cl = calloc(1, sizeof(*cl));
    if (cl == NULL)
        return;
    cl->owner = c;
    uv_pipe_init(server->loop, &cl->pipe, 0);
    uv_timer_init(server->loop, &cl->timer);
    cl->pipe.data = cl->timer.data = cl;
    cl->handles_open = 2;
    list_insert_head(&c->clients, &cl->link);
    if (uv_accept(server, (uv_stream_t *)&cl->pipe) != 0 ||
        uv_read_start((uv_stream_t *)&cl->pipe, client_alloc, client_read) !=
            0) {
        client_kill(cl);
        return;
    }
    uv_timer_start(&cl->timer, client_timeout, CONTROL_TIMEOUT_MS, 0);
}

int control_start(uv_loop_t *loop, const char *path, control_status_fn *status,
                  void *arg, struct control **out)
{
    struct control *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return GW_ENOMEM;
    c->status = status;
    c->arg = arg;
    list_init(&c->clients);
    int rc = uv_pipe_init(loop, &c->listener, 0);
    if (rc != 0) {
        free(c);
        return rc;
    }
    c->listener.data = c;
    /* Nobody else may connect between bind and chmod. */
    mode_t old = umask(0177);
    unlink(path);
    rc = uv_pipe_bind(&c->listener, path);
    umask(old);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&c->listener, 16, control_on_connection);
    if (rc != 0) {
        c->closing = 1;
        uv_close((uv_handle_t *)&c->listener, (uv_close_cb)free);
        return rc;
    }
    *out = c;
    return 0;
}

int control_add(struct control *c, const char *name, control_answer_fn *fn,
                void *arg)
{
    if (c->n_cmds >= CONTROL_CMDS_MAX)
        return GW_ELIMIT;
    c->cmds[c->n_cmds++] = (struct control_cmd){name, fn, arg};
    return 0;
}

static void control_close_done(uv_handle_t *h)
{
    free(CONTAINER_OF(h, struct control, listener));
}

void control_stop(struct control *c)
{
    if (c == NULL)
        return;
    c->closing = 1;
    while (!list_empty(&c->clients))
        client_kill(CONTAINER_OF(c->clients.next, struct control_client, link));
    uv_close((uv_handle_t *)&c->listener, control_close_done);
}

/* ---- client side ---- */

char *control_request(const char *path, const char *line)
{
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (fd < 0 || strlen(path) >= sizeof(sa.sun_path)) {
        if (fd >= 0)
            close(fd);
        return NULL;
    }
    memcpy(sa.sun_path, path, strlen(path) + 1);
    /* A wedged daemon must not hang `ssmgate proxy` (ssh's ProxyCommand)
     * forever: the daemon answers at once or drops a client after
     * CONTROL_TIMEOUT_MS itself. */
    struct timeval tv = {CONTROL_TIMEOUT_MS / 1000, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
        write(fd, line, strlen(line)) != (ssize_t)strlen(line)) {
        close(fd);
        return NULL;
    }
    size_t len = 0, cap = 4096;
    char *out = malloc(cap);
    for (;;) {
        if (out == NULL)
            break;
        if (len + 1 >= cap) {
            char *p = realloc(out, cap *= 2);
            if (p == NULL) {
                free(out);
                out = NULL;
                break;
            }
            out = p;
        }
        ssize_t n = read(fd, out + len, cap - 1 - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        len += (size_t)n;
    }
    close(fd);
    if (out != NULL)
        out[len] = '\0';
    return out;
}

json_t *control_query(const char *runtime_dir, const char *command)
{
    char path[CONFIG_PATH_MAX + 32], line[CONTROL_LINE_MAX];
    snprintf(path, sizeof(path), "%s/%s", runtime_dir, RUNDIR_CONTROL_SOCK);
    snprintf(line, sizeof(line), "%s\n", command);
    char *answer = control_request(path, line);
    if (answer == NULL)
        return NULL;
    json_error_t jerr;
    json_t *doc = json_loads(answer, 0, &jerr);
    free(answer);
    if (doc != NULL && !json_is_object(doc)) {
        json_decref(doc);
        doc = NULL;
    }
    return doc;
}
