/* verifier.c: a verification cache in front of PBKDF2 workers.
 *
 * Threads: the workers see only the pending and done queues and the
 * fields of the job they hold, under `lock`; the loop owns everything
 * else (the cache, the in-flight index, the waiters of every job). A job
 * moves pending -> (a worker) -> done, and the loop frees it after
 * calling its waiters back. */
#include "auth/verifier.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/queue.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <event2/event.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/core_names.h>
#include <openssl/params.h>
#include <openssl/rand.h>

#include "common/passwd.h"
#include "common/hmap.h"
#include "common/log.h"
#include "common/util.h"

#define ID_LEN 32	/* HMAC-SHA256 */
#define WORKER_NICE 10	/* nice steps below the loop: about a tenth of its CPU weight */

enum job_kind { JOB_VERIFY, JOB_HASH };

struct verify_req {
	struct job *job;		/* borrowed: the job owns its waiters */
	verify_cb cb;
	verify_hash_cb hash_cb;
	void *arg;
	TAILQ_ENTRY(verify_req) link;
};
TAILQ_HEAD(req_list, verify_req);

struct job {
	enum job_kind kind;
	unsigned char id[ID_LEN];	/* verify: HMAC over login and password */
	char *login;			/* owned; verify */
	char *stored;			/* owned; verify: the hash checked against */
	char *password;			/* owned; wiped and freed by the worker */
	size_t pwlen;
	unsigned iterations;		/* hash */
	bool started;			/* under lock: a worker took it */
	bool indexed;			/* in v->inflight (loop only) */
	/* results, written by the worker before it moves the job to done */
	enum passwd_result result;
	char hash[PASSWD_HASH_MAX];
	char err[256];
	struct req_list waiters;	/* loop only */
	TAILQ_ENTRY(job) q;		/* pending or done, under lock */
};
TAILQ_HEAD(job_list, job);

struct centry {
	unsigned char id[ID_LEN];
	char *stored;			/* owned; the hash it was verified against */
	char *login;			/* owned; for verifier_forget */
	uint64_t used_ms;
	TAILQ_ENTRY(centry) lru;	/* most recently used first */
};
TAILQ_HEAD(centry_list, centry);

struct verifier {
	struct verifier_opts o;
	struct event_base *base;	/* borrowed */
	struct event *ev;		/* owned; the eventfd */
	int efd;
	EVP_MAC_CTX *mac;		/* owned; HMAC-SHA256 keyed for the cache, duplicated per use */

	struct u64map cache;		/* id prefix -> struct centry *, owned */
	struct centry_list lru;
	struct u64map inflight;		/* id prefix -> struct job * (verify jobs not yet done) */

	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct job_list pending;	/* under lock */
	struct job_list done;		/* under lock */
	size_t npending;		/* under lock */
	bool quit;			/* under lock */
	pthread_t *threads;		/* owned */
	unsigned nthreads;

	struct verifier_stats st;
};

const char *verify_status_name(enum verify_status s)
{
	switch (s) {
	case VERIFY_OK: return "ok";
	case VERIFY_WRONG: return "wrong";
	case VERIFY_PENDING: return "pending";
	case VERIFY_BUSY: return "busy";
	case VERIFY_ERROR: return "error";
	}
	return "?";
}

static uint64_t prefix(const unsigned char *id)
{
	uint64_t k;
	memcpy(&k, id, sizeof k);
	return k;
}

static uint64_t now_ms(const struct verifier *v)
{
	return v->o.clock_ms ? v->o.clock_ms() : mono_ms();
}

static void wipe_free(char *s, size_t len)
{
	if (s) {
		OPENSSL_cleanse(s, len);
		free(s);
	}
}

static void job_free(struct job *j)
{
	struct verify_req *r;
	if (!j)
		return;
	while ((r = TAILQ_FIRST(&j->waiters))) {
		TAILQ_REMOVE(&j->waiters, r, link);
		free(r);
	}
	wipe_free(j->password, j->pwlen);
	free(j->login);
	free(j->stored);
	free(j);
}

