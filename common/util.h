/* util.h: allocation that cannot return NULL, clocks, strict number parsing and
 * formatting, growable strings. */
#ifndef MQ_UTIL_H
#define MQ_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Allocation failure is not something a client can cause (every input is
 * bounded by a limit first), so these abort with a message instead of
 * returning NULL into code that cannot do anything useful with it. */
void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);

uint64_t mono_ms(void);		/* monotonic clock, milliseconds */
uint64_t mono_us(void);		/* monotonic clock, microseconds */
uint64_t wall_ms(void);		/* milliseconds since the epoch */

/* Whole string must be a decimal number within [min, max]. */
bool parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out);
bool parse_i64(const char *s, int64_t min, int64_t max, int64_t *out);
/* "true"/"false"/"yes"/"no"/"1"/"0"/"on"/"off", case-insensitive. */
bool parse_bool(const char *s, bool *out);
/* "64KiB", "10MB", "1G", "512": bytes. Suffixes are binary (K = 1024). */
bool parse_size(const char *s, uint64_t *out);

/* Human formatting for logs and tables: "1.5 MiB". Writes into buf. */
const char *fmt_bytes(uint64_t n, char *buf, size_t len);
/* Levenshtein distance, for "did you mean" hints; SIZE_MAX past 64 chars. */
size_t edit_distance(const char *a, const char *b);

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define MAX(a, b) ((a) > (b) ? (a) : (b))


/* A growable byte string, always NUL-terminated. */
struct sbuf {
	char *buf;	/* owned; NULL until the first append */
	size_t len;
	size_t cap;
};
void sbuf_init(struct sbuf *b);
void sbuf_fini(struct sbuf *b);
void sbuf_reset(struct sbuf *b);		/* len = 0, keeps the memory */
void sbuf_add(struct sbuf *b, const void *p, size_t n);
void sbuf_adds(struct sbuf *b, const char *s);
void sbuf_addc(struct sbuf *b, char c);
void sbuf_printf(struct sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
char *sbuf_take(struct sbuf *b);		/* caller owns the string; b is emptied */
const char *sbuf_str(const struct sbuf *b);	/* "" when empty */
/* Decimal formatting without printf (ids on every delivery); writes the
 * digits and a NUL, returns the length. */
size_t u64_to_dec(uint64_t v, char *out);

#endif
