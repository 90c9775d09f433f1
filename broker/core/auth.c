/* auth.c: principals, logins through the verifier, and the policy. */
#include "core/auth.h"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>

#include "auth/slowdown.h"
#include "auth/userdb.h"
#include "auth/verifier.h"
#include "common/log.h"
#include "common/util.h"
#include "core/broker.h"
#include "core/dest.h"
#include "core/tempq.h"

/* Our own addresses are looked up again at most this often (for host
 * headers that name this machine). */
#define ADDRS_REFRESH_MS 10000

struct auth_wait {
	LIST_ENTRY(auth_wait) link;
	struct auth *a;
	struct principal *p;		/* borrowed; filled in on success */
	auth_done_fn done;
	void *arg;
	struct verify_req *req;		/* while a worker checks the password */
	struct event *delay;		/* owned; while the peer's answer is held back */
	bool verifying, delaying;
	int rc;				/* the verdict, once known */
	bool admin;
	char login[256];
	char err[400];
};

struct auth {
	struct broker *b;
	struct userdb *db;		/* owned */
	struct verifier *v;		/* owned */
	struct slowdown *slow;		/* owned */
	LIST_HEAD(, auth_wait) waits;	/* logins not answered yet */
	struct auth_stats st;
	/* addresses of this machine, for host headers */
	struct sockaddr_storage *addrs;	/* owned */
	size_t naddrs;
	uint64_t addrs_ms;
	char hostname[256];
};

/* ---- principals ---- */

void principal_set_peer(struct principal *p, const struct sockaddr *sa)
{
	char host[INET6_ADDRSTRLEN] = "?";
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
		inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
		p->loopback = (ntohl(in->sin_addr.s_addr) >> 24) == 127;
		snprintf(p->peer, sizeof p->peer, "%s:%d", host, ntohs(in->sin_port));
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
		inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
		p->loopback = IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr) ||
		              (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr) && in6->sin6_addr.s6_addr[12] == 127);
		snprintf(p->peer, sizeof p->peer, "[%s]:%d", host, ntohs(in6->sin6_port));
	} else if (sa->sa_family == AF_UNIX) {
		snprintf(p->peer, sizeof p->peer, "unix");
		p->loopback = true;
	}
}

void principal_set_login(struct principal *p, const char *login)
{
	free(p->login);
	p->login = login ? xstrdup(login) : NULL;
}

void principal_fini(struct principal *p)
{
	free(p->login);
	p->login = NULL;
}

const char *authz_action_name(enum authz_action a)
{
	switch (a) {
	case AUTHZ_CONNECT: return "connect";
	case AUTHZ_SEND: return "send";
	case AUTHZ_SUBSCRIBE: return "subscribe";
	case AUTHZ_ADMIN: return "admin";
	case AUTHZ_CONFIGURE: return "configure";
	}
	return "?";
}

/* ---- set-up ---- */

static bool addr_is_loopback(const char *addr)
{
	struct in_addr a4;
	struct in6_addr a6;
	if (!addr || !*addr || strcmp(addr, "*") == 0)
		return false;	/* every address */
	if (inet_pton(AF_INET, addr, &a4) == 1)
		return (ntohl(a4.s_addr) >> 24) == 127;
	if (inet_pton(AF_INET6, addr, &a6) == 1)
		return IN6_IS_ADDR_LOOPBACK(&a6);
	return strcmp(addr, "localhost") == 0;
}

/* Does anything listen where other machines can reach it? */
static bool listens_beyond_loopback(const struct config *c)
{
	const char *plain = NULL;
	for (size_t i = 0; i < c->nlisteners; i++) {
		if (!addr_is_loopback(c->listeners[i].address))
			return true;
		if (!c->listeners[i].tls && !plain)
			plain = c->listeners[i].address;
	}
	/* HTTP, WebSocket and the admin port bind where the first plain
	 * listener does (every address without one). */
	if ((c->http_port || c->http_any_port || c->ws_port || c->wss_port || c->admin_port) &&
	    !addr_is_loopback(plain))
		return true;
	return false;
}

