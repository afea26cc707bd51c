/* Folding a provider's execution events into the API's result. */
#include <json-c/json.h>
#include <stdio.h>
#include <string.h>

#include "gateway/outcome.h"

/* Provider result fields passed on, and their names in our API. */
static const char *const result_fields[][2] = {
	{ "text", "text" }, { "html", "html" }, { "markdown", "markdown" },
	{ "svg", "svg" }, { "png", "png" }, { "jpeg", "jpeg" },
	{ "pdf", "pdf" }, { "latex", "latex" }, { "json", "json" },
	{ "javascript", "javascript" }, { "data", "data" },
	{ "chart", "chart" }, { "extra", "extra" },
};

void
outcome_init(struct outcome *o, size_t cap)
{
	int i;

	memset(o, 0, sizeof(*o));
	for (i = 0; i < 2; i++) {
		buf_init(&o->out[i], cap);
		buf_init(&o->partial[i], cap);
	}
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

/* Keeps what fits under the cap, cut on a UTF-8 boundary. */
static size_t
keep(struct outcome *o, int i, const char *s, size_t n)
{
	size_t room = o->out[i].max - o->out[i].len;

	if (n <= room)
		return n;
	o->truncated = 1;
	while (room > 0 && ((unsigned char)s[room] & 0xc0) == 0x80)
		room--;
	return room;
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

/* The API's <Result> for a provider result event. */
static struct json_object *
result_of(struct json_object *ev)
{
	struct json_object *r = json_object_new_object(), *v;
	size_t i;

	json_object_object_add(r, "isMainResult", json_object_new_boolean(
	    json_object_object_get_ex(ev, "is_main_result", &v) &&
	    json_object_get_boolean(v)));
	for (i = 0; i < sizeof(result_fields) / sizeof(result_fields[0]); i++)
		if (json_object_object_get_ex(ev, result_fields[i][0], &v) &&
		    v != NULL)
			json_object_object_add(r, result_fields[i][1],
			    json_object_get(v));
	return r;
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
		v = result_of(ev);
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
	} else if (strcmp(type, "number_of_executions") == 0 &&
	    json_object_object_get_ex(ev, "execution_count", &v) &&
	    json_object_is_type(v, json_type_int))
		o->execution_count = (long)json_object_get_int64(v);
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

struct json_object *
outcome_result(struct outcome *o, long execution_ms)
{
	struct json_object *r = json_object_new_object();

	split_lines(o, 0, 1);
	split_lines(o, 1, 1);
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
	return r;
}
