/* journal_record.c: the bytes of records and segment headers.
 *
 * Everything is little-endian and unaligned. A record is
 *
 *   u32 length   bytes from type to the end of the payload
 *   u32 crc      CRC-32C of those bytes
 *   u8  type     then the type's fields:
 *     MESSAGE   u32 qid, u64 msg_id, payload (the rest)
 *     ENQUEUE   u32 qid, u64 msg_id
 *     REMOVE    u32 qid, u64 msg_id
 *     META_PUT  u16 key length, key, value (the rest)
 *     META_DEL  u16 key length, key
 *
 * docs/journal.md has the same in a table. */
#include "store/journal_int.h"

#include <endian.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "store/crc32c.h"

static const uint8_t seg_magic[8] = { 'M', 'Q', 'J', 'R', 'N', 'L', 0x1a, '\n' };

static uint16_t get16(const uint8_t *p)
{
	uint16_t v;
	memcpy(&v, p, 2);
	return le16toh(v);
}

static uint32_t get32(const uint8_t *p)
{
	uint32_t v;
	memcpy(&v, p, 4);
	return le32toh(v);
}

static uint64_t get64(const uint8_t *p)
{
	uint64_t v;
	memcpy(&v, p, 8);
	return le64toh(v);
}

static void put16(uint8_t *p, uint16_t v)
{
	v = htole16(v);
	memcpy(p, &v, 2);
}

static void put32(uint8_t *p, uint32_t v)
{
	v = htole32(v);
	memcpy(p, &v, 4);
}

static void put64(uint8_t *p, uint64_t v)
{
	v = htole64(v);
	memcpy(p, &v, 8);
}

static bool has_queue_fields(enum jrec_type t)
{
	return t == JREC_MESSAGE || t == JREC_ENQUEUE || t == JREC_REMOVE;
}

size_t jrec_size(const struct jrec *r)
{
	size_t n = JREC_PREFIX + 1;
	switch (r->type) {
	case JREC_MESSAGE:
		return n + JREC_QFIELDS + r->vlen;
	case JREC_ENQUEUE:
	case JREC_REMOVE:
		return n + JREC_QFIELDS;
	case JREC_META_PUT:
		return n + 2 + r->klen + r->vlen;
	case JREC_META_DEL:
		return n + 2 + r->klen;
	}
	return 0;
}

void jrec_encode(struct sbuf *b, const struct jrec *r)
{
	uint8_t head[JREC_PREFIX + 1 + JREC_QFIELDS];
	size_t size = jrec_size(r), start = b->len, n = JREC_PREFIX + 1;
	uint32_t crc;

	put32(head, (uint32_t)(size - JREC_PREFIX));
	put32(head + 4, 0);	/* filled in below, once the body is in place */
	head[8] = (uint8_t)r->type;
	if (has_queue_fields(r->type)) {
		put32(head + n, r->qid);
		put64(head + n + 4, r->msg_id);
		n += JREC_QFIELDS;
	} else {
		put16(head + n, (uint16_t)r->klen);
		n += 2;
	}
	sbuf_add(b, head, n);
	if (r->type == JREC_META_PUT || r->type == JREC_META_DEL)
		sbuf_add(b, r->key, r->klen);
	if ((r->type == JREC_MESSAGE || r->type == JREC_META_PUT) && r->vlen)
		sbuf_add(b, r->val, r->vlen);
	crc = crc32c(0, b->buf + start + JREC_PREFIX, size - JREC_PREFIX);
	put32((uint8_t *)b->buf + start + 4, crc);
}

enum jrec_status jrec_decode(const void *p, size_t avail, struct jrec *r, const char **why)
{
	const uint8_t *b = p;
	const char *dummy;
	uint32_t len;

	if (!why)
		why = &dummy;
	if (avail < JREC_PREFIX)
		return JREC_SHORT;
	len = get32(b);
	if (len == 0 || len > JREC_MAX_BODY) {
		/* A zeroed tail lands here: zero is never a valid length. */
		*why = "impossible record length";
		return JREC_BAD;
	}
	if (len > avail - JREC_PREFIX)
		return JREC_SHORT;
	if (crc32c(0, b + JREC_PREFIX, len) != get32(b + 4)) {
		*why = "checksum mismatch";
		return JREC_BAD;
	}
	memset(r, 0, sizeof *r);
	r->type = b[8];
	r->size = JREC_PREFIX + len;
	b += JREC_PREFIX + 1;
	len--;
	switch (r->type) {
	case JREC_MESSAGE:
	case JREC_ENQUEUE:
	case JREC_REMOVE:
		if (len < JREC_QFIELDS || (r->type != JREC_MESSAGE && len != JREC_QFIELDS)) {
			*why = "wrong length for its type";
			return JREC_BAD;
		}
		r->qid = get32(b);
		r->msg_id = get64(b + 4);
		r->val = b + JREC_QFIELDS;
		r->vlen = len - JREC_QFIELDS;
		return JREC_OK;
	case JREC_META_PUT:
	case JREC_META_DEL:
		if (len < 2 || (r->klen = get16(b)) == 0 || r->klen > len - 2 ||
		    (r->type == JREC_META_DEL && r->klen != len - 2)) {
			*why = "wrong key length";
			return JREC_BAD;
		}
		r->key = (const char *)b + 2;
		if (memchr(r->key, 0, r->klen)) {
			*why = "NUL in a META key";
			return JREC_BAD;
		}
		r->val = b + 2 + r->klen;
		r->vlen = len - 2 - r->klen;
		return JREC_OK;
	}
	*why = "unknown record type";
	return JREC_BAD;
}

