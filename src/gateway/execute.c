/*
 * POST /api/iris/execute and /execute/stream: validating what the caller
 * asks to run, choosing its sandbox, running it over E2B's protocol, and
 * answering with what it printed, returned, drew and raised -- as one
 * JSON body, or as Server-Sent Events while it runs.
 */
#include <json-c/json.h>
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

#define ENV_NAME_MAX	128
#define ENV_VALUE_MAX	(32 * 1024)
#define PACKAGE_MAX	100

static const char ID_RULE[] = "1-128 characters of A-Z a-z 0-9 . _ : -";

/* Each field: how to check it and store it into struct exec_req. */
struct field {
	const char	*name;
	int		(*check)(struct request *, const struct field *,
			    struct json_object *, struct exec_req *);
	size_t		 offset;	/* where the result goes in exec_req */
};

static int
bad(struct request *req, const char *field, const char *what)
{
	reply_error(req, 400, "invalid_request", field, "%s %s", field, what);
	return -1;
}

static int
check_code(struct request *req, const struct field *f, struct json_object *v,
    struct exec_req *er)
{
	if (!json_object_is_type(v, json_type_string))
		return bad(req, f->name, "must be a string");
	er->code = json_object_get_string(v);
	er->code_len = (size_t)json_object_get_string_len(v);
	if (er->code_len == 0)
		return bad(req, f->name, "must not be empty");
	if (memchr(er->code, '\0', er->code_len) != NULL)
		return bad(req, f->name, "must not contain NUL characters");
	if (er->code_len > (size_t)req->cfg->max_code) {
		reply_error(req, 413, "code_too_large", f->name,
		    "code is %zu bytes; the limit is %ld bytes", er->code_len,
		    req->cfg->max_code);
		return -1;
	}
	return 0;
}

static int
check_language(struct request *req, const struct field *f,
    struct json_object *v, struct exec_req *er)
{
	static const char *const names[][2] = {
		{ "python", "python" }, { "javascript", "javascript" },
		{ "js", "javascript" }, { "bash", "bash" },
	};
	const char *s;
	size_t i;

	if (json_object_is_type(v, json_type_string)) {
		s = json_object_get_string(v);
		for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
			if ((size_t)json_object_get_string_len(v) ==
			    strlen(names[i][0]) && strcmp(s, names[i][0]) == 0) {
				er->language = names[i][1];
				return 0;
			}
	}
	return bad(req, f->name, "must be one of python, javascript (js), bash");
}

/* An id field; its value goes to *(const char **)(er + offset). */
static int
check_id(struct request *req, const struct field *f, struct json_object *v,
    struct exec_req *er)
{
	if (!json_object_is_type(v, json_type_string) ||
	    !ids_valid(json_object_get_string(v),
	    (size_t)json_object_get_string_len(v))) {
		reply_error(req, 400, "invalid_request", f->name,
		    "%s must be a string of %s", f->name, ID_RULE);
		return -1;
	}
	*(const char **)(void *)((char *)er + f->offset) =
	    json_object_get_string(v);
	return 0;
}

static int
check_project(struct request *req, const struct field *f,
    struct json_object *v, struct exec_req *er)
{
	const char *project = NULL;

	(void)er;
	if (!json_object_is_type(v, json_type_string) ||
	    !ids_valid(json_object_get_string(v),
	    (size_t)json_object_get_string_len(v))) {
		reply_error(req, 400, "invalid_request", f->name,
		    "%s must be a string of %s", f->name, ID_RULE);
		return -1;
	}
	project = json_object_get_string(v);
	if (strcmp(project, req->project_id) != 0) {
		reply_error(req, 403, "project_mismatch", f->name,
		    "projectId is not the project of this API key");
		return -1;
	}
	return 0;
}

static int
check_context(struct request *req, const struct field *f,
    struct json_object *v, struct exec_req *er)
{
	if (!json_object_is_type(v, json_type_object))
		return bad(req, f->name, "must be a JSON object");
	er->context = v;
	return 0;
}

static int
check_timeout(struct request *req, const struct field *f,
    struct json_object *v, struct exec_req *er)
{
	int64_t t;

