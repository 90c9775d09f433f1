/* test_passwd.c: password hashes: the PBKDF2 output against vectors made
 * by `openssl kdf`, the string format and every way it can be malformed,
 * and constant-time comparison (CRYPTO_memcmp is wrapped at link time to
 * watch what is compared). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/passwd.h"

/* ---- CRYPTO_memcmp, watched ---- */

int __real_CRYPTO_memcmp(const void *a, const void *b, size_t len);
static int memcmp_calls;
static size_t memcmp_len;

int __wrap_CRYPTO_memcmp(const void *a, const void *b, size_t len);
int __wrap_CRYPTO_memcmp(const void *a, const void *b, size_t len)
{
	memcmp_calls++;
	memcmp_len = len;
	return __real_CRYPTO_memcmp(a, b, len);
}

static void hex_to_bytes(const char *hex, unsigned char *out, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned v;
		sscanf(hex + 2 * i, "%2x", &v);
		out[i] = (unsigned char)v;
	}
}

/* The derived key inside a hash string we wrote. */
static void dk_of(const char *hash, unsigned char *dk)
{
	struct passwd_hash h;
	char err[256];
	if (passwd_parse(hash, &h, err, sizeof err) < 0) {
		/* vectors below 1000 iterations cannot be parsed: decode the tail */
		const char *last = strrchr(hash, '$');
		size_t n, bad;
		assert_non_null(last);
		assert_int_equal(passwd_b64_decode(last + 1, strlen(last + 1), dk, PASSWD_DK_LEN, &n, &bad), 0);
		assert_int_equal(n, PASSWD_DK_LEN);
		return;
	}
	memcpy(dk, h.dk, PASSWD_DK_LEN);
}

static void test_hash_matches_openssl_kdf_vectors(void **state)
{
	/* Each expected key is the output of
	 *   openssl kdf -keylen 64 -kdfopt digest:SHA512 -kdfopt pass:P
	 *        -kdfopt salt:S -kdfopt iter:N PBKDF2
	 * (hexpass/hexsalt for the binary ones); the first is also the
	 * published PBKDF2-HMAC-SHA512 vector for "password"/"salt"/1. */
	static const struct {
		const char *pass, *salt_hex;
		size_t pass_len, salt_len;
		unsigned iter;
		const char *dk;
	} v[] = {
		{ "password", "73616c74", 8, 4, 1,
		  "867F70CF1ADE02CFF3752599A3A53DC4AF34C7A669815AE5D513554E1C8CF252C02D470A285A0501BAD999BFE943C08F"
		  "050235D7D68B1DA55E63F73B60A57FCE" },
		{ "password", "73616c74", 8, 4, 1000,
		  "AFE6C5530785B6CC6B1C6453384731BD5EE432EE549FD42FB6695779AD8A1C5BF59DE69C48F774EFC4007D5298F9033C"
		  "0241D5AB69305E7B64ECEEB8D834CFEC" },
		{ "passwordPASSWORDpassword",
		  "73616c7453414c5473616c7453414c5473616c7453414c5473616c7453414c5473616c74", 24, 36, 4096,
		  "8C0511F4C6E597C6AC6315D8F0362E225F3C501495BA23B868C005174DC4EE71115B59F9E60CD9532FA33E0F75AEFE30"
		  "225C583A186CD82BD4DAEA9724A3D3B8" },
		{ "\xc3\xa9t\xc3\xa9", "000102030405060708090a0b0c0d0e0f", 6, 16, 2000,
		  "38A63038ADF9C021D85A85F590B6E0793C11846EDF80AA708A52C30F35CC288CA1394A1F330660AB964CEED9EC65A052"
		  "BD597D57CA178B89836E693E88762056" },
	};
	(void)state;
	for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
		unsigned char salt[64], want[PASSWD_DK_LEN], got[PASSWD_DK_LEN];
		char hash[PASSWD_HASH_MAX], err[256], prefix[64];
		hex_to_bytes(v[i].salt_hex, salt, v[i].salt_len);
		hex_to_bytes(v[i].dk, want, PASSWD_DK_LEN);
		assert_int_equal(passwd_hash_salt(v[i].pass, v[i].pass_len, v[i].iter, salt, v[i].salt_len, hash,
		                                  sizeof hash, err, sizeof err), 0);
		snprintf(prefix, sizeof prefix, "$pbkdf2-sha512$i=%u$", v[i].iter);
		assert_memory_equal(hash, prefix, strlen(prefix));
		dk_of(hash, got);
		if (memcmp(got, want, PASSWD_DK_LEN) != 0)
			fail_msg("vector %zu: the derived key differs from openssl kdf's (%s)", i, hash);
	}
}

