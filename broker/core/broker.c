/* broker.c: set-up and teardown of the whole broker, virtual hosts,
 * message ids, the data directory and the periodic tick. */
#include "core/broker.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/event.h>

#include "stomp/conn.h"
#include "admin/control.h"
#include "core/dest.h"
#include "core/events.h"
#include "http/http.h"
#include "common/json.h"
#include "net/listener.h"
#include "common/log.h"
#include "core/msg.h"
#include "rules/router.h"
#include "core/store.h"
#include "net/tls.h"
#include "common/util.h"

/* Message ids: boot number << 40 | counter. 2^40 ids per run, 2^24 runs. */
#define MSG_ID_BOOT_SHIFT 40

static int mkdir_p(const char *path, char *err, size_t errlen)
{
	char buf[4096];
	size_t len = strlen(path);
	if (len >= sizeof buf) {
		snprintf(err, errlen, "path too long: %s", path);
		return -1;
	}
	memcpy(buf, path, len + 1);
	for (char *p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = 0;
		if (mkdir(buf, 0755) < 0 && errno != EEXIST) {
			snprintf(err, errlen, "cannot create directory %s: %s", buf, strerror(errno));
			return -1;
		}
		*p = '/';
	}
	if (mkdir(buf, 0750) < 0 && errno != EEXIST) {
		snprintf(err, errlen, "cannot create data directory %s: %s", buf, strerror(errno));
		return -1;
	}
	return 0;
}

/* One broker per data directory: the second one to start is refused. */
static int lock_data_dir(struct broker *b, char *err, size_t errlen)
{
	char path[4096], pid[32];
	int fd, n;
	snprintf(path, sizeof path, "%s/mqbroker.lock", b->cfg.data_dir);
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0) {
		snprintf(err, errlen, "cannot open lock file %s: %s", path, strerror(errno));
		return -1;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		char other[32] = "";
		ssize_t r = pread(fd, other, sizeof other - 1, 0);
		if (r > 0) {
			other[r] = 0;
			other[strcspn(other, "\n")] = 0;
		}
		snprintf(err, errlen, "data directory %s is in use by another broker%s%s%s (lock file %s)",
		         b->cfg.data_dir, other[0] ? " (pid " : "", other, other[0] ? ")" : "", path);
		close(fd);
		return -1;
	}
	n = snprintf(pid, sizeof pid, "%d\n", (int)getpid());
	if (ftruncate(fd, 0) < 0 || pwrite(fd, pid, (size_t)n, 0) != n)
		log_warn_sys("cannot write pid to %s", path);
	b->lock_fd = fd;
	return 0;
}

/* The boot counter makes message ids unique across restarts. */
static int next_boot(struct broker *b, char *err, size_t errlen)
{
	char path[4096], tmp[4096], buf[32];
	uint64_t boot = 0;
	FILE *f;
	snprintf(path, sizeof path, "%s/boot", b->cfg.data_dir);
	snprintf(tmp, sizeof tmp, "%s/boot.tmp", b->cfg.data_dir);
	if ((f = fopen(path, "r"))) {
		if (fgets(buf, sizeof buf, f))
			boot = strtoull(buf, NULL, 10);
		fclose(f);
	}
	boot = (boot + 1) & ((1u << 24) - 1);
	if (boot == 0)
		boot = 1;
	if (!(f = fopen(tmp, "w"))) {
		snprintf(err, errlen, "cannot write %s: %s", tmp, strerror(errno));
		return -1;
	}
	fprintf(f, "%" PRIu64 "\n", boot);
	if (fflush(f) != 0 || fsync(fileno(f)) != 0) {
		snprintf(err, errlen, "cannot write %s: %s", tmp, strerror(errno));
		fclose(f);
		return -1;
	}
	fclose(f);
	if (rename(tmp, path) < 0) {
		snprintf(err, errlen, "cannot rename %s to %s: %s", tmp, path, strerror(errno));
		return -1;
	}
	b->next_msg_id = (boot << MSG_ID_BOOT_SHIFT) | 1;
	return 0;
}

uint64_t broker_next_msg_id(struct broker *b)
{
	return b->next_msg_id++;
}

uint64_t broker_now_ms(struct broker *b)
{
	struct timeval tv;
	if (event_base_gettimeofday_cached(b->base, &tv) < 0)
		return wall_ms();
	return (uint64_t)tv.tv_sec * 1000u + (uint64_t)tv.tv_usec / 1000u;
}

