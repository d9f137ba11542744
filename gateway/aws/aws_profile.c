/*
 * aws_profile.c - the AWS shared config and credentials files.
 *
 * Model: each file is read whole into memory and driven through inih's
 * ini_parse_stream with our own reader. botocore reads these files with
 * Python's configparser, which differs from inih in ways that matter
 * here (aws-and-local-protocols.md 4.3, 8 pitfalls 1-2):
 *  - Debian's libinih cuts lines at 200 bytes (INI_MAX_LINE compiled in)
 *    while session tokens run past 1,000;
 *  - inih strips "; comment" after whitespace, configparser does not;
 *  - inih keeps only 50 bytes of a section or key name;
 *  - configparser continues a value only on lines indented deeper than
 *    the key line, inih on any indented line.
 * Feeding an over-long line to inih in chunks would still lose bytes
 * (inih strips whitespace at chunk edges, drops chunks that start with
 * ';' or '#', and strips inline comments inside them). So the reader
 * classifies each physical line itself, the way configparser does, keeps
 * a view of it, and hands inih a short stand-in line of the same kind
 * ("[s]", "k=v", " c", "#", or "!" for a line configparser rejects). inih
 * then calls the handler once per key or continuation line, in order, and
 * reports the first bad line; the handler copies the exact name and value
 * bytes from the physical line. No line length limit remains and values
 * match botocore byte for byte.
 *
 * Storage: one flat list of sections (config profiles, sso-sessions,
 * services blocks, credentials-file profiles), each a list of key/value
 * pairs. Values of [services] keys that start on the next line are split
 * into nested pairs after loading. Everything is immutable afterwards.
 */
#include "aws_profile.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ini.h>

#include "common.h"

enum sect_kind {
    SECT_PROFILE,       /* config [default] / [profile x] */
    SECT_SSO,           /* config [sso-session x] */
    SECT_SERVICES,      /* config [services x] */
    SECT_CRED,          /* credentials [x] */
    SECT_IGNORED,       /* any other config section */
    SECT_CFG_DEFAULTS,  /* config [DEFAULT]: configparser defaults */
    SECT_CRED_DEFAULTS, /* credentials [DEFAULT] */
};

struct kv {
    char *key;
    char *val;
    size_t vlen;
    struct kv *sub; /* nested pairs (services blocks) */
    size_t nsub;
};

struct section {
    enum sect_kind kind;
    char *name;
    struct kv *kv;
    size_t n;
    size_t cap;
};

struct aws_profiles {
    struct section *s;
    size_t n;
    size_t cap;
};

enum line_kind {
    LINE_BLANK,
    LINE_COMMENT,
    LINE_SECTION,
    LINE_KEY,
    LINE_CONT,
    LINE_BAD,
};

/* Reader + handler state for one file. */
struct rd {
    struct aws_profiles *p;
    int creds; /* credentials file: [x] is profile x */
    const char *buf;
    size_t len;
    size_t pos;
    int err; /* first failure that is not a syntax error */
    /* The physical line inih is looking at. */
    enum line_kind kind;
    const char *name; /* KEY: name span; SECTION: decoded name (owned) */
    size_t name_len;
    const char *val; /* KEY / CONT: value span, stripped */
    size_t val_len;
    /* configparser state */
    int have_key;      /* a key line since the section header */
    size_t blanks;     /* blank lines since, kept if a continuation follows */
    size_t key_indent; /* its indentation */
    long cur;          /* current section index, -1 = none */
    long last_kv;      /* index of the last key in cur, -1 = none */
    int before_section;
    char *sect_name; /* owned decoded name of the last header */
};

/* Python's str.strip() set, restricted to ASCII. */
static int py_space(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\v' || c == '\f' || c == '\r' ||
           c == '\n' || (c >= 0x1c && c <= 0x1f);
}

static void strip_span(const char **s, size_t *n)
{
    while (*n && py_space((unsigned char)**s)) {
        (*s)++;
        (*n)--;
    }
    while (*n && py_space((unsigned char)(*s)[*n - 1]))
        (*n)--;
}

static char *dup_span(const char *s, size_t n)
{
    char *o = malloc(n + 1);
    if (!o)
        return NULL;
    memcpy(o, s, n);
    o[n] = '\0';
    return o;
}

