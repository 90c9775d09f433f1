/* mqclient.h: the mqbroker STOMP client library.
 *
 * A non-blocking STOMP 1.0/1.1/1.2 client on libevent, in the spirit of
 * BlazingMQ's session API. One struct mq_session is one connection to a
 * broker (one of a list of hosts, remade by itself when it drops if asked
 * to); destinations are opened on it for reading (a subscription),
 * writing, or both; posts can carry an acknowledgement callback that fires
 * when the broker's RECEIPT (or an ERROR naming the receipt) arrives;
 * messages arrive in an on_message callback and are confirmed (ACK) or
 * rejected (NACK).
 *
 * Threads and the event loop
 *   Everything runs on the event_base given to mq_session_new(): the
 *   library never creates threads and never takes locks. Call every
 *   function from the thread that runs that base. Callbacks are invoked
 *   from the loop (or, where a function says so, from inside that call)
 *   and may call mq_confirm(), mq_reject(), mq_post(), mq_open(),
 *   mq_configure(), mq_close(), mq_session_stop(), mq_session_abort() and
 *   even mq_session_free(): a session freed inside one of its own
 *   callbacks is released once that callback returns. The blocking helpers
 *   (mq_session_run_until() and the *_sync functions) run the loop
 *   themselves and must not be called from a callback.
 *
 * Errors
 *   Functions return 0 (or a pointer) on success and -1 (or NULL) on
 *   failure; the reason, one line naming the thing and the value, is then
 *   in mq_session_error(). Asynchronous failures arrive as events or as
 *   acknowledgement callbacks with status MQ_ACK_FAILED.
 *
 * Guarantees
 *   Every post made with an on_ack callback gets exactly one callback:
 *   OK on the broker's RECEIPT, FAILED on an ERROR frame carrying its
 *   receipt-id, or FAILED when the connection closes first (stop, abort,
 *   free, broker close, heart-beat timeout). Nothing is left hanging.
 *   Every mq_session_start() that returns 0 is followed by exactly one
 *   CONNECTED or CONNECT_FAILED event, and every CONNECTED by exactly one
 *   DISCONNECTED event (except after mq_session_free(), which reports no
 *   events). With reconnection on, the connection losses in between are
 *   CONNECTION_LOST events, each followed by RECONNECTED and then
 *   STATE_RESTORED once the connection is back (see "Reconnection").
 *
 * Reconnection (mq_session_opts.reconnect)
 *   A connection that drops without mq_session_stop() is made again, to
 *   the next host of the list in turn, after a delay that doubles from
 *   reconnect_min_ms to reconnect_max_ms, each delay drawn at random
 *   between half of it and all of it (so that a hundred clients of a
 *   restarted broker do not come back in the same millisecond). Once
 *   CONNECTED arrives again, every queue open for reading is subscribed
 *   again with its options (QUEUE_REOPENED or QUEUE_REOPEN_FAILED for
 *   each), and the posts still waiting for their acknowledgement are sent
 *   again (MQ_REPOST_RESEND: each carries the header MQ_POST_ID_HEADER with
 *   the same value every time it is sent, so that a consumer can recognise
 *   a repeat) or failed with MQ_ACK_CONNECTION (MQ_REPOST_FAIL); then
 *   STATE_RESTORED. Messages received on the lost connection can no longer
 *   be confirmed: mq_confirm() returns MQ_ERR_STALE, and the broker
 *   delivers them again.
 *
 * Host health (mq_session_set_host_health)
 *   As in BlazingMQ: while the application (or a monitor it plugs in) says
 *   the host is unhealthy, queues opened with suspend_on_bad_host_health
 *   receive nothing (their subscription is withdrawn) and refuse posts
 *   (MQ_ERR_SUSPENDED); HOST_UNHEALTHY, then QUEUE_SUSPENDED for each, and
 *   on recovery QUEUE_RESUMED for each, then HOST_HEALTH_RESTORED.
 *
 * Environment (TLS, when mq_session_opts.tls_env is set)
 *   MQ_CLIENT_CERT_KEY     client certificate and private key, one PEM file
 *   MQ_CLIENT_CA_CHAIN     CA certificates that must have signed the broker's
 *   MQ_CLIENT_SERVER_NAME  name for SNI and the certificate name check
 *   Each falls back to its PDG_ twin (PDG_MQ_CLIENT_CERT_KEY, ...), so
 *   jobs written for Houdini PDG's mqserver work unchanged. */
#ifndef MQ_CLIENT_H
#define MQ_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

struct event_base;
struct mq_session;	/* one connection to a broker; opaque */
struct mq_queue;	/* one destination opened on a session; opaque */
struct mq_message;	/* one received MESSAGE; opaque */

/* A header as a name/value pair of NUL-terminated strings (borrowed). */
struct mq_header {
	const char *name;
	const char *value;
};

/* ---- session ---------------------------------------------------------- */

