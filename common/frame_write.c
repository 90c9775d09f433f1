/* frame_write.c: the STOMP frame encoder. See frame_write.h. */
#include "common/frame_write.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void fw_begin(struct frame_writer *w, struct evbuffer *out, size_t bound, enum stomp_version ver)
{
	w->out = out;
	w->ver = ver;
	if (evbuffer_reserve_space(out, (ev_ssize_t)bound, &w->v, 1) != 1 || w->v.iov_len < bound) {
		/* Only an allocation failure gets here; util.h's policy for
		 * those is to stop with a message. */
		fprintf(stderr, "out of memory reserving %zu bytes for a frame\n", bound);
		abort();
	}
	w->p = w->start = w->v.iov_base;
}

void fw_begin_mem(struct frame_writer *w, char *buf, enum stomp_version ver)
{
	w->out = NULL;
	w->ver = ver;
	w->p = w->start = buf;
}

void fw_str(struct frame_writer *w, const char *s) { fw_raw(w, s, strlen(s)); }

void fw_cmd(struct frame_writer *w, enum frame_cmd cmd)
{
	fw_str(w, frame_cmd_name(cmd));
	*w->p++ = '\n';
}

void fw_hdr(struct frame_writer *w, const char *name, size_t nlen, const char *value, size_t vlen)
{
	w->p += frame_escape(w->p, name, nlen, w->ver);
	*w->p++ = ':';
	w->p += frame_escape(w->p, value, vlen, w->ver);
	*w->p++ = '\n';
}

void fw_hdrs(struct frame_writer *w, const char *name, const char *value)
{
	fw_hdr(w, name, strlen(name), value, strlen(value));
}

static const char digit_pairs[] =
	"00010203040506070809101112131415161718192021222324252627282930313233343536373839"
	"40414243444546474849505152535455565758596061626364656667686970717273747576777879"
	"8081828384858687888990919293949596979899";

void fw_u64(struct frame_writer *w, uint64_t v)
{
	/* Two digits a step from the end of a scratch buffer, then one copy:
	 * runs several times on every delivery (message-id, ack,
	 * delivery-count, content-length). */
	char tmp[FW_U64_MAX];
	char *end = tmp + sizeof tmp, *s = end;
	while (v >= 100) {
		unsigned r = (unsigned)(v % 100);
		v /= 100;
		s -= 2;
		memcpy(s, digit_pairs + 2 * r, 2);
	}
	if (v >= 10) {
		s -= 2;
		memcpy(s, digit_pairs + 2 * v, 2);
	} else {
		*--s = (char)('0' + v);
	}
	memcpy(w->p, s, (size_t)(end - s));
	w->p += end - s;
}

size_t fw_end(struct frame_writer *w)
{
	size_t n = (size_t)(w->p - w->start);
	if (w->out) {
		w->v.iov_len = n;
		evbuffer_commit_space(w->out, &w->v, 1);
	}
	return n;
}

void frame_put_cmd(struct evbuffer *out, enum frame_cmd cmd)
{
	struct frame_writer w;
	fw_begin(&w, out, 24, STOMP_1_0);
	fw_cmd(&w, cmd);
	fw_end(&w);
}

void frame_put_headern(struct evbuffer *out, enum stomp_version version,
                       const char *name, size_t nlen, const char *value, size_t vlen)
{
	struct frame_writer w;
	fw_begin(&w, out, FW_HDR_BOUND(nlen, vlen), version);
	fw_hdr(&w, name, nlen, value, vlen);
	fw_end(&w);
}

void frame_put_header(struct evbuffer *out, enum stomp_version version,
                      const char *name, const char *value)
{
	frame_put_headern(out, version, name, strlen(name), value, strlen(value));
}

void frame_put_body(struct evbuffer *out, const void *body, size_t len, bool with_length)
{
	struct frame_writer w;
	fw_begin(&w, out, 24 + FW_U64_MAX, STOMP_1_0);
	if (with_length) {
		fw_raw(&w, "content-length:", 15);
		fw_u64(&w, len);
		fw_char(&w, '\n');
	}
	fw_char(&w, '\n');
	fw_end(&w);
	if (len)
		evbuffer_add(out, body, len);
	evbuffer_add(out, "", 1);
}
