/* ws_handshake.h: the HTTP/1.1 upgrade request that opens a WebSocket
 * (RFC 6455 section 4.2), read as a pure function over bytes so that it
 * can be unit-tested and fuzzed apart from any socket.
 *
 * The parser checks everything RFC 6455 asks of a client's opening
 * handshake, picks the STOMP subprotocol as RabbitMQ's Web-STOMP does (the
 * highest of v12.stomp, v11.stomp, v10.stomp the client offers; none when
 * it offers none of them), and says what to answer when the request is
 * refused: an HTTP status and one line of text for a person. */
#ifndef MQ_WS_HANDSHAKE_H
#define MQ_WS_HANDSHAKE_H

#include <stdbool.h>
#include <stddef.h>

enum ws_hs_status {
	WS_HS_NEED_MORE,	/* no blank line yet, and still under the size limit */
	WS_HS_OK,		/* a valid upgrade request: answer 101 */
	WS_HS_ERROR,		/* refused: answer req->status with req->error */
};

struct ws_hs_request {
	size_t length;			/* bytes of the request, blank line included */
	char path[256];			/* request-target, cut to fit (for logs) */
	char key[32];			/* Sec-WebSocket-Key as sent (24 base64 characters) */
	char protocol[16];		/* chosen subprotocol; "" = none */
	char origin[256];		/* Origin; "" when absent */
	bool has_origin;
	bool origin_too_long;		/* longer than origin[]: matches no allow-list entry */
	int status;			/* on WS_HS_ERROR: 400, 403, 405, 426, 431, 505 */
	char error[200];		/* on WS_HS_ERROR: why, for the response body and the log */
};

/* Parses the request at the start of buf[0..len). max bounds the whole
 * request: a request with no blank line within max bytes is refused (431).
 * Bytes after req->length (a client that did not wait for the 101) are
 * not the parser's. */
enum ws_hs_status ws_handshake_parse(const char *buf, size_t len, size_t max, struct ws_hs_request *req);

/* Whether origin is in the comma-separated allow-list (exact match after
 * trimming blanks, ASCII case ignored; "*" allows every origin). An empty
 * or NULL list allows every request; a request without Origin (not a
 * browser) is always allowed. */
bool ws_origin_allowed(const char *list, const struct ws_hs_request *req);

/* Sec-WebSocket-Accept for a key: base64(SHA-1(key + RFC 6455's GUID)),
 * 28 characters and a NUL. */
void ws_handshake_accept(const char *key, char out[29]);

/* The 101 response for an accepted request, NUL-terminated; returns its
 * length (buf needs 256 bytes). */
size_t ws_handshake_response(const struct ws_hs_request *req, char *buf, size_t len);
/* The refusal for status/text, NUL-terminated; returns its length. */
size_t ws_handshake_refusal(int status, const char *text, char *buf, size_t len);

#endif
