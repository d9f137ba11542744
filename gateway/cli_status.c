/*
 * cli_status.c - `ssmgate status`: one request to the control socket per
 * frame (a restarted daemon is simply there again on the next one).
 *
 * Once: a table of live tunnels, or the daemon's JSON document. --watch
 * on a terminal: the alternate screen, redrawn in place every interval
 * (cursor home, each line cleared to its end, the rest of the screen
 * cleared), cut to the terminal's width and height, with each tunnel's
 * rate since the last frame; q, SIGINT, SIGTERM or SIGHUP restore the
 * screen and exit 0. --watch into a pipe or file: the same frames, one
 * after another, separated by an empty line (or one JSON document per
 * line with --json), so `| tee` and `--count` make a record.
 *
 * Everything shown comes from the daemon, and a tunnel's host may be
 * whatever a [route] glob matched: bytes that could steer a terminal are
 * shown as '?'.
 */
#include "cli_status.h"

#include <errno.h>
#include <jansson.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "common.h"
#include "config.h"
#include "control.h"
#include "log.h"
#include "rundir.h"

/* ---- formatting ---- */

/* 1023B, 1.5K, 12K, 3.4M, 7G: IEC multiples, at most 5 characters. */
static void fmt_bytes(uint64_t n, char *out, size_t len)
{
    static const char units[] = "KMGTPE";
    if (n < 1024) {
        snprintf(out, len, "%lluB", (unsigned long long)n);
        return;
    }
    double v = (double)n / 1024.0;
    size_t u = 0;
    while (v >= 1024.0 && u + 1 < sizeof(units) - 1) {
        v /= 1024.0;
        u++;
    }
    if (v < 9.95)
        snprintf(out, len, "%.1f%c", v, units[u]);
    else
        snprintf(out, len, "%.0f%c", v, units[u]);
}

/* 59s, 1m02s, 2h03m, 3d04h. */
static void fmt_age(uint64_t s, char *out, size_t len)
{
    if (s < 60)
        snprintf(out, len, "%llus", (unsigned long long)s);
    else if (s < 3600)
        snprintf(out, len, "%llum%02llus", (unsigned long long)(s / 60),
                 (unsigned long long)(s % 60));
    else if (s < 86400)
        snprintf(out, len, "%lluh%02llum", (unsigned long long)(s / 3600),
                 (unsigned long long)(s % 3600 / 60));
    else
        snprintf(out, len, "%llud%02lluh", (unsigned long long)(s / 86400),
                 (unsigned long long)(s % 86400 / 3600));
}

static const char *jstr(json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s != NULL && s[0] != '\0' ? s : "-";
}

static uint64_t jnum(json_t *o, const char *key)
{
    json_int_t v = json_integer_value(json_object_get(o, key));
    return v > 0 ? (uint64_t)v : 0;
}

/* ---- a frame: lines, shown safely ---- */

struct frame {
    char **line;
    size_t n, cap;
};

static void frame_add(struct frame *f, const char *fmt, ...) LOG_PRINTF(2, 3);
static void frame_add(struct frame *f, const char *fmt, ...)
{
    if (f->n == f->cap) {
        size_t cap = f->cap ? f->cap * 2 : 64;
        char **p = realloc(f->line, cap * sizeof(*p));
        if (p == NULL)
            return;
        f->line = p;
        f->cap = cap;
    }
    va_list ap;
    va_start(ap, fmt);
    if (vasprintf(&f->line[f->n], fmt, ap) >= 0)
        f->n++;
    va_end(ap);
}

static void frame_free(struct frame *f)
{
    for (size_t i = 0; i < f->n; i++)
        free(f->line[i]);
    free(f->line);
    memset(f, 0, sizeof(*f));
}

/* Writes s to out, at most width characters (0 = all), with every byte
 * that is not printable ASCII as '?': no escape sequence from a host
 * name reaches the terminal. */
static void put_safe(FILE *out, const char *s, size_t width)
{
    for (size_t i = 0; s[i] != '\0' && (width == 0 || i < width); i++) {
        unsigned char ch = (unsigned char)s[i];
        fputc(ch >= 0x20 && ch < 0x7f ? ch : '?', out);
    }
}

