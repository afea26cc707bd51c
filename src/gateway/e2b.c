/* E2B's wire protocol over libcurl. */
#include <curl/curl.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "common/buf.h"
#include "common/crypto.h"
#include "common/ids.h"
#include "common/log.h"
#include "gateway/e2b.h"
#include "gateway/ndjson.h"

#define CTL_BODY_MAX	(1 << 20)	/* a control-plane answer */
/* One NDJSON line: iris-sandboxd passes kernel lines of up to 16 MiB on,
 * escaped to ASCII (up to 3 times longer: a 4-byte character is 12). */
#define LINE_MAX_BYTES	(48 << 20)
#define EXEC_MAX_BYTES	((curl_off_t)256 << 20)	/* one execution's answer */
#define CODE_PORT	"49999"
#define ENVD_PORT	"49983"
#define STALL_S		30	/* no byte at all (keepalives are every 5 s) */
#define HEALTH_TIMEOUT_MS 2000

static const struct e2b_config *cfg;
static struct curl_slist *connect_to;

struct e2b {
	CURL	*ctl;		/* control plane */
	CURL	*run;		/* the code interpreter */
};

const char *
e2b_strerror(enum e2b_status st)
{
	switch (st) {
	case E2B_OK: return "ok";
	case E2B_NOT_FOUND: return "no such sandbox at the provider";
	case E2B_LIMIT: return "the provider is at capacity";
	case E2B_UNREACHABLE: return "the provider cannot be reached";
	case E2B_TIMEOUT: return "the provider did not answer in time";
	case E2B_BAD: return "the provider failed or answered something "
	    "unusable";
	case E2B_ABORTED: return "stopped";
	}
	return "unknown";
}

int
e2b_global_init(const struct e2b_config *c)
{
	cfg = c;
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		return -1;
	if (c->connect_to && *c->connect_to &&
	    (connect_to = curl_slist_append(NULL, c->connect_to)) == NULL)
		return -1;
	return 0;
}

void
e2b_global_release(void)
{
	curl_slist_free_all(connect_to);
	connect_to = NULL;
	curl_global_cleanup();
}

struct e2b *
e2b_new(void)
{
	struct e2b *c;

	if ((c = calloc(1, sizeof(*c))) == NULL)
		return NULL;
	if ((c->ctl = curl_easy_init()) == NULL ||
	    (c->run = curl_easy_init()) == NULL) {
		e2b_free(c);
		return NULL;
	}
	return c;
}

void
e2b_free(struct e2b *c)
{
	if (c == NULL)
		return;
	curl_easy_cleanup(c->ctl);
	curl_easy_cleanup(c->run);
	free(c);
}

/* The options every request shares; the handle keeps its connections. */
static void
base_options(CURL *h)
{
	curl_easy_reset(h);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, cfg->connect_timeout_ms);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(h, CURLOPT_USERAGENT, "iris-gateway/" PACKAGE_VERSION);
	if (connect_to)
		curl_easy_setopt(h, CURLOPT_CONNECT_TO, connect_to);
}

static enum e2b_status
curl_status(CURLcode rc)
{
	switch (rc) {
	case CURLE_OK:
		return E2B_OK;
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_RESOLVE_PROXY:
	case CURLE_COULDNT_CONNECT:
		return E2B_UNREACHABLE;
	case CURLE_OPERATION_TIMEDOUT:
		return E2B_TIMEOUT;
	case CURLE_WRITE_ERROR:
	case CURLE_ABORTED_BY_CALLBACK:
		return E2B_ABORTED;
	default:
		return E2B_BAD;
	}
}

static size_t
collect(char *p, size_t size, size_t n, void *arg)
{
	struct buf *b = arg;

	return buf_append(b, p, size * n) == 0 ? size * n : 0;
}

/* Header values we need from control-plane answers. */
static size_t
retry_after_header(char *p, size_t size, size_t n, void *arg)
{
	long *retry = arg;
	size_t len = size * n;

	if (len > 12 && strncasecmp(p, "Retry-After:", 12) == 0)
		*retry = strtol(p + 12, NULL, 10);
	return len;
}

