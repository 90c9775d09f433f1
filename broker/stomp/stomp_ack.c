/* stomp_ack.c: ACK and NACK, of one delivery or (client mode) of every
 * earlier one on the subscription, now or at a transaction's COMMIT. */
#include <string.h>

#include "core/broker.h"
#include "core/sub.h"
#include "stomp/conn.h"
#include "stomp/handlers.h"
#include "stomp/txn.h"

void handle_ack(struct conn *c, struct frame *f, const char *receipt)
{
	bool nack = f->cmd == CMD_NACK;
	/* 1.2 names the ack header's value id, 1.0 and 1.1 use message-id;
	 * since ack equals message-id here, either works in every version. */
	const char *id = frame_known(f, HDR_ID);
	const char *sub_id = frame_known(f, HDR_SUBSCRIPTION);
	const char *txname = frame_known(f, HDR_TRANSACTION);
	struct delivery *d;
	struct txn *t = NULL;
	char err[320];

	if (!id || !*id)
		id = frame_known(f, HDR_MESSAGE_ID);
	if (!id || !*id) {
		conn_close(c, receipt, "%s frame has no id header", stomp_cmd(f));
		return;
	}
	if (sub_id && !strmap_get(&c->sink.subs, sub_id)) {
		conn_close(c, receipt, "unknown subscription '%s' in %s frame", sub_id, stomp_cmd(f));
		return;
	}
	if (txname && !(t = txn_find(c, txname))) {
		if (!c->b->cfg.lenient_transactions) {
			conn_close(c, receipt, "unknown transaction '%s' in %s frame", txname, stomp_cmd(f));
			return;
		}
		/* stomp.py as DIRAC uses it puts the subscription id in the
		 * transaction header of every ACK: do the ACK, count it. */
		c->b->stats.lenient_acks++;
	}
	d = sink_find_delivery(&c->sink, id, sub_id);
	if (!d) {
		conn_close(c, receipt, "unknown message id '%s' in %s frame: not delivered on this connection, "
		           "already acknowledged, or from an auto-ack subscription", id, stomp_cmd(f));
		return;
	}
	if (t) {
		if (txn_add_ack(c, t, id, sub_id, nack, err, sizeof err) < 0) {
			conn_close(c, receipt, "%s", err);
			return;
		}
	} else if (nack) {
		sub_nack(d, d->sub->opts.ack == ACK_CLIENT);
	} else {
		sub_ack(d, d->sub->opts.ack == ACK_CLIENT);
	}
	conn_receipt(c, receipt, 0);
}

/* ---- transactions ---- */

