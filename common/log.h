/* log.h: one line per event, to stderr or to the file given by -g.
 * When stderr is journald's stream (systemd's JOURNAL_STREAM), lines carry
 * a syslog priority instead of a timestamp: journald adds its own.
 *
 * Levels follow mqserver's -l: 0 none, 1 errors (default), 2 warnings,
 * 3 all; 4 adds debug output that is only useful to developers.
 * The *_sys variants append ": strerror(errno)", so no caller formats
 * errno by hand (OpenBSD's log_warn/log_warnx split). */
#ifndef MQ_LOG_H
#define MQ_LOG_H

#include <stddef.h>

enum log_level {
	LOG_NONE = 0,	/* nothing at all */
	LOG_ERROR = 1,	/* something failed; the default */
	LOG_WARN = 2,	/* something odd a operator may want to know */
	LOG_INFO = 3,	/* every event: connections, destinations, reloads */
	LOG_DEBUG = 4,	/* state transitions and frames, for developers */
};

#define LOG_PRINTF(a, b) __attribute__((format(printf, a, b)))

void log_set_level(int level);
int  log_get_level(void);
void log_set_ident(const char *ident);	/* "mqbroker", "mqsh"; borrowed */

/* Send every line, stdout and stderr included, to `path` (mqserver's -g).
 * Returns -1 with a reason in err when the file cannot be opened. */
int  log_open_file(const char *path, char *err, size_t errlen);
/* Reopen the file given to log_open_file (SIGHUP, for logrotate); a
 * failure is logged to the old file, which stays in use. */
void log_reopen(void);
/* The same for the logreopen command: 1 reopened, 0 no file (stderr),
 * -1 with the reason in err. */
int  log_reopen_file(char *err, size_t errlen);
/* The file given to log_open_file, or NULL when logging goes to stderr. */
const char *log_file_path(void);
void log_close(void);

void log_error(const char *fmt, ...) LOG_PRINTF(1, 2);
void log_warn(const char *fmt, ...) LOG_PRINTF(1, 2);
/* Something the operator must see even at the default level (1), such as
 * the port the broker took instead of 61613; not an error. */
void log_notice(const char *fmt, ...) LOG_PRINTF(1, 2);
void log_info(const char *fmt, ...) LOG_PRINTF(1, 2);
void log_debug(const char *fmt, ...) LOG_PRINTF(1, 2);
void log_error_sys(const char *fmt, ...) LOG_PRINTF(1, 2);
void log_warn_sys(const char *fmt, ...) LOG_PRINTF(1, 2);

/* Cheap test before building an expensive log line. */
#define log_enabled(level) (log_get_level() >= (level))

#endif
