#ifndef IRIS_MIGRATIONS_H
#define IRIS_MIGRATIONS_H

/* The schema migrations in sql/, embedded at build time (build-aux/embed-sql). */
struct migration {
	int		 version;	/* NNN of sql/NNN_name.sql, from 1 */
	const char	*name;
	const char	*sql;
};

extern const struct migration migrations[];
extern const int migrations_count;

#endif
