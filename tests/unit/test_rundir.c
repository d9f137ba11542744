/* Unit tests for rundir.c: creation, refusal of unsafe directories,
 * atomic 0600 files, the key file, stale and live sockets, cleanup. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "common.h"
#include <uv.h>

#include "rundir.h"
#include "testutil.h"

struct t {
    char tmp[64];
    char dir[128];
};

static int setup(void **state)
{
    struct t *t = calloc(1, sizeof(*t));
    snprintf(t->tmp, sizeof(t->tmp), "/tmp/ssmgate-rundir-XXXXXX");
    CHECK(mkdtemp(t->tmp) != NULL);
    snprintf(t->dir, sizeof(t->dir), "%s/run", t->tmp);
    *state = t;
    return 0;
}

static int teardown(void **state)
{
    struct t *t = *state;
    char cmd[256];
    snprintf(cmd, sizeof(cmd), "chmod -R u+rwx %s; rm -rf %s", t->tmp, t->tmp);
    CHECK(system(cmd) == 0);
    free(t);
    return 0;
}

static mode_t mode_of(const char *path)
{
    struct stat st;
    if (lstat(path, &st) != 0)
        return (mode_t)-1;
    return st.st_mode & 07777;
}

static int exists(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0;
}

static int count_entries(const char *dir)
{
    int n = 0;
    DIR *d = opendir(dir);
    struct dirent *de;
    CHECK(d != NULL);
    while ((de = readdir(d)) != NULL)
        if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
            n++;
    closedir(d);
    return n;
}

static void test_default_path(void **state)
{
    char p[256], want[64];
    char *old = getenv("XDG_RUNTIME_DIR");
    char *saved = old ? strdup(old) : NULL;

    setenv("XDG_RUNTIME_DIR", "/run/user/1234", 1);
    assert_int_equal(rundir_default_path(p, sizeof(p)), 0);
    assert_string_equal(p, "/run/user/1234/ssmgate");
    setenv("XDG_RUNTIME_DIR", "relative", 1); /* ignored */
    assert_int_equal(rundir_default_path(p, sizeof(p)), 0);
    snprintf(want, sizeof(want), "/tmp/ssmgate-%u", (unsigned)geteuid());
    assert_string_equal(p, want);
    unsetenv("XDG_RUNTIME_DIR");
    assert_int_equal(rundir_default_path(p, sizeof(p)), 0);
    assert_string_equal(p, want);
    assert_int_equal(rundir_default_path(p, 5), GW_ETOO_BIG);
    if (saved) {
        setenv("XDG_RUNTIME_DIR", saved, 1);
        free(saved);
    }
}

static void test_create_and_remove(void **state)
{
    struct t *t = *state;
    struct rundir rd;
    char err[256] = "";
    mode_t old = umask(0);
    assert_int_equal(rundir_open(&rd, t->dir, err, sizeof(err)), 0);
    umask(old);
    assert_int_equal(mode_of(t->dir), 0700);
    assert_int_equal(rundir_write_file(&rd, "control.info", "x", 1), 0);
    rundir_close(&rd);
    assert_false(exists(t->dir));
    rundir_close(&rd); /* twice is fine */

    /* A umask that strips owner bits does not stop us. */
    old = umask(0277);
    assert_int_equal(rundir_open(&rd, t->dir, err, sizeof(err)), 0);
    umask(old);
    assert_int_equal(mode_of(t->dir), 0700);
    rundir_close(&rd);

    /* Trailing slash and a missing parent. */
    char p[256];
    snprintf(p, sizeof(p), "%s/", t->dir);
    assert_int_equal(rundir_open(&rd, p, err, sizeof(err)), 0);
    assert_string_equal(rd.path, t->dir);
    rundir_close(&rd);
    snprintf(p, sizeof(p), "%s/no/such", t->tmp);
    assert_int_equal(rundir_open(&rd, p, err, sizeof(err)), UV_ENOENT);
    assert_non_null(strstr(err, "cannot create"));
}

