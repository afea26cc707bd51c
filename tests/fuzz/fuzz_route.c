/*
 * Fuzzes route_find, the daemon's route matcher, with "METHOD PATH"
 * inputs against a reference written here from route.h's contract: the
 * same row (the first whose method and pattern match), the same captured
 * segments byte for byte, and for a miss the same Allow list.
 */
#include <string.h>

#include "sandboxd/route.h"
#include "fuzz.h"
#include "../unit/route_rows.h"

static const struct route table[] = {
	ROUTE_TEST_ROWS,
	{ .method = "POST", .pattern = "/sandboxes/{id}/connect" },
	{ .method = "POST", .pattern = "/contexts/{id}/restart" },
	{ .method = "PUT", .pattern = "/a/{x}/{y}" },
	{ .method = "GET", .pattern = "/" },
};
#define N	(sizeof(table) / sizeof(table[0]))

/* The reference: split both on '/', compare segment lists. */
static int
ref_match(const char *pattern, const char *path, struct route_params *p)
{
	const char *a = pattern, *b = path;

	p->n = 0;
	if (*a != '/' || *b != '/')
		return 0;
	for (;;) {
		const char *ea = strchr(a + 1, '/'), *eb = strchr(b + 1, '/');
		size_t la = ea ? (size_t)(ea - a - 1) : strlen(a + 1);
		size_t lb = eb ? (size_t)(eb - b - 1) : strlen(b + 1);

		if (la >= 3 && a[1] == '{' && a[la] == '}') {
			if (lb == 0 || lb > ROUTE_PARAM_MAX - 1 ||
			    p->n == ROUTE_MAX_PARAMS)
				return 0;
			memcpy(p->v[p->n], b + 1, lb);
			p->v[p->n++][lb] = '\0';
		} else if (la != lb || memcmp(a + 1, b + 1, la) != 0)
			return 0;
		if ((ea == NULL) != (eb == NULL))
			return 0;
		if (ea == NULL)
			return 1;
		a = ea;
		b = eb;
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char input[1024], allow[256], want_allow[256];
	struct route_params got, want;
	const struct route *r, *ref = NULL;
	const char *method, *path;
	char *sp;
	size_t i, used = 0;

	if (size >= sizeof(input) || memchr(data, '\0', size) != NULL)
		return 0;
	memcpy(input, data, size);
	input[size] = '\0';
	if ((sp = strchr(input, ' ')) == NULL)
		return 0;
	*sp = '\0';
	method = input;
	path = sp + 1;

	want_allow[0] = '\0';
	for (i = 0; i < N && ref == NULL; i++) {
		if (!ref_match(table[i].pattern, path, &want))
			continue;
		if (strcmp(table[i].method, method) == 0)
			ref = &table[i];
		else
			used += (size_t)snprintf(want_allow + used,
			    sizeof(want_allow) - used, "%s%s", used ? ", " : "",
			    table[i].method);
	}
	if (ref != NULL)		/* the captures of the matching row */
		ref_match(ref->pattern, path, &want);

	r = route_find(table, N, method, path, &got, allow, sizeof(allow));
	FUZZ_CHECK(r == ref);
	if (r != NULL) {
		FUZZ_CHECK(got.n == want.n);
		for (i = 0; i < got.n; i++) {
			FUZZ_CHECK(strcmp(got.v[i], want.v[i]) == 0);
			FUZZ_CHECK(strchr(got.v[i], '/') == NULL);
		}
	} else
		FUZZ_CHECK(strcmp(allow, want_allow) == 0);
	return 0;
}
