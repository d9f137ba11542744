/*
 * fuzz_aws_ec2.c - EC2's XML answers on arbitrary bytes: libxml2's tree
 * (aws_xml) through the Query envelope (aws_proto) into the
 * DescribeInstances and StartInstances readers. The first byte picks the
 * action. Invariants: every instance kept has an id, NUL-terminated
 * fields free of control characters, and its Name is its Name tag.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "aws_ec2_parse.h"
#include "aws_proto.h"
#include "common.h"
#include "fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const struct aws_svc *svc = aws_svc_find("ec2");
    struct aws_ec2_list l;
    char next[AWS_EC2_TOKEN_MAX], why[128], st[AWS_EC2_STATE_MAX];
    size_t skipped = 0;
    json_t *j;

    if (size == 0)
        return 0;
    memset(&l, 0, sizeof(l));
    if (data[0] & 1) {
        j = aws_proto_query_result(svc, "StartInstances",
                                   (const char *)data + 1, size - 1);
        if (j &&
            aws_ec2_parse_start(j, "i-0123456789abcdef0", st, sizeof(st)) == 0)
            check_text(st, sizeof(st));
        json_decref(j);
        return 0;
    }
    j = aws_proto_query_result(svc, "DescribeInstances", (const char *)data + 1,
                               size - 1);
    if (j && aws_ec2_parse_describe(j, &l, next, sizeof(next), &skipped, why,
                                    sizeof(why)) == 0)
        check_text(next, sizeof(next));
    for (size_t i = 0; i < l.n; i++) {
        const struct aws_ec2_instance *in = &l.inst[i];
        const char *name = aws_ec2_tag(in, "Name");
        if (!in->instance_id[0] || strcmp(in->name, name ? name : "") != 0)
            abort();
        check_text(in->instance_id, sizeof(in->instance_id));
        check_text(in->state, sizeof(in->state));
        check_text(in->private_ip, sizeof(in->private_ip));
        check_text(in->platform, sizeof(in->platform));
        for (size_t t = 0; t < in->n_tags; t++) {
            check_text(in->tags[t].key, strlen(in->tags[t].key) + 1);
            check_text(in->tags[t].value, strlen(in->tags[t].value) + 1);
        }
    }
    aws_ec2_list_free(&l);
    json_decref(j);
    return 0;
}
