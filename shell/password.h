/* password.h: the password of `user add` and `user passwd`, read by mqsh
 * and hashed here, so that only its hash travels to the broker.
 *
 * On a terminal it is asked twice with echo off; otherwise it is the next
 * line of standard input: in a script read from stdin, the line after the
 * command (mqsh user add alice <<<"$PASSWORD" works too). */
#ifndef MQSH_PASSWORD_H
#define MQSH_PASSWORD_H

#include <stddef.h>

/* Reads a new password for `who` and writes its hash (common/passwd.h)
 * into hash (PASSWD_HASH_MAX bytes). -1 with one line in err: an empty
 * password, end of input, two entries that differ. */
int password_ask_hash(const char *who, char *hash, size_t hashlen, char *err, size_t errlen);

#endif
