/*
 * The E2B-compatible API: control plane and sandbox plane, answered as
 * E2B answers (status codes, JSON shapes, error texts), so that E2B's own
 * SDKs and the gateway's E2B client work against it unchanged.
 */
#include <errno.h>
#include <json-c/json.h>
#include <stddef.h>
#include <stdint.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "common/crypto.h"
#include "common/ids.h"
#include "common/log.h"
#include "common/timestamp.h"
#include "sandboxd/api.h"
#include "sandboxd/files.h"
#include "sandboxd/http.h"
#include "sandboxd/kernel.h"
#include "sandboxd/route.h"
#include "sandboxd/sandbox.h"

#define CLIENT_ID	"6532622b"	/* E2B's constant placeholder */
#define ENVD_VERSION	"0.2.0"
#define CODE_PORT	49999
#define ENVD_PORT	49983
#define DEFAULT_TIMEOUT	15		/* E2B's when create omits it */
#define CPU_COUNT	2		/* what a sandbox is said to have */
#define SCRUB_WAIT_MS	3000		/* for the owner's sandbox in a scrub: far
					 * less than a start costs */

struct api {
	const struct api_config	*cfg;
	unsigned char		 key_hash[CRYPTO_SHA256_LEN];
};

/* What a route's handler is given. */
struct route_call {
	struct api		*api;
	struct http_req		*req;
	struct sandbox		*sb;	/* the routed sandbox, a reference */
	int			 kept;	/* the handler took sb's reference */
	struct route_params	 params;
};

/* Which routes need what before their handler (struct route's flags). */
#define ROUTE_PUBLIC	0x1	/* no X-API-Key */
#define ROUTE_SANDBOX	0x2	/* params.v[0] names a sandbox: looked up */

struct api *
api_new(const struct api_config *cfg)
{
	struct api *api;

	if ((api = calloc(1, sizeof(*api))) == NULL)
		return NULL;
	api->cfg = cfg;
	crypto_sha256(cfg->api_key, strlen(cfg->api_key), api->key_hash);
	return api;
}

void
api_free(struct api *api)
{
	if (api != NULL)
		crypto_wipe(api->key_hash, sizeof(api->key_hash));
	free(api);
}

/* --- answers ------------------------------------------------------------- */

/* {"code": code, "message": "..."}: the error shape of E2B's API and
 * envd (code: the status) and of Connect (code: its name). */
static void __attribute__((format(printf, 4, 0)))
error_answer(struct http_req *req, int status, struct json_object *code,
    const char *fmt, va_list ap)
{
	struct json_object *o = json_object_new_object();
	char msg[768];

	vsnprintf(msg, sizeof(msg), fmt, ap);
	json_object_object_add(o, "code", code);
	json_object_object_add(o, "message", json_object_new_string(msg));
	http_reply_json(req, status, o);
}

/* The control plane's error shape: {"code": N, "message": "..."}. */
static void __attribute__((format(printf, 3, 4)))
api_error(struct http_req *req, int status, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	error_answer(req, status, json_object_new_int(status), fmt, ap);
	va_end(ap);
}

/* The code interpreter answers its errors as plain text. */
static void
text_error(struct http_req *req, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
text_error(struct http_req *req, int status, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (n < 0)
		n = 0;
	if ((size_t)n >= sizeof(msg))
		n = sizeof(msg) - 1;
	http_reply(req, status, "text/plain; charset=utf-8", msg, (size_t)n);
}

/* E2B's proxy shape for a sandbox it cannot reach. */
static void
proxy_error(struct http_req *req, const char *id, int port)
{
	struct json_object *o = json_object_new_object();

	json_object_object_add(o, "sandboxId", json_object_new_string(id));
	json_object_object_add(o, "message", json_object_new_string(port ?
	    "The sandbox is running but port is not open" :
	    "The sandbox was not found"));
	if (port)
		json_object_object_add(o, "port", json_object_new_int(port));
	json_object_object_add(o, "code", json_object_new_int(502));
	http_reply_json(req, 502, o);
}

static void
not_found(struct http_req *req, const char *id)
{
	api_error(req, 404, "Sandbox \"%.64s\" doesn't exist or you don't have "
	    "access to it", id);
}

/* --- request bodies -------------------------------------------------------- */

/* Parses the body as a JSON object (an empty body is {}); NULL if not. */
static struct json_object *
body_object(struct http_req *req)
{
	struct json_tokener *tok;
	struct json_object *obj;
	const char *text;
	size_t len;

	text = http_body(req, &len);
	if (len == 0)
		return json_object_new_object();
	if ((tok = json_tokener_new_ex(64)) == NULL)
		return NULL;
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT |
	    JSON_TOKENER_VALIDATE_UTF8);
	obj = json_tokener_parse_ex(tok, text, (int)len);
	if (json_tokener_get_error(tok) != json_tokener_success ||
	    !json_object_is_type(obj, json_type_object)) {
		json_object_put(obj);
		obj = NULL;
	}
	json_tokener_free(tok);
	return obj;
}

/* An optional member: 1 and *out if present and not null. */
static int
member(struct json_object *o, const char *name, struct json_object **out)
{
	return json_object_object_get_ex(o, name, out) && *out != NULL;
}

/* 1 if v is an object whose values are all strings (no NUL). */
static int
string_map(struct json_object *v)
{
	if (!json_object_is_type(v, json_type_object))
		return 0;
	json_object_object_foreach(v, k, val) {
		(void)k;
		if (!json_object_is_type(val, json_type_string) ||
		    strlen(json_object_get_string(val)) !=
		    (size_t)json_object_get_string_len(val))
			return 0;
	}
	return 1;
}

/* --- control plane -------------------------------------------------------- */

static int
authorized(const struct api *api, struct http_req *req)
{
	unsigned char h[CRYPTO_SHA256_LEN];
	const char *key = http_header(req, "X-API-Key");
	int ok;

	if (key == NULL)
		return 0;
	crypto_sha256(key, strlen(key), h);
	ok = crypto_equal(h, api->key_hash, sizeof(h));
	crypto_wipe(h, sizeof(h));
	return ok;
}

static struct json_object *
iso(int64_t ms)
{
	char buf[TS_ISO_LEN];

	ts_format(ms, buf);
	return json_object_new_string(buf);
}

/* The fields every sandbox answer shares. */
static struct json_object *
sandbox_json(const struct sandbox *sb, int detail, int with_token)
{
	const struct sandbox_limits *lim = sandbox_limits();
	struct json_object *o = json_object_new_object();
	const struct json_object *md = sandbox_metadata(sb);

	json_object_object_add(o, "templateID",
	    json_object_new_string(sandbox_template(sb)));
	json_object_object_add(o, "alias",
	    json_object_new_string(sandbox_template(sb)));
	json_object_object_add(o, "sandboxID",
	    json_object_new_string(sandbox_id(sb)));
	json_object_object_add(o, "clientID",
	    json_object_new_string(CLIENT_ID));
	json_object_object_add(o, "envdVersion",
	    json_object_new_string(ENVD_VERSION));
	if (with_token)
		json_object_object_add(o, "envdAccessToken",
		    json_object_new_string(sandbox_token(sb)));
	if (!detail)
		return o;
	json_object_object_add(o, "startedAt", iso(sandbox_started_ms(sb)));
	json_object_object_add(o, "endAt", iso(sandbox_end_ms(sb)));
	json_object_object_add(o, "cpuCount", json_object_new_int(CPU_COUNT));
	json_object_object_add(o, "memoryMB",
	    json_object_new_int64(lim->memory_mb));
	json_object_object_add(o, "diskSizeMB",
	    json_object_new_int64(lim->home_mb));
	json_object_object_add(o, "state", json_object_new_string("running"));
	json_object_object_add(o, "metadata", md ?
	    json_object_get((struct json_object *)md) :
	    json_object_new_object());
	return o;
}

static const char *
template_known(const char *t)
{
	static const char *const names[] = {
		"code-interpreter-v1", "code-interpreter", "base",
	};
	size_t i;

	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strcmp(t, names[i]) == 0)
			return i < 2 ? "code-interpreter-v1" : "base";
	return NULL;
}

static int
parse_create(struct http_req *req, struct json_object *body,
    const char **template_id, long *timeout, struct json_object **metadata,
    struct json_object **env_vars, int *secure)
{
	struct json_object *v;
	int64_t t;

