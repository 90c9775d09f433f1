/* journal_bench.c: how fast the journal recovers, and how group commit
 * behaves under fsync `always`.
 *
 *   journal_bench [-n MESSAGES] [-s BYTES] [-q QUEUES] [-w WINDOW]
 *                 [-t SECONDS] [-d DIR] [-k]
 *
 * 1. Writes MESSAGES persistent messages of BYTES each, round-robin over
 *    QUEUES, to a fresh journal (fsync `never`, 1000 appends per loop
 *    iteration), and closes it.
 * 2. Times journal_open + journal_recover with the page cache warm, and
 *    again after evicting the segment files (posix_fadvise DONTNEED).
 * 3. Under fsync `always`, keeps WINDOW appends in flight for SECONDS (as
 *    producers pipelining receipts would: 4 producers with a window of 100
 *    is the default 400), first appends only, then with every message
 *    removed (acked) once durable, and prints appends/s, fsyncs/s, records
 *    per fsync, and the append-to-durable latency.
 *
 * The journal goes in a temporary directory under DIR (default $TMPDIR or
 * /tmp), removed at the end unless -k. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "store/crc32c.h"
#include "store/journal.h"
#include "common/log.h"
#include "common/util.h"

struct bench {
	struct event_base *base;
	struct journal *j;
	struct event *pump;
	uint64_t n, size, queues, window;
	uint64_t next_id;
	uint64_t appended, durable;	/* records this phase has appended / seen durable */
	uint64_t durable_seq;
	bool ack;			/* remove each message once durable */
	uint64_t deadline_us;
	uint8_t *payload;

	/* in flight: seq -> (append time, msg id), by seq modulo cap */
	uint64_t *sent_us, *sent_id, *sent_seq;
	size_t cap;
	uint64_t first_unsettled;	/* lowest seq not yet seen durable */
	uint64_t *lat_us;
	size_t nlat, latcap;

	/* recovery */
	uint64_t recovered, checksum;
};

static void die(const char *what)
{
	fprintf(stderr, "journal_bench: %s\n", what);
	exit(1);
}

static void usage(void)
{
	fprintf(stderr, "usage: journal_bench [-n MESSAGES] [-s BYTES] [-q QUEUES] [-w WINDOW] "
	                "[-t SECONDS] [-d DIR] [-k]\n");
	exit(2);
}

static void rm_journal(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	char path[PATH_MAX + 256];
	if (!d)
		return;
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
		unlink(path);
	}
	closedir(d);
	rmdir(dir);
}

static struct journal *open_journal(struct bench *b, const char *dir, enum fsync_policy p,
                                    journal_durable_cb cb, const struct journal_replay *rp,
                                    struct journal_recovery *rs)
{
	struct journal_opts o = { .dir = dir, .fsync = p, .segment_size = 64ull << 20 };
	char err[512];
	struct journal *j = journal_open(b->base, &o, cb, b, err, sizeof err);
	if (!j || journal_recover(j, rp, b, rs, err, sizeof err) < 0)
		die(err);
	return j;
}

/* ---- phase 1: fill ---- */

static void fill_cb(evutil_socket_t fd, short what, void *arg)
{
	static const struct timeval now = { 0, 0 };
	struct bench *b = arg;
	for (int i = 0; i < 1000 && b->next_id <= b->n; i++, b->next_id++) {
		if (!journal_put_message(b->j, (uint32_t)(b->next_id % b->queues), b->next_id,
		                         b->payload, b->size))
			die(strerror(errno));
	}
	if (b->next_id <= b->n)
		event_add(b->pump, &now);
	else
		event_base_loopbreak(b->base);	/* the journal's own events never end */
	(void)fd;
	(void)what;
}

/* ---- phase 2: recover ---- */

static void count_message(void *arg, uint32_t qid, uint64_t id, const void *p, size_t len)
{
	struct bench *b = arg;
	b->recovered++;
	b->checksum += len ? ((const uint8_t *)p)[len - 1] : 0;	/* touch the payload */
	(void)qid;
	(void)id;
}

static void evict(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	char path[PATH_MAX + 256];
	while (d && (e = readdir(d))) {
		int fd;
		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
		fd = open(path, O_RDONLY);
		if (fd >= 0) {
			fdatasync(fd);
			posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
			close(fd);
		}
	}
	if (d)
		closedir(d);
}