	if (!json_object_is_type(v, json_type_int) ||
	    (t = json_object_get_int64(v)) < 1 || t > EXEC_TIMEOUT_MAX) {
		reply_error(req, 400, "invalid_request", f->name,
		    "timeout must be an integer from 1 to %d", EXEC_TIMEOUT_MAX);
		return -1;
	}
	er->timeout_s = (int)t;
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

static int
check_env(struct request *req, const struct field *f, struct json_object *v,
    struct exec_req *er)
{
	if (!json_object_is_type(v, json_type_object))
		return bad(req, f->name, "must be an object of strings");
	if (json_object_object_length(v) > EXEC_MAX_ENV_VARS) {
		reply_error(req, 400, "invalid_request", f->name,
		    "envVars may hold at most %d variables", EXEC_MAX_ENV_VARS);
		return -1;
	}
	json_object_object_foreach(v, name, val) {
		if (!env_name_ok(name)) {
			reply_error(req, 400, "invalid_request", f->name,
			    "envVars names must match [A-Za-z_][A-Za-z0-9_]* "
			    "(at most %d characters)", ENV_NAME_MAX);
			return -1;
		}
		if (!json_object_is_type(val, json_type_string) ||
		    json_object_get_string_len(val) > ENV_VALUE_MAX ||
		    memchr(json_object_get_string(val), '\0',
		    (size_t)json_object_get_string_len(val)) != NULL) {
			reply_error(req, 400, "invalid_request", f->name,
			    "envVars.%.64s must be a string of at most %d "
			    "bytes without NUL", name, ENV_VALUE_MAX);
			return -1;
		}
	}
	er->env_vars = v;
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
	for (i = 0; i < n; i++)
		if (!((s[i] >= 'A' && s[i] <= 'Z') ||
		    (s[i] >= 'a' && s[i] <= 'z') ||
		    (s[i] >= '0' && s[i] <= '9') ||
		    (i > 0 && strchr("._-", s[i]) != NULL)))
			return 0;
	return 1;
}

static int
check_packages(struct request *req, const struct field *f,
    struct json_object *v, struct exec_req *er)
{
	size_t i, n;

	if (!json_object_is_type(v, json_type_array))
		return bad(req, f->name, "must be an array of package names");
	if ((n = json_object_array_length(v)) > EXEC_MAX_PACKAGES) {
		reply_error(req, 400, "invalid_request", f->name,
		    "packages may list at most %d names", EXEC_MAX_PACKAGES);
		return -1;
	}
	for (i = 0; i < n; i++)
		if (!package_ok(json_object_array_get_idx(v, i))) {
			reply_error(req, 400, "invalid_request", f->name,
			    "packages[%zu] must be a package name: letters, "
			    "digits and . _ - (at most %d)", i, PACKAGE_MAX);
			return -1;
		}
	er->packages = v;
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

int
execute_parse(struct request *req, struct exec_req *er)
{
	const struct field *f;

	memset(er, 0, sizeof(*er));
	er->language = "python";
	er->timeout_s = EXEC_TIMEOUT_DEFAULT;
	json_object_object_foreach(req->body, name, val) {
		if ((f = find_field(name)) == NULL) {
			reply_error(req, 400, "invalid_request", name,
			    "unknown field '%.64s'", name);
			return -1;
		}
		/* JSON null means "not given" for every optional field. */
		if (val == NULL && f->check != check_code)
			continue;
		if (f->check(req, f, val, er) == -1)
			return -1;
	}
	if (er->code == NULL)
		return bad(req, "code", "is required");
	return 0;
}

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
	/* For the executions row. */
	const char		*status;
	const char		*error_name;
	char			 error_message[256];
};

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

/* Events of a helper run (context, package check) are only collected. */
static int
collect_event(void *arg, struct json_object *ev)
{
	const char *name;
	struct json_object *data;

	outcome_event(arg, ev, &name, &data);
	json_object_put(data);
	return 0;
}

/* Runs a helper snippet in the sandbox.  OUT: o (initialized here). */
static enum e2b_status
helper_run(struct run *r, const char *code, const char *language,
    struct json_object *env, struct outcome *o)
{
	int started;

