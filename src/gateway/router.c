/*
 * The route table and the request phases, in nginx's manner:
 * route -> authenticate -> rate limit -> query -> body -> handler ->
 * respond -> audit.  Handlers only see requests that passed the table.
 */
#include <json-c/json.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "common/arena.h"
#include "common/log.h"
#include "common/timestamp.h"
#include "common/utf8.h"
#include "gateway/writer.h"
#include "gateway/auth.h"
#include "gateway/config.h"
#include "gateway/handlers.h"
#include "gateway/reply.h"
#include "gateway/request.h"
#include "gateway/router.h"
#include "gateway/store.h"

#define JSON_MAX_DEPTH	32

static const char *const q_sandbox[] = { "sandboxId", NULL };
static const char *const q_sandbox_delete[] = { "sandboxId", "all", NULL };
static const char *const q_metrics[] = { "since", NULL };
static const char *const q_executions[] = { "limit", "before", "sessionId",
	"status", NULL };

static const struct route routes[] = {
	{ .method = "GET", .path = "/api/iris/health",
	  .handler = health_get },
	{ .method = "GET", .path = "/api/iris/sandbox", .needs_key = 1,
	  .query = q_sandbox, .handler = sandbox_get },
	{ .method = "POST", .path = "/api/iris/sandbox", .needs_key = 1,
	  .body = BODY_OPTIONAL, .handler = sandbox_post },
	{ .method = "DELETE", .path = "/api/iris/sandbox", .needs_key = 1,
	  .query = q_sandbox_delete, .handler = sandbox_delete },
	{ .method = "POST", .path = "/api/iris/execute", .needs_key = 1,
	  .body = BODY_REQUIRED, .handler = execute_post,
	  .refused = execute_refused },
	{ .method = "POST", .path = "/api/iris/execute/stream", .needs_key = 1,
	  .body = BODY_REQUIRED, .handler = execute_stream_post,
	  .refused = execute_refused },
	{ .method = "GET", .path = "/api/iris/metrics", .needs_key = 1,
	  .query = q_metrics, .handler = metrics_get },
	{ .method = "GET", .path = "/api/iris/executions", .needs_key = 1,
	  .query = q_executions, .handler = executions_get },
	{ .method = "GET", .path = "/api/iris/runtimes", .needs_key = 1,
	  .handler = runtimes_get },
};

#define NROUTES	(sizeof(routes) / sizeof(routes[0]))

const struct route *
router_match(const char *method, const char *path, char *allow,
    size_t allowsz)
{
	size_t i, used = 0;

	allow[0] = '\0';
	for (i = 0; i < NROUTES; i++) {
		if (strcmp(routes[i].path, path) != 0)
			continue;
		if (strcmp(routes[i].method, method) == 0)
			return &routes[i];
		used += (size_t)snprintf(allow + used, allowsz - used, "%s%s",
		    used ? ", " : "", routes[i].method);
		if (used >= allowsz)
			used = allowsz - 1;
	}
	return NULL;
}

const char *
router_query(struct request *req, const char *name)
{
	size_t i;

	for (i = 0; i < req->nparams; i++)
		if (strcmp(req->params[i].name, name) == 0)
			return req->params[i].value;
	return NULL;
}

static int
route_phase(struct request *req)
{
	char allow[64];

	if ((req->route = router_match(req->method, req->path, allow,
	    sizeof(allow))) != NULL)
		return 0;
	if (allow[0] == '\0') {
		reply_error(req, 404, "not_found", NULL,
		    "no such route; see the API reference for the routes");
		return -1;
	}
	reply_header(req, "Allow", "%s", allow);
	reply_error(req, 405, "method_not_allowed", NULL,
	    "method %.16s is not allowed here; allowed: %s", req->method,
	    allow);
	return -1;
}

static void
rate_headers(struct request *req)
{
	reply_header(req, "RateLimit-Limit", "%ld", req->rate_limit);
	reply_header(req, "RateLimit-Remaining", "%ld", req->rate.remaining);
	reply_header(req, "RateLimit-Reset", "%ld", req->rate.reset_s);
}

