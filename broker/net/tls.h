/* tls.h: STOMP over TLS with OpenSSL: the server context, client
 * certificate verification, and the subject CN of a verified client, which
 * becomes the connection's login (DIRAC authenticates by certificate). */
#ifndef MQ_TLS_H
#define MQ_TLS_H

#include <stdbool.h>
#include <stddef.h>

#include <event2/util.h>

struct broker;
struct bufferevent;
struct config;
struct tls_ctx;

/* Builds the context from cfg->tls_cert_key (certificate and private key
 * in one PEM file) and cfg->ca_chains. NULL with a message naming the file
 * and OpenSSL's reason. */
struct tls_ctx *tls_ctx_new(const struct config *cfg, char *err, size_t errlen);
void tls_ctx_free(struct tls_ctx *t);
/* A server-side TLS bufferevent for an accepted socket; NULL on failure. */
struct bufferevent *tls_accept_bev(struct broker *b, evutil_socket_t fd);
/* The verified peer certificate's subject CN; false without one. */
bool tls_peer_cn(struct bufferevent *bev, char *cn, size_t len);

/* Expands a list of CA chain files, separated by commas (or colons, for
 * the environment variables), shell-style globs resolved, into files. -1 when a pattern matches nothing. */
int tls_expand_ca_list(const char *list, char sep, char ***files, size_t *n, char *err, size_t errlen);

#endif
