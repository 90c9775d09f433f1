/* relay.c: the ceiling for a STOMP load generator on this machine.
 *
 *   relay [-i ADDR] [-p PORT] [-f]
 *
 * A single-threaded program that moves producers' bytes to consumers and
 * does nothing else a broker does: no headers parsed, no queue, no copy
 * kept, no acknowledgement. Whatever rate the scenario runner reaches
 * through it is the runner's own ceiling (issue 9 asks the benchmark to
 * show it), since a broker can only be slower.
 *
 * Just enough STOMP for a real client library to talk to it:
 *   - each connection's CONNECT is answered with CONNECTED (version 1.2);
 *   - a connection whose next frame is SUBSCRIBE is a consumer (a receipt
 *     it asks for is answered); one whose next frame is SEND, a producer;
 *   - a producer is paired with a consumer (round robin, in order of
 *     arrival; it waits for one to exist) and its bytes are copied to that
 *     consumer as they come, with each frame's leading "SEND" written as
 *     "MESSAGE" so that the client takes it for a delivery (the frame's
 *     destination names the subscription, as STOMP 1.0 brokers do). The
 *     relay finds frame ends with memchr for the NUL, so bodies must not
 *     contain NUL bytes; content-length is not read;
 *   - with -f (fan-out, for topic workloads) a producer is paired with no
 *     one: its bytes are copied to every consumer, as a topic would;
 *   - DISCONNECT with a receipt is answered, then the connection closed.
 * Posts must not ask for receipts (nothing would answer them).
 *
 * Prints "relay listening on ADDR:PORT" once it listens; SIGINT or SIGTERM
 * stop it with a count of frames relayed. */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define READ_CHUNK (256u << 10)
#define OUT_PAUSE (4u << 20)	/* a consumer this far behind stops its producers' reads */
#define MAX_EVENTS 64

enum role {
	R_HANDSHAKE,	/* waiting for CONNECT */
	R_UNKNOWN,	/* CONNECTED sent; the next frame says what it is */
	R_PRODUCER,
	R_CONSUMER,
};

struct peer {
	int fd;
	enum role role;
	struct peer *pair;		/* producer: its consumer (borrowed) */
	struct peer *next_waiting;	/* producer waiting for a consumer */
	char *ctl;			/* a control frame being collected */
	size_t ctl_len, ctl_cap;
	char *out;			/* bytes waiting to be written */
	size_t out_off, out_len, out_cap;
	bool at_start;			/* producer: the next byte begins a frame */
	bool forwarding;		/* producer: inside a SEND being copied */
	char carry[8];			/* producer: a frame's first bytes, split by a read */
	size_t ncarry;
	bool reading, writing;		/* what epoll watches */
	bool close_after_write;
	bool dead;
};

static int ep;
static struct peer **consumers;
static size_t nconsumers, next_consumer;
static struct peer *waiting;
static uint64_t frames;
static bool fanout;		/* -f: every producer's frames to every consumer */
static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static void *xrealloc(void *p, size_t n)
{
	p = realloc(p, n);
	if (!p) {
		fprintf(stderr, "relay: out of memory\n");
		exit(1);
	}
	return p;
}

static void watch(struct peer *p)
{
	struct epoll_event ev = { .data.ptr = p };
	ev.events = (p->reading ? EPOLLIN : 0) | (p->writing ? EPOLLOUT : 0);
	epoll_ctl(ep, EPOLL_CTL_MOD, p->fd, &ev);
}

static void set_reading(struct peer *p, bool on)
{
	if (p->reading != on) {
		p->reading = on;
		watch(p);
	}
}

static void append(struct peer *p, const void *data, size_t n)
{
	if (p->out_len + n > p->out_cap) {
		if (p->out_off) {
			memmove(p->out, p->out + p->out_off, p->out_len - p->out_off);
			p->out_len -= p->out_off;
			p->out_off = 0;
		}
		if (p->out_len + n > p->out_cap) {
			while (p->out_len + n > p->out_cap)
				p->out_cap = p->out_cap ? p->out_cap * 2 : READ_CHUNK;
			p->out = xrealloc(p->out, p->out_cap);
		}
	}
	memcpy(p->out + p->out_len, data, n);
	p->out_len += n;
}

