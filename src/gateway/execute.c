/* POST /api/iris/execute: validating what the caller asks to run. */
#include <json-c/json.h>
#include <string.h>

#include "common/ids.h"
#include "gateway/config.h"
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

void
execute_post(struct request *req)
{
	struct exec_req er;

	if (execute_parse(req, &er) == -1)
		return;
	reply_error(req, 503, "unavailable", NULL,
	    "no sandbox provider is configured");
}
