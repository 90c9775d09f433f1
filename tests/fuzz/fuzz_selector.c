/* fuzz_selector.c: libFuzzer target for the selector compiler and evaluator.
 *
 * The input is a selector. Whatever compiles is evaluated against a fixed
 * set of messages, whose headers answer any name the fuzzer invents (the
 * name's hash picks its value among awkward ones: numbers at the edges of
 * 64 bits, infinity, text, truth values, empty, absent). Besides not
 * crashing, leaking or tripping UBSan, two properties are checked:
 * - the result is TRUE, FALSE or UNKNOWN, and selector_match agrees;
 * - NOT (selector) compiles too and gives the three-valued negation.
 * A bad selector must come back with an error text that starts with
 * "selector: ".
 *
 * Built by itself (no broker needed):
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -I. -Ibroker \
 *       tests/fuzz/fuzz_selector.c broker/core/selector.c common/util.c -lm \
 *       -o fuzz_selector
 *   ./fuzz_selector -max_len=512 CORPUS_DIR */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/selector.h"

static const char *const values[] = {
	NULL, "1", "0", "-1", "2.5", "1e400", "-1e400", "9223372036854775807", "-9223372036854775808",
	"99999999999999999999", "abc", "", "true", "FALSE", "caf\xc3\xa9", "%_", "'", "12993", "0x10", "-0",
};
#define NVALUES (sizeof values / sizeof values[0])

static const char *answer(void *ctx, const struct selector_name *nm, char *scratch, size_t *len)
{
	unsigned salt = *(const unsigned *)ctx;
	const char *v;
	if (nm->field == SELECTOR_MESSAGE_ID) {
		*len = (size_t)snprintf(scratch, SELECTOR_SCRATCH, "%u", 1000u + salt);
		return scratch;
	}
	v = values[(nm->hash + salt * 7u) % NVALUES];
	if (v)
		*len = strlen(v);
	return v;
}

#define PREFIX "convert_string_expressions:"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[256], *wrapped;
	struct selector *s, *n;
	size_t skip = 0;

	s = selector_compile((const char *)data, size, err, sizeof err);
	if (!s) {
		if (strncmp(err, "selector: ", 10) != 0)
			abort();
		return 0;
	}
	if (strlen(selector_text(s)) != size || memcmp(selector_text(s), data, size) != 0)
		abort();
	/* NOT ( goes after ActiveMQ's prefix, which must stay first */
	if (size >= sizeof PREFIX - 1 && memcmp(data, PREFIX, sizeof PREFIX - 1) == 0)
		skip = sizeof PREFIX - 1;
	wrapped = malloc(size + 8);
	memcpy(wrapped, data, skip);
	memcpy(wrapped + skip, "NOT (", 5);
	memcpy(wrapped + skip + 5, data + skip, size - skip);
	wrapped[size + 5] = ')';
	n = selector_compile(wrapped, size + 6, err, sizeof err);
	if (!n && !strstr(err, "nested too deeply") && !strstr(err, "too long"))
		abort();
	for (unsigned salt = 0; salt < 4; salt++) {
		enum selector_result r = selector_eval(s, answer, &salt);
		if (r != SELECTOR_TRUE && r != SELECTOR_FALSE && r != SELECTOR_UNKNOWN)
			abort();
		if (selector_match(s, answer, &salt) != (r == SELECTOR_TRUE))
			abort();
		if (n) {
			enum selector_result want = r == SELECTOR_TRUE ? SELECTOR_FALSE
			                          : r == SELECTOR_FALSE ? SELECTOR_TRUE : SELECTOR_UNKNOWN;
			if (selector_eval(n, answer, &salt) != want)
				abort();
		}
	}
	selector_free(n);
	selector_free(s);
	free(wrapped);
	return 0;
}
