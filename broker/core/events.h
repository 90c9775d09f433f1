/* events.h: broker events (client connected, destination created, queue
 * paused...) fanned out to whoever listens: the admin STOMP subscribers of
 * /command/events, the Lua on_event hook, and the taps a face registers
 * (the control socket's `events` streams). One event is one JSON object. */
#ifndef MQ_EVENTS_H
#define MQ_EVENTS_H

#include <stdbool.h>
#include <stddef.h>

struct broker;

/* A face that streams events somewhere of its own. */
struct events_tap {
	/* Anyone there now? Nothing is built for an event nobody hears. */
	bool (*listening)(struct broker *b);
	/* One event as a JSON object, without a newline. */
	void (*send)(struct broker *b, const char *json, size_t len);
};

/* Creates the built-in /command/events destination. */
void events_init(struct broker *b);
void events_fini(struct broker *b);
/* Adds a tap (the control socket does, when it opens). */
void events_add_tap(struct broker *b, const struct events_tap *tap);
/* fields: NULL-terminated key, value list. */
void events_publish(struct broker *b, const char *name, const char *const *fields);

#endif
