/* passwd.c: PBKDF2-HMAC-SHA512 hashes in the PHC string format. */
#include "common/passwd.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

size_t passwd_b64_encode(const unsigned char *in, size_t len, char *out, size_t outlen)
{
	size_t o = 0;
	uint32_t acc = 0;
	int bits = 0;

	for (size_t i = 0; i < len; i++) {
		acc = (acc << 8) | in[i];
		bits += 8;
		while (bits >= 6) {
			bits -= 6;
			if (o + 1 < outlen)
				out[o] = b64[(acc >> bits) & 63];
			o++;
		}
	}
	if (bits > 0) {
		if (o + 1 < outlen)
			out[o] = b64[(acc << (6 - bits)) & 63];
		o++;
	}
	if (outlen)
		out[o < outlen ? o : outlen - 1] = 0;
	return o;
}

static int b64_value(char c)
{
	if (c >= 'A' && c <= 'Z') return c - 'A';
	if (c >= 'a' && c <= 'z') return c - 'a' + 26;
	if (c >= '0' && c <= '9') return c - '0' + 52;
	if (c == '+') return 62;
	if (c == '/') return 63;
	return -1;
}

int passwd_b64_decode(const char *in, size_t len, unsigned char *out, size_t outlen, size_t *outn,
                      size_t *bad)
{
	uint32_t acc = 0;
	int bits = 0;
	size_t o = 0;

	*bad = len;
	/* 4n+1 characters carry 6 bits too many and 2 too few for a byte */
	if (len % 4 == 1) {
		*bad = len - 1;
		return -1;
	}
	for (size_t i = 0; i < len; i++) {
		int v = b64_value(in[i]);
		if (v < 0) {
			*bad = i;
			return -1;
		}
		acc = (acc << 6) | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			if (o >= outlen) {
				*bad = i;
				return -1;
			}
			out[o++] = (unsigned char)(acc >> bits);
		}
	}
	/* the unused low bits of the last character must be zero: one string
	 * per byte sequence */
	if (bits > 0 && (acc & ((1u << bits) - 1))) {
		*bad = len - 1;
		return -1;
	}
	*outn = o;
	return 0;
}

