/* iris-admin key create / list / revoke / set-rate. */
#include <err.h>
#include <errno.h>
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "admin/admin.h"
#include "common/apikey.h"
#include "common/crypto.h"
#include "common/timestamp.h"

#define KEY_RATE_DEFAULT	100
#define KEY_RATE_MAX		1000000
#define KEY_WINDOW_DEFAULT	60		/* seconds */
#define KEY_WINDOW_MAX		86400
#define KEY_LABEL_MAX		64

static int	key_create(struct admin *);
static int	key_list(struct admin *);
static int	key_revoke(struct admin *);
static int	key_set_rate(struct admin *);

const struct admin_cmd key_create_cmd = {
	.name = "key create",
	.usage = "--project NAME [--rate N] [--window SECONDS] [--name LABEL]",
	.about = "create a key (default 100 requests per 60 s) and print it "
	    "once on stdout",
	.min_args = 0,
	.max_args = 0,
	.opts = ADMIN_OPT(OPT_PROJECT) | ADMIN_OPT(OPT_RATE) |
	    ADMIN_OPT(OPT_WINDOW) | ADMIN_OPT(OPT_NAME),
	.db = ADMIN_DB_EXISTING,
	.exec = key_create
};

const struct admin_cmd key_list_cmd = {
	.name = "key list",
	.usage = "[--project NAME]",
	.about = "list the keys (never their secrets)",
	.min_args = 0,
	.max_args = 0,
	.opts = ADMIN_OPT(OPT_PROJECT),
	.db = ADMIN_DB_EXISTING,
	.exec = key_list
};

const struct admin_cmd key_revoke_cmd = {
	.name = "key revoke",
	.usage = "ID|KEY",
	.about = "revoke a key, named by its id or given whole",
	.min_args = 1,
	.max_args = 1,
	.opts = 0,
	.db = ADMIN_DB_EXISTING,
	.exec = key_revoke
};

const struct admin_cmd key_set_rate_cmd = {
	.name = "key set-rate",
	.usage = "ID N [--window SECONDS]",
	.about = "let a key make N requests per window (kept if not given)",
	.min_args = 2,
	.max_args = 2,
	.opts = ADMIN_OPT(OPT_WINDOW),
	.db = ADMIN_DB_EXISTING,
	.exec = key_set_rate
};

/* What key create was asked for. */
struct key_spec {
	const char	*project;
	const char	*label;		/* or NULL */
	long		 rate;
	long		 window;	/* seconds */
};

static int
key_hexdigit(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') ||
	    (c >= 'A' && c <= 'F');
}

/*
 * Reads a key id: 16 hex digits, alone or after "iris_" (the prefix that
 * key list shows).  OUT: id, in lowercase.  Returns 0, or -1.
 */
static int
key_id_parse(const char *s, char id[APIKEY_ID_LEN + 1])
{
	size_t i;

	if (strncmp(s, "iris_", 5) == 0)
		s += 5;
	if (strlen(s) != APIKEY_ID_LEN)
		return -1;
	for (i = 0; i < APIKEY_ID_LEN; i++) {
		if (!key_hexdigit(s[i]))
			return -1;
		id[i] = s[i] >= 'A' && s[i] <= 'F' ? s[i] - 'A' + 'a' : s[i];
	}
	id[APIKEY_ID_LEN] = '\0';
	return 0;
}

static int
key_label_valid(const char *label)
{
	size_t i, len = strlen(label);

	if (len == 0 || len > KEY_LABEL_MAX)
		return 0;
	for (i = 0; i < len; i++)
		if (label[i] < 0x20 || label[i] > 0x7e)
			return 0;
	return 1;
}

