/* journal_int.h: what the journal_*.c files share, and the unit tests see.
 * Nothing outside the journal and its tests includes this.
 *
 *   journal_record.c   the on-disk format: records and segment headers
 *   journal_index.c    the live index: messages, queues, META, per-segment
 *                      counts, and the undo log for records not yet durable
 *   journal_sync.c     the fsync worker thread
 *   journal_recover.c  journal_recover()
 *   journal_compact.c  deleting dead segments, compacting sparse ones
 *   journal.c          open/close, appends, the write buffer, durability
 *                      reports and the failing state
 *
 * docs/journal.md describes the format and the invariants in prose; the
 * comments here say where each one is kept. */
#ifndef MQ_JOURNAL_INT_H
#define MQ_JOURNAL_INT_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/hmap.h"
#include "store/journal.h"
#include "common/util.h"

struct event;

/* ---- on-disk format (journal_record.c) ---- */

#define JSEG_HEADER_SIZE 32
#define JSEG_VERSION 1
#define JREC_PREFIX 8			/* u32 length, u32 crc32c */
#define JREC_QFIELDS 12			/* qid u32, msg_id u64 */
#define JREC_MAX_BODY (1u << 30)	/* type..payload; anything longer is corrupt */
#define JREC_MAX_KEY 65535u

enum jrec_type {
	JREC_MESSAGE = 1,	/* qid, msg_id, payload: stores a message on its first queue */
	JREC_ENQUEUE = 2,	/* qid, msg_id: puts a stored message on another queue */
	JREC_REMOVE = 3,	/* qid, msg_id: takes it off one queue */
	JREC_META_PUT = 4,	/* key, value: upsert */
	JREC_META_DEL = 5,	/* key: delete */
};

/* A record, decoded or to be encoded. Pointers are borrowed from whatever
 * buffer the record came from. */
struct jrec {
	enum jrec_type type;
	uint32_t qid;
	uint64_t msg_id;
	const char *key;	/* META_*: not NUL-terminated on decode */
	size_t klen;
	const void *val;	/* MESSAGE payload or META_PUT value */
	size_t vlen;
	size_t size;		/* whole record, prefix included (set by decode) */
};

enum jrec_status {
	JREC_OK = 0,	/* a whole, valid record */
	JREC_SHORT,	/* the bytes end inside the record: a torn tail */
	JREC_BAD,	/* checksum mismatch or impossible fields: corrupt */
};

/* Bytes the record takes on disk. */
size_t jrec_size(const struct jrec *r);
/* Appends the encoded record to b. */
void jrec_encode(struct sbuf *b, const struct jrec *r);
/* Decodes the record at p, with `avail` bytes readable there. On JREC_BAD,
 * a reason goes to why (when not NULL) for the log. */
enum jrec_status jrec_decode(const void *p, size_t avail, struct jrec *r, const char **why);
/* How many records the length fields walk through in a dropped region,
 * at least 1 when len > 0: the figure recovery reports as dropped. */
uint64_t jrec_count_dropped(const void *p, size_t len);
/* How many records a skipped region held: exact when its length fields
 * walk from its start to its end, else 1 (at least one was damaged). */
uint64_t jrec_count_skipped(const void *p, size_t len);
/* After a bad or torn record at `off` in the `len` bytes at p: the offset
 * of the next record worth trusting, or len when there is none. First the
 * bad record's own length is tried (damage in its body or checksum); then
 * every later offset, where a record counts only when its checksum holds
 * and the next one is whole and valid too, or torn, or the end. Checksums
 * computed while looking are charged to *budget (bytes); once it is spent
 * the search gives up and returns len, so that no input makes recovery
 * quadratic. */
size_t jrec_resync(const void *p, size_t len, size_t off, uint64_t *budget);
#define JREC_RESYNC_BUDGET (1ull << 30)

/* The segment header: magic, version, header size, segment number, and the
 * length of the META snapshot that follows it, under a CRC. A length of
 * JSEG_HEAD_UNKNOWN marks a segment that recovery rewrote after damage to
 * its header or snapshot: records start right after the header, and none
 * of them is a whole snapshot. */
#define JSEG_HEAD_UNKNOWN UINT32_MAX
void jseg_header_encode(void *out, uint64_t segno, uint32_t head_bytes);
bool jseg_header_decode(const void *p, size_t avail, uint64_t *segno, uint32_t *head_bytes);
/* "<dir>/00000042.seg" into buf. */
void jseg_path(char *buf, size_t len, const char *dir, uint64_t segno);
/* 42 from "00000042.seg"; false for any other name. */
bool jseg_parse_name(const char *name, uint64_t *segno);

/* ---- in memory ---- */

/* One segment file. segs[] in struct journal holds them oldest first; the
 * last one is the active segment, the only one appended to. */