static struct vhost *vhost_new(struct broker *b, const char *name)
{
	struct vhost *vh = xcalloc(1, sizeof *vh);
	vh->name = xstrdup(name);
	vh->broker = b;
	strmap_put(&b->vhosts, vh->name, vh);
	return vh;
}

struct vhost *broker_vhost_find(struct broker *b, const char *name)
{
	return strmap_get(&b->vhosts, name);
}

struct vhost *broker_vhost_ensure(struct broker *b, const char *name)
{
	struct vhost *vh = strmap_get(&b->vhosts, name);
	return vh ? vh : vhost_new(b, name);
}

struct vhost *broker_vhost(struct broker *b, const char *host)
{
	struct vhost *vh;
	/* host:/ and any host no configured virtual host claims go to the
	 * default one, as RabbitMQ and ActiveMQ users expect. */
	if (host && *host && (vh = strmap_get(&b->vhosts, host)))
		return vh;
	return b->default_vhost;
}

void broker_event(struct broker *b, const char *name, const char *const *fields)
{
	events_publish(b, name, fields);
}

static void reap_cb(evutil_socket_t fd, short what, void *arg)
{
	struct broker *b = arg;
	struct conn *c;
	(void)fd;
	(void)what;
	while ((c = TAILQ_FIRST(&b->graveyard))) {
		TAILQ_REMOVE(&b->graveyard, c, link);
		conn_free(c);
	}
	if (b->shutting_down && TAILQ_EMPTY(&b->conns))
		event_base_loopexit(b->base, NULL);
}

static int by_vhost_and_name(const void *a, const void *b)
{
	const struct dest *x = *(const struct dest *const *)a, *y = *(const struct dest *const *)b;
	int c = strcmp(x->vhost->name, y->vhost->name);
	return c ? c : strcmp(x->name, y->name);
}

struct dest **broker_dests(struct broker *b, int type, size_t *n)
{
	struct dest **all = NULL;
	size_t cap = 0, vit = 0;
	void *vv;
	*n = 0;
	while (strmap_next(&b->vhosts, &vit, NULL, &vv)) {
		struct vhost *vh = vv;
		size_t it = 0;
		void *v;
		while (strmap_next(&vh->dests, &it, NULL, &v)) {
			struct dest *d = v;
			if (type >= 0 ? d->type != (enum dest_type)type : d->type == DEST_COMMAND)
				continue;
			if (*n == cap) {
				cap = cap ? cap * 2 : 64;
				all = xrealloc(all, cap * sizeof *all);
			}
			all[(*n)++] = d;
		}
	}
	if (*n)
		qsort(all, *n, sizeof *all, by_vhost_and_name);
	return all;
}

static void mem_check_cb(evutil_socket_t fd, short what, void *arg)
{
	struct broker *b = arg;
	struct conn *c;
	uint64_t live = msg_live_bytes();
	(void)fd;
	(void)what;
	if (live > b->mem_high / 10 * 9) {
		struct timeval again = { 0, 20000 };
		evtimer_add(b->mem_ev, &again);
		return;
	}
	b->mem_blocked = false;
	log_warn("message memory back to %" PRIu64 " bytes (high-watermark %" PRIu64 "): reading from producers again",
	         live, b->mem_high);
	broker_event(b, "memory-ok", NULL);
	TAILQ_FOREACH(c, &b->conns, link)
		conn_pause_reading(c, false);
}

bool broker_memory_blocked(struct broker *b)
{
	uint64_t live;
	if (b->mem_blocked)
		return true;
	live = msg_live_bytes();
	if (live <= b->mem_high)
		return false;
	b->mem_blocked = true;
	log_warn("message memory at %" PRIu64 " bytes, over the high-watermark %" PRIu64
	         ": producers are slowed while consumers drain", live, b->mem_high);
	broker_event(b, "memory-high", NULL);
	{
		struct timeval soon = { 0, 20000 };
		evtimer_add(b->mem_ev, &soon);
	}
	return true;
}

static uint64_t default_watermark(void)
{
	long pages = sysconf(_SC_PHYS_PAGES), size = sysconf(_SC_PAGESIZE);
	if (pages <= 0 || size <= 0)
		return 1ULL << 30;
	return (uint64_t)pages * (uint64_t)size / 10 * 4;	/* 40%, as RabbitMQ does */
}

