/* console_assets.h: the web console's page, built into the broker.
 *
 * CMake writes the table (console_assets.c, in the build directory) from
 * the files in console/ at build time (console/embed.cmake), so the
 * broker serves its console with nothing to install or find at run time
 * and nothing fetched from elsewhere. */
#ifndef MQ_CONSOLE_ASSETS_H
#define MQ_CONSOLE_ASSETS_H

#include <stddef.h>

struct console_asset {
	const char *name;		/* "index.html", "console.js" */
	const char *content_type;
	const unsigned char *data;
	size_t len;
};

extern const struct console_asset console_assets[];
extern const size_t console_nassets;

#endif
