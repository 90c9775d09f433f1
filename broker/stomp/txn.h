/* txn.h: STOMP transactions: SEND, ACK and NACK frames held until COMMIT.
 *
 * A SEND inside a transaction is routed and turned into a message at once
 * (so that a bad destination or a route() rejection answers the SEND
 * itself); the message waits in the transaction with its destinations.
 * An ACK or NACK is checked against the deliveries at once and performed
 * at COMMIT. ABORT, or the connection dropping, discards everything. */
#ifndef MQ_TXN_H
#define MQ_TXN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct conn;
struct conns;
struct publication;

struct txn;

/* NULL with err when the name is taken or the limit is reached. */
struct txn *txn_begin(struct conn *c, const char *name, char *err, size_t errlen);
struct txn *txn_find(struct conn *c, const char *name);
/* Keeps the message (its own reference) and its destinations' names. */
int txn_add_send(struct conn *c, struct txn *t, const struct publication *pub, char *err, size_t errlen);
int txn_add_ack(struct conn *c, struct txn *t, const char *id, const char *sub_id, int nack, char *err, size_t errlen);
/* Performs everything in order and frees the transaction; *seq gets the
 * journal sequence the receipt must wait for. -1 when a SEND was refused
 * (the connection is then closed with an ERROR tied to `receipt`). Each
 * SEND delivers all its copies or none; the transaction as a whole is not
 * undone when a later SEND is refused. */
int txn_commit(struct conn *c, struct txn *t, const char *receipt, uint64_t *seq);
/* ABORT, or the connection going: the messages are freed later, a slice a
 * loop turn, by txn_reap(). */
void txn_abort(struct conn *c, struct txn *t);
void txn_abort_all(struct conn *c);
/* Frees up to `budget` discarded operations; true when some remain. */
bool txn_reap(struct conns *cs, size_t budget);

#endif
