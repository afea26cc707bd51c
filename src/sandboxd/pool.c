/*
 * The pool of pre-started Python sandboxes, its filler threads, and the
 * recycler threads that scrub retired sandboxes for their group.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <time.h>

#include "common/log.h"
#include "common/timestamp.h"
#include "sandboxd/kernel.h"
#include "sandboxd/pool.h"
#include "sandboxd/sandbox.h"

#define POOL_TEMPLATE	"code-interpreter-v1"
#define RETRY_S		5	/* after a failed start */
#define DEMAND_WINDOW_MS 10000	/* the creates counted for the target */
#define DEMAND_AHEAD_MS	2000	/* the pool absorbs this long of creates */
#define DEMAND_RING	1024	/* creates remembered */
#define RECYCLE_QUEUE	256	/* retired sandboxes waiting for a scrub */
#define THREADS_MAX	16

static struct {
	pthread_mutex_t		 lock;
	pthread_cond_t		 wake;		/* fillers */
	pthread_cond_t		 work;		/* recyclers */
	struct pool_config	 cfg;
	long			 starting;	/* fills under way */
	int64_t			 creates[DEMAND_RING];	/* monotonic ms */
	size_t			 ncreates;
	struct sandbox		*queue[RECYCLE_QUEUE];
	size_t			 qhead, qlen;
	pthread_t		 threads[2 * THREADS_MAX];
	int			 nthreads;
	int			 stopping;
} pool = {
	.lock = PTHREAD_MUTEX_INITIALIZER,
	.wake = PTHREAD_COND_INITIALIZER,
	.work = PTHREAD_COND_INITIALIZER,
};

/* Starts one pooled sandbox with its Python kernel.  Returns 0, or -1. */
static int
fill_one(void)
{
	enum sandbox_err err;
	struct sandbox *sb;
	struct context *ctx;
	char msg[256];

	if ((sb = sandbox_start(POOL_TEMPLATE, 1, 1, NULL, &err)) == NULL)
		return -1;
	if ((ctx = kernel_context_new(sb, "python", NULL, msg,
	    sizeof(msg))) == NULL) {
		log_warnx("pool: %s", msg);
		sandbox_kill(sb);
		sandbox_put(sb);
		return -1;
	}
	kernel_context_put(ctx);
	sandbox_offer(sb);
	sandbox_put(sb);	/* the registry keeps it */
	return 0;
}

/* The target, pool.lock held. */
static long
target_locked(void)
{
	int64_t since = ts_mono_ms() - DEMAND_WINDOW_MS;
	size_t i, n = pool.ncreates < DEMAND_RING ? pool.ncreates : DEMAND_RING;
	long recent = 0, want;

	for (i = 0; i < n; i++)
		recent += pool.creates[i] >= since;
	want = (recent * DEMAND_AHEAD_MS + DEMAND_WINDOW_MS - 1) /
	    DEMAND_WINDOW_MS;
	if (want < pool.cfg.min)
		want = pool.cfg.min;
	return want > pool.cfg.max ? pool.cfg.max : want;
}

long
pool_target(void)
{
	long t;

	pthread_mutex_lock(&pool.lock);
	t = target_locked();
	pthread_mutex_unlock(&pool.lock);
	return t;
}

/* 1 if one more start is wanted now (pool.lock held). */
static int
wanted(void)
{
	return !pool.stopping && sandbox_pool_count() + pool.starting <
	    target_locked() && sandbox_free_slots() > pool.starting;
}

static void *
filler(void *arg)
{
	struct timespec until;
	int64_t retry_at = 0;	/* after a failed start, none before this */

	(void)arg;
	pthread_mutex_lock(&pool.lock);
	while (!pool.stopping) {
		if (ts_mono_ms() >= retry_at && wanted()) {
			pool.starting++;
			pthread_mutex_unlock(&pool.lock);
			if (fill_one() == -1)
				retry_at = ts_mono_ms() + RETRY_S * 1000;
			pthread_mutex_lock(&pool.lock);
			pool.starting--;
			continue;
		}
		ts_realtime_in(1000, &until);	/* the demand decays */
		pthread_cond_timedwait(&pool.wake, &pool.lock, &until);
	}
	pthread_mutex_unlock(&pool.lock);
	return NULL;
}

