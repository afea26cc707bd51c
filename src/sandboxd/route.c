/*
 * Route tables: method + path pattern -> handler, as the gateway's router
 * has, for the daemon's three planes (control, code interpreter, envd).
 */
#include <stdio.h>
#include <string.h>

#include "sandboxd/route.h"

/* 1 if path matches pattern, segment by segment, with captures in *p. */
static int
pattern_match(const char *pattern, const char *path, struct route_params *p)
{
	size_t plen, slen;

	p->n = 0;
	while (*pattern == '/' && *path == '/') {
		pattern++;
		path++;
		plen = strcspn(pattern, "/");
		slen = strcspn(path, "/");
		if (plen > 2 && pattern[0] == '{' && pattern[plen - 1] == '}') {
			if (slen == 0 || slen >= ROUTE_PARAM_MAX ||
			    p->n == ROUTE_MAX_PARAMS)
				return 0;
			memcpy(p->v[p->n], path, slen);
			p->v[p->n++][slen] = '\0';
		} else if (plen != slen || memcmp(pattern, path, slen) != 0)
			return 0;
		pattern += plen;
		path += slen;
	}
	return *pattern == '\0' && *path == '\0';
}

const struct route *
route_find(const struct route *table, size_t n, const char *method,
    const char *path, struct route_params *params, char *allow,
    size_t allowsz)
{
	struct route_params scratch;
	size_t i, used = 0;

	if (allowsz > 0)
		allow[0] = '\0';
	for (i = 0; i < n; i++) {
		if (!pattern_match(table[i].pattern, path, &scratch))
			continue;
		if (strcmp(table[i].method, method) == 0) {
			*params = scratch;
			return &table[i];
		}
		if (used + 1 < allowsz) {
			used += (size_t)snprintf(allow + used, allowsz - used,
			    "%s%s", used ? ", " : "", table[i].method);
			if (used >= allowsz)
				used = allowsz - 1;
		}
	}
	return NULL;
}