enum mq_session_state {
	MQ_SESSION_IDLE,	/* not started, or closed; mq_session_start() may be called */
	MQ_SESSION_CONNECTING,	/* TCP connect and TLS handshake under way */
	MQ_SESSION_LOGIN,	/* CONNECT sent, waiting for CONNECTED */
	MQ_SESSION_CONNECTED,	/* CONNECTED received; posts and subscriptions flow */
	MQ_SESSION_CLOSING,	/* DISCONNECT sent, waiting for its RECEIPT */
	MQ_SESSION_RECONNECTING,	/* the connection dropped; the next attempt waits
					   for its back-off delay (reconnect only) */
};

enum mq_event_type {
	MQ_EVENT_CONNECTED,	/* the broker answered CONNECT with CONNECTED */
	MQ_EVENT_CONNECT_FAILED,	/* no connection: refused, TLS, timeout, ERROR to CONNECT */
	MQ_EVENT_DISCONNECTED,	/* a connection that was up is gone (stop, abort, loss) */
	MQ_EVENT_ERROR_FRAME,	/* the broker sent an ERROR frame while connected */
	MQ_EVENT_DRAINED,	/* the output buffer fell to out_low_water after
				   mq_session_pending_bytes() passed out_high_water */
	MQ_EVENT_CONNECTION_LOST,	/* reconnect: the connection dropped; reconnecting */
	MQ_EVENT_RECONNECTED,	/* reconnect: CONNECTED again; restoring queues and posts */
	MQ_EVENT_STATE_RESTORED,	/* reconnect: every queue reopened (or failed), posts re-sent */
	MQ_EVENT_QUEUE_REOPENED,	/* reconnect: `queue` is subscribed again */
	MQ_EVENT_QUEUE_REOPEN_FAILED,	/* reconnect: the broker refused to subscribe `queue` again;
					   it stays unsubscribed until mq_configure() */
	MQ_EVENT_HOST_UNHEALTHY,	/* mq_session_set_host_health(s, false) */
	MQ_EVENT_HOST_HEALTH_RESTORED,	/* healthy again, after a RESUMED (or RESUME_FAILED) per queue */
	MQ_EVENT_QUEUE_SUSPENDED,	/* `queue` receives nothing and refuses posts */
	MQ_EVENT_QUEUE_RESUMED,	/* `queue` works again */
	MQ_EVENT_QUEUE_RESUME_FAILED,	/* the broker refused to subscribe `queue` again */
};

struct mq_event {
	enum mq_event_type type;
	/* One line for a person, never NULL: the reason for CONNECT_FAILED and
	 * DISCONNECTED ("cannot connect to 127.0.0.1:61613: Connection
	 * refused"), the ERROR frame's message header for ERROR_FRAME, the
	 * negotiated version and server for CONNECTED. */
	const char *text;
	/* ERROR_FRAME: the frame's body (may be empty, not NUL-safe: use
	 * detail_len); NULL for the other events. */
	const char *detail;
	size_t detail_len;
	/* ERROR_FRAME: the frame's receipt-id header, or NULL. */
	const char *receipt_id;
	/* DISCONNECTED and CONNECT_FAILED: true when this program asked for
	 * it (mq_session_stop(), mq_session_abort()), false when the broker
	 * or the network did. */
	bool requested;
	/* The QUEUE_* events: the queue (borrowed); NULL for the others. */
	struct mq_queue *queue;
};

/* Called for every session event. `ev` and its strings are borrowed:
 * valid during the call only. */
typedef void (*mq_event_cb)(struct mq_session *s, const struct mq_event *ev, void *arg);

/* Called for each MESSAGE. `m` is borrowed: valid during the call only,
 * unless the callback keeps a reference with mq_message_ref(). */
typedef void (*mq_message_cb)(struct mq_session *s, struct mq_message *m, void *arg);

enum mq_ack_status {
	MQ_ACK_OK,	/* the broker sent the RECEIPT: it has the message */
	MQ_ACK_FAILED,	/* an ERROR named the receipt, or the connection closed
			   first: the broker may or may not have it */
};

/* Why an acknowledgement is FAILED, for programs that act on it. */
enum mq_ack_reason {
	MQ_ACK_NONE,		/* OK */
	MQ_ACK_REFUSED,		/* an ERROR frame named the receipt: the broker refused it */
	MQ_ACK_CONNECTION,	/* the connection closed after the frame was sent and
				   before its RECEIPT: the broker may or may not have it */
	MQ_ACK_CANCELED,	/* never answered on a live connection: the queue was
				   closed (mq_close_then) or the session stopped or
				   freed while the post waited to be sent again */
};

struct mq_ack {
	enum mq_ack_status status;
	const char *text;	/* borrowed; "" for OK, the reason for FAILED */
	uint64_t receipt;	/* the receipt id this library sent */
	enum mq_ack_reason reason;
};

/* What calls that can fail in more than one way return (0 or negative,
 * so that `< 0` still means failure); the text is in mq_session_error(). */
