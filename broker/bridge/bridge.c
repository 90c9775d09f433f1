/* bridge.c: the bridges of a broker: making and ending them, the remote
 * session and its events, states, the journal records, and what the
 * admin faces show. See bridge.h; bridge_out.c and bridge_in.c move the
 * messages. */
#include "bridge/bridge_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "common/cmd_info.h"
#include "common/json.h"
#include "common/log.h"
#include "core/broker.h"
#include "core/dedup.h"
#include "core/dest.h"
#include "core/events.h"
#include "core/sub.h"

#define META_PREFIX "b:"

struct created {
	struct created *next;
	char *vhost, *name;		/* owned */
};

struct bridges {
	TAILQ_HEAD(, bridge) all;
	size_t n;
	size_t npattern;		/* outbound bridges with a pattern: they hear of new destinations */
	struct created *created;	/* destinations created since the last turn, newest first */
	struct event *created_ev;
	uint64_t rng;
};

static const char *const state_names[] = { "connecting", "running", "paused", "blocked", "failing" };

const char *bridge_state_name(enum bridge_state s)
{
	return (unsigned)s < ARRAY_LEN(state_names) ? state_names[s] : "?";
}

static struct bridges *reg(const struct broker *b)
{
	return b->bridges;
}

/* ---- states ---- */

static enum bridge_state compute_state(const struct bridge *br)
{
	if (br->paused)
		return BRIDGE_PAUSED;
	if (!br->connected)
		return br->failures || br->reconnect_failing ? BRIDGE_FAILING : BRIDGE_CONNECTING;
	if (br->backoff || br->in_failed)
		return BRIDGE_FAILING;
	if (br->out_blocked || br->throttled || !TAILQ_EMPTY(&br->held))
		return BRIDGE_BLOCKED;
	return BRIDGE_RUNNING;
}

static void emit(struct bridge *br, const char *event)
{
	const char *fields[] = { "name", br->spec.name, "direction", bridge_direction_name(br->spec.direction),
	                         "state", bridge_state_name(br->state), "error", br->last_error, NULL };
	broker_event(br->b, event, fields);
}

/* Records the error (when given) and announces a change of state. */
void bridge_set_state(struct bridge *br, enum bridge_state st, const char *error)
{
	(void)st;
	if (error && *error)
		snprintf(br->last_error, sizeof br->last_error, "%s", error);
	st = compute_state(br);
	if (st == br->state)
		return;
	log_info("bridge %s: %s -> %s%s%s", br->spec.name, bridge_state_name(br->state), bridge_state_name(st),
	         st == BRIDGE_FAILING || st == BRIDGE_BLOCKED ? ": " : "",
	         st == BRIDGE_FAILING || st == BRIDGE_BLOCKED ? br->last_error : "");
	br->state = st;
	if (st == BRIDGE_RUNNING)
		br->last_move_ms = mono_ms();	/* the stall clock starts now */
	emit(br, "bridge-state");
}

void bridge_moved(struct bridge *br)
{
	br->last_move_ms = mono_ms();
	if (br->stalled) {
		br->stalled = false;
		log_info("bridge %s: moving again", br->spec.name);
		emit(br, "bridge-moving");
	}
}

uint64_t bridge_backoff_ms(struct bridge *br)
{
	struct bridges *r = reg(br->b);
	uint64_t d = br->spec.reconnect_min_ms;
	for (unsigned i = 0; i < br->failures && d < br->spec.reconnect_max_ms; i++)
		d *= 2;
	if (d > br->spec.reconnect_max_ms)
		d = br->spec.reconnect_max_ms;
	/* Half to all of it, so that the bridges of a restarted remote do
	 * not all come back at once. */
	r->rng ^= r->rng << 13;
	r->rng ^= r->rng >> 7;
	r->rng ^= r->rng << 17;
	return d / 2 + (d > 1 ? r->rng % (d - d / 2) : 0);
}

