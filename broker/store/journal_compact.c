/* journal_compact.c: giving disk space back.
 *
 * The invariant: the segment files on disk are always a contiguous run,
 * oldest to active; only the oldest segment is ever deleted. Every record
 * that cancels another (REMOVE cancels MESSAGE/ENQUEUE, META_DEL cancels
 * META_PUT) comes after it in the log, so a cancelling record is never
 * deleted while the record it cancels survives: deleting a dead segment
 * from the middle could drop a REMOVE whose MESSAGE lives on in an older
 * segment, and the message would come back at the next recovery.
 *
 * The oldest segment goes once (jcompact_gc):
 *   - no live message has its current copy there,
 *   - the record that took the last one away is durable, and
 *   - a later segment's META snapshot is whole and durable (META records
 *     are never "live" in a segment: the snapshot restates them).
 *
 * Compaction makes the oldest segment dead when waiting would take too
 * long: when it is sparse (under a quarter of its bytes live), or when the
 * whole journal is (under half live), its live messages are copied to the
 * active segment: a MESSAGE record for the first queue and an ENQUEUE for
 * each other one, which together restate the message as it is now. The
 * copies come after every earlier REMOVE in the log, and replay treats a
 * queue set as a set and the newest MESSAGE copy as the one to read, so a
 * recovery that meets both copies (the old segment not yet deleted) ends
 * in the same state. Within a queue, recovery orders by message id, not by
 * log position, so moving messages does not reorder queues.
 *
 * Compaction only ever works on the oldest segment, since under the
 * invariant no other one could be deleted afterwards anyway. It runs in
 * steps of at most one read of STEP_READ bytes and STEP_RECORDS copies,
 * each from a zero-delay timer, so the loop polls its sockets in between. */
#include "store/journal_int.h"

#include <endian.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "common/log.h"

#define STEP_READ (1u << 20)
#define STEP_RECORDS 256
#define STEP_COPY (1u << 20)

static void delete_oldest(struct journal *j)
{
	struct jseg *s = &j->segs[0];
	char path[PATH_MAX];

	jseg_path(path, sizeof path, j->dir, s->no);
	/* Should the unlink be lost in a crash, the file comes back whole and
	 * dead, and recovery replays it harmlessly, provided the segments that
	 * come back are contiguous with the survivors (see docs/journal.md);
	 * the next sync job fsyncs the directory to keep that window short. */
	j->dir_dirty = true;
	if (unlink(path) < 0 && errno != ENOENT)
		log_error_sys("journal %s: cannot remove dead segment %s", j->dir, path);
	else
		log_debug("journal %s: removed dead segment %08" PRIu64 ".seg (%" PRIu64 " bytes)",
		          j->dir, s->no, s->written);
	journal_close_fd(j, s->fd);
	memmove(j->segs, j->segs + 1, (j->nsegs - 1) * sizeof *j->segs);
	j->nsegs--;
	j->st.segments_deleted++;
}

void jcompact_gc(struct journal *j)
{
	uint64_t d = journal_durable_now(j);

	while (j->nsegs > 1) {
		struct jseg *s = &j->segs[0];
		bool restated = false;

		if (s->live_msgs || s->dead_at > d)
			return;
		if (j->compacting && j->compact_seg == s->no)
			return;		/* still walking it; gc runs again when done */
		for (size_t k = 1; k < j->nsegs && !restated; k++)
			restated = j->segs[k].head_ok && j->segs[k].head_seq <= d;
		if (!restated)
			return;
		delete_oldest(j);
	}
}

void jcompact_maybe_start(struct journal *j)
{
	static const struct timeval now = { 0, 0 };
	uint64_t disk = 0, live = 0;
	struct jseg *s;

	if (!j->recovered || j->failing || j->compacting || j->nsegs < 2)
		return;
	s = &j->segs[0];
	if (!s->live_msgs || s->no_compact)
		return;
	for (size_t i = 0; i < j->nsegs; i++) {
		disk += j->segs[i].written;
		live += j->segs[i].live_bytes;
	}
	if (!(s->live_bytes * 4 < s->written || (j->nsegs > 2 && live * 2 < disk)))
		return;
	log_debug("journal %s: compacting %08" PRIu64 ".seg: %" PRIu64 " live messages, %" PRIu64
	          " of %" PRIu64 " bytes live", j->dir, s->no, s->live_msgs, s->live_bytes, s->written);
	j->compacting = true;
	j->compact_seg = s->no;
	j->compact_off = JSEG_HEADER_SIZE;
	event_add(j->compact_ev, &now);
}

