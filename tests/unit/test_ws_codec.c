/* test_ws_codec.c: the WebSocket codec over evbuffers (libwslay inside):
 * client frames in, the STOMP byte stream out, whatever the message
 * boundaries; STOMP frames in, one WebSocket message each out. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "net/ws_codec.h"

struct fx {
	struct ws_codec *w;
	struct evbuffer *in, *stomp, *out;
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof *f);
	f->w = ws_codec_new(false);
	f->in = evbuffer_new();
	f->stomp = evbuffer_new();
	f->out = evbuffer_new();
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	ws_codec_free(f->w);
	evbuffer_free(f->in);
	evbuffer_free(f->stomp);
	evbuffer_free(f->out);
	free(f);
	return 0;
}

/* A client frame (masked, as clients must). */
static void client_frame(struct evbuffer *b, int fin, int opcode, const void *payload, size_t n)
{
	unsigned char h[14], key[4] = { 0x11, 0x22, 0x33, 0x44 };
	size_t hl = 2;
	const unsigned char *p = payload;
	h[0] = (unsigned char)((fin ? 0x80 : 0) | opcode);
	if (n < 126) {
		h[1] = (unsigned char)(0x80 | n);
	} else if (n < 65536) {
		h[1] = 0x80 | 126;
		h[2] = (unsigned char)(n >> 8);
		h[3] = (unsigned char)n;
		hl = 4;
	} else {
		h[1] = 0x80 | 127;
		for (int i = 0; i < 8; i++)
			h[2 + i] = (unsigned char)((uint64_t)n >> (56 - 8 * i));
		hl = 10;
	}
	memcpy(h + hl, key, 4);
	evbuffer_add(b, h, hl + 4);
	for (size_t i = 0; i < n; i++) {
		unsigned char c = p[i] ^ key[i % 4];
		evbuffer_add(b, &c, 1);
	}
}

static char *drain_string(struct evbuffer *b)
{
	size_t n = evbuffer_get_length(b);
	char *s = malloc(n + 1);
	evbuffer_remove(b, s, n);
	s[n] = 0;
	return s;
}

static void test_payloads_are_one_stream(void **state)
{
	/* A frame split over two messages, a fragmented message, and two
	 * frames in one message: the STOMP side sees the bytes in order. */
	struct fx *f = *state;
	char *s;
	client_frame(f->in, 1, 0x1, "SEND\ndest", 9);
	client_frame(f->in, 1, 0x2, "ination:/q\n\nab\0", 15);
	client_frame(f->in, 0, 0x1, "SEND\n\n", 6);
	client_frame(f->in, 0, 0x0, "x", 1);
	client_frame(f->in, 1, 0x0, "\0\n", 2);
	assert_int_equal(ws_codec_read(f->w, f->in, f->stomp, 1 << 20, f->out), WS_READ_OK);
	assert_int_equal(evbuffer_get_length(f->in), 0);
	assert_int_equal(evbuffer_get_length(f->stomp), 9 + 15 + 6 + 1 + 2);
	s = drain_string(f->stomp);
	assert_memory_equal(s, "SEND\ndestination:/q\n\nab\0SEND\n\nx\0\n", 33);
	free(s);
	assert_int_equal(evbuffer_get_length(f->out), 0);
}

static void test_partial_frame_waits(void **state)
{
	/* Bytes of a frame that stop anywhere are kept for the next read. */
	struct fx *f = *state;
	struct evbuffer *whole = evbuffer_new();
	unsigned char all[64];
	size_t n;
	client_frame(whole, 1, 0x1, "CONNECT\n\n", 10);
	n = evbuffer_remove(whole, all, sizeof all);
	for (size_t i = 0; i < n; i++) {
		evbuffer_add(f->in, all + i, 1);
		assert_int_equal(ws_codec_read(f->w, f->in, f->stomp, 1 << 20, f->out), WS_READ_OK);
	}
	assert_int_equal(evbuffer_get_length(f->stomp), 10);
	evbuffer_free(whole);
}

static void test_stomp_limit_stops_reading(void **state)
{
	/* Above stomp_limit the codec leaves the rest in `in`. */
	struct fx *f = *state;
	char big[4096];
	memset(big, 'a', sizeof big);
	for (int i = 0; i < 8; i++)
		client_frame(f->in, 1, 0x2, big, sizeof big);
	assert_int_equal(ws_codec_read(f->w, f->in, f->stomp, 8192, f->out), WS_READ_OK);
	assert_true(evbuffer_get_length(f->stomp) >= 8192);
	assert_true(evbuffer_get_length(f->stomp) < 8 * 4096);
	assert_true(evbuffer_get_length(f->in) > 0);
	evbuffer_drain(f->stomp, evbuffer_get_length(f->stomp));
	assert_int_equal(ws_codec_read(f->w, f->in, f->stomp, 1 << 20, f->out), WS_READ_OK);
	assert_int_equal(evbuffer_get_length(f->in), 0);
}