/*
 * One control-plane call.  OUT: *status (HTTP), *retry (Retry-After, or
 * -1), resp (the body, up to CTL_BODY_MAX).
 */
static enum e2b_status
ctl_call(struct e2b *c, const char *method, const char *path,
    const char *body, long timeout_ms, long *status, long *retry,
    struct buf *resp)
{
	struct curl_slist *hdrs = NULL;
	char url[1024], key[512];
	CURLcode rc;

	if ((size_t)snprintf(url, sizeof(url), "%s%s", cfg->api_url, path) >=
	    sizeof(url))
		return E2B_BAD;
	snprintf(key, sizeof(key), "X-API-Key: %s", cfg->api_key ?
	    cfg->api_key : "");
	hdrs = curl_slist_append(hdrs, key);
	crypto_wipe(key, sizeof(key));
	hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
	base_options(c->ctl);
	curl_easy_setopt(c->ctl, CURLOPT_URL, url);
	curl_easy_setopt(c->ctl, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(c->ctl, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(c->ctl, CURLOPT_TIMEOUT_MS, timeout_ms);
	curl_easy_setopt(c->ctl, CURLOPT_WRITEFUNCTION, collect);
	curl_easy_setopt(c->ctl, CURLOPT_WRITEDATA, resp);
	*retry = -1;
	curl_easy_setopt(c->ctl, CURLOPT_HEADERFUNCTION, retry_after_header);
	curl_easy_setopt(c->ctl, CURLOPT_HEADERDATA, retry);
	if (body)
		curl_easy_setopt(c->ctl, CURLOPT_POSTFIELDS, body);
	rc = curl_easy_perform(c->ctl);
	curl_slist_free_all(hdrs);
	*status = 0;
	curl_easy_getinfo(c->ctl, CURLINFO_RESPONSE_CODE, status);
	if (rc != CURLE_OK)
		log_warnx("provider %s %s: %s", method, path,
		    curl_easy_strerror(rc));
	return curl_status(rc);
}

/* Maps a control-plane HTTP status. */
static enum e2b_status
http_status(long status)
{
	if (status >= 200 && status < 300)
		return E2B_OK;
	if (status == 404)
		return E2B_NOT_FOUND;
	if (status == 429)
		return E2B_LIMIT;
	if (status == 502 || status == 503)
		return E2B_UNREACHABLE;
	if (status == 504)
		return E2B_TIMEOUT;
	return E2B_BAD;
}

enum e2b_status
e2b_health(struct e2b *c)
{
	struct buf resp;
	enum e2b_status st;
	long status, retry;

	buf_init(&resp, CTL_BODY_MAX);
	/* Probes come often and must not tie workers up: a short wait. */
	st = ctl_call(c, "GET", "/health", NULL, HEALTH_TIMEOUT_MS, &status,
	    &retry, &resp);
	buf_release(&resp);
	return st != E2B_OK ? st : http_status(status);
}

static void
copy_member(struct json_object *o, const char *name, char *out, size_t outsz)
{
	struct json_object *v;
	const char *s;

	out[0] = '\0';
	if (json_object_object_get_ex(o, name, &v) &&
	    json_object_is_type(v, json_type_string) &&
	    strlen(s = json_object_get_string(v)) < outsz)
		memcpy(out, s, strlen(s) + 1);
}

/* A sandbox id as E2B makes them; it goes into URLs. */
static int
id_ok(const char *id)
{
	return ids_sandbox_valid(id, 64);
}

static void
backoff(int attempt, long retry_after)
{
	struct timespec ts;
	long ms;
	unsigned char r;

	if (retry_after > 0)
		ms = (retry_after > 30 ? 30 : retry_after) * 1000;
	else {
		ms = 1000L << (attempt < 5 ? attempt : 5);
		if (ms > 30000)
			ms = 30000;
		if (crypto_random(&r, 1) == 0)	/* jitter: 50-100% */
			ms = ms / 2 + ms * r / 512;
	}
	ts.tv_sec = ms / 1000;
	ts.tv_nsec = (ms % 1000) * 1000000L;
	nanosleep(&ts, NULL);
}

enum e2b_status
e2b_create(struct e2b *c, int timeout_s, struct json_object *metadata,
    struct e2b_sandbox *sb)
{
	struct json_object *req, *ans = NULL;
	enum e2b_status st;
	struct buf resp;
	long status, retry;
	int attempt;

	req = json_object_new_object();
	json_object_object_add(req, "templateID",
	    json_object_new_string(cfg->template_id));
	json_object_object_add(req, "timeout", json_object_new_int(timeout_s));
	json_object_object_add(req, "secure", json_object_new_boolean(1));
	json_object_object_add(req, "allow_internet_access",
	    json_object_new_boolean(0));
	if (metadata)
		json_object_object_add(req, "metadata",
		    json_object_get(metadata));
	buf_init(&resp, CTL_BODY_MAX);
	for (attempt = 0;; attempt++) {
		buf_reset(&resp);
		st = ctl_call(c, "POST", "/sandboxes",
		    json_object_to_json_string_ext(req, JSON_C_TO_STRING_PLAIN),
		    cfg->request_timeout_ms, &status, &retry, &resp);
		if (st == E2B_OK)
			st = http_status(status);
		if (st != E2B_LIMIT || attempt >= cfg->create_retries)
			break;
		backoff(attempt, retry);
	}
	json_object_put(req);
	if (st == E2B_OK && (status != 201 && status != 200))
		st = E2B_BAD;
	if (st == E2B_OK) {
		ans = resp.data ? json_tokener_parse(resp.data) : NULL;
		copy_member(ans, "sandboxID", sb->id, sizeof(sb->id));
		copy_member(ans, "envdAccessToken", sb->token,
		    sizeof(sb->token));
		copy_member(ans, "domain", sb->domain, sizeof(sb->domain));
		if (!id_ok(sb->id))
			st = E2B_BAD;
		json_object_put(ans);
	}
	if (st != E2B_OK)
		log_warnx("provider: create failed (HTTP %ld): %s", status,
		    e2b_strerror(st));
	buf_release(&resp);
	return st;
}

/* A control-plane call about one sandbox: /sandboxes/<id><suffix>. */
static enum e2b_status
sandbox_call(struct e2b *c, const char *method, const char *id,
    const char *suffix, const char *body)
{
	char path[128];
	struct buf resp;
	enum e2b_status st;
	long status, retry;

	if (!id_ok(id))
		return E2B_NOT_FOUND;
	snprintf(path, sizeof(path), "/sandboxes/%s%s", id, suffix);
	buf_init(&resp, CTL_BODY_MAX);
	st = ctl_call(c, method, path, body, cfg->request_timeout_ms, &status,
	    &retry, &resp);
	buf_release(&resp);
	return st != E2B_OK ? st : http_status(status);
}

enum e2b_status
e2b_kill(struct e2b *c, const char *id)
{
	return sandbox_call(c, "DELETE", id, "", NULL);
}

enum e2b_status
e2b_set_timeout(struct e2b *c, const char *id, int timeout_s)
{
	char body[64];

	snprintf(body, sizeof(body), "{\"timeout\":%d}", timeout_s);
	return sandbox_call(c, "POST", id, "/timeout", body);
}

/* --- execute ---------------------------------------------------------------- */

struct run {
	struct ndjson	 nd;
	int		(*on_event)(void *, struct json_object *);
	void		*arg;
	int		 ended;		/* end_of_execution seen */
	int		 stopped;	/* the callback said stop */
	int		 garbage;	/* a line that was not JSON */
	long		 status;	/* HTTP, once the headers came */
	struct buf	 error_body;	/* a non-200 answer's body */
	CURL		*h;
};

static int
on_line(void *arg, const char *line, size_t len)
{
	struct run *r = arg;
	struct json_tokener *tok;
	struct json_object *ev, *type;
	int rv = 0;

	if (line == NULL) {		/* an over-long line */
		r->garbage = 1;
		return 0;
	}
	if ((tok = json_tokener_new_ex(64)) == NULL)
		return -1;
	ev = json_tokener_parse_ex(tok, line, (int)len);
	json_tokener_free(tok);
	if (ev == NULL || !json_object_is_type(ev, json_type_object) ||
	    !json_object_object_get_ex(ev, "type", &type) ||
	    !json_object_is_type(type, json_type_string)) {
		r->garbage = 1;
		json_object_put(ev);
		return 0;
	}
	if (strcmp(json_object_get_string(type), "end_of_execution") == 0)
		r->ended = 1;
	else if (r->on_event(r->arg, ev) == -1) {
		r->stopped = 1;
		rv = -1;
	}
	json_object_put(ev);
	return rv;
}

static size_t
run_write(char *p, size_t size, size_t n, void *arg)
{
	struct run *r = arg;
	size_t len = size * n;

	if (r->status == 0)
		curl_easy_getinfo(r->h, CURLINFO_RESPONSE_CODE, &r->status);
	if (r->status != 200) {
		buf_append(&r->error_body, p, len);	/* kept short */
		return len;
	}
	return ndjson_feed(&r->nd, p, len) == 0 ? len : 0;
}

/* The headers that reach port of sb through our own provider's proxy,
 * and sb's envd token. */
static struct curl_slist *
sandbox_headers(const struct e2b_sandbox *sb, const char *port)
{
	struct curl_slist *h = NULL;
	char line[256];

	if (cfg->sandbox_url && *cfg->sandbox_url) {
		snprintf(line, sizeof(line), "E2b-Sandbox-Id: %s", sb->id);
		h = curl_slist_append(h, line);
		snprintf(line, sizeof(line), "E2b-Sandbox-Port: %s", port);
		h = curl_slist_append(h, line);
	}
	if (sb->token[0]) {
		snprintf(line, sizeof(line), "X-Access-Token: %s", sb->token);
		h = curl_slist_append(h, line);
		crypto_wipe(line, sizeof(line));
	}
	return h;
}

/* The URL of path on port of sb: E2B's <port>-<id>.<domain>, or ours. */
static int
sandbox_url(const struct e2b_sandbox *sb, const char *port, const char *path,
    char *url, size_t sz)
{
	int n;

	if (cfg->sandbox_url && *cfg->sandbox_url)
		n = snprintf(url, sz, "%s%s", cfg->sandbox_url, path);
	else
		n = snprintf(url, sz, "%s://%s-%s.%s%s", cfg->scheme, port,
		    sb->id, sb->domain[0] ? sb->domain : cfg->domain, path);
	return n > 0 && (size_t)n < sz ? 0 : -1;
}

/*
 * After an answer cut off mid-way: is sb still there?  Its envd's
 * /health answers 502 through the proxy once the sandbox is gone (killed,
 * expired): E2B's own SDK tells "the sandbox was killed while the request
 * was in progress" this way (code-interpreter SDK, handleRequestError).
 * Returns E2B_NOT_FOUND then, else E2B_BAD (the cut stays unexplained).
 */
static enum e2b_status
cut_off(struct e2b *c, const struct e2b_sandbox *sb)
{
	struct curl_slist *hdrs;
	struct buf body;
	char url[512];
	long status = 0;

	if (sandbox_url(sb, ENVD_PORT, "/health", url, sizeof(url)) == -1)
		return E2B_BAD;
	buf_init(&body, CTL_BODY_MAX);
	hdrs = sandbox_headers(sb, ENVD_PORT);
	base_options(c->ctl);
	curl_easy_setopt(c->ctl, CURLOPT_URL, url);
	curl_easy_setopt(c->ctl, CURLOPT_HTTPGET, 1L);
	curl_easy_setopt(c->ctl, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(c->ctl, CURLOPT_TIMEOUT_MS, (long)HEALTH_TIMEOUT_MS);
	curl_easy_setopt(c->ctl, CURLOPT_WRITEFUNCTION, collect);
	curl_easy_setopt(c->ctl, CURLOPT_WRITEDATA, &body);
	if (curl_easy_perform(c->ctl) == CURLE_OK)
		curl_easy_getinfo(c->ctl, CURLINFO_RESPONSE_CODE, &status);
	curl_slist_free_all(hdrs);
	buf_release(&body);
	return status == 502 || status == 404 ? E2B_NOT_FOUND : E2B_BAD;
}

enum e2b_status
e2b_execute(struct e2b *c, const struct e2b_sandbox *sb,
    const struct e2b_run *run, int (*on_event)(void *, struct json_object *),
    void *arg, int *started)
{
	long timeout_ms = run->timeout_ms;
	struct json_object *req;
	struct curl_slist *hdrs;
	struct run r;
	enum e2b_status st;
	char url[512];
	CURLcode rc;

	*started = 0;
	if (!id_ok(sb->id) ||
	    sandbox_url(sb, CODE_PORT, "/execute", url, sizeof(url)) == -1)
		return E2B_NOT_FOUND;
	memset(&r, 0, sizeof(r));
	ndjson_init(&r.nd, LINE_MAX_BYTES, on_line, &r);
	buf_init(&r.error_body, 4096);
	r.on_event = on_event;
	r.arg = arg;
	r.h = c->run;

	req = json_object_new_object();
	json_object_object_add(req, "code",
	    json_object_new_string_len(run->code, (int)run->code_len));
	json_object_object_add(req, "language",
	    json_object_new_string(run->language));
	if (run->env_vars)
		json_object_object_add(req, "env_vars",
		    json_object_get(run->env_vars));
	if (!run->store_history)
		json_object_object_add(req, "store_history",
		    json_object_new_boolean(0));
	if (cfg->run_deadline_grace_ms > 0) {
		json_object_object_add(req, "timeout",
		    json_object_new_double(timeout_ms / 1000.0));
		timeout_ms += cfg->run_deadline_grace_ms + 3000;
	}
	hdrs = curl_slist_append(sandbox_headers(sb, CODE_PORT),
	    "Content-Type: application/json");
	base_options(c->run);
	curl_easy_setopt(c->run, CURLOPT_URL, url);
	/* HTTP/1.1: ending the transfer closes the connection, which is how
	 * the code interpreter learns to interrupt the code. */
	curl_easy_setopt(c->run, CURLOPT_HTTP_VERSION, CURL_HTTP_VERSION_1_1);
	curl_easy_setopt(c->run, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(c->run, CURLOPT_COPYPOSTFIELDS,
	    json_object_to_json_string_ext(req, JSON_C_TO_STRING_PLAIN |
	    JSON_C_TO_STRING_NOSLASHESCAPE));
	curl_easy_setopt(c->run, CURLOPT_TIMEOUT_MS, timeout_ms);
	curl_easy_setopt(c->run, CURLOPT_LOW_SPEED_LIMIT, 1L);
	curl_easy_setopt(c->run, CURLOPT_LOW_SPEED_TIME, (long)STALL_S);
	curl_easy_setopt(c->run, CURLOPT_MAXFILESIZE_LARGE, EXEC_MAX_BYTES);
	curl_easy_setopt(c->run, CURLOPT_WRITEFUNCTION, run_write);
	curl_easy_setopt(c->run, CURLOPT_WRITEDATA, &r);
	json_object_put(req);

	rc = curl_easy_perform(c->run);
	curl_slist_free_all(hdrs);
	if (r.status == 0)
		curl_easy_getinfo(c->run, CURLINFO_RESPONSE_CODE, &r.status);
	*started = r.status == 200;
	if (r.stopped)
		st = E2B_ABORTED;
	else if (rc != CURLE_OK)
		st = curl_status(rc);
	else if (r.status == 200)
		st = ndjson_finish(&r.nd) == 0 && r.ended ? E2B_OK : E2B_BAD;
	else if (r.status == 502 || r.status == 404)
		st = E2B_NOT_FOUND;	/* the proxy: no such sandbox */
	else
		st = http_status(r.status) == E2B_OK ? E2B_BAD :
		    http_status(r.status);
	if (st == E2B_BAD && *started && !r.ended)
		st = cut_off(c, sb);	/* the answer ended before its end */
	if (st != E2B_OK && st != E2B_ABORTED &&
	    !(st == E2B_TIMEOUT && *started))
		log_warnx("provider: execute in %s: HTTP %ld, %s", sb->id,
		    r.status, rc != CURLE_OK ? curl_easy_strerror(rc) :
		    e2b_strerror(st));
	if (r.garbage)
		log_warnx("provider: execute in %s: lines that were not JSON "
		    "were skipped", sb->id);
	ndjson_release(&r.nd);
	buf_release(&r.error_body);
	return st;
}
