/*
 * cli_ls.c - the ls sub-command.
 *
 * A source is one (profile, region) pair the config names: [gateway], each
 * [account], and each [forward] / [route] that carries a profile of its
 * own, deduplicated by where its calls go (the AWS layer's default profile
 * and region applied). Every source runs at once: SSM
 * DescribeInstanceInformation (all pages), then EC2 DescribeInstances for
 * its i- ids in batches (all pages), joined by id. A source whose SSM call
 * fails is reported on stderr with the AWS code and message and the others
 * still print; an EC2 failure costs only the Name and state columns.
 *
 * Output: on a terminal an aligned table with a header, each line cut at
 * the terminal's width; into a pipe the same columns separated by single
 * tabs, no header; with --json one object per instance per line.
 */
#include "cli_ls.h"

#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>
#include <uv.h>

#include "aws.h"
#include "aws_ec2.h"
#include "aws_ssm.h"
#include "cli_aws.h"
#include "common.h"
#include "log.h"
#include "proxy.h"

/* EC2 DescribeInstances page size; small enough that a few hundred
 * instances take more than one page, as a big account does. */
#define LS_EC2_PAGE 100

enum {
    COL_ID,
    COL_NAME,
    COL_PING,
    COL_PLATFORM,
    COL_AGENT,
    COL_IP,
    COL_STATE,
    COL_PROFILE,
    COL_REGION,
    COL_N
};

static const char *const col_title[COL_N] = {
    "INSTANCE", "NAME",  "PING",    "PLATFORM", "AGENT",
    "IP",       "STATE", "PROFILE", "REGION",
};

struct ls_row {
    struct aws_ssm_instance ssm;
    char name[256];
    char state[AWS_EC2_STATE_MAX];
    char private_ip[48];
    json_t *tags; /* {key: value} from EC2, or NULL */
};

struct ls_source {
    struct ls_run *run;
    char profile[CONFIG_NAME_MAX], region[CONFIG_NAME_MAX]; /* config's */
    /* Where the calls went (the AWS layer's defaults applied): shown. */
    char shown_profile[CONFIG_NAME_MAX], shown_region[CONFIG_NAME_MAX];
    struct ls_row *rows;
    size_t n_rows;
    int pending; /* calls in flight */
    int failed;  /* the SSM listing failed */
    int same;    /* an earlier source resolves to the same place */
};

struct ls_run {
    struct aws_client *client;
    struct ls_source *src;
    size_t n_src;
};

static const char *dash(const char *s)
{
    return s && s[0] ? s : "-";
}

static void source_error(const struct ls_source *s, const char *api, int status,
                         const struct aws_error *err)
{
    char eb[GW_REASON_MAX];

    if (status == GW_EAWS && err && err->code[0])
        snprintf(eb, sizeof(eb), "%s: %s", err->code, err->message);
    else if (err && (err->message[0] || err->transport))
        aws_error_str(err, eb, sizeof(eb));
    else
        snprintf(eb, sizeof(eb), "%s", gw_strerror(status));
    fprintf(stderr, "ssmgate ls: profile %s, region %s: %s: %s\n",
            s->shown_profile, dash(s->shown_region), api, eb);
}

static struct ls_row *find_row(struct ls_source *s, const char *id)
{
    for (size_t i = 0; i < s->n_rows; i++)
        if (strcmp(s->rows[i].ssm.instance_id, id) == 0)
            return &s->rows[i];
    return NULL;
}

static void ec2_done(void *arg, int status, const struct aws_ec2_instance *in,
                     size_t n, const struct aws_error *err)
{
    struct ls_source *s = arg;

    s->pending--;
    if (status < 0) {
        source_error(s, "DescribeInstances", status, err);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        struct ls_row *r = find_row(s, in[i].instance_id);
        if (!r)
            continue;
        snprintf(r->name, sizeof(r->name), "%s", in[i].name);
        snprintf(r->state, sizeof(r->state), "%s", in[i].state);
        snprintf(r->private_ip, sizeof(r->private_ip), "%s", in[i].private_ip);
        r->tags = json_object();
        for (size_t t = 0; r->tags && t < in[i].n_tags; t++)
            json_object_set_new(r->tags, in[i].tags[t].key,
                                json_string(in[i].tags[t].value));
    }
}