void bridge_arm_retry(struct bridge *br, uint64_t ms)
{
	struct timeval tv = { (time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000 };
	evtimer_add(br->retry_ev, &tv);
}

void bridge_update_room(struct bridge *br)
{
	bool was = br->sink.full;
	if (br->spec.direction != BRIDGE_OUT)
		return;
	br->sink.full = br->stopping || br->draining || !br->connected || br->paused || br->backoff ||
	                br->out_blocked || br->pending >= br->spec.window || !br->sink.attached || !br->s ||
	                mq_session_state(br->s) != MQ_SESSION_CONNECTED;
	if (was && !br->sink.full) {
		size_t it = 0;
		void *v;
		/* queue_dispatch never frees subscriptions: iterating is safe. */
		while (!br->sink.full && strmap_next(&br->sink.subs, &it, NULL, &v)) {
			struct sub *s = v;
			if (s->dest->type == DEST_QUEUE)
				queue_dispatch(s->dest);
		}
	}
}

/* ---- the remote session ---- */

static void on_event(struct mq_session *s, const struct mq_event *ev, void *arg)
{
	struct bridge *br = arg;
	(void)s;
	if (br->stopping)
		return;
	switch (ev->type) {
	case MQ_EVENT_CONNECTED:
	case MQ_EVENT_RECONNECTED: {
		const char *rid = mq_session_connected_header(br->s, "broker-id");
		br->connected = true;
		br->failures = 0;
		br->reconnect_failing = false;
		br->connects++;
		snprintf(br->remote_id, sizeof br->remote_id, "%s", rid ? rid : "");
		log_info("bridge %s: %s%s%s", br->spec.name, ev->text,
		         *br->remote_id ? ", broker-id " : "", br->remote_id);
		if (*br->remote_id && strcmp(br->remote_id, br->b->id) == 0)
			log_warn("bridge %s: the remote broker %s is this broker itself", br->spec.name,
			         mq_session_address(br->s));
		bridge_set_state(br, BRIDGE_RUNNING, NULL);
		bridge_moved(br);
		if (br->spec.direction == BRIDGE_OUT)
			bridge_out_connected(br);
		break;
	}
	case MQ_EVENT_CONNECTION_LOST: {
		struct mq_stats st;
		mq_session_stats(br->s, &st);
		br->attempts_at_loss = st.attempts;
		br->connected = false;
		br->out_blocked = false;
		log_warn("bridge %s: %s; reconnecting", br->spec.name, ev->text);
		snprintf(br->last_error, sizeof br->last_error, "%s", ev->text);
		if (br->spec.direction == BRIDGE_IN)
			bridge_in_connection_lost(br);
		bridge_update_room(br);
		bridge_set_state(br, BRIDGE_CONNECTING, NULL);
		break;
	}
	case MQ_EVENT_CONNECT_FAILED:
	case MQ_EVENT_DISCONNECTED: {
		uint64_t ms;
		bool was_up = br->connected;
		br->connected = false;
		br->out_blocked = false;
		br->failures++;
		if (br->spec.direction == BRIDGE_IN && was_up)
			bridge_in_connection_lost(br);
		bridge_update_room(br);
		ms = bridge_backoff_ms(br);
		log_warn("bridge %s: %s; trying again in %" PRIu64 " ms", br->spec.name, ev->text, ms);
		bridge_set_state(br, BRIDGE_FAILING, ev->text);
		bridge_arm_retry(br, ms);
		break;
	}
	case MQ_EVENT_ERROR_FRAME:
		snprintf(br->last_error, sizeof br->last_error, "the remote broker sent ERROR: %s", ev->text);
		log_warn("bridge %s: %s", br->spec.name, br->last_error);
		break;
	case MQ_EVENT_DRAINED:
		br->out_blocked = false;
		bridge_update_room(br);
		bridge_set_state(br, br->state, NULL);
		break;
	case MQ_EVENT_QUEUE_REOPEN_FAILED:
		br->in_failed = true;
		snprintf(br->last_error, sizeof br->last_error, "the remote broker refused the subscription to %s: %s",
		         br->spec.from, ev->text);
		bridge_set_state(br, BRIDGE_FAILING, NULL);
		bridge_arm_retry(br, bridge_backoff_ms(br));
		break;
	default:
		break;
	}
}

static void start_session(struct bridge *br)
{
	if (mq_session_state(br->s) != MQ_SESSION_IDLE)
		return;
	if (mq_session_start(br->s) < 0) {
		br->failures++;
		bridge_set_state(br, BRIDGE_FAILING, mq_session_error(br->s));
		log_error("bridge %s: %s", br->spec.name, mq_session_error(br->s));
		bridge_arm_retry(br, bridge_backoff_ms(br));
	}
}

static void retry_cb(evutil_socket_t fd, short what, void *arg)
{
	struct bridge *br = arg;
	(void)fd;
	(void)what;
	if (br->stopping)
		return;
	if (br->backoff) {
		br->backoff = false;
		bridge_update_room(br);
	}
	if (br->spec.direction == BRIDGE_IN)
		bridge_in_retry(br);
	start_session(br);
	bridge_set_state(br, br->state, NULL);
}

static void settle_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	bridge_out_settle(arg);
}

