/*
 * Unit tests for src/gateway: the rate limiter's arithmetic, the route
 * table, query strings, key extraction, settings, the error envelope and
 * the validation of execute requests.  TAP through cmocka.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/arena.h"
#include "common/buf.h"
#include "common/hostmem.h"
#include "common/timestamp.h"
#include "gateway/admission.h"
#include "gateway/auth.h"
#include "gateway/config.h"
#include "gateway/execute.h"
#include "gateway/ndjson.h"
#include "gateway/outcome.h"
#include "gateway/query.h"
#include "gateway/ratelimit.h"
#include "gateway/reply.h"
#include "gateway/request.h"
#include "gateway/router.h"

/* 2026-11-22T03:04:05.123Z in microseconds: a realistic "now". */
#define NOW_US		INT64_C(1795316645123000)
#define MS		INT64_C(1000)
#define SECOND		INT64_C(1000000)

/* --- the rate limiter (GCRA) --- */

/*
 * Admits n requests at now for limit/window_ms to a key whose burst is
 * whole at now, checking the remaining count and reset of each.  Returns
 * the TAT after them.
 */
static int64_t
admit_burst(int64_t tat, int64_t now, long limit, long window_ms, long n)
{
	struct rl_result r;
	long i;

	for (i = 0; i < n; i++) {
		rl_decide(tat, now, limit, window_ms, &r);
		assert_int_equal(r.admitted, 1);
		assert_int_equal(r.remaining, limit - 1 - i);
		if (r.remaining > 0)
			assert_int_equal(r.reset_s, 0);
		else
			assert_true(r.reset_s >= 1);
		assert_true(r.tat_us > tat);
		tat = r.tat_us;
	}
	return tat;
}

static void
test_rl_burst_then_refused(void **state)
{
	struct rl_result r;
	int64_t tat;

	(void)state;
	tat = admit_burst(0, NOW_US, 100, 60000, 100);
	rl_decide(tat, NOW_US, 100, 60000, &r);
	assert_int_equal(r.admitted, 0);
	assert_int_equal(r.remaining, 0);
	assert_int_equal(r.reset_s, 1);		/* ceil(600 ms) */
}

static void
test_rl_last_admitted_reset(void **state)
{
	struct rl_result r;
	int64_t tat;

	(void)state;
	tat = admit_burst(0, NOW_US, 100, 60000, 99);
	rl_decide(tat, NOW_US, 100, 60000, &r);
	assert_int_equal(r.admitted, 1);
	assert_int_equal(r.remaining, 0);
	assert_int_equal(r.reset_s, 1);
	assert_int_equal(r.tat_us, NOW_US + 60 * SECOND);
}

static void
test_rl_refused_keeps_tat(void **state)
{
	struct rl_result r;
	int64_t tat;
	int i;

	(void)state;
	tat = admit_burst(0, NOW_US, 100, 60000, 100);
	for (i = 0; i < 3; i++) {
		rl_decide(tat, NOW_US + i * MS, 100, 60000, &r);
		assert_int_equal(r.admitted, 0);
		assert_int_equal(r.tat_us, tat);
	}
}

static void
test_rl_admitted_after_T(void **state)
{
	const int64_t t = 600 * MS;
	struct rl_result r;
	int64_t tat;

	(void)state;
	tat = admit_burst(0, NOW_US, 100, 60000, 100);
	rl_decide(tat, NOW_US + t - 1, 100, 60000, &r);	/* 1 us short */
	assert_int_equal(r.admitted, 0);
	assert_int_equal(r.reset_s, 1);
	rl_decide(tat, NOW_US + t, 100, 60000, &r);
	assert_int_equal(r.admitted, 1);
	assert_int_equal(r.remaining, 0);
	assert_int_equal(r.tat_us, tat + t);
	rl_decide(r.tat_us, NOW_US + t, 100, 60000, &r);
	assert_int_equal(r.admitted, 0);
}

static void
test_rl_full_window_refills(void **state)
{
	struct rl_result r;
	int64_t tat, later = NOW_US + 60 * SECOND;

	(void)state;
	tat = admit_burst(0, NOW_US, 100, 60000, 100);
	tat = admit_burst(tat, later, 100, 60000, 100);
	rl_decide(tat, later, 100, 60000, &r);
	assert_int_equal(r.admitted, 0);
}

static void
test_rl_stale_tat_is_empty(void **state)
{
	struct rl_result r;

	(void)state;
	rl_decide(NOW_US - 3600 * SECOND, NOW_US, 100, 60000, &r);
	assert_int_equal(r.admitted, 1);
	assert_int_equal(r.remaining, 99);
	assert_int_equal(r.reset_s, 0);
	assert_int_equal(r.tat_us, NOW_US + 600 * MS);
}

static void
test_rl_limit_one(void **state)
{
	struct rl_result r;
	int64_t tat;

	(void)state;
	tat = admit_burst(0, NOW_US, 1, 1000, 1);
	rl_decide(tat, NOW_US, 1, 1000, &r);
	assert_int_equal(r.admitted, 0);
	assert_int_equal(r.reset_s, 1);
	rl_decide(tat, NOW_US + 999 * MS, 1, 1000, &r);
	assert_int_equal(r.admitted, 0);
	assert_int_equal(r.reset_s, 1);
	rl_decide(tat, NOW_US + SECOND, 1, 1000, &r);
	assert_int_equal(r.admitted, 1);
	assert_int_equal(r.remaining, 0);
	assert_int_equal(r.reset_s, 1);
}

static void
test_rl_limit_not_dividing_window(void **state)
{
	struct rl_result r;
	int64_t tat;

	(void)state;
	/* T = 8571428.57 us, rounded up: the burst is exactly 7. */
	rl_decide(0, NOW_US, 7, 60000, &r);
	assert_int_equal(r.tat_us, NOW_US + 8571429);
	tat = admit_burst(0, NOW_US, 7, 60000, 7);
	assert_int_equal(tat, NOW_US + 7 * 8571429);
	rl_decide(tat, NOW_US, 7, 60000, &r);
	assert_int_equal(r.admitted, 0);
	assert_int_equal(r.reset_s, 9);
	rl_decide(tat, NOW_US + 8571428, 7, 60000, &r);
	assert_int_equal(r.admitted, 0);
	rl_decide(tat, NOW_US + 8571429, 7, 60000, &r);
	assert_int_equal(r.admitted, 1);
	assert_int_equal(r.remaining, 0);
}

static void
test_rl_reset_zero_while_remaining(void **state)
{
	struct rl_result r;
	int64_t tat = 0;
	int i;

	(void)state;
	for (i = 0; i < 9; i++) {
		rl_decide(tat, NOW_US, 10, 1000, &r);
		assert_int_equal(r.admitted, 1);
		assert_true(r.remaining > 0);
		assert_int_equal(r.reset_s, 0);
		tat = r.tat_us;
	}
	rl_decide(tat, NOW_US, 10, 1000, &r);
	assert_int_equal(r.remaining, 0);
	assert_int_equal(r.reset_s, 1);
}

static void
test_rl_retry_after_one_per_hour(void **state)
{
	struct rl_result r;

	(void)state;
	rl_decide(0, NOW_US, 1, 3600000, &r);
	assert_int_equal(r.admitted, 1);
	assert_int_equal(r.remaining, 0);
	assert_int_equal(r.reset_s, 3600);
	rl_decide(r.tat_us, NOW_US, 1, 3600000, &r);
	assert_int_equal(r.admitted, 0);
	assert_int_equal(r.reset_s, 3600);
	rl_decide(r.tat_us, NOW_US + 1800 * SECOND, 1, 3600000, &r);
	assert_int_equal(r.admitted, 0);
	assert_int_equal(r.reset_s, 1800);
}

/* --- the route table --- */