static int
key_spec_read(struct admin *a, struct key_spec *k)
{
	int rv;

	k->project = a->opt[OPT_PROJECT];
	k->label = a->opt[OPT_NAME];
	if (k->project == NULL) {
		warnx("key create: --project is required");
		return ADMIN_USAGE;
	}
	if ((rv = admin_number("--rate", a->opt[OPT_RATE], 1, KEY_RATE_MAX,
	    KEY_RATE_DEFAULT, &k->rate)) != ADMIN_OK ||
	    (rv = admin_number("--window", a->opt[OPT_WINDOW], 1,
	    KEY_WINDOW_MAX, KEY_WINDOW_DEFAULT, &k->window)) != ADMIN_OK)
		return rv;
	if (k->label != NULL && !key_label_valid(k->label)) {
		warnx("--name must be 1 to %d printable ASCII characters",
		    KEY_LABEL_MAX);
		return ADMIN_USAGE;
	}
	if (project_valid("--project", k->project) != ADMIN_OK)
		return ADMIN_USAGE;
	if (admin_open(a) != ADMIN_OK)
		return ADMIN_FAIL;
	return project_exists(a, k->project);
}

/*
 * Stores a key under its project.  Returns 1 if stored, 0 if its key id
 * is taken (draw another), -1 after saying why it was not stored.
 */
static int
key_insert(struct admin *a, const struct key_spec *k, const char *id,
    const unsigned char *hash)
{
	static const char sql[] =
	    "INSERT INTO api_keys (key_id, project_id, name, key_prefix,"
	    " key_hash, rate_limit, rate_window_ms, created_at)"
	    " SELECT ?1, project_id, ?2, ?3, ?4, ?5, ?6, ?7"
	    " FROM projects WHERE project_id = ?8";
	char prefix[APIKEY_PREFIX_LEN + 1], now[TS_ISO_LEN];
	sqlite3_stmt *st = NULL;
	int rv = -1, rc;

	snprintf(prefix, sizeof(prefix), "iris_%s", id);
	ts_format(ts_now_ms(), now);
	if (admin_prepare(a, sql, &st) == -1)
		goto fail;
	if (sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC) != SQLITE_OK ||
	    sqlite3_bind_text(st, 2, k->label, -1, SQLITE_STATIC) !=
	    SQLITE_OK ||
	    sqlite3_bind_text(st, 3, prefix, -1, SQLITE_STATIC) != SQLITE_OK ||
	    sqlite3_bind_blob(st, 4, hash, CRYPTO_SHA256_LEN, SQLITE_STATIC) !=
	    SQLITE_OK ||
	    sqlite3_bind_int64(st, 5, k->rate) != SQLITE_OK ||
	    sqlite3_bind_int64(st, 6, k->window * 1000) != SQLITE_OK ||
	    sqlite3_bind_text(st, 7, now, -1, SQLITE_STATIC) != SQLITE_OK ||
	    sqlite3_bind_text(st, 8, k->project, -1, SQLITE_STATIC) !=
	    SQLITE_OK) {
		admin_dberr(a, "creating the key");
		goto fail;
	}
	if ((rc = sqlite3_step(st)) == SQLITE_CONSTRAINT_PRIMARYKEY)
		rv = 0;
	else if (rc != SQLITE_DONE)
		admin_dberr(a, "creating the key");
	else if (sqlite3_changes(a->db) == 0)
		warnx("no project %s", k->project);
	else
		rv = 1;
fail:
	sqlite3_finalize(st);
	return rv;
}

/* Forgets a key that was stored but could not be shown. */
static void
key_forget(struct admin *a, const char *id)
{
	static const char sql[] = "DELETE FROM api_keys WHERE key_id = ?1";
	sqlite3_stmt *st = NULL;

	if (admin_prepare(a, sql, &st) == 0 &&
	    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC) == SQLITE_OK &&
	    sqlite3_step(st) == SQLITE_DONE)
		warnx("key %s was deleted", id);
	else
		warnx("key %s could not be deleted; revoke it", id);
	sqlite3_finalize(st);
}

/*
 * Writes the key and a newline to stdout with write(2), so that no copy
 * of it stays in a stdio buffer.  Returns 0, or -1 with errno set.
 */
