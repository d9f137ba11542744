/*
 * rundir.h - the runtime directory: 0700, ours, not a symlink; the 0600
 * files and the sockets in it; removal of what we created at exit.
 *
 * Owns: the directory fd (every file operation is relative to it, so a
 * swapped path cannot redirect us) and the list of names we created.
 * Never chmods or chowns something it did not create: a directory with
 * the wrong owner or mode is refused with a message saying why.
 */
#ifndef SSMGATE_RUNDIR_H
#define SSMGATE_RUNDIR_H

#include <stddef.h>

#define RUNDIR_PATH_MAX  1024
#define RUNDIR_MAX_FILES 16
#define RUNDIR_NAME_MAX  64
/*
 * File names inside the runtime directory (sshconfig.c prints them into
 * the users' ssh config; control.c and main.c open them).
 * RUNDIR_PUBKEY is the current public key line: with IdentitiesOnly yes
 * ssh offers an agent key only when an IdentityFile names its .pub.
 * RUNDIR_KEYFILE is the optional OpenSSH private key (key_file = yes).
 */
#define RUNDIR_AGENT_SOCK   "agent.sock"
#define RUNDIR_CONTROL_SOCK "control.sock"
#define RUNDIR_PUBKEY       "id_ed25519.pub"
#define RUNDIR_KEYFILE      "id_ed25519"

struct rundir {
    char path[RUNDIR_PATH_MAX];
    int dirfd;
    int created_dir; /* we made it: rmdir at close */
    char names[RUNDIR_MAX_FILES][RUNDIR_NAME_MAX]; /* "" = free slot */
};

/* $XDG_RUNTIME_DIR/ssmgate when that is set and absolute, else
 * /tmp/ssmgate-<uid>. Returns 0 or GW_ETOO_BIG. */
int rundir_default_path(char *out, size_t len);

/*
 * Creates path (0700; its parent must exist) or validates an existing one:
 * a real directory (no symlink), owned by the effective uid, mode exactly
 * 0700. path NULL or "" = rundir_default_path. In an existing directory
 * the key files and temp files of an earlier run are removed, unless a
 * daemon still answers on its RUNDIR_AGENT_SOCK (GW_EEXISTS). Returns 0,
 * GW_EDENIED (bad owner/mode/type, with the reason in err), GW_EEXISTS,
 * or a negative errno-based libuv code (UV_ENOENT ...) with err filled.
 * rd->dirfd is -1 after a failure (rundir_close is then a no-op).
 */
int rundir_open(struct rundir *rd, const char *path, char *err, size_t errlen);

/*
 * Writes name atomically with mode 0600: a temporary file (O_EXCL,
 * O_NOFOLLOW), fsync, rename over name, fsync of the directory. Records
 * name for removal at close. Returns 0 or an error.
 */
int rundir_write_file(struct rundir *rd, const char *name, const void *data,
                      size_t len);

/*
 * Writes RUNDIR_PUBKEY: the public line (key_ring.line) and a newline.
 * Call it at start and after every rotation, before anything else.
 */
int rundir_write_pubkey(struct rundir *rd, const char *line);

/*
 * Writes the private key file RUNDIR_KEYFILE (text from key_private_file)
 * and makes the "<file>.pub" beside it match: rewritten with pub_line, or
 * removed when pub_line is NULL. ssh takes the public half from that .pub
 * before the private file, so a stale one would make it offer an old key
 * (pitfall 18). *path_out (may be NULL) gets the private file's path.
 */
int rundir_write_key(struct rundir *rd, const char *text, size_t len,
                     const char *pub_line, char *path_out, size_t path_len);

/*
 * The full path for socket name into out, ready for bind(): a leftover
 * socket there is removed when it is ours and nobody listens on it;
 * GW_EEXISTS when a live server answers on it (another daemon), GW_EDENIED
 * when something else is there (not a socket, not ours), GW_ETOO_BIG when
 * the path does not fit a sockaddr_un. Records name for removal at close.
 */
int rundir_socket_path(struct rundir *rd, const char *name, char *out,
                       size_t len);

/* Removes name now (no error when it is gone already); forgets it. */
int rundir_remove(struct rundir *rd, const char *name);

/* Removes everything we created (and the directory if we made it and it
 * is empty), closes the fd. Safe to call twice. */
void rundir_close(struct rundir *rd);

#endif