static void ack_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	bridge_out_ack_confirmed(arg);
}

static struct mq_session *new_session(struct bridge *br)
{
	const struct bridge_spec *sp = &br->spec;
	struct mq_session_opts o;
	memset(&o, 0, sizeof o);
	o.hosts = (const char *const *)sp->hosts;
	o.nhosts = sp->nhosts;
	o.login = sp->login;
	o.passcode = sp->passcode;
	/* RabbitMQ reads host as its virtual host; mqbroker maps any it does
	 * not know to its default one. */
	o.vhost = sp->remote_vhost ? sp->remote_vhost : "/";
	o.heartbeat_send_ms = (unsigned)sp->heartbeat_ms;
	o.heartbeat_recv_ms = (unsigned)sp->heartbeat_ms;
	o.connect_timeout_ms = (unsigned)sp->connect_timeout_ms;
	o.reconnect = true;
	o.reconnect_min_ms = (unsigned)sp->reconnect_min_ms;
	o.reconnect_max_ms = (unsigned)sp->reconnect_max_ms;
	/* Outbound posts are never kept by the library: the local queue
	 * holds every unconfirmed message and gives it again. */
	o.repost = MQ_REPOST_FAIL;
	o.tls = sp->tls;
	o.tls_cert_key = sp->tls_cert_key;
	o.tls_ca_chain = sp->tls_ca_chain;
	o.tls_server_name = sp->tls_server_name;
	o.out_high_water = 4u << 20;
	o.out_low_water = 1u << 20;
	o.on_event = on_event;
	o.arg = br;
	return mq_session_new(br->b->base, &o);
}

/* ---- making and ending ---- */

static int make_bridge(struct broker *b, const struct bridge_spec *spec, bool paused, struct bridge **out,
                       char *err, size_t errlen)
{
	struct bridges *r = reg(b);
	struct vhost *vh = spec->vhost ? broker_vhost_find(b, spec->vhost) : b->default_vhost;
	struct bridge *br;
	char login[128];
	if (!vh) {
		snprintf(err, errlen, "bridge %s: unknown virtual host '%s'", spec->name, spec->vhost);
		return -1;
	}
	br = xcalloc(1, sizeof *br);
	br->b = b;
	bridge_spec_copy(&br->spec, spec);
	br->vh = vh;
	br->paused = paused;
	br->created_ms = wall_ms();
	br->last_move_ms = mono_ms();
	br->state = BRIDGE_CONNECTING;
	TAILQ_INIT(&br->inflight);
	TAILQ_INIT(&br->givebacks);
	TAILQ_INIT(&br->confirmed);
	TAILQ_INIT(&br->held);
	TAILQ_INIT(&br->durable);
	sbuf_init(&br->scratch);
	br->retry_ev = evtimer_new(b->base, retry_cb, br);
	br->settle_ev = event_new(b->base, -1, 0, settle_cb, br);
	br->ack_ev = evtimer_new(b->base, ack_cb, br);
	if (spec->direction == BRIDGE_IN && spec->dedup_ms)
		br->dedup = dedup_new(spec->dedup_ms);

	sink_attach(&br->sink, b, &bridge_sink_ops, "bridge");
	snprintf(login, sizeof login, "bridge:%s", spec->name);
	principal_set_login(&br->sink.who, spec->local_login ? spec->local_login : login);
	br->sink.who.vhost = vh;
	snprintf(br->sink.who.peer, sizeof br->sink.who.peer, "bridge %.50s", spec->name);
	/* The broker's own client: allowed what a client on this machine
	 * is (authorize() still sees bridge:NAME); with local_login, that
	 * user, judged by its grants. */
	br->sink.who.loopback = true;
	br->sink.who.authenticated = spec->local_login != NULL;
	br->sink.full = true;

	TAILQ_INSERT_TAIL(&r->all, br, link);
	r->n++;
	if (spec->direction == BRIDGE_OUT && bridge_is_pattern(spec->from))
		r->npattern++;

	br->s = new_session(br);
	if (spec->direction == BRIDGE_IN && bridge_in_open(br) < 0)
		log_error("bridge %s: %s", spec->name, br->last_error);
	if (spec->direction == BRIDGE_OUT)
		bridge_out_start(br);
	start_session(br);
	log_info("bridge %s: %s %s %s %s (%zu host%s)%s", spec->name, bridge_direction_name(spec->direction),
	         spec->from, spec->direction == BRIDGE_OUT ? "->" : "=>",
	         spec->to ? spec->to : "(same name)", spec->nhosts, spec->nhosts == 1 ? "" : "s",
	         paused ? ", paused" : "");
	*out = br;
	return 0;
}