static void test_existing_ok_kept(void **state)
{
    struct t *t = *state;
    struct rundir rd;
    char err[256];
    char other[256];
    assert_int_equal(mkdir(t->dir, 0700), 0);
    snprintf(other, sizeof(other), "%s/not-ours", t->dir);
    FILE *f = fopen(other, "w");
    fclose(f);
    assert_int_equal(rundir_open(&rd, t->dir, err, sizeof(err)), 0);
    assert_int_equal(rundir_write_file(&rd, "a", "1", 1), 0);
    rundir_close(&rd);
    /* Ours removed, the directory and the stranger's file kept. */
    assert_true(exists(t->dir));
    assert_true(exists(other));
    assert_int_equal(count_entries(t->dir), 1);
}

static void test_refuse_unsafe(void **state)
{
    struct t *t = *state;
    struct rundir rd;
    char err[256], target[256], file[256];

    /* 0755: refused, and left as it was. */
    assert_int_equal(mkdir(t->dir, 0755), 0);
    chmod(t->dir, 0755);
    err[0] = '\0';
    assert_int_equal(rundir_open(&rd, t->dir, err, sizeof(err)), GW_EDENIED);
    assert_non_null(strstr(err, "0755"));
    assert_int_equal(mode_of(t->dir), 0755);
    assert_true(exists(t->dir));
    rundir_close(&rd); /* harmless after a failed open */
    rmdir(t->dir);

    /* 0710 (group bit) too. */
    assert_int_equal(mkdir(t->dir, 0700), 0);
    chmod(t->dir, 0710);
    assert_int_equal(rundir_open(&rd, t->dir, err, sizeof(err)), GW_EDENIED);
    rmdir(t->dir);

    /* A symlink to a perfectly good directory. */
    snprintf(target, sizeof(target), "%s/real", t->tmp);
    assert_int_equal(mkdir(target, 0700), 0);
    assert_int_equal(symlink(target, t->dir), 0);
    assert_int_equal(rundir_open(&rd, t->dir, err, sizeof(err)), GW_EDENIED);
    assert_non_null(strstr(err, "symlink"));
    unlink(t->dir);

    /* A regular file. */
    snprintf(file, sizeof(file), "%s", t->dir);
    FILE *f = fopen(file, "w");
    fclose(f);
    assert_int_equal(rundir_open(&rd, t->dir, err, sizeof(err)), GW_EDENIED);
    assert_non_null(strstr(err, "not a directory"));
    unlink(file);

    /* Someone else's directory (needs root to set up). */
    if (geteuid() == 0) {
        assert_int_equal(mkdir(t->dir, 0700), 0);
        assert_int_equal(chown(t->dir, 65534, 65534), 0);
        assert_int_equal(rundir_open(&rd, t->dir, err, sizeof(err)),
                         GW_EDENIED);
        assert_non_null(strstr(err, "belongs to uid 65534"));
        struct stat st;
        assert_int_equal(lstat(t->dir, &st), 0);
        assert_int_equal(st.st_uid, 65534);
        rmdir(t->dir);
    }
}

