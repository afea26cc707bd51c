#ifndef IRIS_DB_H
#define IRIS_DB_H

struct sqlite3;

/*
 * Opens (creating if asked) the database at path with the pragmas every
 * connection needs: WAL, foreign keys, synchronous=NORMAL, and a busy
 * handler that retries for busy_ms with short sleeps.  Returns the
 * connection, owned by the caller (sqlite3_close), or NULL after logging.
 */
struct sqlite3	*db_open(const char *path, int create, int busy_ms);

/*
 * Brings the schema up to the newest migration in sql/, each in its own
 * transaction, safe against other processes migrating at once.
 * Returns the schema version, or -1 after logging.
 */
int		 db_migrate(struct sqlite3 *db);

/* The schema version this build expects. */
int		 db_schema_version(void);

#endif
