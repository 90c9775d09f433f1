/* console_stream.h: the web console's live view, as Server-Sent Events.
 *
 * Once a second, while any console is open, one snapshot of the broker is
 * built (the replies of the read-only admin commands `stats`, `list
 * destinations`, `list durables`, `list clients` and `list bridges`,
 * exactly as mqsh would get them) and the same bytes go to every open
 * stream: 50 viewers cost one snapshot, not 50. Broker events go out as
 * they happen. While anyone is logged in, the last minutes of figures are
 * kept, broker-wide and per destination, for the charts.
 *
 * A viewer that does not read its stream skips snapshots (the newest one
 * is what matters) instead of growing the broker's memory. */
#ifndef MQ_CONSOLE_STREAM_H
#define MQ_CONSOLE_STREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/util.h"

struct broker;
struct console_sessions;
struct evhttp_connection;
struct evhttp_request;

#define CONSOLE_HISTORY 300		/* samples kept: five minutes, one a second */
#define CONSOLE_HISTORY_DESTS 1000	/* destinations with a history, at most */

struct console_streams;

struct console_stream_stats {
	size_t streams;			/* open now */
	uint64_t snapshots;		/* built since start */
	uint64_t snapshot_bytes;	/* the size of the last one */
	uint64_t skipped;		/* snapshots not sent to a viewer whose output was full */
};

/* sessions: borrowed; an open stream keeps its session alive, and ends
 * when the session does. */
struct console_streams *console_streams_new(struct broker *b, struct console_sessions *sessions);
/* Forgets the streams without touching their requests: evhttp_free()
 * frees those. */
void console_streams_free(struct console_streams *cs);

/* Answers req with an event stream for session sid: the history, the
 * latest snapshot, then a snapshot a second and every event. */
void console_stream_open(struct console_streams *cs, struct evhttp_request *req, const char *sid);
/* An HTTP connection closed: the stream on it, if any, goes. */
void console_streams_conn_closed(struct console_streams *cs, struct evhttp_connection *hc);
/* The session ended (logout): its streams say why and end. */
void console_streams_session_ended(struct console_streams *cs, const char *sid, const char *reason);

/* The events tap: anyone listening, and one event (a JSON object). */
bool console_streams_listening(const struct console_streams *cs);
void console_streams_event(struct console_streams *cs, const char *json, size_t len);

/* One destination's figures over the last minutes, as JSON; false when
 * none were recorded for it. */
bool console_history_json(struct console_streams *cs, const char *vhost, const char *name, struct sbuf *out);

void console_streams_get_stats(const struct console_streams *cs, struct console_stream_stats *out);

#endif
