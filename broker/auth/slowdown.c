/* slowdown.c: a fixed-size table of peers with failed logins.
 *
 * Records live in one array allocated at creation, found through an
 * open-addressing index (linear probing, backward-shift deletion) and
 * chained in order of their last failure, oldest first, which is the
 * order of eviction. Nothing is allocated after slowdown_new(). */
#include "auth/slowdown.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "common/hmap.h"
#include "common/util.h"

#define NONE UINT32_MAX

struct rec {
	struct slowdown_key key;
	unsigned failures;		/* as counted at last_ms */
	uint64_t last_ms;		/* last failure */
	uint32_t prev, next;		/* in order of last failure; free list uses next */
};

struct slowdown {
	struct slowdown_opts o;
	struct rec *recs;		/* owned; o.capacity */
	uint32_t *index;		/* owned; record numbers, NONE when empty */
	size_t index_mask;
	uint32_t head, tail;		/* oldest and newest last failure */
	uint32_t free_list;
	uint64_t seed;			/* so that nobody can aim addresses at one index chain */
	struct slowdown_stats st;
};

struct slowdown *slowdown_new(const struct slowdown_opts *opts)
{
	struct slowdown *s = xcalloc(1, sizeof *s);
	size_t icap = 16;

	if (opts)
		s->o = *opts;
	if (!s->o.capacity)
		s->o.capacity = 4096;
	if (s->o.capacity > UINT32_MAX / 4)
		s->o.capacity = UINT32_MAX / 4;
	if (!s->o.free_failures)
		s->o.free_failures = 3;
	if (!s->o.base_ms)
		s->o.base_ms = 250;
	if (!s->o.max_ms)
		s->o.max_ms = 8000;
	if (!s->o.decay_ms)
		s->o.decay_ms = 60000;
	while (icap < s->o.capacity * 2)
		icap <<= 1;
	s->recs = xcalloc(s->o.capacity, sizeof *s->recs);
	s->index = xmalloc(icap * sizeof *s->index);
	for (size_t i = 0; i < icap; i++)
		s->index[i] = NONE;
	s->index_mask = icap - 1;
	s->head = s->tail = NONE;
	for (size_t i = 0; i < s->o.capacity; i++)
		s->recs[i].next = i + 1 < s->o.capacity ? (uint32_t)(i + 1) : NONE;
	s->free_list = 0;
	if (getrandom(&s->seed, sizeof s->seed, GRND_NONBLOCK) != (ssize_t)sizeof s->seed)
		s->seed = mono_us() ^ (uintptr_t)s;
	return s;
}

void slowdown_free(struct slowdown *s)
{
	if (!s)
		return;
	free(s->recs);
	free(s->index);
	free(s);
}

void slowdown_key(const char *peer, struct slowdown_key *k)
{
	char host[64];
	const char *start = peer, *end;
	struct in_addr a4;
	struct in6_addr a6;

	memset(k, 0, sizeof *k);
	if (peer[0] == '[') {
		start = peer + 1;
		end = strchr(start, ']');
	} else {
		end = strrchr(peer, ':');
		/* two colons or more and no brackets: an IPv6 address alone */
		if (end && strchr(peer, ':') != end)
			end = NULL;
	}
	if (!end)
		end = peer + strlen(peer);
	if ((size_t)(end - start) < sizeof host) {
		memcpy(host, start, (size_t)(end - start));
		host[end - start] = 0;
		if (inet_pton(AF_INET, host, &a4) == 1) {
			/* as IPv4-mapped IPv6, ::ffff:a.b.c.d */
			k->b[10] = k->b[11] = 0xff;
			memcpy(k->b + 12, &a4, 4);
			return;
		}
		if (inet_pton(AF_INET6, host, &a6) == 1) {
			if (IN6_IS_ADDR_V4MAPPED(&a6))
				memcpy(k->b, &a6, 16);
			else
				memcpy(k->b, &a6, 8);	/* the /64 */
			return;
		}
	}
	/* ff00::/8 is multicast, never a peer: a safe space for other names */
	{
		uint64_t h = hash_str(peer), h2 = hash_u64(h);
		k->b[0] = 0xff;
		memcpy(k->b + 1, &h, 8);
		memcpy(k->b + 9, &h2, 7);
	}
}

static size_t slot_of(const struct slowdown *s, const struct slowdown_key *k)
{
	uint64_t a, b;
	memcpy(&a, k->b, 8);
	memcpy(&b, k->b + 8, 8);
	return (size_t)(hash_u64(a ^ s->seed) ^ hash_u64(b + s->seed)) & s->index_mask;
}

