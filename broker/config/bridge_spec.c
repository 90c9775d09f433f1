/* bridge_spec.c: a bridge's words, checked once for every way in. See
 * bridge_spec.h. */
#include "config/bridge_spec.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "common/util.h"

#define WINDOW_MAX 100000

const char *bridge_direction_name(enum bridge_direction d)
{
	return d == BRIDGE_IN ? "in" : "out";
}

void bridge_spec_init(struct bridge_spec *s, const char *name)
{
	memset(s, 0, sizeof *s);
	s->name = xstrdup(name ? name : "");
	s->window = 1000;
	s->heartbeat_ms = 10000;
	s->reconnect_min_ms = 100;
	s->reconnect_max_ms = 30000;
	s->connect_timeout_ms = 10000;
	s->stall_ms = 60000;
}

static void free_headers(struct bridge_header *h, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(h[i].name);
		free(h[i].value);
	}
	free(h);
}

void bridge_spec_fini(struct bridge_spec *s)
{
	if (!s)
		return;
	free(s->name);
	free(s->from);
	free(s->to);
	for (size_t i = 0; i < s->nhosts; i++)
		free(s->hosts[i]);
	free(s->hosts);
	free(s->login);
	free(s->passcode);
	free(s->remote_vhost);
	free(s->vhost);
	free(s->local_login);
	free(s->tls_cert_key);
	free(s->tls_ca_chain);
	free(s->tls_server_name);
	free_headers(s->subscribe_headers, s->nsubscribe_headers);
	free_headers(s->send_headers, s->nsend_headers);
	memset(s, 0, sizeof *s);
}

static char *dup_or_null(const char *s)
{
	return s ? xstrdup(s) : NULL;
}

static struct bridge_header *copy_headers(const struct bridge_header *h, size_t n)
{
	struct bridge_header *c = n ? xcalloc(n, sizeof *c) : NULL;
	for (size_t i = 0; i < n; i++) {
		c[i].name = xstrdup(h[i].name);
		c[i].value = xstrdup(h[i].value);
	}
	return c;
}

void bridge_spec_copy(struct bridge_spec *dst, const struct bridge_spec *src)
{
	*dst = *src;
	dst->name = dup_or_null(src->name);
	dst->from = dup_or_null(src->from);
	dst->to = dup_or_null(src->to);
	dst->hosts = src->nhosts ? xcalloc(src->nhosts, sizeof *dst->hosts) : NULL;
	for (size_t i = 0; i < src->nhosts; i++)
		dst->hosts[i] = xstrdup(src->hosts[i]);
	dst->login = dup_or_null(src->login);
	dst->passcode = dup_or_null(src->passcode);
	dst->remote_vhost = dup_or_null(src->remote_vhost);
	dst->vhost = dup_or_null(src->vhost);
	dst->local_login = dup_or_null(src->local_login);
	dst->tls_cert_key = dup_or_null(src->tls_cert_key);
	dst->tls_ca_chain = dup_or_null(src->tls_ca_chain);
	dst->tls_server_name = dup_or_null(src->tls_server_name);
	dst->subscribe_headers = copy_headers(src->subscribe_headers, src->nsubscribe_headers);
	dst->send_headers = copy_headers(src->send_headers, src->nsend_headers);
}

bool bridge_name_ok(const char *name, char *err, size_t errlen)
{
	size_t n = strlen(name);
	if (n == 0 || n > BRIDGE_NAME_MAX) {
		snprintf(err, errlen, "bridge name '%s': expected 1 to %d characters", name, BRIDGE_NAME_MAX);
		return false;
	}
	for (const char *p = name; *p; p++) {
		if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
		    *p == '-' || *p == '_' || *p == '.')
			continue;
		snprintf(err, errlen, "bridge name '%s': only letters, digits, '-', '_' and '.' are allowed", name);
		return false;
	}
	return true;
}

/* window, window_size and Window alike: '-' and '_' are one. */
static bool key_is(const char *key, const char *want)
{
	for (; *key && *want; key++, want++) {
		char a = *key == '-' ? '_' : *key;
		if (a != *want)
			return false;
	}
	return !*key && !*want;
}

static void set_str(char **field, const char *value)
{
	free(*field);
	*field = value && *value ? xstrdup(value) : NULL;
}

static bool line_safe(const char *s)
{
	return !strpbrk(s, "\r\n");
}

