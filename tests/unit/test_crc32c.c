/* test_crc32c.c: CRC-32C against published vectors, and the SSE4.2 path
 * against the table-driven one. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "store/crc32c.h"

struct vector {
	const char *name;
	uint8_t data[48];
	size_t len;
	uint32_t crc;
};

/* "123456789" is the check value of the CRC catalogue; the 32-byte ones are
 * the iSCSI test patterns of RFC 3720, appendix B.4. */
static struct vector vectors[] = {
	{ "empty", { 0 }, 0, 0x00000000 },
	{ "check", "123456789", 9, 0xE3069283 },
	{ "a", "a", 1, 0xC1D04330 },
	{ "zeros32", { 0 }, 32, 0x8A9136AA },
	{ "ones32", { 0 }, 32, 0x62A8AB43 },
	{ "ascending32", { 0 }, 32, 0x46DD794E },
	{ "descending32", { 0 }, 32, 0x113FDB5C },
};

static void fill_patterns(void)
{
	for (size_t i = 0; i < 32; i++) {
		vectors[4].data[i] = 0xff;
		vectors[5].data[i] = (uint8_t)i;
		vectors[6].data[i] = (uint8_t)(31 - i);
	}
}

static void test_known_vectors(void **state)
{
	/* Every implementation gives the published value for every vector. */
	fill_patterns();
	for (size_t i = 0; i < sizeof vectors / sizeof vectors[0]; i++) {
		const struct vector *v = &vectors[i];
		uint32_t sw = crc32c_sw(0, v->data, v->len);
		if (sw != v->crc)
			fail_msg("%s: software crc 0x%08X, expected 0x%08X", v->name, sw, v->crc);
		assert_int_equal(crc32c(0, v->data, v->len), v->crc);
		if (crc32c_hw_available())
			assert_int_equal(crc32c_hw(0, v->data, v->len), v->crc);
	}
	(void)state;
}

static void test_chaining_equals_one_pass(void **state)
{
	/* Continuing a checksum over a split buffer gives the one-pass value,
	 * whatever the split point. */
	uint8_t buf[300];
	for (size_t i = 0; i < sizeof buf; i++)
		buf[i] = (uint8_t)(i * 7 + 3);
	uint32_t whole = crc32c_sw(0, buf, sizeof buf);
	for (size_t cut = 0; cut <= sizeof buf; cut++) {
		assert_int_equal(crc32c_sw(crc32c_sw(0, buf, cut), buf + cut, sizeof buf - cut), whole);
		assert_int_equal(crc32c(crc32c(0, buf, cut), buf + cut, sizeof buf - cut), whole);
	}
	(void)state;
}

static void test_hw_matches_sw_on_random_buffers(void **state)
{
	/* The instruction and the tables agree on random data at every
	 * alignment and length, including the unaligned head and tail loops. */
	enum { MAX = 4096 + 16 };
	uint8_t *buf = malloc(MAX);
	if (!crc32c_hw_available()) {
		free(buf);
		skip();
	}
	srand(12345);
	for (size_t i = 0; i < MAX; i++)
		buf[i] = (uint8_t)rand();
	for (int round = 0; round < 2000; round++) {
		size_t off = (size_t)rand() % 16;
		size_t len = (size_t)rand() % (MAX - 16);
		uint32_t seed = round % 3 ? (uint32_t)rand() : 0;
		uint32_t sw = crc32c_sw(seed, buf + off, len);
		uint32_t hw = crc32c_hw(seed, buf + off, len);
		if (sw != hw)
			fail_msg("offset %zu length %zu: sw 0x%08X hw 0x%08X", off, len, sw, hw);
	}
	free(buf);
	(void)state;
}

static void test_single_bit_flip_changes_crc(void **state)
{
	/* A CRC catches every single-bit error: the property the journal's
	 * corruption check rests on. */
	uint8_t buf[128];
	for (size_t i = 0; i < sizeof buf; i++)
		buf[i] = (uint8_t)i;
	uint32_t good = crc32c(0, buf, sizeof buf);
	for (size_t bit = 0; bit < sizeof buf * 8; bit++) {
		buf[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		assert_int_not_equal(crc32c(0, buf, sizeof buf), good);
		buf[bit / 8] ^= (uint8_t)(1u << (bit % 8));
	}
	(void)state;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_known_vectors),
		cmocka_unit_test(test_chaining_equals_one_pass),
		cmocka_unit_test(test_hw_matches_sw_on_random_buffers),
		cmocka_unit_test(test_single_bit_flip_changes_crc),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
