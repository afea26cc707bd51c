-- 002_views: views for the questions operators ask, and the indexes behind
-- them and the metrics endpoints.  Views and indexes only; no table changes.
-- See sql/README.md for each view, with an example and its output.
--
-- Counting rules (executions.status):
--   volume        every row: ok + error + timeout + upstream_error + rejected
--   success_rate  ok / (ok + error + timeout): the share of code that ran to
--                 the end.  upstream_error (our provider or database failed)
--                 and rejected (refused before running) are counted in their
--                 own columns and left out of the rate; NULL when no code ran.
-- Percentiles (nearest rank): for the n durations of a group sorted
-- ascending x[1] <= ... <= x[n], pP = x[k] with k = ceil(P * n / 100), i.e.
-- the smallest value whose cumulative share of rows is >= P%.  Always one
-- of the observed values; with one row, p50 = p95 = p99 = that row.
-- Latency covers the executions that ran code (ok, error, timeout).
-- Ages are whole seconds (truncated) from julianday() differences, rounded
-- to the millisecond first so that float error never loses a second.

-- Per project and UTC day.
CREATE VIEW v_project_daily AS
SELECT
	project_id,
	substr(created_at, 1, 10) AS day,
	count(*) AS volume,
	sum(status = 'ok') AS succeeded,
	sum(status = 'error') AS failed,
	sum(status = 'timeout') AS timed_out,
	sum(status = 'upstream_error') AS upstream_errors,
	sum(status = 'rejected') AS rejected,
	round(1.0 * sum(status = 'ok') /
	    nullif(sum(status IN ('ok', 'error', 'timeout')), 0), 4)
	    AS success_rate
FROM executions
GROUP BY project_id, substr(created_at, 1, 10)
ORDER BY project_id, day;

-- Nearest-rank p50/p95/p99 of duration_ms per project and language, over
-- all time.  rn * 100 >= P * n  <=>  rn >= ceil(P * n / 100).
CREATE VIEW v_latency AS
WITH ranked AS (
	SELECT project_id, language, duration_ms,
	    row_number() OVER w AS rn,
	    count(*) OVER (PARTITION BY project_id, language) AS n
	FROM executions
	WHERE status IN ('ok', 'error', 'timeout')
	WINDOW w AS (PARTITION BY project_id, language ORDER BY duration_ms)
)
SELECT
	project_id,
	language,
	max(n) AS runs,
	min(CASE WHEN rn * 100 >= 50 * n THEN duration_ms END) AS p50_ms,
	min(CASE WHEN rn * 100 >= 95 * n THEN duration_ms END) AS p95_ms,
	min(CASE WHEN rn * 100 >= 99 * n THEN duration_ms END) AS p99_ms,
	max(duration_ms) AS max_ms
FROM ranked
GROUP BY project_id, language
ORDER BY project_id, language;

-- The same per UTC day.
CREATE VIEW v_latency_daily AS
WITH ranked AS (
	SELECT project_id, language, substr(created_at, 1, 10) AS day,
	    duration_ms,
	    row_number() OVER w AS rn,
	    count(*) OVER (PARTITION BY project_id, language,
		substr(created_at, 1, 10)) AS n
	FROM executions
	WHERE status IN ('ok', 'error', 'timeout')
	WINDOW w AS (PARTITION BY project_id, language,
	    substr(created_at, 1, 10) ORDER BY duration_ms)
)
SELECT
	project_id,
	language,
	day,
	max(n) AS runs,
	min(CASE WHEN rn * 100 >= 50 * n THEN duration_ms END) AS p50_ms,
	min(CASE WHEN rn * 100 >= 95 * n THEN duration_ms END) AS p95_ms,
	min(CASE WHEN rn * 100 >= 99 * n THEN duration_ms END) AS p99_ms,
	max(duration_ms) AS max_ms
FROM ranked
GROUP BY project_id, language, day
ORDER BY project_id, language, day;

-- Error names by count: every execution that did not succeed and has a name
-- (exceptions, TimeoutError, and the refusal codes of rejected calls).
CREATE VIEW v_error_types AS
SELECT
	project_id,
	error_name,
	count(*) AS count,
	min(created_at) AS first_seen,
	max(created_at) AS last_seen
