/* iris-admin prune / backup: retention and copies, beside a live gateway. */
#include <err.h>
#include <errno.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "admin/admin.h"
#include "common/timestamp.h"

/* Small write transactions, so that the gateway never waits long. */
#define PRUNE_BATCH		1000
#define BACKUP_PAGES		256	/* per step */
#define BACKUP_NAP_MS		25	/* when the source is busy */

static int	prune_exec(struct admin *);
static int	backup_exec(struct admin *);

const struct admin_cmd prune_cmd = {
	.name = "prune",
	.usage = "--before TIME [--force]",
	.about = "delete the log rows and ended sandboxes older than TIME, "
	    "then reclaim space (--force: TIME may be in the future)",
	.min_args = 0,
	.max_args = 0,
	.opts = ADMIN_OPT(OPT_BEFORE) | ADMIN_OPT(OPT_FORCE),
	.db = ADMIN_DB_EXISTING,
	.exec = prune_exec
};

const struct admin_cmd backup_cmd = {
	.name = "backup",
	.usage = "FILE",
	.about = "copy the database, consistent while the gateway writes, to "
	    "a new FILE (mode 0600)",
	.min_args = 1,
	.max_args = 1,
	.opts = 0,
	.db = ADMIN_DB_EXISTING,
	.exec = backup_exec
};

/* What prune deletes: one batch of a table's rows older than ?1. */
static const struct prune_table {
	const char	*name;
	const char	*sql;
} prune_tables[] = {
	{ .name = "audit_log",
	  .sql = "DELETE FROM audit_log WHERE rowid IN (SELECT rowid FROM "
	    "audit_log WHERE created_at < ?1 LIMIT ?2)" },
	{ .name = "executions",
	  .sql = "DELETE FROM executions WHERE rowid IN (SELECT rowid FROM "
	    "executions WHERE created_at < ?1 LIMIT ?2)" },
	{ .name = "sandbox_events",
	  .sql = "DELETE FROM sandbox_events WHERE rowid IN (SELECT rowid "
	    "FROM sandbox_events WHERE created_at < ?1 LIMIT ?2)" },
	{ .name = "sandboxes",
	  .sql = "DELETE FROM sandboxes WHERE rowid IN (SELECT rowid FROM "
	    "sandboxes WHERE status <> 'running' AND closed_at < ?1 "
	    "LIMIT ?2)" },
};
#define PRUNE_TABLES	(sizeof(prune_tables) / sizeof(prune_tables[0]))

/*
 * Deletes one batch in its own transaction.  Returns the rows deleted,
 * or -1 after reporting the error.
 */
