/* journal.c: open and close, appends, the write buffer, durability reports
 * and the failing state. Recovery, the index, compaction and the fsync
 * worker live beside it (journal_int.h lists them).
 *
 * The path of a record: an append encodes it into j->buf and applies it to
 * the index; at the end of the loop iteration (flush_ev) the buffer goes to
 * the active segment in one pwrite; the fsync worker then makes it durable
 * together with everything else written meanwhile; notify_ev brings the
 * worker's answer back to the loop thread, which calls on_durable. */
#include "store/journal_int.h"

#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/event.h>

#include "common/log.h"

#define BUF_FLUSH_AT (1u << 20)		/* write early past this much buffered */
#define DEFAULT_SEGMENT_SIZE (64ull << 20)
#define MIN_SEGMENT_SIZE 4096ull
#define DEFAULT_INTERVAL_MS 100

struct journal_io journal_io = { pwrite, fdatasync, 1000 };

static void flush(struct journal *j);
static void maybe_sync(struct journal *j);

/* ---- segments ---- */

struct jseg *journal_seg_find(struct journal *j, uint64_t segno)
{
	size_t lo = 0, hi = j->nsegs;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (j->segs[mid].no < segno)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < j->nsegs && j->segs[lo].no == segno ? &j->segs[lo] : NULL;
}

static const char *seg_name(const struct jseg *s, char *buf, size_t len)
{
	snprintf(buf, len, "%08" PRIu64 ".seg", s->no);
	return buf;
}

static struct jseg *push_seg(struct journal *j, uint64_t no, int fd)
{
	struct jseg *s;
	if (j->nsegs == j->segcap) {
		j->segcap = j->segcap ? j->segcap * 2 : 16;
		j->segs = xrealloc(j->segs, j->segcap * sizeof *j->segs);
	}
	s = &j->segs[j->nsegs++];
	memset(s, 0, sizeof *s);
	s->no = no;
	s->fd = fd;
	s->dir_synced = true;
	return s;
}

void journal_close_fd(struct journal *j, int fd)
{
	/* The worker may hold this fd in its job; closing it now could let
	 * the number be reused under an fdatasync. */
	if (!j->sync_busy) {
		close(fd);
		return;
	}
	if (j->nclose_later == j->close_cap) {
		j->close_cap = j->close_cap ? j->close_cap * 2 : 8;
		j->close_later = xrealloc(j->close_later, j->close_cap * sizeof *j->close_later);
	}
	j->close_later[j->nclose_later++] = fd;
}

/* Creates the next segment and puts its header and META snapshot in the
 * buffer, which must be empty. -1 with errno when the file cannot be made. */
static int new_segment(struct journal *j)
{
	char path[PATH_MAX];
	int fd;

	jseg_path(path, sizeof path, j->dir, j->next_segno);
	fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		return -1;
	push_seg(j, j->next_segno++, fd)->dir_synced = false;
	journal_write_head(j, journal_active(j));
	return 0;
}

static void drop_last_seg(struct journal *j)
{
	struct jseg *s = &j->segs[j->nsegs - 1];
	char path[PATH_MAX];

	if (s->live_msgs)
		log_error("journal %s: dropping segment %08" PRIu64 " with %" PRIu64 " live messages",
		          j->dir, s->no, s->live_msgs);
	jseg_path(path, sizeof path, j->dir, s->no);
	if (unlink(path) < 0)
		log_error_sys("journal %s: cannot remove %s", j->dir, path);
	journal_close_fd(j, s->fd);
	j->nsegs--;
}

static void arm_flush(struct journal *j)
{
	if (!j->flush_armed) {
		j->flush_armed = true;
		event_active(j->flush_ev, EV_WRITE, 0);
	}
}

static struct jrec meta_rec(const struct jmeta *e)
{
	struct jrec r = { .type = JREC_META_PUT, .key = e->key, .klen = strlen(e->key),
	                  .val = e->val, .vlen = e->vlen };
	return r;
}

