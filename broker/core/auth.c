/* auth.c: principals, logins and the default authorization policy. */
#include "core/auth.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "core/broker.h"
#include "common/log.h"
#include "common/util.h"

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
	}
	return "?";
}

/* Constant-time comparison, so that a passcode cannot be guessed byte by
 * byte from response times. */
static bool same_secret(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	unsigned char diff = (unsigned char)(la != lb);
	for (size_t i = 0; i < la; i++)
		diff |= (unsigned char)(a[i] ^ b[i % (lb ? lb : 1)]);
	return diff == 0;
}

/* The passcode check for a configured user: a user without one logs in
 * only with a verified certificate. */
static int check_passcode(const struct user_cfg *u, const char *login, const char *passcode, char *err,
                          size_t errlen)
{
	if (!u->passcode) {
		snprintf(err, errlen, "authentication failed for login '%s': this user logs in with a TLS client "
		         "certificate only", login);
		return -1;
	}
	if (same_secret(u->passcode, passcode ? passcode : ""))
		return 0;
	snprintf(err, errlen, "authentication failed for login '%s': wrong passcode", login);
	return -1;
}

int auth_login(struct broker *b, struct principal *c, const char *login, const char *passcode,
               char *err, size_t errlen)
{
	if (c->cert_login) {
		/* The certificate already said who this is; a user of that
		 * name may still be an admin. */
		for (size_t i = 0; i < b->cfg.nusers; i++)
			if (strcmp(b->cfg.users[i].login, c->login) == 0)
				c->admin = b->cfg.users[i].admin;
		return 0;
	}
	if (!login || !*login)
		return 0;	/* anonymous: the authorize rules decide */
	for (size_t i = 0; i < b->cfg.nusers; i++) {
		const struct user_cfg *u = &b->cfg.users[i];
		if (strcmp(u->login, login) != 0)
			continue;
		if (check_passcode(u, login, passcode, err, errlen) < 0)
			return -1;
		c->authenticated = true;
		c->admin = u->admin;
		return 0;
	}
	if (b->cfg.nusers) {
		/* Users are configured and this is not one of them. */
		snprintf(err, errlen, "authentication failed: unknown login '%s'", login);
		return -1;
	}
	return 0;	/* no users configured: logins are accepted as given */
}

int auth_check_user(struct broker *b, const char *login, const char *passcode, bool *admin,
                    char *err, size_t errlen)
{
	for (size_t i = 0; i < b->cfg.nusers; i++) {
		const struct user_cfg *u = &b->cfg.users[i];
		if (strcmp(u->login, login) != 0)
			continue;
		if (check_passcode(u, login, passcode, err, errlen) < 0)
			return -1;
		*admin = u->admin;
		return 0;
	}
	snprintf(err, errlen, "authentication failed: unknown login '%s'", login);
	return -1;
}

bool auth_allow(struct broker *b, const struct principal *c, enum authz_action action, const char *dest,
                char *err, size_t errlen)
{
	const char *who = c->login ? c->login : "(anonymous)";

	if (router_has_authorize(b->router)) {
		struct authz_req req = {
			.login = c->login,
			.action = action,
			.destination = dest,
			.vhost = c->vhost ? c->vhost->name : NULL,
			.peer = c->peer,
			.loopback = c->loopback,
			.authenticated = c->authenticated,
			.admin_user = c->admin,
		};
		char reason[256] = "";
		switch (router_authorize(b->router, &req, reason, sizeof reason)) {
		case AUTHZ_ALLOW:
			return true;
		case AUTHZ_DENY:
			if (dest)
				snprintf(err, errlen, "%s is not allowed to %s %s%s%s", who, authz_action_name(action),
				         dest, reason[0] ? ": " : "", reason);
			else
				snprintf(err, errlen, "%s is not allowed to %s%s%s", who, authz_action_name(action),
				         reason[0] ? ": " : "", reason);
			return false;
		case AUTHZ_NO_RULE:
			break;
		}
	}
	if (action == AUTHZ_ADMIN) {
		/* Once users exist, being on this machine is not enough: any
		 * local account could otherwise administer the broker. */
		if (c->admin || (c->loopback && !b->cfg.nusers))
			return true;
		if (b->cfg.nusers)
			snprintf(err, errlen, "%s is not allowed to use admin commands: log in as a user marked admin "
			         "(users are configured, so a loopback address is not enough)", who);
		else
			snprintf(err, errlen, "%s is not allowed to use admin commands from %s (only loopback clients and "
			         "users marked admin are)", who, c->peer);
		return false;
	}
	if (c->loopback)
		return true;
	if (!b->cfg.nusers || c->authenticated)
		return true;
	snprintf(err, errlen, "%s from %s must log in as a configured user to %s", who, c->peer,
	         authz_action_name(action));
	return false;
}

bool auth_may_view(struct broker *b, const struct principal *p)
{
	char err[256];
	return p->authenticated || auth_allow(b, p, AUTHZ_ADMIN, NULL, err, sizeof err);
}
