/* http.h: the HTTP endpoint (-w PORT MAXCONN URLPATH): publishing with
 * POST, /health, /metrics, and /api views of the admin commands. */
#ifndef MQ_HTTP_H
#define MQ_HTTP_H

#include <stddef.h>
#include <stdint.h>

struct broker;

/* Starts the server when cfg.http_port is set; 0 when not configured. */
int http_open(struct broker *b, char *err, size_t errlen);
void http_free(struct broker *b);
/* Also serves connections to another listening socket (the HTTP fuzz
 * target's Unix socket); the server owns it from here on. -1 without HTTP. */
int http_accept_on(struct broker *b, int listen_fd);

#endif
