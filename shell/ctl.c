/* ctl.c: blocking request/reply over the control socket, interruptible. */
#include "ctl.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

/* A reply larger than this is not something our broker sends: the stream
 * is out of step, better to say so than to allocate without end. */
#define CTL_MAX_REPLY (256u << 20)
/* poll() wakes at least this often to look at *stop: a SIGINT that lands
 * between the check and the call would otherwise wait for the broker. */
#define CTL_SLICE_MS 200

struct ctl {
	char *path;		/* owned */
	int fd;			/* -1 while not connected */
	unsigned timeout_ms;
	struct sbuf in;		/* bytes read and not yet consumed */
	size_t in_off;		/* consumed prefix of `in` */
};

static int connect_path(const char *path, char *err, size_t errlen)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	int fd;

	if (strlen(path) >= sizeof sun.sun_path) {
		snprintf(err, errlen, "could not connect to the broker at %s: path too long (%zu bytes, limit %zu)",
		         path, strlen(path), sizeof sun.sun_path - 1);
		return -1;
	}
	memcpy(sun.sun_path, path, strlen(path) + 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		snprintf(err, errlen, "could not connect to the broker at %s: %s", path, strerror(errno));
		return -1;
	}
	if (connect(fd, (struct sockaddr *)&sun, sizeof sun) < 0) {
		snprintf(err, errlen, "could not connect to the broker at %s: %s", path, strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

struct ctl *ctl_open(const char *path, unsigned timeout_ms, char *err, size_t errlen)
{
	struct ctl *c;
	int fd = connect_path(path, err, errlen);
	if (fd < 0)
		return NULL;
	c = ctl_lazy(path, timeout_ms);
	c->fd = fd;
	return c;
}

struct ctl *ctl_lazy(const char *path, unsigned timeout_ms)
{
	struct ctl *c;
	c = xcalloc(1, sizeof *c);
	c->fd = -1;
	c->path = xstrdup(path);
	c->timeout_ms = timeout_ms;
	sbuf_init(&c->in);
	return c;
}

static void disconnect(struct ctl *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	sbuf_reset(&c->in);
	c->in_off = 0;
}

void ctl_free(struct ctl *c)
{
	if (!c)
		return;
	disconnect(c);
	sbuf_fini(&c->in);
	free(c->path);
	free(c);
}

const char *ctl_path(const struct ctl *c)
{
	return c->path;
}

/* Waits until fd is ready for `events`. 0 ready, -1 with err (timeout,
 * interrupted, poll failure). timeout_ms 0: no limit. */
static int wait_fd(struct ctl *c, short events, uint64_t deadline_ms, volatile sig_atomic_t *stop,
                   char *err, size_t errlen)
{
	for (;;) {
		struct pollfd p = { c->fd, events, 0 };
		int slice = CTL_SLICE_MS, n;
		if (stop && *stop) {
			snprintf(err, errlen, "interrupted");
			return -1;
		}
		if (deadline_ms) {
			uint64_t now = mono_ms();
			if (now >= deadline_ms) {
				snprintf(err, errlen, "no reply from the broker at %s within %u ms", c->path, c->timeout_ms);
				return -1;
			}
			slice = (int)MIN((uint64_t)slice, deadline_ms - now);
		}
		n = poll(&p, 1, slice);
		if (n > 0)
			return 0;
		if (n < 0 && errno != EINTR) {
			snprintf(err, errlen, "cannot wait for the broker at %s: %s", c->path, strerror(errno));
			return -1;
		}
	}
}

static int send_all(struct ctl *c, const char *buf, size_t len, uint64_t deadline, volatile sig_atomic_t *stop,
                    char *err, size_t errlen)
{
	while (len) {
		/* MSG_NOSIGNAL: a broker that went away is an error, not SIGPIPE. */
		ssize_t n = send(c->fd, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n > 0) {
			buf += n;
			len -= (size_t)n;
			continue;
		}
		if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
			if (wait_fd(c, POLLOUT, deadline, stop, err, errlen) < 0)
				return -1;
			continue;
		}
		{
			int e = errno;	/* the caller looks at it: EPIPE may be retried */
			snprintf(err, errlen, "cannot send to the broker at %s: %s", c->path, strerror(e));
			errno = e;
		}
		return -1;
	}
	return 0;
}

/* Reads more into c->in. 1 read, 0 EOF, -1 error. */
static int fill(struct ctl *c, uint64_t deadline, volatile sig_atomic_t *stop, char *err, size_t errlen)
{
	char buf[65536];
	ssize_t n;

	if (wait_fd(c, POLLIN, deadline, stop, err, errlen) < 0)
		return -1;
	n = recv(c->fd, buf, sizeof buf, MSG_DONTWAIT);
	if (n > 0) {
		sbuf_add(&c->in, buf, (size_t)n);
		return 1;
	}
	if (n == 0)
		return 0;
	if (errno == EAGAIN || errno == EINTR)
		return 1;
	snprintf(err, errlen, "cannot read from the broker at %s: %s", c->path, strerror(errno));
	return -1;
}

/* The next line in c->in, consumed; NULL when none is complete. */
static char *take_line(struct ctl *c, size_t *len)
{
	char *start = c->in.buf ? c->in.buf + c->in_off : NULL;
	char *nl = start ? memchr(start, '\n', c->in.len - c->in_off) : NULL;
	if (!nl)
		return NULL;
	*nl = 0;
	*len = (size_t)(nl - start);
	c->in_off += *len + 1;
	return start;
}

/* Drops what was consumed, keeping the rest for the next read. */
static void compact(struct ctl *c)
{
	if (!c->in_off)
		return;
	memmove(c->in.buf, c->in.buf + c->in_off, c->in.len - c->in_off);
	c->in.len -= c->in_off;
	c->in.buf[c->in.len] = 0;
	c->in_off = 0;
}

static int closed_early(struct ctl *c, char *err, size_t errlen)
{
	snprintf(err, errlen, "the broker at %s closed the connection before replying", c->path);
	return -1;
}

static int read_reply(struct ctl *c, struct ctl_reply *r, uint64_t deadline, volatile sig_atomic_t *stop,
                      char *err, size_t errlen)
{
	char *head, perr[128];
	size_t hlen;
	unsigned long status, length;
	int n;

	while (!(head = take_line(c, &hlen))) {
		if ((n = fill(c, deadline, stop, err, errlen)) <= 0)
			return n == 0 ? closed_early(c, err, errlen) : -1;
	}
	if (sscanf(head, "%3lu %lu", &status, &length) != 2 || status < 100 || status > 599 ||
	    length > CTL_MAX_REPLY) {
		snprintf(err, errlen, "malformed reply from the broker at %s: header line '%.60s'", c->path, head);
		return -1;
	}
	while (c->in.len - c->in_off < length + 1) {
		if ((n = fill(c, deadline, stop, err, errlen)) <= 0)
			return n == 0 ? closed_early(c, err, errlen) : -1;
	}
	if (c->in.buf[c->in_off + length] != '\n') {
		snprintf(err, errlen, "malformed reply from the broker at %s: %lu bytes of JSON not followed by a newline",
		         c->path, length);
		return -1;
	}
	r->status = (int)status;
	r->len = length;
	r->json = xstrndup(c->in.buf + c->in_off, length);
	c->in_off += length + 1;
	compact(c);
	r->doc = json_parse(r->json, r->len, perr, sizeof perr);
	if (!r->doc || r->doc->type != JSON_OBJ) {
		snprintf(err, errlen, "malformed reply from the broker at %s: %s", c->path, r->doc ? "not an object" : perr);
		ctl_reply_fini(r);
		return -1;
	}
	r->message = json_get_str(r->doc, "message");
	if (!r->message)
		r->message = "";
	r->data = json_get(r->doc, "data");
	return 0;
}

int ctl_call(struct ctl *c, const char *line, struct ctl_reply *r, volatile sig_atomic_t *stop,
             char *err, size_t errlen)
{
	uint64_t deadline = c->timeout_ms ? mono_ms() + c->timeout_ms : 0;
	struct sbuf req;
	int rc;

	memset(r, 0, sizeof *r);
	if (strchr(line, '\n')) {
		snprintf(err, errlen, "a command cannot contain a line break");
		return -1;
	}
	if (c->fd < 0 && (c->fd = connect_path(c->path, err, errlen)) < 0)
		return -1;
	sbuf_init(&req);
	sbuf_printf(&req, "%s\n", line);
	rc = send_all(c, req.buf, req.len, deadline, stop, err, errlen);
	if (rc < 0 && !(stop && *stop) && (errno == EPIPE || errno == ECONNRESET)) {
		/* The broker closed this connection while we were idle (it
		 * restarted, or shut down): nothing of this command reached
		 * it, so it is safe to try once more on a new connection. */
		disconnect(c);
		if ((c->fd = connect_path(c->path, err, errlen)) >= 0)
			rc = send_all(c, req.buf, req.len, deadline, stop, err, errlen);
	}
	sbuf_fini(&req);
	if (rc == 0)
		rc = read_reply(c, r, deadline, stop, err, errlen);
	if (rc < 0)
		disconnect(c);	/* out of step now: start afresh next time */
	return rc;
}

void ctl_reply_fini(struct ctl_reply *r)
{
	json_free(r->doc);
	free(r->json);
	memset(r, 0, sizeof *r);
}

int ctl_read_line(struct ctl *c, struct sbuf *line, volatile sig_atomic_t *stop, char *err, size_t errlen)
{
	char *l;
	size_t len;
	int n;

	sbuf_reset(line);
	if (c->fd < 0) {
		snprintf(err, errlen, "not connected to the broker at %s", c->path);
		return -1;
	}
	while (!(l = take_line(c, &len))) {
		if ((n = fill(c, 0, stop, err, errlen)) <= 0) {
			if (n == 0)
				disconnect(c);
			return n;
		}
	}
	sbuf_add(line, l, len);
	compact(c);
	return 1;
}
