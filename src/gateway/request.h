#ifndef IRIS_REQUEST_H
#define IRIS_REQUEST_H

#include <stddef.h>
#include <stdint.h>

#include "common/apikey.h"
#include "common/buf.h"
#include "common/ids.h"
#include "gateway/query.h"
#include "gateway/ratelimit.h"

struct admission;
struct arena;
struct config;
struct e2b;
struct json_object;
struct route;
struct store;
struct FCGX_Request;

/*
 * One request as it passes through the phases (router.c): what the client
 * sent, what the phases learned, and the answer being built.  Everything
 * hangs off the worker's arena and ends with its reset.
 */
struct request {
	/* The worker's, valid for the request's life. */
	struct arena		*arena;
	struct store		*store;
	struct e2b		*e2b;		/* the provider's client */
	struct admission	*admission;	/* the queue at a project's cap */
	const struct config	*cfg;
	struct FCGX_Request	*fcgi;

	/* From the FastCGI parameters (never NULL; "" if absent). */
	const char		*method;
	const char		*path;
	const char		*query;
	const char		*content_type;
	const char		*client_addr;
	long			 content_length;	/* -1 if absent */
	char			 id[IDS_ULID_BUFSZ];
	int64_t			 started_ms;		/* monotonic */

	/* Learned by the phases. */
	const struct route	*route;
	struct query_param	 params[QUERY_MAX_PARAMS];
	size_t			 nparams;
	struct json_object	*body;		/* the JSON object, or NULL */
	int			 authenticated;
	char			 key_id[APIKEY_ID_LEN + 1];
	char			 project_id[IDS_MAX_LEN + 1];
	long			 rate_limit;
	struct rl_result	 rate;

	/* The answer. */
	int			 status;	/* 0 until one is set */
	const char		*error_code;	/* for the audit row */
	struct buf		 headers;	/* extra "Name: value\r\n" lines */
	struct buf		 out;		/* the body */
	int			 streamed;	/* answered as a stream */

	/* Work left for after the answer is sent (and its arg, arena-owned). */
	void			(*after)(struct request *, void *);
	void			*after_arg;
};

/* Returns the FastCGI parameter name, or "" if absent. */
const char	*request_param(struct request *req, const char *name);

/*
 * Fills req from its FastCGI parameters and starts the clock.
 * Returns 0, or -1 if memory ran out.
 */
int		 request_init(struct request *req);

/*
 * Reads the body, at most max bytes.  OUT: *data (arena-owned, NUL-
 * terminated), *len.  Returns 0; 1 if it is longer than max; -1 if the
 * client sent less than its Content-Length or memory ran out.
 */
int		 request_read_body(struct request *req, size_t max,
		    char **data, size_t *len);

/* Sends the status line, headers and body built in req. */
void		 request_send(struct request *req);

/*
 * Starts a text/event-stream answer with status 200 and req's headers;
 * then request_stream_write sends (and flushes) each piece.  Both return
 * 0, or -1 once the client is gone.
 */
int		 request_stream_begin(struct request *req);
int		 request_stream_write(struct request *req, const char *p,
		    size_t n);

/* Pushes what was written so far to nginx. */
void		 request_flush(struct request *req);

/* 1 if the client hung up (nginx closed our connection). */
int		 request_client_gone(struct request *req);

/* Releases what request_init allocated outside the arena. */
void		 request_release(struct request *req);

#endif
