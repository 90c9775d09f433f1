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

#endif
