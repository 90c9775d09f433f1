/* auth.h: who may connect, and who may do what.
 *
 * Authentication checks a login and passcode against the configured users
 * (or takes a verified certificate's CN). Authorization asks the Lua
 * authorize() rule when the configuration defines one; otherwise the
 * default policy applies: everything is allowed to clients on a loopback
 * address; remote clients may connect, send and subscribe when no users
 * are configured, or once authenticated when there are; admin actions
 * need a loopback client or a user marked admin. */
#ifndef MQ_AUTH_H
#define MQ_AUTH_H

#include <stdbool.h>
#include <stddef.h>

#include "rules/router.h"

struct broker;
struct conn;

/* Who is asking, whatever the transport (STOMP connection, HTTP request). */
struct principal {
	const char *login;		/* NULL when anonymous */
	const char *peer;		/* "127.0.0.1:50122" */
	const char *vhost;
	bool loopback;
	bool authenticated;
	bool admin;			/* a configured user marked admin */
};

/* Checks a login and passcode against the configured users (HTTP Basic). */
int auth_check_user(struct broker *b, const char *login, const char *passcode, bool *admin,
                    char *err, size_t errlen);
bool auth_allow_principal(struct broker *b, const struct principal *p, enum authz_action action,
                          const char *dest, char *err, size_t errlen);

/* Checks CONNECT's login/passcode; -1 with the reason on a mismatch. */
int auth_login(struct broker *b, struct conn *c, const char *login, const char *passcode,
               char *err, size_t errlen);
/* May c perform `action` on `dest` (NULL for connect/admin)? */
bool auth_allow(struct broker *b, struct conn *c, enum authz_action action, const char *dest,
                char *err, size_t errlen);
const char *authz_action_name(enum authz_action a);

#endif
