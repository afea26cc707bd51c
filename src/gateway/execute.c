/*
 * POST /api/iris/execute and /execute/stream: validating what the caller
 * asks to run, choosing its sandbox, running it over E2B's protocol, and
 * answering with what it printed, returned, drew and raised -- as one
 * JSON body, or as Server-Sent Events while it runs.
 *
 * A failure is set once, in the run's one error slot (run_fail and its
 * kin), and the caller jumps to the end of execute(): there it is
 * answered and the executions row written, each in one place.
 */
#include <json-c/json.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "common/crypto.h"
#include "common/ids.h"
#include "common/log.h"
#include "common/timestamp.h"
#include "gateway/config.h"
#include "gateway/e2b.h"
#include "gateway/lease.h"
#include "gateway/outcome.h"
#include "gateway/store.h"
#include "gateway/execute.h"
#include "gateway/handlers.h"
#include "gateway/reply.h"
#include "gateway/request.h"
#include "gateway/runtimes.h"

#define ENV_NAME_MAX	128
#define ENV_VALUE_MAX	(32 * 1024)
#define PACKAGE_MAX	100

static const char ID_RULE[] = "1-128 characters of A-Z a-z 0-9 . _ : -";

/* --- failures ------------------------------------------------------------ */

/* The ways an execute call fails: each a row of failures[]. */
enum fail {
	FAIL_INVALID,		/* the body is not a valid request */
	FAIL_CODE_TOO_LARGE,
	FAIL_PROJECT_MISMATCH,
	FAIL_NOT_INSTALLABLE,	/* pip could not install the packages */
	FAIL_NOT_INSTALLED,	/* a package the sandbox cannot import */
	FAIL_NO_SANDBOX,	/* no such live sandbox in the project */
	FAIL_SANDBOX_LIMIT,
	FAIL_EVICTED,		/* the session's idle sandbox made room */
	FAIL_DATABASE,
	FAIL_NO_PROVIDER,	/* none is configured */
	FAIL_UNREACHABLE,	/* the provider: cannot be reached, */
	FAIL_AT_CAPACITY,	/* its 429, */
	FAIL_PROVIDER_TIMEOUT,	/* no answer in time, */
	FAIL_PROVIDER,		/* anything else (see provider_fail) */
	FAIL_LOST,		/* it no longer has the sandbox */
	FAIL_CLIENT_GONE,	/* before the run began */
	FAIL_INTERRUPTED,	/* while it ran */
	FAIL_REFUSED		/* by the router, before execute() */
};

/* How each kind of failure is answered and recorded. */
static const struct failure {
	int		 status;	/* HTTP; 0: none (the client is gone) */
	const char	*code;		/* the error envelope's code */
	const char	*field;		/* the field it is about, or NULL */
	const char	*message;	/* for the caller; NULL: run_failf's */
	int		 retry_after;	/* seconds for Retry-After, or 0 */
	const char	*row_status;	/* executions.status */
	const char	*row_name;	/* its error_name; NULL: req->error_code */
	const char	*row_message;	/* its error_message; NULL: given */
} failures[] = {
	[FAIL_INVALID] = { .status = 400, .code = "invalid_request",
	    .row_status = "rejected", .row_name = "invalid_request",
	    .row_message = "invalid request" },
	[FAIL_CODE_TOO_LARGE] = { .status = 413, .code = "code_too_large",
	    .row_status = "rejected", .row_name = "code_too_large",
	    .row_message = "invalid request" },
	[FAIL_PROJECT_MISMATCH] = { .status = 403, .code = "project_mismatch",
	    .field = "projectId",
	    .message = "projectId is not the project of this API key",
	    .row_status = "rejected", .row_name = "project_mismatch",
	    .row_message = "invalid request" },
	[FAIL_NOT_INSTALLABLE] = { .status = 400, .code = "invalid_request",
	    .row_status = "rejected", .row_name = "invalid_request",
	    .row_message = "packages could not be installed" },
	[FAIL_NOT_INSTALLED] = { .status = 400, .code = "invalid_request",
	    .row_status = "rejected", .row_name = "invalid_request",
	    .row_message = "a package is not installed" },
	[FAIL_NO_SANDBOX] = { .status = 404, .code = "sandbox_not_found",
	    .field = "sandboxId",
	    .message = "no live sandbox with that id in this project",
	    .row_status = "rejected", .row_name = "sandbox_not_found",
	    .row_message = "no such sandbox" },
	[FAIL_SANDBOX_LIMIT] = { .status = 429, .code = "sandbox_limit",
	    .row_status = "rejected", .row_name = "sandbox_limit",
	    .row_message = "sandbox limit reached" },
	[FAIL_EVICTED] = { .status = 409, .code = "session_evicted",
	    .field = "sessionId", .message = LEASE_EVICTED_MESSAGE,
	    .row_status = "rejected", .row_name = "session_evicted",
	    .row_message = "the session's sandbox was evicted" },
	[FAIL_DATABASE] = { .status = 503, .code = "unavailable",
	    .message = "the database is not answering; try again shortly",
	    .row_status = "upstream_error", .row_name = "DatabaseError",
	    .row_message = "database" },
	[FAIL_NO_PROVIDER] = { .status = 503, .code = "unavailable",
	    .message = "no sandbox provider is configured (E2B_API_URL)",
	    .row_status = "upstream_error", .row_name = "ProviderError",
	    .row_message = "no provider" },
	[FAIL_UNREACHABLE] = { .status = 503, .code = "unavailable",
	    .message = "the sandbox provider cannot be reached; try again "
	    "shortly",
	    .row_status = "upstream_error", .row_name = "ProviderError" },
	[FAIL_AT_CAPACITY] = { .status = 503, .code = "unavailable",
	    .message = "the sandbox provider is at capacity; try again "
	    "shortly", .retry_after = 10,
	    .row_status = "upstream_error", .row_name = "ProviderError" },
	[FAIL_PROVIDER_TIMEOUT] = { .status = 504, .code = "upstream_timeout",
	    .message = "the sandbox provider did not answer in time",
	    .row_status = "upstream_error", .row_name = "ProviderError" },
	[FAIL_PROVIDER] = { .status = 502, .code = "upstream_error",
	    .message = "the sandbox provider failed or answered something "
	    "unusable",
	    .row_status = "upstream_error", .row_name = "ProviderError" },
	[FAIL_LOST] = { .status = 404, .code = "sandbox_not_found",
	    .row_status = "upstream_error", .row_name = "ProviderError",
	    .row_message = "the sandbox was lost" },
	[FAIL_CLIENT_GONE] = { .row_status = "error",
	    .row_name = "ClientDisconnected",
	    .row_message = "the client went away" },
	[FAIL_INTERRUPTED] = { .row_status = "error",
	    .row_name = "ClientDisconnected",
	    .row_message = "the client went away before the code finished; "
	    "it was interrupted" },
	[FAIL_REFUSED] = { .row_status = "rejected",
	    .row_message = "refused before it ran" },
};

