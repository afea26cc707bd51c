/* Opening the database and migrating its schema. */
#include <sched.h>
#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "common/db.h"
#include "common/log.h"
#include "common/migrations.h"
#include "common/timestamp.h"

/* When the current wait for a lock began; a connection is one thread's. */
static _Thread_local int64_t busy_since;
static _Thread_local unsigned int busy_seed;

/*
 * SQLite's default busy handler sleeps in steps of up to 100 ms, which
 * turns brief contention between processes into long stalls.  Retry in
 * naps of 50-250 us instead, until busy_ms have passed.
 */
static int
busy_retry(void *arg, int count)
{
	int busy_ms = (int)(intptr_t)arg;
	struct timespec nap = { 0, 0 };

	if (count == 0)
		busy_since = ts_mono_ms();
	else if (ts_mono_ms() - busy_since >= busy_ms)
		return 0;
	if (count < 4) {
		sched_yield();
		return 1;
	}
	/* Per-thread jitter, so that waiting processes spread apart. */
	if (busy_seed == 0)
		busy_seed = (unsigned int)getpid() ^
		    (unsigned int)(uintptr_t)&busy_seed;
	nap.tv_nsec = (50 + rand_r(&busy_seed) % 200) * 1000L;
	nanosleep(&nap, NULL);
	return 1;
}

static int
exec_sql(sqlite3 *db, const char *sql)
{
	char *err = NULL;

	if (sqlite3_exec(db, sql, NULL, NULL, &err) != SQLITE_OK) {
		log_warnx("database: %s", err ? err : sqlite3_errmsg(db));
		sqlite3_free(err);
		return -1;
	}
	return 0;
}

/* Switches to WAL, which every process sharing the file relies on. */
static int
wal_mode(sqlite3 *db)
{
	sqlite3_stmt *st;
	int ok = 0;

	if (sqlite3_prepare_v2(db, "PRAGMA journal_mode = WAL", -1, &st,
	    NULL) != SQLITE_OK) {
		log_warnx("database: %s", sqlite3_errmsg(db));
		return 0;
	}
	if (sqlite3_step(st) == SQLITE_ROW) {
		const unsigned char *mode = sqlite3_column_text(st, 0);

		ok = mode != NULL && strcmp((const char *)mode, "wal") == 0;
	} else
		log_warnx("database: %s", sqlite3_errmsg(db));
	sqlite3_finalize(st);
	if (!ok)
		log_warnx("database: cannot switch to WAL mode");
	return ok;
}

sqlite3 *
db_open(const char *path, int create, int busy_ms)
{
	sqlite3 *db = NULL;
	int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX;

	if (create) {
		/* It holds key hashes and the audit log: owner only. */
		int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);

		if (fd == -1) {
			log_warn("database %s", path);
			return NULL;
		}
		close(fd);
	}
	if (sqlite3_open_v2(path, &db, flags, NULL) != SQLITE_OK) {
		log_warnx("database %s: %s", path,
		    db ? sqlite3_errmsg(db) : "out of memory");
		sqlite3_close(db);
		return NULL;
	}
	sqlite3_extended_result_codes(db, 1);
	sqlite3_busy_handler(db, busy_retry, (void *)(intptr_t)busy_ms);
	if (!wal_mode(db) || exec_sql(db, "PRAGMA synchronous = NORMAL;"
	    "PRAGMA foreign_keys = ON;") == -1) {
		sqlite3_close(db);
		return NULL;
	}
	return db;
}

static int
user_version(sqlite3 *db)
{
	sqlite3_stmt *st;
	int v = -1;

	if (sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL) !=
	    SQLITE_OK)
		return -1;
	if (sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	return v;
}

/* Applies migration m if the schema is older, under a write lock. */
static int
apply(sqlite3 *db, const struct migration *m)
{
	char pragma[64];
	int v;

	if (exec_sql(db, "BEGIN IMMEDIATE") == -1)
		return -1;
	if ((v = user_version(db)) == -1)
		goto fail;
	if (v >= m->version)
		return exec_sql(db, "COMMIT");
	if (v != m->version - 1) {
		log_warnx("database: schema version %d, cannot apply %s", v,
		    m->name);
		goto fail;
	}
	snprintf(pragma, sizeof(pragma), "PRAGMA user_version = %d",
	    m->version);
	if (exec_sql(db, m->sql) == -1 || exec_sql(db, pragma) == -1)
		goto fail;
	if (exec_sql(db, "COMMIT") == -1)
		goto fail;
	log_info("database: applied migration %s", m->name);
	return 0;
fail:
	sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
	return -1;
}

int
db_migrate(sqlite3 *db)
{
	int i, v;

	if ((v = user_version(db)) == -1)
		return -1;
	if (v > migrations_count) {
		log_warnx("database: schema version %d is newer than this "
		    "build (%d)", v, migrations_count);
		return -1;
	}
	for (i = v; i < migrations_count; i++)
		if (apply(db, &migrations[i]) == -1)
			return -1;
	return user_version(db);
}

int
db_schema_version(void)
{
	return migrations_count;
}
