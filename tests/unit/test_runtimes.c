/*
 * Unit tests for src/gateway/runtimes.c: reading what the probes and the
 * package checks report from a sandbox (a report is the sandbox's word,
 * so a malformed one is refused, never trusted), and which languages
 * have packages at all.  TAP through cmocka.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <json-c/json.h>
#include <string.h>

#include "gateway/runtimes.h"

static struct json_object *
parse(const char *s)
{
	struct json_object *o = json_tokener_parse(s);

	assert_non_null(o);
	return o;
}

static const char *
get_string(struct json_object *o, const char *name)
{
	struct json_object *v;

	if (!json_object_object_get_ex(o, name, &v) ||
	    !json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string(v);
}

static void
test_check_code_by_language(void **state)
{
	(void)state;
	assert_non_null(runtimes_check_code("python"));
	assert_non_null(runtimes_check_code("javascript"));
	assert_non_null(runtimes_check_code("typescript"));
	assert_null(runtimes_check_code("bash"));
	assert_null(runtimes_check_code("ruby"));
	/* The check reads its names from the environment, never the code. */
	assert_non_null(strstr(runtimes_check_code("python"),
	    RUNTIMES_NAMES_ENV));
	assert_non_null(strstr(runtimes_check_code("javascript"),
	    RUNTIMES_NAMES_ENV));
	/* Only Python's packages can be installed (pip, E2B cloud). */
	assert_non_null(strstr(runtimes_install_code("python"),
	    RUNTIMES_NAMES_ENV));
	assert_null(runtimes_install_code("javascript"));
	assert_null(runtimes_install_code("bash"));
}

static void
test_report_line(void **state)
{
	struct json_object *o;

	(void)state;
	o = runtimes_report("{\"a\":1}\nlater output");
	assert_non_null(o);
	assert_true(json_object_is_type(o, json_type_object));
	json_object_put(o);
	assert_null(runtimes_report(""));
	assert_null(runtimes_report("\n{\"a\":1}"));
	assert_null(runtimes_report("[1]"));
	assert_null(runtimes_report("{\"a\":1} trailing"));
	assert_null(runtimes_report("{\"a\":"));
	assert_null(runtimes_report("{\"a\":\n1}"));	/* one line only */
}

static void
test_check_all_found(void **state)
{
	struct json_object *rep, *found, *p;
	char why[64];
	long missing;

	(void)state;
	rep = parse("{\"found\":[{\"name\":\"requests\",\"modules\":"
	    "[\"requests\"],\"version\":\"2.28.1\"},{\"name\":\"fs\","
	    "\"version\":null}],\"missing\":[]}");
	assert_int_equal(runtimes_check_read(rep, 2, &found, &missing, why,
	    sizeof(why)), 0);
	assert_int_equal(missing, -1);
	assert_int_equal(json_object_array_length(found), 2);
	p = json_object_array_get_idx(found, 0);
	assert_string_equal(get_string(p, "name"), "requests");
	assert_string_equal(get_string(p, "version"), "2.28.1");
	/* Only name and version are passed on. */
	assert_int_equal(json_object_object_length(p), 2);
	p = json_object_array_get_idx(found, 1);
	assert_true(json_object_object_get_ex(p, "version", NULL));
	assert_null(json_object_object_get(p, "version"));
	json_object_put(found);
	json_object_put(rep);
}

static void
test_check_first_missing(void **state)
{
	struct json_object *rep, *found;
	char why[64];
	long missing;

	(void)state;
	rep = parse("{\"found\":[{\"name\":\"numpy\",\"version\":\"1\"}],"
	    "\"missing\":[{\"index\":2,\"name\":\"b\",\"error\":\"E2\"},"
	    "{\"index\":1,\"name\":\"a\",\"error\":\"ModuleNotFoundError: "
	    "no module named 'a' and a long tail\"}]}");
	assert_int_equal(runtimes_check_read(rep, 3, &found, &missing, why,
	    sizeof(why)), 0);
	assert_int_equal(missing, 1);
	assert_int_equal(strncmp(why, "ModuleNotFoundError", 19), 0);
	assert_true(strlen(why) < sizeof(why));
	json_object_put(found);
	json_object_put(rep);
}

