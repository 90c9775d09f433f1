/* msg.h: a refcounted message, stored once and shared by every holder.
 *
 * One allocation holds the struct, the destination, the user headers
 * (already encoded as STOMP 1.2 header lines) and the body, copied there
 * from the producer's frame. Each queue slot, in-flight delivery,
 * transaction and output buffer that keeps the message takes its own
 * reference; whoever drops the last one frees it, and fan-out to many
 * destinations or subscribers shares the one message.
 *
 * The body is copied again in two cases only: msg_clone_for(), when a
 * copy must carry other headers (a dead letter, a message moved back by
 * redrive), and a sink's encoding cache (wire below), which holds a small message
 * already encoded for its subscribers so that a topic with many of them
 * formats it once. */
#ifndef MQ_MSG_H
#define MQ_MSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/frame.h"

enum {
	MSG_PERSISTENT = 1 << 0,	/* journaled: sent persistent:true or to a persistent queue */
	MSG_HDR_HAS_CR = 1 << 1,	/* a header holds \r, so 1.1 readers need their own encoding */
	MSG_JOURNALED = 1 << 2,		/* a MESSAGE record exists in the journal */
	MSG_RECOVERED = 1 << 3,		/* came back from the journal after a restart */
	MSG_HDR_HAS_ESC = 1 << 4,	/* a header holds an escape, so 1.0 readers need their own encoding */
	MSG_DEAD_LETTER = 1 << 5,	/* a dead letter: never dead-lettered again (journaled) */
	MSG_GROUPED = 1 << 6,		/* has a message group header (JMSXGroupID, message-group) */
};

struct msg {
	uint32_t refs;
	uint32_t flags;
	uint64_t id;
	uint64_t timestamp;		/* ms since the epoch, when the broker took it */
	uint64_t expires;		/* ms since the epoch; 0 = never */
	char *dest;			/* the destination it was sent to; inside data[] */
	char *hdrs;			/* user header lines, 1.2-escaped, each "name:value\n" */
	char *body;			/* inside data[] */
	char *hdrs_old[2];		/* owned, lazy: hdrs re-encoded for 1.0 and 1.1 readers */
	char *wire;			/* owned, lazy: the message encoded once by a sink for every
					 * subscriber of a topic (the STOMP MESSAGE from message-id
					 * to the final NUL); freed with the message */
	uint32_t wire_len;
	uint8_t wire_version;		/* what the encoding depends on (the STOMP version) */
	uint32_t dest_len;
	uint32_t hdrs_len;
	uint32_t body_len;
	uint32_t hdrs_old_len[2];
	char data[];
};

/* Headers that describe the frame, not the message: never copied into it. */
bool msg_is_control_header(const char *name, size_t len);

/* Builds a message from a producer's draft: its destination, every user
 * header (headers that describe the frame, and repeats, are left out),
 * and the body, copied here once. `edits` (nedits long) change headers on
 * the way: a value, or NULL to remove. Reference count 1. */
struct msg_edit {
	const char *name;
	const char *value;		/* NULL removes the header */
};
struct msg *msg_new(uint64_t id, const char *dest, const struct frame_hdr *hdrs, unsigned nhdrs,
                    const void *body, size_t body_len, const struct msg_edit *edits, size_t nedits);
/* A copy under another destination, with header edits (dead letters,
 * redrive): the same id, the body copied. */
struct msg *msg_clone_for(const struct msg *m, const char *dest,
                          const struct msg_edit *edits, size_t nedits);
/* From raw parts: used by recovery and the broker's own messages (events,
 * command replies). hdrs are "name:value\n" lines already 1.2-escaped. */
struct msg *msg_from_parts(uint64_t id, const char *dest, const char *hdrs, size_t hdrs_len,
                           const void *body, size_t body_len);
/* What a producer's headers ask of its message, as sent (NULL when absent). */
struct msg_asks {
	const char *expires;		/* absolute ms since the epoch (ActiveMQ, Apollo) */
	const char *ttl;		/* relative ms (RabbitMQ's expiration, or x-message-ttl) */
	const char *persistent;		/* "true" journals it */
	char buf[3][64];		/* the values re-read after route() edits */
};
/* Sets m->expires from a (the earlier of the two expiries wins). When
 * route() edited the headers (edited), the message's own headers are the
 * word instead, as its consumers will see them, and a->persistent is
 * re-read too for the caller. -1 with the reason for a bad value. */
int msg_apply_asks(struct msg *m, struct msg_asks *a, bool edited, char *err, size_t errlen);

static inline struct msg *msg_ref(struct msg *m)
{
	m->refs++;
	return m;
}
void msg_unref(struct msg *m);		/* frees at zero; NULL is fine */
/* For evbuffer_add_reference cleanup callbacks. */
void msg_unref_cb(const void *data, size_t len, void *arg);

/* The header block for a reader of `version`, and its length. */
const char *msg_hdrs_for(struct msg *m, enum stomp_version version, size_t *len);
/* Looks a user header up (decoded into buf); NULL if absent. */
const char *msg_header(const struct msg *m, const char *name, char *buf, size_t buflen);
/* The value of header `name` as stored (1.2-escaped: it needs decoding when
 * the message has MSG_HDR_HAS_ESC), without a copy; NULL if absent. */
const char *msg_header_raw(const struct msg *m, const char *name, size_t nlen, size_t *vlen);
/* The message group a message belongs to (decoded into buf), or NULL. */
const char *msg_group(const struct msg *m, char *buf, size_t buflen);

/* Journal payload: [u32 dest_len][dest][u32 hdrs_len][hdrs][u64 timestamp]
 * [u64 expires][u32 flags][body]. msg_decode is its inverse (the message
 * comes back flagged journaled; recovery adds MSG_RECOVERED). */
void *msg_encode(const struct msg *m, size_t *len);
struct msg *msg_decode(uint64_t id, const void *payload, size_t len);

/* Messages alive in the process, and the bytes their allocations take. */
uint64_t msg_live_count(void);
uint64_t msg_live_bytes(void);

/* Memory the message holds, for accounting. */
size_t msg_size(const struct msg *m);


#endif
