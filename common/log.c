/* log.c: timestamped lines on stderr or in a file; under systemd, lines
 * that journald stamps itself. */
#include "common/log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static int current_level = LOG_ERROR;
static const char *ident = "mqbroker";
static char *file_path;		/* owned; NULL when logging to stderr */
static int to_journal = -1;	/* stderr is journald's stream; -1: not checked yet */

void log_set_level(int level)
{
	if (level < LOG_NONE)
		level = LOG_NONE;
	if (level > LOG_DEBUG)
		level = LOG_DEBUG;
	current_level = level;
}

int log_get_level(void) { return current_level; }

void log_set_ident(const char *name) { ident = name; }

static int redirect_to(const char *path, char *err, size_t errlen)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	if (fd < 0) {
		if (err)
			snprintf(err, errlen, "cannot open log file %s: %s", path, strerror(errno));
		return -1;
	}
	fflush(stdout);
	fflush(stderr);
	/* Like mqserver's -g: stdout and stderr both go to the file, so that
	 * anything a library prints ends up beside our own lines. */
	dup2(fd, STDOUT_FILENO);
	dup2(fd, STDERR_FILENO);
	close(fd);
	to_journal = -1;
	return 0;
}

int log_open_file(const char *path, char *err, size_t errlen)
{
	if (redirect_to(path, err, errlen) < 0)
		return -1;
	free(file_path);
	file_path = strdup(path);
	return 0;
}

const char *log_file_path(void) { return file_path; }

int log_reopen_file(char *err, size_t errlen)
{
	if (!file_path)
		return 0;
	return redirect_to(file_path, err, errlen) < 0 ? -1 : 1;
}

void log_reopen(void)
{
	char err[256];
	if (log_reopen_file(err, sizeof err) < 0)
		log_error("%s", err);
}

void log_close(void)
{
	free(file_path);
	file_path = NULL;
}

static const char *level_name[] = { "", "ERROR", "WARN", "INFO", "DEBUG" };
/* syslog priorities (err, warning, info, debug), for journald */
static const int level_prio[] = { 0, 3, 4, 6, 7 };
#define PRIO_NOTICE 5

/* systemd points stderr at journald and says so in JOURNAL_STREAM
 * ("device:inode" of that stream). journald stamps every line with the
 * time, the program and its pid, and takes a leading "<N>" as its syslog
 * priority (sd-daemon(3)): lines there carry that prefix instead of a
 * timestamp of their own. The variable is inherited by children and
 * survives -g, so the stream itself must still be stderr. */
static bool stderr_is_journal(void)
{
	const char *e = getenv("JOURNAL_STREAM");
	unsigned long long dev, ino;
	struct stat st;
	if (!e || sscanf(e, "%llu:%llu", &dev, &ino) != 2 || fstat(STDERR_FILENO, &st) < 0)
		return false;
	return (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}

static void vlog(int level, int prio, const char *name, int with_errno, const char *fmt, va_list ap)
{
	int saved = errno;
	char line[2048];
	struct timeval tv;
	struct tm tm;
	size_t n;
	int r;

	if (level > current_level)
		return;
	if (to_journal < 0)
		to_journal = stderr_is_journal();
	if (to_journal) {
		n = (size_t)snprintf(line, sizeof line, "<%d>%s: ", prio, name);
	} else {
		gettimeofday(&tv, NULL);
		gmtime_r(&tv.tv_sec, &tm);
		n = strftime(line, sizeof line, "%Y-%m-%dT%H:%M:%S", &tm);
		r = snprintf(line + n, sizeof line - n, ".%03dZ %s[%d] %s: ",
		             (int)(tv.tv_usec / 1000), ident, (int)getpid(), name);
		if (r > 0)
			n += (size_t)r;
	}
	{
		/* Client-supplied text (a header value, a destination) can hold
		 * line breaks once unescaped: written as \n, \r and \xHH, so
		 * that nobody can forge a log line. */
		char msg[2048];
		r = vsnprintf(msg, sizeof msg, fmt, ap);
		for (size_t i = 0; r > 0 && i < (size_t)r && i < sizeof msg - 1 && n < sizeof line - 6; i++) {
			unsigned char ch = (unsigned char)msg[i];
			if ((ch >= 0x20 && ch != 0x7f) || ch == '\t') {
				line[n++] = (char)ch;
			} else if (ch == '\n' || ch == '\r') {
				line[n++] = '\\';
				line[n++] = ch == '\n' ? 'n' : 'r';
			} else {
				n += (size_t)snprintf(line + n, sizeof line - n, "\\x%02x", ch);
			}
		}
	}
	if (n >= sizeof line - 1)
		n = sizeof line - 2;
	if (with_errno) {
		r = snprintf(line + n, sizeof line - n, ": %s", strerror(saved));
		if (r > 0)
			n += (size_t)r;
		if (n >= sizeof line - 1)
			n = sizeof line - 2;
	}
	line[n++] = '\n';
	/* One write per line keeps lines whole when several processes share the file. */
	if (write(STDERR_FILENO, line, n) < 0) {
		/* nowhere left to report it */
	}
	errno = saved;
}

#define DEFINE_LOG(fn, level, with_errno)          \
	void fn(const char *fmt, ...)              \
	{                                          \
		va_list ap;                        \
		va_start(ap, fmt);                 \
		vlog(level, level_prio[level], level_name[level], with_errno, fmt, ap); \
		va_end(ap);                        \
	}

DEFINE_LOG(log_error, LOG_ERROR, 0)
DEFINE_LOG(log_warn, LOG_WARN, 0)
DEFINE_LOG(log_info, LOG_INFO, 0)
DEFINE_LOG(log_debug, LOG_DEBUG, 0)
DEFINE_LOG(log_error_sys, LOG_ERROR, 1)
DEFINE_LOG(log_warn_sys, LOG_WARN, 1)

/* Shown at the default level, like errors, but is not one. */
void log_notice(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vlog(LOG_ERROR, PRIO_NOTICE, "NOTICE", 0, fmt, ap);
	va_end(ap);
}
