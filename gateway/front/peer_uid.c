/*
 * peer_uid.c - the owner of a local client's socket, from the kernel's
 * socket table (NETLINK_SOCK_DIAG, inet_diag_req_v2 without NLM_F_DUMP:
 * an exact lookup of one connection, as `ss` does it, not a walk of
 * /proc/net/tcp, whose size grows with every socket on the host).
 *
 * The client's end is the socket whose local side is the peer address
 * and whose remote side is ours; the kernel finds it by exactly that
 * 4-tuple. A remote client has no such socket: -1.
 */
#include "peer_uid.h"

#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#define PEER_UID_TIMEOUT_US 200000

/* An IPv4 client of a dual-stack listener shows as ::ffff:a.b.c.d; its
 * own socket is an IPv4 one. */
static void unmap_v4(struct sockaddr_storage *ss)
{
    const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)ss;
    if (ss->ss_family != AF_INET6 || !IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr))
        return;
    struct sockaddr_in s4 = {.sin_family = AF_INET, .sin_port = s6->sin6_port};
    memcpy(&s4.sin_addr, &s6->sin6_addr.s6_addr[12], 4);
    memset(ss, 0, sizeof(*ss));
    memcpy(ss, &s4, sizeof(s4));
}

/* Address and port of ss into the request's fields. */
static void put_end(const struct sockaddr_storage *ss, __be32 addr[4],
                    __be16 *port)
{
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)ss;
        memcpy(addr, &s4->sin_addr, 4);
        *port = s4->sin_port;
    } else {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)ss;
        memcpy(addr, &s6->sin6_addr, 16);
        *port = s6->sin6_port;
    }
}

long peer_uid_lookup(const struct sockaddr_storage *peer,
                     const struct sockaddr_storage *local)
{
    struct sockaddr_storage p = *peer, l = *local;
    unmap_v4(&p);
    unmap_v4(&l);
    if (p.ss_family != l.ss_family ||
        (p.ss_family != AF_INET && p.ss_family != AF_INET6))
        return -1;
    struct {
        struct nlmsghdr nlh;
        struct inet_diag_req_v2 r;
    } req;
    memset(&req, 0, sizeof(req));
    req.nlh.nlmsg_len = sizeof(req);
    req.nlh.nlmsg_type = SOCK_DIAG_BY_FAMILY;
    req.nlh.nlmsg_flags = NLM_F_REQUEST;
    req.r.sdiag_family = (__u8)p.ss_family;
    req.r.sdiag_protocol = IPPROTO_TCP;
    req.r.idiag_states = ~0u;
    put_end(&p, req.r.id.idiag_src, &req.r.id.idiag_sport);
    put_end(&l, req.r.id.idiag_dst, &req.r.id.idiag_dport);
    req.r.id.idiag_cookie[0] = INET_DIAG_NOCOOKIE;
    req.r.id.idiag_cookie[1] = INET_DIAG_NOCOOKIE;

    long uid = -1;
    int fd = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
    if (fd < 0)
        return -1;
    struct timeval tv = {0, PEER_UID_TIMEOUT_US};
    struct sockaddr_nl kernel = {.nl_family = AF_NETLINK};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    if (sendto(fd, &req, sizeof(req), 0, (struct sockaddr *)&kernel,
               sizeof(kernel)) != (ssize_t)sizeof(req))
        goto out;
    /* Aligned for the nlmsghdr and inet_diag_msg read out of it. */
    union {
        struct nlmsghdr h;
        char bytes[8192];
    } buf;
    ssize_t n = recv(fd, &buf, sizeof(buf), 0);
    if (n <= 0)
        goto out;
    size_t left = (size_t)n;
    for (struct nlmsghdr *h = &buf.h; NLMSG_OK(h, left);
         h = NLMSG_NEXT(h, left)) {
        if (h->nlmsg_type != SOCK_DIAG_BY_FAMILY ||
            h->nlmsg_len < NLMSG_LENGTH(sizeof(struct inet_diag_msg)))
            break; /* NLMSG_ERROR: no such socket here */
        const struct inet_diag_msg *m = NLMSG_DATA(h);
        /* The client's end, not a listener the lookup fell back to. */
        if (m->id.idiag_sport == req.r.id.idiag_sport &&
            m->id.idiag_dport == req.r.id.idiag_dport)
            uid = (long)m->idiag_uid;
        break;
    }
out:
    close(fd);
    return uid;
}
