/* test_selector.c: JMS message selectors (core/selector.h), table-driven:
 * the JMS specification's examples, SQL's three-valued logic, the type
 * rules for headers that are text, the alias table, selectors that can
 * never match, and every compile error with its exact text. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/selector.h"

/* ---- a message as the evaluator sees it ---- */

/* Headers are "name:value\n" lines, as a message keeps them; what the
 * broker holds (message id, delivery mode...) comes from the fields. */
struct view {
	const char *hdrs;
	uint64_t id;			/* formatted into scratch, as the broker will */
	const char *fields[SELECTOR_DELIVERY_COUNT + 1];
	unsigned reads;			/* callback calls */
	char asked[16][64];		/* the names asked for, in order */
};

static const char *get(void *ctx, const struct selector_name *nm, char *scratch, size_t *len)
{
	struct view *v = ctx;
	const char *p = v->hdrs ? v->hdrs : "";
	if (v->reads < 16)
		snprintf(v->asked[v->reads], sizeof v->asked[0], "%s", nm->name);
	v->reads++;
	if (nm->field == SELECTOR_MESSAGE_ID) {
		if (!v->id)
			return NULL;
		*len = (size_t)snprintf(scratch, SELECTOR_SCRATCH, "%" PRIu64, v->id);
		return scratch;
	}
	if (nm->field != SELECTOR_HEADER) {
		const char *f = v->fields[nm->field];
		if (f)
			*len = strlen(f);
		return f;
	}
	while (*p) {
		const char *colon = strchr(p, ':'), *eol = strchr(p, '\n');
		if (!eol)
			eol = p + strlen(p);
		if (colon && colon < eol && (size_t)(colon - p) == nm->len && memcmp(p, nm->name, nm->len) == 0) {
			*len = (size_t)(eol - colon - 1);
			return colon + 1;
		}
		p = *eol ? eol + 1 : eol;
	}
	return NULL;
}

static const char *result_name(enum selector_result r)
{
	return r == SELECTOR_TRUE ? "TRUE" : r == SELECTOR_FALSE ? "FALSE" : "UNKNOWN";
}

static struct selector *compile_ok(const char *text)
{
	char err[256];
	struct selector *s = selector_compile(text, strlen(text), err, sizeof err);
	if (!s)
		fail_msg("'%s' did not compile: %s", text, err);
	return s;
}

static enum selector_result eval_on(const char *text, const char *hdrs)
{
	struct selector *s = compile_ok(text);
	struct view v = { .hdrs = hdrs };
	enum selector_result r = selector_eval(s, get, &v);
	assert_int_equal(selector_match(s, get, &v), r == SELECTOR_TRUE);
	selector_free(s);
	return r;
}

#define T SELECTOR_TRUE
#define F SELECTOR_FALSE
#define U SELECTOR_UNKNOWN

struct case_ {
	const char *selector;
	const char *hdrs;
	enum selector_result want;
};

static void run_cases(const struct case_ *c, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		enum selector_result r = eval_on(c[i].selector, c[i].hdrs);
		if (r != c[i].want)
			fail_msg("'%s' on {%s}: %s, expected %s", c[i].selector, c[i].hdrs ? c[i].hdrs : "",
			         result_name(r), result_name(c[i].want));
	}
}

#define RUN(table) run_cases(table, sizeof(table) / sizeof(table[0]))

/* ---- the JMS specification's examples ---- */

static void test_jms_spec_examples(void **state)
{
	/* The examples of the JMS specification's selector section, each on
	 * messages that match it, do not, and lack the header (unknown). */
	static const struct case_ cases[] = {
		{ "JMSType = 'car' AND color = 'blue' AND weight > 2500", "type:car\ncolor:blue\nweight:3000\n", T },
		{ "JMSType = 'car' AND color = 'blue' AND weight > 2500", "type:car\ncolor:blue\nweight:2500\n", F },
		{ "JMSType = 'car' AND color = 'blue' AND weight > 2500", "type:car\ncolor:red\nweight:3000\n", F },
		{ "JMSType = 'car' AND color = 'blue' AND weight > 2500", "type:car\ncolor:blue\n", U },
		{ "JMSType = 'car' AND color = 'blue' AND weight > 2500", "color:blue\nweight:3000\n", U },
		{ "age BETWEEN 15 AND 19", "age:15\n", T },
		{ "age BETWEEN 15 AND 19", "age:19\n", T },
		{ "age BETWEEN 15 AND 19", "age:20\n", F },
		{ "age BETWEEN 15 AND 19", "age:14\n", F },
		{ "age BETWEEN 15 AND 19", "", U },
		{ "age >= 15 AND age <= 19", "age:17\n", T },
		{ "age NOT BETWEEN 15 AND 19", "age:20\n", T },
		{ "age NOT BETWEEN 15 AND 19", "age:17\n", F },
		{ "age NOT BETWEEN 15 AND 19", "", U },
		{ "age < 15 OR age > 19", "age:14\n", T },
		{ "Country IN ('UK', 'US', 'France')", "Country:UK\n", T },
		{ "Country IN ('UK', 'US', 'France')", "Country:France\n", T },
		{ "Country IN ('UK', 'US', 'France')", "Country:Peru\n", F },
		{ "Country IN ('UK', 'US', 'France')", "", U },
		{ "Country NOT IN ('UK', 'US', 'France')", "Country:UK\n", F },
		{ "Country NOT IN ('UK', 'US', 'France')", "Country:Peru\n", T },
		{ "Country NOT IN ('UK', 'US', 'France')", "", U },
		{ "phone LIKE '12%3'", "phone:123\n", T },
		{ "phone LIKE '12%3'", "phone:12993\n", T },
		{ "phone LIKE '12%3'", "phone:1234\n", F },
		{ "phone NOT LIKE '12%3'", "phone:1234\n", T },
		{ "phone NOT LIKE '12%3'", "phone:123\n", F },
		{ "phone NOT LIKE '12%3'", "", U },
		{ "word LIKE 'l_se'", "word:lose\n", T },
		{ "word LIKE 'l_se'", "word:loose\n", F },
		{ "word NOT LIKE 'l_se'", "word:loose\n", T },
		{ "underscored LIKE '\\_%' ESCAPE '\\'", "underscored:_foo\n", T },
		{ "underscored LIKE '\\_%' ESCAPE '\\'", "underscored:bar\n", F },
		{ "underscored NOT LIKE '\\_%' ESCAPE '\\'", "underscored:bar\n", T },
		{ "prop_name IS NULL", "", T },
		{ "prop_name IS NULL", "prop_name:x\n", F },
		{ "prop_name IS NULL", "prop_name:\n", F },
		{ "prop_name IS NOT NULL", "prop_name:x\n", T },
		{ "prop_name IS NOT NULL", "", F },
		{ "NumberOfOrders > 1", "NumberOfOrders:2\n", T },
		{ "'blue' = color", "color:blue\n", T },
		{ "literal = 'literal''s'", "literal:literal's\n", T },
	};
	(void)state;
	RUN(cases);
}