enum mq_result {
	MQ_OK = 0,
	MQ_ERR = -1,		/* anything else: a bad argument, the wrong state */
	MQ_ERR_STALE = -2,	/* the message arrived on an earlier connection or
				   before its queue was reconfigured, paused or
				   suspended: the broker has taken it back and will
				   deliver it again */
	MQ_ERR_SUSPENDED = -3,	/* the queue is suspended: the host is unhealthy */
};

/* What happens, on reconnection, to posts still waiting for their
 * acknowledgement (mq_session_opts.repost). */
enum mq_repost_policy {
	MQ_REPOST_RESEND,	/* send them again, with the same MQ_POST_ID_HEADER;
				   posts made while reconnecting wait and go too */
	MQ_REPOST_FAIL,		/* fail them with MQ_ACK_CONNECTION */
};

/* The header that carries a post's stable id under MQ_REPOST_RESEND:
 * "<session nonce>-<receipt>", the same on every copy sent. A post that
 * already has this header keeps its own value. The broker need not
 * understand it; it reaches consumers like any header. */
#define MQ_POST_ID_HEADER "mq-post-id"

/* Called once per acknowledged operation (post, transaction end, queue
 * ready). `ack` is borrowed. */
typedef void (*mq_ack_cb)(struct mq_session *s, const struct mq_ack *ack, void *arg);

struct mq_session_opts {
	/* Where: host name or address (default "127.0.0.1"), port (default
	 * 61613, or 61614 when TLS is on). Names are resolved with
	 * getaddrinfo, which blocks, unless dns_base (a struct evdns_base *,
	 * borrowed) is given; numeric addresses never block. */
	const char *host;
	uint16_t port;
	void *dns_base;
	/* Or several brokers, tried in turn: nhosts entries "host",
	 * "host:port", "[v6addr]" or "[v6addr]:port" (port defaults to the
	 * one above). When given, `host` is ignored. A malformed entry makes
	 * mq_session_start() fail, naming it. */
	const char *const *hosts;
	size_t nhosts;

	/* CONNECT headers. vhost is sent as `host` (default: the name of the
	 * host being connected to).
	 * accept_version is sent as is (default "1.0,1.1,1.2"); the version in
	 * CONNECTED must be one of those offered. login, passcode and
	 * client_id are sent when not NULL. None may contain a newline. */
	const char *vhost;
	const char *accept_version;
	const char *login;
	const char *passcode;
	const char *client_id;

	/* heart-beat: the interval at which this client can send EOLs, and
	 * the one at which it wants to hear from the broker, in ms; 0 = none.
	 * The intervals in use follow the specification's negotiation. */
	unsigned heartbeat_send_ms;
	unsigned heartbeat_recv_ms;

	/* Time allowed from mq_session_start() to CONNECTED, and from
	 * mq_session_stop() to the DISCONNECT RECEIPT. Default 10000 ms.
	 * With reconnect, the first connection is tried (host after host,
	 * with back-off) until this time has passed; each later attempt is
	 * allowed this long. */
	unsigned connect_timeout_ms;

	/* Reconnection (see "Reconnection" above). Delays default to 100 ms
	 * and 10000 ms. An ERROR in answer to the first CONNECT (a wrong
	 * passcode) is final: no retry. */
	bool reconnect;
	unsigned reconnect_min_ms;
	unsigned reconnect_max_ms;
	enum mq_repost_policy repost;

	/* TLS. With `tls` set, the connection is STOMP over TLS 1.2 or newer.
	 * tls_cert_key: PEM file with this client's certificate (chain) and
	 * private key, presented when the broker asks. tls_ca_chain: PEM file
	 * of CA certificates; when given, the broker's certificate must verify
	 * against it and match tls_server_name (default: host), which is also
	 * sent as SNI unless it is an IP address. Without tls_ca_chain the
	 * broker is NOT authenticated (traffic is still encrypted).
	 * tls_env: fill every field left NULL from MQ_CLIENT_CERT_KEY,
	 * MQ_CLIENT_CA_CHAIN and MQ_CLIENT_SERVER_NAME (or their PDG_ twins),
	 * and turn TLS on when any of them is set. */
	bool tls;
	bool tls_env;
	const char *tls_cert_key;
	const char *tls_ca_chain;
	const char *tls_server_name;

	/* Largest frame accepted from the broker (default 16 MiB); a larger
	 * one closes the connection with a DISCONNECTED naming the size. */
	size_t max_frame;

	/* Write-side backpressure for producers that post faster than the
	 * network drains: once mq_session_pending_bytes() has exceeded
	 * out_high_water (default 4 MiB), a DRAINED event fires when it falls
	 * to out_low_water (default 256 KiB). Posting never blocks or fails
	 * for this reason: whether to wait is the caller's choice. */
	size_t out_high_water;
	size_t out_low_water;

	mq_event_cb on_event;		/* may be NULL */
	mq_message_cb on_message;	/* for queues without their own; may be NULL */
	void *arg;			/* passed to both */
};

/* Creates a session bound to `base` (borrowed: it must outlive the
 * session; the session never runs the loop itself except in the blocking
 * helpers below, so the base may be one the application or another
 * library already runs). Every string in opts is copied; opts may be freed on return.
 * Nothing touches the network until mq_session_start(). Returns NULL only
 * when base or opts is NULL. */
