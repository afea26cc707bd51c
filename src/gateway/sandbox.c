/* /api/iris/sandbox: the key's project's sandboxes. */
#include <json-c/json.h>
#include <string.h>

#include "common/timestamp.h"
#include "gateway/config.h"
#include "gateway/e2b.h"
#include "gateway/execute.h"
#include "gateway/handlers.h"
#include "gateway/lease.h"
#include "gateway/reply.h"
#include "gateway/request.h"
#include "gateway/router.h"
#include "gateway/runtimes.h"
#include "gateway/store.h"

static struct json_object *
opt_string(const char *s)
{
	return *s ? json_object_new_string(s) : NULL;
}

/* The API's <Sandbox> object for a row. */
static struct json_object *
sandbox_json(const struct store_sandbox *sb)
{
	struct json_object *o = json_object_new_object();

	json_object_object_add(o, "sandboxId",
	    json_object_new_string(sb->sandbox_id));
	json_object_object_add(o, "projectId",
	    json_object_new_string(sb->project_id));
	json_object_object_add(o, "sessionId", opt_string(sb->session_id));
	json_object_object_add(o, "provider",
	    json_object_new_string(sb->provider));
	json_object_object_add(o, "status",
	    json_object_new_string(sb->status));
	json_object_object_add(o, "createdAt",
	    json_object_new_string(sb->created_at));
	json_object_object_add(o, "lastUsedAt",
	    json_object_new_string(sb->last_used_at));
	json_object_object_add(o, "expiresAt",
	    json_object_new_string(sb->expires_at));
	json_object_object_add(o, "executions",
	    json_object_new_int64(sb->executions));
	return o;
}

static int
add_to_list(void *arg, const struct store_sandbox *sb)
{
	return json_object_array_add(arg, sandbox_json(sb)) == 0 ? 0 : -1;
}

static struct json_object *
success(void)
{
	struct json_object *o = json_object_new_object();

	json_object_object_add(o, "success", json_object_new_boolean(1));
	return o;
}

static void
get_one(struct request *req, const char *id)
{
	struct store_sandbox sb;
	struct json_object *o;

	if (!ids_valid(id, strlen(id))) {
		reply_error(req, 400, "invalid_request", "sandboxId",
		    "sandboxId must be 1-128 characters of A-Z a-z 0-9 . _ : -");
		return;
	}
	switch (store_sandbox_get(req->store, req->project_id, id, &sb)) {
	case STORE_OK:
		o = success();
		json_object_object_add(o, "sandbox", sandbox_json(&sb));
		reply_json(req, 200, o);
		return;
	case STORE_NOT_FOUND:
		reply_error(req, 404, "sandbox_not_found", "sandboxId",
		    "no sandbox with that id in this project");
		return;
	default:
		reply_error(req, 503, "unavailable", NULL,
		    "the database is not answering; try again shortly");
	}
}

void
sandbox_get(struct request *req)
{
	struct json_object *o, *list;
	const char *id = router_query(req, "sandboxId");

	if (id != NULL) {
		get_one(req, id);
		return;
	}
	list = json_object_new_array();
	if (store_sandbox_list(req->store, req->project_id, add_to_list,
	    list) != STORE_OK) {
		json_object_put(list);
		reply_error(req, 503, "unavailable", NULL,
		    "the database is not answering; try again shortly");
		return;
	}
	o = success();
	json_object_object_add(o, "sandboxes", list);
	reply_json(req, 200, o);
}

/* The lease's errors as answers (the row's id is the field at fault). */
static void
lease_failed(struct request *req, enum lease_err err, enum e2b_status pst,
    const struct lease *l)
{
	switch (err) {
	case LEASE_NOT_FOUND:
		reply_error(req, 404, "sandbox_not_found", "sandboxId",
		    "no live sandbox with that id in this project");
		break;
	case LEASE_LIMIT:
		reply_header(req, "Retry-After", "%d", l ? l->retry_after_s : 1);
		reply_error(req, 429, "sandbox_limit", NULL,
		    LEASE_LIMIT_MESSAGE, req->cfg->project_sandboxes);
		break;
	case LEASE_EVICTED:
		reply_error(req, 409, "session_evicted", "sessionId", "%s",
		    LEASE_EVICTED_MESSAGE);
		break;
	case LEASE_DB:
		reply_error(req, 503, "unavailable", NULL,
		    "the database is not answering; try again shortly");
		break;
	default:
		reply_error(req, pst == E2B_TIMEOUT ? 504 : pst ==
		    E2B_UNREACHABLE || pst == E2B_LIMIT ? 503 : 502,
		    pst == E2B_TIMEOUT ? "upstream_timeout" : pst ==
		    E2B_UNREACHABLE || pst == E2B_LIMIT ? "unavailable" :
		    "upstream_error", NULL, "the sandbox provider: %s",
		    e2b_strerror(pst));
	}
}

