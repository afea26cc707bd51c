/* GET /api/iris/health: is the gateway able to serve?  No key needed. */
#include <json-c/json.h>

#include "gateway/config.h"
#include "gateway/e2b.h"
#include "gateway/handlers.h"
#include "gateway/reply.h"
#include "gateway/request.h"
#include "gateway/store.h"

void
health_get(struct request *req)
{
	struct json_object *obj, *checks;
	int db_ok = store_ping(req->store) == STORE_OK;
	int sb_ok = req->cfg->e2b_api_url != NULL &&
	    e2b_health(req->e2b) == E2B_OK;

	checks = json_object_new_object();
	json_object_object_add(checks, "database",
	    json_object_new_string(db_ok ? "ok" : "failed"));
	json_object_object_add(checks, "sandboxProvider",
	    json_object_new_string(sb_ok ? "ok" : req->cfg->e2b_api_url ?
	    "failed" : "unconfigured"));
	obj = json_object_new_object();
	json_object_object_add(obj, "status",
	    json_object_new_string(db_ok && sb_ok ? "ok" : "degraded"));
	json_object_object_add(obj, "version",
	    json_object_new_string(PACKAGE_VERSION));
	json_object_object_add(obj, "checks", checks);
	reply_json(req, db_ok && sb_ok ? 200 : 503, obj);
	if (!db_ok || !sb_ok)
		req->error_code = "unavailable";
}
