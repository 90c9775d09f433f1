/* tls.c: the client's side of STOMP over TLS: one SSL_CTX per session
 * (TLS 1.2 or newer, a client certificate when given, the broker verified
 * against a CA chain when given), one SSL per connection with SNI and the
 * name check, and the environment variables of issue 7. */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "client_int.h"
#include "common/util.h"

/* The first error on OpenSSL's queue is the cause; the ones after it are
 * the layers that passed it up. Empties the queue. */
static const char *ssl_reason(char *buf, size_t len)
{
	unsigned long first = ERR_get_error();
	const char *r;
	while (ERR_get_error())
		;
	if (!first)
		return "unknown OpenSSL error";
	r = ERR_reason_error_string(first);
	if (r)
		snprintf(buf, len, "%s", r);
	else
		ERR_error_string_n(first, buf, len);
	return buf;
}

struct ssl_ctx_st *client_tls_ctx(struct mq_session *s)
{
	SSL_CTX *ctx;
	char why[256];

	ERR_clear_error();
	ctx = SSL_CTX_new(TLS_client_method());
	if (!ctx) {
		client_set_err(s, "cannot create a TLS context: %s", ssl_reason(why, sizeof why));
		return NULL;
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	if (s->tls_cert_key) {
		if (SSL_CTX_use_certificate_chain_file(ctx, s->tls_cert_key) != 1) {
			client_set_err(s, "cannot load the client certificate from %s: %s", s->tls_cert_key,
			               ssl_reason(why, sizeof why));
			goto fail;
		}
		if (SSL_CTX_use_PrivateKey_file(ctx, s->tls_cert_key, SSL_FILETYPE_PEM) != 1) {
			client_set_err(s, "cannot load the client private key from %s: %s", s->tls_cert_key,
			               ssl_reason(why, sizeof why));
			goto fail;
		}
		if (SSL_CTX_check_private_key(ctx) != 1) {
			client_set_err(s, "the private key in %s does not match its certificate: %s",
			               s->tls_cert_key, ssl_reason(why, sizeof why));
			goto fail;
		}
	}
	if (s->tls_ca_chain) {
		if (SSL_CTX_load_verify_locations(ctx, s->tls_ca_chain, NULL) != 1) {
			client_set_err(s, "cannot load the CA chain %s: %s", s->tls_ca_chain,
			               ssl_reason(why, sizeof why));
			goto fail;
		}
		SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	} else {
		/* Documented: without a CA chain the broker is not authenticated. */
		SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	}
	return ctx;
fail:
	SSL_CTX_free(ctx);
	return NULL;
}

static bool is_ip(const char *name)
{
	unsigned char buf[16];
	return inet_pton(AF_INET, name, buf) == 1 || inet_pton(AF_INET6, name, buf) == 1;
}

struct ssl_st *client_tls_ssl(struct mq_session *s)
{
	const char *name = s->tls_server_name ? s->tls_server_name : s->host;
	char why[256];
	SSL *ssl;
	int ok = 1;

	ERR_clear_error();
	ssl = SSL_new(s->ssl_ctx);
	if (!ssl) {
		client_set_err(s, "cannot create a TLS connection to %s: %s", s->addr, ssl_reason(why, sizeof why));
		return NULL;
	}
	/* SNI carries host names only (RFC 6066); an address is checked
	 * against the certificate's IP entries instead. */
	if (!is_ip(name))
		ok = SSL_set_tlsext_host_name(ssl, name) == 1;
	if (ok && s->tls_ca_chain) {
		if (is_ip(name)) {
			ok = X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), name) == 1;
		} else {
			SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
			ok = SSL_set1_host(ssl, name) == 1;
		}
	}
	if (!ok) {
		client_set_err(s, "invalid TLS server name '%s': %s", name, ssl_reason(why, sizeof why));
		SSL_free(ssl);
		return NULL;
	}
	return ssl;
}

bool client_tls_describe(struct mq_session *s, struct bufferevent *bev, char *buf, size_t len)
{
	SSL *ssl = bufferevent_openssl_get_ssl(bev);
	long vr = ssl ? SSL_get_verify_result(ssl) : X509_V_OK;
	unsigned long e, first = 0;
	const char *reason = NULL;
	char tmp[256];

	while ((e = bufferevent_get_openssl_error(bev)))
		if (!first)
			first = e;
	ERR_clear_error();
	if (!first && vr == X509_V_OK)
		return false;
	if (first) {
		reason = ERR_reason_error_string(first);
		if (!reason) {
			ERR_error_string_n(first, tmp, sizeof tmp);
			reason = tmp;
		}
	}
	if (vr != X509_V_OK)
		snprintf(buf, len, "%s (%s)", reason ? reason : "certificate verify failed",
		         X509_verify_cert_error_string(vr));
	else
		snprintf(buf, len, "%s", reason);
	return true;
}

/* MQ_CLIENT_X, else PDG_MQ_CLIENT_X; empty counts as unset. */
static const char *env2(const char *name)
{
	char pdg[64];
	const char *v = getenv(name);
	if (v && *v)
		return v;
	snprintf(pdg, sizeof pdg, "PDG_%s", name);
	v = getenv(pdg);
	return v && *v ? v : NULL;
}

void client_tls_env(struct mq_session *s)
{
	const char *cert = env2("MQ_CLIENT_CERT_KEY");
	const char *ca = env2("MQ_CLIENT_CA_CHAIN");
	const char *name = env2("MQ_CLIENT_SERVER_NAME");

	if (!s->tls_cert_key && cert)
		s->tls_cert_key = xstrdup(cert);
	if (!s->tls_ca_chain && ca)
		s->tls_ca_chain = xstrdup(ca);
	if (!s->tls_server_name && name)
		s->tls_server_name = xstrdup(name);
	if (cert || ca || name)
		s->tls = true;
}
