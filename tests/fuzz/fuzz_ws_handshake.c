/* fuzz_ws_handshake.c: libFuzzer target for the WebSocket upgrade request
 * parser (broker/net/ws_handshake.c). Any bytes, any size limit: the
 * parser must not read outside the input, and what it reports must hold
 * together (a length within the input, a status on every refusal, a
 * chosen subprotocol one of ours). Links mqcore. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "net/ws_handshake.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ws_hs_request req;
	size_t max;
	char *copy, out[1024];
	if (size < 2)
		return 0;
	/* the first two bytes pick the size limit, the rest is the request */
	max = 16 + (((size_t)data[0] << 8 | data[1]) % 9000);
	data += 2;
	size -= 2;
	/* an exact-size heap copy, so that ASan sees any read past the end */
	copy = malloc(size ? size : 1);
	memcpy(copy, data, size);
	switch (ws_handshake_parse(copy, size, max, &req)) {
	case WS_HS_NEED_MORE:
		if (size >= max)
			abort();
		break;
	case WS_HS_OK:
		if (req.length == 0 || req.length > size || req.length > max || strlen(req.key) != 24)
			abort();
		if (req.protocol[0] && strcmp(req.protocol, "v10.stomp") && strcmp(req.protocol, "v11.stomp") &&
		    strcmp(req.protocol, "v12.stomp"))
			abort();
		ws_handshake_response(&req, out, sizeof out);
		(void)ws_origin_allowed("http://a.example, *", &req);
		(void)ws_origin_allowed("http://a.example", &req);
		break;
	case WS_HS_ERROR:
		if (req.status < 400 || req.status > 599 || !req.error[0])
			abort();
		ws_handshake_refusal(req.status, req.error, out, sizeof out);
		break;
	}
	free(copy);
	return 0;
}