/* Each is refused: it is not the report of a check of n names. */
static void
test_check_malformed(void **state)
{
	static const char *const bad[] = {
		"{}",
		"{\"found\":[],\"missing\":{}}",
		"{\"found\":[],\"missing\":[]}",			/* 0 of 2 */
		"{\"found\":[{\"name\":\"a\"}],\"missing\":[]}",	/* 1 of 2 */
		"{\"found\":[{\"name\":\"a\"},{\"name\":\"b\"},{\"name\":"
		    "\"c\"}],\"missing\":[]}",
		"{\"found\":[{\"name\":\"a\"},{\"nam\":\"b\"}],\"missing\":[]}",
		"{\"found\":[{\"name\":\"a\"},7],\"missing\":[]}",
		"{\"found\":[{\"name\":\"a\"}],\"missing\":[{\"index\":2}]}",
		"{\"found\":[{\"name\":\"a\"}],\"missing\":[{\"index\":-1}]}",
		"{\"found\":[{\"name\":\"a\"}],\"missing\":[{\"index\":\"1\"}]}",
		"{\"found\":[{\"name\":\"a\"}],\"missing\":[{}]}",
		"[]",
	};
	struct json_object *rep, *found;
	char why[64];
	long missing;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		rep = parse(bad[i]);
		if (runtimes_check_read(rep, 2, &found, &missing, why,
		    sizeof(why)) != -1)
			fail_msg("accepted: %s", bad[i]);
		assert_null(found);
		json_object_put(rep);
	}
}

static void
test_entry_python(void **state)
{
	struct json_object *rep, *e, *pkgs, *p, *v;

	(void)state;
	rep = parse("{\"version\":\"3.11.2\",\"runtime\":\"cpython\","
	    "\"packages\":[{\"name\":\"numpy\",\"version\":\"1.24.2\","
	    "\"modules\":[\"numpy\",7]},{\"version\":\"x\"},{\"name\":"
	    "\"scikit-learn\",\"version\":\"1.2.1\",\"modules\":[\"sklearn\"],"
	    "\"extra\":1}]}");
	e = runtimes_entry("python", rep);
	assert_non_null(e);
	assert_string_equal(get_string(e, "language"), "python");
	assert_string_equal(get_string(e, "version"), "3.11.2");
	assert_string_equal(get_string(e, "runtime"), "cpython");
	assert_true(json_object_object_get_ex(e, "aliases", &v));
	assert_true(json_object_is_type(v, json_type_array));
	assert_true(json_object_object_get_ex(e, "packages", &pkgs));
	/* The nameless one is dropped, unknown members too. */
	assert_int_equal(json_object_array_length(pkgs), 2);
	p = json_object_array_get_idx(pkgs, 1);
	assert_string_equal(get_string(p, "name"), "scikit-learn");
	assert_null(json_object_object_get(p, "extra"));
	p = json_object_array_get_idx(pkgs, 0);
	assert_true(json_object_object_get_ex(p, "modules", &v));
	assert_int_equal(json_object_array_length(v), 1);
	json_object_put(e);
	json_object_put(rep);
}

static void
test_entry_node_languages(void **state)
{
	struct json_object *rep, *e, *v;

	(void)state;
	rep = parse("{\"version\":\"20.1.0\",\"runtime\":\"node\","
	    "\"typescript\":\"5.4.5\",\"packages\":[{\"name\":\"@s/x\","
	    "\"version\":\"1.0.0\",\"modules\":[\"x\"]}]}");
	e = runtimes_entry("javascript", rep);
	assert_string_equal(get_string(e, "version"), "20.1.0");
	assert_true(json_object_object_get_ex(e, "aliases", &v));
	assert_string_equal(json_object_get_string(
	    json_object_array_get_idx(v, 0)), "js");
	assert_true(json_object_object_get_ex(e, "packages", &v));
	/* Node packages have no module list. */
	assert_null(json_object_object_get(json_object_array_get_idx(v, 0),
	    "modules"));
	json_object_put(e);
	/* TypeScript: the compiler's version; node's beside it. */
	e = runtimes_entry("typescript", rep);
	assert_string_equal(get_string(e, "version"), "5.4.5");
	assert_string_equal(get_string(e, "runtimeVersion"), "20.1.0");
	json_object_put(e);
	json_object_put(rep);
}

static void
test_entry_malformed(void **state)
{
	struct json_object *rep;

	(void)state;
	rep = parse("{\"version\":\"5.2\"}");
	assert_null(runtimes_entry("bash", rep));	/* no packages */
	json_object_put(rep);
	rep = parse("{\"version\":5,\"packages\":[]}");
	assert_null(runtimes_entry("cobol", rep));
	{
		struct json_object *e = runtimes_entry("bash", rep);

		/* A version that is not a string is unknown, not a lie. */
		assert_non_null(e);
		assert_true(json_object_object_get_ex(e, "version", NULL));
		assert_null(json_object_object_get(e, "version"));
		json_object_put(e);
	}
	json_object_put(rep);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_check_code_by_language),
		cmocka_unit_test(test_report_line),
		cmocka_unit_test(test_check_all_found),
		cmocka_unit_test(test_check_first_missing),
		cmocka_unit_test(test_check_malformed),
		cmocka_unit_test(test_entry_python),
		cmocka_unit_test(test_entry_node_languages),
		cmocka_unit_test(test_entry_malformed),
	};

	return cmocka_run_group_tests_name("runtimes", tests, NULL, NULL);
}
