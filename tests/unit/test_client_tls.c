/* test_client_tls.c: STOMP over TLS against a fake broker that speaks
 * TLS through libevent's bufferevent_openssl. A throwaway CA, a broker
 * certificate (localhost, 127.0.0.1), a client certificate (CN alice) and
 * an unrelated CA are made with the openssl command at test time. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <sys/stat.h>

#include <openssl/err.h>

#include "mqclient.h"
#include "test_client_fake.h"

static char dir[256];

static const char *path(const char *name)
{
	static char buf[8][512];
	static int next;
	char *p = buf[next++ % 8];
	snprintf(p, sizeof buf[0], "%s/%s", dir, name);
	return p;
}

#define EC "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"

static int make_certs(void **state)
{
	char cmd[8192];
	const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
	snprintf(dir, sizeof dir, "%s/mqclient-tls-XXXXXX", tmp);
	if (!mkdtemp(dir))
		return -1;
	snprintf(cmd, sizeof cmd,
	         "cd '%s' && {"
	         " openssl req -x509 " EC " -keyout ca.key -out ca.pem -days 2 -subj /CN=mq-test-ca"
	         "  -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign &&"
	         " openssl req -x509 " EC " -keyout other-ca.key -out other-ca.pem -days 2 -subj /CN=other-ca"
	         "  -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign &&"
	         " openssl req -new " EC " -keyout server.key -out server.csr -subj /CN=localhost &&"
	         " printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\\nextendedKeyUsage=serverAuth\\n' > server.ext &&"
	         " openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2"
	         "  -out server.crt -extfile server.ext &&"
	         " openssl req -new " EC " -keyout client.key -out client.csr -subj /CN=alice &&"
	         " printf 'extendedKeyUsage=clientAuth\\n' > client.ext &&"
	         " openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2"
	         "  -out client.crt -extfile client.ext &&"
	         " cat server.crt server.key > server.pem &&"
	         " cat client.crt client.key > client.pem &&"
	         " cat client.crt server.key > mismatched.pem &&"
	         " echo 'not a certificate' > garbage.pem; } >/dev/null 2>&1",
	         dir);
	if (system(cmd) != 0) {
		fprintf(stderr, "openssl could not make the test certificates in %s\n", dir);
		return -1;
	}
	return 0;
}

static int remove_certs(void **state)
{
	char cmd[sizeof dir + 16];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

struct tls_fx {
	SSL_CTX *server_ctx;
};

static SSL_CTX *server_ctx(bool require_client_cert)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	assert_non_null(ctx);
	assert_int_equal(SSL_CTX_use_certificate_chain_file(ctx, path("server.pem")), 1);
	assert_int_equal(SSL_CTX_use_PrivateKey_file(ctx, path("server.pem"), SSL_FILETYPE_PEM), 1);
	assert_int_equal(SSL_CTX_load_verify_locations(ctx, path("ca.pem"), NULL), 1);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | (require_client_cert ? SSL_VERIFY_FAIL_IF_NO_PEER_CERT : 0), NULL);
	return ctx;
}

/* The fixture's plain fake is replaced by a TLS one. */
static int setup_with(void **state, bool require_client_cert)
{
	struct fx *x;
	fx_setup(state);
	x = *state;
	fake_free(x->fake);
	x->data = server_ctx(require_client_cert);
	x->fake = fake_new(x->base, x->data);
	x->o.port = x->fake->port;
	x->o.tls = true;
	return 0;
}

static int setup(void **state) { return setup_with(state, false); }
static int setup_require_cert(void **state) { return setup_with(state, true); }

static int teardown(void **state)
{
	struct fx *x = *state;
	SSL_CTX *ctx = x->data;
	fx_teardown(state);
	SSL_CTX_free(ctx);
	unsetenv("MQ_CLIENT_CERT_KEY");
	unsetenv("MQ_CLIENT_CA_CHAIN");
	unsetenv("MQ_CLIENT_SERVER_NAME");
	unsetenv("PDG_MQ_CLIENT_CERT_KEY");
	unsetenv("PDG_MQ_CLIENT_CA_CHAIN");
	unsetenv("PDG_MQ_CLIENT_SERVER_NAME");
	return 0;
}

/* Starts the session and expects CONNECT_FAILED; returns its text. */
static const char *expect_connect_failed(struct fx *x)
{
	struct rec_event *e;
	x->s = mq_session_new(x->base, &x->o);
	assert_int_equal(mq_session_start(x->s), 0);
	e = rec_wait_event(x->base, &x->rec, 1);
	if (e->type != MQ_EVENT_CONNECT_FAILED)
		fail_msg("expected CONNECT_FAILED, got event %d: %s", e->type, e->text);
	assert_false(e->requested);
	return e->text;
}

