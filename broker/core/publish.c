/* publish.c: the one publish entry point. See publish.h. */
#include "core/publish.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/auth.h"
#include "core/broker.h"
#include "core/dedup.h"
#include "core/dest.h"
#include "core/msg.h"
#include "core/sink.h"
#include "core/tempq.h"
#include "common/log.h"
#include "common/util.h"

static enum publish_status refuse(struct publish_result *r, enum publish_refusal why, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static enum publish_status refuse(struct publish_result *r, enum publish_refusal why, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(r->err, sizeof r->err, fmt, ap);
	va_end(ap);
	r->refusal = why;
	return r->status = PUBLISH_REFUSED;
}

/* route(msg), when the configuration defines one. PUBLISH_OK to go on. */
static enum publish_status apply_route(struct broker *b, const struct principal *who, struct sink *owner,
                                       const struct draft *d, struct route_result *rr,
                                       struct publish_result *r)
{
	struct route_msg rm = {
		.destination = d->dest,
		.hdrs = d->hdrs,
		.nhdrs = d->nhdrs,
		.body = d->body,
		.body_len = d->body_len,
		.login = who->login,
		.vhost = who->vhost->name,
		.conn_id = owner ? owner->id : 0,
	};
	switch (router_route(b->router, &rm, rr)) {
	case ROUTE_DELIVER:
	case ROUTE_REWRITE:
	case ROUTE_FANOUT:
		return PUBLISH_OK;
	case ROUTE_DROP:
		if (owner)
			owner->messages_in++;
		b->stats.messages_in++;
		b->stats.dropped++;
		return r->status = PUBLISH_DROPPED;
	case ROUTE_REJECT:
		b->stats.rejected++;
		return refuse(r, REFUSED_FORBIDDEN, "message to %s rejected: %s", d->dest, rr->error);
	case ROUTE_BUDGET:
	case ROUTE_NOMEM:
	case ROUTE_ERROR:
		/* The detail (file:line) is for the operator's log. */
		log_error("%s login=%s: route() failed for a message to %s: %s", who->peer,
		          who->login ? who->login : "-", d->dest, rr->error);
		b->stats.rejected++;
		return refuse(r, REFUSED_INTERNAL, "message to %s rejected: the routing rule failed (%s)", d->dest,
		              rr->outcome == ROUTE_BUDGET ? "out of instructions"
		              : rr->outcome == ROUTE_NOMEM ? "out of memory" : "script error");
	}
	return refuse(r, REFUSED_INTERNAL, "message to %s rejected: unknown routing outcome", d->dest);
}

/* The first header `name` of a draft, or NULL. */
static const struct frame_hdr *draft_header(const struct draft *d, const char *name, size_t len)
{
	for (unsigned i = 0; i < d->nhdrs; i++)
		if (d->hdrs[i].name_len == len && memcmp(d->hdrs[i].name, name, len) == 0)
			return &d->hdrs[i];
	return NULL;
}

/* Does a comma-separated mq-via list name broker `id`? */
bool publish_via_names(const char *via, size_t via_len, const char *id)
{
	size_t idlen = strlen(id);
	const char *p = via, *end = via + via_len;
	while (p < end) {
		const char *comma = memchr(p, ',', (size_t)(end - p));
		const char *e = comma ? comma : end;
		const char *a = p, *z = e;
		while (a < z && *a == ' ')
			a++;
		while (z > a && z[-1] == ' ')
			z--;
		if ((size_t)(z - a) == idlen && memcmp(a, id, idlen) == 0)
			return true;
		p = e + 1;
	}
	return false;
}

/* Checks a target's name without creating anything; *found is the
 * destination when it exists. */
static bool target_name_ok(struct vhost *vh, const char *name, struct dest **found, char *err, size_t errlen)
{
	if (!dest_name_open(name, err, errlen))
		return false;
	return (*found = dest_find(vh, name)) || dest_name_ok(name, err, errlen);
}

/* Where a message to `name` goes: the owner's temporary queue for a local
 * temporary name, nothing (*dropped) for a topic nobody subscribes to or a
 * temporary queue whose owner has gone; NULL with err for a bad name. */
static struct dest *target(struct vhost *vh, struct sink *owner, const char *name, bool *dropped,
                           char *err, size_t errlen)
{
	struct dest *d;
	*dropped = false;
	if (tempq_is_local(name)) {
		if (owner)
			return tempq_get(owner, name, err, errlen);
		*dropped = true;	/* no owner: no temporary queues to mean */
		return NULL;
	}
	if (tempq_is_global(name)) {
		/* A reply to a requester that has gone: nobody will read it. */
		if (!(d = dest_find(vh, name)))
			*dropped = true;
		return d;
	}
	return dest_for_send(vh, name, dropped, err, errlen);
}

void publication_fini(struct publication *pub)
{
	msg_unref(pub->m);
	pub->m = NULL;
	if (pub->dests != pub->dests_inline)
		free(pub->dests);
	pub->dests = NULL;
	pub->ndests = 0;
}

enum publish_status publish_prepare(struct broker *b, const struct principal *who, struct sink *owner,
                                    const struct draft *d, struct publication *pub, struct publish_result *r)
{
	struct vhost *vh = who->vhost;
	struct route_result rr;
	bool routed = false;
	const char *const *targets = &d->dest;
	size_t ntargets = 1;
	struct msg_edit stack_edits[8], *edits = stack_edits;
	size_t nedits = 0;
	struct msg *m;
	enum publish_status st;

	r->status = PUBLISH_OK;
	r->msg_id = r->seq = 0;
	r->rerouted = r->slow_down = r->duplicate = r->looped = false;
	r->err[0] = 0;
	pub->m = NULL;
	pub->dests = pub->dests_inline;
	pub->ndests = 0;

	struct dest *named = NULL;	/* the named destination, when it exists */
	{
		char why[320];
		if (!target_name_ok(vh, d->dest, &named, why, sizeof why))
			return refuse(r, REFUSED_BAD_REQUEST, "cannot send to '%s': %s", d->dest, why);
		if ((named ? named->type : config_dest_type(&b->cfg, d->dest, NULL)) == DEST_COMMAND)
			return refuse(r, REFUSED_FORBIDDEN, "%s is a command destination", d->dest);
		if (!auth_allow(b, who, AUTHZ_SEND, d->dest, why, sizeof why))
			return refuse(r, REFUSED_FORBIDDEN, "%s", why);
	}
	{
		/* Bridged traffic: a loop, or a repeat the producer's window
		 * holds, goes no further (and costs no message). */
		const struct frame_hdr *h;
		if (b->id[0] && (h = draft_header(d, "mq-via", 6)) && publish_via_names(h->value, h->value_len, b->id)) {
			b->stats.looped++;
			r->looped = true;
			return r->status = PUBLISH_DROPPED;
		}
		if (d->dedup && (h = draft_header(d, DEDUP_HEADER, sizeof DEDUP_HEADER - 1)) &&
		    dedup_seen(d->dedup, h->value, h->value_len, broker_now_ms(b))) {
			b->stats.duplicates++;
			r->duplicate = true;
			return r->status = PUBLISH_DROPPED;
		}
	}
	if (router_has_route(b->router)) {
		routed = true;
		if ((st = apply_route(b, who, owner, d, &rr, r)) != PUBLISH_OK)
			goto out;
		if (rr.ndests) {
			targets = (const char *const *)rr.dests;
			ntargets = rr.ndests;
			r->rerouted = ntargets > 1 || strcmp(targets[0], d->dest) != 0;
		}
		for (size_t i = 0; i < ntargets; i++) {
			char why[320];
			struct dest *found;
			if (!target_name_ok(vh, targets[i], &found, why, sizeof why)) {
				st = refuse(r, REFUSED_BAD_REQUEST, "cannot send to '%s': %s", targets[i], why);
				goto out;
			}
		}
	}

	/* Header edits: the route's, then a local reply-to queue's real name. */
	if (routed && rr.nedits + 1 > ARRAY_LEN(stack_edits))
		edits = xmalloc((rr.nedits + 1) * sizeof *edits);
	for (size_t i = 0; routed && i < rr.nedits; i++)
		edits[nedits++] = (struct msg_edit){ rr.edits[i].name, rr.edits[i].value };
	if (owner && d->reply_to && tempq_is_local(d->reply_to)) {
		char why[320];
		struct dest *tq = tempq_get(owner, d->reply_to, why, sizeof why);
		if (!tq) {
			st = refuse(r, REFUSED_BAD_REQUEST, "cannot create reply queue '%s': %s", d->reply_to, why);
			goto out;
		}
		edits[nedits++] = (struct msg_edit){ "reply-to", tq->name };
	}

	m = pub->m = msg_new(broker_next_msg_id(b), d->dest, d->hdrs, d->nhdrs, d->body, d->body_len, edits, nedits);
	m->timestamp = broker_now_ms(b);
	r->msg_id = m->id;
	{
		struct msg_asks a;	/* assigned, not initialised: buf stays untouched per message */
		a.expires = d->expires;
		a.ttl = d->ttl;
		a.persistent = d->persistent;
		char why[320];
		if (msg_apply_asks(m, &a, routed && rr.nedits, why, sizeof why) < 0) {
			st = refuse(r, REFUSED_BAD_REQUEST, "%s", why);
			goto out;
		}
		if (a.persistent && strcasecmp(a.persistent, "true") == 0)
			m->flags |= MSG_PERSISTENT;
	}

	/* Only now, with the message known good, are destinations made. */
	if (ntargets > ARRAY_LEN(pub->dests_inline))
		pub->dests = xmalloc(ntargets * sizeof *pub->dests);
	for (size_t i = 0; i < ntargets; i++) {
		bool dropped;
		char why[320];
		/* the destination as named, found above: not looked up twice */
		struct dest *t = targets == &d->dest && named ? named
		                 : target(vh, owner, targets[i], &dropped, why, sizeof why);
		if (t) {
			pub->dests[pub->ndests++] = t;
		} else if (dropped) {
			b->stats.dropped++;
		} else {
			st = refuse(r, REFUSED_BAD_REQUEST, "cannot send to '%s': %s", targets[i], why);
			goto out;
		}
	}
	if (owner)
		owner->messages_in++;
	b->stats.messages_in++;
	st = PUBLISH_OK;
out:
	if (edits != stack_edits)
		free(edits);
	if (routed)
		route_result_fini(&rr);
	if (st != PUBLISH_OK)
		publication_fini(pub);
	return st;
}

/* Every copy or none: each target is asked first whether it would refuse
 * (a full queue with overflow=reject). A journal write failing part way
 * can still leave some copies delivered. */
static enum publish_status deliver_all(struct broker *b, struct msg *m, struct dest **dests, size_t n,
                                       struct publish_result *r)
{
	bool taken = false;
	char why[320];
	r->slow_down = false;
	b->pressed = false;
	for (size_t i = 0; n > 1 && i < n; i++) {
		if (dest_would_refuse(dests[i], m, why, sizeof why)) {
			b->stats.rejected++;
			return refuse(r, REFUSED_UNAVAILABLE, "%s", why);
		}
	}
	for (size_t i = 0; i < n; i++) {
		struct dedup *w = dests[i]->type == DEST_QUEUE && dests[i]->opts.dedup_ms ? dedup_for_dest(b, dests[i]) : NULL;
		const char *id = NULL;
		size_t idlen = 0;
		if (w && (id = msg_header_raw(m, DEDUP_HEADER, sizeof DEDUP_HEADER - 1, &idlen)) &&
		    dedup_seen(w, id, idlen, broker_now_ms(b))) {
			b->stats.duplicates++;
			dests[i]->dropped++;
			r->duplicate = true;
			continue;
		}
		switch (dest_send(dests[i], m, &r->seq, why, sizeof why)) {
		case SEND_OK:
			taken = true;
			if (id)
				dedup_add(w, id, idlen, broker_now_ms(b));
			break;
		case SEND_DROPPED:
			break;
		case SEND_REJECTED:
			b->stats.rejected++;
			return refuse(r, REFUSED_UNAVAILABLE, "%s", why);
		}
	}
	r->slow_down = b->pressed;
	return r->status = taken ? PUBLISH_OK : PUBLISH_DROPPED;
}

enum publish_status publish_commit(struct broker *b, struct publication *pub, struct publish_result *r)
{
	return deliver_all(b, pub->m, pub->dests, pub->ndests, r);
}

enum publish_status publish(struct broker *b, const struct principal *who, struct sink *owner,
                            const struct draft *d, struct publish_result *r)
{
	struct publication pub;
	if (publish_prepare(b, who, owner, d, &pub, r) == PUBLISH_OK && publish_commit(b, &pub, r) == PUBLISH_OK &&
	    d->dedup) {
		const struct frame_hdr *h = draft_header(d, DEDUP_HEADER, sizeof DEDUP_HEADER - 1);
		if (h)
			dedup_add(d->dedup, h->value, h->value_len, broker_now_ms(b));
	}
	publication_fini(&pub);
	return r->status;
}

enum publish_status publish_names(struct broker *b, struct vhost *vh, struct msg *m,
                                  char *const *names, size_t n, struct publish_result *r)
{
	struct dest *stack[8], **dests = n > ARRAY_LEN(stack) ? xmalloc(n * sizeof *dests) : stack;
	size_t nd = 0;
	enum publish_status st;
	r->status = PUBLISH_OK;
	r->msg_id = m->id;
	r->seq = 0;
	r->rerouted = r->slow_down = r->duplicate = r->looped = false;
	r->err[0] = 0;
	for (size_t i = 0; i < n; i++) {
		bool absent;
		char why[320];
		/* Names were resolved at SEND time (temporary queues mapped):
		 * only a destination deleted since is missing. */
		if ((dests[nd] = dest_for_send(vh, names[i], &absent, why, sizeof why))) {
			nd++;
		} else if (absent) {
			b->stats.dropped++;
		} else {
			st = refuse(r, REFUSED_BAD_REQUEST, "cannot send to '%s': %s", names[i], why);
			goto out;
		}
	}
	st = deliver_all(b, m, dests, nd, r);
out:
	if (dests != stack)
		free(dests);
	return st;
}
