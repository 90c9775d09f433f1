/* scenario_track.c: stamps, and what each sink received from each
 * producer; the delivery and order checks.
 *
 * A consumer turns every message it processes into one call of
 * scn_sink_add(): a few instructions, since the load generator must not be
 * what limits a run. The checks walk the result afterwards. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "scenario_int.h"

/* ---- stamps ---- */

/* Every message is stamped, so this is on the producer's hot path: two
 * digits per division, written from the end. */
static size_t put_u64(char *p, uint64_t v)
{
	static const char pairs[201] =
		"00010203040506070809101112131415161718192021222324252627282930313233343536373839"
		"40414243444546474849505152535455565758596061626364656667686970717273747576777879"
		"8081828384858687888990919293949596979899";
	size_t n = 1;
	char *e;
	for (uint64_t t = v; t >= 10; t /= 10)
		n++;
	e = p + n;
	while (v >= 100) {
		unsigned i = (unsigned)(v % 100) * 2;
		v /= 100;
		*--e = pairs[i + 1];
		*--e = pairs[i];
	}
	if (v >= 10) {
		*--e = pairs[v * 2 + 1];
		*--e = pairs[v * 2];
	} else {
		*--e = (char)('0' + v);
	}
	return n;
}

size_t scn_stamp_format(char *buf, const struct scn_stamp *st)
{
	char *p = buf;
	p += put_u64(p, st->run);
	*p++ = '.';
	p += put_u64(p, st->producer);
	*p++ = '.';
	p += put_u64(p, st->seq);
	*p++ = '.';
	p += put_u64(p, st->sent_ns);
	*p = 0;
	return (size_t)(p - buf);
}

/* A decimal number of 1..20 digits ending at `end` (a '.' or the NUL). */
static const char *get_u64(const char *s, char end, uint64_t *out)
{
	uint64_t v = 0;
	const char *start = s;
	while (*s >= '0' && *s <= '9') {
		unsigned d = (unsigned)(*s - '0');
		if (v > (UINT64_MAX - d) / 10)
			return NULL;
		v = v * 10 + d;
		s++;
	}
	if (s == start || *s != end)
		return NULL;
	*out = v;
	return end ? s + 1 : s;
}

bool scn_stamp_parse(const char *s, struct scn_stamp *st)
{
	uint64_t run, prod;
	if (!s)
		return false;
	if (!(s = get_u64(s, '.', &run)) || !(s = get_u64(s, '.', &prod)) || !(s = get_u64(s, '.', &st->seq)) ||
	    !get_u64(s, 0, &st->sent_ns))
		return false;
	if (run > UINT32_MAX || prod == 0 || prod > UINT32_MAX || st->seq == 0)
		return false;
	st->run = (uint32_t)run;
	st->producer = (uint32_t)prod;
	return true;
}

/* ---- bit sets ---- */

void scn_bits_set(struct scn_bits *b, uint64_t i)
{
	size_t w = (size_t)(i >> 6);
	uint64_t m = (uint64_t)1 << (i & 63);
	if (w >= b->nwords) {
		size_t n = b->nwords ? b->nwords : 16;
		while (n <= w)
			n *= 2;
		b->w = xrealloc(b->w, n * sizeof *b->w);
		memset(b->w + b->nwords, 0, (n - b->nwords) * sizeof *b->w);
		b->nwords = n;
	}
	if (!(b->w[w] & m)) {
		b->w[w] |= m;
		b->count++;
	}
}

bool scn_bits_test(const struct scn_bits *b, uint64_t i)
{
	size_t w = (size_t)(i >> 6);
	return w < b->nwords && (b->w[w] >> (i & 63)) & 1;
}