void journal_write_head(struct journal *j, struct jseg *s)
{
	uint8_t h[JSEG_HEADER_SIZE];
	size_t it = 0, head = 0;
	const char *k;
	void *v;

	assert(s->written == 0 && j->buf.len == 0);
	/* Every segment restates the whole META set, so that deleting the
	 * segments before it loses no topology. The header carries the
	 * snapshot's length: recovery can then tell a whole snapshot, which
	 * replaces the META set, from a torn one, which must not. */
	while (strmap_next(&j->meta, &it, &k, &v)) {
		struct jrec r = meta_rec(v);
		head += jrec_size(&r);
	}
	assert(head <= UINT32_MAX);
	jseg_header_encode(h, s->no, (uint32_t)head);
	sbuf_add(&j->buf, h, sizeof h);
	it = 0;
	while (strmap_next(&j->meta, &it, &k, &v)) {
		struct jrec r = meta_rec(v);
		uint64_t seq = ++j->appended_seq;
		if (!j->buf_seq)
			j->buf_seq = seq;
		jrec_encode(&j->buf, &r);
	}
	s->head_end = JSEG_HEADER_SIZE + head;
	s->head_seq = j->appended_seq;
	s->head_ok = true;
	s->need_head = false;
	arm_flush(j);
}

/* ---- failing ---- */

/* A write or fsync failed. Everything after (good segment, good_off) is
 * gone: the records from first_failed on are undone in the index and
 * reported failed (in order, once what precedes them is durable), the
 * file is cut back, and appends fail until a probe write succeeds. */
static void fail(struct journal *j, size_t good, uint64_t good_off, uint64_t first_failed,
                 int err, const char *what)
{
	struct timeval tv = { journal_io.probe_ms / 1000, (journal_io.probe_ms % 1000) * 1000 };
	struct jseg *s;
	char name[32];

	if (!j->failing) {
		log_error("journal %s: %s failed: %s; persistent appends are refused until the disk takes writes again",
		          j->dir, what, strerror(err));
		j->failing = err;
		j->failing_since_ms = mono_ms();
		event_add(j->probe_ev, &tv);
	} else {
		log_error("journal %s: %s failed too: %s", j->dir, what, strerror(err));
	}
	if (first_failed <= j->appended_seq) {
		/* While a failure waits to be reported the journal stays failing
		 * (probe_done), so a new failure can only reach further back. */
		if (!j->fail_first || first_failed < j->fail_first)
			j->fail_first = first_failed;
		j->fail_last = j->appended_seq;
		if (!j->fail_err)
			j->fail_err = err;
		jidx_undo_to(j, first_failed);
	}
	sbuf_reset(&j->buf);
	j->buf_seq = 0;
	while (j->nsegs > good + 1)
		drop_last_seg(j);
	s = &j->segs[good];
	if (good_off < s->head_end) {
		/* Not even the header made it: write it again on the way out. */
		good_off = 0;
		s->head_ok = false;
		s->need_head = true;
	}
	if (ftruncate(s->fd, (off_t)good_off) < 0)
		log_error_sys("journal %s: cannot cut %s back to %" PRIu64 " bytes (the probe will retry)",
		              j->dir, seg_name(s, name, sizeof name), good_off);
	s->written = good_off;
	if (s->synced > good_off)
		s->synced = good_off;
	if (s->written_seq >= first_failed)
		s->written_seq = first_failed - 1;
	j->written_seq = j->appended_seq;	/* everything is written or failed */
	jcompact_stop(j);
	event_active(j->notify_ev, EV_READ, 0);
}

static void probe_done(struct journal *j)
{
	struct jseg *a = journal_active(j);

	if (j->sync.err) {
		log_debug("journal %s: probe write failed: %s", j->dir, strerror(j->sync.err));
		return;
	}
	/* Stay failing until the failure has been reported, so that a new
	 * failure cannot interleave with it. */
	if (!j->failing || j->fail_first)
		return;
	log_warn("journal %s: the disk takes writes again after %" PRIu64 " ms; appends resume",
	         j->dir, mono_ms() - j->failing_since_ms);
	j->failing = 0;
	event_del(j->probe_ev);
	if (a->need_head)
		journal_write_head(j, a);
}

static void probe_cb(evutil_socket_t fd, short what, void *arg)
{
	struct journal *j = arg;
	struct jseg *a = journal_active(j);

	if (!j->failing) {
		event_del(j->probe_ev);
		return;
	}
	if (j->sync_busy)
		return;		/* next tick */
	j->sync.kind = JSYNC_PROBE;
	j->sync.probe_fd = a->fd;
	j->sync.probe_off = a->written;
	j->sync_busy = true;
	jsync_submit(&j->sync);
	(void)fd;
	(void)what;
}

/* ---- writing ---- */

