/* metrics.c: the broker's counters and gauges rendered as Prometheus text. */
#include "admin/metrics.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <stdlib.h>
#include <unistd.h>

#include "bridge/bridge.h"
#include "core/auth.h"
#include "core/broker.h"
#include "core/dest.h"
#include "store/journal.h"
#include "core/msg.h"
#include "core/store.h"

static void family(struct sbuf *out, const char *name, const char *type, const char *help)
{
	sbuf_printf(out, "# HELP mqbroker_%s %s\n# TYPE mqbroker_%s %s\n", name, help, name, type);
}

static void scalar(struct sbuf *out, const char *name, const char *type, const char *help, uint64_t v)
{
	family(out, name, type, help);
	sbuf_printf(out, "mqbroker_%s %" PRIu64 "\n", name, v);
}

/* Label values escape backslash, double quote and line feed. */
static void label(struct sbuf *out, const char *s)
{
	for (; *s; s++) {
		if (*s == '\\' || *s == '"')
			sbuf_addc(out, '\\');
		if (*s == '\n') {
			sbuf_adds(out, "\\n");
			continue;
		}
		sbuf_addc(out, *s);
	}
}

typedef uint64_t (*dest_value)(const struct dest *d);
static uint64_t v_in(const struct dest *d) { return d->messages_in; }
static uint64_t v_out(const struct dest *d) { return d->messages_out; }
static uint64_t v_depth(const struct dest *d) { return d->type == DEST_QUEUE ? queue_depth(d) : 0; }
static uint64_t v_unacked(const struct dest *d) { return d->unacked; }
static uint64_t v_bytes(const struct dest *d) { return d->bytes; }
static uint64_t v_consumers(const struct dest *d) { return (uint64_t)d->nsubs; }
static uint64_t v_dropped(const struct dest *d) { return d->dropped; }
static uint64_t v_expired(const struct dest *d) { return d->expired; }
static uint64_t v_dead(const struct dest *d) { return d->dead_lettered; }

static void per_dest(struct broker *b, struct sbuf *out, const char *name, const char *type,
                     const char *help, dest_value fn, bool queues_only)
{
	size_t n;
	struct dest **all = broker_dests(b, queues_only ? DEST_QUEUE : -1, &n);
	family(out, name, type, help);
	for (size_t i = 0; i < n; i++) {
		const struct dest *d = all[i];
		sbuf_printf(out, "mqbroker_%s{vhost=\"", name);
		label(out, d->vhost->name);
		sbuf_adds(out, "\",destination=\"");
		label(out, d->name);
		sbuf_printf(out, "\",type=\"%s\"} %" PRIu64 "\n", dest_type_name(d->type), fn(d));
	}
	free(all);
}

