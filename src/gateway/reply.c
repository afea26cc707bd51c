/* Answers: JSON bodies, the one error writer, extra headers. */
#include <json-c/json.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "common/log.h"
#include "common/utf8.h"
#include "gateway/reply.h"
#include "gateway/request.h"

#define FIELD_MAX	128

const char *
reply_reason(int status)
{
	switch (status) {
	case 200: return "OK";
	case 201: return "Created";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 413: return "Content Too Large";
	case 415: return "Unsupported Media Type";
	case 429: return "Too Many Requests";
	case 500: return "Internal Server Error";
	case 502: return "Bad Gateway";
	case 503: return "Service Unavailable";
	case 504: return "Gateway Timeout";
	default: return "Unknown";
	}
}

void
reply_json(struct request *req, int status, struct json_object *obj)
{
	const char *text;
	size_t len;

	text = json_object_to_json_string_length(obj,
	    JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &len);
	buf_reset(&req->out);
	if (text == NULL || buf_append(&req->out, text, len) == -1) {
		json_object_put(obj);
		log_warnx("%s: answer too large or out of memory", req->id);
		/* Nothing was sent yet: say so plainly instead. */
		buf_reset(&req->out);
		req->status = 500;
		req->error_code = "internal";
		buf_printf(&req->out, "{\"success\":false,\"error\":{\"code\":"
		    "\"internal\",\"message\":\"the answer could not be "
		    "built\"},\"requestId\":\"%s\"}", req->id);
		return;
	}
	json_object_put(obj);
	req->status = status;
}

void
reply_error(struct request *req, int status, const char *code,
    const char *field, const char *fmt, ...)
{
	struct json_object *obj, *err;
	char raw[512], msg[512], name[FIELD_MAX + 1];
	va_list ap;

	/*
	 * Message and field may carry the client's bytes (a field's name):
	 * what goes back is valid UTF-8, cut on a character boundary.
	 */
	va_start(ap, fmt);
	vsnprintf(raw, sizeof(raw), fmt, ap);
	va_end(ap);
	utf8_clean(raw, strlen(raw), msg, sizeof(msg));
	err = json_object_new_object();
	json_object_object_add(err, "code", json_object_new_string(code));
	json_object_object_add(err, "message", json_object_new_string(msg));
	if (field) {
		utf8_clean(field, strlen(field), name, sizeof(name));
		json_object_object_add(err, "field",
		    json_object_new_string(name));
	}
	obj = json_object_new_object();
	json_object_object_add(obj, "success", json_object_new_boolean(0));
	json_object_object_add(obj, "error", err);
	json_object_object_add(obj, "requestId",
	    json_object_new_string(req->id));
	req->error_code = code;		/* reply_json may override it */
	reply_json(req, status, obj);
}

void
reply_header(struct request *req, const char *name, const char *fmt, ...)
{
	char value[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(value, sizeof(value), fmt, ap);
	va_end(ap);
	if (buf_printf(&req->headers, "%s: %s\r\n", name, value) == -1)
		log_warnx("%s: too many response headers", req->id);
}
