/* journal_recover.c: read every segment, cut what is torn or corrupt,
 * rebuild the index and hand the live state back.
 *
 * Speed matters here (a million messages in well under five seconds), so:
 * each segment is mapped whole with MAP_POPULATE, which the kernel fills
 * with large sequential reads; records are checked and applied straight
 * from the mapping; messages come from a pool, not one malloc each; and
 * payloads are handed back from the mappings without a copy. The
 * mappings live until the replay is done. */
#include "store/journal_int.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"

/* A segment while recovery reads it. */
struct rseg {
	const uint8_t *map;	/* the whole file; NULL when empty */
	size_t size;
	uint64_t valid;		/* bytes worth keeping */
	bool drop;		/* no valid header: the file goes */
};

struct pair {
	uint64_t id;
	uint32_t qid;
	const struct jmsg *m;
};

static int map_segment(struct journal *j, struct jseg *s, struct rseg *rs, char *err, size_t errlen)
{
	char path[PATH_MAX];
	struct stat sb;
	void *p;

	jseg_path(path, sizeof path, j->dir, s->no);
	if (fstat(s->fd, &sb) < 0) {
		snprintf(err, errlen, "cannot stat journal segment %s: %s", path, strerror(errno));
		return -1;
	}
	rs->size = (size_t)sb.st_size;
	s->written = s->synced = rs->size;
	if (!rs->size)
		return 0;
	p = mmap(NULL, rs->size, PROT_READ, MAP_PRIVATE | MAP_POPULATE, s->fd, 0);
	if (p == MAP_FAILED) {
		snprintf(err, errlen, "cannot map journal segment %s (%zu bytes): %s", path, rs->size,
		         strerror(errno));
		return -1;
	}
	rs->map = p;
	return 0;
}

/* A whole snapshot restates every live key, so whatever it did not restate
 * had been deleted before its segment began. This keeps META right even
 * when older segments reappear after a crash (their deletion not yet
 * durable) carrying PUTs whose DELs were in segments that did not. */
static void sweep_meta(struct journal *j)
{
	struct jmeta **stale = NULL;
	size_t n = 0, cap = 0, it = 0;
	void *v;

	while (strmap_next(&j->meta, &it, NULL, &v)) {
		struct jmeta *e = v;
		if (e->gen == j->meta_gen)
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 16;
			stale = xrealloc(stale, cap * sizeof *stale);
		}
		stale[n++] = e;
	}
	for (size_t i = 0; i < n; i++) {
		strmap_del(&j->meta, stale[i]->key);
		free(stale[i]);
	}
	free(stale);
}

static void cut(struct journal *j, struct jseg *s, struct rseg *rs, uint64_t off, bool last,
                const char *why, struct journal_recovery *st)
{
	uint64_t bytes = rs->size - off;
	uint64_t recs = jrec_count_dropped(rs->map + off, bytes);
	char name[32];

	snprintf(name, sizeof name, "%08" PRIu64 ".seg", s->no);
	rs->valid = off;
	st->dropped_bytes += bytes;
	st->dropped_records += recs;
	/* The tail of the newest segment is where a crash leaves a torn
	 * write; anywhere else it is damage, and worth more than a warning. */
	if (last)
		log_warn("journal %s: %s: cutting %" PRIu64 " bytes (%" PRIu64 " records) at offset %" PRIu64 ": %s",
		         j->dir, name, bytes, recs, off, why);
	else
		log_error("journal %s: %s is not the newest segment but has a bad tail: cutting %" PRIu64
		          " bytes (%" PRIu64 " records) at offset %" PRIu64 ": %s",
		          j->dir, name, bytes, recs, off, why);
}

static void scan_segment(struct journal *j, struct jseg *s, struct rseg *rs, bool last,
                         struct journal_recovery *st)
{
	uint64_t no, off = JSEG_HEADER_SIZE;
	uint32_t head_bytes;

	if (rs->size == 0) {
		rs->drop = true;	/* created, then a crash: nothing to lose */
		return;
	}
	if (!jseg_header_decode(rs->map, rs->size, &no, &head_bytes) || no != s->no) {
		rs->drop = true;
		st->dropped_bytes += rs->size;
		st->dropped_records++;
		if (last)
			log_warn("journal %s: %08" PRIu64 ".seg: no valid header in its %zu bytes (a torn "
			         "creation); removing it", j->dir, s->no, rs->size);
		else
			log_error("journal %s: %08" PRIu64 ".seg: no valid header in its %zu bytes; moving "
			          "it aside as %08" PRIu64 ".seg.bad", j->dir, s->no, rs->size, s->no);
		return;
	}
	st->segments++;
	j->meta_gen++;
	s->head_end = JSEG_HEADER_SIZE + (uint64_t)head_bytes;
	s->head_ok = false;
	for (;;) {
		const char *why = NULL;
		enum jrec_status rc;
		struct jrec r;

		if (off == s->head_end && !s->head_ok) {
			sweep_meta(j);
			s->head_ok = true;
		}
		if (off >= rs->size)
			break;
		rc = jrec_decode(rs->map + off, rs->size - off, &r, &why);
		if (rc == JREC_SHORT)
			why = "torn record";
		else if (rc == JREC_OK && off < s->head_end &&
		         (r.type != JREC_META_PUT || off + r.size > s->head_end))
			why = "the META snapshot holds something else";
		if (why) {
			cut(j, s, rs, off, last, why, st);
			return;
		}
		if (r.type != JREC_META_PUT && r.type != JREC_META_DEL && r.msg_id > st->max_msg_id)
			st->max_msg_id = r.msg_id;
		jidx_apply(j, &r, s->no, off, 0);
		st->records++;
		off += r.size;
	}
	rs->valid = off;
}