/* ---- three-valued logic ---- */

/* A condition that is TRUE, FALSE or UNKNOWN on the message x:1. */
static const char *operand(enum selector_result r)
{
	return r == T ? "x = 1" : r == F ? "x = 2" : "absent = 1";
}

static void test_three_valued_logic(void **state)
{
	/* AND, OR and NOT follow SQL's tables, spelled out here, with the
	 * operands bare, parenthesized, and in chains of three. */
	static const enum selector_result and_table[3][3] = {
		/* F    T    U   (right) */
		{ F, F, F },	/* F */
		{ F, T, U },	/* T */
		{ F, U, U },	/* U */
	};
	static const enum selector_result or_table[3][3] = {
		{ F, T, U },
		{ T, T, T },
		{ U, T, U },
	};
	static const enum selector_result not_table[3] = { T, F, U };
	char text[128];
	(void)state;
	for (int a = 0; a < 3; a++) {
		for (int b = 0; b < 3; b++) {
			enum selector_result r;
			snprintf(text, sizeof text, "%s AND %s", operand(a), operand(b));
			r = eval_on(text, "x:1\n");
			if (r != and_table[a][b])
				fail_msg("%s: %s, expected %s", text, result_name(r), result_name(and_table[a][b]));
			snprintf(text, sizeof text, "(%s) OR (%s)", operand(a), operand(b));
			r = eval_on(text, "x:1\n");
			if (r != or_table[a][b])
				fail_msg("%s: %s, expected %s", text, result_name(r), result_name(or_table[a][b]));
			/* chains: a AND b AND TRUE, a OR b OR FALSE */
			snprintf(text, sizeof text, "%s AND %s AND TRUE", operand(a), operand(b));
			assert_int_equal(eval_on(text, "x:1\n"), and_table[a][b]);
			snprintf(text, sizeof text, "%s OR %s OR FALSE", operand(a), operand(b));
			assert_int_equal(eval_on(text, "x:1\n"), or_table[a][b]);
			/* NOT (a AND b) = NOT a OR NOT b, with unknown too */
			snprintf(text, sizeof text, "NOT (%s AND %s)", operand(a), operand(b));
			assert_int_equal(eval_on(text, "x:1\n"), not_table[and_table[a][b]]);
		}
		snprintf(text, sizeof text, "NOT %s", operand(a));
		assert_int_equal(eval_on(text, "x:1\n"), not_table[a]);
		snprintf(text, sizeof text, "NOT NOT %s", operand(a));
		assert_int_equal(eval_on(text, "x:1\n"), a);
	}
}

static void test_precedence(void **state)
{
	/* NOT binds tighter than AND, AND tighter than OR; * and / tighter
	 * than + and -, all left to right; keywords in any case. */
	static const struct case_ cases[] = {
		{ "a = 1 OR a = 2 AND b = 3", "a:1\n", T },		/* a=1 OR (a=2 AND b=3) */
		{ "(a = 1 OR a = 2) AND b = 3", "a:1\n", U },
		{ "NOT a = 1 AND b = 1", "a:2\nb:1\n", T },		/* (NOT a=1) AND b=1 */
		{ "NOT a = 1 OR a = 1", "a:1\n", T },
		{ "a + b * 2 = 7", "a:1\nb:3\n", T },
		{ "(a + b) * 2 = 8", "a:1\nb:3\n", T },
		{ "a - b - c = 0", "a:6\nb:3\nc:3\n", T },
		{ "a / b / c = 1", "a:8\nb:4\nc:2\n", T },
		{ "-a * -b = 6", "a:2\nb:3\n", T },
		{ "a = 1 and not b = 2 Or c = 3", "a:1\nb:1\n", T },
		{ "a BETWEEN 1 AND 2 AND b = 1", "a:1\nb:1\n", T },	/* BETWEEN takes its AND first */
		{ "a between 1 and 2 and b = 1", "a:3\nb:1\n", F },
	};
	(void)state;
	RUN(cases);
}

/* ---- types ---- */

static void test_header_text_as_number(void **state)
{
	/* Next to a number, a header's text is read as a number: decimal,
	 * with a fraction and exponent, sign allowed, nothing else. Text that
	 * is not a number makes the comparison false (JMS: unlike types) but
	 * makes arithmetic unknown. */
	static const struct case_ cases[] = {
		{ "weight > 2500", "weight:2500.5\n", T },
		{ "weight > 2500", "weight:2.5e3\n", F },
		{ "weight = 2500", "weight:2.5E+3\n", T },
		{ "weight = 2500", "weight:+2500\n", T },
		{ "weight = -2500", "weight:-2500\n", T },
		{ "weight = 0.5", "weight:.5\n", T },
		{ "weight = 5", "weight:5.\n", T },
		{ "weight > 2500", "weight: 3000\n", F },	/* a space is not part of a number */
		{ "weight > 2500", "weight:3000 \n", F },
		{ "weight > 2500", "weight:0x1000\n", F },	/* hex is for literals only */
		{ "weight > 2500", "weight:heavy\n", F },
		{ "weight > 2500", "weight:\n", F },
		{ "weight > 2500", "weight:-\n", F },
		{ "weight > 2500", "weight:.\n", F },
		{ "weight > 2500", "weight:1e\n", F },
		{ "weight > 2500", "weight:inf\n", F },
		{ "weight > 2500", "weight:nan\n", F },
		{ "weight <> 2500", "weight:heavy\n", F },	/* unlike types: false, not "unequal" */
		{ "NOT weight > 2500", "weight:heavy\n", T },
		{ "weight + 0 > 2500", "weight:heavy\n", U },	/* arithmetic on a non-number */
		{ "NOT weight + 0 > 2500", "weight:heavy\n", U },
		{ "-weight < 0", "weight:heavy\n", U },
		{ "+weight > 0", "weight:heavy\n", U },
		{ "+weight > 0", "weight:1\n", T },
		{ "priority = 5", "priority:05\n", T },		/* as a number */
		{ "priority = '5'", "priority:05\n", F },	/* as text */
		{ "priority = '05'", "priority:05\n", T },
		{ "a = 2", "a:2.0\n", T },			/* exact against approximate */
		{ "a = 9223372036854775807", "a:9223372036854775807\n", T },
		{ "a = 9223372036854775806", "a:9223372036854775807\n", F },	/* exact, not rounded */
		{ "a = -9223372036854775808", "a:-9223372036854775808\n", T },
		{ "a > 9223372036854775807", "a:99999999999999999999\n", T },	/* beyond 64 bits: approximate */
		{ "a > 1", "a:1000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000\n", T },
		{ "a > 1", "a:10000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000\n", F },	/* over 100 characters */
		{ "a - a = 0", "a:1e400\n", F },		/* infinity minus infinity is NaN */
		{ "a - a <> 0", "a:1e400\n", T },
		{ "a > 1e300", "a:1e400\n", T },
	};
	(void)state;
	RUN(cases);
}

