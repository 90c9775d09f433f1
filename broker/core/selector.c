/* selector.c: JMS selectors. A lexer, a recursive-descent parser that
 * checks types where they are known at compile time, and a tree evaluator
 * with SQL's three-valued logic.
 *
 * The compiled form is one allocation: the nodes (an array, children by
 * index), the child lists of AND, OR and IN, a pool holding every string
 * literal and LIKE pattern already decoded, the names read, and the text.
 * Evaluation walks the tree with a per-call table of what each name read
 * (the text, and its number once parsed) on the stack, so a name is asked
 * of the message at most once and nothing is allocated. */
#include "core/selector.h"

#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/util.h"

/* ---- the compiled form ---- */

enum op {
	/* conditions: eval_cond() */
	OP_TRUE,
	OP_FALSE,
	OP_AND,			/* n children from kids[a] */
	OP_OR,			/* n children from kids[a] */
	OP_NOT,			/* a */
	OP_EQ,			/* a = u.k.b; the six comparisons stay in this order */
	OP_NE,
	OP_LT,
	OP_LE,
	OP_GT,
	OP_GE,
	OP_BETWEEN,		/* a BETWEEN u.k.b AND u.k.c (neg: NOT BETWEEN) */
	OP_IN,			/* a IN (n literals from kids[u.k.b]) */
	OP_LIKE,		/* a LIKE the pattern program at u.s */
	OP_ISNULL,		/* a IS NULL (neg: IS NOT NULL) */
	OP_TRUTH,		/* a name used as a condition: 'true' or 'false' */
	/* the commonest comparisons, name against literal, in one node */
	OP_NAME_STR,		/* names[a] = (or <> when neg) the string at u.s */
	OP_NAME_INT,		/* names[a] n (OP_EQ..OP_GE) u.i */
	OP_NAME_DBL,		/* names[a] n (OP_EQ..OP_GE) u.d */
	/* values: eval_val() */
	OP_NAME,		/* names[a] */
	OP_INT,			/* u.i */
	OP_DBL,			/* u.d */
	OP_STR,			/* pool bytes at u.s */
	OP_NEG,			/* -a */
	OP_POS,			/* +a: a as a number */
	OP_ADD,			/* a + u.k.b; the five stay in this order */
	OP_SUB,
	OP_MUL,
	OP_DIV,
	OP_MOD,
	OP_COND,		/* a condition used as a value: TRUE, FALSE or NULL */
};

struct node {
	uint8_t op;		/* enum op */
	uint8_t neg;		/* NOT BETWEEN, NOT IN, NOT LIKE, IS NOT NULL */
	uint16_t n;		/* children of AND, OR; literals of IN */
	uint32_t a;
	union {
		struct { uint32_t b, c; } k;
		struct { uint32_t off, len; } s;
		int64_t i;
		double d;
	} u;
};

/* LIKE patterns are stored with their wildcards as two-byte codes after a
 * NUL, which no literal byte can be (the lexer refuses NUL). */
#define LIKE_ANY 1		/* % */
#define LIKE_ONE 2		/* _ */

struct selector {
	const struct node *nodes;
	const uint32_t *kids;
	const char *pool;
	const struct selector_name *names;
	const char *text;
	uint32_t root;
	uint32_t nnames;
};

/* ---- names ---- */

/* JMS's header names, and the names a consumer sees on MESSAGE for what
 * the broker holds, resolved to what mqbroker keeps (docs/protocol.md has
 * this table for users). */
static const struct alias {
	const char *from;
	enum selector_field field;
	const char *name;
	const char *dflt;
} aliases[] = {
	{ "JMSMessageID", SELECTOR_MESSAGE_ID, "message-id", NULL },
	{ "JMSTimestamp", SELECTOR_TIMESTAMP, "timestamp", NULL },
	{ "JMSPriority", SELECTOR_HEADER, "priority", "4" },
	{ "JMSType", SELECTOR_HEADER, "type", NULL },
	{ "JMSCorrelationID", SELECTOR_HEADER, "correlation-id", NULL },
	{ "JMSReplyTo", SELECTOR_HEADER, "reply-to", NULL },
	{ "JMSDeliveryMode", SELECTOR_DELIVERY_MODE, "persistent", NULL },
	{ "JMSExpiration", SELECTOR_EXPIRES, "expires", NULL },
	{ "JMSDestination", SELECTOR_DESTINATION, "destination", NULL },
	{ "JMSRedelivered", SELECTOR_REDELIVERED, "redelivered", NULL },
	{ "JMSXDeliveryCount", SELECTOR_DELIVERY_COUNT, "delivery-count", NULL },
	/* headers of the MESSAGE frame that are not kept with the message */
	{ "message-id", SELECTOR_MESSAGE_ID, "message-id", NULL },
	{ "destination", SELECTOR_DESTINATION, "destination", NULL },
	{ "redelivered", SELECTOR_REDELIVERED, "redelivered", NULL },
	{ "delivery-count", SELECTOR_DELIVERY_COUNT, "delivery-count", NULL },
};

/* ---- tokens ---- */

enum tok {
	TK_END,
	TK_NAME,		/* a name, or a "quoted name" */
	TK_STRING,
	TK_INT,
	TK_FLOAT,
	TK_AND,			/* keywords, from here to TK_FALSE */
	TK_OR,
	TK_NOT,
	TK_BETWEEN,
	TK_LIKE,
	TK_IN,
	TK_IS,
	TK_NULL,
	TK_ESCAPE,
	TK_TRUE,
	TK_FALSE,
	TK_EQ,			/* operators; the six comparisons in OP_EQ's order */
	TK_NE,
	TK_LT,
	TK_LE,
	TK_GT,
	TK_GE,
	TK_PLUS,
	TK_MINUS,
	TK_STAR,
	TK_SLASH,
	TK_PERCENT,
	TK_LPAREN,
	TK_RPAREN,
	TK_COMMA,
};

static const char *const tok_text[] = {
	[TK_AND] = "AND", [TK_OR] = "OR", [TK_NOT] = "NOT", [TK_BETWEEN] = "BETWEEN",
	[TK_LIKE] = "LIKE", [TK_IN] = "IN", [TK_IS] = "IS", [TK_NULL] = "NULL",
	[TK_ESCAPE] = "ESCAPE", [TK_TRUE] = "TRUE", [TK_FALSE] = "FALSE",
	[TK_EQ] = "=", [TK_NE] = "<>", [TK_LT] = "<", [TK_LE] = "<=", [TK_GT] = ">",
	[TK_GE] = ">=", [TK_PLUS] = "+", [TK_MINUS] = "-", [TK_STAR] = "*",
	[TK_SLASH] = "/", [TK_PERCENT] = "%", [TK_LPAREN] = "(", [TK_RPAREN] = ")",
	[TK_COMMA] = ",",
};

struct token {
	enum tok t;
	size_t off, len;	/* where it is in the text */
	uint64_t u;		/* TK_INT: its magnitude, up to 2^63 (which only a minus makes valid) */
	double d;		/* TK_FLOAT */
	bool quoted;		/* TK_NAME written "like-this" */
};

/* ---- the parser ---- */

/* What an expression is, as far as compile time can tell. */
enum kind {
	K_NUM,			/* a number literal or arithmetic */
	K_STR,			/* a string literal */
	K_BOOL,			/* a condition (a node for eval_cond) */
	K_TEXT,			/* a name: text whose type its context decides */
};

struct expr {
	uint32_t node;
	uint8_t kind;		/* enum kind */
	bool name;		/* a bare name, which LIKE, IN and IS NULL need */
	uint16_t depth;		/* levels of nodes below and including this one */
	size_t start;		/* where it starts in the text */
};

struct pname {
	enum selector_field field;
	const char *fixed;	/* the alias table's name, or NULL: the name is in the pool */
	uint32_t off, len;
	const char *dflt;
};

