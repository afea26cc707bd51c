/* FastCGI I/O for one request: parameters, the capped body, the answer. */
#include <errno.h>
#include <fcgiapp.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>

#include "common/arena.h"
#include "common/log.h"
#include "common/timestamp.h"
#include "gateway/reply.h"
#include "gateway/request.h"

#define HEADERS_MAX	8192

const char *
request_param(struct request *req, const char *name)
{
	const char *v = FCGX_GetParam(name, req->fcgi->envp);

	return v ? v : "";
}

static long
parse_length(const char *s)
{
	char *end;
	long v;

	if (*s == '\0')
		return -1;
	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || *end != '\0' || v < 0)
		return -1;
	return v;
}

int
request_init(struct request *req)
{
	req->started_ms = ts_mono_ms();
	req->method = request_param(req, "REQUEST_METHOD");
	req->path = request_param(req, "DOCUMENT_URI");
	if (*req->path == '\0')
		req->path = request_param(req, "SCRIPT_NAME");
	req->query = request_param(req, "QUERY_STRING");
	req->content_type = request_param(req, "CONTENT_TYPE");
	req->client_addr = request_param(req, "REMOTE_ADDR");
	req->content_length = parse_length(request_param(req,
	    "CONTENT_LENGTH"));
	buf_init(&req->headers, HEADERS_MAX);
	buf_init(&req->out, (size_t)16 << 20);
	if (ids_ulid("req_", req->id, sizeof(req->id)) == -1) {
		log_warnx("no randomness for a request id");
		return -1;
	}
	return 0;
}

int
request_read_body(struct request *req, size_t max, char **data, size_t *len)
{
	size_t want, got = 0;
	char *p;
	int n;

	if (req->content_length < 0)
		want = 0;
	else if ((unsigned long)req->content_length > max)
		return 1;
	else
		want = (size_t)req->content_length;
	if ((p = arena_alloc(req->arena, want + 1)) == NULL)
		return -1;
	while (got < want) {
		n = FCGX_GetStr(p + got, (int)(want - got), req->fcgi->in);
		if (n <= 0)
			return -1;
		got += (size_t)n;
	}
	p[got] = '\0';
	*data = p;
	*len = got;
	return 0;
}

void
request_send(struct request *req)
{
	FCGX_Stream *out = req->fcgi->out;
	struct buf head;

	/* libfcgi's own printf lacks %zu and more: format with libc. */
	buf_init(&head, HEADERS_MAX * 2);
	if (buf_printf(&head, "Status: %d %s\r\n"
	    "Content-Type: application/json; charset=utf-8\r\n"
	    "Cache-Control: no-store\r\n"
	    "X-Request-Id: %s\r\n%s"
	    "Content-Length: %zu\r\n\r\n", req->status,
	    reply_reason(req->status), req->id,
	    req->headers.len ? req->headers.data : "", req->out.len) == -1) {
		log_warnx("%s: could not format the answer", req->id);
		buf_release(&head);
		return;
	}
	FCGX_PutStr(head.data, (int)head.len, out);
	if (req->out.len)
		FCGX_PutStr(req->out.data, (int)req->out.len, out);
	buf_release(&head);
}

int
request_stream_begin(struct request *req)
{
	struct buf head;
	int rv;

	buf_init(&head, HEADERS_MAX * 2);
	req->status = 200;
	req->streamed = 1;
	/* X-Accel-Buffering: nginx passes each event on as it comes. */
	if (buf_printf(&head, "Status: 200 OK\r\n"
	    "Content-Type: text/event-stream; charset=utf-8\r\n"
	    "Cache-Control: no-store\r\n"
	    "X-Accel-Buffering: no\r\n"
	    "X-Request-Id: %s\r\n%s\r\n", req->id,
	    req->headers.len ? req->headers.data : "") == -1) {
		buf_release(&head);
		return -1;
	}
	rv = request_stream_write(req, head.data, head.len);
	buf_release(&head);
	return rv;
}

int
request_stream_write(struct request *req, const char *p, size_t n)
{
	FCGX_Stream *out = req->fcgi->out;

	if (FCGX_PutStr(p, (int)n, out) != (int)n || FCGX_FFlush(out) == -1 ||
	    FCGX_GetError(out) != 0)
		return -1;
	return 0;
}

void
request_flush(struct request *req)
{
	FCGX_FFlush(req->fcgi->out);
}

int
request_client_gone(struct request *req)
{
	struct pollfd pfd = { .fd = req->fcgi->ipcFd, .events = POLLRDHUP };

	return poll(&pfd, 1, 0) == 1 &&
	    (pfd.revents & (POLLRDHUP | POLLHUP | POLLERR)) != 0;
}

void
request_release(struct request *req)
{
	buf_release(&req->headers);
	buf_release(&req->out);
}
