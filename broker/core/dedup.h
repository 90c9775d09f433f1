/* dedup.h: the ids a receiver has taken recently, to drop repeats.
 *
 * At-least-once forwarding sends a message again when it cannot know
 * whether the first copy arrived (a bridge whose link dropped before the
 * RECEIPT, a client library reposting after a reconnection). Each copy
 * carries the same stable id, the mq-post-id header; a window remembers
 * the ids taken within a time (and at most DEDUP_MAX_IDS of them), and
 * publish() drops a message whose id it holds. Windows belong to a queue
 * (its dedup-window option) or to an inbound bridge (its dedup option).
 * A window lives in memory; after a restart a queue's window starts with
 * the ids of the messages the journal gave back to it, not with those it
 * had already delivered. */
#ifndef MQ_DEDUP_H
#define MQ_DEDUP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DEDUP_HEADER "mq-post-id"
#define DEDUP_MAX_IDS 1000000

struct broker;
struct dest;
struct dedup;

struct dedup *dedup_new(uint64_t window_ms);
void dedup_free(struct dedup *w);
/* Changes the window's time; ids older than it go at the next check. */
void dedup_set_window(struct dedup *w, uint64_t window_ms);
/* Was `id` (len bytes) taken within the window? Forgets expired ids first. */
bool dedup_seen(struct dedup *w, const char *id, size_t len, uint64_t now_ms);
/* Remembers `id` as taken now. */
void dedup_add(struct dedup *w, const char *id, size_t len, uint64_t now_ms);
size_t dedup_count(const struct dedup *w);

/* The window of queue q (its dedup-window option), made on first use and
 * kept by the broker under the queue's virtual host and name; NULL when
 * the option is off. */
struct dedup *dedup_for_dest(struct broker *b, const struct dest *q);
/* After recovery: each queue with a window starts with the ids of the
 * messages it holds again (those in memory), so that a repeat of one it
 * took before a crash is still recognised. */
void dedup_seed_recovered(struct broker *b);
/* Forgets the windows of destinations that are gone or have turned the
 * option off (the broker's tick). */
void dedup_sweep(struct broker *b);
void dedup_fini(struct broker *b);

#endif