/* The index slot holding key k, or the empty slot where it would go. */
static size_t find_slot(const struct slowdown *s, const struct slowdown_key *k)
{
	size_t i = slot_of(s, k);
	while (s->index[i] != NONE && memcmp(s->recs[s->index[i]].key.b, k->b, sizeof k->b) != 0)
		i = (i + 1) & s->index_mask;
	return i;
}

static void index_remove(struct slowdown *s, size_t i)
{
	/* backward shift: pull later members of the chain into the hole */
	size_t j = i;
	s->index[i] = NONE;
	for (;;) {
		size_t home;
		j = (j + 1) & s->index_mask;
		if (s->index[j] == NONE)
			return;
		home = slot_of(s, &s->recs[s->index[j]].key);
		/* move j to i unless home lies cyclically in (i, j] */
		if ((j > i && (home <= i || home > j)) || (j < i && (home <= i && home > j))) {
			s->index[i] = s->index[j];
			s->index[j] = NONE;
			i = j;
		}
	}
}

static void unlink_rec(struct slowdown *s, uint32_t r)
{
	struct rec *x = &s->recs[r];
	if (x->prev != NONE)
		s->recs[x->prev].next = x->next;
	else
		s->head = x->next;
	if (x->next != NONE)
		s->recs[x->next].prev = x->prev;
	else
		s->tail = x->prev;
	x->prev = x->next = NONE;
}

static void append_rec(struct slowdown *s, uint32_t r)
{
	struct rec *x = &s->recs[r];
	x->prev = s->tail;
	x->next = NONE;
	if (s->tail != NONE)
		s->recs[s->tail].next = r;
	else
		s->head = r;
	s->tail = r;
}

static void drop_rec(struct slowdown *s, uint32_t r)
{
	index_remove(s, find_slot(s, &s->recs[r].key));
	unlink_rec(s, r);
	s->recs[r].next = s->free_list;
	s->free_list = r;
	s->st.records--;
}

static unsigned effective(const struct slowdown *s, const struct rec *x, uint64_t now_ms)
{
	uint64_t quiet = now_ms > x->last_ms ? now_ms - x->last_ms : 0;
	uint64_t forgotten = quiet / s->o.decay_ms;
	return forgotten >= x->failures ? 0 : x->failures - (unsigned)forgotten;
}

static struct rec *lookup(const struct slowdown *s, const char *peer, struct slowdown_key *k)
{
	size_t i;
	slowdown_key(peer, k);
	i = find_slot(s, k);
	return s->index[i] == NONE ? NULL : &s->recs[s->index[i]];
}

uint64_t slowdown_delay(struct slowdown *s, const char *peer, uint64_t now_ms)
{
	struct slowdown_key k;
	const struct rec *x = lookup(s, peer, &k);
	unsigned f = x ? effective(s, x, now_ms) : 0, steps;
	uint64_t d;

	if (f < s->o.free_failures)
		return 0;
	steps = f - s->o.free_failures;
	d = steps >= 32 ? s->o.max_ms : s->o.base_ms << steps;
	if (d > s->o.max_ms || d < s->o.base_ms)
		d = s->o.max_ms;
	s->st.delayed++;
	return d;
}

unsigned slowdown_failures(struct slowdown *s, const char *peer, uint64_t now_ms)
{
	struct slowdown_key k;
	const struct rec *x = lookup(s, peer, &k);
	return x ? effective(s, x, now_ms) : 0;
}

unsigned slowdown_failed(struct slowdown *s, const char *peer, uint64_t now_ms)
{
	struct slowdown_key k;
	struct rec *x = lookup(s, peer, &k);
	uint32_t r;

	s->st.failures++;
	if (x) {
		r = (uint32_t)(x - s->recs);
		x->failures = effective(s, x, now_ms);
		unlink_rec(s, r);
	} else {
		if (s->free_list == NONE) {
			drop_rec(s, s->head);
			s->st.evicted++;
		}
		r = s->free_list;
		x = &s->recs[r];
		s->free_list = x->next;
		x->key = k;
		x->failures = 0;
		s->index[find_slot(s, &k)] = r;
		s->st.records++;
		if (s->st.records > s->st.peak)
			s->st.peak = s->st.records;
	}
	if (x->failures < UINT32_MAX)
		x->failures++;
	x->last_ms = now_ms;
	append_rec(s, r);
	return x->failures;
}

void slowdown_expire(struct slowdown *s, uint64_t now_ms)
{
	uint32_t r = s->head;
	while (r != NONE) {
		uint32_t next = s->recs[r].next;
		if (effective(s, &s->recs[r], now_ms) == 0)
			drop_rec(s, r);
		r = next;
	}
}

void slowdown_get_stats(const struct slowdown *s, struct slowdown_stats *out)
{
	*out = s->st;
}
