/* client_int.h: what the client library's files share, and nobody else.
 *
 * session.c owns the connection (state, read loop, heart-beats, close,
 * reconnection, host health), queue.c destinations and posting,
 * message.c received messages and ACK/NACK, wire.c frame building, tls.c
 * OpenSSL, sync.c the blocking helpers, agent.c a session on a thread of
 * its own. */
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
	PEND_SUBSCRIBE,		/* SUBSCRIBE: see enum pend_why */
	PEND_UNSUBSCRIBE,	/* UNSUBSCRIBE: MESSAGEs before its RECEIPT are stale */
	PEND_DISCONNECT,	/* mq_session_stop */
};

/* Why a SUBSCRIBE or UNSUBSCRIBE was sent: what its RECEIPT reports. */
enum pend_why {
	WHY_OPEN,		/* mq_open, mq_configure, unpause: on_ready / waiter */
	WHY_REOPEN,		/* after a reconnection: QUEUE_REOPENED, STATE_RESTORED */
	WHY_RESUME,		/* host healthy again: QUEUE_RESUMED */
	WHY_CONFIGURE,		/* mq_configure's first half: nothing to report */
	WHY_PAUSE,		/* mq_configure to paused: on_ready */
	WHY_SUSPEND,		/* host unhealthy: QUEUE_SUSPENDED */
	WHY_CLOSE,		/* mq_close_then: the queue's last frame */
};

/* A post kept to be sent again after a reconnection (MQ_REPOST_RESEND):
 * one allocation holding the headers, their strings and the body. */
struct post_copy {
	unsigned flags;
	size_t nhdrs;
	struct mq_header *hdrs;
	const char *post_id;	/* MQ_POST_ID_HEADER's value, or NULL: among hdrs */
	const char *body;
	size_t len;
};

struct pending {
	uint64_t id;		/* the receipt header's value */
	enum pend_kind kind;
	enum pend_why why;	/* SUBSCRIBE, UNSUBSCRIBE */
	bool sent;		/* POST: on some connection (else: waiting to be) */
	mq_ack_cb cb;		/* POST, TX */
	void *arg;
	/* SUBSCRIBE, UNSUBSCRIBE, POST: borrowed; NULLed by mq_close (a
	 * queue closed by mq_close_then stays until its posts are settled). */
	struct mq_queue *q;
	struct post_copy *copy;	/* POST under MQ_REPOST_RESEND: owned */
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
	bool subscribed;		/* a SUBSCRIBE is in force on this connection */
	bool paused;			/* opts.paused: no subscription wanted */
	bool suspend_opt;		/* opts.suspend_on_bad_host_health */
	bool suspended;			/* the host is unhealthy and suspend_opt is set */
	/* The broker refused its SUBSCRIBE with an ERROR: not subscribed again
	 * (mqbroker closes the connection after an ERROR, so every
	 * reconnection would be refused the same way) until configured. */
	bool refused;
	enum mq_ack_mode sub_ack;	/* the ack mode of the last SUBSCRIBE sent */

	/* mq_close_then: the queue waits, out of every list, until its posts
	 * are settled and its UNSUBSCRIBE answered. */
	bool closing;
	unsigned acks_pending;		/* posts with on_ack not yet settled */
	unsigned close_wait;		/* WHY_CLOSE receipt still to come */
	mq_ack_cb on_closed;
	void *closed_arg;
	struct event *close_timer;	/* owned */

	/* Current subscription options; strings and headers owned. */
	enum mq_ack_mode ack;
	uint32_t max_msgs;
	uint64_t max_bytes;
	int32_t priority;
	char *selector;			/* owned; NULL: none */
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

/* One broker of the host list. */
struct host {
	char *name;			/* owned; without brackets */
	uint16_t port;
	char *addr;			/* owned; "name:port" or "[v6]:port" */
};

struct mq_session {
	struct event_base *base;	/* borrowed */
	unsigned serial;		/* for log lines: "session 3" */

