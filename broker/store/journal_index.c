/* journal_index.c: the live index, and the undo log that keeps it honest.
 *
 * The index says, for every live message, where its current MESSAGE
 * record is and which queues it is on; for every segment, how many of
 * those records it holds; and the live META set. Records change it as
 * they are appended, not as they become durable, because later appends
 * (and compaction) must see the latest state: a REMOVE followed by a
 * compaction copy of the same message would otherwise copy a message that
 * is already gone.
 *
 * When a write or fsync fails, the failed records were never on disk, so
 * their effects are rolled back from the undo log, newest first; after
 * that the index describes exactly the journal on disk again. */
#include "store/journal_int.h"

#include <stdlib.h>
#include <string.h>

#define POOL_CHUNK 4096

static struct jmsg *pool_get(struct jpool *p)
{
	struct jmsg *m;

	if (!p->free) {
		struct jmsg *c = xmalloc(POOL_CHUNK * sizeof *c);
		p->chunks = xrealloc(p->chunks, (p->nchunks + 1) * sizeof *p->chunks);
		p->chunks[p->nchunks++] = c;
		for (size_t i = POOL_CHUNK; i-- > 0;) {
			c[i].next_free = p->free;
			p->free = &c[i];
		}
	}
	m = p->free;
	p->free = m->next_free;
	memset(m, 0, sizeof *m);
	return m;
}

static void pool_put(struct jpool *p, struct jmsg *m)
{
	free(m->more);
	m->next_free = p->free;
	p->free = m;
}

void jpool_fini(struct jpool *p)
{
	for (size_t i = 0; i < p->nchunks; i++)
		free(p->chunks[i]);
	free(p->chunks);
	memset(p, 0, sizeof *p);
}

struct jmeta *jmeta_new(const char *key, size_t klen, const void *val, size_t vlen)
{
	struct jmeta *e = xmalloc(sizeof *e + klen + 1 + vlen);
	memcpy(e->key, key, klen);
	e->key[klen] = 0;
	e->val = e->key + klen + 1;
	if (vlen)
		memcpy(e->val, val, vlen);
	e->vlen = (uint32_t)vlen;
	e->gen = 0;
	return e;
}

struct jmsg *jidx_msg(const struct journal *j, uint64_t id)
{
	return u64map_get(&j->msgs, id);
}

/* ---- queue sets ---- */

bool jidx_has_pair(const struct jmsg *m, uint32_t qid)
{
	if (m->nq && m->q0 == qid)
		return true;
	for (uint32_t i = 0; i + 1 < m->nq; i++)
		if (m->more[i] == qid)
			return true;
	return false;
}

static bool add_pair(struct jmsg *m, uint32_t qid)
{
	if (jidx_has_pair(m, qid))
		return false;
	if (m->nq == 0) {
		m->q0 = qid;
		m->nq = 1;
		return true;
	}
	if (m->nq - 1 == m->cap) {
		m->cap = m->cap ? m->cap * 2 : 2;
		m->more = xrealloc(m->more, m->cap * sizeof *m->more);
	}
	m->more[m->nq - 1] = qid;
	m->nq++;
	return true;
}

static bool del_pair(struct jmsg *m, uint32_t qid)
{
	/* Order within the set does not matter: fill the hole with the last. */
	if (m->nq && m->q0 == qid) {
		if (m->nq > 1)
			m->q0 = m->more[m->nq - 2];
		m->nq--;
		return true;
	}
	for (uint32_t i = 0; i + 1 < m->nq; i++) {
		if (m->more[i] == qid) {
			m->more[i] = m->more[m->nq - 2];
			m->nq--;
			return true;
		}
	}
	return false;
}

/* ---- per-segment counts ---- */

static void seg_add(struct journal *j, const struct jmsg *m)
{
	struct jseg *s = journal_seg_find(j, m->seg);
	if (s) {
		s->live_bytes += m->size;
		s->live_msgs++;
	}
	j->live_payload += JMSG_PAYLOAD(m);
}

/* `seq` is the record that took the message's copy away from the segment:
 * the segment may not go before that record is durable. */
