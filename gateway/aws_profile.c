/*
 * aws_profile.c - shared files through inih with a custom line reader.
 *
 * Debian's libinih reads into a fixed 200-byte buffer and strips inline
 * ';' comments; botocore has no line limit and strips no inline comments.
 * The reader bridges both without replacing inih:
 *   - a ';' that does not start a comment line is sent as CHR_SEMI and
 *     turned back into ';' in the handler;
 *   - a line longer than fits is sent as its first chunk ending in
 *     CHR_MORE, then continuation lines " CHR_CONT<chunk>[CHR_MORE]",
 *     which inih delivers as repeated values of the same key; the handler
 *     joins them byte for byte. Real continuation lines (the nested
 *     [services] form) carry no marker, so the two never mix.
 */
#include "aws_profile.h"

#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"

#define CHR_SEMI '\x03'
#define CHR_CONT '\x01'
#define CHR_MORE '\x02'
#define CHUNK    150 /* well below inih's 200-byte line buffer */

enum entry_kind { E_CONFIG, E_CREDS };

struct entry {
    enum entry_kind from;
    char *section; /* "profile dev", "default", "sso-session x", ... */
    char *key;     /* lower-case; "svc.key" for nested services keys */
    char *value;
};

struct aws_profiles {
    struct entry *entries;
    size_t n, cap;
};

struct parse_state {
    struct aws_profiles *p;
    enum entry_kind from;
    struct entry *last; /* for chunk joins and nested keys */
    int last_more;      /* the last value ended with CHR_MORE */
    char nested[64];    /* services: the open sub-section key */
    int failed;
};

struct line_source {
    const char *p, *end;
    char *pending; /* rest of a long line still to send */
    size_t pending_len;
};

/* Emits one physical line, or the next chunk of a long one. */
static char *aws_read_line(char *str, int num, void *stream)
{
    struct line_source *src = stream;
    size_t room = (size_t)num - 4; /* marker, space, newline, NUL */
    const char *line;
    size_t len;
    int continuation = src->pending != NULL;
    if (continuation) {
        line = src->pending;
        len = src->pending_len;
    } else {
        if (src->p >= src->end)
            return NULL;
        const char *nl = memchr(src->p, '\n', (size_t)(src->end - src->p));
        line = src->p;
        len = nl ? (size_t)(nl - src->p) : (size_t)(src->end - src->p);
        src->p = nl ? nl + 1 : src->end;
        if (len > 0 && line[len - 1] == '\r')
            len--;
    }
    size_t take = len;
    if (take > CHUNK && take > room - 2)
        take = CHUNK;
    if (take > room - 2)
        take = room - 2;
    size_t o = 0;
    if (continuation) {
        str[o++] = ' ';
        str[o++] = CHR_CONT;
    }
    const char *t = line;
    while (t < line + len && (*t == ' ' || *t == '\t'))
        t++;
    int comment_line =
        !continuation && t < line + len && (*t == ';' || *t == '#');
    for (size_t i = 0; i < take; i++) {
        char c = line[i];
        if (c == '\0')
            c = ' ';
        str[o++] = (c == ';' && !comment_line) ? CHR_SEMI : c;
    }
    if (take < len) {
        str[o++] = CHR_MORE;
        src->pending = (char *)line + take;
        src->pending_len = len - take;
    } else {
        src->pending = NULL;
    }
    str[o++] = '\n';
    str[o] = '\0';
    return str;
}

static char *unmark(const char *v, size_t len)
{
    char *out = malloc(len + 1);
    if (out == NULL)
        return NULL;
    for (size_t i = 0; i < len; i++)
        out[i] = v[i] == CHR_SEMI ? ';' : v[i];
    out[len] = '\0';
    return out;
}

static struct entry *add_entry(struct parse_state *st, const char *section,
                               const char *key, const char *value, size_t vlen)
{
    struct aws_profiles *p = st->p;
    if (p->n == p->cap) {
        size_t cap = p->cap ? p->cap * 2 : 32;
        struct entry *e = realloc(p->entries, cap * sizeof(*e));
        if (e == NULL)
            return NULL;
        p->entries = e;
        p->cap = cap;
    }
    struct entry *e = &p->entries[p->n];
    e->from = st->from;
    e->section = strdup(section);
    e->key = strdup(key);
    e->value = unmark(value, vlen);
    if (e->section == NULL || e->key == NULL || e->value == NULL) {
        free(e->section);
        free(e->key);
        free(e->value);
        return NULL;
    }
    for (char *k = e->key; *k; k++)
        *k = (char)tolower((unsigned char)*k);
    p->n++;
    return e;
}