static void kill_peer(struct peer *p);

static void flush(struct peer *p)
{
	while (p->out_off < p->out_len) {
		ssize_t n = write(p->fd, p->out + p->out_off, p->out_len - p->out_off);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN) {
				if (!p->writing) {
					p->writing = true;
					watch(p);
				}
				return;
			}
			kill_peer(p);
			return;
		}
		p->out_off += (size_t)n;
	}
	p->out_off = p->out_len = 0;
	if (p->writing) {
		p->writing = false;
		watch(p);
	}
	if (p->close_after_write)
		kill_peer(p);
}

/* Bytes of a SEND being copied: to the producer's consumer, or to all. */
static void forward(struct peer *p, const void *data, size_t n)
{
	if (!fanout) {
		if (p->pair)
			append(p->pair, data, n);
		return;
	}
	for (size_t k = 0; k < nconsumers; k++)
		append(consumers[k], data, n);
}

/* After a producer's read: write what it gave; true when a consumer is so
 * far behind that the producer should stop being read. */
static bool flush_forwarded(struct peer *p)
{
	bool behind = false;
	if (!fanout) {
		if (p->pair && p->pair->dead)
			p->pair = NULL;
		if (p->pair) {
			flush(p->pair);
			behind = p->pair && !p->pair->dead && p->pair->out_len - p->pair->out_off > OUT_PAUSE;
		}
		return behind;
	}
	for (size_t k = 0; k < nconsumers; k++) {
		struct peer *c = consumers[k];
		flush(c);
		behind |= !c->dead && c->out_len - c->out_off > OUT_PAUSE;
	}
	return behind;
}

static void pair_waiting(void)
{
	while (waiting && nconsumers) {
		struct peer *p = waiting;
		waiting = p->next_waiting;
		p->next_waiting = NULL;
		p->pair = consumers[next_consumer++ % nconsumers];
		set_reading(p, true);
	}
}

static const char *header(const char *frame, const char *name)
{
	size_t n = strlen(name);
	for (const char *l = strchr(frame, '\n'); l && l[1] && l[1] != '\n'; l = strchr(l + 1, '\n'))
		if (strncmp(l + 1, name, n) == 0 && l[1 + n] == ':')
			return l + 2 + n;
	return NULL;
}

static void receipt(struct peer *p, const char *frame)
{
	const char *r = header(frame, "receipt");
	if (r) {
		size_t n = strcspn(r, "\n");
		append(p, "RECEIPT\nreceipt-id:", 19);
		append(p, r, n);
		append(p, "\n\n", 3);	/* the blank line and the NUL */
	}
}

/* A whole control frame (NUL-terminated) from a peer. */
static void control_frame(struct peer *p, const char *f)
{
	while (*f == '\n' || *f == '\r')
		f++;
	if (p->role == R_HANDSHAKE) {
		if (strncmp(f, "CONNECT\n", 8) && strncmp(f, "STOMP\n", 6)) {
			kill_peer(p);
			return;
		}
		append(p, "CONNECTED\nversion:1.2\nheart-beat:0,0\nserver:relay\n\n", 52);
		p->role = R_UNKNOWN;
	} else if (strncmp(f, "SUBSCRIBE\n", 10) == 0) {
		if (p->role == R_UNKNOWN) {
			p->role = R_CONSUMER;
			consumers = xrealloc(consumers, (nconsumers + 1) * sizeof *consumers);
			consumers[nconsumers++] = p;
			pair_waiting();
		}
		receipt(p, f);
	} else if (strncmp(f, "DISCONNECT\n", 11) == 0) {
		receipt(p, f);
		p->close_after_write = true;
	} else {
		receipt(p, f);	/* UNSUBSCRIBE, ACK, ...: nothing to do */
	}
	flush(p);
}

