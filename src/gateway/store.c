/* The gateway's SQL: keys, the rate limiter's state, audit rows, sandboxes. */
#include <pthread.h>
#include <stdint.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

#include "common/db.h"
#include "common/queries.h"
#include "common/log.h"
#include "gateway/store.h"

#define SB_COLS	"SELECT sandbox_id, project_id, session_id, provider, " \
	"status, created_at, last_used_at, expires_at, executions, language, " \
	"idle_timeout_s FROM sandboxes "

#define ERROR_TYPES_MAX	20	/* in GET /api/iris/metrics */

/* ?2 (a time) plus `seconds` (an SQL expression), as ISO 8601 text. */
#define SB_AHEAD(seconds) "strftime('%Y-%m-%dT%H:%M:%fZ', ?2, '+' || (" \
	seconds ") || ' seconds')"

enum stmt_id {
	ST_PING,
	ST_KEY_FIND,
	ST_RATE_GET,
	ST_RATE_SET,
	ST_AUDIT_INSERT,
	ST_SANDBOX_GET,
	ST_SANDBOX_LIST,
	ST_SB_CLAIM,
	ST_SB_STALE,
	ST_SB_LRU_IDLE,
	ST_SB_EVICT,
	ST_EVICTION_ADD,
	ST_EVICTION_TAKE,
	ST_SB_LIVE_ID,
	ST_SB_LIVE_SESSION,
	ST_SB_RENAME,
	ST_SB_FORGET,
	ST_SB_TOUCH,
	ST_SB_END,
	ST_SB_EVENT,
	ST_SB_EXPIRED,
	ST_EXEC_INSERT,
	ST_METRICS,
	ST_METRICS_SB,
	ST_ERROR_TYPES,
	ST_EXEC_LIST,
	ST_EXEC_FIND,
	ST_BEGIN,
	ST_COMMIT,
	ST_ROLLBACK,
	ST_COUNT
};

