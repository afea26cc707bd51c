/* The writer thread: queued operations, committed in batches. */
#include <pthread.h>
#include <semaphore.h>
#include <stdlib.h>
#include <time.h>

#include "common/log.h"
#include "gateway/writer.h"

#define BATCH_MAX	256		/* operations per transaction */
#define RETRY_MS	30000		/* a busy database, retried this long */

/* A worker's operation, on its stack while it waits. */
struct item {
	struct store_op	 op;
	sem_t		 done;
	struct item	*next;
};

static struct {
	pthread_mutex_t	 lock;
	pthread_cond_t	 work;
	struct item	*head, **tail;
	int		 stopping;
	int		 running;
	pthread_t	 thread;
	struct store	*store;
} w = {
	.lock = PTHREAD_MUTEX_INITIALIZER,
	.work = PTHREAD_COND_INITIALIZER,
	.tail = &w.head,
};

/* Carries out ops, retrying the whole batch while the database is busy. */
static void
commit(struct store_op *ops, int n)
{
	struct timespec nap = { 0, 5 * 1000000L };
	enum store_status rv;
	int waited = 0, i;

	while ((rv = store_batch(w.store, ops, n)) == STORE_BUSY &&
	    waited < RETRY_MS) {
		nanosleep(&nap, NULL);
		waited += 5;
	}
	if (rv != STORE_OK)
		for (i = 0; i < n; i++)
			if (ops[i].kind == STORE_OP_AUDIT)
				log_warnx("audit: row of %s could not be "
				    "written", ops[i].rec->request_id);
}

static void *
writer_main(void *arg)
{
	static struct store_op ops[BATCH_MAX];
	struct item *batch[BATCH_MAX], *it;
	int n, i;

	(void)arg;
	pthread_mutex_lock(&w.lock);
	for (;;) {
		while (w.head == NULL && !w.stopping)
			pthread_cond_wait(&w.work, &w.lock);
		if (w.head == NULL)
			break;
		for (n = 0; n < BATCH_MAX && (it = w.head) != NULL; n++) {
			w.head = it->next;
			batch[n] = it;
			ops[n] = it->op;
		}
		if (w.head == NULL)
			w.tail = &w.head;
		pthread_mutex_unlock(&w.lock);

		commit(ops, n);
		for (i = 0; i < n; i++) {
			batch[i]->op.status = ops[i].status;
			sem_post(&batch[i]->done);
		}
		pthread_mutex_lock(&w.lock);
	}
	pthread_mutex_unlock(&w.lock);
	return NULL;
}

int
writer_start(const char *db_path, int busy_ms)
{
	if ((w.store = store_open(db_path, busy_ms)) == NULL)
		return -1;
	if (pthread_create(&w.thread, NULL, writer_main, NULL) != 0) {
		log_warnx("cannot start the writer thread");
		store_close(w.store);
		w.store = NULL;
		return -1;
	}
	w.running = 1;
	return 0;
}

/* Queues it and waits for its batch.  Returns its status. */
static enum store_status
submit(struct item *it)
{
	sem_init(&it->done, 0, 0);
	it->next = NULL;
	pthread_mutex_lock(&w.lock);
	if (!w.running || w.stopping) {
		pthread_mutex_unlock(&w.lock);
		sem_destroy(&it->done);
		return STORE_ERROR;
	}
	*w.tail = it;
	w.tail = &it->next;
	pthread_cond_signal(&w.work);
	pthread_mutex_unlock(&w.lock);
	while (sem_wait(&it->done) == -1)
		;		/* EINTR */
	sem_destroy(&it->done);
	return it->op.status;
}

enum store_status
writer_admit(const char *key_id, int64_t now_us, struct rl_result *res,
    long *limit)
{
	struct item it = { .op = { .kind = STORE_OP_ADMIT, .key_id = key_id,
	    .now_us = now_us, .res = res, .limit = limit } };

	return submit(&it);
}

int
writer_audit(const struct audit_rec *rec)
{
	struct item it = { .op = { .kind = STORE_OP_AUDIT, .rec = rec } };

	if (submit(&it) != STORE_OK) {
		log_warnx("audit: row of %s lost", rec->request_id);
		return -1;
	}
	return 0;
}

void
writer_stop(void)
{
	pthread_mutex_lock(&w.lock);
	if (!w.running) {
		pthread_mutex_unlock(&w.lock);
		return;
	}
	w.stopping = 1;
	pthread_cond_signal(&w.work);
	pthread_mutex_unlock(&w.lock);
	pthread_join(w.thread, NULL);
	w.running = 0;
	store_close(w.store);
	w.store = NULL;
}
