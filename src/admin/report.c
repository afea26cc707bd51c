/* iris-admin stats / audit / executions: what happened, read-only. */
#include <err.h>
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>

#include "admin/admin.h"
#include "common/queries.h"
#include "common/timestamp.h"

#define REPORT_DAY_MS		(24LL * 3600 * 1000)
#define REPORT_LIMIT_DEFAULT	50
#define REPORT_LIMIT_MAX	10000
#define REPORT_ERRORS_MAX	10

static int	stats_exec(struct admin *);
static int	audit_exec(struct admin *);
static int	executions_exec(struct admin *);

const struct admin_cmd stats_cmd = {
	.name = "stats",
	.usage = "[--project NAME] [--since TIME]",
	.about = "execution metrics per project since TIME (default 24 h ago)",
	.min_args = 0,
	.max_args = 0,
	.opts = ADMIN_OPT(OPT_PROJECT) | ADMIN_OPT(OPT_SINCE),
	.db = ADMIN_DB_EXISTING,
	.exec = stats_exec
};

const struct admin_cmd audit_cmd = {
	.name = "audit",
	.usage = "[--project NAME] [--since TIME] [--status N] [--limit N]",
	.about = "recent requests from the audit log, newest first "
	    "(default 50)",
	.min_args = 0,
	.max_args = 0,
	.opts = ADMIN_OPT(OPT_PROJECT) | ADMIN_OPT(OPT_SINCE) |
	    ADMIN_OPT(OPT_STATUS) | ADMIN_OPT(OPT_LIMIT),
	.db = ADMIN_DB_EXISTING,
	.exec = audit_exec
};

const struct admin_cmd executions_cmd = {
	.name = "executions",
	.usage = "[--project NAME] [--limit N]",
	.about = "recent executions, newest first (default 50; never the code)",
	.min_args = 0,
	.max_args = 0,
	.opts = ADMIN_OPT(OPT_PROJECT) | ADMIN_OPT(OPT_LIMIT),
	.db = ADMIN_DB_EXISTING,
	.exec = executions_exec
};

static const char stats_projects_sql[] =
    "SELECT project_id FROM projects "
    "WHERE ?1 IS NULL OR project_id = ?1 ORDER BY project_id";

/* The statements of one stats run. */
struct stats {
	struct admin	*a;
	const char	*since;
	sqlite3_stmt	*metrics;	/* the gateway's own queries: */
	sqlite3_stmt	*sandboxes;	/* common/queries.h */
	sqlite3_stmt	*errors;
};

/* Prints column i of st, a duration, or "-" if NULL. */
static void
stats_line(const char *label, sqlite3_stmt *st, int i)
{
	if (sqlite3_column_type(st, i) == SQLITE_NULL)
		printf("  %-20s -\n", label);
	else
		printf("  %-20s %lld\n", label,
		    (long long)sqlite3_column_int64(st, i));
}

static void
stats_count(const char *label, long long n)
{
	printf("  %-20s %lld\n", label, n);
}

static void
stats_rate(long long ok, long long total)
{
	if (total == 0)
		printf("  %-20s -\n", "success rate");
	else
		printf("  %-20s %.1f%%\n", "success rate",
		    100.0 * (double)ok / (double)total);
}

/* Prints s, a stored name, with anything but printable ASCII as "?". */
static void
stats_name(const unsigned char *s)
{
	if (s == NULL)
		s = (const unsigned char *)"-";
	for (; *s != '\0'; s++)
		putchar(*s >= 0x20 && *s < 0x7f ? *s : '?');
}

/* Prints the top error names of project.  Returns 0, or -1. */
static int
stats_errors(struct stats *s, const char *project)
{
	const unsigned char *name;
	int rc, n = 0;

	sqlite3_reset(s->errors);
	if (admin_bind_text(s->a, s->errors, 1, project, "stats") == -1)
		return -1;
	printf("  %-20s", "top error types");
	while ((rc = sqlite3_step(s->errors)) == SQLITE_ROW) {
		name = sqlite3_column_text(s->errors, 0);
		fputs(n++ ? ", " : " ", stdout);
		stats_name(name);
		printf(": %lld", (long long)sqlite3_column_int64(s->errors, 1));
	}
	printf("%s\n", n ? "" : " -");
	return rc == SQLITE_DONE ? 0 : -1;
}

