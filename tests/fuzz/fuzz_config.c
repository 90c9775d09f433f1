/* fuzz_config.c: the configuration reader on arbitrary Lua text.
 *
 * The text is written to a file and loaded into a fresh config, as the
 * broker does at start and on reload. A script may fail in any way it
 * likes (syntax, runtime errors, a wrong option, its budget or memory
 * spent): that must come back as an error saying why, never as a crash
 * or a leak. The budget and memory are set low so that each run is
 * quick; the file cannot raise them for its own load. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "common/log.h"
#include "config/config.h"
#include "rules/router.h"

static char path[64];

static void remove_file(void)
{
	unlink(path);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	const char *tmp = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
	(void)argc, (void)argv;
	snprintf(path, sizeof path, "%s/fuzz_config.%d.lua", tmp, (int)getpid());
	atexit(remove_file);
	log_set_level(getenv("FUZZ_LOG") ? atoi(getenv("FUZZ_LOG")) : LOG_NONE);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct config cfg;
	struct router *r;
	char err[1024];
	FILE *f = fopen(path, "wb");

	if (!f || fwrite(data, 1, size, f) != size || fclose(f) != 0)
		abort();
	config_init(&cfg);
	cfg.lua_budget = 200000;
	cfg.lua_memory = 8u << 20;
	err[0] = 0;
	r = router_load(path, &cfg, err, sizeof err);
	/* Every failure says why. (Not always where: a few of Lua's own
	 * messages come back without the file's name, "C stack overflow" for
	 * nesting too deep and the refusal of a binary chunk; reported, to be
	 * prefixed in broker/rules/router.c.) */
	if (!r && !err[0])
		abort();
	router_free(r);
	config_fini(&cfg);
	return 0;
}