static void
test_router_exact_paths(void **state)
{
	const struct route *r;
	char allow[64];

	(void)state;
	assert_non_null(r = router_match("GET", "/api/iris/health", allow,
	    sizeof(allow)));
	assert_string_equal(r->path, "/api/iris/health");
	assert_int_equal(r->needs_key, 0);
	assert_non_null(r = router_match("GET", "/api/iris/sandbox", allow,
	    sizeof(allow)));
	assert_string_equal(r->method, "GET");
	assert_int_equal(r->needs_key, 1);
	assert_non_null(r = router_match("POST", "/api/iris/execute", allow,
	    sizeof(allow)));
	assert_int_equal(r->needs_key, 1);
	assert_int_equal(r->body, BODY_REQUIRED);
	assert_non_null(r->handler);
}

static void
test_router_wrong_method(void **state)
{
	char allow[64];

	(void)state;
	assert_null(router_match("POST", "/api/iris/health", allow,
	    sizeof(allow)));
	assert_string_equal(allow, "GET");
	assert_null(router_match("GET", "/api/iris/execute", allow,
	    sizeof(allow)));
	assert_string_equal(allow, "POST");
	assert_null(router_match("PUT", "/api/iris/sandbox", allow,
	    sizeof(allow)));
	assert_string_equal(allow, "GET, POST, DELETE");
	assert_null(router_match("GET", "/api/iris/execute/stream", allow,
	    sizeof(allow)));
	assert_string_equal(allow, "POST");
}

static void
test_router_unknown_path(void **state)
{
	char allow[64];

	(void)state;
	memset(allow, 'X', sizeof(allow));
	assert_null(router_match("GET", "/api/iris/nope", allow,
	    sizeof(allow)));
	assert_string_equal(allow, "");
	assert_null(router_match("GET", "", allow, sizeof(allow)));
	assert_string_equal(allow, "");
	assert_null(router_match("GET", "/", allow, sizeof(allow)));
	assert_string_equal(allow, "");
}

static void
test_router_trailing_slash(void **state)
{
	char allow[64];

	(void)state;
	assert_null(router_match("GET", "/api/iris/health/", allow,
	    sizeof(allow)));
	assert_string_equal(allow, "");
	assert_null(router_match("GET", "/api/iris/health?x=1", allow,
	    sizeof(allow)));
	assert_string_equal(allow, "");
}

static void
test_router_case_matters(void **state)
{
	char allow[64];

	(void)state;
	assert_null(router_match("get", "/api/iris/health", allow,
	    sizeof(allow)));
	assert_string_equal(allow, "GET");
	assert_null(router_match("GET", "/API/iris/health", allow,
	    sizeof(allow)));
	assert_string_equal(allow, "");
}

static void
test_router_small_allow_buffer(void **state)
{
	char allow[3];

	(void)state;
	memset(allow, 'X', sizeof(allow));
	assert_null(router_match("GET", "/api/iris/execute", allow,
	    sizeof(allow)));
	assert_string_equal(allow, "PO");
}

/* --- query strings --- */

static int
arena_setup(void **state)
{
	return (*state = arena_new(1 << 16)) == NULL ? -1 : 0;
}

static int
arena_teardown(void **state)
{
	arena_free(*state);
	return 0;
}

static void
test_query_empty(void **state)
{
	struct query_param p[QUERY_MAX_PARAMS];
	const char *bad = NULL;
	size_t n = 99;

	assert_int_equal(query_parse(*state, "", p, &n, &bad), QUERY_OK);
	assert_int_equal(n, 0);
	assert_null(bad);
}

static void
test_query_pairs(void **state)
{
	struct query_param p[QUERY_MAX_PARAMS];
	const char *bad = NULL;
	size_t n;

	assert_int_equal(query_parse(*state, "a=1&b=2", p, &n, &bad),
	    QUERY_OK);
	assert_int_equal(n, 2);
	assert_string_equal(p[0].name, "a");
	assert_string_equal(p[0].value, "1");
	assert_int_equal(p[0].value_len, 1);
	assert_string_equal(p[1].name, "b");
	assert_string_equal(p[1].value, "2");
	assert_int_equal(query_parse(*state, "a=b=c", p, &n, &bad),
	    QUERY_OK);
	assert_int_equal(n, 1);
	assert_string_equal(p[0].value, "b=c");
}

static void
test_query_decoding(void **state)
{
	struct query_param p[QUERY_MAX_PARAMS];
	const char *bad = NULL;
	size_t n;

	assert_int_equal(query_parse(*state, "q=a+b%20c&x%41=%2f%2F", p, &n,
	    &bad), QUERY_OK);
	assert_int_equal(n, 2);
	assert_string_equal(p[0].value, "a b c");
	assert_int_equal(p[0].value_len, 5);
	assert_string_equal(p[1].name, "xA");
	assert_string_equal(p[1].value, "//");
	assert_int_equal(p[1].value_len, 2);
}

static void
expect_bad(struct arena *a, const char *qs, const char *pair)
{
	struct query_param p[QUERY_MAX_PARAMS];
	const char *bad = NULL;
	size_t n;

	assert_int_equal(query_parse(a, qs, p, &n, &bad),
	    QUERY_BAD_ENCODING);
	assert_non_null(bad);
	assert_string_equal(bad, pair);
}

static void
test_query_bad_encoding(void **state)
{
	expect_bad(*state, "a=%zz", "a=%zz");
	expect_bad(*state, "x=1&a=%zz&y=2", "a=%zz");
	expect_bad(*state, "a=%2", "a=%2");
	expect_bad(*state, "a=%", "a=%");
	expect_bad(*state, "a=1%", "a=1%");
	expect_bad(*state, "a=%00", "a=%00");
	expect_bad(*state, "a%00=1", "a%00=1");
	expect_bad(*state, "%zz", "%zz");
	expect_bad(*state, "a=%g1", "a=%g1");
}

static void
test_query_no_equals(void **state)
{
	struct query_param p[QUERY_MAX_PARAMS];
	const char *bad = NULL;
	size_t n;

	assert_int_equal(query_parse(*state, "a&b=", p, &n, &bad), QUERY_OK);
	assert_int_equal(n, 2);
	assert_string_equal(p[0].name, "a");
	assert_string_equal(p[0].value, "");
	assert_int_equal(p[0].value_len, 0);
	assert_string_equal(p[1].name, "b");
	assert_string_equal(p[1].value, "");
	assert_int_equal(p[1].value_len, 0);
}

static void
test_query_empty_pairs_skipped(void **state)
{
	struct query_param p[QUERY_MAX_PARAMS];
	const char *bad = NULL;
	size_t n;

	assert_int_equal(query_parse(*state, "&&a=1&&b=2&", p, &n, &bad),
	    QUERY_OK);
	assert_int_equal(n, 2);
	assert_string_equal(p[0].name, "a");
	assert_string_equal(p[1].name, "b");
	assert_int_equal(query_parse(*state, "&&&", p, &n, &bad), QUERY_OK);
	assert_int_equal(n, 0);
}

static void
test_query_too_many(void **state)
{
	struct query_param p[QUERY_MAX_PARAMS];
	const char *bad = NULL;
	struct buf qs;
	size_t n;
	int i;

	buf_init(&qs, 1024);
	for (i = 0; i < QUERY_MAX_PARAMS; i++)
		assert_int_equal(buf_printf(&qs, "%sp%d=%d", i ? "&" : "", i,
		    i), 0);
	assert_int_equal(query_parse(*state, qs.data, p, &n, &bad),
	    QUERY_OK);
	assert_int_equal(n, QUERY_MAX_PARAMS);
	assert_string_equal(p[15].name, "p15");
	assert_int_equal(buf_puts(&qs, "&&"), 0);	/* empty: still 16 */
	assert_int_equal(query_parse(*state, qs.data, p, &n, &bad),
	    QUERY_OK);
	assert_int_equal(buf_puts(&qs, "p16=16"), 0);
	assert_int_equal(query_parse(*state, qs.data, p, &n, &bad),
	    QUERY_TOO_MANY);
	buf_release(&qs);
}

