/*
 * Fuzzes what the sandbox provider streams back: the NDJSON splitter
 * (ndjson_feed/ndjson_finish) fed in pieces, each line parsed and folded
 * into an outcome as e2b.c and execute.c do, then the API's result.
 *
 * The input: a 6-byte header, then the stream.
 *	byte 0	the line ceiling: 0 is 64 KiB, else 4 * byte
 *	byte 1	the output cap per stream: 0 is 4096, else byte
 *	2-5	the sizes of the pieces, taken in turn: 0 is "all the rest"
 *
 * The lines handed over are checked against a split of the whole stream
 * done here at once, so the pieces must not matter.
 */
#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>

#include "common/utf8.h"
#include "gateway/ndjson.h"
#include "gateway/outcome.h"
#include "fuzz.h"

#define HEADER_LEN	6
#define EVENT_MAX_DEPTH	64	/* e2b.c's on_line */

/* A line the reference split expects; p NULL for an over-long one. */
struct ref_line {
	const char	*p;
	size_t		 len;
};

struct fz {
	struct outcome	 o;
	size_t		 cap;
	struct ref_line	*want;
	size_t		 nwant;
	size_t		 next;
	size_t		 results;	/* result events folded */
	int		 errors;	/* error events folded */
	int		 all_utf8;	/* every text was UTF-8 */
};

/* Splits p[0..n) as ndjson.h says.  OUT: out (room for n + 1). */
static size_t
ref_split(const char *p, size_t n, size_t max_line, struct ref_line *out)
{
	const char *nl;
	size_t i, k = 0, len, keep;

	for (i = 0; i < n; i += len + (nl != NULL)) {
		nl = memchr(p + i, '\n', n - i);
		len = nl ? (size_t)(nl - (p + i)) : n - i;
		keep = len > 0 && p[i + len - 1] == '\r' ? len - 1 : len;
		if (len > max_line)
			out[k++] = (struct ref_line){ NULL, 0 };
		else if (keep > 0)
			out[k++] = (struct ref_line){ p + i, keep };
	}
	return k;
}

static void
check_stream_event(struct fz *f, struct json_object *ev)
{
	struct json_object *text;

	if (json_object_object_get_ex(ev, "text", &text) &&
	    json_object_is_type(text, json_type_string) &&
	    !utf8_valid(json_object_get_string(text),
	    (size_t)json_object_get_string_len(text)))
		f->all_utf8 = 0;
}

/* One event, as execute.c's on_event folds it. */
static void
fold(struct fz *f, struct json_object *ev, const char *type)
{
	struct json_object *data, *text;
	const char *name;
	int i;

	if (strcmp(type, "stdout") == 0 || strcmp(type, "stderr") == 0)
		check_stream_event(f, ev);
	outcome_event(&f->o, ev, &name, &data);
	FUZZ_CHECK((name == NULL) == (data == NULL));
	if (name && (strcmp(name, "stdout") == 0 ||
	    strcmp(name, "stderr") == 0))
		FUZZ_CHECK(json_object_object_get_ex(data, "text", &text) &&
		    json_object_is_type(text, json_type_string) &&
		    (size_t)json_object_get_string_len(text) <= f->cap);
	if (name && strcmp(name, "result") == 0)
		f->results++;
	if (name && strcmp(name, "error") == 0)
		f->errors++;
	json_object_put(data);
	for (i = 0; i < 2; i++)
		FUZZ_CHECK(f->o.out[i].len <= f->cap);
}

/* One line, as e2b.c's on_line parses it. */
static void
event(struct fz *f, const char *line, size_t len)
{
	struct json_tokener *tok;
	struct json_object *ev, *type;
	const char *t;

	if ((tok = json_tokener_new_ex(EVENT_MAX_DEPTH)) == NULL)
		return;
	ev = json_tokener_parse_ex(tok, line, (int)len);
	json_tokener_free(tok);
	if (ev != NULL && json_object_is_type(ev, json_type_object) &&
	    json_object_object_get_ex(ev, "type", &type) &&
	    json_object_is_type(type, json_type_string)) {
		t = json_object_get_string(type);
		if (strcmp(t, "end_of_execution") != 0 &&
		    strcmp(t, "keepalive") != 0)
			fold(f, ev, t);
	}
	json_object_put(ev);
}

