#ifndef IRIS_TIMESTAMP_H
#define IRIS_TIMESTAMP_H

#include <stdint.h>

/* "2026-11-22T03:04:05.123Z" and its NUL. */
#define TS_ISO_LEN	25

/* Wall-clock milliseconds since the Unix epoch. */
int64_t	ts_now_ms(void);

/* Monotonic milliseconds, for durations and deadlines. */
int64_t	ts_mono_ms(void);

struct timespec;

/*
 * The wall-clock time ms milliseconds from now (0 if ms <= 0), as
 * pthread_cond_timedwait wants its deadline.  OUT: *out.
 */
void	ts_realtime_in(int64_t ms, struct timespec *out);

/* Writes ms as ISO 8601 UTC with milliseconds into out. */
void	ts_format(int64_t ms, char out[TS_ISO_LEN]);

/*
 * Parses "YYYY-MM-DDTHH:MM:SS[.fff]" followed by "Z" or "+00:00" (a date
 * alone, "YYYY-MM-DD", means its midnight UTC).  OUT: *ms.
 * Returns 0, or -1 if s is not such a time.
 */
int	ts_parse(const char *s, int64_t *ms);

#endif