/* ---- the table ---- */

#define TABLE_HEAD                                                             \
    "%-6s %-22s %-10s %-44s %8s %12s %12s %s", "ID", "TARGET", "USER",         \
        "DOCUMENT", "AGE", "BYTES_UP", "BYTES_DOWN", "STREAMS"

/* The plain `ssmgate status` table. */
static void table_lines(struct frame *f, json_t *tunnels)
{
    size_t i;
    json_t *t;
    frame_add(f, TABLE_HEAD);
    json_array_foreach(tunnels, i, t)
    {
        char streams[24] = "-";
        if (json_is_integer(json_object_get(t, "streams")))
            snprintf(streams, sizeof(streams), "%llu",
                     (unsigned long long)jnum(t, "streams"));
        frame_add(f, "%-6llu %-22s %-10s %-44s %7llus %12llu %12llu %s",
                  (unsigned long long)jnum(t, "id"), jstr(t, "target"),
                  jstr(t, "user"), jstr(t, "document"),
                  (unsigned long long)jnum(t, "age_s"),
                  (unsigned long long)jnum(t, "bytes_up"),
                  (unsigned long long)jnum(t, "bytes_down"), streams);
    }
    if (json_array_size(tunnels) == 0)
        frame_add(f, "(no live tunnels)");
}

/* Stopped instances being started for waiting connections (start_stopped). */
static void start_lines(struct frame *f, json_t *starts)
{
    size_t i;
    json_t *s;
    json_array_foreach(starts, i, s)
    {
        char age[24];
        fmt_age(jnum(s, "elapsed_ms") / 1000, age, sizeof(age));
        frame_add(f, "starting %s: %s for %s, %llu connection%s waiting",
                  jstr(s, "instance"), jstr(s, "state"), age,
                  (unsigned long long)jnum(s, "connections"),
                  jnum(s, "connections") == 1 ? "" : "s");
    }
}

/* The SSM sessions, warm ones included: one line each. */
static void session_lines(struct frame *f, json_t *sessions)
{
    size_t i;
    json_t *t;
    if (json_array_size(sessions) == 0)
        return;
    frame_add(f, "%s", "");
    frame_add(f, "%-22s %-32s %-20s %-10s %7s %4s %7s %s", "SESSION_TARGET",
              "DOCUMENT", "PROFILE/REGION", "STATE", "STREAMS", "BUSY", "IDLE",
              "SESSION_ID");
    json_array_foreach(sessions, i, t)
    {
        char who[160], idle[24] = "-";
        snprintf(who, sizeof(who), "%s/%s",
                 jstr(t, "profile")[0] ? jstr(t, "profile") : "(default)",
                 jstr(t, "region"));
        if (json_is_integer(json_object_get(t, "idle_s")))
            fmt_age(jnum(t, "idle_s"), idle, sizeof(idle));
        frame_add(f, "%-22s %-32s %-20s %-10s %7llu %4llu %7s %s",
                  jstr(t, "target"), jstr(t, "document"), who, jstr(t, "state"),
                  (unsigned long long)jnum(t, "streams"),
                  (unsigned long long)jnum(t, "busy"), idle,
                  jstr(t, "session_id"));
    }
}

/* ---- the live view ---- */

struct view {
    const char *path;
    const struct status_opts *o;
    int tty;
    json_t *prev; /* the last frame's document */
    double prev_t;
};

static double mono_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The tunnel with id in the last frame, or NULL. */
static json_t *prev_tunnel(const struct view *v, uint64_t id)
{
    json_t *arr = json_object_get(v->prev, "tunnels"), *t;
    size_t i;
    json_array_foreach(arr, i, t)
    {
        if (jnum(t, "id") == id)
            return t;
    }
    return NULL;
}

/* "12K/s", or "-" without an earlier frame to compare with. */
static void fmt_rate(const struct view *v, json_t *was, uint64_t now,
                     const char *key, double dt, char *out, size_t len)
{
    uint64_t before = jnum(was, key);
    if (was == NULL || dt <= 0 || now < before) {
        snprintf(out, len, "-");
        return;
    }
    fmt_bytes((uint64_t)((double)(now - before) / dt), out, len);
}