/*
 * shlex.split() (POSIX mode, no comments) of s; stores up to 3 words.
 * Returns the word count, or -1 for an unterminated quote / escape.
 */
static int shlex_split(const char *s, char *words[3])
{
    int nw = 0;
    size_t n = strlen(s);
    char *cur = NULL;
    size_t cl = 0;
    for (size_t i = 0; i <= n; i++) {
        char c = s[i];
        if (c == '\0' || py_space((unsigned char)c)) {
            if (cur) {
                cur[cl] = '\0';
                if (nw < 3)
                    words[nw] = cur;
                else
                    free(cur);
                nw++;
                cur = NULL;
            }
            continue;
        }
        if (!cur) {
            cur = malloc(n + 1);
            if (!cur)
                goto fail;
            cl = 0;
        }
        if (c == '\\') {
            if (++i >= n)
                goto fail;
            cur[cl++] = s[i];
        } else if (c == '\'') {
            for (i++; i < n && s[i] != '\''; i++)
                cur[cl++] = s[i];
            if (i >= n)
                goto fail;
        } else if (c == '"') {
            for (i++; i < n && s[i] != '"'; i++) {
                if (s[i] == '\\' && i + 1 < n &&
                    (s[i + 1] == '"' || s[i + 1] == '\\'))
                    i++;
                cur[cl++] = s[i];
            }
            if (i >= n)
                goto fail;
        } else {
            cur[cl++] = c;
        }
    }
    return nw;
fail:
    free(cur);
    for (int k = 0; k < nw && k < 3; k++)
        free(words[k]);
    return -1;
}

/* Room for element n of an array of cap (doubling from 8). */
static int array_grow(void **arr, size_t *cap, size_t n, size_t size)
{
    size_t nc;
    void *na;

    if (n < *cap)
        return 0;
    nc = *cap ? *cap * 2 : 8;
    na = realloc(*arr, nc * size);
    if (!na)
        return GW_ENOMEM;
    *arr = na;
    *cap = nc;
    return 0;
}

static long section_find(const struct aws_profiles *p, enum sect_kind kind,
                         const char *name)
{
    for (size_t i = 0; i < p->n; i++)
        if (p->s[i].kind == kind && strcmp(p->s[i].name, name) == 0)
            return (long)i;
    return -1;
}

static void kv_free(struct kv *kv)
{
    free(kv->key);
    free(kv->val);
    for (size_t i = 0; i < kv->nsub; i++)
        kv_free(&kv->sub[i]);
    free(kv->sub);
}

/* Opens (kind, name). A header naming an existing config section replaces
 * its keys, like botocore's dict assignment ([default] vs
 * [profile default]); the credentials file merges. */
static long section_open(struct aws_profiles *p, enum sect_kind kind,
                         const char *name, int replace)
{
    long i = section_find(p, kind, name);
    if (i >= 0) {
        struct section *s = &p->s[i];
        if (replace) {
            for (size_t k = 0; k < s->n; k++)
                kv_free(&s->kv[k]);
            s->n = 0;
        }
        return i;
    }
    if (array_grow((void **)&p->s, &p->cap, p->n, sizeof(*p->s)) < 0)
        return GW_ENOMEM;
    struct section *s = &p->s[p->n];
    memset(s, 0, sizeof(*s));
    s->kind = kind;
    s->name = strdup(name);
    if (!s->name)
        return GW_ENOMEM;
    return (long)p->n++;
}

