/* ws_codec.c: WebSocket framing with libwslay over evbuffers. See ws_codec.h. */
#include "net/ws_codec.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <wslay/wslay.h>

#include "common/util.h"

/* A STOMP frame up to this size goes out as one unfragmented WebSocket
 * frame; a larger one is streamed as a fragmented message, so that a
 * 16 MiB body is never copied whole into the library's queue. */
#define WHOLE_MAX (64 * 1024)

struct utf8 {
	unsigned need;			/* continuation bytes still expected */
	unsigned char lo, hi;		/* bounds of the next one */
};

struct ws_codec {
	wslay_event_context_ptr ctx;	/* owned */
	bool binary_only;
	bool in_data;			/* the frame being received carries payload for STOMP */
	/* the buffers of the call in progress (borrowed during it) */
	struct evbuffer *in, *stomp, *out;
	size_t stomp_limit;
	struct evbuffer *pending;	/* owned; the large frame being streamed */
	char error[160];
};

/* ---- UTF-8 (RFC 3629: no overlongs, no surrogates, nothing past U+10FFFF) ---- */

static bool utf8_feed(struct utf8 *u, const unsigned char *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char c = p[i];
		if (u->need) {
			if (c < u->lo || c > u->hi)
				return false;
			u->lo = 0x80, u->hi = 0xbf;
			u->need--;
		} else if (c < 0x80) {
			continue;
		} else if (c < 0xc2) {
			return false;
		} else if (c < 0xe0) {
			u->need = 1, u->lo = 0x80, u->hi = 0xbf;
		} else if (c < 0xf0) {
			u->need = 2;
			u->lo = c == 0xe0 ? 0xa0 : 0x80;	/* overlong */
			u->hi = c == 0xed ? 0x9f : 0xbf;	/* surrogates */
		} else if (c < 0xf5) {
			u->need = 3;
			u->lo = c == 0xf0 ? 0x90 : 0x80;	/* overlong */
			u->hi = c == 0xf4 ? 0x8f : 0xbf;	/* past U+10FFFF */
		} else {
			return false;
		}
	}
	return true;
}

bool ws_utf8_valid(const void *buf, size_t len)
{
	struct utf8 u = { 0, 0x80, 0xbf };
	return utf8_feed(&u, buf, len) && u.need == 0;
}

static bool evbuffer_utf8(struct evbuffer *b, size_t len)
{
	struct utf8 u = { 0, 0x80, 0xbf };
	struct evbuffer_iovec v[16];
	struct evbuffer_ptr at;
	size_t done = 0;
	evbuffer_ptr_set(b, &at, 0, EVBUFFER_PTR_SET);
	while (done < len) {
		int n = evbuffer_peek(b, (ev_ssize_t)(len - done), &at, v, 16);
		for (int i = 0; i < n && i < 16 && done < len; i++) {
			size_t take = v[i].iov_len < len - done ? v[i].iov_len : len - done;
			if (!utf8_feed(&u, v[i].iov_base, take))
				return false;
			done += take;
		}
		if (n <= 0 || evbuffer_ptr_set(b, &at, done, EVBUFFER_PTR_SET) < 0)
			break;
	}
	return done == len && u.need == 0;
}

/* ---- wslay callbacks ---- */

static ssize_t recv_cb(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, int flags, void *arg)
{
	struct ws_codec *w = arg;
	int n;
	(void)flags;
	/* Stop (the rest waits in the socket's buffer) when the STOMP side
	 * holds enough: that is how backpressure reaches the peer. */
	if (!w->in || (w->stomp && evbuffer_get_length(w->stomp) >= w->stomp_limit)) {
		wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
		return -1;
	}
	n = evbuffer_remove(w->in, buf, len);
	if (n <= 0) {
		wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
		return -1;
	}
	return n;
}

static ssize_t send_cb(wslay_event_context_ptr ctx, const uint8_t *data, size_t len, int flags, void *arg)
{
	struct ws_codec *w = arg;
	(void)flags;
	if (!w->out || evbuffer_add(w->out, data, len) < 0) {
		wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
		return -1;
	}
	return (ssize_t)len;
}

static void frame_start_cb(wslay_event_context_ptr ctx, const struct wslay_event_on_frame_recv_start_arg *arg,
                           void *user)
{
	struct ws_codec *w = user;
	(void)ctx;
	/* Continuation frames carry the payload of a text or binary
	 * message; control frames (ping, pong, close) are wslay's. */
	w->in_data = !wslay_is_ctrl_frame(arg->opcode);
}

