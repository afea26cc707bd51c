#ifndef IRIS_HANDLERS_H
#define IRIS_HANDLERS_H

struct request;

/*
 * Route handlers.  The router has already enforced the route's method,
 * key, rate limit, query parameters and body shape; each handler answers
 * with reply_json or reply_error.
 */
void	health_get(struct request *req);
void	sandbox_get(struct request *req);
void	sandbox_post(struct request *req);
void	sandbox_delete(struct request *req);
void	execute_post(struct request *req);
void	execute_stream_post(struct request *req);
void	execute_refused(struct request *req);
void	metrics_get(struct request *req);
void	executions_get(struct request *req);
void	runtimes_get(struct request *req);

#endif