	if (!member(body, "templateID", &v) ||
	    !json_object_is_type(v, json_type_string)) {
		api_error(req, 400, "validation error: templateID is required");
		return -1;
	}
	if ((*template_id = template_known(json_object_get_string(v))) ==
	    NULL) {
		api_error(req, 404, "template '%.64s' not found",
		    json_object_get_string(v));
		return -1;
	}
	*timeout = DEFAULT_TIMEOUT;
	if (member(body, "timeout", &v)) {
		if (!json_object_is_type(v, json_type_int)) {
			api_error(req, 400, "validation error: timeout must be "
			    "an integer");
			return -1;
		}
		if ((t = json_object_get_int64(v)) <= 0) {
			api_error(req, 400, "Timeout must be greater than 0");
			return -1;
		}
		*timeout = t > 86400 * 30 ? 86400 * 30 : (long)t;
	}
	*metadata = *env_vars = NULL;
	if (member(body, "metadata", metadata) && !string_map(*metadata)) {
		api_error(req, 400, "validation error: metadata must map "
		    "strings to strings");
		return -1;
	}
	if (member(body, "envVars", env_vars) && !string_map(*env_vars)) {
		api_error(req, 400, "validation error: envVars must map "
		    "strings to strings");
		return -1;
	}
	*secure = member(body, "secure", &v) && json_object_get_boolean(v);
	return 0;
}

/*
 * The sandbox for a create: its owner's recycled one, a pooled one, or a
 * new one (group: the owner, "" for none).  NULL with *err if none.
 */
static struct sandbox *
obtain(const struct api_config *cfg, const char *template_id,
    const char *group, struct json_object *env_vars, enum sandbox_err *err)
{
	int preloaded = strcmp(template_id, "code-interpreter-v1") == 0;
	struct sandbox *sb = NULL;
	int recycled = 0;

	/* At the cap: refused before a recycled one is taken (and lost). */
	if (sandbox_count() >= cfg->max_sandboxes) {
		*err = SANDBOX_LIMIT;
		return NULL;
	}
	/* Pooled and recycled sandboxes are preloaded, without env vars. */
	if (preloaded && env_vars == NULL) {
		if ((sb = sandbox_pool_take(template_id, group, SCRUB_WAIT_MS,
		    &recycled)) != NULL)
			cfg->pool_wake();
		if (!recycled)	/* the pool is for what recycling misses */
			cfg->pool_demand(sb != NULL);
	}
	if (sb == NULL)
		sb = sandbox_start(template_id, preloaded, 0, env_vars, err);
	return sb;
}

/* POST /sandboxes */
static void
create_sandbox(struct route_call *c)
{
	const struct api_config *cfg = c->api->cfg;
	struct http_req *req = c->req;
	struct json_object *body, *metadata, *env_vars, *v;
	struct sandbox *sb = NULL;
	enum sandbox_err err = SANDBOX_OK;
	const char *template_id, *group = "";
	long timeout;
	int secure;

	if ((body = body_object(req)) == NULL) {
		api_error(req, 400, "validation error: the body must be a JSON "
		    "object");
		return;
	}
	if (parse_create(req, body, &template_id, &timeout, &metadata,
	    &env_vars, &secure) == -1)
		goto done;
	if (env_vars != NULL && json_object_object_length(env_vars) == 0)
		env_vars = NULL;
	/*
	 * Recycling group: the owner the gateway names in metadata
	 * (projectId).  A sandbox without one is never recycled: killed, it
	 * is gone with every process and file, as E2B's.
	 */
	if (metadata && json_object_object_get_ex(metadata, "projectId", &v))
		group = json_object_get_string(v);
	sb = obtain(cfg, template_id, group, env_vars, &err);
	if (sb != NULL && sandbox_claim(sb, (int)timeout, metadata ?
	    json_object_get(metadata) : NULL, group, secure, &err) == -1) {
		sandbox_kill(sb);
		sandbox_put(sb);
		sb = NULL;
	}
	if (sb == NULL && err == SANDBOX_LIMIT)
		api_error(req, 429, "you have reached the maximum number of "
		    "concurrent E2B sandboxes (%ld). If you need more, please "
		    "visit 'https://e2b.dev/docs/billing'", cfg->max_sandboxes);
	else if (sb == NULL)
		api_error(req, 500, "the sandbox could not be started");
	else {
		sandbox_set_timeout(sb, timeout);
		/* Listed from the start, started on first use. */
		if (kernel_context_defaults(sb) == -1)
			log_warnx("sandbox %s: its default contexts could not "
			    "be listed", sandbox_id(sb));
		http_reply_json(req, 201, sandbox_json(sb, 0, secure));
		sandbox_put(sb);
	}
done:
	json_object_put(body);
}

/* "<id>" or the legacy "<id>-<clientID>". */
static void
path_id(const char *s, char *out, size_t outsz)
{
	size_t n = strcspn(s, "-/");

	if (n >= outsz)
		n = outsz - 1;
	memcpy(out, s, n);
	out[n] = '\0';
}

/* A sandbox a listing may give, with what it is ordered by. */
struct listed {
	int64_t			 started_ms;
	char			 id[64];
	struct json_object	*json;
};

struct list_args {
	struct listed		*items;
	size_t			 n;
	size_t			 cap;
	struct json_object	*filter;	/* metadata key=value pairs */
	const char		*template_id;	/* NULL: any */
	int64_t			 after_ms;	/* startedAfter; INT64_MIN: any */
};

static int
metadata_matches(const struct sandbox *sb, struct json_object *filter)
{
	const struct json_object *md = sandbox_metadata(sb);
	struct json_object *v;

	if (filter == NULL)
		return 1;
	json_object_object_foreach(filter, k, want) {
		if (md == NULL || !json_object_object_get_ex(
		    (struct json_object *)md, k, &v) ||
		    strcmp(json_object_get_string(v),
		    json_object_get_string(want)) != 0)
			return 0;
	}
	return 1;
}

static void
add_listed(struct sandbox *sb, void *arg)
{
	struct list_args *a = arg;
	struct listed *grown;

	if (!metadata_matches(sb, a->filter) || sandbox_started_ms(sb) <
	    a->after_ms || (a->template_id != NULL &&
	    strcmp(sandbox_template(sb), a->template_id) != 0))
		return;
	if (a->n == a->cap) {
		a->cap = a->cap ? 2 * a->cap : 16;
		if ((grown = realloc(a->items, a->cap * sizeof(*grown))) == NULL)
			return;
		a->items = grown;
	}
	a->items[a->n].started_ms = sandbox_started_ms(sb);
	snprintf(a->items[a->n].id, sizeof(a->items[a->n].id), "%s",
	    sandbox_id(sb));
	a->items[a->n++].json = sandbox_json(sb, 1, 0);
}

/* Oldest first, then by id: a total order, so a cursor is exact. */
static int
listed_cmp(const struct listed *x, const struct listed *y)
{
	if (x->started_ms != y->started_ms)
		return x->started_ms < y->started_ms ? -1 : 1;
	return strcmp(x->id, y->id);
}

static int
listed_asc(const void *a, const void *b)
{
	return listed_cmp(a, b);
}

static int
listed_desc(const void *a, const void *b)
{
	return listed_cmp(b, a);
}

/* Parses "k=v&k2=v2" (already URL-decoded once by the server). */
static struct json_object *
metadata_filter(const char *q)
{
	struct json_object *f = json_object_new_object();
	char pair[512], *eq;
	size_t n;

	while (q && *q) {
		n = strcspn(q, "&");
		snprintf(pair, sizeof(pair), "%.*s", (int)n, q);
		if ((eq = strchr(pair, '=')) == NULL) {
			json_object_put(f);
			return NULL;
		}
		*eq = '\0';
		/* The SDKs encode each key and value as well (JS:
		 * encodeURIComponent) before the query's own encoding. */
		http_unescape(pair);
		http_unescape(eq + 1);
		json_object_object_add(f, pair, json_object_new_string(eq + 1));
		q += n + (q[n] == '&');
	}
	return f;
}

/* A page's cursor, "<startedAt ms>.<id>" of its last sandbox: opaque to
 * callers, exact here (listed_cmp is a total order). */
static int
parse_cursor(const char *tok, struct listed *out)
{
	char *end;

	errno = 0;
	out->started_ms = strtoll(tok, &end, 10);
	if (errno != 0 || end == tok || *end != '.' ||
	    !ids_sandbox_valid(end + 1, SANDBOX_ID_LEN))
		return -1;
	snprintf(out->id, sizeof(out->id), "%s", end + 1);
	return 0;
}

/*
 * GET /sandboxes and /v2/sandboxes: the live sandboxes matching metadata
 * ("k=v&k2=v2"), template and startedAfter, ordered by start (order asc
 * or desc, E2B's default), limit a page (1..100, default 100), the next
 * page from nextToken; X-Next-Token when more remain, X-Total-Running.
 * state: sandboxes here are always running (a paused one is listed as
 * such only once pause exists).
 */
