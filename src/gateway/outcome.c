/* Folding a provider's execution events into the API's result. */
#include <json-c/json.h>
#include <stdio.h>
#include <string.h>

#include "common/utf8.h"
#include "gateway/outcome.h"

static const char *const stream_names[] = { "stdout", "stderr" };

/*
 * Provider result fields passed on, their names in our API, and whether a
 * prefix of them is still worth having (text is; an image, a document or
 * a JSON tree cut short is not: those are kept whole or left out).
 */
static const struct {
	const char	*from, *to;
	int		 prefix;
} result_fields[] = {
	{ "text", "text", 1 }, { "html", "html", 0 },
	{ "markdown", "markdown", 1 }, { "svg", "svg", 0 },
	{ "png", "png", 0 }, { "jpeg", "jpeg", 0 }, { "pdf", "pdf", 0 },
	{ "latex", "latex", 1 }, { "json", "json", 0 },
	{ "javascript", "javascript", 0 }, { "data", "data", 0 },
	{ "chart", "chart", 0 }, { "extra", "extra", 0 },
};

/* {"keptBytes": kept, "droppedBytes": dropped}: a new reference. */
static struct json_object *
cut_record(long kept, long dropped)
{
	struct json_object *r = json_object_new_object();

	json_object_object_add(r, "keptBytes", json_object_new_int64(kept));
	json_object_object_add(r, "droppedBytes",
	    json_object_new_int64(dropped));
	return r;
}

void
outcome_init(struct outcome *o, size_t cap)
{
	int i;

	memset(o, 0, sizeof(*o));
	for (i = 0; i < 2; i++) {
		buf_init(&o->out[i], cap);
		buf_init(&o->partial[i], cap);
	}
	o->results_left = cap * OUTCOME_RESULTS_SHARE;
	o->logs = json_object_new_array();
	o->results = json_object_new_array();
	o->execution_count = -1;
}

void
outcome_release(struct outcome *o)
{
	int i;

	for (i = 0; i < 2; i++) {
		buf_release(&o->out[i]);
		buf_release(&o->partial[i]);
	}
	json_object_put(o->logs);
	json_object_put(o->results);
	json_object_put(o->result_cuts);
	json_object_put(o->error);
}

/* Moves complete lines of stream i into the logs. */
static void
split_lines(struct outcome *o, int i, int flush)
{
	struct buf *p = &o->partial[i];
	char *nl, *start = p->data;
	size_t rest;

	if (p->len == 0)
		return;
	while ((nl = memchr(start, '\n', p->len - (size_t)(start - p->data))))
	{
		json_object_array_add(o->logs, json_object_new_string_len(start,
		    (int)(nl - start)));
		start = nl + 1;
	}
	rest = p->len - (size_t)(start - p->data);
	if (flush && rest > 0) {
		json_object_array_add(o->logs,
		    json_object_new_string_len(start, (int)rest));
		rest = 0;
		start = p->data + p->len;
	}
	memmove(p->data, start, rest);
	p->len = rest;
	p->data[rest] = '\0';
}

/*
 * Keeps what fits under the cap, cut on a character boundary; once a
 * stream was cut, nothing more of it is kept (the kept text stays one
 * prefix of what the code wrote).
 */
static size_t
keep(struct outcome *o, int i, const char *s, size_t n)
{
	size_t k = o->dropped[i] ? 0 :
	    utf8_prefix(s, n, o->out[i].max - o->out[i].len);

	if (k < n) {
		o->dropped[i] += (long)(n - k);
		o->truncated = 1;
	}
	return k;
}

static void
stream_text(struct outcome *o, int i, struct json_object *ev,
    struct json_object **data)
{
	struct json_object *text;
	const char *s;
	size_t n, k;

	if (!json_object_object_get_ex(ev, "text", &text) ||
	    !json_object_is_type(text, json_type_string))
		return;
	s = json_object_get_string(text);
	n = (size_t)json_object_get_string_len(text);
	o->seen[i] += (long)n;
	k = keep(o, i, s, n);
	if (k == 0)
		return;
	buf_append(&o->out[i], s, k);
	buf_append(&o->partial[i], s, k);
	split_lines(o, i, 0);
	*data = json_object_new_object();
	json_object_object_add(*data, "text",
	    json_object_new_string_len(s, (int)k));
}

