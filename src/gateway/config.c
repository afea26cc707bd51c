/* Gateway settings: one table row per environment variable. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "gateway/config.h"

enum cfg_type { CFG_STRING, CFG_LONG, CFG_OCTAL };

struct cfg_entry {
	const char	*name;
	enum cfg_type	 type;
	size_t		 offset;
	const char	*defval;
	long		 min, max;
	const char	*help;
};

static const struct cfg_entry cfg_table[] = {
	{ .name = "IRIS_DB", .type = CFG_STRING,
	  .offset = offsetof(struct config, db_path),
	  .defval = "./var/iris.db", .help = "database file" },
	{ .name = "IRIS_SOCKET", .type = CFG_STRING,
	  .offset = offsetof(struct config, socket_path),
	  .defval = "./var/gateway.sock",
	  .help = "FastCGI unix socket to create (fd 0 is used if it is a "
	  "listening socket)" },
	{ .name = "IRIS_SOCKET_MODE", .type = CFG_OCTAL,
	  .offset = offsetof(struct config, socket_mode),
	  .defval = "0600", .min = 0, .max = 0777,
	  .help = "permissions of the socket" },
	{ .name = "IRIS_WORKERS", .type = CFG_LONG,
	  .offset = offsetof(struct config, workers),
	  .defval = "32", .min = 1, .max = 1024,
	  .help = "worker threads, each serving one request at a time" },
	{ .name = "IRIS_MAX_BODY", .type = CFG_LONG,
	  .offset = offsetof(struct config, max_body),
	  .defval = "1048576", .min = 1024, .max = 64 << 20,
	  .help = "largest request body, bytes" },
	{ .name = "IRIS_MAX_CODE", .type = CFG_LONG,
	  .offset = offsetof(struct config, max_code),
	  .defval = "102400", .min = 1, .max = 64 << 20,
	  .help = "largest code field, bytes" },
	{ .name = "IRIS_DRAIN_TIMEOUT", .type = CFG_LONG,
	  .offset = offsetof(struct config, drain_s),
	  .defval = "30", .min = 0, .max = 3600,
	  .help = "seconds in-flight requests get to finish on SIGTERM" },
	{ .name = "IRIS_DB_BUSY_MS", .type = CFG_LONG,
	  .offset = offsetof(struct config, db_busy_ms),
	  .defval = "5000", .min = 10, .max = 600000,
	  .help = "how long to wait for a database lock, ms" },
	{ .name = "IRIS_VERBOSE", .type = CFG_LONG,
	  .offset = offsetof(struct config, verbose),
	  .defval = "0", .min = 0, .max = 1, .help = "debug logging" },
};

static const char *
env_lookup(const char *name)
{
	return getenv(name);
}

static int
set_entry(struct config *cfg, const struct cfg_entry *e, const char *val,
    char *err, size_t errlen)
{
	char *end;
	long v;

	if (e->type == CFG_STRING) {
		if (*val == '\0') {
			snprintf(err, errlen, "%s must not be empty", e->name);
			return -1;
		}
		*(const char **)(void *)((char *)cfg + e->offset) = val;
		return 0;
	}
	errno = 0;
	v = strtol(val, &end, e->type == CFG_OCTAL ? 8 : 10);
	if (errno || end == val || *end != '\0' || v < e->min || v > e->max) {
		snprintf(err, errlen, e->type == CFG_OCTAL ?
		    "%s must be an octal number from %lo to %lo" :
		    "%s must be an integer from %ld to %ld", e->name, e->min,
		    e->max);
		return -1;
	}
	*(long *)(void *)((char *)cfg + e->offset) = v;
	return 0;
}

int
config_load(struct config *cfg, const char *(*lookup)(const char *),
    char *err, size_t errlen)
{
	const struct cfg_entry *e;
	const char *val;
	size_t i;

	if (lookup == NULL)
		lookup = env_lookup;
	for (i = 0; i < sizeof(cfg_table) / sizeof(cfg_table[0]); i++) {
		e = &cfg_table[i];
		if ((val = lookup(e->name)) == NULL)
			val = e->defval;
		if (set_entry(cfg, e, val, err, errlen) == -1)
			return -1;
	}
	if (cfg->max_code > cfg->max_body) {
		snprintf(err, errlen, "IRIS_MAX_CODE must not exceed "
		    "IRIS_MAX_BODY");
		return -1;
	}
	return 0;
}

void
config_usage(FILE *f)
{
	size_t i;

	for (i = 0; i < sizeof(cfg_table) / sizeof(cfg_table[0]); i++)
		fprintf(f, "  %-20s %s (default %s)\n", cfg_table[i].name,
		    cfg_table[i].help, cfg_table[i].defval);
}