static void flush(struct journal *j)
{
	struct jseg *a;
	const char *p;
	size_t left;
	uint64_t off;

	if (!j->buf.len || j->failing)
		return;
	a = journal_active(j);
	p = j->buf.buf;
	left = j->buf.len;
	off = a->written;
	while (left) {
		ssize_t n = journal_io.pwrite(a->fd, p, left, (off_t)off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			int e = n < 0 ? errno : ENOSPC;
			char what[96], name[32];
			snprintf(what, sizeof what, "write of %zu bytes to %s at offset %" PRIu64,
			         j->buf.len, seg_name(a, name, sizeof name), a->written);
			/* What an earlier write put there may still become
			 * durable; only this buffer is lost. */
			fail(j, j->nsegs - 1, a->written, j->buf_seq ? j->buf_seq : j->appended_seq + 1, e, what);
			return;
		}
		p += n;
		left -= (size_t)n;
		off += (uint64_t)n;
	}
	a->written = off;
	a->written_seq = j->appended_seq;
	j->written_seq = j->appended_seq;
	j->st.bytes_written += j->buf.len;
	sbuf_reset(&j->buf);
	j->buf_seq = 0;
	if (j->opts.fsync == FSYNC_ALWAYS)
		maybe_sync(j);
	else if (j->opts.fsync == FSYNC_NEVER)
		event_active(j->notify_ev, EV_READ, 0);	/* report from the loop, not from inside an append */
}

static void flush_cb(evutil_socket_t fd, short what, void *arg)
{
	struct journal *j = arg;
	j->flush_armed = false;
	flush(j);
	(void)fd;
	(void)what;
}

void journal_flush(struct journal *j)
{
	flush(j);
}

static int roll(struct journal *j)
{
	struct jseg *a;
	char what[96], name[32];
	int e;

	flush(j);
	if (j->failing) {
		errno = j->failing;
		return -1;
	}
	if (new_segment(j) == 0)
		return 0;
	e = errno;
	a = journal_active(j);
	snprintf(what, sizeof what, "creating segment %08" PRIu64 ".seg after %s", j->next_segno,
	         seg_name(a, name, sizeof name));
	fail(j, j->nsegs - 1, a->written, j->appended_seq + 1, e, what);
	errno = e;
	return -1;
}

uint64_t journal_append(struct journal *j, const struct jrec *r)
{
	size_t size = jrec_size(r);
	struct jseg *a;
	uint64_t seq, end;

	assert(j->recovered);
	if (j->failing) {
		errno = j->failing;
		return 0;
	}
	a = journal_active(j);
	end = a->written + j->buf.len;
	/* Roll before the record that would cross segment_size, unless the
	 * segment holds nothing but its head: a record larger than a segment
	 * still has to go somewhere. */
	if (end > a->head_end && end + size > j->opts.segment_size) {
		if (roll(j) < 0)
			return 0;
		a = journal_active(j);
	}
	seq = ++j->appended_seq;
	if (!j->buf_seq)
		j->buf_seq = seq;
	jrec_encode(&j->buf, r);
	jidx_apply(j, r, a->no, a->written + j->buf.len - size, seq);
	arm_flush(j);
	if (j->buf.len >= BUF_FLUSH_AT) {
		flush(j);
		if (j->failing) {
			errno = j->failing;
			return 0;
		}
	}
	return seq;
}

/* ---- syncing and reporting ---- */

uint64_t journal_durable_now(const struct journal *j)
{
	return j->opts.fsync == FSYNC_NEVER ? j->written_seq : j->synced_seq;
}

static void maybe_sync(struct journal *j)
{
	struct jsync *s = &j->sync;

	if (j->sync_busy || j->opts.fsync == FSYNC_NEVER)
		return;
	if (j->opts.fsync == FSYNC_INTERVAL && !j->sync_due)
		return;
	s->ntargets = 0;
	s->sync_dir = false;
	for (size_t i = 0; i < j->nsegs; i++) {
		struct jseg *g = &j->segs[i];
		struct jsync_target *t;
		if (g->written <= g->synced)
			continue;
		if (s->ntargets == s->cap) {
			s->cap = s->cap ? s->cap * 2 : 4;
			s->targets = xrealloc(s->targets, s->cap * sizeof *s->targets);
		}
		t = &s->targets[s->ntargets++];
		t->fd = g->fd;
		t->segno = g->no;
		t->off = g->written;
		t->seq = g->written_seq;
		if (!g->dir_synced)
			s->sync_dir = true;
	}
	j->sync_due = false;
	if (!s->ntargets)
		return;
	if (j->dir_dirty) {
		/* Lets deletions reach the disk in the order they were made. */
		s->sync_dir = true;
		j->dir_dirty = false;
	}
	s->kind = JSYNC_SYNC;
	s->dirfd = j->dirfd;
	s->dir_upto = journal_active(j)->no;
	j->sync_busy = true;
	jsync_submit(s);
}