static void frame_chunk_cb(wslay_event_context_ptr ctx, const struct wslay_event_on_frame_recv_chunk_arg *arg,
                           void *user)
{
	struct ws_codec *w = user;
	(void)ctx;
	if (w->in_data && w->stomp && arg->data_length)
		evbuffer_add(w->stomp, arg->data, arg->data_length);
}

/* The large frame being streamed: wslay asks for it piece by piece. */
static ssize_t pending_read_cb(wslay_event_context_ptr ctx, uint8_t *buf, size_t len,
                               const union wslay_event_msg_source *source, int *eof, void *user)
{
	struct ws_codec *w = user;
	int n;
	(void)ctx;
	(void)source;
	n = evbuffer_remove(w->pending, buf, len);
	if (n < 0)
		return -1;
	/* wslay ends the message only on a non-empty read: say eof with
	 * the last bytes, never after them. */
	if (evbuffer_get_length(w->pending) == 0)
		*eof = 1;
	return n;
}

struct ws_codec *ws_codec_new(bool binary_only)
{
	static const struct wslay_event_callbacks cbs = {
		.recv_callback = recv_cb,
		.send_callback = send_cb,
		.on_frame_recv_start_callback = frame_start_cb,
		.on_frame_recv_chunk_callback = frame_chunk_cb,
	};
	struct ws_codec *w = xcalloc(1, sizeof *w);
	if (wslay_event_context_server_init(&w->ctx, &cbs, w) != 0) {
		free(w);
		return NULL;
	}
	/* Payloads stream straight into the STOMP buffer: wslay never
	 * holds a whole message, and the STOMP parser bounds frame sizes. */
	wslay_event_config_set_no_buffering(w->ctx, 1);
	w->binary_only = binary_only;
	w->pending = evbuffer_new();
	return w;
}

void ws_codec_free(struct ws_codec *w)
{
	if (!w)
		return;
	wslay_event_context_free(w->ctx);
	evbuffer_free(w->pending);
	free(w);
}

static void flush_queue(struct ws_codec *w, struct evbuffer *out)
{
	w->out = out;
	if (wslay_event_want_write(w->ctx))
		wslay_event_send(w->ctx);
	w->out = NULL;
}

static void describe_failure(struct ws_codec *w)
{
	uint16_t code = wslay_event_get_status_code_sent(w->ctx);
	switch (code) {
	case WSLAY_CODE_INVALID_FRAME_PAYLOAD_DATA:
		snprintf(w->error, sizeof w->error, "invalid UTF-8 in a text message (close code 1007; "
		         "send binary bodies in binary messages)");
		break;
	case WSLAY_CODE_MESSAGE_TOO_BIG:
		snprintf(w->error, sizeof w->error, "WebSocket frame too large (close code 1009)");
		break;
	default:
		snprintf(w->error, sizeof w->error, "WebSocket protocol error (close code %u): an unmasked frame, "
		         "a reserved bit or opcode, a bad continuation or a malformed control frame", code);
		break;
	}
}

enum ws_read_status ws_codec_read(struct ws_codec *w, struct evbuffer *in, struct evbuffer *stomp,
                                  size_t stomp_limit, struct evbuffer *out)
{
	int r;
	if (!wslay_event_get_read_enabled(w->ctx))
		return wslay_event_get_close_received(w->ctx) ? WS_READ_CLOSED : WS_READ_FAILED;
	w->in = in;
	w->stomp = stomp;
	w->stomp_limit = stomp_limit;
	r = wslay_event_recv(w->ctx);
	w->in = w->stomp = NULL;
	/* pongs, and the close frame answering or reporting what was read */
	flush_queue(w, out);
	if (r != 0) {
		snprintf(w->error, sizeof w->error, "WebSocket read failed (wslay error %d)", r);
		return WS_READ_FAILED;
	}
	if (wslay_event_get_read_enabled(w->ctx))
		return WS_READ_OK;
	if (wslay_event_get_close_received(w->ctx))
		return WS_READ_CLOSED;
	describe_failure(w);
	return WS_READ_FAILED;
}

/* Bytes of the STOMP frame at the head of buf, 0 while it is incomplete.
 * The broker writes every frame with "\n" line ends and a content-length
 * whenever it has a body, so the blank line and the length find the end;
 * a frame without a length ends at its first NUL. */
