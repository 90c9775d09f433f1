/* test_journal.c: the persistent journal on a real event loop, in a fresh
 * temporary directory per test. Disk errors are injected through the
 * journal_io hooks (journal_int.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <endian.h>
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

#include "store/journal.h"
#include "store/journal_int.h"
#include "common/log.h"
#include "common/util.h"

/* ---- fault injection ---- */

/* Set by a test before the journal acts on them; the worker reads the
 * fsync ones after a job is handed over under the worker's mutex, and the
 * test reads them back only after the job's completion crossed it again. */
static struct {
	long pwrite_ok;		/* calls left before pwrite starts failing; -1 = never */
	int pwrite_errno;
	bool pwrite_partial;	/* the failing call first writes half */
	bool fail_new_segment;	/* fail writes at offset 0 (a new segment's header) */
	long pwrite_calls;
	int fsync_slow;		/* fdatasync calls left to delay by 200 ms (before any failing) */
	int fsync_fail;		/* fdatasync calls left to fail */
	int fsync_errno;
	long fsync_calls;
} inj;

static ssize_t test_pwrite(int fd, const void *buf, size_t n, off_t off)
{
	inj.pwrite_calls++;
	if (inj.fail_new_segment && off == 0) {
		errno = inj.pwrite_errno;
		return -1;
	}
	if (inj.pwrite_ok == 0) {
		if (inj.pwrite_partial && n > 1) {
			inj.pwrite_partial = false;
			return pwrite(fd, buf, n / 2, off);
		}
		errno = inj.pwrite_errno;
		return -1;
	}
	if (inj.pwrite_ok > 0)
		inj.pwrite_ok--;
	return pwrite(fd, buf, n, off);
}

static int test_fdatasync(int fd)
{
	inj.fsync_calls++;
	if (inj.fsync_slow > 0) {
		inj.fsync_slow--;
		usleep(200 * 1000);
		return fdatasync(fd);
	}
	if (inj.fsync_fail > 0) {
		inj.fsync_fail--;
		errno = inj.fsync_errno;
		return -1;
	}
	return fdatasync(fd);
}

/* ---- the fixture ---- */

struct got {
	uint32_t qid;
	uint64_t id;
	size_t len;
	bool payload_ok;
};

struct fx {
	char dir[64];
	struct event_base *base;
	struct event *tick;
	struct journal *j;
	struct journal_opts opts;
	struct journal_recovery rec;

	/* on_durable */
	uint64_t durable;	/* last seq reported durable */
	uint64_t last_seq;	/* last seq in any report */
	bool order_bad;
	int nfail;
	uint64_t fail_first, fail_last;
	int fail_err;

	/* replay */
	struct got *msgs;
	size_t nmsgs, msgcap;
	char meta[32][64];
	char metaval[32][64];
	size_t nmeta;
};

static void fill_payload(uint8_t *p, size_t len, uint64_t id)
{
	for (size_t i = 0; i < len; i++)
		p[i] = (uint8_t)(id * 131 + i * 7 + 1);
}

static bool check_payload(const uint8_t *p, size_t len, uint64_t id)
{
	for (size_t i = 0; i < len; i++)
		if (p[i] != (uint8_t)(id * 131 + i * 7 + 1))
			return false;
	return true;
}

static void on_durable(void *arg, uint64_t seq, uint64_t first_failed, int err)
{
	struct fx *f = arg;
	/* Reports only ever move forward, failures included. */
	if ((err ? first_failed : seq) <= f->last_seq || (err && seq < first_failed))
		f->order_bad = true;
	f->last_seq = seq;
	if (err) {
		f->nfail++;
		f->fail_first = first_failed;
		f->fail_last = seq;
		f->fail_err = err;
	} else {
		f->durable = seq;
	}
}

static void on_meta(void *arg, const char *key, const void *val, size_t len)
{
	struct fx *f = arg;
	assert_true(f->nmeta < 32);
	assert_true(len < 64);
	snprintf(f->meta[f->nmeta], 64, "%s", key);
	memcpy(f->metaval[f->nmeta], val, len);
	f->metaval[f->nmeta][len] = 0;
	f->nmeta++;
}

static void on_message(void *arg, uint32_t qid, uint64_t id, const void *payload, size_t len)
{
	struct fx *f = arg;
	if (f->nmsgs == f->msgcap) {
		f->msgcap = f->msgcap ? f->msgcap * 2 : 256;
		f->msgs = xrealloc(f->msgs, f->msgcap * sizeof *f->msgs);
	}
	f->msgs[f->nmsgs].qid = qid;
	f->msgs[f->nmsgs].id = id;
	f->msgs[f->nmsgs].len = len;
	f->msgs[f->nmsgs].payload_ok = check_payload(payload, len, id);
	f->nmsgs++;
}

static const struct journal_replay replay_cb = { on_meta, on_message };

static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
}

static int setup(void **state)
{
	struct fx *f = xcalloc(1, sizeof *f);
	struct timeval tv = { 0, 2000 };

	snprintf(f->dir, sizeof f->dir, "/tmp/test_journal.XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	f->base = event_base_new();
	/* A ticker, so that one loop iteration never blocks for long. */
	f->tick = event_new(f->base, -1, EV_PERSIST, tick_cb, NULL);
	event_add(f->tick, &tv);
	f->opts.dir = f->dir;
	f->opts.fsync = FSYNC_ALWAYS;
	f->opts.fsync_interval_ms = 50;
	f->opts.segment_size = 1 << 20;
	memset(&inj, 0, sizeof inj);
	inj.pwrite_ok = -1;
	journal_io.pwrite = test_pwrite;
	journal_io.fdatasync = test_fdatasync;
	journal_io.probe_ms = 20;
	log_set_level(getenv("TEST_LOG") ? atoi(getenv("TEST_LOG")) : LOG_NONE);
	*state = f;
	return 0;
}

static void rm_dir_files(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	char path[PATH_MAX];
	if (!d)
		return;
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
		unlink(path);
	}
	closedir(d);
}

static int teardown(void **state)
{
	struct fx *f = *state;
	journal_close(f->j);
	rm_dir_files(f->dir);
	rmdir(f->dir);
	event_free(f->tick);
	event_base_free(f->base);
	free(f->msgs);
	free(f);
	return 0;
}

static void clear_replay(struct fx *f)
{
	f->nmsgs = 0;
	f->nmeta = 0;
}

static void open_j(struct fx *f)
{
	char err[256] = "";
	clear_replay(f);
	f->durable = f->last_seq = 0;
	f->j = journal_open(f->base, &f->opts, on_durable, f, err, sizeof err);
	if (!f->j)
		fail_msg("journal_open: %s", err);
	if (journal_recover(f->j, &replay_cb, f, &f->rec, err, sizeof err) < 0)
		fail_msg("journal_recover: %s", err);
}

static void reopen(struct fx *f)
{
	journal_close(f->j);
	f->j = NULL;
	open_j(f);
}

static void close_j(struct fx *f)
{
	journal_close(f->j);
	f->j = NULL;
}

static bool run_until(struct fx *f, bool (*cond)(struct fx *, uint64_t), uint64_t arg, int timeout_ms)
{
	uint64_t end = mono_ms() + (uint64_t)timeout_ms;
	while (!cond(f, arg)) {
		if (mono_ms() > end)
			return false;
		event_base_loop(f->base, EVLOOP_ONCE);
	}
	return true;
}

static bool is_durable(struct fx *f, uint64_t seq) { return f->durable >= seq; }
static bool has_failed(struct fx *f, uint64_t n) { return f->nfail >= (int)n; }
static bool is_healthy(struct fx *f, uint64_t unused)
{
	struct journal_stats st;
	(void)unused;
	journal_get_stats(f->j, &st);
	return st.failing_errno == 0;
}

static void wait_durable(struct fx *f, uint64_t seq)
{
	if (!run_until(f, is_durable, seq, 5000))
		fail_msg("seq %" PRIu64 " not durable within 5 s (durable %" PRIu64 ")", seq, f->durable);
	assert_false(f->order_bad);
}

static void run_for(struct fx *f, int ms)
{
	uint64_t end = mono_ms() + (uint64_t)ms;
	while (mono_ms() < end)
		event_base_loop(f->base, EVLOOP_ONCE);
}

static uint64_t put(struct fx *f, uint32_t qid, uint64_t id, size_t len)
{
	uint8_t buf[4096];
	uint64_t seq;
	assert_true(len <= sizeof buf);
	fill_payload(buf, len, id);
	seq = journal_put_message(f->j, qid, id, buf, len);
	if (!seq)
		fail_msg("put_message(q%u, %" PRIu64 "): %s", qid, id, strerror(errno));
	return seq;
}

static struct journal_stats stats(struct fx *f)
{
	struct journal_stats st;
	journal_get_stats(f->j, &st);
	return st;
}

static char *seg_file(struct fx *f, uint64_t no, char *buf, size_t len)
{
	snprintf(buf, len, "%s/%08" PRIu64 ".seg", f->dir, no);
	return buf;
}

static long file_size(const char *path)
{
	struct stat sb;
	return stat(path, &sb) < 0 ? -1 : (long)sb.st_size;
}

