/* scenario.c: scenario_run(), the runner behind `mqsh run FILE.lua`.
 *
 * One run owns an event loop, the brokers it started, and the producers
 * and consumers the script made. The script (scenario_lua.c) runs the loop
 * in slices (wait, wait_for, run); between slices only Lua runs. A tick on
 * the loop notices Ctrl-C and brokers that died on their own, and draws
 * the progress line. At the end: the report, a graceful stop of every
 * connection, SIGTERM to every broker the scenario owns (each must exit
 * with status 0: a sanitizer report or a crash fails the run), and the
 * exit status. */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <unistd.h>

#include <event2/event.h>

#include "scenario_int.h"

#define TICK_MS 100
#define PROGRESS_NS 1000000000u
#define STOP_GRACE_NS 2000000000u	/* graceful close of every connection at the end */

void scn_fail(struct scn_run *r, const char *fmt, ...)
{
	va_list ap;
	if (r->failed)
		return;
	r->failed = true;
	va_start(ap, fmt);
	vsnprintf(r->failure, sizeof r->failure, fmt, ap);
	va_end(ap);
}

uint32_t scn_register_source(struct scn_run *r, struct scn_source *src)
{
	r->sources = xrealloc(r->sources, (r->nsources + 1) * sizeof *r->sources);
	r->sources[r->nsources++] = src;
	src->id = (uint32_t)r->nsources;
	return src->id;
}

const struct scn_source *scn_source_get(const struct scn_run *r, uint32_t id)
{
	return id >= 1 && id <= r->nsources ? r->sources[id - 1] : NULL;
}

struct scn_sink *scn_sink_for(struct scn_run *r, const void *broker, const char *dest, bool fanout,
                              unsigned copies, unsigned group_index)
{
	char name[64];
	struct scn_sink *k;
	if (!fanout) {
		/* Groups reading one queue share its messages: check them together. */
		for (size_t i = 0; i < r->nsinks; i++) {
			k = r->sinks[i];
			if (!k->fanout && k->broker == broker && strcmp(k->dest, dest) == 0) {
				struct sbuf s;
				sbuf_init(&s);
				sbuf_printf(&s, "%s+%u", k->name, group_index);
				free(k->name);
				k->name = sbuf_take(&s);
				return k;
			}
		}
	}
	snprintf(name, sizeof name, "consumers %u", group_index);
	k = scn_sink_new(broker, dest, fanout, copies, name);
	r->sinks = xrealloc(r->sinks, (r->nsinks + 1) * sizeof *r->sinks);
	r->sinks[r->nsinks++] = k;
	return k;
}

void scn_progress_clear(struct scn_run *r)
{
	if (!r->progress_shown)
		return;
	fputs("\r\033[K", stderr);
	fflush(stderr);
	r->progress_shown = false;
}

static void progress(struct scn_run *r, uint64_t now)
{
	struct scn_report rep;
	double dt = (double)(now - r->progress_ns) / 1e9;
	uint64_t unconfirmed = 0;

	scn_report_compute(r, &rep);
	for (size_t i = 0; i < r->ncgroups; i++) {
		struct scn_cstats cs;
		scn_cgroup_stats(r->cgroups[i], &cs);
		unconfirmed += cs.unconfirmed;
	}
	fprintf(stderr, "\r\033[K%6.1f s  sent %llu (%.0f/s)  received %llu (%.0f/s)  unconfirmed %llu  p99 %.2f ms",
	        rep.elapsed_s, (unsigned long long)rep.sent, (double)(rep.sent - r->progress_sent) / dt,
	        (unsigned long long)rep.received, (double)(rep.received - r->progress_recv) / dt,
	        (unsigned long long)unconfirmed, rep.latency_p99_ms);
	fflush(stderr);
	r->progress_shown = true;
	r->progress_ns = now;
	r->progress_sent = rep.sent;
	r->progress_recv = rep.received;
}

