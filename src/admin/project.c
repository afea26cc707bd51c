/* iris-admin project create / list. */
#include <err.h>
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>

#include "admin/admin.h"
#include "common/ids.h"
#include "common/timestamp.h"

static int	project_create(struct admin *);
static int	project_list(struct admin *);

const struct admin_cmd project_create_cmd = {
	.name = "project create",
	.usage = "NAME",
	.about = "create a project (NAME: 1-128 of A-Z a-z 0-9 . _ : -)",
	.min_args = 1,
	.max_args = 1,
	.opts = 0,
	.db = ADMIN_DB_EXISTING,
	.exec = project_create
};

const struct admin_cmd project_list_cmd = {
	.name = "project list",
	.usage = "",
	.about = "list the projects and how many active keys each has",
	.min_args = 0,
	.max_args = 0,
	.opts = 0,
	.db = ADMIN_DB_EXISTING,
	.exec = project_list
};

int
project_valid(const char *name, const char *project)
{
	if (!ids_valid(project, strlen(project))) {
		warnx("%s must be 1 to %d characters of A-Z a-z 0-9 . _ : -",
		    name, IDS_MAX_LEN);
		return ADMIN_USAGE;
	}
	return ADMIN_OK;
}

int
project_exists(struct admin *a, const char *project)
{
	static const char sql[] =
	    "SELECT 1 FROM projects WHERE project_id = ?1";
	sqlite3_stmt *st = NULL;
	int rv = ADMIN_FAIL, rc;

	if (admin_prepare(a, sql, &st) == -1)
		goto fail;
	if (sqlite3_bind_text(st, 1, project, -1, SQLITE_STATIC) != SQLITE_OK) {
		admin_dberr(a, "looking up the project");
		goto fail;
	}
	if ((rc = sqlite3_step(st)) == SQLITE_ROW)
		rv = ADMIN_OK;
	else if (rc == SQLITE_DONE)
		warnx("no project %s; create it with 'iris-admin project "
		    "create %s'", project, project);
	else
		admin_dberr(a, "looking up the project");
fail:
	sqlite3_finalize(st);
	return rv;
}

static int
project_create(struct admin *a)
{
	static const char sql[] =
	    "INSERT INTO projects (project_id, created_at) VALUES (?1, ?2)";
	const char *project = a->argv[0];
	char now[TS_ISO_LEN];
	sqlite3_stmt *st = NULL;
	int rv = ADMIN_FAIL, rc;

	if (project_valid("the project NAME", project) != ADMIN_OK)
		return ADMIN_USAGE;
	if (admin_open(a) != ADMIN_OK)
		return ADMIN_FAIL;
	ts_format(ts_now_ms(), now);
	if (admin_prepare(a, sql, &st) == -1)
		goto fail;
	if (sqlite3_bind_text(st, 1, project, -1, SQLITE_STATIC) != SQLITE_OK ||
	    sqlite3_bind_text(st, 2, now, -1, SQLITE_STATIC) != SQLITE_OK) {
		admin_dberr(a, "creating the project");
		goto fail;
	}
	rc = sqlite3_step(st);
	if (rc == SQLITE_CONSTRAINT_PRIMARYKEY) {
		warnx("project %s already exists", project);
		goto fail;
	}
	if (rc != SQLITE_DONE) {
		admin_dberr(a, "creating the project");
		goto fail;
	}
	printf("created project %s\n", project);
	rv = ADMIN_OK;
fail:
	sqlite3_finalize(st);
	return rv;
}

static int
project_list(struct admin *a)
{
	static const char sql[] =
	    "SELECT p.project_id, p.created_at,"
	    " (SELECT count(*) FROM api_keys k"
	    "  WHERE k.project_id = p.project_id AND k.revoked_at IS NULL)"
	    " FROM projects p ORDER BY p.project_id";
	static const char *const heads[] = { "PROJECT", "CREATED",
	    "ACTIVE KEYS" };
	sqlite3_stmt *st = NULL;
	int rv = ADMIN_FAIL;

	if (admin_open(a) != ADMIN_OK)
		return ADMIN_FAIL;
	if (admin_prepare(a, sql, &st) == -1)
		goto fail;
	rv = table_print(a, st, heads, 3);
fail:
	sqlite3_finalize(st);
	return rv;
}