static void time_recovery(struct bench *b, const char *dir, const char *label)
{
	static const struct journal_replay rp = { NULL, count_message };
	struct journal_recovery rs;
	uint64_t t0 = mono_us();
	double s;

	b->recovered = 0;
	b->j = open_journal(b, dir, FSYNC_NEVER, NULL, &rp, &rs);
	s = (double)(mono_us() - t0) / 1e6;
	printf("recovery (%s): %" PRIu64 " messages, %" PRIu64 " records, %" PRIu64
	       " segments in %.3f s: %.0f records/s (journal_recover itself: %.3f s)\n",
	       label, b->recovered, rs.records, rs.segments, s, (double)rs.records / s, rs.seconds);
	if (b->recovered != b->n)
		die("recovered a different number of messages than written");
	journal_close(b->j);
	b->j = NULL;
}

/* ---- phase 3: group commit ---- */

static void settle(struct bench *b, uint64_t seq)
{
	uint64_t now = mono_us();
	while (b->first_unsettled <= seq) {
		size_t k = b->first_unsettled % b->cap;
		/* Seqs of the journal's own records (META snapshots,
		 * compaction copies) are not in the table: skip them. */
		if (b->sent_seq[k] == b->first_unsettled) {
			if (b->nlat == b->latcap) {
				b->latcap = b->latcap ? b->latcap * 2 : 1 << 16;
				b->lat_us = xrealloc(b->lat_us, b->latcap * sizeof *b->lat_us);
			}
			b->lat_us[b->nlat++] = now - b->sent_us[k];
			b->durable++;
			if (b->ack && b->sent_id[k] &&
			    !journal_remove(b->j, (uint32_t)(b->sent_id[k] % b->queues), b->sent_id[k]))
				die(strerror(errno));
			b->sent_seq[k] = 0;
		}
		b->first_unsettled++;
	}
}

static void on_durable(void *arg, uint64_t seq, uint64_t first_failed, int err)
{
	struct bench *b = arg;
	if (err)
		die(strerror(err));
	if (!b->sent_seq)
		return;
	b->durable_seq = seq;
	settle(b, seq);
	if (mono_us() < b->deadline_us)
		event_active(b->pump, EV_TIMEOUT, 0);
	else if (b->durable == b->appended)
		event_base_loopbreak(b->base);
	(void)first_failed;
}

