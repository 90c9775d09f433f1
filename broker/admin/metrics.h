/* metrics.h: the broker's figures in Prometheus text format (GET /metrics). */
#ifndef MQ_METRICS_H
#define MQ_METRICS_H

#include "common/util.h"

struct broker;

void metrics_render(struct broker *b, struct sbuf *out);

#endif
