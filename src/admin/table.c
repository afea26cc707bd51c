/* iris-admin: query results as aligned text tables. */
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>

#include "admin/admin.h"
#include "common/log.h"

/*
 * Copies src into a cell: NULL as "-", anything but printable ASCII as
 * "?" so that a stored name cannot drive the terminal, cut to fit.
 */
static void
cell_set(char cell[TABLE_CELL_MAX], const unsigned char *src)
{
	size_t i;

	if (src == NULL) {
		memcpy(cell, "-", 2);
		return;
	}
	for (i = 0; src[i] != '\0' && i < TABLE_CELL_MAX - 1; i++)
		cell[i] = src[i] >= 0x20 && src[i] < 0x7f ? (char)src[i] : '?';
	cell[i] = '\0';
}

/* Steps st into cells.  Returns 1 for a row, 0 at the end, -1 on error. */
static int
row_next(sqlite3_stmt *st, int ncols, char cells[][TABLE_CELL_MAX])
{
	int i, rc;

	if ((rc = sqlite3_step(st)) == SQLITE_DONE)
		return 0;
	if (rc != SQLITE_ROW)
		return -1;
	for (i = 0; i < ncols; i++)
		cell_set(cells[i], sqlite3_column_text(st, i));
	return 1;
}

static void
row_print(const char *const *row, const size_t *width, int ncols)
{
	int i;

	/* The last column is not padded: no trailing blanks. */
	for (i = 0; i < ncols - 1; i++)
		printf("%-*s  ", (int)width[i], row[i]);
	printf("%s\n", row[ncols - 1]);
}

/* Both passes: measure (print == 0), then print. */
static int
table_pass(sqlite3_stmt *st, const char *const *heads, int ncols,
    size_t *width, int print)
{
	char cells[TABLE_COLS_MAX][TABLE_CELL_MAX];
	const char *row[TABLE_COLS_MAX];
	int i, rc;

	for (i = 0; i < ncols; i++) {
		row[i] = cells[i];
		if (!print)
			width[i] = strlen(heads[i]);
	}
	if (print)
		row_print(heads, width, ncols);
	while ((rc = row_next(st, ncols, cells)) == 1) {
		if (print)
			row_print(row, width, ncols);
		else
			for (i = 0; i < ncols; i++)
				if (strlen(cells[i]) > width[i])
					width[i] = strlen(cells[i]);
	}
	return rc;
}

int
table_print(struct admin *a, sqlite3_stmt *st, const char *const *heads,
    int ncols)
{
	size_t width[TABLE_COLS_MAX];
	int rv = ADMIN_FAIL;

	if (ncols < 1 || ncols > TABLE_COLS_MAX ||
	    ncols > sqlite3_column_count(st))
		fatalx("%s: %d columns", __func__, ncols);
	if (sqlite3_exec(a->db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK)
		return admin_dberr(a, "listing");
	if (table_pass(st, heads, ncols, width, 0) == -1)
		goto fail;
	sqlite3_reset(st);
	if (table_pass(st, heads, ncols, width, 1) == -1)
		goto fail;
	rv = ADMIN_OK;
fail:
	if (rv != ADMIN_OK)
		admin_dberr(a, "listing");
	sqlite3_reset(st);
	sqlite3_exec(a->db, "COMMIT", NULL, NULL, NULL);
	return rv;
}
