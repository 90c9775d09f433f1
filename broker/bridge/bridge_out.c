/* bridge_out.c: an outbound bridge, a sink of local destinations that
 * SENDs each message to the remote broker and acknowledges it here only
 * once the remote's RECEIPT says it has it. See bridge.h. */
#include "bridge/bridge_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "common/json.h"
#include "common/log.h"
#include "core/auth.h"
#include "core/broker.h"
#include "core/dest.h"
#include "core/msg.h"
#include "core/publish.h"
#include "core/sub.h"

#define VIA_HEADER "mq-via"
#define POST_ID_HEADER "mq-post-id"

static struct delivery *find_delivery(struct bridge *br, uint64_t msg_id, const char *sub_id)
{
	struct delivery *d;
	for (d = u64map_get(&br->sink.unacked, msg_id); d; d = d->same_id)
		if (strcmp(d->sub->id, sub_id) == 0)
			return d;
	return NULL;
}

/* Settled from the loop: the core makes its delivery record only after
 * deliver() returns. */
static void giveback(struct bridge *br, uint64_t msg_id, const char *sub_id, bool ack)
{
	size_t n = strlen(sub_id) + 1;
	struct giveback *g = xmalloc(sizeof *g + n);
	g->msg_id = msg_id;
	g->ack = ack;
	memcpy(g->sub_id, sub_id, n);
	TAILQ_INSERT_TAIL(&br->givebacks, g, link);
	event_active(br->settle_ev, EV_TIMEOUT, 0);
}

void bridge_out_settle(struct bridge *br)
{
	struct giveback *g;
	while ((g = TAILQ_FIRST(&br->givebacks))) {
		struct delivery *d;
		TAILQ_REMOVE(&br->givebacks, g, link);
		if (!br->stopping && (d = find_delivery(br, g->msg_id, g->sub_id))) {
			if (g->ack)
				sub_ack(d, false);
			else
				sub_nack(d, false);
		}
		free(g);
	}
}

/* Local acknowledgements of what the remote confirmed go in batches: each
 * is a REMOVE record in the journal, and one batch every ACK_BATCH_MS
 * costs one fsync where one by one they would keep the disk syncing
 * (the remote, RabbitMQ most often, needs that disk for its own). Nothing
 * waits for them: a crash before the batch only sends those messages
 * again, with the same mq-post-id. */
#define ACK_BATCH_MS 20

void bridge_out_ack_confirmed(struct bridge *br)
{
	struct giveback *g;
	while ((g = TAILQ_FIRST(&br->confirmed))) {
		struct delivery *d;
		TAILQ_REMOVE(&br->confirmed, g, link);
		if ((d = find_delivery(br, g->msg_id, g->sub_id)))
			sub_ack(d, false);
		free(g);
	}
}

static void confirmed(struct bridge *br, struct fwd *f)
{
	size_t n = strlen(f->sub_id) + 1;
	struct giveback *g = xmalloc(sizeof *g + n);
	g->msg_id = f->msg_id;
	g->ack = true;
	memcpy(g->sub_id, f->sub_id, n);
	if (TAILQ_EMPTY(&br->confirmed)) {
		struct timeval tv = { 0, ACK_BATCH_MS * 1000 };
		evtimer_add(br->ack_ev, &tv);
	}
	TAILQ_INSERT_TAIL(&br->confirmed, g, link);
}

/* A pause after the remote refused a post, or a post could not be made:
 * the message goes back to its queue, and taking it again at once would
 * only fail again. */
static void hold_off(struct bridge *br, const char *why)
{
	uint64_t ms;
	if (br->backoff)
		return;
	br->backoff = true;
	br->failures++;
	ms = bridge_backoff_ms(br);
	log_warn("bridge %s: %s; forwarding again in %" PRIu64 " ms", br->spec.name, why, ms);
	bridge_update_room(br);
	bridge_set_state(br, BRIDGE_FAILING, why);
	bridge_arm_retry(br, ms);
}