struct mq_session *mq_session_new(struct event_base *base, const struct mq_session_opts *opts);

/* Begins connecting: TCP connect, the TLS handshake when configured, then
 * CONNECT. Returns at once; the outcome is a CONNECTED or CONNECT_FAILED
 * event. Returns -1 only when nothing could be started (already started,
 * a TLS file that cannot be loaded, a header value with a newline), with
 * the reason in mq_session_error(). A session that is IDLE again after a
 * DISCONNECTED or CONNECT_FAILED may be started again: queues opened for
 * reading are subscribed again once CONNECTED arrives. */
int mq_session_start(struct mq_session *s);

/* Graceful close: sends DISCONNECT with a receipt and closes when the
 * RECEIPT arrives (or after connect_timeout_ms), then reports
 * DISCONNECTED with requested = true. Outstanding acknowledgements that
 * the broker answers before its RECEIPT are reported normally; the rest
 * fail at the close. Before CONNECTED it closes at once with
 * CONNECT_FAILED; while RECONNECTING, at once with DISCONNECTED. Does
 * nothing on an IDLE or CLOSING session. */
void mq_session_stop(struct mq_session *s);

/* Abrupt close, as if the process had crashed: no DISCONNECT, unwritten
 * output is discarded, the socket is closed. Before it returns, every
 * outstanding acknowledgement fails and DISCONNECTED (or CONNECT_FAILED)
 * is reported with requested = true. Does nothing on an IDLE session. */
void mq_session_abort(struct mq_session *s);

/* Closes abruptly when needed (like mq_session_abort(), but reporting no
 * events), fails every outstanding acknowledgement (so that their `arg`s
 * can be released), frees every queue, and frees the session. Messages
 * still referenced stay readable; confirming them fails. NULL is fine. */
void mq_session_free(struct mq_session *s);

enum mq_session_state mq_session_state(const struct mq_session *s);
const char *mq_session_state_name(enum mq_session_state st);
/* The last error text of a failed call on this session (borrowed; "" if none). */
const char *mq_session_error(const struct mq_session *s);
/* Negotiated version as 10, 11 or 12; 0 before CONNECTED. */
int mq_session_version(const struct mq_session *s);
/* CONNECTED's server and session headers (borrowed; "" when absent). */
const char *mq_session_server(const struct mq_session *s);
const char *mq_session_broker_session(const struct mq_session *s);
/* A header of the last CONNECTED frame, as received (borrowed; NULL when
 * absent or before CONNECTED). mqbroker sends `broker-id`, which a
 * forwarder uses to keep a message from going back where it has been. */
const char *mq_session_connected_header(const struct mq_session *s, const char *name);
/* Heart-beat intervals in use after negotiation, ms (0 = none). */
void mq_session_heartbeats(const struct mq_session *s, unsigned *send_ms, unsigned *recv_ms);
/* Bytes queued for the socket and not yet written. */
size_t mq_session_pending_bytes(const struct mq_session *s);
struct event_base *mq_session_base(const struct mq_session *s);
/* "host:port" of the broker connected to, or last tried (borrowed). */
const char *mq_session_address(const struct mq_session *s);

/* Tells the session whether the host is healthy (it starts healthy).
 * Unhealthy: HOST_UNHEALTHY, then for each queue opened with
 * suspend_on_bad_host_health, its subscription is withdrawn (UNSUBSCRIBE)
 * and QUEUE_SUSPENDED reported once the broker confirms (at once for a
 * queue that has none, or while disconnected); mq_post() to it returns
 * MQ_ERR_SUSPENDED. Healthy again: each is subscribed again, QUEUE_RESUMED
 * (or QUEUE_RESUME_FAILED) once the broker confirms, then
 * HOST_HEALTH_RESTORED. Events may be reported before this returns.
 * Calling it with the state the session already has does nothing. */
void mq_session_set_host_health(struct mq_session *s, bool healthy);
bool mq_session_host_healthy(const struct mq_session *s);

/* The library's log lines (connections, losses, errors) go to stderr,
 * named "mqclient", at this level: 0 none, 1 errors (the default), 2
 * warnings (lost connections), 3 everything (each attempt). */
void mq_log_set_level(int level);

/* Counters since mq_session_new(), across reconnections. */
struct mq_stats {
	uint64_t frames_in;		/* frames received, heart-beats not included */
	uint64_t frames_out;		/* frames sent, heart-beats not included */
	uint64_t bytes_in;		/* every byte received, heart-beats included */
	uint64_t bytes_out;		/* every byte queued for sending */
	uint64_t heartbeats_in;		/* EOLs received between frames */
	uint64_t heartbeats_out;	/* EOLs sent */
	uint64_t posted;		/* SEND frames */
	uint64_t acked;			/* posts whose RECEIPT arrived */
	uint64_t ack_failed;		/* posts failed by an ERROR or a close */
	uint64_t acks_pending;		/* posts waiting for their RECEIPT now */
	uint64_t received;		/* MESSAGE frames given to on_message */
	uint64_t dropped;		/* MESSAGE frames for a closed or reconfigured
					   subscription, or for none */
	uint64_t confirmed;		/* ACK frames */
	uint64_t rejected;		/* NACK frames */
	uint64_t errors;		/* ERROR frames */
	uint64_t attempts;		/* connection attempts (TCP connects begun) */
	uint64_t connects;		/* CONNECTED frames (RECONNECTED included) */
	uint64_t reconnects;		/* RECONNECTED events */
	uint64_t reposted;		/* posts sent again after a reconnection */
};
void mq_session_stats(const struct mq_session *s, struct mq_stats *out);

