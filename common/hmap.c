/* hmap.c: linear probing with backward-shift deletion. */
#include "common/hmap.h"

#include <stdlib.h>
#include <string.h>

#include "common/util.h"

uint64_t hash_str(const char *s)
{
	/* Eight bytes a step (destination names are long and every SEND
	 * hashes one), then a final mix so that similar names spread well. */
	size_t n = strlen(s);
	uint64_t h = 0xcbf29ce484222325ULL ^ n, w;
	for (; n >= 8; n -= 8, s += 8) {
		memcpy(&w, s, 8);
		h = (h ^ w) * 0x100000001b3ULL;
		h ^= h >> 29;
	}
	w = 0;
	memcpy(&w, s, n);
	h = hash_u64(h ^ w);
	return h ? h : 1;	/* 0 is reserved for empty slots */
}

uint64_t hash_u64(uint64_t x)
{
	/* splitmix64's finaliser */
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ULL;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebULL;
	x ^= x >> 31;
	return x;
}

/* ---- strmap ---- */

void strmap_init(struct strmap *m) { memset(m, 0, sizeof *m); }

void strmap_fini(struct strmap *m)
{
	free(m->slots);
	memset(m, 0, sizeof *m);
}

static size_t str_find(const struct strmap *m, const char *key, uint64_t h, int *found)
{
	size_t mask = m->cap - 1, i = h & mask;
	for (;;) {
		const struct strmap_entry *e = &m->slots[i];
		if (e->hash == 0) {
			*found = 0;
			return i;
		}
		if (e->hash == h && strcmp(e->key, key) == 0) {
			*found = 1;
			return i;
		}
		i = (i + 1) & mask;
	}
}

static void str_grow(struct strmap *m)
{
	struct strmap old = *m;
	m->cap = old.cap ? old.cap * 2 : 8;
	m->slots = xcalloc(m->cap, sizeof *m->slots);
	m->count = 0;
	for (size_t i = 0; i < old.cap; i++) {
		struct strmap_entry *e = &old.slots[i];
		if (e->hash) {
			int found;
			size_t j = str_find(m, e->key, e->hash, &found);
			m->slots[j] = *e;
			m->count++;
		}
	}
	free(old.slots);
}

void *strmap_get(const struct strmap *m, const char *key)
{
	int found;
	size_t i;
	if (!m->count)
		return NULL;
	i = str_find(m, key, hash_str(key), &found);
	return found ? m->slots[i].val : NULL;
}

void *strmap_put(struct strmap *m, const char *key, void *val)
{
	uint64_t h = hash_str(key);
	int found;
	size_t i;
	if ((m->count + 1) * 4 > m->cap * 3)
		str_grow(m);
	i = str_find(m, key, h, &found);
	if (found) {
		void *prev = m->slots[i].val;
		m->slots[i].val = val;
		m->slots[i].key = key;
		return prev;
	}
	m->slots[i].hash = h;
	m->slots[i].key = key;
	m->slots[i].val = val;
	m->count++;
	return NULL;
}

void *strmap_del(struct strmap *m, const char *key)
{
	int found;
	size_t i, j, mask;
	void *val;
	if (!m->count)
		return NULL;
	i = str_find(m, key, hash_str(key), &found);
	if (!found)
		return NULL;
	val = m->slots[i].val;
	mask = m->cap - 1;
	/* Backward shift: pull later members of the cluster into the hole
	 * whenever the hole lies on their probe path. */
	j = i;
	for (;;) {
		size_t home;
		j = (j + 1) & mask;
		if (m->slots[j].hash == 0)
			break;
		home = m->slots[j].hash & mask;
		if (((j - home) & mask) >= ((j - i) & mask)) {
			m->slots[i] = m->slots[j];
			i = j;
		}
	}
	m->slots[i].hash = 0;
	m->slots[i].key = NULL;
	m->slots[i].val = NULL;
	m->count--;
	return val;
}

int strmap_next(const struct strmap *m, size_t *iter, const char **key, void **val)
{
	for (; *iter < m->cap; (*iter)++) {
		const struct strmap_entry *e = &m->slots[*iter];
		if (e->hash) {
			if (key)
				*key = e->key;
			if (val)
				*val = e->val;
			(*iter)++;
			return 1;
		}
	}
	return 0;
}

/* ---- u64map ---- */

void u64map_init(struct u64map *m) { memset(m, 0, sizeof *m); }

void u64map_fini(struct u64map *m)
{
	free(m->slots);
	memset(m, 0, sizeof *m);
}

static size_t u64_find(const struct u64map *m, uint64_t key, int *found)
{
	size_t mask = m->cap - 1, i = hash_u64(key) & mask;
	for (;;) {
		const struct u64map_entry *e = &m->slots[i];
		if (e->val == NULL) {
			*found = 0;
			return i;
		}
		if (e->key == key) {
			*found = 1;
			return i;
		}
		i = (i + 1) & mask;
	}
}

static void u64_grow(struct u64map *m)
{
	struct u64map old = *m;
	m->cap = old.cap ? old.cap * 2 : 8;
	m->slots = xcalloc(m->cap, sizeof *m->slots);
	m->count = 0;
	for (size_t i = 0; i < old.cap; i++) {
		if (old.slots[i].val) {
			int found;
			size_t j = u64_find(m, old.slots[i].key, &found);
			m->slots[j] = old.slots[i];
			m->count++;
		}
	}
	free(old.slots);
}

void *u64map_get(const struct u64map *m, uint64_t key)
{
	int found;
	size_t i;
	if (!m->count)
		return NULL;
	i = u64_find(m, key, &found);
	return found ? m->slots[i].val : NULL;
}

void *u64map_put(struct u64map *m, uint64_t key, void *val)
{
	int found;
	size_t i;
	if ((m->count + 1) * 4 > m->cap * 3)
		u64_grow(m);
	i = u64_find(m, key, &found);
	if (found) {
		void *prev = m->slots[i].val;
		m->slots[i].val = val;
		return prev;
	}
	m->slots[i].key = key;
	m->slots[i].val = val;
	m->count++;
	return NULL;
}

void *u64map_del(struct u64map *m, uint64_t key)
{
	int found;
	size_t i, j, mask;
	void *val;
	if (!m->count)
		return NULL;
	i = u64_find(m, key, &found);
	if (!found)
		return NULL;
	val = m->slots[i].val;
	mask = m->cap - 1;
	j = i;
	for (;;) {
		size_t home;
		j = (j + 1) & mask;
		if (m->slots[j].val == NULL)
			break;
		home = hash_u64(m->slots[j].key) & mask;
		if (((j - home) & mask) >= ((j - i) & mask)) {
			m->slots[i] = m->slots[j];
			i = j;
		}
	}
	m->slots[i].key = 0;
	m->slots[i].val = NULL;
	m->count--;
	return val;
}

int u64map_next(const struct u64map *m, size_t *iter, uint64_t *key, void **val)
{
	for (; *iter < m->cap; (*iter)++) {
		const struct u64map_entry *e = &m->slots[*iter];
		if (e->val) {
			if (key)
				*key = e->key;
			if (val)
				*val = e->val;
			(*iter)++;
			return 1;
		}
	}
	return 0;
}
