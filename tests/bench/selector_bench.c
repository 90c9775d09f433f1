/* selector_bench.c: what a selector costs per message.
 *
 *   selector_bench [-n ITERATIONS]
 *
 * 1. For typical selectors, the time to compile one, and the time of one
 *    selector_eval() against a message with a dozen headers kept as the
 *    broker keeps them ("name:value\n" lines), two ways: the callback
 *    scans the lines for each name it is asked, or looks the name's hash
 *    up in an index of the lines made once per message (and the time to
 *    make that index).
 * 2. The dispatch case issue 20 sets its target by: ten consumers on one
 *    queue, each with a different selector of three comparisons; each
 *    message is offered to the consumers in turn (starting after the last
 *    one served, as round-robin does) until one matches, both ways (the
 *    index made once per message, its cost counted). Prints the
 *    evaluations per message and the nanoseconds per message they cost,
 *    to set beside the broker's own cost per delivered message
 *    (docs/benchmarks.md: about 1 microsecond per message at 1M/s).
 *
 * Times are the thread's CPU time, so that other work on a shared machine
 * does not count. Build Release before quoting figures
 * (build/bench/selector_bench). */
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/selector.h"

/* The broker keeps a message's headers as "name:value\n" lines; a real
 * lookup scans them the same way (escapes aside, which these have none). */
struct message {
	const char *hdrs;
	size_t len;
	uint64_t id;
};

static const char *lookup(void *ctx, const struct selector_name *nm, char *scratch, size_t *len)
{
	const struct message *m = ctx;
	const char *p = m->hdrs, *end = m->hdrs + m->len;
	if (nm->field == SELECTOR_MESSAGE_ID) {
		*len = (size_t)snprintf(scratch, SELECTOR_SCRATCH, "%" PRIu64, m->id);
		return scratch;
	}
	if (nm->field != SELECTOR_HEADER)
		return NULL;
	while (p < end) {
		const char *eol = memchr(p, '\n', (size_t)(end - p));
		if (!eol)
			eol = end;
		if ((size_t)(eol - p) > nm->len && p[nm->len] == ':' && memcmp(p, nm->name, nm->len) == 0) {
			*len = (size_t)(eol - p) - nm->len - 1;
			return p + nm->len + 1;
		}
		p = eol + 1;
	}
	return NULL;
}

/* One pass over the lines: each header's name hash, name and value. The
 * broker would make it once per message, for every subscriber's selector
 * (a value with escapes would be decoded here too; these have none). */
struct index {
	size_t n;
	uint64_t id;
	struct entry {
		uint32_t hash, nlen;
		const char *name, *value;
		size_t vlen;
	} e[64];
};

static void index_build(struct index *x, const struct message *m)
{
	const char *p = m->hdrs, *end = m->hdrs + m->len;
	x->n = 0;
	x->id = m->id;
	while (p < end && x->n < 64) {
		const char *eol = memchr(p, '\n', (size_t)(end - p)), *colon;
		if (!eol)
			eol = end;
		colon = memchr(p, ':', (size_t)(eol - p));
		if (colon) {
			struct entry *e = &x->e[x->n++];
			e->name = p;
			e->nlen = (uint32_t)(colon - p);
			e->hash = selector_hash(p, e->nlen);
			e->value = colon + 1;
			e->vlen = (size_t)(eol - colon - 1);
		}
		p = eol + 1;
	}
}

static const char *lookup_indexed(void *ctx, const struct selector_name *nm, char *scratch, size_t *len)
{
	const struct index *x = ctx;
	if (nm->field == SELECTOR_MESSAGE_ID) {
		*len = (size_t)snprintf(scratch, SELECTOR_SCRATCH, "%" PRIu64, x->id);
		return scratch;
	}
	if (nm->field != SELECTOR_HEADER)
		return NULL;
	for (size_t i = 0; i < x->n; i++) {
		const struct entry *e = &x->e[i];
		if (e->hash == nm->hash && e->nlen == nm->len && memcmp(e->name, nm->name, nm->len) == 0) {
			*len = e->vlen;
			return e->value;
		}
	}
	return NULL;
}

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static struct selector *compile(const char *text)
{
	char err[256];
	struct selector *s = selector_compile(text, strlen(text), err, sizeof err);
	if (!s) {
		fprintf(stderr, "%s\n", err);
		exit(1);
	}
	return s;
}

static const char message_hdrs[] =
	"content-type:text/plain\n"
	"persistent:true\n"
	"type:car\n"
	"color:blue\n"
	"weight:3000\n"
	"renderer:karma\n"
	"frames:48\n"
	"priority:7\n"
	"shot:sq010_sh020\n"
	"dept:comp\n"
	"Country:France\n"
	"phone:12993\n";