/* 1 if a route of the table serves path without a key (health). */
static int
public_path(const char *path)
{
	size_t i;

	for (i = 0; i < NROUTES; i++)
		if (!routes[i].needs_key && strcmp(routes[i].path, path) == 0)
			return 1;
	return 0;
}

/*
 * Every path but the public ones needs a key, known routes or not, so
 * that every request with a key counts against its rate limit and an
 * anonymous caller learns nothing about the routes.
 */
static int
auth_phase(struct request *req)
{
	enum auth_result ar;
	enum store_status sr;

	if (public_path(req->path))
		return 0;
	if ((ar = auth_check(req)) != AUTH_OK) {
		req->key_id[0] = '\0';
		if (ar == AUTH_UNAVAILABLE) {
			reply_error(req, 503, "unavailable", NULL,
			    "the database is not answering; try again shortly");
			return -1;
		}
		reply_header(req, "WWW-Authenticate", "Bearer");
		reply_error(req, 401, "unauthorized", NULL,
		    "a valid API key is required: send 'Authorization: Bearer "
		    "<key>' or 'X-API-Key: <key>'");
		return -1;
	}
	sr = writer_admit(req->key_id, ts_now_ms() * 1000, &req->rate,
	    &req->rate_limit);
	if (sr == STORE_NOT_FOUND) {	/* revoked a moment ago */
		req->authenticated = 0;
		req->key_id[0] = req->project_id[0] = '\0';
		reply_header(req, "WWW-Authenticate", "Bearer");
		reply_error(req, 401, "unauthorized", NULL,
		    "a valid API key is required: send 'Authorization: Bearer "
		    "<key>' or 'X-API-Key: <key>'");
		return -1;
	}
	if (sr != STORE_OK) {
		req->rate_limit = 0;
		reply_error(req, 503, "unavailable", NULL,
		    "the database is not answering; try again shortly");
		return -1;
	}
	/* On every keyed answer, streams included: set before any is sent. */
	rate_headers(req);
	if (!req->rate.admitted) {
		reply_header(req, "Retry-After", "%ld", req->rate.reset_s);
		reply_error(req, 429, "rate_limited", NULL,
		    "rate limit of %ld requests exceeded; retry in %ld s",
		    req->rate_limit, req->rate.reset_s);
		return -1;
	}
	return 0;
}

static int
allowed_param(const struct route *r, const char *name)
{
	const char *const *q;

	for (q = r->query; q && *q; q++)
		if (strcmp(*q, name) == 0)
			return 1;
	return 0;
}

static int
query_phase(struct request *req)
{
	const char *bad = NULL;
	size_t i, j;

	switch (query_parse(req->arena, req->query, req->params,
	    &req->nparams, &bad)) {
	case QUERY_OK:
		break;
	case QUERY_TOO_MANY:
		reply_error(req, 400, "invalid_request", NULL,
		    "too many query parameters");
		return -1;
	case QUERY_BAD_ENCODING:
		reply_error(req, 400, "invalid_request", NULL,
		    "query parameter '%.64s' is not valid percent-encoding",
		    bad ? bad : "");
		return -1;
	default:
		reply_error(req, 503, "unavailable", NULL,
		    "the gateway is out of memory; try again shortly");
		return -1;
	}
	for (i = 0; i < req->nparams; i++) {
		const char *name = req->params[i].name;

		if (!allowed_param(req->route, name)) {
			reply_error(req, 400, "invalid_request", name,
			    "unknown query parameter '%.64s'", name);
			return -1;
		}
		for (j = 0; j < i; j++)
			if (strcmp(req->params[j].name, name) == 0) {
				reply_error(req, 400, "invalid_request", name,
				    "query parameter '%.64s' is repeated",
				    name);
				return -1;
			}
	}
	return 0;
}

/*
 * "application/json", any case, with at most a charset parameter that
 * says UTF-8 (JSON is UTF-8: RFC 8259).
 */