/* ---- destinations ------------------------------------------------------ */

#define MQ_READ  0x1	/* subscribe: messages arrive in on_message */
#define MQ_WRITE 0x2	/* post to it */

enum mq_ack_mode {
	MQ_ACK_AUTO,			/* ack:auto; the broker forgets a message once sent */
	MQ_ACK_CLIENT,			/* ack:client; one ACK confirms every earlier message
					   of the subscription as well (cumulative) */
	MQ_ACK_CLIENT_INDIVIDUAL,	/* ack:client-individual; one ACK, one message */
};

/* Called when the broker confirmed a SUBSCRIBE (status OK on its RECEIPT),
 * or refused it (FAILED with the ERROR's text, or the connection closed
 * first). Fires once per mq_open()/mq_configure() that set it, and again
 * after each reconnection's re-subscription. A configure that pauses the
 * queue fires it on the UNSUBSCRIBE's RECEIPT; one that sends nothing
 * (paused or suspended before and after) fires it before it returns. */
typedef void (*mq_ready_cb)(struct mq_queue *q, const struct mq_ack *result, void *arg);

struct mq_queue_opts {
	/* Subscription id (default "sub-N", unique in the session). */
	const char *id;
	enum mq_ack_mode ack;
	/* Flow control, sent as max-unconfirmed-messages,
	 * max-unconfirmed-bytes and consumer-priority. 0 sends nothing, which
	 * leaves the broker's default (no limit; priority 0). */
	uint32_t max_unconfirmed_messages;
	uint64_t max_unconfirmed_bytes;
	int32_t consumer_priority;
	/* Paused: no subscription at all (BlazingMQ's options of zero). STOMP
	 * has no window of zero, so a paused queue is unsubscribed: messages
	 * delivered and not confirmed go back to the broker (confirming them
	 * returns MQ_ERR_STALE), and nothing arrives until it is configured
	 * unpaused. */
	bool paused;
	/* Suspend while the host is unhealthy (mq_session_set_host_health). */
	bool suspend_on_bad_host_health;
	/* More SUBSCRIBE headers, copied: a selector, a durable subscription
	 * name, a broker-specific option. */
	const struct mq_header *headers;
	size_t nheaders;
	/* Messages of this queue go here instead of the session's on_message. */
	mq_message_cb on_message;
	/* Subscription confirmed or refused; may be NULL (then no receipt is
	 * asked for). */
	mq_ready_cb on_ready;
	/* Handed to on_message and on_ready; also mq_queue_arg(). */
	void *arg;
	/* Only messages this JMS selector matches (`type = 'render' AND
	 * frames < 100`; docs/protocol.md, "Selectors"); NULL or "": all.
	 * A selector the broker cannot compile fails the open (on_ready).
	 * Last, so that programs built before it still fit. */
	const char *selector;
};

/* Opens `destination` for MQ_READ, MQ_WRITE or both. MQ_READ sends
 * SUBSCRIBE (now when CONNECTED, otherwise once CONNECTED arrives) with
 * the id, ack mode, flow-control and extra headers of `opts` (NULL:
 * defaults, ack auto). MQ_WRITE sends nothing. Returns the queue, owned
 * by the session, valid until mq_close() or mq_session_free(); NULL with
 * mq_session_error() for an empty destination, bad flags, a subscription
 * id already in use, or a value that cannot be sent. */
struct mq_queue *mq_open(struct mq_session *s, const char *destination, unsigned flags,
                         const struct mq_queue_opts *opts);

/* Changes a reading queue's options (ack mode, flow control, priority,
 * extra headers, callbacks). STOMP has no frame that changes a
 * subscription, so this sends UNSUBSCRIBE (with a receipt) and SUBSCRIBE
 * again with the same id and the new headers. Consequences, which the
 * broker's UNSUBSCRIBE semantics dictate:
 *   - messages delivered before and not yet confirmed go back to the
 *     broker's queue and come again, redelivered; mq_confirm() and
 *     mq_reject() on them fail from now on (the broker no longer knows
 *     them), so confirm what you can before reconfiguring;
 *   - in ack modes client and client-individual, MESSAGE frames that
 *     were already on their way (before the UNSUBSCRIBE's RECEIPT) are
 *     dropped, since the broker takes them back too; in auto mode they
 *     are delivered as usual;
 *   - on a topic, messages published between the two frames are missed.
 * Pausing sends only the UNSUBSCRIBE, unpausing only the SUBSCRIBE.
 * Returns -1 for a queue not opened with MQ_READ. opts NULL restores the
 * defaults. */