/* ---- workers ---- */

static void run_job(struct job *j)
{
	j->err[0] = 0;
	if (j->kind == JOB_VERIFY) {
		j->result = passwd_verify(j->stored, j->password, j->pwlen, j->err, sizeof j->err);
	} else if (passwd_hash(j->password, j->pwlen, j->iterations, j->hash, sizeof j->hash, j->err,
	                       sizeof j->err) < 0) {
		j->result = PASSWD_ERROR;
	} else {
		j->result = PASSWD_MATCH;
	}
	OPENSSL_cleanse(j->password, j->pwlen);
}

static void *worker(void *arg)
{
	struct verifier *v = arg;
	uint64_t one = 1;

	/* Hashing yields to the loop: when both want the CPU, the clients
	 * already in get theirs first, and a login waits a little longer.
	 * Linux takes a thread id here, so the rest of the process keeps its
	 * priority; lowering it needs no rights. */
	{
		id_t tid = (id_t)syscall(SYS_gettid);
		int nice;
		errno = 0;
		nice = getpriority(PRIO_PROCESS, tid);
		if (errno == 0 && setpriority(PRIO_PROCESS, tid, MIN(nice + WORKER_NICE, 19)) < 0)
			log_debug("verifier: cannot lower the worker's priority: %s", strerror(errno));
	}

	for (;;) {
		struct job *j;
		pthread_mutex_lock(&v->lock);
		while (!v->quit && TAILQ_EMPTY(&v->pending))
			pthread_cond_wait(&v->cond, &v->lock);
		if (v->quit) {
			pthread_mutex_unlock(&v->lock);
			return NULL;
		}
		j = TAILQ_FIRST(&v->pending);
		TAILQ_REMOVE(&v->pending, j, q);
		v->npending--;
		j->started = true;
		pthread_mutex_unlock(&v->lock);

		run_job(j);

		pthread_mutex_lock(&v->lock);
		TAILQ_INSERT_TAIL(&v->done, j, q);
		pthread_mutex_unlock(&v->lock);
		/* A full eventfd counter (2^64 - 2) cannot happen: the loop reads it. */
		if (write(v->efd, &one, sizeof one) < 0 && errno != EAGAIN)
			log_error_sys("verifier: cannot wake the event loop");
	}
}

/* ---- the cache (loop thread) ---- */

static void centry_drop(struct verifier *v, struct centry *e)
{
	u64map_del(&v->cache, prefix(e->id));
	TAILQ_REMOVE(&v->lru, e, lru);
	OPENSSL_cleanse(e->id, sizeof e->id);
	free(e->stored);
	free(e->login);
	free(e);
}

/* Drops what has been idle too long: the least recently used are last. */
static void cache_sweep(struct verifier *v, uint64_t now)
{
	struct centry *e;
	while ((e = TAILQ_LAST(&v->lru, centry_list)) && now - e->used_ms >= v->o.cache_idle_ms)
		centry_drop(v, e);
}

static void cache_put(struct verifier *v, const struct job *j)
{
	struct centry *e = u64map_get(&v->cache, prefix(j->id));
	uint64_t now = now_ms(v);

	if (e)
		centry_drop(v, e);	/* an older hash, or (2^-64) another login */
	while (v->cache.count >= v->o.cache_size)
		centry_drop(v, TAILQ_LAST(&v->lru, centry_list));
	e = xcalloc(1, sizeof *e);
	memcpy(e->id, j->id, ID_LEN);
	e->stored = xstrdup(j->stored);
	e->login = xstrdup(j->login);
	e->used_ms = now;
	TAILQ_INSERT_HEAD(&v->lru, e, lru);
	u64map_put(&v->cache, prefix(e->id), e);
}

/* ---- results back on the loop ---- */