static void say_policy(struct auth *a)
{
	const struct config *c = &a->b->cfg;
	size_t n = userdb_user_count(a->db);
	if (!listens_beyond_loopback(c))
		return;
	if (n && c->allow_anonymous)
		log_warn("%zu user%s; allow_anonymous = true: clients from other machines may also connect without "
		         "logging in", n, n == 1 ? "" : "s");
	else if (n)
		log_warn("%zu user%s: clients from other machines must log in as one (loopback clients need not)", n,
		         n == 1 ? "" : "s");
	else if (c->allow_anonymous)
		log_warn("no users and allow_anonymous = true: anyone who reaches the broker may connect, send and "
		         "subscribe");
	else
		log_warn("no users: clients from other machines are refused until one is added (mqsh user add NAME), "
		         "or allow_anonymous = true lets them in; loopback clients are served as always");
}

int auth_init(struct broker *b, char *err, size_t errlen)
{
	struct auth *a = xcalloc(1, sizeof *a);
	size_t n;
	struct userdb_vhost *vh;

	a->b = b;
	LIST_INIT(&a->waits);
	b->auth = a;
	if (!(a->db = userdb_open(b->cfg.data_dir, &b->cfg, err, errlen)))
		return -1;
	if (!(a->v = verifier_new(b->base, NULL, err, errlen)))
		return -1;
	a->slow = slowdown_new(NULL);
	/* The virtual hosts of the store exist from the start, like the
	 * configured ones. */
	vh = userdb_vhost_list(a->db, &n);
	for (size_t i = 0; i < n; i++)
		if (vh[i].source == USERDB_STORE && !vh[i].shadowed)
			broker_vhost_ensure(b, vh[i].name);
	free(vh);
	if (gethostname(a->hostname, sizeof a->hostname) < 0)
		a->hostname[0] = 0;
	a->hostname[sizeof a->hostname - 1] = 0;
	say_policy(a);
	return 0;
}

void auth_fini(struct broker *b)
{
	struct auth *a = b->auth;
	struct auth_wait *w;
	if (!a)
		return;
	while ((w = LIST_FIRST(&a->waits)))
		auth_wait_cancel(b, w);
	verifier_free(a->v);
	slowdown_free(a->slow);
	userdb_free(a->db);
	free(a->addrs);
	free(a);
	b->auth = NULL;
}

int auth_config_changed(struct broker *b, const struct config *nw, char *err, size_t errlen)
{
	return userdb_set_config(b->auth->db, nw, err, errlen);
}

void auth_tick(struct broker *b)
{
	if (b->auth)
		slowdown_expire(b->auth->slow, mono_ms());
}

struct userdb *auth_userdb(struct broker *b)
{
	return b->auth->db;
}

size_t auth_user_count(struct broker *b)
{
	return b->auth ? userdb_user_count(b->auth->db) : 0;
}

void auth_forget(struct broker *b, const char *login)
{
	verifier_forget(b->auth->v, login);
}

void auth_get_stats(struct broker *b, struct auth_stats *out)
{
	struct verifier_stats vs;
	struct slowdown_stats ss;
	*out = b->auth->st;
	verifier_get_stats(b->auth->v, &vs);
	slowdown_get_stats(b->auth->slow, &ss);
	out->login_cache_hits = vs.hits;
	out->password_checks = vs.computed;
	out->slowed_peers = ss.records;
}

/* ---- logins ---- */

/* A refused login: counted against the peer, counted, told to listeners
 * (never with the password), logged while the peer is not flooding. */
