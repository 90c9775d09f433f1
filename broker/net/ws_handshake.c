/* ws_handshake.c: the WebSocket opening handshake. See ws_handshake.h. */
#include "net/ws_handshake.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>

/* RFC 6455 section 1.3: the GUID every server appends to the key. */
static const char ws_guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/* The subprotocols we speak, lowest first: a later entry wins. */
static const char *const stomp_protocols[] = { "v10.stomp", "v11.stomp", "v12.stomp" };

static enum ws_hs_status refuse(struct ws_hs_request *req, int status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static enum ws_hs_status refuse(struct ws_hs_request *req, int status, const char *fmt, ...)
{
	va_list ap;
	req->status = status;
	va_start(ap, fmt);
	vsnprintf(req->error, sizeof req->error, fmt, ap);
	va_end(ap);
	return WS_HS_ERROR;
}

/* Printable for an error message: control bytes become '?', and a long
 * value is cut, so a client cannot put odd text into our replies or logs. */
static void quote(char *dst, size_t dlen, const char *s, size_t n)
{
	size_t i, j = 0;
	for (i = 0; i < n && j + 4 < dlen; i++)
		dst[j++] = (s[i] >= 0x20 && s[i] < 0x7f) ? s[i] : '?';
	if (i < n && j + 3 < dlen) {
		memcpy(dst + j, "...", 3);
		j += 3;
	}
	dst[j] = 0;
}

static bool is_tchar(unsigned char c)
{
	/* RFC 9110 token characters */
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       (c && strchr("!#$%&'*+-.^_`|~", c));
}

static bool name_is(const char *name, size_t n, const char *want)
{
	return strlen(want) == n && strncasecmp(name, want, n) == 0;
}

/* Calls fn on each comma-separated element of a header value, trimmed of
 * blanks; empty elements are skipped, as RFC 9110 lists allow. */
static void each_element(const char *v, size_t n, void (*fn)(const char *, size_t, void *), void *arg)
{
	size_t i = 0;
	while (i < n) {
		size_t start, end;
		while (i < n && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
			i++;
		start = i;
		while (i < n && v[i] != ',')
			i++;
		end = i;
		while (end > start && (v[end - 1] == ' ' || v[end - 1] == '\t'))
			end--;
		if (end > start)
			fn(v + start, end - start, arg);
	}
}

struct token_search {
	const char *want;
	bool found;
};

static void match_token(const char *s, size_t n, void *arg)
{
	struct token_search *t = arg;
	if (name_is(s, n, t->want))
		t->found = true;
}

static void pick_protocol(const char *s, size_t n, void *arg)
{
	int *best = arg;
	/* Subprotocol names are compared exactly: the client must see its
	 * own spelling echoed back, or a browser fails the connection. */
	for (int i = 0; i < (int)(sizeof stomp_protocols / sizeof *stomp_protocols); i++)
		if (strlen(stomp_protocols[i]) == n && memcmp(stomp_protocols[i], s, n) == 0 && i > *best)
			*best = i;
}

static bool valid_key(const char *v, size_t n)
{
	/* 16 random bytes in base64: 22 characters and "==" */
	if (n != 24 || v[22] != '=' || v[23] != '=')
		return false;
	for (size_t i = 0; i < 22; i++) {
		unsigned char c = (unsigned char)v[i];
		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' || c == '/'))
			return false;
	}
	return true;
}

/* The end of the header block: the offset just past the blank line, or 0.
 * Bare LF line ends are accepted, as RFC 9112 allows a recipient to. */
static size_t find_end(const char *buf, size_t len)
{
	for (size_t i = 0; i + 1 < len; i++) {
		if (buf[i] != '\n')
			continue;
		if (buf[i + 1] == '\n')
			return i + 2;
		if (buf[i + 1] == '\r' && i + 2 < len && buf[i + 2] == '\n')
			return i + 3;
	}
	return 0;
}

enum ws_hs_status ws_handshake_parse(const char *buf, size_t len, size_t max, struct ws_hs_request *req)
{
	size_t end, pos, line_end;
	const char *sp1, *sp2, *line;
	size_t line_len;
	char shown[80];
	bool have_host = false, have_key = false, version_13 = false, have_version = false;
	struct token_search upgrade = { "websocket", false }, connection = { "upgrade", false };
	int best = -1;

	memset(req, 0, sizeof *req);
	end = find_end(buf, len < max ? len : max);
	if (!end) {
		if (len >= max)
			return refuse(req, 431, "handshake too large: no end of the request headers within %zu bytes "
			              "(limit %zu, option ws_max_handshake)", max, max);
		return WS_HS_NEED_MORE;
	}
	req->length = end;
	for (size_t i = 0; i < end; i++) {
		unsigned char c = (unsigned char)buf[i];
		if ((c < 0x20 && c != '\r' && c != '\n' && c != '\t') || c == 0x7f)
			return refuse(req, 400, "control character 0x%02x in the request headers", c);
	}

	/* request line: GET SP request-target SP HTTP/1.1 */
	line_end = (size_t)((const char *)memchr(buf, '\n', end) - buf);
	line_len = line_end > 0 && buf[line_end - 1] == '\r' ? line_end - 1 : line_end;
	sp1 = memchr(buf, ' ', line_len);
	sp2 = sp1 ? memchr(sp1 + 1, ' ', line_len - (size_t)(sp1 + 1 - buf)) : NULL;
	if (!sp1 || !sp2) {
		quote(shown, sizeof shown, buf, line_len);
		return refuse(req, 400, "not an HTTP request line: '%s' (this port speaks STOMP over WebSocket)", shown);
	}
	if ((size_t)(sp1 - buf) != 3 || memcmp(buf, "GET", 3) != 0) {
		quote(shown, sizeof shown, buf, (size_t)(sp1 - buf));
		return refuse(req, 405, "method %s not allowed: a WebSocket opens with GET", shown);
	}
	{
		const char *ver = sp2 + 1;
		size_t vlen = line_len - (size_t)(ver - buf);
		if (vlen != 8 || memcmp(ver, "HTTP/1.", 7) != 0 || ver[7] < '1' || ver[7] > '9') {
			quote(shown, sizeof shown, ver, vlen);
			return refuse(req, 400, "HTTP version '%s': a WebSocket needs HTTP/1.1", shown);
		}
	}
	if (sp2 == sp1 + 1 || sp1[1] != '/')
		return refuse(req, 400, "request-target must be a path starting with '/'");
	quote(req->path, sizeof req->path, sp1 + 1, (size_t)(sp2 - sp1 - 1));

	/* header lines up to the blank one */
	for (pos = line_end + 1; pos < end; pos = line_end + 1) {
		const char *colon, *v, *vend;
		line = buf + pos;
		line_end = (size_t)((const char *)memchr(line, '\n', end - pos) - buf);
		line_len = line_end - pos;
		if (line_len && line[line_len - 1] == '\r')
			line_len--;
		if (line_len == 0)
			break;
		if (line[0] == ' ' || line[0] == '\t')
			return refuse(req, 400, "folded header line (obsolete line folding is not accepted)");
		colon = memchr(line, ':', line_len);
		if (!colon || colon == line) {
			quote(shown, sizeof shown, line, line_len);
			return refuse(req, 400, "malformed header line '%s': expected 'Name: value'", shown);
		}
		for (const char *p = line; p < colon; p++)
			if (!is_tchar((unsigned char)*p)) {
				quote(shown, sizeof shown, line, (size_t)(colon - line));
				return refuse(req, 400, "invalid header name '%s'", shown);
			}
		v = colon + 1;
		vend = line + line_len;
		while (v < vend && (*v == ' ' || *v == '\t'))
			v++;
		while (vend > v && (vend[-1] == ' ' || vend[-1] == '\t'))
			vend--;
#define IS(n) name_is(line, (size_t)(colon - line), n)
		if (IS("Host")) {
			if (have_host)
				return refuse(req, 400, "more than one Host header");
			have_host = true;
		} else if (IS("Upgrade")) {
			each_element(v, (size_t)(vend - v), match_token, &upgrade);
		} else if (IS("Connection")) {
			each_element(v, (size_t)(vend - v), match_token, &connection);
		} else if (IS("Sec-WebSocket-Key")) {
			if (have_key)
				return refuse(req, 400, "more than one Sec-WebSocket-Key header");
			if (!valid_key(v, (size_t)(vend - v))) {
				quote(shown, sizeof shown, v, (size_t)(vend - v));
				return refuse(req, 400, "invalid Sec-WebSocket-Key '%s': expected 16 bytes in base64", shown);
			}
			memcpy(req->key, v, 24);
			have_key = true;
		} else if (IS("Sec-WebSocket-Version")) {
			have_version = true;
			if (vend - v == 2 && memcmp(v, "13", 2) == 0)
				version_13 = true;
		} else if (IS("Sec-WebSocket-Protocol")) {
			each_element(v, (size_t)(vend - v), pick_protocol, &best);
		} else if (IS("Origin")) {
			size_t n = (size_t)(vend - v);
			if (req->has_origin)
				return refuse(req, 400, "more than one Origin header");
			req->has_origin = true;
			if (n >= sizeof req->origin)
				req->origin_too_long = true;
			else
				memcpy(req->origin, v, n);
		}
#undef IS
	}
	if (!have_host)
		return refuse(req, 400, "no Host header");
	if (!upgrade.found || !connection.found)
		return refuse(req, 426, "not a WebSocket upgrade request: it needs 'Upgrade: websocket' and "
		              "'Connection: Upgrade' (this port speaks STOMP over WebSocket)");
	if (!have_version || !version_13)
		return refuse(req, 426, "%s: this server speaks WebSocket version 13",
		              have_version ? "unsupported Sec-WebSocket-Version" : "no Sec-WebSocket-Version header");
	if (!have_key)
		return refuse(req, 400, "no Sec-WebSocket-Key header");
	if (best >= 0)
		snprintf(req->protocol, sizeof req->protocol, "%s", stomp_protocols[best]);
	return WS_HS_OK;
}

bool ws_origin_allowed(const char *list, const struct ws_hs_request *req)
{
	const char *p = list;
	if (!list || !*list || !req->has_origin)
		return true;
	while (*p) {
		const char *start, *end;
		while (*p == ' ' || *p == '\t' || *p == ',')
			p++;
		start = p;
		while (*p && *p != ',')
			p++;
		end = p;
		while (end > start && (end[-1] == ' ' || end[-1] == '\t'))
			end--;
		if (end - start == 1 && *start == '*')
			return true;
		if (end > start && !req->origin_too_long && name_is(start, (size_t)(end - start), req->origin) &&
		    strlen(req->origin) == (size_t)(end - start))
			return true;
	}
	return false;
}

void ws_handshake_accept(const char *key, char out[29])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	char in[24 + sizeof ws_guid];
	size_t klen = strnlen(key, 24);
	memcpy(in, key, klen);
	memcpy(in + klen, ws_guid, sizeof ws_guid - 1);
	EVP_Digest(in, klen + sizeof ws_guid - 1, md, &mdlen, EVP_sha1(), NULL);
	EVP_EncodeBlock((unsigned char *)out, md, (int)mdlen);	/* 20 bytes: 28 characters and a NUL */
}

size_t ws_handshake_response(const struct ws_hs_request *req, char *buf, size_t len)
{
	char accept[29];
	int n;
	ws_handshake_accept(req->key, accept);
	n = snprintf(buf, len,
	             "HTTP/1.1 101 Switching Protocols\r\n"
	             "Upgrade: websocket\r\n"
	             "Connection: Upgrade\r\n"
	             "Sec-WebSocket-Accept: %s\r\n"
	             "%s%s%s"
	             "\r\n",
	             accept, req->protocol[0] ? "Sec-WebSocket-Protocol: " : "", req->protocol,
	             req->protocol[0] ? "\r\n" : "");
	return n < 0 ? 0 : (size_t)n < len ? (size_t)n : len - 1;
}

static const char *reason_phrase(int status)
{
	switch (status) {
	case 400: return "Bad Request";
	case 403: return "Forbidden";
	case 405: return "Method Not Allowed";
	case 408: return "Request Timeout";
	case 426: return "Upgrade Required";
	case 431: return "Request Header Fields Too Large";
	case 503: return "Service Unavailable";
	default: return "Error";
	}
}

size_t ws_handshake_refusal(int status, const char *text, char *buf, size_t len)
{
	int n = snprintf(buf, len,
	                 "HTTP/1.1 %d %s\r\n"
	                 "Content-Type: text/plain; charset=utf-8\r\n"
	                 "Content-Length: %zu\r\n"
	                 "Connection: close\r\n"
	                 "%s%s"
	                 "\r\n"
	                 "%s\n",
	                 status, reason_phrase(status), strlen(text) + 1,
	                 status == 426 ? "Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n" : "",
	                 status == 405 ? "Allow: GET\r\n" : "", text);
	return n < 0 ? 0 : (size_t)n < len ? (size_t)n : len - 1;
}