/* --- extracting the key --- */

static void
expect_key(const char *authorization, const char *x_api_key,
    const char *want)
{
	const char *key = NULL;
	size_t len = 0;

	assert_int_equal(auth_extract(authorization, x_api_key, &key, &len),
	    0);
	assert_non_null(key);
	assert_int_equal(len, strlen(want));
	assert_memory_equal(key, want, len);
}

static void
expect_no_key(const char *authorization, const char *x_api_key)
{
	const char *key;
	size_t len;

	assert_int_equal(auth_extract(authorization, x_api_key, &key, &len),
	    -1);
}

static void
test_auth_bearer(void **state)
{
	(void)state;
	expect_key("Bearer KEY", "", "KEY");
	expect_key("Bearer iris_0123_abc", "", "iris_0123_abc");
}

static void
test_auth_bearer_case(void **state)
{
	(void)state;
	expect_key("bearer KEY", "", "KEY");
	expect_key("BEARER KEY", "", "KEY");
	expect_key("bEaReR KEY", "", "KEY");
}

static void
test_auth_bearer_blanks(void **state)
{
	(void)state;
	expect_key("Bearer   KEY", "", "KEY");
	expect_key("Bearer\tKEY", "", "KEY");
	expect_key(" \tBearer \t KEY \t ", "", "KEY");
}

static void
test_auth_other_scheme(void **state)
{
	(void)state;
	expect_no_key("Basic xyz", "");
	expect_no_key("BearerKEY", "");
	expect_no_key("Token KEY", "");
}

static void
test_auth_bearer_alone(void **state)
{
	(void)state;
	expect_no_key("Bearer", "");
	expect_no_key("Bearer ", "");
	expect_no_key("Bearer \t ", "");
}

static void
test_auth_x_api_key(void **state)
{
	(void)state;
	expect_key("", "KEY", "KEY");
	expect_key("", "  KEY\t", "KEY");
	expect_no_key("", "");
	expect_no_key("", "   ");
}

static void
test_auth_authorization_wins(void **state)
{
	(void)state;
	expect_key("Bearer A", "B", "A");
	/* A bad Authorization is not rescued by X-API-Key. */
	expect_no_key("Basic xyz", "B");
}

/* --- settings --- */

/* The environment config_load sees: NULL-ended name/value pairs. */
static const char *const *fake_env;

static const char *
fake_lookup(const char *name)
{
	const char *const *e;

	for (e = fake_env; e && *e; e += 2)
		if (strcmp(e[0], name) == 0)
			return e[1];
	return NULL;
}

/* Loads with env; checks the result and that an error names name. */
static long
load(const char *const *env, int want_rc, const char *name)
{
	struct config cfg;
	char err[256] = "";
	int rc;

	fake_env = env;
	rc = config_load(&cfg, fake_lookup, err, sizeof(err));
	fake_env = NULL;
	if (rc != want_rc)
		fail_msg("%s=%s: config_load returned %d (%s)", env[0], env[1],
		    rc, err);
	if (rc == -1)
		assert_non_null(strstr(err, name));
	return rc == 0 ? cfg.workers : -1;
}

static void
test_config_defaults(void **state)
{
	struct config cfg;
	char err[256] = "";

	(void)state;
	fake_env = NULL;
	assert_int_equal(config_load(&cfg, fake_lookup, err, sizeof(err)), 0);
	assert_string_equal(cfg.db_path, "./var/iris.db");
	assert_string_equal(cfg.socket_path, "./var/gateway.sock");
	assert_int_equal(cfg.socket_mode, 0600);
	assert_int_equal(cfg.workers, 32);
	assert_int_equal(cfg.max_body, 1048576);
	assert_int_equal(cfg.max_code, 102400);
	assert_int_equal(cfg.drain_s, 30);
	assert_int_equal(cfg.db_busy_ms, 5000);
	assert_int_equal(cfg.verbose, 0);
}

/*
 * name's min and max are accepted, min - 1 and max + 1 are
 * not, nor garbage or "", each refusal naming name.  other is a further
 * variable (and value) the bounds need, or NULL.
 */
static void
check_bounds(const char *name, long min, long max, const char *other,
    const char *otherval)
{
	const char *env[] = { name, NULL, other, otherval, NULL };
	char lo[32], hi[32], below[32], above[32];

	snprintf(lo, sizeof(lo), "%ld", min);
	snprintf(hi, sizeof(hi), "%ld", max);
	snprintf(below, sizeof(below), "%ld", min - 1);
	snprintf(above, sizeof(above), "%ld", max + 1);
	env[1] = lo;
	load(env, 0, name);
	env[1] = hi;
	load(env, 0, name);
	env[1] = above;
	load(env, -1, name);
	env[1] = below;
	load(env, -1, name);
	env[1] = "12x";
	load(env, -1, name);
	env[1] = "";
	load(env, -1, name);
	env[1] = "99999999999999999999999";
	load(env, -1, name);
}

static void
test_config_workers(void **state)
{
	const char *env[] = { "IRIS_WORKERS", "7", NULL };

	(void)state;
	check_bounds("IRIS_WORKERS", 1, 1024, NULL, NULL);
	assert_int_equal(load(env, 0, NULL), 7);
}

static void
test_config_max_body(void **state)
{
	(void)state;
	check_bounds("IRIS_MAX_BODY", 1024, 64 << 20, "IRIS_MAX_CODE", "1");
}

static void
test_config_max_code(void **state)
{
	(void)state;
	check_bounds("IRIS_MAX_CODE", 1, 64 << 20, "IRIS_MAX_BODY",
	    "67108864");
}

static void
test_config_drain(void **state)
{
	(void)state;
	check_bounds("IRIS_DRAIN_TIMEOUT", 0, 3600, NULL, NULL);
}

static void
test_config_busy_ms(void **state)
{
	(void)state;
	check_bounds("IRIS_DB_BUSY_MS", 10, 600000, NULL, NULL);
}

static void
test_config_verbose(void **state)
{
	(void)state;
	check_bounds("IRIS_VERBOSE", 0, 1, NULL, NULL);
}

/* What probes find is kept 600 s by default; packages pip may install:
 * none unless listed. */
static void
test_config_runtimes_and_packages(void **state)
{
	const char *env[] = { "IRIS_PACKAGES", "torch,polars", NULL };
	struct config cfg;
	char err[256];

	(void)state;
	check_bounds("IRIS_RUNTIMES_TTL", 0, 86400, NULL, NULL);
	fake_env = NULL;
	assert_int_equal(config_load(&cfg, fake_lookup, err, sizeof(err)), 0);
	assert_int_equal(cfg.runtimes_ttl_s, 600);
	assert_null(cfg.packages);
	fake_env = env;
	assert_int_equal(config_load(&cfg, fake_lookup, err, sizeof(err)), 0);
	fake_env = NULL;
	assert_string_equal(cfg.packages, "torch,polars");
}

static long
socket_mode(const char *val, int want_rc)
{
	const char *env[] = { "IRIS_SOCKET_MODE", val, NULL };
	struct config cfg;
	char err[256] = "";

	fake_env = env;
	assert_int_equal(config_load(&cfg, fake_lookup, err, sizeof(err)),
	    want_rc);
	fake_env = NULL;
	if (want_rc == -1) {
		assert_non_null(strstr(err, "IRIS_SOCKET_MODE"));
		return -1;
	}
	return cfg.socket_mode;
}

static void
test_config_socket_mode_octal(void **state)
{
	(void)state;
	assert_int_equal(socket_mode("0660", 0), 0660);
	assert_int_equal(socket_mode("660", 0), 0660);
	assert_int_equal(socket_mode("0", 0), 0);
	assert_int_equal(socket_mode("0777", 0), 0777);
	socket_mode("01000", -1);
	socket_mode("0800", -1);
	socket_mode("9", -1);
	socket_mode("rw", -1);
	socket_mode("", -1);
}

