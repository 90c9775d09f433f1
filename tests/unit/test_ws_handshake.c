/* test_ws_handshake.c: the WebSocket upgrade request parser
 * (ws_handshake_parse), the Origin allow-list, the accept key and the
 * answers; and the codec's UTF-8 check, which chooses text or binary. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net/ws_codec.h"
#include "net/ws_handshake.h"

#define KEY "dGhlIHNhbXBsZSBub25jZQ=="
#define GOOD                                   \
	"GET /ws HTTP/1.1\r\n"                 \
	"Host: broker.example:15674\r\n"       \
	"Upgrade: websocket\r\n"               \
	"Connection: keep-alive, Upgrade\r\n"  \
	"Sec-WebSocket-Key: " KEY "\r\n"       \
	"Sec-WebSocket-Version: 13\r\n"

static enum ws_hs_status parse(const char *s, struct ws_hs_request *r)
{
	return ws_handshake_parse(s, strlen(s), 8192, r);
}

static void test_accepts_rfc_example_and_computes_its_key(void **state)
{
	/* RFC 6455 section 1.3's example key gives its example answer. */
	struct ws_hs_request r;
	char accept[29], resp[256];
	(void)state;
	assert_int_equal(parse(GOOD "\r\n", &r), WS_HS_OK);
	assert_int_equal(r.length, strlen(GOOD "\r\n"));
	assert_string_equal(r.path, "/ws");
	assert_string_equal(r.key, KEY);
	assert_string_equal(r.protocol, "");
	assert_false(r.has_origin);
	ws_handshake_accept(r.key, accept);
	assert_string_equal(accept, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
	ws_handshake_response(&r, resp, sizeof resp);
	assert_non_null(strstr(resp, "HTTP/1.1 101 Switching Protocols\r\n"));
	assert_non_null(strstr(resp, "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"));
	assert_null(strstr(resp, "Sec-WebSocket-Protocol"));
	assert_non_null(strstr(resp, "\r\n\r\n"));
}

static void test_incomplete_at_every_length_needs_more(void **state)
{
	/* Any proper prefix of a valid request asks for more, never fails. */
	const char *s = GOOD "\r\n";
	struct ws_hs_request r;
	(void)state;
	for (size_t n = 0; n < strlen(s); n++)
		assert_int_equal(ws_handshake_parse(s, n, 8192, &r), WS_HS_NEED_MORE);
}

static void test_bytes_after_the_request_are_left(void **state)
{
	/* A client that sends a frame right behind the request: length
	 * stops at the blank line. */
	const char *s = GOOD "\r\n\x81\x85xxxx";
	struct ws_hs_request r;
	(void)state;
	assert_int_equal(parse(s, &r), WS_HS_OK);
	assert_int_equal(r.length, strlen(GOOD "\r\n"));
}

static void test_bare_lf_line_ends_accepted(void **state)
{
	struct ws_hs_request r;
	(void)state;
	assert_int_equal(parse("GET / HTTP/1.1\nHost: x\nUpgrade: WebSocket\nConnection: upgrade\n"
	                       "Sec-WebSocket-Key: " KEY "\nSec-WebSocket-Version: 13\n\n", &r), WS_HS_OK);
}

static void test_subprotocol_highest_stomp_wins(void **state)
{
	/* As Web-STOMP: the highest of v10/v11/v12.stomp offered, whatever
	 * the order and however many headers; nothing else is ever chosen. */
	static const struct { const char *hdrs, *want; } cases[] = {
		{ "Sec-WebSocket-Protocol: v10.stomp, v11.stomp, v12.stomp\r\n", "v12.stomp" },
		{ "Sec-WebSocket-Protocol: v12.stomp,v10.stomp\r\n", "v12.stomp" },
		{ "Sec-WebSocket-Protocol: v10.stomp\r\nSec-WebSocket-Protocol: v11.stomp\r\n", "v11.stomp" },
		{ "Sec-WebSocket-Protocol: mqtt, v10.stomp\r\n", "v10.stomp" },
		{ "Sec-WebSocket-Protocol: mqtt\r\n", "" },
		{ "Sec-WebSocket-Protocol: V12.STOMP, v13.stomp, stomp\r\n", "" },
		{ "Sec-WebSocket-Protocol:\r\n", "" },
		{ "", "" },
	};
	(void)state;
	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
		char req[1024];
		struct ws_hs_request r;
		snprintf(req, sizeof req, GOOD "%s\r\n", cases[i].hdrs);
		assert_int_equal(parse(req, &r), WS_HS_OK);
		if (strcmp(r.protocol, cases[i].want) != 0)
			fail_msg("case %zu: got '%s', want '%s'", i, r.protocol, cases[i].want);
	}
	{
		char req[1024], resp[256];
		struct ws_hs_request r;
		snprintf(req, sizeof req, GOOD "Sec-WebSocket-Protocol: v11.stomp\r\n\r\n");
		parse(req, &r);
		ws_handshake_response(&r, resp, sizeof resp);
		assert_non_null(strstr(resp, "\r\nSec-WebSocket-Protocol: v11.stomp\r\n"));
	}
}

