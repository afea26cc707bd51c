#ifndef IRIS_ROUTER_H
#define IRIS_ROUTER_H

#include <stddef.h>

struct request;

enum route_body {
	BODY_NONE = 0,		/* not read */
	BODY_OPTIONAL,		/* a JSON object if sent */
	BODY_REQUIRED		/* a JSON object */
};

/* One row of the route table. */
struct route {
	const char	*method;
	const char	*path;
	int		 needs_key;
	enum route_body	 body;
	const char	*const *query;	/* allowed parameters, NULL-ended */
	void		(*handler)(struct request *);
	/* Called instead of handler for a keyed request refused before it
	 * (429, 400 invalid_json, 413, 415): the executions row of a refused
	 * execute call. */
	void		(*refused)(struct request *);
};

/*
 * Finds the route for method and path.  Returns it; or NULL with OUT:
 * *allow set to the methods the path has ("" if none: not found).
 */
const struct route *router_match(const char *method, const char *path,
		    char *allow, size_t allowsz);

/*
 * Runs a request through every phase: route, authenticate, rate limit,
 * parse, handler, respond, audit.  The request is initialized; when this
 * returns it has been answered and recorded.
 */
void		 router_serve(struct request *req);

/* Finds a query parameter that the route allows, or NULL. */
const char	*router_query(struct request *req, const char *name);

#endif