static int
key_show(const char *key)
{
	char line[APIKEY_LEN + 1];
	size_t off = 0;
	ssize_t n;

	memcpy(line, key, APIKEY_LEN);
	line[APIKEY_LEN] = '\n';
	while (off < sizeof(line)) {
		n = write(STDOUT_FILENO, line + off, sizeof(line) - off);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		off += (size_t)n;
	}
	crypto_wipe(line, sizeof(line));
	return off == sizeof(line) ? 0 : -1;
}

/*
 * Generates a key and stores it; a new key id that happens to exist
 * already is drawn again.  OUT: key, id.  Returns ADMIN_*.
 */
static int
key_make(struct admin *a, const struct key_spec *k,
    char key[APIKEY_LEN + 1], char id[APIKEY_ID_LEN + 1])
{
	unsigned char hash[CRYPTO_SHA256_LEN];
	int tries, stored = 0;

	for (tries = 0; tries < 3 && stored == 0; tries++) {
		if (apikey_generate(key, id, hash) == -1) {
			warnx("the system gave no random bytes");
			stored = -1;
			break;
		}
		key[APIKEY_LEN] = '\0';
		stored = key_insert(a, k, id, hash);
	}
	if (stored == 0)
		warnx("creating the key: every key id drawn was taken");
	crypto_wipe(hash, sizeof(hash));
	return stored == 1 ? ADMIN_OK : ADMIN_FAIL;
}

static int
key_create(struct admin *a)
{
	struct key_spec k;
	char key[APIKEY_LEN + 1], id[APIKEY_ID_LEN + 1];
	int rv;

	if ((rv = key_spec_read(a, &k)) != ADMIN_OK)
		return rv;
	if ((rv = key_make(a, &k, key, id)) != ADMIN_OK)
		goto fail;
	if (key_show(key) == -1) {
		warn("could not print the new key");
		key_forget(a, id);
		rv = ADMIN_FAIL;
		goto fail;
	}
	fprintf(stderr, "created key %s for project %s, %ld requests per "
	    "%ld s; it is shown only this once\n", id, k.project, k.rate,
	    k.window);
fail:
	crypto_wipe(key, sizeof(key));
	return rv;
}

static int
key_list(struct admin *a)
{
	static const char sql[] =
	    "SELECT key_id, key_prefix, project_id, name,"
	    " rate_limit || '/' || CASE WHEN rate_window_ms % 1000 = 0"
	    "  THEN (rate_window_ms / 1000) || 's'"
	    "  ELSE rate_window_ms || 'ms' END,"
	    " created_at, revoked_at"
	    " FROM api_keys WHERE ?1 IS NULL OR project_id = ?1"
	    " ORDER BY created_at, key_id";
	static const char *const heads[] = { "ID", "PREFIX", "PROJECT",
	    "NAME", "RATE", "CREATED", "REVOKED" };
	const char *project = a->opt[OPT_PROJECT];
	sqlite3_stmt *st = NULL;
	int rv;

	if (project != NULL && project_valid("--project", project) != ADMIN_OK)
		return ADMIN_USAGE;
	if (admin_open(a) != ADMIN_OK ||
	    (project != NULL && project_exists(a, project) != ADMIN_OK))
		return ADMIN_FAIL;
	rv = ADMIN_FAIL;
	if (admin_prepare(a, sql, &st) == -1)
		goto fail;
	if (sqlite3_bind_text(st, 1, project, -1, SQLITE_STATIC) !=
	    SQLITE_OK) {
		admin_dberr(a, "listing the keys");
		goto fail;
	}
	rv = table_print(a, st, heads, 7);
fail:
	sqlite3_finalize(st);
	return rv;
}

/*
 * Reads what key revoke was given: a key id, or a whole key, whose hash
 * it then must match.  The whole key is wiped from argv, which ps shows.
 * OUT: id, hash and *whole.  Returns ADMIN_OK or ADMIN_USAGE.
 */