int mq_configure(struct mq_queue *q, const struct mq_queue_opts *opts);

/* Closes the queue: UNSUBSCRIBE for a reading queue (unconfirmed messages
 * go back to the broker's queue). The handle is invalid once this returns;
 * MESSAGE frames still arriving for it are dropped; messages of it that
 * are still referenced can be read but no longer confirmed. Posts already
 * made keep their acknowledgement callbacks. NULL is fine. */
void mq_close(struct mq_queue *q);

/* Closes the queue like mq_close() (the handle is invalid on return), and
 * settles what is outstanding on it: on_closed(arg) fires once, with OK
 * when every post made to it has its acknowledgement and, for a reading
 * queue, the UNSUBSCRIBE its RECEIPT (no MESSAGE for it follows). Posts
 * still unanswered then fail (MQ_ACK_CANCELED, or MQ_ACK_CONNECTION when
 * the connection drops meanwhile); so do those waiting to be sent again
 * while the session reconnects, at once. After timeout_ms (0: no limit)
 * whatever is left fails and on_closed reports FAILED. on_closed may run
 * before this returns. -1 when q was already closed. */
int mq_close_then(struct mq_queue *q, unsigned timeout_ms, mq_ack_cb on_closed, void *arg);

const char *mq_queue_destination(const struct mq_queue *q);
const char *mq_queue_id(const struct mq_queue *q);	/* subscription id; "" if write-only */
void *mq_queue_arg(const struct mq_queue *q);
struct mq_session *mq_queue_session(const struct mq_queue *q);

/* ---- posting ----------------------------------------------------------- */

#define MQ_PERSISTENT 0x1	/* adds persistent:true */

/* Sends one message (SEND) to the queue's destination: `len` bytes of
 * `body` (copied; binary safe: content-length is always sent), the given
 * headers (copied and escaped for the negotiated version; they may not be
 * named destination, receipt or content-length, which the library writes),
 * and persistent:true with MQ_PERSISTENT. A `transaction` header puts the
 * SEND in a transaction begun with mq_tx_begin().
 *
 * With on_ack, a receipt header is added and on_ack fires exactly once
 * (see Guarantees). Any number of posts may be outstanding: they are
 * pipelined, and receipts may come back in any order. Without on_ack the
 * broker confirms nothing and a message lost with the connection goes
 * unnoticed.
 *
 * While the session is RECONNECTING with MQ_REPOST_RESEND, a post with
 * on_ack is kept and sent once the connection is back (it counts as
 * outstanding meanwhile).
 *
 * Returns MQ_ERR_SUSPENDED for a suspended queue, and -1 (MQ_ERR), with
 * no callback, when the session is not CONNECTED (nor reconnecting as
 * above), the queue was not opened with MQ_WRITE, or a header is invalid
 * (a name that the library writes, or a newline under STOMP 1.0). */
int mq_post(struct mq_queue *q, const void *body, size_t len,
            const struct mq_header *headers, size_t nheaders,
            unsigned flags, mq_ack_cb on_ack, void *arg);

/* mq_post() with headers already encoded, for a forwarder that passes
 * on a stored message's header block without decoding it: `raw` holds
 * raw_len bytes of complete header lines, "name:value\n" each, escaped
 * for the session's negotiated version (mq_session_version()); they are
 * written as they are after `headers`. Lines may not name destination,
 * receipt or content-length. Such a post needs a CONNECTED session and is
 * never kept to be sent again (its escaping belongs to this connection):
 * when the connection drops before its RECEIPT, on_ack fails with
 * MQ_ACK_CONNECTION whatever the repost policy. */
int mq_post_raw(struct mq_queue *q, const void *body, size_t len,
                const struct mq_header *headers, size_t nheaders, const char *raw, size_t raw_len,
                unsigned flags, mq_ack_cb on_ack, void *arg);

/* ---- transactions ------------------------------------------------------ */

/* BEGIN, COMMIT and ABORT for transaction `tx`. on_done (may be NULL)
 * fires once, on the RECEIPT (OK) or an ERROR or close (FAILED). Use the
 * header transaction:tx in mq_post() and mq_confirm_tx()/mq_reject_tx()
 * for the work inside. -1 when not CONNECTED or tx is empty. */
int mq_tx_begin(struct mq_session *s, const char *tx);
int mq_tx_commit(struct mq_session *s, const char *tx, mq_ack_cb on_done, void *arg);
int mq_tx_abort(struct mq_session *s, const char *tx, mq_ack_cb on_done, void *arg);

/* ---- receiving --------------------------------------------------------- */

/* A message given to on_message is borrowed: every pointer it hands out
 * stays valid during the callback only. mq_message_ref() makes it
 * outlive the callback: it returns the pointer to keep (for a borrowed
 * message, a copy made once; for a kept one, the same pointer with one
 * more reference), and every reference is dropped with mq_message_unref().
 * A slow consumer keeps its messages this way and confirms them later. */
