/* wire.c: building frames straight into the output evbuffer.
 *
 * A producer at half a million messages a second cannot afford one
 * evbuffer_add per header line, so a frame is written into space reserved
 * at the end of the output buffer (one contiguous extent, sized by an upper
 * bound the caller computes) and committed once. Escaping is frame.h's. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "client_int.h"

void wb_begin(struct wb *w, struct evbuffer *out, size_t bound, enum stomp_version ver)
{
	w->out = out;
	w->ver = ver;
	if (evbuffer_reserve_space(out, (ev_ssize_t)bound, &w->v, 1) != 1 || w->v.iov_len < bound) {
		/* Only an allocation failure gets here; util.h's policy for
		 * those is to stop with a message. */
		fprintf(stderr, "out of memory reserving %zu bytes for a frame\n", bound);
		abort();
	}
	w->p = w->v.iov_base;
}

void wb_raw(struct wb *w, const void *p, size_t n)
{
	memcpy(w->p, p, n);
	w->p += n;
}

void wb_str(struct wb *w, const char *s) { wb_raw(w, s, strlen(s)); }

void wb_hdr(struct wb *w, const char *name, size_t nlen, const char *value, size_t vlen)
{
	w->p += frame_escape(w->p, name, nlen, w->ver);
	*w->p++ = ':';
	w->p += frame_escape(w->p, value, vlen, w->ver);
	*w->p++ = '\n';
}

void wb_hdrs(struct wb *w, const char *name, const char *value)
{
	wb_hdr(w, name, strlen(name), value, strlen(value));
}

void wb_u64(struct wb *w, uint64_t v)
{
	char tmp[WB_U64_MAX];
	size_t n = 0;
	do {
		tmp[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	while (n)
		*w->p++ = tmp[--n];
}

size_t wb_end(struct wb *w)
{
	size_t n = (size_t)(w->p - (char *)w->v.iov_base);
	w->v.iov_len = n;
	evbuffer_commit_space(w->out, &w->v, 1);
	return n;
}

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
