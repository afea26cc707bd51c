#ifndef IRIS_LEASE_H
#define IRIS_LEASE_H

#include "gateway/e2b.h"
#include "gateway/store.h"

struct request;

/*
 * Which sandbox a request runs in, and its bookkeeping: the sandboxes
 * table, sandbox_events, the provider's lifetime of each sandbox, and the
 * project's cap.  Every step is recorded before it is acted on, so a
 * crash leaves a row that the reaper or a later request can finish.
 */
struct lease {
	struct store_sandbox	 row;
	struct e2b_sandbox	 sb;		/* how to reach it */
	int			 fresh;		/* made for one request: close after */
	int			 created;	/* made by this request */
	int			 retry_after_s;	/* with LEASE_LIMIT */
};

/* The words of LEASE_LIMIT (a printf format of the cap) and LEASE_EVICTED. */
#define LEASE_LIMIT_MESSAGE "this project has its maximum of %ld live " \
	"sandboxes, every one running code, and none was given back while " \
	"this call waited its turn; try again shortly"
#define LEASE_EVICTED_MESSAGE "this session's sandbox was idle and was " \
	"evicted to make room for another run of the project: its state " \
	"is gone; send the request again to start the session afresh"

enum lease_err {
	LEASE_OK = 0,
	LEASE_NOT_FOUND,	/* no live sandbox with that id in the project */
	LEASE_LIMIT,		/* no room in the project within the wait */
	LEASE_EVICTED,		/* the session's idle sandbox was evicted */
	LEASE_DB,		/* the database failed */
	LEASE_PROVIDER		/* the provider failed: *pst says how */
};

/*
 * Finds or creates the sandbox for a request of project: sandbox_id (a
 * live one of the project), else session_id (its sandbox, created on
 * first use, once even under concurrency), else a fresh one, closed after
 * its run unless prewarm.  idle_s is the idle lifetime of a sandbox it
 * creates, run_s how long the coming run may take (a new sandbox lives
 * that much longer at first).  At the project's cap the least recently
 * used idle session is evicted to make room, else the call waits its turn
 * (admission.h) for up to wait_s seconds (at most IRIS_ADMISSION_WAIT):
 * LEASE_LIMIT after that, or at once if the queue is full, with
 * l->retry_after_s.  A session whose sandbox was evicted since its last
 * call gets LEASE_EVICTED once; its next call starts afresh.
 * OUT: l, *pst.
 */
enum lease_err	lease_acquire(struct request *req, const char *sandbox_id,
		    const char *session_id, const char *language, long idle_s,
		    long run_s, long wait_s, int prewarm, struct lease *l,
		    enum e2b_status *pst);

/*
 * Before a run of up to run_s seconds: the row is marked busy (no create
 * evicts it until lease_release) and the sandbox must outlive the run,
 * at the provider and in its row, by its idle lifetime.  OUT: *pst.
 * Returns LEASE_OK; LEASE_EVICTED or LEASE_NOT_FOUND if the row ended
 * since it was found; or LEASE_PROVIDER.
 */
enum lease_err	lease_hold(struct request *req, struct lease *l, long run_s,
		    enum e2b_status *pst);

/*
 * After a use: a fresh sandbox is closed; another has its use recorded
 * and its provider lifetime renewed.  failed: the provider no longer has
 * it (marked failed).
 */
void		lease_release(struct request *req, struct lease *l,
		    long executions, int failed);

/* Closes one live sandbox of the project (status "closed"). */
enum lease_err	lease_close(struct request *req, const char *project_id,
		    const char *sandbox_id);

/* Ends the sandboxes whose idle lifetime is over (any project). */
void		lease_reap(struct store *st, struct e2b *c);

#endif