static void test_text_and_truth_values(void **state)
{
	/* Next to a string a header is text (exact bytes, case-sensitive);
	 * next to TRUE/FALSE, or as a condition, 'true' or 'false' in any
	 * case. Two headers compare as text under = and <>, as numbers
	 * under the others. */
	static const struct case_ cases[] = {
		{ "x = 'car'", "x:car\n", T },
		{ "x = 'car'", "x:Car\n", F },
		{ "x = 'car'", "x:car \n", F },
		{ "x <> 'car'", "x:bus\n", T },
		{ "x <> 'car'", "", U },
		{ "x = ''", "x:\n", T },
		{ "x = 'caf\xc3\xa9'", "x:caf\xc3\xa9\n", T },
		{ "a = b", "a:1.0\nb:1\n", F },
		{ "a <> b", "a:1.0\nb:1\n", T },
		{ "a >= b AND a <= b", "a:1.0\nb:1\n", T },
		{ "a < b", "a:x\nb:1\n", F },
		{ "a = b", "a:x\n", U },
		{ "flag = TRUE", "flag:true\n", T },
		{ "flag = TRUE", "flag:TRUE\n", T },
		{ "flag = TRUE", "flag:false\n", F },
		{ "flag = TRUE", "flag:yes\n", F },
		{ "flag <> TRUE", "flag:yes\n", F },
		{ "flag = FALSE", "flag:False\n", T },
		{ "flag = TRUE", "", U },
		{ "flag", "flag:true\n", T },
		{ "flag", "flag:false\n", F },
		{ "flag", "flag:1\n", U },
		{ "flag", "", U },
		{ "NOT flag", "flag:yes\n", U },
		{ "flag AND x = 1", "flag:true\nx:1\n", T },
		{ "(x = 1) = TRUE", "x:1\n", T },
		{ "(x = 1) = TRUE", "x:2\n", F },
		{ "(x = 1) = TRUE", "", U },
		{ "(x = 1) <> FALSE", "x:1\n", T },
		{ "(x = 1) = flag", "x:1\nflag:true\n", T },
		{ "(x = 1) = (y = 1)", "x:2\ny:3\n", T },
		{ "TRUE", "", T },
		{ "FALSE", "", F },
		{ "NOT FALSE", "", T },
		{ "TRUE = TRUE", "", T },
		{ "'a' = 'a'", "", T },
		{ "1 < 2", "", T },
		{ "Color = 'blue'", "color:blue\n", U },	/* names are case-sensitive */
		{ "color = 'blue' and NOT weight between 1 AND 5", "color:blue\nweight:9\n", T },
	};
	(void)state;
	RUN(cases);
}

static void test_arithmetic(void **state)
{
	/* Integers stay exact (Java's division truncates) until they would
	 * overflow, then go on in floating point; division or modulo by zero
	 * is unknown; literals in every notation Java allows. */
	static const struct case_ cases[] = {
		{ "a / 2 = 3", "a:7\n", T },
		{ "a / 2.0 = 3.5", "a:7\n", T },
		{ "a / -2 = -3", "a:7\n", T },
		{ "a / 0 = 1", "a:7\n", U },
		{ "a / 0.0 = 1", "a:7\n", U },
		{ "a % 3 = 1", "a:7\n", T },
		{ "a % 0 = 1", "a:7\n", U },
		{ "a % 2.5 = 2", "a:7\n", T },
		{ "a % -1 = 0", "a:-9223372036854775808\n", T },
		{ "a / -1 > 0", "a:-9223372036854775808\n", T },
		{ "a * 2 > 9223372036854775807", "a:9223372036854775807\n", T },
		{ "a + a > 0", "a:9223372036854775807\n", T },
		{ "a - 1 < 0", "a:-9223372036854775808\n", T },
		{ "-a > 0", "a:-9223372036854775808\n", T },
		{ "- -a = 5", "a:5\n", T },
		{ "-a = -5", "a:5\n", T },
		{ "a + 1 = 2", "", U },
		{ "a + 1 = 2", "a:x\n", U },
		{ "a = 0x1F", "a:31\n", T },
		{ "a = 0X1f", "a:31\n", T },
		{ "a = 017", "a:15\n", T },
		{ "a = 0", "a:0\n", T },
		{ "a = 00", "a:0\n", T },
		{ "a = 5L", "a:5\n", T },
		{ "a = 0x10l", "a:16\n", T },
		{ "a = 1.5f", "a:1.5\n", T },
		{ "a = 2D", "a:2\n", T },
		{ "a = .5", "a:0.5\n", T },
		{ "a = 7.", "a:7\n", T },
		{ "a = 7e3", "a:7000\n", T },
		{ "a = -57.9E2", "a:-5790\n", T },
		{ "a = +62", "a:62\n", T },
		{ "a = -957", "a:-957\n", T },
		{ "a = 0x7FFFFFFFFFFFFFFF", "a:9223372036854775807\n", T },
		{ "a = -9223372036854775808", "a:-9223372036854775808\n", T },
		{ "a = 6.02e23", "a:602000000000000000000000\n", T },
	};
	(void)state;
	RUN(cases);
}

