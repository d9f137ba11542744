/*
 * aws_ec2_parse.c - EC2's XML answers, as JSON trees, into structs (see
 * aws_ec2_parse.h).
 *
 * EC2 lists are <x><item>..</item></x>: aws_xml.h makes one item an
 * object and two or more an array, and an empty list a (whitespace)
 * string; items() hides the difference. Every value is bounded before it
 * is copied: the answer is outside input.
 */
#include "aws_ec2_parse.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"

/* The i-th <item> of a list element, or NULL past the end. */
static json_t *items(json_t *list, size_t i)
{
    json_t *it = json_object_get(list, "item");

    if (json_is_array(it))
        return json_array_get(it, i);
    return i == 0 && json_is_object(it) ? it : NULL;
}

static const char *str(json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);

    return json_is_string(v) ? json_string_value(v) : NULL;
}

/* Whether s holds a control character (values go to terminals). */
static int has_ctl(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return 1;
    return 0;
}

/* Copies s (NULL = "") into dst; -1 when it does not fit or holds a
 * control character. */
static int copy(char *dst, size_t cap, const char *s)
{
    size_t n = s ? strlen(s) : 0;

    if (n >= cap || (s && has_ctl(s)))
        return -1;
    memcpy(dst, s ? s : "", n + 1);
    return 0;
}

static void instance_clear(struct aws_ec2_instance *in)
{
    for (size_t i = 0; i < in->n_tags; i++) {
        free(in->tags[i].key);
        free(in->tags[i].value);
    }
    free(in->tags);
    in->tags = NULL;
    in->n_tags = 0;
}

void aws_ec2_list_free(struct aws_ec2_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        instance_clear(&l->inst[i]);
    free(l->inst);
    memset(l, 0, sizeof(*l));
}

const char *aws_ec2_tag(const struct aws_ec2_instance *in, const char *key)
{
    for (size_t i = 0; i < in->n_tags; i++)
        if (strcmp(in->tags[i].key, key) == 0)
            return in->tags[i].value;
    return NULL;
}

/* EC2 allows 50 tags per resource, keys of 128 and values of 256. */
#define TAGS_MAX      50
#define TAG_KEY_MAX   128
#define TAG_VALUE_MAX 256

/* 0, -1 (malformed: skip the instance) or GW_ENOMEM. */
static int parse_tags(json_t *set, struct aws_ec2_instance *in)
{
    json_t *t;

    for (size_t i = 0; (t = items(set, i)) != NULL; i++) {
        const char *k = str(t, "key"), *v = str(t, "value");
        if (!v)
            v = ""; /* <value/> */
        if (!k || i >= TAGS_MAX || strlen(k) > TAG_KEY_MAX ||
            strlen(v) > TAG_VALUE_MAX || has_ctl(k) || has_ctl(v))
            return -1;
        if (i == 0 && !(in->tags = calloc(TAGS_MAX, sizeof(*in->tags))))
            return GW_ENOMEM;
        in->tags[i].key = strdup(k);
        in->tags[i].value = strdup(v);
        in->n_tags = i + 1;
        if (!in->tags[i].key || !in->tags[i].value)
            return GW_ENOMEM;
    }
    return 0;
}

/* 0, -1 (skip it) or GW_ENOMEM. */
static int parse_instance(json_t *it, struct aws_ec2_instance *in)
{
    int rc;

    memset(in, 0, sizeof(*in));
    if (copy(in->instance_id, sizeof(in->instance_id), str(it, "instanceId")) <
            0 ||
        !in->instance_id[0] ||
        copy(in->state, sizeof(in->state),
             str(json_object_get(it, "instanceState"), "name")) < 0 ||
        copy(in->private_ip, sizeof(in->private_ip),
             str(it, "privateIpAddress")) < 0 ||
        copy(in->platform, sizeof(in->platform), str(it, "platformDetails")) <
            0)
        return -1;
    if ((rc = parse_tags(json_object_get(it, "tagSet"), in)) < 0)
        return rc;
    in->name = aws_ec2_tag(in, "Name");
    if (!in->name)
        in->name = "";
    return 0;
}

static int grow(struct aws_ec2_list *l)
{
    if (l->n < l->cap)
        return 0;
    size_t cap = l->cap ? l->cap * 2 : 16;
    struct aws_ec2_instance *ni = realloc(l->inst, cap * sizeof(*ni));
    if (!ni)
        return GW_ENOMEM;
    l->inst = ni;
    l->cap = cap;
    return 0;
}

int aws_ec2_parse_describe(json_t *resp, struct aws_ec2_list *l, char *next,
                           size_t next_cap, size_t *skipped, char *why,
                           size_t why_len)
{
    json_t *set = json_object_get(resp, "reservationSet"), *r, *it;
    const char *tok = str(resp, "nextToken");

    next[0] = '\0';
    if (!json_is_object(resp) || !set) {
        snprintf(why, why_len, "DescribeInstances: no reservationSet");
        return GW_EPROTO;
    }
    for (size_t i = 0; (r = items(set, i)) != NULL; i++) {
        json_t *iset = json_object_get(r, "instancesSet");
        for (size_t j = 0; (it = items(iset, j)) != NULL; j++) {
            int rc = grow(l);
            if (rc < 0)
                return rc;
            rc = parse_instance(it, &l->inst[l->n]);
            if (rc == GW_ENOMEM) {
                instance_clear(&l->inst[l->n]);
                return rc;
            }
            if (rc < 0) {
                instance_clear(&l->inst[l->n]);
                (*skipped)++;
                continue;
            }
            l->n++;
        }
    }
    if (tok && copy(next, next_cap, tok) < 0)
        return GW_ETOO_BIG;
    return 0;
}

int aws_ec2_parse_start(json_t *resp, const char *instance_id, char *state,
                        size_t state_cap)
{
    json_t *it;

    for (size_t i = 0;
         (it = items(json_object_get(resp, "instancesSet"), i)) != NULL; i++) {
        const char *id = str(it, "instanceId");
        if (!id || strcmp(id, instance_id) != 0)
            continue;
        const char *s = str(json_object_get(it, "currentState"), "name");
        if (!s || !s[0] || copy(state, state_cap, s) < 0)
            return GW_EPROTO;
        return 0;
    }
    return GW_EPROTO;
}
