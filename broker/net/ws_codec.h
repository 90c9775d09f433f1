/* ws_codec.h: RFC 6455 framing between a WebSocket and the plain STOMP
 * byte stream, over evbuffers, with no socket in sight.
 *
 * libwslay does the framing (masking, fragmentation, control frames,
 * close codes, UTF-8 checks of text messages); this file only feeds it
 * bytes and collects what it produces:
 *
 *   read:  socket bytes -> message payloads appended to the STOMP stream,
 *          whatever the message boundaries (the STOMP parser reads a byte
 *          stream), and wslay's own replies (pong, close) to the socket.
 *   write: the broker's STOMP output -> one WebSocket message per STOMP
 *          frame (a heart-beat EOL is a message of its own), as Web-STOMP
 *          sends them; text when the frame is valid UTF-8, else binary.
 *
 * ws.c puts it between a socket bufferevent and the STOMP connection;
 * the fuzz target drives it with bytes. */
#ifndef MQ_WS_CODEC_H
#define MQ_WS_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct evbuffer;
struct ws_codec;

enum ws_read_status {
	WS_READ_OK,		/* consumed what it could; more may come */
	WS_READ_CLOSED,		/* the peer sent a close frame; our answer is in `out` */
	WS_READ_FAILED,		/* the peer broke the protocol; a close frame saying so is in `out` */
};

/* binary_only: send every message as a binary frame. */
struct ws_codec *ws_codec_new(bool binary_only);
void ws_codec_free(struct ws_codec *w);

/* Decodes frames from `in`, appending their payloads to `stomp` until it
 * holds stomp_limit bytes (the rest waits in `in`); pongs and close
 * frames go to `out`. After WS_READ_CLOSED or WS_READ_FAILED nothing more
 * is read. */
enum ws_read_status ws_codec_read(struct ws_codec *w, struct evbuffer *in, struct evbuffer *stomp,
                                  size_t stomp_limit, struct evbuffer *out);

/* Moves the complete STOMP frames at the head of `stomp` into `out`, one
 * message each, while `out` holds fewer than out_limit bytes. With flush,
 * the limit is ignored and a trailing incomplete frame goes too (the
 * stream has ended). Returns the STOMP bytes taken. */
size_t ws_codec_write(struct ws_codec *w, struct evbuffer *stomp, struct evbuffer *out, size_t out_limit,
                      bool flush);

/* A ping (the idle time-out's probe: every client answers with a pong). */
void ws_codec_ping(struct ws_codec *w, struct evbuffer *out);
/* Sends a close frame, once; reason is cut to what a close frame holds. */
void ws_codec_close(struct ws_codec *w, uint16_t code, const char *reason, struct evbuffer *out);

bool ws_codec_close_sent(const struct ws_codec *w);
bool ws_codec_close_received(const struct ws_codec *w);
/* Why the last WS_READ_FAILED happened, for the log. */
const char *ws_codec_error(const struct ws_codec *w);
/* Close code the peer sent (1005 when it gave none). */
uint16_t ws_codec_peer_code(const struct ws_codec *w);

/* Whether buf[0..len) is valid UTF-8 (exposed for the unit test). */
bool ws_utf8_valid(const void *buf, size_t len);

#endif
