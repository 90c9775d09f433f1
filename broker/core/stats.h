/* stats.h: the broker's counters. One word per idea everywhere: these
 * names are the ones `stats`, /metrics, JSON replies and scenario reports
 * use. */
#ifndef MQ_STATS_H
#define MQ_STATS_H

#include <stdint.h>

struct broker_stats {
	uint64_t connections_total;	/* accepted since start */
	uint64_t connections_refused;	/* over -n, or authorize said no */
	uint64_t frames_in;
	uint64_t frames_out;
	uint64_t bytes_in;
	uint64_t bytes_out;
	uint64_t messages_in;		/* SENDs accepted */
	uint64_t messages_out;		/* MESSAGE frames delivered */
	uint64_t acks;
	uint64_t nacks;
	uint64_t redelivered;		/* deliveries returned to their queue */
	uint64_t dropped;		/* topic without subscriber, pubsub without child, route() false */
	uint64_t dropped_slow;		/* topic deliveries skipped for a consumer that does not read */
	uint64_t expired;
	uint64_t dead_lettered;
	uint64_t rejected;		/* SENDs refused: route() error, full queue, journal failure */
	uint64_t duplicates;		/* messages dropped as repeats of an mq-post-id (dedup.h) */
	uint64_t looped;		/* messages dropped for having passed through this broker
					 * before (their mq-via header names it) */
	uint64_t errors_sent;		/* ERROR frames */
	uint64_t lenient_acks;		/* ACK/NACK with an unknown transaction, performed anyway */
	uint64_t receipts;
	uint64_t heartbeat_timeouts;
};

#endif