	outcome_init(o, 1 << 20);
	return e2b_execute(r->req->e2b, &r->lease.sb, code, strlen(code),
	    language, env, 60000, collect_event, o, &started);
}

/* The error envelope's status and code for a provider failure. */
static void
provider_error(struct request *req, enum e2b_status st)
{
	switch (st) {
	case E2B_UNREACHABLE:
		reply_error(req, 503, "unavailable", NULL, "the sandbox "
		    "provider cannot be reached; try again shortly");
		break;
	case E2B_LIMIT:
		reply_header(req, "Retry-After", "%d", 10);
		reply_error(req, 503, "unavailable", NULL, "the sandbox "
		    "provider is at capacity; try again shortly");
		break;
	case E2B_TIMEOUT:
		reply_error(req, 504, "upstream_timeout", NULL, "the sandbox "
		    "provider did not answer in time");
		break;
	default:
		reply_error(req, 502, "upstream_error", NULL, "the sandbox "
		    "provider failed or answered something unusable");
		break;
	}
}

static void
fail(struct run *r, const char *status, const char *name, const char *msg)
{
	r->status = status;
	r->error_name = name;
	snprintf(r->error_message, sizeof(r->error_message), "%s", msg);
}

/* What a helper run reports follows this marker on a line of its own. */
#define PKG_MARK	"\x1e" "iris-packages:"

/*
 * The JSON after the marker in a helper run's stdout: output the session
 * left behind (a thread's, printed between runs) may come before it.
 */
static struct json_object *
marked_json(struct outcome *o)
{
	const char *out = o->out[0].data ? o->out[0].data : "";
	const char *p = strstr(out, PKG_MARK);

	return p ? json_tokener_parse(p + strlen(PKG_MARK)) : NULL;
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
		if (i == 0 && strstr(text, PKG_MARK))
			len = (size_t)(strstr(text, PKG_MARK) - text);
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

/* Python's import names of the packages that differ from them. */
static const char *
import_name(const char *pkg)
{
	static const char *const names[][2] = {
		{ "scikit-learn", "sklearn" }, { "pillow", "PIL" },
		{ "Pillow", "PIL" }, { "beautifulsoup4", "bs4" },
		{ "opencv-python", "cv2" }, { "pyyaml", "yaml" },
		{ "PyYAML", "yaml" }, { "python-dateutil", "dateutil" },
	};
	size_t i;

	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strcmp(pkg, names[i][0]) == 0)
			return names[i][1];
	return pkg;
}

/* 1 if pkg is in the operator's comma-separated allowlist. */
static int
allowed(const char *list, const char *pkg)
{
	size_t n = strlen(pkg);
	const char *p;

	for (p = list; p && *p; p += strcspn(p, ",") + (p[strcspn(p, ",")] ==
	    ','))
		if (strcspn(p, ",") == n && strncmp(p, pkg, n) == 0)
			return 1;
	return 0;
}

static int
check_allowlist(struct run *r)
{
	struct json_object *pkgs = r->er->packages;
	size_t i, n = pkgs ? json_object_array_length(pkgs) : 0;
	const char *p;

	for (i = 0; i < n; i++) {
		p = json_object_get_string(json_object_array_get_idx(pkgs, i));
		if (!allowed(r->req->cfg->packages, p)) {
			reply_error(r->req, 400, "invalid_request", "packages",
			    "package '%s' is not on this server's allowlist",
			    p);
			return -1;
		}
	}
	return 0;
}

/*
 * Packages: on E2B cloud, installed with pip before the run; here (no
 * network in a sandbox) they must already be importable, else 400.
 */
static int
prepare_packages(struct run *r)
{
	struct json_object *pkgs = r->er->packages, *missing;
	struct outcome o;
	struct buf code;
	enum e2b_status st;
	size_t i, n = pkgs ? json_object_array_length(pkgs) : 0;
	const char *p;
	int rv = 0;

	r->installed = json_object_new_array();
	if (n == 0)
		return 0;
	buf_init(&code, 64 * 1024);
	if (strcmp(r->req->cfg->provider, "e2b") == 0) {
		buf_puts(&code, "pip install --quiet --disable-pip-version-check");
		for (i = 0; i < n; i++)
			buf_printf(&code, " '%s'", json_object_get_string(
			    json_object_array_get_idx(pkgs, i)));
		st = helper_run(r, code.data, "bash", NULL, &o);
	} else {
		buf_puts(&code, "import importlib.util as _u, json as _j\n"
		    "print('" PKG_MARK "' + _j.dumps([p for p, m in [");
		for (i = 0; i < n; i++) {
			p = json_object_get_string(json_object_array_get_idx(
			    pkgs, i));
			buf_printf(&code, "('%s', '%s'), ", p, import_name(p));
		}
		buf_puts(&code, "] if _u.find_spec(m) is None]), flush=True)\n"
		    "del _u, _j");
		st = helper_run(r, code.data, "python", NULL, &o);
	}
	buf_release(&code);
	if (st != E2B_OK) {
		provider_error(r->req, st);
		fail(r, "upstream_error", "ProviderError", e2b_strerror(st));
		rv = -1;
	} else if (strcmp(r->req->cfg->provider, "e2b") == 0) {
		if (outcome_failed(&o)) {
			reply_error(r->req, 400, "invalid_request", "packages",
			    "the packages could not be installed");
			fail(r, "rejected", "invalid_request",
			    "packages could not be installed");
			rv = -1;
		} else
			for (i = 0; i < n; i++)
				json_object_array_add(r->installed,
				    json_object_get(json_object_array_get_idx(
				    pkgs, i)));
	} else if ((missing = marked_json(&o)) == NULL ||
	    !json_object_is_type(missing, json_type_array)) {
		json_object_put(missing);
		provider_error(r->req, E2B_BAD);
		fail(r, "upstream_error", "ProviderError", "package check");
		rv = -1;
	} else {
		pass_on(r, &o);
		if (json_object_array_length(missing) > 0) {
			reply_error(r->req, 400, "invalid_request", "packages",
			    "package '%s' is not installed in this sandbox "
			    "provider", json_object_get_string(
			    json_object_array_get_idx(missing, 0)));
			fail(r, "rejected", "invalid_request",
			    "a package is not installed");
			rv = -1;
		}
		json_object_put(missing);
	}
	outcome_release(&o);
	return rv;
}

/*
 * context: handed over in the environment (IRIS_CONTEXT) so the user's
 * code is not touched and its line numbers stay; Python and JavaScript
 * read it into variables in a run of their own first, bash reads it.
 */
static int
prepare_context(struct run *r, struct json_object **env)
{
	static const char py[] = "import json as _iris_j, os as _iris_o\n"
	    "context_data = _iris_o.environ.get('IRIS_CONTEXT', '{}')\n"
	    "context = _iris_j.loads(context_data)\n"
	    "del _iris_j, _iris_o";
	/* Properties of the global object: no clash with the user's own
	 * declarations (a `let context` of theirs simply wins). */
	static const char js[] = "globalThis.context_data = "
	    "process.env.IRIS_CONTEXT || '{}';\n"
	    "globalThis.context = JSON.parse(globalThis.context_data);";
	struct json_object *cenv;
	struct outcome o;
	enum e2b_status st;
	int failed;

	*env = r->er->env_vars ? json_object_get(r->er->env_vars) : NULL;
	if (r->er->context == NULL)
		return 0;
	cenv = json_object_new_object();
	json_object_object_add(cenv, "IRIS_CONTEXT", json_object_new_string(
	    json_object_to_json_string_ext(r->er->context,
	    JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)));
	if (strcmp(r->er->language, "bash") == 0) {
		/* bash sees it as $IRIS_CONTEXT in the user's run itself. */
		if (*env == NULL)
			*env = json_object_new_object();
		json_object_object_add(*env, "IRIS_CONTEXT",
		    json_object_get(json_object_object_get(cenv,
		    "IRIS_CONTEXT")));
		json_object_put(cenv);
		return 0;
	}
	st = helper_run(r, strcmp(r->er->language, "python") == 0 ? py : js,
	    r->er->language, cenv, &o);
	json_object_put(cenv);
	failed = outcome_failed(&o);
	if (!failed)
		pass_on(r, &o);
	outcome_release(&o);
	if (st != E2B_OK || failed) {
		provider_error(r->req, st == E2B_OK ? E2B_BAD : st);
		fail(r, "upstream_error", "ProviderError",
		    "the context could not be handed over");
		json_object_put(*env);
		*env = NULL;
		return -1;
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

/* The outcome's status for the executions row. */
static void
classify(struct run *r)
{
	struct json_object *e = r->out.error, *v;

	if (e == NULL) {
		r->status = "ok";
		return;
	}
	r->error_name = json_object_object_get_ex(e, "name", &v) ?
	    json_object_get_string(v) : "Error";
	snprintf(r->error_message, sizeof(r->error_message), "%s",
	    json_object_object_get_ex(e, "value", &v) ?
	    json_object_get_string(v) : "");
	r->status = strcmp(r->error_name, "TimeoutError") == 0 ? "timeout" :
	    "error";
}

/* Maps a lease failure to an answer. */
static void
lease_error(struct run *r, enum lease_err err, enum e2b_status pst)
{
	struct request *req = r->req;

	switch (err) {
	case LEASE_NOT_FOUND:
		reply_error(req, 404, "sandbox_not_found", "sandboxId",
		    "no live sandbox with that id in this project");
		fail(r, "rejected", "sandbox_not_found", "no such sandbox");
		break;
	case LEASE_LIMIT:
		reply_error(req, 429, "sandbox_limit", NULL, "this project "
		    "already has its maximum of %ld live sandboxes; close one "
		    "(DELETE /api/iris/sandbox) or let one expire",
		    req->cfg->project_sandboxes);
		fail(r, "rejected", "sandbox_limit", "sandbox limit reached");
		break;
	case LEASE_DB:
		reply_error(req, 503, "unavailable", NULL,
		    "the database is not answering; try again shortly");
		fail(r, "upstream_error", "DatabaseError", "database");
		break;
	default:
		provider_error(req, pst);
		fail(r, "upstream_error", "ProviderError", e2b_strerror(pst));
		break;
	}
}

/* The provider no longer has the sandbox: its state is gone. */
static void
lost_sandbox(struct run *r)
{
	reply_error(r->req, 404, "sandbox_not_found", NULL, "the sandbox is "
	    "gone at the provider (it expired or was lost) and its state with "
	    "it; send the request again%s to start afresh",
	    r->er->sandbox_id ? " without sandboxId" : "");
	fail(r, "upstream_error", "ProviderError", "the sandbox was lost");
}

/* Runs the user's code; the lease is held.  Answers in every case. */
static void
run_code(struct run *r, struct json_object *env)
{
	struct request *req = r->req;
	enum e2b_status st;
	int64_t t_run;
	int started, lost;
	long ms;

	if (r->stream && request_stream_begin(req) == -1) {
		r->client_gone = 1;
		fail(r, "error", "ClientDisconnected", "the client went away");
		lease_release(req, &r->lease, 0, 0);
		return;
	}
	/* executionTime is the run's own, not the sandbox's creation. */
	t_run = ts_mono_ms();
	st = e2b_execute(req->e2b, &r->lease.sb, r->er->code, r->er->code_len,
	    r->er->language, env, (long)r->er->timeout_s * 1000, on_event, r,
	    &started);
	ms = (long)(ts_mono_ms() - t_run);
	if (st == E2B_TIMEOUT && started) {
		outcome_timeout(&r->out, r->er->timeout_s);
		if (r->stream && sse(r, "error", r->out.error) == -1)
			r->client_gone = 1;
	}
	lost = st == E2B_NOT_FOUND;
	lease_release(req, &r->lease, st == E2B_OK || started ? 1 : 0, lost);
	if (r->client_gone) {
		fail(r, "error", "ClientDisconnected", "the client went away "
		    "before the code finished; it was interrupted");
		return;
	}
	if (st == E2B_OK || (st == E2B_TIMEOUT && started)) {
		struct json_object *body = answer(r, ms);

		classify(r);
		if (r->stream) {
			sse(r, "done", body);
			json_object_put(body);
		} else
			reply_json(req, 200, body);
		return;
	}
	if (lost) {
		lost_sandbox(r);
	} else {
		provider_error(req, st);
		fail(r, "upstream_error", "ProviderError", e2b_strerror(st));
	}
	if (r->stream) {
		/* Headers are gone: the error travels as events. */
		struct json_object *env2 = json_tokener_parse(req->out.data);

		if (env2) {
			sse(r, "error", json_object_object_get(env2, "error"));
			sse(r, "done", env2);
			json_object_put(env2);
		}
	}
}

/* Writes the executions row of this call. */
static void
record(struct run *r)
{
	struct request *req = r->req;
	struct exec_req *er = r->er;
	unsigned char hash[CRYPTO_SHA256_LEN];
	struct exec_row row;

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
	row.status = r->status ? r->status : "upstream_error";
	row.error_name = r->error_name;
	row.error_message = r->error_message[0] ? r->error_message : NULL;
	row.duration_ms = (long)(ts_mono_ms() - r->t0);
	row.stdout_bytes = r->out.seen[0];
	row.stderr_bytes = r->out.seen[1];
	row.result_count = (long)json_object_array_length(r->out.results);
	if (store_execution_insert(req->store, &row) != STORE_OK)
		log_warnx("%s: the executions row could not be written",
		    req->id);
}

static void
execute(struct request *req, int stream)
{
	struct json_object *env = NULL;
	struct exec_req er;
	struct run r;
	enum lease_err lerr;
	enum e2b_status pst;

	memset(&r, 0, sizeof(r));
	r.req = req;
	r.er = &er;
	r.stream = stream;
	r.t0 = ts_mono_ms();
	ts_format(ts_now_ms(), r.started_at);
	outcome_init(&r.out, (size_t)req->cfg->output_cap);
	if (ids_ulid("ex_", r.execution_id, sizeof(r.execution_id)) == -1)
		fatalx("no randomness");
	if (execute_parse(req, &er) == -1) {
		fail(&r, "rejected", req->error_code, "invalid request");
		if (er.language == NULL)
			er.language = "python";
		goto done;
	}
	if (req->cfg->e2b_api_url == NULL) {
		reply_error(req, 503, "unavailable", NULL,
		    "no sandbox provider is configured (E2B_API_URL)");
		fail(&r, "upstream_error", "ProviderError", "no provider");
		goto done;
	}
	if (check_allowlist(&r) == -1) {
		fail(&r, "rejected", "invalid_request", "package not allowed");
		goto done;
	}
	/* The run gets its whole timeout on top of the idle lifetime,
	 * plus a minute for the context and package runs before it. */
	lerr = lease_acquire(req, er.sandbox_id, er.session_id, er.language,
	    req->cfg->idle_timeout_s, er.timeout_s + 60, 0, &r.lease, &pst);
	if (lerr == LEASE_OK && !r.lease.created)
		lerr = lease_hold(req, &r.lease, er.timeout_s + 60, &pst);
	if (lerr == LEASE_PROVIDER && pst == E2B_NOT_FOUND && !r.lease.created &&
	    r.lease.row.sandbox_id[0]) {
		lease_release(req, &r.lease, 0, 1);
		lost_sandbox(&r);
		goto done;
	}
	if (lerr != LEASE_OK) {
		lease_error(&r, lerr, pst);
		goto done;
	}
	if (prepare_packages(&r) == -1 || prepare_context(&r, &env) == -1) {
		lease_release(req, &r.lease, 0, 0);
		goto done;
	}
	run_code(&r, env);
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

	memset(&r, 0, sizeof(r));
	memset(&er, 0, sizeof(er));
	er.language = "python";
	r.req = req;
	r.er = &er;
	r.t0 = req->started_ms;
	ts_format(ts_now_ms(), r.started_at);
	outcome_init(&r.out, 1);
	if (ids_ulid("ex_", r.execution_id, sizeof(r.execution_id)) == -1)
		fatalx("no randomness");
	fail(&r, "rejected", req->error_code, "refused before it ran");
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