static void sweep_queues(struct broker *b)
{
	uint64_t now = wall_ms();
	size_t n;
	/* A snapshot: expiry may dead-letter into a queue it creates. */
	struct dest **queues = broker_dests(b, DEST_QUEUE, &n);
	for (size_t i = 0; i < n; i++)
		if (queues[i]->count)
			queue_sweep(queues[i], now);
	free(queues);
}

static void update_rates(struct broker *b, double secs)
{
	size_t n;
	struct dest **all = broker_dests(b, -1, &n);
	for (size_t i = 0; i < n; i++) {
		struct dest *d = all[i];
		d->rate_in = (double)(d->messages_in - d->rate_in_prev) / secs;
		d->rate_out = (double)(d->messages_out - d->rate_out_prev) / secs;
		d->rate_in_prev = d->messages_in;
		d->rate_out_prev = d->messages_out;
	}
	free(all);
	b->rate_in = (double)(b->stats.messages_in - b->rate_in_prev) / secs;
	b->rate_out = (double)(b->stats.messages_out - b->rate_out_prev) / secs;
	b->rate_in_prev = b->stats.messages_in;
	b->rate_out_prev = b->stats.messages_out;
}

static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
	struct broker *b = arg;
	uint64_t now = mono_ms();
	double secs = b->last_tick_ms ? (double)(now - b->last_tick_ms) / 1000.0 : 1.0;
	(void)fd;
	(void)what;
	b->last_tick_ms = now;
	if (secs > 0)
		update_rates(b, secs);
	sweep_queues(b);
	if (b->cfg.idle_timeout_s && !b->cfg.persistent_server && !b->shutting_down &&
	    now - b->last_activity_ms >= (uint64_t)b->cfg.idle_timeout_s * 1000) {
		log_info("no network activity for %d seconds (-t): shutting down", b->cfg.idle_timeout_s);
		broker_shutdown(b, "idle timeout");
	}
}

static void signal_cb(evutil_socket_t sig, short what, void *arg)
{
	struct broker *b = arg;
	(void)what;
	switch (sig) {
	case SIGTERM:
	case SIGINT:
		log_info("%s received: shutting down", sig == SIGTERM ? "SIGTERM" : "SIGINT");
		broker_shutdown(b, sig == SIGTERM ? "SIGTERM" : "SIGINT");
		break;
	case SIGHUP: {
		char err[1024];
		log_info("SIGHUP received: reopening the log file and reloading the configuration");
		log_reopen();
		if (broker_reload(b, err, sizeof err) < 0)
			log_error("reload failed, the running configuration stays: %s", err);
		break;
	}
	}
}

static void stop_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct broker *b = arg;
	(void)fd;
	(void)what;
	/* Clients that did not read their ERROR in time are cut off. */
	event_base_loopexit(b->base, NULL);
}

void broker_shutdown(struct broker *b, const char *reason)
{
	struct conn *c, *next;
	struct timeval grace = { 3, 0 };
	if (b->shutting_down)
		return;
	b->shutting_down = true;
	snprintf(b->shutdown_reason, sizeof b->shutdown_reason, "%s", reason);
	listeners_close(b);
	control_close(b);
	for (c = TAILQ_FIRST(&b->conns); c; c = next) {
		next = TAILQ_NEXT(c, link);
		conn_close(c, NULL, "the broker is shutting down (%s)", reason);
	}
	event_base_once(b->base, -1, EV_TIMEOUT, stop_timer_cb, b, &grace);
	event_active(b->reap_ev, EV_TIMEOUT, 0);
}

/* Settings a running broker cannot change: the new configuration takes the
 * running values, and a change is reported once. */
static void note_pending(char *pending, size_t len, const char *name)
{
	size_t n = strlen(pending);
	snprintf(pending + n, len - n, "%s%s", n ? ", " : "", name);
}