/* SSM's strings go to a terminal: no control characters (EC2's are
 * refused by aws_ec2_parse already). */
static void scrub(char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            *s = '?';
}

static void ssm_done(void *arg, int status, const struct aws_ssm_instance *in,
                     size_t n, const struct aws_error *err)
{
    struct ls_source *s = arg;
    const char *ids[AWS_EC2_IDS_MAX];
    size_t k = 0;

    s->pending--;
    if (status < 0) {
        s->failed = 1;
        source_error(s, "DescribeInstanceInformation", status, err);
        return;
    }
    if (n > 0) {
        s->rows = calloc(n, sizeof(*s->rows));
        CHECK(s->rows != NULL);
    }
    for (size_t i = 0; i < n; i++) {
        struct aws_ssm_instance *m = &s->rows[s->n_rows++].ssm;
        *m = in[i];
        scrub(m->instance_id);
        scrub(m->ping_status);
        scrub(m->agent_version);
        scrub(m->platform_type);
        scrub(m->name);
        scrub(m->ip_address);
    }
    /* mi- nodes are not EC2's: only i- ids go to DescribeInstances. */
    for (size_t i = 0; i <= s->n_rows; i++) {
        if (i < s->n_rows && strncmp(s->rows[i].ssm.instance_id, "i-", 2) == 0)
            ids[k++] = s->rows[i].ssm.instance_id;
        if (k > 0 && (k == AWS_EC2_IDS_MAX || i == s->n_rows)) {
            if (aws_ec2_describe_instances(s->run->client, s->profile,
                                           s->region, ids, k, LS_EC2_PAGE,
                                           ec2_done, s))
                s->pending++;
            else
                source_error(s, "DescribeInstances", GW_ENOMEM, NULL);
            k = 0;
        }
    }
}

/* Adds (profile, region) unless it is there already. */
static void add_source(struct ls_run *run, size_t cap, const char *profile,
                       const char *region)
{
    for (size_t i = 0; i < run->n_src; i++)
        if (strcmp(run->src[i].profile, profile) == 0 &&
            strcmp(run->src[i].region, region) == 0)
            return;
    CHECK(run->n_src < cap);
    struct ls_source *s = &run->src[run->n_src++];
    memset(s, 0, sizeof(*s));
    s->run = run;
    snprintf(s->profile, sizeof(s->profile), "%s", profile);
    snprintf(s->region, sizeof(s->region), "%s", region);
}

/* The sources of cfg, in config order. A section without a profile of its
 * own uses [gateway]'s, and without a region its profile's. */
static void collect_sources(struct ls_run *run, const struct config *cfg)
{
    size_t cap =
        1 + (size_t)(cfg->n_accounts + cfg->n_forwards + cfg->n_routes);

    run->src = calloc(cap, sizeof(*run->src));
    CHECK(run->src != NULL);
    add_source(run, cap, cfg->profile, cfg->region);
    for (int i = 0; i < cfg->n_accounts; i++)
        add_source(run, cap, cfg->accounts[i].profile, cfg->accounts[i].region);
    for (int i = 0; i < cfg->n_forwards; i++)
        if (cfg->forwards[i].profile[0])
            add_source(run, cap, cfg->forwards[i].profile,
                       cfg->forwards[i].region[0] ? cfg->forwards[i].region
                                                  : cfg->region);
    for (int i = 0; i < cfg->n_routes; i++)
        if (cfg->routes[i].profile[0])
            add_source(run, cap, cfg->routes[i].profile,
                       cfg->routes[i].region[0] ? cfg->routes[i].region
                                                : cfg->region);
}

/* ---- filter and output ---- */

static int row_matches(const struct ls_row *r, const char *filter)
{
    if (!filter)
        return 1;
    if (strncmp(filter, "tag:", 4) == 0) {
        const char *eq = strchr(filter, '=');
        char key[160];
        size_t kl = (size_t)(eq - filter - 4);
        if (kl >= sizeof(key))
            return 0;
        memcpy(key, filter + 4, kl);
        key[kl] = '\0';
        const char *v = json_string_value(json_object_get(r->tags, key));
        return v && fnmatch(eq + 1, v, 0) == 0;
    }
    return fnmatch(filter, r->name, 0) == 0 ||
           fnmatch(filter, r->ssm.instance_id, 0) == 0;
}