static void test_name_against_literal_forms_agree(void **state)
{
	/* A name compared with a literal is compiled into one node of its
	 * own; written the other way round, or with arithmetic that defeats
	 * that, the answer is the same for every operator and value. */
	static const char *const ops[][2] = {
		{ "=", "=" }, { "<>", "<>" }, { "<", ">" }, { "<=", ">=" }, { ">", "<" }, { ">=", "<=" },
	};
	static const char *const literals[] = { "5", "4.5", "-1", "0x10", "9223372036854775807", "1e300" };
	static const char *const values[] = {
		NULL, "5", "4", "6", "5.0", "4.5", "16", "-1", "abc", "", "1e400", "9223372036854775807",
		"99999999999999999999",
	};
	char a[96], b[96], c[96], hdrs[64];
	(void)state;
	for (size_t o = 0; o < 6; o++) {
		for (size_t l = 0; l < sizeof literals / sizeof literals[0]; l++) {
			snprintf(a, sizeof a, "x %s %s", ops[o][0], literals[l]);
			snprintf(b, sizeof b, "%s %s x", literals[l], ops[o][1]);
			snprintf(c, sizeof c, "x %s %s * 1", ops[o][0], literals[l]);
			for (size_t v = 0; v < sizeof values / sizeof values[0]; v++) {
				enum selector_result ra, rb, rc;
				if (values[v])
					snprintf(hdrs, sizeof hdrs, "x:%s\n", values[v]);
				else
					hdrs[0] = 0;
				ra = eval_on(a, hdrs);
				rb = eval_on(b, hdrs);
				rc = eval_on(c, hdrs);
				if (ra != rb || (ra != rc && !(values[v] && rc == U)))
					fail_msg("x:%s: '%s' %s, '%s' %s, '%s' %s", values[v] ? values[v] : "(absent)", a,
					         result_name(ra), b, result_name(rb), c, result_name(rc));
			}
		}
	}
	/* strings: against a literal either way round, and against a header */
	for (int neg = 0; neg < 2; neg++) {
		static const char *const svalues[] = { NULL, "x", "X", "", "xx" };
		snprintf(a, sizeof a, "s %s 'x'", neg ? "<>" : "=");
		snprintf(b, sizeof b, "'x' %s s", neg ? "<>" : "=");
		snprintf(c, sizeof c, "s %s t", neg ? "<>" : "=");
		for (size_t v = 0; v < sizeof svalues / sizeof svalues[0]; v++) {
			if (svalues[v])
				snprintf(hdrs, sizeof hdrs, "t:x\ns:%s\n", svalues[v]);
			else
				snprintf(hdrs, sizeof hdrs, "t:x\n");
			assert_int_equal(eval_on(a, hdrs), eval_on(b, hdrs));
			assert_int_equal(eval_on(a, hdrs), eval_on(c, hdrs));
		}
	}
}

/* ---- LIKE, IN, BETWEEN ---- */

static void test_like(void **state)
{
	/* % is any run (empty too), _ one character (a UTF-8 character, not
	 * a byte); ESCAPE makes either, or itself, literal. Case-sensitive. */
	static const struct case_ cases[] = {
		{ "a LIKE '%'", "a:\n", T },
		{ "a LIKE '%'", "a:anything\n", T },
		{ "a LIKE ''", "a:\n", T },
		{ "a LIKE ''", "a:x\n", F },
		{ "a LIKE 'abc'", "a:abc\n", T },
		{ "a LIKE 'abc'", "a:abcd\n", F },
		{ "a LIKE 'abc'", "a:ab\n", F },
		{ "a LIKE '_'", "a:\xc3\xa9\n", T },
		{ "a LIKE '__'", "a:\xc3\xa9\n", F },
		{ "a LIKE '_'", "a:ab\n", F },
		{ "a LIKE '_'", "a:\n", F },
		{ "a LIKE 'caf_'", "a:caf\xc3\xa9\n", T },
		{ "a LIKE '%b%'", "a:abc\n", T },
		{ "a LIKE '%b%'", "a:acd\n", F },
		{ "a LIKE 'a%b%c'", "a:aXXbYYc\n", T },
		{ "a LIKE 'a%b%c'", "a:abcb\n", F },
		{ "a LIKE '%aab'", "a:aaab\n", T },
		{ "a LIKE '%a_b'", "a:xaab\n", T },
		{ "a LIKE '%%%a'", "a:a\n", T },
		{ "a LIKE 'a%%b'", "a:ab\n", T },
		{ "a LIKE '_%_'", "a:a\n", F },
		{ "a LIKE '_%_'", "a:ab\n", T },
		{ "a LIKE 'A%'", "a:abc\n", F },
		{ "a LIKE '/queue/%.jobs'", "a:/queue/render.jobs\n", T },
		{ "a LIKE '100\\%' ESCAPE '\\'", "a:100%\n", T },
		{ "a LIKE '100\\%' ESCAPE '\\'", "a:1000\n", F },
		{ "a LIKE '%!%%' ESCAPE '!'", "a:50% off\n", T },
		{ "a LIKE '%!%%' ESCAPE '!'", "a:50 off\n", F },
		{ "a LIKE 'a!!b' ESCAPE '!'", "a:a!b\n", T },
		{ "a LIKE 'a!_b' escape '!'", "a:a_b\n", T },
		{ "a LIKE 'a!_b' ESCAPE '!'", "a:axb\n", F },
		{ "a LIKE 'x\xc2\xa7%' ESCAPE '\xc2\xa7'", "a:x%\n", T },
		{ "a LIKE 'x\xc2\xa7%' ESCAPE '\xc2\xa7'", "a:xy\n", F },
		{ "a LIKE 'it''s%'", "a:it's ok\n", T },
		{ "a LIKE '''%' ESCAPE ''''", "a:%\n", T },
		{ "a LIKE '''%' ESCAPE ''''", "a:'%\n", F },
		{ "a LIKE '''''%' ESCAPE ''''", "a:'x\n", T },	/* '' then %: a quote, then anything */
		{ "a LIKE '5'", "a:5\n", T },
	};
	(void)state;
	RUN(cases);
}