/* Scrubs sb and offers it again, or kills it. */
static void
recycle_one(struct sandbox *sb)
{
	struct context *ctx = NULL;
	char err[256];

	if (sandbox_scrub(sb, err, sizeof(err)) == 0 &&
	    (ctx = kernel_context_new(sb, "python", NULL, err,
	    sizeof(err))) == NULL)
		log_warnx("recycling: %s", err);
	if (ctx != NULL) {
		kernel_context_put(ctx);
		sandbox_offer_recycled(sb);
	} else
		sandbox_kill(sb);
	sandbox_put(sb);
}

static void *
recycler(void *arg)
{
	struct sandbox *sb;

	(void)arg;
	pthread_mutex_lock(&pool.lock);
	for (;;) {
		while (!pool.stopping && pool.qlen == 0)
			pthread_cond_wait(&pool.work, &pool.lock);
		if (pool.stopping)
			break;
		sb = pool.queue[pool.qhead];
		pool.qhead = (pool.qhead + 1) % RECYCLE_QUEUE;
		pool.qlen--;
		pthread_mutex_unlock(&pool.lock);
		recycle_one(sb);
		pthread_mutex_lock(&pool.lock);
	}
	pthread_mutex_unlock(&pool.lock);
	return NULL;
}

void
pool_recycle(struct sandbox *sb)
{
	int queued = 0;

	pthread_mutex_lock(&pool.lock);
	if (!pool.stopping && pool.nthreads > 0 && pool.qlen < RECYCLE_QUEUE) {
		pool.queue[(pool.qhead + pool.qlen) % RECYCLE_QUEUE] = sb;
		pool.qlen++;
		queued = 1;
		pthread_cond_signal(&pool.work);
	}
	pthread_mutex_unlock(&pool.lock);
	if (!queued) {
		sandbox_kill(sb);
		sandbox_put(sb);
	}
}

void
pool_demand(int hit)
{
	pthread_mutex_lock(&pool.lock);
	pool.creates[pool.ncreates++ % DEMAND_RING] = ts_mono_ms();
	if (!hit)
		pthread_cond_broadcast(&pool.wake);
	pthread_mutex_unlock(&pool.lock);
}

static int
spawn_threads(long n, void *(*fn)(void *))
{
	long i;

	for (i = 0; i < n && i < THREADS_MAX; i++) {
		if (pthread_create(&pool.threads[pool.nthreads], NULL, fn,
		    NULL) != 0) {
			log_warnx("pool: cannot start a thread");
			return -1;
		}
		pool.nthreads++;
	}
	return 0;
}

int
pool_start(const struct pool_config *cfg)
{
	pool.cfg = *cfg;
	if (spawn_threads(cfg->recyclers, recycler) == -1)
		return -1;
	return cfg->max > 0 ? spawn_threads(cfg->threads, filler) : 0;
}

void
pool_wake(void)
{
	pthread_mutex_lock(&pool.lock);
	pthread_cond_broadcast(&pool.wake);
	pthread_mutex_unlock(&pool.lock);
}

void
pool_stop(void)
{
	struct sandbox *sb;
	int i;

	pthread_mutex_lock(&pool.lock);
	pool.stopping = 1;
	pthread_cond_broadcast(&pool.wake);
	pthread_cond_broadcast(&pool.work);
	pthread_mutex_unlock(&pool.lock);
	for (i = 0; i < pool.nthreads; i++)
		pthread_join(pool.threads[i], NULL);
	pool.nthreads = 0;
	/* What was still waiting for a scrub dies now. */
	while (pool.qlen > 0) {
		sb = pool.queue[pool.qhead];
		pool.qhead = (pool.qhead + 1) % RECYCLE_QUEUE;
		pool.qlen--;
		sandbox_kill(sb);
		sandbox_put(sb);
	}
}