static uint8_t *read_file(const char *path, size_t *len)
{
	FILE *fp = fopen(path, "rb");
	long n;
	uint8_t *p;
	assert_non_null(fp);
	fseek(fp, 0, SEEK_END);
	n = ftell(fp);
	fseek(fp, 0, SEEK_SET);
	p = xmalloc((size_t)n + 1);
	assert_int_equal(fread(p, 1, (size_t)n, fp), (size_t)n);
	fclose(fp);
	*len = (size_t)n;
	return p;
}

static void write_file(const char *path, const void *p, size_t len)
{
	FILE *fp = fopen(path, "wb");
	assert_non_null(fp);
	assert_int_equal(fwrite(p, 1, len, fp), len);
	fclose(fp);
}

/* ---- a model of what recovery must hand back ---- */

struct model {
	struct got *v;
	size_t n, cap;
};

static void model_add(struct model *m, uint32_t qid, uint64_t id, size_t len)
{
	if (m->n == m->cap) {
		m->cap = m->cap ? m->cap * 2 : 256;
		m->v = xrealloc(m->v, m->cap * sizeof *m->v);
	}
	m->v[m->n++] = (struct got){ qid, id, len, true };
}

static void model_del(struct model *m, uint32_t qid, uint64_t id)
{
	for (size_t i = 0; i < m->n; i++) {
		if (m->v[i].qid == qid && m->v[i].id == id) {
			m->v[i] = m->v[--m->n];
			return;
		}
	}
	fail_msg("model has no q%u/%" PRIu64, qid, id);
}

static int cmp_got(const void *a, const void *b)
{
	const struct got *x = a, *y = b;
	if (x->qid != y->qid)
		return x->qid < y->qid ? -1 : 1;
	return x->id < y->id ? -1 : x->id > y->id;
}

/* The replay equals the model: grouped by queue, in id order, payloads intact. */
static void model_check(struct fx *f, struct model *m)
{
	qsort(m->v, m->n, sizeof *m->v, cmp_got);
	for (size_t i = 1; i < f->nmsgs; i++) {
		const struct got *a = &f->msgs[i - 1], *b = &f->msgs[i];
		if (a->qid == b->qid && a->id >= b->id)
			fail_msg("replay out of order on q%u: %" PRIu64 " then %" PRIu64, a->qid, a->id, b->id);
		for (size_t k = 0; k + 1 < i && a->qid != b->qid; k++)
			if (f->msgs[k].qid == b->qid)
				fail_msg("replay of q%u is not grouped", b->qid);
	}
	qsort(f->msgs, f->nmsgs, sizeof *f->msgs, cmp_got);
	if (f->nmsgs != m->n)
		fail_msg("replayed %zu (queue, message) pairs, expected %zu", f->nmsgs, m->n);
	for (size_t i = 0; i < m->n; i++) {
		const struct got *g = &f->msgs[i], *e = &m->v[i];
		if (g->qid != e->qid || g->id != e->id || g->len != e->len || !g->payload_ok)
			fail_msg("pair %zu: got q%u/%" PRIu64 " len %zu%s, expected q%u/%" PRIu64 " len %zu",
			         i, g->qid, g->id, g->len, g->payload_ok ? "" : " (payload damaged)",
			         e->qid, e->id, e->len);
	}
}

static const char *meta_get(struct fx *f, const char *key)
{
	for (size_t i = 0; i < f->nmeta; i++)
		if (strcmp(f->meta[i], key) == 0)
			return f->metaval[i];
	return NULL;
}

/* ---- the record format ---- */

static void test_record_format_roundtrip(void **state)
{
	/* Every record type encodes to jrec_size() bytes and decodes to the
	 * same fields; a buffer of them walks record by record. */
	static const uint8_t payload[] = { 0, 1, 2, 0xff, 'x' };
	const struct jrec recs[] = {
		{ .type = JREC_MESSAGE, .qid = 7, .msg_id = 0x0123456789abcdefULL, .val = payload, .vlen = sizeof payload },
		{ .type = JREC_MESSAGE, .qid = 0xffffffffu, .msg_id = 1, .val = NULL, .vlen = 0 },
		{ .type = JREC_ENQUEUE, .qid = 9, .msg_id = 42 },
		{ .type = JREC_REMOVE, .qid = 9, .msg_id = 42 },
		{ .type = JREC_META_PUT, .key = "queue:/queue/a", .klen = 14, .val = "persistent", .vlen = 10 },
		{ .type = JREC_META_PUT, .key = "k", .klen = 1, .val = NULL, .vlen = 0 },
		{ .type = JREC_META_DEL, .key = "queue:/queue/a", .klen = 14 },
	};
	struct sbuf b;
	size_t off = 0;
	uint8_t h[JSEG_HEADER_SIZE];
	uint64_t no;
	uint32_t hb;

	sbuf_init(&b);
	for (size_t i = 0; i < ARRAY_LEN(recs); i++) {
		size_t before = b.len;
		jrec_encode(&b, &recs[i]);
		assert_int_equal(b.len - before, jrec_size(&recs[i]));
	}
	for (size_t i = 0; i < ARRAY_LEN(recs); i++) {
		struct jrec r;
		assert_int_equal(jrec_decode(b.buf + off, b.len - off, &r, NULL), JREC_OK);
		assert_int_equal(r.type, recs[i].type);
		assert_int_equal(r.size, jrec_size(&recs[i]));
		if (r.type <= JREC_REMOVE) {
			assert_int_equal(r.qid, recs[i].qid);
			assert_int_equal(r.msg_id, recs[i].msg_id);
		} else {
			assert_int_equal(r.klen, recs[i].klen);
			assert_memory_equal(r.key, recs[i].key, r.klen);
		}
		assert_int_equal(r.vlen, recs[i].vlen);
		if (r.vlen)
			assert_memory_equal(r.val, recs[i].val, r.vlen);
		off += r.size;
	}
	assert_int_equal(off, b.len);
	sbuf_fini(&b);

	jseg_header_encode(h, 12345, 678);
	assert_true(jseg_header_decode(h, sizeof h, &no, &hb));
	assert_int_equal(no, 12345);
	assert_int_equal(hb, 678);
	assert_false(jseg_header_decode(h, sizeof h - 1, &no, &hb));
	h[20] ^= 1;
	assert_false(jseg_header_decode(h, sizeof h, &no, &hb));

	assert_true(jseg_parse_name("00000042.seg", &no));
	assert_int_equal(no, 42);
	assert_false(jseg_parse_name("00000042.seg.bad", &no));
	assert_false(jseg_parse_name("x0000042.seg", &no));
	assert_false(jseg_parse_name(".seg", &no));
	(void)state;
}

static void test_record_any_flipped_byte_is_detected(void **state)
{
	/* Changing any one byte of a record, its length and checksum
	 * included, never decodes as a valid record. */
	uint8_t payload[100];
	struct jrec in = { .type = JREC_MESSAGE, .qid = 3, .msg_id = 77, .val = payload, .vlen = sizeof payload };
	struct sbuf b;

	fill_payload(payload, sizeof payload, 77);
	sbuf_init(&b);
	jrec_encode(&b, &in);
	for (size_t i = 0; i < b.len; i++) {
		for (int bit = 0; bit < 8; bit++) {
			struct jrec r;
			b.buf[i] ^= (char)(1 << bit);
			if (jrec_decode(b.buf, b.len, &r, NULL) == JREC_OK)
				fail_msg("flip of bit %d in byte %zu went unnoticed", bit, i);
			b.buf[i] ^= (char)(1 << bit);
		}
	}
	/* ... and every strict prefix is a torn record, not a valid one. */
	for (size_t n = 0; n < b.len; n++) {
		struct jrec r;
		assert_int_equal(jrec_decode(b.buf, n, &r, NULL), JREC_SHORT);
	}
	sbuf_fini(&b);
	(void)state;
}

static void test_record_zero_length_is_bad(void **state)
{
	/* A zeroed region is never mistaken for records, and counts as one
	 * dropped record however long it is. */
	uint8_t zeros[4096] = { 0 };
	struct jrec r;
	const char *why = NULL;
	assert_int_equal(jrec_decode(zeros, sizeof zeros, &r, &why), JREC_BAD);
	assert_non_null(why);
	assert_int_equal(jrec_count_dropped(zeros, sizeof zeros), 1);
	assert_int_equal(jrec_count_dropped(zeros, 0), 0);
	(void)state;
}

/* ---- recovery ---- */

