/* test_frame.c: the STOMP codec, table-driven. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "common/frame.h"
#include "common/frame_write.h"

static const struct frame_limits limits = {
	.max_frame = 4096,
	.max_headers = 8,
	.max_header_line = 128,
};

struct parsed {
	enum frame_status st;
	struct frame f;
	struct frame_scan scan;
	char err[256];
};

/* Parses `len` bytes given as one buffer. */
static enum frame_status parse_once(struct evbuffer *in, struct parsed *p, enum stomp_version v)
{
	p->err[0] = 0;
	p->st = frame_parse(in, &p->scan, &p->f, &limits, v, p->err, sizeof p->err);
	return p->st;
}

static void test_parse_send_with_headers(void **state)
{
	/* A SEND frame yields its command, headers in order, and body. */
	struct evbuffer *in = evbuffer_new();
	struct parsed p = { 0 };
	const char raw[] = "SEND\ndestination:/queue/a\nreceipt:r1\n\nhello";
	evbuffer_add(in, raw, sizeof raw);	/* includes the NUL */
	frame_init(&p.f);
	assert_int_equal(parse_once(in, &p, STOMP_1_2), FRAME_OK);
	assert_int_equal(p.f.cmd, CMD_SEND);
	assert_int_equal(p.f.nhdrs, 2);
	assert_string_equal(frame_get(&p.f, "destination"), "/queue/a");
	assert_string_equal(frame_get(&p.f, "receipt"), "r1");
	assert_int_equal(p.f.body_len, 5);
	assert_memory_equal(p.f.body, "hello", 5);
	frame_consume(in, &p.scan, &p.f);
	assert_int_equal(evbuffer_get_length(in), 0);
	frame_fini(&p.f);
	evbuffer_free(in);
	(void)state;
}

static void test_parse_every_command(void **state)
{
	/* Every client and server command is recognised by name. */
	for (int c = 1; c < CMD_COUNT; c++) {
		struct evbuffer *in = evbuffer_new();
		struct parsed p = { 0 };
		char raw[64];
		int n = snprintf(raw, sizeof raw, "%s\n\n", frame_cmd_name((enum frame_cmd)c));
		evbuffer_add(in, raw, (size_t)n + 1);
		frame_init(&p.f);
		assert_int_equal(parse_once(in, &p, STOMP_1_2), FRAME_OK);
		assert_int_equal(p.f.cmd, c);
		frame_consume(in, &p.scan, &p.f);
		frame_fini(&p.f);
		evbuffer_free(in);
	}
	(void)state;
}

static void test_parse_binary_body_with_content_length(void **state)
{
	/* content-length lets a body carry NUL bytes. */
	struct evbuffer *in = evbuffer_new();
	struct parsed p = { 0 };
	const char raw[] = "SEND\ndestination:/q\ncontent-length:5\n\na\0b\0c\0";
	evbuffer_add(in, raw, sizeof raw - 1);
	frame_init(&p.f);
	assert_int_equal(parse_once(in, &p, STOMP_1_2), FRAME_OK);
	assert_int_equal(p.f.body_len, 5);
	assert_memory_equal(p.f.body, "a\0b\0c", 5);
	assert_true(p.f.has_content_length);
	frame_consume(in, &p.scan, &p.f);
	frame_fini(&p.f);
	evbuffer_free(in);
	(void)state;
}

static void test_parse_crlf_line_ends(void **state)
{
	/* \r\n line ends are accepted and stripped. */
	struct evbuffer *in = evbuffer_new();
	struct parsed p = { 0 };
	const char raw[] = "SEND\r\ndestination:/q\r\nx:y\r\n\r\nbody";
	evbuffer_add(in, raw, sizeof raw);
	frame_init(&p.f);
	assert_int_equal(parse_once(in, &p, STOMP_1_2), FRAME_OK);
	assert_string_equal(frame_get(&p.f, "destination"), "/q");
	assert_string_equal(frame_get(&p.f, "x"), "y");
	assert_int_equal(p.f.body_len, 4);
	frame_consume(in, &p.scan, &p.f);
	frame_fini(&p.f);
	evbuffer_free(in);
	(void)state;
}