static void test_hash_string_is_exact_phc_text(void **state)
{
	/* salt "salt" (c2FsdA) and the 1000-iteration key above, written in
	 * unpadded standard base64: the exact string, byte for byte */
	char hash[PASSWD_HASH_MAX], err[256];
	(void)state;
	assert_int_equal(passwd_hash_salt("password", 8, 1000, (const unsigned char *)"saltsalt", 8, hash, sizeof hash,
	                                  err, sizeof err), 0);
	assert_non_null(strstr(hash, "$pbkdf2-sha512$i=1000$c2FsdHNhbHQ$"));
	/* 64 bytes -> 86 characters, no '=' after i= */
	assert_int_equal(strlen(strrchr(hash, '$') + 1), 86);
	assert_null(strchr(strstr(hash, "i=") + 2, '='));
}

static void test_hash_then_verify(void **state)
{
	/* A hash verifies its own password and nothing else: not a prefix,
	 * not an extension, not the empty string. Two hashes of one password
	 * differ (random salts) and both verify. */
	char h1[PASSWD_HASH_MAX], h2[PASSWD_HASH_MAX], err[256];
	(void)state;
	assert_int_equal(passwd_hash("s3cret", 6, 1000, h1, sizeof h1, err, sizeof err), 0);
	assert_int_equal(passwd_hash("s3cret", 6, 1000, h2, sizeof h2, err, sizeof err), 0);
	assert_string_not_equal(h1, h2);
	assert_int_equal(passwd_verify(h1, "s3cret", 6, err, sizeof err), PASSWD_MATCH);
	assert_int_equal(passwd_verify(h2, "s3cret", 6, err, sizeof err), PASSWD_MATCH);
	assert_int_equal(passwd_verify(h1, "s3cre", 5, err, sizeof err), PASSWD_MISMATCH);
	assert_int_equal(passwd_verify(h1, "s3crett", 7, err, sizeof err), PASSWD_MISMATCH);
	assert_int_equal(passwd_verify(h1, "", 0, err, sizeof err), PASSWD_MISMATCH);
	assert_int_equal(passwd_verify(h1, "S3cret", 6, err, sizeof err), PASSWD_MISMATCH);
}

static void test_default_iterations_in_string(void **state)
{
	/* iterations 0 means the default, and the string says which */
	char h[PASSWD_HASH_MAX], err[256], want[64];
	struct passwd_hash p;
	(void)state;
	assert_int_equal(passwd_hash("x", 1, 0, h, sizeof h, err, sizeof err), 0);
	snprintf(want, sizeof want, "$pbkdf2-sha512$i=%u$", PASSWD_ITERATIONS);
	assert_memory_equal(h, want, strlen(want));
	assert_int_equal(passwd_parse(h, &p, err, sizeof err), 0);
	assert_int_equal(p.iterations, PASSWD_ITERATIONS);
	assert_int_equal(p.salt_len, PASSWD_SALT_LEN);
}

static void test_hash_refuses_bad_arguments(void **state)
{
	/* too few iterations for a new hash, an over-long password */
	char h[PASSWD_HASH_MAX], err[256], big[PASSWD_MAX_LEN + 2];
	(void)state;
	assert_int_equal(passwd_hash("x", 1, 10, h, sizeof h, err, sizeof err), -1);
	assert_non_null(strstr(err, "iteration count 10"));
	memset(big, 'a', sizeof big);
	assert_int_equal(passwd_hash(big, sizeof big, 1000, h, sizeof h, err, sizeof err), -1);
	assert_non_null(strstr(err, "limit is 1024"));
	/* and verification of an over-long one is a plain mismatch, without the work */
	assert_int_equal(passwd_hash("x", 1, 1000, h, sizeof h, err, sizeof err), 0);
	assert_int_equal(passwd_verify(h, big, sizeof big, err, sizeof err), PASSWD_MISMATCH);
}

