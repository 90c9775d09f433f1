/* conn.h: one client connection.
 *
 * The connection sits on a bufferevent, so the transport underneath
 * (plain TCP, TLS, later WebSocket) is the listener's business: conn_new()
 * takes any bufferevent. The read callback parses frames in place and
 * hands each to the handler table in stomp.c, at most a budget per turn so
 * that no connection starves the others.
 *
 * Closing is one path: conn_close() sends the ERROR when one is due,
 * releases subscriptions (unacknowledged messages go back to their queues)
 * and transactions at once, then lets the output drain and frees the
 * connection from the loop, never inside a callback still using it. */
#ifndef MQ_CONN_H
#define MQ_CONN_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>
#include <sys/socket.h>

#include "common/frame.h"
#include "common/hmap.h"
#include "common/log.h"

struct broker;
struct bufferevent;
struct evbuffer;
struct event;
struct vhost;
struct delivery;
struct msg;

enum conn_state {
	CONN_HANDSHAKE,		/* accepted; only CONNECT or STOMP is allowed */
	CONN_OPEN,		/* CONNECTED sent; every frame allowed */
	CONN_CLOSING,		/* ERROR or DISCONNECT: flushing output, reading nothing */
	CONN_CLOSED,		/* socket gone; waiting in the graveyard to be freed */
};

struct pending_receipt;
TAILQ_HEAD(receipt_list, pending_receipt);

struct conn {
	TAILQ_ENTRY(conn) link;		/* broker->conns or broker->graveyard */
	struct broker *b;
	uint64_t id;
	enum conn_state state;
	struct bufferevent *bev;	/* owned */
	struct vhost *vhost;		/* borrowed; set at CONNECT */
	enum stomp_version version;
	char peer[64];			/* "127.0.0.1:50122" */
	const char *transport;		/* "tcp", "tls": static string */
	char *login;			/* owned; NULL when anonymous */
	char *client_id;		/* owned; CONNECT's client-id */
	bool loopback;
	bool authenticated;		/* passcode checked, or certificate verified */
	bool admin;			/* may use admin commands */
	bool cert_login;		/* login came from a verified certificate */
	bool out_blocked;		/* output over max_output: no more deliveries */
	bool read_paused;		/* memory high-watermark: not reading */

	struct frame_scan scan;		/* progress on the frame being received */
	struct strmap subs;		/* id -> struct sub *, owned */
	struct u64map unacked;		/* message id -> struct delivery * (chain via same_id) */
	struct strmap txns;		/* name -> struct txn *, owned */
	struct receipt_list receipts;	/* receipts waiting for the journal */
	struct strmap temp_queues;	/* name -> struct dest *, owned by the vhost */

	/* heart-beats, in ms; 0 = off */
	uint32_t hb_send_ms;		/* we send at least this often */
	uint32_t hb_recv_ms;		/* we expect something at least this often */
	uint64_t last_read_ms;		/* monotonic */
	uint64_t last_write_ms;
	struct event *hb_timer;		/* owned; NULL without heart-beats */
	struct event *close_timer;	/* owned; bounds CONN_CLOSING */

	uint64_t connected_ms;		/* wall clock */
	uint64_t frames_in, frames_out, messages_in, messages_out, bytes_in, bytes_out;
	char close_reason[160];
};

/* Takes over bev (already connected). Refuses with an ERROR when the
 * broker is at its connection limit. */
struct conn *conn_new(struct broker *b, struct bufferevent *bev,
                      const struct sockaddr *sa, socklen_t salen, const char *transport);
/* Frees a connection from the graveyard. */
void conn_free(struct conn *c);

/* Closes. With a message, an ERROR frame carrying it goes out first
 * (receipt_id ties it to the faulty frame when that asked for a receipt).
 * Safe to call more than once and from any callback. */
void conn_close(struct conn *c, const char *receipt_id, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Closes without an ERROR (DISCONNECT, peer gone). */
void conn_close_quiet(struct conn *c, const char *reason);

struct evbuffer *conn_output(struct conn *c);
/* Called after writing to the output: tracks the flow-control state. */
void conn_wrote(struct conn *c);
/* Deliveries may flow again: dispatch every queue this connection consumes. */
void conn_kick(struct conn *c);
/* Sets heart-beat intervals negotiated at CONNECT. */
void conn_set_heartbeat(struct conn *c, uint32_t send_ms, uint32_t recv_ms);
/* Stops or resumes reading (memory high-watermark). */
void conn_pause_reading(struct conn *c, bool pause);

/* Receipts: sent now, or after the journal makes `durable_seq` durable;
 * in either case in the order the frames arrived. */
void conn_receipt(struct conn *c, const char *receipt_id, uint64_t durable_seq);
/* The journal reached `seq` (err != 0: records from first_failed failed). */
void conn_journal_progress(struct conn *c, uint64_t seq, uint64_t first_failed, int err);
/* Deliveries index */
void conn_track_delivery(struct conn *c, struct delivery *d);
void conn_untrack_delivery(struct conn *c, struct delivery *d);
struct delivery *conn_find_delivery(struct conn *c, const char *id, const char *sub_id);

const char *conn_state_name(enum conn_state s);

/* "conn 17 127.0.0.1:50122 login=alice vhost=/" for log lines */
#define CONN_FMT "conn %llu %s login=%s"
#define CONN_ARGS(c) (unsigned long long)(c)->id, (c)->peer, (c)->login ? (c)->login : "-"

#endif
