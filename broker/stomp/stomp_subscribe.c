/* stomp_subscribe.c: SUBSCRIBE and UNSUBSCRIBE. A subscription belongs
 * to the connection's sink; the core delivers to it (core/sub.h). */
#include <stdio.h>
#include <string.h>

#include "core/auth.h"
#include "core/broker.h"
#include "core/dest.h"
#include "core/sub.h"
#include "core/tempq.h"
#include "stomp/conn.h"
#include "stomp/handlers.h"

void handle_subscribe(struct conn *c, struct frame *f, const char *receipt)
{
	struct broker *b = c->b;
	const char *name = stomp_required(c, f, "destination", receipt);
	const char *id = frame_known(f, HDR_ID);
	const char *ack = frame_known(f, HDR_ACK);
	struct sub_opts o = { .ack = ACK_AUTO };
	struct sub *s;
	struct dest *d;
	enum dest_type type;
	char err[320], durable_key[600];

	if (!name)
		return;
	if (!id || !*id) {
		if (c->version >= STOMP_1_1) {
			conn_close(c, receipt, "SUBSCRIBE frame has no id header");
			return;
		}
		id = name;	/* 1.0: the destination names the subscription */
	}
	if (ack && *ack) {
		if (strcmp(ack, "auto") == 0)
			o.ack = ACK_AUTO;
		else if (strcmp(ack, "client") == 0)
			o.ack = ACK_CLIENT;
		else if (strcmp(ack, "client-individual") == 0)
			o.ack = ACK_CLIENT_INDIVIDUAL;
		else {
			conn_close(c, receipt, "invalid ack '%s' in SUBSCRIBE frame: expected auto, client or client-individual", ack);
			return;
		}
	}
	if (stomp_sub_opts(c, f, &o, receipt) < 0)
		return;

	if ((s = strmap_get(&c->sink.subs, id))) {
		/* The same id again on the same destination changes flow
		 * control in place (the client library's configure). */
		const char *was = s->shown ? s->shown : s->dest->name;
		if (strcmp(was, name) != 0 || s->opts.ack != o.ack) {
			conn_close(c, receipt, "subscription id '%s' is already in use for %s", id, was);
			return;
		}
		sub_configure(s, &o);
		conn_receipt(c, receipt, 0);
		return;
	}
	if ((int)c->sink.subs.count >= b->cfg.max_subscriptions) {
		conn_close(c, receipt, "too many subscriptions on this connection: %zu (limit %d)",
		           c->sink.subs.count, b->cfg.max_subscriptions);
		return;
	}
	if (!dest_name_open(name, err, sizeof err)) {
		conn_close(c, receipt, "cannot subscribe to %s", err);
		return;
	}
	if (tempq_is_global(name) && !tempq_is_own(&c->sink, name)) {
		conn_close(c, receipt, "cannot subscribe to %s: that temporary queue belongs to another connection", name);
		return;
	}
	d = dest_find(c->sink.who.vhost, name);
	type = d ? d->type : config_dest_type(&b->cfg, name, NULL);
	if (type == DEST_TOPIC && stomp_durable_key(c, f, id, durable_key, sizeof durable_key)) {
		if (!auth_allow(b, &c->sink.who, AUTHZ_SUBSCRIBE, name, err, sizeof err)) {
			conn_close(c, receipt, "%s", err);
			return;
		}
		if (!(d = dest_get(c->sink.who.vhost, name, err, sizeof err)) ||
		    !(d = durable_get(d, durable_key, err, sizeof err))) {
			conn_close(c, receipt, "cannot subscribe durably to '%s': %s", name, err);
			return;
		}
		conn_receipt(c, receipt, 0);
		sub_new(&c->sink, d, id, &o, name);
		return;
	}
	if (tempq_is_local(name) || tempq_is_global(name)) {
		/* our own: a broker-wide name was checked above */
		if (!(d = tempq_get(&c->sink, name, err, sizeof err))) {
			conn_close(c, receipt, "cannot subscribe to '%s': %s", name, err);
			return;
		}
		conn_receipt(c, receipt, 0);
		sub_new(&c->sink, d, id, &o, name);
		return;
	}
	if (type == DEST_PUBSUB) {
		conn_close(c, receipt, "cannot subscribe to pubsub %s: subscribe to one of its child queues", name);
		return;
	}
	if (type == DEST_COMMAND) {
		if (d != b->events_dest) {
			conn_close(c, receipt, "cannot subscribe to %s: of the command destinations only %s can be "
			           "subscribed to", name, b->events_dest->name);
			return;
		}
		if (!auth_allow(b, &c->sink.who, AUTHZ_ADMIN, NULL, err, sizeof err)) {
			conn_close(c, receipt, "%s: %s", name, err);
			return;
		}
		conn_receipt(c, receipt, 0);
		sub_new(&c->sink, d, id, &o, NULL);
		return;
	}
	if (!auth_allow(b, &c->sink.who, AUTHZ_SUBSCRIBE, name, err, sizeof err)) {
		conn_close(c, receipt, "%s", err);
		return;
	}
	if (!d && !(d = dest_get(c->sink.who.vhost, name, err, sizeof err))) {
		conn_close(c, receipt, "cannot subscribe to '%s': %s", name, err);
		return;
	}
	/* Receipt first: messages already waiting follow it. */
	conn_receipt(c, receipt, 0);
	sub_new(&c->sink, d, id, &o, NULL);
}

void handle_unsubscribe(struct conn *c, struct frame *f, const char *receipt)
{
	const char *id = frame_known(f, HDR_ID);
	struct sub *s;
	if ((!id || !*id) && c->version == STOMP_1_0)
		id = frame_known(f, HDR_DESTINATION);
	if (!id || !*id) {
		conn_close(c, receipt, "UNSUBSCRIBE frame has no id header");
		return;
	}
	if (!(s = strmap_get(&c->sink.subs, id))) {
		conn_close(c, receipt, "unknown subscription '%s' in UNSUBSCRIBE frame", id);
		return;
	}
	{
		/* UNSUBSCRIBE carrying the durable headers ends the durable
		 * subscription itself; a plain one only detaches this consumer. */
		struct dest *d = s->dest;
		char key[600], err[256];
		bool end_durable = d->durable_topic && stomp_durable_key(c, f, id, key, sizeof key) &&
		                   durable_find(c->sink.who.vhost, key) == d;
		sub_free(s);
		if (end_durable)
			dest_delete(d, true, err, sizeof err);
	}
	conn_receipt(c, receipt, 0);
}

/* ---- ACK / NACK ---- */