static int
on_line(void *arg, const char *line, size_t len)
{
	struct fz *f = arg;
	const struct ref_line *w;

	FUZZ_CHECK(f->next < f->nwant);
	w = &f->want[f->next++];
	if (line == NULL) {
		FUZZ_CHECK(w->p == NULL);
		return 0;
	}
	FUZZ_CHECK(w->p != NULL && len == w->len &&
	    memcmp(line, w->p, len) == 0);
	FUZZ_CHECK(len > 0 && memchr(line, '\n', len) == NULL);
	event(f, line, len);
	return 0;
}

static size_t
string_len(struct json_object *o, const char *key)
{
	struct json_object *v;

	FUZZ_CHECK(json_object_object_get_ex(o, key, &v) &&
	    json_object_is_type(v, json_type_string));
	return (size_t)json_object_get_string_len(v);
}

static void
check_logs(struct json_object *logs, int all_utf8)
{
	struct json_object *line;
	size_t i;

	FUZZ_CHECK(json_object_is_type(logs, json_type_array));
	for (i = 0; i < json_object_array_length(logs); i++) {
		line = json_object_array_get_idx(logs, i);
		FUZZ_CHECK(json_object_is_type(line, json_type_string));
		FUZZ_CHECK(memchr(json_object_get_string(line), '\n',
		    (size_t)json_object_get_string_len(line)) == NULL);
		FUZZ_CHECK(!all_utf8 || utf8_valid(json_object_get_string(
		    line), (size_t)json_object_get_string_len(line)));
	}
}

/* The API's result agrees with what was folded in. */
static void
check_result(struct fz *f)
{
	struct outcome *o = &f->o;
	struct json_object *r, *v;
	int i, cut;

	r = outcome_result(o, 0);
	FUZZ_CHECK(string_len(r, "output") == o->out[0].len);
	FUZZ_CHECK(string_len(r, "stderr") == o->out[1].len);
	for (i = 0; i < 2; i++) {
		FUZZ_CHECK(o->out[i].len <= f->cap);
		FUZZ_CHECK(!f->all_utf8 || o->out[i].len == 0 ||
		    utf8_valid(o->out[i].data, o->out[i].len));
	}
	/* Cut exactly when a byte the code wrote was not kept. */
	cut = o->seen[0] + o->seen[1] > (long)(o->out[0].len + o->out[1].len);
	FUZZ_CHECK(json_object_object_get_ex(r, "truncated", &v) &&
	    json_object_get_boolean(v) == cut);
	FUZZ_CHECK(json_object_object_get_ex(r, "logs", &v));
	check_logs(v, f->all_utf8);
	FUZZ_CHECK(json_object_object_get_ex(r, "results", &v) &&
	    json_object_array_length(v) == f->results);
	FUZZ_CHECK(json_object_object_get_ex(r, "error", &v) &&
	    (v != NULL) == (f->errors > 0));
	json_object_put(r);
}

/* Feeds p[0..n) in pieces of the header's sizes. */
static void
feed(struct ndjson *nd, const uint8_t *hdr, const char *p, size_t n)
{
	size_t k, take;

	for (k = 0; n > 0; k++) {
		take = hdr[2 + k % 4] ? hdr[2 + k % 4] : n;
		if (take > n)
			take = n;
		FUZZ_CHECK(ndjson_feed(nd, p, take) == 0);
		p += take;
		n -= take;
	}
	FUZZ_CHECK(ndjson_finish(nd) == 0);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t hdr[HEADER_LEN] = { 0 };
	size_t hlen = size < HEADER_LEN ? size : HEADER_LEN, max_line, n;
	const char *p = (const char *)data + hlen;
	struct ndjson nd;
	struct fz f;

	memcpy(hdr, data, hlen);
	n = size - hlen;
	max_line = hdr[0] ? (size_t)hdr[0] * 4 : 64 * 1024;
	memset(&f, 0, sizeof(f));
	f.cap = hdr[1] ? hdr[1] : 4096;
	f.all_utf8 = 1;
	if ((f.want = calloc(n + 1, sizeof(*f.want))) == NULL)
		return 0;
	f.nwant = ref_split(p, n, max_line, f.want);
	outcome_init(&f.o, f.cap);
	ndjson_init(&nd, max_line, on_line, &f);
	feed(&nd, hdr, p, n);
	FUZZ_CHECK(f.next == f.nwant);
	check_result(&f);
	ndjson_release(&nd);
	outcome_release(&f.o);
	free(f.want);
	return 0;
}
