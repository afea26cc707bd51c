/* Time: clocks and ISO 8601 UTC text with milliseconds. */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "common/timestamp.h"

int64_t
ts_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t
ts_mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void
ts_realtime_in(int64_t ms, struct timespec *out)
{
	if (ms < 0)
		ms = 0;
	clock_gettime(CLOCK_REALTIME, out);
	out->tv_sec += (time_t)(ms / 1000);
	out->tv_nsec += (long)(ms % 1000) * 1000000L;
	if (out->tv_nsec >= 1000000000L) {
		out->tv_sec++;
		out->tv_nsec -= 1000000000L;
	}
}

void
ts_format(int64_t ms, char out[TS_ISO_LEN])
{
	time_t secs = (time_t)(ms / 1000);
	struct tm tm;

	gmtime_r(&secs, &tm);
	if (strftime(out, TS_ISO_LEN, "%Y-%m-%dT%H:%M:%S", &tm) != 19) {
		snprintf(out, TS_ISO_LEN, "1970-01-01T00:00:00.000Z");
		return;
	}
	snprintf(out + 19, TS_ISO_LEN - 19, ".%03uZ",
	    (unsigned)(ms % 1000) % 1000u);
}

/* Reads exactly n digits at *p; advances *p.  Returns the value, or -1. */
static int
digits(const char **p, int n)
{
	int v = 0;

	while (n-- > 0) {
		if (**p < '0' || **p > '9')
			return -1;
		v = v * 10 + (*(*p)++ - '0');
	}
	return v;
}

static int
days_in_month(int y, int m)
{
	static const int days[] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31,
	    30, 31 };
	int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;

	return m == 2 && leap ? 29 : days[m - 1];
}

int
ts_parse(const char *s, int64_t *ms)
{
	const char *p = s;
	int y, mo, d, h = 0, mi = 0, sec = 0, frac = 0, scale = 100;
	struct tm tm;

	if ((y = digits(&p, 4)) < 1970 || *p++ != '-' ||
	    (mo = digits(&p, 2)) < 1 || mo > 12 || *p++ != '-' ||
	    (d = digits(&p, 2)) < 1 || d > days_in_month(y, mo))
		return -1;
	if (*p != '\0') {
		if (*p++ != 'T' || (h = digits(&p, 2)) < 0 || h > 23 ||
		    *p++ != ':' || (mi = digits(&p, 2)) < 0 || mi > 59 ||
		    *p++ != ':' || (sec = digits(&p, 2)) < 0 || sec > 59)
			return -1;
		if (*p == '.') {
			p++;
			if (*p < '0' || *p > '9')
				return -1;
			for (; *p >= '0' && *p <= '9'; p++) {
				frac += (*p - '0') * scale;
				scale /= 10;
			}
		}
		if (strcmp(p, "Z") != 0 && strcmp(p, "+00:00") != 0)
			return -1;
	}
	memset(&tm, 0, sizeof(tm));
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	tm.tm_sec = sec;
	*ms = (int64_t)timegm(&tm) * 1000 + frac;
	return 0;
}
