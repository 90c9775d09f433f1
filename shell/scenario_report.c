/* scenario_report.c: the numbers at the end of a run, as one line and as
 * JSON. Both use the same field names, and so does report() in Lua, so
 * that a person, a script and a CI check all read `msgs_per_s`. */
#include <stdio.h>
#include <string.h>

#include "common/json.h"
#include "scenario_int.h"

void scn_report_tally(struct scn_source *const *sources, size_t nsources, struct scn_sink *const *sinks,
                      size_t nsinks, struct scn_report *rep)
{
	struct scn_tally t = { 0 };
	/* Each sink against the producers that feed it: a queue's consumers
	 * against its producers, a pubsub child's against the pubsub's. A
	 * producer nobody consumes from is not counted as lost. */
	for (size_t k = 0; k < nsinks; k++)
		for (size_t i = 0; i < nsources; i++)
			if (scn_sink_fed_by(sinks[k], sources[i]))
				scn_tally_add(&t, sinks[k], sources[i], SCN_ALL_SENT);
	rep->lost = t.lost;
	rep->duplicated = t.duplicated;
	rep->out_of_order = t.out_of_order;
}

static double ms(uint64_t ns)
{
	return (double)ns / 1e6;
}

void scn_report_latency(const struct scn_hist *h, struct scn_report *rep)
{
	rep->latency_count = h->count;
	rep->latency_p50_ms = ms(scn_hist_percentile(h, 50));
	rep->latency_p99_ms = ms(scn_hist_percentile(h, 99));
	rep->latency_p999_ms = ms(scn_hist_percentile(h, 99.9));
	rep->latency_max_ms = ms(h->count ? h->max : 0);
	rep->latency_mean_ms = scn_hist_mean(h) / 1e6;
}

void scn_report_compute(const struct scn_run *r, struct scn_report *rep)
{
	memset(rep, 0, sizeof *rep);
	for (size_t i = 0; i < r->npgroups; i++) {
		struct scn_pstats ps;
		scn_pgroup_stats(r->pgroups[i], &ps);
		rep->sent += ps.sent;
		rep->acked += ps.acked;
		rep->failed += ps.failed;
	}
	for (size_t i = 0; i < r->ncgroups; i++) {
		struct scn_cstats cs;
		scn_cgroup_stats(r->cgroups[i], &cs);
		rep->received += cs.received;
		rep->delivered += cs.delivered;
		rep->redelivered += cs.redelivered;
		rep->abandoned += cs.abandoned;
	}
	scn_report_tally(r->sources, r->nsources, r->sinks, r->nsinks, rep);
	scn_report_latency(r->latency, rep);
	if (r->first_post_ns && r->last_recv_ns > r->first_post_ns) {
		rep->duration_s = (double)(r->last_recv_ns - r->first_post_ns) / 1e9;
		rep->msgs_per_s = (double)rep->received / rep->duration_s;
	}
	if (r->first_post_ns && r->last_post_ns > r->first_post_ns)
		rep->sent_per_s = (double)rep->sent / ((double)(r->last_post_ns - r->first_post_ns) / 1e9);
	rep->elapsed_s = (double)(scn_now_ns() - r->t0_ns) / 1e9;
}

void scn_report_line(const struct scn_report *rep, struct sbuf *out)
{
	sbuf_printf(out,
	            "sent=%llu received=%llu lost=%llu duplicated=%llu redelivered=%llu msgs_per_s=%.0f "
	            "latency_p50_ms=%.3f latency_p99_ms=%.3f latency_p999_ms=%.3f latency_max_ms=%.3f "
	            "duration_s=%.3f elapsed_s=%.3f",
	            (unsigned long long)rep->sent, (unsigned long long)rep->received, (unsigned long long)rep->lost,
	            (unsigned long long)rep->duplicated, (unsigned long long)rep->redelivered, rep->msgs_per_s,
	            rep->latency_p50_ms, rep->latency_p99_ms, rep->latency_p999_ms, rep->latency_max_ms,
	            rep->duration_s, rep->elapsed_s);
}

