/* HTTP for the daemon, on libmicrohttpd, one thread per connection. */
#include <arpa/inet.h>
#include <errno.h>
#include <json-c/json.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/log.h"
#include "sandboxd/http.h"

#define MAX_HEADERS	8

struct http_server {
	struct MHD_Daemon	*mhd;
	http_handler		 handler;
	http_sink_fn		 sink_fn;
	void			*arg;
	size_t			 max_body;
};

/* http_form_sink's state: the post processor and the caller's part. */
struct form {
	struct MHD_PostProcessor	*pp;
	http_part_fn			 part;
	void				*ctx;
	void				(*release)(void *);
	int				 stopped;
};

struct http_req {
	struct MHD_Connection	*conn;
	const char		*method;
	const char		*path;
	struct buf		 body;
	int			 too_large;
	struct http_sink	 sink;		/* .write NULL: body held */
	int			 sink_done;	/* write said -1 */
	struct MHD_Response	*resp;
	int			 status;
	const char		*hdr_name[MAX_HEADERS];
	char			*hdr_value[MAX_HEADERS];
	int			 nhdr;
};

const char *
http_method(struct http_req *req)
{
	return req->method;
}

const char *
http_path(struct http_req *req)
{
	return req->path;
}

const char *
http_header(struct http_req *req, const char *name)
{
	return MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, name);
}

const char *
http_query(struct http_req *req, const char *name)
{
	const char *v = NULL;
	size_t n = 0;

	if (MHD_lookup_connection_value_n(req->conn, MHD_GET_ARGUMENT_KIND,
	    name, strlen(name), &v, &n) != MHD_YES || v == NULL)
		return NULL;
	return strlen(v) == n ? v : "";	/* a %00 would cut it short */
}

const char *
http_body(struct http_req *req, size_t *len)
{
	*len = req->body.len;
	return req->body.data ? req->body.data : "";
}

int
http_client_fd(struct http_req *req)
{
	const union MHD_ConnectionInfo *ci = MHD_get_connection_info(
	    req->conn, MHD_CONNECTION_INFO_CONNECTION_FD);

	return ci ? ci->connect_fd : -1;
}

void
http_add_header(struct http_req *req, const char *name, const char *value)
{
	if (req->nhdr == MAX_HEADERS)
		return;
	req->hdr_name[req->nhdr] = name;
	req->hdr_value[req->nhdr] = strdup(value);
	if (req->hdr_value[req->nhdr] != NULL)
		req->nhdr++;
}

static void
set_response(struct http_req *req, int status, struct MHD_Response *resp,
    const char *content_type)
{
	int i;

	if (resp == NULL) {
		log_warnx("cannot build a response");
		return;
	}
	if (req->resp != NULL)	/* a second answer is a bug: keep the first */
		MHD_destroy_response(req->resp);
	if (content_type)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
		    content_type);
	for (i = 0; i < req->nhdr; i++)
		MHD_add_response_header(resp, req->hdr_name[i],
		    req->hdr_value[i]);
	req->resp = resp;
	req->status = status;
}

void
http_reply(struct http_req *req, int status, const char *content_type,
    const char *body, size_t len)
{
	set_response(req, status, MHD_create_response_from_buffer(len,
	    (void *)body, MHD_RESPMEM_MUST_COPY), content_type);
}

void
http_reply_json(struct http_req *req, int status, struct json_object *obj)
{
	const char *text;
	size_t len;

	if (obj == NULL) {
		http_reply(req, status, NULL, "", 0);
		return;
	}
	text = json_object_to_json_string_length(obj,
	    JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &len);
	http_reply(req, status, "application/json", text, len);
	json_object_put(obj);
}

/* A file read to its end, for an answer of unknown size. */
static ssize_t
fd_read(void *cls, uint64_t pos, char *buf, size_t max)
{
	ssize_t n;

	(void)pos;
	while ((n = read(*(int *)cls, buf, max)) == -1 && errno == EINTR)
		;
	if (n == 0)
		return MHD_CONTENT_READER_END_OF_STREAM;
	return n < 0 ? MHD_CONTENT_READER_END_WITH_ERROR : n;
}

