/* store.c: queues on the journal. See store.h. */
#include "core/store.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/broker.h"
#include "core/dest.h"
#include "store/journal.h"
#include "common/json.h"
#include "common/log.h"
#include "core/msg.h"
#include "common/util.h"

/* A pubsub's children, named in its META record, are attached once every
 * destination has been recreated. */
struct pending_children {
	struct dest *pubsub;
	char **names;
	size_t n;
};

struct store {
	struct broker *b;
	struct journal *j;		/* owned */
	struct u64map by_qid;		/* qid -> struct dest *, borrowed */
	uint32_t next_qid;
	bool recovering;		/* replaying: write nothing back */
	/* recovery bookkeeping */
	struct pending_children *pending;
	size_t npending;
	uint64_t recovered_msgs, skipped_msgs;
	struct completion_list waiting;	/* by seq, lowest first */
	struct strmap others;		/* META records of the layers above (key -> struct sbuf *),
					 * from recovery, for store_meta_each() */
};

static struct store *store_of(const struct broker *b) { return b->store; }

bool store_wants(const struct dest *q, const struct msg *m)
{
	return q->vhost->broker->store && q->type == DEST_QUEUE && !q->owner &&
	       (q->opts.persistent || (m->flags & MSG_PERSISTENT));
}

static bool wants_meta(const struct dest *d)
{
	return d->type != DEST_COMMAND && !d->owner &&
	       (d->configured || d->opts.persistent || d->durable_topic || d->qid);
}

static void meta_key(uint32_t qid, char *buf, size_t len)
{
	snprintf(buf, len, "d:%" PRIu32, qid);
}

static void write_meta(struct store *st, struct dest *d)
{
	struct sbuf json;
	struct jw w;
	char key[32];

	sbuf_init(&json);
	jw_init(&w, &json);
	jw_obj_begin(&w);
	jw_kstr(&w, "vhost", d->vhost->name);
	jw_kstr(&w, "name", d->name);
	jw_kstr(&w, "type", dest_type_name(d->type));
	jw_kbool(&w, "configured", d->configured);
	jw_kbool(&w, "paused", d->paused);
	if (d->durable_topic)
		jw_kstr(&w, "durable_topic", d->durable_topic);
	jw_key(&w, "opts");
	jw_obj_begin(&w);
	jw_kbool(&w, "persistent", d->opts.persistent);
	jw_kuint(&w, "max_length", d->opts.max_length);
	jw_kuint(&w, "max_bytes", d->opts.max_bytes);
	jw_kstr(&w, "overflow", d->opts.overflow == OVERFLOW_REJECT ? "reject" : "drop-oldest");
	jw_kuint(&w, "ttl_ms", d->opts.ttl_ms);
	jw_kuint(&w, "max_deliveries", d->opts.max_deliveries);
	if (d->opts.single_active_consumer)
		jw_kbool(&w, "single_active_consumer", true);
	if (d->opts.dead_letter)
		jw_kstr(&w, "dead_letter", d->opts.dead_letter);
	if (d->opts.dedup_ms)
		jw_kuint(&w, "dedup_ms", d->opts.dedup_ms);
	jw_obj_end(&w);
	if (d->type == DEST_PUBSUB) {
		jw_key(&w, "children");
		jw_arr_begin(&w);
		for (size_t i = 0; i < d->nchildren; i++)
			jw_str(&w, d->children[i]->name);
		jw_arr_end(&w);
	}
	jw_obj_end(&w);
	meta_key(d->qid, key, sizeof key);
	if (!journal_meta_put(st->j, key, json.buf, json.len))
		log_error_sys("journal: cannot record %s %s", dest_type_name(d->type), d->name);
	sbuf_fini(&json);
}

static void ensure_qid(struct store *st, struct dest *d)
{
	if (d->qid)
		return;
	d->qid = st->next_qid++;
	u64map_put(&st->by_qid, d->qid, d);
	write_meta(st, d);
}

void store_dest_changed(struct dest *d)
{
	struct store *st = store_of(d->vhost->broker);
	if (!st || st->recovering || !wants_meta(d))
		return;
	if (!d->qid)
		ensure_qid(st, d);
	else
		write_meta(st, d);
}

void store_dest_deleted(struct dest *d)
{
	struct store *st = store_of(d->vhost->broker);
	char key[32];
	if (!st || !d->qid)
		return;
	u64map_del(&st->by_qid, d->qid);
	if (!st->recovering) {
		meta_key(d->qid, key, sizeof key);
		journal_meta_del(st->j, key);
	}
	d->qid = 0;
}