static void report_fields(struct jw *w, const struct scn_report *rep)
{
	jw_kuint(w, "sent", rep->sent);
	jw_kuint(w, "received", rep->received);
	jw_kuint(w, "lost", rep->lost);
	jw_kuint(w, "duplicated", rep->duplicated);
	jw_kuint(w, "redelivered", rep->redelivered);
	jw_kuint(w, "delivered", rep->delivered);
	jw_kuint(w, "acked", rep->acked);
	jw_kuint(w, "failed", rep->failed);
	jw_kuint(w, "abandoned", rep->abandoned);
	jw_kuint(w, "out_of_order", rep->out_of_order);
	jw_kdouble(w, "msgs_per_s", rep->msgs_per_s);
	jw_kdouble(w, "sent_per_s", rep->sent_per_s);
	jw_kdouble(w, "duration_s", rep->duration_s);
	jw_kdouble(w, "elapsed_s", rep->elapsed_s);
	jw_kuint(w, "latency_count", rep->latency_count);
	jw_kdouble(w, "latency_p50_ms", rep->latency_p50_ms);
	jw_kdouble(w, "latency_p99_ms", rep->latency_p99_ms);
	jw_kdouble(w, "latency_p999_ms", rep->latency_p999_ms);
	jw_kdouble(w, "latency_max_ms", rep->latency_max_ms);
	jw_kdouble(w, "latency_mean_ms", rep->latency_mean_ms);
}

void scn_report_json(const struct scn_run *r, const struct scn_report *rep, const char *status, struct sbuf *out)
{
	struct jw w;
	jw_init(&w, out);
	jw_obj_begin(&w);
	jw_kstr(&w, "scenario", r->path);
	jw_kstr(&w, "status", status);
	if (r->failed)
		jw_kstr(&w, "failure", r->failure);
	else if (r->error[0])
		jw_kstr(&w, "failure", r->error);
	report_fields(&w, rep);
	jw_key(&w, "producers");
	jw_arr_begin(&w);
	for (size_t i = 0; i < r->npgroups; i++) {
		const struct scn_pgroup *g = r->pgroups[i];
		struct scn_pstats ps;
		scn_pgroup_stats(g, &ps);
		jw_obj_begin(&w);
		jw_kuint(&w, "group", scn_pgroup_index(g));
		jw_kstr(&w, "destination", scn_pgroup_dest(g));
		jw_kuint(&w, "n", scn_pgroup_n(g));
		jw_kuint(&w, "sent", ps.sent);
		jw_kuint(&w, "acked", ps.acked);
		jw_kuint(&w, "failed", ps.failed);
		jw_kuint(&w, "reconnects", ps.reconnects);
		jw_obj_end(&w);
	}
	jw_arr_end(&w);
	jw_key(&w, "consumers");
	jw_arr_begin(&w);
	for (size_t i = 0; i < r->ncgroups; i++) {
		const struct scn_cgroup *g = r->cgroups[i];
		struct scn_cstats cs;
		struct scn_report lat = { 0 };
		scn_cgroup_stats(g, &cs);
		scn_report_latency(scn_cgroup_latency(g), &lat);
		jw_obj_begin(&w);
		jw_kuint(&w, "group", scn_cgroup_index(g));
		jw_kstr(&w, "destination", scn_cgroup_dest(g));
		jw_kuint(&w, "n", scn_cgroup_n(g));
		jw_kuint(&w, "received", cs.received);
		jw_kuint(&w, "delivered", cs.delivered);
		jw_kuint(&w, "redelivered", cs.redelivered);
		jw_kuint(&w, "abandoned", cs.abandoned);
		jw_kuint(&w, "reconnects", cs.reconnects);
		jw_kdouble(&w, "latency_p50_ms", lat.latency_p50_ms);
		jw_kdouble(&w, "latency_p99_ms", lat.latency_p99_ms);
		jw_kdouble(&w, "latency_p999_ms", lat.latency_p999_ms);
		jw_kdouble(&w, "latency_max_ms", lat.latency_max_ms);
		jw_obj_end(&w);
	}
	jw_arr_end(&w);
	jw_obj_end(&w);
}