static void
fd_free(void *cls)
{
	close(*(int *)cls);
	free(cls);
}

void
http_reply_fd(struct http_req *req, int status, const char *content_type,
    int fd, uint64_t size)
{
	struct MHD_Response *resp;
	int *owned;

	if (size != HTTP_SIZE_UNKNOWN)
		resp = MHD_create_response_from_fd64(size, fd);
	else if ((owned = malloc(sizeof(*owned))) == NULL)
		resp = NULL;
	else {
		*owned = fd;
		if ((resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN,
		    64 * 1024, fd_read, owned, fd_free)) == NULL)
			free(owned);
	}
	if (resp == NULL) {
		close(fd);
		return;
	}
	set_response(req, status, resp, content_type);
}

static ssize_t
stream_cb(void *cls, uint64_t pos, char *buf, size_t max)
{
	struct http_stream *s = cls;
	ssize_t n;

	(void)pos;
	n = s->produce(s->ctx, buf, max);
	if (n == 0)
		return MHD_CONTENT_READER_END_OF_STREAM;
	if (n < 0)
		return MHD_CONTENT_READER_END_WITH_ERROR;
	return n;
}

static void
stream_free(void *cls)
{
	struct http_stream *s = cls;

	s->release(s->ctx);
	free(s);
}

void
http_reply_stream(struct http_req *req, int status, const char *content_type,
    const struct http_stream *stream)
{
	struct http_stream *s;

	if ((s = malloc(sizeof(*s))) == NULL) {
		stream->release(stream->ctx);
		return;
	}
	*s = *stream;
	set_response(req, status, MHD_create_response_from_callback(
	    MHD_SIZE_UNKNOWN, 64 * 1024, stream_cb, s, stream_free),
	    content_type);
}

void
http_unescape(char *s)
{
	MHD_http_unescape(s);
}

void *
http_sink_ctx(struct http_req *req)
{
	return req->sink.write ? req->sink.owner : NULL;
}

static enum MHD_Result
form_iterate(void *cls, enum MHD_ValueKind kind, const char *key,
    const char *filename, const char *content_type,
    const char *transfer_encoding, const char *data, uint64_t off,
    size_t size)
{
	struct form *f = cls;

	(void)kind;
	(void)content_type;
	(void)transfer_encoding;
	if (f->part(f->ctx, key, filename, data, off, size) == -1) {
		f->stopped = 1;
		return MHD_NO;
	}
	return MHD_YES;
}

static int
form_write(void *ctx, const char *data, size_t len)
{
	struct form *f = ctx;

	if (MHD_post_process(f->pp, data, len) != MHD_YES || f->stopped)
		return -1;
	return 0;
}

int
http_sink_finish(struct http_req *req)
{
	struct form *f;
	enum MHD_Result ok;

	if (req->sink.write != form_write || req->sink_done)
		return 0;
	f = req->sink.ctx;
	if (f->pp == NULL)
		return 0;
	ok = MHD_destroy_post_processor(f->pp);
	f->pp = NULL;
	return ok == MHD_YES ? 0 : -1;
}

static void
form_release(void *ctx)
{
	struct form *f = ctx;

	if (f->pp != NULL)
		MHD_destroy_post_processor(f->pp);
	if (f->release)
		f->release(f->ctx);
	free(f);
}

int
http_form_sink(struct http_req *req, http_part_fn part, void *ctx,
    void (*release)(void *), struct http_sink *sink)
{
	struct form *f;

	if ((f = calloc(1, sizeof(*f))) == NULL)
		return -1;
	f->part = part;
	f->ctx = ctx;
	f->release = release;
	if ((f->pp = MHD_create_post_processor(req->conn, 64 * 1024,
	    form_iterate, f)) == NULL) {
		free(f);
		return -1;
	}
	*sink = (struct http_sink){ form_write, form_release, f, ctx };
	return 0;
}

static void
req_free(struct http_req *req)
{
	int i;

	if (req->sink.release)
		req->sink.release(req->sink.ctx);
	if (req->resp)
		MHD_destroy_response(req->resp);
	for (i = 0; i < req->nhdr; i++)
		free(req->hdr_value[i]);
	buf_release(&req->body);
	free(req);
}

