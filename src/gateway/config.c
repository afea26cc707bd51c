/* Gateway settings: one table row per environment variable. */
#include <stdio.h>
#include <string.h>

#include "common/envconf.h"
#include "common/hostmem.h"

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
	{ .name = "E2B_API_URL", .type = ENVCONF_STRING,
	  .offset = offsetof(struct config, e2b_api_url),
	  .help = "the provider's control plane (https://api.e2b.app for "
	  "E2B cloud, or iris-sandboxd's URL)" },
	{ .name = "E2B_SANDBOX_URL", .type = ENVCONF_STRING,
	  .offset = offsetof(struct config, e2b_sandbox_url),
	  .help = "one URL for every sandbox, routed by E2b-Sandbox-Id "
	  "headers (iris-sandboxd); unset: https://49999-<id>.<domain>" },
	{ .name = "E2B_DOMAIN", .type = ENVCONF_STRING,
	  .offset = offsetof(struct config, e2b_domain), .defval = "e2b.app",
	  .help = "the sandboxes' domain, without E2B_SANDBOX_URL" },
	{ .name = "E2B_API_KEY", .type = ENVCONF_STRING,
	  .offset = offsetof(struct config, e2b_api_key),
	  .help = "the provider's API key (e2b_...); never logged" },
	{ .name = "IRIS_E2B_TEMPLATE", .type = ENVCONF_STRING,
	  .offset = offsetof(struct config, e2b_template),
	  .defval = "code-interpreter-v1", .help = "the sandbox template" },
	{ .name = "IRIS_E2B_SANDBOX_SCHEME", .type = ENVCONF_STRING,
	  .offset = offsetof(struct config, e2b_scheme), .defval = "https",
	  .help = "scheme of Host-routed sandbox URLs" },
	{ .name = "IRIS_E2B_CONNECT_TO", .type = ENVCONF_STRING,
	  .offset = offsetof(struct config, e2b_connect_to),
	  .help = "a curl CONNECT_TO rule (HOST:PORT:CONNECT-HOST:PORT) for "
	  "the provider's connections" },
	{ .name = "IRIS_PROVIDER", .type = ENVCONF_STRING,
	  .offset = offsetof(struct config, provider),
	  .help = "local or e2b (default: local when E2B_SANDBOX_URL is "
	  "set, else e2b)" },
	{ .name = "IRIS_PROVIDER_CONNECT_MS", .type = ENVCONF_LONG,
	  .offset = offsetof(struct config, connect_timeout_ms),
	  .defval = "3000", .min = 100, .max = 60000,
	  .help = "connect timeout to the provider, ms" },
	{ .name = "IRIS_PROVIDER_TIMEOUT_MS", .type = ENVCONF_LONG,
	  .offset = offsetof(struct config, provider_timeout_ms),
	  .defval = "60000", .min = 1000, .max = 600000,
	  .help = "timeout of control-plane calls (create, kill), ms" },
	{ .name = "IRIS_PROJECT_SANDBOXES", .type = ENVCONF_LONG,
	  .offset = offsetof(struct config, project_sandboxes),
	  .defval = "0", .min = 0, .max = 10000,
	  .help = "live sandboxes a project may hold (0: one per 512 MiB of "
	  "3/4 of the host's memory, at least 4)" },
	{ .name = "IRIS_ADMISSION_WAIT", .type = ENVCONF_LONG,
	  .offset = offsetof(struct config, admission_wait_s),
	  .defval = "30", .min = 0, .max = 3600,
	  .help = "seconds a call may wait for room at its project's cap "
	  "(at most its own timeout), then 429 with Retry-After" },
	{ .name = "IRIS_ADMISSION_QUEUE", .type = ENVCONF_LONG,
	  .offset = offsetof(struct config, admission_queue),
	  .defval = "256", .min = 0, .max = 100000,
	  .help = "calls waiting for room at once, per gateway process; more "
	  "are refused at once (429 with Retry-After)" },
	{ .name = "IRIS_SANDBOX_IDLE_TIMEOUT", .type = ENVCONF_LONG,
	  .offset = offsetof(struct config, idle_timeout_s),
	  .defval = "300", .min = 10, .max = 3600,
	  .help = "idle lifetime of a sandbox when the caller names none, s" },
	{ .name = "IRIS_OUTPUT_CAP", .type = ENVCONF_LONG,
	  .offset = offsetof(struct config, output_cap),
	  .defval = "1048576", .min = 1024, .max = 64 << 20,
	  .help = "output kept per stream per execution, bytes" },
	{ .name = "IRIS_KEEP_CODE", .type = ENVCONF_LONG,
	  .offset = offsetof(struct config, keep_code),
	  .defval = "1", .min = 0, .max = 1,
	  .help = "store each execution's code in the executions table" },
	{ .name = "IRIS_PACKAGES", .type = ENVCONF_STRING,
	  .offset = offsetof(struct config, packages),
	  .help = "with IRIS_PROVIDER=e2b: Python packages pip may install "
	  "when a request asks for one its sandbox cannot import "
	  "(comma-separated); what a sandbox can import is always allowed" },
	{ .name = "IRIS_RUNTIMES_TTL", .type = ENVCONF_LONG,
	  .offset = offsetof(struct config, runtimes_ttl_s),
	  .defval = "600", .min = 0, .max = 86400,
	  .help = "seconds GET /api/iris/runtimes keeps what a probe found "
	  "(0: probe on every call)" },
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
	if (cfg->provider == NULL)
		cfg->provider = cfg->e2b_sandbox_url ? "local" : "e2b";
	if (cfg->project_sandboxes == 0) {
		long total, avail;

		hostmem_read(&total, &avail);
		cfg->project_sandboxes = hostmem_count(total, 3, 4, 512, 4,
		    10000);
	}
	if (strcmp(cfg->provider, "local") != 0 &&
	    strcmp(cfg->provider, "e2b") != 0) {
		snprintf(err, errlen, "IRIS_PROVIDER must be local or e2b");
		return -1;
	}
	if (cfg->e2b_api_url && strncmp(cfg->e2b_api_url, "http://", 7) != 0 &&
	    strncmp(cfg->e2b_api_url, "https://", 8) != 0) {
		snprintf(err, errlen, "E2B_API_URL must be an http(s) URL");
		return -1;
	}
	return 0;
}

void
config_usage(FILE *f)
{
	envconf_usage(f, cfg_table, NCFG);
}