static void
list_sandboxes(struct route_call *c)
{
	struct http_req *req = c->req;
	struct list_args a = { .after_ms = INT64_MIN };
	const char *state = http_query(req, "state");
	const char *limit = http_query(req, "limit");
	const char *md = http_query(req, "metadata");
	const char *order = http_query(req, "order");
	const char *after = http_query(req, "startedAfter");
	const char *token = http_query(req, "nextToken");
	int (*cmp)(const void *, const void *) = listed_desc;
	struct json_object *page;
	struct listed cursor;
	char buf[96];
	long n = 100;
	size_t i, first = 0;
	char *end;

	if (limit != NULL && ((n = strtol(limit, &end, 10)) < 1 || n > 100 ||
	    *end != '\0' || end == limit)) {
		api_error(req, 400, "limit must be from 1 to 100");
		return;
	}
	if (order != NULL && strcmp(order, "asc") != 0 &&
	    strcmp(order, "desc") != 0) {
		api_error(req, 400, "order must be asc or desc");
		return;
	}
	if (order != NULL && strcmp(order, "asc") == 0)
		cmp = listed_asc;
	if (after != NULL && ts_parse(after, &a.after_ms) == -1) {
		api_error(req, 400, "startedAfter must be an RFC 3339 time");
		return;
	}
	if (token != NULL && parse_cursor(token, &cursor) == -1) {
		api_error(req, 400, "nextToken is not one this API gave");
		return;
	}
	a.template_id = http_query(req, "template");
	if (md != NULL && (a.filter = metadata_filter(md)) == NULL) {
		api_error(req, 400, "metadata must be key=value pairs joined "
		    "by &");
		return;
	}
	if (state == NULL || strstr(state, "running") != NULL)
		sandbox_foreach(add_listed, &a);
	json_object_put(a.filter);
	if (a.n > 1)		/* (items is NULL when there are none) */
		qsort(a.items, a.n, sizeof(*a.items), cmp);
	if (token != NULL)
		while (first < a.n && cmp(&a.items[first], &cursor) <= 0)
			first++;
	page = json_object_new_array();
	for (i = first; i < a.n; i++) {
		if (i < first + (size_t)n)
			json_object_array_add(page, a.items[i].json);
		else
			json_object_put(a.items[i].json);
	}
	for (i = 0; i < first; i++)
		json_object_put(a.items[i].json);
	if (a.n > first + (size_t)n) {
		snprintf(buf, sizeof(buf), "%lld.%s",
		    (long long)a.items[first + (size_t)n - 1].started_ms,
		    a.items[first + (size_t)n - 1].id);
		http_add_header(req, "X-Next-Token", buf);
	}
	free(a.items);
	snprintf(buf, sizeof(buf), "%ld", sandbox_count());
	http_add_header(req, "X-Total-Running", buf);
	http_reply_json(req, 200, page);
}

/* Reads an integer member of the body; -1 (answered) if it is bad. */
static int
int_member(struct http_req *req, const char *name, int required, long *out)
{
	struct json_object *body, *v;
	int rc = 0;

	if ((body = body_object(req)) == NULL) {
		api_error(req, 400, "validation error: the body must be a JSON "
		    "object");
		return -1;
	}
	if (!member(body, name, &v)) {
		if (required) {
			api_error(req, 400, "validation error: %s is required",
			    name);
			rc = -1;
		}
	} else if (!json_object_is_type(v, json_type_int)) {
		api_error(req, 400, "validation error: %s must be an integer",
		    name);
		rc = -1;
	} else
		*out = (long)json_object_get_int64(v);
	json_object_put(body);
	return rc;
}

/* GET /sandboxes/{id} */
static void
sandbox_get(struct route_call *c)
{
	http_reply_json(c->req, 200, sandbox_json(c->sb, 1, 0));
}

/* DELETE /sandboxes/{id}: gone for its caller at once; scrubbed for its
 * group's next create if it can be, else killed. */
static void
sandbox_delete(struct route_call *c)
{
	sandbox_end(c->sb, c->api->cfg->recycle);
	http_reply_json(c->req, 204, NULL);
}

/* POST /sandboxes/{id}/timeout */
static void
sandbox_timeout(struct route_call *c)
{
	long n = 0;

	if (int_member(c->req, "timeout", 1, &n) == 0) {
		sandbox_set_timeout(c->sb, n);
		http_reply_json(c->req, 204, NULL);
	}
}

/* POST /sandboxes/{id}/refreshes */
static void
sandbox_refresh(struct route_call *c)
{
	long n = DEFAULT_TIMEOUT;

	if (int_member(c->req, "duration", 0, &n) == 0) {
		sandbox_extend(c->sb, n < DEFAULT_TIMEOUT ? DEFAULT_TIMEOUT : n);
		http_reply_json(c->req, 204, NULL);
	}
}

/* One SandboxMetric of sb, sampled now; NULL if it is going. */
static struct json_object *
metric_json(struct sandbox *sb, int64_t now)
{
	struct sandbox_metrics m;
	struct json_object *o;

	if (sandbox_metrics(sb, CPU_COUNT, &m) == -1)
		return NULL;
	o = json_object_new_object();
	json_object_object_add(o, "timestamp", iso(now));
	json_object_object_add(o, "timestampUnix", json_object_new_int64(
	    now / 1000));
	json_object_object_add(o, "cpuCount", json_object_new_int(CPU_COUNT));
	json_object_object_add(o, "cpuUsedPct", json_object_new_double(
	    (double)(long long)(m.cpu_used_pct * 100 + 0.5) / 100));
	json_object_object_add(o, "memUsed", json_object_new_int64(m.mem_used));
	json_object_object_add(o, "memTotal", json_object_new_int64(
	    m.mem_total));
	json_object_object_add(o, "memCache", json_object_new_int64(
	    m.mem_cache));
	json_object_object_add(o, "diskUsed", json_object_new_int64(
	    m.disk_used));
	json_object_object_add(o, "diskTotal", json_object_new_int64(
	    m.disk_total));
	return o;
}

#define METRICS_IDS_MAX	100	/* sandboxes one metrics call may name */

/*
 * GET /sandboxes/metrics?sandbox_ids=a,b (E2B's SandboxesWithMetrics):
 * {"sandboxes": {"<id>": SandboxMetric}} of those of them that are live
 * (at most 100 named; others are left out).
 */
static void
sandboxes_metrics_get(struct route_call *c)
{
	const char *ids = http_query(c->req, "sandbox_ids"), *p;
	struct json_object *all, *o;
	struct sandbox *sb;
	int64_t now = ts_now_ms();
	char id[64];
	size_t n;
	int count = 0;

	if (ids == NULL || *ids == '\0') {
		api_error(c->req, 400, "sandbox_ids must list sandbox ids, "
		    "comma-separated");
		return;
	}
	all = json_object_new_object();
	for (p = ids; *p != '\0'; p += n + (p[n] == ',')) {
		n = strcspn(p, ",");
		if (++count > METRICS_IDS_MAX) {
			json_object_put(all);
			api_error(c->req, 400, "sandbox_ids names at most %d "
			    "sandboxes", METRICS_IDS_MAX);
			return;
		}
		if (n == 0 || n >= sizeof(id))
			continue;
		memcpy(id, p, n);
		id[n] = '\0';
		if (!ids_sandbox_valid(id, SANDBOX_ID_LEN) ||
		    (sb = sandbox_find(id)) == NULL)
			continue;
		if ((o = metric_json(sb, now)) != NULL)
			json_object_object_add(all, id, o);
		sandbox_put(sb);
	}
	o = json_object_new_object();
	json_object_object_add(o, "sandboxes", all);
	http_reply_json(c->req, 200, o);
}

/* A unix-seconds query parameter: 1 and *out if given, 0 if absent, -1
 * (answered 400) if not an integer. */
static int
seconds_param(struct http_req *req, const char *name, long long *out)
{
	const char *v = http_query(req, name);
	char *end;

	if (v == NULL)
		return 0;
	errno = 0;
	*out = strtoll(v, &end, 10);
	if (errno != 0 || end == v || *end != '\0') {
		api_error(req, 400, "%s must be unix seconds", name);
		return -1;
	}
	return 1;
}

#define METRICS_SLACK_S	5	/* the SDK rounds its times to seconds */

/*
 * GET /sandboxes/{id}/metrics[?start=S&end=E] (E2B's SandboxMetric): one
 * sample, now -- CPU since the previous call (or the start), memory of its
 * group, disk of its home -- if now is within [start, end] (E2B keeps a
 * series; no past samples are kept here, so a range that ended earlier
 * has none).
 */