static int add_header(struct bridge_header **h, size_t *n, const char *key, const char *value, char *err,
                      size_t errlen)
{
	const char *colon = strchr(value, ':');
	if (!colon || colon == value) {
		snprintf(err, errlen, "%s: expected NAME:VALUE, got '%s'", key, value);
		return -1;
	}
	if (!line_safe(value)) {
		snprintf(err, errlen, "%s: a header may not contain a line break", key);
		return -1;
	}
	{
		static const char *const reserved[] = { "destination", "receipt", "content-length", "id", "ack",
		                                        "subscription", "transaction" };
		size_t nl = (size_t)(colon - value);
		for (size_t i = 0; i < ARRAY_LEN(reserved); i++)
			if (strlen(reserved[i]) == nl && strncmp(value, reserved[i], nl) == 0) {
				snprintf(err, errlen, "%s: '%s' is written by the bridge itself", key, reserved[i]);
				return -1;
			}
	}
	*h = xrealloc(*h, (*n + 1) * sizeof **h);
	(*h)[*n].name = xstrndup(value, (size_t)(colon - value));
	(*h)[*n].value = xstrdup(colon + 1);
	(*n)++;
	return 0;
}

static int set_hosts(struct bridge_spec *s, const char *value, char *err, size_t errlen)
{
	char *copy = xstrdup(value), *save = NULL, *tok;
	for (size_t i = 0; i < s->nhosts; i++)
		free(s->hosts[i]);
	free(s->hosts);
	s->hosts = NULL;
	s->nhosts = 0;
	for (tok = strtok_r(copy, ", ", &save); tok; tok = strtok_r(NULL, ", ", &save)) {
		const char *port = NULL;
		if (tok[0] == '[') {
			char *close = strchr(tok, ']');
			if (!close || (close[1] && close[1] != ':')) {
				snprintf(err, errlen, "hosts: '%s' is not [address] or [address]:port", tok);
				free(copy);
				return -1;
			}
			port = close[1] ? close + 2 : NULL;
		} else if (strchr(tok, ':')) {
			port = strrchr(tok, ':') + 1;
			if (strchr(tok, ':') != port - 1) {
				snprintf(err, errlen, "hosts: '%s': write an IPv6 address as [address]:port", tok);
				free(copy);
				return -1;
			}
		}
		if (port) {
			uint64_t p;
			if (!parse_u64(port, 1, 65535, &p)) {
				snprintf(err, errlen, "hosts: '%s': expected a port 1..65535 after the colon", tok);
				free(copy);
				return -1;
			}
		}
		s->hosts = xrealloc(s->hosts, (s->nhosts + 1) * sizeof *s->hosts);
		s->hosts[s->nhosts++] = xstrdup(tok);
	}
	free(copy);
	if (!s->nhosts) {
		snprintf(err, errlen, "hosts: expected host:port[,host:port...], got '%s'", value);
		return -1;
	}
	return 0;
}

static int duration(const char *key, const char *value, uint64_t *out, char *err, size_t errlen)
{
	if (!parse_duration_ms(value, out)) {
		snprintf(err, errlen, "%s: expected a duration such as 500ms, 10s or 5m, got '%s'", key, value);
		return -1;
	}
	return 0;
}

static int destination(const char *key, const char *value, bool pattern_ok, char **field, char *err,
                       size_t errlen)
{
	if (value[0] != '/' || !line_safe(value) || strlen(value) > 1024) {
		snprintf(err, errlen, "%s: expected a destination such as /queue/orders, got '%s'", key, value);
		return -1;
	}
	if (!pattern_ok && strchr(value, '*')) {
		snprintf(err, errlen, "%s: '%s': only an outbound bridge's from= takes a pattern", key, value);
		return -1;
	}
	set_str(field, value);
	return 0;
}