uint64_t store_enqueue(struct dest *q, struct msg *m, char *err, size_t errlen)
{
	struct store *st = store_of(q->vhost->broker);
	uint64_t seq = 0;

	ensure_qid(st, q);
	if (m->flags & MSG_JOURNALED) {
		/* Stored already (another child of the same pubsub): one more
		 * queue, the payload once. */
		seq = journal_enqueue(st->j, q->qid, m->id);
		if (!seq && errno == ENOENT)
			m->flags &= ~(uint32_t)MSG_JOURNALED;	/* every earlier copy is gone */
	}
	if (!(m->flags & MSG_JOURNALED)) {
		size_t len;
		void *payload = msg_encode(m, &len);
		seq = journal_put_message(st->j, q->qid, m->id, payload, len);
		free(payload);
		if (seq)
			m->flags |= MSG_JOURNALED;
	}
	if (!seq)
		snprintf(err, errlen, "message not stored in %s: journal write failed: %s", q->name, strerror(errno));
	return seq;
}

void store_remove(struct dest *q, uint64_t id)
{
	struct store *st = store_of(q->vhost->broker);
	if (!st || !q->qid || st->recovering)
		return;
	/* ENOENT (never stored, or stored before the queue turned persistent)
	 * writes nothing: nothing to undo. */
	journal_remove(st->j, q->qid, id);
}

struct msg *store_load(struct dest *q, uint64_t id)
{
	struct store *st = store_of(q->vhost->broker);
	void *payload;
	size_t len;
	struct msg *m;
	if (!st || journal_read_message(st->j, id, &payload, &len) < 0) {
		log_error("%s: message %" PRIu64 " cannot be read back from the journal: dropped", q->name, id);
		return NULL;
	}
	m = msg_decode(id, payload, len);
	free(payload);
	if (!m)
		log_error("%s: message %" PRIu64 " in the journal is unreadable: dropped", q->name, id);
	return m;
}

void store_meta_put(struct broker *b, const char *key, const char *json, size_t len)
{
	struct store *st = store_of(b);
	if (st && !journal_meta_put(st->j, key, json, len))
		log_error_sys("journal: cannot record %s", key);
}

void store_meta_del(struct broker *b, const char *key)
{
	struct store *st = store_of(b);
	if (st)
		journal_meta_del(st->j, key);
}

void store_meta_each(struct broker *b, const char *prefix,
                     void (*fn)(void *arg, const char *key, const char *val, size_t len), void *arg)
{
	struct store *st = store_of(b);
	size_t it = 0, plen = strlen(prefix);
	const char *key;
	void *v;
	while (st && strmap_next(&st->others, &it, &key, &v)) {
		const struct sbuf *val = v;
		if (strncmp(key, prefix, plen) == 0)
			fn(arg, key, sbuf_str(val), val->len);
	}
}

uint64_t store_durable_seq(const struct broker *b)
{
	return b->store ? journal_durable_seq(b->store->j) : 0;
}

bool store_stats(const struct broker *b, struct journal_stats *out)
{
	if (!b->store)
		return false;
	journal_get_stats(b->store->j, out);
	return true;
}

bool store_when_durable(struct broker *b, struct completion *c, uint64_t seq)
{
	struct store *st = store_of(b);
	struct completion *at;
	if (!st || seq <= journal_durable_seq(st->j))
		return false;
	c->seq = seq;
	c->waiting = true;
	/* Sequences are handed out in order, so the tail is almost always
	 * the place; walk back from it to keep the list sorted regardless. */
	for (at = TAILQ_LAST(&st->waiting, completion_list); at && at->seq > seq;
	     at = TAILQ_PREV(at, completion_list, link))
		;
	if (at)
		TAILQ_INSERT_AFTER(&st->waiting, at, c, link);
	else
		TAILQ_INSERT_HEAD(&st->waiting, c, link);
	return true;
}

void store_cancel(struct broker *b, struct completion *c)
{
	struct store *st = store_of(b);
	if (!c->waiting || !st)
		return;
	TAILQ_REMOVE(&st->waiting, c, link);
	c->waiting = false;
}

/* The journal reached `seq` (or failed from first_failed): whoever waits
 * for it is told. */
static void on_durable(void *arg, uint64_t seq, uint64_t first_failed, int err)
{
	struct store *st = arg;
	struct completion *c;
	if (err)
		log_error("journal: records %" PRIu64 " to %" PRIu64 " not stored: %s", first_failed, seq, strerror(err));
	while ((c = TAILQ_FIRST(&st->waiting)) && c->seq <= seq) {
		TAILQ_REMOVE(&st->waiting, c, link);
		c->waiting = false;
		c->done(c, err && c->seq >= first_failed ? err : 0);
	}
}