/* The one failure of a call: its kind, and what the kind leaves open. */
struct run_error {
	const struct failure	*kind;		/* NULL: none (yet) */
	const char		*field;		/* or NULL */
	char			 field_buf[32];	/* an element's: "packages[3]" */
	char			 message[512];	/* reply_error's limit */
	int			 retry_after;	/* seconds, or 0: no header */
	const char		*row_message;	/* static */
};

/* --- one execution ------------------------------------------------------- */

struct run {
	struct request		*req;
	struct exec_req		*er;
	struct outcome		 out;
	struct lease		 lease;
	int			 stream;
	int			 client_gone;
	char			 execution_id[IDS_ULID_BUFSZ];
	char			 started_at[TS_ISO_LEN];
	int64_t			 t0;		/* monotonic */
	struct json_object	*installed;	/* packagesInstalled */
	struct run_error	 err;
};

/* Sets the run's failure, all as failures[f] says.  Returns -1. */
static int
run_fail(struct run *r, enum fail f)
{
	const struct failure *k = &failures[f];

	r->err.kind = k;
	r->err.field = k->field;
	snprintf(r->err.message, sizeof(r->err.message), "%s",
	    k->message ? k->message : "");
	r->err.retry_after = k->retry_after;
	r->err.row_message = k->row_message;
	return -1;
}

/* Sets the run's failure f, about field (or NULL), with its own message. */
static int
run_failf(struct run *r, enum fail f, const char *field, const char *fmt,
    ...) __attribute__((format(printf, 4, 5)));

static int
run_failf(struct run *r, enum fail f, const char *field, const char *fmt,
    ...)
{
	va_list ap;

	run_fail(r, f);
	r->err.field = field;
	va_start(ap, fmt);
	vsnprintf(r->err.message, sizeof(r->err.message), fmt, ap);
	va_end(ap);
	return -1;
}

/* The name of element i of array field name ("packages[3]"), for err. */
static const char *
elem_field(struct run *r, const char *name, size_t i)
{
	snprintf(r->err.field_buf, sizeof(r->err.field_buf), "%s[%zu]", name,
	    i);
	return r->err.field_buf;
}

/*
 * Sets a failure of the provider, the kind by st; its row says row_message
 * (static), or NULL: st's own text.  Returns -1.
 */
static int
provider_fail(struct run *r, enum e2b_status st, const char *row_message)
{
	switch (st) {
	case E2B_UNREACHABLE:
		run_fail(r, FAIL_UNREACHABLE);
		break;
	case E2B_LIMIT:
		run_fail(r, FAIL_AT_CAPACITY);
		break;
	case E2B_TIMEOUT:
		run_fail(r, FAIL_PROVIDER_TIMEOUT);
		break;
	default:
		run_fail(r, FAIL_PROVIDER);
		break;
	}
	r->err.row_message = row_message ? row_message : e2b_strerror(st);
	return -1;
}

/* Sends one Server-Sent Event; -1 once the client is gone. */
static int
sse(struct run *r, const char *name, struct json_object *data)
{
	struct buf b;
	int rv;

	buf_init(&b, (size_t)64 << 20);
	rv = buf_printf(&b, "event: %s\ndata: %s\n\n", name,
	    json_object_to_json_string_ext(data, JSON_C_TO_STRING_PLAIN |
	    JSON_C_TO_STRING_NOSLASHESCAPE));
	if (rv == 0)
		rv = request_stream_write(r->req, b.data, b.len);
	buf_release(&b);
	return rv;
}

/*
 * Answers the caller with the run's failure: the error envelope; or, once
 * a stream's headers are sent, the envelope's error and done events.
 */
