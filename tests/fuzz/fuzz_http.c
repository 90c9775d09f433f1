/* fuzz_http.c: libFuzzer target for HTTP requests as the broker reads them:
 * libevent's evhttp parses them and the broker's handlers (publishing with
 * X-Mq- headers, Basic authentication, /api paths and arguments, /health,
 * /metrics) act on them, in one real broker set up once. Each input is one
 * connection's bytes, over a Unix socket the HTTP server also listens on;
 * the loop runs until the broker has answered or closed. Crashes, leaks and sanitizer reports are the
 * findings. Links mqcore. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/event.h>

#include "config/config.h"
#include "core/broker.h"
#include "http/http.h"
#include "server/server.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct broker *b;
static struct sockaddr_un where = { .sun_family = AF_UNIX };

static void setup(void)
{
	struct config cfg;
	char err[512], dir[] = "/tmp/mq-fuzz-http-XXXXXX";
	if (!mkdtemp(dir))
		abort();
	config_init(&cfg);
	config_set(&cfg, "data_dir", dir, err, sizeof err);
	config_set(&cfg, "http_path", "mq", err, sizeof err);
	config_set(&cfg, "log_level", "0", err, sizeof err);
	cfg.http_any_port = true;
	b = broker_new(&cfg, NULL, err, sizeof err);
	if (!b || http_open(b, err, sizeof err) < 0) {
		fprintf(stderr, "fuzz_http: %s\n", err);
		abort();
	}
	{
		int l = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0);
		snprintf(where.sun_path, sizeof where.sun_path, "%s/http.sock", dir);
		if (l < 0 || bind(l, (struct sockaddr *)&where, sizeof where) < 0 || listen(l, 16) < 0 ||
		    http_accept_on(b, l) < 0)
			abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	int fd;
	char buf[4096];
	if (!b)
		setup();
	if ((fd = socket(AF_UNIX, SOCK_STREAM, 0)) < 0)
		return 0;
	if (connect(fd, (struct sockaddr *)&where, sizeof where) < 0) {
		close(fd);
		return 0;
	}
	fcntl(fd, F_SETFL, O_NONBLOCK);
	if (size)
		(void)!write(fd, data, size);
	shutdown(fd, SHUT_WR);
	/* Until the broker closes its end or has nothing more to do. */
	for (int turns = 0; turns < 200; turns++) {
		ssize_t n;
		event_base_loop(b->base, EVLOOP_NONBLOCK);
		n = read(fd, buf, sizeof buf);
		if (n == 0)
			break;
	}
	close(fd);
	/* a connection evhttp still holds is closed by the next turns */
	event_base_loop(b->base, EVLOOP_NONBLOCK);
	return 0;
}
