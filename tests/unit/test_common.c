/*
 * Unit tests for src/common: API keys, hashing, ids, time, buffers with
 * ceilings, arenas and the database's migrations.  TAP through cmocka.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <sqlite3.h>
#include <stdalign.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/apikey.h"
#include "common/arena.h"
#include "common/buf.h"
#include "common/crypto.h"
#include "common/db.h"
#include "common/ids.h"
#include "common/timestamp.h"
#include "common/utf8.h"

static const char crockford[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

static int
lower_hex(const char *s, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') ||
		    (s[i] >= 'a' && s[i] <= 'f')))
			return 0;
	return 1;
}

/* A fresh, well-formed key for the parse tests to spoil. */
static void
new_key(char key[APIKEY_LEN + 1])
{
	unsigned char hash[CRYPTO_SHA256_LEN];
	char key_id[APIKEY_ID_LEN + 1];

	assert_int_equal(apikey_generate(key, key_id, hash), 0);
}

/* --- API keys and crypto --- */

static void
test_apikey_generate_shape(void **state)
{
	unsigned char hash[CRYPTO_SHA256_LEN], want[CRYPTO_SHA256_LEN];
	char key[APIKEY_LEN + 1], key_id[APIKEY_ID_LEN + 1];

	(void)state;
	memset(key, 'X', sizeof(key));
	assert_int_equal(apikey_generate(key, key_id, hash), 0);
	assert_int_equal(APIKEY_LEN, 70);
	assert_int_equal(strlen(key), APIKEY_LEN);
	assert_memory_equal(key, "iris_", 5);
	assert_true(lower_hex(key + 5, 16));
	assert_int_equal(key[21], '_');
	assert_true(lower_hex(key + 22, 48));
	assert_int_equal(strlen(key_id), APIKEY_ID_LEN);
	assert_memory_equal(key_id, key + 5, APIKEY_ID_LEN);
	crypto_sha256(key, APIKEY_LEN, want);
	assert_memory_equal(hash, want, sizeof(want));
}

static void
test_apikey_generate_unique(void **state)
{
	unsigned char h1[CRYPTO_SHA256_LEN], h2[CRYPTO_SHA256_LEN];
	char k1[APIKEY_LEN + 1], k2[APIKEY_LEN + 1];
	char id1[APIKEY_ID_LEN + 1], id2[APIKEY_ID_LEN + 1];

	(void)state;
	assert_int_equal(apikey_generate(k1, id1, h1), 0);
	assert_int_equal(apikey_generate(k2, id2, h2), 0);
	assert_string_not_equal(k1, k2);
	assert_string_not_equal(id1, id2);
	assert_string_not_equal(k1 + 22, k2 + 22);
	assert_memory_not_equal(h1, h2, sizeof(h1));
}

static void
test_apikey_parse_generated(void **state)
{
	char key[APIKEY_LEN + 1], key_id[APIKEY_ID_LEN + 1];

	(void)state;
	new_key(key);
	memset(key_id, 'X', sizeof(key_id));
	assert_int_equal(apikey_parse(key, APIKEY_LEN, key_id), 0);
	assert_int_equal(strlen(key_id), APIKEY_ID_LEN);
	assert_memory_equal(key_id, key + 5, APIKEY_ID_LEN);
}

static void
test_apikey_parse_wrong_length(void **state)
{
	char key[APIKEY_LEN + 2], key_id[APIKEY_ID_LEN + 1];

	(void)state;
	new_key(key);
	assert_int_equal(apikey_parse(key, APIKEY_LEN - 1, key_id), -1);
	assert_int_equal(apikey_parse(key, 0, key_id), -1);
	key[APIKEY_LEN] = 'a';		/* one more hex digit */
	key[APIKEY_LEN + 1] = '\0';
	assert_int_equal(apikey_parse(key, APIKEY_LEN + 1, key_id), -1);
}

static void
test_apikey_parse_wrong_prefix(void **state)
{
	char key[APIKEY_LEN + 1], key_id[APIKEY_ID_LEN + 1];

	(void)state;
	new_key(key);
	key[3] = 'x';			/* "irix_" */
	assert_int_equal(apikey_parse(key, APIKEY_LEN, key_id), -1);
	memcpy(key, "IRIS_", 5);
	assert_int_equal(apikey_parse(key, APIKEY_LEN, key_id), -1);
	memcpy(key, "iris-", 5);
	assert_int_equal(apikey_parse(key, APIKEY_LEN, key_id), -1);
}

static void
test_apikey_parse_uppercase_hex(void **state)
{
	char key[APIKEY_LEN + 1], key_id[APIKEY_ID_LEN + 1];

	(void)state;
	new_key(key);
	key[5] = 'A';			/* in the key id */
	assert_int_equal(apikey_parse(key, APIKEY_LEN, key_id), -1);
	new_key(key);
	key[APIKEY_LEN - 1] = 'F';	/* in the secret */
	assert_int_equal(apikey_parse(key, APIKEY_LEN, key_id), -1);
	new_key(key);
	key[30] = 'g';			/* not hex at all */
	assert_int_equal(apikey_parse(key, APIKEY_LEN, key_id), -1);
}

