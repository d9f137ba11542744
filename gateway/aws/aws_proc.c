/*
 * aws_proc.c - one child process and its two pipes.
 *
 * The result is delivered once, when the child exited and both pipes hit
 * EOF, or when the timer fired (the child is then killed). Four handles
 * (process, two pipes, timer) close together; the last close callback
 * frees. stdout may hold credentials: wiped before it is freed.
 */
#include "aws_proc.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "secret.h"

struct aws_proc {
    uv_process_t proc;
    uv_pipe_t out, err;
    uv_timer_t timer;
    int open; /* handles not yet closed */
    int exited, out_eof, err_eof, timed_out, reported;
    int64_t exit_status;
    char *buf_out, *buf_err;
    size_t len_out, len_err, cap;
    int too_big;
    aws_proc_done_cb *done; /* NULL once abandoned */
    void *arg;
};

static void proc_closed(uv_handle_t *h)
{
    struct aws_proc *p = h->data;

    if (--p->open == 0) {
        secret_wipe(p->buf_out, p->len_out);
        free(p->buf_out);
        free(p->buf_err);
        free(p);
    }
}

static void proc_close_all(struct aws_proc *p)
{
    uv_handle_t *hs[] = {(uv_handle_t *)&p->proc, (uv_handle_t *)&p->out,
                         (uv_handle_t *)&p->err, (uv_handle_t *)&p->timer};

    for (size_t i = 0; i < ARRAY_SIZE(hs); i++)
        if (hs[i]->data && !uv_is_closing(hs[i]))
            uv_close(hs[i], proc_closed);
}

static void proc_maybe_done(struct aws_proc *p)
{
    struct aws_proc_result r;
    aws_proc_done_cb *done = p->done;

    if (!done || p->reported)
        return;
    if (!p->timed_out && !(p->exited && p->out_eof && p->err_eof))
        return;
    p->reported = 1;
    p->done = NULL;
    if (p->exited == 0)
        uv_process_kill(&p->proc, SIGKILL);
    memset(&r, 0, sizeof(r));
    r.timed_out = p->timed_out;
    r.too_big = p->too_big;
    r.exit_status = p->exit_status;
    r.out = p->buf_out ? p->buf_out : "";
    r.out_len = p->len_out;
    r.err = p->buf_err ? p->buf_err : "";
    r.err_len = p->len_err;
    done(p->arg, &r);
    proc_close_all(p);
}

static void proc_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
    static char slab[16384];

    (void)h;
    (void)hint;
    /* Reads are copied into the per-stream buffer at once. */
    b->base = slab;
    b->len = sizeof(slab);
}

static void proc_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    struct aws_proc *p = s->data;
    int is_out = s == (uv_stream_t *)&p->out;
    char **buf = is_out ? &p->buf_out : &p->buf_err;
    size_t *len = is_out ? &p->len_out : &p->len_err;

    if (n < 0) {
        uv_read_stop(s);
        if (is_out)
            p->out_eof = 1;
        else
            p->err_eof = 1;
        proc_maybe_done(p);
        return;
    }
    if (n == 0)
        return;
    if (*len + (size_t)n > p->cap) {
        p->too_big = 1;
        n = (ssize_t)(p->cap - *len);
    }
    if (n > 0) {
        char *nb = realloc(*buf, *len + (size_t)n + 1);
        if (nb) {
            memcpy(nb + *len, b->base, (size_t)n);
            *len += (size_t)n;
            nb[*len] = '\0';
            *buf = nb;
        }
    }
}

static void proc_exit_cb(uv_process_t *h, int64_t status, int sig)
{
    struct aws_proc *p = CONTAINER_OF(h, struct aws_proc, proc);

    p->exited = 1;
    p->exit_status = sig ? 128 + sig : status;
    proc_maybe_done(p);
}

static void proc_timeout(uv_timer_t *t)
{
    struct aws_proc *p = CONTAINER_OF(t, struct aws_proc, timer);

    p->timed_out = 1;
    proc_maybe_done(p);
}

int aws_proc_run(uv_loop_t *loop, char **argv, size_t cap, uint64_t timeout_ms,
                 aws_proc_done_cb *done, void *arg, struct aws_proc **out)
{
    uv_process_options_t o;
    uv_stdio_container_t stdio[3];
    struct aws_proc *p = calloc(1, sizeof(*p));
    int rc;

    *out = NULL;
    if (!p)
        return GW_ENOMEM;
    uv_pipe_init(loop, &p->out, 0);
    uv_pipe_init(loop, &p->err, 0);
    uv_timer_init(loop, &p->timer);
    p->out.data = p->err.data = p->timer.data = p;
    p->cap = cap;
    p->done = done;
    p->arg = arg;
    memset(&o, 0, sizeof(o));
    stdio[0].flags = UV_IGNORE;
    stdio[1].flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE;
    stdio[1].data.stream = (uv_stream_t *)&p->out;
    stdio[2].flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE;
    stdio[2].data.stream = (uv_stream_t *)&p->err;
    o.file = argv[0];
    o.args = argv;
    o.stdio = stdio;
    o.stdio_count = 3;
    o.exit_cb = proc_exit_cb;
    rc = uv_spawn(loop, &p->proc, &o);
    /* libuv initialised the process handle even on failure: close it
     * with the others. */
    p->proc.data = p;
    p->open = 4;
    if (rc < 0) {
        p->done = NULL;
        proc_close_all(p);
        return rc;
    }
    uv_read_start((uv_stream_t *)&p->out, proc_alloc, proc_read);
    uv_read_start((uv_stream_t *)&p->err, proc_alloc, proc_read);
    uv_timer_start(&p->timer, proc_timeout, timeout_ms, 0);
    *out = p;
    return 0;
}

void aws_proc_abandon(struct aws_proc *p)
{
    if (!p)
        return;
    /* The owner goes away: kill the child, close everything. */
    if (!p->exited)
        uv_process_kill(&p->proc, SIGKILL);
    p->done = NULL;
    proc_close_all(p);
}