static int
is_json_type(const char *ct)
{
	static const char type[] = "application/json";
	const char *p = ct + sizeof(type) - 1;

	if (strncasecmp(ct, type, sizeof(type) - 1) != 0)
		return 0;
	p += strspn(p, " \t");
	if (*p == '\0')
		return 1;
	if (*p++ != ';')
		return 0;
	p += strspn(p, " \t");
	if (strncasecmp(p, "charset=", 8) != 0)
		return 0;
	p += 8;
	if (strncasecmp(p, "utf-8", 5) == 0)
		p += 5;
	else if (strncasecmp(p, "\"utf-8\"", 7) == 0)
		p += 7;
	else
		return 0;
	p += strspn(p, " \t");
	return *p == '\0';
}

/* The value of the 4 hex digits at s, or -1. */
static long
hex4(const char *s)
{
	long v = 0;
	int i;

	for (i = 0; i < 4; i++) {
		char c = s[i];

		v <<= 4;
		if (c >= '0' && c <= '9')
			v |= c - '0';
		else if ((c | 0x20) >= 'a' && (c | 0x20) <= 'f')
			v |= (c | 0x20) - 'a' + 10;
		else
			return -1;
	}
	return v;
}

/*
 * What json-c would let through but we must not: a raw control character
 * in a string (json-c's strict mode allows them), a surrogate escape that
 * is not one half of a pair ("\ud800" alone decodes to invalid UTF-8),
 * and a NUL escaped in an object key (json-c cuts keys there, so
 * "code\u0000x" would read as "code"; NULs in values are seen, with their
 * length, by the field checks).  Escapes are read whole, so an escaped
 * backslash before "u0000" is no NUL.  Returns a message, or NULL.
 */
static const char *
escape_problem(const char *s, size_t len)
{
	size_t i, j;
	long cp, lo;
	int nul;

	for (i = 0; i < len; i++) {
		if (s[i] != '"')
			continue;
		for (nul = 0, i++; i < len && s[i] != '"'; i++) {
			/* RFC 8259: control characters only escaped. */
			if ((unsigned char)s[i] < 0x20)
				return "the body has a raw control character in "
				    "a string (escape it, e.g. \\n)";
			if (s[i] != '\\' || i + 1 >= len)
				continue;
			if (s[++i] != 'u' || len - i < 5 || (cp = hex4(s + i + 1))
			    == -1)
				continue;
			i += 4;
			if (cp == 0)
				nul = 1;
			if (cp >= 0xdc00 && cp <= 0xdfff)
				return "the body has a lone surrogate escape "
				    "(\\udc00-\\udfff)";
			if (cp >= 0xd800 && cp <= 0xdbff) {
				if (len - i < 7 || s[i + 1] != '\\' ||
				    s[i + 2] != 'u' ||
				    (lo = hex4(s + i + 3)) < 0xdc00 ||
				    lo > 0xdfff)
					return "the body has a lone surrogate "
					    "escape (\\ud800-\\udbff)";
				i += 6;
			}
		}
		if (!nul)
			continue;
		for (j = i + 1; j < len && strchr(" \t\r\n", s[j]); j++)
			;
		if (j < len && s[j] == ':')
			return "field names must not contain NUL characters";
	}
	return NULL;
}

static void
put_json(void *p)
{
	json_object_put(p);
}

/* Parses text[0..len) as one JSON object.  Returns NULL with a message. */
static struct json_object *
parse_object(struct request *req, const char *text, size_t len,
    const char **why)
{
	struct json_tokener *tok;
	struct json_object *obj;
	enum json_tokener_error jerr;

	if (len > (size_t)__INT_MAX__ ||
	    (tok = json_tokener_new_ex(JSON_MAX_DEPTH)) == NULL) {
		*why = "the body could not be parsed";
		return NULL;
	}
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT |
	    JSON_TOKENER_VALIDATE_UTF8);
	obj = json_tokener_parse_ex(tok, text, (int)len);
	jerr = json_tokener_get_error(tok);
	if (obj != NULL && jerr == json_tokener_success &&
	    json_tokener_get_parse_end(tok) < len) {
		/* Trailing bytes: whitespace is fine, anything else is not. */
		size_t i;

		for (i = json_tokener_get_parse_end(tok); i < len; i++)
			if (!strchr(" \t\r\n", text[i]))
				break;
		if (i < len)
			jerr = json_tokener_error_parse_unexpected;
	}
	json_tokener_free(tok);
	if (obj == NULL || jerr != json_tokener_success) {
		json_object_put(obj);
		*why = jerr == json_tokener_error_depth ?
		    "the body is nested more than 32 levels deep" :
		    jerr == json_tokener_error_parse_utf8_string ?
		    "the body is not valid UTF-8" :
		    jerr == json_tokener_continue ?
		    "the body ends in the middle of a JSON value" :
		    "the body is not valid JSON";
		return NULL;
	}
	if (!json_object_is_type(obj, json_type_object)) {
		json_object_put(obj);
		*why = "the body must be a JSON object";
		return NULL;
	}
	arena_cleanup(req->arena, put_json, obj);
	return obj;
}

