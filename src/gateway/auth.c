/* Authentication: the caller's API key against the stored SHA-256. */
#include <string.h>
#include <strings.h>

#include "common/apikey.h"
#include "common/crypto.h"
#include "gateway/auth.h"
#include "gateway/request.h"
#include "gateway/store.h"

static const char *
skip_spaces(const char *s)
{
	while (*s == ' ' || *s == '\t')
		s++;
	return s;
}

/* The length of s without trailing blanks. */
static size_t
trimmed_len(const char *s)
{
	size_t n = strlen(s);

	while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
		n--;
	return n;
}

int
auth_extract(const char *authorization, const char *x_api_key,
    const char **key, size_t *len)
{
	const char *p;

	if (*authorization != '\0') {
		p = skip_spaces(authorization);
		if (strncasecmp(p, "Bearer", 6) != 0 ||
		    (p[6] != ' ' && p[6] != '\t'))
			return -1;
		p = skip_spaces(p + 6);
	} else
		p = skip_spaces(x_api_key);
	if ((*len = trimmed_len(p)) == 0)
		return -1;
	*key = p;
	return 0;
}

enum auth_result
auth_check(struct request *req)
{
	unsigned char hash[CRYPTO_SHA256_LEN];
	struct store_key row;
	const char *key;
	size_t len;
	int equal;

	if (auth_extract(request_param(req, "HTTP_AUTHORIZATION"),
	    request_param(req, "HTTP_X_API_KEY"), &key, &len) == -1 ||
	    apikey_parse(key, len, req->key_id) == -1)
		return AUTH_DENIED;
	switch (store_key_find(req->store, req->key_id, &row)) {
	case STORE_OK:
		break;
	case STORE_NOT_FOUND:
		return AUTH_DENIED;
	default:
		return AUTH_UNAVAILABLE;
	}
	apikey_hash(key, len, hash);
	equal = crypto_equal(hash, row.hash, sizeof(hash));
	crypto_wipe(hash, sizeof(hash));
	if (!equal || row.revoked)
		return AUTH_DENIED;
	memcpy(req->project_id, row.project_id, sizeof(req->project_id));
	req->authenticated = 1;
	return AUTH_OK;
}
