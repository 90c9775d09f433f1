/* fdtable.h: room for the descriptors the configured connections need,
 * made before the first thread starts. */
#ifndef MQ_FDTABLE_H
#define MQ_FDTABLE_H

/* Raises the soft RLIMIT_NOFILE towards the hard one when `connections`
 * plus the broker's own files would not fit, then grows the process's
 * descriptor table to that size at once. Says (NOTICE) when the limit
 * stays below what -n asks for. */
void fdtable_prepare(int connections);

#endif
