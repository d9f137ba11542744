/*
 * fuzz_aws_sigv4.c - the SigV4 signer on hostile URLs and header values
 * (a StreamUrl comes from an AWS response). Input: URL, then '\n', then
 * an optional header value. A signed result must be a well-formed
 * Authorization value and a canonical request with six parts.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "aws_sigv4.h"
#include "common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *in = malloc(size + 1);
    if (!in)
        return 0;
    memcpy(in, data, size);
    in[size] = '\0';
    char *hv = strchr(in, '\n');
    if (hv)
        *hv++ = '\0';
    struct aws_sigv4_header h = {"X-Fuzz", hv ? hv : ""};
    struct aws_sigv4_request req = {
        .method = "GET",
        .url = in,
        .headers = &h,
        .n_headers = hv ? 1 : 0,
        .path_mode = size % 3,
    };
    struct aws_sigv4_creds c = {"AKIDEXAMPLE", "secret",
                                size % 2 ? "token" : NULL};
    struct aws_sigv4_result r;
    char *creq = NULL, *sts = NULL;
    int rc =
        aws_sigv4_sign(&req, &c, "us-east-1", size % 5 ? "ssm" : "ssmmessages",
                       1440938160, &r, &creq, &sts);
    if (rc == 0) {
        CHECK(strncmp(r.authorization, "AWS4-HMAC-SHA256 Credential=", 28) ==
              0);
        CHECK(strlen(strstr(r.authorization, "Signature=")) == 10 + 64);
        size_t nl = 0;
        for (const char *p = creq; *p; p++)
            nl += *p == '\n';
        CHECK(nl >= 6);
        CHECK(creq[strlen(creq) - 65] == '\n');
    } else {
        CHECK(creq == NULL && sts == NULL);
    }
    free(creq);
    free(sts);
    free(in);
    return 0;
}
