#ifndef IRIS_CGROUP_H
#define IRIS_CGROUP_H

#include <stddef.h>
#include <sys/types.h>

/*
 * Per-sandbox memory and process limits with cgroups (v1 memory and pids
 * controllers), where the host lets us create them; otherwise rlimits
 * alone bound each sandbox (see sandbox.c).
 */

/* Finds the controllers and makes our parent groups.  1 if usable. */
int	cgroup_init(const char *name);

/*
 * Creates the groups of sandbox id with the limits.  Returns 0, or -1
 * (then the sandbox runs without them).
 */
int	cgroup_create(const char *id, long memory_bytes, long procs);

/*
 * Moves the calling process into the groups of id.  Only open/write/
 * close: safe between fork and exec.  Returns 0, or -1.
 */
int	cgroup_enter(const char *id);

/* SIGKILLs every process in the groups of id, then removes them. */
void	cgroup_destroy(const char *id);

/*
 * The pids (host view) in the memory group of id, up to max into out.
 * Returns how many there are (may exceed max), or -1 if unreadable.
 */
int	cgroup_procs(const char *id, pid_t *out, int max);

/* What the memory group of id holds: bytes in use, its limit, page cache. */
struct cgroup_memory {
	long long	 used;
	long long	 limit;
	long long	 cache;
};
/* 0, or -1 if there is no such group (then *out is zeros). */
int	cgroup_memory(const char *id, struct cgroup_memory *out);
/* How many processes the memory group of id has had killed (OOM). */
long	cgroup_oom_kills(const char *id);

/* Removes our parent groups (when every sandbox is gone). */
void	cgroup_release(void);

#endif
