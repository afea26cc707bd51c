#ifndef IRIS_PROC_H
#define IRIS_PROC_H

#include <stddef.h>
#include <sys/types.h>

/*
 * What the host's /proc says of a process (host pids): read by the daemon,
 * which trusts nothing a sandbox says about itself.
 */

/*
 * Appends the children of pid (of every thread of it) to list, which
 * holds *n and has room for max.  Returns how many it added.
 */
size_t	proc_children(pid_t pid, pid_t *list, size_t *n, size_t max);

/*
 * The value of the line "name:\t..." of /proc/<pid>/status into out.
 * Returns 0, or -1 if there is no such process or line.
 */
int	proc_status(pid_t pid, const char *name, char *out, size_t outsz);

/* The real uid of pid.  Returns 0, or -1 if there is no such process. */
int	proc_uid(pid_t pid, uid_t *uid);

/* The state letter of /proc/<pid>/stat ('S', 'T', ...), or 0 if none. */
char	proc_state(pid_t pid);
/*
 * The CPU time of pid in clock ticks (/proc/<pid>/stat utime + stime, and
 * with_children its waited-for children's cutime + cstime), or -1.
 */
long long proc_cpu_ticks(pid_t pid, int with_children);

#endif
