/*
 * Fuzzes the JSON body path as far as it is reachable from outside
 * router.c (its body checks are static):
 *
 *  - utf8_valid, differentially: against a decoder written here from
 *    RFC 3629, section 3 (decode the code point, then refuse overlong
 *    forms, surrogates and anything past U+10FFFF);
 *  - execute_parse, on the body parsed as router.c's parse_object does
 *    (json-c, depth 32, strict, UTF-8 checked): either a valid exec_req,
 *    or a 400/403/413 with the error envelope, valid UTF-8 JSON.
 */
#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>

#include "common/arena.h"
#include "common/buf.h"
#include "common/ids.h"
#include "common/utf8.h"
#include "gateway/config.h"
#include "gateway/execute.h"
#include "gateway/request.h"
#include "gateway/runtimes.h"
#include "fuzz.h"

#define BODY_MAX_DEPTH	32	/* router.c's JSON_MAX_DEPTH */

/* RFC 3629: a sequence's length from its lead byte c.  OUT: *bits. */
static size_t
ref_lead(uint8_t c, uint32_t *bits)
{
	if (c < 0x80) {
		*bits = c;
		return 1;
	}
	if ((c & 0xe0) == 0xc0) {
		*bits = c & 0x1f;
		return 2;
	}
	if ((c & 0xf0) == 0xe0) {
		*bits = c & 0x0f;
		return 3;
	}
	if ((c & 0xf8) == 0xf0) {
		*bits = c & 0x07;
		return 4;
	}
	return 0;	/* a continuation byte, or F8-FF */
}

/* RFC 3629: 1 if s[0..n) is UTF-8. */
static int
ref_utf8(const uint8_t *s, size_t n)
{
	static const uint32_t least[] = { 0, 0, 0x80, 0x800, 0x10000 };
	size_t i, k, len;
	uint32_t cp;

	for (i = 0; i < n; i += len) {
		if ((len = ref_lead(s[i], &cp)) == 0 || n - i < len)
			return 0;
		for (k = 1; k < len; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return 0;
			cp = cp << 6 | (s[i + k] & 0x3f);
		}
		if (len > 1 && (cp < least[len] || cp > 0x10ffff ||
		    (cp >= 0xd800 && cp <= 0xdfff)))
			return 0;
	}
	return 1;
}

/* The settings with every default, as the gateway starts with none. */
static const char *
no_env(const char *name)
{
	(void)name;
	return NULL;
}

static const struct config *
settings(void)
{
	static struct config cfg;
	static int loaded;
	char err[256];

	if (!loaded) {
		if (config_load(&cfg, no_env, err, sizeof(err)) == -1) {
			fprintf(stderr, "config_load: %s\n", err);
			abort();
		}
		loaded = 1;
	}
	return &cfg;
}

static void
put_json(void *p)
{
	json_object_put(p);
}

/* Parses as router.c's parse_object does.  A new object, or NULL. */
static struct json_object *
parse_body(const char *text, size_t len)
{
	struct json_tokener *tok;
	struct json_object *obj;
	size_t i, end;

	if (len > (size_t)__INT_MAX__ ||
	    (tok = json_tokener_new_ex(BODY_MAX_DEPTH)) == NULL)
		return NULL;
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT |
	    JSON_TOKENER_VALIDATE_UTF8);
	obj = json_tokener_parse_ex(tok, text, (int)len);
	if (json_tokener_get_error(tok) != json_tokener_success)
		obj = NULL;	/* never returned with an error */
	end = json_tokener_get_parse_end(tok);
	json_tokener_free(tok);
	for (i = end; obj != NULL && i < len; i++)
		if (strchr(" \t\r\n", text[i]) == NULL) {
			json_object_put(obj);
			return NULL;
		}
	if (obj != NULL && !json_object_is_type(obj, json_type_object)) {
		json_object_put(obj);
		return NULL;
	}
	return obj;
}

static int
is_string(struct json_object *o, const char *key, const char *want)
{
	struct json_object *v;

	return json_object_object_get_ex(o, key, &v) &&
	    json_object_is_type(v, json_type_string) &&
	    (want == NULL || strcmp(json_object_get_string(v), want) == 0);
}

