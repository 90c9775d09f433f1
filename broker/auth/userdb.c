/* userdb.c: the user store and the configured users, one view of both.
 *
 * Each change follows one pattern: check everything, make the change in
 * memory keeping what it replaced, write the store; if the write fails,
 * put back what was replaced. The file is only ever the serialisation of
 * the stored part of memory, so putting memory back is all an undo takes. */
#include "auth/userdb.h"

#include <errno.h>
#include <fcntl.h>
#include <regex.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "common/passwd.h"
#include "common/hmap.h"
#include "common/json.h"
#include "common/log.h"
#include "common/util.h"
#include "config/config.h"

#define STORE_VERSION 1
#define STORE_MAX_BYTES (64u << 20)

struct user {
	char *name;			/* owned */
	char *password;			/* owned; NULL with USERDB_CRED_NONE */
	enum userdb_cred cred;
	bool admin;
	enum userdb_source source;
	struct userdb_user view;	/* what userdb_user_get() hands out; kept in step */
};

struct vhost {
	char *name;			/* owned */
	enum userdb_source source;
};

enum grant_kind {
	GRANT_NONE,			/* "": nothing */
	GRANT_ALL,			/* ".*": everything, no match run */
	GRANT_LITERAL,			/* no metacharacter: one name, by strcmp */
	GRANT_REGEX,			/* anything else: re, anchored at both ends */
};

struct grant {
	char *pattern;			/* owned; as the operator wrote it */
	enum grant_kind kind;
	regex_t re;			/* GRANT_REGEX only */
};

struct perm {
	char *user;			/* owned */
	char *vhost;			/* owned */
	struct grant g[USERDB_NACTIONS];
	bool live;			/* user and vhost both exist (refresh_live) */
};

/* One user's permissions: vhost -> struct perm *, owned. */
struct uperms {
	char *user;			/* owned; the key in db->perms */
	struct strmap by_vhost;
};

struct userdb {
	char *dir;			/* owned; the data directory */
	char *path;			/* owned; DIR/users.json */
	char *tmp;			/* owned; written, then renamed to path */
	char *config_path;		/* owned; for messages; NULL = built-in */
	char *default_vhost;		/* owned */

	struct strmap store_users;	/* name -> struct user *, owned */
	struct strmap config_users;	/* name -> struct user *, owned */
	struct strmap store_vhosts;	/* name -> struct vhost *, owned */
	struct strmap config_vhosts;	/* name -> struct vhost *, owned */
	struct strmap perms;		/* user -> struct uperms *, owned */

	struct strmap warned;		/* message -> itself (owned): each warning once */
	void (*warn)(void *arg, const char *msg);
	void *warn_arg;
};

static const char *const action_names[USERDB_NACTIONS] = { "configure", "send", "consume" };

const char *userdb_action_name(enum userdb_action a)
{
	return (unsigned)a < USERDB_NACTIONS ? action_names[a] : "?";
}

const char *userdb_source_name(enum userdb_source s)
{
	switch (s) {
	case USERDB_STORE: return "store";
	case USERDB_CONFIG: return "config";
	case USERDB_DEFAULT: return "default";
	}
	return "?";
}

/* ---- small things ---- */