static void
test_config_strings(void **state)
{
	const char *env[] = { "IRIS_DB", "/srv/iris.db", "IRIS_SOCKET",
	    "/run/iris.sock", NULL };
	const char *empty_db[] = { "IRIS_DB", "", NULL };
	const char *empty_sock[] = { "IRIS_SOCKET", "", NULL };
	struct config cfg;
	char err[256];

	(void)state;
	fake_env = env;
	assert_int_equal(config_load(&cfg, fake_lookup, err, sizeof(err)), 0);
	assert_string_equal(cfg.db_path, "/srv/iris.db");
	assert_string_equal(cfg.socket_path, "/run/iris.sock");
	load(empty_db, -1, "IRIS_DB");
	load(empty_sock, -1, "IRIS_SOCKET");
}

static void
test_config_code_over_body(void **state)
{
	const char *over[] = { "IRIS_MAX_BODY", "2048", "IRIS_MAX_CODE",
	    "2049", NULL };
	const char *equal[] = { "IRIS_MAX_BODY", "2048", "IRIS_MAX_CODE",
	    "2048", NULL };
	const char *small_body[] = { "IRIS_MAX_BODY", "1024", NULL };

	(void)state;
	load(over, -1, "IRIS_MAX_CODE");
	load(equal, 0, NULL);
	load(small_body, -1, "IRIS_MAX_CODE");	/* default code 102400 */
}

/* --- the error envelope and execute requests --- */

struct fixture {
	struct config	cfg;
	struct request	req;
	struct exec_req	er;
};

static int
req_setup(void **state)
{
	struct fixture *fx;
	char err[256];

	if ((fx = calloc(1, sizeof(*fx))) == NULL)
		return -1;
	fake_env = NULL;
	if (config_load(&fx->cfg, fake_lookup, err, sizeof(err)) == -1 ||
	    (fx->req.arena = arena_new(1 << 20)) == NULL) {
		free(fx);
		return -1;
	}
	fx->req.cfg = &fx->cfg;
	buf_init(&fx->req.out, 1 << 20);
	buf_init(&fx->req.headers, 8192);
	snprintf(fx->req.project_id, sizeof(fx->req.project_id), "p1");
	snprintf(fx->req.id, sizeof(fx->req.id), "req_TEST");
	*state = fx;
	return 0;
}

static int
req_teardown(void **state)
{
	struct fixture *fx = *state;

	json_object_put(fx->req.body);
	buf_release(&fx->req.out);
	buf_release(&fx->req.headers);
	arena_free(fx->req.arena);
	free(fx);
	return 0;
}

/* Parses json as the body and validates it; returns execute_parse's. */
static int
parse(struct fixture *fx, const char *json)
{
	json_object_put(fx->req.body);
	fx->req.status = 0;
	fx->req.error_code = NULL;
	buf_reset(&fx->req.out);
	fx->req.body = json_tokener_parse(json);
	if (fx->req.body == NULL)
		fail_msg("test body is not JSON: %s", json);
	return execute_parse(&fx->req, &fx->er);
}

static const char *
get_string(struct json_object *o, const char *key)
{
	struct json_object *v;

	if (!json_object_object_get_ex(o, key, &v) || v == NULL)
		return NULL;
	assert_true(json_object_is_type(v, json_type_string));
	return json_object_get_string(v);
}

/* Checks the answer in req: status and the error envelope. */
static void
expect_error(struct fixture *fx, int status, const char *code,
    const char *field)
{
	struct json_object *top, *err, *success;
	const char *f;

	assert_int_equal(fx->req.status, status);
	assert_non_null(fx->req.error_code);
	assert_string_equal(fx->req.error_code, code);
	assert_non_null(fx->req.out.data);
	assert_non_null(top = json_tokener_parse(fx->req.out.data));
	assert_true(json_object_object_get_ex(top, "success", &success));
	assert_true(json_object_is_type(success, json_type_boolean));
	assert_false(json_object_get_boolean(success));
	assert_true(json_object_object_get_ex(top, "error", &err));
	assert_true(json_object_is_type(err, json_type_object));
	assert_string_equal(get_string(err, "code"), code);
	assert_non_null(get_string(err, "message"));
	assert_true(strlen(get_string(err, "message")) > 0);
	f = get_string(err, "field");
	if (field == NULL)
		assert_null(f);
	else {
		assert_non_null(f);
		assert_string_equal(f, field);
	}
	assert_string_equal(get_string(top, "requestId"), "req_TEST");
	json_object_put(top);
}

/* Checks that json is refused with 400 invalid_request about field. */
static void
expect_invalid(struct fixture *fx, const char *json, const char *field)
{
	if (parse(fx, json) != -1)
		fail_msg("accepted: %s", json);
	expect_error(fx, 400, "invalid_request", field);
}

/* Checks that json is accepted and nothing was answered. */
static void
expect_valid(struct fixture *fx, const char *json)
{
	if (parse(fx, json) != 0)
		fail_msg("refused: %s: %s", json, fx->req.out.data);
	assert_int_equal(fx->req.status, 0);
	assert_int_equal(fx->req.out.len, 0);
}

static void
test_reply_error_envelope(void **state)
{
	struct fixture *fx = *state;

	reply_error(&fx->req, 404, "not_found", NULL, "no such %s", "route");
	expect_error(fx, 404, "not_found", NULL);
	reply_error(&fx->req, 400, "invalid_request", "timeout", "bad %d", 7);
	expect_error(fx, 400, "invalid_request", "timeout");
	assert_null(strstr(fx->req.out.data, "no such"));	/* replaced */
	assert_non_null(strstr(fx->req.out.data, "\"bad 7\""));
}

static void
test_execute_minimal(void **state)
{
	struct fixture *fx = *state;

	expect_valid(fx, "{\"code\":\"print(1)\"}");
	assert_string_equal(fx->er.code, "print(1)");
	assert_int_equal(fx->er.code_len, 8);
	assert_string_equal(fx->er.language, "python");
	assert_int_equal(fx->er.timeout_s, 30);
	assert_null(fx->er.session_id);
	assert_null(fx->er.sandbox_id);
	assert_null(fx->er.context);
	assert_null(fx->er.env_vars);
	assert_null(fx->er.packages);
}

static void
test_execute_language(void **state)
{
	struct fixture *fx = *state;

	expect_valid(fx, "{\"code\":\"x\",\"language\":\"js\"}");
	assert_string_equal(fx->er.language, "javascript");
	expect_valid(fx, "{\"code\":\"x\",\"language\":\"javascript\"}");
	assert_string_equal(fx->er.language, "javascript");
	expect_valid(fx, "{\"code\":\"x\",\"language\":\"ts\"}");
	assert_string_equal(fx->er.language, "typescript");
	expect_valid(fx, "{\"code\":\"x\",\"language\":\"typescript\"}");
	assert_string_equal(fx->er.language, "typescript");
	expect_valid(fx, "{\"code\":\"x\",\"language\":\"bash\"}");
	assert_string_equal(fx->er.language, "bash");
	expect_valid(fx, "{\"code\":\"x\",\"language\":\"python\"}");
	assert_string_equal(fx->er.language, "python");
}

static void
test_execute_bad_language(void **state)
{
	struct fixture *fx = *state;

	expect_invalid(fx, "{\"code\":\"x\",\"language\":\"ruby\"}",
	    "language");
	expect_invalid(fx, "{\"code\":\"x\",\"language\":\"Python\"}",
	    "language");
	expect_invalid(fx, "{\"code\":\"x\",\"language\":1}", "language");
}

static void
test_execute_unknown_field(void **state)
{
	struct fixture *fx = *state;

	expect_invalid(fx, "{\"code\":\"x\",\"foo\":1}", "foo");
	expect_invalid(fx, "{\"Code\":\"x\"}", "Code");
}