static void keep_running(struct config *nw, struct config *old, char *pending, size_t plen)
{
	static const char *const restart_only[] = {
		"data_dir", "control_socket", "connection_file", "log_file", "tls_cert_key", "tls_port",
		"http_port", "http_max_connections", "http_path", "admin_port", "fsync", "fsync_interval_ms",
		"segment_size", "max_events",
	};
	for (size_t i = 0; i < ARRAY_LEN(restart_only); i++) {
		const struct config_option *o = config_option_find(restart_only[i]);
		char a[512], b[512], err[256];
		config_get(old, o, a, sizeof a);
		config_get(nw, o, b, sizeof b);
		if (strcmp(a, b) != 0) {
			log_warn("reload: %s changed from '%s' to '%s': takes effect at the next restart", o->name, a, b);
			note_pending(pending, plen, o->name);
			if (o->type == CONFIG_STRING && !*(char **)((char *)old + o->offset)) {
				free(*(char **)((char *)nw + o->offset));
				*(char **)((char *)nw + o->offset) = NULL;
			} else {
				config_set(nw, o->name, a, err, sizeof err);
			}
		}
	}
	{
		bool same = nw->nlisteners == old->nlisteners;
		for (size_t i = 0; same && i < nw->nlisteners; i++)
			same = nw->listeners[i].port == old->listeners[i].port && nw->listeners[i].tls == old->listeners[i].tls &&
			       !strcmp(nw->listeners[i].address ? nw->listeners[i].address : "*",
			               old->listeners[i].address ? old->listeners[i].address : "*");
		if (!same) {
			log_warn("reload: listeners changed: take effect at the next restart");
			note_pending(pending, plen, "listeners");
		}
		/* swap: the running listeners' description stays with the broker */
		struct listener_cfg *l = nw->listeners;
		size_t n = nw->nlisteners;
		nw->listeners = old->listeners;
		nw->nlisteners = old->nlisteners;
		nw->port_given = old->port_given;
		nw->http_any_port = old->http_any_port;
		old->listeners = l;
		old->nlisteners = n;
	}
	{
		char **ca = nw->ca_chains;
		size_t n = nw->nca_chains;
		nw->ca_chains = old->ca_chains;
		nw->nca_chains = old->nca_chains;
		old->ca_chains = ca;
		old->nca_chains = n;
	}
}

/* What broker_create_configured() would refuse in the running broker:
 * a configured destination that exists as another kind (a client made
 * /jobs/x a topic before the new file calls it a queue). Checked before
 * the new configuration replaces the old, so a refused reload changes
 * nothing. */
static int check_configured(struct broker *b, const struct config *nw, char *err, size_t errlen)
{
	for (size_t i = 0; i < nw->ndests; i++) {
		const struct dest_cfg *dc = &nw->dests[i];
		struct vhost *vh = dc->vhost ? broker_vhost_find(b, dc->vhost) : b->default_vhost;
		struct dest *d = vh ? dest_find(vh, dc->name) : NULL;
		if (d && d->type != dc->type) {
			snprintf(err, errlen, "destination %s exists as a %s; the file makes it a %s", dc->name,
			         dest_type_name(d->type), dest_type_name(dc->type));
			return -1;
		}
		for (size_t j = 0; vh && j < dc->nchildren; j++) {
			struct dest *child = dest_find(vh, dc->children[j]);
			if (child && child->type == DEST_PUBSUB) {
				snprintf(err, errlen, "pubsub %s: child %s exists as a pubsub", dc->name, dc->children[j]);
				return -1;
			}
		}
	}
	return 0;
}

int broker_reload(struct broker *b, char *err, size_t errlen)
{
	struct config nw, old;
	struct router *router = NULL;
	if (!b->load_config) {
		snprintf(err, errlen, "this broker cannot reload its configuration");
		return -1;
	}
	if (b->load_config(&nw, &router, err, errlen) < 0) {
		b->reload_failures++;
		return -1;
	}
	if (check_configured(b, &nw, err, errlen) < 0) {
		b->reload_failures++;
		config_fini(&nw);
		router_free(router);
		return -1;
	}
	b->restart_pending[0] = 0;
	keep_running(&nw, &b->cfg, b->restart_pending, sizeof b->restart_pending);
	old = b->cfg;
	b->cfg = nw;
	config_fini(&old);
	router_free(b->router);
	b->router = router;
	broker_apply_limits(b);
	log_set_level(b->cfg.log_level);
	if (b->cfg.memory_high_watermark)
		b->mem_high = b->cfg.memory_high_watermark;
	for (size_t i = 0; i < b->cfg.nvhosts; i++)
		broker_vhost_ensure(b, b->cfg.vhosts[i].name);
	b->reloads++;
	if (broker_create_configured(b, err, errlen) < 0) {
		log_error("reload: %s", err);
		return -1;
	}
	log_info("configuration reloaded%s%s", b->cfg.path ? " from " : "", b->cfg.path ? b->cfg.path : "");
	{
		const char *fields[] = { "file", b->cfg.path ? b->cfg.path : "", NULL };
		broker_event(b, "config-reloaded", fields);
	}
	return 0;
}

