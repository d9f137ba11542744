/*
 * rundir.c - the runtime directory and its files.
 *
 * Model: rundir_open() creates the directory with mkdir(0700) or checks
 * the one that is there, then keeps an O_DIRECTORY|O_NOFOLLOW fd and
 * re-checks owner and mode on that fd (so the checked directory is the one
 * we use). Files are made relative to the fd: temp name with
 * O_CREAT|O_EXCL|O_NOFOLLOW, mode 0600, fsync, renameat, fsync of the
 * directory. Every name we create is recorded and removed by
 * rundir_close(); the directory too if we created it.
 */
#include "rundir.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <openssl/rand.h>
#include <uv.h>

#include "common.h"
#include "log.h"

static void set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    if (err == NULL || errlen == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

int rundir_default_path(char *out, size_t len)
{
    const char *xdg = getenv("XDG_RUNTIME_DIR");
    int n;
    if (xdg != NULL && xdg[0] == '/')
        n = snprintf(out, len, "%s/ssmgate", xdg);
    else
        n = snprintf(out, len, "/tmp/ssmgate-%u", (unsigned)geteuid());
    if (n < 0 || (size_t)n >= len)
        return GW_ETOO_BIG;
    return 0;
}

/* The directory must be ours and private; say exactly what is wrong. */
static int check_dir(const struct stat *st, const char *path, char *err,
                     size_t errlen)
{
    if (S_ISLNK(st->st_mode)) {
        set_err(err, errlen, "runtime dir %s is a symlink; refusing", path);
        return GW_EDENIED;
    }
    if (!S_ISDIR(st->st_mode)) {
        set_err(err, errlen, "runtime dir %s is not a directory", path);
        return GW_EDENIED;
    }
    if (st->st_uid != geteuid()) {
        set_err(err, errlen,
                "runtime dir %s belongs to uid %u, not to us (uid %u); "
                "refusing",
                path, (unsigned)st->st_uid, (unsigned)geteuid());
        return GW_EDENIED;
    }
    if ((st->st_mode & 07777) != 0700) {
        set_err(err, errlen,
                "runtime dir %s has mode %04o, must be 0700; fix it with "
                "chmod 700 or remove it",
                path, (unsigned)(st->st_mode & 07777));
        return GW_EDENIED;
    }
    return 0;
}

/* Is anyone accepting on the unix socket at path? */
static int socket_is_live(const char *path)
{
    struct sockaddr_un sa;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int live;
    if (fd < 0)
        return 1; /* cannot tell: do not remove it */
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
    live = connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 ||
           (errno != ECONNREFUSED && errno != ENOENT);
    close(fd);
    return live;
}

/*
 * A directory we did not just create may hold what an earlier run left
 * behind when it died: refuse if a daemon still answers on its agent
 * socket, else drop the old key files and temp files (private key
 * material has no business outliving its daemon).
 */
static int clean_leftovers(struct rundir *rd, char *err, size_t errlen)
{
    char path[RUNDIR_PATH_MAX + RUNDIR_NAME_MAX];
    struct stat st;
    snprintf(path, sizeof(path), "%s/%s", rd->path, RUNDIR_AGENT_SOCK);
    if (fstatat(rd->dirfd, RUNDIR_AGENT_SOCK, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
        S_ISSOCK(st.st_mode) && socket_is_live(path)) {
        set_err(err, errlen,
                "runtime dir %s is in use: another ssmgate answers on %s",
                rd->path, path);
        return GW_EEXISTS;
    }
    static const char *const old[] = {RUNDIR_KEYFILE, RUNDIR_PUBKEY};
    for (size_t i = 0; i < ARRAY_SIZE(old); i++)
        if (unlinkat(rd->dirfd, old[i], 0) == 0)
            log_info("rundir: removed %s/%s left by an earlier run", rd->path,
                     old[i]);
    int fd = dup(rd->dirfd);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    if (d == NULL) {
        if (fd >= 0)
            close(fd);
        return 0;
    }
    struct dirent *de;
    while ((de = readdir(d)) != NULL)
        if (de->d_name[0] == '.' && strstr(de->d_name, ".tmp-") != NULL)
            unlinkat(rd->dirfd, de->d_name, 0);
    closedir(d);
    return 0;
}

/* errno after a failed call on the runtime dir: its libuv code, and the
 * message in err. */
static int dir_errno(const char *path, char *err, size_t errlen)
{
    int rc = uv_translate_sys_error(errno);
    set_err(err, errlen, "runtime dir %s: %s", path, strerror(errno));
    return rc;
}

/* stat_rc is lstat's or fstat's result for st: the error, or check_dir. */
static int stat_checked(int stat_rc, const struct stat *st, const char *path,
                        char *err, size_t errlen)
{
    if (stat_rc != 0)
        return dir_errno(path, err, errlen);
    return check_dir(st, path, err, errlen);
}

int rundir_open(struct rundir *rd, const char *path, char *err, size_t errlen)
{
    struct stat st;
    int rc;

    memset(rd, 0, sizeof(*rd));
    rd->dirfd = -1;
    if (path == NULL || path[0] == '\0') {
        rc = rundir_default_path(rd->path, sizeof(rd->path));
        if (rc != 0) {
            set_err(err, errlen, "runtime dir path too long");
            return rc;
        }
    } else {
        if (strlen(path) >= sizeof(rd->path)) {
            set_err(err, errlen, "runtime dir path too long");
            return GW_ETOO_BIG;
        }
        snprintf(rd->path, sizeof(rd->path), "%s", path);
    }
    /* Trailing slashes would make lstat follow a symlink. */
    size_t n = strlen(rd->path);
    while (n > 1 && rd->path[n - 1] == '/')
        rd->path[--n] = '\0';

    if (mkdir(rd->path, 0700) == 0) {
        rd->created_dir = 1;
        /* Ours: undo whatever the umask took away. Nobody else can swap
         * it meanwhile (sticky /tmp, or our own XDG_RUNTIME_DIR). */
        chmod(rd->path, 0700);
    } else if (errno != EEXIST) {
        rc = uv_translate_sys_error(errno);
        set_err(err, errlen, "cannot create runtime dir %s: %s", rd->path,
                strerror(errno));
        return rc;
    }
    rc = stat_checked(lstat(rd->path, &st), &st, rd->path, err, errlen);
    if (rc != 0)
        goto fail;
    rd->dirfd = open(rd->path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (rd->dirfd < 0) {
        rc = dir_errno(rd->path, err, errlen);
        goto fail;
    }
    /* The same checks on what we opened: the path may have been swapped. */
    rc = stat_checked(fstat(rd->dirfd, &st), &st, rd->path, err, errlen);
    if (rc != 0)
        goto fail;
    if (rd->created_dir)
        log_debug("rundir: created %s", rd->path);
    else if ((rc = clean_leftovers(rd, err, errlen)) != 0)
        goto fail;
    return 0;

fail:
    if (rd->dirfd >= 0)
        close(rd->dirfd);
    rd->dirfd = -1;
    if (rd->created_dir)
        rmdir(rd->path);
    rd->created_dir = 0;
    return rc;
}

/* A plain file name, nothing that walks the tree. */
static int name_ok(const char *name)
{
    size_t n = strlen(name);
    return n > 0 && n < RUNDIR_NAME_MAX && strchr(name, '/') == NULL &&
           strcmp(name, ".") != 0 && strcmp(name, "..") != 0;
}

static void remember(struct rundir *rd, const char *name)
{
    int free_slot = -1;
    for (int i = 0; i < RUNDIR_MAX_FILES; i++) {
        if (strcmp(rd->names[i], name) == 0)
            return;
        if (free_slot < 0 && rd->names[i][0] == '\0')
            free_slot = i;
    }
    CHECK(free_slot >= 0); /* we create a handful of files, never more */
    snprintf(rd->names[free_slot], RUNDIR_NAME_MAX, "%s", name);
}

static void forget(struct rundir *rd, const char *name)
{
    for (int i = 0; i < RUNDIR_MAX_FILES; i++)
        if (strcmp(rd->names[i], name) == 0)
            rd->names[i][0] = '\0';
}

static int write_all(int fd, const void *data, size_t len)
{
    const char *p = data;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return uv_translate_sys_error(errno);
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

int rundir_write_file(struct rundir *rd, const char *name, const void *data,
                      size_t len)
{
    char tmp[RUNDIR_NAME_MAX + 32];
    uint32_t rnd = 0;
    int fd = -1, rc;

    if (rd->dirfd < 0 || !name_ok(name))
        return GW_EINVAL;
    if (RAND_bytes((uint8_t *)&rnd, sizeof(rnd)) != 1)
        return GW_ECRYPTO;
    snprintf(tmp, sizeof(tmp), ".%s.tmp-%08x", name, rnd);
    fd = openat(rd->dirfd, tmp,
                O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0)
        return uv_translate_sys_error(errno);
    /* The umask may only take bits away; make sure nothing was added. */
    if (fchmod(fd, 0600) != 0) {
        rc = uv_translate_sys_error(errno);
        goto fail;
    }
    rc = write_all(fd, data, len);
    if (rc != 0)
        goto fail;
    if (fsync(fd) != 0) {
        rc = uv_translate_sys_error(errno);
        goto fail;
    }
    if (close(fd) != 0) {
        fd = -1;
        rc = uv_translate_sys_error(errno);
        goto fail;
    }
    fd = -1;
    if (renameat(rd->dirfd, tmp, rd->dirfd, name) != 0) {
        rc = uv_translate_sys_error(errno);
        goto fail;
    }
    remember(rd, name);
    fsync(rd->dirfd);
    return 0;

fail:
    if (fd >= 0)
        close(fd);
    unlinkat(rd->dirfd, tmp, 0);
    return rc;
}

static int full_path(const struct rundir *rd, const char *name, char *out,
                     size_t len)
{
    int n = snprintf(out, len, "%s/%s", rd->path, name);
    if (n < 0 || (size_t)n >= len)
        return GW_ETOO_BIG;
    return 0;
}

int rundir_write_pubkey(struct rundir *rd, const char *line)
{
    char text[512];
    int n = snprintf(text, sizeof(text), "%s\n", line);
    if (n < 0 || (size_t)n >= sizeof(text))
        return GW_ETOO_BIG;
    return rundir_write_file(rd, RUNDIR_PUBKEY, text, (size_t)n);
}

int rundir_write_key(struct rundir *rd, const char *text, size_t len,
                     const char *pub_line, char *path_out, size_t path_len)
{
    int rc;

    /* ssh prefers <file>.pub over the public half inside the file: it
     * must always be the same key, or absent. */
    if (pub_line != NULL) {
        rc = rundir_write_pubkey(rd, pub_line);
        if (rc != 0)
            return rc;
    } else if (rd->dirfd >= 0 && unlinkat(rd->dirfd, RUNDIR_PUBKEY, 0) == 0) {
        forget(rd, RUNDIR_PUBKEY);
        log_info("rundir: removed %s/%s", rd->path, RUNDIR_PUBKEY);
    }
    rc = rundir_write_file(rd, RUNDIR_KEYFILE, text, len);
    if (rc != 0)
        return rc;
    if (path_out != NULL)
        return full_path(rd, RUNDIR_KEYFILE, path_out, path_len);
    return 0;
}

int rundir_socket_path(struct rundir *rd, const char *name, char *out,
                       size_t len)
{
    struct sockaddr_un sa;
    struct stat st;
    int rc;

    if (rd->dirfd < 0 || !name_ok(name))
        return GW_EINVAL;
    rc = full_path(rd, name, out, len);
    if (rc != 0)
        return rc;
    if (strlen(out) >= sizeof(sa.sun_path)) {
        log_error("rundir: socket path %s is longer than %zu bytes", out,
                  sizeof(sa.sun_path) - 1);
        return GW_ETOO_BIG;
    }
    if (fstatat(rd->dirfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
        if (errno == ENOENT)
            goto ok;
        return uv_translate_sys_error(errno);
    }
    if (!S_ISSOCK(st.st_mode) || st.st_uid != geteuid()) {
        log_error("rundir: %s exists and is not our socket; refusing", out);
        return GW_EDENIED;
    }
    if (socket_is_live(out)) {
        log_error("rundir: %s is in use (another ssmgate running?)", out);
        return GW_EEXISTS;
    }
    if (unlinkat(rd->dirfd, name, 0) != 0 && errno != ENOENT)
        return uv_translate_sys_error(errno);
    log_info("rundir: removed stale socket %s", out);
ok:
    remember(rd, name);
    return 0;
}

int rundir_remove(struct rundir *rd, const char *name)
{
    if (rd->dirfd < 0 || !name_ok(name))
        return GW_EINVAL;
    forget(rd, name);
    if (unlinkat(rd->dirfd, name, 0) != 0 && errno != ENOENT)
        return uv_translate_sys_error(errno);
    return 0;
}

void rundir_close(struct rundir *rd)
{
    if (rd->dirfd < 0)
        return;
    for (int i = 0; i < RUNDIR_MAX_FILES; i++) {
        if (rd->names[i][0] == '\0')
            continue;
        if (unlinkat(rd->dirfd, rd->names[i], 0) != 0 && errno != ENOENT)
            log_warn("rundir: cannot remove %s/%s: %s", rd->path, rd->names[i],
                     strerror(errno));
        rd->names[i][0] = '\0';
    }
    close(rd->dirfd);
    rd->dirfd = -1;
    if (rd->created_dir && rmdir(rd->path) != 0 && errno != ENOTEMPTY)
        log_warn("rundir: cannot remove %s: %s", rd->path, strerror(errno));
    rd->created_dir = 0;
}