static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
	struct scn_run *r = arg;
	uint64_t now = scn_now_ns();
	(void)fd;
	(void)what;

	if (r->opts->interrupted && *r->opts->interrupted) {
		r->aborted = r->interrupted = true;
		snprintf(r->fatal, sizeof r->fatal, "interrupted");
		event_base_loopbreak(r->base);
		return;
	}
	for (size_t i = 0; i < r->nbrokers; i++) {
		if (scn_broker_check(r->brokers[i], r->fatal, sizeof r->fatal) < 0) {
			r->aborted = true;
			event_base_loopbreak(r->base);
			return;
		}
	}
	if (r->opts->progress && now - r->progress_ns >= PROGRESS_NS)
		progress(r, now);
}

static void wake_cb(evutil_socket_t fd, short what, void *arg)
{
	struct scn_run *r = arg;
	(void)fd;
	(void)what;
	event_base_loopbreak(r->base);
}

/* The loop until deadline_ns, or until the tick breaks it. */
static void loop(struct scn_run *r, uint64_t deadline_ns)
{
	uint64_t now = scn_now_ns();
	if (deadline_ns <= now) {
		event_base_loop(r->base, EVLOOP_NONBLOCK);
	} else {
		uint64_t ns = deadline_ns - now;
		struct timeval tv = { (time_t)(ns / 1000000000u), (suseconds_t)(ns % 1000000000u / 1000u) };
		evtimer_add(r->wake, &tv);
		event_base_loop(r->base, EVLOOP_NO_EXIT_ON_EMPTY);
		evtimer_del(r->wake);
	}
}

int scn_loop_until(struct scn_run *r, uint64_t deadline_ns)
{
	if (r->opts->interrupted && *r->opts->interrupted && !r->aborted) {
		r->aborted = r->interrupted = true;
		snprintf(r->fatal, sizeof r->fatal, "interrupted");
	}
	if (r->aborted)
		return -1;
	loop(r, deadline_ns);
	return r->aborted ? -1 : 0;
}

static uint32_t random_id(void)
{
	uint32_t id = 0;
	if (getrandom(&id, sizeof id, 0) != sizeof id)
		id = (uint32_t)(scn_now_ns() ^ ((uint64_t)getpid() << 16));
	return id;
}

/* Stops every connection gracefully (bounded), so that attached brokers
 * see clean DISCONNECTs; after Ctrl-C too, so the loop runs regardless of
 * r->aborted. */
static void stop_load(struct scn_run *r)
{
	uint64_t deadline = scn_now_ns() + STOP_GRACE_NS;
	bool idle;

	for (size_t i = 0; i < r->npgroups; i++)
		scn_pgroup_stop(r->pgroups[i]);
	for (size_t i = 0; i < r->ncgroups; i++)
		scn_cgroup_stop(r->cgroups[i]);
	do {
		idle = true;
		for (size_t i = 0; i < r->npgroups && idle; i++)
			idle = scn_pgroup_idle(r->pgroups[i]);
		for (size_t i = 0; i < r->ncgroups && idle; i++)
			idle = scn_cgroup_idle(r->cgroups[i]);
		if (idle)
			break;
		loop(r, scn_now_ns() + 10000000u);
	} while (scn_now_ns() < deadline);
}

static const char *base_name(const char *path)
{
	const char *s = strrchr(path, '/');
	return s ? s + 1 : path;
}

