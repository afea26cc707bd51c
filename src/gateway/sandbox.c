/* /api/iris/sandbox: the key's project's sandboxes. */
#include <json-c/json.h>
#include <string.h>

#include "gateway/handlers.h"
#include "gateway/reply.h"
#include "gateway/request.h"
#include "gateway/router.h"
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
