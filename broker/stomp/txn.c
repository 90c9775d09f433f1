/* txn.c: a connection's transactions, held until COMMIT or ABORT. */
#include "stomp/txn.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "common/log.h"
#include "common/util.h"
#include "core/broker.h"
#include "core/dest.h"
#include "core/msg.h"
#include "core/publish.h"
#include "core/sub.h"
#include "stomp/conn.h"

enum op_kind { OP_SEND, OP_ACK, OP_NACK };

struct op {
	enum op_kind kind;
	struct msg *m;			/* OP_SEND: ref held */
	char **dests;			/* OP_SEND: owned names, resolved at COMMIT
					 * (a destination may be deleted meanwhile) */
	size_t ndests;
	char *id;			/* OP_ACK/OP_NACK: owned */
	char *sub_id;			/* owned, may be NULL */
};

/* Operations in blocks, not one array: a million-frame transaction would
 * otherwise be copied whole each time the array doubled (tens of ms in
 * one loop turn). */
#define OPS_PER_BLOCK 512

struct op_block {
	struct op_block *next;
	size_t n;
	struct op ops[OPS_PER_BLOCK];
};

struct txn {
	char *name;			/* owned; key in conn->txns */
	struct op_block *first, *last;	/* owned */
	size_t nops;
	uint64_t bytes;			/* its SENDs' share of conn->txn_bytes */
	struct txn *next_dying;		/* on conns->dying, once discarded */
};

struct txn *txn_begin(struct conn *c, const char *name, char *err, size_t errlen)
{
	struct txn *t;
	if (strmap_get(&c->txns, name)) {
		snprintf(err, errlen, "transaction '%s' already begun", name);
		return NULL;
	}
	if ((int)c->txns.count >= c->b->cfg.max_transactions) {
		snprintf(err, errlen, "too many open transactions: %zu (limit %d)", c->txns.count,
		         c->b->cfg.max_transactions);
		return NULL;
	}
	t = xcalloc(1, sizeof *t);
	t->name = xstrdup(name);
	strmap_put(&c->txns, t->name, t);
	return t;
}

struct txn *txn_find(struct conn *c, const char *name)
{
	return strmap_get(&c->txns, name);
}

static struct op *add_op(struct conn *c, struct txn *t, char *err, size_t errlen)
{
	if (t->nops >= c->b->cfg.max_transaction_frames) {
		snprintf(err, errlen, "transaction '%s' holds too many frames: %zu (limit %llu)", t->name,
		         t->nops, (unsigned long long)c->b->cfg.max_transaction_frames);
		return NULL;
	}
	if (!t->last || t->last->n == OPS_PER_BLOCK) {
		struct op_block *blk = xmalloc(sizeof *blk);
		blk->next = NULL;
		blk->n = 0;
		if (t->last)
			t->last->next = blk;
		else
			t->first = blk;
		t->last = blk;
	}
	t->nops++;
	memset(&t->last->ops[t->last->n], 0, sizeof t->last->ops[0]);
	return &t->last->ops[t->last->n++];
}

/* What one connection's open transactions may hold: the option, and at
 * most a quarter of the memory high-watermark, so that uncommitted work
 * cannot pause every producer of the broker. */
static uint64_t bytes_limit(const struct broker *b)
{
	uint64_t quarter = b->mem_high / 4;
	return quarter && quarter < b->cfg.max_transaction_bytes ? quarter : b->cfg.max_transaction_bytes;
}

int txn_add_send(struct conn *c, struct txn *t, const struct publication *pub, char *err, size_t errlen)
{
	struct op *op;
	uint64_t size = msg_size(pub->m), limit = bytes_limit(c->b);
	if (c->txn_bytes + size > limit) {
		snprintf(err, errlen, "transaction '%s': open transactions would hold %llu bytes of messages (limit %llu, "
		         "option max_transaction_bytes, at most a quarter of memory_high_watermark)", t->name,
		         (unsigned long long)(c->txn_bytes + size), (unsigned long long)limit);
		return -1;
	}
	if (!(op = add_op(c, t, err, errlen)))
		return -1;
	c->txn_bytes += size;
	t->bytes += size;
	op->kind = OP_SEND;
	op->m = msg_ref(pub->m);
	op->dests = xmalloc((pub->ndests ? pub->ndests : 1) * sizeof *op->dests);
	for (size_t i = 0; i < pub->ndests; i++)
		op->dests[i] = xstrdup(pub->dests[i]->name);
	op->ndests = pub->ndests;
	return 0;
}

