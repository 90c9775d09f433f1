/* fsync_eio.c: a preloaded shim that makes fsync() and fdatasync() fail
 * with EIO on demand, for the durability tests (tests/integration/
 * test_faults.py):
 *
 *   LD_PRELOAD=BUILD/lib/libmqfault_fsync.so MQ_FAULT_FSYNC_FILE=/tmp/x mqbroker ...
 *
 * While the file named by MQ_FAULT_FSYNC_FILE exists, every call fails
 * without syncing anything, as a disk that lost the data would report it;
 * otherwise the calls go through to libc. Each failure is counted in the
 * file itself (one byte appended), so a test can tell that it happened. */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

static int failing(void)
{
	const char *path = getenv("MQ_FAULT_FSYNC_FILE");
	int fd, e = errno;

	if (!path || !*path)
		return 0;
	fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC);
	if (fd < 0) {
		errno = e;
		return 0;
	}
	if (write(fd, "x", 1) < 0) {
		/* counted or not, the call fails */
	}
	close(fd);
	errno = EIO;
	return 1;
}

int fsync(int fd)
{
	static int (*real)(int);
	if (failing())
		return -1;
	if (!real)
		real = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
	return real(fd);
}

int fdatasync(int fd)
{
	static int (*real)(int);
	if (failing())
		return -1;
	if (!real)
		real = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
	return real(fd);
}