static void header_lines(struct frame *f, const struct view *v, json_t *g,
                         double dt)
{
    char age[24], up[16], down[16], rup[16] = "-", rdown[16] = "-";
    char clock[32];
    time_t now = time(NULL);
    struct tm tm;
    localtime_r(&now, &tm);
    strftime(clock, sizeof(clock), "%H:%M:%S", &tm);
    fmt_age(jnum(g, "uptime_s"), age, sizeof(age));
    frame_add(f, "ssmgate %s  pid %llu  up %s  %s  every %gs%s",
              jstr(g, "version"), (unsigned long long)jnum(g, "pid"), age,
              clock, v->o->interval_s, v->tty ? "  (q quits)" : "");
    frame_add(f,
              "connections %llu  tunnels %llu open  SSM sessions %llu  "
              "API calls %llu (%llu errors)  resumes %llu  key pushes %llu "
              "(%llu reused)  warm hits %llu",
              (unsigned long long)jnum(g, "connections"),
              (unsigned long long)jnum(g, "tunnels_open"),
              (unsigned long long)jnum(g, "ssm_sessions"),
              (unsigned long long)jnum(g, "api_calls"),
              (unsigned long long)jnum(g, "api_errors"),
              (unsigned long long)jnum(g, "resumes"),
              (unsigned long long)jnum(g, "key_pushes"),
              (unsigned long long)jnum(g, "key_pushes_reused"),
              (unsigned long long)jnum(g, "warm_hits"));
    json_t *ended = json_object_get(g, "ended"), *n;
    const char *key;
    char line[512];
    int o = snprintf(line, sizeof(line), "ended:");
    json_object_foreach(ended, key, n)
    {
        if (o < (int)sizeof(line))
            o += snprintf(line + o, sizeof(line) - (size_t)o, " %s %lld", key,
                          (long long)json_integer_value(n));
    }
    frame_add(f, "%s", line);
    json_t *pg = json_object_get(v->prev, "gateway");
    fmt_bytes(jnum(g, "bytes_up"), up, sizeof(up));
    fmt_bytes(jnum(g, "bytes_down"), down, sizeof(down));
    if (pg != NULL) {
        fmt_rate(v, pg, jnum(g, "bytes_up"), "bytes_up", dt, rup, sizeof(rup));
        fmt_rate(v, pg, jnum(g, "bytes_down"), "bytes_down", dt, rdown,
                 sizeof(rdown));
    }
    frame_add(f, "bytes: %s up (%s/s)  %s down (%s/s)  audit %s  metrics %s",
              up, rup, down, rdown, jstr(g, "audit_log"), jstr(g, "metrics"));
}

static void watch_lines(struct frame *f, const struct view *v, json_t *doc,
                        double dt)
{
    json_t *g = json_object_get(doc, "gateway");
    json_t *tunnels = json_object_get(doc, "tunnels"), *t;
    if (g != NULL)
        header_lines(f, v, g, dt);
    frame_add(f, "%s", "");
    frame_add(f, "%-6s %-30s %-10s %-11s %7s %6s %6s %7s %7s %s", "ID",
              "TARGET", "USER", "KIND", "AGE", "UP", "DOWN", "UP/s", "DOWN/s",
              "SESSION");
    size_t i;
    json_array_foreach(tunnels, i, t)
    {
        char target[300], age[24], up[16], down[16], rup[16], rdown[16];
        uint64_t id = jnum(t, "id");
        json_t *was = prev_tunnel(v, id);
        if (jnum(t, "port") != 0)
            snprintf(target, sizeof(target), "%s:%llu", jstr(t, "target"),
                     (unsigned long long)jnum(t, "port"));
        else
            snprintf(target, sizeof(target), "%s", jstr(t, "target"));
        fmt_age(jnum(t, "age_s"), age, sizeof(age));
        fmt_bytes(jnum(t, "bytes_up"), up, sizeof(up));
        fmt_bytes(jnum(t, "bytes_down"), down, sizeof(down));
        fmt_rate(v, was, jnum(t, "bytes_up"), "bytes_up", dt, rup, sizeof(rup));
        fmt_rate(v, was, jnum(t, "bytes_down"), "bytes_down", dt, rdown,
                 sizeof(rdown));
        frame_add(f, "%-6llu %-30s %-10s %-11s %7s %6s %6s %7s %7s %s",
                  (unsigned long long)id, target, jstr(t, "user"),
                  jstr(t, "kind"), age, up, down, rup, rdown,
                  jstr(t, "session_id"));
    }
    if (json_array_size(tunnels) == 0)
        frame_add(f, "(no live tunnels)");
    start_lines(f, json_object_get(doc, "starts"));
    session_lines(f, json_object_get(doc, "sessions"));
}

