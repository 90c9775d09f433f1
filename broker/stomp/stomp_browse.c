/* stomp_browse.c: SUBSCRIBE with browser:true (ActiveMQ's queue browser).
 *
 * The subscriber receives a snapshot of what the queue holds at that
 * moment, in queue order, filtered by its selector, without consuming or
 * locking anything, then an end marker: a MESSAGE with `browser:end`
 * and an empty body. The snapshot holds references (or, for messages paged
 * out to the journal, their ids) and is written as the connection's output
 * drains, so a large queue is browsed in bounded memory of output. The
 * browse id stays in use until UNSUBSCRIBE or the end of the connection. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "common/frame_write.h"
#include "common/util.h"
#include "core/auth.h"
#include "core/broker.h"
#include "core/dest.h"
#include "core/msg.h"
#include "core/selector.h"
#include "core/store.h"
#include "core/sub.h"
#include "stomp/conn.h"
#include "stomp/handlers.h"
#include "stomp/stomp.h"

struct snap {
	struct msg *m;			/* ref held; NULL when paged out */
	uint64_t id;			/* paged out: read back when its turn comes */
	uint32_t deliveries;
};

struct browse {
	struct sub view;		/* what the MESSAGE writer needs: id, name, no ack */
	struct snap *snaps;		/* owned */
	size_t n, pos;
	bool done;			/* the end marker went out */
};

static void snap_item(struct browse *br, const struct qitem *it, size_t *cap)
{
	if (br->n == *cap) {
		*cap = *cap ? *cap * 2 : 64;
		br->snaps = xrealloc(br->snaps, *cap * sizeof *br->snaps);
	}
	br->snaps[br->n++] = (struct snap){
		.m = it->paged ? NULL : msg_ref(it->m), .id = qitem_id(it), .deliveries = it->deliveries,
	};
}

static void free_snaps(struct browse *br)
{
	for (size_t i = br->pos; i < br->n; i++)
		msg_unref(br->snaps[i].m);
	free(br->snaps);
	br->snaps = NULL;
	br->n = br->pos = 0;
}

static void end_marker(struct conn *c, struct browse *br)
{
	struct evbuffer *out = conn_output(c);
	frame_put_cmd(out, CMD_MESSAGE);
	frame_put_header(out, c->version, "subscription", br->view.id);
	frame_put_header(out, c->version, "destination", br->view.shown);
	frame_put_header(out, c->version, "message-id", "0");
	frame_put_header(out, c->version, "browser", "end");
	frame_put_body(out, NULL, 0, true);
	c->frames_out++;
	c->b->stats.frames_out++;
	conn_wrote(c);
}

/* Writes what fits before the output is full. */
static void pump(struct conn *c, struct browse *br)
{
	struct dest *q = NULL;
	bool looked_up = false;
	while (br->pos < br->n && !c->out_blocked && c->state == CONN_OPEN) {
		struct snap *sn = &br->snaps[br->pos++];
		struct msg *m = sn->m;
		if (!m) {
			if (!looked_up) {
				q = dest_find(c->sink.who.vhost, br->view.shown);
				looked_up = true;
			}
			/* gone since the snapshot, or no longer readable: skipped */
			if (!q || q->type != DEST_QUEUE || !(m = store_load(q, sn->id)))
				continue;
		}
		if (sub_accepts(&br->view, m, sn->deliveries + 1))
			stomp_write_message(c, &br->view, m, sn->deliveries + 1);
		msg_unref(m);
	}
	if (br->pos == br->n && !br->done && c->state == CONN_OPEN) {
		free_snaps(br);
		end_marker(c, br);
		br->done = true;
	}
}

void stomp_browse(struct conn *c, struct frame *f, const char *receipt, const char *name, const char *id,
                  struct selector *sel)
{
	struct broker *b = c->b;
	struct dest *q = dest_find(c->sink.who.vhost, name);
	enum dest_type type = q ? q->type : config_dest_type(&b->cfg, name, NULL);
	struct browse *br;
	size_t cap = 0;
	char err[320];

	(void)f;
	if (strmap_get(&c->sink.subs, id) || strmap_get(&c->browses, id)) {
		conn_close(c, receipt, "subscription id '%s' is already in use", id);
		goto fail;
	}
	if (type != DEST_QUEUE) {
		conn_close(c, receipt, "cannot browse %s: browser:true is for queues", name);
		goto fail;
	}
	if (!auth_allow(b, &c->sink.who, AUTHZ_SUBSCRIBE, name, err, sizeof err)) {
		conn_close(c, receipt, "%s", err);
		goto fail;
	}
	br = xcalloc(1, sizeof *br);
	br->view.id = xstrdup(id);
	br->view.shown = xstrdup(name);
	br->view.opts.ack = ACK_AUTO;
	br->view.opts.selector = sel;
	if (q) {
		/* what was set aside is older than the ring */
		for (size_t i = 0; i < q->nparked; i++)
			snap_item(br, &q->parked[i], &cap);
		for (size_t i = 0; i < q->count; i++) {
			const struct qitem *it = &q->items[(q->head + i) & (q->cap - 1)];
			if (!it->taken)
				snap_item(br, it, &cap);
		}
	}
	strmap_put(&c->browses, br->view.id, br);
	conn_receipt(c, receipt, 0);
	pump(c, br);
	return;
fail:
	selector_free(sel);
}

static void free_browse(struct browse *br)
{
	free_snaps(br);
	selector_free(br->view.opts.selector);
	free(br->view.head);
	free(br->view.shown);
	free(br->view.id);
	free(br);
}

bool stomp_browse_end(struct conn *c, const char *id)
{
	struct browse *br = strmap_del(&c->browses, id);
	if (!br)
		return false;
	free_browse(br);
	return true;
}

void stomp_browse_pump(struct conn *c)
{
	size_t it = 0;
	void *v;
	while (c->browses.count && strmap_next(&c->browses, &it, NULL, &v)) {
		struct browse *br = v;
		if (!br->done)
			pump(c, br);
	}
}

void stomp_browse_free_all(struct conn *c)
{
	size_t it = 0;
	void *v;
	while (strmap_next(&c->browses, &it, NULL, &v))
		free_browse(v);
	strmap_fini(&c->browses);
}
