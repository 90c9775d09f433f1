/* sockprobe.h: what the kernel knows of a TCP connection that the broker
 * is not reading, or that is not reading the broker: whether the peer has
 * closed it, how many bytes the peer has sent (read by us or not), how
 * many of ours it has acknowledged. A connection paused by backpressure
 * still notices its peer leave, and a consumer that stopped reading is
 * told apart from one that reads slowly. */
#ifndef MQ_SOCKPROBE_H
#define MQ_SOCKPROBE_H

#include <stdbool.h>
#include <stdint.h>

struct sock_probe {
	bool peer_closed;	/* FIN or reset received */
	uint64_t received;	/* bytes the peer has sent us, read or not */
	uint64_t acked;		/* bytes of ours the peer has acknowledged */
	uint64_t unread;	/* bytes the kernel holds that we have not read */
};

/* False when fd is not a TCP socket (a socket pair in tests, a filter). */
bool sock_probe(int fd, struct sock_probe *p);

#endif