static void test_parse_repeated_header_first_wins(void **state)
{
	struct evbuffer *in = evbuffer_new();
	struct parsed p = { 0 };
	const char raw[] = "SEND\nfoo:first\nfoo:second\n\n";
	evbuffer_add(in, raw, sizeof raw);
	frame_init(&p.f);
	assert_int_equal(parse_once(in, &p, STOMP_1_2), FRAME_OK);
	assert_string_equal(frame_get(&p.f, "foo"), "first");
	frame_consume(in, &p.scan, &p.f);
	frame_fini(&p.f);
	evbuffer_free(in);
	(void)state;
}

struct escape_case {
	enum stomp_version v;
	const char *cmd;
	const char *raw_value;
	const char *decoded;	/* NULL = error */
};

static void test_header_escaping_per_version(void **state)
{
	/* 1.0 never decodes; 1.1 decodes \n \c \\; 1.2 adds \r and rejects
	 * undefined escapes; CONNECT is never decoded. */
	static const struct escape_case cases[] = {
		{ STOMP_1_0, "SEND", "a\\nb", "a\\nb" },
		{ STOMP_1_1, "SEND", "a\\nb\\cc\\\\d", "a\nb:c\\d" },
		{ STOMP_1_1, "SEND", "a\\rb", "a\\rb" },
		{ STOMP_1_1, "SEND", "a\\tb", "a\\tb" },
		{ STOMP_1_2, "SEND", "a\\rb\\n", "a\rb\n" },
		{ STOMP_1_2, "SEND", "a\\tb", NULL },
		{ STOMP_1_2, "SEND", "trailing\\", NULL },
		{ STOMP_1_2, "CONNECT", "a\\nb", "a\\nb" },
		{ STOMP_1_2, "SEND", "with:colon", "with:colon" },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct evbuffer *in = evbuffer_new();
		struct parsed p = { 0 };
		char raw[128];
		int n = snprintf(raw, sizeof raw, "%s\nh:%s\n\n", cases[i].cmd, cases[i].raw_value);
		evbuffer_add(in, raw, (size_t)n + 1);
		frame_init(&p.f);
		parse_once(in, &p, cases[i].v);
		if (cases[i].decoded) {
			assert_int_equal(p.st, FRAME_OK);
			assert_string_equal(frame_get(&p.f, "h"), cases[i].decoded);
		} else {
			assert_int_equal(p.st, FRAME_ERROR);
			assert_non_null(strstr(p.err, "undefined escape"));
		}
		frame_fini(&p.f);
		evbuffer_free(in);
	}
	(void)state;
}

static void test_escape_roundtrip(void **state)
{
	const char *values[] = { "plain", "a:b", "line\nbreak", "back\\slash", "cr\rlf", "" };
	enum stomp_version vs[] = { STOMP_1_1, STOMP_1_2 };
	for (size_t vi = 0; vi < 2; vi++) {
		for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
			char buf[64];
			size_t n = frame_escape(buf, values[i], strlen(values[i]), vs[vi]);
			long m;
			buf[n] = 0;
			if (vs[vi] == STOMP_1_1 && strchr(values[i], '\r'))
				continue;	/* 1.1 cannot carry \r in a header */
			m = frame_unescape(buf, n, vs[vi]);
			assert_true(m >= 0);
			assert_string_equal(buf, values[i]);
		}
	}
	(void)state;
}

/* Builds a stream of several frames, then feeds it split at every byte
 * boundary into separate chains: every split must parse the same frames. */
/* Everything present at once, in three chains cut at every pair of
 * places: a line or a body that runs from one chain into the next is
 * found whole (the parser reads the first chain in place and moves
 * bytes only when a line crosses its end). */
static void test_parse_across_three_chains(void **state)
{
	static const char stream[] =
		"SEND\ndestination:/queue/a\ncontent-length:3\n\nx\0y\0"
		"SEND\r\ndestination:/topic/b\r\nk:v\r\n\r\nhello\0";
	size_t len = sizeof stream - 1;
	char *copy = malloc(len);
	(void)state;
	for (size_t i = 0; i <= len; i++) {
		for (size_t j = i; j <= len; j++) {
			struct evbuffer *in = evbuffer_new();
			struct parsed p = { 0 };
			int frames = 0;
			frame_init(&p.f);
			memcpy(copy, stream, len);
			evbuffer_add_reference(in, copy, i, NULL, NULL);
			evbuffer_add_reference(in, copy + i, j - i, NULL, NULL);
			evbuffer_add_reference(in, copy + j, len - j, NULL, NULL);
			while (parse_once(in, &p, STOMP_1_2) == FRAME_OK) {
				assert_int_equal(p.f.cmd, CMD_SEND);
				if (frames == 0) {
					assert_string_equal(frame_get(&p.f, "destination"), "/queue/a");
					assert_int_equal(p.f.body_len, 3);
					assert_memory_equal(p.f.body, "x\0y", 3);
				} else {
					assert_string_equal(frame_get(&p.f, "destination"), "/topic/b");
					assert_string_equal(frame_get(&p.f, "k"), "v");
					assert_int_equal(p.f.body_len, 5);
					assert_memory_equal(p.f.body, "hello", 5);
				}
				frames++;
				frame_consume(in, &p.scan, &p.f);
			}
			assert_int_equal(p.st, FRAME_NEED_MORE);
			assert_int_equal(frames, 2);
			frame_fini(&p.f);
			evbuffer_free(in);
		}
	}
	free(copy);
}