static void test_recover_messages_enqueues_removes_meta(void **state)
{
	/* Messages, fan-out, removals and META come back after a reopen:
	 * queue by queue, in id order, with their payloads. */
	struct fx *f = *state;
	struct model m = { 0 };
	uint64_t seq = 0;

	open_j(f);
	assert_int_equal(f->rec.messages, 0);
	assert_int_equal(f->rec.dropped_bytes, 0);
	for (uint64_t id = 1; id <= 50; id++) {
		uint32_t q = id % 2 ? 1 : 2;
		put(f, q, id, 10 + id);
		model_add(&m, q, id, 10 + id);
	}
	for (uint64_t id = 5; id <= 50; id += 5) {
		seq = journal_enqueue(f->j, 3, id);
		assert_int_not_equal(seq, 0);
		model_add(&m, 3, id, 10 + id);
	}
	for (uint64_t id = 10; id <= 30; id += 10) {	/* off q2 only: still on q3 */
		assert_int_not_equal(journal_remove(f->j, 2, id), 0);
		model_del(&m, 2, id);
	}
	assert_int_not_equal(journal_remove(f->j, 1, 1), 0);
	model_del(&m, 1, 1);
	assert_int_not_equal(journal_meta_put(f->j, "queue:/queue/a", "persistent", 10), 0);
	assert_int_not_equal(journal_meta_put(f->j, "queue:/queue/b", "v1", 2), 0);
	assert_int_not_equal(journal_meta_put(f->j, "queue:/queue/b", "v2", 2), 0);
	assert_int_not_equal(journal_meta_put(f->j, "paused:/queue/c", "1", 1), 0);
	seq = journal_meta_del(f->j, "paused:/queue/c");
	assert_int_not_equal(seq, 0);
	wait_durable(f, seq);

	reopen(f);
	model_check(f, &m);
	assert_int_equal(f->rec.messages, m.n);
	assert_int_equal(f->rec.max_msg_id, 50);
	assert_int_equal(f->rec.dropped_bytes, 0);
	assert_int_equal(f->nmeta, 2);
	assert_string_equal(meta_get(f, "queue:/queue/a"), "persistent");
	assert_string_equal(meta_get(f, "queue:/queue/b"), "v2");
	assert_null(meta_get(f, "paused:/queue/c"));
	assert_int_equal(stats(f).live_messages, 49);

	/* A second reopen without changes gives the same state. */
	reopen(f);
	model_check(f, &m);
	assert_int_equal(f->nmeta, 2);
	free(m.v);
}

/* Writes three messages (and for `remove_last` a REMOVE of the third from
 * q1) and returns the first segment's bytes and where its last record starts. */
static uint8_t *three_records(struct fx *f, bool remove_last, size_t *len, size_t *last_start)
{
	char path[PATH_MAX];
	uint8_t *bytes;
	size_t last_size;

	open_j(f);
	put(f, 1, 1, 100);
	put(f, 2, 2, 100);
	put(f, 1, 3, 100);
	last_size = JREC_PREFIX + 1 + JREC_QFIELDS + 100;
	if (remove_last) {
		assert_int_not_equal(journal_remove(f->j, 1, 3), 0);
		last_size = JREC_PREFIX + 1 + JREC_QFIELDS;
	}
	close_j(f);
	bytes = read_file(seg_file(f, 1, path, sizeof path), len);
	*last_start = *len - last_size;
	return bytes;
}

static void torn_at_every_byte(struct fx *f, bool remove_last)
{
	char path[PATH_MAX];
	size_t len, start;
	uint8_t *orig = three_records(f, remove_last, &len, &start);

	f->opts.fsync = FSYNC_NEVER;	/* speed: nothing here is about fsync */
	for (size_t cut = start; cut < len; cut++) {
		rm_dir_files(f->dir);
		write_file(seg_file(f, 1, path, sizeof path), orig, cut);
		open_j(f);
		/* The earlier records survive, the torn one does not. */
		assert_int_equal(f->rec.dropped_bytes, cut - start);
		assert_int_equal(f->rec.dropped_records, cut > start ? 1 : 0);
		if (remove_last) {
			/* Losing the REMOVE keeps message 3 on q1. */
			assert_int_equal(f->nmsgs, 3);
			assert_int_equal(f->msgs[0].id, 1);
			assert_int_equal(f->msgs[1].id, 3);
			assert_int_equal(f->msgs[2].id, 2);
		} else {
			assert_int_equal(f->nmsgs, 2);
			assert_int_equal(f->msgs[0].qid, 1);
			assert_int_equal(f->msgs[0].id, 1);
			assert_int_equal(f->msgs[1].qid, 2);
			assert_int_equal(f->msgs[1].id, 2);
		}
		assert_true(f->msgs[0].payload_ok && f->msgs[1].payload_ok);
		/* The file is cut back to the last whole record. */
		assert_int_equal(file_size(seg_file(f, 1, path, sizeof path)), start);
		close_j(f);
	}
	/* The uncut file recovers whole. */
	rm_dir_files(f->dir);
	write_file(seg_file(f, 1, path, sizeof path), orig, len);
	open_j(f);
	assert_int_equal(f->rec.dropped_bytes, 0);
	assert_int_equal(f->nmsgs, remove_last ? 2 : 3);
	free(orig);
}

static void test_torn_message_at_every_byte(void **state)
{
	/* A crash at any byte of the last record (a MESSAGE) costs that
	 * record only, and the tail is cut and reported. */
	torn_at_every_byte(*state, false);
}

static void test_torn_remove_at_every_byte(void **state)
{
	/* The same for a REMOVE: losing it puts the message back. */
	torn_at_every_byte(*state, true);
}

static void test_zeroed_tail_is_cut(void **state)
{
	/* Zeros after the last record (a filesystem that extended the file
	 * but lost the data) are cut and counted as one dropped record. */
	struct fx *f = *state;
	char path[PATH_MAX];
	uint8_t zeros[4096] = { 0 };
	size_t len, start;
	uint8_t *orig = three_records(f, false, &len, &start);
	FILE *fp = fopen(seg_file(f, 1, path, sizeof path), "ab");

	assert_non_null(fp);
	assert_int_equal(fwrite(zeros, 1, sizeof zeros, fp), sizeof zeros);
	fclose(fp);
	open_j(f);
	assert_int_equal(f->rec.dropped_bytes, sizeof zeros);
	assert_int_equal(f->rec.dropped_records, 1);
	assert_int_equal(f->nmsgs, 3);
	assert_int_equal(file_size(path), len);
	free(orig);
}

/* The names in the journal directory ending in `suffix`, counted. */
static int count_files(struct fx *f, const char *suffix)
{
	DIR *d = opendir(f->dir);
	struct dirent *e;
	int n = 0;
	assert_non_null(d);
	while ((e = readdir(d))) {
		size_t l = strlen(e->d_name), k = strlen(suffix);
		n += l >= k && strcmp(e->d_name + l - k, suffix) == 0;
	}
	closedir(d);
	return n;
}

static void test_flipped_bit_costs_one_record(void **state)
{
	/* One flipped bit anywhere in a record in the middle of a segment
	 * (its length, checksum, type, ids or payload) costs that record
	 * only: recovery reads on from the next valid one, says what it
	 * skipped, keeps the damaged file as .seg.bad and rewrites the
	 * segment without the damage, so that the next recovery is clean. */
	struct fx *f = *state;
	char path[PATH_MAX], bad[PATH_MAX + 8];
	size_t len, start, rec = JREC_PREFIX + 1 + JREC_QFIELDS + 100;
	uint8_t *orig = three_records(f, false, &len, &start);
	size_t second = start - rec;

	f->opts.fsync = FSYNC_NEVER;	/* speed: nothing here is about fsync */
	for (size_t byte = 0; byte < rec; byte += byte < 24 ? 1 : 9) {
		for (int bit = 0; bit < 8; bit++) {
			size_t blen;
			uint8_t *kept;
			rm_dir_files(f->dir);
			orig[second + byte] ^= (uint8_t)(1 << bit);
			write_file(seg_file(f, 1, path, sizeof path), orig, len);
			open_j(f);
			if (f->nmsgs != 2 || f->msgs[0].id != 1 || f->msgs[1].id != 3 ||
			    !f->msgs[0].payload_ok || !f->msgs[1].payload_ok)
				fail_msg("bit %d of byte %zu: %zu messages back", bit, byte, f->nmsgs);
			assert_int_equal(f->rec.skipped_records, 1);
			assert_int_equal(f->rec.skipped_bytes, rec);
			assert_int_equal(f->rec.dropped_bytes, 0);
			assert_int_equal(f->rec.damaged_segments, 1);
			/* The damaged file is kept as it was ... */
			snprintf(bad, sizeof bad, "%s.bad", path);
			kept = read_file(bad, &blen);
			assert_int_equal(blen, len);
			assert_memory_equal(kept, orig, len);
			free(kept);
			/* ... and the segment holds the other records only. */
			assert_int_equal(file_size(path), len - rec);
			close_j(f);
			orig[second + byte] ^= (uint8_t)(1 << bit);
		}
	}
	free(orig);
}

static void test_skipped_damage_then_appends_and_reads(void **state)
{
	/* After skipping a damaged record in a segment of many, every other
	 * message reads back from the rewritten file (their offsets moved),
	 * appends go on, and the next recovery finds no damage. */
	struct fx *f = *state;
	char path[PATH_MAX];
	struct model m = { 0 };
	uint8_t *bytes;
	size_t len, off = JSEG_HEADER_SIZE, rec = JREC_PREFIX + 1 + JREC_QFIELDS + 200;
	uint64_t seq = 0;
	void *p;
	size_t plen;

	open_j(f);
	for (uint64_t id = 1; id <= 200; id++) {
		put(f, 1 + (uint32_t)(id % 2), id, 200);
		if (id != 10)
			model_add(&m, 1 + (uint32_t)(id % 2), id, 200);
	}
	close_j(f);
	bytes = read_file(seg_file(f, 1, path, sizeof path), &len);
	off += 9 * rec;				/* message 10 */
	bytes[off + JREC_PREFIX + 1 + JREC_QFIELDS + 50] ^= 0x10;
	write_file(path, bytes, len);
	open_j(f);
	model_check(f, &m);
	assert_int_equal(f->rec.skipped_records, 1);
	assert_int_equal(count_files(f, ".seg.bad"), 1);
	assert_int_equal(count_files(f, ".seg.tmp"), 0);
	for (uint64_t id = 1; id <= 200; id++) {
		if (id == 10) {
			assert_int_equal(journal_read_message(f->j, id, &p, &plen), -1);
			continue;
		}
		assert_int_equal(journal_read_message(f->j, id, &p, &plen), 0);
		assert_int_equal(plen, 200);
		assert_true(check_payload(p, plen, id));
		free(p);
	}
	for (uint64_t id = 201; id <= 250; id++) {
		seq = put(f, 3, id, 50);
		model_add(&m, 3, id, 50);
	}
	seq = journal_remove(f->j, 2, 11);
	model_del(&m, 2, 11);
	wait_durable(f, seq);
	reopen(f);
	model_check(f, &m);
	assert_int_equal(f->rec.skipped_records, 0);
	assert_int_equal(f->rec.dropped_bytes, 0);
	assert_int_equal(count_files(f, ".seg.bad"), 1);
	free(bytes);
	free(m.v);
}

