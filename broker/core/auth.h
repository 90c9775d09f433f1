/* auth.h: who is asking, and may they.
 *
 * A principal is who acts: a STOMP connection's user, an HTTP request's,
 * a bridge's. Every way in fills one and every check reads it: the core's
 * publish entry point, subscriptions, admin commands.
 *
 * Authentication checks a login and passcode against the configured users
 * (or takes a verified certificate's CN). Authorization asks the Lua
 * authorize() rule when the configuration defines one; otherwise the
 * default policy applies: clients on a loopback address may connect, send
 * and subscribe; remote clients may when no users are configured, or once
 * authenticated when there are; admin actions need a user marked admin,
 * or, while no users are configured, a loopback client. A configured user
 * without a passcode logs in only with a verified certificate. */
#ifndef MQ_AUTH_H
#define MQ_AUTH_H

#include <stdbool.h>
#include <stddef.h>

#include "rules/router.h"

struct broker;
struct sockaddr;
struct vhost;

struct principal {
	char *login;			/* owned; NULL when anonymous */
	struct vhost *vhost;		/* borrowed; the default one until CONNECT names another */
	char peer[64];			/* "127.0.0.1:50122", "[::1]:50122", "unix" */
	bool loopback;
	bool authenticated;		/* passcode checked, or certificate verified */
	bool admin;			/* a configured user marked admin */
	bool cert_login;		/* the login came from a verified certificate */
};

/* Fills peer and loopback from a socket address. */
void principal_set_peer(struct principal *p, const struct sockaddr *sa);
/* Replaces the login (NULL for anonymous). */
void principal_set_login(struct principal *p, const char *login);
void principal_fini(struct principal *p);

/* Checks a login and passcode against the configured users and fills in
 * p (authenticated, admin); -1 with the reason on a mismatch. An empty
 * login is anonymous (accepted: the authorization rules decide). With
 * users configured, an unknown login is refused; without, any login is
 * taken as given. A certificate login (p->cert_login) needs no passcode. */
int auth_login(struct broker *b, struct principal *p, const char *login, const char *passcode,
               char *err, size_t errlen);
/* HTTP Basic: the login must be a configured user. */
int auth_check_user(struct broker *b, const char *login, const char *passcode, bool *admin,
                    char *err, size_t errlen);
/* May p perform `action` on `dest` (NULL for connect and admin)? */
bool auth_allow(struct broker *b, const struct principal *p, enum authz_action action, const char *dest,
                char *err, size_t errlen);
const char *authz_action_name(enum authz_action a);
/* May p look at the broker: the web console's pages and live figures
 * (acting still needs AUTHZ_ADMIN)? An admin may, and for now so may any
 * authenticated user: the users issue refines this to users granted
 * consume rights. */
bool auth_may_view(struct broker *b, const struct principal *p);

#endif