static void finish(struct verifier *v, struct job *j)
{
	struct verify_req *r;
	enum verify_status st = VERIFY_ERROR;

	if (j->indexed) {
		u64map_del(&v->inflight, prefix(j->id));
		j->indexed = false;
	}
	if (j->kind == JOB_VERIFY) {
		v->st.computed++;
		if (j->result == PASSWD_MATCH) {
			cache_put(v, j);
			st = VERIFY_OK;
		} else if (j->result == PASSWD_MISMATCH) {
			v->st.wrong++;
			st = VERIFY_WRONG;
		} else {
			log_error("verifier: cannot check the password of '%s': %s", j->login, j->err);
		}
	}
	/* One waiter at a time off the head: a callback may cancel another
	 * waiter of this very job. */
	while ((r = TAILQ_FIRST(&j->waiters))) {
		TAILQ_REMOVE(&j->waiters, r, link);
		if (j->kind == JOB_VERIFY)
			r->cb(st, r->arg);
		else
			r->hash_cb(j->result == PASSWD_MATCH ? j->hash : NULL, j->err, r->arg);
		free(r);
	}
	job_free(j);
}

static void on_done(evutil_socket_t fd, short what, void *arg)
{
	struct verifier *v = arg;
	struct job_list done;
	struct job *j;
	uint64_t n;

	if (read(fd, &n, sizeof n) < 0 && errno != EAGAIN)
		log_error_sys("verifier: cannot read the eventfd");
	TAILQ_INIT(&done);
	pthread_mutex_lock(&v->lock);
	TAILQ_CONCAT(&done, &v->done, q);
	pthread_mutex_unlock(&v->lock);
	while ((j = TAILQ_FIRST(&done))) {
		TAILQ_REMOVE(&done, j, q);
		finish(v, j);
	}
}

/* ---- the API ---- */

struct verifier *verifier_new(struct event_base *base, const struct verifier_opts *opts, char *err,
                              size_t errlen)
{
	struct verifier *v = xcalloc(1, sizeof *v);

	if (opts)
		v->o = *opts;
	if (!v->o.threads)
		v->o.threads = 1;
	if (!v->o.cache_size)
		v->o.cache_size = 1024;
	if (!v->o.cache_idle_ms)
		v->o.cache_idle_ms = 600000;
	if (!v->o.max_queue)
		v->o.max_queue = 256;
	v->base = base;
	v->efd = -1;
	u64map_init(&v->cache);
	u64map_init(&v->inflight);
	TAILQ_INIT(&v->lru);
	TAILQ_INIT(&v->pending);
	TAILQ_INIT(&v->done);
	pthread_mutex_init(&v->lock, NULL);
	pthread_cond_init(&v->cond, NULL);
	{
		unsigned char key[32];
		EVP_MAC *hmac = EVP_MAC_fetch(NULL, "HMAC", NULL);
		OSSL_PARAM params[] = {
			OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0),
			OSSL_PARAM_construct_end(),
		};
		bool ok = hmac && RAND_bytes(key, sizeof key) == 1 && (v->mac = EVP_MAC_CTX_new(hmac)) &&
		          EVP_MAC_init(v->mac, key, sizeof key, params);
		OPENSSL_cleanse(key, sizeof key);
		EVP_MAC_free(hmac);
		if (!ok) {
			snprintf(err, errlen, "verifier: cannot key the cache's HMAC-SHA256 (OpenSSL)");
			goto fail;
		}
	}
	v->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (v->efd < 0) {
		snprintf(err, errlen, "verifier: cannot create an eventfd: %s", strerror(errno));
		goto fail;
	}
	v->ev = event_new(base, v->efd, EV_READ | EV_PERSIST, on_done, v);
	if (!v->ev || event_add(v->ev, NULL) < 0) {
		snprintf(err, errlen, "verifier: cannot watch the eventfd");
		goto fail;
	}
	v->threads = xcalloc(v->o.threads, sizeof *v->threads);
	for (unsigned i = 0; i < v->o.threads; i++) {
		int rc = pthread_create(&v->threads[i], NULL, worker, v);
		if (rc != 0) {
			snprintf(err, errlen, "verifier: cannot start a worker thread: %s", strerror(rc));
			goto fail;
		}
		v->nthreads++;
	}
	return v;