/* POST's body: sessionId, language, timeout (all optional). */
static int
parse_create(struct request *req, const char **session, const char **lang,
    long *timeout)
{
	*session = NULL;
	*lang = "python";
	*timeout = req->cfg->idle_timeout_s;
	if (req->body == NULL)
		return 0;
	json_object_object_foreach(req->body, name, val) {
		if (val == NULL)
			continue;
		if (strcmp(name, "sessionId") == 0) {
			if (!json_object_is_type(val, json_type_string) ||
			    !ids_valid(json_object_get_string(val),
			    (size_t)json_object_get_string_len(val)))
				goto bad_session;
			*session = json_object_get_string(val);
		} else if (strcmp(name, "language") == 0) {
			const char *l = json_object_is_type(val,
			    json_type_string) ? runtimes_language(
			    json_object_get_string(val),
			    (size_t)json_object_get_string_len(val)) : NULL;

			if (l == NULL) {
				reply_error(req, 400, "invalid_request",
				    "language", "language must be one of "
				    RUNTIMES_LANGUAGES);
				return -1;
			}
			*lang = l;
		} else if (strcmp(name, "timeout") == 0) {
			if (!json_object_is_type(val, json_type_int) ||
			    (*timeout = (long)json_object_get_int64(val)) < 1 ||
			    *timeout > 3600) {
				reply_error(req, 400, "invalid_request",
				    "timeout", "timeout must be an integer from "
				    "1 to 3600 (idle seconds)");
				return -1;
			}
		} else {
			reply_error(req, 400, "invalid_request", name,
			    "unknown field '%.64s'", name);
			return -1;
		}
	}
	return 0;
bad_session:
	reply_error(req, 400, "invalid_request", "sessionId",
	    "sessionId must be a string of 1-128 characters of "
	    "A-Z a-z 0-9 . _ : -");
	return -1;
}

void
sandbox_post(struct request *req)
{
	const char *session, *lang;
	struct json_object *o;
	struct lease l;
	enum lease_err err;
	enum e2b_status pst;
	long timeout;

	if (parse_create(req, &session, &lang, &timeout) == -1)
		return;
	if (req->cfg->e2b_api_url == NULL) {
		reply_error(req, 503, "unavailable", NULL,
		    "no sandbox provider is configured (E2B_API_URL)");
		return;
	}
	if ((err = lease_acquire(req, NULL, session, lang, timeout, 0,
	    req->cfg->admission_wait_s, 1, &l, &pst)) != LEASE_OK) {
		lease_failed(req, err, pst, &l);
		return;
	}
	o = success();
	json_object_object_add(o, "sandbox", sandbox_json(&l.row));
	reply_json(req, l.created ? 201 : 200, o);
}

struct ids {
	char	(*id)[IDS_MAX_LEN + 1];
	size_t	 n, cap;
};

static int
collect_id(void *arg, const struct store_sandbox *sb)
{
	struct ids *ids = arg;

	if (ids->n == ids->cap)
		return 0;	/* the rest on the next call */
	memcpy(ids->id[ids->n++], sb->sandbox_id, IDS_MAX_LEN + 1);
	return 0;
}

void
sandbox_delete(struct request *req)
{
	static _Thread_local char idbuf[256][IDS_MAX_LEN + 1];
	struct ids ids = { idbuf, 0, 256 };
	const char *id = router_query(req, "sandboxId");
	const char *all = router_query(req, "all");
	struct json_object *o, *closed;
	enum lease_err err;
	size_t i;

	if ((id == NULL) == (all == NULL)) {
		reply_error(req, 400, "invalid_request", id ? "all" :
		    "sandboxId", "give either sandboxId=ID or all=true");
		return;
	}
	if (all && strcmp(all, "true") != 0) {
		reply_error(req, 400, "invalid_request", "all",
		    "all must be true");
		return;
	}
	if (id && !ids_valid(id, strlen(id))) {
		reply_error(req, 400, "invalid_request", "sandboxId",
		    "sandboxId must be 1-128 characters of A-Z a-z 0-9 . _ : -");
		return;
	}
	closed = json_object_new_array();
	if (id) {
		if ((err = lease_close(req, req->project_id, id)) != LEASE_OK) {
			json_object_put(closed);
			lease_failed(req, err, E2B_UNREACHABLE, NULL);
			return;
		}
		json_object_array_add(closed, json_object_new_string(id));
	} else {
		if (store_sandbox_list(req->store, req->project_id, collect_id,
		    &ids) != STORE_OK) {
			json_object_put(closed);
			reply_error(req, 503, "unavailable", NULL,
			    "the database is not answering; try again shortly");
			return;
		}
		for (i = 0; i < ids.n; i++)
			if (lease_close(req, req->project_id, ids.id[i]) ==
			    LEASE_OK)
				json_object_array_add(closed,
				    json_object_new_string(ids.id[i]));
	}
	o = success();
	json_object_object_add(o, "closed", closed);
	reply_json(req, 200, o);
}
