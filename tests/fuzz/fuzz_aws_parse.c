/*
 * fuzz_aws_parse.c - the AWS layer's response parsers on arbitrary bytes:
 * the first byte picks the parser (error body per protocol, XML to JSON,
 * credential_process JSON, metadata JSON, ISO 8601, shell words).
 * Invariants: error code/message are NUL-terminated within their arrays
 * and free of control characters; parsed credentials have both keys.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "aws_parse.h"
#include "aws_xml.h"
#include "common.h"
#include "fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct aws_error e;
    struct aws_creds_parsed pc;
    char why[256], *s;
    char **argv;
    json_t *j;
    time_t t;

    if (size == 0)
        return 0;
    s = malloc(size);
    if (!s)
        return 0;
    memcpy(s, data + 1, size - 1);
    s[size - 1] = '\0';
    switch (data[0] % 7) {
    case 0:
    case 1:
    case 2:
        memset(&e, 0, sizeof(e));
        aws_parse_error((enum aws_proto)(data[0] % 3), 400, s, size - 1, s, s,
                        &e);
        check_text(e.code, sizeof(e.code));
        check_text(e.message, sizeof(e.message));
        if (!e.code[0])
            abort();
        break;
    case 3:
        j = aws_xml_to_json(s, size - 1);
        if (j && json_object_size(j) != 1)
            abort();
        json_decref(j);
        break;
    case 4:
        if (aws_parse_process_creds(s, size - 1, &pc, why, sizeof(why)) == 0) {
            if (!pc.access_key_id[0] || !pc.secret_access_key[0])
                abort();
            aws_creds_parsed_clear(&pc);
        }
        if (aws_parse_metadata_creds(s, size - 1, &pc, why, sizeof(why)) == 0)
            aws_creds_parsed_clear(&pc);
        break;
    case 5:
        (void)aws_parse_iso8601(s, &t);
        break;
    default:
        if (aws_shell_split(s, &argv) == 0) {
            if (!argv[0])
                abort();
            aws_shell_free(argv);
        }
        break;
    }
    free(s);
    return 0;
}