static int
body_phase(struct request *req)
{
	const char *why;
	char *text;
	size_t len;
	int rc;

	if (req->route->body == BODY_NONE)
		return 0;
	if (req->content_length <= 0 && req->route->body == BODY_OPTIONAL)
		return 0;
	if (!is_json_type(req->content_type)) {
		reply_error(req, 415, "unsupported_media_type", NULL,
		    "send the body as JSON: 'Content-Type: application/json' "
		    "(with charset=utf-8 or no charset)");
		return -1;
	}
	rc = request_read_body(req, (size_t)req->cfg->max_body, &text, &len);
	if (rc == 1) {
		reply_error(req, 413, "payload_too_large", NULL,
		    "the body is larger than %ld bytes", req->cfg->max_body);
		return -1;
	}
	if (rc == -1) {
		reply_error(req, 400, "invalid_request", NULL,
		    "the body could not be read in full");
		return -1;
	}
	if (!utf8_valid(text, len)) {
		reply_error(req, 400, "invalid_json", NULL,
		    "the body is not valid UTF-8");
		return -1;
	}
	if (memchr(text, '\0', len) != NULL) {
		reply_error(req, 400, "invalid_json", NULL,
		    "the body must not contain NUL bytes");
		return -1;
	}
	if ((why = escape_problem(text, len)) != NULL) {
		reply_error(req, 400, "invalid_json", NULL, "%s", why);
		return -1;
	}
	if ((req->body = parse_object(req, text, len, &why)) == NULL) {
		reply_error(req, 400, "invalid_json", NULL, "%s", why);
		return -1;
	}
	return 0;
}

static void
audit(struct request *req)
{
	struct audit_rec rec;

	memset(&rec, 0, sizeof(rec));
	ts_format(ts_now_ms(), rec.created_at);
	snprintf(rec.request_id, sizeof(rec.request_id), "%s", req->id);
	snprintf(rec.method, sizeof(rec.method), "%s", req->method);
	snprintf(rec.route, sizeof(rec.route), "%s", req->path);
	rec.status = req->status;
	rec.error_code = req->error_code;
	if (req->authenticated) {
		memcpy(rec.key_id, req->key_id, sizeof(rec.key_id));
		memcpy(rec.project_id, req->project_id,
		    sizeof(rec.project_id));
	}
	snprintf(rec.client_addr, sizeof(rec.client_addr), "%s",
	    req->client_addr);
	rec.duration_ms = (long)(ts_mono_ms() - req->started_ms);
	writer_audit(&rec);
}

void
router_serve(struct request *req)
{
	char allow[64];
	const struct route *r;

	if (auth_phase(req) == 0 && route_phase(req) == 0 &&
	    query_phase(req) == 0 && body_phase(req) == 0)
		req->route->handler(req);
	else if (req->authenticated && (r = req->route ? req->route :
	    router_match(req->method, req->path, allow, sizeof(allow))) != NULL &&
	    r->refused != NULL)
		r->refused(req);
	if (req->status == 0)	/* a handler bug; never leave a client hanging */
		reply_error(req, 500, "internal", NULL,
		    "the request could not be answered");
	audit(req);
	if (!req->streamed)
		request_send(req);
	if (req->after) {
		/* The client has its answer; tidying up need not delay it. */
		request_flush(req);
		req->after(req, req->after_arg);
	}
}