/* Maps a header to a section (botocore build_profile_map rules). */
static int rd_section(struct rd *r, const char *hdr)
{
    enum sect_kind kind = SECT_IGNORED;
    char *words[3] = {NULL, NULL, NULL};
    const char *name = hdr;
    int nw = 0;
    long idx;

    if (strcmp(hdr, "DEFAULT") == 0) {
        /* configparser's default section: its keys show through in every
         * other section of the same file. */
        kind = r->creds ? SECT_CRED_DEFAULTS : SECT_CFG_DEFAULTS;
    } else if (r->creds) {
        kind = SECT_CRED;
    } else if (strcmp(hdr, "default") == 0) {
        kind = SECT_PROFILE;
    } else if (strncmp(hdr, "profile", 7) == 0 ||
               strncmp(hdr, "sso-session", 11) == 0 ||
               strncmp(hdr, "services", 8) == 0) {
        nw = shlex_split(hdr, words);
        if (nw == 2) {
            name = words[1];
            kind = hdr[1] == 'r'   ? SECT_PROFILE
                   : hdr[1] == 's' ? SECT_SSO
                                   : SECT_SERVICES;
        }
    }
    /* configparser merges repeated [DEFAULT] headers. */
    idx = section_open(r->p, kind, kind == SECT_IGNORED ? "" : name,
                       !r->creds && kind != SECT_CFG_DEFAULTS);
    for (int k = 0; k < nw && k < 3; k++)
        free(words[k]);
    if (idx < 0)
        return (int)idx;
    r->cur = idx;
    r->last_kv = -1;
    return 0;
}

static int rd_add_key(struct rd *r)
{
    struct section *s = &r->p->s[r->cur];
    char *key = dup_span(r->name, r->name_len);
    char *val = dup_span(r->val, r->val_len);
    if (!key || !val)
        goto nomem;
    for (char *c = key; *c; c++)
        *c = (char)tolower((unsigned char)*c);
    for (size_t i = 0; i < s->n; i++) {
        if (strcmp(s->kv[i].key, key) == 0) {
            /* Later wins (configparser would refuse the file). */
            kv_free(&s->kv[i]);
            s->kv[i] = (struct kv){.key = key, .val = val, .vlen = r->val_len};
            r->last_kv = (long)i;
            return 0;
        }
    }
    if (array_grow((void **)&s->kv, &s->cap, s->n, sizeof(*s->kv)) < 0)
        goto nomem;
    s->kv[s->n] = (struct kv){.key = key, .val = val, .vlen = r->val_len};
    r->last_kv = (long)s->n++;
    return 0;
nomem:
    free(key);
    free(val);
    return GW_ENOMEM;
}

/* An indented line continues the value: "\n" + the stripped line. */
static int rd_add_cont(struct rd *r)
{
    if (r->cur < 0 || r->last_kv < 0)
        return 0;
    struct kv *kv = &r->p->s[r->cur].kv[r->last_kv];
    size_t nl = r->blanks + 1;
    if (r->val_len > AWS_PROFILE_FILE_MAX || nl > AWS_PROFILE_FILE_MAX)
        return GW_ETOO_BIG;
    char *nv = realloc(kv->val, kv->vlen + nl + r->val_len + 1);
    if (!nv)
        return GW_ENOMEM;
    memset(nv + kv->vlen, '\n', nl);
    memcpy(nv + kv->vlen + nl, r->val, r->val_len);
    kv->vlen += nl + r->val_len;
    nv[kv->vlen] = '\0';
    kv->val = nv;
    r->blanks = 0;
    return 0;
}

/* Classifies one physical line like configparser and records its spans. */
static void rd_classify(struct rd *r, const char *line, size_t n)
{
    size_t indent = 0;
    while (indent < n && py_space((unsigned char)line[indent]))
        indent++;
    const char *s = line + indent;
    size_t sl = n - indent;
    strip_span(&s, &sl);

    free(r->sect_name);
    r->sect_name = NULL;
    if (sl == 0) {
        r->kind = LINE_BLANK;
        r->blanks++;
        return;
    }
    if (s[0] == '#' || s[0] == ';') {
        r->kind = LINE_COMMENT;
        return;
    }
    if (r->have_key && indent > r->key_indent) {
        /* The blanks stay in the value (empty_lines_in_values). */
        r->kind = LINE_CONT;
        r->val = s;
        r->val_len = sl;
        return;
    }
    if (s[0] == '[') {
        /* configparser: "\[(.+)\]" matched greedily at the start. */
        const char *rb = NULL;
        for (size_t i = sl; i-- > 1;)
            if (s[i] == ']') {
                rb = s + i;
                break;
            }
        if (rb && rb > s + 1) {
            r->kind = LINE_SECTION;
            r->sect_name = dup_span(s + 1, (size_t)(rb - s - 1));
            if (!r->sect_name && !r->err)
                r->err = GW_ENOMEM;
            r->have_key = 0;
            r->blanks = 0;
            return;
        }
    }
    size_t d = 0;
    while (d < sl && s[d] != '=' && s[d] != ':')
        d++;
    r->name = s;
    r->name_len = d;
    strip_span(&r->name, &r->name_len);
    if (d == sl || r->name_len == 0) {
        r->kind = LINE_BAD;
        return;
    }
    r->val = s + d + 1;
    r->val_len = sl - d - 1;
    strip_span(&r->val, &r->val_len);
    r->kind = LINE_KEY;
    r->have_key = 1;
    r->blanks = 0;
    r->key_indent = indent;
}