static const char *const stmt_sql[ST_COUNT] = {
	[ST_PING] = "PRAGMA user_version",
	[ST_KEY_FIND] = "SELECT project_id, key_hash, revoked_at IS NOT NULL "
	    "FROM api_keys WHERE key_id = ?1",
	[ST_RATE_GET] = "SELECT rate_tat_us, rate_limit, rate_window_ms "
	    "FROM api_keys WHERE key_id = ?1 AND revoked_at IS NULL",
	[ST_RATE_SET] = "UPDATE api_keys SET rate_tat_us = ?2 "
	    "WHERE key_id = ?1",
	[ST_AUDIT_INSERT] = "INSERT INTO audit_log (created_at, request_id, "
	    "method, route, status, error_code, key_id, project_id, "
	    "client_addr, duration_ms) "
	    "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
	[ST_SANDBOX_GET] = SB_COLS
	    "WHERE project_id = ?1 AND sandbox_id = ?2 "
	    "AND sandbox_id NOT LIKE 'pending-%'",
	[ST_SANDBOX_LIST] = SB_COLS
	    "WHERE project_id = ?1 AND status = 'running' "
	    "AND sandbox_id NOT LIKE 'pending-%' "
	    "AND expires_at > strftime('%Y-%m-%dT%H:%M:%fZ', 'now') "
	    "ORDER BY created_at, sandbox_id",
	[ST_SB_CLAIM] = "INSERT INTO sandboxes (sandbox_id, project_id, "
	    "session_id, provider, status, language, idle_timeout_s, "
	    "created_at, last_used_at, expires_at, busy_until, runs) "
	    "SELECT ?1, ?2, ?3, ?4, 'running', ?5, ?6, ?7, ?7, ?8, ?10, "
	    "?10 IS NOT NULL "
	    "WHERE (SELECT count(*) FROM sandboxes "
	    "WHERE project_id = ?2 AND status = 'running') < ?9",
	/* Idle: not pending, no run under way (or only runs whose deadline
	 * has passed: a gateway that died mid-run). */
	[ST_SB_LRU_IDLE] = "SELECT sandbox_id, session_id FROM sandboxes "
	    "WHERE project_id = ?1 AND status = 'running' "
	    "AND session_id IS NOT NULL AND sandbox_id NOT LIKE 'pending-%' "
	    "AND (runs = 0 OR busy_until IS NULL OR busy_until < ?2) "
	    "ORDER BY last_used_at LIMIT 1",
	[ST_SB_EVICT] = "UPDATE sandboxes SET status = 'closed', "
	    "closed_at = ?2 WHERE sandbox_id = ?1 AND status = 'running'",
	[ST_EVICTION_ADD] = "INSERT OR REPLACE INTO session_evictions "
	    "(project_id, session_id, sandbox_id, evicted_at) "
	    "VALUES (?1, ?2, ?3, ?4)",
	[ST_EVICTION_TAKE] = "DELETE FROM session_evictions "
	    "WHERE project_id = ?1 AND session_id = ?2",
	[ST_SB_STALE] = "DELETE FROM sandboxes WHERE project_id = ?1 "
	    "AND sandbox_id LIKE 'pending-%' AND created_at < ?2",
	[ST_SB_LIVE_ID] = SB_COLS "WHERE project_id = ?1 AND sandbox_id = ?2 "
	    "AND status = 'running'",
	[ST_SB_LIVE_SESSION] = SB_COLS "WHERE project_id = ?1 "
	    "AND session_id = ?2 AND status = 'running'",
	[ST_SB_RENAME] = "UPDATE sandboxes SET sandbox_id = ?2 "
	    "WHERE sandbox_id = ?1",
	[ST_SB_FORGET] = "DELETE FROM sandboxes WHERE sandbox_id = ?1",
	/* ?4 > 0: a run of ?4 s begins; 0: one ends.  Another run still
	 * under way keeps its deadline and its lifetime (the right-hand
	 * sides see the row as it was). */
	[ST_SB_TOUCH] = "UPDATE sandboxes SET last_used_at = ?2, "
	    "expires_at = CASE WHEN ?4 = 0 AND runs > 1 THEN "
	    "max(expires_at, " SB_AHEAD("idle_timeout_s") ") ELSE "
	    SB_AHEAD("idle_timeout_s + ?4") " END, "
	    "busy_until = CASE WHEN ?4 > 0 THEN "
	    "max(coalesce(busy_until, ''), " SB_AHEAD("?4") ") "
	    "WHEN runs > 1 THEN busy_until END, "
	    "runs = CASE WHEN ?4 > 0 THEN runs + 1 ELSE max(runs - 1, 0) END, "
	    "executions = executions + ?3 "
	    "WHERE sandbox_id = ?1 AND status = 'running'",
	[ST_SB_END] = "UPDATE sandboxes SET status = ?2, closed_at = ?3 "
	    "WHERE sandbox_id = ?1 AND status = 'running'",
	[ST_SB_EVENT] = "INSERT INTO sandbox_events (created_at, sandbox_id, "
	    "project_id, event, detail) VALUES (?1, ?2, ?3, ?4, ?5)",
	[ST_SB_EXPIRED] = "SELECT sandbox_id, project_id FROM sandboxes "
	    "WHERE status = 'running' AND expires_at < ?1 "
	    "AND sandbox_id NOT LIKE 'pending-%' LIMIT ?2",
	[ST_EXEC_INSERT] = "INSERT INTO executions (execution_id, request_id, "
	    "created_at, project_id, key_id, session_id, sandbox_id, provider, "
	    "language, code_bytes, code_sha256, code, status, error_name, "
	    "error_message, duration_ms, stdout_bytes, stderr_bytes, "
	    "result_count) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, "
	    "?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19)",
	/* Shared with iris-admin stats: common/queries.h. */
	[ST_METRICS] = QUERY_METRICS,
	[ST_METRICS_SB] = QUERY_METRICS_SANDBOXES,
	[ST_ERROR_TYPES] = QUERY_ERROR_TYPES,
	/* Newest first by (created_at, execution_id); ULIDs break ties. */
	[ST_EXEC_LIST] = "SELECT execution_id, created_at, session_id, "
	    "sandbox_id, language, status, error_name, duration_ms, code_bytes "
	    "FROM executions WHERE project_id = ?1 "
	    "AND (?2 IS NULL OR (created_at, execution_id) < (?2, ?3)) "
	    "AND (?4 IS NULL OR session_id = ?4) "
	    "AND (?5 IS NULL OR status = ?5) "
	    "ORDER BY created_at DESC, execution_id DESC LIMIT ?6",
	[ST_EXEC_FIND] = "SELECT created_at FROM executions "
	    "WHERE project_id = ?1 AND execution_id = ?2",
	[ST_BEGIN] = "BEGIN IMMEDIATE",
	[ST_COMMIT] = "COMMIT",
	[ST_ROLLBACK] = "ROLLBACK",
};

struct store {
	sqlite3		*db;
	sqlite3_stmt	*stmt[ST_COUNT];
};

/* Serializes this process's write transactions (see store.h). */
static pthread_mutex_t write_lock = PTHREAD_MUTEX_INITIALIZER;

static enum store_status
status_of(struct store *st, int rc, const char *what)
{
	switch (rc & 0xff) {
	case SQLITE_OK:
	case SQLITE_DONE:
	case SQLITE_ROW:
		return STORE_OK;
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		log_warnx("database busy: %s", what);
		return STORE_BUSY;
	default:
		log_warnx("database: %s: %s", what, sqlite3_errmsg(st->db));
		return STORE_ERROR;
	}
}