static void test_write_file(void **state)
{
    struct t *t = *state;
    struct rundir rd;
    char err[256], path[256], buf[64], victim[256], lnk[256];
    assert_int_equal(rundir_open(&rd, t->dir, err, sizeof(err)), 0);

    mode_t old = umask(0);
    assert_int_equal(rundir_write_file(&rd, "f", "first", 5), 0);
    umask(old);
    snprintf(path, sizeof(path), "%s/f", t->dir);
    assert_int_equal(mode_of(path), 0600);
    assert_int_equal(rundir_write_file(&rd, "f", "second!", 7), 0);
    FILE *f = fopen(path, "r");
    size_t n = fread(buf, 1, sizeof(buf), f);
    fclose(f);
    assert_int_equal(n, 7);
    assert_memory_equal(buf, "second!", 7);
    assert_int_equal(count_entries(t->dir), 1); /* no temp files left */

    /* A symlink planted at the name is replaced, never followed. */
    snprintf(victim, sizeof(victim), "%s/victim", t->tmp);
    f = fopen(victim, "w");
    fputs("keep", f);
    fclose(f);
    snprintf(lnk, sizeof(lnk), "%s/g", t->dir);
    assert_int_equal(symlink(victim, lnk), 0);
    assert_int_equal(rundir_write_file(&rd, "g", "new", 3), 0);
    struct stat st;
    assert_int_equal(lstat(lnk, &st), 0);
    assert_true(S_ISREG(st.st_mode));
    f = fopen(victim, "r");
    n = fread(buf, 1, sizeof(buf), f);
    fclose(f);
    assert_memory_equal(buf, "keep", 4);

    /* Names that walk out. */
    assert_int_equal(rundir_write_file(&rd, "../x", "", 0), GW_EINVAL);
    assert_int_equal(rundir_write_file(&rd, "..", "", 0), GW_EINVAL);
    assert_int_equal(rundir_write_file(&rd, "", "", 0), GW_EINVAL);

    /* Empty content is fine; removal forgets the name. */
    assert_int_equal(rundir_write_file(&rd, "empty", "", 0), 0);
    assert_int_equal(rundir_remove(&rd, "empty"), 0);
    assert_int_equal(rundir_remove(&rd, "empty"), 0);
    rundir_close(&rd);
    assert_false(exists(t->dir));
}

static void test_key_file(void **state)
{
    struct t *t = *state;
    struct rundir rd;
    char err[256], path[256], pub[256];
    assert_int_equal(rundir_open(&rd, t->dir, err, sizeof(err)), 0);
    snprintf(pub, sizeof(pub), "%s/%s", t->dir, RUNDIR_PUBKEY);

    /* The public line alone (agent-only mode). */
    assert_int_equal(rundir_write_pubkey(&rd, "ssh-ed25519 AAAA1 ssmgate"), 0);
    assert_true(testutil_file_equals(pub, "ssh-ed25519 AAAA1 ssmgate\n"));

    /* A stale .pub from an earlier key is rewritten to match... */
    FILE *f = fopen(pub, "w");
    fputs("ssh-ed25519 AAAAold old\n", f);
    fclose(f);
    assert_int_equal(rundir_write_key(&rd, "KEY1\n", 5,
                                      "ssh-ed25519 AAAA2 ssmgate", path,
                                      sizeof(path)),
                     0);
    assert_true(testutil_file_equals(pub, "ssh-ed25519 AAAA2 ssmgate\n"));
    assert_true(testutil_file_equals(path, "KEY1\n"));
    assert_int_equal(mode_of(path), 0600);
    char want[256];
    snprintf(want, sizeof(want), "%s/%s", t->dir, RUNDIR_KEYFILE);
    assert_string_equal(path, want);

    /* ...or removed when the caller keeps no public file. */
    assert_int_equal(rundir_write_key(&rd, "KEY2\n", 5, NULL, NULL, 0), 0);
    assert_false(exists(pub));
    assert_true(testutil_file_equals(path, "KEY2\n"));
    assert_int_equal(count_entries(t->dir), 1);
    rundir_close(&rd);
    assert_false(exists(path));
}

static int bind_unix(const char *path, int do_listen)
{
    struct sockaddr_un sa;
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
    CHECK(bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0);
    if (do_listen)
        CHECK(listen(fd, 1) == 0);
    return fd;
}

