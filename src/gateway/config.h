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
