/* listener.h: the sockets clients connect to. The transport seam: each
 * listener makes the bufferevent for an accepted socket (plain TCP or TLS)
 * and hands it to the protocol it was opened for (the STOMP connection's
 * conn_new()), which never needs to know which it got. */
#ifndef MQ_LISTENER_H
#define MQ_LISTENER_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

struct broker;
struct bufferevent;

/* Takes an accepted connection: its bufferevent (owned from here on), the
 * peer's address, and the transport's name ("tcp", "tls"). */
typedef void (*listener_accept_fn)(struct broker *b, struct bufferevent *bev, const struct sockaddr *sa,
                                   socklen_t salen, const char *transport);

/* Binds every configured listener. Without -p the first plain listener
 * scans upward from its port for a free one and says which it took. */
int  listeners_open(struct broker *b, listener_accept_fn accept, char *err, size_t errlen);
/* Stops accepting (shutdown); existing connections stay. */
void listeners_close(struct broker *b);
void listeners_free(struct broker *b);
/* Address and port actually bound, for the connection file and logs.
 * port is 0 when there is no such listener. */
const char *listeners_host(struct broker *b);
int listeners_port(struct broker *b, bool tls);

#endif