/* Returns statement id, reset and unbound, ready to bind. */
static sqlite3_stmt *
stmt(struct store *st, enum stmt_id id)
{
	sqlite3_reset(st->stmt[id]);
	sqlite3_clear_bindings(st->stmt[id]);
	return st->stmt[id];
}

/* Runs a statement that returns no rows. */
static enum store_status
run(struct store *st, enum stmt_id id, const char *what)
{
	int rc = sqlite3_step(stmt(st, id));

	sqlite3_reset(st->stmt[id]);
	return status_of(st, rc, what);
}

static void
text_col(sqlite3_stmt *s, int col, char *out, size_t outsz)
{
	const unsigned char *v = sqlite3_column_text(s, col);
	size_t n = v ? (size_t)sqlite3_column_bytes(s, col) : 0;

	if (n >= outsz)
		n = outsz - 1;
	if (n)
		memcpy(out, v, n);
	out[n] = '\0';
}

static void
bind_text(sqlite3_stmt *s, int idx, const char *v)
{
	if (v == NULL || *v == '\0')
		sqlite3_bind_null(s, idx);
	else
		sqlite3_bind_text(s, idx, v, -1, SQLITE_STATIC);
}

struct store *
store_open(const char *path, int busy_ms)
{
	struct store *st;
	int i;

	if ((st = calloc(1, sizeof(*st))) == NULL)
		return NULL;
	if ((st->db = db_open(path, 0, busy_ms)) == NULL)
		goto fail;
	for (i = 0; i < ST_COUNT; i++) {
		if (sqlite3_prepare_v3(st->db, stmt_sql[i], -1,
		    SQLITE_PREPARE_PERSISTENT, &st->stmt[i], NULL) != SQLITE_OK) {
			log_warnx("database: preparing statement %d: %s", i,
			    sqlite3_errmsg(st->db));
			goto fail;
		}
	}
	if (store_ping(st) != STORE_OK)
		goto fail;
	return st;
fail:
	store_close(st);
	return NULL;
}

void
store_close(struct store *st)
{
	int i;

	if (st == NULL)
		return;
	for (i = 0; i < ST_COUNT; i++)
		sqlite3_finalize(st->stmt[i]);
	sqlite3_close(st->db);
	free(st);
}

int
store_migrate(const char *path, int busy_ms)
{
	sqlite3 *db;
	int v;

	if ((db = db_open(path, 1, busy_ms)) == NULL)
		return -1;
	v = db_migrate(db);
	sqlite3_close(db);
	return v == db_schema_version() ? 0 : -1;
}

enum store_status
store_ping(struct store *st)
{
	sqlite3_stmt *s = stmt(st, ST_PING);
	enum store_status rv;
	int rc;

	if ((rc = sqlite3_step(s)) != SQLITE_ROW)
		rv = status_of(st, rc, "ping");
	else if (sqlite3_column_int(s, 0) != db_schema_version()) {
		log_warnx("database: schema version %d, expected %d",
		    sqlite3_column_int(s, 0), db_schema_version());
		rv = STORE_ERROR;
	} else
		rv = STORE_OK;
	sqlite3_reset(s);
	return rv;
}

enum store_status
store_key_find(struct store *st, const char *key_id, struct store_key *key)
{
	sqlite3_stmt *s = stmt(st, ST_KEY_FIND);
	enum store_status rv = STORE_NOT_FOUND;
	int rc;

	sqlite3_bind_text(s, 1, key_id, -1, SQLITE_STATIC);
	if ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		text_col(s, 0, key->project_id, sizeof(key->project_id));
		if (sqlite3_column_bytes(s, 1) == CRYPTO_SHA256_LEN) {
			memcpy(key->hash, sqlite3_column_blob(s, 1),
			    CRYPTO_SHA256_LEN);
			key->revoked = sqlite3_column_int(s, 2);
			rv = STORE_OK;
		}
	} else if (rc != SQLITE_DONE)
		rv = status_of(st, rc, "finding a key");
	sqlite3_reset(s);
	return rv;
}

/* The read-modify-write of one key's TAT; the caller holds the lock. */
static enum store_status
rate_update(struct store *st, const char *key_id, int64_t now_us,
    struct rl_result *res, long *limit)
{
	sqlite3_stmt *s = stmt(st, ST_RATE_GET);
	enum store_status rv;
	int rc;