static void
sandbox_metrics_get(struct route_call *c)
{
	struct json_object *o, *list;
	int64_t now = ts_now_ms();
	long long from = 0, to = 0;
	int has_from, has_to;

	if ((has_from = seconds_param(c->req, "start", &from)) == -1 ||
	    (has_to = seconds_param(c->req, "end", &to)) == -1)
		return;
	if ((has_from && from > now / 1000 + METRICS_SLACK_S) ||
	    (has_to && to < now / 1000 - METRICS_SLACK_S)) {
		http_reply_json(c->req, 200, json_object_new_array());
		return;
	}
	if ((o = metric_json(c->sb, now)) == NULL) {
		not_found(c->req, sandbox_id(c->sb));
		return;
	}
	list = json_object_new_array();
	json_object_array_add(list, o);
	http_reply_json(c->req, 200, list);
}

/* What E2B's API has and this provider does not (pause, snapshots, fork,
 * network rules, templates): E2B's error shape, saying so -- never a 404
 * that would tell the SDK the sandbox is gone. */
static void
unsupported(struct route_call *c)
{
	api_error(c->req, 501, "%s %.128s is not supported by this provider",
	    http_method(c->req), http_path(c->req));
}

/* POST /sandboxes/{id}/connect */
static void
sandbox_connect(struct route_call *c)
{
	long n = 300;		/* E2B's SDKs may send {}: their own default */

	if (int_member(c->req, "timeout", 0, &n) == 0) {
		sandbox_extend(c->sb, n);
		http_reply_json(c->req, 200, sandbox_json(c->sb, 0, 1));
	}
}

