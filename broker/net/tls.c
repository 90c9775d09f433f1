/* tls.c: the server's TLS context, client certificate checks, the CN as login. */
#include "net/tls.h"

#include <errno.h>
#include <glob.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>

#include "core/broker.h"
#include "config/config.h"
#include "common/log.h"
#include "common/util.h"

struct tls_ctx {
	SSL_CTX *ctx;
	bool verify_clients;
};

/* OpenSSL keeps errors in a queue: drain it into one line. */
static void ssl_reason(char *buf, size_t len)
{
	unsigned long e;
	size_t n = 0;
	buf[0] = 0;
	while ((e = ERR_get_error()) && n + 2 < len) {
		char one[256];
		ERR_error_string_n(e, one, sizeof one);
		n += (size_t)snprintf(buf + n, len - n, "%s%s", n ? "; " : "", one);
	}
	if (!buf[0])
		snprintf(buf, len, "unknown OpenSSL error");
}

int tls_expand_ca_list(const char *list, char sep, char ***files, size_t *n, char *err, size_t errlen)
{
	char *copy = xstrdup(list), *save = NULL, seps[2] = { sep, 0 };
	*files = NULL;
	*n = 0;
	for (char *tok = strtok_r(copy, seps, &save); tok; tok = strtok_r(NULL, seps, &save)) {
		glob_t g;
		/* A plain name is checked as a file, so the error says why. */
		int flags = strpbrk(tok, "*?[") ? 0 : GLOB_NOCHECK;
		if (!*tok)
			continue;
		if (glob(tok, flags, NULL, &g) != 0 || g.gl_pathc == 0) {
			snprintf(err, errlen, "CA chain pattern '%s' matches no file", tok);
			globfree(&g);
			free(copy);
			return -1;
		}
		for (size_t i = 0; i < g.gl_pathc; i++) {
			if (access(g.gl_pathv[i], R_OK) != 0) {
				snprintf(err, errlen, "cannot read CA chain %s: %s", g.gl_pathv[i], strerror(errno));
				globfree(&g);
				free(copy);
				return -1;
			}
			*files = xrealloc(*files, (*n + 1) * sizeof **files);
			(*files)[(*n)++] = xstrdup(g.gl_pathv[i]);
		}
		globfree(&g);
	}
	free(copy);
	return 0;
}

struct tls_ctx *tls_ctx_new(const struct config *cfg, char *err, size_t errlen)
{
	struct tls_ctx *t;
	SSL_CTX *ctx;
	char why[512];
	const char *pem = cfg->tls_cert_key;

	if (!pem || !*pem) {
		snprintf(err, errlen, "no TLS certificate and key file given (-k)");
		return NULL;
	}
	if (access(pem, R_OK) != 0) {
		snprintf(err, errlen, "cannot read TLS certificate and key %s: %s", pem, strerror(errno));
		return NULL;
	}
	ctx = SSL_CTX_new(TLS_server_method());
	if (!ctx) {
		ssl_reason(why, sizeof why);
		snprintf(err, errlen, "cannot create a TLS context: %s", why);
		return NULL;
	}
	/* TLS 1.2 and 1.3 only, with OpenSSL's secure default suites minus
	 * anything without forward secrecy or authenticated encryption. */
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_cipher_list(ctx, "ECDHE+AESGCM:ECDHE+CHACHA20:DHE+AESGCM:!aNULL:!eNULL:!MD5:!RC4:!3DES");
	SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_CIPHER_SERVER_PREFERENCE);
	if (SSL_CTX_use_certificate_chain_file(ctx, pem) != 1) {
		ssl_reason(why, sizeof why);
		snprintf(err, errlen, "cannot load the certificate from %s: %s", pem, why);
		goto fail;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, pem, SSL_FILETYPE_PEM) != 1) {
		ssl_reason(why, sizeof why);
		if (strstr(why, "key values mismatch"))
			snprintf(err, errlen, "the private key in %s does not match its certificate: %s", pem, why);
		else
			snprintf(err, errlen, "cannot load the private key from %s: %s", pem, why);
		goto fail;
	}
	if (SSL_CTX_check_private_key(ctx) != 1) {
		ssl_reason(why, sizeof why);
		snprintf(err, errlen, "the private key in %s does not match its certificate: %s", pem, why);
		goto fail;
	}
	t = xcalloc(1, sizeof *t);
	t->ctx = ctx;
	if (cfg->nca_chains) {
		for (size_t i = 0; i < cfg->nca_chains; i++) {
			if (SSL_CTX_load_verify_locations(ctx, cfg->ca_chains[i], NULL) != 1) {
				ssl_reason(why, sizeof why);
				snprintf(err, errlen, "cannot load CA chain %s: %s", cfg->ca_chains[i], why);
				SSL_CTX_free(ctx);
				free(t);
				return NULL;
			}
		}
		/* -a: a client without a certificate these CAs vouch for is
		 * refused during the handshake. */
		SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
		SSL_CTX_set_verify_depth(ctx, 8);
		t->verify_clients = true;
	}
	return t;
fail:
	SSL_CTX_free(ctx);
	return NULL;
}

void tls_ctx_free(struct tls_ctx *t)
{
	if (!t)
		return;
	SSL_CTX_free(t->ctx);
	free(t);
}

struct bufferevent *tls_accept_bev(struct broker *b, evutil_socket_t fd)
{
	SSL *ssl = SSL_new(b->tls->ctx);
	struct bufferevent *bev;
	if (!ssl)
		return NULL;
	/* Deferred callbacks: an SSL write may need a read and vice versa,
	 * and our handlers must never be entered from inside each other. */
	bev = bufferevent_openssl_socket_new(b->base, fd, ssl, BUFFEREVENT_SSL_ACCEPTING,
	                                     BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
	if (!bev)
		SSL_free(ssl);
	else
		bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
	return bev;
}

bool tls_peer_cn(struct bufferevent *bev, char *cn, size_t len)
{
	SSL *ssl = bufferevent_openssl_get_ssl(bev);
	X509 *cert;
	X509_NAME *subject;
	int n;
	if (!ssl || SSL_get_verify_result(ssl) != X509_V_OK)
		return false;
	cert = SSL_get1_peer_certificate(ssl);
	if (!cert)
		return false;
	subject = X509_get_subject_name(cert);
	n = subject ? X509_NAME_get_text_by_NID(subject, NID_commonName, cn, (int)len) : -1;
	X509_free(cert);
	return n > 0;
}