/* Bits set in [first, last]. */
static uint64_t bits_count(const struct scn_bits *b, uint64_t first, uint64_t last)
{
	uint64_t n = 0;
	if (first > last)
		return 0;
	for (uint64_t i = first; i <= last;) {
		size_t w = (size_t)(i >> 6);
		if (w >= b->nwords)
			break;
		if ((i & 63) == 0 && last - i >= 63) {
			n += (uint64_t)__builtin_popcountll(b->w[w]);
			i += 64;
		} else {
			n += (b->w[w] >> (i & 63)) & 1;
			i++;
		}
	}
	return n;
}

void scn_bits_fini(struct scn_bits *b)
{
	free(b->w);
	memset(b, 0, sizeof *b);
}

/* ---- sinks ---- */

struct scn_sink *scn_sink_new(const void *broker, const char *dest, bool fanout, unsigned copies,
                              const char *name)
{
	struct scn_sink *k = xcalloc(1, sizeof *k);
	k->broker = broker;
	k->dest = xstrdup(dest);
	k->fanout = fanout;
	k->open = !fanout;	/* a topic owes a subscriber nothing until it subscribed */
	k->copies = copies ? copies : 1;
	k->name = xstrdup(name);
	return k;
}

void scn_sink_free(struct scn_sink *k)
{
	if (!k)
		return;
	for (size_t i = 0; i < k->nprod; i++) {
		if (k->by_prod[i])
			free(k->by_prod[i]->cnt);
		free(k->by_prod[i]);
	}
	free(k->by_prod);
	free(k->dest);
	free(k->name);
	free(k);
}

static struct scn_seqs *seqs_get(struct scn_sink *k, uint32_t producer)
{
	if (producer >= k->nprod) {
		size_t n = k->nprod ? k->nprod : 8;
		while (n <= producer)
			n *= 2;
		k->by_prod = xrealloc(k->by_prod, n * sizeof *k->by_prod);
		memset(k->by_prod + k->nprod, 0, (n - k->nprod) * sizeof *k->by_prod);
		k->nprod = n;
	}
	if (!k->by_prod[producer]) {
		k->by_prod[producer] = xcalloc(1, sizeof **k->by_prod);
		k->by_prod[producer]->base = 1;
	}
	return k->by_prod[producer];
}

const struct scn_seqs *scn_sink_get(const struct scn_sink *k, uint32_t producer)
{
	return producer < k->nprod ? k->by_prod[producer] : NULL;
}

/* Drops the first n entries of the window. */
static void shift(struct scn_seqs *q, size_t n)
{
	if (n > q->len)
		n = q->len;
	if (!n)
		return;
	memmove(q->cnt, q->cnt + n, q->len - n);
	memset(q->cnt + q->len - n, 0, n);
	q->len -= n;
}

/* Folds the complete prefix of the window into base. Runs only when the
 * seq at base arrives, which in order is almost every time with a window
 * of one, so the memmove is short; after a gap fills, it moves the window
 * once. */
static void advance(struct scn_seqs *q, unsigned copies)
{
	size_t i = 0;
	while (i < q->len && q->cnt[i] >= copies) {
		q->dup_below += q->cnt[i] - copies;
		i++;
	}
	if (!i)
		return;
	q->base += i;
	shift(q, i);
}

void scn_sink_set_baseline(struct scn_sink *k, uint32_t producer, uint64_t sent)
{
	struct scn_seqs *q = seqs_get(k, producer);
	if (sent <= q->baseline)
		return;
	q->baseline = sent;
	if (q->base <= sent) {
		/* What arrived of those early seqs no longer counts. */
		shift(q, (size_t)(sent + 1 - q->base));
		q->base = sent + 1;
		if (q->len && q->cnt[0] >= k->copies)
			advance(q, k->copies);
	}
}

void scn_sink_open(struct scn_sink *k)
{
	k->open = true;
}

