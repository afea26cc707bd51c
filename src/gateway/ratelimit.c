/* The rate limiter's arithmetic (GCRA); the state lives in the store. */
#include "gateway/ratelimit.h"

/* Whole seconds covering us, for headers. */
static long
ceil_s(int64_t us)
{
	return us <= 0 ? 0 : (long)((us + 999999) / 1000000);
}

void
rl_decide(int64_t tat_us, int64_t now_us, long limit, long window_ms,
    struct rl_result *res)
{
	/*
	 * T is rounded up to whole microseconds and the burst is exactly
	 * `limit`, so the effective window limit * T is at most `limit` us
	 * longer than asked: never more than `limit` in a burst.
	 */
	int64_t t = ((int64_t)window_ms * 1000 + limit - 1) / limit;
	int64_t horizon = t * limit;
	int64_t base = tat_us > now_us ? tat_us : now_us;
	int64_t next = base + t;

	if (next - now_us <= horizon) {
		res->admitted = 1;
		res->tat_us = next;
		res->remaining = (long)((horizon - (next - now_us)) / t);
		/* Admitted again once the TAT is within the burst. */
		res->reset_s = res->remaining > 0 ? 0 :
		    ceil_s(next - horizon + t - now_us);
	} else {
		res->admitted = 0;
		res->tat_us = tat_us;
		res->remaining = 0;
		res->reset_s = ceil_s(base - horizon + t - now_us);
		if (res->reset_s < 1)
			res->reset_s = 1;
	}
}