static void row_cols(const struct ls_source *s, const struct ls_row *r,
                     const char *col[COL_N])
{
    col[COL_ID] = r->ssm.instance_id;
    /* A managed node (mi-) has its name in SSM, not in EC2 tags. */
    col[COL_NAME] =
        dash(r->name[0]                                   ? r->name
             : strncmp(r->ssm.instance_id, "mi-", 3) == 0 ? r->ssm.name
                                                          : "");
    col[COL_PING] = dash(r->ssm.ping_status);
    col[COL_PLATFORM] = dash(r->ssm.platform_type);
    col[COL_AGENT] = dash(r->ssm.agent_version);
    col[COL_IP] =
        dash(r->ssm.ip_address[0] ? r->ssm.ip_address : r->private_ip);
    col[COL_STATE] = dash(r->state);
    col[COL_PROFILE] = s->shown_profile;
    col[COL_REGION] = dash(s->shown_region);
}

static void print_json(const struct ls_source *s, const struct ls_row *r)
{
    const char *col[COL_N];
    json_t *o;
    char *txt;

    row_cols(s, r, col);
    o = json_pack(
        "{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:o}", "instance_id",
        col[COL_ID], "name", strcmp(col[COL_NAME], "-") ? col[COL_NAME] : "",
        "ping_status", r->ssm.ping_status, "platform", r->ssm.platform_type,
        "agent_version", r->ssm.agent_version, "ip_address",
        strcmp(col[COL_IP], "-") ? col[COL_IP] : "", "state", r->state,
        "profile", s->shown_profile, "region", s->shown_region, "tags",
        r->tags ? json_incref(r->tags) : json_object());
    txt = o ? json_dumps(o, JSON_COMPACT) : NULL;
    if (txt)
        printf("%s\n", txt);
    free(txt);
    json_decref(o);
}

/* Terminal columns of s: one per UTF-8 code point (wide characters are
 * rare in tags; a byte count would misalign every accented name). */
static int text_cols(const char *s)
{
    int n = 0;
    for (; *s; s++)
        n += ((unsigned char)*s & 0xc0) != 0x80;
    return n;
}

/* A line being built, at most max columns wide (0 = no limit), never cut
 * inside a UTF-8 sequence. */
struct ls_line {
    char buf[4096];
    size_t o;
    int cols, max;
};

static void line_put(struct ls_line *l, const char *s, int pad_to)
{
    int n = 0;
    while (*s && (l->max == 0 || l->cols < l->max)) {
        size_t len = 1;
        while (((unsigned char)s[len] & 0xc0) == 0x80)
            len++;
        if (l->o + len >= sizeof(l->buf))
            return;
        memcpy(l->buf + l->o, s, len);
        l->o += len;
        s += len;
        l->cols++;
        n++;
    }
    for (; n < pad_to && (l->max == 0 || l->cols < l->max) &&
           l->o + 1 < sizeof(l->buf);
         n++, l->cols++)
        l->buf[l->o++] = ' ';
}

/* One line: on a terminal padded columns cut at width, else tab-separated. */
static void print_line(const char *const col[COL_N], const int w[COL_N],
                       int tty, int width)
{
    struct ls_line l = {.max = tty ? width : 0};

    for (int c = 0; c < COL_N; c++) {
        if (c)
            line_put(&l, tty ? "  " : "\t", 0);
        line_put(&l, col[c], tty && c < COL_N - 1 ? w[c] : 0);
    }
    printf("%.*s\n", (int)l.o, l.buf);
}

static int terminal_width(void)
{
    struct winsize ws;
    const char *cols = getenv("COLUMNS");

    if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0)
        return ws.ws_col;
    return cols && atoi(cols) > 0 ? atoi(cols) : 80;
}