static void destroy_bridge(struct bridge *br)
{
	struct bridges *r = reg(br->b);
	br->stopping = true;
	br->sink.full = true;
	if (br->spec.direction == BRIDGE_OUT)
		bridge_out_stop(br);
	else
		bridge_in_stop(br);
	/* Fails what is outstanding: those callbacks let go of their
	 * records; the sink's detach gives the deliveries back. */
	mq_session_free(br->s);
	br->s = NULL;
	bridge_out_ack_confirmed(br);	/* what the remote confirmed leaves here now */
	bridge_out_settle(br);
	sink_detach(&br->sink);
	sink_fini(&br->sink);
	TAILQ_REMOVE(&r->all, br, link);
	r->n--;
	if (br->spec.direction == BRIDGE_OUT && bridge_is_pattern(br->spec.from))
		r->npattern--;
	event_free(br->retry_ev);
	event_free(br->settle_ev);
	event_free(br->ack_ev);
	strmap_fini(&br->remote_queues);
	sbuf_fini(&br->scratch);
	dedup_free(br->dedup);
	bridge_spec_fini(&br->spec);
	free(br);
}

/* ---- the journal ---- */

static void word_json(void *arg, const char *key, const char *value)
{
	struct jw *w = arg;
	jw_arr_begin(w);
	jw_str(w, key);
	jw_str(w, value);
	jw_arr_end(w);
}

static void record(struct bridge *br)
{
	struct sbuf json;
	struct jw w;
	char key[sizeof META_PREFIX + BRIDGE_NAME_MAX + 16];	/* names longer than the bound never reach here */
	sbuf_init(&json);
	jw_init(&w, &json);
	jw_obj_begin(&w);
	jw_kstr(&w, "name", br->spec.name);
	jw_kbool(&w, "configured", br->spec.configured);
	jw_kbool(&w, "paused", br->paused);
	jw_key(&w, "words");
	jw_arr_begin(&w);
	bridge_spec_words(&br->spec, word_json, &w);
	jw_arr_end(&w);
	jw_obj_end(&w);
	snprintf(key, sizeof key, META_PREFIX "%s", br->spec.name);
	store_meta_put(br->b, key, json.buf, json.len);
	sbuf_fini(&json);
}

static void forget_record(struct broker *b, const char *name)
{
	char key[sizeof META_PREFIX + BRIDGE_NAME_MAX + 16];	/* names longer than the bound never reach here */
	snprintf(key, sizeof key, META_PREFIX "%s", name);
	store_meta_del(b, key);
}

struct recorded {
	struct bridge_spec spec;
	bool paused;
	bool used;
};

struct recorded_list {
	struct recorded *items;
	size_t n;
};

static void collect_record(void *arg, const char *key, const char *val, size_t len)
{
	struct recorded_list *l = arg;
	char err[300];
	struct json *j = json_parse(val, len, err, sizeof err);
	const struct json *words, *v;
	struct recorded *rec;
	const char *name = key + strlen(META_PREFIX);
	if (!j) {
		log_error("journal: bridge record %s is unreadable (%s): skipped", key, err);
		return;
	}
	l->items = xrealloc(l->items, (l->n + 1) * sizeof *l->items);
	rec = &l->items[l->n];
	memset(rec, 0, sizeof *rec);
	bridge_spec_init(&rec->spec, name);
	v = json_get(j, "paused");
	rec->paused = v && v->type == JSON_BOOL && v->b;
	v = json_get(j, "configured");
	rec->spec.configured = v && v->type == JSON_BOOL && v->b;
	words = json_get(j, "words");
	for (size_t i = 0; words && words->type == JSON_ARR && i < words->len; i++) {
		const struct json *pair = words->items[i];
		if (pair->type != JSON_ARR || pair->len != 2 || pair->items[0]->type != JSON_STR ||
		    pair->items[1]->type != JSON_STR)
			continue;
		if (bridge_spec_set(&rec->spec, pair->items[0]->str, pair->items[1]->str, err, sizeof err) < 0) {
			log_error("journal: bridge record %s: %s: skipped", key, err);
			goto bad;
		}
	}
	if (bridge_spec_check(&rec->spec, err, sizeof err) < 0 && !rec->spec.configured) {
		log_error("journal: bridge record %s: %s: skipped", key, err);
		goto bad;
	}
	l->n++;
	json_free(j);
	return;
bad:
	bridge_spec_fini(&rec->spec);
	json_free(j);
}

/* ---- new destinations, for pattern bridges ---- */