struct mq_message *mq_message_ref(struct mq_message *m);
/* Drops one reference; frees at zero. A borrowed message or NULL: no-op. */
void mq_message_unref(struct mq_message *m);

const char *mq_message_destination(const struct mq_message *m);
const char *mq_message_subscription(const struct mq_message *m);	/* "" if absent */
const char *mq_message_id(const struct mq_message *m);		/* message-id */
/* The id that ACK/NACK name: the ack header under 1.2 (message-id when
 * absent), message-id before 1.2. */
const char *mq_message_ack_id(const struct mq_message *m);
bool mq_message_redelivered(const struct mq_message *m);	/* redelivered:true */
/* The first header of that name, decoded, or NULL. */
const char *mq_message_header(const struct mq_message *m, const char *name);
/* Headers in the order received: 0 <= i < mq_message_header_count(). */
size_t mq_message_header_count(const struct mq_message *m);
void mq_message_header_at(const struct mq_message *m, size_t i, const char **name, const char **value);
/* The body, `*len` bytes, followed by a NUL that is not part of it. */
const void *mq_message_body(const struct mq_message *m, size_t *len);
/* The queue it arrived on; NULL once that queue is closed. */
struct mq_queue *mq_message_queue(const struct mq_message *m);

/* Confirms the message: ACK with the right ids for the version (1.2:
 * id = the ack header; 1.1: message-id and subscription; 1.0:
 * message-id). In ack mode client this confirms every earlier message of
 * the subscription too, and confirming or rejecting one of those later
 * sends nothing and returns 0 (the broker no longer knows its id). In ack
 * mode auto nothing is sent and 0 returned.
 * Returns MQ_ERR_STALE when the broker no longer knows the message (it
 * arrived on an earlier connection, or its subscription was reconfigured,
 * paused or suspended since: the broker delivers it again), and -1 when
 * it was already confirmed or rejected, its queue is closed, or its
 * session was freed; the reason is in mq_session_error(). */
int mq_confirm(struct mq_message *m);
/* Rejects the message: NACK, so that the broker redelivers it (or
 * dead-letters it, per its policy). STOMP 1.0 has no NACK: -1. Auto mode:
 * -1. Otherwise as mq_confirm(). */
int mq_reject(struct mq_message *m);
/* The same inside transaction `tx`. */
int mq_confirm_tx(struct mq_message *m, const char *tx);
int mq_reject_tx(struct mq_message *m, const char *tx);

/* ---- blocking helpers for sequential tools ----------------------------- */

enum mq_run_status {
	MQ_RUN_DONE,	/* the predicate became true */
	MQ_RUN_TIMEOUT,	/* the time ran out first */
	MQ_RUN_CLOSED,	/* the session went IDLE first (failed or closed) */
	MQ_RUN_ERROR,	/* called from a callback, or the loop failed */
};

/* Runs the session's event loop until done(arg) returns true (checked
 * before each loop turn), the session becomes IDLE, or timeout_ms passes
 * (0 = no limit). Other events on the same base are served meanwhile.
 * done may be NULL: run until the session closes or the time runs out. */
enum mq_run_status mq_session_run_until(struct mq_session *s, bool (*done)(void *arg),
                                        void *arg, unsigned timeout_ms);

/* mq_session_start() and wait for CONNECTED: 0, or -1 with the reason
 * (the CONNECT_FAILED text, or the timeout) in mq_session_error(). */
int mq_session_connect_sync(struct mq_session *s, unsigned timeout_ms);
/* mq_session_stop() and wait until IDLE. */
void mq_session_stop_sync(struct mq_session *s, unsigned timeout_ms);
/* mq_open() with a receipt, waiting for it when MQ_READ: the queue, or
 * NULL with the reason (the queue is then closed). */
struct mq_queue *mq_open_sync(struct mq_session *s, const char *destination, unsigned flags,
                              const struct mq_queue_opts *opts, unsigned timeout_ms);
/* mq_post() with a receipt, waiting for it: 0, or -1 with the reason. */
int mq_post_sync(struct mq_queue *q, const void *body, size_t len,
                 const struct mq_header *headers, size_t nheaders, unsigned flags,
                 unsigned timeout_ms);

/* ---- a session on a thread of its own --------------------------------- */

/* For programs (and language bindings) that want BlazingMQ's threading
 * instead of an event loop of their own: an agent owns an event_base, a
 * session on it and a thread that runs them. Its functions may be called
 * from any thread, are thread-safe, and never wait for the network:
 * requests are handed to the agent's thread, and what happens comes back
 * as events that the application collects with mq_agent_poll() (in order:
 * a request's DONE comes after every MESSAGE and ACK that preceded its
 * completion). Queues and messages are named by numbers, not pointers.
 * A session's options are given as to mq_session_new(); on_event,
 * on_message and arg are the agent's own and ignored. */
struct mq_agent;