uint64_t jrec_count_dropped(const void *p, size_t len)
{
	const uint8_t *b = p;
	uint64_t n = 0;
	size_t off = 0;

	/* Follow the length fields as far as they stay plausible: a torn
	 * record counts once, a corrupt one followed by good ones counts all
	 * of them. The checksums are not checked; this is an estimate for the
	 * log, never used to keep anything. */
	while (off < len) {
		uint32_t l;
		n++;
		if (len - off < JREC_PREFIX)
			break;
		l = get32(b + off);
		if (l == 0 || l > JREC_MAX_BODY || l > len - off - JREC_PREFIX)
			break;
		off += JREC_PREFIX + l;
	}
	return n;
}

uint64_t jrec_count_skipped(const void *p, size_t len)
{
	const uint8_t *b = p;
	uint64_t n = 0;
	size_t off = 0;

	while (len - off >= JREC_PREFIX) {
		uint32_t l = get32(b + off);
		if (l == 0 || l > len - off - JREC_PREFIX)
			return 1;
		off += JREC_PREFIX + l;
		n++;
		if (off == len)
			return n;
	}
	return 1;
}

/* Whether a record could start at b, judged without its checksum. */
static bool plausible(const uint8_t *b, size_t avail)
{
	uint32_t len;
	uint16_t klen;

	if (avail < JREC_PREFIX + 1)
		return false;
	len = get32(b);
	if (len == 0 || len > JREC_MAX_BODY || len > avail - JREC_PREFIX)
		return false;
	switch (b[8]) {
	case JREC_MESSAGE:
		return len >= 1 + JREC_QFIELDS;
	case JREC_ENQUEUE:
	case JREC_REMOVE:
		return len == 1 + JREC_QFIELDS;
	case JREC_META_PUT:
	case JREC_META_DEL:
		if (len < 3 || avail < JREC_PREFIX + 3)
			return false;
		klen = get16(b + 9);
		return klen && (b[8] == JREC_META_DEL ? klen == len - 3 : klen <= len - 3);
	}
	return false;
}

/* A record that runs past the end: what a torn tail looks like. */
static bool runs_past_end(const uint8_t *b, size_t avail)
{
	uint32_t len;
	if (avail < JREC_PREFIX)
		return true;
	len = get32(b);
	return len && len <= JREC_MAX_BODY && len > avail - JREC_PREFIX;
}

/* Decodes with the checksum charged to the budget. */
static enum jrec_status checked(const uint8_t *b, size_t avail, uint64_t *budget)
{
	struct jrec r;
	uint64_t cost = avail >= JREC_PREFIX ? get32(b) : 0;

	if (cost > *budget) {
		*budget = 0;
		return JREC_BAD;
	}
	*budget -= cost;
	return jrec_decode(b, avail, &r, NULL);
}

size_t jrec_resync(const void *p, size_t len, size_t off, uint64_t *budget)
{
	const uint8_t *b = p;

	if (off >= len)
		return len;
	/* Damage in a body or a checksum leaves the length right: the next
	 * record is where it says, and its own checksum proves it. Looking
	 * there first also keeps the search out of the damaged payload,
	 * which could carry bytes that look like records. */
	if (len - off >= JREC_PREFIX) {
		uint64_t l = get32(b + off);
		if (l && l <= JREC_MAX_BODY && off + JREC_PREFIX + l < len &&
		    plausible(b + off + JREC_PREFIX + l, len - off - JREC_PREFIX - l) &&
		    checked(b + off + JREC_PREFIX + l, len - off - JREC_PREFIX - l, budget) == JREC_OK)
			return off + JREC_PREFIX + (size_t)l;
	}
	for (size_t x = off + 1; x + JREC_PREFIX < len && *budget; x++) {
		size_t y;
		if (!plausible(b + x, len - x))
			continue;
		y = x + JREC_PREFIX + get32(b + x);
		/* The record after the candidate must be plausible before any
		 * checksum is computed: most false starts end here. */
		if (y < len && !plausible(b + y, len - y) && !runs_past_end(b + y, len - y))
			continue;
		if (checked(b + x, len - x, budget) != JREC_OK)
			continue;
		if (y == len || runs_past_end(b + y, len - y) || checked(b + y, len - y, budget) == JREC_OK)
			return x;
	}
	return len;
}

void jseg_header_encode(void *out, uint64_t segno, uint32_t head_bytes)
{
	uint8_t *h = out;
	memcpy(h, seg_magic, 8);
	put32(h + 8, JSEG_VERSION);
	put32(h + 12, JSEG_HEADER_SIZE);
	put64(h + 16, segno);
	put32(h + 24, head_bytes);
	put32(h + 28, crc32c(0, h, 28));
}

bool jseg_header_decode(const void *p, size_t avail, uint64_t *segno, uint32_t *head_bytes)
{
	const uint8_t *h = p;
	if (avail < JSEG_HEADER_SIZE || memcmp(h, seg_magic, 8) != 0)
		return false;
	if (crc32c(0, h, 28) != get32(h + 28))
		return false;
	if (get32(h + 8) != JSEG_VERSION || get32(h + 12) != JSEG_HEADER_SIZE)
		return false;
	*segno = get64(h + 16);
	*head_bytes = get32(h + 24);
	return true;
}

void jseg_path(char *buf, size_t len, const char *dir, uint64_t segno)
{
	snprintf(buf, len, "%s/%08" PRIu64 ".seg", dir, segno);
}

bool jseg_parse_name(const char *name, uint64_t *segno)
{
	size_t n = strspn(name, "0123456789");
	char digits[24];
	if (n == 0 || n >= sizeof digits || strcmp(name + n, ".seg") != 0)
		return false;
	memcpy(digits, name, n);
	digits[n] = 0;
	return parse_u64(digits, 1, UINT64_MAX, segno);
}