int bridge_spec_set(struct bridge_spec *s, const char *key, const char *value, char *err, size_t errlen)
{
	uint64_t v;
	bool b;
	if (!value) {
		if (key_is(key, "tls") || key_is(key, "paused")) {
			value = "true";
		} else {
			snprintf(err, errlen, "%s: needs a value (%s=...)", key, key);
			return -1;
		}
	}
	if (key_is(key, "direction")) {
		if (strcmp(value, "out") == 0 || strcmp(value, "outbound") == 0)
			s->direction = BRIDGE_OUT;
		else if (strcmp(value, "in") == 0 || strcmp(value, "inbound") == 0)
			s->direction = BRIDGE_IN;
		else {
			snprintf(err, errlen, "direction: expected out or in, got '%s'", value);
			return -1;
		}
		s->direction_set = true;
	} else if (key_is(key, "from")) {
		return destination("from", value, true, &s->from, err, errlen);
	} else if (key_is(key, "to")) {
		return destination("to", value, false, &s->to, err, errlen);
	} else if (key_is(key, "hosts") || key_is(key, "host") || key_is(key, "remote")) {
		return set_hosts(s, value, err, errlen);
	} else if (key_is(key, "login") || key_is(key, "passcode") || key_is(key, "remote_vhost") ||
	           key_is(key, "vhost") || key_is(key, "local_login") || key_is(key, "tls_cert_key") ||
	           key_is(key, "tls_ca_chain") || key_is(key, "tls_server_name")) {
		char **f = key_is(key, "login") ? &s->login : key_is(key, "passcode") ? &s->passcode
		         : key_is(key, "remote_vhost") ? &s->remote_vhost : key_is(key, "vhost") ? &s->vhost
		         : key_is(key, "local_login") ? &s->local_login : key_is(key, "tls_cert_key") ? &s->tls_cert_key
		         : key_is(key, "tls_ca_chain") ? &s->tls_ca_chain : &s->tls_server_name;
		if (!line_safe(value)) {
			snprintf(err, errlen, "%s: may not contain a line break", key);
			return -1;
		}
		set_str(f, value);
	} else if (key_is(key, "tls") || key_is(key, "paused")) {
		if (!parse_bool(value, &b)) {
			snprintf(err, errlen, "%s: expected true or false, got '%s'", key, value);
			return -1;
		}
		if (key_is(key, "tls"))
			s->tls = b;
		else
			s->paused = b;
	} else if (key_is(key, "window")) {
		if (!parse_u64(value, 1, WINDOW_MAX, &v)) {
			snprintf(err, errlen, "window: expected a number 1..%d, got '%s'", WINDOW_MAX, value);
			return -1;
		}
		s->window = (uint32_t)v;
	} else if (key_is(key, "heartbeat")) {
		return duration("heartbeat", value, &s->heartbeat_ms, err, errlen);
	} else if (key_is(key, "reconnect_min")) {
		return duration("reconnect-min", value, &s->reconnect_min_ms, err, errlen);
	} else if (key_is(key, "reconnect_max")) {
		return duration("reconnect-max", value, &s->reconnect_max_ms, err, errlen);
	} else if (key_is(key, "connect_timeout")) {
		if (duration("connect-timeout", value, &s->connect_timeout_ms, err, errlen) < 0)
			return -1;
		if (s->connect_timeout_ms < 100 || s->connect_timeout_ms > 600000) {
			snprintf(err, errlen, "connect-timeout: expected 100ms to 10m, got '%s'", value);
			return -1;
		}
	} else if (key_is(key, "stall_timeout")) {
		return duration("stall-timeout", value, &s->stall_ms, err, errlen);
	} else if (key_is(key, "dedup") || key_is(key, "dedup_window")) {
		return duration("dedup", value, &s->dedup_ms, err, errlen);
	} else if (key_is(key, "subscribe_header")) {
		return add_header(&s->subscribe_headers, &s->nsubscribe_headers, "subscribe-header", value, err, errlen);
	} else if (key_is(key, "send_header")) {
		return add_header(&s->send_headers, &s->nsend_headers, "send-header", value, err, errlen);
	} else {
		snprintf(err, errlen, "unknown bridge option '%s' (known: direction, from, to, hosts, login, passcode, "
		         "remote-vhost, vhost, local-login, tls, tls-cert-key, tls-ca-chain, tls-server-name, window, "
		         "heartbeat, reconnect-min, reconnect-max, connect-timeout, stall-timeout, dedup, subscribe-header, send-header, "
		         "paused)", key);
		return -1;
	}
	return 0;
}

