/* userdb.h: users, virtual hosts and permissions, changed at run time.
 *
 * Three sources, each entry saying which it came from:
 * - the user store, one JSON file in the data directory (users.json),
 *   changed by the operations below and nowhere else;
 * - the configuration file (struct config's users and vhosts), replaced
 *   wholesale by userdb_set_config() on every load;
 * - the default virtual host (config's default_vhost, "/" unless set).
 * A user or virtual host of the configuration file hides a stored one of
 * the same name (a warning says so) and cannot be changed from here.
 *
 * Permissions: per user and virtual host, three grants, each a POSIX
 * extended regular expression that a destination's whole name must match
 * ("/queue/lhcb\..*"): configure (create and delete destinations, attach
 * children), send, and consume (subscribe, browse). An empty grant allows
 * nothing, ".*" everything. They are kept in the store, for users of
 * either source.
 *
 * Every change is written to the store before it is made in memory: the
 * file is written aside, synced, renamed over the old one and the
 * directory synced. When any step fails the operation fails with the
 * reason and nothing changed, on disk or here. A store file that does not
 * parse stops userdb_open() with the file, the place and the way out:
 * never an empty store in its stead.
 *
 * Strings handed out (struct userdb_user and friends) are borrowed: valid
 * until the next change or userdb_set_config(). */
#ifndef MQ_USERDB_H
#define MQ_USERDB_H

#include <stdbool.h>
#include <stddef.h>

struct config;
struct userdb;

#define USERDB_FILE "users.json"
#define USERDB_NAME_MAX 128		/* bytes, user and virtual host names */
#define USERDB_GRANT_MAX 1024		/* bytes, one grant's expression */

enum userdb_source {
	USERDB_STORE = 0,	/* the user store, changed from mqsh */
	USERDB_CONFIG,		/* the configuration file */
	USERDB_DEFAULT,		/* the default virtual host */
};

enum userdb_cred {
	USERDB_CRED_HASH = 0,	/* a password hash (passwd.h) */
	USERDB_CRED_PLAIN,	/* a plain-text passcode (configuration file only; warned about) */
	USERDB_CRED_NONE,	/* no password: certificate login only */
};

enum userdb_action {
	USERDB_CONFIGURE = 0,	/* create and delete destinations, attach children */
	USERDB_SEND,		/* SEND, HTTP publish */
	USERDB_CONSUME,		/* SUBSCRIBE, browse */
};
#define USERDB_NACTIONS 3

enum userdb_verdict {
	USERDB_ALLOW = 0,	/* the user's grant matches the destination */
	USERDB_DENY,		/* the user has permissions on the virtual host; this grant does not match */
	USERDB_NO_GRANTS,	/* the user has no permissions on the virtual host */
	USERDB_NO_USER,		/* no such user */
	USERDB_NO_VHOST,	/* no such virtual host */
};

struct userdb_user {
	const char *name;
	const char *password;		/* the hash, the plain passcode, or NULL (see cred) */
	enum userdb_cred cred;
	bool admin;
	enum userdb_source source;
	bool shadowed;			/* stored, but hidden by a configured user of that name */
};

struct userdb_vhost {
	const char *name;
	enum userdb_source source;
	bool shadowed;
};

struct userdb_perm {
	const char *user;
	const char *vhost;
	const char *grant[USERDB_NACTIONS];	/* by enum userdb_action */
	bool live;			/* both the user and the virtual host exist */
};

/* Loads DATA_DIR/users.json if it exists (none: an empty store), then the
 * configuration (cfg may be NULL: no configured users, default vhost "/").
 * NULL with the reason, e.g. "user store /var/lib/mqbroker/users.json:
 * line 3, column 14: expected ',' or '}'; ...". */
struct userdb *userdb_open(const char *data_dir, const struct config *cfg, char *err, size_t errlen);
void userdb_free(struct userdb *db);
const char *userdb_path(const struct userdb *db);	/* the store file */