int broker_write_connection_file(struct broker *b, char *err, size_t errlen)
{
	struct sbuf out;
	struct jw w;
	char tmp[4096], sockbuf[4096];
	FILE *f;
	const char *path = b->cfg.connection_file;
	if (!path || !*path)
		return 0;
	sbuf_init(&out);
	jw_init(&w, &out);
	jw_obj_begin(&w);
	jw_kstr(&w, "host", listeners_host(b));
	jw_kint(&w, "port", listeners_port(b, false));
	jw_kint(&w, "tls_port", listeners_port(b, true));
	if (b->http) {
		char url[512];
		snprintf(url, sizeof url, "http://%s:%d/%s", listeners_host(b), b->http_port_bound,
		         b->cfg.http_path ? b->cfg.http_path : "");
		jw_kint(&w, "http_port", b->http_port_bound);
		jw_kstr(&w, "http_path", b->cfg.http_path ? b->cfg.http_path : "");
		jw_kstr(&w, "http_url", url);
	}
	jw_kstr(&w, "control_socket", config_control_socket(&b->cfg, sockbuf, sizeof sockbuf));
	jw_kstr(&w, "data_dir", b->cfg.data_dir);
	jw_kint(&w, "pid", (int64_t)getpid());
	jw_kstr(&w, "version", MQ_VERSION);
	jw_obj_end(&w);
	sbuf_addc(&out, '\n');
	/* Written aside and renamed, so that a job polling for the file
	 * never reads half of it. */
	snprintf(tmp, sizeof tmp, "%s.tmp%d", path, (int)getpid());
	f = fopen(tmp, "w");
	if (!f || fwrite(out.buf, 1, out.len, f) != out.len || fclose(f) != 0) {
		snprintf(err, errlen, "cannot write connection file %s: %s", tmp, strerror(errno));
		sbuf_fini(&out);
		return -1;
	}
	sbuf_fini(&out);
	if (rename(tmp, path) < 0) {
		snprintf(err, errlen, "cannot write connection file %s: %s", path, strerror(errno));
		unlink(tmp);
		return -1;
	}
	return 0;
}

struct broker *broker_new(struct config *cfg, struct router *router, char *err, size_t errlen)
{
	struct broker *b = xcalloc(1, sizeof *b);
	struct event_config *ec;
	int sigs[] = { SIGTERM, SIGINT, SIGHUP };

	b->cfg = *cfg;			/* taken over */
	memset(cfg, 0, sizeof *cfg);
	b->router = router;
	b->lock_fd = -1;
	TAILQ_INIT(&b->conns);
	TAILQ_INIT(&b->graveyard);
	frame_init(&b->frame);
	broker_apply_limits(b);
	b->started_ms = wall_ms();
	b->started_mono_ms = b->last_activity_ms = mono_ms();

