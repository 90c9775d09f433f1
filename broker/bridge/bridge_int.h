/* bridge_int.h: what the bridge's files share (bridge.c: lifecycle, the
 * remote session, admin rows; bridge_out.c: the sink that forwards;
 * bridge_in.c: the subscription that publishes). Not for other layers. */
#ifndef MQ_BRIDGE_INT_H
#define MQ_BRIDGE_INT_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>

#include "bridge/bridge.h"
#include "client/mqclient.h"
#include "common/hmap.h"
#include "common/util.h"
#include "core/sink.h"
#include "core/store.h"

struct event;
struct dedup;
struct msg;
struct vhost;

/* An outbound post waiting for its RECEIPT. */
struct fwd {
	TAILQ_ENTRY(fwd) link;		/* br->inflight, oldest first */
	struct bridge *br;		/* NULL once the bridge let go of it (freed from on_ack) */
	uint64_t msg_id;
	uint64_t taken_ms;		/* wall clock when the local broker took the message */
	char sub_id[];			/* the local subscription it was delivered on */
};
TAILQ_HEAD(fwd_list, fwd);

/* A delivery to settle from the loop: the core creates its delivery
 * record only after deliver() returns. */
struct giveback {
	TAILQ_ENTRY(giveback) link;
	uint64_t msg_id;
	bool ack;			/* true: acknowledge (a loop skipped); false: give back */
	char sub_id[];
};
TAILQ_HEAD(giveback_list, giveback);

/* An inbound message not yet confirmed upstream. */
struct held {
	TAILQ_ENTRY(held) link;		/* br->held or br->durable */
	struct bridge *br;
	struct mq_message *m;		/* ref held (a copy) */
	struct completion c;		/* while waiting for the journal */
	uint64_t since_ms;		/* wall clock when it arrived */
};
TAILQ_HEAD(held_list, held);

struct bridge {
	TAILQ_ENTRY(bridge) link;	/* bridges->all */
	struct broker *b;
	struct bridge_spec spec;	/* owned */
	struct sink sink;		/* the local side: its principal and subscriptions */
	struct vhost *vh;
	struct mq_session *s;		/* owned; NULL while stopped */
	enum bridge_state state;
	char last_error[700];
	char remote_id[65];		/* the remote mqbroker's broker-id, "" for others */
	bool connected;
	uint64_t attempts_at_loss;	/* the session's attempts when an established link dropped */
	bool reconnect_failing;	/* since then, an attempt to reconnect has failed */
	bool paused;
	bool stopping;			/* being deleted: settle nothing more */
	bool draining;			/* the broker is shutting down: take nothing new, settle
					 * what is in flight */
	bool out_blocked;		/* the session's output is over its high-water mark */
	bool backoff;			/* outbound: refused by the remote, waiting before more */
	bool throttled;			/* inbound: the local broker asked producers to slow down */
	unsigned failures;		/* consecutive, for the back-off */
	struct event *retry_ev;		/* restarts the session, ends a back-off, retries held */
	struct event *settle_ev;	/* settles br->givebacks */

	/* outbound */
	struct strmap remote_queues;	/* remote destination -> struct mq_queue *, borrowed from s */
	struct fwd_list inflight;
	struct giveback_list givebacks;
	struct giveback_list confirmed;	/* RECEIPTs in, local acknowledgements batched */
	struct event *ack_ev;		/* acknowledges br->confirmed, ACK_BATCH_MS after the first */
	struct sbuf scratch;		/* a header block without its mq-via line */
	bool subscribed;		/* a fixed source: subscribed now */

	/* inbound */
	struct mq_queue *in_q;		/* borrowed from s */
	struct dedup *dedup;		/* owned; NULL without the dedup option */
	struct held_list held;		/* arrived, not yet published (blocked or throttled) */
	struct held_list durable;	/* published, waiting for the journal */
	bool in_failed;			/* the remote refused the subscription: retry */

	/* figures */
	uint64_t pending;		/* unconfirmed now (outbound: posts in flight; inbound:
					 * held + waiting for the journal) */
	uint64_t forwarded;		/* sent to the remote (out), published locally (in) */
	uint64_t acknowledged;		/* confirmed by the remote (out), confirmed upstream (in) */
	uint64_t redelivered;		/* taken again after a failure */
	uint64_t failed;		/* posts failed or refused (out), publishes refused (in) */
	uint64_t duplicates;		/* inbound: dropped as repeats */
	uint64_t looped;		/* not forwarded: the message had been where it would go */
	uint64_t connects;
	uint64_t moved_mark;		/* forwarded + acknowledged at the last tick */
	uint64_t last_move_ms;		/* monotonic: when something last moved */
	bool stalled;			/* the alarm is raised */
	uint64_t created_ms;		/* wall clock */
};

static inline struct bridge *bridge_of(struct sink *k)
{
	return (struct bridge *)((char *)k - offsetof(struct bridge, sink));
}

/* bridge.c */
void bridge_set_state(struct bridge *br, enum bridge_state st, const char *error);
/* Recomputes what the core reads (sink.full) and, when there is room
 * again, delivers what waits. */
void bridge_update_room(struct bridge *br);
void bridge_moved(struct bridge *br);
uint64_t bridge_backoff_ms(struct bridge *br);
void bridge_arm_retry(struct bridge *br, uint64_t ms);

/* bridge_out.c */
extern const struct sink_ops bridge_sink_ops;
void bridge_out_start(struct bridge *br);	/* subscribes to the sources */
void bridge_out_connected(struct bridge *br);
void bridge_out_stop(struct bridge *br);	/* before the session goes */
void bridge_out_dest_created(struct bridge *br, const char *vhost, const char *name);
/* When the oldest message waiting in the source queues was taken; 0 when unknown or none. */
uint64_t bridge_out_oldest_ms(const struct bridge *br);
uint64_t bridge_out_backlog(const struct bridge *br);
void bridge_out_settle(struct bridge *br);
/* Acknowledges here what the remote has confirmed (batched). */
void bridge_out_ack_confirmed(struct bridge *br);

/* bridge_in.c */
int bridge_in_open(struct bridge *br);
void bridge_in_connection_lost(struct bridge *br);
void bridge_in_set_paused(struct bridge *br, bool paused);
void bridge_in_retry(struct bridge *br);
void bridge_in_resume(struct bridge *br);
void bridge_in_stop(struct bridge *br);
uint64_t bridge_in_oldest_ms(const struct bridge *br);

#endif