int txn_add_ack(struct conn *c, struct txn *t, const char *id, const char *sub_id, int nack, char *err, size_t errlen)
{
	struct op *op = add_op(c, t, err, errlen);
	if (!op)
		return -1;
	op->kind = nack ? OP_NACK : OP_ACK;
	op->id = xstrdup(id);
	op->sub_id = sub_id ? xstrdup(sub_id) : NULL;
	return 0;
}

static void free_op(struct op *op)
{
	msg_unref(op->m);
	for (size_t j = 0; j < op->ndests; j++)
		free(op->dests[j]);
	free(op->dests);
	free(op->id);
	free(op->sub_id);
}

/* Frees up to `budget` of t's operations, and t itself once they are all
 * gone (then true). */
static bool free_some(struct txn *t, size_t *budget)
{
	struct op_block *blk;
	while ((blk = t->first) && *budget) {
		for (; blk->n && *budget; (*budget)--)
			free_op(&blk->ops[--blk->n]);
		if (blk->n)
			return false;
		t->first = blk->next;
		free(blk);
	}
	if (t->first)
		return false;
	free(t->name);
	free(t);
	return true;
}

static void destroy(struct conn *c, struct txn *t)
{
	size_t all = SIZE_MAX;
	c->txn_bytes -= t->bytes;
	free_some(t, &all);
}

/* Discarding a big transaction frees a million messages: a slice a loop
 * turn (txn_reap), so that the other clients do not wait for all of it. */
static void discard(struct conn *c, struct txn *t)
{
	struct conns *cs = c->b->conns;
	strmap_del(&c->txns, t->name);
	c->txn_bytes -= t->bytes;
	t->next_dying = cs->dying;
	cs->dying = t;
	event_active(cs->reap_ev, 0, 0);
}

bool txn_reap(struct conns *cs, size_t budget)
{
	struct txn *t;
	while ((t = cs->dying) && budget) {
		struct txn *next = t->next_dying;
		if (!free_some(t, &budget))
			break;
		cs->dying = next;
	}
	return cs->dying != NULL;
}

int txn_commit(struct conn *c, struct txn *t, const char *receipt, uint64_t *seq)
{
	int rc = 0;
	/* Out of the connection's map first: a refused SEND closes the
	 * connection, which aborts every transaction still in the map. */
	strmap_del(&c->txns, t->name);
	for (struct op_block *blk = t->first; blk && rc == 0; blk = blk->next) {
		for (size_t i = 0; i < blk->n && c->state == CONN_OPEN; i++) {
			struct op *op = &blk->ops[i];
			if (op->kind == OP_SEND) {
				struct publish_result r;
				if (publish_names(c->b, c->sink.who.vhost, op->m, op->dests, op->ndests, &r) == PUBLISH_REFUSED) {
					conn_close(c, receipt, "%s", r.err);
					rc = -1;
					break;
				}
				if (r.seq > *seq)
					*seq = r.seq;
			} else {
				/* Checked when the ACK arrived; it may have gone since
				 * (the subscription closed): nothing left to do then. */
				struct delivery *d = sink_find_delivery(&c->sink, op->id, op->sub_id);
				if (!d)
					continue;
				if (op->kind == OP_ACK)
					sub_ack(d, d->sub->opts.ack == ACK_CLIENT);
				else
					sub_nack(d, d->sub->opts.ack == ACK_CLIENT);
			}
		}
	}
	if (c->state >= CONN_CLOSING)
		rc = -1;
	destroy(c, t);
	return rc;
}

void txn_abort(struct conn *c, struct txn *t)
{
	discard(c, t);
}

void txn_abort_all(struct conn *c)
{
	size_t it = 0;
	void *v;
	/* discard edits the map: restart the walk after each removal. */
	while (c->txns.count) {
		it = 0;
		if (!strmap_next(&c->txns, &it, NULL, &v))
			break;
		discard(c, v);
	}
}
