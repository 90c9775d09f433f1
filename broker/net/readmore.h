/* readmore.h: reading a plain socket in large pieces under a bufferevent.
 *
 * libevent 2.1's evbuffer_read() takes at most 4 KiB per call, whatever
 * bufferevent_set_max_single_read() says, so a producer of large messages
 * costs a loop turn, an ioctl, a readv and a read callback per 4 KiB (16
 * of each for one 64 KiB message). Called from the read callback, this
 * takes what else the kernel holds in one readv. */
#ifndef MQ_READMORE_H
#define MQ_READMORE_H

#include <stddef.h>

struct bufferevent;

/* Reads what the kernel holds, up to READ_PIECE bytes, into bev's input
 * buffer when the last read filled libevent's 4 KiB (the input holds at
 * least that much) and the input holds less than READ_INPUT_MAX. Returns
 * the bytes added. End of file and errors are left in the socket:
 * libevent's next read reports them through the event callback, after
 * the frames already read are handled. Only for a bufferevent on a plain
 * socket: a TLS or filtering bufferevent's socket carries bytes that are
 * not the input's. */
size_t read_more(struct bufferevent *bev);

/* A piece is one buffer chain of 64 KiB with libevent's chain header: a
 * freed chain leaves a hole that the next chain fills exactly and that a
 * message of 64 KiB or more never splits (pieces of 256 KiB left a tail
 * too small for a fourth 64 KiB message in every hole, 16 KiB a message). */
#define READ_PIECE (64 * 1024 - 256)
#define READ_INPUT_MAX (256 * 1024)

#endif