static void seg_sub(struct journal *j, const struct jmsg *m, uint64_t seq)
{
	struct jseg *s = journal_seg_find(j, m->seg);
	if (s) {
		s->live_bytes -= m->size;
		s->live_msgs--;
		if (s->live_msgs == 0 && seq > s->dead_at)
			s->dead_at = seq;
	}
	j->live_payload -= JMSG_PAYLOAD(m);
}

/* ---- the undo log ---- */

static struct jundo *undo_push(struct journal *j, uint64_t seq, enum jundo_kind kind,
                               void *p, uint32_t qid)
{
	struct jundo *u;

	if (j->undo_len == j->undo_cap) {
		if (j->undo_head * 2 >= j->undo_cap && j->undo_head) {
			j->undo_len -= j->undo_head;
			memmove(j->undo, j->undo + j->undo_head, j->undo_len * sizeof *j->undo);
			j->undo_head = 0;
		} else {
			j->undo_cap = j->undo_cap ? j->undo_cap * 2 : 1024;
			j->undo = xrealloc(j->undo, j->undo_cap * sizeof *j->undo);
		}
	}
	u = &j->undo[j->undo_len++];
	memset(u, 0, sizeof *u);
	u->seq = seq;
	u->kind = kind;
	u->p = p;
	u->qid = qid;
	return u;
}

static void undo_one(struct journal *j, struct jundo *u)
{
	struct jmsg *m = u->p;
	struct jmeta *cur = u->p;

	/* The segment counts go back too; a segment emptied by an undo waits
	 * for everything appended so far, which is always safe. */
	switch (u->kind) {
	case JUNDO_NEW_MSG:
		seg_sub(j, m, j->appended_seq);
		u64map_del(&j->msgs, m->id);
		pool_put(&j->pool, m);
		break;
	case JUNDO_MOVE:
		seg_sub(j, m, j->appended_seq);
		m->seg = u->old_seg;
		m->off = u->old_off;
		m->size = u->old_size;
		seg_add(j, m);
		break;
	case JUNDO_ADD_PAIR:
		del_pair(m, u->qid);
		break;
	case JUNDO_DEL_PAIR:
		add_pair(m, u->qid);
		break;
	case JUNDO_KILL:
		add_pair(m, u->qid);
		u64map_put(&j->msgs, m->id, m);
		seg_add(j, m);
		break;
	case JUNDO_META:
		if (cur) {
			strmap_del(&j->meta, cur->key);
			free(cur);
		}
		if (u->old)
			strmap_put(&j->meta, u->old->key, u->old);
		break;
	}
}

void jidx_undo_to(struct journal *j, uint64_t first)
{
	while (j->undo_len > j->undo_head && j->undo[j->undo_len - 1].seq >= first) {
		undo_one(j, &j->undo[j->undo_len - 1]);
		j->undo_len--;
	}
	if (j->undo_len == j->undo_head)
		j->undo_len = j->undo_head = 0;
}

static void retire_one(struct journal *j, struct jundo *u)
{
	if (u->kind == JUNDO_KILL)
		pool_put(&j->pool, u->p);
	else if (u->kind == JUNDO_META)
		free(u->old);
}

void jidx_retire(struct journal *j, uint64_t seq)
{
	while (j->undo_head < j->undo_len && j->undo[j->undo_head].seq <= seq)
		retire_one(j, &j->undo[j->undo_head++]);
	if (j->undo_head == j->undo_len)
		j->undo_len = j->undo_head = 0;
}

/* ---- applying records ---- */