static int append_value(struct entry *e, const char *v, size_t len)
{
    size_t old = strlen(e->value);
    char *add = unmark(v, len);
    char *n = add ? realloc(e->value, old + len + 1) : NULL;
    if (n == NULL) {
        free(add);
        return -1;
    }
    memcpy(n + old, add, len + 1);
    free(add);
    e->value = n;
    return 0;
}

static int profile_handler(void *user, const char *section, const char *name,
                           const char *value)
{
    struct parse_state *st = user;
    size_t vlen = strlen(value);
    int more = vlen > 0 && value[vlen - 1] == CHR_MORE;
    if (more)
        vlen--;
    if (value[0] == CHR_CONT) {
        /* The next chunk of a long line. */
        if (st->last != NULL && st->last_more &&
            append_value(st->last, value + 1, vlen - 1) != 0)
            st->failed = 1;
        st->last_more = more;
        return 1;
    }
    st->last_more = more;
    int is_services = strncmp(section, "services ", 9) == 0;
    if (is_services && st->last != NULL && strcmp(st->nested, name) == 0 &&
        strcmp(st->last->section, section) == 0) {
        /* "  endpoint_url = http://..." under "ssm =". */
        char tmp[512];
        const char *eq = memchr(value, '=', vlen);
        if (eq == NULL)
            return 1;
        size_t klen = (size_t)(eq - value);
        while (klen > 0 && isspace((unsigned char)value[klen - 1]))
            klen--;
        const char *v = eq + 1;
        while (*v == ' ' || *v == '\t')
            v++;
        snprintf(tmp, sizeof(tmp), "%s.%.*s", name, (int)klen, value);
        st->last = add_entry(st, section, tmp, v, vlen - (size_t)(v - value));
        if (st->last == NULL)
            st->failed = 1;
        return 1; /* the sub-section stays open for its next key */
    }
    st->last = add_entry(st, section, name, value, vlen);
    if (st->last == NULL)
        st->failed = 1;
    snprintf(st->nested, sizeof(st->nested), "%s",
             is_services && vlen == 0 ? name : "");
    return 1;
}

static int parse_into(struct aws_profiles *p, enum entry_kind from,
                      const char *text, size_t len)
{
    struct parse_state st = {p, from, NULL, 0, "", 0};
    struct line_source src = {text, text + len, NULL, 0};
    /* Malformed lines are skipped as botocore would reject the file; we
     * keep what parsed so one bad line does not hide every profile. */
    ini_parse_stream(aws_read_line, &src, profile_handler, &st);
    return st.failed ? GW_ENOMEM : 0;
}

void aws_profiles_free(struct aws_profiles *p)
{
    if (p == NULL)
        return;
    for (size_t i = 0; i < p->n; i++) {
        free(p->entries[i].section);
        free(p->entries[i].key);
        /* Values hold secret keys and tokens. */
        memset(p->entries[i].value, 0, strlen(p->entries[i].value));
        free(p->entries[i].value);
    }
    free(p->entries);
    free(p);
}

struct aws_profiles *aws_profiles_load_mem(const char *config, size_t clen,
                                           const char *creds, size_t crlen,
                                           char *err, size_t errlen)
{
    struct aws_profiles *p = calloc(1, sizeof(*p));
    if (p == NULL ||
        (config != NULL && parse_into(p, E_CONFIG, config, clen) != 0) ||
        (creds != NULL && parse_into(p, E_CREDS, creds, crlen) != 0)) {
        snprintf(err, errlen, "out of memory reading AWS profiles");
        aws_profiles_free(p);
        return NULL;
    }
    return p;
}

/* ~ and $HOME expansion of the default and env paths. */
static void shared_path(const char *env, const char *dflt, char *out,
                        size_t len)
{
    const char *v = getenv(env);
    const char *home = getenv("HOME");
    if (v == NULL || v[0] == '\0')
        v = dflt;
    if (v[0] == '~' && (v[1] == '/' || v[1] == '\0'))
        snprintf(out, len, "%s%s", home ? home : "", v + 1);
    else
        snprintf(out, len, "%s", v);
}

static char *read_file(const char *path, size_t *len, int *missing)
{
    *missing = 0;
    *len = 0;
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        *missing = errno == ENOENT;
        return NULL;
    }
    char *buf = NULL;
    size_t cap = 0;
    for (;;) {
        if (*len + 4096 > cap) {
            char *b =
                cap < (8u << 20) ? realloc(buf, cap = cap * 2 + 4096) : NULL;
            if (b == NULL) {
                free(buf);
                fclose(f);
                return NULL;
            }
            buf = b;
        }
        size_t n = fread(buf + *len, 1, cap - *len, f);
        if (n == 0)
            break;
        *len += n;
    }
    fclose(f);
    return buf ? buf : calloc(1, 1);
}

