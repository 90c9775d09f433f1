/* journal_recover.c: read every segment, cut a torn tail, skip damage and
 * read on from the next valid record, rebuild the index and hand the live
 * state back; then set damaged files aside and rewrite them without the
 * damage (docs/journal.md, Recovery).
 *
 * Speed matters here (a million messages in well under five seconds), so:
 * each segment is mapped whole with MAP_POPULATE, which the kernel fills
 * with large sequential reads; records are checked and applied straight
 * from the mapping; messages come from a pool, not one malloc each; and
 * payloads are handed back from the mappings without a copy. The
 * mappings live until the files are settled: a rewrite copies from them. */
#include "store/journal_int.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"

/* A region recovery skipped in the middle of a segment. */
struct skip {
	uint64_t off, len;
};

/* A segment while recovery reads it. */
struct rseg {
	const uint8_t *map;	/* the whole file; NULL when empty */
	size_t size;
	uint64_t valid;		/* bytes worth keeping: a torn tail starts here */
	bool drop;		/* nothing readable: the file goes */
	bool aside;		/* ... set aside as .bad rather than removed */
	bool damaged;		/* rewritten without the damage, the original set aside */
	bool head_unknown;	/* its header or snapshot was damaged */
	uint32_t head_bytes;	/* from a valid header */
	struct skip *skips;	/* owned; in file order, all before `valid` */
	size_t nskips, skipcap;
	unsigned logged;	/* skip lines logged for it */
};

#define LOG_SKIPS 10		/* per segment; the summary line has the totals */

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

static bool all_zero(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i])
			return false;
	return true;
}

static void add_skip(struct rseg *rs, uint64_t off, uint64_t len)
{
	if (rs->nskips == rs->skipcap) {
		rs->skipcap = rs->skipcap ? rs->skipcap * 2 : 4;
		rs->skips = xrealloc(rs->skips, rs->skipcap * sizeof *rs->skips);
	}
	rs->skips[rs->nskips++] = (struct skip){ off, len };
}

/* Bad bytes at `off` with nothing valid after them. At the end of the
 * newest segment that is where a crash leaves a torn write: cut it, with a
 * warning. Anywhere else, or when the search for a valid record gave up,
 * it is damage. */
static void bad_tail(struct journal *j, struct jseg *s, struct rseg *rs, uint64_t off, bool last,
                     bool gave_up, const char *why, struct journal_recovery *st)
{
	uint64_t bytes = rs->size - off;
	uint64_t recs = jrec_count_dropped(rs->map + off, bytes);

	rs->valid = off;
	if (last && !gave_up) {
		st->dropped_bytes += bytes;
		st->dropped_records += recs;
		log_warn("journal %s: %08" PRIu64 ".seg: cutting a torn tail of %" PRIu64 " bytes (%" PRIu64
		         " record%s) at offset %" PRIu64 ": %s",
		         j->dir, s->no, bytes, recs, recs == 1 ? "" : "s", off, why);
		return;
	}
	rs->damaged = true;
	st->skipped_bytes += bytes;
	st->skipped_records += recs;
	log_error("journal %s: %08" PRIu64 ".seg: skipped %" PRIu64 " damaged bytes (%" PRIu64 " record%s) "
	          "at offset %" PRIu64 " to its end: %s%s",
	          j->dir, s->no, bytes, recs, recs == 1 ? "" : "s", off, why,
	          gave_up ? " (gave up looking for a valid record after it)" :
	                    last ? "" : " (not the newest segment, so not a torn write)");
}

/* Bad bytes from `off` up to the valid record at `next`: skipped. */
static void skip_damage(struct journal *j, struct jseg *s, struct rseg *rs, uint64_t off, uint64_t next,
                        const char *why, struct journal_recovery *st)
{
	uint64_t recs = jrec_count_skipped(rs->map + off, next - off);

	add_skip(rs, off, next - off);
	rs->damaged = true;
	st->skipped_bytes += next - off;
	st->skipped_records += recs;
	if (rs->logged++ < LOG_SKIPS)
		log_error("journal %s: %08" PRIu64 ".seg: skipped %" PRIu64 " damaged bytes (%" PRIu64 " record%s) "
		          "at offset %" PRIu64 ": %s; the next valid record is at offset %" PRIu64,
		          j->dir, s->no, next - off, recs, recs == 1 ? "" : "s", off, why, next);
}

static void scan_segment(struct journal *j, struct jseg *s, struct rseg *rs, bool last,
                         struct journal_recovery *st)
{
	uint64_t no, off = JSEG_HEADER_SIZE, budget = JREC_RESYNC_BUDGET, found = 0;
	uint32_t head_bytes = 0;
	bool snapshot;		/* a snapshot that may turn out whole */
	bool torn_ok;		/* a bad tail may be a torn write */
	bool header_bad = false;
	struct journal_recovery skipped_before;