static void
test_execute_code_missing(void **state)
{
	struct fixture *fx = *state;

	expect_invalid(fx, "{}", "code");
	expect_invalid(fx, "{\"language\":\"python\"}", "code");
}

static void
test_execute_code_empty(void **state)
{
	struct fixture *fx = *state;

	expect_invalid(fx, "{\"code\":\"\"}", "code");
}

static void
test_execute_code_not_string(void **state)
{
	struct fixture *fx = *state;

	expect_invalid(fx, "{\"code\":1}", "code");
	expect_invalid(fx, "{\"code\":null}", "code");
	expect_invalid(fx, "{\"code\":[\"x\"]}", "code");
	expect_invalid(fx, "{\"code\":true}", "code");
}

/* {"code":"xxx..."} with n bytes of code. */
static char *
code_body(size_t n)
{
	char *s;

	if ((s = malloc(n + 16)) == NULL)
		return NULL;
	memcpy(s, "{\"code\":\"", 9);
	memset(s + 9, 'x', n);
	memcpy(s + 9 + n, "\"}", 3);
	return s;
}

static void
test_execute_code_too_large(void **state)
{
	struct fixture *fx = *state;
	size_t max = (size_t)fx->cfg.max_code;
	char *body;

	assert_non_null(body = code_body(max));
	expect_valid(fx, body);
	assert_int_equal(fx->er.code_len, max);
	free(body);
	assert_non_null(body = code_body(max + 1));
	assert_int_equal(parse(fx, body), -1);
	free(body);
	expect_error(fx, 413, "code_too_large", "code");
}

static void
test_execute_timeout(void **state)
{
	struct fixture *fx = *state;

	expect_valid(fx, "{\"code\":\"x\",\"timeout\":300}");
	assert_int_equal(fx->er.timeout_s, 300);
	expect_valid(fx, "{\"code\":\"x\",\"timeout\":1}");
	assert_int_equal(fx->er.timeout_s, 1);
	expect_invalid(fx, "{\"code\":\"x\",\"timeout\":0}", "timeout");
	expect_invalid(fx, "{\"code\":\"x\",\"timeout\":301}", "timeout");
	expect_invalid(fx, "{\"code\":\"x\",\"timeout\":-1}", "timeout");
	expect_invalid(fx, "{\"code\":\"x\",\"timeout\":1.5}", "timeout");
	expect_invalid(fx, "{\"code\":\"x\",\"timeout\":\"30\"}", "timeout");
	expect_invalid(fx, "{\"code\":\"x\",\"timeout\":"
	    "99999999999999999999}", "timeout");
}

static void
test_execute_project(void **state)
{
	struct fixture *fx = *state;

	expect_valid(fx, "{\"code\":\"x\",\"projectId\":\"p1\"}");
	assert_int_equal(parse(fx, "{\"code\":\"x\",\"projectId\":\"p2\"}"),
	    -1);
	expect_error(fx, 403, "project_mismatch", "projectId");
	expect_invalid(fx, "{\"code\":\"x\",\"projectId\":\"bad id!\"}",
	    "projectId");
	expect_invalid(fx, "{\"code\":\"x\",\"projectId\":\"\"}",
	    "projectId");
	expect_invalid(fx, "{\"code\":\"x\",\"projectId\":1}", "projectId");
}

/* {"code":"x","<field>":"aaa..."} with an id of n characters. */
static char *
id_body(const char *field, size_t n)
{
	struct buf b;

	buf_init(&b, 1024);
	assert_int_equal(buf_printf(&b, "{\"code\":\"x\",\"%s\":\"", field),
	    0);
	while (n-- > 0)
		assert_int_equal(buf_puts(&b, "s"), 0);
	assert_int_equal(buf_puts(&b, "\"}"), 0);
	return b.data;
}

static void
test_execute_session_id(void **state)
{
	struct fixture *fx = *state;
	char *body;

	body = id_body("sessionId", 128);
	expect_valid(fx, body);
	free(body);
	assert_non_null(fx->er.session_id);
	assert_int_equal(strlen(fx->er.session_id), 128);
	body = id_body("sessionId", 129);
	expect_invalid(fx, body, "sessionId");
	free(body);
	expect_invalid(fx, "{\"code\":\"x\",\"sessionId\":\"a/b\"}",
	    "sessionId");
}

static void
test_execute_sandbox_id(void **state)
{
	struct fixture *fx = *state;

	expect_valid(fx, "{\"code\":\"x\",\"sandboxId\":\"sbx_01J:a-b.c\"}");
	assert_string_equal(fx->er.sandbox_id, "sbx_01J:a-b.c");
	expect_invalid(fx, "{\"code\":\"x\",\"sandboxId\":\"a b\"}",
	    "sandboxId");
	expect_invalid(fx, "{\"code\":\"x\",\"sandboxId\":[]}", "sandboxId");
}

static void
test_execute_context(void **state)
{
	struct fixture *fx = *state;

	static const char *const any[] = {
		"{\"a\":[1,2]}", "[{\"age\":45},{\"age\":52}]", "[]",
		"\"{}\"", "0", "-2.5", "true", "false",
	};
	char body[128];
	size_t i;

	/* Any JSON value is a context; null is "none", as for all fields. */
	for (i = 0; i < sizeof(any) / sizeof(any[0]); i++) {
		snprintf(body, sizeof(body), "{\"code\":\"x\",\"context\":%s}",
		    any[i]);
		expect_valid(fx, body);
		assert_non_null(fx->er.context);
	}
	expect_valid(fx, "{\"code\":\"x\",\"context\":null}");
	assert_null(fx->er.context);
}

static void
test_execute_env_vars(void **state)
{
	struct fixture *fx = *state;

	expect_valid(fx, "{\"code\":\"x\",\"envVars\":{\"A\":\"x\"}}");
	assert_non_null(fx->er.env_vars);
	expect_valid(fx, "{\"code\":\"x\",\"envVars\":{\"_a1\":\"\"}}");
	expect_invalid(fx, "{\"code\":\"x\",\"envVars\":{\"1A\":\"x\"}}",
	    "envVars");
	expect_invalid(fx, "{\"code\":\"x\",\"envVars\":{\"A\":1}}",
	    "envVars");
	expect_invalid(fx, "{\"code\":\"x\",\"envVars\":{\"A-B\":\"x\"}}",
	    "envVars");
	expect_invalid(fx, "{\"code\":\"x\",\"envVars\":{\"\":\"x\"}}",
	    "envVars");
	expect_invalid(fx, "{\"code\":\"x\",\"envVars\":{\"A\":\"a\\u0000b\"}}",
	    "envVars");
	expect_invalid(fx, "{\"code\":\"x\",\"envVars\":[\"A\"]}", "envVars");
}

static void
test_execute_packages(void **state)
{
	struct fixture *fx = *state;

	expect_valid(fx, "{\"code\":\"x\",\"packages\":[\"numpy\"]}");
	assert_non_null(fx->er.packages);
	expect_valid(fx, "{\"code\":\"x\",\"packages\":"
	    "[\"scikit-learn\",\"a.b_c\"]}");
	expect_valid(fx, "{\"code\":\"x\",\"packages\":[]}");
	expect_valid(fx, "{\"code\":\"x\",\"packages\":"
	    "[\"@scope/name\",\"lodash/fp\"]}");
	expect_invalid(fx, "{\"code\":\"x\",\"packages\":[1]}", "packages[0]");
	expect_invalid(fx, "{\"code\":\"x\",\"packages\":[\"a\",\"b@c\"]}",
	    "packages[1]");
	expect_invalid(fx, "{\"code\":\"x\",\"packages\":[\"/a\"]}",
	    "packages[0]");
	expect_invalid(fx, "{\"code\":\"x\",\"packages\":\"numpy\"}",
	    "packages");
	expect_invalid(fx, "{\"code\":\"x\",\"packages\":[\"-x\"]}",
	    "packages[0]");
	expect_invalid(fx, "{\"code\":\"x\",\"packages\":[\"\"]}",
	    "packages[0]");
	expect_invalid(fx, "{\"code\":\"x\",\"packages\":[\"a b\"]}",
	    "packages[0]");
	expect_invalid(fx, "{\"code\":\"x\",\"packages\":[\"numpy\",null]}",
	    "packages[1]");
}

