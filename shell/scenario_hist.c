/* scenario_hist.c: latency histograms with log-linear buckets.
 *
 * A load run records one latency per message, millions of them, so a
 * sample array is out of the question; like HdrHistogram we keep counts in
 * buckets whose width grows with the value. Values 0..255 are exact; a
 * value v >= 256 with highest set bit e falls in bucket
 *   256 + (e - 8) * 128 + (v >> (e - 7)) - 128,
 * which is 1/128 of its power of two wide. Latencies are recorded in
 * nanoseconds, so the relative error (under 0.4 % at the bucket middle)
 * matters and the absolute one below 256 ns does not. */
#include <stdlib.h>
#include <string.h>

#include "scenario_int.h"

static size_t bucket_of(uint64_t v)
{
	int e;
	if (v < 2 * SCN_HIST_SUB)
		return (size_t)v;
	e = 63 - __builtin_clzll(v);	/* >= 8 */
	return 2 * SCN_HIST_SUB + (size_t)(e - 8) * SCN_HIST_SUB + (size_t)((v >> (e - 7)) - SCN_HIST_SUB);
}

/* Lowest value of bucket i and its width. */
static void bucket_range(size_t i, uint64_t *low, uint64_t *width)
{
	size_t k;
	int e;
	if (i < 2 * SCN_HIST_SUB) {
		*low = i;
		*width = 1;
		return;
	}
	k = i - 2 * SCN_HIST_SUB;
	e = (int)(k / SCN_HIST_SUB) + 8;
	*low = (uint64_t)(k % SCN_HIST_SUB + SCN_HIST_SUB) << (e - 7);
	*width = (uint64_t)1 << (e - 7);
}

struct scn_hist *scn_hist_new(void)
{
	struct scn_hist *h = xmalloc(sizeof *h);
	scn_hist_reset(h);
	return h;
}

void scn_hist_free(struct scn_hist *h)
{
	free(h);
}

void scn_hist_reset(struct scn_hist *h)
{
	memset(h, 0, sizeof *h);
	h->min = UINT64_MAX;
}

void scn_hist_record(struct scn_hist *h, uint64_t v)
{
	h->buckets[bucket_of(v)]++;
	h->count++;
	h->sum += (double)v;
	if (v < h->min)
		h->min = v;
	if (v > h->max)
		h->max = v;
}

void scn_hist_merge(struct scn_hist *dst, const struct scn_hist *src)
{
	if (!src->count)
		return;
	for (size_t i = 0; i < SCN_HIST_BUCKETS; i++)
		dst->buckets[i] += src->buckets[i];
	dst->count += src->count;
	dst->sum += src->sum;
	if (src->min < dst->min)
		dst->min = src->min;
	if (src->max > dst->max)
		dst->max = src->max;
}

uint64_t scn_hist_percentile(const struct scn_hist *h, double p)
{
	uint64_t rank, seen = 0;
	if (!h->count)
		return 0;
	if (p >= 100)
		return h->max;
	if (p <= 0)
		return h->min;
	/* The rank of the value at p: ceil(p% of count), at least 1; with a
	 * tolerance, since 99.9% of 1000 is 999.0000000000001 in doubles. */
	{
		double x = p / 100.0 * (double)h->count;
		rank = (uint64_t)x;
		if (x - (double)rank > 1e-9 * x)
			rank++;
	}
	if (rank < 1)
		rank = 1;
	for (size_t i = 0; i < SCN_HIST_BUCKETS; i++) {
		seen += h->buckets[i];
		if (seen >= rank) {
			uint64_t low, width, mid;
			bucket_range(i, &low, &width);
			mid = low + (width - 1) / 2;
			if (mid < h->min)
				mid = h->min;
			if (mid > h->max)
				mid = h->max;
			return mid;
		}
	}
	return h->max;
}

double scn_hist_mean(const struct scn_hist *h)
{
	return h->count ? h->sum / (double)h->count : 0;
}
