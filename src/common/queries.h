#ifndef IRIS_QUERIES_H
#define IRIS_QUERIES_H

/*
 * The metrics of a project, asked by the gateway (GET /api/iris/metrics)
 * and by iris-admin stats: one text, so the two always answer alike, by
 * the rules of sql/002_views.sql.  ?1 is the project, ?2 the start of the
 * window (ISO 8601); each reads by the (project_id, created_at) index, so
 * its cost follows the window, not the table.
 */

/*
 * Columns: ok, error, timeout and upstream_error calls (rejected ones are
 * left out), then p50, p95, p99 of duration_ms over the runs of code (ok,
 * error, timeout) by nearest rank: the smallest duration whose rank rn
 * has rn * 100 >= P * n.  NULL percentiles when no code ran.
 */
#define QUERY_METRICS \
	"WITH w AS (SELECT status, duration_ms FROM executions " \
	"WHERE project_id = ?1 AND created_at >= ?2 " \
	"AND status != 'rejected'), " \
	"r AS (SELECT duration_ms, row_number() OVER (ORDER BY duration_ms) " \
	"AS rn, count(*) OVER () AS n FROM w " \
	"WHERE status IN ('ok', 'error', 'timeout')) " \
	"SELECT (SELECT count(*) FROM w WHERE status = 'ok'), " \
	"(SELECT count(*) FROM w WHERE status = 'error'), " \
	"(SELECT count(*) FROM w WHERE status = 'timeout'), " \
	"(SELECT count(*) FROM w WHERE status = 'upstream_error'), " \
	"(SELECT min(duration_ms) FROM r WHERE rn * 100 >= 50 * n), " \
	"(SELECT min(duration_ms) FROM r WHERE rn * 100 >= 95 * n), " \
	"(SELECT min(duration_ms) FROM r WHERE rn * 100 >= 99 * n)"

/* Columns: live sandboxes now, sandboxes created since ?2. */
#define QUERY_METRICS_SANDBOXES \
	"SELECT (SELECT count(*) FROM sandboxes " \
	"WHERE project_id = ?1 AND status = 'running' " \
	"AND sandbox_id NOT LIKE 'pending-%' " \
	"AND expires_at > strftime('%Y-%m-%dT%H:%M:%fZ', 'now')), " \
	"(SELECT count(*) FROM sandbox_events WHERE project_id = ?1 " \
	"AND created_at >= ?2 AND event = 'created')"

/*
 * Rows: error name, count; the ?3 most frequent.  Pinned to the window's
 * index: the planner would pick the error-name one and read the project's
 * whole history (bench/metrics-scale).
 */
#define QUERY_ERROR_TYPES \
	"SELECT error_name, count(*) AS c FROM executions " \
	"INDEXED BY executions_project_created " \
	"WHERE project_id = ?1 AND created_at >= ?2 " \
	"AND status IN ('error', 'timeout', 'upstream_error') " \
	"AND error_name IS NOT NULL " \
	"GROUP BY error_name ORDER BY c DESC, error_name LIMIT ?3"

#endif