static void test_fw_u64_digits(void **state)
{
	static const struct {
		uint64_t v;
		const char *text;
	} cases[] = {
		{ 0, "0" }, { 7, "7" }, { 10, "10" }, { 99, "99" }, { 100, "100" }, { 101, "101" },
		{ 1000, "1000" }, { 12345, "12345" }, { 9999999999ULL, "9999999999" },
		{ 10000000000ULL, "10000000000" }, { UINT64_MAX, "18446744073709551615" },
	};
	(void)state;
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		char buf[FW_U64_MAX + 1];
		struct frame_writer w;
		size_t n;
		fw_begin_mem(&w, buf, STOMP_1_2);
		fw_u64(&w, cases[i].v);
		n = fw_end(&w);
		buf[n] = 0;
		assert_string_equal(buf, cases[i].text);
	}
}

static void test_parse_split_at_every_byte(void **state)
{
	static const char stream[] =
		"\n\nCONNECT\naccept-version:1.2\nhost:/\n\n\0"
		"SEND\ndestination:/queue/a\ncontent-length:3\n\nx\0y\0\n"
		"SEND\r\ndestination:/topic/b\r\n\r\nhello\0"
		"ACK\nid:7\n\n\0";
	size_t len = sizeof stream - 1;
	/* The parser decodes in place, so it needs writable memory. */
	char *copy = malloc(len);
	for (size_t cut = 0; cut <= len; cut++) {
		struct evbuffer *in = evbuffer_new();
		struct parsed p = { 0 };
		int frames = 0;
		enum frame_cmd want[] = { CMD_CONNECT, CMD_SEND, CMD_SEND, CMD_ACK };
		frame_init(&p.f);
		/* add_reference keeps the two pieces in separate chains */
		memcpy(copy, stream, len);
		evbuffer_add_reference(in, copy, cut, NULL, NULL);
		while (parse_once(in, &p, STOMP_1_2) == FRAME_OK) {
			assert_int_equal(p.f.cmd, want[frames]);
			frames++;
			frame_consume(in, &p.scan, &p.f);
		}
		assert_int_equal(p.st, FRAME_NEED_MORE);
		evbuffer_add_reference(in, copy + cut, len - cut, NULL, NULL);
		while (parse_once(in, &p, STOMP_1_2) == FRAME_OK) {
			assert_int_equal(p.f.cmd, want[frames]);
			if (frames == 1) {
				assert_int_equal(p.f.body_len, 3);
				assert_memory_equal(p.f.body, "x\0y", 3);
			}
			if (frames == 2)
				assert_string_equal(frame_get(&p.f, "destination"), "/topic/b");
			frames++;
			frame_consume(in, &p.scan, &p.f);
		}
		assert_int_equal(p.st, FRAME_NEED_MORE);
		assert_int_equal(frames, 4);
		assert_int_equal(evbuffer_get_length(in), 0);
		frame_fini(&p.f);
		evbuffer_free(in);
	}
	free(copy);
	(void)state;
}

static void test_parse_byte_by_byte(void **state)
{
	/* One byte at a time, as a slow client sends it. */
	static const char stream[] = "SEND\ndestination:/queue/a\nfoo:bar\n\nbody bytes\0";
	struct evbuffer *in = evbuffer_new();
	struct parsed p = { 0 };
	frame_init(&p.f);
	for (size_t i = 0; i < sizeof stream - 1; i++) {
		evbuffer_add(in, stream + i, 1);
		enum frame_status st = parse_once(in, &p, STOMP_1_2);
		if (i < sizeof stream - 2)
			assert_int_equal(st, FRAME_NEED_MORE);
		else
			assert_int_equal(st, FRAME_OK);
	}
	assert_string_equal(frame_get(&p.f, "foo"), "bar");
	assert_int_equal(p.f.body_len, 10);
	frame_consume(in, &p.scan, &p.f);
	frame_fini(&p.f);
	evbuffer_free(in);
	(void)state;
}