static bool tap_listening(struct broker *b)
{
	return reg(b) && reg(b)->npattern > 0;
}

static void tap_send(struct broker *b, const char *json, size_t len)
{
	struct bridges *r = reg(b);
	struct json *j;
	const char *ev, *name, *vhost;
	char err[128];
	/* Cheap refusal first: most events are not about new destinations. */
	if (!memmem(json, len, "\"destination-created\"", 21))
		return;
	if (!(j = json_parse(json, len, err, sizeof err)))
		return;
	ev = json_get_str(j, "event");
	name = json_get_str(j, "name");
	vhost = json_get_str(j, "vhost");
	if (ev && name && vhost && strcmp(ev, "destination-created") == 0) {
		/* Subscribed from the loop: the destination is still being made. */
		struct created *c = xcalloc(1, sizeof *c);
		c->vhost = xstrdup(vhost);
		c->name = xstrdup(name);
		c->next = r->created;
		r->created = c;
		event_active(r->created_ev, EV_TIMEOUT, 0);
	}
	json_free(j);
}

static const struct events_tap bridge_tap = { tap_listening, tap_send };

static void created_cb(evutil_socket_t fd, short what, void *arg)
{
	struct broker *b = arg;
	struct bridges *r = reg(b);
	struct created *list = r->created, *c, *rev = NULL;
	(void)fd;
	(void)what;
	r->created = NULL;
	while (list) {	/* oldest first */
		c = list;
		list = c->next;
		c->next = rev;
		rev = c;
	}
	while ((c = rev)) {
		struct bridge *br, *next;
		rev = c->next;
		for (br = TAILQ_FIRST(&r->all); br; br = next) {
			next = TAILQ_NEXT(br, link);
			if (br->spec.direction == BRIDGE_OUT && bridge_is_pattern(br->spec.from))
				bridge_out_dest_created(br, c->vhost, c->name);
		}
		free(c->vhost);
		free(c->name);
		free(c);
	}
}

/* ---- the registry ---- */

int bridges_init(struct broker *b, char *err, size_t errlen)
{
	struct bridges *r = xcalloc(1, sizeof *r);
	struct recorded_list rl = { NULL, 0 };
	int rc = 0;
	TAILQ_INIT(&r->all);
	r->rng = mono_us() | 1;
	r->created_ev = event_new(b->base, -1, 0, created_cb, b);
	b->bridges = r;
	events_add_tap(b, &bridge_tap);

	store_meta_each(b, META_PREFIX, collect_record, &rl);
	/* The file's bridges first; what the journal knows of them is only
	 * whether an administrator paused them. */
	for (size_t i = 0; i < b->cfg.nbridges && rc == 0; i++) {
		const struct bridge_spec *sp = &b->cfg.bridges[i];
		bool paused = sp->paused;
		struct bridge *br;
		for (size_t k = 0; k < rl.n; k++) {
			if (strcmp(rl.items[k].spec.name, sp->name) == 0) {
				paused = rl.items[k].paused;
				rl.items[k].used = true;
			}
		}
		if ((rc = make_bridge(b, sp, paused, &br, err, errlen)) == 0)
			record(br);
	}
	for (size_t k = 0; k < rl.n; k++) {
		struct recorded *rec = &rl.items[k];
		struct bridge *br;
		char why[300];
		if (rc == 0 && !rec->used) {
			if (rec->spec.configured) {
				log_info("bridge %s is no longer in the configuration file: removed", rec->spec.name);
				forget_record(b, rec->spec.name);
			} else if (make_bridge(b, &rec->spec, rec->paused, &br, why, sizeof why) < 0) {
				log_error("journal: %s: not started", why);
			}
		}
		bridge_spec_fini(&rec->spec);
	}
	free(rl.items);
	return rc;
}

void bridges_free(struct broker *b)
{
	struct bridges *r = b ? reg(b) : NULL;
	struct bridge *br;
	struct created *c;
	if (!r)
		return;
	while ((br = TAILQ_FIRST(&r->all)))
		destroy_bridge(br);
	while ((c = r->created)) {
		r->created = c->next;
		free(c->vhost);
		free(c->name);
		free(c);
	}
	if (r->created_ev)
		event_free(r->created_ev);
	free(r);
	b->bridges = NULL;
}

struct bridge *bridge_find(struct broker *b, const char *name)
{
	struct bridge *br;
	if (!reg(b))
		return NULL;
	TAILQ_FOREACH(br, &reg(b)->all, link)
		if (strcmp(br->spec.name, name) == 0)
			return br;
	return NULL;
}