static void failed(struct auth *a, const struct principal *p, const char *login, const char *why)
{
	unsigned n = slowdown_failed(a->slow, p->peer, mono_ms());
	const char *fields[] = { "peer", p->peer, "login", login ? login : "", "reason", why, NULL };
	a->st.logins_failed++;
	if (n <= 3 || n % 100 == 0)
		log_warn("login failed from %s (login '%s'): %s%s", p->peer, login ? login : "", why,
		         n > 3 ? " (this peer keeps failing: its answers are slowed)" : "");
	broker_event(a->b, "login-failed", fields);
}

static void succeeded(struct principal *p, const char *login, bool admin)
{
	principal_set_login(p, login);
	p->authenticated = true;
	p->admin = admin;
}

/* Calls the waiter back once both the check and the delay are over. */
static void wait_finish(struct auth_wait *w)
{
	auth_done_fn done = w->done;
	void *arg = w->arg;
	char err[sizeof w->err];
	int rc = w->rc;
	if (w->verifying || w->delaying)
		return;
	if (rc == 0)
		succeeded(w->p, w->login, w->admin);
	snprintf(err, sizeof err, "%s", w->err);
	LIST_REMOVE(w, link);
	if (w->delay)
		event_free(w->delay);
	free(w);
	done(rc, err, arg);
}

static void delay_over(evutil_socket_t fd, short what, void *arg)
{
	struct auth_wait *w = arg;
	(void)fd;
	(void)what;
	w->delaying = false;
	wait_finish(w);
}

static void verified(enum verify_status st, void *arg)
{
	struct auth_wait *w = arg;
	w->verifying = false;
	w->req = NULL;
	if (st == VERIFY_OK) {
		w->rc = 0;
	} else {
		w->rc = -1;
		if (st == VERIFY_WRONG) {
			snprintf(w->err, sizeof w->err, "authentication failed for login '%s': wrong passcode", w->login);
			failed(w->a, w->p, w->login, "wrong password");
		} else {
			snprintf(w->err, sizeof w->err, "authentication failed for login '%s': the stored password "
			         "cannot be checked (see the broker's log)", w->login);
		}
	}
	wait_finish(w);
}

static struct auth_wait *wait_new(struct auth *a, struct principal *p, auth_done_fn done, void *arg,
                                  const char *login, bool admin)
{
	struct auth_wait *w = xcalloc(1, sizeof *w);
	w->a = a;
	w->p = p;
	w->done = done;
	w->arg = arg;
	w->admin = admin;
	snprintf(w->login, sizeof w->login, "%s", login);
	return w;
}

/* Holds w's answer back for delay ms (the peer's failures), and lists it. */
static int wait_start(struct auth_wait *w, uint64_t delay, struct auth_wait **wait)
{
	if (delay) {
		struct timeval tv = { (time_t)(delay / 1000), (suseconds_t)(delay % 1000) * 1000 };
		w->delay = evtimer_new(w->a->b->base, delay_over, w);
		w->delaying = true;
		evtimer_add(w->delay, &tv);
		w->a->st.logins_delayed++;
	}
	LIST_INSERT_HEAD(&w->a->waits, w, link);
	*wait = w;
	return AUTH_PENDING;
}

/* A verdict known at once: answered now, or after the peer's delay. */
static int answer(struct auth *a, struct principal *p, int rc, const char *login, bool admin, uint64_t delay,
                  auth_done_fn done, void *arg, struct auth_wait **wait, const char *err)
{
	struct auth_wait *w;
	if (!delay) {
		if (rc == 0)
			succeeded(p, login, admin);
		return rc;
	}
	w = wait_new(a, p, done, arg, login, admin);
	w->rc = rc;
	snprintf(w->err, sizeof w->err, "%s", rc ? err : "");
	return wait_start(w, delay, wait);
}

