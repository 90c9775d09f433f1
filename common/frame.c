/* frame.c: STOMP frame parsing. See frame.h for the approach. */
#include "common/frame.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "common/util.h"

static const char *const cmd_names[CMD_COUNT] = {
	[CMD_UNKNOWN] = "UNKNOWN",
	[CMD_CONNECT] = "CONNECT",
	[CMD_STOMP] = "STOMP",
	[CMD_SEND] = "SEND",
	[CMD_SUBSCRIBE] = "SUBSCRIBE",
	[CMD_UNSUBSCRIBE] = "UNSUBSCRIBE",
	[CMD_ACK] = "ACK",
	[CMD_NACK] = "NACK",
	[CMD_BEGIN] = "BEGIN",
	[CMD_COMMIT] = "COMMIT",
	[CMD_ABORT] = "ABORT",
	[CMD_DISCONNECT] = "DISCONNECT",
	[CMD_CONNECTED] = "CONNECTED",
	[CMD_MESSAGE] = "MESSAGE",
	[CMD_RECEIPT] = "RECEIPT",
	[CMD_ERROR] = "ERROR",
};

const char *frame_cmd_name(enum frame_cmd cmd)
{
	return (unsigned)cmd < CMD_COUNT ? cmd_names[cmd] : "UNKNOWN";
}

enum frame_cmd frame_cmd_from(const char *s, size_t len)
{
	for (int c = 1; c < CMD_COUNT; c++)
		if (strlen(cmd_names[c]) == len && memcmp(cmd_names[c], s, len) == 0)
			return (enum frame_cmd)c;
	return CMD_UNKNOWN;
}

bool frame_cmd_raw_headers(enum frame_cmd cmd)
{
	return cmd == CMD_CONNECT || cmd == CMD_STOMP || cmd == CMD_CONNECTED;
}

/* The largest copy buffer kept between frames. */
#define WHOLE_KEPT (1024 * 1024)

void frame_init(struct frame *f) { memset(f, 0, sizeof *f); }

void frame_fini(struct frame *f)
{
	free(f->hdrs);
	free(f->whole);
	memset(f, 0, sizeof *f);
}

