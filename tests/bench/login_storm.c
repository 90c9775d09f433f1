/* login_storm: a reconnect storm against a real broker, and what it does
 * to another client's round trips.
 *
 *   login_storm HOST PORT LOGIN PASSWORD [RATE] [SECONDS]
 *
 * A probe client stays connected and sends one SEND with a receipt every
 * millisecond to /topic/login-storm-probe (nobody subscribes: nothing
 * piles up), timing each RECEIPT. Its login, the storm's first, puts the
 * password in the verifier's cache. First for
 * SECONDS with nothing else going on (idle), then for SECONDS while
 * another thread opens RATE connections a second (default 2,000), each
 * logging in with LOGIN and PASSWORD, waiting for CONNECTED and closing.
 * It prints the probe's median and 99th percentile both times, and the
 * logins that succeeded, failed and fell behind. The storm's logins are
 * all the same user: after the first, the verifier's cache answers them.
 *
 * Build Release (no sanitizer) and start a Release broker before quoting
 * a figure (docs/security.md has ours). Loopback only. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static struct sockaddr_in addr;
static const char *login, *password;
static unsigned rate = 2000, seconds = 5;
static atomic_bool storming, stop_storm;
static atomic_ulong ok_logins, bad_logins, late;

static uint64_t now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static int dial(void)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
	if (fd < 0)
		return -1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	if (connect(fd, (struct sockaddr *)&addr, sizeof addr) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* Reads one frame (up to its NUL) into buf; its first byte, or -1. */
static int read_frame(int fd, char *buf, size_t cap)
{
	size_t n = 0;
	while (n + 1 < cap) {
		ssize_t r = read(fd, buf + n, 1);
		if (r <= 0)
			return -1;
		if (buf[n] == 0)
			break;
		if (n == 0 && buf[0] == '\n')
			continue;	/* a heart-beat */
		n++;
	}
	buf[n] = 0;
	return (unsigned char)buf[0];
}

static int stomp_login(void)
{
	char frame[1024], buf[4096];
	int fd = dial(), len;
	if (fd < 0)
		return -1;
	len = snprintf(frame, sizeof frame, "CONNECT\naccept-version:1.2\nhost:/\nlogin:%s\npasscode:%s\n\n", login,
	               password);
	if (write(fd, frame, (size_t)len + 1) != len + 1 || read_frame(fd, buf, sizeof buf) < 0 ||
	    strncmp(buf, "CONNECTED", 9) != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static void *storm(void *arg)
{
	uint64_t start, i = 0;
	(void)arg;
	while (!storming)
		usleep(1000);
	start = now_us();
	while (!stop_storm) {
		uint64_t due = start + i * 1000000u / rate, t = now_us();
		int fd;
		if (t < due)
			usleep((useconds_t)(due - t));
		else if (t - due > 100000)
			late++;	/* more than 0.1 s behind the schedule */
		fd = stomp_login();
		if (fd >= 0) {
			ok_logins++;
			close(fd);
		} else {
			bad_logins++;
		}
		i++;
	}
	return NULL;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* SEND + RECEIPT every millisecond for `secs`; median and p99 in us. */
static int probe(int fd, unsigned secs, uint64_t *p50, uint64_t *p99)
{
	size_t cap = (size_t)secs * 1000 + 16, n = 0;
	uint64_t *rtt = calloc(cap, sizeof *rtt), end = now_us() + (uint64_t)secs * 1000000u;
	char frame[256], buf[4096];
	while (now_us() < end && n < cap) {
		uint64_t t0 = now_us();
		int len = snprintf(frame, sizeof frame, "SEND\ndestination:/topic/login-storm-probe\nreceipt:%zu\n\nx", n);
		if (write(fd, frame, (size_t)len + 1) != len + 1 || read_frame(fd, buf, sizeof buf) < 0 ||
		    strncmp(buf, "RECEIPT", 7) != 0) {
			fprintf(stderr, "login_storm: the probe lost its connection: %s\n", buf);
			free(rtt);
			return -1;
		}
		rtt[n++] = now_us() - t0;
		while (now_us() < t0 + 1000)
			usleep(100);
	}
	qsort(rtt, n, sizeof *rtt, cmp_u64);
	*p50 = rtt[n / 2];
	*p99 = rtt[n * 99 / 100];
	free(rtt);
	return 0;
}

int main(int argc, char **argv)
{
	pthread_t th;
	uint64_t i50, i99, s50, s99;
	int fd;

	if (argc < 5) {
		fprintf(stderr, "usage: login_storm HOST PORT LOGIN PASSWORD [RATE] [SECONDS]\n");
		return 2;
	}
	addr.sin_family = AF_INET;
	addr.sin_port = htons((uint16_t)atoi(argv[2]));
	if (inet_pton(AF_INET, argv[1], &addr.sin_addr) != 1) {
		fprintf(stderr, "login_storm: HOST must be an IPv4 address\n");
		return 2;
	}
	login = argv[3];
	password = argv[4];
	if (argc > 5)
		rate = (unsigned)atoi(argv[5]);
	if (argc > 6)
		seconds = (unsigned)atoi(argv[6]);
	if ((fd = stomp_login()) < 0) {
		fprintf(stderr, "login_storm: the probe cannot log in as %s\n", login);
		return 1;
	}
	pthread_create(&th, NULL, storm, NULL);
	if (probe(fd, seconds, &i50, &i99) < 0)
		return 1;
	storming = true;
	if (probe(fd, seconds, &s50, &s99) < 0)
		return 1;
	stop_storm = true;
	pthread_join(th, NULL);
	printf("probe round trip idle:        median %6.0f us, p99 %6.0f us\n", (double)i50, (double)i99);
	printf("during %u logins/s:         median %6.0f us, p99 %6.0f us (p99 %.2fx idle)\n", rate, (double)s50,
	       (double)s99, i99 ? (double)s99 / (double)i99 : 0.0);
	printf("storm: %lu logins accepted, %lu refused, %lu started over 0.1 s late (%.0f/s achieved)\n",
	       (unsigned long)ok_logins, (unsigned long)bad_logins, (unsigned long)late,
	       (double)(ok_logins + bad_logins) / seconds);
	close(fd);
	return 0;
}