/* The password check of a user; 0, -1 or AUTH_PENDING as auth_login(). */
static int check_password(struct auth *a, struct principal *p, const struct userdb_user *u, const char *passcode,
                          auth_done_fn done, void *arg, struct auth_wait **wait, char *err, size_t errlen)
{
	uint64_t delay = slowdown_delay(a->slow, p->peer, mono_ms());
	struct verify_req *req = NULL;
	struct auth_wait *w;
	int rc = -1;

	if (u->cred == USERDB_CRED_NONE) {
		snprintf(err, errlen, "authentication failed for login '%s': this user logs in with a TLS client "
		         "certificate only", u->name);
		failed(a, p, u->name, "certificate-only user gave a password");
		return answer(a, p, -1, u->name, u->admin, delay, done, arg, wait, err);
	}
	w = wait_new(a, p, done, arg, u->name, u->admin);
	switch (verifier_check(a->v, u->name, passcode ? passcode : "", u->password, verified, w, &req)) {
	case VERIFY_PENDING:
		w->req = req;
		w->verifying = true;
		return wait_start(w, delay, wait);
	case VERIFY_OK:
		rc = 0;
		break;
	case VERIFY_BUSY:
		a->st.logins_busy++;
		snprintf(err, errlen, "the broker is busy checking other logins: try again in a moment");
		break;
	case VERIFY_WRONG:
		snprintf(err, errlen, "authentication failed for login '%s': wrong passcode", u->name);
		failed(a, p, u->name, "wrong password");
		break;
	case VERIFY_ERROR:
		snprintf(err, errlen, "authentication failed for login '%s': the stored password cannot be checked "
		         "(see the broker's log)", u->name);
		break;
	}
	free(w);
	return answer(a, p, rc, u->name, u->admin, delay, done, arg, wait, err);
}

/* A refusal before any password is looked at (unknown login): answered
 * after the peer's delay too, so that it reads like a wrong password. */
static int refuse_later(struct auth *a, struct principal *p, const char *login, const char *why,
                        auth_done_fn done, void *arg, struct auth_wait **wait, char *err, size_t errlen)
{
	uint64_t delay = slowdown_delay(a->slow, p->peer, mono_ms());
	snprintf(err, errlen, "%s", why);
	failed(a, p, login, "unknown login");
	return answer(a, p, -1, login, false, delay, done, arg, wait, err);
}

static int cert_login(struct auth *a, struct principal *p, char *err, size_t errlen)
{
	const struct userdb_user *u = userdb_user_get(a->db, p->login);
	if (!u && userdb_user_count(a->db)) {
		/* Any certificate the CAs signed would otherwise get in. */
		snprintf(err, errlen, "certificate login refused: its CN '%s' is no user of this broker (an "
		         "administrator adds it: user add '%s' certificate)", p->login, p->login);
		failed(a, p, p->login, "certificate CN is no user");
		return -1;
	}
	p->authenticated = true;
	p->admin = u && u->admin;
	return 0;
}

int auth_login(struct broker *b, struct principal *p, const char *login, const char *passcode,
               auth_done_fn done, void *arg, struct auth_wait **wait, char *err, size_t errlen)
{
	struct auth *a = b->auth;
	const struct userdb_user *u;
	char why[320];

	*wait = NULL;
	if (p->cert_login)
		return cert_login(a, p, err, errlen);
	if (!login || !*login) {
		principal_set_login(p, NULL);
		return 0;	/* anonymous: the policy decides */
	}
	if (!userdb_user_count(a->db)) {
		principal_set_login(p, login);	/* no users: taken as given, not authenticated */
		return 0;
	}
	if (!(u = userdb_user_get(a->db, login))) {
		snprintf(why, sizeof why, "authentication failed: unknown login '%s'", login);
		return refuse_later(a, p, login, why, done, arg, wait, err, errlen);
	}
	return check_password(a, p, u, passcode, done, arg, wait, err, errlen);
}