static enum frame_status fail(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static enum frame_status fail(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;
	if (err && errlen) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return FRAME_ERROR;
}

/* The command name as the peer wrote it, printable, for error text. */
static void describe_cmd(const unsigned char *p, size_t len, char *out, size_t outlen)
{
	size_t n = 0;
	for (size_t i = 0; i < len && n + 1 < outlen; i++)
		out[n++] = (p[i] >= 0x20 && p[i] < 0x7f) ? (char)p[i] : '?';
	out[n] = 0;
}

long frame_unescape(char *s, size_t len, enum stomp_version version)
{
	char *r = s, *w = s, *end = s + len;
	char *bs = memchr(s, '\\', len);
	if (!bs)
		return (long)len;	/* the common case: nothing to do */
	r = w = bs;
	while (r < end) {
		if (*r != '\\') {
			*w++ = *r++;
			continue;
		}
		if (r + 1 >= end) {
			if (version >= STOMP_1_2)
				return -1;
			*w++ = *r++;
			continue;
		}
		switch (r[1]) {
		case 'n': *w++ = '\n'; break;
		case 'c': *w++ = ':'; break;
		case '\\': *w++ = '\\'; break;
		case 'r':
			if (version >= STOMP_1_2) {
				*w++ = '\r';
				break;
			}
			/* not an escape before 1.2 */
			/* fall through */
		default:
			if (version >= STOMP_1_2)
				return -1;
			*w++ = r[0];
			*w++ = r[1];
		}
		r += 2;
	}
	*w = 0;
	return (long)(w - s);
}

size_t frame_escape(char *dst, const char *src, size_t len, enum stomp_version version)
{
	char *w = dst;
	if (version < STOMP_1_1) {
		memcpy(dst, src, len);
		return len;
	}
	for (size_t i = 0; i < len; i++) {
		switch (src[i]) {
		case '\\': *w++ = '\\'; *w++ = '\\'; break;
		case '\n': *w++ = '\\'; *w++ = 'n'; break;
		case ':': *w++ = '\\'; *w++ = 'c'; break;
		case '\r':
			if (version >= STOMP_1_2) {
				*w++ = '\\';
				*w++ = 'r';
				break;
			}
			*w++ = src[i];
			break;
		default: *w++ = src[i];
		}
	}
	return (size_t)(w - dst);
}

/* Drains heart-beat EOLs ("\n" or "\r\n") that precede a frame. */
static enum frame_status skip_eols(struct evbuffer *in, struct frame *f)
{
	for (;;) {
		size_t avail = evbuffer_get_length(in);
		unsigned char *p;
		if (!avail)
			return FRAME_NEED_MORE;
		p = evbuffer_pullup(in, avail < 2 ? (ssize_t)avail : 2);
		if (p[0] == '\n') {
			evbuffer_drain(in, 1);
			f->skipped_eols++;
			continue;
		}
		if (p[0] == '\r') {
			if (avail < 2)
				return FRAME_NEED_MORE;
			if (p[1] == '\n') {
				evbuffer_drain(in, 2);
				f->skipped_eols++;
				continue;
			}
		}
		return FRAME_OK;
	}
}

static bool parse_length(const unsigned char *p, size_t len, uint64_t *out)
{
	uint64_t v = 0;
	/* Some clients pad the value; the digits are what counts. */
	while (len && (*p == ' ' || *p == '\t')) {
		p++;
		len--;
	}
	while (len && (p[len - 1] == ' ' || p[len - 1] == '\t'))
		len--;
	if (!len || len > 19)
		return false;
	for (size_t i = 0; i < len; i++) {
		if (p[i] < '0' || p[i] > '9')
			return false;
		v = v * 10 + (uint64_t)(p[i] - '0');
	}
	*out = v;
	return true;
}

/* A command line cut short by a NUL byte: names what came before it. */
static enum frame_status bad_command_line(const unsigned char *p, size_t len,
                                          char *err, size_t errlen)
{
	char name[40];
	enum frame_cmd cmd;

	if (len && p[len - 1] == '\r')
		len--;
	cmd = frame_cmd_from((const char *)p, len);
	if (cmd != CMD_UNKNOWN)
		return fail(err, errlen, "%s command line ends in a NUL byte instead of an end of line",
		            frame_cmd_name(cmd));
	describe_cmd(p, len, name, sizeof name);
	return fail(err, errlen, "unknown command '%s'%s (ended by a NUL byte, not an end of line)",
	            name, len >= sizeof name ? "..." : "");
}

/* Scans the header block line by line without modifying it. */
static enum frame_status scan_headers(struct evbuffer *in, struct frame_scan *scan,
                                      struct frame *f, const struct frame_limits *lim,
                                      char *err, size_t errlen)
{
	size_t avail = evbuffer_get_length(in);
	/* The first chain is read in place; bytes are moved to make a line
	 * contiguous only when it runs past the chain's end. */
	size_t have = evbuffer_get_contiguous_space(in);
	unsigned char *p = evbuffer_pullup(in, (ssize_t)have);

	while (!scan->hdr_end) {
		size_t want = MIN(avail, scan->pos + lim->max_header_line + 2);
		unsigned char *nl = NULL;
		size_t line_len, end;

		if (have > scan->pos)
			nl = memchr(p + scan->pos, '\n', MIN(have, want) - scan->pos);
		if (!nl && have < want) {
			p = evbuffer_pullup(in, (ssize_t)want);
			have = want;
			nl = memchr(p + scan->pos, '\n', want - scan->pos);
		}

		if (scan->lines == 0) {
			/* A NUL ends a frame, never a command line: without this
			 * check garbage ending in NUL would wait for a newline
			 * that never comes. */
			size_t upto = nl ? (size_t)(nl - p) : want;
			const unsigned char *nul = NULL;
			/* Command lines are a few bytes: a loop, not a call, on
			 * every frame. */
			if (upto <= 16) {
				for (size_t i = 0; i < upto && !nul; i++)
					if (!p[i])
						nul = p + i;
			} else {
				nul = memchr(p, 0, upto);
			}
			if (nul)
				return bad_command_line(p, (size_t)(nul - p), err, errlen);
		}
		if (!nl) {
			line_len = want - scan->pos;
			if (line_len > lim->max_header_line + 1) {
				if (scan->lines == 0)
					return fail(err, errlen, "command line too long: more than %zu bytes without a newline",
					            lim->max_header_line);
				return fail(err, errlen, "header line too long: more than %zu bytes (limit %zu) in %s frame",
				            lim->max_header_line, lim->max_header_line, frame_cmd_name(scan->cmd));
			}
			return FRAME_NEED_MORE;
		}
		end = (size_t)(nl - p);
		line_len = end - scan->pos;
		if (line_len && p[end - 1] == '\r')
			line_len--;
		if (line_len > lim->max_header_line) {
			if (scan->lines == 0)
				return fail(err, errlen, "command line too long: %zu bytes (limit %zu)",
				            line_len, lim->max_header_line);
			return fail(err, errlen, "header line too long: %zu bytes (limit %zu) in %s frame",
			            line_len, lim->max_header_line, frame_cmd_name(scan->cmd));
		}
		if (scan->lines == 0) {
			scan->cmd = frame_cmd_from((const char *)p + scan->pos, line_len);
			if (scan->cmd == CMD_UNKNOWN) {
				char name[40];
				describe_cmd(p + scan->pos, line_len, name, sizeof name);
				return fail(err, errlen, "unknown command '%s'%s", name,
				            line_len >= sizeof name ? "..." : "");
			}
		} else if (line_len == 0) {
			/* A NUL before the body would cut a header value short
			 * without anyone noticing (destination:/queue/x<NUL>y). */
			const unsigned char *nul = memchr(p, 0, end);
			if (nul)
				return fail(err, errlen, "a header of the %s frame contains a NUL byte (at byte %zu)",
				            frame_cmd_name(scan->cmd), (size_t)(nul - p));
			scan->hdr_end = end + 1;
		} else {
			if (scan->lines > lim->max_headers)
				return fail(err, errlen, "too many headers: more than %u in %s frame",
				            lim->max_headers, frame_cmd_name(scan->cmd));
			if (!scan->has_length && line_len >= 15 &&
			    memcmp(p + scan->pos, "content-length:", 15) == 0) {
				if (!parse_length(p + scan->pos + 15, line_len - 15, &scan->content_length)) {
					char shown[32];
					describe_cmd(p + scan->pos + 15, line_len - 15, shown, sizeof shown);
					return fail(err, errlen, "invalid content-length '%s' in %s frame: expected a byte count",
					            shown, frame_cmd_name(scan->cmd));
				}
				scan->has_length = true;
			}
		}
		scan->lines++;
		scan->pos = end + 1;
	}
	(void)f;
	return FRAME_OK;
}

/* Finds where the body ends: by content-length, else at the first NUL. */
static enum frame_status find_body(struct evbuffer *in, struct frame_scan *scan,
                                   const struct frame_limits *lim, size_t *total,
                                   char *err, size_t errlen)
{
	size_t avail = evbuffer_get_length(in);
	const char *cmd = frame_cmd_name(scan->cmd);

	if (scan->has_length) {
		uint64_t cl = scan->content_length;
		/* The limit is the body's: a client that sends a body of
		 * exactly max_frame (RabbitMQ's STOMP tests send 16 MiB) is
		 * served; the header block has limits of its own. */
		if (cl > lim->max_frame)
			return fail(err, errlen, "frame too large: content-length %" PRIu64 " (limit %zu) in %s frame",
			            cl, lim->max_frame, cmd);
		if (avail < scan->hdr_end + cl + 1)
			return FRAME_NEED_MORE;
		*total = scan->hdr_end + (size_t)cl + 1;
		return FRAME_OK;
	}

	size_t start = MAX(scan->body_scan, scan->hdr_end);
	if (start < avail) {
		struct evbuffer_ptr from, found;
		evbuffer_ptr_set(in, &from, start, EVBUFFER_PTR_SET);
		found = evbuffer_search(in, "", 1, &from);	/* "" is one NUL byte */
		if (found.pos >= 0) {
			*total = (size_t)found.pos + 1;
			if (*total - 1 - scan->hdr_end > lim->max_frame)
				return fail(err, errlen, "frame too large: a body of %zu bytes (limit %zu) in %s frame",
				            *total - 1 - scan->hdr_end, lim->max_frame, cmd);
			return FRAME_OK;
		}
	}
	scan->body_scan = avail;
	if (avail - scan->hdr_end > lim->max_frame)
		return fail(err, errlen, "frame too large: no NUL within %zu bytes of body (limit %zu) in %s frame",
		            avail - scan->hdr_end, lim->max_frame, cmd);
	return FRAME_NEED_MORE;
}

static int classify(const char *name, size_t len)
{
	switch (len) {
	case 2: return memcmp(name, "id", 2) == 0 ? HDR_ID : -1;
	case 3: return memcmp(name, "ack", 3) == 0 ? HDR_ACK : -1;
	case 7:
		if (memcmp(name, "receipt", 7) == 0)
			return HDR_RECEIPT;
		return memcmp(name, "expires", 7) == 0 ? HDR_EXPIRES : -1;
	case 8: return memcmp(name, "reply-to", 8) == 0 ? HDR_REPLY_TO : -1;
	case 10:
		if (memcmp(name, "persistent", 10) == 0)
			return HDR_PERSISTENT;
		if (memcmp(name, "message-id", 10) == 0)
			return HDR_MESSAGE_ID;
		return memcmp(name, "expiration", 10) == 0 ? HDR_EXPIRATION : -1;
	case 11:
		if (memcmp(name, "destination", 11) == 0)
			return HDR_DESTINATION;
		return memcmp(name, "transaction", 11) == 0 ? HDR_TRANSACTION : -1;
	case 12: return memcmp(name, "subscription", 12) == 0 ? HDR_SUBSCRIPTION : -1;
	case 13: return memcmp(name, "x-message-ttl", 13) == 0 ? HDR_X_MESSAGE_TTL : -1;
	}
	return -1;
}

/* Decodes the complete, contiguous frame in place. */
static enum frame_status decode(unsigned char *p, struct frame_scan *scan, struct frame *f,
                                size_t total, enum stomp_version version,
                                char *err, size_t errlen)
{
	size_t pos, end;
	unsigned char *nl;
	bool raw = version < STOMP_1_1 || frame_cmd_raw_headers(scan->cmd);
	const char *cmd = frame_cmd_name(scan->cmd);

	f->cmd = scan->cmd;
	nl = memchr(p, '\n', scan->hdr_end);
	end = (size_t)(nl - p);
	describe_cmd(p, (end && p[end - 1] == '\r') ? end - 1 : end, f->cmd_name, sizeof f->cmd_name);
	f->nhdrs = 0;
	memset(f->known, 0, sizeof f->known);
	pos = end + 1;

	while (pos < scan->hdr_end) {
		size_t line_len;
		unsigned char *colon;
		struct frame_hdr *h;
		long n;

		nl = memchr(p + pos, '\n', scan->hdr_end - pos);
		end = (size_t)(nl - p);
		line_len = end - pos;
		if (line_len && p[end - 1] == '\r')
			line_len--;
		if (line_len == 0)
			break;	/* the blank line */
		colon = memchr(p + pos, ':', line_len);
		if (!colon || colon == p + pos) {
			char shown[48];
			describe_cmd(p + pos, line_len, shown, sizeof shown);
			return fail(err, errlen, "malformed header line '%s%s' in %s frame: expected name:value",
			            shown, line_len >= sizeof shown ? "..." : "", cmd);
		}
		if (f->nhdrs == f->hdr_cap) {
			f->hdr_cap = f->hdr_cap ? f->hdr_cap * 2 : 16;
			f->hdrs = xrealloc(f->hdrs, f->hdr_cap * sizeof *f->hdrs);
		}
		h = &f->hdrs[f->nhdrs];
		h->name = (char *)p + pos;
		h->name_len = (uint32_t)(colon - (p + pos));
		h->value = (char *)colon + 1;
		h->value_len = (uint32_t)(line_len - h->name_len - 1);
		h->name[h->name_len] = 0;
		h->value[h->value_len] = 0;
		if (!raw) {
			n = frame_unescape(h->name, h->name_len, version);
			if (n < 0)
				return fail(err, errlen, "undefined escape sequence in header name '%s' of %s frame",
				            h->name, cmd);
			h->name_len = (uint32_t)n;
			n = frame_unescape(h->value, h->value_len, version);
			if (n < 0)
				return fail(err, errlen, "undefined escape sequence in the value of header '%s' of %s frame",
				            h->name, cmd);
			h->value_len = (uint32_t)n;
		}
		{
			int k = classify(h->name, h->name_len);
			if (k >= 0 && !f->known[k])
				f->known[k] = h->value;
		}
		f->nhdrs++;
		pos = end + 1;
	}
	f->body = (char *)p + scan->hdr_end;
	f->body_len = total - scan->hdr_end - 1;
	f->has_content_length = scan->has_length;
	f->total = total;
	if (p[total - 1] != 0)
		return fail(err, errlen, "%s frame body is not followed by a NUL byte where content-length %zu ends it",
		            cmd, f->body_len);
	return FRAME_OK;
}

enum frame_status frame_parse(struct evbuffer *in, struct frame_scan *scan,
                              struct frame *f, const struct frame_limits *lim,
                              enum stomp_version version, char *err, size_t errlen)
{
	enum frame_status st;
	size_t total = 0;
	unsigned char *p;

	f->skipped_eols = 0;
	if (scan->pos == 0) {
		st = skip_eols(in, f);
		if (st != FRAME_OK)
			return st;
	}
	st = scan_headers(in, scan, f, lim, err, errlen);
	if (st != FRAME_OK)
		return st;
	st = find_body(in, scan, lim, &total, err, errlen);
	if (st != FRAME_OK)
		return st;
	if (total <= evbuffer_get_contiguous_space(in)) {
		p = evbuffer_pullup(in, (ssize_t)total);	/* in place: no copy */
	} else {
		if (total > f->whole_cap) {
			free(f->whole);
			f->whole_cap = MAX(total, 64 * 1024);
			f->whole = xmalloc(f->whole_cap);
		}
		evbuffer_copyout(in, f->whole, total);
		p = (unsigned char *)f->whole;
	}
	return decode(p, scan, f, total, version, err, errlen);
}

void frame_consume(struct evbuffer *in, struct frame_scan *scan, struct frame *f)
{
	evbuffer_drain(in, f->total);
	if (f->whole_cap > WHOLE_KEPT && f->total > 0) {
		/* one huge frame must not pin its size for good */
		free(f->whole);
		f->whole = NULL;
		f->whole_cap = 0;
	}
	memset(scan, 0, sizeof *scan);
	f->total = 0;
	f->nhdrs = 0;
	memset(f->known, 0, sizeof f->known);
	f->body = NULL;
	f->body_len = 0;
}

const struct frame_hdr *frame_get_hdr(const struct frame *f, const char *name)
{
	size_t len = strlen(name);
	for (unsigned i = 0; i < f->nhdrs; i++)
		if (f->hdrs[i].name_len == len && memcmp(f->hdrs[i].name, name, len) == 0)
			return &f->hdrs[i];
	return NULL;
}

const char *frame_get(const struct frame *f, const char *name)
{
	const struct frame_hdr *h = frame_get_hdr(f, name);
	return h ? h->value : NULL;
}