	ec = event_config_new();
	/* -m: callbacks per loop iteration before looking for new events. */
	event_config_set_max_dispatch_interval(ec, NULL, b->cfg.max_events, 0);
	/* A consumer's write event is added when output waits and removed when
	 * it has gone, once per loop turn under load: the changelist folds the
	 * removal and the next addition together, saving an epoll_ctl per turn
	 * (measured: 167,000 of them in 4 s of a 1-to-1 queue, 1,000 with it).
	 * Its one caveat, descriptors cloned by dup(), does not apply here. */
	event_config_set_flag(ec, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
	b->base = event_base_new_with_config(ec);
	event_config_free(ec);
	if (!b->base) {
		snprintf(err, errlen, "cannot create the event loop");
		goto fail;
	}
	b->reap_ev = event_new(b->base, -1, 0, reap_cb, b);
	b->mem_ev = evtimer_new(b->base, mem_check_cb, b);
	b->mem_high = b->cfg.memory_high_watermark ? b->cfg.memory_high_watermark : default_watermark();
	b->tick_ev = event_new(b->base, -1, EV_PERSIST, tick_cb, b);
	{
		struct timeval one = { 1, 0 };
		event_add(b->tick_ev, &one);
	}
	for (size_t i = 0; i < ARRAY_LEN(sigs); i++) {
		b->signal_ev[i] = evsignal_new(b->base, sigs[i], signal_cb, b);
		event_add(b->signal_ev[i], NULL);
	}
	signal(SIGPIPE, SIG_IGN);

	if (mkdir_p(b->cfg.data_dir, err, errlen) < 0 || lock_data_dir(b, err, errlen) < 0 ||
	    next_boot(b, err, errlen) < 0)
		goto fail;

	b->default_vhost = vhost_new(b, b->cfg.default_vhost ? b->cfg.default_vhost : "/");
	events_init(b);
	for (size_t i = 0; i < b->cfg.nvhosts; i++)
		if (!strmap_get(&b->vhosts, b->cfg.vhosts[i].name))
			vhost_new(b, b->cfg.vhosts[i].name);
	/* The journal first, the configuration after: what the file says
	 * about a destination wins over what was recorded. */
	if (store_open(b, err, errlen) < 0 || broker_create_configured(b, err, errlen) < 0)
		goto fail;
	return b;
fail:
	broker_free(b);
	return NULL;
}

void broker_apply_limits(struct broker *b)
{
	b->limits.max_frame = b->cfg.max_frame;
	b->limits.max_headers = (unsigned)b->cfg.max_headers;
	b->limits.max_header_line = b->cfg.max_header_line;
}

int broker_create_configured(struct broker *b, char *err, size_t errlen)
{
	/* Queues and topics first, then pubsubs, so children exist to attach. */
	for (int pass = 0; pass < 2; pass++) {
		for (size_t i = 0; i < b->cfg.ndests; i++) {
			const struct dest_cfg *dc = &b->cfg.dests[i];
			struct vhost *vh = dc->vhost ? broker_vhost_find(b, dc->vhost) : b->default_vhost;
			struct dest *d;
			char why[256];
			if ((dc->type == DEST_PUBSUB) != (pass == 1))
				continue;
			if (!vh) {
				snprintf(err, errlen, "destination %s: unknown virtual host '%s'", dc->name, dc->vhost);
				return -1;
			}
			d = dest_create(vh, dc->name, dc->type, &dc->opts, why, sizeof why);
			if (!d) {
				snprintf(err, errlen, "destination %s: %s", dc->name, why);
				return -1;
			}
			for (size_t j = 0; j < dc->nchildren; j++) {
				struct dest *child = dest_get(vh, dc->children[j], why, sizeof why);
				if (!child || (pubsub_attach(d, child, why, sizeof why) < 0 &&
				               !strstr(why, "already a child"))) {
					snprintf(err, errlen, "pubsub %s: child %s: %s", dc->name, dc->children[j], why);
					return -1;
				}
			}
		}
	}
	return 0;
}

int broker_run(struct broker *b)
{
	return event_base_dispatch(b->base);
}

void broker_free(struct broker *b)
{
	struct conn *c;
	size_t it = 0;
	void *v;
	if (!b)
		return;
	/* Whatever is still connected goes away now. */
	while ((c = TAILQ_FIRST(&b->conns))) {
		conn_close_quiet(c, "broker stopped");
		if (c->state != CONN_CLOSED) {
			TAILQ_REMOVE(&b->conns, c, link);
			TAILQ_INSERT_TAIL(&b->graveyard, c, link);
			c->state = CONN_CLOSED;
		}
	}
	while ((c = TAILQ_FIRST(&b->graveyard))) {
		TAILQ_REMOVE(&b->graveyard, c, link);
		conn_free(c);
	}
	listeners_free(b);
	http_free(b);
	control_free(b);
	tls_ctx_free(b->tls);
	/* Closed before the destinations go: freeing them must not write
	 * removals of messages that are meant to survive the restart. */
	store_close(b);
	while (strmap_next(&b->vhosts, &it, NULL, &v)) {
		struct vhost *vh = v;
		dest_free_all(vh);
	}
	it = 0;
	while (strmap_next(&b->vhosts, &it, NULL, &v)) {
		struct vhost *vh = v;
		free(vh->name);
		free(vh);
	}
	strmap_fini(&b->vhosts);
	u64map_fini(&b->conns_by_id);
	if (b->reap_ev)
		event_free(b->reap_ev);
	if (b->mem_ev)
		event_free(b->mem_ev);
	if (b->tick_ev)
		event_free(b->tick_ev);
	for (size_t i = 0; i < ARRAY_LEN(b->signal_ev); i++)
		if (b->signal_ev[i])
			event_free(b->signal_ev[i]);
	if (b->base)
		event_base_free(b->base);
	if (b->lock_fd >= 0)
		close(b->lock_fd);
	frame_fini(&b->frame);
	config_fini(&b->cfg);
	router_free(b->router);
	free(b);
}
