/*
 * control.h - the control socket in the runtime directory (0600), and the
 * `ssmgate status` client that reads it.
 *
 * Protocol: the client sends one line, "status\n"; the daemon answers one
 * JSON document {"tunnels":[...]} and closes. Each tunnel object carries
 * id, client, target, user, document, kind, age_s, bytes_up, bytes_down
 * and, for smux sessions, streams. Unknown commands get {"error":"..."}.
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
/* Closes the listener and every client; frees when handles are closed. */
void control_stop(struct control *c);

/* `ssmgate status [--json]`: prints the daemon's tunnels. Exit status. */
int cli_status(const struct config *cfg, int argc, char **argv);

#endif
