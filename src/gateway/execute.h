#ifndef IRIS_EXECUTE_H
#define IRIS_EXECUTE_H

#include <stddef.h>

struct json_object;
struct request;

#define EXEC_TIMEOUT_DEFAULT	30
#define EXEC_TIMEOUT_MAX	300
#define EXEC_MAX_ENV_VARS	64
#define EXEC_MAX_PACKAGES	64

/* A validated execute request; strings point into the request's body. */
struct exec_req {
	const char		*code;
	size_t			 code_len;
	const char		*language;	/* python, javascript or bash */
	const char		*session_id;	/* NULL if none */
	const char		*sandbox_id;	/* NULL if none */
	struct json_object	*context;	/* an object, or NULL */
	struct json_object	*env_vars;	/* an object of strings, or NULL */
	struct json_object	*packages;	/* an array of strings, or NULL */
	int			 timeout_s;
};

/*
 * Validates req->body as an execute request.  OUT: er.  Returns 0; or -1
 * after answering the error (naming the field).
 */
int	execute_parse(struct request *req, struct exec_req *er);

#endif
