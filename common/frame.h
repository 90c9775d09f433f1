/* frame.h: the STOMP codec's parser: evbuffer in, struct frame out.
 *
 * No sockets here: the parser works on an input evbuffer that a connection
 * (broker side) or a session (client library) fills; frame_write.h is the
 * encoder.
 *
 * Parsing happens in place. frame_parse() first scans the header block
 * without touching it, checking every limit before anything is buffered
 * for good, and learns content-length; once the whole frame has arrived
 * it makes the frame contiguous (evbuffer_pullup) and decodes the headers
 * where they lie. The frame's pointers stay valid until frame_consume(),
 * which drains the frame from the buffer. So a header is never copied, and
 * a body is copied at most once: by whoever keeps it (msg_new). Decoding
 * writes into the buffer, so its memory must be writable (evbuffers that a
 * socket fills always are). */
#ifndef MQ_FRAME_H
#define MQ_FRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct evbuffer;

enum frame_cmd {
	CMD_UNKNOWN = 0,	/* a command we do not know; see frame.cmd_name */
	/* client frames */
	CMD_CONNECT,
	CMD_STOMP,
	CMD_SEND,
	CMD_SUBSCRIBE,
	CMD_UNSUBSCRIBE,
	CMD_ACK,
	CMD_NACK,
	CMD_BEGIN,
	CMD_COMMIT,
	CMD_ABORT,
	CMD_DISCONNECT,
	/* server frames */
	CMD_CONNECTED,
	CMD_MESSAGE,
	CMD_RECEIPT,
	CMD_ERROR,
	CMD_COUNT
};

/* Versions as integers so that comparisons read naturally. */
enum stomp_version {
	STOMP_1_0 = 10,
	STOMP_1_1 = 11,
	STOMP_1_2 = 12,
};

enum frame_status {
	FRAME_OK,		/* a whole frame is in `f`; call frame_consume() after use */
	FRAME_NEED_MORE,	/* not enough bytes yet; nothing was consumed but heart-beats */
	FRAME_ERROR,		/* malformed or over a limit; reason in err. Close the peer. */
};

struct frame_limits {
	size_t max_frame;	/* a body, bytes (the header block: max_headers, max_header_line) */
	unsigned max_headers;	/* header lines per frame */
	size_t max_header_line;	/* one line (the command line too), bytes */
};

/* The defaults documented in docs/protocol.md. */
#define FRAME_DEFAULT_MAX_FRAME (16u << 20)	/* 16 MiB */
#define FRAME_DEFAULT_MAX_HEADERS 128
#define FRAME_DEFAULT_MAX_HEADER_LINE 8192

/* Headers the broker reads on every frame, found once while decoding so
 * that handlers do not scan the header list again for each. */
enum frame_known {
	HDR_DESTINATION,
	HDR_RECEIPT,
	HDR_TRANSACTION,
	HDR_ID,
	HDR_ACK,
	HDR_SUBSCRIPTION,
	HDR_MESSAGE_ID,
	HDR_PERSISTENT,
	HDR_REPLY_TO,
	HDR_EXPIRES,
	HDR_EXPIRATION,
	HDR_X_MESSAGE_TTL,
	HDR_KNOWN_COUNT
};

struct frame_hdr {
	char *name;		/* NUL-terminated, decoded, inside the input buffer */
	char *value;
	uint32_t name_len;
	uint32_t value_len;	/* decoded values may contain no NUL, so strlen agrees */
};

/* Where a parse left off, so that a frame arriving in pieces is scanned
 * once, not once per piece. Zero it before the first call. */
struct frame_scan {
	size_t pos;		/* bytes of the header block scanned so far */
	size_t lines;		/* complete lines seen */
	size_t hdr_end;		/* offset just past the blank line; 0 = not found */
	size_t body_scan;	/* NUL search progress when there is no content-length */
	uint64_t content_length;	/* valid when has_length */
	bool has_length;
	enum frame_cmd cmd;
};

struct frame {
	enum frame_cmd cmd;
	char cmd_name[16];		/* as received, truncated; for error text */
	struct frame_hdr *hdrs;		/* owned; reused across frames */
	unsigned nhdrs;
	unsigned hdr_cap;
	char *body;			/* inside the input buffer or `whole`; NUL follows it */
	size_t body_len;
	bool has_content_length;
	const char *known[HDR_KNOWN_COUNT];	/* first value of each, or NULL */
	size_t total;			/* bytes frame_consume() will drain */
	size_t skipped_eols;		/* heart-beat EOLs drained before this frame */
	/* A frame that spans the input's chains is copied here rather than
	 * pulled up: evbuffer_pullup() would allocate a chain rounded up to a
	 * power of two for every such frame, and the holes those leave
	 * fragment the heap between large messages (see frame_parse). */
	char *whole;			/* owned; reused across frames */
	size_t whole_cap;
};

void frame_init(struct frame *f);
void frame_fini(struct frame *f);

/* Parses the next frame from `in`. `version` selects header decoding:
 * 1.0 none, 1.1 \n \c \\, 1.2 also \r (and undefined escapes are errors).
 * CONNECT, STOMP and CONNECTED frames are never decoded, as the 1.1 and 1.2
 * specifications require. Heart-beat EOLs before a frame are drained and
 * counted in f->skipped_eols. On FRAME_ERROR, err names what was wrong and
 * in which frame, e.g. "header line too long: 9000 bytes (limit 8192) in
 * SEND frame". */
enum frame_status frame_parse(struct evbuffer *in, struct frame_scan *scan,
                              struct frame *f, const struct frame_limits *lim,
                              enum stomp_version version, char *err, size_t errlen);

/* Drains the frame returned by the last FRAME_OK and resets `scan`. */
void frame_consume(struct evbuffer *in, struct frame_scan *scan, struct frame *f);

/* First occurrence wins, as the specifications say for repeated headers. */
static inline const char *frame_known(const struct frame *f, enum frame_known k)
{
	return f->known[k];
}
const char *frame_get(const struct frame *f, const char *name);
const struct frame_hdr *frame_get_hdr(const struct frame *f, const char *name);

const char *frame_cmd_name(enum frame_cmd cmd);
enum frame_cmd frame_cmd_from(const char *s, size_t len);
/* Frames whose headers are never escaped (CONNECT, STOMP, CONNECTED). */
bool frame_cmd_raw_headers(enum frame_cmd cmd);

/* ---- writing ---- */

/* Escaping for one header name or value under `version`; returns the
 * escaped length written to dst, which needs 2 * len bytes at most. */
size_t frame_escape(char *dst, const char *src, size_t len, enum stomp_version version);
/* Decodes in place; returns the new length, or -1 on an undefined escape
 * (only an error in 1.2; 1.1 keeps it as written). */
long frame_unescape(char *s, size_t len, enum stomp_version version);

#endif