	sqlite3_bind_text(s, 1, key_id, -1, SQLITE_STATIC);
	if ((rc = sqlite3_step(s)) != SQLITE_ROW) {
		sqlite3_reset(s);
		return rc == SQLITE_DONE ? STORE_NOT_FOUND :
		    status_of(st, rc, "reading a rate limit");
	}
	*limit = (long)sqlite3_column_int64(s, 1);
	rl_decide(sqlite3_column_int64(s, 0), now_us, *limit,
	    (long)sqlite3_column_int64(s, 2), res);
	sqlite3_reset(s);
	if (!res->admitted)
		return STORE_OK;
	s = stmt(st, ST_RATE_SET);
	sqlite3_bind_text(s, 1, key_id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 2, res->tat_us);
	rc = sqlite3_step(s);
	sqlite3_reset(s);
	rv = status_of(st, rc, "updating a rate limit");
	return rv;
}

/* Runs body(st, arg) inside BEGIN IMMEDIATE ... COMMIT under write_lock. */
static enum store_status
in_write_txn(struct store *st,
    enum store_status (*body)(struct store *, void *), void *arg)
{
	enum store_status rv;

	pthread_mutex_lock(&write_lock);
	if ((rv = run(st, ST_BEGIN, "beginning a transaction")) == STORE_OK) {
		rv = body(st, arg);
		if (rv == STORE_OK || rv == STORE_NOT_FOUND) {
			enum store_status crv = run(st, ST_COMMIT, "committing");

			if (crv != STORE_OK)
				rv = crv;
		}
		if (rv != STORE_OK && rv != STORE_NOT_FOUND)
			run(st, ST_ROLLBACK, "rolling back");
	}
	pthread_mutex_unlock(&write_lock);
	return rv;
}

static enum store_status
audit_insert(struct store *st, const struct audit_rec *r)
{
	sqlite3_stmt *s = stmt(st, ST_AUDIT_INSERT);
	enum store_status rv;

	sqlite3_bind_text(s, 1, r->created_at, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 2, r->request_id, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 3, r->method, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 4, r->route, -1, SQLITE_STATIC);
	sqlite3_bind_int(s, 5, r->status);
	bind_text(s, 6, r->error_code);
	bind_text(s, 7, r->key_id);
	bind_text(s, 8, r->project_id);
	bind_text(s, 9, r->client_addr);
	sqlite3_bind_int64(s, 10, r->duration_ms);
	rv = status_of(st, sqlite3_step(s), "writing an audit row");
	sqlite3_reset(s);
	return rv;
}

struct batch_args {
	struct store_op	*ops;
	int		 n;
};

static enum store_status
batch_body(struct store *st, void *arg)
{
	struct batch_args *a = arg;
	struct store_op *op;
	enum store_status rv;
	int i;

	for (i = 0; i < a->n; i++) {
		op = &a->ops[i];
		if (op->kind == STORE_OP_ADMIT)
			rv = rate_update(st, op->key_id, op->now_us, op->res,
			    op->limit);
		else
			rv = audit_insert(st, op->rec);
		if (rv != STORE_OK && rv != STORE_NOT_FOUND)
			return rv;
		op->status = rv;
	}
	return STORE_OK;
}

enum store_status
store_batch(struct store *st, struct store_op *ops, int n)
{
	struct batch_args a = { ops, n };
	enum store_status rv = in_write_txn(st, batch_body, &a);
	int i;

	if (rv != STORE_OK)
		for (i = 0; i < n; i++)
			ops[i].status = rv;
	return rv;
}

static void
sandbox_row(sqlite3_stmt *s, struct store_sandbox *sb)
{
	text_col(s, 0, sb->sandbox_id, sizeof(sb->sandbox_id));
	text_col(s, 1, sb->project_id, sizeof(sb->project_id));
	text_col(s, 2, sb->session_id, sizeof(sb->session_id));
	text_col(s, 3, sb->provider, sizeof(sb->provider));
	text_col(s, 4, sb->status, sizeof(sb->status));
	text_col(s, 5, sb->created_at, sizeof(sb->created_at));
	text_col(s, 6, sb->last_used_at, sizeof(sb->last_used_at));
	text_col(s, 7, sb->expires_at, sizeof(sb->expires_at));
	sb->executions = (long)sqlite3_column_int64(s, 8);
	text_col(s, 9, sb->language, sizeof(sb->language));
	sb->idle_timeout_s = (long)sqlite3_column_int64(s, 10);
}

enum store_status
store_sandbox_get(struct store *st, const char *project_id,
    const char *sandbox_id, struct store_sandbox *sb)
{
	sqlite3_stmt *s = stmt(st, ST_SANDBOX_GET);
	enum store_status rv = STORE_NOT_FOUND;
	int rc;

	sqlite3_bind_text(s, 1, project_id, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 2, sandbox_id, -1, SQLITE_STATIC);
	if ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		sandbox_row(s, sb);
		rv = STORE_OK;
	} else if (rc != SQLITE_DONE)
		rv = status_of(st, rc, "finding a sandbox");
	sqlite3_reset(s);
	return rv;
}