static void
test_apikey_parse_missing_underscore(void **state)
{
	char key[APIKEY_LEN + 1], key_id[APIKEY_ID_LEN + 1];

	(void)state;
	new_key(key);
	key[21] = 'a';
	assert_int_equal(apikey_parse(key, APIKEY_LEN, key_id), -1);
	new_key(key);
	key[21] = '-';
	assert_int_equal(apikey_parse(key, APIKEY_LEN, key_id), -1);
}

static void
test_apikey_parse_nul_inside(void **state)
{
	char key[APIKEY_LEN + 1], key_id[APIKEY_ID_LEN + 1];

	(void)state;
	new_key(key);
	key[40] = '\0';			/* in the secret */
	assert_int_equal(apikey_parse(key, APIKEY_LEN, key_id), -1);
	new_key(key);
	key[10] = '\0';			/* in the key id */
	assert_int_equal(apikey_parse(key, APIKEY_LEN, key_id), -1);
	new_key(key);
	key[21] = '\0';			/* the separator */
	assert_int_equal(apikey_parse(key, APIKEY_LEN, key_id), -1);
}

static void
test_apikey_hash_is_sha256(void **state)
{
	unsigned char h[CRYPTO_SHA256_LEN], want[CRYPTO_SHA256_LEN];
	char key[APIKEY_LEN + 1];

	(void)state;
	new_key(key);
	apikey_hash(key, APIKEY_LEN, h);
	crypto_sha256(key, strlen(key), want);
	assert_memory_equal(h, want, sizeof(h));
}

static void
test_crypto_sha256_vector(void **state)
{
	unsigned char h[CRYPTO_SHA256_LEN];
	char hex[2 * CRYPTO_SHA256_LEN + 1];

	(void)state;
	crypto_sha256("abc", 3, h);
	crypto_hex(h, sizeof(h), hex);
	assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223"
	    "b00361a396177a9cb410ff61f20015ad");
	crypto_sha256("", 0, h);
	crypto_hex(h, sizeof(h), hex);
	assert_string_equal(hex, "e3b0c44298fc1c149afbf4c8996fb924"
	    "27ae41e4649b934ca495991b7852b855");
}

static void
test_crypto_hex(void **state)
{
	static const unsigned char in[] = { 0x00, 0x01, 0x7f, 0xab, 0xff };
	char out[2 * sizeof(in) + 1];

	(void)state;
	memset(out, 'X', sizeof(out));
	crypto_hex(in, sizeof(in), out);
	assert_string_equal(out, "00017fabff");
	crypto_hex(in, 0, out);
	assert_string_equal(out, "");
}

static void
test_crypto_equal(void **state)
{
	static const unsigned char a[] = { 1, 2, 3, 4 };
	static const unsigned char b[] = { 1, 2, 3, 4 };
	static const unsigned char c[] = { 1, 2, 3, 5 };
	static const unsigned char d[] = { 0, 2, 3, 4 };

	(void)state;
	assert_int_equal(crypto_equal(a, b, sizeof(a)), 1);
	assert_int_equal(crypto_equal(a, c, sizeof(a)), 0);
	assert_int_equal(crypto_equal(a, d, sizeof(a)), 0);
	assert_int_equal(crypto_equal(a, c, 3), 1);
	assert_int_equal(crypto_equal(a, d, 0), 1);
}

/* --- ids --- */

static void
test_ids_ulid_shape(void **state)
{
	char id[IDS_ULID_BUFSZ];
	size_t i;

	(void)state;
	assert_int_equal(ids_ulid("req_", id, sizeof(id)), 0);
	assert_int_equal(strlen(id), 4 + 26);
	assert_memory_equal(id, "req_", 4);
	for (i = 4; i < 4 + 26; i++)
		assert_non_null(strchr(crockford, id[i]));
	/* 48 bits in 10 characters: the first holds at most 3 bits. */
	assert_in_range(strchr(crockford, id[4]) - crockford, 0, 7);
}

/* The millisecond time in the first 10 characters of a ULID. */
static int64_t
ulid_time(const char *u)
{
	int64_t t = 0;
	int i;

	for (i = 0; i < 10; i++)
		t = t * 32 + (strchr(crockford, u[i]) - crockford);
	return t;
}

