/* lobby.h: connections that have not yet shown who they are wait behind
 * those that have.
 *
 * The loop has three priorities. Everything runs at the middle one (the
 * default), except the sockets of connections that have not completed
 * their handshake (STOMP CONNECT, the WebSocket upgrade): those run at the
 * lowest, so that a burst of half-open sockets, slowloris bytes or mass
 * closes waits behind the clients that are already connected instead of
 * lengthening every loop turn they take part in. The per-turn callback
 * limit (-m) keeps each slice of lobby work short.
 *
 * Strict priorities can starve: under a load that keeps the middle queue
 * busy on every turn, nobody would get in. lobby_starved(), asked once a
 * second, says when a low-priority canary has not run since the last time;
 * the caller then admits every waiting handshake at the normal priority
 * (and new ones start there) until the canary runs again. */
#ifndef MQ_LOBBY_H
#define MQ_LOBBY_H

#include <stdbool.h>

struct broker;
struct bufferevent;

/* On a new loop, before any event is added. */
int  lobby_init(struct broker *b);
void lobby_fini(struct broker *b);
/* A new connection's socket: at the low priority, unless the lobby is
 * starving or already holds LOBBY_MAX connections (`waiting`: those in
 * their handshake now, this one included). Priorities help while the
 * low-priority backlog is small. Thousands of sockets ready at once (a
 * flood of half-open connections closing together) would stay unserved
 * behind the connected clients, and the level-triggered poll reports
 * every one of them again on each turn: a poll of 4,096 costs 1.3 ms. Then
 * serving them in turn with everyone else is cheaper for everyone. */
#define LOBBY_MAX 1024
void lobby_enter(struct broker *b, struct bufferevent *bev, int waiting);
/* Its handshake is done (or the lobby starves): normal priority. Safe on
 * bufferevents without a socket of their own (pairs). */
void lobby_leave(struct bufferevent *bev);
/* Once a second: true when low-priority work has not run for a second. */
bool lobby_starved(struct broker *b);

#endif
