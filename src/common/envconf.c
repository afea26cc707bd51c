/* Settings from the environment, driven by a table of rows. */
#include <errno.h>
#include <stdlib.h>

#include "common/envconf.h"

static const char *
env_lookup(const char *name)
{
	return getenv(name);
}

static int
set_entry(void *dst, const struct envconf *e, const char *val, char *err,
    size_t errlen)
{
	char *end;
	long v;

	if (e->type == ENVCONF_STRING) {
		/* An optional string set empty is unset. */
		if (val != NULL && *val == '\0' && e->defval == NULL)
			val = NULL;
		if (val != NULL && *val == '\0') {
			snprintf(err, errlen, "%s must not be empty", e->name);
			return -1;
		}
		*(const char **)(void *)((char *)dst + e->offset) = val;
		return 0;
	}
	errno = 0;
	v = strtol(val, &end, e->type == ENVCONF_OCTAL ? 8 : 10);
	if (errno || end == val || *end != '\0' || v < e->min || v > e->max) {
		snprintf(err, errlen, e->type == ENVCONF_OCTAL ?
		    "%s must be an octal number from %lo to %lo" :
		    "%s must be an integer from %ld to %ld", e->name, e->min,
		    e->max);
		return -1;
	}
	*(long *)(void *)((char *)dst + e->offset) = v;
	return 0;
}

int
envconf_load(void *dst, const struct envconf *table, size_t n,
    const char *(*lookup)(const char *), char *err, size_t errlen)
{
	const char *val;
	size_t i;

	if (lookup == NULL)
		lookup = env_lookup;
	for (i = 0; i < n; i++) {
		if ((val = lookup(table[i].name)) == NULL)
			val = table[i].defval;
		if (set_entry(dst, &table[i], val, err, errlen) == -1)
			return -1;
	}
	return 0;
}

void
envconf_usage(FILE *f, const struct envconf *table, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		fprintf(f, "  %-24s %s (default %s)\n", table[i].name,
		    table[i].help, table[i].defval ? table[i].defval : "unset");
}