static void
test_ids_ulid_time_order(void **state)
{
	struct timespec nap = { 0, 2 * 1000 * 1000 };
	char a[IDS_ULID_BUFSZ], b[IDS_ULID_BUFSZ];
	int64_t before, after;

	(void)state;
	before = ts_now_ms();
	assert_int_equal(ids_ulid("exe_", a, sizeof(a)), 0);
	do
		nanosleep(&nap, NULL);
	while (ts_now_ms() < before + 3);
	assert_int_equal(ids_ulid("exe_", b, sizeof(b)), 0);
	after = ts_now_ms();
	assert_true(strcmp(a, b) < 0);
	assert_true(ulid_time(a + 4) + 2 <= ulid_time(b + 4));
	assert_in_range(ulid_time(a + 4), before, after);
	assert_in_range(ulid_time(b + 4), before, after);
}

static void
test_ids_ulid_buffer_too_small(void **state)
{
	char id[IDS_ULID_BUFSZ];

	(void)state;
	assert_int_equal(ids_ulid("req_", id, 4 + 26), -1);
	assert_int_equal(ids_ulid("req_", id, 0), -1);
	assert_int_equal(ids_ulid("req_", id, 4 + 26 + 1), 0);
	assert_int_equal(strlen(id), 4 + 26);
	assert_int_equal(ids_ulid("", id, 26), -1);
	assert_int_equal(ids_ulid("", id, 27), 0);
	assert_int_equal(strlen(id), 26);
}

static void
test_ids_valid_length(void **state)
{
	char s[IDS_MAX_LEN + 2];

	(void)state;
	memset(s, 'a', sizeof(s));
	assert_int_equal(ids_valid("", 0), 0);
	assert_int_equal(ids_valid(s, 1), 1);
	assert_int_equal(ids_valid(s, 128), 1);
	assert_int_equal(ids_valid(s, 129), 0);
}

static void
test_ids_valid_punctuation(void **state)
{
	(void)state;
	assert_int_equal(ids_valid("a.b", 3), 1);
	assert_int_equal(ids_valid("a_b", 3), 1);
	assert_int_equal(ids_valid("a:b", 3), 1);
	assert_int_equal(ids_valid("a-b", 3), 1);
	assert_int_equal(ids_valid(".", 1), 1);
	assert_int_equal(ids_valid("AZaz09", 6), 1);
}

static void
test_ids_valid_rejects(void **state)
{
	(void)state;
	assert_int_equal(ids_valid("a b", 3), 0);
	assert_int_equal(ids_valid("a/b", 3), 0);
	assert_int_equal(ids_valid("a\\b", 3), 0);
	assert_int_equal(ids_valid("a\0b", 3), 0);
	assert_int_equal(ids_valid("caf\xc3\xa9", 5), 0);
	assert_int_equal(ids_valid("\x80", 1), 0);
	assert_int_equal(ids_valid("\xff", 1), 0);
	assert_int_equal(ids_valid("a@b", 3), 0);
}

/* --- time --- */

static void
test_ts_realtime_in(void **state)
{
	struct timespec t;
	int64_t before = ts_now_ms(), at;

	(void)state;
	ts_realtime_in(1999, &t);
	at = (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
	assert_true(t.tv_nsec >= 0 && t.tv_nsec < 1000000000L);
	assert_true(at >= before + 1999 && at <= ts_now_ms() + 1999);
	ts_realtime_in(-5, &t);		/* the past is now */
	at = (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
	assert_true(at >= before && at <= ts_now_ms());
}

static void
test_ts_format_epoch(void **state)
{
	char out[TS_ISO_LEN];

	(void)state;
	ts_format(0, out);
	assert_string_equal(out, "1970-01-01T00:00:00.000Z");
	ts_format(999, out);
	assert_string_equal(out, "1970-01-01T00:00:00.999Z");
}

static void
test_ts_format_known(void **state)
{
	char out[TS_ISO_LEN];

	(void)state;
	/* date -u -d @1795316645: Sun Nov 22 03:04:05 UTC 2026 */
	ts_format(1795316645123LL, out);
	assert_string_equal(out, "2026-11-22T03:04:05.123Z");
	ts_format(1795316645007LL, out);
	assert_string_equal(out, "2026-11-22T03:04:05.007Z");
}

static void
test_ts_parse_round_trip(void **state)
{
	static const int64_t times[] = { 0, 1, 999, 1795316645123LL,
	    951782400000LL /* 2000-02-29 */, 4102444799999LL };
	char out[TS_ISO_LEN];
	int64_t ms;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(times) / sizeof(times[0]); i++) {
		ts_format(times[i], out);
		assert_int_equal(ts_parse(out, &ms), 0);
		assert_int_equal(ms, times[i]);
	}
}

static void
test_ts_parse_date_only(void **state)
{
	int64_t ms = -1;

	(void)state;
	assert_int_equal(ts_parse("2026-11-22", &ms), 0);
	assert_int_equal(ms, 1795305600000LL);
	assert_int_equal(ts_parse("1970-01-01", &ms), 0);
	assert_int_equal(ms, 0);
}

static void
test_ts_parse_offset_suffix(void **state)
{
	int64_t ms = -1;

	(void)state;
	assert_int_equal(ts_parse("2026-11-22T03:04:05.123+00:00", &ms), 0);
	assert_int_equal(ms, 1795316645123LL);
	assert_int_equal(ts_parse("2026-11-22T03:04:05+00:00", &ms), 0);
	assert_int_equal(ms, 1795316645000LL);
	assert_int_equal(ts_parse("2026-11-22T03:04:05Z", &ms), 0);
	assert_int_equal(ms, 1795316645000LL);
	assert_int_equal(ts_parse("2026-11-22T03:04:05+01:00", &ms), -1);
	assert_int_equal(ts_parse("2026-11-22T03:04:05-00:00", &ms), -1);
}

static void
test_ts_parse_fraction(void **state)
{
	static const struct {
		const char	*s;
		int64_t		 ms;
	} cases[] = {
		{ "2026-11-22T03:04:05.1Z", 1795316645100LL },
		{ "2026-11-22T03:04:05.12Z", 1795316645120LL },
		{ "2026-11-22T03:04:05.123Z", 1795316645123LL },
		{ "2026-11-22T03:04:05.1234Z", 1795316645123LL },
		{ "2026-11-22T03:04:05.12345Z", 1795316645123LL },
		{ "2026-11-22T03:04:05.123999Z", 1795316645123LL },
		{ "2026-11-22T03:04:05.000001Z", 1795316645000LL },
	};
	int64_t ms;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		ms = -1;
		assert_int_equal(ts_parse(cases[i].s, &ms), 0);
		assert_int_equal(ms, cases[i].ms);
	}
	assert_int_equal(ts_parse("2026-11-22T03:04:05.Z", &ms), -1);
}