static void test_tls_verified_broker_and_client_certificate(void **state)
{
	/* The broker's certificate verifies against the CA and matches the
	 * server name; the client presents its certificate (the broker sees
	 * CN alice); frames then flow as over TCP. */
	struct fx *x = *state;
	struct mq_queue *q;
	x->o.tls_ca_chain = path("ca.pem");
	x->o.tls_cert_key = path("client.pem");
	x->o.tls_server_name = "localhost";
	fx_connect(x, CONNECTED_12);
	assert_true(x->fake->handshake_done);
	assert_string_equal(x->fake->peer_cn, "alice");
	q = mq_open(x->s, "/queue/tls", MQ_WRITE, NULL);
	assert_int_equal(mq_post(q, "secret", 6, NULL, 0, 0, rec_ack_cb, &x->rec), 0);
	fake_expect(x->fake, "SEND\ndestination:/queue/tls\nreceipt:1\ncontent-length:6\n\nsecret");
	fake_send(x->fake, "RECEIPT\nreceipt-id:1\n\n");
	assert_int_equal(rec_wait_ack(x->base, &x->rec, 1)->status, MQ_ACK_OK);
	mq_session_stop(x->s);
	fake_expect(x->fake, "DISCONNECT\nreceipt:2\n\n");
	fake_send(x->fake, "RECEIPT\nreceipt-id:2\n\n");
	assert_int_equal(rec_wait_event(x->base, &x->rec, 2)->type, MQ_EVENT_DISCONNECTED);
}

static void test_tls_ip_address_checked_against_certificate(void **state)
{
	/* Without a server name the host, an IP address here, is checked
	 * against the certificate's IP entries. No client certificate. */
	struct fx *x = *state;
	x->o.tls_ca_chain = path("ca.pem");
	fx_connect(x, CONNECTED_12);
	assert_string_equal(x->fake->peer_cn, "");
}

static void test_tls_wrong_ca_refused(void **state)
{
	/* A broker certificate from another CA fails the handshake, and the
	 * text says why. */
	struct fx *x = *state;
	char want[128];
	x->o.tls_ca_chain = path("other-ca.pem");
	x->o.tls_server_name = "localhost";
	snprintf(want, sizeof want, "TLS handshake with 127.0.0.1:%u failed: certificate verify failed", x->o.port);
	assert_contains(expect_connect_failed(x), want);
	/* The fake broker sends its CA along (OpenSSL builds the chain from
	 * its store), so the reason is the unknown self-signed root. */
	assert_contains(x->rec.ev[0].text, "(self-signed certificate in certificate chain)");
}

static void test_tls_server_name_mismatch_refused(void **state)
{
	/* A valid certificate for another name is refused. */
	struct fx *x = *state;
	x->o.tls_ca_chain = path("ca.pem");
	x->o.tls_server_name = "broker.example.com";
	assert_contains(expect_connect_failed(x), "hostname mismatch");
}

static void test_tls_without_ca_chain_not_verified(void **state)
{
	/* Documented: with no CA chain the broker is not authenticated, so an
	 * unknown CA and a wrong name still connect (encrypted). */
	struct fx *x = *state;
	x->o.tls_server_name = "broker.example.com";
	fx_connect(x, CONNECTED_12);
	assert_true(x->fake->handshake_done);
}

static void test_tls_client_certificate_required(void **state)
{
	/* A broker that requires a client certificate refuses a client
	 * without one: CONNECT_FAILED naming the TLS alert. */
	struct fx *x = *state;
	x->o.tls_ca_chain = path("ca.pem");
	assert_contains(expect_connect_failed(x), "certificate required");
	assert_int_equal(mq_session_state(x->s), MQ_SESSION_IDLE);
}

static void test_tls_client_certificate_required_and_given(void **state)
{
	struct fx *x = *state;
	x->o.tls_ca_chain = path("ca.pem");
	x->o.tls_cert_key = path("client.pem");
	fx_connect(x, CONNECTED_12);
	assert_string_equal(x->fake->peer_cn, "alice");
}

static void test_tls_from_environment(void **state)
{
	/* tls_env: MQ_CLIENT_* fill the options and turn TLS on. */
	struct fx *x = *state;
	x->o.tls = false;
	x->o.tls_env = true;
	setenv("MQ_CLIENT_CERT_KEY", path("client.pem"), 1);
	setenv("MQ_CLIENT_CA_CHAIN", path("ca.pem"), 1);
	setenv("MQ_CLIENT_SERVER_NAME", "localhost", 1);
	fx_connect(x, CONNECTED_12);
	assert_string_equal(x->fake->peer_cn, "alice");
}

