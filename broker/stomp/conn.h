/* conn.h: one STOMP connection, on a bufferevent.
 *
 * The connection sits on a bufferevent, so the transport underneath
 * (plain TCP, TLS, WebSocket) is the listener's business: conn_new()
 * takes any bufferevent. The read callback parses frames in place and
 * hands each to the handler table (stomp.h), at most a budget per turn so
 * that no connection starves the others.
 *
 * To the core a connection is a sink (core/sink.h): it receives deliveries
 * through sink_ops, keeps `full` current from its state and its output
 * buffer, and publishes through core/publish.h under its principal.
 * Receipts, heart-beats, transactions and the wire stay here.
 *
 * Closing is one path: conn_close() sends the ERROR when one is due,
 * detaches the sink (subscriptions end, unacknowledged messages go back to
 * their queues) and aborts transactions at once, then lets the output
 * drain and frees the connection from the loop, never inside a callback
 * still using it. */
#ifndef MQ_CONN_H
#define MQ_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>
#include <sys/socket.h>

#include "common/frame.h"
#include "common/hmap.h"
#include "common/log.h"
#include "core/sink.h"
#include "core/store.h"

struct broker;
struct bufferevent;
struct evbuffer;
struct event;

enum conn_state {
	CONN_HANDSHAKE,		/* accepted; only CONNECT or STOMP is allowed */
	CONN_OPEN,		/* CONNECTED sent; every frame allowed */
	CONN_CLOSING,		/* ERROR or DISCONNECT: flushing output, reading nothing */
	CONN_CLOSED,		/* socket gone; waiting in the graveyard to be freed */
};

struct pending_receipt;
TAILQ_HEAD(receipt_list, pending_receipt);
struct connect_wait;

struct conn {
	struct sink sink;		/* what the core sees: principal, subscriptions, deliveries */
	TAILQ_ENTRY(conn) link;		/* conns->live or conns->graveyard */
	struct broker *b;
	enum conn_state state;
	struct bufferevent *bev;	/* owned */
	enum stomp_version version;
	bool out_blocked;		/* output over max_output: no more deliveries */
	bool read_paused;		/* memory high-watermark: not reading */
	bool plain_socket;		/* bev reads a plain TCP socket itself (no TLS, no WebSocket) */

	struct frame_scan scan;		/* progress on the frame being received */
	struct strmap txns;		/* name -> struct txn *, owned (txn.h) */
	uint64_t txn_bytes;		/* message memory its open transactions hold */
	struct strmap browses;		/* id -> queue browser (stomp_browse.c), owned */
	struct receipt_list receipts;	/* in frame order; some wait for the journal */

	/* heart-beats, in ms; 0 = off */
	uint32_t hb_send_ms;		/* we send at least this often */
	uint32_t hb_recv_ms;		/* we expect something at least this often */
	uint64_t last_read_ms;		/* monotonic */
	uint64_t last_write_ms;
	struct event *hb_timer;		/* owned; NULL without heart-beats */
	struct event *more_ev;		/* owned, lazily: reads on after a poll (FRAMES_PER_TURN) */

	uint64_t frame_started_ms;	/* monotonic: when the frame still arriving began; 0 = none */
	uint64_t out_moved_ms;		/* monotonic: the peer last took output while we were full */
	uint64_t acked_seen;		/* the kernel's count of our bytes acknowledged, last look */
	bool quiet_told;		/* full and still: queues were told to stop waiting */
	uint64_t received_seen;		/* the kernel's count of bytes received, last look */
	size_t out_len_seen;		/* the output's length, last look (no kernel counts) */
	bool counted_handshake;		/* counted in conns->handshakes until CONNECT or close */
	struct connect_wait *connect_wait;	/* owned (stomp_session.c): a CONNECT whose login is
						 * being checked; nothing is read meanwhile */

	uint64_t frames_in, frames_out, bytes_in, bytes_out;
	char close_reason[160];
};

struct txn;

/* Every STOMP connection of one broker, and what they share. */
struct conns {
	struct broker *b;
	TAILQ_HEAD(, conn) live;	/* handshake, open and closing */
	TAILQ_HEAD(, conn) graveyard;	/* closed, to be freed outside their callbacks */
	int nlive;			/* handshake and open: counted against max_connections (-n) */
	int nhandshakes;		/* connections before their CONNECT */
	struct event *reap_ev;		/* frees the graveyard and discarded transactions */
	struct txn *dying;		/* discarded transactions, freed a slice a turn (txn.c) */
	struct frame frame;		/* the one parse scratch: frames are handled one at a time */
	int nout_blocked;		/* connections over max_output (out_blocked) */
	struct strmap handshakes;	/* peer host -> struct host_count, owned: connections from
					 * it still before CONNECT */
};

/* Sets up b->conns. */
void conns_init(struct broker *b);
/* Closes every connection at once and frees them (broker teardown). */
void conns_free(struct broker *b);
/* During shutdown: the loop ends once every connection has gone. */
void conns_check_done(struct broker *b);
/* Connections in handshake or open. */
int conns_count(const struct broker *b);
/* Once a second: frames that take too long, peers that left or went
 * silent while paused, consumers that stopped taking their output. */
void conns_tick(struct broker *b);
/* The lobby starves (net/lobby.h): every connection still waiting for its
 * CONNECT goes on at the normal priority. */
void conns_admit_handshakes(struct broker *b);

/* Takes over bev (already connected). Refuses with an ERROR when the
 * broker is at its connection limit. */
struct conn *conn_new(struct broker *b, struct bufferevent *bev,
                      const struct sockaddr *sa, socklen_t salen, const char *transport);

static inline struct conn *conn_of(struct sink *k)
{
	return (struct conn *)((char *)k - offsetof(struct conn, sink));
}

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
/* Moves to CONN_OPEN (CONNECTED is written). */
void conn_opened(struct conn *c);
/* Sets heart-beat intervals negotiated at CONNECT. */
void conn_set_heartbeat(struct conn *c, uint32_t send_ms, uint32_t recv_ms);
/* Stops or resumes reading (memory high-watermark). */
void conn_pause_reading(struct conn *c, bool pause);

/* Receipts go out in the order the frames arrived: now, or once the
 * journal has made `durable_seq` durable (0: nothing to wait for). */
void conn_receipt(struct conn *c, const char *receipt_id, uint64_t durable_seq);

const char *conn_state_name(enum conn_state s);

/* "conn 17 127.0.0.1:50122 login=alice" for log lines */
#define CONN_FMT "conn %llu %s login=%s"
#define CONN_ARGS(c) (unsigned long long)(c)->sink.id, (c)->sink.who.peer, \
	(c)->sink.who.login ? (c)->sink.who.login : "-"

#endif