static void
test_ts_parse_bad_dates(void **state)
{
	int64_t ms;

	(void)state;
	assert_int_equal(ts_parse("2025-02-30", &ms), -1);
	assert_int_equal(ts_parse("2025-02-29", &ms), -1);
	assert_int_equal(ts_parse("2100-02-29T00:00:00Z", &ms), -1);
	assert_int_equal(ts_parse("2024-02-29", &ms), 0);
	assert_int_equal(ts_parse("2000-02-29", &ms), 0);
	assert_int_equal(ts_parse("2026-04-31", &ms), -1);
	assert_int_equal(ts_parse("2026-13-01", &ms), -1);
	assert_int_equal(ts_parse("2026-00-01", &ms), -1);
	assert_int_equal(ts_parse("2026-01-00", &ms), -1);
	assert_int_equal(ts_parse("1969-12-31T23:59:59Z", &ms), -1);
	assert_int_equal(ts_parse("0000-01-01", &ms), -1);
}

static void
test_ts_parse_bad_times(void **state)
{
	int64_t ms;

	(void)state;
	assert_int_equal(ts_parse("2026-11-22T24:00:00Z", &ms), -1);
	assert_int_equal(ts_parse("2026-11-22T23:60:00Z", &ms), -1);
	assert_int_equal(ts_parse("2026-11-22T23:59:60Z", &ms), -1);
	assert_int_equal(ts_parse("2026-11-22T23:59:59.999Z", &ms), 0);
	assert_int_equal(ts_parse("2026-11-22T3:04:05Z", &ms), -1);
}

static void
test_ts_parse_bad_syntax(void **state)
{
	int64_t ms;

	(void)state;
	assert_int_equal(ts_parse("", &ms), -1);
	assert_int_equal(ts_parse("2026-11-22T03:04:05", &ms), -1);
	assert_int_equal(ts_parse("2026-11-22T03:04:05.123", &ms), -1);
	assert_int_equal(ts_parse("2026-11-22T03:04:05Zx", &ms), -1);
	assert_int_equal(ts_parse("2026-11-22T03:04:05Z ", &ms), -1);
	assert_int_equal(ts_parse("2026-11-22x", &ms), -1);
	assert_int_equal(ts_parse("2026-11-22T", &ms), -1);
	assert_int_equal(ts_parse("2026-11-22 03:04:05Z", &ms), -1);
	assert_int_equal(ts_parse(" 2026-11-22", &ms), -1);
	assert_int_equal(ts_parse("2026/11/22", &ms), -1);
	assert_int_equal(ts_parse("2026", &ms), -1);
}

/* --- buffers --- */

static void
test_buf_append_to_ceiling(void **state)
{
	struct buf b;

	(void)state;
	buf_init(&b, 8);
	assert_int_equal(buf_append(&b, "1234", 4), 0);
	assert_int_equal(buf_append(&b, "5678", 4), 0);
	assert_int_equal(b.len, 8);
	assert_string_equal(b.data, "12345678");
	buf_release(&b);
}

