/* console_session.c: the console's sessions, by random id. */
#include "http/console_session.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "common/hmap.h"
#include "common/util.h"

struct console_sessions {
	struct strmap by_id;		/* id -> struct console_session *, owned */
	size_t max;
	uint64_t idle_ms, max_age_ms;
};

struct console_sessions *console_sessions_new(size_t max, uint64_t idle_ms, uint64_t max_age_ms)
{
	struct console_sessions *t = xcalloc(1, sizeof *t);
	strmap_init(&t->by_id);
	t->max = max ? max : 1;
	t->idle_ms = idle_ms;
	t->max_age_ms = max_age_ms;
	return t;
}

static void session_free(struct console_session *s)
{
	free(s->login);
	/* the id and token are secrets: they do not outlive the session */
	OPENSSL_cleanse(s, sizeof *s);
	free(s);
}

void console_sessions_free(struct console_sessions *t)
{
	size_t it = 0;
	void *v;
	if (!t)
		return;
	while (strmap_next(&t->by_id, &it, NULL, &v))
		session_free(v);
	strmap_fini(&t->by_id);
	free(t);
}

static bool random_hex(char *out, size_t hexlen)
{
	static const char digits[] = "0123456789abcdef";
	unsigned char raw[CONSOLE_SESSION_ID_LEN / 2];
	size_t n = hexlen / 2;
	if (n > sizeof raw || RAND_bytes(raw, (int)n) != 1)
		return false;
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[raw[i] >> 4];
		out[2 * i + 1] = digits[raw[i] & 15];
	}
	out[2 * n] = 0;
	OPENSSL_cleanse(raw, sizeof raw);
	return true;
}

static bool expired(const struct console_sessions *t, const struct console_session *s, uint64_t now)
{
	return now - s->used_ms >= t->idle_ms || now - s->created_ms >= t->max_age_ms;
}

static void drop(struct console_sessions *t, struct console_session *s)
{
	strmap_del(&t->by_id, s->id);
	session_free(s);
}

/* The least recently used session, to make room. */
static struct console_session *stalest(const struct console_sessions *t)
{
	struct console_session *old = NULL;
	size_t it = 0;
	void *v;
	while (strmap_next(&t->by_id, &it, NULL, &v)) {
		struct console_session *s = v;
		if (!old || s->used_ms < old->used_ms)
			old = s;
	}
	return old;
}

struct console_session *console_session_create(struct console_sessions *t, const char *login, bool admin,
                                               uint64_t now_ms)
{
	struct console_session *s = xcalloc(1, sizeof *s);
	if (!random_hex(s->id, CONSOLE_SESSION_ID_LEN) || !random_hex(s->token, CONSOLE_SESSION_ID_LEN) ||
	    strmap_get(&t->by_id, s->id)) {
		/* 256 random bits that collide mean the generator is broken */
		free(s);
		return NULL;
	}
	console_sessions_expire(t, now_ms);
	if (t->by_id.count >= t->max)
		drop(t, stalest(t));
	s->login = xstrdup(login);
	s->admin = admin;
	s->created_ms = s->used_ms = now_ms;
	strmap_put(&t->by_id, s->id, s);
	return s;
}

struct console_session *console_session_peek(struct console_sessions *t, const char *id, uint64_t now_ms)
{
	struct console_session *s;
	if (!id || strlen(id) != CONSOLE_SESSION_ID_LEN || !(s = strmap_get(&t->by_id, id)))
		return NULL;
	if (expired(t, s, now_ms)) {
		drop(t, s);
		return NULL;
	}
	return s;
}

struct console_session *console_session_find(struct console_sessions *t, const char *id, uint64_t now_ms)
{
	struct console_session *s = console_session_peek(t, id, now_ms);
	if (s)
		s->used_ms = now_ms;
	return s;
}

bool console_session_end(struct console_sessions *t, const char *id)
{
	struct console_session *s = id ? strmap_get(&t->by_id, id) : NULL;
	if (!s)
		return false;
	drop(t, s);
	return true;
}

size_t console_sessions_expire(struct console_sessions *t, uint64_t now_ms)
{
	struct console_session *gone[64];
	size_t total = 0, n;
	do {
		/* collected first: the map may not change while it is walked */
		size_t it = 0;
		void *v;
		n = 0;
		while (n < ARRAY_LEN(gone) && strmap_next(&t->by_id, &it, NULL, &v))
			if (expired(t, v, now_ms))
				gone[n++] = v;
		for (size_t i = 0; i < n; i++)
			drop(t, gone[i]);
		total += n;
	} while (n == ARRAY_LEN(gone));
	return total;
}

size_t console_sessions_count(const struct console_sessions *t)
{
	return t->by_id.count;
}

bool console_session_token_ok(const struct console_session *s, const char *token)
{
	if (!s || !token || strlen(token) != CONSOLE_SESSION_ID_LEN)
		return false;
	return CRYPTO_memcmp(s->token, token, CONSOLE_SESSION_ID_LEN) == 0;
}
