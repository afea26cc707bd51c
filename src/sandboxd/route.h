#ifndef IRIS_SANDBOXD_ROUTE_H
#define IRIS_SANDBOXD_ROUTE_H

#include <stddef.h>

#define ROUTE_MAX_PARAMS	2
#define ROUTE_PARAM_MAX		128	/* bytes of a captured segment, NUL included */

struct route_call;		/* the caller's: what a handler is given */

/*
 * One row of a route table: a method and a path pattern of literal
 * segments and "{name}" segments (each matches one non-empty segment of at
 * most ROUTE_PARAM_MAX - 1 bytes, captured in order).  flags are the
 * table owner's (what the request needs before the handler runs).
 */
struct route {
	const char	*method;
	const char	*pattern;
	unsigned	 flags;
	void		(*handler)(struct route_call *);
};

struct route_params {
	size_t		 n;
	char		 v[ROUTE_MAX_PARAMS][ROUTE_PARAM_MAX];
};

/*
 * Finds the route of table[0..n) for method and path (the path alone, no
 * query).  Returns it, with the "{name}" segments in *params; or NULL with
 * *allow set to the methods the path has, comma-separated ("" if the path
 * has none: 404; else 405).
 */
const struct route *route_find(const struct route *table, size_t n,
		    const char *method, const char *path,
		    struct route_params *params, char *allow, size_t allowsz);

#endif