void scn_sink_add(struct scn_sink *k, uint32_t producer, uint64_t seq)
{
	struct scn_seqs *q = seqs_get(k, producer);
	uint64_t off;
	uint8_t c;

	q->arrivals++;
	if (seq <= q->baseline)
		return;	/* sent before the subscription: owed to nobody */
	if (seq < q->base) {
		q->dup_below++;
		if (!q->first_dup)
			q->first_dup = seq;
		return;
	}
	off = seq - q->base;
	if (off >= q->cap) {
		size_t n = q->cap ? q->cap : 64;
		while (n <= off)
			n *= 2;
		q->cnt = xrealloc(q->cnt, n);
		memset(q->cnt + q->cap, 0, n - q->cap);
		q->cap = n;
	}
	if (off >= q->len)
		q->len = (size_t)off + 1;
	c = q->cnt[off];
	if (c >= k->copies && !q->first_dup)
		q->first_dup = seq;
	if (c == 255)
		q->dup_below++;	/* saturated: the excess is counted now */
	else
		q->cnt[off] = (uint8_t)(c + 1);
	if (off == 0 && q->cnt[0] >= k->copies)
		advance(q, k->copies);
}

void scn_sink_order_error(struct scn_sink *k, uint32_t producer, uint64_t seq)
{
	struct scn_seqs *q = seqs_get(k, producer);
	q->out_of_order++;
	if (!q->first_ooo)
		q->first_ooo = seq;
}

/* Arrivals of seq, as far as the sink still knows: seqs below base count
 * as exactly `copies` (their excess is in dup_below). */
static unsigned arrivals_of(const struct scn_seqs *q, unsigned copies, uint64_t seq)
{
	if (!q || seq <= q->baseline)
		return 0;
	if (seq < q->base)
		return copies;
	if (seq - q->base < q->len)
		return q->cnt[seq - q->base];
	return 0;
}

uint64_t scn_sink_distinct(const struct scn_sink *k, uint32_t producer, uint64_t first, uint64_t last)
{
	const struct scn_seqs *q = scn_sink_get(k, producer);
	uint64_t n = 0, top;
	if (!q)
		return 0;
	if (first <= q->baseline)
		first = q->baseline + 1;
	if (first > last)
		return 0;
	if (first < q->base) {
		top = last < q->base - 1 ? last : q->base - 1;
		n += top - first + 1;
		first = q->base;
	}
	top = q->len ? q->base + q->len - 1 : 0;
	if (last > top)
		last = top;
	for (uint64_t s = first; s <= last && q->len; s++)
		n += q->cnt[s - q->base] > 0;
	return n;
}

bool scn_sink_fed_by(const struct scn_sink *k, const struct scn_source *src)
{
	if (k->broker == src->broker && src->dest && strcmp(k->dest, src->dest) == 0)
		return true;
	return src->id < k->nprod && k->by_prod[src->id];
}

bool scn_sink_drained(const struct scn_sink *k, const struct scn_source *src)
{
	const struct scn_seqs *q = scn_sink_get(k, src->id);
	if (!k->open)
		return false;	/* nothing can be counted before the subscriptions */
	if (!q)
		return src->sent == 0;
	/* Below base everything is in; the window is short unless something
	 * is missing, and then run{} is waiting anyway. */
	for (uint64_t s = q->base; s <= src->sent; s++)
		if (arrivals_of(q, k->copies, s) < k->copies)
			return false;
	return true;
}

/* ---- order ---- */

bool scn_order_check(struct scn_order *o, struct scn_sink *k, uint32_t producer, uint64_t seq)
{
	if (producer >= o->n) {
		size_t n = o->n ? o->n : 8;
		while (n <= producer)
			n *= 2;
		o->last = xrealloc(o->last, n * sizeof *o->last);
		memset(o->last + o->n, 0, (n - o->n) * sizeof *o->last);
		o->n = n;
	}
	if (seq <= o->last[producer]) {
		scn_sink_order_error(k, producer, seq);
		return false;
	}
	o->last[producer] = seq;
	return true;
}

void scn_order_fini(struct scn_order *o)
{
	free(o->last);
	memset(o, 0, sizeof *o);
}

/* ---- tallies and checks ---- */

