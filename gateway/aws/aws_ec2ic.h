/*
 * aws_ec2ic.h - EC2 Instance Connect SendSSHPublicKey (key valid 60 s on
 * the instance, per OS user).
 */
#ifndef SSMGATE_AWS_EC2IC_H
#define SSMGATE_AWS_EC2IC_H

#include "aws.h"

typedef void aws_ec2ic_done_cb(void *arg, int status,
                               const struct aws_error *err);

/* public_key is an OpenSSH line ("ssh-ed25519 AAAA... comment"). */
struct aws_call *
aws_ec2ic_send_ssh_public_key(struct aws_client *c, const char *profile,
                              const char *region, const char *instance_id,
                              const char *os_user, const char *public_key,
                              aws_ec2ic_done_cb *done, void *arg);

#endif
