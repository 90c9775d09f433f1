/* events.c */
#include "core/events.h"

#include <string.h>

#include "core/broker.h"
#include "admin/control.h"
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

void events_publish(struct broker *b, const char *name, const char *const *fields)
{
	struct sbuf line;
	struct jw w;
	bool stomp_listeners = b->events_dest && b->events_dest->nsubs;

	router_event(b->router, name, fields);
	if (!stomp_listeners && !control_has_listeners(b))
		return;	/* nobody listens: build nothing */
	sbuf_init(&line);
	jw_init(&w, &line);
	jw_obj_begin(&w);
	jw_kstr(&w, "event", name);
	jw_kuint(&w, "time_ms", wall_ms());
	for (size_t i = 0; fields && fields[i] && fields[i + 1]; i += 2)
		jw_kstr(&w, fields[i], fields[i + 1]);
	jw_obj_end(&w);
	control_broadcast(b, line.buf, line.len);
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
