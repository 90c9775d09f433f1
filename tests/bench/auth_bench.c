/* auth_bench: the costs behind authentication, measured.
 *
 *   auth_bench pbkdf2 [ITERATIONS]   microseconds per verification
 *   auth_bench check                 microseconds per login answered from the cache
 *   auth_bench may                   nanoseconds per userdb_may() (every SEND pays one)
 *   auth_bench storm [SECONDS] [cold]
 *                                    another client's round trips through the
 *                                    loop, idle and during 2,000 logins/s (by
 *                                    clients verified once before, or with
 *                                    cold, by 20 never seen)
 *
 * Build Release (no sanitizer) before quoting a figure; docs/security.md
 * has the ones from our machine. The storm: a thread plays another
 * client, sending one byte every millisecond over a socketpair that the
 * loop echoes, and records each round trip; meanwhile a loop timer starts
 * two password checks every millisecond, cycling through 20 logins with
 * valid passwords, through a real verifier (one worker thread). */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>

#include "common/passwd.h"
#include "auth/userdb.h"
#include "auth/verifier.h"
#include "common/log.h"
#include "common/util.h"

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static uint64_t pct(uint64_t *v, size_t n, double p)
{
	if (!n)
		return 0;
	qsort(v, n, sizeof *v, cmp_u64);
	return v[(size_t)((double)(n - 1) * p)];
}

/* ---- pbkdf2 ---- */

static int bench_pbkdf2(unsigned iterations)
{
	char h[PASSWD_HASH_MAX], err[256];
	uint64_t t[7];
	if (passwd_hash("correct horse", 13, iterations, h, sizeof h, err, sizeof err) < 0) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	for (int i = 0; i < 7; i++) {
		uint64_t t0 = mono_us();
		if (passwd_verify(h, "correct horse", 13, err, sizeof err) != PASSWD_MATCH) {
			fprintf(stderr, "verification failed: %s\n", err);
			return 1;
		}
		t[i] = mono_us() - t0;
	}
	qsort(t, 7, sizeof *t, cmp_u64);
	printf("pbkdf2-sha512 i=%u: median %llu us per verification (min %llu, max %llu): "
	       "%.1f per second per core\n", iterations, (unsigned long long)t[3], (unsigned long long)t[0],
	       (unsigned long long)t[6], 1e6 / (double)t[3]);
	return 0;
}

/* ---- check: a login answered from the cache ---- */

static void on_first(enum verify_status st, void *arg)
{
	*(enum verify_status *)arg = st;
}

static int bench_check(void)
{
	struct event_base *base = event_base_new();
	char err[256], h[PASSWD_HASH_MAX];
	struct verifier *v = verifier_new(base, NULL, err, sizeof err);
	enum verify_status first = VERIFY_PENDING;
	struct verify_req *r;
	const int n = 200000;
	int ok = 0;
	uint64_t t0;

	if (!v || passwd_hash("secret", 6, 0, h, sizeof h, err, sizeof err) < 0) {
		fprintf(stderr, "set-up failed: %s\n", err);
		return 1;
	}
	verifier_check(v, "agent", "secret", h, on_first, &first, &r);
	while (first == VERIFY_PENDING)
		event_base_loop(base, EVLOOP_ONCE);
	t0 = mono_us();
	for (int i = 0; i < n; i++)
		ok += verifier_check(v, "agent", "secret", h, on_first, &first, &r) == VERIFY_OK;
	printf("verifier_check answered from the cache: %.2f us per login (%d of %d)\n",
	       (double)(mono_us() - t0) / n, ok, n);
	verifier_free(v);
	event_base_free(base);
	return ok == n ? 0 : 1;
}

/* ---- may ---- */

