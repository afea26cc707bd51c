/* The pool of pre-started Python sandboxes and the thread that fills it. */
#include <errno.h>
#include <pthread.h>
#include <time.h>

#include "common/log.h"
#include "sandboxd/kernel.h"
#include "sandboxd/pool.h"
#include "sandboxd/sandbox.h"

#define POOL_TEMPLATE	"code-interpreter-v1"
#define RETRY_S		5	/* after a failed start */

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wake = PTHREAD_COND_INITIALIZER;
static pthread_t thread;
static long pool_size;
static int stopping, running;

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

static void *
filler(void *arg)
{
	struct timespec until;
	int failed;

	(void)arg;
	pthread_mutex_lock(&lock);
	while (!stopping) {
		failed = 0;
		while (!stopping && sandbox_pool_count() < pool_size) {
			pthread_mutex_unlock(&lock);
			failed = fill_one() == -1;
			pthread_mutex_lock(&lock);
			if (failed)
				break;
		}
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_sec += failed ? RETRY_S : 1;
		pthread_cond_timedwait(&wake, &lock, &until);
	}
	pthread_mutex_unlock(&lock);
	return NULL;
}

int
pool_start(long size)
{
	pool_size = size;
	if (size <= 0)
		return 0;
	if (pthread_create(&thread, NULL, filler, NULL) != 0) {
		log_warnx("pool: cannot start its thread");
		return -1;
	}
	running = 1;
	return 0;
}

void
pool_wake(void)
{
	pthread_mutex_lock(&lock);
	pthread_cond_signal(&wake);
	pthread_mutex_unlock(&lock);
}

void
pool_stop(void)
{
	if (!running)
		return;
	pthread_mutex_lock(&lock);
	stopping = 1;
	pthread_cond_signal(&wake);
	pthread_mutex_unlock(&lock);
	pthread_join(thread, NULL);
	running = 0;
}