fail:
	verifier_free(v);
	return NULL;
}

void verifier_free(struct verifier *v)
{
	struct job *j;
	struct centry *e;

	if (!v)
		return;
	pthread_mutex_lock(&v->lock);
	v->quit = true;
	pthread_cond_broadcast(&v->cond);
	pthread_mutex_unlock(&v->lock);
	for (unsigned i = 0; i < v->nthreads; i++)
		pthread_join(v->threads[i], NULL);
	free(v->threads);
	while ((j = TAILQ_FIRST(&v->pending))) {
		TAILQ_REMOVE(&v->pending, j, q);
		job_free(j);
	}
	while ((j = TAILQ_FIRST(&v->done))) {
		TAILQ_REMOVE(&v->done, j, q);
		job_free(j);
	}
	while ((e = TAILQ_FIRST(&v->lru)))
		centry_drop(v, e);
	u64map_fini(&v->cache);
	u64map_fini(&v->inflight);
	if (v->ev)
		event_free(v->ev);
	if (v->efd >= 0)
		close(v->efd);
	pthread_mutex_destroy(&v->lock);
	pthread_cond_destroy(&v->cond);
	EVP_MAC_CTX_free(v->mac);
	free(v);
}

/* The cache name of (login, password): HMAC-SHA256 under the process's
 * key. The keyed context is made once; a copy per use skips the key
 * schedule and the algorithm lookup, a third of a hit's cost otherwise. */
static int make_id(struct verifier *v, const char *login, const char *password, unsigned char *id)
{
	EVP_MAC_CTX *c = EVP_MAC_CTX_dup(v->mac);
	size_t n = 0;
	bool ok;
	/* a login holds no NUL: ("ab","c") and ("a","bc") differ */
	ok = c && EVP_MAC_update(c, (const unsigned char *)login, strlen(login) + 1) &&
	     EVP_MAC_update(c, (const unsigned char *)password, strlen(password)) &&
	     EVP_MAC_final(c, id, &n, ID_LEN) && n == ID_LEN;
	EVP_MAC_CTX_free(c);
	return ok ? 0 : -1;
}

static void add_waiter(struct job *j, struct verify_req *r)
{
	r->job = j;
	TAILQ_INSERT_TAIL(&j->waiters, r, link);
}

