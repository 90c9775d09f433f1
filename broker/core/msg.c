/* msg.c: building, encoding and freeing messages; header lookups. */
#include "core/msg.h"

#include <assert.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"

bool msg_is_control_header(const char *name, size_t len)
{
	switch (len) {
	case 3: return memcmp(name, "ack", 3) == 0;
	case 7: return memcmp(name, "receipt", 7) == 0;
	case 10: return memcmp(name, "message-id", 10) == 0;
	case 11: return memcmp(name, "destination", 11) == 0 || memcmp(name, "transaction", 11) == 0 ||
		        memcmp(name, "redelivered", 11) == 0;
	case 12: return memcmp(name, "subscription", 12) == 0;
	case 14: return memcmp(name, "content-length", 14) == 0 || memcmp(name, "delivery-count", 14) == 0;
	}
	return false;
}


/* The headers that name a message group: JMS's, then mqbroker's own. */
static const char *const group_headers[] = { "JMSXGroupID", "message-group" };

static bool is_group_header(const char *name, size_t len)
{
	return (len == 11 && memcmp(name, "JMSXGroupID", 11) == 0) ||
	       (len == 13 && memcmp(name, "message-group", 13) == 0);
}

/* Bytes a value takes once 1.2-escaped, and whether it holds a \r. */
static size_t escaped_len(const char *s, size_t len, bool *has_cr)
{
	size_t n = len;
	for (size_t i = 0; i < len; i++) {
		switch (s[i]) {
		case '\r': *has_cr = true; /* fall through */
		case '\n': case ':': case '\\': n++;
		}
	}
	return n;
}

static const struct msg_edit *find_edit(const struct msg_edit *e, size_t n, const char *name, size_t len)
{
	for (size_t i = 0; i < n; i++)
		if (strlen(e[i].name) == len && memcmp(e[i].name, name, len) == 0)
			return &e[i];
	return NULL;
}

/* Process-wide accounting of message memory, for stats and the memory
 * high-watermark. One loop thread: plain counters. */
static uint64_t live_count, live_bytes;

uint64_t msg_live_count(void) { return live_count; }
uint64_t msg_live_bytes(void) { return live_bytes; }

static struct msg *alloc_msg(uint64_t id, const char *dest, size_t hdrs_len, size_t body_len)
{
	size_t dlen = strlen(dest);
	size_t size = sizeof(struct msg) + dlen + 1 + hdrs_len + 1 + body_len + 1;
	struct msg *m = xmalloc(size);
	live_count++;
	live_bytes += size;
	memset(m, 0, sizeof *m);
	m->refs = 1;
	m->id = id;
	m->dest = m->data;
	memcpy(m->dest, dest, dlen + 1);
	m->dest_len = (uint32_t)dlen;
	m->hdrs = m->dest + dlen + 1;
	m->hdrs_len = (uint32_t)hdrs_len;
	m->hdrs[hdrs_len] = 0;
	m->body = m->hdrs + hdrs_len + 1;
	m->body_len = (uint32_t)body_len;
	m->body[body_len] = 0;	/* handy for text bodies; never sent */
	return m;
}

static char *put_line(char *w, const char *name, size_t nlen, const char *value, size_t vlen)
{
	w += frame_escape(w, name, nlen, STOMP_1_2);
	*w++ = ':';
	w += frame_escape(w, value, vlen, STOMP_1_2);
	*w++ = '\n';
	return w;
}

/* The common case: nothing in any header needs escaping. */
static char *put_line_raw(char *w, const char *name, size_t nlen, const char *value, size_t vlen)
{
	memcpy(w, name, nlen);
	w += nlen;
	*w++ = ':';
	memcpy(w, value, vlen);
	w += vlen;
	*w++ = '\n';
	return w;
}

/* The first header of that name: later repeats are ignored, as the
 * STOMP specifications say. */
static const struct frame_hdr *first_of(const struct frame_hdr *hdrs, unsigned n, const char *name)
{
	for (unsigned i = 0; i < n; i++)
		if (strcmp(hdrs[i].name, name) == 0)
			return &hdrs[i];
	return NULL;
}

