/*
 * iris-admin: the command table, option parsing, opening the database,
 * and the commands about the tool itself (migrate, help).
 */
#include <err.h>
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "admin/admin.h"
#include "common/db.h"
#include "common/log.h"

#define ADMIN_DEFAULT_DB	"./var/iris.db"
#define ADMIN_BUSY_MS		5000

/* --db is accepted by every command, before or after its name. */
static const char *const admin_opts[OPT_COUNT] = {
	[OPT_DB] = "db",
	[OPT_PROJECT] = "project",
	[OPT_RATE] = "rate",
	[OPT_WINDOW] = "window",
	[OPT_NAME] = "name",
	[OPT_SINCE] = "since",
	[OPT_BEFORE] = "before",
	[OPT_STATUS] = "status",
	[OPT_LIMIT] = "limit",
	[OPT_FORMAT] = "format",
	[OPT_FORCE] = "force",
};

/* The options that are flags: given or not, with no value. */
#define ADMIN_FLAGS	ADMIN_OPT(OPT_FORCE)

static int	migrate_exec(struct admin *);
static int	help_exec(struct admin *);

static const struct admin_cmd migrate_cmd = {
	.name = "migrate",
	.usage = "",
	.about = "create the database if missing and bring its schema "
	    "up to date",
	.min_args = 0,
	.max_args = 0,
	.opts = 0,
	.db = ADMIN_DB_CREATE,
	.exec = migrate_exec
};

static const struct admin_cmd help_cmd = {
	.name = "help",
	.usage = "",
	.about = "show this help",
	.min_args = 0,
	.max_args = 0,
	.opts = 0,
	.db = ADMIN_DB_NONE,
	.exec = help_exec
};

/* Every command, in the order help lists them. */
static const struct admin_cmd *const admin_cmds[] = {
	&migrate_cmd,
	&project_create_cmd,
	&project_list_cmd,
	&key_create_cmd,
	&key_list_cmd,
	&key_revoke_cmd,
	&key_set_rate_cmd,
	&stats_cmd,
	&audit_cmd,
	&executions_cmd,
	&prune_cmd,
	&backup_cmd,
	&export_cmd,
	&help_cmd,
	NULL
};

static void
usage(FILE *f)
{
	const struct admin_cmd *const *c;

	fprintf(f, "usage: iris-admin [--db PATH] command [arguments]\n\n"
	    "commands:\n");
	for (c = admin_cmds; *c != NULL; c++)
		fprintf(f, "  %s%s%s\n\t%s\n", (*c)->name,
		    *(*c)->usage ? " " : "", (*c)->usage, (*c)->about);
	fprintf(f, "\nThe database is PATH, else $IRIS_DB, else %s.\n"
	    "Exit status: 0 done, 1 failed, 2 bad command line.\n",
	    ADMIN_DEFAULT_DB);
}

static void
cmd_usage(FILE *f, const struct admin_cmd *cmd)
{
	fprintf(f, "usage: iris-admin %s%s%s\n", cmd->name,
	    *cmd->usage ? " " : "", cmd->usage);
}

/*
 * Matches cmd's name, one or two words, against argv.  Returns how many
 * words of argv it used, or 0 if it does not match.
 */
static int
cmd_match(const struct admin_cmd *cmd, char **argv, int argc)
{
	const char *sp = strchr(cmd->name, ' ');
	size_t len = sp ? (size_t)(sp - cmd->name) : strlen(cmd->name);

	if (argc < 1 || strlen(argv[0]) != len ||
	    memcmp(argv[0], cmd->name, len) != 0)
		return 0;
	if (sp == NULL)
		return 1;
	if (argc < 2 || strcmp(argv[1], sp + 1) != 0)
		return 0;
	return 2;
}

/* 1 if word is the first of some two-word command ("key"). */
static int
cmd_group(const char *word)
{
	const struct admin_cmd *const *c;
	size_t len = strlen(word);

	for (c = admin_cmds; *c != NULL; c++)
		if (strncmp((*c)->name, word, len) == 0 &&
		    (*c)->name[len] == ' ')
			return 1;
	return 0;
}

/* Finds the command named by argv.  OUT: *used, the words it took. */
static const struct admin_cmd *
cmd_find(char **argv, int argc, int *used)
{
	const struct admin_cmd *const *c;

	for (c = admin_cmds; *c != NULL; c++)
		if ((*used = cmd_match(*c, argv, argc)) > 0)
			return *c;
	if (argc == 0)
		warnx("no command given");
	else if (cmd_group(argv[0]) && argc == 1)
		warnx("missing command after '%s'", argv[0]);
	else if (cmd_group(argv[0]))
		warnx("unknown command '%s %s'", argv[0], argv[1]);
	else
		warnx("unknown command '%s'", argv[0]);
	return NULL;
}

/*
 * Takes the long option at argv[*i] ("--name VALUE" or "--name=VALUE")
 * into a->opt, if allowed is among the options it accepts; advances *i
 * past its value.  Returns ADMIN_OK, or ADMIN_USAGE after saying why.
 */
