/* wire.c: what the client library checks before it encodes a header (the
 * encoder itself is the codec's, common/frame_write.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "client_int.h"

/* A header this library is about to send must survive the trip: no NUL
 * is possible in a C string, but a newline (or a colon in the name)
 * cannot be escaped under 1.0, and CONNECT headers are never escaped
 * (callers pass STOMP_1_0 for those). */
bool client_header_ok(struct mq_session *s, const char *what, const char *name,
                      const char *value, enum stomp_version ver)
{
	if (!name || !*name) {
		client_set_err(s, "%s: empty header name", what);
		return false;
	}
	if (!value) {
		client_set_err(s, "%s: header '%s' has no value (NULL)", what, name);
		return false;
	}
	if (ver >= STOMP_1_1)
		return true;
	if (strpbrk(name, ":\r\n")) {
		client_set_err(s, "%s: header name '%s' contains a colon or a line break, "
		               "which cannot be escaped here", what, name);
		return false;
	}
	if (strpbrk(value, "\r\n")) {
		client_set_err(s, "%s: the value of header '%s' contains a line break, "
		               "which cannot be escaped here", what, name);
		return false;
	}
	return true;
}