/* GET /pool (ours, not E2B's): the pool and recycling, as counts. */
static void
pool_status(struct route_call *c)
{
	static const struct {
		const char	*name;
		size_t		 offset;
	} fields[] = {
		{ "pooled", offsetof(struct sandbox_stats, pooled) },
		{ "recycledReady", offsetof(struct sandbox_stats,
		    recycled_ready) },
		{ "scrubbing", offsetof(struct sandbox_stats, scrubbing) },
		{ "scrubs", offsetof(struct sandbox_stats, scrubs) },
		{ "scrubFailures", offsetof(struct sandbox_stats,
		    scrub_failures) },
		{ "recycledTaken", offsetof(struct sandbox_stats,
		    recycled_taken) },
	};
	struct json_object *o = json_object_new_object();
	struct sandbox_stats st;
	size_t i;

	sandbox_get_stats(&st);
	for (i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
		json_object_object_add(o, fields[i].name, json_object_new_int64(
		    *(const long *)(const void *)((const char *)&st +
		    fields[i].offset)));
	json_object_object_add(o, "target", json_object_new_int64(
	    c->api->cfg->pool_target()));
	json_object_object_add(o, "live", json_object_new_int64(
	    sandbox_count()));
	json_object_object_add(o, "maxLive", json_object_new_int64(
	    c->api->cfg->max_sandboxes));
	http_reply_json(c->req, 200, o);
}

/* GET /health */
static void
control_health(struct route_call *c)
{
	http_reply(c->req, 200, "text/plain; charset=utf-8",
	    "Health check successful", 23);
}

/* --- sandbox plane --------------------------------------------------------- */

struct exec_stream {
	struct exec	*ex;
	struct sandbox	*sb;
};

static ssize_t
exec_produce(void *arg, char *buf, size_t max)
{
	struct exec_stream *s = arg;

	return kernel_exec_read(s->ex, buf, max);
}

static void
exec_release(void *arg)
{
	struct exec_stream *s = arg;

	kernel_exec_free(s->ex);
	sandbox_put(s->sb);
	free(s);
}

/* Finds the context an execute or a context call names. */
static struct context *
pick_context(struct http_req *req, struct sandbox *sb, struct json_object *body)
{
	struct json_object *cid = NULL, *lang = NULL;
	struct context *ctx;
	const char *language;
	char err[256];

	member(body, "context_id", &cid);
	member(body, "language", &lang);
	if (cid && lang) {
		text_error(req, 400, "Only one of context_id or language can "
		    "be provided");
		return NULL;
	}
	if (cid) {
		if ((ctx = kernel_context_find(sb,
		    json_object_get_string(cid))) == NULL)
			text_error(req, 404, "Context %.64s not found",
			    json_object_get_string(cid));
		return ctx;
	}
	if ((language = kernel_language(lang ? json_object_get_string(lang) :
	    NULL)) == NULL) {
		text_error(req, 400, "Unsupported language: %.32s",
		    json_object_get_string(lang));
		return NULL;
	}
	if ((ctx = kernel_context_default(sb, language, err, sizeof(err))) ==
	    NULL)
		text_error(req, 500, "%s", err);
	return ctx;
}

/*
 * POST /execute.  Returns 1 if the answer's stream took over the
 * caller's reference to sb, else 0.
 */
static int
execute(struct http_req *req, struct sandbox *sb)
{
	static const char missing[] = "{\"detail\":[{\"loc\":[\"body\","
	    "\"code\"],\"msg\":\"field required\",\"type\":"
	    "\"value_error.missing\"}]}";
	struct json_object *body, *code, *env = NULL, *v = NULL;
	struct http_stream stream;
	long timeout_ms;
	int sh;
	struct exec_stream *s = NULL;
	struct context *ctx;
	char err[256];

	if ((body = body_object(req)) == NULL ||
	    !member(body, "code", &code) ||
	    !json_object_is_type(code, json_type_string)) {
		http_reply(req, 422, "application/json", missing,
		    sizeof(missing) - 1);
		json_object_put(body);
		return 0;
	}
	if (member(body, "env_vars", &env) && !string_map(env)) {
		text_error(req, 400, "env_vars must map strings to strings");
		goto fail;
	}
	/* Ours, not E2B's (whose server has no execution deadline). */
	if (member(body, "timeout", &v) && (!(json_object_is_type(v,
	    json_type_int) || json_object_is_type(v, json_type_double)) ||
	    json_object_get_double(v) < 0.001 ||
	    json_object_get_double(v) > 86400)) {
		text_error(req, 400, "timeout must be a number of seconds, at "
		    "least 0.001 and at most 86400");
		goto fail;
	}
	timeout_ms = v ? (long)(json_object_get_double(v) * 1000) : 0;
	if ((ctx = pick_context(req, sb, body)) == NULL)
		goto fail;
	if ((s = calloc(1, sizeof(*s))) == NULL) {
		kernel_context_put(ctx);
		text_error(req, 500, "out of memory");
		goto fail;
	}
	/* Jupyter's store_history (ours, not E2B's): false for a caller's own
	 * helper runs, which the execution count then leaves out. */
	sh = !member(body, "store_history", &v) || json_object_get_boolean(v);
	s->ex = kernel_exec_start(sb, ctx, json_object_get_string(code), env,
	    timeout_ms, sh, http_client_fd(req), err, sizeof(err));
	kernel_context_put(ctx);
	if (s->ex == NULL) {
		text_error(req, 500, "%s", err);
		goto fail;
	}
	s->sb = sb;
	stream = (struct http_stream){ exec_produce, exec_release, s };
	http_reply_stream(req, 200, "application/x-ndjson", &stream);
	json_object_put(body);
	return 1;
fail:
	free(s);
	json_object_put(body);
	return 0;
}

/* GET /contexts */
static void
contexts_list(struct route_call *c)
{
	http_reply_json(c->req, 200, kernel_context_list(c->sb));
}

/* POST /contexts */
static void
context_create(struct route_call *c)
{
	struct http_req *req = c->req;
	struct json_object *body, *v;
	struct context *ctx;
	const char *language = "python", *cwd = "/home/user";
	char err[256];

	if ((body = body_object(req)) == NULL) {
		text_error(req, 400, "the body must be a JSON object");
		return;
	}
	if (member(body, "language", &v) &&
	    (language = kernel_language(json_object_get_string(v))) == NULL) {
		text_error(req, 400, "Unsupported language: %.32s",
		    json_object_get_string(v));
		json_object_put(body);
		return;
	}
	if (member(body, "cwd", &v)) {
		cwd = json_object_get_string(v);
		if (cwd[0] != '/' || strlen(cwd) > 255) {
			text_error(req, 400, "cwd must be an absolute path");
			json_object_put(body);
			return;
		}
	}
	ctx = kernel_context_new(c->sb, language, cwd, err, sizeof(err));
	json_object_put(body);
	if (ctx == NULL) {
		text_error(req, 500, "%s", err);
		return;
	}
	http_reply_json(req, 200, kernel_context_json(ctx));
	kernel_context_put(ctx);
}

/* DELETE /contexts/{id} (context ids are UUIDs) */
static void
context_delete(struct route_call *c)
{
	if (kernel_context_delete(c->sb, c->params.v[0]) == -1)
		text_error(c->req, 404, "Context %s not found", c->params.v[0]);
	else
		http_reply(c->req, 200, "application/json", "null", 4);
}

/* POST /contexts/{id}/restart */
static void
context_restart(struct route_call *c)
{
	struct context *ctx;
	char err[256];

	if ((ctx = kernel_context_find(c->sb, c->params.v[0])) == NULL) {
		text_error(c->req, 404, "Context %s not found", c->params.v[0]);
		return;
	}
	if (kernel_context_restart(c->sb, ctx, err, sizeof(err)) == -1)
		text_error(c->req, 500, "%s", err);
	else
		http_reply(c->req, 200, "application/json", "null", 4);
	kernel_context_put(ctx);
}

/* GET /health of the code interpreter */
static void
code_health(struct route_call *c)
{
	http_reply(c->req, 200, "application/json", "\"OK\"", 4);
}

/* POST /execute */
static void
code_execute(struct route_call *c)
{
	c->kept = execute(c->req, c->sb);
}

/* GET /health of envd */
static void
envd_health(struct route_call *c)
{
	http_reply_json(c->req, 204, NULL);
}

/* 1 if the request may use envd: the sandbox was not created "secure",
 * or the request carries its access token; else 0, answered 401. */
static int
envd_token_ok(struct http_req *req, const struct sandbox *sb)
{
	const char *tok = http_header(req, "X-Access-Token");
	const char *want = sandbox_token(sb);

	return !sandbox_secure(sb) || (tok != NULL && strlen(tok) ==
	    strlen(want) && crypto_equal(tok, want, strlen(tok)));
}

static int
envd_authorized(struct route_call *c)
{
	if (envd_token_ok(c->req, c->sb))
		return 1;
	api_error(c->req, 401, "invalid access token");
	return 0;
}

/* 1 if username (a query parameter, NULL if absent) is the sandbox's
 * user; else 0, with envd's message in buf. */
static int
envd_user_ok(const char *user, char *buf, size_t bufsz)
{
	if (user == NULL || *user == '\0' || strcmp(user, "user") == 0)
		return 1;
	snprintf(buf, bufsz, "error looking up user '%.64s': user: unknown "
	    "user %.64s", user, user);
	return 0;
}

/* GET /envs: the sandbox's environment, behind its access token */
static void
envd_envs(struct route_call *c)
{
	if (envd_authorized(c))
		http_reply_json(c->req, 200, json_object_new_object());
}

#define LIST_MAX	10000	/* entries in one ListDir answer */

/*
 * How envd answers a path that cannot be served: its HTTP status (the
 * /files routes), its Connect code and that code's HTTP status (the
 * filesystem service; connectrpc.com/docs/protocol, error codes), and
 * what follows "path '<path>' " in the message.
 */
static const struct files_answer {
	int		 status;
	const char	*rpc_code;
	int		 rpc_status;
	const char	*what;
} files_answers[] = {
	[FILES_BAD_PATH] = { 400, "invalid_argument", 400, "is not a valid path" },
	[FILES_NOT_FOUND] = { 404, "not_found", 404, "does not exist" },
	[FILES_IS_DIR] = { 400, "invalid_argument", 400, "is a directory" },
	[FILES_NOT_REGULAR] = { 400, "invalid_argument", 400,
	    "is not a regular file" },
	[FILES_ESCAPES] = { 400, "invalid_argument", 400, "leads out of the "
	    "sandbox (a link through /proc, or a loop)" },
	[FILES_DENIED] = { 500, "permission_denied", 403,
	    "cannot be opened: permission denied" },
	[FILES_NO_SPACE] = { 507, "resource_exhausted", 429,
	    "cannot be written: not enough disk space available" },
	[FILES_EXISTS] = { 409, "already_exists", 409, "already exists" },
	[FILES_NOT_DIR] = { 400, "invalid_argument", 400, "is not a directory" },
	[FILES_TOO_MANY] = { 400, "resource_exhausted", 429,
	    "holds more entries than one listing gives (10000)" },
	[FILES_NOT_WRITABLE] = { 403, "permission_denied", 403, "is not where "
	    "files may be written (/home/user and /tmp; the rest is read-only)" },
	[FILES_CROSS_DEVICE] = { 400, "invalid_argument", 400, "is on another "
	    "file system than the source: a move cannot cross them" },
	[FILES_ERROR] = { 500, "internal", 500, "cannot be opened" },
};

static const struct files_answer *
files_answer_of(enum files_err err)
{
	if (err <= FILES_OK || err > FILES_ERROR)
		err = FILES_ERROR;
	return &files_answers[err];
}

static void
files_error(struct http_req *req, const char *path, enum files_err err)
{
	const struct files_answer *a = files_answer_of(err);

	api_error(req, a->status, "path '%.512s' %s", path, a->what);
}

/*
 * GET /files?path=P[&username=user] (E2B: spec/envd/envd.yaml): the bytes
 * of the regular file at P, relative paths under /home/user.  Errors:
 * 400 no path / a directory / not a regular file / a link out, 401 token
 * or user, 404 nothing there, 500 permission denied; 502 when the sandbox
 * is going.
 */
static void
envd_files_get(struct route_call *c)
{
	struct http_req *req = c->req;
	const char *path = http_query(req, "path");
	const char *user = http_query(req, "username");
	char full[FILES_PATH_MAX];
	enum files_err err;
	uint64_t size;
	int root, fd;

	if (!envd_authorized(c))
		return;
	if (!envd_user_ok(user, full, sizeof(full))) {
		api_error(req, 401, "%s", full);
		return;
	}
	if (files_resolve(path, full, sizeof(full)) == -1) {
		api_error(req, 400, "path must be given, at most %d bytes",
		    FILES_PATH_MAX - 1);
		return;
	}
	if ((root = sandbox_root_fd(c->sb)) == -1) {
		proxy_error(req, sandbox_id(c->sb), 0);
		return;
	}
	fd = files_open_read(root, sandbox_uid(c->sb), (gid_t)sandbox_uid(c->sb),
	    full, &size, &err);
	close(root);
	if (fd == -1)
		files_error(req, full, err);
	else
		http_reply_fd(req, 200, "application/octet-stream", fd,
		    size > 0 ? size : HTTP_SIZE_UNKNOWN);
}

/* --- envd uploads: POST /files, its body taken as it arrives --------------- */

static int	which_plane(struct http_req *, char *, size_t, int *,
		    const char **);

#define UPLOAD_MAX_FILES	32	/* files one upload may hold */

/* An upload's state, from its headers to its answer.  Its files stay
 * temporaries until the whole body is in: all are renamed into place,
 * or none. */
struct upload {
	struct sandbox		*sb;		/* a reference */
	int			 root_fd;	/* the sandbox's root, or -1 */
	uid_t			 uid;
	const char		*path;		/* the path parameter, or NULL */
	struct files_upload	 files[UPLOAD_MAX_FILES];
	size_t			 nfiles;	/* begun */
	int			 writing;	/* files[nfiles - 1] is open */
	char			 current[FILES_PATH_MAX];	/* its path */
	char			 filename[FILES_PATH_MAX];	/* its part's */
	uint64_t		 part_bytes;	/* of the part so far */
	struct json_object	*done;		/* [EntryInfo] written */
	int			 status;	/* an error to answer, else 0 */
	char			 message[640];
};

/* Removes every temporary (a no-op for what was committed). */
static void
upload_abort_all(struct upload *up)
{
	size_t i;

	for (i = 0; i < up->nfiles; i++)
		files_upload_abort(&up->files[i]);
	up->writing = 0;
}

static int __attribute__((format(printf, 3, 4)))
upload_fail(struct upload *up, int status, const char *fmt, ...)
{
	va_list ap;

	if (up->status == 0) {
		up->status = status;
		va_start(ap, fmt);
		vsnprintf(up->message, sizeof(up->message), fmt, ap);
		va_end(ap);
	}
	upload_abort_all(up);
	return -1;
}

static int
upload_files_fail(struct upload *up, const char *path, enum files_err err)
{
	const struct files_answer *a = files_answer_of(err);

	return upload_fail(up, a->status, "path '%.512s' %s", path, a->what);
}

/* Starts writing path (a parameter or a part's filename). */
static int
upload_open(struct upload *up, const char *path)
{
	enum files_err err;
	size_t i;

	if (path == NULL)
		return upload_fail(up, 400, "a file needs the path parameter or "
		    "a filename");
	if (files_resolve(path, up->current, sizeof(up->current)) == -1)
		return upload_fail(up, 400, "path must be given, at most %d "
		    "bytes", FILES_PATH_MAX - 1);
	if (path[strlen(path) - 1] == '/')	/* "dir/": not a file's name */
		return upload_files_fail(up, up->current, FILES_IS_DIR);
	for (i = 0; i < json_object_array_length(up->done); i++) {
		struct json_object *e = json_object_array_get_idx(up->done, i), *v;

		if (json_object_object_get_ex(e, "path", &v) &&
		    strcmp(json_object_get_string(v), up->current) == 0)
			return upload_fail(up, 400, "you cannot upload multiple "
			    "files to the same path '%.512s' in one upload "
			    "request", up->current);
	}
	if (up->nfiles == UPLOAD_MAX_FILES)
		return upload_fail(up, 400, "one upload holds at most %d files",
		    UPLOAD_MAX_FILES);
	if (files_upload_begin(&up->files[up->nfiles], up->root_fd, up->uid,
	    (gid_t)up->uid, up->current, &err) == -1)
		return upload_files_fail(up, up->current, err);
	up->nfiles++;
	up->writing = 1;
	return 0;
}

/* The file being written is complete: listed, renamed at the end. */
static int
upload_close(struct upload *up)
{
	struct json_object *e;

	if (!up->writing)
		return 0;
	up->writing = 0;
	e = json_object_new_object();
	json_object_object_add(e, "path", json_object_new_string(up->current));
	json_object_object_add(e, "name", json_object_new_string(
	    strrchr(up->current, '/') + 1));
	json_object_object_add(e, "type", json_object_new_string("file"));
	json_object_array_add(up->done, e);
	return 0;
}

static int
upload_write(void *ctx, const char *data, size_t len)
{
	struct upload *up = ctx;
	enum files_err err;

	if (up->status != 0)
		return -1;
	if (files_upload_write(&up->files[up->nfiles - 1], data, len, &err) ==
	    -1)
		return upload_files_fail(up, up->current, err);
	return 0;
}

/* A multipart part's piece: fields other than "file" are ignored, as
 * envd ignores them; each "file" part is one file. */
static int
upload_part(void *ctx, const char *name, const char *filename,
    const char *data, uint64_t off, size_t size)
{
	struct upload *up = ctx;

	if (up->status != 0)
		return -1;
	if (name == NULL || strcmp(name, "file") != 0)
		return 0;
	/* A new part starts at offset 0 -- but the post processor may call
	 * twice at 0 (first with no bytes) for one part. */
	if (off == 0 && (!up->writing || up->part_bytes > 0 ||
	    strcmp(up->filename, filename ? filename : "") != 0)) {
		snprintf(up->filename, sizeof(up->filename), "%s",
		    filename ? filename : "");
		up->part_bytes = 0;
		if (upload_close(up) == -1 ||
		    upload_open(up, up->path ? up->path : filename) == -1)
			return -1;
	}
	up->part_bytes += size;
	return size > 0 ? upload_write(up, data, size) : 0;
}

static void
upload_release(void *ctx)
{
	struct upload *up = ctx;

	upload_abort_all(up);
	if (up->root_fd != -1)
		close(up->root_fd);
	json_object_put(up->done);
	sandbox_put(up->sb);
	free(up);
}

/* Takes nothing: the answer is decided already (up->status). */
static int
upload_refuse(void *ctx, const char *data, size_t len)
{
	(void)ctx;
	(void)data;
	(void)len;
	return -1;
}

int
api_body_sink(struct http_req *req, void *arg, struct http_sink *sink)
{
	const char *type = http_header(req, "Content-Type"), *err = NULL;
	struct upload *up;
	struct sandbox *sb;
	char id[128], msg[256];
	int port = 0;

	(void)arg;
	/* Called for every request: the cheap tests first. */
	if (strcmp(http_method(req), "POST") != 0 ||
	    strcmp(http_path(req), "/files") != 0 ||
	    which_plane(req, id, sizeof(id), &port, &err) != 1 ||
	    port != ENVD_PORT || !ids_sandbox_valid(id, SANDBOX_ID_LEN) ||
	    (sb = sandbox_find(id)) == NULL)
		return 0;		/* not an upload: answered as any request */
	if ((up = calloc(1, sizeof(*up))) == NULL) {
		sandbox_put(sb);
		return 0;
	}
	up->sb = sb;
	up->root_fd = -1;
	up->uid = sandbox_uid(sb);
	up->path = http_query(req, "path");
	up->done = json_object_new_array();
	*sink = (struct http_sink){ upload_refuse, upload_release, up, up };
	if (!envd_token_ok(req, sb))
		upload_fail(up, 401, "invalid access token");
	else if (!envd_user_ok(http_query(req, "username"), msg, sizeof(msg)))
		upload_fail(up, 401, "%s", msg);
	else if ((up->root_fd = sandbox_root_fd(sb)) == -1)
		upload_fail(up, 502, "The sandbox was not found");
	else if (type != NULL && strncasecmp(type, "multipart/", 10) == 0) {
		if (http_form_sink(req, upload_part, up, upload_release,
		    sink) == -1)
			upload_fail(up, 400, "the multipart body cannot be read "
			    "(no boundary?)");
	} else if (type != NULL && strncasecmp(type,
	    "application/octet-stream", 24) == 0 && strchr("; \t",
	    type[24]) != NULL) {
		if (up->path == NULL)
			upload_fail(up, 400, "path query parameter is required "
			    "for raw body upload");
		else if (upload_open(up, up->path) == 0)
			sink->write = upload_write;
	} else
		upload_fail(up, 400, "unsupported content type: %.128s, "
		    "expected multipart/form-data or application/octet-stream",
		    type ? type : "(none)");
	return 1;
}

/*
 * POST /files[?path=P][&username=user] (E2B: spec/envd/envd.yaml), its
 * body already written by the sink: multipart/form-data (each "file"
 * part a file: at P, else at its filename) or application/octet-stream
 * (one file at P).  200 [{path, name, type: "file"}]; 400 bad path, a
 * directory, a type or two files at one path; 401 token or user; 507 the
 * sandbox's disk is full.  A failed upload leaves nothing of itself.
 */
static void
envd_files_post(struct route_call *c)
{
	struct upload *up = http_sink_ctx(c->req);

	enum files_err err;
	size_t i;

	if (up == NULL) {
		api_error(c->req, 500, "the upload could not be prepared");
		return;
	}
	if (http_sink_finish(c->req) == -1)
		upload_fail(up, 400, "the multipart body is malformed or cut "
		    "short (no closing boundary)");
	upload_close(up);
	/* The whole body is in: every file into place, in order. */
	for (i = 0; up->status == 0 && i < up->nfiles; i++)
		if (files_upload_commit(&up->files[i], &err) == -1)
			upload_files_fail(up, json_object_get_string(
			    json_object_object_get(json_object_array_get_idx(
			    up->done, i), "path")), err);
	if (up->status != 0)
		api_error(c->req, up->status, "%s", up->message);
	else
		http_reply_json(c->req, 200, json_object_get(up->done));
}

/* --- envd's filesystem service: Connect, unary, JSON -------------------------- */

/* Connect's error shape {"code": "<name>", "message": "..."}. */
static void __attribute__((format(printf, 4, 5)))
rpc_error(struct http_req *req, int status, const char *code,
    const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	error_answer(req, status, json_object_new_string(code), fmt, ap);
	va_end(ap);
}

static void
rpc_files_error(struct http_req *req, const char *path, enum files_err err)
{
	const struct files_answer *a = files_answer_of(err);

	rpc_error(req, a->rpc_status, a->rpc_code, "path '%.512s' %s", path,
	    a->what);
}

/*
 * The checks envd makes before a call, and its request message: JSON
 * (the SDKs' useBinaryFormat: false), the access token of a secure
 * sandbox, the user (HTTP Basic "user:", or none).  Returns the message
 * and *root_fd; or NULL, answered.
 */
static struct json_object *
rpc_begin(struct route_call *c, int *root_fd)
{
	const char *type = http_header(c->req, "Content-Type");
	const char *auth = http_header(c->req, "Authorization");
	struct json_object *body;

	if (type == NULL || strncasecmp(type, "application/json", 16) != 0) {
		rpc_error(c->req, 415, "invalid_argument", "unsupported content "
		    "type %.64s: this provider speaks Connect with JSON",
		    type ? type : "(none)");
		return NULL;
	}
	if (!envd_token_ok(c->req, c->sb)) {
		rpc_error(c->req, 401, "unauthenticated", "invalid access token");
		return NULL;
	}
	if (auth != NULL && strcmp(auth, "Basic dXNlcjo=") != 0) {
		rpc_error(c->req, 401, "unauthenticated", "invalid user: this "
		    "sandbox has the user \"user\" only");
		return NULL;
	}
	if ((body = body_object(c->req)) == NULL) {
		rpc_error(c->req, 400, "invalid_argument", "the request must be "
		    "a JSON object");
		return NULL;
	}
	if ((*root_fd = sandbox_root_fd(c->sb)) == -1) {
		json_object_put(body);
		rpc_error(c->req, 503, "unavailable", "the sandbox is gone");
		return NULL;
	}
	return body;
}

/* The path in member name of body, resolved into out; or -1, answered. */
static int
rpc_path(struct http_req *req, struct json_object *body, const char *name,
    char *out, size_t outsz)
{
	struct json_object *v;

	if (!member(body, name, &v) || !json_object_is_type(v, json_type_string) ||
	    strlen(json_object_get_string(v)) !=
	    (size_t)json_object_get_string_len(v) ||
	    files_resolve(json_object_get_string(v), out, outsz) == -1) {
		rpc_error(req, 400, "invalid_argument", "%s must be a path of at "
		    "most %d bytes", name, FILES_PATH_MAX - 1);
		return -1;
	}
	return 0;
}

static const char *
owner_name(const struct sandbox *sb, unsigned id, char *buf, size_t bufsz)
{
	if (id == (unsigned)sandbox_uid(sb))
		return "user";
	if (id == 0)
		return "root";
	snprintf(buf, bufsz, "%u", id);
	return buf;
}

/* EntryInfo in proto3's JSON mapping (int64 as a string, RFC 3339). */
static struct json_object *
entry_json(const struct sandbox *sb, const struct files_entry *e)
{
	static const char *const types[] = {
		[FILES_TYPE_UNKNOWN] = "FILE_TYPE_UNSPECIFIED",
		[FILES_TYPE_FILE] = "FILE_TYPE_FILE",
		[FILES_TYPE_DIR] = "FILE_TYPE_DIRECTORY",
		[FILES_TYPE_SYMLINK] = "FILE_TYPE_SYMLINK",
	};
	struct json_object *o = json_object_new_object();
	char buf[64], when[32];
	time_t t = (time_t)e->mtime_s;
	struct tm tm;

	json_object_object_add(o, "name", json_object_new_string(e->name));
	json_object_object_add(o, "type", json_object_new_string(
	    types[e->type]));
	json_object_object_add(o, "path", json_object_new_string(e->path));
	snprintf(buf, sizeof(buf), "%lld", (long long)e->size);
	json_object_object_add(o, "size", json_object_new_string(buf));
	json_object_object_add(o, "mode", json_object_new_int64(e->mode));
	json_object_object_add(o, "permissions", json_object_new_string(
	    e->permissions));
	json_object_object_add(o, "owner", json_object_new_string(
	    owner_name(sb, (unsigned)e->uid, buf, sizeof(buf))));
	json_object_object_add(o, "group", json_object_new_string(
	    owner_name(sb, (unsigned)e->gid, buf, sizeof(buf))));
	if (gmtime_r(&t, &tm) != NULL &&
	    strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm) > 0) {
		snprintf(buf, sizeof(buf), "%s.%09ldZ", when, e->mtime_ns);
		json_object_object_add(o, "modifiedTime",
		    json_object_new_string(buf));
	}
	if (e->is_link)
		json_object_object_add(o, "symlinkTarget",
		    json_object_new_string(e->target));
	return o;
}