static void sync_done(struct journal *j)
{
	struct jsync *s = &j->sync;
	char what[96], name[32];
	size_t i;

	for (i = 0; i < s->done; i++) {
		struct jsync_target *t = &s->targets[i];
		struct jseg *g = journal_seg_find(j, t->segno);
		if (!g)
			continue;
		if (t->off > g->synced)
			g->synced = MIN(t->off, g->written);
		if (t->seq > j->synced_seq)
			j->synced_seq = t->seq;
	}
	if (!s->err) {
		if (s->sync_dir)
			for (i = 0; i < j->nsegs && j->segs[i].no <= s->dir_upto; i++)
				j->segs[i].dir_synced = true;
		return;
	}
	if (s->sync_dir)
		j->dir_dirty = true;	/* try the directory again next time */
	/* Syncs run oldest first, so the first segment with unsynced bytes
	 * holds the last good offset. */
	for (i = 0; i < j->nsegs && j->segs[i].written <= j->segs[i].synced; i++)
		;
	if (i == j->nsegs) {
		log_error("journal %s: fsync failed with nothing left unsynced: %s", j->dir, strerror(s->err));
		return;
	}
	if (s->sync_dir && s->done == 0)
		snprintf(what, sizeof what, "fsync of the directory");
	else
		snprintf(what, sizeof what, "fdatasync of %s", seg_name(&j->segs[i], name, sizeof name));
	fail(j, i, j->segs[i].synced, j->synced_seq + 1, s->err, what);
}

/* Calls on_durable for what became durable, and for a pending failure
 * once everything before it is settled, so that reports never go
 * backwards. The callback may append; state is updated before each call. */
static void report(struct journal *j)
{
	for (;;) {
		uint64_t d = journal_durable_now(j);
		if (j->fail_first && d + 1 >= j->fail_first) {
			uint64_t ff = j->fail_first, fl = j->fail_last;
			int err = j->fail_err;
			if (j->reported_seq + 1 < ff) {
				j->reported_seq = ff - 1;
				if (j->on_durable)
					j->on_durable(j->arg, ff - 1, 0, 0);
				continue;
			}
			j->fail_first = j->fail_last = 0;
			j->fail_err = 0;
			if (fl > j->reported_seq)
				j->reported_seq = fl;
			if (j->on_durable)
				j->on_durable(j->arg, fl, ff, err);
			continue;
		}
		if (d <= j->reported_seq)
			break;
		j->reported_seq = d;
		if (j->on_durable)
			j->on_durable(j->arg, d, 0, 0);
	}
}

static void notify_cb(evutil_socket_t fd, short what, void *arg)
{
	struct journal *j = arg;
	uint64_t n;

	while (read(j->sync.efd, &n, sizeof n) < 0 && errno == EINTR)
		;
	if (j->sync_busy && jsync_poll(&j->sync)) {
		j->sync_busy = false;
		j->st.fsyncs += j->sync.calls;
		if (j->sync.kind == JSYNC_SYNC)
			sync_done(j);
		else
			probe_done(j);
	}
	if (!j->sync_busy) {
		for (size_t i = 0; i < j->nclose_later; i++)
			close(j->close_later[i]);
		j->nclose_later = 0;
	}
	jidx_retire(j, journal_durable_now(j));
	jcompact_gc(j);
	jcompact_maybe_start(j);
	maybe_sync(j);
	report(j);
	(void)fd;
	(void)what;
}

static void interval_cb(evutil_socket_t fd, short what, void *arg)
{
	struct journal *j = arg;
	j->sync_due = true;
	maybe_sync(j);
	(void)fd;
	(void)what;
}

uint64_t journal_durable_seq(const struct journal *j)
{
	uint64_t d = journal_durable_now(j);
	if (j->fail_first && d >= j->fail_first)
		d = j->fail_first - 1;
	return d;
}

/* ---- open and close ---- */

