/* stomp_cmds.h: mqsh's commands that speak STOMP to the broker, through
 * the project's client library (client/mqclient.h): publish, tail and
 * browse. Each makes its own event loop and session for the one command. */
#ifndef MQSH_STOMP_CMDS_H
#define MQSH_STOMP_CMDS_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Where and as whom to connect. */
struct stomp_target {
	const char *host;	/* NULL: the library's default, 127.0.0.1 */
	uint16_t port;		/* 0: the library's default, 61613 (61614 with TLS) */
	bool tls;		/* the MQ_CLIENT_* variables turn TLS on as well */
	const char *login;	/* may be NULL */
	const char *passcode;	/* may be NULL */
	unsigned timeout_ms;	/* for connecting, subscribing and each receipt */
};

/* Is TLS asked for by the MQ_CLIENT_* (or PDG_MQ_CLIENT_*) variables?
 * mqsh needs to know before connecting, to pick the TLS port. */
bool stomp_cmds_tls_from_env(void);

/* Sends body to dest with the given headers (words "name=value"), waiting
 * for the broker's receipt. 0, or -1 with one line in err. Ctrl-C (*stop)
 * abandons it. */
int stomp_cmds_publish(const struct stomp_target *t, const char *dest, const char *body,
                       char *const *headers, int nheaders, volatile sig_atomic_t *stop,
                       char *err, size_t errlen);

struct stomp_tail_opts {
	uint64_t count;		/* stop after this many messages; 0: until *stop */
	const char *selector;	/* only what this JMS selector matches; NULL: all */
	bool topic;		/* a topic keeps nothing for us: take what comes (ack auto) */
	bool json;		/* one JSON object per message instead of text */
	FILE *out;
	volatile sig_atomic_t *stop;	/* set by Ctrl-C: stop, successfully */
};

/* Subscribes to dest and prints each message as it arrives. On a queue
 * each message is confirmed once printed, so that exactly the messages
 * shown are consumed: the rest go back to the queue when tail ends.
 * 0 when count messages came or Ctrl-C stopped it (*received says how
 * many came); -1 with one line in err when it could not subscribe or the
 * connection was lost. */
int stomp_cmds_tail(const struct stomp_target *t, const char *dest, const struct stomp_tail_opts *o,
                    uint64_t *received, char *err, size_t errlen);

/* Browses queue dest (SUBSCRIBE browser:true): prints what it holds, in
 * order, without consuming anything, until the broker's end marker or
 * o->count messages (o->topic is ignored). Same return as tail. */
int stomp_cmds_browse(const struct stomp_target *t, const char *dest, const struct stomp_tail_opts *o,
                      uint64_t *received, char *err, size_t errlen);

#endif
