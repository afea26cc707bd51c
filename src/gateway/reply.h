#ifndef IRIS_REPLY_H
#define IRIS_REPLY_H

struct json_object;
struct request;

/*
 * Building answers.  Each sets req->status and req->out; the router sends
 * them.  Every error goes through reply_error, so every error has the
 * envelope {"success": false, "error": {...}, "requestId": ...}.
 */

/* Answers status with obj (taking ownership of obj). */
void	reply_json(struct request *req, int status, struct json_object *obj);

/*
 * Answers with the error envelope: code, a message for people, and the
 * field it is about (or NULL).  The message never holds secrets or paths.
 */
void	reply_error(struct request *req, int status, const char *code,
	    const char *field, const char *fmt, ...)
	    __attribute__((format(printf, 5, 6)));

/* Adds a response header line; name and value must be plain ASCII. */
void	reply_header(struct request *req, const char *name, const char *fmt,
	    ...) __attribute__((format(printf, 3, 4)));

/* "Bad Request" for 400, etc. */
const char *reply_reason(int status);

#endif
