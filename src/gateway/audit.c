/* The audit writer thread and its queue. */
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include "common/log.h"
#include "gateway/audit.h"

#define AUDIT_QUEUE	1024		/* rows waiting, at most */
#define AUDIT_BATCH	256		/* rows per transaction, at most */
#define AUDIT_RETRY_MS	30000		/* how long a busy database is retried */

static struct {
	pthread_mutex_t	 lock;
	pthread_cond_t	 work;		/* rows queued, or stopping */
	pthread_cond_t	 done;		/* a batch finished */
	pthread_cond_t	 space;		/* the queue has room */
	struct audit_rec ring[AUDIT_QUEUE];
	uint64_t	 queued;	/* rows ever queued */
	uint64_t	 taken;		/* rows ever taken by the writer */
	uint64_t	 finished;	/* rows ever finished (committed or lost) */
	uint64_t	 lost_below;	/* rows in [lost_from, lost_below) were lost */
	uint64_t	 lost_from;
	int		 stopping;
	int		 running;
	pthread_t	 thread;
	struct store	*store;
} q = {
	.lock = PTHREAD_MUTEX_INITIALIZER,
	.work = PTHREAD_COND_INITIALIZER,
	.done = PTHREAD_COND_INITIALIZER,
	.space = PTHREAD_COND_INITIALIZER,
};

/* Inserts a batch, retrying while the database is busy. */
static int
commit_batch(const struct audit_rec *batch, int n)
{
	struct timespec nap = { 0, 10 * 1000000L };
	int waited = 0;
	enum store_status rv;

	while ((rv = store_audit_insert(q.store, batch, n)) == STORE_BUSY &&
	    waited < AUDIT_RETRY_MS) {
		nanosleep(&nap, NULL);
		waited += 10;
	}
	if (rv != STORE_OK)
		log_warnx("audit: %d rows could not be written", n);
	return rv == STORE_OK ? 0 : -1;
}

static void *
writer(void *arg)
{
	static struct audit_rec batch[AUDIT_BATCH];
	uint64_t first;
	int n, i;

	(void)arg;
	pthread_mutex_lock(&q.lock);
	for (;;) {
		while (q.taken == q.queued && !q.stopping)
			pthread_cond_wait(&q.work, &q.lock);
		if (q.taken == q.queued)
			break;
		first = q.taken;
		n = (int)(q.queued - q.taken);
		if (n > AUDIT_BATCH)
			n = AUDIT_BATCH;
		for (i = 0; i < n; i++)
			batch[i] = q.ring[(first + (uint64_t)i) % AUDIT_QUEUE];
		q.taken += (uint64_t)n;
		pthread_cond_broadcast(&q.space);
		pthread_mutex_unlock(&q.lock);

		i = commit_batch(batch, n);

		pthread_mutex_lock(&q.lock);
		if (i == -1) {
			q.lost_from = first;
			q.lost_below = first + (uint64_t)n;
		}
		q.finished = first + (uint64_t)n;
		pthread_cond_broadcast(&q.done);
	}
	pthread_mutex_unlock(&q.lock);
	return NULL;
}

int
audit_start(const char *db_path, int busy_ms)
{
	if ((q.store = store_open(db_path, busy_ms)) == NULL)
		return -1;
	if (pthread_create(&q.thread, NULL, writer, NULL) != 0) {
		log_warnx("audit: cannot start the writer thread");
		store_close(q.store);
		q.store = NULL;
		return -1;
	}
	q.running = 1;
	return 0;
}

int
audit_write(const struct audit_rec *rec)
{
	uint64_t seq;
	int rv;

	pthread_mutex_lock(&q.lock);
	if (!q.running || q.stopping) {
		pthread_mutex_unlock(&q.lock);
		log_warnx("audit: writer not running; row for %s lost",
		    rec->request_id);
		return -1;
	}
	/* A full queue makes workers wait: rows are never dropped. */
	while (q.queued - q.taken == AUDIT_QUEUE)
		pthread_cond_wait(&q.space, &q.lock);
	seq = q.queued++;
	q.ring[seq % AUDIT_QUEUE] = *rec;
	pthread_cond_signal(&q.work);
	while (q.finished <= seq)
		pthread_cond_wait(&q.done, &q.lock);
	rv = seq >= q.lost_from && seq < q.lost_below ? -1 : 0;
	pthread_mutex_unlock(&q.lock);
	return rv;
}

void
audit_stop(void)
{
	pthread_mutex_lock(&q.lock);
	if (!q.running) {
		pthread_mutex_unlock(&q.lock);
		return;
	}
	q.stopping = 1;
	pthread_cond_signal(&q.work);
	pthread_mutex_unlock(&q.lock);
	pthread_join(q.thread, NULL);
	q.running = 0;
	store_close(q.store);
	q.store = NULL;
}