/* Records that field of result index kept kept bytes of kept + dropped. */
static void
result_cut(struct outcome *o, size_t index, const char *field, long kept,
    long dropped)
{
	struct json_object *rec = cut_record(kept, dropped);

	json_object_object_add(rec, "index", json_object_new_int64(
	    (int64_t)index));
	json_object_object_add(rec, "field", json_object_new_string(field));
	if (o->result_cuts == NULL)
		o->result_cuts = json_object_new_array();
	json_object_array_add(o->result_cuts, rec);
	o->truncated = 1;
}

/*
 * One field of a result, within the results' room: text cut to a prefix
 * of at most cap bytes, anything else whole or not at all.  Returns what
 * is kept (a new reference), or NULL.
 */
static struct json_object *
result_field(struct outcome *o, size_t index, size_t f, struct json_object *v)
{
	size_t n, k, room = o->results_left;
	int prefix = result_fields[f].prefix &&
	    json_object_is_type(v, json_type_string);
	const char *s;

	if (json_object_is_type(v, json_type_string)) {
		s = json_object_get_string(v);
		n = (size_t)json_object_get_string_len(v);
	} else {
		s = json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN);
		n = strlen(s);
	}
	if (prefix && room > o->out[0].max)
		room = o->out[0].max;
	k = n <= room ? n : prefix ? utf8_prefix(s, n, room) : 0;
	o->results_left -= k;
	if (k < n)
		result_cut(o, index, result_fields[f].to, (long)k,
		    (long)(n - k));
	if (k == n)
		return json_object_get(v);
	return k > 0 ? json_object_new_string_len(s, (int)k) : NULL;
}

/* The API's <Result> for a provider result event. */
static struct json_object *
result_of(struct outcome *o, struct json_object *ev)
{
	struct json_object *r = json_object_new_object(), *v;
	size_t i, index = json_object_array_length(o->results);

	json_object_object_add(r, "isMainResult", json_object_new_boolean(
	    json_object_object_get_ex(ev, "is_main_result", &v) &&
	    json_object_get_boolean(v)));
	for (i = 0; i < sizeof(result_fields) / sizeof(result_fields[0]); i++)
		if (json_object_object_get_ex(ev, result_fields[i].from, &v) &&
		    v != NULL && (v = result_field(o, index, i, v)) != NULL)
			json_object_object_add(r, result_fields[i].to, v);
	return r;
}

/* What the provider dropped before it reached us: counted as dropped. */
static void
provider_cut(struct outcome *o, struct json_object *ev)
{
	struct json_object *st, *v;
	int64_t n;
	int i;

	for (i = 0; i < 2; i++) {
		if (!json_object_object_get_ex(ev, stream_names[i], &st) ||
		    !json_object_object_get_ex(st, "dropped_bytes", &v) ||
		    !json_object_is_type(v, json_type_int) ||
		    (n = json_object_get_int64(v)) <= 0 || n > (1LL << 50))
			continue;
		o->seen[i] += (long)n;
		o->dropped[i] += (long)n;
		o->truncated = 1;
	}
}

static struct json_object *
error_of(const char *name, const char *value, const char *traceback)
{
	struct json_object *e = json_object_new_object();

	json_object_object_add(e, "name", json_object_new_string(name));
	json_object_object_add(e, "value", json_object_new_string(value));
	json_object_object_add(e, "traceback",
	    json_object_new_string(traceback));
	return e;
}

static const char *
member_string(struct json_object *o, const char *name)
{
	struct json_object *v;

	if (json_object_object_get_ex(o, name, &v) &&
	    json_object_is_type(v, json_type_string))
		return json_object_get_string(v);
	return "";
}

void
outcome_event(struct outcome *o, struct json_object *ev, const char **name,
    struct json_object **data)
{
	const char *type = member_string(ev, "type");
	struct json_object *v;

	*name = NULL;
	*data = NULL;
	if (strcmp(type, "stdout") == 0 || strcmp(type, "stderr") == 0) {
		stream_text(o, type[3] == 'e' ? 1 : 0, ev, data);
		if (*data)
			*name = type;
	} else if (strcmp(type, "result") == 0) {
		v = result_of(o, ev);
		json_object_array_add(o->results, v);
		*name = "result";
		*data = json_object_get(v);
	} else if (strcmp(type, "error") == 0) {
		/* The first error is the one (the kernel stops there). */
		if (o->error == NULL)
			o->error = error_of(member_string(ev, "name"),
			    member_string(ev, "value"),
			    member_string(ev, "traceback"));
		*name = "error";
		*data = json_object_get(o->error);
	} else if (strcmp(type, "output_truncated") == 0)
		provider_cut(o, ev);
	else if (strcmp(type, "number_of_executions") == 0 &&
	    json_object_object_get_ex(ev, "execution_count", &v) &&
	    json_object_is_type(v, json_type_int))
		o->execution_count = (long)json_object_get_int64(v);
}

