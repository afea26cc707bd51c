#ifndef IRIS_POOL_H
#define IRIS_POOL_H

/*
 * The pool: a few Python sandboxes started ahead of need, with numpy,
 * pandas and matplotlib imported and the default Python kernel forked,
 * so that creating a sandbox and running its first code costs about
 * what a run in a warm sandbox costs.  A thread keeps it full.
 */

/* Starts the filler thread for size sandboxes (0: no pool). */
int	pool_start(long size);

/* Asks the filler to top the pool up (a sandbox was taken). */
void	pool_wake(void);

/* Stops the filler; the pooled sandboxes die with sandbox_kill_all. */
void	pool_stop(void);

#endif