/* A validated request: what execute.c's callers rely on. */
static void
check_valid(const struct request *req, const struct exec_req *er)
{
	const char *lang;

	FUZZ_CHECK(req->status == 0 && req->out.len == 0);
	FUZZ_CHECK(er->code != NULL && er->code_len >= 1);
	FUZZ_CHECK(strlen(er->code) == er->code_len);
	FUZZ_CHECK(er->code_len <= (size_t)req->cfg->max_code);
	FUZZ_CHECK(er->timeout_s >= 1 && er->timeout_s <= EXEC_TIMEOUT_MAX);
	/* A language's own name, never an alias ("js", "ts"). */
	FUZZ_CHECK(er->language != NULL && (lang = runtimes_language(
	    er->language, strlen(er->language))) != NULL &&
	    strcmp(lang, er->language) == 0);
	FUZZ_CHECK(er->session_id == NULL ||
	    ids_valid(er->session_id, strlen(er->session_id)));
	FUZZ_CHECK(er->sandbox_id == NULL ||
	    ids_valid(er->sandbox_id, strlen(er->sandbox_id)));
	/* Any JSON value; JSON null is none. */
	FUZZ_CHECK(er->context == json_object_object_get(req->body,
	    "context"));
	FUZZ_CHECK(er->env_vars == NULL ||
	    json_object_is_type(er->env_vars, json_type_object));
	FUZZ_CHECK(er->packages == NULL ||
	    (json_object_is_type(er->packages, json_type_array) &&
	    json_object_array_length(er->packages) <= EXEC_MAX_PACKAGES));
}

/* A refused request: the one error envelope, as valid UTF-8 JSON. */
static void
check_refused(const struct request *req)
{
	struct json_object *env, *err, *ok;

	FUZZ_CHECK(req->status == 400 || req->status == 403 ||
	    req->status == 413);
	FUZZ_CHECK(req->error_code != NULL);
	FUZZ_CHECK(req->out.len > 0 && strlen(req->out.data) == req->out.len);
	FUZZ_CHECK(utf8_valid(req->out.data, req->out.len));
	env = parse_body(req->out.data, req->out.len);
	FUZZ_CHECK(env != NULL);
	FUZZ_CHECK(json_object_object_get_ex(env, "success", &ok) &&
	    json_object_is_type(ok, json_type_boolean) &&
	    !json_object_get_boolean(ok));
	FUZZ_CHECK(is_string(env, "requestId", "req_FUZZ"));
	FUZZ_CHECK(json_object_object_get_ex(env, "error", &err) &&
	    json_object_is_type(err, json_type_object));
	FUZZ_CHECK(is_string(err, "code", req->error_code));
	FUZZ_CHECK(is_string(err, "message", NULL));
	json_object_put(env);
}

static void
fuzz_execute(const char *text, size_t len)
{
	struct request req;
	struct exec_req er;
	int rc;

	memset(&req, 0, sizeof(req));
	req.cfg = settings();
	if (len > (size_t)req.cfg->max_body)
		return;		/* 413 before any parsing */
	if ((req.body = parse_body(text, len)) == NULL)
		return;
	if ((req.arena = arena_new(1 << 20)) == NULL) {
		json_object_put(req.body);
		return;
	}
	/* As router.c: the body ends with the request's arena. */
	arena_cleanup(req.arena, put_json, req.body);
	buf_init(&req.out, 1 << 20);
	buf_init(&req.headers, 8192);
	snprintf(req.project_id, sizeof(req.project_id), "p1");
	snprintf(req.id, sizeof(req.id), "req_FUZZ");
	rc = execute_parse(&req, &er);
	FUZZ_CHECK(rc == 0 || rc == -1);
	if (rc == 0)
		check_valid(&req, &er);
	else
		check_refused(&req);
	buf_release(&req.out);
	buf_release(&req.headers);
	arena_free(req.arena);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text;
	int valid;

	/* The body as request_read_body hands it over: NUL-terminated. */
	if ((text = malloc(size + 1)) == NULL)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	valid = utf8_valid(text, size);
	FUZZ_CHECK(valid == ref_utf8(data, size));
	/* router.c's body_phase: UTF-8 and no NUL before the parser. */
	if (valid && memchr(text, '\0', size) == NULL)
		fuzz_execute(text, size);
	free(text);
	return 0;
}
