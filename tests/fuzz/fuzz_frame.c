/* fuzz_frame.c: the STOMP codec on arbitrary bytes.
 *
 * Input: byte 0 picks the version (1.0, 1.1, 1.2) and small or default
 * limits, byte 1 seeds the split points; the rest is the stream a peer
 * sends. The stream is parsed twice: whole, and in pieces of 1 to 64
 * bytes, the way TCP may deliver it. Both must give the same frames and
 * end the same way (an error, or waiting for more), since a connection
 * must not behave differently with how its bytes arrived. Each frame of
 * 1.1 or 1.2 whose headers are escaped is written back with the encoder
 * and must parse to the same headers and body (see expressible()). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "common/frame.h"
#include "common/frame_write.h"
#include "common/util.h"

static const struct frame_limits small = { 4096, 8, 128 };
/* For a frame written back: escaping may double a line, and
 * content-length adds a header. */
static const struct frame_limits roomy = { 1u << 30, 1u << 20, 1u << 30 };
static const struct frame_limits dflt = {
	FRAME_DEFAULT_MAX_FRAME, FRAME_DEFAULT_MAX_HEADERS, FRAME_DEFAULT_MAX_HEADER_LINE
};

static bool same_bytes(const struct sbuf *a, const struct sbuf *b)
{
	return a->len == b->len && (a->len == 0 || memcmp(a->buf, b->buf, a->len) == 0);
}

/* The frame as bytes, for comparing parses. */
static void digest(struct sbuf *d, const struct frame *f)
{
	sbuf_printf(d, "%d %u %zu|", (int)f->cmd, f->nhdrs, f->body_len);
	for (unsigned i = 0; i < f->nhdrs; i++) {
		if (strlen(f->hdrs[i].name) != f->hdrs[i].name_len || strlen(f->hdrs[i].value) != f->hdrs[i].value_len)
			abort();	/* frame.h: decoded names and values hold no NUL */
		sbuf_add(d, f->hdrs[i].name, f->hdrs[i].name_len + 1);
		sbuf_add(d, f->hdrs[i].value, f->hdrs[i].value_len + 1);
	}
	sbuf_add(d, f->body, f->body_len);
	if (f->body[f->body_len] != 0)
		abort();	/* frame.h: a NUL follows the body */
}

/* Whether the encoder can say f's headers in v. 1.1 has no escape for
 * \r, so a value ending in one (a "\r\r\n" line end) loses it on the way
 * back: a limit of that version, not of the codec. */
static bool expressible(const struct frame *f, enum stomp_version v)
{
	if (v < STOMP_1_1 || frame_cmd_raw_headers(f->cmd))
		return false;
	for (unsigned i = 0; v == STOMP_1_1 && i < f->nhdrs; i++)
		if (f->hdrs[i].value_len && f->hdrs[i].value[f->hdrs[i].value_len - 1] == '\r')
			return false;
	return true;
}

/* Encodes f again and parses it back: the same headers and body. */
static void roundtrip(const struct frame *f, enum stomp_version v)
{
	struct evbuffer *out = evbuffer_new();
	struct frame g;
	struct frame_scan scan;
	struct sbuf a, b;
	char err[256];

	sbuf_init(&a);
	sbuf_init(&b);
	frame_init(&g);
	memset(&scan, 0, sizeof scan);
	frame_put_cmd(out, f->cmd);
	for (unsigned i = 0; i < f->nhdrs; i++) {
		if (strcmp(f->hdrs[i].name, "content-length") == 0)
			continue;	/* written by frame_put_body */
		frame_put_headern(out, v, f->hdrs[i].name, f->hdrs[i].name_len, f->hdrs[i].value,
		                  f->hdrs[i].value_len);
	}
	frame_put_body(out, f->body, f->body_len, true);
	if (frame_parse(out, &scan, &g, &roomy, v, err, sizeof err) != FRAME_OK)
		abort();
	for (unsigned i = 0; i < f->nhdrs; i++)
		if (strcmp(f->hdrs[i].name, "content-length") != 0)
			sbuf_printf(&a, "%s:%s\n", f->hdrs[i].name, f->hdrs[i].value);
	for (unsigned i = 0; i < g.nhdrs; i++)
		if (strcmp(g.hdrs[i].name, "content-length") != 0)
			sbuf_printf(&b, "%s:%s\n", g.hdrs[i].name, g.hdrs[i].value);
	if (g.cmd != f->cmd || !same_bytes(&a, &b) ||
	    g.body_len != f->body_len || memcmp(g.body, f->body, f->body_len) != 0)
		abort();
	frame_fini(&g);
	sbuf_fini(&a);
	sbuf_fini(&b);
	evbuffer_free(out);
}

/* Parses `data` delivered in pieces (all at once when seed is 0); returns
 * the final status and appends every frame to d. */
static enum frame_status parse(const uint8_t *data, size_t len, unsigned seed, enum stomp_version v,
                               const struct frame_limits *lim, struct sbuf *d, bool check_roundtrip)
{
	struct evbuffer *in = evbuffer_new();
	struct frame f;
	struct frame_scan scan;
	enum frame_status st = FRAME_NEED_MORE;
	size_t off = 0;
	char err[256];

	frame_init(&f);
	memset(&scan, 0, sizeof scan);
	while (off < len && st != FRAME_ERROR) {
		size_t n = seed ? 1 + (seed = seed * 1103515245u + 12345u) % 64 : len;
		n = MIN(n, len - off);
		evbuffer_add(in, data + off, n);
		off += n;
		for (;;) {
			err[0] = 0;
			st = frame_parse(in, &scan, &f, lim, v, err, sizeof err);
			if (st != FRAME_OK)
				break;
			if (f.total > evbuffer_get_length(in) || f.cmd == CMD_UNKNOWN)
				abort();
			digest(d, &f);
			if (check_roundtrip && expressible(&f, v))
				roundtrip(&f, v);
			frame_consume(in, &scan, &f);
		}
		if (st == FRAME_ERROR && !err[0])
			abort();	/* every error names what was wrong */
	}
	frame_fini(&f);
	evbuffer_free(in);
	return st;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const enum stomp_version versions[] = { STOMP_1_0, STOMP_1_1, STOMP_1_2, STOMP_1_2 };
	enum stomp_version v;
	const struct frame_limits *lim;
	struct sbuf whole, pieces;
	enum frame_status a, b;

	if (size < 2)
		return 0;
	v = versions[data[0] & 3];
	lim = data[0] & 4 ? &small : &dflt;
	sbuf_init(&whole);
	sbuf_init(&pieces);
	a = parse(data + 2, size - 2, 0, v, lim, &whole, true);
	b = parse(data + 2, size - 2, data[1] | 0x100u, v, lim, &pieces, false);
	if (a != b || !same_bytes(&whole, &pieces))
		abort();
	sbuf_fini(&whole);
	sbuf_fini(&pieces);
	return 0;
}