enum store_status
store_sandbox_list(struct store *st, const char *project_id,
    int (*fn)(void *, const struct store_sandbox *), void *arg)
{
	sqlite3_stmt *s = stmt(st, ST_SANDBOX_LIST);
	struct store_sandbox sb;
	enum store_status rv = STORE_OK;
	int rc;

	sqlite3_bind_text(s, 1, project_id, -1, SQLITE_STATIC);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		sandbox_row(s, &sb);
		if (fn(arg, &sb) == -1) {
			rv = STORE_ERROR;
			break;
		}
	}
	if (rv == STORE_OK && rc != SQLITE_DONE)
		rv = status_of(st, rc, "listing sandboxes");
	sqlite3_reset(s);
	return rv;
}

/* --- sandbox lifecycle rows ----------------------------------------------- */

static void
iso_now(char out[TS_ISO_LEN], int64_t ms)
{
	ts_format(ms, out);
}

static enum store_status event_insert(struct store *, const char *,
    const char *, const char *, const char *);

struct claim_args {
	const struct store_sandbox	*sb;
	int64_t				 now_ms;
	long				 busy_s;
	long				 cap;
	int64_t				 stale_ms;
	char				*evicted;	/* OUT */
};

/* One step of a transaction; rc of the step (the statement is reset). */
static int
step_reset(sqlite3_stmt *s)
{
	int rc = sqlite3_step(s);

	sqlite3_reset(s);
	return rc;
}

/*
 * Within the claim's transaction: closes the project's least recently
 * used idle session to make room, and leaves its session a notice.
 * Returns STORE_OK (its id in a->evicted), STORE_NOT_FOUND if every live
 * sandbox is busy or no session's, or an error.
 */
static enum store_status
evict_lru(struct store *st, struct claim_args *a, const char *now)
{
	char id[IDS_MAX_LEN + 1], session[IDS_MAX_LEN + 1];
	sqlite3_stmt *s = stmt(st, ST_SB_LRU_IDLE);
	enum store_status rv;
	int rc;

	sqlite3_bind_text(s, 1, a->sb->project_id, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 2, now, -1, SQLITE_STATIC);
	if ((rc = sqlite3_step(s)) != SQLITE_ROW) {
		sqlite3_reset(s);
		return rc == SQLITE_DONE ? STORE_NOT_FOUND :
		    status_of(st, rc, "finding an idle session");
	}
	text_col(s, 0, id, sizeof(id));
	text_col(s, 1, session, sizeof(session));
	sqlite3_reset(s);
	s = stmt(st, ST_SB_EVICT);
	sqlite3_bind_text(s, 1, id, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 2, now, -1, SQLITE_STATIC);
	if ((rv = status_of(st, step_reset(s), "evicting a session")) !=
	    STORE_OK)
		return rv;
	s = stmt(st, ST_EVICTION_ADD);
	sqlite3_bind_text(s, 1, a->sb->project_id, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 2, session, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 3, id, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 4, now, -1, SQLITE_STATIC);
	if ((rv = status_of(st, step_reset(s), "noting an eviction")) !=
	    STORE_OK ||
	    (rv = event_insert(st, id, a->sb->project_id, "closed",
	    "evicted: the project's least recently used idle session, to "
	    "make room for another run")) != STORE_OK)
		return rv;
	memcpy(a->evicted, id, sizeof(id));
	return STORE_OK;
}

static enum store_status
claim_insert(struct store *st, struct claim_args *a, const char *now,
    const char *expires, const char *busy)
{
	const struct store_sandbox *sb = a->sb;
	sqlite3_stmt *s = stmt(st, ST_SB_CLAIM);
	enum store_status rv;
	int rc;

	sqlite3_bind_text(s, 1, sb->sandbox_id, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 2, sb->project_id, -1, SQLITE_STATIC);
	bind_text(s, 3, sb->session_id);
	sqlite3_bind_text(s, 4, sb->provider, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 5, sb->language, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 6, sb->idle_timeout_s);
	sqlite3_bind_text(s, 7, now, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 8, expires, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 9, a->cap);
	bind_text(s, 10, busy);
	rc = step_reset(s);
	if ((rc & 0xff) == SQLITE_CONSTRAINT)
		return STORE_EXISTS;
	if ((rv = status_of(st, rc, "adding a sandbox")) != STORE_OK)
		return rv;
	return sqlite3_changes(st->db) == 0 ? STORE_LIMIT : STORE_OK;
}