int auth_check_user(struct broker *b, struct principal *p, const char *login, const char *passcode,
                    auth_done_fn done, void *arg, struct auth_wait **wait, char *err, size_t errlen)
{
	struct auth *a = b->auth;
	const struct userdb_user *u;
	char why[320];

	*wait = NULL;
	if (!login || !*login) {
		snprintf(err, errlen, "authentication failed: no login given");
		return -1;
	}
	if (!(u = userdb_user_get(a->db, login))) {
		snprintf(why, sizeof why, "authentication failed: unknown login '%s'%s", login,
		         userdb_user_count(a->db) ? "" : " (the broker has no users: mqsh user add NAME makes one)");
		return refuse_later(a, p, login, why, done, arg, wait, err, errlen);
	}
	return check_password(a, p, u, passcode, done, arg, wait, err, errlen);
}

void auth_wait_cancel(struct broker *b, struct auth_wait *w)
{
	(void)b;
	if (!w)
		return;
	if (w->req)
		verifier_cancel(w->a->v, w->req);
	if (w->delay)
		event_free(w->delay);
	LIST_REMOVE(w, link);
	free(w);
}

/* ---- virtual hosts of CONNECT ---- */

static void refresh_addrs(struct auth *a)
{
	struct ifaddrs *ifa, *i;
	uint64_t now = mono_ms();
	if (a->addrs && now - a->addrs_ms < ADDRS_REFRESH_MS)
		return;
	a->addrs_ms = now;
	a->naddrs = 0;
	if (getifaddrs(&ifa) < 0)
		return;
	for (i = ifa; i; i = i->ifa_next) {
		if (!i->ifa_addr || (i->ifa_addr->sa_family != AF_INET && i->ifa_addr->sa_family != AF_INET6))
			continue;
		a->addrs = xrealloc(a->addrs, (a->naddrs + 1) * sizeof *a->addrs);
		memset(&a->addrs[a->naddrs], 0, sizeof *a->addrs);
		memcpy(&a->addrs[a->naddrs++], i->ifa_addr,
		       i->ifa_addr->sa_family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6));
	}
	freeifaddrs(ifa);
}

/* Is host a name or address of this machine? */
static bool own_name(struct auth *a, const char *host)
{
	char buf[256];
	size_t len = strlen(host);
	struct in_addr a4;
	struct in6_addr a6;

	if (len >= sizeof buf)
		return false;
	if (host[0] == '[' && host[len - 1] == ']') {	/* [::1] */
		memcpy(buf, host + 1, len - 2);
		buf[len - 2] = 0;
	} else {
		memcpy(buf, host, len + 1);
	}
	if (strcasecmp(buf, "localhost") == 0 || strcasecmp(buf, "localhost.localdomain") == 0 ||
	    strcasecmp(buf, "ip6-localhost") == 0)
		return true;
	if (a->hostname[0]) {
		size_t short_len = strcspn(a->hostname, ".");
		if (strcasecmp(buf, a->hostname) == 0 ||
		    (strlen(buf) > short_len && strncasecmp(buf, a->hostname, short_len) == 0 && buf[short_len] == '.') ||
		    (strlen(buf) == short_len && strncasecmp(buf, a->hostname, short_len) == 0))
			return true;	/* its host name, short or qualified */
	}
	if (inet_pton(AF_INET, buf, &a4) == 1) {
		if ((ntohl(a4.s_addr) >> 24) == 127 || a4.s_addr == 0)
			return true;
		refresh_addrs(a);
		for (size_t i = 0; i < a->naddrs; i++)
			if (a->addrs[i].ss_family == AF_INET &&
			    ((struct sockaddr_in *)&a->addrs[i])->sin_addr.s_addr == a4.s_addr)
				return true;
	} else if (inet_pton(AF_INET6, buf, &a6) == 1) {
		if (IN6_IS_ADDR_LOOPBACK(&a6) || IN6_IS_ADDR_UNSPECIFIED(&a6))
			return true;
		refresh_addrs(a);
		for (size_t i = 0; i < a->naddrs; i++)
			if (a->addrs[i].ss_family == AF_INET6 &&
			    memcmp(&((struct sockaddr_in6 *)&a->addrs[i])->sin6_addr, &a6, sizeof a6) == 0)
				return true;
	}
	return false;
}

