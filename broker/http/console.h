/* console.h: the web console on the HTTP port (docs/console.md).
 *
 *   GET  /                      the page (console/index.html, built in)
 *   GET  /console/FILE          its script, style sheet and icon
 *   POST /console/api/login     {"login": ..., "password": ...}: a session cookie
 *   GET  /console/api/session   who is logged in, and the CSRF token
 *   POST /console/api/logout
 *   POST /console/api/command   {"args": ["purge", "/queue/x"]}: one admin command
 *   GET  /console/api/stream    Server-Sent Events: snapshots, events
 *   GET  /console/api/history?name=DEST[&vhost=V]   a destination's last minutes
 *
 * Every POST must come from the console's own page (its Origin is this
 * server's) and, once logged in, carry the session's token in an
 * X-CSRF-Token header. Viewing needs a user who may view
 * (auth_may_view); commands that change anything need an admin. */
#ifndef MQ_CONSOLE_H
#define MQ_CONSOLE_H

#include <stdbool.h>
#include <stddef.h>

struct broker;
struct console;
struct evhttp_connection;
struct evhttp_request;

struct console *console_new(struct broker *b);
/* Before evhttp_free(), which frees the requests still open. */
void console_free(struct console *c);

/* Is path (decoded) the console's? */
bool console_owns(const char *path);
void console_request(struct console *c, struct evhttp_request *req, const char *path);
/* An HTTP connection closed (its close callback). */
void console_conn_closed(struct console *c, struct evhttp_connection *hc);

/* Broker events, for the live event stream. */
bool console_events_listening(const struct console *c);
void console_event(struct console *c, const char *json, size_t len);

#endif
