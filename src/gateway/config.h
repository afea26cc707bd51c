#ifndef IRIS_CONFIG_H
#define IRIS_CONFIG_H

#include <stddef.h>
#include <stdio.h>

/* The gateway's settings, read once at start from the environment. */
struct config {
	const char	*db_path;	/* IRIS_DB */
	const char	*socket_path;	/* IRIS_SOCKET */
	long		 socket_mode;	/* IRIS_SOCKET_MODE, octal */
	long		 workers;	/* IRIS_WORKERS */
	long		 max_body;	/* IRIS_MAX_BODY, bytes */
	long		 max_code;	/* IRIS_MAX_CODE, bytes */
	long		 drain_s;	/* IRIS_DRAIN_TIMEOUT, seconds */
	long		 db_busy_ms;	/* IRIS_DB_BUSY_MS */
	long		 verbose;	/* IRIS_VERBOSE, 0 or 1 */

	/* The sandbox provider, spoken to over E2B's protocol. */
	const char	*e2b_api_url;	/* E2B_API_URL, or NULL: none */
	const char	*e2b_sandbox_url; /* E2B_SANDBOX_URL, or NULL */
	const char	*e2b_domain;	/* E2B_DOMAIN */
	const char	*e2b_api_key;	/* E2B_API_KEY (a secret) */
	const char	*e2b_template;	/* IRIS_E2B_TEMPLATE */
	const char	*e2b_scheme;	/* IRIS_E2B_SANDBOX_SCHEME */
	const char	*e2b_connect_to; /* IRIS_E2B_CONNECT_TO */
	const char	*provider;	/* IRIS_PROVIDER: local or e2b */
	long		 connect_timeout_ms;	/* IRIS_PROVIDER_CONNECT_MS */
	long		 provider_timeout_ms;	/* IRIS_PROVIDER_TIMEOUT_MS */
	long		 project_sandboxes;	/* IRIS_PROJECT_SANDBOXES */
	long		 admission_wait_s;	/* IRIS_ADMISSION_WAIT */
	long		 admission_queue;	/* IRIS_ADMISSION_QUEUE */
	long		 idle_timeout_s;	/* IRIS_SANDBOX_IDLE_TIMEOUT */
	long		 output_cap;		/* IRIS_OUTPUT_CAP, per stream */
	long		 keep_code;		/* IRIS_KEEP_CODE, 0 or 1 */
	const char	*packages;	/* IRIS_PACKAGES: pip may install (e2b) */
	long		 runtimes_ttl_s;	/* IRIS_RUNTIMES_TTL */
};

/*
 * Fills cfg from getenv-like lookup (NULL means getenv): every setting has
 * a default; a bad value is refused.  OUT: err, a message naming the
 * variable.  Returns 0, or -1.
 */
int	config_load(struct config *cfg, const char *(*lookup)(const char *),
	    char *err, size_t errlen);

/* Writes one "NAME=value (meaning)" line per setting to f, for --help. */
void	config_usage(FILE *f);

#endif