struct jseg {
	uint64_t no;
	int fd;			/* owned */
	uint64_t written;	/* bytes in the file */
	uint64_t written_seq;	/* sequence number of the last record in those bytes */
	uint64_t synced;	/* bytes covered by a completed fdatasync */
	uint64_t head_end;	/* header + META snapshot: records start here */
	uint64_t head_seq;	/* the snapshot is durable once durable >= this */
	bool head_ok;		/* the snapshot is whole; false for a recovered
				 * segment whose snapshot was torn */
	bool dir_synced;	/* its directory entry has been fsynced */
	bool no_compact;	/* compaction met a bad record; leave it be */
	bool need_head;		/* cut to nothing by a failure: the header and
				 * snapshot go out again when writes resume */
	uint64_t live_bytes;	/* record bytes of MESSAGE records that are a
				 * live message's current copy */
	uint64_t live_msgs;	/* ... and how many */
	uint64_t dead_at;	/* seq of the record that took its last live
				 * message away; deletable once that is durable */
};

/* One live message. Its queues are a set: q0, then more[0..nq-2]. */
struct jmsg {
	uint64_t id;
	uint64_t seg;		/* segment of its current MESSAGE record */
	uint64_t off;		/* ... and the record's offset there */
	uint32_t size;		/* whole record, prefix included */
	uint32_t nq;		/* queues it is on; 0 only while a KILL undo holds it */
	uint32_t q0;
	uint32_t cap;		/* of more[] */
	union {
		uint32_t *more;		/* owned; queues beyond the first */
		struct jmsg *next_free;	/* while in the pool's free list */
	};
};

#define JMSG_PAYLOAD(m) ((m)->size - JREC_PREFIX - 1 - JREC_QFIELDS)

/* One META entry: key and value in one allocation. */
struct jmeta {
	uint32_t gen;		/* recovery: the segment that last set it */
	uint32_t vlen;
	char *val;		/* points after key's NUL */
	char key[];
};

/* Undo entries exist for every appended record that changed the index and
 * is not yet durable. When a write or fsync fails, the entries of the
 * failed records are applied newest first, so the index again describes
 * exactly what is on disk. They are dropped (retired) once durable. */
enum jundo_kind {
	JUNDO_NEW_MSG,		/* MESSAGE created msg: drop it */
	JUNDO_MOVE,		/* MESSAGE re-stored msg (compaction): move it back */
	JUNDO_ADD_PAIR,		/* ENQUEUE/MESSAGE put msg on qid: take it off */
	JUNDO_DEL_PAIR,		/* REMOVE took msg off qid: put it back */
	JUNDO_KILL,		/* REMOVE took msg off its last queue: revive it.
				 * The entry owns msg until retired. */
	JUNDO_META,		/* META_PUT/DEL: restore `old`, owned by the entry */
};

struct jundo {
	uint64_t seq;
	enum jundo_kind kind;
	uint32_t qid;
	uint32_t old_size;	/* MOVE */
	uint64_t old_seg;	/* MOVE */
	uint64_t old_off;	/* MOVE */
	void *p;		/* struct jmsg, or for META the entry it installed (may be NULL) */
	struct jmeta *old;	/* META: the entry it replaced (may be NULL) */
};

/* A fixed-size allocator for struct jmsg: recovery creates a million of
 * them, and one malloc each would be most of its time. */
struct jpool {
	struct jmsg *free;
	struct jmsg **chunks;	/* owned */
	size_t nchunks;
};

/* ---- the fsync worker (journal_sync.c) ---- */

enum jsync_kind {
	JSYNC_SYNC = 1,		/* fsync the directory if asked, then fdatasync each target */
	JSYNC_PROBE,		/* truncate, write a probe block, truncate again */
};

enum jsync_state {
	JSYNC_IDLE = 0,		/* the loop thread may fill in a job */
	JSYNC_QUEUED,		/* submitted, the worker has not picked it up */
	JSYNC_RUNNING,		/* the worker owns the job fields */
	JSYNC_DONE,		/* results are in; jsync_poll() hands them over */
};

struct jsync_target {
	int fd;			/* borrowed: not closed while a job is out */
	uint64_t segno;
	uint64_t off;		/* bytes written when the job was submitted */
	uint64_t seq;		/* ... and the last record in them */
};

struct jsync {
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int efd;			/* eventfd: the worker bumps it when done */
	bool started;
	bool quit;			/* under lock */
	enum jsync_state state;		/* under lock */

	/* The job. The loop thread writes it while IDLE; the worker reads it
	 * and writes the results while RUNNING; the state change under the
	 * lock orders the two. */
	enum jsync_kind kind;
	struct jsync_target *targets;	/* owned */
	size_t ntargets, cap;
	int dirfd;			/* borrowed */
	bool sync_dir;
	uint64_t dir_upto;		/* segments up to this number get dir_synced */
	int probe_fd;
	uint64_t probe_off;
	size_t done;			/* result: targets synced */
	int err;			/* result: errno of the first failure, 0 if none */
	unsigned calls;			/* result: fsync/fdatasync calls made */
};

int  jsync_start(struct jsync *s, char *err, size_t errlen);
void jsync_stop(struct jsync *s);	/* runs a queued job first; joins */
void jsync_submit(struct jsync *s);	/* state must be IDLE */
bool jsync_poll(struct jsync *s);	/* true once when the job is done; back to IDLE */
void jsync_wait(struct jsync *s);	/* blocks while a job is queued or running */

