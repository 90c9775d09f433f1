/* server.c: the process around the core: the event loop, the data
 * directory (lock, boot counter), signals, the once-a-second tick, the
 * graceful shutdown and the connection file. main.c parses the command
 * line and calls these in order. */
#include "server/server.h"

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

#include "admin/control.h"
#include "bridge/bridge.h"
#include "common/json.h"
#include "common/log.h"
#include "common/util.h"
#include "core/broker.h"
#include "http/http.h"
#include "net/listener.h"
#include "net/lobby.h"
#include "net/tls.h"
#include "net/ws.h"
#include "rules/router.h"
#include "server/fdtable.h"
#include "stomp/conn.h"

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

/* The broker's stable name (docs/bridges.md): the configuration's
 * broker_id, else the one generated at the first start and kept in the
 * data directory, so that bridged messages name the same broker in their
 * mq-via header across restarts. */
static bool broker_id_ok(const char *id)
{
	size_t n = strlen(id);
	if (n == 0 || n > 64)
		return false;
	for (const char *p = id; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
		      *p == '-' || *p == '_' || *p == '.'))
			return false;
	return true;
}

static int load_broker_id(struct broker *b, char *err, size_t errlen)
{
	char path[4096], tmp[4096], buf[80] = "";
	FILE *f;
	if (b->cfg.broker_id) {
		if (!broker_id_ok(b->cfg.broker_id)) {
			snprintf(err, errlen, "broker_id: expected 1 to 64 letters, digits, '-', '_' or '.', got '%s'",
			         b->cfg.broker_id);
			return -1;
		}
		snprintf(b->id, sizeof b->id, "%.64s", b->cfg.broker_id);
		return 0;
	}
	snprintf(path, sizeof path, "%s/broker-id", b->cfg.data_dir);
	if ((f = fopen(path, "r"))) {
		if (fgets(buf, sizeof buf, f))
			buf[strcspn(buf, "\n")] = 0;
		fclose(f);
		if (broker_id_ok(buf)) {
			snprintf(b->id, sizeof b->id, "%.64s", buf);
			return 0;
		}
		log_warn("%s holds no usable broker id: making a new one", path);
	}
	{
		unsigned char rnd[8];
		FILE *u = fopen("/dev/urandom", "r");
		if (!u || fread(rnd, 1, sizeof rnd, u) != sizeof rnd) {
			snprintf(err, errlen, "cannot read /dev/urandom for a broker id: %s", strerror(errno));
			if (u)
				fclose(u);
			return -1;
		}
		fclose(u);
		snprintf(b->id, sizeof b->id, "mq-");
		for (size_t i = 0; i < sizeof rnd; i++)
			snprintf(b->id + 3 + 2 * i, sizeof b->id - 3 - 2 * i, "%02x", rnd[i]);
	}
	snprintf(tmp, sizeof tmp, "%s/broker-id.tmp", b->cfg.data_dir);
	if (!(f = fopen(tmp, "w")) || fprintf(f, "%s\n", b->id) < 0 || fflush(f) != 0 || fsync(fileno(f)) != 0 ||
	    fclose(f) != 0 || rename(tmp, path) < 0) {
		snprintf(err, errlen, "cannot write %s: %s", path, strerror(errno));
		return -1;
	}
	log_info("broker id %s (kept in %s)", b->id, path);
	return 0;
}

static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
	struct broker *b = arg;
	uint64_t now = mono_ms();
	double secs = b->last_tick_ms ? (double)(now - b->last_tick_ms) / 1000.0 : 1.0;
	(void)fd;
	(void)what;
	b->last_tick_ms = now;
	broker_tick(b, secs);
	conns_tick(b);
	bridges_tick(b);
	if (lobby_starved(b)) {
		conns_admit_handshakes(b);
		ws_admit_handshakes();
	}
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

/* What broker_shutdown() asks for: stop accepting, tell every sink, let
 * the output drain (at most a grace period), then leave the loop. */
static void shutdown_process(struct broker *b, const char *reason)
{
	struct sink *k, *next;
	struct timeval grace = { 3, 0 };
	char why[200];
	if (b->shutting_down)
		return;
	b->shutting_down = true;
	snprintf(b->shutdown_reason, sizeof b->shutdown_reason, "%s", reason);
	listeners_close(b);
	control_close(b);
	snprintf(why, sizeof why, "the broker is shutting down (%s)", reason);
	for (k = TAILQ_FIRST(&b->sinks); k; k = next) {
		next = TAILQ_NEXT(k, link);
		k->ops->close(k, why);
	}
	event_base_once(b->base, -1, EV_TIMEOUT, stop_timer_cb, b, &grace);
	conns_check_done(b);
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
	jw_kint(&w, "ws_port", b->cfg.ws_port);		/* WebSocket ports are bound exactly */
	jw_kint(&w, "wss_port", b->cfg.wss_port);
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
	fdtable_prepare(b->cfg.max_connections);
	b->router = router;
	b->lock_fd = -1;
	b->shutdown_hook = shutdown_process;
	b->started_ms = wall_ms();
	b->started_mono_ms = b->last_activity_ms = mono_ms();

	ec = event_config_new();
	/* -m: callbacks per loop iteration before looking for new events.
	 * Connected clients' events, at a higher priority than handshake
	 * work (net/lobby.h), then come before the rest of a burst of it. */
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
	if (lobby_init(b) < 0) {
		snprintf(err, errlen, "cannot set up the event loop's priorities");
		goto fail;
	}
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
	    next_boot(b, err, errlen) < 0 || load_broker_id(b, err, errlen) < 0)
		goto fail;

	conns_init(b);
	if (broker_core_init(b, err, errlen) < 0 || bridges_init(b, err, errlen) < 0)
		goto fail;
	return b;
fail:
	broker_free(b);
	return NULL;
}

int broker_run(struct broker *b)
{
	return event_base_dispatch(b->base);
}

void broker_free(struct broker *b)
{
	if (!b)
		return;
	/* Whatever is still connected goes away now: bridges first, so that
	 * what they hold unconfirmed goes back to its queues. */
	bridges_free(b);
	conns_free(b);
	listeners_free(b);
	http_free(b);
	control_free(b);
	tls_ctx_free(b->tls);
	broker_core_fini(b);
	if (b->tick_ev)
		event_free(b->tick_ev);
	lobby_fini(b);
	for (size_t i = 0; i < ARRAY_LEN(b->signal_ev); i++)
		if (b->signal_ev[i])
			event_free(b->signal_ev[i]);
	if (b->base)
		event_base_free(b->base);
	if (b->lock_fd >= 0)
		close(b->lock_fd);
	config_fini(&b->cfg);
	router_free(b->router);
	free(b);
}
