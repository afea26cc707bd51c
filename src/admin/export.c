/* iris-admin export: a table or view as CSV (RFC 4180) or JSON. */
#include <err.h>
#include <math.h>
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>

#include "admin/admin.h"
#include "common/timestamp.h"

#define EXPORT_LIMIT_MAX	100000000L

static int	export_exec(struct admin *);

const struct admin_cmd export_cmd = {
	.name = "export",
	.usage = "--format csv|json TABLE [--since TIME] [--limit N]",
	.about = "print a table or view of sql/ (never key hashes); --since "
	    "filters on created_at",
	.min_args = 1,
	.max_args = 1,
	.opts = ADMIN_OPT(OPT_FORMAT) | ADMIN_OPT(OPT_SINCE) |
	    ADMIN_OPT(OPT_LIMIT),
	.db = ADMIN_DB_EXISTING,
	.exec = export_exec
};

/*
 * What may be exported, each with its own statement: the name given on
 * the command line only picks a row, it never becomes SQL.  ?1 is the
 * --since time (NULL for all), ?2 the limit (-1 for none).
 */
static const struct export_src {
	const char	*name;
	int		 since;		/* has created_at */
	const char	*sql;
} export_srcs[] = {
	{ .name = "projects", .since = 1,
	  .sql = "SELECT * FROM projects WHERE (?1 IS NULL OR created_at >= ?1)"
	    " ORDER BY project_id LIMIT ?2" },
	/* Never key_hash. */
	{ .name = "api_keys", .since = 1,
	  .sql = "SELECT key_id, project_id, name, key_prefix, rate_limit,"
	    " rate_window_ms, rate_tat_us, created_at, revoked_at FROM api_keys"
	    " WHERE (?1 IS NULL OR created_at >= ?1) ORDER BY rowid LIMIT ?2" },
	{ .name = "audit_log", .since = 1,
	  .sql = "SELECT * FROM audit_log WHERE (?1 IS NULL OR created_at >= ?1)"
	    " ORDER BY id LIMIT ?2" },
	{ .name = "sandboxes", .since = 1,
	  .sql = "SELECT * FROM sandboxes WHERE (?1 IS NULL OR created_at >= ?1)"
	    " ORDER BY rowid LIMIT ?2" },
	{ .name = "sandbox_events", .since = 1,
	  .sql = "SELECT * FROM sandbox_events"
	    " WHERE (?1 IS NULL OR created_at >= ?1) ORDER BY id LIMIT ?2" },
	{ .name = "executions", .since = 1,
	  .sql = "SELECT * FROM executions"
	    " WHERE (?1 IS NULL OR created_at >= ?1) ORDER BY rowid LIMIT ?2" },
	{ .name = "v_project_daily", .since = 0,
	  .sql = "SELECT * FROM v_project_daily LIMIT ?2" },
	{ .name = "v_latency", .since = 0,
	  .sql = "SELECT * FROM v_latency LIMIT ?2" },
	{ .name = "v_latency_daily", .since = 0,
	  .sql = "SELECT * FROM v_latency_daily LIMIT ?2" },
	{ .name = "v_error_types", .since = 0,
	  .sql = "SELECT * FROM v_error_types LIMIT ?2" },
	{ .name = "v_live_sandboxes", .since = 1,
	  .sql = "SELECT * FROM v_live_sandboxes"
	    " WHERE (?1 IS NULL OR created_at >= ?1) LIMIT ?2" },
	{ .name = "v_key_usage", .since = 0,
	  .sql = "SELECT * FROM v_key_usage LIMIT ?2" },
	{ .name = "v_refused_by_client", .since = 0,
	  .sql = "SELECT * FROM v_refused_by_client LIMIT ?2" },
	{ .name = "v_refused_requests", .since = 1,
	  .sql = "SELECT * FROM v_refused_requests"
	    " WHERE (?1 IS NULL OR created_at >= ?1) LIMIT ?2" },
};
#define EXPORT_SRCS	(sizeof(export_srcs) / sizeof(export_srcs[0]))

enum export_format { EXPORT_CSV, EXPORT_JSON };

static const struct export_src *
export_find(const char *name)
{
	size_t i;

	for (i = 0; i < EXPORT_SRCS; i++)
		if (strcmp(export_srcs[i].name, name) == 0)
			return &export_srcs[i];
	return NULL;
}

/* A field needs quotes if it holds a separator, a quote or a line end. */
static void
csv_field(const unsigned char *s, int len)
{
	int i;

	if (strcspn((const char *)s, ",\"\r\n") == (size_t)len &&
	    (len == 0 || (s[0] != ' ' && s[len - 1] != ' '))) {
		fwrite(s, 1, (size_t)len, stdout);
		return;
	}
	putchar('"');
	for (i = 0; i < len; i++) {
		if (s[i] == '"')
			putchar('"');
		putchar(s[i]);
	}
	putchar('"');
}

static void
csv_row(sqlite3_stmt *st, int ncols, int header)
{
	const unsigned char *s;
	int i;

	for (i = 0; i < ncols; i++) {
		if (i > 0)
			putchar(',');
		if (header)
			s = (const unsigned char *)sqlite3_column_name(st, i);
		else
			s = sqlite3_column_text(st, i);
		/* NULL is an empty field. */
		if (s != NULL)
			csv_field(s, (int)strlen((const char *)s));
	}
	fputs("\r\n", stdout);
}

/*
 * The length of the valid UTF-8 sequence at s (of n bytes), or 0 if it
 * is not one.
 */
