/* test_client_mqsh_render.c: tables and key/value listings from JSON
 * replies, compared byte for byte. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "../../shell/render.c"

static struct json *parse(const char *text)
{
	char err[128];
	struct json *j = json_parse(text, strlen(text), err, sizeof err);
	if (!j)
		fail_msg("bad test JSON: %s", err);
	return j;
}

static void expect(const char *json, const char *want)
{
	struct json *j = parse(json);
	struct sbuf out;
	sbuf_init(&out);
	render_data(&out, j, false);
	if (strcmp(sbuf_str(&out), want) != 0)
		fail_msg("for %s\n--- got:\n%s--- expected:\n%s", json, sbuf_str(&out), want);
	sbuf_fini(&out);
	json_free(j);
}

static void test_table_aligns_columns(void **state)
{
	/* Columns are as wide as their widest cell or header, two blanks
	 * apart, in the first row's key order; no trailing blanks. */
	(void)state;
	expect("[{\"name\":\"/queue/a\",\"depth\":1,\"type\":\"queue\"},"
	       "{\"name\":\"/queue/longer\",\"depth\":12345,\"type\":\"queue\"}]",
	       "name           depth  type\n"
	       "/queue/a       1      queue\n"
	       "/queue/longer  12345  queue\n");
}

static void test_table_keys_of_later_rows(void **state)
{
	/* A key only a later row has becomes a column after the first row's;
	 * a row without it shows "-". */
	(void)state;
	expect("[{\"name\":\"/queue/q\",\"paused\":false},{\"name\":\"/pubsub/p\",\"children\":2}]",
	       "name       paused  children\n"
	       "/queue/q   false   -\n"
	       "/pubsub/p  -       2\n");
}

static void test_table_cells(void **state)
{
	/* Integers without decimals, rates with at most two, empty strings
	 * and nulls as "-", lists of names joined, control bytes escaped so
	 * that a row stays on one line. */
	(void)state;
	expect("[{\"a\":1.5,\"b\":0.333,\"c\":\"\",\"d\":null,\"e\":[\"x\",\"y\"],\"f\":\"l1\\nl2\\u0001\",\"g\":true}]",
	       "a    b     c  d  e     f           g\n"
	       "1.5  0.33  -  -  x, y  l1\\nl2\\x01  true\n");
}

static void test_table_counts_characters_not_bytes(void **state)
{
	/* UTF-8 names take one column per character. */
	(void)state;
	expect("[{\"name\":\"/queue/caf\\u00e9\",\"n\":1},{\"name\":\"/queue/tea\",\"n\":2}]",
	       "name         n\n"
	       "/queue/caf\xc3\xa9  1\n"
	       "/queue/tea   2\n");
}

static void test_object_listing_with_subtable(void **state)
{
	/* Keys padded to the longest; an array of objects is a sub-table
	 * under its key, indented; an empty array says (none). */
	(void)state;
	expect("{\"name\":\"/queue/jobs\",\"depth\":3,\"child_names\":[],"
	       "\"subscribers\":[{\"client\":7,\"id\":\"sub-1\"},{\"client\":12,\"id\":\"s\"}],\"paused\":false}",
	       "name         /queue/jobs\n"
	       "depth        3\n"
	       "child_names  (none)\n"
	       "subscribers\n"
	       "  client  id\n"
	       "  7       sub-1\n"
	       "  12      s\n"
	       "paused       false\n");
}

static void test_nested_object(void **state)
{
	/* An object inside an object is listed under its key, indented. */
	(void)state;
	expect("{\"a\":1,\"limits\":{\"max\":10,\"overflow\":\"reject\"}}",
	       "a  1\n"
	       "limits\n"
	       "  max       10\n"
	       "  overflow  reject\n");
}

static void test_other_shapes(void **state)
{
	/* Nothing for an empty list (the message says "0 ..."); a scalar or a
	 * list of scalars on one line; deeper things in a cell as JSON. */
	(void)state;
	expect("[]", "");
	expect("42", "42\n");
	expect("[\"a\",\"b\"]", "a, b\n");
	expect("[{\"x\":{\"k\":[1,2]}}]", "x\n{\"k\":[1,2]}\n");
}

static void test_color_wraps_headers(void **state)
{
	/* On a terminal headers are bold; the padding is computed on the
	 * text, not on the escape codes. */
	struct json *j = parse("[{\"ab\":1,\"c\":2}]");
	struct sbuf out;
	(void)state;
	sbuf_init(&out);
	render_table(&out, j, 0, true);
	assert_string_equal(out.buf, BOLD "ab" PLAIN "  " BOLD "c" PLAIN "\n1   2\n");
	sbuf_fini(&out);
	json_free(j);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_table_aligns_columns),
		cmocka_unit_test(test_table_keys_of_later_rows),
		cmocka_unit_test(test_table_cells),
		cmocka_unit_test(test_table_counts_characters_not_bytes),
		cmocka_unit_test(test_object_listing_with_subtable),
		cmocka_unit_test(test_nested_object),
		cmocka_unit_test(test_other_shapes),
		cmocka_unit_test(test_color_wraps_headers),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
