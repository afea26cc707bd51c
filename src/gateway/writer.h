#ifndef IRIS_WRITER_H
#define IRIS_WRITER_H

#include <stdint.h>

#include "gateway/store.h"

/*
 * The writer: one thread that carries out every request's writes -- its
 * rate-limit decision and its audit row -- in batches, one transaction
 * per batch (group commit).  A worker hands over an operation and waits
 * until the batch holding it is committed: a decision is only acted on,
 * and an answer only sent, once it is durable in the database.  So no
 * answered request lacks its audit row, limits stay exact across every
 * process sharing the database, and many requests share one commit.
 */

/* Starts the writer with its own connection.  Returns 0, or -1. */
int	writer_start(const char *db_path, int busy_ms);

/*
 * Charges one request at now_us to key_id's limit.  OUT: res, *limit.
 * Returns STORE_OK, STORE_NOT_FOUND (no such key, or revoked), or the
 * database's failure.
 */
enum store_status writer_admit(const char *key_id, int64_t now_us,
	    struct rl_result *res, long *limit);

/* Writes an audit row.  Returns 0, or -1 if it could not be (logged). */
int	writer_audit(const struct audit_rec *rec);

/* Carries out what is queued, then stops.  Idempotent. */
void	writer_stop(void);

#endif
