/* fdtable.c: the descriptor table, sized once at start-up.
 *
 * The kernel grows a process's descriptor table by doubling it, and in a
 * process with threads (the journal's sync thread, the password
 * verifiers) every doubling waits for an RCU grace period: 10 to 15 ms
 * measured on a 2-core machine, in the middle of accept(). A flood of
 * connections stalled the loop once per doubling, every connected client
 * with it. Grown once here, before any thread exists, the table costs 8
 * bytes a descriptor and never grows in service. */
#include "server/fdtable.h"

#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>

#include "common/log.h"

/* Listeners, the journal's segments, the control socket, HTTP, bridges. */
#define OWN_FILES 256

void fdtable_prepare(int connections)
{
	struct rlimit rl;
	rlim_t want = (rlim_t)connections + OWN_FILES;
	int fd, src;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return;
	if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < want) {
		struct rlimit up = rl;
		up.rlim_cur = (rl.rlim_max == RLIM_INFINITY || rl.rlim_max > want) ? want : rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &up) == 0)
			rl = up;
		if (rl.rlim_cur < want)
			log_notice("open files are limited to %llu (ulimit -n): fewer than the %d connections -n "
			           "allows plus %d for the broker's own files", (unsigned long long)rl.rlim_cur,
			           connections, OWN_FILES);
	}
	if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < want)
		want = rl.rlim_cur;
	if (want < 2 || (src = open("/dev/null", O_RDONLY | O_CLOEXEC)) < 0)
		return;
	/* The lowest free descriptor at or above the last one: the table
	 * grows to hold it, and nothing already open is touched. */
	fd = fcntl(src, F_DUPFD_CLOEXEC, (int)(want - 1));
	if (fd >= 0)
		close(fd);
	close(src);
}