static void
reply_failure(struct run *r)
{
	const struct failure *k = r->err.kind;
	struct request *req = r->req;
	struct json_object *env;

	if (k->status == 0)
		return;		/* nobody to tell */
	if (r->err.retry_after > 0 && !req->streamed)
		reply_header(req, "Retry-After", "%d", r->err.retry_after);
	reply_error(req, k->status, k->code, r->err.field, "%s",
	    r->err.message);
	if (!req->streamed)
		return;
	/* Headers are gone: the error travels as events. */
	if ((env = json_tokener_parse(req->out.data)) != NULL) {
		sse(r, "error", json_object_object_get(env, "error"));
		sse(r, "done", env);
		json_object_put(env);
	}
}

/* --- the request's fields ------------------------------------------------ */

/* Each field: how to check it and store it into the run's exec_req. */
struct field {
	const char	*name;
	int		(*check)(struct run *, const struct field *,
			    struct json_object *);
	size_t		 offset;	/* where the result goes in exec_req */
};

static int
bad(struct run *r, const char *field, const char *what)
{
	return run_failf(r, FAIL_INVALID, field, "%s %s", field, what);
}

static int
check_code(struct run *r, const struct field *f, struct json_object *v)
{
	struct exec_req *er = r->er;

	if (!json_object_is_type(v, json_type_string))
		return bad(r, f->name, "must be a string");
	er->code = json_object_get_string(v);
	er->code_len = (size_t)json_object_get_string_len(v);
	if (er->code_len == 0)
		return bad(r, f->name, "must not be empty");
	if (memchr(er->code, '\0', er->code_len) != NULL)
		return bad(r, f->name, "must not contain NUL characters");
	if (er->code_len > (size_t)r->req->cfg->max_code)
		return run_failf(r, FAIL_CODE_TOO_LARGE, f->name,
		    "code is %zu bytes; the limit is %ld bytes", er->code_len,
		    r->req->cfg->max_code);
	return 0;
}

static int
check_language(struct run *r, const struct field *f, struct json_object *v)
{
	const char *l = json_object_is_type(v, json_type_string) ?
	    runtimes_language(json_object_get_string(v),
	    (size_t)json_object_get_string_len(v)) : NULL;

	if (l == NULL)
		return bad(r, f->name, "must be one of " RUNTIMES_LANGUAGES);
	r->er->language = l;
	return 0;
}

/* 1 if v is a string that is a valid id. */
static int
id_ok(struct json_object *v)
{
	return json_object_is_type(v, json_type_string) &&
	    ids_valid(json_object_get_string(v),
	    (size_t)json_object_get_string_len(v));
}

/* An id field; its value goes to *(const char **)(er + offset). */
static int
check_id(struct run *r, const struct field *f, struct json_object *v)
{
	if (!id_ok(v))
		return run_failf(r, FAIL_INVALID, f->name,
		    "%s must be a string of %s", f->name, ID_RULE);
	*(const char **)(void *)((char *)r->er + f->offset) =
	    json_object_get_string(v);
	return 0;
}

static int
check_project(struct run *r, const struct field *f, struct json_object *v)
{
	if (!id_ok(v))
		return run_failf(r, FAIL_INVALID, f->name,
		    "%s must be a string of %s", f->name, ID_RULE);
	if (strcmp(json_object_get_string(v), r->req->project_id) != 0)
		return run_fail(r, FAIL_PROJECT_MISMATCH);
	return 0;
}

/* Any JSON value (null is "not given", as for every optional field). */
static int
check_context(struct run *r, const struct field *f, struct json_object *v)
{
	(void)f;
	r->er->context = v;
	return 0;
}

static int
check_timeout(struct run *r, const struct field *f, struct json_object *v)
{
	int64_t t;

	if (!json_object_is_type(v, json_type_int) ||
	    (t = json_object_get_int64(v)) < 1 || t > EXEC_TIMEOUT_MAX)
		return run_failf(r, FAIL_INVALID, f->name,
		    "timeout must be an integer from 1 to %d",
		    EXEC_TIMEOUT_MAX);
	r->er->timeout_s = (int)t;
	return 0;
}