static int
key_target(char *arg, char id[APIKEY_ID_LEN + 1],
    unsigned char hash[CRYPTO_SHA256_LEN], int *whole)
{
	size_t len = strlen(arg);

	*whole = 0;
	if (key_id_parse(arg, id) == 0)
		return ADMIN_OK;
	if (apikey_parse(arg, len, id) == 0) {
		apikey_hash(arg, len, hash);
		crypto_wipe(arg, len);
		*whole = 1;
		return ADMIN_OK;
	}
	/* It may be a mistyped secret: do not echo it. */
	warnx("key revoke: expected a key id (16 hex digits) or a whole key "
	    "(iris_<id>_<secret>)");
	return ADMIN_USAGE;
}

/* 1 if the key_hash in column 0 of st is hash. */
static int
key_matches(sqlite3_stmt *st, const unsigned char *hash)
{
	return sqlite3_column_bytes(st, 0) == CRYPTO_SHA256_LEN &&
	    crypto_equal(sqlite3_column_blob(st, 0), hash, CRYPTO_SHA256_LEN);
}

/*
 * Finds the key to revoke.  OUT: *revoked (its time, NUL if none) and
 * project.  Returns ADMIN_OK, or ADMIN_FAIL after saying why.
 */
static int
key_lookup(struct admin *a, const char *id, const unsigned char *hash,
    char revoked[TS_ISO_LEN], char project[TABLE_CELL_MAX])
{
	static const char sql[] = "SELECT key_hash, revoked_at, project_id"
	    " FROM api_keys WHERE key_id = ?1";
	sqlite3_stmt *st = NULL;
	const unsigned char *r;
	int rv = ADMIN_FAIL, rc;

	if (admin_prepare(a, sql, &st) == -1)
		goto fail;
	if (sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC) != SQLITE_OK ||
	    ((rc = sqlite3_step(st)) != SQLITE_ROW && rc != SQLITE_DONE)) {
		admin_dberr(a, "looking up the key");
		goto fail;
	}
	if (rc == SQLITE_DONE || (hash != NULL && !key_matches(st, hash))) {
		warnx("no key %s%s", id, hash ? " with that secret" : "");
		goto fail;
	}
	r = sqlite3_column_text(st, 1);
	snprintf(revoked, TS_ISO_LEN, "%s", r ? (const char *)r : "");
	r = sqlite3_column_text(st, 2);
	snprintf(project, TABLE_CELL_MAX, "%s", r ? (const char *)r : "");
	rv = ADMIN_OK;
fail:
	sqlite3_finalize(st);
	return rv;
}

/*
 * Sets the key's revoked_at, unless it has one.  Returns 1 if it did, 0
 * if the key was revoked meanwhile, -1 after saying why it failed.
 */
static int
key_mark_revoked(struct admin *a, const char *id)
{
	static const char sql[] = "UPDATE api_keys SET revoked_at = ?1"
	    " WHERE key_id = ?2 AND revoked_at IS NULL";
	char now[TS_ISO_LEN];
	sqlite3_stmt *st = NULL;
	int rv = -1;

	ts_format(ts_now_ms(), now);
	if (admin_prepare(a, sql, &st) == -1)
		goto fail;
	if (sqlite3_bind_text(st, 1, now, -1, SQLITE_STATIC) != SQLITE_OK ||
	    sqlite3_bind_text(st, 2, id, -1, SQLITE_STATIC) != SQLITE_OK ||
	    sqlite3_step(st) != SQLITE_DONE) {
		admin_dberr(a, "revoking the key");
		goto fail;
	}
	rv = sqlite3_changes(a->db) > 0;
fail:
	sqlite3_finalize(st);
	return rv;
}

