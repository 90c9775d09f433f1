/* lobby.c: the low priority of connections still in their handshake. */
#include "net/lobby.h"

#include <stdlib.h>

#include <event2/bufferevent.h>
#include <event2/bufferevent_struct.h>
#include <event2/event.h>

#include "core/broker.h"
#include "common/log.h"
#include "common/util.h"

/* 1 is libevent's default for three (the middle one); 0 is unused. */
enum { PRIO_NORMAL = 1, PRIO_LOBBY = 2, PRIORITIES = 3 };

struct lobby {
	struct event *canary;	/* at PRIO_LOBBY: runs only when nothing else waits */
	bool canary_waiting;	/* activated at the last check and not run since */
	bool starving;		/* the last check found it waiting */
};

static void canary_cb(evutil_socket_t fd, short what, void *arg)
{
	struct lobby *l = arg;
	(void)fd;
	(void)what;
	l->canary_waiting = false;
}

int lobby_init(struct broker *b)
{
	struct lobby *l;
	if (event_base_priority_init(b->base, PRIORITIES) < 0)
		return -1;
	l = xcalloc(1, sizeof *l);
	l->canary = event_new(b->base, -1, 0, canary_cb, l);
	event_priority_set(l->canary, PRIO_LOBBY);
	b->lobby = l;
	return 0;
}

void lobby_fini(struct broker *b)
{
	if (!b->lobby)
		return;
	event_free(b->lobby->canary);
	free(b->lobby);
	b->lobby = NULL;
}

/* An event that is already active cannot change priority: it comes off
 * its queue and goes back in, and the level-triggered poll reports its
 * socket again on the next turn. */
static void set_priority(struct event *ev, int prio)
{
	short was;
	if (!event_initialized(ev) || event_get_priority(ev) == prio)
		return;
	if (event_priority_set(ev, prio) == 0)
		return;
	was = (short)event_pending(ev, EV_READ | EV_WRITE, NULL);
	event_del(ev);
	event_priority_set(ev, prio);
	if (was)
		event_add(ev, NULL);
}

void lobby_enter(struct broker *b, struct bufferevent *bev, int waiting)
{
	if (b->lobby && !b->lobby->starving && waiting <= LOBBY_MAX) {
		set_priority(&bev->ev_read, PRIO_LOBBY);
		set_priority(&bev->ev_write, PRIO_LOBBY);
	}
}

void lobby_leave(struct bufferevent *bev)
{
	set_priority(&bev->ev_read, PRIO_NORMAL);
	set_priority(&bev->ev_write, PRIO_NORMAL);
}

bool lobby_starved(struct broker *b)
{
	struct lobby *l = b->lobby;
	bool starved;
	if (!l)
		return false;
	starved = l->canary_waiting;
	if (starved != l->starving)
		log_info(starved ? "the loop has been busy with connected clients for a second: connections in "
		                     "their handshake now share it equally"
		                   : "connections in their handshake again wait behind connected clients");
	l->starving = starved;
	if (!starved) {
		l->canary_waiting = true;
		event_active(l->canary, 0, 0);
	}
	return starved;
}