static enum store_status
claim_body(struct store *st, void *arg)
{
	struct claim_args *a = arg;
	const struct store_sandbox *sb = a->sb;
	char now[TS_ISO_LEN], stale[TS_ISO_LEN], expires[TS_ISO_LEN];
	char busy[TS_ISO_LEN];
	sqlite3_stmt *s;
	enum store_status rv;

	iso_now(now, a->now_ms);
	iso_now(busy, a->now_ms + (int64_t)a->busy_s * 1000);
	iso_now(stale, a->now_ms - a->stale_ms);
	iso_now(expires, a->now_ms + (int64_t)(sb->idle_timeout_s +
	    a->busy_s) * 1000);
	s = stmt(st, ST_SB_STALE);
	sqlite3_bind_text(s, 1, sb->project_id, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 2, stale, -1, SQLITE_STATIC);
	if ((rv = status_of(st, step_reset(s), "removing stale rows")) !=
	    STORE_OK)
		return rv;
	if ((rv = claim_insert(st, a, now, expires, a->busy_s ? busy : NULL))
	    != STORE_LIMIT)
		return rv;
	/* At the cap: the least recently used idle session makes room. */
	if ((rv = evict_lru(st, a, now)) != STORE_OK)
		return rv == STORE_NOT_FOUND ? STORE_LIMIT : rv;
	return claim_insert(st, a, now, expires, a->busy_s ? busy : NULL);
}

enum store_status
store_sandbox_claim(struct store *st, const struct store_sandbox *sb,
    int64_t now_ms, long busy_s, long cap, int64_t stale_ms, char *evicted)
{
	struct claim_args a = { sb, now_ms, busy_s, cap, stale_ms, evicted };

	evicted[0] = '\0';
	/* A refusal is an answer, not a failure.  in_write_txn rolls back
	 * on STORE_LIMIT: an eviction is kept only with its insert. */
	return in_write_txn(st, claim_body, &a);
}


enum store_status
store_sandbox_live(struct store *st, const char *project_id,
    const char *sandbox_id, const char *session_id, struct store_sandbox *sb)
{
	sqlite3_stmt *s = stmt(st, sandbox_id ? ST_SB_LIVE_ID :
	    ST_SB_LIVE_SESSION);
	enum store_status rv = STORE_NOT_FOUND;
	int rc;

	sqlite3_bind_text(s, 1, project_id, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 2, sandbox_id ? sandbox_id : session_id, -1,
	    SQLITE_STATIC);
	if ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		sandbox_row(s, sb);
		rv = STORE_OK;
	} else if (rc != SQLITE_DONE)
		rv = status_of(st, rc, "finding a live sandbox");
	sqlite3_reset(s);
	return rv;
}

/* One write statement with text parameters, in its own transaction. */
struct write_args {
	enum stmt_id	 id;
	const char	*text[4];
	int64_t		 num[2];
	int		 ntext, nnum;
	const char	*what;
};

static enum store_status
write_body(struct store *st, void *arg)
{
	struct write_args *a = arg;
	sqlite3_stmt *s = stmt(st, a->id);
	enum store_status rv;
	int i;

	for (i = 0; i < a->ntext; i++)
		bind_text(s, i + 1, a->text[i]);
	for (i = 0; i < a->nnum; i++)
		sqlite3_bind_int64(s, a->ntext + i + 1, a->num[i]);
	rv = status_of(st, sqlite3_step(s), a->what);
	sqlite3_reset(s);
	if (rv == STORE_OK && sqlite3_changes(st->db) == 0)
		rv = STORE_NOT_FOUND;
	return rv;
}

enum store_status
store_session_evicted(struct store *st, const char *project_id,
    const char *session_id)
{
	struct write_args a = { ST_EVICTION_TAKE, { project_id, session_id },
	    { 0 }, 2, 0, "taking an eviction notice" };

	return in_write_txn(st, write_body, &a);
}

enum store_status
store_sandbox_rename(struct store *st, const char *from, const char *to)
{
	struct write_args a = { ST_SB_RENAME, { from, to }, { 0 }, 2, 0,
	    "naming a sandbox" };

	return in_write_txn(st, write_body, &a);
}

enum store_status
store_sandbox_forget(struct store *st, const char *id)
{
	struct write_args a = { ST_SB_FORGET, { id }, { 0 }, 1, 0,
	    "removing a sandbox row" };

	return in_write_txn(st, write_body, &a);
}

enum store_status
store_sandbox_touch(struct store *st, const char *id, int64_t now_ms,
    long executions, long busy_s)
{
	char now[TS_ISO_LEN];
	struct write_args a = { ST_SB_TOUCH, { id, now }, { executions, busy_s },
	    2, 2, "recording a sandbox's use" };

	iso_now(now, now_ms);
	return in_write_txn(st, write_body, &a);
}

