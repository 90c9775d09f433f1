/* txn.c: a connection's transactions, held until COMMIT or ABORT. */
#include "stomp/txn.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
	size_t size;			/* OP_SEND: counted in conn->txn_bytes */
};

struct txn {
	char *name;			/* owned; key in conn->txns */
	struct op *ops;			/* owned */
	size_t nops, cap;
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
	if (t->nops == t->cap) {
		t->cap = t->cap ? t->cap * 2 : 8;
		t->ops = xrealloc(t->ops, t->cap * sizeof *t->ops);
	}
	memset(&t->ops[t->nops], 0, sizeof t->ops[0]);
	return &t->ops[t->nops++];
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
	op->size = size;
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

static void destroy(struct conn *c, struct txn *t)
{
	for (size_t i = 0; i < t->nops; i++) {
		c->txn_bytes -= t->ops[i].size;
		msg_unref(t->ops[i].m);
		for (size_t j = 0; j < t->ops[i].ndests; j++)
			free(t->ops[i].dests[j]);
		free(t->ops[i].dests);
		free(t->ops[i].id);
		free(t->ops[i].sub_id);
	}
	free(t->ops);
	free(t->name);
	free(t);
}

static void free_txn(struct conn *c, struct txn *t)
{
	strmap_del(&c->txns, t->name);
	destroy(c, t);
}

int txn_commit(struct conn *c, struct txn *t, const char *receipt, uint64_t *seq)
{
	int rc = 0;
	/* Out of the connection's map first: a refused SEND closes the
	 * connection, which aborts every transaction still in the map. */
	strmap_del(&c->txns, t->name);
	for (size_t i = 0; i < t->nops && c->state == CONN_OPEN; i++) {
		struct op *op = &t->ops[i];
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
	if (c->state >= CONN_CLOSING)
		rc = -1;
	destroy(c, t);
	return rc;
}

void txn_abort(struct conn *c, struct txn *t)
{
	free_txn(c, t);
}

void txn_abort_all(struct conn *c)
{
	size_t it = 0;
	void *v;
	/* free_txn edits the map: restart the walk after each removal. */
	while (c->txns.count) {
		it = 0;
		if (!strmap_next(&c->txns, &it, NULL, &v))
			break;
		free_txn(c, v);
	}
}
