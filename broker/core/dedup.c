/* dedup.c: windows of recently taken ids. See dedup.h. */
#include "core/dedup.h"

#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include "core/broker.h"
#include "core/dest.h"
#include "core/msg.h"
#include "common/hmap.h"
#include "common/util.h"

struct dedup_id {
	TAILQ_ENTRY(dedup_id) link;	/* oldest first */
	uint64_t at_ms;
	char id[];
};

struct dedup {
	uint64_t window_ms;
	struct strmap ids;		/* id -> struct dedup_id *, owned */
	TAILQ_HEAD(, dedup_id) order;
	char *key;			/* owned; for the broker's map of queue windows */
};

struct dedup *dedup_new(uint64_t window_ms)
{
	struct dedup *w = xcalloc(1, sizeof *w);
	w->window_ms = window_ms;
	TAILQ_INIT(&w->order);
	return w;
}

void dedup_free(struct dedup *w)
{
	struct dedup_id *e;
	if (!w)
		return;
	while ((e = TAILQ_FIRST(&w->order))) {
		TAILQ_REMOVE(&w->order, e, link);
		free(e);
	}
	strmap_fini(&w->ids);
	free(w->key);
	free(w);
}

void dedup_set_window(struct dedup *w, uint64_t window_ms)
{
	w->window_ms = window_ms;
}

static void forget_one(struct dedup *w)
{
	struct dedup_id *e = TAILQ_FIRST(&w->order);
	TAILQ_REMOVE(&w->order, e, link);
	strmap_del(&w->ids, e->id);
	free(e);
}

static void expire(struct dedup *w, uint64_t now_ms)
{
	struct dedup_id *e;
	while ((e = TAILQ_FIRST(&w->order)) && e->at_ms + w->window_ms <= now_ms)
		forget_one(w);
}

/* Ids are short (a session nonce and a counter); a longer one is taken
 * as it comes, but bounded so that a hostile header cannot grow the
 * window without limit. */
#define ID_MAX 256

bool dedup_seen(struct dedup *w, const char *id, size_t len, uint64_t now_ms)
{
	char key[ID_MAX + 1];
	expire(w, now_ms);
	if (len > ID_MAX)
		len = ID_MAX;
	memcpy(key, id, len);
	key[len] = 0;
	return strmap_get(&w->ids, key) != NULL;
}

void dedup_add(struct dedup *w, const char *id, size_t len, uint64_t now_ms)
{
	struct dedup_id *e, *old;
	if (len > ID_MAX)
		len = ID_MAX;
	e = xmalloc(sizeof *e + len + 1);
	memcpy(e->id, id, len);
	e->id[len] = 0;
	e->at_ms = now_ms;
	if ((old = strmap_put(&w->ids, e->id, e))) {
		TAILQ_REMOVE(&w->order, old, link);
		free(old);
	}
	TAILQ_INSERT_TAIL(&w->order, e, link);
	if (w->ids.count > DEDUP_MAX_IDS)
		forget_one(w);
}

size_t dedup_count(const struct dedup *w)
{
	return w ? w->ids.count : 0;
}

/* ---- the windows of queues ---- */

static char *dest_key(const struct dest *q)
{
	size_t a = strlen(q->vhost->name), n = strlen(q->name);
	char *k = xmalloc(a + n + 2);
	memcpy(k, q->vhost->name, a);
	k[a] = '\n';	/* in neither a virtual host's name nor a destination's */
	memcpy(k + a + 1, q->name, n + 1);
	return k;
}

struct dedup *dedup_for_dest(struct broker *b, const struct dest *q)
{
	struct dedup *w;
	char *key;
	if (!q->opts.dedup_ms)
		return NULL;
	key = dest_key(q);
	w = strmap_get(&b->dedups, key);
	if (w) {
		free(key);
		w->window_ms = q->opts.dedup_ms;
		return w;
	}
	w = dedup_new(q->opts.dedup_ms);
	w->key = key;
	strmap_put(&b->dedups, w->key, w);
	return w;
}

void dedup_seed_recovered(struct broker *b)
{
	size_t n;
	struct dest **all = broker_dests(b, DEST_QUEUE, &n);
	uint64_t now = broker_now_ms(b);
	for (size_t i = 0; i < n; i++) {
		struct dest *q = all[i];
		struct dedup *w = dedup_for_dest(b, q);
		for (size_t k = 0; w && k < q->count; k++) {
			const struct qitem *it = &q->items[(q->head + k) & (q->cap - 1)];
			const char *id;
			size_t len;
			/* Paged-out messages are on disk only: reading each back
			 * would cost the start-up what the budget saved. */
			if (it->taken || it->paged)
				continue;
			if ((id = msg_header_raw(it->m, DEDUP_HEADER, sizeof DEDUP_HEADER - 1, &len)))
				dedup_add(w, id, len, now);
		}
	}
	free(all);
}

void dedup_sweep(struct broker *b)
{
	size_t it = 0, n = 0;
	void *v;
	struct dedup **gone;
	if (!b->dedups.count)
		return;
	gone = xcalloc(b->dedups.count, sizeof *gone);
	while (strmap_next(&b->dedups, &it, NULL, &v)) {
		struct dedup *w = v;
		char *nl = strchr(w->key, '\n');
		struct vhost *vh;
		const struct dest *q;
		*nl = 0;
		vh = broker_vhost_find(b, w->key);
		q = vh ? dest_find(vh, nl + 1) : NULL;
		*nl = '\n';
		if (!q || !q->opts.dedup_ms)
			gone[n++] = w;
		else
			expire(w, broker_now_ms(b));
	}
	for (size_t i = 0; i < n; i++) {
		strmap_del(&b->dedups, gone[i]->key);
		dedup_free(gone[i]);
	}
	free(gone);
}

void dedup_fini(struct broker *b)
{
	size_t it = 0;
	void *v;
	while (strmap_next(&b->dedups, &it, NULL, &v))
		dedup_free(v);
	strmap_fini(&b->dedups);
}