static void warn_once(struct userdb *db, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void warn_once(struct userdb *db, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	if (strmap_get(&db->warned, msg))
		return;
	{
		char *keep = xstrdup(msg);
		strmap_put(&db->warned, keep, keep);
	}
	if (db->warn)
		db->warn(db->warn_arg, msg);
	else
		log_warn("%s", msg);
}

static void user_free(struct user *u)
{
	if (!u)
		return;
	if (u->password) {
		/* a plain passcode is a secret; a hash is worth wiping too */
		OPENSSL_cleanse(u->password, strlen(u->password));
		free(u->password);
	}
	free(u->name);
	free(u);
}

static struct user *user_new(const char *name, const char *password, enum userdb_cred cred, bool admin,
                             enum userdb_source src)
{
	struct user *u = xcalloc(1, sizeof *u);
	u->name = xstrdup(name);
	u->password = password ? xstrdup(password) : NULL;
	u->cred = cred;
	u->admin = admin;
	u->source = src;
	u->view = (struct userdb_user){ u->name, u->password, cred, admin, src, false };
	return u;
}

static void vhost_free(struct vhost *v)
{
	if (v) {
		free(v->name);
		free(v);
	}
}

static struct vhost *vhost_new(const char *name, enum userdb_source src)
{
	struct vhost *v = xcalloc(1, sizeof *v);
	v->name = xstrdup(name);
	v->source = src;
	return v;
}

static void grant_fini(struct grant *g)
{
	if (g->kind == GRANT_REGEX)
		regfree(&g->re);
	free(g->pattern);
	g->pattern = NULL;
	g->kind = GRANT_NONE;
}

static void perm_free(struct perm *p)
{
	if (!p)
		return;
	for (int i = 0; i < USERDB_NACTIONS; i++)
		grant_fini(&p->g[i]);
	free(p->user);
	free(p->vhost);
	free(p);
}

static void users_clear(struct strmap *m)
{
	void *v;
	for (size_t i = 0; strmap_next(m, &i, NULL, &v);)
		user_free(v);
	strmap_fini(m);
}

static void vhosts_clear(struct strmap *m)
{
	void *v;
	for (size_t i = 0; strmap_next(m, &i, NULL, &v);)
		vhost_free(v);
	strmap_fini(m);
}

static void uperms_free(struct uperms *up)
{
	void *v;
	if (!up)
		return;
	for (size_t i = 0; strmap_next(&up->by_vhost, &i, NULL, &v);)
		perm_free(v);
	strmap_fini(&up->by_vhost);
	free(up->user);
	free(up);
}

static void perms_clear(struct strmap *m)
{
	void *v;
	for (size_t i = 0; strmap_next(m, &i, NULL, &v);)
		uperms_free(v);
	strmap_fini(m);
}

static const char *config_name(const struct userdb *db)
{
	return db->config_path ? db->config_path : "the configuration";
}

/* ---- names and grants ---- */

static int check_name(const char *what, const char *name, bool allow_space, char *err, size_t errlen)
{
	size_t len = name ? strlen(name) : 0;
	if (len == 0) {
		snprintf(err, errlen, "bad %s name '': a name cannot be empty", what);
		return -1;
	}
	if (len > USERDB_NAME_MAX) {
		snprintf(err, errlen, "bad %s name '%.32s...': %zu bytes (limit %d)", what, name, len, USERDB_NAME_MAX);
		return -1;
	}
	for (const unsigned char *p = (const unsigned char *)name; *p; p++) {
		if (*p < 0x20 || *p == 0x7f) {
			snprintf(err, errlen, "bad %s name: it contains the control character 0x%02x at byte %zu", what,
			         *p, (size_t)(p - (const unsigned char *)name) + 1);
			return -1;
		}
		if (*p == ' ' && !allow_space) {
			snprintf(err, errlen, "bad %s name '%s': spaces are not allowed", what, name);
			return -1;
		}
	}
	if (allow_space && (name[0] == ' ' || name[len - 1] == ' ')) {
		snprintf(err, errlen, "bad %s name '%s': it cannot start or end with a space", what, name);
		return -1;
	}
	return 0;
}

int userdb_check_user_name(const char *name, char *err, size_t errlen)
{
	/* spaces, because a certificate's CN ("Jane Doe") is a login too */
	if (check_name("user", name, true, err, errlen) < 0)
		return -1;
	if (strchr(name, ':')) {
		snprintf(err, errlen, "bad user name '%s': ':' is not allowed (HTTP Basic authentication ends the "
		         "login at the first ':')", name);
		return -1;
	}
	return 0;
}

int userdb_check_vhost_name(const char *name, char *err, size_t errlen)
{
	return check_name("virtual host", name, false, err, errlen);
}

static bool has_meta(const char *s)
{
	return strpbrk(s, ".[]()*+?{}|^$\\") != NULL;
}

static int grant_compile(struct grant *g, enum userdb_action a, const char *pattern, char *err, size_t errlen)
{
	size_t len = strlen(pattern);
	char why[256];
	int rc;

	memset(g, 0, sizeof *g);
	if (len > USERDB_GRANT_MAX) {
		snprintf(err, errlen, "%s grant '%.32s...': %zu bytes (limit %d)", action_names[a], pattern, len,
		         USERDB_GRANT_MAX);
		return -1;
	}
	if (len == 0) {
		g->kind = GRANT_NONE;
	} else if (strcmp(pattern, ".*") == 0 || strcmp(pattern, "^.*$") == 0) {
		g->kind = GRANT_ALL;
	} else if (!has_meta(pattern)) {
		g->kind = GRANT_LITERAL;
	} else {
		/* The operator's text alone first, so that the error is about
		 * what they wrote: wrapped, "a)(b" would pass as "^(a)(b)$". */
		regex_t probe;
		char *anchored;
		if ((rc = regcomp(&probe, pattern, REG_EXTENDED | REG_NOSUB)) != 0) {
			regerror(rc, &probe, why, sizeof why);
			snprintf(err, errlen, "%s grant '%s' is not a valid regular expression: %s", action_names[a],
			         pattern, why);
			return -1;
		}
		regfree(&probe);
		anchored = xmalloc(len + 5);
		snprintf(anchored, len + 5, "^(%s)$", pattern);
		rc = regcomp(&g->re, anchored, REG_EXTENDED | REG_NOSUB);
		free(anchored);
		if (rc != 0) {
			regerror(rc, &g->re, why, sizeof why);
			snprintf(err, errlen, "%s grant '%s' is not a valid regular expression: %s", action_names[a],
			         pattern, why);
			return -1;
		}
		g->kind = GRANT_REGEX;
	}
	g->pattern = xstrdup(pattern);
	return 0;
}

int userdb_check_grant(enum userdb_action action, const char *pattern, char *err, size_t errlen)
{
	struct grant g;
	if ((unsigned)action >= USERDB_NACTIONS) {
		snprintf(err, errlen, "unknown action %d", (int)action);
		return -1;
	}
	if (grant_compile(&g, action, pattern, err, errlen) < 0)
		return -1;
	grant_fini(&g);
	return 0;
}

static bool grant_match(const struct grant *g, const char *dest)
{
	switch (g->kind) {
	case GRANT_NONE: return false;
	case GRANT_ALL: return true;
	case GRANT_LITERAL: return strcmp(g->pattern, dest) == 0;
	case GRANT_REGEX: return regexec(&g->re, dest, 0, NULL, 0) == 0;
	}
	return false;
}

static struct perm *perm_new(const char *user, const char *vhost, const char *const grants[USERDB_NACTIONS],
                             char *err, size_t errlen)
{
	struct perm *p = xcalloc(1, sizeof *p);
	for (int i = 0; i < USERDB_NACTIONS; i++) {
		if (grant_compile(&p->g[i], (enum userdb_action)i, grants[i] ? grants[i] : "", err, errlen) < 0) {
			perm_free(p);
			return NULL;
		}
	}
	p->user = xstrdup(user);
	p->vhost = xstrdup(vhost);
	return p;
}

/* ---- lookups ---- */

static const struct user *find_user(const struct userdb *db, const char *name)
{
	const struct user *u = strmap_get(&db->config_users, name);
	return u ? u : strmap_get(&db->store_users, name);
}

static const struct vhost *find_vhost(const struct userdb *db, const char *name)
{
	const struct vhost *v = strmap_get(&db->config_vhosts, name);
	return v ? v : strmap_get(&db->store_vhosts, name);
}

bool userdb_vhost_exists(const struct userdb *db, const char *name)
{
	return strcmp(name, db->default_vhost) == 0 || find_vhost(db, name) != NULL;
}

const char *userdb_default_vhost(const struct userdb *db)
{
	return db->default_vhost;
}

size_t userdb_user_count(const struct userdb *db)
{
	size_t n = db->config_users.count;
	const char *name;
	for (size_t i = 0; strmap_next(&db->store_users, &i, &name, NULL);)
		if (!strmap_get(&db->config_users, name))
			n++;
	return n;
}

bool userdb_user_has_perms(const struct userdb *db, const char *user)
{
	return strmap_get(&db->perms, user) != NULL;	/* an entry is dropped with its last permission */
}

static struct perm *find_perm(const struct userdb *db, const char *user, const char *vhost)
{
	const struct uperms *up = strmap_get(&db->perms, user);
	return up ? strmap_get(&up->by_vhost, vhost) : NULL;
}

/* Inserts p (no entry for its user and vhost may exist). */
static void perm_insert(struct userdb *db, struct perm *p)
{
	struct uperms *up = strmap_get(&db->perms, p->user);
	if (!up) {
		up = xcalloc(1, sizeof *up);
		up->user = xstrdup(p->user);
		strmap_init(&up->by_vhost);
		strmap_put(&db->perms, up->user, up);
	}
	strmap_put(&up->by_vhost, p->vhost, p);
}

/* Takes p out of the maps (the caller owns it again). */
static void perm_remove(struct userdb *db, struct perm *p)
{
	struct uperms *up = strmap_get(&db->perms, p->user);
	if (!up)
		return;
	strmap_del(&up->by_vhost, p->vhost);
	if (up->by_vhost.count == 0) {
		strmap_del(&db->perms, up->user);
		uperms_free(up);
	}
}

static void refresh_live(struct userdb *db)
{
	void *upv, *pv;
	for (size_t i = 0; strmap_next(&db->perms, &i, NULL, &upv);) {
		struct uperms *up = upv;
		for (size_t j = 0; strmap_next(&up->by_vhost, &j, NULL, &pv);) {
			struct perm *p = pv;
			p->live = find_user(db, p->user) && userdb_vhost_exists(db, p->vhost);
		}
	}
}

/* Warnings about what the configuration and the store say together. */
static void check_overlaps(struct userdb *db)
{
	const char *name;
	void *pv, *upv;
	for (size_t i = 0; strmap_next(&db->store_users, &i, &name, NULL);)
		if (strmap_get(&db->config_users, name))
			warn_once(db, "user '%s' of the user store %s is hidden by the user of that name in %s", name,
			          db->path, config_name(db));
	for (size_t i = 0; strmap_next(&db->store_vhosts, &i, &name, NULL);)
		if (strmap_get(&db->config_vhosts, name) || strcmp(name, db->default_vhost) == 0)
			warn_once(db, "virtual host '%s' of the user store %s is also in %s", name, db->path,
			          config_name(db));
	for (size_t i = 0; strmap_next(&db->perms, &i, NULL, &upv);) {
		struct uperms *up = upv;
		for (size_t j = 0; strmap_next(&up->by_vhost, &j, NULL, &pv);) {
			struct perm *p = pv;
			if (!find_user(db, p->user))
				warn_once(db, "permissions of '%s' on virtual host '%s' in %s name a user that does not "
				          "exist: kept, unused (unpermit %s vhost=%s removes them)", p->user, p->vhost,
				          db->path, p->user, p->vhost);
			else if (!userdb_vhost_exists(db, p->vhost))
				warn_once(db, "permissions of '%s' on virtual host '%s' in %s name a virtual host that does "
				          "not exist: kept, unused", p->user, p->vhost, db->path);
		}
	}
}

/* ---- writing the store ---- */

static int by_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The keys of m, sorted; the array is the caller's. */
static const char **sorted_keys(const struct strmap *m, size_t *n)
{
	const char **k = xcalloc(m->count ? m->count : 1, sizeof *k);
	const char *key;
	*n = 0;
	for (size_t i = 0; strmap_next(m, &i, &key, NULL);)
		k[(*n)++] = key;
	qsort(k, *n, sizeof *k, by_str);
	return k;
}

static void serialise(const struct userdb *db, struct sbuf *out)
{
	size_t n, m;
	const char **names;
	struct sbuf line;
	struct jw w;

	sbuf_init(&line);
	sbuf_printf(out, "{\n  \"version\": %d,\n  \"users\": [", STORE_VERSION);
	names = sorted_keys(&db->store_users, &n);
	for (size_t i = 0; i < n; i++) {
		const struct user *u = strmap_get(&db->store_users, names[i]);
		sbuf_reset(&line);
		jw_init(&w, &line);
		jw_obj_begin(&w);
		jw_kstr(&w, "name", u->name);
		jw_kstr(&w, "password", u->password);	/* null: certificate login only */
		jw_kbool(&w, "admin", u->admin);
		jw_obj_end(&w);
		sbuf_printf(out, "%s\n    %s", i ? "," : "", sbuf_str(&line));
	}
	sbuf_adds(out, n ? "\n  ],\n  \"vhosts\": [" : "],\n  \"vhosts\": [");
	free(names);
	names = sorted_keys(&db->store_vhosts, &n);
	for (size_t i = 0; i < n; i++) {
		sbuf_adds(out, i ? ",\n    " : "\n    ");
		json_quote(out, names[i], strlen(names[i]));
	}
	sbuf_adds(out, n ? "\n  ],\n  \"permissions\": [" : "],\n  \"permissions\": [");
	free(names);
	names = sorted_keys(&db->perms, &n);
	{
		bool first = true;
		for (size_t i = 0; i < n; i++) {
			const struct uperms *up = strmap_get(&db->perms, names[i]);
			const char **vh = sorted_keys(&up->by_vhost, &m);
			for (size_t j = 0; j < m; j++) {
				const struct perm *p = strmap_get(&up->by_vhost, vh[j]);
				sbuf_reset(&line);
				jw_init(&w, &line);
				jw_obj_begin(&w);
				jw_kstr(&w, "user", p->user);
				jw_kstr(&w, "vhost", p->vhost);
				for (int a = 0; a < USERDB_NACTIONS; a++)
					jw_kstr(&w, action_names[a], p->g[a].pattern);
				jw_obj_end(&w);
				sbuf_printf(out, "%s\n    %s", first ? "" : ",", sbuf_str(&line));
				first = false;
			}
			free(vh);
		}
		sbuf_adds(out, first ? "]\n}\n" : "\n  ]\n}\n");
	}
	free(names);
	sbuf_fini(&line);
}

static int write_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -1;
		if (w == 0) {
			errno = ENOSPC;
			return -1;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Writes the stored part of memory to the file: aside, synced, renamed
 * over, directory synced. -1 with the step and the reason. */
static int write_store(struct userdb *db, char *err, size_t errlen)
{
	struct sbuf out;
	int fd, dfd;

	sbuf_init(&out);
	serialise(db, &out);
	fd = open(db->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0) {
		snprintf(err, errlen, "cannot write the user store: cannot create %s: %s", db->tmp, strerror(errno));
		goto fail;
	}
	if (write_all(fd, out.buf, out.len) < 0 || fsync(fd) < 0) {
		snprintf(err, errlen, "cannot write the user store: %s: %s", db->tmp, strerror(errno));
		close(fd);
		unlink(db->tmp);
		goto fail;
	}
	if (close(fd) < 0) {
		snprintf(err, errlen, "cannot write the user store: %s: %s", db->tmp, strerror(errno));
		unlink(db->tmp);
		goto fail;
	}
	if (rename(db->tmp, db->path) < 0) {
		snprintf(err, errlen, "cannot write the user store: cannot rename %s to %s: %s", db->tmp, db->path,
		         strerror(errno));
		unlink(db->tmp);
		goto fail;
	}
	/* The rename is durable once the directory is. Past the rename the new
	 * file is in place, so a failure here is reported but not undone: the
	 * caller's change stands on disk as in memory. */
	dfd = open(db->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0 || fsync(dfd) < 0)
		log_warn_sys("user store: the rename of %s may not survive a crash: cannot sync %s", db->path, db->dir);
	if (dfd >= 0)
		close(dfd);
	sbuf_fini(&out);
	return 0;
fail:
	log_error("%s; nothing was changed", err);
	sbuf_fini(&out);
	return -1;
}

/* ---- reading the store ---- */

struct loader {
	struct userdb *db;
	const char *text;
	size_t len;
	char *err;
	size_t errlen;
};

static const char *const way_out = "the broker does not start without its users: correct the file, or move "
                                   "it aside to start with no stored users";

static int load_fail(struct loader *L, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int load_fail(struct loader *L, const char *fmt, ...)
{
	char what[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(what, sizeof what, fmt, ap);
	va_end(ap);
	snprintf(L->err, L->errlen, "user store %s: %s; %s (mv %s %s.bad)", L->db->path, what, way_out,
	         L->db->path, L->db->path);
	return -1;
}

/* "expected ':' at byte 57" -> "line 3, column 14: expected ':'" */
static int syntax_fail(struct loader *L, const char *jerr)
{
	const char *at = strstr(jerr, " at byte ");
	size_t off, line = 1, col = 1;
	if (!at || sscanf(at, " at byte %zu", &off) != 1)
		return load_fail(L, "%s", jerr);
	for (size_t i = 0; i < off && i < L->len; i++) {
		if (L->text[i] == '\n') {
			line++;
			col = 1;
		} else {
			col++;
		}
	}
	return load_fail(L, "line %zu, column %zu: %.*s (byte %zu)", line, col, (int)(at - jerr), jerr, off);
}

static const char *type_name(const struct json *j)
{
	static const char *const names[] = { "null", "a boolean", "a number", "a string", "an array", "an object" };
	return j ? names[j->type] : "nothing";
}

/* Only the keys listed, each once. */
static int check_keys(struct loader *L, const char *where, const struct json *o, const char *const *keys, size_t nkeys)
{
	for (size_t i = 0; i < o->len; i++) {
		size_t k;
		for (k = 0; k < nkeys && strcmp(o->keys[i], keys[k]) != 0; k++)
			;
		if (k == nkeys)
			return load_fail(L, "%s: unknown key \"%s\"", where, o->keys[i]);
		for (size_t j = 0; j < i; j++)
			if (strcmp(o->keys[i], o->keys[j]) == 0)
				return load_fail(L, "%s: key \"%s\" given twice", where, o->keys[i]);
	}
	return 0;
}

static const char *want_str(struct loader *L, const char *where, const struct json *o, const char *key, bool *bad)
{
	const struct json *v = json_get(o, key);
	if (!v || v->type != JSON_STR) {
		load_fail(L, "%s.%s: expected a string, got %s", where, key, type_name(v));
		*bad = true;
		return NULL;
	}
	if (strlen(v->str) != v->len) {
		load_fail(L, "%s.%s: the string holds a NUL character", where, key);
		*bad = true;
		return NULL;
	}
	return v->str;
}

static const struct json *want_array(struct loader *L, const struct json *top, const char *key, bool *bad)
{
	const struct json *a = json_get(top, key);
	if (!a)
		return NULL;	/* absent: none */
	if (a->type != JSON_ARR) {
		load_fail(L, "\"%s\": expected an array, got %s", key, type_name(a));
		*bad = true;
		return NULL;
	}
	return a;
}

static int load_users(struct loader *L, const struct json *arr)
{
	static const char *const keys[] = { "name", "password", "admin" };
	char where[64], why[256];
	for (size_t i = 0; arr && i < arr->len; i++) {
		const struct json *o = arr->items[i], *admin;
		const char *name, *pw;
		struct passwd_hash h;
		bool bad = false;

		snprintf(where, sizeof where, "users[%zu]", i);
		if (o->type != JSON_OBJ)
			return load_fail(L, "%s: expected an object, got %s", where, type_name(o));
		if (check_keys(L, where, o, keys, ARRAY_LEN(keys)) < 0)
			return -1;
		if (!(name = want_str(L, where, o, "name", &bad)))
			return -1;
		{
			/* null: a user who logs in with a certificate only */
			const struct json *pj = json_get(o, "password");
			pw = NULL;
			if (!pj || pj->type != JSON_NULL)
				if (!(pw = want_str(L, where, o, "password", &bad)))
					return -1;
		}
		if (userdb_check_user_name(name, why, sizeof why) < 0)
			return load_fail(L, "%s.name: %s", where, why);
		if (pw && passwd_parse(pw, &h, why, sizeof why) < 0)
			return load_fail(L, "%s.password (user '%s'): %s", where, name, why);
		admin = json_get(o, "admin");
		if (admin && admin->type != JSON_BOOL)
			return load_fail(L, "%s.admin: expected true or false, got %s", where, type_name(admin));
		if (strmap_get(&L->db->store_users, name))
			return load_fail(L, "%s: user '%s' is listed twice", where, name);
		{
			struct user *u = user_new(name, pw, pw ? USERDB_CRED_HASH : USERDB_CRED_NONE, admin && admin->b,
			                          USERDB_STORE);
			strmap_put(&L->db->store_users, u->name, u);
		}
	}
	return 0;
}

static int load_vhosts(struct loader *L, const struct json *arr)
{
	char why[256];
	for (size_t i = 0; arr && i < arr->len; i++) {
		const struct json *v = arr->items[i];
		if (v->type != JSON_STR || strlen(v->str) != v->len)
			return load_fail(L, "vhosts[%zu]: expected a name, got %s", i, type_name(v));
		if (userdb_check_vhost_name(v->str, why, sizeof why) < 0)
			return load_fail(L, "vhosts[%zu]: %s", i, why);
		if (strmap_get(&L->db->store_vhosts, v->str))
			return load_fail(L, "vhosts[%zu]: virtual host '%s' is listed twice", i, v->str);
		{
			struct vhost *vh = vhost_new(v->str, USERDB_STORE);
			strmap_put(&L->db->store_vhosts, vh->name, vh);
		}
	}
	return 0;
}

static int load_perms(struct loader *L, const struct json *arr)
{
	static const char *const keys[] = { "user", "vhost", "configure", "send", "consume" };
	char where[64], why[512];
	for (size_t i = 0; arr && i < arr->len; i++) {
		const struct json *o = arr->items[i];
		const char *user, *vhost, *grants[USERDB_NACTIONS];
		struct perm *p;
		bool bad = false;

		snprintf(where, sizeof where, "permissions[%zu]", i);
		if (o->type != JSON_OBJ)
			return load_fail(L, "%s: expected an object, got %s", where, type_name(o));
		if (check_keys(L, where, o, keys, ARRAY_LEN(keys)) < 0)
			return -1;
		if (!(user = want_str(L, where, o, "user", &bad)) || !(vhost = want_str(L, where, o, "vhost", &bad)))
			return -1;
		for (int a = 0; a < USERDB_NACTIONS; a++)
			if (!(grants[a] = want_str(L, where, o, action_names[a], &bad)))
				return -1;
		if (userdb_check_user_name(user, why, sizeof why) < 0)
			return load_fail(L, "%s.user: %s", where, why);
		if (userdb_check_vhost_name(vhost, why, sizeof why) < 0)
			return load_fail(L, "%s.vhost: %s", where, why);
		if (find_perm(L->db, user, vhost))
			return load_fail(L, "%s: permissions of '%s' on virtual host '%s' are listed twice", where, user,
			                 vhost);
		if (!(p = perm_new(user, vhost, grants, why, sizeof why)))
			return load_fail(L, "%s: %s", where, why);
		perm_insert(L->db, p);
	}
	return 0;
}

static int load_store(struct userdb *db, char *err, size_t errlen)
{
	static const char *const keys[] = { "version", "users", "vhosts", "permissions" };
	struct loader L = { db, NULL, 0, err, errlen };
	struct sbuf text;
	struct json *top;
	const struct json *ver, *users, *vhosts, *perms;
	char jerr[256], buf[65536];
	bool bad = false;
	int fd, rc = -1;
	ssize_t n;

	fd = open(db->path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT)
			return 0;	/* the first start: nothing stored yet */
		snprintf(err, errlen, "cannot read the user store %s: %s", db->path, strerror(errno));
		return -1;
	}
	sbuf_init(&text);
	while ((n = read(fd, buf, sizeof buf)) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			snprintf(err, errlen, "cannot read the user store %s: %s", db->path, strerror(errno));
			goto out;
		}
		sbuf_add(&text, buf, (size_t)n);
		if (text.len > STORE_MAX_BYTES) {
			load_fail(&L, "larger than %u MiB: not a file mqbroker wrote", STORE_MAX_BYTES >> 20);
			goto out;
		}
	}
	L.text = sbuf_str(&text);
	L.len = text.len;
	if (text.len == 0) {
		load_fail(&L, "the file is empty (mqbroker never writes an empty store)");
		goto out;
	}
	top = json_parse(L.text, L.len, jerr, sizeof jerr);
	if (!top) {
		syntax_fail(&L, jerr);
		goto out;
	}
	if (top->type != JSON_OBJ) {
		load_fail(&L, "expected a JSON object at the top, got %s", type_name(top));
		goto parsed;
	}
	if (check_keys(&L, "the top level", top, keys, ARRAY_LEN(keys)) < 0)
		goto parsed;
	ver = json_get(top, "version");
	if (!ver || ver->type != JSON_NUM) {
		load_fail(&L, "\"version\": expected a number, got %s", type_name(ver));
		goto parsed;
	}
	if (ver->num != STORE_VERSION) {
		load_fail(&L, "version %g: this mqbroker reads version %d (was the file written by a newer one?)",
		          ver->num, STORE_VERSION);
		goto parsed;
	}
	users = want_array(&L, top, "users", &bad);
	vhosts = bad ? NULL : want_array(&L, top, "vhosts", &bad);
	perms = bad ? NULL : want_array(&L, top, "permissions", &bad);
	if (!bad && load_users(&L, users) == 0 && load_vhosts(&L, vhosts) == 0 && load_perms(&L, perms) == 0)
		rc = 0;
parsed:
	json_free(top);
out:
	close(fd);
	sbuf_fini(&text);
	return rc;
}

/* ---- configuration ---- */

int userdb_set_config(struct userdb *db, const struct config *cfg, char *err, size_t errlen)
{
	struct strmap users, vhosts;
	const char *dflt = cfg && cfg->default_vhost && *cfg->default_vhost ? cfg->default_vhost : "/";
	const char *path = cfg && cfg->path ? cfg->path : NULL;
	const char *from = path ? path : "the configuration";
	char why[256];

	strmap_init(&users);
	strmap_init(&vhosts);
	for (size_t i = 0; cfg && i < cfg->nusers; i++) {
		const struct user_cfg *uc = &cfg->users[i];
		enum userdb_cred cred = USERDB_CRED_NONE;
		struct passwd_hash h;
		struct user *u;

		if (userdb_check_user_name(uc->login, why, sizeof why) < 0) {
			snprintf(err, errlen, "%s: users[%zu]: %s", from, i + 1, why);
			goto fail;
		}
		if (uc->passcode && passwd_is_hash(uc->passcode)) {
			if (passwd_parse(uc->passcode, &h, why, sizeof why) < 0) {
				snprintf(err, errlen, "%s: user '%s': the passcode looks like a password hash but %s", from,
				         uc->login, why);
				goto fail;
			}
			cred = USERDB_CRED_HASH;
		} else if (uc->passcode) {
			cred = USERDB_CRED_PLAIN;
		}
		u = user_new(uc->login, uc->passcode, cred, uc->admin, USERDB_CONFIG);
		user_free(strmap_put(&users, u->name, u));
	}
	for (size_t i = 0; cfg && i < cfg->nvhosts; i++) {
		const char *name = cfg->vhosts[i].name;
		struct vhost *v;
		if (userdb_check_vhost_name(name, why, sizeof why) < 0) {
			snprintf(err, errlen, "%s: vhosts[%zu]: %s", from, i + 1, why);
			goto fail;
		}
		if (strcmp(name, dflt) == 0 || strmap_get(&vhosts, name))
			continue;
		v = vhost_new(name, USERDB_CONFIG);
		strmap_put(&vhosts, v->name, v);
	}

	users_clear(&db->config_users);
	vhosts_clear(&db->config_vhosts);
	db->config_users = users;
	db->config_vhosts = vhosts;
	free(db->default_vhost);
	db->default_vhost = xstrdup(dflt);
	free(db->config_path);
	db->config_path = path ? xstrdup(path) : NULL;
	{
		void *uv;
		for (size_t i = 0; strmap_next(&db->config_users, &i, NULL, &uv);) {
			const struct user *u = uv;
			if (u->cred == USERDB_CRED_PLAIN)
				warn_once(db, "user '%s' in %s has a plain-text passcode: replace it with the hash "
				          "`mqbroker --hash-password` prints", u->name, config_name(db));
		}
	}
	check_overlaps(db);
	refresh_live(db);
	return 0;
fail:
	users_clear(&users);
	vhosts_clear(&vhosts);
	return -1;
}

/* ---- opening ---- */

struct userdb *userdb_open(const char *data_dir, const struct config *cfg, char *err, size_t errlen)
{
	struct userdb *db = xcalloc(1, sizeof *db);
	size_t n = strlen(data_dir) + sizeof "/" USERDB_FILE ".tmp";

	db->dir = xstrdup(data_dir);
	db->path = xmalloc(n);
	snprintf(db->path, n, "%s/%s", data_dir, USERDB_FILE);
	db->tmp = xmalloc(n);
	snprintf(db->tmp, n, "%s/%s.tmp", data_dir, USERDB_FILE);
	db->default_vhost = xstrdup("/");
	strmap_init(&db->store_users);
	strmap_init(&db->config_users);
	strmap_init(&db->store_vhosts);
	strmap_init(&db->config_vhosts);
	strmap_init(&db->perms);
	strmap_init(&db->warned);
	if (load_store(db, err, errlen) < 0 || userdb_set_config(db, cfg, err, errlen) < 0) {
		userdb_free(db);
		return NULL;
	}
	return db;
}

void userdb_free(struct userdb *db)
{
	void *v;
	if (!db)
		return;
	users_clear(&db->store_users);
	users_clear(&db->config_users);
	vhosts_clear(&db->store_vhosts);
	vhosts_clear(&db->config_vhosts);
	perms_clear(&db->perms);
	for (size_t i = 0; strmap_next(&db->warned, &i, NULL, &v);)
		free(v);
	strmap_fini(&db->warned);
	free(db->dir);
	free(db->path);
	free(db->tmp);
	free(db->config_path);
	free(db->default_vhost);
	free(db);
}

const char *userdb_path(const struct userdb *db)
{
	return db->path;
}

void userdb_set_warn(struct userdb *db, void (*warn)(void *arg, const char *msg), void *arg)
{
	db->warn = warn;
	db->warn_arg = arg;
}

/* ---- users ---- */

const struct userdb_user *userdb_user_get(const struct userdb *db, const char *name)
{
	const struct user *u = find_user(db, name);
	return u ? &u->view : NULL;
}

static int check_hash(const char *name, const char *hash, char *err, size_t errlen)
{
	struct passwd_hash h;
	char why[256];
	if (!hash || !passwd_is_hash(hash)) {
		snprintf(err, errlen, "user '%s': expected a password hash, not a password (mqbroker --hash-password "
		         "makes one)", name);
		return -1;
	}
	if (passwd_parse(hash, &h, why, sizeof why) < 0) {
		snprintf(err, errlen, "user '%s': bad password hash: %s", name, why);
		return -1;
	}
	return 0;
}

static int not_configured(const struct userdb *db, const char *what, const char *name, char *err, size_t errlen)
{
	snprintf(err, errlen, "%s '%s' comes from the configuration file %s: change it there", what, name,
	         config_name(db));
	return -1;
}

static int unknown_user(const char *name, char *err, size_t errlen)
{
	snprintf(err, errlen, "unknown user '%s' (user list shows them all)", name);
	return -1;
}

static int unknown_vhost(const char *name, char *err, size_t errlen)
{
	snprintf(err, errlen, "unknown virtual host '%s' (vhost add %s creates it)", name, name);
	return -1;
}

int userdb_user_add(struct userdb *db, const char *name, const char *hash, bool admin, char *err, size_t errlen)
{
	struct user *u;
	if (userdb_check_user_name(name, err, errlen) < 0 || (hash && check_hash(name, hash, err, errlen) < 0))
		return -1;
	if (strmap_get(&db->config_users, name)) {
		snprintf(err, errlen, "user '%s' already exists (in the configuration file %s)", name, config_name(db));
		return -1;
	}
	if (strmap_get(&db->store_users, name)) {
		snprintf(err, errlen, "user '%s' already exists (user passwd %s changes the password)", name, name);
		return -1;
	}
	u = user_new(name, hash, hash ? USERDB_CRED_HASH : USERDB_CRED_NONE, admin, USERDB_STORE);
	strmap_put(&db->store_users, u->name, u);
	if (write_store(db, err, errlen) < 0) {
		strmap_del(&db->store_users, name);
		user_free(u);
		return -1;
	}
	refresh_live(db);
	return 0;
}

int userdb_user_passwd(struct userdb *db, const char *name, const char *hash, char *err, size_t errlen)
{
	struct user *u = strmap_get(&db->store_users, name);
	char *old;
	if (strmap_get(&db->config_users, name))
		return not_configured(db, "user", name, err, errlen);
	if (!u)
		return unknown_user(name, err, errlen);
	if (check_hash(name, hash, err, errlen) < 0)
		return -1;
	old = u->password;
	u->view.password = u->password = xstrdup(hash);
	u->view.cred = u->cred = USERDB_CRED_HASH;
	if (write_store(db, err, errlen) < 0) {
		free(u->password);
		u->view.password = u->password = old;
		u->view.cred = u->cred = old ? USERDB_CRED_HASH : USERDB_CRED_NONE;
		return -1;
	}
	free(old);
	return 0;
}

int userdb_user_delete(struct userdb *db, const char *name, char *err, size_t errlen)
{
	struct user *u = strmap_get(&db->store_users, name);
	bool shadowed = strmap_get(&db->config_users, name) != NULL;
	struct uperms *up = NULL;

	if (!u && shadowed)
		return not_configured(db, "user", name, err, errlen);
	if (!u)
		return unknown_user(name, err, errlen);
	strmap_del(&db->store_users, name);
	/* the permissions go with the user, unless a configured user of that
	 * name goes on using them */
	if (!shadowed && (up = strmap_get(&db->perms, name)))
		strmap_del(&db->perms, name);
	if (write_store(db, err, errlen) < 0) {
		strmap_put(&db->store_users, u->name, u);
		if (up)
			strmap_put(&db->perms, up->user, up);
		return -1;
	}
	user_free(u);
	uperms_free(up);
	refresh_live(db);
	return 0;
}

/* ---- virtual hosts ---- */

int userdb_vhost_add(struct userdb *db, const char *name, char *err, size_t errlen)
{
	struct vhost *v;
	if (userdb_check_vhost_name(name, err, errlen) < 0)
		return -1;
	if (userdb_vhost_exists(db, name)) {
		const struct vhost *old = find_vhost(db, name);
		snprintf(err, errlen, "virtual host '%s' already exists (%s)", name,
		         !old ? "the default virtual host" : old->source == USERDB_CONFIG ? "in the configuration file"
		                                                                         : "in the user store");
		return -1;
	}
	v = vhost_new(name, USERDB_STORE);
	strmap_put(&db->store_vhosts, v->name, v);
	if (write_store(db, err, errlen) < 0) {
		strmap_del(&db->store_vhosts, name);
		vhost_free(v);
		return -1;
	}
	refresh_live(db);
	return 0;
}

int userdb_vhost_delete(struct userdb *db, const char *name, char *err, size_t errlen)
{
	struct vhost *v = strmap_get(&db->store_vhosts, name);
	struct perm **taken = NULL;
	size_t ntaken = 0;
	void *upv;

	if (strcmp(name, db->default_vhost) == 0) {
		snprintf(err, errlen, "virtual host '%s' is the default one: it cannot be deleted", name);
		return -1;
	}
	if (strmap_get(&db->config_vhosts, name))
		return not_configured(db, "virtual host", name, err, errlen);
	if (!v) {
		snprintf(err, errlen, "unknown virtual host '%s' (vhost list shows them all)", name);
		return -1;
	}
	strmap_del(&db->store_vhosts, name);
	/* Collect first: perm_remove may free the map being walked. */
	taken = xcalloc(db->perms.count ? db->perms.count : 1, sizeof *taken);
	for (size_t i = 0; strmap_next(&db->perms, &i, NULL, &upv);) {
		struct perm *p = strmap_get(&((struct uperms *)upv)->by_vhost, name);
		if (p)
			taken[ntaken++] = p;
	}
	for (size_t i = 0; i < ntaken; i++)
		perm_remove(db, taken[i]);
	if (write_store(db, err, errlen) < 0) {
		strmap_put(&db->store_vhosts, v->name, v);
		for (size_t i = 0; i < ntaken; i++)
			perm_insert(db, taken[i]);
		free(taken);
		return -1;
	}
	for (size_t i = 0; i < ntaken; i++)
		perm_free(taken[i]);
	free(taken);
	vhost_free(v);
	refresh_live(db);
	return 0;
}

/* ---- permissions ---- */

int userdb_permit(struct userdb *db, const char *user, const char *vhost, const char *configure,
                  const char *send, const char *consume, char *err, size_t errlen)
{
	const char *grants[USERDB_NACTIONS] = { configure, send, consume };
	struct perm *p, *old;

	if (!find_user(db, user))
		return unknown_user(user, err, errlen);
	if (!userdb_vhost_exists(db, vhost))
		return unknown_vhost(vhost, err, errlen);
	if (!(p = perm_new(user, vhost, grants, err, errlen)))
		return -1;
	old = find_perm(db, user, vhost);
	if (old)
		perm_remove(db, old);
	perm_insert(db, p);
	if (write_store(db, err, errlen) < 0) {
		perm_remove(db, p);
		perm_free(p);
		if (old)
			perm_insert(db, old);
		return -1;
	}
	perm_free(old);
	refresh_live(db);
	return 0;
}

int userdb_unpermit(struct userdb *db, const char *user, const char *vhost, char *err, size_t errlen)
{
	struct perm *p = find_perm(db, user, vhost);
	if (!p) {
		if (!find_user(db, user))
			return unknown_user(user, err, errlen);
		if (!userdb_vhost_exists(db, vhost))
			return unknown_vhost(vhost, err, errlen);
		snprintf(err, errlen, "user '%s' has no permissions on virtual host '%s'", user, vhost);
		return -1;
	}
	perm_remove(db, p);
	if (write_store(db, err, errlen) < 0) {
		perm_insert(db, p);
		return -1;
	}
	perm_free(p);
	return 0;
}

enum userdb_verdict userdb_may(const struct userdb *db, const char *user, const char *vhost,
                               enum userdb_action action, const char *dest)
{
	const struct perm *p = find_perm(db, user, vhost);
	if (p && p->live)
		return (unsigned)action < USERDB_NACTIONS && grant_match(&p->g[action], dest) ? USERDB_ALLOW
		                                                                              : USERDB_DENY;
	if (!find_user(db, user))
		return USERDB_NO_USER;
	if (!userdb_vhost_exists(db, vhost))
		return USERDB_NO_VHOST;
	return USERDB_NO_GRANTS;
}

void userdb_explain(const struct userdb *db, enum userdb_verdict verdict, const char *user, const char *vhost,
                    enum userdb_action action, const char *dest, char *err, size_t errlen)
{
	static const char *const preps[USERDB_NACTIONS] = { "", " to", " from" };
	const char *an = userdb_action_name(action), *prep = (unsigned)action < USERDB_NACTIONS ? preps[action] : "";
	const struct perm *p;

	switch (verdict) {
	case USERDB_ALLOW:
		snprintf(err, errlen, "%s may %s%s %s in virtual host '%s'", user, an, prep, dest, vhost);
		return;
	case USERDB_DENY:
		p = find_perm(db, user, vhost);
		if (p && p->g[action].kind == GRANT_NONE)
			snprintf(err, errlen, "%s may not %s%s %s in virtual host '%s': the %s grant is empty", user, an,
			         prep, dest, vhost, an);
		else
			snprintf(err, errlen, "%s may not %s%s %s in virtual host '%s': the %s grant '%s' does not match",
			         user, an, prep, dest, vhost, an, p ? p->g[action].pattern : "?");
		return;
	case USERDB_NO_GRANTS:
		snprintf(err, errlen, "%s has no permissions on virtual host '%s' (permit %s vhost=%s CONFIGURE SEND "
		         "CONSUME grants them)", user, vhost, user, vhost);
		return;
	case USERDB_NO_USER:
		snprintf(err, errlen, "unknown user '%s'", user);
		return;
	case USERDB_NO_VHOST:
		snprintf(err, errlen, "unknown virtual host '%s'", vhost);
		return;
	}
	snprintf(err, errlen, "?");
}

/* ---- listings ---- */

static int user_order(const void *a, const void *b)
{
	const struct userdb_user *x = a, *y = b;
	int c = strcmp(x->name, y->name);
	return c ? c : (int)y->source - (int)x->source;	/* the configured one first */
}

struct userdb_user *userdb_user_list(const struct userdb *db, size_t *n)
{
	struct userdb_user *out = xcalloc(db->config_users.count + db->store_users.count + 1, sizeof *out);
	const struct strmap *maps[] = { &db->config_users, &db->store_users };
	void *v;

	*n = 0;
	for (size_t m = 0; m < ARRAY_LEN(maps); m++) {
		for (size_t i = 0; strmap_next(maps[m], &i, NULL, &v);) {
			const struct user *u = v;
			out[*n] = (struct userdb_user){ u->name, u->password, u->cred, u->admin, u->source,
			                                m == 1 && strmap_get(&db->config_users, u->name) != NULL };
			(*n)++;
		}
	}
	qsort(out, *n, sizeof *out, user_order);
	return out;
}

static int vhost_order(const void *a, const void *b)
{
	const struct userdb_vhost *x = a, *y = b;
	int c = strcmp(x->name, y->name);
	return c ? c : (int)y->source - (int)x->source;
}

struct userdb_vhost *userdb_vhost_list(const struct userdb *db, size_t *n)
{
	struct userdb_vhost *out = xcalloc(db->config_vhosts.count + db->store_vhosts.count + 1, sizeof *out);
	void *v;

	out[0] = (struct userdb_vhost){ db->default_vhost, USERDB_DEFAULT, false };
	*n = 1;
	for (size_t i = 0; strmap_next(&db->config_vhosts, &i, NULL, &v);)
		out[(*n)++] = (struct userdb_vhost){ ((struct vhost *)v)->name, USERDB_CONFIG, false };
	for (size_t i = 0; strmap_next(&db->store_vhosts, &i, NULL, &v);) {
		const char *name = ((struct vhost *)v)->name;
		out[(*n)++] = (struct userdb_vhost){ name, USERDB_STORE,
		                                     strcmp(name, db->default_vhost) == 0 ||
		                                             strmap_get(&db->config_vhosts, name) != NULL };
	}
	qsort(out, *n, sizeof *out, vhost_order);
	return out;
}

static int perm_order(const void *a, const void *b)
{
	const struct userdb_perm *x = a, *y = b;
	int c = strcmp(x->user, y->user);
	return c ? c : strcmp(x->vhost, y->vhost);
}

struct userdb_perm *userdb_perm_list(const struct userdb *db, const char *user, const char *vhost, size_t *n)
{
	size_t cap = 16;
	struct userdb_perm *out = xcalloc(cap, sizeof *out);
	void *upv, *pv;

	*n = 0;
	for (size_t i = 0; strmap_next(&db->perms, &i, NULL, &upv);) {
		const struct uperms *up = upv;
		if (user && strcmp(up->user, user) != 0)
			continue;
		for (size_t j = 0; strmap_next(&up->by_vhost, &j, NULL, &pv);) {
			const struct perm *p = pv;
			if (vhost && strcmp(p->vhost, vhost) != 0)
				continue;
			if (*n == cap)
				out = xrealloc(out, (cap *= 2) * sizeof *out);
			out[*n] = (struct userdb_perm){ p->user, p->vhost,
			                                { p->g[0].pattern, p->g[1].pattern, p->g[2].pattern }, p->live };
			(*n)++;
		}
	}
	qsort(out, *n, sizeof *out, perm_order);
	return out;
}
