/* test_userdb.c: the user store: users, virtual hosts and grants, what
 * survives a reopen, the configured users beside the stored ones, every
 * error an operator can cause, a store that cannot be written (nothing
 * changes, in memory or on disk) and a corrupted file (refused, with the
 * place and the way out). fsync and rename are wrapped at link time to
 * fail on demand. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/passwd.h"
#include "auth/userdb.h"
#include "common/json.h"
#include "common/log.h"
#include "common/util.h"
#include "config/config.h"

/* ---- fsync and rename, failing on demand ---- */

int __real_fsync(int fd);
int __real_rename(const char *a, const char *b);
int __wrap_fsync(int fd);
int __wrap_rename(const char *a, const char *b);
static int fail_fsync, fail_rename;	/* fail the next N calls */

int __wrap_fsync(int fd)
{
	if (fail_fsync > 0) {
		fail_fsync--;
		errno = EIO;
		return -1;
	}
	return __real_fsync(fd);
}

int __wrap_rename(const char *a, const char *b)
{
	if (fail_rename > 0) {
		fail_rename--;
		errno = EXDEV;
		return -1;
	}
	return __real_rename(a, b);
}

/* ---- fixtures ---- */

struct t {
	char dir[64];
	char path[128];
	char tmp[128];
	struct userdb *db;
	char hash_a[PASSWD_HASH_MAX], hash_b[PASSWD_HASH_MAX];
	int warnings;
	char last_warning[512];
};

static void on_warn(void *arg, const char *msg)
{
	struct t *t = arg;
	t->warnings++;
	snprintf(t->last_warning, sizeof t->last_warning, "%s", msg);
}

static int setup(void **state)
{
	struct t *t = xcalloc(1, sizeof *t);
	char err[512];
	snprintf(t->dir, sizeof t->dir, "/tmp/test_userdb.XXXXXX");
	assert_non_null(mkdtemp(t->dir));
	snprintf(t->path, sizeof t->path, "%s/users.json", t->dir);
	snprintf(t->tmp, sizeof t->tmp, "%s/users.json.tmp", t->dir);
	assert_int_equal(passwd_hash("alpha", 5, 1000, t->hash_a, sizeof t->hash_a, err, sizeof err), 0);
	assert_int_equal(passwd_hash("bravo", 5, 1000, t->hash_b, sizeof t->hash_b, err, sizeof err), 0);
	t->db = userdb_open(t->dir, NULL, err, sizeof err);
	if (!t->db)
		fail_msg("userdb_open: %s", err);
	userdb_set_warn(t->db, on_warn, t);
	fail_fsync = fail_rename = 0;
	*state = t;
	return 0;
}

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *f)
{
	(void)st;
	(void)flag;
	(void)f;
	chmod(p, 0700);
	return remove(p);
}

static int teardown(void **state)
{
	struct t *t = *state;
	userdb_free(t->db);
	chmod(t->dir, 0700);
	nftw(t->dir, rm_one, 8, FTW_DEPTH | FTW_PHYS);
	free(t);
	return 0;
}

/* Reopens the store from disk, as a restart would. */
static void reopen(struct t *t, const struct config *cfg)
{
	char err[512];
	userdb_free(t->db);
	t->db = userdb_open(t->dir, cfg, err, sizeof err);
	if (!t->db)
		fail_msg("reopen: %s", err);
	userdb_set_warn(t->db, on_warn, t);
}

static char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf;
	long n;
	if (!f)
		return NULL;
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	rewind(f);
	buf = xmalloc((size_t)n + 1);
	if (fread(buf, 1, (size_t)n, f) != (size_t)n)
		fail_msg("short read of %s", path);
	buf[n] = 0;
	fclose(f);
	if (len)
		*len = (size_t)n;
	return buf;
}

