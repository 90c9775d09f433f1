/* events.c: one event built once, to every listener. */
#include "core/events.h"

#include <stdlib.h>
#include <string.h>

#include "core/broker.h"
#include "core/dest.h"
#include "common/json.h"
#include "core/msg.h"
#include "rules/router.h"
#include "common/util.h"

#define EVENTS_DEST "/command/events"

void events_init(struct broker *b)
{
	b->events_dest = dest_create_builtin(b->default_vhost, EVENTS_DEST, DEST_COMMAND);
}

void events_fini(struct broker *b)
{
	free(b->taps);
	b->taps = NULL;
	b->ntaps = 0;
}

void events_add_tap(struct broker *b, const struct events_tap *tap)
{
	b->taps = xrealloc(b->taps, (b->ntaps + 1) * sizeof *b->taps);
	b->taps[b->ntaps++] = *tap;
}

static bool taps_listening(struct broker *b)
{
	for (size_t i = 0; i < b->ntaps; i++)
		if (b->taps[i].listening(b))
			return true;
	return false;
}

void events_publish(struct broker *b, const char *name, const char *const *fields)
{
	struct sbuf line;
	struct jw w;
	bool stomp_listeners = b->events_dest && b->events_dest->nsubs;

	router_event(b->router, name, fields);
	if (!stomp_listeners && !taps_listening(b))
		return;	/* nobody listens: build nothing */
	sbuf_init(&line);
	jw_init(&w, &line);
	jw_obj_begin(&w);
	jw_kstr(&w, "event", name);
	jw_kuint(&w, "time_ms", wall_ms());
	for (size_t i = 0; fields && fields[i] && fields[i + 1]; i += 2)
		jw_kstr(&w, fields[i], fields[i + 1]);
	jw_obj_end(&w);
	for (size_t i = 0; i < b->ntaps; i++)
		if (b->taps[i].listening(b))
			b->taps[i].send(b, line.buf, line.len);
	if (stomp_listeners) {
		char hdr[128];
		size_t n = frame_escape(hdr, "event:", 6, STOMP_1_0);
		size_t nlen = strlen(name);
		if (n + 2 * nlen + 2 < sizeof hdr) {
			n += frame_escape(hdr + n, name, nlen, STOMP_1_2);
			hdr[n++] = '\n';
			memcpy(hdr + n, "content-type:application/json\n", 30);
			n += 30;
		} else {
			n = 0;
		}
		struct msg *m = msg_from_parts(broker_next_msg_id(b), EVENTS_DEST, hdr, n, line.buf, line.len);
		m->timestamp = wall_ms();
		topic_publish(b->events_dest, m);
		msg_unref(m);
	}
	sbuf_fini(&line);
}