static void test_damaged_length_resynchronises(void **state)
{
	/* A length field made huge, or small, or zero, in the middle: the
	 * search finds the next record by its checksum, one record is lost. */
	struct fx *f = *state;
	char path[PATH_MAX];
	size_t len, start, rec = JREC_PREFIX + 1 + JREC_QFIELDS + 100;
	uint8_t *orig = three_records(f, false, &len, &start);
	static const uint32_t lengths[] = { 0, 1, 13, 50, 0x7fffffff, 0x3fffffff, 500 };

	f->opts.fsync = FSYNC_NEVER;
	for (size_t i = 0; i < ARRAY_LEN(lengths); i++) {
		uint8_t *b = xmalloc(len);
		uint32_t le = htole32(lengths[i]);
		memcpy(b, orig, len);
		memcpy(b + start - rec, &le, 4);
		rm_dir_files(f->dir);
		write_file(seg_file(f, 1, path, sizeof path), b, len);
		open_j(f);
		if (f->nmsgs != 2 || f->msgs[0].id != 1 || f->msgs[1].id != 3)
			fail_msg("length %u: %zu messages back", lengths[i], f->nmsgs);
		assert_int_equal(f->rec.skipped_records, 1);
		close_j(f);
		free(b);
	}
	free(orig);
}

static void test_torn_tail_is_cut_without_setting_aside(void **state)
{
	/* A torn last record of the newest segment is what a crash leaves:
	 * cut as always, reported as dropped, no .bad file, no error count. */
	struct fx *f = *state;
	char path[PATH_MAX];
	size_t len, start;
	uint8_t *orig = three_records(f, false, &len, &start);

	write_file(seg_file(f, 1, path, sizeof path), orig, len - 7);
	open_j(f);
	assert_int_equal(f->nmsgs, 2);
	assert_int_equal(f->rec.dropped_records, 1);
	assert_int_equal(f->rec.skipped_records, 0);
	assert_int_equal(f->rec.damaged_segments, 0);
	assert_int_equal(count_files(f, ".bad"), 0);
	assert_int_equal(file_size(path), start);
	free(orig);
}

static void test_bad_tail_of_an_older_segment_is_damage(void **state)
{
	/* A bad tail in a segment that is not the newest is no torn write:
	 * it is skipped as damage, and the file is set aside first. */
	struct fx *f = *state;
	char path[PATH_MAX];
	size_t len, start;
	uint8_t *orig = three_records(f, false, &len, &start);

	open_j(f);	/* makes segment 2 */
	close_j(f);
	orig[len - 3] ^= 0x01;
	write_file(seg_file(f, 1, path, sizeof path), orig, len);
	open_j(f);
	assert_int_equal(f->nmsgs, 2);
	assert_int_equal(f->rec.skipped_records, 1);
	assert_int_equal(f->rec.dropped_bytes, 0);
	assert_int_equal(count_files(f, ".seg.bad"), 1);
	assert_int_equal(file_size(path), start);
	free(orig);
}

static void test_damaged_segment_header_keeps_its_records(void **state)
{
	/* A flipped bit in the header of the newest segment no longer costs
	 * the segment: its records are read, the file is set aside and
	 * rewritten with a header that says its snapshot is unknown, and META
	 * that older segments hold is not swept away. */
	struct fx *f = *state;
	char path[PATH_MAX];
	uint8_t *b;
	size_t len;
	uint64_t no;
	uint32_t hb;

	open_j(f);
	assert_int_not_equal(journal_meta_put(f->j, "k1", "a", 1), 0);
	put(f, 1, 1, 100);
	reopen(f);	/* segment 2: snapshot of k1, then records */
	put(f, 1, 2, 100);
	put(f, 2, 3, 100);
	close_j(f);
	b = read_file(seg_file(f, 2, path, sizeof path), &len);
	b[17] ^= 0x04;	/* the segment number */
	write_file(path, b, len);
	open_j(f);
	assert_int_equal(f->nmsgs, 3);
	assert_int_equal(f->rec.damaged_segments, 1);
	assert_string_equal(meta_get(f, "k1"), "a");
	assert_int_equal(count_files(f, ".seg.bad"), 1);
	free(b);
	b = read_file(path, &len);
	assert_true(jseg_header_decode(b, len, &no, &hb));
	assert_int_equal(no, 2);
	assert_int_equal(hb, JSEG_HEAD_UNKNOWN);
	reopen(f);	/* the rewritten segment reads clean */
	assert_int_equal(f->nmsgs, 3);
	assert_int_equal(f->rec.skipped_records, 0);
	assert_string_equal(meta_get(f, "k1"), "a");
	free(b);
}

static void test_damaged_snapshot_does_not_sweep(void **state)
{
	/* A damaged record in a META snapshot makes the snapshot not whole:
	 * the key it restated survives from the older segment instead of
	 * being swept away, and the other keys are read. */
	struct fx *f = *state;
	char path[PATH_MAX];
	uint8_t *b;
	size_t len;

	open_j(f);
	assert_int_not_equal(journal_meta_put(f->j, "k1", "a", 1), 0);
	assert_int_not_equal(journal_meta_put(f->j, "k2", "b", 1), 0);
	put(f, 1, 1, 100);
	reopen(f);	/* segment 2 starts with a snapshot of k1 and k2 */
	put(f, 1, 2, 100);
	close_j(f);
	b = read_file(seg_file(f, 2, path, sizeof path), &len);
	b[JSEG_HEADER_SIZE + JREC_PREFIX + 4] ^= 0x20;	/* inside the first snapshot record */
	write_file(path, b, len);
	open_j(f);
	assert_int_equal(f->nmsgs, 2);
	assert_int_equal(f->rec.skipped_records, 1);
	assert_int_equal(f->nmeta, 2);
	assert_string_equal(meta_get(f, "k1"), "a");
	assert_string_equal(meta_get(f, "k2"), "b");
	reopen(f);
	assert_int_equal(f->nmeta, 2);
	assert_int_equal(f->rec.skipped_records, 0);
	free(b);
}

static void test_unreadable_files_are_set_aside_or_removed(void **state)
{
	/* A newest segment of zeros is a torn creation and goes; one of
	 * garbage is set aside, never deleted. */
	struct fx *f = *state;
	char path[PATH_MAX];
	uint8_t junk[300];
	size_t len, start;
	uint8_t *orig = three_records(f, false, &len, &start);

	memset(junk, 0, sizeof junk);
	write_file(seg_file(f, 2, path, sizeof path), junk, sizeof junk);
	open_j(f);
	assert_int_equal(f->nmsgs, 3);
	assert_int_equal(file_size(path), -1);
	assert_int_equal(count_files(f, ".bad"), 0);
	close_j(f);
	rm_dir_files(f->dir);
	write_file(seg_file(f, 1, path, sizeof path), orig, len);
	for (size_t i = 0; i < sizeof junk; i++)
		junk[i] = (uint8_t)(i * 37 + 11);
	write_file(seg_file(f, 2, path, sizeof path), junk, sizeof junk);
	open_j(f);
	assert_int_equal(f->nmsgs, 3);
	assert_int_equal(file_size(path), -1);
	assert_int_equal(count_files(f, ".seg.bad"), 1);
	assert_int_equal(f->rec.skipped_records, 1);
	free(orig);
}

static void test_failed_rewrite_leaves_the_segment_as_it_was(void **state)
{
	/* When the rewrite cannot be made durable the damaged segment stays
	 * as it is (no truncation, no half-written file) and is read the same
	 * way; the next recovery rewrites it. */
	struct fx *f = *state;
	char path[PATH_MAX];
	size_t len, start, rec = JREC_PREFIX + 1 + JREC_QFIELDS + 100;
	uint8_t *orig = three_records(f, false, &len, &start);
	void *p;
	size_t plen;

	orig[start - rec + 30] ^= 0x08;
	write_file(seg_file(f, 1, path, sizeof path), orig, len);
	inj.fsync_fail = 1;
	inj.fsync_errno = EIO;
	open_j(f);
	assert_int_equal(f->nmsgs, 2);
	assert_int_equal(file_size(path), len);
	assert_int_equal(count_files(f, ".seg.tmp"), 0);
	assert_int_equal(journal_read_message(f->j, 3, &p, &plen), 0);
	assert_true(check_payload(p, plen, 3));
	free(p);
	reopen(f);
	assert_int_equal(f->nmsgs, 2);
	assert_int_equal(f->rec.skipped_records, 1);
	assert_int_equal(file_size(path), len - rec);
	assert_int_equal(count_files(f, ".seg.bad"), 1);	/* the same file, not a second copy */
	free(orig);
}

