/*
 * GET /api/iris/metrics and GET /api/iris/executions: the key's project's
 * telemetry, computed by SQL over the executions and sandboxes tables.
 */
#include <errno.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/ids.h"
#include "common/timestamp.h"
#include "gateway/handlers.h"
#include "gateway/reply.h"
#include "gateway/request.h"
#include "gateway/router.h"
#include "gateway/store.h"

#define DAY_MS		(24LL * 3600 * 1000)
#define LIMIT_DEFAULT	50
#define LIMIT_MAX	200

static struct json_object *
opt_string(const char *s)
{
	return s ? json_object_new_string(s) : NULL;
}

static struct json_object *
opt_long(long v)
{
	return v < 0 ? NULL : json_object_new_int64(v);
}

static void
db_down(struct request *req)
{
	reply_error(req, 503, "unavailable", NULL,
	    "the database is not answering; try again shortly");
}

static int
add_error_type(void *arg, const char *name, long count)
{
	struct json_object *o = json_object_new_object();

	json_object_object_add(o, "name", json_object_new_string(name));
	json_object_object_add(o, "count", json_object_new_int64(count));
	return json_object_array_add(arg, o) == 0 ? 0 : -1;
}

void
metrics_get(struct request *req)
{
	struct json_object *o, *ex, *lat, *sb, *types;
	struct store_metrics m;
	const char *since_q = router_query(req, "since");
	long ran;
	char since[TS_ISO_LEN];
	int64_t ms;

	if (since_q == NULL)
		ms = ts_now_ms() - DAY_MS;
	else if (ts_parse(since_q, &ms) == -1) {
		reply_error(req, 400, "invalid_request", "since", "since must "
		    "be an ISO 8601 UTC time, e.g. 2026-11-22T03:04:05.123Z or "
		    "2026-11-22");
		return;
	}
	ts_format(ms, since);
	types = json_object_new_array();
	if (store_metrics(req->store, req->project_id, since, &m,
	    add_error_type, types) != STORE_OK) {
		json_object_put(types);
		db_down(req);
		return;
	}
	ex = json_object_new_object();
	json_object_object_add(ex, "total", json_object_new_int64(m.total));
	json_object_object_add(ex, "succeeded",
	    json_object_new_int64(m.succeeded));
	json_object_object_add(ex, "failed", json_object_new_int64(m.failed));
	json_object_object_add(ex, "timedOut",
	    json_object_new_int64(m.timed_out));
	lat = json_object_new_object();
	json_object_object_add(lat, "p50", opt_long(m.p50));
	json_object_object_add(lat, "p95", opt_long(m.p95));
	json_object_object_add(lat, "p99", opt_long(m.p99));
	sb = json_object_new_object();
	json_object_object_add(sb, "live", json_object_new_int64(m.live));
	json_object_object_add(sb, "created", json_object_new_int64(m.created));
	o = json_object_new_object();
	json_object_object_add(o, "success", json_object_new_boolean(1));
	json_object_object_add(o, "projectId",
	    json_object_new_string(req->project_id));
	json_object_object_add(o, "since", json_object_new_string(since));
	json_object_object_add(o, "executions", ex);
	/* As sql/002_views.sql: the share of code that ran to its end. */
	ran = m.succeeded + m.errors + m.timed_out;
	json_object_object_add(o, "successRate", ran > 0 ?
	    json_object_new_double((double)m.succeeded / (double)ran) : NULL);
	json_object_object_add(o, "executionTimeMs", lat);
	json_object_object_add(o, "sandboxes", sb);
	json_object_object_add(o, "errorTypes", types);
	reply_json(req, 200, o);
}

struct page {
	struct json_object	*list;
	char			 last[IDS_ULID_BUFSZ];
	int			 n;
};

