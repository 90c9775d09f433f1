/* fuzz_journal.c: journal recovery from arbitrary segment bytes.
 *
 * Input: byte 0 is a mode, the rest is cut into up to three segment
 * files (00000001.seg ...) at each "\n--seg--\n". With bit 0 of the mode
 * set, every record's CRC (and the header's) is made right before the
 * files are written, so that mutations reach what records mean (META
 * snapshots, queue sets, copies) instead of stopping at a checksum.
 *
 * Recovery must not crash or leak, and it must settle: a second recovery
 * of what the first left behind finds no damage and hands back exactly
 * the same messages, payloads and META. */
#include <dirent.h>
#include <endian.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "common/log.h"
#include "common/util.h"
#include "store/crc32c.h"
#include "store/journal.h"
#include "store/journal_int.h"

static const char sep[] = "\n--seg--\n";
static char dir[64];
static struct event_base *base;

struct seen {
	struct sbuf meta, msgs;
	struct journal_recovery rec;
};

static void on_durable(void *arg, uint64_t seq, uint64_t first_failed, int err)
{
	(void)arg, (void)seq, (void)first_failed, (void)err;
}

static uint64_t hash(const void *p, size_t n)
{
	const uint8_t *b = p;
	uint64_t h = 14695981039346656037ull;
	for (size_t i = 0; i < n; i++)
		h = (h ^ b[i]) * 1099511628211ull;
	return h;
}

static void on_meta(void *arg, const char *key, const void *val, size_t len)
{
	struct seen *s = arg;
	/* no particular order: fold into a sum */
	uint64_t h = hash(key, strlen(key)) ^ (hash(val, len) * 31);
	if (s->meta.len < 8)
		sbuf_add(&s->meta, "\0\0\0\0\0\0\0\0", 8 - s->meta.len);
	((uint64_t *)(void *)s->meta.buf)[0] += h;
}

static void on_message(void *arg, uint32_t qid, uint64_t id, const void *payload, size_t len)
{
	struct seen *s = arg;
	sbuf_printf(&s->msgs, "%u/%llu/%zu/%llx ", qid, (unsigned long long)id, len,
	            (unsigned long long)hash(payload, len));
}

static const struct journal_replay replay = { on_meta, on_message };

static void clear_dir(void)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	char path[PATH_MAX];
	while (d && (e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
		unlink(path);
	}
	if (d)
		closedir(d);
}

static int no_sync(int fd)
{
	(void)fd;
	return 0;
}

static void recover(struct seen *s)
{
	struct journal_opts o = { .dir = dir, .fsync = FSYNC_NEVER, .segment_size = 1 << 20 };
	char err[256];
	struct journal *j = journal_open(base, &o, on_durable, NULL, err, sizeof err);

	sbuf_init(&s->meta);
	sbuf_init(&s->msgs);
	if (!j)
		abort();
	if (journal_recover(j, &replay, s, &s->rec, err, sizeof err) < 0)
		abort();
	journal_close(j);
}

/* Makes every CRC right, following the length fields. */
static void fix_crcs(uint8_t *p, size_t n)
{
	size_t off = JSEG_HEADER_SIZE;
	uint32_t v;

	if (n < JSEG_HEADER_SIZE)
		return;
	memcpy(p, "MQJRNL\x1a\n", 8);
	v = htole32(crc32c(0, p, 28));
	memcpy(p + 28, &v, 4);
	while (n - off >= JREC_PREFIX + 1) {
		uint32_t len;
		memcpy(&len, p + off, 4);
		len = le32toh(len);
		if (len == 0 || len > n - off - JREC_PREFIX)
			break;
		v = htole32(crc32c(0, p + off + JREC_PREFIX, len));
		memcpy(p + off + 4, &v, 4);
		off += JREC_PREFIX + len;
	}
}

static void remove_dir(void)
{
	clear_dir();
	rmdir(dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	const char *tmp = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
	(void)argc, (void)argv;
	snprintf(dir, sizeof dir, "%s/fuzz_journal.XXXXXX", tmp);
	if (!mkdtemp(dir))
		abort();
	atexit(remove_dir);
	base = event_base_new();
	log_set_level(getenv("FUZZ_LOG") ? atoi(getenv("FUZZ_LOG")) : LOG_NONE);
	journal_io.fdatasync = no_sync;	/* speed; nothing here is about durability */
	return 0;
}

static bool same_bytes(const struct sbuf *a, const struct sbuf *b)
{
	return a->len == b->len && (a->len == 0 || memcmp(a->buf, b->buf, a->len) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct seen a, b;
	const uint8_t *p, *end;
	int nseg = 0;

	if (size < 1)
		return 0;
	clear_dir();
	p = data + 1;
	end = data + size;
	while (p <= end && nseg < 3) {
		const uint8_t *cut = memmem(p, (size_t)(end - p), sep, sizeof sep - 1);
		size_t n = (size_t)((cut ? cut : end) - p);
		uint8_t *copy = xmalloc(n + 1);
		char path[PATH_MAX];
		int fd;

		memcpy(copy, p, n);
		if (data[0] & 1)
			fix_crcs(copy, n);
		jseg_path(path, sizeof path, dir, (uint64_t)++nseg);
		fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		if (fd < 0 || write(fd, copy, n) != (ssize_t)n)
			abort();
		close(fd);
		free(copy);
		if (!cut)
			break;
		p = cut + sizeof sep - 1;
	}
	recover(&a);
	recover(&b);
	if (b.rec.skipped_records || b.rec.dropped_records ||
	    !same_bytes(&a.msgs, &b.msgs) || !same_bytes(&a.meta, &b.meta) ||
	    a.rec.max_msg_id > b.rec.max_msg_id)
		abort();
	sbuf_fini(&a.meta);
	sbuf_fini(&a.msgs);
	sbuf_fini(&b.meta);
	sbuf_fini(&b.msgs);
	return 0;
}