static int cmp_pair(const void *a, const void *b)
{
	const struct pair *x = a, *y = b;
	if (x->qid != y->qid)
		return x->qid < y->qid ? -1 : 1;
	return x->id < y->id ? -1 : x->id > y->id;
}

static void replay(struct journal *j, struct rseg *rsegs, const struct journal_replay *cb,
                   void *arg, struct journal_recovery *st)
{
	struct pair *pairs;
	size_t n = 0, it = 0;
	void *v;

	if (cb && cb->meta) {
		while (strmap_next(&j->meta, &it, NULL, &v)) {
			struct jmeta *e = v;
			cb->meta(arg, e->key, e->val, e->vlen);
		}
	}
	it = 0;
	while (u64map_next(&j->msgs, &it, NULL, &v))
		n += ((struct jmsg *)v)->nq;
	pairs = xmalloc((n ? n : 1) * sizeof *pairs);
	n = 0;
	it = 0;
	while (u64map_next(&j->msgs, &it, NULL, &v)) {
		const struct jmsg *m = v;
		for (uint32_t q = 0; q < m->nq; q++) {
			pairs[n].id = m->id;
			pairs[n].qid = q == 0 ? m->q0 : m->more[q - 1];
			pairs[n].m = m;
			n++;
		}
	}
	if (n)
		qsort(pairs, n, sizeof *pairs, cmp_pair);
	for (size_t i = 0; i < n; i++) {
		const struct jmsg *m = pairs[i].m;
		struct jseg *s = journal_seg_find(j, m->seg);
		const uint8_t *payload = rsegs[s - j->segs].map + m->off + JREC_PREFIX + 1 + JREC_QFIELDS;
		if (cb && cb->message)
			cb->message(arg, pairs[i].qid, m->id, payload, JMSG_PAYLOAD(m));
	}
	st->messages = n;
	free(pairs);
}

/* Cuts the files to what recovery kept and removes those it could not read. */
static void settle_files(struct journal *j, struct rseg *rsegs)
{
	size_t i = 0, k = 0;

	for (i = 0; i < j->nsegs; i++) {
		struct jseg *s = &j->segs[i];
		struct rseg *rs = &rsegs[i];
		char path[PATH_MAX], bad[PATH_MAX + 8];

		jseg_path(path, sizeof path, j->dir, s->no);
		if (rs->drop) {
			if (rs->size && i + 1 < j->nsegs) {
				snprintf(bad, sizeof bad, "%s.bad", path);
				if (rename(path, bad) < 0)
					log_error_sys("journal %s: cannot rename %s", j->dir, path);
			} else if (unlink(path) < 0) {
				log_error_sys("journal %s: cannot remove %s", j->dir, path);
			}
			close(s->fd);
			continue;
		}
		if (rs->valid < rs->size && ftruncate(s->fd, (off_t)rs->valid) < 0)
			log_error_sys("journal %s: cannot cut %s to %" PRIu64 " bytes; recovery will cut it again",
			              j->dir, path, rs->valid);
		s->written = s->synced = rs->valid;
		j->segs[k++] = *s;
	}
	j->nsegs = k;
}

int journal_recover(struct journal *j, const struct journal_replay *cb, void *arg,
                    struct journal_recovery *stats, char *err, size_t errlen)
{
	uint64_t t0 = mono_us();
	struct journal_recovery st = { 0 };
	struct rseg *rsegs;
	int rc = -1;
	char b1[32];

	if (j->recovered) {
		snprintf(err, errlen, "journal %s: recovery already done", j->dir);
		return -1;
	}
	rsegs = xcalloc(j->nsegs + 1, sizeof *rsegs);
	for (size_t i = 0; i < j->nsegs; i++)
		if (map_segment(j, &j->segs[i], &rsegs[i], err, errlen) < 0)
			goto out;
	for (size_t i = 0; i < j->nsegs; i++)
		scan_segment(j, &j->segs[i], &rsegs[i], i + 1 == j->nsegs, &st);
	replay(j, rsegs, cb, arg, &st);
	for (size_t i = 0; i < j->nsegs; i++) {
		if (rsegs[i].map)
			munmap((void *)rsegs[i].map, rsegs[i].size);
		rsegs[i].map = NULL;
	}
	settle_files(j, rsegs);
	if (journal_start_active(j, err, errlen) < 0)
		goto out;
	st.seconds = (double)(mono_us() - t0) / 1e6;
	log_info("journal %s: recovered %" PRIu64 " queued messages (%" PRIu64 " stored, %s of payload) "
	         "from %" PRIu64 " records in %" PRIu64 " segments in %.3f s",
	         j->dir, st.messages, (uint64_t)j->msgs.count, fmt_bytes(j->live_payload, b1, sizeof b1),
	         st.records, st.segments, st.seconds);
	if (st.dropped_bytes)
		log_warn("journal %s: recovery dropped %" PRIu64 " bytes (%" PRIu64 " records) of torn or corrupt data",
		         j->dir, st.dropped_bytes, st.dropped_records);
	rc = 0;
out:
	for (size_t i = 0; i < j->nsegs; i++)
		if (rsegs[i].map)
			munmap((void *)rsegs[i].map, rsegs[i].size);
	free(rsegs);
	if (stats)
		*stats = st;
	return rc;
}
