#ifndef IRIS_POOL_H
#define IRIS_POOL_H

struct sandbox;

/*
 * The pool: Python sandboxes started ahead of need, with numpy, pandas and
 * matplotlib imported and the default Python kernel forked, so that a
 * create costs about what a run in a warm sandbox costs.  Its size follows
 * demand: enough to absorb two seconds of creates at the rate of the last
 * ten seconds, within [min, max] (max from the host's memory, see main.c),
 * refilled by one thread per core.
 *
 * And recycling: a retired sandbox (sandbox_retire) is scrubbed by one of
 * the recycler threads, given a fresh default Python kernel and offered to
 * its group's next create; one that fails anything is killed.
 */
struct pool_config {
	long	min;		/* pooled sandboxes kept even when idle */
	long	max;		/* at most, whatever the demand */
	long	threads;	/* fillers (starts in parallel) */
	long	recyclers;	/* scrubs in parallel */
};

/* Starts the threads.  Returns 0, or -1. */
int	pool_start(const struct pool_config *cfg);

/* A sandbox was taken from the pool: top it up. */
void	pool_wake(void);

/* Counts a create that needed the pool (hit: it had one ready). */
void	pool_demand(int hit);

/* The number of pooled sandboxes wanted now. */
long	pool_target(void);

/* Queues sb, retired, with the reference sandbox_retire took, to recycle. */
void	pool_recycle(struct sandbox *sb);

/* Stops the threads; the pooled sandboxes die with sandbox_kill_all. */
void	pool_stop(void);

#endif