/* {"entry": <the entry at path>}; or NULL, answered. */
static struct json_object *
entry_answer(struct route_call *c, int root, const char *path)
{
	struct files_entry *e;
	struct json_object *o = NULL;
	enum files_err err;

	if ((e = malloc(sizeof(*e))) == NULL) {
		rpc_error(c->req, 500, "internal", "out of memory");
		return NULL;
	}
	if (files_stat(root, sandbox_uid(c->sb), (gid_t)sandbox_uid(c->sb),
	    path, e, &err) == -1)
		rpc_files_error(c->req, path, err);
	else {
		o = json_object_new_object();
		json_object_object_add(o, "entry", entry_json(c->sb, e));
	}
	free(e);
	return o;
}

/* POST /filesystem.Filesystem/Stat {path} -> {entry} */
static void
rpc_stat(struct route_call *c)
{
	char path[FILES_PATH_MAX];
	struct json_object *body, *o;
	int root;

	if ((body = rpc_begin(c, &root)) == NULL)
		return;
	if (rpc_path(c->req, body, "path", path, sizeof(path)) == 0 &&
	    (o = entry_answer(c, root, path)) != NULL)
		http_reply_json(c->req, 200, o);
	close(root);
	json_object_put(body);
}

struct listing {
	const struct sandbox	*sb;
	struct json_object	*entries;
};

