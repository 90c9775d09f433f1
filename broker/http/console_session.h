/* console_session.h: the web console's logged-in sessions.
 *
 * A session is what a successful console login leaves behind: a random
 * id (the cookie's value), who logged in and whether they may act, and a
 * second random value, the token that every state-changing request must
 * carry in a header (the cookie alone proves nothing: a browser sends it
 * wherever the request came from; a page of another site cannot read the
 * token). Sessions end at logout, after `idle_ms` without a request, or
 * `max_age_ms` after the login, whichever comes first.
 *
 * The table is bounded: a login when it is full ends the session that
 * was used least recently. A pure data structure: time is passed in
 * (monotonic milliseconds), nothing here logs. */
#ifndef MQ_CONSOLE_SESSION_H
#define MQ_CONSOLE_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CONSOLE_SESSION_ID_LEN 64	/* hex characters: 32 random bytes */

struct console_session {
	char id[CONSOLE_SESSION_ID_LEN + 1];	/* the cookie's value */
	char token[CONSOLE_SESSION_ID_LEN + 1];	/* the X-CSRF-Token every change must carry */
	char *login;				/* owned */
	bool admin;				/* may run commands that change the broker */
	uint64_t created_ms, used_ms;		/* monotonic */
};

struct console_sessions;

/* max: sessions kept at once; idle_ms, max_age_ms: when one ends. */
struct console_sessions *console_sessions_new(size_t max, uint64_t idle_ms, uint64_t max_age_ms);
void console_sessions_free(struct console_sessions *t);

/* A new session for login; NULL only when no random bytes could be had. */
struct console_session *console_session_create(struct console_sessions *t, const char *login, bool admin,
                                               uint64_t now_ms);
/* The live session with this id, marked as used now; NULL when there is
 * none, or it has expired (and is gone). Borrowed until the next call. */
struct console_session *console_session_find(struct console_sessions *t, const char *id, uint64_t now_ms);
/* The session without touching it: for the streams that check, once a
 * second, that their session is still there. */
struct console_session *console_session_peek(struct console_sessions *t, const char *id, uint64_t now_ms);
/* Logout. False when there was no such session. */
bool console_session_end(struct console_sessions *t, const char *id);
/* Ends every expired session; returns how many. */
size_t console_sessions_expire(struct console_sessions *t, uint64_t now_ms);
size_t console_sessions_count(const struct console_sessions *t);

/* Does token match the session's? In constant time, NULL is no. */
bool console_session_token_ok(const struct console_session *s, const char *token);

#endif