static void pump_cb(evutil_socket_t fd, short what, void *arg)
{
	struct bench *b = arg;
	uint64_t now = mono_us();
	if (now >= b->deadline_us)
		return;
	while (b->appended - b->durable < b->window) {
		uint64_t id = b->next_id++;
		uint64_t seq = journal_put_message(b->j, (uint32_t)(id % b->queues), id, b->payload, b->size);
		size_t k;
		if (!seq)
			die(strerror(errno));
		if (seq - b->first_unsettled >= b->cap)
			die("window larger than the in-flight table");
		k = seq % b->cap;
		b->sent_seq[k] = seq;
		b->sent_us[k] = now;
		b->sent_id[k] = id;
		b->appended++;
	}
	(void)fd;
	(void)what;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static void group_commit(struct bench *b, const char *dir, double seconds, bool ack)
{
	struct journal_stats st;
	uint64_t t0;
	double s;

	b->appended = b->durable = 0;
	b->nlat = 0;
	b->ack = ack;
	b->cap = 1 << 20;
	b->sent_us = xcalloc(b->cap, sizeof *b->sent_us);
	b->sent_id = xcalloc(b->cap, sizeof *b->sent_id);
	b->sent_seq = xcalloc(b->cap, sizeof *b->sent_seq);
	b->j = open_journal(b, dir, FSYNC_ALWAYS, on_durable, NULL, NULL);
	b->first_unsettled = 1;
	b->next_id = 1;
	b->pump = event_new(b->base, -1, 0, pump_cb, b);
	t0 = mono_us();
	b->deadline_us = t0 + (uint64_t)(seconds * 1e6);
	event_active(b->pump, EV_TIMEOUT, 0);
	event_base_dispatch(b->base);
	s = (double)(mono_us() - t0) / 1e6;
	journal_get_stats(b->j, &st);
	qsort(b->lat_us, b->nlat, sizeof *b->lat_us, cmp_u64);
	printf("fsync always, window %" PRIu64 "%s: %" PRIu64 " messages durable in %.2f s: %.0f messages/s, "
	       "%.0f appends/s, %.0f fsyncs/s, %.1f records per fsync; durable latency p50 %.2f ms, p99 %.2f ms",
	       b->window, ack ? ", each removed once durable" : "", b->durable, s,
	       (double)b->durable / s, (double)st.appends / s, (double)st.fsyncs / s,
	       st.fsyncs ? (double)st.appends / (double)st.fsyncs : 0.0,
	       b->nlat ? (double)b->lat_us[b->nlat / 2] / 1000 : 0.0,
	       b->nlat ? (double)b->lat_us[b->nlat * 99 / 100] / 1000 : 0.0);
	if (ack)
		printf("; %" PRIu64 " segments deleted, %" PRIu64 " live at the end", st.segments_deleted,
		       st.live_messages);
	printf("\n");
	event_free(b->pump);
	b->pump = NULL;
	journal_close(b->j);
	b->j = NULL;
	free(b->sent_us);
	free(b->sent_id);
	free(b->sent_seq);
	b->sent_us = b->sent_id = b->sent_seq = NULL;
}

int main(int argc, char **argv)
{
	struct bench b = { .n = 1000000, .size = 100, .queues = 10, .window = 400 };
	const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
	double seconds = 3;
	bool keep = false;
	char dir[PATH_MAX], dir2[PATH_MAX + 8];
	struct journal_stats st;
	uint64_t t0;
	double s;
	int c;

	while ((c = getopt(argc, argv, "n:s:q:w:t:d:k")) != -1) {
		switch (c) {
		case 'n': b.n = strtoull(optarg, NULL, 10); break;
		case 's': b.size = strtoull(optarg, NULL, 10); break;
		case 'q': b.queues = strtoull(optarg, NULL, 10); break;
		case 'w': b.window = strtoull(optarg, NULL, 10); break;
		case 't': seconds = atof(optarg); break;
		case 'd': tmp = optarg; break;
		case 'k': keep = true; break;
		default: usage();
		}
	}
	if (!b.n || !b.queues || !b.window || b.window > 500000 || b.size > 1 << 20)
		usage();
	log_set_level(LOG_WARN);
	setvbuf(stdout, NULL, _IOLBF, 0);
	snprintf(dir, sizeof dir, "%s/journal_bench.XXXXXX", tmp);
	if (!mkdtemp(dir))
		die(strerror(errno));
	snprintf(dir2, sizeof dir2, "%s/gc", dir);
	b.base = event_base_new();
	b.payload = xmalloc(b.size ? b.size : 1);
	for (uint64_t i = 0; i < b.size; i++)
		b.payload[i] = (uint8_t)('a' + i % 26);
	printf("journal_bench: %" PRIu64 " messages of %" PRIu64 " bytes on %" PRIu64
	       " queues in %s; crc32c: %s\n", b.n, b.size, b.queues, dir,
	       crc32c_hw_available() ? "sse4.2" : "tables");

	/* 1. fill */
	b.j = open_journal(&b, dir, FSYNC_NEVER, NULL, NULL, NULL);
	b.next_id = 1;
	b.pump = event_new(b.base, -1, 0, fill_cb, &b);
	t0 = mono_us();
	event_active(b.pump, EV_TIMEOUT, 0);
	event_base_dispatch(b.base);
	journal_get_stats(b.j, &st);
	journal_close(b.j);	/* flushes and fsyncs */
	s = (double)(mono_us() - t0) / 1e6;
	event_free(b.pump);
	b.pump = NULL;
	printf("write (fsync never, synced at close): %" PRIu64 " messages in %.3f s: %.0f appends/s, "
	       "%.1f MiB in %" PRIu64 " segments\n", st.appends, s, (double)st.appends / s,
	       (double)st.disk_bytes / (1 << 20), st.segments);

	/* 2. recover, warm then cold */
	time_recovery(&b, dir, "page cache warm");
	evict(dir);
	time_recovery(&b, dir, "segments evicted from the page cache");

	/* 3. group commit, in journals of their own */
	group_commit(&b, dir2, seconds, false);
	rm_journal(dir2);
	group_commit(&b, dir2, seconds, true);
	rm_journal(dir2);
	if (!keep)
		rm_journal(dir);
	else
		printf("kept %s\n", dir);
	free(b.payload);
	free(b.lat_us);
	event_base_free(b.base);
	return 0;
}
