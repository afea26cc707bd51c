/* The host's memory, for defaults sized from it. */
#include <stdio.h>
#include <string.h>

#include "common/hostmem.h"

int
hostmem_read(long *total_mb, long *available_mb)
{
	char line[256];
	long kb;
	FILE *f;
	int found = 0;

	*total_mb = *available_mb = 0;
	if ((f = fopen("/proc/meminfo", "re")) == NULL)
		return -1;
	while (found < 2 && fgets(line, sizeof(line), f) != NULL) {
		if (sscanf(line, "MemTotal: %ld kB", &kb) == 1) {
			*total_mb = kb / 1024;
			found++;
		} else if (sscanf(line, "MemAvailable: %ld kB", &kb) == 1) {
			*available_mb = kb / 1024;
			found++;
		}
	}
	fclose(f);
	return found == 2 ? 0 : -1;
}

long
hostmem_count(long total_mb, long num, long den, long per_mb, long lo,
    long hi)
{
	long n = den > 0 && per_mb > 0 ? total_mb / den * num / per_mb : lo;

	return n < lo ? lo : n > hi ? hi : n;
}
