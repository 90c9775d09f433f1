/* passwd_cli.h: `mqbroker --hash-password`, which prints a hash for the
 * configuration file or for mqsh. */
#ifndef MQ_PASSWD_CLI_H
#define MQ_PASSWD_CLI_H

#include <stdbool.h>

/* Is this command line a request for a hash (the option anywhere)? */
bool passwd_cli_wanted(int argc, char **argv);
/* Reads the password (a terminal: twice, without echo; otherwise the one
 * line of standard input), prints its hash on stdout; the exit status. */
int passwd_cli_main(int argc, char **argv);

#endif
