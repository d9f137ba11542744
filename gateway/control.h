/*
 * control.h - the control socket in the runtime directory (0600), and the
 * `ssmgate status` client that reads it.
 *
 * Protocol: the client sends one line, "status\n"; the daemon answers one
 * JSON document {"tunnels":[...]} and closes. Each tunnel object carries
 * id, client, target, user, document, kind, age_s, bytes_up, bytes_down
 * and, for smux sessions, streams. "listeners\n" gets {"listeners":[{kind,
 * name, listen, address}]}: what each listener is bound to (port 0 asks the
 * OS for a port; clients learn it here). Unknown commands get
 * {"error":"..."}.
 */
#ifndef SSMGATE_CONTROL_H
#define SSMGATE_CONTROL_H

#include <jansson.h>
#include <uv.h>

struct config;
struct control;

/* Appends one JSON object per live tunnel to the array. */
typedef void control_list_fn(void *arg, json_t *tunnels);

/* Listens on path (an old socket there is replaced). Returns 0 or a
 * negative error; *out is set on success. */
int control_start(uv_loop_t *loop, const char *path, control_list_fn *list,
                  void *arg, struct control **out);
/* A command's answer: a new JSON document (NULL = out of memory). */
typedef json_t *control_answer_fn(void *arg);
/* Answers the line "name" with fn's document (e.g. "listeners": the bound
 * addresses, for clients of a daemon on port 0). 0 or GW_ELIMIT. */
int control_add(struct control *c, const char *name, control_answer_fn *fn,
                void *arg);
/* Closes the listener and every client; frees when handles are closed. */
void control_stop(struct control *c);

/* Client side: sends command to the daemon whose runtime directory is
 * runtime_dir; its answer object, or NULL when no daemon answers there
 * (errno says why) or the answer is not a JSON object. */
json_t *control_query(const char *runtime_dir, const char *command);

/* `ssmgate status [--json]`: prints the daemon's tunnels. Exit status. */
int cli_status(const struct config *cfg, int argc, char **argv);

#endif