static void on_ack(struct mq_session *s, const struct mq_ack *ack, void *arg)
{
	struct fwd *f = arg;
	struct bridge *br = f->br;
	(void)s;
	TAILQ_REMOVE(&br->inflight, f, link);
	br->pending--;
	if (br->stopping) {
		free(f);
		return;
	}
	if (ack->status == MQ_ACK_OK) {
		br->acknowledged++;
		if (br->failures && !br->backoff)
			br->failures = 0;
		/* The remote has it: only now does it leave this broker (and
		 * the journal, for a journaled copy), with the next batch. */
		confirmed(br, f);
		bridge_update_room(br);
	} else {
		char why[600];
		struct delivery *d = find_delivery(br, f->msg_id, f->sub_id);
		br->failed++;
		if (ack->reason == MQ_ACK_REFUSED) {
			snprintf(why, sizeof why, "the remote broker refused a message: %s", ack->text);
			hold_off(br, why);
		} else {
			bridge_update_room(br);
		}
		if (d)
			sub_nack(d, false);	/* back to the head of its queue, to be sent again */
	}
	free(f);
}

static struct mq_queue *remote_queue(struct bridge *br, const char *name)
{
	struct mq_queue *q = strmap_get(&br->remote_queues, name);
	if (q)
		return q;
	q = mq_open(br->s, name, MQ_WRITE, NULL);
	if (q)
		strmap_put(&br->remote_queues, mq_queue_destination(q), q);
	return q;
}

/* The header block without its mq-via line, which goes out rewritten. */
static const char *without_via(struct bridge *br, const char *hdrs, size_t len, size_t *out_len)
{
	const char *p = hdrs, *end = hdrs + len;
	sbuf_reset(&br->scratch);
	while (p < end) {
		const char *eol = memchr(p, '\n', (size_t)(end - p));
		const char *next = eol ? eol + 1 : end;
		if (!((size_t)(next - p) > sizeof VIA_HEADER && memcmp(p, VIA_HEADER ":", sizeof VIA_HEADER) == 0))
			sbuf_add(&br->scratch, p, (size_t)(next - p));
		p = next;
	}
	*out_len = br->scratch.len;
	return sbuf_str(&br->scratch);
}

