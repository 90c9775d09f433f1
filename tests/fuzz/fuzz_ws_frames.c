/* fuzz_ws_frames.c: libFuzzer target for WebSocket framing as the broker
 * reads it (broker/net/ws_codec.c over libwslay): any bytes from a client,
 * delivered in pieces of varying size and with a varying limit on the
 * STOMP side, must never crash or leak; once the codec says the socket is
 * closed or failed it stays so; and what the broker writes back is
 * encoded again through the write path. Links mqcore. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <event2/buffer.h>

#include "net/ws_codec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ws_codec *w;
	struct evbuffer *in, *stomp, *out;
	size_t pos = 1, limit;
	enum ws_read_status st = WS_READ_OK;
	if (size < 1)
		return 0;
	w = ws_codec_new(data[0] & 1);
	in = evbuffer_new();
	stomp = evbuffer_new();
	out = evbuffer_new();
	limit = 64 + (size_t)data[0] * 64;
	while (pos < size) {
		/* each piece: a length byte, then up to that many bytes */
		size_t n = data[pos++];
		if (n > size - pos)
			n = size - pos;
		evbuffer_add(in, data + pos, n);
		pos += n;
		st = ws_codec_read(w, in, stomp, limit, out);
		if (st != WS_READ_OK) {
			/* sticky: nothing more is read */
			size_t before = evbuffer_get_length(stomp);
			if (ws_codec_read(w, in, stomp, limit, out) != st || evbuffer_get_length(stomp) != before)
				abort();
			break;
		}
		/* the broker consumes the STOMP stream and answers with it */
		ws_codec_write(w, stomp, out, 1 << 16, (data[0] & 2) != 0);
		evbuffer_drain(stomp, evbuffer_get_length(stomp));
		evbuffer_drain(out, evbuffer_get_length(out));
	}
	if (st == WS_READ_OK)
		ws_codec_close(w, 1000, "fuzz", out);
	ws_codec_free(w);
	evbuffer_free(in);
	evbuffer_free(stomp);
	evbuffer_free(out);
	return 0;
}