/* Warnings (a plain-text passcode, a hidden stored user, a permission
 * naming a user or virtual host that no longer exists) go to log_warn
 * unless a function is set here; each is given once per process. */
void userdb_set_warn(struct userdb *db, void (*warn)(void *arg, const char *msg), void *arg);

/* Replaces the configured users and virtual hosts (start-up, reload). -1
 * when one is unusable (a passcode that looks like a hash but does not
 * parse, a bad name): the previous configuration stays. */
int userdb_set_config(struct userdb *db, const struct config *cfg, char *err, size_t errlen);

/* The user who logs in under `name` (the configuration's before the
 * store's), or NULL. */
const struct userdb_user *userdb_user_get(const struct userdb *db, const char *name);
/* Has user any permission, on any virtual host (live or not)? */
bool userdb_user_has_perms(const struct userdb *db, const char *user);
/* Users there are, of either source: none means the broker's open defaults. */
size_t userdb_user_count(const struct userdb *db);
bool userdb_vhost_exists(const struct userdb *db, const char *name);
const char *userdb_default_vhost(const struct userdb *db);

/* `hash` must be a hash string (mqbroker --hash-password, or mqsh's
 * user add); plain text is refused. NULL: a user who logs in only with a
 * verified TLS client certificate whose CN is `name`. */
int userdb_user_add(struct userdb *db, const char *name, const char *hash, bool admin, char *err,
                    size_t errlen);
int userdb_user_passwd(struct userdb *db, const char *name, const char *hash, char *err, size_t errlen);
/* Deletes a stored user and its permissions. */
int userdb_user_delete(struct userdb *db, const char *name, char *err, size_t errlen);

int userdb_vhost_add(struct userdb *db, const char *name, char *err, size_t errlen);
/* Deletes a stored virtual host and every permission on it. Whether its
 * destinations may go too (`vhost delete NAME force`) is the caller's
 * question, asked before this. */
int userdb_vhost_delete(struct userdb *db, const char *name, char *err, size_t errlen);

/* Sets (or replaces) user's three grants on vhost. */
int userdb_permit(struct userdb *db, const char *user, const char *vhost, const char *configure,
                  const char *send, const char *consume, char *err, size_t errlen);
int userdb_unpermit(struct userdb *db, const char *user, const char *vhost, char *err, size_t errlen);

/* Listings sorted by name (permissions by user, then virtual host); NULL
 * user or vhost lists all. The array is the caller's to free(). */
struct userdb_user *userdb_user_list(const struct userdb *db, size_t *n);
struct userdb_vhost *userdb_vhost_list(const struct userdb *db, size_t *n);
struct userdb_perm *userdb_perm_list(const struct userdb *db, const char *user, const char *vhost, size_t *n);

/* May user do action on dest in vhost? Runs on every SEND when users are
 * configured: two hash lookups and one precompiled match. */
enum userdb_verdict userdb_may(const struct userdb *db, const char *user, const char *vhost,
                               enum userdb_action action, const char *dest);
/* The sentence for a refusal: "alice may not send to /queue/x in virtual
 * host 'lhcb' (send grant '^/queue/lhcb\..*')". */
void userdb_explain(const struct userdb *db, enum userdb_verdict verdict, const char *user, const char *vhost,
                    enum userdb_action action, const char *dest, char *err, size_t errlen);

const char *userdb_action_name(enum userdb_action a);	/* "configure", "send", "consume" */
const char *userdb_source_name(enum userdb_source s);	/* "store", "config", "default" */

/* Name checks, shared with whoever takes names from a user: -1 with e.g.
 * "bad user name 'a:b': ':' is not allowed (HTTP Basic authentication
 * ends the login at the first ':')". */
int userdb_check_user_name(const char *name, char *err, size_t errlen);
int userdb_check_vhost_name(const char *name, char *err, size_t errlen);
/* Compiles a grant to see whether it is valid: -1 with "send grant '(':
 * <regerror's text>". */
int userdb_check_grant(enum userdb_action action, const char *pattern, char *err, size_t errlen);

#endif
