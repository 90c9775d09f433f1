/* ctl.h: mqsh's side of the broker's control socket (docs/control.md).
 *
 * One command line goes out; "STATUS LENGTH\n" + JSON + "\n" comes back.
 * After `events` the connection carries one JSON object per line instead.
 * Calls block, but give up when *stop becomes true (mqsh's SIGINT flag)
 * or the reply takes longer than the timeout; the connection is then
 * closed, since a late reply would answer the next command, and the next
 * call connects again (which also carries mqsh across a broker restart). */
#ifndef MQSH_CTL_H
#define MQSH_CTL_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>

#include "common/json.h"
#include "common/util.h"

struct ctl;

/* Connects to the socket at path. NULL with one line in err:
 * "could not connect to the broker at PATH: REASON". */
struct ctl *ctl_open(const char *path, unsigned timeout_ms, char *err, size_t errlen);
/* Connects on the first call instead (a `run` that needs no broker of
 * ours must not fail for want of one). */
struct ctl *ctl_lazy(const char *path, unsigned timeout_ms);
void ctl_free(struct ctl *c);		/* NULL is fine */
const char *ctl_path(const struct ctl *c);

struct ctl_reply {
	int status;			/* 200 ok; the families of docs/control.md */
	char *json;			/* owned: the document as received, NUL-terminated */
	size_t len;
	struct json *doc;		/* owned: json parsed */
	const char *message;		/* borrowed from doc; "" when absent */
	const struct json *data;	/* borrowed from doc; NULL when absent */
};

/* Runs one command line. 0 with the reply, whatever its status; -1 when
 * no reply could be had (connection, timeout, interrupted, malformed
 * reply), with the reason in err. r needs no init; fini it after 0. */
int ctl_call(struct ctl *c, const char *line, struct ctl_reply *r, volatile sig_atomic_t *stop,
             char *err, size_t errlen);
void ctl_reply_fini(struct ctl_reply *r);

/* After a 200 reply to `events`: the next event line, without its
 * newline, into line (reset first). 1 for a line, 0 when the broker
 * closed the stream, -1 on error or *stop (err says which). */
int ctl_read_line(struct ctl *c, struct sbuf *line, volatile sig_atomic_t *stop, char *err, size_t errlen);

#endif
