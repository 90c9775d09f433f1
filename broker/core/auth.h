/* auth.h: who is asking, and may they.
 *
 * A principal is who acts: a STOMP connection's user, an HTTP request's,
 * an admin port client's. Every way in fills one and every check reads
 * it: the core's publish entry point, subscriptions, admin commands.
 *
 * Users come from the configuration file and the user store
 * (auth/userdb.h); passwords are checked by the verifier (auth/verifier.h)
 * off the loop, so a login may be answered later: auth_login() and
 * auth_check_user() return AUTH_PENDING and call back. Failed logins are
 * counted per peer and slow that peer's next answers (auth/slowdown.h).
 *
 * The policy (docs/security.md says it for people):
 * - Admin actions need a user with the admin tag; while no user exists at
 *   all, a loopback client is enough.
 * - A principal logged in as a user is judged by that user's grants on its
 *   virtual host: configure, send, consume, each a regular expression over
 *   destination names. A user of the configuration file that has no
 *   permission anywhere keeps the rights it had before grants existed:
 *   everything, everywhere. A stored user without permissions has none.
 *   A SEND or SUBSCRIBE that would create a queue or a pubsub also needs
 *   the configure grant; temporary queues are outside the grants.
 * - Anyone else (anonymous, or a login taken as given while no user
 *   exists) may act from a loopback address, and from elsewhere only with
 *   allow_anonymous.
 * - The Lua authorize() rule, when defined, is asked after all that allowed
 *   an action, and may still refuse it. */
#ifndef MQ_AUTH_H
#define MQ_AUTH_H

#include <stdbool.h>
#include <stddef.h>

#include "rules/router.h"

struct broker;
struct sockaddr;
struct vhost;
struct userdb;

struct principal {
	char *login;			/* owned; NULL when anonymous */
	struct vhost *vhost;		/* borrowed; the default one until CONNECT names another */
	char peer[64];			/* "127.0.0.1:50122", "[::1]:50122", "unix" */
	bool loopback;
	bool authenticated;		/* password checked, or certificate verified */
	bool admin;			/* a user with the admin tag */
	bool cert_login;		/* the login came from a verified certificate */
};

/* Fills peer and loopback from a socket address. */
void principal_set_peer(struct principal *p, const struct sockaddr *sa);
/* Replaces the login (NULL for anonymous). */
void principal_set_login(struct principal *p, const char *login);
void principal_fini(struct principal *p);

/* ---- the broker's users (set up by broker_core_init) ---- */

/* Opens the user store in the data directory (a store that does not parse
 * refuses start-up: err says which file, where, and the way out), starts
 * the verifier's workers, and says in the log what clients from other
 * machines may do. */
int auth_init(struct broker *b, char *err, size_t errlen);
void auth_fini(struct broker *b);
/* Reload: the configured users and virtual hosts of nw replace the old
 * ones; -1 (nothing changed) when one of them is unusable. */
int auth_config_changed(struct broker *b, const struct config *nw, char *err, size_t errlen);
/* Once a second: forgets failures that have decayed. */
void auth_tick(struct broker *b);
struct userdb *auth_userdb(struct broker *b);
/* How many users exist (either source): none means the open defaults. */
size_t auth_user_count(struct broker *b);
/* After `user passwd` or `user delete`: cached logins of login go. */
void auth_forget(struct broker *b, const char *login);

/* Counters for stats and /metrics. */
struct auth_stats {
	unsigned long long logins_failed;	/* wrong password, unknown login, ... */
	unsigned long long logins_delayed;	/* answers held back for a peer's failures */
	unsigned long long logins_busy;		/* refused: too many passwords waiting to be checked */
	unsigned long long login_cache_hits;	/* answered from the verifier's cache */
	unsigned long long password_checks;	/* PBKDF2 verifications a worker ran */
	unsigned long long slowed_peers;	/* peers with failures on record now */
};
void auth_get_stats(struct broker *b, struct auth_stats *out);

/* ---- logins ---- */

#define AUTH_PENDING 1

struct auth_wait;
/* The answer of a login that was AUTH_PENDING: rc 0 (p is filled in) or
 * -1 with the reason for the client. */
typedef void (*auth_done_fn)(int rc, const char *err, void *arg);

/* Checks a login and password for a client about to be served (STOMP
 * CONNECT) and fills in p (login, authenticated, admin). Returns 0 when
 * accepted, -1 with the reason when refused, or AUTH_PENDING: then
 * done(arg) gets the answer from the loop later, *wait names the request
 * for auth_wait_cancel(), and p must stay where it is until then. An
 * empty login is anonymous (the policy decides what it may do); while no
 * user exists any login is taken as given, unchecked. A certificate login
 * (p->cert_login, p->login its CN) needs no password, but once users
 * exist the CN must be one of them. The answer to a peer with recent
 * failures is held back (slowdown.h), right or wrong. */
int auth_login(struct broker *b, struct principal *p, const char *login, const char *passcode,
               auth_done_fn done, void *arg, struct auth_wait **wait, char *err, size_t errlen);
/* The same for HTTP Basic and the admin port, where the login must be a
 * user: anonymous and unknown logins are refused. */
int auth_check_user(struct broker *b, struct principal *p, const char *login, const char *passcode,
                    auth_done_fn done, void *arg, struct auth_wait **wait, char *err, size_t errlen);
/* done will not be called (the client went away). */
void auth_wait_cancel(struct broker *b, struct auth_wait *w);

/* The virtual host a CONNECT's host header names: a virtual host of that
 * name; the default one for no header, "/", or a name of this machine
 * (localhost, its host name, one of its addresses: what stomp.py sends
 * when it is not told a virtual host). NULL with the error otherwise. */
struct vhost *auth_connect_vhost(struct broker *b, const char *host, char *err, size_t errlen);

/* ---- authorization ---- */

/* May p perform `action` on `dest` (NULL for connect and admin)? In p's
 * virtual host; -1-free: false with the reason. */
bool auth_allow(struct broker *b, const struct principal *p, enum authz_action action, const char *dest,
                char *err, size_t errlen);
/* May p look at the broker (the web console): an admin, or a user with a
 * consume grant somewhere (or, while no user exists, a loopback client). */
bool auth_may_view(struct broker *b, const struct principal *p);
const char *authz_action_name(enum authz_action a);

#endif