struct parser {
	const char *src;
	size_t len;
	struct token tok;	/* the current token */
	struct token prev;	/* the one before it, for "after X" in errors */
	int nest;		/* parser recursion, bounded like the tree */
	bool failed;
	char *err;
	size_t errlen;
	char *tmp;		/* len bytes, to decode one quoted token into */

	struct node *nodes;
	size_t nnodes, capnodes;
	uint32_t *kids;
	size_t nkids, capkids;
	char *pool;
	size_t npool, cappool;
	struct pname names[SELECTOR_MAX_NAMES];
	size_t nnames;
};

/* 1-based position in characters: UTF-8 continuation bytes do not count. */
static size_t charpos(const char *s, size_t off)
{
	size_t n = 1;
	for (size_t i = 0; i < off; i++)
		n += ((unsigned char)s[i] & 0xC0) != 0x80;
	return n;
}

static void fail(struct parser *p, size_t off, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void fail(struct parser *p, size_t off, const char *fmt, ...)
{
	char msg[256];
	va_list ap;
	if (p->failed)
		return;
	p->failed = true;
	p->tok.t = TK_END;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	if (p->err && p->errlen)
		snprintf(p->err, p->errlen, "selector: at character %zu: %s", charpos(p->src, off), msg);
}

/* At most 32 bytes of the text at off, cut on a character boundary. */
static void excerpt(const struct parser *p, size_t off, size_t len, char *buf, size_t n)
{
	size_t k = len;
	const char *more = "";
	if (k > 32) {
		k = 29;
		while (k > 0 && ((unsigned char)p->src[off + k] & 0xC0) == 0x80)
			k--;
		more = "...";
	}
	snprintf(buf, n, "%.*s%s", (int)k, p->src + off, more);
}

/* A token as an error message names it: "the name 'color'", "'='", "AND". */
static const char *describe(const struct parser *p, const struct token *t, char *buf, size_t n)
{
	char ex[48];
	switch (t->t) {
	case TK_END:
		return "end of input";
	case TK_NAME:
		excerpt(p, t->off, t->len, ex, sizeof ex);
		snprintf(buf, n, t->quoted ? "the name %s" : "the name '%s'", ex);
		return buf;
	case TK_STRING:
		excerpt(p, t->off, t->len, ex, sizeof ex);
		snprintf(buf, n, "the string %s", ex);
		return buf;
	case TK_INT:
	case TK_FLOAT:
		excerpt(p, t->off, t->len, ex, sizeof ex);
		snprintf(buf, n, "the number %s", ex);
		return buf;
	default:
		if (t->t >= TK_EQ) {
			snprintf(buf, n, "'%s'", tok_text[t->t]);
			return buf;
		}
		return tok_text[t->t];
	}
}

/* ---- the lexer ---- */

static bool is_digit(unsigned char c) { return c >= '0' && c <= '9'; }
static bool is_space(unsigned char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f'; }

/* Names follow Java's identifiers (letters, digits, _ and $; any non-ASCII
 * character counts as a letter), with '.' inside as ActiveMQ allows. */
static bool name_start(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == '$' || c >= 0x80;
}
static bool name_part(unsigned char c) { return name_start(c) || is_digit(c) || c == '.'; }

static const struct { const char *word; enum tok t; } keywords[] = {
	{ "AND", TK_AND }, { "OR", TK_OR }, { "NOT", TK_NOT }, { "BETWEEN", TK_BETWEEN },
	{ "LIKE", TK_LIKE }, { "IN", TK_IN }, { "IS", TK_IS }, { "NULL", TK_NULL },
	{ "ESCAPE", TK_ESCAPE }, { "TRUE", TK_TRUE }, { "FALSE", TK_FALSE },
};

static void lex_number(struct parser *p, size_t i, struct token *t)
{
	const char *s = p->src;
	size_t n = p->len, start = i;
	bool is_float = false, hex = false;
	uint64_t u = 0;
	const uint64_t limit = (uint64_t)1 << 63;	/* -2^63 is the only literal this big */

	if (s[i] == '0' && i + 1 < n && (s[i + 1] == 'x' || s[i + 1] == 'X')) {
		size_t d0 = i += 2;
		hex = true;
		for (; i < n; i++) {
			unsigned char c = (unsigned char)s[i], l = c | 0x20;
			unsigned v = is_digit(c) ? (unsigned)(c - '0') : l >= 'a' && l <= 'f' ? (unsigned)(l - 'a' + 10) : 16u;
			if (v == 16)
				break;
			if (u > (limit - v) / 16) {
				fail(p, start, "the number %.*s is out of range (64-bit integers)", (int)MIN(i + 1 - start, 40), s + start);
				return;
			}
			u = u * 16 + v;
		}
		if (i == d0) {
			fail(p, start, "malformed number: expected hex digits after '%.*s'", 2, s + start);
			return;
		}
	} else {
		while (i < n && is_digit((unsigned char)s[i]))
			i++;
		if (i < n && s[i] == '.') {
			is_float = true;
			i++;
			while (i < n && is_digit((unsigned char)s[i]))
				i++;
		}
		if (i < n && (s[i] == 'e' || s[i] == 'E')) {
			size_t e0;
			is_float = true;
			i++;
			if (i < n && (s[i] == '+' || s[i] == '-'))
				i++;
			e0 = i;
			while (i < n && is_digit((unsigned char)s[i]))
				i++;
			if (i == e0) {
				fail(p, start, "malformed number '%.*s': expected digits in the exponent",
				     (int)MIN(i - start, 40), s + start);
				return;
			}
		}
		if (i < n && (s[i] == 'f' || s[i] == 'F' || s[i] == 'd' || s[i] == 'D')) {
			is_float = true;	/* Java's float and double suffixes */
			i++;
		}
	}
	if (!is_float && i < n && (s[i] == 'l' || s[i] == 'L'))
		i++;			/* Java's long suffix */
	if (i < n && name_part((unsigned char)s[i])) {
		size_t e = i;
		while (e < n && name_part((unsigned char)s[e]))
			e++;
		fail(p, start, "malformed number '%.*s'", (int)MIN(e - start, 40), s + start);
		return;
	}
	t->t = is_float ? TK_FLOAT : TK_INT;
	t->len = i - start;
	if (is_float) {
		char small[64], *buf = small;
		size_t k = t->len;
		if (s[start + k - 1] > '9' && s[start + k - 1] != '.')
			k--;		/* the suffix */
		if (k >= sizeof small)
			buf = xmalloc(k + 1);
		memcpy(buf, s + start, k);
		buf[k] = 0;
		t->d = strtod(buf, NULL);
		if (buf != small)
			free(buf);
		if (isinf(t->d))
			fail(p, start, "the number %.*s is out of range (64-bit floating point)", (int)MIN(k, 40), s + start);
		return;
	}
	if (!hex && s[start] == '0' && i - start > 1 && is_digit((unsigned char)s[start + 1])) {
		/* a leading 0 makes an octal number, as in Java */
		for (size_t k = start + 1; k < i && is_digit((unsigned char)s[k]); k++) {
			unsigned v = (unsigned)(s[k] - '0');
			if (v > 7) {
				fail(p, start, "malformed number '%.*s': a leading 0 makes an octal number, and %c is not an octal digit",
				     (int)MIN(i - start, 40), s + start, s[k]);
				return;
			}
			if (u > (limit - v) / 8) {
				fail(p, start, "the number %.*s is out of range (64-bit integers)", (int)MIN(i - start, 40), s + start);
				return;
			}
			u = u * 8 + v;
		}
	} else if (!hex) {
		for (size_t k = start; k < i && is_digit((unsigned char)s[k]); k++) {
			unsigned v = (unsigned)(s[k] - '0');
			if (u > (limit - v) / 10) {
				fail(p, start, "the number %.*s is out of range (64-bit integers)", (int)MIN(i - start, 40), s + start);
				return;
			}
			u = u * 10 + v;
		}
	}
	t->u = u;
}

/* A 'string' or a "quoted name": quote doubled inside. */
static void lex_quoted(struct parser *p, size_t i, struct token *t)
{
	char q = p->src[i];
	size_t start = i++;
	for (;;) {
		if (i >= p->len) {
			fail(p, start, q == '\'' ? "the string starting here has no closing '"
			                         : "the quoted name starting here has no closing \"");
			return;
		}
		if (p->src[i] == 0) {
			fail(p, i, "a NUL byte is not allowed in a selector");
			return;
		}
		if (p->src[i] == q) {
			if (i + 1 < p->len && p->src[i + 1] == q) {
				i += 2;
				continue;
			}
			break;
		}
		i++;
	}
	t->len = i + 1 - start;
	if (q == '"') {
		if (t->len == 2) {
			fail(p, start, "a quoted name cannot be empty");
			return;
		}
		t->t = TK_NAME;
		t->quoted = true;
	} else {
		t->t = TK_STRING;
	}
}

/* Reads the token at or after i into t. On an error t is TK_END. */
static void lex(struct parser *p, size_t i, struct token *t)
{
	const char *s = p->src;
	size_t n = p->len;
	unsigned char c;

	memset(t, 0, sizeof *t);
	while (i < n && is_space((unsigned char)s[i]))
		i++;
	t->off = i;
	t->len = 1;
	if (i >= n) {
		t->t = TK_END;
		t->len = 0;
		return;
	}
	c = (unsigned char)s[i];
	if (name_start(c)) {
		size_t e = i;
		while (e < n && name_part((unsigned char)s[e]))
			e++;
		t->t = TK_NAME;
		t->len = e - i;
		for (size_t k = 0; k < ARRAY_LEN(keywords); k++)
			if (strlen(keywords[k].word) == t->len && strncasecmp(keywords[k].word, s + i, t->len) == 0)
				t->t = keywords[k].t;
		return;
	}
	if (is_digit(c) || (c == '.' && i + 1 < n && is_digit((unsigned char)s[i + 1]))) {
		lex_number(p, i, t);
		return;
	}
	switch (c) {
	case '\'':
	case '"':
		lex_quoted(p, i, t);
		return;
	case '=':
		if (i + 1 < n && s[i + 1] == '=')
			fail(p, i, "'==' is not an operator: write =");
		t->t = TK_EQ;
		return;
	case '<':
		if (i + 1 < n && (s[i + 1] == '=' || s[i + 1] == '>')) {
			t->t = s[i + 1] == '=' ? TK_LE : TK_NE;
			t->len = 2;
		} else {
			t->t = TK_LT;
		}
		return;
	case '>':
		if (i + 1 < n && s[i + 1] == '=') {
			t->t = TK_GE;
			t->len = 2;
		} else {
			t->t = TK_GT;
		}
		return;
	case '!':
		if (i + 1 < n && s[i + 1] == '=')
			fail(p, i, "'!=' is not an operator: write <>");
		else
			fail(p, i, "'!' is not an operator: write NOT");
		return;
	case '&':
	case '|':
		fail(p, i, "'%.*s' is not an operator: write %s", i + 1 < n && s[i + 1] == (char)c ? 2 : 1, s + i,
		     c == '&' ? "AND" : "OR");
		return;
	case '+': t->t = TK_PLUS; return;
	case '-': t->t = TK_MINUS; return;
	case '*': t->t = TK_STAR; return;
	case '/': t->t = TK_SLASH; return;
	case '%': t->t = TK_PERCENT; return;
	case '(': t->t = TK_LPAREN; return;
	case ')': t->t = TK_RPAREN; return;
	case ',': t->t = TK_COMMA; return;
	default:
		if (c == 0)
			fail(p, i, "a NUL byte is not allowed in a selector");
		else if (c < 0x20 || c == 0x7f)
			fail(p, i, "unexpected control character 0x%02x", c);
		else
			fail(p, i, "unexpected character '%c'", c);
		return;
	}
}

static void next(struct parser *p)
{
	if (p->failed)
		return;
	p->prev = p->tok;
	lex(p, p->tok.off + p->tok.len, &p->tok);
}

/* ---- building ---- */

static uint32_t add_node(struct parser *p, const struct node *n)
{
	if (p->nnodes == p->capnodes) {
		p->capnodes = p->capnodes ? p->capnodes * 2 : 32;
		p->nodes = xrealloc(p->nodes, p->capnodes * sizeof *p->nodes);
	}
	p->nodes[p->nnodes] = *n;
	return (uint32_t)p->nnodes++;
}

static uint32_t add_kids(struct parser *p, const uint32_t *k, size_t n)
{
	uint32_t at = (uint32_t)p->nkids;
	if (p->nkids + n > p->capkids) {
		while (p->nkids + n > p->capkids)
			p->capkids = p->capkids ? p->capkids * 2 : 32;
		p->kids = xrealloc(p->kids, p->capkids * sizeof *p->kids);
	}
	memcpy(p->kids + p->nkids, k, n * sizeof *k);
	p->nkids += n;
	return at;
}

static uint32_t add_bytes(struct parser *p, const void *b, size_t n)
{
	uint32_t at = (uint32_t)p->npool;
	if (n == 0)
		return at;	/* '' before anything else: the pool may not exist yet */
	if (p->npool + n > p->cappool) {
		while (p->npool + n > p->cappool)
			p->cappool = p->cappool ? p->cappool * 2 : 256;
		p->pool = xrealloc(p->pool, p->cappool);
	}
	memcpy(p->pool + p->npool, b, n);
	p->npool += n;
	return at;
}

/* The bytes of a 'string' or "name" token without its quotes, doubled
 * quotes made single; offs[i], when asked for, is where byte i came from.
 * Returns the length; out holds at least t->len bytes. */
static size_t unquote(const struct parser *p, const struct token *t, char *out, size_t *offs)
{
	char q = p->src[t->off];
	size_t n = 0;
	for (size_t i = t->off + 1; i < t->off + t->len - 1; i++) {
		if (offs)
			offs[n] = i;
		out[n++] = p->src[i];
		if (p->src[i] == q)
			i++;
	}
	return n;
}

/* One node whose depth is one more than its deepest child's. */
static struct expr make(struct parser *p, const struct node *n, enum kind kind, size_t start, unsigned below)
{
	struct expr e = { 0, (uint8_t)kind, false, (uint16_t)(below + 1), start };
	if (p->failed)
		return e;
	if (below + 1 > SELECTOR_MAX_DEPTH) {
		fail(p, start, "nested too deeply (more than %d levels of parentheses, NOT, signs and operators)",
		     SELECTOR_MAX_DEPTH);
		return e;
	}
	e.node = add_node(p, n);
	return e;
}

static bool enter(struct parser *p, size_t at)
{
	if (++p->nest > SELECTOR_MAX_DEPTH) {
		fail(p, at, "nested too deeply (more than %d levels of parentheses, NOT, signs and operators)",
		     SELECTOR_MAX_DEPTH);
		return false;
	}
	return true;
}

static uint32_t resolve_name(struct parser *p, const struct token *t)
{
	const char *name = p->src + t->off;
	size_t len = t->len;
	struct pname want = { SELECTOR_HEADER, NULL, 0, 0, NULL };

	if (t->quoted) {
		len = unquote(p, t, p->tmp, NULL);
		name = p->tmp;
	}
	for (size_t k = 0; k < ARRAY_LEN(aliases); k++) {
		if (strlen(aliases[k].from) == len && memcmp(aliases[k].from, name, len) == 0) {
			want.field = aliases[k].field;
			want.fixed = aliases[k].name;
			want.dflt = aliases[k].dflt;
			name = want.fixed;
			len = strlen(name);
			break;
		}
	}
	for (size_t k = 0; k < p->nnames; k++) {
		const struct pname *h = &p->names[k];
		const char *hn = h->fixed ? h->fixed : p->pool + h->off;
		if (h->field == want.field && h->len == len && memcmp(hn, name, len) == 0)
			return (uint32_t)k;
	}
	if (p->nnames == SELECTOR_MAX_NAMES) {
		fail(p, t->off, "more than %d different names", SELECTOR_MAX_NAMES);
		return 0;
	}
	want.len = (uint32_t)len;
	if (!want.fixed) {
		want.off = add_bytes(p, name, len);
		add_bytes(p, "", 1);
	}
	p->names[p->nnames] = want;
	return (uint32_t)p->nnames++;
}

static const char *kind_name(enum kind k)
{
	switch (k) {
	case K_NUM: return "a number";
	case K_STR: return "a string";
	case K_BOOL: return "a condition";
	default: return "a name";
	}
}

/* A condition where one is needed: a name is read as true/false. */
static struct expr as_cond(struct parser *p, struct expr e)
{
	struct node n = { .op = OP_TRUTH, .a = e.node };
	if (p->failed || e.kind == K_BOOL)
		return e;
	if (e.kind == K_TEXT)
		return make(p, &n, K_BOOL, e.start, e.depth);
	fail(p, e.start, "expected a condition (a comparison, LIKE, IN, BETWEEN, IS NULL or TRUE/FALSE), got %s",
	     kind_name(e.kind));
	return e;
}

/* A value where one is needed: a condition becomes TRUE, FALSE or NULL. */
static struct expr as_value(struct parser *p, struct expr e)
{
	struct node n = { .op = OP_COND, .a = e.node };
	if (p->failed || e.kind != K_BOOL)
		return e;
	return make(p, &n, K_BOOL, e.start, e.depth);
}

/* Operands of arithmetic, BETWEEN and <, <=, >, >=: numbers or names. */
static bool numeric(struct parser *p, struct expr e, const char *what, const char *hint)
{
	if (p->failed)
		return false;
	if (e.kind == K_NUM || e.kind == K_TEXT)
		return true;
	fail(p, e.start, "%s needs numbers, got %s%s", what, kind_name(e.kind), hint);
	return false;
}

static struct expr parse_or(struct parser *p);
static struct expr parse_sum(struct parser *p);

static struct expr parse_primary(struct parser *p)
{
	struct token t = p->tok;
	struct expr e = { 0, K_NUM, false, 1, t.off };
	struct node n = { 0 };
	char d1[64], d2[64];

	if (p->failed)
		return e;
	switch (t.t) {
	case TK_INT:
		if (t.u > INT64_MAX) {
			fail(p, t.off, "the number %.*s is out of range (64-bit integers)", (int)MIN(t.len, 40), p->src + t.off);
			return e;
		}
		n.op = OP_INT;
		n.u.i = (int64_t)t.u;
		next(p);
		return make(p, &n, K_NUM, t.off, 0);
	case TK_FLOAT:
		n.op = OP_DBL;
		n.u.d = t.d;
		next(p);
		return make(p, &n, K_NUM, t.off, 0);
	case TK_STRING:
		n.op = OP_STR;
		n.u.s.len = (uint32_t)unquote(p, &t, p->tmp, NULL);
		n.u.s.off = add_bytes(p, p->tmp, n.u.s.len);
		next(p);
		return make(p, &n, K_STR, t.off, 0);
	case TK_TRUE:
	case TK_FALSE:
		n.op = t.t == TK_TRUE ? OP_TRUE : OP_FALSE;
		next(p);
		return make(p, &n, K_BOOL, t.off, 0);
	case TK_NAME:
		n.op = OP_NAME;
		n.a = resolve_name(p, &t);
		next(p);
		e = make(p, &n, K_TEXT, t.off, 0);
		e.name = true;
		return e;
	case TK_LPAREN:
		if (!enter(p, t.off))
			return e;
		next(p);
		e = parse_or(p);
		if (!p->failed && p->tok.t != TK_RPAREN)
			fail(p, p->tok.off, "expected ')' to close the '(' at character %zu, got %s",
			     charpos(p->src, t.off), describe(p, &p->tok, d1, sizeof d1));
		next(p);
		p->nest--;
		e.start = t.off;
		return e;
	case TK_NULL:
		fail(p, t.off, "NULL is only allowed in IS NULL and IS NOT NULL");
		return e;
	default:
		if (p->prev.t >= TK_AND && p->prev.t <= TK_NOT)
			fail(p, t.off, "expected a condition after %s, got %s", describe(p, &p->prev, d2, sizeof d2),
			     describe(p, &t, d1, sizeof d1));
		else if (p->prev.len == 0)
			fail(p, t.off, "expected a condition, got %s", describe(p, &t, d1, sizeof d1));
		else
			fail(p, t.off, "expected a value after %s, got %s", describe(p, &p->prev, d2, sizeof d2),
			     describe(p, &t, d1, sizeof d1));
		return e;
	}
}

static struct expr parse_unary(struct parser *p)
{
	struct token t = p->tok;
	struct expr e;
	struct node n = { 0 };

	if (t.t != TK_MINUS && t.t != TK_PLUS)
		return parse_primary(p);
	if (!enter(p, t.off))
		return (struct expr){ 0, K_NUM, false, 1, t.off };
	next(p);
	if (t.t == TK_MINUS && (p->tok.t == TK_INT || p->tok.t == TK_FLOAT)) {
		/* A negative literal is a literal: -9223372036854775808 included. */
		struct token lit = p->tok;
		if (lit.t == TK_INT) {
			n.op = OP_INT;
			n.u.i = lit.u == (uint64_t)1 << 63 ? INT64_MIN : -(int64_t)lit.u;
		} else {
			n.op = OP_DBL;
			n.u.d = -lit.d;
		}
		next(p);
		p->nest--;
		return make(p, &n, K_NUM, t.off, 0);
	}
	e = parse_unary(p);
	p->nest--;
	if (!numeric(p, e, t.t == TK_MINUS ? "'-'" : "'+'", ""))
		return e;
	n.op = t.t == TK_MINUS ? OP_NEG : OP_POS;
	n.a = e.node;
	return make(p, &n, K_NUM, t.off, e.depth);
}

static struct expr parse_product(struct parser *p)
{
	struct expr l = parse_unary(p);
	while (!p->failed && (p->tok.t == TK_STAR || p->tok.t == TK_SLASH || p->tok.t == TK_PERCENT)) {
		struct token op = p->tok;
		struct expr r;
		char what[8];
		struct node n = { 0 };
		snprintf(what, sizeof what, "'%s'", tok_text[op.t]);
		if (!numeric(p, l, what, ""))
			return l;
		next(p);
		r = parse_unary(p);
		if (!numeric(p, r, what, ""))
			return l;
		n.op = op.t == TK_STAR ? OP_MUL : op.t == TK_SLASH ? OP_DIV : OP_MOD;
		n.a = l.node;
		n.u.k.b = r.node;
		l = make(p, &n, K_NUM, l.start, MAX(l.depth, r.depth));
	}
	return l;
}

static struct expr parse_sum(struct parser *p)
{
	struct expr l = parse_product(p);
	while (!p->failed && (p->tok.t == TK_PLUS || p->tok.t == TK_MINUS)) {
		struct token op = p->tok;
		struct expr r;
		char what[8];
		struct node n = { 0 };
		snprintf(what, sizeof what, "'%s'", tok_text[op.t]);
		if (!numeric(p, l, what, ""))
			return l;
		next(p);
		r = parse_product(p);
		if (!numeric(p, r, what, ""))
			return l;
		n.op = op.t == TK_PLUS ? OP_ADD : OP_SUB;
		n.a = l.node;
		n.u.k.b = r.node;
		l = make(p, &n, K_NUM, l.start, MAX(l.depth, r.depth));
	}
	return l;
}

/* LIKE's pattern: wildcards coded (LIKE_ANY, LIKE_ONE), escapes resolved. */
static void like_pattern(struct parser *p, const struct token *pat, const struct token *esc, struct node *n)
{
	char *text = xmalloc(pat->len), *e = p->tmp, *out = xmalloc(2 * pat->len);
	size_t *offs = xmalloc(pat->len * sizeof *offs);
	size_t len = unquote(p, pat, text, offs), elen = 0, o = 0;
	char d[64];

	if (esc) {
		unsigned char c0;
		size_t want;
		elen = unquote(p, esc, e, NULL);
		c0 = elen ? (unsigned char)e[0] : 0;
		want = c0 < 0x80 ? 1 : c0 >= 0xF0 ? 4 : c0 >= 0xE0 ? 3 : 2;
		if (elen != want) {
			fail(p, esc->off, "ESCAPE takes exactly one character, got %s", describe(p, esc, d, sizeof d));
			goto out;
		}
	}
	for (size_t i = 0; i < len;) {
		if (elen && i + elen <= len && memcmp(text + i, e, elen) == 0) {
			size_t at = i;
			i += elen;
			if (i == len) {
				fail(p, offs[at], "the LIKE pattern ends with its escape character");
				goto out;
			}
			if (text[i] == '%' || text[i] == '_') {
				out[o++] = text[i++];
			} else if (i + elen <= len && memcmp(text + i, e, elen) == 0) {
				memcpy(out + o, e, elen);
				o += elen;
				i += elen;
			} else {
				fail(p, offs[i], "in a LIKE pattern the escape character must be followed by %%, _ or itself");
				goto out;
			}
		} else if (text[i] == '%') {
			if (!(o >= 2 && out[o - 2] == 0 && out[o - 1] == LIKE_ANY)) {
				out[o++] = 0;
				out[o++] = LIKE_ANY;
			}
			i++;
		} else if (text[i] == '_') {
			out[o++] = 0;
			out[o++] = LIKE_ONE;
			i++;
		} else {
			out[o++] = text[i++];
		}
	}
	n->u.s.len = (uint32_t)o;
	n->u.s.off = add_bytes(p, out, o);
out:
	free(text);
	free(out);
	free(offs);
}

/* What IN lists: 'strings', and numbers (an extension JMS does not have). */
static uint32_t in_item(struct parser *p)
{
	struct token t = p->tok;
	char d[64];
	if (t.t == TK_MINUS || t.t == TK_PLUS) {
		struct token after;
		lex(p, t.off + t.len, &after);
		if (!p->failed && after.t != TK_INT && after.t != TK_FLOAT)
			fail(p, after.off, "expected a number after '%s' in the IN list, got %s", tok_text[t.t],
			     describe(p, &after, d, sizeof d));
	} else if (t.t != TK_STRING && t.t != TK_INT && t.t != TK_FLOAT) {
		fail(p, t.off, "expected a string or a number in the IN list, got %s", describe(p, &t, d, sizeof d));
	}
	if (p->failed)
		return 0;
	return parse_unary(p).node;
}

/* name [NOT] IN (item, ...), from '(': one node, its items in kids. */
static struct expr parse_in(struct parser *p, struct expr l, struct node *n)
{
	uint32_t *items = NULL;
	size_t count = 0, cap = 0;
	struct token open = p->tok;
	char d[64];

	if (open.t != TK_LPAREN) {
		fail(p, open.off, "expected '(' after IN, got %s", describe(p, &open, d, sizeof d));
		return l;
	}
	next(p);
	for (;;) {
		uint32_t item = in_item(p);
		if (p->failed)
			break;
		if (count == 0xFFFF) {
			fail(p, p->tok.off, "more than 65535 items in the IN list");
			break;
		}
		if (count == cap) {
			cap = cap ? cap * 2 : 16;
			items = xrealloc(items, cap * sizeof *items);
		}
		items[count++] = item;
		if (p->tok.t == TK_RPAREN)
			break;
		if (p->tok.t != TK_COMMA) {
			fail(p, p->tok.off, "expected ',' or ')' in the IN list that opens at character %zu, got %s",
			     charpos(p->src, open.off), describe(p, &p->tok, d, sizeof d));
			break;
		}
		next(p);
	}
	if (!p->failed) {
		next(p);
		n->op = OP_IN;
		n->a = l.node;
		n->n = (uint16_t)count;
		n->u.k.b = add_kids(p, items, count);
	}
	free(items);
	return make(p, n, K_BOOL, l.start, l.depth + 1);
}

static struct expr parse_predicate(struct parser *p)
{
	struct expr l = parse_sum(p);
	struct token op = p->tok;
	struct node n = { 0 };
	char d1[64], d2[64];
	bool neg = false;

	if (p->failed)
		return l;
	if (op.t >= TK_EQ && op.t <= TK_GE) {
		struct expr r;
		next(p);
		r = parse_sum(p);
		if (p->failed)
			return l;
		if (op.t != TK_EQ && op.t != TK_NE) {
			const char *hint = " (strings and conditions compare only with = and <>)";
			char what[8];
			snprintf(what, sizeof what, "'%s'", tok_text[op.t]);
			if (!numeric(p, l, what, hint) || !numeric(p, r, what, hint))
				return l;
		} else if (l.kind != K_TEXT && r.kind != K_TEXT && l.kind != r.kind) {
			fail(p, op.off, "'%s' cannot compare %s with %s", tok_text[op.t], kind_name(l.kind), kind_name(r.kind));
			return l;
		}
		n.op = (uint8_t)(OP_EQ + (op.t - TK_EQ));
		if (l.name || r.name) {
			/* name against literal: one node, read without struct val */
			static const uint8_t flip[] = { OP_EQ, OP_NE, OP_GT, OP_GE, OP_LT, OP_LE };
			bool swap = !l.name;
			const struct node *nm = &p->nodes[swap ? r.node : l.node];
			const struct node *lit = &p->nodes[swap ? l.node : r.node];
			if (nm->op == OP_NAME && (lit->op == OP_STR || lit->op == OP_INT || lit->op == OP_DBL)) {
				struct node f = *lit;
				f.op = lit->op == OP_STR ? OP_NAME_STR : lit->op == OP_INT ? OP_NAME_INT : OP_NAME_DBL;
				f.a = nm->a;
				f.n = swap ? flip[n.op - OP_EQ] : n.op;
				f.neg = f.op == OP_NAME_STR && n.op == OP_NE;
				return make(p, &f, K_BOOL, l.start, 1);
			}
		}
		l = as_value(p, l);
		r = as_value(p, r);
		n.a = l.node;
		n.u.k.b = r.node;
		return make(p, &n, K_BOOL, l.start, MAX(l.depth, r.depth));
	}
	if (op.t == TK_NOT) {
		struct token after;
		lex(p, op.off + op.len, &after);
		if (p->failed)
			return l;
		if (after.t != TK_BETWEEN && after.t != TK_IN && after.t != TK_LIKE) {
			fail(p, after.off, "expected BETWEEN, IN or LIKE after NOT, got %s", describe(p, &after, d1, sizeof d1));
			return l;
		}
		neg = true;
		next(p);
		op = p->tok;
	}
	n.neg = neg;
	switch (op.t) {
	case TK_BETWEEN: {
		struct expr lo, hi;
		if (!numeric(p, l, "BETWEEN", ""))
			return l;
		next(p);
		lo = parse_sum(p);
		if (!numeric(p, lo, "BETWEEN", ""))
			return l;
		if (p->tok.t != TK_AND) {
			fail(p, p->tok.off, "expected AND in BETWEEN, got %s", describe(p, &p->tok, d1, sizeof d1));
			return l;
		}
		next(p);
		hi = parse_sum(p);
		if (!numeric(p, hi, "BETWEEN", ""))
			return l;
		n.op = OP_BETWEEN;
		n.a = l.node;
		n.u.k.b = lo.node;
		n.u.k.c = hi.node;
		return make(p, &n, K_BOOL, l.start, MAX(l.depth, MAX(lo.depth, hi.depth)));
	}
	case TK_IN:
		if (!l.name) {
			fail(p, op.off, "IN needs a name on its left, got %s", kind_name(l.kind));
			return l;
		}
		next(p);
		return parse_in(p, l, &n);
	case TK_LIKE: {
		struct token pat, esc;
		bool has_esc = false;
		if (!l.name) {
			fail(p, op.off, "LIKE needs a name on its left, got %s", kind_name(l.kind));
			return l;
		}
		next(p);
		pat = p->tok;
		if (pat.t != TK_STRING) {
			fail(p, pat.off, "expected a pattern string after LIKE, got %s", describe(p, &pat, d1, sizeof d1));
			return l;
		}
		next(p);
		if (p->tok.t == TK_ESCAPE) {
			next(p);
			esc = p->tok;
			if (esc.t != TK_STRING) {
				fail(p, esc.off, "expected a one-character string after ESCAPE, got %s",
				     describe(p, &esc, d1, sizeof d1));
				return l;
			}
			has_esc = true;
			next(p);
		}
		if (p->failed)
			return l;
		n.op = OP_LIKE;
		n.a = l.node;
		like_pattern(p, &pat, has_esc ? &esc : NULL, &n);
		return make(p, &n, K_BOOL, l.start, l.depth);
	}
	case TK_IS:
		if (!l.name) {
			fail(p, op.off, "IS NULL needs a name on its left, got %s", kind_name(l.kind));
			return l;
		}
		next(p);
		if (p->tok.t == TK_NOT) {
			n.neg = true;
			next(p);
		}
		if (p->tok.t != TK_NULL) {
			fail(p, p->tok.off, "expected NULL after %s, got %s", n.neg ? "IS NOT" : "IS",
			     describe(p, &p->tok, d2, sizeof d2));
			return l;
		}
		next(p);
		n.op = OP_ISNULL;
		n.a = l.node;
		return make(p, &n, K_BOOL, l.start, l.depth);
	default:
		return l;
	}
}

static struct expr parse_not(struct parser *p)
{
	struct token t = p->tok;
	struct expr e;
	struct node n = { .op = OP_NOT };
	if (t.t != TK_NOT)
		return parse_predicate(p);
	if (!enter(p, t.off))
		return (struct expr){ 0, K_BOOL, false, 1, t.off };
	next(p);
	e = as_cond(p, parse_not(p));
	p->nest--;
	n.a = e.node;
	return make(p, &n, K_BOOL, t.off, e.depth);
}

/* AND and OR take any number of operands in one node, so that a long
 * chain is one level of the tree, not one per operator. */
static struct expr parse_chain(struct parser *p, enum tok word, struct expr (*operand)(struct parser *))
{
	struct expr first = operand(p), e;
	uint32_t stack[32], *k = stack;
	size_t count = 0, cap = ARRAY_LEN(stack);
	unsigned depth;
	struct node n = { .op = word == TK_AND ? OP_AND : OP_OR };

	if (p->failed || p->tok.t != word)
		return first;
	first = as_cond(p, first);
	depth = first.depth;
	k[count++] = first.node;
	while (!p->failed && p->tok.t == word) {
		next(p);
		e = as_cond(p, operand(p));
		if (p->failed)
			break;
		if (count == 0xFFFF) {
			fail(p, e.start, "more than 65535 operands of %s", tok_text[word]);
			break;
		}
		if (count == cap) {
			cap *= 2;
			if (k == stack) {
				k = xmalloc(cap * sizeof *k);
				memcpy(k, stack, sizeof stack);
			} else {
				k = xrealloc(k, cap * sizeof *k);
			}
		}
		k[count++] = e.node;
		depth = MAX(depth, e.depth);
	}
	if (!p->failed) {
		n.n = (uint16_t)count;
		n.a = add_kids(p, k, count);
	}
	if (k != stack)
		free(k);
	return make(p, &n, K_BOOL, first.start, depth);
}

static struct expr parse_and(struct parser *p)
{
	return parse_chain(p, TK_AND, parse_not);
}

static struct expr parse_or(struct parser *p)
{
	return parse_chain(p, TK_OR, parse_and);
}

/* ---- compile ---- */

static size_t align8(size_t n) { return (n + 7) & ~(size_t)7; }

uint32_t selector_hash(const char *name, size_t len)
{
	uint32_t h = 2166136261u;
	for (size_t i = 0; i < len; i++)
		h = (h ^ (unsigned char)name[i]) * 16777619u;
	return h;
}

bool selector_blank(const char *text, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (!is_space((unsigned char)text[i]))
			return false;
	return true;
}

#define CONVERT "convert_string_expressions:"

struct selector *selector_compile(const char *text, size_t len, char *err, size_t errlen)
{
	struct parser p = { .src = text, .len = len, .err = err, .errlen = errlen };
	struct selector *s = NULL;
	struct expr root;
	struct selector_name *names;
	size_t start = 0;
	char d[64];

	if (err && errlen)
		err[0] = 0;
	if (len > SELECTOR_MAX_LEN) {
		if (err && errlen)
			snprintf(err, errlen, "selector: too long: %zu bytes (limit %d)", len, SELECTOR_MAX_LEN);
		return NULL;
	}
	/* ActiveMQ's prefix asking for what mqbroker always does (header
	 * text compared as numbers), accepted so its selectors work as written */
	if (len >= sizeof CONVERT - 1 && memcmp(text, CONVERT, sizeof CONVERT - 1) == 0)
		start = sizeof CONVERT - 1;
	if (selector_blank(text + start, len - start)) {
		if (err && errlen)
			snprintf(err, errlen, "selector: empty");
		return NULL;
	}
	p.tmp = xmalloc(len);
	lex(&p, start, &p.tok);
	root = as_cond(&p, parse_or(&p));
	if (!p.failed && p.tok.t != TK_END) {
		if (p.tok.t == TK_RPAREN)
			fail(&p, p.tok.off, "')' without a matching '('");
		else
			fail(&p, p.tok.off, "expected AND, OR or end of input, got %s", describe(&p, &p.tok, d, sizeof d));
	}
	if (!p.failed) {
		size_t at = align8(sizeof *s);
		size_t o_nodes = at, o_names, o_kids, o_pool, o_text, total;
		char *block;
		at = align8(at + p.nnodes * sizeof(struct node));
		o_names = at;
		at = align8(at + p.nnames * sizeof(struct selector_name));
		o_kids = at;
		at += p.nkids * sizeof(uint32_t);
		o_pool = at;
		at += p.npool;
		o_text = at;
		total = at + len + 1;
		block = xmalloc(total);
		s = (struct selector *)block;
		memcpy(block + o_nodes, p.nodes, p.nnodes * sizeof(struct node));
		if (p.nkids)
			memcpy(block + o_kids, p.kids, p.nkids * sizeof(uint32_t));
		if (p.npool)
			memcpy(block + o_pool, p.pool, p.npool);
		memcpy(block + o_text, text, len);
		block[o_text + len] = 0;
		names = (struct selector_name *)(block + o_names);
		for (size_t k = 0; k < p.nnames; k++) {
			names[k].field = p.names[k].field;
			names[k].name = p.names[k].fixed ? p.names[k].fixed : block + o_pool + p.names[k].off;
			names[k].len = p.names[k].len;
			names[k].hash = selector_hash(names[k].name, names[k].len);
			names[k].dflt = p.names[k].dflt;
		}
		s->nodes = (const struct node *)(block + o_nodes);
		s->kids = (const uint32_t *)(block + o_kids);
		s->pool = block + o_pool;
		s->names = names;
		s->text = block + o_text;
		s->root = root.node;
		s->nnames = (uint32_t)p.nnames;
	}
	free(p.tmp);
	free(p.nodes);
	free(p.kids);
	free(p.pool);
	return s;
}

void selector_free(struct selector *s)
{
	free(s);
}

const char *selector_text(const struct selector *s)
{
	return s->text;
}

size_t selector_names(const struct selector *s, const struct selector_name **names)
{
	*names = s->names;
	return s->nnames;
}

/* ---- evaluation ---- */

enum { S_UNREAD, S_ABSENT, S_TEXT };		/* what a slot holds */
enum { N_UNPARSED, N_INT, N_DBL, N_NAN };	/* its text as a number */

/* What one name read, for the length of one evaluation. */
struct slot {
	const char *p;
	size_t len;
	uint8_t state;
	uint8_t num;
	union { int64_t i; double d; } v;
	char scratch[SELECTOR_SCRATCH];
};

struct ectx {
	const struct selector *s;
	selector_get_fn *get;
	void *ctx;
	struct slot *slots;
};

enum vt { V_NULL, V_BOOL, V_INT, V_DBL, V_STR, V_TEXT };

struct val {
	uint8_t t;		/* enum vt */
	bool b;			/* V_BOOL */
	uint32_t len;		/* V_STR */
	union {
		int64_t i;
		double d;
		const char *p;	/* V_STR */
		struct slot *sl;	/* V_TEXT */
	} u;
};

struct num {
	bool dbl;
	int64_t i;
	double d;
};

#define T SELECTOR_TRUE
#define F SELECTOR_FALSE
#define U SELECTOR_UNKNOWN

/* A header's text as a number: an optional sign, decimal digits with an
 * optional fraction and exponent, nothing else (no spaces, no hex, no
 * "inf"). Integers that fit 64 bits are exact. At most 100 characters. */
static uint8_t text_number(const char *s, size_t n, int64_t *iv, double *dv)
{
	size_t k = 0, d0, nint, nfrac = 0;
	bool neg = false, ovf = false;
	uint64_t u = 0;
	char buf[101];

	if (k < n && (s[k] == '+' || s[k] == '-'))
		neg = s[k++] == '-';
	d0 = k;
	for (; k < n && is_digit((unsigned char)s[k]); k++) {
		unsigned v = (unsigned)(s[k] - '0');
		if (u > (UINT64_MAX - v) / 10)
			ovf = true;
		else
			u = u * 10 + v;
	}
	nint = k - d0;
	if (k == n) {
		if (nint == 0)
			return N_NAN;
		if (!ovf && u <= (uint64_t)INT64_MAX + neg) {
			*iv = neg ? (int64_t)(0 - u) : (int64_t)u;
			return N_INT;
		}
	} else {
		if (s[k] == '.') {
			size_t f0 = ++k;
			while (k < n && is_digit((unsigned char)s[k]))
				k++;
			nfrac = k - f0;
		}
		if (nint + nfrac == 0)
			return N_NAN;
		if (k < n && (s[k] == 'e' || s[k] == 'E')) {
			size_t e0;
			k++;
			if (k < n && (s[k] == '+' || s[k] == '-'))
				k++;
			e0 = k;
			while (k < n && is_digit((unsigned char)s[k]))
				k++;
			if (k == e0)
				return N_NAN;
		}
		if (k != n)
			return N_NAN;
	}
	if (n >= sizeof buf)
		return N_NAN;
	memcpy(buf, s, n);
	buf[n] = 0;
	*dv = strtod(buf, NULL);
	return N_DBL;
}

static struct slot *read_name(const struct ectx *e, uint32_t idx)
{
	struct slot *sl = &e->slots[idx];
	if (sl->state == S_UNREAD) {
		const struct selector_name *nm = &e->s->names[idx];
		size_t len = 0;
		const char *v = e->get(e->ctx, nm, sl->scratch, &len);
		if (!v && nm->dflt) {
			v = nm->dflt;
			len = strlen(v);
		}
		sl->p = v;
		sl->len = len;
		sl->state = v ? S_TEXT : S_ABSENT;
		sl->num = N_UNPARSED;
	}
	return sl;
}

static bool as_num(const struct val *v, struct num *out)
{
	switch (v->t) {
	case V_INT:
		out->dbl = false;
		out->i = v->u.i;
		return true;
	case V_DBL:
		out->dbl = true;
		out->d = v->u.d;
		return true;
	case V_TEXT: {
		struct slot *sl = v->u.sl;
		if (sl->num == N_UNPARSED)
			sl->num = text_number(sl->p, sl->len, &sl->v.i, &sl->v.d);
		if (sl->num == N_NAN)
			return false;
		out->dbl = sl->num == N_DBL;
		if (out->dbl)
			out->d = sl->v.d;
		else
			out->i = sl->v.i;
		return true;
	}
	default:
		return false;
	}
}

/* Text is a truth value when it says true or false, in any case. */
static bool as_bool(const struct val *v, bool *out)
{
	if (v->t == V_BOOL) {
		*out = v->b;
		return true;
	}
	if (v->t == V_TEXT) {
		const struct slot *sl = v->u.sl;
		if (sl->len == 4 && strncasecmp(sl->p, "true", 4) == 0) {
			*out = true;
			return true;
		}
		if (sl->len == 5 && strncasecmp(sl->p, "false", 5) == 0) {
			*out = false;
			return true;
		}
	}
	return false;
}

static bool is_number(const struct val *v) { return v->t == V_INT || v->t == V_DBL; }

static double to_dbl(const struct num *n) { return n->dbl ? n->d : (double)n->i; }

static int numcmp(uint8_t op, const struct num *a, const struct num *b)
{
	int c;
	if (!a->dbl && !b->dbl) {
		c = (a->i > b->i) - (a->i < b->i);
	} else {
		double x = to_dbl(a), y = to_dbl(b);
		if (isnan(x) || isnan(y))
			return op == OP_NE ? T : F;	/* Java's NaN: unequal to everything */
		c = (x > y) - (x < y);
	}
	switch (op) {
	case OP_EQ: return c == 0 ? T : F;
	case OP_NE: return c != 0 ? T : F;
	case OP_LT: return c < 0 ? T : F;
	case OP_LE: return c <= 0 ? T : F;
	case OP_GT: return c > 0 ? T : F;
	default: return c >= 0 ? T : F;
	}
}

static const char *text_of(const struct val *v, size_t *len)
{
	if (v->t == V_STR) {
		*len = v->len;
		return v->u.p;
	}
	*len = v->u.sl->len;
	return v->u.sl->p;
}

/* JMS's comparison: NULL on either side is unknown; values of unlike
 * types are unequal and unordered (false), so a name's text is read as
 * the type on the other side. */
static int compare(uint8_t op, const struct val *l, const struct val *r)
{
	struct num a, b;
	if (l->t == V_NULL || r->t == V_NULL)
		return U;
	if (is_number(l) || is_number(r) || (op != OP_EQ && op != OP_NE)) {
		/* (two names under <, <=, >, >= compare as numbers too: the
		 * compiler lets no string or condition reach these) */
		if (!as_num(l, &a) || !as_num(r, &b))
			return F;
		return numcmp(op, &a, &b);
	}
	if (l->t == V_BOOL || r->t == V_BOOL) {
		bool x, y;
		if (!as_bool(l, &x) || !as_bool(r, &y))
			return F;
		return (x == y) == (op == OP_EQ) ? T : F;
	} else {
		size_t ln, rn;
		const char *lp = text_of(l, &ln), *rp = text_of(r, &rn);
		bool eq = ln == rn && memcmp(lp, rp, ln) == 0;
		return eq == (op == OP_EQ) ? T : F;
	}
}

static const struct val null_val = { .t = V_NULL };

static struct val int_val(int64_t i) { return (struct val){ .t = V_INT, .u.i = i }; }
static struct val dbl_val(double d) { return (struct val){ .t = V_DBL, .u.d = d }; }

/* Arithmetic on anything but numbers, and division by zero, is NULL. */
static struct val arith(uint8_t op, const struct val *l, const struct val *r)
{
	struct num a, b;
	double x, y;
	if (!as_num(l, &a) || !as_num(r, &b))
		return null_val;
	if (!a.dbl && !b.dbl) {
		int64_t z;
		switch (op) {
		case OP_ADD:
			if (!__builtin_add_overflow(a.i, b.i, &z))
				return int_val(z);
			break;
		case OP_SUB:
			if (!__builtin_sub_overflow(a.i, b.i, &z))
				return int_val(z);
			break;
		case OP_MUL:
			if (!__builtin_mul_overflow(a.i, b.i, &z))
				return int_val(z);
			break;
		case OP_DIV:
			if (b.i == 0)
				return null_val;
			if (!(a.i == INT64_MIN && b.i == -1))
				return int_val(a.i / b.i);
			break;
		default:
			if (b.i == 0)
				return null_val;
			return int_val(b.i == -1 ? 0 : a.i % b.i);
		}
		/* overflowed: on in floating point rather than wrap */
	}
	x = to_dbl(&a);
	y = to_dbl(&b);
	switch (op) {
	case OP_ADD: return dbl_val(x + y);
	case OP_SUB: return dbl_val(x - y);
	case OP_MUL: return dbl_val(x * y);
	case OP_DIV: return y == 0 ? null_val : dbl_val(x / y);
	default: return y == 0 ? null_val : dbl_val(fmod(x, y));
	}
}

/* The next character's length in UTF-8 (a stray byte counts as one). */
static size_t char_len(const unsigned char *s, size_t i, size_t n)
{
	size_t k = i + 1;
	while (k < n && k < i + 4 && (s[k] & 0xC0) == 0x80)
		k++;
	return k - i;
}

/* LIKE: literal bytes match themselves, LIKE_ONE one character, LIKE_ANY
 * any run. Backtracking goes only to the last LIKE_ANY seen, which is
 * enough: a later % can absorb whatever an earlier one would have. */
static bool like(const unsigned char *pat, size_t pn, const unsigned char *s, size_t sn)
{
	size_t pi = 0, si = 0, star = SIZE_MAX, mark = 0;
	while (si < sn) {
		if (pi < pn) {
			if (pat[pi] == 0 && pat[pi + 1] == LIKE_ANY) {
				pi += 2;
				star = pi;
				mark = si;
				continue;
			}
			if (pat[pi] == 0) {
				si += char_len(s, si, sn);
				pi += 2;
				continue;
			}
			if (pat[pi] == s[si]) {
				pi++;
				si++;
				continue;
			}
		}
		if (star == SIZE_MAX)
			return false;
		mark += char_len(s, mark, sn);
		si = mark;
		pi = star;
	}
	while (pi < pn && pat[pi] == 0 && pat[pi + 1] == LIKE_ANY)
		pi += 2;
	return pi == pn;
}

static int eval_cond(const struct ectx *e, uint32_t at);

static struct val eval_val(const struct ectx *e, uint32_t at)
{
	const struct node *n = &e->s->nodes[at];
	struct val v = null_val, r;
	switch (n->op) {
	case OP_NAME: {
		struct slot *sl = read_name(e, n->a);
		if (sl->state == S_TEXT) {
			v.t = V_TEXT;
			v.u.sl = sl;
		}
		return v;
	}
	case OP_INT:
		return int_val(n->u.i);
	case OP_DBL:
		return dbl_val(n->u.d);
	case OP_STR:
		v.t = V_STR;
		v.u.p = e->s->pool + n->u.s.off;
		v.len = n->u.s.len;
		return v;
	case OP_NEG:
	case OP_POS: {
		struct num a;
		v = eval_val(e, n->a);
		if (!as_num(&v, &a))
			return null_val;
		if (n->op == OP_POS)
			return a.dbl ? dbl_val(a.d) : int_val(a.i);
		if (a.dbl)
			return dbl_val(-a.d);
		return a.i == INT64_MIN ? dbl_val(-(double)a.i) : int_val(-a.i);
	}
	case OP_ADD:
	case OP_SUB:
	case OP_MUL:
	case OP_DIV:
	case OP_MOD:
		v = eval_val(e, n->a);
		r = eval_val(e, n->u.k.b);
		return arith(n->op, &v, &r);
	default: {			/* OP_COND */
		int c = eval_cond(e, n->a);
		if (c != U) {
			v.t = V_BOOL;
			v.b = c == T;
		}
		return v;
	}
	}
}

static int eval_cond(const struct ectx *e, uint32_t at)
{
	const struct node *n = &e->s->nodes[at];
	struct val x, lo, hi;
	int r, c;

	switch (n->op) {
	case OP_TRUE:
		return T;
	case OP_FALSE:
		return F;
	case OP_AND:
		r = T;
		for (unsigned k = 0; k < n->n; k++) {
			c = eval_cond(e, e->s->kids[n->a + k]);
			if (c == F)
				return F;
			if (c == U)
				r = U;
		}
		return r;
	case OP_OR:
		r = F;
		for (unsigned k = 0; k < n->n; k++) {
			c = eval_cond(e, e->s->kids[n->a + k]);
			if (c == T)
				return T;
			if (c == U)
				r = U;
		}
		return r;
	case OP_NOT:
		c = eval_cond(e, n->a);
		return c == U ? U : c == T ? F : T;
	case OP_EQ:
	case OP_NE:
	case OP_LT:
	case OP_LE:
	case OP_GT:
	case OP_GE:
		x = eval_val(e, n->a);
		lo = eval_val(e, n->u.k.b);
		return compare(n->op, &x, &lo);
	case OP_BETWEEN:
		/* as JMS defines them: lo <= x AND x <= hi, and for NOT BETWEEN
		 * x < lo OR x > hi (so unlike types match neither) */
		x = eval_val(e, n->a);
		lo = eval_val(e, n->u.k.b);
		hi = eval_val(e, n->u.k.c);
		if (!n->neg) {
			r = compare(OP_GE, &x, &lo);
			c = compare(OP_LE, &x, &hi);
			return r == F || c == F ? F : r == U || c == U ? U : T;
		}
		r = compare(OP_LT, &x, &lo);
		c = compare(OP_GT, &x, &hi);
		return r == T || c == T ? T : r == U || c == U ? U : F;
	case OP_IN: {
		bool found = false;
		x = eval_val(e, n->a);
		if (x.t == V_NULL)
			return U;
		for (unsigned k = 0; k < n->n && !found; k++) {
			lo = eval_val(e, e->s->kids[n->u.k.b + k]);
			found = compare(OP_EQ, &x, &lo) == T;
		}
		return found != n->neg ? T : F;
	}
	case OP_LIKE:
		x = eval_val(e, n->a);
		if (x.t == V_NULL)
			return U;
		return like((const unsigned char *)e->s->pool + n->u.s.off, n->u.s.len,
		            (const unsigned char *)x.u.sl->p, x.u.sl->len) != n->neg ? T : F;
	case OP_ISNULL:
		x = eval_val(e, n->a);
		return (x.t == V_NULL) != n->neg ? T : F;
	case OP_NAME_STR: {
		const struct slot *sl = read_name(e, n->a);
		if (sl->state != S_TEXT)
			return U;
		return (sl->len == n->u.s.len && memcmp(sl->p, e->s->pool + n->u.s.off, sl->len) == 0) != n->neg ? T : F;
	}
	case OP_NAME_INT:
	case OP_NAME_DBL: {
		struct slot *sl = read_name(e, n->a);
		struct num a, b;
		if (sl->state != S_TEXT)
			return U;
		if (sl->num == N_UNPARSED)
			sl->num = text_number(sl->p, sl->len, &sl->v.i, &sl->v.d);
		if (sl->num == N_NAN)
			return F;
		a.dbl = sl->num == N_DBL;
		a.i = sl->v.i;
		a.d = sl->v.d;
		b.dbl = n->op == OP_NAME_DBL;
		b.i = n->u.i;
		b.d = n->u.d;
		return numcmp((uint8_t)n->n, &a, &b);
	}
	default: {			/* OP_TRUTH */
		bool b;
		x = eval_val(e, n->a);
		if (!as_bool(&x, &b))
			return U;
		return b ? T : F;
	}
	}
}

enum selector_result selector_eval(const struct selector *s, selector_get_fn *get, void *ctx)
{
	struct slot slots[s->nnames ? s->nnames : 1];
	struct ectx e = { s, get, ctx, slots };
	for (uint32_t k = 0; k < s->nnames; k++)
		slots[k].state = S_UNREAD;
	return (enum selector_result)eval_cond(&e, s->root);
}