bool passwd_is_hash(const char *s)
{
	size_t n = 0;
	if (!s || s[0] != '$')
		return false;
	for (s++; (*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '-'; s++)
		n++;
	return n > 0 && n <= 32 && *s == '$';
}

static int decode_field(const char *what, const char *s, size_t len, unsigned char *out, size_t outlen,
                        size_t *outn, char *err, size_t errlen)
{
	size_t bad;
	if (len == 0) {
		snprintf(err, errlen, "the %s is empty", what);
		return -1;
	}
	if (passwd_b64_decode(s, len, out, outlen, outn, &bad) < 0) {
		if (bad < len && b64_value(s[bad]) < 0)
			snprintf(err, errlen, "the %s is not base64: character '%c' at position %zu", what,
			         (s[bad] >= 0x20 && s[bad] < 0x7f) ? s[bad] : '?', bad + 1);
		else if (len % 4 == 1)
			snprintf(err, errlen, "the %s is not base64: %zu characters cannot encode whole bytes", what,
			         len);
		else if (bad < len - 1)
			snprintf(err, errlen, "the %s is too long: more than %zu bytes", what, outlen);
		else
			snprintf(err, errlen, "the %s is not canonical base64: its last character has stray low bits",
			         what);
		return -1;
	}
	return 0;
}

int passwd_parse(const char *s, struct passwd_hash *out, char *err, size_t errlen)
{
	static const char prefix[] = "$" PASSWD_SCHEME "$";
	const char *p, *salt, *hash, *end;
	unsigned long long iter = 0;
	size_t n;

	memset(out, 0, sizeof *out);
	if (!passwd_is_hash(s)) {
		snprintf(err, errlen, "not a password hash: expected %s... (make one with mqbroker --hash-password)",
		         prefix);
		return -1;
	}
	if (strncmp(s, prefix, sizeof prefix - 1) != 0) {
		int len = (int)(strchr(s + 1, '$') - s + 1);
		snprintf(err, errlen,
		         "unsupported hash scheme '%.*s': mqbroker makes and checks %s hashes (make one with "
		         "mqbroker --hash-password)", len, s, prefix);
		return -1;
	}
	p = s + sizeof prefix - 1;
	if (strncmp(p, "i=", 2) != 0) {
		snprintf(err, errlen, "expected the iteration count i=N after %s", prefix);
		return -1;
	}
	p += 2;
	end = strchr(p, '$');
	n = end ? (size_t)(end - p) : strlen(p);
	for (size_t i = 0; i < n; i++) {
		if (p[i] < '0' || p[i] > '9' || i >= 9 || (i == 0 && p[i] == '0')) {
			iter = 0;
			break;
		}
		iter = iter * 10 + (unsigned)(p[i] - '0');
	}
	if (iter < PASSWD_MIN_ITERATIONS || iter > PASSWD_MAX_ITERATIONS) {
		snprintf(err, errlen, "iteration count '%.*s' is not a number %u..%u", n < 20 ? (int)n : 20, p,
		         PASSWD_MIN_ITERATIONS, PASSWD_MAX_ITERATIONS);
		return -1;
	}
	out->iterations = (unsigned)iter;
	if (!end) {
		snprintf(err, errlen, "the salt and hash are missing after i=%llu", iter);
		return -1;
	}
	salt = end + 1;
	end = strchr(salt, '$');
	if (!end) {
		snprintf(err, errlen, "the hash is missing: expected $SALT$HASH after i=%llu", iter);
		return -1;
	}
	if (decode_field("salt", salt, (size_t)(end - salt), out->salt, sizeof out->salt, &out->salt_len, err,
	                 errlen) < 0)
		return -1;
	if (out->salt_len < PASSWD_MIN_SALT) {
		snprintf(err, errlen, "the salt is %zu bytes: expected at least %d", out->salt_len, PASSWD_MIN_SALT);
		return -1;
	}
	hash = end + 1;
	if (strchr(hash, '$')) {
		snprintf(err, errlen, "unexpected '$' after the hash: expected $%s$i=N$SALT$HASH", PASSWD_SCHEME);
		return -1;
	}
	{
		unsigned char dk[PASSWD_DK_LEN + 3];
		size_t dkn = 0;
		if (decode_field("hash", hash, strlen(hash), dk, sizeof dk, &dkn, err, errlen) < 0)
			return -1;
		if (dkn != PASSWD_DK_LEN) {
			snprintf(err, errlen, "the hash is %zu bytes: expected %d (SHA-512)", dkn, PASSWD_DK_LEN);
			return -1;
		}
		memcpy(out->dk, dk, PASSWD_DK_LEN);
	}
	return 0;
}

static void openssl_error(const char *what, char *err, size_t errlen)
{
	unsigned long e = ERR_get_error();
	char buf[256] = "unknown error";
	if (e)
		ERR_error_string_n(e, buf, sizeof buf);
	ERR_clear_error();
	snprintf(err, errlen, "%s failed: %s", what, buf);
}

static int derive(const char *password, size_t len, unsigned iterations, const unsigned char *salt,
                  size_t salt_len, unsigned char *dk, char *err, size_t errlen)
{
	if (!PKCS5_PBKDF2_HMAC(password, (int)len, salt, (int)salt_len, (int)iterations, EVP_sha512(),
	                       PASSWD_DK_LEN, dk)) {
		openssl_error("PBKDF2", err, errlen);
		return -1;
	}
	return 0;
}

int passwd_hash_salt(const char *password, size_t len, unsigned iterations, const unsigned char *salt,
                     size_t salt_len, char *out, size_t outlen, char *err, size_t errlen)
{
	unsigned char dk[PASSWD_DK_LEN];
	char s64[PASSWD_MAX_SALT * 2], h64[PASSWD_DK_LEN * 2];
	int n;

	if (len > PASSWD_MAX_LEN) {
		snprintf(err, errlen, "the password is %zu bytes: the limit is %d", len, PASSWD_MAX_LEN);
		return -1;
	}
	if (salt_len < 1 || salt_len > PASSWD_MAX_SALT) {
		snprintf(err, errlen, "a salt of %zu bytes: expected 1..%d", salt_len, PASSWD_MAX_SALT);
		return -1;
	}
	if (iterations == 0 || iterations > PASSWD_MAX_ITERATIONS) {
		snprintf(err, errlen, "iteration count %u: expected 1..%u", iterations, PASSWD_MAX_ITERATIONS);
		return -1;
	}
	if (derive(password, len, iterations, salt, salt_len, dk, err, errlen) < 0)
		return -1;
	passwd_b64_encode(salt, salt_len, s64, sizeof s64);
	passwd_b64_encode(dk, sizeof dk, h64, sizeof h64);
	OPENSSL_cleanse(dk, sizeof dk);
	n = snprintf(out, outlen, "$%s$i=%u$%s$%s", PASSWD_SCHEME, iterations, s64, h64);
	if (n < 0 || (size_t)n >= outlen) {
		snprintf(err, errlen, "no room for the hash string (%d bytes)", n);
		return -1;
	}
	return 0;
}

int passwd_hash(const char *password, size_t len, unsigned iterations, char *out, size_t outlen, char *err,
                size_t errlen)
{
	unsigned char salt[PASSWD_SALT_LEN];
	if (iterations == 0)
		iterations = PASSWD_ITERATIONS;
	if (iterations < PASSWD_MIN_ITERATIONS) {
		snprintf(err, errlen, "iteration count %u: expected at least %u", iterations, PASSWD_MIN_ITERATIONS);
		return -1;
	}
	if (RAND_bytes(salt, sizeof salt) != 1) {
		openssl_error("RAND_bytes", err, errlen);
		return -1;
	}
	return passwd_hash_salt(password, len, iterations, salt, sizeof salt, out, outlen, err, errlen);
}

enum passwd_result passwd_verify(const char *stored, const char *password, size_t len, char *err,
                                 size_t errlen)
{
	struct passwd_hash h;
	unsigned char dk[PASSWD_DK_LEN];
	int diff;

	if (passwd_parse(stored, &h, err, errlen) < 0)
		return PASSWD_ERROR;
	/* A password over the limit is refused without the work: it cannot
	 * have been hashed by us, and hashing it would cost the same. */
	if (len > PASSWD_MAX_LEN)
		return PASSWD_MISMATCH;
	if (derive(password, len, h.iterations, h.salt, h.salt_len, dk, err, errlen) < 0)
		return PASSWD_ERROR;
	diff = CRYPTO_memcmp(dk, h.dk, PASSWD_DK_LEN);
	OPENSSL_cleanse(dk, sizeof dk);
	return diff == 0 ? PASSWD_MATCH : PASSWD_MISMATCH;
}

bool passwd_plain_equal(const char *stored, const char *password, size_t len)
{
	/* Digests first, so that the comparison has one length whatever the
	 * lengths of the two secrets. */
	unsigned char a[64], b[64];
	unsigned int alen = 0, blen = 0;
	int diff;
	if (!EVP_Digest(stored, strlen(stored), a, &alen, EVP_sha512(), NULL) ||
	    !EVP_Digest(password, len, b, &blen, EVP_sha512(), NULL))
		return false;
	diff = CRYPTO_memcmp(a, b, sizeof a);
	OPENSSL_cleanse(b, sizeof b);
	return diff == 0;
}
