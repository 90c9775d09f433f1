/* server.h: the mqbroker process around the core: creates the broker
 * (event loop, data directory, core, connections), runs it until a
 * graceful shutdown, writes the connection file, and frees it all. The
 * listeners, the control socket and HTTP are opened by main.c once the
 * broker exists. */
#ifndef MQ_SERVER_H
#define MQ_SERVER_H

#include <stddef.h>

struct broker;
struct config;
struct router;

/* Sets up the loop, the data directory and the core from cfg (taken
 * over). NULL with a reason that names the file or address at fault. */
struct broker *broker_new(struct config *cfg, struct router *router, char *err, size_t errlen);
int  broker_run(struct broker *b);		/* until shutdown */
void broker_free(struct broker *b);
/* -c: JSON with the addresses, written once the broker listens. */
int broker_write_connection_file(struct broker *b, char *err, size_t errlen);

#endif