static void test_parse_errors_name_the_fault(void **state)
{
	/* Each malformed string, and the words its error must contain. */
	static const char good_salt[] = "c2FsdHNhbHQ";	/* 8 bytes */
	char good_hash[100];
	char ok[PASSWD_HASH_MAX], err[256];
	struct passwd_hash h;
	static const struct {
		const char *text;	/* %S = a good salt, %H = a good hash */
		const char *want;
	} cases[] = {
		{ "", "not a password hash" },
		{ "secret", "not a password hash" },
		{ "$secret", "not a password hash" },
		{ "$2b$10$abcdefghijklmnopqrstuv", "unsupported hash scheme '$2b$'" },
		{ "$pbkdf2-sha256$i=1000$%S$%H", "unsupported hash scheme '$pbkdf2-sha256$'" },
		{ "$pbkdf2-sha512$rounds=1000$%S$%H", "expected the iteration count i=N" },
		{ "$pbkdf2-sha512$i=abc$%S$%H", "iteration count 'abc' is not a number 1000..10000000" },
		{ "$pbkdf2-sha512$i=999$%S$%H", "iteration count '999'" },
		{ "$pbkdf2-sha512$i=10000001$%S$%H", "iteration count '10000001'" },
		{ "$pbkdf2-sha512$i=01000$%S$%H", "iteration count '01000'" },
		{ "$pbkdf2-sha512$i=1000", "salt and hash are missing" },
		{ "$pbkdf2-sha512$i=1000$%S", "the hash is missing" },
		{ "$pbkdf2-sha512$i=1000$$%H", "the salt is empty" },
		{ "$pbkdf2-sha512$i=1000$c2F*dHNhbHQ$%H", "the salt is not base64: character '*' at position 4" },
		{ "$pbkdf2-sha512$i=1000$c2FsdA$%H", "the salt is 4 bytes: expected at least 8" },
		{ "$pbkdf2-sha512$i=1000$c2FsdHNhbHQ=$%H", "character '=' at position 12" },
		{ "$pbkdf2-sha512$i=1000$c2FsdHNhbHR$%H", "not canonical base64" },
		{ "$pbkdf2-sha512$i=1000$%S$", "the hash is empty" },
		{ "$pbkdf2-sha512$i=1000$%S$AAAA", "the hash is 3 bytes: expected 64" },
		{ "$pbkdf2-sha512$i=1000$%S$%H$", "unexpected '$' after the hash" },
		{ "$pbkdf2-sha512$i=1000$%S$%HAA", "the hash is 66 bytes: expected 64" },
		{ "$pbkdf2-sha512$i=1000$%S$%H%H", "the hash is too long" },
		{ "$pbkdf2-sha512$i=1000$%S$A", "cannot encode whole bytes" },
	};
	(void)state;
	assert_int_equal(passwd_hash_salt("pw", 2, 1000, (const unsigned char *)"saltsalt", 8, ok, sizeof ok, err,
	                                  sizeof err), 0);
	snprintf(good_hash, sizeof good_hash, "%s", strrchr(ok, '$') + 1);
	assert_int_equal(passwd_parse(ok, &h, err, sizeof err), 0);
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		char text[400] = "";
		const char *t = cases[i].text;
		/* expand %S and %H */
		while (*t) {
			if (t[0] == '%' && t[1] == 'S') {
				strcat(text, good_salt);
				t += 2;
			} else if (t[0] == '%' && t[1] == 'H') {
				strcat(text, good_hash);
				t += 2;
			} else {
				strncat(text, t++, 1);
			}
		}
		err[0] = 0;
		if (passwd_parse(text, &h, err, sizeof err) == 0)
			fail_msg("case %zu: '%s' parsed", i, text);
		if (!strstr(err, cases[i].want))
			fail_msg("case %zu: '%s': error '%s' does not say '%s'", i, text, err, cases[i].want);
		/* verification reports the same fault instead of a mismatch */
		assert_int_equal(passwd_verify(text, "pw", 2, err, sizeof err), PASSWD_ERROR);
	}
}