static int
list_one(void *arg, const struct files_entry *e)
{
	struct listing *l = arg;

	return json_object_array_add(l->entries, entry_json(l->sb, e)) == 0 ?
	    0 : -1;
}

/* POST /filesystem.Filesystem/ListDir {path, depth} -> {entries} */
static void
rpc_list(struct route_call *c)
{
	char path[FILES_PATH_MAX];
	struct json_object *body, *v, *o;
	struct listing l = { c->sb, NULL };
	enum files_err err;
	int64_t depth = 1;
	int root;

	if ((body = rpc_begin(c, &root)) == NULL)
		return;
	if (rpc_path(c->req, body, "path", path, sizeof(path)) == -1)
		goto done;
	if (member(body, "depth", &v) && (!json_object_is_type(v,
	    json_type_int) || (depth = json_object_get_int64(v)) < 0 ||
	    depth > 64)) {
		rpc_error(c->req, 400, "invalid_argument", "depth must be an "
		    "integer from 0 to 64");
		goto done;
	}
	l.entries = json_object_new_array();
	if (files_list(root, sandbox_uid(c->sb), (gid_t)sandbox_uid(c->sb),
	    path, (unsigned)depth, LIST_MAX, list_one, &l, &err) == -1) {
		json_object_put(l.entries);
		rpc_files_error(c->req, path, err);
		goto done;
	}
	o = json_object_new_object();
	json_object_object_add(o, "entries", l.entries);
	http_reply_json(c->req, 200, o);
done:
	close(root);
	json_object_put(body);
}

/* POST /filesystem.Filesystem/MakeDir {path} -> {entry: {name, type, path}} */
static void
rpc_mkdir(struct route_call *c)
{
	char path[FILES_PATH_MAX];
	struct json_object *body, *o, *e;
	enum files_err err;
	int root;

	if ((body = rpc_begin(c, &root)) == NULL)
		return;
	if (rpc_path(c->req, body, "path", path, sizeof(path)) == -1)
		;
	else if (files_mkdir(root, sandbox_uid(c->sb), (gid_t)sandbox_uid(c->sb),
	    path, &err) == -1)
		rpc_files_error(c->req, path, err);
	else {
		e = json_object_new_object();
		json_object_object_add(e, "name", json_object_new_string(
		    strrchr(path, '/') + 1));
		json_object_object_add(e, "type", json_object_new_string(
		    "FILE_TYPE_DIRECTORY"));
		json_object_object_add(e, "path", json_object_new_string(path));
		o = json_object_new_object();
		json_object_object_add(o, "entry", e);
		http_reply_json(c->req, 200, o);
	}
	close(root);
	json_object_put(body);
}

/* POST /filesystem.Filesystem/Remove {path} -> {} */
static void
rpc_remove(struct route_call *c)
{
	char path[FILES_PATH_MAX];
	struct json_object *body;
	enum files_err err;
	int root;

	if ((body = rpc_begin(c, &root)) == NULL)
		return;
	if (rpc_path(c->req, body, "path", path, sizeof(path)) == -1)
		;
	else if (files_remove(root, sandbox_uid(c->sb),
	    (gid_t)sandbox_uid(c->sb), path, &err) == -1)
		rpc_files_error(c->req, path, err);
	else
		http_reply_json(c->req, 200, json_object_new_object());
	close(root);
	json_object_put(body);
}

/* POST /filesystem.Filesystem/Move {source, destination} -> {entry} */
static void
rpc_move(struct route_call *c)
{
	char from[FILES_PATH_MAX], to[FILES_PATH_MAX];
	struct json_object *body, *o;
	enum files_err err;
	int root;

	if ((body = rpc_begin(c, &root)) == NULL)
		return;
	if (rpc_path(c->req, body, "source", from, sizeof(from)) == -1 ||
	    rpc_path(c->req, body, "destination", to, sizeof(to)) == -1)
		;
	else if (files_move(root, sandbox_uid(c->sb), (gid_t)sandbox_uid(c->sb),
	    from, to, &err) == -1)
		rpc_files_error(c->req, err == FILES_NOT_FOUND ? from : to, err);
	else if ((o = entry_answer(c, root, to)) != NULL)
		http_reply_json(c->req, 200, o);
	close(root);
	json_object_put(body);
}

/* The envd services and methods not built yet: Connect's unimplemented. */
static void
rpc_unimplemented(struct route_call *c)
{
	rpc_error(c->req, 501, "unimplemented", "%.128s is not supported by "
	    "this provider yet", http_path(c->req));
}

/* POST /filesystem.Filesystem/{method}: envd's filesystem service
 * (filesystem.proto), a Connect service's methods by name. */