enum mq_agent_kind {
	MQ_AGENT_EVENT,		/* a session event: code = enum mq_event_type; queue
				   = its queue for the QUEUE_* events, else 0 */
	MQ_AGENT_ACK,		/* a post's acknowledgement: token = the post's;
				   code = enum mq_ack_status; reason */
	MQ_AGENT_MESSAGE,	/* a message on `queue`; token names it for
				   mq_agent_confirm(); body, headers */
	MQ_AGENT_DONE,		/* a request is complete: token = the request's;
				   code = 0, or -1 with the reason in text */
	MQ_AGENT_CLOSED,	/* the last event: the agent's thread has ended */
};

struct mq_agent_event {
	int32_t kind;		/* enum mq_agent_kind */
	int32_t code;
	int32_t reason;		/* ACK: enum mq_ack_reason */
	uint32_t queue;
	uint64_t token;
	const char *text;	/* never NULL */
	const char *body;	/* MESSAGE: body_len bytes (a NUL follows) */
	size_t body_len;
	/* MESSAGE: every header, decoded, as name NUL value NUL ... in the
	 * order received (headers_len bytes in all). */
	const char *headers;
	size_t headers_len;
	int32_t redelivered;	/* MESSAGE: 1 when redelivered:true */
	int32_t unused;
};

/* NULL only when opts is NULL or the system refuses a pipe. */
struct mq_agent *mq_agent_new(const struct mq_session_opts *opts);
/* Starts the thread and the session (mq_session_start()): 0, or -1 with
 * the reason in mq_agent_error(). CONNECTED or CONNECT_FAILED follows as
 * an event. */
int mq_agent_start(struct mq_agent *a);
/* Waits up to timeout_ms (-1: no limit; 0: do not wait) for events and
 * copies up to max of them into ev; returns how many. Their strings stay
 * valid until the next call. After MQ_AGENT_CLOSED it returns 0 at once.
 * One thread polls. */
size_t mq_agent_poll(struct mq_agent *a, struct mq_agent_event *ev, size_t max, int timeout_ms);

/* Opens a queue (see mq_open(); the options' callbacks and arg are the
 * agent's): its number (1, 2, ...), or 0 with the reason in
 * mq_agent_error(). DONE(token) once the broker has confirmed the
 * subscription (at once for writing only), or DONE with -1. */
uint32_t mq_agent_open(struct mq_agent *a, const char *destination, unsigned flags,
                       const struct mq_queue_opts *opts, uint64_t token);
/* mq_configure(): DONE(token) once the broker has confirmed. Messages of
 * the queue that arrived before and were not yet polled are dropped: the
 * broker has taken them back with the old subscription. */
int mq_agent_configure(struct mq_agent *a, uint32_t queue, const struct mq_queue_opts *opts, uint64_t token);
/* mq_close_then(): DONE(token) after every acknowledgement of the queue's
 * posts; code -1 when some were failed at timeout_ms. */
int mq_agent_close(struct mq_agent *a, uint32_t queue, unsigned timeout_ms, uint64_t token);
/* mq_post(): body and headers are copied. With a token other than 0, an
 * ACK(token) follows, exactly once. Returns 0, MQ_ERR_SUSPENDED, or -1
 * (no ACK) for an unknown, closed or read-only queue or a session that
 * cannot post now; 1 when accepted but more than out_high_water bytes are
 * waiting to be written: a producer may then mq_agent_wait_writable(). */
int mq_agent_post(struct mq_agent *a, uint32_t queue, const void *body, size_t len,
                  const struct mq_header *headers, size_t nheaders, unsigned flags, uint64_t token);
/* Blocks until fewer than out_low_water bytes wait to be written, the
 * session cannot post, or timeout_ms passes (-1: no limit). */
void mq_agent_wait_writable(struct mq_agent *a, int timeout_ms);
/* Confirms a message by its token: MQ_OK, MQ_ERR_STALE (it arrived on an
 * earlier connection or before its queue was reconfigured, paused or
 * suspended: the broker delivers it again) or MQ_ERR (unknown, already
 * confirmed, its queue closed). The ACK itself is sent by the agent's
 * thread. */
int mq_agent_confirm(struct mq_agent *a, uint64_t message);
/* A barrier: DONE(token) comes after every event the agent reported
 * before it saw this request. A binding that runs callbacks on the thread
 * that polls waits for it before pausing or closing a queue, so that the
 * confirms those callbacks make reach the broker first. */
int mq_agent_sync(struct mq_agent *a, uint64_t token);
/* mq_session_set_host_health(), on the agent's thread. */
void mq_agent_set_host_health(struct mq_agent *a, bool healthy);
/* mq_session_stop(): DONE(token) once the session is IDLE, then CLOSED. */
int mq_agent_stop(struct mq_agent *a, uint64_t token);
/* Aborts the session if it is still up, ends the thread, frees
 * everything. Events not yet polled are dropped. NULL is fine. */
void mq_agent_free(struct mq_agent *a);
/* The reason the calling thread's last failed mq_agent_* call failed. */
const char *mq_agent_error(void);

#ifdef __cplusplus
}
#endif

#endif