struct end_args {
	const char	*id, *project_id, *status, *detail;
};

static enum store_status
event_insert(struct store *st, const char *id, const char *project_id,
    const char *event, const char *detail)
{
	char now[TS_ISO_LEN];
	sqlite3_stmt *s = stmt(st, ST_SB_EVENT);
	enum store_status rv;

	iso_now(now, ts_now_ms());
	sqlite3_bind_text(s, 1, now, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 2, id, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 3, project_id, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 4, event, -1, SQLITE_STATIC);
	bind_text(s, 5, detail);
	rv = status_of(st, sqlite3_step(s), "writing a sandbox event");
	sqlite3_reset(s);
	return rv;
}

static enum store_status
end_body(struct store *st, void *arg)
{
	struct end_args *a = arg;
	char now[TS_ISO_LEN];
	sqlite3_stmt *s = stmt(st, ST_SB_END);
	enum store_status rv;

	iso_now(now, ts_now_ms());
	sqlite3_bind_text(s, 1, a->id, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 2, a->status, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 3, now, -1, SQLITE_STATIC);
	rv = status_of(st, sqlite3_step(s), "ending a sandbox");
	sqlite3_reset(s);
	if (rv != STORE_OK)
		return rv;
	if (sqlite3_changes(st->db) == 0)
		return STORE_NOT_FOUND;
	return event_insert(st, a->id, a->project_id, a->status, a->detail);
}

enum store_status
store_sandbox_end(struct store *st, const char *id, const char *project_id,
    const char *status, const char *detail)
{
	struct end_args a = { id, project_id, status, detail };

	return in_write_txn(st, end_body, &a);
}

struct event_args {
	const char	*id, *project_id, *event, *detail;
};

static enum store_status
event_body(struct store *st, void *arg)
{
	struct event_args *a = arg;

	return event_insert(st, a->id, a->project_id, a->event, a->detail);
}

enum store_status
store_sandbox_event(struct store *st, const char *id, const char *project_id,
    const char *event, const char *detail)
{
	struct event_args a = { id, project_id, event, detail };

	return in_write_txn(st, event_body, &a);
}

int
store_sandbox_expired(struct store *st, int64_t now_ms,
    char (*ids)[IDS_MAX_LEN + 1], char (*projects)[IDS_MAX_LEN + 1], int max)
{
	sqlite3_stmt *s = stmt(st, ST_SB_EXPIRED);
	char now[TS_ISO_LEN];
	int n = 0, rc;

	iso_now(now, now_ms);
	sqlite3_bind_text(s, 1, now, -1, SQLITE_STATIC);
	sqlite3_bind_int(s, 2, max);
	while (n < max && (rc = sqlite3_step(s)) == SQLITE_ROW) {
		text_col(s, 0, ids[n], IDS_MAX_LEN + 1);
		text_col(s, 1, projects[n], IDS_MAX_LEN + 1);
		n++;
	}
	if (n < max && rc != SQLITE_DONE) {
		status_of(st, rc, "finding expired sandboxes");
		n = -1;
	}
	sqlite3_reset(s);
	return n;
}

static enum store_status
exec_body(struct store *st, void *arg)
{
	const struct exec_row *r = arg;
	sqlite3_stmt *s = stmt(st, ST_EXEC_INSERT);
	enum store_status rv;

	sqlite3_bind_text(s, 1, r->execution_id, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 2, r->request_id, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 3, r->created_at, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 4, r->project_id, -1, SQLITE_STATIC);
	bind_text(s, 5, r->key_id);
	bind_text(s, 6, r->session_id);
	bind_text(s, 7, r->sandbox_id);
	bind_text(s, 8, r->provider);
	sqlite3_bind_text(s, 9, r->language, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 10, r->code_bytes);
	sqlite3_bind_text(s, 11, r->code_sha256, -1, SQLITE_STATIC);
	if (r->code)
		sqlite3_bind_text64(s, 12, r->code, r->code_len,
		    SQLITE_STATIC, SQLITE_UTF8);
	sqlite3_bind_text(s, 13, r->status, -1, SQLITE_STATIC);
	bind_text(s, 14, r->error_name);
	bind_text(s, 15, r->error_message);
	sqlite3_bind_int64(s, 16, r->duration_ms);
	sqlite3_bind_int64(s, 17, r->stdout_bytes);
	sqlite3_bind_int64(s, 18, r->stderr_bytes);
	sqlite3_bind_int64(s, 19, r->result_count);
	rv = status_of(st, sqlite3_step(s), "writing an execution row");
	sqlite3_reset(s);
	return rv;
}

