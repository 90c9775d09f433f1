/* stomp.h: the STOMP protocol on top of a connection: the handler of each
 * client frame (stomp.c dispatches to stomp_*.c), and the writers of the
 * frames the broker sends (stomp_write.c). */
#ifndef MQ_STOMP_H
#define MQ_STOMP_H

#include <stdint.h>

#include "common/frame.h"

struct conn;
struct sub;
struct msg;

/* Handles one parsed frame. May close the connection, never frees it. */
void stomp_handle(struct conn *c, struct frame *f);

/* The MESSAGE for one delivery on subscription s. */
void stomp_write_message(struct conn *c, struct sub *s, struct msg *m, uint32_t deliveries);
void stomp_write_receipt(struct conn *c, const char *receipt_id);
/* ERROR with message:<message>, receipt-id when given, and details (or
 * the message again) as a text body. */
void stomp_write_error(struct conn *c, const char *receipt_id, const char *message, const char *details);

#endif
