#ifndef IRIS_ENVCONF_H
#define IRIS_ENVCONF_H

#include <stddef.h>
#include <stdio.h>

/*
 * Settings from environment variables, one table row each: a program
 * describes its struct of settings with rows and loads them in one call.
 */
enum envconf_type {
	ENVCONF_STRING,		/* const char *, not empty (if optional:
				 * empty is the same as unset, NULL) */
	ENVCONF_LONG,		/* long, decimal, in [min, max] */
	ENVCONF_OCTAL		/* long, octal, in [min, max] */
};

struct envconf {
	const char		*name;
	enum envconf_type	 type;
	size_t			 offset;	/* of the field in the struct */
	const char		*defval;	/* NULL: the string may be unset */
	long			 min, max;
	const char		*help;
};

/*
 * Fills the struct at dst from lookup (NULL means getenv), row by row; an
 * unset variable takes its default.  OUT: err, a message naming the
 * variable.  Returns 0, or -1 on the first bad value.
 */
int	envconf_load(void *dst, const struct envconf *table, size_t n,
	    const char *(*lookup)(const char *), char *err, size_t errlen);

/* Writes one line per row to f: name, meaning, default. */
void	envconf_usage(FILE *f, const struct envconf *table, size_t n);

#endif