static int bench_may(void)
{
	char dir[] = "/tmp/auth_bench.XXXXXX", err[512], name[64], path[128];
	char h[PASSWD_HASH_MAX];
	struct userdb *db;
	static const struct {
		const char *what, *user, *vhost, *dest;
		enum userdb_action action;
	} cases[] = {
		{ "grant .* (no match run)", "u0", "vo0", "/queue/vo0.jobs", USERDB_CONSUME },
		{ "literal grant", "u1", "vo1", "/queue/status", USERDB_CONFIGURE },
		{ "regex grant, allowed", "u2", "vo2", "/queue/vo2.jobs.high", USERDB_SEND },
		{ "regex grant, refused", "u3", "vo3", "/queue/other.jobs", USERDB_SEND },
		{ "empty grant", "u4", "vo4", "/queue/vo4.jobs", USERDB_CONFIGURE },
		{ "no permissions on the vhost", "u5", "vo9", "/queue/x", USERDB_SEND },
	};

	if (!mkdtemp(dir) || passwd_hash("pw", 2, 1000, h, sizeof h, err, sizeof err) < 0) {
		fprintf(stderr, "set-up failed\n");
		return 1;
	}
	if (!(db = userdb_open(dir, NULL, err, sizeof err))) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	/* 1,000 users over 10 virtual hosts, a DIRAC-like site; each change
	 * writes the store, so this takes a moment */
	for (int v = 0; v < 10; v++) {
		snprintf(name, sizeof name, "vo%d", v);
		userdb_vhost_add(db, name, err, sizeof err);
	}
	for (int u = 0; u < 1000; u++) {
		char vo[16], send[64], consume[64];
		snprintf(name, sizeof name, "u%d", u);
		snprintf(vo, sizeof vo, "vo%d", u % 10);
		snprintf(send, sizeof send, "/queue/%s\\.jobs(\\..*)?", vo);
		snprintf(consume, sizeof consume, u % 10 == 0 ? ".*" : "/queue/%s\\..*", vo);
		if (userdb_user_add(db, name, h, false, err, sizeof err) < 0 ||
		    userdb_permit(db, name, vo, u % 10 == 1 ? "/queue/status" : "", send, consume, err, sizeof err) < 0) {
			fprintf(stderr, "%s\n", err);
			return 1;
		}
	}
	for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
		const int n = 1000000;
		volatile int allowed = 0;
		uint64_t t0 = mono_us(), dt;
		for (int i = 0; i < n; i++)
			allowed += userdb_may(db, cases[c].user, cases[c].vhost, cases[c].action, cases[c].dest) ==
			           USERDB_ALLOW;
		dt = mono_us() - t0;
		printf("userdb_may, %-28s %6.0f ns per call (%s)\n", cases[c].what, (double)dt * 1000.0 / n,
		       allowed ? "allowed" : "refused");
	}
	userdb_free(db);
	snprintf(path, sizeof path, "%s/users.json", dir);
	unlink(path);
	rmdir(dir);
	return 0;
}

/* ---- storm ---- */

#define LOGINS 20

struct storm {
	struct event_base *base;
	struct verifier *v;
	int echo_fd, client_fd;
	char hashes[LOGINS][PASSWD_HASH_MAX];
	bool storming;
	uint64_t storm_start_us;	/* checks are started to keep up 2 per ms from here */
	uint64_t check_us;		/* time the loop spent in verifier_check() */
	uint64_t started, answered, refused, immediate;
	unsigned next;
	/* the other client's round trips, in microseconds */
	uint64_t *rtt;
	size_t nrtt, caprtt;
	pthread_mutex_t lock;
	volatile bool stop;
};

static void on_echo(evutil_socket_t fd, short what, void *arg)
{
	char buf[64];
	ssize_t n = read(fd, buf, sizeof buf);
	(void)what;
	(void)arg;
	if (n > 0 && write(fd, buf, (size_t)n) != n)
		perror("echo");
}

static void on_verified(enum verify_status st, void *arg)
{
	struct storm *s = arg;
	s->answered++;
	if (st != VERIFY_OK)
		fprintf(stderr, "a valid login was refused: %s\n", verify_status_name(st));
}

static void on_login_tick(evutil_socket_t fd, short what, void *arg)
{
	struct storm *s = arg;
	(void)fd;
	(void)what;
	if (!s->storming)
		return;
	/* catch up when a tick came late: the rate is 2,000 a second */
	while (s->started < (mono_us() - s->storm_start_us) / 500) {
		unsigned k = s->next++ % LOGINS;
		char login[16], pw[16];
		struct verify_req *r;
		snprintf(login, sizeof login, "agent%u", k);
		snprintf(pw, sizeof pw, "secret%u", k);
		uint64_t t0 = mono_us();
		enum verify_status st = verifier_check(s->v, login, pw, s->hashes[k], on_verified, s, &r);
		s->check_us += mono_us() - t0;
		s->started++;
		switch (st) {
		case VERIFY_OK: s->immediate++; s->answered++; break;
		case VERIFY_PENDING: break;
		default: s->refused++; s->answered++; break;
		}
	}
}

static void *client(void *arg)
{
	struct storm *s = arg;
	char c = 'x';
	while (!s->stop) {
		uint64_t t0 = mono_us(), dt;
		if (write(s->client_fd, &c, 1) != 1 || read(s->client_fd, &c, 1) != 1)
			break;
		dt = mono_us() - t0;
		pthread_mutex_lock(&s->lock);
		if (s->nrtt < s->caprtt)
			s->rtt[s->nrtt++] = dt;
		pthread_mutex_unlock(&s->lock);
		usleep(1000);
	}
	return NULL;
}

static void run_for(struct storm *s, unsigned ms)
{
	uint64_t end = mono_ms() + ms;
	while (mono_ms() < end)
		event_base_loop(s->base, EVLOOP_ONCE);
}

static void take_rtt(struct storm *s, uint64_t *p50, uint64_t *p99, uint64_t *max, size_t *n)
{
	pthread_mutex_lock(&s->lock);
	*n = s->nrtt;
	*p50 = pct(s->rtt, s->nrtt, 0.50);
	*p99 = pct(s->rtt, s->nrtt, 0.99);
	*max = pct(s->rtt, s->nrtt, 1.0);
	s->nrtt = 0;
	pthread_mutex_unlock(&s->lock);
}