static size_t frame_extent(struct evbuffer *buf)
{
	size_t len = evbuffer_get_length(buf), body;
	unsigned char head[2] = { 0, 0 };
	struct evbuffer_ptr end, cl, at;

	evbuffer_copyout(buf, head, len < 2 ? len : 2);
	if (head[0] == '\n')
		return 1;	/* a heart-beat */
	if (head[0] == '\r')
		return len < 2 ? 0 : head[1] == '\n' ? 2 : 1;
	end = evbuffer_search(buf, "\n\n", 2, NULL);
	if (end.pos < 0)
		return 0;
	body = (size_t)end.pos + 2;
	cl = evbuffer_search_range(buf, "\ncontent-length:", 16, NULL, &end);
	if (cl.pos >= 0) {
		char digits[24];
		uint64_t n;
		size_t got;
		evbuffer_ptr_set(buf, &cl, 16, EVBUFFER_PTR_ADD);
		got = (size_t)evbuffer_copyout_from(buf, &cl, digits, sizeof digits - 1);
		digits[got] = 0;
		digits[strspn(digits, "0123456789")] = 0;
		if (digits[0] && parse_u64(digits, 0, UINT64_MAX / 2, &n))
			return body + n + 1 <= len ? (size_t)(body + n + 1) : 0;
	}
	if (evbuffer_ptr_set(buf, &at, body, EVBUFFER_PTR_SET) < 0)
		return 0;
	at = evbuffer_search(buf, "", 1, &at);
	return at.pos < 0 ? 0 : (size_t)at.pos + 1;
}

static void send_message(struct ws_codec *w, struct evbuffer *stomp, size_t n, struct evbuffer *out)
{
	uint8_t opcode = (w->binary_only || !evbuffer_utf8(stomp, n)) ? WSLAY_BINARY_FRAME : WSLAY_TEXT_FRAME;
	if (n <= WHOLE_MAX) {
		struct wslay_event_msg m = { opcode, evbuffer_pullup(stomp, (ev_ssize_t)n), n };
		wslay_event_queue_msg(w->ctx, &m);	/* copies */
		evbuffer_drain(stomp, n);
	} else {
		struct wslay_event_fragmented_msg m;
		memset(&m, 0, sizeof m);
		m.opcode = opcode;
		m.read_callback = pending_read_cb;
		evbuffer_remove_buffer(stomp, w->pending, n);	/* moves, no copy */
		wslay_event_queue_fragmented_msg(w->ctx, &m);
	}
	flush_queue(w, out);
	/* The send callback never refuses, so wslay wrote the whole message
	 * (a close already sent makes it drop it: nothing is left either). */
	evbuffer_drain(w->pending, evbuffer_get_length(w->pending));
}

size_t ws_codec_write(struct ws_codec *w, struct evbuffer *stomp, struct evbuffer *out, size_t out_limit,
                      bool flush)
{
	size_t taken = 0;
	while (evbuffer_get_length(stomp) && (flush || evbuffer_get_length(out) < out_limit)) {
		size_t n = frame_extent(stomp);
		if (!n) {
			if (!flush)
				break;
			n = evbuffer_get_length(stomp);
		}
		if (wslay_event_get_close_sent(w->ctx) || !wslay_event_get_write_enabled(w->ctx)) {
			evbuffer_drain(stomp, n);	/* too late: the WebSocket is closed */
		} else {
			send_message(w, stomp, n, out);
		}
		taken += n;
	}
	return taken;
}

void ws_codec_ping(struct ws_codec *w, struct evbuffer *out)
{
	struct wslay_event_msg m = { WSLAY_PING, (const uint8_t *)"mqbroker", 8 };
	if (wslay_event_queue_msg(w->ctx, &m) == 0)
		flush_queue(w, out);
}

void ws_codec_close(struct ws_codec *w, uint16_t code, const char *reason, struct evbuffer *out)
{
	size_t n = reason ? strlen(reason) : 0;
	if (n > 123)
		n = 123;
	/* Do not cut a UTF-8 sequence in two: the peer would fail on it. */
	while (n && !ws_utf8_valid(reason, n))
		n--;
	wslay_event_queue_close(w->ctx, code, (const uint8_t *)reason, n);
	flush_queue(w, out);
}

bool ws_codec_close_sent(const struct ws_codec *w)
{
	return wslay_event_get_close_sent(w->ctx);
}

bool ws_codec_close_received(const struct ws_codec *w)
{
	return wslay_event_get_close_received(w->ctx);
}

const char *ws_codec_error(const struct ws_codec *w)
{
	return w->error;
}

uint16_t ws_codec_peer_code(const struct ws_codec *w)
{
	return wslay_event_get_status_code_received(w->ctx);
}