void jcompact_stop(struct journal *j)
{
	if (!j->compacting)
		return;
	j->compacting = false;
	event_del(j->compact_ev);
	sbuf_fini(&j->cbuf);
}

/* Reads `want` bytes at off into cbuf. */
static int read_at(struct journal *j, struct jseg *s, uint64_t off, size_t want)
{
	size_t got = 0;

	sbuf_reset(&j->cbuf);
	if (j->cbuf.cap < want + 1) {
		sbuf_fini(&j->cbuf);
		j->cbuf.buf = xmalloc(want + 1);
		j->cbuf.cap = want + 1;
	}
	while (got < want) {
		ssize_t n = pread(s->fd, j->cbuf.buf + got, want - got, (off_t)(off + got));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			if (n == 0)
				errno = EIO;
			return -1;
		}
		got += (size_t)n;
	}
	j->cbuf.len = want;
	return 0;
}

static bool copy_message(struct journal *j, const struct jmsg *m, const struct jrec *r)
{
	struct jrec c = { .type = JREC_MESSAGE, .qid = m->q0, .msg_id = m->id,
	                  .val = r->val, .vlen = r->vlen };

	if (!journal_append(j, &c))
		return false;
	for (uint32_t i = 0; i + 1 < m->nq; i++) {
		struct jrec e = { .type = JREC_ENQUEUE, .qid = m->more[i], .msg_id = m->id };
		if (!journal_append(j, &e))
			return false;
	}
	return true;
}

static void give_up(struct journal *j, struct jseg *s, const char *why)
{
	log_error("journal %s: %08" PRIu64 ".seg at offset %" PRIu64 ": %s; leaving the segment uncompacted",
	          j->dir, s->no, j->compact_off, why);
	s->no_compact = true;
	jcompact_stop(j);
}

void jcompact_step_cb(evutil_socket_t fd, short what, void *arg)
{
	static const struct timeval now = { 0, 0 };
	struct journal *j = arg;
	struct jseg *s = journal_seg_find(j, j->compact_seg);
	size_t pos = 0, want, copied = 0, copied_bytes = 0;

	(void)fd;
	(void)what;
	if (!j->compacting)
		return;
	if (!s || s == journal_active(j) || j->failing) {
		jcompact_stop(j);
		return;
	}
	want = (size_t)MIN((uint64_t)STEP_READ, s->written - j->compact_off);
	j->cbuf.len = 0;
	if (want && read_at(j, s, j->compact_off, want) < 0) {
		give_up(j, s, strerror(errno));
		return;
	}
	while (pos < j->cbuf.len && copied < STEP_RECORDS && copied_bytes < STEP_COPY) {
		const char *why = NULL;
		struct jrec r;
		enum jrec_status rc = jrec_decode(j->cbuf.buf + pos, j->cbuf.len - pos, &r, &why);

		if (rc == JREC_SHORT && pos == 0) {
			/* One record larger than a step's read: read it whole. */
			uint32_t len;
			memcpy(&len, j->cbuf.buf, 4);
			len = le32toh(len);
			if (j->cbuf.len < JREC_PREFIX || JREC_PREFIX + (uint64_t)len > s->written - j->compact_off) {
				give_up(j, s, "a record runs past the end of the segment");
				return;
			}
			if (read_at(j, s, j->compact_off, JREC_PREFIX + len) < 0) {
				give_up(j, s, strerror(errno));
				return;
			}
			continue;
		}
		if (rc == JREC_SHORT)
			break;		/* the next step starts with it */
		if (rc == JREC_BAD) {
			give_up(j, s, why);
			return;
		}
		if (r.type == JREC_MESSAGE) {
			const struct jmsg *m = jidx_msg(j, r.msg_id);
			if (m && m->seg == s->no && m->off == j->compact_off + pos) {
				if (!copy_message(j, m, &r))
					return;		/* failing: fail() stopped us */
				copied++;
				copied_bytes += r.size;
			}
		}
		pos += r.size;
	}
	j->compact_off += pos;
	if (j->compact_off < s->written) {
		event_add(j->compact_ev, &now);
		return;
	}
	jcompact_stop(j);
	if (s->live_msgs) {
		give_up(j, s, "live messages left after a full pass");
		return;
	}
	j->st.compactions++;
	log_debug("journal %s: compacted %08" PRIu64 ".seg", j->dir, s->no);
	/* It goes once the copies are durable: notify_cb runs gc then. */
}