static int bench_storm(unsigned seconds, bool cold)
{
	struct storm s = { 0 };
	int sv[2];
	char err[256];
	pthread_t th;
	struct event *echo, *tick;
	struct timeval one_ms = { 0, 1000 };
	struct verifier_stats st;
	uint64_t ip50, ip99, imax, sp50, sp99, smax;
	size_t in, sn;

	for (unsigned k = 0; k < LOGINS; k++) {
		char pw[16];
		snprintf(pw, sizeof pw, "secret%u", k);
		if (passwd_hash(pw, strlen(pw), 0, s.hashes[k], PASSWD_HASH_MAX, err, sizeof err) < 0) {
			fprintf(stderr, "%s\n", err);
			return 1;
		}
	}
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0) {
		perror("socketpair");
		return 1;
	}
	s.echo_fd = sv[0];
	s.client_fd = sv[1];
	s.caprtt = 1 << 20;
	s.rtt = xcalloc(s.caprtt, sizeof *s.rtt);
	pthread_mutex_init(&s.lock, NULL);
	s.base = event_base_new();
	if (!(s.v = verifier_new(s.base, NULL, err, sizeof err))) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	echo = event_new(s.base, s.echo_fd, EV_READ | EV_PERSIST, on_echo, &s);
	tick = event_new(s.base, -1, EV_PERSIST, on_login_tick, &s);
	event_add(echo, NULL);
	event_add(tick, &one_ms);
	pthread_create(&th, NULL, client, &s);

	if (!cold) {
		/* the clients of a reconnect storm logged in before: one
		 * verification each, done before the measurement */
		uint64_t t0 = mono_ms();
		s.storming = true;
		s.storm_start_us = mono_us();
		while (s.started < LOGINS)
			event_base_loop(s.base, EVLOOP_ONCE);
		s.storming = false;
		while (s.answered < s.started)
			event_base_loop(s.base, EVLOOP_ONCE);
		printf("warm-up: %d logins verified in %llu ms\n", LOGINS, (unsigned long long)(mono_ms() - t0));
		s.started = s.answered = s.immediate = 0;
		take_rtt(&s, &ip50, &ip99, &imax, &in);	/* drop what the warm-up saw */
	}
	run_for(&s, seconds * 1000);
	take_rtt(&s, &ip50, &ip99, &imax, &in);
	s.storm_start_us = mono_us();
	s.storming = !getenv("AUTH_BENCH_CONTROL");	/* control: measure idle twice */
	run_for(&s, seconds * 1000);
	s.storming = false;
	take_rtt(&s, &sp50, &sp99, &smax, &sn);
	while (s.answered < s.started)
		event_base_loop(s.base, EVLOOP_ONCE);
	s.stop = true;
	pthread_join(th, NULL);
	verifier_get_stats(s.v, &st);

	printf("idle:  %zu round trips, p50 %llu us, p99 %llu us, max %llu us\n", in, (unsigned long long)ip50,
	       (unsigned long long)ip99, (unsigned long long)imax);
	printf("storm: %zu round trips, p50 %llu us, p99 %llu us, max %llu us (p99 %.2fx idle)\n", sn,
	       (unsigned long long)sp50, (unsigned long long)sp99, (unsigned long long)smax,
	       ip99 ? (double)sp99 / (double)ip99 : 0.0);
	printf("logins: %llu checked (%.0f/s, %.1f us of loop time each), %llu answered at once from the cache, "
	       "%llu refused; %llu hashes computed, %llu joined one under way\n", (unsigned long long)s.started,
	       (double)s.started / seconds, s.started ? (double)s.check_us / (double)s.started : 0.0, (unsigned long long)s.immediate, (unsigned long long)s.refused,
	       (unsigned long long)st.computed, (unsigned long long)st.joined);

	event_free(echo);
	event_free(tick);
	verifier_free(s.v);
	event_base_free(s.base);
	close(sv[0]);
	close(sv[1]);
	free(s.rtt);
	return sp99 <= 2 * ip99 ? 0 : 3;
}

int main(int argc, char **argv)
{
	const char *what = argc > 1 ? argv[1] : "";
	log_set_level(LOG_ERROR);
	if (strcmp(what, "pbkdf2") == 0)
		return bench_pbkdf2(argc > 2 ? (unsigned)atoi(argv[2]) : PASSWD_ITERATIONS);
	if (strcmp(what, "check") == 0)
		return bench_check();
	if (strcmp(what, "may") == 0)
		return bench_may();
	if (strcmp(what, "storm") == 0) {
		bool cold = argc > 2 && strcmp(argv[argc - 1], "cold") == 0;
		return bench_storm(argc > 2 + cold ? (unsigned)atoi(argv[2]) : 5, cold);
	}
	fprintf(stderr, "usage: auth_bench pbkdf2 [ITERATIONS] | check | may | storm [SECONDS] [cold]\n");
	return 2;
}
