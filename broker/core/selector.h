/* selector.h: JMS message selectors over a message's headers.
 *
 * A selector is the SQL-92 subset that JMS and ActiveMQ define
 * (`type = 'render' AND frames < 100`); docs/protocol.md, "Selectors", is
 * the language as users see it. selector_compile() reads it once into a
 * compact tree, every literal already parsed and every name already
 * resolved (JMS names such as JMSPriority through the alias table to
 * mqbroker's); selector_eval() runs that tree against one message without
 * allocating and without reading any name twice.
 *
 * Messages are text to a selector: the caller answers each name the
 * selector reads with the header's value (or absent) through a callback,
 * and the evaluator gives that text the type its context asks for: a
 * number next to a number or in arithmetic, a truth value next to
 * TRUE/FALSE or as a condition, text next to a string. */
#ifndef MQ_SELECTOR_H
#define MQ_SELECTOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Compile-time bounds, each answered with an error naming it. */
#define SELECTOR_MAX_LEN 4096		/* bytes of selector text */
#define SELECTOR_MAX_DEPTH 64		/* levels of parentheses, NOT, signs and operators */
#define SELECTOR_MAX_NAMES 64		/* different names one selector reads */

/* Bytes a callback may use to format a value it does not hold as text
 * (a message id, a timestamp): enough for any 64-bit number. */
#define SELECTOR_SCRATCH 24

/* What a name reads. Most names are headers the producer set; the rest are
 * what the broker holds about the message and its delivery, reached under
 * their JMS names (JMSMessageID) or the names a consumer sees on MESSAGE
 * ("message-id"). */
enum selector_field {
	SELECTOR_HEADER,		/* the header called name */
	SELECTOR_MESSAGE_ID,		/* the broker's message-id, decimal */
	SELECTOR_TIMESTAMP,		/* when the broker took it, ms since the epoch */
	SELECTOR_EXPIRES,		/* when it expires, ms since the epoch; "0" = never */
	SELECTOR_DESTINATION,		/* the destination it was sent to */
	SELECTOR_DELIVERY_MODE,		/* "PERSISTENT" or "NON_PERSISTENT" (JMS's words) */
	SELECTOR_REDELIVERED,		/* "true" when delivered before, else "false" */
	SELECTOR_DELIVERY_COUNT,	/* this delivery's number, 1 the first time */
};

/* One name a selector reads, resolved at compile time. */
struct selector_name {
	enum selector_field field;
	const char *name;		/* mqbroker's name for it, NUL-terminated:
					 * for SELECTOR_HEADER the header to look up */
	size_t len;
	uint32_t hash;			/* selector_hash(name, len), for callbacks that
					 * index a message's headers by hash */
	const char *dflt;		/* the value when the callback answers absent
					 * (JMSPriority: "4", JMS's default), or NULL */
};

/* Answers `name` for the message being evaluated: its value and length,
 * or NULL when the message has no such header. The value must stay valid
 * until selector_eval() returns; `scratch` (SELECTOR_SCRATCH bytes, one per
 * name) is there to format a value into. Called at most once per name per
 * evaluation, and only for names the evaluation reaches. */
typedef const char *selector_get_fn(void *ctx, const struct selector_name *name,
                                    char *scratch, size_t *len);

/* The three truth values of SQL: a message matches only on TRUE. */
enum selector_result {
	SELECTOR_FALSE,
	SELECTOR_TRUE,
	SELECTOR_UNKNOWN,		/* a NULL (absent header) or a non-number in arithmetic decided it */
};

struct selector;

/* Compiles `len` bytes of `text`. NULL with the reason in err on a bad
 * selector: "selector: at character 14: expected a value after '=', got
 * end of input" (characters are counted from 1, in UTF-8 characters).
 * An empty or blank text is an error too: JMS reads it as "no selector",
 * which is the caller's decision (selector_blank). ActiveMQ's prefix
 * "convert_string_expressions:" is accepted and changes nothing. */
struct selector *selector_compile(const char *text, size_t len, char *err, size_t errlen);
void selector_free(struct selector *s);	/* NULL is fine */

enum selector_result selector_eval(const struct selector *s, selector_get_fn *get, void *ctx);
static inline bool selector_match(const struct selector *s, selector_get_fn *get, void *ctx)
{
	return selector_eval(s, get, ctx) == SELECTOR_TRUE;
}

/* The text it was compiled from, NUL-terminated (for listings). */
const char *selector_text(const struct selector *s);
/* The names it reads, in order of first appearance; *names is borrowed. */
size_t selector_names(const struct selector *s, const struct selector_name **names);
/* The hash selector_name.hash holds (32-bit FNV-1a of the bytes). */
uint32_t selector_hash(const char *name, size_t len);
/* True when text holds nothing but white space: JMS's "no selector". */
bool selector_blank(const char *text, size_t len);

#endif