struct bad_case {
	const char *name;
	const char *raw;
	size_t len;		/* 0 = strlen + 1 */
	const char *error;	/* substring expected in err */
};

static void test_parse_malformed_input(void **state)
{
	/* Each bad input gets FRAME_ERROR with text naming the problem. */
	static char long_line[400], many_headers[400], big_body[5000], long_cmd[300];
	static struct bad_case cases[] = {
		{ "unknown command", "FOO\n\n", 0, "unknown command 'FOO'" },
		{ "garbage", "\x01\x02\x03\n", 4, "unknown command" },
		{ "no colon", "SEND\nnocolon\n\n", 0, "malformed header line 'nocolon'" },
		{ "empty name", "SEND\n:value\n\n", 0, "malformed header line" },
		{ "bad content-length", "SEND\ncontent-length:abc\n\n", 0, "invalid content-length 'abc'" },
		{ "negative content-length", "SEND\ncontent-length:-1\n\n", 0, "invalid content-length" },
		{ "huge content-length", "SEND\ncontent-length:999999999\n\n", 0, "frame too large: content-length 999999999" },
		{ "body one byte over the limit", "SEND\ncontent-length:4097\n\n", 0,
		  "frame too large: content-length 4097 (limit 4096) in SEND frame" },
		{ "no NUL after body", "SEND\ncontent-length:2\n\nabcd", 0, "not followed by a NUL" },
		{ "header line too long", long_line, 0, "header line too long" },
		{ "too many headers", many_headers, 0, "too many headers: more than 8 in SEND frame" },
		{ "body without NUL too large", big_body, sizeof big_body, "frame too large" },
		{ "command line too long", long_cmd, sizeof long_cmd, "command line too long" },
		{ "NUL in a header", "SEND\ndestination:/queue/x\0y\ncontent-length:1\n\nz", 48,
		  "a header of the SEND frame contains a NUL byte (at byte 25)" },
	};
	char *w = long_line;
	w += sprintf(w, "SEND\nx:");
	memset(w, 'a', 200);
	w[200] = '\n';
	w = many_headers;
	w += sprintf(w, "SEND\n");
	for (int i = 0; i < 10; i++)
		w += sprintf(w, "h%d:v\n", i);
	strcpy(big_body, "SEND\n\n");
	memset(big_body + 6, 'b', sizeof big_body - 6);
	memset(long_cmd, 'S', sizeof long_cmd);

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct evbuffer *in = evbuffer_new();
		struct parsed p = { 0 };
		size_t len = cases[i].len ? cases[i].len : strlen(cases[i].raw) + 1;
		frame_init(&p.f);
		evbuffer_add(in, cases[i].raw, len);
		parse_once(in, &p, STOMP_1_2);
		if (p.st != FRAME_ERROR || !strstr(p.err, cases[i].error))
			fail_msg("case '%s': status %d, err '%s', expected '%s'", cases[i].name, p.st, p.err,
			         cases[i].error);
		frame_fini(&p.f);
		evbuffer_free(in);
	}
	(void)state;
}