int
outcome_collect(void *arg, struct json_object *event)
{
	const char *name;
	struct json_object *data;

	outcome_event(arg, event, &name, &data);
	json_object_put(data);
	return 0;
}

void
outcome_fail(struct outcome *o, const char *name, const char *value)
{
	json_object_put(o->error);
	o->error = error_of(name, value, "");
}

void
outcome_timeout(struct outcome *o, int timeout_s)
{
	char value[64];

	snprintf(value, sizeof(value), "execution timed out after %d s",
	    timeout_s);
	outcome_fail(o, "TimeoutError", value);
}

int
outcome_failed(const struct outcome *o)
{
	return o->error != NULL;
}

/*
 * Once a stream was cut, the logs (which repeat the kept output line by
 * line) keep only their first cap / OUTCOME_LOGS_SHARE bytes.  Returns
 * the record of what they left out, or NULL.
 */
static struct json_object *
trim_logs(struct outcome *o)
{
	size_t room = o->out[0].max / OUTCOME_LOGS_SHARE, i, n, k;
	long kept = 0, dropped = 0;
	struct json_object *logs, *line;
	const char *s;

	if (o->dropped[0] == 0 && o->dropped[1] == 0)
		return NULL;
	logs = json_object_new_array();
	for (i = 0; i < json_object_array_length(o->logs); i++) {
		line = json_object_array_get_idx(o->logs, i);
		s = json_object_get_string(line);
		n = (size_t)json_object_get_string_len(line);
		k = utf8_prefix(s, n, room);
		if (k == n && room > 0)
			json_object_array_add(logs, json_object_get(line));
		else if (k > 0)
			json_object_array_add(logs,
			    json_object_new_string_len(s, (int)k));
		room -= k;
		kept += (long)k;
		dropped += (long)(n - k);
	}
	json_object_put(o->logs);
	o->logs = logs;
	return dropped ? cut_record(kept, dropped) : NULL;
}

/* The result's "truncation": a record per part cut, or NULL. */
static struct json_object *
truncation(struct outcome *o)
{
	struct json_object *t = json_object_new_object(), *logs;
	int i;

	for (i = 0; i < 2; i++)
		if (o->dropped[i])
			json_object_object_add(t, stream_names[i], cut_record(
			    (long)o->out[i].len, o->dropped[i]));
	if ((logs = trim_logs(o)) != NULL)
		json_object_object_add(t, "logs", logs);
	if (o->result_cuts)
		json_object_object_add(t, "results",
		    json_object_get(o->result_cuts));
	if (json_object_object_length(t) == 0) {
		json_object_put(t);
		return NULL;
	}
	return t;
}

struct json_object *
outcome_result(struct outcome *o, long execution_ms)
{
	struct json_object *r = json_object_new_object(), *t;

	split_lines(o, 0, 1);
	split_lines(o, 1, 1);
	t = truncation(o);
	json_object_object_add(r, "success",
	    json_object_new_boolean(o->error == NULL));
	json_object_object_add(r, "output", json_object_new_string_len(
	    o->out[0].data ? o->out[0].data : "", (int)o->out[0].len));
	json_object_object_add(r, "stderr", json_object_new_string_len(
	    o->out[1].data ? o->out[1].data : "", (int)o->out[1].len));
	json_object_object_add(r, "logs", json_object_get(o->logs));
	json_object_object_add(r, "error", o->error ?
	    json_object_get(o->error) : NULL);
	json_object_object_add(r, "results", json_object_get(o->results));
	json_object_object_add(r, "executionCount", o->execution_count >= 0 ?
	    json_object_new_int64(o->execution_count) : NULL);
	json_object_object_add(r, "executionTime",
	    json_object_new_int64(execution_ms));
	json_object_object_add(r, "truncated",
	    json_object_new_boolean(o->truncated));
	json_object_object_add(r, "truncation", t);
	return r;
}
