#ifndef IRIS_AUDIT_H
#define IRIS_AUDIT_H

#include "gateway/store.h"

/*
 * The audit writer: one thread that inserts audit rows in batches (group
 * commit).  A worker hands over its row and waits until the batch holding
 * it is committed, then sends the answer, so no answered request lacks
 * its row, while many requests share one transaction.
 */

/* Starts the writer with its own connection.  Returns 0, or -1. */
int	audit_start(const char *db_path, int busy_ms);

/*
 * Queues rec and waits until it is committed (or, after retries, known
 * lost, which is logged).  Returns 0 if committed, -1 if not.
 */
int	audit_write(const struct audit_rec *rec);

/* Commits what is queued, then stops the writer.  Idempotent. */
void	audit_stop(void);

#endif