static void deliver(struct sink *k, struct sub *s, struct msg *m, uint32_t deliveries)
{
	struct bridge *br = bridge_of(k);
	const char *remote = br->spec.to ? br->spec.to : s->shown ? s->shown : s->dest->name;
	char via[1100], post_id[96];
	const char *old_via = msg_header(m, VIA_HEADER, via, sizeof via);
	size_t nextra = 0, hlen, idlen;
	struct mq_header stack[8], *extra = stack;
	const char *hdrs;
	struct mq_queue *q;
	struct fwd *f;
	struct sbuf newvia;
	int rc;

	if (deliveries > 1 || (m->flags & MSG_RECOVERED))
		br->redelivered++;
	/* Never back to a broker it has passed through. */
	if (old_via && *br->remote_id && publish_via_names(old_via, strlen(old_via), br->remote_id)) {
		br->looped++;
		giveback(br, m->id, s->id, true);
		return;
	}
	if (!(q = remote_queue(br, remote))) {
		char why[600];
		snprintf(why, sizeof why, "cannot open %s on the remote broker: %s", remote, mq_session_error(br->s));
		br->failed++;
		giveback(br, m->id, s->id, false);
		hold_off(br, why);
		return;
	}
	hdrs = msg_hdrs_for(m, (enum stomp_version)mq_session_version(br->s), &hlen);
	if (old_via)
		hdrs = without_via(br, hdrs, hlen, &hlen);
	if (br->spec.nsend_headers + 2 > ARRAY_LEN(stack))
		extra = xmalloc((br->spec.nsend_headers + 2) * sizeof *extra);
	sbuf_init(&newvia);
	if (old_via && *old_via)
		sbuf_printf(&newvia, "%s,%s", old_via, br->b->id);
	else
		sbuf_adds(&newvia, br->b->id);
	extra[nextra++] = (struct mq_header){ VIA_HEADER, sbuf_str(&newvia) };
	/* The stable id that lets the receiver drop a repeat: the one the
	 * message came with, else this broker's name for it. */
	if (!msg_header_raw(m, POST_ID_HEADER, sizeof POST_ID_HEADER - 1, &idlen)) {
		snprintf(post_id, sizeof post_id, "%s-%" PRIu64, br->b->id, m->id);
		extra[nextra++] = (struct mq_header){ POST_ID_HEADER, post_id };
	}
	for (size_t i = 0; i < br->spec.nsend_headers; i++)
		extra[nextra++] = (struct mq_header){ br->spec.send_headers[i].name, br->spec.send_headers[i].value };

	f = xmalloc(sizeof *f + strlen(s->id) + 1);
	f->br = br;
	f->msg_id = m->id;
	f->taken_ms = m->timestamp;
	memcpy(f->sub_id, s->id, strlen(s->id) + 1);
	rc = mq_post_raw(q, m->body, m->body_len, extra, nextra, hdrs, hlen, MQ_PERSISTENT, on_ack, f);
	sbuf_fini(&newvia);
	if (extra != stack)
		free(extra);
	if (rc < 0) {
		char why[600];
		snprintf(why, sizeof why, "cannot send to %s: %s", remote, mq_session_error(br->s));
		free(f);
		br->failed++;
		giveback(br, m->id, s->id, false);
		hold_off(br, why);
		return;
	}
	TAILQ_INSERT_TAIL(&br->inflight, f, link);
	br->pending++;
	br->forwarded++;
	if (mq_session_pending_bytes(br->s) > (4u << 20))
		br->out_blocked = true;	/* until DRAINED */
	if (br->pending >= br->spec.window || br->out_blocked)
		k->full = true;
}

/* ---- sources ---- */

static bool source_ok(const struct dest *d)
{
	return (d->type == DEST_QUEUE || d->type == DEST_TOPIC) && !d->owner && !d->durable_topic;
}

static void subscribe(struct bridge *br, struct dest *d)
{
	struct sub_opts o;
	char why[400];
	if (strmap_get(&br->sink.subs, d->name))
		return;
	if (!auth_allow(br->b, &br->sink.who, AUTHZ_SUBSCRIBE, d->name, why, sizeof why)) {
		char text[600];
		snprintf(text, sizeof text, "may not consume from %s: %s", d->name, why);
		log_error("bridge %s: %s", br->spec.name, text);
		bridge_set_state(br, br->state, text);
		return;
	}
	memset(&o, 0, sizeof o);
	o.ack = ACK_CLIENT_INDIVIDUAL;
	/* No window of its own: the bridge's (sink.full) bounds what is in
	 * flight, and confirmed deliveries wait for their batch here. */
	o.max_unacked = 0;
	sub_new(&br->sink, d, d->name, &o, NULL);
	log_info("bridge %s: forwarding %s %s", br->spec.name, dest_type_name(d->type), d->name);
}