static int
opt_take(struct admin *a, unsigned int allowed, char **argv, int argc,
    int *i)
{
	const char *arg = argv[*i] + 2, *eq = strchr(arg, '=');
	size_t len = eq ? (size_t)(eq - arg) : strlen(arg);
	int o;

	for (o = 0; o < OPT_COUNT; o++)
		if (strlen(admin_opts[o]) == len &&
		    memcmp(admin_opts[o], arg, len) == 0)
			break;
	if (o == OPT_COUNT) {
		warnx("unknown option --%.*s", (int)len, arg);
		return ADMIN_USAGE;
	}
	if (!(allowed & ADMIN_OPT(o))) {
		warnx("option --%s does not apply here", admin_opts[o]);
		return ADMIN_USAGE;
	}
	if (a->opt[o] != NULL) {
		warnx("option --%s given twice", admin_opts[o]);
		return ADMIN_USAGE;
	}
	if (ADMIN_FLAGS & ADMIN_OPT(o)) {
		if (eq != NULL) {
			warnx("option --%s takes no value", admin_opts[o]);
			return ADMIN_USAGE;
		}
		a->opt[o] = "";
	} else if (eq != NULL)
		a->opt[o] = eq + 1;
	else if (*i + 1 < argc)
		a->opt[o] = argv[++*i];
	else {
		warnx("option --%s needs a value", admin_opts[o]);
		return ADMIN_USAGE;
	}
	return ADMIN_OK;
}

/*
 * Splits argv (what follows the command's name) into options and
 * positional arguments; the positional ones are packed at the front of
 * argv.  Returns ADMIN_OK, or ADMIN_USAGE after saying why.
 */
static int
args_parse(struct admin *a, const struct admin_cmd *cmd, char **argv,
    int argc)
{
	unsigned int allowed = cmd->opts | ADMIN_OPT(OPT_DB);
	int i, dashdash = 0;

	a->argv = argv;
	a->argc = 0;
	for (i = 0; i < argc; i++) {
		if (!dashdash && strcmp(argv[i], "--") == 0)
			dashdash = 1;
		else if (!dashdash && strncmp(argv[i], "--", 2) == 0) {
			if (opt_take(a, allowed, argv, argc, &i) != ADMIN_OK)
				return ADMIN_USAGE;
		} else
			a->argv[a->argc++] = argv[i];
	}
	if (a->argc < cmd->min_args) {
		warnx("%s: missing argument", cmd->name);
		return ADMIN_USAGE;
	}
	if (a->argc > cmd->max_args) {
		warnx("%s: unexpected argument '%s'", cmd->name,
		    a->argv[cmd->max_args]);
		return ADMIN_USAGE;
	}
	return ADMIN_OK;
}

/* 1 if argv asks for help ("--help" or "-h") anywhere before "--". */
static int
wants_help(char **argv, int argc)
{
	int i;

	for (i = 0; i < argc && strcmp(argv[i], "--") != 0; i++)
		if (strcmp(argv[i], "--help") == 0 ||
		    strcmp(argv[i], "-h") == 0)
			return 1;
	return 0;
}

/*
 * Says why a database that does not exist cannot be created, if its
 * directory is missing.  Returns ADMIN_OK if it may be created.
 */
static int
db_dir_check(const char *path)
{
	char dir[PATH_MAX];
	const char *slash = strrchr(path, '/');
	struct stat sb;
	int n;

	if (slash == NULL || slash == path || stat(path, &sb) == 0)
		return ADMIN_OK;
	n = snprintf(dir, sizeof(dir), "%.*s", (int)(slash - path), path);
	if (n < 0 || (size_t)n >= sizeof(dir) || stat(dir, &sb) == -1) {
		warnx("cannot create database %s: directory %.*s does not "
		    "exist", path, (int)(slash - path), path);
		return ADMIN_FAIL;
	}
	return ADMIN_OK;
}

int
admin_open(struct admin *a)
{
	enum admin_db need = a->cmd->db;
	struct stat sb;
	int v;

	if (need == ADMIN_DB_NONE || a->db != NULL)
		fatalx("%s: %s needs no database", __func__, a->cmd->name);
	if (need == ADMIN_DB_EXISTING && stat(a->db_path, &sb) == -1) {
		if (errno == ENOENT)
			warnx("database %s does not exist; run 'iris-admin "
			    "migrate' first", a->db_path);
		else
			warn("database %s", a->db_path);
		return ADMIN_FAIL;
	}
	if (need == ADMIN_DB_CREATE && db_dir_check(a->db_path) != ADMIN_OK)
		return ADMIN_FAIL;
	/* db_open and db_migrate report their own failures. */
	if ((a->db = db_open(a->db_path, need == ADMIN_DB_CREATE,
	    ADMIN_BUSY_MS)) == NULL)
		return ADMIN_FAIL;
	if ((v = db_migrate(a->db)) == -1)
		return ADMIN_FAIL;
	if (v != db_schema_version()) {
		warnx("database %s: schema version %d, this build needs %d",
		    a->db_path, v, db_schema_version());
		return ADMIN_FAIL;
	}
	return ADMIN_OK;
}

