/* client_int.h: what the client library's files share, and nobody else.
 *
 * session.c owns the connection (state, read loop, heart-beats, close),
 * queue.c destinations and posting, message.c received messages and
 * ACK/NACK, wire.c frame building, tls.c OpenSSL, sync.c the blocking
 * helpers. */
#ifndef MQ_CLIENT_INT_H
#define MQ_CLIENT_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/buffer.h>

#include "common/frame.h"
#include "common/frame_write.h"
#include "common/hmap.h"
#include "mqclient.h"

struct bufferevent;
struct event;
struct ssl_ctx_st;
struct ssl_st;

/* What a receipt we asked for will settle. */
enum pend_kind {
	PEND_POST,		/* a SEND with on_ack */
	PEND_TX,		/* COMMIT or ABORT with on_done */
	PEND_SUBSCRIBE,		/* SUBSCRIBE with on_ready or a sync waiter */
	PEND_UNSUBSCRIBE,	/* mq_configure's boundary: MESSAGEs before it are stale */
	PEND_DISCONNECT,	/* mq_session_stop */
};

struct pending {
	uint64_t id;		/* the receipt header's value */
	enum pend_kind kind;
	mq_ack_cb cb;		/* POST, TX */
	void *arg;
	struct mq_queue *q;	/* SUBSCRIBE, UNSUBSCRIBE: borrowed; NULLed by mq_close */
	struct pending *next_free;
};

/* mq_open_sync and mq_post_sync wait on one of these, on their stack. */
struct sync_wait {
	bool done;
	enum mq_ack_status status;
	char text[256];
};

struct mq_queue {
	struct mq_session *s;		/* borrowed; the session owns the queue */
	struct mq_queue *prev, *next;	/* s->queues, or s->dead_queues once closed */
	char *dest;			/* owned */
	char *id;			/* owned; subscription id, "" for write-only */
	unsigned flags;			/* MQ_READ | MQ_WRITE */
	bool dead;			/* closed; freed by the next sweep */

	/* Current subscription options; strings and headers owned. */
	enum mq_ack_mode ack;
	uint32_t max_msgs;
	uint64_t max_bytes;
	int32_t priority;
	struct mq_header *hdrs;
	size_t nhdrs;
	mq_message_cb on_message;
	mq_ready_cb on_ready;
	void *arg;
	struct sync_wait *waiter;	/* mq_open_sync; borrowed */

	/* Bumped by every re-subscription (configure, reconnect): messages
	 * delivered under an older generation can no longer be confirmed. */
	uint32_t gen;
	/* UNSUBSCRIBE receipts of mq_configure still to come. Until they are
	 * all in, MESSAGE frames on this id belong to the old subscription. */
	unsigned unsub_wait;
	bool stale_deliver;		/* those frames are ack:auto: deliver them */
	/* Ack mode client: deliveries are numbered, and an ACK or NACK of
	 * number N settles every earlier one too. */
	uint64_t delivered;		/* number of the last delivery */
	uint64_t settled_upto;		/* highest number a cumulative ACK/NACK covered */

	/* "SEND\ndestination:<escaped>\n", built for prefix_ver. */
	char *send_prefix;
	size_t send_prefix_len;
	enum stomp_version prefix_ver;
};

struct mq_message {
	struct mq_session *s;		/* NULL once the session is freed */
	struct mq_queue *q;		/* NULL once the queue is swept */
	uint32_t epoch;			/* s->epoch at delivery */
	uint32_t gen;			/* q->gen at delivery */
	uint64_t seq;			/* q->delivered at delivery */
	enum mq_ack_mode ack_mode;
	enum stomp_version ver;
	const char *dest, *sub, *id, *ack;	/* never NULL */
	bool redelivered;
	bool settled;			/* confirmed or rejected */
	struct frame_hdr *hdrs;
	size_t nhdrs;
	const char *body;
	size_t len;
	/* 0 for the borrowed message that on_message sees (it points into
	 * the input buffer); >= 1 for a copy made by mq_message_ref. */
	int refs;
	struct mq_message *copy;	/* borrowed message: its copy, if made */
	struct mq_message *prev, *next;	/* copies: s->live */
};

struct mq_session {
	struct event_base *base;	/* borrowed */
	unsigned serial;		/* for log lines: "session 3" */
	char *addr;			/* "host:port", for messages */

