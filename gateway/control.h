/*
 * control.h - the control socket in the runtime directory (0600), and the
 * requests that `ssmgate status` (cli_status.c) and endpoint.c send it.
 *
 * Protocol: the client sends one line, "status\n"; the daemon answers one
 * JSON document {"tunnels":[...], "gateway":{...}} and closes. Each tunnel
 * object carries id, client, target, user, document, kind, age_s,
 * bytes_up, bytes_down, listener, session_id, region and, when known,
 * streams (smux), local_uid and instance; "gateway" holds the daemon's
 * totals (observe.c). "listeners\n" gets {"listeners":[{kind, name,
 * listen, address}]}: what each listener is bound to (port 0 asks the OS
 * for a port; clients learn it here). Unknown commands get
 * {"error":"..."}.
 */
#ifndef SSMGATE_CONTROL_H
#define SSMGATE_CONTROL_H

#include <jansson.h>
#include <uv.h>

struct control;

/* Fills the status document (an empty object) for "status". */
typedef void control_status_fn(void *arg, json_t *doc);

/* Listens on path (an old socket there is replaced). Returns 0 or a
 * negative error; *out is set on success. */
int control_start(uv_loop_t *loop, const char *path, control_status_fn *status,
                  void *arg, struct control **out);
/* A command's answer: a new JSON document (NULL = out of memory). */
typedef json_t *control_answer_fn(void *arg);
/* Answers the line "name" with fn's document (e.g. "listeners": the bound
 * addresses, for clients of a daemon on port 0). 0 or GW_ELIMIT. */
int control_add(struct control *c, const char *name, control_answer_fn *fn,
                void *arg);
/* Closes the listener and every client; frees when handles are closed. */
void control_stop(struct control *c);

/* The client side: sends line to the socket at path and returns the
 * whole answer (malloc'd), or NULL with errno set. Blocking. */
char *control_request(const char *path, const char *line);
/* Sends command to the daemon whose runtime directory is runtime_dir; its
 * answer object, or NULL when no daemon answers there (errno says why) or
 * the answer is not a JSON object. */
json_t *control_query(const char *runtime_dir, const char *command);

#endif