static void test_like_is_linear_enough(void **state)
{
	/* A pattern made to backtrack against a long value still answers
	 * (quadratic at worst, never exponential). */
	char text[64], hdrs[9000];
	struct view v = { .hdrs = hdrs };
	struct selector *s;
	(void)state;
	memcpy(hdrs, "a:", 2);
	memset(hdrs + 2, 'a', 8000);
	memcpy(hdrs + 8002, "\n", 2);
	snprintf(text, sizeof text, "a LIKE '%%a%%a%%a%%a%%a%%a%%a%%b'");
	s = compile_ok(text);
	assert_int_equal(selector_eval(s, get, &v), SELECTOR_FALSE);
	selector_free(s);
}

static void test_in_and_between(void **state)
{
	/* IN is = against each item (strings as text, numbers as numbers,
	 * the latter an extension); NOT IN its negation; NULL is unknown.
	 * BETWEEN is lo <= x AND x <= hi, NOT BETWEEN x < lo OR x > hi, so a
	 * non-number matches neither (the case Qpid's QPID-6717 got wrong). */
	static const struct case_ cases[] = {
		{ "a IN ('x')", "a:x\n", T },
		{ "a IN ('it''s', 'b')", "a:it's\n", T },
		{ "a IN (1, 2.5, -3)", "a:2.5\n", T },
		{ "a IN (1, 2.5, -3)", "a:-3\n", T },
		{ "a IN (1, 2.5, -3)", "a:-3.0\n", T },
		{ "a IN (1, 2.5, +3)", "a:3\n", T },
		{ "a IN (1, 2)", "a:02\n", T },
		{ "a IN (1, 2)", "a:abc\n", F },
		{ "a IN ('1', 2)", "a:01\n", F },
		{ "a NOT IN (1, 2)", "a:abc\n", T },
		{ "a NOT IN (1, 2)", "", U },
		{ "a IN ('x', 'y')", "a:z\n", F },
		{ "a BETWEEN 1 AND 10", "a:foo\n", F },
		{ "a NOT BETWEEN 1 AND 10", "a:foo\n", F },
		{ "a BETWEEN 1 AND 10", "a:1.5\n", T },
		{ "a BETWEEN 10 AND 1", "a:5\n", F },
		{ "a BETWEEN b AND c", "a:5\nb:1\nc:9\n", T },
		{ "a BETWEEN b AND c", "a:5\nb:6\nc:9\n", F },
		{ "a BETWEEN 1 AND hi", "a:5\n", U },
		{ "a BETWEEN 1 AND hi", "a:0\n", F },
		{ "a NOT BETWEEN 1 AND hi", "a:0\n", T },
		{ "a NOT BETWEEN 1 AND hi", "a:5\n", U },
		{ "a BETWEEN -1 AND 1 + 1", "a:2\n", T },
		{ "a * 2 BETWEEN 3 AND 4", "a:2\n", T },
	};
	(void)state;
	RUN(cases);
}

/* ---- names ---- */

static void test_aliases_and_quoted_names(void **state)
{
	/* JMS header names read mqbroker's headers; JMSPriority is 4 when
	 * the message has no priority (JMS's default); "quoted" names reach
	 * headers with '-' and other characters; '.' and '$' need no quotes. */
	static const struct case_ cases[] = {
		{ "JMSPriority > 4", "priority:7\n", T },
		{ "JMSPriority > 4", "", F },
		{ "JMSPriority = 4", "", T },
		{ "JMSPriority IS NULL", "", F },
		{ "priority IS NULL", "", T },
		{ "JMSType = 'car'", "type:car\n", T },
		{ "JMSType IS NULL", "", T },
		{ "JMSType = ''", "type:\n", T },		/* an empty literal before any other string */
		{ "JMSType LIKE ''", "type:\n", T },
		{ "JMSCorrelationID = 'c-1'", "correlation-id:c-1\n", T },
		{ "JMSReplyTo LIKE '/temp-queue/%'", "reply-to:/temp-queue/r\n", T },
		{ "\"correlation-id\" = 'c-1'", "correlation-id:c-1\n", T },
		{ "\"content-type\" = 'text/plain'", "content-type:text/plain\n", T },
		{ "\"a\"\"b\" = 1", "a\"b:1\n", T },
		{ "\"JMSPriority\" = 4", "", T },
		{ "\"AND\" = 1", "AND:1\n", T },
		{ "a.b.c = 1", "a.b.c:1\n", T },
		{ "$x = 1", "$x:1\n", T },
		{ "_x1 = 1", "_x1:1\n", T },
		{ "caf\xc3\xa9 = 1", "caf\xc3\xa9:1\n", T },
		{ "jmspriority = 4", "", U },		/* a JMS name is case-sensitive too */
		{ "convert_string_expressions:age > 18", "age:21\n", T },	/* ActiveMQ's prefix, a no-op */
		{ "convert_string_expressions: age > 18", "age:12\n", F },
	};
	(void)state;
	RUN(cases);
}

static void test_broker_fields(void **state)
{
	/* Names the broker answers from what it holds, through the callback
	 * (a message id formatted into the scratch buffer it offers). */
	struct view v = { .id = 42 };
	static const struct {
		const char *selector;
		enum selector_result want;
	} cases[] = {
		{ "JMSMessageID = '42'", T },
		{ "\"message-id\" = 42", T },
		{ "JMSDeliveryMode = 'PERSISTENT'", T },
		{ "JMSTimestamp > 1700000000000", T },
		{ "JMSExpiration = 0", T },
		{ "JMSDestination LIKE '/queue/%'", T },
		{ "destination = '/queue/render'", T },
		{ "JMSRedelivered", T },
		{ "redelivered = TRUE", T },
		{ "JMSXDeliveryCount > 1", T },
		{ "\"delivery-count\" = 2", T },
	};
	(void)state;
	v.fields[SELECTOR_DELIVERY_MODE] = "PERSISTENT";
	v.fields[SELECTOR_TIMESTAMP] = "1760000000000";
	v.fields[SELECTOR_EXPIRES] = "0";
	v.fields[SELECTOR_DESTINATION] = "/queue/render";
	v.fields[SELECTOR_REDELIVERED] = "true";
	v.fields[SELECTOR_DELIVERY_COUNT] = "2";
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct selector *s = compile_ok(cases[i].selector);
		enum selector_result r = selector_eval(s, get, &v);
		if (r != cases[i].want)
			fail_msg("'%s': %s", cases[i].selector, result_name(r));
		selector_free(s);
	}
}