void scn_tally_add(struct scn_tally *t, const struct scn_sink *k, const struct scn_source *src,
                   enum scn_scope scope)
{
	const struct scn_seqs *q = scn_sink_get(k, src->id);
	unsigned copies = k->copies;
	uint64_t below, first;

	if (!k->open)
		return;	/* a fan-out group that never subscribed is owed nothing */
	/* From baseline to base everything arrived: count it without
	 * walking it. */
	if (q && q->base - 1 > q->baseline && q->baseline < src->sent) {
		uint64_t top = q->base - 1 < src->sent ? q->base - 1 : src->sent;
		below = scope == SCN_ACKED_ONLY ? bits_count(&src->acked, q->baseline + 1, top) : top - q->baseline;
	} else {
		below = 0;
	}
	t->expected += below * copies;
	t->arrived += below * copies;
	first = q ? q->base : 1;
	for (uint64_t s = first; s <= src->sent; s++) {
		unsigned c;
		if (scope == SCN_ACKED_ONLY && !scn_bits_test(&src->acked, s))
			continue;
		c = arrivals_of(q, copies, s);
		t->expected += copies;
		t->arrived += c < copies ? c : copies;
		if (c < copies) {
			if (!t->lost) {
				t->lost_prod = src->id;
				t->lost_seq = s;
				t->lost_sink = k->name;
			}
			t->lost += copies - c;
		}
	}
	if (!q)
		return;
	{
		uint64_t dup = q->dup_below;
		for (size_t i = 0; i < q->len; i++)
			if (q->cnt[i] > copies)
				dup += q->cnt[i] - copies;
		if (dup && !t->duplicated) {
			t->dup_prod = src->id;
			t->dup_seq = q->first_dup;
		}
		t->duplicated += dup;
	}
	if (q->out_of_order && !t->out_of_order) {
		t->ooo_prod = src->id;
		t->ooo_seq = q->first_ooo;
	}
	t->out_of_order += q->out_of_order;
}

bool scn_check(enum scn_check c, const struct scn_tally *t, char *buf, size_t len)
{
	char lost[200] = "", dup[160] = "";
	bool ok;

	if (t->lost)
		snprintf(lost, sizeof lost, "%llu of %llu lost (first: producer %u seq %llu, at %s)",
		         (unsigned long long)t->lost, (unsigned long long)t->expected, t->lost_prod,
		         (unsigned long long)t->lost_seq, t->lost_sink ? t->lost_sink : "?");
	if (t->duplicated)
		snprintf(dup, sizeof dup, "%llu duplicated (first: producer %u seq %llu)",
		         (unsigned long long)t->duplicated, t->dup_prod, (unsigned long long)t->dup_seq);
	switch (c) {
	case SCN_EXACTLY_ONCE:
		ok = !t->lost && !t->duplicated;
		if (ok)
			snprintf(buf, len, "exactly once: %llu of %llu arrived, none twice",
			         (unsigned long long)t->arrived, (unsigned long long)t->expected);
		else
			snprintf(buf, len, "not exactly once: %s%s%s", lost, *lost && *dup ? ", " : "", dup);
		return ok;
	case SCN_AT_LEAST_ONCE:
		ok = !t->lost;
		if (ok)
			snprintf(buf, len, "at least once: %llu of %llu arrived%s%s%s",
			         (unsigned long long)t->arrived, (unsigned long long)t->expected,
			         *dup ? " (" : "", dup, *dup ? ")" : "");
		else
			snprintf(buf, len, "not at least once: %s", lost);
		return ok;
	case SCN_IN_ORDER:
		ok = !t->out_of_order;
		if (ok)
			snprintf(buf, len, "in order: no first delivery came after a later one");
		else
			snprintf(buf, len, "out of order: %llu first deliveries came after a later one from the same "
			         "producer (first: producer %u seq %llu)",
			         (unsigned long long)t->out_of_order, t->ooo_prod, (unsigned long long)t->ooo_seq);
		return ok;
	}
	snprintf(buf, len, "unknown check %d", (int)c);
	return false;
}