static int make_dir(const char *dir)
{
	char *p = xstrdup(dir);
	int rc = 0;

	for (char *s = p + 1; *s && rc == 0; s++) {
		if (*s != '/')
			continue;
		*s = 0;
		if (mkdir(p, 0700) < 0 && errno != EEXIST)
			rc = -1;
		*s = '/';
	}
	if (rc == 0 && mkdir(p, 0700) < 0 && errno != EEXIST)
		rc = -1;
	free(p);
	return rc;
}

static int cmp_seg(const void *a, const void *b)
{
	const struct jseg *x = a, *y = b;
	return x->no < y->no ? -1 : x->no > y->no;
}

static int load_segments(struct journal *j, char *err, size_t errlen)
{
	DIR *d = opendir(j->dir);
	struct dirent *e;

	if (!d) {
		snprintf(err, errlen, "cannot read journal directory %s: %s", j->dir, strerror(errno));
		return -1;
	}
	while ((e = readdir(d))) {
		uint64_t no;
		size_t n = strlen(e->d_name);
		if (jseg_parse_name(e->d_name, &no))
			push_seg(j, no, -1);
		else if (n > 8 && strcmp(e->d_name + n - 8, ".seg.tmp") == 0)
			unlinkat(dirfd(d), e->d_name, 0);	/* a rewrite cut short by a crash */
	}
	closedir(d);
	if (j->nsegs)
		qsort(j->segs, j->nsegs, sizeof *j->segs, cmp_seg);
	for (size_t i = 0; i < j->nsegs; i++) {
		struct jseg *s = &j->segs[i];
		char path[PATH_MAX];
		struct stat sb;
		jseg_path(path, sizeof path, j->dir, s->no);
		s->fd = open(path, O_RDWR | O_CLOEXEC);
		if (s->fd < 0 || fstat(s->fd, &sb) < 0) {
			snprintf(err, errlen, "cannot open journal segment %s: %s", path, strerror(errno));
			return -1;
		}
		s->written = s->synced = (uint64_t)sb.st_size;
	}
	j->next_segno = j->nsegs ? j->segs[j->nsegs - 1].no + 1 : 1;
	return 0;
}