static void test_rewrite_cut_short_by_a_crash(void **state)
{
	/* A crash during a rewrite leaves the set-aside link and a partial
	 * .seg.tmp: the next recovery reuses the link (no second copy),
	 * removes the leftover and rewrites. */
	struct fx *f = *state;
	char path[PATH_MAX], bad[PATH_MAX + 8], tmp[PATH_MAX + 8];
	size_t len, start, rec = JREC_PREFIX + 1 + JREC_QFIELDS + 100;
	uint8_t *orig = three_records(f, false, &len, &start);

	orig[start - rec + 40] ^= 0x02;
	write_file(seg_file(f, 1, path, sizeof path), orig, len);
	snprintf(bad, sizeof bad, "%s.bad", path);
	snprintf(tmp, sizeof tmp, "%s.tmp", path);
	assert_int_equal(link(path, bad), 0);
	write_file(tmp, orig, 100);
	open_j(f);
	assert_int_equal(f->nmsgs, 2);
	assert_int_equal(f->rec.skipped_records, 1);
	assert_int_equal(count_files(f, ".bad"), 1);
	assert_int_equal(count_files(f, ".tmp"), 0);
	assert_int_equal(file_size(path), len - rec);
	assert_int_equal(file_size(bad), len);
	free(orig);
}

static void test_resync_search(void **state)
{
	/* jrec_resync on its own: the bad record's length is tried first, a
	 * damaged length is searched past, nothing valid after is the end,
	 * and a payload built to look like endless candidates exhausts the
	 * budget instead of taking quadratic time. */
	uint8_t payload[64];
	struct sbuf b;
	size_t offs[5], n = 0;
	uint64_t budget;

	sbuf_init(&b);
	fill_payload(payload, sizeof payload, 5);
	for (uint64_t id = 1; id <= 5; id++) {
		struct jrec r = { .type = JREC_MESSAGE, .qid = 1, .msg_id = id, .val = payload, .vlen = sizeof payload };
		offs[n++] = b.len;
		jrec_encode(&b, &r);
	}
	budget = JREC_RESYNC_BUDGET;
	b.buf[offs[1] + 30] ^= 1;	/* payload of record 2 */
	assert_int_equal(jrec_resync(b.buf, b.len, offs[1], &budget), offs[2]);
	b.buf[offs[1] + 30] ^= 1;
	b.buf[offs[1] + 2] ^= 0x40;	/* its length */
	assert_int_equal(jrec_resync(b.buf, b.len, offs[1], &budget), offs[2]);
	b.buf[offs[1] + 2] ^= 0x40;
	assert_int_equal(jrec_resync(b.buf, b.len, offs[4], &budget), b.len);	/* last one */
	/* a bad record followed by a torn one is all tail */
	assert_int_equal(jrec_resync(b.buf, offs[4] + 10, offs[3], &budget), offs[4] + 10);
	assert_true(budget > 0);
	sbuf_fini(&b);

	{
		/* 4 MiB repeating 01 00 10 00: at every fourth offset a
		 * MESSAGE of 1 MiB whose successor would run past the end,
		 * so a candidate that costs a checksum of 1 MiB. Unbounded,
		 * that is a million of them; the budget stops it. */
		size_t big = 4u << 20;
		uint8_t *p = xmalloc(big);
		uint64_t t0 = mono_ms();
		for (size_t i = 0; i < big; i += 4) {
			p[i] = 0x01;
			p[i + 1] = 0x00;
			p[i + 2] = 0x10;
			p[i + 3] = 0x00;
		}
		budget = 64u << 20;
		assert_int_equal(jrec_resync(p, big, 0, &budget), big);
		assert_int_equal(budget, 0);
		assert_true(mono_ms() - t0 < 5000);
		free(p);
	}
	(void)state;
}

static void test_torn_segment_header(void **state)
{
	/* A newest segment whose header was torn (a crash while creating it)
	 * is removed; the segments before it recover whole. */
	struct fx *f = *state;
	char path[PATH_MAX];
	size_t len, start;
	uint8_t *orig = three_records(f, false, &len, &start);

	/* A reopen makes segment 2 (header, empty snapshot); tear its header. */
	open_j(f);
	close_j(f);
	assert_true(file_size(seg_file(f, 2, path, sizeof path)) >= JSEG_HEADER_SIZE);
	assert_int_equal(truncate(path, JSEG_HEADER_SIZE - 5), 0);
	open_j(f);
	assert_int_equal(f->rec.dropped_bytes, JSEG_HEADER_SIZE - 5);
	assert_int_equal(f->rec.dropped_records, 1);
	assert_int_equal(f->nmsgs, 3);
	assert_int_equal(file_size(path), -1);
	free(orig);
}

static void test_multi_segment_reopen(void **state)
{
	/* Many segments, several queues, interleaved removes and reopens:
	 * every recovery matches the model. */
	struct fx *f = *state;
	struct model m = { 0 };
	uint64_t next = 1, seq = 0;

	f->opts.segment_size = 4096;
	srand(7);
	open_j(f);
	for (int round = 0; round < 4; round++) {
		for (int i = 0; i < 300; i++) {
			uint32_t q = 1 + (uint32_t)(rand() % 3);
			int op = rand() % 10;
			if (i % 50 == 0) {
				char key[32], val[32];
				snprintf(key, sizeof key, "q%d", i % 7);
				snprintf(val, sizeof val, "r%d", round);
				seq = journal_meta_put(f->j, key, val, strlen(val));
			}
			if (op < 6 || m.n == 0) {
				size_t len = (size_t)(rand() % 300);
				seq = put(f, q, next, len);
				model_add(&m, q, next++, len);
			} else if (op < 8) {
				struct got g = m.v[(size_t)rand() % m.n];
				uint32_t q2 = 1 + (g.qid % 3);
				bool on = false;
				for (size_t k = 0; k < m.n; k++)
					on |= m.v[k].id == g.id && m.v[k].qid == q2;
				if (on)
					continue;
				seq = journal_enqueue(f->j, q2, g.id);
				assert_int_not_equal(seq, 0);
				model_add(&m, q2, g.id, g.len);
			} else {
				struct got g = m.v[(size_t)rand() % m.n];
				seq = journal_remove(f->j, g.qid, g.id);
				assert_int_not_equal(seq, 0);
				model_del(&m, g.qid, g.id);
			}
		}
		wait_durable(f, seq);
		reopen(f);
		model_check(f, &m);
		assert_int_equal(f->rec.dropped_bytes, 0);
		assert_int_equal(f->rec.max_msg_id, next - 1);
		assert_int_equal(f->nmeta, 6);
		for (size_t k = 0; k < f->nmeta; k++) {
			char want[32];
			snprintf(want, sizeof want, "r%d", round);
			assert_string_equal(f->metaval[k], want);
		}
	}
	free(m.v);
}

/* ---- deletion and compaction ---- */

static bool segs_deleted(struct fx *f, uint64_t n) { return stats(f).segments_deleted >= n; }
static bool compacted(struct fx *f, uint64_t n)
{
	struct journal_stats st = stats(f);
	return st.compactions >= n && st.segments_deleted >= n;
}

static void test_dead_segments_are_deleted(void **state)
{
	/* Once every message of the oldest segments is removed, those files
	 * go; META written in them survives through the later snapshots, and
	 * a META key deleted meanwhile does not come back. */
	struct fx *f = *state;
	char path[PATH_MAX];
	uint64_t seq = 0;
	struct journal_stats st;

	f->opts.segment_size = 8192;
	open_j(f);
	assert_int_not_equal(journal_meta_put(f->j, "queue:/queue/a", "p", 1), 0);
	assert_int_not_equal(journal_meta_put(f->j, "queue:/queue/gone", "p", 1), 0);
	for (uint64_t id = 1; id <= 300; id++)
		put(f, 1, id, 100);
	assert_int_not_equal(journal_meta_del(f->j, "queue:/queue/gone"), 0);
	for (uint64_t id = 1; id <= 250; id++)
		seq = journal_remove(f->j, 1, id);
	wait_durable(f, seq);
	if (!run_until(f, segs_deleted, 2, 3000))
		fail_msg("no dead segment deleted: %" PRIu64, stats(f).segments_deleted);
	st = stats(f);
	assert_int_equal(file_size(seg_file(f, 1, path, sizeof path)), -1);
	assert_int_equal(st.live_messages, 50);
	assert_int_equal(st.live_bytes, 5000);

	reopen(f);
	assert_int_equal(f->nmsgs, 50);
	assert_int_equal(f->msgs[0].id, 251);
	assert_int_equal(f->msgs[49].id, 300);
	assert_int_equal(f->nmeta, 1);
	assert_string_equal(f->meta[0], "queue:/queue/a");
}

