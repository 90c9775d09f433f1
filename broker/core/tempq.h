/* tempq.h: temporary queues, private to the sink that made them.
 *
 * A client names its temporary queues /temp-queue/NAME (its local name);
 * the broker knows each as /temp-queue/c<sink id>.NAME, its broker-wide
 * name, which is what a reply-to header is rewritten to, so that a
 * responder anywhere can send there while the requester lives. Only the
 * owner may subscribe; the queues are deleted when the owner detaches. */
#ifndef MQ_TEMPQ_H
#define MQ_TEMPQ_H

#include <stdbool.h>
#include <stddef.h>

struct dest;
struct sink;

#define TEMPQ_PREFIX "/temp-queue/"

/* /temp-queue/NAME as a client writes it (not a broker-wide name). */
bool tempq_is_local(const char *name);
/* /temp-queue/c<id>.NAME */
bool tempq_is_global(const char *name);
/* A broker-wide name of one of k's own queues? */
bool tempq_is_own(const struct sink *k, const char *name);
/* k's queue for a local name, or for a broker-wide name of its own,
 * created as needed. NULL with err when it cannot be created. */
struct dest *tempq_get(struct sink *k, const char *name, char *err, size_t errlen);
/* Deletes every temporary queue k owns (k is going). */
void tempq_release_all(struct sink *k);

#endif