static void test_sockets(void **state)
{
    struct t *t = *state;
    struct rundir rd;
    char err[256], path[256], want[256];
    assert_int_equal(rundir_open(&rd, t->dir, err, sizeof(err)), 0);
    snprintf(want, sizeof(want), "%s/agent.sock", t->dir);

    /* Nothing there. */
    assert_int_equal(rundir_socket_path(&rd, "agent.sock", path, sizeof(path)),
                     0);
    assert_string_equal(path, want);

    /* A stale socket of ours (a daemon that died): removed. */
    int fd = bind_unix(path, 0);
    close(fd);
    assert_true(exists(path));
    assert_int_equal(rundir_socket_path(&rd, "agent.sock", path, sizeof(path)),
                     0);
    assert_false(exists(path));

    /* A live one (another daemon): refused and left alone. */
    fd = bind_unix(path, 1);
    assert_int_equal(rundir_socket_path(&rd, "agent.sock", path, sizeof(path)),
                     GW_EEXISTS);
    assert_true(exists(path));
    close(fd);
    unlink(path);

    /* Not a socket: refused and left alone. */
    FILE *f = fopen(path, "w");
    fclose(f);
    assert_int_equal(rundir_socket_path(&rd, "agent.sock", path, sizeof(path)),
                     GW_EDENIED);
    assert_true(exists(path));
    unlink(path);

    /* Too long for sockaddr_un. */
    char name[RUNDIR_NAME_MAX];
    memset(name, 'n', sizeof(name) - 1);
    name[sizeof(name) - 1] = '\0';
    char longdir[256];
    snprintf(longdir, sizeof(longdir), "%s/%s", t->tmp,
             "dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd");
    struct rundir rd2;
    assert_int_equal(rundir_open(&rd2, longdir, err, sizeof(err)), 0);
    assert_int_equal(rundir_socket_path(&rd2, name, path, sizeof(path)),
                     GW_ETOO_BIG);
    rundir_close(&rd2);

    /* Close removes the socket a server left behind. */
    assert_int_equal(rundir_socket_path(&rd, "agent.sock", path, sizeof(path)),
                     0);
    fd = bind_unix(path, 1);
    close(fd);
    rundir_close(&rd);
    assert_false(exists(path));
    assert_false(exists(t->dir));
}

/* Leftovers of a crashed run go; a live daemon's directory is refused. */
static void test_leftovers(void **state)
{
    struct t *t = *state;
    struct rundir rd;
    char err[256], p[256], sock[256];
    assert_int_equal(mkdir(t->dir, 0700), 0);
    static const char *const names[] = {RUNDIR_KEYFILE, RUNDIR_PUBKEY,
                                        ".id_ed25519.tmp-1234abcd", "keep"};
    for (size_t i = 0; i < ARRAY_SIZE(names); i++) {
        snprintf(p, sizeof(p), "%s/%s", t->dir, names[i]);
        FILE *f = fopen(p, "w");
        fclose(f);
    }
    snprintf(sock, sizeof(sock), "%s/%s", t->dir, RUNDIR_AGENT_SOCK);
    int fd = bind_unix(sock, 1);
    assert_int_equal(rundir_open(&rd, t->dir, err, sizeof(err)), GW_EEXISTS);
    assert_non_null(strstr(err, "another ssmgate"));
    assert_int_equal(rd.dirfd, -1);
    assert_int_equal(count_entries(t->dir), 5); /* nothing touched */
    close(fd);

    /* The daemon died: its socket is stale now. */
    assert_int_equal(rundir_open(&rd, t->dir, err, sizeof(err)), 0);
    assert_int_equal(count_entries(t->dir), 2); /* "keep" + the socket */
    snprintf(p, sizeof(p), "%s/keep", t->dir);
    assert_true(exists(p));
    assert_int_equal(
        rundir_socket_path(&rd, RUNDIR_AGENT_SOCK, sock, sizeof(sock)), 0);
    assert_false(exists(sock));
    rundir_close(&rd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_default_path),
        cmocka_unit_test_setup_teardown(test_create_and_remove, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_existing_ok_kept, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refuse_unsafe, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_key_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sockets, setup, teardown),
        cmocka_unit_test_setup_teardown(test_leftovers, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
