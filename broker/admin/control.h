/* control.h: the Unix control socket that mqsh and scripts talk to.
 *
 * Wire format (docs/control.md): the client sends one command per line,
 * words quoted shell-style; the broker answers each with a line
 * "STATUS LENGTH\n" followed by LENGTH bytes of JSON and a newline. After
 * `events`, the connection carries one JSON event object per line until
 * it closes. The socket is created mode 0600: only the broker's own user
 * can administer it; with control_socket_group, mode 0660 and that group. */
#ifndef MQ_CONTROL_H
#define MQ_CONTROL_H

#include <stdbool.h>
#include <stddef.h>

struct broker;

int  control_open(struct broker *b, char *err, size_t errlen);
/* Stops accepting, ends event streams, removes the socket file. */
void control_close(struct broker *b);
void control_free(struct broker *b);

#endif