static void test_nul_in_command_line_is_an_error_at_once(void **state)
{
	/* Garbage that ends in NUL without an end of line is refused as soon
	 * as the NUL arrives, whether it comes in one piece or byte by byte,
	 * and the error names the command, printable. */
	static const struct {
		const char *raw;
		size_t len;
		const char *error;
	} cases[] = {
		{ "NOTAFRAME\0", 10, "unknown command 'NOTAFRAME' (ended by a NUL byte, not an end of line)" },
		{ "\xde\xad\xbe\xef not a frame \0", 18, "unknown command '???? not a frame ' (ended by a NUL byte" },
		{ "NOTAFRAME\0\n\n\0", 13, "unknown command 'NOTAFRAME' (ended by a NUL byte" },
		{ "SEND\0", 5, "SEND command line ends in a NUL byte instead of an end of line" },
		{ "\0", 1, "unknown command '' (ended by a NUL byte" },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		for (int piecewise = 0; piecewise < 2; piecewise++) {
			struct evbuffer *in = evbuffer_new();
			struct parsed p = { 0 };
			frame_init(&p.f);
			if (piecewise) {
				/* every prefix without the NUL waits for more */
				size_t nul = (size_t)((const char *)memchr(cases[i].raw, 0, cases[i].len) - cases[i].raw);
				for (size_t k = 0; k < nul; k++) {
					evbuffer_add(in, cases[i].raw + k, 1);
					assert_int_equal(parse_once(in, &p, STOMP_1_2), FRAME_NEED_MORE);
				}
				evbuffer_add(in, cases[i].raw + nul, cases[i].len - nul);
			} else {
				evbuffer_add(in, cases[i].raw, cases[i].len);
			}
			parse_once(in, &p, STOMP_1_2);
			if (p.st != FRAME_ERROR || !strstr(p.err, cases[i].error))
				fail_msg("case %zu (%s): status %d, err '%s', expected '%s'", i,
				         piecewise ? "byte by byte" : "whole", p.st, p.err, cases[i].error);
			frame_fini(&p.f);
			evbuffer_free(in);
		}
	}
	(void)state;
}

static void test_truncated_input_needs_more(void **state)
{
	/* Every proper prefix of a valid frame asks for more, never errors. */
	static const char raw[] = "SEND\ndestination:/q\ncontent-length:4\n\nbody\0";
	for (size_t cut = 0; cut < sizeof raw - 1; cut++) {
		struct evbuffer *in = evbuffer_new();
		struct parsed p = { 0 };
		frame_init(&p.f);
		evbuffer_add(in, raw, cut);
		assert_int_equal(parse_once(in, &p, STOMP_1_2), FRAME_NEED_MORE);
		frame_fini(&p.f);
		evbuffer_free(in);
	}
	(void)state;
}

static void test_heartbeat_eols_are_skipped(void **state)
{
	struct evbuffer *in = evbuffer_new();
	struct parsed p = { 0 };
	frame_init(&p.f);
	evbuffer_add(in, "\n\r\n\n", 4);
	assert_int_equal(parse_once(in, &p, STOMP_1_2), FRAME_NEED_MORE);
	assert_int_equal(p.f.skipped_eols, 3);
	assert_int_equal(evbuffer_get_length(in), 0);
	frame_fini(&p.f);
	evbuffer_free(in);
	(void)state;
}

static void test_write_frame_roundtrip(void **state)
{
	/* What the writer produces, the parser reads back, escapes included. */
	struct evbuffer *out = evbuffer_new();
	struct parsed p = { 0 };
	frame_init(&p.f);
	frame_put_cmd(out, CMD_MESSAGE);
	frame_put_header(out, STOMP_1_2, "destination", "/queue/a");
	frame_put_header(out, STOMP_1_2, "weird", "a:b\nc\\d\re");
	frame_put_body(out, "x\0y", 3, true);
	assert_int_equal(parse_once(out, &p, STOMP_1_2), FRAME_OK);
	assert_int_equal(p.f.cmd, CMD_MESSAGE);
	assert_string_equal(frame_get(&p.f, "weird"), "a:b\nc\\d\re");
	assert_string_equal(frame_get(&p.f, "content-length"), "3");
	assert_int_equal(p.f.body_len, 3);
	frame_consume(out, &p.scan, &p.f);
	frame_fini(&p.f);
	evbuffer_free(out);
	(void)state;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_send_with_headers),
		cmocka_unit_test(test_parse_every_command),
		cmocka_unit_test(test_parse_binary_body_with_content_length),
		cmocka_unit_test(test_parse_crlf_line_ends),
		cmocka_unit_test(test_parse_repeated_header_first_wins),
		cmocka_unit_test(test_header_escaping_per_version),
		cmocka_unit_test(test_escape_roundtrip),
		cmocka_unit_test(test_parse_split_at_every_byte),
		cmocka_unit_test(test_parse_across_three_chains),
		cmocka_unit_test(test_fw_u64_digits),
		cmocka_unit_test(test_parse_byte_by_byte),
		cmocka_unit_test(test_parse_malformed_input),
		cmocka_unit_test(test_nul_in_command_line_is_an_error_at_once),
		cmocka_unit_test(test_truncated_input_needs_more),
		cmocka_unit_test(test_heartbeat_eols_are_skipped),
		cmocka_unit_test(test_write_frame_roundtrip),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
