/*
 * aws_ssm.h - the SSM calls ssmgate makes: StartSession, ResumeSession,
 * TerminateSession, DescribeInstanceInformation. Request building and
 * response parsing over aws_call_start().
 */
#ifndef SSMGATE_AWS_SSM_H
#define SSMGATE_AWS_SSM_H

#include "aws.h"

#define AWS_SSM_SESSION_ID_MAX 128
#define AWS_SSM_TOKEN_MAX      2048
#define AWS_SSM_URL_MAX        2048

struct aws_ssm_session {
    char session_id[AWS_SSM_SESSION_ID_MAX];
    char token[AWS_SSM_TOKEN_MAX];    /* "" from Resume = session is gone */
    char stream_url[AWS_SSM_URL_MAX]; /* may be "" from Resume: keep old */
};

struct aws_ssm_start {
    const char *target;      /* i-..., mi-... */
    const char *document;    /* AWS-StartSSHSession, ... */
    const char *port_number; /* "22"; NULL = omit */
    const char *host;        /* ...ToRemoteHost only; else NULL */
    const char *reason;      /* CloudTrail reason; NULL = omit */
};

/* session is valid during the callback only. */
typedef void aws_ssm_session_cb(void *arg, int status,
                                const struct aws_ssm_session *session,
                                const struct aws_error *err);
typedef void aws_ssm_done_cb(void *arg, int status,
                             const struct aws_error *err);

struct aws_call *aws_ssm_start_session(struct aws_client *c,
                                       const char *profile, const char *region,
                                       const struct aws_ssm_start *req,
                                       aws_ssm_session_cb *done, void *arg);
struct aws_call *aws_ssm_resume_session(struct aws_client *c,
                                        const char *profile, const char *region,
                                        const char *session_id,
                                        aws_ssm_session_cb *done, void *arg);
struct aws_call *aws_ssm_terminate_session(struct aws_client *c,
                                           const char *profile,
                                           const char *region,
                                           const char *session_id,
                                           aws_ssm_done_cb *done, void *arg);

struct aws_ssm_instance {
    char instance_id[32];
    char ping_status[32]; /* Online, ConnectionLost, Inactive */
    char agent_version[32];
    char platform_type[32]; /* Linux, Windows, MacOS */
    char name[256];         /* ComputerName or "" */
    char ip_address[48];    /* IPAddress or "" */
};

/* instances valid during the callback only; n may be 0. */
typedef void aws_ssm_instances_cb(void *arg, int status,
                                  const struct aws_ssm_instance *instances,
                                  size_t n, const struct aws_error *err);

/* DescribeInstanceInformation with a tag:Name filter (all pages). */
struct aws_call *aws_ssm_find_by_name(struct aws_client *c, const char *profile,
                                      const char *region, const char *name,
                                      aws_ssm_instances_cb *done, void *arg);
/* DescribeInstanceInformation with no filter: every managed node the
 * profile sees in the region (all pages, up to 10000). */
struct aws_call *aws_ssm_list_instances(struct aws_client *c,
                                        const char *profile, const char *region,
                                        aws_ssm_instances_cb *done, void *arg);
/* DescribeInstanceInformation with an InstanceIds filter. */
struct aws_call *
aws_ssm_describe_instance(struct aws_client *c, const char *profile,
                          const char *region, const char *instance_id,
                          aws_ssm_instances_cb *done, void *arg);

/*
 * Signing the data channel's WebSocket upgrade, so credentials never leave
 * the AWS layer. auth holds the upgrade headers (Authorization,
 * X-Amz-Date and, for temporary credentials, X-Amz-Security-Token; none
 * when url is already presigned) and the resolved region. Valid during
 * the callback only, and wiped after it.
 */
#define AWS_SSM_AUTH_MAX 3
struct aws_ssm_stream_auth {
    const char *region;
    size_t n;
    const char *name[AWS_SSM_AUTH_MAX];
    const char *value[AWS_SSM_AUTH_MAX];
};
typedef void aws_ssm_sign_cb(void *arg, int status,
                             const struct aws_ssm_stream_auth *auth,
                             const struct aws_error *err);

/* Gets (refreshed) credentials for profile/region and signs a GET of url
 * for ssmmessages. Returns a handle for aws_call_cancel or NULL. */
struct aws_call *aws_ssm_sign_stream_url(struct aws_client *c,
                                         const char *profile,
                                         const char *region, const char *url,
                                         aws_ssm_sign_cb *done, void *arg);

/*
 * The gateway error for a failed SSM or credential call: GW_EUNREACHABLE
 * for an instance that is not there or not connected, GW_EDENIED for
 * permissions, credentials and documents, otherwise status (GW_EAWS or
 * the transport error).
 */
int aws_ssm_error_to_gw(int status, const struct aws_error *err);

#endif