static void test_refusals_name_the_problem(void **state)
{
	/* Each bad request: the HTTP status and words of the message. */
	static const struct { const char *req; int status; const char *words; } cases[] = {
		{ "POST /ws HTTP/1.1\r\nHost: x\r\n\r\n", 405, "method POST" },
		{ "CONNECT\naccept-version:1.2\n\n", 400, "not an HTTP request line" },
		{ "GET /ws HTTP/1.0\r\nHost: x\r\n\r\n", 400, "HTTP/1.1" },
		{ "GET ws HTTP/1.1\r\nHost: x\r\n\r\n", 400, "starting with '/'" },
		{ "GET / HTTP/1.1\r\nHost: x\r\n\r\n", 426, "Upgrade: websocket" },
		{ "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\r\n", 426, "Connection: Upgrade" },
		{ "GET / HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: " KEY
		  "\r\nSec-WebSocket-Version: 13\r\n\r\n", 400, "no Host" },
		{ "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400, "more than one Host" },
		{ GOOD "Sec-WebSocket-Key: " KEY "\r\n\r\n", 400, "more than one Sec-WebSocket-Key" },
		{ "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
		  "Sec-WebSocket-Key: " KEY "\r\nSec-WebSocket-Version: 8\r\n\r\n", 426, "unsupported Sec-WebSocket-Version" },
		{ "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
		  "Sec-WebSocket-Version: 13\r\n\r\n", 400, "no Sec-WebSocket-Key" },
		{ "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
		  "Sec-WebSocket-Key: short==\r\nSec-WebSocket-Version: 13\r\n\r\n", 400, "invalid Sec-WebSocket-Key 'short=='" },
		{ "GET / HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n", 400, "folded" },
		{ "GET / HTTP/1.1\r\nHost x\r\n\r\n", 400, "malformed header line 'Host x'" },
		{ "GET / HTTP/1.1\r\nBad Name: x\r\n\r\n", 400, "invalid header name" },
		{ "GET / HTTP/1.1\r\nHost: a\x01\r\n\r\n", 400, "control character 0x01" },
		{ GOOD "Origin: a\r\nOrigin: b\r\n\r\n", 400, "more than one Origin" },
	};
	(void)state;
	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
		struct ws_hs_request r;
		enum ws_hs_status st = parse(cases[i].req, &r);
		if (st != WS_HS_ERROR || r.status != cases[i].status || !strstr(r.error, cases[i].words))
			fail_msg("case %zu: status %d (%d), error '%s', want %d and '%s'", i, st, r.status, r.error,
			         cases[i].status, cases[i].words);
	}
}

static void test_size_limit(void **state)
{
	/* No blank line within max bytes: 431, naming the option. A request
	 * exactly at the limit is fine. */
	char big[9000];
	struct ws_hs_request r;
	size_t n;
	(void)state;
	n = (size_t)snprintf(big, sizeof big, GOOD "X-Pad: ");
	memset(big + n, 'a', sizeof big - n - 1);
	big[sizeof big - 1] = 0;
	assert_int_equal(ws_handshake_parse(big, strlen(big), 8192, &r), WS_HS_ERROR);
	assert_int_equal(r.status, 431);
	assert_non_null(strstr(r.error, "ws_max_handshake"));
	/* still under the limit: wait */
	assert_int_equal(ws_handshake_parse(big, 4000, 8192, &r), WS_HS_NEED_MORE);
	{
		const char *s = GOOD "\r\n";
		assert_int_equal(ws_handshake_parse(s, strlen(s), strlen(s), &r), WS_HS_OK);
		assert_int_equal(ws_handshake_parse(s, strlen(s), strlen(s) - 1, &r), WS_HS_ERROR);
	}
}

