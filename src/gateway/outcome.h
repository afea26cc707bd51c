#ifndef IRIS_OUTCOME_H
#define IRIS_OUTCOME_H

#include <stddef.h>

#include "common/buf.h"

struct json_object;

/*
 * What an execution produced, folded from the provider's events into the
 * API's result shape: output (capped per stream; then cut, and truncated
 * is set), the log lines of both streams in order, rich results, the
 * error, the execution count.
 */
struct outcome {
	struct buf		 out[2];	/* stdout, stderr kept */
	struct buf		 partial[2];	/* a line not yet ended */
	long			 seen[2];	/* bytes the code wrote */
	struct json_object	*logs;
	struct json_object	*results;
	struct json_object	*error;		/* or NULL */
	long			 execution_count;	/* -1 if unknown */
	int			 truncated;
};

void	outcome_init(struct outcome *o, size_t cap);
void	outcome_release(struct outcome *o);

/*
 * Folds in one provider event.  OUT: *name and *data, what a stream
 * client is sent for it ("stdout" {"text"}, "result" <Result>, "error"
 * <Error>; *data a new reference), or NULL names for events it is not
 * sent (the count).
 */
void	outcome_event(struct outcome *o, struct json_object *event,
	    const char **name, struct json_object **data);

/* Records that the execution was ended after timeout_s seconds. */
void	outcome_timeout(struct outcome *o, int timeout_s);

/* Records that the kernel or sandbox failed mid-run (name, value). */
void	outcome_fail(struct outcome *o, const char *name, const char *value);

/* 1 if the code raised, was killed or timed out. */
int	outcome_failed(const struct outcome *o);

/*
 * The API's "result" object (without "metadata"): a new reference.  The
 * partial last lines are flushed into the logs first.
 */
struct json_object *outcome_result(struct outcome *o, long execution_ms);

#endif
