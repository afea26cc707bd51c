/* Gateway settings: one table row per environment variable. */
#include <stdio.h>

#include "common/envconf.h"

#include "gateway/config.h"

static const struct envconf cfg_table[] = {
	{ .name = "IRIS_DB", .type = ENVCONF_STRING,
	  .offset = offsetof(struct config, db_path),
	  .defval = "./var/iris.db", .help = "database file" },
	{ .name = "IRIS_SOCKET", .type = ENVCONF_STRING,
	  .offset = offsetof(struct config, socket_path),
	  .defval = "./var/gateway.sock",
	  .help = "FastCGI unix socket to create (fd 0 is used if it is a "
	  "listening socket)" },
	{ .name = "IRIS_SOCKET_MODE", .type = ENVCONF_OCTAL,
	  .offset = offsetof(struct config, socket_mode),
	  .defval = "0600", .min = 0, .max = 0777,
	  .help = "permissions of the socket" },
	{ .name = "IRIS_WORKERS", .type = ENVCONF_LONG,
	  .offset = offsetof(struct config, workers),
	  .defval = "32", .min = 1, .max = 1024,
	  .help = "worker threads, each serving one request at a time" },
	{ .name = "IRIS_MAX_BODY", .type = ENVCONF_LONG,
	  .offset = offsetof(struct config, max_body),
	  .defval = "1048576", .min = 1024, .max = 64 << 20,
	  .help = "largest request body, bytes" },
	{ .name = "IRIS_MAX_CODE", .type = ENVCONF_LONG,
	  .offset = offsetof(struct config, max_code),
	  .defval = "102400", .min = 1, .max = 64 << 20,
	  .help = "largest code field, bytes" },
	{ .name = "IRIS_DRAIN_TIMEOUT", .type = ENVCONF_LONG,
	  .offset = offsetof(struct config, drain_s),
	  .defval = "30", .min = 0, .max = 3600,
	  .help = "seconds in-flight requests get to finish on SIGTERM" },
	{ .name = "IRIS_DB_BUSY_MS", .type = ENVCONF_LONG,
	  .offset = offsetof(struct config, db_busy_ms),
	  .defval = "5000", .min = 10, .max = 600000,
	  .help = "how long to wait for a database lock, ms" },
	{ .name = "IRIS_VERBOSE", .type = ENVCONF_LONG,
	  .offset = offsetof(struct config, verbose),
	  .defval = "0", .min = 0, .max = 1, .help = "debug logging" },
};

#define NCFG	(sizeof(cfg_table) / sizeof(cfg_table[0]))

int
config_load(struct config *cfg, const char *(*lookup)(const char *),
    char *err, size_t errlen)
{
	if (envconf_load(cfg, cfg_table, NCFG, lookup, err, errlen) == -1)
		return -1;
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
	envconf_usage(f, cfg_table, NCFG);
}