struct aws_profiles *aws_profiles_load(char *err, size_t errlen)
{
    char cpath[1024], kpath[1024];
    shared_path("AWS_CONFIG_FILE", "~/.aws/config", cpath, sizeof(cpath));
    shared_path("AWS_SHARED_CREDENTIALS_FILE", "~/.aws/credentials", kpath,
                sizeof(kpath));
    size_t clen, klen;
    int cmiss, kmiss;
    char *config = read_file(cpath, &clen, &cmiss);
    char *creds = read_file(kpath, &klen, &kmiss);
    if ((config == NULL && !cmiss) || (creds == NULL && !kmiss)) {
        snprintf(err, errlen, "cannot read %s: %s",
                 config == NULL && !cmiss ? cpath : kpath, strerror(errno));
        free(config);
        free(creds);
        return NULL;
    }
    struct aws_profiles *p =
        aws_profiles_load_mem(config, clen, creds, klen, err, errlen);
    if (creds != NULL)
        memset(creds, 0, klen);
    free(config);
    free(creds);
    return p;
}

/* Config-file section names for a profile: [profile x], and [default]
 * (or [profile default]) for "default". */
static int config_section_is(const char *section, const char *profile)
{
    if (strcmp(profile, "default") == 0 && strcmp(section, "default") == 0)
        return 1;
    if (strncmp(section, "profile", 7) != 0 ||
        (section[7] != ' ' && section[7] != '\t'))
        return 0;
    const char *name = section + 8;
    while (*name == ' ' || *name == '\t')
        name++;
    size_t n = strlen(name);
    if (n >= 2 && name[0] == '"' && name[n - 1] == '"')
        return n - 2 == strlen(profile) &&
               strncmp(name + 1, profile, n - 2) == 0;
    return strcmp(name, profile) == 0;
}

static const char *find(const struct aws_profiles *p, enum entry_kind from,
                        const char *section_profile, const char *key)
{
    const char *found = NULL;
    for (size_t i = 0; p != NULL && i < p->n; i++) {
        const struct entry *e = &p->entries[i];
        if (e->from != from || strcmp(e->key, key) != 0)
            continue;
        int match = from == E_CREDS
                        ? strcmp(e->section, section_profile) == 0
                        : config_section_is(e->section, section_profile);
        if (match)
            found = e->value; /* the last one wins, as in configparser */
    }
    return found;
}

const char *aws_profile_get(const struct aws_profiles *p, const char *profile,
                            const char *key)
{
    const char *v = find(p, E_CREDS, profile, key);
    return v != NULL ? v : find(p, E_CONFIG, profile, key);
}

int aws_profile_exists(const struct aws_profiles *p, const char *profile)
{
    for (size_t i = 0; p != NULL && i < p->n; i++) {
        const struct entry *e = &p->entries[i];
        if (e->from == E_CREDS ? strcmp(e->section, profile) == 0
                               : config_section_is(e->section, profile))
            return 1;
    }
    return 0;
}

static const char *section_get(const struct aws_profiles *p, const char *prefix,
                               const char *name, const char *key)
{
    char section[256];
    snprintf(section, sizeof(section), "%s %s", prefix, name);
    const char *found = NULL;
    for (size_t i = 0; p != NULL && i < p->n; i++) {
        const struct entry *e = &p->entries[i];
        if (e->from == E_CONFIG && strcmp(e->section, section) == 0 &&
            strcmp(e->key, key) == 0)
            found = e->value;
    }
    return found;
}

const char *aws_sso_session_get(const struct aws_profiles *p,
                                const char *session, const char *key)
{
    return section_get(p, "sso-session", session, key);
}

const char *aws_services_get(const struct aws_profiles *p, const char *name,
                             const char *service_key, const char *key)
{
    char nested[256];
    snprintf(nested, sizeof(nested), "%s.%s", service_key, key);
    return section_get(p, "services", name, nested);
}

const char *aws_resolve_profile_name(const char *explicit_profile)
{
    if (explicit_profile != NULL && explicit_profile[0] != '\0')
        return explicit_profile;
    const char *v = getenv("AWS_PROFILE");
    if (v != NULL && v[0] != '\0')
        return v;
    v = getenv("AWS_DEFAULT_PROFILE");
    if (v != NULL && v[0] != '\0')
        return v;
    return "default";
}

int aws_resolve_region(const char *explicit_region,
                       const struct aws_profiles *p, const char *profile,
                       char *out, size_t outlen)
{
    const char *v = explicit_region;
    if (v == NULL || v[0] == '\0')
        v = getenv("AWS_REGION");
    if (v == NULL || v[0] == '\0')
        v = getenv("AWS_DEFAULT_REGION");
    if (v == NULL || v[0] == '\0')
        v = aws_profile_get(p, profile, "region");
    if (v == NULL || v[0] == '\0')
        return GW_ENO_REGION;
    snprintf(out, outlen, "%s", v);
    return 0;
}