/* ---- the terminal ---- */

static volatile sig_atomic_t stop_signal, resized;

static void on_stop(int sig)
{
    stop_signal = sig;
}

static void on_winch(int sig)
{
    resized = 1;
}

struct term {
    int raw_in; /* stdin switched to unbuffered, no echo */
    struct termios saved;
    struct sigaction old[4];
};

static const int view_signals[] = {SIGINT, SIGTERM, SIGHUP, SIGWINCH};

/* Signals interrupt the wait (no SA_RESTART); on a terminal the view
 * takes the alternate screen and hides the cursor. */
static void term_enter(struct term *t, int tty)
{
    for (size_t i = 0; i < ARRAY_SIZE(view_signals); i++) {
        struct sigaction sa;
        memset(&sa, 0, sizeof(sa));
        sa.sa_handler = view_signals[i] == SIGWINCH ? on_winch : on_stop;
        sigemptyset(&sa.sa_mask);
        sigaction(view_signals[i], &sa, &t->old[i]);
    }
    if (!tty)
        return;
    if (isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &t->saved) == 0) {
        struct termios raw = t->saved;
        raw.c_lflag &= ~(tcflag_t)(ICANON | ECHO);
        raw.c_cc[VMIN] = 1;
        raw.c_cc[VTIME] = 0;
        t->raw_in = tcsetattr(STDIN_FILENO, TCSANOW, &raw) == 0;
    }
    fputs("\033[?1049h\033[?25l", stdout);
    fflush(stdout);
}

static void term_leave(struct term *t, int tty)
{
    if (tty) {
        fputs("\033[?25h\033[?1049l", stdout);
        fflush(stdout);
    }
    if (t->raw_in)
        tcsetattr(STDIN_FILENO, TCSANOW, &t->saved);
    for (size_t i = 0; i < ARRAY_SIZE(view_signals); i++)
        sigaction(view_signals[i], &t->old[i], NULL);
}

static void term_size(int *rows, int *cols)
{
    struct winsize ws;
    *rows = 24;
    *cols = 80;
    if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_row > 0 &&
        ws.ws_col > 0) {
        *rows = ws.ws_row;
        *cols = ws.ws_col;
    }
}

/* Draws f over the last frame: home, each line cleared to its end, the
 * rest of the screen cleared; cut to the screen so nothing scrolls. */
static void draw_tty(const struct frame *f)
{
    int rows, cols;
    term_size(&rows, &cols);
    size_t shown = f->n < (size_t)rows ? f->n : (size_t)rows - 1;
    fputs("\033[H", stdout);
    for (size_t i = 0; i < shown; i++) {
        put_safe(stdout, f->line[i], (size_t)cols - 1);
        fputs("\033[K\n", stdout);
    }
    if (shown < f->n)
        printf("... %zu more (a taller window shows them)\033[K", f->n - shown);
    fputs("\033[J", stdout);
    fflush(stdout);
}

static void draw_plain(const struct frame *f, int separate)
{
    if (separate)
        putchar('\n');
    for (size_t i = 0; i < f->n; i++) {
        put_safe(stdout, f->line[i], 0);
        putchar('\n');
    }
    fflush(stdout);
}