/* Producer bytes: frames are copied to the pair as they come, "SEND"
 * becoming "MESSAGE"; anything else is a control frame for the relay. */
static void relay_bytes(struct peer *p, const char *buf, size_t n)
{
	size_t i = 0;
	while (i < n && !p->dead) {
		const char *nul;
		size_t end;
		if (p->at_start) {
			while (!p->ncarry && i < n && (buf[i] == '\n' || buf[i] == '\r'))
				i++;	/* heart-beats (not the "\n" after a split "SEND") */
			if (i == n)
				break;
			if (p->ncarry + (n - i) < 5) {
				memcpy(p->carry + p->ncarry, buf + i, n - i);
				p->ncarry += n - i;
				break;
			}
			{
				char head[5];
				size_t take = 5 - p->ncarry;
				memcpy(head, p->carry, p->ncarry);
				memcpy(head + p->ncarry, buf + i, take);
				if (memcmp(head, "SEND\n", 5) == 0) {
					forward(p, "MESSAGE\n", 8);
					p->forwarding = true;
					i += take;
				} else {
					/* Back to the frame's start for the control path. */
					p->forwarding = false;
					p->ctl_len = 0;
					if (p->ctl_cap < p->ncarry + 1) {
						p->ctl_cap = 256;
						p->ctl = xrealloc(p->ctl, p->ctl_cap);
					}
					memcpy(p->ctl, p->carry, p->ncarry);
					p->ctl_len = p->ncarry;
				}
				p->ncarry = 0;
				p->at_start = false;
			}
		}
		nul = memchr(buf + i, 0, n - i);
		end = nul ? (size_t)(nul - buf) + 1 : n;
		if (p->forwarding) {
			forward(p, buf + i, end - i);
		} else {
			if (p->ctl_len + (end - i) + 1 > p->ctl_cap) {
				p->ctl_cap = (p->ctl_len + (end - i) + 1) * 2;
				p->ctl = xrealloc(p->ctl, p->ctl_cap);
			}
			memcpy(p->ctl + p->ctl_len, buf + i, end - i);
			p->ctl_len += end - i;
		}
		i = end;
		if (nul) {
			if (p->forwarding) {
				frames++;
			} else {
				p->ctl[p->ctl_len] = 0;
				control_frame(p, p->ctl);
				p->ctl_len = 0;
			}
			p->at_start = true;
		}
	}
}

static void kill_peer(struct peer *p)
{
	if (p->dead)
		return;
	p->dead = true;
	epoll_ctl(ep, EPOLL_CTL_DEL, p->fd, NULL);
	close(p->fd);
	if (p->role == R_CONSUMER) {
		for (size_t i = 0; i < nconsumers; i++) {
			if (consumers[i] == p) {
				consumers[i] = consumers[--nconsumers];
				break;
			}
		}
	}
	/* Freed at exit: later events of this turn may still name it. */
}

static void on_read(struct peer *p, char *buf)
{
	ssize_t n = read(p->fd, buf, READ_CHUNK);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		kill_peer(p);
		return;
	}
	if (p->role == R_PRODUCER) {
		if (p->pair && p->pair->dead)
			p->pair = NULL;
		relay_bytes(p, buf, (size_t)n);
		if (!p->dead && flush_forwarded(p))
			set_reading(p, false);	/* resumed when the consumer drains */
		return;
	}
	/* Handshake, role discovery and consumers: collect whole frames. */
	for (ssize_t k = 0; k < n && !p->dead; k++) {
		if (p->role == R_UNKNOWN && p->ctl_len == 0 && buf[k] != '\n' && buf[k] != '\r' &&
		    (size_t)(n - k) >= 5 && memcmp(buf + k, "SEND\n", 5) == 0) {
			/* A producer: from here on, its bytes are relayed. */
			p->role = R_PRODUCER;
			p->at_start = true;
			if (fanout) {
				/* no pair: everything goes to every consumer */
			} else if (nconsumers) {
				p->pair = consumers[next_consumer++ % nconsumers];
			} else {
				p->next_waiting = waiting;
				waiting = p;
				set_reading(p, false);
			}
			relay_bytes(p, buf + k, (size_t)(n - k));
			if (!p->dead && flush_forwarded(p))
				set_reading(p, false);
			return;
		}
		if (p->ctl_len + 2 > p->ctl_cap) {
			p->ctl_cap = p->ctl_cap ? p->ctl_cap * 2 : 256;
			p->ctl = xrealloc(p->ctl, p->ctl_cap);
		}
		p->ctl[p->ctl_len++] = buf[k];
		if (buf[k] == 0) {
			control_frame(p, p->ctl);
			p->ctl_len = 0;
		}
	}
}