/* ---- recovery ---- */

static void recover_meta(void *arg, const char *key, const void *val, size_t len)
{
	struct store *st = arg;
	struct broker *b = st->b;
	char err[256];
	struct json *j;
	const struct json *opts, *children;
	const char *vhost, *name, *type, *s;
	struct queue_opts o;
	struct vhost *vh;
	struct dest *d;
	uint64_t qid;
	int t;

	if (strncmp(key, "d:", 2) != 0) {
		/* Another layer's (bridges), or a later version's: kept for
		 * store_meta_each(). */
		struct sbuf *copy = xcalloc(1, sizeof *copy);
		char *k = xstrdup(key);
		sbuf_add(copy, val, len);
		struct sbuf *old = strmap_put(&st->others, k, copy);
		if (old) {
			/* replayed keys are unique; keep the map consistent anyway */
			sbuf_fini(old);
			free(old);
		}
		return;
	}
	if (!parse_u64(key + 2, 1, UINT32_MAX, &qid))
		return;	/* not ours: a later version's record */
	j = json_parse(val, len, err, sizeof err);
	if (!j) {
		log_error("journal: destination record %s is unreadable (%s): skipped", key, err);
		return;
	}
	vhost = json_get_str(j, "vhost");
	name = json_get_str(j, "name");
	type = json_get_str(j, "type");
	t = type ? dest_type_from(type) : -1;
	if (!vhost || !name || t < 0 || t == DEST_COMMAND) {
		log_error("journal: destination record %s is incomplete: skipped", key);
		json_free(j);
		return;
	}
	vh = broker_vhost_ensure(b, vhost);
	queue_opts_copy(&o, &b->cfg.queue_defaults);
	if ((opts = json_get(j, "opts"))) {
		const struct json *p = json_get(opts, "persistent");
		o.persistent = p && p->type == JSON_BOOL && p->b;
		o.max_length = (uint64_t)json_get_num(opts, "max_length", 0);
		o.max_bytes = (uint64_t)json_get_num(opts, "max_bytes", 0);
		s = json_get_str(opts, "overflow");
		o.overflow = s && strcmp(s, "reject") == 0 ? OVERFLOW_REJECT : OVERFLOW_DROP_OLDEST;
		o.ttl_ms = (uint64_t)json_get_num(opts, "ttl_ms", 0);
		o.max_deliveries = (uint32_t)json_get_num(opts, "max_deliveries", 0);
		o.dedup_ms = (uint64_t)json_get_num(opts, "dedup_ms", 0);
		p = json_get(opts, "single_active_consumer");
		o.single_active_consumer = p && p->type == JSON_BOOL && p->b;
		if ((s = json_get_str(opts, "dead_letter"))) {
			free(o.dead_letter);
			o.dead_letter = xstrdup(s);
		}
	}
	d = dest_create(vh, name, (enum dest_type)t, &o, err, sizeof err);
	queue_opts_fini(&o);
	if (!d) {
		log_error("journal: cannot recreate %s %s: %s", type, name, err);
		json_free(j);
		return;
	}
	{
		const struct json *v = json_get(j, "configured");
		d->configured = v && v->type == JSON_BOOL ? v->b : false;
		v = json_get(j, "paused");
		d->paused = v && v->type == JSON_BOOL && v->b;
	}
	if ((s = json_get_str(j, "durable_topic")))
		d->durable_topic = xstrdup(s);
	d->qid = (uint32_t)qid;
	u64map_put(&st->by_qid, d->qid, d);
	if (qid >= st->next_qid)
		st->next_qid = (uint32_t)qid + 1;
	if ((children = json_get(j, "children")) && children->type == JSON_ARR && children->len) {
		struct pending_children *pc;
		st->pending = xrealloc(st->pending, (st->npending + 1) * sizeof *st->pending);
		pc = &st->pending[st->npending++];
		pc->pubsub = d;
		pc->n = 0;
		pc->names = xcalloc(children->len, sizeof *pc->names);
		for (size_t i = 0; i < children->len; i++)
			if (children->items[i]->type == JSON_STR)
				pc->names[pc->n++] = xstrdup(children->items[i]->str);
	}
	json_free(j);
}

