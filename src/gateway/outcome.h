#ifndef IRIS_OUTCOME_H
#define IRIS_OUTCOME_H

#include <stddef.h>

#include "common/buf.h"

struct json_object;

/*
 * What an execution produced, folded from the provider's events into the
 * API's result shape: output, the log lines of both streams in order,
 * rich results, the error, the execution count.
 *
 * The gateway is where output is cut, for every provider: each stream
 * keeps a prefix of at most cap bytes ending on a character boundary;
 * each text field of a rich result likewise; all rich results together
 * take at most OUTCOME_RESULTS_SHARE caps (a field that does not fit is
 * left out whole).  Once a stream was cut, the logs keep only their first
 * cap / OUTCOME_LOGS_SHARE bytes, so a flood answers about cap's size.
 * Each cut is one record in the result's "truncation" (bytes kept, bytes
 * dropped); the text itself is never marked.
 */
#define OUTCOME_RESULTS_SHARE	8
#define OUTCOME_LOGS_SHARE	16

struct outcome {
	struct buf		 out[2];	/* stdout, stderr kept */
	struct buf		 partial[2];	/* a line not yet ended */
	long			 seen[2];	/* bytes the code wrote */
	long			 dropped[2];	/* of those, not kept */
	size_t			 results_left;	/* room for rich results */
	struct json_object	*logs;
	struct json_object	*results;
	struct json_object	*result_cuts;	/* records, or NULL */
	struct json_object	*error;		/* or NULL */
	long			 execution_count;	/* -1 if unknown */
	int			 truncated;
};

/* cap: bytes kept per stream (and per text field of a result). */
void	outcome_init(struct outcome *o, size_t cap);
void	outcome_release(struct outcome *o);

/*
 * Folds in one provider event.  A provider's "output_truncated" event
 * ({"stdout": {"dropped_bytes": N}, "stderr": ...}) adds what the
 * provider dropped before it reached us to the counts.  OUT: *name and
 * *data, what a stream client is sent for it ("stdout" {"text"},
 * "result" <Result>, "error" <Error>; *data a new reference), or NULL
 * names for events it is not sent (the count).
 */
void	outcome_event(struct outcome *o, struct json_object *event,
	    const char **name, struct json_object **data);

/*
 * An e2b_execute event callback for runs whose events are only kept (a
 * helper run, a probe): outcome_event into arg, a struct outcome.
 * Returns 0 (never stops the run).
 */
int	outcome_collect(void *arg, struct json_object *event);

/* Records that the execution was ended after timeout_s seconds. */
void	outcome_timeout(struct outcome *o, int timeout_s);

/* Records that the kernel or sandbox failed mid-run (name, value). */
void	outcome_fail(struct outcome *o, const char *name, const char *value);

/* 1 if the code raised, was killed or timed out. */
int	outcome_failed(const struct outcome *o);

/*
 * The API's "result" object (without "metadata"): a new reference.  The
 * partial last lines are flushed into the logs first; "truncation" is
 * null, or holds a record for each part that was cut.
 */
struct json_object *outcome_result(struct outcome *o, long execution_ms);

#endif