void metrics_render(struct broker *b, struct sbuf *out)
{
	const struct broker_stats *s = &b->stats;
	FILE *f;
	unsigned long size = 0, rss = 0;

	scalar(out, "connections", "gauge", "Open client connections.", (uint64_t)b->nsinks);
	scalar(out, "connections_total", "counter", "Client connections accepted.", s->connections_total);
	scalar(out, "connections_refused_total", "counter", "Connections refused (limit or rules).",
	       s->connections_refused);
	{
		struct auth_stats as;
		auth_get_stats(b, &as);
		scalar(out, "users", "gauge", "Users, from the configuration file and the user store.", auth_user_count(b));
		scalar(out, "logins_failed_total", "counter", "Logins refused: wrong password, unknown login, ...",
		       as.logins_failed);
		scalar(out, "logins_delayed_total", "counter", "Login answers held back for a peer's failures.",
		       as.logins_delayed);
		scalar(out, "logins_busy_total", "counter", "Logins refused while too many passwords waited to be checked.",
		       as.logins_busy);
		scalar(out, "login_cache_hits_total", "counter", "Logins answered from the verified-login cache.",
		       as.login_cache_hits);
		scalar(out, "password_checks_total", "counter", "Password hashes computed to check a login.",
		       as.password_checks);
		scalar(out, "slowed_peers", "gauge", "Peers whose recent failed logins slow their answers.", as.slowed_peers);
	}
	scalar(out, "messages_in_total", "counter", "Messages accepted from producers.", s->messages_in);
	scalar(out, "messages_out_total", "counter", "Messages delivered to consumers.", s->messages_out);
	scalar(out, "bytes_in_total", "counter", "Bytes read from clients.", s->bytes_in);
	scalar(out, "bytes_out_total", "counter", "Bytes written to clients.", s->bytes_out);
	scalar(out, "acks_total", "counter", "Deliveries acknowledged.", s->acks);
	scalar(out, "nacks_total", "counter", "Deliveries rejected by NACK.", s->nacks);
	scalar(out, "redelivered_total", "counter", "Deliveries returned to their queue.", s->redelivered);
	scalar(out, "dropped_total", "counter", "Messages nobody could take.", s->dropped);
	scalar(out, "dropped_slow_total", "counter", "Topic deliveries skipped for slow consumers.", s->dropped_slow);
	scalar(out, "expired_total", "counter", "Messages expired before delivery.", s->expired);
	scalar(out, "dead_lettered_total", "counter", "Messages moved to a dead-letter queue.", s->dead_lettered);
	scalar(out, "rejected_total", "counter", "SENDs refused.", s->rejected);
	scalar(out, "duplicates_total", "counter", "Messages dropped as repeats of an mq-post-id.", s->duplicates);
	scalar(out, "looped_total", "counter", "Bridged messages dropped for having been here before.", s->looped);
	scalar(out, "errors_sent_total", "counter", "ERROR frames sent.", s->errors_sent);
	scalar(out, "heartbeat_timeouts_total", "counter", "Connections dropped for silence.", s->heartbeat_timeouts);
	scalar(out, "message_bytes", "gauge", "Memory held by messages.", msg_live_bytes());
	scalar(out, "messages_held", "gauge", "Messages alive in memory.", msg_live_count());
	if ((f = fopen("/proc/self/statm", "r"))) {
		if (fscanf(f, "%lu %lu", &size, &rss) != 2)
			rss = 0;
		fclose(f);
	}
	scalar(out, "resident_memory_bytes", "gauge", "Resident set size.", (uint64_t)rss * (uint64_t)sysconf(_SC_PAGESIZE));
	scalar(out, "uptime_seconds", "gauge", "Seconds since start.", (mono_ms() - b->started_mono_ms) / 1000);
	{
		struct journal_stats js;
		if (store_stats(b, &js)) {
			scalar(out, "journal_fsyncs_total", "counter", "Journal fsyncs (group commits).", js.fsyncs);
			scalar(out, "journal_appends_total", "counter", "Journal records appended.", js.appends);
			scalar(out, "journal_bytes_written_total", "counter", "Bytes written to the journal.", js.bytes_written);
			scalar(out, "journal_disk_bytes", "gauge", "Size of the journal's segment files.", js.disk_bytes);
			scalar(out, "journal_live_messages", "gauge", "Messages the journal holds for some queue.", js.live_messages);
			scalar(out, "journal_segments", "gauge", "Journal segment files.", js.segments);
			/* 1 while writes fail, labelled with the cause (ENOSPC, EIO...) */
			sbuf_adds(out, "# HELP mqbroker_journal_failing 1 while journal writes fail; error names the cause.\n"
			               "# TYPE mqbroker_journal_failing gauge\n");
			sbuf_printf(out, "mqbroker_journal_failing{error=\"%s\"} %d\n",
			            js.failing_errno ? (strerrorname_np(js.failing_errno) ? strerrorname_np(js.failing_errno) : "?")
			                             : "", js.failing_errno != 0);
		}
	}

	per_dest(b, out, "destination_messages_in_total", "counter", "Messages sent to the destination.", v_in, false);
	per_dest(b, out, "destination_messages_out_total", "counter", "Messages delivered from the destination.", v_out, false);
	per_dest(b, out, "destination_consumers", "gauge", "Subscribers.", v_consumers, false);
	per_dest(b, out, "destination_dropped_total", "counter", "Messages dropped.", v_dropped, false);
	per_dest(b, out, "queue_depth", "gauge", "Messages held by the queue.", v_depth, true);
	per_dest(b, out, "queue_unacked", "gauge", "Deliveries not yet acknowledged.", v_unacked, true);
	per_dest(b, out, "queue_bytes", "gauge", "Body bytes held by the queue.", v_bytes, true);
	per_dest(b, out, "queue_expired_total", "counter", "Messages expired in the queue.", v_expired, true);
	per_dest(b, out, "queue_dead_lettered_total", "counter", "Messages dead-lettered from the queue.", v_dead, true);
	bridges_metrics(b, out);
}