static void
test_buf_append_past_ceiling(void **state)
{
	struct buf b;

	(void)state;
	buf_init(&b, 8);
	assert_int_equal(buf_append(&b, "123456789", 9), -1);
	assert_int_equal(b.len, 0);
	assert_int_equal(buf_puts(&b, "12345678"), 0);
	assert_int_equal(buf_append(&b, "9", 1), -1);
	assert_int_equal(buf_puts(&b, "9"), -1);
	assert_int_equal(b.len, 8);
	assert_string_equal(b.data, "12345678");
	assert_int_equal(buf_append(&b, "", 0), 0);
	assert_int_equal(b.len, 8);
	buf_release(&b);
}

static void
test_buf_printf_past_ceiling(void **state)
{
	struct buf b;

	(void)state;
	buf_init(&b, 8);
	assert_int_equal(buf_printf(&b, "%d", 123456789), -1);
	assert_int_equal(b.len, 0);
	assert_int_equal(buf_puts(&b, "abc"), 0);
	assert_int_equal(buf_printf(&b, "%s", "123456"), -1);
	assert_int_equal(b.len, 3);
	assert_string_equal(b.data, "abc");
	assert_int_equal(buf_printf(&b, "%d-%s", 12, "34"), 0);
	assert_int_equal(b.len, 8);
	assert_string_equal(b.data, "abc12-34");
	buf_release(&b);
}

static void
test_buf_nul_terminated(void **state)
{
	char chunk[100];
	struct buf b;
	int i;

	(void)state;
	buf_init(&b, 4096);
	memset(chunk, 'x', sizeof(chunk));
	for (i = 0; i < 10; i++) {	/* grows past the first 256 bytes */
		assert_int_equal(buf_append(&b, chunk, sizeof(chunk)), 0);
		assert_int_equal(b.len, (size_t)(i + 1) * sizeof(chunk));
		assert_int_equal(b.data[b.len], '\0');
		assert_int_equal(strlen(b.data), b.len);
	}
	assert_true(b.cap <= b.max + 1);
	buf_release(&b);
}

static void
test_buf_ceiling_exact_capacity(void **state)
{
	char big[1000];
	struct buf b;

	(void)state;
	memset(big, 'y', sizeof(big));
	buf_init(&b, 1000);
	assert_int_equal(buf_append(&b, big, 999), 0);
	assert_int_equal(buf_append(&b, big, 1), 0);
	assert_int_equal(b.len, 1000);
	assert_int_equal(b.data[1000], '\0');
	assert_int_equal(buf_append(&b, big, 1), -1);
	assert_int_equal(b.cap, 1001);
	buf_release(&b);
}

static void
test_buf_reset_release(void **state)
{
	struct buf b;

	(void)state;
	buf_init(&b, 16);
	buf_reset(&b);			/* nothing allocated yet */
	assert_int_equal(b.len, 0);
	assert_int_equal(buf_puts(&b, "hello"), 0);
	buf_reset(&b);
	assert_int_equal(b.len, 0);
	assert_string_equal(b.data, "");
	assert_int_equal(buf_puts(&b, "0123456789abcdef"), 0);
	assert_string_equal(b.data, "0123456789abcdef");
	buf_release(&b);
	assert_null(b.data);
	assert_int_equal(b.len, 0);
	assert_int_equal(b.max, 16);
	assert_int_equal(buf_puts(&b, "again"), 0);
	assert_string_equal(b.data, "again");
	buf_release(&b);
}

/* --- arenas --- */

static void
test_arena_alignment(void **state)
{
	static const size_t sizes[] = { 1, 3, 7, 16, 17, 100, 5000, 9000, 1 };
	struct arena *a;
	void *p;
	size_t i;

	(void)state;
	assert_non_null(a = arena_new(1 << 20));
	for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		assert_non_null(p = arena_alloc(a, sizes[i]));
		assert_int_equal((uintptr_t)p % alignof(max_align_t), 0);
		memset(p, 0xa5, sizes[i]);
	}
	arena_free(a);
}

static void
test_arena_ceiling(void **state)
{
	struct arena *a;

	(void)state;
	assert_non_null(a = arena_new(100));
	assert_null(arena_alloc(a, 101));
	assert_non_null(arena_alloc(a, 60));
	assert_null(arena_alloc(a, 41));
	assert_non_null(arena_alloc(a, 40));
	assert_null(arena_alloc(a, 1));
	assert_null(arena_alloc(a, (size_t)-1));
	assert_null(arena_strndup(a, "x", 1));
	arena_free(a);
}

static void
test_arena_strndup(void **state)
{
	static const char s[] = "hello, world";
	struct arena *a;
	char *p;

	(void)state;
	assert_non_null(a = arena_new(1024));
	assert_non_null(p = arena_strndup(a, s, 5));
	assert_string_equal(p, "hello");
	assert_ptr_not_equal(p, s);
	assert_non_null(p = arena_strndup(a, s, 0));
	assert_string_equal(p, "");
	assert_non_null(p = arena_strndup(a, "a\0b", 3));
	assert_memory_equal(p, "a\0b", 4);
	assert_null(arena_strndup(a, s, (size_t)-1));
	arena_free(a);
}