/* Prints one project's block.  Returns 0, or -1. */
static int
stats_project(struct stats *s, const char *project)
{
	sqlite3_stmt *m = s->metrics, *sb = s->sandboxes;
	long long ok, err, timeout, upstream;

	sqlite3_reset(m);
	sqlite3_reset(sb);
	if (admin_bind_text(s->a, m, 1, project, "stats") == -1 ||
	    admin_bind_text(s->a, sb, 1, project, "stats") == -1)
		return -1;
	if (sqlite3_step(m) != SQLITE_ROW || sqlite3_step(sb) != SQLITE_ROW)
		return -1;
	ok = sqlite3_column_int64(m, 0);
	err = sqlite3_column_int64(m, 1);
	timeout = sqlite3_column_int64(m, 2);
	upstream = sqlite3_column_int64(m, 3);
	/* As GET /api/iris/metrics words them (src/gateway/metrics.c). */
	printf("project %s since %s\n", project, s->since);
	stats_count("executions", ok + err + timeout + upstream);
	stats_count("succeeded", ok);
	stats_count("failed", err + upstream);
	stats_count("timed out", timeout);
	stats_rate(ok, ok + err + timeout);
	stats_line("p50 ms", m, 4);
	stats_line("p95 ms", m, 5);
	stats_line("p99 ms", m, 6);
	stats_line("live sandboxes", sb, 0);
	stats_line("sandboxes created", sb, 1);
	return stats_errors(s, project);
}

/* Prints a block for each project named by projects.  Returns ADMIN_*. */
static int
stats_all(struct stats *s, sqlite3_stmt *projects)
{
	const unsigned char *p;
	int rc, n = 0;

	while ((rc = sqlite3_step(projects)) == SQLITE_ROW) {
		if ((p = sqlite3_column_text(projects, 0)) == NULL)
			continue;
		if (n++)
			printf("\n");
		if (stats_project(s, (const char *)p) == -1)
			return admin_dberr(s->a, "stats");
	}
	if (rc != SQLITE_DONE)
		return admin_dberr(s->a, "stats");
	if (n == 0)
		printf("no projects\n");
	return ADMIN_OK;
}