static void
test_execute_null_optionals(void **state)
{
	struct fixture *fx = *state;

	expect_valid(fx, "{\"code\":\"x\",\"language\":null,"
	    "\"projectId\":null,\"sessionId\":null,\"sandboxId\":null,"
	    "\"context\":null,\"timeout\":null,\"envVars\":null,"
	    "\"packages\":null}");
	assert_string_equal(fx->er.language, "python");
	assert_int_equal(fx->er.timeout_s, 30);
	assert_null(fx->er.session_id);
	assert_null(fx->er.sandbox_id);
	assert_null(fx->er.context);
	assert_null(fx->er.env_vars);
	assert_null(fx->er.packages);
}

static void
test_execute_all_fields(void **state)
{
	struct fixture *fx = *state;

	expect_valid(fx, "{\"code\":\"console.log(1)\",\"language\":\"js\","
	    "\"projectId\":\"p1\",\"sessionId\":\"s1\",\"sandboxId\":\"b1\","
	    "\"context\":{},\"timeout\":60,\"envVars\":{\"HOME\":\"/tmp\"},"
	    "\"packages\":[\"lodash\"]}");
	assert_string_equal(fx->er.code, "console.log(1)");
	assert_string_equal(fx->er.language, "javascript");
	assert_string_equal(fx->er.session_id, "s1");
	assert_string_equal(fx->er.sandbox_id, "b1");
	assert_int_equal(fx->er.timeout_s, 60);
	assert_non_null(fx->er.context);
	assert_non_null(fx->er.env_vars);
	assert_non_null(fx->er.packages);
}

#define REQ_TEST(f)	cmocka_unit_test_setup_teardown(f, req_setup, \
			    req_teardown)
#define ARENA_TEST(f)	cmocka_unit_test_setup_teardown(f, arena_setup, \
			    arena_teardown)


/* --- ndjson: the provider's stream, in arbitrary pieces ------------------ */

struct lines {
	char	 got[16][256];
	int	 n;
	int	 too_long;
	int	 stop_after;	/* 0: never */
};

static int
collect_line(void *arg, const char *line, size_t len)
{
	struct lines *l = arg;

	if (line == NULL) {
		l->too_long++;
		return 0;
	}
	if (l->n < 16 && len < 256) {
		memcpy(l->got[l->n], line, len);
		l->got[l->n][len] = '\0';
	}
	l->n++;
	return l->stop_after && l->n >= l->stop_after ? -1 : 0;
}

static void
test_ndjson_split_anywhere(void **state)
{
	static const char text[] = "{\"a\":1}\n{\"b\":2}\r\n\n{\"c\":3}";
	size_t cut;

	(void)state;
	/* Every way of cutting the text in two gives the same lines. */
	for (cut = 0; cut <= sizeof(text) - 1; cut++) {
		struct lines l = { .n = 0 };
		struct ndjson nd;

		ndjson_init(&nd, 1024, collect_line, &l);
		assert_int_equal(ndjson_feed(&nd, text, cut), 0);
		assert_int_equal(ndjson_feed(&nd, text + cut,
		    sizeof(text) - 1 - cut), 0);
		assert_int_equal(ndjson_finish(&nd), 0);
		ndjson_release(&nd);
		assert_int_equal(l.n, 3);
		assert_string_equal(l.got[0], "{\"a\":1}");
		assert_string_equal(l.got[1], "{\"b\":2}");	/* \r dropped */
		assert_string_equal(l.got[2], "{\"c\":3}");	/* no final \n */
	}
}

static void
test_ndjson_byte_by_byte(void **state)
{
	static const char text[] = "x\ny\n";
	struct lines l = { .n = 0 };
	struct ndjson nd;
	size_t i;

	(void)state;
	ndjson_init(&nd, 16, collect_line, &l);
	for (i = 0; i < sizeof(text) - 1; i++)
		assert_int_equal(ndjson_feed(&nd, text + i, 1), 0);
	ndjson_release(&nd);
	assert_int_equal(l.n, 2);
	assert_string_equal(l.got[1], "y");
}

static void
test_ndjson_huge_line_dropped_whole(void **state)
{
	struct lines l = { .n = 0 };
	struct ndjson nd;
	char big[100];

	(void)state;
	memset(big, 'z', sizeof(big));
	ndjson_init(&nd, 32, collect_line, &l);
	assert_int_equal(ndjson_feed(&nd, "ok\n", 3), 0);
	assert_int_equal(ndjson_feed(&nd, big, sizeof(big)), 0);
	assert_int_equal(ndjson_feed(&nd, big, sizeof(big)), 0);
	assert_int_equal(ndjson_feed(&nd, "tail\nafter\n", 11), 0);
	ndjson_release(&nd);
	assert_int_equal(l.too_long, 1);	/* reported once */
	assert_int_equal(l.n, 2);		/* "tail" went with it */
	assert_string_equal(l.got[0], "ok");
	assert_string_equal(l.got[1], "after");
}

static void
test_ndjson_callback_stops(void **state)
{
	struct lines l = { .n = 0, .stop_after = 1 };
	struct ndjson nd;

	(void)state;
	ndjson_init(&nd, 64, collect_line, &l);
	assert_int_equal(ndjson_feed(&nd, "a\nb\nc\n", 6), -1);
	ndjson_release(&nd);
	assert_int_equal(l.n, 1);
}

/* --- outcome: events folded into the API's result ------------------------ */

static void
feed(struct outcome *o, const char *json)
{
	struct json_object *ev = json_tokener_parse(json), *data = NULL;
	const char *name = NULL;

	assert_non_null(ev);
	outcome_event(o, ev, &name, &data);
	json_object_put(data);
	json_object_put(ev);
}

static void
test_outcome_fold(void **state)
{
	struct json_object *r, *v;
	struct outcome o;

	(void)state;
	outcome_init(&o, 1024);
	feed(&o, "{\"type\":\"number_of_executions\",\"execution_count\":3}");
	feed(&o, "{\"type\":\"stdout\",\"text\":\"he\"}");
	feed(&o, "{\"type\":\"stderr\",\"text\":\"warn\\n\"}");
	feed(&o, "{\"type\":\"stdout\",\"text\":\"llo\\nwor\"}");
	feed(&o, "{\"type\":\"result\",\"is_main_result\":true,\"text\":\"2\","
	    "\"html\":\"<b>2</b>\",\"extra\":{}}");
	feed(&o, "{\"type\":\"error\",\"name\":\"E\",\"value\":\"v\","
	    "\"traceback\":\"tb\"}");
	feed(&o, "{\"type\":\"error\",\"name\":\"Second\",\"value\":\"\"}");
	feed(&o, "{\"type\":\"mystery\"}");
	r = outcome_result(&o, 12);
	assert_string_equal(json_object_get_string(json_object_object_get(r,
	    "output")), "hello\nwor");
	assert_string_equal(json_object_get_string(json_object_object_get(r,
	    "stderr")), "warn\n");
	/* Lines of both streams, in the order they were completed. */
	assert_string_equal(json_object_to_json_string_ext(
	    json_object_object_get(r, "logs"), JSON_C_TO_STRING_PLAIN),
	    "[\"warn\",\"hello\",\"wor\"]");
	v = json_object_array_get_idx(json_object_object_get(r, "results"), 0);
	assert_true(json_object_get_boolean(json_object_object_get(v,
	    "isMainResult")));
	assert_string_equal(json_object_get_string(json_object_object_get(v,
	    "html")), "<b>2</b>");
	v = json_object_object_get(r, "error");
	assert_string_equal(json_object_get_string(json_object_object_get(v,
	    "name")), "E");		/* the first error is the one */
	assert_false(json_object_get_boolean(json_object_object_get(r,
	    "success")));
	assert_int_equal(json_object_get_int(json_object_object_get(r,
	    "executionCount")), 3);
	assert_int_equal(json_object_get_int(json_object_object_get(r,
	    "executionTime")), 12);
	json_object_put(r);
	outcome_release(&o);
}