struct msg *msg_new(uint64_t id, const char *dest, const struct frame_hdr *hdrs, unsigned nhdrs,
                    const void *body, size_t body_len, const struct msg_edit *edits, size_t nedits)
{
	size_t hlen = 0, raw_len = 0;
	bool has_cr = false, grouped = false;
	struct msg *m;
	char *w;
	char *(*put)(char *, const char *, size_t, const char *, size_t);

	/* First pass: size the header block exactly. */
	for (unsigned i = 0; i < nhdrs; i++) {
		const struct frame_hdr *h = &hdrs[i];
		const struct msg_edit *e;
		if (msg_is_control_header(h->name, h->name_len))
			continue;
		if (first_of(hdrs, nhdrs, h->name) != h)
			continue;	/* a repeat: the first one wins */
		e = nedits ? find_edit(edits, nedits, h->name, h->name_len) : NULL;
		if (e && !e->value)
			continue;
		if (is_group_header(h->name, h->name_len) && (e ? *e->value != 0 : h->value_len != 0))
			grouped = true;
		hlen += escaped_len(h->name, h->name_len, &has_cr) + 2 +
		        (e ? escaped_len(e->value, strlen(e->value), &has_cr)
		           : escaped_len(h->value, h->value_len, &has_cr));
		raw_len += h->name_len + 2 + (e ? strlen(e->value) : h->value_len);
	}
	for (size_t i = 0; i < nedits; i++) {
		if (!edits[i].value || first_of(hdrs, nhdrs, edits[i].name) ||
		    msg_is_control_header(edits[i].name, strlen(edits[i].name)))
			continue;
		if (find_edit(edits, i, edits[i].name, strlen(edits[i].name)))
			continue;	/* set twice: the first pass already counted it */
		if (is_group_header(edits[i].name, strlen(edits[i].name)) && *edits[i].value)
			grouped = true;
		hlen += escaped_len(edits[i].name, strlen(edits[i].name), &has_cr) + 2 +
		        escaped_len(edits[i].value, strlen(edits[i].value), &has_cr);
		raw_len += strlen(edits[i].name) + 2 + strlen(edits[i].value);
	}

	m = alloc_msg(id, dest, hlen, body_len);
	put = hlen == raw_len ? put_line_raw : put_line;
	if (has_cr)
		m->flags |= MSG_HDR_HAS_CR;
	w = m->hdrs;
	for (unsigned i = 0; i < nhdrs; i++) {
		const struct frame_hdr *h = &hdrs[i];
		const struct msg_edit *e;
		if (msg_is_control_header(h->name, h->name_len) || first_of(hdrs, nhdrs, h->name) != h)
			continue;
		e = nedits ? find_edit(edits, nedits, h->name, h->name_len) : NULL;
		if (e && !e->value)
			continue;
		if (e)
			w = put(w, h->name, h->name_len, e->value, strlen(e->value));
		else
			w = put(w, h->name, h->name_len, h->value, h->value_len);
	}
	for (size_t i = 0; i < nedits; i++) {
		if (!edits[i].value || first_of(hdrs, nhdrs, edits[i].name) ||
		    msg_is_control_header(edits[i].name, strlen(edits[i].name)))
			continue;
		if (find_edit(edits, i, edits[i].name, strlen(edits[i].name)))
			continue;
		w = put(w, edits[i].name, strlen(edits[i].name), edits[i].value, strlen(edits[i].value));
	}
	assert((size_t)(w - m->hdrs) == hlen);
	if (memchr(m->hdrs, '\\', hlen))
		m->flags |= MSG_HDR_HAS_ESC;
	if (grouped)
		m->flags |= MSG_GROUPED;
	if (body_len)
		memcpy(m->body, body, body_len);
	return m;
}

struct msg *msg_from_parts(uint64_t id, const char *dest, const char *hdrs, size_t hdrs_len,
                           const void *body, size_t body_len)
{
	struct msg *m = alloc_msg(id, dest, hdrs_len, body_len);
	if (hdrs_len) {
		memcpy(m->hdrs, hdrs, hdrs_len);
		/* \r can only appear escaped in 1.2 form */
		for (size_t i = 0; i + 1 < hdrs_len; i++) {
			if (hdrs[i] != '\\')
				continue;
			m->flags |= MSG_HDR_HAS_ESC;
			if (hdrs[i + 1] == 'r')
				m->flags |= MSG_HDR_HAS_CR;
			i++;
		}
	}
	if (body_len)
		memcpy(m->body, body, body_len);
	return m;
}

/* Walks "name:value\n" lines of a 1.2-encoded block. */
struct line {
	const char *name;
	size_t nlen;
	const char *value;
	size_t vlen;
};

static bool next_line(const char **p, const char *end, struct line *l)
{
	const char *nl, *colon;
	if (*p >= end)
		return false;
	nl = memchr(*p, '\n', (size_t)(end - *p));
	if (!nl)
		nl = end;
	colon = memchr(*p, ':', (size_t)(nl - *p));
	if (!colon)
		colon = nl;
	l->name = *p;
	l->nlen = (size_t)(colon - *p);
	l->value = colon < nl ? colon + 1 : nl;
	l->vlen = (size_t)(nl - l->value);
	*p = nl < end ? nl + 1 : end;
	return true;
}

