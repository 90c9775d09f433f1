/* tempq.c: temporary queues. See tempq.h. */
#include "core/tempq.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "core/dest.h"
#include "core/sink.h"

#define PREFIX_LEN (sizeof TEMPQ_PREFIX - 1)

bool tempq_is_global(const char *name)
{
	const char *p = name + PREFIX_LEN;
	if (strncmp(name, TEMPQ_PREFIX, PREFIX_LEN) != 0 || *p != 'c' || !isdigit((unsigned char)p[1]))
		return false;
	for (p++; isdigit((unsigned char)*p); p++)
		;
	return *p == '.';
}

bool tempq_is_local(const char *name)
{
	return strncmp(name, TEMPQ_PREFIX, PREFIX_LEN) == 0 && name[PREFIX_LEN] && !tempq_is_global(name);
}

bool tempq_is_own(const struct sink *k, const char *name)
{
	char prefix[48];
	int n = snprintf(prefix, sizeof prefix, TEMPQ_PREFIX "c%" PRIu64 ".", k->id);
	return strncmp(name, prefix, (size_t)n) == 0;
}

struct dest *tempq_get(struct sink *k, const char *name, char *err, size_t errlen)
{
	char global[1200];
	struct dest *d;
	const char *local = name + PREFIX_LEN;
	if (tempq_is_global(name))
		local = strchr(local, '.') + 1;	/* our own: the caller checked */
	snprintf(global, sizeof global, TEMPQ_PREFIX "c%" PRIu64 ".%.1100s", k->id, local);
	if ((d = strmap_get(&k->temp_queues, global)))
		return d;
	if (!(d = dest_create(k->who.vhost, global, DEST_QUEUE, NULL, err, errlen)))
		return NULL;
	d->owner = k;
	d->configured = false;
	strmap_put(&k->temp_queues, d->name, d);
	return d;
}

void tempq_release_all(struct sink *k)
{
	size_t it;
	void *v;
	char err[256];
	while (k->temp_queues.count) {
		it = 0;
		if (!strmap_next(&k->temp_queues, &it, NULL, &v))
			break;
		struct dest *d = v;
		strmap_del(&k->temp_queues, d->name);
		d->owner = NULL;
		d->configured = false;
		dest_delete(d, true, err, sizeof err);
	}
}