static void test_reappearing_deleted_segments_are_harmless(void **state)
{
	/* Should a crash undo the unlink of dead segments (a contiguous run
	 * of the newest deleted ones), recovery still gives the same state:
	 * no message and no META key comes back. */
	struct fx *f = *state;
	char path[PATH_MAX];
	uint8_t *saved[16] = { 0 };
	size_t savedlen[16];
	uint64_t seq = 0, deleted;

	f->opts.segment_size = 8192;
	open_j(f);
	assert_int_not_equal(journal_meta_put(f->j, "k1", "a", 1), 0);
	assert_int_not_equal(journal_meta_put(f->j, "k2", "b", 1), 0);
	for (uint64_t id = 1; id <= 400; id++)
		put(f, 1 + (uint32_t)(id % 2), id, 100);
	assert_int_not_equal(journal_meta_del(f->j, "k1"), 0);
	for (uint64_t id = 1; id <= 300; id++)
		seq = journal_remove(f->j, 1 + (uint32_t)(id % 2), id);
	journal_flush(f->j);
	/* Keep copies of the segments that are about to die. */
	for (uint64_t no = 1; no < 16; no++)
		if (file_size(seg_file(f, no, path, sizeof path)) > 0)
			saved[no] = read_file(path, &savedlen[no]);
	wait_durable(f, seq);
	assert_true(run_until(f, segs_deleted, 2, 3000));
	deleted = stats(f).segments_deleted;
	close_j(f);

	/* The newest deleted segments come back, down to the oldest. */
	for (uint64_t back = deleted; back >= 1; back--) {
		write_file(seg_file(f, back, path, sizeof path), saved[back], savedlen[back]);
		open_j(f);
		assert_int_equal(f->nmsgs, 100);
		for (size_t i = 0; i < f->nmsgs; i++)
			assert_true(f->msgs[i].id > 300 && f->msgs[i].payload_ok);
		assert_int_equal(f->nmeta, 1);
		assert_string_equal(f->meta[0], "k2");
		close_j(f);
		/* Recovery may delete them again; put them back for the next round. */
		for (uint64_t no = back; no <= deleted; no++)
			if (file_size(seg_file(f, no, path, sizeof path)) < 0)
				write_file(path, saved[no], savedlen[no]);
	}
	for (size_t i = 0; i < 16; i++)
		free(saved[i]);
}

static void test_meta_snapshot_replaces_older_meta(void **state)
{
	/* A whole META snapshot at the head of a segment replaces the META
	 * set: an old segment that comes back without the segment holding a
	 * META_DEL does not bring the deleted key back. */
	struct fx *f = *state;
	char path[PATH_MAX];
	uint8_t *seg1;
	size_t len1;
	uint64_t seq = 0, id = 1;

	f->opts.segment_size = 8192;
	open_j(f);
	assert_int_not_equal(journal_meta_put(f->j, "k1", "a", 1), 0);
	assert_int_not_equal(journal_meta_put(f->j, "k2", "b", 1), 0);
	while (journal_active(f->j)->no == 1)
		put(f, 1, id++, 100);
	assert_int_not_equal(journal_meta_del(f->j, "k1"), 0);
	while (journal_active(f->j)->no == 2)
		put(f, 1, id++, 100);
	for (uint64_t k = 1; k < id; k++)
		seq = journal_remove(f->j, 1, k);
	journal_flush(f->j);
	seg1 = read_file(seg_file(f, 1, path, sizeof path), &len1);
	wait_durable(f, seq);
	assert_true(run_until(f, segs_deleted, 2, 3000));
	close_j(f);
	assert_int_equal(file_size(seg_file(f, 2, path, sizeof path)), -1);

	/* Segment 1 comes back, segment 2 (with the META_DEL) does not. */
	write_file(seg_file(f, 1, path, sizeof path), seg1, len1);
	open_j(f);
	assert_int_equal(f->nmsgs, 0);
	assert_int_equal(f->nmeta, 1);
	assert_string_equal(f->meta[0], "k2");
	free(seg1);
}

static void test_compaction_keeps_queue_order(void **state)
{
	/* A sparse oldest segment is compacted: its live messages (some on
	 * two queues) are copied forward, the segment is deleted, reads still
	 * find the copies, and recovery gives every queue in id order. */
	struct fx *f = *state;
	struct model m = { 0 };
	uint64_t seq = 0;
	void *p;
	size_t len;

	f->opts.segment_size = 65536;
	open_j(f);
	for (uint64_t id = 1; id <= 1000; id++) {
		put(f, 1, id, 200);
		model_add(&m, 1, id, 200);
		if (id % 10 == 0) {
			assert_int_not_equal(journal_enqueue(f->j, 2, id), 0);
			model_add(&m, 2, id, 200);
		}
	}
	assert_int_not_equal(journal_meta_put(f->j, "topology", "x", 1), 0);
	/* Off q1 goes most of the first ~300; multiples of 10 stay on q2. */
	for (uint64_t id = 1; id <= 300; id++) {
		if (id % 25 == 0)
			continue;
		seq = journal_remove(f->j, 1, id);
		model_del(&m, 1, id);
	}
	wait_durable(f, seq);
	if (!run_until(f, compacted, 1, 5000))
		fail_msg("no compaction: %" PRIu64 " compactions, %" PRIu64 " deleted",
		         stats(f).compactions, stats(f).segments_deleted);
	/* Copies read back whole, whichever queues they are on. */
	for (uint64_t id = 10; id <= 300; id += 5) {
		if (id % 10 && id % 25) {
			assert_int_equal(journal_read_message(f->j, id, &p, &len), -1);
			continue;
		}
		assert_int_equal(journal_read_message(f->j, id, &p, &len), 0);
		assert_int_equal(len, 200);
		assert_true(check_payload(p, len, id));
		free(p);
	}
	for (uint64_t id = 1001; id <= 1100; id++) {
		seq = put(f, 1, id, 200);
		model_add(&m, 1, id, 200);
	}
	/* And removing a compacted message afterwards sticks. */
	seq = journal_remove(f->j, 2, 20);
	model_del(&m, 2, 20);
	wait_durable(f, seq);

	reopen(f);
	model_check(f, &m);
	assert_string_equal(meta_get(f, "topology"), "x");
	free(m.v);
}

static void test_compaction_when_journal_is_sparse(void **state)
{
	/* A dense oldest segment in front of dead ones is compacted too, once
	 * less than half the journal is live; then all of them go. */
	struct fx *f = *state;
	struct model m = { 0 };
	uint64_t seq = 0, first_seg_ids = 0;
	char path[PATH_MAX];

	f->opts.segment_size = 16384;
	open_j(f);
	for (uint64_t id = 1; id <= 600; id++) {
		seq = put(f, 1, id, 100);
		if (journal_active(f->j)->no == 1)
			first_seg_ids = id;
	}
	wait_durable(f, seq);
	/* Keep the first segment whole, clear everything after it. */
	for (uint64_t id = 1; id <= 600; id++) {
		if (id <= first_seg_ids)
			model_add(&m, 1, id, 100);
		else
			seq = journal_remove(f->j, 1, id);
	}
	wait_durable(f, seq);
	if (!run_until(f, compacted, 1, 5000))
		fail_msg("no compaction: %" PRIu64, stats(f).compactions);
	assert_true(run_until(f, segs_deleted, 3, 3000));
	assert_int_equal(file_size(seg_file(f, 1, path, sizeof path)), -1);
	reopen(f);
	model_check(f, &m);
	free(m.v);
}

/* ---- writing and durability ---- */

struct pump {
	struct fx *f;
	struct event *ev;
	uint64_t next_id, last_id, per_iteration, last_seq;
};

static void pump_cb(evutil_socket_t fd, short what, void *arg)
{
	struct pump *p = arg;
	static const struct timeval now = { 0, 0 };
	for (uint64_t i = 0; i < p->per_iteration && p->next_id <= p->last_id; i++)
		p->last_seq = put(p->f, 1, p->next_id++, 100);
	if (p->next_id <= p->last_id)
		event_add(p->ev, &now);
	(void)fd;
	(void)what;
}

static void test_group_commit(void **state)
{
	/* Appends pipelined over many loop iterations share fsyncs: far
	 * fewer fsyncs than records, one write per iteration, and every
	 * record reported durable in order. */
	struct fx *f = *state;
	struct pump p = { .f = f, .next_id = 1, .last_id = 20000, .per_iteration = 100 };
	static const struct timeval now = { 0, 0 };
	struct journal_stats st;
	long writes0;

	open_j(f);
	writes0 = inj.pwrite_calls;
	p.ev = event_new(f->base, -1, 0, pump_cb, &p);
	event_add(p.ev, &now);
	while (p.next_id <= p.last_id)
		event_base_loop(f->base, EVLOOP_ONCE);
	wait_durable(f, p.last_seq);
	st = stats(f);
	assert_int_equal(st.appends, 20000);
	assert_true(st.fsyncs >= 1);
	/* At most one sync job per iteration that wrote (200 of them, plus
	 * the directory and old segment at each roll), and in practice far
	 * fewer: many iterations share one. */
	assert_true(st.fsyncs <= 210);
	assert_true(st.fsyncs * 20 < st.appends);
	assert_true(inj.pwrite_calls - writes0 <= 210);
	assert_false(f->order_bad);
	print_message("      group commit: %" PRIu64 " appends, %" PRIu64 " fsyncs, %ld writes\n",
	              st.appends, st.fsyncs, inj.pwrite_calls - writes0);
	event_free(p.ev);
}