size_t bridges_count(const struct broker *b)
{
	return reg(b) ? reg(b)->n : 0;
}

int bridge_add(struct broker *b, const struct bridge_spec *spec, int *status, char *err, size_t errlen)
{
	struct bridge *br;
	if (bridge_spec_check(spec, err, errlen) < 0) {
		*status = CMD_BAD_ARG;
		return -1;
	}
	if (bridge_find(b, spec->name)) {
		*status = CMD_CONFLICT;
		snprintf(err, errlen, "a bridge named %s exists already (delete it first)", spec->name);
		return -1;
	}
	if (make_bridge(b, spec, spec->paused, &br, err, errlen) < 0) {
		*status = CMD_BAD_ARG;
		return -1;
	}
	br->spec.configured = false;
	record(br);
	emit(br, "bridge-added");
	return 0;
}

int bridge_delete(struct broker *b, const char *name, int *status, char *err, size_t errlen)
{
	struct bridge *br = bridge_find(b, name);
	char copy[80];
	if (!br) {
		*status = CMD_NOT_FOUND;
		snprintf(err, errlen, "no bridge named %s (see: list bridges)", name);
		return -1;
	}
	snprintf(copy, sizeof copy, "%s", br->spec.name);
	emit(br, "bridge-deleted");
	forget_record(b, copy);
	destroy_bridge(br);
	log_info("bridge %s deleted", copy);
	return 0;
}

int bridge_set_paused(struct broker *b, const char *name, bool paused, int *status, char *err, size_t errlen)
{
	struct bridge *br = bridge_find(b, name);
	if (!br) {
		*status = CMD_NOT_FOUND;
		snprintf(err, errlen, "no bridge named %s (see: list bridges)", name);
		return -1;
	}
	if (br->paused == paused)
		return 0;
	br->paused = paused;
	record(br);
	if (br->spec.direction == BRIDGE_IN)
		bridge_in_set_paused(br, paused);
	bridge_update_room(br);
	bridge_set_state(br, br->state, NULL);
	emit(br, paused ? "bridge-paused" : "bridge-resumed");
	return 0;
}

/* ---- figures ---- */

static uint64_t lag_messages(const struct bridge *br)
{
	return br->spec.direction == BRIDGE_OUT ? bridge_out_backlog(br) + br->pending : br->pending;
}

static double lag_seconds(const struct bridge *br)
{
	uint64_t now = wall_ms(), oldest = 0;
	if (br->spec.direction == BRIDGE_OUT) {
		/* The oldest of what is in flight and what waits in the
		 * source queues (a message's age counts from when this broker
		 * took it). A head paged out to the journal has no time in
		 * memory: then the time since the bridge last moved stands in. */
		const struct fwd *f = TAILQ_FIRST(&br->inflight);
		uint64_t queued = bridge_out_oldest_ms(br);
		if (f)
			oldest = f->taken_ms;
		if (queued && (!oldest || queued < oldest))
			oldest = queued;
		if (!oldest && bridge_out_backlog(br))
			return (double)(mono_ms() - br->last_move_ms) / 1000.0;
	} else {
		oldest = bridge_in_oldest_ms(br);
	}
	return oldest && now > oldest ? (double)(now - oldest) / 1000.0 : 0.0;
}

void bridges_tick(struct broker *b)
{
	struct bridge *br;
	uint64_t now = mono_ms();
	if (!reg(b))
		return;
	TAILQ_FOREACH(br, &reg(b)->all, link) {
		uint64_t moved = br->forwarded + br->acknowledged;
		if (moved != br->moved_mark) {
			br->moved_mark = moved;
			bridge_moved(br);
		}
		if (br->spec.direction == BRIDGE_OUT && !br->subscribed && !br->paused)
			bridge_out_start(br);	/* a fixed source deleted, and wanted again */
		if (!br->connected && br->connects && !br->failures && !br->reconnect_failing && br->s) {
			/* The session reconnects by itself after a loss and says
			 * nothing of attempts that fail: a second attempt begun
			 * means the first failed, and the link is failing, not
			 * just connecting. */
			struct mq_stats st;
			mq_session_stats(br->s, &st);
			if (st.attempts >= br->attempts_at_loss + 2) {
				char why[sizeof br->last_error];
				br->reconnect_failing = true;
				snprintf(why, sizeof why, "reconnecting: %.600s", mq_session_error(br->s));
				bridge_set_state(br, BRIDGE_FAILING, why);
			}
		}
		bridge_set_state(br, br->state, NULL);
		/* The alarm: running (not paused, not failing: those say so
		 * already), messages waiting, and nothing moving. */
		if (!br->stalled && br->spec.stall_ms && br->state != BRIDGE_PAUSED && lag_messages(br) > 0 &&
		    now - br->last_move_ms >= br->spec.stall_ms) {
			char secs[32], lag[32];
			const char *fields[] = { "name", br->spec.name,
			                         "direction", bridge_direction_name(br->spec.direction),
			                         "state", bridge_state_name(br->state), "idle_s", secs,
			                         "lag_messages", lag, "error", br->last_error, NULL };
			br->stalled = true;
			snprintf(secs, sizeof secs, "%" PRIu64, (now - br->last_move_ms) / 1000);
			snprintf(lag, sizeof lag, "%" PRIu64, lag_messages(br));
			log_warn("bridge %s: stalled: %s, nothing moved for %s s with %s message%s waiting", br->spec.name,
			         bridge_state_name(br->state), secs, lag, lag_messages(br) == 1 ? "" : "s");
			broker_event(b, "bridge-stalled", fields);
		}
	}
}