static void known_vhosts(struct broker *b, char *buf, size_t len)
{
	size_t it = 0, n = 0, used = 0;
	const char *name;
	buf[0] = 0;
	while (strmap_next(&b->vhosts, &it, &name, NULL) && used + 4 < len) {
		int w = snprintf(buf + used, len - used, "%s%s", n++ ? ", " : "", name);
		if (w < 0 || (size_t)w >= len - used) {
			snprintf(buf + used, len - used, ", ...");
			break;
		}
		used += (size_t)w;
	}
}

struct vhost *auth_connect_vhost(struct broker *b, const char *host, char *err, size_t errlen)
{
	struct vhost *vh;
	char known[200];
	if (!host || !*host || strcmp(host, "/") == 0)
		return b->default_vhost;
	if ((vh = broker_vhost_find(b, host)))
		return vh;
	/* stomp.py (1.1 and 1.2) sends the host it connected to unless told
	 * a virtual host: that means "this broker", not a virtual host. */
	if (own_name(b->auth, host))
		return b->default_vhost;
	known_vhosts(b, known, sizeof known);
	snprintf(err, errlen, "unknown virtual host '%s' in the host header (virtual hosts: %s; no host header or "
	         "host:/ means the default one, %s)", host, known, b->default_vhost->name);
	return NULL;
}

/* ---- authorization ---- */

static enum userdb_action grant_of(enum authz_action a)
{
	switch (a) {
	case AUTHZ_SEND: return USERDB_SEND;
	case AUTHZ_SUBSCRIBE: return USERDB_CONSUME;
	default: return USERDB_CONFIGURE;
	}
}

/* Would a SEND or SUBSCRIBE to dest create a queue or a pubsub? */
static bool creates(struct broker *b, const struct principal *p, const char *dest)
{
	enum dest_type t;
	if (!p->vhost || dest_find(p->vhost, dest))
		return false;
	t = config_dest_type(&b->cfg, dest, NULL);
	return t == DEST_QUEUE || t == DEST_PUBSUB;
}

/* The grants of a logged-in user: true when they allow. */
static bool user_allows(struct broker *b, const struct principal *p, enum authz_action action, const char *dest,
                        char *err, size_t errlen)
{
	struct userdb *db = b->auth->db;
	const struct userdb_user *u = userdb_user_get(db, p->login);
	const char *vh = p->vhost ? p->vhost->name : userdb_default_vhost(db);
	enum userdb_verdict v;

	if (!u) {
		if (!userdb_user_count(db))
			return true;	/* a certificate login while no user exists */
		snprintf(err, errlen, "%s is no longer a user of this broker", p->login);
		return false;
	}
	if (u->source == USERDB_CONFIG && !userdb_user_has_perms(db, p->login))
		return true;	/* a configured user without grants: as before grants existed */
	if (action == AUTHZ_CONNECT) {
		/* Any permission on the virtual host opens it. */
		v = userdb_may(db, p->login, vh, USERDB_CONFIGURE, "");
		if (v == USERDB_ALLOW || v == USERDB_DENY)
			return true;
		userdb_explain(db, v, p->login, vh, USERDB_CONFIGURE, "", err, errlen);
		return false;
	}
	if ((action == AUTHZ_SEND || action == AUTHZ_SUBSCRIBE) && dest &&
	    (tempq_is_local(dest) || tempq_is_global(dest)))
		return true;	/* a client's own temporary queues, and replies to them */
	v = userdb_may(db, p->login, vh, grant_of(action), dest ? dest : "");
	if (v != USERDB_ALLOW) {
		userdb_explain(db, v, p->login, vh, grant_of(action), dest ? dest : "", err, errlen);
		return false;
	}
	if ((action == AUTHZ_SEND || action == AUTHZ_SUBSCRIBE) && creates(b, p, dest)) {
		v = userdb_may(db, p->login, vh, USERDB_CONFIGURE, dest);
		if (v != USERDB_ALLOW) {
			char why[300];
			userdb_explain(db, v, p->login, vh, USERDB_CONFIGURE, dest, why, sizeof why);
			snprintf(err, errlen, "%s does not exist, and creating it needs the configure grant: %s (an "
			         "administrator can create it)", dest, why);
			return false;
		}
	}
	return true;
}

