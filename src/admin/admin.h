#ifndef IRIS_ADMIN_H
#define IRIS_ADMIN_H

/*
 * iris-admin: the operator's command line.  Each command is one row
 * (struct admin_cmd) exported by the file that implements it; admin.c
 * holds the table, parses the options every command shares and opens
 * the database before a command runs.
 */

#include <stdint.h>

#include "common/timestamp.h"

struct sqlite3;
struct sqlite3_stmt;

/* Exit statuses. */
#define ADMIN_OK	0
#define ADMIN_FAIL	1	/* the command could not be carried out */
#define ADMIN_USAGE	2	/* the command line was wrong */

/* The long options; a command lists those it accepts as bits. */
enum admin_opt {
	OPT_DB,
	OPT_PROJECT,
	OPT_RATE,
	OPT_WINDOW,
	OPT_NAME,
	OPT_SINCE,
	OPT_BEFORE,
	OPT_STATUS,
	OPT_LIMIT,
	OPT_FORMAT,
	OPT_FORCE,		/* a flag: takes no value */
	OPT_COUNT
};
#define ADMIN_OPT(o)	(1U << (o))

/* What a command needs of the database before it runs. */
enum admin_db {
	ADMIN_DB_NONE,		/* none: help; admin_open refuses */
	ADMIN_DB_CREATE,	/* created if missing: migrate */
	ADMIN_DB_EXISTING	/* must exist; migrated if older */
};

/* A parsed command line, handed to a command's exec. */
struct admin {
	const struct admin_cmd	*cmd;		/* the one running */
	const char		*db_path;
	struct sqlite3		*db;
	const char		*opt[OPT_COUNT]; /* NULL if not given */
	char			**argv;		/* positional arguments */
	int			 argc;
};

struct admin_cmd {
	const char	*name;		/* "key create" */
	const char	*usage;		/* arguments, after the name */
	const char	*about;		/* one line for the help text */
	int		 min_args;	/* positional arguments */
	int		 max_args;
	unsigned int	 opts;		/* ADMIN_OPT() bits it accepts */
	enum admin_db	 db;
	int		(*exec)(struct admin *); /* returns ADMIN_* */
};

extern const struct admin_cmd project_create_cmd;
extern const struct admin_cmd project_list_cmd;
extern const struct admin_cmd key_create_cmd;
extern const struct admin_cmd key_list_cmd;
extern const struct admin_cmd key_revoke_cmd;
extern const struct admin_cmd key_set_rate_cmd;
extern const struct admin_cmd stats_cmd;
extern const struct admin_cmd audit_cmd;
extern const struct admin_cmd executions_cmd;
extern const struct admin_cmd prune_cmd;
extern const struct admin_cmd backup_cmd;
extern const struct admin_cmd export_cmd;

/*
 * Reads s, the value of the argument called name ("--rate"), as a decimal
 * integer in [min, max] (min >= 0); def if s is NULL.  OUT: *out.
 * Returns ADMIN_OK, or ADMIN_USAGE after naming the argument on stderr.
 */
int	admin_number(const char *name, const char *s, long min, long max,
	    long def, long *out);

/*
 * Reads s, the value of the argument called name ("--since"), as an
 * ISO 8601 UTC time ("2026-11-22" or "2026-11-22T03:04:05Z"); if s is
 * NULL, the time def_ago_ms before now.  OUT: out, the time as the
 * database stores it.  Returns ADMIN_OK, or ADMIN_USAGE after naming
 * the argument on stderr.
 */
int	admin_time(const char *name, const char *s, int64_t def_ago_ms,
	    char out[TS_ISO_LEN]);

/*
 * Binds text (or NULL) to parameter i of st.  Returns 0, or -1 after
 * reporting the error as happening while doing.
 */
int	admin_bind_text(struct admin *a, struct sqlite3_stmt *st, int i,
	    const char *text, const char *doing);

/*
 * Reports the database's last error on stderr, prefixed by what was
 * being done ("creating the key").  Returns ADMIN_FAIL.
 */
int	admin_dberr(struct admin *a, const char *doing);

/*
 * Prepares sql on the open database.  OUT: *st, finalized by the caller
 * (sqlite3_finalize(NULL) is harmless).  Returns 0, or -1 after
 * reporting the error.
 */
int	admin_prepare(struct admin *a, const char *sql,
	    struct sqlite3_stmt **st);

/*
 * Opens the database as the running command's row asks (creating it
 * only for ADMIN_DB_CREATE) and brings its schema up to date.  A command
 * calls it once it has checked its arguments, so that a bad command line
 * is reported as such even when the database is missing.  OUT: a->db,
 * closed by main.  Returns ADMIN_OK, or ADMIN_FAIL after saying why.
 */
int	admin_open(struct admin *a);

/*
 * Checks that project, the argument called name, is a valid project id.
 * Returns ADMIN_OK, or ADMIN_USAGE after saying what it may hold.
 */
int	project_valid(const char *name, const char *project);

/*
 * Checks that project exists in the open database.  Returns ADMIN_OK, or
 * ADMIN_FAIL after saying there is no such project or why it failed.
 */
int	project_exists(struct admin *a, const char *project);

/*
 * Prints the rows of st on stdout as a table under the headers
 * heads[0..ncols), each column aligned on its widest cell.  Column i is
 * the statement's column i as text: NULL shows as "-", characters that
 * are not printable ASCII as "?", and a cell is cut at TABLE_CELL_MAX - 1
 * bytes.  Steps st twice (to measure, then to print) inside one read
 * transaction, so both passes see the same rows, and resets it.
 * Returns ADMIN_OK, or ADMIN_FAIL after reporting a database error.
 */
#define TABLE_CELL_MAX	160
#define TABLE_COLS_MAX	12
int	table_print(struct admin *a, struct sqlite3_stmt *st,
	    const char *const *heads, int ncols);

#endif
