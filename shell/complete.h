/* complete.h: what Tab offers, worked out from the command table.
 *
 * Each command's `complete` hints (common/cmd_table.h) say what an
 * argument position takes: kind, dest, queue, topic, pubsub, client,
 * listing, command (and mqsh's own: file). Live names come from the
 * broker through a fetch callback, so that this file does no I/O and the
 * tests can hand it a fake `list` reply. The usage strings add the rest:
 * literal words (`show client ID`), options (`[force]`, `[vhost=V]`) and
 * option values (`[overflow=drop-oldest|reject]`). */
#ifndef MQSH_COMPLETE_H
#define MQSH_COMPLETE_H

#include <stdbool.h>
#include <stddef.h>

#include "common/json.h"

/* Returns the `data` array of the broker's reply to `list LISTING`
 * ("destinations" or "clients"), borrowed until the next call, or NULL
 * when it cannot be had. */
typedef const struct json *(*complete_fetch_fn)(void *arg, const char *listing);

struct complete_src {
	complete_fetch_fn fetch;	/* may be NULL: no live names */
	void *arg;
};

struct complete_result {
	char **words;		/* owned, sorted, unique; NULL-terminated */
	size_t n;
	bool no_space;		/* every candidate ends in '=': a value follows, not a space */
	bool files;		/* the position takes a file name: let readline complete it */
};

/* Candidates for the word `text` (what is typed of it so far) when
 * `before` (the command's text up to that word) precedes it. */
void complete_words(const char *before, const char *text, const struct complete_src *src,
                    struct complete_result *res);
void complete_result_fini(struct complete_result *res);

#endif