static void apply_message(struct journal *j, const struct jrec *r, uint64_t segno,
                          uint64_t off, uint64_t seq)
{
	struct jmsg *m = u64map_get(&j->msgs, r->msg_id);

	if (!m) {
		m = pool_get(&j->pool);
		m->id = r->msg_id;
		m->seg = segno;
		m->off = off;
		m->size = (uint32_t)jrec_size(r);
		add_pair(m, r->qid);
		u64map_put(&j->msgs, m->id, m);
		seg_add(j, m);
		if (seq)
			undo_push(j, seq, JUNDO_NEW_MSG, m, r->qid);
		return;
	}
	/* A newer copy of a stored message: compaction wrote it, or recovery
	 * meets both the old copy and the new one. Reads go to the newest. */
	if (seq) {
		struct jundo *u = undo_push(j, seq, JUNDO_MOVE, m, 0);
		u->old_seg = m->seg;
		u->old_off = m->off;
		u->old_size = m->size;
	}
	seg_sub(j, m, seq);
	m->seg = segno;
	m->off = off;
	m->size = (uint32_t)jrec_size(r);
	seg_add(j, m);
	if (add_pair(m, r->qid) && seq)
		undo_push(j, seq, JUNDO_ADD_PAIR, m, r->qid);
}

static void apply_enqueue(struct journal *j, const struct jrec *r, uint64_t seq)
{
	struct jmsg *m = u64map_get(&j->msgs, r->msg_id);

	/* Unknown in recovery: the message died, its segment went, and this
	 * record is left over; or compaction moved the message past it, and
	 * the copy carries this queue. Either way there is nothing to do. */
	if (m && add_pair(m, r->qid) && seq)
		undo_push(j, seq, JUNDO_ADD_PAIR, m, r->qid);
}

static void apply_remove(struct journal *j, const struct jrec *r, uint64_t seq)
{
	struct jmsg *m = u64map_get(&j->msgs, r->msg_id);

	if (!m || !del_pair(m, r->qid))
		return;
	if (m->nq) {
		if (seq)
			undo_push(j, seq, JUNDO_DEL_PAIR, m, r->qid);
		return;
	}
	u64map_del(&j->msgs, m->id);
	seg_sub(j, m, seq);
	if (seq)
		undo_push(j, seq, JUNDO_KILL, m, r->qid);	/* keeps m until durable */
	else
		pool_put(&j->pool, m);
}

static void apply_meta(struct journal *j, const struct jrec *r, uint64_t seq)
{
	struct jmeta *cur = NULL, *old;

	if (r->type == JREC_META_PUT) {
		cur = jmeta_new(r->key, r->klen, r->val, r->vlen);
		cur->gen = j->meta_gen;
		old = strmap_put(&j->meta, cur->key, cur);
	} else {
		char *key = xstrndup(r->key, r->klen);
		old = strmap_del(&j->meta, key);
		free(key);
		if (!old)
			return;
	}
	if (seq) {
		struct jundo *u = undo_push(j, seq, JUNDO_META, cur, 0);
		u->old = old;
	} else {
		free(old);
	}
}

void jidx_apply(struct journal *j, const struct jrec *r, uint64_t segno, uint64_t off, uint64_t seq)
{
	switch (r->type) {
	case JREC_MESSAGE:
		apply_message(j, r, segno, off, seq);
		break;
	case JREC_ENQUEUE:
		apply_enqueue(j, r, seq);
		break;
	case JREC_REMOVE:
		apply_remove(j, r, seq);
		break;
	case JREC_META_PUT:
	case JREC_META_DEL:
		apply_meta(j, r, seq);
		break;
	}
}

void jidx_free_all(struct journal *j)
{
	size_t it = 0;
	void *v;
	const char *k;

	while (u64map_next(&j->msgs, &it, NULL, &v))
		free(((struct jmsg *)v)->more);
	/* Messages held only by KILL entries, and META values replaced by
	 * pending records, belong to the undo log. */
	for (size_t i = j->undo_head; i < j->undo_len; i++) {
		struct jundo *u = &j->undo[i];
		if (u->kind == JUNDO_KILL)
			free(((struct jmsg *)u->p)->more);
		else if (u->kind == JUNDO_META)
			free(u->old);
	}
	free(j->undo);
	j->undo = NULL;
	j->undo_head = j->undo_len = j->undo_cap = 0;
	it = 0;
	while (strmap_next(&j->meta, &it, &k, &v))
		free(v);
	strmap_fini(&j->meta);
	u64map_fini(&j->msgs);
	jpool_fini(&j->pool);
}
