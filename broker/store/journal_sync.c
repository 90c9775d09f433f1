/* journal_sync.c: the worker thread that runs fdatasync for the journal.
 *
 * fdatasync takes milliseconds; the event loop cannot wait for it. The loop
 * thread fills in one job at a time (every segment with unsynced bytes, and
 * the directory when a segment is new) and hands it over; the worker runs
 * it and bumps an eventfd, which the loop watches. One job covers all that
 * was written before it started, so while one fsync runs, the writes of
 * many loop iterations pile up for the next: that is the group commit.
 *
 * The worker never touches libevent or the index: only the job fields,
 * under the state machine in journal_int.h. */
#include "store/journal_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#define PROBE_BYTES 4096

static void run_sync(struct jsync *s)
{
	s->done = 0;
	s->err = 0;
	s->calls = 0;
	/* The directory first: a record in a new segment is durable only once
	 * the segment's name is, and a failure here then leaves every target
	 * unsynced, which the loop handles like any failed fsync. */
	if (s->sync_dir) {
		s->calls++;
		if (fsync(s->dirfd) < 0) {
			s->err = errno;
			return;
		}
	}
	for (size_t i = 0; i < s->ntargets; i++) {
		s->calls++;
		if (journal_io.fdatasync(s->targets[i].fd) < 0) {
			s->err = errno;
			return;
		}
		s->done++;
	}
}

static void run_probe(struct jsync *s)
{
	static const char zeros[PROBE_BYTES];
	ssize_t n;

	s->err = 0;
	s->calls = 0;
	/* The first truncate repeats the one the failure made, in case that
	 * one failed too; the block written in between shows whether the
	 * disk takes data again. Zeros, should a crash leave them behind:
	 * recovery cuts a zero length as a bad tail. */
	if (ftruncate(s->probe_fd, (off_t)s->probe_off) < 0) {
		s->err = errno;
		return;
	}
	n = journal_io.pwrite(s->probe_fd, zeros, sizeof zeros, (off_t)s->probe_off);
	if (n < 0)
		s->err = errno;
	else if (n != (ssize_t)sizeof zeros)
		s->err = ENOSPC;
	if (ftruncate(s->probe_fd, (off_t)s->probe_off) < 0 && !s->err)
		s->err = errno;
}

static void *worker(void *arg)
{
	struct jsync *s = arg;
	uint64_t one = 1;

	for (;;) {
		pthread_mutex_lock(&s->lock);
		while (!s->quit && s->state != JSYNC_QUEUED)
			pthread_cond_wait(&s->cond, &s->lock);
		if (s->state != JSYNC_QUEUED) {
			pthread_mutex_unlock(&s->lock);
			break;
		}
		s->state = JSYNC_RUNNING;
		pthread_mutex_unlock(&s->lock);

		if (s->kind == JSYNC_SYNC)
			run_sync(s);
		else
			run_probe(s);

		pthread_mutex_lock(&s->lock);
		s->state = JSYNC_DONE;
		pthread_cond_broadcast(&s->cond);
		pthread_mutex_unlock(&s->lock);
		while (write(s->efd, &one, sizeof one) < 0 && errno == EINTR)
			;
	}
	return NULL;
}

int jsync_start(struct jsync *s, char *err, size_t errlen)
{
	int rc;

	s->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (s->efd < 0) {
		snprintf(err, errlen, "cannot create the journal's eventfd: %s", strerror(errno));
		return -1;
	}
	pthread_mutex_init(&s->lock, NULL);
	pthread_cond_init(&s->cond, NULL);
	s->state = JSYNC_IDLE;
	s->quit = false;
	rc = pthread_create(&s->thread, NULL, worker, s);
	if (rc) {
		snprintf(err, errlen, "cannot start the journal's fsync thread: %s", strerror(rc));
		pthread_cond_destroy(&s->cond);
		pthread_mutex_destroy(&s->lock);
		close(s->efd);
		s->efd = -1;
		return -1;
	}
	s->started = true;
	return 0;
}

void jsync_stop(struct jsync *s)
{
	if (s->started) {
		pthread_mutex_lock(&s->lock);
		s->quit = true;
		pthread_cond_broadcast(&s->cond);
		pthread_mutex_unlock(&s->lock);
		pthread_join(s->thread, NULL);
		pthread_cond_destroy(&s->cond);
		pthread_mutex_destroy(&s->lock);
		s->started = false;
	}
	if (s->efd >= 0)
		close(s->efd);
	s->efd = -1;
	free(s->targets);
	s->targets = NULL;
	s->ntargets = s->cap = 0;
}

void jsync_submit(struct jsync *s)
{
	pthread_mutex_lock(&s->lock);
	s->state = JSYNC_QUEUED;
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
}

bool jsync_poll(struct jsync *s)
{
	bool done;
	pthread_mutex_lock(&s->lock);
	done = s->state == JSYNC_DONE;
	if (done)
		s->state = JSYNC_IDLE;
	pthread_mutex_unlock(&s->lock);
	return done;
}

void jsync_wait(struct jsync *s)
{
	pthread_mutex_lock(&s->lock);
	while (s->state == JSYNC_QUEUED || s->state == JSYNC_RUNNING)
		pthread_cond_wait(&s->cond, &s->lock);
	pthread_mutex_unlock(&s->lock);
}