static void spit(const char *path, const char *text)
{
	FILE *f = fopen(path, "wb");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

#define OK(call)                                                               \
	do {                                                                   \
		char err_[512] = "";                                           \
		if ((call) < 0)                                                \
			fail_msg("%s: %s", #call, err_);                       \
	} while (0)
/* the calls below take err_ and sizeof err_ as their last arguments */
#define E err_, sizeof err_

/* Expects call to fail with an error containing want. */
#define FAILS(call, want)                                                      \
	do {                                                                   \
		char err_[512] = "";                                           \
		if ((call) == 0)                                               \
			fail_msg("%s succeeded", #call);                       \
		if (!strstr(err_, (want)))                                     \
			fail_msg("%s: error '%s' does not say '%s'", #call, err_, (want)); \
	} while (0)

/* ---- users ---- */

static void test_new_store_is_empty(void **state)
{
	/* no file: no users, the default virtual host, nothing written yet */
	struct t *t = *state;
	size_t n;
	struct userdb_vhost *v = userdb_vhost_list(t->db, &n);
	assert_int_equal(userdb_user_count(t->db), 0);
	assert_int_equal(n, 1);
	assert_string_equal(v[0].name, "/");
	assert_int_equal(v[0].source, USERDB_DEFAULT);
	free(v);
	assert_int_equal(access(t->path, F_OK), -1);
	assert_string_equal(userdb_path(t->db), t->path);
}

static void test_users_survive_reopen(void **state)
{
	/* Users added are in the file (mode 0600, hashes only) and back after
	 * a reopen, with their admin tag, listed by name. */
	struct t *t = *state;
	const struct userdb_user *u;
	struct userdb_user *list;
	struct stat st;
	size_t n;
	char *text;

	OK(userdb_user_add(t->db, "zoe", t->hash_b, false, E));
	OK(userdb_user_add(t->db, "alice", t->hash_a, true, E));
	assert_int_equal(stat(t->path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	text = slurp(t->path, NULL);
	assert_non_null(strstr(text, t->hash_a));
	assert_null(strstr(text, "alpha"));
	free(text);
	assert_int_equal(access(t->tmp, F_OK), -1);

	reopen(t, NULL);
	assert_int_equal(userdb_user_count(t->db), 2);
	u = userdb_user_get(t->db, "alice");
	assert_non_null(u);
	assert_string_equal(u->password, t->hash_a);
	assert_int_equal(u->cred, USERDB_CRED_HASH);
	assert_true(u->admin);
	assert_int_equal(u->source, USERDB_STORE);
	assert_false(userdb_user_get(t->db, "zoe")->admin);
	assert_null(userdb_user_get(t->db, "bob"));
	list = userdb_user_list(t->db, &n);
	assert_int_equal(n, 2);
	assert_string_equal(list[0].name, "alice");
	assert_string_equal(list[1].name, "zoe");
	free(list);
}

static void test_passwd_and_delete(void **state)
{
	/* passwd replaces the hash (also after a reopen); delete takes the
	 * user and its permissions */
	struct t *t = *state;
	size_t n;
	struct userdb_perm *p;

	OK(userdb_user_add(t->db, "alice", t->hash_a, false, E));
	OK(userdb_permit(t->db, "alice", "/", "", ".*", "", E));
	OK(userdb_user_passwd(t->db, "alice", t->hash_b, E));
	assert_string_equal(userdb_user_get(t->db, "alice")->password, t->hash_b);
	reopen(t, NULL);
	assert_string_equal(userdb_user_get(t->db, "alice")->password, t->hash_b);
	OK(userdb_user_delete(t->db, "alice", E));
	assert_null(userdb_user_get(t->db, "alice"));
	p = userdb_perm_list(t->db, NULL, NULL, &n);
	assert_int_equal(n, 0);
	free(p);
	reopen(t, NULL);
	assert_null(userdb_user_get(t->db, "alice"));
	assert_int_equal(userdb_user_count(t->db), 0);
	/* a new alice starts without the old one's permissions */
	OK(userdb_user_add(t->db, "alice", t->hash_a, false, E));
	assert_int_equal(userdb_may(t->db, "alice", "/", USERDB_SEND, "/queue/a"), USERDB_NO_GRANTS);
}

static void test_certificate_users_survive_reopen(void **state)
{
	/* A user added without a hash logs in with a certificate only: its
	 * password is null in the file, and it gets one with passwd. */
	struct t *t = *state;
	const struct userdb_user *u;
	char *text;

	OK(userdb_user_add(t->db, "dirac-agent.example.org", NULL, false, E));
	assert_true(userdb_user_has_perms(t->db, "dirac-agent.example.org") == false);
	OK(userdb_permit(t->db, "dirac-agent.example.org", "/", "", "/queue/x", "", E));
	assert_true(userdb_user_has_perms(t->db, "dirac-agent.example.org"));
	text = slurp(t->path, NULL);
	assert_non_null(strstr(text, "\"password\":null"));
	free(text);
	reopen(t, NULL);
	u = userdb_user_get(t->db, "dirac-agent.example.org");
	assert_non_null(u);
	assert_null(u->password);
	assert_int_equal(u->cred, USERDB_CRED_NONE);
	OK(userdb_user_passwd(t->db, "dirac-agent.example.org", t->hash_a, E));
	u = userdb_user_get(t->db, "dirac-agent.example.org");
	assert_int_equal(u->cred, USERDB_CRED_HASH);
}

static void test_user_errors(void **state)
{
	/* each mistake an operator can make, and what it says */
	struct t *t = *state;
	OK(userdb_user_add(t->db, "alice", t->hash_a, false, E));
	FAILS(userdb_user_add(t->db, "alice", t->hash_b, false, E), "user 'alice' already exists");
	FAILS(userdb_user_add(t->db, "bob", "bravo", false, E), "expected a password hash, not a password");
	FAILS(userdb_user_add(t->db, "bob", "", false, E), "expected a password hash");
	FAILS(userdb_user_add(t->db, "bob", "$pbkdf2-sha512$i=1000$AAAA$BBBB", false, E),
	      "bad password hash: the salt is 3 bytes");
	FAILS(userdb_user_add(t->db, "", t->hash_a, false, E), "bad user name '': a name cannot be empty");
	FAILS(userdb_user_add(t->db, "a:b", t->hash_a, false, E), "':' is not allowed");
	FAILS(userdb_user_add(t->db, "a\nb", t->hash_a, false, E), "control character 0x0a at byte 2");
	FAILS(userdb_user_add(t->db, " bob", t->hash_a, false, E), "cannot start or end with a space");
	{
		char long_name[200];
		memset(long_name, 'x', sizeof long_name - 1);
		long_name[sizeof long_name - 1] = 0;
		FAILS(userdb_user_add(t->db, long_name, t->hash_a, false, E), "199 bytes (limit 128)");
	}
	FAILS(userdb_user_passwd(t->db, "bob", t->hash_a, E), "unknown user 'bob'");
	FAILS(userdb_user_passwd(t->db, "alice", "plain", E), "expected a password hash");
	FAILS(userdb_user_delete(t->db, "bob", E), "unknown user 'bob'");
	/* a certificate's CN is a login: spaces inside are fine */
	OK(userdb_user_add(t->db, "Jane Doe", t->hash_a, false, E));
	assert_int_equal(userdb_user_count(t->db), 2);
}

/* ---- grants ---- */

static void test_grants_match_whole_names(void **state)
{
	/* A grant is an extended regular expression the whole destination
	 * name must match; "" allows nothing, ".*" everything. */
	static const struct {
		const char *grant, *dest;
		bool allow;
	} cases[] = {
		{ "", "/queue/a", false },
		{ "", "", false },
		{ ".*", "/queue/anything", true },
		{ "^.*$", "/topic/x", true },
		{ "/queue/a", "/queue/a", true },	/* a literal */
		{ "/queue/a", "/queue/ab", false },
		{ "/queue/a", "x/queue/a", false },
		{ "/queue/lhcb\\..*", "/queue/lhcb.jobs", true },
		{ "/queue/lhcb\\..*", "/queue/lhcbXjobs", false },
		{ "/queue/lhcb\\..*", "/queue/lhcb.", true },
		{ "/queue/lhcb\\..*", "/topic/queue/lhcb.x", false },
		{ "/queue/a|/queue/b", "/queue/b", true },	/* anchored around the alternation */
		{ "/queue/a|/queue/b", "/queue/bc", false },
		{ "/queue/a|/queue/b", "x/queue/a", false },
		{ "/queue/(in|out)/[0-9]+", "/queue/in/42", true },
		{ "/queue/(in|out)/[0-9]+", "/queue/in/42x", false },
		{ "^/queue/x$", "/queue/x", true },	/* written anchors are harmless */
		{ "/queue/.*", "/queue/", true },
	};
	struct t *t = *state;
	OK(userdb_user_add(t->db, "u", t->hash_a, false, E));
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		enum userdb_verdict v;
		OK(userdb_permit(t->db, "u", "/", cases[i].grant, cases[i].grant, cases[i].grant, E));
		for (int a = 0; a < USERDB_NACTIONS; a++) {
			v = userdb_may(t->db, "u", "/", (enum userdb_action)a, cases[i].dest);
			if (v != (cases[i].allow ? USERDB_ALLOW : USERDB_DENY))
				fail_msg("grant '%s' on '%s' (%s): verdict %d", cases[i].grant, cases[i].dest,
				         userdb_action_name((enum userdb_action)a), (int)v);
		}
	}
}

static void test_three_grants_are_separate(void **state)
{
	/* a producer that may only send, a consumer that may only consume */
	struct t *t = *state;
	OK(userdb_user_add(t->db, "producer", t->hash_a, false, E));
	OK(userdb_user_add(t->db, "consumer", t->hash_b, false, E));
	OK(userdb_vhost_add(t->db, "lhcb", E));
	OK(userdb_permit(t->db, "producer", "lhcb", "", "/queue/lhcb\\..*", "", E));
	OK(userdb_permit(t->db, "consumer", "lhcb", "", "", "/queue/lhcb\\..*", E));
	assert_int_equal(userdb_may(t->db, "producer", "lhcb", USERDB_SEND, "/queue/lhcb.jobs"), USERDB_ALLOW);
	assert_int_equal(userdb_may(t->db, "producer", "lhcb", USERDB_CONSUME, "/queue/lhcb.jobs"), USERDB_DENY);
	assert_int_equal(userdb_may(t->db, "producer", "lhcb", USERDB_CONFIGURE, "/queue/lhcb.jobs"), USERDB_DENY);
	assert_int_equal(userdb_may(t->db, "consumer", "lhcb", USERDB_CONSUME, "/queue/lhcb.jobs"), USERDB_ALLOW);
	assert_int_equal(userdb_may(t->db, "consumer", "lhcb", USERDB_SEND, "/queue/lhcb.jobs"), USERDB_DENY);
	/* permissions are per virtual host */
	assert_int_equal(userdb_may(t->db, "producer", "/", USERDB_SEND, "/queue/lhcb.jobs"), USERDB_NO_GRANTS);
}

static void test_grant_errors(void **state)
{
	/* a malformed expression names itself, its grant and regerror's text;
	 * nothing is stored */
	struct t *t = *state;
	char err[512];
	size_t n;
	struct userdb_perm *p;
	OK(userdb_user_add(t->db, "u", t->hash_a, false, E));
	FAILS(userdb_permit(t->db, "u", "/", "", "/queue/(a", "", E),
	      "send grant '/queue/(a' is not a valid regular expression: ");
	FAILS(userdb_permit(t->db, "u", "/", "[z-a]", "", "", E), "configure grant '[z-a]' is not a valid");
	FAILS(userdb_permit(t->db, "u", "/", "", "", "a)(b", E), "consume grant 'a)(b' is not a valid");
	FAILS(userdb_permit(t->db, "u", "/", "", "", "*x", E), "consume grant '*x'");
	{
		char big[USERDB_GRANT_MAX + 10];
		memset(big, 'a', sizeof big - 1);
		big[sizeof big - 1] = 0;
		FAILS(userdb_permit(t->db, "u", "/", big, "", "", E), "1033 bytes (limit 1024)");
	}
	/* regerror's own words are there */
	assert_int_equal(userdb_check_grant(USERDB_SEND, "/queue/(a", err, sizeof err), -1);
	assert_true(strstr(err, "(") != NULL && strlen(strstr(err, "expression: ")) > strlen("expression: "));
	assert_int_equal(userdb_check_grant(USERDB_SEND, "/queue/ok.*", err, sizeof err), 0);
	p = userdb_perm_list(t->db, NULL, NULL, &n);
	assert_int_equal(n, 0);
	free(p);
	FAILS(userdb_permit(t->db, "nobody", "/", "", "", "", E), "unknown user 'nobody'");
	FAILS(userdb_permit(t->db, "u", "nowhere", "", "", "", E), "unknown virtual host 'nowhere' (vhost add nowhere");
	FAILS(userdb_unpermit(t->db, "u", "/", E), "user 'u' has no permissions on virtual host '/'");
	FAILS(userdb_unpermit(t->db, "nobody", "/", E), "unknown user 'nobody'");
}

static void test_verdicts_and_explanations(void **state)
{
	struct t *t = *state;
	char why[512];
	OK(userdb_user_add(t->db, "alice", t->hash_a, false, E));
	OK(userdb_vhost_add(t->db, "atlas", E));
	OK(userdb_permit(t->db, "alice", "atlas", "", "/queue/atlas\\..*", "", E));

	assert_int_equal(userdb_may(t->db, "bob", "atlas", USERDB_SEND, "/queue/x"), USERDB_NO_USER);
	assert_int_equal(userdb_may(t->db, "alice", "cms", USERDB_SEND, "/queue/x"), USERDB_NO_VHOST);
	assert_int_equal(userdb_may(t->db, "alice", "/", USERDB_SEND, "/queue/x"), USERDB_NO_GRANTS);
	assert_int_equal(userdb_may(t->db, "alice", "atlas", USERDB_SEND, "/queue/x"), USERDB_DENY);
	assert_int_equal(userdb_may(t->db, "alice", "atlas", USERDB_SEND, "/queue/atlas.x"), USERDB_ALLOW);

	userdb_explain(t->db, USERDB_DENY, "alice", "atlas", USERDB_SEND, "/queue/x", why, sizeof why);
	assert_string_equal(why, "alice may not send to /queue/x in virtual host 'atlas': the send grant "
	                         "'/queue/atlas\\..*' does not match");
	userdb_explain(t->db, USERDB_DENY, "alice", "atlas", USERDB_CONSUME, "/queue/x", why, sizeof why);
	assert_string_equal(why, "alice may not consume from /queue/x in virtual host 'atlas': the consume grant "
	                         "is empty");
	userdb_explain(t->db, USERDB_NO_GRANTS, "alice", "/", USERDB_SEND, "/queue/x", why, sizeof why);
	assert_string_equal(why, "alice has no permissions on virtual host '/' (permit alice vhost=/ CONFIGURE "
	                         "SEND CONSUME grants them)");
	userdb_explain(t->db, USERDB_NO_USER, "bob", "/", USERDB_SEND, "/queue/x", why, sizeof why);
	assert_string_equal(why, "unknown user 'bob'");
	userdb_explain(t->db, USERDB_NO_VHOST, "alice", "cms", USERDB_SEND, "/queue/x", why, sizeof why);
	assert_string_equal(why, "unknown virtual host 'cms'");
}

static void test_permissions_survive_reopen(void **state)
{
	/* replaced by a second permit, removed by unpermit, listed sorted */
	struct t *t = *state;
	struct userdb_perm *p;
	size_t n;
	OK(userdb_user_add(t->db, "bob", t->hash_a, false, E));
	OK(userdb_user_add(t->db, "alice", t->hash_a, false, E));
	OK(userdb_vhost_add(t->db, "cms", E));
	OK(userdb_permit(t->db, "bob", "/", ".*", ".*", ".*", E));
	OK(userdb_permit(t->db, "alice", "cms", "", "/queue/a", "", E));
	OK(userdb_permit(t->db, "alice", "/", "", "", "/topic/.*", E));
	OK(userdb_permit(t->db, "alice", "cms", "", "/queue/b", "", E));
	reopen(t, NULL);
	p = userdb_perm_list(t->db, NULL, NULL, &n);
	assert_int_equal(n, 3);
	assert_string_equal(p[0].user, "alice");
	assert_string_equal(p[0].vhost, "/");
	assert_string_equal(p[0].grant[USERDB_CONSUME], "/topic/.*");
	assert_string_equal(p[1].vhost, "cms");
	assert_string_equal(p[1].grant[USERDB_SEND], "/queue/b");
	assert_string_equal(p[1].grant[USERDB_CONFIGURE], "");
	assert_true(p[1].live);
	assert_string_equal(p[2].user, "bob");
	free(p);
	p = userdb_perm_list(t->db, "alice", NULL, &n);
	assert_int_equal(n, 2);
	free(p);
	p = userdb_perm_list(t->db, NULL, "cms", &n);
	assert_int_equal(n, 1);
	free(p);
	OK(userdb_unpermit(t->db, "alice", "cms", E));
	reopen(t, NULL);
	assert_int_equal(userdb_may(t->db, "alice", "cms", USERDB_SEND, "/queue/b"), USERDB_NO_GRANTS);
	assert_int_equal(userdb_may(t->db, "alice", "/", USERDB_CONSUME, "/topic/x"), USERDB_ALLOW);
}

/* ---- virtual hosts ---- */

static void test_vhosts(void **state)
{
	/* add, list, delete (taking its permissions), and the errors */
	struct t *t = *state;
	struct userdb_vhost *v;
	struct userdb_perm *p;
	size_t n;
	OK(userdb_user_add(t->db, "alice", t->hash_a, false, E));
	OK(userdb_vhost_add(t->db, "lhcb", E));
	OK(userdb_vhost_add(t->db, "atlas", E));
	FAILS(userdb_vhost_add(t->db, "lhcb", E), "virtual host 'lhcb' already exists (in the user store)");
	FAILS(userdb_vhost_add(t->db, "/", E), "already exists (the default virtual host)");
	FAILS(userdb_vhost_add(t->db, "a b", E), "bad virtual host name 'a b': spaces are not allowed");
	FAILS(userdb_vhost_add(t->db, "", E), "bad virtual host name ''");
	OK(userdb_permit(t->db, "alice", "lhcb", ".*", ".*", ".*", E));
	OK(userdb_permit(t->db, "alice", "atlas", ".*", ".*", ".*", E));
	reopen(t, NULL);
	v = userdb_vhost_list(t->db, &n);
	assert_int_equal(n, 3);
	assert_string_equal(v[0].name, "/");
	assert_string_equal(v[1].name, "atlas");
	assert_int_equal(v[1].source, USERDB_STORE);
	assert_string_equal(v[2].name, "lhcb");
	free(v);
	OK(userdb_vhost_delete(t->db, "lhcb", E));
	assert_false(userdb_vhost_exists(t->db, "lhcb"));
	p = userdb_perm_list(t->db, NULL, NULL, &n);
	assert_int_equal(n, 1);
	assert_string_equal(p[0].vhost, "atlas");
	free(p);
	reopen(t, NULL);
	assert_false(userdb_vhost_exists(t->db, "lhcb"));
	/* a new lhcb does not bring the old permissions back */
	OK(userdb_vhost_add(t->db, "lhcb", E));
	assert_int_equal(userdb_may(t->db, "alice", "lhcb", USERDB_SEND, "/queue/x"), USERDB_NO_GRANTS);
	FAILS(userdb_vhost_delete(t->db, "/", E), "virtual host '/' is the default one");
	FAILS(userdb_vhost_delete(t->db, "cms", E), "unknown virtual host 'cms'");
}

/* ---- the configuration file beside the store ---- */

static void make_config(struct config *c)
{
	config_init(c);
	free(c->path);
	c->path = xstrdup("/etc/mqbroker/broker.lua");
	config_add_user(c, "guest", "guest", false);
	config_add_user(c, "operator", NULL, true);
	config_add_vhost(c, "cms");
}

static void test_config_users_listed_with_store_users(void **state)
{
	/* Configured and stored users are listed together, each with its
	 * source; the configured ones cannot be changed from here; a plain
	 * passcode is warned about once, naming the user and the fix. */
	struct t *t = *state;
	struct config c;
	struct userdb_user *list;
	struct userdb_vhost *v;
	size_t n;
	char hashed[PASSWD_HASH_MAX + 8];

	make_config(&c);
	snprintf(hashed, sizeof hashed, "%s", t->hash_b);
	config_add_user(&c, "hashed", hashed, false);
	OK(userdb_user_add(t->db, "alice", t->hash_a, false, E));
	t->warnings = 0;
	OK(userdb_set_config(t->db, &c, E));
	assert_int_equal(t->warnings, 1);
	assert_non_null(strstr(t->last_warning, "user 'guest' in /etc/mqbroker/broker.lua has a plain-text "
	                                        "passcode"));
	assert_non_null(strstr(t->last_warning, "mqbroker --hash-password"));
	OK(userdb_set_config(t->db, &c, E));	/* a reload: no second warning */
	assert_int_equal(t->warnings, 1);

	assert_int_equal(userdb_user_count(t->db), 4);
	list = userdb_user_list(t->db, &n);
	assert_int_equal(n, 4);
	assert_string_equal(list[0].name, "alice");
	assert_int_equal(list[0].source, USERDB_STORE);
	assert_string_equal(list[1].name, "guest");
	assert_int_equal(list[1].source, USERDB_CONFIG);
	assert_int_equal(list[1].cred, USERDB_CRED_PLAIN);
	assert_string_equal(list[2].name, "hashed");
	assert_int_equal(list[2].cred, USERDB_CRED_HASH);
	assert_string_equal(list[3].name, "operator");
	assert_int_equal(list[3].cred, USERDB_CRED_NONE);
	assert_true(list[3].admin);
	free(list);
	v = userdb_vhost_list(t->db, &n);
	assert_int_equal(n, 2);
	assert_string_equal(v[1].name, "cms");
	assert_int_equal(v[1].source, USERDB_CONFIG);
	free(v);

	FAILS(userdb_user_add(t->db, "guest", t->hash_a, false, E),
	      "user 'guest' already exists (in the configuration file /etc/mqbroker/broker.lua)");
	FAILS(userdb_user_passwd(t->db, "guest", t->hash_a, E),
	      "user 'guest' comes from the configuration file /etc/mqbroker/broker.lua: change it there");
	FAILS(userdb_user_delete(t->db, "operator", E), "comes from the configuration file");
	FAILS(userdb_vhost_delete(t->db, "cms", E), "virtual host 'cms' comes from the configuration file");
	FAILS(userdb_vhost_add(t->db, "cms", E), "already exists (in the configuration file)");

	/* configured users get stored permissions, which outlive a restart */
	OK(userdb_permit(t->db, "guest", "cms", "", ".*", "", E));
	reopen(t, &c);
	assert_int_equal(userdb_may(t->db, "guest", "cms", USERDB_SEND, "/queue/x"), USERDB_ALLOW);
	config_fini(&c);
}

static void test_config_hash_errors_keep_previous(void **state)
{
	/* a configured passcode shaped like a hash must be one; when it is
	 * not, the previous configuration stays */
	struct t *t = *state;
	struct config good, bad;
	make_config(&good);
	OK(userdb_set_config(t->db, &good, E));
	config_init(&bad);
	config_add_user(&bad, "x", "$pbkdf2-sha512$i=1000$nope$nope", false);
	FAILS(userdb_set_config(t->db, &bad, E), "user 'x': the passcode looks like a password hash but the salt");
	assert_non_null(userdb_user_get(t->db, "guest"));
	assert_null(userdb_user_get(t->db, "x"));
	config_fini(&bad);
	config_init(&bad);
	config_add_user(&bad, "a:b", "pw", false);
	FAILS(userdb_set_config(t->db, &bad, E), "bad user name 'a:b'");
	config_fini(&bad);
	config_fini(&good);
}

static void test_config_hides_stored_user(void **state)
{
	/* A stored user a new configuration also defines: the configured one
	 * logs in, the stored one is listed as hidden (with a warning), and
	 * deleting it removes the stored copy only. */
	struct t *t = *state;
	struct config c;
	struct userdb_user *list;
	size_t n;
	OK(userdb_user_add(t->db, "guest", t->hash_a, false, E));
	OK(userdb_permit(t->db, "guest", "/", "", ".*", "", E));
	make_config(&c);
	t->warnings = 0;
	OK(userdb_set_config(t->db, &c, E));
	assert_int_equal(t->warnings, 2);	/* plain passcode, hidden user */
	assert_int_equal(userdb_user_get(t->db, "guest")->source, USERDB_CONFIG);
	list = userdb_user_list(t->db, &n);
	assert_int_equal(n, 3);
	assert_string_equal(list[0].name, "guest");
	assert_int_equal(list[0].source, USERDB_CONFIG);
	assert_false(list[0].shadowed);
	assert_string_equal(list[1].name, "guest");
	assert_int_equal(list[1].source, USERDB_STORE);
	assert_true(list[1].shadowed);
	free(list);
	OK(userdb_user_delete(t->db, "guest", E));
	assert_int_equal(userdb_user_get(t->db, "guest")->source, USERDB_CONFIG);
	/* the permissions belong to the name the configured user still uses */
	assert_int_equal(userdb_may(t->db, "guest", "/", USERDB_SEND, "/queue/x"), USERDB_ALLOW);
	config_fini(&c);
}

static void test_orphan_permissions_warned_and_inert(void **state)
{
	/* permissions of a configured user who left the configuration are
	 * kept (a warning says so) but grant nothing */
	struct t *t = *state;
	struct config c;
	struct userdb_perm *p;
	size_t n;
	make_config(&c);
	OK(userdb_set_config(t->db, &c, E));
	OK(userdb_permit(t->db, "guest", "cms", ".*", ".*", ".*", E));
	config_fini(&c);
	t->warnings = 0;
	OK(userdb_set_config(t->db, NULL, E));	/* a reload without them */
	assert_int_equal(t->warnings, 1);
	assert_non_null(strstr(t->last_warning, "permissions of 'guest' on virtual host 'cms'"));
	assert_non_null(strstr(t->last_warning, "name a user that does not exist: kept, unused"));
	p = userdb_perm_list(t->db, NULL, NULL, &n);
	assert_int_equal(n, 1);
	assert_false(p[0].live);
	free(p);
	reopen(t, NULL);	/* and after a restart */
	assert_int_equal(userdb_may(t->db, "guest", "cms", USERDB_SEND, "/queue/x"), USERDB_NO_USER);
	OK(userdb_unpermit(t->db, "guest", "cms", E));
}

/* ---- a store that cannot be written ---- */

/* Every kind of change, each tried against a store that refuses it. */
static int try_change(struct t *t, int which, char *err, size_t errlen)
{
	switch (which) {
	case 0: return userdb_user_add(t->db, "new", t->hash_a, false, err, errlen);
	case 1: return userdb_user_passwd(t->db, "alice", t->hash_b, err, errlen);
	case 2: return userdb_user_delete(t->db, "alice", err, errlen);
	case 3: return userdb_vhost_add(t->db, "fresh", err, errlen);
	case 4: return userdb_vhost_delete(t->db, "lhcb", err, errlen);
	case 5: return userdb_permit(t->db, "alice", "lhcb", "", "", "", err, errlen);
	case 6: return userdb_permit(t->db, "alice", "/", ".*", "", "", err, errlen);
	case 7: return userdb_unpermit(t->db, "alice", "lhcb", err, errlen);
	}
	return 0;
}

/* The state as text: every listing, for before/after comparison. */
static char *snapshot(struct t *t)
{
	struct sbuf b;
	size_t n;
	struct userdb_user *u = userdb_user_list(t->db, &n);
	sbuf_init(&b);
	for (size_t i = 0; i < n; i++)
		sbuf_printf(&b, "user %s %s %d\n", u[i].name, u[i].password, u[i].admin);
	free(u);
	{
		struct userdb_vhost *v = userdb_vhost_list(t->db, &n);
		for (size_t i = 0; i < n; i++)
			sbuf_printf(&b, "vhost %s\n", v[i].name);
		free(v);
	}
	{
		struct userdb_perm *p = userdb_perm_list(t->db, NULL, NULL, &n);
		for (size_t i = 0; i < n; i++)
			sbuf_printf(&b, "perm %s %s '%s' '%s' '%s' %d\n", p[i].user, p[i].vhost, p[i].grant[0],
			            p[i].grant[1], p[i].grant[2], p[i].live);
		free(p);
	}
	sbuf_printf(&b, "may %d\n", userdb_may(t->db, "alice", "lhcb", USERDB_SEND, "/queue/lhcb.x"));
	return sbuf_take(&b);
}

static void populate(struct t *t)
{
	OK(userdb_user_add(t->db, "alice", t->hash_a, true, E));
	OK(userdb_vhost_add(t->db, "lhcb", E));
	OK(userdb_permit(t->db, "alice", "lhcb", "", "/queue/lhcb\\..*", "", E));
}

static void check_refused(struct t *t, const char *want, void (*arm)(void))
{
	for (int which = 0; which < 8; which++) {
		char *before = snapshot(t), *after, *file_before, *file_after, err[512] = "";
		file_before = slurp(t->path, NULL);
		arm();
		if (try_change(t, which, err, sizeof err) == 0)
			fail_msg("change %d succeeded on a store that cannot be written", which);
		if (!strstr(err, want) || !strstr(err, "cannot write the user store"))
			fail_msg("change %d: error '%s' does not say '%s'", which, err, want);
		after = snapshot(t);
		file_after = slurp(t->path, NULL);
		if (strcmp(before, after) != 0)
			fail_msg("change %d: memory changed:\n%s---\n%s", which, before, after);
		assert_string_equal(file_before, file_after);
		free(before);
		free(after);
		free(file_before);
		free(file_after);
		fail_fsync = fail_rename = 0;
	}
}

static void arm_nothing(void) {}
static void arm_fsync(void) { fail_fsync = 1; }
static void arm_rename(void) { fail_rename = 1; }

static void test_unwritable_store_changes_nothing(void **state)
{
	/* A directory squatting on the temporary file's name (which stops
	 * root too): every change fails naming the file and the reason, and
	 * neither memory nor the file changes. Once it is gone, changes work. */
	struct t *t = *state;
	populate(t);
	assert_int_equal(mkdir(t->tmp, 0700), 0);
	check_refused(t, "cannot create /tmp/", arm_nothing);
	rmdir(t->tmp);
	OK(userdb_vhost_add(t->db, "fresh", E));
	reopen(t, NULL);
	assert_true(userdb_vhost_exists(t->db, "fresh"));
}

static void test_failed_fsync_or_rename_changes_nothing(void **state)
{
	/* the later steps failing: EIO from fsync, EXDEV from rename; the
	 * temporary file does not stay behind */
	struct t *t = *state;
	populate(t);
	check_refused(t, "Input/output error", arm_fsync);
	assert_int_equal(access(t->tmp, F_OK), -1);
	check_refused(t, "cannot rename", arm_rename);
	assert_int_equal(access(t->tmp, F_OK), -1);
	reopen(t, NULL);
	assert_int_equal(userdb_may(t->db, "alice", "lhcb", USERDB_SEND, "/queue/lhcb.x"), USERDB_ALLOW);
}

/* In a child process, as nobody when we are root (root ignores the mode
 * bits): every change against a read-only directory must fail with
 * EACCES and leave memory as it was. Returns the number of problems. */
static int readonly_child(struct t *t)
{
	char err[512];
	int problems = 0;
	if (geteuid() == 0 && (setgid(65534) < 0 || setuid(65534) < 0)) {
		fprintf(stderr, "cannot become nobody: %s\n", strerror(errno));
		return 1;
	}
	userdb_free(t->db);
	t->db = userdb_open(t->dir, NULL, err, sizeof err);
	if (!t->db) {
		fprintf(stderr, "cannot open the store read-only: %s\n", err);
		return 1;
	}
	for (int which = 0; which < 8; which++) {
		char *before = snapshot(t), *after;
		err[0] = 0;
		if (try_change(t, which, err, sizeof err) == 0 || !strstr(err, "Permission denied") ||
		    !strstr(err, t->tmp)) {
			fprintf(stderr, "change %d: '%s'\n", which, err);
			problems++;
		}
		after = snapshot(t);
		if (strcmp(before, after) != 0) {
			fprintf(stderr, "change %d changed memory\n", which);
			problems++;
		}
		free(before);
		free(after);
	}
	return problems;
}

static void test_read_only_directory(void **state)
{
	/* the everyday case: a data directory the broker may not write */
	struct t *t = *state;
	char *file_before, *file_after;
	pid_t pid;
	int status;
	populate(t);
	file_before = slurp(t->path, NULL);
	assert_int_equal(chmod(t->path, 0644), 0);	/* readable by nobody */
	assert_int_equal(chmod(t->dir, 0555), 0);
	fflush(NULL);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		_exit(readonly_child(t) ? 1 : 0);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	chmod(t->dir, 0700);
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		fail_msg("the changes in a read-only directory did not all fail cleanly (see above)");
	file_after = slurp(t->path, NULL);
	assert_string_equal(file_before, file_after);
	free(file_before);
	free(file_after);
}

/* ---- a corrupted store ---- */

static void test_corrupted_store_refuses_to_open(void **state)
{
	/* Each broken file, and what the refusal must say besides the file's
	 * path and the way out. */
	static const struct {
		const char *text, *want;
	} cases[] = {
		{ "", "the file is empty" },
		{ "{\n  \"version\": 1,\n  \"users\": [\n    {\"name\": \"a\" \"password\": \"x\"}\n", "line 4, column 18: expected ',' or '}'" },
		{ "{\"version\": 1, \"users\": [", "line 1, column 26: unexpected end of input" },
		{ "[]", "expected a JSON object at the top, got an array" },
		{ "{\"users\": []}", "\"version\": expected a number, got nothing" },
		{ "{\"version\": 2}", "version 2: this mqbroker reads version 1" },
		{ "{\"version\": 1, \"groups\": []}", "the top level: unknown key \"groups\"" },
		{ "{\"version\": 1, \"users\": {}}", "\"users\": expected an array, got an object" },
		{ "{\"version\": 1, \"users\": [{\"name\": \"a\"}]}", "users[0].password: expected a string, got nothing" },
		{ "{\"version\": 1, \"users\": [{\"name\": \"a\", \"password\": \"plain\"}]}", "users[0].password (user 'a'): not a password hash" },
		{ "{\"version\": 1, \"users\": [{\"name\": \"a\", \"password\": \"%A\", \"admin\": 1}]}", "users[0].admin: expected true or false, got a number" },
		{ "{\"version\": 1, \"users\": [{\"name\": \"a\", \"password\": \"%A\"}, {\"name\": \"a\", \"password\": \"%A\"}]}", "users[1]: user 'a' is listed twice" },
		{ "{\"version\": 1, \"users\": [{\"name\": \"a:b\", \"password\": \"%A\"}]}", "users[0].name: bad user name 'a:b'" },
		{ "{\"version\": 1, \"users\": [{\"name\": \"a\\u0000b\", \"password\": \"%A\"}]}", "users[0].name: the string holds a NUL" },
		{ "{\"version\": 1, \"users\": [{\"name\": \"a\", \"name\": \"b\", \"password\": \"%A\"}]}", "users[0]: key \"name\" given twice" },
		{ "{\"version\": 1, \"vhosts\": [\"x\", \"x\"]}", "vhosts[1]: virtual host 'x' is listed twice" },
		{ "{\"version\": 1, \"vhosts\": [3]}", "vhosts[0]: expected a name, got a number" },
		{ "{\"version\": 1, \"permissions\": [{\"user\": \"a\", \"vhost\": \"/\", \"configure\": \"\", \"send\": \"(\", \"consume\": \"\"}]}", "permissions[0]: send grant '(' is not a valid regular expression" },
		{ "{\"version\": 1, \"permissions\": [{\"user\": \"a\", \"vhost\": \"/\", \"send\": \"\", \"consume\": \"\"}]}", "permissions[0].configure: expected a string, got nothing" },
	};
	struct t *t = *state;
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct sbuf text;
		char err[1024] = "";
		struct userdb *db;
		sbuf_init(&text);
		for (const char *p = cases[i].text; *p; p++) {
			if (p[0] == '%' && p[1] == 'A') {
				sbuf_adds(&text, t->hash_a);
				p++;
			} else {
				sbuf_addc(&text, *p);
			}
		}
		spit(t->path, sbuf_str(&text));
		sbuf_fini(&text);
		db = userdb_open(t->dir, NULL, err, sizeof err);
		if (db) {
			userdb_free(db);
			fail_msg("case %zu opened: %s", i, cases[i].text);
		}
		if (!strstr(err, cases[i].want) || !strstr(err, t->path) || !strstr(err, "move it aside") ||
		    !strstr(err, ".bad"))
			fail_msg("case %zu: '%s' lacks '%s', the path or the way out", i, err, cases[i].want);
	}
}

static void test_unreadable_store_refuses_to_open(void **state)
{
	/* a store that is there but cannot be read is not an empty one */
	struct t *t = *state;
	char err[512];
	assert_int_equal(mkdir(t->path, 0700), 0);	/* a directory: EISDIR on read, even as root */
	assert_null(userdb_open(t->dir, NULL, err, sizeof err));
	assert_non_null(strstr(err, "user store"));
	assert_non_null(strstr(err, t->path));
	rmdir(t->path);
}

static void test_written_file_is_sorted_json(void **state)
{
	/* the file mqbroker writes parses, lists users and permissions in
	 * name order whatever the order of changes, and reads back the same */
	struct t *t = *state;
	char *text, err[256];
	size_t len = 0;
	struct json *j;
	const struct json *users;
	OK(userdb_user_add(t->db, "zed", t->hash_a, false, E));
	OK(userdb_user_add(t->db, "amy", t->hash_b, true, E));
	OK(userdb_vhost_add(t->db, "v\"q", E));	/* quoting survives */
	OK(userdb_permit(t->db, "zed", "v\"q", "", "\\\\x", "", E));
	text = slurp(t->path, &len);
	j = json_parse(text, len, err, sizeof err);
	if (!j)
		fail_msg("%s: %s", err, text);
	users = json_get(j, "users");
	assert_int_equal(users->len, 2);
	assert_string_equal(json_get_str(users->items[0], "name"), "amy");
	assert_string_equal(json_get_str(users->items[1], "name"), "zed");
	json_free(j);
	free(text);
	reopen(t, NULL);
	assert_int_equal(userdb_may(t->db, "zed", "v\"q", USERDB_SEND, "\\x"), USERDB_ALLOW);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_new_store_is_empty),
		T(test_users_survive_reopen),
		T(test_passwd_and_delete),
		T(test_user_errors),
		T(test_grants_match_whole_names),
		T(test_three_grants_are_separate),
		T(test_grant_errors),
		T(test_verdicts_and_explanations),
		T(test_permissions_survive_reopen),
		T(test_vhosts),
		T(test_config_users_listed_with_store_users),
		T(test_config_hash_errors_keep_previous),
		T(test_config_hides_stored_user),
		T(test_certificate_users_survive_reopen),
		T(test_orphan_permissions_warned_and_inert),
		T(test_unwritable_store_changes_nothing),
		T(test_failed_fsync_or_rename_changes_nothing),
		T(test_read_only_directory),
		T(test_corrupted_store_refuses_to_open),
		T(test_unreadable_store_refuses_to_open),
		T(test_written_file_is_sorted_json),
	};
	log_set_level(LOG_NONE);	/* failed writes log an error by design */
	return cmocka_run_group_tests(tests, NULL, NULL);
}