struct msg *msg_clone_for(const struct msg *src, const char *dest,
                          const struct msg_edit *edits, size_t nedits)
{
	struct sbuf hb;
	const char *p = src->hdrs, *end = src->hdrs + src->hdrs_len;
	struct line l;
	struct msg *m;

	sbuf_init(&hb);
	while (next_line(&p, end, &l)) {
		char name[256];
		size_t n = MIN(l.nlen, sizeof name - 1);
		const struct msg_edit *e;
		memcpy(name, l.name, n);
		name[n] = 0;
		frame_unescape(name, n, STOMP_1_2);
		e = nedits ? find_edit(edits, nedits, name, strlen(name)) : NULL;
		if (e)
			continue;	/* replaced or removed below */
		sbuf_add(&hb, l.name, l.nlen);
		sbuf_addc(&hb, ':');
		sbuf_add(&hb, l.value, l.vlen);
		sbuf_addc(&hb, '\n');
	}
	for (size_t i = 0; i < nedits; i++) {
		char *tmp;
		size_t nl = strlen(edits[i].name), vl;
		if (!edits[i].value || find_edit(edits, i, edits[i].name, nl))
			continue;
		vl = strlen(edits[i].value);
		tmp = xmalloc(2 * (nl + vl) + 2);
		sbuf_add(&hb, tmp, (size_t)(put_line(tmp, edits[i].name, nl, edits[i].value, vl) - tmp));
		free(tmp);
	}
	m = msg_from_parts(src->id, dest, sbuf_str(&hb), hb.len, src->body, src->body_len);
	m->timestamp = src->timestamp;
	m->expires = src->expires;
	m->flags |= src->flags & (MSG_PERSISTENT | MSG_RECOVERED);
	sbuf_fini(&hb);
	return m;
}

void msg_unref(struct msg *m)
{
	if (!m)
		return;
	assert(m->refs > 0);
	if (--m->refs)
		return;
	live_count--;
	live_bytes -= sizeof *m + m->dest_len + 1 + m->hdrs_len + 1 + m->body_len + 1;
	free(m->hdrs_old[0]);
	free(m->hdrs_old[1]);
	free(m->wire);
	free(m);
}

void msg_unref_cb(const void *data, size_t len, void *arg)
{
	(void)data;
	(void)len;
	msg_unref(arg);
}

/* Re-encodes the 1.2 block for an older reader. 1.1 has no \r escape, so
 * a carriage return travels as is. 1.0 has no escapes at all: \\ and \c
 * become their characters, while \n and \r stay escaped, since a 1.0
 * header cannot carry a line break. */
static char *reencode(const char *src, size_t len, enum stomp_version v, uint32_t *outlen)
{
	char *out = xmalloc(len + 1), *w = out;
	for (size_t i = 0; i < len; i++) {
		if (src[i] == '\\' && i + 1 < len) {
			char e = src[i + 1];
			if (e == 'r' && v == STOMP_1_1) {
				*w++ = '\r';
				i++;
				continue;
			}
			if (v == STOMP_1_0 && (e == '\\' || e == 'c')) {
				*w++ = e == 'c' ? ':' : '\\';
				i++;
				continue;
			}
			*w++ = src[i++];
		}
		*w++ = src[i];
	}
	*outlen = (uint32_t)(w - out);
	return out;
}

const char *msg_hdrs_for(struct msg *m, enum stomp_version version, size_t *len)
{
	int k;
	if (version >= STOMP_1_2 ||
	    !(m->flags & (version == STOMP_1_0 ? MSG_HDR_HAS_ESC : MSG_HDR_HAS_CR))) {
		*len = m->hdrs_len;
		return m->hdrs;
	}
	k = version == STOMP_1_0 ? 0 : 1;
	if (!m->hdrs_old[k])
		m->hdrs_old[k] = reencode(m->hdrs, m->hdrs_len, version, &m->hdrs_old_len[k]);
	*len = m->hdrs_old_len[k];
	return m->hdrs_old[k];
}

const char *msg_header(const struct msg *m, const char *name, char *buf, size_t buflen)
{
	const char *p = m->hdrs, *end = m->hdrs + m->hdrs_len;
	struct line l;
	size_t want = strlen(name);
	while (next_line(&p, end, &l)) {
		char nb[256];
		size_t n = MIN(l.nlen, sizeof nb - 1);
		long dn;
		memcpy(nb, l.name, n);
		nb[n] = 0;
		dn = frame_unescape(nb, n, STOMP_1_2);
		if (dn < 0 || (size_t)dn != want || memcmp(nb, name, want) != 0)
			continue;
		n = MIN(l.vlen, buflen - 1);
		memcpy(buf, l.value, n);
		buf[n] = 0;
		dn = frame_unescape(buf, n, STOMP_1_2);
		if (dn >= 0)
			buf[dn] = 0;
		return buf;
	}
	return NULL;
}