/* ini_reader: next physical line as a short stand-in of the same kind. */
static char *rd_read(char *str, int num, void *stream)
{
    struct rd *r = stream;
    if (r->pos >= r->len || r->err || num < 8)
        return NULL;
    const char *line = r->buf + r->pos;
    size_t n = 0;
    while (r->pos + n < r->len && line[n] != '\n' && line[n] != '\r')
        n++;
    if (memchr(line, '\0', n)) {
        r->err = GW_ECONFIG;
        return NULL;
    }
    /* Line ends: "\r\n", "\n" or a lone "\r" (Python's universal
     * newlines). */
    r->pos += n;
    if (r->pos < r->len && r->buf[r->pos] == '\r')
        r->pos++;
    else if (r->pos < r->len && r->buf[r->pos] == '\n')
        r->pos++;
    if (r->pos < r->len && r->buf[r->pos] == '\n' && r->buf[r->pos - 1] == '\r')
        r->pos++;
    rd_classify(r, line, n);
    const char *stand_in;
    switch (r->kind) {
    case LINE_BLANK:
        stand_in = "\n";
        break;
    case LINE_COMMENT:
        stand_in = "#\n";
        break;
    case LINE_SECTION:
        stand_in = "[s]\n";
        if (r->sect_name && rd_section(r, r->sect_name) < 0 && !r->err)
            r->err = GW_ENOMEM;
        break;
    case LINE_KEY:
        stand_in = "k=v\n";
        break;
    case LINE_CONT:
        stand_in = " c\n";
        break;
    case LINE_BAD:
    default:
        stand_in = "!\n";
        break;
    }
    snprintf(str, (size_t)num, "%s", stand_in);
    return str;
}

static int rd_handler(void *user, const char *section, const char *name,
                      const char *value)
{
    struct rd *r = user;
    int rc;
    if (r->err)
        return 0;
    switch (r->kind) {
    case LINE_KEY:
        if (r->cur < 0)
            return 0; /* key before any section header */
        if (r->p->s[r->cur].kind == SECT_IGNORED) {
            /* Still a key for continuation purposes; nothing stored. */
            r->last_kv = -1;
            return 1;
        }
        rc = rd_add_key(r);
        break;
    case LINE_CONT:
        rc = rd_add_cont(r);
        break;
    default:
        return 0;
    }
    if (rc < 0) {
        r->err = rc;
        return 0;
    }
    return 1;
}

/* botocore _parse_nested: "k = v" lines of a value that starts with
 * "\n"; lines without '=' are skipped. */
static int kv_parse_nested(struct kv *kv)
{
    if (kv->vlen == 0 || kv->val[0] != '\n')
        return 0;
    size_t max = 1;
    for (size_t i = 0; i < kv->vlen; i++)
        max += kv->val[i] == '\n';
    kv->sub = calloc(max, sizeof(*kv->sub));
    if (!kv->sub)
        return GW_ENOMEM;
    const char *p = kv->val, *end = kv->val + kv->vlen;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *le = nl ? nl : end;
        const char *eq = memchr(p, '=', (size_t)(le - p));
        if (eq) {
            const char *k = p, *v = eq + 1;
            size_t kl = (size_t)(eq - p), vl = (size_t)(le - eq - 1);
            strip_span(&k, &kl);
            strip_span(&v, &vl);
            struct kv *s = &kv->sub[kv->nsub];
            s->key = dup_span(k, kl);
            s->val = dup_span(v, vl);
            s->vlen = vl;
            kv->nsub++;
            if (!s->key || !s->val)
                return GW_ENOMEM;
        }
        p = le + 1;
    }
    return 0;
}

