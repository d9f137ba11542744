/*
 * cli_proxy.c - the stdio ProxyCommand. A short-lived process with one
 * tunnel, so plain blocking sockets and poll() are the simplest correct
 * tool: no loop, no buffers beyond one per direction.
 */
#include "cli_proxy.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "common.h"
#include "config.h"
#include "endpoint.h"
#include "secret.h"

static int dial(const char *addr)
{
    char host[CONFIG_ADDR_MAX];
    const char *colon = strrchr(addr, ':');
    if (colon == NULL || (size_t)(colon - addr) >= sizeof(host))
        return -1;
    memcpy(host, addr, colon - addr);
    host[colon - addr] = '\0';
    char *h = host;
    if (h[0] == '[') { /* [::1]:1080 */
        h++;
        h[strcspn(h, "]")] = '\0';
    }
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res, *ai;
    if (getaddrinfo(h, colon + 1, &hints, &res) != 0)
        return -1;
    int fd = -1;
    for (ai = res; ai != NULL; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
        if (fd < 0)
            continue;
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
            break;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    return fd;
}

/* Moves exactly n bytes (reads into p, or writes from it), retrying on
 * EINTR; an early EOF is an error. 0 or -1. */
static int transfer_all(int fd, unsigned char *p, size_t n, int writing)
{
    while (n > 0) {
        ssize_t r = writing ? write(fd, p, n) : read(fd, p, n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        p += r;
        n -= (size_t)r;
    }
    return 0;
}

static int read_exact(int fd, unsigned char *p, size_t n)
{
    return transfer_all(fd, p, n, 0);
}

static int write_all(int fd, const unsigned char *p, size_t n)
{
    return transfer_all(fd, (unsigned char *)p, n, 1); /* only read from */
}

/* Reads the reply head one byte at a time, so not a byte of the tunnel
 * that may follow it is taken from the socket. 0 or -1. */
static int read_head(int fd, char *head, size_t cap)
{
    size_t n = 0;
    while (n + 1 < cap) {
        if (read_exact(fd, (unsigned char *)head + n, 1) != 0)
            return -1;
        n++;
        if (n >= 4 && memcmp(head + n - 4, "\r\n\r\n", 4) == 0) {
            head[n] = '\0';
            return 0;
        }
    }
    return -1;
}

/*
 * HTTP CONNECT to host:port on the daemon's proxy port (it speaks SOCKS
 * and HTTP on one port). HTTP rather than SOCKS because a refusal comes
 * with the daemon's whole reason in the body (an AWS code and message),
 * which ssh shows the user; SOCKS has only a reply code. 0 or -1 with a
 * message printed.
 */
static int http_connect(const struct config *cfg, int fd, const char *host,
                        unsigned port)
{
    char req[1200 + 2 * CONFIG_STR_MAX], head[8192];
    char body[GW_REASON_MAX];
    size_t hlen = strlen(host);
    int n, status;

    if (hlen == 0 || hlen > 255) {
        fprintf(stderr, "ssmgate proxy: host name length must be 1-255\n");
        return -1;
    }
    for (size_t i = 0; i < hlen; i++)
        if ((unsigned char)host[i] <= ' ' || (unsigned char)host[i] >= 0x7f) {
            fprintf(stderr, "ssmgate proxy: bad host name\n");
            return -1;
        }
    n = snprintf(req, sizeof(req), "CONNECT %s:%u HTTP/1.1\r\nHost: %s:%u\r\n",
                 host, port, host, port);
    if (cfg->socks_user[0] != '\0' && cfg->socks_password[0] != '\0') {
        /* The daemon's own credentials, from the same config file. */
        char cred[CONFIG_NAME_MAX + CONFIG_STR_MAX + 2];
        unsigned char b64[2 * (CONFIG_NAME_MAX + CONFIG_STR_MAX) + 8];
        int cl = snprintf(cred, sizeof(cred), "%s:%s", cfg->socks_user,
                          cfg->socks_password);
        EVP_EncodeBlock(b64, (const unsigned char *)cred, cl);
        n += snprintf(req + n, sizeof(req) - (size_t)n,
                      "Proxy-Authorization: Basic %s\r\n", (char *)b64);
        secret_wipe(cred, sizeof(cred));
        secret_wipe(b64, sizeof(b64));
    }
    n += snprintf(req + n, sizeof(req) - (size_t)n, "\r\n");
    int wrc = write_all(fd, (const unsigned char *)req, (size_t)n);
    secret_wipe(req, sizeof(req));
    if (wrc != 0 || read_head(fd, head, sizeof(head)) != 0) {
        fprintf(stderr, "ssmgate proxy: the daemon closed the connection\n");
        return -1;
    }
    if (sscanf(head, "HTTP/1.%*d %d", &status) != 1) {
        fprintf(stderr, "ssmgate proxy: bad reply from the daemon\n");
        return -1;
    }
    if (status == 200)
        return 0;
    /* The status line's text, then the body: the reason, whole. */
    size_t blen = 0;
    const char *cl = strcasestr(head, "\r\nContent-Length:");
    if (cl != NULL)
        blen = strtoul(cl + 17, NULL, 10);
    char *sp = strchr(head, ' ');
    const char *text = "";
    if (sp != NULL && (sp = strchr(sp + 1, ' ')) != NULL) {
        sp[1 + strcspn(sp + 1, "\r\n")] = '\0';
        text = sp + 1;
    }
    if (blen >= sizeof(body))
        blen = sizeof(body) - 1;
    if (blen > 0 && read_exact(fd, (unsigned char *)body, blen) != 0)
        blen = 0;
    body[blen] = '\0';
    while (blen > 0 && (body[blen - 1] == '\n' || body[blen - 1] == '\r'))
        body[--blen] = '\0';
    fprintf(stderr, "ssmgate proxy: %s:%u: %d %s%s%s\n", host, port, status,
            text, blen > 0 ? ": " : "", body);
    return -1;
}

/*
 * Moves what src has (up to cap bytes) to dst: splice(2) where one side is
 * a pipe -- ssh hands a ProxyCommand pipes -- so the bytes never pass
 * through this process (one syscall, no copy); read and write where splice
 * cannot (a terminal, a socketpair), which is then remembered. Returns the
 * bytes moved, 0 at src's EOF, PASS_SRC_FAILED or PASS_DST_FAILED.
 */
#define PASS_SRC_FAILED (-1)
#define PASS_DST_FAILED (-2)

static ssize_t pass_on(int src, int dst, unsigned char *buf, size_t cap,
                       int *no_splice)
{
    ssize_t n;
    if (!*no_splice) {
        do
            n = splice(src, NULL, dst, NULL, cap, SPLICE_F_MOVE);
        while (n < 0 && errno == EINTR);
        if (n >= 0)
            return n;
        if (errno != EINVAL)
            return errno == EPIPE ? PASS_DST_FAILED : PASS_SRC_FAILED;
        *no_splice = 1;
    }
    do
        n = read(src, buf, cap);
    while (n < 0 && errno == EINTR);
    if (n < 0)
        return PASS_SRC_FAILED;
    if (n > 0 && write_all(dst, buf, (size_t)n) != 0)
        return PASS_DST_FAILED;
    return n;
}

/* Copies both ways until each direction has seen EOF. */
static int splice_stdio(int fd)
{
    unsigned char up[65536], down[65536];
    int in_open = 1, sock_open = 1, up_copy = 0, down_copy = 0;
    while (in_open || sock_open) {
        struct pollfd pfd[2] = {{.fd = in_open ? 0 : -1, .events = POLLIN},
                                {.fd = sock_open ? fd : -1, .events = POLLIN}};
        if (poll(pfd, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            return 1;
        }
        if (in_open && (pfd[0].revents & (POLLIN | POLLHUP | POLLERR))) {
            ssize_t n = pass_on(0, fd, up, sizeof(up), &up_copy);
            if (n == PASS_DST_FAILED)
                return 1;
            if (n <= 0) {
                in_open = 0;
                shutdown(fd, SHUT_WR);
            }
        }
        if (sock_open && (pfd[1].revents & (POLLIN | POLLHUP | POLLERR))) {
            ssize_t n = pass_on(fd, 1, down, sizeof(down), &down_copy);
            if (n == PASS_DST_FAILED)
                return 1;
            if (n <= 0) {
                sock_open = 0;
                close(1);
                /* ssh closes its side when the tunnel ends; don't linger
                 * on a stdin that nobody will close. */
                in_open = 0;
            }
        }
    }
    return 0;
}

int cli_proxy(const struct config *cfg, int ask_daemon, int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: ssmgate proxy HOST PORT\n");
        return 2;
    }
    char *end;
    unsigned long port = strtoul(argv[1], &end, 10);
    if (*end != '\0' || port == 0 || port > 65535) {
        fprintf(stderr, "ssmgate proxy: bad port '%s'\n", argv[1]);
        return 2;
    }
    char listen[ENDPOINT_MAX], err[CONFIG_PATH_MAX + 256];
    if (endpoint_resolve(cfg, NULL, ask_daemon, listen, sizeof(listen), err,
                         sizeof(err), NULL) != 0) {
        fprintf(stderr, "ssmgate proxy: %s\n", err);
        return 1;
    }
    int fd = dial(listen);
    if (fd < 0) {
        fprintf(stderr,
                "ssmgate proxy: cannot reach the daemon at %s: %s "
                "(is ssmgate running?)\n",
                listen, strerror(errno));
        return 1;
    }
    int rc = http_connect(cfg, fd, argv[0], (unsigned)port) == 0
                 ? splice_stdio(fd)
                 : 1;
    close(fd);
    return rc;
}