const char *msg_header_raw(const struct msg *m, const char *name, size_t nlen, size_t *vlen)
{
	const char *p = m->hdrs, *end = m->hdrs + m->hdrs_len;
	struct line l;
	char nb[256];
	while (next_line(&p, end, &l)) {
		if (!(m->flags & MSG_HDR_HAS_ESC)) {
			if (l.nlen != nlen || memcmp(l.name, name, nlen) != 0)
				continue;
		} else {
			size_t n = MIN(l.nlen, sizeof nb - 1);
			long dn;
			memcpy(nb, l.name, n);
			dn = frame_unescape(nb, n, STOMP_1_2);
			if (dn < 0 || (size_t)dn != nlen || memcmp(nb, name, nlen) != 0)
				continue;
		}
		*vlen = l.vlen;
		return l.value;
	}
	return NULL;
}

const char *msg_group(const struct msg *m, char *buf, size_t buflen)
{
	if (!(m->flags & MSG_GROUPED))
		return NULL;
	for (size_t i = 0; i < ARRAY_LEN(group_headers); i++) {
		const char *v = msg_header(m, group_headers[i], buf, buflen);
		if (v && *v)
			return v;
	}
	return NULL;
}

static void put32(char **w, uint32_t v) { memcpy(*w, &v, 4); *w += 4; }
static void put64(char **w, uint64_t v) { memcpy(*w, &v, 8); *w += 8; }

void *msg_encode(const struct msg *m, size_t *len)
{
	size_t n = 4 + m->dest_len + 4 + m->hdrs_len + 8 + 8 + 4 + m->body_len;
	char *buf = xmalloc(n), *w = buf;
	put32(&w, m->dest_len);
	memcpy(w, m->dest, m->dest_len);
	w += m->dest_len;
	put32(&w, m->hdrs_len);
	memcpy(w, m->hdrs, m->hdrs_len);
	w += m->hdrs_len;
	put64(&w, m->timestamp);
	put64(&w, m->expires);
	put32(&w, m->flags & (MSG_PERSISTENT | MSG_DEAD_LETTER));
	memcpy(w, m->body, m->body_len);
	*len = n;
	return buf;
}

struct msg *msg_decode(uint64_t id, const void *payload, size_t len)
{
	const char *p = payload, *end = p + len;
	uint32_t dlen, hlen, flags;
	uint64_t ts, exp;
	char dest[4096];
	const char *hdrs;
	struct msg *m;

	if (end - p < 4)
		return NULL;
	memcpy(&dlen, p, 4);
	p += 4;
	if (dlen >= sizeof dest || (size_t)(end - p) < dlen + 4)
		return NULL;
	memcpy(dest, p, dlen);
	dest[dlen] = 0;
	p += dlen;
	memcpy(&hlen, p, 4);
	p += 4;
	if ((size_t)(end - p) < (size_t)hlen + 20)
		return NULL;
	hdrs = p;
	p += hlen;
	memcpy(&ts, p, 8);
	memcpy(&exp, p + 8, 8);
	memcpy(&flags, p + 16, 4);
	p += 20;
	m = msg_from_parts(id, dest, hdrs, hlen, p, (size_t)(end - p));
	m->timestamp = ts;
	m->expires = exp;
	m->flags |= (flags & (MSG_PERSISTENT | MSG_DEAD_LETTER)) | MSG_JOURNALED;
	return m;
}

size_t msg_size(const struct msg *m)
{
	return sizeof *m + m->dest_len + m->hdrs_len + m->body_len + 3 + m->hdrs_old_len[0] + m->hdrs_old_len[1];
}

int msg_apply_asks(struct msg *m, struct msg_asks *a, bool edited, char *err, size_t errlen)
{
	const char *expires = a->expires, *ttl = a->ttl;
	uint64_t v;
	if (edited) {
		expires = msg_header(m, "expires", a->buf[0], sizeof a->buf[0]);
		if (!(ttl = msg_header(m, "expiration", a->buf[1], sizeof a->buf[1])))
			ttl = msg_header(m, "x-message-ttl", a->buf[1], sizeof a->buf[1]);
		a->persistent = msg_header(m, "persistent", a->buf[2], sizeof a->buf[2]);
	}
	if (expires && *expires) {
		if (!parse_u64(expires, 0, UINT64_MAX, &v)) {
			snprintf(err, errlen, "invalid expires '%s': expected milliseconds since the epoch", expires);
			return -1;
		}
		m->expires = v;
	}
	if (ttl && *ttl) {
		if (!parse_u64(ttl, 0, UINT32_MAX, &v)) {
			snprintf(err, errlen, "invalid time-to-live '%s': expected milliseconds", ttl);
			return -1;
		}
		if (!m->expires || m->timestamp + v < m->expires)
			m->expires = m->timestamp + v;
	}
	return 0;
}
