/* readmore.c: see readmore.h. */
#include "net/readmore.h"

#include <errno.h>
#include <sys/uio.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>

/* libevent 2.1's EVBUFFER_MAX_READ: a read that filled it may have left more. */
#define LIBEVENT_READ_CAP 4096

size_t read_more(struct bufferevent *bev)
{
	struct evbuffer *in = bufferevent_get_input(bev);
	size_t have = evbuffer_get_length(in);
	struct evbuffer_iovec v[2];
	struct iovec iov[2];
	ssize_t got;
	size_t left;
	int n, used = 0;

		if (have < LIBEVENT_READ_CAP || have >= READ_INPUT_MAX)
		return 0;
	/* The bufferevent keeps its input's end frozen but for its own reads. */
	evbuffer_unfreeze(in, 0);
	n = evbuffer_reserve_space(in, READ_PIECE, v, 2);
	if (n <= 0) {
		evbuffer_freeze(in, 0);
		return 0;
	}
	for (int i = 0; i < n; i++) {
		iov[i].iov_base = v[i].iov_base;
		iov[i].iov_len = v[i].iov_len;
	}
	do
		got = readv(bufferevent_getfd(bev), iov, n);
	while (got < 0 && errno == EINTR);
	left = got > 0 ? (size_t)got : 0;
	/* Commit only the vectors the kernel wrote into, trimmed to what it wrote. */
	for (int i = 0; i < n && left > 0; i++, used++) {
		if (v[i].iov_len > left)
			v[i].iov_len = left;
		left -= v[i].iov_len;
	}
	evbuffer_commit_space(in, v, used);
	evbuffer_freeze(in, 0);
	return got > 0 ? (size_t)got : 0;
}
