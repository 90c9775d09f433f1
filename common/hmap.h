/* hmap.h: small open-addressing hash maps.
 *
 * strmap maps a NUL-terminated string to a pointer; u64map maps a 64-bit
 * integer to a pointer. Both use linear probing with backward-shift
 * deletion, so there are no tombstones and lookups stay short after many
 * deletes. A map allocates nothing until its first insert, which keeps idle
 * connections cheap; once used it keeps its table (until _fini), so that a
 * map swinging between zero and one entry does not allocate every time.
 *
 * Keys of a strmap are borrowed: the caller keeps the key string alive for
 * as long as the entry exists (usually the value owns it). */
#ifndef MQ_HMAP_H
#define MQ_HMAP_H

#include <stddef.h>
#include <stdint.h>

struct strmap_entry {
	uint64_t hash;		/* 0 marks an empty slot */
	const char *key;	/* borrowed */
	void *val;
};

struct strmap {
	struct strmap_entry *slots;	/* owned; NULL while empty */
	size_t cap;			/* power of two, or 0 */
	size_t count;
};

void  strmap_init(struct strmap *m);
void  strmap_fini(struct strmap *m);	/* frees the table, not the values */
void *strmap_get(const struct strmap *m, const char *key);
/* Inserts or replaces; returns the previous value or NULL. -1 never: aborts only on OOM. */
void *strmap_put(struct strmap *m, const char *key, void *val);
void *strmap_del(struct strmap *m, const char *key);	/* returns the removed value */
/* Iteration: for (size_t i = 0; strmap_next(m, &i, &k, &v); ) ... ; do not
 * insert while iterating; deleting the current entry is not allowed either:
 * collect keys first. */
int   strmap_next(const struct strmap *m, size_t *iter, const char **key, void **val);

struct u64map_entry {
	uint64_t key;
	void *val;		/* NULL marks an empty slot: values are never NULL */
};

struct u64map {
	struct u64map_entry *slots;	/* owned; NULL while empty */
	size_t cap;
	size_t count;
};

void  u64map_init(struct u64map *m);
void  u64map_fini(struct u64map *m);
void *u64map_get(const struct u64map *m, uint64_t key);
void *u64map_put(struct u64map *m, uint64_t key, void *val);	/* val != NULL */
void *u64map_del(struct u64map *m, uint64_t key);
int   u64map_next(const struct u64map *m, size_t *iter, uint64_t *key, void **val);

uint64_t hash_str(const char *s);
uint64_t hash_u64(uint64_t x);

#endif