static int parse_one(struct aws_profiles *p, const char *text, size_t len,
                     int creds, const char *what, char *err, size_t errlen)
{
    struct rd r = {.p = p,
                   .creds = creds,
                   .buf = text,
                   .len = len,
                   .cur = -1,
                   .last_kv = -1};
    if (!text || !len)
        return 0;
    if (len > AWS_PROFILE_FILE_MAX) {
        snprintf(err, errlen, "%s: larger than %u bytes", what,
                 AWS_PROFILE_FILE_MAX);
        return GW_ETOO_BIG;
    }
    if (len >= 3 && memcmp(text, "\xef\xbb\xbf", 3) == 0)
        r.pos = 3;
    int line = ini_parse_stream(rd_read, &r, rd_handler, &r);
    free(r.sect_name);
    if (r.err == GW_ECONFIG) {
        snprintf(err, errlen, "%s: NUL byte in the file", what);
        return GW_ECONFIG;
    }
    if (r.err) {
        snprintf(err, errlen, "%s: %s", what, gw_strerror(r.err));
        return r.err;
    }
    if (line != 0) {
        snprintf(err, errlen,
                 "%s: line %d: not a section, key = value, "
                 "comment or indented continuation",
                 what, line);
        return GW_ECONFIG;
    }
    return 0;
}

void aws_profiles_free(struct aws_profiles *p)
{
    if (!p)
        return;
    for (size_t i = 0; i < p->n; i++) {
        for (size_t k = 0; k < p->s[i].n; k++)
            kv_free(&p->s[i].kv[k]);
        free(p->s[i].kv);
        free(p->s[i].name);
    }
    free(p->s);
    free(p);
}

int aws_profiles_load_mem(const char *config, size_t config_len,
                          const char *creds, size_t creds_len,
                          struct aws_profiles **out, char *err, size_t errlen)
{
    int rc;
    struct aws_profiles *p = calloc(1, sizeof(*p));
    *out = NULL;
    if (errlen)
        err[0] = '\0';
    if (!p)
        return GW_ENOMEM;
    if ((rc = parse_one(p, config, config_len, 0, "config", err, errlen)) < 0 ||
        (rc = parse_one(p, creds, creds_len, 1, "credentials", err, errlen)) <
            0)
        goto out;
    for (size_t i = 0; i < p->n; i++) {
        /* botocore nests in every section; only services blocks (and the
         * [DEFAULT] keys they inherit) are looked up nested. */
        if (p->s[i].kind != SECT_SERVICES && p->s[i].kind != SECT_CFG_DEFAULTS)
            continue;
        for (size_t k = 0; k < p->s[i].n; k++)
            if ((rc = kv_parse_nested(&p->s[i].kv[k])) < 0)
                goto out;
    }
    *out = p; /* transferred */
    p = NULL;
    rc = 0; /* success */
out:
    aws_profiles_free(p);
    return rc;
}

/* Reads a whole file; a missing file is empty (*buf NULL). */
static int read_file(const char *path, char **buf, size_t *len, char *err,
                     size_t errlen)
{
    *buf = NULL;
    *len = 0;
    if (!path)
        return 0;
    FILE *f = fopen(path, "rb");
    if (!f) {
        if (errno == ENOENT || errno == ENOTDIR)
            return 0;
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return GW_EIO;
    }
    int rc = 0;
    size_t cap = 4096, n = 0;
    char *b = malloc(cap);
    while (b) {
        if (n == cap) {
            if (cap > AWS_PROFILE_FILE_MAX) {
                snprintf(err, errlen, "%s: larger than %u bytes", path,
                         AWS_PROFILE_FILE_MAX);
                rc = GW_ETOO_BIG;
                goto out;
            }
            char *nb = realloc(b, cap * 2);
            if (!nb)
                break;
            b = nb;
            cap *= 2;
        }
        size_t got = fread(b + n, 1, cap - n, f);
        n += got;
        if (got == 0) {
            if (ferror(f)) {
                snprintf(err, errlen, "%s: read error", path);
                rc = GW_EIO;
                goto out;
            }
            *buf = b; /* transferred */
            *len = n;
            b = NULL;
            goto out;
        }
    }
    rc = GW_ENOMEM;
out:
    free(b);
    fclose(f);
    return rc;
}