static void
test_arena_big_allocation(void **state)
{
	struct arena *a;
	char *small, *big, *after;

	(void)state;
	assert_non_null(a = arena_new(1 << 20));
	assert_non_null(small = arena_strndup(a, "before", 6));
	assert_non_null(big = arena_alloc(a, 100000));	/* > one block */
	memset(big, 'b', 100000);
	assert_non_null(after = arena_strndup(a, "after", 5));
	assert_string_equal(small, "before");
	assert_string_equal(after, "after");
	assert_int_equal(big[0], 'b');
	assert_int_equal(big[99999], 'b');
	arena_reset(a);
	assert_non_null(big = arena_alloc(a, 200000));
	memset(big, 'c', 200000);
	arena_free(a);
}

/* Records the order cleanups run in. */
static int ran[8];
static int nran;

static void
record(void *p)
{
	if (nran < (int)(sizeof(ran) / sizeof(ran[0])))
		ran[nran] = *(int *)p;
	nran++;
}

static void
test_arena_cleanups_newest_first(void **state)
{
	static int one = 1, two = 2, three = 3;
	struct arena *a;

	(void)state;
	nran = 0;
	assert_non_null(a = arena_new(4096));
	assert_int_equal(arena_cleanup(a, record, &one), 0);
	assert_int_equal(arena_cleanup(a, record, &two), 0);
	assert_int_equal(arena_cleanup(a, record, &three), 0);
	assert_int_equal(nran, 0);
	arena_reset(a);
	assert_int_equal(nran, 3);
	assert_int_equal(ran[0], 3);
	assert_int_equal(ran[1], 2);
	assert_int_equal(ran[2], 1);
	arena_reset(a);			/* exactly once */
	arena_free(a);
	assert_int_equal(nran, 3);
}

static void
test_arena_free_runs_cleanups(void **state)
{
	static int one = 1;
	struct arena *a;

	(void)state;
	nran = 0;
	assert_non_null(a = arena_new(4096));
	assert_int_equal(arena_cleanup(a, record, &one), 0);
	arena_free(a);
	assert_int_equal(nran, 1);
	arena_free(NULL);
}

static void
test_arena_usable_after_reset(void **state)
{
	static int one = 1;
	struct arena *a;
	char *p;

	(void)state;
	nran = 0;
	assert_non_null(a = arena_new(100));
	assert_non_null(arena_alloc(a, 100));
	assert_null(arena_alloc(a, 1));
	arena_reset(a);
	assert_non_null(p = arena_alloc(a, 100));
	memset(p, 0, 100);
	arena_reset(a);
	assert_int_equal(arena_cleanup(a, record, &one), 0);
	arena_reset(a);
	assert_int_equal(nran, 1);
	arena_free(a);
	assert_int_equal(nran, 1);
}

static void
test_arena_cleanup_when_full(void **state)
{
	static int seven = 7;
	struct arena *a;

	(void)state;
	nran = 0;
	assert_non_null(a = arena_new(64));
	assert_non_null(arena_alloc(a, 64));
	assert_int_equal(arena_cleanup(a, record, &seven), -1);
	assert_int_equal(nran, 1);	/* ran at once */
	assert_int_equal(ran[0], 7);
	arena_reset(a);
	arena_free(a);
	assert_int_equal(nran, 1);	/* and never again */
}

/* --- the database --- */

struct dbdir {
	char	dir[256];
	char	path[300];
};

static int
db_setup(void **state)
{
	const char *tmp = getenv("TMPDIR");
	struct dbdir *d;

	if ((d = calloc(1, sizeof(*d))) == NULL)
		return -1;
	if (tmp == NULL || *tmp == '\0')
		tmp = "/tmp";
	snprintf(d->dir, sizeof(d->dir), "%.200s/iris-unit-XXXXXX", tmp);
	if (mkdtemp(d->dir) == NULL) {
		free(d);
		return -1;
	}
	snprintf(d->path, sizeof(d->path), "%s/iris.db", d->dir);
	*state = d;
	return 0;
}

static int
db_teardown(void **state)
{
	static const char *const suffixes[] = { "", "-wal", "-shm",
	    "-journal" };
	struct dbdir *d = *state;
	char p[320];
	size_t i;

	for (i = 0; i < sizeof(suffixes) / sizeof(suffixes[0]); i++) {
		snprintf(p, sizeof(p), "%s%s", d->path, suffixes[i]);
		unlink(p);
	}
	rmdir(d->dir);
	free(d);
	return 0;
}

/* The first column of the first row of sql, as an integer. */
static int
query_int(sqlite3 *db, const char *sql, const char *arg)
{
	sqlite3_stmt *st;
	int v = -1;

	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL),
	    SQLITE_OK);
	if (arg)
		sqlite3_bind_text(st, 1, arg, -1, SQLITE_STATIC);
	if (sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	return v;
}

