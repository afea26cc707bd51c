/* Query strings: split and percent-decode. */
#include <string.h>

#include "common/arena.h"
#include "gateway/query.h"

static int
hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Decodes s[0..n) into a new arena string.  Returns NULL on bad input. */
static char *
decode(struct arena *arena, const char *s, size_t n, size_t *outlen,
    int *nomem)
{
	char *out, *p;
	size_t i;
	int hi, lo;

	if ((out = arena_alloc(arena, n + 1)) == NULL) {
		*nomem = 1;
		return NULL;
	}
	for (i = 0, p = out; i < n; i++) {
		if (s[i] == '+') {
			*p++ = ' ';
		} else if (s[i] != '%') {
			*p++ = s[i];
		} else {
			if (i + 2 >= n)
				return NULL;
			if ((hi = hexval(s[i + 1])) < 0 ||
			    (lo = hexval(s[i + 2])) < 0 || (hi | lo) == 0)
				return NULL;
			*p++ = (char)(hi << 4 | lo);
			i += 2;
		}
	}
	*p = '\0';
	*outlen = (size_t)(p - out);
	return out;
}

enum query_status
query_parse(struct arena *arena, const char *qs, struct query_param *params,
    size_t *n, const char **bad)
{
	const char *pair, *end, *eq;
	size_t namelen, vlen;
	int nomem = 0;

	*n = 0;
	for (pair = qs; pair != NULL && *pair != '\0'; pair = end) {
		end = strchr(pair, '&');
		namelen = end ? (size_t)(end - pair) : strlen(pair);
		if (end)
			end++;
		if (namelen == 0)
			continue;
		if (*n == QUERY_MAX_PARAMS)
			return QUERY_TOO_MANY;
		eq = memchr(pair, '=', namelen);
		vlen = eq ? namelen - (size_t)(eq - pair) - 1 : 0;
		if (eq)
			namelen = (size_t)(eq - pair);
		params[*n].name = decode(arena, pair, namelen, &(size_t){0},
		    &nomem);
		params[*n].value = params[*n].name == NULL ? NULL :
		    decode(arena, eq ? eq + 1 : "", vlen, &params[*n].value_len,
		    &nomem);
		if (params[*n].value == NULL) {
			if (nomem)
				return QUERY_NO_MEMORY;
			*bad = arena_strndup(arena, pair,
			    eq ? namelen + vlen + 1 : namelen);
			return QUERY_BAD_ENCODING;
		}
		(*n)++;
	}
	return QUERY_OK;
}