static int
prune_batch(struct admin *a, sqlite3_stmt *st)
{
	int rc, n;

	if (sqlite3_exec(a->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) !=
	    SQLITE_OK)
		return admin_dberr(a, "pruning"), -1;
	rc = sqlite3_step(st);
	n = sqlite3_changes(a->db);
	sqlite3_reset(st);
	if (rc != SQLITE_DONE) {
		admin_dberr(a, "pruning");
		sqlite3_exec(a->db, "ROLLBACK", NULL, NULL, NULL);
		return -1;
	}
	if (sqlite3_exec(a->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
		admin_dberr(a, "pruning");
		sqlite3_exec(a->db, "ROLLBACK", NULL, NULL, NULL);
		return -1;
	}
	return n;
}

/* Prunes one table, batch by batch.  Returns ADMIN_*. */
static int
prune_table(struct admin *a, const struct prune_table *t,
    const char *before)
{
	sqlite3_stmt *st = NULL;
	long long total = 0;
	int n, rv = ADMIN_FAIL;

	if (admin_prepare(a, t->sql, &st) == -1)
		goto fail;
	if (admin_bind_text(a, st, 1, before, "pruning") == -1)
		goto fail;
	if (sqlite3_bind_int(st, 2, PRUNE_BATCH) != SQLITE_OK) {
		admin_dberr(a, "pruning");
		goto fail;
	}
	do {
		if ((n = prune_batch(a, st)) == -1)
			goto fail;
		total += n;
	} while (n == PRUNE_BATCH);
	rv = ADMIN_OK;
fail:
	printf("%s: %lld rows deleted\n", t->name, total);
	sqlite3_finalize(st);
	return rv;
}

/*
 * Copies the WAL into the database and empties it.  Returns SQLITE_OK,
 * SQLITE_BUSY if a reader or writer kept it from finishing, or an error.
 */
static int
prune_checkpoint(struct admin *a)
{
	sqlite3_stmt *st = NULL;
	int rc;

	if (admin_prepare(a, "PRAGMA wal_checkpoint(TRUNCATE)", &st) == -1)
		return SQLITE_ERROR;
	rc = sqlite3_step(st);
	/* The first column is 1 if the checkpoint could not finish. */
	if (rc == SQLITE_ROW)
		rc = sqlite3_column_int(st, 0) ? SQLITE_BUSY : SQLITE_OK;
	else if (rc == SQLITE_DONE)
		rc = SQLITE_OK;
	sqlite3_finalize(st);
	return rc;
}

/*
 * Gives the freed pages back to the file system: VACUUM (which holds the
 * write lock for as long as it runs, and in WAL mode writes the new
 * database into the WAL), then a checkpoint that empties the WAL.  If
 * the gateway keeps either from finishing, say so.
 */
static int
prune_reclaim(struct admin *a)
{
	int rc;

	rc = sqlite3_exec(a->db, "VACUUM", NULL, NULL, NULL);
	if (rc == SQLITE_OK)
		rc = prune_checkpoint(a);
	if ((rc & 0xff) == SQLITE_BUSY || (rc & 0xff) == SQLITE_LOCKED) {
		warnx("the rows are deleted, but the database is busy, so "
		    "its space was not reclaimed; run prune again later");
		return ADMIN_FAIL;
	}
	if (rc != SQLITE_OK)
		return admin_dberr(a, "reclaiming space");
	printf("space reclaimed\n");
	return ADMIN_OK;
}

static int
prune_exec(struct admin *a)
{
	char before[TS_ISO_LEN];
	int64_t ms;
	size_t i;

	if (a->opt[OPT_BEFORE] == NULL) {
		warnx("prune: --before is required");
		return ADMIN_USAGE;
	}
	if (admin_time("--before", a->opt[OPT_BEFORE], 0, before) != ADMIN_OK)
		return ADMIN_USAGE;
	if (ts_parse(before, &ms) == 0 && ms > ts_now_ms() &&
	    a->opt[OPT_FORCE] == NULL) {
		warnx("--before %s is in the future: that would delete every "
		    "row; add --force if that is what you want", before);
		return ADMIN_USAGE;
	}
	if (admin_open(a) != ADMIN_OK)
		return ADMIN_FAIL;
	for (i = 0; i < PRUNE_TABLES; i++)
		if (prune_table(a, &prune_tables[i], before) != ADMIN_OK)
			return ADMIN_FAIL;
	return prune_reclaim(a);
}

/*
 * Copies src into dst, BACKUP_PAGES at a time.  The caller holds a read
 * transaction on src, so the copy is one snapshot however the gateway
 * writes meanwhile.  Returns ADMIN_*.
 */
static int
backup_copy(struct admin *a, sqlite3 *dst, const char *path)
{
	sqlite3_backup *b;
	int rc;

	if ((b = sqlite3_backup_init(dst, "main", a->db, "main")) == NULL) {
		warnx("backup to %s: %s", path, sqlite3_errmsg(dst));
		return ADMIN_FAIL;
	}
	do {
		rc = sqlite3_backup_step(b, BACKUP_PAGES);
		if (rc == SQLITE_BUSY || rc == SQLITE_LOCKED)
			sqlite3_sleep(BACKUP_NAP_MS);
	} while (rc == SQLITE_OK || rc == SQLITE_BUSY || rc == SQLITE_LOCKED);
	sqlite3_backup_finish(b);
	if (rc != SQLITE_DONE) {
		warnx("backup to %s: %s", path, sqlite3_errstr(rc));
		return ADMIN_FAIL;
	}
	return ADMIN_OK;
}

/* Creates path, which must not exist, mode 0600.  Returns ADMIN_*. */
static int
backup_create(const char *path)
{
	int fd;

	if ((fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
	    0600)) == -1) {
		if (errno == EEXIST)
			warnx("backup: %s already exists; not overwriting it",
			    path);
		else
			warn("backup: %s", path);
		return ADMIN_FAIL;
	}
	close(fd);
	return ADMIN_OK;
}

static int
backup_exec(struct admin *a)
{
	const char *path = a->argv[0];
	sqlite3 *dst = NULL;
	int rv = ADMIN_FAIL, began = 0;

	if (*path == '\0') {
		warnx("backup: FILE is empty");
		return ADMIN_USAGE;
	}
	if (admin_open(a) != ADMIN_OK)
		return ADMIN_FAIL;
	if (backup_create(path) != ADMIN_OK)
		return ADMIN_FAIL;
	if (sqlite3_open_v2(path, &dst, SQLITE_OPEN_READWRITE, NULL) !=
	    SQLITE_OK) {
		warnx("backup: %s: %s", path, dst ? sqlite3_errmsg(dst) :
		    "out of memory");
		goto fail;
	}
	/* Pin one snapshot of the source for the whole copy. */
	if (sqlite3_exec(a->db, "BEGIN; SELECT count(*) FROM sqlite_master",
	    NULL, NULL, NULL) != SQLITE_OK) {
		admin_dberr(a, "backup");
		goto fail;
	}
	began = 1;
	rv = backup_copy(a, dst, path);
fail:
	if (began)
		sqlite3_exec(a->db, "COMMIT", NULL, NULL, NULL);
	if (dst != NULL && sqlite3_close(dst) != SQLITE_OK && rv == ADMIN_OK) {
		warnx("backup: closing %s: %s", path, sqlite3_errmsg(dst));
		rv = ADMIN_FAIL;
	}
	if (rv != ADMIN_OK)
		unlink(path);
	else
		printf("backed up %s to %s\n", a->db_path, path);
	return rv;
}