static void
rpc_filesystem(struct route_call *c)
{
	static const struct {
		const char	*name;
		void		(*call)(struct route_call *);
	} methods[] = {
		{ "Stat", rpc_stat },
		{ "ListDir", rpc_list },
		{ "MakeDir", rpc_mkdir },
		{ "Remove", rpc_remove },
		{ "Move", rpc_move },
	};
	size_t i;

	for (i = 0; i < sizeof(methods) / sizeof(methods[0]); i++)
		if (strcmp(c->params.v[0], methods[i].name) == 0) {
			methods[i].call(c);
			return;
		}
	rpc_unimplemented(c);
}

/* --- route tables ------------------------------------------------------------ */

/* The control plane (E2B's API; "/v2/sandboxes..." is "/sandboxes..."). */
static const struct route control_routes[] = {
	{ "GET", "/health", ROUTE_PUBLIC, control_health },
	{ "GET", "/pool", 0, pool_status },
	{ "POST", "/sandboxes", 0, create_sandbox },
	{ "GET", "/sandboxes", 0, list_sandboxes },
	{ "GET", "/sandboxes/metrics", 0, sandboxes_metrics_get },	/* before {id} */
	{ "GET", "/sandboxes/{id}", ROUTE_SANDBOX, sandbox_get },
	{ "DELETE", "/sandboxes/{id}", ROUTE_SANDBOX, sandbox_delete },
	{ "POST", "/sandboxes/{id}/timeout", ROUTE_SANDBOX, sandbox_timeout },
	{ "POST", "/sandboxes/{id}/refreshes", ROUTE_SANDBOX, sandbox_refresh },
	{ "POST", "/sandboxes/{id}/connect", ROUTE_SANDBOX, sandbox_connect },
	{ "GET", "/sandboxes/{id}/metrics", ROUTE_SANDBOX, sandbox_metrics_get },
	{ "POST", "/sandboxes/{id}/pause", ROUTE_SANDBOX, unsupported },
	{ "POST", "/sandboxes/{id}/resume", ROUTE_SANDBOX, unsupported },
	{ "POST", "/sandboxes/{id}/snapshots", ROUTE_SANDBOX, unsupported },
	{ "POST", "/sandboxes/{id}/fork", ROUTE_SANDBOX, unsupported },
	{ "PUT", "/sandboxes/{id}/network", ROUTE_SANDBOX, unsupported },
	{ "GET", "/snapshots", 0, unsupported },
	{ "DELETE", "/templates/{id}", 0, unsupported },
};

/* A sandbox's code interpreter (port 49999; the sandbox routed already). */
static const struct route code_routes[] = {
	{ "GET", "/health", 0, code_health },
	{ "POST", "/execute", 0, code_execute },
	{ "GET", "/contexts", 0, contexts_list },
	{ "POST", "/contexts", 0, context_create },
	{ "DELETE", "/contexts/{id}", 0, context_delete },
	{ "POST", "/contexts/{id}/restart", 0, context_restart },
};

/* A sandbox's envd (port 49983). */
static const struct route envd_routes[] = {
	{ "GET", "/health", 0, envd_health },
	{ "GET", "/envs", 0, envd_envs },
	{ "GET", "/files", 0, envd_files_get },
	{ "POST", "/files", 0, envd_files_post },
	{ "POST", "/filesystem.Filesystem/{method}", 0, rpc_filesystem },
	{ "POST", "/process.Process/{method}", 0, rpc_unimplemented },
};

/* How a plane answers an unknown route: 404, or 405 with Allow. */
static void
control_unrouted(struct http_req *req, const char *allow)
{
	if (*allow == '\0') {
		api_error(req, 404, "no such route");
		return;
	}
	http_add_header(req, "Allow", allow);
	api_error(req, 405, "method not allowed; allowed: %s", allow);
}

static void
code_unrouted(struct http_req *req, const char *allow)
{
	if (*allow == '\0') {
		text_error(req, 404, "Not Found");
		return;
	}
	http_add_header(req, "Allow", allow);
	text_error(req, 405, "Method Not Allowed");
}

#define NROUTES(t)	(sizeof(t) / sizeof((t)[0]))

static const struct plane {
	int			 port;	/* 0: the control plane */
	const struct route	*routes;
	size_t			 nroutes;
	void			(*unrouted)(struct http_req *, const char *);
} planes[] = {
	{ 0, control_routes, NROUTES(control_routes), control_unrouted },
	{ CODE_PORT, code_routes, NROUTES(code_routes), code_unrouted },
	{ ENVD_PORT, envd_routes, NROUTES(envd_routes), control_unrouted },
};

/* The sandbox a control route names ("<id>" or "<id>-<clientID>"), a
 * reference; or NULL, answered 404. */
static struct sandbox *
named_sandbox(struct http_req *req, const char *param)
{
	struct sandbox *sb;
	char id[64];

	path_id(param, id, sizeof(id));
	if ((sb = sandbox_find(id)) == NULL)
		not_found(req, id);
	return sb;
}

/*
 * Runs req through its plane's table: route, key (control plane), the
 * sandbox a control route names, handler.  sb: the routed sandbox of a
 * sandbox plane (its reference is used up here), else NULL.
 */
static void
serve(struct api *api, const struct plane *pl, struct http_req *req,
    struct sandbox *sb)
{
	struct route_call c = { .api = api, .req = req, .sb = sb };
	const struct route *r;
	const char *path = http_path(req);
	char allow[64];

	if (pl->port == 0 && strncmp(path, "/v2/sandboxes", 13) == 0)
		path += 3;
	r = route_find(pl->routes, pl->nroutes, http_method(req), path,
	    &c.params, allow, sizeof(allow));
	if (pl->port == 0 && !(r && (r->flags & ROUTE_PUBLIC)) &&
	    !authorized(api, req))
		api_error(req, 401, "Invalid API key");
	else if (r == NULL)
		pl->unrouted(req, allow);
	else if ((r->flags & ROUTE_SANDBOX) &&
	    (c.sb = named_sandbox(req, c.params.v[0])) == NULL)
		;			/* answered */
	else
		r->handler(&c);
	if (c.sb != NULL && !c.kept)
		sandbox_put(c.sb);
}

/*
 * Which sandbox and port a request is for, as E2B's proxy decides: by
 * headers when Host is localhost or an IP, else by "<port>-<id>.<domain>".
 * Returns 1 for the sandbox plane, 0 for the control plane, -1 if the
 * routing headers are malformed (*err says how; not answered).
 */
static int
which_plane(struct http_req *req, char *id, size_t idsz, int *port,
    const char **err)
{
	const char *hid = http_header(req, "E2b-Sandbox-Id");
	const char *hport = http_header(req, "E2b-Sandbox-Port");
	const char *host = http_header(req, "Host");
	char label[128], *dash, *end;
	size_t n;

	if (hid || hport) {
		if (!hid || !hport) {
			*err = hid ? "Missing header: E2b-Sandbox-Port" :
			    "Missing header: E2b-Sandbox-Id";
			return -1;
		}
		*port = (int)strtol(hport, &end, 10);
		if (*end != '\0' || *port <= 0 || *port > 65535) {
			*err = "invalid E2b-Sandbox-Port";
			return -1;
		}
		snprintf(id, idsz, "%s", hid);
		return 1;
	}
	if (host == NULL || strchr(host, '.') == NULL)
		return 0;
	n = strcspn(host, ".");
	if (n >= sizeof(label))
		return 0;
	memcpy(label, host, n);
	label[n] = '\0';
	if ((dash = strchr(label, '-')) == NULL)
		return 0;
	*dash = '\0';
	*port = (int)strtol(label, &end, 10);
	if (*end != '\0' || *port <= 0 || *port > 65535)
		return 0;
	snprintf(id, idsz, "%s", dash + 1);
	return 1;
}

void
api_handle(struct http_req *req, void *arg)
{
	const char *err = NULL;
	char id[128];
	struct sandbox *sb;
	size_t i;
	int port = 0;

	switch (which_plane(req, id, sizeof(id), &port, &err)) {
	case 1:
		if (!ids_sandbox_valid(id, SANDBOX_ID_LEN) ||
		    (sb = sandbox_find(id)) == NULL) {
			proxy_error(req, ids_sandbox_valid(id,
			    SANDBOX_ID_LEN) ? id : "", 0);
			return;
		}
		for (i = 1; i < NROUTES(planes); i++)
			if (planes[i].port == port) {
				serve(arg, &planes[i], req, sb);
				return;
			}
		proxy_error(req, id, port);
		sandbox_put(sb);
		break;
	case 0:
		serve(arg, &planes[0], req, NULL);
		break;
	default:
		api_error(req, 400, "%s", err);
		break;
	}
}