static void
test_outcome_cap_cuts_on_utf8_boundary(void **state)
{
	struct json_object *r;
	struct outcome o;
	const char *out;

	(void)state;
	outcome_init(&o, 5);
	/* "aé" is 3 bytes; a second one would end mid-character at 5. */
	feed(&o, "{\"type\":\"stdout\",\"text\":\"a\\u00e9a\\u00e9\"}");
	r = outcome_result(&o, 0);
	out = json_object_get_string(json_object_object_get(r, "output"));
	assert_string_equal(out, "a\xc3\xa9" "a");
	assert_true(json_object_get_boolean(json_object_object_get(r,
	    "truncated")));
	assert_int_equal(o.seen[0], 6);	/* what the code wrote */
	json_object_put(r);
	outcome_release(&o);
}

static const char *
member_json(struct json_object *o, const char *path0, const char *path1)
{
	struct json_object *v = json_object_object_get(o, path0);

	if (path1)
		v = json_object_object_get(v, path1);
	return json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN);
}

static void
test_outcome_cut_is_one_prefix_and_one_record(void **state)
{
	struct json_object *r;
	struct outcome o;

	(void)state;
	outcome_init(&o, 8);
	/* "€" is 3 bytes: 8 bytes end mid-character, so 6 are kept. */
	feed(&o, "{\"type\":\"stdout\",\"text\":\"\\u20ac\\u20ac\\u20ac\"}");
	/* After the cut nothing more is kept, even what would fit. */
	feed(&o, "{\"type\":\"stdout\",\"text\":\"a\\n\"}");
	feed(&o, "{\"type\":\"stderr\",\"text\":\"ok\\n\"}");
	r = outcome_result(&o, 0);
	assert_string_equal(json_object_get_string(json_object_object_get(r,
	    "output")), "\xe2\x82\xac\xe2\x82\xac");
	assert_string_equal(json_object_get_string(json_object_object_get(r,
	    "stderr")), "ok\n");
	assert_true(json_object_get_boolean(json_object_object_get(r,
	    "truncated")));
	assert_string_equal(member_json(r, "truncation", "stdout"),
	    "{\"keptBytes\":6,\"droppedBytes\":5}");
	assert_null(json_object_object_get(json_object_object_get(r,
	    "truncation"), "stderr"));
	assert_int_equal(o.seen[0], 11);
	json_object_put(r);
	outcome_release(&o);
}

static void
test_outcome_nothing_cut_has_no_record(void **state)
{
	struct json_object *r;
	struct outcome o;

	(void)state;
	outcome_init(&o, 64);
	feed(&o, "{\"type\":\"stdout\",\"text\":\"fine\\n\"}");
	r = outcome_result(&o, 0);
	assert_false(json_object_get_boolean(json_object_object_get(r,
	    "truncated")));
	assert_true(json_object_object_get_ex(r, "truncation", NULL));
	assert_null(json_object_object_get(r, "truncation"));
	json_object_put(r);
	outcome_release(&o);
}

static void
test_outcome_provider_drops_are_counted(void **state)
{
	struct json_object *r;
	struct outcome o;

	(void)state;
	outcome_init(&o, 64);
	feed(&o, "{\"type\":\"stdout\",\"text\":\"xxxx\"}");
	feed(&o, "{\"type\":\"output_truncated\",\"stdout\":{\"kept_bytes\":4,"
	    "\"dropped_bytes\":96},\"stderr\":{\"kept_bytes\":0,"
	    "\"dropped_bytes\":0}}");
	r = outcome_result(&o, 0);
	assert_string_equal(member_json(r, "truncation", "stdout"),
	    "{\"keptBytes\":4,\"droppedBytes\":96}");
	assert_int_equal(o.seen[0], 100);
	assert_true(json_object_get_boolean(json_object_object_get(r,
	    "truncated")));
	json_object_put(r);
	outcome_release(&o);
}

static void
test_outcome_logs_shrink_once_output_is_cut(void **state)
{
	struct json_object *r, *logs;
	struct outcome o;
	char ev[256];

	(void)state;
	/* cap 64: the logs keep 64 / OUTCOME_LOGS_SHARE = 4 bytes. */
	outcome_init(&o, 64);
	feed(&o, "{\"type\":\"stdout\",\"text\":\"ab\\ncdef\\n\"}");
	snprintf(ev, sizeof(ev), "{\"type\":\"stdout\",\"text\":\"%0100d\"}", 0);
	feed(&o, ev);
	r = outcome_result(&o, 0);
	logs = json_object_object_get(r, "logs");
	assert_string_equal(json_object_to_json_string_ext(logs,
	    JSON_C_TO_STRING_PLAIN), "[\"ab\",\"cd\"]");
	/* 2 + 4 + 56 bytes of lines: the 64 kept less their two newlines. */
	assert_string_equal(member_json(r, "truncation", "logs"),
	    "{\"keptBytes\":4,\"droppedBytes\":58}");
	json_object_put(r);
	outcome_release(&o);
}

static void
test_outcome_results_are_capped(void **state)
{
	struct json_object *r, *res;
	struct outcome o;
	char ev[512];

	(void)state;
	/* cap 16: a text field keeps 16 bytes; all results 128. */
	outcome_init(&o, 16);
	snprintf(ev, sizeof(ev), "{\"type\":\"result\",\"is_main_result\":true,"
	    "\"text\":\"%040d\"}", 0);
	feed(&o, ev);
	snprintf(ev, sizeof(ev), "{\"type\":\"result\",\"png\":\"%0200d\","
	    "\"text\":\"<Figure>\"}", 0);
	feed(&o, ev);
	r = outcome_result(&o, 0);
	res = json_object_object_get(r, "results");
	assert_int_equal(json_object_get_string_len(json_object_object_get(
	    json_object_array_get_idx(res, 0), "text")), 16);
	/* An image cut short is no image: left out whole. */
	assert_null(json_object_object_get(json_object_array_get_idx(res, 1),
	    "png"));
	assert_string_equal(json_object_get_string(json_object_object_get(
	    json_object_array_get_idx(res, 1), "text")), "<Figure>");
	assert_string_equal(member_json(r, "truncation", "results"),
	    "[{\"keptBytes\":16,\"droppedBytes\":24,\"index\":0,"
	    "\"field\":\"text\"},{\"keptBytes\":0,\"droppedBytes\":200,"
	    "\"index\":1,\"field\":\"png\"}]");
	assert_true(json_object_get_boolean(json_object_object_get(r,
	    "truncated")));
	json_object_put(r);
	outcome_release(&o);
}

static void
test_outcome_timeout(void **state)
{
	struct json_object *r, *e;
	struct outcome o;

	(void)state;
	outcome_init(&o, 64);
	feed(&o, "{\"type\":\"stdout\",\"text\":\"partial\\n\"}");
	outcome_timeout(&o, 30);
	r = outcome_result(&o, 30000);
	e = json_object_object_get(r, "error");
	assert_string_equal(json_object_get_string(json_object_object_get(e,
	    "name")), "TimeoutError");
	assert_string_equal(json_object_get_string(json_object_object_get(e,
	    "value")), "execution timed out after 30 s");
	assert_string_equal(json_object_get_string(json_object_object_get(r,
	    "output")), "partial\n");
	json_object_put(r);
	outcome_release(&o);
}

/* --- admission: the queue at a project's cap --------------------------- */