/* ---- the journal ---- */

struct journal {
	struct event_base *base;	/* borrowed */
	struct journal_opts opts;	/* opts.dir points at dir */
	char *dir;			/* owned */
	int dirfd;			/* owned */
	journal_durable_cb on_durable;
	void *arg;
	bool recovered;			/* journal_recover() has run */

	struct jseg *segs;		/* owned; oldest first, last = active */
	size_t nsegs, segcap;
	uint64_t next_segno;

	/* Records for the active segment not yet written. Each record's
	 * location is fixed when it is appended: active->written + offset in
	 * buf, so readers can find it here until the write. */
	struct sbuf buf;
	uint64_t buf_seq;		/* first record in buf; 0 when it holds none */
	bool flush_armed;		/* flush_ev is active for this iteration */
	struct event *flush_ev;

	/* Sequence numbers: one per record, in append order. */
	uint64_t appended_seq;		/* last assigned */
	uint64_t written_seq;		/* all up to here written (or failed) */
	uint64_t synced_seq;		/* all up to here fsynced */
	uint64_t reported_seq;		/* last on_durable(seq, 0, 0) made */

	/* The live index. */
	struct u64map msgs;		/* msg_id -> struct jmsg */
	struct jpool pool;
	struct strmap meta;		/* key -> struct jmeta (owned) */
	uint64_t live_payload;		/* payload bytes of live messages */
	uint32_t meta_gen;		/* recovery: bumped per segment */

	struct jundo *undo;		/* owned; [undo_head, undo_len) pending */
	size_t undo_head, undo_len, undo_cap;

	/* Syncing. */
	struct jsync sync;
	bool sync_busy;			/* a job is out: its completion is not processed */
	bool sync_due;			/* FSYNC_INTERVAL: the timer fired */
	bool dir_dirty;			/* segments were deleted since the last directory fsync */
	struct event *notify_ev;	/* reads sync.efd; also activated to report */
	struct event *interval_ev;	/* FSYNC_INTERVAL */
	int *close_later;		/* owned; fds to close once the worker is idle */
	size_t nclose_later, close_cap;

	/* The failing state: appends return 0 with errno = failing. */
	int failing;
	uint64_t fail_first, fail_last;	/* failure not yet reported; 0 = none */
	int fail_err;
	uint64_t failing_since_ms;
	struct event *probe_ev;

	/* Compaction: one segment at a time, in steps. */
	bool compacting;
	uint64_t compact_seg;
	uint64_t compact_off;
	struct sbuf cbuf;		/* read buffer for the segment being compacted */
	struct event *compact_ev;

	struct journal_stats st;	/* the counters; get_stats fills the rest */
};

/* journal.c */
struct jseg *journal_seg_find(struct journal *j, uint64_t segno);
static inline struct jseg *journal_active(struct journal *j) { return &j->segs[j->nsegs - 1]; }
/* Appends a record on behalf of the journal itself (compaction); no
 * existence checks. Returns the seq or 0 when failing. */
uint64_t journal_append(struct journal *j, const struct jrec *r);
/* The highest sequence number that is durable under the policy. */
uint64_t journal_durable_now(const struct journal *j);
/* Encodes the segment header and the META snapshot for a new active
 * segment into the buffer. */
void journal_write_head(struct journal *j, struct jseg *s);
void journal_close_fd(struct journal *j, int fd);	/* now, or once the worker is idle */
/* Recovery's last step: make the first segment of this run. */
int journal_start_active(struct journal *j, char *err, size_t errlen);

/* journal_index.c */
void jpool_fini(struct jpool *p);
/* Applies a record at (segno, off) to the index. seq 0 means recovery:
 * no undo entries, nothing to wait for. */
void jidx_apply(struct journal *j, const struct jrec *r, uint64_t segno, uint64_t off, uint64_t seq);
/* Undoes every record with seq >= first, newest first. */
void jidx_undo_to(struct journal *j, uint64_t first);
/* Forgets the undo entries of records up to seq: they are durable. */
void jidx_retire(struct journal *j, uint64_t seq);
bool jidx_has_pair(const struct jmsg *m, uint32_t qid);
struct jmsg *jidx_msg(const struct journal *j, uint64_t id);
void jidx_free_all(struct journal *j);
/* META entries: allocate, and free. */
struct jmeta *jmeta_new(const char *key, size_t klen, const void *val, size_t vlen);

/* journal_compact.c */
void jcompact_gc(struct journal *j);		/* delete the dead prefix */
void jcompact_maybe_start(struct journal *j);
void jcompact_stop(struct journal *j);
void jcompact_step_cb(int fd, short what, void *arg);

/* Test hooks: the unit tests replace these to inject disk errors and to
 * make the failing state probe more often than once a second. */
struct journal_io {
	ssize_t (*pwrite)(int fd, const void *buf, size_t n, off_t off);
	int (*fdatasync)(int fd);
	unsigned probe_ms;
};
extern struct journal_io journal_io;

#endif
