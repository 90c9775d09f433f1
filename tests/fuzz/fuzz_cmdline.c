/* fuzz_cmdline.c: the admin command-line splitter on arbitrary lines.
 *
 * Any line either splits or fails with a reason. The words it gives,
 * quoted back with cmdline_quote() and joined by spaces, must split to the
 * same words again: that is how mqsh sends what a person typed. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/cmdline.h"
#include "common/util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *line = xmalloc(size + 1), err[128];
	char **argv = NULL, **again = NULL;
	struct sbuf q;
	int argc, argc2;

	memcpy(line, data, size);
	line[size] = 0;	/* a line ends at its first NUL, as it does on the socket */
	err[0] = 0;
	argc = cmdline_split(line, &argv, err, sizeof err);
	if (argc < 0) {
		if (!err[0])
			abort();
		free(line);
		return 0;
	}
	if (argc > CMDLINE_MAX_ARGS || argv[argc] != NULL)
		abort();
	sbuf_init(&q);
	for (int i = 0; i < argc; i++) {
		if (i)
			sbuf_addc(&q, ' ');
		cmdline_quote(&q, argv[i]);
	}
	argc2 = cmdline_split(sbuf_str(&q), &again, err, sizeof err);
	if (argc2 != argc)
		abort();
	for (int i = 0; i < argc; i++)
		if (strcmp(argv[i], again[i]) != 0)
			abort();
	free(again);
	free(argv);
	sbuf_fini(&q);
	free(line);
	return 0;
}