FROM executions
WHERE status <> 'ok' AND error_name IS NOT NULL
GROUP BY project_id, error_name
ORDER BY project_id, count DESC, error_name;

-- Live sandboxes (not the 'pending-' placeholders), oldest first.
-- expires_in_s is negative once a sandbox is overdue for the reaper.
CREATE VIEW v_live_sandboxes AS
SELECT
	sandbox_id,
	project_id,
	session_id,
	provider,
	language,
	created_at,
	last_used_at,
	expires_at,
	executions,
	CAST(round((julianday('now') - julianday(created_at)) * 86400000)
	    AS INTEGER) / 1000 AS age_s,
	CAST(round((julianday('now') - julianday(last_used_at)) * 86400000)
	    AS INTEGER) / 1000 AS idle_s,
	CAST(round((julianday(expires_at) - julianday('now')) * 86400000)
	    AS INTEGER) / 1000 AS expires_in_s
FROM sandboxes
WHERE status = 'running' AND sandbox_id NOT LIKE 'pending-%'
ORDER BY created_at, sandbox_id;

-- Per key, from audit_log.  401s carry no key_id (the key was not valid), so
-- they cannot be counted per key: see v_refused_by_client.  Every key is
-- listed, unused ones with 0 requests and a NULL last_used_at.
CREATE VIEW v_key_usage AS
SELECT
	k.key_id,
	k.project_id,
	k.name,
	k.revoked_at,
	coalesce(a.requests, 0) AS requests,
	coalesce(a.refused, 0) AS refused,
	coalesce(a.rate_limited, 0) AS rate_limited,
	coalesce(a.requests_24h, 0) AS requests_24h,
	coalesce(a.rate_limited_24h, 0) AS rate_limited_24h,
	a.last_used_at
FROM api_keys AS k
LEFT JOIN (
	SELECT
		key_id,
		count(*) AS requests,
		sum(status >= 400) AS refused,
		sum(status = 429) AS rate_limited,
		sum(created_at >= strftime('%Y-%m-%dT%H:%M:%fZ', 'now',
		    '-1 day')) AS requests_24h,
		sum(status = 429 AND created_at >= strftime('%Y-%m-%dT%H:%M:%fZ',
		    'now', '-1 day')) AS rate_limited_24h,
		max(created_at) AS last_used_at
	FROM audit_log
	WHERE key_id IS NOT NULL
	GROUP BY key_id
) AS a ON a.key_id = k.key_id
ORDER BY k.project_id, k.key_id;

-- Refused requests (status >= 400) by client address, most first.
CREATE VIEW v_refused_by_client AS
SELECT
	client_addr,
	count(*) AS refused,
	sum(status = 401) AS unauthorized,
	sum(status = 429) AS rate_limited,
	min(created_at) AS first_seen,
	max(created_at) AS last_seen
FROM audit_log
WHERE status >= 400
GROUP BY client_addr
ORDER BY refused DESC, client_addr;

-- Refused requests, newest first.
CREATE VIEW v_refused_requests AS
SELECT
	created_at,
	status,
	error_code,
	method,
	route,
	client_addr,
	key_id,
	project_id,
	request_id,
	duration_ms
FROM audit_log
WHERE status >= 400
ORDER BY created_at DESC, id DESC;

-- Indexes.  executions(project_id, created_at) and
-- sandboxes(project_id, status) come from 001.
-- Counts by status over a time range (v_project_daily, GET /metrics,
-- GET /executions?status=).
CREATE INDEX IF NOT EXISTS executions_project_status_created
	ON executions(project_id, status, created_at);
-- Error types per project (v_error_types, GET /metrics errorTypes).
CREATE INDEX IF NOT EXISTS executions_project_error
	ON executions(project_id, error_name, created_at);
-- Durations in order per project and language (v_latency).
CREATE INDEX IF NOT EXISTS executions_project_language_duration
	ON executions(project_id, language, duration_ms);
-- Refused requests, newest first (v_refused_requests, v_refused_by_client).
CREATE INDEX IF NOT EXISTS audit_log_status_created
	ON audit_log(status, created_at);
-- Live sandboxes of every project, oldest first (v_live_sandboxes).
CREATE INDEX IF NOT EXISTS sandboxes_status_created
	ON sandboxes(status, created_at);
