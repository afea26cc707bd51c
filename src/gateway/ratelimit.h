#ifndef IRIS_RATELIMIT_H
#define IRIS_RATELIMIT_H

#include <stdint.h>

/*
 * GCRA, the generic cell rate algorithm: a key allows `limit` requests per
 * `window`, spaced at T = window / limit, with a burst of `limit`.  Its
 * whole state is one number, the theoretical arrival time (TAT), so one
 * small transaction decides a request exactly, whatever the concurrency.
 */
struct rl_result {
	int	 admitted;
	int64_t	 tat_us;	/* the TAT to store (unchanged if refused) */
	long	 remaining;	/* requests still admitted right now */
	long	 reset_s;	/* seconds until one is admitted again */
};

/*
 * Decides one request at now_us for a key whose stored TAT is tat_us.
 * limit >= 1, window_ms >= 1.  OUT: res.
 */
void	rl_decide(int64_t tat_us, int64_t now_us, long limit, long window_ms,
	    struct rl_result *res);

#endif