static void test_names_resolved_once(void **state)
{
	/* selector_names lists each name once, after aliases, in order of
	 * first appearance, JMSType and type being one name. */
	const struct selector_name *names;
	struct selector *s = compile_ok("JMSPriority > 4 AND color = 'x' AND JMSType = 't' AND type <> 'u' "
	                                "AND \"JMSPriority\" < 9 AND JMSMessageID IS NOT NULL");
	(void)state;
	assert_int_equal(selector_names(s, &names), 4);
	assert_int_equal(names[0].field, SELECTOR_HEADER);
	assert_string_equal(names[0].name, "priority");
	assert_int_equal(names[0].len, 8);
	assert_string_equal(names[0].dflt, "4");
	assert_string_equal(names[1].name, "color");
	assert_null(names[1].dflt);
	assert_string_equal(names[2].name, "type");
	assert_int_equal(names[3].field, SELECTOR_MESSAGE_ID);
	assert_string_equal(selector_text(s), "JMSPriority > 4 AND color = 'x' AND JMSType = 't' AND type <> 'u' "
	                                      "AND \"JMSPriority\" < 9 AND JMSMessageID IS NOT NULL");
	selector_free(s);
}

static void test_each_name_read_at_most_once(void **state)
{
	/* The callback is asked once per name per evaluation however often
	 * the selector names it, and not at all for names that AND and OR
	 * did not need. */
	struct selector *s = compile_ok("a = 1 OR a = 2 OR a = 3 OR a > 2.5 OR a LIKE '3%' OR a IN ('3')");
	struct view v = { .hdrs = "a:3\n" };
	(void)state;
	assert_int_equal(selector_eval(s, get, &v), SELECTOR_TRUE);
	assert_int_equal(v.reads, 1);
	v.reads = 0;
	v.hdrs = "a:0\n";
	assert_int_equal(selector_eval(s, get, &v), SELECTOR_FALSE);
	assert_int_equal(v.reads, 1);
	selector_free(s);

	s = compile_ok("a = 1 AND b = 2 AND c = 3");
	v.reads = 0;
	v.hdrs = "a:2\nb:2\nc:3\n";
	assert_int_equal(selector_eval(s, get, &v), SELECTOR_FALSE);
	assert_int_equal(v.reads, 1);
	assert_string_equal(v.asked[0], "a");
	v.reads = 0;
	v.hdrs = "a:1\nb:2\nc:3\n";
	assert_int_equal(selector_eval(s, get, &v), SELECTOR_TRUE);
	assert_int_equal(v.reads, 3);
	selector_free(s);
}

/* ---- selectors that never match ---- */

static void test_never_matching_selectors(void **state)
{
	/* Contradictions are legal selectors that match no message at all. */
	static const char *const selectors[] = {
		"x = 1 AND x = 2",
		"x IS NULL AND x IS NOT NULL",
		"FALSE",
		"NOT TRUE",
		"x <> x",
		"x > 5 AND x < 3",
		"x LIKE 'a%' AND x LIKE 'b%'",
		"x IN ('a') AND x NOT IN ('a')",
		"x BETWEEN 5 AND 1",
		"x = 'a' AND NOT x = 'a'",
		"x / 0 = x / 0",
		"x NOT BETWEEN 1 AND 10 AND x BETWEEN 2 AND 3",
	};
	static const char *const messages[] = {
		"", "x:1\n", "x:2\n", "x:4\n", "x:a\n", "x:b\n", "x:true\n", "x:1e400\n", "x:-0\n", "x:\n", "y:1\n",
	};
	(void)state;
	for (size_t i = 0; i < sizeof selectors / sizeof selectors[0]; i++)
		for (size_t j = 0; j < sizeof messages / sizeof messages[0]; j++)
			if (eval_on(selectors[i], messages[j]) == SELECTOR_TRUE)
				fail_msg("'%s' matched {%s}", selectors[i], messages[j]);
}

/* ---- errors ---- */

