/*
 * cli_proxy.c - the stdio ProxyCommand. A short-lived process with one
 * tunnel, so plain blocking sockets and poll() are the simplest correct
 * tool: no loop, no buffers beyond one per direction.
 */
#include "cli_proxy.h"

#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "config.h"

static const char *const socks5_reply_text[] = {
    "succeeded",
    "general failure",
    "not allowed by ruleset",
    "network unreachable",
    "host unreachable",
    "connection refused",
    "TTL expired (timed out)",
    "command not supported",
    "address type not supported",
};

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
    if (strcmp(h, "0.0.0.0") == 0)
        h = "127.0.0.1";
    else if (strcmp(h, "::") == 0)
        h = "::1";
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

/* SOCKS5 no-auth CONNECT to host:port; 0 or -1 with a message printed. */
static int socks5_connect(int fd, const char *host, unsigned port)
{
    size_t hlen = strlen(host);
    unsigned char req[4 + 1 + 255 + 2];
    unsigned char rep[4 + 16 + 2];
    if (hlen == 0 || hlen > 255) {
        fprintf(stderr, "ssmgate proxy: host name length must be 1-255\n");
        return -1;
    }
    if (write_all(fd, (const unsigned char *)"\x05\x01\x00", 3) != 0 ||
        read_exact(fd, rep, 2) != 0 || rep[0] != 5 || rep[1] != 0) {
        fprintf(stderr, "ssmgate proxy: the daemon refused the SOCKS "
                        "greeting (socks_user set? use nc -X 5 -P)\n");
        return -1;
    }
    req[0] = 5;
    req[1] = 1;
    req[2] = 0;
    req[3] = 3;
    req[4] = (unsigned char)hlen;
    memcpy(req + 5, host, hlen);
    req[5 + hlen] = (unsigned char)(port >> 8);
    req[6 + hlen] = (unsigned char)port;
    if (write_all(fd, req, 7 + hlen) != 0 || read_exact(fd, rep, 4) != 0) {
        fprintf(stderr, "ssmgate proxy: the daemon closed the connection\n");
        return -1;
    }
    if (rep[1] != 0) {
        const char *why =
            rep[1] < sizeof(socks5_reply_text) / sizeof(socks5_reply_text[0])
                ? socks5_reply_text[rep[1]]
                : "unknown error";
        fprintf(stderr, "ssmgate proxy: %s:%u: %s (see the daemon's log)\n",
                host, port, why);
        return -1;
    }
    size_t rest = rep[3] == 1 ? 4 + 2 : rep[3] == 4 ? 16 + 2 : 0;
    if (rest == 0 || read_exact(fd, rep + 4, rest) != 0) {
        fprintf(stderr, "ssmgate proxy: bad SOCKS reply\n");
        return -1;
    }
    return 0;
}

/* Copies both ways until each direction has seen EOF. */
static int splice_stdio(int fd)
{
    unsigned char up[65536], down[65536];
    int in_open = 1, sock_open = 1;
    while (in_open || sock_open) {
        struct pollfd pfd[2] = {{.fd = in_open ? 0 : -1, .events = POLLIN},
                                {.fd = sock_open ? fd : -1, .events = POLLIN}};
        if (poll(pfd, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            return 1;
        }
        if (in_open && (pfd[0].revents & (POLLIN | POLLHUP | POLLERR))) {
            ssize_t n = read(0, up, sizeof(up));
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0) {
                in_open = 0;
                shutdown(fd, SHUT_WR);
            } else if (write_all(fd, up, (size_t)n) != 0) {
                return 1;
            }
        }
        if (sock_open && (pfd[1].revents & (POLLIN | POLLHUP | POLLERR))) {
            ssize_t n = read(fd, down, sizeof(down));
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0) {
                sock_open = 0;
                close(1);
                /* ssh closes its side when the tunnel ends; don't linger
                 * on a stdin that nobody will close. */
                in_open = 0;
            } else if (write_all(1, down, (size_t)n) != 0) {
                return 1;
            }
        }
    }
    return 0;
}

int cli_proxy(const struct config *cfg, int argc, char **argv)
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
    const char *listen = cfg->n_listen > 0 ? cfg->listen[0] : "127.0.0.1:1080";
    int fd = dial(listen);
    if (fd < 0) {
        fprintf(stderr,
                "ssmgate proxy: cannot reach the daemon at %s: %s "
                "(is ssmgate running?)\n",
                listen, strerror(errno));
        return 1;
    }
    int rc =
        socks5_connect(fd, argv[0], (unsigned)port) == 0 ? splice_stdio(fd) : 1;
    close(fd);
    return rc;
}