/* ---- rows ---- */

static void row_word(void *arg, const char *key, const char *value)
{
	struct jw *w = arg;
	if (strcmp(key, "passcode") == 0)
		value = "(set)";
	word_json(w, key, value);
}

void bridge_row(const struct bridge *br, struct jw *w, bool detail)
{
	const struct bridge_spec *sp = &br->spec;
	jw_obj_begin(w);
	jw_kstr(w, "name", sp->name);
	jw_kstr(w, "direction", bridge_direction_name(sp->direction));
	jw_kstr(w, "state", bridge_state_name(br->state));
	jw_kstr(w, "error", br->last_error);
	jw_kstr(w, "from", sp->from);
	jw_kstr(w, "to", sp->to ? sp->to : "");
	jw_kstr(w, "node", br->connected && br->s ? mq_session_address(br->s) : "");
	jw_kstr(w, "vhost", br->vh->name);
	jw_kbool(w, "paused", br->paused);
	jw_kbool(w, "stalled", br->stalled);
	jw_kuint(w, "window", sp->window);
	jw_kuint(w, "pending", br->pending);
	jw_kuint(w, "forwarded", br->forwarded);
	jw_kuint(w, "acknowledged", br->acknowledged);
	jw_kuint(w, "redelivered", br->redelivered);
	jw_kuint(w, "failed", br->failed);
	jw_kuint(w, "duplicates", br->duplicates);
	jw_kuint(w, "looped", br->looped);
	jw_kuint(w, "lag_messages", lag_messages(br));
	jw_kdouble(w, "lag_seconds", lag_seconds(br));
	if (detail) {
		jw_key(w, "hosts");
		jw_arr_begin(w);
		for (size_t i = 0; i < sp->nhosts; i++)
			jw_str(w, sp->hosts[i]);
		jw_arr_end(w);
		jw_kstr(w, "remote_broker_id", br->remote_id);
		jw_kstr(w, "local_login", br->sink.who.login ? br->sink.who.login : "");
		jw_kuint(w, "client", br->sink.id);
		jw_kuint(w, "connects", br->connects);
		jw_kbool(w, "configured", sp->configured);
		jw_kuint(w, "idle_s", (mono_ms() - br->last_move_ms) / 1000);
		jw_kuint(w, "stall_timeout_ms", sp->stall_ms);
		jw_kuint(w, "heartbeat_ms", sp->heartbeat_ms);
		jw_kuint(w, "dedup_ms", sp->dedup_ms);
		jw_kuint(w, "dedup_ids", dedup_count(br->dedup));
		jw_kuint(w, "created_ms", br->created_ms);
		jw_key(w, "subscriptions");
		jw_arr_begin(w);
		{
			size_t it = 0;
			void *v;
			while (strmap_next(&br->sink.subs, &it, NULL, &v)) {
				const struct sub *s = v;
				jw_obj_begin(w);
				jw_kstr(w, "destination", s->dest->name);
				jw_kstr(w, "type", dest_type_name(s->dest->type));
				jw_kuint(w, "unacked", s->unacked);
				jw_kuint(w, "depth", s->dest->type == DEST_QUEUE ? queue_depth(s->dest) : 0);
				jw_obj_end(w);
			}
		}
		jw_arr_end(w);
		jw_key(w, "words");
		jw_arr_begin(w);
		bridge_spec_words(sp, row_word, w);
		jw_arr_end(w);
	}
	jw_obj_end(w);
}

static int by_name(const void *a, const void *b)
{
	return strcmp((*(struct bridge *const *)a)->spec.name, (*(struct bridge *const *)b)->spec.name);
}