static const char *const typical[] = {
	"JMSPriority > 4",
	"renderer = 'karma' AND frames < 100",
	"JMSType = 'car' AND color = 'blue' AND weight > 2500",
	"Country IN ('UK', 'US', 'France')",
	"phone LIKE '12%3'",
	"shot LIKE 'sq010%' AND NOT (dept = 'fx' OR dept = 'lighting')",
	"frames * 2 + 4 BETWEEN 50 AND 200",
	"missing IS NULL",
	"dept = 'fx'",					/* the first comparison decides: false */
	"\"content-type\" = 'text/plain' AND JMSMessageID IS NOT NULL",
};

static void bench_typical(long iterations)
{
	struct message m = { message_hdrs, sizeof message_hdrs - 1, 12345678901ull };
	struct index x;
	uint64_t t0;

	t0 = now_ns();
	for (long k = 0; k < iterations; k++)
		index_build(&x, &m);
	printf("indexing a message's %zu headers: %.1f ns\n\n", x.n, (double)(now_ns() - t0) / (double)iterations);
	printf("%-64s %8s %8s %8s  %s\n", "selector", "compile", "scan", "indexed", "result (ns each)");
	for (size_t i = 0; i < sizeof typical / sizeof typical[0]; i++) {
		uint64_t t1, t2, t3;
		unsigned matched = 0, matched2 = 0;
		long compiles = iterations / 20 + 1;
		struct selector *s;
		t0 = now_ns();
		for (long k = 0; k < compiles; k++)
			selector_free(compile(typical[i]));
		t1 = now_ns();
		s = compile(typical[i]);
		t2 = now_ns();
		for (long k = 0; k < iterations; k++)
			matched += selector_match(s, lookup, &m);
		t3 = now_ns();
		for (long k = 0; k < iterations; k++)
			matched2 += selector_match(s, lookup_indexed, &x);
		if (matched != matched2) {
			fprintf(stderr, "%s: the two lookups disagree\n", typical[i]);
			exit(1);
		}
		printf("%-64s %8.0f %8.1f %8.1f  %s\n", typical[i], (double)(t1 - t0) / (double)compiles,
		       (double)(t3 - t2) / (double)iterations, (double)(now_ns() - t3) / (double)iterations,
		       matched ? "match" : "no match");
		selector_free(s);
	}
}

/* Ten consumers, kinds k0..k9, three comparisons each; messages come in
 * kinds at random, so each is offered to consumers from the next in turn
 * until the one of its kind takes it (5.5 evaluations a message on
 * average). */
static void bench_dispatch(long iterations, bool indexed)
{
	enum { CONSUMERS = 10 };
	struct selector *sel[CONSUMERS];
	char text[128], hdrs[CONSUMERS][160];
	struct message msgs[CONSUMERS];
	uint64_t evals = 0, delivered = 0, t0, t;
	unsigned next = 0;
	uint32_t rnd = 2463534242u;
	struct index x;

	for (int i = 0; i < CONSUMERS; i++) {
		snprintf(text, sizeof text, "kind = 'k%d' AND frames < 100 AND JMSPriority >= %d", i, i % 3);
		sel[i] = compile(text);
		snprintf(hdrs[i], sizeof hdrs[i],
		         "content-type:text/plain\npersistent:true\nshot:sq010_sh020\nframes:%d\npriority:%d\nkind:k%d\n",
		         10 + i, 4 + i % 5, i);
		msgs[i] = (struct message){ hdrs[i], strlen(hdrs[i]), 1 };
	}
	t0 = now_ns();
	for (long k = 0; k < iterations; k++) {
		struct message *m;
		rnd ^= rnd << 13;
		rnd ^= rnd >> 17;
		rnd ^= rnd << 5;
		m = &msgs[rnd % CONSUMERS];
		if (indexed)
			index_build(&x, m);
		for (unsigned tried = 0; tried < CONSUMERS; tried++) {
			unsigned c = (next + tried) % CONSUMERS;
			evals++;
			if (indexed ? selector_match(sel[c], lookup_indexed, &x) : selector_match(sel[c], lookup, m)) {
				delivered++;
				next = (c + 1) % CONSUMERS;
				break;
			}
		}
	}
	t = now_ns() - t0;
	printf("\ndispatch: %d consumers, a different 3-comparison selector each, %s\n", CONSUMERS,
	       indexed ? "headers indexed once per message" : "headers scanned for each name");
	printf("  %" PRIu64 " messages delivered of %ld, %.2f evaluations a message\n", delivered, iterations,
	       (double)evals / (double)iterations);
	printf("  %.1f ns per message, %.1f ns per evaluation\n", (double)t / (double)iterations,
	       (double)t / (double)evals);
	for (int i = 0; i < CONSUMERS; i++)
		selector_free(sel[i]);
}

int main(int argc, char **argv)
{
	long iterations = 2000000;
	int opt;
	while ((opt = getopt(argc, argv, "n:")) != -1) {
		if (opt == 'n' && atol(optarg) > 0) {
			iterations = atol(optarg);
		} else {
			fprintf(stderr, "usage: %s [-n ITERATIONS]\n", argv[0]);
			return 2;
		}
	}
	bench_typical(iterations);
	bench_dispatch(iterations, false);
	bench_dispatch(iterations, true);
	return 0;
}