static void test_origin_allow_list(void **state)
{
	struct ws_hs_request r;
	(void)state;
	assert_int_equal(parse(GOOD "Origin: https://Console.example:8443\r\n\r\n", &r), WS_HS_OK);
	assert_true(r.has_origin);
	assert_true(ws_origin_allowed(NULL, &r));
	assert_true(ws_origin_allowed("", &r));
	assert_true(ws_origin_allowed("http://a.example, https://console.example:8443", &r));
	assert_true(ws_origin_allowed(" *", &r));
	assert_false(ws_origin_allowed("https://console.example", &r));
	assert_false(ws_origin_allowed("https://console.example:8443.evil", &r));
	assert_false(ws_origin_allowed("https://console.example:84", &r));
	/* no Origin: not a browser, the list does not apply */
	assert_int_equal(parse(GOOD "\r\n", &r), WS_HS_OK);
	assert_true(ws_origin_allowed("http://a.example", &r));
	/* an Origin longer than we keep matches nothing but "*" */
	{
		char req[2048], origin[600];
		memset(origin, 'o', sizeof origin - 1);
		origin[sizeof origin - 1] = 0;
		snprintf(req, sizeof req, GOOD "Origin: %s\r\n\r\n", origin);
		assert_int_equal(parse(req, &r), WS_HS_OK);
		assert_true(r.origin_too_long);
		assert_false(ws_origin_allowed("http://a.example", &r));
		assert_true(ws_origin_allowed("*", &r));
	}
}

static void test_refusal_is_a_complete_http_response(void **state)
{
	char buf[512];
	size_t n;
	(void)state;
	n = ws_handshake_refusal(426, "needs an upgrade", buf, sizeof buf);
	assert_int_equal(n, strlen(buf));
	assert_non_null(strstr(buf, "HTTP/1.1 426 Upgrade Required\r\n"));
	assert_non_null(strstr(buf, "Sec-WebSocket-Version: 13\r\n"));
	assert_non_null(strstr(buf, "Content-Length: 17\r\n"));
	assert_non_null(strstr(buf, "\r\n\r\nneeds an upgrade\n"));
	ws_handshake_refusal(405, "x", buf, sizeof buf);
	assert_non_null(strstr(buf, "Allow: GET\r\n"));
	/* every status the broker refuses with has its own reason phrase */
	static const struct { int status; const char *line; } lines[] = {
		{ 400, "HTTP/1.1 400 Bad Request\r\n" },
		{ 403, "HTTP/1.1 403 Forbidden\r\n" },
		{ 405, "HTTP/1.1 405 Method Not Allowed\r\n" },
		{ 408, "HTTP/1.1 408 Request Timeout\r\n" },
		{ 426, "HTTP/1.1 426 Upgrade Required\r\n" },
		{ 431, "HTTP/1.1 431 Request Header Fields Too Large\r\n" },
		{ 503, "HTTP/1.1 503 Service Unavailable\r\n" },
	};
	for (size_t i = 0; i < sizeof lines / sizeof lines[0]; i++) {
		ws_handshake_refusal(lines[i].status, "x", buf, sizeof buf);
		assert_non_null(strstr(buf, lines[i].line));
	}
}

static void test_utf8_check(void **state)
{
	/* Text or binary is chosen by this: RFC 3629 exactly. */
	static const struct { const char *s; size_t n; bool ok; } cases[] = {
		{ "plain ascii\n\0", 13, true },
		{ "h\xc3\xa9llo", 6, true },
		{ "\xe2\x82\xac", 3, true },		/* euro sign */
		{ "\xf0\x9f\x98\x80", 4, true },	/* U+1F600 */
		{ "\xf4\x8f\xbf\xbf", 4, true },	/* U+10FFFF */
		{ "\xff", 1, false },
		{ "\xc0\xaf", 2, false },		/* overlong '/' */
		{ "\xe0\x80\xaf", 3, false },		/* overlong */
		{ "\xed\xa0\x80", 3, false },		/* surrogate */
		{ "\xf4\x90\x80\x80", 4, false },	/* past U+10FFFF */
		{ "\xc3", 1, false },			/* cut short */
		{ "\xe2\x82", 2, false },
		{ "a\x80", 2, false },			/* stray continuation */
	};
	(void)state;
	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
		if (ws_utf8_valid(cases[i].s, cases[i].n) != cases[i].ok)
			fail_msg("case %zu: expected %s", i, cases[i].ok ? "valid" : "invalid");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_accepts_rfc_example_and_computes_its_key),
		cmocka_unit_test(test_incomplete_at_every_length_needs_more),
		cmocka_unit_test(test_bytes_after_the_request_are_left),
		cmocka_unit_test(test_bare_lf_line_ends_accepted),
		cmocka_unit_test(test_subprotocol_highest_stomp_wins),
		cmocka_unit_test(test_refusals_name_the_problem),
		cmocka_unit_test(test_size_limit),
		cmocka_unit_test(test_origin_allow_list),
		cmocka_unit_test(test_refusal_is_a_complete_http_response),
		cmocka_unit_test(test_utf8_check),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