int bridge_spec_check(const struct bridge_spec *s, char *err, size_t errlen)
{
	char why[200];
	if (!bridge_name_ok(s->name, why, sizeof why)) {
		snprintf(err, errlen, "%s", why);
		return -1;
	}
	if (!s->direction_set) {
		snprintf(err, errlen, "bridge %s: direction is missing (out or in)", s->name);
		return -1;
	}
	if (!s->from) {
		snprintf(err, errlen, "bridge %s: from is missing (%s)", s->name,
		         s->direction == BRIDGE_OUT ? "the local destination or pattern to forward"
		                                    : "the remote destination to subscribe to");
		return -1;
	}
	if (s->direction == BRIDGE_IN && !s->to) {
		snprintf(err, errlen, "bridge %s: to is missing (the local destination to publish to)", s->name);
		return -1;
	}
	if (s->direction == BRIDGE_IN && strchr(s->from, '*')) {
		snprintf(err, errlen, "bridge %s: from '%s': an inbound bridge subscribes to one remote destination",
		         s->name, s->from);
		return -1;
	}
	if (s->direction == BRIDGE_OUT && s->dedup_ms) {
		snprintf(err, errlen, "bridge %s: dedup applies to inbound bridges (outbound: set dedup-window on the "
		         "receiving queue)", s->name);
		return -1;
	}
	if (s->direction == BRIDGE_OUT && s->nsubscribe_headers) {
		snprintf(err, errlen, "bridge %s: subscribe-header applies to inbound bridges", s->name);
		return -1;
	}
	if (s->direction == BRIDGE_IN && s->nsend_headers) {
		snprintf(err, errlen, "bridge %s: send-header applies to outbound bridges", s->name);
		return -1;
	}
	if (!s->nhosts) {
		snprintf(err, errlen, "bridge %s: hosts is missing (the remote broker's host:port, or its nodes)", s->name);
		return -1;
	}
	if (s->reconnect_min_ms == 0 || s->reconnect_min_ms > s->reconnect_max_ms) {
		snprintf(err, errlen, "bridge %s: reconnect-min must be at least 1 ms and at most reconnect-max", s->name);
		return -1;
	}
	if (s->passcode && !s->login) {
		snprintf(err, errlen, "bridge %s: a passcode needs a login", s->name);
		return -1;
	}
	return 0;
}

static void word_ms(void (*fn)(void *, const char *, const char *), void *arg, const char *key, uint64_t ms)
{
	char buf[32];
	snprintf(buf, sizeof buf, "%" PRIu64 "ms", ms);
	fn(arg, key, buf);
}

void bridge_spec_words(const struct bridge_spec *s, void (*fn)(void *arg, const char *key, const char *value),
                       void *arg)
{
	struct sbuf hosts;
	char buf[32];
	fn(arg, "direction", bridge_direction_name(s->direction));
	if (s->from)
		fn(arg, "from", s->from);
	if (s->to)
		fn(arg, "to", s->to);
	sbuf_init(&hosts);
	for (size_t i = 0; i < s->nhosts; i++) {
		if (i)
			sbuf_addc(&hosts, ',');
		sbuf_adds(&hosts, s->hosts[i]);
	}
	fn(arg, "hosts", sbuf_str(&hosts));
	sbuf_fini(&hosts);
	if (s->login)
		fn(arg, "login", s->login);
	if (s->passcode)
		fn(arg, "passcode", s->passcode);
	if (s->remote_vhost)
		fn(arg, "remote-vhost", s->remote_vhost);
	if (s->vhost)
		fn(arg, "vhost", s->vhost);
	if (s->local_login)
		fn(arg, "local-login", s->local_login);
	if (s->tls)
		fn(arg, "tls", "true");
	if (s->tls_cert_key)
		fn(arg, "tls-cert-key", s->tls_cert_key);
	if (s->tls_ca_chain)
		fn(arg, "tls-ca-chain", s->tls_ca_chain);
	if (s->tls_server_name)
		fn(arg, "tls-server-name", s->tls_server_name);
	snprintf(buf, sizeof buf, "%" PRIu32, s->window);
	fn(arg, "window", buf);
	word_ms(fn, arg, "heartbeat", s->heartbeat_ms);
	word_ms(fn, arg, "reconnect-min", s->reconnect_min_ms);
	word_ms(fn, arg, "reconnect-max", s->reconnect_max_ms);
	word_ms(fn, arg, "connect-timeout", s->connect_timeout_ms);
	word_ms(fn, arg, "stall-timeout", s->stall_ms);
	if (s->dedup_ms)
		word_ms(fn, arg, "dedup", s->dedup_ms);
	for (size_t i = 0; i < s->nsubscribe_headers + s->nsend_headers; i++) {
		bool sub = i < s->nsubscribe_headers;
		const struct bridge_header *h = sub ? &s->subscribe_headers[i] : &s->send_headers[i - s->nsubscribe_headers];
		char *w = xmalloc(strlen(h->name) + strlen(h->value) + 2);
		sprintf(w, "%s:%s", h->name, h->value);
		fn(arg, sub ? "subscribe-header" : "send-header", w);
		free(w);
	}
}

/* '*' matches any run, '/' included: /queue/orders.* takes
 * /queue/orders.eu and /queue/orders.eu/late alike. */
bool bridge_pattern_match(const char *pattern, const char *name)
{
	const char *star = NULL, *back = NULL;
	while (*name) {
		if (*pattern == '*') {
			star = ++pattern;
			back = name;
		} else if (*pattern == *name) {
			pattern++;
			name++;
		} else if (star) {
			pattern = star;
			name = ++back;
		} else {
			return false;
		}
	}
	while (*pattern == '*')
		pattern++;
	return !*pattern;
}