static void test_every_error(void **state)
{
	/* Each way a selector can be wrong, with the exact text: where
	 * (1-based, in characters) and what was expected. */
	static const struct {
		const char *selector;
		const char *err;
	} cases[] = {
		{ "weight > 2500 AND color =", "selector: at character 26: expected a value after '=', got end of input" },
		{ "a = 1 AND", "selector: at character 10: expected a condition after AND, got end of input" },
		{ "a = 1 OR OR", "selector: at character 10: expected a condition after OR, got OR" },
		{ "NOT", "selector: at character 4: expected a condition after NOT, got end of input" },
		{ ")", "selector: at character 1: expected a condition, got ')'" },
		{ "a = (", "selector: at character 6: expected a value after '(', got end of input" },
		{ "a BETWEEN", "selector: at character 10: expected a value after BETWEEN, got end of input" },
		{ "(a = 1", "selector: at character 7: expected ')' to close the '(' at character 1, got end of input" },
		{ "a = 1)", "selector: at character 6: ')' without a matching '('" },
		{ "a = 1 b", "selector: at character 7: expected AND, OR or end of input, got the name 'b'" },
		{ "a = 1 = 2", "selector: at character 7: expected AND, OR or end of input, got '='" },
		{ "a == 1", "selector: at character 3: '==' is not an operator: write =" },
		{ "a != 1", "selector: at character 3: '!=' is not an operator: write <>" },
		{ "!a", "selector: at character 1: '!' is not an operator: write NOT" },
		{ "a && b", "selector: at character 3: '&&' is not an operator: write AND" },
		{ "a || b", "selector: at character 3: '||' is not an operator: write OR" },
		{ "a = 'abc", "selector: at character 5: the string starting here has no closing '" },
		{ "a = \"x", "selector: at character 5: the quoted name starting here has no closing \"" },
		{ "\"\" = 1", "selector: at character 1: a quoted name cannot be empty" },
		{ "a = #", "selector: at character 5: unexpected character '#'" },
		{ "a = \x01", "selector: at character 5: unexpected control character 0x01" },
		{ "a = 12abc", "selector: at character 5: malformed number '12abc'" },
		{ "a = 1.2.3", "selector: at character 5: malformed number '1.2.3'" },
		{ "a = 0x", "selector: at character 5: malformed number: expected hex digits after '0x'" },
		{ "a = 09", "selector: at character 5: malformed number '09': a leading 0 makes an octal number, and 9 is not an octal digit" },
		{ "a = 1e", "selector: at character 5: malformed number '1e': expected digits in the exponent" },
		{ "a = 99999999999999999999", "selector: at character 5: the number 99999999999999999999 is out of range (64-bit integers)" },
		{ "a = 9223372036854775808", "selector: at character 5: the number 9223372036854775808 is out of range (64-bit integers)" },
		{ "a = 0x8000000000000000", "selector: at character 5: the number 0x8000000000000000 is out of range (64-bit integers)" },
		{ "a = 01000000000000000000000", "selector: at character 5: the number 01000000000000000000000 is out of range (64-bit integers)" },
		{ "a = 1e999", "selector: at character 5: the number 1e999 is out of range (64-bit floating point)" },
		{ "a < 'b'", "selector: at character 5: '<' needs numbers, got a string (strings and conditions compare only with = and <>)" },
		{ "TRUE >= a", "selector: at character 1: '>=' needs numbers, got a condition (strings and conditions compare only with = and <>)" },
		{ "'a' = 1", "selector: at character 5: '=' cannot compare a string with a number" },
		{ "TRUE <> 1", "selector: at character 6: '<>' cannot compare a condition with a number" },
		{ "a + 'x' = 1", "selector: at character 5: '+' needs numbers, got a string" },
		{ "(a = 1) * 2 > 0", "selector: at character 1: '*' needs numbers, got a condition" },
		{ "-'x' = 1", "selector: at character 2: '-' needs numbers, got a string" },
		{ "a BETWEEN 'a' AND 'b'", "selector: at character 11: BETWEEN needs numbers, got a string" },
		{ "a BETWEEN 1 OR 2", "selector: at character 13: expected AND in BETWEEN, got OR" },
		{ "a IN 'x'", "selector: at character 6: expected '(' after IN, got the string 'x'" },
		{ "a IN ()", "selector: at character 7: expected a string or a number in the IN list, got ')'" },
		{ "a IN ('a' 'b')", "selector: at character 11: expected ',' or ')' in the IN list that opens at character 6, got the string 'b'" },
		{ "a IN ('a', b)", "selector: at character 12: expected a string or a number in the IN list, got the name 'b'" },
		{ "a IN ('a', -'b')", "selector: at character 13: expected a number after '-' in the IN list, got the string 'b'" },
		{ "a IN ('a'", "selector: at character 10: expected ',' or ')' in the IN list that opens at character 6, got end of input" },
		{ "1 IN ('a')", "selector: at character 3: IN needs a name on its left, got a number" },
		{ "a LIKE b", "selector: at character 8: expected a pattern string after LIKE, got the name 'b'" },
		{ "'a' LIKE 'b'", "selector: at character 5: LIKE needs a name on its left, got a string" },
		{ "a LIKE 'x' ESCAPE 'ab'", "selector: at character 19: ESCAPE takes exactly one character, got the string 'ab'" },
		{ "a LIKE 'x' ESCAPE ''", "selector: at character 19: ESCAPE takes exactly one character, got the string ''" },
		{ "a LIKE 'x' ESCAPE 1", "selector: at character 19: expected a one-character string after ESCAPE, got the number 1" },
		{ "a LIKE 'x\\' ESCAPE '\\'", "selector: at character 10: the LIKE pattern ends with its escape character" },
		{ "a LIKE 'x\\y' ESCAPE '\\'", "selector: at character 11: in a LIKE pattern the escape character must be followed by %, _ or itself" },
		{ "a IS 1", "selector: at character 6: expected NULL after IS, got the number 1" },
		{ "a IS NOT 1", "selector: at character 10: expected NULL after IS NOT, got the number 1" },
		{ "1 IS NULL", "selector: at character 3: IS NULL needs a name on its left, got a number" },
		{ "a NOT = 1", "selector: at character 7: expected BETWEEN, IN or LIKE after NOT, got '='" },
		{ "NULL = 1", "selector: at character 1: NULL is only allowed in IS NULL and IS NOT NULL" },
		{ "a = NULL", "selector: at character 5: NULL is only allowed in IS NULL and IS NOT NULL" },
		{ "a + 1", "selector: at character 1: expected a condition (a comparison, LIKE, IN, BETWEEN, IS NULL or TRUE/FALSE), got a number" },
		{ "'x'", "selector: at character 1: expected a condition (a comparison, LIKE, IN, BETWEEN, IS NULL or TRUE/FALSE), got a string" },
		{ "a = 1 AND 5", "selector: at character 11: expected a condition (a comparison, LIKE, IN, BETWEEN, IS NULL or TRUE/FALSE), got a number" },
		{ "NOT 'x'", "selector: at character 5: expected a condition (a comparison, LIKE, IN, BETWEEN, IS NULL or TRUE/FALSE), got a string" },
		{ "caf\xc3\xa9 = '\xc3\xa9' AND x = ", "selector: at character 20: expected a value after '=', got end of input" },
		{ "a = 'a very long string literal that goes on' x",
		  "selector: at character 47: expected AND, OR or end of input, got the name 'x'" },
		{ "a = 1 'a very long string literal that goes on'",
		  "selector: at character 7: expected AND, OR or end of input, got the string 'a very long string literal t..." },
		{ "", "selector: empty" },
		{ "convert_string_expressions: ", "selector: empty" },
		{ "convert_string_expressions:)", "selector: at character 28: expected a condition, got ')'" },
		{ " \t\r\n", "selector: empty" },
	};
	char err[256];
	(void)state;
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct selector *s;
		memset(err, 'x', sizeof err);
		s = selector_compile(cases[i].selector, strlen(cases[i].selector), err, sizeof err);
		if (s)
			fail_msg("'%s' compiled", cases[i].selector);
		if (strcmp(err, cases[i].err) != 0)
			fail_msg("'%s':\n  got      %s\n  expected %s", cases[i].selector, err, cases[i].err);
	}
}

