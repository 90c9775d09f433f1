/* passwd_cli.c: `mqbroker --hash-password [--iterations N]`.
 *
 * On a terminal the password is asked twice with echo off (a typo would
 * otherwise lock its owner out silently); from a pipe it is the one line
 * of standard input. The terminal's settings are restored on every way
 * out, a signal included. */
#include "auth/passwd_cli.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "common/passwd.h"
#include "common/util.h"

#define OPTION "--hash-password"

bool passwd_cli_wanted(int argc, char **argv)
{
	for (int i = 1; i < argc; i++)
		if (strcmp(argv[i], OPTION) == 0)
			return true;
	return false;
}

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

/* Reads up to a newline or end of input into buf (cap bytes, the last for
 * the NUL). Returns the length, -1 on a read error, -2 when the line is
 * too long; *more says whether anything followed the newline. */
static ssize_t read_line(int fd, char *buf, size_t cap, bool *saw_newline)
{
	size_t n = 0;
	*saw_newline = false;
	for (;;) {
		char c;
		ssize_t r = read(fd, &c, 1);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -1;
		if (r == 0)
			break;
		if (c == '\n') {
			*saw_newline = true;
			break;
		}
		if (n + 1 >= cap)
			return -2;
		buf[n++] = c;
	}
	buf[n] = 0;
	return (ssize_t)n;
}

static int ask(const char *prompt, char *buf, size_t cap)
{
	struct termios tio;
	bool nl;
	ssize_t n;

	/* Echo goes off before the prompt shows: whatever is typed once the
	 * prompt is visible stays unseen. */
	if (tcgetattr(STDIN_FILENO, &saved_tio) < 0) {
		fprintf(stderr, "mqbroker: cannot read the terminal's settings: %s\n", strerror(errno));
		return -1;
	}
	tio = saved_tio;
	tio.c_lflag &= (tcflag_t)~ECHO;
	tio.c_lflag |= ECHONL;	/* the Enter key still moves to the next line */
	echo_off = 1;
	if (tcsetattr(STDIN_FILENO, TCSAFLUSH, &tio) < 0) {
		echo_off = 0;
		fprintf(stderr, "mqbroker: cannot turn echo off: %s\n", strerror(errno));
		return -1;
	}
	fputs(prompt, stderr);
	fflush(stderr);
	n = read_line(STDIN_FILENO, buf, cap, &nl);
	restore_echo();
	if (n == -2) {
		fprintf(stderr, "mqbroker: the password is longer than %d bytes\n", PASSWD_MAX_LEN);
		return -1;
	}
	if (n < 0) {
		fprintf(stderr, "mqbroker: cannot read the terminal: %s\n", strerror(errno));
		return -1;
	}
	if (!nl && n == 0) {
		fprintf(stderr, "\nmqbroker: no password: end of input on the terminal\n");
		return -1;
	}
	return 0;
}

static int from_terminal(char *pw, char *again, size_t cap)
{
	static const int sigs[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT };
	int rc = 0;
	for (size_t i = 0; i < ARRAY_LEN(sigs); i++)
		signal(sigs[i], on_signal);
	if (ask("Password: ", pw, cap) < 0 || ask("Again: ", again, cap) < 0)
		rc = -1;
	for (size_t i = 0; i < ARRAY_LEN(sigs); i++)
		signal(sigs[i], SIG_DFL);
	if (rc == 0 && strcmp(pw, again) != 0) {
		fprintf(stderr, "mqbroker: the two passwords differ; nothing was printed\n");
		rc = -1;
	}
	return rc;
}

static int from_stdin(char *pw, size_t cap)
{
	bool nl;
	ssize_t n = read_line(STDIN_FILENO, pw, cap, &nl);
	char extra;

	if (n == -2) {
		fprintf(stderr, "mqbroker: the password on standard input is longer than %d bytes\n", PASSWD_MAX_LEN);
		return -1;
	}
	if (n < 0) {
		fprintf(stderr, "mqbroker: cannot read standard input: %s\n", strerror(errno));
		return -1;
	}
	if (n == 0 && !nl) {
		fprintf(stderr, "mqbroker: no password: standard input is empty (pipe one in, e.g. "
		        "printf '%%s\\n' \"$PASSWORD\" | mqbroker --hash-password)\n");
		return -1;
	}
	if (nl && read(STDIN_FILENO, &extra, 1) == 1) {
		fprintf(stderr, "mqbroker: standard input holds more than one line: give the password alone\n");
		return -1;
	}
	if (strlen(pw) != (size_t)n) {
		fprintf(stderr, "mqbroker: the password on standard input contains a NUL byte\n");
		return -1;
	}
	return 0;
}

int passwd_cli_main(int argc, char **argv)
{
	char pw[PASSWD_MAX_LEN + 2], again[PASSWD_MAX_LEN + 2], hash[PASSWD_HASH_MAX], err[256];
	uint64_t iterations = PASSWD_ITERATIONS;
	int rc;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], OPTION) == 0)
			continue;
		if (strcmp(argv[i], "--iterations") == 0 && i + 1 < argc) {
			if (!parse_u64(argv[++i], PASSWD_MIN_ITERATIONS, PASSWD_MAX_ITERATIONS, &iterations)) {
				fprintf(stderr, "mqbroker: --iterations: expected a number %u..%u, got '%s'\n",
				        PASSWD_MIN_ITERATIONS, PASSWD_MAX_ITERATIONS, argv[i]);
				return 2;
			}
			continue;
		}
		fprintf(stderr, "mqbroker: " OPTION " takes no other option than --iterations N, got '%s'\n"
		        "usage: mqbroker " OPTION " [--iterations N] (the password on standard input or the "
		        "terminal)\n", argv[i]);
		return 2;
	}
	pw[0] = again[0] = 0;
	rc = isatty(STDIN_FILENO) ? from_terminal(pw, again, sizeof pw) : from_stdin(pw, sizeof pw);
	if (rc == 0 && !pw[0]) {
		fprintf(stderr, "mqbroker: the password is empty\n");
		rc = -1;
	}
	if (rc == 0 && passwd_hash(pw, strlen(pw), (unsigned)iterations, hash, sizeof hash, err, sizeof err) < 0) {
		fprintf(stderr, "mqbroker: %s\n", err);
		rc = -1;
	}
	OPENSSL_cleanse(pw, sizeof pw);
	OPENSSL_cleanse(again, sizeof again);
	if (rc < 0)
		return 1;
	printf("%s\n", hash);
	return fflush(stdout) == 0 ? 0 : 1;
}