static int
stats_exec(struct admin *a)
{
	const char *project = a->opt[OPT_PROJECT];
	char since[TS_ISO_LEN];
	struct stats s = { .a = a, .since = since };
	sqlite3_stmt *projects = NULL;
	int rv = ADMIN_FAIL, began = 0;

	if (project != NULL && project_valid("--project", project) != ADMIN_OK)
		return ADMIN_USAGE;
	if (admin_time("--since", a->opt[OPT_SINCE], REPORT_DAY_MS, since) !=
	    ADMIN_OK)
		return ADMIN_USAGE;
	if (admin_open(a) != ADMIN_OK)
		return ADMIN_FAIL;
	if (project != NULL && project_exists(a, project) != ADMIN_OK)
		return ADMIN_FAIL;
	if (admin_prepare(a, QUERY_METRICS, &s.metrics) == -1 ||
	    admin_prepare(a, QUERY_METRICS_SANDBOXES, &s.sandboxes) == -1 ||
	    admin_prepare(a, QUERY_ERROR_TYPES, &s.errors) == -1 ||
	    admin_prepare(a, stats_projects_sql, &projects) == -1)
		goto fail;
	if (admin_bind_text(a, s.metrics, 2, since, "stats") == -1 ||
	    admin_bind_text(a, s.sandboxes, 2, since, "stats") == -1 ||
	    admin_bind_text(a, s.errors, 2, since, "stats") == -1 ||
	    sqlite3_bind_int(s.errors, 3, REPORT_ERRORS_MAX) != SQLITE_OK ||
	    admin_bind_text(a, projects, 1, project, "stats") == -1)
		goto fail;
	/* One read transaction: every block sees the same moment. */
	if (sqlite3_exec(a->db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK) {
		admin_dberr(a, "stats");
		goto fail;
	}
	began = 1;
	rv = stats_all(&s, projects);
fail:
	sqlite3_finalize(projects);
	sqlite3_finalize(s.errors);
	sqlite3_finalize(s.sandboxes);
	sqlite3_finalize(s.metrics);
	if (began)
		sqlite3_exec(a->db, "COMMIT", NULL, NULL, NULL);
	return rv;
}

static int
audit_exec(struct admin *a)
{
	static const char sql[] =
	    "SELECT created_at, request_id, method, route, status, error_code,"
	    " key_id, project_id, client_addr, duration_ms FROM audit_log"
	    " WHERE (?1 IS NULL OR project_id = ?1)"
	    " AND (?2 IS NULL OR created_at >= ?2)"
	    " AND (?3 IS NULL OR status = ?3)"
	    " ORDER BY created_at DESC, id DESC LIMIT ?4";
	static const char *const heads[] = { "TIME", "REQUEST", "METHOD",
	    "ROUTE", "STATUS", "ERROR", "KEY", "PROJECT", "CLIENT",
	    "DURATION MS" };
	const char *project = a->opt[OPT_PROJECT];
	char since[TS_ISO_LEN];
	sqlite3_stmt *st = NULL;
	long status, limit;
	int rv = ADMIN_FAIL;

	if (project != NULL && project_valid("--project", project) != ADMIN_OK)
		return ADMIN_USAGE;
	if ((a->opt[OPT_SINCE] != NULL && admin_time("--since",
	    a->opt[OPT_SINCE], 0, since) != ADMIN_OK) ||
	    admin_number("--status", a->opt[OPT_STATUS], 100, 599, 0,
	    &status) != ADMIN_OK ||
	    admin_number("--limit", a->opt[OPT_LIMIT], 1, REPORT_LIMIT_MAX,
	    REPORT_LIMIT_DEFAULT, &limit) != ADMIN_OK)
		return ADMIN_USAGE;
	if (admin_open(a) != ADMIN_OK)
		return ADMIN_FAIL;
	if (admin_prepare(a, sql, &st) == -1)
		goto fail;
	if (admin_bind_text(a, st, 1, project, "audit") == -1 ||
	    admin_bind_text(a, st, 2, a->opt[OPT_SINCE] ? since : NULL,
	    "audit") == -1)
		goto fail;
	if ((a->opt[OPT_STATUS] != NULL &&
	    sqlite3_bind_int64(st, 3, status) != SQLITE_OK) ||
	    sqlite3_bind_int64(st, 4, limit) != SQLITE_OK) {
		admin_dberr(a, "audit");
		goto fail;
	}
	rv = table_print(a, st, heads, 10);
fail:
	sqlite3_finalize(st);
	return rv;
}

static int
executions_exec(struct admin *a)
{
	static const char sql[] =
	    "SELECT created_at, execution_id, project_id, session_id,"
	    " sandbox_id, language, status, error_name, duration_ms,"
	    " code_bytes FROM executions"
	    " WHERE (?1 IS NULL OR project_id = ?1)"
	    " ORDER BY created_at DESC, execution_id DESC LIMIT ?2";
	static const char *const heads[] = { "TIME", "EXECUTION", "PROJECT",
	    "SESSION", "SANDBOX", "LANGUAGE", "STATUS", "ERROR",
	    "DURATION MS", "CODE BYTES" };
	const char *project = a->opt[OPT_PROJECT];
	sqlite3_stmt *st = NULL;
	long limit;
	int rv = ADMIN_FAIL;

	if (project != NULL && project_valid("--project", project) != ADMIN_OK)
		return ADMIN_USAGE;
	if (admin_number("--limit", a->opt[OPT_LIMIT], 1, REPORT_LIMIT_MAX,
	    REPORT_LIMIT_DEFAULT, &limit) != ADMIN_OK)
		return ADMIN_USAGE;
	if (admin_open(a) != ADMIN_OK)
		return ADMIN_FAIL;
	if (admin_prepare(a, sql, &st) == -1)
		goto fail;
	if (admin_bind_text(a, st, 1, project, "executions") == -1)
		goto fail;
	if (sqlite3_bind_int64(st, 2, limit) != SQLITE_OK) {
		admin_dberr(a, "executions");
		goto fail;
	}
	rv = table_print(a, st, heads, 10);
fail:
	sqlite3_finalize(st);
	return rv;
}
