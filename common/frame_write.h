/* frame_write.h: the one STOMP frame encoder, used by the broker (every
 * frame it sends, MESSAGE included) and by the client library (every frame
 * it sends).
 *
 * A sender at half a million frames a second cannot afford one
 * evbuffer_add per header line, so a frame is written into space reserved
 * at the end of the output buffer (one contiguous extent, sized by an
 * upper bound the caller computes) and committed once. The same writer
 * also fills caller memory (fw_begin_mem), for parts of frames that are
 * built once and copied many times. Escaping is frame.h's. */
#ifndef MQ_FRAME_WRITE_H
#define MQ_FRAME_WRITE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <event2/buffer.h>

#include "common/frame.h"

struct frame_writer {
	struct evbuffer *out;		/* NULL when writing to caller memory */
	struct evbuffer_iovec v;	/* the reserved extent */
	char *p;			/* next byte to write */
	char *start;
	enum stomp_version ver;		/* escaping for headers */
};

/* Bound for one header line of these lengths, escaping included. */
#define FW_HDR_BOUND(nlen, vlen) (2 * ((size_t)(nlen) + (size_t)(vlen)) + 2)
/* Digits of the largest uint64_t. */
#define FW_U64_MAX 20

/* Reserves `bound` bytes at the end of out. */
void fw_begin(struct frame_writer *w, struct evbuffer *out, size_t bound, enum stomp_version ver);
/* Writes into buf, which the caller sized. */
void fw_begin_mem(struct frame_writer *w, char *buf, enum stomp_version ver);

static inline void fw_raw(struct frame_writer *w, const void *p, size_t n)
{
	memcpy(w->p, p, n);
	w->p += n;
}
static inline void fw_char(struct frame_writer *w, char c) { *w->p++ = c; }
void fw_str(struct frame_writer *w, const char *s);
/* "COMMAND\n" */
void fw_cmd(struct frame_writer *w, enum frame_cmd cmd);
/* "name:value\n", both escaped for the writer's version. */
void fw_hdr(struct frame_writer *w, const char *name, size_t nlen, const char *value, size_t vlen);
void fw_hdrs(struct frame_writer *w, const char *name, const char *value);	/* NUL-terminated */
/* Decimal digits, no sign, no terminator. */
void fw_u64(struct frame_writer *w, uint64_t v);
/* Commits what was written (to the buffer, or leaves it in caller
 * memory); returns the bytes written. */
size_t fw_end(struct frame_writer *w);

/* Whole small frames, for the rare ones (CONNECTED, RECEIPT, ERROR):
 * "COMMAND\n", header lines, then content-length (when with_length), the
 * blank line, the body and the NUL. */
void frame_put_cmd(struct evbuffer *out, enum frame_cmd cmd);
/* "name:value\n" escaped for `version` (pass STOMP_1_0 for raw). */
void frame_put_header(struct evbuffer *out, enum stomp_version version,
                      const char *name, const char *value);
void frame_put_headern(struct evbuffer *out, enum stomp_version version,
                       const char *name, size_t nlen, const char *value, size_t vlen);
void frame_put_body(struct evbuffer *out, const void *body, size_t len, bool with_length);

#endif