static void recover_message(void *arg, uint32_t qid, uint64_t msg_id, const void *payload, size_t len)
{
	struct store *st = arg;
	struct dest *q = u64map_get(&st->by_qid, qid);
	struct msg *m;
	if (!q || q->type != DEST_QUEUE) {
		st->skipped_msgs++;
		return;
	}
	if (queue_over_budget(q)) {
		/* Beyond the queue's memory budget: the id is enough until
		 * its turn comes. */
		queue_push_paged(q, msg_id, len, true);
		st->recovered_msgs++;
		return;
	}
	m = msg_decode(msg_id, payload, len);
	if (!m) {
		log_error("journal: message %" PRIu64 " of %s is unreadable: skipped", msg_id, q->name);
		st->skipped_msgs++;
		return;
	}
	m->flags |= MSG_RECOVERED;	/* it may have been delivered before the restart */
	if (queue_push(q, m, 0, true))
		st->recovered_msgs++;
	msg_unref(m);
}

/* Pubsub children and durable subscriptions point at other destinations:
 * link them once everything exists. */
static void relink(struct store *st)
{
	char err[256];
	size_t it = 0;
	uint64_t qid;
	void *v;
	for (size_t i = 0; i < st->npending; i++) {
		struct pending_children *pc = &st->pending[i];
		for (size_t k = 0; k < pc->n; k++) {
			struct dest *child = dest_get(pc->pubsub->vhost, pc->names[k], err, sizeof err);
			if (!child || pubsub_attach(pc->pubsub, child, err, sizeof err) < 0)
				log_warn("journal: pubsub %s: cannot reattach %s: %s", pc->pubsub->name, pc->names[k], err);
			free(pc->names[k]);
		}
		free(pc->names);
	}
	free(st->pending);
	st->pending = NULL;
	st->npending = 0;
	while (u64map_next(&st->by_qid, &it, &qid, &v)) {
		struct dest *d = v;
		struct dest *topic;
		if (!d->durable_topic)
			continue;
		topic = dest_get(d->vhost, d->durable_topic, err, sizeof err);
		if (topic && topic->type == DEST_TOPIC) {
			topic->children = xrealloc(topic->children, (topic->nchildren + 1) * sizeof *topic->children);
			topic->children[topic->nchildren++] = d;
		}
	}
}

static void log_recovered(struct store *st, const struct journal_recovery *rs)
{
	size_t it = 0;
	uint64_t qid;
	void *v;
	log_info("journal: recovered %" PRIu64 " message%s in %zu destination%s from %" PRIu64 " segment%s in %.3f s",
	         st->recovered_msgs, st->recovered_msgs == 1 ? "" : "s", st->by_qid.count,
	         st->by_qid.count == 1 ? "" : "s", rs->segments, rs->segments == 1 ? "" : "s", rs->seconds);
	while (u64map_next(&st->by_qid, &it, &qid, &v)) {
		struct dest *d = v;
		if (d->type == DEST_QUEUE && queue_depth(d))
			log_info("journal:   %s %s: %zu message%s", d->vhost->name, d->name, queue_depth(d),
			         queue_depth(d) == 1 ? "" : "s");
	}
	if (st->skipped_msgs)
		log_warn("journal: %" PRIu64 " message%s skipped (no destination record)", st->skipped_msgs,
		         st->skipped_msgs == 1 ? "" : "s");
}

int store_open(struct broker *b, char *err, size_t errlen)
{
	struct store *st = xcalloc(1, sizeof *st);
	struct journal_opts jo;
	struct journal_replay cb = { recover_meta, recover_message };
	struct journal_recovery rs;
	char dir[4096];

	snprintf(dir, sizeof dir, "%s/journal", b->cfg.data_dir);
	memset(&jo, 0, sizeof jo);
	jo.dir = dir;
	jo.fsync = b->cfg.fsync;
	jo.fsync_interval_ms = (unsigned)b->cfg.fsync_interval_ms;
	jo.segment_size = b->cfg.segment_size;
	st->b = b;
	TAILQ_INIT(&st->waiting);
	st->next_qid = 1;
	st->j = journal_open(b->base, &jo, on_durable, st, err, errlen);
	if (!st->j) {
		free(st);
		return -1;
	}
	b->store = st;
	st->recovering = true;
	memset(&rs, 0, sizeof rs);
	if (journal_recover(st->j, &cb, st, &rs, err, errlen) < 0) {
		st->recovering = false;
		return -1;
	}
	relink(st);
	st->recovering = false;
	if (rs.records || rs.dropped_bytes || rs.skipped_bytes)
		log_recovered(st, &rs);
	return 0;
}

void store_close(struct broker *b)
{
	struct store *st = b ? b->store : NULL;
	if (!st)
		return;
	journal_close(st->j);
	u64map_fini(&st->by_qid);
	{
		size_t it = 0;
		const char *key;
		void *v;
		while (strmap_next(&st->others, &it, &key, &v)) {
			sbuf_fini(v);
			free(v);
			free((char *)key);
		}
		strmap_fini(&st->others);
	}
	b->store = NULL;
	free(st);
}