static void
test_db_migrate_fresh(void **state)
{
	struct dbdir *d = *state;
	sqlite3 *db;

	assert_true(db_schema_version() >= 1);
	assert_non_null(db = db_open(d->path, 1, 1000));
	assert_int_equal(query_int(db, "PRAGMA user_version", NULL), 0);
	assert_int_equal(db_migrate(db), db_schema_version());
	assert_int_equal(query_int(db, "PRAGMA user_version", NULL),
	    db_schema_version());
	assert_int_equal(query_int(db, "PRAGMA foreign_keys", NULL), 1);
	sqlite3_close(db);
}

static void
test_db_migrate_twice(void **state)
{
	static const char count[] = "SELECT count(*) FROM sqlite_schema";
	struct dbdir *d = *state;
	sqlite3 *db;
	int objects;

	assert_non_null(db = db_open(d->path, 1, 1000));
	assert_int_equal(db_migrate(db), db_schema_version());
	objects = query_int(db, count, NULL);
	assert_true(objects > 0);
	assert_int_equal(db_migrate(db), db_schema_version());
	assert_int_equal(query_int(db, count, NULL), objects);
	sqlite3_close(db);
	assert_non_null(db = db_open(d->path, 0, 1000));	/* reopened */
	assert_int_equal(db_migrate(db), db_schema_version());
	assert_int_equal(query_int(db, count, NULL), objects);
	sqlite3_close(db);
}

static void
test_db_tables_exist(void **state)
{
	static const char *const tables[] = { "projects", "api_keys",
	    "audit_log", "executions", "sandboxes", "sandbox_events" };
	struct dbdir *d = *state;
	sqlite3 *db;
	size_t i;

	assert_non_null(db = db_open(d->path, 1, 1000));
	assert_int_equal(db_migrate(db), db_schema_version());
	for (i = 0; i < sizeof(tables) / sizeof(tables[0]); i++)
		assert_int_equal(query_int(db, "SELECT count(*) FROM "
		    "sqlite_schema WHERE type = 'table' AND name = ?1",
		    tables[i]), 1);
	assert_int_equal(query_int(db, "SELECT count(*) FROM sqlite_schema "
	    "WHERE type = 'table' AND name = ?1", "no_such_table"), 0);
	sqlite3_close(db);
}

static void
test_db_newer_schema_refused(void **state)
{
	struct dbdir *d = *state;
	char sql[64];
	sqlite3 *db;

	assert_non_null(db = db_open(d->path, 1, 1000));
	snprintf(sql, sizeof(sql), "PRAGMA user_version = %d",
	    db_schema_version() + 1);
	assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
	assert_int_equal(db_migrate(db), -1);
	assert_int_equal(query_int(db, "PRAGMA user_version", NULL),
	    db_schema_version() + 1);
	assert_int_equal(query_int(db, "SELECT count(*) FROM sqlite_schema",
	    NULL), 0);
	sqlite3_close(db);
}

static void
test_db_open_missing_without_create(void **state)
{
	struct dbdir *d = *state;

	assert_null(db_open(d->path, 0, 1000));
	assert_int_equal(access(d->path, F_OK), -1);
}

/* --- utf8 ------------------------------------------------------------------- */

static void
test_utf8_prefix_fits_whole(void **state)
{
	(void)state;
	assert_int_equal(utf8_prefix("abc", 3, 3), 3);
	assert_int_equal(utf8_prefix("abc", 3, 10), 3);
	assert_int_equal(utf8_prefix("", 0, 0), 0);
}

static void
test_utf8_prefix_never_splits_a_character(void **state)
{
	/* "a€€": 1 + 3 + 3 bytes. */
	const char *s = "a\xe2\x82\xac\xe2\x82\xac";
	size_t max;

	(void)state;
	for (max = 0; max < 7; max++) {
		size_t n = utf8_prefix(s, 7, max);

		assert_true(n <= max);
		assert_true(utf8_valid(s, n));
		assert_int_equal(n, max < 1 ? 0 : max < 4 ? 1 : 4);
	}
	/* Four-byte characters too: U+1F600 twice, cut anywhere inside. */
	assert_int_equal(utf8_prefix("\xf0\x9f\x98\x80\xf0\x9f\x98\x80", 8,
	    7), 4);
	assert_int_equal(utf8_prefix("\xf0\x9f\x98\x80", 4, 3), 0);
}

static void
test_utf8_json_ascii_escapes(void **state)
{
	/* "{"t":"é€😀"}": two-, three- and four-byte characters. */
	const char *s = "{\"t\":\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\"}";
	const char *want = "{\"t\":\"\\u00e9\\u20ac\\ud83d\\ude00\"}";
	char out[64];
	size_t used, n;

	(void)state;
	n = utf8_json_ascii(s, strlen(s), out, sizeof(out), &used);
	assert_int_equal(used, strlen(s));
	assert_int_equal(n, strlen(want));
	assert_memory_equal(out, want, n);
	/* ASCII unchanged; invalid bytes (a stray continuation, a cut
	 * sequence) are U+FFFD each. */
	n = utf8_json_ascii("ab\x82" "c\xe2\x82", 6, out, sizeof(out), &used);
	assert_int_equal(used, 6);
	assert_int_equal(n, 21);
	assert_memory_equal(out, "ab\\ufffdc\\ufffd\\ufffd", n);
}