static int
migrate_exec(struct admin *a)
{
	if (admin_open(a) != ADMIN_OK)
		return ADMIN_FAIL;
	printf("database %s: schema version %d\n", a->db_path,
	    db_schema_version());
	return ADMIN_OK;
}

static int
help_exec(struct admin *a)
{
	(void)a;
	usage(stdout);
	return ADMIN_OK;
}

int
admin_number(const char *name, const char *s, long min, long max, long def,
    long *out)
{
	char *end;
	long v;

	if (s == NULL) {
		*out = def;
		return ADMIN_OK;
	}
	errno = 0;
	v = strtol(s, &end, 10);
	/* strtol would skip blanks and take a sign: refuse both. */
	if (*s < '0' || *s > '9' || *end != '\0' || errno == ERANGE ||
	    v < min || v > max) {
		warnx("%s must be an integer from %ld to %ld", name, min, max);
		return ADMIN_USAGE;
	}
	*out = v;
	return ADMIN_OK;
}

int
admin_time(const char *name, const char *s, int64_t def_ago_ms,
    char out[TS_ISO_LEN])
{
	int64_t ms;

	if (s == NULL)
		ms = ts_now_ms() - def_ago_ms;
	else if (ts_parse(s, &ms) == -1) {
		warnx("%s must be an ISO 8601 UTC time, like 2026-11-22 or "
		    "2026-11-22T03:04:05Z", name);
		return ADMIN_USAGE;
	}
	ts_format(ms, out);
	return ADMIN_OK;
}

int
admin_bind_text(struct admin *a, sqlite3_stmt *st, int i, const char *text,
    const char *doing)
{
	int rc;

	if (text == NULL)
		rc = sqlite3_bind_null(st, i);
	else
		rc = sqlite3_bind_text(st, i, text, -1, SQLITE_STATIC);
	if (rc != SQLITE_OK) {
		admin_dberr(a, doing);
		return -1;
	}
	return 0;
}

int
admin_dberr(struct admin *a, const char *doing)
{
	warnx("%s: %s", doing, sqlite3_errmsg(a->db));
	return ADMIN_FAIL;
}

int
admin_prepare(struct admin *a, const char *sql, sqlite3_stmt **st)
{
	if (sqlite3_prepare_v2(a->db, sql, -1, st, NULL) != SQLITE_OK) {
		admin_dberr(a, "database");
		return -1;
	}
	return 0;
}

/* Parses the command line into a and runs the command it names. */
static int
admin_run(struct admin *a, char **argv, int argc)
{
	const struct admin_cmd *cmd;
	int used;

	/* --db may come before the command's name too. */
	while (argc > 0 && strncmp(argv[0], "--db", 4) == 0 &&
	    (argv[0][4] == '\0' || argv[0][4] == '=')) {
		used = 0;
		if (opt_take(a, ADMIN_OPT(OPT_DB), argv, argc, &used) !=
		    ADMIN_OK)
			return ADMIN_USAGE;
		argv += used + 1;
		argc -= used + 1;
	}
	if (argc > 0 && wants_help(argv, 1)) {
		usage(stdout);
		return ADMIN_OK;
	}
	if ((cmd = cmd_find(argv, argc, &used)) == NULL) {
		usage(stderr);
		return ADMIN_USAGE;
	}
	if (wants_help(argv + used, argc - used)) {
		cmd_usage(stdout, cmd);
		return ADMIN_OK;
	}
	if (args_parse(a, cmd, argv + used, argc - used) != ADMIN_OK) {
		cmd_usage(stderr, cmd);
		return ADMIN_USAGE;
	}
	if ((a->db_path = a->opt[OPT_DB]) == NULL &&
	    (a->db_path = getenv("IRIS_DB")) == NULL)
		a->db_path = ADMIN_DEFAULT_DB;
	if (*a->db_path == '\0') {
		warnx("the database path is empty");
		return ADMIN_USAGE;
	}
	a->cmd = cmd;
	return cmd->exec(a);
}

int
main(int argc, char *argv[])
{
	struct admin a;
	int rv;

	memset(&a, 0, sizeof(a));
	log_init("iris-admin", 0);
	/* A closed stdout must be an error we see, not a silent death. */
	signal(SIGPIPE, SIG_IGN);
	rv = admin_run(&a, argv + 1, argc - 1);
	if (a.db != NULL && sqlite3_close(a.db) != SQLITE_OK) {
		admin_dberr(&a, "closing the database");
		rv = ADMIN_FAIL;
	}
	if (fflush(stdout) == EOF || ferror(stdout)) {
		warn("stdout");
		rv = ADMIN_FAIL;
	}
	return rv;
}