static void
test_admission_bounded(void **state)
{
	struct admission *a = admission_new(2);
	struct admission_ticket t1, t2, t3;

	(void)state;
	assert_int_equal(admission_enter(a, &t1, "p"), 0);
	assert_int_equal(admission_enter(a, &t2, "q"), 0);
	assert_int_equal(admission_enter(a, &t3, "p"), -1);	/* full */
	assert_int_equal(admission_waiting(a), 2);
	admission_leave(a, &t1);
	assert_int_equal(admission_enter(a, &t3, "p"), 0);	/* room again */
	admission_leave(a, &t2);
	admission_leave(a, &t3);
	assert_int_equal(admission_waiting(a), 0);
	admission_free(a);
}

static void
test_admission_first_of_project_goes(void **state)
{
	struct admission *a = admission_new(8);
	struct admission_ticket p1, q1, p2;
	int64_t soon = ts_mono_ms() + 50;

	(void)state;
	admission_enter(a, &p1, "p");
	admission_enter(a, &q1, "q");
	admission_enter(a, &p2, "p");
	/* Another project's waiter is no obstacle; an earlier one of ours is. */
	assert_int_equal(admission_wait(a, &p1, soon, 1), 0);
	assert_int_equal(admission_wait(a, &q1, soon, 1), 0);
	assert_int_equal(admission_wait(a, &p2, soon, 1), -1);
	admission_leave(a, &p1);
	assert_int_equal(admission_wait(a, &p2, ts_mono_ms() + 50, 1), 0);
	admission_leave(a, &q1);
	admission_leave(a, &p2);
	admission_free(a);
}

static void
test_admission_retry_waits_a_poll(void **state)
{
	struct admission *a = admission_new(1);
	struct admission_ticket t;
	int64_t t0;

	(void)state;
	admission_enter(a, &t, "p");
	t0 = ts_mono_ms();
	assert_int_equal(admission_wait(a, &t, t0 + 10000, 0), 0);
	/* Nothing was given back: it looked again after one poll period. */
	assert_true(ts_mono_ms() - t0 >= ADMISSION_POLL_MS - 1);
	assert_int_equal(admission_wait(a, &t, ts_mono_ms() - 1, 0), -1);
	admission_leave(a, &t);
	admission_free(a);
}

static void
test_admission_kick_of_its_project_wakes(void **state)
{
	struct admission *a = admission_new(4);
	struct admission_ticket p1, q1;

	(void)state;
	admission_enter(a, &p1, "p");
	admission_enter(a, &q1, "q");
	/* A release kicks the waiters of its own project only... */
	admission_signal(a, "q");
	assert_int_equal(p1.kicked, 0);
	assert_int_equal(q1.kicked, 1);
	admission_signal(a, "p");
	assert_int_equal(p1.kicked, 1);
	/* ...and a kicked waiter's next turn consumes the kick. */
	assert_int_equal(admission_wait(a, &p1, ts_mono_ms() + 60000, 0), 0);
	assert_int_equal(p1.kicked, 0);
	admission_leave(a, &p1);
	admission_leave(a, &q1);
	admission_free(a);
}

static void
test_hostmem_count(void **state)
{
	long total, avail;

	(void)state;
	assert_int_equal(hostmem_count(24576, 3, 4, 512, 4, 10000), 36);
	assert_int_equal(hostmem_count(1024, 3, 4, 512, 4, 10000), 4);
	assert_int_equal(hostmem_count(1 << 30, 3, 4, 256, 4, 900), 900);
	assert_int_equal(hostmem_count(0, 3, 4, 512, 4, 10000), 4);
	assert_int_equal(hostmem_read(&total, &avail), 0);
	assert_true(total > 0 && avail > 0 && avail <= total);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rl_burst_then_refused),
		cmocka_unit_test(test_rl_last_admitted_reset),
		cmocka_unit_test(test_rl_refused_keeps_tat),
		cmocka_unit_test(test_rl_admitted_after_T),
		cmocka_unit_test(test_rl_full_window_refills),
		cmocka_unit_test(test_rl_stale_tat_is_empty),
		cmocka_unit_test(test_rl_limit_one),
		cmocka_unit_test(test_rl_limit_not_dividing_window),
		cmocka_unit_test(test_rl_reset_zero_while_remaining),
		cmocka_unit_test(test_rl_retry_after_one_per_hour),
		cmocka_unit_test(test_router_exact_paths),
		cmocka_unit_test(test_ndjson_split_anywhere),
		cmocka_unit_test(test_ndjson_byte_by_byte),
		cmocka_unit_test(test_ndjson_huge_line_dropped_whole),
		cmocka_unit_test(test_ndjson_callback_stops),
		cmocka_unit_test(test_outcome_fold),
		cmocka_unit_test(test_outcome_cap_cuts_on_utf8_boundary),
		cmocka_unit_test(test_outcome_timeout),
		cmocka_unit_test(test_outcome_cut_is_one_prefix_and_one_record),
		cmocka_unit_test(test_outcome_nothing_cut_has_no_record),
		cmocka_unit_test(test_outcome_provider_drops_are_counted),
		cmocka_unit_test(test_outcome_logs_shrink_once_output_is_cut),
		cmocka_unit_test(test_outcome_results_are_capped),
		cmocka_unit_test(test_router_wrong_method),
		cmocka_unit_test(test_router_unknown_path),
		cmocka_unit_test(test_router_trailing_slash),
		cmocka_unit_test(test_router_case_matters),
		cmocka_unit_test(test_router_small_allow_buffer),
		ARENA_TEST(test_query_empty),
		ARENA_TEST(test_query_pairs),
		ARENA_TEST(test_query_decoding),
		ARENA_TEST(test_query_bad_encoding),
		ARENA_TEST(test_query_no_equals),
		ARENA_TEST(test_query_empty_pairs_skipped),
		ARENA_TEST(test_query_too_many),
		cmocka_unit_test(test_auth_bearer),
		cmocka_unit_test(test_auth_bearer_case),
		cmocka_unit_test(test_auth_bearer_blanks),
		cmocka_unit_test(test_auth_other_scheme),
		cmocka_unit_test(test_auth_bearer_alone),
		cmocka_unit_test(test_auth_x_api_key),
		cmocka_unit_test(test_auth_authorization_wins),
		cmocka_unit_test(test_config_defaults),
		cmocka_unit_test(test_config_workers),
		cmocka_unit_test(test_config_max_body),
		cmocka_unit_test(test_config_max_code),
		cmocka_unit_test(test_config_drain),
		cmocka_unit_test(test_config_busy_ms),
		cmocka_unit_test(test_config_verbose),
		cmocka_unit_test(test_config_socket_mode_octal),
		cmocka_unit_test(test_config_runtimes_and_packages),
		cmocka_unit_test(test_config_strings),
		cmocka_unit_test(test_config_code_over_body),
		cmocka_unit_test(test_admission_bounded),
		cmocka_unit_test(test_admission_first_of_project_goes),
		cmocka_unit_test(test_admission_retry_waits_a_poll),
		cmocka_unit_test(test_admission_kick_of_its_project_wakes),
		cmocka_unit_test(test_hostmem_count),
		REQ_TEST(test_reply_error_envelope),
		REQ_TEST(test_execute_minimal),
		REQ_TEST(test_execute_language),
		REQ_TEST(test_execute_bad_language),
		REQ_TEST(test_execute_unknown_field),
		REQ_TEST(test_execute_code_missing),
		REQ_TEST(test_execute_code_empty),
		REQ_TEST(test_execute_code_not_string),
		REQ_TEST(test_execute_code_too_large),
		REQ_TEST(test_execute_timeout),
		REQ_TEST(test_execute_project),
		REQ_TEST(test_execute_session_id),
		REQ_TEST(test_execute_sandbox_id),
		REQ_TEST(test_execute_context),
		REQ_TEST(test_execute_env_vars),
		REQ_TEST(test_execute_packages),
		REQ_TEST(test_execute_null_optionals),
		REQ_TEST(test_execute_all_fields),
	};

	return cmocka_run_group_tests_name("gateway", tests, NULL, NULL);
}
