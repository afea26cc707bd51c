#ifndef IRIS_AUTH_H
#define IRIS_AUTH_H

#include <stddef.h>

struct request;

enum auth_result {
	AUTH_OK = 0,		/* req->key_id and req->project_id are set */
	AUTH_DENIED,		/* missing, malformed, unknown or revoked */
	AUTH_UNAVAILABLE	/* the database could not answer */
};

/*
 * Finds the API key the request carries ("Authorization: Bearer KEY", or
 * "X-API-Key: KEY") and checks it against the stored hash in constant
 * time.  The key itself is never copied, logged or echoed.
 */
enum auth_result auth_check(struct request *req);

/*
 * Extracts the key from header values (either may be ""). OUT: *key, *len
 * (pointing into the header).  Returns 0, or -1 if there is none.
 */
int	auth_extract(const char *authorization, const char *x_api_key,
	    const char **key, size_t *len);

#endif