void bridge_out_start(struct bridge *br)
{
	char err[400];
	if (br->stopping)
		return;
	if (!bridge_is_pattern(br->spec.from)) {
		struct dest *d = dest_get(br->vh, br->spec.from, err, sizeof err);
		if (!d) {
			char text[600];
			snprintf(text, sizeof text, "cannot forward from %s: %s", br->spec.from, err);
			bridge_set_state(br, br->state, text);
			return;
		}
		if (!source_ok(d)) {
			char text[600];
			snprintf(text, sizeof text, "cannot forward from %s: a %s keeps nothing to take (name a queue or a "
			         "topic)", d->name, dest_type_name(d->type));
			bridge_set_state(br, br->state, text);
			br->subscribed = true;	/* nothing to retry */
			return;
		}
		subscribe(br, d);
		br->subscribed = strmap_get(&br->sink.subs, d->name) != NULL;
		return;
	}
	{
		size_t n;
		struct dest **all = broker_dests(br->b, -1, &n);
		for (size_t i = 0; i < n; i++)
			if (all[i]->vhost == br->vh && source_ok(all[i]) && bridge_pattern_match(br->spec.from, all[i]->name))
				subscribe(br, all[i]);
		free(all);
		br->subscribed = true;
	}
}

void bridge_out_dest_created(struct bridge *br, const char *vhost, const char *name)
{
	struct dest *d;
	if (br->stopping || strcmp(vhost, br->vh->name) != 0 || !bridge_pattern_match(br->spec.from, name))
		return;
	if ((d = dest_find(br->vh, name)) && source_ok(d))
		subscribe(br, d);
}

void bridge_out_connected(struct bridge *br)
{
	bridge_update_room(br);
}

void bridge_out_stop(struct bridge *br)
{
	(void)br;
}

uint64_t bridge_out_backlog(const struct bridge *br)
{
	size_t it = 0;
	void *v;
	uint64_t n = 0;
	while (strmap_next(&br->sink.subs, &it, NULL, &v)) {
		const struct sub *s = v;
		if (s->dest->type == DEST_QUEUE)
			n += queue_depth(s->dest);
	}
	return n;
}

uint64_t bridge_out_oldest_ms(const struct bridge *br)
{
	size_t it = 0;
	void *v;
	uint64_t oldest = 0;
	while (strmap_next(&br->sink.subs, &it, NULL, &v)) {
		const struct sub *s = v;
		uint64_t t = s->dest->type == DEST_QUEUE ? queue_oldest_ms(s->dest) : 0;
		if (t && (!oldest || t < oldest))
			oldest = t;
	}
	return oldest;
}

/* ---- the sink's operations ---- */

static void op_close(struct sink *k, const char *reason)
{
	struct bridge *br = bridge_of(k);
	if (br->b->shutting_down) {
		/* Nothing new while the broker drains: what is in flight
		 * settles in the grace period; the bridge is freed with the
		 * broker, and whatever is still unconfirmed then goes out again
		 * after the restart. */
		br->draining = true;
		k->full = true;
		return;
	}
	/* A destination it consumed from was deleted: its subscription is
	 * gone; a fixed source is taken up again at the next tick. */
	log_warn("bridge %s: %s", br->spec.name, reason);
	if (!bridge_is_pattern(br->spec.from))
		br->subscribed = false;
}

static void op_resume(struct sink *k)
{
	struct bridge *br = bridge_of(k);
	if (br->spec.direction == BRIDGE_IN)
		bridge_in_resume(br);
}

static const char *op_version(const struct sink *k)
{
	const struct bridge *br = bridge_of((struct sink *)k);
	switch (br->s && br->connected ? mq_session_version(br->s) : 0) {
	case 10: return "1.0";
	case 11: return "1.1";
	case 12: return "1.2";
	}
	return "";
}

static const char *op_state(const struct sink *k)
{
	return bridge_state_name(bridge_of((struct sink *)k)->state);
}

static void op_describe(const struct sink *k, struct jw *w)
{
	const struct bridge *br = bridge_of((struct sink *)k);
	jw_kstr(w, "bridge", br->spec.name);
	jw_kstr(w, "direction", bridge_direction_name(br->spec.direction));
	jw_kstr(w, "node", br->connected && br->s ? mq_session_address(br->s) : "");
}

const struct sink_ops bridge_sink_ops = {
	.deliver = deliver,
	.close = op_close,
	.resume = op_resume,
	.version = op_version,
	.state = op_state,
	.describe = op_describe,
};
