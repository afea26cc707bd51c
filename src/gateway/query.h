#ifndef IRIS_QUERY_H
#define IRIS_QUERY_H

#include <stddef.h>

struct arena;

/* One decoded name=value pair of a query string. */
struct query_param {
	const char	*name;
	const char	*value;
	size_t		 value_len;
};

#define QUERY_MAX_PARAMS	16

enum query_status {
	QUERY_OK = 0,
	QUERY_BAD_ENCODING,	/* bad %XX, or a NUL byte */
	QUERY_TOO_MANY,		/* more than QUERY_MAX_PARAMS pairs */
	QUERY_NO_MEMORY
};

/*
 * Splits qs ("a=1&b=x%20y") into pairs, percent-decoding names and values
 * ('+' is a space).  Empty pairs ("a=1&&b") are skipped; a pair without
 * '=' has an empty value.  Strings live in arena.  OUT: params (room for
 * QUERY_MAX_PARAMS), *n; on QUERY_BAD_ENCODING, *bad is the raw pair.
 */
enum query_status query_parse(struct arena *arena, const char *qs,
	    struct query_param *params, size_t *n, const char **bad);

#endif