static struct bridge **sorted(struct broker *b, size_t *n)
{
	struct bridge **all, *br;
	size_t i = 0;
	*n = bridges_count(b);
	all = xcalloc(*n ? *n : 1, sizeof *all);
	if (reg(b))
		TAILQ_FOREACH(br, &reg(b)->all, link)
			all[i++] = br;
	qsort(all, *n, sizeof *all, by_name);
	return all;
}

size_t bridges_list(struct broker *b, struct jw *w)
{
	size_t n;
	struct bridge **all = sorted(b, &n);
	jw_arr_begin(w);
	for (size_t i = 0; i < n; i++)
		bridge_row(all[i], w, false);
	jw_arr_end(w);
	free(all);
	return n;
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

typedef double (*bridge_value)(const struct bridge *br);
static double v_up(const struct bridge *br) { return br->connected; }
static double v_pending(const struct bridge *br) { return (double)br->pending; }
static double v_forwarded(const struct bridge *br) { return (double)br->forwarded; }
static double v_acknowledged(const struct bridge *br) { return (double)br->acknowledged; }
static double v_redelivered(const struct bridge *br) { return (double)br->redelivered; }
static double v_failed(const struct bridge *br) { return (double)br->failed; }
static double v_duplicates(const struct bridge *br) { return (double)br->duplicates; }
static double v_looped(const struct bridge *br) { return (double)br->looped; }
static double v_lag(const struct bridge *br) { return (double)lag_messages(br); }
static double v_lag_s(const struct bridge *br) { return lag_seconds(br); }
static double v_stalled(const struct bridge *br) { return br->stalled; }

void bridges_metrics(struct broker *b, struct sbuf *out)
{
	static const struct {
		const char *name, *type, *help;
		bridge_value fn;
	} families[] = {
		{ "bridge_up", "gauge", "1 while the bridge is connected to its remote broker.", v_up },
		{ "bridge_pending", "gauge", "Messages the bridge holds unconfirmed.", v_pending },
		{ "bridge_forwarded_total", "counter", "Messages sent to the remote (out) or published here (in).", v_forwarded },
		{ "bridge_acknowledged_total", "counter", "Messages confirmed by the remote (out) or upstream (in).", v_acknowledged },
		{ "bridge_redelivered_total", "counter", "Messages taken again after a failure.", v_redelivered },
		{ "bridge_failed_total", "counter", "Posts failed or refused (out), publishes refused (in).", v_failed },
		{ "bridge_duplicates_total", "counter", "Inbound messages dropped as repeats of an mq-post-id.", v_duplicates },
		{ "bridge_looped_total", "counter", "Messages not forwarded: they had been where they would go.", v_looped },
		{ "bridge_lag_messages", "gauge", "Messages waiting to cross the bridge, or crossing it.", v_lag },
		{ "bridge_lag_seconds", "gauge", "Age of the oldest message crossing the bridge.", v_lag_s },
		{ "bridge_stalled", "gauge", "1 while the stall alarm is raised.", v_stalled },
	};
	size_t n;
	struct bridge **all = sorted(b, &n);
	if (!n) {
		free(all);
		return;
	}
	for (size_t f = 0; f < ARRAY_LEN(families); f++) {
		sbuf_printf(out, "# HELP mqbroker_%s %s\n# TYPE mqbroker_%s %s\n", families[f].name, families[f].help,
		            families[f].name, families[f].type);
		for (size_t i = 0; i < n; i++) {
			sbuf_printf(out, "mqbroker_%s{bridge=\"", families[f].name);
			label(out, all[i]->spec.name);
			double v = families[f].fn(all[i]);
			sbuf_printf(out, "\",direction=\"%s\"} ", bridge_direction_name(all[i]->spec.direction));
			if (v == (double)(uint64_t)v)
				sbuf_printf(out, "%" PRIu64 "\n", (uint64_t)v);
			else
				sbuf_printf(out, "%.3f\n", v);
		}
	}
	sbuf_adds(out, "# HELP mqbroker_bridge_state The bridge's state: 1 for the one it is in.\n"
	               "# TYPE mqbroker_bridge_state gauge\n");
	for (size_t i = 0; i < n; i++) {
		for (size_t s = 0; s < ARRAY_LEN(state_names); s++) {
			sbuf_adds(out, "mqbroker_bridge_state{bridge=\"");
			label(out, all[i]->spec.name);
			sbuf_printf(out, "\",state=\"%s\"} %d\n", state_names[s], all[i]->state == (enum bridge_state)s);
		}
	}
	free(all);
}