static enum MHD_Result
on_request(void *cls, struct MHD_Connection *conn, const char *url,
    const char *method, const char *version, const char *upload,
    size_t *upload_size, void **con_cls)
{
	struct http_server *srv = cls;
	struct http_req *req = *con_cls;
	enum MHD_Result rv;

	(void)version;
	if (req == NULL) {
		if ((req = calloc(1, sizeof(*req))) == NULL)
			return MHD_NO;
		req->conn = conn;
		req->method = method;
		req->path = url;
		buf_init(&req->body, srv->max_body);
		*con_cls = req;
		if (srv->sink_fn && srv->sink_fn(req, srv->arg, &req->sink) != 1)
			memset(&req->sink, 0, sizeof(req->sink));
		return MHD_YES;
	}
	if (*upload_size > 0 && req->sink.write) {
		if (!req->sink_done && req->sink.write(req->sink.ctx, upload,
		    *upload_size) == -1)
			req->sink_done = 1;
		*upload_size = 0;
		return MHD_YES;
	}
	if (*upload_size > 0) {
		if (!req->too_large &&
		    buf_append(&req->body, upload, *upload_size) == -1)
			req->too_large = 1;
		*upload_size = 0;
		return MHD_YES;
	}
	if (req->too_large) {
		static const char msg[] =
		    "{\"code\":413,\"message\":\"request body too large\"}";

		http_reply(req, 413, "application/json", msg, sizeof(msg) - 1);
	} else
		srv->handler(req, srv->arg);
	if (req->resp == NULL) {
		static const char msg[] =
		    "{\"code\":500,\"message\":\"no answer\"}";

		http_reply(req, 500, "application/json", msg, sizeof(msg) - 1);
	}
	if (req->resp == NULL)
		return MHD_NO;
	rv = MHD_queue_response(conn, (unsigned int)req->status, req->resp);
	MHD_destroy_response(req->resp);
	req->resp = NULL;
	return rv;
}

static void
on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
    enum MHD_RequestTerminationCode toe)
{
	(void)cls;
	(void)conn;
	(void)toe;
	if (*con_cls != NULL)
		req_free(*con_cls);
	*con_cls = NULL;
}

static void on_mhd_log(void *, const char *, va_list)
    __attribute__((format(printf, 2, 0)));

static void
on_mhd_log(void *cls, const char *fmt, va_list ap)
{
	char msg[512];

	(void)cls;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	msg[strcspn(msg, "\n")] = '\0';
	log_debug("http: %s", msg);
}

struct http_server *
http_start(const char *addr, int port, size_t max_body, http_handler handler,
    http_sink_fn sink_fn, void *arg)
{
	struct http_server *srv;
	struct sockaddr_in sin;

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons((uint16_t)port);
	if (inet_pton(AF_INET, addr, &sin.sin_addr) != 1) {
		log_warnx("bad listen address %s", addr);
		return NULL;
	}
	if ((srv = calloc(1, sizeof(*srv))) == NULL)
		return NULL;
	srv->handler = handler;
	srv->sink_fn = sink_fn;
	srv->arg = arg;
	srv->max_body = max_body;
	srv->mhd = MHD_start_daemon(MHD_USE_THREAD_PER_CONNECTION |
	    MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG, 0, NULL, NULL,
	    on_request, srv,
	    MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sin,
	    MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL,
	    MHD_OPTION_CONNECTION_LIMIT, (unsigned int)512,
	    MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)660,
	    MHD_OPTION_LISTENING_ADDRESS_REUSE, (unsigned int)1,
	    MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, NULL,
	    MHD_OPTION_END);
	if (srv->mhd == NULL) {
		log_warnx("cannot listen on %s:%d", addr, port);
		free(srv);
		return NULL;
	}
	return srv;
}

void
http_stop(struct http_server *srv)
{
	if (srv == NULL)
		return;
	MHD_stop_daemon(srv->mhd);
	free(srv);
}
