/* sockprobe.c: TCP_INFO read for sockprobe.h. */
#include "net/sockprobe.h"

#include <netinet/in.h>
#include <stddef.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include <linux/tcp.h>	/* the kernel's struct tcp_info has the byte counters */

bool sock_probe(int fd, struct sock_probe *p)
{
	struct tcp_info ti;
	socklen_t len = sizeof ti;
	memset(p, 0, sizeof *p);
	if (fd < 0)
		return false;
	memset(&ti, 0, sizeof ti);
	if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) < 0)
		return false;
	/* Values of tcpi_state: the kernel's TCP_ESTABLISHED .. TCP_CLOSING
	 * (include/net/tcp_states.h): 7 CLOSE, 8 CLOSE_WAIT. */
	p->peer_closed = ti.tcpi_state == 7 || ti.tcpi_state == 8;
	if (len >= offsetof(struct tcp_info, tcpi_bytes_received) + sizeof ti.tcpi_bytes_received) {
		p->received = ti.tcpi_bytes_received;
		p->acked = ti.tcpi_bytes_acked;
	}
	{
		int n = 0;
		if (ioctl(fd, FIONREAD, &n) == 0 && n > 0)
			p->unread = (uint64_t)n;
	}
	return true;
}
