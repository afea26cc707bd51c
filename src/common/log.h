#ifndef IRIS_LOG_H
#define IRIS_LOG_H

/*
 * Logging to stderr, one line per event, for a supervisor to collect.
 * log_warn appends strerror(errno); log_warnx does not.  fatal/fatalx are
 * for impossible states and start-up failures only, never client input.
 * Never pass a secret to any of these.
 */

void	log_init(const char *progname, int verbose);
void	log_info(const char *, ...) __attribute__((format(printf, 1, 2)));
void	log_debug(const char *, ...) __attribute__((format(printf, 1, 2)));
void	log_warn(const char *, ...) __attribute__((format(printf, 1, 2)));
void	log_warnx(const char *, ...) __attribute__((format(printf, 1, 2)));
void	fatal(const char *, ...)
	    __attribute__((format(printf, 1, 2), noreturn));
void	fatalx(const char *, ...)
	    __attribute__((format(printf, 1, 2), noreturn));

#endif