static int
add_execution(void *arg, const struct store_exec_item *it)
{
	struct page *p = arg;
	struct json_object *o = json_object_new_object();

	json_object_object_add(o, "executionId",
	    json_object_new_string(it->execution_id));
	json_object_object_add(o, "createdAt",
	    json_object_new_string(it->created_at));
	json_object_object_add(o, "sessionId", opt_string(it->session_id));
	json_object_object_add(o, "sandboxId", opt_string(it->sandbox_id));
	json_object_object_add(o, "language", opt_string(it->language));
	json_object_object_add(o, "status", opt_string(it->status));
	json_object_object_add(o, "errorName", opt_string(it->error_name));
	json_object_object_add(o, "durationMs", opt_long(it->duration_ms));
	json_object_object_add(o, "codeBytes", opt_long(it->code_bytes));
	snprintf(p->last, sizeof(p->last), "%s", it->execution_id);
	p->n++;
	return json_object_array_add(p->list, o) == 0 ? 0 : -1;
}

/* Checks the list's parameters.  Returns 0, or -1 after answering. */
static int
list_params(struct request *req, long *limit)
{
	static const char *const statuses[] = {
		"ok", "error", "timeout", "upstream_error", "rejected",
	};
	const char *q;
	char *end;
	size_t i;

	*limit = LIMIT_DEFAULT;
	if ((q = router_query(req, "limit")) != NULL) {
		errno = 0;
		*limit = strtol(q, &end, 10);
		if (errno || end == q || *end != '\0' || *limit < 1 ||
		    *limit > LIMIT_MAX) {
			reply_error(req, 400, "invalid_request", "limit",
			    "limit must be an integer from 1 to %d", LIMIT_MAX);
			return -1;
		}
	}
	if ((q = router_query(req, "before")) != NULL &&
	    (strncmp(q, "ex_", 3) != 0 || !ids_valid(q, strlen(q)))) {
		reply_error(req, 400, "invalid_request", "before", "before must "
		    "be an executionId (ex_...) from an earlier page");
		return -1;
	}
	if ((q = router_query(req, "sessionId")) != NULL &&
	    !ids_valid(q, strlen(q))) {
		reply_error(req, 400, "invalid_request", "sessionId",
		    "sessionId must be 1-128 characters of A-Z a-z 0-9 . _ : -");
		return -1;
	}
	if ((q = router_query(req, "status")) != NULL) {
		for (i = 0; i < sizeof(statuses) / sizeof(statuses[0]); i++)
			if (strcmp(q, statuses[i]) == 0)
				return 0;
		reply_error(req, 400, "invalid_request", "status", "status must "
		    "be one of ok, error, timeout, upstream_error, rejected");
		return -1;
	}
	return 0;
}

void
executions_get(struct request *req)
{
	struct page p = { .n = 0 };
	struct json_object *o;
	enum store_status st;
	long limit;

	if (list_params(req, &limit) == -1)
		return;
	p.list = json_object_new_array();
	/* One more than asked: whether there is a next page. */
	st = store_executions(req->store, req->project_id,
	    router_query(req, "before"), router_query(req, "sessionId"),
	    router_query(req, "status"), (int)limit + 1, add_execution, &p);
	if (st != STORE_OK) {
		json_object_put(p.list);
		if (st == STORE_NOT_FOUND)
			reply_error(req, 400, "invalid_request", "before",
			    "before names no execution of this project");
		else
			db_down(req);
		return;
	}
	if (p.n > limit) {
		json_object_array_del_idx(p.list, (size_t)limit, 1);
		snprintf(p.last, sizeof(p.last), "%s", json_object_get_string(
		    json_object_object_get(json_object_array_get_idx(p.list,
		    (size_t)limit - 1), "executionId")));
	}
	o = json_object_new_object();
	json_object_object_add(o, "success", json_object_new_boolean(1));
	json_object_object_add(o, "executions", p.list);
	json_object_object_add(o, "next", p.n > limit ?
	    json_object_new_string(p.last) : NULL);
	reply_json(req, 200, o);
}
