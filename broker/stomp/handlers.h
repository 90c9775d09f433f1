/* handlers.h: the frame handlers, one group of frames per file, and the
 * little they share. Private to broker/stomp/.
 *
 * Every refusal goes through conn_close() with a message that names what
 * was wrong and in which frame; the ERROR carries receipt-id when the
 * faulty frame asked for a receipt. */
#ifndef MQ_STOMP_HANDLERS_H
#define MQ_STOMP_HANDLERS_H

#include <stdbool.h>
#include <stddef.h>

#include "common/frame.h"

struct conn;
struct selector;
struct sub_opts;

typedef void (*stomp_handler)(struct conn *c, struct frame *f, const char *receipt);

/* stomp_session.c */
void handle_connect(struct conn *c, struct frame *f, const char *receipt);
void handle_disconnect(struct conn *c, struct frame *f, const char *receipt);
/* A CONNECT still waiting for its login to be checked is dropped (the
 * connection is closing). */
void stomp_connect_abandon(struct conn *c);
/* stomp_send.c */
void handle_send(struct conn *c, struct frame *f, const char *receipt);
void handle_begin(struct conn *c, struct frame *f, const char *receipt);
void handle_commit_abort(struct conn *c, struct frame *f, const char *receipt);
/* stomp_subscribe.c */
void handle_subscribe(struct conn *c, struct frame *f, const char *receipt);
void handle_unsubscribe(struct conn *c, struct frame *f, const char *receipt);
/* stomp_browse.c: SUBSCRIBE with browser:true (takes sel). */
void stomp_browse(struct conn *c, struct frame *f, const char *receipt, const char *name, const char *id,
                  struct selector *sel);
/* UNSUBSCRIBE of a browser: true when id was one (now gone). */
bool stomp_browse_end(struct conn *c, const char *id);
/* The output drained: browsers write more. */
void stomp_browse_pump(struct conn *c);
void stomp_browse_free_all(struct conn *c);
/* stomp_ack.c */
void handle_ack(struct conn *c, struct frame *f, const char *receipt);
/* stomp_command.c: SEND to /command/NAME, the admin face over STOMP. */
void handle_command_send(struct conn *c, struct frame *f, const char *name, const char *receipt);

/* stomp_aliases.c: other brokers' spellings of our headers. */
/* Flow control and priority (BlazingMQ's, RabbitMQ's, ActiveMQ's,
 * Artemis's and Apollo's names). -1 after closing c with the reason. */
int stomp_sub_opts(struct conn *c, const struct frame *f, struct sub_opts *o, const char *receipt);
/* A durable topic subscription's key (client-id:name) from ActiveMQ's,
 * Artemis's or RabbitMQ's headers; false when the SUBSCRIBE is not one. */
bool stomp_durable_key(struct conn *c, const struct frame *f, const char *id, char *key, size_t len);

/* stomp.c */
static inline const char *stomp_cmd(const struct frame *f) { return frame_cmd_name(f->cmd); }
/* A header that must be there; closes the connection when it is not. */
const char *stomp_required(struct conn *c, const struct frame *f, const char *name, const char *receipt);

#endif
