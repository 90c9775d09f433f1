/* events.h: broker events (client connected, destination created, queue
 * paused...) fanned out to whoever listens: control-socket clients that
 * ran `events`, admin STOMP subscribers of /command/events, and the Lua
 * on_event hook. One event is one JSON object. */
#ifndef MQ_EVENTS_H
#define MQ_EVENTS_H

struct broker;

/* Creates the built-in /command/events destination. */
void events_init(struct broker *b);
/* fields: NULL-terminated key, value list. */
void events_publish(struct broker *b, const char *name, const char *const *fields);

#endif