static void test_one_write_per_iteration(void **state)
{
	/* Records appended in one callback go out in a single write at the
	 * end of the iteration; past 1 MiB the buffer is written early. */
	struct fx *f = *state;
	long w0;
	uint64_t seq = 0;

	open_j(f);
	event_base_loop(f->base, EVLOOP_NONBLOCK);
	w0 = inj.pwrite_calls;
	for (uint64_t id = 1; id <= 500; id++)
		seq = put(f, 1, id, 100);
	assert_int_equal(inj.pwrite_calls, w0);	/* nothing yet: buffered */
	event_base_loop(f->base, EVLOOP_ONCE);
	assert_int_equal(inj.pwrite_calls, w0 + 1);
	wait_durable(f, seq);

	w0 = inj.pwrite_calls;
	for (uint64_t id = 1001; id <= 1600; id++)	/* 600 x ~4 KiB = 2.4 MiB */
		put(f, 1, id, 4000);
	assert_true(inj.pwrite_calls >= w0 + 2);
}

static void test_fsync_interval(void **state)
{
	/* Under `interval`, records are durable when the timer's fsync has
	 * run, not when written. */
	struct fx *f = *state;
	uint64_t seq, t0;

	f->opts.fsync = FSYNC_INTERVAL;
	f->opts.fsync_interval_ms = 300;
	open_j(f);
	t0 = mono_ms();
	seq = put(f, 1, 1, 100);
	run_for(f, 50);
	assert_true(f->durable < seq);		/* written, not yet synced */
	wait_durable(f, seq);
	assert_true(mono_ms() - t0 >= 200);
	assert_true(stats(f).fsyncs >= 1);
}

static void test_fsync_never(void **state)
{
	/* Under `never`, a record is durable once written, with no fsync. */
	struct fx *f = *state;
	uint64_t seq = 0;

	f->opts.fsync = FSYNC_NEVER;
	open_j(f);
	for (uint64_t id = 1; id <= 100; id++)
		seq = put(f, 1, id, 100);
	wait_durable(f, seq);
	assert_int_equal(stats(f).fsyncs, 0);
	assert_int_equal(inj.fsync_calls, 0);
	reopen(f);
	assert_int_equal(f->nmsgs, 100);
}

static void test_read_message(void **state)
{
	/* A payload reads back from the buffer, from disk, and after a
	 * reopen; an unknown or removed id is ENOENT. */
	struct fx *f = *state;
	void *p;
	size_t len;
	uint64_t seq;

	open_j(f);
	put(f, 1, 5, 300);
	assert_int_equal(journal_read_message(f->j, 5, &p, &len), 0);	/* still buffered */
	assert_int_equal(len, 300);
	assert_true(check_payload(p, len, 5));
	free(p);
	seq = put(f, 1, 6, 0);
	wait_durable(f, seq);
	assert_int_equal(journal_read_message(f->j, 5, &p, &len), 0);	/* from the file */
	assert_true(check_payload(p, len, 5));
	free(p);
	assert_int_equal(journal_read_message(f->j, 6, &p, &len), 0);
	assert_int_equal(len, 0);
	free(p);
	assert_int_equal(journal_read_message(f->j, 99, &p, &len), -1);
	assert_int_equal(errno, ENOENT);
	reopen(f);
	assert_int_equal(journal_read_message(f->j, 5, &p, &len), 0);
	assert_true(check_payload(p, len, 5));
	free(p);
	seq = journal_remove(f->j, 1, 5);
	assert_int_not_equal(seq, 0);
	assert_int_equal(journal_read_message(f->j, 5, &p, &len), -1);
	assert_int_equal(errno, ENOENT);
}

static void test_api_refusals(void **state)
{
	/* Appends that make no sense are refused with errno, not written. */
	struct fx *f = *state;
	uint64_t appends;

	open_j(f);
	put(f, 1, 1, 10);
	appends = stats(f).appends;
	assert_int_equal(journal_put_message(f->j, 2, 1, "x", 1), 0);
	assert_int_equal(errno, EEXIST);
	assert_int_equal(journal_enqueue(f->j, 2, 2), 0);
	assert_int_equal(errno, ENOENT);
	assert_int_equal(journal_remove(f->j, 2, 1), 0);
	assert_int_equal(errno, ENOENT);
	assert_int_equal(journal_meta_del(f->j, "nope"), 0);
	assert_int_equal(errno, ENOENT);
	assert_int_equal(journal_meta_put(f->j, "", "x", 1), 0);
	assert_int_equal(errno, EINVAL);
	assert_int_equal(stats(f).appends, appends);
	assert_int_not_equal(journal_enqueue(f->j, 2, 1), 0);
	assert_int_not_equal(journal_remove(f->j, 1, 1), 0);
	assert_int_not_equal(journal_remove(f->j, 2, 1), 0);	/* now dead */
	assert_int_equal(journal_enqueue(f->j, 3, 1), 0);
	assert_int_equal(errno, ENOENT);
}

static void test_open_errors_name_the_thing(void **state)
{
	/* Bad options and unusable directories fail with a message naming
	 * the directory and the value. */
	struct fx *f = *state;
	char err[256] = "";
	struct journal_opts o = f->opts;
	char file[PATH_MAX];

	o.segment_size = 100;
	assert_null(journal_open(f->base, &o, NULL, NULL, err, sizeof err));
	assert_non_null(strstr(err, "segment_size 100"));
	assert_non_null(strstr(err, f->dir));
	snprintf(file, sizeof file, "%s/plainfile", f->dir);
	write_file(file, "x", 1);
	o = f->opts;
	o.dir = file;
	assert_null(journal_open(f->base, &o, NULL, NULL, err, sizeof err));
	assert_non_null(strstr(err, file));
}

/* ---- failures ---- */

static void test_write_failure_fails_fast_and_recovers(void **state)
{
	/* ENOSPC on write: on_durable reports the failed range, appends fail
	 * fast with the errno, nothing durable is lost, the journal comes
	 * back by itself once writes succeed, and recovery holds exactly the
	 * records that made it. */
	struct fx *f = *state;
	struct model m = { 0 };
	uint64_t seq = 0, first = 0, last = 0;
	void *p;
	size_t len;

	open_j(f);
	for (uint64_t id = 1; id <= 10; id++) {
		seq = put(f, 1, id, 100);
		model_add(&m, 1, id, 100);
	}
	wait_durable(f, seq);

	inj.pwrite_ok = 0;
	inj.pwrite_errno = ENOSPC;
	for (uint64_t id = 11; id <= 15; id++) {
		last = put(f, 1, id, 100);
		if (!first)
			first = last;
	}
	assert_int_not_equal(journal_remove(f->j, 1, 3), 0);	/* fails with them */
	last++;
	if (!run_until(f, has_failed, 1, 2000))
		fail_msg("no failure reported");
	assert_int_equal(f->fail_first, first);
	assert_int_equal(f->fail_last, last);
	assert_int_equal(f->fail_err, ENOSPC);
	assert_false(f->order_bad);
	/* Failing: appends are refused at once. */
	assert_int_equal(journal_put_message(f->j, 1, 99, "x", 1), 0);
	assert_int_equal(errno, ENOSPC);
	assert_int_equal(stats(f).failing_errno, ENOSPC);
	/* The failed records are gone from the index too. */
	assert_int_equal(journal_read_message(f->j, 11, &p, &len), -1);
	assert_int_equal(journal_read_message(f->j, 3, &p, &len), 0);
	free(p);
	assert_int_equal(stats(f).live_messages, 10);
	/* Still failing while the disk is full. */
	run_for(f, 100);
	assert_int_equal(stats(f).failing_errno, ENOSPC);

	inj.pwrite_ok = -1;
	if (!run_until(f, is_healthy, 0, 3000))
		fail_msg("journal did not leave the failing state");
	for (uint64_t id = 11; id <= 15; id++) {
		seq = put(f, 1, id, 100);
		model_add(&m, 1, id, 100);
	}
	wait_durable(f, seq);
	assert_true(f->durable > f->fail_last);

	reopen(f);
	model_check(f, &m);
	assert_int_equal(f->rec.dropped_bytes, 0);
	free(m.v);
}

static void test_partial_write_is_cut_back(void **state)
{
	/* A write that gets half its bytes out before ENOSPC leaves nothing
	 * behind: the segment is cut back to the last good offset. */
	struct fx *f = *state;
	char path[PATH_MAX];
	uint64_t seq = 0;
	long good;

	open_j(f);
	for (uint64_t id = 1; id <= 5; id++)
		seq = put(f, 1, id, 100);
	wait_durable(f, seq);
	good = file_size(seg_file(f, 1, path, sizeof path));
	inj.pwrite_ok = 0;
	inj.pwrite_partial = true;
	inj.pwrite_errno = ENOSPC;
	for (uint64_t id = 6; id <= 50; id++)
		put(f, 1, id, 100);
	assert_true(run_until(f, has_failed, 1, 2000));
	assert_int_equal(file_size(path), good);
	inj.pwrite_ok = -1;
	assert_true(run_until(f, is_healthy, 0, 3000));
	reopen(f);
	assert_int_equal(f->rec.dropped_bytes, 0);
	assert_int_equal(f->nmsgs, 5);
}