	if (rs->size == 0) {
		rs->drop = true;	/* created, then a crash: nothing to lose */
		return;
	}
	if (!jseg_header_decode(rs->map, rs->size, &no, &head_bytes) || no != s->no) {
		if (last && (rs->size < JSEG_HEADER_SIZE || all_zero(rs->map, rs->size))) {
			rs->drop = true;
			st->dropped_bytes += rs->size;
			st->dropped_records++;
			log_warn("journal %s: %08" PRIu64 ".seg: no valid header in its %zu bytes (a torn "
			         "creation); removing it", j->dir, s->no, rs->size);
			return;
		}
		/* Damage, not a crash: the records after the header may be
		 * whole, so they are read, but its snapshot cannot be trusted. */
		rs->damaged = header_bad = true;
		head_bytes = JSEG_HEAD_UNKNOWN;
	}
	torn_ok = last && !header_bad;
	skipped_before = *st;
	rs->head_bytes = head_bytes;
	rs->head_unknown = head_bytes == JSEG_HEAD_UNKNOWN;
	snapshot = !rs->head_unknown;
	j->meta_gen++;
	s->head_end = JSEG_HEADER_SIZE + (snapshot ? (uint64_t)head_bytes : 0);
	s->head_ok = false;
	for (;;) {
		const char *why = NULL;
		enum jrec_status rc;
		struct jrec r;

		if (snapshot && off == s->head_end && !s->head_ok) {
			sweep_meta(j);
			s->head_ok = true;
		}
		if (off >= rs->size)
			break;
		rc = jrec_decode(rs->map + off, rs->size - off, &r, &why);
		if (rc == JREC_SHORT)
			why = "torn record";
		else if (rc == JREC_OK && snapshot && off < s->head_end &&
		         (r.type != JREC_META_PUT || off + r.size > s->head_end))
			why = "the META snapshot holds something else";
		if (why) {
			uint64_t next = jrec_resync(rs->map, rs->size, off, &budget);
			if (off < s->head_end) {
				/* A snapshot with a hole is not whole: it must not
				 * sweep away the keys the hole restated. */
				snapshot = false;
				rs->head_unknown = true;
			}
			if (next >= rs->size) {
				bad_tail(j, s, rs, off, torn_ok, budget == 0, why, st);
				break;
			}
			skip_damage(j, s, rs, off, next, why, st);
			off = next;
			continue;
		}
		if (r.type != JREC_META_PUT && r.type != JREC_META_DEL && r.msg_id > st->max_msg_id)
			st->max_msg_id = r.msg_id;
		jidx_apply(j, &r, s->no, off, 0);
		st->records++;
		found++;
		off += r.size;
	}
	if (off >= rs->size)
		rs->valid = rs->size;
	if (header_bad && !found) {
		/* No header and not one record: nothing here to keep. */
		rs->drop = rs->aside = true;
		st->skipped_bytes = skipped_before.skipped_bytes + rs->size;
		st->skipped_records = skipped_before.skipped_records + 1;
		log_error("journal %s: %08" PRIu64 ".seg: no valid header and no valid record in its %zu bytes; "
		          "setting it aside", j->dir, s->no, rs->size);
		return;
	}
	if (header_bad)
		log_error("journal %s: %08" PRIu64 ".seg: its header is damaged; read %" PRIu64 " records after it",
		          j->dir, s->no, found);
	if (rs->logged > LOG_SKIPS)
		log_error("journal %s: %08" PRIu64 ".seg: %u damaged places in all", j->dir, s->no, rs->logged);
	st->segments++;
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

/* A free name beside the segment for its damaged original: NNN.seg.bad,
 * then .bad.1 and so on. A name already linked to the same file (a crash
 * after an earlier set-aside, before its rewrite) is reused. */
static int aside_name(const char *path, int fd, char *out, size_t outlen)
{
	struct stat me, sb;

	if (fstat(fd, &me) < 0)
		return -1;
	for (int n = 0; n < 100; n++) {
		if (n == 0)
			snprintf(out, outlen, "%s.bad", path);
		else
			snprintf(out, outlen, "%s.bad.%d", path, n);
		if (lstat(out, &sb) < 0)
			return errno == ENOENT ? 0 : -1;
		if (sb.st_dev == me.st_dev && sb.st_ino == me.st_ino)
			return 1;
	}
	errno = EEXIST;
	return -1;
}

static int write_all(int fd, const void *p, size_t n, uint64_t off)
{
	const uint8_t *b = p;
	while (n) {
		ssize_t w = journal_io.pwrite(fd, b, n, (off_t)off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			if (w == 0)
				errno = ENOSPC;
			return -1;
		}
		b += w;
		n -= (size_t)w;
		off += (uint64_t)w;
	}
	return 0;
}

/* Keeps the damaged file as it was under a name of its own: a second hard
 * link when the filesystem has them, a copy otherwise. */
static int set_aside(struct journal *j, struct jseg *s, struct rseg *rs, const char *path,
                     char *bad, size_t badlen)
{
	int rc = aside_name(path, s->fd, bad, badlen), fd;

	if (rc != 0)
		return rc < 0 ? -1 : 0;
	if (link(path, bad) == 0)
		return 0;
	fd = open(bad, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		return -1;
	if (write_all(fd, rs->map, rs->size, 0) < 0 || journal_io.fdatasync(fd) < 0) {
		int e = errno;
		close(fd);
		unlink(bad);
		errno = e;
		return -1;
	}
	close(fd);
	(void)j;
	return 0;
}

/* The index learnt offsets in the damaged file; the rewrite left out the
 * skipped regions, so every record after one moved back by its length. */
static void move_offsets(struct journal *j, struct jseg *s, const struct rseg *rs)
{
	uint64_t *before = xmalloc((rs->nskips + 1) * sizeof *before);	/* bytes skipped before skips[i] */
	size_t it = 0;
	void *v;

	before[0] = 0;
	for (size_t i = 0; i < rs->nskips; i++)
		before[i + 1] = before[i] + rs->skips[i].len;
	while (u64map_next(&j->msgs, &it, NULL, &v)) {
		struct jmsg *m = v;
		size_t lo = 0, hi = rs->nskips;
		if (m->seg != s->no)
			continue;
		while (lo < hi) {	/* how many skips lie before the record */
			size_t mid = lo + (hi - lo) / 2;
			if (rs->skips[mid].off < m->off)
				lo = mid + 1;
			else
				hi = mid;
		}
		m->off -= before[lo];
	}
	free(before);
}

/* Replaces a damaged segment by one holding exactly the records recovery
 * read from it, in the same order, after setting the original aside. The
 * new file is written and synced under a temporary name and renamed over
 * the old one, so that a crash at any point leaves one or the other. */
static int rewrite(struct journal *j, struct jseg *s, struct rseg *rs, const char *path,
                   char *bad, size_t badlen)
{
	char tmp[PATH_MAX + 8];
	uint8_t h[JSEG_HEADER_SIZE];
	uint64_t pos = JSEG_HEADER_SIZE, out = JSEG_HEADER_SIZE;
	int fd, e;

	if (set_aside(j, s, rs, path, bad, badlen) < 0) {
		log_error_sys("journal %s: cannot set %08" PRIu64 ".seg aside", j->dir, s->no);
		return -1;
	}
	snprintf(tmp, sizeof tmp, "%s.tmp", path);
	fd = open(tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0) {
		log_error_sys("journal %s: cannot create %s", j->dir, tmp);
		return -1;
	}
	jseg_header_encode(h, s->no, rs->head_unknown ? JSEG_HEAD_UNKNOWN : rs->head_bytes);
	if (write_all(fd, h, sizeof h, 0) < 0)
		goto fail;
	for (size_t i = 0; i <= rs->nskips; i++) {
		uint64_t end = i < rs->nskips ? rs->skips[i].off : rs->valid;
		if (end > pos && write_all(fd, rs->map + pos, end - pos, out) < 0)
			goto fail;
		out += end > pos ? end - pos : 0;
		if (i < rs->nskips)
			pos = rs->skips[i].off + rs->skips[i].len;
	}
	if (journal_io.fdatasync(fd) < 0 || rename(tmp, path) < 0)
		goto fail;
	if (fsync(j->dirfd) < 0)
		log_error_sys("journal %s: fsync of the directory after rewriting %08" PRIu64 ".seg failed",
		              j->dir, s->no);
	close(s->fd);
	s->fd = fd;
	s->written = s->synced = out;
	if (rs->head_unknown) {
		s->head_end = JSEG_HEADER_SIZE;
		s->head_ok = false;
	}
	move_offsets(j, s, rs);
	return 0;
fail:
	e = errno;
	log_error("journal %s: cannot write %s: %s", j->dir, tmp, strerror(e));
	close(fd);
	unlink(tmp);
	errno = e;
	return -1;
}

/* Cuts torn tails, rewrites damaged segments without their damage (the
 * originals set aside) and removes or sets aside those it could not read. */
static void settle_files(struct journal *j, struct rseg *rsegs, struct journal_recovery *st)
{
	size_t i = 0, k = 0;

	for (i = 0; i < j->nsegs; i++) {
		struct jseg *s = &j->segs[i];
		struct rseg *rs = &rsegs[i];
		char path[PATH_MAX], bad[PATH_MAX + 16];

		jseg_path(path, sizeof path, j->dir, s->no);
		if (rs->drop) {
			if (rs->aside) {
				int named = aside_name(path, s->fd, bad, sizeof bad);
				/* Already linked there (a crash after an earlier
				 * set-aside): rename() would do nothing, unlink. */
				if (named < 0 || (named ? unlink(path) : rename(path, bad)) < 0)
					log_error_sys("journal %s: cannot set %s aside", j->dir, path);
				else
					log_error("journal %s: %08" PRIu64 ".seg is kept as %s", j->dir, s->no,
					          strrchr(bad, '/') + 1);
			} else if (unlink(path) < 0) {
				log_error_sys("journal %s: cannot remove %s", j->dir, path);
			}
			close(s->fd);
			continue;
		}
		if (rs->damaged) {
			st->damaged_segments++;
			if (rewrite(j, s, rs, path, bad, sizeof bad) == 0) {
				log_error("journal %s: %08" PRIu64 ".seg: rewritten without its damage (%" PRIu64
				          " of %zu bytes kept); the file as it was is kept as %s",
				          j->dir, s->no, s->written, rs->size, strrchr(bad, '/') + 1);
			} else {
				/* Read it as it is again next time; compaction would
				 * stop at the damage, so it stays out. */
				log_error("journal %s: %08" PRIu64 ".seg: left as it is, damage included",
				          j->dir, s->no);
				s->written = s->synced = rs->size;
				s->no_compact = true;
			}
		} else {
			if (rs->valid < rs->size && ftruncate(s->fd, (off_t)rs->valid) < 0)
				log_error_sys("journal %s: cannot cut %s to %" PRIu64 " bytes; recovery will cut it again",
				              j->dir, path, rs->valid);
			s->written = s->synced = rs->valid;
		}
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
	size_t nsegs;
	int rc = -1;
	char b1[32];

	if (j->recovered) {
		snprintf(err, errlen, "journal %s: recovery already done", j->dir);
		return -1;
	}
	nsegs = j->nsegs;
	rsegs = xcalloc(nsegs + 1, sizeof *rsegs);
	for (size_t i = 0; i < j->nsegs; i++)
		if (map_segment(j, &j->segs[i], &rsegs[i], err, errlen) < 0)
			goto out;
	for (size_t i = 0; i < j->nsegs; i++)
		scan_segment(j, &j->segs[i], &rsegs[i], i + 1 == j->nsegs, &st);
	replay(j, rsegs, cb, arg, &st);
	nsegs = j->nsegs;
	settle_files(j, rsegs, &st);	/* the rewrites copy from the mappings */
	for (size_t i = 0; i < nsegs; i++) {
		if (rsegs[i].map)
			munmap((void *)rsegs[i].map, rsegs[i].size);
		rsegs[i].map = NULL;
	}
	if (journal_start_active(j, err, errlen) < 0)
		goto out;
	st.seconds = (double)(mono_us() - t0) / 1e6;
	log_info("journal %s: recovered %" PRIu64 " queued messages (%" PRIu64 " stored, %s of payload) "
	         "from %" PRIu64 " records in %" PRIu64 " segments in %.3f s",
	         j->dir, st.messages, (uint64_t)j->msgs.count, fmt_bytes(j->live_payload, b1, sizeof b1),
	         st.records, st.segments, st.seconds);
	if (st.dropped_bytes)
		log_warn("journal %s: recovery cut %" PRIu64 " bytes (%" PRIu64 " records) of torn writes",
		         j->dir, st.dropped_bytes, st.dropped_records);
	if (st.skipped_records)
		log_error("journal %s: recovery skipped %" PRIu64 " damaged record%s (%" PRIu64 " bytes) in %" PRIu64
		          " segment%s and read every other one; the damaged files are kept as .bad",
		          j->dir, st.skipped_records, st.skipped_records == 1 ? "" : "s", st.skipped_bytes,
		          st.damaged_segments, st.damaged_segments == 1 ? "" : "s");
	rc = 0;
out:
	for (size_t i = 0; i < nsegs; i++) {
		if (rsegs[i].map)
			munmap((void *)rsegs[i].map, rsegs[i].size);
		free(rsegs[i].skips);
	}
	free(rsegs);
	if (stats)
		*stats = st;
	return rc;
}