enum verify_status verifier_check(struct verifier *v, const char *login, const char *password,
                                  const char *stored, verify_cb cb, void *arg, struct verify_req **reqp)
{
	unsigned char id[ID_LEN];
	struct passwd_hash h;
	char why[256];
	struct centry *e;
	struct job *j;
	struct verify_req *r;
	uint64_t now = now_ms(v);

	*reqp = NULL;
	if (!passwd_is_hash(stored)) {
		if (passwd_plain_equal(stored, password, strlen(password)))
			return VERIFY_OK;
		v->st.wrong++;
		return VERIFY_WRONG;
	}
	if (strlen(password) > PASSWD_MAX_LEN) {
		v->st.wrong++;
		return VERIFY_WRONG;
	}
	if (make_id(v, login, password, id) < 0) {
		log_error("verifier: OpenSSL could not digest a login");
		return VERIFY_ERROR;
	}
	cache_sweep(v, now);
	/* A hit needs the same name and the very hash it was verified
	 * against: after passwd the entry no longer answers. */
	e = u64map_get(&v->cache, prefix(id));
	if (e && CRYPTO_memcmp(e->id, id, ID_LEN) == 0 && strcmp(e->stored, stored) == 0) {
		e->used_ms = now;
		TAILQ_REMOVE(&v->lru, e, lru);
		TAILQ_INSERT_HEAD(&v->lru, e, lru);
		v->st.hits++;
		OPENSSL_cleanse(id, sizeof id);
		return VERIFY_OK;
	}
	if (passwd_parse(stored, &h, why, sizeof why) < 0) {
		log_error("verifier: the stored password of '%s' is not a valid hash: %s", login, why);
		return VERIFY_ERROR;
	}

	r = xcalloc(1, sizeof *r);
	r->cb = cb;
	r->arg = arg;
	j = u64map_get(&v->inflight, prefix(id));
	if (j && memcmp(j->id, id, ID_LEN) == 0 && strcmp(j->stored, stored) == 0) {
		v->st.joined++;
		add_waiter(j, r);
		*reqp = r;
		return VERIFY_PENDING;
	}

	pthread_mutex_lock(&v->lock);
	if (v->npending >= v->o.max_queue) {
		pthread_mutex_unlock(&v->lock);
		free(r);
		v->st.busy++;
		return VERIFY_BUSY;
	}
	pthread_mutex_unlock(&v->lock);

	j = xcalloc(1, sizeof *j);
	j->kind = JOB_VERIFY;
	memcpy(j->id, id, ID_LEN);
	j->login = xstrdup(login);
	j->stored = xstrdup(stored);
	j->pwlen = strlen(password);
	j->password = xstrndup(password, j->pwlen);
	TAILQ_INIT(&j->waiters);
	add_waiter(j, r);
	/* an older job under this prefix (another hash) keeps running, unindexed */
	if (u64map_get(&v->inflight, prefix(id)))
		((struct job *)u64map_get(&v->inflight, prefix(id)))->indexed = false;
	u64map_put(&v->inflight, prefix(id), j);
	j->indexed = true;
	OPENSSL_cleanse(id, sizeof id);

	pthread_mutex_lock(&v->lock);
	TAILQ_INSERT_TAIL(&v->pending, j, q);
	v->npending++;
	pthread_cond_signal(&v->cond);
	pthread_mutex_unlock(&v->lock);
	*reqp = r;
	return VERIFY_PENDING;
}

struct verify_req *verifier_hash(struct verifier *v, const char *password, unsigned iterations,
                                 verify_hash_cb cb, void *arg)
{
	struct job *j = xcalloc(1, sizeof *j);
	struct verify_req *r = xcalloc(1, sizeof *r);

	r->hash_cb = cb;
	r->arg = arg;
	j->kind = JOB_HASH;
	j->iterations = iterations;
	j->pwlen = strlen(password);
	j->password = xstrndup(password, j->pwlen);
	TAILQ_INIT(&j->waiters);
	add_waiter(j, r);
	pthread_mutex_lock(&v->lock);
	TAILQ_INSERT_TAIL(&v->pending, j, q);
	v->npending++;
	pthread_cond_signal(&v->cond);
	pthread_mutex_unlock(&v->lock);
	return r;
}

void verifier_cancel(struct verifier *v, struct verify_req *r)
{
	struct job *j;
	bool unstarted = false;

	if (!r)
		return;
	j = r->job;
	TAILQ_REMOVE(&j->waiters, r, link);
	free(r);
	if (!TAILQ_EMPTY(&j->waiters))
		return;
	pthread_mutex_lock(&v->lock);
	if (!j->started) {
		TAILQ_REMOVE(&v->pending, j, q);
		v->npending--;
		unstarted = true;
	}
	pthread_mutex_unlock(&v->lock);
	if (unstarted) {
		if (j->indexed)
			u64map_del(&v->inflight, prefix(j->id));
		job_free(j);
	}
	/* a job already under way finishes; a verified password is cached */
}

void verifier_forget(struct verifier *v, const char *login)
{
	struct centry *e, *next;
	for (e = TAILQ_FIRST(&v->lru); e; e = next) {
		next = TAILQ_NEXT(e, lru);
		if (strcmp(e->login, login) == 0)
			centry_drop(v, e);
	}
}

void verifier_get_stats(struct verifier *v, struct verifier_stats *out)
{
	*out = v->st;
	out->cached = v->cache.count;
	pthread_mutex_lock(&v->lock);
	out->queued = v->npending;
	pthread_mutex_unlock(&v->lock);
}