static int
utf8_len(const unsigned char *s, size_t n)
{
	int len, i;
	unsigned int c;

	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		len = 2, c = s[0] & 0x1f;
	else if (s[0] >= 0xe0 && s[0] <= 0xef)
		len = 3, c = s[0] & 0x0f;
	else if (s[0] >= 0xf0 && s[0] <= 0xf4)
		len = 4, c = s[0] & 0x07;
	else
		return 0;
	if ((size_t)len > n)
		return 0;
	for (i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		c = (c << 6) | (s[i] & 0x3f);
	}
	/* No overlong forms, surrogates or code points past U+10FFFF. */
	if ((len == 3 && (c < 0x800 || (c >= 0xd800 && c <= 0xdfff))) ||
	    (len == 4 && (c < 0x10000 || c > 0x10ffff)))
		return 0;
	return len;
}

/* A JSON string; invalid UTF-8 becomes U+FFFD. */
static void
json_string(const unsigned char *s, size_t n)
{
	size_t i = 0;
	int len;

	putchar('"');
	while (i < n) {
		if (s[i] == '"' || s[i] == '\\')
			printf("\\%c", s[i]);
		else if (s[i] == '\n')
			fputs("\\n", stdout);
		else if (s[i] == '\r')
			fputs("\\r", stdout);
		else if (s[i] == '\t')
			fputs("\\t", stdout);
		else if (s[i] < 0x20 || s[i] == 0x7f)
			printf("\\u%04x", s[i]);
		else if ((len = utf8_len(s + i, n - i)) == 0)
			fputs("\\ufffd", stdout);
		else {
			fwrite(s + i, 1, (size_t)len, stdout);
			i += (size_t)len;
			continue;
		}
		i++;
	}
	putchar('"');
}

static void
json_value(sqlite3_stmt *st, int i)
{
	const unsigned char *s;
	double d;

	switch (sqlite3_column_type(st, i)) {
	case SQLITE_NULL:
		fputs("null", stdout);
		break;
	case SQLITE_INTEGER:
		printf("%lld", (long long)sqlite3_column_int64(st, i));
		break;
	case SQLITE_FLOAT:
		d = sqlite3_column_double(st, i);
		if (isfinite(d))
			printf("%.17g", d);
		else
			fputs("null", stdout);
		break;
	default:
		/* Text, and blobs as their bytes: none is a secret here. */
		s = sqlite3_column_text(st, i);
		json_string(s, (size_t)sqlite3_column_bytes(st, i));
		break;
	}
}

static void
json_row(sqlite3_stmt *st, int ncols, int first)
{
	const char *name;
	int i;

	fputs(first ? "[\n{" : ",\n{", stdout);
	for (i = 0; i < ncols; i++) {
		if (i > 0)
			putchar(',');
		name = sqlite3_column_name(st, i);
		json_string((const unsigned char *)name, strlen(name));
		putchar(':');
		json_value(st, i);
	}
	putchar('}');
}

/* Prints every row of st.  Returns ADMIN_*. */
static int
export_rows(struct admin *a, sqlite3_stmt *st, enum export_format f)
{
	int ncols = sqlite3_column_count(st), rc, n = 0;

	if (f == EXPORT_CSV)
		csv_row(st, ncols, 1);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (f == EXPORT_CSV)
			csv_row(st, ncols, 0);
		else
			json_row(st, ncols, n == 0);
		n++;
	}
	if (f == EXPORT_JSON)
		fputs(n ? "\n]\n" : "[]\n", stdout);
	if (rc != SQLITE_DONE)
		return admin_dberr(a, "exporting");
	return ADMIN_OK;
}

/* Checks the command line.  OUT: *src, *f, since, *limit. */
static int
export_args(struct admin *a, const struct export_src **src,
    enum export_format *f, char since[TS_ISO_LEN], long *limit)
{
	const char *fmt = a->opt[OPT_FORMAT];

	if (fmt == NULL) {
		warnx("export: --format is required (csv or json)");
		return ADMIN_USAGE;
	}
	if (strcmp(fmt, "csv") == 0)
		*f = EXPORT_CSV;
	else if (strcmp(fmt, "json") == 0)
		*f = EXPORT_JSON;
	else {
		warnx("--format must be csv or json");
		return ADMIN_USAGE;
	}
	if ((*src = export_find(a->argv[0])) == NULL) {
		warnx("export: no table or view '%s' may be exported; see "
		    "sql/README.md", a->argv[0]);
		return ADMIN_USAGE;
	}
	if (a->opt[OPT_SINCE] != NULL && !(*src)->since) {
		warnx("export: %s has no created_at; --since does not apply",
		    (*src)->name);
		return ADMIN_USAGE;
	}
	if (a->opt[OPT_SINCE] != NULL &&
	    admin_time("--since", a->opt[OPT_SINCE], 0, since) != ADMIN_OK)
		return ADMIN_USAGE;
	return admin_number("--limit", a->opt[OPT_LIMIT], 1,
	    EXPORT_LIMIT_MAX, -1, limit);
}

static int
export_exec(struct admin *a)
{
	const struct export_src *src;
	enum export_format f;
	char since[TS_ISO_LEN];
	sqlite3_stmt *st = NULL;
	long limit;
	int rv;

	if ((rv = export_args(a, &src, &f, since, &limit)) != ADMIN_OK)
		return rv;
	if (admin_open(a) != ADMIN_OK)
		return ADMIN_FAIL;
	rv = ADMIN_FAIL;
	if (admin_prepare(a, src->sql, &st) == -1)
		goto fail;
	if (src->since && admin_bind_text(a, st, 1,
	    a->opt[OPT_SINCE] ? since : NULL, "exporting") == -1)
		goto fail;
	if (sqlite3_bind_int64(st, 2, limit) != SQLITE_OK) {
		admin_dberr(a, "exporting");
		goto fail;
	}
	rv = export_rows(a, st, f);
fail:
	sqlite3_finalize(st);
	return rv;
}