int scenario_run(const char *path, const struct scenario_opts *o)
{
	static const struct scenario_opts no_opts;
	struct scn_run r;
	struct sigaction ign = { .sa_handler = SIG_IGN }, old_pipe;
	struct rlimit old_nofile, nofile;
	struct scn_report rep;
	struct timeval tick = { 0, TICK_MS * 1000 };
	struct sbuf out;
	const char *status;
	int rc;

	/* A file that is not there runs nothing: no report to give. */
	if (access(path, R_OK) != 0) {
		fprintf(stderr, "scenario error: cannot open %s: %s\n", path, strerror(errno));
		return 2;
	}
	memset(&r, 0, sizeof r);
	r.opts = o ? o : &no_opts;
	r.path = path;
	r.id = random_id();
	r.t0_ns = scn_now_ns();
	r.progress_ns = r.t0_ns;	/* the first progress line after a second */

	/* Not EVENT_BASE_FLAG_PRECISE_TIMER: its timerfd costs a system call
	 * per loop iteration, and pacing in millisecond ticks is accurate on
	 * average anyway (a tick posts what is due by then). */
	{
		/* As in the broker: fewer epoll_ctl calls under load. */
		struct event_config *ec = event_config_new();
		event_config_set_flag(ec, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
		r.base = event_base_new_with_config(ec);
		event_config_free(ec);
	}
	if (!r.base) {
		fprintf(stderr, "scenario error: cannot create an event loop\n");
		return 2;
	}
	r.latency = scn_hist_new();
	r.wake = evtimer_new(r.base, wake_cb, &r);
	r.tick = event_new(r.base, -1, EV_PERSIST, tick_cb, &r);
	event_add(r.tick, &tick);

	/* A write to a connection the broker closed must be an error on that
	 * connection, not the end of mqsh. */
	sigaction(SIGPIPE, &ign, &old_pipe);
	/* Connection storms need descriptors: as many as we are allowed. The
	 * brokers we start inherit the limit. */
	getrlimit(RLIMIT_NOFILE, &old_nofile);
	nofile = old_nofile;
	nofile.rlim_cur = nofile.rlim_max;
	setrlimit(RLIMIT_NOFILE, &nofile);

	rc = scn_lua_run(&r);

	scn_report_compute(&r, &rep);
	stop_load(&r);
	for (size_t i = 0; i < r.nbrokers; i++) {
		char err[2048];
		if (scn_broker_stop(r.brokers[i], err, sizeof err) < 0) {
			/* A broker that does not exit cleanly fails the run, even
			 * one whose checks all held. */
			if (rc == 0 || !r.failed)
				scn_fail(&r, "%s", err);
			if (rc == 0)
				rc = 1;
		}
	}
	scn_progress_clear(&r);

	status = rc == 0 ? "ok" : r.interrupted ? "interrupted" : rc == 1 ? "failed" : "error";
	sbuf_init(&out);
	sbuf_printf(&out, "scenario %s %s: ", base_name(path), status);
	scn_report_line(&rep, &out);
	sbuf_addc(&out, '\n');
	fputs(out.buf, stdout);
	if (r.opts->json) {
		sbuf_reset(&out);
		scn_report_json(&r, &rep, status, &out);
		sbuf_addc(&out, '\n');
		fputs(out.buf, stdout);
	}
	fflush(stdout);
	if (rc == 1)
		fprintf(stderr, "scenario failed: %s\n", r.failure);
	else if (rc == 2)
		fprintf(stderr, "scenario error: %s\n", r.error);
	fflush(stderr);
	sbuf_fini(&out);

	for (size_t i = 0; i < r.npgroups; i++)
		scn_pgroup_free(r.pgroups[i]);
	for (size_t i = 0; i < r.ncgroups; i++)
		scn_cgroup_free(r.cgroups[i]);
	for (size_t i = 0; i < r.nbrokers; i++)
		scn_broker_free(r.brokers[i]);
	for (size_t i = 0; i < r.nsinks; i++)
		scn_sink_free(r.sinks[i]);
	for (size_t i = 0; i < r.nlinks; i++)
		scn_link_free(r.links[i]);
	free(r.links);
	free(r.brokers);
	free(r.pgroups);
	free(r.cgroups);
	free(r.sinks);
	free(r.sources);
	scn_hist_free(r.latency);
	event_free(r.wake);
	event_free(r.tick);
	event_base_free(r.base);
	setrlimit(RLIMIT_NOFILE, &old_nofile);
	sigaction(SIGPIPE, &old_pipe, NULL);
	return rc;
}
