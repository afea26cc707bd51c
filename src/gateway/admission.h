#ifndef IRIS_ADMISSION_H
#define IRIS_ADMISSION_H

#include <stdint.h>

/*
 * Admission at a project's sandbox cap: instead of a refusal, the call
 * waits its turn in a fair, bounded queue (first come, first served per
 * project, in this process; across the processes that share the database
 * each retries by turn).  It is woken when a sandbox of this process is
 * given back, and looks again every ADMISSION_POLL_MS for the others'.
 */
struct admission;

/* Other processes' sandboxes given back are seen this late at most. */
#define ADMISSION_POLL_MS	100

struct admission_ticket {
	struct admission_ticket	*next;
	const char		*project_id;	/* the caller's, borrowed */
	int			 kicked;	/* room came back in its project */
};

/* A queue of at most max_waiters calls.  NULL if out of memory. */
struct admission	*admission_new(long max_waiters);
void			 admission_free(struct admission *a);

/*
 * Joins the queue.  Returns 0, or -1 if it is full (the caller answers
 * 429 at once).
 */
int	admission_enter(struct admission *a, struct admission_ticket *t,
	    const char *project_id);

/*
 * Waits until t is the first of its project in the queue and, unless
 * first_try, until a sandbox of its project is given back in this process
 * or ADMISSION_POLL_MS pass (another process's).
 * Returns 0 (try now), or -1 once deadline_ms (monotonic) has passed.
 */
int	admission_wait(struct admission *a, struct admission_ticket *t,
	    int64_t deadline_ms, int first_try);

/* Leaves the queue (admitted or given up); the next of its project goes. */
void	admission_leave(struct admission *a, struct admission_ticket *t);

/* A sandbox of project_id was given back: wakes that project's waiters. */
void	admission_signal(struct admission *a, const char *project_id);

/* 1 if a call of project_id waits: a newcomer must queue behind it. */
int	admission_queued(struct admission *a, const char *project_id);

/* Calls waiting now (for tests and logs). */
long	admission_waiting(struct admission *a);

#endif