int main(int argc, char **argv)
{
	const char *addr = "127.0.0.1";
	int port = 0, lfd, one = 1, opt;
	struct sockaddr_in sa = { .sin_family = AF_INET };
	socklen_t salen = sizeof sa;
	struct epoll_event ev = { .events = EPOLLIN }, evs[MAX_EVENTS];
	char *buf = malloc(READ_CHUNK);
	struct peer **peers = NULL;
	size_t npeers = 0;

	while ((opt = getopt(argc, argv, "i:p:f")) != -1) {
		if (opt == 'i')
			addr = optarg;
		else if (opt == 'p')
			port = atoi(optarg);
		else if (opt == 'f')
			fanout = true;
		else {
			fprintf(stderr, "usage: relay [-i ADDR] [-p PORT] [-f]\n");
			return 2;
		}
	}
	if (inet_pton(AF_INET, addr, &sa.sin_addr) != 1) {
		fprintf(stderr, "relay: -i: not an IPv4 address: '%s'\n", addr);
		return 2;
	}
	sa.sin_port = htons((uint16_t)port);
	lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (bind(lfd, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(lfd, 1024) < 0) {
		fprintf(stderr, "relay: cannot listen on %s:%d: %s\n", addr, port, strerror(errno));
		return 1;
	}
	getsockname(lfd, (struct sockaddr *)&sa, &salen);
	printf("relay listening on %s:%u\n", addr, (unsigned)ntohs(sa.sin_port));
	fflush(stdout);
	signal(SIGPIPE, SIG_IGN);
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	ep = epoll_create1(0);
	ev.data.ptr = NULL;	/* the listener */
	epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);

	while (!stop) {
		int n = epoll_wait(ep, evs, MAX_EVENTS, 200);
		for (int i = 0; i < n; i++) {
			struct peer *p = evs[i].data.ptr;
			if (!p) {
				int fd;
				while ((fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
					struct peer *np = calloc(1, sizeof *np);
					struct epoll_event e = { .events = EPOLLIN, .data.ptr = np };
					setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
					np->fd = fd;
					np->reading = true;
					epoll_ctl(ep, EPOLL_CTL_ADD, fd, &e);
					peers = xrealloc(peers, (npeers + 1) * sizeof *peers);
					peers[npeers++] = np;	/* every peer, freed at exit */
				}
				continue;
			}
			if (p->dead)
				continue;
			if (evs[i].events & EPOLLOUT) {
				flush(p);
				if (!p->dead && p->role == R_CONSUMER && p->out_len - p->out_off <= OUT_PAUSE / 2) {
					/* Resume the producers paired with it: a scan, since
					 * producers are few and this happens rarely. */
					for (size_t k = 0; k < npeers; k++)
						if ((peers[k]->pair == p || (fanout && peers[k]->role == R_PRODUCER)) &&
						    !peers[k]->dead)
							set_reading(peers[k], true);
				}
			}
			if (!p->dead && (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
				on_read(p, buf);
		}
	}
	printf("relay: %llu frames relayed\n", (unsigned long long)frames);
	for (size_t k = 0; k < npeers; k++) {
		if (!peers[k]->dead)
			close(peers[k]->fd);
		free(peers[k]->ctl);
		free(peers[k]->out);
		free(peers[k]);
	}
	free(peers);
	free(consumers);
	free(buf);
	close(lfd);
	close(ep);
	return 0;
}