	/* The host list, and the one connected to or being tried: host, port
	 * and addr point into hosts[host_i]. */
	struct host *hosts;		/* owned */
	size_t nhosts, host_i;
	char *hosts_err;		/* owned; a malformed entry: start refuses */
	const char *host;
	uint16_t port;
	const char *addr;		/* "host:port", for messages */

	/* options, strings owned */
	void *dns_base;
	char *vhost_opt;		/* NULL: each host's own name */
	const char *vhost;		/* vhost_opt, or the current host's name */
	char *accept_version, *login, *passcode, *client_id;
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

	/* reconnection */
	bool reconnect;
	unsigned rc_min_ms, rc_max_ms;
	enum mq_repost_policy repost;
	bool up;			/* between CONNECTED and DISCONNECTED, losses included */
	bool lost;			/* a connection was lost; the next CONNECTED is RECONNECTED */
	bool final_close;		/* the close under way must not be retried */
	unsigned attempts;		/* failed attempts since the last CONNECTED */
	uint64_t start_deadline_ms;	/* the first connection: give up after this */
	unsigned restoring;		/* WHY_REOPEN receipts still to come */
	uint64_t rng;			/* xorshift state for the jitter */
	char post_nonce[24];		/* MQ_POST_ID_HEADER prefix, per session */
	enum stomp_version last_version;	/* of the last connection, for checks while away */

	/* host health */
	bool healthy;
	unsigned resuming;		/* WHY_RESUME receipts still to come */

	/* CONNECTED */
	enum stomp_version version;
	char *server, *broker_session;
	char *connected_hdrs;		/* owned: every CONNECTED header as name NUL value NUL ... */
	size_t connected_len;
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
	struct mq_queue *closing;	/* mq_close_then, not yet settled */
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
/* Settles one receipt taken out of the map: its callback or event runs. */
void client_settle(struct mq_session *s, struct pending *p, enum mq_ack_status st,
                   enum mq_ack_reason reason, const char *text);
void client_check_high_water(struct mq_session *s);
void client_emit(struct mq_session *s, const struct mq_event *ev);
void client_emit_queue(struct mq_session *s, enum mq_event_type type, struct mq_queue *q, const char *text);
bool client_reconnecting(const struct mq_session *s);	/* lost, and posts wait for the next connection */

/* queue.c */
struct mq_queue *client_open(struct mq_session *s, const char *destination, unsigned flags,
                             const struct mq_queue_opts *opts, struct sync_wait *waiter);
/* SUBSCRIBE with the current options; a receipt when `why` reports
 * something (or on_ready/waiter for WHY_OPEN). */
void client_subscribe(struct mq_queue *q, enum pend_why why);
/* UNSUBSCRIBE with a receipt for `why`; MESSAGEs until it are stale. */
void client_unsubscribe(struct mq_queue *q, enum pend_why why);
bool client_wants_sub(const struct mq_queue *q);
void client_deliver(struct mq_session *s, struct frame *f);
void client_queue_free(struct mq_queue *q);
void client_queue_done(struct mq_queue *q, enum mq_ack_status st, const char *text);
void client_queue_suspend(struct mq_queue *q);
void client_queue_resume(struct mq_queue *q);
/* A queue of mq_close_then: checks whether it is settled; finishes it. */
void client_close_check(struct mq_queue *q);
void client_close_finish(struct mq_queue *q, enum mq_ack_status st, const char *text);
int client_post(struct mq_queue *q, const void *body, size_t len, const char *raw, size_t raw_len,
                const struct mq_header *headers, size_t nheaders,
                unsigned flags, mq_ack_cb on_ack, void *arg, uint64_t *receipt);
/* Sends a kept post again on the new connection. */
void client_repost(struct mq_session *s, struct pending *p);
void client_post_copy_free(struct post_copy *c);

/* message.c */
void client_message_fill(struct mq_message *m, struct frame_hdr *hdrs, size_t nhdrs);
void client_messages_detach_queue(struct mq_session *s, struct mq_queue *q);
void client_messages_detach_session(struct mq_session *s);
/* A kept copy (mq_message_unref frees it) without the body: enough to
 * confirm or reject the message later. */
struct mq_message *client_message_keep(struct mq_message *m);

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