static int
key_revoke(struct admin *a)
{
	char id[APIKEY_ID_LEN + 1], revoked[TS_ISO_LEN];
	char project[TABLE_CELL_MAX];
	unsigned char hash[CRYPTO_SHA256_LEN];
	int rv, whole, done = 0;

	if ((rv = key_target(a->argv[0], id, hash, &whole)) != ADMIN_OK)
		return rv;
	if ((rv = admin_open(a)) != ADMIN_OK ||
	    (rv = key_lookup(a, id, whole ? hash : NULL, revoked,
	    project)) != ADMIN_OK)
		goto fail;
	if (*revoked == '\0' && (done = key_mark_revoked(a, id)) == -1) {
		rv = ADMIN_FAIL;
		goto fail;
	}
	if (done)
		printf("revoked key %s of project %s\n", id, project);
	else
		printf("key %s was already revoked%s%s\n", id,
		    *revoked ? " at " : "", revoked);
fail:
	crypto_wipe(hash, sizeof(hash));
	return rv;
}

/* Prints a key's new rate as key list shows it: "100/60s". */
static void
key_rate_print(const char *id, long rate, long long window_ms)
{
	if (window_ms % 1000 == 0)
		printf("key %s: rate %ld/%llds\n", id, rate, window_ms / 1000);
	else
		printf("key %s: rate %ld/%lldms\n", id, rate, window_ms);
}

/*
 * Steps the rate update: its one row, then SQLITE_DONE, which commits.
 * OUT: *window_ms, *revoked.  Returns 1, 0 if no such key, -1 on error.
 */
static int
key_rate_step(sqlite3_stmt *st, long long *window_ms, int *revoked)
{
	int rc;

	if ((rc = sqlite3_step(st)) == SQLITE_DONE)
		return 0;
	if (rc != SQLITE_ROW)
		return -1;
	*window_ms = sqlite3_column_int64(st, 0);
	*revoked = sqlite3_column_type(st, 1) != SQLITE_NULL;
	return sqlite3_step(st) == SQLITE_DONE ? 1 : -1;
}

static int
key_set_rate(struct admin *a)
{
	static const char sql[] = "UPDATE api_keys SET rate_limit = ?1,"
	    " rate_window_ms = coalesce(?2, rate_window_ms)"
	    " WHERE key_id = ?3 RETURNING rate_window_ms, revoked_at";
	char id[APIKEY_ID_LEN + 1];
	sqlite3_stmt *st = NULL;
	long rate, window;
	long long window_ms = 0;
	int rv, found = -1, revoked = 0;

	if (key_id_parse(a->argv[0], id) == -1) {
		warnx("key set-rate: ID must be a key id (16 hex digits)");
		return ADMIN_USAGE;
	}
	if ((rv = admin_number("the rate N", a->argv[1], 1, KEY_RATE_MAX, 0,
	    &rate)) != ADMIN_OK || (rv = admin_number("--window",
	    a->opt[OPT_WINDOW], 1, KEY_WINDOW_MAX, 0, &window)) != ADMIN_OK)
		return rv;
	if (admin_open(a) != ADMIN_OK)
		return ADMIN_FAIL;
	rv = ADMIN_FAIL;
	if (admin_prepare(a, sql, &st) == -1)
		goto fail;
	if (sqlite3_bind_int64(st, 1, rate) != SQLITE_OK ||
	    (window > 0 ? sqlite3_bind_int64(st, 2, window * 1000) :
	    sqlite3_bind_null(st, 2)) != SQLITE_OK ||
	    sqlite3_bind_text(st, 3, id, -1, SQLITE_STATIC) != SQLITE_OK ||
	    (found = key_rate_step(st, &window_ms, &revoked)) == -1) {
		admin_dberr(a, "setting the rate");
		goto fail;
	}
	if (found == 0) {
		warnx("no key %s", id);
		goto fail;
	}
	key_rate_print(id, rate, window_ms);
	if (revoked)
		warnx("note: key %s is revoked", id);
	rv = ADMIN_OK;
fail:
	sqlite3_finalize(st);
	return rv;
}