	/* options, strings owned */
	char *host;
	uint16_t port;
	void *dns_base;
	char *vhost, *accept_version, *login, *passcode, *client_id;
	unsigned hb_send_ms, hb_recv_ms;
	unsigned timeout_ms;
	bool tls;
	char *tls_cert_key, *tls_ca_chain, *tls_server_name;
	size_t out_high, out_low;
	mq_event_cb on_event;
	mq_message_cb on_message;
	void *arg;

	enum mq_session_state state;
	struct bufferevent *bev;	/* owned; NULL while IDLE */
	struct bufferevent **dead_bevs;	/* closed inside a callback: freed by the sweep */
	size_t ndead_bevs;
	struct ssl_ctx_st *ssl_ctx;	/* owned; made at the first TLS start */
	uint32_t epoch;			/* bumped at every close */
	bool stop_requested;		/* the close under way is ours */

	/* CONNECTED */
	enum stomp_version version;
	char *server, *broker_session;
	unsigned hb_out_ms, hb_in_ms;

	/* input */
	struct frame frame;
	struct frame_scan scan;
	struct frame_limits lim;
	size_t in_counted;		/* input bytes already added to bytes_in */
	struct mq_message cur;		/* the borrowed message being delivered */
	char last_error[256];		/* the last ERROR's message, for the close text */

	/* timers */
	struct event *timer;		/* connect and stop timeouts */
	struct event *hb_out_ev;	/* every hb_out_ms / 2: an EOL if idle */
	struct event *hb_in_ev;		/* every hb_in_ms: silence check */
	uint64_t hb_out_mark;		/* bytes_out at the last check */
	bool rx_seen;			/* bytes arrived since the last silence check */
	unsigned hb_in_misses;
	bool out_above_high;

	/* receipts */
	uint64_t next_receipt;
	struct u64map pending;		/* receipt id -> struct pending */
	/* Key 0 (never a receipt id) holds this for the session's life: an
	 * emptied u64map frees its table, and a producer with one post in
	 * flight would otherwise allocate and free it once per message. */
	struct pending pend_anchor;
	struct pending *free_pend;	/* recycled records */

	/* destinations */
	struct mq_queue *queues;	/* open ones */
	struct mq_queue *dead_queues;	/* closed, freed by the sweep */
	struct strmap subs;		/* subscription id -> queue (reading, open) */
	unsigned next_sub;

	struct mq_message *live;	/* copies made by mq_message_ref */

	struct mq_stats stats;
	char err[512];

	/* Reentrancy: >0 while library code that may call back is running.
	 * Frees asked for meanwhile are done when it drops back to zero. */
	int busy;
	int running;			/* mq_session_run_until depth */
	bool free_requested;
};

/* session.c */
void client_set_err(struct mq_session *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void client_enter(struct mq_session *s);
bool client_leave(struct mq_session *s);	/* true: the session was freed */
struct evbuffer *client_out(struct mq_session *s);
struct pending *client_pending_new(struct mq_session *s, enum pend_kind kind);
void client_pending_cancel_queue(struct mq_session *s, struct mq_queue *q);
void client_pending_drop(struct mq_session *s, uint64_t id);
void client_check_high_water(struct mq_session *s);

/* queue.c */
struct mq_queue *client_open(struct mq_session *s, const char *destination, unsigned flags,
                             const struct mq_queue_opts *opts, struct sync_wait *waiter);
void client_subscribe(struct mq_queue *q);	/* SUBSCRIBE with the current options */
void client_deliver(struct mq_session *s, struct frame *f);
void client_queue_free(struct mq_queue *q);
void client_queue_done(struct mq_queue *q, enum mq_ack_status st, const char *text);
int client_post(struct mq_queue *q, const void *body, size_t len,
                const struct mq_header *headers, size_t nheaders,
                unsigned flags, mq_ack_cb on_ack, void *arg, uint64_t *receipt);

/* message.c */
void client_message_fill(struct mq_message *m, struct frame_hdr *hdrs, size_t nhdrs);
void client_messages_detach_queue(struct mq_session *s, struct mq_queue *q);
void client_messages_detach_session(struct mq_session *s);

/* wire.c */
bool client_header_ok(struct mq_session *s, const char *what, const char *name,
                      const char *value, enum stomp_version ver);

/* tls.c */
struct ssl_ctx_st *client_tls_ctx(struct mq_session *s);	/* NULL: reason in s->err */
struct ssl_st *client_tls_ssl(struct mq_session *s);
void client_tls_env(struct mq_session *s);
/* True when the bufferevent has an OpenSSL error or a failed verification,
 * described in buf; drains the error queue. */
bool client_tls_describe(struct mq_session *s, struct bufferevent *bev, char *buf, size_t len);

#endif