struct journal *journal_open(struct event_base *base, const struct journal_opts *opts,
                             journal_durable_cb on_durable, void *arg,
                             char *err, size_t errlen)
{
	struct journal *j = xcalloc(1, sizeof *j);

	j->dirfd = -1;
	j->sync.efd = -1;
	j->base = base;
	j->on_durable = on_durable;
	j->arg = arg;
	sbuf_init(&j->buf);
	sbuf_init(&j->cbuf);
	u64map_init(&j->msgs);
	strmap_init(&j->meta);
	if (!opts->dir || !*opts->dir) {
		snprintf(err, errlen, "journal directory not set");
		goto fail;
	}
	j->opts = *opts;
	j->dir = xstrdup(opts->dir);
	j->opts.dir = j->dir;
	if (strlen(j->dir) + 32 > PATH_MAX) {
		/* Segment paths are built in PATH_MAX buffers. */
		snprintf(err, errlen, "journal directory path too long: %zu bytes (limit %d)",
		         strlen(j->dir), PATH_MAX - 32);
		goto fail;
	}
	if ((unsigned)opts->fsync > FSYNC_NEVER) {
		snprintf(err, errlen, "journal %s: unknown fsync policy %d", j->dir, (int)opts->fsync);
		goto fail;
	}
	if (!j->opts.segment_size)
		j->opts.segment_size = DEFAULT_SEGMENT_SIZE;
	if (j->opts.segment_size < MIN_SEGMENT_SIZE) {
		snprintf(err, errlen, "journal %s: segment_size %" PRIu64 " is too small (at least %llu)",
		         j->dir, j->opts.segment_size, MIN_SEGMENT_SIZE);
		goto fail;
	}
	if (!j->opts.fsync_interval_ms)
		j->opts.fsync_interval_ms = DEFAULT_INTERVAL_MS;
	if (make_dir(j->dir) < 0) {
		snprintf(err, errlen, "cannot create journal directory %s: %s", j->dir, strerror(errno));
		goto fail;
	}
	j->dirfd = open(j->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (j->dirfd < 0) {
		snprintf(err, errlen, "cannot open journal directory %s: %s", j->dir, strerror(errno));
		goto fail;
	}
	if (load_segments(j, err, errlen) < 0 || jsync_start(&j->sync, err, errlen) < 0)
		goto fail;
	j->notify_ev = event_new(base, j->sync.efd, EV_READ | EV_PERSIST, notify_cb, j);
	j->flush_ev = event_new(base, -1, 0, flush_cb, j);
	j->probe_ev = event_new(base, -1, EV_PERSIST, probe_cb, j);
	j->compact_ev = event_new(base, -1, 0, jcompact_step_cb, j);
	if (!j->notify_ev || !j->flush_ev || !j->probe_ev || !j->compact_ev ||
	    event_add(j->notify_ev, NULL) < 0) {
		snprintf(err, errlen, "journal %s: cannot set up its events", j->dir);
		goto fail;
	}
	if (j->opts.fsync == FSYNC_INTERVAL) {
		struct timeval tv = { j->opts.fsync_interval_ms / 1000,
		                      (j->opts.fsync_interval_ms % 1000) * 1000 };
		j->interval_ev = event_new(base, -1, EV_PERSIST, interval_cb, j);
		if (!j->interval_ev || event_add(j->interval_ev, &tv) < 0) {
			snprintf(err, errlen, "journal %s: cannot set up the fsync timer", j->dir);
			goto fail;
		}
	}
	return j;
fail:
	journal_close(j);
	return NULL;
}

static void final_sync(struct journal *j)
{
	bool dir = false;

	for (size_t i = 0; i < j->nsegs; i++)
		if (j->segs[i].written > j->segs[i].synced && !j->segs[i].dir_synced)
			dir = true;
	if (dir && fsync(j->dirfd) < 0)
		log_error_sys("journal %s: fsync of the directory at close failed", j->dir);
	for (size_t i = 0; i < j->nsegs; i++) {
		struct jseg *s = &j->segs[i];
		char name[32];
		if (s->written <= s->synced)
			continue;
		j->st.fsyncs++;
		if (journal_io.fdatasync(s->fd) < 0)
			log_error_sys("journal %s: fdatasync of %s at close failed", j->dir,
			              seg_name(s, name, sizeof name));
		else
			s->synced = s->written;
	}
}

void journal_close(struct journal *j)
{
	if (!j)
		return;
	if (j->recovered)
		flush(j);
	if (j->sync.started) {
		jsync_wait(&j->sync);
		if (jsync_poll(&j->sync) && j->sync.err)
			log_error("journal %s: the last fsync failed: %s", j->dir, strerror(j->sync.err));
	}
	/* Every policy syncs at close: a clean shutdown leaves it all on disk.
	 * Failing or not: a failure only cut what came after the good offset. */
	if (j->recovered)
		final_sync(j);
	jsync_stop(&j->sync);
	if (j->notify_ev)
		event_free(j->notify_ev);
	if (j->flush_ev)
		event_free(j->flush_ev);
	if (j->probe_ev)
		event_free(j->probe_ev);
	if (j->compact_ev)
		event_free(j->compact_ev);
	if (j->interval_ev)
		event_free(j->interval_ev);
	for (size_t i = 0; i < j->nclose_later; i++)
		close(j->close_later[i]);
	free(j->close_later);
	for (size_t i = 0; i < j->nsegs; i++)
		if (j->segs[i].fd >= 0)
			close(j->segs[i].fd);
	free(j->segs);
	jidx_free_all(j);
	sbuf_fini(&j->buf);
	sbuf_fini(&j->cbuf);
	if (j->dirfd >= 0)
		close(j->dirfd);
	free(j->dir);
	free(j);
}

/* ---- the public appends ---- */

/* A record asked for by the broker (compaction's rewrites are not counted). */
static uint64_t counted_append(struct journal *j, const struct jrec *r)
{
	uint64_t seq = journal_append(j, r);
	if (seq)
		j->st.appends++;
	return seq;
}

static bool refuse(const struct journal *j)
{
	if (j->failing) {
		errno = j->failing;
		return true;
	}
	return false;
}

uint64_t journal_put_message(struct journal *j, uint32_t qid, uint64_t msg_id,
                             const void *payload, size_t len)
{
	struct jrec r = { .type = JREC_MESSAGE, .qid = qid, .msg_id = msg_id,
	                  .val = payload, .vlen = len };

	if (refuse(j))
		return 0;
	if (len > JREC_MAX_BODY - 1 - JREC_QFIELDS) {
		errno = EMSGSIZE;
		return 0;
	}
	if (jidx_msg(j, msg_id)) {
		errno = EEXIST;
		return 0;
	}
	return counted_append(j, &r);
}

uint64_t journal_enqueue(struct journal *j, uint32_t qid, uint64_t msg_id)
{
	struct jrec r = { .type = JREC_ENQUEUE, .qid = qid, .msg_id = msg_id };

	if (refuse(j))
		return 0;
	if (!jidx_msg(j, msg_id)) {
		errno = ENOENT;
		return 0;
	}
	return counted_append(j, &r);
}

uint64_t journal_remove(struct journal *j, uint32_t qid, uint64_t msg_id)
{
	struct jrec r = { .type = JREC_REMOVE, .qid = qid, .msg_id = msg_id };
	struct jmsg *m;

	if (refuse(j))
		return 0;
	m = jidx_msg(j, msg_id);
	if (!m || !jidx_has_pair(m, qid)) {
		errno = ENOENT;
		return 0;
	}
	return counted_append(j, &r);
}

uint64_t journal_meta_put(struct journal *j, const char *key, const void *val, size_t len)
{
	struct jrec r = { .type = JREC_META_PUT, .key = key, .klen = strlen(key),
	                  .val = val, .vlen = len };

	if (refuse(j))
		return 0;
	if (r.klen == 0 || r.klen > JREC_MAX_KEY) {
		errno = EINVAL;
		return 0;
	}
	if (len > JREC_MAX_BODY - 3 - r.klen) {
		errno = EMSGSIZE;
		return 0;
	}
	return counted_append(j, &r);
}

uint64_t journal_meta_del(struct journal *j, const char *key)
{
	struct jrec r = { .type = JREC_META_DEL, .key = key, .klen = strlen(key) };

	if (refuse(j))
		return 0;
	if (!strmap_get(&j->meta, key)) {
		errno = ENOENT;
		return 0;
	}
	return counted_append(j, &r);
}

/* ---- reading back ---- */

int journal_read_message(struct journal *j, uint64_t msg_id, void **payload, size_t *len)
{
	struct jmsg *m = jidx_msg(j, msg_id);
	struct jseg *s;
	const char *why = "not a MESSAGE record for this id";
	struct jrec r;
	char name[32];
	uint8_t *rec;

	if (!m) {
		errno = ENOENT;
		return -1;
	}
	s = journal_seg_find(j, m->seg);
	assert(s);
	rec = xmalloc(m->size);
	if (s == journal_active(j) && m->off >= s->written) {
		/* Still in the buffer: appended this iteration. */
		memcpy(rec, j->buf.buf + (m->off - s->written), m->size);
	} else {
		size_t got = 0;
		while (got < m->size) {
			ssize_t n = pread(s->fd, rec + got, m->size - got, (off_t)(m->off + got));
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0) {
				if (n == 0)
					errno = EIO;
				log_error_sys("journal %s: cannot read message %" PRIu64 " from %s at offset %" PRIu64,
				              j->dir, msg_id, seg_name(s, name, sizeof name), m->off);
				free(rec);
				return -1;
			}
			got += (size_t)n;
		}
	}
	if (jrec_decode(rec, m->size, &r, &why) != JREC_OK || r.type != JREC_MESSAGE ||
	    r.msg_id != msg_id) {
		log_error("journal %s: message %" PRIu64 " in %s at offset %" PRIu64 ": %s",
		          j->dir, msg_id, seg_name(s, name, sizeof name), m->off, why);
		free(rec);
		errno = EIO;
		return -1;
	}
	memmove(rec, r.val, r.vlen);
	*payload = rec;
	*len = r.vlen;
	return 0;
}

void journal_get_stats(const struct journal *j, struct journal_stats *st)
{
	*st = j->st;
	st->segments = j->nsegs;
	st->disk_bytes = 0;
	for (size_t i = 0; i < j->nsegs; i++)
		st->disk_bytes += j->segs[i].written;
	st->live_bytes = j->live_payload;
	st->live_messages = j->msgs.count;
	st->failing_errno = j->failing;
}

/* Used by journal_recover() once it has read everything: from here on the
 * journal appends to a segment of its own making. */
int journal_start_active(struct journal *j, char *err, size_t errlen)
{
	char path[PATH_MAX];

	if (new_segment(j) < 0) {
		jseg_path(path, sizeof path, j->dir, j->next_segno);
		snprintf(err, errlen, "cannot create journal segment %s: %s", path, strerror(errno));
		return -1;
	}
	j->recovered = true;
	flush(j);
	return 0;
}
