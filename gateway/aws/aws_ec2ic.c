/*
 * aws_ec2ic.c - SendSSHPublicKey (no AvailabilityZone, as the AWS CLI v2
 * does): request JSON in, Success out.
 */
#include "aws_ec2ic.h"

#include <stdlib.h>
#include <string.h>

#include "common.h"

struct ec2ic_req {
    aws_ec2ic_done_cb *done;
    void *arg;
};

static void ec2ic_done(void *arg, int status, json_t *resp,
                       const struct aws_error *err)
{
    struct ec2ic_req *r = arg;

    if (status == 0 && !json_is_true(json_object_get(resp, "Success"))) {
        struct aws_error e;
        memset(&e, 0, sizeof(e));
        snprintf(e.message, sizeof(e.message),
                 "SendSSHPublicKey did not report Success");
        r->done(r->arg, GW_EPROTO, &e);
    } else {
        r->done(r->arg, status, err);
    }
    free(r);
}

struct aws_call *
aws_ec2ic_send_ssh_public_key(struct aws_client *c, const char *profile,
                              const char *region, const char *instance_id,
                              const char *os_user, const char *public_key,
                              aws_ec2ic_done_cb *done, void *arg)
{
    struct ec2ic_req *r;
    struct aws_call *call;
    json_t *in;

    if (!instance_id || !os_user || !public_key || !done)
        return NULL;
    r = calloc(1, sizeof(*r));
    in = json_pack("{s:s, s:s, s:s}", "InstanceId", instance_id,
                   "InstanceOSUser", os_user, "SSHPublicKey", public_key);
    if (!r || !in) {
        free(r);
        json_decref(in);
        return NULL;
    }
    r->done = done;
    r->arg = arg;
    call = aws_call_start(c, "ec2-instance-connect", "SendSSHPublicKey", in,
                          profile, region, ec2ic_done, r);
    json_decref(in);
    if (!call)
        free(r);
    else
        aws_call_set_cleanup(call, free);
    return call;
}
