/* stomp_subscribe.c: SUBSCRIBE and UNSUBSCRIBE. A subscription belongs
 * to the connection's sink; the core delivers to it (core/sub.h). */
#include <stdio.h>
#include <string.h>

#include "core/auth.h"
#include "core/broker.h"
#include "core/dest.h"
#include "core/selector.h"
#include "core/sub.h"
#include "core/tempq.h"
#include "stomp/conn.h"
#include "stomp/handlers.h"

static bool header_true(const struct frame *f, const char *name)
{
	const char *v = frame_get(f, name);
	return v && strcmp(v, "true") == 0;
}

/* A single active consumer asked for by RabbitMQ's or ActiveMQ's header. */
static bool wants_single_active(const struct frame *f)
{
	return header_true(f, "x-single-active-consumer") || header_true(f, "single-active-consumer") ||
	       header_true(f, "activemq.exclusive");
}

/* The rest of SUBSCRIBE, once the options are read: true when o (and its
 * selector) went to a subscription. */
static bool place(struct conn *c, struct frame *f, const char *receipt, const char *name, const char *id,
                  struct sub_opts *o);

void handle_subscribe(struct conn *c, struct frame *f, const char *receipt)
{
	const char *name = stomp_required(c, f, "destination", receipt);
	const char *id = frame_known(f, HDR_ID);
	const char *ack = frame_known(f, HDR_ACK);
	const char *sel = frame_get(f, "selector");
	struct sub_opts o = { .ack = ACK_AUTO };
	char err[320];

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
	if (sel && !selector_blank(sel, strlen(sel)) &&
	    !(o.selector = selector_compile(sel, strlen(sel), err, sizeof err))) {
		conn_close(c, receipt, "invalid selector in SUBSCRIBE frame: %s", err);
		return;
	}
	if (header_true(f, "browser")) {
		stomp_browse(c, f, receipt, name, id, o.selector);
		return;
	}
	if (!place(c, f, receipt, name, id, &o))
		selector_free(o.selector);
}

static bool place(struct conn *c, struct frame *f, const char *receipt, const char *name, const char *id,
                  struct sub_opts *o)
{
	struct broker *b = c->b;
	struct sub *s;
	struct dest *d;
	enum dest_type type;
	char err[320], durable_key[600];

	if ((s = strmap_get(&c->sink.subs, id))) {
		/* The same id again on the same destination changes flow
		 * control in place (the client library's configure). */
		const char *was = s->shown ? s->shown : s->dest->name;
		if (strcmp(was, name) != 0 || s->opts.ack != o->ack) {
			conn_close(c, receipt, "subscription id '%s' is already in use for %s", id, was);
			return false;
		}
		sub_configure(s, o);
		conn_receipt(c, receipt, 0);
		return true;
	}
	if ((int)c->sink.subs.count >= b->cfg.max_subscriptions) {
		conn_close(c, receipt, "too many subscriptions on this connection: %zu (limit %d)",
		           c->sink.subs.count, b->cfg.max_subscriptions);
		return false;
	}
	if (!dest_name_open(name, err, sizeof err)) {
		conn_close(c, receipt, "cannot subscribe to %s", err);
		return false;
	}
	if (tempq_is_global(name) && !tempq_is_own(&c->sink, name)) {
		conn_close(c, receipt, "cannot subscribe to %s: that temporary queue belongs to another connection", name);
		return false;
	}
	d = dest_find(c->sink.who.vhost, name);
	type = d ? d->type : config_dest_type(&b->cfg, name, NULL);
	if (type == DEST_TOPIC && stomp_durable_key(c, f, id, durable_key, sizeof durable_key)) {
		if (!auth_allow(b, &c->sink.who, AUTHZ_SUBSCRIBE, name, err, sizeof err)) {
			conn_close(c, receipt, "%s", err);
			return false;
		}
		if (!(d = dest_get(c->sink.who.vhost, name, err, sizeof err)) ||
		    !(d = durable_get(d, durable_key, err, sizeof err))) {
			conn_close(c, receipt, "cannot subscribe durably to '%s': %s", name, err);
			return false;
		}
		conn_receipt(c, receipt, 0);
		sub_new(&c->sink, d, id, o, name);
		return true;
	}
	if (tempq_is_local(name) || tempq_is_global(name)) {
		/* our own: a broker-wide name was checked above */
		if (!(d = tempq_get(&c->sink, name, err, sizeof err))) {
			conn_close(c, receipt, "cannot subscribe to '%s': %s", name, err);
			return false;
		}
		conn_receipt(c, receipt, 0);
		sub_new(&c->sink, d, id, o, name);
		return true;
	}
	if (type == DEST_PUBSUB) {
		conn_close(c, receipt, "cannot subscribe to pubsub %s: subscribe to one of its child queues", name);
		return false;
	}
	if (type == DEST_COMMAND) {
		if (d != b->events_dest) {
			conn_close(c, receipt, "cannot subscribe to %s: of the command destinations only %s can be "
			           "subscribed to", name, b->events_dest->name);
			return false;
		}
		if (!auth_allow(b, &c->sink.who, AUTHZ_ADMIN, NULL, err, sizeof err)) {
			conn_close(c, receipt, "%s: %s", name, err);
			return false;
		}
		conn_receipt(c, receipt, 0);
		sub_new(&c->sink, d, id, o, NULL);
		return true;
	}
	if (!auth_allow(b, &c->sink.who, AUTHZ_SUBSCRIBE, name, err, sizeof err)) {
		conn_close(c, receipt, "%s", err);
		return false;
	}
	if (type == DEST_QUEUE && wants_single_active(f)) {
		/* As RabbitMQ: the queue is made with the option, or has it. */
		if (!d) {
			struct queue_opts qo;
			queue_opts_copy(&qo, &b->cfg.queue_defaults);
			qo.single_active_consumer = true;
			d = dest_create(c->sink.who.vhost, name, DEST_QUEUE, &qo, err, sizeof err);
			queue_opts_fini(&qo);
			if (d)
				d->configured = false;
		} else if (!d->opts.single_active_consumer) {
			conn_close(c, receipt, "queue %s exists without single-active-consumer: create it with that option "
			           "(mqsh: create queue %s single-active-consumer=true) or subscribe without the header",
			           name, name);
			return false;
		}
	}
	if (!d && !(d = dest_get(c->sink.who.vhost, name, err, sizeof err))) {
		conn_close(c, receipt, "cannot subscribe to '%s': %s", name, err);
		return false;
	}
	/* Receipt first: messages already waiting follow it. */
	conn_receipt(c, receipt, 0);
	sub_new(&c->sink, d, id, o, NULL);
	return true;
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
		if (stomp_browse_end(c, id)) {
			conn_receipt(c, receipt, 0);
			return;
		}
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



