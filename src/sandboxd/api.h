#ifndef IRIS_API_H
#define IRIS_API_H

struct http_req;
struct http_sink;
struct sandbox;

/*
 * The E2B-compatible API on one port: the control plane (sandboxes, with
 * the daemon's X-API-Key) and the sandbox plane (the code interpreter of
 * each sandbox, routed by E2b-Sandbox-Id/-Port headers or by a Host of
 * "<port>-<id>.<domain>", as E2B's proxy routes).
 */
struct api_config {
	const char	*api_key;	/* e2b_<hex> */
	long		 max_sandboxes;	/* for the 429 message */
	void		(*pool_wake)(void);	/* a pooled sandbox was taken */
	/* A create not served by a recycled sandbox (from the pool: hit). */
	void		(*pool_demand)(int hit);
	long		(*pool_target)(void);	/* the pool's size now */
	/* Takes a retired sandbox (and its reference) to scrub and offer. */
	void		(*recycle)(struct sandbox *);
};

struct api;

/* The API's state for cfg (kept, not copied); NULL if out of memory. */
struct api	*api_new(const struct api_config *cfg);
void		 api_free(struct api *api);
/* http_handler: arg is the struct api.  Routes: the tables in api.c. */
void		 api_handle(struct http_req *req, void *arg);
/* http_sink_fn: the bodies taken as they come (envd's uploads). */
int		 api_body_sink(struct http_req *req, void *arg,
		    struct http_sink *sink);

#endif
