/* ws.h: STOMP over WebSocket, on a listener of its own (ws_port, and
 * wss_port with TLS).
 *
 * An accepted socket first speaks HTTP: the upgrade request is read with
 * a size limit and a time-out (ws_handshake.c parses it), the Origin is
 * checked against ws_origins, and the 101 answer names the STOMP
 * subprotocol. From then on the STOMP connection (conn.c, handed over by
 * the listener's protocol callback) sits on one end
 * of a bufferevent pair carrying the plain STOMP byte stream, exactly as
 * it sits on a TCP socket, and this module relays between the other end
 * and the socket through the WebSocket codec (ws_codec.c, libwslay):
 *
 *   socket <-> ws_codec <-> pair[1] ==== pair[0] <-> conn.c
 *
 * Backpressure crosses the codec both ways: when the socket's output is
 * full, the pair stops moving the broker's output, so conn.c's own output
 * limit (max_output) stops deliveries as it does for TCP; when conn.c
 * stops reading, the socket is not read.
 *
 * Closing: when conn.c is done (after its ERROR, if any) it ends its side
 * of the pair; everything it wrote is sent, then a close frame, then the
 * socket is half-closed and drained until the peer's close frame or EOF.
 * When the peer closes (close frame, EOF, a protocol error or the idle
 * time-out), conn.c sees the end of its stream as it would see a TCP
 * EOF. */
#ifndef MQ_WS_H
#define MQ_WS_H

#include <stdbool.h>
#include <sys/socket.h>

#include "net/listener.h"

struct broker;
struct bufferevent;

/* Takes over an accepted socket on a WebSocket listener: bev (owned from
 * here on) is its plain or TLS bufferevent. Once the upgrade succeeds,
 * accept receives the STOMP end of the pair, with transport "ws" or "wss". */
void ws_accept(struct broker *b, struct bufferevent *bev, const struct sockaddr *sa, socklen_t salen, bool tls,
               listener_accept_fn accept);
/* Frees every WebSocket still handshaking or closing (the broker is
 * stopping; conn.c has freed its ends of the pairs). */
void ws_free_all(void);
/* The lobby starves (net/lobby.h): upgrades in progress go on at the
 * normal priority. */
void ws_admit_handshakes(void);

#endif
