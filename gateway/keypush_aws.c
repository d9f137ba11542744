/*
 * keypush_aws.c - the real SendSSHPublicKey behind struct keypush_api.
 *
 * A separate file so that keypush.o does not reference the AWS layer:
 * tests that drive keypush with a fake link without aws.c.
 */
#include "keypush.h"

static struct aws_call *
keypush_aws_send(void *ctx, const char *profile, const char *region,
                 const char *instance_id, const char *os_user,
                 const char *public_key, aws_ec2ic_done_cb *done, void *arg)
{
    return aws_ec2ic_send_ssh_public_key(ctx, profile, region, instance_id,
                                         os_user, public_key, done, arg);
}

static void keypush_aws_cancel(void *ctx, struct aws_call *call)
{
    aws_call_cancel(call);
}

struct keypush_api keypush_aws_api(struct aws_client *client)
{
    struct keypush_api api = {keypush_aws_send, keypush_aws_cancel, client};
    return api;
}