static void test_nul_byte_refused(void **state)
{
	/* The text comes with its length: a NUL inside it is an error, in a
	 * string literal too, not the end of the selector. */
	char err[256];
	static const char text[] = "a = 'x\0y'";
	(void)state;
	assert_null(selector_compile(text, sizeof text - 1, err, sizeof err));
	assert_string_equal(err, "selector: at character 7: a NUL byte is not allowed in a selector");
	assert_null(selector_compile("a = 1\0", 6, err, sizeof err));
	assert_string_equal(err, "selector: at character 6: a NUL byte is not allowed in a selector");
	/* and a small or absent error buffer is fine */
	assert_null(selector_compile("a =", 3, err, 8));
	assert_string_equal(err, "selecto");
	assert_null(selector_compile("a =", 3, NULL, 0));
}

static void test_bounds(void **state)
{
	/* Length, nesting depth and the number of names are bounded, each
	 * with an error naming the limit; within them anything compiles. */
	char err[256], want[256], *text = malloc(SELECTOR_MAX_LEN + 64), *w;
	struct selector *s;
	struct view v = { .hdrs = "a:1\n" };
	(void)state;

	/* length: exactly the limit compiles, one more does not */
	memset(text, 0, SELECTOR_MAX_LEN + 64);
	memcpy(text, "a = '", 5);
	memset(text + 5, 'x', SELECTOR_MAX_LEN - 6);
	text[SELECTOR_MAX_LEN - 1] = '\'';
	s = compile_ok(text);
	selector_free(s);
	text[SELECTOR_MAX_LEN - 1] = 'x';
	text[SELECTOR_MAX_LEN] = '\'';
	assert_null(selector_compile(text, SELECTOR_MAX_LEN + 1, err, sizeof err));
	assert_string_equal(err, "selector: too long: 4097 bytes (limit 4096)");

	/* parentheses: 64 deep compile, 65 do not */
	w = text;
	for (int i = 0; i < SELECTOR_MAX_DEPTH; i++)
		*w++ = '(';
	w += sprintf(w, "a = 1");
	for (int i = 0; i < SELECTOR_MAX_DEPTH; i++)
		*w++ = ')';
	*w = 0;
	s = compile_ok(text);
	assert_int_equal(selector_eval(s, get, &v), SELECTOR_TRUE);
	selector_free(s);
	memmove(text + 1, text, strlen(text) + 1);
	strcat(text, ")");
	assert_null(selector_compile(text, strlen(text), err, sizeof err));
	assert_string_equal(err, "selector: at character 65: nested too deeply "
	                         "(more than 64 levels of parentheses, NOT, signs and operators)");

	/* as deep as the text allows: refused early, no stack exhausted */
	memset(text, '(', SELECTOR_MAX_LEN);
	assert_null(selector_compile(text, SELECTOR_MAX_LEN, err, sizeof err));
	assert_string_equal(err, "selector: at character 65: nested too deeply "
	                         "(more than 64 levels of parentheses, NOT, signs and operators)");
	w = text;
	for (int i = 0; i < 1000; i++)
		w += sprintf(w, "NOT ");
	sprintf(w, "a");
	assert_null(selector_compile(text, strlen(text), err, sizeof err));
	assert_non_null(strstr(err, "nested too deeply"));
	w = text;
	for (int i = 0; i < 1000; i++)
		w += sprintf(w, "-");
	sprintf(w, "a = 1");
	assert_null(selector_compile(text, strlen(text), err, sizeof err));
	assert_non_null(strstr(err, "nested too deeply"));

	/* a long arithmetic chain is deep; a long AND or OR chain is not */
	w = text + sprintf(text, "a");
	for (int i = 0; i < 100; i++)
		w += sprintf(w, " + a");
	sprintf(w, " > 0");
	assert_null(selector_compile(text, strlen(text), err, sizeof err));
	assert_non_null(strstr(err, "nested too deeply"));
	w = text + sprintf(text, "a = 1");
	for (int i = 0; i < 300; i++)
		w += sprintf(w, " AND a <> %d", i + 2);
	s = compile_ok(text);
	assert_int_equal(selector_eval(s, get, &v), SELECTOR_TRUE);
	selector_free(s);
	w = text + sprintf(text, "a = 0");
	for (int i = 0; i < 300; i++)
		w += sprintf(w, " OR a = %d", i + 1000);
	w += sprintf(w, " OR a = 1");
	s = compile_ok(text);
	assert_int_equal(selector_eval(s, get, &v), SELECTOR_TRUE);
	selector_free(s);

	/* names: 64 different ones compile, the 65th is refused where it is */
	w = text + sprintf(text, "n0 = 1");
	for (int i = 1; i < SELECTOR_MAX_NAMES; i++)
		w += sprintf(w, " OR n%d = 1", i);
	s = compile_ok(text);
	selector_free(s);
	sprintf(w, " OR n0 = 2 OR extra = 1");
	assert_null(selector_compile(text, strlen(text), err, sizeof err));
	snprintf(want, sizeof want, "selector: at character %d: more than 64 different names",
	         (int)(strstr(text, "extra") - text + 1));
	assert_string_equal(err, want);
	free(text);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_jms_spec_examples),
		cmocka_unit_test(test_three_valued_logic),
		cmocka_unit_test(test_precedence),
		cmocka_unit_test(test_header_text_as_number),
		cmocka_unit_test(test_text_and_truth_values),
		cmocka_unit_test(test_arithmetic),
		cmocka_unit_test(test_name_against_literal_forms_agree),
		cmocka_unit_test(test_like),
		cmocka_unit_test(test_like_is_linear_enough),
		cmocka_unit_test(test_in_and_between),
		cmocka_unit_test(test_aliases_and_quoted_names),
		cmocka_unit_test(test_broker_fields),
		cmocka_unit_test(test_names_resolved_once),
		cmocka_unit_test(test_each_name_read_at_most_once),
		cmocka_unit_test(test_never_matching_selectors),
		cmocka_unit_test(test_every_error),
		cmocka_unit_test(test_nul_byte_refused),
		cmocka_unit_test(test_bounds),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
