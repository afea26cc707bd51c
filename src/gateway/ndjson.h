#ifndef IRIS_NDJSON_H
#define IRIS_NDJSON_H

#include <stddef.h>

#include "common/buf.h"

/*
 * An incremental splitter for newline-delimited JSON as it arrives in
 * arbitrary pieces.  Each complete line (without its '\n' and any '\r')
 * is handed to the callback; a line longer than max_line is dropped whole
 * and reported once with line == NULL.  Parsing the JSON is the caller's.
 */
struct ndjson {
	struct buf	 line;		/* the partial line so far */
	int		 skipping;	/* inside an over-long line */
	int		(*on_line)(void *arg, const char *line, size_t len);
	void		*arg;
};

/* on_line returns 0 to go on, -1 to stop (ndjson_feed then returns -1). */
void	ndjson_init(struct ndjson *nd, size_t max_line,
	    int (*on_line)(void *, const char *, size_t), void *arg);
void	ndjson_release(struct ndjson *nd);

/* Feeds n bytes.  Returns 0, or -1 if a callback asked to stop. */
int	ndjson_feed(struct ndjson *nd, const char *p, size_t n);

/* Ends the input: a last line without '\n' is handed over.  0 or -1. */
int	ndjson_finish(struct ndjson *nd);

#endif
