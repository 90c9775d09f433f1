/* test_journal.c: the persistent journal. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "journal.h"
#include "journal_int.h"
#include "util.h"

static void fill_payload(uint8_t *p, size_t len, uint64_t id)
{
	for (size_t i = 0; i < len; i++)
		p[i] = (uint8_t)(id * 131 + i * 7 + 1);
}

/* ---- the record format ---- */

static void test_record_format_roundtrip(void **state)
{
	/* Every record type encodes to jrec_size() bytes and decodes to the
	 * same fields; a buffer of them walks record by record. */
	static const uint8_t payload[] = { 0, 1, 2, 0xff, 'x' };
	const struct jrec recs[] = {
		{ .type = JREC_MESSAGE, .qid = 7, .msg_id = 0x0123456789abcdefULL, .val = payload, .vlen = sizeof payload },
		{ .type = JREC_MESSAGE, .qid = 0xffffffffu, .msg_id = 1, .val = NULL, .vlen = 0 },
		{ .type = JREC_ENQUEUE, .qid = 9, .msg_id = 42 },
		{ .type = JREC_REMOVE, .qid = 9, .msg_id = 42 },
		{ .type = JREC_META_PUT, .key = "queue:/queue/a", .klen = 14, .val = "persistent", .vlen = 10 },
		{ .type = JREC_META_PUT, .key = "k", .klen = 1, .val = NULL, .vlen = 0 },
		{ .type = JREC_META_DEL, .key = "queue:/queue/a", .klen = 14 },
	};
	struct sbuf b;
	size_t off = 0;
	uint8_t h[JSEG_HEADER_SIZE];
	uint64_t no;
	uint32_t hb;

	sbuf_init(&b);
	for (size_t i = 0; i < ARRAY_LEN(recs); i++) {
		size_t before = b.len;
		jrec_encode(&b, &recs[i]);
		assert_int_equal(b.len - before, jrec_size(&recs[i]));
	}
	for (size_t i = 0; i < ARRAY_LEN(recs); i++) {
		struct jrec r;
		assert_int_equal(jrec_decode(b.buf + off, b.len - off, &r, NULL), JREC_OK);
		assert_int_equal(r.type, recs[i].type);
		assert_int_equal(r.size, jrec_size(&recs[i]));
		if (r.type <= JREC_REMOVE) {
			assert_int_equal(r.qid, recs[i].qid);
			assert_int_equal(r.msg_id, recs[i].msg_id);
		} else {
			assert_int_equal(r.klen, recs[i].klen);
			assert_memory_equal(r.key, recs[i].key, r.klen);
		}
		assert_int_equal(r.vlen, recs[i].vlen);
		if (r.vlen)
			assert_memory_equal(r.val, recs[i].val, r.vlen);
		off += r.size;
	}
	assert_int_equal(off, b.len);
	sbuf_fini(&b);

	jseg_header_encode(h, 12345, 678);
	assert_true(jseg_header_decode(h, sizeof h, &no, &hb));
	assert_int_equal(no, 12345);
	assert_int_equal(hb, 678);
	assert_false(jseg_header_decode(h, sizeof h - 1, &no, &hb));
	h[20] ^= 1;
	assert_false(jseg_header_decode(h, sizeof h, &no, &hb));

	assert_true(jseg_parse_name("00000042.seg", &no));
	assert_int_equal(no, 42);
	assert_false(jseg_parse_name("00000042.seg.bad", &no));
	assert_false(jseg_parse_name("x0000042.seg", &no));
	assert_false(jseg_parse_name(".seg", &no));
	(void)state;
}

static void test_record_any_flipped_byte_is_detected(void **state)
{
	/* Changing any one byte of a record, its length and checksum
	 * included, never decodes as a valid record. */
	uint8_t payload[100];
	struct jrec in = { .type = JREC_MESSAGE, .qid = 3, .msg_id = 77, .val = payload, .vlen = sizeof payload };
	struct sbuf b;

	fill_payload(payload, sizeof payload, 77);
	sbuf_init(&b);
	jrec_encode(&b, &in);
	for (size_t i = 0; i < b.len; i++) {
		for (int bit = 0; bit < 8; bit++) {
			struct jrec r;
			b.buf[i] ^= (char)(1 << bit);
			if (jrec_decode(b.buf, b.len, &r, NULL) == JREC_OK)
				fail_msg("flip of bit %d in byte %zu went unnoticed", bit, i);
			b.buf[i] ^= (char)(1 << bit);
		}
	}
	/* ... and every strict prefix is a torn record, not a valid one. */
	for (size_t n = 0; n < b.len; n++) {
		struct jrec r;
		assert_int_equal(jrec_decode(b.buf, n, &r, NULL), JREC_SHORT);
	}
	sbuf_fini(&b);
	(void)state;
}

static void test_record_zero_length_is_bad(void **state)
{
	/* A zeroed region is never mistaken for records, and counts as one
	 * dropped record however long it is. */
	uint8_t zeros[4096] = { 0 };
	struct jrec r;
	const char *why = NULL;
	assert_int_equal(jrec_decode(zeros, sizeof zeros, &r, &why), JREC_BAD);
	assert_non_null(why);
	assert_int_equal(jrec_count_dropped(zeros, sizeof zeros), 1);
	assert_int_equal(jrec_count_dropped(zeros, 0), 0);
	(void)state;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_record_format_roundtrip),
		cmocka_unit_test(test_record_any_flipped_byte_is_detected),
		cmocka_unit_test(test_record_zero_length_is_bad),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
