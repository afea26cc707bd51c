#ifndef IRIS_HOSTMEM_H
#define IRIS_HOSTMEM_H

/*
 * The host's memory, from /proc/meminfo (MemTotal, MemAvailable), in MiB,
 * for defaults sized from the machine rather than a bare count.
 * Returns 0, or -1 if it cannot be read (then both are 0).
 */
int	hostmem_read(long *total_mb, long *available_mb);

/* total_mb * num / den / per_mb, clamped to [lo, hi]: a default count. */
long	hostmem_count(long total_mb, long num, long den, long per_mb, long lo,
	    long hi);

#endif
