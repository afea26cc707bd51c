/*
 * Unit tests for src/sandboxd/route.c: the daemon's route tables (method +
 * path pattern), with "{name}" segments captured, 405's Allow list, and
 * paths that must match nothing.  TAP through cmocka.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "sandboxd/route.h"
#include "route_rows.h"

/* Each row's handler is told apart by its pattern; none is called here. */
static const struct route table[] = {
	ROUTE_TEST_ROWS,
	{ .method = "POST", .pattern = "/sandboxes/{id}/timeout" },
	{ .method = "POST", .pattern = "/contexts/{id}/files/{name}" },
};
#define N	(sizeof(table) / sizeof(table[0]))

static const struct route *
find(const char *method, const char *path, struct route_params *p,
    char *allow, size_t allowsz)
{
	return route_find(table, N, method, path, p, allow, allowsz);
}

static void
test_literal_paths(void **state)
{
	struct route_params p;
	char allow[64];
	const struct route *r;

	(void)state;
	r = find("GET", "/health", &p, allow, sizeof(allow));
	assert_ptr_equal(r, &table[0]);
	assert_int_equal(p.n, 0);
	assert_ptr_equal(find("POST", "/sandboxes", &p, allow, sizeof(allow)),
	    &table[1]);
	assert_ptr_equal(find("GET", "/sandboxes", &p, allow, sizeof(allow)),
	    &table[2]);
}

static void
test_segments_are_captured(void **state)
{
	struct route_params p;
	char allow[64];

	(void)state;
	assert_ptr_equal(find("DELETE", "/sandboxes/i0abc", &p, allow,
	    sizeof(allow)), &table[4]);
	assert_int_equal(p.n, 1);
	assert_string_equal(p.v[0], "i0abc");
	assert_ptr_equal(find("POST", "/sandboxes/i0abc-6532622b/timeout", &p,
	    allow, sizeof(allow)), &table[5]);
	assert_string_equal(p.v[0], "i0abc-6532622b");
	assert_ptr_equal(find("POST", "/contexts/c-1/files/a.csv", &p, allow,
	    sizeof(allow)), &table[6]);
	assert_int_equal(p.n, 2);
	assert_string_equal(p.v[0], "c-1");
	assert_string_equal(p.v[1], "a.csv");
}

static void
test_other_method_lists_the_allowed(void **state)
{
	struct route_params p;
	char allow[64];

	(void)state;
	assert_null(find("PUT", "/sandboxes", &p, allow, sizeof(allow)));
	assert_string_equal(allow, "POST, GET");
	assert_null(find("PATCH", "/sandboxes/x", &p, allow, sizeof(allow)));
	assert_string_equal(allow, "GET, DELETE");
	assert_null(find("post", "/health", &p, allow, sizeof(allow)));
	assert_string_equal(allow, "GET");		/* methods are case-sensitive */
}

static void
test_unknown_paths_match_nothing(void **state)
{
	static const char *const paths[] = {
		"", "/", "//", "/health/", "/healthz", "/sandboxes/",
		"/sandboxes//timeout", "/sandboxes/x/", "/sandboxes/x/timeout/",
		"/sandboxes/x/y", "/Sandboxes", "health", "/sandboxes/x/timeoutx",
		"/contexts/a/files", "/contexts/a/files/b/c",
	};
	struct route_params p;
	char allow[64];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
		assert_null(find("GET", paths[i], &p, allow, sizeof(allow)));
		assert_string_equal(allow, "");
	}
}

static void
test_overlong_segment_is_refused(void **state)
{
	char path[ROUTE_PARAM_MAX + 32], allow[64];
	struct route_params p;

	(void)state;
	memcpy(path, "/sandboxes/", 11);
	memset(path + 11, 'a', ROUTE_PARAM_MAX);
	path[11 + ROUTE_PARAM_MAX] = '\0';
	assert_null(find("GET", path, &p, allow, sizeof(allow)));
	path[11 + ROUTE_PARAM_MAX - 1] = '\0';		/* the longest kept */
	assert_ptr_equal(find("GET", path, &p, allow, sizeof(allow)),
	    &table[3]);
	assert_int_equal(strlen(p.v[0]), ROUTE_PARAM_MAX - 1);
}

static void
test_small_allow_buffer_stays_terminated(void **state)
{
	struct route_params p;
	char allow[6];

	(void)state;
	assert_null(find("PUT", "/sandboxes/x", &p, allow, sizeof(allow)));
	assert_true(strlen(allow) < sizeof(allow));
	assert_memory_equal(allow, "GET", 3);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_literal_paths),
		cmocka_unit_test(test_segments_are_captured),
		cmocka_unit_test(test_other_method_lists_the_allowed),
		cmocka_unit_test(test_unknown_paths_match_nothing),
		cmocka_unit_test(test_overlong_segment_is_refused),
		cmocka_unit_test(test_small_allow_buffer_stays_terminated),
	};

	return cmocka_run_group_tests_name("sandboxd_route", tests, NULL, NULL);
}
