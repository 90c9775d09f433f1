/* stomp_send.c: SEND, and the transaction frames around it (BEGIN,
 * COMMIT, ABORT). A SEND is a draft for the core's publish entry point;
 * what comes back becomes a RECEIPT (once durable) or an ERROR. */
#include <string.h>

#include "core/broker.h"
#include "core/publish.h"
#include "stomp/conn.h"
#include "stomp/handlers.h"
#include "stomp/txn.h"

void handle_send(struct conn *c, struct frame *f, const char *receipt)
{
	struct broker *b = c->b;
	const char *name = frame_known(f, HDR_DESTINATION);
	const char *txname = frame_known(f, HDR_TRANSACTION);
	struct txn *t = NULL;
	struct publish_result r;
	struct draft d;

	if ((!name || !*name) && !(name = stomp_required(c, f, "destination", receipt)))
		return;
	if (txname && !(t = txn_find(c, txname))) {
		conn_close(c, receipt, "unknown transaction '%s' in SEND frame", txname);
		return;
	}
	if (config_dest_type(&b->cfg, name, NULL) == DEST_COMMAND) {
		if (t) {
			conn_close(c, receipt, "%s: admin commands cannot be part of a transaction", name);
			return;
		}
		handle_command_send(c, f, name, receipt);
		return;
	}
	d = (struct draft){
		.dest = name,
		.hdrs = f->hdrs,
		.nhdrs = f->nhdrs,
		.body = f->body,
		.body_len = f->body_len,
		.expires = frame_known(f, HDR_EXPIRES),
		.ttl = frame_known(f, HDR_EXPIRATION),
		.persistent = frame_known(f, HDR_PERSISTENT),
		.reply_to = frame_known(f, HDR_REPLY_TO),
	};
	if (!d.ttl)
		d.ttl = frame_known(f, HDR_X_MESSAGE_TTL);
	if (t) {
		struct publication pub;
		if (publish_prepare(b, &c->sink.who, &c->sink, &d, &pub, &r) == PUBLISH_OK &&
		    txn_add_send(c, t, &pub, r.err, sizeof r.err) < 0)
			r.status = PUBLISH_REFUSED;
		publication_fini(&pub);
	} else {
		publish(b, &c->sink.who, &c->sink, &d, &r);
	}
	if (r.status == PUBLISH_REFUSED) {
		conn_close(c, receipt, "%s", r.err);
		return;
	}
	conn_receipt(c, receipt, r.seq);
	/* Over the memory high-watermark, or a topic subscriber full: this
	 * producer waits while consumers drain. */
	if (r.slow_down) {
		conn_pause_reading(c, true);
		sink_wait_for_room(&c->sink);
	} else if (broker_memory_blocked(b)) {
		conn_pause_reading(c, true);
	}
}

void handle_begin(struct conn *c, struct frame *f, const char *receipt)
{
	const char *name = stomp_required(c, f, "transaction", receipt);
	char err[320];
	if (!name)
		return;
	if (!txn_begin(c, name, err, sizeof err)) {
		conn_close(c, receipt, "%s in BEGIN frame", err);
		return;
	}
	conn_receipt(c, receipt, 0);
}

void handle_commit_abort(struct conn *c, struct frame *f, const char *receipt)
{
	const char *name = stomp_required(c, f, "transaction", receipt);
	struct txn *t;
	uint64_t seq = 0;
	if (!name)
		return;
	if (!(t = txn_find(c, name))) {
		conn_close(c, receipt, "unknown transaction '%s' in %s frame", name, stomp_cmd(f));
		return;
	}
	if (f->cmd == CMD_COMMIT) {
		if (txn_commit(c, t, receipt, &seq) < 0)
			return;
	} else {
		txn_abort(c, t);
	}
	conn_receipt(c, receipt, seq);
}