/* The broker's own rules, before authorize(). */
static bool builtin_allows(struct broker *b, const struct principal *p, enum authz_action action, const char *dest,
                           char *err, size_t errlen)
{
	const char *who = p->login ? p->login : "(anonymous)";
	bool users;

	/* The common cases first, without counting users (which walks the
	 * store): this runs on every SEND. */
	if (action != AUTHZ_ADMIN) {
		if (p->authenticated && p->login)
			return user_allows(b, p, action, dest, err, errlen);
		if (p->loopback || b->cfg.allow_anonymous)
			return true;
	}
	users = auth_user_count(b) > 0;
	if (action == AUTHZ_ADMIN) {
		/* Once users exist, being on this machine is not enough: any
		 * local account could otherwise administer the broker. */
		if (p->admin || (p->loopback && !users))
			return true;
		if (users)
			snprintf(err, errlen, "%s is not allowed to use admin commands: log in as a user marked admin "
			         "(users are configured, so a loopback address is not enough)", who);
		else
			snprintf(err, errlen, "%s is not allowed to use admin commands from %s (only loopback clients and "
			         "users marked admin are)", who, p->peer);
		return false;
	}
	if (users)
		snprintf(err, errlen, "%s from %s must log in as a user to %s", who, p->peer, authz_action_name(action));
	else
		snprintf(err, errlen, "%s from %s refused: this broker has no users, and clients from other machines must "
		         "log in as one. On the broker's machine: mqsh user add NAME, then mqsh permit NAME "
		         "'.*' '.*' '.*' (or set allow_anonymous = true in the configuration file to let anyone in)",
		         who, p->peer);
	return false;
}

bool auth_allow(struct broker *b, const struct principal *p, enum authz_action action, const char *dest,
                char *err, size_t errlen)
{
	const char *who = p->login ? p->login : "(anonymous)";

	if (!builtin_allows(b, p, action, dest, err, errlen))
		return false;
	if (router_has_authorize(b->router)) {
		struct authz_req req = {
			.login = p->login,
			.action = action,
			.destination = dest,
			.vhost = p->vhost ? p->vhost->name : NULL,
			.peer = p->peer,
			.loopback = p->loopback,
			.authenticated = p->authenticated,
			.admin_user = p->admin,
		};
		char reason[256] = "";
		if (router_authorize(b->router, &req, reason, sizeof reason) == AUTHZ_DENY) {
			if (dest)
				snprintf(err, errlen, "%s is not allowed to %s %s%s%s", who, authz_action_name(action), dest,
				         reason[0] ? ": " : "", reason);
			else
				snprintf(err, errlen, "%s is not allowed to %s%s%s", who, authz_action_name(action),
				         reason[0] ? ": " : "", reason);
			return false;
		}
	}
	return true;
}

bool auth_may_view(struct broker *b, const struct principal *p)
{
	struct userdb *db = b->auth->db;
	const struct userdb_user *u;
	struct userdb_perm *perms;
	size_t n;
	bool yes = false;
	char err[320];

	if (builtin_allows(b, p, AUTHZ_ADMIN, NULL, err, sizeof err))
		return true;
	if (!p->authenticated || !p->login || !(u = userdb_user_get(db, p->login)))
		return false;
	if (u->source == USERDB_CONFIG && !userdb_user_has_perms(db, p->login))
		return true;	/* may consume everything */
	perms = userdb_perm_list(db, p->login, NULL, &n);
	for (size_t i = 0; i < n && !yes; i++)
		yes = perms[i].live && perms[i].grant[USERDB_CONSUME] && perms[i].grant[USERDB_CONSUME][0];
	free(perms);
	return yes;
}
