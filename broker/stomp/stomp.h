/* stomp.h: the STOMP protocol on top of a connection: one handler per
 * client frame, and the writers for the frames the broker sends. */
#ifndef MQ_STOMP_H
#define MQ_STOMP_H

#include <stddef.h>
#include <stdint.h>

#include "common/frame.h"

struct conn;
struct sub;
struct msg;
struct dest;

/* Handles one parsed frame. May close the connection, never frees it. */
void stomp_handle(struct conn *c, struct frame *f);

/* Sends m to each destination (a route's fan-out, or one). On a refusal
 * the connection gets an ERROR (tied to `receipt`) and is closed, and -1
 * is returned. *seq gets the journal sequence a receipt waits for. */
int stomp_deliver(struct conn *c, struct msg *m, struct dest **dests, size_t ndests,
                  const char *receipt, uint64_t *seq);

void stomp_write_message(struct conn *c, struct sub *s, struct msg *m, uint32_t deliveries);
void stomp_write_receipt(struct conn *c, const char *receipt_id);
/* ERROR with message:<message>, receipt-id when given, and details (or
 * the message again) as a text body. */
void stomp_write_error(struct conn *c, const char *receipt_id, const char *message, const char *details);

/* Temporary queues die with the connection that made them. */
void stomp_release_temp_queues(struct conn *c);

#endif