enum store_status
store_execution_insert(struct store *st, const struct exec_row *row)
{
	return in_write_txn(st, exec_body, (void *)(uintptr_t)row);
}

/* --- what the project asks about itself -------------------------------- */

static long
col_long(sqlite3_stmt *s, int col)
{
	return sqlite3_column_type(s, col) == SQLITE_NULL ? -1 :
	    (long)sqlite3_column_int64(s, col);
}

enum store_status
store_metrics(struct store *st, const char *project_id, const char *since,
    struct store_metrics *m, int (*fn)(void *, const char *, long), void *arg)
{
	sqlite3_stmt *s;
	enum store_status rv;
	int rc;

	memset(m, 0, sizeof(*m));
	s = stmt(st, ST_METRICS);
	sqlite3_bind_text(s, 1, project_id, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 2, since, -1, SQLITE_STATIC);
	if ((rc = sqlite3_step(s)) != SQLITE_ROW) {
		sqlite3_reset(s);
		return status_of(st, rc, "computing metrics");
	}
	m->succeeded = col_long(s, 0);
	m->errors = col_long(s, 1);
	m->timed_out = col_long(s, 2);
	m->upstream_errors = col_long(s, 3);
	m->failed = m->errors + m->upstream_errors;
	m->total = m->succeeded + m->failed + m->timed_out;
	m->p50 = col_long(s, 4);
	m->p95 = col_long(s, 5);
	m->p99 = col_long(s, 6);
	sqlite3_reset(s);

	s = stmt(st, ST_METRICS_SB);
	sqlite3_bind_text(s, 1, project_id, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 2, since, -1, SQLITE_STATIC);
	if ((rc = sqlite3_step(s)) != SQLITE_ROW) {
		sqlite3_reset(s);
		return status_of(st, rc, "counting sandboxes");
	}
	m->live = col_long(s, 0);
	m->created = col_long(s, 1);
	sqlite3_reset(s);

	s = stmt(st, ST_ERROR_TYPES);
	sqlite3_bind_text(s, 1, project_id, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 2, since, -1, SQLITE_STATIC);
	sqlite3_bind_int(s, 3, ERROR_TYPES_MAX);
	rv = STORE_OK;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW)
		if (fn(arg, (const char *)sqlite3_column_text(s, 0),
		    col_long(s, 1)) == -1) {
			rv = STORE_ERROR;
			break;
		}
	if (rv == STORE_OK && rc != SQLITE_DONE)
		rv = status_of(st, rc, "counting error types");
	sqlite3_reset(s);
	return rv;
}

enum store_status
store_executions(struct store *st, const char *project_id, const char *before,
    const char *session_id, const char *status, int limit,
    int (*fn)(void *, const struct store_exec_item *), void *arg)
{
	char before_at[TS_ISO_LEN] = "";
	struct store_exec_item it;
	sqlite3_stmt *s;
	enum store_status rv = STORE_OK;
	int rc;

	if (before) {
		s = stmt(st, ST_EXEC_FIND);
		sqlite3_bind_text(s, 1, project_id, -1, SQLITE_STATIC);
		sqlite3_bind_text(s, 2, before, -1, SQLITE_STATIC);
		rc = sqlite3_step(s);
		if (rc == SQLITE_ROW)
			text_col(s, 0, before_at, sizeof(before_at));
		sqlite3_reset(s);
		if (rc == SQLITE_DONE)
			return STORE_NOT_FOUND;
		if (rc != SQLITE_ROW)
			return status_of(st, rc, "finding an execution");
	}
	s = stmt(st, ST_EXEC_LIST);
	sqlite3_bind_text(s, 1, project_id, -1, SQLITE_STATIC);
	bind_text(s, 2, before ? before_at : NULL);
	bind_text(s, 3, before);
	bind_text(s, 4, session_id);
	bind_text(s, 5, status);
	sqlite3_bind_int(s, 6, limit);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		it.execution_id = (const char *)sqlite3_column_text(s, 0);
		it.created_at = (const char *)sqlite3_column_text(s, 1);
		it.session_id = (const char *)sqlite3_column_text(s, 2);
		it.sandbox_id = (const char *)sqlite3_column_text(s, 3);
		it.language = (const char *)sqlite3_column_text(s, 4);
		it.status = (const char *)sqlite3_column_text(s, 5);
		it.error_name = (const char *)sqlite3_column_text(s, 6);
		it.duration_ms = col_long(s, 7);
		it.code_bytes = col_long(s, 8);
		if (fn(arg, &it) == -1) {
			rv = STORE_ERROR;
			break;
		}
	}
	if (rv == STORE_OK && rc != SQLITE_DONE)
		rv = status_of(st, rc, "listing executions");
	sqlite3_reset(s);
	return rv;
}
