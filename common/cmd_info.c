/* cmd_info.c: the command table without its handlers, for everything that
 * describes commands (help, mqsh completion, docs) rather than runs them. */
#include <stddef.h>
#include <string.h>

#include "common/cmd_info.h"

static const struct cmd_info table[] = {
#define CMD(name, usage, help, min, max, flags, complete, handler) { name, usage, help, min, max, flags, complete },
#include "common/cmd_table.h"
#undef CMD
};

const struct cmd_info *cmd_table(size_t *n)
{
	*n = sizeof table / sizeof table[0];
	return table;
}

const struct cmd_info *cmd_lookup(const char *name)
{
	for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
		if (strcmp(table[i].name, name) == 0)
			return &table[i];
	return NULL;
}

const char *cmd_status_name(int status)
{
	switch (status) {
	case CMD_OK: return "ok";
	case CMD_SYNTAX: return "syntax";
	case CMD_FORBIDDEN: return "not permitted";
	case CMD_NOT_FOUND: return "not found";
	case CMD_NO_COMMAND: return "unknown command";
	case CMD_CONFLICT: return "conflict";
	case CMD_BAD_ARG: return "bad argument";
	default: return "internal";
	}
}