static int
env_name_ok(const char *s)
{
	size_t i;

	if (!((s[0] >= 'A' && s[0] <= 'Z') || (s[0] >= 'a' && s[0] <= 'z') ||
	    s[0] == '_'))
		return 0;
	for (i = 1; s[i]; i++)
		if (!((s[i] >= 'A' && s[i] <= 'Z') ||
		    (s[i] >= 'a' && s[i] <= 'z') ||
		    (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
			return 0;
	return i <= ENV_NAME_MAX;
}

/* 1 if v is a string of at most ENV_VALUE_MAX bytes without NUL. */
static int
env_value_ok(struct json_object *v)
{
	return json_object_is_type(v, json_type_string) &&
	    json_object_get_string_len(v) <= ENV_VALUE_MAX &&
	    memchr(json_object_get_string(v), '\0',
	    (size_t)json_object_get_string_len(v)) == NULL;
}

static int
check_env(struct run *r, const struct field *f, struct json_object *v)
{
	if (!json_object_is_type(v, json_type_object))
		return bad(r, f->name, "must be an object of strings");
	if (json_object_object_length(v) > EXEC_MAX_ENV_VARS)
		return run_failf(r, FAIL_INVALID, f->name,
		    "envVars may hold at most %d variables", EXEC_MAX_ENV_VARS);
	json_object_object_foreach(v, name, val) {
		if (!env_name_ok(name))
			return run_failf(r, FAIL_INVALID, f->name,
			    "envVars names must match [A-Za-z_][A-Za-z0-9_]* "
			    "(at most %d characters)", ENV_NAME_MAX);
		if (!env_value_ok(val))
			return run_failf(r, FAIL_INVALID, f->name,
			    "envVars.%.64s must be a string of at most %d "
			    "bytes without NUL", name, ENV_VALUE_MAX);
	}
	r->er->env_vars = v;
	return 0;
}

static int
package_ok(struct json_object *v)
{
	const char *s;
	size_t i, n;

	if (!json_object_is_type(v, json_type_string))
		return 0;
	s = json_object_get_string(v);
	n = (size_t)json_object_get_string_len(v);
	if (n == 0 || n > PACKAGE_MAX || strlen(s) != n)
		return 0;
	/* Python's names and pip's, Node's ("@scope/name", "name/sub"). */
	for (i = 0; i < n; i++)
		if (!((s[i] >= 'A' && s[i] <= 'Z') ||
		    (s[i] >= 'a' && s[i] <= 'z') ||
		    (s[i] >= '0' && s[i] <= '9') ||
		    (i == 0 && s[i] == '@') ||
		    (i > 0 && strchr("._-/", s[i]) != NULL)))
			return 0;
	return 1;
}

static int
check_packages(struct run *r, const struct field *f, struct json_object *v)
{
	size_t i, n;

	if (!json_object_is_type(v, json_type_array))
		return bad(r, f->name, "must be an array of package names");
	if ((n = json_object_array_length(v)) > EXEC_MAX_PACKAGES)
		return run_failf(r, FAIL_INVALID, f->name,
		    "packages may list at most %d names", EXEC_MAX_PACKAGES);
	for (i = 0; i < n; i++)
		if (!package_ok(json_object_array_get_idx(v, i)))
			return run_failf(r, FAIL_INVALID, elem_field(r,
			    f->name, i), "packages[%zu] must be a package "
			    "name: letters, digits and . _ - / (a leading @ "
			    "for a scoped Node package), at most %d", i,
			    PACKAGE_MAX);
	r->er->packages = v;
	return 0;
}

static const struct field fields[] = {
	{ .name = "code", .check = check_code },
	{ .name = "language", .check = check_language },
	{ .name = "projectId", .check = check_project },
	{ .name = "sessionId", .check = check_id,
	  .offset = offsetof(struct exec_req, session_id) },
	{ .name = "sandboxId", .check = check_id,
	  .offset = offsetof(struct exec_req, sandbox_id) },
	{ .name = "context", .check = check_context },
	{ .name = "timeout", .check = check_timeout },
	{ .name = "envVars", .check = check_env },
	{ .name = "packages", .check = check_packages },
};

#define NFIELDS	(sizeof(fields) / sizeof(fields[0]))

static const struct field *
find_field(const char *name)
{
	size_t i;

	for (i = 0; i < NFIELDS; i++)
		if (strcmp(fields[i].name, name) == 0)
			return &fields[i];
	return NULL;
}

/*
 * Fills r->er from the body, its defaults first: even a refused request
 * names a language for its row.  Returns 0, or -1 with the failure set.
 */
static int
parse(struct run *r)
{
	struct exec_req *er = r->er;
	const struct field *f;

	memset(er, 0, sizeof(*er));
	er->language = "python";
	er->timeout_s = EXEC_TIMEOUT_DEFAULT;
	json_object_object_foreach(r->req->body, name, val) {
		if ((f = find_field(name)) == NULL)
			return run_failf(r, FAIL_INVALID, name,
			    "unknown field '%.64s'", name);
		/* JSON null means "not given" for every optional field. */
		if (val == NULL && f->check != check_code)
			continue;
		if (f->check(r, f, val) == -1)
			return -1;
	}
	if (er->code == NULL)
		return bad(r, "code", "is required");
	return 0;
}

int
execute_parse(struct request *req, struct exec_req *er)
{
	struct run r = { .req = req, .er = er };

	if (parse(&r) == 0)
		return 0;
	reply_failure(&r);
	return -1;
}

/* --- running it ---------------------------------------------------------- */

static int
on_event(void *arg, struct json_object *ev)
{
	struct run *r = arg;
	struct json_object *data = NULL, *type;
	const char *name = NULL;
	int rv = 0;

	if (json_object_object_get_ex(ev, "type", &type) &&
	    strcmp(json_object_get_string(type), "keepalive") == 0) {
		/* The provider's heartbeat: a moment to look at our client. */
		if (r->stream ? request_stream_write(r->req, ": keepalive\n\n",
		    13) == -1 : request_client_gone(r->req))
			r->client_gone = 1;
		return r->client_gone ? -1 : 0;
	}
	outcome_event(&r->out, ev, &name, &data);
	if (r->stream && name && sse(r, name, data) == -1) {
		r->client_gone = 1;
		rv = -1;
	}
	json_object_put(data);
	return rv;
}

/* Runs a helper snippet in the sandbox.  OUT: o (initialized here). */
static enum e2b_status
helper_run(struct run *r, const char *code, const char *language,
    struct json_object *env, struct outcome *o)
{
	struct e2b_run run = { .code = code, .code_len = strlen(code),
	    .language = language, .env_vars = env, .timeout_ms = 60000 };
	int started;

	outcome_init(o, 1 << 20);
	return e2b_execute(r->req->e2b, &r->lease.sb, &run, outcome_collect, o,
	    &started);
}

/*
 * The report after RUNTIMES_MARK in a helper run's stdout: output the
 * session left behind (a thread's, printed between runs) may come before
 * it.  Returns a new object, or NULL.
 */
static struct json_object *
marked_json(struct outcome *o)
{
	const char *out = o->out[0].data ? o->out[0].data : "";
	const char *p = strstr(out, RUNTIMES_MARK);

	return p ? runtimes_report(p + strlen(RUNTIMES_MARK)) : NULL;
}

/*
 * Output a helper run caught that is not its own (a session's thread
 * printing between runs) belongs to the user's run: hand it over.
 */
static void
pass_on(struct run *r, struct outcome *o)
{
	static const char *const names[] = { "stdout", "stderr" };
	struct json_object *ev, *data;
	const char *name, *text;
	size_t len;
	int i;

	for (i = 0; i < 2; i++) {
		text = o->out[i].data ? o->out[i].data : "";
		len = o->out[i].len;
		if (i == 0 && strstr(text, RUNTIMES_MARK))
			len = (size_t)(strstr(text, RUNTIMES_MARK) - text);
		if (len == 0)
			continue;
		ev = json_object_new_object();
		json_object_object_add(ev, "type",
		    json_object_new_string(names[i]));
		json_object_object_add(ev, "text",
		    json_object_new_string_len(text, (int)len));
		outcome_event(&r->out, ev, &name, &data);
		json_object_put(data);
		json_object_put(ev);
	}
}

/* 1 if pkg is in the operator's comma-separated list (NULL: empty). */
static int
listed(const char *list, const char *pkg)
{
	size_t n = strlen(pkg);
	const char *p;

	for (p = list; p && *p; p += strcspn(p, ",") + (p[strcspn(p, ",")] ==
	    ','))
		if (strcspn(p, ",") == n && strncmp(p, pkg, n) == 0)
			return 1;
	return 0;
}

/*
 * Before any sandbox: packages are modules of Python or Node; a language
 * without them (bash) is told so.  Returns 0, or -1 with the failure set.
 */
static int
check_packages_language(struct run *r)
{
	struct json_object *pkgs = r->er->packages;

	if (pkgs == NULL || json_object_array_length(pkgs) == 0 ||
	    runtimes_check_code(r->er->language) != NULL)
		return 0;
	return run_failf(r, FAIL_INVALID, "packages", "packages lists Python "
	    "or Node.js modules the code imports; %s has none (check for a "
	    "command with 'command -v' in the code instead)",
	    r->er->language);
}

/*
 * Runs the package check in the run's sandbox.  OUT: *found (a new
 * array), *missing (the first index not importable, or -1), why.
 * Returns 0, or -1 with the failure set.
 */
static int
check_in_sandbox(struct run *r, struct json_object **found, long *missing,
    char *why, size_t size)
{
	struct json_object *pkgs = r->er->packages, *env, *report = NULL;
	struct outcome o;
	enum e2b_status st;
	int rv = 0;

	*found = NULL;
	env = json_object_new_object();
	json_object_object_add(env, RUNTIMES_NAMES_ENV, json_object_new_string(
	    json_object_to_json_string_ext(pkgs, JSON_C_TO_STRING_PLAIN)));
	st = helper_run(r, runtimes_check_code(r->er->language),
	    r->er->language, env, &o);
	json_object_put(env);
	if (st != E2B_OK)
		rv = provider_fail(r, st, NULL);
	else if ((report = marked_json(&o)) == NULL ||
	    runtimes_check_read(report, json_object_array_length(pkgs), found,
	    missing, why, size) == -1) {
		run_failf(r, FAIL_PROVIDER, "packages", "the packages could "
		    "not be checked: the check failed in the %s sandbox",
		    r->er->language);
		r->err.row_message = "the package check failed";
		rv = -1;
	} else
		pass_on(r, &o);
	json_object_put(report);
	outcome_release(&o);
	return rv;
}

/*
 * On E2B cloud only (its sandboxes reach the network): when the first
 * missing one is on the operator's IRIS_PACKAGES, pip (for the kernel's
 * own interpreter) installs the requested packages that are.  Returns 1 if pip ran and succeeded, 0 if
 * it may not run, or -1 with the failure set.
 */
static int
pip_install(struct run *r, long missing)
{
	struct json_object *pkgs = r->er->packages, *env, *names, *v;
	const char *code = runtimes_install_code(r->er->language);
	const char *list = r->req->cfg->packages;
	size_t i, n = json_object_array_length(pkgs);
	struct outcome o;
	enum e2b_status st;
	int rv;

	if (strcmp(r->req->cfg->provider, "e2b") != 0 || code == NULL ||
	    !listed(list, json_object_get_string(json_object_array_get_idx(
	    pkgs, (size_t)missing))))
		return 0;
	names = json_object_new_array();
	for (i = 0; i < n; i++)
		if (listed(list, json_object_get_string(v =
		    json_object_array_get_idx(pkgs, i))))
			json_object_array_add(names, json_object_get(v));
	env = json_object_new_object();
	json_object_object_add(env, RUNTIMES_NAMES_ENV, json_object_new_string(
	    json_object_to_json_string_ext(names, JSON_C_TO_STRING_PLAIN)));
	json_object_put(names);
	st = helper_run(r, code, r->er->language, env, &o);
	json_object_put(env);
	if (st != E2B_OK)
		rv = provider_fail(r, st, NULL);
	else if (outcome_failed(&o))
		rv = run_failf(r, FAIL_NOT_INSTALLABLE, elem_field(r,
		    "packages", (size_t)missing), "packages[%ld]: pip could "
		    "not install '%s'", missing, json_object_get_string(
		    json_object_array_get_idx(pkgs, (size_t)missing)));
	else
		rv = 1;
	outcome_release(&o);
	return rv;
}

/*
 * packages: each must be importable in the run's sandbox -- checked
 * there, so the answer is the provider's own (its image, the session's
 * state); on E2B cloud pip may install what the operator lists first.
 * OUT: r->installed, what was found, with versions.  Returns 0, or -1
 * with the failure set (the first name missing named as packages[i]).
 */
static int
prepare_packages(struct run *r)
{
	struct json_object *pkgs = r->er->packages, *found;
	char why[256];
	long missing;
	int rv;

	r->installed = json_object_new_array();
	if (pkgs == NULL || json_object_array_length(pkgs) == 0)
		return 0;
	if (check_in_sandbox(r, &found, &missing, why, sizeof(why)) == -1)
		return -1;
	if (missing >= 0 && (rv = pip_install(r, missing)) != 0) {
		json_object_put(found);
		if (rv == -1 || check_in_sandbox(r, &found, &missing, why,
		    sizeof(why)) == -1)
			return -1;
	}
	if (missing >= 0) {
		json_object_put(found);
		return run_failf(r, FAIL_NOT_INSTALLED, elem_field(r,
		    "packages", (size_t)missing), "packages[%ld]: '%s' cannot "
		    "be imported in this %s sandbox (%.160s); GET "
		    "/api/iris/runtimes lists what can", missing,
		    json_object_get_string(json_object_array_get_idx(pkgs,
		    (size_t)missing)), r->er->language, why);
	}
	json_object_put(r->installed);
	r->installed = found;
	return 0;
}

/*
 * How each language is handed a context: `set` runs when one is sent
 * (IRIS_CONTEXT holds its JSON text), `reset` when none is, so the code
 * sees None / undefined instead of a NameError or ReferenceError -- and
 * not a context an earlier run of the session was sent.  A variable the
 * code itself bound to the name is left alone (it is not the one handed
 * over, kept as _iris_context).
 */
static const struct context_code {
	const char	*language;
	const char	*set;
	const char	*reset;
} context_codes[] = {
	{ "python",
	  "import json as _iris_j, os as _iris_o\n"
	  "context_data = _iris_o.environ['IRIS_CONTEXT']\n"
	  "context = _iris_context = _iris_j.loads(context_data)\n"
	  "del _iris_j, _iris_o\n",
	  "if globals().get('context') is globals().get('_iris_context'):\n"
	  "    context = context_data = _iris_context = None\n"
	  "if 'context_data' not in globals():\n"
	  "    context_data = None\n" },
	/* Properties of the global object: no clash with the user's own
	 * declarations (a `let context` of theirs simply wins). */
	{ "javascript",
	  "globalThis.context_data = process.env.IRIS_CONTEXT;\n"
	  "globalThis.context = globalThis.__iris_context =\n"
	  "    JSON.parse(globalThis.context_data);\n"
	  "void 0;\n",
	  "if (globalThis.context === globalThis.__iris_context) {\n"
	  "  globalThis.context = globalThis.__iris_context = undefined;\n"
	  "  globalThis.context_data = undefined;\n"
	  "}\n"
	  "void 0;\n" },
};

static const struct context_code *
context_code(const char *language)
{
	size_t i;

	/* TypeScript runs on node: JavaScript's code is TypeScript too. */
	if (strcmp(language, "typescript") == 0)
		language = "javascript";
	for (i = 0; i < sizeof(context_codes) / sizeof(context_codes[0]); i++)
		if (strcmp(context_codes[i].language, language) == 0)
			return &context_codes[i];
	return NULL;
}

/*
 * context: handed over in the environment (IRIS_CONTEXT) so the user's
 * code is not touched and its line numbers stay; Python and JavaScript
 * read it into variables in a run of their own first, bash reads it.
 * Without one, that run resets the names -- only when the code mentions
 * "context" at all, so other runs cost nothing more.  OUT: *env, the
 * user's run's environment.  Returns 0, or -1 with the failure set (and
 * *env NULL).
 */
static int
prepare_context(struct run *r, struct json_object **env)
{
	const struct context_code *cc = context_code(r->er->language);
	struct json_object *text = NULL, *cenv = NULL;
	struct outcome o;
	enum e2b_status st;
	int failed;

	*env = r->er->env_vars ? json_object_get(r->er->env_vars) : NULL;
	if (r->er->context != NULL)
		text = json_object_new_string(json_object_to_json_string_ext(
		    r->er->context, JSON_C_TO_STRING_PLAIN |
		    JSON_C_TO_STRING_NOSLASHESCAPE));
	if (cc == NULL) {
		/* bash sees it as $IRIS_CONTEXT in the user's run itself. */
		if (text != NULL) {
			if (*env == NULL)
				*env = json_object_new_object();
			json_object_object_add(*env, "IRIS_CONTEXT", text);
		}
		return 0;
	}
	if (text == NULL && memmem(r->er->code, r->er->code_len, "context",
	    7) == NULL)
		return 0;
	if (text != NULL) {
		cenv = json_object_new_object();
		json_object_object_add(cenv, "IRIS_CONTEXT", text);
	}
	st = helper_run(r, cenv ? cc->set : cc->reset, r->er->language, cenv,
	    &o);
	json_object_put(cenv);
	failed = outcome_failed(&o);
	if (!failed)
		pass_on(r, &o);
	outcome_release(&o);
	if (st != E2B_OK || failed) {
		json_object_put(*env);
		*env = NULL;
		return provider_fail(r, st == E2B_OK ? E2B_BAD : st,
		    "the context could not be handed over");
	}
	return 0;
}

static struct json_object *
metadata(struct run *r)
{
	struct json_object *m = json_object_new_object();

	json_object_object_add(m, "sandboxId",
	    json_object_new_string(r->lease.row.sandbox_id));
	json_object_object_add(m, "projectId",
	    json_object_new_string(r->req->project_id));
	json_object_object_add(m, "sessionId", r->er->session_id ?
	    json_object_new_string(r->er->session_id) : NULL);
	json_object_object_add(m, "executionId",
	    json_object_new_string(r->execution_id));
	json_object_object_add(m, "language",
	    json_object_new_string(r->er->language));
	json_object_object_add(m, "timestamp",
	    json_object_new_string(r->started_at));
	return m;
}

/* The body of a successful answer. */
static struct json_object *
answer(struct run *r, long ms)
{
	struct json_object *body, *res;
	char now[TS_ISO_LEN];

	res = outcome_result(&r->out, ms);
	json_object_object_add(res, "packagesInstalled",
	    json_object_get(r->installed));
	json_object_object_add(res, "metadata", metadata(r));
	body = json_object_new_object();
	json_object_object_add(body, "success", json_object_new_boolean(1));
	json_object_object_add(body, "result", res);
	json_object_object_add(body, "sandboxId",
	    json_object_new_string(r->lease.row.sandbox_id));
	ts_format(ts_now_ms(), now);
	json_object_object_add(body, "timestamp", json_object_new_string(now));
	return body;
}

/* The provider no longer has the sandbox: its state is gone.  Returns -1. */
static int
lost_sandbox(struct run *r)
{
	return run_failf(r, FAIL_LOST, NULL, "the sandbox is gone at the "
	    "provider (closed, expired or lost) and its state with it; send "
	    "the request again%s to start afresh",
	    r->er->sandbox_id ? " without sandboxId" : "");
}

/* Sets the failure of a lease not had (err; pst the provider's). */
static int
lease_fail(struct run *r, enum lease_err err, enum e2b_status pst)
{
	switch (err) {
	case LEASE_NOT_FOUND:
		return run_fail(r, FAIL_NO_SANDBOX);
	case LEASE_LIMIT:
		run_failf(r, FAIL_SANDBOX_LIMIT, NULL, LEASE_LIMIT_MESSAGE,
		    r->req->cfg->project_sandboxes);
		r->err.retry_after = r->lease.retry_after_s;
		return -1;
	case LEASE_EVICTED:
		return run_fail(r, FAIL_EVICTED);
	case LEASE_DB:
		return run_fail(r, FAIL_DATABASE);
	default:
		return provider_fail(r, pst, NULL);
	}
}

/*
 * Finds or creates the run's sandbox and holds it for the run.  Returns
 * 0 with r->lease held, or -1 with the failure set and nothing held.
 */
static int
take_lease(struct run *r)
{
	struct request *req = r->req;
	struct exec_req *er = r->er;
	enum lease_err lerr;
	enum e2b_status pst;

	/* The run gets its whole timeout on top of the idle lifetime,
	 * plus a minute for the context and package runs before it. */
	lerr = lease_acquire(req, er->sandbox_id, er->session_id, er->language,
	    req->cfg->idle_timeout_s, er->timeout_s + 60, er->timeout_s, 0,
	    &r->lease, &pst);
	if (lerr == LEASE_OK && !r->lease.created)
		lerr = lease_hold(req, &r->lease, er->timeout_s + 60, &pst);
	if (lerr == LEASE_PROVIDER && pst == E2B_NOT_FOUND &&
	    !r->lease.created && r->lease.row.sandbox_id[0]) {
		lease_release(req, &r->lease, 0, 1);
		return lost_sandbox(r);
	}
	return lerr == LEASE_OK ? 0 : lease_fail(r, lerr, pst);
}

/*
 * Runs the user's code; the lease is held, and released here.  Returns 0
 * once the caller has its answer, or -1 with the failure set.
 */
static int
run_code(struct run *r, struct json_object *env)
{
	struct request *req = r->req;
	struct json_object *body;
	enum e2b_status st;
	int64_t t_run;
	struct e2b_run run;
	int started, lost;
	long ms;

	if (r->stream && request_stream_begin(req) == -1) {
		r->client_gone = 1;
		lease_release(req, &r->lease, 0, 0);
		return run_fail(r, FAIL_CLIENT_GONE);
	}
	/* executionTime is the run's own, not the sandbox's creation. */
	t_run = ts_mono_ms();
	run = (struct e2b_run){ .code = r->er->code,
	    .code_len = r->er->code_len, .language = r->er->language,
	    .env_vars = env, .timeout_ms = (long)r->er->timeout_s * 1000,
	    .store_history = 1 };
	st = e2b_execute(req->e2b, &r->lease.sb, &run, on_event, r, &started);
	ms = (long)(ts_mono_ms() - t_run);
	if (st == E2B_TIMEOUT && started) {
		outcome_timeout(&r->out, r->er->timeout_s);
		if (r->stream && sse(r, "error", r->out.error) == -1)
			r->client_gone = 1;
	}
	lost = st == E2B_NOT_FOUND;
	lease_release(req, &r->lease, st == E2B_OK || started ? 1 : 0, lost);
	if (r->client_gone)
		return run_fail(r, FAIL_INTERRUPTED);
	if (lost)
		return lost_sandbox(r);
	if (st != E2B_OK && !(st == E2B_TIMEOUT && started))
		return provider_fail(r, st, NULL);
	body = answer(r, ms);
	if (r->stream) {
		sse(r, "done", body);
		json_object_put(body);
	} else
		reply_json(req, 200, body);
	return 0;
}

/*
 * The row's status and error: the failure's, or else the outcome's (what
 * the code raised).  OUT: row's; its message may point into msg.
 */
static void
verdict(struct run *r, struct exec_row *row, char *msg, size_t size)
{
	const struct failure *k = r->err.kind;
	struct json_object *e = r->out.error, *v;

	if (k != NULL) {
		row->status = k->row_status;
		row->error_name = k->row_name ? k->row_name :
		    r->req->error_code;
		row->error_message = r->err.row_message;
		return;
	}
	if (e == NULL) {
		row->status = "ok";
		return;
	}
	row->error_name = json_object_object_get_ex(e, "name", &v) ?
	    json_object_get_string(v) : "Error";
	snprintf(msg, size, "%s", json_object_object_get_ex(e, "value", &v) ?
	    json_object_get_string(v) : "");
	row->error_message = msg[0] ? msg : NULL;
	row->status = strcmp(row->error_name, "TimeoutError") == 0 ?
	    "timeout" : "error";
}

/* Writes the executions row of this call. */
static void
record(struct run *r)
{
	struct request *req = r->req;
	struct exec_req *er = r->er;
	unsigned char hash[CRYPTO_SHA256_LEN];
	struct exec_row row;
	char msg[256];

	memset(&row, 0, sizeof(row));
	snprintf(row.execution_id, sizeof(row.execution_id), "%s",
	    r->execution_id);
	row.request_id = req->id;
	memcpy(row.created_at, r->started_at, sizeof(row.created_at));
	row.project_id = req->project_id;
	row.key_id = req->key_id;
	row.session_id = er->session_id;
	row.sandbox_id = r->lease.row.sandbox_id[0] &&
	    strncmp(r->lease.row.sandbox_id, STORE_PENDING_PREFIX, 8) != 0 ?
	    r->lease.row.sandbox_id : er->sandbox_id;
	row.provider = req->cfg->provider;
	row.language = er->language;
	row.code_bytes = (long)er->code_len;
	crypto_sha256(er->code ? er->code : "", er->code_len, hash);
	crypto_hex(hash, sizeof(hash), row.code_sha256);
	if (req->cfg->keep_code && er->code) {
		row.code = er->code;
		row.code_len = er->code_len;
	}
	verdict(r, &row, msg, sizeof(msg));
	row.duration_ms = (long)(ts_mono_ms() - r->t0);
	row.stdout_bytes = r->out.seen[0];
	row.stderr_bytes = r->out.seen[1];
	row.result_count = (long)json_object_array_length(r->out.results);
	if (store_execution_insert(req->store, &row) != STORE_OK)
		log_warnx("%s: the executions row could not be written",
		    req->id);
}

/* Starts the bookkeeping of a call: its id, start and outcome (cap). */
static void
run_init(struct run *r, struct request *req, struct exec_req *er,
    size_t cap)
{
	memset(r, 0, sizeof(*r));
	r->req = req;
	r->er = er;
	r->t0 = ts_mono_ms();
	ts_format(ts_now_ms(), r->started_at);
	outcome_init(&r->out, cap);
	if (ids_ulid("ex_", r->execution_id, sizeof(r->execution_id)) == -1)
		fatalx("no randomness");
}

static void
execute(struct request *req, int stream)
{
	struct json_object *env = NULL;
	struct exec_req er;
	struct run r;

	run_init(&r, req, &er, (size_t)req->cfg->output_cap);
	r.stream = stream;
	if (parse(&r) == -1)
		goto fail;
	if (req->cfg->e2b_api_url == NULL) {
		run_fail(&r, FAIL_NO_PROVIDER);
		goto fail;
	}
	if (check_packages_language(&r) == -1 || take_lease(&r) == -1)
		goto fail;
	if (prepare_packages(&r) == -1 || prepare_context(&r, &env) == -1) {
		lease_release(req, &r.lease, 0, 0);
		goto fail;
	}
	if (run_code(&r, env) == 0)
		goto done;
fail:
	reply_failure(&r);
done:
	record(&r);
	json_object_put(env);
	json_object_put(r.installed);
	outcome_release(&r.out);
}

/* A keyed execute call the router refused (rate limit, body): its row. */
void
execute_refused(struct request *req)
{
	struct exec_req er;
	struct run r;

	memset(&er, 0, sizeof(er));
	er.language = "python";
	run_init(&r, req, &er, 1);
	r.t0 = req->started_ms;
	run_fail(&r, FAIL_REFUSED);
	record(&r);
	outcome_release(&r.out);
}

void
execute_post(struct request *req)
{
	execute(req, 0);
}

void
execute_stream_post(struct request *req)
{
	execute(req, 1);
}