static void test_ping_answered_close_echoed(void **state)
{
	struct fx *f = *state;
	unsigned char o[64];
	size_t n;
	client_frame(f->in, 1, 0x9, "hi", 2);
	assert_int_equal(ws_codec_read(f->w, f->in, f->stomp, 1 << 20, f->out), WS_READ_OK);
	n = evbuffer_remove(f->out, o, sizeof o);
	assert_int_equal(n, 4);
	assert_memory_equal(o, "\x8a\x02hi", 4);	/* pong, unmasked */
	client_frame(f->in, 1, 0x8, "\x03\xe8" "bye", 5);
	assert_int_equal(ws_codec_read(f->w, f->in, f->stomp, 1 << 20, f->out), WS_READ_CLOSED);
	assert_true(ws_codec_close_received(f->w));
	assert_true(ws_codec_close_sent(f->w));
	assert_int_equal(ws_codec_peer_code(f->w), 1000);
	n = evbuffer_remove(f->out, o, sizeof o);
	assert_true(n >= 4 && o[0] == 0x88 && o[2] == 0x03 && o[3] == 0xe8);
}

static void test_protocol_errors_fail_with_a_close_code(void **state)
{
	/* An unmasked client frame: 1002; invalid UTF-8 in text: 1007. */
	struct fx *f = *state;
	unsigned char o[16];
	evbuffer_add(f->in, "\x81\x03" "abc", 5);
	assert_int_equal(ws_codec_read(f->w, f->in, f->stomp, 1 << 20, f->out), WS_READ_FAILED);
	assert_int_equal(evbuffer_remove(f->out, o, sizeof o), 4);
	assert_int_equal(o[0], 0x88);
	assert_int_equal((o[2] << 8) | o[3], 1002);
	assert_non_null(strstr(ws_codec_error(f->w), "protocol error"));
	{
		struct ws_codec *w = ws_codec_new(false);
		client_frame(f->in, 1, 0x1, "a\xff", 2);
		assert_int_equal(ws_codec_read(w, f->in, f->stomp, 1 << 20, f->out), WS_READ_FAILED);
		assert_non_null(strstr(ws_codec_error(w), "UTF-8"));
		ws_codec_free(w);
	}
}

static void test_one_message_per_stomp_frame(void **state)
{
	/* Two frames, a heart-beat and a frame whose body holds a NUL (found
	 * by its content-length): four messages; text for UTF-8, binary for
	 * the rest. An incomplete frame waits. */
	struct fx *f = *state;
	unsigned char o[256];
	size_t n;
	static const char frames[] = "RECEIPT\nreceipt-id:1\n\n\0" "\n"
	                             "MESSAGE\ncontent-length:3\n\na\0\xff\0" "MESSAGE\nmessage-id:7\n\nhalf";
	evbuffer_add(f->stomp, frames, sizeof frames - 1);
	assert_int_equal(ws_codec_write(f->w, f->stomp, f->out, 1 << 20, false), 23 + 1 + 30);
	assert_int_equal(evbuffer_get_length(f->stomp), strlen("MESSAGE\nmessage-id:7\n\nhalf"));
	n = evbuffer_remove(f->out, o, sizeof o);
	assert_int_equal(n, 2 + 23 + 2 + 1 + 2 + 30);
	assert_int_equal(o[0], 0x81);
	assert_int_equal(o[1], 23);
	assert_memory_equal(o + 2, "RECEIPT\nreceipt-id:1\n\n\0", 23);
	assert_memory_equal(o + 25, "\x81\x01\n", 3);
	assert_int_equal(o[28], 0x82);	/* \xff: binary */
	assert_int_equal(o[29], 30);
	/* the stream ends: the rest goes as it is */
	assert_int_equal(ws_codec_write(f->w, f->stomp, f->out, 1 << 20, true), 26);
	assert_int_equal(evbuffer_get_length(f->stomp), 0);
}

static void test_large_frame_is_fragmented_and_whole(void **state)
{
	/* A frame over 64 KiB goes as one fragmented message whose payload,
	 * put back together, is the frame. */
	struct fx *f = *state;
	size_t body = 200000, total = 0, frames = 0;
	char head[64];
	int hl = snprintf(head, sizeof head, "MESSAGE\ncontent-length:%zu\n\n", body);
	char *b = malloc(body);
	memset(b, 'z', body);
	evbuffer_add(f->stomp, head, (size_t)hl);
	evbuffer_add(f->stomp, b, body);
	evbuffer_add(f->stomp, "", 1);
	assert_int_equal(ws_codec_write(f->w, f->stomp, f->out, 1 << 20, false), (size_t)hl + body + 1);
	while (evbuffer_get_length(f->out)) {
		unsigned char h[10];
		size_t len, hlen = 2;
		evbuffer_copyout(f->out, h, 10);
		assert_int_equal(h[0] & 0x0f, frames == 0 ? 0x1 : 0x0);
		len = h[1] & 0x7f;
		if (len == 126)
			len = (size_t)(h[2] << 8 | h[3]), hlen = 4;
		else if (len == 127)
			fail_msg("unexpected 64-bit length");
		evbuffer_drain(f->out, hlen + len);
		total += len;
		frames++;
		if (h[0] & 0x80)
			break;
	}
	assert_int_equal(total, (size_t)hl + body + 1);
	assert_true(frames > 1);
	assert_int_equal(evbuffer_get_length(f->out), 0);
	free(b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_payloads_are_one_stream, setup, teardown),
		cmocka_unit_test_setup_teardown(test_partial_frame_waits, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stomp_limit_stops_reading, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ping_answered_close_echoed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_protocol_errors_fail_with_a_close_code, setup, teardown),
		cmocka_unit_test_setup_teardown(test_one_message_per_stomp_frame, setup, teardown),
		cmocka_unit_test_setup_teardown(test_large_frame_is_fragmented_and_whole, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