static void test_fsync_failure(void **state)
{
	/* EIO from fdatasync: the records it covered are reported failed and
	 * cut from the file; the journal recovers by itself afterwards. */
	struct fx *f = *state;
	struct model m = { 0 };
	uint64_t seq = 0, first = 0;

	open_j(f);
	for (uint64_t id = 1; id <= 5; id++) {
		seq = put(f, 1, id, 100);
		model_add(&m, 1, id, 100);
	}
	wait_durable(f, seq);
	inj.fsync_fail = 1;
	inj.fsync_errno = EIO;
	for (uint64_t id = 6; id <= 10; id++) {
		seq = put(f, 1, id, 100);
		if (!first)
			first = seq;
	}
	assert_true(run_until(f, has_failed, 1, 2000));
	assert_int_equal(f->fail_first, first);
	assert_int_equal(f->fail_last, seq);
	assert_int_equal(f->fail_err, EIO);
	assert_true(f->durable < first);
	assert_true(run_until(f, is_healthy, 0, 3000));
	seq = put(f, 1, 11, 100);
	model_add(&m, 1, 11, 100);
	wait_durable(f, seq);
	reopen(f);
	model_check(f, &m);
	assert_int_equal(f->rec.dropped_bytes, 0);
	free(m.v);
}

static void test_fsync_failure_across_segments(void **state)
{
	/* A failed fsync that covered a segment roll takes the new segments
	 * with it; the older one is cut back to what was synced. */
	struct fx *f = *state;
	struct model m = { 0 };
	uint64_t seq = 0;
	char path[PATH_MAX];

	f->opts.segment_size = 8192;
	open_j(f);
	for (uint64_t id = 1; id <= 20; id++) {
		seq = put(f, 1, id, 100);
		model_add(&m, 1, id, 100);
	}
	wait_durable(f, seq);
	inj.fsync_fail = 1;
	inj.fsync_errno = EIO;
	for (uint64_t id = 21; id <= 400; id++)	/* several rolls before the loop runs */
		put(f, 1, id, 100);
	assert_true(stats(f).segments >= 4);
	assert_true(run_until(f, has_failed, 1, 2000));
	assert_int_equal(stats(f).segments, 1);	/* the new ones held nothing durable */
	assert_int_equal(file_size(seg_file(f, 2, path, sizeof path)), -1);
	assert_true(run_until(f, is_healthy, 0, 3000));
	for (uint64_t id = 401; id <= 500; id++) {
		seq = put(f, 1, id, 100);
		model_add(&m, 1, id, 100);
	}
	wait_durable(f, seq);
	reopen(f);
	model_check(f, &m);
	assert_int_equal(f->rec.dropped_bytes, 0);
	free(m.v);
}

static void test_segment_kept_until_its_removes_are_durable(void **state)
{
	/* A segment emptied by REMOVEs stays until those REMOVEs are durable:
	 * when their fsync fails, the messages are live again and must still
	 * be on disk. */
	struct fx *f = *state;
	uint64_t id = 1, n, seq;
	void *p;
	size_t len;

	f->opts.segment_size = 8192;
	open_j(f);
	while (journal_active(f->j)->no == 1)
		put(f, 1, id++, 100);
	n = id - 1;		/* the last one went to segment 2 */
	seq = put(f, 2, 5000, 100);
	wait_durable(f, seq);

	/* One slow fsync is under way while the REMOVEs are written; the
	 * next one, which would cover them, fails. */
	inj.fsync_slow = 1;
	inj.fsync_fail = 1;
	inj.fsync_errno = EIO;
	seq = put(f, 2, 5001, 100);
	event_base_loop(f->base, EVLOOP_NONBLOCK);	/* written; the slow fsync starts */
	for (uint64_t k = 1; k < n; k++)
		assert_int_not_equal(journal_remove(f->j, 1, k), 0);
	event_base_loop(f->base, EVLOOP_NONBLOCK);	/* REMOVEs written, not synced */
	assert_true(run_until(f, has_failed, 1, 3000));
	assert_true(f->durable >= seq);
	assert_int_equal(stats(f).segments_deleted, 0);
	assert_true(run_until(f, is_healthy, 0, 3000));
	assert_int_equal(journal_read_message(f->j, 1, &p, &len), 0);
	assert_true(check_payload(p, len, 1));
	free(p);
	reopen(f);
	assert_int_equal(f->nmsgs, n + 2);
}

static void test_failure_writing_new_segment_header(void **state)
{
	/* When the very first write to a new segment fails, the segment is
	 * cut to nothing, the records before the roll stay durable, and the
	 * header goes out again once writes succeed. */
	struct fx *f = *state;
	uint64_t seq = 0, last_in_first = 0, last_seq_in_first = 0;

	f->opts.segment_size = 8192;
	open_j(f);
	assert_int_not_equal(journal_meta_put(f->j, "q", "1", 1), 0);
	inj.fail_new_segment = true;
	inj.pwrite_errno = ENOSPC;
	for (uint64_t id = 1; id <= 400; id++) {
		seq = put(f, 1, id, 10);
		if (journal_active(f->j)->no == 1) {
			last_in_first = id;
			last_seq_in_first = seq;
		}
	}
	assert_true(stats(f).segments >= 2);
	assert_true(run_until(f, has_failed, 1, 2000));
	assert_int_equal(f->fail_first, last_seq_in_first + 1);
	assert_int_equal(f->fail_last, seq);
	assert_true(f->durable >= last_seq_in_first);
	assert_int_equal(journal_put_message(f->j, 1, 1000, "x", 1), 0);
	assert_int_equal(errno, ENOSPC);
	run_for(f, 60);		/* the probe writes at offset 0 too: still failing */
	assert_int_equal(stats(f).failing_errno, ENOSPC);
	inj.fail_new_segment = false;
	assert_true(run_until(f, is_healthy, 0, 3000));
	seq = journal_put_message(f->j, 1, 1000, "x", 1);
	assert_int_not_equal(seq, 0);
	wait_durable(f, seq);

	reopen(f);
	assert_int_equal(f->rec.dropped_bytes, 0);
	assert_string_equal(meta_get(f, "q"), "1");
	assert_int_equal(f->nmsgs, last_in_first + 1);
	for (size_t i = 0; i < last_in_first; i++)
		assert_int_equal(f->msgs[i].id, i + 1);
	assert_int_equal(f->msgs[last_in_first].id, 1000);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_record_format_roundtrip),
		cmocka_unit_test(test_record_any_flipped_byte_is_detected),
		cmocka_unit_test(test_record_zero_length_is_bad),
		cmocka_unit_test_setup_teardown(test_recover_messages_enqueues_removes_meta, setup, teardown),
		cmocka_unit_test_setup_teardown(test_torn_message_at_every_byte, setup, teardown),
		cmocka_unit_test_setup_teardown(test_torn_remove_at_every_byte, setup, teardown),
		cmocka_unit_test_setup_teardown(test_zeroed_tail_is_cut, setup, teardown),
		cmocka_unit_test_setup_teardown(test_flipped_bit_costs_one_record, setup, teardown),
		cmocka_unit_test_setup_teardown(test_skipped_damage_then_appends_and_reads, setup, teardown),
		cmocka_unit_test_setup_teardown(test_damaged_length_resynchronises, setup, teardown),
		cmocka_unit_test_setup_teardown(test_torn_tail_is_cut_without_setting_aside, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_tail_of_an_older_segment_is_damage, setup, teardown),
		cmocka_unit_test_setup_teardown(test_damaged_segment_header_keeps_its_records, setup, teardown),
		cmocka_unit_test_setup_teardown(test_damaged_snapshot_does_not_sweep, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unreadable_files_are_set_aside_or_removed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_failed_rewrite_leaves_the_segment_as_it_was, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rewrite_cut_short_by_a_crash, setup, teardown),
		cmocka_unit_test(test_resync_search),
		cmocka_unit_test_setup_teardown(test_torn_segment_header, setup, teardown),
		cmocka_unit_test_setup_teardown(test_multi_segment_reopen, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dead_segments_are_deleted, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reappearing_deleted_segments_are_harmless, setup, teardown),
		cmocka_unit_test_setup_teardown(test_meta_snapshot_replaces_older_meta, setup, teardown),
		cmocka_unit_test_setup_teardown(test_compaction_keeps_queue_order, setup, teardown),
		cmocka_unit_test_setup_teardown(test_compaction_when_journal_is_sparse, setup, teardown),
		cmocka_unit_test_setup_teardown(test_group_commit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_one_write_per_iteration, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fsync_interval, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fsync_never, setup, teardown),
		cmocka_unit_test_setup_teardown(test_read_message, setup, teardown),
		cmocka_unit_test_setup_teardown(test_api_refusals, setup, teardown),
		cmocka_unit_test_setup_teardown(test_open_errors_name_the_thing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_write_failure_fails_fast_and_recovers, setup, teardown),
		cmocka_unit_test_setup_teardown(test_partial_write_is_cut_back, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fsync_failure, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fsync_failure_across_segments, setup, teardown),
		cmocka_unit_test_setup_teardown(test_segment_kept_until_its_removes_are_durable, setup, teardown),
		cmocka_unit_test_setup_teardown(test_failure_writing_new_segment_header, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
