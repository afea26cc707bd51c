/*
 * Fuzzes query_parse, the parser of the QUERY_STRING every request
 * brings, against a reference written here from query.h's contract: the
 * same status, the same pairs byte for byte, the same raw bad pair.
 */
#include <stdlib.h>
#include <string.h>

#include "common/arena.h"
#include "gateway/query.h"
#include "fuzz.h"

/* One pair as the reference decodes it (in a malloc'ed buffer). */
struct ref_pair {
	char	*name;
	char	*value;
	size_t	 value_len;
};

struct ref {
	enum query_status	status;
	struct ref_pair		pair[QUERY_MAX_PARAMS];
	size_t			n;
	const char		*bad;		/* into qs */
	size_t			 bad_len;
};

static int
ref_hex(unsigned char c)
{
	static const char digits[] = "0123456789abcdef";
	const char *p;

	if (c >= 'A' && c <= 'F')
		c = (unsigned char)(c - 'A' + 'a');
	if (c == '\0' || (p = strchr(digits, c)) == NULL)
		return -1;
	return (int)(p - digits);
}

/* Percent-decodes s[0..n) into out.  OUT: *outlen.  0, or -1 if bad. */
static int
ref_decode(const char *s, size_t n, char *out, size_t *outlen)
{
	size_t i, o = 0;
	int hi, lo;

	for (i = 0; i < n; i++) {
		if (s[i] != '%') {
			out[o++] = s[i] == '+' ? ' ' : s[i];
			continue;
		}
		if (n - i < 3 || (hi = ref_hex((unsigned char)s[i + 1])) < 0 ||
		    (lo = ref_hex((unsigned char)s[i + 2])) < 0)
			return -1;
		if (hi == 0 && lo == 0)		/* %00: no NULs inside */
			return -1;
		out[o++] = (char)(hi * 16 + lo);
		i += 2;
	}
	out[o] = '\0';
	*outlen = o;
	return 0;
}

/* Decodes one raw pair s[0..n) into r->pair[r->n].  0, or -1 if bad. */
static int
ref_pair(struct ref *r, const char *s, size_t n)
{
	struct ref_pair *p = &r->pair[r->n];
	const char *eq = memchr(s, '=', n);
	size_t namelen = eq ? (size_t)(eq - s) : n, junk;

	p->name = malloc(namelen + 1);
	p->value = malloc(n - namelen + 1);
	if (p->name == NULL || p->value == NULL)
		abort();
	if (ref_decode(s, namelen, p->name, &junk) == -1 ||
	    ref_decode(eq ? eq + 1 : "", eq ? n - namelen - 1 : 0, p->value,
	    &p->value_len) == -1) {
		free(p->name);
		free(p->value);
		return -1;
	}
	r->n++;
	return 0;
}

static void
ref_parse(struct ref *r, const char *qs)
{
	const char *s = qs, *amp;
	size_t n;

	memset(r, 0, sizeof(*r));
	r->status = QUERY_OK;
	for (; *s != '\0'; s += n + (s[n] == '&')) {
		amp = strchr(s, '&');
		n = amp ? (size_t)(amp - s) : strlen(s);
		if (n == 0)
			continue;
		if (r->n == QUERY_MAX_PARAMS) {
			r->status = QUERY_TOO_MANY;
			return;
		}
		if (ref_pair(r, s, n) == -1) {
			r->status = QUERY_BAD_ENCODING;
			r->bad = s;
			r->bad_len = n;
			return;
		}
	}
}

static void
ref_free(struct ref *r)
{
	size_t i;

	for (i = 0; i < r->n; i++) {
		free(r->pair[i].name);
		free(r->pair[i].value);
	}
}

static void
check(const struct ref *r, enum query_status st,
    const struct query_param *params, size_t n, const char *bad)
{
	size_t i;

	FUZZ_CHECK(st == r->status);
	FUZZ_CHECK(n <= QUERY_MAX_PARAMS);
	if (st == QUERY_BAD_ENCODING)
		FUZZ_CHECK(bad != NULL && strlen(bad) == r->bad_len &&
		    memcmp(bad, r->bad, r->bad_len) == 0);
	if (st != QUERY_OK)
		return;
	FUZZ_CHECK(n == r->n);
	for (i = 0; i < n; i++) {
		FUZZ_CHECK(params[i].name != NULL && params[i].value != NULL);
		FUZZ_CHECK(params[i].value_len == strlen(params[i].value));
		FUZZ_CHECK(strcmp(params[i].name, r->pair[i].name) == 0);
		FUZZ_CHECK(params[i].value_len == r->pair[i].value_len &&
		    memcmp(params[i].value, r->pair[i].value,
		    r->pair[i].value_len) == 0);
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct query_param params[QUERY_MAX_PARAMS];
	enum query_status st;
	struct arena *arena;
	struct ref r;
	const char *bad = NULL;
	char *qs;
	size_t n = 0;

	/* QUERY_STRING is a C string: what follows a NUL never arrives. */
	if ((qs = malloc(size + 1)) == NULL)
		return 0;
	memcpy(qs, data, size);
	qs[size] = '\0';
	/* Room for every decoded copy, so QUERY_NO_MEMORY cannot happen. */
	if ((arena = arena_new(4 * size + 4096)) == NULL) {
		free(qs);
		return 0;
	}
	st = query_parse(arena, qs, params, &n, &bad);
	ref_parse(&r, qs);
	check(&r, st, params, n, bad);
	ref_free(&r);
	arena_free(arena);
	free(qs);
	return 0;
}
