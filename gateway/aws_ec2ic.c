/* aws_ec2ic.c - SendSSHPublicKey (no AvailabilityZone, as the CLI does). */
#include "aws_ec2ic.h"

#include <stdlib.h>

#include "common.h"

struct ec2ic_ctx {
    aws_ec2ic_done_cb *done;
    void *arg;
};

static void on_pushed(void *arg, int status, json_t *resp,
                      const struct aws_error *err)
{
    struct ec2ic_ctx *x = arg;
    if (status == 0 && !json_is_true(json_object_get(resp, "Success")))
        status = GW_EPROTO;
    x->done(x->arg, status, err);
    free(x);
}

struct aws_call *
aws_ec2ic_send_ssh_public_key(struct aws_client *c, const char *profile,
                              const char *region, const char *instance_id,
                              const char *os_user, const char *public_key,
                              aws_ec2ic_done_cb *done, void *arg)
{
    struct ec2ic_ctx *x = calloc(1, sizeof(*x));
    json_t *in =
        json_pack("{s:s, s:s, s:s}", "InstanceId", instance_id,
                  "InstanceOSUser", os_user, "SSHPublicKey", public_key);
    struct aws_call *call = NULL;
    if (x != NULL && in != NULL) {
        x->done = done;
        x->arg = arg;
        call = aws_call_start(c, "ec2-instance-connect", "SendSSHPublicKey", in,
                              profile, region, on_pushed, x);
    }
    json_decref(in);
    if (call == NULL)
        free(x);
    aws_call_own(call, x);
    return call;
}
