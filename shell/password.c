/* password.c: reading a new password without echo, and hashing it. */
#include "password.h"

#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "common/passwd.h"
#include "common/util.h"

static struct termios saved_tio;
static volatile sig_atomic_t echo_off;

static void restore_echo(void)
{
	if (echo_off) {
		tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved_tio);
		echo_off = 0;
	}
}

static void on_signal(int sig)
{
	restore_echo();
	signal(sig, SIG_DFL);
	raise(sig);
}

/* One line from the terminal with echo off. */
static int ask(const char *prompt, char *buf, size_t cap, char *err, size_t errlen)
{
	struct termios tio;
	size_t n = 0;
	bool nl = false;

	if (tcgetattr(STDIN_FILENO, &saved_tio) < 0) {
		snprintf(err, errlen, "cannot read the terminal's settings: %s", strerror(errno));
		return -1;
	}
	tio = saved_tio;
	tio.c_lflag &= (tcflag_t)~ECHO;
	tio.c_lflag |= ECHONL;	/* Enter still moves to the next line */
	/* Echo goes off before the prompt shows. */
	echo_off = 1;
	if (tcsetattr(STDIN_FILENO, TCSAFLUSH, &tio) < 0) {
		echo_off = 0;
		snprintf(err, errlen, "cannot turn echo off: %s", strerror(errno));
		return -1;
	}
	fputs(prompt, stderr);
	fflush(stderr);
	for (;;) {
		char c;
		ssize_t r = read(STDIN_FILENO, &c, 1);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		if (c == '\n') {
			nl = true;
			break;
		}
		if (n + 1 >= cap) {
			restore_echo();
			snprintf(err, errlen, "the password is longer than %d bytes", PASSWD_MAX_LEN);
			return -1;
		}
		buf[n++] = c;
	}
	buf[n] = 0;
	restore_echo();
	if (!nl && n == 0) {
		snprintf(err, errlen, "no password: end of input on the terminal");
		return -1;
	}
	return 0;
}

static int from_terminal(char *pw, size_t cap, char *err, size_t errlen)
{
	static const int sigs[] = { SIGTERM, SIGHUP, SIGQUIT };
	char again[PASSWD_MAX_LEN + 2];
	void (*old_int)(int) = signal(SIGINT, on_signal);
	int rc = 0;

	for (size_t i = 0; i < ARRAY_LEN(sigs); i++)
		signal(sigs[i], on_signal);
	if (ask("Password: ", pw, cap, err, errlen) < 0 || ask("Again: ", again, sizeof again, err, errlen) < 0)
		rc = -1;
	for (size_t i = 0; i < ARRAY_LEN(sigs); i++)
		signal(sigs[i], SIG_DFL);
	signal(SIGINT, old_int);
	if (rc == 0 && strcmp(pw, again) != 0) {
		snprintf(err, errlen, "the two passwords differ; nothing was changed");
		rc = -1;
	}
	OPENSSL_cleanse(again, sizeof again);
	return rc;
}

/* The next line of standard input (the FILE, which scripts read too). */
static int from_stdin(char *pw, size_t cap, char *err, size_t errlen)
{
	char *line = NULL;
	size_t lcap = 0;
	ssize_t n = getline(&line, &lcap, stdin);
	int rc = 0;

	if (n < 0) {
		snprintf(err, errlen, "no password: standard input is empty (give it on the line after the command, "
		         "e.g. printf '%%s\\n' \"$PASSWORD\" | mqsh user add NAME)");
		free(line);
		return -1;
	}
	if (n && line[n - 1] == '\n')
		line[--n] = 0;
	if (n && line[n - 1] == '\r')
		line[--n] = 0;
	if (strlen(line) != (size_t)n) {
		snprintf(err, errlen, "the password on standard input contains a NUL byte");
		rc = -1;
	} else if ((size_t)n + 1 > cap) {
		snprintf(err, errlen, "the password on standard input is longer than %d bytes", PASSWD_MAX_LEN);
		rc = -1;
	} else {
		memcpy(pw, line, (size_t)n + 1);
	}
	OPENSSL_cleanse(line, lcap);
	free(line);
	return rc;
}

int password_ask_hash(const char *who, char *hash, size_t hashlen, char *err, size_t errlen)
{
	char pw[PASSWD_MAX_LEN + 2], why[256];
	int rc;

	pw[0] = 0;
	if (isatty(STDIN_FILENO)) {
		fprintf(stderr, "New password for %s\n", who);
		rc = from_terminal(pw, sizeof pw, err, errlen);
	} else {
		rc = from_stdin(pw, sizeof pw, err, errlen);
	}
	if (rc == 0 && !pw[0]) {
		snprintf(err, errlen, "the password is empty");
		rc = -1;
	}
	if (rc == 0 && passwd_hash(pw, strlen(pw), 0, hash, hashlen, why, sizeof why) < 0) {
		snprintf(err, errlen, "cannot hash the password: %s", why);
		rc = -1;
	}
	OPENSSL_cleanse(pw, sizeof pw);
	return rc;
}