static int row_cmp(const void *a, const void *b)
{
    const struct ls_row *x = a, *y = b;
    int c = strcmp(x->name, y->name);

    return c ? c : strcmp(x->ssm.instance_id, y->ssm.instance_id);
}

static void print_all(struct ls_run *run, const struct ls_opts *o)
{
    int tty = isatty(STDOUT_FILENO), w[COL_N];
    const char *col[COL_N];

    for (int c = 0; c < COL_N; c++)
        w[c] = text_cols(col_title[c]);
    for (size_t i = 0; i < run->n_src; i++) {
        struct ls_source *s = &run->src[i];
        if (s->n_rows > 1) /* a failed source has no array at all */
            qsort(s->rows, s->n_rows, sizeof(*s->rows), row_cmp);
        for (size_t j = 0; j < s->n_rows; j++) {
            if (!row_matches(&s->rows[j], o->filter))
                continue;
            row_cols(s, &s->rows[j], col);
            for (int c = 0; c < COL_N; c++)
                w[c] = GW_MAX(w[c], text_cols(col[c]));
        }
    }
    int width = tty ? terminal_width() : 0;
    if (!o->json && tty)
        print_line(col_title, w, tty, width);
    for (size_t i = 0; i < run->n_src; i++) {
        struct ls_source *s = &run->src[i];
        for (size_t j = 0; j < s->n_rows; j++) {
            if (!row_matches(&s->rows[j], o->filter))
                continue;
            if (o->json) {
                print_json(s, &s->rows[j]);
            } else {
                row_cols(s, &s->rows[j], col);
                print_line(col, w, tty, width);
            }
        }
    }
}

int cli_ls(const struct config *cfg, const struct ls_opts *o)
{
    struct ls_run run;
    uv_loop_t loop;
    struct proxy proxy;
    char perr[256];
    int rc = 1;

    if (o->filter && strncmp(o->filter, "tag:", 4) == 0 &&
        (!strchr(o->filter, '=') || strchr(o->filter, '=') == o->filter + 4)) {
        fprintf(stderr, "ssmgate ls: '%s': a tag filter is tag:Key=Value\n",
                o->filter);
        return 2;
    }
    memset(&run, 0, sizeof(run));
    collect_sources(&run, cfg);
    CHECK(uv_loop_init(&loop) == 0);
    if (proxy_resolve(cfg->https_proxy, proxy_getenv, &proxy, perr,
                      sizeof(perr)) != 0) {
        fprintf(stderr, "ssmgate ls: %s\n", perr);
        goto out;
    }
    struct aws_client_opts ao = {cfg->profile, cfg->region, 0, &proxy, NULL};
    run.client = aws_client_new(&loop, &ao);
    proxy_wipe(&proxy);
    if (!run.client) {
        fprintf(stderr, "ssmgate ls: cannot create the AWS client\n");
        goto out;
    }
    for (size_t i = 0; i < run.n_src; i++) {
        struct ls_source *s = &run.src[i];
        aws_client_where(run.client, s->profile, s->region, s->shown_profile,
                         sizeof(s->shown_profile), s->shown_region,
                         sizeof(s->shown_region));
        for (size_t j = 0; j < i && !s->same; j++)
            s->same = strcmp(run.src[j].shown_profile, s->shown_profile) == 0 &&
                      strcmp(run.src[j].shown_region, s->shown_region) == 0;
        if (s->same)
            continue;
        if (aws_ssm_list_instances(run.client, s->profile, s->region, ssm_done,
                                   s)) {
            s->pending++;
        } else {
            s->failed = 1;
            source_error(s, "DescribeInstanceInformation", GW_ENOMEM, NULL);
        }
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    print_all(&run, o);
    for (size_t i = 0; i < run.n_src; i++)
        if (!run.src[i].failed && !run.src[i].same)
            rc = 0;
out:
    cli_aws_loop_end(run.client, &loop);
    for (size_t i = 0; i < run.n_src; i++) {
        for (size_t j = 0; j < run.src[i].n_rows; j++)
            json_decref(run.src[i].rows[j].tags);
        free(run.src[i].rows);
    }
    free(run.src);
    fflush(stdout);
    return rc;
}