/* Waits up to ms for a signal or (on a raw terminal) a key: 1 = stop. */
static int wait_or_quit(const struct term *t, double seconds)
{
    double until = mono_now() + seconds;
    for (;;) {
        if (stop_signal)
            return 1;
        double left = until - mono_now();
        if (left <= 0 || resized) {
            resized = 0;
            return 0;
        }
        struct pollfd p = {STDIN_FILENO, POLLIN, 0};
        int rc = poll(&p, t->raw_in ? 1 : 0, (int)(left * 1000) + 1);
        if (rc > 0 && (p.revents & POLLIN)) {
            char ch;
            if (read(STDIN_FILENO, &ch, 1) == 1 && (ch == 'q' || ch == 'Q'))
                return 1;
        }
    }
}

/* ---- the command ---- */

/* The daemon's document, or NULL with the reason in why. */
static json_t *fetch(const char *path, char **raw, char *why, size_t len)
{
    *raw = control_request(path, "status\n");
    if (*raw == NULL) {
        snprintf(why, len, "cannot reach the daemon at %s: %s", path,
                 strerror(errno));
        return NULL;
    }
    json_error_t jerr;
    json_t *doc = json_loads(*raw, 0, &jerr);
    if (!json_is_array(json_object_get(doc, "tunnels"))) {
        json_decref(doc);
        snprintf(why, len, "bad answer from the daemon at %s", path);
        return NULL;
    }
    return doc;
}

/* One frame of the live view; 0 = the daemon answered. */
static int watch_frame(struct view *v, long n)
{
    char why[CONFIG_PATH_MAX + 128], *raw = NULL;
    json_t *doc = fetch(v->path, &raw, why, sizeof(why));
    double now = mono_now(), dt = v->prev ? now - v->prev_t : 0;
    struct frame f = {NULL, 0, 0};
    if (v->o->json) {
        if (doc != NULL)
            printf("%s\n", raw);
        else
            fprintf(stderr, "ssmgate status: %s\n", why);
        fflush(stdout);
    } else {
        if (doc != NULL)
            watch_lines(&f, v, doc, dt);
        else
            frame_add(&f, "ssmgate status: %s; trying again every %gs", why,
                      v->o->interval_s);
        if (v->tty)
            draw_tty(&f);
        else
            draw_plain(&f, n > 0);
    }
    frame_free(&f);
    free(raw);
    json_decref(v->prev);
    v->prev = doc; /* NULL after a miss: no rates across a restart */
    v->prev_t = now;
    return doc != NULL ? 0 : -1;
}

static int watch(const char *path, const struct status_opts *o)
{
    struct view v = {path, o, !o->json && isatty(STDOUT_FILENO), NULL, 0};
    struct term t;
    memset(&t, 0, sizeof(t));
    stop_signal = resized = 0;
    term_enter(&t, v.tty);
    int last = 0;
    for (long n = 0; o->count == 0 || n < o->count; n++) {
        last = watch_frame(&v, n);
        if (ferror(stdout)) /* a closed pipe */
            break;
        if ((o->count != 0 && n + 1 >= o->count) ||
            wait_or_quit(&t, o->interval_s))
            break;
    }
    term_leave(&t, v.tty);
    json_decref(v.prev);
    /* A stop by the user is a clean end; a counted run reports whether
     * its last frame reached the daemon. */
    return o->count != 0 && last != 0 ? 1 : 0;
}

int cli_status(const struct config *cfg, const struct status_opts *o)
{
    char path[CONFIG_PATH_MAX + 32], why[CONFIG_PATH_MAX + 128], *raw = NULL;
    snprintf(path, sizeof(path), "%s/%s", cfg->runtime_dir,
             RUNDIR_CONTROL_SOCK);
    if (o->watch)
        return watch(path, o);
    json_t *doc = fetch(path, &raw, why, sizeof(why));
    if (doc == NULL) {
        fprintf(stderr, "ssmgate status: %s\n", why);
        free(raw);
        return 1;
    }
    if (o->json) {
        printf("%s\n", raw);
    } else {
        struct frame f = {NULL, 0, 0};
        table_lines(&f, json_object_get(doc, "tunnels"));
        start_lines(&f, json_object_get(doc, "starts"));
        session_lines(&f, json_object_get(doc, "sessions"));
        draw_plain(&f, 0);
        frame_free(&f);
    }
    json_decref(doc);
    free(raw);
    return 0;
}