static void test_is_hash(void **state)
{
	/* "$word$" claims to be a hash; anything else is a plain passcode */
	(void)state;
	assert_true(passwd_is_hash("$pbkdf2-sha512$i=1$x$y"));
	assert_true(passwd_is_hash("$2b$10$..."));
	assert_true(passwd_is_hash("$7$"));
	assert_false(passwd_is_hash("secret"));
	assert_false(passwd_is_hash("$"));
	assert_false(passwd_is_hash("$$"));
	assert_false(passwd_is_hash("$money"));
	assert_false(passwd_is_hash("$Money$"));
	assert_false(passwd_is_hash("$a b$"));
	assert_false(passwd_is_hash(NULL));
}

static void test_b64_round_trip_every_length(void **state)
{
	/* every length 0..70, every byte value: decode(encode(x)) == x and
	 * the text never has padding */
	unsigned char in[70], out[70];
	char text[100];
	(void)state;
	for (size_t i = 0; i < sizeof in; i++)
		in[i] = (unsigned char)(i * 37 + 11);
	for (size_t len = 0; len <= sizeof in; len++) {
		size_t n = passwd_b64_encode(in, len, text, sizeof text), got = 0, bad;
		assert_int_equal(n, (len * 8 + 5) / 6);
		assert_int_equal(strlen(text), n);
		assert_int_equal(passwd_b64_decode(text, n, out, sizeof out, &got, &bad), 0);
		assert_int_equal(got, len);
		assert_memory_equal(in, out, len);
	}
}

static void test_verify_compares_with_crypto_memcmp(void **state)
{
	/* The derived key is compared by CRYPTO_memcmp over all 64 bytes, for
	 * a match and for a mismatch alike; plain passcodes too, over
	 * digests of equal length whatever the passcodes' lengths. */
	char h[PASSWD_HASH_MAX], err[256];
	(void)state;
	assert_int_equal(passwd_hash("right", 5, 1000, h, sizeof h, err, sizeof err), 0);
	memcmp_calls = 0;
	assert_int_equal(passwd_verify(h, "right", 5, err, sizeof err), PASSWD_MATCH);
	assert_int_equal(memcmp_calls, 1);
	assert_int_equal(memcmp_len, PASSWD_DK_LEN);
	memcmp_calls = 0;
	assert_int_equal(passwd_verify(h, "wrong", 5, err, sizeof err), PASSWD_MISMATCH);
	assert_int_equal(memcmp_calls, 1);
	assert_int_equal(memcmp_len, PASSWD_DK_LEN);

	memcmp_calls = 0;
	assert_true(passwd_plain_equal("guest", "guest", 5));
	assert_int_equal(memcmp_calls, 1);
	assert_int_equal(memcmp_len, 64);
	memcmp_calls = 0;
	assert_false(passwd_plain_equal("guest", "a much longer guess", 19));
	assert_int_equal(memcmp_calls, 1);
	assert_int_equal(memcmp_len, 64);
}

static void test_plain_equal(void **state)
{
	/* equal only when byte for byte equal: prefixes, case and the empty
	 * passcode are different */
	(void)state;
	assert_true(passwd_plain_equal("", "", 0));
	assert_false(passwd_plain_equal("guest", "gues", 4));
	assert_false(passwd_plain_equal("guest", "guests", 6));
	assert_false(passwd_plain_equal("guest", "Guest", 5));
	assert_false(passwd_plain_equal("guest", "", 0));
	/* the length given is the length used: a NUL inside counts */
	assert_false(passwd_plain_equal("guest", "guest\0x", 7));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hash_matches_openssl_kdf_vectors),
		cmocka_unit_test(test_hash_string_is_exact_phc_text),
		cmocka_unit_test(test_hash_then_verify),
		cmocka_unit_test(test_default_iterations_in_string),
		cmocka_unit_test(test_hash_refuses_bad_arguments),
		cmocka_unit_test(test_parse_errors_name_the_fault),
		cmocka_unit_test(test_is_hash),
		cmocka_unit_test(test_b64_round_trip_every_length),
		cmocka_unit_test(test_verify_compares_with_crypto_memcmp),
		cmocka_unit_test(test_plain_equal),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