static void test_tls_from_pdg_environment(void **state)
{
	/* The PDG_ twins work alone; MQ_CLIENT_* wins over them. */
	struct fx *x = *state;
	x->o.tls = false;
	x->o.tls_env = true;
	setenv("PDG_MQ_CLIENT_CERT_KEY", path("client.pem"), 1);
	setenv("PDG_MQ_CLIENT_CA_CHAIN", path("other-ca.pem"), 1);
	setenv("PDG_MQ_CLIENT_SERVER_NAME", "localhost", 1);
	setenv("MQ_CLIENT_CA_CHAIN", path("ca.pem"), 1);
	fx_connect(x, CONNECTED_12);
	assert_string_equal(x->fake->peer_cn, "alice");
}

static void test_tls_pdg_environment_alone(void **state)
{
	/* Only the PDG_ names set, with the wrong CA: they are used (and so
	 * the handshake fails). */
	struct fx *x = *state;
	x->o.tls = false;
	x->o.tls_env = true;
	setenv("PDG_MQ_CLIENT_CA_CHAIN", path("other-ca.pem"), 1);
	setenv("PDG_MQ_CLIENT_SERVER_NAME", "localhost", 1);
	assert_contains(expect_connect_failed(x), "certificate verify failed");
}

static void test_tls_options_beat_environment(void **state)
{
	/* An option the caller set is not overridden by the environment. */
	struct fx *x = *state;
	x->o.tls_env = true;
	x->o.tls_ca_chain = path("other-ca.pem");
	setenv("MQ_CLIENT_CA_CHAIN", path("ca.pem"), 1);
	setenv("MQ_CLIENT_SERVER_NAME", "localhost", 1);
	assert_contains(expect_connect_failed(x), "certificate verify failed");
}

static void test_tls_env_unset_stays_plain(void **state)
{
	/* tls_env with none of the variables set: plain TCP. */
	struct fx *x = *state;
	fake_free(x->fake);
	x->fake = fake_new(x->base, NULL);
	x->o.port = x->fake->port;
	x->o.tls = false;
	x->o.tls_env = true;
	fx_connect(x, CONNECTED_12);
}

static void test_tls_bad_files_named(void **state)
{
	/* Certificate, key and CA problems stop mq_session_start with the
	 * file's name and OpenSSL's reason. */
	static const struct {
		const char *cert, *ca;
		const char *want1, *want2;
	} cases[] = {
		{ "/nonexistent/client.pem", NULL,
		  "cannot load the client certificate from /nonexistent/client.pem", "No such file or directory" },
		{ "garbage.pem", NULL, "cannot load the client certificate from ", "no start line" },
		{ "mismatched.pem", NULL, "cannot load the client private key from ", "key values mismatch" },
		{ NULL, "/nonexistent/ca.pem", "cannot load the CA chain /nonexistent/ca.pem", "No such file or directory" },
		{ NULL, "garbage.pem", "cannot load the CA chain ", "no certificate or crl found" },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct fx *x;
		setup(state);
		x = *state;
		x->o.tls_cert_key = cases[i].cert && cases[i].cert[0] != '/' ? path(cases[i].cert) : cases[i].cert;
		x->o.tls_ca_chain = cases[i].ca && cases[i].ca[0] != '/' ? path(cases[i].ca) : cases[i].ca;
		x->s = mq_session_new(x->base, &x->o);
		assert_int_equal(mq_session_start(x->s), -1);
		assert_contains(mq_session_error(x->s), cases[i].want1);
		assert_contains(mq_session_error(x->s), cases[i].want2);
		assert_int_equal(mq_session_state(x->s), MQ_SESSION_IDLE);
		assert_int_equal(ERR_peek_error(), 0);
		teardown(state);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_tls_verified_broker_and_client_certificate, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tls_ip_address_checked_against_certificate, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tls_wrong_ca_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tls_server_name_mismatch_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tls_without_ca_chain_not_verified, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tls_client_certificate_required, setup_require_cert, teardown),
		cmocka_unit_test_setup_teardown(test_tls_client_certificate_required_and_given, setup_require_cert, teardown),
		cmocka_unit_test_setup_teardown(test_tls_from_environment, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tls_from_pdg_environment, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tls_pdg_environment_alone, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tls_options_beat_environment, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tls_env_unset_stays_plain, setup, teardown),
		cmocka_unit_test(test_tls_bad_files_named),
	};
	return cmocka_run_group_tests(tests, make_certs, remove_certs);
}