int aws_profiles_load_files(const char *config_path, const char *creds_path,
                            struct aws_profiles **out, char *err, size_t errlen)
{
    char *cb = NULL, *kb = NULL;
    size_t cl = 0, kl = 0;
    char sub[256];
    int rc;
    *out = NULL;
    if ((rc = read_file(config_path, &cb, &cl, err, errlen)) < 0 ||
        (rc = read_file(creds_path, &kb, &kl, err, errlen)) < 0)
        goto out;
    rc = aws_profiles_load_mem(cb, cl, kb, kl, out, sub, sizeof(sub));
    if (rc < 0) {
        /* Name the file rather than "config" / "credentials". */
        const char *colon = strchr(sub, ':');
        int is_creds = strncmp(sub, "credentials", 11) == 0;
        snprintf(err, errlen, "%s%s", is_creds ? creds_path : config_path,
                 colon ? colon : "");
    }
out:
    free(cb);
    free(kb);
    return rc;
}

int aws_profiles_load(const struct aws_env *env, struct aws_profiles **out,
                      char *err, size_t errlen)
{
    char cfg[4096], cred[4096];
    const char *c = aws_env_get(env, "AWS_CONFIG_FILE");
    const char *k = aws_env_get(env, "AWS_SHARED_CREDENTIALS_FILE");
    *out = NULL;
    if (aws_expand_path(env, c && *c ? c : "~/.aws/config", cfg, sizeof(cfg)) <
            0 ||
        aws_expand_path(env, k && *k ? k : "~/.aws/credentials", cred,
                        sizeof(cred)) < 0) {
        snprintf(err, errlen, "AWS shared file path too long");
        return GW_ETOO_BIG;
    }
    return aws_profiles_load_files(cfg, cred, out, err, errlen);
}

static const struct kv *kv_in(const struct section *s, const char *key)
{
    for (size_t k = 0; k < s->n; k++)
        if (strcmp(s->kv[k].key, key) == 0)
            return &s->kv[k];
    return NULL;
}

/* key of section (kind, name), else of that file's [DEFAULT] when the
 * section exists (configparser defaults). */
static const struct kv *section_kv(const struct aws_profiles *p,
                                   enum sect_kind kind, const char *name,
                                   const char *key)
{
    if (!p || !name || !key)
        return NULL;
    long i = section_find(p, kind, name);
    if (i < 0)
        return NULL;
    const struct kv *kv = kv_in(&p->s[i], key);
    if (kv)
        return kv;
    i = section_find(p,
                     kind == SECT_CRED ? SECT_CRED_DEFAULTS : SECT_CFG_DEFAULTS,
                     "DEFAULT");
    return i < 0 ? NULL : kv_in(&p->s[i], key);
}

int aws_profile_exists(const struct aws_profiles *p, const char *profile)
{
    return p && profile &&
           (section_find(p, SECT_CRED, profile) >= 0 ||
            section_find(p, SECT_PROFILE, profile) >= 0);
}

const char *aws_profile_get(const struct aws_profiles *p, const char *profile,
                            const char *key)
{
    const struct kv *kv = section_kv(p, SECT_CRED, profile, key);
    if (!kv)
        kv = section_kv(p, SECT_PROFILE, profile, key);
    return kv ? kv->val : NULL;
}

const char *aws_sso_session_get(const struct aws_profiles *p,
                                const char *session, const char *key)
{
    const struct kv *kv = section_kv(p, SECT_SSO, session, key);
    return kv ? kv->val : NULL;
}

const char *aws_services_get(const struct aws_profiles *p, const char *services,
                             const char *service_key, const char *key)
{
    const struct kv *kv = section_kv(p, SECT_SERVICES, services, service_key);
    if (!kv || !key)
        return NULL;
    const char *found = NULL;
    for (size_t i = 0; i < kv->nsub; i++)
        if (strcmp(kv->sub[i].key, key) == 0)
            found = kv->sub[i].val; /* later wins, as in a dict */
    return found;
}
