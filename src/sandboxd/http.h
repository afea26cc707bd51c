#ifndef IRIS_HTTP_H
#define IRIS_HTTP_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct json_object;

/*
 * The daemon's HTTP server: the only file that sees libmicrohttpd.  One
 * thread per connection, so a handler (and a stream's producer) may block.
 */
struct http_req;
struct http_server;

typedef void	(*http_handler)(struct http_req *req, void *arg);

/*
 * A request body taken piece by piece as it arrives, instead of held
 * whole: write takes the next piece (-1: take no more; the rest is read
 * and dropped, and the handler answers); release, called once the
 * request is over (answered or not), frees ctx.  owner is what
 * http_sink_ctx gives the handler (ctx itself unless a wrapper's).
 */
struct http_sink {
	int	(*write)(void *ctx, const char *data, size_t len);
	void	(*release)(void *ctx);
	void	 *ctx;
	void	 *owner;
};

/*
 * Called when a request's headers are in, before its body: returns 1
 * with *sink filled to take the body as it arrives (http_sink_ctx then
 * gives the handler its ctx), or 0 to have it held whole.
 */
typedef int	(*http_sink_fn)(struct http_req *req, void *arg,
		    struct http_sink *sink);

/* A multipart/form-data part's piece: field name, filename (NULL if
 * none), the bytes at offset off of the part.  -1 stops the form. */
typedef int	(*http_part_fn)(void *ctx, const char *name,
		    const char *filename, const char *data, uint64_t off,
		    size_t size);

/* A streamed answer: produce fills buf (see kernel_exec_read). */
struct http_stream {
	ssize_t	(*produce)(void *ctx, char *buf, size_t max);
	void	(*release)(void *ctx);
	void	 *ctx;
};

/*
 * Listens on addr:port (addr an IPv4 literal) and calls handler for each
 * request once its body is read (at most max_body bytes; a larger one is
 * answered 413 by the server).  Returns the server, or NULL.
 */
struct http_server *http_start(const char *addr, int port, size_t max_body,
		    http_handler handler, http_sink_fn sink, void *arg);
void		 http_stop(struct http_server *srv);

const char	*http_method(struct http_req *req);
const char	*http_path(struct http_req *req);
/* A request header or query argument; NULL if absent.  A query argument
 * holding a NUL byte (%00) reads as "", never as its part before it. */
const char	*http_header(struct http_req *req, const char *name);
const char	*http_query(struct http_req *req, const char *name);
const char	*http_body(struct http_req *req, size_t *len);
/* The owner of the request's sink (see http_sink_fn); NULL if none. */
void		*http_sink_ctx(struct http_req *req);
/*
 * A sink for a multipart/form-data body (libmicrohttpd's post
 * processor), calling part for each piece of each part; ctx stays the
 * caller's, released with release (may be NULL).  0, or -1 if the body
 * is not such a form.
 */
int		 http_form_sink(struct http_req *req, http_part_fn part,
		    void *ctx, void (*release)(void *), struct http_sink *sink);
/*
 * Once the body is in, for the handler: 0 if a form sink's body ended as
 * a form must (its closing boundary), -1 if it was cut short or
 * malformed; 0 for other sinks.
 */
int		 http_sink_finish(struct http_req *req);
/* The client's socket, to watch for a hang-up; -1 if unknown. */
int		 http_client_fd(struct http_req *req);

/* Percent-decodes s in place (as the server decodes a query). */
void		 http_unescape(char *s);

/* Answers; each request gets exactly one. */
void		 http_reply(struct http_req *req, int status,
		    const char *content_type, const char *body, size_t len);
/* JSON answer (takes ownership of obj; NULL means no body). */
void		 http_reply_json(struct http_req *req, int status,
		    struct json_object *obj);
void		 http_reply_stream(struct http_req *req, int status,
		    const char *content_type, const struct http_stream *stream);
/* Answers with the first size bytes of fd, which it takes over (closed
 * once sent, or at once if the answer cannot be built); HTTP_SIZE_UNKNOWN:
 * all it gives until its end (a /proc file says it has 0 bytes). */
#define HTTP_SIZE_UNKNOWN	UINT64_MAX
void		 http_reply_fd(struct http_req *req, int status,
		    const char *content_type, int fd, uint64_t size);
/* Adds a header to the coming answer. */
void		 http_add_header(struct http_req *req, const char *name,
		    const char *value);

#endif
