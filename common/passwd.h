/* passwd.h: password hashes as they are written in the configuration file
 * and the user store. In common/ because both sides make them: the broker
 * (mqbroker --hash-password) and mqsh (user add hashes the password it
 * read, so that the password itself never leaves mqsh).
 *
 * One scheme, PBKDF2-HMAC-SHA512 from OpenSSL, written in the PHC string
 * format so that the hash carries its own parameters:
 *
 *     $pbkdf2-sha512$i=210000$<salt>$<hash>
 *
 * salt and hash in base64 without padding (standard alphabet), the salt
 * 16 random bytes, the hash 64 bytes (one SHA-512 block of output).
 * 210,000 iterations is OWASP's figure for this PRF; verification reads
 * the count from the string, so raising the default later leaves existing
 * hashes valid. Comparisons run in constant time (CRYPTO_memcmp).
 *
 * A verification costs as much as the hash was made to cost (about 0.2 s
 * at the default here): never call passwd_verify() on the event loop's
 * thread for a hashed password; verifier.h does it on a worker. */
#ifndef MQ_PASSWD_H
#define MQ_PASSWD_H

#include <stdbool.h>
#include <stddef.h>

#define PASSWD_SCHEME "pbkdf2-sha512"
#define PASSWD_ITERATIONS 210000u	/* default for new hashes */
#define PASSWD_MIN_ITERATIONS 1000u	/* accepted when parsing */
#define PASSWD_MAX_ITERATIONS 10000000u	/* ~10 s: a bound on what one string can cost */
#define PASSWD_SALT_LEN 16		/* bytes, for new hashes */
#define PASSWD_MIN_SALT 8		/* accepted when parsing */
#define PASSWD_MAX_SALT 64
#define PASSWD_DK_LEN 64		/* bytes of derived key */
#define PASSWD_MAX_LEN 1024		/* longest password we take */
#define PASSWD_HASH_MAX 256		/* room for any hash string we write */

/* A parsed hash string. */
struct passwd_hash {
	unsigned iterations;
	unsigned char salt[PASSWD_MAX_SALT];
	size_t salt_len;
	unsigned char dk[PASSWD_DK_LEN];
};

enum passwd_result {
	PASSWD_MATCH = 0,	/* the password is the one hashed */
	PASSWD_MISMATCH,	/* it is not */
	PASSWD_ERROR,		/* the stored string is malformed, or OpenSSL failed: see err */
};

/* Does s claim to be a hash ("$word$...")? Such a string is parsed as one,
 * never taken as a plain-text passcode, so that a pasted hash of another
 * scheme is an error rather than a password equal to the hash text. */
bool passwd_is_hash(const char *s);

/* Parses a hash string; -1 with what is wrong, e.g. "iteration count
 * 'abc' is not a number 1000..10000000". */
int passwd_parse(const char *s, struct passwd_hash *out, char *err, size_t errlen);

/* A new hash of password (len bytes) with a random salt, written into out
 * (PASSWD_HASH_MAX bytes are always enough). iterations 0 = the default. */
int passwd_hash(const char *password, size_t len, unsigned iterations, char *out, size_t outlen,
                char *err, size_t errlen);
/* The same with a given salt: for known vectors in the tests. */
int passwd_hash_salt(const char *password, size_t len, unsigned iterations, const unsigned char *salt,
                     size_t salt_len, char *out, size_t outlen, char *err, size_t errlen);

/* Checks password against a hash string, in constant time; slow. */
enum passwd_result passwd_verify(const char *stored, const char *password, size_t len, char *err,
                                 size_t errlen);

/* Compares a plain-text passcode (from an old configuration file) in time
 * that depends on neither its content nor its length. */
bool passwd_plain_equal(const char *stored, const char *password, size_t len);

/* base64, standard alphabet, without padding (the PHC format's "B64").
 * decode: -1 on a character outside the alphabet or an impossible length,
 * with the offending position in *bad. */
size_t passwd_b64_encode(const unsigned char *in, size_t len, char *out, size_t outlen);
int passwd_b64_decode(const char *in, size_t len, unsigned char *out, size_t outlen, size_t *outn,
                      size_t *bad);

#endif