static void
test_utf8_json_ascii_stops_before_a_cut_escape(void **state)
{
	char out[16];
	size_t used, n;

	(void)state;
	/* "a€": the escape needs 6 bytes after the "a". */
	n = utf8_json_ascii("a\xe2\x82\xac", 4, out, 6, &used);
	assert_int_equal(n, 1);
	assert_int_equal(used, 1);
	n = utf8_json_ascii("a\xe2\x82\xac", 4, out, 7, &used);
	assert_int_equal(n, 7);
	assert_int_equal(used, 4);
	/* A surrogate pair is never split: 11 bytes hold none of it. */
	n = utf8_json_ascii("\xf0\x9f\x98\x80", 4, out, 11, &used);
	assert_int_equal(n, 0);
	assert_int_equal(used, 0);
	n = utf8_json_ascii("\xf0\x9f\x98\x80", 4, out, 12, &used);
	assert_int_equal(n, 12);
	assert_memory_equal(out, "\\ud83d\\ude00", 12);
	n = utf8_json_ascii("x", 1, out, 0, &used);
	assert_int_equal(n, 0);
	assert_int_equal(used, 0);
}

#define DB_TEST(f)	cmocka_unit_test_setup_teardown(f, db_setup, \
			    db_teardown)

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_apikey_generate_shape),
		cmocka_unit_test(test_apikey_generate_unique),
		cmocka_unit_test(test_apikey_parse_generated),
		cmocka_unit_test(test_apikey_parse_wrong_length),
		cmocka_unit_test(test_apikey_parse_wrong_prefix),
		cmocka_unit_test(test_apikey_parse_uppercase_hex),
		cmocka_unit_test(test_apikey_parse_missing_underscore),
		cmocka_unit_test(test_apikey_parse_nul_inside),
		cmocka_unit_test(test_apikey_hash_is_sha256),
		cmocka_unit_test(test_crypto_sha256_vector),
		cmocka_unit_test(test_crypto_hex),
		cmocka_unit_test(test_crypto_equal),
		cmocka_unit_test(test_ids_ulid_shape),
		cmocka_unit_test(test_ids_ulid_time_order),
		cmocka_unit_test(test_ids_ulid_buffer_too_small),
		cmocka_unit_test(test_ids_valid_length),
		cmocka_unit_test(test_ids_valid_punctuation),
		cmocka_unit_test(test_ids_valid_rejects),
		cmocka_unit_test(test_ts_realtime_in),
		cmocka_unit_test(test_ts_format_epoch),
		cmocka_unit_test(test_ts_format_known),
		cmocka_unit_test(test_ts_parse_round_trip),
		cmocka_unit_test(test_ts_parse_date_only),
		cmocka_unit_test(test_ts_parse_offset_suffix),
		cmocka_unit_test(test_ts_parse_fraction),
		cmocka_unit_test(test_ts_parse_bad_dates),
		cmocka_unit_test(test_ts_parse_bad_times),
		cmocka_unit_test(test_ts_parse_bad_syntax),
		cmocka_unit_test(test_utf8_prefix_fits_whole),
		cmocka_unit_test(test_utf8_prefix_never_splits_a_character),
		cmocka_unit_test(test_utf8_json_ascii_escapes),
		cmocka_unit_test(test_utf8_json_ascii_stops_before_a_cut_escape),
		cmocka_unit_test(test_buf_append_to_ceiling),
		cmocka_unit_test(test_buf_append_past_ceiling),
		cmocka_unit_test(test_buf_printf_past_ceiling),
		cmocka_unit_test(test_buf_nul_terminated),
		cmocka_unit_test(test_buf_ceiling_exact_capacity),
		cmocka_unit_test(test_buf_reset_release),
		cmocka_unit_test(test_arena_alignment),
		cmocka_unit_test(test_arena_ceiling),
		cmocka_unit_test(test_arena_strndup),
		cmocka_unit_test(test_arena_big_allocation),
		cmocka_unit_test(test_arena_cleanups_newest_first),
		cmocka_unit_test(test_arena_free_runs_cleanups),
		cmocka_unit_test(test_arena_usable_after_reset),
		cmocka_unit_test(test_arena_cleanup_when_full),
		DB_TEST(test_db_migrate_fresh),
		DB_TEST(test_db_migrate_twice),
		DB_TEST(test_db_tables_exist),
		DB_TEST(test_db_newer_schema_refused),
		DB_TEST(test_db_open_missing_without_create),
	};

	return cmocka_run_group_tests_name("common", tests, NULL, NULL);
}
